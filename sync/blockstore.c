/*
 * sync/blockstore.c — the block store: name, compress, verify, cache.
 *
 * A block is named by the SHA-256 of its plaintext and stored as one zstd
 * frame (raw blocks for data that does not compress, see raw_frame)
 * through a backend (sync/local.c, or sync/remote.c over it). Blocks are
 * immutable, so a name that is present never needs writing again: that is
 * the whole of deduplication.
 *
 * Invariants
 *  - Nothing is served that does not hash to its name: every load from the
 *    backend is decompressed and verified before it enters the cache; a
 *    mismatch is -EIO and a log line naming the block. Verified means
 *    hashed, unless the backend vouches that the bytes are exactly those
 *    this store put under the name (a frame it made of a plaintext it had
 *    just hashed, or fetched and verified): the local backend checks a
 *    checksum it recorded at the put, see sync/local.c.
 *  - A pinned hash is never deleted. bs_seal() pins before it decides that
 *    a block is already present, so a concurrent delete of a block whose
 *    last reference just went away cannot remove the bytes a new reference
 *    is about to use. The reference counts themselves live in the metadata
 *    (catalog/meta.c); callers pass a predicate that reads them, and
 *    bs_delete_if() evaluates it under the pin lock.
 *
 * Locking
 *  - pin_lock protects the pin table and orders "has + pin" against
 *    "unpinned + unreferenced + delete".
 *  - cache_lock protects the cache table, the LRU list, entry states and
 *    reference counts; it is never held across I/O. Loaders mark an entry
 *    LOADING, drop the lock, load, and broadcast cache_cond.
 *
 * The plaintext cache is bounded by bytes; only unreferenced READY entries
 * are evicted, so it may overshoot by what readers hold at once (a handful
 * of blocks). Read-ahead loads run on their own small worker pool.
 */
#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "sync/blockstore.h"
#include "sync/workq.h"
#include "util/log.h"
#include "util/util.h"

#define PIN_BUCKETS 1024
#define CACHE_BUCKETS 4096

struct pin {
	struct pin *next;
	struct bs_hash h;
	unsigned count;
};

enum centry_state { CE_LOADING, CE_READY };

struct centry {
	struct bs_buf buf;		/* data is the malloc'ed plaintext */
	struct centry *hnext;		/* hash chain */
	struct centry *lprev, *lnext;	/* LRU, most recent at head */
	struct bs_hash h;
	int refs;
	int state;
	int err;
};

struct blockstore {
	struct bs_backend be;
	struct bs_options opt;

	pthread_mutex_t pin_lock;
	struct pin *pins[PIN_BUCKETS];		/* protected by pin_lock */

	pthread_mutex_t cache_lock;
	pthread_cond_t cache_cond;
	struct centry *cache[CACHE_BUCKETS];	/* protected by cache_lock */
	struct centry lru;			/* sentinel; cache_lock */
	uint64_t cache_bytes;			/* cache_lock */
	uint64_t hits, misses;			/* cache_lock */

	struct workq *prefetch_wq;
	pthread_key_t zkey;
};

/* Per-thread compression state and output buffer (page aligned). */
struct zctx {
	ZSTD_CCtx *c;
	ZSTD_DCtx *d;
	void *out;
	size_t outcap;
};

static void zctx_free(void *p)
{
	struct zctx *z = p;

	ZSTD_freeCCtx(z->c);
	ZSTD_freeDCtx(z->d);
	free(z->out);
	free(z);
}

/* This thread's zstd state; the compression half only if compress is set
 * (readers never pay for a compression context and its output buffer). */
static struct zctx *zctx_get(struct blockstore *bs, int compress)
{
	struct zctx *z = pthread_getspecific(bs->zkey);

	if (!z) {
		z = calloc(1, sizeof(*z));
		if (!z)
			return NULL;
		z->d = ZSTD_createDCtx();
		if (!z->d) {
			free(z);
			return NULL;
		}
		pthread_setspecific(bs->zkey, z);
	}
	if (compress && !z->c) {
		z->outcap = ZSTD_compressBound(bs->opt.block_size);
		if (posix_memalign(&z->out, 4096, z->outcap) != 0) {
			z->out = NULL;
			return NULL;
		}
		z->c = ZSTD_createCCtx();
		if (!z->c)
			return NULL;
	}
	return z;
}

