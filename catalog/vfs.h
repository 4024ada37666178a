/* catalog/vfs.h — POSIX filesystem semantics over meta + blockstore. */
#ifndef LAKEFS_CATALOG_VFS_H
#define LAKEFS_CATALOG_VFS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>

#include "catalog/meta.h"
#include "sync/blockstore.h"

/*
 * Every function returns 0 (or a byte count) on success and -errno on
 * failure, and knows nothing of FUSE. Functions that hand an inode to the
 * kernel (lookup, create, mkdir, mknod, symlink, link) take one "lookup"
 * reference on it; vfs_forget() drops them. Functions may block on disk
 * I/O; none of them waits for the network.
 */

struct vfs;
struct vfs_file;	/* an open regular file */

struct vfs_options {
	const char *state_dir;
	uint32_t block_size;	/* for a new filesystem */
	size_t dirty_max;	/* bytes of unsealed data kept in memory */
	size_t cache_bytes;	/* plaintext block cache */
	int seal_threads;
	int zstd_level;
	uint64_t prefetch_bytes;	/* read-ahead depth (0: 8 blocks) */
	int prefetch_threads;	/* read-ahead workers (0: 3) */
	/* optional: stack a backend over the local store (the bucket); it
	 * takes *be over, also when it fails */
	int (*wrap_store)(void *arg, struct bs_backend *be, char **errmsg);
	void *wrap_arg;
	/* optional: journal every commit, stamped with journal_mark(wrap_arg) */
	uint64_t (*journal_mark)(void *arg);
};

struct vfs_ctx {		/* the caller */
	uid_t uid;
	gid_t gid;
	mode_t umask;		/* applied to new inodes (0: the kernel did) */
};

int vfs_open_fs(struct vfs **out, const struct vfs_options *opt, char **errmsg);
/* Seal and commit everything in memory (without waiting for the disk). */
void vfs_flush_all(struct vfs *v);
/* Seal and commit everything, then close. */
void vfs_close_fs(struct vfs *v);
struct meta *vfs_meta(struct vfs *v);
struct blockstore *vfs_blockstore(struct vfs *v);
uint32_t vfs_block_size(struct vfs *v);
void vfs_dirty_stats(struct vfs *v, uint64_t *dirty_bytes, uint64_t *pending_seals);
/* Called (no locks held) when lakefs itself changes attributes the kernel
 * may cache, such as atime after a read. */
void vfs_set_attr_notify(struct vfs *v, void (*fn)(void *arg, uint64_t ino),
			 void *arg);
/* Called (no locks held) when lakefs itself replaces or removes a name
 * the kernel may cache (vfs_publish). */
void vfs_set_entry_notify(struct vfs *v,
			  void (*fn)(void *arg, uint64_t dir, const char *name),
			  void *arg);
/* Tell the kernel that dir/name changed behind its back (lakefs's own
 * mkdir, unlink, rmdir): it drops a cached entry, also a negative one. */
void vfs_notify_entry(struct vfs *v, uint64_t dir, const char *name);
/* tell the kernel that ino's attributes changed (through the attr notify) */
void vfs_notify_attr(struct vfs *v, uint64_t ino);
/* One extra read-only entry listed in the root directory (.lakefs). */
void vfs_set_root_extra(struct vfs *v, const char *name, uint64_t ino);

int vfs_getattr(struct vfs *v, uint64_t ino, struct stat *st);
int vfs_lookup(struct vfs *v, uint64_t parent, const char *name, struct stat *st);
/* 1 when the kernel holds no more references to ino */
int vfs_forget(struct vfs *v, uint64_t ino, uint64_t nlookup);

#define VFS_SET_MODE	(1 << 0)
#define VFS_SET_UID	(1 << 1)
#define VFS_SET_GID	(1 << 2)
#define VFS_SET_SIZE	(1 << 3)
#define VFS_SET_ATIME	(1 << 4)
#define VFS_SET_MTIME	(1 << 5)
#define VFS_SET_ATIME_NOW (1 << 6)
#define VFS_SET_MTIME_NOW (1 << 7)
#define VFS_SET_CTIME	(1 << 8)
int vfs_setattr(struct vfs *v, uint64_t ino, const struct stat *in, int to_set,
		struct stat *out);

int vfs_mknod(struct vfs *v, const struct vfs_ctx *c, uint64_t parent,
	      const char *name, mode_t mode, dev_t rdev, struct stat *st);
int vfs_mkdir(struct vfs *v, const struct vfs_ctx *c, uint64_t parent,
	      const char *name, mode_t mode, struct stat *st);
int vfs_symlink(struct vfs *v, const struct vfs_ctx *c, uint64_t parent,
		const char *name, const char *target, struct stat *st);
int vfs_link(struct vfs *v, uint64_t ino, uint64_t parent, const char *name,
	     struct stat *st);
