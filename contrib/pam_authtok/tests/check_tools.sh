#!/bin/sh
# check_tools.sh CC CLANG PKG_CONFIG VALGRIND - is everything "make check"
# needs installed?  Names the Debian package of whatever is missing.
CC=${1:-cc} CLANG=${2:-clang} PKG_CONFIG=${3:-pkg-config} VALGRIND=${4:-valgrind}
missing=""
need() { # need PACKAGE WHAT COMMAND...
	pkg=$1 what=$2
	shift 2
	if ! "$@" >/dev/null 2>&1; then
		echo "missing: $what (Debian package: $pkg)" >&2
		missing="$missing $pkg"
	fi
}
compiles() { # compiles COMPILER FLAGS... < source
	cc=$1
	shift
	$cc -x c - -o /dev/null "$@"
}
tmp_src='#include <security/pam_modules.h>
#include <security/pam_ext.h>
int main(void) { return pam_get_authtok == 0; }'

need gcc "C compiler $CC" sh -c "command -v $CC"
need make "make" sh -c "command -v make"
need pkg-config "$PKG_CONFIG" sh -c "command -v $PKG_CONFIG"
need binutils "readelf" sh -c "command -v readelf"
need libpam0g-dev "Linux-PAM headers and libpam.so" \
	sh -c "printf '%s\n' '$tmp_src' | $CC -x c - -o /dev/null -lpam"
need libpamtest0-dev "libpamtest.h / libpamtest.so" \
	sh -c "printf '#include <libpamtest.h>\nint main(void){return 0;}\n' | $CC -x c - -o /dev/null -lpamtest -lpam"
need libpam-wrapper "libpam_wrapper.so (pkg-config pam_wrapper)" $PKG_CONFIG --exists pam_wrapper
need libpam-wrapper "pam_get_items.so" \
	sh -c "test -f \"\$($PKG_CONFIG --variable=modules pam_wrapper)/pam_get_items.so\""
need valgrind "valgrind" sh -c "command -v $VALGRIND"
need "gcc (libasan8, libubsan1)" "AddressSanitizer/UBSan for $CC" \
	sh -c "printf 'int main(void){return 0;}\n' | $CC -x c - -o /dev/null -fsanitize=address,undefined"
need clang "clang" sh -c "command -v $CLANG"
need libclang-rt-14-dev "libFuzzer runtime for $CLANG" \
	sh -c "printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n){(void)d;(void)n;return 0;}\n' | $CLANG -x c - -o /dev/null -fsanitize=fuzzer,address,undefined"

if [ -n "$missing" ]; then
	echo "pam_authtok tests need:$missing" >&2
	echo "install with: apt-get install -y libpam0g-dev libpam-wrapper libpamtest0-dev valgrind pkg-config gcc make binutils clang libclang-rt-14-dev" >&2
	exit 1
fi
echo "check-tools: all build and test tools present"
