"""OpenAPI security schemes of the API's authentication classes (imported by AccountsConfig.ready)."""

from drf_spectacular.authentication import BasicScheme
from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "dts_<prefix>_<secret>",
                "description": "An API key (created in the admin or with `manage.py create_api_key`)."}


class RegistrationKeyScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.RegistrationKeyAuthentication"
    name = "registrationKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer",
                "description": "SCHEDULER_REGISTRATION_KEY: accepted by POST /api/v1/executors/register only."}

    def get_security_requirement(self, auto_schema):
        view = auto_schema.view  # listed only where accounts.permissions.HasRole accepts it
        return {self.name: []} if getattr(view, "action", None) in getattr(view, "registration_actions", ()) else None


class JWTScheme(SimpleJWTScheme):
    target_class = "accounts.authentication.JWTAuthentication"


class PasswordScheme(BasicScheme):
    target_class = "accounts.authentication.BasicAuthentication"
