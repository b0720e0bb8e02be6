#!/usr/bin/env bash
# The whole test suite: on SQLite, then on the local MariaDB, then on PostgreSQL when it is there.
# Extra arguments go to pytest (e.g. scripts/test.sh -k callback).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
scripts/services.sh
scripts/browser-deps.sh || true  # Chromium for tests/browser (skipped when none can be installed)

PYTEST=(.venv/bin/python -m pytest -q -p no:cacheprovider)
status=0

run() {  # run LABEL DATABASE_URL
  echo "=== tests on $1 ==="
  DATABASE_URL=$2 "${PYTEST[@]}" "${@:3}" || status=1
}

mkdir -p var
run sqlite "sqlite:///$(pwd)/var/scheduler.sqlite3" "$@"
run mariadb "mysql://root@127.0.0.1:3306/scheduler_ci" "$@"
if pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1; then
  run postgresql "postgres://postgres@127.0.0.1:5432/scheduler_ci" "$@"
else
  echo "=== PostgreSQL not reachable: skipped ==="
fi
exit $status
