#!/bin/bash
# Brings up the whole local stack and keeps it running until Ctrl-C:
# a throwaway PostgreSQL cluster, the Salesforce simulator (tests/fakesf),
# sfconnectd, and nginx on 127.0.0.1:8080 (SFC_PORT to change it); creates the
# demo org "demo", prints its API keys and curl lines to paste (the connect
# follows start_url with a cookie jar, as a browser would). Everything
# lives in one /tmp/sfc* directory that is removed on exit (SFC_KEEP=1 keeps it).
set -eu

cd "$(dirname "$0")/.."
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

if [ -z "${SFC_SKIP_DEPS:-}" ]; then
	sh scripts/deps.sh
fi

LOG=/tmp/sfconnect-build.log
echo "building (log: $LOG)..."
PREV=""
[ -x ./config.status ] && PREV=$(./config.status --config 2>/dev/null || true)
# A tree configured with other flags (e.g. sanitizers by hand) is rebuilt from clean.
if ! { ./autogen.sh && ./configure &&
	{ [ -z "$PREV" ] || [ "$PREV" = "$(./config.status --config)" ] || make clean; } &&
	make -j2; } >"$LOG" 2>&1; then
	tail -n 40 "$LOG"
	echo "run-local: build failed (log: $LOG)" >&2
	exit 1
fi

# The page lives at /admin/ here: the banner's Reconnect action points there.
export SFCONNECT_BANNER_ACTION_URL="${SFCONNECT_BANNER_ACTION_URL:-/admin/}"
exec "$PY" tests/integration/harness.py --serve --port "${SFC_PORT:-8080}"
