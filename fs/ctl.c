/*
 * fs/ctl.c — the control directory /.lakefs and its files.
 *
 * /.lakefs is virtual: fixed inode numbers below the first real one, never
 * stored. Files are rendered when opened (a handle reads the snapshot it
 * opened) and served with direct I/O, so a reader always sees a complete,
 * current document. Everything is read-only here; later issues add control
 * files that take writes, and they will check access like any other file.
 *
 *   status        JSON figures (lakefs status)
 *   metrics       the same and more in Prometheus text format
 *   sync          opening it commits everything in memory and answers the
 *                 journal record and upload mark that `lakefs sync` then
 *                 waits for in status (an action: listed with size 0)
 *   verify        opening it checks that every referenced block is in the
 *                 bucket; verify-deep also fetches and hashes each one
 *   jobs          recent promotion and refresh runs (a non-admin sees
 *                 those of tables it may read)
 *   audit         grant changes and denied requests (catalog/access.c)
 *
 * Access: status, metrics and jobs are everyone's; sync, verify,
 * verify-deep and audit the admin's (mode 0400, checked at open).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "catalog/journal.h"
#include "catalog/lake.h"
#include "fs/fsd.h"
#include "sync/remote.h"
#include "sync/s3.h"
#include "util/log.h"
#include "util/util.h"

struct ctl_file {
	const char *name;
	uint64_t ino;
	int action;	/* rendering has effects or is large: size 0, rendered
			 * at open only */
	int admin;	/* the admin's only */
};

static const struct ctl_file ctl_files[] = {
	{ "status", CTL_STATUS_INO, 0, 0 },
	{ "metrics", CTL_METRICS_INO, 0, 0 },
	{ "sync", CTL_SYNC_INO, 1, 1 },
	{ "verify", CTL_VERIFY_INO, 1, 1 },
	{ "verify-deep", CTL_VERIFY_DEEP_INO, 1, 1 },
	{ "jobs", CTL_JOBS_INO, 1, 0 },
	{ "audit", CTL_AUDIT_INO, 1, 1 },
};

int ctl_owns(uint64_t ino)
{
	return ino >= CTL_DIR_INO && ino <= CTL_AUDIT_INO;
}

static const struct ctl_file *ctl_file_of(uint64_t ino)
{
	for (size_t i = 0; i < ARRAY_SIZE(ctl_files); i++)
		if (ctl_files[i].ino == ino)
			return &ctl_files[i];
	return NULL;
}

static int ctl_is_action(uint64_t ino)
{
	const struct ctl_file *f = ctl_file_of(ino);

	return f && f->action;
}

int ctl_admin_only(uint64_t ino)
{
	const struct ctl_file *f = ctl_file_of(ino);

	return f && f->admin;
}

const char *ctl_name(uint64_t ino)
{
	const struct ctl_file *f = ctl_file_of(ino);

	return f ? f->name : CTL_DIR_NAME;
}

static void ctl_stat(struct fsd *d, uint64_t ino, struct stat *st)
{
	struct stat root;

	memset(st, 0, sizeof(*st));
	if (vfs_getattr(d->vfs, 1, &root) == 0) {
		st->st_uid = root.st_uid;
		st->st_gid = root.st_gid;
		st->st_mtim = st->st_ctim = st->st_atim = root.st_ctim;
	}
	st->st_ino = ino;
	if (ino == CTL_DIR_INO) {
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
	} else {
		char *buf;
		size_t len = 0;

		st->st_mode = S_IFREG | (ctl_admin_only(ino) ? 0400 : 0444);
		st->st_nlink = 1;
		if (!ctl_is_action(ino) && ctl_render(d, NULL, ino, &buf, &len) == 0)
			free(buf);
		st->st_size = (off_t)len;
	}
	st->st_blksize = 4096;
}

