/*
 * catalog/sqlq.c — one gold query: SQLite over lakefs tables.
 *
 * Tables. Each declared table is a virtual table of the module "lakefs"
 * in an in-memory database attached under its name: the query's own
 * catalog's layers are the databases silver, gold and bronze (attached at
 * sqlq_new) and table T is silver.T; another catalog CAT is one database
 * named CAT (attached when its first table is declared) holding the table
 * "silver.T". The three-part name CAT.silver.T of a query is rewritten to
 * "CAT"."silver.T" before the prepare, so SQLite's own messages ("no such
 * table: CAT.silver.T") read as the user wrote it; one database per
 * catalog keeps within SQLite's 10 attached databases (7 other catalogs,
 * -E2BIG past that). Declared columns: INT INTEGER, FLOAT and DECIMAL
 * REAL, BOOL INTEGER (0/1), anything else TEXT; bronze every column TEXT
 * plus a hidden column _file, the 0-based index of the file a row comes
 * from (visible when the table has no column of its own, absent when it
 * has a column of that name).
 *
 * Scans. xFilter opens the table's reader(s) through t->open (a second
 * scan reopens: rewinding is reopening) and the cursor pulls. Silver and
 * gold are our own canonical CSV: a header (skipped), the schema's columns
 * in order, ',' as delimiter, so canon_fill scans them in place in one
 * growing buffer (see there), eight bytes at a time where a record has no
 * quote, splitting only the leading columns the query reads, with a file
 * over PF_CHUNK read ahead on another thread (pf_*). Bronze feeds one
 * CHUNK at a time to the push parser
 * (catalog/csv.c, catalog/json.c), whose callback copies that chunk's
 * records into an arena (the bytes, NUL-terminated, and per row one cell
 * per declared column), then hands the rows out one by one; the next chunk
 * is fed when they are used up. Memory: one buffer (or chunk), its
 * records, and the parser's bounded state. Values in silver and gold: an
 * unquoted empty field is NULL,
 * a quoted empty field '' in a STRING column (NULL in any other: a
 * one-column table writes null as ""); INT int64, FLOAT and DECIMAL double
 * (approximate past 15 digits; up to 15 digits without strtod, the same
 * double), BOOL 1/0, anything else text; a value that
 * does not parse as its type stays text. A bad record in silver or gold is
 * a corrupt table: the scan fails with -EIO, as does a reader's failure.
 * A scan checks the run's deadline per chunk too (a bronze file of only
 * bad records yields no row, so no VM step, for a while). Bronze files are read as they
 * landed: the first non-space byte (after a BOM) '{' or '[' means JSON
 * (any form catalog/json.c reads), anything else CSV with a header and a
 * sniffed delimiter. Header names and JSON keys are named as ingest names
 * them (lt_header_names / lt_column_name_ok) and map to the declared
 * columns with lt_schema_find (exact, then ASCII case); a column a file
 * lacks is NULL, a name the schema lacks is left out. Every bronze value is
 * text (nested JSON as its compact text, JSON null NULL, a CSV field as in
 * silver). Bad bronze records are skipped, and so is a whole file the
 * parsers call unusable (binary, compressed, not JSON): ingest
 * quarantines those, so the raw view has no rows of them.
 *
 * Grouped scans. When the planner needs only each key's rows adjacent (a
 * GROUP BY or DISTINCT on plain columns: sqlite3_vtab_distinct 1 or 2),
 * vt_best_index consumes the order and xFilter loads every row into a
 * gstore (catalog/gstore.c) under its key before handing out the first:
 * a scanner thread parses and encodes while the cursor's thread hashes
 * (group_load), and SQLite then aggregates a stream instead of sorting
 * every row (a sort was most of a GROUP BY over ten million rows). Keys
 * are encoded so that equal bytes are values SQLite holds equal; the rows
 * spill past the memory limit. sqlq_result counts the rows so grouped.
 *
 * Names. The rewrite scans the SQL text with SQLite's lexical rules for
 * strings, quoted identifiers ("", [], ``) and comments, and replaces
 * A . L . T (not itself after a '.') where L is silver, gold or bronze
 * and A a declared catalog; A a name that is no database (not main, temp,
 * a layer or a catalog) is "no such table: A.L.T" with its position. An
 * edit map turns offsets in the rewritten text back into the user's.
 * Unqualified table names resolve by SQLite's own search order (main,
 * temp, silver, gold, bronze, catalogs); only declared tables can match.
 *
 * Authorizer (installed for the connection's life, relaxed only while
 * sqlq sets itself up): SELECT, RECURSIVE (recursive CTEs), FUNCTION
 * (but load_extension and fts3_tokenizer), READ of a declared table —
 * recorded as a dependency, "silver.T" or "CAT.silver.T", once, the list
 * sorted after the prepare — and of
 * the eponymous json_each/json_tree. Everything else is denied with a
 * message naming it: writes, CREATE, DROP, ATTACH, PRAGMA, transactions,
 * sqlite_master/sqlite_schema of any database, anything in main or temp.
 * Besides: one statement only (the tail may hold ';', white space and
 * comments), sqlite3_stmt_readonly must hold, load_extension is off at
 * the connection (SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION) and the
 * connection is DEFENSIVE, without triggers or views.
 *
 * Errors. A prepare failure is -EINVAL (-ENOMEM for SQLITE_NOMEM) with
 * "line L, column C: " (1-based, columns in characters) before SQLite's
 * message when SQLite gives an offset (sqlite3_error_offset), mapped back
 * through the edit map. SQLite 3.40 gives none for "no such table: X" and
 * for a refusal: then the first place the text names X (or the refused
 * table or function) is the position. A write to sqlite_master is what
 * SQLite asks about first for CREATE and for a table-valued function's
 * first use; that refusal is worded by the statement's first word.
 *
 * Limits. Time: a progress handler every PROGRESS_STEPS VM steps compares
 * a monotonic deadline (-ETIMEDOUT); scans compare it per buffer too. Memory: cache_size of main and temp is
 * -(memory/1024) KiB and temp_store FILE, so the sorter and temporary
 * b-trees (GROUP BY, DISTINCT, automatic indexes, materialized CTEs) spill
 * to files past it (the sorter on two threads, PRAGMA threads: a GROUP BY
 * over a big table is mostly its sort); one value is at most VALUE_MAX bytes
 * (SQLITE_LIMIT_LENGTH); SQLITE_NOMEM and SQLITE_TOOBIG are -ENOMEM. The
 * spill directory is sqlite3_temp_directory, which is process-global and
 * unsafe to change while other connections run: the first tmp_dir given
 * is set once (under a mutex) and a different one later is ignored with a
 * warning — a daemon passes one directory for its life.
 *
 * Output. Column names from sqlite3_column_name through lt_header_names
 * (cleaned, unique, an empty one _cI). CSV as ingest writes it: header,
 * then per row NULL an empty field (in a one-column result ""), INTEGER
 * decimal, REAL its shortest round-trip text as lt_normalize makes FLOAT
 * (non-finite: null), TEXT as is, "" when empty, quoted per RFC 4180 when
 * it holds , " CR or LF, BLOB lowercase hex. Text with a NUL byte or
 * invalid UTF-8 (CAST of a blob) has U+FFFD for them, in both outputs, so
 * the CSV reads back as a gold table: the output declared with its result
 * schema scans back to the same bytes. JSON lines: one object per
 * row, keys in column order, numbers as numbers, text and hex as strings,
 * NULL null. Both writers get FLUSH_AT-byte pieces.
 *
 * Not done: pushing WHERE constraints into the scans (every scan reads the
 * whole table), decompressing bronze files, per-connection temp
 * directories, a hard heap limit (SQLite's is process-global).
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sqlite3.h>

#include "catalog/csv.h"
#include "catalog/gstore.h"
#include "catalog/json.h"
#include "catalog/sqlq.h"
#include "util/log.h"
#include "util/util.h"

#define CHUNK		(256u << 10)	/* bytes fed to a parser at a time */
#define FLUSH_AT	(256u << 10)	/* output buffered per writer */
#define PROGRESS_STEPS	1000		/* VM steps between deadline checks */
#define SQL_MAX		(1u << 20)	/* bytes of query text */
#define VALUE_MAX	(64u << 20)	/* bytes of one value, at most */
#define TABLE_FIELD_MAX	(64u << 20)	/* a silver/gold CSV field */
#define MAX_CATALOGS	7		/* besides silver, gold, bronze */

static const char *const layers[] = { "silver", "gold", "bronze" };

struct qtable {
	char *catalog;		/* NULL: the query's own */
	char *layer, *name;
	char *db, *sqlname;	/* silver + T, or CAT + silver.T */
	char *dep;		/* silver.T or CAT.silver.T */
	int bronze;
	struct lt_schema schema;
	int (*open)(void *arg, size_t i, struct ingest_reader **r);
	void (*close)(void *arg, size_t i, struct ingest_reader *r);
	size_t nfiles;
	void *arg;
};

struct edit {			/* [rb, re) of the rewritten text was [ub, ue) */
	size_t rb, re, ub, ue;
};

struct sqlq {
	sqlite3 *db;
	sqlite3_stmt *st;
	struct sqlq_limits lim;
	struct qtable **tabs;
	size_t ntabs, captabs;
	char **cats;		/* attached catalogs */
	size_t ncats;
	char **deps;
	size_t ndeps, capdeps;
	int setup;		/* sqlq's own statements: authorize all */
	int recording;		/* a prepare: note dependencies */
	char *deny;		/* why the authorizer refused */
	char *deny_at;		/* the name refused, to find its position */
	int deny_weak;		/* a write to sqlite_master: a later,
				 * more telling refusal replaces it */
	int deps_failed;	/* out of memory noting one */
	/* the query */
	const char *user;	/* during a prepare */
	size_t user_len;
	struct edit *edits;
	size_t nedits, capedits;
	/* a run */
	uint64_t deadline;
	int timed_out;
	int io_err;		/* a scan failed (reading, or a corrupt table) */
	uint64_t grouped, spilled;	/* grouped scans (sqlq_result) */
};

/* ---- small helpers ---- */

static char *vfmt(const char *fmt, va_list ap)
{
	char *s = NULL;

	if (vasprintf(&s, fmt, ap) < 0)
		return NULL;
	return s;
}

__attribute__((format(printf, 3, 4)))
static int fail(char **err, int code, const char *fmt, ...)
{
	va_list ap;

	if (err) {
		free(*err);
		va_start(ap, fmt);
		*err = vfmt(fmt, ap);
		va_end(ap);
	}
	return code;
}

static int is_layer(const char *s, size_t n)
{
	for (size_t i = 0; i < ARRAY_SIZE(layers); i++)
		if (strlen(layers[i]) == n && !strncasecmp(s, layers[i], n))
			return (int)i + 1;
	return 0;
}

static int exec(struct sqlq *q, const char *sql, char **err)
{
	char *msg = NULL;
	int rc, ret = 0;

	q->setup = 1;
	rc = sqlite3_exec(q->db, sql, NULL, NULL, &msg);
	q->setup = 0;
	if (rc != SQLITE_OK) {
		ret = rc == SQLITE_NOMEM ? -ENOMEM : rc == SQLITE_ERROR &&
		      msg && strstr(msg, "too many attached") ? -E2BIG : -EINVAL;
		fail(err, ret, "sqlite: %s", msg ? msg : sqlite3_errstr(rc));
	}
	sqlite3_free(msg);
	return ret;
}

/* ---- the virtual table ---- */

struct vtab {
	sqlite3_vtab base;
	struct sqlq *q;
	struct qtable *t;
};

struct cell {
	uint32_t off;
	int32_t len;		/* -1: NULL */
};

enum { K_NONE, K_CSV, K_JSON };

struct prefetch;
static void pf_stop(struct prefetch *pf);

struct sval {			/* one value as SQLite gets it */
	int type;		/* SQLITE_NULL, _INTEGER, _FLOAT, _TEXT */
	sqlite3_int64 i;
	double d;
	const char *p;
	int n;
};

struct jkey {			/* a JSON key's column, by field position */
	char *key;
	size_t klen;
	int col;
};

