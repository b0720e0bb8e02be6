#!/usr/bin/env bash
# The whole test suite on SQLite, on the local MariaDB and on PostgreSQL (when it is there), the three at the
# same time: most of each run's time is spent waiting on real processes, sockets and databases, so on this
# 2-core machine the three together take ~12 minutes where one after another took ~29. Each run's output goes
# to var/test-logs/suite-<database>.log and is printed, in that order, once all have ended.
# Extra arguments go to pytest (e.g. scripts/test.sh -k callback).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
scripts/services.sh
scripts/browser-deps.sh || true  # Chromium for tests/browser (skipped when none can be installed)

PYTEST=(.venv/bin/python -m pytest -q -p no:cacheprovider)
LOGS=var/test-logs
mkdir -p "$LOGS"
labels=()

start() {  # start LABEL DATABASE_URL [pytest arguments]: runs in the background
  local label=$1 url=$2
  shift 2
  labels+=("$label")
  rm -f "$LOGS/suite-$label.rc"
  echo "=== tests on $label: started ($LOGS/suite-$label.log) ==="
  (
    set +e
    DATABASE_URL=$url "${PYTEST[@]}" "$@" >"$LOGS/suite-$label.log" 2>&1
    echo $? >"$LOGS/suite-$label.rc"
  ) &
}

began=$SECONDS
start sqlite "sqlite:///$(pwd)/var/scheduler.sqlite3" "$@"
start mariadb "mysql://root@127.0.0.1:3306/scheduler_ci" "$@"
if pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1; then
  start postgresql "postgres://postgres@127.0.0.1:5432/scheduler_ci" "$@"
else
  echo "=== PostgreSQL not reachable: skipped ==="
fi
wait

status=0
for label in "${labels[@]}"; do
  echo "=== tests on $label ==="
  cat "$LOGS/suite-$label.log"
  rc=$(cat "$LOGS/suite-$label.rc" 2>/dev/null || echo 1)
  [ "$rc" = 0 ] || status=1
done
echo "=== $(( (SECONDS - began) / 60 )) min $(( (SECONDS - began) % 60 )) s for ${labels[*]}:" \
  "$(for label in "${labels[@]}"; do echo -n "$label rc=$(cat "$LOGS/suite-$label.rc" 2>/dev/null || echo '?') "; done)==="
exit $status
