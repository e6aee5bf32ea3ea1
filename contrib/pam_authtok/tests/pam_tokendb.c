/*
 * pam_tokendb.c - TEST-ONLY PAM module standing in for a try_first_pass
 * backend (VASCO over RADIUS, the campus Kerberos password, Duo).
 * Never install it: it reads plain-text passwords.
 *
 *   pam_tokendb.so name=vasco db=/path/vasco.db log=/path/calls.log [mode=...]
 *
 * mode=token (default): like a try_first_pass module that finds a token:
 *     read PAM_AUTHTOK (never prompt) and compare it with the user's line
 *     "user:password" in db (password = rest of the line, any bytes).
 * mode=user: like a Duo push that the user approves: succeed iff a line in
 *     db is exactly "user"; the token is not read.
 * mode=note: succeed and only record the call (a probe for stack paths).
 *
 * Every call appends "<name> <user> <result>\n" to log, so a test can count
 * what each database was asked.  The token is never written anywhere.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <security/pam_modules.h>

struct args {
	const char *name, *db, *log, *mode;
};

static int parse(int argc, const char **argv, struct args *a)
{
	int i;

	memset(a, 0, sizeof(*a));
	a->mode = "token";
	for (i = 0; i < argc; i++) {
		if (strncmp(argv[i], "name=", 5) == 0)
			a->name = argv[i] + 5;
		else if (strncmp(argv[i], "db=", 3) == 0)
			a->db = argv[i] + 3;
		else if (strncmp(argv[i], "log=", 4) == 0)
			a->log = argv[i] + 4;
		else if (strncmp(argv[i], "mode=", 5) == 0)
			a->mode = argv[i] + 5;
		else
			return -1;
	}
	if (a->name == NULL || a->log == NULL)
		return -1;
	if (strcmp(a->mode, "note") != 0 && a->db == NULL)
		return -1;
	return 0;
}

static void record(const struct args *a, const char *user, const char *result)
{
	FILE *f = fopen(a->log, "a");

	if (f == NULL)
		return;
	fprintf(f, "%s %s %s\n", a->name, user, result);
	fclose(f);
}

/*
 * Look the user up in db.  want_tok == NULL: is there a line that is exactly
 * the user?  Otherwise: is there a line "user:<want_tok>"?  Lines may be any
 * length; each is wiped before the buffer is reused or freed.
 */
static int lookup(const char *db, const char *user, const char *want_tok)
{
	FILE *f = fopen(db, "r");
	char *line = NULL;
	size_t cap = 0, ulen = strlen(user);
	ssize_t n;
	int found = 0;

	if (f == NULL)
		return 0;
	while (!found && (n = getline(&line, &cap, f)) >= 0) {
		if (n > 0 && line[n - 1] == '\n')
			line[--n] = '\0';
		if (want_tok == NULL)
			found = strcmp(line, user) == 0;
		else
			found = (size_t)n > ulen && strncmp(line, user, ulen) == 0 &&
				line[ulen] == ':' && strcmp(line + ulen + 1, want_tok) == 0;
		explicit_bzero(line, cap);
	}
	free(line);
	fclose(f);
	return found;
}

int pam_sm_authenticate(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	struct args a;
	const void *user = NULL, *tok = NULL;
	int ok;

	(void)flags;
	if (parse(argc, argv, &a) != 0)
		return PAM_SERVICE_ERR;
	if (pam_get_item(pamh, PAM_USER, &user) != PAM_SUCCESS || user == NULL)
		return PAM_USER_UNKNOWN;

	if (strcmp(a.mode, "note") == 0) {
		record(&a, user, "note");
		return PAM_SUCCESS;
	}
	if (strcmp(a.mode, "user") == 0) {
		ok = lookup(a.db, user, NULL);
	} else {
		if (pam_get_item(pamh, PAM_AUTHTOK, &tok) != PAM_SUCCESS || tok == NULL) {
			record(&a, user, "notoken");
			return PAM_AUTH_ERR;
		}
		ok = lookup(a.db, user, tok);
	}
	record(&a, user, ok ? "ok" : "fail");
	return ok ? PAM_SUCCESS : PAM_AUTH_ERR;
}

int pam_sm_setcred(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	(void)pamh;
	(void)flags;
	(void)argc;
	(void)argv;
	return PAM_SUCCESS;
}
