#!/usr/bin/env bash
# Installs the Debian packages Banyan's tests and demo talk to, only those that are missing.
set -euo pipefail

# package name -> a file that proves it is installed
declare -A wanted=(
  [openssh-server]=/usr/sbin/sshd
  [openssh-sftp-server]=/usr/lib/openssh/sftp-server
  [unixodbc]=/usr/bin/isql
)

missing=()
for pkg in "${!wanted[@]}"; do
  [ -e "${wanted[$pkg]}" ] || missing+=("$pkg")
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
