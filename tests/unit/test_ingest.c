/*
 * tests/unit/test_ingest.c — the silver transform (catalog/ingest.c).
 *
 * Every batch runs with in-memory readers and writers against a table
 * kept here as the caller would keep it (schema, TABLE.csv, TABLE.jsonl,
 * rows): a rewrite replaces the files, an append adds to them, a batch
 * quarantined as a whole leaves them alone. Exact bytes are checked for
 * the output of the main cases. Then a seeded mutation loop (the seed is
 * printed; LFS_FUZZ_SEED=N replays it) feeds damaged batches through
 * ingest_run: it must never crash (ASan in make asan-unit), return only 0
 * or -EINVAL, and keep the output a rectangle of the schema's columns.
 * With LFS_INGEST_BENCH=ROWS it prints the throughput of one run over a
 * generated CSV of 8 mixed columns (JSON lines with LFS_INGEST_BENCH_JSON=1)
 * instead of testing.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <zlib.h>
#include <zstd.h>

#include "catalog/csv.h"
#include "catalog/ingest.h"
#include "tests/unit/mutate.h"
#include "tests/unit/tap.h"
#include "util/util.h"

#define FUZZ_ROUNDS 2000

/* ---- in-memory I/O ---- */

struct mem {
	const unsigned char *p;
	size_t n;
	size_t maxread;		/* 0: any */
};

static ssize_t mem_pread(void *arg, void *buf, size_t n, uint64_t off)
{
	struct mem *m = arg;

	if (off >= m->n)
		return 0;
	n = MIN(n, m->n - (size_t)off);
	if (m->maxread)
		n = MIN(n, m->maxread);
	memcpy(buf, m->p + off, n);
	return (ssize_t)n;
}

static size_t g_maxread;	/* reads of at most this many bytes; 0: any */

static int gb_write(void *arg, const void *buf, size_t n)
{
	gbuf_add(arg, buf, n);
	return ((struct gbuf *)arg)->failed ? -ENOMEM : 0;
}

/* The silver table as lake.c would keep it. */
struct tbl {
	struct lt_schema schema;
	struct gbuf csv, jsonl;
	int has_csv;
	uint64_t rows;
};

struct res {
	int ret;
	int begun, rewrite;
	struct gbuf csv, jsonl, q;
	struct ingest_out out;
	char *err;
};

static int on_begin(void *arg, int rewrite)
{
	struct res *s = arg;

	s->begun++;
	s->rewrite = rewrite;
	return 0;
}

static void res_free(struct res *s)
{
	free(s->csv.p);
	free(s->jsonl.p);
	free(s->q.p);
	free(s->err);
	ingest_out_release(&s->out);
	memset(s, 0, sizeof(*s));
}

static void tbl_free(struct tbl *t)
{
	lt_schema_free(&t->schema);
	free(t->csv.p);
	free(t->jsonl.p);
	memset(t, 0, sizeof(*t));
}

static const char *S(const struct gbuf *b)
{
	return b->p ? (const char *)b->p : "";
}

/* One batch of n bytes named name against t; t is updated as published. */
static int batch_n(struct tbl *t, const struct ingest_conf *c0, const char *name,
		   const void *in, size_t n, struct res *s)
{
	struct ingest_conf c = *c0;
	struct mem src = { in, n, g_maxread }, old = { t->csv.p, t->csv.n, g_maxread };
	struct ingest_reader rs = { &src, mem_pread, n };
	struct ingest_reader ro = { &old, mem_pread, t->csv.n };
	struct ingest_table cur = { &t->schema, t->has_csv ? &ro : NULL, t->rows };

	memset(s, 0, sizeof(*s));
	c.src_name = name;
	s->out.begin = on_begin;
	s->out.begin_arg = s;
	s->out.csv = (struct ingest_writer){ &s->csv, gb_write };
	s->out.jsonl = (struct ingest_writer){ &s->jsonl, gb_write };
	s->out.quarantine = (struct ingest_writer){ &s->q, gb_write };
	s->ret = ingest_run(&c, &rs, &cur, &s->out, &s->err);
	if (s->ret < 0 || s->out.batch_reason || !s->begun)
		return s->ret;
	if (s->rewrite) {
		t->csv.n = t->jsonl.n = 0;
		t->has_csv = 1;
	}
	gbuf_add(&t->csv, s->csv.p, s->csv.n);
	gbuf_add(&t->jsonl, s->jsonl.p, s->jsonl.n);
	lt_schema_free(&t->schema);
	lt_schema_copy(&t->schema, &s->out.schema);
	t->rows = s->out.rows_total;
	return 0;
}

static int batch(struct tbl *t, const struct ingest_conf *c, const char *name,
		 const char *in, struct res *s)
{
	return batch_n(t, c, name, in, strlen(in), s);
}

#define CONF_INIT { .csv_header = 1, .mode = LT_ADD_NEW_COLUMNS }

/* ---- the table stays a rectangle: every row has every column ---- */

struct shape {
	size_t width;
	uint64_t rows, bad, wrong;
};

static int shape_rec(void *arg, uint64_t recno, uint64_t line,
		     const struct csv_field *f, size_t n)
{
	struct shape *sh = arg;

	(void)recno;
	(void)line;
	(void)f;
	sh->rows++;
	sh->wrong += n != sh->width;
	return 0;
}

