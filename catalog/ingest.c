/*
 * catalog/ingest.c — one bronze batch through the silver transform.
 *
 * A run reads the batch (a pread-like reader, read from the start once per
 * pass) and writes the silver table's CSV and JSON lines, a quarantine
 * stream and figures. It owns nothing shared: the caller publishes.
 *
 * Input. Compression by magic bytes (gzip 1f 8b, zstd 28 b5 2f fd), else by
 * the name's .gz/.zst suffix; what is parsed is the decompressed stream,
 * read in CHUNK pieces (concatenated gzip members and zstd frames are one
 * stream). A corrupt, truncated or trailing-garbage compressed stream
 * quarantines the batch ("corrupt gzip data: ..."). The format is the
 * table's `format`, else the name without the compression suffix (.csv
 * .tsv .txt CSV, .json JSON, .jsonl .ndjson JSON lines), else the content:
 * first non-space byte (after a BOM) '{' or '[' means JSON (catalog/json.c
 * tells an array, objects and lines apart), anything else CSV. The first
 * 64 KiB that text_looks_binary() calls binary quarantine the batch, and
 * so does a parser that finds the whole input unusable (a bad CSV header,
 * not JSON at all).
 *
 * Pass 1 names the columns and infers their types over the whole batch:
 * a CSV header through lt_header_names (csv_header 0, or -1 when the
 * parser guesses there is none: _c0.._cN over the widest record), JSON keys in order of first appearance through the same
 * function (at most LT_MAX_COLUMNS distinct keys, else the batch is
 * quarantined). Types by lt_infer (CSV) and lt_infer_json (JSON), widened
 * with lt_widen. Nested JSON objects and arrays are a STRING column holding
 * their compact JSON text. Then lt_evolve under the table's mode; a reason
 * from it quarantines the batch (one quarantine line, begin() not called).
 *
 * Empty batches: no column and no row (an empty file, only white space, or
 * only bad records), or no column for a table that has none: nothing to
 * write, the schema stays, begin() is NOT called; bad records still go to
 * quarantine. A header-only CSV has columns and no row: the schema evolves
 * and a first version gets its header.
 *
 * Values. CSV: an unquoted empty field is null, a quoted empty one ("") the
 * empty string; JSON: null is null, "" the empty string. The empty string
 * stays one in a STRING column and is null in any other. A value must fit
 * its column (lt_fits / lt_fits_json); one that does not goes, in rescue
 * mode, to _rescued_data under its batch column name, in none mode it is
 * null (the other modes widen the column, so it cannot happen there; if it
 * did the row would be quarantined). Values of columns the mode leaves out
 * of the schema go to _rescued_data (rescue) or nowhere (none). Ragged CSV
 * rows: missing trailing fields are null; extra fields beyond the header
 * that are empty (a trailing comma) are ignored; non-empty ones are rescued
 * as _cI (I their 0-based position) in rescue mode and quarantine the row
 * in any other mode ("record has N fields, the header M"). Bad records from
 * the parsers (invalid UTF-8, over a cap, bad quoting, bad JSON) are one
 * quarantine line each with the parser's line, reason and raw bytes (at
 * most 4 KiB). Rows quarantined here carry as raw the record re-encoded
 * (CSV fields joined by the source's delimiter, JSON as an object), cut
 * at 4 KiB. A quarantine line is
 * {"line":N,"reason":"...","expectation":"name"|null,"raw":"..."}; line 0
 * means the batch as a whole.
 *
 * Output text. CSV: the header (rewrite only) and one line per row, values
 * by lt_normalize, ',' between them, '\n' at the end; null is an empty
 * unquoted field, the empty string "", a field holding , " CR or LF is
 * quoted with "" for a quote. One exception: in a one-column table a null
 * is written "" (an empty line is no record to a CSV reader); re-read, it
 * is null again except in a STRING column. Common numbers and booleans
 * already in canonical form skip lt_normalize (canonical_as_is). JSON lines: one object per row with every
 * column in schema order (_rescued_data last), null as null, BOOL as
 * true/false, INT/DECIMAL/FLOAT as numbers (quoted should the text not be
 * a JSON number), dates, timestamps and strings as JSON strings,
 * _rescued_data as its object text or null when nothing was rescued.
 *
 * Expectations run in SQLite (an in-memory database, one prepared
 * statement per batch: SELECT (e1),...,(delete_when) FROM (SELECT ?1 AS
 * "c1", ...)), bound per row: INT as int64, FLOAT and DECIMAL as double
 * (so comparisons are numeric; past 15 digits they are approximate), BOOL
 * as 0/1, null as NULL, anything else as text. A result that is false (0)
 * violates; NULL passes, as a CHECK constraint does. warn counts; drop
 * quarantines the row ("expectation NAME failed"); fail quarantines the
 * batch: when any expectation fails, a check pass between evolution and
 * begin() parses the batch a third time to find it first, so nothing is
 * written. An expression that does not compile against the schema, or
 * fails while evaluated, is -EINVAL with SQLite's message. ingest_check_expr
 * is a syntax check: `SELECT (expr)` must prepare (an unknown column is
 * fine), give one column, leave no tail, and no ';' may stand outside
 * quotes. delete_when only means something with a key; without one it is
 * ignored.
 *
 * Append or rewrite. Rewrite when there is no current CSV, when the batch
 * adds a column (every line gains a field) or widens a column that held
 * values, or with a key (upsert). A rewrite re-reads the current silver
 * CSV (our own canonical text: header, "" versus null), maps its columns
 * by name to the new schema, normalizes old values to the widened types
 * and writes old rows, then the batch's. Otherwise only the batch's rows
 * go out, without header.
 *
 * Upsert (a key). Old rows and then batch rows go through an SQLite
 * database in conf->tmp_dir (a mkstemp file removed at the end; SQLite's
 * private temporary database when no tmp_dir), no journal, 8 MiB of cache,
 * temp_store FILE: a table of canonical text per column plus the source,
 * the sequence and an INTEGER PRIMARY KEY giving the position, a UNIQUE
 * index on the key columns. A row replaces the stored one with its key
 * when its sequence (sequence_by's value, typed as for expectations; else
 * its arrival number, so the latest wins) is >= the stored one, or the
 * stored one is NULL; a NULL sequence wins only over NULL. A row whose
 * delete_when is true deletes the stored row of its key under the same
 * rule and is not written (no tombstone: an older row arriving later comes
 * back). A batch row with a NULL key column is quarantined. Output: stored
 * rows by position (old rows keep theirs, new keys in arrival order).
 * Key or sequence_by columns not in the schema: -EINVAL.
 *
 * Threads: pass 2 without expectations and key runs on two threads, the
 * caller's parsing and a worker of the run's own fitting and formatting
 * (the pipeline below); every callback (reader, begin, writers) is
 * called on the caller's thread. Without a thread it runs serially.
 *
 * Memory: CHUNK-sized input buffers, output buffered up to FLUSH_AT (plus
 * one row) per writer, two pipeline blocks of about BLOCK_BYTES and their
 * output, the parsers' own bounded state, one row's values. Nothing grows
 * with the batch or the table; the upsert spills to disk. Pass 2 touches
 * no SQLite and allocates nothing per row unless the table has
 * expectations or a key.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <sqlite3.h>
#include <zlib.h>
#include <zstd.h>

#include "catalog/csv.h"
#include "catalog/ingest.h"
#include "catalog/json.h"
#include "util/log.h"
#include "util/util.h"

#define CHUNK		(1u << 20)	/* reads and decompressed pieces */
#define FLUSH_AT	(1u << 20)	/* bytes buffered per writer */
#define RAW_CAP		4096u		/* raw excerpt in a quarantine line */
#define SNIFF		65536u		/* start judged for format and binary */
#define SPEC_MIN	(32u << 20)	/* batches this big infer from a sample */
#define SPEC_SAMPLE	(4u << 20)	/* decompressed bytes in that sample */
#define OLD_MAX		(64u << 20)	/* caps when re-reading silver's CSV */
#define UPSERT_CACHE	"-8192"		/* KiB of SQLite page cache */
#define BLOCK_BYTES	(1u << 20)	/* records per pipeline block */

/* ---- the source: reading and decompressing ---- */

enum { SC_PLAIN, SC_GZIP, SC_ZSTD };

struct src {
	struct ingest_reader *r;
	int comp;
	uint64_t off;		/* next byte of r to read */
	unsigned char *in;	/* compressed input, CHUNK */
	size_t in_len, in_pos;
	int in_eof;
	int started, ended;	/* gzip: a member began / just ended */
	size_t zret;		/* zstd: 0 when a frame is complete */
	z_stream z;
	int z_ok;
	ZSTD_DStream *zd;
	char why[160];		/* why the stream is corrupt */
};

static int src_init(struct src *s, struct ingest_reader *r, int comp)
{
	memset(s, 0, sizeof(*s));
	s->r = r;
	s->comp = comp;
	if (comp == SC_PLAIN)
		return 0;
	s->in = malloc(CHUNK);
	if (!s->in)
		return -ENOMEM;
	if (comp == SC_GZIP) {
		if (inflateInit2(&s->z, 15 + 32) != Z_OK)
			return -ENOMEM;
		s->z_ok = 1;
	} else {
		s->zd = ZSTD_createDStream();
		if (!s->zd || ZSTD_isError(ZSTD_initDStream(s->zd)))
			return -ENOMEM;
	}
	return 0;
}

static void src_release(struct src *s)
{
	if (s->z_ok)
		inflateEnd(&s->z);
	ZSTD_freeDStream(s->zd);
	free(s->in);
	memset(s, 0, sizeof(*s));
}

static int src_rewind(struct src *s)
{
	s->off = 0;
	s->in_len = s->in_pos = 0;
	s->in_eof = s->started = s->ended = 0;
	s->zret = 0;
	s->why[0] = '\0';
	if (s->comp == SC_GZIP && inflateReset(&s->z) != Z_OK)
		return -ENOMEM;
	if (s->comp == SC_ZSTD &&
	    ZSTD_isError(ZSTD_DCtx_reset(s->zd, ZSTD_reset_session_only)))
		return -ENOMEM;
	return 0;
}

__attribute__((format(printf, 2, 3)))
static ssize_t src_corrupt(struct src *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->why, sizeof(s->why), fmt, ap);
	va_end(ap);
	return -EBADMSG;
}

static int src_fill(struct src *s)
{
	ssize_t n;

	if (s->in_pos < s->in_len || s->in_eof)
		return 0;
	n = s->r->pread(s->r->arg, s->in, CHUNK, s->off);
	if (n < 0)
		return (int)n;
	s->in_pos = 0;
	s->in_len = (size_t)n;
	s->off += (uint64_t)n;
	s->in_eof = n == 0;
	return 0;
}

static ssize_t gz_read(struct src *s, unsigned char *out, size_t cap)
{
	for (;;) {
		size_t avail, got;
		int ret, zr;

		if ((ret = src_fill(s)) < 0)
			return ret;
		avail = s->in_len - s->in_pos;
		if (!avail && s->in_eof && (s->ended || !s->started))
			return 0;
		if (s->ended && avail) {
			if (s->in[s->in_pos] != 0x1f)
				return src_corrupt(s, "trailing bytes after the gzip data");
			if (inflateReset(&s->z) != Z_OK)
				return -ENOMEM;
			s->ended = 0;
		}
		s->started = 1;
		s->z.next_in = s->in + s->in_pos;
		s->z.avail_in = (uInt)avail;
		s->z.next_out = out;
		s->z.avail_out = (uInt)cap;
		zr = inflate(&s->z, Z_NO_FLUSH);
		s->in_pos = s->in_len - s->z.avail_in;
		got = cap - s->z.avail_out;
		if (zr == Z_STREAM_END)
			s->ended = 1;
		else if (zr != Z_OK && zr != Z_BUF_ERROR)
			return src_corrupt(s, "corrupt gzip data: %s",
					   s->z.msg ? s->z.msg : "bad stream");
		if (got)
			return (ssize_t)got;
		if (!s->ended && s->in_pos == s->in_len && s->in_eof)
			return src_corrupt(s, "truncated gzip data");
	}
}

