/*
 * test_stack.c - pam_authtok in real PAM stacks, run by libpamtest on top of
 * cwrap's pam_wrapper (no root, never /etc/pam.d).
 *
 *   test_stack MODDIR PAM_WRAPPER_MODDIR SYS_PAMDIR
 *
 * MODDIR holds pam_authtok.so and the test-only pam_tokendb.so.  The parent
 * process writes service files and password databases into a private temp
 * dir, then runs itself again as a child with LD_PRELOAD=libpam_wrapper.so
 * and PAM_WRAPPER_SERVICE_DIR set (pam_wrapper reads them in a constructor,
 * so they must be in place before the process starts), waits, and removes
 * the temp dir.  Under valgrind, use --trace-children=yes.
 *
 * The article's stack is modelled with three pam_tokendb stand-ins: "vasco"
 * (RADIUS, try_first_pass), "krb5" (campus password, try_first_pass) and
 * "duo" (push approval: user listed).  Each logs its calls, so the tests
 * count what every database was asked.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <security/pam_appl.h>
#include <libpamtest.h>

#define BIG_LEN 65536		/* a 64 KiB token */

static const char *moddir, *pwrapdir, *sysdir;
static char tdir[PATH_MAX];
static int passed, failed;
static const char *current = "";
static int failed_before;	/* failures before the current case */

/* Start a named case; end_case() prints its one-line verdict. */
static void begin(const char *name)
{
	current = name;
	failed_before = failed;
}

static void end_case(const char *service, const char *result)
{
	printf("%s %-46s %-18s -> %s\n", failed == failed_before ? "ok  " : "FAIL",
	       current, service, result);
}

/* Secrets that must never show up in any log line. */
#define OTP	"123456789012"		/* VASCO pin+otp of joan */
#define CAMPUS	"campus-Pw-joan"	/* joan's campus password */
#define CAMPUS2	"campus-Pw-noduo"	/* user without Duo approval */
#define WRONG	"wrong-Pw-xyzzy"
static const char NONUTF[] = "\xff\xfe\x80 abc\xc3\x28\xed\xa0\x80";
static char *big;		/* BIG_LEN bytes, all values 1..255 but '\n' */

static void check(int ok, const char *what, ...)
{
	va_list ap;

	if (ok) {
		passed++;
		return;
	}
	failed++;
	printf("FAIL [%s] ", current);
	va_start(ap, what);
	vprintf(what, ap);
	va_end(ap);
	printf("\n");
}

/* 64 KiB of every byte value but NUL and '\n' (PAM tokens are C strings;
 * the test databases are line based). */
static void make_big(void)
{
	size_t i;

	big = malloc(BIG_LEN + 1);
	if (big == NULL)
		exit(2);
	for (i = 0; i < BIG_LEN; i++) {
		unsigned char c = (unsigned char)(1 + (i * 7) % 255);

		big[i] = c == '\n' ? 'x' : (char)c;
	}
	big[BIG_LEN] = '\0';
}

/* ---- files ------------------------------------------------------------- */

/* snprintf that refuses to truncate (paths). */
__attribute__((format(printf, 3, 4)))
static void xsnprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= size) {
		fprintf(stderr, "path too long\n");
		exit(2);
	}
}

static void path(char *buf, const char *name)
{
	xsnprintf(buf, PATH_MAX, "%s/%s", tdir, name);
}

static void write_file(const char *name, const char *text, size_t len)
{
	char p[PATH_MAX];
	FILE *f;

	path(p, name);
	f = fopen(p, "w");
	if (f == NULL || fwrite(text, 1, len, f) != len || fclose(f) != 0) {
		perror(p);
		exit(2);
	}
}

static char *read_file(const char *name, size_t *len)
{
	char p[PATH_MAX], *buf = NULL;
	size_t cap = 0;
	FILE *f, *m;

	path(p, name);
	m = open_memstream(&buf, &cap);
	f = fopen(p, "r");
	if (f != NULL) {
		char chunk[4096];
		size_t n;

		while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
			fwrite(chunk, 1, n, m);
		fclose(f);
	}
	fclose(m);
	if (len != NULL)
		*len = cap;
	return buf;
}