static int shape_bad(void *arg, uint64_t line, const char *reason, const char *raw,
		     size_t rawlen)
{
	(void)line;
	(void)reason;
	(void)raw;
	(void)rawlen;
	((struct shape *)arg)->bad++;
	return 0;
}

/* The table's CSV parses back to rows rows of its schema's width, with as
 * many JSON lines. 1 if so. */
static int table_ok(const struct tbl *t)
{
	struct csv_opts o = CSV_OPTS_INIT;
	struct shape sh = { t->schema.n + (t->schema.has_rescued ? 1 : 0), 0, 0, 0 };
	struct csv_parser *p;
	size_t hn = 0, lines = 0;
	int ret;

	if (!t->has_csv)
		return t->csv.n == 0;
	o.delim = ',';
	o.max_field = o.max_record = 64u << 20;
	if (csv_new(&p, &o, shape_rec, shape_bad, &sh) < 0)
		return 0;
	ret = csv_feed(p, t->csv.p, t->csv.n);
	if (!ret)
		ret = csv_finish(p);
	csv_header(p, &hn);
	csv_free(p);
	for (size_t i = 0; i < t->jsonl.n; i++)
		lines += t->jsonl.p[i] == '\n';
	if (ret || sh.bad || sh.wrong || hn != sh.width || sh.rows != t->rows ||
	    lines != t->rows) {
		diag("table: ret %d, bad %llu, wrong %llu, header %zu of %zu, rows %llu/%llu, "
		     "jsonl %zu", ret, (unsigned long long)sh.bad,
		     (unsigned long long)sh.wrong, hn, sh.width, (unsigned long long)sh.rows,
		     (unsigned long long)t->rows, lines);
		return 0;
	}
	return 1;
}

/* ---- formats ---- */

static void csv_basic(void)
{
	struct ingest_conf c = CONF_INIT;
	struct tbl t = { 0 };
	struct res s;

	batch(&t, &c, "a.csv", "id,price,ok,day,at,name,amount\n"
	      "1,2.5,true,2024-01-02,2024-01-02 03:04:05,\"x, y\",12.50\n"
	      "2,1e3,FALSE,2024-02-29,2024-01-02T03:04,,7\n"
	      "3,,,,,\"\",\n", &s);
	is_int(s.ret, 0, "csv: ingest_run ok");
	is_int(s.begun, 1, "csv: begin called once");
	is_int(s.rewrite, 1, "csv: the first version is a rewrite");
	is_str(S(&s.csv), "id,price,ok,day,at,name,amount\n"
	       "1,2.5,true,2024-01-02,2024-01-02T03:04:05,\"x, y\",12.50\n"
	       "2,1000,false,2024-02-29,2024-01-02T03:04:00,,7\n"
	       "3,,,,,\"\",\n", "csv: canonical csv bytes");
	is_str(S(&s.jsonl),
	       "{\"id\":1,\"price\":2.5,\"ok\":true,\"day\":\"2024-01-02\",\"at\":\"2024-01-02T03:04:05\",\"name\":\"x, y\",\"amount\":12.50}\n"
	       "{\"id\":2,\"price\":1000,\"ok\":false,\"day\":\"2024-02-29\",\"at\":\"2024-01-02T03:04:00\",\"name\":null,\"amount\":7}\n"
	       "{\"id\":3,\"price\":null,\"ok\":null,\"day\":null,\"at\":null,\"name\":\"\",\"amount\":null}\n",
	       "csv: jsonl bytes");
	is_str(s.out.format, "csv", "csv: format");
	is_int(s.out.rows_read, 3, "csv: rows_read");
	is_int(s.out.rows_written, 3, "csv: rows_written");
	is_int(s.out.rows_total, 3, "csv: rows_total");
	is_int(s.out.schema.n, 7, "csv: 7 columns");
	ok(s.out.schema.n == 7 && s.out.schema.cols[1].type == LT_FLOAT &&
	   s.out.schema.cols[4].type == LT_TIMESTAMP &&
	   s.out.schema.cols[6].type == LT_DECIMAL, "csv: types inferred");
	ok(s.out.changes && strstr(s.out.changes, "{\"added\":\"id\",\"type\":\"INT\"}"),
	   "csv: changes list the added columns");
	is_str(s.out.expectations, "{}", "csv: no expectations");
	is_str(S(&s.q), "", "csv: nothing quarantined");
	res_free(&s);
	tbl_free(&t);
}

static void csv_dialects(void)
{
	struct ingest_conf c = CONF_INIT;
	struct tbl t = { 0 };
	struct res s;

	batch(&t, &c, "b.csv", "\xef\xbb\xbf" "a,b\r\n1,\"two\r\nlines\"\r\n2,\"q\"\"x\"\r\n", &s);
	is_str(S(&s.csv), "a,b\n1,\"two\r\nlines\"\n2,\"q\"\"x\"\n", "csv: BOM, CRLF, multiline");
	is_str(S(&s.jsonl), "{\"a\":1,\"b\":\"two\\r\\nlines\"}\n{\"a\":2,\"b\":\"q\\\"x\"}\n",
	       "csv: multiline in jsonl");
	res_free(&s);
	tbl_free(&t);

	batch(&t, &c, "c.txt", "a;b;c\n1;x;2.5\n2;y;3\n", &s);
	is_str(S(&s.csv), "a,b,c\n1,x,2.5\n2,y,3\n", "csv: ';' sniffed");
	res_free(&s);
	tbl_free(&t);

	batch(&t, &c, "d.tsv", "a\tb\n1\thello, world\n", &s);
	is_str(S(&s.csv), "a,b\n1,\"hello, world\"\n", "csv: tab sniffed, comma quoted");
	res_free(&s);
	tbl_free(&t);

	c.csv_header = 0;
	batch(&t, &c, "e.csv", "1,x\n2,y,z\n", &s);
	is_str(S(&s.csv), "_c0,_c1,_c2\n1,x,\n2,y,z\n", "csv: no header, _cN names");
	res_free(&s);
	tbl_free(&t);
}

