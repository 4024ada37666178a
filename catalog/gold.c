/*
 * catalog/gold.c — gold tables: a NAME.sql file in a catalog's gold schema
 * defines table NAME; its result is gold/NAME/, shaped like a silver table.
 *
 * Definition. A regular file in a gold schema whose name is NAME.sql (NAME
 * a securable name) is a definition. When it is closed after a write (the
 * FUSE flush of a descriptor opened for writing) or renamed onto its name,
 * its text is compiled against every table lakefs knows (catalog/sqlq.c:
 * one read-only SELECT, declared tables only). A bad definition fails that
 * close() with EINVAL, its message goes to gold/NAME/_error and the log,
 * and the installed definition and data stay as they were; a rename cannot
 * fail that way, so it reports through _error alone. A good one is
 * installed: the catalog records below, gold/NAME/ made if new, _error
 * removed, a refresh queued. A file named .NAME.sql (a leading dot) is
 * checked the same way and never installed: `lakefs gold check` writes
 * one, reads the verdict from its user.lakefs.error attribute and removes
 * it. An empty file is no definition yet. Removing NAME.sql drops the
 * table (gold/NAME/ and its records); renaming it away does not.
 *
 * Records (K), per gold table directory G:
 *   gdef/G        the installed SQL text
 *   gdep/G        the tables it reads, one per line ("silver.T",
 *                 "gold.T", "bronze.T", "CAT.silver.T")
 *   gcol/G        its column names as prepared, one per line (declares
 *                 the table to queries over it before its first refresh)
 *   gst/G         "version=N rows=R " after each refresh
 *   gst/G/schema  the result's schema (_schema.json text)
 * A dependency cycle (through gdep) is refused like a bad query.
 *
 * Refresh. A job on the lake's workers, never on a FUSE thread: compile
 * the installed text again (the inputs' columns may have changed), pin
 * every input at its current version (an open file keeps its bytes), run
 * into unnamed files and publish NAME.csv, NAME.jsonl, _schema.json and
 * _history.jsonl with the records and the job's end in one transaction
 * (vfs_publish): a reader sees version N or N+1, never a mix, and a
 * refresh that fails publishes only _error, so N stays. A job interrupted
 * by a crash runs again at the next start. Triggers:
 *   - on-change (the default): a new version of an input (a silver table's
 *     promotion, a gold table's refresh) asks for a refresh 300 ms later;
 *     more asks push it later, for at most 3 s after the first, so a
 *     burst of batches makes one refresh; gold over gold follows in
 *     dependency order because a refresh asks its dependents when it
 *     publishes;
 *   - user.lakefs.schedule on gold/NAME: "every N" with s, m, h or d,
 *     a five-field cron expression (minute hour day month weekday: *,
 *     lists, ranges, steps; day and weekday both restricted match either),
 *     or "manual" (only lakefs run);
 *   - lakefs run (user.lakefs.run on gold/NAME).
 *
 * Locking: as lake.c. The maps of pending refreshes live under l->lock;
 * nothing here holds it across a vfs or sqlq call.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "catalog/lake_int.h"
#include "catalog/meta.h"
#include "catalog/sqlq.h"
#include "util/log.h"
#include "util/util.h"

#define SQL_MAX (1u << 20)		/* bytes of a definition */
#define DEBOUNCE_NS (300ull * 1000000)	/* an input changed: refresh after */
#define DEBOUNCE_MAX_NS (3000ull * 1000000)
#define QUERY_TIMEOUT_MS 600000
#define QUERY_MEMORY (64ull << 20)

/* ---- small helpers ---- */

static int has_sql_suffix(const char *name, size_t *base)
{
	size_t n = strlen(name);

	if (n <= 4 || strcmp(name + n - 4, ".sql") != 0)
		return 0;
	*base = n - 4;
	return 1;
}

static int is_gold_schema(struct lake *l, uint64_t dir)
{
	struct lk_sec s;

	return lk_sec_get(l, dir, &s) == 0 && s.kind == LK_SCHEMA && s.layer == LY_GOLD;
}

static int get_text(struct lake *l, const char *what, uint64_t ino, char **val)
{
	char key[64];
	size_t len;

	lk_key(key, sizeof(key), what, ino);
	return meta_get_kv(l->m, key, val, &len);
}

/* the gold table directory NAME in a gold schema, or 0 */
static uint64_t gold_dir_of(struct lake *l, uint64_t schema, const char *name)
{
	uint64_t ino;
	struct lk_sec s;

	if (meta_lookup(l->m, schema, name, &ino, NULL, NULL) < 0 ||
	    lk_sec_get(l, ino, &s) < 0 || s.kind != LK_TABLE || s.layer != LY_GOLD)
		return 0;
	return ino;
}

/* the catalog a table or schema belongs to */
static uint64_t catalog_of(struct lake *l, uint64_t sec)
{
	struct lk_sec s;

	for (int i = 0; i < 4 && lk_sec_get(l, sec, &s) == 0; i++) {
		if (s.kind == LK_CATALOG)
			return sec;
		sec = s.parent;
	}
	return 0;
}

/* Read a whole (small) file through the vfs: *out malloc'ed, NUL-terminated. */
static int read_small(struct lake *l, uint64_t ino, size_t max, char **out, size_t *len)
{
	struct vfs_file *f;
	struct stat st;
	char *buf;
	ssize_t n;
	int err;

	if ((err = vfs_getattr(l->v, ino, &st)) < 0)
		return err;
	if ((uint64_t)st.st_size > max)
		return -EFBIG;
	if ((err = vfs_open(l->v, ino, O_RDONLY, &f)) < 0)
		return err;
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		vfs_release(l->v, f);
		return -ENOMEM;
	}
	n = st.st_size ? vfs_read(l->v, f, buf, (size_t)st.st_size, 0) : 0;
	vfs_release(l->v, f);
	if (n < 0) {
		free(buf);
		return (int)n;
	}
	buf[n] = '\0';
	*out = buf;
	*len = (size_t)n;
	return 0;
}

/* ---- the tables a query may read ---- */

struct tref {
	char catalog[LAKE_NAME_MAX + 1];
	char layer[8];
	char name[LAKE_NAME_MAX + 1];
	int own;			/* in the query's catalog */
	struct lt_schema schema;
	uint64_t *inos;			/* silver/gold: the CSV; bronze: the files */
	size_t n, cap;
	struct vfs_file **pin;		/* opened when the query depends on it */
	uint64_t version;
	struct lake *l;
};

