/*
 * fs/ops.c — the FUSE low-level handlers.
 *
 * Thin by rule (after libfuse's passthrough_ll.c): each handler unpacks its
 * arguments, calls one function of catalog/vfs.h or fs/ctl.c that returns 0
 * or -errno, and sends exactly one reply. No policy lives here.
 *
 * Caching: entries and attributes are cached by the kernel for
 * entry_timeout/attr_timeout seconds, negative lookups too. That is safe
 * because every change to the namespace and to attributes comes through
 * this mount, and the kernel invalidates what its own requests change.
 * Directory listings are cached (cache_readdir) for the same reason. File
 * pages are kept across opens (keep_cache); control files use direct I/O.
 *
 * Write-only opens use direct I/O too (write_direct, on by default where
 * the kernel is 6.6 or later): the kernel hands the writer's own pages to
 * the daemon instead of first copying them into pages of its cache, which
 * it would allocate, fill and keep (cp, dd, an extractor: a 1 GiB dd with
 * fsync took 10-25% less time in make bench). An O_WRONLY descriptor
 * cannot be mmapped, so no mapping loses its cache; readers keep theirs,
 * and since 6.6 the kernel drops cached pages over the range of every
 * direct write, so they never see stale bytes.
 *
 * Access: every request that names an inode or a directory is checked
 * against the caller's grants (lake_check, catalog/access.c) before it
 * acts; a securable's attributes are shown per caller (lake_present) and
 * then not cached, and listings of the root, catalogs and schemas are
 * filtered per caller (lake_visible) and not cached either.
 *
 * There is no flush handler: the kernel then stops sending FLUSH, and
 * close(2) costs no round trip. The commit point of a close is RELEASE,
 * which the kernel sends after the last close of an open file; errors are
 * reported by fsync(2) (as on most Linux filesystems, where a write error
 * meets the application at fsync, not at close).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog/journal.h"
#include "catalog/lake.h"
#include "fs/fsd.h"
#include "fs/ops.h"
#include "util/log.h"
#include "util/util.h"

#define CTL_FH_TAG 1	/* control handles are tagged pointers */

/*
 * A control file's open handle: the document rendered at open. It is
 * freed when both the release and every read in progress are done: the
 * kernel completes a read as soon as our reply is written, so the reader
 * may close, and another thread may handle the release, before the
 * thread that wrote the reply has returned from writev.
 */
struct ctl_handle {
	char *buf;
	size_t len;
	atomic_int refs;
};

static void ctl_handle_put(struct ctl_handle *h)
{
	if (atomic_fetch_sub(&h->refs, 1) == 1) {
		free(h->buf);
		free(h);
	}
}

static struct fsd *fsd_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/*
 * A caller's supplementary groups come from /proc (fuse_req_getgroups,
 * about 10 us). They are kept per process for GROUPS_TTL_NS, keyed by pid,
 * uid and gid: a process that drops groups without changing its ids keeps
 * the old ones for at most that long (as NFS servers' group caches do).
 */
#define GROUPS_SLOTS 64
#define GROUPS_TTL_NS 1000000000ull

struct groups_slot {
	pid_t pid;
	uint32_t uid, gid;
	uint64_t at;
	int n;
	uint32_t g[LAKE_GROUPS_MAX];
};

static struct groups_slot groups_cache[GROUPS_SLOTS];
static pthread_mutex_t groups_lock = PTHREAD_MUTEX_INITIALIZER;

