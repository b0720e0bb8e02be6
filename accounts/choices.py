from django.db import models


class Role(models.TextChoices):
    """What a credential may do. Django users get roles through groups of these names (superusers are
    admins); an API key has exactly one."""

    VIEWER = "viewer", "Viewer (read)"
    OPERATOR = "operator", "Operator (read, trigger/pause/resume tasks, stop executions)"
    ADMIN = "admin", "Admin (everything)"
    EXECUTOR = "executor", "Executor (register executors only)"


# The roles that satisfy a requirement: admin satisfies every one; executor only registration.
GRANTED_BY: dict[str, frozenset[str]] = {
    Role.VIEWER: frozenset({Role.VIEWER, Role.OPERATOR, Role.ADMIN}),
    Role.OPERATOR: frozenset({Role.OPERATOR, Role.ADMIN}),
    Role.ADMIN: frozenset({Role.ADMIN}),
    Role.EXECUTOR: frozenset({Role.EXECUTOR, Role.ADMIN}),
}
