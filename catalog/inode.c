/*
 * catalog/inode.c — inodes in memory and the file data path.
 *
 * A file's bytes are cut into fixed blocks (block_size, set at creation).
 * Block i of inode n is the key "B n i" in the metadata, naming a block of
 * the store by its hash; a missing key is a hole. Blocks are stored with
 * trailing zeros trimmed, so the tail of the last block and sparse regions
 * cost nothing.
 *
 * Write path. write() copies into an in-memory dirty block (reading the old
 * block first when the write covers only part of it) and returns; a block
 * that becomes complete is handed to the seal workers, which hash, compress
 * and store it off the FUSE thread. At a release, dirty blocks of at most
 * SEAL_INLINE_MAX bytes are sealed on the releasing thread instead: the
 * kernel does not wait for a release, so no writer waits for that work, and
 * hashing and storing a small block costs microseconds where waking a
 * worker on the other CPU costs tens on a virtual machine (cp -r of 2,000
 * files of 4 KiB: one wake-up per file). A sealed block becomes a "pending"
 * entry of its inode. Pending entries, the size and the times reach the
 * metadata together, in one transaction, at a commit point: the last close
 * of an open file (release), fsync, truncate, and every 256 sealed blocks
 * of a long writer.
 * So after a crash a file not fsynced reads as it was at one commit point:
 * its old content or its new content, never a torn mix of blocks.
 *
 * fsync = seal everything, wait, bs_sync() (the block store's packs and
 * index, see sync/local.c), then commit with a synced LevelDB write: blocks
 * are durable before the metadata that names them.
 *
 * Invariants
 *  - Bytes of a file past its size are zero in every dirty block and every
 *    stored block (truncate zeroes the tail of the block it cuts).
 *  - md.size changes only with both inode->lock and meta_lock held, so it
 *    may be read under either. committed_size is what the metadata holds.
 *  - A hash read from the metadata or from a pending entry is pinned in the
 *    block store while its bytes are being read, so a concurrent commit
 *    that drops the last reference cannot delete it under the reader.
 *  - Dirty memory is bounded by dirty_max: a writer that needs a new dirty
 *    block waits (without its inode lock) until sealing frees budget, and
 *    first seals its own and then other inodes' dirty blocks.
 *
 * Lifetime. An inode stays in the table while the kernel holds lookups, a
 * file is open or an operation pins it. When all three drop to zero it is
 * evicted, and if its link count is zero it is destroyed: its blocks are
 * released and its keys deleted in one transaction. An inode whose link
 * count reaches zero while referenced carries an orphan key, so a crash
 * before the destroy is finished at the next mount.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "catalog/vfs_int.h"
#include "util/log.h"
#include "util/util.h"

#define PENDING_COMMIT 256	/* sealed blocks that force a commit */
#define SEAL_INLINE_MAX (64 << 10)	/* sealed by a release itself */
#define PREFETCH_BLOCKS 8
#define SMALL_OBJECT_MAX (32 << 10)	/* stored bytes kept in LevelDB */

/* ---- the inode table ---- */

static size_t ibucket(struct vfs *v, uint64_t ino)
{
	return (size_t)((ino * 0x9E3779B97F4A7C15ull) >> 20) % v->nbuckets;
}

static struct inode *itable_find(struct vfs *v, uint64_t ino)
{
	struct inode *in = v->itable[ibucket(v, ino)];

	while (in && in->ino != ino)
		in = in->hnext;
	return in;
}

static void itable_remove(struct vfs *v, struct inode *in)
{
	struct inode **pp = &v->itable[ibucket(v, in->ino)];

	while (*pp && *pp != in)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = in->hnext;
}

static void inode_free(struct inode *in)
{
	pthread_mutex_destroy(&in->lock);
	pthread_cond_destroy(&in->cond);
	free(in->pend);
	free(in);
}

/* Find ino in the table, or add it with md (read from the metadata when
 * md is NULL). Returns it pinned. */
static struct inode *inode_lookup_or_add(struct vfs *v, uint64_t ino,
					 const struct meta_inode *md, int *err)
{
	struct inode *in, *other;
	int ret;

	pthread_mutex_lock(&v->itable_lock);
	in = itable_find(v, ino);
	if (in) {
		in->pins++;
		pthread_mutex_unlock(&v->itable_lock);
		return in;
	}
	pthread_mutex_unlock(&v->itable_lock);

	in = calloc(1, sizeof(*in));
	if (!in) {
		*err = -ENOMEM;
		return NULL;
	}
	if (md) {
		in->md = *md;
	} else {
		ret = meta_get_inode(v->meta, ino, &in->md);
		if (ret < 0) {
			free(in);
			*err = ret;
			return NULL;
		}
	}
	in->ino = ino;
	in->committed_size = in->md.size;
	in->last_read_idx = UINT64_MAX;
	pthread_mutex_init(&in->lock, NULL);
	pthread_cond_init(&in->cond, NULL);

	pthread_mutex_lock(&v->itable_lock);
	other = itable_find(v, ino);
	if (other) {
		other->pins++;
		pthread_mutex_unlock(&v->itable_lock);
		inode_free(in);
		return other;
	}
	in->pins = 1;
	in->hnext = v->itable[ibucket(v, ino)];
	v->itable[ibucket(v, ino)] = in;
	pthread_mutex_unlock(&v->itable_lock);
	return in;
}

struct inode *inode_get(struct vfs *v, uint64_t ino, int *err)
{
	return inode_lookup_or_add(v, ino, NULL, err);
}

struct inode *inode_get_new(struct vfs *v, const struct meta_inode *md, int *err)
{
	return inode_lookup_or_add(v, md->ino, md, err);
}

void inode_ref_lookup(struct vfs *v, struct inode *in)
{
	pthread_mutex_lock(&v->itable_lock);
	in->nlookup++;
	pthread_mutex_unlock(&v->itable_lock);
}

static void release_pending(struct vfs *v, struct inode *in)
{
	for (size_t i = 0; i < in->npend; i++) {
		if (in->pend[i].raw == 0)
			continue;
		bs_unpin(v->bs, &in->pend[i].h);
		bs_delete_if(v->bs, &in->pend[i].h, meta_block_unref, v->meta);
	}
	in->npend = 0;
}

static void budget_release(struct vfs *v, size_t n)
{
	pthread_mutex_lock(&v->dirty_lock);
	v->dirty_bytes -= n;
	pthread_cond_broadcast(&v->dirty_cond);
	pthread_mutex_unlock(&v->dirty_lock);
}

/*
 * Blocks whose last reference a commit dropped. They are deleted only once
 * that commit is durable: deleting a block before the metadata that stops
 * naming it reaches the disk would, after a power failure, leave the old
 * (perhaps fsynced) metadata pointing at nothing. So a synced commit
 * deletes at once (with everything deferred before it); other commits
 * defer, and a long list is flushed with one synced metadata write.
 */
#define DEFER_MAX 4096

static void delete_blocks(struct vfs *v, struct bs_hash *h, size_t n)
{
	for (size_t i = 0; i < n; i++)
		bs_delete_if(v->bs, &h[i], meta_block_unref, v->meta);
}

struct delete_job {
	struct vfs *v;
	struct bs_hash *h;
	size_t n;
};

static void delete_run(void *arg)
{
	struct delete_job *job = arg;

	delete_blocks(job->v, job->h, job->n);
	free(job->h);
	free(job);
}

/*
 * Delete every deferred block (and extra, n of them, whose array is
 * taken); call only after a synced metadata write. The unlinks run on a
 * worker, not on the FUSE thread whose fsync made them possible.
 */