int ctl_lookup(struct fsd *d, uint64_t parent, const char *name, struct stat *st)
{
	if (parent == 1 && strcmp(name, CTL_DIR_NAME) == 0) {
		ctl_stat(d, CTL_DIR_INO, st);
		return 0;
	}
	if (parent != CTL_DIR_INO)
		return -ENOENT;
	for (size_t i = 0; i < ARRAY_SIZE(ctl_files); i++) {
		if (strcmp(name, ctl_files[i].name) == 0) {
			ctl_stat(d, ctl_files[i].ino, st);
			return 0;
		}
	}
	return -ENOENT;
}

int ctl_getattr(struct fsd *d, uint64_t ino, struct stat *st)
{
	if (!ctl_owns(ino))
		return -ENOENT;
	ctl_stat(d, ino, st);
	return 0;
}

int ctl_readdir(struct fsd *d, uint64_t ino, uint64_t off, ctl_dirent_fn fn, void *arg)
{
	(void)d;
	if (ino != CTL_DIR_INO)
		return -ENOTDIR;
	if (off == 0 && fn(arg, ".", CTL_DIR_INO, S_IFDIR, 1))
		return 0;
	if (off <= 1 && fn(arg, "..", 1, S_IFDIR, 2))
		return 0;
	for (size_t i = off > 2 ? off - 2 : 0; i < ARRAY_SIZE(ctl_files); i++)
		if (fn(arg, ctl_files[i].name, ctl_files[i].ino, S_IFREG, i + 3))
			return 0;
	return 0;
}

/* s as the inside of a JSON string (quotes, backslashes, controls). */
static void json_escape(const char *s, char *out, size_t cap)
{
	size_t n = 0;

	for (; *s && n + 7 < cap; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			out[n++] = '\\';
			out[n++] = (char)c;
		} else if (c < 0x20) {
			n += (size_t)snprintf(out + n, cap - n, "\\u%04x", c);
		} else {
			out[n++] = (char)c;
		}
	}
	out[n] = '\0';
}

/* The bucket's part of status: ",\n  ..." lines, malloc'ed. */
static char *render_bucket_json(struct fsd *d)
{
	struct remote_stats rs;
	struct journal_stats js;
	struct s3_stats ss;
	char err[700], jerr[700], ep[2100];
	char *out;

	remote_stats(d->remote, &rs);
	journal_stats(d->journal, &js);
	s3_stats(d->s3, &ss);
	json_escape(rs.last_error, err, sizeof(err));
	json_escape(js.last_error, jerr, sizeof(jerr));
	json_escape(d->endpoint, ep, sizeof(ep));
	if (asprintf(&out, ",\n"
		"  \"endpoint\": \"%s\",\n"
		"  \"durability\": \"%s\",\n"
		"  \"upload_pending_blocks\": %llu,\n"
		"  \"upload_pending_bytes\": %llu,\n"
		"  \"upload_oldest_age_s\": %llu,\n"
		"  \"uploaded_blocks\": %llu,\n"
		"  \"uploaded_bytes\": %llu,\n"
		"  \"upload_errors\": %llu,\n"
		"  \"upload_last_error\": \"%s\",\n"
		"  \"upload_last_error_age_s\": %llu,\n"
		"  \"upload_mark\": %llu,\n"
		"  \"journal_last_seq\": %llu,\n"
		"  \"journal_shipped_seq\": %llu,\n"
		"  \"journal_snapshot_seq\": %llu,\n"
		"  \"journal_segments\": %llu,\n"
		"  \"journal_snapshots\": %llu,\n"
		"  \"journal_errors\": %llu,\n"
		"  \"journal_last_error\": \"%s\",\n"
		"  \"local_blocks\": %llu,\n"
		"  \"local_bytes\": %llu,\n"
		"  \"local_cap_bytes\": %llu,\n"
		"  \"evicted_blocks\": %llu,\n"
		"  \"fetched_blocks\": %llu,\n"
		"  \"fetched_bytes\": %llu,\n"
		"  \"fetch_errors\": %llu,\n"
		"  \"s3_requests\": %llu,\n"
		"  \"s3_retries\": %llu,\n"
		"  \"s3_failures\": %llu,\n"
		"  \"s3_bytes_up\": %llu,\n"
		"  \"s3_bytes_down\": %llu\n",
		ep, d->durability_remote ? "remote" : "local",
		(unsigned long long)rs.pending_blocks, (unsigned long long)rs.pending_bytes,
		(unsigned long long)rs.oldest_pending_s,
		(unsigned long long)rs.uploaded_blocks, (unsigned long long)rs.uploaded_bytes,
		(unsigned long long)rs.upload_errors, err,
		(unsigned long long)rs.last_error_age_s,
		(unsigned long long)remote_mark(d->remote),
		(unsigned long long)js.last_seq, (unsigned long long)js.shipped_seq,
		(unsigned long long)js.snapshot_seq, (unsigned long long)js.segments,
		(unsigned long long)js.snapshots, (unsigned long long)js.errors, jerr,
		(unsigned long long)rs.local_blocks, (unsigned long long)rs.local_bytes,
		(unsigned long long)rs.cache_max, (unsigned long long)rs.evicted_blocks,
		(unsigned long long)rs.fetched_blocks, (unsigned long long)rs.fetched_bytes,
		(unsigned long long)rs.fetch_errors,
		(unsigned long long)ss.requests, (unsigned long long)ss.retries,
		(unsigned long long)ss.failures, (unsigned long long)ss.bytes_up,
		(unsigned long long)ss.bytes_down) < 0)
		return NULL;
	return out;
}