struct tables {
	struct tref *t;
	size_t n, cap;
	struct lake *l;
	uint64_t own;
	uint32_t reader;	/* whose privileges decide what is declared */
	struct lake_who who;	/* the reader's groups, once (who.uid set) */
	int have_who;
};

static void tables_free(struct tables *ts)
{
	for (size_t i = 0; i < ts->n; i++) {
		struct tref *t = &ts->t[i];

		for (size_t k = 0; t->pin && k < t->n; k++)
			if (t->pin[k])
				vfs_release(ts->l->v, t->pin[k]);
		free(t->pin);
		free(t->inos);
		lt_schema_free(&t->schema);
	}
	free(ts->t);
	memset(ts, 0, sizeof(*ts));
}

static int tref_add_ino(struct tref *t, uint64_t ino)
{
	if (grow_array((void **)&t->inos, &t->cap, t->n + 1, sizeof(*t->inos), SIZE_MAX,
		       NULL) < 0)
		return -ENOMEM;
	t->inos[t->n++] = ino;
	return 0;
}

static int schema_from_kv(struct lake *l, const char *key, struct lt_schema *out)
{
	char *val, *why = NULL;
	size_t len;
	int err = meta_get_kv(l->m, key, &val, &len);

	if (err < 0)
		return err;
	err = lt_schema_from_json(val, len, out, &why);
	free(val);
	free(why);
	return err;
}

/* a schema of STRING columns from "name\n..." */
static int schema_from_names(const char *names, struct lt_schema *out)
{
	size_t cap = 0;

	memset(out, 0, sizeof(*out));
	for (const char *p = names; *p;) {
		size_t k = strcspn(p, "\n");

		if (k) {
			if (grow_array((void **)&out->cols, &cap, out->n + 1,
				       sizeof(*out->cols), SIZE_MAX, NULL) < 0)
				return -ENOMEM;
			out->cols[out->n].name = strndup(p, k);
			out->cols[out->n].type = LT_STRING;
			out->cols[out->n].nullable = 1;
			out->cols[out->n].added_in = 1;
			if (!out->cols[out->n++].name)
				return -ENOMEM;
		}
		p += k;
		if (*p)
			p++;
	}
	return out->n ? 0 : -ENOENT;
}

struct walk {
	struct lake *l;
	struct tref *t;
	int depth;
};

static int bronze_file(void *arg, const char *name, uint64_t ino, uint32_t mode,
		       uint64_t cookie);

static int bronze_walk(struct walk *w, uint64_t dir)
{
	return meta_readdir(w->l->m, dir, 0, bronze_file, w);
}

static int bronze_file(void *arg, const char *name, uint64_t ino, uint32_t mode,
		       uint64_t cookie)
{
	struct walk *w = arg;

	(void)cookie;
	if (name[0] == '.')
		return 0;
	if (S_ISREG(mode))
		return tref_add_ino(w->t, ino) < 0 ? -ENOMEM : 0;
	if (S_ISDIR(mode) && w->depth < 16) {
		int err;

		w->depth++;
		err = bronze_walk(w, ino);
		w->depth--;
		return err;
	}
	return 0;
}

/* one table record: declare it when it has columns */
static int table_collect(void *arg, const char *key, const char *val, size_t len)
{
	struct tables *ts = arg;
	struct lake *l = ts->l;
	struct lk_sec s, sch, cat;
	struct tref t = { .l = l };
	char k[96], fname[LAKE_NAME_MAX + 8];
	uint64_t ino, csv;
	char *st;

	(void)len;
	if (strncmp(val, "table ", 6) != 0 || sscanf(key, "sec/%" SCNx64, &ino) != 1 ||
	    lk_sec_get(l, ino, &s) < 0 || lk_sec_get(l, s.parent, &sch) < 0 ||
	    lk_sec_get(l, sch.parent, &cat) < 0)
		return 0;
	/* a query sees only what its owner may READ: to anyone else a table
	 * it may not read does not exist (no name, no columns in errors) */
	if (!ts->have_who) {
		lk_acc_who_of(l, ts->reader, &ts->who);
		ts->have_who = 1;
	}
	if (!lk_acc_reads(l, &ts->who, ino))
		return 0;
	snprintf(t.catalog, sizeof(t.catalog), "%s", cat.name);
	snprintf(t.name, sizeof(t.name), "%s", s.name);
	t.own = sch.parent == ts->own;
	switch (s.layer) {
	case LY_SILVER:
		snprintf(t.layer, sizeof(t.layer), "silver");
		snprintf(k, sizeof(k), "tbl/%016" PRIx64 "/schema", s.src);
		if (schema_from_kv(l, k, &t.schema) < 0)
			return 0;
		snprintf(fname, sizeof(fname), "%s.csv", s.name);
		if (meta_lookup(l->m, ino, fname, &csv, NULL, NULL) == 0)
			tref_add_ino(&t, csv);
		lk_key(k, sizeof(k), "tbl", s.src);
		if (meta_get_kv(l->m, k, &st, &(size_t){ 0 }) == 0) {
			char *v = strstr(st, "version=");

			t.version = v ? strtoull(v + 8, NULL, 10) : 0;
			free(st);
		}
		break;
	case LY_GOLD:
		snprintf(t.layer, sizeof(t.layer), "gold");
		lk_key(k, sizeof(k), "gst", ino);
		strcat(k, "/schema");
		if (schema_from_kv(l, k, &t.schema) < 0) {
			char *names;

			if (get_text(l, "gcol", ino, &names) < 0)
				return 0;
			if (schema_from_names(names, &t.schema) < 0) {
				free(names);
				lt_schema_free(&t.schema);
				return 0;
			}
			free(names);
		}
		snprintf(fname, sizeof(fname), "%s.csv", s.name);
		if (meta_lookup(l->m, ino, fname, &csv, NULL, NULL) == 0)
			tref_add_ino(&t, csv);
		if (get_text(l, "gst", ino, &st) == 0) {
			char *v = strstr(st, "version=");

			t.version = v ? strtoull(v + 8, NULL, 10) : 0;
			free(st);
		}
		break;
	case LY_BRONZE: {
		struct walk w = { l, &t, 0 };

		snprintf(t.layer, sizeof(t.layer), "bronze");
		snprintf(k, sizeof(k), "tbl/%016" PRIx64 "/schema", ino);
		if (schema_from_kv(l, k, &t.schema) < 0)
			return 0;
		bronze_walk(&w, ino);
		break;
	}
	default:
		return 0;
	}
	if (grow_array((void **)&ts->t, &ts->cap, ts->n + 1, sizeof(*ts->t), SIZE_MAX,
		       NULL) < 0) {
		free(t.inos);
		lt_schema_free(&t.schema);
		return -ENOMEM;
	}
	ts->t[ts->n++] = t;
	return 0;
}

