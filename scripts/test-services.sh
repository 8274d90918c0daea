#!/usr/bin/env bash
# Installs the servers and the browser the test suite runs against (redis-server, PostgreSQL, Chromium),
# from Debian's packages, when they are missing. Tests start their own instances on 127.0.0.1.
# Without root (or without apt) it says loudly what is missing; those tests then skip, except in CI.
set -uo pipefail

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  need+=(postgresql)
fi
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing test services: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  exit $?
fi
echo "*** NOTICE: cannot install ${need[*]} (needs root and apt-get); the tests that need them will skip ***" >&2