static void flush_deferred_with(struct vfs *v, struct bs_hash *extra, size_t n)
{
	struct delete_job *job;
	struct bs_hash *h;
	size_t total;

	pthread_mutex_lock(&v->defer_lock);
	total = v->ndeferred + n;
	h = v->deferred;
	if (n > 0) {
		struct bs_hash *nh = realloc(h, (total ? total : 1) * sizeof(*nh));

		if (nh) {
			memcpy(nh + v->ndeferred, extra, n * sizeof(*nh));
			h = nh;
		} else {
			total = v->ndeferred;	/* extra: litter for the next gc */
		}
	}
	v->deferred = NULL;
	v->ndeferred = v->capdeferred = 0;
	pthread_mutex_unlock(&v->defer_lock);
	free(extra);
	if (total == 0) {
		free(h);
		return;
	}
	job = malloc(sizeof(*job));
	if (job) {
		job->v = v;
		job->h = h;
		job->n = total;
	}
	if (!job || !v->seal_wq || workq_push(v->seal_wq, delete_run, job) < 0) {
		delete_blocks(v, h, total);
		free(h);
		free(job);
	}
}

static void flush_deferred(struct vfs *v)
{
	flush_deferred_with(v, NULL, 0);
}

static void free_freed(struct vfs *v, struct meta_freed *fr, int synced)
{
	int full = 0;

	if (fr->n == 0 && !synced)
		return;
	if (synced) {
		flush_deferred_with(v, fr->h, fr->n);	/* takes fr->h */
		fr->h = NULL;
		meta_freed_release(fr);
		return;
	}
	pthread_mutex_lock(&v->defer_lock);
	for (size_t i = 0; i < fr->n; i++) {
		if (v->ndeferred == v->capdeferred) {
			size_t cap = v->capdeferred ? 2 * v->capdeferred : 256;
			struct bs_hash *nh = realloc(v->deferred, cap * sizeof(*nh));

			if (!nh)
				break;	/* the block is litter until the next gc */
			v->deferred = nh;
			v->capdeferred = cap;
		}
		v->deferred[v->ndeferred++] = fr->h[i];
	}
	full = v->ndeferred >= DEFER_MAX;
	pthread_mutex_unlock(&v->defer_lock);
	meta_freed_release(fr);
	if (full && meta_sync(v->meta) == 0)
		flush_deferred(v);
}

struct blocklist {
	struct bs_hash *h;
	uint64_t *idx;
	size_t n, cap;
};

static int collect_block(void *arg, uint64_t idx, const struct bs_hash *h)
{
	struct blocklist *bl = arg;

	if (bl->n == bl->cap) {
		size_t cap = bl->cap ? 2 * bl->cap : 64;
		struct bs_hash *nh = realloc(bl->h, cap * sizeof(*nh));
		uint64_t *ni;

		if (!nh)
			return -ENOMEM;
		bl->h = nh;
		ni = realloc(bl->idx, cap * sizeof(*ni));
		if (!ni)
			return -ENOMEM;
		bl->idx = ni;
		bl->cap = cap;
	}
	bl->h[bl->n] = *h;
	bl->idx[bl->n++] = idx;
	return 0;
}

/* Drop all blocks of ino from index `from` on, inside t. */
static int txn_drop_blocks(struct vfs *v, struct meta_txn *t, uint64_t ino,
			   uint64_t from)
{
	struct blocklist bl = { 0 };
	int ret = meta_blocks(v->meta, ino, from, collect_block, &bl);

	for (size_t i = 0; ret == 0 && i < bl.n; i++)
		ret = meta_txn_set_block(t, ino, bl.idx[i], &bl.h[i], NULL, 0, 0);
	free(bl.h);
	free(bl.idx);
	return ret;
}

/* Delete an unlinked inode for good. No locks held; nobody else has it. */
static void inode_destroy(struct vfs *v, struct inode *in)
{
	struct meta_freed freed = { 0 };
	struct meta_txn *t;
	char *names = NULL;
	size_t nlen = 0;
	int ret;

	while (in->dirty) {
		struct dblock *db = in->dirty;

		in->dirty = db->next;
		free(db->buf);
		free(db);
		budget_release(v, v->bsize);
	}
	release_pending(v, in);
	meta_lock(v->meta);
	t = meta_txn_begin(v->meta);
	ret = txn_drop_blocks(v, t, in->ino, 0);
	if (ret == 0 && meta_list_xattr(v->meta, in->ino, &names, &nlen) == 0) {
		for (size_t off = 0; off < nlen; off += strlen(names + off) + 1)
			meta_txn_del_xattr(t, in->ino, names + off);
		free(names);
	}
	if ((in->md.mode & S_IFMT) == S_IFREG)
		meta_txn_logical(t, in->committed_size, 0);
	meta_txn_del_inode(t, in->ino);
	meta_txn_orphan(t, in->ino, 0);
	if (ret == 0)
		ret = meta_txn_commit(t, 0, &freed);
	else
		meta_txn_abort(t);
	meta_unlock(v->meta);
	if (ret < 0)
		log_err("inode %llu: cannot release its blocks (%s); it stays an "
			"orphan and is retried at the next mount",
			(unsigned long long)in->ino, strerror(-ret));
	free_freed(v, &freed, 0);
}

static void inode_maybe_evict(struct vfs *v, struct inode *in)
{
	int gone;
	uint32_t nlink;

	/*
	 * Called with itable_lock held; drops it. With no references left,
	 * nobody else touches the inode, so its data fields may be read here.
	 * A linked inode whose data could not be stored (a failed seal keeps
	 * its block dirty; a failed commit keeps its pending list) stays in
	 * the table: the next fsync, release or the unmount retries it.
	 */
	gone = in->nlookup == 0 && in->opens == 0 && in->pins == 0;
	nlink = gone ? in->md.nlink : 1;	/* unreferenced: no one changes it */
	if (gone && nlink > 0)
		gone = !in->dirty && !in->npend && !in->sealing && !in->meta_dirty &&
		       in->md.size == in->committed_size;
	if (gone)
		itable_remove(v, in);
	pthread_mutex_unlock(&v->itable_lock);
	if (!gone)
		return;
	if (nlink == 0)
		inode_destroy(v, in);
	inode_free(in);
}

void inode_put(struct vfs *v, struct inode *in)
{
	pthread_mutex_lock(&v->itable_lock);
	in->pins--;
	inode_maybe_evict(v, in);
}

int vfs_forget(struct vfs *v, uint64_t ino, uint64_t nlookup)
{
	struct inode *in;
	int last;

	pthread_mutex_lock(&v->itable_lock);
	in = itable_find(v, ino);
	if (!in) {
		pthread_mutex_unlock(&v->itable_lock);
		return 1;
	}
	in->nlookup = nlookup > in->nlookup ? 0 : in->nlookup - nlookup;
	last = in->nlookup == 0;
	inode_maybe_evict(v, in);
	return last;
}

void inode_fill_stat(struct vfs *v, const struct meta_inode *md, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = md->ino;
	st->st_mode = md->mode;
	st->st_nlink = md->nlink;
	st->st_uid = md->uid;
	st->st_gid = md->gid;
	st->st_rdev = md->rdev;
	st->st_size = (off_t)md->size;
	st->st_blksize = (blksize_t)v->bsize;
	st->st_blocks = (blkcnt_t)((md->size + 511) / 512);
	st->st_atim = md->atime;
	st->st_mtim = md->mtime;
	st->st_ctim = md->ctime;
}

void inode_md_for_commit(const struct inode *in, struct meta_inode *out)
{
	*out = in->md;
	out->size = in->committed_size;
}

int vfs_getattr(struct vfs *v, uint64_t ino, struct stat *st)
{
	int err = 0;
	struct inode *in = inode_get(v, ino, &err);

	if (!in)
		return err;
	meta_lock(v->meta);
	inode_fill_stat(v, &in->md, st);
	meta_unlock(v->meta);
	inode_put(v, in);
	return 0;
}

/* ---- sealing ---- */

struct seal_job {
	struct vfs *v;
	struct inode *in;
	struct dblock *db;
};

static struct dblock *dblock_find(struct inode *in, uint64_t idx)
{
	struct dblock *db = in->dirty;

