#!/usr/bin/env bash
# The benchmark suite (issue #8): bootstrap, the bench's own requirements (peers, profilers) and wrk,
# then bench/run.py. Needs MariaDB on 127.0.0.1:3306 (root, no password) and Redis on 127.0.0.1:6379.
# Arguments pass through: scripts/bench.sh --quick, scripts/bench.sh --only burst.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/bootstrap.sh

stamp=.venv/.bench-requirements.sha256
wanted=$(sha256sum bench/requirements.txt | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
  echo "bench: installing bench/requirements.txt"
  .venv/bin/python -m pip install -q --disable-pip-version-check -r bench/requirements.txt
  echo "$wanted" > "$stamp"
fi

if ! command -v wrk >/dev/null 2>&1; then
  echo "bench: installing wrk"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq wrk >/dev/null
fi

exec .venv/bin/python -m bench.run "$@"
