/* catalog/vfs_int.h — state shared by catalog/inode.c and catalog/ns.c. */
#ifndef LAKEFS_CATALOG_VFS_INT_H
#define LAKEFS_CATALOG_VFS_INT_H

#include <pthread.h>

#include "catalog/vfs.h"
#include "sync/workq.h"

enum dblock_state { DB_DIRTY, DB_SEALING, DB_LOADING };

/* One block of a file being written, held in memory until sealed. */
struct dblock {
	struct dblock *next;
	uint64_t idx;
	unsigned char *buf;		/* block_size bytes */
	size_t hi;			/* bytes at and past hi read as zero
					 * (in memory they are garbage) */
	int state;
};

/* A sealed block not yet committed to the metadata. */
struct pending {
	uint64_t idx;
	struct bs_hash h;
	uint32_t raw, stored;		/* raw 0: a hole */
};

/*
 * An inode in memory. Lock order: inode->lock, then meta_lock(), then
 * vfs->itable_lock; never the other way round.
 */
struct inode {
	struct inode *hnext;		/* itable chain; itable_lock */
	uint64_t ino;
	uint64_t nlookup;		/* kernel references; itable_lock */
	unsigned opens;			/* open files; itable_lock */
	unsigned pins;			/* transient users; itable_lock */

	struct meta_inode md;		/* attributes; meta_lock */
	uint64_t committed_size;	/* size in the metadata; meta_lock */

	pthread_mutex_t lock;		/* data: the fields below */
	pthread_cond_t cond;
	struct dblock *dirty;
	unsigned ndirty;
	unsigned sealing;		/* seal jobs in flight */
	unsigned loading;		/* dirty blocks being filled */
	struct pending *pend;
	size_t npend, cappend;
	int zlevel;			/* zstd level of its blocks (0: the store's) */
	int err;			/* sticky async error, reported once */
	int meta_dirty;			/* md changed without a commit */
	int commit_wanted;		/* commit when the last seal is done */
	uint64_t last_read_idx;
};

struct vfs {
	struct vfs_options opt;
	char *state_dir;
	struct meta *meta;
	struct blockstore *bs;
	struct workq *seal_wq;
	uint32_t bsize;

	pthread_mutex_t itable_lock;
	struct inode **itable;
	size_t nbuckets;

	pthread_mutex_t dirty_lock;	/* the dirty-memory budget */
	pthread_cond_t dirty_cond;
	size_t dirty_bytes;
	uint64_t pending_seals;

	pthread_t gc_thread;		/* start-up garbage collection */
	int gc_started;
	uint64_t gc_before_ns;

	pthread_mutex_t defer_lock;	/* freed blocks awaiting a synced commit */
	struct bs_hash *deferred;
	size_t ndeferred, capdeferred;

	pthread_mutex_t space_lock;	/* cached free space of the state fs */
	uint64_t space_free, space_checked_ns, reserve;

	unsigned char *zeros;		/* block_size zero bytes, read-only */
	void (*attr_changed)(void *arg, uint64_t ino);	/* set before use */
	void *attr_changed_arg;
	void (*entry_changed)(void *arg, uint64_t dir, const char *name);
	void *entry_changed_arg;
	const char *root_extra;
	uint64_t root_extra_ino;
};

struct vfs_file {
	struct inode *in;
	int flags;
};

/* inode.c */
struct inode *inode_get(struct vfs *v, uint64_t ino, int *err);
/* The same for an inode just committed by the caller: no metadata read. */
struct inode *inode_get_new(struct vfs *v, const struct meta_inode *md, int *err);
void inode_put(struct vfs *v, struct inode *in);
void inode_ref_lookup(struct vfs *v, struct inode *in);
void inode_fill_stat(struct vfs *v, const struct meta_inode *md, struct stat *st);
int inode_commit_locked(struct vfs *v, struct inode *in, int sync);
int inode_truncate_locked(struct vfs *v, struct inode *in, uint64_t size);
int inode_commit_md_locked(struct vfs *v, struct inode *in);
/* the metadata view of md: the committed size, not the live one */
void inode_md_for_commit(const struct inode *in, struct meta_inode *out);

#endif
