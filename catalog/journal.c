/*
 * catalog/journal.c — the metadata journal and snapshots in the bucket.
 *
 * With a bucket, every metadata commit writes a journal record beside its
 * changes (catalog/meta.c: key J seq). One thread here ships them:
 *
 *   meta/fs                           "lakefs 1", the fsid, the block size
 *   meta/journal/<first>-<last>       a segment: records first..last
 *   meta/snap/<seq>                   every filesystem key as of record seq
 *
 * (numbers are 16 hex digits, so names sort in order). A segment is zstd
 * of [be32 len][record]...; a snapshot is zstd of "LKFSNAP1", be64 seq,
 * then [be32 klen][key][be32 vlen][value]... and an end mark (be32
 * 0xffffffff, be64 number of keys) that proves it whole.
 *
 * Invariants
 *  - Nothing in the bucket references a block that is not there: each
 *    record carries the upload mark taken at its commit, and a segment or
 *    snapshot goes up only once remote_wait() says that mark is drained.
 *  - Records leave the local database (trim) only after the segment that
 *    holds them is in the bucket, so a crash or an outage loses none; a
 *    segment shipped twice is harmless (restore skips seqs it has).
 *  - The bucket keeps the two newest snapshots and the segments after the
 *    older of them, so a snapshot that does not read back whole still
 *    leaves a way to restore.
 *
 * Locking: j->lock guards the figures and the stop/kick flags; the thread
 * never holds it across a request. Waiters (fsync with durability=remote,
 * `lakefs sync`) sleep on j->done.
 *
 * Failure: a failed put is retried after a backoff (up to 5 s); the
 * records wait in LevelDB meanwhile and status shows the error.
 */
#include <errno.h>
#include <inttypes.h>
#include <leveldb/c.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zstd.h>

#include "catalog/journal.h"
#include "util/log.h"
#include "util/util.h"

#define SEG_MAX_RECORDS 4096
#define SEG_MAX_BYTES (8u << 20)
#define SNAP_MAGIC "LKFSNAP1"
#define SNAP_END 0xffffffffu
#define SNAP_MAX (4ull << 30)	/* the largest object decompress() takes */
#define FS_MAGIC "lakefs 1"

struct journal {
	struct meta *m;
	struct remote *r;
	struct s3_client *s3;
	struct journal_options opt;
	pthread_t thread;
	int started;

	pthread_mutex_t lock;
	pthread_cond_t kick, done;
	int stop, kicked, exited;	/* lock */
	int attached;			/* the bucket was met (attach()); lock */
	int broken;			/* it holds another filesystem */
	int fork;			/* a snapshot must precede any segment */
	uint64_t shipped;		/* last record in the bucket; lock */
	uint64_t snap_seq;		/* newest snapshot in the bucket; lock */
	int have_snap;			/* lock */
	uint64_t snap_ns;		/* when it was taken (monotonic) */
	struct journal_stats st;	/* lock */
	uint64_t last_error_ns;		/* lock */
};

/* ---- encoding ---- */

static void buf_be32(struct gbuf *b, uint32_t v)
{
	unsigned char x[4];

	put_be32(x, v);
	gbuf_add(b, x, 4);
}

static void buf_be64(struct gbuf *b, uint64_t v)
{
	unsigned char x[8];

	put_be64(x, v);
	gbuf_add(b, x, 8);
}

/* zstd of b into a new buffer. */
static int compress_buf(const struct gbuf *b, void **out, size_t *outlen)
{
	size_t cap = ZSTD_compressBound(b->n), n;
	void *z = malloc(cap);
	ZSTD_CCtx *cc = ZSTD_createCCtx();

	if (!z || !cc) {
		free(z);
		ZSTD_freeCCtx(cc);
		return -ENOMEM;
	}
	/* with a checksum: a segment or snapshot damaged in the bucket fails
	 * to decompress instead of restoring wrong metadata */
	ZSTD_CCtx_setParameter(cc, ZSTD_c_compressionLevel, 3);
	ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, 1);
	n = ZSTD_compress2(cc, z, cap, b->p, b->n);
	ZSTD_freeCCtx(cc);
	if (ZSTD_isError(n)) {
		free(z);
		return -EIO;
	}
	*out = z;
	*outlen = n;
	return 0;
}

static int decompress(const void *z, size_t zlen, unsigned char **out, size_t *outlen)
{
	unsigned long long n = ZSTD_getFrameContentSize(z, zlen);
	unsigned char *p;
	size_t got;

	if (n == ZSTD_CONTENTSIZE_ERROR || n == ZSTD_CONTENTSIZE_UNKNOWN ||
	    n > SNAP_MAX)
		return -EIO;
	p = malloc(n ? n : 1);
	if (!p)
		return -ENOMEM;
	got = ZSTD_decompress(p, n, z, zlen);
	if (ZSTD_isError(got) || got != n) {
		free(p);
		return -EIO;
	}
	*out = p;
	*outlen = got;
	return 0;
}

/* ---- the thread's work ---- */

