#!/bin/sh
# Installs what the test suite needs and the machine may lack: Debian's Chromium for the
# browser tests, PostgreSQL's server binaries for the storage tests, tmux for latch's terminal
# view, D-Bus with GNOME Keyring (a real Secret Service) for latch's keyring-kept vault, and
# nginx for the forward-auth test behind a real reverse proxy.
set -eu
need=""
command -v chromium >/dev/null 2>&1 || need="$need chromium"
command -v tmux >/dev/null 2>&1 || need="$need tmux"
command -v dbus-daemon >/dev/null 2>&1 || need="$need dbus-daemon"
command -v gnome-keyring-daemon >/dev/null 2>&1 || need="$need gnome-keyring"
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need="$need nginx"
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need="$need postgresql"
[ -z "$need" ] && exit 0
echo "installing:$need"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $need >/dev/null