struct open_reader {
	struct in_file in;
	struct ingest_reader r;
};

static int tref_open(void *arg, size_t i, struct ingest_reader **out)
{
	struct tref *t = arg;
	struct open_reader *o;
	struct stat st;
	int err;

	if (!t->pin || i >= t->n || !t->pin[i])
		return -ENOENT;
	if (!(o = calloc(1, sizeof(*o))))
		return -ENOMEM;
	err = vfs_getattr(t->l->v, t->inos[i], &st);
	if (err < 0) {
		free(o);
		return err;
	}
	o->in.l = t->l;
	o->in.f = t->pin[i];
	o->r = (struct ingest_reader){ &o->in, lk_in_pread, (uint64_t)st.st_size };
	*out = &o->r;
	return 0;
}

static void tref_close(void *arg, size_t i, struct ingest_reader *r)
{
	(void)arg;
	(void)i;
	free(r ? (struct open_reader *)((char *)r - offsetof(struct open_reader, r)) : NULL);
}

/* Declare every table that reader may READ to a new query of catalog own. */
static int tables_declare(struct lake *l, uint64_t own, uint32_t reader,
			  struct tables *ts, struct sqlq **q, char **err)
{
	struct sqlq_limits lim = {
		l->opt.query_timeout_ms ? l->opt.query_timeout_ms : QUERY_TIMEOUT_MS,
		l->opt.query_memory ? l->opt.query_memory : QUERY_MEMORY, l->opt.tmp_dir };
	int ret;

	memset(ts, 0, sizeof(*ts));
	ts->l = l;
	ts->own = own;
	ts->reader = reader;
	if ((ret = meta_scan_kv(l->m, "sec/", table_collect, ts)) < 0)
		return ret;
	if ((ret = sqlq_new(q, &lim, err)) < 0)
		return ret;
	for (size_t i = 0; i < ts->n; i++) {
		struct tref *t = &ts->t[i];
		struct sqlq_table d = {
			.catalog = t->own ? NULL : t->catalog, .layer = t->layer,
			.name = t->name, .schema = &t->schema, .open = tref_open,
			.close = tref_close, .nfiles = t->layer[0] == 'b' ? t->n : 1,
			.arg = t,
		};

		if (t->layer[0] != 'b' && t->n == 0)
			d.nfiles = 0;	/* no data yet: an empty table */
		ret = sqlq_add_table(*q, &d);
		if (ret < 0 && ret != -EEXIST)
			log_warn("gold: cannot declare %s.%s.%s: %s", t->catalog, t->layer,
				 t->name, strerror(-ret));
	}
	return 0;
}

/* the tref a dependency string names */
static struct tref *tables_find(struct tables *ts, const char *dep)
{
	char a[LAKE_NAME_MAX + 1], b[8], c[LAKE_NAME_MAX + 1];
	int three = sscanf(dep, "%64[^.].%7[^.].%64s", a, b, c) == 3;

	for (size_t i = 0; i < ts->n; i++) {
		struct tref *t = &ts->t[i];

		if (three && !t->own && strcmp(t->catalog, a) == 0 &&
		    strcmp(t->layer, b) == 0 && strcmp(t->name, c) == 0)
			return t;
		if (!three && t->own && sscanf(dep, "%7[^.].%64s", b, c) == 2 &&
		    strcmp(t->layer, b) == 0 && strcmp(t->name, c) == 0)
			return t;
	}
	return NULL;
}

/* Open the inputs a prepared query reads; their versions as JSON. */
static int tables_pin(struct lake *l, struct tables *ts, struct sqlq *q, struct gbuf *inputs)
{
	size_t nd;
	const char *const *deps = sqlq_deps(q, &nd);

	gbuf_add(inputs, "[", 1);
	for (size_t i = 0; i < nd; i++) {
		struct tref *t = tables_find(ts, deps[i]);

		if (!t)
			continue;
		if (!t->pin && !(t->pin = calloc(t->n ? t->n : 1, sizeof(*t->pin))))
			return -ENOMEM;
		for (size_t k = 0; k < t->n; k++)
			if (!t->pin[k] && vfs_open(l->v, t->inos[k], O_RDONLY, &t->pin[k]) < 0)
				t->pin[k] = NULL;	/* gone meanwhile: read as empty */
		gbuf_printf(inputs, "%s{\"table\":", i ? "," : "");
		lt_json_quote(inputs, deps[i], strlen(deps[i]));
		if (t->layer[0] == 'b')
			gbuf_printf(inputs, ",\"files\":%zu}", t->n);
		else
			gbuf_printf(inputs, ",\"version\":%" PRIu64 "}", t->version);
	}
	gbuf_add(inputs, "]", 1);
	return inputs->failed ? -ENOMEM : 0;
}

/* ---- cycles ---- */

/* Does gold table `from` (through its recorded deps) reach `target`? */
static int reaches(struct lake *l, uint64_t schema, const char *deps, uint64_t target,
		   int depth)
{
	if (depth > 64)
		return 1;
	for (const char *p = deps; *p;) {
		size_t k = strcspn(p, "\n");
		char name[LAKE_NAME_MAX + 8];

		if (k > 5 && k < sizeof(name) && strncmp(p, "gold.", 5) == 0) {
			uint64_t g;
			char *sub;

			memcpy(name, p + 5, k - 5);
			name[k - 5] = '\0';
			g = gold_dir_of(l, schema, name);
			if (g && g == target)
				return 1;
			if (g && get_text(l, "gdep", g, &sub) == 0) {
				int r = reaches(l, schema, sub, target, depth + 1);

				free(sub);
				if (r)
					return 1;
			}
		}
		p += k;
		if (*p)
			p++;
	}
	return 0;
}

/* ---- _error, installing, dropping ---- */

/* the time now, ISO 8601 (lk_iso_time gives it quoted, for JSON) */
static void iso_now(char *out, size_t cap)
{
	char q[48];
	size_t n;

	lk_iso_time(lk_realtime_ns(), q, sizeof(q));
	n = strlen(q);
	snprintf(out, cap, "%.*s", n >= 2 ? (int)n - 2 : 0, q + 1);
}