void bs_hash_of(const void *data, size_t len, struct bs_hash *out)
{
	unsigned int n = 0;

	EVP_Digest(data, len, out->b, &n, EVP_sha256(), NULL);
}

void bs_hash_hex(const struct bs_hash *h, char out[BS_HEX_LEN + 1])
{
	hex_encode(h->b, BS_HASH_LEN, out);
}

static unsigned hash_bucket(const struct bs_hash *h, unsigned n)
{
	return (unsigned)get_be32(h->b) % n;
}

/* ---- pins ---- */

static struct pin **pin_find(struct blockstore *bs, const struct bs_hash *h)
{
	struct pin **pp = &bs->pins[hash_bucket(h, PIN_BUCKETS)];

	while (*pp && memcmp((*pp)->h.b, h->b, BS_HASH_LEN) != 0)
		pp = &(*pp)->next;
	return pp;
}

static void pin_locked(struct blockstore *bs, const struct bs_hash *h)
{
	struct pin **pp = pin_find(bs, h);

	if (*pp) {
		(*pp)->count++;
		return;
	}
	*pp = xcalloc(1, sizeof(**pp));
	(*pp)->h = *h;
	(*pp)->count = 1;
}

void bs_pin(struct blockstore *bs, const struct bs_hash *h)
{
	pthread_mutex_lock(&bs->pin_lock);
	pin_locked(bs, h);
	pthread_mutex_unlock(&bs->pin_lock);
}

void bs_unpin(struct blockstore *bs, const struct bs_hash *h)
{
	struct pin **pp, *p;

	pthread_mutex_lock(&bs->pin_lock);
	pp = pin_find(bs, h);
	p = *pp;
	if (p && --p->count == 0) {
		*pp = p->next;
		free(p);
	}
	pthread_mutex_unlock(&bs->pin_lock);
}

/* ---- cache ---- */

static void lru_unlink(struct centry *e)
{
	e->lprev->lnext = e->lnext;
	e->lnext->lprev = e->lprev;
}

static void lru_push_head(struct blockstore *bs, struct centry *e)
{
	e->lnext = bs->lru.lnext;
	e->lprev = &bs->lru;
	bs->lru.lnext->lprev = e;
	bs->lru.lnext = e;
}

static struct centry **cache_find(struct blockstore *bs, const struct bs_hash *h)
{
	struct centry **pp = &bs->cache[hash_bucket(h, CACHE_BUCKETS)];

	while (*pp && memcmp((*pp)->h.b, h->b, BS_HASH_LEN) != 0)
		pp = &(*pp)->hnext;
	return pp;
}

static void centry_drop_locked(struct blockstore *bs, struct centry *e)
{
	struct centry **pp = cache_find(bs, &e->h);

	if (*pp == e)
		*pp = e->hnext;
	lru_unlink(e);
	bs->cache_bytes -= e->buf.len;
	free((void *)e->buf.data);
	free(e);
}

static void cache_evict_locked(struct blockstore *bs)
{
	struct centry *e = bs->lru.lprev;

	while (bs->cache_bytes > bs->opt.cache_bytes && e != &bs->lru) {
		struct centry *prev = e->lprev;

		if (e->refs == 0 && e->state == CE_READY)
			centry_drop_locked(bs, e);
		e = prev;
	}
}

/* Decompress frame z and check it against h with dctx (unless the backend
 * vouched for the bytes: intact); see bs_check_frame. */
static int check_frame(ZSTD_DCtx *dctx, const struct bs_hash *h, const void *z,
		       size_t zlen, size_t max, int intact, unsigned char **out,
		       size_t *outlen)
{
	char hex[BS_HEX_LEN + 1];
	unsigned long long clen;
	unsigned char *plain;
	struct bs_hash got;
	size_t n;

	bs_hash_hex(h, hex);
	clen = ZSTD_getFrameContentSize(z, zlen);
	if (clen == ZSTD_CONTENTSIZE_ERROR || clen == ZSTD_CONTENTSIZE_UNKNOWN ||
	    clen > max) {
		log_err("block %s is corrupt: not a zstd frame of at most %zu bytes",
			hex, max);
		return -EIO;
	}
	plain = malloc(clen ? clen : 1);
	if (!plain)
		return -ENOMEM;
	n = ZSTD_decompressDCtx(dctx, plain, clen, z, zlen);
	if (ZSTD_isError(n) || n != clen) {
		log_err("block %s is corrupt: %s", hex,
			ZSTD_isError(n) ? ZSTD_getErrorName(n) : "short frame");
		free(plain);
		return -EIO;
	}
	if (intact)
		got = *h;
	else
		bs_hash_of(plain, n, &got);
	if (memcmp(got.b, h->b, BS_HASH_LEN) != 0) {
		log_err("block %s is corrupt: its content does not match its hash "
			"(not served; restore it from a copy)", hex);
		free(plain);
		return -EIO;
	}
	if (out) {
		*out = plain;
		*outlen = n;
	} else {
		free(plain);
	}
	return 0;
}

