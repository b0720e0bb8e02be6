#!/usr/bin/env bash
# Sets up and runs the whole product on the embedded default (SQLite): web server (API, admin, docs),
# one scheduler node, and the demo executor with demo tasks. Ctrl-C stops everything. The first start prints
# the admin user's password and an admin API key, once; the demo executor registers with a key made up per run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/python manage.py quickstart --host "${HOST:-127.0.0.1}" --port "${PORT:-8000}" \
  --executor-port "${EXECUTOR_PORT:-9090}"
