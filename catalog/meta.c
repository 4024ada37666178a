/*
 * catalog/meta.c — the filesystem's metadata in LevelDB.
 *
 * Keys (integers big-endian, so that LevelDB's byte order is numeric order):
 *
 *   S                          superblock: format, block size, next inode
 *   C                          counters (struct meta_counters)
 *   I ino                      inode record
 *   D parent name              directory entry: ino, readdir cookie, mode
 *   E parent cookie            the same entry in readdir order: ino, mode, name
 *   B ino index                block index of a file: the block's SHA-256
 *   R hash                     block reference count, plaintext and stored size
 *   X ino name                 extended attribute value
 *   L ino                      symlink target
 *   O ino                      orphan: nlink reached 0 while the file was open
 *   K name                     catalog record (tables, batches, jobs): an
 *                              opaque value under a path-like name that the
 *                              lake engine owns (catalog/lake.c)
 *   J seq                      journal record (only with a bucket): the
 *                              puts and deletes of one committed batch
 *   j                          the last journal record's seq
 *
 * With a bucket, every transaction also writes its own journal record in
 * the same batch: seq, the upload mark taken at commit (every block the
 * batch references was queued at or before it), then the batch's
 * operations, each 'P' klen key vlen value or 'D' klen key (lengths be32).
 * catalog/journal.c ships the records to the bucket and trims them.
 *
 * A directory lists in cookie order; a cookie is the directory's
 * next_cookie when the entry was made, never reused, so readdir offsets
 * stay valid while the directory changes and paging a directory of any
 * size costs one seek per page.
 *
 * Invariants
 *  - Every change of several keys is one WriteBatch (a transaction). The
 *    counters key and the superblock ride in the same batch as the change
 *    that moved them, so they are exact after any crash.
 *  - R hash exists iff at least one B key holds hash; its count is the
 *    number of such keys. Transactions compute counts through an overlay,
 *    so one transaction may move the same hash several times.
 *
 * Locking: meta_lock() serializes transactions (the overlay reads counts
 * from the database, so two transactions must not interleave). Reads take
 * no lock: LevelDB reads are thread-safe and see the last committed batch.
 * The in-memory counters and superblock are protected by the same lock.
 *
 * Failure: a failed batch changes nothing on disk; commit restores the
 * in-memory counters and returns -EIO (or -ENOSPC when LevelDB says so).
 */
#include <errno.h>
#include <fcntl.h>
#include <leveldb/c.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "catalog/meta.h"
#include "util/log.h"
#include "util/util.h"

#define META_FORMAT 1
#define INODE_REC_LEN 85
#define KEY_MAX (1 + 8 + 8 + META_NAME_MAX + 16)

struct meta {
	leveldb_t *db;
	leveldb_options_t *opts;
	leveldb_cache_t *cache;
	leveldb_filterpolicy_t *filter;
	leveldb_readoptions_t *ropts;
	leveldb_writeoptions_t *wopts, *wopts_sync;
	int lockfd;
	pthread_mutex_t lock;
	struct meta_super super;	/* lock */
	struct meta_counters cnt;	/* lock */
	uint64_t (*jmark)(void *arg);	/* journal on; set before use */
	void *jarg;
	uint64_t jseq;			/* last record; lock */
};

struct ref_delta {
	struct bs_hash h;
	uint64_t orig, count;
	uint32_t raw, stored;
};

struct meta_txn {
	struct meta *m;
	leveldb_writebatch_t *wb;
	struct meta_counters cnt;	/* counters after this transaction */
	uint64_t next_ino;
	struct ref_delta *refs;
	size_t nrefs, caprefs;
	int failed;
};

/* ---- encoding ---- */

static size_t key_ino(char *k, char tag, uint64_t ino)
{
	k[0] = tag;
	put_be64((unsigned char *)k + 1, ino);
	return 9;
}

static size_t key_ino_u64(char *k, char tag, uint64_t ino, uint64_t v)
{
	key_ino(k, tag, ino);
	put_be64((unsigned char *)k + 9, v);
	return 17;
}

static size_t key_ino_name(char *k, char tag, uint64_t ino, const char *name)
{
	size_t n = strnlen(name, META_NAME_MAX + 1);

	key_ino(k, tag, ino);
	memcpy(k + 9, name, n);
	return 9 + n;
}

static void put_ts(unsigned char *p, struct timespec ts)
{
	put_be64(p, (uint64_t)ts.tv_sec);
	put_be32(p + 8, (uint32_t)ts.tv_nsec);
}

static struct timespec get_ts(const unsigned char *p)
{
	struct timespec ts = {
		.tv_sec = (time_t)get_be64(p),
		.tv_nsec = (long)get_be32(p + 8),
	};
	return ts;
}

static void encode_inode(const struct meta_inode *in, unsigned char *p)
{
	p[0] = 1;
	put_be32(p + 1, in->mode);
	put_be32(p + 5, in->uid);
	put_be32(p + 9, in->gid);
	put_be32(p + 13, in->nlink);
	put_be64(p + 17, in->size);
	put_be64(p + 25, in->rdev);
	put_ts(p + 33, in->atime);
	put_ts(p + 45, in->mtime);
	put_ts(p + 57, in->ctime);
	put_be64(p + 69, in->parent);
	put_be64(p + 77, in->next_cookie);
}

