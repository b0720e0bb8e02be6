from django.core.management.base import BaseCommand, CommandError

from accounts import services
from core.clock import utc_now


class Command(BaseCommand):
    help = "Revoke an API key by its prefix (the 8 characters after dts_), or by the key itself."

    def add_arguments(self, parser):
        parser.add_argument("prefix")

    def handle(self, *args, prefix, **options):
        try:
            api_key = services.api_key_revoke(prefix=prefix, now=utc_now())
        except services.UnknownApiKey as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"Revoked API key '{api_key.name}' (prefix {api_key.prefix}) at "
                          f"{api_key.revoked_at.isoformat()}.")
