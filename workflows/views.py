from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action

from core.clock import utc_now
from scheduler_project.envelope import created, ok
from scheduler_project.errors import ErrorCode, reject_impossible_ids
from scheduler_project.fields import EmptyBodySerializer, optional_body
from scheduler_project.pagination import paginate, parse_page_request
from scheduler_project.schema import PAGING_PARAMETERS, envelope, errors, list_envelope
from workflows import services
from workflows.selectors import run_detail, run_list, workflow_get, workflow_list
from workflows.serializers import (
    ChainSerializer,
    RunListQuery,
    WorkflowRunDetailSerializer,
    WorkflowRunSerializer,
    WorkflowSerializer,
    WorkflowTriggerSerializer,
    WorkflowWriteSerializer,
)


def _split(data: dict) -> tuple[dict, list | None, list | None]:
    """(the workflow's own fields, its nodes, its edges) of a validated body."""
    fields = dict(data)
    return fields, fields.pop("nodes", None), fields.pop("edges", None)


class WorkflowViewSet(viewsets.ViewSet):
    """Workflows: DAGs of tasks (README "Workflows"), their runs and manual triggers."""

    lookup_value_regex = "[^/]+"
    operator_actions = {"trigger"}  # reads need viewer, other writes admin (accounts.roles)

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        reject_impossible_ids(kwargs, {"pk": ErrorCode.WORKFLOW_NOT_FOUND})

    @extend_schema(parameters=PAGING_PARAMETERS,
                   responses={200: list_envelope("WorkflowList", WorkflowSerializer), **errors(400)})
    def list(self, request):
        page = paginate(workflow_list(), parse_page_request(request.query_params))
        return ok(WorkflowSerializer(page.items, many=True).data, **page.meta())

    @extend_schema(request=WorkflowWriteSerializer,
                   responses={201: envelope("WorkflowCreated", WorkflowSerializer()), **errors(400, 409)})
    def create(self, request):
        body = WorkflowWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        fields, nodes, edges = _split(body.validated_data)
        workflow = services.workflow_create(data=fields, nodes=nodes, edges=edges or [], now=utc_now())
        return created(WorkflowSerializer(workflow_get(workflow.pk)).data, message="工作流创建成功")

    @extend_schema(request=ChainSerializer,
                   responses={201: envelope("WorkflowChainCreated", WorkflowSerializer()), **errors(400, 409)},
                   description="A chain of tasks as a workflow (each after the previous one); the first task's "
                               "schedule moves to the workflow and the task is paused.")
    @action(detail=False, methods=["post"])
    def chain(self, request):
        body = ChainSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        workflow = services.chain_create(now=utc_now(), **body.validated_data)
        return created(WorkflowSerializer(workflow_get(workflow.pk)).data, message="工作流创建成功")

    @extend_schema(responses={200: envelope("WorkflowDetail", WorkflowSerializer()), **errors(404)})
    def retrieve(self, request, pk=None):
        return ok(WorkflowSerializer(workflow_get(pk)).data)

    @extend_schema(request=WorkflowWriteSerializer,
                   responses={200: envelope("WorkflowUpdated", WorkflowSerializer()), **errors(400, 404, 409)})
    def update(self, request, pk=None):
        body = WorkflowWriteSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        fields, nodes, edges = _split(body.validated_data)
        services.workflow_update(workflow_id=pk, data=fields, nodes=nodes, edges=edges, now=utc_now())
        return ok(WorkflowSerializer(workflow_get(pk)).data, message="工作流更新成功")

    @extend_schema(responses={200: envelope("WorkflowDeleted"), **errors(404, 409)})
    def destroy(self, request, pk=None):
        services.workflow_delete(workflow_id=pk)
        return ok(message="工作流删除成功")

    @extend_schema(request=WorkflowTriggerSerializer,
                   responses={200: envelope("WorkflowTriggered", WorkflowRunSerializer()), **errors(400, 404, 409)})
    @action(detail=True, methods=["post"])
    def trigger(self, request, pk=None):
        body = optional_body(WorkflowTriggerSerializer, request)
        run = services.workflow_trigger(workflow_id=pk, parameters=body.get("parameters"), now=utc_now())
        return ok(WorkflowRunSerializer(run).data, message="工作流触发成功")

    @extend_schema(parameters=[RunListQuery, *PAGING_PARAMETERS],
                   responses={200: list_envelope("WorkflowRunList", WorkflowRunSerializer), **errors(400, 404)})
    @action(detail=True, methods=["get"])
    def runs(self, request, pk=None):
        query = RunListQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        workflow_get(pk)
        page = paginate(run_list(pk, query.validated_data.get("status")), parse_page_request(request.query_params))
        return ok(WorkflowRunSerializer(page.items, many=True).data, **page.meta())


class WorkflowRunViewSet(viewsets.ViewSet):
    """One workflow run: its nodes' states, cancel, re-run from its failures."""

    lookup_value_regex = "[^/]+"
    operator_actions = {"cancel", "rerun"}

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        reject_impossible_ids(kwargs, {"pk": ErrorCode.WORKFLOW_RUN_NOT_FOUND})

    @extend_schema(responses={200: envelope("WorkflowRunDetail", WorkflowRunDetailSerializer()), **errors(404)})
    def retrieve(self, request, pk=None):
        return ok(WorkflowRunDetailSerializer(run_detail(pk)).data)

    @extend_schema(request=None,
                   responses={200: envelope("WorkflowRunCancelled", WorkflowRunSerializer()), **errors(404, 409)})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        optional_body(EmptyBodySerializer, request)
        run = services.run_cancel(run_id=pk, now=utc_now())
        return ok(WorkflowRunSerializer(run).data, message="工作流运行已取消")

    @extend_schema(request=None,
                   responses={200: envelope("WorkflowRunRerun", WorkflowRunSerializer()), **errors(404, 409)})
    @action(detail=True, methods=["post"])
    def rerun(self, request, pk=None):
        optional_body(EmptyBodySerializer, request)
        run = services.run_rerun(run_id=pk, now=utc_now())
        return ok(WorkflowRunSerializer(run).data, message="工作流已从失败节点重新运行")