	while (db && db->idx != idx)
		db = db->next;
	return db;
}

static void dblock_unlink(struct inode *in, struct dblock *db)
{
	struct dblock **pp = &in->dirty;

	while (*pp && *pp != db)
		pp = &(*pp)->next;
	if (*pp) {
		*pp = db->next;
		in->ndirty--;
	}
}

static struct pending *pending_find(struct inode *in, uint64_t idx)
{
	for (size_t i = 0; i < in->npend; i++)
		if (in->pend[i].idx == idx)
			return &in->pend[i];
	return NULL;
}

static void pending_drop(struct vfs *v, struct inode *in, struct pending *p)
{
	if (p->raw) {
		bs_unpin(v->bs, &p->h);
		bs_delete_if(v->bs, &p->h, meta_block_unref, v->meta);
	}
	*p = in->pend[--in->npend];
}

static int pending_add(struct vfs *v, struct inode *in, uint64_t idx,
		       const struct bs_hash *h, uint32_t raw, uint32_t stored)
{
	struct pending *p = pending_find(in, idx);

	if (p)
		pending_drop(v, in, p);
	if (in->npend == in->cappend) {
		size_t cap = in->cappend ? 2 * in->cappend : 16;
		struct pending *np = realloc(in->pend, cap * sizeof(*np));

		if (!np)
			return -ENOMEM;
		in->pend = np;
		in->cappend = cap;
	}
	p = &in->pend[in->npend++];
	p->idx = idx;
	if (h)
		p->h = *h;
	p->raw = raw;
	p->stored = stored;
	return 0;
}

/* Length of buf[0..n) without its trailing zeros, a word at a time. */
static size_t trimmed_len(const unsigned char *buf, size_t n)
{
	while (n > 0 && (n & 7))
		if (buf[--n])
			return n + 1;
	while (n >= 8) {
		uint64_t w;

		memcpy(&w, buf + n - 8, 8);
		if (w)
			break;
		n -= 8;
	}
	while (n > 0 && buf[n - 1] == 0)
		n--;
	return n;
}

static void seal_run(void *arg)
{
	struct seal_job *job = arg;
	struct vfs *v = job->v;
	struct inode *in = job->in;
	struct dblock *db = job->db;
	size_t len = trimmed_len(db->buf, db->hi);
	struct bs_hash h;
	uint32_t stored = 0;
	int created = 0, ret = 0;

	if (len > 0)
		ret = bs_seal(v->bs, db->buf, len, in->zlevel, &h, &stored, &created);
	pthread_mutex_lock(&in->lock);
	if (ret == 0) {
		ret = pending_add(v, in, db->idx, len ? &h : NULL, (uint32_t)len, stored);
		if (ret < 0 && len > 0)
			bs_unpin(v->bs, &h);
	}
	if (ret < 0) {
		log_err("cannot store block %llu of inode %llu: %s (kept in "
			"memory; reported to the writer)",
			(unsigned long long)db->idx, (unsigned long long)in->ino,
			strerror(-ret));
		if (!in->err)
			in->err = ret;
		db->state = DB_DIRTY;	/* keep the data; a later commit retries */
	} else {
		dblock_unlink(in, db);
		if (len > 0)	/* a read or a rewrite soon after is common */
			bs_cache_give(v->bs, &h, db->buf, len, v->bsize);
		else
			free(db->buf);
		free(db);
		budget_release(v, v->bsize);
	}
	in->sealing--;
	/* a close asked for a commit once its blocks are sealed; never wait
	 * for other seals here (a worker must not wait on the queue it
	 * serves), and never commit around unsealed data (a torn file) */
	if (in->commit_wanted && in->sealing == 0 && in->loading == 0 && !in->dirty) {
		int cret;

		in->commit_wanted = 0;
		cret = inode_commit_locked(v, in, 0);
		if (cret < 0)
			log_err("inode %llu: commit after close failed: %s",
				(unsigned long long)in->ino, strerror(-cret));
	}
	pthread_cond_broadcast(&in->cond);
	pthread_mutex_unlock(&in->lock);
	pthread_mutex_lock(&v->dirty_lock);
	v->pending_seals--;
	pthread_mutex_unlock(&v->dirty_lock);
	inode_put(v, in);
	free(job);
}

/* Account db as being sealed and make its job; NULL (db stays dirty, to be
 * sealed at the next commit) when out of memory. */
static struct seal_job *seal_prepare_locked(struct vfs *v, struct inode *in,
					    struct dblock *db)
{
	struct seal_job *job = malloc(sizeof(*job));

	if (!job)
		return NULL;
	db->state = DB_SEALING;
	in->sealing++;
	pthread_mutex_lock(&v->itable_lock);
	in->pins++;
	pthread_mutex_unlock(&v->itable_lock);
	pthread_mutex_lock(&v->dirty_lock);
	v->pending_seals++;
	pthread_mutex_unlock(&v->dirty_lock);
	job->v = v;
	job->in = in;
	job->db = db;
	return job;
}

static void seal_block_locked(struct vfs *v, struct inode *in, struct dblock *db)
{
	struct seal_job *job = seal_prepare_locked(v, in, db);

	if (job && workq_push(v->seal_wq, seal_run, job) < 0) {
		/* out of memory for the queue: stay dirty, undo, retry later */
		db->state = DB_DIRTY;
		in->sealing--;
		pthread_mutex_lock(&v->itable_lock);
		in->pins--;
		pthread_mutex_unlock(&v->itable_lock);
		pthread_mutex_lock(&v->dirty_lock);
		v->pending_seals--;
		pthread_mutex_unlock(&v->dirty_lock);
		free(job);
	}
}

/*
 * Seal the small dirty blocks of in on this thread (see "Write path"), each
 * once: drops and retakes in->lock around each. Stops at the first failure
 * (seal_run leaves the block dirty and the error in in->err).
 */
static void seal_small_inline_locked(struct vfs *v, struct inode *in)
{
	for (size_t left = in->ndirty; left > 0 && !in->err; left--) {
		struct dblock *db;
		struct seal_job *job;

		for (db = in->dirty; db; db = db->next)
			if (db->state == DB_DIRTY && db->hi <= SEAL_INLINE_MAX)
				break;
		if (!db || !(job = seal_prepare_locked(v, in, db)))
			return;
		pthread_mutex_unlock(&in->lock);
		seal_run(job);		/* takes in->lock; frees job */
		pthread_mutex_lock(&in->lock);
	}
}

static void seal_all_locked(struct vfs *v, struct inode *in)
{
	for (struct dblock *db = in->dirty; db; db = db->next)
		if (db->state == DB_DIRTY)
			seal_block_locked(v, in, db);
}

static void wait_sealed_locked(struct inode *in)
{
	while (in->sealing > 0 || in->loading > 0)
		pthread_cond_wait(&in->cond, &in->lock);
}

/* Seal the dirty blocks of every other inode (memory pressure). */
static void reclaim_dirty(struct vfs *v, struct inode *self)
{
	struct inode **list = NULL;
	size_t n = 0, cap = 0;

	pthread_mutex_lock(&v->itable_lock);
	for (size_t b = 0; b < v->nbuckets; b++) {
		for (struct inode *in = v->itable[b]; in; in = in->hnext) {
			if (in == self || in->ndirty == 0)
				continue;
			if (n == cap) {
				struct inode **nl = realloc(list, (cap = cap ? 2 * cap : 16) * sizeof(*nl));

				if (!nl)
					goto done;
				list = nl;
			}
			in->pins++;
			list[n++] = in;
		}
	}
done:
	pthread_mutex_unlock(&v->itable_lock);
	for (size_t i = 0; i < n; i++) {
		pthread_mutex_lock(&list[i]->lock);
		seal_all_locked(v, list[i]);
		pthread_mutex_unlock(&list[i]->lock);
		inode_put(v, list[i]);
	}
	free(list);
}

