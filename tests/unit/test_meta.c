/*
 * tests/unit/test_meta.c — catalog/meta.c: superblock and lock, inodes,
 * directory entries and readdir order, symlinks, xattrs, block reference
 * counts and counters, orphans, abort, reopen, and crash atomicity (a child
 * committing transactions is killed with SIGKILL; every transaction must be
 * all there or not at all).
 *
 * The crash child is this same program run again as
 * "test_meta --crash-child DIR FD" (a fresh exec, so that LevelDB's
 * background thread exists in it).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "catalog/meta.h"
#include "tests/unit/tap.h"
#include "util/util.h"

#define BSIZE 65536u

static char top[] = "/tmp/lakefs-unit-meta.XXXXXX";

static struct meta_inode mk_inode(uint64_t ino, uint32_t mode, uint32_t nlink)
{
	struct meta_inode in = { 0 };

	in.ino = ino;
	in.mode = mode;
	in.uid = 1000;
	in.gid = 100;
	in.nlink = nlink;
	in.atime.tv_sec = 1700000000;
	in.atime.tv_nsec = 1;
	in.mtime.tv_sec = 1700000001;
	in.mtime.tv_nsec = 999999999;
	in.ctime.tv_sec = 1700000002;
	in.ctime.tv_nsec = 500;
	in.parent = META_ROOT_INO;
	in.next_cookie = S_ISDIR(mode) ? 3 : 0;
	return in;
}

static int inode_eq(const struct meta_inode *a, const struct meta_inode *b)
{
	return a->ino == b->ino && a->mode == b->mode && a->uid == b->uid &&
	       a->gid == b->gid && a->nlink == b->nlink && a->size == b->size &&
	       a->rdev == b->rdev && a->atime.tv_sec == b->atime.tv_sec &&
	       a->atime.tv_nsec == b->atime.tv_nsec &&
	       a->mtime.tv_sec == b->mtime.tv_sec &&
	       a->mtime.tv_nsec == b->mtime.tv_nsec &&
	       a->ctime.tv_sec == b->ctime.tv_sec &&
	       a->ctime.tv_nsec == b->ctime.tv_nsec && a->parent == b->parent &&
	       a->next_cookie == b->next_cookie;
}

static int counters_eq(const struct meta_counters *a, const struct meta_counters *b)
{
	return memcmp(a, b, sizeof(*a)) == 0;
}

static void diag_counters(const char *what, const struct meta_counters *c)
{
	diag("%s: files %llu dirs %llu symlinks %llu others %llu blocks %llu "
	     "block_bytes %llu stored_bytes %llu ref_bytes %llu logical %llu", what,
	     (unsigned long long)c->files, (unsigned long long)c->dirs,
	     (unsigned long long)c->symlinks, (unsigned long long)c->others,
	     (unsigned long long)c->blocks, (unsigned long long)c->block_bytes,
	     (unsigned long long)c->stored_bytes, (unsigned long long)c->ref_bytes,
	     (unsigned long long)c->logical_bytes);
}

static struct bs_hash hash_of_str(const char *s)
{
	struct bs_hash h;

	bs_hash_of(s, strlen(s), &h);
	return h;
}

static int hash_eq(const struct bs_hash *a, const struct bs_hash *b)
{
	return memcmp(a->b, b->b, BS_HASH_LEN) == 0;
}

/* ---- readdir and block collectors ---- */

struct dlist {
	char name[64][META_NAME_MAX + 1];
	uint64_t ino[64], cookie[64];
	uint32_t mode[64];
	int n, stop_after;
};

static int dlist_fn(void *arg, const char *name, uint64_t ino, uint32_t mode,
		    uint64_t cookie)
{
	struct dlist *d = arg;

	if (d->n < 64) {
		snprintf(d->name[d->n], sizeof(d->name[d->n]), "%s", name);
		d->ino[d->n] = ino;
		d->mode[d->n] = mode;
		d->cookie[d->n] = cookie;
	}
	d->n++;
	return d->stop_after && d->n >= d->stop_after;
}

static void dlist_join(const struct dlist *d, char *out, size_t cap)
{
	size_t used = 0;

	out[0] = '\0';
	for (int i = 0; i < d->n && i < 64; i++)
		used += (size_t)snprintf(out + used, used < cap ? cap - used : 0,
					 "%s%s", i ? "," : "", d->name[i]);
}

/* one page of a paged readdir */
struct page {
	int n, limit, inorder;
	uint64_t first, last;
};

static int page_fn(void *arg, const char *name, uint64_t ino, uint32_t mode,
		   uint64_t cookie)
{
	struct page *p = arg;

	(void)name;
	(void)ino;
	(void)mode;
	if (p->n == 0)
		p->first = cookie;
	else if (cookie <= p->last)
		p->inorder = 0;
	p->last = cookie;
	return ++p->n >= p->limit;
}

struct blist {
	uint64_t idx[32];
	struct bs_hash h[32];
	int n, stop_after;
};

static int blist_fn(void *arg, uint64_t idx, const struct bs_hash *h)
{
	struct blist *b = arg;

	if (b->n < 32) {
		b->idx[b->n] = idx;
		b->h[b->n] = *h;
	}
	b->n++;
	return b->stop_after && b->n >= b->stop_after;
}

struct olist {
	uint64_t ino[16];
	int n, stop_after;
};

static int olist_fn(void *arg, uint64_t ino)
{
	struct olist *o = arg;

	if (o->n < 16)
		o->ino[o->n] = ino;
	o->n++;
	return o->stop_after && o->n >= o->stop_after ? 7 : 0;
}

/* ---- the tests ---- */

static struct meta *open_ok(const char *dir, uint32_t bsize, const char *what)
{
	struct meta *m = NULL;
	char *err = NULL;
	int r = meta_open(&m, dir, bsize, &err);

	if (!ok(r == 0 && m, "meta_open %s", what))
		bail_out("meta_open %s: %d %s", dir, r, err ? err : "");
	free(err);
	return m;
}

static int commit(struct meta *m, struct meta_txn *t, struct meta_freed *freed)
{
	int r = meta_txn_commit(t, 1, freed);

	meta_unlock(m);
	return r;
}

