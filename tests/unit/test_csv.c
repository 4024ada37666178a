/*
 * tests/unit/test_csv.c — the streaming CSV parser (catalog/csv.c).
 *
 * Every case runs three ways, the input fed whole, byte by byte and in
 * random chunks, and what comes out (records, bad records, the header, the
 * delimiter, the result) is written to a log; the three logs must be equal
 * and the whole-input log must match the expected text. Then: the memory
 * bound over 200 MB, the seed corpus of the fuzzer (tests/fuzz/corpus/csv),
 * and a seeded mutation fuzz loop (the seed is printed; LFS_FUZZ_SEED=N
 * replays it) that asserts no crash (ASan in make asan-unit) and only
 * 0 or -EINVAL as results.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "catalog/csv.h"
#include "tests/unit/mutate.h"
#include "tests/unit/tap.h"
#include "util/util.h"

#define FUZZ_ROUNDS 20000

static void esc(struct gbuf *b, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c < 0x20 || c >= 0x7f || c == '\\' || c == '|' || c == ']')
			gbuf_printf(b, "\\x%02x", c);
		else
			gbuf_add(b, &c, 1);
	}
}

struct ctx {
	struct gbuf log;
	int stop_at;		/* stop (return 7) at this recno */
	uint64_t good, bad;
};

static void log_fields(struct gbuf *b, const struct csv_field *f, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		gbuf_add(b, i ? "|" : "[", 1);
		if (f[i].quoted)
			gbuf_add(b, "q:", 2);
		esc(b, f[i].p, f[i].len);
	}
	gbuf_add(b, "]", 1);
}

static int on_rec(void *arg, uint64_t recno, uint64_t line, const struct csv_field *f,
		  size_t n)
{
	struct ctx *c = arg;

	c->good++;
	gbuf_printf(&c->log, "R%llu@%llu", (unsigned long long)recno,
		    (unsigned long long)line);
	log_fields(&c->log, f, n);
	gbuf_add(&c->log, "\n", 1);
	return c->stop_at && (int)recno == c->stop_at ? 7 : 0;
}

static int on_bad(void *arg, uint64_t line, const char *reason, const char *raw,
		  size_t rawlen)
{
	struct ctx *c = arg;

	c->bad++;
	gbuf_printf(&c->log, "B@%llu %s {", (unsigned long long)line, reason);
	esc(&c->log, raw, rawlen);
	gbuf_add(&c->log, "}\n", 2);
	return 0;
}

/* Parse in with mode 0 whole, 1 byte by byte, 2 random chunks; log all. */
static int parse(const void *in, size_t n, const struct csv_opts *o, int mode,
		 uint64_t seed, struct ctx *c)
{
	struct csv_parser *p;
	const unsigned char *d = in;
	size_t off = 0, nh;
	const struct csv_field *h;
	uint64_t s = seed ? seed : 1;
	int ret;

	if (csv_new(&p, o, on_rec, on_bad, c))
		bail_out("csv_new");
	ret = 0;
	while (off < n && ret == 0) {
		size_t k = n - off;

		if (mode == 1)
			k = 1;
		else if (mode == 2) {
			size_t r = (size_t)(rnd(&s) % 4 ? 1 + rnd(&s) % 17 : 1 + rnd(&s) % 9000);

			k = MIN(k, r);
		}
		ret = csv_feed(p, d + off, k);
		off += k;
	}
	if (ret == 0)
		ret = csv_finish(p);
	h = csv_header(p, &nh);
	gbuf_printf(&c->log, "ret=%d delim=%d", ret, csv_delimiter(p));
	if (h) {
		gbuf_add(&c->log, " H", 2);
		log_fields(&c->log, h, nh);
	}
	if (ret)
		gbuf_printf(&c->log, " err=%s", csv_error(p));
	gbuf_add(&c->log, "\n", 1);
	csv_free(p);
	return ret;
}

/* Run three ways; check they agree, return the log of the whole run. */
static int same3(struct ctx *c)
{
	return c[0].log.n == c[1].log.n && c[0].log.n == c[2].log.n &&
	       !memcmp(c[0].log.p, c[1].log.p, c[0].log.n) &&
	       !memcmp(c[0].log.p, c[2].log.p, c[0].log.n);
}

