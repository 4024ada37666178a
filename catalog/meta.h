/* catalog/meta.h — the metadata store: LevelDB keys for the filesystem. */
#ifndef LAKEFS_CATALOG_META_H
#define LAKEFS_CATALOG_META_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "sync/blockstore.h"

#define META_ROOT_INO 1ull
#define META_FIRST_INO 16ull	/* 2..15 are reserved for virtual files */
#define META_NAME_MAX 255

/* The persistent part of an inode. */
struct meta_inode {
	uint64_t ino;
	uint32_t mode, uid, gid, nlink;
	uint64_t size;
	uint64_t rdev;
	struct timespec atime, mtime, ctime;
	uint64_t parent;	/* directories: the parent directory */
	uint64_t next_cookie;	/* directories: next readdir cookie */
};

/* Filesystem-wide figures, kept exact by every commit. */
struct meta_counters {
	uint64_t files, dirs, symlinks, others;
	uint64_t blocks;	/* distinct blocks stored */
	uint64_t block_bytes;	/* their plaintext bytes */
	uint64_t stored_bytes;	/* their compressed bytes */
	uint64_t ref_bytes;	/* plaintext bytes counted once per reference */
	uint64_t logical_bytes;	/* sum of regular file sizes */
};

struct meta_super {
	uint32_t format;
	uint32_t block_size;
	uint64_t created_ns;
	uint64_t next_ino;
	unsigned char fsid[16];
};

struct meta;

/*
 * Open (creating on first use) the metadata of the state directory DIR:
 * takes DIR/lock (a second opener gets -EBUSY and a message naming the
 * holder's pid), opens DIR/meta with LevelDB, and reads or writes the
 * superblock. block_size is used only when the filesystem is created.
 */
int meta_open(struct meta **out, const char *dir, uint32_t block_size,
	      char **errmsg);
void meta_close(struct meta *m);
const struct meta_super *meta_super(struct meta *m);
void meta_counters(struct meta *m, struct meta_counters *out);

/*
 * Every change is a transaction: one LevelDB WriteBatch, applied at
 * commit, atomically. The store-wide commit lock serializes transactions
 * (and the read-modify-write of reference counts inside them); callers take
 * it with meta_lock() around begin..commit.
 */
void meta_lock(struct meta *m);
void meta_unlock(struct meta *m);

struct meta_txn;
/* Block hash whose last reference a transaction dropped. */
struct meta_freed {
	struct bs_hash *h;
	size_t n, cap;
};

struct meta_txn *meta_txn_begin(struct meta *m);
uint64_t meta_txn_alloc_ino(struct meta_txn *t);
void meta_txn_put_inode(struct meta_txn *t, const struct meta_inode *in);
void meta_txn_del_inode(struct meta_txn *t, uint64_t ino);
void meta_txn_count(struct meta_txn *t, uint32_t mode, int delta);
void meta_txn_logical(struct meta_txn *t, uint64_t old_size, uint64_t new_size);
void meta_txn_put_dirent(struct meta_txn *t, uint64_t parent, const char *name,
			 uint64_t ino, uint32_t mode, uint64_t cookie);
void meta_txn_del_dirent(struct meta_txn *t, uint64_t parent, const char *name,
			 uint64_t cookie);
void meta_txn_put_symlink(struct meta_txn *t, uint64_t ino, const char *target);
void meta_txn_put_xattr(struct meta_txn *t, uint64_t ino, const char *name,
			const void *val, size_t len);
void meta_txn_del_xattr(struct meta_txn *t, uint64_t ino, const char *name);
void meta_txn_orphan(struct meta_txn *t, uint64_t ino, int on);
/* Catalog records: opaque values under path-like names (< 1 KiB). */
void meta_txn_put_kv(struct meta_txn *t, const char *name, const void *val,
		     size_t len);
void meta_txn_del_kv(struct meta_txn *t, const char *name);
/* Set (h != NULL) or clear block idx of ino, adjusting reference counts.
 * old is the hash currently there (NULL for a hole). raw/stored describe
 * h when it is new to the store (stored == 0: already known). */
int meta_txn_set_block(struct meta_txn *t, uint64_t ino, uint64_t idx,
		       const struct bs_hash *old, const struct bs_hash *h,
		       uint32_t raw, uint32_t stored);