static int req_groups(void *arg, uint32_t *out, int max)
{
	fuse_req_t req = arg;
	const struct fuse_ctx *c = fuse_req_ctx(req);
	struct groups_slot *s = &groups_cache[(unsigned)c->pid % GROUPS_SLOTS];
	uint64_t now = mono_ns();
	gid_t g[LAKE_GROUPS_MAX];
	int n;

	if (max > LAKE_GROUPS_MAX)
		max = LAKE_GROUPS_MAX;
	pthread_mutex_lock(&groups_lock);
	if (s->pid == c->pid && s->uid == c->uid && s->gid == c->gid &&
	    now - s->at < GROUPS_TTL_NS) {
		n = s->n < max ? s->n : max;
		memcpy(out, s->g, (size_t)n * sizeof(*out));
		pthread_mutex_unlock(&groups_lock);
		return n;
	}
	pthread_mutex_unlock(&groups_lock);
	n = fuse_req_getgroups(req, max, g);
	if (n < 0)
		return n;
	if (n > max)
		n = max;
	for (int i = 0; i < n; i++)
		out[i] = g[i];
	pthread_mutex_lock(&groups_lock);
	s->pid = c->pid;
	s->uid = c->uid;
	s->gid = c->gid;
	s->at = now;
	s->n = n;
	memcpy(s->g, out, (size_t)n * sizeof(*out));
	pthread_mutex_unlock(&groups_lock);
	return n;
}

static void req_who(fuse_req_t req, struct lake_who *w)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);

	w->uid = c->uid;
	w->gid = c->gid;
	w->ngroups = -1;
	w->get_groups = req_groups;
	w->arg = req;
}

/* 0, or -EACCES: the caller may not do need on ino (see lake.h) */
static int check(fuse_req_t req, uint64_t ino, enum lake_need need,
		 const char *op, const char *name)
{
	struct lake_who w;

	req_who(req, &w);
	return lake_check(fsd_of(req)->lake, &w, ino, need, op, name);
}

/* the caller's view of st; the attribute timeout it may be cached for */
static double present(fuse_req_t req, struct stat *st)
{
	struct fsd *d = fsd_of(req);
	struct lake_who w;

	if (!S_ISDIR(st->st_mode) || ctl_owns(st->st_ino))
		return d->attr_timeout;
	req_who(req, &w);
	return lake_present(d->lake, &w, st) ? 0.0 : d->attr_timeout;
}

static void reply_entry(fuse_req_t req, int err, const struct stat *cst)
{
	struct fsd *d = fsd_of(req);
	struct fuse_entry_param e;
	struct stat stv, *st = &stv;

	if (err < 0) {
		if (err == -ENOENT) {	/* cache the miss */
			memset(&e, 0, sizeof(e));
			e.entry_timeout = d->entry_timeout;
			fuse_reply_entry(req, &e);
			return;
		}
		fuse_reply_err(req, -err);
		return;
	}
	stv = *cst;
	memset(&e, 0, sizeof(e));
	e.attr_timeout = present(req, st);
	e.ino = st->st_ino;
	e.generation = 1;
	e.attr = *st;
	e.entry_timeout = d->entry_timeout;
	fuse_reply_entry(req, &e);
}

static void reply_attr(fuse_req_t req, int err, const struct stat *cst)
{
	struct stat st;
	double t;

	if (err < 0) {
		fuse_reply_err(req, -err);
		return;
	}
	st = *cst;
	t = present(req, &st);
	fuse_reply_attr(req, &st, t);
}

static struct vfs_ctx req_ctx(fuse_req_t req)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	struct vfs_ctx vc = { c->uid, c->gid, fsd_of(req)->acl_cache ? c->umask : 0 };

	return vc;
}

static void lfs_init(void *userdata, struct fuse_conn_info *conn)
{
	struct fsd *d = userdata;

	conn->max_write = 1 << 20;
	conn->max_readahead = 1 << 20;
	conn->want |= FUSE_CAP_ASYNC_READ | FUSE_CAP_ATOMIC_O_TRUNC;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	if (conn->capable & FUSE_CAP_CACHE_SYMLINKS)
		conn->want |= FUSE_CAP_CACHE_SYMLINKS;
	conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
	/*
	 * lakefs stores no POSIX ACLs (setting one fails with EOPNOTSUPP), but
	 * with this capability the kernel asks once per inode and caches the
	 * answer, instead of asking on every ls -l. The price: the kernel no
	 * longer applies the umask, so ns.c does (vfs_ctx.umask).
	 */
	if (conn->capable & FUSE_CAP_POSIX_ACL) {
		conn->want |= FUSE_CAP_POSIX_ACL;
		d->acl_cache = 1;
	}
}