/* The three ways again with a sniff of a few bytes, so that chunks cross
 * the streaming part and not only the sample: they must agree too. */
static int small_sniff_agrees(const void *in, size_t n, const struct csv_opts *o,
			      uint64_t seed)
{
	struct csv_opts so = CSV_OPTS_INIT;
	struct ctx c[3];
	int same;

	if (o)
		so = *o;
	so.sniff = 1 + seed % 40;
	memset(c, 0, sizeof(c));
	for (int m = 0; m < 3; m++)
		parse(in, n, &so, m, seed, &c[m]);
	same = same3(c);
	if (!same)
		diag("sniff %zu: whole:\n%s\nbytes:\n%s\nchunks:\n%s", so.sniff,
		     (char *)c[0].log.p, (char *)c[1].log.p, (char *)c[2].log.p);
	for (int m = 0; m < 3; m++)
		free(c[m].log.p);
	return same;
}

static char *run3(const char *what, const void *in, size_t n, const struct csv_opts *o,
		  uint64_t seed, int quiet)
{
	struct ctx c[3];
	int same;

	memset(c, 0, sizeof(c));
	for (int m = 0; m < 3; m++)
		parse(in, n, o, m, seed, &c[m]);
	same = same3(c);
	if (same)
		same = small_sniff_agrees(in, n, o, seed) &&
		       small_sniff_agrees(in, n, o, seed + 17);
	if (!quiet || !same)
		ok(same, "%s: whole, byte by byte and in random chunks agree", what);
	if (!same)
		diag("whole:\n%s\nbytes:\n%s\nchunks:\n%s", (char *)c[0].log.p,
		     (char *)c[1].log.p, (char *)c[2].log.p);
	free(c[1].log.p);
	free(c[2].log.p);
	return (char *)c[0].log.p;
}

static void check(const char *what, const char *in, size_t n, const struct csv_opts *o,
		  const char *want)
{
	char *got = run3(what, in, n, o, 42, 0);

	is_str(got, want, "%s", what);
	free(got);
}

#define CHECK(what, in, o, want) check(what, in, sizeof(in) - 1, o, want)

