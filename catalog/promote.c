/*
 * catalog/promote.c — one ingest job: a landed bronze file becomes the next
 * version of its silver table.
 *
 * A version is built aside and published at once. The new TABLE.csv and
 * TABLE.jsonl are unnamed files (vfs_tmpfile): when the batch only adds
 * rows, they start as clones of the current ones (shared blocks, nothing
 * copied) and the rows are written after them, so an append costs the
 * batch, not the table; when the schema changes or the table has a key,
 * catalog/ingest.c writes them whole. _schema.json is written new,
 * _history.jsonl is cloned and gains one line, rejected rows go to
 * _quarantine/<job>.jsonl and a rejected file to _quarantine/<job>-<name>
 * (a clone of the bronze file). Everything is fsynced, then one synced
 * metadata transaction (vfs_publish) links the files over the old names
 * and writes the table's record, the batch's "seen" mark and the job's
 * end. A crash before it leaves orphans that the next mount frees, and the
 * job reruns; after it, the rerun finds the batch seen.
 *
 * Catalog records of a bronze table T:
 *   tbl/T              "silver=<ino> version=N rows=R "
 *   tbl/T/schema       the schema (_schema.json text)
 *   tbl/T/seen/<cid>   "job=<id> version=<N>" for every batch taken
 *
 * Failure: an error of the machinery (the file vanished, the disk is
 * full, an expectation that does not compile) fails the job with its
 * message and publishes nothing; the batch is not marked seen, so
 * `lakefs run` (or the next change) retries it.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "catalog/ingest.h"
#include "catalog/lake_int.h"
#include "catalog/meta.h"
#include "util/log.h"
#include "util/util.h"

#define WBUF (1u << 20)
#define MAX_EXPECT 64

/* ---- the content id of a file ---- */

struct cid_acc {
	struct gbuf b;
};

static int cid_block(void *arg, uint64_t idx, const struct bs_hash *h)
{
	struct cid_acc *a = arg;
	unsigned char be[8];

	put_be64(be, idx);
	gbuf_add(&a->b, be, 8);
	gbuf_add(&a->b, h->b, sizeof(h->b));
	return a->b.failed ? -ENOMEM : 0;
}

int promote_cid(struct lake *l, uint64_t ino, unsigned char cid[32])
{
	struct meta_inode md;
	struct cid_acc a = { { 0 } };
	unsigned char be[8];
	struct bs_hash h;
	int err = meta_get_inode(l->m, ino, &md);

	if (err < 0)
		return err;
	put_be64(be, md.size);
	gbuf_add(&a.b, be, 8);
	err = meta_blocks(l->m, ino, 0, cid_block, &a);
	if (err == 0 && a.b.failed)
		err = -ENOMEM;
	if (err == 0) {
		bs_hash_of(a.b.p, a.b.n, &h);
		memcpy(cid, h.b, 32);
	}
	free(a.b.p);
	return err;
}

/* ---- files built aside ---- */

int lk_of_open(struct lake *l, struct out_file *o)
{
	memset(o, 0, sizeof(*o));
	o->l = l;
	if (!(o->buf = malloc(WBUF)))
		return -ENOMEM;
	return vfs_tmpfile(l->v, &lk_engine_ctx, 0444, &o->f, &o->ino);
}

static int lk_of_flush(struct out_file *o)
{
	ssize_t w;

	if (o->err || o->n == 0)
		return o->err;
	w = vfs_write(o->l->v, o->f, o->buf, o->n, o->off);
	if (w < 0)
		o->err = (int)w;
	else if ((size_t)w != o->n)
		o->err = -EIO;
	else
		o->off += o->n;
	o->n = 0;
	return o->err;
}

int lk_of_write(void *arg, const void *p, size_t n)
{
	struct out_file *o = arg;

	if (o->n == 0 && n >= WBUF / 2 && !o->err) {	/* big pieces: no copy */
		ssize_t w = vfs_write(o->l->v, o->f, p, n, o->off);

		if (w < 0)
			o->err = (int)w;
		else if ((size_t)w != n)
			o->err = -EIO;
		else
			o->off += n;
		return o->err;
	}
	while (n && !o->err) {
		size_t k = WBUF - o->n < n ? WBUF - o->n : n;

		memcpy(o->buf + o->n, p, k);
		o->n += k;
		p = (const char *)p + k;
		n -= k;
		if (o->n == WBUF)
			lk_of_flush(o);
	}
	return o->err;
}

