"""Reads over executors."""

from django.db.models import Q

from executors.models import Executor
from tasks.selectors import MAX_FILTER_MATCHES


def executor_ids_matching(text: str) -> list[str]:
    """Ids of the executors whose id is ``text`` or whose name or instance id contains it (at most
    ``MAX_FILTER_MATCHES``)."""
    return list(Executor.objects.filter(Q(pk=text) | Q(name__icontains=text) | Q(instance_id__icontains=text))
                .values_list("pk", flat=True)[:MAX_FILTER_MATCHES])