static void csv_ragged(void)
{
	struct ingest_conf c = CONF_INIT;
	struct tbl t = { 0 };
	struct res s;

	batch(&t, &c, "r.csv", "a,b,c\n1,2\n3,4,5,\n6,7,8,9\n", &s);
	is_str(S(&s.csv), "a,b,c\n1,2,\n3,4,5\n", "ragged: short row padded, trailing comma ignored");
	is_str(S(&s.q), "{\"line\":4,\"reason\":\"record has 4 fields, the header 3\","
	       "\"expectation\":null,\"raw\":\"6,7,8,9\"}\n", "ragged: a long row quarantined");
	is_int(s.out.rows_quarantined, 1, "ragged: rows_quarantined");
	is_int(s.out.rows_read, 3, "ragged: rows_read");
	is_int(s.out.rows_written, 2, "ragged: rows_written");
	res_free(&s);
	tbl_free(&t);

	c.mode = LT_RESCUE;
	batch(&t, &c, "r.csv", "a,b\n1,2,x\n", &s);
	is_str(S(&s.csv), "a,b,_rescued_data\n1,2,\"{\"\"_c2\"\":\"\"x\"\"}\"\n",
	       "ragged: rescue mode rescues extra fields as _cN");
	is_str(S(&s.jsonl), "{\"a\":1,\"b\":2,\"_rescued_data\":{\"_c2\":\"x\"}}\n",
	       "ragged: rescued data as an object in jsonl");
	res_free(&s);
	tbl_free(&t);
}

static void empty_and_header_only(void)
{
	struct ingest_conf c = CONF_INIT;
	struct tbl t = { 0 };
	struct res s;

	batch(&t, &c, "e.csv", "", &s);
	is_int(s.ret, 0, "empty: ok");
	is_int(s.begun, 0, "empty: begin not called");
	is_int(s.out.rows_read, 0, "empty: no rows");
	is_str(s.out.changes, "[]", "empty: no schema change");
	ok(!s.out.batch_reason, "empty: not quarantined");
	res_free(&s);

	batch(&t, &c, "h.csv", "a,b\n", &s);
	is_int(s.begun, 1, "header-only: begin called");
	is_str(S(&s.csv), "a,b\n", "header-only: the header is written");
	is_str(S(&s.jsonl), "", "header-only: no jsonl rows");
	ok(s.out.schema.n == 2 && s.out.schema.cols[0].type == LT_NULL,
	   "header-only: columns of type NULL");
	res_free(&s);

	batch(&t, &c, "h2.csv", "a,b\n1,x\n", &s);
	is_int(s.rewrite, 0, "header-only then data: NULL types gain types, append");
	is_str(S(&t.csv), "a,b\n1,x\n", "header-only then data: table csv");
	res_free(&s);
	tbl_free(&t);
}

static void json_forms(void)
{
	struct ingest_conf c = CONF_INIT;
	struct tbl t = { 0 };
	struct res s;

	batch(&t, &c, "a.json", "[{\"id\":1,\"n\":\"x\"},{\"id\":2,\"extra\":true}]", &s);
	is_str(S(&s.csv), "id,n,extra\n1,x,\n2,,true\n", "json array: keys in order of appearance");
	is_str(s.out.format, "json", "json array: format json");
	res_free(&s);
	tbl_free(&t);

	batch(&t, &c, "o", "{\n  \"id\": 7,\n  \"tags\": [1, 2],\n  \"o\": {\"k\": \"v\"}\n}\n", &s);
	is_str(S(&s.csv), "id,tags,o\n7,\"[1,2]\",\"{\"\"k\"\":\"\"v\"\"}\"\n",
	       "json object: nested values kept as JSON text");
	is_str(S(&s.jsonl), "{\"id\":7,\"tags\":\"[1,2]\",\"o\":\"{\\\"k\\\":\\\"v\\\"}\"}\n",
	       "json object: nested values are strings in jsonl");
	ok(s.out.schema.n == 3 && s.out.schema.cols[2].type == LT_STRING, "nested: STRING column");
	res_free(&s);
	tbl_free(&t);

	batch(&t, &c, "l.jsonl", "{\"a\":1,\"b\":\"2024-01-01\"}\n{\"a\":2.5,\"b\":null}\n"
	      "{bad\n{\"a\":\"\",\"b\":\"\"}\n", &s);
	is_str(S(&s.csv), "a,b\n1,2024-01-01\n2.5,\n,\n", "jsonl: rows, \"\" is null in typed columns");
	is_str(s.out.format, "jsonl", "jsonl: format");
	ok(strstr(S(&s.q), "\"line\":3") != NULL, "jsonl: bad line quarantined with its line");
	is_int(s.out.rows_quarantined, 1, "jsonl: one quarantined");
	res_free(&s);
	tbl_free(&t);

	batch(&t, &c, "e.json", "[{}, {}]", &s);
	is_int(s.begun, 0, "empty objects, new table: nothing to write");
	is_int(s.out.rows_read, 2, "empty objects: read");
	res_free(&s);
	batch(&t, &c, "a.json", "{\"a\":1}", &s);
	res_free(&s);
	batch(&t, &c, "e.json", "[{}]", &s);
	is_str(S(&s.csv), "\"\"\n", "empty object, table with columns: a null row");
	res_free(&s);
	tbl_free(&t);

	batch(&t, &c, "sniffed", "  {\"s\":\"\",\"t\":\"q\\\"\"}\n{\"s\":\"x\",\"t\":\"\"}\n", &s);
	is_str(S(&s.csv), "s,t\n\"\",\"q\"\"\"\nx,\"\"\n",
	       "json sniffed: \"\" stays the empty string in a STRING column");
	res_free(&s);
	tbl_free(&t);
}