static int render_status(struct fsd *d, char **buf, size_t *len)
{
	char state[8192];
	struct meta_counters c;
	uint64_t dirty, seals, cbytes, hits, misses;
	uint64_t up = (mono_ns() - d->start_ns) / 1000000000ull;
	double dedup, compress;
	char *out, *bucket = NULL;
	struct lake_stats ls;
	int n;

	json_escape(d->state_dir, state, sizeof(state));
	if (d->s3)
		bucket = render_bucket_json(d);
	meta_counters(vfs_meta(d->vfs), &c);
	vfs_dirty_stats(d->vfs, &dirty, &seals);
	bs_cache_stats(vfs_blockstore(d->vfs), &cbytes, &hits, &misses);
	lake_stats(d->lake, &ls);
	dedup = c.block_bytes ? (double)c.ref_bytes / (double)c.block_bytes : 1.0;
	compress = c.stored_bytes ? (double)c.block_bytes / (double)c.stored_bytes : 1.0;
	n = asprintf(&out,
		"{\n"
		"  \"version\": \"%s\",\n"
		"  \"pid\": %d,\n"
		"  \"uptime_s\": %llu,\n"
		"  \"state_dir\": \"%s\",\n"
		"  \"store\": \"%s\",\n"
		"  \"block_size\": %u,\n"
		"  \"files\": %llu,\n"
		"  \"dirs\": %llu,\n"
		"  \"symlinks\": %llu,\n"
		"  \"other_inodes\": %llu,\n"
		"  \"blocks\": %llu,\n"
		"  \"logical_bytes\": %llu,\n"
		"  \"referenced_bytes\": %llu,\n"
		"  \"block_bytes\": %llu,\n"
		"  \"stored_bytes\": %llu,\n"
		"  \"dedup_ratio\": %.3f,\n"
		"  \"compression_ratio\": %.3f,\n"
		"  \"dirty_bytes\": %llu,\n"
		"  \"pending_seals\": %llu,\n"
		"  \"cache_bytes\": %llu,\n"
		"  \"cache_hits\": %llu,\n"
		"  \"cache_misses\": %llu,\n"
		"  \"jobs_queued\": %llu,\n"
		"  \"jobs_running\": %llu,\n"
		"  \"jobs_waiting\": %llu,\n"
		"  \"jobs_done\": %llu,\n"
		"  \"jobs_failed\": %llu,\n"
		"  \"jobs_quarantined\": %llu%s"
		"}\n",
		LAKEFS_VERSION, (int)getpid(), (unsigned long long)up, state,
		d->s3 ? d->store_url : "local", vfs_block_size(d->vfs),
		(unsigned long long)c.files, (unsigned long long)c.dirs,
		(unsigned long long)c.symlinks, (unsigned long long)c.others,
		(unsigned long long)c.blocks, (unsigned long long)c.logical_bytes,
		(unsigned long long)c.ref_bytes, (unsigned long long)c.block_bytes,
		(unsigned long long)c.stored_bytes, dedup, compress,
		(unsigned long long)dirty, (unsigned long long)seals,
		(unsigned long long)cbytes, (unsigned long long)hits,
		(unsigned long long)misses, (unsigned long long)ls.queued,
		(unsigned long long)ls.running, (unsigned long long)ls.waiting,
		(unsigned long long)ls.done, (unsigned long long)ls.failed,
		(unsigned long long)ls.quarantined, bucket ? bucket : "\n");
	free(bucket);
	if (n < 0)
		return -ENOMEM;
	*buf = out;
	*len = (size_t)n;
	return 0;
}