struct vcur {
	sqlite3_vtab_cursor base;
	struct vtab *vt;
	size_t ncol;
	size_t nneed;		/* silver/gold: the leading columns split */
	size_t file;
	struct ingest_reader *r;
	uint64_t off;
	int kind, fed_end, eof;
	struct csv_parser *csv;
	struct json_parser *json;
	unsigned char *chunk;
	/* the current chunk's rows */
	struct gbuf bytes;
	struct cell *cells;
	size_t capcells, nrows, row;
	sqlite3_int64 rowid;
	/* bronze: header position -> column */
	int *map;
	size_t nmap;
	int mapped;
	struct jkey *jk;
	size_t njk;
	int err;		/* a callback's failure */
	char why[256];
	/* silver and gold: the canonical scan's buffer (see canon_fill) */
	struct prefetch *pf;	/* its read-ahead, for a file over PF_CHUNK */
	unsigned char *buf;
	size_t bcap, blen, bpos;
	int hdr_done;
	uint64_t line;		/* where the next record starts, from 0 */
	/* a grouped scan (idxNum 1): every row into gs, then out by key */
	struct gstore *gs;
	int *kcol, *vcol;	/* key columns; the other columns used */
	size_t nk, nv;
	int *cmap;		/* column -> key k (k >= 0), value v (-2 - v), -1 */
	struct sval *kv, *vv;	/* the current row's keys and values */
	struct gbuf enc;
};

static int vt_connect(sqlite3 *db, void *aux, int argc, const char *const *argv,
		      sqlite3_vtab **out, char **errp)
{
	struct sqlq *q = aux;
	struct vtab *vt;
	struct qtable *t;
	struct gbuf b = { 0 };
	unsigned long idx;
	char *end;
	int rc;

	if (argc != 4 || (idx = strtoul(argv[3], &end, 10), *end) ||
	    idx >= q->ntabs) {
		*errp = sqlite3_mprintf("lakefs: a table is declared with sqlq_add_table");
		return SQLITE_ERROR;
	}
	t = q->tabs[idx];
	gbuf_add(&b, "CREATE TABLE x(", 15);
	for (size_t i = 0; i < t->schema.n; i++) {
		const struct lt_column *c = &t->schema.cols[i];
		const char *ty = "TEXT";

		if (!t->bronze && (c->type == LT_INT || c->type == LT_BOOL))
			ty = "INTEGER";
		else if (!t->bronze && (c->type == LT_FLOAT || c->type == LT_DECIMAL))
			ty = "REAL";
		if (i)
			gbuf_add(&b, ",", 1);
		gbuf_add_quoted(&b, '"', c->name, strlen(c->name));
		gbuf_printf(&b, " %s", ty);
	}
	if (t->bronze && lt_schema_find(&t->schema, "_file") < 0)
		gbuf_printf(&b, "%s\"_file\" INTEGER%s", t->schema.n ? "," : "",
			    t->schema.n ? " HIDDEN" : "");
	gbuf_add(&b, ")", 1);
	if (b.failed) {
		free(b.p);
		return SQLITE_NOMEM;
	}
	rc = sqlite3_declare_vtab(db, (const char *)b.p);
	free(b.p);
	if (rc != SQLITE_OK)
		return rc;
	vt = sqlite3_malloc(sizeof(*vt));
	if (!vt)
		return SQLITE_NOMEM;
	memset(vt, 0, sizeof(*vt));
	vt->q = q;
	vt->t = t;
	*out = &vt->base;
	return SQLITE_OK;
}

static int vt_disconnect(sqlite3_vtab *base)
{
	sqlite3_free(base);
	return SQLITE_OK;
}

/*
 * idxNum: bit 0 a grouped scan; above it, 1 + the number of leading
 * columns the query reads (0: all of them), so that a silver or gold scan
 * stops splitting a record after the last column it needs.
 *
 * A GROUP BY or DISTINCT over plain columns of this table (the planner says
 * so through sqlite3_vtab_distinct: 1 or 2) only needs each key's rows
 * adjacent: the scan groups them itself (catalog/gstore.c) and SQLite
 * aggregates as a stream instead of sorting every row. idxStr names the
 * key columns, then after ';' the other columns the query reads.
 */
static int vt_best_index(sqlite3_vtab *base, sqlite3_index_info *info)
{
	const struct qtable *t = ((struct vtab *)base)->t;
	size_t ncol = t->schema.n + (t->bronze ? 1 : 0);	/* with _file */
	struct gbuf b = { 0 };
	int d, need = 0;

	info->estimatedCost = 1e6;
	info->estimatedRows = 1000000;
	if (!(info->colUsed & (1ull << 63)))
		for (size_t i = 0; i < t->schema.n && i < 63; i++)
			if (info->colUsed & (1ull << i))
				need = (int)i + 1;
	info->idxNum = (info->colUsed & (1ull << 63)) ? 0 : (need + 1) << 1;
	if (info->nOrderBy <= 0 ||
	    ((d = sqlite3_vtab_distinct(info)) != 1 && d != 2))
		return SQLITE_OK;
	for (int i = 0; i < info->nOrderBy; i++) {
		int col = info->aOrderBy[i].iColumn;

		if (col < 0 || (size_t)col >= t->schema.n)
			return SQLITE_OK;
		gbuf_printf(&b, "%s%d", i ? "," : "", col);
	}
	gbuf_add(&b, ";", 1);
	for (size_t i = 0, n = 0; i < ncol; i++) {
		uint64_t bit = 1ull << (i < 63 ? i : 63);
		int key = 0;

		for (int k = 0; k < info->nOrderBy; k++)
			key |= info->aOrderBy[k].iColumn == (int)i;
		if ((info->colUsed & bit) && !key)
			gbuf_printf(&b, "%s%zu", n++ ? "," : "", i);
	}
	gbuf_add(&b, "", 1);
	if (b.failed) {
		free(b.p);
		return SQLITE_NOMEM;
	}
	info->idxStr = sqlite3_mprintf("%s", (const char *)b.p);
	free(b.p);
	if (!info->idxStr)
		return SQLITE_NOMEM;
	info->needToFreeIdxStr = 1;
	info->idxNum |= 1;
	info->orderByConsumed = 1;
	return SQLITE_OK;
}

static int vt_open(sqlite3_vtab *base, sqlite3_vtab_cursor **out)
{
	struct vtab *vt = (struct vtab *)base;
	struct vcur *c = calloc(1, sizeof(*c));

	if (!c || !(c->chunk = malloc(CHUNK))) {
		free(c);
		return SQLITE_NOMEM;
	}
	c->vt = vt;
	c->ncol = vt->t->schema.n;
	c->eof = 1;
	*out = &c->base;
	return SQLITE_OK;
}

static void cur_close_file(struct vcur *c)
{
	struct qtable *t = c->vt->t;

	csv_free(c->csv);
	json_free(c->json);
	c->csv = NULL;
	c->json = NULL;
	pf_stop(c->pf);		/* before the reader it uses is closed */
	c->pf = NULL;
	if (c->r && t->close)
		t->close(t->arg, c->file, c->r);
	c->r = NULL;
	c->kind = K_NONE;
	c->fed_end = 0;
	c->mapped = 0;
	for (size_t i = 0; i < c->njk; i++)
		free(c->jk[i].key);
	free(c->jk);
	c->jk = NULL;
	c->njk = 0;
}

static void cur_group_reset(struct vcur *c)
{
	gstore_free(c->gs);
	c->gs = NULL;
	free(c->kcol);
	free(c->vcol);
	free(c->cmap);
	free(c->kv);
	free(c->vv);
	free(c->enc.p);
	c->kcol = c->vcol = c->cmap = NULL;
	c->kv = c->vv = NULL;
	memset(&c->enc, 0, sizeof(c->enc));
	c->nk = c->nv = 0;
}

static int vt_close(sqlite3_vtab_cursor *base)
{
	struct vcur *c = (struct vcur *)base;

	cur_close_file(c);
	cur_group_reset(c);
	free(c->chunk);
	free(c->buf);
	free(c->bytes.p);
	free(c->cells);
	free(c->map);
	free(c);
	return SQLITE_OK;
}

/* A new row of the chunk, every cell NULL. */
static struct cell *cur_row(struct vcur *c)
{
	size_t w = c->ncol ? c->ncol : 1;
	struct cell *row;

	if (grow_array((void **)&c->cells, &c->capcells, (c->nrows + 1) * w,
		       sizeof(*c->cells), SIZE_MAX, NULL))
		return NULL;
	row = c->cells + c->nrows++ * w;
	for (size_t k = 0; k < w; k++)
		row[k].len = -1;
	return row;
}

static void cur_put(struct vcur *c, struct cell *cl, const char *p, size_t n)
{
	cl->off = (uint32_t)c->bytes.n;
	cl->len = (int32_t)n;
	gbuf_add(&c->bytes, p, n);
	gbuf_add(&c->bytes, "", 1);
}

/* Bronze CSV: the header's names, as ingest names them, to columns. */
static int cur_map_header(struct vcur *c)
{
	const struct csv_field *h = csv_header(c->csv, &c->nmap);
	const char **raw = NULL;
	size_t *lens = NULL;
	char **names = NULL;
	int ret = -ENOMEM;

	free(c->map);
	c->map = calloc(c->nmap ? c->nmap : 1, sizeof(*c->map));
	raw = calloc(c->nmap + 1, sizeof(*raw));
	lens = calloc(c->nmap + 1, sizeof(*lens));
	if (!c->map || !raw || !lens)
		goto out;
	for (size_t i = 0; i < c->nmap; i++) {
		raw[i] = h[i].p;
		lens[i] = h[i].len;
	}
	if ((ret = lt_header_names(raw, lens, c->nmap, &names)) < 0)
		goto out;
	for (size_t i = 0; i < c->nmap; i++)
		c->map[i] = lt_schema_find(&c->vt->t->schema, names[i]);
	lt_names_free(names, c->nmap);
	c->mapped = 1;
out:
	free(raw);
	free(lens);
	return ret;
}

static int cur_csv_rec(void *arg, uint64_t recno, uint64_t line,
		       const struct csv_field *f, size_t n)
{
	struct vcur *c = arg;	/* bronze: silver and gold are canon_fill's */
	struct cell *row;

	(void)recno;
	(void)line;
	if (!c->mapped && (c->err = cur_map_header(c)) < 0)
		return c->err;
	if (!(row = cur_row(c)))
		return c->err = -ENOMEM;
	for (size_t j = 0; j < n; j++) {
		int k = j < c->nmap ? c->map[j] : -1;

		if (k < 0 || (f[j].len == 0 && !f[j].quoted))
			continue;
		cur_put(c, &row[k], f[j].p, f[j].len);
	}
	return 0;
}

static int cur_json_col(struct vcur *c, size_t j, const struct json_field *f)
{
	char name[LT_NAME_MAX + 1];
	struct jkey *jk;

	if (j < c->njk && c->jk[j].klen == f->klen &&
	    !memcmp(c->jk[j].key, f->key, f->klen))
		return c->jk[j].col;
	if (j >= c->njk) {
		jk = realloc(c->jk, (j + 1) * sizeof(*jk));
		if (!jk)
			return -ENOMEM;
		c->jk = jk;
		memset(jk + c->njk, 0, (j + 1 - c->njk) * sizeof(*jk));
		c->njk = j + 1;
	}
	jk = &c->jk[j];
	free(jk->key);
	if (!(jk->key = malloc(f->klen + 1)))
		return -ENOMEM;
	memcpy(jk->key, f->key, f->klen);
	jk->klen = f->klen;
	jk->col = -1;
	if (lt_column_name_ok(f->key, f->klen, name, sizeof(name)) >= 0)
		jk->col = lt_schema_find(&c->vt->t->schema, name);
	return jk->col;
}

