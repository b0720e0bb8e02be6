#!/usr/bin/env bash
# Makes sure the local MariaDB (and PostgreSQL, when installed) answer, starting them if they are down.
set -uo pipefail

wait_for() {  # wait_for NAME COMMAND...: up to 30 s
  local name=$1; shift
  for _ in $(seq 1 60); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
  echo "services: $name did not come up" >&2
  return 1
}

mariadb_up() { mysqladmin --protocol=tcp -h127.0.0.1 -uroot ping; }
postgres_up() { pg_isready -h 127.0.0.1 -p 5432; }

if command -v mysqladmin >/dev/null 2>&1 && ! mariadb_up >/dev/null 2>&1; then
  echo "services: starting MariaDB"
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  wait_for MariaDB mariadb_up
fi
if command -v pg_isready >/dev/null 2>&1 && ! postgres_up >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
  echo "services: starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
  wait_for PostgreSQL postgres_up
fi
exit 0
