#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Installs every Debian package ringo needs and extracts kselftest's headers from Debian's
# linux-source package into a git-ignored cache (.cache/kselftest). Idempotent: a second run
# installs nothing and extracts nothing. Needs root (or sudo) only when something is missing.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cache="$top/.cache"

packages=(
	build-essential make clang lld llvm meson ninja-build pkg-config python3
	# sanitizer runtimes: gcc's (also pulled in by gcc-12) and clang's (only "recommended"
	# by libclang-common-14-dev, so --no-install-recommends would leave it out)
	libasan8 libubsan1 libtsan2 libclang-rt-14-dev
	liburing-dev libbpf-dev bpftool libelf-dev libdw-dev zlib1g-dev systemtap-sdt-dev linux-libc-dev
	# the bpftrace scripts (tools/bpftrace/) and their tests
	bpftrace
	linux-source-6.1 xz-utils
	golang-go golang-1.19-src
	# ringo-httpd's HTTP parser; bench/net/run's load generator and nginx peer; the demo's curl
	libhttp-parser-dev wrk nginx curl
)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
	echo "setup: installing ${missing[*]}"
	sudo=()
	if ((EUID != 0)); then
		command -v sudo >/dev/null || { echo "setup: need root to install ${missing[*]}" >&2; exit 1; }
		sudo=(sudo)
	fi
	export DEBIAN_FRONTEND=noninteractive
	"${sudo[@]}" apt-get update -qq
	"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
fi

# kselftest headers (GPL-2.0): used to build the tests, never committed. Extracted into a
# temporary directory and renamed into place, so an interrupted run leaves no half cache.
ksft="$cache/kselftest"
if [[ ! -f "$ksft/kselftest_harness.h" || ! -f "$ksft/lib.mk" ]]; then
	tarball=$(ls /usr/src/linux-source-*.tar.xz | sort -V | tail -n 1)
	base=$(basename "$tarball" .tar.xz)
	mkdir -p "$cache"
	tmp=$(mktemp -d "$cache/kselftest.tmp.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	echo "setup: extracting kselftest from $tarball"
	tar -xJf "$tarball" -C "$tmp" \
		"$base/tools/testing/selftests/kselftest.h" \
		"$base/tools/testing/selftests/kselftest_harness.h" \
		"$base/tools/testing/selftests/lib.mk" \
		"$base/tools/testing/selftests/kselftest"
	rm -rf "$ksft"
	mv "$tmp/$base/tools/testing/selftests" "$ksft"
fi
echo "setup: ok"