/* ---- metrics: Prometheus text ---- */

static void metric(struct gbuf *b, const char *name, const char *type,
		   const char *help, uint64_t v)
{
	gbuf_printf(b, "# HELP lakefs_%s %s\n# TYPE lakefs_%s %s\nlakefs_%s %llu\n",
		name, help, name, type, name, (unsigned long long)v);
}

static int render_metrics(struct fsd *d, char **buf, size_t *len)
{
	struct gbuf b = { 0 };
	struct meta_counters c;
	uint64_t dirty, seals, cbytes, hits, misses;

	meta_counters(vfs_meta(d->vfs), &c);
	vfs_dirty_stats(d->vfs, &dirty, &seals);
	bs_cache_stats(vfs_blockstore(d->vfs), &cbytes, &hits, &misses);
	metric(&b, "uptime_seconds", "gauge", "Seconds since the mount.",
	       (mono_ns() - d->start_ns) / 1000000000ull);
	metric(&b, "files", "gauge", "Regular files.", c.files);
	metric(&b, "directories", "gauge", "Directories.", c.dirs);
	metric(&b, "blocks", "gauge", "Distinct blocks referenced.", c.blocks);
	metric(&b, "logical_bytes", "gauge", "Sum of file sizes.", c.logical_bytes);
	metric(&b, "block_bytes", "gauge", "Plaintext bytes of distinct blocks.",
	       c.block_bytes);
	metric(&b, "stored_bytes", "gauge", "Compressed bytes of distinct blocks.",
	       c.stored_bytes);
	metric(&b, "dirty_bytes", "gauge", "File data not sealed into blocks yet.", dirty);
	metric(&b, "block_cache_bytes", "gauge", "Plaintext block cache in memory.", cbytes);
	metric(&b, "block_cache_hits_total", "counter", "Block cache hits.", hits);
	metric(&b, "block_cache_misses_total", "counter", "Block cache misses.", misses);
	{
		struct lake_stats ls;

		lake_stats(d->lake, &ls);
		metric(&b, "jobs_queued", "gauge", "Promotion jobs waiting for a worker.", ls.queued);
		metric(&b, "jobs_running", "gauge", "Promotion jobs running.", ls.running);
		metric(&b, "jobs_waiting_tables", "gauge",
		       "Tables with files in their quiet period.", ls.waiting);
		metric(&b, "jobs_done_total", "counter", "Jobs finished since the mount.", ls.done);
		metric(&b, "jobs_failed_total", "counter", "Jobs failed since the mount.", ls.failed);
		metric(&b, "jobs_quarantined_total", "counter",
		       "Batches quarantined whole since the mount.", ls.quarantined);
	}
	if (d->s3) {
		struct remote_stats rs;
		struct journal_stats js;
		struct s3_stats ss;

		remote_stats(d->remote, &rs);
		journal_stats(d->journal, &js);
		s3_stats(d->s3, &ss);
		metric(&b, "upload_pending_blocks", "gauge",
		       "Blocks waiting for upload to the bucket.", rs.pending_blocks);
		metric(&b, "upload_pending_bytes", "gauge",
		       "Bytes waiting for upload to the bucket.", rs.pending_bytes);
		metric(&b, "upload_oldest_age_seconds", "gauge",
		       "Age of the oldest block waiting for upload.", rs.oldest_pending_s);
		metric(&b, "uploaded_blocks_total", "counter", "Blocks uploaded.",
		       rs.uploaded_blocks);
		metric(&b, "uploaded_bytes_total", "counter", "Block bytes uploaded.",
		       rs.uploaded_bytes);
		metric(&b, "upload_errors_total", "counter", "Failed block uploads.",
		       rs.upload_errors);
		metric(&b, "journal_pending_records", "gauge",
		       "Metadata records not in the bucket yet.",
		       js.last_seq > js.shipped_seq ? js.last_seq - js.shipped_seq : 0);
		metric(&b, "journal_segments_total", "counter",
		       "Journal segments uploaded.", js.segments);
		metric(&b, "journal_snapshots_total", "counter",
		       "Metadata snapshots uploaded.", js.snapshots);
		metric(&b, "journal_errors_total", "counter",
		       "Failed journal or snapshot uploads.", js.errors);
		metric(&b, "local_store_bytes", "gauge", "Bytes in the local block store.",
		       rs.local_bytes);
		metric(&b, "local_store_cap_bytes", "gauge",
		       "Cap on the local block store (0: none).", rs.cache_max);
		metric(&b, "evicted_blocks_total", "counter",
		       "Local copies of uploaded blocks evicted.", rs.evicted_blocks);
		metric(&b, "fetched_blocks_total", "counter",
		       "Blocks fetched from the bucket.", rs.fetched_blocks);
		metric(&b, "fetched_bytes_total", "counter",
		       "Bytes fetched from the bucket.", rs.fetched_bytes);
		metric(&b, "fetch_errors_total", "counter",
		       "Failed or corrupt fetches.", rs.fetch_errors);
		metric(&b, "s3_requests_total", "counter", "S3 requests sent.", ss.requests);
		metric(&b, "s3_retries_total", "counter", "S3 requests retried.", ss.retries);
		metric(&b, "s3_failures_total", "counter",
		       "S3 requests failed after retries.", ss.failures);
		metric(&b, "s3_bytes_sent_total", "counter", "Bytes sent to S3.", ss.bytes_up);
		metric(&b, "s3_bytes_received_total", "counter", "Bytes received from S3.",
		       ss.bytes_down);
	}
	if (b.failed) {
		free(b.p);
		return -ENOMEM;
	}
	*buf = (char *)b.p;
	*len = b.n;
	return 0;
}