/* Reserve one block of dirty budget; may drop and retake in->lock. Fails
 * with this inode's storing error rather than wait for memory that its own
 * unstorable blocks hold. */
static int budget_acquire_locked(struct vfs *v, struct inode *in)
{
	pthread_mutex_lock(&v->dirty_lock);
	while (v->dirty_bytes + v->bsize > v->opt.dirty_max && v->dirty_bytes > 0) {
		struct timespec ts;

		if (in->err) {
			int err = in->err;

			pthread_mutex_unlock(&v->dirty_lock);
			in->err = 0;
			return err;
		}
		pthread_mutex_unlock(&v->dirty_lock);
		seal_all_locked(v, in);
		pthread_mutex_unlock(&in->lock);
		reclaim_dirty(v, in);
		pthread_mutex_lock(&v->dirty_lock);
		if (v->dirty_bytes + v->bsize > v->opt.dirty_max) {
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 50 * 1000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&v->dirty_cond, &v->dirty_lock, &ts);
		}
		pthread_mutex_unlock(&v->dirty_lock);
		pthread_mutex_lock(&in->lock);
		pthread_mutex_lock(&v->dirty_lock);
	}
	v->dirty_bytes += v->bsize;
	pthread_mutex_unlock(&v->dirty_lock);
	return 0;
}

/* The committed or pending hash of block idx; 0, -ENOENT (hole) or -errno.
 * On 0 the hash is pinned. */
static int block_source_locked(struct vfs *v, struct inode *in, uint64_t idx,
			       struct bs_hash *h)
{
	struct pending *p = pending_find(in, idx);
	int ret;

	if (p) {
		if (p->raw == 0)
			return -ENOENT;
		*h = p->h;
		bs_pin(v->bs, h);
		return 0;
	}
	ret = meta_get_block(v->meta, in->ino, idx, h);
	if (ret == 0)
		bs_pin(v->bs, h);
	return ret;
}

/* Copy block idx's current bytes (len bytes from offset off) into dst. */
static int read_stored_locked(struct vfs *v, struct inode *in, uint64_t idx,
			      unsigned char *dst, size_t off, size_t len)
{
	struct bs_hash h;
	struct bs_buf *buf;
	int ret = block_source_locked(v, in, idx, &h);

	if (ret == -ENOENT) {
		memset(dst, 0, len);
		return 0;
	}
	if (ret < 0)
		return ret;
	pthread_mutex_unlock(&in->lock);
	ret = bs_get(v->bs, &h, &buf);
	if (ret == 0) {
		size_t have = buf->len > off ? MIN(buf->len - off, len) : 0;

		memcpy(dst, buf->data + off, have);
		memset(dst + have, 0, len - have);
		bs_put_buf(v->bs, buf);
	}
	bs_unpin(v->bs, &h);
	pthread_mutex_lock(&in->lock);
	return ret;
}

/*
 * The dirty block for idx, created if needed. whole: the caller overwrites
 * all of it, so the old bytes need not be read. May drop in->lock.
 */
static int dblock_get_locked(struct vfs *v, struct inode *in, uint64_t idx,
			     int whole, struct dblock **out)
{
	struct dblock *db;
	int ret;

	for (;;) {
		db = dblock_find(in, idx);
		if (db && db->state != DB_DIRTY) {
			pthread_cond_wait(&in->cond, &in->lock);
			continue;
		}
		if (db) {
			*out = db;
			return 0;
		}
		ret = budget_acquire_locked(v, in);
		if (ret < 0)
			return ret;
		db = dblock_find(in, idx);
		if (db) {	/* made by another writer meanwhile */
			budget_release(v, v->bsize);
			continue;
		}
		break;
	}
	db = calloc(1, sizeof(*db));
	if (db)
		db->buf = malloc(v->bsize);	/* past hi: garbage, read as zeros */
	if (!db || !db->buf) {
		free(db);
		budget_release(v, v->bsize);
		return -ENOMEM;
	}
	db->idx = idx;
	/* insert before reading: other threads wait for us, not load too */
	db->state = DB_LOADING;
	db->next = in->dirty;
	in->dirty = db;
	in->ndirty++;
	in->loading++;
	ret = 0;
	if (!whole && idx * v->bsize < in->md.size) {
		size_t n = (size_t)MIN((uint64_t)v->bsize, in->md.size - idx * v->bsize);

		ret = read_stored_locked(v, in, idx, db->buf, 0, n);
		db->hi = n;
	}
	db->state = DB_DIRTY;
	in->loading--;
	pthread_cond_broadcast(&in->cond);
	if (ret < 0) {
		dblock_unlink(in, db);
		free(db->buf);
		free(db);
		budget_release(v, v->bsize);
		return ret;
	}
	*out = db;
	return 0;
}

/* ---- free space ---- */

static int space_check_once(struct vfs *v, size_t want)
{
	uint64_t now = mono_ns(), need, dirty;
	int ret = 0;

	pthread_mutex_lock(&v->dirty_lock);
	dirty = v->dirty_bytes;
	pthread_mutex_unlock(&v->dirty_lock);
	need = v->reserve + dirty + want;
	pthread_mutex_lock(&v->space_lock);
	if (now - v->space_checked_ns > 100000000ull ||
	    v->space_free < need + (256ull << 20)) {
		struct statvfs sv;

		if (statvfs(v->state_dir, &sv) == 0) {
			v->space_free = (uint64_t)sv.f_bavail * sv.f_frsize;
			v->space_checked_ns = now;
		}
	}
	if (v->space_free < need)
		ret = -ENOSPC;
	pthread_mutex_unlock(&v->space_lock);
	return ret;
}

/*
 * Room for want more bytes? When the disk is full but deleted files' blocks
 * still wait for a synced commit (see free_freed), sync the metadata and
 * delete them here, before answering: an rm must free space for the next
 * write, as on any filesystem.
 */
static int space_check(struct vfs *v, size_t want)
{
	struct bs_hash *h;
	size_t n;
	int ret = space_check_once(v, want);

	if (ret != -ENOSPC)
		return ret;
	pthread_mutex_lock(&v->defer_lock);
	n = v->ndeferred;
	pthread_mutex_unlock(&v->defer_lock);
	if (n == 0 || meta_sync(v->meta) < 0)
		return ret;
	pthread_mutex_lock(&v->defer_lock);
	h = v->deferred;
	n = v->ndeferred;
	v->deferred = NULL;
	v->ndeferred = v->capdeferred = 0;
	pthread_mutex_unlock(&v->defer_lock);
	delete_blocks(v, h, n);		/* now, not on a worker */
	free(h);
	pthread_mutex_lock(&v->space_lock);
	v->space_checked_ns = 0;	/* look again */
	pthread_mutex_unlock(&v->space_lock);
	return space_check_once(v, want);
}

/* ---- commit ---- */

