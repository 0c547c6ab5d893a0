#!/bin/sh
# Builds the Debian package from a copy of the sources
# (dpkg-buildpackage -us -uc -b, Debian 12's debhelper), checks its
# maintainer scripts (system user, unit enabled), unpacks it into a scratch
# root (dpkg -x) and runs tests/integration/test_install.py against that
# root: the packaged sfconnectd serves through nginx on the test PostgreSQL.
# Needs debhelper (scripts/deps.sh installs it). Ends with "N passed, N failed".
set -u
cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)
WORK=$(mktemp -d /tmp/sfc-pkg.XXXXXX)
LOG="$WORK/build.log"
fail() { echo "FAILED: $*"; [ -f "$LOG" ] && tail -n 30 "$LOG"; echo "0 passed, 1 failed"; exit 1; }

command -v dpkg-buildpackage >/dev/null && command -v dh >/dev/null ||
    fail "dpkg-buildpackage or dh missing (apt-get install debhelper)"
mkdir -p "$WORK/src"
git -C "$ROOT" ls-files -z -c -o --exclude-standard |
    tar --null -T - -cf - | tar -xf - -C "$WORK/src" || fail "copying the sources"
( cd "$WORK/src" && DEB_BUILD_OPTIONS=nocheck dpkg-buildpackage -us -uc -b ) \
    >"$LOG" 2>&1 || fail "dpkg-buildpackage"
DEB=$(ls "$WORK"/sfconnect_*.deb 2>/dev/null | head -n 1)
[ -n "$DEB" ] || fail "no .deb built"
echo "built $(basename "$DEB")"
dpkg-deb -e "$DEB" "$WORK/control" || fail "dpkg-deb -e"
grep -q 'adduser --system' "$WORK/control/postinst" || fail "postinst makes no system user"
grep -q 'deb-systemd-helper.*enable' "$WORK/control/postinst" || fail "postinst enables no unit"
dpkg -x "$DEB" "$WORK/root" || fail "dpkg -x"
SFC_INSTALLED_ROOT="$WORK/root" /usr/bin/python3 tests/integration/run.py \
    --counts "$WORK/counts" test_install
rc=$?
read -r p f <"$WORK/counts" 2>/dev/null || { p=0; f=1; }
# the postinst checks above count as one test
p=$((p + 1))
[ "$rc" -eq 0 ] && rm -rf "$WORK"
echo "$p passed, $f failed"
[ "$rc" -eq 0 ]
