/*
 * authtok_logic.c - option parsing and the prefix decision for pam_authtok.
 * Pure functions only; see authtok_logic.h.
 */
#include "authtok_logic.h"

#include <string.h>

/* If arg starts with key (e.g. "prefix="), return what follows it, else NULL. */
static const char *value_of(const char *arg, const char *key)
{
	size_t n = strlen(key);

	return strncmp(arg, key, n) == 0 ? arg + n : NULL;
}

enum authtok_opt_status authtok_parse_opts(int argc, const char *const *argv,
					   struct authtok_opts *opts, int *bad)
{
	const char *v;
	int i;

	memset(opts, 0, sizeof(*opts));
	*bad = -1;

	for (i = 0; i < argc; i++) {
		const char *arg = argv[i];

		if (arg == NULL) {
			*bad = i;
			return AUTHTOK_OPTS_UNKNOWN;
		}
		if ((v = value_of(arg, "prefix=")) != NULL) {
			/* Two prefixes in one line are a typo, not a feature:
			 * several prefixes take several module lines. */
			if (opts->prefix != NULL) {
				*bad = i;
				return AUTHTOK_OPTS_DUPLICATE;
			}
			if (*v == '\0') {
				*bad = i;
				return AUTHTOK_OPTS_EMPTY_PREFIX;
			}
			opts->prefix = v;
			opts->prefix_len = strlen(v);
		} else if ((v = value_of(arg, "prompt=")) != NULL) {
			if (opts->prompt != NULL) {
				*bad = i;
				return AUTHTOK_OPTS_DUPLICATE;
			}
			opts->prompt = v;
		} else if (strcmp(arg, "strip") == 0) {
			opts->strip = true;
		} else if (strcmp(arg, "debug") == 0) {
			opts->debug = true;
		} else {
			*bad = i;
			return AUTHTOK_OPTS_UNKNOWN;
		}
	}

	if (opts->prefix == NULL)
		return AUTHTOK_OPTS_NO_PREFIX;
	return AUTHTOK_OPTS_OK;
}

const char *authtok_opt_status_str(enum authtok_opt_status st)
{
	switch (st) {
	case AUTHTOK_OPTS_OK:
		return "ok";
	case AUTHTOK_OPTS_UNKNOWN:
		return "unknown option";
	case AUTHTOK_OPTS_DUPLICATE:
		return "option given twice";
	case AUTHTOK_OPTS_NO_PREFIX:
		return "missing required option prefix=";
	case AUTHTOK_OPTS_EMPTY_PREFIX:
		return "empty prefix= (an empty prefix would match every token)";
	}
	return "invalid status";
}

bool authtok_match(const struct authtok_opts *opts, const char *tok, size_t len,
		   size_t *off)
{
	*off = 0;
	/* Length first: memcmp must not read past the token. */
	if (opts->prefix == NULL || opts->prefix_len == 0 ||
	    len < opts->prefix_len ||
	    memcmp(tok, opts->prefix, opts->prefix_len) != 0)
		return false;
	if (opts->strip)
		*off = opts->prefix_len;
	return true;
}