static ssize_t zst_read(struct src *s, unsigned char *out, size_t cap)
{
	for (;;) {
		ZSTD_inBuffer ib;
		ZSTD_outBuffer ob = { out, cap, 0 };
		size_t zr;
		int ret;

		if ((ret = src_fill(s)) < 0)
			return ret;
		if (s->in_pos == s->in_len && s->in_eof && s->zret == 0)
			return 0;
		ib.src = s->in;
		ib.size = s->in_len;
		ib.pos = s->in_pos;
		zr = ZSTD_decompressStream(s->zd, &ob, &ib);
		if (ZSTD_isError(zr))
			return src_corrupt(s, "corrupt zstd data: %s",
					   ZSTD_getErrorName(zr));
		s->in_pos = ib.pos;
		s->zret = zr;
		if (ob.pos)
			return (ssize_t)ob.pos;
		if (s->in_pos == s->in_len && s->in_eof && zr)
			return src_corrupt(s, "truncated zstd data");
	}
}

/* Up to cap decompressed bytes; 0 at the end; -EBADMSG (s->why) for a
 * corrupt stream, else the reader's -errno. */
static ssize_t src_read(struct src *s, unsigned char *out, size_t cap)
{
	ssize_t n;

	switch (s->comp) {
	case SC_GZIP:
		return gz_read(s, out, cap);
	case SC_ZSTD:
		return zst_read(s, out, cap);
	}
	n = s->r->pread(s->r->arg, out, cap, s->off);
	if (n > 0)
		s->off += (uint64_t)n;
	return n;
}

/* ---- buffered writers ---- */

struct obuf {
	struct gbuf b;
	const struct ingest_writer *w;
	int held;		/* a pipeline worker fills b: never flushed */
};

static int ob_flush(struct obuf *o)
{
	int ret = 0;

	if (o->b.failed)
		return -ENOMEM;
	if (o->b.n && o->w && o->w->write)
		ret = o->w->write(o->w->arg, o->b.p, o->b.n);
	o->b.n = 0;
	return ret;
}

static int ob_maybe_flush(struct obuf *o)
{
	if (o->held)
		return o->b.failed ? -ENOMEM : 0;
	return o->b.n >= FLUSH_AT || o->b.failed ? ob_flush(o) : 0;
}

/* Room for need more bytes (and the gbuf's NUL) at b.p + b.n, or NULL. */
static unsigned char *ob_reserve(struct obuf *o, size_t need)
{
	struct gbuf *b = &o->b;

	if (b->failed)
		return NULL;
	if (b->n + need + 1 > b->cap) {
		size_t cap = MAX(b->cap * 2, b->n + need + 4096);
		unsigned char *p = realloc(b->p, cap);

		if (!p) {
			b->failed = 1;
			return NULL;
		}
		b->p = p;
		b->cap = cap;
	}
	return b->p + b->n;
}

/* ---- one run ---- */

enum { P_INFER, P_CHECK, P_EMIT };

/* A value as a source gave it: kind is an enum lt_json, or K_TEXT. */
#define K_TEXT 5

struct cell {
	const char *p;
	size_t len;
	const char *key;	/* JSON: the key */
	size_t klen;
	int kind;
	int bcol;		/* batch column, or -1 (beyond the header) */
};

struct val {
	const char *p;
	size_t len;
	size_t off;		/* in r->scratch, when scr */
	int null, scr;
};

struct ocol {
	enum lt_type type;
	int rescued;		/* the _rescued_data column */
	char *name;		/* not owned */
	char *jkey;		/* "name": (owned) */
	size_t jkeylen;
};

/* JSON keys to batch columns: open addressing over copies of the keys. */
#define KM_SLOTS (2 * LT_MAX_COLUMNS)

struct keymap {
	uint32_t *slot;		/* KM_SLOTS: index + 1, 0 free */
	struct gbuf keys;
	size_t *koff, *klen;	/* LT_MAX_COLUMNS */
	size_t n;
	int *pos;		/* LT_MAX_COLUMNS: column seen at field position */
};

struct run {
	const struct ingest_conf *c;
	const struct ingest_table *cur;
	struct ingest_out *out;
	char **err;
	int ret;		/* a callback's failure, or 1: batch quarantined */
	int pass;
	int spec;		/* types from a sample (see run_batch) */
	int began;		/* begin() was called */
	uint64_t fed;		/* bytes given to the parser in this pass */

	struct src src;
	int fmt;		/* IF_CSV or IF_JSON */
	unsigned char *buf;	/* CHUNK */
	struct csv_parser *csvp;
	struct json_parser *jsonp;
	char delim;		/* the batch's delimiter after sniffing */

	/* pass 1 */
	enum lt_type *btypes;
	size_t nb, capb;
	size_t nhdr;		/* CSV header fields */
	int hdr_known;		/* nhdr is known: the first record came */
	struct keymap km;
	char **names;		/* batch column names */
	uint64_t nrec, nbad;

	/* after evolution */
	struct lt_evolution ev;
	int evolved;
	struct ocol *cols;
	size_t ncol;
	int rcol;		/* _rescued_data's index, or -1 */
	struct val *vals;
	struct gbuf scratch;	/* normalized values of the row */
	const char **rn, **rv;	/* rescued names and values of the row */
	size_t *rl, nr, caprn, caprv, caprl;
	char **extra;		/* _cI names, made on demand */
	size_t nextra;
	struct cell *cells;	/* the record's values */
	size_t capcells;
	struct gbuf raw;
	char why[160];
	char *batch_reason;
	const char *batch_exp;
	uint64_t batch_line;

	/* the old table when rewriting */
	int *omap;		/* old CSV column -> output column, -1 */
	size_t nomap;
	int omapped;

	/* expectations */
	sqlite3 *edb;
	sqlite3_stmt *est;
	size_t nexp;		/* statement columns: expectations (+ delete_when) */
	int dw;			/* delete_when's column, or -1 */
	uint64_t *efailed;
	int has_fail;
	int discard;		/* rows have no column to go to */

	/* upsert */
	sqlite3 *udb;
	sqlite3_stmt *uins, *udel;
	char *upath;
	int *keyidx;
	int seqidx;
	int64_t arrival;

	struct obuf ocsv, ojsonl, oq;
	struct pipe *pipe;	/* pass 2 on two threads, or NULL */
};

__attribute__((format(printf, 3, 4)))
static int fail(struct run *r, int code, const char *fmt, ...)
{
	va_list ap;

	if (r->err && !*r->err) {
		va_start(ap, fmt);
		if (vasprintf(r->err, fmt, ap) < 0)
			*r->err = NULL;
		va_end(ap);
	}
	return code;
}

__attribute__((format(printf, 2, 3)))
static int quarantine_batch(struct run *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&r->batch_reason, fmt, ap) < 0)
		r->batch_reason = NULL;
	va_end(ap);
	return r->batch_reason ? 1 : -ENOMEM;
}

static const char *src_name(const struct run *r)
{
	return r->c->src_name ? r->c->src_name : "(batch)";
}

static int io_fail(struct run *r, int ret, const char *what)
{
	return fail(r, ret, "cannot %s for '%s': %s", what, src_name(r),
		    strerror(-ret));
}

/* ---- quarantine lines ---- */

static int q_line(struct run *r, uint64_t line, const char *reason,
		  const char *exp, const char *raw, size_t rawlen)
{
	struct gbuf *q = &r->oq.b;

	gbuf_printf(q, "{\"line\":%llu,\"reason\":", (unsigned long long)line);
	lt_json_quote(q, reason, strlen(reason));
	gbuf_add(q, ",\"expectation\":", 15);
	if (exp)
		lt_json_quote(q, exp, strlen(exp));
	else
		gbuf_add(q, "null", 4);
	gbuf_add(q, ",\"raw\":", 7);
	lt_json_quote(q, raw ? raw : "", MIN(rawlen, RAW_CAP));
	gbuf_add(q, "}\n", 2);
	return ob_maybe_flush(&r->oq);
}

static int needs_quote(const char *p, size_t n, char delim)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] == delim || p[i] == '"' || p[i] == '\r' || p[i] == '\n')
			return 1;
	return 0;
}

/* The record a row came from, re-encoded, for a quarantine line's raw. */
static void raw_of(struct run *r, const struct cell *cl, size_t n)
{
	struct gbuf *b = &r->raw;

	b->n = 0;
	if (r->fmt == IF_JSON)
		gbuf_add(b, "{", 1);
	for (size_t i = 0; i < n && b->n <= RAW_CAP; i++) {
		const struct cell *c = &cl[i];

		if (r->fmt == IF_CSV) {
			if (i)
				gbuf_add(b, &r->delim, 1);
			if (c->kind == LT_JSON_STRING || needs_quote(c->p, c->len, r->delim))
				gbuf_add_quoted(b, '"', c->p, c->len);
			else
				gbuf_add(b, c->p, c->len);
			continue;
		}
		if (i)
			gbuf_add(b, ",", 1);
		lt_json_quote(b, c->key, c->klen);
		gbuf_add(b, ":", 1);
		if (c->kind == LT_JSON_STRING)
			lt_json_quote(b, c->p, c->len);
		else if (c->kind == LT_JSON_NULL)
			gbuf_add(b, "null", 4);
		else
			gbuf_add(b, c->p, c->len);
	}
	if (r->fmt == IF_JSON)
		gbuf_add(b, "}", 1);
}

static int q_row(struct run *r, uint64_t line, const char *reason,
		 const char *exp, const struct cell *cl, size_t n)
{
	raw_of(r, cl, n);
	if (r->raw.failed)
		return -ENOMEM;
	r->out->rows_quarantined += !exp;
	return q_line(r, line, reason, exp, (const char *)r->raw.p, r->raw.n);
}

/* ---- JSON keys ---- */

static uint32_t key_hash(const char *k, size_t n)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)k[i]) * 16777619u;
	return h;
}

static int km_init(struct keymap *km)
{
	km->slot = calloc(KM_SLOTS, sizeof(*km->slot));
	km->koff = calloc(LT_MAX_COLUMNS, sizeof(*km->koff));
	km->klen = calloc(LT_MAX_COLUMNS, sizeof(*km->klen));
	km->pos = malloc(LT_MAX_COLUMNS * sizeof(*km->pos));
	if (!km->slot || !km->koff || !km->klen || !km->pos)
		return -ENOMEM;
	for (size_t i = 0; i < LT_MAX_COLUMNS; i++)
		km->pos[i] = -1;
	return 0;
}

static void km_release(struct keymap *km)
{
	free(km->slot);
	free(km->koff);
	free(km->klen);
	free(km->pos);
	free(km->keys.p);
}

static int km_is(const struct keymap *km, int idx, const char *k, size_t n)
{
	return km->klen[idx] == n && memcmp(km->keys.p + km->koff[idx], k, n) == 0;
}

/* The column of key k at field position pos: its index, -1 when unknown
 * and add is 0, -E2BIG past LT_MAX_COLUMNS, -ENOMEM. */