/* ---- sync: commit everything, answer what to wait for ---- */

static int render_sync(struct fsd *d, char **buf, size_t *len)
{
	uint64_t seq, mark;
	int n;

	if (!d->s3)
		return -EOPNOTSUPP;	/* no bucket: nothing to wait for */
	vfs_flush_all(d->vfs);
	seq = meta_journal_last(vfs_meta(d->vfs));
	mark = remote_mark(d->remote);
	journal_wait(d->journal, 0, 0);		/* ship now, do not linger */
	n = asprintf(buf, "{\n  \"journal_seq\": %llu,\n  \"upload_mark\": %llu\n}\n",
		     (unsigned long long)seq, (unsigned long long)mark);
	if (n < 0)
		return -ENOMEM;
	*len = (size_t)n;
	return 0;
}

/* ---- verify: is every referenced block in the bucket? ---- */

struct verify_ctx {
	struct fsd *d;
	int deep;
	struct bs_hash *have;	/* sorted hashes listed under blocks/ */
	size_t nhave, caphave;
	uint64_t checked, missing, corrupt, errors;
	struct gbuf out;
};

static int verify_list_one(void *arg, const char *key, uint64_t size)
{
	struct verify_ctx *vc = arg;
	const char *hex = strrchr(key, '/');

	(void)size;
	hex = hex ? hex + 1 : key;
	if (strlen(hex) != BS_HEX_LEN)
		return 0;
	if (vc->nhave == vc->caphave) {
		size_t cap = vc->caphave ? 2 * vc->caphave : 4096;
		struct bs_hash *h = realloc(vc->have, cap * sizeof(*h));

		if (!h)
			return -ENOMEM;
		vc->have = h;
		vc->caphave = cap;
	}
	if (hex_decode(hex, vc->have[vc->nhave].b, BS_HASH_LEN) == 0)
		vc->nhave++;
	return 0;
}