/* Append one formatted line to an open memstream-backed service text. */
static void line(FILE *f, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fputc('\n', f);
}

static void write_service(const char *name, const char *text)
{
	char p[PATH_MAX];

	xsnprintf(p, sizeof(p), "services/%s", name);
	write_file(p, text, strlen(text));
}

/* The tail of the article's stack: VASCO, campus password, Duo. */
static void backends(FILE *f)
{
	line(f, "auth [success=done new_authtok_reqd=done default=die] %s/pam_tokendb.so "
	     "name=vasco db=%s/vasco.db log=%s/calls.log", moddir, tdir, tdir);
	line(f, "auth requisite %s/pam_tokendb.so name=krb5 db=%s/krb5.db log=%s/calls.log",
	     moddir, tdir, tdir);
	line(f, "auth [success=done new_authtok_reqd=done default=die] %s/pam_tokendb.so "
	     "name=duo mode=user db=%s/duo.db log=%s/calls.log", moddir, tdir, tdir);
}

/* pam_authtok followed by a probe: "matched" is logged iff it returned
 * PAM_SUCCESS; pam_get_items exports PAM_AUTHTOK/PAM_USER to the PAM env. */
static void probe(FILE *f, const char *opts)
{
	line(f, "auth [success=ok ignore=1 default=die] %s/pam_authtok.so %s", moddir, opts);
	line(f, "auth optional %s/pam_tokendb.so name=matched mode=note log=%s/calls.log",
	     moddir, tdir);
	line(f, "auth required %s/pam_get_items.so", pwrapdir);
}

static void setup(void)
{
	char *text;
	size_t len;
	FILE *f;

	xsnprintf(tdir, sizeof(tdir), "%s/pam_authtok_test.XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (mkdtemp(tdir) == NULL) {
		perror("mkdtemp");
		exit(2);
	}
	{
		char p[PATH_MAX];

		path(p, "services");
		if (mkdir(p, 0700) != 0) {
			perror(p);
			exit(2);
		}
	}

#define SERVICE(name, body) do { \
		f = open_memstream(&text, &len); body; fclose(f); \
		write_service(name, text); free(text); } while (0)

	/* Anything not named here is denied (and libpam stops complaining). */
	SERVICE("other", line(f, "auth required %s/pam_deny.so", sysdir));

	/* The article's line, exactly as written. */
	SERVICE("article", {
		line(f, "auth [success=1 default=ignore] %s/pam_authtok.so "
		     "prefix=duo: strip prompt=password:", moddir);
		backends(f);
	});
	/* The same with debug: logs decisions, never a token. */
	SERVICE("article_debug", {
		line(f, "auth [success=1 default=ignore] %s/pam_authtok.so "
		     "prefix=duo: strip prompt=password: debug", moddir);
		backends(f);
	});
	/* The README's stricter control: a broken configuration fails closed. */
	SERVICE("article_strict", {
		line(f, "auth [success=1 ignore=ignore default=die] %s/pam_authtok.so "
		     "prefix=duo: strip prompt=password: debug", moddir);
		backends(f);
	});
	/* Two prefixes: duo: skips to the campus password, vasco: is redundant. */
	SERVICE("twoprefix", {
		line(f, "auth [success=2 default=ignore] %s/pam_authtok.so "
		     "prefix=duo: strip prompt=password: debug", moddir);
		line(f, "auth [success=ignore default=ignore] %s/pam_authtok.so "
		     "prefix=vasco: strip prompt=second: debug", moddir);
		backends(f);
	});
	SERVICE("probe_strip", probe(f, "prefix=duo: strip prompt=password: debug"));
	SERVICE("probe_whole", probe(f, "prefix=duo: debug"));
	/* pam.conf's bracket syntax for an argument with spaces. */
	SERVICE("probe_spaces", probe(f, "prefix=duo: [prompt=Password or duo:password: ]"));
	/* Broken configurations, each alone and "required". */
	SERVICE("bad_noprefix", line(f, "auth required %s/pam_authtok.so strip debug", moddir));
	SERVICE("bad_emptyprefix", line(f, "auth required %s/pam_authtok.so prefix= strip", moddir));
	SERVICE("bad_unknown", line(f, "auth required %s/pam_authtok.so prefix=duo: stirp", moddir));
	SERVICE("bad_twoprefixes", line(f, "auth required %s/pam_authtok.so prefix=duo: prefix=vasco:", moddir));
	SERVICE("bad_article_strict", {
		line(f, "auth [success=1 ignore=ignore default=die] %s/pam_authtok.so "
		     "prefix=duo: stirp", moddir);
		backends(f);
	});
	SERVICE("bad_article", {
		line(f, "auth [success=1 default=ignore] %s/pam_authtok.so prefix=duo: stirp", moddir);
		backends(f);
	});