/* Start as a copy of src's committed bytes (shared blocks). */
int lk_of_clone(struct out_file *o, uint64_t src)
{
	struct meta_inode md;
	int err = meta_get_inode(o->l->m, src, &md);

	if (err == 0)
		err = vfs_clone(o->l->v, o->f, src);
	if (err == 0)
		o->off = md.size;
	return err;
}

int lk_of_finish(struct out_file *o)
{
	int err = lk_of_flush(o);

	if (err == 0)
		err = vfs_fsync(o->l->v, o->f, 0);
	return err;
}

void lk_of_close(struct out_file *o)
{
	if (o->f)
		vfs_release(o->l->v, o->f);
	free(o->buf);
	o->f = NULL;
	o->buf = NULL;
}

/* ---- reading a file ---- */

ssize_t lk_in_pread(void *arg, void *buf, size_t n, uint64_t off)
{
	struct in_file *in = arg;

	return vfs_read(in->l->v, in->f, buf, n, off);
}

/* ---- the table's state ---- */

struct tstate {
	uint64_t silver, version, rows;
	struct lt_schema schema;
	char name[LAKE_NAME_MAX + 1];
	uint64_t csv, jsonl, history;	/* current files (0: none) */
};

static int load_state(struct lake *l, uint64_t table, struct tstate *t)
{
	char key[96], *val;
	size_t len;
	struct lk_sec s;
	char fname[LAKE_NAME_MAX + 16];
	int err;

	memset(t, 0, sizeof(*t));
	lk_key(key, sizeof(key), "tbl", table);
	if ((err = meta_get_kv(l->m, key, &val, &len)) < 0)
		return err;
	if (sscanf(val, "silver=%" SCNx64 " version=%" SCNu64 " rows=%" SCNu64,
		   &t->silver, &t->version, &t->rows) != 3) {
		log_err("catalog record %s is damaged: '%s'", key, val);
		free(val);
		return -EIO;
	}
	free(val);
	if ((err = lk_sec_get(l, t->silver, &s)) < 0)
		return err;
	snprintf(t->name, sizeof(t->name), "%s", s.name);
	snprintf(key, sizeof(key), "tbl/%016" PRIx64 "/schema", table);
	if (meta_get_kv(l->m, key, &val, &len) == 0) {
		char *why = NULL;

		err = lt_schema_from_json(val, len, &t->schema, &why);
		free(val);
		if (err < 0) {
			log_err("schema of %s is damaged: %s", t->name, why ? why : "");
			free(why);
			return -EIO;
		}
	}
	snprintf(fname, sizeof(fname), "%s.csv", t->name);
	if (meta_lookup(l->m, t->silver, fname, &t->csv, NULL, NULL) < 0)
		t->csv = 0;
	snprintf(fname, sizeof(fname), "%s.jsonl", t->name);
	if (meta_lookup(l->m, t->silver, fname, &t->jsonl, NULL, NULL) < 0)
		t->jsonl = 0;
	if (meta_lookup(l->m, t->silver, "_history.jsonl", &t->history, NULL, NULL) < 0)
		t->history = 0;
	return 0;
}

/* ---- the table's properties as an ingest_conf ---- */

struct conf {
	struct ingest_conf c;
	char *format, *delim, *header, *mode, *key, *seq, *del;
	char *keys[64];
	struct ingest_expect ex[MAX_EXPECT];
	char *exname[MAX_EXPECT], *exval[MAX_EXPECT];
	size_t nex;
};

int lk_expect_split(const char *val, enum ingest_action *act);