static void basics(void)
{
	struct csv_opts o = CSV_OPTS_INIT;

	CHECK("header and two records", "a,b,c\n1,2,3\n4,5,6\n", NULL,
	      "R1@2[1|2|3]\nR2@3[4|5|6]\nret=0 delim=44 H[a|b|c]\n");
	CHECK("no newline at the end", "a,b\n1,2", NULL,
	      "R1@2[1|2]\nret=0 delim=44 H[a|b]\n");
	CHECK("quoting: delimiter, newline, doubled quotes, empty quoted",
	      "id,text\n1,\"x, y\"\n2,\"line1\nline2\"\n3,\"say \"\"hi\"\"\"\n4,\"\"\n", NULL,
	      "R1@2[1|q:x, y]\nR2@3[2|q:line1\\x0aline2]\nR3@5[3|q:say \"hi\"]\n"
	      "R4@6[4|q:]\nret=0 delim=44 H[id|text]\n");
	CHECK("CRLF, and CRLF inside quotes kept",
	      "a,b\r\n1,\"x\r\ny\"\r\n2,3\r\n", NULL,
	      "R1@2[1|q:x\\x0d\\x0ay]\nR2@4[2|3]\nret=0 delim=44 H[a|b]\n");
	CHECK("lone CR ends lines", "a,b\r1,2\r3,4", NULL,
	      "R1@2[1|2]\nR2@3[3|4]\nret=0 delim=44 H[a|b]\n");
	CHECK("a UTF-8 BOM is skipped", "\xef\xbb\xbf" "name,qty\nx,1\n", NULL,
	      "R1@2[x|1]\nret=0 delim=44 H[name|qty]\n");
	CHECK("UTF-8 text is kept", "k,v\n\xc3\xa9t\xc3\xa9,\xe2\x82\xac\n", NULL,
	      "R1@2[\\xc3\\xa9t\\xc3\\xa9|\\xe2\\x82\\xac]\nret=0 delim=44 H[k|v]\n");
	CHECK("empty file", "", NULL, "ret=0 delim=44\n");
	CHECK("only a BOM", "\xef\xbb\xbf", NULL, "ret=0 delim=44\n");
	CHECK("only blank lines", "\n\r\n\n", NULL, "ret=0 delim=44\n");
	CHECK("header only, with newline", "a;b;c\n", NULL, "ret=0 delim=59 H[a|b|c]\n");
	CHECK("header only, no newline", "a\tb", NULL, "ret=0 delim=9 H[a|b]\n");
	CHECK("blank lines are no record", "a,b\n\n1,2\n\n\n3,4\n", NULL,
	      "R1@3[1|2]\nR2@6[3|4]\nret=0 delim=44 H[a|b]\n");
	CHECK("ragged rows come as they are", "a,b,c\n1,2\n1,2,3,4\n5\n", NULL,
	      "R1@2[1|2]\nR2@3[1|2|3|4]\nR3@4[5]\nret=0 delim=44 H[a|b|c]\n");
	CHECK("empty fields and a trailing delimiter", "a,b,c\n,,\n1,,\n", NULL,
	      "R1@2[||]\nR2@3[1||]\nret=0 delim=44 H[a|b|c]\n");
	CHECK("lenient: quote inside unquoted, text after closing quote",
	      "a,b\nab\"c,\"x\"y\n", NULL,
	      "R1@2[ab\"c|q:xy]\nret=0 delim=44 H[a|b]\n");

	CHECK("sniff comma", "a,b;c\n1,2;3\n", NULL,
	      "R1@2[1|2;3]\nret=0 delim=44 H[a|b;c]\n");
	CHECK("sniff semicolon (decimal commas)", "a;b;c\n1,5;2,5;x\n3,0;4;\"y;z\"\n", NULL,
	      "R1@2[1,5|2,5|x]\nR2@3[3,0|4|q:y;z]\nret=0 delim=59 H[a|b|c]\n");
	CHECK("sniff tab", "a\tb\tc\nx,y\t1\t\"q\tr\"\n", NULL,
	      "R1@2[x,y|1|q:q\\x09r]\nret=0 delim=9 H[a|b|c]\n");
	CHECK("sniff pipe", "a|b\n1|2\n3|\"4|5\"\n", NULL,
	      "R1@2[1|2]\nR2@3[3|q:4\\x7c5]\nret=0 delim=124 H[a|b]\n");
	CHECK("sniff: one column", "name\nx\ny\n", NULL,
	      "R1@2[x]\nR2@3[y]\nret=0 delim=44 H[name]\n");
	CHECK("sniff ignores delimiters in quotes", "\"a,b\";c\n\"1,2\";3\n", NULL,
	      "R1@2[q:1,2|3]\nret=0 delim=59 H[q:a,b|c]\n");
	o.delim = ';';
	CHECK("an explicit delimiter", "a,b;c\n1,2;3\n", &o,
	      "R1@2[1,2|3]\nret=0 delim=59 H[a,b|c]\n");

	o = (struct csv_opts)CSV_OPTS_INIT;
	o.header = 0;
	CHECK("no header", "a,b\n1,2\n", &o, "R1@1[a|b]\nR2@2[1|2]\nret=0 delim=44\n");
	o.header = -1;
	CHECK("guess: a header", "name,age\nbob,3\n", &o,
	      "R1@2[bob|3]\nret=0 delim=44 H[name|age]\n");
	CHECK("guess: numbers are no header", "1,2\n3,4\n", &o,
	      "R1@1[1|2]\nR2@2[3|4]\nret=0 delim=44\n");
	CHECK("guess: an empty field is no header", "a,,c\nx,y,z\n", &o,
	      "R1@1[a||c]\nR2@2[x|y|z]\nret=0 delim=44\n");
	CHECK("guess: repeated names are no header", "x,x\ny,z\n", &o,
	      "R1@1[x|x]\nR2@2[y|z]\nret=0 delim=44\n");
}