static int cur_json_rec(void *arg, uint64_t recno, uint64_t line,
			const struct json_field *f, size_t n)
{
	struct vcur *c = arg;
	struct cell *row;

	(void)recno;
	(void)line;
	if (!(row = cur_row(c)))
		return c->err = -ENOMEM;
	for (size_t j = 0; j < n; j++) {
		int k = cur_json_col(c, j, &f[j]);

		if (k == -ENOMEM)
			return c->err = -ENOMEM;
		if (k >= 0 && f[j].type != JV_NULL)
			cur_put(c, &row[k], f[j].val, f[j].vlen);
	}
	return 0;
}

static int cur_start_parser(struct vcur *c, const unsigned char *p, size_t n)
{
	struct csv_opts co = CSV_OPTS_INIT;
	size_t i = 0;

	if (n >= 3 && !memcmp(p, "\xef\xbb\xbf", 3))
		i = 3;
	while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
		i++;
	if (i < n && (p[i] == '{' || p[i] == '[')) {
		c->kind = K_JSON;
		return json_new(&c->json, NULL, cur_json_rec, NULL, c);
	}
	c->kind = K_CSV;
	return csv_new(&c->csv, &co, cur_csv_rec, NULL, c);
}

static int cur_error(struct vcur *c, int ret, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int cur_error(struct vcur *c, int ret, const char *fmt, ...)
{
	struct sqlite3_vtab *vt = &c->vt->base;
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	sqlite3_free(vt->zErrMsg);
	vt->zErrMsg = sqlite3_mprintf("%s: %s", c->vt->t->dep, msg);
	if (ret == -ENOMEM)
		return SQLITE_NOMEM;
	c->vt->q->io_err = 1;
	return SQLITE_ERROR;
}

/*
 * Silver and gold: our own CSV (see the header), so a scan much simpler
 * than catalog/csv.c's, in place in c->buf. [bpos, blen) is unparsed; a
 * fill hands out the rows of up to CANON_ROWS whole records, each cell an
 * offset into buf and a length, NUL-terminated over the ',' or newline
 * after it (buf keeps a spare byte past blen for the last one), a quoted
 * field unescaped where it stands. A record is parsed only once its end is
 * in the buffer, so a partial one is moved to the front untouched before
 * the next read; a record longer than the buffer grows it, up to
 * TABLE_FIELD_MAX. The first record is the header. A bare field with a
 * quote, text after a closing quote or an unterminated quote is a corrupt
 * table (-EIO). Bytes are not checked for UTF-8: the writers did.
 */
#define CANON_ROWS	1024

static int canon_bad(struct vcur *c, const char *what)
{
	snprintf(c->why, sizeof(c->why), "line %llu: %s",
		 (unsigned long long)c->line + 1, what);
	return -EIO;
}

/*
 * The fields of a record without quotes, [p, lim): the commas are found
 * eight bytes at a time (a byte equal to ',' is a zero byte of w ^ ',' in
 * every byte, found exactly, without the borrow of the shorter test), each
 * field NUL-terminated over its comma, up to the c->nneed fields the query
 * reads. *hi gets every byte looked at or'ed (0x80: some byte is not
 * ASCII). Returns the number of fields split.
 */
/* The field [f, e) a comma ends: into row (when there is one and the
 * query reads it), NUL-terminated over its comma. */
static inline void plain_field(const struct vcur *c, struct cell *row, size_t j,
			       unsigned char *f, unsigned char *e)
{
	if (row && j < c->ncol && e > f) {
		row[j].off = (uint32_t)(f - c->buf);
		row[j].len = (int32_t)(e - f);
	}
	*e = 0;
}

static size_t canon_plain(const struct vcur *c, unsigned char *p, unsigned char *lim,
			  struct cell *row, unsigned char *hi)
{
	const uint64_t ones7 = 0x7f7f7f7f7f7f7f7full, commas = 0x2c2c2c2c2c2c2c2cull;
	unsigned char *f = p, *q = p;
	uint64_t all = 0;
	size_t j = 0;

	for (; lim - q >= 8; q += 8) {
		uint64_t w, x, m;

		memcpy(&w, q, 8);
		all |= w;
		x = w ^ commas;
		m = ~(((x & ones7) + ones7) | x | ones7);
		for (; m; m &= m - 1) {
			unsigned char *e = q + (__builtin_ctzll(m) >> 3);

			if (j >= c->nneed)
				goto cut;
			plain_field(c, row, j++, f, e);
			f = e + 1;
		}
	}
	for (; q < lim; q++) {
		all |= *q;
		if (*q != ',')
			continue;
		if (j >= c->nneed)
			goto cut;
		plain_field(c, row, j++, f, q);
		f = q + 1;
	}
	if (j < c->nneed)
		plain_field(c, row, j, f, lim);
	else
		*lim = 0;
cut:
	for (int k = 0; k < 8; k++)
		*hi |= (unsigned char)(all >> (8 * k));
	return j + 1;
}

/* One record at c->bpos: 1 parsed, 0 not wholly in the buffer, -errno. */
static int canon_record(struct vcur *c, int at_end)
{
	unsigned char *b = c->buf, *p = b + c->bpos, *end = b + c->blen;
	unsigned char *nl = memchr(p, '\n', (size_t)(end - p)), *lim, *next;
	const struct qtable *t = c->vt->t;
	uint64_t inner = 0;	/* newlines in quoted fields */
	struct cell *row = NULL;
	unsigned char hi = 0;	/* the bare fields' bytes or'ed: 0x80 non-ASCII */
	size_t j = 0;

	int has_q;

	if (!nl && !at_end)
		return 0;
	if ((has_q = memchr(p, '"', (size_t)((nl ? nl : end) - p)) != NULL)) {
		int inq = 0;	/* quotes: the record ends at a newline outside */

		for (nl = p; nl < end && (inq || *nl != '\n'); nl++)
			if (*nl == '"')
				inq = !inq;
			else if (*nl == '\n')
				inner++;
		if (nl == end && !at_end)
			return 0;
		if (inq)
			return canon_bad(c, "a quoted field does not end");
	} else if (!nl) {
		nl = end;
	}
	next = nl < end ? nl + 1 : end;
	lim = nl > p && nl[-1] == '\r' ? nl - 1 : nl;
	if (lim == p) {			/* an empty line: no record */
		c->bpos = (size_t)(next - b);
		c->line++;
		return 1;
	}
	if (c->hdr_done && !(row = cur_row(c)))
		return -ENOMEM;
	if (!has_q) {
		j = canon_plain(c, p, lim, row, &hi);
		goto fields_done;
	}
	for (;;) {
		unsigned char *f = p, *w;
		int quoted = 0, more;

		if (j >= c->nneed)
			break;		/* the query reads no column past here */

		if (p < lim && *p == '"') {
			quoted = 1;
			f = w = ++p;
			for (;;) {
				if (p >= lim)
					return canon_bad(c, "a quoted field does not end");
				if (*p == '"' && p + 1 < lim && p[1] == '"') {
					*w++ = '"';
					p += 2;
				} else if (*p == '"') {
					p++;
					break;
				} else {
					*w++ = *p++;
				}
			}
			if (p < lim && *p != ',')
				return canon_bad(c, "text after a closing quote");
		} else {
			for (; p < lim && *p != ','; p++) {
				hi |= *p;
				if (*p == '"')
					return canon_bad(c, "a quote inside a bare field");
			}
			w = p;
		}
		more = p < lim;
		*w = 0;
		if (row && j < c->ncol && (w > f || (quoted && (t->bronze ||
		    t->schema.cols[j].type == LT_STRING)))) {
			row[j].off = (uint32_t)(f - b);
			row[j].len = (int32_t)(w - f);
			if (quoted)	/* checked here: unescaped, ends in a NUL */
				hi |= 0x80;
		}
		j++;
		if (!more)
			break;
		p++;
	}
fields_done:
	if (row && (hi & 0x80))
		for (size_t k = 0; k < j && k < c->ncol; k++)
			if (row[k].len > 0 &&
			    utf8_invalid_at(b + row[k].off, (size_t)row[k].len) <
			    (size_t)row[k].len)
				return canon_bad(c, "a field is not valid UTF-8");
	c->line += 1 + inner;
	c->hdr_done = 1;
	c->bpos = (size_t)(next - b);
	return 1;
}

/*
 * Read-ahead for the canonical scan: a thread reads the table's file in
 * PF_CHUNK pieces (through its reader: blocks fetched, decompressed and
 * checked) into PF_SLOTS buffers ahead of the parser, which only copies
 * them out; on two cores the decompression no longer holds the parse up.
 * The thread alone calls the reader until pf_stop joins it. Reads are
 * sequential from offset 0; a failure is the reader's -errno, handed to
 * the parser at the offset where it happened.
 */
#define PF_SLOTS	4
#define PF_CHUNK	(1u << 20)

struct prefetch {
	struct ingest_reader *r;
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned char *buf[PF_SLOTS];
	ssize_t len[PF_SLOTS];	/* bytes, 0 at the end, -errno */
	int full[PF_SLOTS];
	size_t head, pos;	/* the parser's slot and place in it */
	int stop;
};

static void *pf_thread(void *arg)
{
	struct prefetch *pf = arg;
	uint64_t off = 0;

	for (size_t w = 0;; w = (w + 1) % PF_SLOTS) {
		ssize_t got = 0, n = 0;

		int stop;

		pthread_mutex_lock(&pf->mu);
		while (pf->full[w] && !pf->stop)
			pthread_cond_wait(&pf->cv, &pf->mu);
		stop = pf->stop;
		pthread_mutex_unlock(&pf->mu);
		if (stop)
			break;
		while ((size_t)n < PF_CHUNK &&
		       (got = pf->r->pread(pf->r->arg, pf->buf[w] + n, PF_CHUNK - (size_t)n,
					   off + (uint64_t)n)) > 0)
			n += got;
		off += (uint64_t)n;
		pthread_mutex_lock(&pf->mu);
		pf->len[w] = got < 0 && n == 0 ? got : n;
		pf->full[w] = 1;
		pthread_cond_broadcast(&pf->cv);
		pthread_mutex_unlock(&pf->mu);
		if (n == 0)		/* the end, or a failure: nothing after */
			break;
	}
	return NULL;
}

static void pf_free(struct prefetch *pf)
{
	for (size_t i = 0; i < PF_SLOTS; i++)
		free(pf->buf[i]);
	free(pf);
}

static void pf_stop(struct prefetch *pf)
{
	if (!pf)
		return;
	pthread_mutex_lock(&pf->mu);
	pf->stop = 1;
	pthread_cond_broadcast(&pf->cv);
	pthread_mutex_unlock(&pf->mu);
	pthread_join(pf->th, NULL);
	pthread_cond_destroy(&pf->cv);
	pthread_mutex_destroy(&pf->mu);
	pf_free(pf);
}

static int pf_start(struct prefetch **out, struct ingest_reader *r)
{
	struct prefetch *pf = calloc(1, sizeof(*pf));
	int ret;

	*out = NULL;
	if (!pf)
		return -ENOMEM;
	pf->r = r;
	for (size_t i = 0; i < PF_SLOTS; i++)
		if (!(pf->buf[i] = malloc(PF_CHUNK))) {
			pf_free(pf);
			return -ENOMEM;
		}
	pthread_mutex_init(&pf->mu, NULL);
	pthread_cond_init(&pf->cv, NULL);
	if ((ret = pthread_create(&pf->th, NULL, pf_thread, pf)) != 0) {
		pthread_cond_destroy(&pf->cv);
		pthread_mutex_destroy(&pf->mu);
		pf_free(pf);
		return -ret;
	}
	*out = pf;
	return 0;
}

/* Up to n bytes at the parser's place: > 0, 0 at the end, -errno. */
static ssize_t pf_read(struct prefetch *pf, unsigned char *dst, size_t n)
{
	size_t h = pf->head, k;
	ssize_t len;

	pthread_mutex_lock(&pf->mu);
	while (!pf->full[h])
		pthread_cond_wait(&pf->cv, &pf->mu);
	len = pf->len[h];
	pthread_mutex_unlock(&pf->mu);
	if (len <= 0)
		return len;	/* sticky: the slot stays full */
	k = MIN(n, (size_t)len - pf->pos);
	memcpy(dst, pf->buf[h] + pf->pos, k);
	if ((pf->pos += k) == (size_t)len) {
		pthread_mutex_lock(&pf->mu);
		pf->full[h] = 0;
		pthread_cond_broadcast(&pf->cv);
		pthread_mutex_unlock(&pf->mu);
		pf->head = (h + 1) % PF_SLOTS;
		pf->pos = 0;
	}
	return (ssize_t)k;
}

static int canon_fill(struct vcur *c)
{
	const struct qtable *t = c->vt->t;
	ssize_t got;
	int ret = 1;

	c->nrows = c->row = 0;
	for (;;) {
		while (c->bpos < c->blen && c->nrows < CANON_ROWS)
			if ((ret = canon_record(c, c->fed_end)) <= 0)
				break;
		if (ret < 0)
			return cur_error(c, ret, "%s", ret == -EIO ? c->why : strerror(-ret));
		if (c->nrows)
			return SQLITE_OK;
		if (c->fed_end && c->bpos >= c->blen) {
			c->eof = 1;
			return SQLITE_OK;
		}
		if (mono_ns() >= c->vt->q->deadline) {
			c->vt->q->timed_out = 1;
			return SQLITE_INTERRUPT;
		}
		if (!c->r) {
			c->off = 0;
			if ((ret = t->open(t->arg, 0, &c->r)) < 0 || !c->r) {
				c->r = NULL;
				return cur_error(c, ret < 0 ? ret : -EIO, "cannot open file 0: %s",
						 strerror(ret < 0 ? -ret : EIO));
			}
			/* a small table is read as it is: no thread */
			if (c->r->size > PF_CHUNK && pf_start(&c->pf, c->r) < 0)
				c->pf = NULL;
		}
		if (c->bpos)
			memmove(c->buf, c->buf + c->bpos, c->blen - c->bpos);
		c->blen -= c->bpos;
		c->bpos = 0;
		if (!c->bcap || c->bcap - 1 - c->blen < CHUNK / 2) {
			size_t cap = c->bcap ? c->bcap * 2 : CHUNK * 2 + 1;
			unsigned char *nb;

			if (cap > TABLE_FIELD_MAX * 2)
				return cur_error(c, -EIO, "line %llu: a record longer than %u MiB",
						 (unsigned long long)c->line + 1,
						 TABLE_FIELD_MAX >> 20);
			if (!(nb = realloc(c->buf, cap)))
				return cur_error(c, -ENOMEM, "out of memory");
			c->buf = nb;
			c->bcap = cap;
		}
		got = c->pf ? pf_read(c->pf, c->buf + c->blen, c->bcap - 1 - c->blen) :
		      c->r->pread(c->r->arg, c->buf + c->blen, c->bcap - 1 - c->blen, c->off);
		if (got < 0)
			return cur_error(c, (int)got, "cannot read file 0: %s",
					 strerror((int)-got));
		c->off += (uint64_t)got;
		c->blen += (size_t)got;
		c->buf[c->blen] = 0;
		c->fed_end = got == 0;
	}
}

/* Parse on until the chunk holds rows, or every file is read. */
static int cur_fill(struct vcur *c)
{
	const struct qtable *t = c->vt->t;
	size_t nfiles = t->nfiles;
	ssize_t got;
	int ret;

	if (!t->bronze)
		return canon_fill(c);
	c->nrows = c->row = 0;
	c->bytes.n = 0;
	for (;;) {
		if (c->r && c->fed_end) {
			cur_close_file(c);
			c->file++;
		}
		if (mono_ns() >= c->vt->q->deadline) {	/* skipping bad records */
			c->vt->q->timed_out = 1;
			return SQLITE_INTERRUPT;
		}
		if (!c->r) {
			if (c->file >= nfiles) {
				c->eof = 1;
				return SQLITE_OK;
			}
			c->off = 0;
			if ((ret = t->open(t->arg, c->file, &c->r)) < 0 || !c->r) {
				c->r = NULL;
				return cur_error(c, ret < 0 ? ret : -EIO,
						 "cannot open file %zu: %s", c->file,
						 strerror(ret < 0 ? -ret : EIO));
			}
		}
		got = c->r->pread(c->r->arg, c->chunk, CHUNK, c->off);
		if (got < 0)
			return cur_error(c, (int)got, "cannot read file %zu: %s",
					 c->file, strerror((int)-got));
		if (c->kind == K_NONE &&
		    (ret = cur_start_parser(c, c->chunk, (size_t)got)) < 0)
			return cur_error(c, ret, "%s", strerror(-ret));
		c->off += (uint64_t)got;
		c->err = 0;
		if (c->kind == K_CSV)
			ret = got ? csv_feed(c->csv, c->chunk, (size_t)got) : csv_finish(c->csv);
		else
			ret = got ? json_feed(c->json, c->chunk, (size_t)got) : json_finish(c->json);
		c->fed_end = got == 0;
		if (c->err < 0 || c->bytes.failed)
			return c->bytes.failed ? cur_error(c, -ENOMEM, "out of memory") :
			       cur_error(c, c->err, "%s", c->err == -EIO ? c->why :
					 strerror(-c->err));
		if (ret == -EINVAL && t->bronze) {
			c->fed_end = 1;		/* unusable: no rows from it */
			c->nrows = 0;
			c->bytes.n = 0;
		} else if (ret < 0) {
			return cur_error(c, ret, "%s", c->kind == K_CSV ?
					 csv_error(c->csv) : json_error(c->json));
		}
		if (c->nrows)
			return SQLITE_OK;
	}
}

/*
 * A plain decimal ([-+]digits[.digits], at most 15 digits) to the double
 * strtod would give, without strtod: an integer below 2^53 divided by a
 * power of ten up to 10^15 is one correctly rounded IEEE operation on two
 * exact operands. 0 when the text is anything else (strtod then).
 */
static int short_decimal(const char *p, int n, double *out)
{
	static const double p10[] = { 1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7,
				      1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14,
				      1e15 };
	int i = 0, neg = 0, digits = 0, frac = -1;
	uint64_t m = 0;
	double d;

	if (i < n && (p[i] == '-' || p[i] == '+'))
		neg = p[i++] == '-';
	for (; i < n; i++) {
		if (p[i] >= '0' && p[i] <= '9') {
			if (++digits > 15)
				return 0;
			m = m * 10 + (uint64_t)(p[i] - '0');
			frac += frac >= 0;
		} else if (p[i] == '.' && frac < 0) {
			frac = 0;
		} else {
			return 0;
		}
	}
	if (!digits)
		return 0;
	d = (double)m;
	if (frac > 0)
		d /= p10[frac];
	*out = neg ? -d : d;
	return 1;
}

/* A cell as SQLite gets it: silver and gold typed by the schema (a value
 * that does not parse as its type stays text), bronze text. */
static void cell_value(const struct vcur *c, size_t i, struct sval *v)
{
	const struct qtable *t = c->vt->t;
	const struct cell *cl;
	const char *p;
	char *end;

	memset(v, 0, sizeof(*v));
	if (i >= c->ncol) {		/* bronze's _file */
		v->type = SQLITE_INTEGER;
		v->i = (sqlite3_int64)c->file;
		return;
	}
	cl = &c->cells[c->row * c->ncol + i];
	if (cl->len < 0) {
		v->type = SQLITE_NULL;
		return;
	}
	p = (const char *)(t->bronze ? c->bytes.p : c->buf) + cl->off;
	v->type = SQLITE_TEXT;
	v->p = p;
	v->n = cl->len;
	if (t->bronze || !cl->len)
		return;
	switch (t->schema.cols[i].type) {
	case LT_INT:
		errno = 0;
		v->i = strtoll(p, &end, 10);
		if (!*end && !errno)
			v->type = SQLITE_INTEGER;
		break;
	case LT_FLOAT:
	case LT_DECIMAL:
		if (short_decimal(p, cl->len, &v->d)) {
			v->type = SQLITE_FLOAT;
			break;
		}
		v->d = strtod(p, &end);
		if (!*end)		/* NaN is NULL to SQLite */
			v->type = isnan(v->d) ? SQLITE_NULL : SQLITE_FLOAT;
		break;
	case LT_BOOL:
		if (!strcmp(p, "true") || !strcmp(p, "false")) {
			v->type = SQLITE_INTEGER;
			v->i = p[0] == 't';
		}
		break;
	default:
		break;
	}
}

static void result_sval(sqlite3_context *ctx, const struct sval *v)
{
	switch (v->type) {
	case SQLITE_INTEGER:
		sqlite3_result_int64(ctx, v->i);
		break;
	case SQLITE_FLOAT:
		sqlite3_result_double(ctx, v->d);
		break;
	case SQLITE_TEXT:
		sqlite3_result_text(ctx, v->p, v->n, SQLITE_TRANSIENT);
		break;
	default:
		sqlite3_result_null(ctx);
	}
}

/*
 * A grouped scan's encoding. Per value a type byte, then for INTEGER and
 * FLOAT 8 bytes, for TEXT a 4-byte length and the bytes. Keys are the
 * key columns' values so encoded, so equal bytes are values SQLite's GROUP
 * BY holds equal (BINARY collation, NULLs alike; a column's numbers are of
 * one type, -0.0 is written 0.0); the value part is the other columns
 * read, so encoded.
 */
static void enc_sval(struct gbuf *b, const struct sval *v, int key)
{
	size_t need = 13 + (v->type == SQLITE_TEXT ? (size_t)v->n : 0);
	unsigned char *p;
	double d = v->d;
	uint32_t n = (uint32_t)v->n;

	if (b->cap - b->n < need) {
		if (b->failed || grow_array((void **)&b->p, &b->cap, b->n + need, 1,
					    SIZE_MAX, NULL)) {
			b->failed = 1;
			return;
		}
	}
	p = (unsigned char *)b->p + b->n;
	*p++ = (unsigned char)v->type;
	if (v->type == SQLITE_INTEGER) {
		memcpy(p, &v->i, 8);
		p += 8;
	} else if (v->type == SQLITE_FLOAT) {
		if (key && d == 0)
			d = 0;
		memcpy(p, &d, 8);
		p += 8;
	} else if (v->type == SQLITE_TEXT) {
		memcpy(p, &n, 4);
		memcpy(p + 4, v->p, n);
		p += 4 + n;
	}
	b->n = (size_t)(p - (unsigned char *)b->p);
}

/* n values from [p, end); -EIO when they do not parse. */
static int dec_svals(const unsigned char *p, const unsigned char *end,
		     struct sval *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint32_t len;

		memset(&v[i], 0, sizeof(v[i]));
		if (p >= end)
			return -EIO;
		v[i].type = *p++;
		switch (v[i].type) {
		case SQLITE_NULL:
			break;
		case SQLITE_INTEGER:
		case SQLITE_FLOAT:
			if (end - p < 8)
				return -EIO;
			if (v[i].type == SQLITE_INTEGER)
				memcpy(&v[i].i, p, 8);
			else
				memcpy(&v[i].d, p, 8);
			p += 8;
			break;
		case SQLITE_TEXT:
			if (end - p < 4)
				return -EIO;
			memcpy(&len, p, 4);
			p += 4;
			if ((size_t)(end - p) < len || len > INT32_MAX)
				return -EIO;
			v[i].p = (const char *)p;
			v[i].n = (int)len;
			p += len;
			break;
		default:
			return -EIO;
		}
	}
	return 0;
}

