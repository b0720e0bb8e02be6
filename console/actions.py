"""How the console's admin actions call services: one call per object, each its own transaction, with the
successes counted and every refusal (a DomainError) reported as a message instead of an error page."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import Model
from django.http import HttpRequest, HttpResponseRedirect
from django.template.response import TemplateResponse
from rest_framework.exceptions import APIException

from scheduler_project.errors import DomainError

MAX_ERROR_MESSAGES = 10
# What a service raises when it refuses: a business rule (DomainError), a conflict or a validation failure
# (DRF exceptions, which some services share with the API).
REFUSALS = (DomainError, APIException)


def refusal_text(exc: Exception) -> str:
    """The operator-facing reason a service refused."""
    if isinstance(exc, DomainError):
        return exc.error
    detail = getattr(exc, "detail", None)
    if isinstance(detail, dict):
        return "; ".join(f"{field}: {' '.join(map(str, errors)) if isinstance(errors, list) else errors}"
                         for field, errors in detail.items())
    if isinstance(detail, list):
        return " ".join(map(str, detail))
    return str(detail if detail is not None else exc)


class RefusalsAsMessagesMixin:
    """Change forms check what the services check; a refusal that still gets through (a concurrent change)
    is reported on the page as a message instead of an error page."""

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except REFUSALS as exc:
            messages.error(request, f"Not saved: {refusal_text(exc)}")
            return HttpResponseRedirect(request.get_full_path())


def run_each(request: HttpRequest, objects: Iterable[Model], call: Callable[[Any], Any], *, done: str) -> int:
    """Apply ``call`` to every object; report "<done> N <things>" and each refusal. Returns the count done.

    ``done`` is a past participle ("Paused", "Triggered") used in the success message.
    """
    succeeded: list[Model] = []
    refused: list[str] = []
    verbose = None
    for obj in objects:
        verbose = verbose or obj._meta
        try:
            call(obj)
        except REFUSALS as exc:
            refused.append(f"{obj}: {refusal_text(exc)}")
        else:
            succeeded.append(obj)
    if succeeded and verbose is not None:
        noun = verbose.verbose_name if len(succeeded) == 1 else verbose.verbose_name_plural
        names = ", ".join(str(obj) for obj in succeeded[:5]) + (" …" if len(succeeded) > 5 else "")
        messages.success(request, f"{done} {len(succeeded)} {noun}: {names}")
    for line in refused[:MAX_ERROR_MESSAGES]:
        messages.error(request, line)
    if len(refused) > MAX_ERROR_MESSAGES:
        messages.error(request, f"… and {len(refused) - MAX_ERROR_MESSAGES} more refused")
    return len(succeeded)


def intermediate_page(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset, *, form: forms.Form, action: str, title: str,
    submit: str, intro: str = "",
) -> TemplateResponse:
    """The page an action shows to ask for input (trigger parameters, a status reason) before it runs.

    It posts back to the changelist with the same action and selection, plus ``apply`` once confirmed.
    """
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "subtitle": None,
        "opts": modeladmin.model._meta,
        "objects": list(queryset[:50]),
        "count": queryset.count(),
        "form": form,
        "action": action,
        "submit": submit,
        "intro": intro,
        "selected_ids": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
        "select_across": request.POST.get("select_across", "0"),
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "media": modeladmin.media + form.media,
    }
    return TemplateResponse(request, "admin/console/action_form.html", context)


class HistoryAdminMixin:
    """A history the scheduler and executors write (runs, workflow runs): operators read it and act on it through
    the changelist's actions (stop, cancel, re-run); nobody adds, edits or deletes a row by hand. The change
    permission stays for the list, where the actions live."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request)

    def has_delete_permission(self, request, obj=None):
        return False