static size_t gz(const char *in, unsigned char *out, size_t cap)
{
	z_stream z = { 0 };
	size_t n;

	deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
	z.next_in = (unsigned char *)in;
	z.avail_in = (uInt)strlen(in);
	z.next_out = out;
	z.avail_out = (uInt)cap;
	deflate(&z, Z_FINISH);
	n = cap - z.avail_out;
	deflateEnd(&z);
	return n;
}

static void compressed(void)
{
	const char *text = "a,b\n1,x\n2,y\n";
	struct ingest_conf c = CONF_INIT;
	unsigned char buf[4096];
	struct tbl t = { 0 };
	struct res s;
	size_t n;

	n = gz(text, buf, sizeof(buf));
	g_maxread = 3;
	batch_n(&t, &c, "x.csv.gz", buf, n, &s);
	g_maxread = 0;
	is_str(S(&s.csv), "a,b\n1,x\n2,y\n", "gz: decompressed and parsed (3-byte reads)");
	is_str(s.out.format, "csv", "gz: format from the name without .gz");
	res_free(&s);
	tbl_free(&t);

	/* two members, magic only (no suffix) */
	n += gz("3,z\n", buf + n, sizeof(buf) - n);
	batch_n(&t, &c, "noext", buf, n, &s);
	is_str(S(&s.csv), "a,b\n1,x\n2,y\n3,z\n", "gz: by magic, concatenated members");
	res_free(&s);
	tbl_free(&t);

	n = gz(text, buf, sizeof(buf));
	batch_n(&t, &c, "x.csv.gz", buf, n - 6, &s);
	ok(s.out.batch_reason && strstr(s.out.batch_reason, "gzip"), "gz: truncated -> batch quarantined (%s)",
	   s.out.batch_reason ? s.out.batch_reason : "none");
	is_int(s.begun, 0, "gz: truncated -> begin not called");
	ok(strstr(S(&s.q), "\"line\":0") != NULL, "gz: one quarantine line for the batch");
	res_free(&s);
	buf[12] ^= 0x55;
	batch_n(&t, &c, "x.csv.gz", buf, n, &s);
	ok(s.out.batch_reason && strstr(s.out.batch_reason, "gzip"), "gz: corrupt -> quarantined (%s)",
	   s.out.batch_reason ? s.out.batch_reason : "none");
	res_free(&s);

	n = ZSTD_compress(buf, sizeof(buf), "[{\"k\":1},{\"k\":2}]", 17, 3);
	g_maxread = 5;
	batch_n(&t, &c, "x.json.zst", buf, n, &s);
	g_maxread = 0;
	is_str(S(&s.csv), "k\n1\n2\n", "zst: decompressed json (5-byte reads)");
	res_free(&s);
	tbl_free(&t);
	batch_n(&t, &c, "x.json.zst", buf, n - 3, &s);
	ok(s.out.batch_reason && strstr(s.out.batch_reason, "zstd"), "zst: truncated -> quarantined (%s)",
	   s.out.batch_reason ? s.out.batch_reason : "none");
	res_free(&s);
	batch_n(&t, &c, "x.json.zst", "nonsense", 8, &s);
	ok(s.out.batch_reason && strstr(s.out.batch_reason, "zstd"), "zst by name, not zstd -> quarantined");
	res_free(&s);
	tbl_free(&t);
}

static void garbage(void)
{
	struct ingest_conf c = CONF_INIT;
	unsigned char bin[2048];
	struct tbl t = { 0 };
	uint64_t seed = 7;
	struct res s;

	for (size_t i = 0; i < sizeof(bin); i++)
		bin[i] = (unsigned char)rnd(&seed);
	batch_n(&t, &c, "x.csv", bin, sizeof(bin), &s);
	ok(s.out.batch_reason && strstr(s.out.batch_reason, "binary"), "binary: quarantined (%s)",
	   s.out.batch_reason ? s.out.batch_reason : "none");
	is_int(s.begun, 0, "binary: begin not called");
	is_int(s.ret, 0, "binary: a result, not an error");
	res_free(&s);

	batch(&t, &c, "u.csv", "a,b\n1,ok\n2,bad\xff\n3,fine\n", &s);
	is_str(S(&s.csv), "a,b\n1,ok\n3,fine\n", "invalid utf-8: the row is left out");
	ok(strstr(S(&s.q), "\"line\":3") && strstr(S(&s.q), "UTF-8"),
	   "invalid utf-8: quarantined with line and reason");
	is_int(s.out.rows_quarantined, 1, "invalid utf-8: counted");
	res_free(&s);
	tbl_free(&t);
}

