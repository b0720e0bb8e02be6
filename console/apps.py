from django.contrib.admin.apps import AdminConfig


class ConsoleAdminConfig(AdminConfig):
    """django.contrib.admin, with the operators' console as the default site (``admin.site``)."""

    default_site = "console.site.ConsoleAdminSite"
