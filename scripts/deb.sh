#!/bin/sh
# A Debian package of aloft from a build (make deb): the install of
# cmake/install.cmake with prefix /usr, a control file whose Depends
# dpkg-shlibdeps reads from the programs' libraries, aloftd.conf as a
# conffile (an operator's changes survive upgrades), and a postinst that
# creates the service's system user.
# Usage: scripts/deb.sh BUILD   -> BUILD/aloft_<version>_<arch>.deb
set -eu

[ $# -eq 1 ] || { echo "usage: scripts/deb.sh BUILD" >&2; exit 2; }
command -v dpkg-shlibdeps >/dev/null || {
	echo "deb.sh: dpkg-shlibdeps not found (it reads the programs' library dependencies): apt-get install dpkg-dev" >&2
	exit 2
}
build=$(cd "$1" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
version=$(cat "$root/VERSION")
arch=$(dpkg --print-architecture)
stage=$build/deb/aloft
rm -rf "$build/deb"
mkdir -p "$stage/DEBIAN"

DESTDIR=$stage cmake --install "$build" --prefix /usr >/dev/null

# dpkg-shlibdeps wants a source package around it: a minimal one.
mkdir -p "$build/deb/src/debian"
printf 'Source: aloft\n\nPackage: aloft\nArchitecture: any\n' >"$build/deb/src/debian/control"
depends=$(cd "$build/deb/src" && dpkg-shlibdeps -O -e"$stage/usr/bin/aloft" -e"$stage/usr/bin/aloftd" \
	-e"$stage/usr/bin/aloft-node" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')

cat >"$stage/DEBIAN/control" <<CONTROL
Package: aloft
Version: $version
Architecture: $arch
Maintainer: the aloft developers
Section: devel
Priority: optional
Depends: $depends
Installed-Size: $(du -sk "$stage/usr" "$stage/etc" | awk '{ s += $1 } END { print s }')
Description: over-the-air updates for ESP32-class devices
 aloft (the command line: deploy, trigger, images, partition tables,
 LittleFS), aloftd (the update server, with its admin UI and a systemd
 unit: systemctl enable --now aloftd) and aloft-node (a simulated ESP32
 that takes updates as a real one does).
CONTROL
echo /etc/aloft/aloftd.conf >"$stage/DEBIAN/conffiles"
# the system user of the service; systemd learns of the new unit
cat >"$stage/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
if [ "$1" = configure ] && command -v systemd-sysusers >/dev/null; then
	systemd-sysusers aloft.conf
fi
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
fi
POSTINST
chmod 0755 "$stage/DEBIAN/postinst"

out=$build/aloft_${version}_${arch}.deb
dpkg-deb --root-owner-group --build "$stage" "$out" >/dev/null
echo "deb.sh: $out"
