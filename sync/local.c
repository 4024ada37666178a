/*
 * sync/local.c — the local directory backend of the block store.
 *
 * Layout under DIR:
 *   packs/<16 hex digits>   pack files: objects appended one after another,
 *                           each in a slot rounded up to 4 KiB
 *   small/                  a LevelDB: the index of the packs, and the
 *                           objects of at most small_max bytes themselves
 *   ab/<64 hex digits>      one file per object, as versions before packs
 *                           stored them: still read, listed and deleted,
 *                           never written
 *
 * Why packs: a file per block costs the host filesystem an inode, a
 * directory entry, a rename and three extra system calls per block, and on
 * ext4 without a journal, allocating an inode while many were deleted in
 * the last minutes scans them all (recently_deleted()): a quarter of the
 * CPU of a 1 GiB write went there. Appending to a few large files costs a
 * pwrite. Small objects (the one block of a 4 KiB file) stay in LevelDB,
 * where a put is an append to its log.
 *
 * Index: key "p" + the 32-byte hash; value pack id (u64), offset (u64),
 * length (u32), the wall-clock time of the put in ns (u64) and the XXH3-64
 * of the stored bytes (u64), big endian. Entries written before the
 * checksum existed are 28 bytes long and have none. Small objects are
 * keyed by the bare 32-byte hash.
 *
 * Checksums: a get of a pack object checks its bytes against the XXH3
 * recorded when they were put, and says so to the block store (the
 * get_checked op returns 1), which then decompresses without hashing the
 * plaintext again: a SHA-256 of every block read was a third of the CPU of
 * a cold sequential read (0.6 s per GiB on the development VM), XXH3 costs
 * a twentieth of that. The bytes a put receives are the block store's own
 * frame of a plaintext it has just hashed, or a frame it fetched from a
 * bucket and verified, so "stored bytes as put" is "a frame of the
 * plaintext named h". A mismatch is -EIO and a log line naming the block.
 * Small objects (LevelDB checks its own blocks) and old entries without a
 * checksum are not vouched for: the block store hashes them as before.
 *
 * Invariants
 *  - An index entry names bytes that were written before it: a put writes
 *    the slot, then adds the entry. A crash between the two leaves bytes no
 *    entry names; open cuts them away (see below).
 *  - Objects are immutable: a put of a name the index holds writes nothing.
 *  - Every pack but the active one (the one puts append to) holds at least
 *    one object: a delete that removes the last object of a pack unlinks
 *    it. The space of a deleted object is returned at once by punching a
 *    hole over its slot (FALLOC_FL_PUNCH_HOLE), so a pack never needs
 *    rewriting; where the host filesystem cannot punch holes, the space
 *    comes back when the whole pack is dead (logged once).
 *  - Each mount appends to a new pack; a pack written by an earlier mount
 *    is never appended to again, so its end is final. Open gives the two
 *    newest packs their exact shape: the gaps between the objects the
 *    index names are punched and the tail past the last one cut off: that
 *    is where a put cut short by a crash leaves bytes no entry names (puts
 *    in flight span at most the active pack and the one before it).
 *
 * Locking
 *  - stripe[h.b[0] % STRIPES] orders put, delete and their index updates
 *    of one name (a put's "present?" check and its write cannot interleave
 *    with a delete of the same name).
 *  - pack_lock protects the pack table, the active pack, its end, the live
 *    counts, references and open descriptors. It is never held across
 *    I/O: an operation takes a reference to a pack (which keeps its
 *    descriptor open), drops the lock, reads or writes, and puts it back.
 *  - At most PACK_FDS descriptors of packs are open; the least recently
 *    used unreferenced one is closed when another is needed.
 *
 * Writes: objects of LOCAL_DIRECT_MIN bytes and more in 4 KiB-aligned
 * buffers are written with O_DIRECT through a second descriptor of the
 * pack (write_slot), the slot zero-padded to its 4 KiB end. Measured on
 * the development VM, a 1 GiB write through the page cache spent most of
 * its time in the kernel's copy into freshly allocated page-cache folios
 * (memory the VM's free page reporting had handed back to the host, so
 * every first touch faulted on the host) and the two sealing threads spun
 * on the pack's inode lock around it: 2.7 to 3.7 s where the same dd onto
 * the disk took 0.7 s; with O_DIRECT, 1.5 s (1.1 s once blocks that do
 * not compress skipped the compressor, see blockstore.c). Direct writes
 * also keep block data that lakefs caches itself out of the host's page
 * cache. Reads stay buffered (the kernel drops cached pages of a range a
 * direct write covers), and where the filesystem refuses O_DIRECT (EINVAL
 * at open or write) the store falls back to the page cache for good, with
 * one log line. Other objects go through the page cache and, from 128
 * KiB, start their writeback at once (sync_file_range).
 *
 * Durability: puts are not synced one by one. sync() fdatasyncs the packs
 * written since the last sync and ends with one synced write to the index
 * (see local_sync). A direct write has reached the disk when it returns,
 * so the final sync finds little left to write; the fdatasync still makes
 * the pack's size and extents, and the disk's write cache, durable.
 *
 * The backend does not interpret the bytes: naming, compression and the
 * hash check live in blockstore.c; the backend only vouches that what it
 * returns is what it was given (see "Checksums").
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <leveldb/c.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <xxhash.h>

#include "sync/blockstore.h"
#include "util/log.h"
#include "util/util.h"

#define LOCAL_EARLY_WRITEBACK (128 << 10)
#define LOCAL_WRITE_PIECE (256 << 10)	/* see write_pieces() */
#define LOCAL_DIRECT_MIN (128 << 10)	/* see write_slot() */
#define LOCAL_TMP_PREFIX ".t."		/* an object file being written (old) */
#define SLOT_ALIGN 4096ull
#define PACK_MAX (256ull << 20)		/* a pack is closed past this size */
#define PACK_BUCKETS 256
#define PACK_FDS 64			/* pack descriptors kept open */
#define STRIPES 64
#define IDX_KEY_LEN (1 + BS_HASH_LEN)
#define IDX_VAL_LEN_OLD 28		/* before the checksum */
#define IDX_VAL_LEN 36

