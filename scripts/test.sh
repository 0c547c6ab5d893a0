#!/bin/bash
# The test command: installs dependencies, builds, runs every suite (cmocka
# unit tests through `make check` under valgrind, the simulator's self-test,
# the fuzz smoke, the integration suite through nginx against real PostgreSQL
# on an ASan+UBSan build, the admin page in Chromium, `make distcheck`, the
# package build and install test of scripts/package-test.sh) and ends with one line:
#   N passed, N failed
# Exit status 0 only when nothing failed; any valgrind or sanitizer report
# is a failure.
#
# Two builds: the source tree itself (configured in-tree, plain flags: the
# unit tests run on it under valgrind), and build-asan/, a copy of the
# sources (git ls-files: tracked and untracked-but-not-ignored files, with
# their mtimes, so rebuilds are incremental) configured in-tree with
# ASan+UBSan; the integration suite runs its sfconnectd and sfconnect-admin.
# A copy rather than a VPATH build, because configure refuses a VPATH build
# of a source directory that is itself configured.
#
# Environment:
#   SFC_FAST=1       no valgrind, no ASan build: the integration suite runs
#                    on the plain build (quicker, for iterating)
#   SFC_WRAPPER=...  run sfconnectd under a wrapper, e.g.
#                    "valgrind --error-exitcode=99 --leak-check=full"
#                    (the integration suite then uses the plain build)
#   SFC_SKIP_DEPS=1  do not run scripts/deps.sh
#   SFC_INTEGRATION_ARGS="-k pattern"  passed to tests/integration/run.py
#   SFC_SKIP_PACKAGE=1  skip `make distcheck` and the package build and
#                    install test (scripts/package-test.sh), while iterating
# The browser tests (tests/browser) run on the build the integration suite
# uses; their screenshots stay in tests/browser/out/.
set -u

cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
LOGDIR=$(mktemp -d /tmp/sfc-test.XXXXXX)
PASSED=0
FAILED=0
START=$(date +%s)

add() { PASSED=$((PASSED + $1)); FAILED=$((FAILED + $2)); }
stage() { echo "--- $* ($(($(date +%s) - START))s)"; }
finish() {
	echo
	if [ "$FAILED" -eq 0 ]; then
		rm -rf "$LOGDIR"
		echo "total $(($(date +%s) - START))s"
	else
		echo "logs: $LOGDIR, total $(($(date +%s) - START))s"
	fi
	echo "$PASSED passed, $FAILED failed"
	if [ "$FAILED" -ne 0 ]; then exit 1; fi
	exit 0
}
# Adds a script's counts: the last "N passed, N failed" line of LOG; an exit
# status RC other than 0 with no failure counted is one failure. Prints
# "LABEL: N passed, N failed[SUFFIX]" and, on a failure, LOG's last TAIL lines.
#   add_counted LABEL LOG RC SCRIPT TAIL [SUFFIX]
add_counted() {
	local c_pass c_fail
	c_pass=$(sed -n 's/^\([0-9][0-9]*\) passed, [0-9][0-9]* failed$/\1/p' "$2" | tail -n 1)
	c_fail=$(sed -n 's/^[0-9][0-9]* passed, \([0-9][0-9]*\) failed$/\1/p' "$2" | tail -n 1)
	c_pass=${c_pass:-0}
	c_fail=${c_fail:-0}
	if [ "$3" -ne 0 ] && [ "$c_fail" -eq 0 ]; then
		echo "FAILED: $4 exited $3"
		c_fail=1
	fi
	if [ "$c_fail" -ne 0 ]; then
		tail -n "$5" "$2"
	fi
	echo "$1: $c_pass passed, $c_fail failed${6:-}"
	add "$c_pass" "$c_fail"
}
# A stage that could not run at all counts as one failure and ends the run.
broken() {
	echo "FAILED: $1"
	if [ -n "${2:-}" ] && [ -f "$2" ]; then
		echo "--- last lines of $2:"
		tail -n 40 "$2"
	fi
	add 0 1
	finish
}

# ---------------------------------------------------------------- dependencies
if [ -z "${SFC_SKIP_DEPS:-}" ]; then
	stage "dependencies"
	SFC_DEPS_LOG="$LOGDIR/deps.log" sh scripts/deps.sh || broken "scripts/deps.sh" "$LOGDIR/deps.log"
fi

# ---------------------------------------------------------------- build
SAN_FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g -O1"
ASAN_DIR="$ROOT/build-asan"
USE_ASAN=1
if [ -n "${SFC_FAST:-}" ] || [ -n "${SFC_WRAPPER:-}" ]; then
	USE_ASAN=""
