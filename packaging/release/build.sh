#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds the release binaries of udsvisor into OUTDIR:
#   udsvisor_<version>_linux_amd64, udsvisor_<version>_linux_arm64,
#   udsvisor_<version>_freebsd_amd64, with LICENSE, NOTICE (the licences
#   of the Go modules and of the statically linked glibc) and SHA256SUMS.
# Usage: packaging/release/build.sh OUTDIR
# Run it on a Debian 12 amd64 host with gcc, clang,
# binutils-aarch64-linux-gnu, libc6-dev-arm64-cross and
# libgcc-12-dev-arm64-cross installed (test.sh installs them).
#
# The binaries are static and reproducible: the same commit, Go version
# and C toolchain give the same bytes, whatever the checkout's path or the
# build cache (packaging/release_test.go builds twice and compares).
#  - Linux needs cgo: the launch helper in privdrop is C that runs before
#    the Go runtime. It is linked statically against glibc
#    (-linkmode external -extldflags -static).
#  - The osusergo and netgo tags keep glibc's NSS out of the static
#    binary: users and groups come from /etc/passwd and /etc/group only
#    (no LDAP or sssd accounts; README, "Release binaries").
#  - FreeBSD builds without cgo; there `udsvisor up` is not supported yet.
#  - -trimpath, -buildvcs=false, -buildid= and -s -w leave no path, no
#    build id and no debug information that could differ between builds;
#    version and commit are stamped with -X instead.
# VERSION and COMMIT override what git says (a build from an export);
# TARGETS (default "linux/amd64 linux/arm64 freebsd/amd64") picks targets.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:?usage: build.sh OUTDIR}

commit=${COMMIT:-$(git -C "$top" rev-parse HEAD)}
if [ -z "${VERSION:-}" ]; then
	if tag=$(git -C "$top" describe --tags --exact-match 2>/dev/null); then
		VERSION=${tag#v}
	else
		# 0~gitYYYYMMDD.HASH sorts below any release and by commit date
		# (the commit's, in UTC, not the build's: reproducible).
		VERSION="0~git$(TZ=UTC0 git -C "$top" log -1 --date=format-local:%Y%m%d --format=%cd).$(git -C "$top" rev-parse --short=7 HEAD)"
	fi
	if [ -n "$(git -C "$top" status --porcelain --untracked-files=no)" ]; then
		VERSION="$VERSION+dirty"
	fi
fi

# Nothing from the caller's environment changes the bytes.
unset GOFLAGS CGO_CPPFLAGS CGO_CXXFLAGS CGO_FFLAGS
export CGO_CFLAGS="-O2" CGO_LDFLAGS="" GOAMD64=v1 GOARM64=v8.0 GOTOOLCHAIN=local
ldflags="-s -w -buildid= -X main.version=$VERSION -X main.commit=$commit"

mkdir -p "$out"
out=$(cd "$out" && pwd) # go build runs in $top
bins=()
glibc="" # a NOTICE line for each Linux binary built: the glibc it links
# glibc_line ARCH PACKAGE adds the line of a Linux binary's glibc.
glibc_line() {
	local v
	v=$(dpkg-query -W -f '${Version}' "$2")
	glibc+=$(printf '  %s: %s %s (glibc %s)' "$1" "${2%%:*}" "$v" "${v%cross*}")$'\n'
}
build() { # GOOS GOARCH CGO CC: adds the binary to bins
	local bin="udsvisor_${VERSION}_$1_$2" static=""
	if [ "$3" = 1 ]; then
		static="-linkmode external -extldflags -static"
	fi
	(cd "$top" && GOOS=$1 GOARCH=$2 CGO_ENABLED=$3 CC=$4 go build \
		-trimpath -buildvcs=false -tags osusergo,netgo \
		-ldflags "$ldflags $static" -o "$out/$bin" ./cmd/udsvisor)
	bins+=("$bin")
}
for target in ${TARGETS:-linux/amd64 linux/arm64 freebsd/amd64}; do
	case $target in
	linux/amd64)
		build linux amd64 1 "${CC_LINUX_AMD64:-gcc}"
		glibc_line linux/amd64 libc6-dev:amd64
		;;
	# clang, not aarch64-linux-gnu-gcc: in Debian 12 that conflicts with
	# gcc-multilib, which privdrop's tests need.
	linux/arm64)
		build linux arm64 1 "${CC_LINUX_ARM64:-clang --target=aarch64-linux-gnu}"
		glibc_line linux/arm64 libc6-dev-arm64-cross
		;;
	freebsd/amd64) build freebsd amd64 0 "" ;;
	*)
		echo "build.sh: unknown target $target" >&2
		exit 2
		;;
	esac
done

# What a binary distribution owes the licences of what it contains: the
# Apache License itself (its section 4a), and the notices of the Go
# modules and of glibc, which the Linux binaries link statically (LGPL
# 2.1 section 6: say so, and where its source is).
cp "$top/LICENSE" "$out/LICENSE"
{
	printf '%s\n' \
		"udsvisor release binaries: the licences of what they contain." \
		"" \
		"udsvisor is licensed under the Apache License, Version 2.0: LICENSE," \
		"beside this file."
	if [ -n "$glibc" ]; then
		printf '%s\n' \
			"" \
			"The Linux binaries are linked statically with the GNU C Library" \
			"(glibc) of these Debian 12 packages:"
		printf '%s' "$glibc"
		printf '%s\n' \
			"glibc is licensed under the GNU Lesser General Public License," \
			"version 2.1 or later (https://www.gnu.org/licenses/old-licenses/lgpl-2.1.html)." \
			"Its source is Debian's glibc source package of that version" \
			"(apt-get source glibc, or https://snapshot.debian.org/package/glibc/)." \
			"udsvisor's source is public: to link a modified glibc, install it and" \
			"build with packaging/release/build.sh."
	fi
	printf '%s\n' \
		"" \
		"The binaries contain the Go runtime and standard library and the Go" \
		"modules listed below in the format of Debian's copyright files (the" \
		"Debian package's). A FreeBSD binary contains no C library and only" \
		"some of the modules: go list -deps ./cmd/udsvisor with GOOS=freebsd" \
		"names them." \
		""
	cat "$top/packaging/deb/copyright"
} >"$out/NOTICE"
(cd "$out" && sha256sum "${bins[@]}" LICENSE NOTICE >SHA256SUMS)
echo "$out"
