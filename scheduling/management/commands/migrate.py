"""Django's ``migrate``, without the statement time limit every other connection has
(DATABASE_STATEMENT_TIMEOUT): rebuilding a big table may rightly take longer than any request or tick."""

from django.core.management.commands.migrate import Command as DjangoMigrate
from django.db import connections

UNLIMITED = {"postgresql": "SET statement_timeout = 0"}
UNLIMITED_MARIADB = "SET SESSION max_statement_time = 0"


class Command(DjangoMigrate):
    def handle(self, *args, **options):
        connection = connections[options["database"]]
        sql = UNLIMITED_MARIADB if connection.vendor == "mysql" and connection.mysql_is_mariadb else \
            UNLIMITED.get(connection.vendor)
        if sql is None:
            return super().handle(*args, **options)
        with connection.cursor() as cursor:
            cursor.execute(sql)
        try:
            return super().handle(*args, **options)
        finally:  # whatever runs next in this process (tests, quickstart) reconnects with the limit
            connection.close()
