from django.apps import AppConfig


class LoadbalanceConfig(AppConfig):
    name = "loadbalance"
    default_auto_field = "django.db.models.BigAutoField"
