"""``/api/v1/alerts/...``: channels and rules (admin to change; reads show channel URLs masked), incidents and
notifications (read-only)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action

from alerts import services
from alerts.models import AlertRule, Channel, Incident, Notification
from alerts.serializers import (
    ChannelCreatedSerializer,
    ChannelSerializer,
    ChannelWriteSerializer,
    IncidentListQuery,
    IncidentSerializer,
    NotificationListQuery,
    NotificationSerializer,
    RuleSerializer,
    RuleWriteSerializer,
)
from core.clock import utc_now
from scheduler_project.envelope import created, ok
from scheduler_project.errors import ErrorCode, reject_impossible_ids
from scheduler_project.fields import EmptyBodySerializer, optional_body
from scheduler_project.pagination import paginate, parse_page_request
from scheduler_project.schema import PAGING_PARAMETERS, envelope, errors, list_envelope


class _AlertsViewSet(viewsets.ViewSet):
    lookup_value_regex = "[^/]+"

    def initial(self, request, *args, **kwargs):
        request.sensitive_fields = {"url"}  # a channel URL holds credentials: errors never echo it
        super().initial(request, *args, **kwargs)
        reject_impossible_ids(kwargs, {"pk": ErrorCode.NOT_FOUND})


def _page(request, queryset, serializer_class):
    page = paginate(queryset, parse_page_request(request.query_params))
    return ok(serializer_class(page.items, many=True).data, **page.meta())


class ChannelViewSet(_AlertsViewSet):
    """Alert channels. The URL is write-only: responses show it masked (scheme only)."""

    @extend_schema(parameters=PAGING_PARAMETERS,
                   responses={200: list_envelope("AlertChannelList", ChannelSerializer), **errors(400)})
    def list(self, request):
        return _page(request, Channel.objects.order_by("name"), ChannelSerializer)

    @extend_schema(responses={200: envelope("AlertChannel", ChannelSerializer()), **errors(404)})
    def retrieve(self, request, pk=None):
        return ok(ChannelSerializer(services.get_channel(pk)).data)

    @extend_schema(request=ChannelWriteSerializer,
                   responses={201: envelope("AlertChannelCreated", ChannelCreatedSerializer()), **errors(400, 409)})
    def create(self, request):
        body = ChannelWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        channel = services.channel_save(data=dict(body.validated_data))
        return created(ChannelCreatedSerializer(channel).data, message="created")

    @extend_schema(request=ChannelWriteSerializer,
                   responses={200: envelope("AlertChannelUpdated", ChannelSerializer()), **errors(400, 404, 409)},
                   description="Fields left out keep their values; a URL left out keeps the stored one.")
    def update(self, request, pk=None):
        body = ChannelWriteSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        channel = services.channel_save(channel=services.get_channel(pk), data=dict(body.validated_data))
        return ok(ChannelSerializer(channel).data)

    @extend_schema(responses={200: envelope("AlertChannelDeleted"), **errors(404)})
    def destroy(self, request, pk=None):
        services.channel_delete(channel_id=pk)
        return ok(message="deleted")

    @extend_schema(request=EmptyBodySerializer,
                   responses={202: envelope("AlertChannelTestQueued", NotificationSerializer()), **errors(400, 404)},
                   description="Queues a test notification; the leader sends it within a second or so. Its "
                               "status and last error show under /alerts/notifications.")
    @action(detail=True, methods=["post"], url_path="test")
    def send_test(self, request, pk=None):
        optional_body(EmptyBodySerializer, request)
        notification = services.channel_test(channel_id=pk, now=utc_now())
        return ok(NotificationSerializer(notification).data, message="queued", status=202)


class RuleViewSet(_AlertsViewSet):
    """The global rule (task_id null) and per-task overrides."""

    @extend_schema(parameters=PAGING_PARAMETERS,
                   responses={200: list_envelope("AlertRuleList", RuleSerializer), **errors(400)})
    def list(self, request):
        return _page(request, AlertRule.objects.prefetch_related("channels").order_by("key"), RuleSerializer)

    @extend_schema(responses={200: envelope("AlertRule", RuleSerializer()), **errors(404)})
    def retrieve(self, request, pk=None):
        return ok(RuleSerializer(services.get_rule(pk)).data)

    @extend_schema(request=RuleWriteSerializer,
                   responses={201: envelope("AlertRuleCreated", RuleSerializer()), **errors(400, 404, 409)})
    def create(self, request):
        body = RuleWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        rule = services.rule_save(data=dict(body.validated_data))
        return created(RuleSerializer(services.get_rule(rule.pk)).data, message="created")

    @extend_schema(request=RuleWriteSerializer,
                   responses={200: envelope("AlertRuleUpdated", RuleSerializer()), **errors(400, 404)},
                   description="Fields left out keep their values; task_id cannot change.")
    def update(self, request, pk=None):
        body = RuleWriteSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        data = {key: value for key, value in body.validated_data.items() if key != "task_id"}
        rule = services.rule_save(rule=services.get_rule(pk), data=data)
        return ok(RuleSerializer(services.get_rule(rule.pk)).data)

    @extend_schema(responses={200: envelope("AlertRuleDeleted"), **errors(404)})
    def destroy(self, request, pk=None):
        services.rule_delete(rule_id=pk)
        return ok(message="deleted")


class IncidentViewSet(_AlertsViewSet):
    """One per (task, executor or node, condition) while open; ``count`` holds the repeats."""

    @extend_schema(parameters=[IncidentListQuery, *PAGING_PARAMETERS],
                   responses={200: list_envelope("IncidentList", IncidentSerializer), **errors(400)})
    def list(self, request):
        query = IncidentListQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        filters = query.validated_data
        incidents = Incident.objects.order_by("-opened_at", "id")
        if filters.get("state"):
            incidents = incidents.filter(resolved_at__isnull=filters["state"] == "open")
        for name in ("task_id", "executor_id"):
            if filters.get(name):
                incidents = incidents.filter(**{name: filters[name]})
        return _page(request, incidents, IncidentSerializer)

    @extend_schema(responses={200: envelope("Incident", IncidentSerializer()), **errors(404)})
    def retrieve(self, request, pk=None):
        return ok(IncidentSerializer(services.get_incident(pk)).data)


class NotificationViewSet(_AlertsViewSet):
    """Each message to each channel with its delivery state: status, attempts, last error."""

    @extend_schema(parameters=[NotificationListQuery, *PAGING_PARAMETERS],
                   responses={200: list_envelope("NotificationList", NotificationSerializer), **errors(400)})
    def list(self, request):
        query = NotificationListQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        notifications = Notification.objects.order_by("-created_at", "id")
        for name in ("status", "channel_id"):
            if query.validated_data.get(name):
                notifications = notifications.filter(**{name: query.validated_data[name]})
        return _page(request, notifications, NotificationSerializer)
