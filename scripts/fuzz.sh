#!/bin/bash
# Builds the libFuzzer targets of tests/fuzz/ (fuzz_*.c) with clang, ASan and
# UBSan into a build dir under /tmp, and runs each one on a copy of its seed
# corpus (tests/fuzz/corpus/<name>/; the tree is never written).
#
#   scripts/fuzz.sh [SECONDS]   fuzz each target SECONDS (default 20); one
#                               line per target: "fuzz_x: N runs, N crashes"
#   scripts/fuzz.sh --smoke     each target over its seeds plus -runs=5000
#                               (a few seconds): for the test suite
#
# Both end with "N passed, N failed" (targets) and exit 1 when a target
# crashed, leaked or timed out; the crash file and the log are named in the
# output and the build dir is kept. Reproduce with: BUILD/fuzz_x CRASHFILE;
# minimize with: BUILD/fuzz_x -minimize_crash=1 -runs=10000 CRASHFILE
#
# Environment:
#   CC=clang-14            the compiler (default clang)
#   SFC_FUZZ_TARGETS="fuzz_api fuzz_cfg"   only these targets
#   SFC_FUZZ_KEEP=1        keep the build dir (grown corpora) on success too
#
# A target may ask for extra link flags with a line in its source:
#   /* fuzz.sh ldflags: -Wl,--wrap=db_ensure */
set -u

cd "$(dirname "$0")/.." || exit 1
CC=${CC:-clang}
MODE=fuzz
SECS=20
case "${1:-}" in
--smoke) MODE=smoke ;;
"") ;;
*[!0-9]* | 0)
	echo "usage: scripts/fuzz.sh [--smoke | SECONDS-PER-TARGET]" >&2
	exit 2
	;;
*) SECS=$1 ;;
esac

PASSED=0
FAILED=0
finish() {
	echo "$PASSED passed, $FAILED failed"
	[ "$FAILED" -eq 0 ]
	exit
}
# The build itself failed: one failure, the build dir kept.
broken() {
	echo "FAILED: $1"
	[ -n "${2:-}" ] && [ -f "$2" ] && tail -n 30 "$2"
	FAILED=$((FAILED + 1))
	finish
}

if ! command -v "$CC" >/dev/null 2>&1; then
	broken "fuzz: $CC not found (scripts/deps.sh installs clang and libclang-rt-14-dev)"
fi
BUILD=$(mktemp -d /tmp/sfc-fuzz.XXXXXX) || exit 1
LOG="$BUILD/build.log"
PKGS="libcurl libcjson libpq libcrypto"
# shellcheck disable=SC2086
PKG_CFLAGS=$(pkg-config --cflags $PKGS) || broken "pkg-config --cflags $PKGS"
# shellcheck disable=SC2086
PKG_LIBS=$(pkg-config --libs $PKGS) || broken "pkg-config --libs $PKGS"
COMMON="-g -O1 -fno-omit-frame-pointer -D_GNU_SOURCE -std=c11 -Isrc $PKG_CFLAGS"
SAN="address,undefined"
# UBSan findings stop the run (and count as crashes) instead of being printed.
LIB_CFLAGS="$COMMON -fsanitize=fuzzer-no-link,$SAN -fno-sanitize-recover=undefined"
TARGET_CFLAGS="$COMMON -Wall -Wextra -fsanitize=fuzzer,$SAN -fno-sanitize-recover=undefined"

if [ -n "${SFC_FUZZ_TARGETS:-}" ]; then
	TARGETS=$SFC_FUZZ_TARGETS
else
	TARGETS=$(for f in tests/fuzz/fuzz_*.c; do basename "$f" .c; done)
fi
[ -n "$TARGETS" ] || broken "no tests/fuzz/fuzz_*.c"