fi
stage "build"
BUILD_LOG="$LOGDIR/build.log"
# Rebuild from clean when the compiler flags differ from the last configure
# (e.g. a tree configured with sanitizer flags by hand).
PREV=""
[ -x ./config.status ] && PREV=$(./config.status --config 2>/dev/null)
{ ./autogen.sh && ./configure; } >"$BUILD_LOG" 2>&1 || broken "configure" "$BUILD_LOG"
NOW=$(./config.status --config 2>/dev/null)
if [ -n "$PREV" ] && [ "$PREV" != "$NOW" ]; then
	make clean >>"$BUILD_LOG" 2>&1
fi
make -j2 >>"$BUILD_LOG" 2>&1 || broken "make" "$BUILD_LOG"
for b in sfconnectd sfconnect-admin; do
	[ -x "./$b" ] || broken "make produced no ./$b" "$BUILD_LOG"
done
grep -E 'warning:' "$BUILD_LOG" | head -n 20

# Copies the sources into build-asan/ (mtimes kept). Without git, the copy
# is made afresh each time (it cannot tell sources from build products).
asan_sync() {
	if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		mkdir -p "$ASAN_DIR" &&
		git -C "$ROOT" ls-files -z -co --exclude-standard |
		    tar --null -T - -cf - | tar -xf - -C "$ASAN_DIR"
	else
		rm -rf "$ASAN_DIR" && mkdir -p "$ASAN_DIR" &&
		tar --exclude=./build-asan -cf - . | tar -xf - -C "$ASAN_DIR" &&
		{ [ ! -f "$ASAN_DIR/Makefile" ] || make -C "$ASAN_DIR" distclean; }
	fi
}

asan_build() {
	asan_sync || return 1
	cd "$ASAN_DIR" || return 1
	if [ ! -x ./config.status ] ||
	    ! ./config.status --config | grep -q -e '-fsanitize=address'; then
		./autogen.sh &&
		./configure CFLAGS="$SAN_FLAGS" LDFLAGS="-fsanitize=address,undefined" ||
		return 1
	fi
	make -j2 sfconnectd sfconnect-admin
}

if [ -n "$USE_ASAN" ]; then
	stage "build (ASan + UBSan, build-asan/)"
	ASAN_LOG="$LOGDIR/build-asan.log"
	( asan_build ) >"$ASAN_LOG" 2>&1 || broken "ASan build" "$ASAN_LOG"
	for b in sfconnectd sfconnect-admin; do
		[ -x "$ASAN_DIR/$b" ] || broken "the ASan build produced no $b" "$ASAN_LOG"
	done
	grep -E 'warning:' "$ASAN_LOG" | head -n 20
fi

# ---------------------------------------------------------------- unit tests
VALGRIND="valgrind --error-exitcode=99 -q --leak-check=full --track-origins=yes"
if [ -n "${SFC_FAST:-}" ]; then
	VALGRIND=""
	stage "unit tests (make check)"
else
	stage "unit tests (make check, under valgrind)"
fi
MARK="$LOGDIR/check.mark"
: >"$MARK"
sleep 1   # the .trs files must be newer than the mark
CHECK_LOG="$LOGDIR/check.log"
# A valgrind report makes the test program exit 99: an ERROR result.
CMOCKA_MESSAGE_OUTPUT=TAP timeout -k 10 600 make -j2 check \
    ${VALGRIND:+LOG_COMPILER="$VALGRIND"} >"$CHECK_LOG" 2>&1
check_rc=$?
grep -E '^(PASS|FAIL|XFAIL|XPASS|ERROR|SKIP):' "$CHECK_LOG" | grep -v '^PASS:' | head -n 100
u_pass=0
u_fail=0
for trs in $(find . -name '*.trs' -newer "$MARK" 2>/dev/null); do
	p=$(grep -cE '^:test-result: (PASS|XFAIL)' "$trs")
	f=$(grep -cE '^:test-result: (FAIL|XPASS|ERROR)' "$trs")
	u_pass=$((u_pass + p))
	u_fail=$((u_fail + f))
done
if [ "$check_rc" -ne 0 ] && [ "$u_fail" -eq 0 ]; then
	echo "FAILED: make check exited $check_rc"
	tail -n 40 "$CHECK_LOG"
	u_fail=$((u_fail + 1))
fi
if [ "$u_fail" -ne 0 ]; then
	for log in $(find . -name 'test-suite.log' -newer "$MARK" 2>/dev/null); do
		sed -n '1,200p' "$log"
	done
fi
echo "unit: $u_pass passed, $u_fail failed"
add "$u_pass" "$u_fail"