/* ---- evolution, rewrite or append ---- */

static void evolution(void)
{
	struct ingest_conf c = CONF_INIT;
	struct tbl t = { 0 };
	struct res s;

	batch(&t, &c, "1.csv", "id,v\n1,10\n", &s);
	res_free(&s);
	batch(&t, &c, "2.csv", "id,v\n2,20\n", &s);
	is_int(s.rewrite, 0, "same schema: append");
	is_str(S(&s.csv), "2,20\n", "append: rows only, no header");
	res_free(&s);
	batch(&t, &c, "3.csv", "v,id\n30,3\n", &s);
	is_int(s.rewrite, 0, "columns in another order: append");
	is_str(S(&t.csv), "id,v\n1,10\n2,20\n3,30\n", "columns mapped by name");
	res_free(&s);
	batch(&t, &c, "4.csv", "id,v,w\n4,4.5e0,x\n", &s);
	is_int(s.rewrite, 1, "new column and INT->FLOAT: rewrite");
	is_str(S(&t.csv), "id,v,w\n1,10,\n2,20,\n3,30,\n4,4.5,x\n", "rewrite: old rows gain the column");
	ok(strstr(s.out.changes, "\"widened\":\"v\",\"from\":\"INT\",\"to\":\"FLOAT\"") &&
	   strstr(s.out.changes, "\"added\":\"w\""), "changes: widened and added (%s)",
	   s.out.changes);
	is_int(t.rows, 4, "rows_total after rewrite");
	res_free(&s);
	batch(&t, &c, "5.csv", "id,v\n5,abc\n", &s);
	is_int(s.rewrite, 1, "FLOAT->STRING: rewrite");
	is_str(S(&t.jsonl), "{\"id\":1,\"v\":\"10\",\"w\":null}\n{\"id\":2,\"v\":\"20\",\"w\":null}\n"
	       "{\"id\":3,\"v\":\"30\",\"w\":null}\n{\"id\":4,\"v\":\"4.5\",\"w\":\"x\"}\n"
	       "{\"id\":5,\"v\":\"abc\",\"w\":null}\n", "rewrite: jsonl retyped to strings");
	is_int(s.out.schema.version, 3, "schema version 3");
	res_free(&s);
	batch(&t, &c, "6.csv", "id\n6\n", &s);
	is_int(s.rewrite, 0, "dropped column: append with null");
	is_str(S(&s.csv), "6,,\n", "dropped column: null");
	ok(table_ok(&t), "evolution: the table is a rectangle");
	res_free(&s);
	tbl_free(&t);

	batch(&t, &c, "n.csv", "d\n1.5\n-0.0\n+5\n0.50\n1e2\n007\n", &s);
	is_str(S(&s.csv), "d\n1.5\n-0.0\n+5\n0.50\n1e2\n007\n",
	       "numbers: 007 makes a STRING column, which keeps every text");
	res_free(&s);
	tbl_free(&t);
	batch(&t, &c, "n.csv", "d\n1.5\n-0.0\n+5\n0.50\n-12\n0\n", &s);
	is_str(S(&s.csv), "d\n1.5\n0.0\n5\n0.50\n-12\n0\n", "numbers: DECIMAL canonical text");
	is_str(S(&s.jsonl), "{\"d\":1.5}\n{\"d\":0.0}\n{\"d\":5}\n{\"d\":0.50}\n"
	       "{\"d\":-12}\n{\"d\":0}\n", "numbers: JSON numbers");
	res_free(&s);
	tbl_free(&t);
	batch(&t, &c, "one.csv", "d\n1\n\"\"\n2\n", &s);
	is_str(S(&s.csv), "d\n1\n\"\"\n2\n", "one column: a null row is not an empty line");
	is_str(S(&s.jsonl), "{\"d\":1}\n{\"d\":null}\n{\"d\":2}\n", "one column: null in jsonl");
	res_free(&s);
	batch(&t, &c, "one2.csv", "d,e\n3,x\n", &s);
	is_str(S(&t.csv), "d,e\n1,\n,\n2,\n3,x\n", "one column: the null row survives a rewrite");
	ok(table_ok(&t), "one column: rectangle");
	res_free(&s);
	tbl_free(&t);

	c.csv_header = -1;
	batch(&t, &c, "g.csv", "1,x\n2,y\n", &s);
	is_str(S(&s.csv), "_c0,_c1\n1,x\n2,y\n", "header guessed absent: _cN names");
	res_free(&s);
	tbl_free(&t);
	batch(&t, &c, "g.csv", "id,name\n2,y\n", &s);
	is_str(S(&s.csv), "id,name\n2,y\n", "header guessed present");
	res_free(&s);
	tbl_free(&t);
	c.csv_header = 1;

	c.mode = LT_FAIL_ON_NEW_COLUMNS;
	batch(&t, &c, "1.csv", "id\n1\n", &s);
	res_free(&s);
	batch(&t, &c, "2.csv", "id,x\n2,y\n", &s);
	ok(s.out.batch_reason && strstr(s.out.batch_reason, "new column 'x'"),
	   "failOnNewColumns: batch quarantined");
	is_int(s.begun, 0, "failOnNewColumns: begin not called");
	is_str(S(&s.q), "{\"line\":0,\"reason\":\"new column 'x' (mode failOnNewColumns)\","
	       "\"expectation\":null,\"raw\":\"\"}\n", "failOnNewColumns: one quarantine line");
	is_int(s.out.rows_quarantined, 1, "failOnNewColumns: its rows counted");
	res_free(&s);
	batch(&t, &c, "3.csv", "id\n1.5\n", &s);
	ok(s.out.batch_reason != NULL, "failOnNewColumns: a type change is quarantined too");
	res_free(&s);
	tbl_free(&t);

	c.mode = LT_RESCUE;
	batch(&t, &c, "1.csv", "id,n\n1,x\n", &s);
	res_free(&s);
	batch(&t, &c, "2.csv", "id,n,z\n2.5,y,q\n", &s);
	is_int(s.rewrite, 0, "rescue: no schema change, append");
	is_str(S(&s.csv), ",y,\"{\"\"id\"\":\"\"2.5\"\",\"\"z\"\":\"\"q\"\"}\"\n",
	       "rescue: misfit and unknown column rescued");
	res_free(&s);
	tbl_free(&t);

	c.mode = LT_NONE;
	batch(&t, &c, "1.csv", "id,n\n1,x\n", &s);
	res_free(&s);
	batch(&t, &c, "2.csv", "id,n,z\n2.5,y,q\n", &s);
	is_str(S(&s.csv), ",y\n", "none: misfit null, unknown column dropped");
	is_str(s.out.changes, "[]", "none: no change");
	res_free(&s);
	tbl_free(&t);

	c.mode = LT_ADD_NEW_COLUMNS;
	batch(&t, &c, "1.csv", "d\n2024-01-01\n", &s);
	res_free(&s);
	batch(&t, &c, "2.csv", "d\n2024-01-02 10:00\n", &s);
	is_str(S(&t.csv), "d\n2024-01-01T00:00:00\n2024-01-02T10:00:00\n",
	       "DATE->TIMESTAMP: old values renormalized");
	res_free(&s);
	tbl_free(&t);
}

