#!/bin/sh
# CTest's entry for the browser tests: installs playwright-core from the
# lockfile when needed, builds the update page into BUILD/www.bin and the
# admin UI into BUILD/admin/ if they are missing or stale, then runs every
# *.test.mjs here with node's test runner against the programs in BUILD/bin. Screenshots go to BUILD/test-artifacts/.
# Usage: tests/browser/run.sh BUILD_DIR
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$(cd "${1:?usage: run.sh BUILD_DIR}" && pwd)

if [ ! -f "$here/node_modules/.package-lock.json" ] ||
	[ "$here/package-lock.json" -nt "$here/node_modules/.package-lock.json" ]; then
	(cd "$here" && npm ci --no-audit --no-fund)
fi
# missing, or older than a source of it: built again (a build directory
# that only ctest runs in, such as build-asan, would test an old page)
stale() { # ARTIFACT SRCDIR
	[ ! -f "$1" ] || [ -n "$(find "$2/src" "$2/index.html" "$2/package-lock.json" -newer "$1" -print -quit)" ]
}
stale "$build/www.bin" "$root/web/device" && "$root/web/device/build.sh" "$build/bin/aloft" "$build/www.bin"
stale "$build/admin/index.html" "$root/web/admin" && "$root/web/admin/build.sh" "$build/admin"

cd "$here"
ALOFT_BUILD=$build ALOFT_ARTIFACTS=${ALOFT_ARTIFACTS:-$build/test-artifacts} \
	exec node --test --test-timeout=300000 ./*.test.mjs
