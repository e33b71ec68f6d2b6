#!/usr/bin/env bash
# Make sure a MySQL-compatible server answers for the configured [mysql] settings, then create the
# database and apply migrations. Finds a running server first; otherwise starts the local MariaDB,
# installing mariadb-server with apt when it is missing and we are root. Never touches a server that
# already answers.
set -euo pipefail
PY=${PY:-.venv/bin/python}
CONFIG=${CONFIG:-settings.toml}

probe() { "$PY" -m wxlogin.store.setup --config "$CONFIG" --check; }
need() {
  echo "wxlogin: no MySQL-compatible server answers for [mysql] in $CONFIG; $1" >&2
  exit 1
}

status=0; probe || status=$?
if [ "$status" -eq 2 ]; then exit 2; fi
if [ "$status" -eq 3 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    need "install and start one (sudo apt-get install mariadb-server), or point [mysql] at yours."
  fi
  if [ ! -x /usr/sbin/mariadbd ]; then
    command -v apt-get >/dev/null || need "install MariaDB or MySQL and start it."
    echo "wxlogin: installing mariadb-server with apt-get" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server >/dev/null
    fresh_install=1
  fi
  [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
  echo "wxlogin: starting the local MariaDB" >&2
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql
  for _ in $(seq 1 60); do
    status=0; probe || status=$?
    [ "$status" -ne 3 ] && break
    sleep 0.5
  done
fi
if [ "$status" -eq 4 ] && [ "$(id -u)" -eq 0 ] && [ "${fresh_install:-0}" = 1 ]; then
  # Debian's fresh MariaDB lets root in only through the socket; the development settings use TCP.
  mariadb -e "ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('')"
  status=0; probe || status=$?
fi
case "$status" in
  0) exec "$PY" -m wxlogin.store.setup --config "$CONFIG" ;;
  4) need "the server refused the configured user; fix user/password in [mysql] or WXLOGIN_MYSQL_PASSWORD." ;;
  *) need "it did not come up; see the MariaDB log (journalctl or /var/log/mysql)." ;;
esac