static void set_error(struct journal *j, const char *msg)
{
	pthread_mutex_lock(&j->lock);
	snprintf(j->st.last_error, sizeof(j->st.last_error), "%s", msg);
	j->st.errors++;
	j->last_error_ns = mono_ns();
	pthread_mutex_unlock(&j->lock);
}

/* Wait until the blocks behind mark are in the bucket; -ESHUTDOWN if the
 * journal stops first. */
static int wait_blocks(struct journal *j, uint64_t mark)
{
	for (;;) {
		int ret = remote_wait(j->r, mark, 1000000000ull);
		int stop;

		if (ret != -ETIMEDOUT)
			return ret;
		pthread_mutex_lock(&j->lock);
		stop = j->stop > 1;
		pthread_mutex_unlock(&j->lock);
		if (stop)
			return -ESHUTDOWN;
	}
}

struct seg_ctx {
	struct gbuf b;
	uint64_t first, last, mark, count;
};

static int seg_one(void *arg, uint64_t seq, const void *rec, size_t len)
{
	struct seg_ctx *sc = arg;

	if (len < 16)
		return 0;
	if (sc->count && seq != sc->last + 1)
		return 1;	/* a gap: ship what is contiguous */
	if (!sc->count)
		sc->first = seq;
	sc->last = seq;
	sc->mark = MAX(sc->mark, get_be64((const unsigned char *)rec + 8));
	buf_be32(&sc->b, (uint32_t)len);
	gbuf_add(&sc->b, rec, len);
	sc->count++;
	return sc->count >= SEG_MAX_RECORDS || sc->b.n >= SEG_MAX_BYTES;
}

/* Ship the records after j->shipped as one segment. 0 or -errno. */
int journal_build_segment(struct meta *m, uint64_t from, struct gbuf *out,
			  uint64_t *first, uint64_t *last, uint64_t *mark,
			  uint64_t *count)
{
	struct seg_ctx sc = { 0 };

	meta_journal_scan(m, from, seg_one, &sc);
	*out = sc.b;
	*first = sc.first;
	*last = sc.last;
	*mark = sc.mark;
	*count = sc.count;
	return sc.b.failed ? -ENOMEM : 0;
}

static int ship_segment(struct journal *j)
{
	struct seg_ctx sc = { 0 };
	struct s3_error err;
	uint64_t from;
	void *z = NULL;
	size_t zlen;
	char key[80];
	int ret;

	pthread_mutex_lock(&j->lock);
	from = j->shipped + 1;
	pthread_mutex_unlock(&j->lock);
	ret = journal_build_segment(j->m, from, &sc.b, &sc.first, &sc.last,
				    &sc.mark, &sc.count);
	if (ret < 0) {
		free(sc.b.p);
		return ret;
	}
	if (!sc.count) {
		free(sc.b.p);
		if (from <= meta_journal_last(j->m)) {
			/* records that should be there are not: never spin */
			set_error(j, "journal records missing locally");
			return -EAGAIN;
		}
		return 0;
	}
	ret = wait_blocks(j, sc.mark);
	if (ret == 0)
		ret = compress_buf(&sc.b, &z, &zlen);
	free(sc.b.p);
	if (ret < 0)
		return ret;
	snprintf(key, sizeof(key), "meta/journal/%016" PRIx64 "-%016" PRIx64,
		 sc.first, sc.last);
	ret = s3_put(j->s3, key, z, zlen, &err);
	free(z);
	if (ret < 0) {
		set_error(j, err.msg);
		return ret;
	}
	meta_journal_trim(j->m, sc.last);
	pthread_mutex_lock(&j->lock);
	j->shipped = sc.last;
	j->st.segments++;
	pthread_cond_broadcast(&j->done);
	pthread_mutex_unlock(&j->lock);
	return 0;
}

static int snap_one(void *arg, const void *k, size_t kn, const void *v, size_t vn)
{
	struct seg_ctx *sc = arg;

	buf_be32(&sc->b, (uint32_t)kn);
	gbuf_add(&sc->b, k, kn);
	buf_be32(&sc->b, (uint32_t)vn);
	gbuf_add(&sc->b, v, vn);
	sc->count++;
	return sc->b.failed ? -ENOMEM : 0;
}

struct name_list {
	char **v;
	size_t n, cap;
};

static int list_one(void *arg, const char *key, uint64_t size)
{
	struct name_list *l = arg;

	(void)size;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		char **v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n] = strdup(key);
	if (!l->v[l->n])
		return -ENOMEM;
	l->n++;
	return 0;
}