int inode_commit_locked(struct vfs *v, struct inode *in, int sync)
{
	struct meta_freed freed = { 0 };
	struct meta_inode md;
	struct meta_txn *t;
	uint64_t old_size;
	int err, ret = 0;

	seal_all_locked(v, in);
	wait_sealed_locked(in);
	err = in->err;
	in->err = 0;
	if (in->dirty) {
		/* a block could not be stored: committing now would publish a
		 * size whose bytes are not there (a torn file); keep the last
		 * commit and report */
		return err ? err : -EIO;
	}
	if (sync) {
		ret = bs_sync(v->bs);
		if (ret < 0) {
			log_err("cannot sync the block store: %s", strerror(-ret));
			return ret;
		}
	}
	meta_lock(v->meta);
	if (in->npend == 0 && !in->meta_dirty && in->md.size == in->committed_size) {
		meta_unlock(v->meta);
		if (sync && err == 0)
			err = meta_sync(v->meta);
		return err;
	}
	t = meta_txn_begin(v->meta);
	for (size_t i = 0; ret == 0 && i < in->npend; i++) {
		struct pending *p = &in->pend[i];
		struct bs_hash old;
		int have = meta_get_block(v->meta, in->ino, p->idx, &old);

		if (have < 0 && have != -ENOENT) {
			ret = have;
			break;
		}
		ret = meta_txn_set_block(t, in->ino, p->idx, have == 0 ? &old : NULL,
					 p->raw ? &p->h : NULL, p->raw, p->stored);
	}
	if (ret == 0 && in->md.size < in->committed_size)
		ret = txn_drop_blocks(v, t, in->ino,
				      (in->md.size + v->bsize - 1) / v->bsize);
	if (ret < 0) {
		meta_txn_abort(t);
		meta_unlock(v->meta);
		return ret;
	}
	old_size = in->committed_size;
	md = in->md;
	if ((md.mode & S_IFMT) == S_IFREG)
		meta_txn_logical(t, old_size, md.size);
	meta_txn_put_inode(t, &md);
	ret = meta_txn_commit(t, sync, &freed);
	if (ret == 0) {
		in->committed_size = md.size;
		in->meta_dirty = 0;
	}
	meta_unlock(v->meta);
	if (ret < 0)
		return ret;
	for (size_t i = 0; i < in->npend; i++)
		if (in->pend[i].raw)
			bs_unpin(v->bs, &in->pend[i].h);
	in->npend = 0;
	free_freed(v, &freed, sync);
	return err;
}

int inode_commit_md_locked(struct vfs *v, struct inode *in)
{
	(void)v;
	in->meta_dirty = 1;
	return 0;
}

int inode_truncate_locked(struct vfs *v, struct inode *in, uint64_t size)
{
	uint64_t cut = size / v->bsize;
	size_t tail = (size_t)(size % v->bsize);
	struct timespec now = now_ts();
	int ret;

	seal_all_locked(v, in);
	wait_sealed_locked(in);
	if (size < in->md.size && tail) {
		struct dblock *db;

		/* the block the cut falls in, first: if it cannot be read,
		 * fail before anything is dropped */
		ret = dblock_get_locked(v, in, cut, 0, &db);
		if (ret < 0)
			return ret;
		db->hi = MIN(db->hi, tail);
	}
	if (size < in->md.size) {
		struct dblock **pp = &in->dirty;

		while (*pp) {
			struct dblock *db = *pp;

			if (db->idx > cut || (db->idx == cut && tail == 0)) {
				*pp = db->next;
				in->ndirty--;
				free(db->buf);
				free(db);
				budget_release(v, v->bsize);
			} else {
				pp = &db->next;
			}
		}
		for (size_t i = 0; i < in->npend; ) {
			struct pending *p = &in->pend[i];

			if (p->idx > cut || (p->idx == cut && tail == 0))
				pending_drop(v, in, p);
			else
				i++;
		}
	}
	meta_lock(v->meta);
	in->md.size = size;
	in->md.mtime = in->md.ctime = now;
	in->meta_dirty = 1;
	meta_unlock(v->meta);
	return inode_commit_locked(v, in, 0);
}

/* ---- open files ---- */

static int file_new(struct vfs *v, struct inode *in, int flags, struct vfs_file **f)
{
	int ret = 0;

	*f = calloc(1, sizeof(**f));
	if (!*f)
		return -ENOMEM;
	(*f)->in = in;
	(*f)->flags = flags;
	if ((flags & O_TRUNC) && (flags & O_ACCMODE) != O_RDONLY) {
		pthread_mutex_lock(&in->lock);
		if (in->md.size > 0 || in->npend || in->dirty)
			ret = inode_truncate_locked(v, in, 0);
		pthread_mutex_unlock(&in->lock);
	}
	if (ret < 0) {
		free(*f);
		*f = NULL;
		return ret;
	}
	pthread_mutex_lock(&v->itable_lock);
	in->opens++;
	pthread_mutex_unlock(&v->itable_lock);
	return 0;
}

int vfs_open(struct vfs *v, uint64_t ino, int flags, struct vfs_file **f)
{
	int err = 0, ret;
	struct inode *in = inode_get(v, ino, &err);
	uint32_t mode;

	if (!in)
		return err;
	meta_lock(v->meta);
	mode = in->md.mode;
	meta_unlock(v->meta);
	if (S_ISDIR(mode))
		ret = -EISDIR;
	else if (!S_ISREG(mode))
		ret = -EINVAL;
	else
		ret = file_new(v, in, flags, f);
	inode_put(v, in);
	return ret;
}

int vfs_create(struct vfs *v, const struct vfs_ctx *c, uint64_t parent,
	       const char *name, mode_t mode, int flags, struct stat *st,
	       struct vfs_file **f)
{
	int err = 0, ret;
	struct inode *in;

	ret = vfs_mknod(v, c, parent, name, (mode & ~S_IFMT) | S_IFREG, 0, st);
	if (ret < 0)
		return ret;
	in = inode_get(v, st->st_ino, &err);
	if (!in) {
		vfs_forget(v, st->st_ino, 1);
		return err;
	}
	ret = file_new(v, in, flags & ~O_TRUNC, f);
	inode_put(v, in);
	if (ret < 0)
		vfs_forget(v, st->st_ino, 1);
	return ret;
}

int vfs_tmpfile(struct vfs *v, const struct vfs_ctx *c, mode_t mode,
		struct vfs_file **f, uint64_t *ino)
{
	struct meta_inode md = { 0 };
	struct meta_txn *t;
	struct inode *in;
	int err;

	md.mode = (uint32_t)((mode & 07777) | S_IFREG);
	md.uid = c->uid;
	md.gid = c->gid;
	md.atime = md.mtime = md.ctime = now_ts();
	meta_lock(v->meta);
	t = meta_txn_begin(v->meta);
	md.ino = meta_txn_alloc_ino(t);
	meta_txn_put_inode(t, &md);
	meta_txn_orphan(t, md.ino, 1);	/* a crash before it is linked frees it */
	err = meta_txn_commit(t, 0, NULL);
	meta_unlock(v->meta);
	if (err < 0)
		return err;
	in = inode_get_new(v, &md, &err);
	if (!in)
		return err;
	/* written once, read often, rebuilt from bronze at need: the fastest
	 * level, which on table text compresses about as well as the default */
	in->zlevel = 1;
	err = file_new(v, in, O_RDWR, f);
	inode_put(v, in);
	if (err == 0)
		*ino = md.ino;
	return err;
}

struct clone_list {
	uint64_t *idx;
	struct bs_hash *h;
	size_t n, cap;
};

static int clone_collect(void *arg, uint64_t idx, const struct bs_hash *h)
{
	struct clone_list *l = arg;

	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 256;
		uint64_t *ni = realloc(l->idx, cap * sizeof(*ni));
		struct bs_hash *nh;

		if (!ni)
			return -ENOMEM;
		l->idx = ni;
		nh = realloc(l->h, cap * sizeof(*nh));
		if (!nh)
			return -ENOMEM;
		l->h = nh;
		l->cap = cap;
	}
	l->idx[l->n] = idx;
	l->h[l->n++] = *h;
	return 0;
}

int vfs_clone(struct vfs *v, struct vfs_file *f, uint64_t src)
{
	struct inode *in = f->in;
	struct meta_inode smd;
	struct clone_list l = { 0 };
	struct meta_txn *t;
	int ret;

	pthread_mutex_lock(&in->lock);
	meta_lock(v->meta);
	if (in->dirty || in->npend || in->md.size || in->committed_size) {
		ret = -EINVAL;		/* only into an empty file */
		goto out;
	}
	ret = meta_get_inode(v->meta, src, &smd);
	if (ret == 0 && !S_ISREG(smd.mode))
		ret = -EINVAL;
	if (ret == 0)
		ret = meta_blocks(v->meta, src, 0, clone_collect, &l);
	if (ret < 0)
		goto out;
	t = meta_txn_begin(v->meta);
	for (size_t i = 0; ret == 0 && i < l.n; i++)
		ret = meta_txn_set_block(t, in->ino, l.idx[i], NULL, &l.h[i], 0, 0);
	if (ret < 0) {
		meta_txn_abort(t);
		goto out;
	}
	in->md.size = smd.size;
	in->md.mtime = in->md.ctime = now_ts();
	meta_txn_logical(t, 0, smd.size);
	meta_txn_put_inode(t, &in->md);
	ret = meta_txn_commit(t, 0, NULL);
	if (ret == 0)
		in->committed_size = smd.size;
	else
		in->md.size = 0;
out:
	meta_unlock(v->meta);
	pthread_mutex_unlock(&in->lock);
	free(l.idx);
	free(l.h);
	return ret;
}