#undef SERVICE

	make_big();

	f = open_memstream(&text, &len);
	fprintf(f, "joan:%s\nnonutf:%s\nbig:%s\n", OTP, NONUTF, big);
	fclose(f);
	write_file("vasco.db", text, len);
	free(text);

	f = open_memstream(&text, &len);
	fprintf(f, "joan:%s\nnoduo:%s\nnonutf:%s\nbig:%s\n", CAMPUS, CAMPUS2, NONUTF, big);
	fclose(f);
	write_file("krb5.db", text, len);
	free(text);

	write_file("duo.db", "joan\nnonutf\nbig\n", 16);
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw);

/*
 * pam_wrapper copies libpam and the services to /tmp/pam.X, writes its pid
 * there and removes the dir in a destructor.  Under valgrind the launcher,
 * which is preloaded too and then exec()s the tool, never runs that
 * destructor: remove the dirs left with our child's pid (ours only).
 */
static void remove_wrapper_dirs(pid_t pid)
{
	const char *names = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
	char dir[64], pidfile[80], buf[32];
	const char *c;

	for (c = names; *c; c++) {
		FILE *f;

		snprintf(dir, sizeof(dir), "/tmp/pam.%c", *c);
		snprintf(pidfile, sizeof(pidfile), "%s/pid", dir);
		f = fopen(pidfile, "r");
		if (f == NULL)
			continue;
		if (fgets(buf, sizeof(buf), f) != NULL && atol(buf) == (long)pid)
			nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
		fclose(f);
	}
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb; (void)flag; (void)ftw;
	return remove(p);
}

/* ---- one PAM transaction ----------------------------------------------- */

struct conv_state {
	const char *token;	/* answer to every hidden prompt */
	int prompts;
	char prompt[128];	/* text of the last prompt */
};

static int conv(int n, const struct pam_message **msg, struct pam_response **resp,
		void *data)
{
	struct conv_state *cs = data;
	struct pam_response *r = calloc((size_t)n, sizeof(*r));
	int i;

	if (r == NULL)
		return PAM_BUF_ERR;
	for (i = 0; i < n; i++) {
		if (msg[i]->msg_style == PAM_PROMPT_ECHO_OFF ||
		    msg[i]->msg_style == PAM_PROMPT_ECHO_ON) {
			cs->prompts++;
			snprintf(cs->prompt, sizeof(cs->prompt), "%s", msg[i]->msg);
			if (cs->token == NULL || (r[i].resp = strdup(cs->token)) == NULL) {
				free(r);
				return PAM_CONV_ERR;
			}
		}
	}
	*resp = r;
	return PAM_SUCCESS;
}

