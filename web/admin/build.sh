#!/bin/sh
# Builds the admin web UI that aloftd serves at /admin/:
#   npm ci (when node_modules is missing or older than package-lock.json),
#   vite build -> OUTPUT (plain files and .gz copies).
# Usage: web/admin/build.sh [OUTPUT]
#   default: build/admin, relative to the repository root — where aloftd
#   (build/bin/aloftd) looks by default (<its directory>/../admin).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-$root/build/admin}
# The argument is relative to where we were started; the build runs in $here.
case $out in /*) ;; *) out=$PWD/$out ;; esac

command -v npm >/dev/null 2>&1 || {
	echo "build.sh: npm not found; install Node.js 20.19+ (scripts/deps.sh does)" >&2
	exit 2
}

cd "$here"
# npm ci writes node_modules/.package-lock.json; it is newer than the
# committed lockfile unless the lockfile changed since the last install.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
	npm ci --no-audit --no-fund
fi
npm run --silent build -- --outDir "$out"
echo "build.sh: admin UI in $out ($(cat "$out"/index.html "$out"/assets/*.js "$out"/assets/*.css | wc -c) bytes)"