uint64_t vfs_file_ino(const struct vfs_file *f)
{
	return f->in->ino;
}

int vfs_file_flags(const struct vfs_file *f)
{
	return f->flags;
}

int vfs_busy(struct vfs *v, uint64_t ino)
{
	struct inode *in;
	int busy;

	pthread_mutex_lock(&v->itable_lock);
	in = itable_find(v, ino);
	if (!in || in->opens > 0) {
		pthread_mutex_unlock(&v->itable_lock);
		return in ? 1 : 0;
	}
	in->pins++;
	pthread_mutex_unlock(&v->itable_lock);
	/* closed, but the last close's commit may still wait for its seals */
	pthread_mutex_lock(&in->lock);
	busy = in->dirty || in->npend || in->sealing || in->loading || in->commit_wanted;
	meta_lock(v->meta);
	busy = busy || in->md.size != in->committed_size;
	meta_unlock(v->meta);
	pthread_mutex_unlock(&in->lock);
	inode_put(v, in);
	return busy ? 2 : 0;
}

static int ts_le(struct timespec a, struct timespec b)
{
	return a.tv_sec < b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec <= b.tv_nsec);
}

/* relatime: after a read, move atime if it is not newer than mtime or
 * ctime, or is a day old. 1 if it moved. in->lock held. */
static int touch_atime_locked(struct vfs *v, struct inode *in)
{
	struct timespec now = now_ts();
	struct meta_inode *md = &in->md;
	int moved = 0;

	meta_lock(v->meta);
	if (ts_le(md->atime, md->mtime) || ts_le(md->atime, md->ctime) ||
	    now.tv_sec - md->atime.tv_sec >= 24 * 3600) {
		md->atime = now;
		in->meta_dirty = 1;
		moved = 1;
	}
	meta_unlock(v->meta);
	return moved;
}

/*
 * A sequential reader entering block idx: a read at the file's start (the
 * first read, or a reader starting over), or the last read was in the
 * block just before (or the one before that: the kernel's read-ahead sends
 * several reads at once, and FUSE threads may take them slightly out of
 * order). Read-ahead then starts once per block whatever the size of the
 * reads (it used to wait for a read that ended a block and began in it,
 * which reads smaller than a block never are); random reads start none.
 */
static int reads_on_into(const struct inode *in, uint64_t idx, size_t boff)
{
	if (idx == 0 && boff == 0)
		return in->last_read_idx != 0;
	return in->last_read_idx != UINT64_MAX && idx > in->last_read_idx &&
	       idx - in->last_read_idx <= 2;
}

static void prefetch_after(struct vfs *v, struct inode *in, uint64_t idx)
{
	uint64_t depth = v->opt.prefetch_bytes ?
			 MAX(2, v->opt.prefetch_bytes / v->bsize) : PREFETCH_BLOCKS;

	for (uint64_t i = idx + 1; i <= idx + depth; i++) {
		struct bs_hash h;

		if (i * v->bsize >= in->md.size)
			break;
		if (dblock_find(in, i) || pending_find(in, i))
			continue;
		if (meta_get_block(v->meta, in->ino, i, &h) == 0)
			bs_prefetch(v->bs, &h);
	}
}

static int seg_add(struct vfs_seg **segs, int *n, int *cap, const void *p,
		   size_t len, struct bs_buf *ref, void *owned)
{
	if (*n == *cap) {
		int ncap = *cap ? 2 * *cap : 4;
		struct vfs_seg *ns = realloc(*segs, (size_t)ncap * sizeof(*ns));

		if (!ns)
			return -ENOMEM;
		*segs = ns;
		*cap = ncap;
	}
	(*segs)[*n].p = p;
	(*segs)[*n].len = len;
	(*segs)[*n].ref = ref;
	(*segs)[*n].owned = owned;
	(*n)++;
	return 0;
}

/* Block idx's bytes [boff, boff+n) as segments; in->lock held. */
static int read_block_segs_locked(struct vfs *v, struct inode *in, uint64_t idx,
				  size_t boff, size_t n, struct vfs_seg **segs,
				  int *nseg, int *cap)
{
	struct dblock *db = dblock_find(in, idx);
	struct bs_buf *buf;
	struct bs_hash h;
	size_t have;
	int ret;

	if (db) {	/* dirty data may change once we unlock: copy it */
		unsigned char *copy = malloc(n);

		if (!copy)
			return -ENOMEM;
		have = db->hi > boff ? MIN(db->hi - boff, n) : 0;
		memcpy(copy, db->buf + boff, have);
		memset(copy + have, 0, n - have);
		ret = seg_add(segs, nseg, cap, copy, n, NULL, copy);
		if (ret < 0)
			free(copy);
		return ret;
	}
	ret = block_source_locked(v, in, idx, &h);
	if (ret == -ENOENT)
		return seg_add(segs, nseg, cap, v->zeros, n, NULL, NULL);
	if (ret < 0)
		return ret;
	pthread_mutex_unlock(&in->lock);
	ret = bs_get(v->bs, &h, &buf);
	bs_unpin(v->bs, &h);	/* the cache reference keeps the bytes */
	pthread_mutex_lock(&in->lock);
	if (ret < 0)
		return ret;
	have = buf->len > boff ? MIN(buf->len - boff, n) : 0;
	ret = seg_add(segs, nseg, cap, buf->data + boff, have, buf, NULL);
	if (ret < 0) {
		bs_put_buf(v->bs, buf);
		return ret;
	}
	if (have < n)
		ret = seg_add(segs, nseg, cap, v->zeros, n - have, NULL, NULL);
	return ret;
}

void vfs_read_release(struct vfs *v, struct vfs_seg *segs, int nseg)
{
	for (int i = 0; i < nseg; i++) {
		if (segs[i].ref)
			bs_put_buf(v->bs, segs[i].ref);
		free(segs[i].owned);
	}
	free(segs);
}

ssize_t vfs_read_segs(struct vfs *v, struct vfs_file *f, size_t size,
		      uint64_t off, struct vfs_seg **segs, int *nseg)
{
	struct inode *in = f->in;
	size_t done = 0;
	int cap = 0, ret = 0, moved;

	*segs = NULL;
	*nseg = 0;
	pthread_mutex_lock(&in->lock);
	if (off >= in->md.size) {
		pthread_mutex_unlock(&in->lock);
		return 0;
	}
	size = (size_t)MIN((uint64_t)size, in->md.size - off);
	while (done < size) {
		uint64_t pos = off + done, idx = pos / v->bsize;
		size_t boff = (size_t)(pos % v->bsize);
		size_t n = MIN(size - done, v->bsize - boff);
		struct dblock *db = dblock_find(in, idx);

		if (db && db->state == DB_LOADING) {
			pthread_cond_wait(&in->cond, &in->lock);
			continue;
		}
		if (reads_on_into(in, idx, boff))
			prefetch_after(v, in, idx);
		in->last_read_idx = idx;
		ret = read_block_segs_locked(v, in, idx, boff, n, segs, nseg, &cap);
		if (ret < 0)
			break;
		done += n;
	}
	moved = ret == 0 && touch_atime_locked(v, in);
	pthread_mutex_unlock(&in->lock);
	if (ret < 0) {
		/* never a short read: the kernel would take it for EOF */
		vfs_read_release(v, *segs, *nseg);
		*segs = NULL;
		*nseg = 0;
		return ret;
	}
	if (moved && v->attr_changed)	/* the kernel caches atime too */
		v->attr_changed(v->attr_changed_arg, in->ino);
	return (ssize_t)done;
}

