/*
 * catalog/ns.c — the namespace: names, directories, links, attributes.
 *
 * Every operation here runs under meta_lock() from its first lookup to its
 * commit, so each is atomic as seen by every other operation (rename is
 * one transaction: another process sees the old name or the new one,
 * never neither). Inodes an operation changes are pinned with inode_get()
 * before the change and put after meta_unlock(): putting the last
 * reference may destroy an unlinked inode, which takes the lock itself.
 *
 * In-memory attributes (inode->md) are changed first and rolled back from
 * a saved copy if the commit fails, so memory never runs ahead of the
 * metadata. Inode records are written with the committed size, not the
 * live one: a rename must not publish the size of data not yet committed.
 *
 * Names: 1..255 bytes, no '/', not "." or ".." (the kernel resolves those).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#include "catalog/vfs_int.h"
#include "util/log.h"
#include "util/util.h"

#define XATTR_NAME_MAX_LEN 255
#define XATTR_VALUE_MAX (64 * 1024)

static int check_name(const char *name)
{
	size_t n = strnlen(name, META_NAME_MAX + 1);

	if (n == 0)
		return -ENOENT;
	if (n > META_NAME_MAX)
		return -ENAMETOOLONG;
	if (strchr(name, '/'))
		return -EINVAL;
	return 0;
}

static void put_md(struct meta_txn *t, struct inode *in)
{
	struct meta_inode md;

	inode_md_for_commit(in, &md);
	meta_txn_put_inode(t, &md);
}

/* Pin a directory for a change; -ENOTDIR/-ENOENT as the kernel expects. */
static struct inode *get_dir(struct vfs *v, uint64_t ino, int *err)
{
	struct inode *in = inode_get(v, ino, err);

	if (!in)
		return NULL;
	if (!S_ISDIR(in->md.mode)) {
		*err = -ENOTDIR;
		inode_put(v, in);
		return NULL;
	}
	return in;
}

static void stat_and_ref(struct vfs *v, struct inode *in, struct stat *st)
{
	meta_lock(v->meta);
	inode_fill_stat(v, &in->md, st);
	meta_unlock(v->meta);
	inode_ref_lookup(v, in);
}

int vfs_lookup(struct vfs *v, uint64_t parent, const char *name, struct stat *st)
{
	uint64_t ino;
	struct inode *in;
	int err = check_name(name);

	if (err < 0)
		return err;
	err = meta_lookup(v->meta, parent, name, &ino, NULL, NULL);
	if (err < 0)
		return err;
	in = inode_get(v, ino, &err);
	if (!in)
		return err == -ENOENT ? -EIO : err;
	stat_and_ref(v, in, st);
	inode_put(v, in);
	return 0;
}

/* Create a new inode named name in parent. */
static int ns_new(struct vfs *v, const struct vfs_ctx *c, uint64_t parent,
		  const char *name, mode_t mode, dev_t rdev, const char *target,
		  struct stat *st)
{
	struct inode *dir, *in;
	struct meta_inode md = { 0 }, saved;
	struct meta_txn *t;
	struct timespec now = now_ts();
	uint64_t ino, cookie;
	int err = check_name(name);

	if (err < 0)
		return err;
	dir = get_dir(v, parent, &err);
	if (!dir)
		return err;
	meta_lock(v->meta);
	if (dir->md.nlink == 0) {
		err = -ENOENT;
		goto out;
	}
	err = meta_lookup(v->meta, parent, name, &ino, NULL, NULL);
	if (err == 0) {
		err = -EEXIST;
		goto out;
	}
	if (err != -ENOENT)
		goto out;
	saved = dir->md;
	t = meta_txn_begin(v->meta);
	md.ino = meta_txn_alloc_ino(t);
	md.mode = (uint32_t)(S_ISLNK(mode) ? mode : mode & ~(c->umask & 0777));
	md.uid = c->uid;
	md.gid = c->gid;
	if (dir->md.mode & S_ISGID) {
		md.gid = dir->md.gid;
		if (S_ISDIR(mode))
			md.mode |= S_ISGID;
	}
	md.nlink = S_ISDIR(mode) ? 2 : 1;
	md.rdev = rdev;
	md.atime = md.mtime = md.ctime = now;
	if (S_ISDIR(mode)) {
		md.parent = parent;
		md.next_cookie = 3;
	}
	if (target) {
		md.size = strlen(target);
		meta_txn_put_symlink(t, md.ino, target);
	}
	cookie = dir->md.next_cookie++;
	dir->md.mtime = dir->md.ctime = now;
	if (S_ISDIR(mode))
		dir->md.nlink++;
	meta_txn_put_inode(t, &md);
	meta_txn_put_dirent(t, parent, name, md.ino, md.mode, cookie);
	meta_txn_count(t, md.mode, 1);
	put_md(t, dir);
	err = meta_txn_commit(t, 0, NULL);
	if (err < 0)
		dir->md = saved;
out:
	meta_unlock(v->meta);
	inode_put(v, dir);
	if (err < 0)
		return err;
	in = inode_get_new(v, &md, &err);
	if (!in)
		return err;
	stat_and_ref(v, in, st);
	inode_put(v, in);
	return 0;
}

