#!/usr/bin/env bash
# Sets up and runs the product on the embedded default (SQLite): the web server (API, admin, docs).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
.venv/bin/python manage.py migrate --noinput
exec .venv/bin/python manage.py runserver "${HOST:-127.0.0.1}:${PORT:-8000}"