/* idxStr "K,K,...;V,V,..." (see vt_best_index) into the cursor. */
static int group_plan(struct vcur *c, const char *s)
{
	size_t ncol = c->ncol + 1, nk = 0, nv = 0;
	int *list;
	char *end;

	c->kcol = calloc(ncol, sizeof(int));
	c->vcol = calloc(ncol, sizeof(int));
	c->cmap = malloc(ncol * sizeof(int));
	c->kv = calloc(ncol, sizeof(*c->kv));
	c->vv = calloc(ncol, sizeof(*c->vv));
	if (!c->kcol || !c->vcol || !c->cmap || !c->kv || !c->vv)
		return -ENOMEM;
	for (size_t i = 0; i < ncol; i++)
		c->cmap[i] = -1;
	for (list = c->kcol; *s; s = end) {
		long col;

		if (*s == ',' || *s == ';') {
			if (*s == ';')
				list = c->vcol;
			end = (char *)s + 1;
			continue;
		}
		col = strtol(s, &end, 10);
		if (end == s || col < 0 || (size_t)col >= ncol ||
		    (list == c->kcol ? nk : nv) >= ncol)
			return -EINVAL;
		if (list == c->kcol) {
			if (c->cmap[col] == -1)
				c->cmap[col] = (int)nk;
			c->kcol[nk++] = (int)col;
		} else {
			c->cmap[col] = -2 - (int)nv;
			c->vcol[nv++] = (int)col;
		}
	}
	c->nk = nk;
	c->nv = nv;
	return nk ? 0 : -EINVAL;
}

