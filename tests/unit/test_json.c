/*
 * tests/unit/test_json.c — the streaming JSON / JSON Lines parser
 * (catalog/json.c).
 *
 * Every case runs three ways, the input fed whole, byte by byte and in
 * random chunks; what comes out (records, bad records, the form, the
 * result) is logged, the three logs must be equal and the whole-input log
 * must match the expected text. Then the memory bound over 200 MB, the
 * fuzzer's seed corpus (tests/fuzz/corpus/json) and a seeded mutation fuzz
 * loop (the seed is printed; LFS_FUZZ_SEED=N replays it): no crash (ASan in
 * make asan-unit), only 0 or -EINVAL, and chunking changes nothing.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "catalog/json.h"
#include "tests/unit/mutate.h"
#include "tests/unit/tap.h"
#include "util/util.h"

#define FUZZ_ROUNDS 20000

static void esc(struct gbuf *b, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c < 0x20 || c >= 0x7f || c == '\\' || c == '|')
			gbuf_printf(b, "\\x%02x", c);
		else
			gbuf_add(b, &c, 1);
	}
}

struct ctx {
	struct gbuf log;
	int stop_at;
	uint64_t good, bad;
};

static int on_rec(void *arg, uint64_t recno, uint64_t line, const struct json_field *f,
		  size_t n)
{
	static const char tc[] = "0bnsr";
	struct ctx *c = arg;

	c->good++;
	gbuf_printf(&c->log, "R%llu@%llu{", (unsigned long long)recno,
		    (unsigned long long)line);
	for (size_t i = 0; i < n; i++) {
		if (i)
			gbuf_add(&c->log, "|", 1);
		esc(&c->log, f[i].key, f[i].klen);
		gbuf_printf(&c->log, "=%c:", tc[f[i].type]);
		esc(&c->log, f[i].val, f[i].vlen);
	}
	gbuf_add(&c->log, "}\n", 2);
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

static int parse(const void *in, size_t n, const struct json_opts *o, int mode,
		 uint64_t seed, struct ctx *c)
{
	static const char *forms[] = { "?", "array", "lines", "object" };
	struct json_parser *p;
	const unsigned char *d = in;
	size_t off = 0;
	uint64_t s = seed ? seed : 1;
	int ret = 0;

	if (json_new(&p, o, on_rec, on_bad, c))
		bail_out("json_new");
	while (off < n && ret == 0) {
		size_t k = n - off;

		if (mode == 1) {
			k = 1;
		} else if (mode == 2) {
			size_t r = (size_t)(rnd(&s) % 4 ? 1 + rnd(&s) % 17 : 1 + rnd(&s) % 9000);

			k = MIN(k, r);
		}
		ret = json_feed(p, d + off, k);
		off += k;
	}
	if (ret == 0)
		ret = json_finish(p);
	gbuf_printf(&c->log, "ret=%d %s", ret, forms[json_form(p)]);
	if (ret)
		gbuf_printf(&c->log, " err=%s", json_error(p));
	gbuf_add(&c->log, "\n", 1);
	json_free(p);
	return ret;
}

static int same3(struct ctx *c)
{
	return c[0].log.n == c[1].log.n && c[0].log.n == c[2].log.n &&
	       !memcmp(c[0].log.p, c[1].log.p, c[0].log.n) &&
	       !memcmp(c[0].log.p, c[2].log.p, c[0].log.n);
}

/* The three ways again with a sniff of a few bytes, so that chunks cross
 * the streaming part and not only the sample: they must agree too. */
static int small_sniff_agrees(const void *in, size_t n, const struct json_opts *o,
			      uint64_t seed)
{
	struct json_opts so = JSON_OPTS_INIT;
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

static char *run3(const char *what, const void *in, size_t n, const struct json_opts *o,
		  uint64_t seed)
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
	ok(same, "%s: whole, byte by byte and in random chunks agree", what);
	if (!same)
		diag("whole:\n%s\nbytes:\n%s\nchunks:\n%s", (char *)c[0].log.p,
		     (char *)c[1].log.p, (char *)c[2].log.p);
	free(c[1].log.p);
	free(c[2].log.p);
	return (char *)c[0].log.p;
}

static void check(const char *what, const char *in, size_t n, const struct json_opts *o,
		  const char *want)
{
	char *got = run3(what, in, n, o, 42);

	is_str(got, want, "%s", what);
	free(got);
}