static void bad_records(void)
{
	struct csv_opts o = CSV_OPTS_INIT;

	CHECK("invalid UTF-8 in a field: bad, then on", "a,b\n1,x\xff\n2,\xc3(\n3,ok\n", NULL,
	      "B@2 invalid UTF-8 in field 2 {1,x\\xff}\n"
	      "B@3 invalid UTF-8 in field 2 {2,\\xc3(}\n"
	      "R3@4[3|ok]\nret=0 delim=44 H[a|b]\n");
	CHECK("overlong and surrogate UTF-8 are invalid",
	      "name\n\xc0\xaf\n\xed\xa0\x80\nsome text to make it look like text\n", NULL,
	      "B@2 invalid UTF-8 in field 1 {\\xc0\\xaf}\n"
	      "B@3 invalid UTF-8 in field 1 {\\xed\\xa0\\x80}\n"
	      "R3@4[some text to make it look like text]\nret=0 delim=44 H[name]\n");
	CHECK("a NUL byte: bad, then on", "a,b\n1,x\0y\n2,z\n", NULL,
	      "B@2 NUL byte in field 2 {1,x\\x00y}\nR2@3[2|z]\nret=0 delim=44 H[a|b]\n");
	CHECK("unterminated quote at the end", "a,b\n1,2\n3,\"open\nmore", NULL,
	      "R1@2[1|2]\nB@3 unterminated quoted field {3,\"open\\x0amore}\n"
	      "ret=0 delim=44 H[a|b]\n");
	CHECK("a quoted field may end at EOF", "a\n\"x\"", NULL,
	      "R1@2[q:x]\nret=0 delim=44 H[a]\n");

	o.max_field = 8;
	CHECK("a field over max_field: bad, next record fine",
	      "a,b\n1,123456789\n2,12345678\n", &o,
	      "B@2 field 2 longer than 8 bytes {1,123456789}\nR2@3[2|12345678]\n"
	      "ret=0 delim=44 H[a|b]\n");
	CHECK("over max_field unquoted: skip to the line end outside quotes",
	      "a,b\n1,123456789,\"x\ny\"\n2,3\n", &o,
	      "B@2 field 2 longer than 8 bytes {1,123456789}\nR2@4[2|3]\n"
	      "ret=0 delim=44 H[a|b]\n");
	CHECK("over max_field inside quotes: skip to the next line end",
	      "a,b\n1,\"123456789\n2,3\n4,5\n", &o,
	      "B@2 field 2 longer than 8 bytes {1,\"123456789}\nR2@3[2|3]\nR3@4[4|5]\n"
	      "ret=0 delim=44 H[a|b]\n");
	o.max_field = 0;
	o.max_record = 10;
	CHECK("a record over max_record", "a,b\n123456,67890\n1,2\n", &o,
	      "B@2 record longer than 10 bytes {123456,67890}\nR2@3[1|2]\n"
	      "ret=0 delim=44 H[a|b]\n");
	o.max_record = 0;
	o.max_fields = 3;
	CHECK("more than max_fields at a delimiter, then at a line end",
	      "a,b,c\n1,2,3,4,5\n1,2,3,4\n6,7,8\n", &o,
	      "B@2 more than 3 fields {1,2,3,4,}\nB@3 more than 3 fields {1,2,3,4}\n"
	      "R3@4[6|7|8]\nret=0 delim=44 H[a|b|c]\n");
	o.max_fields = 0;
	o.max_field = 4;
	CHECK("a bad header is -EINVAL", "abcdef,b\n1,2\n", &o,
	      "ret=-22 delim=44 err=bad header on line 1: field 1 longer than 4 bytes\n");
	CHECK("an invalid UTF-8 header is -EINVAL", "a\xff,b\n1,2\n", NULL,
	      "ret=-22 delim=44 err=bad header on line 1: invalid UTF-8 in field 1\n");
}

