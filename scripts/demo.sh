#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# The main job: set up, build (release), and run ringo's flagship demo, a fan-out/fan-in of one
# million goroutines that reports goroutines/s and what every P did.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
bash scripts/setup.sh
build=${RINGO_BUILDDIR:-build-release}
[[ -f $build/build.ninja ]] || meson setup "$build" -Dbuildtype=release >/dev/null
ninja -C "$build" >/dev/null
exec "$build/examples/ringo-fanout" "$@"