/* Apply; sync makes it durable before returning. Blocks whose count fell
 * to zero are appended to *freed (may be NULL). Frees t in every case. */
int meta_txn_commit(struct meta_txn *t, int sync, struct meta_freed *freed);
void meta_txn_abort(struct meta_txn *t);
void meta_freed_release(struct meta_freed *f);

/* Make every commit so far durable (one synced LevelDB write). */
int meta_sync(struct meta *m);

/* ---- reads: no lock needed; they see the last committed state ---- */
int meta_get_inode(struct meta *m, uint64_t ino, struct meta_inode *out);
int meta_lookup(struct meta *m, uint64_t parent, const char *name,
		uint64_t *ino, uint32_t *mode, uint64_t *cookie);
int meta_dir_is_empty(struct meta *m, uint64_t dir);	/* 1, 0, -errno */
int meta_get_symlink(struct meta *m, uint64_t ino, char **target);
int meta_get_block(struct meta *m, uint64_t ino, uint64_t idx, struct bs_hash *h);
int meta_get_xattr(struct meta *m, uint64_t ino, const char *name,
		   void **val, size_t *len);
/* Names NUL-separated, as listxattr(2) returns them; malloc'ed. */
int meta_list_xattr(struct meta *m, uint64_t ino, char **names, size_t *len);
/* *val malloc'ed and NUL-terminated (not counted in *len); -ENOENT. */
int meta_get_kv(struct meta *m, const char *name, char **val, size_t *len);
/* Every record whose name starts with prefix, in name order; fn returns
 * non-zero to stop (and that is returned). */
int meta_scan_kv(struct meta *m, const char *prefix,
		 int (*fn)(void *arg, const char *name, const char *val, size_t len),
		 void *arg);
/* Reference count of a block (0 if unknown). */
uint64_t meta_block_refs(struct meta *m, const struct bs_hash *h);
/* Every referenced block, in hash order; fn returns non-zero to stop. */
int meta_refs(struct meta *m, int (*fn)(void *arg, const struct bs_hash *h,
					 uint64_t count, uint32_t raw,
					 uint32_t stored), void *arg);
/* 1 if no block key references h (for bs_delete_if/bs_gc). */
int meta_block_unref(void *m, const struct bs_hash *h);

/* Iterate a directory from cookie `from` on; fn returns non-zero to stop. */
typedef int (*meta_dirent_fn)(void *arg, const char *name, uint64_t ino,
			      uint32_t mode, uint64_t cookie);
int meta_readdir(struct meta *m, uint64_t dir, uint64_t from,
		 meta_dirent_fn fn, void *arg);
/* Iterate the blocks of ino with index >= from. */
typedef int (*meta_block_fn)(void *arg, uint64_t idx, const struct bs_hash *h);
int meta_blocks(struct meta *m, uint64_t ino, uint64_t from,
		meta_block_fn fn, void *arg);
/* Iterate xattr names of ino (used to delete them all). */
int meta_orphans(struct meta *m, int (*fn)(void *arg, uint64_t ino), void *arg);

/*
 * ---- the journal (catalog/journal.c ships it to the bucket) ----
 * Once enabled, every commit also writes a record of its changes (see
 * meta.c), stamped with mark(arg) taken at commit time.
 */
void meta_journal_enable(struct meta *m, uint64_t (*mark)(void *arg), void *arg);
uint64_t meta_journal_last(struct meta *m);
/* Records with seq >= from, in order; fn returns non-zero to stop. */
int meta_journal_scan(struct meta *m, uint64_t from,
		      int (*fn)(void *arg, uint64_t seq, const void *rec, size_t len),
		      void *arg);
/* Delete the records up to and including seq upto. */
int meta_journal_trim(struct meta *m, uint64_t upto);
/* Drop every record and go on numbering after seq (a new lineage). */
int meta_journal_skip(struct meta *m, uint64_t seq);
/* 1 for keys that describe this state's shipping, not the filesystem. */
int meta_key_is_local(const void *k, size_t kn);
/*
 * A consistent copy of every filesystem key, as of the last record *seq;
 * *mark is the upload mark at that point. fn returns non-zero to stop.
 */
int meta_snapshot(struct meta *m,
		  int (*fn)(void *arg, const void *k, size_t kn, const void *v, size_t vn),
		  void *arg, uint64_t *seq, uint64_t *mark);

#endif