#define CHECK(what, in, o, want) check(what, in, sizeof(in) - 1, o, want)

static void forms(void)
{
	CHECK("an array of objects, all value types",
	      "[{\"s\":\"x\",\"n\":-1.5e+3,\"t\":true,\"f\":false,\"z\":null,"
	      "\"o\":{\"a\": [1, 2, {\"b\" : \"c d\"}]},\"a\":[]},\n {}]", NULL,
	      "R1@1{s=s:x|n=n:-1.5e+3|t=b:true|f=b:false|z=0:null|"
	      "o=r:{\"a\":[1,2,{\"b\":\"c d\"}]}|a=r:[]}\nR2@2{}\nret=0 array\n");
	CHECK("an empty array", " [ ] \n", NULL, "ret=0 array\n");
	CHECK("empty input", "", NULL, "ret=0 lines\n");
	CHECK("only white space", " \n\t\r\n", NULL, "ret=0 lines\n");
	CHECK("one object on one line", "{\"a\":1}", NULL, "R1@1{a=n:1}\nret=0 lines\n");
	CHECK("one pretty-printed object",
	      "{\n  \"a\": 1,\n  \"nested\": {\n    \"k\": [true, null]\n  }\n}\n", NULL,
	      "R1@1{a=n:1|nested=r:{\"k\":[true,null]}}\nret=0 object\n");
	CHECK("pretty objects one after the other (jq)",
	      "{\n  \"a\": 1\n}\n{\n  \"a\": 2\n}\n", NULL,
	      "R1@1{a=n:1}\nR2@4{a=n:2}\nret=0 object\n");
	CHECK("JSON Lines, blank lines and CRLF",
	      "{\"a\":1}\n\n{\"a\":2}\r\n  \n{\"a\":3}", NULL,
	      "R1@1{a=n:1}\nR2@3{a=n:2}\nR3@5{a=n:3}\nret=0 lines\n");
	CHECK("a BOM is skipped", "\xef\xbb\xbf{\"a\":1}\n", NULL, "R1@1{a=n:1}\nret=0 lines\n");
	CHECK("JSON Lines with a broken first line",
	      "{\"a\":[1}\n{\"a\":2}\n", NULL,
	      "B@1 expected ',' or ']' at byte 8 {{\"a\":[1}}\nR2@2{a=n:2}\nret=0 lines\n");
	CHECK("escapes: \\u, surrogate pairs, the short ones",
	      "{\"k\\u00e9\":\"\\u20ac\\ud83d\\ude00\\n\\t\\\"\\\\\\/\\b\\f\\r\"}\n", NULL,
	      "R1@1{k\\xc3\\xa9=s:\\xe2\\x82\\xac\\xf0\\x9f\\x98\\x80\\x0a\\x09\"\\x5c/\\x08\\x0c\\x0d}\n"
	      "ret=0 lines\n");
	CHECK("nested strings keep their escapes",
	      "{\"o\":{\"k\":\"a\\u00e9\\n\"}}\n", NULL,
	      "R1@1{o=r:{\"k\":\"a\\x5cu00e9\\x5cn\"}}\nret=0 lines\n");
	CHECK("duplicate keys: the last wins, at the first's place",
	      "{\"a\":1,\"b\":2,\"a\":\"x\"}\n", NULL, "R1@1{a=s:x|b=n:2}\nret=0 lines\n");
	CHECK("numbers per the grammar", "{\"a\":0,\"b\":-0.0,\"c\":1E9,\"d\":12e-1}\n", NULL,
	      "R1@1{a=n:0|b=n:-0.0|c=n:1E9|d=n:12e-1}\nret=0 lines\n");
}