static void conf_add_expects(struct lake *l, struct conf *k, uint64_t sec)
{
	/* the table's own expectations, then its schema's and catalog's that
	 * it does not override */
	for (int depth = 0; depth < 3 && sec != META_ROOT_INO; depth++) {
		char *names = NULL;
		size_t len = 0;
		struct lk_sec s;

		if (meta_list_xattr(l->m, sec, &names, &len) == 0) {
			for (size_t off = 0; off < len; off += strlen(names + off) + 1) {
				const char *n = names + off;
				const char *pfx = "user.lakefs.expect.";
				void *val;
				size_t vlen, i;

				if (strncmp(n, pfx, strlen(pfx)) != 0 || k->nex >= MAX_EXPECT)
					continue;
				n += strlen(pfx);
				for (i = 0; i < k->nex; i++)
					if (strcmp(k->exname[i], n) == 0)
						break;
				if (i < k->nex ||
				    meta_get_xattr(l->m, sec, names + off, &val, &vlen) < 0)
					continue;
				k->exname[k->nex] = strdup(n);
				k->exval[k->nex] = strndup(val, vlen);
				free(val);
				if (!k->exname[k->nex] || !k->exval[k->nex]) {
					free(k->exname[k->nex]);
					free(k->exval[k->nex]);
					continue;
				}
				k->ex[k->nex].name = k->exname[k->nex];
				k->ex[k->nex].expr = k->exval[k->nex] +
					lk_expect_split(k->exval[k->nex], &k->ex[k->nex].action);
				k->nex++;
			}
			free(names);
		}
		if (lk_sec_get(l, sec, &s) < 0)
			break;
		sec = s.parent;
	}
}

static void conf_load(struct lake *l, uint64_t table, const char *src_name,
		      struct conf *k)
{
	memset(k, 0, sizeof(*k));
	k->c.src_name = src_name;
	k->format = lk_prop(l, table, "format");
	k->delim = lk_prop(l, table, "csv.delimiter");
	k->header = lk_prop(l, table, "csv.header");
	k->mode = lk_prop(l, table, "schema_evolution");
	k->key = lk_prop(l, table, "key");
	k->seq = lk_prop(l, table, "sequence_by");
	k->del = lk_prop(l, table, "delete_when");
	if (!k->format || ingest_format_parse(k->format, &k->c.format) < 0)
		k->c.format = IF_AUTO;
	if (k->delim && strcmp(k->delim, "tab") == 0)
		k->c.csv_delim = '\t';
	else if (k->delim && strlen(k->delim) == 1)
		k->c.csv_delim = k->delim[0];
	k->c.csv_header = !(k->header && strcmp(k->header, "false") == 0);
	if (!k->mode || lt_mode_parse(k->mode, &k->c.mode) < 0)
		k->c.mode = LT_ADD_NEW_COLUMNS;
	if (k->key) {
		char *save = NULL;

		for (char *t = strtok_r(k->key, ",", &save); t && k->c.nkey < 64;
		     t = strtok_r(NULL, ",", &save))
			k->keys[k->c.nkey++] = t;
		k->c.key = (const char *const *)k->keys;
	}
	k->c.sequence_by = k->seq;
	k->c.delete_when = k->del;
	conf_add_expects(l, k, table);
	k->c.expect = k->ex;
	k->c.nexpect = k->nex;
	k->c.tmp_dir = l->opt.tmp_dir;
}

static void conf_free(struct conf *k)
{
	free(k->format);
	free(k->delim);
	free(k->header);
	free(k->mode);
	free(k->key);
	free(k->seq);
	free(k->del);
	for (size_t i = 0; i < k->nex; i++) {
		free(k->exname[i]);
		free(k->exval[i]);
	}
}

/* ---- one job ---- */

struct run {
	struct lake *l;
	struct lk_job *j;
	struct tstate t;
	struct out_file csv, jsonl, quar, schema, hist, qfile;
	int began;
};

static int run_begin(void *arg, int rewrite)
{
	struct run *r = arg;
	int err = 0;

	r->began = 1;
	if (!rewrite && r->t.csv && r->t.jsonl) {
		err = lk_of_clone(&r->csv, r->t.csv);
		if (err == 0)
			err = lk_of_clone(&r->jsonl, r->t.jsonl);
	}
	return err;
}

