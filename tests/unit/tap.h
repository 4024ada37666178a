/*
 * tests/unit/tap.h — a tiny header-only TAP producer for the unit tests.
 *
 *   plan(n) first or none; ok(cond, fmt, ...), is_int, is_str, is_mem,
 *   skip, diag, bail_out; main() ends with "return done_testing();", which
 *   prints the plan if none was given and is non-zero when any test failed
 *   or the count does not match the plan.
 *
 * Lines are written and flushed one at a time so that output survives a
 * fork or a crash. Not thread-safe: call the assertions from one thread and
 * let workers count their failures.
 */
#ifndef LAKEFS_TESTS_UNIT_TAP_H
#define LAKEFS_TESTS_UNIT_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_run __attribute__((unused));
static int tap_failed __attribute__((unused));
static int tap_planned __attribute__((unused)) = -1;
static int tap_done __attribute__((unused));

__attribute__((format(printf, 1, 0), unused))
static void tap_vcomment(const char *fmt, va_list ap)
{
	char line[4096];
	const char *p = line;

	vsnprintf(line, sizeof(line), fmt, ap);
	/* every line of a multi-line message is a comment */
	while (*p) {
		size_t n = strcspn(p, "\n");

		printf("# %.*s\n", (int)n, p);
		p += n;
		if (*p == '\n')
			p++;
	}
	fflush(stdout);
}

__attribute__((format(printf, 1, 2), unused))
static void diag(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	tap_vcomment(fmt, ap);
	va_end(ap);
}

__attribute__((unused))
static void plan(int n)
{
	tap_planned = n;
	printf("1..%d\n", n);
	fflush(stdout);
}

__attribute__((format(printf, 4, 0), unused))
static int tap_vok(int cond, const char *file, int line, const char *fmt,
		   va_list ap)
{
	char name[1024];

	vsnprintf(name, sizeof(name), fmt, ap);
	for (char *c = name; *c; c++)
		if (*c == '\n' || *c == '#')
			*c = ' ';
	tap_run++;
	if (!cond)
		tap_failed++;
	printf("%sok %d - %s\n", cond ? "" : "not ", tap_run, name);
	if (!cond)
		printf("#   failed at %s line %d\n", file, line);
	fflush(stdout);
	return cond;
}

__attribute__((format(printf, 4, 5), unused))
static int tap_ok(int cond, const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = tap_vok(cond, file, line, fmt, ap);
	va_end(ap);
	return r;
}

__attribute__((format(printf, 5, 6), unused))
static int tap_is_int(long long got, long long want, const char *file, int line,
		      const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = tap_vok(got == want, file, line, fmt, ap);
	va_end(ap);
	if (!r)
		diag("       got: %lld\n  expected: %lld", got, want);
	return r;
}

__attribute__((format(printf, 5, 6), unused))
static int tap_is_str(const char *got, const char *want, const char *file,
		      int line, const char *fmt, ...)
{
	va_list ap;
	int same = (!got && !want) || (got && want && strcmp(got, want) == 0);
	int r;

	va_start(ap, fmt);
	r = tap_vok(same, file, line, fmt, ap);
	va_end(ap);
	if (!r)
		diag("       got: %s%s%s\n  expected: %s%s%s",
		     got ? "'" : "", got ? got : "NULL", got ? "'" : "",
		     want ? "'" : "", want ? want : "NULL", want ? "'" : "");
	return r;
}

__attribute__((format(printf, 7, 8), unused))
static int tap_is_mem(const void *got, size_t gotlen, const void *want,
		      size_t wantlen, const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	int same = gotlen == wantlen && (gotlen == 0 || memcmp(got, want, gotlen) == 0);
	int r;

	va_start(ap, fmt);
	r = tap_vok(same, file, line, fmt, ap);
	va_end(ap);
	if (!r) {
		size_t i = 0;

		while (got && want && i < gotlen && i < wantlen &&
		       ((const unsigned char *)got)[i] == ((const unsigned char *)want)[i])
			i++;
		diag("  got %zu bytes, expected %zu; first difference at byte %zu",
		     gotlen, wantlen, i);
	}
	return r;
}

/* Record n skipped tests with the reason. */
__attribute__((format(printf, 2, 3), unused))
static void skip(int n, const char *fmt, ...)
{
	char why[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	for (int i = 0; i < n; i++)
		printf("ok %d # skip %s\n", ++tap_run, why);
	fflush(stdout);
}

__attribute__((format(printf, 1, 2), noreturn, unused))
static void bail_out(const char *fmt, ...)
{
	char why[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	printf("Bail out! %s\n", why);
	fflush(stdout);
	exit(255);
}

/*
 * End of the test: print the plan if none was given and return the exit
 * status, 0 only if every planned test ran and passed. main() ends with
 * "return done_testing();".
 */
__attribute__((unused))
static int done_testing(void)
{
	if (!tap_done++ && tap_planned < 0) {
		tap_planned = tap_run;
		printf("1..%d\n", tap_run);
	}
	if (tap_failed)
		diag("failed %d of %d tests", tap_failed, tap_run);
	if (tap_run != tap_planned)
		diag("planned %d tests but ran %d", tap_planned, tap_run);
	fflush(stdout);
	if (tap_failed)
		return tap_failed < 254 ? tap_failed : 254;
	return tap_run == tap_planned ? 0 : 255;
}

#define ok(cond, ...) tap_ok(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
#define is_int(got, want, ...) \
	tap_is_int((long long)(got), (long long)(want), __FILE__, __LINE__, __VA_ARGS__)
#define is_str(got, want, ...) \
	tap_is_str((got), (want), __FILE__, __LINE__, __VA_ARGS__)
#define is_mem(got, gotlen, want, wantlen, ...) \
	tap_is_mem((got), (gotlen), (want), (wantlen), __FILE__, __LINE__, \
		   __VA_ARGS__)

#endif
