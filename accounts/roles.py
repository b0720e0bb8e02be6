"""Which roles a request's credentials carry, and which role a view's action needs."""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS

from accounts.choices import Role
from accounts.models import ApiKey

_ROLES = frozenset(Role.values)


def user_roles(user) -> frozenset[str]:
    """A Django user's roles: superusers are admins; others have the roles named by their groups."""
    if user is None or not user.is_authenticated or not user.is_active:
        return frozenset()
    if user.is_superuser:
        return frozenset({Role.ADMIN})
    cached = getattr(user, "_api_roles", None)  # one query per request, however often asked
    if cached is None:
        cached = frozenset(user.groups.filter(name__in=_ROLES).values_list("name", flat=True))
        user._api_roles = cached
    return cached


def credential_roles(request) -> frozenset[str]:
    """An API key acts with its own role (whoever owns it); users, by password, JWT or session, with theirs."""
    if isinstance(request.auth, ApiKey):
        return frozenset({request.auth.role})
    return user_roles(request.user)


def required_role(request, view) -> Role:
    """The least role that may run ``view``'s action, from what the view declares:
    ``registration_actions`` need the executor role, safe methods need viewer, ``operator_actions``
    need operator, and everything else admin."""
    action = getattr(view, "action", None) or request.method.lower()
    if action in getattr(view, "registration_actions", ()):
        return Role.EXECUTOR
    if request.method in SAFE_METHODS:
        return Role.VIEWER
    if action in getattr(view, "operator_actions", ()):
        return Role.OPERATOR
    return Role.ADMIN


def request_creator(request) -> dict:
    """``created_by`` / ``created_by_key`` for a row a request creates (tasks.services.task_create)."""
    user = request.user if getattr(request.user, "is_authenticated", False) else None
    api_key = request.auth if isinstance(request.auth, ApiKey) else None
    return {"created_by": user, "created_by_key": api_key}
