#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# The main job: set up, build (release), and run ringo's flagship demo: ringo-httpd talking
# HTTP/1.1 over io_uring under wrk load, with ringo-schedtrace and ringo-runqlat attached.
# `scripts/demo.sh fanout` runs the older demo instead: a fan-out/fan-in of a million goroutines.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
bash scripts/setup.sh
build=${RINGO_BUILDDIR:-build-release}
[[ -f $build/build.ninja ]] || meson setup "$build" -Dbuildtype=release >/dev/null
ninja -C "$build" >/dev/null
if [[ ${1:-} == fanout ]]; then
	shift
	exec "$build/examples/ringo-fanout" "$@"
fi
exec bench/net/demo-httpd "$@"
