#!/bin/sh
# Install the Debian packages aloft needs to build, test and measure itself.
# Quiet when everything is present. As root it installs what is missing;
# otherwise it prints the exact command to run and exits 1.
set -eu

PACKAGES="cmake gcc make pkg-config libcmocka-dev libcjson-dev clang libclang-rt-14-dev
gcc-riscv64-unknown-elf gcc-arm-none-eabi libnewlib-dev libnewlib-arm-none-eabi valgrind python3
libmicrohttpd-dev libcurl4-openssl-dev libssl-dev curl nodejs chromium libsqlite3-dev time libpq-dev postgresql openssl wrk nginx-light
libmosquitto-dev mosquitto xz-utils zstd bsdiff xdelta3 libdbus-1-dev dbus-daemon bind9-dnsutils"

missing=""
for p in $PACKAGES; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    [ "$status" = installed ] || missing="$missing $p"
done
# Debian's nodejs comes without npm; NodeSource's (on these machines) bundles it.
command -v npm >/dev/null 2>&1 || missing="$missing npm"
[ -z "$missing" ] && exit 0
missing=${missing# }

install="apt-get install -y --no-install-recommends $missing"
if [ "$(id -u)" -ne 0 ]; then
    echo "aloft needs these Debian packages: $missing" >&2
    echo "install them with:" >&2
    echo "  sudo $install" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
echo "deps.sh: installing $missing" >&2
# Refresh the package lists only when apt does not know a package yet
# (a fresh container ships without lists), or when the install fails on them.
need_update=no
for p in $missing; do
    if ! apt-cache show "$p" >/dev/null 2>&1; then
        need_update=yes
        break
    fi
done
[ "$need_update" = yes ] && apt-get update -q
# shellcheck disable=SC2086
if ! apt-get install -y -q --no-install-recommends $missing </dev/null; then
    [ "$need_update" = yes ] && exit 1
    apt-get update -q
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $missing </dev/null
fi
