#!/bin/sh
# CTest install: `cmake --install` of the build into a DESTDIR with prefix
# /usr, as the Debian package lays it out; then the installed programs run
# from there: the versions agree with VERSION, aloftd starts from the
# installed configuration file and serves the installed admin UI on
# 127.0.0.1, and the installed aloft talks to it with the token it made.
# Usage: tests/install/run.sh BUILD
set -eu

build=$1
root=$(cd "$(dirname "$0")/../.." && pwd)
version=$(cat "$root/VERSION")
tmp=$(mktemp -d)
pid=
cleanup() {
	[ -z "$pid" ] || kill "$pid" 2>/dev/null || true
	[ -z "$pid" ] || wait "$pid" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "install test: $*" >&2; exit 1; }

DESTDIR=$tmp/root cmake --install "$build" --prefix /usr >"$tmp/install.log" || {
	cat "$tmp/install.log" >&2
	fail "cmake --install failed"
}
usr=$tmp/root/usr
for f in bin/aloft bin/aloftd bin/aloft-node share/aloft/admin/index.html \
	share/man/man1/aloft.1 share/man/man1/aloftd.1 share/man/man1/aloft-node.1 \
	share/bash-completion/completions/aloft share/bash-completion/completions/aloftd \
	share/bash-completion/completions/aloft-node lib/systemd/system/aloftd.service \
	share/doc/aloft/LICENSE share/doc/aloft/CHANGELOG.md lib/sysusers.d/aloft.conf; do
	[ -e "$usr/$f" ] || fail "/usr/$f was not installed"
done
conf=$tmp/root/etc/aloft/aloftd.conf
[ -f "$conf" ] || fail "/etc/aloft/aloftd.conf was not installed"
grep -q '^ExecStart=/usr/bin/aloftd --config /etc/aloft/aloftd.conf$' "$usr/lib/systemd/system/aloftd.service" ||
	fail "the unit does not start /usr/bin/aloftd with /etc/aloft/aloftd.conf"

for prog in aloft aloftd aloft-node; do
	got=$("$usr/bin/$prog" --version)
	[ "$got" = "$prog $version" ] || fail "$prog --version says '$got', VERSION says $version"
done

# The installed configuration, with the places only a system service may
# write given as flags (they win over the file).
"$usr/bin/aloftd" --config "$conf" --data "$tmp/data" --admin-token-file "$tmp/token" \
	--listen 127.0.0.1:0 >"$tmp/aloftd.log" 2>&1 &
pid=$!
url=
for _ in $(seq 100); do
	url=$(sed -n 's|^aloftd: serving on \(http://[0-9.:]*\)/$|\1|p' "$tmp/aloftd.log")
	[ -n "$url" ] && break
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.2
done
[ -n "$url" ] || { cat "$tmp/aloftd.log" >&2; fail "the installed aloftd did not start"; }
grep -q "admin UI at /admin/ from $usr/bin/../share/aloft/admin" "$tmp/aloftd.log" ||
	{ cat "$tmp/aloftd.log" >&2; fail "the installed aloftd does not serve the installed admin UI"; }
curl -sf "$url/admin/" | grep -q '<html' || fail "GET $url/admin/ did not answer the admin UI"
"$usr/bin/aloft" server releases --server "$url" --token-file "$tmp/token" >"$tmp/releases.out" ||
	{ cat "$tmp/releases.out" >&2; fail "the installed aloft could not talk to the installed aloftd"; }
echo "install test: /usr laid out, $version everywhere, aloftd answered on $url"
