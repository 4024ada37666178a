/*
 * tests/unit/test_sqlq.c — gold queries (catalog/sqlq.c).
 *
 * Tables are in-memory files behind the open/close callbacks (which count
 * their opens, so a rescan shows); results go to gbufs and are checked
 * byte for byte. Covered: typed silver values, GROUP BY output in CSV and
 * JSON lines, a CTE, silver joined with gold, another catalog's table,
 * bronze raw rows from a CSV and a JSON lines file, dependencies, the
 * errors a user sees (with line and column), the authorizer's refusals,
 * the time limit, a sort that spills past a small memory limit, a
 * self-join (two scans), the quoting of output, and grouped scans (GROUP
 * BY and DISTINCT grouped by the scan, in memory and spilled, checked
 * against SQLite's own sort).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "catalog/sqlq.h"
#include "tests/unit/mutate.h"
#include "tests/unit/tap.h"
#include "util/util.h"

/* ---- in-memory tables ---- */

struct mem {
	const char *p;
	size_t n;
	uint64_t fail_at;	/* > 0: a read reaching here fails, EIO */
};

static ssize_t mem_pread(void *arg, void *buf, size_t n, uint64_t off)
{
	struct mem *m = arg;

	if (m->fail_at && off + n > m->fail_at)
		return -EIO;
	if (off >= m->n)
		return 0;
	n = MIN(n, m->n - (size_t)off);
	memcpy(buf, m->p + off, n);
	return (ssize_t)n;
}

struct files {
	const char *const *text;	/* one per file */
	size_t n;
	int opens, open_now;
	uint64_t fail_at;	/* see struct mem */
};

static int files_open(void *arg, size_t i, struct ingest_reader **r)
{
	struct files *f = arg;
	struct ingest_reader *rd = calloc(1, sizeof(*rd));
	struct mem *m = calloc(1, sizeof(*m));

	if (!rd || !m || i >= f->n) {
		free(rd);
		free(m);
		return i >= f->n ? -ENOENT : -ENOMEM;
	}
	m->p = f->text[i];
	m->n = strlen(f->text[i]);
	m->fail_at = f->fail_at;
	rd->arg = m;
	rd->pread = mem_pread;
	rd->size = m->n;
	*r = rd;
	f->opens++;
	f->open_now++;
	return 0;
}

static void files_close(void *arg, size_t i, struct ingest_reader *r)
{
	struct files *f = arg;

	(void)i;
	f->open_now--;
	free(r->arg);
	free(r);
}

/* "name:TYPE,..." into s */
static void mk_schema(struct lt_schema *s, const char *spec)
{
	char *dup = strdup(spec), *save = NULL;

	memset(s, 0, sizeof(*s));
	s->cols = calloc(64, sizeof(*s->cols));
	for (char *c = strtok_r(dup, ",", &save); c && *c;
	     c = strtok_r(NULL, ",", &save)) {
		char *colon = strchr(c, ':');
		struct lt_column *col = &s->cols[s->n++];

		*colon = '\0';
		col->name = strdup(c);
		lt_parse_name(colon + 1, &col->type);
		col->nullable = 1;
		col->added_in = 1;
	}
	s->version = 1;
	free(dup);
}

struct tab {
	struct lt_schema schema;
	struct files files;
};

static int add(struct sqlq *q, struct tab *t, const char *cat, const char *layer,
	       const char *name, const char *spec, const char *const *text,
	       size_t nfiles)
{
	struct sqlq_table st = {
		.catalog = cat, .layer = layer, .name = name, .schema = &t->schema,
		.open = files_open, .close = files_close, .nfiles = nfiles,
		.arg = &t->files,
	};

	mk_schema(&t->schema, spec);
	t->files.text = text;
	t->files.n = nfiles;
	return sqlq_add_table(q, &st);
}

static int gb_write(void *arg, const void *buf, size_t n)
{
	gbuf_add(arg, buf, n);
	return 0;
}

struct res {
	struct gbuf csv, jsonl;
	struct sqlq_result r;
	char *err;
	int ret;
};

static void res_free(struct res *r)
{
	free(r->csv.p);
	free(r->jsonl.p);
	free(r->err);
	sqlq_result_release(&r->r);
	memset(r, 0, sizeof(*r));
}

static int query(struct sqlq *q, const char *sql, struct res *r)
{
	struct ingest_writer wc = { &r->csv, gb_write }, wj = { &r->jsonl, gb_write };

	res_free(r);
	r->ret = sqlq_prepare(q, sql, &r->err);
	if (!r->ret)
		r->ret = sqlq_run(q, &wc, &wj, &r->r, &r->err);
	if (r->ret)
		diag("%s -> %d: %s", sql, r->ret, r->err ? r->err : "(no message)");
	return r->ret;
}

static const char *csv_of(struct res *r)
{
	return r->csv.p ? (const char *)r->csv.p : "";
}

/* Run sql; its CSV is want. */
static void is_csv(struct sqlq *q, struct res *r, const char *sql, const char *want,
		   const char *what)
{
	query(q, sql, r);
	is_str(csv_of(r), want, "%s", what);
}

static const char *jsonl_of(struct res *r)
{
	return r->jsonl.p ? (const char *)r->jsonl.p : "";
}

/* The last prepare's dependencies, space-separated, are want. */
static void is_deps(struct sqlq *q, const char *want, const char *what)
{
	struct gbuf b = { 0 };
	size_t n;
	const char *const *d = sqlq_deps(q, &n);

	gbuf_add(&b, "", 0);
	for (size_t i = 0; i < n; i++)
		gbuf_printf(&b, "%s%s", i ? " " : "", d[i]);
	is_str(b.p ? (const char *)b.p : "", want, "%s", what);
	free(b.p);
}

