#!/bin/sh
# Builds the device's update page into a LittleFS image for a www slot:
#   npm ci (when node_modules is missing or older than package-lock.json),
#   vite build -> web/device/dist/ (gzipped assets), aloft mkfs -> www.bin.
# Usage: web/device/build.sh [ALOFT_BINARY [OUTPUT]]
#   defaults: build/bin/aloft and build/www.bin, relative to the repository root.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
aloft=${1:-$root/build/bin/aloft}
out=${2:-$root/build/www.bin}
# Arguments are relative to where we were started; the build runs in $here.
case $aloft in /*) ;; */*) aloft=$PWD/$aloft ;; esac
case $out in /*) ;; *) out=$PWD/$out ;; esac

command -v npm >/dev/null 2>&1 || {
	echo "build.sh: npm not found; install Node.js 20.19+ (scripts/deps.sh does)" >&2
	exit 2
}
[ -x "$aloft" ] || {
	echo "build.sh: $aloft not found; build it first (make build)" >&2
	exit 2
}

cd "$here"
# npm ci writes node_modules/.package-lock.json; it is newer than the
# committed lockfile unless the lockfile changed since the last install.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
	npm ci --no-audit --no-fund
fi
npm run --silent build
mkdir -p "$(dirname "$out")"
"$aloft" mkfs dist -o "$out"
echo "build.sh: $out ($(wc -c <"$out") bytes; page $(cat dist/*.gz dist/*/*.gz | wc -c) bytes gzipped)"