static void test_open(const char *dir, struct meta **mp)
{
	struct meta *m = open_ok(dir, BSIZE, "on a new directory"), *m2 = NULL;
	const struct meta_super *s = meta_super(m);
	struct meta_inode root;
	struct meta_counters c;
	char *err = NULL, path[4200];
	struct stat st;
	int r;

	is_int(s->format, 1, "superblock format 1");
	is_int(s->block_size, BSIZE, "superblock keeps the block size");
	is_int(s->next_ino, META_FIRST_INO, "next_ino starts at META_FIRST_INO");
	ok(s->created_ns > 0, "superblock has a creation time");
	snprintf(path, sizeof(path), "%s/meta", dir);
	ok(stat(path, &st) == 0 && S_ISDIR(st.st_mode), "DIR/meta holds LevelDB");
	snprintf(path, sizeof(path), "%s/lock", dir);
	ok(stat(path, &st) == 0, "DIR/lock exists");

	r = meta_get_inode(m, META_ROOT_INO, &root);
	is_int(r, 0, "root inode 1 exists");
	ok(r == 0 && S_ISDIR(root.mode), "root is a directory");
	is_int(root.nlink, 2, "root has nlink 2");
	is_int(root.ino, META_ROOT_INO, "root's ino is 1");
	is_int(root.parent, META_ROOT_INO, "root is its own parent");
	is_int(meta_dir_is_empty(m, META_ROOT_INO), 1, "root is empty");
	meta_counters(m, &c);
	ok(c.dirs == 1 && c.files == 0 && c.blocks == 0 && c.stored_bytes == 0,
	   "counters of a new filesystem: one directory, nothing else");

	r = meta_open(&m2, dir, BSIZE, &err);
	is_int(r, -EBUSY, "a second meta_open of the same directory is -EBUSY");
	ok(err && strstr(err, "in use"), "its message says the state is in use (%s)",
	   err ? err : "no message");
	ok(err && strstr(err, dir), "its message names the directory");
	{
		char pid[32];

		snprintf(pid, sizeof(pid), "%d", (int)getpid());
		ok(err && strstr(err, pid), "its message names the holder's pid");
	}
	free(err);
	err = NULL;
	r = meta_open(&m2, dir, BSIZE, &err);
	is_int(r, -EBUSY, "a failed second open does not release the first one's lock");
	free(err);
	err = NULL;

	snprintf(path, sizeof(path), "%s/lock/sub", dir);
	m2 = NULL;
	r = meta_open(&m2, path, BSIZE, &err);
	ok(r < 0 && err && *err, "meta_open under a regular file fails with a message");
	free(err);
	*mp = m;
}

static void test_inode_dirent(struct meta *m)
{
	struct meta_txn *t;
	struct meta_inode in, got;
	struct meta_counters before, after;
	uint64_t ino = 0, cookie = 0;
	uint32_t mode = 0;
	int r;

	meta_counters(m, &before);
	meta_lock(m);
	t = meta_txn_begin(m);
	in = mk_inode(meta_txn_alloc_ino(t), S_IFREG | 0644, 1);
	is_int(in.ino, META_FIRST_INO, "the first allocated inode is META_FIRST_INO");
	in.size = 12345;
	in.rdev = 0x1234567890ull;
	in.atime.tv_sec = -5;		/* before 1970 */
	in.atime.tv_nsec = 999999999;
	meta_txn_put_inode(t, &in);
	meta_txn_put_dirent(t, META_ROOT_INO, "hello.txt", in.ino, in.mode, 3);
	meta_txn_count(t, in.mode, 1);
	meta_txn_logical(t, 0, in.size);
	is_int(meta_lookup(m, META_ROOT_INO, "hello.txt", &ino, &mode, &cookie), -ENOENT,
	       "an uncommitted entry is not visible");
	is_int(meta_get_inode(m, in.ino, &got), -ENOENT,
	       "an uncommitted inode is not visible");
	is_int(commit(m, t, NULL), 0, "commit an inode and its entry");

	r = meta_lookup(m, META_ROOT_INO, "hello.txt", &ino, &mode, &cookie);
	is_int(r, 0, "meta_lookup finds the entry");
	ok(ino == in.ino && mode == in.mode && cookie == 3,
	   "the entry has the inode, mode and cookie");
	is_int(meta_lookup(m, META_ROOT_INO, "hello.tx", &ino, NULL, NULL), -ENOENT,
	       "a prefix of the name is not found");
	is_int(meta_lookup(m, META_ROOT_INO, "hello.txt2", &ino, NULL, NULL), -ENOENT,
	       "a longer name is not found");
	is_int(meta_lookup(m, in.ino, "hello.txt", &ino, NULL, NULL), -ENOENT,
	       "the name in another directory is not found");
	r = meta_get_inode(m, in.ino, &got);
	is_int(r, 0, "meta_get_inode sees the committed inode");
	ok(r == 0 && inode_eq(&got, &in), "every inode field round-trips");
	is_int(meta_dir_is_empty(m, META_ROOT_INO), 0, "root is no longer empty");
	is_int(meta_super(m)->next_ino, META_FIRST_INO + 1, "next_ino advanced");

	meta_counters(m, &after);
	is_int(after.files, before.files + 1, "files counter +1");
	is_int(after.logical_bytes, before.logical_bytes + 12345, "logical bytes +12345");
	is_int(meta_sync(m), 0, "meta_sync");
}