int vfs_mknod(struct vfs *v, const struct vfs_ctx *c, uint64_t parent,
	      const char *name, mode_t mode, dev_t rdev, struct stat *st)
{
	if (S_ISDIR(mode) || S_ISLNK(mode))
		return -EINVAL;
	if ((mode & S_IFMT) == 0)
		mode |= S_IFREG;
	return ns_new(v, c, parent, name, mode, rdev, NULL, st);
}

int vfs_mkdir(struct vfs *v, const struct vfs_ctx *c, uint64_t parent,
	      const char *name, mode_t mode, struct stat *st)
{
	return ns_new(v, c, parent, name, (mode & 07777) | S_IFDIR, 0, NULL, st);
}

int vfs_symlink(struct vfs *v, const struct vfs_ctx *c, uint64_t parent,
		const char *name, const char *target, struct stat *st)
{
	size_t n = strlen(target);

	if (n == 0)
		return -ENOENT;
	if (n >= 4096)
		return -ENAMETOOLONG;
	return ns_new(v, c, parent, name, S_IFLNK | 0777, 0, target, st);
}

int vfs_readlink(struct vfs *v, uint64_t ino, char **target)
{
	return meta_get_symlink(v->meta, ino, target);
}

int vfs_link(struct vfs *v, uint64_t ino, uint64_t parent, const char *name,
	     struct stat *st)
{
	struct inode *dir, *in;
	struct meta_inode sdir, sin;
	struct meta_txn *t;
	struct timespec now = now_ts();
	uint64_t other, cookie;
	int err = check_name(name);

	if (err < 0)
		return err;
	dir = get_dir(v, parent, &err);
	if (!dir)
		return err;
	in = inode_get(v, ino, &err);
	if (!in) {
		inode_put(v, dir);
		return err;
	}
	meta_lock(v->meta);
	if (S_ISDIR(in->md.mode)) {
		err = -EPERM;
		goto out;
	}
	if (in->md.nlink == 0 || dir->md.nlink == 0) {
		err = -ENOENT;
		goto out;
	}
	if (in->md.nlink >= 65000) {
		err = -EMLINK;
		goto out;
	}
	err = meta_lookup(v->meta, parent, name, &other, NULL, NULL);
	if (err == 0)
		err = -EEXIST;
	if (err != -ENOENT)
		goto out;
	sdir = dir->md;
	sin = in->md;
	t = meta_txn_begin(v->meta);
	cookie = dir->md.next_cookie++;
	dir->md.mtime = dir->md.ctime = now;
	in->md.nlink++;
	in->md.ctime = now;
	meta_txn_put_dirent(t, parent, name, ino, in->md.mode, cookie);
	put_md(t, dir);
	put_md(t, in);
	err = meta_txn_commit(t, 0, NULL);
	if (err < 0) {
		dir->md = sdir;
		in->md = sin;
	}
out:
	meta_unlock(v->meta);
	if (err == 0)
		stat_and_ref(v, in, st);
	inode_put(v, in);
	inode_put(v, dir);
	return err;
}

/* Drop one link of victim inside t (meta_lock held). */
static void drop_link(struct meta_txn *t, struct inode *victim, struct timespec now)
{
	if (S_ISDIR(victim->md.mode))
		victim->md.nlink = 0;
	else
		victim->md.nlink--;
	victim->md.ctime = now;
	if (victim->md.nlink == 0) {
		meta_txn_orphan(t, victim->ino, 1);
		meta_txn_count(t, victim->md.mode, -1);
	}
	put_md(t, victim);
}

