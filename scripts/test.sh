#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
#
# The project's test command: installs what is missing (scripts/setup.sh),
# configures and builds a meson build directory, and runs `meson test`.
#
#   scripts/test.sh [-B BUILDDIR] [-D OPTION=VALUE]... [-- MESON_TEST_ARGS...]
#
#   -B BUILDDIR       build directory (default: build, or $RINGO_BUILDDIR)
#   -D OPTION=VALUE   passed to meson setup (e.g. -Db_sanitize=address,undefined)
#   MESON_TEST_ARGS   passed to meson test (e.g. --suite concurrency, -v, a test name)
#
# The compiler is meson's choice (cc), or $CC, as for meson itself. An existing
# build directory is reconfigured with the given options, not wiped. Exits with
# meson's status: non-zero if the build or any test failed.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
builddir=${RINGO_BUILDDIR:-build}
setup_args=()

usage() { sed -n '4,15s/^# \{0,1\}//p' "$0" >&2; exit 2; }

while (($#)); do
	case $1 in
	-B) (($# >= 2)) || usage; builddir=$2; shift 2 ;;
	-B*) builddir=${1#-B}; shift ;;
	-D) (($# >= 2)) || usage; setup_args+=("-D$2"); shift 2 ;;
	-D*) setup_args+=("$1"); shift ;;
	--) shift; break ;;
	-h|--help) usage ;;
	*) echo "test.sh: unknown argument '$1'" >&2; usage ;;
	esac
done

cd "$top"
scripts/setup.sh

# Drop the previous run's log, so that a reader of testlog.json (.ci/run) sees this run's
# results or none at all if the build fails.
rm -f "$builddir/meson-logs/testlog.json"
if [[ -f $builddir/meson-private/coredata.dat ]]; then
	meson setup --reconfigure "$builddir" "${setup_args[@]}"
else
	meson setup "$builddir" "${setup_args[@]}"
fi
meson compile -C "$builddir"
meson test -C "$builddir" --print-errorlogs "$@"