static void test_readdir(struct meta *m, uint64_t *dirp)
{
	static const char *const names[] = { "e", "d", "c", "b", "a" };
	struct meta_txn *t;
	struct meta_inode dir, empty;
	struct dlist d;
	char joined[2048];
	int all;

	meta_lock(m);
	t = meta_txn_begin(m);
	dir = mk_inode(meta_txn_alloc_ino(t), S_IFDIR | 0755, 2);
	empty = mk_inode(meta_txn_alloc_ino(t), S_IFDIR | 0700, 2);
	meta_txn_put_inode(t, &dir);
	meta_txn_put_inode(t, &empty);
	meta_txn_put_dirent(t, META_ROOT_INO, "sub", dir.ino, dir.mode, 4);
	meta_txn_put_dirent(t, META_ROOT_INO, "empty", empty.ino, empty.mode, 5);
	/* cookies ascending, names descending: readdir must follow cookies */
	for (int i = 0; i < 5; i++)
		meta_txn_put_dirent(t, dir.ino, names[i], 1000 + (uint64_t)i,
				    S_IFREG | 0644, 3 + (uint64_t)i);
	/* 256 > 7 numerically although its first byte is smaller */
	meta_txn_put_dirent(t, dir.ino, "late", 2000, S_IFREG | 0644, 256);
	meta_txn_put_dirent(t, dir.ino, "later", 2001, S_IFIFO | 0644, 65536);
	meta_txn_count(t, S_IFDIR, 2);
	is_int(commit(m, t, NULL), 0, "commit two directories and seven entries");

	memset(&d, 0, sizeof(d));
	is_int(meta_readdir(m, dir.ino, 0, dlist_fn, &d), 0, "meta_readdir from 0");
	dlist_join(&d, joined, sizeof(joined));
	is_str(joined, "e,d,c,b,a,late,later", "readdir lists in cookie order");
	ok(d.n == 7 && d.cookie[0] == 3 && d.cookie[4] == 7 && d.cookie[5] == 256 &&
	   d.cookie[6] == 65536, "readdir reports each entry's cookie");
	all = d.n == 7;
	for (int i = 0; i < 5 && all; i++)
		all = d.ino[i] == 1000 + (uint64_t)i && d.mode[i] == (S_IFREG | 0644);
	ok(all && d.ino[6] == 2001 && d.mode[6] == (S_IFIFO | 0644),
	   "readdir reports each entry's inode and mode");

	memset(&d, 0, sizeof(d));
	meta_readdir(m, dir.ino, 5, dlist_fn, &d);
	dlist_join(&d, joined, sizeof(joined));
	is_str(joined, "c,b,a,late,later", "readdir from cookie 5 resumes there");
	memset(&d, 0, sizeof(d));
	meta_readdir(m, dir.ino, 8, dlist_fn, &d);
	dlist_join(&d, joined, sizeof(joined));
	is_str(joined, "late,later", "readdir from a cookie with no entry resumes after it");
	memset(&d, 0, sizeof(d));
	meta_readdir(m, dir.ino, 65537, dlist_fn, &d);
	is_int(d.n, 0, "readdir past the last cookie lists nothing");
	memset(&d, 0, sizeof(d));
	d.stop_after = 2;
	meta_readdir(m, dir.ino, 0, dlist_fn, &d);
	is_int(d.n, 2, "readdir stops when the callback returns non-zero");

	memset(&d, 0, sizeof(d));
	meta_readdir(m, META_ROOT_INO, 0, dlist_fn, &d);
	dlist_join(&d, joined, sizeof(joined));
	is_str(joined, "hello.txt,sub,empty", "root lists only its own entries");
	memset(&d, 0, sizeof(d));
	meta_readdir(m, empty.ino, 0, dlist_fn, &d);
	is_int(d.n, 0, "an empty directory lists nothing");
	is_int(meta_dir_is_empty(m, empty.ino), 1, "meta_dir_is_empty: empty directory");
	is_int(meta_dir_is_empty(m, dir.ino), 0, "meta_dir_is_empty: directory with entries");

	/* remove "c": gone from lookup and listing; cookie 5 resumes at "b" */
	meta_lock(m);
	t = meta_txn_begin(m);
	meta_txn_del_dirent(t, dir.ino, "c", 5);
	is_int(commit(m, t, NULL), 0, "commit the removal of an entry");
	{
		uint64_t ino;

		is_int(meta_lookup(m, dir.ino, "c", &ino, NULL, NULL), -ENOENT,
		       "a removed entry is not found");
	}
	memset(&d, 0, sizeof(d));
	meta_readdir(m, dir.ino, 5, dlist_fn, &d);
	dlist_join(&d, joined, sizeof(joined));
	is_str(joined, "b,a,late,later", "readdir from a removed cookie resumes after it");

	/* a directory paged through in pages of 100 */
	{
		uint64_t big;
		int pages = 0, seen = 0, inorder = 1;
		uint64_t from = 0, last = 0;

		meta_lock(m);
		t = meta_txn_begin(m);
		big = meta_txn_alloc_ino(t);
		{
			struct meta_inode bi = mk_inode(big, S_IFDIR | 0755, 2);

			meta_txn_put_inode(t, &bi);
		}
		meta_txn_put_dirent(t, META_ROOT_INO, "big", big, S_IFDIR | 0755, 6);
		for (int i = 0; i < 1000; i++) {
			char name[32];

			snprintf(name, sizeof(name), "n%04d", 999 - i);
			meta_txn_put_dirent(t, big, name, 5000 + (uint64_t)i,
					    S_IFREG | 0600, 3 + (uint64_t)i);
		}
		meta_txn_count(t, S_IFDIR, 1);
		is_int(commit(m, t, NULL), 0, "commit a directory of 1000 entries");
		for (;;) {
			struct page pg = { .limit = 100, .last = last, .inorder = 1 };

			meta_readdir(m, big, from, page_fn, &pg);
			if (pg.n == 0)
				break;
			pages++;
			inorder &= pg.inorder && (seen == 0 || pg.first > last);
			seen += pg.n;
			last = pg.last;
			from = last + 1;
		}
		is_int(seen, 1000, "paging readdir sees every entry once");
		is_int(pages, 10, "in ten pages of 100");
		ok(inorder, "in increasing cookie order");
	}
	*dirp = dir.ino;
}