/* ---- the tests ---- */

static const char *orders_csv[] = {
	"id,day,amount,ok,note\n"
	"1,2024-01-01,10.5,true,hello\n"
	"2,2024-01-01,4.5,false,\"\"\n"
	"3,2024-01-02,7.25,,\n"
	"4,2024-01-02,1,true,\"a,b\"\n",
};
#define ORDERS "id:INT,day:DATE,amount:DECIMAL,ok:BOOL,note:STRING"

static const char *customers_csv[] = {
	"id,name\n1,ann\n2,bob\n4,dee\n",
};

static const char *accounts_csv[] = {
	"id,name,tier\n1,Acme,gold\n3,Initech,silver\n",
};

static const char *raw_files[] = {
	"ID,Day,extra\n1,2024-01-01,x\n2,,y\n",
	"{\"id\":3,\"day\":\"2024-01-03\",\"nested\":{\"a\":[1,2]}}\n"
	"{\"id\":4,\"note\":null,\"Note\":\"n\"}\n",
};

static void test_basic(void)
{
	struct tab orders = { 0 }, cust = { 0 }, acc = { 0 }, raw = { 0 };
	struct sqlq *q = NULL;
	struct res r = { 0 };
	char *err = NULL;

	ok(sqlq_new(&q, NULL, &err) == 0, "sqlq_new");
	is_int(add(q, &orders, NULL, "silver", "orders", ORDERS, orders_csv, 1), 0,
	       "silver.orders declared");
	is_int(add(q, &cust, NULL, "gold", "customers", "id:INT,name:STRING",
		   customers_csv, 1), 0, "gold.customers declared");
	is_int(add(q, &acc, "crm", "silver", "accounts",
		   "id:INT,name:STRING,tier:STRING", accounts_csv, 1), 0,
	       "crm.silver.accounts declared");
	is_int(add(q, &raw, NULL, "bronze", "raw",
		   "id:STRING,day:STRING,note:STRING,nested:STRING", raw_files, 2), 0,
	       "bronze.raw declared");
	{
		struct tab dup = { 0 };

		is_int(add(q, &dup, NULL, "silver", "ORDERS", ORDERS, orders_csv, 1),
		       -EEXIST, "a table declared twice: -EEXIST");
		lt_schema_free(&dup.schema);
		is_int(add(q, &dup, NULL, "platinum", "x", "a:INT", orders_csv, 1),
		       -EINVAL, "a bad layer: -EINVAL");
		lt_schema_free(&dup.schema);
		is_int(add(q, &dup, "gold", "silver", "x", "a:INT", orders_csv, 1),
		       -EINVAL, "a catalog named like a layer: -EINVAL");
		lt_schema_free(&dup.schema);
	}

	query(q, "SELECT day, sum(amount) AS revenue FROM silver.orders "
	      "GROUP BY day ORDER BY day", &r);
	is_int(r.ret, 0, "group by runs");
	is_str(csv_of(&r), "day,revenue\n2024-01-01,15\n2024-01-02,8.25\n",
	       "group by: CSV bytes");
	is_str(jsonl_of(&r), "{\"day\":\"2024-01-01\",\"revenue\":15}\n"
	       "{\"day\":\"2024-01-02\",\"revenue\":8.25}\n", "group by: JSON lines bytes");
	ok(r.r.schema.n == 2 && r.r.schema.cols[0].type == LT_STRING &&
	   r.r.schema.cols[1].type == LT_FLOAT &&
	   !strcmp(r.r.schema.cols[1].name, "revenue"), "group by: schema day STRING, revenue FLOAT");
	is_int((long long)r.r.rows, 2, "group by: 2 rows");
	is_deps(q, "silver.orders", "group by: deps");

	is_csv(q, &r, "SELECT id, typeof(id) AS ti, typeof(amount) AS ta, ok, "
	       "note IS NULL AS nnull, note = '' AS nempty, note FROM silver.orders",
	       "id,ti,ta,ok,nnull,nempty,note\n"
	       "1,integer,real,1,0,0,hello\n"
	       "2,integer,real,0,0,1,\"\"\n"
	       "3,integer,real,,1,,\n"
	       "4,integer,real,1,0,0,\"a,b\"\n", "typed values, null and empty string");
	is_str(jsonl_of(&r),
	       "{\"id\":1,\"ti\":\"integer\",\"ta\":\"real\",\"ok\":1,\"nnull\":0,\"nempty\":0,\"note\":\"hello\"}\n"
	       "{\"id\":2,\"ti\":\"integer\",\"ta\":\"real\",\"ok\":0,\"nnull\":0,\"nempty\":1,\"note\":\"\"}\n"
	       "{\"id\":3,\"ti\":\"integer\",\"ta\":\"real\",\"ok\":null,\"nnull\":1,\"nempty\":null,\"note\":null}\n"
	       "{\"id\":4,\"ti\":\"integer\",\"ta\":\"real\",\"ok\":1,\"nnull\":0,\"nempty\":0,\"note\":\"a,b\"}\n",
	       "typed values: JSON lines");
	ok(r.r.schema.cols[0].type == LT_INT && r.r.schema.cols[3].type == LT_INT &&
	   r.r.schema.cols[6].type == LT_STRING, "schema: INT, INT, STRING");

	is_csv(q, &r, "WITH big AS (SELECT * FROM silver.orders WHERE amount > 5)\n"
	       "SELECT count(*) AS n, min(id) AS lo FROM big",
	       "n,lo\n2,1\n", "a CTE");

	is_csv(q, &r, "SELECT c.name, sum(o.amount) AS total FROM silver.orders o "
	       "JOIN gold.customers c ON c.id = o.id GROUP BY c.name ORDER BY c.name",
	       "name,total\nann,10.5\nbob,4.5\ndee,1\n",
	       "silver joined with gold");
	is_deps(q, "gold.customers silver.orders", "join: both deps");

	is_csv(q, &r, "SELECT a.name, a.tier, o.amount FROM crm.silver.accounts AS a "
	       "JOIN silver.orders o USING (id)",
	       "name,tier,amount\nAcme,gold,10.5\nInitech,silver,7.25\n",
	       "another catalog: crm.silver.accounts");
	is_deps(q, "crm.silver.accounts silver.orders", "another catalog: deps");
	is_csv(q, &r, "SELECT count(*) AS n FROM \"crm\" . \"silver\".\"accounts\" "
	       "WHERE crm.silver.accounts.tier = 'gold' -- crm.silver.nope\n",
	       "n\n1\n", "another catalog: quoted names, a column by "
	       "four-part name, a comment left alone");
	is_csv(q, &r, "SELECT 'crm.silver.accounts' AS s",
	       "s\ncrm.silver.accounts\n", "no rewrite inside a string");
	query(q, "SELECT count(*) AS n FROM silver.orders", &r);
	is_deps(q, "silver.orders", "count(*): a dependency without columns read");

	is_csv(q, &r, "SELECT id, day, note, nested, _file, typeof(id) AS t "
	       "FROM bronze.raw ORDER BY _file, id",
	       "id,day,note,nested,_file,t\n"
	       "1,2024-01-01,,,0,text\n"
	       "2,,,,0,text\n"
	       "3,2024-01-03,,\"{\"\"a\"\":[1,2]}\",1,text\n"
	       "4,,n,,1,text\n", "bronze: raw text rows from a CSV and a JSON lines file");
	{
		struct tab f2 = { 0 }, none = { 0 };

		is_int(add(q, &f2, NULL, "bronze", "own_file", "id:STRING,_file:STRING",
			   raw_files, 2), 0, "bronze with its own _file column");
		is_csv(q, &r, "SELECT count(*) AS n FROM bronze.own_file WHERE "
		       "_file IS NULL", "n\n4\n", "its _file is the data's");
		is_int(add(q, &none, NULL, "bronze", "empty", "", raw_files, 2), 0,
		       "bronze without columns");
		is_csv(q, &r, "SELECT * FROM bronze.empty", "_file\n0\n0\n1\n1\n",
		       "its rows show _file");
		lt_schema_free(&f2.schema);
		lt_schema_free(&none.schema);
	}
	is_csv(q, &r, "SELECT * FROM bronze.raw",
	       "id,day,note,nested\n1,2024-01-01,,\n2,,,\n"
	       "3,2024-01-03,,\"{\"\"a\"\":[1,2]}\"\n4,,n,\n",
	       "bronze: _file is hidden from *");
	ok(raw.files.open_now == 0, "bronze: every file closed");

	orders.files.opens = 0;
	is_csv(q, &r, "SELECT count(*) AS n FROM silver.orders a, silver.orders b "
	       "WHERE a.id < b.id",
	       "n\n6\n", "a self-join");
	ok(orders.files.opens >= 2 && orders.files.open_now == 0,
	   "self-join: the table opened %d times, all closed", orders.files.opens);
	query(q, "SELECT count(*) AS n FROM silver.orders", &r);
	is_csv(q, &r, "SELECT count(*) AS n FROM silver.orders",
	       "n\n4\n", "a query prepared again rescans");

	res_free(&r);
	sqlq_free(q);
	lt_schema_free(&orders.schema);
	lt_schema_free(&cust.schema);
	lt_schema_free(&acc.schema);
	lt_schema_free(&raw.schema);
	free(err);
}