static void whole_file(void)
{
	static unsigned char bin[4096], nostruct[80000];
	uint64_t s = 7;
	struct ctx c = { 0 };
	char *got;

	for (size_t i = 0; i < sizeof(bin); i++)
		bin[i] = (unsigned char)rnd(&s);
	got = run3("binary garbage", bin, sizeof(bin), NULL, 1, 0);
	ok(strstr(got, "ret=-22") && strstr(got, "err=not a CSV file: binary data"),
	   "random bytes are -EINVAL: binary data");
	ok(!strchr(got, 'R') && !strstr(got, "B@"), "and no record comes out");
	free(got);
	got = run3("UTF-16", "\xff\xfe" "a\0,\0b\0\n\0", 10, NULL, 1, 0);
	ok(strstr(got, "ret=-22") && strstr(got, "UTF-16"), "UTF-16 is -EINVAL and says so");
	free(got);
	memset(nostruct, 'x', sizeof(nostruct));
	got = run3("64 KiB without structure", nostruct, sizeof(nostruct), NULL, 1, 0);
	ok(strstr(got, "ret=-22") && strstr(got, "no line end and no delimiter"),
	   "64 KiB without a line end or delimiter is -EINVAL");
	free(got);
	/* a stop from the callback, sticky */
	{
		struct csv_parser *p;
		const char *in = "a\n1\n2\n3\n";

		c.stop_at = 2;
		csv_new(&p, NULL, on_rec, on_bad, &c);
		is_int(csv_feed(p, in, strlen(in)), 0, "records wait for the sample");
		is_int(csv_finish(p), 7, "a callback's stop comes back from csv_finish");
		is_int((int)c.good, 2, "after two records");
		is_int(csv_feed(p, "x", 1), 7, "and it is sticky");
		csv_free(p);
		free(c.log.p);
	}
	{
		struct csv_parser *p;
		struct csv_opts o = CSV_OPTS_INIT;

		o.delim = '"';
		is_int(csv_new(&p, &o, on_rec, NULL, NULL), -EINVAL, "a quote as delimiter is refused");
	}
}

struct memctx {
	uint64_t good, bad, fields;
};

static int mem_rec(void *arg, uint64_t recno, uint64_t line, const struct csv_field *f,
		   size_t n)
{
	struct memctx *m = arg;

	(void)recno;
	(void)line;
	(void)f;
	m->good++;
	m->fields += n;
	return 0;
}

static int mem_bad(void *arg, uint64_t line, const char *reason, const char *raw,
		   size_t rawlen)
{
	struct memctx *m = arg;

	(void)line;
	(void)reason;
	(void)raw;
	(void)rawlen;
	m->bad++;
	return 0;
}

