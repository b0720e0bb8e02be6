"""Results reported in batches: ``POST /api/v1/executions/callbacks``.

An executor with many results ready sends them in one signed request, as XXL-Job's executors do: one
signature check, one nonce and one transaction for up to ``MAX_CALLBACK_BATCH`` results, instead of one of
each per result. Each result meets the single callback's rules and gets its own verdict.
"""

from __future__ import annotations

from collections import Counter

from drf_spectacular.utils import extend_schema
from rest_framework.views import APIView

from core.clock import utc_now
from executions import services
from executions.serializers import MAX_CALLBACK_BATCH, CallbackBatchResultSerializer, CallbackBatchSerializer
from executors.channel import EXECUTOR_AUTHENTICATION, IsSignedExecutor, apply_signed_once
from scheduler_project.envelope import ok
from scheduler_project.schema import envelope, errors


class ExecutionCallbacksView(APIView):
    authentication_classes = EXECUTOR_AUTHENTICATION
    permission_classes = [IsSignedExecutor]

    @extend_schema(
        request=CallbackBatchSerializer,
        responses={200: envelope("CallbacksApplied", CallbackBatchResultSerializer()), **errors(400, 401)},
        description=f"Applies 1 to {MAX_CALLBACK_BATCH} results (the single callback's body plus `execution_id`, "
        "each execution at most once) in one transaction. Each result gets a verdict: `applied`, `already_final` "
        "(nothing changed), `not_found`, or `not_yours` (not dispatched to the signing executor; nothing changed). "
        "A malformed batch is refused whole (400) before anything is applied. Signed by the executor (401 "
        "otherwise).",
    )
    def post(self, request):
        def apply() -> list[services.ReportVerdict]:
            body = CallbackBatchSerializer(data=request.data)
            body.is_valid(raise_exception=True)
            reports = [services.ResultReport(**item) for item in body.validated_data["results"]]
            return services.apply_callbacks(executor_id=request.auth.pk, reports=reports, now=utc_now())

        verdicts = apply_signed_once(request, apply)  # the nonce and every result commit together
        counts = Counter(verdict.outcome for verdict in verdicts)
        data = {**{outcome.value: counts[outcome] for outcome in services.ReportOutcome},
                "results": [{"execution_id": v.execution_id, "outcome": v.outcome.value, "status": v.status}
                            for v in verdicts]}
        return ok(CallbackBatchResultSerializer(data).data, message="执行回调处理成功")