# ---------------------------------------------------------------- simulator self-test
if [ -f tests/fakesf/selftest.py ]; then
	stage "simulator self-test"
	SELF_LOG="$LOGDIR/fakesf-selftest.log"
	timeout -k 10 300 "$PY" tests/fakesf/selftest.py >"$SELF_LOG" 2>&1
	s_rc=$?
	ran=$(sed -n 's/^Ran \([0-9][0-9]*\) tests\{0,1\} in .*/\1/p' "$SELF_LOG" | tail -n 1)
	s_failures=$(sed -n 's/^FAILED (.*failures=\([0-9][0-9]*\).*/\1/p' "$SELF_LOG" | tail -n 1)
	s_errors=$(sed -n 's/^FAILED (.*errors=\([0-9][0-9]*\).*/\1/p' "$SELF_LOG" | tail -n 1)
	s_skipped=$(sed -n 's/^\(OK\|FAILED\) (.*skipped=\([0-9][0-9]*\).*/\2/p' "$SELF_LOG" | tail -n 1)
	s_fail=$(( ${s_failures:-0} + ${s_errors:-0} ))
	s_pass=$(( ${ran:-0} - s_fail - ${s_skipped:-0} ))
	[ "$s_pass" -lt 0 ] && s_pass=0
	if [ "$s_rc" -ne 0 ] && [ "$s_fail" -eq 0 ]; then
		s_fail=1
	fi
	if [ "$s_fail" -ne 0 ]; then
		grep -E '^(FAIL|ERROR):' "$SELF_LOG" | head -n 40
		tail -n 30 "$SELF_LOG"
	fi
	echo "fakesf selftest: $s_pass passed, $s_fail failed"
	add "$s_pass" "$s_fail"
fi

# ---------------------------------------------------------------- fuzz smoke
if [ -x scripts/fuzz.sh ]; then
	stage "fuzz smoke (libFuzzer: seeds + 5000 runs per target)"
	FUZZ_LOG="$LOGDIR/fuzz.log"
	timeout -k 10 600 scripts/fuzz.sh --smoke >"$FUZZ_LOG" 2>&1
	add_counted "fuzz smoke" "$FUZZ_LOG" $? scripts/fuzz.sh 40
fi

# ---------------------------------------------------------------- OpenAPI recording
# The integration suite's request() records every response it receives here
# (tests/integration/harness.py); the OpenAPI stage below validates them.
export SFC_OPENAPI_RECORD="$LOGDIR/openapi-responses.jsonl"
: >"$SFC_OPENAPI_RECORD"

# ---------------------------------------------------------------- integration
COUNTS="$LOGDIR/integration.counts"
if [ -n "$USE_ASAN" ]; then
	stage "integration tests (ASan + UBSan build)"
	# A report ends the process and is in its log, which the harness scans.
	export SFC_BUILD_DIR="$ASAN_DIR"
	# A small quarantine: the soak's RSS check must not measure ASan's
	# quarantine filling up (256 MB by default) after its warm-up.
	export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1:quarantine_size_mb=16}"
	export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
else
	stage "integration tests"
fi
# shellcheck disable=SC2086
timeout -k 30 900 "$PY" tests/integration/run.py --counts "$COUNTS" ${SFC_INTEGRATION_ARGS:-} 2>&1
i_rc=$?
i_pass=0
i_fail=0
if [ -s "$COUNTS" ]; then
	read -r i_pass i_fail <"$COUNTS"
fi
if [ "$i_rc" -ne 0 ] && [ "$i_fail" -eq 0 ]; then
	echo "FAILED: integration runner exited $i_rc"
	i_fail=1
fi
add "$i_pass" "$i_fail"

# ---------------------------------------------------------------- OpenAPI validation
# docs/openapi.yaml against src/api.c (routes, error codes) and against every
# response the integration suite received (ajv, JSON Schema 2020-12; pinned
# by tests/openapi/package-lock.json). The whole suite must also have seen
# every operation answer a 2xx; a -k run checks only what it recorded.
stage "OpenAPI validation (docs/openapi.yaml, tests/openapi)"
unset SFC_OPENAPI_RECORD
O_LOG="$LOGDIR/openapi.log"
o_rc=0
# npm ci again whenever the lock file is newer than what it installed.
if [ ! -f tests/openapi/node_modules/.package-lock.json ] ||
    [ tests/openapi/package-lock.json -nt tests/openapi/node_modules/.package-lock.json ]; then
	(cd tests/openapi && npm ci --no-audit --no-fund) >"$LOGDIR/npm-openapi.log" 2>&1 ||
	    { tail -n 20 "$LOGDIR/npm-openapi.log"; o_rc=1; }