static int ns_remove(struct vfs *v, uint64_t parent, const char *name, int isdir)
{
	struct inode *dir, *in = NULL;
	struct meta_inode sdir, sin;
	struct meta_txn *t;
	struct timespec now = now_ts();
	uint64_t ino, cookie;
	uint32_t mode;
	int err = check_name(name);

	if (err < 0)
		return err;
	dir = get_dir(v, parent, &err);
	if (!dir)
		return err;
	meta_lock(v->meta);
	err = meta_lookup(v->meta, parent, name, &ino, &mode, &cookie);
	if (err < 0)
		goto out;
	if (isdir && !S_ISDIR(mode)) {
		err = -ENOTDIR;
		goto out;
	}
	if (!isdir && S_ISDIR(mode)) {
		err = -EISDIR;
		goto out;
	}
	if (isdir) {
		err = meta_dir_is_empty(v->meta, ino);
		if (err <= 0) {
			err = err == 0 ? -ENOTEMPTY : err;
			goto out;
		}
	}
	in = inode_get(v, ino, &err);
	if (!in)
		goto out;
	sdir = dir->md;
	sin = in->md;
	t = meta_txn_begin(v->meta);
	meta_txn_del_dirent(t, parent, name, cookie);
	drop_link(t, in, now);
	dir->md.mtime = dir->md.ctime = now;
	if (isdir)
		dir->md.nlink--;
	put_md(t, dir);
	err = meta_txn_commit(t, 0, NULL);
	if (err < 0) {
		dir->md = sdir;
		in->md = sin;
	}
out:
	meta_unlock(v->meta);
	if (in)
		inode_put(v, in);
	inode_put(v, dir);
	return err;
}

int vfs_unlink(struct vfs *v, uint64_t parent, const char *name)
{
	return ns_remove(v, parent, name, 0);
}

int vfs_rmdir(struct vfs *v, uint64_t parent, const char *name)
{
	if (strcmp(name, ".") == 0)
		return -EINVAL;
	if (strcmp(name, "..") == 0)
		return -ENOTEMPTY;
	return ns_remove(v, parent, name, 1);
}

/* Is dir `anc` an ancestor of (or equal to) dir `ino`? meta_lock held. */
static int is_ancestor(struct vfs *v, uint64_t anc, uint64_t ino)
{
	for (int depth = 0; depth < 4096; depth++) {
		struct meta_inode md;

		if (ino == anc)
			return 1;
		if (ino == META_ROOT_INO)
			return 0;
		if (meta_get_inode(v->meta, ino, &md) < 0)
			return 0;
		ino = md.parent;
	}
	return 1;	/* a loop: refuse */
}

