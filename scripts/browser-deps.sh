#!/usr/bin/env bash
# Installs the browser the console's browser test (tests/browser) drives: Debian's chromium package, at
# /usr/bin/chromium. Playwright is pointed at it, so no browser is ever downloaded from the internet.
# Safe to run repeatedly. Never fails the caller: without a browser the browser test skips and says why.
set -uo pipefail

if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "browser-deps: no apt-get here; install Chromium at /usr/bin/chromium (or set CHROMIUM_PATH)" >&2
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "browser-deps: installing chromium"
if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null; }; then
  echo "browser-deps: could not install chromium; the browser test will be skipped" >&2
fi
exit 0
