/* sync/blockstore.h — content-addressed, compressed, verified blocks. */
#ifndef LAKEFS_SYNC_BLOCKSTORE_H
#define LAKEFS_SYNC_BLOCKSTORE_H

#include <stddef.h>
#include <stdint.h>

#define BS_HASH_LEN 32
#define BS_HEX_LEN (2 * BS_HASH_LEN)

struct bs_hash {
	unsigned char b[BS_HASH_LEN];
};

/*
 * A backend stores opaque named objects: the compressed bytes of a block
 * under its hash. The local directory store is one; sync/remote.c stacks
 * the bucket over it behind the same four calls (plus an optional sync,
 * read-ahead hint and scan). Each returns
 * 0 or -errno; get returns a malloc'ed buffer the caller frees.
 */
struct bs_backend_ops {
	const char *name;
	int (*put)(void *ctx, const struct bs_hash *h, const void *data, size_t len);
	int (*get)(void *ctx, const struct bs_hash *h, void **data, size_t *len);
	/* 1 (and *size, if not NULL, the stored bytes), 0 or -errno */
	int (*has)(void *ctx, const struct bs_hash *h, uint64_t *size);
	int (*del)(void *ctx, const struct bs_hash *h);
	int (*sync)(void *ctx);		/* make every put so far durable */
	/* optional: start fetching h in the background (a read-ahead hint) */
	void (*advise)(void *ctx, const struct bs_hash *h);
	/* optional: get, and what the backend knows of the bytes: when it
	 * has checked them against their name (a fetch from the bucket), also
	 * their plaintext in *plain (NULL may be passed for plain and plen:
	 * then it is not asked for), which spares the store a second
	 * decompression and hash; 1 when they are exactly the bytes a put
	 * gave it (checked against a checksum recorded at the put), which
	 * spares the hash; 0 when it vouches for nothing */
	int (*get_checked)(void *ctx, const struct bs_hash *h, void **data,
			   size_t *len, unsigned char **plain, size_t *plen);
	/* call fn for every stored block older than before_ns (wall clock) */
	int (*scan)(void *ctx, uint64_t before_ns,
		    void (*fn)(void *arg, const struct bs_hash *h), void *arg);
	/* optional: the file and byte range that hold h's stored bytes, for
	 * tests and tools that inspect or damage the store; *path malloc'ed */
	int (*locate)(void *ctx, const struct bs_hash *h, char **path,
		      uint64_t *off, uint64_t *len);
	void (*free)(void *ctx);
};

struct bs_backend {
	const struct bs_backend_ops *ops;
	void *ctx;
};

/* The local directory backend: objects appended to pack files under
 * DIR/packs, indexed in a LevelDB at DIR/small, which also holds the
 * objects of at most small_max bytes (0: every object in a pack). */
int bs_local_open(struct bs_backend *be, const char *dir, size_t small_max,
		  char **errmsg);

/* A block buffer held by the plaintext cache; read-only while referenced. */
struct bs_buf {
	const unsigned char *data;
	size_t len;
};

struct blockstore;

struct bs_options {
	size_t block_size;	/* largest block accepted */
	size_t cache_bytes;	/* plaintext cache capacity */
	int zstd_level;
	int prefetch_threads;
};

/* Takes ownership of *be. 0 or -errno with *errmsg (malloc'ed). */
int bs_open(struct blockstore **out, struct bs_backend *be,
	    const struct bs_options *opt, char **errmsg);
void bs_close(struct blockstore *bs);

void bs_hash_of(const void *data, size_t len, struct bs_hash *out);
void bs_hash_hex(const struct bs_hash *h, char out[BS_HEX_LEN + 1]);

/*
 * Seal len bytes: hash, and if the block is not stored yet, compress and
 * put it. The hash is pinned on return: bs_delete_if() will not remove it
 * until bs_unpin() — callers unpin once a reference to it is committed.
 * *stored gets the compressed size; *created is 1 if this call stored it.
 * level: the zstd level when it is compressed here (0: the store's).
 * May block on disk I/O; call from worker threads.
 */
int bs_seal(struct blockstore *bs, const void *data, size_t len, int level,
	    struct bs_hash *out, uint32_t *stored, int *created);
void bs_pin(struct blockstore *bs, const struct bs_hash *h);
void bs_unpin(struct blockstore *bs, const struct bs_hash *h);

/*
 * Get a block's plaintext through the cache; verifies the hash on every
 * load from the backend (-EIO and a log line on mismatch). On success
 * *buf is a reference the caller must drop with bs_put_buf().
 */
int bs_get(struct blockstore *bs, const struct bs_hash *h, struct bs_buf **buf);
void bs_put_buf(struct blockstore *bs, struct bs_buf *buf);
/* Hand the plaintext of a just-sealed block to the cache, which takes
 * ownership of data (malloc'ed, cap bytes allocated, len used). */
void bs_cache_give(struct blockstore *bs, const struct bs_hash *h, void *data,
		   size_t len, size_t cap);
/* Start loading h into the cache in the background (read-ahead). */
void bs_prefetch(struct blockstore *bs, const struct bs_hash *h);

/*
 * Delete h unless it is pinned or unref(arg, h) says it is referenced
 * again; both checks and the delete happen under the store's pin lock.
 * 0, -EBUSY (kept) or -errno.
 */
int bs_delete_if(struct blockstore *bs, const struct bs_hash *h,
		 int (*unref)(void *arg, const struct bs_hash *h), void *arg);

/*
 * Check a stored frame z against its name h: a zstd frame of at most max
 * plaintext bytes that hashes to h. 0 (and the plaintext in *plain if not
 * NULL, malloc'ed) or -EIO with a log line naming the block.
 */
int bs_check_frame(const struct bs_hash *h, const void *z, size_t zlen,
		   size_t max, unsigned char **plain, size_t *n);

/* Where the backend keeps h's stored bytes (see bs_backend_ops.locate):
 * 0, -ENOENT (absent, or not in a file of its own range) or -errno. */
int bs_locate(struct blockstore *bs, const struct bs_hash *h, char **path,
	      uint64_t *off, uint64_t *len);

/* Make every block sealed so far durable. */
int bs_sync(struct blockstore *bs);

/* Call fn for every stored block put before before_ns (wall clock). */
int bs_scan(struct blockstore *bs, uint64_t before_ns,
	    void (*fn)(void *arg, const struct bs_hash *h), void *arg);

/* Collect blocks older than before_ns that unref() reports unreferenced. */
int bs_gc(struct blockstore *bs, uint64_t before_ns,
	  int (*unref)(void *arg, const struct bs_hash *h), void *arg,
	  uint64_t *removed);

/* Cache figures for status. */
void bs_cache_stats(struct blockstore *bs, uint64_t *bytes, uint64_t *hits,
		    uint64_t *misses);

#endif
