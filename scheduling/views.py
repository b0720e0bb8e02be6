from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView

from scheduler_project.envelope import ok
from scheduler_project.schema import envelope, errors
from scheduling.selectors import cluster_status, health
from scheduling.serializers import HealthSerializer, SchedulerStatusSerializer


class HealthView(APIView):
    # Public, for load balancers and probes: no credentials needed, any sent are ignored.
    authentication_classes = ()
    permission_classes = (AllowAny,)

    @extend_schema(responses={200: envelope("Health", HealthSerializer()), **errors(503)},
                   description="Spec 000 §8.1. Answers 503 (40002) when the database is unreachable.")
    def get(self, request):
        return ok(HealthSerializer(health(timezone.now())).data)


class SchedulerStatusView(APIView):
    @extend_schema(responses={200: envelope("SchedulerStatus", SchedulerStatusSerializer())})
    def get(self, request):
        return ok(SchedulerStatusSerializer(cluster_status(timezone.now())).data)