static void lfs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fsd *d = fsd_of(req);
	struct stat st;
	int err;

	if ((parent == 1 && strcmp(name, CTL_DIR_NAME) == 0) || ctl_owns(parent))
		err = ctl_lookup(d, parent, name, &st);
	else if ((err = check(req, parent, LAKE_LOOKUP, "lookup", name)) == 0 &&
		 (err = vfs_lookup(d->vfs, parent, name, &st)) == 0)
		lake_seen(d->lake, parent, name, &st);
	reply_entry(req, err, &st);
}

static void forget_one(struct fsd *d, uint64_t ino, uint64_t nlookup)
{
	if (vfs_forget(d->vfs, ino, nlookup))
		lake_forget(d->lake, ino);
}

static void lfs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	if (!ctl_owns(ino))
		forget_one(fsd_of(req), ino, nlookup);
	fuse_reply_none(req);
}

static void lfs_forget_multi(fuse_req_t req, size_t count,
			     struct fuse_forget_data *forgets)
{
	for (size_t i = 0; i < count; i++)
		if (!ctl_owns(forgets[i].ino))
			forget_one(fsd_of(req), forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void lfs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fsd *d = fsd_of(req);
	struct stat st;
	int err;

	(void)fi;
	if (ctl_owns(ino))
		err = ctl_getattr(d, ino, &st);
	else if ((err = check(req, ino, LAKE_STAT, "getattr", NULL)) == 0)
		err = vfs_getattr(d->vfs, ino, &st);
	reply_attr(req, err, &st);
}

static void lfs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
			int to_set, struct fuse_file_info *fi)
{
	struct stat st;
	int set = 0, err;

	(void)fi;
	if (ctl_owns(ino)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if (to_set & FUSE_SET_ATTR_MODE) set |= VFS_SET_MODE;
	if (to_set & FUSE_SET_ATTR_UID) set |= VFS_SET_UID;
	if (to_set & FUSE_SET_ATTR_GID) set |= VFS_SET_GID;
	if (to_set & FUSE_SET_ATTR_SIZE) set |= VFS_SET_SIZE;
	if (to_set & FUSE_SET_ATTR_ATIME) set |= VFS_SET_ATIME;
	if (to_set & FUSE_SET_ATTR_MTIME) set |= VFS_SET_MTIME;
	if (to_set & FUSE_SET_ATTR_ATIME_NOW) set |= VFS_SET_ATIME_NOW;
	if (to_set & FUSE_SET_ATTR_MTIME_NOW) set |= VFS_SET_MTIME_NOW;
	if (to_set & FUSE_SET_ATTR_CTIME) set |= VFS_SET_CTIME;
	err = check(req, ino, LAKE_XWRITE, "setattr", NULL);
	if (err == 0)
		err = lake_may_modify(fsd_of(req)->lake, ino);
	if (err == 0)
		err = vfs_setattr(fsd_of(req)->vfs, ino, attr, set, &st);
	if (err == 0 && (set & (VFS_SET_SIZE | VFS_SET_MTIME | VFS_SET_MTIME_NOW)))
		lake_closed(fsd_of(req)->lake, ino, 1);
	reply_attr(req, err, &st);
}

static void lfs_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char *target = NULL;
	int err = check(req, ino, LAKE_READ, "readlink", NULL);

	if (err == 0)
		err = vfs_readlink(fsd_of(req)->vfs, ino, &target);

	if (err < 0)
		fuse_reply_err(req, err == -ENOENT ? EINVAL : -err);
	else
		fuse_reply_readlink(req, target);
	free(target);
}

static int is_ctl_parent(fuse_ino_t parent, const char *name)
{
	return ctl_owns(parent) || (parent == 1 && strcmp(name, CTL_DIR_NAME) == 0);
}