int bs_check_frame(const struct bs_hash *h, const void *z, size_t zlen,
		   size_t max, unsigned char **plain, size_t *n)
{
	ZSTD_DCtx *d = ZSTD_createDCtx();
	int ret;

	if (!d)
		return -ENOMEM;
	ret = check_frame(d, h, z, zlen, max, 0, plain, n);
	ZSTD_freeDCtx(d);
	return ret;
}

/* Read, decompress and verify one block from the backend. */
static int load_block(struct blockstore *bs, const struct bs_hash *h,
		      unsigned char **out, size_t *outlen)
{
	char hex[BS_HEX_LEN + 1];
	void *z = NULL;
	size_t zlen = 0;
	struct zctx *zc = zctx_get(bs, 0);
	int ret;

	if (!zc)
		return -ENOMEM;
	*out = NULL;
	ret = bs->be.ops->get_checked ?
	      bs->be.ops->get_checked(bs->be.ctx, h, &z, &zlen, out, outlen) :
	      bs->be.ops->get(bs->be.ctx, h, &z, &zlen);
	if (ret < 0) {
		bs_hash_hex(h, hex);
		log_err("cannot read block %s from the %s store: %s", hex,
			bs->be.ops->name, strerror(-ret));
		return ret == -ENOENT ? -EIO : ret;
	}
	if (*out && *outlen <= bs->opt.block_size) {
		free(z);	/* checked by the backend as it fetched it */
		return 0;
	}
	free(*out);
	*out = NULL;
	ret = check_frame(zc->d, h, z, zlen, bs->opt.block_size, ret == 1, out,
			  outlen);
	free(z);
	return ret;
}

/*
 * Find or start loading h. Returns with a reference held on the entry, or
 * NULL and *err set. If *mine is set on return, the caller must load it.
 */
static struct centry *cache_ref(struct blockstore *bs, const struct bs_hash *h,
				int *mine)
{
	struct centry **pp = cache_find(bs, h), *e = *pp;

	*mine = 0;
	if (e) {
		e->refs++;
		lru_unlink(e);
		lru_push_head(bs, e);
		return e;
	}
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->h = *h;
	e->refs = 1;
	e->state = CE_LOADING;
	e->hnext = NULL;
	*pp = e;
	lru_push_head(bs, e);
	*mine = 1;
	return e;
}

static void cache_fill(struct blockstore *bs, struct centry *e)
{
	unsigned char *data = NULL;
	size_t len = 0;
	int ret = load_block(bs, &e->h, &data, &len);

	pthread_mutex_lock(&bs->cache_lock);
	if (ret == 0) {
		e->buf.data = data;
		e->buf.len = len;
		bs->cache_bytes += len;
	}
	e->err = ret;
	e->state = CE_READY;
	if (ret < 0) {
		/* unhash so that the next reader retries */
		struct centry **pp = cache_find(bs, &e->h);

		if (*pp == e)
			*pp = e->hnext;
		e->hnext = NULL;
	}
	pthread_cond_broadcast(&bs->cache_cond);
	pthread_mutex_unlock(&bs->cache_lock);
}

static void cache_unref_locked(struct blockstore *bs, struct centry *e)
{
	if (--e->refs > 0)
		return;
	if (e->err) {
		lru_unlink(e);
		free(e);
		return;
	}
	cache_evict_locked(bs);
}