/* ingest's restart: the rows written so far go, new files take their place */
static int run_restart(void *arg)
{
	struct run *r = arg;
	int err;

	lk_of_close(&r->csv);
	lk_of_close(&r->jsonl);
	lk_of_close(&r->quar);
	r->began = 0;
	if ((err = lk_of_open(r->l, &r->csv)) < 0 || (err = lk_of_open(r->l, &r->jsonl)) < 0 ||
	    (err = lk_of_open(r->l, &r->quar)) < 0)
		return err;
	return 0;
}

static void iso_now(char *out, size_t cap)
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 ts.tv_nsec / 1000000);
}

static void history_line(struct run *r, const struct ingest_out *o, const char *status,
			 struct gbuf *b)
{
	char now[40];
	struct lk_job *j = r->j;

	iso_now(now, sizeof(now));
	gbuf_printf(b, "{\"version\":%" PRIu64 ",\"time\":\"%s\",\"job\":%" PRIu64
		    ",\"status\":\"%s\",\"source\":[", j->version, now, j->id, status);
	lt_json_quote(b, j->path ? j->path : "", j->path ? strlen(j->path) : 0);
	gbuf_printf(b, "],\"format\":\"%s\",\"rows_read\":%" PRIu64
		    ",\"rows_written\":%" PRIu64 ",\"rows_dropped\":%" PRIu64
		    ",\"rows_quarantined\":%" PRIu64 ",\"rows_deleted\":%" PRIu64
		    ",\"rows_total\":%" PRIu64 ",\"rewrite\":%s,\"schema_version\":%u"
		    ",\"schema_changes\":%s,\"expectations\":%s",
		    o->format ? o->format : "", o->rows_read, o->rows_written,
		    o->rows_dropped, o->rows_quarantined, o->rows_deleted, o->rows_total,
		    o->rewrite ? "true" : "false", o->schema.version,
		    o->changes ? o->changes : "[]",
		    o->expectations ? o->expectations : "{}");
	if (o->batch_reason) {
		gbuf_printf(b, ",\"reason\":");
		lt_json_quote(b, o->batch_reason, strlen(o->batch_reason));
	}
	gbuf_printf(b, "}\n");
}

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