struct pack {
	struct pack *hnext;
	uint64_t id;
	uint64_t live;		/* objects the index places here */
	uint64_t end;		/* the active pack: where the next slot starts */
	uint64_t used;		/* tick of the last use, for closing fds */
	unsigned refs;		/* operations using fd right now */
	int fd;			/* -1: closed */
	int dfd;		/* O_DIRECT, for writing slots; -1: none */
	int dead;		/* unlinked and out of the table; freed at refs 0 */
	int dirty;		/* written since the last sync */
};

struct loc {
	uint64_t pack, off, time_ns;
	uint64_t sum;		/* XXH3-64 of the stored bytes */
	uint32_t len;
	int has_sum;		/* 0: an entry from before checksums */
};

struct local_store {
	char *dir;
	int dirfd, packfd;
	size_t small_max;
	int legacy;		/* fan-out directories of object files exist */
	leveldb_t *db;
	leveldb_options_t *dbopts;
	leveldb_readoptions_t *ro;
	leveldb_writeoptions_t *wo, *swo;	/* swo: synced */

	pthread_mutex_t stripe[STRIPES];

	pthread_mutex_t pack_lock;
	struct pack *packs[PACK_BUCKETS];	/* pack_lock */
	struct pack *active;			/* pack_lock */
	uint64_t next_id, tick;			/* pack_lock */
	unsigned nfds;				/* pack_lock */
	int no_punch;				/* pack_lock */
	int dio;		/* slots may be written with O_DIRECT; pack_lock */
	int dir_dirty;		/* a pack was created since the last sync; pack_lock */
};

static uint64_t slot_len(uint64_t len)
{
	return (len + SLOT_ALIGN - 1) & ~(SLOT_ALIGN - 1);
}

static int db_error(const char *what, char *err)
{
	int ret = strstr(err, "No space") ? -ENOSPC : -EIO;

	log_err("block store index: %s: %s", what, err);
	leveldb_free(err);
	return ret;
}

/* ---- the index ---- */

static void idx_key(const struct bs_hash *h, char key[IDX_KEY_LEN])
{
	key[0] = 'p';
	memcpy(key + 1, h->b, BS_HASH_LEN);
}

static int idx_decode(const char *v, size_t n, struct loc *l)
{
	const unsigned char *u = (const unsigned char *)v;

	if (n != IDX_VAL_LEN && n != IDX_VAL_LEN_OLD)
		return -EIO;
	l->pack = get_be64(u);
	l->off = get_be64(u + 8);
	l->len = get_be32(u + 16);
	l->time_ns = get_be64(u + 20);
	l->has_sum = n == IDX_VAL_LEN;
	l->sum = l->has_sum ? get_be64(u + 28) : 0;
	return 0;
}

/* 1 and *l, 0 if the index does not hold h, or -errno */
static int idx_get(struct local_store *ls, const struct bs_hash *h, struct loc *l)
{
	char key[IDX_KEY_LEN], *err = NULL, *v;
	size_t n;
	int ret;

	idx_key(h, key);
	v = leveldb_get(ls->db, ls->ro, key, sizeof(key), &n, &err);
	if (err)
		return db_error("get", err);
	if (!v)
		return 0;
	ret = idx_decode(v, n, l);
	leveldb_free(v);
	if (ret < 0)
		log_err("block store index: a malformed entry (%zu bytes)", n);
	return ret < 0 ? ret : 1;
}

static int idx_put(struct local_store *ls, const struct bs_hash *h, const struct loc *l)
{
	char key[IDX_KEY_LEN], *err = NULL;
	unsigned char v[IDX_VAL_LEN];

	idx_key(h, key);
	put_be64(v, l->pack);
	put_be64(v + 8, l->off);
	put_be32(v + 16, l->len);
	put_be64(v + 20, l->time_ns);
	put_be64(v + 28, l->sum);
	leveldb_put(ls->db, ls->wo, key, sizeof(key), (const char *)v, sizeof(v), &err);
	return err ? db_error("put", err) : 0;
}

static int idx_del(struct local_store *ls, const struct bs_hash *h)
{
	char key[IDX_KEY_LEN], *err = NULL;

	idx_key(h, key);
	leveldb_delete(ls->db, ls->wo, key, sizeof(key), &err);
	return err ? db_error("delete", err) : 0;
}

/* Call fn for each well-formed index entry, in key order, until it
 * returns non-zero (which is returned). */
static int idx_each(struct local_store *ls,
		    int (*fn)(void *arg, const unsigned char *hash, const struct loc *l),
		    void *arg)
{
	leveldb_iterator_t *it = leveldb_create_iterator(ls->db, ls->ro);
	int ret = 0;

	for (leveldb_iter_seek(it, "p", 1); ret == 0 && leveldb_iter_valid(it);
	     leveldb_iter_next(it)) {
		size_t kn, vn;
		const char *k = leveldb_iter_key(it, &kn), *v;
		struct loc l;

		if (kn < 1 || k[0] != 'p')
			break;
		if (kn != IDX_KEY_LEN)
			continue;	/* a small object whose hash starts with 'p' */
		v = leveldb_iter_value(it, &vn);
		if (idx_decode(v, vn, &l) == 0)
			ret = fn(arg, (const unsigned char *)k + 1, &l);
	}
	leveldb_iter_destroy(it);
	return ret;
}

