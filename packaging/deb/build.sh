#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds udsvisor_<version>_<arch>.deb with dpkg-deb, from this checkout,
# with Debian's own tools only (dpkg-dev, gzip, binutils) and no network
# beyond what `go build` needs for the module cache.
# Usage: packaging/deb/build.sh [OUTDIR]   (default OUTDIR: ./dist)
#
# The package installs /usr/bin/udsvisor, the unit in /lib/systemd/system
# (Debian 12's place for packaged units), the man pages udsvisor(8) and
# services.toml(5), bash completion, and in /usr/share/doc/udsvisor the
# README, the copyright file, the changelog and
# examples/services.toml.example. It ships nothing in /etc and enables
# nothing: copy the example to /etc/udsvisor/services.toml, edit it, then
# `systemctl enable --now udsvisor`. The postinst creates the system group
# udsvisor (for control_group); purge removes it.
#
# The version is the tag's (v1.2.3 → 1.2.3) when HEAD is tagged, else
# 0~gitYYYYMMDD.HASH from the commit date, so that it sorts below the first
# release and two builds of one commit get the same version and changelog.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
here=$top/packaging
out=${1:-$top/dist}

commit=$(git -C "$top" rev-parse --short=12 HEAD)
stamp=$(git -C "$top" log -1 --format=%ct HEAD)
if tag=$(git -C "$top" describe --tags --exact-match --match 'v[0-9]*' 2>/dev/null); then
	upstream=${tag#v}
else
	upstream=0~git$(TZ=UTC date -d "@$stamp" +%Y%m%d).$commit
fi
# The Debian revision: the package is built from the upstream tree, not
# from a Debian source package, but a revision lets a packaging fix ship
# without a new upstream version (and makes changelog.Debian.gz the
# changelog's right name).
revision=1
if [ -n "$(git -C "$top" status --porcelain --untracked-files=no)" ]; then
	upstream=$upstream+dirty # sorts after the clean build of the same commit
fi
version=$upstream-$revision
arch=$(dpkg --print-architecture)

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
chmod 0755 "$root" # dpkg applies the mode of ./ to / on install
doc=$root/usr/share/doc/udsvisor
install -d -m 0755 "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" \
	"$doc/examples" "$root/usr/share/man/man5" "$root/usr/share/man/man8" \
	"$root/usr/share/bash-completion/completions" "$root/usr/share/lintian/overrides"

# cgo: the launch helper is C that runs before the Go runtime (privdrop),
# so the binary links libc dynamically. -s -w: no symbol table nor DWARF
# (Debian ships stripped binaries); Debian's hardening flags for the C and
# the link (PIE, RELRO, BIND_NOW, fortify,
# stack protector).
export DEB_BUILD_MAINT_OPTIONS=hardening=+all
export CGO_CFLAGS="$(dpkg-buildflags --get CFLAGS) $(dpkg-buildflags --get CPPFLAGS)"
export CGO_LDFLAGS="$(dpkg-buildflags --get LDFLAGS)"
(cd "$top" && CGO_ENABLED=1 go build -trimpath -buildmode=pie -buildvcs=false \
	-ldflags "-s -w -X main.version=$upstream -X main.commit=$commit -linkmode=external -extldflags '$CGO_LDFLAGS'" \
	-o "$root/usr/bin/udsvisor" ./cmd/udsvisor)
strip --remove-section=.comment --remove-section=.note --strip-unneeded "$root/usr/bin/udsvisor"
chmod 0755 "$root/usr/bin/udsvisor"

sed 's|/usr/local/bin/udsvisor|/usr/bin/udsvisor|g' "$here/systemd/udsvisor.service" >"$root/lib/systemd/system/udsvisor.service"
chmod 0644 "$root/lib/systemd/system/udsvisor.service"
install -m 0644 "$top/services.toml.example" "$doc/examples/services.toml.example"
install -m 0644 "$top/README.md" "$doc/README.md"
install -m 0644 "$here/deb/copyright" "$doc/copyright"
install -m 0644 "$here/completion/udsvisor" "$root/usr/share/bash-completion/completions/udsvisor"
install -m 0644 "$here/deb/lintian-overrides" "$root/usr/share/lintian/overrides/udsvisor"
for page in "$here/man/udsvisor.8" "$here/man/services.toml.5"; do
	section=${page##*.}
	gzip -9n <"$page" >"$root/usr/share/man/man$section/$(basename "$page").gz"
	chmod 0644 "$root/usr/share/man/man$section/$(basename "$page").gz"
done
# A binary package built outside a Debian source package: one entry per
# build, dated with the commit so that the bytes do not depend on today.
{
	echo "udsvisor ($version) unstable; urgency=medium"
	echo
	echo "  * Built by packaging/deb/build.sh from commit $commit of"
	echo "    https://github.com/udsvisor/udsvisor; the changes are in its git log."
	echo
	echo " -- udsvisor developers <dev@udsvisor.invalid>  $(LC_ALL=C TZ=UTC date -R -d "@$stamp")"
} | gzip -9n >"$doc/changelog.Debian.gz"
chmod 0644 "$doc/changelog.Debian.gz"

for script in postinst prerm postrm; do
	install -m 0755 "$here/deb/$script" "$root/DEBIAN/$script"
done
# Depends from what the binary really links, as dh_shlibdeps computes it;
# dpkg-shlibdeps wants a debian/control, so it gets a minimal one.
shlib=$(mktemp -d)
trap 'rm -rf "$root" "$shlib"' EXIT
mkdir "$shlib/debian"
printf 'Source: udsvisor\n\nPackage: udsvisor\nArchitecture: any\n' >"$shlib/debian/control"
shlibs=$(cd "$shlib" && dpkg-shlibdeps -O "$root/usr/bin/udsvisor" | sed -n 's/^shlibs:Depends=//p')
[ -n "$shlibs" ] || { echo "build.sh: dpkg-shlibdeps found no dependencies" >&2; exit 1; }

(cd "$root" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"
installed_size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<CONTROL
Package: udsvisor
Version: $version
Architecture: $arch
Maintainer: udsvisor developers <dev@udsvisor.invalid>
Installed-Size: $installed_size
Depends: adduser, $shlibs
Recommends: systemd
Section: admin
Priority: optional
Homepage: https://github.com/udsvisor/udsvisor
Description: process supervisor that owns its services' Unix sockets
 udsvisor creates each service's Unix (or TCP) socket with an exact owner,
 group and mode, starts the service as its own user with the socket passed
 the systemd way (LISTEN_FDS), and restarts it without closing the socket,
 so no connection is refused during a restart.
CONTROL
find "$root" -exec touch --no-dereference -d "@$stamp" {} +
install -d -m 0755 "$out"
deb="$out/udsvisor_${version}_${arch}.deb"
SOURCE_DATE_EPOCH=$stamp dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