static void name_list_free(struct name_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int list_sorted(struct s3_client *s3, const char *prefix,
		       struct name_list *l, struct s3_error *err)
{
	int ret = s3_list(s3, prefix, list_one, l, err);

	if (ret == 0 && l->n)
		qsort(l->v, l->n, sizeof(*l->v), cmp_str);
	return ret;
}

/* The seq a snapshot name stands for, or -1. */
static int64_t snap_name_seq(const char *key)
{
	const char *p = strrchr(key, '/');
	char *end;
	unsigned long long v;

	if (!p || strlen(p + 1) != 16)
		return -1;
	v = strtoull(p + 1, &end, 16);
	return *end ? -1 : (int64_t)v;
}

/* first and last of a segment name; 0 or -1 */
static int seg_name_range(const char *key, uint64_t *first, uint64_t *last)
{
	const char *p = strrchr(key, '/');
	char *end;

	if (!p || strlen(p + 1) != 33 || p[17] != '-')
		return -1;
	*first = strtoull(p + 1, &end, 16);
	if (end != p + 17)
		return -1;
	*last = strtoull(p + 18, &end, 16);
	return *end ? -1 : 0;
}

/* Keep the two newest snapshots and the segments after the older one. */
static void prune(struct journal *j)
{
	struct name_list snaps = { 0 }, segs = { 0 };
	struct s3_error err;
	uint64_t keep_from = 0;

	if (list_sorted(j->s3, "meta/snap/", &snaps, &err) < 0)
		goto out;
	/* only names of ours count (and are ever deleted): a stray object
	 * under meta/snap/ must not push a real snapshot out */
	for (size_t i = 0, k = 0; i < snaps.n; i++) {
		if (snap_name_seq(snaps.v[i]) >= 0)
			snaps.v[k++] = snaps.v[i];
		else
			free(snaps.v[i]);
		if (i + 1 == snaps.n)
			snaps.n = k;
	}
	if (snaps.n < 2)
		goto out;
	keep_from = (uint64_t)snap_name_seq(snaps.v[snaps.n - 2]);
	for (size_t i = 0; i + 2 < snaps.n; i++)
		s3_delete(j->s3, snaps.v[i], &err);
	if (list_sorted(j->s3, "meta/journal/", &segs, &err) < 0)
		goto out;
	for (size_t i = 0; i < segs.n; i++) {
		uint64_t first, last;

		if (seg_name_range(segs.v[i], &first, &last) == 0 && last <= keep_from)
			s3_delete(j->s3, segs.v[i], &err);
	}
out:
	name_list_free(&snaps);
	name_list_free(&segs);
}

int journal_build_snapshot(struct meta *m, struct gbuf *out, uint64_t *seq,
			   uint64_t *mark, uint64_t *keys)
{
	struct seg_ctx sc = { 0 };
	int ret;

	gbuf_add(&sc.b, SNAP_MAGIC, 8);
	buf_be64(&sc.b, 0);	/* seq, filled in below */
	ret = meta_snapshot(m, snap_one, &sc, seq, mark);
	if (ret == 0 && !sc.b.failed) {
		put_be64(sc.b.p + 8, *seq);
		buf_be32(&sc.b, SNAP_END);
		buf_be64(&sc.b, sc.count);
	}
	*out = sc.b;
	*keys = sc.count;
	return ret < 0 ? ret : sc.b.failed ? -ENOMEM : 0;
}

static int ship_snapshot(struct journal *j)
{
	struct seg_ctx sc = { 0 };
	struct s3_error err;
	uint64_t seq, mark;
	void *z = NULL;
	size_t zlen;
	char key[80];
	int ret;

	ret = journal_build_snapshot(j->m, &sc.b, &seq, &mark, &sc.count);
	if (ret == 0 && sc.b.n > SNAP_MAX) {
		/* restore reads a snapshot whole: one it could not read is
		 * not worth sending; the journal still carries everything */
		set_error(j, "metadata snapshot over 4 GiB not uploaded (restore "
			  "would not read it)");
		ret = -EFBIG;
	}
	if (ret == 0)
		ret = wait_blocks(j, mark);
	if (ret == 0)
		ret = compress_buf(&sc.b, &z, &zlen);
	free(sc.b.p);
	if (ret < 0)
		return ret;
	snprintf(key, sizeof(key), "meta/snap/%016" PRIx64, seq);
	ret = s3_put(j->s3, key, z, zlen, &err);
	free(z);
	if (ret < 0) {
		set_error(j, err.msg);
		return ret;
	}
	pthread_mutex_lock(&j->lock);
	j->have_snap = 1;
	if (j->fork) {
		/* a renumbered state's history starts at this snapshot: the
		 * records it holds need no segment of their own */
		j->shipped = MAX(j->shipped, seq);
		j->fork = 0;
	}
	pthread_cond_broadcast(&j->done);
	j->snap_seq = seq;
	j->snap_ns = mono_ns();
	j->st.snapshots++;
	pthread_mutex_unlock(&j->lock);
	log_info("snapshot of the metadata at record %" PRIu64 " is in the bucket "
		 "(%" PRIu64 " keys, %zu bytes)", seq, sc.count, zlen);
	prune(j);
	return 0;
}

static void timed_wait(struct journal *j, uint64_t ns)
{
	struct timespec ts = realtime_after(ns);

	pthread_cond_timedwait(&j->kick, &j->lock, &ts);
}

static int attach(struct journal *j, char *msg, size_t cap, int *transient);

static void *journal_main(void *arg)
{
	struct journal *j = arg;
	uint64_t pending_since = 0, backoff = 0;

	pthread_mutex_lock(&j->lock);
	while (j->stop < 2) {
		uint64_t last = meta_journal_last(j->m), now = mono_ns();
		int ship, snap, ret = 0;

		if (!j->attached) {
			char msg[1024];
			int transient;

			if (j->broken || j->stop || backoff > now) {
				if (j->stop)
					break;
				timed_wait(j, j->broken ? 1000000000ull : backoff - now);
				continue;
			}
			pthread_mutex_unlock(&j->lock);
			ret = attach(j, msg, sizeof(msg), &transient);
			if (ret < 0)
				set_error(j, msg);
			pthread_mutex_lock(&j->lock);
			if (ret == 0) {
				log_info("the bucket answers again; the metadata "
					 "journal goes on");
				backoff = 0;
			} else if (!transient) {
				log_err("the metadata journal stops: %s (records "
					"stay in the state directory)", msg);
				j->broken = 1;
			} else {
				backoff = mono_ns() + 2000000000ull;
			}
			continue;
		}

		if (j->shipped >= last)
			pending_since = 0;
		else if (!pending_since)
			pending_since = now;
		ship = !j->fork && j->shipped < last &&
		       (j->kicked || j->stop ||
			now - pending_since >= j->opt.linger_ms * 1000000ull ||
			last - j->shipped >= SEG_MAX_RECORDS);
		/* at unmount only a snapshot that must be (the first, or a
		 * renumbered state's) holds it up */
		snap = !j->have_snap ||
		       (!j->stop && last > j->snap_seq &&
			(last - j->snap_seq >= j->opt.snap_records ||
			 now - j->snap_ns >= j->opt.snap_interval_s * 1000000000ull));
		if (j->stop && !ship)
			break;
		if ((!ship && !snap) || backoff > now) {
			timed_wait(j, backoff > now ? backoff - now : 200000000ull);
			continue;
		}
		j->kicked = 0;
		pthread_mutex_unlock(&j->lock);
		if (ship)
			ret = ship_segment(j);
		if (ret == 0 && snap)
			ret = ship_snapshot(j);
		pthread_mutex_lock(&j->lock);
		if (ret < 0 && ret != -ESHUTDOWN) {
			uint64_t b = 200000000ull << MIN(j->st.errors, 5u);

			backoff = mono_ns() + MIN(b, 5000000000ull);
			if (j->stop)
				break;	/* the caller's time is up at stop */
		} else {
			backoff = 0;
		}
	}
	j->exited = 1;
	pthread_cond_broadcast(&j->done);
	pthread_mutex_unlock(&j->lock);
	return NULL;
}

/* ---- start, stop, wait ---- */

static int check_fs(struct journal *j, char *msg, size_t cap, struct s3_error *e)
{
	const struct meta_super *sup = meta_super(j->m);
	struct s3_error err;
	char want[200], fsid[33];
	void *data = NULL;
	size_t n = 0;
	int ret;

	memset(e, 0, sizeof(*e));
	e->http = 200;	/* a mismatch below is no transport failure */
	hex_encode(sup->fsid, sizeof(sup->fsid), fsid);
	snprintf(want, sizeof(want), FS_MAGIC "\nfsid %s\nblock_size %u\n", fsid,
		 sup->block_size);
	ret = s3_get(j->s3, "meta/fs", 0, 0, &data, &n, &err);
	if (ret == -ENOENT) {
		ret = s3_put(j->s3, "meta/fs", want, strlen(want), &err);
		if (ret < 0) {
			snprintf(msg, cap, "cannot write to the bucket: %s", err.msg);
			*e = err;
		}
		return ret;
	}
	if (ret < 0) {
		snprintf(msg, cap, "cannot read the bucket: %s", err.msg);
		*e = err;
		return ret;
	}
	if (n < 14 || memcmp(data, FS_MAGIC "\n", 9) != 0) {
		snprintf(msg, cap, "the bucket's meta/fs is not a lakefs filesystem");
		ret = -EINVAL;
	} else if (!memmem(data, n, fsid, 32)) {
		snprintf(msg, cap, "the bucket holds another lakefs filesystem "
			 "(this state's fsid is %s); use another bucket or prefix, "
			 "or restore from it into a new state", fsid);
		ret = -EEXIST;
	}
	free(data);
	return ret;
}

struct first_ctx {
	uint64_t seq;
	int found;
};

static int first_one(void *arg, uint64_t seq, const void *rec, size_t len)
{
	struct first_ctx *fc = arg;

	(void)rec;
	(void)len;
	fc->seq = seq;
	fc->found = 1;
	return 1;
}

/*
 * Meet the bucket: it holds this filesystem or nothing yet (meta/fs), which
 * snapshot is newest, and whether it speaks of records this state never
 * had. Sets have_snap, snap_seq, fork and shipped. 0, or -errno with msg;
 * *transient says whether trying again later may help (the bucket did not
 * answer) or not (it belongs to another filesystem).
 */
static int attach(struct journal *j, char *msg, size_t cap, int *transient)
{
	struct meta *m = j->m;
	struct name_list names = { 0 };
	struct first_ctx fc = { 0 };
	struct s3_error err;
	uint64_t seen, last, shipped;
	int ret;

	*transient = 0;
	ret = check_fs(j, msg, cap, &err);
	if (ret < 0) {
		*transient = err.http == 0 || err.http >= 500;
		return ret;
	}
	ret = list_sorted(j->s3, "meta/snap/", &names, &err);
	if (ret < 0)
		goto list_failed;
	for (size_t i = names.n; i-- > 0;) {
		int64_t s = snap_name_seq(names.v[i]);

		if (s >= 0) {
			j->have_snap = 1;
			j->snap_seq = (uint64_t)s;
			break;
		}
	}
	name_list_free(&names);
	ret = list_sorted(j->s3, "meta/journal/", &names, &err);
	if (ret < 0)
		goto list_failed;
	seen = j->have_snap ? j->snap_seq : 0;
	for (size_t i = 0; i < names.n; i++) {
		uint64_t first, end;

		if (seg_name_range(names.v[i], &first, &end) == 0)
			seen = MAX(seen, end);
	}
	name_list_free(&names);
	if (seen > meta_journal_last(m)) {
		/*
		 * The bucket speaks of records this state never had: a restore
		 * that stopped early at a damaged segment, or another daemon on
		 * the same prefix. Go on after all of them, from a snapshot of
		 * our own that goes up before any segment, so that no restore
		 * ever mixes the two histories.
		 */
		log_warn("the bucket holds metadata records up to %" PRIu64 " that "
			 "this state (at record %" PRIu64 ") never had; going on "
			 "from a new snapshot at record %" PRIu64, seen,
			 meta_journal_last(m), seen + 1);
		ret = meta_journal_skip(m, seen + 1);
		if (ret < 0) {
			snprintf(msg, cap, "cannot renumber the journal");
			return ret;
		}
	}
	j->snap_ns = mono_ns();
	last = meta_journal_last(m);	/* before the scan: commits go on */
	meta_journal_scan(m, 0, first_one, &fc);
	shipped = fc.found ? fc.seq - 1 : last;
	pthread_mutex_lock(&j->lock);
	j->shipped = shipped;
	/*
	 * Records this state counts as shipped that the bucket does not hold
	 * exist only after a renumbering above, or after one whose snapshot
	 * never went up (an unmount or a crash came first): either way a
	 * snapshot of our own must go up before any segment. Nothing counts
	 * as shipped until it has (journal_wait, status).
	 */
	if (shipped > seen) {
		j->fork = 1;
		j->have_snap = 0;
	}
	j->attached = 1;
	pthread_mutex_unlock(&j->lock);
	return 0;
list_failed:
	name_list_free(&names);
	snprintf(msg, cap, "cannot list the bucket: %s", err.msg);
	*transient = err.http == 0 || err.http >= 500;
	return ret;
}

int journal_start(struct journal **out, struct meta *m, struct remote *r,
		  struct s3_client *s3, const struct journal_options *opt,
		  char **errmsg)
{
	struct journal *j = calloc(1, sizeof(*j));
	char msg[1024] = "";
	int ret = 0, transient;

	if (!j)
		return -ENOMEM;
	j->m = m;
	j->r = r;
	j->s3 = s3;
	j->opt = *opt;
	if (!j->opt.linger_ms)
		j->opt.linger_ms = 1000;
	if (!j->opt.snap_records)
		j->opt.snap_records = 100000;
	if (!j->opt.snap_interval_s)
		j->opt.snap_interval_s = 3600;
	pthread_mutex_init(&j->lock, NULL);
	pthread_cond_init(&j->kick, NULL);
	pthread_cond_init(&j->done, NULL);
	j->shipped = 0;		/* until attached, nothing counts as shipped */
	if (!opt->defer_attach)
		ret = attach(j, msg, sizeof(msg), &transient);
	if (ret < 0) {
		if (errmsg)
			*errmsg = strdup(msg);
		pthread_cond_destroy(&j->kick);
		pthread_cond_destroy(&j->done);
		pthread_mutex_destroy(&j->lock);
		free(j);
		return ret;
	}
	*out = j;
	return 0;
}

int journal_go(struct journal *j)
{
	int ret = pthread_create(&j->thread, NULL, journal_main, j);

	if (ret) {
		log_err("cannot start the journal: %s", strerror(ret));
		return -ret;
	}
	pthread_setname_np(j->thread, "journal");
	j->started = 1;
	return 0;
}

void journal_stop(struct journal *j, uint64_t timeout_ns)
{
	uint64_t deadline = mono_ns() + timeout_ns;

	if (!j)
		return;
	pthread_mutex_lock(&j->lock);
	j->stop = 1;		/* ship what is left ... */
	pthread_cond_broadcast(&j->kick);
	while (j->started && j->shipped < meta_journal_last(j->m) &&
	       mono_ns() < deadline && !j->exited) {
		struct timespec ts = realtime_after(100000000ull);

		pthread_cond_timedwait(&j->done, &j->lock, &ts);
	}
	if (j->shipped < meta_journal_last(j->m)) {
		s3_cancel(j->s3);	/* a request in flight ends now */
		log_warn("%" PRIu64 " metadata records are not in the bucket yet; "
			 "they go up at the next mount",
			 meta_journal_last(j->m) - j->shipped);
	}
	j->stop = 2;		/* ... then stop for good */
	pthread_cond_broadcast(&j->kick);
	pthread_mutex_unlock(&j->lock);
	if (j->started)
		pthread_join(j->thread, NULL);
	pthread_cond_destroy(&j->kick);
	pthread_cond_destroy(&j->done);
	pthread_mutex_destroy(&j->lock);
	free(j);
}

int journal_wait(struct journal *j, uint64_t seq, uint64_t timeout_ns)
{
	uint64_t deadline = mono_ns() + timeout_ns;
	int ret = 0;

	pthread_mutex_lock(&j->lock);
	j->kicked = 1;
	pthread_cond_broadcast(&j->kick);
	while (j->shipped < seq || j->fork || !j->attached) {
		struct timespec ts = realtime_after(100000000ull);

		if (mono_ns() >= deadline || j->stop > 1) {
			ret = -ETIMEDOUT;
			break;
		}
		pthread_cond_timedwait(&j->done, &j->lock, &ts);
		j->kicked = 1;
	}
	pthread_mutex_unlock(&j->lock);
	return ret;
}

void journal_stats(struct journal *j, struct journal_stats *st)
{
	pthread_mutex_lock(&j->lock);
	*st = j->st;
	/* nothing counts as shipped before the bucket is met, nor while a
	 * renumbered state's own snapshot is not up yet */
	st->shipped_seq = j->fork || !j->attached ? 0 : j->shipped;
	st->snapshot_seq = j->snap_seq;
	if (j->last_error_ns)
		st->last_error_age_s = (mono_ns() - j->last_error_ns) / 1000000000ull;
	pthread_mutex_unlock(&j->lock);
	st->last_seq = meta_journal_last(j->m);
}

/* ---- restore ---- */

struct rdb {
	leveldb_t *db;
	leveldb_options_t *opts;
	leveldb_writeoptions_t *wo;
	leveldb_writebatch_t *wb;
	size_t pending;
	int failed;
	char err[512];
};

static void rdb_flush(struct rdb *d)
{
	char *err = NULL;

	if (!d->pending || d->failed)
		return;
	leveldb_write(d->db, d->wo, d->wb, &err);
	leveldb_writebatch_clear(d->wb);
	d->pending = 0;
	if (err) {
		snprintf(d->err, sizeof(d->err), "%s", err);
		leveldb_free(err);
		d->failed = 1;
	}
}

/* Apply a snapshot (d NULL: only check that it is whole); *seq is its
 * record. 0 or -EIO. */
static int apply_snapshot(struct rdb *d, const unsigned char *p, size_t n,
			  uint64_t *seq, uint64_t *keys)
{
	size_t off = 16;

	if (n < 16 + 12 || memcmp(p, SNAP_MAGIC, 8) != 0)
		return -EIO;
	*seq = get_be64(p + 8);
	*keys = 0;
	while (off + 4 <= n) {
		uint32_t kn = get_be32(p + off), vn;

		if (kn == SNAP_END) {
			if (off + 12 != n || get_be64(p + off + 4) != *keys)
				return -EIO;
			if (!d)
				return 0;
			rdb_flush(d);
			return d->failed ? -EIO : 0;
		}
		if (off + 4 + kn + 4 > n)
			return -EIO;
		vn = get_be32(p + off + 4 + kn);
		if (off + 8 + kn + vn > n)
			return -EIO;
		off += 8 + (size_t)kn + vn;
		(*keys)++;
		if (!d)
			continue;
		leveldb_writebatch_put(d->wb, (const char *)p + off - vn - 4 - kn, kn,
				       (const char *)p + off - vn, vn);
		if (++d->pending >= 4096)
			rdb_flush(d);
	}
	return -EIO;
}

/* Apply one record's operations; -EIO if malformed. */
/* Apply one record's operations (d NULL: only check them); -EIO if
 * malformed. */
static int apply_record(struct rdb *d, const unsigned char *p, size_t n)
{
	size_t off = 16;

	while (off < n) {
		char op = (char)p[off];
		uint32_t kn, vn;

		if (off + 5 > n)
			return -EIO;
		kn = get_be32(p + off + 1);
		if (off + 5 + kn > n)
			return -EIO;
		if (op == 'D') {
			if (d)
				leveldb_writebatch_delete(d->wb, (const char *)p + off + 5, kn);
			off += 5 + kn;
		} else if (op == 'P') {
			if (off + 9 + kn > n)
				return -EIO;
			vn = get_be32(p + off + 5 + kn);
			if (off + 9 + kn + vn > n)
				return -EIO;
			if (d)
				leveldb_writebatch_put(d->wb, (const char *)p + off + 5, kn,
						       (const char *)p + off + 9 + kn, vn);
			off += 9 + (size_t)kn + vn;
		} else {
			return -EIO;
		}
	}
	if (!d)
		return 0;
	d->pending++;
	rdb_flush(d);	/* one record, one batch: as it was committed */
	return d->failed ? -EIO : 0;
}

int journal_check_segment(const void *buf, size_t n, uint64_t *first,
			  uint64_t *last, uint64_t *count)
{
	const unsigned char *p = buf;
	size_t off = 0;

	*count = 0;
	while (off + 4 <= n) {
		uint32_t len = get_be32(p + off);
		uint64_t seq;

		if (len < 16 || off + 4 + len > n)
			return -EIO;
		seq = get_be64(p + off + 4);
		if (*count && seq != *last + 1)
			return -EIO;
		if (apply_record(NULL, p + off + 4, len) < 0)
			return -EIO;
		if (!(*count)++)
			*first = seq;
		*last = seq;
		off += 4 + (size_t)len;
	}
	return off == n && *count ? 0 : -EIO;
}

int journal_check_snapshot(const void *buf, size_t n, uint64_t *seq,
			   uint64_t *keys)
{
	return apply_snapshot(NULL, buf, n, seq, keys);
}

struct ref_list {
	struct bs_hash *h;
	uint32_t *stored;
	size_t n, cap;
};

static int collect_refs(leveldb_t *db, struct ref_list *rl)
{
	leveldb_readoptions_t *ro = leveldb_readoptions_create();
	leveldb_iterator_t *it = leveldb_create_iterator(db, ro);
	int ret = 0;

	for (leveldb_iter_seek(it, "R", 1); leveldb_iter_valid(it); leveldb_iter_next(it)) {
		size_t kn, vn;
		const char *k = leveldb_iter_key(it, &kn);
		const unsigned char *v = (const unsigned char *)leveldb_iter_value(it, &vn);

		if (kn != 1 + BS_HASH_LEN || k[0] != 'R')
			break;
		if (rl->n == rl->cap) {
			size_t cap = rl->cap ? rl->cap * 2 : 1024;
			struct bs_hash *h = realloc(rl->h, cap * sizeof(*h));
			uint32_t *s;

			if (h)
				rl->h = h;
			s = h ? realloc(rl->stored, cap * sizeof(*s)) : NULL;
			if (!s) {
				ret = -ENOMEM;
				break;
			}
			rl->stored = s;
			rl->cap = cap;
		}
		memcpy(rl->h[rl->n].b, k + 1, BS_HASH_LEN);
		rl->stored[rl->n] = vn >= 16 ? get_be32(v + 12) : 0;
		rl->n++;
	}
	leveldb_iter_destroy(it);
	leveldb_readoptions_destroy(ro);
	return ret;
}

int journal_restore(struct s3_client *s3, const char *store_url,
		    const char *state_dir, struct restore_report *rep,
		    char **errmsg)
{
	struct name_list snaps = { 0 }, segs = { 0 };
	struct rdb d = { 0 };
	struct ref_list rl = { 0 };
	struct s3_error err;
	struct stat sb;
	char msg[1024] = "", path[4096], *lerr = NULL;
	void *data = NULL;
	size_t n = 0;
	uint64_t applied = 0;
	int ret, have = 0;

	memset(rep, 0, sizeof(*rep));
	snprintf(path, sizeof(path), "%s/meta", state_dir);
	if (stat(path, &sb) == 0) {
		snprintf(msg, sizeof(msg), "%s already holds a filesystem; restore "
			 "into a new state directory", state_dir);
		ret = -EEXIST;
		goto out;
	}
	ret = s3_get(s3, "meta/fs", 0, 0, &data, &n, &err);
	if (ret < 0) {
		snprintf(msg, sizeof(msg), ret == -ENOENT ?
			 "%s holds no lakefs filesystem (no meta/fs)" :
			 "cannot read %s: %s", store_url, err.msg);
		goto out;
	}
	free(data);
	data = NULL;
	ret = list_sorted(s3, "meta/snap/", &snaps, &err);
	if (ret == 0)
		ret = list_sorted(s3, "meta/journal/", &segs, &err);
	if (ret < 0) {
		snprintf(msg, sizeof(msg), "cannot list %s: %s", store_url, err.msg);
		goto out;
	}
	if (!snaps.n) {
		snprintf(msg, sizeof(msg), "%s holds no snapshot yet (the first one "
			 "goes up soon after the first mount)", store_url);
		ret = -ENOENT;
		goto out;
	}
	ret = mkdir_p(state_dir, 0700);
	if (ret < 0) {
		snprintf(msg, sizeof(msg), "cannot create %s: %s", state_dir,
			 strerror(-ret));
		goto out;
	}
	d.opts = leveldb_options_create();
	leveldb_options_set_create_if_missing(d.opts, 1);
	leveldb_options_set_error_if_exists(d.opts, 1);
	d.wo = leveldb_writeoptions_create();
	d.wb = leveldb_writebatch_create();
	d.db = leveldb_open(d.opts, path, &lerr);
	if (lerr) {
		snprintf(msg, sizeof(msg), "cannot create %s: %s", path, lerr);
		leveldb_free(lerr);
		ret = -EIO;
		goto out;
	}

	/* the newest snapshot that reads back whole */
	for (size_t i = snaps.n; i-- > 0 && !have;) {
		unsigned char *plain = NULL;
		size_t plen;

		if (snap_name_seq(snaps.v[i]) < 0)
			continue;
		ret = s3_get(s3, snaps.v[i], 0, 0, &data, &n, &err);
		if (ret == -ENOENT) {
			/* pruned since the listing: an older one will do */
			log_warn("snapshot %s is gone; trying an older one", snaps.v[i]);
			continue;
		}
		if (ret < 0) {
			snprintf(msg, sizeof(msg), "cannot read %s: %s", snaps.v[i], err.msg);
			goto out;
		}
		ret = decompress(data, n, &plain, &plen);
		free(data);
		data = NULL;
		if (ret == 0)	/* whole before anything is written */
			ret = apply_snapshot(NULL, plain, plen, &rep->snapshot_seq,
					     &rep->keys);
		if (ret == 0) {
			ret = apply_snapshot(&d, plain, plen, &rep->snapshot_seq,
					     &rep->keys);
			if (ret < 0) {
				free(plain);
				snprintf(msg, sizeof(msg), "cannot write %s: %s",
					 path, d.err);
				goto out;
			}
			have = 1;
		} else {
			log_warn("snapshot %s does not read back whole; trying an "
				 "older one", snaps.v[i]);
		}
		free(plain);
	}
	if (!have) {
		snprintf(msg, sizeof(msg), "no snapshot in %s reads back whole", store_url);
		ret = -EIO;
		goto out;
	}
	applied = rep->snapshot_seq;

	/* then the journal after it, record by record, without gaps */
	for (size_t i = 0; i < segs.n; i++) {
		uint64_t first, last;
		unsigned char *plain = NULL;
		size_t plen, off = 0;

		if (seg_name_range(segs.v[i], &first, &last) < 0 || last <= applied)
			continue;
		if (first > applied + 1) {
			log_warn("the journal in %s has a gap after record %" PRIu64
				 "; restored up to there", store_url, applied);
			break;
		}
		ret = s3_get(s3, segs.v[i], 0, 0, &data, &n, &err);
		if (ret == -ENOENT) {
			/* as a gap: pruned, or deleted by hand */
			log_warn("journal segment %s is gone; restored up to record "
				 "%" PRIu64 " only", segs.v[i], applied);
			ret = 0;
			break;
		}
		if (ret < 0) {
			snprintf(msg, sizeof(msg), "cannot read %s: %s", segs.v[i], err.msg);
			goto out;
		}
		ret = decompress(data, n, &plain, &plen);
		free(data);
		data = NULL;
		if (ret == 0) {
			uint64_t f, l, c;

			ret = journal_check_segment(plain, plen, &f, &l, &c);
		}
		if (ret < 0) {
			/* as a gap: restore up to here rather than not at all */
			log_warn("journal segment %s is corrupt; restored up to record "
				 "%" PRIu64 " only", segs.v[i], applied);
			free(plain);
			ret = 0;
			break;
		}
		while (ret == 0 && off + 4 <= plen) {
			uint32_t rl32 = get_be32(plain + off);
			uint64_t seq;

			if (rl32 < 16 || off + 4 + rl32 > plen) {
				ret = -EIO;
				break;
			}
			seq = get_be64(plain + off + 4);
			if (seq == applied + 1) {
				ret = apply_record(&d, plain + off + 4, rl32);
				if (ret == 0) {
					applied = seq;
					rep->records++;
				}
			}
			off += 4 + (size_t)rl32;
		}
		free(plain);
		if (ret < 0) {
			snprintf(msg, sizeof(msg), d.failed ? "cannot write %s: %s" :
				 "journal segment %s is corrupt", d.failed ? path : segs.v[i],
				 d.err);
			goto out;
		}
	}
	rep->last_seq = applied;
	{
		unsigned char v[8];
		leveldb_writeoptions_t *wos = leveldb_writeoptions_create();

		put_be64(v, applied);
		leveldb_writeoptions_set_sync(wos, 1);
		leveldb_put(d.db, wos, "j", 1, (char *)v, 8, &lerr);
		leveldb_writeoptions_destroy(wos);
		if (lerr) {
			snprintf(msg, sizeof(msg), "cannot write %s: %s", path, lerr);
			leveldb_free(lerr);
			ret = -EIO;
			goto out;
		}
	}
	ret = collect_refs(d.db, &rl);
	if (ret == 0)
		ret = remote_seed(state_dir, store_url, rl.h, rl.stored, rl.n, errmsg);
	if (ret < 0) {
		if (!errmsg || !*errmsg)
			snprintf(msg, sizeof(msg), "cannot record the bucket's blocks");
		else
			msg[0] = 0;
		goto out;
	}
	rep->blocks = rl.n;
out:
	if (ret < 0 && errmsg && msg[0])
		*errmsg = strdup(msg);
	free(rl.h);
	free(rl.stored);
	if (d.db)
		leveldb_close(d.db);
	if (d.opts)
		leveldb_options_destroy(d.opts);
	if (d.wo)
		leveldb_writeoptions_destroy(d.wo);
	if (d.wb)
		leveldb_writebatch_destroy(d.wb);
	name_list_free(&snaps);
	name_list_free(&segs);
	return ret;
}