static void expect_err(struct sqlq *q, const char *sql, int code, const char *want,
		       const char *what)
{
	char *err = NULL;
	int ret = sqlq_prepare(q, sql, &err);

	is_int(ret, code, "%s: %d", what, code);
	ok(err && strstr(err, want), "%s: message has '%s' (%s)", what, want,
	   err ? err : "none");
	free(err);
}

static void test_errors(void)
{
	static const struct { const char *sql, *want, *what; } bad[] = {
		{ "SELECT day,\n  sum(amount)\nFROM silver.orders\nGROUP day",
		  "line 4, column 7: near \"day\": syntax error", "syntax error" },
		{ "SELECT *\nFROM silver.nope",
		  "no such table: silver.nope", "unknown table" },
		{ "SELECT *\nFROM silver.nope",
		  "line 2, column 6", "unknown table: position" },
		{ "SELECT  id,\n\tbogus FROM silver.orders",
		  "line 2, column 2: no such column: bogus", "unknown column" },
		{ "SELECT x FROM crm.silver.accounts",
		  "line 1, column 15: no such table: crm.silver.accounts",
		  "unknown catalog" },
		{ "SELECT * FROM crm.silver.accounts",
		  "line 1, column 15", "unknown catalog: position" },
		{ "SELECT 1; SELECT 2",
		  "line 1, column 11: only one statement", "two statements" },
		{ "INSERT INTO silver.orders(id) VALUES (1)",
		  "INSERT is not allowed", "INSERT refused" },
		{ "DELETE FROM silver.orders",
		  "may not be modified", "DELETE refused" },
		{ "CREATE TABLE t(x)",
		  "CREATE is not allowed", "CREATE refused" },
		{ "CREATE TEMP VIEW v AS SELECT 1",
		  "not allowed", "CREATE TEMP VIEW refused" },
		{ "ATTACH 'x.db' AS x",
		  "ATTACH is not allowed", "ATTACH refused" },
		{ "PRAGMA cache_size = 1",
		  "PRAGMA is not allowed", "PRAGMA refused" },
		{ "SELECT * FROM pragma_table_info('orders')",
		  "this table-valued function is not allowed",
		  "a pragma function refused" },
		{ "SELECT 1 FROM silver.orders\nWHERE load_extension('x')",
		  "line 2, column 7: function load_extension() is not allowed",
		  "load_extension refused, with its position" },
		{ "BEGIN",
		  "not allowed", "a transaction refused" },
		{ "SELECT * FROM sqlite_master",
		  "line 1, column 15: cannot read main.sqlite_master",
		  "sqlite_master refused" },
		{ "SELECT name FROM silver.sqlite_schema",
		  "cannot read silver.sqlite_master", "silver.sqlite_schema refused" },
		{ "SELECT * FROM temp.sqlite_temp_master",
		  "cannot read", "the temp schema refused" },
		{ "SELECT load_extension('/tmp/x.so')",
		  "load_extension() is not allowed", "load_extension refused" },
		{ "",
		  "empty", "an empty query" },
	};
	struct tab orders = { 0 };
	struct sqlq *q = NULL;
	char *err = NULL;

	sqlq_new(&q, NULL, &err);
	add(q, &orders, NULL, "silver", "orders", ORDERS, orders_csv, 1);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		expect_err(q, bad[i].sql, -EINVAL, bad[i].want, bad[i].what);
	ok(sqlq_prepare(q, "SELECT 1 AS one; -- done\n;/* c */", &err) == 0,
	   "a trailing ';' and comments are fine");
	ok(sqlq_prepare(q, "SELECT value FROM json_each('[1,2]')", &err) == 0,
	   "json_each is allowed");
	{
		size_t n;

		sqlq_deps(q, &n);
		is_int((long long)n, 0, "json_each: no dependency");
	}
	sqlq_free(q);
	lt_schema_free(&orders.schema);
	free(err);
}