static void test_symlink(struct meta *m, uint64_t *linkp)
{
	struct meta_txn *t;
	struct meta_inode ln;
	char *target = NULL, longt[4001];
	uint64_t ln2;
	int r;

	memset(longt, 'x', 4000);
	longt[4000] = '\0';
	longt[0] = '/';
	meta_lock(m);
	t = meta_txn_begin(m);
	ln = mk_inode(meta_txn_alloc_ino(t), S_IFLNK | 0777, 1);
	ln.size = strlen("../some/where/over the rainbow");
	meta_txn_put_inode(t, &ln);
	meta_txn_put_symlink(t, ln.ino, "../some/where/over the rainbow");
	meta_txn_put_dirent(t, META_ROOT_INO, "link", ln.ino, ln.mode, 7);
	ln2 = meta_txn_alloc_ino(t);
	{
		struct meta_inode l2 = mk_inode(ln2, S_IFLNK | 0777, 1);

		meta_txn_put_inode(t, &l2);
	}
	meta_txn_put_symlink(t, ln2, longt);
	meta_txn_count(t, S_IFLNK, 2);
	is_int(commit(m, t, NULL), 0, "commit two symlinks");

	r = meta_get_symlink(m, ln.ino, &target);
	is_int(r, 0, "meta_get_symlink");
	is_str(r == 0 ? target : NULL, "../some/where/over the rainbow",
	       "symlink target round-trips");
	free(target);
	target = NULL;
	r = meta_get_symlink(m, ln2, &target);
	ok(r == 0 && target && strcmp(target, longt) == 0,
	   "a 4000-byte symlink target round-trips");
	free(target);
	target = NULL;
	is_int(meta_get_symlink(m, META_ROOT_INO, &target), -ENOENT,
	       "meta_get_symlink of a directory is -ENOENT");

	meta_lock(m);
	t = meta_txn_begin(m);
	meta_txn_del_inode(t, ln2);
	meta_txn_count(t, S_IFLNK, -1);
	is_int(commit(m, t, NULL), 0, "commit the removal of a symlink inode");
	{
		struct meta_inode got;

		is_int(meta_get_inode(m, ln2, &got), -ENOENT, "its inode is gone");
	}
	is_int(meta_get_symlink(m, ln2, &target), -ENOENT,
	       "meta_txn_del_inode removes the symlink target too");
	*linkp = ln.ino;
}

static void test_xattr(struct meta *m, uint64_t ino, uint64_t other)
{
	static const char bin[5] = { 'a', 0, 'b', 0, (char)0xff };
	static const char want_list[] = "user.a\0user.b\0user.empty\0user.long";
	struct meta_txn *t;
	char *big = malloc(65536), *names = NULL;
	void *val = NULL;
	size_t len = 0;
	int r;

	if (!big)
		bail_out("out of memory");
	for (int i = 0; i < 65536; i++)
		big[i] = (char)(i * 31);
	meta_lock(m);
	t = meta_txn_begin(m);
	meta_txn_put_xattr(t, ino, "user.b", bin, sizeof(bin));
	meta_txn_put_xattr(t, ino, "user.a", "1", 1);
	meta_txn_put_xattr(t, ino, "user.empty", "", 0);
	meta_txn_put_xattr(t, ino, "user.long", big, 65536);
	meta_txn_put_xattr(t, other, "user.other", "o", 1);
	is_int(commit(m, t, NULL), 0, "commit xattrs");

	r = meta_get_xattr(m, ino, "user.a", &val, &len);
	ok(r == 0 && len == 1 && memcmp(val, "1", 1) == 0, "xattr user.a = \"1\"");
	free(val);
	val = NULL;
	r = meta_get_xattr(m, ino, "user.b", &val, &len);
	is_int(r, 0, "get binary xattr");
	if (r == 0)
		is_mem(val, len, bin, sizeof(bin), "binary xattr value with NULs round-trips");
	else
		skip(1, "no value");
	free(val);
	val = NULL;
	r = meta_get_xattr(m, ino, "user.empty", &val, &len);
	ok(r == 0 && len == 0, "an empty xattr value is present with length 0");
	free(val);
	val = NULL;
	r = meta_get_xattr(m, ino, "user.long", &val, &len);
	ok(r == 0 && len == 65536 && memcmp(val, big, 65536) == 0,
	   "a 64 KiB xattr value round-trips");
	free(val);
	val = NULL;
	is_int(meta_get_xattr(m, ino, "user.missing", &val, &len), -ENODATA,
	       "a missing xattr is -ENODATA");
	is_int(meta_get_xattr(m, ino, "user.other", &val, &len), -ENODATA,
	       "another inode's xattr is not visible");

	r = meta_list_xattr(m, ino, &names, &len);
	is_int(r, 0, "meta_list_xattr");
	if (r == 0)
		is_mem(names, len, want_list, sizeof(want_list),
		       "list: NUL-separated names of this inode only");
	else
		skip(1, "no list");
	free(names);
	names = NULL;

	meta_lock(m);
	t = meta_txn_begin(m);
	meta_txn_del_xattr(t, ino, "user.b");
	meta_txn_put_xattr(t, ino, "user.a", "22", 2);
	is_int(commit(m, t, NULL), 0, "commit an xattr delete and a replace");
	is_int(meta_get_xattr(m, ino, "user.b", &val, &len), -ENODATA,
	       "a deleted xattr is -ENODATA");
	r = meta_get_xattr(m, ino, "user.a", &val, &len);
	ok(r == 0 && len == 2 && memcmp(val, "22", 2) == 0, "a replaced xattr has the new value");
	free(val);
	val = NULL;
	r = meta_list_xattr(m, ino, &names, &len);
	{
		static const char want2[] = "user.a\0user.empty\0user.long";

		ok(r == 0 && len == sizeof(want2) && memcmp(names, want2, len) == 0,
		   "the list no longer has the deleted name");
	}
	free(names);
	names = NULL;
	r = meta_list_xattr(m, META_ROOT_INO, &names, &len);
	ok(r == 0 && len == 0, "an inode without xattrs lists nothing");
	free(names);
	free(big);
}

static void check_refs(struct meta *m, const struct meta_counters *base,
		       const struct bs_hash *h, uint64_t refs, uint64_t blocks,
		       uint64_t block_bytes, uint64_t stored, uint64_t ref_bytes,
		       const char *what)
{
	struct meta_counters c;
	int good;

	meta_counters(m, &c);
	is_int(meta_block_refs(m, h), refs, "%s: reference count %llu", what,
	       (unsigned long long)refs);
	is_int(meta_block_unref(m, h), refs == 0, "%s: meta_block_unref is %d", what,
	       refs == 0);
	good = c.blocks == base->blocks + blocks &&
	       c.block_bytes == base->block_bytes + block_bytes &&
	       c.stored_bytes == base->stored_bytes + stored &&
	       c.ref_bytes == base->ref_bytes + ref_bytes;
	ok(good, "%s: counters blocks +%llu, block_bytes +%llu, stored_bytes +%llu, "
	   "ref_bytes +%llu", what, (unsigned long long)blocks,
	   (unsigned long long)block_bytes, (unsigned long long)stored,
	   (unsigned long long)ref_bytes);
	if (!good) {
		diag_counters("base", base);
		diag_counters("now ", &c);
	}
}