ssize_t vfs_read(struct vfs *v, struct vfs_file *f, void *buf, size_t size,
		 uint64_t off)
{
	struct vfs_seg *segs;
	unsigned char *out = buf;
	int nseg;
	ssize_t n = vfs_read_segs(v, f, size, off, &segs, &nseg);

	for (int i = 0; n > 0 && i < nseg; i++) {
		memcpy(out, segs[i].p, segs[i].len);
		out += segs[i].len;
	}
	vfs_read_release(v, segs, nseg);
	return n;
}

ssize_t vfs_write(struct vfs *v, struct vfs_file *f, const void *buf,
		  size_t size, uint64_t off)
{
	struct inode *in = f->in;
	const unsigned char *src = buf;
	size_t done = 0;
	struct timespec now;
	int ret;

	if (size == 0)
		return 0;
	if (off + size < off || off + size > (1ull << 62))
		return -EFBIG;
	ret = space_check(v, size);
	if (ret < 0)
		return ret;
	pthread_mutex_lock(&in->lock);
	if (f->flags & O_APPEND)
		off = in->md.size;
	if (in->err) {
		ret = in->err;
		in->err = 0;
		pthread_mutex_unlock(&in->lock);
		return ret;
	}
	while (done < size) {
		uint64_t pos = off + done, idx = pos / v->bsize;
		size_t boff = (size_t)(pos % v->bsize);
		size_t n = MIN(size - done, v->bsize - boff);
		struct dblock *db;

		ret = dblock_get_locked(v, in, idx, n == v->bsize, &db);
		if (ret < 0)
			break;
		if (boff > db->hi)
			memset(db->buf + db->hi, 0, boff - db->hi);
		memcpy(db->buf + boff, src + done, n);
		db->hi = MAX(db->hi, boff + n);
		done += n;
		meta_lock(v->meta);
		if (pos + n > in->md.size)
			in->md.size = pos + n;
		meta_unlock(v->meta);
		if (boff + n == v->bsize)
			seal_block_locked(v, in, db);
	}
	if (done > 0) {
		now = now_ts();
		meta_lock(v->meta);
		in->md.mtime = in->md.ctime = now;
		in->meta_dirty = 1;
		meta_unlock(v->meta);
	}
	if (in->npend >= PENDING_COMMIT) {
		int cret = inode_commit_locked(v, in, 0);

		if (cret < 0 && ret == 0)
			in->err = cret;
	}
	pthread_mutex_unlock(&in->lock);
	return done > 0 ? (ssize_t)done : ret;
}

/*
 * A release: a commit point that does not wait for the disk. If blocks are
 * still being sealed, the seal worker that finishes the last one commits;
 * otherwise commit now (one metadata write). Errors met so far are
 * reported here; later ones at the next fsync, close or in the log.
 */
static int commit_soon_locked(struct vfs *v, struct inode *in)
{
	int err = in->err, ret;

	in->err = 0;
	seal_small_inline_locked(v, in);
	if (!err)
		err = in->err;
	in->err = 0;
	seal_all_locked(v, in);
	if (in->sealing > 0 || in->loading > 0) {
		in->commit_wanted = 1;
		return err;
	}
	in->commit_wanted = 0;
	ret = inode_commit_locked(v, in, 0);
	return err ? err : ret;
}

int vfs_fsync(struct vfs *v, struct vfs_file *f, int datasync)
{
	int ret;

	(void)datasync;		/* metadata is one small record: sync it too */
	pthread_mutex_lock(&f->in->lock);
	ret = inode_commit_locked(v, f->in, 1);
	pthread_mutex_unlock(&f->in->lock);
	return ret;
}

int vfs_fsyncdir(struct vfs *v)
{
	/* blocks first: the metadata made durable here may name them */
	int ret = bs_sync(v->bs);

	if (ret == 0)
		ret = meta_sync(v->meta);
	if (ret == 0)
		flush_deferred(v);
	return ret;
}

int vfs_fallocate(struct vfs *v, struct vfs_file *f, int mode, uint64_t off,
		  uint64_t len)
{
	struct inode *in = f->in;
	uint64_t end = off + len;
	int ret = 0;

	if (len == 0 || end < off)
		return -EINVAL;
	if (mode & ~(VFS_FALLOC_KEEP_SIZE | VFS_FALLOC_PUNCH_HOLE))
		return -EOPNOTSUPP;
	if ((mode & VFS_FALLOC_PUNCH_HOLE) && !(mode & VFS_FALLOC_KEEP_SIZE))
		return -EINVAL;
	pthread_mutex_lock(&in->lock);
	if (!(mode & VFS_FALLOC_PUNCH_HOLE)) {
		if (!(mode & VFS_FALLOC_KEEP_SIZE) && end > in->md.size) {
			ret = space_check(v, 0);
			if (ret == 0)
				ret = inode_truncate_locked(v, in, end);
		}
		pthread_mutex_unlock(&in->lock);
		return ret;
	}
	end = MIN(end, in->md.size);
	while (ret == 0 && off < end) {
		uint64_t idx = off / v->bsize;
		size_t boff = (size_t)(off % v->bsize);
		size_t n = (size_t)MIN(end - off, (uint64_t)(v->bsize - boff));
		struct dblock *db;

		if (n == v->bsize) {
			db = dblock_find(in, idx);
			while (db && db->state != DB_DIRTY) {
				pthread_cond_wait(&in->cond, &in->lock);
				db = dblock_find(in, idx);
			}
			if (db) {
				dblock_unlink(in, db);
				free(db->buf);
				free(db);
				budget_release(v, v->bsize);
			}
			ret = pending_add(v, in, idx, NULL, 0, 0);
		} else {
			ret = dblock_get_locked(v, in, idx, 0, &db);
			if (ret == 0)
				if (boff < db->hi)
					memset(db->buf + boff, 0, MIN(n, db->hi - boff));
		}
		off += n;
	}
	if (ret == 0) {
		meta_lock(v->meta);
		in->md.mtime = in->md.ctime = now_ts();
		in->meta_dirty = 1;
		meta_unlock(v->meta);
	}
	pthread_mutex_unlock(&in->lock);
	return ret;
}

void vfs_release(struct vfs *v, struct vfs_file *f)
{
	struct inode *in = f->in;

	int err;

	pthread_mutex_lock(&in->lock);
	err = commit_soon_locked(v, in);
	pthread_mutex_unlock(&in->lock);
	if (err < 0)
		log_err("inode %llu: data written through a file now closed could "
			"not be stored: %s (kept in memory; retried at the next "
			"commit)", (unsigned long long)in->ino, strerror(-err));
	pthread_mutex_lock(&v->itable_lock);
	in->opens--;
	inode_maybe_evict(v, in);
	free(f);
}

/* ---- the filesystem ---- */

static int orphan_one(void *arg, uint64_t ino)
{
	struct vfs *v = arg;
	int err = 0;
	struct inode *in = inode_get(v, ino, &err);

	if (!in) {
		struct meta_txn *t;

		/* the inode is gone already: drop the marker */
		meta_lock(v->meta);
		t = meta_txn_begin(v->meta);
		meta_txn_orphan(t, ino, 0);
		meta_txn_commit(t, 0, NULL);
		meta_unlock(v->meta);
		return 0;
	}
	meta_lock(v->meta);
	if (in->md.nlink != 0) {	/* relinked: just clear the marker */
		struct meta_txn *t = meta_txn_begin(v->meta);

		meta_txn_orphan(t, ino, 0);
		meta_txn_commit(t, 0, NULL);
	}
	meta_unlock(v->meta);
	inode_put(v, in);	/* nlink 0 and no references: destroyed */
	return 0;
}