/* The grouped row after this one into kv and vv; eof at the end. */
static int group_next(struct vcur *c)
{
	const unsigned char *k, *v;
	size_t klen, vlen;
	int ret = gstore_next(c->gs, &k, &klen, &v, &vlen);

	if (ret == 0) {
		c->eof = 1;
		return SQLITE_OK;
	}
	if (ret > 0 && ((ret = dec_svals(k, k + klen, c->kv, c->nk)) < 0 ||
			(ret = dec_svals(v, v + vlen, c->vv, c->nv)) < 0))
		return cur_error(c, ret, "a grouped row does not decode");
	if (ret < 0)
		return cur_error(c, ret, "grouping: %s", strerror(-ret));
	return SQLITE_OK;
}

/*
 * Loading a grouped scan takes both cores: a scanner thread reads, parses
 * and encodes the rows into batches (GB_SLOTS of about GB_BYTES, a record
 * being a 4-byte key length, a 4-byte value length, the key, the value),
 * while the cursor's thread puts them into the gstore. The scanner alone
 * touches the cursor's scan state (reader, buffers, errors) until it is
 * joined; the cursor's thread alone touches the gstore. Either side's
 * failure stops both: the scanner ends its loop at `stop`, the cursor's
 * thread drains nothing more and joins.
 */
#define GB_SLOTS	4
#define GB_BYTES	(256u << 10)

struct gpipe {
	struct vcur *c;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct gbuf slot[GB_SLOTS];
	int full[GB_SLOTS];
	int done, stop;
	int rc;			/* the scanner's SQLite code */
};

static void *group_scanner(void *arg)
{
	struct gpipe *gp = arg;
	struct vcur *c = gp->c;
	struct sval v;
	size_t w = 0, hdr, klen;
	struct gbuf *b;
	int rc = SQLITE_OK;

	pthread_mutex_lock(&gp->mu);
	while (gp->full[w] && !gp->stop)
		pthread_cond_wait(&gp->cv, &gp->mu);
	pthread_mutex_unlock(&gp->mu);
	b = &gp->slot[w];
	b->n = 0;
	for (;;) {
		if ((rc = cur_fill(c)) != SQLITE_OK || c->eof)
			break;
		for (c->row = 0; c->row < c->nrows; c->row++) {
			uint32_t kl, vl;

			hdr = b->n;
			gbuf_add(b, "\0\0\0\0\0\0\0\0", 8);
			for (size_t i = 0; i < c->nk; i++) {
				cell_value(c, (size_t)c->kcol[i], &v);
				enc_sval(b, &v, 1);
			}
			klen = b->n - hdr - 8;
			for (size_t i = 0; i < c->nv; i++) {
				cell_value(c, (size_t)c->vcol[i], &v);
				enc_sval(b, &v, 0);
			}
			if (b->failed)
				break;
			kl = (uint32_t)klen;
			vl = (uint32_t)(b->n - hdr - 8 - klen);
			memcpy(b->p + hdr, &kl, 4);
			memcpy(b->p + hdr + 4, &vl, 4);
		}
		c->nrows = c->row = 0;
		if (b->failed) {
			rc = cur_error(c, -ENOMEM, "out of memory");
			break;
		}
		if (b->n < GB_BYTES)
			continue;
		pthread_mutex_lock(&gp->mu);	/* hand the batch over */
		gp->full[w] = 1;
		pthread_cond_broadcast(&gp->cv);
		w = (w + 1) % GB_SLOTS;
		while (gp->full[w] && !gp->stop)
			pthread_cond_wait(&gp->cv, &gp->mu);
		if (gp->stop) {
			pthread_mutex_unlock(&gp->mu);
			break;
		}
		pthread_mutex_unlock(&gp->mu);
		b = &gp->slot[w];
		b->n = 0;
	}
	pthread_mutex_lock(&gp->mu);
	if (rc == SQLITE_OK && !gp->stop && b->n)
		gp->full[w] = 1;
	gp->rc = rc;
	gp->done = 1;
	pthread_cond_broadcast(&gp->cv);
	pthread_mutex_unlock(&gp->mu);
	return NULL;
}

/* Every row of the table into the gstore, under its key. */
static int group_load(struct vcur *c, const char *plan)
{
	struct sqlq *q = c->vt->q;
	struct gpipe gp = { .c = c };
	uint64_t t0 = mono_ns(), rows, spilled, peak;
	size_t r = 0;
	pthread_t th;
	int ret = 0, rc;

	if ((ret = group_plan(c, plan)) < 0 ||
	    (ret = gstore_new(&c->gs, q->lim.memory, q->lim.tmp_dir)) < 0)
		return cur_error(c, ret, "grouping: %s", strerror(-ret));
	pthread_mutex_init(&gp.mu, NULL);
	pthread_cond_init(&gp.cv, NULL);
	if ((ret = -pthread_create(&th, NULL, group_scanner, &gp)) < 0) {
		rc = cur_error(c, ret, "grouping: cannot start a thread: %s",
			       strerror(-ret));
		goto out;
	}
	for (;;) {
		const unsigned char *p, *end;

		pthread_mutex_lock(&gp.mu);
		while (!gp.full[r] && !gp.done)
			pthread_cond_wait(&gp.cv, &gp.mu);
		if (!gp.full[r]) {		/* the scanner is done */
			pthread_mutex_unlock(&gp.mu);
			break;
		}
		pthread_mutex_unlock(&gp.mu);
		p = gp.slot[r].p;
		end = p + gp.slot[r].n;
		while (p < end && ret == 0) {
			uint32_t kl, vl;

			memcpy(&kl, p, 4);
			memcpy(&vl, p + 4, 4);
			ret = gstore_add(c->gs, p + 8, kl, p + 8 + kl, vl);
			p += 8 + (size_t)kl + vl;
		}
		pthread_mutex_lock(&gp.mu);
		gp.full[r] = 0;
		if (ret < 0)
			gp.stop = 1;
		pthread_cond_broadcast(&gp.cv);
		pthread_mutex_unlock(&gp.mu);
		if (ret < 0)
			break;
		r = (r + 1) % GB_SLOTS;
	}
	pthread_join(th, NULL);
	if (gp.rc != SQLITE_OK) {
		rc = gp.rc;
		goto out;
	}
	if (ret < 0) {
		rc = cur_error(c, ret, "grouping: %s", strerror(-ret));
		goto out;
	}
	gstore_stats(c->gs, &rows, &spilled, &peak);
	q->grouped += rows;
	q->spilled += spilled;
	log_debug("%s: %llu rows grouped in %.3f s (%llu bytes spilled, "
		  "%llu held at most)", c->vt->t->dep, (unsigned long long)rows,
		  (double)(mono_ns() - t0) / 1e9, (unsigned long long)spilled,
		  (unsigned long long)peak);
	c->eof = 0;
	rc = group_next(c);
out:
	for (size_t i = 0; i < GB_SLOTS; i++)
		free(gp.slot[i].p);
	pthread_cond_destroy(&gp.cv);
	pthread_mutex_destroy(&gp.mu);
	return rc;
}

static int vt_filter(sqlite3_vtab_cursor *base, int idxnum, const char *idxstr,
		     int argc, sqlite3_value **argv)
{
	struct vcur *c = (struct vcur *)base;

	(void)argc;
	(void)argv;
	cur_close_file(c);
	cur_group_reset(c);
	c->file = 0;
	c->eof = 0;
	c->rowid = 0;
	c->blen = c->bpos = 0;
	c->hdr_done = 0;
	c->line = 0;
	c->nneed = idxnum >> 1 ? MIN((size_t)(idxnum >> 1) - 1, c->ncol) : c->ncol;
	if ((idxnum & 1) && idxstr)
		return group_load(c, idxstr);
	return cur_fill(c);
}

static int vt_next(sqlite3_vtab_cursor *base)
{
	struct vcur *c = (struct vcur *)base;

	c->rowid++;
	if (c->gs)
		return group_next(c);
	if (++c->row < c->nrows)
		return SQLITE_OK;
	return cur_fill(c);
}

static int vt_eof(sqlite3_vtab_cursor *base)
{
	return ((struct vcur *)base)->eof;
}

static int vt_column(sqlite3_vtab_cursor *base, sqlite3_context *ctx, int i)
{
	struct vcur *c = (struct vcur *)base;
	struct sval v;

	if (c->gs) {
		int m = (size_t)i <= c->ncol ? c->cmap[i] : -1;

		if (m >= 0)
			result_sval(ctx, &c->kv[m]);
		else if (m <= -2)
			result_sval(ctx, &c->vv[-2 - m]);
		else
			sqlite3_result_null(ctx);
		return SQLITE_OK;
	}
	cell_value(c, (size_t)i, &v);
	result_sval(ctx, &v);
	return SQLITE_OK;
}

static int vt_rowid(sqlite3_vtab_cursor *base, sqlite3_int64 *rowid)
{
	*rowid = ((struct vcur *)base)->rowid;
	return SQLITE_OK;
}

static const sqlite3_module lakefs_module = {
	.iVersion = 1,
	.xCreate = vt_connect,
	.xConnect = vt_connect,
	.xBestIndex = vt_best_index,
	.xDisconnect = vt_disconnect,
	.xDestroy = vt_disconnect,
	.xOpen = vt_open,
	.xClose = vt_close,
	.xFilter = vt_filter,
	.xNext = vt_next,
	.xEof = vt_eof,
	.xColumn = vt_column,
	.xRowid = vt_rowid,
};

/* ---- the authorizer ---- */

static const char *action_name(int a)
{
	static const char *const names[] = {
		[SQLITE_CREATE_INDEX] = "CREATE INDEX",
		[SQLITE_CREATE_TABLE] = "CREATE TABLE",
		[SQLITE_CREATE_TEMP_INDEX] = "CREATE TEMP INDEX",
		[SQLITE_CREATE_TEMP_TABLE] = "CREATE TEMP TABLE",
		[SQLITE_CREATE_TEMP_TRIGGER] = "CREATE TEMP TRIGGER",
		[SQLITE_CREATE_TEMP_VIEW] = "CREATE TEMP VIEW",
		[SQLITE_CREATE_TRIGGER] = "CREATE TRIGGER",
		[SQLITE_CREATE_VIEW] = "CREATE VIEW",
		[SQLITE_DELETE] = "DELETE",
		[SQLITE_DROP_INDEX] = "DROP INDEX",
		[SQLITE_DROP_TABLE] = "DROP TABLE",
		[SQLITE_DROP_TEMP_INDEX] = "DROP TEMP INDEX",
		[SQLITE_DROP_TEMP_TABLE] = "DROP TEMP TABLE",
		[SQLITE_DROP_TEMP_TRIGGER] = "DROP TEMP TRIGGER",
		[SQLITE_DROP_TEMP_VIEW] = "DROP TEMP VIEW",
		[SQLITE_DROP_TRIGGER] = "DROP TRIGGER",
		[SQLITE_DROP_VIEW] = "DROP VIEW",
		[SQLITE_INSERT] = "INSERT",
		[SQLITE_PRAGMA] = "PRAGMA",
		[SQLITE_TRANSACTION] = "a transaction",
		[SQLITE_UPDATE] = "UPDATE",
		[SQLITE_ATTACH] = "ATTACH",
		[SQLITE_DETACH] = "DETACH",
		[SQLITE_ALTER_TABLE] = "ALTER TABLE",
		[SQLITE_REINDEX] = "REINDEX",
		[SQLITE_ANALYZE] = "ANALYZE",
		[SQLITE_CREATE_VTABLE] = "CREATE VIRTUAL TABLE",
		[SQLITE_DROP_VTABLE] = "DROP VIRTUAL TABLE",
		[SQLITE_SAVEPOINT] = "SAVEPOINT",
		[SQLITE_COPY] = "COPY",
	};

	if (a >= 0 && (size_t)a < ARRAY_SIZE(names) && names[a])
		return names[a];
	return "this statement";
}