static void test_refcounts(struct meta *m, uint64_t ino)
{
	struct bs_hash a = hash_of_str("block a"), b = hash_of_str("block b"),
		       c = hash_of_str("block c"), got;
	struct meta_counters base;
	struct meta_freed freed = { 0 };
	struct meta_txn *t;

	meta_counters(m, &base);
	is_int(meta_block_refs(m, &a), 0, "an unknown block has 0 references");

	/* two references to one block, in two transactions as writes make them */
	meta_lock(m);
	t = meta_txn_begin(m);
	is_int(meta_txn_set_block(t, ino, 0, NULL, &a, 1000, 400), 0, "set block 0 = a");
	is_int(commit(m, t, &freed), 0, "commit");
	check_refs(m, &base, &a, 1, 1, 1000, 400, 1000, "one reference");
	meta_lock(m);
	t = meta_txn_begin(m);
	is_int(meta_txn_set_block(t, ino, 1, NULL, &a, 1000, 400), 0, "set block 1 = a");
	is_int(commit(m, t, &freed), 0, "commit");
	check_refs(m, &base, &a, 2, 1, 1000, 400, 2000, "two references to one block");
	is_int(freed.n, 0, "nothing freed so far");
	ok(meta_get_block(m, ino, 0, &got) == 0 && hash_eq(&got, &a), "block 0 is a");
	ok(meta_get_block(m, ino, 1, &got) == 0 && hash_eq(&got, &a), "block 1 is a");
	is_int(meta_get_block(m, ino, 2, &got), -ENOENT, "block 2 is a hole");

	/* drop both in one transaction */
	meta_lock(m);
	t = meta_txn_begin(m);
	meta_txn_set_block(t, ino, 0, &a, NULL, 0, 0);
	meta_txn_set_block(t, ino, 1, &a, NULL, 0, 0);
	is_int(commit(m, t, &freed), 0, "commit dropping both references");
	check_refs(m, &base, &a, 0, 0, 0, 0, 0, "both dropped");
	ok(freed.n == 1 && hash_eq(&freed.h[0], &a), "the freed list holds a, once");
	meta_freed_release(&freed);
	is_int(meta_get_block(m, ino, 0, &got), -ENOENT, "block 0 is a hole again");

	/* a new block set twice and cleared once in one transaction */
	meta_lock(m);
	t = meta_txn_begin(m);
	meta_txn_set_block(t, ino, 5, NULL, &b, 2000, 900);
	meta_txn_set_block(t, ino, 6, NULL, &b, 2000, 900);
	meta_txn_set_block(t, ino, 5, &b, NULL, 0, 0);
	is_int(commit(m, t, &freed), 0, "commit b set at 5 and 6, then 5 cleared");
	check_refs(m, &base, &b, 1, 1, 2000, 900, 2000, "b moved within one transaction");
	is_int(freed.n, 0, "nothing freed");
	is_int(meta_get_block(m, ino, 5, &got), -ENOENT, "block 5 is a hole");
	ok(meta_get_block(m, ino, 6, &got) == 0 && hash_eq(&got, &b), "block 6 is b");

	/* b's count falls to 0 and rises to 2 within one transaction; stored 0
	 * means "already known" (meta.h) */
	meta_lock(m);
	t = meta_txn_begin(m);
	meta_txn_set_block(t, ino, 6, &b, NULL, 0, 0);
	meta_txn_set_block(t, ino, 7, NULL, &b, 2000, 0);
	meta_txn_set_block(t, ino, 8, NULL, &b, 2000, 0);
	is_int(commit(m, t, &freed), 0, "commit b cleared at 6, set at 7 and 8");
	check_refs(m, &base, &b, 2, 1, 2000, 900, 4000, "b through zero to two");
	is_int(freed.n, 0, "a block that falls to 0 and comes back is not freed");

	/* same hash rewritten in place; a dropped to 0 and back to 1 */
	meta_lock(m);
	t = meta_txn_begin(m);
	meta_txn_set_block(t, ino, 7, &b, &b, 2000, 900);
	is_int(commit(m, t, &freed), 0, "commit b replaced by b");
	check_refs(m, &base, &b, 2, 1, 2000, 900, 4000, "b replaced by itself");

	/* drop every reference to b: counters back to where they started */
	meta_lock(m);
	t = meta_txn_begin(m);
	meta_txn_set_block(t, ino, 7, &b, NULL, 0, 0);
	meta_txn_set_block(t, ino, 8, &b, NULL, 0, 0);
	is_int(commit(m, t, &freed), 0, "commit dropping b");
	check_refs(m, &base, &b, 0, 0, 0, 0, 0, "b dropped");
	ok(freed.n == 1 && hash_eq(&freed.h[0], &b), "the freed list holds b");
	meta_freed_release(&freed);

	/* a block replaced by another: old freed, new counted (a fresh base,
	 * so that a miscount above does not fail this too) */
	meta_counters(m, &base);
	meta_lock(m);
	t = meta_txn_begin(m);
	meta_txn_set_block(t, ino, 0, NULL, &a, 1000, 400);
	is_int(commit(m, t, NULL), 0, "commit a at 0");
	meta_lock(m);
	t = meta_txn_begin(m);
	meta_txn_set_block(t, ino, 0, &a, &c, 3000, 1200);
	is_int(commit(m, t, &freed), 0, "commit a replaced by c at 0");
	check_refs(m, &base, &c, 1, 1, 3000, 1200, 3000, "c replaced a");
	is_int(meta_block_refs(m, &a), 0, "a has no references");
	ok(freed.n == 1 && hash_eq(&freed.h[0], &a), "a is freed");
	meta_freed_release(&freed);
	ok(meta_get_block(m, ino, 0, &got) == 0 && hash_eq(&got, &c), "block 0 is c");
}