/* ---- packs ---- */

static void pack_name(uint64_t id, char out[17])
{
	snprintf(out, 17, "%016llx", (unsigned long long)id);
}

static struct pack **pack_slot(struct local_store *ls, uint64_t id)
{
	struct pack **pp = &ls->packs[id % PACK_BUCKETS];

	while (*pp && (*pp)->id != id)
		pp = &(*pp)->hnext;
	return pp;
}

/* The table entry of pack id, added if missing; NULL without memory.
 * pack_lock held. */
static struct pack *pack_add_locked(struct local_store *ls, uint64_t id)
{
	struct pack **pp = pack_slot(ls, id), *p = *pp;

	if (p)
		return p;
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->id = id;
	p->fd = p->dfd = -1;
	*pp = p;
	return p;
}

/* Close the least recently used unreferenced descriptor. pack_lock held. */
static void pack_close_lru_locked(struct local_store *ls)
{
	struct pack *victim = NULL;

	for (int b = 0; b < PACK_BUCKETS; b++)
		for (struct pack *p = ls->packs[b]; p; p = p->hnext)
			if (p->fd >= 0 && p->refs == 0 && p != ls->active &&
			    (!victim || p->used < victim->used))
				victim = p;
	if (victim) {
		close(victim->fd);
		victim->fd = -1;
		ls->nfds--;
		if (victim->dfd >= 0)
			close(victim->dfd);
		victim->dfd = -1;
	}
}

/* Open p's descriptor if needed and take a reference. pack_lock held. */
static int pack_ref_locked(struct local_store *ls, struct pack *p, int create)
{
	if (p->fd < 0) {
		char name[17];
		int fd;

		if (ls->nfds >= PACK_FDS)
			pack_close_lru_locked(ls);
		pack_name(p->id, name);
		fd = openat(ls->packfd, name, O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0600);
		if (fd < 0)
			return -errno;
		p->fd = fd;
		ls->nfds++;
	}
	p->refs++;
	p->used = ++ls->tick;
	return 0;
}

static void pack_free(struct pack *p)
{
	if (p->fd >= 0)
		close(p->fd);
	if (p->dfd >= 0)
		close(p->dfd);
	free(p);
}

/* Unlink a pack that holds nothing. pack_lock held; p is not active. */
static void pack_drop_locked(struct local_store *ls, struct pack *p)
{
	char name[17];

	pack_name(p->id, name);
	if (unlinkat(ls->packfd, name, 0) < 0 && errno != ENOENT)
		log_err("block store: cannot remove the empty pack %s: %s", name,
			strerror(errno));
	*pack_slot(ls, p->id) = p->hnext;
	if (p->fd >= 0)
		ls->nfds--;
	if (p->refs) {
		p->dead = 1;	/* the last unref frees it */
		return;
	}
	pack_free(p);
}

static void pack_unref(struct local_store *ls, struct pack *p)
{
	pthread_mutex_lock(&ls->pack_lock);
	if (--p->refs == 0 && p->dead) {
		pack_free(p);
	} else if (p->refs == 0 && p->live == 0 && p != ls->active && !p->dead) {
		pack_drop_locked(ls, p);	/* emptied while it was in use */
	}
	pthread_mutex_unlock(&ls->pack_lock);
}

/* A referenced pack that holds l, or -ENOENT if it is gone. */
static int pack_get(struct local_store *ls, uint64_t id, struct pack **out)
{
	struct pack *p;
	int ret = -ENOENT;

	pthread_mutex_lock(&ls->pack_lock);
	p = *pack_slot(ls, id);
	if (p)
		ret = pack_ref_locked(ls, p, 0);
	pthread_mutex_unlock(&ls->pack_lock);
	if (ret == -ENOENT)
		log_err("block store: pack %016llx is missing", (unsigned long long)id);
	*out = ret == 0 ? p : NULL;
	return ret;
}

/* Reserve a slot of n bytes in the active pack (a new one when it is
 * full) and return the pack referenced. */
static int pack_reserve(struct local_store *ls, uint64_t n, struct pack **out,
			uint64_t *off)
{
	struct pack *p;
	int ret;

	pthread_mutex_lock(&ls->pack_lock);
	p = ls->active;
	if (!p || (p->end > 0 && p->end + n > PACK_MAX)) {
		struct pack *old = p;

		p = pack_add_locked(ls, ls->next_id);
		if (!p) {
			pthread_mutex_unlock(&ls->pack_lock);
			return -ENOMEM;
		}
		ret = pack_ref_locked(ls, p, 1);
		if (ret < 0) {
			*pack_slot(ls, p->id) = p->hnext;
			free(p);
			pthread_mutex_unlock(&ls->pack_lock);
			return ret;
		}
		p->refs--;
		ls->next_id++;
		ls->active = p;
		ls->dir_dirty = 1;
		if (old && old->live == 0 && old->refs == 0)
			pack_drop_locked(ls, old);
	}
	ret = pack_ref_locked(ls, p, 0);
	if (ret == 0) {
		*off = p->end;
		p->end += n;
		*out = p;
	}
	pthread_mutex_unlock(&ls->pack_lock);
	return ret;
}

/* Give the space of [off, off + n) back to the filesystem. */
static void punch(struct local_store *ls, struct pack *p, uint64_t off, uint64_t n)
{
	if (n == 0 || fallocate(p->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				(off_t)off, (off_t)n) == 0)
		return;
	pthread_mutex_lock(&ls->pack_lock);
	if (!ls->no_punch) {
		ls->no_punch = 1;
		log_warn("block store: cannot punch holes in packs under %s (%s): "
			 "the space of deleted blocks comes back only when a whole "
			 "pack is empty", ls->dir, strerror(errno));
	}
	pthread_mutex_unlock(&ls->pack_lock);
}