/* Publish gold/NAME/_error (msg) or remove it (msg NULL), with extra kv. */
static int set_error(struct lake *l, uint64_t gdir, const char *msg,
		     const struct vfs_kv *kv, size_t nkv)
{
	struct out_file o;
	struct vfs_link_req link = { gdir, "_error", 0 };
	uint64_t have;
	int err;

	if (!msg) {
		if (meta_lookup(l->m, gdir, "_error", &have, NULL, NULL) < 0)
			return nkv ? vfs_publish(l->v, NULL, 0, kv, nkv) : 0;
		return vfs_publish(l->v, &link, 1, kv, nkv);
	}
	if ((err = lk_of_open(l, &o)) == 0) {
		char when[48];

		iso_now(when, sizeof(when));
		err = lk_of_write(&o, when, strlen(when));
		if (err == 0)
			err = lk_of_write(&o, " ", 1);
		if (err == 0)
			err = lk_of_write(&o, msg, strlen(msg));
		if (err == 0)
			err = lk_of_write(&o, "\n", 1);
		if (err == 0)
			err = lk_of_finish(&o);
		link.ino = o.ino;
		if (err == 0)
			err = vfs_publish(l->v, &link, 1, kv, nkv);
	}
	lk_of_close(&o);
	return err;
}

static int schedule_parse(const char *s, uint64_t *every_s, char *cron, size_t cap);

/* queue a refresh of a gold table unless one is queued already */
static int queue_refresh(struct lake *l, uint64_t gdir)
{
	struct lk_job *j;
	int queued = 0;

	pthread_mutex_lock(&l->lock);
	for (j = l->queue; j; j = j->next)
		if (j->kind == JK_REFRESH && j->table == gdir && j->state == JS_QUEUED)
			queued = 1;
	pthread_mutex_unlock(&l->lock);
	if (queued)
		return 0;
	if (!(j = calloc(1, sizeof(*j))))
		return -ENOMEM;
	j->kind = JK_REFRESH;
	j->table = gdir;
	j->tname = lk_sec_path(l, gdir);
	return lk_job_submit(l, j);
}

/*
 * Compile text as the definition of gold table `name` in gold schema
 * `schema`. 0 with *deps and *cols ("\n"-separated, malloc'd), or
 * -EINVAL with *msg.
 */
static int compile(struct lake *l, uint64_t schema, uint32_t reader, const char *name,
		   const char *text, char **deps, char **cols, char **msg)
{
	struct tables ts;
	struct sqlq *q = NULL;
	struct gbuf d = { 0 }, c = { 0 };
	uint64_t self;
	size_t nd;
	const char *const *dl;
	int err;

	*deps = *cols = *msg = NULL;
	err = tables_declare(l, catalog_of(l, schema), reader, &ts, &q, msg);
	if (err == 0)
		err = sqlq_prepare(q, text, msg);
	if (err == 0) {
		dl = sqlq_deps(q, &nd);
		for (size_t i = 0; i < nd; i++)
			gbuf_printf(&d, "%s\n", dl[i]);
		if (d.n == 0)
			gbuf_add(&d, "", 0);
		self = gold_dir_of(l, schema, name);
		if (self && reaches(l, schema, d.p ? (char *)d.p : "", self, 0)) {
			err = -EINVAL;
			if (asprintf(msg, "a dependency cycle: gold.%s reads itself "
				     "through its inputs", name) < 0)
				*msg = NULL;
		}
	}
	if (err == 0) {
		/* the result's column names; their types come with a refresh */
		for (size_t i = 0; i < sqlq_ncols(q); i++)
			gbuf_printf(&c, "%s\n", sqlq_col_name(q, i));
	}
	sqlq_free(q);
	tables_free(&ts);
	if (err == 0 && (d.failed || c.failed))
		err = -ENOMEM;
	if (err < 0) {
		free(d.p);
		free(c.p);
		if (!*msg)
			*msg = strdup(strerror(-err));
		return err == -ENOMEM ? err : -EINVAL;
	}
	*deps = d.p ? (char *)d.p : strdup("");
	*cols = c.p ? (char *)c.p : strdup("");
	return 0;
}

/* Install (or check) the definition in file ino named name in schema. */
static int define(struct lake *l, uint64_t schema, const char *fname, uint64_t ino,
		  int check_only, char **why)
{
	char name[LAKE_NAME_MAX + 1], *text = NULL, *deps = NULL, *cols = NULL, *msg = NULL;
	size_t base, len = 0;
	uint64_t gdir = 0;
	struct meta_inode md;
	int err;

	*why = NULL;
	if (!has_sql_suffix(fname, &base) || base > LAKE_NAME_MAX)
		return 0;
	/* the file's owner defines the table: it owns it, and the query
	 * reads with its privileges */
	if ((err = meta_get_inode(l->m, ino, &md)) < 0)
		return err;
	memcpy(name, fname, base);
	name[base] = '\0';
	if (check_only && name[0] == '.')
		memmove(name, name + 1, base);
	if (!lk_name_ok(name))
		return 0;
	err = read_small(l, ino, SQL_MAX, &text, &len);
	if (err == -EFBIG) {
		if (asprintf(&msg, "the definition is over %u bytes", SQL_MAX) < 0)
			msg = NULL;
		err = -EINVAL;
	} else if (err < 0) {
		return err;
	} else if (strspn(text, " \t\r\n") == len) {
		free(text);
		return 0;		/* empty: no definition yet */
	} else if (!check_only && (gdir = gold_dir_of(l, schema, name)) != 0 &&
		   get_text(l, "gdef", gdir, &deps) == 0 && strcmp(deps, text) == 0) {
		/* the installed text again (a second close of a dup'd
		 * descriptor, a save without a change): nothing to do */
		free(deps);
		free(text);
		return set_error(l, gdir, NULL, NULL, 0);
	} else {
		free(deps);
		deps = NULL;
		err = compile(l, schema, md.uid, name, text, &deps, &cols, &msg);
	}
	if (check_only || err == -ENOMEM) {
		*why = msg;
		free(text);
		free(deps);
		free(cols);
		return err;
	}
	if ((err == 0 || err == -EINVAL) &&
	    (gdir = gold_dir_of(l, schema, name)) == 0) {
		int e = lk_engine_dir(l, schema, name, &gdir);

		if (e == 0)
			e = lk_make_sec(l, gdir, schema, LK_TABLE, LY_GOLD, 0, name,
					md.uid, md.gid);
		if (e < 0) {
			log_err("gold %s: cannot make its directory: %s", name, strerror(-e));
			gdir = 0;
			if (err == 0)
				err = e;
		}
	}
	if (err == -EINVAL) {
		log_warn("gold %s: definition refused: %s (the installed one stays)", name,
			 msg ? msg : "");
		if (gdir)
			set_error(l, gdir, msg, NULL, 0);
		*why = msg;
	} else if (err == 0 && gdir) {
		char k1[64], k2[64], k3[64];
		struct vfs_kv kv[3] = {
			{ k1, text, len }, { k2, deps, strlen(deps) }, { k3, cols, strlen(cols) },
		};

		lk_key(k1, sizeof(k1), "gdef", gdir);
		lk_key(k2, sizeof(k2), "gdep", gdir);
		lk_key(k3, sizeof(k3), "gcol", gdir);
		err = set_error(l, gdir, NULL, kv, 3);
		if (err == 0) {
			for (char *p = deps; *p; p++)
				if (*p == '\n')
					*p = p[1] ? ' ' : '\0';
			log_info("gold %s: definition installed (reads: %s)", name,
				 deps[0] ? deps : "nothing");
			err = queue_refresh(l, gdir);
		}
		free(msg);
	} else {
		free(msg);
	}
	free(text);
	free(deps);
	free(cols);
	return err;
}