static void bad_records(void)
{
	struct json_opts o = JSON_OPTS_INIT;

	CHECK("JSON Lines: a bad line is skipped, the next parses",
	      "{\"a\":1}\n{\"a\":01}\n{\"a\":.5}\n{\"a\":1.}\n{\"a\":tru}\n[1]\n\"s\"\n{\"a\":2}\n",
	      NULL,
	      "R1@1{a=n:1}\n"
	      "B@2 expected ',' or '}' at byte 7 {{\"a\":01}}\n"
	      "B@3 invalid value at byte 6 {{\"a\":.5}}\n"
	      "B@4 invalid number at byte 8 {{\"a\":1.}}\n"
	      "B@5 invalid literal at byte 6 {{\"a\":tru}}\n"
	      "B@6 top-level value is not an object {[1]}\n"
	      "B@7 top-level value is not an object {\"s\"}\n"
	      "R8@8{a=n:2}\nret=0 lines\n");
	CHECK("strings: bad escapes, lone surrogates, NUL, control, bad UTF-8",
	      "{\"a\":\"\\x\"}\n{\"a\":\"\\ud800\"}\n{\"a\":\"\\udc00x\"}\n{\"a\":\"\\u0000\"}\n"
	      "{\"a\":\"\t\"}\n{\"a\":\"\xff\"}\n{\"a\":\"\\u12\"}\n{\"a\":\"ok\"}\n", NULL,
	      "B@1 invalid escape in a string at byte 7 {{\"a\":\"\\x5cx\"}}\n"
	      "B@2 lone high surrogate in a \\u escape at byte 7 {{\"a\":\"\\x5cud800\"}}\n"
	      "B@3 lone low surrogate in a \\u escape at byte 7 {{\"a\":\"\\x5cudc00x\"}}\n"
	      "B@4 \\u0000 in a string at byte 7 {{\"a\":\"\\x5cu0000\"}}\n"
	      "B@5 control character in a string at byte 7 {{\"a\":\"\\x09\"}}\n"
	      "B@6 invalid UTF-8 in a string at byte 7 {{\"a\":\"\\xff\"}}\n"
	      "B@7 invalid \\u escape at byte 7 {{\"a\":\"\\x5cu12\"}}\n"
	      "R8@8{a=s:ok}\nret=0 lines\n");
	CHECK("data after the object on its line", "{\"a\":1} {\"b\":2}\n{\"c\":3}\n", NULL,
	      "B@1 data after the object at byte 9 {{\"a\":1} {\"b\":2}}\nR2@2{c=n:3}\nret=0 lines\n");
	CHECK("an unclosed object at the end", "{\"a\":1}\n{\"a\":", NULL,
	      "R1@1{a=n:1}\nB@2 invalid value: unexpected end of the record {{\"a\":}\nret=0 lines\n");
	CHECK("array: a bad element, then on",
	      "[{\"a\":1},{\"a\":x},2,{\"a\":\"\\q\"},{\"a\":3}]", NULL,
	      "R1@1{a=n:1}\nB@1 invalid value at byte 6 {{\"a\":x}}\n"
	      "B@1 top-level value is not an object {2}\n"
	      "B@1 invalid escape in a string at byte 7 {{\"a\":\"\\x5cq\"}}\n"
	      "R5@1{a=n:3}\nret=0 array\n");
	CHECK("array: trailing comma, empty element, data after",
	      "[{\"a\":1},,{\"a\":2},]\nxyz", NULL,
	      "R1@1{a=n:1}\nB@1 empty array element {,}\nR3@1{a=n:2}\n"
	      "B@1 trailing comma before ']' {]}\nB@2 data after the end of the array {xyz}\n"
	      "ret=0 array\n");
	CHECK("array: not closed", "[{\"a\":1},\n{\"a\":2}", NULL,
	      "R1@1{a=n:1}\nB@2 unexpected end of input in an array element {{\"a\":2}}\n"
	      "ret=0 array\n");
	CHECK("array: not closed after a comma", "[{\"a\":1},", NULL,
	      "R1@1{a=n:1}\nB@1 unexpected end of input: the array is not closed {}\n"
	      "ret=0 array\n");
	CHECK("object form: stray text between objects",
	      "{\n \"a\": 1\n}\nnot json\nat all\n{\n \"a\": 2\n}\n", NULL,
	      "R1@1{a=n:1}\nB@4 expected '{' at the start of a top-level object "
	      "{not json\\x0aat all\\x0a}\nR3@6{a=n:2}\nret=0 object\n");
	o.max_depth = 3;
	CHECK("nesting over max_depth", "{\"a\":{\"b\":{}}}\n{\"a\":{\"b\":{\"c\":[]}}}\n", &o,
	      "R1@1{a=r:{\"b\":{}}}\nB@2 nesting deeper than 3 levels "
	      "{{\"a\":{\"b\":{\"c\":[]}}}}\nret=0 lines\n");
	o.max_depth = 0;
	o.max_fields = 2;
	CHECK("more than max_fields", "{\"a\":1,\"b\":2}\n{\"a\":1,\"b\":2,\"c\":3}\n", &o,
	      "R1@1{a=n:1|b=n:2}\nB@2 more than 2 fields {{\"a\":1,\"b\":2,\"c\":3}}\n"
	      "ret=0 lines\n");
	o.max_fields = 0;
	o.max_record = 16;
	CHECK("JSON Lines: a line over max_record", "{\"a\":\"0123456789\"}\n{\"a\":1}\n", &o,
	      "B@1 line longer than 16 bytes {{\"a\":\"0123456789}\nR2@2{a=n:1}\nret=0 lines\n");
	CHECK("array: an element over max_record resyncs at } , {",
	      "[{\"a\":\"0123456789ABC\"},{\"a\":1}, {\"a\":[\"x\",\n{\"a\":2}]", &o,
	      "B@1 array element longer than 16 bytes {{\"a\":\"0123456789}\n"
	      "R2@1{a=n:1}\nB@1 array element longer than 16 bytes "
	      "{{\"a\":[\"x\",\\x0a{\"a\":}\nret=0 array\n");
	CHECK("object form: over max_record skips to a line starting with {",
	      "{\n\"a\": \"0123456789ABCDEF\"\n}\n{\n\"b\":1}\n", &o,
	      "B@1 object longer than 16 bytes {{\\x0a\"a\": \"01234567}\nR2@4{b=n:1}\n"
	      "ret=0 object\n");
}