static int km_get(struct keymap *km, size_t pos, const char *k, size_t n, int add)
{
	uint32_t h;
	int idx;

	if (pos < LT_MAX_COLUMNS && km->pos[pos] >= 0 && km_is(km, km->pos[pos], k, n))
		return km->pos[pos];
	for (h = key_hash(k, n) & (KM_SLOTS - 1); km->slot[h]; h = (h + 1) & (KM_SLOTS - 1))
		if (km_is(km, (int)km->slot[h] - 1, k, n))
			break;
	if (km->slot[h]) {
		idx = (int)km->slot[h] - 1;
	} else {
		if (!add)
			return -1;
		if (km->n >= LT_MAX_COLUMNS)
			return -E2BIG;
		km->koff[km->n] = km->keys.n;
		km->klen[km->n] = n;
		gbuf_add(&km->keys, k, n);
		if (km->keys.failed)
			return -ENOMEM;
		idx = (int)km->n++;
		km->slot[h] = (uint32_t)idx + 1;
	}
	if (pos < LT_MAX_COLUMNS)
		km->pos[pos] = idx;
	return idx;
}

/* ---- pass 1: names and types ---- */

static int grow_types(struct run *r, size_t n)
{
	size_t old = r->capb;

	if (n <= r->capb)
		return 0;
	if (grow_array((void **)&r->btypes, &r->capb, n, sizeof(*r->btypes),
		       LT_MAX_COLUMNS + 1, NULL) < 0)
		return -ENOMEM;
	for (size_t i = old; i < r->capb; i++)
		r->btypes[i] = LT_NULL;
	return 0;
}

static void infer(struct run *r, size_t i, int kind, const char *p, size_t n)
{
	enum lt_type t = r->btypes[i];

	if (t == LT_STRING)
		return;
	r->btypes[i] = lt_widen(t, kind == K_TEXT ? lt_infer(p, n) :
				lt_infer_json(kind, p, n));
}

static int csv_rec1(struct run *r, const struct csv_field *f, size_t n)
{
	size_t m = n;

	if (!r->hdr_known) {
		csv_header(r->csvp, &r->nhdr);
		r->hdr_known = 1;
		if (grow_types(r, r->nhdr) < 0)
			return -ENOMEM;
		r->nb = r->nhdr;
	}
	if (r->nhdr) {
		m = MIN(n, r->nhdr);
	} else if (n > r->nb) {
		if (n > LT_MAX_COLUMNS)
			return quarantine_batch(r, "a record has %zu fields, more "
						"than %d columns", n, LT_MAX_COLUMNS);
		if (grow_types(r, n) < 0)
			return -ENOMEM;
		r->nb = n;
	}
	for (size_t i = 0; i < m; i++)
		if (f[i].len)
			infer(r, i, K_TEXT, f[i].p, f[i].len);
	return 0;
}

static int json_rec1(struct run *r, const struct json_field *f, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int idx = km_get(&r->km, i, f[i].key, f[i].klen, 1);

		if (idx == -E2BIG)
			return quarantine_batch(r, "the batch has more than %d "
						"distinct keys", LT_MAX_COLUMNS);
		if (idx < 0 || grow_types(r, (size_t)idx + 1) < 0)
			return -ENOMEM;
		if ((size_t)idx >= r->nb)
			r->nb = (size_t)idx + 1;
		infer(r, (size_t)idx, (int)f[i].type, f[i].val, f[i].vlen);
	}
	return 0;
}

/* The batch's column names once pass 1 is over. */
static int make_names(struct run *r)
{
	const char **raw = NULL;
	size_t *lens = NULL, n = 0;
	const struct csv_field *h = NULL;
	int ret = -ENOMEM;


	if (r->fmt == IF_CSV && (h = csv_header(r->csvp, &n)) != NULL) {
		if (grow_types(r, n) < 0)
			return -ENOMEM;
		r->nb = n;
	} else {
		n = r->nb;
	}
	raw = calloc(n ? n : 1, sizeof(*raw));
	lens = calloc(n ? n : 1, sizeof(*lens));
	if (!raw || !lens)
		goto out;
	for (size_t i = 0; i < n; i++) {
		if (h) {
			raw[i] = h[i].p;
			lens[i] = h[i].len;
		} else if (r->fmt == IF_JSON) {
			raw[i] = (const char *)r->km.keys.p + r->km.koff[i];
			lens[i] = r->km.klen[i];
		} else {
			raw[i] = "";
		}
	}
	ret = lt_header_names(raw, lens, n, &r->names);
	if (ret == -E2BIG)
		ret = quarantine_batch(r, "the batch has %zu columns, more than %d",
				       n, LT_MAX_COLUMNS);
out:
	free(raw);
	free(lens);
	return ret;
}

/* ---- rows: fitting values to columns ---- */

static void val_null(struct val *v)
{
	v->null = 1;
	v->scr = 0;
	v->p = "";
	v->len = 0;
}

/*
 * Whether lt_normalize(t, p, n) would give p..n itself: a fast path for
 * the common numbers and booleans ([-](0|[1-9]d*)[.d+], at most 18 digits,
 * no negative zero; true, false). Anything else goes the long way.
 */
static int canonical_as_is(enum lt_type t, const char *p, size_t n)
{
	size_t i = 0, digits = 0;
	int dot = 0, nonzero = 0;

	switch (t) {
	case LT_BOOL:
		return (n == 4 && memcmp(p, "true", 4) == 0) ||
		       (n == 5 && memcmp(p, "false", 5) == 0);
	case LT_INT:
	case LT_DECIMAL:
	case LT_FLOAT:
		break;
	default:
		return 0;
	}
	if (i < n && p[i] == '-')
		i++;
	if (i == n || (p[i] == '0' && i + 1 < n && p[i + 1] != '.'))
		return 0;
	for (; i < n; i++) {
		if (p[i] >= '0' && p[i] <= '9') {
			nonzero |= p[i] != '0';
			digits++;
		} else if (p[i] == '.' && !dot && digits && i + 1 < n && t != LT_INT) {
			dot = 1;
		} else {
			return 0;
		}
	}
	return digits <= 18 && (nonzero || p[0] != '-');
}

/* 0 stored, -EINVAL the value does not fit, -ENOMEM. */
static int put_val(struct run *r, struct val *v, enum lt_type t, const struct cell *c)
{
	size_t off;
	int ret;

	if (c->kind == LT_JSON_NULL || (c->len == 0 && t != LT_STRING)) {
		val_null(v);
		return 0;
	}
	v->null = 0;
	if (t == LT_STRING || (c->kind != LT_JSON_STRING && canonical_as_is(t, c->p, c->len))) {
		v->scr = 0;
		v->p = c->p;
		v->len = c->len;
		return 0;
	}
	if ((c->kind == LT_JSON_STRING || c->kind == LT_JSON_RAW) &&
	    !lt_fits_json(t, c->kind, c->p, c->len))
		return -EINVAL;
	off = r->scratch.n;
	if ((ret = lt_normalize(t, c->p, c->len, &r->scratch)) < 0)
		return ret;
	v->scr = 1;
	v->off = off;
	v->len = r->scratch.n - off;
	return 0;
}

static const char *extra_name(struct run *r, size_t i)
{
	if (i >= r->nextra) {
		size_t old = r->nextra;

		if (grow_array((void **)&r->extra, &r->nextra, i + 1,
			       sizeof(*r->extra), SIZE_MAX, NULL) < 0)
			return NULL;
		for (size_t k = old; k < r->nextra; k++)
			r->extra[k] = NULL;
	}
	if (!r->extra[i] && asprintf(&r->extra[i], "_c%zu", i) < 0)
		r->extra[i] = NULL;
	return r->extra[i];
}

static int rescue(struct run *r, const char *name, const struct cell *c)
{
	size_t need = r->nr + 1;

	if (!name ||
	    grow_array((void **)&r->rn, &r->caprn, need, sizeof(*r->rn), SIZE_MAX, NULL) < 0 ||
	    grow_array((void **)&r->rv, &r->caprv, need, sizeof(*r->rv), SIZE_MAX, NULL) < 0 ||
	    grow_array((void **)&r->rl, &r->caprl, need, sizeof(*r->rl), SIZE_MAX, NULL) < 0)
		return -ENOMEM;
	r->rn[r->nr] = name;
	r->rv[r->nr] = c->kind == LT_JSON_NULL ? NULL : c->p;
	r->rl[r->nr] = c->len;
	r->nr++;
	return 0;
}

/*
 * Fill r->vals from a batch record. 0 with the row ready; 1 with r->why
 * saying why the row is quarantined; -ENOMEM.
 */
static int build_row(struct run *r, const struct cell *cl, size_t n)
{
	enum lt_mode mode = r->c->mode;
	int ret;

	r->scratch.n = 0;
	r->nr = 0;
	for (size_t i = 0; i < r->ncol; i++)
		val_null(&r->vals[i]);
	for (size_t i = 0; i < n; i++) {
		const struct cell *c = &cl[i];
		int t;

		if (c->bcol < 0) {
			if (c->kind == LT_JSON_NULL)
				continue;
			if (mode != LT_RESCUE) {
				snprintf(r->why, sizeof(r->why), "record has %zu fields, "
					 "the header %zu", n, r->nb);
				return 1;
			}
			if ((ret = rescue(r, extra_name(r, i), c)) < 0)
				return ret;
			continue;
		}
		t = r->ev.target[c->bcol];
		if (t == LT_TARGET_DROP)
			continue;
		if (t == LT_TARGET_RESCUE) {
			if (c->kind != LT_JSON_NULL &&
			    (ret = rescue(r, r->names[c->bcol], c)) < 0)
				return ret;
			continue;
		}
		ret = put_val(r, &r->vals[t], r->cols[t].type, c);
		if (ret == -EINVAL)
			val_null(&r->vals[t]);
		if (ret == -EINVAL && mode == LT_RESCUE)
			ret = rescue(r, r->names[c->bcol], c);
		else if (ret == -EINVAL && mode == LT_NONE)
			ret = 0;
		else if (ret == -EINVAL && r->spec)
			return -EAGAIN;	/* the sample's types were too narrow */
		else if (ret == -EINVAL) {
			snprintf(r->why, sizeof(r->why), "value does not fit column "
				 "'%.64s' (%s)", r->cols[t].name, lt_name(r->cols[t].type));
			return 1;
		}
		if (ret < 0)
			return ret;
	}
	if (r->nr && r->rcol >= 0) {
		struct val *v = &r->vals[r->rcol];

		v->off = r->scratch.n;
		if (lt_rescued_json(r->rn, r->rv, r->rl, r->nr, &r->scratch) < 0)
			return -ENOMEM;
		v->null = 0;
		v->scr = 1;
		v->len = r->scratch.n - v->off;
	}
	if (r->scratch.failed)
		return -ENOMEM;
	for (size_t i = 0; i < r->ncol; i++)
		if (r->vals[i].scr)
			r->vals[i].p = (const char *)r->scratch.p + r->vals[i].off;
	return 0;
}

/* ---- output ---- */

static int json_number_ok(const char *p, size_t n)
{
	size_t i = 0;

	if (i < n && p[i] == '-')
		i++;
	if (i < n && p[i] == '0')
		i++;
	else if (i < n && p[i] >= '1' && p[i] <= '9')
		while (i < n && p[i] >= '0' && p[i] <= '9')
			i++;
	else
		return 0;
	if (i < n && p[i] == '.') {
		size_t d = ++i;

		while (i < n && p[i] >= '0' && p[i] <= '9')
			i++;
		if (i == d)
			return 0;
	}
	if (i < n && (p[i] == 'e' || p[i] == 'E')) {
		size_t d;

		i++;
		if (i < n && (p[i] == '+' || p[i] == '-'))
			i++;
		d = i;
		while (i < n && p[i] >= '0' && p[i] <= '9')
			i++;
		if (i == d)
			return 0;
	}
	return i == n;
}

static int json_plain(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] < 0x20 || p[i] == '"' || p[i] == '\\')
			return 0;
	return 1;
}

static inline unsigned char *put(unsigned char *w, const void *p, size_t n)
{
	const unsigned char *s = p;

	if (n > 16) {
		memcpy(w, p, n);
		return w + n;
	}
	while (n--)
		*w++ = *s++;
	return w;
}