static int publish(struct run *r, struct ingest_out *o)
{
	struct lake *l = r->l;
	struct lk_job *j = r->j;
	char tkey[64], tval[160], skey[96], seenkey[160], seenval[64], jkey[64];
	char qname[300], qfname[300], csvname[LAKE_NAME_MAX + 8], jsname[LAKE_NAME_MAX + 8];
	char hex[65];
	struct gbuf hist = { 0 }, sch = { 0 }, job = { 0 };
	struct vfs_link_req links[8];
	struct vfs_kv kv[4];
	size_t nl = 0, nkv = 0;
	uint64_t qdir = 0;
	int quarantined = o->batch_reason != NULL, err;
	/* an empty batch (no column, no row) writes no data: no new version */
	int empty = !quarantined && !r->began;

	if ((err = meta_lookup(l->m, r->t.silver, "_quarantine", &qdir, NULL, NULL)) < 0)
		return err;
	j->version = quarantined || empty ? r->t.version : r->t.version + 1;
	j->rows_read = o->rows_read;
	j->rows_written = o->rows_written;
	j->rows_dropped = o->rows_dropped;
	j->rows_quarantined = o->rows_quarantined;
	j->rows_deleted = o->rows_deleted;
	j->rows_total = quarantined || empty ? r->t.rows : o->rows_total;
	if (quarantined) {
		free(j->error);
		j->error = strdup(o->batch_reason);
	}

	/* _history.jsonl: the old lines (shared blocks) and one more */
	if (r->t.history && (err = lk_of_clone(&r->hist, r->t.history)) < 0)
		return err;
	history_line(r, o, quarantined ? "quarantined" : empty ? "empty" : "ok", &hist);
	if (hist.failed)
		err = -ENOMEM;
	if (err == 0)
		err = lk_of_write(&r->hist, hist.p, hist.n);
	if (err == 0)
		err = lk_of_finish(&r->hist);
	free(hist.p);
	if (err < 0)
		return err;
	links[nl++] = (struct vfs_link_req){ r->t.silver, "_history.jsonl", r->hist.ino };

	if (o->rows_quarantined || o->rows_dropped || quarantined) {
		if ((err = lk_of_finish(&r->quar)) < 0)
			return err;
		snprintf(qname, sizeof(qname), "%" PRIu64 ".jsonl", j->id);
		links[nl++] = (struct vfs_link_req){ qdir, qname, r->quar.ino };
	}
	if (quarantined) {
		/* the rejected file itself, as it landed */
		if ((err = lk_of_open(l, &r->qfile)) < 0 ||
		    (err = lk_of_clone(&r->qfile, j->file)) < 0 ||
		    (err = lk_of_finish(&r->qfile)) < 0)
			return err;
		snprintf(qfname, sizeof(qfname), "%" PRIu64 "-%.200s", j->id,
			 base_name(j->path ? j->path : "batch"));
		links[nl++] = (struct vfs_link_req){ qdir, qfname, r->qfile.ino };
	} else if (!empty) {
		if ((err = lk_of_finish(&r->csv)) < 0 || (err = lk_of_finish(&r->jsonl)) < 0)
			return err;
		lt_schema_to_json(&o->schema, &sch);
		if (sch.failed)
			return -ENOMEM;
		err = lk_of_write(&r->schema, sch.p, sch.n);
		if (err == 0)
			err = lk_of_finish(&r->schema);
		if (err < 0) {
			free(sch.p);
			return err;
		}
		snprintf(csvname, sizeof(csvname), "%s.csv", r->t.name);
		snprintf(jsname, sizeof(jsname), "%s.jsonl", r->t.name);
		links[nl++] = (struct vfs_link_req){ r->t.silver, csvname, r->csv.ino };
		links[nl++] = (struct vfs_link_req){ r->t.silver, jsname, r->jsonl.ino };
		links[nl++] = (struct vfs_link_req){ r->t.silver, "_schema.json", r->schema.ino };
		lk_key(tkey, sizeof(tkey), "tbl", j->table);
		kv[nkv++] = (struct vfs_kv){ tkey, tval, (size_t)snprintf(tval, sizeof(tval),
			"silver=%016" PRIx64 " version=%" PRIu64 " rows=%" PRIu64 " ",
			r->t.silver, j->version, o->rows_total) };
		snprintf(skey, sizeof(skey), "tbl/%016" PRIx64 "/schema", j->table);
		kv[nkv++] = (struct vfs_kv){ skey, sch.p, sch.n };
	}
	hex_encode(j->cid, 32, hex);
	snprintf(seenkey, sizeof(seenkey), "tbl/%016" PRIx64 "/seen/%s", j->table, hex);
	kv[nkv++] = (struct vfs_kv){ seenkey, seenval, (size_t)snprintf(seenval,
		sizeof(seenval), "job=%" PRIu64 " version=%" PRIu64, j->id, j->version) };
	j->state = quarantined ? JS_QUARANTINED : JS_DONE;
	{
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		j->t_finished = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	}
	lk_job_json(j, &job);
	lk_key(jkey, sizeof(jkey), "job", j->id);
	kv[nkv++] = (struct vfs_kv){ jkey, job.p, job.n };
	err = job.failed ? -ENOMEM : vfs_publish(l->v, links, nl, kv, nkv);
	free(sch.p);
	free(job.p);
	return err;
}

enum lk_job_state promote_run(struct lake *l, struct lk_job *j)
{
	struct run r = { .l = l, .j = j };
	struct in_file in = { l, NULL };
	struct ingest_reader src = { &in, lk_in_pread, 0 }, cur = { NULL, lk_in_pread, 0 };
	struct in_file cin = { l, NULL };
	struct ingest_table tab = { 0 };
	struct ingest_out o = { 0 };
	struct conf k;
	struct meta_inode md;
	unsigned char cid[32];
	char *msg = NULL, seenkey[160], hex[65], *val;
	size_t len;
	int err;
	enum lk_job_state st = JS_FAILED;

