#!/usr/bin/env bash
# Installs the Debian packages Banyan's tests and demo talk to, only those that are missing.
# Usage: system_packages.sh [EXTRA_PACKAGE …]
set -euo pipefail

wanted=(
  openssh-server openssh-sftp-server   # a real sshd for the SFTP scanner's tests
  unixodbc                             # the ODBC driver manager pyodbc loads
  odbc-postgresql odbc-mariadb libsqliteodbc   # real ODBC drivers for the database scanner
  sqlite3                              # loads SQLite schemas in the tests
  chromium                             # opens the HTML report in the tests, driven by playwright
  nginx                                # a real load balancer in front of several gateways in the tests
  "$@"                                 # extra packages a target asks for (make bench: wrk)
)

missing=()
for pkg in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null; then
  echo "missing system packages: ${missing[*]} (no apt-get here: install them by hand)" >&2
  exit 1
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing system packages: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