fi
if [ "$o_rc" -eq 0 ]; then
	timeout -k 10 300 node tests/openapi/validate.mjs --selftest \
	    --records "$LOGDIR/openapi-responses.jsonl" \
	    ${SFC_INTEGRATION_ARGS:+--partial} >"$O_LOG" 2>&1
	o_rc=$?
fi
o_pass=$(sed -n 's/^openapi: \([0-9][0-9]*\) passed, [0-9][0-9]* failed$/\1/p' "$O_LOG" 2>/dev/null | tail -n 1)
o_fail=$(sed -n 's/^openapi: [0-9][0-9]* passed, \([0-9][0-9]*\) failed$/\1/p' "$O_LOG" 2>/dev/null | tail -n 1)
o_pass=${o_pass:-0}
o_fail=${o_fail:-0}
if [ "$o_rc" -ne 0 ] && [ "$o_fail" -eq 0 ]; then
	echo "FAILED: tests/openapi/validate.mjs exited $o_rc"
	tail -n 20 "$O_LOG"
	o_fail=1
fi
if [ "$o_fail" -ne 0 ]; then
	grep -v '^ok - ' "$O_LOG" | head -n 80
fi
echo "openapi: $o_pass passed, $o_fail failed"
add "$o_pass" "$o_fail"

# ---------------------------------------------------------------- browser
# The admin page in Debian's Chromium (playwright-core from npm, pinned by
# tests/browser/package-lock.json), against its own stack on the same build.
stage "browser tests (tests/browser, Chromium)"
B_LOG="$LOGDIR/browser.log"
b_rc=0
if [ ! -d tests/browser/node_modules/playwright-core ] ||
    [ ! -d tests/browser/node_modules/axe-core ]; then
	(cd tests/browser && npm ci --no-audit --no-fund) >"$LOGDIR/npm.log" 2>&1 ||
	    { tail -n 20 "$LOGDIR/npm.log"; b_rc=1; }
fi
if [ "$b_rc" -eq 0 ]; then
	SFC_BROWSER_OUT="$ROOT/tests/browser/out" SFC_PYTHON="$PY" \
	    timeout -k 10 300 node tests/browser/run.mjs >"$B_LOG" 2>&1
	b_rc=$?
fi
b_pass=$(sed -n 's/^browser: \([0-9][0-9]*\) passed, [0-9][0-9]* failed$/\1/p' "$B_LOG" 2>/dev/null | tail -n 1)
b_fail=$(sed -n 's/^browser: [0-9][0-9]* passed, \([0-9][0-9]*\) failed$/\1/p' "$B_LOG" 2>/dev/null | tail -n 1)
b_pass=${b_pass:-0}
b_fail=${b_fail:-0}
if [ "$b_rc" -ne 0 ] && [ "$b_fail" -eq 0 ]; then
	echo "FAILED: the browser tests exited $b_rc"
	b_fail=1
fi
if [ "$b_fail" -ne 0 ]; then
	grep -v '^ok - ' "$B_LOG" | tail -n 60
fi
echo "browser: $b_pass passed, $b_fail failed (screenshots: tests/browser/out/)"
add "$b_pass" "$b_fail"


# ---------------------------------------------------------------- make distcheck
# The release tarball builds, passes `make check` and installs on its own
# (VPATH, read-only sources): one test. The tarball is not kept.
if [ -z "${SFC_SKIP_PACKAGE:-}" ]; then
	stage "make distcheck"
	DIST_LOG="$LOGDIR/distcheck.log"
	d_start=$(date +%s)
	if timeout -k 10 900 make distcheck >"$DIST_LOG" 2>&1; then
		echo "distcheck: 1 passed, 0 failed ($(($(date +%s) - d_start))s)"
		add 1 0
	else
		grep -E '^(FAIL|ERROR):|Error|error:' "$DIST_LOG" | head -n 20
		tail -n 30 "$DIST_LOG"
		echo "distcheck: 0 passed, 1 failed (log: $DIST_LOG)"
		add 0 1
	fi
	rm -f sfconnect-*.tar.gz
fi

# ---------------------------------------------------------------- package
# dpkg-buildpackage -us -uc -b, the maintainer scripts, and the packaged
# sfconnectd serving through nginx on the test PostgreSQL
# (scripts/package-test.sh, which CI runs through this script too).
if [ -z "${SFC_SKIP_PACKAGE:-}" ]; then
	stage "package build and install test (scripts/package-test.sh)"
	PKG_LOG="$LOGDIR/package.log"
	k_start=$(date +%s)
	timeout -k 10 1200 sh scripts/package-test.sh >"$PKG_LOG" 2>&1
	add_counted package "$PKG_LOG" $? scripts/package-test.sh 60 \
	    " ($(($(date +%s) - k_start))s)"
fi

finish