	if (vfs_open(l->v, j->file, O_RDONLY, &in.f) < 0 ||
	    meta_get_inode(l->m, j->file, &md) < 0 || md.nlink == 0) {
		j->error = strdup("the file was removed before it was ingested");
		if (in.f)
			vfs_release(l->v, in.f);
		return JS_SKIPPED;
	}
	if (promote_cid(l, j->file, cid) < 0 || memcmp(cid, j->cid, 32) != 0) {
		j->error = strdup("the file changed before it was ingested; its new "
				  "content is a new batch");
		vfs_release(l->v, in.f);
		return JS_SKIPPED;
	}
	hex_encode(j->cid, 32, hex);
	snprintf(seenkey, sizeof(seenkey), "tbl/%016" PRIx64 "/seen/%s", j->table, hex);
	if (meta_get_kv(l->m, seenkey, &val, &len) == 0) {
		j->error = strdup("the same content was ingested already");
		free(val);
		vfs_release(l->v, in.f);
		return JS_SKIPPED;
	}
	src.size = md.size;
	if ((err = load_state(l, j->table, &r.t)) < 0) {
		vfs_release(l->v, in.f);
		if (asprintf(&j->error, "cannot read the table's state: %s", strerror(-err)) < 0)
			j->error = NULL;
		return JS_FAILED;
	}
	conf_load(l, j->table, base_name(j->path ? j->path : ""), &k);
	if (r.t.csv && vfs_open(l->v, r.t.csv, O_RDONLY, &cin.f) == 0 &&
	    meta_get_inode(l->m, r.t.csv, &md) == 0) {
		cur.arg = &cin;
		cur.size = md.size;
		tab.csv = &cur;
	}
	tab.schema = &r.t.schema;
	tab.rows = r.t.rows;
	if ((err = lk_of_open(l, &r.csv)) < 0 || (err = lk_of_open(l, &r.jsonl)) < 0 ||
	    (err = lk_of_open(l, &r.quar)) < 0 || (err = lk_of_open(l, &r.schema)) < 0 ||
	    (err = lk_of_open(l, &r.hist)) < 0) {
		msg = strdup(strerror(-err));
		goto out;
	}
	o.begin = run_begin;
	o.restart = run_restart;
	o.begin_arg = &r;
	o.csv = (struct ingest_writer){ &r.csv, lk_of_write };
	o.jsonl = (struct ingest_writer){ &r.jsonl, lk_of_write };
	o.quarantine = (struct ingest_writer){ &r.quar, lk_of_write };
	err = ingest_run(&k.c, &src, &tab, &o, &msg);
	if (err == 0)
		err = publish(&r, &o);
	if (err == 0) {
		st = j->state;
		if (st == JS_DONE && j->version > r.t.version)
			gold_input_changed(l, r.t.silver);	/* silver.T readers */
		gold_input_changed(l, j->table);		/* bronze.T readers */
		log_info("%s: %s -> version %" PRIu64 " (%" PRIu64 " rows read, %" PRIu64
			 " written, %" PRIu64 " quarantined)%s%s", j->tname ? j->tname : "",
			 j->path ? j->path : "", j->version, o.rows_read, o.rows_written,
			 o.rows_quarantined, o.batch_reason ? ": batch quarantined: " : "",
			 o.batch_reason ? o.batch_reason : "");
	} else if (!msg) {
		msg = strdup(strerror(-err));
	}
out:
	if (msg) {
		free(j->error);
		j->error = msg;
	}
	lk_of_close(&r.csv);
	lk_of_close(&r.jsonl);
	lk_of_close(&r.quar);
	lk_of_close(&r.schema);
	lk_of_close(&r.hist);
	lk_of_close(&r.qfile);
	if (cin.f)
		vfs_release(l->v, cin.f);
	vfs_release(l->v, in.f);
	ingest_out_release(&o);
	lt_schema_free(&r.t.schema);
	conf_free(&k);
	return st;
}