/*
 * pwrite in pieces of at most LOCAL_WRITE_PIECE bytes. Measured on the
 * development VM: with 4 MiB blocks, the copy into the page cache
 * (copy_folio_from_iter_atomic) was half the CPU of the seal threads, and
 * in 256 KiB pieces it no longer shows; a plain dd with bs=4M was as
 * erratic (0.24 to 2.5 s for 1 GiB) where bs=256K was not. The likely
 * cause: the page cache sizes its folios by the write, and large folios
 * come from the large free blocks that the VM's free page reporting has
 * handed back to the host, whose first touch faults on the host. Smaller
 * pieces cost a few more system calls and nothing elsewhere.
 */
static int write_pieces(int fd, const void *data, size_t len, uint64_t off)
{
	int ret = 0;

	for (size_t at = 0; ret == 0 && at < len; at += LOCAL_WRITE_PIECE)
		ret = pwrite_all(fd, (const char *)data + at,
				 MIN((size_t)LOCAL_WRITE_PIECE, len - at), off + at);
	return ret;
}

/* Stop writing with O_DIRECT under this store, with one log line. pack_lock
 * held. */
static void dio_off_locked(struct local_store *ls, const char *why)
{
	if (ls->dio)
		log_info("block store: %s under %s: blocks are written through "
			 "the page cache", why, ls->dir);
	ls->dio = 0;
}

/* p's O_DIRECT descriptor, opened if needed; -1 when direct I/O is off or
 * unavailable (the caller writes through the page cache). p is referenced. */
static int pack_dfd(struct local_store *ls, struct pack *p)
{
	int fd;

	pthread_mutex_lock(&ls->pack_lock);
	if (ls->dio && p->dfd < 0) {
		char name[17];

		pack_name(p->id, name);
		fd = openat(ls->packfd, name, O_WRONLY | O_DIRECT | O_CLOEXEC);
		if (fd >= 0)
			p->dfd = fd;
		else if (errno == EINVAL)
			dio_off_locked(ls, "O_DIRECT refused at open");
	}
	fd = ls->dio ? p->dfd : -1;
	pthread_mutex_unlock(&ls->pack_lock);
	return fd;
}

/*
 * Write an object's slot with O_DIRECT from a 4 KiB-aligned buffer (a
 * sealed block's is, and so is a block fetched from the bucket) in one
 * pwritev: the aligned part straight from it, the last partial 4 KiB
 * through a page on the stack, zero-padded to the slot's end. One I/O per
 * block, not two: a separate 4 KiB tail write waited as long as the 1 MiB
 * before it. -EINVAL means the filesystem refused the alignment. A short
 * write, which a direct write should never be, is finished piece by piece.
 */
static int write_direct(int dfd, const void *data, size_t len, uint64_t off)
{
	_Alignas(SLOT_ALIGN) unsigned char last[SLOT_ALIGN];
	size_t head = len & ~(SLOT_ALIGN - 1), tail = len - head;
	struct iovec iov[2];
	int n = 0, ret = 0;
	ssize_t w;

	if (head)
		iov[n++] = (struct iovec){ (void *)data, head };
	if (tail) {
		memcpy(last, (const unsigned char *)data + head, tail);
		memset(last + tail, 0, sizeof(last) - tail);
		iov[n++] = (struct iovec){ last, sizeof(last) };
	}
	do
		w = pwritev(dfd, iov, n, (off_t)off);
	while (w < 0 && errno == EINTR);
	if (w < 0)
		return -errno;
	if ((size_t)w < head)
		ret = pwrite_all(dfd, (const unsigned char *)data + w, head - (size_t)w,
				 off + (uint64_t)w);
	if (ret == 0 && tail && (size_t)w < head + sizeof(last)) {
		size_t done = (size_t)w > head ? (size_t)w - head : 0;

		ret = pwrite_all(dfd, last + done, sizeof(last) - done,
				 off + head + done);
	}
	return ret;
}

/* Write the slot of an object at off in p: large ones in aligned buffers
 * with O_DIRECT where the filesystem takes it, the rest through the page
 * cache. */
static int write_slot(struct local_store *ls, struct pack *p, const void *data,
		      size_t len, uint64_t off)
{
	int dfd = len >= LOCAL_DIRECT_MIN && (uintptr_t)data % SLOT_ALIGN == 0 ?
		  pack_dfd(ls, p) : -1, ret;

	if (dfd >= 0) {
		ret = write_direct(dfd, data, len, off);
		if (ret != -EINVAL)
			return ret;
		pthread_mutex_lock(&ls->pack_lock);
		dio_off_locked(ls, "O_DIRECT writes refused");
		pthread_mutex_unlock(&ls->pack_lock);
	}
	ret = write_pieces(p->fd, data, len, off);
	if (ret == 0 && len >= LOCAL_EARLY_WRITEBACK)
		sync_file_range(p->fd, (off_t)off, (off_t)slot_len(len),
				SYNC_FILE_RANGE_WRITE);
	return ret;
}

static pthread_mutex_t *stripe_of(struct local_store *ls, const struct bs_hash *h)
{
	return &ls->stripe[h->b[0] % STRIPES];
}

/* ---- objects of earlier versions: one file each ---- */

static void file_path(const struct bs_hash *h, char *out, size_t cap)
{
	char hex[BS_HEX_LEN + 1];

	bs_hash_hex(h, hex);
	snprintf(out, cap, "%.2s/%s", hex, hex);
}