static void whole_file(void)
{
	static unsigned char bin[4096];
	uint64_t s = 9;
	char *got;

	for (size_t i = 0; i < sizeof(bin); i++)
		bin[i] = (unsigned char)rnd(&s);
	bin[0] = '{';
	got = run3("binary garbage", bin, sizeof(bin), NULL, 1);
	ok(strstr(got, "ret=-22") && strstr(got, "binary data") && !strstr(got, "R1"),
	   "random bytes are -EINVAL: binary data, no record");
	free(got);
	got = run3("UTF-16", "\xff\xfe{\0}\0", 6, NULL, 1);
	ok(strstr(got, "ret=-22") && strstr(got, "UTF-16"), "UTF-16 is -EINVAL");
	free(got);
	got = run3("not JSON", "a,b,c\n1,2,3\n", 12, NULL, 1);
	ok(strstr(got, "ret=-22") && strstr(got, "not JSON: no object"),
	   "a CSV file is -EINVAL: not JSON");
	free(got);
	{
		struct json_parser *p;
		struct ctx c = { 0 };
		const char *in = "{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n";

		c.stop_at = 2;
		json_new(&p, NULL, on_rec, on_bad, &c);
		is_int(json_feed(p, in, strlen(in)), 0, "records wait for the sample");
		is_int(json_finish(p), 7, "a callback's stop comes back");
		is_int((int)c.good, 2, "after two records");
		is_int(json_feed(p, "x", 1), 7, "and it is sticky");
		json_free(p);
		free(c.log.p);
	}
}

struct memctx {
	uint64_t good, bad, fields;
};