struct outcome {
	int rv;			/* pam_authenticate() */
	struct conv_state cs;
	char user[128];		/* PAM_USER after pam_authenticate() */
	char *authtok;		/* PAM_AUTHTOK as exported by pam_get_items */
	int vasco, krb5, duo, matched;	/* calls per database */
	int foreign_user;	/* calls.log lines naming another user */
	char *log;		/* what PAM modules logged (stderr) */
};

static int count(const char *log, const char *name, const char *user, int *foreign)
{
	size_t nl = strlen(name), ul = strlen(user);
	const char *p = log;
	int c = 0;

	/* Lines are "<name> <user> <result>". */
	while (*p != '\0') {
		const char *eol = strchrnul(p, '\n');

		if (strncmp(p, name, nl) == 0 && p[nl] == ' ') {
			c++;
			if (strncmp(p + nl + 1, user, ul) != 0 || p[nl + 1 + ul] != ' ')
				(*foreign)++;
		}
		p = *eol != '\0' ? eol + 1 : eol;
	}
	return c;
}

/*
 * Authenticate `user` on `service`, typing `token` at the prompt.  `expect`
 * is the pam_authenticate() result the case expects; then, if setcred_expect
 * >= 0, pam_setcred(PAM_ESTABLISH_CRED) must return it.
 */
static void run(const char *service, const char *user, const char *token, int expect,
		int setcred_expect, struct outcome *o)
{
	struct pam_testcase tc[] = {
		pam_test(PAMTEST_AUTHENTICATE, expect),
		pam_test_flags(PAMTEST_SETCRED, setcred_expect, PAM_ESTABLISH_CRED),
		pam_test(PAMTEST_GETENVLIST, 0),
		pam_test(PAMTEST_KEEPHANDLE, 0),
	};
	struct pam_testcase *first = setcred_expect >= 0 ? tc : tc + 1;
	size_t ncases = setcred_expect >= 0 ? 4 : 3;
	enum pamtest_err err;
	char p[PATH_MAX];
	int saved, fd;
	char **env;

	memset(o, 0, sizeof(*o));
	o->cs.token = token;
	write_file("calls.log", "", 0);
	if (setcred_expect < 0)
		tc[1] = tc[0];	/* first = tc + 1 starts at the authenticate case */

	/* pam_wrapper prints pam_syslog() lines on stderr: capture them. */
	fflush(stderr);
	saved = dup(2);
	path(p, "syslog.txt");
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	dup2(fd, 2);
	close(fd);

	err = _pamtest_conv(service, user, conv, &o->cs, first, ncases, NULL);

	fflush(stderr);
	dup2(saved, 2);
	close(saved);

	o->rv = first[0].op_rv;
	if (err == PAMTEST_ERR_OK) {
		pam_handle_t *ph = first[ncases - 1].case_out.ph;
		const void *u = NULL;

		if (pam_get_item(ph, PAM_USER, &u) == PAM_SUCCESS && u != NULL)
			snprintf(o->user, sizeof(o->user), "%s", (const char *)u);
		pam_end(ph, o->rv);
		env = first[ncases - 2].case_out.envlist;
		for (size_t i = 0; env != NULL && env[i] != NULL; i++)
			if (strncmp(env[i], "PAM_AUTHTOK=", 12) == 0)
				o->authtok = strdup(env[i] + 12);
		pamtest_free_env(env);
	} else {
		const struct pam_testcase *bad = _pamtest_failed_case(first, ncases);

		check(0, "%s: %s (operation %d returned %d \"%s\", expected %d)",
		      service, pamtest_strerror(err), bad ? (int)bad->pam_operation : -1,
		      bad ? bad->op_rv : -1, bad ? pam_strerror(NULL, bad->op_rv) : "",
		      bad ? bad->expected_rv : -1);
	}

	{
		char *calls = read_file("calls.log", NULL);

		o->vasco = count(calls, "vasco", user, &o->foreign_user);
		o->krb5 = count(calls, "krb5", user, &o->foreign_user);
		o->duo = count(calls, "duo", user, &o->foreign_user);
		o->matched = count(calls, "matched", user, &o->foreign_user);
		free(calls);
	}
	o->log = read_file("syslog.txt", NULL);

	/* Invariants of every transaction. */
	{
		const char *secrets[] = { OTP, CAMPUS, CAMPUS2, WRONG, NONUTF, big };
		size_t i;

		for (i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++)
			check(strstr(o->log, secrets[i]) == NULL,
			      "a secret (#%zu) appears in the log", i);
	}
	check(o->foreign_user == 0, "a database was asked about another user than %s", user);
	check(o->cs.prompts <= 1, "prompted %d times", o->cs.prompts);
	if (err == PAMTEST_ERR_OK)
		check(strcmp(o->user, user) == 0, "PAM_USER is \"%s\", not \"%s\"", o->user, user);
	if (getenv("TEST_VERBOSE") != NULL && o->log[0] != '\0')
		printf("    log: %s", o->log);
}

