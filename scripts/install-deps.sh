#!/bin/sh
# Installs the Debian 12 packages rlhf.c builds and runs with, when any is missing.
# Needs root (or sudo) only when something is missing.
set -e
PKGS="build-essential pkg-config libopenblas-openmp-dev libyaml-dev libsqlite3-dev sqlite3 check libjansson-dev libopenmpi-dev gnuplot-nox jq valgrind"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >&2