/* One row of r->vals to both writers. */
static int emit_row(struct run *r)
{
	size_t needc = 2, needj = 3;
	unsigned char *wc, *wj;

	for (size_t i = 0; i < r->ncol; i++) {
		needc += 2 * r->vals[i].len + 3;
		needj += r->cols[i].jkeylen + 6 * r->vals[i].len + 8;
	}
	wc = ob_reserve(&r->ocsv, needc);
	wj = ob_reserve(&r->ojsonl, needj);
	if (!wc || !wj)
		return -ENOMEM;
	*wj++ = '{';
	for (size_t i = 0; i < r->ncol; i++) {
		const struct ocol *c = &r->cols[i];
		const struct val *v = &r->vals[i];

		if (i) {
			*wc++ = ',';
			*wj++ = ',';
		}
		wj = put(wj, c->jkey, c->jkeylen);
		if (v->null) {
			wj = put(wj, "null", 4);
			if (r->ncol == 1)	/* not an empty line: that is no row */
				wc = put(wc, "\"\"", 2);
			continue;
		}
		if ((c->type == LT_STRING || c->rescued) &&
		    (v->len == 0 || needs_quote(v->p, v->len, ','))) {
			*wc++ = '"';
			for (size_t k = 0; k < v->len; k++) {
				if (v->p[k] == '"')
					*wc++ = '"';
				*wc++ = (unsigned char)v->p[k];
			}
			*wc++ = '"';
		} else {
			wc = put(wc, v->p, v->len);
		}
		switch (c->rescued ? LT_NULL : c->type) {
		case LT_BOOL:
		case LT_INT:
			wj = put(wj, v->p, v->len);
			continue;
		case LT_DECIMAL:
		case LT_FLOAT:
			if (json_number_ok(v->p, v->len)) {
				wj = put(wj, v->p, v->len);
				continue;
			}
			break;
		case LT_NULL:	/* _rescued_data: an object's text */
			wj = put(wj, v->p, v->len);
			continue;
		default:
			break;
		}
		if (json_plain(v->p, v->len)) {
			*wj++ = '"';
			wj = put(wj, v->p, v->len);
			*wj++ = '"';
		} else {
			r->ojsonl.b.n = (size_t)(wj - r->ojsonl.b.p);
			lt_json_quote(&r->ojsonl.b, v->p, v->len);
			wj = r->ojsonl.b.p + r->ojsonl.b.n;
		}
	}
	*wc++ = '\n';
	*wj++ = '}';
	*wj++ = '\n';
	r->ocsv.b.n = (size_t)(wc - r->ocsv.b.p);
	r->ojsonl.b.n = (size_t)(wj - r->ojsonl.b.p);
	r->ocsv.b.p[r->ocsv.b.n] = '\0';
	r->ojsonl.b.p[r->ojsonl.b.n] = '\0';
	return 0;
}

static int flush_rows(struct run *r)
{
	int ret = ob_maybe_flush(&r->ocsv);

	return ret ? ret : ob_maybe_flush(&r->ojsonl);
}

static void emit_header(struct run *r)
{
	struct gbuf *b = &r->ocsv.b;

	for (size_t i = 0; i < r->ncol; i++) {
		const char *name = r->cols[i].name;

		if (i)
			gbuf_add(b, ",", 1);
		if (needs_quote(name, strlen(name), ','))
			gbuf_add_quoted(b, '"', name, strlen(name));
		else
			gbuf_add(b, name, strlen(name));
	}
	gbuf_add(b, "\n", 1);
}

/* ---- SQLite: binding values, expectations ---- */

static int64_t parse_i64(const char *p, size_t n)
{
	uint64_t v = 0;
	size_t i = 0;
	int neg = 0;

	if (i < n && (p[i] == '-' || p[i] == '+'))
		neg = p[i++] == '-';
	for (; i < n && p[i] >= '0' && p[i] <= '9'; i++)
		v = v * 10 + (uint64_t)(p[i] - '0');
	return neg ? (int64_t)(0 - v) : (int64_t)v;
}

static double parse_double(const char *p, size_t n)
{
	char buf[128];

	if (n >= sizeof(buf))
		n = sizeof(buf) - 1;
	memcpy(buf, p, n);
	buf[n] = '\0';
	return strtod(buf, NULL);
}

static int bind_val(sqlite3_stmt *st, int i, enum lt_type t, const struct val *v)
{
	if (v->null)
		return sqlite3_bind_null(st, i);
	switch (t) {
	case LT_INT:
		return sqlite3_bind_int64(st, i, parse_i64(v->p, v->len));
	case LT_DECIMAL:
	case LT_FLOAT:
		return sqlite3_bind_double(st, i, parse_double(v->p, v->len));
	case LT_BOOL:
		return sqlite3_bind_int(st, i, v->p[0] == 't');
	default:
		return sqlite3_bind_text(st, i, v->p, (int)v->len, SQLITE_STATIC);
	}
}

/* SELECT (e1),... FROM (SELECT ?1 AS "c1", ...); only is -1 for all. */
static void expect_sql(struct run *r, struct gbuf *b, long only)
{
	const struct ingest_conf *c = r->c;

	gbuf_add(b, "SELECT ", 7);
	for (size_t k = 0; k < r->nexp; k++) {
		const char *e = k < c->nexpect ? c->expect[k].expr : c->delete_when;

		if (only >= 0 && (size_t)only != k)
			continue;
		if (only < 0 && k)
			gbuf_add(b, ",", 1);
		gbuf_printf(b, "(%s)", e);
	}
	gbuf_add(b, " FROM (SELECT ", 14);
	for (size_t i = 0; i < r->ncol; i++) {
		gbuf_printf(b, "%s?%zu AS ", i ? "," : "", i + 1);
		gbuf_add_quoted(b, '"', r->cols[i].name, strlen(r->cols[i].name));
	}
	if (!r->ncol)
		gbuf_add(b, "NULL", 4);
	gbuf_add(b, ")", 1);
}

static int expect_prepare(struct run *r)
{
	const struct ingest_conf *c = r->c;
	struct gbuf sql = { 0 };
	const char *tail = NULL;
	int ret = 0;

	r->dw = c->delete_when && c->nkey ? (int)c->nexpect : -1;
	r->nexp = c->nexpect + (r->dw >= 0);
	if (!r->nexp)
		return 0;
	r->efailed = calloc(c->nexpect + 1, sizeof(*r->efailed));
	if (!r->efailed)
		return -ENOMEM;
	for (size_t k = 0; k < r->nexp; k++) {
		const char *name = k < c->nexpect ? c->expect[k].name : "delete_when";
		const char *e = k < c->nexpect ? c->expect[k].expr : c->delete_when;
		char *msg = NULL;

		if (!e || ingest_check_expr(e, &msg) < 0) {
			ret = fail(r, -EINVAL, "expectation '%s': %s", name,
				   msg ? msg : "no expression");
			free(msg);
			return ret;
		}
		if (k < c->nexpect && c->expect[k].action == IX_FAIL)
			r->has_fail = 1;
	}
	if (sqlite3_open_v2(":memory:", &r->edb, SQLITE_OPEN_READWRITE |
			    SQLITE_OPEN_CREATE, NULL) != SQLITE_OK)
		return fail(r, -ENOMEM, "cannot open SQLite for the expectations");
	expect_sql(r, &sql, -1);
	if (sql.failed)
		return -ENOMEM;
	if (sqlite3_prepare_v2(r->edb, (char *)sql.p, (int)sql.n, &r->est, &tail) ==
	    SQLITE_OK && (tail && *tail == '\0') &&
	    sqlite3_column_count(r->est) == (int)r->nexp)
		goto out;
	/* name the one that does not compile */
	for (size_t k = 0; k < r->nexp; k++) {
		sqlite3_stmt *st = NULL;
		const char *name = k < c->nexpect ? c->expect[k].name : "delete_when";

		sql.n = 0;
		expect_sql(r, &sql, (long)k);
		if (sql.failed) {
			ret = -ENOMEM;
			goto out;
		}
		if (sqlite3_prepare_v2(r->edb, (char *)sql.p, (int)sql.n, &st, NULL) != SQLITE_OK) {
			ret = fail(r, -EINVAL, "expectation '%s' does not compile: %s",
				   name, sqlite3_errmsg(r->edb));
			goto out;
		}
		sqlite3_finalize(st);
	}
	ret = fail(r, -EINVAL, "the expectations do not compile together: %s",
		   sqlite3_errmsg(r->edb));
out:
	free(sql.p);
	return ret;
}

/* Whether a result column is true (1), false (0) or NULL (-1). */
static int sql_truth(sqlite3_stmt *st, int k)
{
	switch (sqlite3_column_type(st, k)) {
	case SQLITE_NULL:
		return -1;
	case SQLITE_INTEGER:
		return sqlite3_column_int64(st, k) != 0;
	default:
		return sqlite3_column_double(st, k) != 0.0;
	}
}

/*
 * Evaluate the row. Counts failures; 0 keeps it, 1 drops it (quarantined
 * here), 2 stops the check pass (r->ret 1, batch reason set), -errno.
 * *del says whether delete_when holds.
 */
static int expect_row(struct run *r, uint64_t line, const struct cell *cl,
		      size_t n, int *del)
{
	const struct ingest_conf *c = r->c;
	sqlite3_stmt *st = r->est;
	const char *dropped = NULL;
	int rc, ret = 0;

	*del = 0;
	if (!st)
		return 0;
	for (size_t i = 0; i < r->ncol; i++)
		if (bind_val(st, (int)i + 1, r->cols[i].rescued ? LT_STRING :
			     r->cols[i].type, &r->vals[i]) != SQLITE_OK)
			return fail(r, -ENOMEM, "cannot bind a value for the expectations");
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		ret = fail(r, -EINVAL, "the expectations fail to evaluate at line "
			   "%llu of '%s': %s", (unsigned long long)line, src_name(r),
			   sqlite3_errmsg(r->edb));
		sqlite3_reset(st);
		return ret;
	}
	for (size_t k = 0; k < c->nexpect; k++) {
		const struct ingest_expect *e = &c->expect[k];

		if (sql_truth(st, (int)k) != 0)
			continue;
		if (r->pass == P_CHECK) {
			if (e->action != IX_FAIL)
				continue;
			r->efailed[k]++;
			r->batch_exp = e->name;
			r->batch_line = line;
			raw_of(r, cl, n);
			ret = quarantine_batch(r, "expectation %s failed at line %llu",
					       e->name, (unsigned long long)line);
			sqlite3_reset(st);
			return ret < 0 ? ret : 2;
		}
		r->efailed[k]++;
		if (e->action == IX_DROP && !dropped)
			dropped = e->name;
	}
	if (r->dw >= 0)
		*del = sql_truth(st, r->dw) == 1;
	sqlite3_reset(st);
	if (r->pass == P_CHECK || !dropped)
		return 0;
	snprintf(r->why, sizeof(r->why), "expectation %s failed", dropped);
	r->out->rows_dropped++;
	ret = q_row(r, line, r->why, dropped, cl, n);
	return ret < 0 ? ret : 1;
}

/* ---- upsert ---- */

static int ups_exec(struct run *r, const char *sql)
{
	char *msg = NULL;
	int ret = 0;

	if (sqlite3_exec(r->udb, sql, NULL, NULL, &msg) != SQLITE_OK)
		ret = fail(r, -EIO, "upsert for '%s' failed: %s", src_name(r),
			   msg ? msg : sqlite3_errmsg(r->udb));
	sqlite3_free(msg);
	return ret;
}

