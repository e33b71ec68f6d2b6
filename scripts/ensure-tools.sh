#!/usr/bin/env bash
# Debian tools the tests and the benchmark use: nginx (the two-process test behind a proxy), wrk (make
# bench), and mariadbd + mariadb-install-db (the reliability suite's private MariaDB instance).
set -euo pipefail
missing=()
[ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v wrk >/dev/null || missing+=(wrk)
{ [ -x /usr/sbin/mariadbd ] && command -v mariadb-install-db >/dev/null; } || missing+=(mariadb-server)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "wxlogin: installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "wxlogin: please install ${missing[*]} (sudo apt-get install ${missing[*]}); tests that need them fail without" >&2
  exit 1
fi