static int cmp_hash(const void *a, const void *b)
{
	return memcmp(a, b, BS_HASH_LEN);
}

static int verify_one(void *arg, const struct bs_hash *h, uint64_t count,
		      uint32_t raw, uint32_t stored)
{
	struct verify_ctx *vc = arg;
	char hex[BS_HEX_LEN + 1], key[80];
	struct s3_error err;
	void *data = NULL;
	size_t n = 0;

	(void)count;
	(void)raw;
	(void)stored;
	vc->checked++;
	bs_hash_hex(h, hex);
	if (!bsearch(h, vc->have, vc->nhave, sizeof(*h), cmp_hash)) {
		vc->missing++;
		gbuf_printf(&vc->out, "missing %s\n", hex);
		return 0;
	}
	if (!vc->deep)
		return 0;
	remote_block_key(h, key);
	if (s3_get(vc->d->s3, key, 0, 0, &data, &n, &err) < 0) {
		vc->errors++;
		gbuf_printf(&vc->out, "unreadable %s: %s\n", hex, err.msg);
		return 0;
	}
	if (bs_check_frame(h, data, n, 16 << 20, NULL, NULL) < 0) {
		vc->corrupt++;
		gbuf_printf(&vc->out, "corrupt %s\n", hex);
	}
	free(data);
	return 0;
}

static int render_verify(struct fsd *d, int deep, char **buf, size_t *len)
{
	struct verify_ctx vc = { .d = d, .deep = deep };
	struct s3_error err;

	if (!d->s3)
		return -EOPNOTSUPP;
	if (s3_list(d->s3, "blocks/", verify_list_one, &vc, &err) < 0) {
		log_err("verify: cannot list the bucket: %s", err.msg);
		free(vc.have);
		return -EIO;
	}
	qsort(vc.have, vc.nhave, sizeof(*vc.have), cmp_hash);
	meta_refs(vfs_meta(d->vfs), verify_one, &vc);
	gbuf_printf(&vc.out, "checked %llu blocks%s: %llu missing, %llu corrupt, "
		"%llu unreadable\n", (unsigned long long)vc.checked,
		deep ? " (deep)" : "", (unsigned long long)vc.missing,
		(unsigned long long)vc.corrupt, (unsigned long long)vc.errors);
	free(vc.have);
	if (vc.out.failed) {
		free(vc.out.p);
		return -ENOMEM;
	}
	*buf = (char *)vc.out.p;
	*len = vc.out.n;
	return 0;
}

static int gbuf_out(struct gbuf *b, char **buf, size_t *len)
{
	if (b->failed) {
		free(b->p);
		return -ENOMEM;
	}
	*buf = b->p ? (char *)b->p : strdup("");
	*len = b->n;
	return *buf ? 0 : -ENOMEM;
}

int ctl_render(struct fsd *d, struct lake_who *w, uint64_t ino, char **buf, size_t *len)
{
	if (ino == CTL_STATUS_INO)
		return render_status(d, buf, len);
	if (ino == CTL_METRICS_INO)
		return render_metrics(d, buf, len);
	if (ino == CTL_SYNC_INO)
		return render_sync(d, buf, len);
	if (ino == CTL_VERIFY_INO || ino == CTL_VERIFY_DEEP_INO)
		return render_verify(d, ino == CTL_VERIFY_DEEP_INO, buf, len);
	if (ino == CTL_JOBS_INO && w) {
		struct gbuf b = { 0 };

		lake_jobs_render(d->lake, w, &b);
		return gbuf_out(&b, buf, len);
	}
	if (ino == CTL_AUDIT_INO) {
		struct gbuf b = { 0 };

		lake_audit_render(d->lake, &b);
		return gbuf_out(&b, buf, len);
	}

	return ino == CTL_DIR_INO ? -EISDIR : -ENOENT;
}
