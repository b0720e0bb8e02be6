from __future__ import annotations

from rest_framework.permissions import BasePermission

from accounts.authentication import RegistrationKey
from accounts.choices import GRANTED_BY, Role
from accounts.roles import credential_roles, required_role


class HasRole(BasePermission):
    """The API's default permission: the request's credentials must carry a role that grants what the view's
    action needs (``accounts.roles.required_role``). The executor registration key is accepted only for
    ``registration_actions``. Without credentials DRF answers 401; with too weak a role, 403."""

    message = "your role does not allow this"

    def has_permission(self, request, view) -> bool:
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