int gold_flush(struct lake *l, uint64_t ino)
{
	char fname[LAKE_NAME_MAX + 16], *why = NULL;
	uint64_t schema;
	int err, check;

	pthread_mutex_lock(&l->lock);
	check = 0;
	err = !lk_map_get(l->sqlfiles, ino, &schema);
	pthread_mutex_unlock(&l->lock);
	if (err || lk_name_in_parent(l, schema, ino, fname, sizeof(fname)) < 0)
		return 0;
	check = fname[0] == '.';
	err = define(l, schema, fname, ino, check, &why);
	pthread_mutex_lock(&l->lock);
	free((void *)(uintptr_t)lk_map_del(l->sqlerr, ino));
	if (why)
		lk_map_put(l->sqlerr, ino, (uint64_t)(uintptr_t)why);
	else
		lk_map_put(l->sqlerr, ino, (uint64_t)(uintptr_t)strdup(""));
	pthread_mutex_unlock(&l->lock);
	return err == -EINVAL ? -EINVAL : 0;
}

ssize_t gold_error_xattr(struct lake *l, uint64_t ino, void *buf, size_t size)
{
	uint64_t v;
	size_t n;
	ssize_t ret;

	pthread_mutex_lock(&l->lock);
	if (!lk_map_get(l->sqlerr, ino, &v)) {
		pthread_mutex_unlock(&l->lock);
		return -ENODATA;
	}
	n = strlen((const char *)(uintptr_t)v);
	ret = (ssize_t)n;
	if (size && n > size)
		ret = -ERANGE;
	else if (size)
		memcpy(buf, (const char *)(uintptr_t)v, n);
	pthread_mutex_unlock(&l->lock);
	return ret;
}

void gold_named(struct lake *l, uint64_t parent, const char *name, uint64_t ino)
{
	size_t base;

	if (!has_sql_suffix(name, &base) || !is_gold_schema(l, parent))
		return;
	pthread_mutex_lock(&l->lock);
	lk_map_put(l->sqlfiles, ino, parent);
	pthread_mutex_unlock(&l->lock);
}

struct gold_pending {
	struct gold_pending *next;
	uint64_t parent, ino;
	char name[LAKE_NAME_MAX + 8];
};

/*
 * A rename onto NAME.sql. The rename's FUSE request holds the gold
 * schema's lock in the kernel, and installing publishes names in it (a
 * new gold/NAME, its _error) whose cached entries the kernel must drop:
 * doing that here would wait for the lock this request holds. So the
 * scheduler thread compiles it (gold_tick).
 */
void gold_renamed(struct lake *l, uint64_t parent, const char *name)
{
	struct gold_pending *p;
	uint64_t ino;
	size_t base;

	if (name[0] == '.' || !has_sql_suffix(name, &base) || base > LAKE_NAME_MAX ||
	    meta_lookup(l->m, parent, name, &ino, NULL, NULL) < 0)
		return;
	gold_named(l, parent, name, ino);
	if (!(p = calloc(1, sizeof(*p))))
		return;
	p->parent = parent;
	p->ino = ino;
	snprintf(p->name, sizeof(p->name), "%s", name);
	pthread_mutex_lock(&l->lock);
	p->next = l->gpending;
	l->gpending = p;
	pthread_mutex_unlock(&l->lock);
	lk_wake(l);
}

static void renamed_run(struct lake *l)
{
	struct gold_pending *p;

	pthread_mutex_lock(&l->lock);
	p = l->gpending;
	l->gpending = NULL;
	pthread_mutex_unlock(&l->lock);
	while (p) {
		struct gold_pending *next = p->next;
		char *why = NULL;

		if (is_gold_schema(l, p->parent) &&
		    define(l, p->parent, p->name, p->ino, 0, &why) < 0)
			log_info("gold: '%s' renamed into place but refused: %s", p->name,
				 why ? why : "");
		free(why);
		free(p);
		p = next;
	}
}

void gold_pending_free(struct lake *l)
{
	while (l->gpending) {
		struct gold_pending *p = l->gpending;

		l->gpending = p->next;
		free(p);
	}
}

void gold_unlinked(struct lake *l, uint64_t parent, const char *name)
{
	char tname[LAKE_NAME_MAX + 1];
	size_t base;
	uint64_t gdir;
	struct lk_job *j;

	if (!has_sql_suffix(name, &base) || base > LAKE_NAME_MAX ||
	    !is_gold_schema(l, parent))
		return;
	memcpy(tname, name, base);
	tname[base] = '\0';
	if (!lk_name_ok(tname) || !(gdir = gold_dir_of(l, parent, tname)))
		return;
	if (!(j = calloc(1, sizeof(*j))))
		return;
	j->kind = JK_DROP;
	j->table = gdir;
	j->tname = lk_sec_path(l, gdir);
	lk_job_submit(l, j);
}