/* Ask the lake before a name is made, tell it after. */
static int may_make(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		    const char *op)
{
	int err;

	if (is_ctl_parent(parent, name))
		return parent == 1 && strcmp(name, CTL_DIR_NAME) == 0 && S_ISDIR(mode) ?
		       -EEXIST : -EPERM;
	if ((err = check(req, parent, LAKE_MAKE, op, name)) < 0)
		return err;
	return lake_may_make(fsd_of(req)->lake, parent, name, mode);
}

static void made(struct fsd *d, const struct vfs_ctx *c, fuse_ino_t parent,
		 const char *name, const struct stat *st)
{
	lake_made(d->lake, c, parent, name, st);
}

static void lfs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, dev_t rdev)
{
	struct fsd *d = fsd_of(req);
	struct vfs_ctx c = req_ctx(req);
	struct stat st;
	int err = may_make(req, parent, name, mode, "mknod");

	if (err == 0 && (err = vfs_mknod(d->vfs, &c, parent, name, mode, rdev, &st)) == 0)
		made(d, &c, parent, name, &st);
	reply_entry(req, err == -ENOENT ? -EIO : err, &st);
}

static void lfs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode)
{
	struct fsd *d = fsd_of(req);
	struct vfs_ctx c = req_ctx(req);
	struct stat st;
	int err = may_make(req, parent, name, S_IFDIR | mode, "mkdir");

	if (err == 0 && (err = vfs_mkdir(d->vfs, &c, parent, name, mode, &st)) == 0)
		made(d, &c, parent, name, &st);
	reply_entry(req, err == -ENOENT ? -EIO : err, &st);
}

static void lfs_symlink(fuse_req_t req, const char *target, fuse_ino_t parent,
			const char *name)
{
	struct fsd *d = fsd_of(req);
	struct vfs_ctx c = req_ctx(req);
	struct stat st;
	int err = may_make(req, parent, name, S_IFLNK, "symlink");

	if (err == 0 && (err = vfs_symlink(d->vfs, &c, parent, name, target, &st)) == 0)
		made(d, &c, parent, name, &st);
	reply_entry(req, err == -ENOENT ? -EIO : err, &st);
}

static void lfs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t parent,
		     const char *name)
{
	struct fsd *d = fsd_of(req);
	struct vfs_ctx c = req_ctx(req);
	struct stat st;
	int err = ctl_owns(ino) || is_ctl_parent(parent, name) ? -EPERM : 0;

	if (err == 0 && (err = check(req, ino, LAKE_READ, "link", NULL)) == 0 &&
	    (err = check(req, parent, LAKE_MAKE, "link", name)) == 0)
		err = lake_may_link(d->lake, ino, parent);

	if (err == 0 && (err = vfs_link(d->vfs, ino, parent, name, &st)) == 0)
		made(d, &c, parent, name, &st);

	if (err == -ENOENT) {	/* not a cacheable miss here */
		fuse_reply_err(req, ENOENT);
		return;
	}
	reply_entry(req, err, &st);
}

static void lfs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fsd *d = fsd_of(req);
	int err = is_ctl_parent(parent, name) ? -EPERM :
		  check(req, parent, LAKE_REMOVE, "unlink", name);

	if (err == 0)
		err = lake_may_remove(d->lake, parent, name, 0);
	if (err == 0 && (err = vfs_unlink(d->vfs, parent, name)) == 0)
		lake_removed(d->lake, parent, name);

	fuse_reply_err(req, -err);
}

static void lfs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fsd *d = fsd_of(req);
	int err = is_ctl_parent(parent, name) ? -EPERM :
		  check(req, parent, LAKE_REMOVE, "rmdir", name);

	if (err == 0)
		err = lake_may_remove(d->lake, parent, name, 1);
	if (err == 0)
		err = lake_rmdir(d->lake, parent, name);

	fuse_reply_err(req, -err);
}