static void memory_bound(void)
{
	enum { CHUNK = 1 << 20 };
	char *chunk = malloc(CHUNK + 256);
	struct csv_parser *p;
	struct memctx m = { 0 };
	struct csv_opts o = CSV_OPTS_INIT;
	size_t fed = 0, peak = 0, len = 0;
	uint64_t row = 0;
	int ret = 0;

	/* 200 MB of ordinary rows, some quoted with newlines */
	csv_new(&p, NULL, mem_rec, mem_bad, &m);
	ret = csv_feed(p, "id,name,note\n", 13);
	while (fed < (200u << 20) && ret == 0) {
		len = 0;
		while (len < CHUNK)
			len += (size_t)snprintf(chunk + len, 256,
						row % 7 ? "%llu,name %llu,plain\n" :
						"%llu,\"quoted, %llu\",\"two\nlines\"\n",
						(unsigned long long)row, (unsigned long long)row), row++;
		ret = csv_feed(p, chunk, len);
		fed += len;
		peak = MAX(peak, csv_mem(p));
	}
	ret = ret ? ret : csv_finish(p);
	is_int(ret, 0, "200 MB of rows parse");
	ok(m.good == row && m.bad == 0 && m.fields == 3 * row,
	   "every one of %llu rows, 3 fields each", (unsigned long long)row);
	ok(peak < 256 * 1024, "the parser held at most %zu bytes (bound 256 KiB)", peak);
	csv_free(p);

	/* one 64 MB record without a line end: dropped at max_record */
	o.max_record = 1 << 20;
	o.max_field = 1 << 20;
	memset(&m, 0, sizeof(m));
	peak = 0;
	csv_new(&p, &o, mem_rec, mem_bad, &m);
	ret = csv_feed(p, "a,b\n1,", 6);
	memset(chunk, 'x', CHUNK);
	for (int i = 0; i < 64 && ret == 0; i++) {
		ret = csv_feed(p, chunk, CHUNK);
		peak = MAX(peak, csv_mem(p));
	}
	ret = ret ? ret : csv_feed(p, "\n2,3\n", 5);
	ret = ret ? ret : csv_finish(p);
	ok(ret == 0 && m.bad == 1 && m.good == 1, "a 64 MB line is one bad record, then on");
	ok(peak < (1u << 20) + 256 * 1024, "held at most %zu bytes (max_record 1 MiB)", peak);
	csv_free(p);

	/* an unterminated quote then 64 MB of lines */
	memset(&m, 0, sizeof(m));
	peak = 0;
	csv_new(&p, &o, mem_rec, mem_bad, &m);
	ret = csv_feed(p, "a,b\n1,\"", 7);
	for (size_t i = 0; i < CHUNK; i++)
		chunk[i] = i % 64 == 63 ? '\n' : 'y';
	for (int i = 0; i < 64 && ret == 0; i++) {
		ret = csv_feed(p, chunk, CHUNK);
		peak = MAX(peak, csv_mem(p));
	}
	ret = ret ? ret : csv_finish(p);
	ok(ret == 0 && m.bad == 1 && m.good > 1000000,
	   "an open quote: one bad record, then %llu records", (unsigned long long)m.good);
	ok(peak < (1u << 20) + 256 * 1024, "held at most %zu bytes", peak);
	csv_free(p);
	free(chunk);
}

static const char *corpus_dir(void)
{
	const char *src = getenv("LFS_SRCDIR");
	static char path[4096];

	snprintf(path, sizeof(path), "%s/tests/fuzz/corpus/csv", src ? src : ".");
	return path;
}

static int load(const char *path, struct gbuf *b)
{
	FILE *f = fopen(path, "rb");
	char tmp[65536];
	size_t k;

	if (!f)
		return -1;
	while ((k = fread(tmp, 1, sizeof(tmp), f)) > 0)
		gbuf_add(b, tmp, k);
	fclose(f);
	return b->failed ? -1 : 0;
}

/* Every corpus file: a sane result, the same three ways. */
static void corpus(struct gbuf *seeds, size_t *nseeds, size_t *seedoff)
{
	DIR *d = opendir(corpus_dir());
	struct dirent *e;
	int files = 0, sane = 0, agree = 0;

	if (!d) {
		skip(1, "no corpus at %s", corpus_dir());
		return;
	}
	while ((e = readdir(d))) {
		char path[8192];
		struct gbuf b = { 0 };
		char *got;
		char what[600];

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", corpus_dir(), e->d_name);
		if (load(path, &b))
			continue;
		files++;
		snprintf(what, sizeof(what), "corpus %s", e->d_name);
		{
			struct ctx c[3];

			memset(c, 0, sizeof(c));
			for (int m = 0; m < 3; m++)
				parse(b.p, b.n, NULL, m, (uint64_t)files, &c[m]);
			agree += same3(c) && small_sniff_agrees(b.p, b.n, NULL, (uint64_t)files);
			got = (char *)c[0].log.p;
			sane += strstr(got, "ret=0 ") || strstr(got, "ret=-22 ");
			if (!(strstr(got, "ret=0 ") || strstr(got, "ret=-22 ")))
				diag("%s: %s", what, got);
			for (int m = 0; m < 3; m++)
				free(c[m].log.p);
		}
		if (b.n < 8192 && *nseeds < 64) {
			seedoff[(*nseeds)++] = seeds->n;
			gbuf_add(seeds, &b.n, sizeof(b.n));
			gbuf_add(seeds, b.p, b.n);
		}
		free(b.p);
	}
	closedir(d);
	ok(files > 0 && sane == files && agree == files,
	   "the corpus: %d files, %d with result 0 or -EINVAL, %d the same three ways",
	   files, sane, agree);
}

