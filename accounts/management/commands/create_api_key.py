from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from accounts import services
from accounts.choices import Role


class Command(BaseCommand):
    help = "Create an API key; the key is printed alone on the last line (it is not stored and not shown again)."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True, help="what the key is for")
        parser.add_argument("--role", required=True, choices=Role.values)
        parser.add_argument("--user", help="username of the key's owner (optional)")

    def handle(self, *args, name, role, user, **options):
        try:
            api_key, raw_key = services.api_key_create(name=name, role=role, username=user,
                                                       created_by="manage.py create_api_key")
        except get_user_model().DoesNotExist:
            raise CommandError(f"no user {user!r}") from None
        self.stdout.write(f"Created API key '{api_key.name}' (role {api_key.role}, prefix {api_key.prefix}). "
                          "Store it now; it is not shown again:")
        self.stdout.write(raw_key)