int bs_get(struct blockstore *bs, const struct bs_hash *h, struct bs_buf **buf)
{
	struct centry *e;
	int mine, ret;

	pthread_mutex_lock(&bs->cache_lock);
	e = cache_ref(bs, h, &mine);
	if (!e) {
		pthread_mutex_unlock(&bs->cache_lock);
		return -ENOMEM;
	}
	if (mine) {
		bs->misses++;
		pthread_mutex_unlock(&bs->cache_lock);
		cache_fill(bs, e);
		pthread_mutex_lock(&bs->cache_lock);
	} else {
		bs->hits++;
		while (e->state == CE_LOADING)
			pthread_cond_wait(&bs->cache_cond, &bs->cache_lock);
	}
	ret = e->err;
	if (ret < 0)
		cache_unref_locked(bs, e);
	pthread_mutex_unlock(&bs->cache_lock);
	if (ret == 0)
		*buf = &e->buf;
	return ret;
}

void bs_put_buf(struct blockstore *bs, struct bs_buf *buf)
{
	struct centry *e = (struct centry *)buf;	/* buf is the first member */

	pthread_mutex_lock(&bs->cache_lock);
	cache_unref_locked(bs, e);
	pthread_mutex_unlock(&bs->cache_lock);
}

struct prefetch_job {
	struct blockstore *bs;
	struct centry *e;
};

static void prefetch_run(void *arg)
{
	struct prefetch_job *job = arg;
	struct blockstore *bs = job->bs;

	cache_fill(bs, job->e);
	pthread_mutex_lock(&bs->cache_lock);
	cache_unref_locked(bs, job->e);
	pthread_mutex_unlock(&bs->cache_lock);
	free(job);
}

void bs_prefetch(struct blockstore *bs, const struct bs_hash *h)
{
	struct prefetch_job *job;
	struct centry *e;
	int mine;

	if (!bs->prefetch_wq)
		return;
	pthread_mutex_lock(&bs->cache_lock);
	if (*cache_find(bs, h)) {
		pthread_mutex_unlock(&bs->cache_lock);
		return;
	}
	e = cache_ref(bs, h, &mine);
	pthread_mutex_unlock(&bs->cache_lock);
	if (!e)
		return;
	if (bs->be.ops->advise)
		bs->be.ops->advise(bs->be.ctx, h);	/* disk reads start now */
	job = malloc(sizeof(*job));
	if (job) {
		job->bs = bs;
		job->e = e;
	}
	if (!job || workq_push(bs->prefetch_wq, prefetch_run, job) < 0) {
		free(job);
		cache_fill(bs, e);	/* never leave a LOADING entry behind */
		pthread_mutex_lock(&bs->cache_lock);
		cache_unref_locked(bs, e);
		pthread_mutex_unlock(&bs->cache_lock);
	}
}

void bs_cache_give(struct blockstore *bs, const struct bs_hash *h, void *data,
		   size_t len, size_t cap)
{
	struct centry **pp, *e;

	if (bs->opt.cache_bytes < 4 * bs->opt.block_size || len == 0) {
		free(data);
		return;
	}
	if (2 * len < cap) {	/* do not pin a big buffer for a small block */
		void *small = malloc(len);

		if (small)
			memcpy(small, data, len);
		free(data);
		data = small;
		if (!data)
			return;
	}
	e = calloc(1, sizeof(*e));
	if (!e) {
		free(data);
		return;
	}
	pthread_mutex_lock(&bs->cache_lock);
	pp = cache_find(bs, h);
	if (*pp) {
		pthread_mutex_unlock(&bs->cache_lock);
		free(data);
		free(e);
		return;
	}
	e->h = *h;
	e->state = CE_READY;
	e->buf.data = data;
	e->buf.len = len;
	*pp = e;
	lru_push_head(bs, e);
	bs->cache_bytes += len;
	cache_evict_locked(bs);
	pthread_mutex_unlock(&bs->cache_lock);
}

/* ---- sealing, deleting, syncing ---- */

/*
 * Incompressible blocks (media, archives, encrypted or random bytes) are
 * stored as a zstd frame of raw blocks, built here, without running the
 * compressor over them: at level 3 zstd spent a fifth of a 1 GiB random
 * write's CPU finding no matches, then copied the bytes anyway. A block of
 * at least PROBE_MIN bytes is probed first: PROBE_SAMPLES samples of
 * PROBE_LEN bytes, spread over it, are compressed; if none shrinks by a
 * 32nd, the block is stored raw. A block whose redundancy lies only in
 * repeats farther apart than a sample (a random 64 KiB pattern written
 * over and over) is stored raw too: its size, never more.
 */