/* The gold records of a dropped gold table. */
int gold_drop_records(struct lake *l, uint64_t gdir)
{
	static const char *const what[] = { "gdef", "gdep", "gcol", "gst" };
	char keys[5][80];
	struct vfs_kv kv[5];

	for (int i = 0; i < 4; i++) {
		lk_key(keys[i], sizeof(keys[i]), what[i], gdir);
		kv[i] = (struct vfs_kv){ keys[i], NULL, 0 };
	}
	snprintf(keys[4], sizeof(keys[4]), "gst/%016" PRIx64 "/schema", gdir);
	kv[4] = (struct vfs_kv){ keys[4], NULL, 0 };
	pthread_mutex_lock(&l->lock);
	lk_map_del(l->gold_at, gdir);
	lk_map_del(l->gold_first, gdir);
	lk_map_del(l->gold_next, gdir);
	pthread_mutex_unlock(&l->lock);
	return vfs_publish(l->v, NULL, 0, kv, 5);
}

/* ---- triggers ---- */

struct dependents {
	struct lake *l;
	char own_dep[LAKE_NAME_MAX + 16];	/* "silver.T" */
	char other_dep[2 * LAKE_NAME_MAX + 16];	/* "CAT.silver.T" */
	uint64_t catalog;
	uint64_t *found;
	size_t n, cap;
};

static int line_in(const char *lines, const char *want)
{
	size_t k = strlen(want);

	for (const char *p = lines; *p;) {
		size_t n = strcspn(p, "\n");

		if (n == k && strncmp(p, want, k) == 0)
			return 1;
		p += n;
		if (*p)
			p++;
	}
	return 0;
}

static int dep_match(void *arg, const char *key, const char *val, size_t len)
{
	struct dependents *d = arg;
	uint64_t g;
	char *lines;

	if (sscanf(key, "gdep/%" SCNx64, &g) != 1 || !(lines = strndup(val, len)))
		return 0;
	if ((catalog_of(d->l, g) == d->catalog && line_in(lines, d->own_dep)) ||
	    line_in(lines, d->other_dep)) {
		if (grow_array((void **)&d->found, &d->cap, d->n + 1, sizeof(*d->found),
			       SIZE_MAX, NULL) == 0)
			d->found[d->n++] = g;
	}
	free(lines);
	return 0;
}

static int on_change(struct lake *l, uint64_t gdir)
{
	void *val;
	size_t len;
	int yes = 1;

	if (meta_get_xattr(l->m, gdir, "user.lakefs.schedule", &val, &len) == 0) {
		yes = len == 9 && memcmp(val, "on-change", 9) == 0;
		free(val);
	}
	return yes;
}

void gold_input_changed(struct lake *l, uint64_t table_dir)
{
	struct dependents d = { .l = l };
	struct lk_sec s, sch, cat;
	uint64_t now = mono_ns();

	if (lk_sec_get(l, table_dir, &s) < 0 || lk_sec_get(l, s.parent, &sch) < 0 ||
	    lk_sec_get(l, sch.parent, &cat) < 0)
		return;
	d.catalog = sch.parent;
	snprintf(d.own_dep, sizeof(d.own_dep), "%s.%s", s.layer == LY_GOLD ? "gold" :
		 s.layer == LY_SILVER ? "silver" : "bronze", s.name);
	snprintf(d.other_dep, sizeof(d.other_dep), "%s.%s", cat.name, d.own_dep);
	meta_scan_kv(l->m, "gdep/", dep_match, &d);
	for (size_t i = 0; i < d.n; i++) {
		uint64_t first, at;

		if (!on_change(l, d.found[i]))
			continue;
		pthread_mutex_lock(&l->lock);
		if (!lk_map_get(l->gold_first, d.found[i], &first)) {
			first = now;
			lk_map_put(l->gold_first, d.found[i], first);
		}
		at = now + DEBOUNCE_NS;
		if (at > first + DEBOUNCE_MAX_NS)
			at = first + DEBOUNCE_MAX_NS;
		lk_map_put(l->gold_at, d.found[i], at);
		pthread_mutex_unlock(&l->lock);
	}
	free(d.found);
	lk_wake(l);
}

/* a bronze table's files changed too: bronze.T readers */
int gold_run(struct lake *l, uint64_t gdir)
{
	char *def;

	if (get_text(l, "gdef", gdir, &def) < 0) {
		log_warn("lakefs run: gold table %s has no installed definition",
			 lk_sec_path(l, gdir));
		return -EINVAL;
	}
	free(def);
	return queue_refresh(l, gdir);
}

/* ---- schedules ---- */

struct cron {
	uint64_t min;		/* bit per minute 0..59 */
	uint32_t hour;		/* 0..23 */
	uint32_t dom;		/* 1..31 */
	uint16_t mon;		/* 1..12 */
	uint8_t dow;		/* 0..6, Sunday 0 (7 too) */
	int dom_star, dow_star;
};

/* one field: *, N, N-M, with /S, comma lists; bits lo..hi */
static int cron_field(const char *f, int lo, int hi, uint64_t *bits, int *star)
{
	*bits = 0;
	*star = strcmp(f, "*") == 0;
	while (*f) {
		long a, b, step = 1;
		char *end;

		if (*f == '*') {
			a = lo;
			b = hi;
			f++;
		} else {
			a = strtol(f, &end, 10);
			if (end == f)
				return -EINVAL;
			f = end;
			b = a;
			if (*f == '-') {
				b = strtol(f + 1, &end, 10);
				if (end == f + 1)
					return -EINVAL;
				f = end;
			}
		}
		if (*f == '/') {
			step = strtol(f + 1, &end, 10);
			if (end == f + 1 || step < 1)
				return -EINVAL;
			f = end;
		}
		if (a < lo || b > hi || a > b)
			return -EINVAL;
		for (long v = a; v <= b; v += step)
			*bits |= 1ull << v;
		if (*f == ',')
			f++;
		else if (*f)
			return -EINVAL;
	}
	return 0;
}

static int cron_parse(const char *s, struct cron *c)
{
	char f[5][64];
	uint64_t b;
	int star;

	if (sscanf(s, "%63s %63s %63s %63s %63s", f[0], f[1], f[2], f[3], f[4]) != 5)
		return -EINVAL;
	if (cron_field(f[0], 0, 59, &c->min, &star) < 0)
		return -EINVAL;
	if (cron_field(f[1], 0, 23, &b, &star) < 0)
		return -EINVAL;
	c->hour = (uint32_t)b;
	if (cron_field(f[2], 1, 31, &b, &c->dom_star) < 0)
		return -EINVAL;
	c->dom = (uint32_t)(b >> 0);
	if (cron_field(f[3], 1, 12, &b, &star) < 0)
		return -EINVAL;
	c->mon = (uint16_t)b;
	if (cron_field(f[4], 0, 7, &b, &c->dow_star) < 0)
		return -EINVAL;
	if (b & (1u << 7))
		b |= 1;
	c->dow = (uint8_t)(b & 0x7f);
	return 0;
}