/* 1 (and the size), 0 if absent, or -errno */
static int file_has(struct local_store *ls, const struct bs_hash *h, uint64_t *size)
{
	char path[80];
	struct stat st;

	if (!ls->legacy)
		return 0;
	file_path(h, path, sizeof(path));
	if (fstatat(ls->dirfd, path, &st, 0) == 0) {
		if (size)
			*size = (uint64_t)st.st_size;
		return 1;
	}
	return errno == ENOENT || errno == ENOTDIR ? 0 : -errno;
}

static int file_get(struct local_store *ls, const struct bs_hash *h, void **data,
		    size_t *len)
{
	char path[80];
	struct stat st;
	void *buf;
	int fd, ret;

	if (!ls->legacy)
		return -ENOENT;
	file_path(h, path, sizeof(path));
	fd = openat(ls->dirfd, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOTDIR ? -ENOENT : -errno;
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	ret = buf ? pread_all(fd, buf, (size_t)st.st_size, 0) : -ENOMEM;
	close(fd);
	if (ret < 0) {
		free(buf);
		return ret;
	}
	*data = buf;
	*len = (size_t)st.st_size;
	return 0;
}

/* ---- the backend ---- */

/* 1 and the value, 0 if absent, -errno on a LevelDB error */
static int small_get(struct local_store *ls, const struct bs_hash *h,
		     char **val, size_t *len)
{
	char *err = NULL;

	*val = NULL;
	if (!ls->small_max)
		return 0;
	*val = leveldb_get(ls->db, ls->ro, (const char *)h->b, BS_HASH_LEN, len, &err);
	if (err)
		return db_error("get", err);
	return *val != NULL;
}

static int local_put(void *ctx, const struct bs_hash *h, const void *data, size_t len)
{
	struct local_store *ls = ctx;
	pthread_mutex_t *sl = stripe_of(ls, h);
	struct loc l;
	struct pack *p = NULL;
	int ret;

	if (len <= ls->small_max) {
		char *err = NULL;

		leveldb_put(ls->db, ls->wo, (const char *)h->b, BS_HASH_LEN, data, len, &err);
		return err ? db_error("put", err) : 0;
	}
	if (len > UINT32_MAX)
		return -EFBIG;
	pthread_mutex_lock(sl);
	ret = idx_get(ls, h, &l);
	if (ret != 0)
		goto out;	/* stored already (1 becomes 0 below), or an error */
	ret = pack_reserve(ls, slot_len(len), &p, &l.off);
	if (ret < 0)
		goto out;
	ret = write_slot(ls, p, data, len, l.off);
	if (ret == 0) {
		struct timespec ts = now_ts();

		l.pack = p->id;
		l.len = (uint32_t)len;
		l.time_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
		l.sum = XXH3_64bits(data, len);
		ret = idx_put(ls, h, &l);
	}
	if (ret < 0) {
		punch(ls, p, l.off, slot_len(len));	/* what a short write left */
	} else {
		pthread_mutex_lock(&ls->pack_lock);
		p->live++;
		p->dirty = 1;
		pthread_mutex_unlock(&ls->pack_lock);
	}
	pack_unref(ls, p);
out:
	pthread_mutex_unlock(sl);
	return ret < 0 ? ret : 0;
}

/*
 * get, and 1 when the bytes were checked against the checksum recorded
 * with them (see "Checksums" above), 0 when they were not.
 */
static int local_get_checked(void *ctx, const struct bs_hash *h, void **data,
			     size_t *len, unsigned char **plain, size_t *plen)
{
	struct local_store *ls = ctx;
	struct pack *p;
	struct loc l;
	char *sval;
	void *buf;
	int ret = idx_get(ls, h, &l);

	(void)plain;
	(void)plen;
	if (ret == 1) {
		if ((ret = pack_get(ls, l.pack, &p)) < 0)
			return ret == -ENOENT ? -EIO : ret;
		buf = malloc(l.len ? l.len : 1);
		ret = buf ? pread_all(p->fd, buf, l.len, l.off) : -ENOMEM;
		pack_unref(ls, p);
		if (ret == 0 && l.has_sum && XXH3_64bits(buf, l.len) != l.sum) {
			char hex[BS_HEX_LEN + 1];

			bs_hash_hex(h, hex);
			log_err("block %s is corrupt: its bytes in pack %016llx at "
				"%llu do not match the checksum written with them",
				hex, (unsigned long long)l.pack,
				(unsigned long long)l.off);
			ret = -EIO;
		}
		if (ret < 0) {
			free(buf);
			return ret;
		}
		*data = buf;
		*len = l.len;
		return l.has_sum;
	}
	if (ret < 0)
		return ret;
	ret = small_get(ls, h, &sval, len);
	if (ret != 0) {
		if (ret < 0)
			return ret;
		buf = malloc(*len ? *len : 1);
		if (buf)
			memcpy(buf, sval, *len);
		leveldb_free(sval);
		*data = buf;
		return buf ? 0 : -ENOMEM;
	}
	return file_get(ls, h, data, len);
}

static int local_get(void *ctx, const struct bs_hash *h, void **data, size_t *len)
{
	int ret = local_get_checked(ctx, h, data, len, NULL, NULL);

	return ret < 0 ? ret : 0;
}

static int local_has(void *ctx, const struct bs_hash *h, uint64_t *size)
{
	struct local_store *ls = ctx;
	struct loc l;
	char *sval;
	size_t slen;
	int ret = idx_get(ls, h, &l);

	if (ret == 1 && size)
		*size = l.len;
	if (ret != 0)
		return ret;
	ret = small_get(ls, h, &sval, &slen);
	if (ret != 0) {
		leveldb_free(sval);
		if (ret > 0 && size)
			*size = slen;
		return ret;
	}
	return file_has(ls, h, size);
}

static int local_del(void *ctx, const struct bs_hash *h)
{
	struct local_store *ls = ctx;
	pthread_mutex_t *sl = stripe_of(ls, h);
	char path[80], *err = NULL;
	struct pack *p;
	struct loc l;
	int ret;

	pthread_mutex_lock(sl);
	ret = idx_get(ls, h, &l);
	if (ret == 1 && (ret = idx_del(ls, h)) == 0) {
		if (pack_get(ls, l.pack, &p) == 0) {
			punch(ls, p, l.off, slot_len(l.len));
			pthread_mutex_lock(&ls->pack_lock);
			p->live--;
			pthread_mutex_unlock(&ls->pack_lock);
			pack_unref(ls, p);	/* drops the pack if that was its last */
		}
	}
	pthread_mutex_unlock(sl);
	if (ret < 0)
		return ret;
	if (ls->small_max) {
		leveldb_delete(ls->db, ls->wo, (const char *)h->b, BS_HASH_LEN, &err);
		if (err)
			return db_error("delete", err);
	}
	if (!ls->legacy)
		return 0;
	file_path(h, path, sizeof(path));
	if (unlinkat(ls->dirfd, path, 0) < 0 && errno != ENOENT && errno != ENOTDIR)
		return -errno;
	return 0;
}

/*
 * Make every put so far durable: fdatasync the packs written since the
 * last sync, fsync the packs directory if a pack was created, then one
 * synced write to the index, which makes its log (entries and small
 * objects) durable. Only lakefs's own files are flushed: a syncfs() would
 * also wait for every other dirty file of the host filesystem, and a
 * process in it cannot even be killed.
 */
static int local_sync(void *ctx)
{
	struct local_store *ls = ctx;
	struct pack **list = NULL;
	size_t n = 0, cap = 0;
	int dir_dirty, ret = 0;
	char *err = NULL;

	pthread_mutex_lock(&ls->pack_lock);
	for (int b = 0; b < PACK_BUCKETS; b++)
		for (struct pack *p = ls->packs[b]; p; p = p->hnext) {
			if (!p->dirty)
				continue;
			if (n == cap) {
				struct pack **nl = realloc(list, (cap = cap ? 2 * cap : 8) * sizeof(*nl));

				if (!nl) {
					ret = -ENOMEM;
					goto unlock;
				}
				list = nl;
			}
			if (pack_ref_locked(ls, p, 0) < 0) {
				ret = -EIO;
				goto unlock;
			}
			p->dirty = 0;
			list[n++] = p;
		}
unlock:
	dir_dirty = ls->dir_dirty;
	ls->dir_dirty = 0;
	pthread_mutex_unlock(&ls->pack_lock);
	for (size_t i = 0; i < n; i++) {
		if (ret == 0 && fdatasync(list[i]->fd) < 0)
			ret = -errno;
		if (ret < 0) {	/* not known to be durable: the next sync retries */
			pthread_mutex_lock(&ls->pack_lock);
			list[i]->dirty = 1;
			pthread_mutex_unlock(&ls->pack_lock);
		}
		pack_unref(ls, list[i]);
	}
	free(list);
	if (ret == 0 && dir_dirty && fsync(ls->packfd) < 0)
		ret = -errno;
	if (ret < 0) {
		if (dir_dirty) {
			pthread_mutex_lock(&ls->pack_lock);
			ls->dir_dirty = 1;
			pthread_mutex_unlock(&ls->pack_lock);
		}
		return ret;
	}
	leveldb_put(ls->db, ls->swo, "sync", 4, "", 0, &err);
	return err ? db_error("sync", err) : 0;
}

struct hash_list {
	struct bs_hash *h;
	size_t n, cap;
};

static void list_add(struct hash_list *l, const unsigned char *b)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 64;
		struct bs_hash *nh = realloc(l->h, cap * sizeof(*nh));

		if (!nh)
			return;
		l->h = nh;
		l->cap = cap;
	}
	memcpy(l->h[l->n++].b, b, BS_HASH_LEN);
}