static int decode_inode(uint64_t ino, const unsigned char *p, size_t n,
			struct meta_inode *in)
{
	if (n != INODE_REC_LEN || p[0] != 1)
		return -EIO;
	in->ino = ino;
	in->mode = get_be32(p + 1);
	in->uid = get_be32(p + 5);
	in->gid = get_be32(p + 9);
	in->nlink = get_be32(p + 13);
	in->size = get_be64(p + 17);
	in->rdev = get_be64(p + 25);
	in->atime = get_ts(p + 33);
	in->mtime = get_ts(p + 45);
	in->ctime = get_ts(p + 57);
	in->parent = get_be64(p + 69);
	in->next_cookie = get_be64(p + 77);
	return 0;
}

#define SUPER_LEN 40
static void encode_super(const struct meta_super *s, unsigned char *p)
{
	put_be32(p, s->format);
	put_be32(p + 4, s->block_size);
	put_be64(p + 8, s->created_ns);
	put_be64(p + 16, s->next_ino);
	memcpy(p + 24, s->fsid, 16);
}

/* the counters record: the fields of struct meta_counters, in order */
#define NCOUNTERS (sizeof(struct meta_counters) / sizeof(uint64_t))
#define COUNTERS_LEN (8 * NCOUNTERS)
static void encode_counters(const struct meta_counters *c, unsigned char *p)
{
	const uint64_t *v = &c->files;

	for (size_t i = 0; i < NCOUNTERS; i++)
		put_be64(p + 8 * i, v[i]);
}

static void decode_counters(const unsigned char *p, struct meta_counters *c)
{
	uint64_t *v = &c->files;

	for (size_t i = 0; i < NCOUNTERS; i++)
		v[i] = get_be64(p + 8 * i);
}

static int status_errno(const char *err)
{
	if (strstr(err, "No space"))
		return -ENOSPC;
	return -EIO;
}

/* ---- open/close ---- */

static int take_lock(struct meta *m, const char *dir, char *msg, size_t cap)
{
	char path[4096], pid[32];
	int n;

	snprintf(path, sizeof(path), "%s/lock", dir);
	m->lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (m->lockfd < 0) {
		snprintf(msg, cap, "cannot open %s: %s", path, strerror(errno));
		return -errno;
	}
	if (flock(m->lockfd, LOCK_EX | LOCK_NB) < 0) {
		int err = errno;

		n = (int)pread(m->lockfd, pid, sizeof(pid) - 1, 0);
		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		if (err == EWOULDBLOCK)
			snprintf(msg, cap, "state directory %s is in use by "
				 "another lakefs-mount (pid %s); unmount it first",
				 dir, *pid ? pid : "unknown");
		else
			snprintf(msg, cap, "cannot lock %s: %s", path, strerror(err));
		close(m->lockfd);
		m->lockfd = -1;
		return err == EWOULDBLOCK ? -EBUSY : -err;
	}
	n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	if (ftruncate(m->lockfd, 0) == 0)
		pwrite_all(m->lockfd, pid, (size_t)n, 0);
	return 0;
}

static int load_super(struct meta *m, uint32_t block_size, char *msg, size_t cap)
{
	char *err = NULL, *val;
	size_t n;
	unsigned char buf[COUNTERS_LEN > SUPER_LEN ? COUNTERS_LEN : SUPER_LEN];

	val = leveldb_get(m->db, m->ropts, "S", 1, &n, &err);
	if (err) {
		snprintf(msg, cap, "cannot read superblock: %s", err);
		leveldb_free(err);
		return -EIO;
	}
	if (val) {
		const unsigned char *p = (unsigned char *)val;

		if (n != SUPER_LEN || get_be32(p) != META_FORMAT) {
			snprintf(msg, cap, "metadata format %u is not supported "
				 "(this lakefs reads format %d)",
				 n >= 4 ? get_be32(p) : 0, META_FORMAT);
			leveldb_free(val);
			return -EINVAL;
		}
		m->super.format = get_be32(p);
		m->super.block_size = get_be32(p + 4);
		m->super.created_ns = get_be64(p + 8);
		m->super.next_ino = get_be64(p + 16);
		memcpy(m->super.fsid, p + 24, 16);
		leveldb_free(val);
		val = leveldb_get(m->db, m->ropts, "C", 1, &n, &err);
		if (err || !val || n != COUNTERS_LEN) {
			snprintf(msg, cap, "counters record is missing or damaged");
			leveldb_free(err);
			leveldb_free(val);
			return -EIO;
		}
		decode_counters((unsigned char *)val, &m->cnt);
		leveldb_free(val);
		return 0;
	}

	/* a new filesystem: superblock, counters and the root directory */
	struct meta_inode root = { 0 };
	struct timespec now = now_ts();
	unsigned char rec[INODE_REC_LEN];
	char k[16];
	leveldb_writebatch_t *wb = leveldb_writebatch_create();

	m->super.format = META_FORMAT;
	m->super.block_size = block_size;
	m->super.created_ns = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
	m->super.next_ino = META_FIRST_INO;
	if (getrandom(m->super.fsid, sizeof(m->super.fsid), 0) < 0)
		memcpy(m->super.fsid, &m->super.created_ns, 8);
	root.ino = META_ROOT_INO;
	root.mode = 040755;
	root.uid = getuid();
	root.gid = getgid();
	root.nlink = 2;
	root.atime = root.mtime = root.ctime = now;
	root.parent = META_ROOT_INO;
	root.next_cookie = 3;
	m->cnt.dirs = 1;
	encode_super(&m->super, buf);
	leveldb_writebatch_put(wb, "S", 1, (char *)buf, SUPER_LEN);
	encode_counters(&m->cnt, buf);
	leveldb_writebatch_put(wb, "C", 1, (char *)buf, COUNTERS_LEN);
	encode_inode(&root, rec);
	leveldb_writebatch_put(wb, k, key_ino(k, 'I', META_ROOT_INO), (char *)rec, sizeof(rec));
	leveldb_write(m->db, m->wopts_sync, wb, &err);
	leveldb_writebatch_destroy(wb);
	if (err) {
		snprintf(msg, cap, "cannot create the filesystem: %s", err);
		leveldb_free(err);
		return -EIO;
	}
	return 0;
}

