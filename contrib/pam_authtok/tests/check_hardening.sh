#!/bin/sh
# check_hardening.sh MODULE.so - does the built module carry the hardening the
# Makefile asks for, and export nothing but the PAM entry points?
set -u
so=$1
rc=0
fail() { echo "hardening: FAIL: $*" >&2; rc=1; }

dyn=$(readelf -W -d "$so") || exit 1
prog=$(readelf -W -l "$so") || exit 1
echo "$dyn" | grep -Eq 'FLAGS.*BIND_NOW|FLAGS_1.*NOW' || fail "not linked with -z now"
echo "$prog" | grep -q 'GNU_RELRO' || fail "no RELRO segment (-z relro)"
echo "$prog" | grep 'GNU_STACK' | grep -q 'RWE' && fail "executable stack"
echo "$dyn" | grep -q 'TEXTREL' && fail "text relocations (not -fPIC?)"
echo "$dyn" | grep -q 'libpam.so' || fail "not linked against libpam"
readelf -W --dyn-syms "$so" | grep -q '__stack_chk_fail' ||
	fail "no stack protector (-fstack-protector-strong)"
exported=$(readelf -W --dyn-syms "$so" |
	awk '$5 == "GLOBAL" && $7 != "UND" && $4 == "FUNC" { print $8 }' | sort | tr '\n' ' ')
[ "$exported" = "pam_sm_authenticate pam_sm_setcred " ] ||
	fail "exports \"$exported\", expected only pam_sm_authenticate pam_sm_setcred"
[ $rc = 0 ] && echo "hardening: $so: BIND_NOW, RELRO, no exec stack, no TEXTREL, stack protector; exports: $exported"
exit $rc
