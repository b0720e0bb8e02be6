from django.db.models import Prefetch
from drf_spectacular.utils import extend_schema
from rest_framework import serializers as drf_serializers
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.views import APIView

from accounts.choices import Role
from accounts.roles import credential_roles
from accounts.throttling import record_auth_failure
from core.clock import utc_now
from executions.services import HeldRun, reconcile_held
from executors import services
from executors.channel import EXECUTOR_AUTHENTICATION, IsSignedExecutor, apply_signed_once, registration_proof
from executors.choices import ExecutorStatus
from executors.models import Executor
from executors.serializers import (
    ExecutorDetailSerializer,
    ExecutorListItemSerializer,
    ExecutorSerializer,
    ExecutorStatusChangeSerializer,
    ExecutorStatusUpdateSerializer,
    ExecutorUpdateSerializer,
    RegisterSerializer,
    RegistrationSerializer,
    RotatedSecretSerializer,
)
from scheduler_project.envelope import created, ok
from scheduler_project.errors import ErrorCode, reject_impossible_ids
from scheduler_project.pagination import paginate, parse_page_request
from scheduler_project.schema import PAGING_PARAMETERS, envelope, errors, list_envelope
from tasks.models import TaskExecutor


class ExecutorListQuery(drf_serializers.Serializer):
    status = drf_serializers.ChoiceField(choices=ExecutorStatus.choices, required=False)
    include_tasks = drf_serializers.BooleanField(required=False, default=False)


def _detail(executor_id: str) -> Executor:
    services.get_executor(executor_id)
    return Executor.objects.prefetch_related(
        Prefetch("task_executors", queryset=TaskExecutor.objects.select_related("task"))
    ).get(pk=executor_id)


class ExecutorViewSet(viewsets.ViewSet):
    """Spec 000 §6: executor registration and management."""

    lookup_value_regex = "[^/]+"
    # Role executor or admin, or the registration key; reads need viewer, other writes admin (accounts.roles).
    registration_actions = {"register"}

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        reject_impossible_ids(kwargs, {"pk": ErrorCode.EXECUTOR_NOT_FOUND})

    @extend_schema(
        parameters=[
            ExecutorListQuery,
            *PAGING_PARAMETERS,
        ],
        responses={200: list_envelope("ExecutorList", ExecutorListItemSerializer), **errors(400)},
        description="With include_tasks=true each executor carries its task assignments.",
    )
    def list(self, request):
        query = ExecutorListQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        executors = Executor.objects.order_by("name", "instance_id")
        if query.validated_data.get("status"):
            executors = executors.filter(status=query.validated_data["status"])
        serializer_class = ExecutorSerializer
        if query.validated_data["include_tasks"]:
            executors = executors.prefetch_related(
                Prefetch("task_executors", queryset=TaskExecutor.objects.select_related("task"))
            )
            serializer_class = ExecutorDetailSerializer
        page = paginate(executors, parse_page_request(request.query_params))
        return ok(serializer_class(page.items, many=True).data, **page.meta())

    @extend_schema(responses={200: envelope("ExecutorDetail", ExecutorDetailSerializer()), **errors(404)})
    def retrieve(self, request, pk=None):
        return ok(ExecutorDetailSerializer(_detail(pk)).data)

    @extend_schema(
        request=RegisterSerializer,
        responses={
            201: envelope("ExecutorRegistered", RegistrationSerializer()),
            200: envelope("ExecutorReregistered", RegistrationSerializer()),
            **errors(400, 409),
        },
        description="201 for a new executor; 200 when the same instance_id and name re-register (updated in "
        "place), which needs the request signed with that executor's secret or an admin (409 otherwise). "
        "Declared `tasks` are created, or updated when this executor created them, in one transaction.",
    )
    @action(detail=False, methods=["post"])
    def register(self, request):
        proof = registration_proof(request)  # first: it reads the raw body
        body = RegisterSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        held, held_as_of = data.pop("held_executions", None), data.pop("held_as_of", None)
        now = utc_now()
        try:
            registration = services.executor_register(
                data=data, now=now, proof=proof, by_admin=Role.ADMIN in credential_roles(request))
        except services.UnprovenRegistration:
            record_auth_failure(request)  # probing instance ids, or a stolen key trying one: throttled alike
            raise
        registration.executor.registered_tasks = registration.tasks
        if held is not None:  # reconciliation: what it holds against what it should
            registration.executor.stop_executions = reconcile_held(
                executor_id=registration.executor.pk, instance_id=registration.executor.instance_id,
                held=[HeldRun(**run) for run in held], as_of=held_as_of, now=now)
        data = RegistrationSerializer(registration.executor).data
        if registration.created:
            return created(data, message="执行器注册成功")
        return ok(data, message="执行器注册成功")

    @extend_schema(request=ExecutorUpdateSerializer,
                   responses={200: envelope("ExecutorUpdated", ExecutorSerializer()), **errors(400, 404)})
    def update(self, request, pk=None):
        body = ExecutorUpdateSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        executor = services.executor_update(executor_id=pk, data=dict(body.validated_data))
        return ok(ExecutorSerializer(executor).data, message="执行器信息更新成功")

    @extend_schema(request=ExecutorStatusUpdateSerializer,
                   responses={200: envelope("ExecutorStatusChanged", ExecutorStatusChangeSerializer()),
                              **errors(400, 404)})
    @action(detail=True, methods=["put"], url_path="status")
    def set_status(self, request, pk=None):
        body = ExecutorStatusUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        executor, previous = services.executor_set_status(
            executor_id=pk, status=body.validated_data["status"], reason=body.validated_data.get("reason", "")
        )
        change = {
            "executor_id": executor.pk, "previous_status": previous, "current_status": executor.status,
            "reason": executor.status_reason, "updated_at": executor.updated_at,
        }
        return ok(ExecutorStatusChangeSerializer(change).data, message="执行器状态更新成功")

    @extend_schema(responses={200: envelope("ExecutorDeleted"), **errors(404)})
    def destroy(self, request, pk=None):
        services.executor_delete(executor_id=pk, now=utc_now())
        return ok(message="执行器删除成功")

    @extend_schema(request=None, responses={200: envelope("ExecutorRevoked", ExecutorSerializer()), **errors(404)},
                   description="Offline, with a new secret nobody holds: the executor cannot re-register (nor sign "
                   "anything) until an admin registers its instance_id again.")
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        executor = services.executor_revoke(executor_id=pk, now=utc_now())
        return ok(ExecutorSerializer(executor).data, message="执行器已吊销")

    @extend_schema(request=None, responses={200: envelope("ExecutorSecretRotated", RotatedSecretSerializer()),
                                            **errors(404)},
                   description="A new signing secret, answered to the admin. The executor receives it by "
                   "re-registering with a request signed with its old secret.")
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request, pk=None):
        executor = services.executor_rotate_secret(executor_id=pk)
        return ok(RotatedSecretSerializer(executor).data, message="签名密钥已轮换")


class ExecutorShutdownView(APIView):
    """``POST /api/v1/executors/shutdown``, signed: the executor is stopping (the SDK says so on SIGTERM)."""

    authentication_classes = EXECUTOR_AUTHENTICATION
    permission_classes = [IsSignedExecutor]

    @extend_schema(request=None, responses={200: envelope("ExecutorShutDown"), **errors(401)},
                   description="The signing executor is shutting down: it is marked offline at once (no more "
                   "dispatches) until it registers again. Signed by the executor (401 otherwise).")
    def post(self, request):
        apply_signed_once(request, lambda: services.executor_shut_down(executor_id=request.auth.pk))
        return ok(message="执行器已下线")