static void test_output(void)
{
	struct sqlq *q = NULL;
	struct res r = { 0 };
	char *err = NULL;

	sqlq_new(&q, NULL, &err);
	is_csv(q, &r, "SELECT 'a,b' AS \"x,y\", 'say \"hi\"' AS y, 'l1' || char(10) || 'l2' AS z, "
	       "'' AS e, NULL AS n, x'00ff' AS b, 9e300 * 1e10 AS inf, 0.1 + 0.2 AS f, "
	       "1e-7 AS small, -0.0 AS nz",
	       "\"x,y\",y,z,e,n,b,inf,f,small,nz\n"
	       "\"a,b\",\"say \"\"hi\"\"\",\"l1\nl2\",\"\",,00ff,,0.30000000000000004,1e-07,0\n",
	       "output quoting: CSV");
	is_str(jsonl_of(&r), "{\"x,y\":\"a,b\",\"y\":\"say \\\"hi\\\"\",\"z\":\"l1\\nl2\","
	       "\"e\":\"\",\"n\":null,\"b\":\"00ff\",\"inf\":null,"
	       "\"f\":0.30000000000000004,\"small\":1e-07,\"nz\":0}\n",
	       "output quoting: JSON lines");
	ok(r.r.schema.n == 10 && r.r.schema.cols[4].type == LT_STRING &&
	   r.r.schema.cols[5].type == LT_STRING && r.r.schema.cols[6].type == LT_FLOAT,
	   "types: null STRING, blob STRING, inf FLOAT");
	is_csv(q, &r, "SELECT 1 AS a, 1 AS a, 2 AS \"\" UNION ALL SELECT 2.5, 'x', NULL",
	       "a,a_2,_c2\n1,1,2\n2.5,x,\n", "names made unique; mixed values");
	ok(r.r.schema.cols[0].type == LT_FLOAT && r.r.schema.cols[1].type == LT_STRING &&
	   r.r.schema.cols[2].type == LT_INT, "INT+FLOAT FLOAT, INT+TEXT STRING, INT+NULL INT");
	is_csv(q, &r, "SELECT CAST(x'41ff0042' AS TEXT) AS t",
	       "t\nA\xef\xbf\xbd\xef\xbf\xbd" "B\n",
	       "invalid UTF-8 and NUL in text: U+FFFD in the CSV");
	is_str(jsonl_of(&r), "{\"t\":\"A\xef\xbf\xbd\xef\xbf\xbd" "B\"}\n",
	       "and in the JSON lines");
	is_csv(q, &r, "SELECT NULL AS only UNION ALL SELECT 'v'",
	       "only\n\"\"\nv\n", "a one-column null is \"\"");
	res_free(&r);
	sqlq_free(q);
	free(err);
}

/* A query's CSV, declared as a gold table with the schema it came with,
 * reads back as the same bytes. */
static void test_roundtrip(void)
{
	struct sqlq *q = NULL;
	struct res r = { 0 }, back = { 0 };
	struct lt_schema schema = { 0 };
	struct files f = { 0 };
	const char *text[1];
	struct sqlq_table t = { .layer = "gold", .name = "again", .schema = &schema,
				.open = files_open, .close = files_close,
				.nfiles = 1, .arg = &f };
	char *err = NULL;

	sqlq_new(&q, NULL, &err);
	query(q, "SELECT 1 AS i, 2.5 AS f, '' AS e, NULL AS n, 'a\"b,\nc' AS s, "
	      "-7 AS neg, 1e300 AS big UNION ALL "
	      "SELECT NULL, 3, 'x', NULL, NULL, 0, -2.25", &r);
	lt_schema_copy(&schema, &r.r.schema);
	text[0] = csv_of(&r);
	f.text = text;
	f.n = 1;
	is_int(sqlq_add_table(q, &t), 0, "the result declared as gold.again");
	query(q, "SELECT * FROM gold.again", &back);
	is_str(csv_of(&back), csv_of(&r), "it reads back to the same CSV");
	is_str(jsonl_of(&back), jsonl_of(&r), "and the same JSON lines");
	res_free(&r);
	res_free(&back);
	sqlq_free(q);
	lt_schema_free(&schema);
	free(err);
}