/* Objects of earlier versions, one file each: those older than before_ns,
 * and the litter of a put cut short by a crash is removed. */
static void scan_files(struct local_store *ls, uint64_t before_ns, struct hash_list *out)
{
	for (int i = 0; i < 256; i++) {
		char sub[3];
		int fd;
		DIR *d;
		struct dirent *de;

		snprintf(sub, sizeof(sub), "%02x", i);
		fd = openat(ls->dirfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			continue;
		d = fdopendir(fd);
		if (!d) {
			close(fd);
			continue;
		}
		while ((de = readdir(d)) != NULL) {
			struct bs_hash h;
			struct stat st;
			uint64_t mt;
			int is_tmp = strncmp(de->d_name, LOCAL_TMP_PREFIX,
					     strlen(LOCAL_TMP_PREFIX)) == 0;

			if (!is_tmp && (strlen(de->d_name) != BS_HEX_LEN ||
					hex_decode(de->d_name, h.b, BS_HASH_LEN) < 0))
				continue;
			if (fstatat(fd, de->d_name, &st, 0) < 0)
				continue;
			mt = (uint64_t)st.st_mtim.tv_sec * 1000000000ull +
			     (uint64_t)st.st_mtim.tv_nsec;
			if (is_tmp)
				unlinkat(fd, de->d_name, 0);
			else if (mt < before_ns)
				list_add(out, h.b);
		}
		closedir(d);
	}
}

struct scan_state {
	struct hash_list l;
	uint64_t before_ns;
};

static int scan_one(void *arg, const unsigned char *hash, const struct loc *l)
{
	struct scan_state *ss = arg;

	if (l->time_ns < ss->before_ns)
		list_add(&ss->l, hash);
	return 0;
}

static int local_scan(void *ctx, uint64_t before_ns,
		      void (*fn)(void *arg, const struct bs_hash *h), void *arg)
{
	struct local_store *ls = ctx;
	struct scan_state ss = { { 0 }, before_ns };
	struct hash_list l;

	/* collect first: fn may delete what the iterators walk */
	if (ls->small_max) {
		leveldb_iterator_t *it = leveldb_create_iterator(ls->db, ls->ro);

		for (leveldb_iter_seek_to_first(it); leveldb_iter_valid(it);
		     leveldb_iter_next(it)) {
			size_t kn;
			const char *k = leveldb_iter_key(it, &kn);

			if (kn == BS_HASH_LEN)
				list_add(&ss.l, (const unsigned char *)k);
		}
		leveldb_iter_destroy(it);
	}
	idx_each(ls, scan_one, &ss);
	l = ss.l;
	if (ls->legacy)
		scan_files(ls, before_ns, &l);
	for (size_t i = 0; i < l.n; i++)
		fn(arg, &l.h[i]);
	free(l.h);
	return 0;
}

static void local_advise(void *ctx, const struct bs_hash *h)
{
	struct local_store *ls = ctx;
	struct pack *p;
	struct loc l;

	if (idx_get(ls, h, &l) != 1 || pack_get(ls, l.pack, &p) < 0)
		return;
	posix_fadvise(p->fd, (off_t)l.off, (off_t)l.len, POSIX_FADV_WILLNEED);
	pack_unref(ls, p);
}

static int local_locate(void *ctx, const struct bs_hash *h, char **path,
			uint64_t *off, uint64_t *len)
{
	struct local_store *ls = ctx;
	char name[17], buf[4200];
	struct loc l;
	uint64_t size;
	int ret = idx_get(ls, h, &l);

	if (ret == 1) {
		pack_name(l.pack, name);
		snprintf(buf, sizeof(buf), "%s/packs/%s", ls->dir, name);
		*off = l.off;
		*len = l.len;
	} else if (ret == 0 && (ret = file_has(ls, h, &size)) == 1) {
		char rel[80];

		file_path(h, rel, sizeof(rel));
		snprintf(buf, sizeof(buf), "%s/%s", ls->dir, rel);
		*off = 0;
		*len = size;
	} else {
		return ret < 0 ? ret : -ENOENT;	/* absent, or a small object */
	}
	*path = strdup(buf);
	return *path ? 0 : -ENOMEM;
}

static void local_free(void *ctx)
{
	struct local_store *ls = ctx;

	for (int b = 0; b < PACK_BUCKETS; b++) {
		struct pack *p = ls->packs[b];

		while (p) {
			struct pack *next = p->hnext;

			if (p->live == 0) {	/* the active pack, if it kept nothing */
				char name[17];

				pack_name(p->id, name);
				unlinkat(ls->packfd, name, 0);
			}
			pack_free(p);
			p = next;
		}
	}
	if (ls->db)
		leveldb_close(ls->db);
	if (ls->dbopts)
		leveldb_options_destroy(ls->dbopts);
	if (ls->ro)
		leveldb_readoptions_destroy(ls->ro);
	if (ls->wo)
		leveldb_writeoptions_destroy(ls->wo);
	if (ls->swo)
		leveldb_writeoptions_destroy(ls->swo);
	for (int i = 0; i < STRIPES; i++)
		pthread_mutex_destroy(&ls->stripe[i]);
	pthread_mutex_destroy(&ls->pack_lock);
	if (ls->packfd >= 0)
		close(ls->packfd);
	if (ls->dirfd >= 0)
		close(ls->dirfd);
	free(ls->dir);
	free(ls);
}

static const struct bs_backend_ops local_ops = {
	.name = "local",
	.put = local_put,
	.get = local_get,
	.get_checked = local_get_checked,
	.has = local_has,
	.del = local_del,
	.sync = local_sync,
	.advise = local_advise,
	.scan = local_scan,
	.locate = local_locate,
	.free = local_free,
};

/* ---- open ---- */

struct span {
	uint64_t off, end;
};

static int span_cmp(const void *a, const void *b)
{
	const struct span *x = a, *y = b;

	return x->off < y->off ? -1 : x->off > y->off;
}

/* Give a pack of an earlier mount its exact shape: punch what lies between
 * the objects the index names, cut what lies past the last. */
static void pack_trim(struct local_store *ls, struct pack *p, struct span *s, size_t n)
{
	uint64_t at = 0;

	if (pack_ref_locked(ls, p, 0) < 0)
		return;
	qsort(s, n, sizeof(*s), span_cmp);
	for (size_t i = 0; i < n; i++) {
		if (s[i].off > at)
			punch(ls, p, at, s[i].off - at);
		if (s[i].end > at)
			at = s[i].end;
	}
	if (ftruncate(p->fd, (off_t)at) < 0)
		log_debug("block store: cannot trim pack %016llx: %s",
			  (unsigned long long)p->id, strerror(errno));
	p->refs--;
}

struct load_state {
	struct local_store *ls;
	uint64_t newest[2];	/* the two highest pack ids, UINT64_MAX: none */
	struct span *sp[2];	/* the objects of each */
	size_t n[2], cap[2];
};

static int load_count(void *arg, const unsigned char *hash, const struct loc *l)
{
	struct load_state *st = arg;
	struct pack *p = pack_add_locked(st->ls, l->pack);

	(void)hash;
	if (!p)
		return -ENOMEM;
	p->live++;
	if (l->pack >= st->ls->next_id)
		st->ls->next_id = l->pack + 1;
	if (st->newest[0] == UINT64_MAX || l->pack > st->newest[0]) {
		if (st->newest[0] != UINT64_MAX)
			st->newest[1] = st->newest[0];
		st->newest[0] = l->pack;
	} else if (l->pack != st->newest[0] &&
		   (st->newest[1] == UINT64_MAX || l->pack > st->newest[1])) {
		st->newest[1] = l->pack;
	}
	return 0;
}

static int load_spans(void *arg, const unsigned char *hash, const struct loc *l)
{
	struct load_state *st = arg;

	(void)hash;
	for (int j = 0; j < 2; j++) {
		if (l->pack != st->newest[j])
			continue;
		if (st->n[j] == st->cap[j]) {
			size_t cap = st->cap[j] ? 2 * st->cap[j] : 256;
			struct span *ns = realloc(st->sp[j], cap * sizeof(*ns));

			if (!ns)
				return -ENOMEM;
			st->sp[j] = ns;
			st->cap[j] = cap;
		}
		st->sp[j][st->n[j]].off = l->off;
		st->sp[j][st->n[j]++].end = l->off + l->len;
	}
	return 0;
}

/* Build the pack table from the index and the packs directory. */
static int load_packs(struct local_store *ls)
{
	struct load_state st = { ls, { UINT64_MAX, UINT64_MAX }, { NULL, NULL },
				 { 0, 0 }, { 0, 0 } };
	DIR *d;
	struct dirent *de;
	int fd, ret;

	/* live counts and the two newest packs, then the objects of those */
	ret = idx_each(ls, load_count, &st);
	if (ret == 0)
		ret = idx_each(ls, load_spans, &st);
	if (ret < 0)
		goto out;
	/* packs no entry names: empty, or left by a crash before their first
	 * entry; ids past every entry still count, so that none is reused */
	fd = dup(ls->packfd);
	d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		ret = -errno;
		if (fd >= 0)
			close(fd);
		goto out;
	}
	while ((de = readdir(d)) != NULL) {
		unsigned char raw[8];
		uint64_t id;

		if (strlen(de->d_name) != 16 || hex_decode(de->d_name, raw, 8) < 0)
			continue;
		id = get_be64(raw);
		if (id >= ls->next_id)
			ls->next_id = id + 1;
		if (!*pack_slot(ls, id) && unlinkat(ls->packfd, de->d_name, 0) < 0)
			log_err("block store: cannot remove the empty pack %s: %s",
				de->d_name, strerror(errno));
	}
	closedir(d);
	for (int j = 0; j < 2; j++) {
		struct pack *p = st.newest[j] == UINT64_MAX ? NULL : *pack_slot(ls, st.newest[j]);

		if (p)
			pack_trim(ls, p, st.sp[j], st.n[j]);
	}
out:
	free(st.sp[0]);
	free(st.sp[1]);
	return ret;
}