static int ups_open(struct run *r)
{
	const struct ingest_conf *c = r->c;
	struct gbuf sql = { 0 };
	int ret;

	if (c->tmp_dir) {
		int fd;

		if (asprintf(&r->upath, "%s/lakefs-upsert-XXXXXX", c->tmp_dir) < 0) {
			r->upath = NULL;
			return -ENOMEM;
		}
		fd = mkstemp(r->upath);
		if (fd < 0) {
			ret = -errno;
			free(r->upath);
			r->upath = NULL;
			return fail(r, ret, "cannot create the upsert's file in '%s': %s",
				    c->tmp_dir, strerror(-ret));
		}
		close(fd);
	}
	if (sqlite3_open_v2(r->upath ? r->upath : "", &r->udb, SQLITE_OPEN_READWRITE |
			    SQLITE_OPEN_CREATE, NULL) != SQLITE_OK)
		return fail(r, -EIO, "cannot open the upsert's database: %s",
			    r->udb ? sqlite3_errmsg(r->udb) : "out of memory");
	if ((ret = ups_exec(r, "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"
			    "PRAGMA temp_store=FILE; PRAGMA cache_size=" UPSERT_CACHE ";"
			    "PRAGMA locking_mode=EXCLUSIVE; BEGIN")) < 0)
		return ret;
	gbuf_add(&sql, "CREATE TABLE r(pos INTEGER PRIMARY KEY, src INT, seq", 52);
	for (size_t i = 0; i < r->ncol; i++)
		gbuf_printf(&sql, ", c%zu", i);
	gbuf_add(&sql, "); CREATE UNIQUE INDEX rk ON r(", 31);
	for (size_t k = 0; k < c->nkey; k++)
		gbuf_printf(&sql, "%sc%d", k ? "," : "", r->keyidx[k]);
	gbuf_add(&sql, ")", 1);
	if (sql.failed)
		return -ENOMEM;
	if ((ret = ups_exec(r, (char *)sql.p)) < 0)
		goto out;
	sql.n = 0;
	gbuf_add(&sql, "INSERT INTO r(src, seq", 22);
	for (size_t i = 0; i < r->ncol; i++)
		gbuf_printf(&sql, ", c%zu", i);
	gbuf_add(&sql, ") VALUES(?1, ?2", 15);
	for (size_t i = 0; i < r->ncol; i++)
		gbuf_printf(&sql, ", ?%zu", i + 3);
	gbuf_add(&sql, ") ON CONFLICT(", 14);
	for (size_t k = 0; k < c->nkey; k++)
		gbuf_printf(&sql, "%sc%d", k ? "," : "", r->keyidx[k]);
	gbuf_add(&sql, ") DO UPDATE SET src=excluded.src, seq=excluded.seq", 50);
	for (size_t i = 0; i < r->ncol; i++)
		gbuf_printf(&sql, ", c%zu=excluded.c%zu", i, i);
	gbuf_add(&sql, " WHERE r.seq IS NULL OR excluded.seq >= r.seq", 45);
	if (sql.failed) {
		ret = -ENOMEM;
		goto out;
	}
	if (sqlite3_prepare_v2(r->udb, (char *)sql.p, (int)sql.n, &r->uins, NULL) != SQLITE_OK) {
		ret = fail(r, -EIO, "upsert: %s", sqlite3_errmsg(r->udb));
		goto out;
	}
	sql.n = 0;
	gbuf_add(&sql, "DELETE FROM r WHERE ", 20);
	for (size_t k = 0; k < c->nkey; k++)
		gbuf_printf(&sql, "c%d = ?%zu AND ", r->keyidx[k], k + 2);
	gbuf_add(&sql, "(seq IS NULL OR ?1 >= seq)", 26);
	if (sql.failed) {
		ret = -ENOMEM;
		goto out;
	}
	if (sqlite3_prepare_v2(r->udb, (char *)sql.p, (int)sql.n, &r->udel, NULL) != SQLITE_OK)
		ret = fail(r, -EIO, "upsert: %s", sqlite3_errmsg(r->udb));
out:
	free(sql.p);
	return ret;
}

static int bind_seq(struct run *r, sqlite3_stmt *st, int i)
{
	if (r->seqidx < 0)
		return sqlite3_bind_int64(st, i, r->arrival);
	return bind_val(st, i, r->cols[r->seqidx].type, &r->vals[r->seqidx]);
}

static int ups_step(struct run *r, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return fail(r, -EIO, "upsert for '%s' failed: %s", src_name(r),
			    sqlite3_errmsg(r->udb));
	return 0;
}

/* The row in r->vals into the merge; from_batch 0 for an old row. */
static int ups_row(struct run *r, int from_batch, int del)
{
	sqlite3_stmt *st = del ? r->udel : r->uins;
	int ret;

	r->arrival++;
	if (del) {
		bind_seq(r, st, 1);
		for (size_t k = 0; k < r->c->nkey; k++)
			bind_val(st, (int)k + 2, LT_STRING, &r->vals[r->keyidx[k]]);
		if ((ret = ups_step(r, st)) < 0)
			return ret;
		r->out->rows_deleted += (uint64_t)sqlite3_changes(r->udb);
		return 0;
	}
	sqlite3_bind_int(st, 1, from_batch);
	bind_seq(r, st, 2);
	for (size_t i = 0; i < r->ncol; i++)
		bind_val(st, (int)i + 3, LT_STRING, &r->vals[i]);
	return ups_step(r, st);
}

static int ups_emit(struct run *r)
{
	struct gbuf sql = { 0 };
	sqlite3_stmt *st = NULL;
	int rc, ret = 0;

	gbuf_add(&sql, "SELECT src", 10);
	for (size_t i = 0; i < r->ncol; i++)
		gbuf_printf(&sql, ", c%zu", i);
	gbuf_add(&sql, " FROM r ORDER BY pos", 20);
	if (sql.failed)
		return -ENOMEM;
	if (sqlite3_prepare_v2(r->udb, (char *)sql.p, (int)sql.n, &st, NULL) != SQLITE_OK) {
		ret = fail(r, -EIO, "upsert: %s", sqlite3_errmsg(r->udb));
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		for (size_t i = 0; i < r->ncol; i++) {
			struct val *v = &r->vals[i];

			if (sqlite3_column_type(st, (int)i + 1) == SQLITE_NULL) {
				val_null(v);
				continue;
			}
			v->null = 0;
			v->p = (const char *)sqlite3_column_text(st, (int)i + 1);
			v->len = (size_t)sqlite3_column_bytes(st, (int)i + 1);
			if (!v->p) {
				ret = -ENOMEM;
				goto out;
			}
		}
		r->out->rows_written += sqlite3_column_int(st, 0) == 1;
		r->out->rows_total++;
		if ((ret = emit_row(r)) < 0 || (ret = flush_rows(r)) < 0)
			goto out;
	}
	if (rc != SQLITE_DONE)
		ret = fail(r, -EIO, "upsert: %s", sqlite3_errmsg(r->udb));
out:
	sqlite3_finalize(st);
	free(sql.p);
	return ret;
}

/* ---- pass 2: every batch row ---- */

/* A built row of the batch: key check, expectations, then out. */
static int row_done(struct run *r, uint64_t line, const struct cell *cl, size_t n)
{
	int ret, del = 0;

	if (r->discard)
		return 0;
	ret = build_row(r, cl, n);
	if (ret < 0)
		return ret;
	if (ret == 1)
		return r->pass == P_EMIT ? q_row(r, line, r->why, NULL, cl, n) : 0;
	for (size_t k = 0; k < r->c->nkey; k++) {
		const struct ocol *kc = &r->cols[r->keyidx[k]];

		if (!r->vals[r->keyidx[k]].null)
			continue;
		if (r->pass != P_EMIT)
			return 0;
		snprintf(r->why, sizeof(r->why), "key column '%.64s' is null", kc->name);
		return q_row(r, line, r->why, NULL, cl, n);
	}
	ret = expect_row(r, line, cl, n, &del);
	if (ret == 2) {
		r->ret = 1;
		return 1;
	}
	if (ret || r->pass != P_EMIT)
		return ret < 0 ? ret : 0;
	if (r->c->nkey) {
		if ((ret = ups_row(r, 1, del)) < 0)
			return ret;
		return 0;
	}
	r->out->rows_written++;
	if ((ret = emit_row(r)) < 0)
		return ret;
	return flush_rows(r);
}

/* ---- pass 2 on two threads ---- */

/*
 * The plain path of pass 2 (no expectation, no key) is a pipeline: the
 * caller's thread reads, decompresses and parses, copying each record
 * (or bad record) into a block; a worker thread fits and formats whole
 * blocks (build_row, emit_row, quarantine lines) into the block's own
 * output buffers; the caller's thread hands those to the writers in
 * order. Two blocks: parsing one overlaps formatting the other. The
 * worker alone touches the row state (vals, scratch, why, raw, the
 * output gbufs, rows_written, rows_quarantined); the caller's thread the
 * parser, the keymap, rows_read and every writer. Without a thread the
 * pass runs serially, as with expectations or a key.
 */

enum { B_FREE, B_FULL, B_DONE };
#define BAD_RECORD UINT32_MAX	/* brec.n of a bad record: reason, raw */

struct brec {
	uint64_t line;
	uint32_t n;
};

struct bcell {
	uint32_t off, len, koff, klen;
	int32_t bcol, kind;
};

struct block {
	struct gbuf recs;		/* brec, then n bcell; repeated */
	struct gbuf bytes;		/* their values and keys */
	struct gbuf csv, jsonl, q;	/* formatted by the worker */
	int state, ret;
};

struct pipe {
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct block blk[2];
	int fill;		/* the block being filled */
	int pending;		/* handed to the worker and not yet written; -1 */
	int quit;
	uint64_t nread;		/* rows_read, kept off the worker's lines */
	/* the worker's own, on a cache line of their own */
	_Alignas(64) struct cell *cells;
	size_t capcells;
};

static uint32_t blk_bytes(struct block *b, const char *p, size_t n, int nul)
{
	uint32_t off = (uint32_t)b->bytes.n;

	gbuf_add(&b->bytes, p ? p : "", n);
	if (nul)
		gbuf_add(&b->bytes, "", 1);
	return off;
}

static void swap_gbuf(struct gbuf *a, struct gbuf *b)
{
	struct gbuf t = *a;

	*a = *b;
	*b = t;
}

/* The worker's job: one block through row_done into its buffers. */
static int blk_format(struct run *r, struct block *b)
{
	struct pipe *pp = r->pipe;
	size_t at = 0;
	int ret = 0;

	swap_gbuf(&r->ocsv.b, &b->csv);
	swap_gbuf(&r->ojsonl.b, &b->jsonl);
	swap_gbuf(&r->oq.b, &b->q);
	while (at < b->recs.n && ret >= 0) {
		const char *base = b->bytes.p ? (const char *)b->bytes.p : "";
		struct brec h;
		struct bcell bc;

		memcpy(&h, b->recs.p + at, sizeof(h));
		at += sizeof(h);
		if (h.n == BAD_RECORD) {
			struct bcell raw;

			memcpy(&bc, b->recs.p + at, sizeof(bc));
			memcpy(&raw, b->recs.p + at + sizeof(bc), sizeof(raw));
			at += 2 * sizeof(bc);
			r->out->rows_quarantined++;
			ret = q_line(r, h.line, base + bc.off, NULL, base + raw.off, raw.len);
			continue;
		}
		if (h.n >= pp->capcells &&
		    grow_array((void **)&pp->cells, &pp->capcells, h.n + 1,
			       sizeof(*pp->cells), SIZE_MAX, NULL) < 0) {
			ret = -ENOMEM;
			break;
		}
		for (uint32_t i = 0; i < h.n; i++) {
			struct cell *c = &pp->cells[i];

			memcpy(&bc, b->recs.p + at, sizeof(bc));
			at += sizeof(bc);
			c->p = base + bc.off;
			c->len = bc.len;
			c->key = base + bc.koff;
			c->klen = bc.klen;
			c->kind = bc.kind;
			c->bcol = bc.bcol;
		}
		ret = row_done(r, h.line, pp->cells, h.n);
	}
	swap_gbuf(&r->ocsv.b, &b->csv);
	swap_gbuf(&r->ojsonl.b, &b->jsonl);
	swap_gbuf(&r->oq.b, &b->q);
	return ret;
}