static size_t mutate(unsigned char *p, size_t n, size_t cap, uint64_t *s)
{
	static const char special[] = ",;\t|\"\r\n\0\xef\xbb\xbf\xff\xc3";

	return mutate_text(p, n, cap, s, special, sizeof(special) - 1);
}

static void fuzz(uint64_t seed, const struct gbuf *seeds, const size_t *off, size_t nseeds)
{
	static const char *builtin[] = {
		"a,b,c\n1,\"x,y\",3\r\n4,\"q\"\"q\",\"multi\nline\"\n",
		"\xef\xbb\xbfid;name\n1;\"caf\xc3\xa9\"\n2;x\n",
		"a\tb\n1\t2\n\n3\t4",
		"x|y|z\n1|2\n1|2|3|4\n\"open|1\n",
	};
	uint64_t s = seed ? seed : 1, zero = 0, einval = 0, other = 0, differ = 0;
	size_t cap = 16384;
	unsigned char *p = malloc(cap);

	for (int i = 0; i < FUZZ_ROUNDS; i++) {
		size_t pick = (size_t)(rnd(&s) % (ARRAY_SIZE(builtin) + nseeds)), n;
		struct csv_opts o = CSV_OPTS_INIT;
		struct ctx c[2];
		unsigned char *q;
		int ret;

		if (pick < ARRAY_SIZE(builtin)) {
			n = strlen(builtin[pick]);
			memcpy(p, builtin[pick], n);
		} else {
			const unsigned char *sp = seeds->p + off[pick - ARRAY_SIZE(builtin)];

			memcpy(&n, sp, sizeof(n));
			memcpy(p, sp + sizeof(n), n);
		}
		n = mutate(p, n, cap, &s);
		if (rnd(&s) % 4 == 0) {
			o.max_field = 1 + rnd(&s) % 32;
			o.max_record = 1 + rnd(&s) % 64;
			o.max_fields = 1 + rnd(&s) % 8;
			o.header = (int)(rnd(&s) % 3) - 1;
		}
		if (rnd(&s) % 2)
			o.sniff = 1 + rnd(&s) % 96;
		q = malloc(n ? n : 1);	/* exact size: ASan sees reads past the end */
		memcpy(q, p, n);
		memset(c, 0, sizeof(c));
		ret = parse(q, n, &o, 0, 0, &c[0]);
		parse(q, n, &o, 2, s, &c[1]);
		free(q);
		if (c[0].log.n != c[1].log.n || memcmp(c[0].log.p, c[1].log.p, c[0].log.n)) {
			if (!differ)
				diag("round %d: whole and chunked differ:\n%s\n---\n%s", i,
				     (char *)c[0].log.p, (char *)c[1].log.p);
			differ++;
		}
		free(c[0].log.p);
		free(c[1].log.p);
		if (ret == 0)
			zero++;
		else if (ret == -EINVAL)
			einval++;
		else
			other++;
	}
	free(p);
	ok(other == 0 && differ == 0,
	   "%d mutations: %llu parsed, %llu -EINVAL, no other result, whole and chunked "
	   "agree (%llu differ)", FUZZ_ROUNDS, (unsigned long long)zero,
	   (unsigned long long)einval, (unsigned long long)differ);
}

int main(void)
{
	const char *env = getenv("LFS_FUZZ_SEED");
	uint64_t seed = env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL) ^ (uint64_t)getpid();
	struct gbuf seeds = { 0 };
	size_t off[64], nseeds = 0;

	basics();
	bad_records();
	whole_file();
	memory_bound();
	corpus(&seeds, &nseeds, off);
	diag("fuzz seed %llu (replay with LFS_FUZZ_SEED=%llu)",
	     (unsigned long long)seed, (unsigned long long)seed);
	fuzz(seed, &seeds, off, nseeds);
	free(seeds.p);
	return done_testing();
}