int meta_open(struct meta **out, const char *dir, uint32_t block_size,
	      char **errmsg)
{
	struct meta *m = calloc(1, sizeof(*m));
	char msg[1024] = "", path[4096];
	char *err = NULL;
	int ret;

	if (!m)
		return -ENOMEM;
	m->lockfd = -1;
	pthread_mutex_init(&m->lock, NULL);
	ret = mkdir_p(dir, 0700);
	if (ret < 0) {
		snprintf(msg, sizeof(msg), "cannot create state directory %s: %s",
			 dir, strerror(-ret));
		goto fail;
	}
	ret = take_lock(m, dir, msg, sizeof(msg));
	if (ret < 0)
		goto fail;
	m->opts = leveldb_options_create();
	m->cache = leveldb_cache_create_lru(8 << 20);
	m->filter = leveldb_filterpolicy_create_bloom(10);
	leveldb_options_set_create_if_missing(m->opts, 1);
	leveldb_options_set_cache(m->opts, m->cache);
	leveldb_options_set_filter_policy(m->opts, m->filter);
	leveldb_options_set_write_buffer_size(m->opts, 16 << 20);
	leveldb_options_set_max_open_files(m->opts, 256);
	m->ropts = leveldb_readoptions_create();
	m->wopts = leveldb_writeoptions_create();
	m->wopts_sync = leveldb_writeoptions_create();
	leveldb_writeoptions_set_sync(m->wopts_sync, 1);
	snprintf(path, sizeof(path), "%s/meta", dir);
	m->db = leveldb_open(m->opts, path, &err);
	if (err) {
		snprintf(msg, sizeof(msg), "cannot open metadata %s: %s", path, err);
		leveldb_free(err);
		ret = -EIO;
		goto fail;
	}
	ret = load_super(m, block_size, msg, sizeof(msg));
	if (ret < 0)
		goto fail;
	*out = m;
	return 0;
fail:
	if (errmsg)
		*errmsg = strdup(msg);
	meta_close(m);
	return ret;
}