#define PROBE_MIN (64u << 10)
#define PROBE_SAMPLES 4
#define PROBE_LEN (4u << 10)
#define ZSTD_MAGIC 0xFD2FB528u
#define RAW_BLOCK_MAX (128u << 10)	/* a zstd block's largest content */

static int looks_incompressible(struct zctx *zc, const unsigned char *data,
				size_t len, int level)
{
	if (len < PROBE_MIN)
		return 0;
	for (int i = 0; i < PROBE_SAMPLES; i++) {
		size_t at = (len - PROBE_LEN) / (PROBE_SAMPLES - 1) * (size_t)i;
		size_t z = ZSTD_compressCCtx(zc->c, zc->out, zc->outcap, data + at,
					     PROBE_LEN, level);

		if (ZSTD_isError(z) || z < PROBE_LEN - PROBE_LEN / 32)
			return 0;
	}
	return 1;
}

static void put_le(unsigned char *p, uint32_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

/* Bytes a raw frame of len bytes takes (see raw_frame). */
static size_t raw_frame_len(size_t len)
{
	size_t blocks = len ? (len + RAW_BLOCK_MAX - 1) / RAW_BLOCK_MAX : 1;

	return 4 + 1 + 4 + 3 * blocks + len;
}

/*
 * A zstd frame (RFC 8878, section 3.1.1) holding data in raw blocks:
 * magic, a header descriptor saying "single segment, 4-byte content size,
 * no checksum, no dictionary", the content size, then blocks of at most
 * 128 KiB, each behind a 3-byte header (last-block bit, type 0 = raw,
 * size). dst holds raw_frame_len(len) bytes.
 */
static size_t raw_frame(unsigned char *dst, const unsigned char *data, size_t len)
{
	size_t n = 0, at = 0;

	put_le(dst, ZSTD_MAGIC, 4);
	dst[4] = 2u << 6 | 1u << 5;	/* FCS field 4 bytes, single segment */
	put_le(dst + 5, (uint32_t)len, 4);
	n = 9;
	do {
		size_t b = MIN(len - at, (size_t)RAW_BLOCK_MAX);
		int last = at + b == len;

		put_le(dst + n, (uint32_t)(b << 3) | (uint32_t)last, 3);
		memcpy(dst + n + 3, data + at, b);
		n += 3 + b;
		at += b;
	} while (at < len);
	return n;
}

int bs_seal(struct blockstore *bs, const void *data, size_t len, int level,
	    struct bs_hash *out, uint32_t *stored, int *created)
{
	struct zctx *zc;
	size_t zlen;
	uint64_t have = 0;
	int has, ret;

	if (len > bs->opt.block_size)
		return -EINVAL;
	bs_hash_of(data, len, out);
	*created = 0;
	pthread_mutex_lock(&bs->pin_lock);
	pin_locked(bs, out);
	pthread_mutex_unlock(&bs->pin_lock);
	has = bs->be.ops->has(bs->be.ctx, out, &have);
	if (has == 1) {
		*stored = (uint32_t)have;
		return 0;
	}
	zc = zctx_get(bs, 1);
	if (!zc) {
		ret = -ENOMEM;
		goto fail;
	}
	if (!level)
		level = bs->opt.zstd_level;
	if (raw_frame_len(len) <= zc->outcap &&
	    looks_incompressible(zc, data, len, level))
		zlen = raw_frame(zc->out, data, len);
	else
		zlen = ZSTD_compressCCtx(zc->c, zc->out, zc->outcap, data, len, level);
	if (ZSTD_isError(zlen)) {
		log_err("zstd: %s", ZSTD_getErrorName(zlen));
		ret = -EIO;
		goto fail;
	}
	ret = bs->be.ops->put(bs->be.ctx, out, zc->out, zlen);
	if (ret < 0)
		goto fail;
	*stored = (uint32_t)zlen;
	*created = 1;
	return 0;
fail:
	bs_unpin(bs, out);
	return ret;
}

int bs_delete_if(struct blockstore *bs, const struct bs_hash *h,
		 int (*unref)(void *arg, const struct bs_hash *h), void *arg)
{
	struct centry **pp;
	int ret = -EBUSY;

	pthread_mutex_lock(&bs->pin_lock);
	if (!*pin_find(bs, h) && unref(arg, h))
		ret = bs->be.ops->del(bs->be.ctx, h);
	pthread_mutex_unlock(&bs->pin_lock);
	if (ret == 0) {
		pthread_mutex_lock(&bs->cache_lock);
		pp = cache_find(bs, h);
		if (*pp && (*pp)->refs == 0 && (*pp)->state == CE_READY)
			centry_drop_locked(bs, *pp);
		pthread_mutex_unlock(&bs->cache_lock);
	}
	return ret;
}

int bs_locate(struct blockstore *bs, const struct bs_hash *h, char **path,
	      uint64_t *off, uint64_t *len)
{
	if (!bs->be.ops->locate)
		return -ENOENT;
	return bs->be.ops->locate(bs->be.ctx, h, path, off, len);
}

int bs_sync(struct blockstore *bs)
{
	return bs->be.ops->sync ? bs->be.ops->sync(bs->be.ctx) : 0;
}

struct gc_state {
	struct blockstore *bs;
	int (*unref)(void *arg, const struct bs_hash *h);
	void *arg;
	uint64_t removed;
};

static void gc_one(void *p, const struct bs_hash *h)
{
	struct gc_state *gs = p;

	if (bs_delete_if(gs->bs, h, gs->unref, gs->arg) == 0)
		gs->removed++;
}

int bs_scan(struct blockstore *bs, uint64_t before_ns,
	    void (*fn)(void *arg, const struct bs_hash *h), void *arg)
{
	if (!bs->be.ops->scan)
		return -EOPNOTSUPP;
	return bs->be.ops->scan(bs->be.ctx, before_ns, fn, arg);
}

int bs_gc(struct blockstore *bs, uint64_t before_ns,
	  int (*unref)(void *arg, const struct bs_hash *h), void *arg,
	  uint64_t *removed)
{
	struct gc_state gs = { bs, unref, arg, 0 };
	int ret = bs_scan(bs, before_ns, gc_one, &gs);

	*removed = gs.removed;
	return ret;
}

void bs_cache_stats(struct blockstore *bs, uint64_t *bytes, uint64_t *hits,
		    uint64_t *misses)
{
	pthread_mutex_lock(&bs->cache_lock);
	*bytes = bs->cache_bytes;
	*hits = bs->hits;
	*misses = bs->misses;
	pthread_mutex_unlock(&bs->cache_lock);
}

int bs_open(struct blockstore **out, struct bs_backend *be,
	    const struct bs_options *opt, char **errmsg)
{
	struct blockstore *bs = calloc(1, sizeof(*bs));

	if (!bs) {
		if (errmsg)
			*errmsg = strdup("out of memory");
		return -ENOMEM;
	}
	bs->be = *be;
	bs->opt = *opt;
	if (bs->opt.zstd_level == 0)
		bs->opt.zstd_level = 3;
	pthread_mutex_init(&bs->pin_lock, NULL);
	pthread_mutex_init(&bs->cache_lock, NULL);
	pthread_cond_init(&bs->cache_cond, NULL);
	bs->lru.lnext = bs->lru.lprev = &bs->lru;
	pthread_key_create(&bs->zkey, zctx_free);
	if (opt->prefetch_threads > 0)
		bs->prefetch_wq = workq_new("prefetch", opt->prefetch_threads);
	*out = bs;
	return 0;
}

void bs_close(struct blockstore *bs)
{
	struct zctx *z;

	if (!bs)
		return;
	workq_free(bs->prefetch_wq);
	while (bs->lru.lnext != &bs->lru) {
		struct centry *e = bs->lru.lnext;

		lru_unlink(e);
		free((void *)e->buf.data);
		free(e);
	}
	for (int i = 0; i < PIN_BUCKETS; i++) {
		while (bs->pins[i]) {
			struct pin *p = bs->pins[i];

			bs->pins[i] = p->next;
			free(p);
		}
	}
	z = pthread_getspecific(bs->zkey);
	if (z)
		zctx_free(z);
	pthread_key_delete(bs->zkey);
	bs->be.ops->free(bs->be.ctx);
	free(bs);
}