/* ---- expectations ---- */

static void expectations(void)
{
	struct ingest_expect e[] = {
		{ "pos", "v > 0", IX_WARN },
		{ "named", "n IS NOT NULL", IX_DROP },
	};
	struct ingest_expect ef[] = { { "small", "v < 100", IX_FAIL } };
	struct ingest_expect bad[] = { { "oops", "nosuch > 1", IX_WARN } };
	struct ingest_conf c = CONF_INIT;
	struct tbl t = { 0 };
	struct res s;
	char *err = NULL;

	c.expect = e;
	c.nexpect = 2;
	batch(&t, &c, "1.csv", "v,n\n1,a\n-2,b\n3,\n,c\n", &s);
	is_str(S(&s.csv), "v,n\n1,a\n-2,b\n,c\n", "drop: the row without n is left out");
	is_str(s.out.expectations, "{\"pos\":{\"action\":\"warn\",\"failed\":1},"
	       "\"named\":{\"action\":\"drop\",\"failed\":1}}", "expectations figures (NULL passes)");
	is_str(S(&s.q), "{\"line\":4,\"reason\":\"expectation named failed\","
	       "\"expectation\":\"named\",\"raw\":\"3,\"}\n", "drop: quarantine line");
	is_int(s.out.rows_dropped, 1, "drop: rows_dropped");
	is_int(s.out.rows_quarantined, 0, "drop: not counted as quarantined");
	res_free(&s);
	tbl_free(&t);

	c.expect = ef;
	c.nexpect = 1;
	batch(&t, &c, "1.csv", "v\n1\n2\n", &s);
	res_free(&s);
	batch(&t, &c, "2.csv", "v,w\n1,a\n500,b\n", &s);
	ok(s.out.batch_reason && strstr(s.out.batch_reason, "expectation small failed at line 3"),
	   "fail: batch quarantined (%s)", s.out.batch_reason ? s.out.batch_reason : "none");
	is_int(s.begun, 0, "fail: begin not called");
	is_str(S(&s.q), "{\"line\":3,\"reason\":\"expectation small failed at line 3\","
	       "\"expectation\":\"small\",\"raw\":\"500,b\"}\n", "fail: one line naming it");
	is_str(s.out.changes, "[]", "fail: no schema change reported");
	is_str(S(&t.csv), "v\n1\n2\n", "fail: table unchanged");
	res_free(&s);
	tbl_free(&t);

	c.expect = bad;
	batch(&t, &c, "1.csv", "v\n1\n", &s);
	is_int(s.ret, -EINVAL, "unknown column in an expectation: -EINVAL");
	ok(s.err && strstr(s.err, "no such column"), "the error has SQLite's message (%s)",
	   s.err ? s.err : "none");
	is_int(s.begun, 0, "bad expectation: nothing begun");
	res_free(&s);
	tbl_free(&t);

	is_int(ingest_check_expr("price > 0 AND name LIKE 'a;%'", &err), 0,
	       "check_expr: fine, unknown columns accepted");
	free(err);
	is_int(ingest_check_expr("1; DROP TABLE x", &err), -EINVAL, "check_expr: ';' refused");
	free(err);
	is_int(ingest_check_expr("1), (2", &err), -EINVAL, "check_expr: two columns refused");
	free(err);
	is_int(ingest_check_expr("a >", &err), -EINVAL, "check_expr: syntax error refused");
	ok(err && strstr(err, "syntax"), "check_expr: says why (%s)", err ? err : "none");
	free(err);
}