static void clear_tmp(int dirfd)
{
	int fd = openat(dirfd, "tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d;
	struct dirent *de;

	if (fd < 0)
		return;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return;
	}
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			unlinkat(fd, de->d_name, 0);
	closedir(d);
}

int bs_local_open(struct bs_backend *be, const char *dir, size_t small_max,
		  char **errmsg)
{
	struct local_store *ls = calloc(1, sizeof(*ls));
	char msg[4400], path[4200], *err = NULL;
	int ret;

	if (!ls)
		return -ENOMEM;
	ls->dirfd = ls->packfd = -1;
	pthread_mutex_init(&ls->pack_lock, NULL);
	for (int i = 0; i < STRIPES; i++)
		pthread_mutex_init(&ls->stripe[i], NULL);
	ls->small_max = small_max;
	ls->dio = 1;
	ls->dir = strdup(dir);
	snprintf(path, sizeof(path), "%s/packs", dir);
	ret = ls->dir ? mkdir_p(path, 0700) : -ENOMEM;
	if (ret < 0) {
		snprintf(msg, sizeof(msg), "cannot create block directory %s: %s",
			 path, strerror(-ret));
		goto fail;
	}
	ls->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ls->packfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (ls->dirfd < 0 || ls->packfd < 0) {
		ret = -errno;
		snprintf(msg, sizeof(msg), "cannot open block directory %s: %s",
			 ls->dirfd < 0 ? dir : path, strerror(errno));
		goto fail;
	}
	clear_tmp(ls->dirfd);
	for (int i = 0; i < 256 && !ls->legacy; i++) {
		char sub[3];
		struct stat st;

		snprintf(sub, sizeof(sub), "%02x", i);
		ls->legacy = fstatat(ls->dirfd, sub, &st, 0) == 0 && S_ISDIR(st.st_mode);
	}
	ls->dbopts = leveldb_options_create();
	leveldb_options_set_create_if_missing(ls->dbopts, 1);
	leveldb_options_set_compression(ls->dbopts, leveldb_no_compression);
	leveldb_options_set_write_buffer_size(ls->dbopts, 8 << 20);
	ls->ro = leveldb_readoptions_create();
	ls->wo = leveldb_writeoptions_create();
	ls->swo = leveldb_writeoptions_create();
	leveldb_writeoptions_set_sync(ls->swo, 1);
	snprintf(path, sizeof(path), "%s/small", dir);
	ls->db = leveldb_open(ls->dbopts, path, &err);
	if (err) {
		snprintf(msg, sizeof(msg), "cannot open the block index %s: %s", path, err);
		leveldb_free(err);
		ls->db = NULL;
		ret = -EIO;
		goto fail;
	}
	ret = load_packs(ls);
	if (ret < 0) {
		snprintf(msg, sizeof(msg), "cannot load the packs under %s: %s", dir,
			 strerror(-ret));
		goto fail;
	}
	be->ops = &local_ops;
	be->ctx = ls;
	return 0;
fail:
	local_free(ls);
	if (errmsg)
		*errmsg = strdup(msg);
	return ret;
}