static void lfs_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		       fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	unsigned vflags = 0;
	int err;

	if (flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (flags & RENAME_NOREPLACE)
		vflags |= VFS_RENAME_NOREPLACE;
	if (flags & RENAME_EXCHANGE)
		vflags |= VFS_RENAME_EXCHANGE;
	if (is_ctl_parent(parent, name) || is_ctl_parent(newparent, newname))
		err = -EPERM;
	else if ((err = check(req, parent, LAKE_REMOVE, "rename", name)) < 0 ||
		 (err = check(req, newparent, LAKE_MAKE, "rename", newname)) < 0 ||
		 ((vflags & VFS_RENAME_EXCHANGE) &&
		  ((err = check(req, newparent, LAKE_REMOVE, "rename", newname)) < 0 ||
		   (err = check(req, parent, LAKE_MAKE, "rename", name)) < 0)))
		;
	else if ((err = lake_may_rename(fsd_of(req)->lake, parent, name, newparent,
					newname)) == 0 && (vflags & VFS_RENAME_EXCHANGE))
		err = lake_may_rename(fsd_of(req)->lake, newparent, newname, parent, name);
	if (err == 0 && (err = vfs_rename(fsd_of(req)->vfs, parent, name, newparent,
					  newname, vflags)) == 0) {
		lake_renamed(fsd_of(req)->lake, newparent, newname);
		if (vflags & VFS_RENAME_EXCHANGE)
			lake_renamed(fsd_of(req)->lake, parent, name);
	}
	fuse_reply_err(req, -err);
}

static void lfs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fsd *d = fsd_of(req);
	struct vfs_file *f;
	int err;

	if (ctl_owns(ino)) {
		struct ctl_handle *h;

		if ((fi->flags & O_ACCMODE) != O_RDONLY) {
			fuse_reply_err(req, EACCES);
			return;
		}
		if (ctl_admin_only(ino) && (err = check(req, ino, LAKE_ADMIN, "open",
							 ctl_name(ino))) < 0) {
			fuse_reply_err(req, -err);
			return;
		}
		h = calloc(1, sizeof(*h));
		if (!h) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
		{
			struct lake_who w;

			req_who(req, &w);
			err = ctl_render(d, &w, ino, &h->buf, &h->len);
		}
		if (err < 0) {
			free(h);
			fuse_reply_err(req, -err);
			return;
		}
		atomic_init(&h->refs, 1);
		fi->fh = (uintptr_t)h | CTL_FH_TAG;
		fi->direct_io = 1;
		fuse_reply_open(req, fi);
		return;
	}
	err = (fi->flags & O_ACCMODE) != O_WRONLY ?
	      check(req, ino, LAKE_READ, "open", NULL) : 0;
	if (err == 0 && ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) &&
	    (err = check(req, ino, LAKE_WRITE, "open", NULL)) == 0)
		err = lake_may_modify(d->lake, ino);
	if (err == 0)
		err = vfs_open(d->vfs, ino, fi->flags, &f);
	if (err < 0) {
		fuse_reply_err(req, -err);
		return;
	}
	fi->fh = (uintptr_t)f;
	fi->keep_cache = 1;
	fi->direct_io = d->write_direct && (fi->flags & O_ACCMODE) == O_WRONLY;
	/* close() costs no round trip, but for gold definitions (see flush) */
	fi->noflush = !((fi->flags & O_ACCMODE) != O_RDONLY && lake_wants_flush(d->lake, ino));
	if (fuse_reply_open(req, fi) == -ENOENT)
		vfs_release(d->vfs, f);		/* the opener was interrupted */
}