void meta_close(struct meta *m)
{
	if (!m)
		return;
	if (m->db)
		leveldb_close(m->db);
	if (m->opts)
		leveldb_options_destroy(m->opts);
	if (m->cache)
		leveldb_cache_destroy(m->cache);
	if (m->filter)
		leveldb_filterpolicy_destroy(m->filter);
	if (m->ropts)
		leveldb_readoptions_destroy(m->ropts);
	if (m->wopts)
		leveldb_writeoptions_destroy(m->wopts);
	if (m->wopts_sync)
		leveldb_writeoptions_destroy(m->wopts_sync);
	if (m->lockfd >= 0)
		close(m->lockfd);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

const struct meta_super *meta_super(struct meta *m)
{
	return &m->super;
}

void meta_counters(struct meta *m, struct meta_counters *out)
{
	pthread_mutex_lock(&m->lock);
	*out = m->cnt;
	pthread_mutex_unlock(&m->lock);
}

void meta_lock(struct meta *m)
{
	pthread_mutex_lock(&m->lock);
}

void meta_unlock(struct meta *m)
{
	pthread_mutex_unlock(&m->lock);
}

/* ---- transactions ---- */

struct meta_txn *meta_txn_begin(struct meta *m)
{
	struct meta_txn *t = xcalloc(1, sizeof(*t));

	t->m = m;
	t->wb = leveldb_writebatch_create();
	t->cnt = m->cnt;
	t->next_ino = m->super.next_ino;
	return t;
}

uint64_t meta_txn_alloc_ino(struct meta_txn *t)
{
	return t->next_ino++;
}

void meta_txn_put_inode(struct meta_txn *t, const struct meta_inode *in)
{
	unsigned char rec[INODE_REC_LEN];
	char k[16];

	encode_inode(in, rec);
	leveldb_writebatch_put(t->wb, k, key_ino(k, 'I', in->ino), (char *)rec, sizeof(rec));
}

void meta_txn_del_inode(struct meta_txn *t, uint64_t ino)
{
	char k[16];

	leveldb_writebatch_delete(t->wb, k, key_ino(k, 'I', ino));
	leveldb_writebatch_delete(t->wb, k, key_ino(k, 'L', ino));
}

void meta_txn_count(struct meta_txn *t, uint32_t mode, int delta)
{
	uint64_t *c;

	switch (mode & S_IFMT) {
	case S_IFREG: c = &t->cnt.files; break;
	case S_IFDIR: c = &t->cnt.dirs; break;
	case S_IFLNK: c = &t->cnt.symlinks; break;
	default: c = &t->cnt.others; break;
	}
	*c += (uint64_t)(int64_t)delta;
}

void meta_txn_logical(struct meta_txn *t, uint64_t old_size, uint64_t new_size)
{
	t->cnt.logical_bytes += new_size - old_size;
}

void meta_txn_put_dirent(struct meta_txn *t, uint64_t parent, const char *name,
			 uint64_t ino, uint32_t mode, uint64_t cookie)
{
	char k[KEY_MAX];
	unsigned char v[12 + META_NAME_MAX + 8];
	size_t nl = strnlen(name, META_NAME_MAX);

	put_be64(v, ino);
	put_be64(v + 8, cookie);
	put_be32(v + 16, mode);
	leveldb_writebatch_put(t->wb, k, key_ino_name(k, 'D', parent, name), (char *)v, 20);
	put_be64(v, ino);
	put_be32(v + 8, mode);
	memcpy(v + 12, name, nl);
	leveldb_writebatch_put(t->wb, k, key_ino_u64(k, 'E', parent, cookie), (char *)v, 12 + nl);
}

void meta_txn_del_dirent(struct meta_txn *t, uint64_t parent, const char *name,
			 uint64_t cookie)
{
	char k[KEY_MAX];

	leveldb_writebatch_delete(t->wb, k, key_ino_name(k, 'D', parent, name));
	leveldb_writebatch_delete(t->wb, k, key_ino_u64(k, 'E', parent, cookie));
}

void meta_txn_put_symlink(struct meta_txn *t, uint64_t ino, const char *target)
{
	char k[16];

	leveldb_writebatch_put(t->wb, k, key_ino(k, 'L', ino), target, strlen(target));
}

void meta_txn_put_xattr(struct meta_txn *t, uint64_t ino, const char *name,
			const void *val, size_t len)
{
	char k[KEY_MAX];

	leveldb_writebatch_put(t->wb, k, key_ino_name(k, 'X', ino, name), val, len);
}

void meta_txn_del_xattr(struct meta_txn *t, uint64_t ino, const char *name)
{
	char k[KEY_MAX];

	leveldb_writebatch_delete(t->wb, k, key_ino_name(k, 'X', ino, name));
}

#define KV_KEY_MAX 1024

static size_t key_kv(char *k, const char *name)
{
	size_t n = strnlen(name, KV_KEY_MAX - 1);

	k[0] = 'K';
	memcpy(k + 1, name, n);
	return n + 1;
}

void meta_txn_put_kv(struct meta_txn *t, const char *name, const void *val,
		     size_t len)
{
	char k[KV_KEY_MAX];

	leveldb_writebatch_put(t->wb, k, key_kv(k, name), val, len);
}

void meta_txn_del_kv(struct meta_txn *t, const char *name)
{
	char k[KV_KEY_MAX];

	leveldb_writebatch_delete(t->wb, k, key_kv(k, name));
}

void meta_txn_orphan(struct meta_txn *t, uint64_t ino, int on)
{
	char k[16];
	size_t n = key_ino(k, 'O', ino);

	if (on)
		leveldb_writebatch_put(t->wb, k, n, "", 0);
	else
		leveldb_writebatch_delete(t->wb, k, n);
}

static int read_ref(struct meta *m, const struct bs_hash *h, uint64_t *count,
		    uint32_t *raw, uint32_t *stored)
{
	char k[1 + BS_HASH_LEN], *err = NULL, *val;
	size_t n;

	k[0] = 'R';
	memcpy(k + 1, h->b, BS_HASH_LEN);
	val = leveldb_get(m->db, m->ropts, k, sizeof(k), &n, &err);
	if (err) {
		log_err("cannot read block reference count: %s", err);
		leveldb_free(err);
		return -EIO;
	}
	*count = 0;
	if (val && n == 16) {
		*count = get_be64((unsigned char *)val);
		*raw = get_be32((unsigned char *)val + 8);
		*stored = get_be32((unsigned char *)val + 12);
	}
	leveldb_free(val);
	return 0;
}

static struct ref_delta *txn_ref(struct meta_txn *t, const struct bs_hash *h)
{
	struct ref_delta *r;

	for (size_t i = 0; i < t->nrefs; i++)
		if (memcmp(t->refs[i].h.b, h->b, BS_HASH_LEN) == 0)
			return &t->refs[i];
	if (t->nrefs == t->caprefs) {
		size_t cap = t->caprefs ? 2 * t->caprefs : 8;
		struct ref_delta *nr = realloc(t->refs, cap * sizeof(*nr));

		if (!nr)
			return NULL;
		t->refs = nr;
		t->caprefs = cap;
	}
	r = &t->refs[t->nrefs];
	memset(r, 0, sizeof(*r));
	r->h = *h;
	if (read_ref(t->m, h, &r->orig, &r->raw, &r->stored) < 0)
		return NULL;
	r->count = r->orig;
	t->nrefs++;
	return r;
}

int meta_txn_set_block(struct meta_txn *t, uint64_t ino, uint64_t idx,
		       const struct bs_hash *old, const struct bs_hash *h,
		       uint32_t raw, uint32_t stored)
{
	char k[20];
	size_t kn = key_ino_u64(k, 'B', ino, idx);
	struct ref_delta *r;

	if (h) {
		r = txn_ref(t, h);
		if (!r)
			goto fail;
		if (r->count == 0 && r->orig == 0) {	/* new to the store */
			r->raw = raw;
			r->stored = stored;
		}
		r->count++;
		t->cnt.ref_bytes += r->raw;
		leveldb_writebatch_put(t->wb, k, kn, (const char *)h->b, BS_HASH_LEN);
	} else {
		leveldb_writebatch_delete(t->wb, k, kn);
	}
	if (old) {
		r = txn_ref(t, old);
		if (!r)
			goto fail;
		if (r->count == 0) {
			char hex[BS_HEX_LEN + 1];

			bs_hash_hex(old, hex);
			log_err("block %s: reference count underflow (inode %llu "
				"block %llu); left as is", hex,
				(unsigned long long)ino, (unsigned long long)idx);
		} else {
			r->count--;
			t->cnt.ref_bytes -= r->raw;
		}
	}
	return 0;
fail:
	t->failed = 1;
	return -EIO;
}

void meta_freed_release(struct meta_freed *f)
{
	free(f->h);
	f->h = NULL;
	f->n = f->cap = 0;
}

static void freed_add(struct meta_freed *f, const struct bs_hash *h)
{
	if (f->n == f->cap) {
		size_t cap = f->cap ? 2 * f->cap : 8;
		struct bs_hash *nh = realloc(f->h, cap * sizeof(*nh));

		if (!nh)
			return;		/* the block becomes litter for gc */
		f->h = nh;
		f->cap = cap;
	}
	f->h[f->n++] = *h;
}

void meta_txn_abort(struct meta_txn *t)
{
	if (!t)
		return;
	leveldb_writebatch_destroy(t->wb);
	free(t->refs);
	free(t);
}

/* ---- the journal ---- */

static void jbuf_op(struct gbuf *b, char op, const char *k, size_t kn,
		    const char *v, size_t vn)
{
	unsigned char len[4];

	gbuf_add(b, &op, 1);
	put_be32(len, (uint32_t)kn);
	gbuf_add(b, len, 4);
	gbuf_add(b, k, kn);
	if (op == 'P') {
		put_be32(len, (uint32_t)vn);
		gbuf_add(b, len, 4);
		gbuf_add(b, v, vn);
	}
}

static void jbuf_put(void *arg, const char *k, size_t kn, const char *v, size_t vn)
{
	jbuf_op(arg, 'P', k, kn, v, vn);
}

static void jbuf_del(void *arg, const char *k, size_t kn)
{
	jbuf_op(arg, 'D', k, kn, NULL, 0);
}

/* Append the journal record of wb to wb itself. With the commit lock. */
static int journal_record(struct meta *m, leveldb_writebatch_t *wb)
{
	struct gbuf b = { 0 };
	unsigned char hdr[16], k[9];

	put_be64(hdr, m->jseq + 1);
	put_be64(hdr + 8, m->jmark(m->jarg));
	gbuf_add(&b, hdr, sizeof(hdr));
	leveldb_writebatch_iterate(wb, &b, jbuf_put, jbuf_del);
	if (b.failed) {
		free(b.p);
		return -ENOMEM;
	}
	k[0] = 'J';
	put_be64(k + 1, m->jseq + 1);
	leveldb_writebatch_put(wb, (char *)k, sizeof(k), (char *)b.p, b.n);
	leveldb_writebatch_put(wb, "j", 1, (char *)hdr, 8);
	free(b.p);
	m->jseq++;
	return 0;
}

void meta_journal_enable(struct meta *m, uint64_t (*mark)(void *arg), void *arg)
{
	size_t n;
	char *err = NULL;
	char *v = leveldb_get(m->db, m->ropts, "j", 1, &n, &err);

	if (err)
		leveldb_free(err);
	pthread_mutex_lock(&m->lock);
	m->jseq = v && n == 8 ? get_be64((unsigned char *)v) : 0;
	m->jarg = arg;
	m->jmark = mark;
	pthread_mutex_unlock(&m->lock);
	leveldb_free(v);
}

uint64_t meta_journal_last(struct meta *m)
{
	uint64_t s;

	pthread_mutex_lock(&m->lock);
	s = m->jseq;
	pthread_mutex_unlock(&m->lock);
	return s;
}

int meta_journal_scan(struct meta *m, uint64_t from,
		      int (*fn)(void *arg, uint64_t seq, const void *rec, size_t len),
		      void *arg)
{
	leveldb_iterator_t *it = leveldb_create_iterator(m->db, m->ropts);
	unsigned char k[9];
	int ret = 0;

	k[0] = 'J';
	put_be64(k + 1, from);
	for (leveldb_iter_seek(it, (char *)k, sizeof(k));
	     ret == 0 && leveldb_iter_valid(it); leveldb_iter_next(it)) {
		size_t kn, vn;
		const unsigned char *key = (const unsigned char *)leveldb_iter_key(it, &kn);
		const char *val = leveldb_iter_value(it, &vn);

		if (kn != 9 || key[0] != 'J')
			break;
		ret = fn(arg, get_be64(key + 1), val, vn);
	}
	leveldb_iter_destroy(it);
	return ret;
}

int meta_journal_skip(struct meta *m, uint64_t seq)
{
	leveldb_iterator_t *it;
	leveldb_writebatch_t *wb = leveldb_writebatch_create();
	unsigned char v[8];
	char *err = NULL;

	/* under the commit lock: no record may slip in between the trim
	 * and the new numbering */
	pthread_mutex_lock(&m->lock);
	it = leveldb_create_iterator(m->db, m->ropts);
	for (leveldb_iter_seek(it, "J", 1); leveldb_iter_valid(it); leveldb_iter_next(it)) {
		size_t kn;
		const char *key = leveldb_iter_key(it, &kn);

		if (kn != 9 || key[0] != 'J')
			break;
		leveldb_writebatch_delete(wb, key, kn);
	}
	leveldb_iter_destroy(it);
	m->jseq = MAX(m->jseq, seq);
	put_be64(v, m->jseq);
	leveldb_writebatch_put(wb, "j", 1, (char *)v, sizeof(v));
	leveldb_write(m->db, m->wopts_sync, wb, &err);
	pthread_mutex_unlock(&m->lock);
	leveldb_writebatch_destroy(wb);
	if (err) {
		log_err("metadata journal: %s", err);
		leveldb_free(err);
		return -EIO;
	}
	return 0;
}

int meta_journal_trim(struct meta *m, uint64_t upto)
{
	leveldb_iterator_t *it = leveldb_create_iterator(m->db, m->ropts);
	leveldb_writebatch_t *wb = leveldb_writebatch_create();
	char *err = NULL;

	for (leveldb_iter_seek(it, "J", 1); leveldb_iter_valid(it); leveldb_iter_next(it)) {
		size_t kn;
		const unsigned char *key = (const unsigned char *)leveldb_iter_key(it, &kn);

		if (kn != 9 || key[0] != 'J' || get_be64(key + 1) > upto)
			break;
		leveldb_writebatch_delete(wb, (const char *)key, kn);
	}
	leveldb_iter_destroy(it);
	leveldb_write(m->db, m->wopts, wb, &err);
	leveldb_writebatch_destroy(wb);
	if (err) {
		log_err("metadata journal trim: %s", err);
		leveldb_free(err);
		return -EIO;
	}
	return 0;
}

int meta_key_is_local(const void *k, size_t kn)
{
	const char *c = k;

	return kn == 0 || c[0] == 'J' || (kn == 1 && (c[0] == 'j' || c[0] == '!'));
}

int meta_snapshot(struct meta *m,
		  int (*fn)(void *arg, const void *k, size_t kn, const void *v, size_t vn),
		  void *arg, uint64_t *seq, uint64_t *mark)
{
	const leveldb_snapshot_t *snap;
	leveldb_readoptions_t *ro = leveldb_readoptions_create();
	leveldb_iterator_t *it;
	int ret = 0;

	pthread_mutex_lock(&m->lock);
	snap = leveldb_create_snapshot(m->db);
	*seq = m->jseq;
	*mark = m->jmark ? m->jmark(m->jarg) : 0;
	pthread_mutex_unlock(&m->lock);
	leveldb_readoptions_set_snapshot(ro, snap);
	leveldb_readoptions_set_fill_cache(ro, 0);
	it = leveldb_create_iterator(m->db, ro);
	for (leveldb_iter_seek_to_first(it); ret == 0 && leveldb_iter_valid(it);
	     leveldb_iter_next(it)) {
		size_t kn, vn;
		const char *k = leveldb_iter_key(it, &kn);
		const char *v = leveldb_iter_value(it, &vn);

		if (!meta_key_is_local(k, kn))
			ret = fn(arg, k, kn, v, vn);
	}
	leveldb_iter_destroy(it);
	leveldb_readoptions_destroy(ro);
	leveldb_release_snapshot(m->db, snap);
	return ret;
}

int meta_txn_commit(struct meta_txn *t, int sync, struct meta_freed *freed)
{
	struct meta *m = t->m;
	unsigned char buf[COUNTERS_LEN];
	char *err = NULL;
	int ret = 0;

	if (t->failed) {
		meta_txn_abort(t);
		return -EIO;
	}
	for (size_t i = 0; i < t->nrefs; i++) {
		struct ref_delta *r = &t->refs[i];
		char k[1 + BS_HASH_LEN];

		if (r->count == r->orig)
			continue;
		k[0] = 'R';
		memcpy(k + 1, r->h.b, BS_HASH_LEN);
		if (r->count == 0) {
			leveldb_writebatch_delete(t->wb, k, sizeof(k));
			t->cnt.blocks--;
			t->cnt.block_bytes -= r->raw;
			t->cnt.stored_bytes -= r->stored;
		} else {
			unsigned char v[16];

			put_be64(v, r->count);
			put_be32(v + 8, r->raw);
			put_be32(v + 12, r->stored);
			leveldb_writebatch_put(t->wb, k, sizeof(k), (char *)v, sizeof(v));
			if (r->orig == 0) {
				t->cnt.blocks++;
				t->cnt.block_bytes += r->raw;
				t->cnt.stored_bytes += r->stored;
			}
		}
	}
	encode_counters(&t->cnt, buf);
	leveldb_writebatch_put(t->wb, "C", 1, (char *)buf, COUNTERS_LEN);
	if (t->next_ino != m->super.next_ino) {
		struct meta_super s = m->super;

		s.next_ino = t->next_ino;
		encode_super(&s, buf);
		leveldb_writebatch_put(t->wb, "S", 1, (char *)buf, SUPER_LEN);
	}
	if (m->jmark) {
		ret = journal_record(m, t->wb);
		if (ret < 0) {
			m->super.next_ino = t->next_ino;
			goto out;
		}
	}
	leveldb_write(m->db, sync ? m->wopts_sync : m->wopts, t->wb, &err);
	if (err) {
		if (m->jmark)
			m->jseq--;	/* the record went nowhere */
		log_err("metadata write failed: %s", err);
		ret = status_errno(err);
		leveldb_free(err);
		/* inode numbers stay consumed: harmless, never reused */
		m->super.next_ino = t->next_ino;
		goto out;
	}
	m->cnt = t->cnt;
	m->super.next_ino = t->next_ino;
	if (freed)
		for (size_t i = 0; i < t->nrefs; i++)
			if (t->refs[i].orig > 0 && t->refs[i].count == 0)
				freed_add(freed, &t->refs[i].h);
out:
	meta_txn_abort(t);
	return ret;
}

int meta_sync(struct meta *m)
{
	char *err = NULL;

	leveldb_put(m->db, m->wopts_sync, "!", 1, "", 0, &err);
	if (err) {
		log_err("metadata sync failed: %s", err);
		leveldb_free(err);
		return -EIO;
	}
	return 0;
}

/* ---- reads ---- */

static char *get_raw(struct meta *m, const char *k, size_t kn, size_t *n, int *ret)
{
	char *err = NULL, *val = leveldb_get(m->db, m->ropts, k, kn, n, &err);

	*ret = 0;
	if (err) {
		log_err("metadata read failed: %s", err);
		leveldb_free(err);
		*ret = -EIO;
		return NULL;
	}
	if (!val)
		*ret = -ENOENT;
	return val;
}

int meta_get_inode(struct meta *m, uint64_t ino, struct meta_inode *out)
{
	char k[16], *v;
	size_t n;
	int ret;

	v = get_raw(m, k, key_ino(k, 'I', ino), &n, &ret);
	if (!v)
		return ret;
	ret = decode_inode(ino, (unsigned char *)v, n, out);
	if (ret < 0)
		log_err("inode %llu: damaged record", (unsigned long long)ino);
	leveldb_free(v);
	return ret;
}

int meta_lookup(struct meta *m, uint64_t parent, const char *name,
		uint64_t *ino, uint32_t *mode, uint64_t *cookie)
{
	char k[KEY_MAX], *v;
	size_t n;
	int ret;

	v = get_raw(m, k, key_ino_name(k, 'D', parent, name), &n, &ret);
	if (!v)
		return ret;
	if (n != 20) {
		leveldb_free(v);
		return -EIO;
	}
	*ino = get_be64((unsigned char *)v);
	if (cookie)
		*cookie = get_be64((unsigned char *)v + 8);
	if (mode)
		*mode = get_be32((unsigned char *)v + 16);
	leveldb_free(v);
	return 0;
}

static int prefix_first(struct meta *m, const char *k, size_t kn)
{
	leveldb_iterator_t *it = leveldb_create_iterator(m->db, m->ropts);
	int found = 0;

	leveldb_iter_seek(it, k, kn);
	if (leveldb_iter_valid(it)) {
		size_t n;
		const char *key = leveldb_iter_key(it, &n);

		found = n >= kn && memcmp(key, k, kn) == 0;
	}
	leveldb_iter_destroy(it);
	return found;
}

int meta_dir_is_empty(struct meta *m, uint64_t dir)
{
	char k[16];

	return !prefix_first(m, k, key_ino(k, 'D', dir));
}

int meta_get_symlink(struct meta *m, uint64_t ino, char **target)
{
	char k[16], *v;
	size_t n;
	int ret;

	v = get_raw(m, k, key_ino(k, 'L', ino), &n, &ret);
	if (!v)
		return ret;
	*target = malloc(n + 1);
	if (*target) {
		memcpy(*target, v, n);
		(*target)[n] = '\0';
	}
	leveldb_free(v);
	return *target ? 0 : -ENOMEM;
}

int meta_get_block(struct meta *m, uint64_t ino, uint64_t idx, struct bs_hash *h)
{
	char k[20], *v;
	size_t n;
	int ret;

	v = get_raw(m, k, key_ino_u64(k, 'B', ino, idx), &n, &ret);
	if (!v)
		return ret;
	if (n != BS_HASH_LEN)
		ret = -EIO;
	else
		memcpy(h->b, v, BS_HASH_LEN);
	leveldb_free(v);
	return ret;
}

int meta_get_xattr(struct meta *m, uint64_t ino, const char *name,
		   void **val, size_t *len)
{
	char k[KEY_MAX], *v;
	int ret;

	v = get_raw(m, k, key_ino_name(k, 'X', ino, name), len, &ret);
	if (!v)
		return ret == -ENOENT ? -ENODATA : ret;
	*val = malloc(*len ? *len : 1);
	if (*val)
		memcpy(*val, v, *len);
	leveldb_free(v);
	return *val ? 0 : -ENOMEM;
}

int meta_get_kv(struct meta *m, const char *name, char **val, size_t *len)
{
	char k[KV_KEY_MAX], *v;
	int ret;

	v = get_raw(m, k, key_kv(k, name), len, &ret);
	if (!v)
		return ret;
	*val = malloc(*len + 1);
	if (*val) {
		memcpy(*val, v, *len);
		(*val)[*len] = '\0';
	}
	leveldb_free(v);
	return *val ? 0 : -ENOMEM;
}

int meta_scan_kv(struct meta *m, const char *prefix,
		 int (*fn)(void *arg, const char *name, const char *val, size_t len),
		 void *arg)
{
	char k[KV_KEY_MAX], name[KV_KEY_MAX];
	size_t kn = key_kv(k, prefix);
	leveldb_iterator_t *it = leveldb_create_iterator(m->db, m->ropts);
	int ret = 0;

	for (leveldb_iter_seek(it, k, kn); ret == 0 && leveldb_iter_valid(it);
	     leveldb_iter_next(it)) {
		size_t n, vn;
		const char *key = leveldb_iter_key(it, &n);
		const char *v;

		if (n < kn || memcmp(key, k, kn) != 0 || n >= KV_KEY_MAX)
			break;
		memcpy(name, key + 1, n - 1);
		name[n - 1] = '\0';
		v = leveldb_iter_value(it, &vn);
		ret = fn(arg, name, v, vn);
	}
	leveldb_iter_destroy(it);
	return ret;
}

int meta_list_xattr(struct meta *m, uint64_t ino, char **names, size_t *len)
{
	char k[16];
	size_t kn = key_ino(k, 'X', ino), used = 0, cap = 256;
	leveldb_iterator_t *it;
	char *out = malloc(cap);

	if (!out)
		return -ENOMEM;
	it = leveldb_create_iterator(m->db, m->ropts);
	for (leveldb_iter_seek(it, k, kn); leveldb_iter_valid(it); leveldb_iter_next(it)) {
		size_t n;
		const char *key = leveldb_iter_key(it, &n);

		if (n < kn || memcmp(key, k, kn) != 0)
			break;
		if (used + n - kn + 1 > cap) {
			char *no;

			cap = 2 * (used + n);
			no = realloc(out, cap);
			if (!no) {
				free(out);
				leveldb_iter_destroy(it);
				return -ENOMEM;
			}
			out = no;
		}
		memcpy(out + used, key + kn, n - kn);
		used += n - kn;
		out[used++] = '\0';
	}
	leveldb_iter_destroy(it);
	*names = out;
	*len = used;
	return 0;
}

uint64_t meta_block_refs(struct meta *m, const struct bs_hash *h)
{
	uint64_t count = 0;
	uint32_t raw, stored;

	if (read_ref(m, h, &count, &raw, &stored) < 0)
		return 1;	/* unknown: treat as referenced */
	return count;
}

int meta_block_unref(void *m, const struct bs_hash *h)
{
	return meta_block_refs(m, h) == 0;
}

int meta_readdir(struct meta *m, uint64_t dir, uint64_t from,
		 meta_dirent_fn fn, void *arg)
{
	char k[20];
	size_t kn = key_ino_u64(k, 'E', dir, from);
	leveldb_iterator_t *it = leveldb_create_iterator(m->db, m->ropts);
	int ret = 0;

	for (leveldb_iter_seek(it, k, kn); leveldb_iter_valid(it); leveldb_iter_next(it)) {
		size_t n, vn;
		const char *key = leveldb_iter_key(it, &n);
		const unsigned char *v;
		char name[META_NAME_MAX + 1];

		if (n != 17 || memcmp(key, k, 9) != 0)
			break;
		v = (const unsigned char *)leveldb_iter_value(it, &vn);
		if (vn < 12 || vn - 12 > META_NAME_MAX) {
			ret = -EIO;
			break;
		}
		memcpy(name, v + 12, vn - 12);
		name[vn - 12] = '\0';
		if (fn(arg, name, get_be64(v), get_be32(v + 8),
		       get_be64((const unsigned char *)key + 9)))
			break;
	}
	leveldb_iter_destroy(it);
	return ret;
}

int meta_blocks(struct meta *m, uint64_t ino, uint64_t from,
		meta_block_fn fn, void *arg)
{
	char k[20];
	size_t kn = key_ino_u64(k, 'B', ino, from);
	leveldb_iterator_t *it = leveldb_create_iterator(m->db, m->ropts);
	int ret = 0;

	for (leveldb_iter_seek(it, k, kn); leveldb_iter_valid(it); leveldb_iter_next(it)) {
		size_t n, vn;
		const char *key = leveldb_iter_key(it, &n);
		const char *v;
		struct bs_hash h;

		if (n != 17 || memcmp(key, k, 9) != 0)
			break;
		v = leveldb_iter_value(it, &vn);
		if (vn != BS_HASH_LEN) {
			ret = -EIO;
			break;
		}
		memcpy(h.b, v, BS_HASH_LEN);
		ret = fn(arg, get_be64((const unsigned char *)key + 9), &h);
		if (ret)
			break;
	}
	leveldb_iter_destroy(it);
	return ret < 0 ? ret : 0;
}

int meta_orphans(struct meta *m, int (*fn)(void *arg, uint64_t ino), void *arg)
{
	leveldb_iterator_t *it = leveldb_create_iterator(m->db, m->ropts);
	uint64_t *inos = NULL;
	size_t n = 0, cap = 0;
	int ret = 0;

	/* collect first: fn commits transactions that delete these keys */
	for (leveldb_iter_seek(it, "O", 1); leveldb_iter_valid(it); leveldb_iter_next(it)) {
		size_t kn;
		const char *key = leveldb_iter_key(it, &kn);

		if (kn != 9 || key[0] != 'O')
			break;
		if (n == cap) {
			uint64_t *ni = realloc(inos, (cap = cap ? 2 * cap : 16) * sizeof(*ni));

			if (!ni)
				break;
			inos = ni;
		}
		inos[n++] = get_be64((const unsigned char *)key + 1);
	}
	leveldb_iter_destroy(it);
	for (size_t i = 0; i < n && ret == 0; i++)
		ret = fn(arg, inos[i]);
	free(inos);
	return ret;
}

int meta_refs(struct meta *m, int (*fn)(void *arg, const struct bs_hash *h,
					 uint64_t count, uint32_t raw,
					 uint32_t stored), void *arg)
{
	leveldb_iterator_t *it = leveldb_create_iterator(m->db, m->ropts);
	int ret = 0;

	for (leveldb_iter_seek(it, "R", 1); ret == 0 && leveldb_iter_valid(it);
	     leveldb_iter_next(it)) {
		size_t kn, vn;
		const char *k = leveldb_iter_key(it, &kn);
		const unsigned char *v = (const unsigned char *)leveldb_iter_value(it, &vn);
		struct bs_hash h;

		if (kn != 1 + BS_HASH_LEN || k[0] != 'R')
			break;
		if (vn != 16)
			continue;
		memcpy(h.b, k + 1, BS_HASH_LEN);
		ret = fn(arg, &h, get_be64(v), get_be32(v + 8), get_be32(v + 12));
	}
	leveldb_iter_destroy(it);
	return ret;
}
