#!/bin/bash
# The test command: installs dependencies, builds, runs every suite (cmocka
# unit tests through `make check`, the simulator's self-test, the integration
# suite through nginx against real PostgreSQL) and ends with one line:
#   N passed, N failed
# Exit status 0 only when nothing failed.
#
# Environment:
#   SFC_SANITIZE=1   build with ASan+UBSan first (and run everything with it)
#   SFC_WRAPPER=...  run sfconnectd under a wrapper, e.g.
#                    "valgrind --error-exitcode=99 --leak-check=full"
#   SFC_SKIP_DEPS=1  do not run scripts/deps.sh
#   SFC_INTEGRATION_ARGS="-k pattern"  passed to tests/integration/run.py
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
CONFIGURE_ARGS=""
if [ -n "${SFC_SANITIZE:-}" ]; then
	SAN_FLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -g -O1"
	export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1}"
	export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
	stage "build (ASan + UBSan)"
else
	SAN_FLAGS=""
	stage "build"
fi
BUILD_LOG="$LOGDIR/build.log"
# Rebuild from clean when the compiler flags differ from the last configure.
PREV=""
[ -x ./config.status ] && PREV=$(./config.status --config 2>/dev/null)
{
	./autogen.sh &&
	if [ -n "$SAN_FLAGS" ]; then
		./configure $CONFIGURE_ARGS CFLAGS="$SAN_FLAGS" LDFLAGS="-fsanitize=address,undefined"
	else
		./configure $CONFIGURE_ARGS
	fi
} >"$BUILD_LOG" 2>&1 || broken "configure" "$BUILD_LOG"
NOW=$(./config.status --config 2>/dev/null)
if [ -n "$PREV" ] && [ "$PREV" != "$NOW" ]; then
	make clean >>"$BUILD_LOG" 2>&1
fi
make -j2 >>"$BUILD_LOG" 2>&1 || broken "make" "$BUILD_LOG"
for b in sfconnectd sfconnect-admin; do
	[ -x "./$b" ] || broken "make produced no ./$b" "$BUILD_LOG"
done
grep -E 'warning:' "$BUILD_LOG" | head -n 20

# ---------------------------------------------------------------- unit tests
stage "unit tests (make check)"
MARK="$LOGDIR/check.mark"
: >"$MARK"
sleep 1   # the .trs files must be newer than the mark
CHECK_LOG="$LOGDIR/check.log"
CMOCKA_MESSAGE_OUTPUT=TAP timeout -k 10 600 make -j2 check >"$CHECK_LOG" 2>&1
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
	f_rc=$?
	f_pass=$(sed -n 's/^\([0-9][0-9]*\) passed, [0-9][0-9]* failed$/\1/p' "$FUZZ_LOG" | tail -n 1)
	f_fail=$(sed -n 's/^[0-9][0-9]* passed, \([0-9][0-9]*\) failed$/\1/p' "$FUZZ_LOG" | tail -n 1)
	f_pass=${f_pass:-0}
	f_fail=${f_fail:-0}
	if [ "$f_rc" -ne 0 ] && [ "$f_fail" -eq 0 ]; then
		echo "FAILED: scripts/fuzz.sh exited $f_rc"
		f_fail=1
	fi
	if [ "$f_fail" -ne 0 ]; then
		tail -n 40 "$FUZZ_LOG"
	fi
	echo "fuzz smoke: $f_pass passed, $f_fail failed"
	add "$f_pass" "$f_fail"
fi

# ---------------------------------------------------------------- integration
stage "integration tests"
COUNTS="$LOGDIR/integration.counts"
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

finish