/* the first minute after t (UTC) the expression matches; 0 if none in a year */
static time_t cron_next(const struct cron *c, time_t t)
{
	t = t - t % 60 + 60;
	for (int i = 0; i < 366 * 24 * 60; i++, t += 60) {
		struct tm tm;
		int dom_ok, dow_ok;

		gmtime_r(&t, &tm);
		if (!(c->mon >> (tm.tm_mon + 1) & 1) || !(c->hour >> tm.tm_hour & 1) ||
		    !(c->min >> tm.tm_min & 1))
			continue;
		dom_ok = c->dom >> tm.tm_mday & 1;
		dow_ok = c->dow >> tm.tm_wday & 1;
		if (c->dom_star || c->dow_star ? (dom_ok && dow_ok) : (dom_ok || dow_ok))
			return t;
	}
	return 0;
}

/* on-change, manual: 0 and *every_s 0; every N: *every_s; cron: *cron set */
static int schedule_parse(const char *s, uint64_t *every_s, char *cron, size_t cap)
{
	struct cron c;

	*every_s = 0;
	cron[0] = '\0';
	if (strcmp(s, "on-change") == 0 || strcmp(s, "manual") == 0)
		return 0;
	if (strncmp(s, "every ", 6) == 0) {
		char *end;
		unsigned long long n = strtoull(s + 6, &end, 10);
		uint64_t mul = 0;

		if (end == s + 6 || n == 0)
			return -EINVAL;
		if (strcmp(end, "s") == 0)
			mul = 1;
		else if (strcmp(end, "m") == 0)
			mul = 60;
		else if (strcmp(end, "h") == 0)
			mul = 3600;
		else if (strcmp(end, "d") == 0)
			mul = 86400;
		if (!mul || n > 365ull * 86400 / mul)
			return -EINVAL;
		*every_s = n * mul;
		return 0;
	}
	if (cron_parse(s, &c) < 0)
		return -EINVAL;
	snprintf(cron, cap, "%s", s);
	return 0;
}

int gold_check_prop(const char *name, const char *val)
{
	uint64_t every;
	char cron[256];

	if (strcmp(name, "schedule") != 0)
		return -ENOENT;
	if (schedule_parse(val, &every, cron, sizeof(cron)) < 0) {
		log_warn("property schedule: bad value '%s': on-change, manual, "
			 "every N(s|m|h|d), or a five-field cron expression", val);
		return -EINVAL;
	}
	return 0;
}

/* the next realtime ns a scheduled gold table is due, or 0 */
static uint64_t next_due(struct lake *l, uint64_t gdir, uint64_t after_ns)
{
	void *val;
	size_t len;
	char *s, cron[256];
	uint64_t every;
	struct cron c;
	uint64_t due = 0;

	if (meta_get_xattr(l->m, gdir, "user.lakefs.schedule", &val, &len) < 0)
		return 0;
	s = strndup(val, len);
	free(val);
	if (s && schedule_parse(s, &every, cron, sizeof(cron)) == 0) {
		if (every)
			due = after_ns + every * 1000000000ull;
		else if (cron[0] && cron_parse(cron, &c) == 0) {
			time_t t = cron_next(&c, (time_t)(after_ns / 1000000000ull));

			due = t ? (uint64_t)t * 1000000000ull : 0;
		}
	}
	free(s);
	return due;
}

void gold_schedule_changed(struct lake *l, uint64_t gdir)
{
	uint64_t due = next_due(l, gdir, lk_realtime_ns());

	pthread_mutex_lock(&l->lock);
	if (due)
		lk_map_put(l->gold_next, gdir, due);
	else
		lk_map_del(l->gold_next, gdir);
	pthread_mutex_unlock(&l->lock);
	lk_wake(l);
}

static int start_one(void *arg, const char *key, const char *val, size_t len)
{
	uint64_t g;

	(void)val;
	(void)len;
	if (sscanf(key, "gdef/%" SCNx64, &g) == 1)
		gold_schedule_changed(arg, g);
	return 0;
}

void gold_start(struct lake *l)
{
	meta_scan_kv(l->m, "gdef/", start_one, l);
}

void gold_tick(struct lake *l, uint64_t now, uint64_t *next)
{
	uint64_t real = lk_realtime_ns(), due_list[64];
	size_t ndue = 0;

	*next = 0;
	renamed_run(l);
	pthread_mutex_lock(&l->lock);
	lk_map_each_due(l->gold_at, now, due_list, &ndue, 64, next);
	for (size_t i = 0; i < ndue; i++) {
		lk_map_del(l->gold_at, due_list[i]);
		lk_map_del(l->gold_first, due_list[i]);
	}
	{
		uint64_t sched[64], snext = 0;
		size_t ns = 0;

		lk_map_each_due(l->gold_next, real, sched, &ns, 64, &snext);
		for (size_t i = 0; i < ns && ndue < 64; i++) {
			due_list[ndue++] = sched[i];
			lk_map_del(l->gold_next, sched[i]);
		}
		if (snext) {	/* realtime to monotonic */
			uint64_t m = now + (snext - real);

			if (!*next || m < *next)
				*next = m;
		}
	}
	pthread_mutex_unlock(&l->lock);
	for (size_t i = 0; i < ndue; i++) {
		queue_refresh(l, due_list[i]);
		if (next_due(l, due_list[i], real))
			gold_schedule_changed(l, due_list[i]);
	}
}

/* ---- one refresh ---- */

static void history(struct lk_job *j, const char *status, uint64_t rows,
		    const char *inputs, double secs, const char *error, struct gbuf *b)
{
	char now[48];

	lk_iso_time(lk_realtime_ns(), now, sizeof(now));
	gbuf_printf(b, "{\"version\":%" PRIu64 ",\"time\":%s,\"job\":%" PRIu64
		    ",\"status\":\"%s\",\"inputs\":%s,\"rows\":%" PRIu64
		    ",\"seconds\":%.3f", j->version, now, j->id, status,
		    inputs && *inputs ? inputs : "[]", rows, secs);
	if (error) {
		gbuf_printf(b, ",\"error\":");
		lt_json_quote(b, error, strlen(error));
	}
	gbuf_printf(b, "}\n");
}

