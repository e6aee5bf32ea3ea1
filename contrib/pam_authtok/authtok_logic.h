/*
 * authtok_logic.h - the pure part of pam_authtok: option parsing and the
 * prefix decision.  No PAM, no allocation, no I/O, so it can be unit-tested
 * and fuzzed on its own (tests/test_logic.c, tests/fuzz_logic.c).
 */
#ifndef AUTHTOK_LOGIC_H
#define AUTHTOK_LOGIC_H

#include <stdbool.h>
#include <stddef.h>

struct authtok_opts {
	const char *prefix;	/* points into argv, not owned; never NULL after OK */
	size_t prefix_len;	/* > 0 after OK */
	const char *prompt;	/* points into argv; NULL: PAM's default prompt */
	bool strip;		/* hand on the token without the prefix */
	bool debug;		/* log decisions (never a token) */
};

enum authtok_opt_status {
	AUTHTOK_OPTS_OK = 0,
	AUTHTOK_OPTS_UNKNOWN,		/* argv[*bad] is no option of ours */
	AUTHTOK_OPTS_DUPLICATE,		/* argv[*bad] repeats prefix= or prompt= */
	AUTHTOK_OPTS_NO_PREFIX,		/* no prefix= at all (*bad is -1) */
	AUTHTOK_OPTS_EMPTY_PREFIX,	/* argv[*bad] is "prefix=" with no value */
};

/*
 * Parse the module arguments.  On anything but AUTHTOK_OPTS_OK, *bad is the
 * index of the offending argument (or -1 when none is to blame) and *opts must
 * not be used.  A NULL argv entry counts as an unknown option.
 */
enum authtok_opt_status authtok_parse_opts(int argc, const char *const *argv,
					   struct authtok_opts *opts, int *bad);

/* A short, static, human-readable description of a status (for the log). */
const char *authtok_opt_status_str(enum authtok_opt_status st);

/*
 * Does the token (len bytes, any values) start with opts->prefix?  If so,
 * returns true and sets *off to where the token to hand on starts:
 * opts->prefix_len with strip, 0 without.  If not, returns false and sets
 * *off to 0 (the token goes on as typed).  Never reads past tok[len - 1].
 */
bool authtok_match(const struct authtok_opts *opts, const char *tok, size_t len,
		   size_t *off);

#endif /* AUTHTOK_LOGIC_H */