static void lfs_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		       mode_t mode, struct fuse_file_info *fi)
{
	struct fsd *d = fsd_of(req);
	struct vfs_ctx c = req_ctx(req);
	struct fuse_entry_param e;
	struct vfs_file *f;
	struct stat st;
	int err;

	err = may_make(req, parent, name, S_IFREG | mode, "create");
	if (err == 0)
		err = vfs_create(d->vfs, &c, parent, name, mode, fi->flags, &st, &f);
	if (err == 0)
		made(d, &c, parent, name, &st);
	if (err < 0) {
		fuse_reply_err(req, err == -ENOENT ? EIO : -err);
		return;
	}
	memset(&e, 0, sizeof(e));
	e.ino = st.st_ino;
	e.generation = 1;
	e.attr = st;
	e.attr_timeout = d->attr_timeout;
	e.entry_timeout = d->entry_timeout;
	fi->fh = (uintptr_t)f;
	fi->keep_cache = 1;
	fi->direct_io = d->write_direct && (fi->flags & O_ACCMODE) == O_WRONLY;
	fi->noflush = !lake_wants_flush(d->lake, st.st_ino);
	if (fuse_reply_create(req, &e, fi) == -ENOENT) {
		vfs_release(d->vfs, f);
		vfs_forget(d->vfs, st.st_ino, 1);
	}
}

static int is_ctl_fh(struct fuse_file_info *fi)
{
	return (fi->fh & CTL_FH_TAG) != 0;
}

static struct ctl_handle *ctl_fh(struct fuse_file_info *fi)
{
	return (struct ctl_handle *)(uintptr_t)(fi->fh & ~(uint64_t)CTL_FH_TAG);
}

static struct vfs_file *vfs_fh(struct fuse_file_info *fi)
{
	return (struct vfs_file *)(uintptr_t)fi->fh;
}

static void lfs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct vfs *v = fsd_of(req)->vfs;
	struct vfs_seg *segs;
	struct iovec *iov;
	ssize_t n;
	int nseg;

	(void)ino;
	if (is_ctl_fh(fi)) {
		struct ctl_handle *h = ctl_fh(fi);
		size_t o = (size_t)off < h->len ? (size_t)off : h->len;

		atomic_fetch_add(&h->refs, 1);
		fuse_reply_buf(req, h->buf + o, MIN(size, h->len - o));
		ctl_handle_put(h);
		return;
	}
	n = vfs_read_segs(v, vfs_fh(fi), size, (uint64_t)off, &segs, &nseg);
	if (n < 0) {
		fuse_reply_err(req, (int)-n);
		return;
	}
	iov = calloc((size_t)nseg + 1, sizeof(*iov));
	if (!iov) {
		fuse_reply_err(req, ENOMEM);
	} else {
		for (int i = 0; i < nseg; i++) {
			iov[i].iov_base = (void *)segs[i].p;
			iov[i].iov_len = segs[i].len;
		}
		fuse_reply_iov(req, iov, nseg);	/* writev: no copy here */
		free(iov);
	}
	vfs_read_release(v, segs, nseg);	/* req is gone: use v */
}

static void lfs_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
		      size_t size, off_t off, struct fuse_file_info *fi)
{
	ssize_t n;

	(void)ino;
	if (is_ctl_fh(fi)) {
		fuse_reply_err(req, EBADF);
		return;
	}
	n = vfs_write(fsd_of(req)->vfs, vfs_fh(fi), buf, size, (uint64_t)off);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_write(req, (size_t)n);
}

static void lfs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (is_ctl_fh(fi)) {
		ctl_handle_put(ctl_fh(fi));
	} else {
		vfs_release(fsd_of(req)->vfs, vfs_fh(fi));
		lake_closed(fsd_of(req)->lake, ino, (fi->flags & O_ACCMODE) != O_RDONLY);
	}
	fuse_reply_err(req, 0);
}

/*
 * The kernel sends FLUSH at every close() of a descriptor, unless the open
 * said noflush: only descriptors written to a gold definition (NAME.sql in
 * a gold schema) get here, and a definition that does not compile fails
 * that close() with EINVAL.
 */
static void lfs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	int err = 0;

	/* FLUSH carries no open flags: the handle has them */
	if (!is_ctl_fh(fi) && (vfs_file_flags(vfs_fh(fi)) & O_ACCMODE) != O_RDONLY)
		err = lake_flush(fsd_of(req)->lake, ino);
	fuse_reply_err(req, -err);
}