static void test_blocks_iter(struct meta *m, uint64_t ino, uint64_t other)
{
	static const uint64_t idx[] = { 0, 1, 2, 255, 256, 65536, 1ull << 33 };
	struct bs_hash h[ARRAY_SIZE(idx)], x = hash_of_str("other inode");
	struct meta_txn *t;
	struct blist b;
	int good;

	meta_lock(m);
	t = meta_txn_begin(m);
	/* insert in reverse order: iteration order must not depend on it */
	for (size_t i = ARRAY_SIZE(idx); i-- > 0;) {
		char s[32];

		snprintf(s, sizeof(s), "iter %zu", i);
		h[i] = hash_of_str(s);
		meta_txn_set_block(t, ino, idx[i], NULL, &h[i], 100, 50);
	}
	meta_txn_set_block(t, other, 0, NULL, &x, 100, 50);
	meta_txn_set_block(t, ino - 1, 3, NULL, &x, 100, 50);
	is_int(commit(m, t, NULL), 0, "commit seven blocks of one inode, two of others");

	memset(&b, 0, sizeof(b));
	is_int(meta_blocks(m, ino, 0, blist_fn, &b), 0, "meta_blocks from 0");
	good = b.n == (int)ARRAY_SIZE(idx);
	for (int i = 0; good && i < b.n; i++)
		good = b.idx[i] == idx[i] && hash_eq(&b.h[i], &h[i]);
	ok(good, "meta_blocks lists this inode's blocks in index order (%d seen)", b.n);

	memset(&b, 0, sizeof(b));
	meta_blocks(m, ino, 3, blist_fn, &b);
	ok(b.n == 4 && b.idx[0] == 255 && b.idx[3] == (1ull << 33),
	   "meta_blocks from 3 starts at 255");
	memset(&b, 0, sizeof(b));
	meta_blocks(m, ino, 256, blist_fn, &b);
	ok(b.n == 3 && b.idx[0] == 256, "meta_blocks from an existing index includes it");
	memset(&b, 0, sizeof(b));
	meta_blocks(m, ino, (1ull << 33) + 1, blist_fn, &b);
	is_int(b.n, 0, "meta_blocks past the last index lists nothing");
	memset(&b, 0, sizeof(b));
	b.stop_after = 2;
	is_int(meta_blocks(m, ino, 0, blist_fn, &b), 0,
	       "meta_blocks stopped by the callback returns 0");
	is_int(b.n, 2, "meta_blocks stops when the callback returns non-zero");
	memset(&b, 0, sizeof(b));
	meta_blocks(m, other, 0, blist_fn, &b);
	ok(b.n == 1 && b.idx[0] == 0 && hash_eq(&b.h[0], &x), "the other inode has its one block");
}

static void test_orphans(struct meta *m)
{
	struct meta_txn *t;
	struct olist o;

	memset(&o, 0, sizeof(o));
	is_int(meta_orphans(m, olist_fn, &o), 0, "meta_orphans with none");
	is_int(o.n, 0, "no orphans at first");
	meta_lock(m);
	t = meta_txn_begin(m);
	meta_txn_orphan(t, 4000, 1);
	meta_txn_orphan(t, 300, 1);
	meta_txn_orphan(t, 299, 1);
	is_int(commit(m, t, NULL), 0, "commit three orphans");
	memset(&o, 0, sizeof(o));
	is_int(meta_orphans(m, olist_fn, &o), 0, "meta_orphans");
	ok(o.n == 3 && o.ino[0] == 299 && o.ino[1] == 300 && o.ino[2] == 4000,
	   "meta_orphans lists 299, 300, 4000");
	memset(&o, 0, sizeof(o));
	o.stop_after = 1;
	is_int(meta_orphans(m, olist_fn, &o), 7,
	       "meta_orphans returns the callback's non-zero value");
	is_int(o.n, 1, "and stops there");
	meta_lock(m);
	t = meta_txn_begin(m);
	meta_txn_orphan(t, 300, 0);
	is_int(commit(m, t, NULL), 0, "commit clearing one orphan");
	memset(&o, 0, sizeof(o));
	meta_orphans(m, olist_fn, &o);
	ok(o.n == 2 && o.ino[0] == 299 && o.ino[1] == 4000, "meta_orphans lists 299, 4000");
}

static void test_abort(struct meta *m)
{
	struct meta_counters before, after;
	struct bs_hash h = hash_of_str("aborted block");
	struct meta_txn *t;
	struct meta_inode in, got;
	struct olist o;
	uint64_t next = meta_super(m)->next_ino, ino, ino2;
	int orphans;

	memset(&o, 0, sizeof(o));
	meta_orphans(m, olist_fn, &o);
	orphans = o.n;
	meta_counters(m, &before);
	meta_lock(m);
	t = meta_txn_begin(m);
	ino = meta_txn_alloc_ino(t);
	in = mk_inode(ino, S_IFREG | 0600, 1);
	meta_txn_put_inode(t, &in);
	meta_txn_put_dirent(t, META_ROOT_INO, "aborted", ino, in.mode, 99);
	meta_txn_put_xattr(t, META_ROOT_INO, "user.aborted", "x", 1);
	meta_txn_set_block(t, ino, 0, NULL, &h, 10, 5);
	meta_txn_count(t, in.mode, 1);
	meta_txn_logical(t, 0, 10);
	meta_txn_orphan(t, ino, 1);
	meta_txn_del_inode(t, META_ROOT_INO);
	meta_txn_abort(t);
	meta_unlock(m);

	meta_counters(m, &after);
	ok(counters_eq(&before, &after), "meta_txn_abort leaves the counters alone");
	is_int(meta_super(m)->next_ino, next, "meta_txn_abort leaves next_ino alone");
	{
		uint64_t x;

		is_int(meta_lookup(m, META_ROOT_INO, "aborted", &x, NULL, NULL), -ENOENT,
		       "no entry from the aborted transaction");
	}
	is_int(meta_get_inode(m, ino, &got), -ENOENT, "no inode from it");
	is_int(meta_get_inode(m, META_ROOT_INO, &got), 0, "its inode delete did not happen");
	is_int(meta_block_refs(m, &h), 0, "no block reference from it");
	{
		void *v = NULL;
		size_t n;

		is_int(meta_get_xattr(m, META_ROOT_INO, "user.aborted", &v, &n), -ENODATA,
		       "no xattr from it");
	}
	memset(&o, 0, sizeof(o));
	meta_orphans(m, olist_fn, &o);
	is_int(o.n, orphans, "no orphan from it");

	meta_lock(m);
	t = meta_txn_begin(m);
	ino2 = meta_txn_alloc_ino(t);
	meta_txn_abort(t);
	meta_unlock(m);
	is_int(ino2, ino, "the next transaction allocates the same inode number");
	meta_txn_abort(NULL);
	ok(1, "meta_txn_abort(NULL) is harmless");
}