/* ---- upsert ---- */

static void upsert(void)
{
	const char *key[] = { "id" };
	struct ingest_conf c = CONF_INIT;
	struct tbl t = { 0 };
	struct res s;

	c.key = key;
	c.nkey = 1;
	c.tmp_dir = "/tmp";
	batch(&t, &c, "1.csv", "id,v\n1,a\n2,b\n3,c\n", &s);
	is_int(s.ret, 0, "upsert: first batch");
	res_free(&s);
	batch(&t, &c, "2.csv", "id,v\n2,B\n4,d\n2,BB\n", &s);
	is_int(s.rewrite, 1, "upsert: a rewrite");
	is_str(S(&t.csv), "id,v\n1,a\n2,BB\n3,c\n4,d\n", "upsert: latest wins, position kept");
	is_int(s.out.rows_total, 4, "upsert: rows_total");
	is_int(s.out.rows_written, 2, "upsert: rows_written");
	res_free(&s);
	batch(&t, &c, "3.csv", "id,v\n,z\n5,e\n", &s);
	ok(strstr(S(&s.q), "key column 'id' is null") != NULL, "upsert: null key quarantined");
	is_int(s.out.rows_quarantined, 1, "upsert: null key counted");
	res_free(&s);
	tbl_free(&t);

	c.sequence_by = "ts";
	c.delete_when = "op = 'D'";
	batch(&t, &c, "1.csv", "id,v,ts,op\n1,a,5,I\n2,b,5,I\n3,c,5,I\n", &s);
	res_free(&s);
	batch(&t, &c, "2.csv", "id,v,ts,op\n1,old,4,U\n2,new,6,U\n3,,7,D\n", &s);
	is_str(S(&t.csv), "id,v,ts,op\n1,a,5,I\n2,new,6,U\n", "sequence_by: older loses, delete_when deletes");
	is_int(s.out.rows_deleted, 1, "delete_when: rows_deleted");
	is_int(s.out.rows_total, 2, "delete_when: rows_total");
	res_free(&s);
	tbl_free(&t);

	c.key = (const char *[]){ "nope" };
	batch(&t, &c, "1.csv", "id\n1\n", &s);
	is_int(s.ret, -EINVAL, "upsert: unknown key column -EINVAL");
	ok(s.err && strstr(s.err, "nope"), "upsert: the error names it");
	res_free(&s);
	tbl_free(&t);
}

/* ---- the pipelined pass 2 writes what the serial one does ---- */

static void pipeline(void)
{
	struct ingest_expect e[] = { { "any", "1", IX_WARN } };
	struct ingest_conf c = CONF_INIT;
	struct gbuf in = { 0 };
	struct tbl t1 = { 0 }, t2 = { 0 };
	struct res a, b;

	gbuf_add(&in, "id,v,s\n", 7);
	for (int i = 0; i < 60000; i++) {
		if (i % 997 == 0)
			gbuf_printf(&in, "%d,bad\xfe,x\n", i);
		else if (i % 1009 == 0)
			gbuf_printf(&in, "%d,1,2,3\n", i);
		else
			gbuf_printf(&in, "%d,%d.%d,\"row %d, \"\"q\"\"\"\n", i, i, i % 10, i);
	}
	batch_n(&t1, &c, "big.csv", in.p, in.n, &a);
	c.expect = e;		/* an expectation: the serial path */
	c.nexpect = 1;
	batch_n(&t2, &c, "big.csv", in.p, in.n, &b);
	ok(a.csv.n > (1u << 20), "pipeline: several blocks (%zu bytes of csv)", a.csv.n);
	ok(a.csv.n == b.csv.n && !memcmp(a.csv.p, b.csv.p, a.csv.n), "pipeline: same csv");
	ok(a.jsonl.n == b.jsonl.n && !memcmp(a.jsonl.p, b.jsonl.p, a.jsonl.n),
	   "pipeline: same jsonl");
	ok(a.q.n == b.q.n && !memcmp(a.q.p, b.q.p, a.q.n), "pipeline: same quarantine");
	ok(a.out.rows_read == b.out.rows_read && a.out.rows_written == b.out.rows_written &&
	   a.out.rows_quarantined == b.out.rows_quarantined && a.out.rows_read == 60000,
	   "pipeline: same figures (%llu read, %llu written, %llu quarantined)",
	   (unsigned long long)a.out.rows_read, (unsigned long long)a.out.rows_written,
	   (unsigned long long)a.out.rows_quarantined);
	ok(table_ok(&t1), "pipeline: the table is a rectangle");
	res_free(&a);
	res_free(&b);
	tbl_free(&t1);
	tbl_free(&t2);
	free(in.p);
}

/* ---- no crash on damaged input ---- */

