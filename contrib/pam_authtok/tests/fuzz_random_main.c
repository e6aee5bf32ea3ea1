/*
 * fuzz_random_main.c - a bounded, reproducible driver for fuzz_logic.c that
 * needs no clang: a fixed seed, N inputs built from option fragments, prefix
 * fragments and random bytes (some up to ~70 KB).
 *
 *   fuzz_random SEED ITERATIONS
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
extern unsigned long fuzz_parsed_ok, fuzz_prefix_matched;

static uint64_t state;

static uint64_t next(void)	/* xorshift64* */
{
	state ^= state >> 12;
	state ^= state << 25;
	state ^= state >> 27;
	return state * 2685821657736338717ULL;
}

static const char *const pieces[] = {
	"prefix=", "prompt=", "strip", "debug", "duo:", "vasco:", "=", "\n",
	"prefix=duo:", "prefix=\n", "", "\xff", "\x80\xfe", "STRIP", "prefix",
};

static size_t put(uint8_t *buf, size_t len, size_t cap, const void *p, size_t n)
{
	if (len + n > cap)
		n = cap - len;
	memcpy(buf + len, p, n);
	return len + n;
}

static size_t put_random(uint8_t *buf, size_t len, size_t cap, size_t n)
{
	while (n-- > 0 && len < cap)
		buf[len++] = (uint8_t)next();
	return len;
}

/* Fragments and random runs in any order: mostly refused options. */
static size_t unstructured(uint8_t *buf, size_t size)
{
	size_t len = 0, cap = (next() % 64 == 0) ? size : 96;

	buf[len++] = (uint8_t)next();
	while (len < cap && next() % 16 != 0) {
		if (next() % 2) {
			const char *p = pieces[next() % (sizeof(pieces) / sizeof(pieces[0]))];

			len = put(buf, len, cap, p, strlen(p));
		} else {
			len = put_random(buf, len, cap, 1 + next() % (cap > 96 ? 8192 : 8));
		}
	}
	return len;
}

/* A mostly valid option line, and a token that often carries the prefix:
 * this is where the matching and stripping invariants get exercised. */
static size_t structured(uint8_t *buf, size_t size)
{
	static const char *const prefixes[] = { "duo:", "vasco:", "\xff:", "d", "duo:duo:" };
	static const char *const flags[] = { "strip\n", "debug\n", "prompt=password:\n",
					     "prompt=\n", "stirp\n", "prefix=x\n" };
	const char *prefix = prefixes[next() % (sizeof(prefixes) / sizeof(prefixes[0]))];
	size_t len = 1, k = 1, cap = (next() % 32 == 0) ? size : 512, f;

	len = put(buf, len, cap, "prefix=", 7);
	len = put(buf, len, cap, prefix, strlen(prefix));
	len = put(buf, len, cap, "\n", 1);
	for (f = next() % 4; f > 0; f--, k++) {
		const char *p = flags[next() % (sizeof(flags) / sizeof(flags[0]))];

		len = put(buf, len, cap, p, strlen(p));
	}
	buf[0] = (uint8_t)k;
	if (next() % 2)		/* the prefix, whole or cut short */
		len = put(buf, len, cap, prefix, strlen(prefix) - next() % 2);
	return put_random(buf, len, cap, next() % (cap - len + 1));
}

int main(int argc, char **argv)
{
	static uint8_t buf[70 * 1024];
	unsigned long long i, n;
	struct timespec t0, t1;
	double secs;

	if (argc != 3) {
		fprintf(stderr, "usage: %s SEED ITERATIONS\n", argv[0]);
		return 2;
	}
	state = strtoull(argv[1], NULL, 0) | 1;
	n = strtoull(argv[2], NULL, 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < n; i++) {
		size_t len = next() % 2 ? structured(buf, sizeof(buf)) : unstructured(buf, sizeof(buf));

		LLVMFuzzerTestOneInput(buf, len);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("fuzz_random: seed %s, %llu executions in %.2f s (%lu with valid options, "
	       "%lu of them prefixed), no invariant violated\n",
	       argv[1], n, secs, fuzz_parsed_ok, fuzz_prefix_matched);
	return 0;
}