int vfs_rename(struct vfs *v, uint64_t parent, const char *name,
	       uint64_t newparent, const char *newname, unsigned flags)
{
	struct inode *odir = NULL, *ndir = NULL, *src = NULL, *dst = NULL;
	struct meta_inode s_odir, s_ndir, s_src, s_dst;
	struct meta_txn *t;
	struct timespec now = now_ts();
	uint64_t sino, scookie, dino = 0, dcookie = 0;
	uint32_t smode, dmode = 0;
	int err, have_dst;

	if ((err = check_name(name)) < 0 || (err = check_name(newname)) < 0)
		return err;
	if ((flags & VFS_RENAME_EXCHANGE) && (flags & VFS_RENAME_NOREPLACE))
		return -EINVAL;
	odir = get_dir(v, parent, &err);
	if (!odir)
		return err;
	ndir = newparent == parent ? NULL : get_dir(v, newparent, &err);
	if (newparent != parent && !ndir) {
		inode_put(v, odir);
		return err;
	}
	meta_lock(v->meta);
	err = meta_lookup(v->meta, parent, name, &sino, &smode, &scookie);
	if (err < 0)
		goto out;
	have_dst = meta_lookup(v->meta, newparent, newname, &dino, &dmode, &dcookie);
	if (have_dst < 0 && have_dst != -ENOENT) {
		err = have_dst;
		goto out;
	}
	have_dst = have_dst == 0;
	if (have_dst && (flags & VFS_RENAME_NOREPLACE)) {
		err = -EEXIST;
		goto out;
	}
	if (!have_dst && (flags & VFS_RENAME_EXCHANGE)) {
		err = -ENOENT;
		goto out;
	}
	if (have_dst && dino == sino) {
		err = 0;	/* two names of one inode: nothing to do */
		goto out;
	}
	if (S_ISDIR(smode) && newparent != parent &&
	    is_ancestor(v, sino, newparent)) {
		err = -EINVAL;
		goto out;
	}
	if ((flags & VFS_RENAME_EXCHANGE) && S_ISDIR(dmode) &&
	    newparent != parent && is_ancestor(v, dino, parent)) {
		err = -EINVAL;
		goto out;
	}
	if (have_dst && !(flags & VFS_RENAME_EXCHANGE)) {
		if (S_ISDIR(smode) && !S_ISDIR(dmode)) {
			err = -ENOTDIR;
			goto out;
		}
		if (!S_ISDIR(smode) && S_ISDIR(dmode)) {
			err = -EISDIR;
			goto out;
		}
		if (S_ISDIR(dmode)) {
			err = meta_dir_is_empty(v->meta, dino);
			if (err <= 0) {
				err = err == 0 ? -ENOTEMPTY : err;
				goto out;
			}
		}
	}
	src = inode_get(v, sino, &err);
	if (!src)
		goto out;
	if (have_dst) {
		dst = inode_get(v, dino, &err);
		if (!dst)
			goto out;
	}
	if (!ndir)
		ndir = odir;
	s_odir = odir->md;
	s_ndir = ndir->md;
	s_src = src->md;
	if (dst)
		s_dst = dst->md;
	t = meta_txn_begin(v->meta);
	if (flags & VFS_RENAME_EXCHANGE) {
		/* each name keeps its place in its directory's listing */
		meta_txn_put_dirent(t, parent, name, dino, dmode, scookie);
		meta_txn_put_dirent(t, newparent, newname, sino, smode, dcookie);
		if (parent != newparent) {
			if (S_ISDIR(smode)) {
				src->md.parent = newparent;
				odir->md.nlink--;
				ndir->md.nlink++;
			}
			if (S_ISDIR(dmode)) {
				dst->md.parent = parent;
				ndir->md.nlink--;
				odir->md.nlink++;
			}
		}
		dst->md.ctime = now;
		put_md(t, dst);
	} else {
		uint64_t cookie;

		if (dst) {
			meta_txn_del_dirent(t, newparent, newname, dcookie);
			drop_link(t, dst, now);
			if (S_ISDIR(dmode))
				ndir->md.nlink--;
		}
		meta_txn_del_dirent(t, parent, name, scookie);
		cookie = ndir->md.next_cookie++;
		meta_txn_put_dirent(t, newparent, newname, sino, smode, cookie);
		if (S_ISDIR(smode) && parent != newparent) {
			src->md.parent = newparent;
			odir->md.nlink--;
			ndir->md.nlink++;
		}
	}
	src->md.ctime = now;
	odir->md.mtime = odir->md.ctime = now;
	ndir->md.mtime = ndir->md.ctime = now;
	put_md(t, src);
	put_md(t, odir);
	if (ndir != odir)
		put_md(t, ndir);
	err = meta_txn_commit(t, 0, NULL);
	if (err < 0) {
		odir->md = s_odir;
		ndir->md = s_ndir;
		src->md = s_src;
		if (dst)
			dst->md = s_dst;
	}
	if (ndir == odir)
		ndir = NULL;
out:
	meta_unlock(v->meta);
	if (dst)
		inode_put(v, dst);
	if (src)
		inode_put(v, src);
	if (ndir)
		inode_put(v, ndir);
	inode_put(v, odir);
	return err;
}

struct readdir_state {
	vfs_dirent_fn fn;
	void *arg;
	int full;
};

static int readdir_one(void *arg, const char *name, uint64_t ino,
		       uint32_t mode, uint64_t cookie)
{
	struct readdir_state *rs = arg;

	rs->full = rs->fn(rs->arg, name, ino, mode, cookie + 1);
	return rs->full;
}