static void *pipe_worker(void *arg)
{
	struct run *r = arg;
	struct pipe *pp = r->pipe;

	pthread_mutex_lock(&pp->mu);
	for (;;) {
		struct block *b = NULL;

		for (int k = 0; k < 2; k++)
			if (pp->blk[k].state == B_FULL)
				b = &pp->blk[k];
		if (!b && pp->quit)
			break;
		if (!b) {
			pthread_cond_wait(&pp->cv, &pp->mu);
			continue;
		}
		pthread_mutex_unlock(&pp->mu);
		b->ret = blk_format(r, b);
		pthread_mutex_lock(&pp->mu);
		b->state = B_DONE;
		pthread_cond_broadcast(&pp->cv);
	}
	pthread_mutex_unlock(&pp->mu);
	return NULL;
}

static int blk_write(const struct ingest_writer *w, struct gbuf *g)
{
	int ret = 0;

	if (g->failed)
		return -ENOMEM;
	if (g->n && w->write)
		ret = w->write(w->arg, g->p, g->n);
	g->n = 0;
	return ret;
}

/* Wait for the pending block and hand its output to the writers. */
static int pipe_collect(struct run *r)
{
	struct pipe *pp = r->pipe;
	struct block *b;
	int ret;

	if (pp->pending < 0)
		return 0;
	b = &pp->blk[pp->pending];
	pthread_mutex_lock(&pp->mu);
	while (b->state != B_DONE)
		pthread_cond_wait(&pp->cv, &pp->mu);
	pthread_mutex_unlock(&pp->mu);
	pp->pending = -1;
	b->state = B_FREE;
	b->recs.n = b->bytes.n = 0;
	ret = b->ret;
	if (!ret)
		ret = blk_write(&r->out->csv, &b->csv);
	if (!ret)
		ret = blk_write(&r->out->jsonl, &b->jsonl);
	if (!ret)
		ret = blk_write(&r->out->quarantine, &b->q);
	return ret;
}

/* Hand the block being filled to the worker; fill the other. */
static int pipe_handoff(struct run *r)
{
	struct pipe *pp = r->pipe;
	struct block *b = &pp->blk[pp->fill];
	int ret;

	if (!b->recs.n)
		return 0;
	if ((ret = pipe_collect(r)) < 0)
		return ret;
	if (b->recs.failed || b->bytes.failed)
		return -ENOMEM;
	pthread_mutex_lock(&pp->mu);
	b->state = B_FULL;
	pthread_cond_broadcast(&pp->cv);
	pthread_mutex_unlock(&pp->mu);
	pp->pending = pp->fill;
	pp->fill ^= 1;
	return 0;
}

/* A record (n cells), or a bad one (reason, raw), into the block. */
static int pipe_add(struct run *r, uint64_t line, const struct cell *cl, size_t n,
		    const char *reason, const char *raw, size_t rawlen)
{
	struct block *b = &r->pipe->blk[r->pipe->fill];
	struct brec h = { line, reason ? BAD_RECORD : (uint32_t)n };

	gbuf_add(&b->recs, &h, sizeof(h));
	if (reason) {
		struct bcell bc[2] = { { 0 } };

		bc[0].off = blk_bytes(b, reason, strlen(reason), 1);
		bc[1].off = blk_bytes(b, raw, rawlen, 0);
		bc[1].len = (uint32_t)rawlen;
		gbuf_add(&b->recs, bc, sizeof(bc));
	}
	for (size_t i = 0; i < n && !reason; i++) {
		struct bcell bc;

		bc.off = blk_bytes(b, cl[i].p, cl[i].len, 0);
		bc.len = (uint32_t)cl[i].len;
		bc.koff = blk_bytes(b, cl[i].key, cl[i].klen, 0);
		bc.klen = (uint32_t)cl[i].klen;
		bc.bcol = cl[i].bcol;
		bc.kind = cl[i].kind;
		gbuf_add(&b->recs, &bc, sizeof(bc));
	}
	if (b->recs.n + b->bytes.n < BLOCK_BYTES)
		return b->recs.failed || b->bytes.failed ? -ENOMEM : 0;
	return pipe_handoff(r);
}

/* Start the worker; 0 with r->pipe NULL when no thread can be had. */
static int pipe_start(struct run *r)
{
	struct pipe *pp = calloc(1, sizeof(*pp));

	if (!pp)
		return -ENOMEM;
	pp->pending = -1;
	pthread_mutex_init(&pp->mu, NULL);
	pthread_cond_init(&pp->cv, NULL);
	r->pipe = pp;
	if (pthread_create(&pp->th, NULL, pipe_worker, r) != 0) {
		log_debug("ingest: no worker thread; pass 2 runs serially");
		pthread_mutex_destroy(&pp->mu);
		pthread_cond_destroy(&pp->cv);
		free(pp);
		r->pipe = NULL;
		return 0;
	}
	r->ocsv.held = r->ojsonl.held = r->oq.held = 1;
	return 0;
}

/* Drain (when ok), stop the worker and free the pipeline. */
static int pipe_stop(struct run *r, int ok)
{
	struct pipe *pp = r->pipe;
	int ret = 0;

	if (!pp)
		return 0;
	if (ok && (ret = pipe_handoff(r)) == 0)
		ret = pipe_collect(r);
	pthread_mutex_lock(&pp->mu);
	pp->quit = 1;
	pthread_cond_broadcast(&pp->cv);
	pthread_mutex_unlock(&pp->mu);
	pthread_join(pp->th, NULL);
	r->out->rows_read += pp->nread;
	pthread_mutex_destroy(&pp->mu);
	pthread_cond_destroy(&pp->cv);
	for (int k = 0; k < 2; k++) {
		free(pp->blk[k].recs.p);
		free(pp->blk[k].bytes.p);
		free(pp->blk[k].csv.p);
		free(pp->blk[k].jsonl.p);
		free(pp->blk[k].q.p);
	}
	free(pp->cells);
	free(pp);
	r->pipe = NULL;
	r->ocsv.held = r->ojsonl.held = r->oq.held = 0;
	return ret;
}

/* Callbacks stop the parser with 1; what went wrong is in r->ret. */
static int stop(struct run *r, int ret)
{
	if (ret == 0)
		return 0;
	if (!r->ret)
		r->ret = ret;
	return 1;
}

/* A record of pass 2 or the check pass: counted, and room for its n
 * cells (kept for the run); NULL without memory. */
static struct cell *rec_cells(struct run *r, size_t n)
{
	if (r->pipe)
		r->pipe->nread++;
	else
		r->out->rows_read += r->pass == P_EMIT;
	if (n >= r->capcells &&
	    grow_array((void **)&r->cells, &r->capcells, n + 1, sizeof(*r->cells),
		       SIZE_MAX, NULL) < 0)
		return NULL;
	return r->cells;
}

/* A record's cells to the worker, or through the row path here. */
static int rec_out(struct run *r, uint64_t line, const struct cell *c, size_t n)
{
	if (r->pipe)
		return stop(r, pipe_add(r, line, c, n, NULL, NULL, 0));
	return stop(r, row_done(r, line, c, n));
}

static int csv_rec(void *arg, uint64_t recno, uint64_t line,
		   const struct csv_field *f, size_t n)
{
	struct run *r = arg;
	struct cell *c;

	(void)recno;
	if (r->pass == P_INFER) {
		r->nrec++;
		return stop(r, csv_rec1(r, f, n));
	}
	if (!(c = rec_cells(r, n)))
		return stop(r, -ENOMEM);
	for (size_t i = 0; i < n; i++) {
		c[i].p = f[i].p;
		c[i].len = f[i].len;
		c[i].key = NULL;
		c[i].klen = 0;
		c[i].kind = f[i].len ? K_TEXT :
			f[i].quoted ? LT_JSON_STRING : LT_JSON_NULL;
		c[i].bcol = i < r->nb ? (int)i : -1;
	}
	return rec_out(r, line, c, n);
}

static int json_rec(void *arg, uint64_t recno, uint64_t line,
		    const struct json_field *f, size_t n)
{
	struct run *r = arg;
	struct cell *c;

	(void)recno;
	if (r->pass == P_INFER) {
		r->nrec++;
		return stop(r, json_rec1(r, f, n));
	}
	if (!(c = rec_cells(r, n)))
		return stop(r, -ENOMEM);
	for (size_t i = 0; i < n; i++) {
		c[i].p = f[i].val;
		c[i].len = f[i].vlen;
		c[i].key = f[i].key;
		c[i].klen = f[i].klen;
		c[i].kind = (int)f[i].type;
		c[i].bcol = km_get(&r->km, i, f[i].key, f[i].klen, 0);
	}
	return rec_out(r, line, c, n);
}

static int bad_rec(void *arg, uint64_t line, const char *reason, const char *raw,
		   size_t rawlen)
{
	struct run *r = arg;

	if (r->pass == P_INFER)
		r->nbad++;
	if (r->pass != P_EMIT)
		return 0;
	if (r->pipe) {
		r->pipe->nread++;
		return stop(r, pipe_add(r, line, NULL, 0, reason, raw, rawlen));
	}
	r->out->rows_read++;
	r->out->rows_quarantined++;
	return stop(r, q_line(r, line, reason, NULL, raw, rawlen));
}

/*
 * Parse the batch once in r->pass. 0; 1 with the batch quarantined
 * (r->batch_reason); -errno with *err.
 */
static int run_pass(struct run *r)
{
	struct csv_opts co = CSV_OPTS_INIT;
	const char *perr;
	int ret;

	r->ret = 0;
	r->fed = 0;
	if ((ret = src_rewind(&r->src)) < 0)
		return ret;
	if (r->fmt == IF_CSV) {
		co.delim = r->c->csv_delim;
		co.header = r->c->csv_header;
		ret = csv_new(&r->csvp, &co, csv_rec, bad_rec, r);
		if (ret == -EINVAL)
			return fail(r, ret, "bad csv delimiter '%c' (use , ; tab or |)",
				    r->c->csv_delim);
	} else {
		ret = json_new(&r->jsonp, NULL, json_rec, bad_rec, r);
	}
	if (ret < 0)
		return ret;
	for (;;) {
		ssize_t n = src_read(&r->src, r->buf, CHUNK);

		if (n == -EBADMSG)
			return r->pass == P_INFER ? quarantine_batch(r, "%s", r->src.why) :
				fail(r, -EIO, "'%s' changed while read: %s",
				     src_name(r), r->src.why);
		if (n < 0)
			return io_fail(r, (int)n, "read the batch");
		if (n == 0)
			break;
		ret = r->fmt == IF_CSV ? csv_feed(r->csvp, r->buf, (size_t)n) :
			json_feed(r->jsonp, r->buf, (size_t)n);
		if (ret)
			break;
		r->fed += (uint64_t)n;
		if (r->spec && r->pass == P_INFER && r->fed >= SPEC_SAMPLE)
			break;	/* the sample: a record cut by its end is not seen */
	}
	if (!ret && !(r->spec && r->pass == P_INFER && r->fed >= SPEC_SAMPLE))
		ret = r->fmt == IF_CSV ? csv_finish(r->csvp) : json_finish(r->jsonp);
	if (ret == 1)
		return r->ret;
	if (ret == -EINVAL) {
		perr = r->fmt == IF_CSV ? csv_error(r->csvp) : json_error(r->jsonp);
		return quarantine_batch(r, "not %s: %s", r->fmt == IF_CSV ? "CSV" :
					"JSON", perr);
	}
	if (r->fmt == IF_CSV && r->pass == P_INFER)	/* the worker reads it later */
		r->delim = csv_delimiter(r->csvp);
	return ret;
}

