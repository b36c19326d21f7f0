#!/usr/bin/env bash
# Builds udsvisor_<version>_<arch>.deb with dpkg-deb, from this checkout.
# Usage: packaging/deb/build.sh [OUTDIR]   (default OUTDIR: ./dist)
# The package installs /usr/bin/udsvisor, the systemd unit (pointing at
# /usr/bin), /etc/udsvisor/services.toml.example and the README; it
# enables nothing: copy the example to /etc/udsvisor/services.toml, edit
# it, then `systemctl enable --now udsvisor`.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$top/dist}
version=$(git -C "$top" describe --tags --always --dirty 2>/dev/null | sed 's/^v//; s/[^A-Za-z0-9.+~]/+/g')
case "$version" in [0-9]*) ;; *) version="0~git$version" ;; esac
arch=$(dpkg --print-architecture)
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
chmod 0755 "$root" # dpkg applies the mode of ./ to / on install

install -d -m 0755 "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" \
	"$root/etc/udsvisor" "$root/usr/share/doc/udsvisor"
# cgo: the launch helper is C that runs before the Go runtime (privdrop).
(cd "$top" && CGO_ENABLED=1 go build -trimpath -ldflags "-X main.version=$version" -o "$root/usr/bin/udsvisor" ./cmd/udsvisor)
chmod 0755 "$root/usr/bin/udsvisor"
sed 's|/usr/local/bin/udsvisor|/usr/bin/udsvisor|g' "$top/packaging/systemd/udsvisor.service" >"$root/lib/systemd/system/udsvisor.service"
install -m 0644 "$top/services.toml.example" "$root/etc/udsvisor/services.toml.example"
install -m 0644 "$top/README.md" "$root/usr/share/doc/udsvisor/README.md"
cat >"$root/DEBIAN/control" <<CONTROL
Package: udsvisor
Version: $version
Architecture: $arch
Maintainer: udsvisor developers <dev@udsvisor.invalid>
Section: admin
Priority: optional
Depends: libc6
Recommends: systemd
Description: process supervisor that owns its services' Unix sockets
 udsvisor creates each service's Unix (or TCP) socket with an exact owner,
 group and mode, starts the service as its own user with the socket passed
 the systemd way (LISTEN_FDS), and restarts it without closing the socket,
 so no connection is refused during a restart.
CONTROL
install -d -m 0755 "$out"
deb="$out/udsvisor_${version}_${arch}.deb"
dpkg-deb --root-owner-group --build "$root" "$deb" >/dev/null
echo "$deb"