int vfs_readdir(struct vfs *v, uint64_t ino, uint64_t off, vfs_dirent_fn fn,
		void *arg)
{
	struct readdir_state rs = { fn, arg, 0 };
	struct meta_inode md;
	int err = meta_get_inode(v->meta, ino, &md);

	if (err < 0)
		return err;
	if (!S_ISDIR(md.mode))
		return -ENOTDIR;
	if (off == 0 && fn(arg, ".", ino, S_IFDIR, 1))
		return 0;
	if (off <= 1 && fn(arg, "..", md.parent, S_IFDIR, 2))
		return 0;
	if (off <= 2 && ino == META_ROOT_INO && v->root_extra &&
	    fn(arg, v->root_extra, v->root_extra_ino, S_IFDIR, 3))
		return 0;
	return meta_readdir(v->meta, ino, MAX(off, 3), readdir_one, &rs);
}

int vfs_setattr(struct vfs *v, uint64_t ino, const struct stat *a, int to_set,
		struct stat *out)
{
	struct inode *in;
	struct meta_inode saved;
	struct meta_txn *t;
	struct timespec now = now_ts();
	int err = 0;

	in = inode_get(v, ino, &err);
	if (!in)
		return err;
	if (to_set & VFS_SET_SIZE) {
		if (S_ISDIR(in->md.mode))
			err = -EISDIR;
		else if (!S_ISREG(in->md.mode))
			err = -EINVAL;
		else if (a->st_size < 0)
			err = -EINVAL;
		if (err == 0) {
			pthread_mutex_lock(&in->lock);
			if ((uint64_t)a->st_size != in->md.size)
				err = inode_truncate_locked(v, in, (uint64_t)a->st_size);
			else {
				meta_lock(v->meta);
				in->md.mtime = in->md.ctime = now;
				in->meta_dirty = 1;
				meta_unlock(v->meta);
			}
			pthread_mutex_unlock(&in->lock);
		}
		if (err < 0)
			goto out_put;
	}
	meta_lock(v->meta);
	saved = in->md;
	if (to_set & VFS_SET_MODE)
		in->md.mode = (in->md.mode & S_IFMT) | (a->st_mode & 07777);
	if (to_set & (VFS_SET_UID | VFS_SET_GID)) {
		if (to_set & VFS_SET_UID)
			in->md.uid = a->st_uid;
		if (to_set & VFS_SET_GID)
			in->md.gid = a->st_gid;
		if (!S_ISDIR(in->md.mode) && !(to_set & VFS_SET_MODE)) {
			in->md.mode &= ~(uint32_t)S_ISUID;
			if (in->md.mode & S_IXGRP)
				in->md.mode &= ~(uint32_t)S_ISGID;
		}
	}
	if (to_set & VFS_SET_ATIME_NOW)
		in->md.atime = now;
	else if (to_set & VFS_SET_ATIME)
		in->md.atime = a->st_atim;
	if (to_set & VFS_SET_MTIME_NOW)
		in->md.mtime = now;
	else if (to_set & VFS_SET_MTIME)
		in->md.mtime = a->st_mtim;
	if (to_set & VFS_SET_CTIME)
		in->md.ctime = a->st_ctim;
	else if (to_set & ~VFS_SET_SIZE)
		in->md.ctime = now;
	if (to_set & ~VFS_SET_SIZE) {
		t = meta_txn_begin(v->meta);
		put_md(t, in);
		err = meta_txn_commit(t, 0, NULL);
		if (err < 0)
			in->md = saved;
	}
	if (err == 0)
		inode_fill_stat(v, &in->md, out);
	meta_unlock(v->meta);
out_put:
	inode_put(v, in);
	return err;
}

/* ---- extended attributes ---- */

static int check_xattr_name(const char *name)
{
	size_t n = strnlen(name, XATTR_NAME_MAX_LEN + 1);

	if (n == 0)
		return -EINVAL;
	if (n > XATTR_NAME_MAX_LEN)
		return -ERANGE;
	if (strncmp(name, "user.", 5) != 0 && strncmp(name, "trusted.", 8) != 0)
		return -EOPNOTSUPP;
	return 0;
}

/*
 * Reading a name lakefs does not store: "no ACL" is ENODATA (the kernel
 * caches it per inode); security.* (SELinux labels, file capabilities) is
 * EOPNOTSUPP, which tools such as ls(1) remember per filesystem instead of
 * asking again for every file.
 */
static int unsupported_get(const char *name)
{
	return strncmp(name, "system.posix_acl_", 17) == 0 ? -ENODATA : -EOPNOTSUPP;
}

