#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs what the tests need (when missing) and runs every test.
# Run it as root on Debian 12: most tests create sockets owned by other
# users and start processes as test users (udsv-*), which needs root.
# .ci/run calls this script with UDSVISOR_CI=1, under which a missing
# privilege or a missing peer program fails the run instead of skipping.
set -euo pipefail
cd "$(dirname "$0")"

if [ "$(id -u)" -ne 0 ]; then
	echo "test.sh: run as root (the tests create users and drop privileges)" >&2
	exit 1
fi

# Debian packages the integration tests drive, and what proves each one.
declare -A probe=(
	[nginx]=/usr/sbin/nginx
	[apache2]=/usr/sbin/apache2
	[uvicorn]=/usr/bin/uvicorn
	[gunicorn]=/usr/bin/gunicorn
	[systemd]=/usr/bin/systemd-socket-activate
	[curl]=/usr/bin/curl
	[passwd]=/usr/sbin/useradd
	[gcc]=/usr/bin/gcc
	[caddy]=/usr/bin/caddy
	[haproxy]=/usr/sbin/haproxy
	[tomcat10]=/usr/share/tomcat10/bin/catalina.sh
	[nodejs]=/usr/bin/node
	[php8.2-fpm]=/usr/sbin/php-fpm8.2
	[puma]=/usr/bin/puma
	[libfcgi-bin]=/usr/bin/cgi-fcgi
	# The Debian package's test: build (dpkg-shlibdeps, dpkg-buildflags),
	# lintian, and the man pages' rendering.
	[dpkg-dev]=/usr/bin/dpkg-shlibdeps
	[lintian]=/usr/bin/lintian
	[groff-base]=/usr/bin/groff
	[man-db]=/usr/bin/man
	# The container image's test builds and runs it with podman; runc,
	# because Debian 12's crun refuses hosts with hybrid cgroups.
	[podman]=/usr/bin/podman
	[runc]=/usr/sbin/runc
)
# privdrop compiles its C for 32 bits too, to catch width bugs. The
# linux/arm64 build (cgo: privdrop's C) uses clang --target, because
# gcc-multilib conflicts with gcc-aarch64-linux-gnu in Debian 12; clang
# takes binutils, libc and libgcc from the arm64 cross packages.
if [ "$(dpkg --print-architecture)" = amd64 ]; then
	probe[gcc-multilib]=/usr/include/asm
	probe[clang]=/usr/bin/clang
	probe[binutils-aarch64-linux-gnu]=/usr/bin/aarch64-linux-gnu-ld
	probe[libc6-dev-arm64-cross]=/usr/aarch64-linux-gnu/include
	probe[libgcc-12-dev-arm64-cross]=/usr/lib/gcc-cross/aarch64-linux-gnu/12
fi
missing=()
for pkg in "${!probe[@]}"; do
	[ -x "${probe[$pkg]}" ] || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
	echo "test.sh: installing ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

export PATH="$PATH:/usr/local/go/bin:$(go env GOPATH)/bin"
staticcheck=$(go env GOPATH)/bin/staticcheck
if [ ! -x "$staticcheck" ]; then
	go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
fi

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "test.sh: gofmt would change: $unformatted" >&2
	exit 1
fi
go vet ./...
"$staticcheck" ./...
go test -count=1 -timeout 15m ./...

# Short fuzzing runs, so that a crasher found later fails the build; the
# committed corpora under testdata/fuzz run in every plain go test too.
go test -run '^$' -fuzz '^FuzzParse$' -fuzztime 20s ./config
go test -run '^$' -fuzz '^FuzzHandler$' -fuzztime 20s ./control
echo "test.sh: all tests passed"