enum lk_job_state gold_refresh_run(struct lake *l, struct lk_job *j)
{
	struct tables ts = { 0 };
	struct sqlq *q = NULL;
	struct sqlq_result res = { .rows = 0 };
	struct out_file csv = { 0 }, jsonl = { 0 }, sch = { 0 }, hist = { 0 };
	struct gbuf inputs = { 0 }, hl = { 0 }, sj = { 0 }, jj = { 0 };
	char *def = NULL, *msg = NULL, *st = NULL, name[LAKE_NAME_MAX + 1];
	char csvname[LAKE_NAME_MAX + 8], jsname[LAKE_NAME_MAX + 8];
	char k1[64], k2[96], k3[64], v1[128];
	struct lk_sec s;
	uint64_t prev = 0, t0 = mono_ns(), hino = 0;
	enum lk_job_state ret = JS_FAILED;
	int err;

	if (lk_sec_get(l, j->table, &s) < 0 || get_text(l, "gdef", j->table, &def) < 0) {
		j->error = strdup("the gold table was dropped");
		return JS_SKIPPED;
	}
	snprintf(name, sizeof(name), "%s", s.name);
	if (get_text(l, "gst", j->table, &st) == 0) {
		char *v = strstr(st, "version=");

		prev = v ? strtoull(v + 8, NULL, 10) : 0;
		free(st);
	}
	j->version = prev;
	err = tables_declare(l, catalog_of(l, j->table), lk_acc_owner(l, j->table),
			     &ts, &q, &msg);
	if (err == 0)
		err = sqlq_prepare(q, def, &msg);
	if (err == 0)
		err = tables_pin(l, &ts, q, &inputs);
	if (err == 0 && !inputs.failed)
		j->inputs = strndup((char *)inputs.p, inputs.n);
	if (err == 0 && ((err = lk_of_open(l, &csv)) < 0 || (err = lk_of_open(l, &jsonl)) < 0 ||
			 (err = lk_of_open(l, &sch)) < 0 || (err = lk_of_open(l, &hist)) < 0))
		msg = strdup(strerror(-err));
	if (err == 0) {
		struct ingest_writer wc = { &csv, lk_of_write }, wj = { &jsonl, lk_of_write };

		err = sqlq_run(q, &wc, &wj, &res, &msg);
	}
	if (err == 0 && ((err = lk_of_finish(&csv)) < 0 || (err = lk_of_finish(&jsonl)) < 0))
		msg = strdup(strerror(-err));
	if (meta_lookup(l->m, j->table, "_history.jsonl", &hino, NULL, NULL) < 0)
		hino = 0;
	if (err == 0) {
		struct vfs_link_req links[5];
		struct vfs_kv kv[4];
		size_t nl = 0;

		j->version = prev + 1;
		j->rows_total = j->rows_written = res.rows;
		lt_schema_to_json(&res.schema, &sj);
		history(j, "ok", res.rows, j->inputs, (double)(mono_ns() - t0) / 1e9, NULL, &hl);
		if (sj.failed || hl.failed)
			err = -ENOMEM;
		if (err == 0)
			err = lk_of_write(&sch, sj.p, sj.n);
		if (err == 0)
			err = lk_of_finish(&sch);
		if (err == 0 && hino)
			err = lk_of_clone(&hist, hino);
		if (err == 0)
			err = lk_of_write(&hist, hl.p, hl.n);
		if (err == 0)
			err = lk_of_finish(&hist);
		if (err == 0) {
			snprintf(csvname, sizeof(csvname), "%s.csv", name);
			snprintf(jsname, sizeof(jsname), "%s.jsonl", name);
			links[nl++] = (struct vfs_link_req){ j->table, csvname, csv.ino };
			links[nl++] = (struct vfs_link_req){ j->table, jsname, jsonl.ino };
			links[nl++] = (struct vfs_link_req){ j->table, "_schema.json", sch.ino };
			links[nl++] = (struct vfs_link_req){ j->table, "_history.jsonl", hist.ino };
			if (meta_lookup(l->m, j->table, "_error", &(uint64_t){ 0 }, NULL, NULL) == 0)
				links[nl++] = (struct vfs_link_req){ j->table, "_error", 0 };
			lk_key(k1, sizeof(k1), "gst", j->table);
			snprintf(k2, sizeof(k2), "gst/%016" PRIx64 "/schema", j->table);
			lk_key(k3, sizeof(k3), "job", j->id);
			kv[0] = (struct vfs_kv){ k1, v1, (size_t)snprintf(v1, sizeof(v1),
				"version=%" PRIu64 " rows=%" PRIu64 " ", j->version, res.rows) };
			kv[1] = (struct vfs_kv){ k2, sj.p, sj.n };
			j->state = JS_DONE;
			j->t_finished = lk_realtime_ns();
			lk_job_json(j, &jj);
			kv[2] = (struct vfs_kv){ k3, jj.p, jj.n };
			err = jj.failed ? -ENOMEM : vfs_publish(l->v, links, nl, kv, 3);
		}
		if (err == 0) {
			ret = JS_DONE;
			log_info("gold %s: version %" PRIu64 ", %" PRIu64 " rows", j->tname,
				 j->version, res.rows);
		} else if (!msg) {
			msg = strdup(strerror(-err));
		}
	}
	if (ret != JS_DONE) {
		/* N stays; the reason goes to _error and the history */
		struct gbuf eh = { 0 };
		struct vfs_link_req hl2;

		j->version = prev;
		j->error = msg ? msg : strdup("refresh failed");
		msg = NULL;
		log_warn("gold %s: refresh failed: %s", j->tname, j->error);
		set_error(l, j->table, j->error, NULL, 0);
		history(j, "failed", 0, j->inputs, (double)(mono_ns() - t0) / 1e9, j->error, &eh);
		lk_of_close(&hist);
		if (!eh.failed && lk_of_open(l, &hist) == 0 &&
		    (!hino || lk_of_clone(&hist, hino) == 0) &&
		    lk_of_write(&hist, eh.p, eh.n) == 0 && lk_of_finish(&hist) == 0) {
			hl2 = (struct vfs_link_req){ j->table, "_history.jsonl", hist.ino };
			vfs_publish(l->v, &hl2, 1, NULL, 0);
		}
		free(eh.p);
	}
	lk_of_close(&csv);
	lk_of_close(&jsonl);
	lk_of_close(&sch);
	lk_of_close(&hist);
	sqlq_result_release(&res);
	sqlq_free(q);
	tables_free(&ts);
	free(def);
	free(msg);
	free(inputs.p);
	free(hl.p);
	free(sj.p);
	free(jj.p);
	if (ret == JS_DONE)
		gold_input_changed(l, j->table);
	return ret;
}