static int mem_rec(void *arg, uint64_t recno, uint64_t line, const struct json_field *f,
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

/* 200 MB in each form (lines, array), and one over-long line. */
static void memory_bound(void)
{
	enum { CHUNK = 1 << 20 };
	char *chunk = malloc(CHUNK + 256);

	for (int form = 0; form < 2; form++) {
		struct json_parser *p;
		struct memctx m = { 0 };
		size_t fed = 0, peak = 0, len;
		uint64_t row = 0;
		int ret;

		json_new(&p, NULL, mem_rec, mem_bad, &m);
		ret = form ? json_feed(p, "[\n", 2) : 0;
		while (fed < (200u << 20) && ret == 0) {
			len = 0;
			while (len < CHUNK)
				len += (size_t)snprintf(chunk + len, 256,
							"%s{\"id\":%llu,\"name\":\"n\\u00e9 %llu\","
							"\"tags\":[\"a\",{\"b\":null}]}\n",
							form && row ? "," : "",
							(unsigned long long)row,
							(unsigned long long)row), row++;
			ret = json_feed(p, chunk, len);
			fed += len;
			peak = MAX(peak, json_mem(p));
		}
		ret = ret ? ret : form ? json_feed(p, "]", 1) : 0;
		ret = ret ? ret : json_finish(p);
		ok(ret == 0 && m.good == row && m.bad == 0 && m.fields == 3 * row,
		   "%s: 200 MB, %llu records of 3 fields", form ? "array" : "JSON Lines",
		   (unsigned long long)row);
		ok(peak < 256 * 1024, "the parser held at most %zu bytes (bound 256 KiB)", peak);
		json_free(p);
	}
	{
		struct json_parser *p;
		struct memctx m = { 0 };
		struct json_opts o = JSON_OPTS_INIT;
		size_t peak = 0;
		int ret;

		o.max_record = 1 << 20;
		json_new(&p, &o, mem_rec, mem_bad, &m);
		ret = json_feed(p, "{\"a\":1}\n{\"a\":\"", 14);
		memset(chunk, 'x', CHUNK);
		for (int i = 0; i < 64 && ret == 0; i++) {
			ret = json_feed(p, chunk, CHUNK);
			peak = MAX(peak, json_mem(p));
		}
		ret = ret ? ret : json_feed(p, "\"}\n{\"a\":2}\n", 11);
		ret = ret ? ret : json_finish(p);
		ok(ret == 0 && m.good == 2 && m.bad == 1, "a 64 MB line: one bad record, then on");
		ok(peak < (1u << 20) + 256 * 1024, "held at most %zu bytes (max_record 1 MiB)", peak);
		json_free(p);
	}
	free(chunk);
}

static const char *corpus_dir(void)
{
	const char *src = getenv("LFS_SRCDIR");
	static char path[4096];

	snprintf(path, sizeof(path), "%s/tests/fuzz/corpus/json", src ? src : ".");
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
		struct ctx c[3];
		char *got;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", corpus_dir(), e->d_name);
		if (load(path, &b))
			continue;
		files++;
		memset(c, 0, sizeof(c));
		for (int m = 0; m < 3; m++)
			parse(b.p, b.n, NULL, m, (uint64_t)files, &c[m]);
		agree += same3(c) && small_sniff_agrees(b.p, b.n, NULL, (uint64_t)files);
		got = (char *)c[0].log.p;
		if (strstr(got, "ret=0 ") || strstr(got, "ret=-22 "))
			sane++;
		else
			diag("corpus %s: %s", e->d_name, got);
		for (int m = 0; m < 3; m++)
			free(c[m].log.p);
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
	static const char special[] = "{}[],:\"\\\n\r 0-eE.tfnu\xff\xc3\xed";

	return mutate_text(p, n, cap, s, special, sizeof(special) - 1);
}

static void fuzz(uint64_t seed, const struct gbuf *seeds, const size_t *off, size_t nseeds)
{
	static const char *builtin[] = {
		"[{\"a\":1,\"b\":\"x\\u00e9\",\"c\":[1,2,{\"d\":null}]},{\"a\":-2.5e3,\"b\":true}]",
		"{\"id\":1,\"s\":\"\\ud83d\\ude00\"}\n{\"id\":2,\"o\":{\"k\":[]}}\n\n{\"id\":3}",
		"{\n  \"a\": {\n    \"b\": [1, 2]\n  },\n  \"c\": \"d\"\n}\n",
		"\xef\xbb\xbf[\n {\"k\": \"v\"},\n {\"k\": false}\n]\n",
	};
	uint64_t s = seed ? seed : 1, zero = 0, einval = 0, other = 0, differ = 0;
	size_t cap = 16384;
	unsigned char *p = malloc(cap);

	for (int i = 0; i < FUZZ_ROUNDS; i++) {
		size_t pick = (size_t)(rnd(&s) % (ARRAY_SIZE(builtin) + nseeds)), n;
		struct json_opts o = JSON_OPTS_INIT;
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
			o.max_record = 1 + rnd(&s) % 64;
			o.max_depth = 1 + (int)(rnd(&s) % 4);
			o.max_fields = 1 + rnd(&s) % 4;
		}
		if (rnd(&s) % 2)
			o.sniff = 1 + rnd(&s) % 96;
		q = malloc(n ? n : 1);
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

	forms();
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
