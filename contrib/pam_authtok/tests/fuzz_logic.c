/*
 * fuzz_logic.c - fuzz target for the pure logic (authtok_logic.c), driven by
 * libFuzzer (clang -fsanitize=fuzzer,address,undefined) or by the seeded
 * random loop in fuzz_random_main.c.
 *
 * Input layout: byte 0 picks how many module arguments follow (0..7); the
 * arguments are the next '\n'-separated pieces (cut at a NUL, as PAM's argv
 * are C strings); everything after them is the token, any bytes, length-
 * aware.  Each argument and the token get their own exact-size heap block so
 * that AddressSanitizer sees any read past the end.
 *
 * Invariants checked (abort() on violation):
 *  - parsing: OK exactly when every argument is prefix=NONEMPTY (once),
 *    prompt=ANY (once), strip or debug; the fields point into argv; the bad
 *    index names the argument the status is about;
 *  - matching agrees with a naive byte-by-byte reference, the token handed
 *    on is a suffix of the input (the whole input without strip, the input
 *    minus the prefix with it), and *off never exceeds the length.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authtok_logic.h"

#define MAX_ARGS 7

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* How often the interesting branches ran (read by fuzz_random_main.c). */
unsigned long fuzz_parsed_ok, fuzz_prefix_matched;

static void fail(const char *what)
{
	fprintf(stderr, "invariant violated: %s\n", what);
	abort();
}

static int starts(const char *s, const char *key)
{
	return strncmp(s, key, strlen(key)) == 0;
}

/* What the parser should say, computed the slow and obvious way. */
static enum authtok_opt_status expected_status(int argc, char **argv, int *bad)
{
	int i, j;

	for (i = 0; i < argc; i++) {
		const char *a = argv[i];

		*bad = i;
		if (starts(a, "prefix=") || starts(a, "prompt=")) {
			for (j = 0; j < i; j++)
				if (strncmp(argv[j], a, 7) == 0)
					return AUTHTOK_OPTS_DUPLICATE;
			if (strcmp(a, "prefix=") == 0)
				return AUTHTOK_OPTS_EMPTY_PREFIX;
		} else if (strcmp(a, "strip") != 0 && strcmp(a, "debug") != 0) {
			return AUTHTOK_OPTS_UNKNOWN;
		}
	}
	*bad = -1;
	for (i = 0; i < argc; i++)
		if (starts(argv[i], "prefix="))
			return AUTHTOK_OPTS_OK;
	return AUTHTOK_OPTS_NO_PREFIX;
}

static void check_parse(int argc, char **argv, const struct authtok_opts *o,
			enum authtok_opt_status st, int bad)
{
	int want_bad, i, strip = 0, debug = 0;
	const char *prefix = NULL, *prompt = NULL;

	if (st != expected_status(argc, argv, &want_bad) || bad != want_bad)
		fail("status or bad index differs from the reference");
	if (authtok_opt_status_str(st) == NULL)
		fail("no status string");
	if (st != AUTHTOK_OPTS_OK)
		return;
	for (i = 0; i < argc; i++) {
		if (starts(argv[i], "prefix="))
			prefix = argv[i] + 7;
		else if (starts(argv[i], "prompt="))
			prompt = argv[i] + 7;
		strip |= strcmp(argv[i], "strip") == 0;
		debug |= strcmp(argv[i], "debug") == 0;
	}
	if (o->prefix != prefix || o->prefix_len != strlen(prefix) || o->prefix_len == 0)
		fail("prefix not taken from its argument");
	if (o->prompt != prompt)
		fail("prompt not taken from its argument");
	if (o->strip != strip || o->debug != debug)
		fail("strip/debug flags wrong");
}

static void check_match(const struct authtok_opts *o, const char *tok, size_t len)
{
	size_t off = (size_t)-1, i;
	int m = authtok_match(o, tok, len, &off);
	int ref = o->prefix_len > 0 && len >= o->prefix_len;

	for (i = 0; ref && i < o->prefix_len; i++)
		ref = tok[i] == o->prefix[i];
	if (m != ref)
		fail("match differs from the byte-by-byte reference");
	if (off > len)
		fail("offset past the end of the token");
	if (off != (m && o->strip ? o->prefix_len : 0))
		fail("offset is neither 0 nor the prefix length as it should be");
	/* Handed on: tok[off..len) - a suffix of the input by construction;
	 * with strip it is what follows the prefix, and prefix + it == input. */
	if (m && o->strip && memcmp(tok, o->prefix, off) != 0)
		fail("stripped part is not the prefix");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *argv[MAX_ARGS] = { 0 };
	struct authtok_opts o, fixed;
	enum authtok_opt_status st;
	int argc = 0, want, bad, i;
	size_t pos = 1, tlen;
	char *tok;

	if (size == 0)
		return 0;
	want = data[0] % (MAX_ARGS + 1);
	while (argc < want && pos <= size) {
		const uint8_t *nl = memchr(data + pos, '\n', size - pos);
		size_t n = nl ? (size_t)(nl - (data + pos)) : size - pos;
		const uint8_t *nul = memchr(data + pos, 0, n);
		size_t cn = nul ? (size_t)(nul - (data + pos)) : n;

		argv[argc] = malloc(cn + 1);
		if (argv[argc] == NULL)
			abort();
		memcpy(argv[argc], data + pos, cn);
		argv[argc][cn] = '\0';
		argc++;
		pos += n + 1;
	}
	tlen = pos < size ? size - pos : 0;
	tok = malloc(tlen ? tlen : 1);
	if (tok == NULL)
		abort();
	if (tlen)
		memcpy(tok, data + pos, tlen);

	st = authtok_parse_opts(argc, (const char *const *)argv, &o, &bad);
	check_parse(argc, argv, &o, st, bad);
	if (st == AUTHTOK_OPTS_OK) {
		size_t off;

		fuzz_parsed_ok++;
		fuzz_prefix_matched += authtok_match(&o, tok, tlen, &off);
		check_match(&o, tok, tlen);
		o.strip = !o.strip;
		check_match(&o, tok, tlen);
	}
	/* The token also meets the article's own options, both ways. */
	fixed = (struct authtok_opts){ .prefix = "duo:", .prefix_len = 4, .strip = true };
	check_match(&fixed, tok, tlen);
	fixed.strip = false;
	check_match(&fixed, tok, tlen);

	free(tok);
	for (i = 0; i < argc; i++)
		free(argv[i]);
	return 0;
}
