/*
 * test_logic.c - unit tests of the pure part of pam_authtok (option parsing,
 * prefix decision).  No PAM, no framework: prints one line per failed check
 * and "N passed, M failed"; exit status 1 on any failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authtok_logic.h"

static int passed, failed;

#define CHECK(cond) do { \
		if (cond) { passed++; } else { failed++; \
			printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); } \
	} while (0)

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

static enum authtok_opt_status parse(int argc, const char *const *argv,
				     struct authtok_opts *o, int *bad)
{
	return authtok_parse_opts(argc, argv, o, bad);
}

static void test_article_line(void)
{
	const char *argv[] = { "prefix=duo:", "strip", "prompt=password:" };
	struct authtok_opts o;
	int bad = 42;

	CHECK(parse(N(argv), argv, &o, &bad) == AUTHTOK_OPTS_OK);
	CHECK(bad == -1);
	CHECK(o.prefix == argv[0] + 7 && strcmp(o.prefix, "duo:") == 0);
	CHECK(o.prefix_len == 4);
	CHECK(o.strip && !o.debug);
	CHECK(o.prompt != NULL && strcmp(o.prompt, "password:") == 0);
}

static void test_minimal_and_flags(void)
{
	const char *a1[] = { "prefix=vasco:" };
	const char *a2[] = { "debug", "prefix=x", "strip", "strip", "debug" };
	const char *a3[] = { "prefix=a=b", "prompt=" };
	const char *a4[] = { "prefix=\xff\xfe:" };
	struct authtok_opts o;
	int bad;

	CHECK(parse(N(a1), a1, &o, &bad) == AUTHTOK_OPTS_OK);
	CHECK(!o.strip && !o.debug && o.prompt == NULL && o.prefix_len == 6);
	/* Repeating a flag changes nothing, so it is accepted. */
	CHECK(parse(N(a2), a2, &o, &bad) == AUTHTOK_OPTS_OK);
	CHECK(o.strip && o.debug && strcmp(o.prefix, "x") == 0);
	/* Only the first '=' separates; an empty prompt is a prompt. */
	CHECK(parse(N(a3), a3, &o, &bad) == AUTHTOK_OPTS_OK);
	CHECK(strcmp(o.prefix, "a=b") == 0 && o.prompt != NULL && o.prompt[0] == '\0');
	/* Non-UTF-8 prefixes are bytes like any other. */
	CHECK(parse(N(a4), a4, &o, &bad) == AUTHTOK_OPTS_OK && o.prefix_len == 3);
}

static void test_refused(void)
{
	const char *none[] = { "strip", "debug" };
	const char *empty[] = { "strip", "prefix=" };
	const char *unknown[] = { "prefix=duo:", "strip", "stirp" };
	const char *cased[] = { "prefix=duo:", "Strip" };
	const char *valued[] = { "prefix=duo:", "strip=1" };
	const char *nokey[] = { "prefix" };
	const char *blank[] = { "prefix=duo:", "" };
	const char *two[] = { "prefix=duo:", "prefix=vasco:" };
	const char *twoprompts[] = { "prompt=a", "prefix=duo:", "prompt=b" };
	const char *withnull[] = { "prefix=duo:", NULL };
	const char *ptfp[] = { "prefix=duo:", "try_first_pass" };
	struct authtok_opts o;
	int bad;

	CHECK(parse(0, NULL, &o, &bad) == AUTHTOK_OPTS_NO_PREFIX && bad == -1);
	CHECK(parse(N(none), none, &o, &bad) == AUTHTOK_OPTS_NO_PREFIX && bad == -1);
	CHECK(parse(N(empty), empty, &o, &bad) == AUTHTOK_OPTS_EMPTY_PREFIX && bad == 1);
	CHECK(parse(N(unknown), unknown, &o, &bad) == AUTHTOK_OPTS_UNKNOWN && bad == 2);
	CHECK(parse(N(cased), cased, &o, &bad) == AUTHTOK_OPTS_UNKNOWN && bad == 1);
	CHECK(parse(N(valued), valued, &o, &bad) == AUTHTOK_OPTS_UNKNOWN && bad == 1);
	CHECK(parse(N(nokey), nokey, &o, &bad) == AUTHTOK_OPTS_UNKNOWN && bad == 0);
	CHECK(parse(N(blank), blank, &o, &bad) == AUTHTOK_OPTS_UNKNOWN && bad == 1);
	CHECK(parse(N(two), two, &o, &bad) == AUTHTOK_OPTS_DUPLICATE && bad == 1);
	CHECK(parse(N(twoprompts), twoprompts, &o, &bad) == AUTHTOK_OPTS_DUPLICATE && bad == 2);
	CHECK(parse(N(withnull), withnull, &o, &bad) == AUTHTOK_OPTS_UNKNOWN && bad == 1);
	/* Not ours: pam_get_authtok would read it, so refusing it is safer
	 * than silently changing where the token comes from. */
	CHECK(parse(N(ptfp), ptfp, &o, &bad) == AUTHTOK_OPTS_UNKNOWN && bad == 1);
}