# ---------------------------------------------------------------- build
# The library sources of Makefile.am's libsfc.a: every src/*.c but the two
# programs, the FastCGI edge, and migrations.c (generated here from sql/).
echo "--- building in $BUILD"
mkdir -p "$BUILD/obj" "$BUILD/crashes" "$BUILD/corpus"
sh scripts/embed-sql.sh sql/*.sql >"$BUILD/migrations.c" 2>>"$LOG" ||
	broken "scripts/embed-sql.sh" "$LOG"
SRCS="$BUILD/migrations.c"
for f in src/*.c; do
	case "$f" in
	src/sfconnectd.c | src/sfconnect-admin.c | src/fcgi.c | src/migrations.c) ;;
	*) SRCS="$SRCS $f" ;;
	esac
done
JOBS=$(nproc 2>/dev/null || echo 2)
compile() {
	# shellcheck disable=SC2086
	$CC $LIB_CFLAGS -c "$1" -o "$BUILD/obj/$(basename "$1" .c).o" ||
		{ echo "FAILED: cc $1"; return 1; }
}
running=0
cc_failed=0
for f in $SRCS; do
	compile "$f" >>"$LOG" 2>&1 &
	running=$((running + 1))
	if [ "$running" -ge "$JOBS" ]; then
		wait -n || cc_failed=1
		running=$((running - 1))
	fi
done
while [ "$running" -gt 0 ]; do
	wait -n || cc_failed=1
	running=$((running - 1))
done
[ "$cc_failed" -eq 0 ] || broken "compiling src/ (log: $LOG)" "$LOG"
rm -f "$BUILD/libsfc-fuzz.a"
ar rcs "$BUILD/libsfc-fuzz.a" "$BUILD"/obj/*.o 2>>"$LOG" || broken "ar" "$LOG"
for t in $TARGETS; do
	src="tests/fuzz/$t.c"
	[ -f "$src" ] || broken "no $src"
	extra=$(sed -n 's|^/\* fuzz.sh ldflags: \(.*\) \*/$|\1|p' "$src")
	# shellcheck disable=SC2086
	$CC $TARGET_CFLAGS "$src" "$BUILD/libsfc-fuzz.a" $extra $PKG_LIBS \
		-o "$BUILD/$t" >>"$LOG" 2>&1 || broken "linking $t (log: $LOG)" "$LOG"
done
grep -E 'warning:' "$LOG" | head -n 20

# ---------------------------------------------------------------- run
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"
if [ "$MODE" = smoke ]; then
	echo "--- smoke: seeds + 5000 runs per target"
else
	echo "--- fuzzing ${SECS}s per target"
fi
for t in $TARGETS; do
	corpus="$BUILD/corpus/$t"
	mkdir -p "$corpus"
	if [ -d "tests/fuzz/corpus/${t#fuzz_}" ]; then
		cp tests/fuzz/corpus/"${t#fuzz_}"/* "$corpus"/ 2>/dev/null
	fi
	seeds=$(find "$corpus" -type f | wc -l)
	args="-max_len=65536 -timeout=25 -rss_limit_mb=2048 -print_final_stats=1"
	args="$args -artifact_prefix=$BUILD/crashes/$t-"
	[ -f "tests/fuzz/$t.dict" ] && args="$args -dict=tests/fuzz/$t.dict"
	if [ "$MODE" = smoke ]; then
		args="$args -runs=5000"
		limit=300
	else
		args="$args -max_total_time=$SECS"
		limit=$((SECS + 300))
	fi
	start=$(date +%s)
	# shellcheck disable=SC2086
	timeout -k 10 "$limit" "$BUILD/$t" $args "$corpus" >"$BUILD/$t.log" 2>&1
	rc=$?
	secs=$(($(date +%s) - start))
	runs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' \
		"$BUILD/$t.log" | tail -n 1)
	[ -n "$runs" ] || runs=$(sed -n 's/^#\([0-9][0-9]*\).*/\1/p' \
		"$BUILD/$t.log" | tail -n 1)
	runs=${runs:-0}
	rate=$((runs / (secs > 0 ? secs : 1)))
	units=$(find "$corpus" -type f | wc -l)
	if [ "$rc" -eq 0 ]; then
		if [ "$MODE" = smoke ]; then
			echo "$t: $runs runs, 0 crashes ($seeds seeds, ${secs}s)"
		else
			echo "$t: $runs runs, 0 crashes (${secs}s, $rate runs/s, corpus $seeds -> $units)"
		fi
		PASSED=$((PASSED + 1))
		continue
	fi
	FAILED=$((FAILED + 1))
	KEEP=1
	crash=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$BUILD/$t.log" | tail -n 1)
	echo "$t: $runs runs, 1 crashes (exit $rc): ${crash:-no crash file} (log: $BUILD/$t.log)"
	grep -E '^(SUMMARY|==[0-9]+==ERROR)|runtime error|deadly signal|timeout after|out-of-memory' \
		"$BUILD/$t.log" | head -n 5 | sed 's/^/    /'
	if [ -n "$crash" ]; then
		echo "    reproduce: $BUILD/$t $crash"
		echo "    minimize:  $BUILD/$t -minimize_crash=1 -runs=20000 $crash"
	fi
done

if [ "$FAILED" -eq 0 ] && [ -z "${SFC_FUZZ_KEEP:-}" ] && [ -z "${KEEP:-}" ]; then
	rm -rf "$BUILD"
else
	echo "build dir kept: $BUILD"
fi
finish