static void done(struct outcome *o)
{
	free(o->authtok);
	free(o->log);
}

static char *cat(const char *a, const char *b)
{
	char *s;

	if (asprintf(&s, "%s%s", a, b) < 0)
		exit(2);
	return s;
}

/* One case on a stack: expected result and calls per database. */
static void stack(const char *name, const char *service, const char *user, const char *token,
		  int expect, int vasco, int krb5, int duo)
{
	struct outcome o;

	begin(name);
	run(service, user, token, expect, -1, &o);
	check(o.rv == expect, "%s: pam_authenticate %d \"%s\", expected %d", service, o.rv,
	      pam_strerror(NULL, o.rv), expect);
	check(o.vasco == vasco, "%s: VASCO asked %d times, expected %d", service, o.vasco, vasco);
	check(o.krb5 == krb5, "%s: campus password asked %d times, expected %d", service, o.krb5, krb5);
	check(o.duo == duo, "%s: Duo asked %d times, expected %d", service, o.duo, duo);
	check(o.cs.prompts == 1 && strcmp(o.cs.prompt, "password:") == 0,
	      "%s: %d prompts, last \"%s\" (expected one \"password:\")", service,
	      o.cs.prompts, o.cs.prompt);
	end_case(service, pam_strerror(NULL, o.rv));
	done(&o);
}

/* One case on a probe service: did the prefix match, what was handed on. */
static void probe_case(const char *name, const char *service, const char *token,
		       int matched, const char *handed_on)
{
	struct outcome o;

	begin(name);
	run(service, "joan", token, PAM_SUCCESS, -1, &o);
	check(o.matched == matched, "%s: returned %s, expected %s", service,
	      o.matched ? "PAM_SUCCESS" : "PAM_IGNORE", matched ? "PAM_SUCCESS" : "PAM_IGNORE");
	check(o.authtok != NULL && strcmp(o.authtok, handed_on) == 0,
	      "%s: PAM_AUTHTOK handed on is not the expected one (%zu bytes, expected %zu)",
	      service, o.authtok ? strlen(o.authtok) : 0, strlen(handed_on));
	end_case(service, o.matched ? "PAM_SUCCESS" : "PAM_IGNORE");
	done(&o);
}

/* A broken configuration: PAM_SERVICE_ERR, a log line, nobody prompted. */
static void misconfig(const char *name, const char *service, const char *logged)
{
	struct outcome o;

	begin(name);
	run(service, "joan", "duo:" CAMPUS, PAM_SERVICE_ERR, -1, &o);
	check(o.rv == PAM_SERVICE_ERR, "%s: %d, expected PAM_SERVICE_ERR", service, o.rv);
	check(strstr(o.log, logged) != NULL, "%s: no log line with \"%s\" in:\n%s", service,
	      logged, o.log);
	check(o.cs.prompts == 0, "%s: prompted before refusing", service);
	check(o.vasco + o.krb5 + o.duo == 0, "%s: a database was asked", service);
	end_case(service, "PAM_SERVICE_ERR, logged");
	done(&o);
}