int vfs_setxattr(struct vfs *v, uint64_t ino, const char *name,
		 const void *val, size_t len, int flags)
{
	struct inode *in;
	struct meta_inode saved;
	struct meta_txn *t;
	void *old = NULL;
	size_t oldlen;
	int err = check_xattr_name(name), have;

	if (err < 0)
		return err;
	if (len > XATTR_VALUE_MAX)
		return -E2BIG;
	in = inode_get(v, ino, &err);
	if (!in)
		return err;
	meta_lock(v->meta);
	if (strncmp(name, "user.", 5) == 0 && !S_ISREG(in->md.mode) &&
	    !S_ISDIR(in->md.mode)) {
		err = -EPERM;
		goto out;
	}
	have = meta_get_xattr(v->meta, ino, name, &old, &oldlen);
	free(old);
	if (have < 0 && have != -ENODATA) {
		err = have;
		goto out;
	}
	if ((flags & XATTR_CREATE) && have == 0) {
		err = -EEXIST;
		goto out;
	}
	if ((flags & XATTR_REPLACE) && have != 0) {
		err = -ENODATA;
		goto out;
	}
	saved = in->md;
	in->md.ctime = now_ts();
	t = meta_txn_begin(v->meta);
	meta_txn_put_xattr(t, ino, name, val, len);
	put_md(t, in);
	err = meta_txn_commit(t, 0, NULL);
	if (err < 0)
		in->md = saved;
out:
	meta_unlock(v->meta);
	inode_put(v, in);
	return err;
}

/* The getxattr(2)/listxattr(2) answer for val (freed here): its length
 * when size is 0, else a copy into buf, or -ERANGE if buf is too small. */
static ssize_t xattr_reply(void *val, size_t len, void *buf, size_t size)
{
	ssize_t ret = (ssize_t)len;

	if (size > 0 && len > size)
		ret = -ERANGE;
	else if (size > 0)
		memcpy(buf, val, len);
	free(val);
	return ret;
}

ssize_t vfs_getxattr(struct vfs *v, uint64_t ino, const char *name,
		     void *buf, size_t size)
{
	void *val;
	size_t len;
	int err = check_xattr_name(name);

	if (err == -EOPNOTSUPP)
		return unsupported_get(name);
	if (err < 0)
		return err;
	err = meta_get_xattr(v->meta, ino, name, &val, &len);
	if (err < 0)
		return err;
	return xattr_reply(val, len, buf, size);
}

ssize_t vfs_listxattr(struct vfs *v, uint64_t ino, char *buf, size_t size)
{
	char *names;
	size_t len;
	int err = meta_list_xattr(v->meta, ino, &names, &len);

	if (err < 0)
		return err;
	return xattr_reply(names, len, buf, size);
}

int vfs_removexattr(struct vfs *v, uint64_t ino, const char *name)
{
	struct inode *in;
	struct meta_inode saved;
	struct meta_txn *t;
	void *old = NULL;
	size_t oldlen;
	int err = check_xattr_name(name);

	if (err == -EOPNOTSUPP)
		return unsupported_get(name);
	if (err < 0)
		return err;
	in = inode_get(v, ino, &err);
	if (!in)
		return err;
	meta_lock(v->meta);
	err = meta_get_xattr(v->meta, ino, name, &old, &oldlen);
	free(old);
	if (err == 0) {
		saved = in->md;
		in->md.ctime = now_ts();
		t = meta_txn_begin(v->meta);
		meta_txn_del_xattr(t, ino, name);
		put_md(t, in);
		err = meta_txn_commit(t, 0, NULL);
		if (err < 0)
			in->md = saved;
	}
	meta_unlock(v->meta);
	inode_put(v, in);
	return err;
}