/* With -o durability=remote, fsync also waits for the bucket. */
static int remote_durable(struct fsd *d)
{
	uint64_t seq;
	int err;

	if (!d->durability_remote || !d->journal)
		return 0;
	seq = meta_journal_last(vfs_meta(d->vfs));
	err = journal_wait(d->journal, seq, d->remote_timeout_ns);
	if (err < 0) {
		log_err("fsync: the bucket did not take the data within %llu s; "
			"it stays queued locally", (unsigned long long)
			(d->remote_timeout_ns / 1000000000ull));
		return -EIO;
	}
	return 0;
}

static void lfs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		      struct fuse_file_info *fi)
{
	struct fsd *d = fsd_of(req);
	int err = 0;

	(void)ino;
	if (!is_ctl_fh(fi)) {
		err = vfs_fsync(d->vfs, vfs_fh(fi), datasync);
		if (err == 0)
			err = remote_durable(d);
	}
	fuse_reply_err(req, -err);
}

static void lfs_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off,
			  off_t len, struct fuse_file_info *fi)
{
	int vmode = 0, err;

	(void)ino;
	if (is_ctl_fh(fi)) {
		fuse_reply_err(req, EBADF);
		return;
	}
	if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE)) {
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	if (mode & FALLOC_FL_KEEP_SIZE)
		vmode |= VFS_FALLOC_KEEP_SIZE;
	if (mode & FALLOC_FL_PUNCH_HOLE)
		vmode |= VFS_FALLOC_PUNCH_HOLE;
	if (off < 0 || len <= 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	err = vfs_fallocate(fsd_of(req)->vfs, vfs_fh(fi), vmode, (uint64_t)off,
			    (uint64_t)len);
	fuse_reply_err(req, -err);
}

static void lfs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	int err;

	fi->fh = 0;
	if (!ctl_owns(ino)) {
		if ((err = check(req, ino, LAKE_LIST, "opendir", NULL)) < 0) {
			fuse_reply_err(req, -err);
			return;
		}
		/* a listing the same for every caller may be cached */
		if (!lake_filters(fsd_of(req)->lake, ino)) {
			fi->cache_readdir = 1;
			fi->keep_cache = 1;
		}
	}
	fuse_reply_open(req, fi);
}

struct dirbuf {
	fuse_req_t req;
	char *buf;
	size_t size, used;
	struct lake *filter;	/* non-NULL: show only what who may see */
	uint64_t dir;
	struct lake_who who;
};

static int dirbuf_add(void *arg, const char *name, uint64_t ino, mode_t mode,
		      uint64_t next_off)
{
	struct dirbuf *db = arg;
	struct stat st;
	size_t need;

	if (db->filter && ino != CTL_DIR_INO && strcmp(name, ".") != 0 &&
	    strcmp(name, "..") != 0 && !lake_visible(db->filter, &db->who, db->dir, ino))
		return 0;
	memset(&st, 0, sizeof(st));
	st.st_ino = ino;
	st.st_mode = mode & S_IFMT;
	need = fuse_add_direntry(db->req, NULL, 0, name, NULL, 0);
	if (db->used + need > db->size)
		return 1;
	fuse_add_direntry(db->req, db->buf + db->used, db->size - db->used,
			  name, &st, (off_t)next_off);
	db->used += need;
	return 0;
}

static void lfs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			struct fuse_file_info *fi)
{
	struct fsd *d = fsd_of(req);
	struct dirbuf db = { req, NULL, size, 0, NULL, ino, { 0 } };
	int err;

	(void)fi;
	if (!ctl_owns(ino) && lake_filters(d->lake, ino)) {
		req_who(req, &db.who);
		if (!lake_is_admin(d->lake, &db.who))
			db.filter = d->lake;
	}
	db.buf = malloc(size ? size : 1);
	if (!db.buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (ctl_owns(ino))
		err = ctl_readdir(d, ino, (uint64_t)off, dirbuf_add, &db);
	else
		err = vfs_readdir(d->vfs, ino, (uint64_t)off, dirbuf_add, &db);
	if (err < 0 && db.used == 0)
		fuse_reply_err(req, -err);
	else
		fuse_reply_buf(req, db.buf, db.used);
	free(db.buf);
}

static void lfs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0);
}