/* Start-up garbage collection: blocks a crash left unreferenced. On its
 * own thread, so that a long scan never holds a seal worker. */
static void *gc_main(void *arg)
{
	struct vfs *v = arg;
	uint64_t removed = 0;

	bs_gc(v->bs, v->gc_before_ns, meta_block_unref, v->meta, &removed);
	if (removed)
		log_info("removed %llu unreferenced blocks left by an earlier crash",
			 (unsigned long long)removed);
	return NULL;
}

int vfs_open_fs(struct vfs **out, const struct vfs_options *opt, char **errmsg)
{
	struct vfs *v = calloc(1, sizeof(*v));
	struct bs_backend be;
	struct bs_options bo = { 0 };
	struct statvfs sv;
	char path[4096];
	struct timespec start = now_ts();
	int ret;

	if (!v)
		return -ENOMEM;
	v->opt = *opt;
	v->state_dir = strdup(opt->state_dir);
	pthread_mutex_init(&v->itable_lock, NULL);
	pthread_mutex_init(&v->dirty_lock, NULL);
	pthread_cond_init(&v->dirty_cond, NULL);
	pthread_mutex_init(&v->space_lock, NULL);
	pthread_mutex_init(&v->defer_lock, NULL);
	v->nbuckets = 1 << 14;
	v->itable = xcalloc(v->nbuckets, sizeof(*v->itable));
	ret = meta_open(&v->meta, opt->state_dir, opt->block_size, errmsg);
	if (ret < 0)
		goto fail;
	v->bsize = meta_super(v->meta)->block_size;
	v->zeros = xcalloc(1, v->bsize);
	if (v->opt.dirty_max < 4 * (size_t)v->bsize)
		v->opt.dirty_max = 4 * (size_t)v->bsize;
	snprintf(path, sizeof(path), "%s/blocks", opt->state_dir);
	ret = bs_local_open(&be, path, SMALL_OBJECT_MAX, errmsg);
	if (ret < 0)
		goto fail;
	if (opt->wrap_store) {
		ret = opt->wrap_store(opt->wrap_arg, &be, errmsg);
		if (ret < 0)
			goto fail;	/* the wrapper took be over */
	}
	if (opt->journal_mark)
		meta_journal_enable(v->meta, opt->journal_mark, opt->wrap_arg);
	bo.block_size = v->bsize;
	bo.cache_bytes = opt->cache_bytes;
	bo.zstd_level = opt->zstd_level;
	bo.prefetch_threads = opt->prefetch_threads > 0 ? opt->prefetch_threads : 3;
	ret = bs_open(&v->bs, &be, &bo, errmsg);
	if (ret < 0) {
		be.ops->free(be.ctx);
		goto fail;
	}
	v->seal_wq = workq_new("seal", opt->seal_threads > 0 ? opt->seal_threads : 2);
	if (!v->seal_wq) {
		ret = -ENOMEM;
		if (errmsg)
			*errmsg = strdup("cannot start the seal workers");
		goto fail;
	}
	if (statvfs(opt->state_dir, &sv) == 0) {
		uint64_t total = (uint64_t)sv.f_blocks * sv.f_frsize;

		v->reserve = MAX(4ull << 20, MIN(total / 50, 256ull << 20));
	}
	meta_orphans(v->meta, orphan_one, v);
	v->gc_before_ns = (uint64_t)start.tv_sec * 1000000000ull + (uint64_t)start.tv_nsec;
	if (pthread_create(&v->gc_thread, NULL, gc_main, v) == 0) {
		pthread_setname_np(v->gc_thread, "gc");
		v->gc_started = 1;
	}
	*out = v;
	return 0;
fail:
	vfs_close_fs(v);
	return ret;
}

/*
 * Commit whatever is in memory: dirty data of open files, data that could
 * not be stored before. Used at unmount and by `lakefs sync`.
 */
void vfs_flush_all(struct vfs *v)
{
	struct inode **list = NULL;
	size_t n = 0, cap = 0;

	/* the inodes are pinned while we walk them, so a seal worker
	 * finishing meanwhile cannot free one */
	pthread_mutex_lock(&v->itable_lock);
	for (size_t b = 0; v->itable && b < v->nbuckets; b++) {
		for (struct inode *in = v->itable[b]; in; in = in->hnext) {
			if (n == cap) {
				struct inode **nl = realloc(list, (cap = cap ? 2 * cap : 64) * sizeof(*nl));

				if (!nl)
					break;
				list = nl;
			}
			in->pins++;
			list[n++] = in;
		}
	}
	pthread_mutex_unlock(&v->itable_lock);
	for (size_t i = 0; i < n; i++) {
		struct inode *in = list[i];
		int ret = 0;

		pthread_mutex_lock(&in->lock);
		if (in->dirty || in->npend || in->meta_dirty ||
		    in->md.size != in->committed_size)
			ret = inode_commit_locked(v, in, 0);
		pthread_mutex_unlock(&in->lock);
		if (ret < 0)
			log_err("inode %llu: data written so far could "
				"not be stored: %s", (unsigned long long)in->ino,
				strerror(-ret));
		inode_put(v, in);
	}
	free(list);
}

void vfs_close_fs(struct vfs *v)
{
	if (!v)
		return;
	vfs_flush_all(v);
	if (v->gc_started)
		pthread_join(v->gc_thread, NULL);
	workq_free(v->seal_wq);
	v->seal_wq = NULL;	/* from here on, deletions run inline */
	for (size_t b = 0; v->itable && b < v->nbuckets; b++) {
		while (v->itable[b]) {
			struct inode *in = v->itable[b];

			v->itable[b] = in->hnext;
			for (size_t i = 0; i < in->npend; i++)
				if (in->pend[i].raw)
					bs_unpin(v->bs, &in->pend[i].h);
			while (in->dirty) {
				struct dblock *db = in->dirty;

				in->dirty = db->next;
				free(db->buf);
				free(db);
			}
			inode_free(in);
		}
	}
	if (v->bs)
		bs_sync(v->bs);
	if (v->meta) {
		if (meta_sync(v->meta) == 0 && v->bs)
			flush_deferred(v);
	}
	bs_close(v->bs);
	meta_close(v->meta);
	free(v->deferred);
	free(v->itable);
	free(v->zeros);
	free(v->state_dir);
	free(v);
}

struct meta *vfs_meta(struct vfs *v) { return v->meta; }
struct blockstore *vfs_blockstore(struct vfs *v) { return v->bs; }
uint32_t vfs_block_size(struct vfs *v) { return v->bsize; }

void vfs_dirty_stats(struct vfs *v, uint64_t *dirty_bytes, uint64_t *pending_seals)
{
	pthread_mutex_lock(&v->dirty_lock);
	*dirty_bytes = v->dirty_bytes;
	*pending_seals = v->pending_seals;
	pthread_mutex_unlock(&v->dirty_lock);
}

void vfs_set_attr_notify(struct vfs *v, void (*fn)(void *arg, uint64_t ino),
			 void *arg)
{
	v->attr_changed = fn;
	v->attr_changed_arg = arg;
}

void vfs_notify_entry(struct vfs *v, uint64_t dir, const char *name)
{
	if (v->entry_changed)
		v->entry_changed(v->entry_changed_arg, dir, name);
}

void vfs_notify_attr(struct vfs *v, uint64_t ino)
{
	if (v->attr_changed)
		v->attr_changed(v->attr_changed_arg, ino);
}

void vfs_set_entry_notify(struct vfs *v,
			  void (*fn)(void *arg, uint64_t dir, const char *name),
			  void *arg)
{
	v->entry_changed = fn;
	v->entry_changed_arg = arg;
}

void vfs_set_root_extra(struct vfs *v, const char *name, uint64_t ino)
{
	v->root_extra = name;
	v->root_extra_ino = ino;
}