static void fuzz(uint64_t seed)
{
	static const char *const seeds[] = {
		"id,v,n\n1,2.5,x\n2,,\"y,z\"\n3,1e3,\"\"\n",
		"a;b\n1;2\n\"x\";\"y\"\"z\"\n",
		"[{\"a\":1,\"b\":[1,2]},{\"a\":\"x\",\"c\":null}]",
		"{\"a\":1}\n{\"a\":2.5,\"b\":true}\n{\"c\":\"2024-01-01\"}\n",
	};
	static const char special[] = ",;\"\n\r\t{}[]:\\0123456789.eE-tf \xef\xbb\xbf\xff";
	struct ingest_expect e[] = { { "x", "1", IX_DROP } };
	const char *key[] = { "a" };
	unsigned char *buf = malloc(8192);
	uint64_t s = seed | 1;
	int bad = 0, crashless = 1;

	for (int i = 0; i < FUZZ_ROUNDS && buf; i++) {
		const char *sd = seeds[rnd(&s) % ARRAY_SIZE(seeds)];
		struct ingest_conf c = CONF_INIT;
		struct tbl t = { 0 };
		struct res r;
		size_t n = strlen(sd);

		memcpy(buf, sd, n);
		n = mutate_text(buf, n, 8192, &s, special, sizeof(special) - 1);
		c.mode = (enum lt_mode)(rnd(&s) % 4);
		c.csv_header = (int)(rnd(&s) % 2);
		if (rnd(&s) % 4 == 0) {
			c.expect = e;
			c.nexpect = 1;
		}
		batch(&t, &c, "seed", sd, &r);
		res_free(&r);
		if (rnd(&s) % 3 == 0) {
			c.key = key;
			c.nkey = 1;
		}
		batch_n(&t, &c, rnd(&s) % 2 ? "x.csv" : "x", buf, n, &r);
		if ((r.ret != 0 && r.ret != -EINVAL) || !table_ok(&t)) {
			if (!bad++)
				diag("round %d: ret %d (%s)", i, r.ret, r.err ? r.err : "");
			crashless = 0;
		}
		res_free(&r);
		tbl_free(&t);
	}
	ok(crashless, "fuzz: %d rounds, no failure of the machinery, tables rectangles",
	   FUZZ_ROUNDS);
	free(buf);
}

/* ---- throughput (LFS_INGEST_BENCH=ROWS) ---- */

static int null_write(void *arg, const void *buf, size_t n)
{
	(void)buf;
	*(uint64_t *)arg += n;
	return 0;
}

static void bench(long rows, int json)
{
	struct gbuf in = { 0 };
	struct ingest_conf c = CONF_INIT;
	struct ingest_table cur = { 0 };
	struct lt_schema none = { 0 };
	struct ingest_out out = { 0 };
	uint64_t seed = 1, wc = 0, wj = 0;
	struct mem m;
	struct ingest_reader rd;
	char *err = NULL;
	uint64_t t0;
	double secs;
	int ret;

	if (!json)
		gbuf_add(&in, "id,price,ok,day,at,name,amount,qty\n", 35);
	for (long i = 0; i < rows; i++)
		gbuf_printf(&in, json ? "{\"id\":%ld,\"price\":%.3f,\"ok\":%s,\"day\":\"2024-%02d-%02d\","
			    "\"at\":\"2024-01-02 %02d:%02d:%02d\",\"name\":\"name %lu\","
			    "\"amount\":%lu.%02lu,\"qty\":%lu}\n" :
			    "%ld,%.3f,%s,2024-%02d-%02d,2024-01-02 %02d:%02d:%02d,name %lu,%lu.%02lu,%lu\n",
			    i, (double)(rnd(&seed) % 100000) / 7.0, rnd(&seed) % 2 ? "true" : "false",
			    1 + (int)(i % 12), 1 + (int)(i % 28), (int)(i % 24), (int)(i % 60),
			    (int)(i % 60), (unsigned long)(rnd(&seed) % 1000),
			    (unsigned long)(rnd(&seed) % 10000), (unsigned long)(rnd(&seed) % 100),
			    (unsigned long)(rnd(&seed) % 50));
	m = (struct mem){ in.p, in.n, 0 };
	rd = (struct ingest_reader){ &m, mem_pread, in.n };
	cur.schema = &none;
	out.csv = (struct ingest_writer){ &wc, null_write };
	out.jsonl = (struct ingest_writer){ &wj, null_write };
	c.src_name = json ? "bench.jsonl" : "bench.csv";
	t0 = mono_ns();
	ret = ingest_run(&c, &rd, &cur, &out, &err);
	secs = (double)(mono_ns() - t0) / 1e9;
	printf("# %s: %ld rows, %.1f MB in: ret %d, %.2f s, %.1f MB/s (csv out %.1f MB, jsonl %.1f MB)\n",
	       json ? "jsonl" : "csv", rows, (double)in.n / 1e6, ret, secs, (double)in.n / 1e6 / secs,
	       (double)wc / 1e6, (double)wj / 1e6);
	ingest_out_release(&out);
	free(err);
	free(in.p);
}

int main(void)
{
	const char *env = getenv("LFS_FUZZ_SEED");
	uint64_t seed = env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL) ^ (uint64_t)getpid();

	if (getenv("LFS_INGEST_BENCH")) {
		bench(atol(getenv("LFS_INGEST_BENCH")), getenv("LFS_INGEST_BENCH_JSON") != NULL);
		return 0;
	}
	csv_basic();
	csv_dialects();
	csv_ragged();
	empty_and_header_only();
	json_forms();
	compressed();
	garbage();
	evolution();
	expectations();
	upsert();
	pipeline();
	diag("fuzz seed %llu (replay with LFS_FUZZ_SEED=%llu)",
	     (unsigned long long)seed, (unsigned long long)seed);
	fuzz(seed);
	return done_testing();
}
