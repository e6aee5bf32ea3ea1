/*
 * pam_authtok.c - pick an authentication method by a prefix on the token.
 *
 *   auth [success=1 default=ignore] pam_authtok.so prefix=duo: strip prompt=password:
 *
 * If the token (password) starts with prefix=, the module returns PAM_SUCCESS
 * (so the stack can jump over the default method) and, with strip, hands on
 * the token without the prefix.  Otherwise it leaves the token as typed and
 * returns PAM_IGNORE.  Either way the token is in PAM_AUTHTOK afterwards, for
 * the try_first_pass modules below.  The username is never touched.
 *
 * Never logged: the token, any part of it, or its length.
 */
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <security/pam_modules.h>
#include <security/pam_ext.h>

#include "authtok_logic.h"

/* Hand on the part of the token that follows the prefix. */
static int set_stripped(pam_handle_t *pamh, const char *tok, size_t len, size_t off)
{
	size_t n = len - off;
	char *copy;
	int rv;

	/*
	 * A private copy is required, not just tidy: pam_set_item() wipes the
	 * old PAM_AUTHTOK before it duplicates the new one, so a pointer into
	 * the old token (tok + off) would be read after it was zeroed.
	 */
	copy = malloc(n + 1);
	if (copy == NULL) {
		pam_syslog(pamh, LOG_CRIT, "out of memory");
		return PAM_BUF_ERR;
	}
	memcpy(copy, tok + off, n);
	copy[n] = '\0';

	rv = pam_set_item(pamh, PAM_AUTHTOK, copy);

	explicit_bzero(copy, n + 1);
	free(copy);

	if (rv != PAM_SUCCESS)
		pam_syslog(pamh, LOG_ERR, "cannot set PAM_AUTHTOK: %s",
			   pam_strerror(pamh, rv));
	return rv;
}

int pam_sm_authenticate(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	struct authtok_opts opts;
	enum authtok_opt_status st;
	const char *tok = NULL;
	size_t len, off;
	int bad, rv;

	(void)flags;

	/* Refuse a bad configuration before asking the user anything. */
	st = authtok_parse_opts(argc, argv, &opts, &bad);
	if (st != AUTHTOK_OPTS_OK) {
		if (bad >= 0 && argv[bad] != NULL)
			pam_syslog(pamh, LOG_ERR, "%s: \"%s\"; refusing",
				   authtok_opt_status_str(st), argv[bad]);
		else
			pam_syslog(pamh, LOG_ERR, "%s; refusing",
				   authtok_opt_status_str(st));
		return PAM_SERVICE_ERR;
	}

	/* The cached token if an earlier module set one, else a prompt. */
	rv = pam_get_authtok(pamh, PAM_AUTHTOK, &tok, opts.prompt);
	if (rv != PAM_SUCCESS || tok == NULL) {
		if (opts.debug)
			pam_syslog(pamh, LOG_DEBUG, "no token: %s",
				   pam_strerror(pamh, rv));
		return rv != PAM_SUCCESS ? rv : PAM_AUTHTOK_ERR;
	}

	len = strlen(tok);
	if (!authtok_match(&opts, tok, len, &off)) {
		if (opts.debug)
			pam_syslog(pamh, LOG_DEBUG,
				   "no prefix \"%s\": token handed on as typed",
				   opts.prefix);
		return PAM_IGNORE;
	}

	if (off > 0) {
		rv = set_stripped(pamh, tok, len, off);
		if (rv != PAM_SUCCESS)
			return rv;
	}
	if (opts.debug)
		pam_syslog(pamh, LOG_DEBUG, "prefix \"%s\" matched: token handed on %s",
			   opts.prefix, off > 0 ? "without it" : "whole");
	return PAM_SUCCESS;
}

int pam_sm_setcred(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	(void)pamh;
	(void)flags;
	(void)argc;
	(void)argv;
	return PAM_IGNORE;
}