struct snapshot {
	struct meta_counters cnt;
	struct meta_super super;
	struct meta_inode file, root;
};

static void take_snapshot(struct meta *m, uint64_t file, struct snapshot *s)
{
	meta_counters(m, &s->cnt);
	s->super = *meta_super(m);
	meta_get_inode(m, file, &s->file);
	meta_get_inode(m, META_ROOT_INO, &s->root);
}

static void test_reopen(const char *dir, struct meta **mp, uint64_t file,
			uint64_t sub, uint64_t link, uint64_t blocks_ino)
{
	struct snapshot a, b;
	struct meta *m = *mp;
	struct dlist d;
	struct blist bl;
	struct olist o;
	char joined[2048], *target = NULL;
	void *val = NULL;
	size_t len;
	struct bs_hash c = hash_of_str("block c");

	take_snapshot(m, file, &a);
	meta_close(m);
	m = open_ok(dir, 4096, "again after meta_close (a different block size asked)");
	take_snapshot(m, file, &b);
	is_int(b.super.block_size, BSIZE, "the block size of the filesystem is kept");
	ok(b.super.created_ns == a.super.created_ns &&
	   memcmp(b.super.fsid, a.super.fsid, 16) == 0,
	   "creation time and fsid are kept");
	is_int(b.super.next_ino, a.super.next_ino, "next_ino is kept");
	if (!ok(counters_eq(&a.cnt, &b.cnt), "every counter is kept")) {
		diag_counters("before", &a.cnt);
		diag_counters("after ", &b.cnt);
	}
	ok(inode_eq(&a.file, &b.file) && inode_eq(&a.root, &b.root), "inodes are kept");

	memset(&d, 0, sizeof(d));
	meta_readdir(m, sub, 0, dlist_fn, &d);
	dlist_join(&d, joined, sizeof(joined));
	is_str(joined, "e,d,b,a,late,later", "directory entries are kept, in order");
	ok(meta_get_symlink(m, link, &target) == 0 && target &&
	   strcmp(target, "../some/where/over the rainbow") == 0, "symlink is kept");
	free(target);
	ok(meta_get_xattr(m, file, "user.a", &val, &len) == 0 && len == 2 &&
	   memcmp(val, "22", 2) == 0, "xattrs are kept");
	free(val);
	is_int(meta_block_refs(m, &c), 1, "reference counts are kept");
	memset(&bl, 0, sizeof(bl));
	meta_blocks(m, blocks_ino, 0, blist_fn, &bl);
	is_int(bl.n, 7, "block lists are kept");
	memset(&o, 0, sizeof(o));
	meta_orphans(m, olist_fn, &o);
	is_int(o.n, 2, "orphans are kept");
	{
		struct meta_txn *t;
		uint64_t ino;

		meta_lock(m);
		t = meta_txn_begin(m);
		ino = meta_txn_alloc_ino(t);
		meta_txn_abort(t);
		meta_unlock(m);
		is_int(ino, a.super.next_ino, "inode numbers continue after reopen");
	}
	*mp = m;
}

/* ---- crash atomicity ---- */

#define CRASH_K 12	/* xattrs per transaction, besides inode and entries */

static void crash_xname(char *out, size_t cap, int j)
{
	snprintf(out, cap, "user.k%02d", j);
}

static size_t crash_vlen(uint64_t i, int j)
{
	/* now and then a value that makes the batch span LevelDB log blocks */
	if (j == 0 && i % 5 == 0)
		return 40000 + (size_t)(i % 7) * 1000;
	return 16 + (size_t)((i * 131 + (uint64_t)j * 17) % 600);
}

static void crash_value(unsigned char *buf, size_t len, uint64_t i, int j)
{
	for (size_t k = 0; k < len; k++)
		buf[k] = (unsigned char)(i * 7 + (uint64_t)j * 13 + k);
}

/* The child: commit transaction after transaction until killed. */
static int crash_child(const char *dir, int fd)
{
	struct meta *m = NULL;
	char *err = NULL;
	unsigned char *val = malloc(64 * 1024);
	int r = meta_open(&m, dir, BSIZE, &err);

	if (r < 0 || !val) {
		fprintf(stderr, "crash child: meta_open %s: %s\n", dir, err ? err : "?");
		return 2;
	}
	for (uint64_t n = 0;; n++) {
		struct meta_counters c;
		struct meta_txn *t;
		struct meta_inode in;
		char name[64];
		uint64_t i;

		meta_counters(m, &c);	/* takes the lock itself */
		meta_lock(m);
		i = c.files;
		t = meta_txn_begin(m);
		in = mk_inode(meta_txn_alloc_ino(t), S_IFREG | 0644, 1);
		if (in.ino != META_FIRST_INO + i) {
			fprintf(stderr, "crash child: ino %llu for transaction %llu\n",
				(unsigned long long)in.ino, (unsigned long long)i);
			return 3;
		}
		in.size = i;
		meta_txn_put_inode(t, &in);
		snprintf(name, sizeof(name), "f%08llu", (unsigned long long)i);
		meta_txn_put_dirent(t, META_ROOT_INO, name, in.ino, in.mode, 1000 + i);
		for (int j = 0; j < CRASH_K; j++) {
			size_t len = crash_vlen(i, j);

			crash_xname(name, sizeof(name), j);
			crash_value(val, len, i, j);
			meta_txn_put_xattr(t, in.ino, name, val, len);
		}
		meta_txn_count(t, S_IFREG, 1);
		meta_txn_logical(t, 0, i);
		r = meta_txn_commit(t, i % 16 == 0, NULL);
		meta_unlock(m);
		if (r < 0) {
			fprintf(stderr, "crash child: commit: %d\n", r);
			return 4;
		}
		if (n == 20 && fd >= 0) {
			/* tell the parent that we are well under way */
			if (write(fd, "x", 1) != 1)
				return 5;
			close(fd);
			fd = -1;
		}
	}
}