static void tests(void)
{
	char *s;
	struct outcome o;
	const char *svc[] = { "article", "article_debug", "article_strict" };
	size_t i;

	for (i = 0; i < 3; i++) {
		const char *v = svc[i];

		stack("plain token: VASCO only", v, "joan", OTP, PAM_SUCCESS, 1, 0, 0);
		stack("duo: token: campus password + Duo, no VASCO", v, "joan", "duo:" CAMPUS,
		      PAM_SUCCESS, 0, 1, 1);
		stack("wrong plain token fails at VASCO", v, "joan", WRONG, PAM_AUTH_ERR, 1, 0, 0);
		stack("campus password without prefix: VASCO only", v, "joan", CAMPUS,
		      PAM_AUTH_ERR, 1, 0, 0);
		stack("duo: + wrong password fails, no VASCO/Duo", v, "joan", "duo:" WRONG,
		      PAM_AUTH_ERR, 0, 1, 0);
		stack("duo: + VASCO code fails, no VASCO", v, "joan", "duo:" OTP, PAM_AUTH_ERR, 0, 1, 0);
		stack("duo: + right password, Duo denies", v, "noduo", "duo:" CAMPUS2,
		      PAM_AUTH_ERR, 0, 1, 1);
		stack("prefix is case-sensitive (DUO:)", v, "joan", "DUO:" CAMPUS, PAM_AUTH_ERR, 1, 0, 0);
		stack("prefix not at the start", v, "joan", "x duo:" CAMPUS, PAM_AUTH_ERR, 1, 0, 0);
		stack("empty token", v, "joan", "", PAM_AUTH_ERR, 1, 0, 0);
		stack("exactly the prefix", v, "joan", "duo:", PAM_AUTH_ERR, 0, 1, 0);
		stack("non-UTF-8 token via VASCO", v, "nonutf", NONUTF, PAM_SUCCESS, 1, 0, 0);
		s = cat("duo:", NONUTF);
		stack("non-UTF-8 token via duo:", v, "nonutf", s, PAM_SUCCESS, 0, 1, 1);
		free(s);
		stack("64 KiB token via VASCO", v, "big", big, PAM_SUCCESS, 1, 0, 0);
		s = cat("duo:", big);
		stack("64 KiB token via duo:", v, "big", s, PAM_SUCCESS, 0, 1, 1);
		free(s);
	}

	/* Several instances: duo: and a redundant vasco: prefix. */
	stack("two prefixes: plain -> VASCO", "twoprefix", "joan", OTP, PAM_SUCCESS, 1, 0, 0);
	stack("two prefixes: vasco: -> VASCO", "twoprefix", "joan", "vasco:" OTP, PAM_SUCCESS, 1, 0, 0);
	stack("two prefixes: vasco: + wrong", "twoprefix", "joan", "vasco:" WRONG, PAM_AUTH_ERR, 1, 0, 0);
	stack("two prefixes: duo: -> campus + Duo", "twoprefix", "joan", "duo:" CAMPUS, PAM_SUCCESS, 0, 1, 1);
	stack("two prefixes: duo: + wrong", "twoprefix", "joan", "duo:" WRONG, PAM_AUTH_ERR, 0, 1, 0);
	stack("two prefixes: vasco:duo: strips once", "twoprefix", "joan", "vasco:duo:" CAMPUS,
	      PAM_AUTH_ERR, 1, 0, 0);
	stack("two prefixes: duo:vasco: strips once", "twoprefix", "joan", "duo:vasco:" OTP,
	      PAM_AUTH_ERR, 0, 1, 0);

	/* What exactly is handed on, and the return value. */
	probe_case("strip: prefix removed", "probe_strip", "duo:" CAMPUS, 1, CAMPUS);
	probe_case("strip: no prefix, token as typed", "probe_strip", CAMPUS, 0, CAMPUS);
	probe_case("strip: prefix only -> empty token", "probe_strip", "duo:", 1, "");
	probe_case("strip: empty token", "probe_strip", "", 0, "");
	probe_case("strip: one prefix removed of two", "probe_strip", "duo:duo:x", 1, "duo:x");
	probe_case("strip: shorter than the prefix", "probe_strip", "du", 0, "du");
	probe_case("strip: newline and tab kept", "probe_strip", "duo:a\nb\tc", 1, "a\nb\tc");
	s = cat("duo:", NONUTF);
	probe_case("strip: non-UTF-8", "probe_strip", s, 1, NONUTF);
	free(s);
	s = cat("duo:", big);
	probe_case("strip: 64 KiB + prefix", "probe_strip", s, 1, big);
	free(s);
	probe_case("strip: 64 KiB, no prefix", "probe_strip", big, 0, big);
	probe_case("no strip: token stays whole", "probe_whole", "duo:" CAMPUS, 1, "duo:" CAMPUS);
	probe_case("no strip: no prefix", "probe_whole", CAMPUS, 0, CAMPUS);

	/* prompt= is the prompt; without it, PAM's default one. */
	begin("prompt=, else PAM's default prompt");
	run("probe_strip", "joan", CAMPUS, PAM_SUCCESS, -1, &o);
	check(o.cs.prompts == 1 && strcmp(o.cs.prompt, "password:") == 0,
	      "prompt= not used: \"%s\"", o.cs.prompt);
	done(&o);
	run("probe_whole", "joan", CAMPUS, PAM_SUCCESS, -1, &o);
	check(o.cs.prompts == 1 && strcmp(o.cs.prompt, "Password: ") == 0,
	      "default prompt is \"%s\"", o.cs.prompt);
	done(&o);
	run("probe_spaces", "joan", "duo:" CAMPUS, PAM_SUCCESS, -1, &o);
	check(o.cs.prompts == 1 && strcmp(o.cs.prompt, "Password or duo:password: ") == 0,
	      "bracketed prompt is \"%s\"", o.cs.prompt);
	check(o.matched == 1, "bracketed prompt: prefix did not match");
	done(&o);
	end_case("probe_*", "password: / Password: ");

	/* The conversation fails (the client hung up): no token, no crash;
	 * pam_get_authtok reports PAM_AUTHTOK_ERR, which pam_authtok passes on;
	 * the strict control stops, the article's control leaves it to VASCO,
	 * which finds no token. */
	begin("conversation fails: no token");
	run("article_strict", "joan", NULL, PAM_AUTHTOK_ERR, -1, &o);
	check(o.vasco + o.krb5 + o.duo == 0, "strict: a database was asked");
	done(&o);
	run("article", "joan", NULL, PAM_AUTH_ERR, -1, &o);
	check(o.vasco == 1 && o.krb5 + o.duo == 0, "article: expected VASCO only");
	done(&o);
	end_case("article(_strict)", "PAM_AUTHTOK_ERR / PAM_AUTH_ERR");

	/* debug logs decisions (and never the token: checked in run()). */
	begin("debug logs decisions, nothing without it");
	run("article_debug", "joan", "duo:" CAMPUS, PAM_SUCCESS, -1, &o);
	check(strstr(o.log, "prefix \"duo:\" matched") != NULL, "debug did not log the decision:\n%s",
	      o.log);
	done(&o);
	run("article", "joan", "duo:" CAMPUS, PAM_SUCCESS, -1, &o);
	check(strstr(o.log, "matched") == NULL, "logged a decision without debug:\n%s", o.log);
	done(&o);
	end_case("article(_debug)", "as expected");

	/* setcred: the stack as sshd drives it (authenticate, then setcred). */
	begin("setcred: module PAM_IGNORE, stack success");
	run("article", "joan", "duo:" CAMPUS, PAM_SUCCESS, PAM_SUCCESS, &o);
	done(&o);
	run("article", "joan", OTP, PAM_SUCCESS, PAM_SUCCESS, &o);
	done(&o);
	{
		char p[PATH_MAX];
		void *h;
		int (*setcred)(pam_handle_t *, int, int, const char **);

		xsnprintf(p, sizeof(p), "%s/pam_authtok.so", moddir);
		h = dlopen(p, RTLD_NOW | RTLD_LOCAL);
		check(h != NULL, "dlopen %s: %s", p, dlerror());
		if (h != NULL) {
			*(void **)&setcred = dlsym(h, "pam_sm_setcred");
			check(setcred != NULL && setcred(NULL, PAM_ESTABLISH_CRED, 0, NULL) == PAM_IGNORE,
			      "pam_sm_setcred does not return PAM_IGNORE");
			check(dlsym(h, "authtok_parse_opts") == NULL,
			      "internal symbol authtok_parse_opts is exported");
			dlclose(h);
		}
	}
	end_case("article", "as expected");

	/* Broken configurations are refused and logged. */
	misconfig("missing prefix=", "bad_noprefix", "missing required option prefix=");
	misconfig("empty prefix=", "bad_emptyprefix", "empty prefix=");
	misconfig("unknown option", "bad_unknown", "unknown option: \"stirp\"");
	misconfig("prefix= twice", "bad_twoprefixes", "option given twice: \"prefix=vasco:\"");
	misconfig("strict control: misconfig fails closed", "bad_article_strict", "unknown option");
	/* With the article's default=ignore a misconfigured line is skipped:
	 * every token, prefixed or not, goes to VASCO (why the README
	 * recommends default=die). */
	begin("article control + misconfig: skipped");
	run("bad_article", "joan", "duo:" CAMPUS, PAM_AUTH_ERR, -1, &o);
	check(o.vasco == 1 && o.krb5 == 0, "expected the token to reach VASCO only");
	check(strstr(o.log, "unknown option") != NULL, "not logged");
	done(&o);
	end_case("bad_article", "logged; token reaches VASCO");
}

