"""Lease renewals: ``POST /api/v1/executions/leases``, signed by the executor holding the runs.

An executor renews every run it holds in one request every ``renew_seconds``; the answer names the runs
it must stop (README "Leases").
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.views import APIView

from core.clock import utc_now
from executions import services
from executions.serializers import LeaseRenewalResultSerializer, LeaseRenewalSerializer
from executors.channel import EXECUTOR_AUTHENTICATION, IsSignedExecutor, apply_signed_once
from scheduler_project.config import tunable
from scheduler_project.envelope import ok
from scheduler_project.schema import envelope, errors


class LeaseRenewalView(APIView):
    authentication_classes = EXECUTOR_AUTHENTICATION
    permission_classes = [IsSignedExecutor]

    @extend_schema(
        request=LeaseRenewalSerializer,
        responses={200: envelope("LeasesRenewed", LeaseRenewalResultSerializer()), **errors(400, 401)},
        description="Renews the leases of the runs the signing executor holds (`execution_id` and the `attempt` "
        "it accepted). Runs not running on it as that attempt are answered in `revoked`: the executor must stop "
        "them. Signed by the executor (401 otherwise).",
    )
    def post(self, request):
        def apply() -> services.LeaseRenewal:
            body = LeaseRenewalSerializer(data=request.data)
            body.is_valid(raise_exception=True)
            held = [services.HeldRun(**item) for item in body.validated_data["executions"]]
            return services.renew_leases(executor_id=request.auth.pk, held=held, now=utc_now())

        renewal = apply_signed_once(request, apply)
        data = {"renewed": renewal.renewed, "revoked": renewal.revoked,
                "lease_seconds": tunable("LEASE_SECONDS"), "renew_seconds": tunable("LEASE_RENEW_SECONDS")}
        return ok(LeaseRenewalResultSerializer(data).data)