static void parser_free(struct run *r)
{
	csv_free(r->csvp);
	json_free(r->jsonp);
	r->csvp = NULL;
	r->jsonp = NULL;
}

/* ---- the old table, re-read for a rewrite ---- */

static int old_rec(void *arg, uint64_t recno, uint64_t line,
		   const struct csv_field *f, size_t n)
{
	struct run *r = arg;
	int ret;

	(void)recno;
	(void)line;
	if (!r->omapped) {
		const struct csv_field *h = csv_header(r->csvp, &r->nomap);
		char name[LT_NAME_MAX + 1];

		r->omap = calloc(r->nomap ? r->nomap : 1, sizeof(*r->omap));
		if (!r->omap)
			return stop(r, -ENOMEM);
		for (size_t i = 0; i < r->nomap; i++) {
			snprintf(name, sizeof(name), "%.*s", (int)MIN(h[i].len, LT_NAME_MAX),
				 h[i].p);
			r->omap[i] = strcmp(name, LT_RESCUED) == 0 ? r->rcol :
				lt_schema_find(&r->ev.schema, name);
		}
		r->omapped = 1;
	}
	r->scratch.n = 0;
	for (size_t i = 0; i < r->ncol; i++)
		val_null(&r->vals[i]);
	for (size_t i = 0; i < n && i < r->nomap; i++) {
		struct cell c = { f[i].p, f[i].len, NULL, 0,
				  f[i].len ? K_TEXT : f[i].quoted ? LT_JSON_STRING :
				  LT_JSON_NULL, (int)i };
		int t = r->omap[i];

		if (t < 0)
			continue;
		if (r->cols[t].rescued) {
			c.kind = f[i].len ? K_TEXT : LT_JSON_NULL;
			ret = put_val(r, &r->vals[t], LT_STRING, &c);
		} else {
			ret = put_val(r, &r->vals[t], r->cols[t].type, &c);
		}
		if (ret == -EINVAL) {
			log_warn("ingest: '%s': an old value of column '%s' does not fit "
				 "%s; it becomes null", src_name(r), r->cols[t].name,
				 lt_name(r->cols[t].type));
			val_null(&r->vals[t]);
		} else if (ret < 0) {
			return stop(r, ret);
		}
	}
	if (r->scratch.failed)
		return stop(r, -ENOMEM);
	for (size_t i = 0; i < r->ncol; i++)
		if (r->vals[i].scr)
			r->vals[i].p = (const char *)r->scratch.p + r->vals[i].off;
	if (r->c->nkey)
		return stop(r, ups_row(r, 0, 0));
	r->out->rows_total++;
	if ((ret = emit_row(r)) < 0)
		return stop(r, ret);
	return stop(r, flush_rows(r));
}

static int old_bad(void *arg, uint64_t line, const char *reason, const char *raw,
		   size_t rawlen)
{
	struct run *r = arg;

	(void)raw;
	(void)rawlen;
	return stop(r, fail(r, -EIO, "the current table's csv is unreadable at "
			    "line %llu: %s", (unsigned long long)line, reason));
}

static int read_old(struct run *r)
{
	struct csv_opts co = CSV_OPTS_INIT;
	struct src s;
	int ret;

	co.delim = ',';
	co.max_field = OLD_MAX;
	co.max_record = OLD_MAX;
	co.max_fields = LT_MAX_COLUMNS + 1;
	src_init(&s, r->cur->csv, SC_PLAIN);
	r->ret = 0;
	if ((ret = csv_new(&r->csvp, &co, old_rec, old_bad, r)) < 0)
		return ret;
	for (;;) {
		ssize_t n = src_read(&s, r->buf, CHUNK);

		if (n < 0)
			return fail(r, (int)n, "cannot read the current table's csv: %s",
				    strerror((int)-n));
		if (n == 0)
			break;
		if ((ret = csv_feed(r->csvp, r->buf, (size_t)n)) != 0)
			break;
	}
	if (!ret)
		ret = csv_finish(r->csvp);
	if (ret == 1)
		ret = r->ret;
	else if (ret == -EINVAL)
		ret = fail(r, -EIO, "the current table's csv is unreadable: %s",
			   csv_error(r->csvp));
	parser_free(r);
	return ret;
}

/* ---- the run ---- */

static int has_suffix(const char *s, size_t n, const char *suf)
{
	size_t k = strlen(suf);

	return n >= k && strncasecmp(s + n - k, suf, k) == 0;
}

static int format_of_name(const char *name, size_t n)
{
	static const struct {
		const char *ext;
		int fmt;
	} ext[] = {
		{ ".csv", IF_CSV }, { ".tsv", IF_CSV }, { ".txt", IF_CSV },
		{ ".json", IF_JSON }, { ".jsonl", IF_JSONL }, { ".ndjson", IF_JSONL },
	};

	for (size_t i = 0; i < ARRAY_SIZE(ext); i++)
		if (has_suffix(name, n, ext[i].ext))
			return ext[i].fmt;
	return IF_AUTO;
}

/* Compression, format, binary garbage. 0, 1 (quarantined), -errno. */
static int detect(struct run *r, struct ingest_reader *in, int *declared)
{
	const char *name = r->c->src_name ? r->c->src_name : "";
	size_t nlen = strlen(name), len = 0, i = 0;
	unsigned char m[4] = { 0 };
	int comp = SC_PLAIN, eof = 0, ret;
	ssize_t n;
	char why[128];

	n = 0;
	while ((size_t)n < sizeof(m)) {
		ssize_t k = in->pread(in->arg, m + n, sizeof(m) - (size_t)n, (uint64_t)n);

		if (k < 0)
			return io_fail(r, (int)k, "read the batch");
		if (k == 0)
			break;
		n += k;
	}
	if (has_suffix(name, nlen, ".gz"))
		comp = SC_GZIP, nlen -= 3;
	else if (has_suffix(name, nlen, ".zst"))
		comp = SC_ZSTD, nlen -= 4;
	if (n >= 2 && m[0] == 0x1f && m[1] == 0x8b)
		comp = SC_GZIP;
	else if (n >= 4 && m[0] == 0x28 && m[1] == 0xb5 && m[2] == 0x2f && m[3] == 0xfd)
		comp = SC_ZSTD;
	*declared = r->c->format != IF_AUTO ? (int)r->c->format : format_of_name(name, nlen);
	r->fmt = *declared == IF_JSONL ? IF_JSON : *declared;
	if ((ret = src_init(&r->src, in, comp)) < 0)
		return ret;
	while (len < SNIFF) {
		n = src_read(&r->src, r->buf + len, SNIFF - len);
		if (n == -EBADMSG)
			return quarantine_batch(r, "%s", r->src.why);
		if (n < 0)
			return io_fail(r, (int)n, "read the batch");
		if (n == 0) {
			eof = 1;
			break;
		}
		len += (size_t)n;
	}
	if (r->fmt == IF_AUTO) {
		if (len >= 3 && memcmp(r->buf, "\xef\xbb\xbf", 3) == 0)
			i = 3;
		while (i < len && (r->buf[i] == ' ' || r->buf[i] == '\t' ||
				   r->buf[i] == '\r' || r->buf[i] == '\n'))
			i++;
		r->fmt = i < len && (r->buf[i] == '{' || r->buf[i] == '[') ? IF_JSON : IF_CSV;
	}
	if (text_looks_binary(r->buf, len, !eof, why, sizeof(why)))
		return quarantine_batch(r, "binary data, not text: %s", why);
	return 0;
}

static int ocols_init(struct run *r)
{
	const struct lt_schema *s = &r->ev.schema;
	struct gbuf k = { 0 };

	r->ncol = s->n + (s->has_rescued ? 1 : 0);
	r->rcol = s->has_rescued ? (int)s->n : -1;
	r->cols = calloc(r->ncol ? r->ncol : 1, sizeof(*r->cols));
	r->vals = calloc(r->ncol ? r->ncol : 1, sizeof(*r->vals));
	if (!r->cols || !r->vals)
		return -ENOMEM;
	for (size_t i = 0; i < r->ncol; i++) {
		struct ocol *c = &r->cols[i];

		c->rescued = (int)i == r->rcol;
		c->name = c->rescued ? LT_RESCUED : s->cols[i].name;
		c->type = c->rescued ? LT_STRING : s->cols[i].type;
		k.n = 0;
		lt_json_quote(&k, c->name, strlen(c->name));
		gbuf_add(&k, ":", 1);
		if (k.failed || !(c->jkey = malloc(k.n)))
			break;
		memcpy(c->jkey, k.p, k.n);
		c->jkeylen = k.n;
	}
	free(k.p);
	for (size_t i = 0; i < r->ncol; i++)
		if (!r->cols[i].jkey)
			return -ENOMEM;
	return 0;
}

static int needs_rewrite(const struct lt_schema *old, const struct lt_schema *now,
			 const struct ingest_table *cur, size_t nkey)
{
	if (!cur->csv || nkey || !old->n)
		return 1;
	if (old->n != now->n || old->has_rescued != now->has_rescued)
		return 1;
	for (size_t i = 0; i < old->n; i++)
		if (old->cols[i].type != now->cols[i].type && old->cols[i].type != LT_NULL)
			return 1;
	return 0;
}

static int find_columns(struct run *r)
{
	const struct ingest_conf *c = r->c;

	r->keyidx = calloc(c->nkey ? c->nkey : 1, sizeof(*r->keyidx));
	if (!r->keyidx)
		return -ENOMEM;
	for (size_t k = 0; k < c->nkey; k++) {
		int i = c->key[k] ? lt_schema_find(&r->ev.schema, c->key[k]) : -1;

		if (i < 0)
			return fail(r, -EINVAL, "key column '%s' is not a column of the "
				    "table", c->key[k] ? c->key[k] : "(null)");
		r->keyidx[k] = i;
	}
	r->seqidx = -1;
	if (c->sequence_by) {
		r->seqidx = lt_schema_find(&r->ev.schema, c->sequence_by);
		if (r->seqidx < 0)
			return fail(r, -EINVAL, "sequence_by column '%s' is not a column "
				    "of the table", c->sequence_by);
	}
	return 0;
}

static int write_results(struct run *r)
{
	struct ingest_out *o = r->out;
	const struct ingest_conf *c = r->c;
	struct gbuf b = { 0 };

	if (r->evolved) {
		if (lt_evolution_changes_json(&r->ev, &b) < 0)
			return -ENOMEM;
	} else {
		gbuf_add(&b, "[]", 2);
	}
	o->changes = (char *)b.p;
	memset(&b, 0, sizeof(b));
	gbuf_add(&b, "{", 1);
	for (size_t k = 0; k < c->nexpect; k++) {
		static const char *const act[] = { "warn", "drop", "fail" };

		if (k)
			gbuf_add(&b, ",", 1);
		lt_json_quote(&b, c->expect[k].name, strlen(c->expect[k].name));
		gbuf_printf(&b, ":{\"action\":\"%s\",\"failed\":%llu}",
			    (unsigned)c->expect[k].action < 3 ? act[c->expect[k].action] : "warn",
			    (unsigned long long)(r->efailed ? r->efailed[k] : 0));
	}
	gbuf_add(&b, "}", 1);
	o->expectations = (char *)b.p;
	if (b.failed || !o->changes)
		return -ENOMEM;
	return 0;
}

