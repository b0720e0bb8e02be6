from drf_spectacular.utils import extend_schema
from rest_framework import serializers as drf_serializers
from rest_framework import viewsets
from rest_framework.decorators import action

from accounts.roles import request_creator
from core.clock import utc_now
from executions.selectors import task_stats
from executions.serializers import TriggeredExecutionSerializer
from scheduler_project.envelope import created, ok
from scheduler_project.errors import ErrorCode, reject_impossible_ids
from scheduler_project.fields import EmptyBodySerializer, optional_body
from scheduler_project.pagination import paginate, parse_page_request
from scheduler_project.schema import PAGING_PARAMETERS, envelope, errors, list_envelope
from tasks import services
from tasks.choices import TaskStatus
from tasks.models import TaskExecutor
from tasks.selectors import calendar_get, calendar_list, planned_fires, task_get, task_list, task_must_exist
from tasks.serializers import (
    AssignCreateSerializer,
    AssignmentDetailSerializer,
    AssignmentSerializer,
    AssignUpdateSerializer,
    BackfillRequestSerializer,
    BackfillResultSerializer,
    CalendarSerializer,
    CalendarWriteSerializer,
    NextRunsQuery,
    NextRunsSerializer,
    TaskSerializer,
    TaskStatsSerializer,
    TaskStatusChangeSerializer,
    TaskUpdateSerializer,
    TaskWriteSerializer,
    TriggerSerializer,
)


class TaskListQuery(drf_serializers.Serializer):
    status = drf_serializers.ChoiceField(choices=TaskStatus.choices, required=False)
    name = drf_serializers.CharField(max_length=255, required=False)


def _status_change(task_id, previous, current):
    return {"task_id": task_id, "previous_status": previous, "current_status": current}


class TaskViewSet(viewsets.ViewSet):
    """Spec 000 §5: tasks, their triggers and their executor assignments."""

    lookup_value_regex = "[^/]+"
    # Reads need viewer, other writes admin (accounts.roles).
    operator_actions = {"trigger", "pause", "resume", "backfill"}

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        reject_impossible_ids(kwargs, {"pk": ErrorCode.TASK_NOT_FOUND, "executor_id": ErrorCode.EXECUTOR_NOT_FOUND})

    @extend_schema(
        parameters=[
            TaskListQuery,
            *PAGING_PARAMETERS,
        ],
        responses={200: list_envelope("TaskList", TaskSerializer), **errors(400)},
        description="Deleted tasks are listed only when asked for with status=deleted.",
    )
    def list(self, request):
        query = TaskListQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        page = paginate(task_list(**query.validated_data), parse_page_request(request.query_params))
        return ok(TaskSerializer(page.items, many=True).data, **page.meta())

    @extend_schema(request=TaskWriteSerializer,
                   responses={201: envelope("TaskCreated", TaskSerializer()), **errors(400, 409)})
    def create(self, request):
        body = TaskWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        task = services.task_create(data=body.validated_data, now=utc_now(), **request_creator(request))
        return created(TaskSerializer(task_get(task.pk)).data, message="任务创建成功")

    @extend_schema(responses={200: envelope("TaskDetail", TaskSerializer()), **errors(404)})
    def retrieve(self, request, pk=None):
        return ok(TaskSerializer(task_get(pk)).data)

    @extend_schema(request=TaskUpdateSerializer,
                   responses={200: envelope("TaskUpdated", TaskSerializer()), **errors(400, 404, 409)})
    def update(self, request, pk=None):
        body = TaskUpdateSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        services.task_update(task_id=pk, data=body.validated_data, now=utc_now())
        return ok(TaskSerializer(task_get(pk)).data, message="任务更新成功")

    @extend_schema(responses={200: envelope("TaskDeleted"), **errors(404, 409)})
    def destroy(self, request, pk=None):
        services.task_delete(task_id=pk, now=utc_now())
        return ok(message="任务删除成功")

    @extend_schema(request=TriggerSerializer,
                   responses={200: envelope("TaskTriggered", TriggeredExecutionSerializer()), **errors(400, 404, 409)})
    @action(detail=True, methods=["post"])
    def trigger(self, request, pk=None):
        body = optional_body(TriggerSerializer, request)
        execution = services.task_trigger(task_id=pk, parameters=body.get("parameters"), now=utc_now())
        return ok(TriggeredExecutionSerializer(execution).data, message="任务触发成功")

    @extend_schema(request=None,
                   responses={200: envelope("TaskPaused", TaskStatusChangeSerializer()), **errors(404, 409)})
    @action(detail=True, methods=["post"])
    def pause(self, request, pk=None):
        optional_body(EmptyBodySerializer, request)
        previous, current = services.task_pause(task_id=pk, now=utc_now())
        return ok(_status_change(pk, previous, current), message="任务暂停成功")

    @extend_schema(request=None,
                   responses={200: envelope("TaskResumed", TaskStatusChangeSerializer()), **errors(404, 409)})
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        optional_body(EmptyBodySerializer, request)
        previous, current = services.task_resume(task_id=pk, now=utc_now())
        return ok(_status_change(pk, previous, current), message="任务恢复成功")

    @extend_schema(parameters=[NextRunsQuery],
                   responses={200: envelope("TaskNextRuns", NextRunsSerializer()), **errors(400, 404)},
                   description="Preview the next fire times (whatever the task's status).")
    @action(detail=True, methods=["get"], url_path="next-runs")
    def next_runs(self, request, pk=None):
        query = NextRunsQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        task = task_get(pk)
        fires = planned_fires(task, utc_now(), query.validated_data["count"])
        preview = {"task_id": task.pk, "schedule_type": task.schedule_type, "timezone": task.timezone,
                   "next_runs": [fire.scheduled_time for fire in fires if fire.blackout is None], "fires": fires}
        return ok(NextRunsSerializer(preview).data)

    @extend_schema(request=BackfillRequestSerializer,
                   responses={200: envelope("TaskBackfilled", BackfillResultSerializer()), **errors(400, 404, 409)},
                   description="Record a run (trigger_type backfill) for every fire time of the task's schedule "
                               "in [start_time, end_time], at most SCHEDULER_BACKFILL_LIMIT; asking again "
                               "creates only the runs not recorded yet.")
    @action(detail=True, methods=["post"])
    def backfill(self, request, pk=None):
        body = BackfillRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        result = services.task_backfill(task_id=pk, start=body.validated_data["start_time"],
                                        end=body.validated_data["end_time"], now=utc_now())
        return ok(BackfillResultSerializer(result).data, message="任务补跑成功")

    @extend_schema(responses={200: envelope("TaskStats", TaskStatsSerializer()), **errors(404)})
    @action(detail=True, methods=["get"])
    def stats(self, request, pk=None):
        task_must_exist(pk)
        return ok(TaskStatsSerializer(task_stats(pk, utc_now())).data)

    @extend_schema(methods=["GET"], request=None,
                   responses={200: envelope("TaskExecutorList", AssignmentDetailSerializer(many=True)), **errors(404)})
    @extend_schema(methods=["POST"], request=AssignCreateSerializer,
                   responses={201: envelope("TaskExecutorAssigned", AssignmentSerializer()),
                              **errors(400, 404, 409)})
    @action(detail=True, methods=["get", "post"], url_path="executors")
    def executors(self, request, pk=None):
        if request.method == "GET":
            task = task_get(pk)
            assignments = TaskExecutor.objects.filter(task=task).select_related("executor")
            return ok(AssignmentDetailSerializer(assignments, many=True).data)
        body = AssignCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        assignment = services.assignment_create(task_id=pk, **body.validated_data)
        return created(AssignmentSerializer(assignment).data, message="执行器分配成功")

    @extend_schema(methods=["PUT"], request=AssignUpdateSerializer,
                   responses={200: envelope("TaskExecutorUpdated", AssignmentSerializer()), **errors(400, 404)})
    @extend_schema(methods=["DELETE"], request=None,
                   responses={200: envelope("TaskExecutorUnassigned"), **errors(404)})
    @action(detail=True, methods=["put", "delete"], url_path=r"executors/(?P<executor_id>[^/]+)")
    def assignment(self, request, pk=None, executor_id=None):
        if request.method == "DELETE":
            services.assignment_delete(task_id=pk, executor_id=executor_id)
            return ok(message="执行器分配取消成功")
        body = AssignUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        assignment = services.assignment_update(task_id=pk, executor_id=executor_id, data=body.validated_data)
        return ok(AssignmentSerializer(assignment).data, message="执行器分配更新成功")