static int fail_open(void *arg, size_t i, struct ingest_reader **r)
{
	(void)arg;
	(void)i;
	(void)r;
	return -EACCES;
}

static int fail_write(void *arg, const void *buf, size_t n)
{
	(void)arg;
	(void)buf;
	(void)n;
	return -ENOSPC;
}

static void test_io_errors(void)
{
	static const char *corrupt[] = { "id,name\n1,ok\n2,\"bad\xff\"\n" };
	struct tab bad = { 0 };
	struct lt_schema s;
	struct sqlq_table t = { .layer = "silver", .name = "gone", .schema = &s,
				.open = fail_open, .nfiles = 1 };
	struct ingest_writer wf = { NULL, fail_write };
	struct sqlq_result res;
	struct sqlq *q = NULL;
	struct res r = { 0 };
	char *err = NULL;

	sqlq_new(&q, NULL, &err);
	mk_schema(&s, "id:INT");
	is_int(sqlq_add_table(q, &t), 0, "a table that cannot be opened");
	add(q, &bad, NULL, "silver", "bad", "id:INT,name:STRING", corrupt, 1);
	query(q, "SELECT * FROM silver.gone", &r);
	is_int(r.ret, -EIO, "a reader's failure: -EIO");
	ok(r.err && strstr(r.err, "silver.gone: cannot open file 0"),
	   "its message: %s", r.err ? r.err : "none");
	query(q, "SELECT * FROM silver.bad", &r);
	is_int(r.ret, -EIO, "a corrupt silver CSV: -EIO");
	ok(r.err && strstr(r.err, "silver.bad: line 3"), "its message: %s",
	   r.err ? r.err : "none");
	sqlq_prepare(q, "SELECT 1 AS x", &err);
	is_int(sqlq_run(q, &wf, &wf, &res, &err), -EIO, "a writer's failure: -EIO");
	ok(err && strstr(err, "No space left"), "its message: %s", err ? err : "none");
	res_free(&r);
	sqlq_free(q);
	lt_schema_free(&s);
	lt_schema_free(&bad.schema);
	free(err);
}

static void test_limits(void)
{
	struct sqlq_limits lim = { .timeout_ms = 200 };
	struct sqlq *q = NULL;
	struct res r = { 0 };
	char *err = NULL;
	uint64_t t0;

	sqlq_new(&q, &lim, &err);
	t0 = mono_ns();
	query(q, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
	      "WHERE x < 1000000000) SELECT max(x) FROM c", &r);
	is_int(r.ret, -ETIMEDOUT, "a long recursive CTE: -ETIMEDOUT");
	ok(r.err && strstr(r.err, "time limit of 200 ms"), "timeout message: %s",
	   r.err ? r.err : "none");
	ok(mono_ns() - t0 < 2000000000ull, "stopped within 2 s (%llu ms)",
	   (unsigned long long)((mono_ns() - t0) / 1000000));
	res_free(&r);
	sqlq_free(q);
	free(err);
}

/* A writer that also counts the open files in the spill directory. */
struct spy {
	struct gbuf *out;
	const char *dir;
	int seen;
};

static int spy_write(void *arg, const void *buf, size_t n)
{
	struct spy *s = arg;
	char path[64], target[512];

	for (int fd = 0; fd < 1024; fd++) {
		ssize_t l;

		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		l = readlink(path, target, sizeof(target) - 1);
		if (l > 0) {
			target[l] = '\0';
			if (!strncmp(target, s->dir, strlen(s->dir)))
				s->seen++;
		}
	}
	gbuf_add(s->out, buf, n);
	return 0;
}

/* ORDER BY k over big: the heap's high-water mark; spill files seen. */
static sqlite3_int64 sort_big(const char *const *text, struct sqlq_limits *lim,
			      struct gbuf *out, int *spilled, int *ret)
{
	struct tab big = { 0 };
	struct sqlq *q = NULL;
	struct sqlq_result res;
	struct spy spy = { out, lim->tmp_dir, 0 };
	struct ingest_writer wc = { &spy, spy_write }, wj = { &spy, spy_write };
	struct gbuf jl = { 0 };
	sqlite3_int64 cur, hi;
	char *err = NULL;