/* Count the keys of transaction i present: 3 + CRASH_K when complete. */
static int crash_present(struct meta *m, uint64_t i, const uint64_t *cookies,
			 size_t ncookies, int *wrong)
{
	uint64_t ino = META_FIRST_INO + i, x;
	struct meta_inode in;
	unsigned char *want = malloc(64 * 1024);
	char name[64];
	int n = 0;

	snprintf(name, sizeof(name), "f%08llu", (unsigned long long)i);
	if (meta_lookup(m, META_ROOT_INO, name, &x, NULL, NULL) == 0) {
		n++;
		if (x != ino)
			(*wrong)++;
	}
	for (size_t k = 0; k < ncookies; k++)
		if (cookies[k] == 1000 + i) {
			n++;
			break;
		}
	if (meta_get_inode(m, ino, &in) == 0) {
		n++;
		if (in.size != i)
			(*wrong)++;
	}
	for (int j = 0; j < CRASH_K && want; j++) {
		void *v = NULL;
		size_t len = 0;

		crash_xname(name, sizeof(name), j);
		if (meta_get_xattr(m, ino, name, &v, &len) == 0) {
			n++;
			crash_value(want, crash_vlen(i, j), i, j);
			if (len != crash_vlen(i, j) || memcmp(v, want, len) != 0)
				(*wrong)++;
		}
		free(v);
	}
	free(want);
	return n;
}

struct cookie_list {
	uint64_t *c;
	size_t n, cap;
};

static int cookie_fn(void *arg, const char *name, uint64_t ino, uint32_t mode,
		     uint64_t cookie)
{
	struct cookie_list *l = arg;

	(void)name;
	(void)ino;
	(void)mode;
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 1024;
		uint64_t *nc = realloc(l->c, cap * sizeof(*nc));

		if (!nc)
			return 1;
		l->c = nc;
		l->cap = cap;
	}
	l->c[l->n++] = cookie;
	return 0;
}

static void test_crash(const char *dir)
{
	unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
	uint64_t prev = 0;
	const int rounds = 6;

	srand(seed);
	diag("crash test: seed %u", seed);
	for (int round = 0; round < rounds; round++) {
		int pfd[2], status = 0, wrong = 0, partial = 0, prefix = 1;
		/* every third round kills early, maybe during LevelDB's recovery */
		int early = round % 3 == 2;
		unsigned delay_ms = early ? (unsigned)rand() % 40 : 5 + (unsigned)rand() % 200;
		char fdarg[16], buf[1];
		struct pollfd p;
		struct meta *m;
		struct meta_counters c;
		struct cookie_list cl = { 0 };
		uint64_t n;
		pid_t pid;

		if (pipe(pfd) < 0)
			bail_out("pipe: %s", strerror(errno));
		fflush(stdout);
		pid = fork();
		if (pid < 0)
			bail_out("fork: %s", strerror(errno));
		if (pid == 0) {
			int devnull = open("/dev/null", O_WRONLY);

			close(pfd[0]);
			if (devnull >= 0)
				dup2(devnull, 1);
			snprintf(fdarg, sizeof(fdarg), "%d", pfd[1]);
			execl("/proc/self/exe", "test_meta", "--crash-child", dir, fdarg,
			      (char *)NULL);
			_exit(127);
		}
		close(pfd[1]);
		p.fd = pfd[0];
		p.events = POLLIN;
		if (!early && (poll(&p, 1, 60000) != 1 || read(pfd[0], buf, 1) != 1)) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			close(pfd[0]);
			ok(0, "crash round %d: the child commits transactions", round);
			continue;
		}
		usleep(delay_ms * 1000);
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		close(pfd[0]);	/* only now: an early child may still write */
		ok(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
		   "crash round %d: child killed with SIGKILL %u ms after %s",
		   round, delay_ms, early ? "it started" : "its 20th commit");

		m = open_ok(dir, BSIZE, "after the kill");
		meta_counters(m, &c);
		n = c.files;
		meta_readdir(m, META_ROOT_INO, 0, cookie_fn, &cl);
		for (uint64_t i = 0; i < n + 64; i++) {
			int k = crash_present(m, i, cl.c, cl.n, &wrong);

			if (k != 0 && k != 3 + CRASH_K) {
				if (partial++ < 5)
					diag("transaction %llu: %d of %d keys present",
					     (unsigned long long)i, k, 3 + CRASH_K);
			}
			if ((i < n && k == 0) || (i >= n && k != 0))
				prefix = 0;
		}
		is_int(partial, 0, "crash round %d: every transaction is all there or "
		       "not at all (%llu committed)", round, (unsigned long long)n);
		is_int(wrong, 0, "crash round %d: every value present is right", round);
		ok(prefix, "crash round %d: committed transactions are a prefix and "
		   "the files counter matches them", round);
		is_int(cl.n, n, "crash round %d: one directory entry per transaction", round);
		ok(meta_super(m)->next_ino == META_FIRST_INO + n,
		   "crash round %d: next_ino matches the committed transactions", round);
		ok(c.logical_bytes == n * (n - 1) / 2,
		   "crash round %d: logical bytes counter matches", round);
		ok(early ? n >= prev : n > prev,
		   "crash round %d: nothing lost, %s (%llu after %llu transactions)",
		   round, early ? "maybe no progress" : "progress",
		   (unsigned long long)n, (unsigned long long)prev);
		prev = n;
		free(cl.c);
		meta_close(m);
	}
}

static int rm_rf(const char *dir)
{
	char cmd[4200];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd);
}

int main(int argc, char **argv)
{
	char dir[4200], crashdir[4200];
	struct meta *m = NULL;
	uint64_t sub = 0, link = 0, file = META_FIRST_INO, blocks_ino = 900;

	if (argc == 4 && strcmp(argv[1], "--crash-child") == 0)
		return crash_child(argv[2], atoi(argv[3]));
	if (!mkdtemp(top))
		bail_out("mkdtemp: %s", strerror(errno));
	snprintf(dir, sizeof(dir), "%s/state", top);
	snprintf(crashdir, sizeof(crashdir), "%s/crash", top);

	test_open(dir, &m);
	test_inode_dirent(m);
	test_readdir(m, &sub);
	test_symlink(m, &link);
	test_xattr(m, file, sub);
	test_refcounts(m, file);
	test_blocks_iter(m, blocks_ino, blocks_ino + 1);
	test_orphans(m);
	test_abort(m);
	test_reopen(dir, &m, file, sub, link, blocks_ino);
	meta_close(m);
	test_crash(crashdir);

	ok(rm_rf(top) == 0, "scratch directory removed");
	return done_testing();
}