class CalendarViewSet(viewsets.ViewSet):
    """Blackout calendars: named sets of dates, date ranges and weekly windows that tasks skip."""

    lookup_value_regex = "[^/]+"

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        reject_impossible_ids(kwargs, {"pk": ErrorCode.NOT_FOUND})

    @extend_schema(parameters=PAGING_PARAMETERS,
                   responses={200: list_envelope("CalendarList", CalendarSerializer), **errors(400)})
    def list(self, request):
        page = paginate(calendar_list(), parse_page_request(request.query_params))
        return ok(CalendarSerializer(page.items, many=True).data, **page.meta())

    @extend_schema(request=CalendarWriteSerializer,
                   responses={201: envelope("CalendarCreated", CalendarSerializer()), **errors(400, 409)})
    def create(self, request):
        body = CalendarWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        calendar = services.calendar_create(data=body.validated_data)
        return created(CalendarSerializer(calendar_get(calendar.pk)).data, message="日历创建成功")

    @extend_schema(responses={200: envelope("CalendarDetail", CalendarSerializer()), **errors(404)})
    def retrieve(self, request, pk=None):
        return ok(CalendarSerializer(calendar_get(pk)).data)

    @extend_schema(request=CalendarWriteSerializer,
                   responses={200: envelope("CalendarUpdated", CalendarSerializer()), **errors(400, 404, 409)})
    def update(self, request, pk=None):
        body = CalendarWriteSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        services.calendar_update(calendar_id=pk, data=body.validated_data)
        return ok(CalendarSerializer(calendar_get(pk)).data, message="日历更新成功")

    @extend_schema(responses={200: envelope("CalendarDeleted"), **errors(404)})
    def destroy(self, request, pk=None):
        services.calendar_delete(calendar_id=pk)
        return ok(message="日历删除成功")