/* Refuse; the message (and the name to find its position by) is kept
 * unless an earlier, not weak, refusal's is. */
__attribute__((format(printf, 4, 5)))
static int deny(struct sqlq *q, int weak, const char *at, const char *fmt, ...)
{
	va_list ap;

	if (!q->deny || (q->deny_weak && !weak)) {
		free(q->deny);
		free(q->deny_at);
		va_start(ap, fmt);
		q->deny = vfmt(fmt, ap);
		va_end(ap);
		q->deny_at = at ? strdup(at) : NULL;
		q->deny_weak = weak;
	}
	return SQLITE_DENY;
}

static struct qtable *find_table(const struct sqlq *q, const char *db,
				 const char *name)
{
	for (size_t i = 0; i < q->ntabs; i++)
		if (!strcasecmp(q->tabs[i]->db, db) &&
		    !strcasecmp(q->tabs[i]->sqlname, name))
			return q->tabs[i];
	return NULL;
}

static void note_dep(struct sqlq *q, const char *dep)
{
	char *d;

	for (size_t i = 0; i < q->ndeps; i++)
		if (!strcmp(q->deps[i], dep))
			return;
	if (grow_array((void **)&q->deps, &q->capdeps, q->ndeps + 1,
		       sizeof(*q->deps), SIZE_MAX, NULL) || !(d = strdup(dep))) {
		q->deps_failed = 1;
		return;
	}
	q->deps[q->ndeps++] = d;
}

static int authorize(void *arg, int action, const char *a3, const char *a4,
		     const char *db, const char *trigger)
{
	struct sqlq *q = arg;
	struct qtable *t;

	(void)trigger;
	if (q->setup)
		return SQLITE_OK;
	switch (action) {
	case SQLITE_SELECT:
	case SQLITE_RECURSIVE:
		return SQLITE_OK;
	case SQLITE_FUNCTION:
		if (a4 && (!strcasecmp(a4, "load_extension") ||
			   !strcasecmp(a4, "fts3_tokenizer")))
			return deny(q, 0, a4, "function %s() is not allowed "
				    "in a query", a4);
		return SQLITE_OK;
	case SQLITE_READ:
		if (a3 && !db)
			return SQLITE_OK;	/* a common table expression's column */
		if (!a3)
			break;
		if ((t = find_table(q, db, a3))) {
			if (q->recording)
				note_dep(q, t->dep);
			return SQLITE_OK;
		}
		if (!strcmp(db, "main") && (!strcmp(a3, "json_each") ||
					    !strcmp(a3, "json_tree")))
			return SQLITE_OK;
		return deny(q, 0, a3, "cannot read %s.%s: a query reads only lakefs "
			    "tables (silver.T, gold.T, bronze.T, CAT.silver.T)",
			    db, a3);
	default:
		break;
	}
	return deny(q, a3 && !strncmp(a3, "sqlite_", 7), NULL,
		    "%s is not allowed: a query is one read-only SELECT",
		    action_name(action));
}

static int progress(void *arg)
{
	struct sqlq *q = arg;

	if (mono_ns() < q->deadline)
		return 0;
	q->timed_out = 1;
	return 1;
}

/* ---- creating, declaring ---- */

static pthread_mutex_t tmpdir_lock = PTHREAD_MUTEX_INITIALIZER;

static void set_tmp_dir(const char *dir)
{
	pthread_mutex_lock(&tmpdir_lock);
	if (!sqlite3_temp_directory)
		sqlite3_temp_directory = sqlite3_mprintf("%s", dir);
	else if (strcmp(sqlite3_temp_directory, dir))
		log_warn("sqlq: spill files stay in %s, not %s (SQLite's temporary "
			 "directory is set once per process)",
			 sqlite3_temp_directory, dir);
	pthread_mutex_unlock(&tmpdir_lock);
}

int sqlq_new(struct sqlq **out, const struct sqlq_limits *lim, char **err)
{
	struct sqlq *q;
	char sql[256];
	int ret, rc, v = 0;
	long long kib;

	*out = NULL;
	if (!(q = calloc(1, sizeof(*q))))
		return fail(err, -ENOMEM, "out of memory");
	if (lim)
		q->lim = *lim;
	if (!q->lim.timeout_ms)
		q->lim.timeout_ms = 60000;
	if (!q->lim.memory)
		q->lim.memory = 64u << 20;
	if (q->lim.tmp_dir && *q->lim.tmp_dir)
		set_tmp_dir(q->lim.tmp_dir);
	rc = sqlite3_open_v2(":memory:", &q->db, SQLITE_OPEN_READWRITE |
			     SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		ret = fail(err, rc == SQLITE_NOMEM ? -ENOMEM : -EIO, "sqlite: %s",
			   q->db ? sqlite3_errmsg(q->db) : sqlite3_errstr(rc));
		goto fail;
	}
	sqlite3_db_config(q->db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, &v);
	sqlite3_db_config(q->db, SQLITE_DBCONFIG_DEFENSIVE, 1, &v);
	sqlite3_db_config(q->db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 0, &v);
	sqlite3_db_config(q->db, SQLITE_DBCONFIG_ENABLE_VIEW, 0, &v);
	sqlite3_db_config(q->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, &v);
	sqlite3_limit(q->db, SQLITE_LIMIT_LENGTH,
		      (int)MAX(1u << 20, MIN(q->lim.memory, VALUE_MAX)));
	sqlite3_limit(q->db, SQLITE_LIMIT_SQL_LENGTH, 4 * SQL_MAX);
	rc = sqlite3_create_module_v2(q->db, "lakefs", &lakefs_module, q, NULL);
	if (rc != SQLITE_OK) {
		ret = fail(err, -ENOMEM, "sqlite: %s", sqlite3_errmsg(q->db));
		goto fail;
	}
	sqlite3_set_authorizer(q->db, authorize, q);
	kib = (long long)MAX(q->lim.memory / 1024, 64);
	snprintf(sql, sizeof(sql),
		 "PRAGMA main.cache_size = -%lld; PRAGMA temp.cache_size = -%lld;"
		 "PRAGMA temp_store = FILE; PRAGMA threads = 2;"
		 "ATTACH ':memory:' AS silver;"
		 "ATTACH ':memory:' AS gold; ATTACH ':memory:' AS bronze;"
		 "SELECT * FROM json_each('[]'), json_tree('[]');",
		 kib, kib);
	if ((ret = exec(q, sql, err)) < 0)
		goto fail;
	*out = q;
	return 0;
fail:
	sqlq_free(q);
	return ret;
}

static void table_free(struct qtable *t)
{
	if (!t)
		return;
	free(t->catalog);
	free(t->layer);
	free(t->name);
	free(t->db);
	free(t->sqlname);
	free(t->dep);
	lt_schema_free(&t->schema);
	free(t);
}

static void deps_clear(struct sqlq *q)
{
	for (size_t i = 0; i < q->ndeps; i++)
		free(q->deps[i]);
	q->ndeps = 0;
	q->deps_failed = 0;
}

void sqlq_free(struct sqlq *q)
{
	if (!q)
		return;
	sqlite3_finalize(q->st);
	sqlite3_close_v2(q->db);
	for (size_t i = 0; i < q->ntabs; i++)
		table_free(q->tabs[i]);
	free(q->tabs);
	for (size_t i = 0; i < q->ncats; i++)
		free(q->cats[i]);
	free(q->cats);
	deps_clear(q);
	free(q->deps);
	free(q->deny);
	free(q->deny_at);
	free(q->edits);
	free(q);
}

static int name_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (!n || n > LT_NAME_MAX || utf8_invalid_at(s, n) != n)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 0;
	return 1;
}

static int find_catalog(const struct sqlq *q, const char *s, size_t n)
{
	for (size_t i = 0; i < q->ncats; i++)
		if (strlen(q->cats[i]) == n && !strncasecmp(q->cats[i], s, n))
			return (int)i;
	return -1;
}

static int attach_catalog(struct sqlq *q, const char *cat)
{
	struct gbuf b = { 0 };
	char **cats;
	int ret;

	if (find_catalog(q, cat, strlen(cat)) >= 0)
		return 0;
	if (q->ncats >= MAX_CATALOGS)
		return -E2BIG;
	if (!(cats = realloc(q->cats, (q->ncats + 1) * sizeof(*cats))))
		return -ENOMEM;
	q->cats = cats;
	gbuf_add(&b, "ATTACH ':memory:' AS ", 21);
	gbuf_add_quoted(&b, '"', cat, strlen(cat));
	if (b.failed || !(q->cats[q->ncats] = strdup(cat))) {
		free(b.p);
		return -ENOMEM;
	}
	ret = exec(q, (const char *)b.p, NULL);
	free(b.p);
	if (ret < 0) {
		free(q->cats[q->ncats]);
		return ret;
	}
	q->ncats++;
	return 0;
}

int sqlq_add_table(struct sqlq *q, const struct sqlq_table *t)
{
	const char *cat = t->catalog && *t->catalog ? t->catalog : NULL;
	struct qtable *nt = NULL;
	struct gbuf b = { 0 };
	int ret = -ENOMEM;
	char *dep = NULL;

	if (!t->layer || !is_layer(t->layer, strlen(t->layer)) || !name_ok(t->name) ||
	    (cat && (!name_ok(cat) || is_layer(cat, strlen(cat)) ||
		     !strcasecmp(cat, "main") || !strcasecmp(cat, "temp"))) ||
	    !t->schema || !t->open || t->schema->n > LT_MAX_COLUMNS ||
	    (!t->schema->n && strcmp(t->layer, "bronze")))
		return -EINVAL;
	if (asprintf(&dep, "%s%s%s.%s", cat ? cat : "", cat ? "." : "", t->layer,
		     t->name) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < q->ntabs; i++)
		if (!strcasecmp(q->tabs[i]->dep, dep)) {
			free(dep);
			return -EEXIST;
		}
	if (!(nt = calloc(1, sizeof(*nt))) ||
	    grow_array((void **)&q->tabs, &q->captabs, q->ntabs + 1,
		       sizeof(*q->tabs), SIZE_MAX, NULL))
		goto fail;
	nt->dep = dep;
	dep = NULL;
	nt->layer = strdup(t->layer);
	nt->name = strdup(t->name);
	nt->catalog = cat ? strdup(cat) : NULL;
	nt->db = strdup(cat ? cat : t->layer);
	if (cat)
		ret = asprintf(&nt->sqlname, "%s.%s", t->layer, t->name) < 0 ? -ENOMEM : 0;
	else
		nt->sqlname = strdup(t->name);
	if (!nt->layer || !nt->name || (cat && !nt->catalog) || !nt->db ||
	    !nt->sqlname || lt_schema_copy(&nt->schema, t->schema) < 0) {
		ret = -ENOMEM;
		goto fail;
	}
	nt->bronze = !strcmp(t->layer, "bronze");
	nt->open = t->open;
	nt->close = t->close;
	nt->nfiles = t->nfiles;
	nt->arg = t->arg;
	if (cat && (ret = attach_catalog(q, cat)) < 0)
		goto fail;
	q->tabs[q->ntabs++] = nt;
	gbuf_add(&b, "CREATE VIRTUAL TABLE ", 21);
	gbuf_add_quoted(&b, '"', nt->db, strlen(nt->db));
	gbuf_add(&b, ".", 1);
	gbuf_add_quoted(&b, '"', nt->sqlname, strlen(nt->sqlname));
	gbuf_printf(&b, " USING lakefs(%zu)", q->ntabs - 1);
	ret = b.failed ? -ENOMEM : exec(q, (const char *)b.p, NULL);
	free(b.p);
	if (ret < 0) {
		q->ntabs--;
		goto fail;
	}
	return 0;
fail:
	free(dep);
	table_free(nt);
	return ret;
}