	wj.arg = &jl;
	wj.write = gb_write;
	*ret = sqlq_new(&q, lim, &err);
	if (!*ret)
		*ret = add(q, &big, NULL, "silver", "big", "id:INT,k:STRING", text, 1);
	if (!*ret)
		*ret = sqlq_prepare(q, "SELECT k FROM silver.big ORDER BY k", &err);
	sqlite3_status64(SQLITE_STATUS_MEMORY_USED, &cur, &hi, 1);
	if (!*ret) {
		*ret = sqlq_run(q, &wc, &wj, &res, &err);
		sqlq_result_release(&res);
	}
	sqlite3_status64(SQLITE_STATUS_MEMORY_USED, &cur, &hi, 0);
	if (*ret)
		diag("sort: %d %s", *ret, err ? err : "");
	*spilled = spy.seen;
	sqlq_free(q);
	lt_schema_free(&big.schema);
	free(jl.p);
	free(err);
	return hi;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_spill(void)
{
	enum { ROWS = 200000 };
	char dir[] = "/tmp/sqlq-test-XXXXXX";
	struct sqlq_limits lim = { .memory = 256 << 10, .timeout_ms = 60000 };
	struct gbuf in = { 0 }, want = { 0 };
	struct tab big = { 0 };
	struct sqlq *q = NULL;
	struct res r = { 0 };
	char *err = NULL, **keys = calloc(ROWS, sizeof(*keys));
	const char *text[1];
	uint64_t seed = 42, t0;

	ok(mkdtemp(dir) != NULL, "a spill directory");
	lim.tmp_dir = dir;
	gbuf_add(&in, "id,k\n", 5);
	for (int i = 0; i < ROWS; i++) {
		char k[32];

		seed ^= seed << 13;
		seed ^= seed >> 7;
		seed ^= seed << 17;
		snprintf(k, sizeof(k), "k%016llx", (unsigned long long)seed);
		gbuf_printf(&in, "%d,%s\n", i, k);
		keys[i] = strdup(k);
	}
	qsort(keys, ROWS, sizeof(*keys), cmp_str);
	gbuf_add(&want, "k\n", 2);
	for (int i = 0; i < ROWS; i++) {
		gbuf_printf(&want, "%s\n", keys[i]);
		free(keys[i]);
	}
	free(keys);
	text[0] = (const char *)in.p;
	{
		struct sqlq_limits roomy = lim;
		struct gbuf out = { 0 };
		sqlite3_int64 hi_small, hi_big;
		int spilled, ret;

		t0 = mono_ns();
		hi_small = sort_big(text, &lim, &out, &spilled, &ret);
		is_int(ret, 0, "a sort of %d rows with 256 KiB of cache runs", ROWS);
		ok(out.n == want.n && !memcmp(out.p, want.p, want.n),
		   "the sort's output is every key in order");
		ok(spilled > 0, "it spilled to files in the spill directory (%d seen)",
		   spilled);
		diag("sort of %d rows (%.1f MiB of CSV), 256 KiB cache: %llu ms, "
		     "SQLite heap high-water %.1f MiB", ROWS, in.n / 1048576.0,
		     (unsigned long long)((mono_ns() - t0) / 1000000),
		     hi_small / 1048576.0);
		roomy.memory = 64 << 20;
		out.n = 0;
		t0 = mono_ns();
		hi_big = sort_big(text, &roomy, &out, &spilled, &ret);
		diag("the same with 64 MiB of cache: %llu ms, SQLite heap high-water "
		     "%.1f MiB, %d spill files seen",
		     (unsigned long long)((mono_ns() - t0) / 1000000),
		     hi_big / 1048576.0, spilled);
		ok(hi_small < hi_big, "the small limit kept SQLite's heap smaller");
		free(out.p);
	}
	ok(sqlq_new(&q, &lim, &err) == 0, "sqlq with 256 KiB of cache");
	add(q, &big, NULL, "silver", "big", "id:INT,k:STRING", text, 1);
	t0 = mono_ns();
	query(q, "SELECT * FROM silver.big", &r);
	diag("a full scan and output of %d rows: %llu ms (%.0f MB/s of input)", ROWS,
	     (unsigned long long)((mono_ns() - t0) / 1000000),
	     in.n / 1e6 / ((mono_ns() - t0) / 1e9));
	ok(r.csv.n == in.n && !memcmp(r.csv.p, in.p, in.n),
	   "a full scan writes the table's CSV back byte for byte");
	is_csv(q, &r, "SELECT count(DISTINCT k) AS n FROM silver.big",
	       "n\n200000\n", "count(DISTINCT) over 200k keys");
	res_free(&r);
	sqlq_free(q);
	lt_schema_free(&big.schema);
	free(in.p);
	free(want.p);
	free(err);
	rmdir(dir);
}

/*
 * Grouped scans: a GROUP BY or DISTINCT over plain columns is grouped by
 * the scan (res.grouped counts its rows); the same query over +col (an
 * expression: SQLite sorts) must give the same rows. The table mixes what
 * grouping must keep apart or together: NULLs, '' and NULL, text that
 * fails its INT type next to numbers, 0.0 and -0.0, quoted fields with
 * commas, quotes and newlines, non-ASCII, a CRLF line. Run in memory and
 * with a 64 KiB memory limit (it spills), and over bronze.
 */
static int line_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The CSV's lines after the header, sorted, joined by '\n'. */
static char *sorted_rows(const char *csv)
{
	char *dup = strdup(csv), *save = NULL, **v = NULL, *out;
	size_t n = 0, cap = 0, len = 0;

	for (char *l = strtok_r(dup, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		if (n == cap)
			v = realloc(v, (cap = cap ? cap * 2 : 64) * sizeof(*v));
		v[n++] = l;
		len += strlen(l) + 1;
	}
	if (n)
		qsort(v + 1, n - 1, sizeof(*v), line_cmp);
	out = calloc(len + 1, 1);
	for (size_t i = 1; i < n; i++) {
		strcat(out, v[i]);
		strcat(out, "\n");
	}
	free(v);
	free(dup);
	return out;
}

static void grouped_pair(struct sqlq *q, const char *sql, const char *plain,
			 int spill_expected, const char *what)
{
	struct res a = { 0 }, b = { 0 };
	char *ra, *rb;

	query(q, sql, &a);
	query(q, plain, &b);
	ra = sorted_rows(csv_of(&a));
	rb = sorted_rows(csv_of(&b));
	ok(a.ret == 0 && b.ret == 0 && a.r.rows > 0 && !strcmp(ra, rb),
	   "%s: %llu rows, as SQLite's sort gives them", what,
	   (unsigned long long)a.r.rows);
	if (strcmp(ra, rb))
		diag("grouped:\n%.2000s\nsorted:\n%.2000s", ra, rb);
	ok(a.r.grouped > 0 && b.r.grouped == 0,
	   "%s: the scan grouped (%llu rows), the expression form sorted", what,
	   (unsigned long long)a.r.grouped);
	if (spill_expected >= 0)
		ok(spill_expected ? a.r.spilled > 0 : a.r.spilled == 0,
		   "%s: %llu bytes spilled", what, (unsigned long long)a.r.spilled);
	free(ra);
	free(rb);
	res_free(&a);
	res_free(&b);
}

static void test_grouped(void)
{
	static const char *const kinds[] = { "alpha", "", "b,c", "q\"uote",
					     "two\nlines", "\xc3\xa9t\xc3\xa9", "z" };
	struct gbuf t = { 0 }, raw = { 0 };
	const char *text[1], *rtext[1];
	struct sqlq_limits small = { .memory = 64 << 10, .timeout_ms = 60000 };
	char dir[] = "/tmp/sqlq-group-XXXXXX";
	uint64_t s = 12345;
	struct tab tab = { 0 }, tab2 = { 0 }, br = { 0 };
	struct sqlq *q = NULL, *qs = NULL;
	char *err = NULL;

	gbuf_printf(&t, "k,s,f,n\n");
	for (int i = 0; i < 80000; i++) {	/* 1.6 MB: read ahead */
		uint64_t r = (s ^= s << 13, s ^= s >> 7, s ^= s << 17);
		const char *kind = kinds[r % 7];

		/* k: INT, now and then text or NULL */
		if (r % 97 == 0)
			gbuf_printf(&t, "x%d,", (int)(r % 3));
		else if (r % 89 == 0)
			gbuf_printf(&t, ",");
		else
			gbuf_printf(&t, "%d,", (int)(r >> 8) % 50 - 25);
		/* s: STRING, quoted when it must be, NULL now and then */
		if (r % 11 == 0)
			gbuf_printf(&t, ",");
		else if (!*kind || strpbrk(kind, ",\"\n")) {
			gbuf_add(&t, "\"", 1);
			for (const char *p = kind; *p; p++)
				gbuf_add(&t, *p == '"' ? "\"\"" : p, *p == '"' ? 2 : 1);
			gbuf_add(&t, "\",", 2);
		} else {
			gbuf_printf(&t, "%s,", kind);
		}
		/* f: FLOAT, 0 and -0 among quarters; n: INT */
		if (r % 13 == 0)
			gbuf_printf(&t, "%s,", r % 2 ? "-0.0" : "0");
		else
			gbuf_printf(&t, "%.2f,", (double)((r >> 20) % 40) / 4 - 5);
		gbuf_printf(&t, "%d%s", (int)(r >> 30) % 1000, i == 7 ? "\r\n" : "\n");
	}
	gbuf_add(&t, "", 1);
	text[0] = (const char *)t.p;
	gbuf_printf(&raw, "a;b\n");
	for (int i = 0; i < 3000; i++)
		gbuf_printf(&raw, "%d;v%d\n", i % 17, i % 5);
	gbuf_add(&raw, "", 1);
	rtext[0] = (const char *)raw.p;

	ok(mkdtemp(dir) != NULL, "a spill directory");
	small.tmp_dir = dir;
	sqlq_new(&q, NULL, &err);
	sqlq_new(&qs, &small, &err);
	add(q, &tab, NULL, "silver", "t", "k:INT,s:STRING,f:FLOAT,n:INT", text, 1);
	add(qs, &tab2, NULL, "silver", "t", "k:INT,s:STRING,f:FLOAT,n:INT", text, 1);
	add(q, &br, NULL, "bronze", "raw", "a:STRING,b:STRING", rtext, 1);

	grouped_pair(q, "SELECT s, count(*), sum(n), min(f), max(k) FROM silver.t GROUP BY s",
		     "SELECT s, count(*), sum(n), min(f), max(k) FROM silver.t GROUP BY +s",
		     0, "GROUP BY a text column");
	grouped_pair(q, "SELECT k, count(*), total(f) FROM silver.t GROUP BY k",
		     "SELECT k, count(*), total(f) FROM silver.t GROUP BY +k", 0,
		     "GROUP BY an INT column with text among it");
	grouped_pair(q, "SELECT k, count(*) FROM silver.t GROUP BY k",
		     "SELECT k, count(*) FROM silver.t GROUP BY +k", 0,
		     "only the first column read (quoted newlines after it)");
	grouped_pair(q, "SELECT f, count(*) FROM silver.t GROUP BY f",
		     "SELECT f, count(*) FROM silver.t GROUP BY +f", 0,
		     "GROUP BY a FLOAT column with 0 and -0");
	grouped_pair(q, "SELECT s, k, count(*), sum(n) FROM silver.t GROUP BY s, k HAVING count(*) > 3",
		     "SELECT s, k, count(*), sum(n) FROM silver.t GROUP BY +s, +k HAVING count(*) > 3",
		     0, "GROUP BY two columns, with HAVING");
	grouped_pair(q, "SELECT DISTINCT s, k FROM silver.t",
		     "SELECT DISTINCT +s, +k FROM silver.t", 0, "DISTINCT");
	grouped_pair(q, "SELECT a, count(*), count(DISTINCT b), max(_file) FROM bronze.raw GROUP BY a",
		     "SELECT a, count(*), count(DISTINCT b), max(_file) FROM bronze.raw GROUP BY +a",
		     -1, "GROUP BY over bronze, _file read");
	grouped_pair(qs, "SELECT s, k, count(*), sum(n), min(f) FROM silver.t GROUP BY s, k",
		     "SELECT s, k, count(*), sum(n), min(f) FROM silver.t GROUP BY +s, +k",
		     1, "64 KiB of memory");
	grouped_pair(qs, "SELECT n, count(*) FROM silver.t GROUP BY n",
		     "SELECT n, count(*) FROM silver.t GROUP BY +n", 1,
		     "64 KiB of memory, a thousand keys");
	grouped_pair(q, "SELECT a.s, count(*) FROM silver.t a JOIN (SELECT DISTINCT k FROM silver.t WHERE k > 20) b ON a.k = b.k GROUP BY a.s",
		     "SELECT a.s, count(*) FROM silver.t a JOIN (SELECT DISTINCT +k AS k FROM silver.t WHERE k > 20) b ON a.k = b.k GROUP BY +a.s",
		     -1, "a join with grouped sides");
	{
		struct res r = { 0 };

		tab.files.fail_at = 1500000;	/* past the first read-ahead */
		query(q, "SELECT s, count(*) FROM silver.t GROUP BY s", &r);
		is_int(r.ret, -EIO, "a read failing mid-table under a grouped scan: -EIO");
		ok(r.err && strstr(r.err, "silver.t: cannot read file 0"), "its message: %s",
		   r.err ? r.err : "none");
		query(q, "SELECT count(*) FROM silver.t", &r);
		is_int(r.ret, -EIO, "and under a plain scan: -EIO");
		ok(tab.files.open_now == 0, "no reader left open");
		tab.files.fail_at = 0;
		res_free(&r);
	}
	sqlq_free(q);
	sqlq_free(qs);
	lt_schema_free(&tab.schema);
	lt_schema_free(&tab2.schema);
	lt_schema_free(&br.schema);
	rmdir(dir);
	free(t.p);
	free(raw.p);
	free(err);
}

/*
 * Damaged queries and bronze files: prepare gives 0 or -EINVAL, a run 0,
 * -EINVAL, -ETIMEDOUT or -ENOMEM; nothing crashes or leaks (ASan).
 */
static void test_fuzz(uint64_t seed)
{
	static const char *const seeds[] = {
		"SELECT day, sum(amount) AS revenue FROM silver.orders GROUP BY day",
		"SELECT a.name FROM crm.silver.accounts a JOIN silver.orders o USING (id)",
		"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<50) "
		"SELECT x, 'it''s' FROM c -- crm.silver.x\n",
		"SELECT \"crm\".[silver].`accounts`.tier /* c */ FROM crm.silver.accounts",
		"SELECT * FROM bronze.raw WHERE _file = 1 ORDER BY id",
	};
	static const char special[] = ".\"'[]`;-/*() ,\nx0";
	struct sqlq_limits lim = { .timeout_ms = 200 };
	struct tab orders = { 0 }, acc = { 0 }, raw = { 0 };
	unsigned char buf[1024], file[2][512];
	const char *files[2] = { (const char *)file[0], (const char *)file[1] };
	struct sqlq *q = NULL;
	struct res r = { 0 };
	char *err = NULL;
	int bad = 0, okq = 0;

	diag("fuzz seed %llu (LFS_FUZZ_SEED=%llu replays it)",
	     (unsigned long long)seed, (unsigned long long)seed);
	sqlq_new(&q, &lim, &err);
	add(q, &orders, NULL, "silver", "orders", ORDERS, orders_csv, 1);
	add(q, &acc, "crm", "silver", "accounts", "id:INT,name:STRING,tier:STRING",
	    accounts_csv, 1);
	add(q, &raw, NULL, "bronze", "raw", "id:STRING,day:STRING,note:STRING",
	    files, 2);
	for (int round = 0; round < 1500; round++) {
		const char *sd = seeds[rnd(&seed) % ARRAY_SIZE(seeds)];
		size_t n = strlen(sd);

		memcpy(buf, sd, n);
		n = mutate_text(buf, n, sizeof(buf) - 1, &seed, special, sizeof(special) - 1);
		buf[n] = '\0';
		for (int f = 0; f < 2; f++) {
			size_t fn = strlen(raw_files[f]);

			memcpy(file[f], raw_files[f], fn);
			fn = mutate_text(file[f], fn, sizeof(file[f]) - 1, &seed,
					 "{}[]\",:\n\\", 10);
			file[f][fn] = '\0';
		}
		res_free(&r);
		r.ret = sqlq_prepare(q, (const char *)buf, &r.err);
		if (r.ret == 0) {
			struct ingest_writer wc = { &r.csv, gb_write }, wj = { &r.jsonl, gb_write };

			okq++;
			r.ret = sqlq_run(q, &wc, &wj, &r.r, &r.err);
			if (r.ret && r.ret != -EINVAL && r.ret != -ETIMEDOUT &&
			    r.ret != -ENOMEM && bad++ < 5)
				diag("round %d: run %d (%s): %s", round, r.ret,
				     r.err ? r.err : "", buf);
		} else if ((r.ret != -EINVAL || !r.err) && bad++ < 5) {
			diag("round %d: prepare %d: %s", round, r.ret, buf);
		}
		if (query(q, "SELECT *, _file FROM bronze.raw", &r) && bad++ < 5)
			diag("round %d: bronze files\n%s\n--\n%s", round, files[0],
			     files[1]);
	}
	ok(!bad, "fuzz: 1500 damaged queries and bronze files, no unexpected "
	   "result (%d prepared)", okq);
	res_free(&r);
	sqlq_free(q);
	lt_schema_free(&orders.schema);
	lt_schema_free(&acc.schema);
	lt_schema_free(&raw.schema);
	free(err);
}

int main(void)
{
	const char *env = getenv("LFS_FUZZ_SEED");
	uint64_t seed = env ? strtoull(env, NULL, 10) :
			(uint64_t)time(NULL) ^ (uint64_t)getpid();

	test_basic();
	test_errors();
	test_output();
	test_roundtrip();
	test_io_errors();
	test_limits();
	test_spill();
	test_grouped();
	test_fuzz(seed ? seed : 1);
	return done_testing();
}
