from __future__ import annotations

from rest_framework.permissions import BasePermission

from accounts.authentication import RegistrationKey
from accounts.choices import GRANTED_BY, Role
from accounts.roles import credential_roles, required_role
from scheduler_project.fields import secrets_visible


class HasRole(BasePermission):
    """The API's default permission: the request's credentials must carry a role that grants what the view's
    action needs (``accounts.roles.required_role``). The executor registration key is accepted only for
    ``registration_actions``. Without credentials DRF answers 401; with too weak a role, 403."""

    message = "your role does not allow this"

    def has_permission(self, request, view) -> bool:
        secrets_visible.set(Role.ADMIN in credential_roles(request))  # what its answer may show (fields.py)
        needed = required_role(request, view)
        if isinstance(request.auth, RegistrationKey):
            if needed == Role.EXECUTOR:
                return True
            self.message = "the executor registration key only registers executors"
            return False
        roles = credential_roles(request)
        if roles & GRANTED_BY[needed]:
            return True
        held = ", ".join(sorted(roles)) or "none"
        wanted = " or ".join(sorted(GRANTED_BY[needed]))
        self.message = f"this needs the role {wanted}; the credentials have: {held}"
        return False


class SecretsHiddenByDefault:
    """Middleware: every request starts with secret values hidden (``secrets_visible`` False), whatever an
    earlier request on the same thread was allowed; ``HasRole`` then lifts it for admins."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        token = secrets_visible.set(False)
        try:
            return self.get_response(request)
        finally:
            secrets_visible.reset(token)