/* ---- the query text: names and positions ---- */

enum { T_END, T_SPACE, T_IDENT, T_QIDENT, T_DOT, T_SEMI, T_OTHER };

struct tok {
	int kind;
	size_t b, e;
};

static int ident_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '_' || c == '$' || c >= 0x80;
}

/* The token at *pos (SQLite's lexical rules, close enough for names). */
static struct tok next_tok(const char *s, size_t n, size_t *pos)
{
	struct tok t = { T_OTHER, *pos, *pos };
	size_t i = *pos;
	char close;

	if (i >= n) {
		t.kind = T_END;
		return t;
	}
	if (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r' ||
	    s[i] == '\f' || s[i] == '\v') {
		while (i < n && strchr(" \t\n\r\f\v", s[i]))
			i++;
		t.kind = T_SPACE;
	} else if (s[i] == '-' && i + 1 < n && s[i + 1] == '-') {
		while (i < n && s[i] != '\n')
			i++;
		t.kind = T_SPACE;
	} else if (s[i] == '/' && i + 1 < n && s[i + 1] == '*') {
		for (i += 2; i < n && !(s[i] == '*' && i + 1 < n && s[i + 1] == '/'); i++)
			;
		i = MIN(i + 2, n);
		t.kind = T_SPACE;
	} else if (s[i] == '\'' || s[i] == '"' || s[i] == '`' || s[i] == '[') {
		close = s[i] == '[' ? ']' : s[i];
		for (i++; i < n; i++) {
			if (s[i] != close)
				continue;
			if (close != ']' && i + 1 < n && s[i + 1] == close) {
				i++;
				continue;
			}
			break;
		}
		i = MIN(i + 1, n);
		t.kind = s[t.b] == '\'' ? T_OTHER : T_QIDENT;
	} else if (ident_char((unsigned char)s[i])) {
		while (i < n && ident_char((unsigned char)s[i]))
			i++;
		t.kind = T_IDENT;
	} else {
		t.kind = s[i] == '.' ? T_DOT : s[i] == ';' ? T_SEMI : T_OTHER;
		i++;
	}
	t.e = i;
	*pos = i;
	return t;
}

/* An identifier token's name, unquoted, into b. */
static void tok_name(const char *s, const struct tok *t, struct gbuf *b)
{
	const char *p = s + t->b;
	size_t n = t->e - t->b;
	char q;

	if (t->kind == T_IDENT) {
		gbuf_add(b, p, n);
		return;
	}
	q = p[0] == '[' ? ']' : p[0];
	p++;
	n = n >= 2 && p[n - 2] == q ? n - 2 : n - 1;
	for (size_t i = 0; i < n; i++) {
		gbuf_add(b, p + i, 1);
		if (p[i] == q && q != ']' && i + 1 < n && p[i + 1] == q)
			i++;
	}
}

/* A user offset from one in the rewritten text. */
static size_t user_offset(const struct sqlq *q, size_t o)
{
	size_t u = o;

	for (size_t i = 0; i < q->nedits; i++) {
		const struct edit *e = &q->edits[i];

		if (o < e->rb)
			break;
		if (o < e->re)
			return e->ub;
		u = o - e->re + e->ue;
	}
	return MIN(u, q->user_len);
}

/* *err = "line L, column C: msg" for a user offset. */
static int fail_at(const struct sqlq *q, char **err, int code, size_t off,
		   const char *msg)
{
	size_t line = 1, col = 1;

	for (size_t i = 0; i < off && i < q->user_len; i++) {
		if (q->user[i] == '\n') {
			line++;
			col = 1;
		} else if (((unsigned char)q->user[i] & 0xc0) != 0x80) {
			col++;
		}
	}
	return fail(err, code, "line %zu, column %zu: %s", line, col, msg);
}

static int add_edit(struct sqlq *q, size_t rb, size_t re, size_t ub, size_t ue)
{
	if (grow_array((void **)&q->edits, &q->capedits, q->nedits + 1,
		       sizeof(*q->edits), SIZE_MAX, NULL))
		return -ENOMEM;
	q->edits[q->nedits++] = (struct edit){ rb, re, ub, ue };
	return 0;
}

/*
 * The query with CAT.layer.T as "CAT"."layer.T", into out; the edits
 * noted. -EINVAL with *err for an unknown catalog, -ENOMEM.
 */
static int rewrite(struct sqlq *q, struct gbuf *out, char **err)
{
	const char *s = q->user;
	size_t n = q->user_len, pos = 0, copied = 0;
	struct tok w[6] = { { T_END, 0, 0 } };	/* the last significant tokens */
	struct gbuf nm = { 0 };
	int ret = 0;

	q->nedits = 0;
	for (;;) {
		struct tok t = next_tok(s, n, &pos);
		size_t rb;
		int cat;

		if (t.kind == T_SPACE)
			continue;
		if (t.kind == T_END)
			break;
		memmove(w, w + 1, 5 * sizeof(*w));
		w[5] = t;
		if (!((w[5].kind == T_IDENT || w[5].kind == T_QIDENT) &&
		      w[4].kind == T_DOT &&
		      (w[3].kind == T_IDENT || w[3].kind == T_QIDENT) &&
		      w[2].kind == T_DOT &&
		      (w[1].kind == T_IDENT || w[1].kind == T_QIDENT) &&
		      w[0].kind != T_DOT))
			continue;
		nm.n = 0;
		tok_name(s, &w[3], &nm);
		if (nm.failed || !is_layer((const char *)nm.p, nm.n))
			continue;
		nm.n = 0;
		tok_name(s, &w[1], &nm);
		if (nm.failed) {
			ret = -ENOMEM;
			break;
		}
		cat = find_catalog(q, (const char *)nm.p, nm.n);
		if (cat < 0) {
			char *msg = NULL;

			if (is_layer((const char *)nm.p, nm.n) ||
			    (nm.n == 4 && (!strncasecmp((const char *)nm.p, "main", 4) ||
					   !strncasecmp((const char *)nm.p, "temp", 4))))
				continue;	/* schema.table.column */
			if (asprintf(&msg, "no such table: %.*s.%.*s", (int)nm.n,
				     (const char *)nm.p, (int)(w[5].e - w[3].b),
				     s + w[3].b) < 0) {
				ret = -ENOMEM;
				break;
			}
			ret = fail_at(q, err, -EINVAL, w[1].b, msg);
			free(msg);
			break;
		}
		gbuf_add(out, s + copied, w[1].b - copied);
		rb = out->n;
		gbuf_add_quoted(out, '"', q->cats[cat], strlen(q->cats[cat]));
		gbuf_add(out, ".", 1);
		nm.n = 0;
		tok_name(s, &w[3], &nm);
		for (size_t i = 0; i < nm.n; i++)	/* the layer, lowercase */
			nm.p[i] = (unsigned char)(nm.p[i] | 0x20);
		gbuf_add(&nm, ".", 1);
		tok_name(s, &w[5], &nm);
		gbuf_add_quoted(out, '"', (const char *)nm.p, nm.n);
		if ((ret = add_edit(q, rb, out->n, w[1].b, w[5].e)) < 0)
			break;
		copied = w[5].e;
		w[5].kind = T_OTHER;	/* not the start of another match */
	}
	gbuf_add(out, s + copied, n - copied);
	free(nm.p);
	if (!ret && (out->failed || nm.failed))
		ret = -ENOMEM;
	return ret;
}

/*
 * Where the rewritten text names name ("T", "db.T" or "CAT.silver.T", as
 * SQLite's messages spell names): the offset of the first identifier
 * starting a match of up to three dotted identifiers, or -1.
 */
static long find_name(const char *s, size_t n, const char *name)
{
	struct gbuf b = { 0 };
	size_t pos = 0, want = strlen(name);
	long found = -1;

	while (found < 0) {
		struct tok t = next_tok(s, n, &pos), u;
		size_t p2 = pos;

		if (t.kind == T_END)
			break;
		if (t.kind != T_IDENT && t.kind != T_QIDENT)
			continue;
		b.n = 0;
		tok_name(s, &t, &b);
		for (int parts = 1; parts <= 3 && !b.failed; parts++) {
			if (b.n == want && !strncasecmp((const char *)b.p, name, want)) {
				found = (long)t.b;
				break;
			}
			do
				u = next_tok(s, n, &p2);
			while (u.kind == T_SPACE);
			if (u.kind != T_DOT)
				break;
			do
				u = next_tok(s, n, &p2);
			while (u.kind == T_SPACE);
			if (u.kind != T_IDENT && u.kind != T_QIDENT)
				break;
			gbuf_add(&b, ".", 1);
			tok_name(s, &u, &b);
		}
	}
	free(b.p);
	return found;
}

/* The first token of the tail that is not space, ';' or a comment. */
static const char *tail_stmt(const char *tail)
{
	size_t n = strlen(tail), pos = 0;
	struct tok t;

	do
		t = next_tok(tail, n, &pos);
	while (t.kind == T_SPACE || t.kind == T_SEMI);
	return t.kind == T_END ? NULL : tail + t.b;
}

/* ---- prepare ---- */

/*
 * SQLite asks about a write to sqlite_master before the statement's own
 * action (CREATE TABLE inserts a row there first), and a table-valued
 * function's first use registers it there: tell which by the first word.
 */