int vfs_unlink(struct vfs *v, uint64_t parent, const char *name);
int vfs_rmdir(struct vfs *v, uint64_t parent, const char *name);
#define VFS_RENAME_NOREPLACE 1
#define VFS_RENAME_EXCHANGE 2
int vfs_rename(struct vfs *v, uint64_t parent, const char *name,
	       uint64_t newparent, const char *newname, unsigned flags);
/* *target is malloc'ed. */
int vfs_readlink(struct vfs *v, uint64_t ino, char **target);

/* fn returns non-zero when it cannot take more; off is the next offset. */
typedef int (*vfs_dirent_fn)(void *arg, const char *name, uint64_t ino,
			     mode_t mode, uint64_t next_off);
int vfs_readdir(struct vfs *v, uint64_t ino, uint64_t off, vfs_dirent_fn fn,
		void *arg);

int vfs_setxattr(struct vfs *v, uint64_t ino, const char *name,
		 const void *val, size_t len, int flags);
/* size 0: return the length; otherwise copy into buf or -ERANGE. */
ssize_t vfs_getxattr(struct vfs *v, uint64_t ino, const char *name,
		     void *buf, size_t size);
ssize_t vfs_listxattr(struct vfs *v, uint64_t ino, char *buf, size_t size);
int vfs_removexattr(struct vfs *v, uint64_t ino, const char *name);
int vfs_statfs(struct vfs *v, struct statvfs *st);

/* Regular files. create = mknod + open, O_TRUNC is honoured by open. */
int vfs_create(struct vfs *v, const struct vfs_ctx *c, uint64_t parent,
	       const char *name, mode_t mode, int flags, struct stat *st,
	       struct vfs_file **f);
int vfs_open(struct vfs *v, uint64_t ino, int flags, struct vfs_file **f);
ssize_t vfs_read(struct vfs *v, struct vfs_file *f, void *buf, size_t size,
		 uint64_t off);
/*
 * The same read without copying: segments point into the block cache (or
 * a shared zero block, or a private copy of unsealed data) and stay valid
 * until vfs_read_release(). The segments add up to the returned length.
 * Never a short read before EOF: an error anywhere fails the whole read.
 */
struct vfs_seg {
	const void *p;
	size_t len;
	struct bs_buf *ref;
	void *owned;
};
ssize_t vfs_read_segs(struct vfs *v, struct vfs_file *f, size_t size,
		      uint64_t off, struct vfs_seg **segs, int *nseg);
void vfs_read_release(struct vfs *v, struct vfs_seg *segs, int nseg);
ssize_t vfs_write(struct vfs *v, struct vfs_file *f, const void *buf,
		  size_t size, uint64_t off);
int vfs_fsync(struct vfs *v, struct vfs_file *f, int datasync);
int vfs_fsyncdir(struct vfs *v);
#define VFS_FALLOC_KEEP_SIZE 1
#define VFS_FALLOC_PUNCH_HOLE 2
int vfs_fallocate(struct vfs *v, struct vfs_file *f, int mode, uint64_t off,
		  uint64_t len);
/* The last close of f: commit (without waiting for the disk) and free f. */
void vfs_release(struct vfs *v, struct vfs_file *f);

/*
 * ---- for the lake engine: versions built aside, published at once ----
 * vfs_tmpfile makes an unnamed regular file (an orphan: a crash before it
 * is linked frees it at the next mount), open read-write; its blocks are
 * compressed at zstd level 1. vfs_clone gives
 * an empty open file the committed bytes of src by sharing its blocks (no
 * data is copied). vfs_publish links, replaces and removes names and
 * writes catalog records in one synced metadata transaction: a reader sees
 * all of it or none of it, and a file open on a replaced name keeps its
 * bytes until closed.
 */
int vfs_tmpfile(struct vfs *v, const struct vfs_ctx *c, mode_t mode,
		struct vfs_file **f, uint64_t *ino);
int vfs_clone(struct vfs *v, struct vfs_file *f, uint64_t src);
uint64_t vfs_file_ino(const struct vfs_file *f);
/* the open(2) flags f was opened with */
int vfs_file_flags(const struct vfs_file *f);
/* 1 while some open file (any handle) refers to ino; 2 when it is closed
 * but its data is not all committed yet (seals in flight); else 0. */
int vfs_busy(struct vfs *v, uint64_t ino);

struct vfs_link_req {
	uint64_t dir;
	const char *name;
	uint64_t ino;		/* an unnamed file (vfs_tmpfile); 0: remove name */
};
struct vfs_kv {
	const char *name;
	const void *val;	/* NULL: delete the record */
	size_t len;
};
int vfs_publish(struct vfs *v, const struct vfs_link_req *l, size_t nl,
		const struct vfs_kv *kv, size_t nkv);

#endif
