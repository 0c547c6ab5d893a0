#!/bin/sh
# Installs what sfconnect needs to build, run and test on Debian 12, as root.
# Idempotent: apt-get runs only when a package is missing. Quiet: apt's output
# goes to a log file; one line is printed.
set -eu

PACKAGES="build-essential autoconf automake libtool pkg-config
libfcgi-dev libcurl4-openssl-dev libcjson-dev libpq-dev libssl-dev libcmocka-dev
postgresql curl ca-certificates openssl python3 valgrind clang
libclang-rt-14-dev wrk faketime chromium fonts-dejavu-core debhelper"
# promtool (tests/integration/test_metrics.py checks /metrics and the alert rules)
PACKAGES="$PACKAGES prometheus"
# scripts/package-test.sh (a stage of scripts/test.sh): dpkg-buildpackage
# and Debian 12's debhelper (debhelper-compat 13)
PACKAGES="$PACKAGES dpkg-dev debhelper"
LOG="${SFC_DEPS_LOG:-/tmp/sfconnect-deps.log}"

missing=""
for p in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
		missing="$missing $p"
	fi
done
# Node.js and npm for the browser tests (tests/browser): any install will do.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	missing="$missing nodejs npm"
fi
# Any nginx flavour will do (the full one or nginx-light).
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
	missing="$missing nginx-light"
fi

if [ -z "$missing" ]; then
	echo "deps: all packages present"
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing:$missing (run as root to install them)" >&2
	exit 1
fi

# Do not let package scripts start the system's nginx or PostgreSQL: the
# scripts start their own throwaway instances.
policy=/usr/sbin/policy-rc.d
made_policy=no
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' >"$policy"
	chmod 755 "$policy"
	made_policy=yes
fi
cleanup() {
	if [ "$made_policy" = yes ]; then
		rm -f "$policy"
	fi
}
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
: >"$LOG"
echo "deps: installing:$missing" >>"$LOG"
if ! { apt-get update && apt-get install -y --no-install-recommends $missing; } >>"$LOG" 2>&1; then
	tail -n 20 "$LOG" >&2
	echo "deps: apt-get failed for:$missing (log: $LOG)" >&2
	exit 1
fi
echo "deps: installed$missing (log: $LOG)"