static void lfs_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
			 struct fuse_file_info *fi)
{
	(void)ino;
	(void)datasync;
	(void)fi;
	int err = vfs_fsyncdir(fsd_of(req)->vfs);

	if (err == 0)
		err = remote_durable(fsd_of(req));
	fuse_reply_err(req, -err);
}

static void lfs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs st;
	int err = vfs_statfs(fsd_of(req)->vfs, &st);

	(void)ino;
	if (err < 0)
		fuse_reply_err(req, -err);
	else
		fuse_reply_statfs(req, &st);
}

static void lfs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			 const char *value, size_t size, int flags)
{
	struct lake_who w;
	int err;

	req_who(req, &w);
	err = ctl_owns(ino) ? -EPERM :
	      lake_setxattr(fsd_of(req)->lake, &w, ino, name, value, size, flags);

	if (err == 1)
		err = vfs_setxattr(fsd_of(req)->vfs, ino, name, value, size, flags);
	fuse_reply_err(req, -err);
}

static void reply_xattr(fuse_req_t req, ssize_t n, const char *buf, size_t size)
{
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
}

static void lfs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			 size_t size)
{
	char *buf = size ? malloc(size) : NULL;
	struct lake_who w;
	ssize_t n;

	if (size && !buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	req_who(req, &w);
	n = ctl_owns(ino) ? -ENODATA :
	    lake_getxattr(fsd_of(req)->lake, &w, ino, name, buf, size);
	if (n == 1)
		n = vfs_getxattr(fsd_of(req)->vfs, ino, name, buf, size);
	reply_xattr(req, n, buf, size);
	free(buf);
}

static void lfs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	char *buf = size ? malloc(size) : NULL;
	ssize_t n;

	if (size && !buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	n = ctl_owns(ino) ? 0 : check(req, ino, LAKE_XREAD, "listxattr", NULL);
	if (n == 0 && !ctl_owns(ino))
		n = vfs_listxattr(fsd_of(req)->vfs, ino, buf, size);
	reply_xattr(req, n, buf, size);
	free(buf);
}

static void lfs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct lake_who w;
	int err;

	req_who(req, &w);
	err = ctl_owns(ino) ? -EPERM : lake_removexattr(fsd_of(req)->lake, &w, ino, name);

	if (err == 1)
		err = vfs_removexattr(fsd_of(req)->vfs, ino, name);
	fuse_reply_err(req, -err);
}

const struct fuse_lowlevel_ops lfs_ops = {
	.init = lfs_init,
	.lookup = lfs_lookup,
	.forget = lfs_forget,
	.forget_multi = lfs_forget_multi,
	.getattr = lfs_getattr,
	.setattr = lfs_setattr,
	.readlink = lfs_readlink,
	.mknod = lfs_mknod,
	.mkdir = lfs_mkdir,
	.symlink = lfs_symlink,
	.link = lfs_link,
	.unlink = lfs_unlink,
	.rmdir = lfs_rmdir,
	.rename = lfs_rename,
	.open = lfs_open,
	.create = lfs_create,
	.read = lfs_read,
	.write = lfs_write,
	.flush = lfs_flush,
	.release = lfs_release,
	.fsync = lfs_fsync,
	.fallocate = lfs_fallocate,
	.opendir = lfs_opendir,
	.readdir = lfs_readdir,
	.releasedir = lfs_releasedir,
	.fsyncdir = lfs_fsyncdir,
	.statfs = lfs_statfs,
	.setxattr = lfs_setxattr,
	.getxattr = lfs_getxattr,
	.listxattr = lfs_listxattr,
	.removexattr = lfs_removexattr,
};