int vfs_statfs(struct vfs *v, struct statvfs *st)
{
	struct meta_counters c;
	struct statvfs sv;
	uint64_t res_blocks, used;

	if (statvfs(v->state_dir, &sv) < 0)
		return -errno;
	meta_counters(v->meta, &c);
	memset(st, 0, sizeof(*st));
	st->f_bsize = sv.f_bsize;
	st->f_frsize = sv.f_frsize;
	st->f_blocks = sv.f_blocks;
	res_blocks = v->reserve / (sv.f_frsize ? sv.f_frsize : 4096);
	st->f_bfree = sv.f_bfree > res_blocks ? sv.f_bfree - res_blocks : 0;
	st->f_bavail = sv.f_bavail > res_blocks ? sv.f_bavail - res_blocks : 0;
	used = c.files + c.dirs + c.symlinks + c.others;
	st->f_ffree = sv.f_favail;
	st->f_favail = sv.f_favail;
	st->f_files = used + sv.f_favail;
	st->f_namemax = META_NAME_MAX;
	return 0;
}

/* ---- publishing a version (the lake engine) ---- */

struct pub_pin {
	struct inode *in;
	struct meta_inode saved;
};

static struct inode *pub_pin(struct vfs *v, struct pub_pin *pins, size_t *np,
			     uint64_t ino, int *err)
{
	struct inode *in;

	for (size_t i = 0; i < *np; i++)
		if (pins[i].in->ino == ino)
			return pins[i].in;
	in = inode_get(v, ino, err);
	if (!in)
		return NULL;
	pins[*np].in = in;
	pins[(*np)++].saved = in->md;	/* meta_lock is held by the caller */
	return in;
}

int vfs_publish(struct vfs *v, const struct vfs_link_req *l, size_t nl,
		const struct vfs_kv *kv, size_t nkv)
{
	struct pub_pin *pins = calloc(3 * nl + 1, sizeof(*pins));
	struct timespec now = now_ts();
	struct meta_txn *t = NULL;
	size_t np = 0;
	int err = 0;

	if (!pins)
		return -ENOMEM;
	meta_lock(v->meta);
	t = meta_txn_begin(v->meta);
	for (size_t i = 0; err == 0 && i < nl; i++) {
		struct inode *dir, *in = NULL, *victim = NULL;
		uint64_t old, cookie;
		uint32_t omode;
		int have;

		err = check_name(l[i].name);
		if (err < 0)
			break;
		dir = pub_pin(v, pins, &np, l[i].dir, &err);
		if (!dir)
			break;
		if (!S_ISDIR(dir->md.mode) || dir->md.nlink == 0) {
			err = -ENOTDIR;
			break;
		}
		if (l[i].ino) {
			in = pub_pin(v, pins, &np, l[i].ino, &err);
			if (!in)
				break;
			if (!S_ISREG(in->md.mode) || in->md.nlink != 0) {
				err = -EINVAL;	/* only unnamed files */
				break;
			}
		}
		have = meta_lookup(v->meta, l[i].dir, l[i].name, &old, &omode, &cookie);
		if (have < 0 && have != -ENOENT) {
			err = have;
			break;
		}
		if (have == 0) {
			if (S_ISDIR(omode)) {
				err = -EISDIR;
				break;
			}
			victim = pub_pin(v, pins, &np, old, &err);
			if (!victim)
				break;
			meta_txn_del_dirent(t, l[i].dir, l[i].name, cookie);
			drop_link(t, victim, now);
		}
		if (in) {
			in->md.nlink = 1;
			in->md.ctime = now;
			meta_txn_orphan(t, in->ino, 0);
			meta_txn_count(t, in->md.mode, 1);
			meta_txn_put_dirent(t, l[i].dir, l[i].name, in->ino,
					    in->md.mode, dir->md.next_cookie++);
			put_md(t, in);
		}
		if (in || victim) {
			dir->md.mtime = dir->md.ctime = now;
			put_md(t, dir);
		}
	}
	for (size_t i = 0; err == 0 && i < nkv; i++) {
		if (kv[i].val)
			meta_txn_put_kv(t, kv[i].name, kv[i].val, kv[i].len);
		else
			meta_txn_del_kv(t, kv[i].name);
	}
	if (err == 0)
		err = meta_txn_commit(t, 1, NULL);
	else
		meta_txn_abort(t);
	if (err < 0)
		for (size_t i = 0; i < np; i++)
			pins[i].in->md = pins[i].saved;
	meta_unlock(v->meta);
	for (size_t i = 0; i < np; i++)
		inode_put(v, pins[i].in);
	free(pins);
	if (err == 0 && v->entry_changed)
		for (size_t i = 0; i < nl; i++)
			v->entry_changed(v->entry_changed_arg, l[i].dir, l[i].name);
	return err;
}
