#!/bin/sh
# TAP: every key of src/cfg.c's table is in etc/sfconnect.conf.example and
# sfconnect.conf(5), and the example names no key cfg.c does not know.
srcdir=${srcdir:-.}
cfg="$srcdir/src/cfg.c"
example="$srcdir/etc/sfconnect.conf.example"
manpage="$srcdir/man/sfconnect.conf.5"
keys=$(sed -n 's/^[[:space:]]*{ "\([a-z_]*\)", CFG_.*/\1/p' "$cfg")
n=0
fail=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
notok() { n=$((n + 1)); fail=1; echo "not ok $n - $1"; }

if [ -z "$keys" ]; then
	echo "1..1"
	echo "not ok 1 - no keys found in $cfg"
	exit 1
fi
total=$(($(echo "$keys" | wc -l) * 2 + 1))
echo "1..$total"
for k in $keys; do
	if grep -Eq "^#?$k = ?" "$example"; then
		ok "example has $k"
	else
		notok "example lacks $k"
	fi
	if grep -Eq "^\\.It Cm $k\$" "$manpage"; then
		ok "sfconnect.conf.5 has $k"
	else
		notok "sfconnect.conf.5 lacks $k"
	fi
done
unknown=""
for k in $(sed -n 's/^#\{0,1\}\([a-z_][a-z_]*\) =.*/\1/p' "$example"); do
	echo "$keys" | grep -qx "$k" || unknown="$unknown $k"
done
if [ -z "$unknown" ]; then
	ok "example names only known keys"
else
	notok "example names unknown keys:$unknown"
fi
exit $fail