static int child(void)
{
	tests();
	printf("stack checks: %d passed, %d failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
	pid_t pid;
	int status, rc;

	if (argc == 5 && strcmp(argv[1], "--child") == 0) {
		moddir = argv[2];
		pwrapdir = argv[3];
		xsnprintf(tdir, sizeof(tdir), "%s", argv[4]);
		make_big();
		rc = child();
		free(big);
		return rc;
	}
	if (argc != 4) {
		fprintf(stderr, "usage: %s MODDIR PAM_WRAPPER_MODDIR SYS_PAMDIR\n", argv[0]);
		return 2;
	}
	moddir = argv[1];
	pwrapdir = argv[2];
	sysdir = argv[3];
	setup();
	free(big);

	pid = fork();
	if (pid == 0) {
		char sdir[PATH_MAX];

		xsnprintf(sdir, sizeof(sdir), "%s/services", tdir);
		setenv("PAM_WRAPPER", "1", 1);
		setenv("PAM_WRAPPER_SERVICE_DIR", sdir, 1);
		setenv("PAM_WRAPPER_DEBUGLEVEL", "2", 1);	/* LOG_DEBUG lines too */
		setenv("PAM_WRAPPER_DISABLE_DEEPBIND", "1", 1);	/* valgrind, sanitizers */
		setenv("LD_PRELOAD", getenv("PAM_WRAPPER_LIB") ? getenv("PAM_WRAPPER_LIB")
							      : "libpam_wrapper.so", 1);
		execl(argv[0], argv[0], "--child", moddir, pwrapdir, tdir, (char *)NULL);
		perror("execl");
		_exit(2);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0) {
		perror("fork/wait");
		return 2;
	}
	nftw(tdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	remove_wrapper_dirs(pid);
	if (!WIFEXITED(status)) {
		fprintf(stderr, "test_stack child died (signal %d)\n",
			WIFSIGNALED(status) ? WTERMSIG(status) : 0);
		return 1;
	}
	return WEXITSTATUS(status);
}