static void test_status_strings(void)
{
	int s;

	for (s = AUTHTOK_OPTS_OK; s <= AUTHTOK_OPTS_EMPTY_PREFIX; s++)
		CHECK(authtok_opt_status_str((enum authtok_opt_status)s) != NULL);
	CHECK(strcmp(authtok_opt_status_str((enum authtok_opt_status)99), "invalid status") == 0);
}

struct mcase {
	const char *prefix;
	int strip;
	const char *tok;
	size_t len;
	int matched;
	size_t off;
};

static void test_match(void)
{
	static const struct mcase cases[] = {
		{ "duo:", 1, "duo:secret", 10, 1, 4 },
		{ "duo:", 0, "duo:secret", 10, 1, 0 },
		{ "duo:", 1, "secret", 6, 0, 0 },
		{ "duo:", 1, "duo:", 4, 1, 4 },		/* exactly the prefix */
		{ "duo:", 0, "duo:", 4, 1, 0 },
		{ "duo:", 1, "duo", 3, 0, 0 },		/* shorter than the prefix */
		{ "duo:", 1, "", 0, 0, 0 },		/* empty */
		{ "duo:", 1, "duo;x", 5, 0, 0 },	/* last byte differs */
		{ "duo:", 1, "DUO:x", 5, 0, 0 },	/* case-sensitive */
		{ "duo:", 1, "xduo:", 5, 0, 0 },	/* not at the start */
		{ "duo:", 1, "duo:duo:x", 9, 1, 4 },	/* stripped once */
		{ "duo:", 1, "duo:\0x", 6, 1, 4 },	/* length, not NUL, ends it */
		{ "\xff:", 1, "\xff:\x80\xfe", 4, 1, 2 },	/* non-UTF-8 */
		{ "\xff:", 1, "\xfe:\x80", 3, 0, 0 },
		{ "duo:", 1, "duo:xyz", 3, 0, 0 },	/* len is authoritative */
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct mcase *c = &cases[i];
		struct authtok_opts o = { .prefix = c->prefix, .prefix_len = strlen(c->prefix),
					  .strip = c->strip };
		size_t off = 99;
		int m = authtok_match(&o, c->tok, c->len, &off);

		if (m != c->matched || off != c->off) {
			printf("FAIL match case %zu: matched %d off %zu, expected %d %zu\n",
			       i, m, off, c->matched, c->off);
			failed++;
		} else {
			passed++;
		}
	}
}

static void test_match_edges(void)
{
	struct authtok_opts o = { .prefix = "duo:", .prefix_len = 4, .strip = true };
	struct authtok_opts none = { 0 };
	size_t off = 99, n = 65536;
	char *big = malloc(n);

	/* A zero-length token may come with a NULL pointer: never read. */
	CHECK(!authtok_match(&o, NULL, 0, &off) && off == 0);
	/* Options that did not parse never match. */
	off = 99;
	CHECK(!authtok_match(&none, "duo:x", 5, &off) && off == 0);

	CHECK(big != NULL);
	if (big == NULL)
		return;
	memset(big, 0xa5, n);
	memcpy(big, "duo:", 4);
	CHECK(authtok_match(&o, big, n, &off) && off == 4);
	big[3] = ';';
	CHECK(!authtok_match(&o, big, n, &off) && off == 0);
	free(big);
}

int main(void)
{
	test_article_line();
	test_minimal_and_flags();
	test_refused();
	test_status_strings();
	test_match();
	test_match_edges();
	printf("unit: %d passed, %d failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