static void weak_reason(const char *sql, char *buf, size_t cap)
{
	static const char *const verbs[] = {
		"CREATE", "DROP", "ALTER", "INSERT", "REPLACE", "UPDATE",
		"DELETE", "REINDEX", "VACUUM",
	};
	size_t n = strlen(sql), pos = 0;
	struct tok t;

	do
		t = next_tok(sql, n, &pos);
	while (t.kind == T_SPACE);
	for (size_t i = 0; t.kind == T_IDENT && i < ARRAY_SIZE(verbs); i++)
		if (t.e - t.b == strlen(verbs[i]) &&
		    !strncasecmp(sql + t.b, verbs[i], t.e - t.b)) {
			snprintf(buf, cap, "%s is not allowed: a query is one "
				 "read-only SELECT", verbs[i]);
			return;
		}
	snprintf(buf, cap, "this table-valued function is not allowed: a query "
		 "reads lakefs tables, json_each and json_tree");
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int sqlq_prepare(struct sqlq *q, const char *sql, char **err)
{
	struct gbuf rw = { 0 };
	const char *tail = NULL, *more;
	char why[128];
	int rc, off, ret;

	sqlite3_finalize(q->st);
	q->st = NULL;
	deps_clear(q);
	free(q->deny);
	free(q->deny_at);
	q->deny = q->deny_at = NULL;
	q->deny_weak = 0;
	q->user = sql;
	q->user_len = strlen(sql);
	if (q->user_len > SQL_MAX) {
		ret = fail(err, -EINVAL, "the query is %zu bytes, more than the "
			   "limit of %u", q->user_len, SQL_MAX);
		goto out;
	}
	if ((ret = rewrite(q, &rw, err)) < 0) {
		if (ret == -ENOMEM)
			fail(err, ret, "out of memory");
		goto out;
	}
	q->recording = 1;
	rc = sqlite3_prepare_v3(q->db, (const char *)rw.p, (int)rw.n, 0, &q->st, &tail);
	q->recording = 0;
	if (rc != SQLITE_OK) {
		const char *msg = q->deny ? q->deny : sqlite3_errmsg(q->db);

		if (q->deny_weak) {
			weak_reason(sql, why, sizeof(why));
			msg = why;
		}

		ret = rc == SQLITE_NOMEM ? -ENOMEM : -EINVAL;
		off = sqlite3_error_offset(q->db);
		if (off < 0 && q->deny_at)
			off = (int)find_name((const char *)rw.p, rw.n, q->deny_at);
		else if (off < 0 && !q->deny && !strncmp(msg, "no such table: ", 15))
			off = (int)find_name((const char *)rw.p, rw.n, msg + 15);
		if (off >= 0)
			fail_at(q, err, ret, user_offset(q, (size_t)off), msg);
		else
			fail(err, ret, "%s", msg);
		goto out;
	}
	ret = -EINVAL;
	if (!q->st) {
		fail(err, ret, "the query is empty");
		goto out;
	}
	if (tail && (more = tail_stmt(tail))) {
		fail_at(q, err, ret, user_offset(q, (size_t)(more - (const char *)rw.p)),
			"only one statement is allowed in a query");
		goto out;
	}
	if (!sqlite3_stmt_readonly(q->st)) {
		fail(err, ret, "only a read-only SELECT is allowed in a query");
		goto out;
	}
	if (q->deps_failed) {
		ret = fail(err, -ENOMEM, "out of memory");
		goto out;
	}
	if (q->ndeps)
		qsort(q->deps, q->ndeps, sizeof(*q->deps), cmp_str);
	ret = 0;
out:
	if (ret < 0) {
		sqlite3_finalize(q->st);
		q->st = NULL;
		deps_clear(q);
	}
	q->user = NULL;
	q->user_len = 0;
	free(rw.p);
	return ret;
}

const char *const *sqlq_deps(const struct sqlq *q, size_t *n)
{
	*n = q->ndeps;
	return (const char *const *)q->deps;
}

size_t sqlq_ncols(const struct sqlq *q)
{
	return q->st ? (size_t)sqlite3_column_count(q->st) : 0;
}

const char *sqlq_col_name(const struct sqlq *q, size_t i)
{
	const char *n = q->st ? sqlite3_column_name(q->st, (int)i) : NULL;

	return n ? n : "";
}

/* ---- run ---- */

struct out {
	struct gbuf csv, jsonl, num;
	const struct ingest_writer *wc, *wj;
};

static int out_flush(struct out *o, int force)
{
	int ret = 0;

	if (o->csv.failed || o->jsonl.failed || o->num.failed)
		return -ENOMEM;
	if ((force || o->csv.n >= FLUSH_AT) && o->csv.n) {
		if (o->wc && o->wc->write)
			ret = o->wc->write(o->wc->arg, o->csv.p, o->csv.n);
		o->csv.n = 0;
	}
	if (!ret && (force || o->jsonl.n >= FLUSH_AT) && o->jsonl.n) {
		if (o->wj && o->wj->write)
			ret = o->wj->write(o->wj->arg, o->jsonl.p, o->jsonl.n);
		o->jsonl.n = 0;
	}
	return ret;
}

static void csv_text(struct gbuf *b, const char *p, size_t n)
{
	int quote = n == 0;

	for (size_t i = 0; i < n && !quote; i++)
		quote = p[i] == ',' || p[i] == '"' || p[i] == '\r' || p[i] == '\n';
	if (quote)
		gbuf_add_quoted(b, '"', p, n);
	else
		gbuf_add(b, p, n);
}

/* Text as our CSV parser takes it back: a NUL byte or invalid UTF-8
 * becomes U+FFFD (as lt_json_quote does). */
static void text_clean(struct gbuf *b, const unsigned char *p, size_t n)
{
	b->n = 0;
	while (n) {
		size_t ok = utf8_invalid_at(p, n);
		const unsigned char *z = memchr(p, 0, ok);

		if (z)
			ok = (size_t)(z - p);
		gbuf_add(b, p, ok);
		if (ok == n)
			break;
		gbuf_add(b, "\xef\xbf\xbd", 3);
		p += ok + 1;
		n -= ok + 1;
	}
}

/* One value of the current row to both buffers; its type into *ty. */
static void out_value(struct out *o, sqlite3_stmt *st, int i, int ncol,
		      enum lt_type *ty)
{
	char buf[64];
	const unsigned char *p;
	size_t n;
	double d;

	switch (sqlite3_column_type(st, i)) {
	case SQLITE_INTEGER:
		n = (size_t)snprintf(buf, sizeof(buf), "%lld",
				     (long long)sqlite3_column_int64(st, i));
		gbuf_add(&o->csv, buf, n);
		gbuf_add(&o->jsonl, buf, n);
		*ty = lt_widen(*ty, LT_INT);
		return;
	case SQLITE_FLOAT:
		d = sqlite3_column_double(st, i);
		*ty = lt_widen(*ty, LT_FLOAT);
		if (!isfinite(d))
			break;
		/* the shortest text that reads back to the same double */
		for (int prec = 15; prec <= 17; prec++) {
			n = (size_t)snprintf(buf, sizeof(buf), "%.*g", prec, d);
			if (strtod(buf, NULL) == d)
				break;
		}
		o->num.n = 0;
		lt_normalize(LT_FLOAT, buf, n, &o->num);
		gbuf_add(&o->csv, o->num.p, o->num.n);
		gbuf_add(&o->jsonl, o->num.p, o->num.n);
		return;
	case SQLITE_TEXT:
		p = sqlite3_column_text(st, i);
		n = (size_t)sqlite3_column_bytes(st, i);
		if (!p) {
			o->csv.failed = 1;
			return;
		}
		if (utf8_invalid_at(p, n) != n || memchr(p, 0, n)) {
			text_clean(&o->num, p, n);
			p = o->num.p;
			n = o->num.n;
		}
		csv_text(&o->csv, (const char *)p, n);
		lt_json_quote(&o->jsonl, (const char *)p, n);
		*ty = LT_STRING;
		return;
	case SQLITE_BLOB:
		p = sqlite3_column_blob(st, i);
		n = (size_t)sqlite3_column_bytes(st, i);
		o->num.n = 0;
		gbuf_add(&o->num, "\"", 1);
		for (size_t k = 0; k < n; k++)
			gbuf_printf(&o->num, "%02x", p[k]);
		gbuf_add(&o->num, "\"", 1);
		if (n)
			gbuf_add(&o->csv, o->num.p + 1, o->num.n - 2);
		else
			gbuf_add(&o->csv, "\"\"", 2);
		gbuf_add(&o->jsonl, o->num.p, o->num.n);
		*ty = LT_STRING;
		return;
	default:
		break;
	}
	if (ncol == 1)		/* not an empty line: that is no row */
		gbuf_add(&o->csv, "\"\"", 2);
	gbuf_add(&o->jsonl, "null", 4);
}

static int run_error(struct sqlq *q, int rc, char **err)
{
	const char *msg = sqlite3_errmsg(q->db);

	if (q->timed_out)
		return fail(err, -ETIMEDOUT, "query ran past its time limit of %llu ms",
			    (unsigned long long)q->lim.timeout_ms);
	if (q->io_err)
		return fail(err, -EIO, "%s", msg);
	switch (rc & 0xff) {
	case SQLITE_NOMEM:
		return fail(err, -ENOMEM, "query ran out of memory (%s; limit %llu "
			    "bytes of cache)", msg, (unsigned long long)q->lim.memory);
	case SQLITE_TOOBIG:
		return fail(err, -ENOMEM, "%s (one value may hold at most %d bytes)",
			    msg, sqlite3_limit(q->db, SQLITE_LIMIT_LENGTH, -1));
	case SQLITE_FULL:
		return fail(err, -ENOSPC, "query spill files: %s", msg);
	case SQLITE_IOERR:
	case SQLITE_CANTOPEN:
		return fail(err, -EIO, "query spill files: %s", msg);
	default:
		return fail(err, -EINVAL, "%s", msg);
	}
}

int sqlq_run(struct sqlq *q, const struct ingest_writer *csv,
	     const struct ingest_writer *jsonl, struct sqlq_result *res, char **err)
{
	struct out o = { .wc = csv, .wj = jsonl };
	struct gbuf keys = { 0 };	/* each column's "name": */
	const char **raw = NULL;
	size_t *lens = NULL, *koff = NULL, ncol = 0;
	char **names = NULL;
	enum lt_type *ty = NULL;
	int rc, ret;

	memset(res, 0, sizeof(*res));
	if (!q->st)
		return fail(err, -EINVAL, "no query is prepared");
	sqlite3_reset(q->st);
	q->timed_out = 0;
	q->io_err = 0;
	ncol = (size_t)sqlite3_column_count(q->st);
	raw = calloc(ncol + 1, sizeof(*raw));
	lens = calloc(ncol + 1, sizeof(*lens));
	koff = calloc(ncol + 1, sizeof(*koff));
	ty = calloc(ncol + 1, sizeof(*ty));
	ret = -ENOMEM;
	if (!raw || !lens || !koff || !ty)
		goto nomem;
	for (size_t i = 0; i < ncol; i++) {
		if (!(raw[i] = sqlite3_column_name(q->st, (int)i)))
			goto nomem;
		lens[i] = strlen(raw[i]);
	}
	if ((ret = lt_header_names(raw, lens, ncol, &names)) < 0) {
		if (ret == -E2BIG)
			ret = fail(err, -EINVAL, "the query has more than %d columns",
				   LT_MAX_COLUMNS);
		goto nomem;
	}
	for (size_t i = 0; i < ncol; i++) {
		size_t n = strlen(names[i]);

		if (i)
			gbuf_add(&o.csv, ",", 1);
		csv_text(&o.csv, names[i], n);
		koff[i] = keys.n;
		lt_json_quote(&keys, names[i], n);
		gbuf_add(&keys, ":", 1);
	}
	koff[ncol] = keys.n;
	gbuf_add(&o.csv, "\n", 1);
	if (keys.failed)
		goto nomem;
	q->deadline = mono_ns() + q->lim.timeout_ms * 1000000ull;
	q->grouped = q->spilled = 0;
	sqlite3_progress_handler(q->db, PROGRESS_STEPS, progress, q);
	while ((rc = sqlite3_step(q->st)) == SQLITE_ROW) {
		gbuf_add(&o.jsonl, "{", 1);
		for (size_t i = 0; i < ncol; i++) {
			if (i) {
				gbuf_add(&o.csv, ",", 1);
				gbuf_add(&o.jsonl, ",", 1);
			}
			gbuf_add(&o.jsonl, keys.p + koff[i], koff[i + 1] - koff[i]);
			out_value(&o, q->st, (int)i, (int)ncol, &ty[i]);
		}
		gbuf_add(&o.csv, "\n", 1);
		gbuf_add(&o.jsonl, "}\n", 2);
		res->rows++;
		if ((ret = out_flush(&o, 0)) < 0)
			goto wfail;
	}
	sqlite3_progress_handler(q->db, 0, NULL, NULL);
	res->grouped = q->grouped;
	res->spilled = q->spilled;
	if (rc != SQLITE_DONE) {
		ret = run_error(q, rc, err);
		goto out;
	}
	if ((ret = out_flush(&o, 1)) < 0)
		goto wfail;
	ret = -ENOMEM;
	if (!(res->schema.cols = calloc(ncol ? ncol : 1, sizeof(*res->schema.cols))))
		goto nomem;
	for (size_t i = 0; i < ncol; i++) {
		struct lt_column *c = &res->schema.cols[res->schema.n++];

		c->name = names[i];
		names[i] = NULL;
		c->type = ty[i] == LT_NULL ? LT_STRING : ty[i];
		c->added_in = 1;
		c->nullable = 1;
	}
	res->schema.version = 1;
	ret = 0;
	goto out;
wfail:
	if (ret == -ENOMEM)
		goto nomem;
	ret = fail(err, -EIO, "cannot write the query's result: %s", strerror(-ret));
	goto out;
nomem:
	if (ret == -ENOMEM)
		fail(err, ret, "out of memory");
out:
	sqlite3_progress_handler(q->db, 0, NULL, NULL);
	sqlite3_reset(q->st);
	if (ret < 0)
		sqlq_result_release(res);
	lt_names_free(names, ncol);
	free(raw);
	free(lens);
	free(koff);
	free(ty);
	free(keys.p);
	free(o.csv.p);
	free(o.jsonl.p);
	free(o.num.p);
	return ret;
}

void sqlq_result_release(struct sqlq_result *res)
{
	lt_schema_free(&res->schema);
	res->rows = res->grouped = res->spilled = 0;
}