static int run_batch(struct run *r, struct ingest_reader *in)
{
	const struct ingest_conf *c = r->c;
	const struct lt_schema *old = r->cur->schema;
	static const struct lt_schema none;
	struct ingest_out *o = r->out;
	int ret, declared = IF_AUTO;

	if (!old)
		old = &none;
	if ((ret = detect(r, in, &declared)) != 0)
		goto format;
	r->pass = P_INFER;
	if (r->fmt == IF_JSON && (ret = km_init(&r->km)) < 0)
		return ret;
	ret = run_pass(r);
	if (ret == 0)
		ret = make_names(r);
	/* a sample decides only for a CSV with a header: its columns are fixed */
	if (r->spec && (ret != 0 || r->fmt != IF_CSV || !r->nhdr || !r->nb))
		return -EAGAIN;
	if (r->fmt == IF_JSON && r->jsonp && json_form(r->jsonp) == JSON_FORM_LINES)
		declared = IF_JSONL;
	parser_free(r);
format:
	o->format = strdup(r->fmt == IF_JSON ? (declared == IF_JSONL ? "jsonl" : "json") :
			   "csv");
	if (!o->format)
		return -ENOMEM;
	if (ret != 0)
		return ret;

	if (r->nb == 0 && (r->nrec == 0 || old->n == 0)) {
		/* nothing to write: bad records only go to quarantine */
		if (lt_schema_copy(&o->schema, old) < 0)
			return -ENOMEM;
		o->rows_total = r->cur->rows;
		o->rows_read = r->nrec;
		if (!r->nbad)
			return 0;
		o->rows_read = 0;	/* pass 2 counts them all */
		r->discard = 1;
		r->pass = P_EMIT;
		ret = run_pass(r);
		parser_free(r);
		return ret;
	}

	if (lt_evolve(old, c->mode, (const char *const *)r->names, r->btypes, r->nb,
		      &r->ev) < 0)
		return fail(r, -ENOMEM, "cannot evolve the schema for '%s'", src_name(r));
	r->evolved = 1;
	if (r->ev.reason && r->spec)
		return -EAGAIN;		/* its figures need the whole batch */
	if (r->ev.reason)
		return quarantine_batch(r, "%s", r->ev.reason);
	if ((ret = ocols_init(r)) < 0)
		return ret;
	if ((ret = find_columns(r)) < 0)
		return ret;
	if ((ret = expect_prepare(r)) < 0)
		return ret;
	if (r->has_fail) {
		r->pass = P_CHECK;
		ret = run_pass(r);
		parser_free(r);
		if (ret)
			return ret;
	}
	if (c->nkey && (ret = ups_open(r)) < 0)
		return ret;

	o->rewrite = needs_rewrite(old, &r->ev.schema, r->cur, c->nkey);
	r->began = 1;
	if (o->begin && (ret = o->begin(o->begin_arg, o->rewrite)) < 0)
		return fail(r, ret, "cannot start writing the table for '%s': %s",
			    src_name(r), strerror(-ret));
	if (o->rewrite) {
		emit_header(r);
		if (r->cur->csv && old->n && (ret = read_old(r)) < 0)
			return ret;
	} else {
		o->rows_total = r->cur->rows;
	}
	r->pass = P_EMIT;
	if ((ret = ob_flush(&r->ocsv)) < 0 || (ret = ob_flush(&r->ojsonl)) < 0)
		return ret;
	if (!r->est && !c->nkey && (ret = pipe_start(r)) < 0)
		return ret;
	ret = run_pass(r);
	parser_free(r);
	ret = ret ? (pipe_stop(r, 0), ret) : pipe_stop(r, 1);
	if (ret)
		return ret;
	if (c->nkey) {
		if ((ret = ups_exec(r, "COMMIT")) < 0 || (ret = ups_emit(r)) < 0)
			return ret;
	} else {
		o->rows_total += o->rows_written;
	}
	if (lt_schema_copy(&o->schema, &r->ev.schema) < 0)
		return -ENOMEM;
	return 0;
}

static void run_release(struct run *r)
{
	pipe_stop(r, 0);
	parser_free(r);
	src_release(&r->src);
	free(r->buf);
	free(r->btypes);
	km_release(&r->km);
	if (r->names)
		lt_names_free(r->names, r->nb);
	lt_evolution_release(&r->ev);
	for (size_t i = 0; i < r->ncol; i++)
		free(r->cols[i].jkey);
	free(r->cols);
	free(r->vals);
	free(r->scratch.p);
	free(r->raw.p);
	free(r->rn);
	free(r->rv);
	free(r->rl);
	free(r->cells);
	for (size_t i = 0; i < r->nextra; i++)
		free(r->extra[i]);
	free(r->extra);
	free(r->batch_reason);
	free(r->omap);
	free(r->efailed);
	sqlite3_finalize(r->est);
	sqlite3_close(r->edb);
	sqlite3_finalize(r->uins);
	sqlite3_finalize(r->udel);
	sqlite3_close(r->udb);
	if (r->upath)
		unlink(r->upath);
	free(r->upath);
	free(r->keyidx);
	free(r->ocsv.b.p);
	free(r->ojsonl.b.p);
	free(r->oq.b.p);
	free(r);
}

/* The batch as a whole to quarantine: its line, the figures. */
static int batch_quarantined(struct run *r)
{
	struct ingest_out *o = r->out;
	const struct lt_schema *old = r->cur->schema;
	static const struct lt_schema none;

	o->batch_reason = r->batch_reason;
	r->batch_reason = NULL;
	o->rewrite = 0;
	o->rows_read = r->nrec + r->nbad;
	o->rows_quarantined = o->rows_read;
	o->rows_written = o->rows_dropped = o->rows_deleted = 0;
	o->rows_total = r->cur->rows;
	r->evolved = 0;		/* no change to report */
	if (lt_schema_copy(&o->schema, old ? old : &none) < 0)
		return -ENOMEM;
	if (!r->batch_exp)
		r->raw.n = 0;
	return q_line(r, r->batch_exp ? r->batch_line : 0, o->batch_reason,
		      r->batch_exp, r->raw.p ? (const char *)r->raw.p : "", r->raw.n);
}

/*
 * Inference from a sample. Pass 1 over a big batch costs as much as
 * parsing it again; when the batch is a CSV with a header (its columns
 * are fixed) under addNewColumns or failOnNewColumns, without a key or a
 * fail expectation, pass 1 reads only its first SPEC_SAMPLE bytes. The
 * result is the same as from the whole batch exactly when every later
 * value fits the column evolved from the sample (a column's type is the
 * widest of its values, so none wider exists); pass 2 checks each value
 * anyway, and the first that does not fit, like any batch-level decision
 * taken on the sample, ends the attempt (-EAGAIN): out->restart()
 * discards what was written and the run starts over from the top with a
 * full pass 1.
 */
static int may_speculate(const struct ingest_conf *c, const struct ingest_reader *src,
			 const struct ingest_out *out)
{
	if (!out->restart || src->size < SPEC_MIN || c->nkey ||
	    (c->mode != LT_ADD_NEW_COLUMNS && c->mode != LT_FAIL_ON_NEW_COLUMNS))
		return 0;
	for (size_t i = 0; i < c->nexpect; i++)
		if (c->expect[i].action == IX_FAIL)
			return 0;
	return 1;
}

int ingest_run(const struct ingest_conf *c, struct ingest_reader *src,
	       const struct ingest_table *cur, struct ingest_out *out,
	       char **err)
{
	static const struct ingest_table empty;
	struct run *r;
	int ret;

	if (err)
		*err = NULL;
	if (!out)
		return -EINVAL;
	memset(&out->schema, 0, sizeof(out->schema));
	out->changes = out->expectations = out->batch_reason = out->format = NULL;
	out->rewrite = 0;
	out->rows_read = out->rows_written = out->rows_dropped = 0;
	out->rows_quarantined = out->rows_deleted = out->rows_total = 0;
	if (!c || !src || !src->pread)
		return -EINVAL;
	for (int attempt = 0;; attempt++) {
		r = calloc(1, sizeof(*r));
		if (!r || !(r->buf = malloc(CHUNK))) {
			free(r);
			return -ENOMEM;
		}
		r->c = c;
		r->cur = cur ? cur : &empty;
		r->out = out;
		r->err = err;
		r->ocsv.w = &out->csv;
		r->ojsonl.w = &out->jsonl;
		r->oq.w = &out->quarantine;
		r->spec = attempt == 0 && may_speculate(c, src, out);
		ret = run_batch(r, src);
		if (!r->spec || (ret != -EAGAIN && ret != 1))
			break;
		/* the sample misled: discard what was written, start over */
		if (r->began && (ret = out->restart(out->begin_arg)) < 0) {
			fail(r, ret, "cannot start '%s' over: %s", src_name(r),
			     strerror(-ret));
			break;
		}
		if (err) {
			free(*err);
			*err = NULL;
		}
		ingest_out_release(out);
		out->rewrite = 0;
		out->rows_read = out->rows_written = out->rows_dropped = 0;
		out->rows_quarantined = out->rows_deleted = out->rows_total = 0;
		run_release(r);
	}
	if (ret == 1)
		ret = batch_quarantined(r);
	if (ret == 0)
		ret = write_results(r);
	if (ret == 0 && (ret = ob_flush(&r->ocsv)) == 0 &&
	    (ret = ob_flush(&r->ojsonl)) == 0)
		ret = ob_flush(&r->oq);
	if (ret < 0) {
		if (err && !*err)
			fail(r, ret, "cannot ingest '%s': %s", src_name(r), strerror(-ret));
		ingest_out_release(out);
	}
	run_release(r);
	return ret;
}

void ingest_out_release(struct ingest_out *out)
{
	if (!out)
		return;
	lt_schema_free(&out->schema);
	free(out->changes);
	free(out->expectations);
	free(out->batch_reason);
	free(out->format);
	out->changes = out->expectations = out->batch_reason = out->format = NULL;
}

/* No ';' outside quotes, no ')' closing what the expression did not open. */
static const char *expr_shape(const char *e)
{
	char q = 0;
	long depth = 0;

	for (const char *p = e; *p; p++) {
		if (q) {
			if (*p == q)
				q = 0;
			continue;
		}
		switch (*p) {
		case '\'':
		case '"':
		case '`':
			q = *p;
			break;
		case '[':
			q = ']';
			break;
		case '(':
			depth++;
			break;
		case ')':
			if (--depth < 0)
				return "a ')' closes more than the expression opened";
			break;
		case ';':
			return "';' outside quotes: one expression only";
		}
	}
	return NULL;
}

int ingest_check_expr(const char *expr, char **err)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	const char *why, *tail = NULL;
	char *sql = NULL;
	int ret = 0;

	if (err)
		*err = NULL;
	if (!expr || !*expr)
		why = "empty expression";
	else
		why = expr_shape(expr);
	if (why)
		goto out;
	if (asprintf(&sql, "SELECT (%s)", expr) < 0) {
		sql = NULL;
		ret = -ENOMEM;
		goto out;
	}
	if (sqlite3_open_v2(":memory:", &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
		ret = -ENOMEM;
		goto out;
	}
	if (sqlite3_prepare_v2(db, sql, -1, &st, &tail) != SQLITE_OK) {
		const char *msg = sqlite3_errmsg(db);

		if (strncmp(msg, "no such column", 14) != 0)
			why = msg;
	} else if (!st || (tail && tail[strspn(tail, " \t\r\n")]) ||
		   sqlite3_column_count(st) != 1) {
		why = "not one SQL expression";
	}
out:
	if (why && err && asprintf(err, "bad expression: %s", why) < 0)
		*err = NULL;
	if (why && !ret)
		ret = -EINVAL;
	sqlite3_finalize(st);
	sqlite3_close(db);
	free(sql);
	return ret;
}

int ingest_format_parse(const char *s, enum ingest_format *out)
{
	static const struct {
		const char *name;
		enum ingest_format f;
	} f[] = {
		{ "auto", IF_AUTO }, { "csv", IF_CSV }, { "json", IF_JSON },
		{ "jsonl", IF_JSONL },
	};

	for (size_t i = 0; s && i < ARRAY_SIZE(f); i++)
		if (strcmp(s, f[i].name) == 0) {
			*out = f[i].f;
			return 0;
		}
	return -EINVAL;
}
