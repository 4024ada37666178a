/*
 * sync/local.c — the local directory backend of the block store.
 *
 * Layout: DIR/ab/<64 hex digits>, 256 fan-out directories made at open. A
 * put writes the whole object to a unique temporary name (DIR/ab/.t.*) and
 * renames it into place, so a reader sees either no object or a complete
 * one; a crash leaves at most such litter, which the scan behind garbage
 * collection removes (DIR/tmp/ held it in earlier versions; open clears it). Puts are not fsynced one by one: sync() does one syncfs() on
 * the directory's filesystem, which makes every put so far durable in a
 * single journal commit (what fsync of a file needs, at a fraction of the
 * cost of fsyncing each block file and its directory). Large objects start
 * their writeback as soon as they are written (sync_file_range), so the
 * disk works while later blocks are hashed and the final sync is short.
 *
 * Small objects (at most small_max bytes, typically the one block of a
 * small file) go into a LevelDB instance at DIR/small instead: creating an
 * inode per 4 KiB file costs the host filesystem far more than a LevelDB
 * put, and a tree of small files (a git checkout, a CSV export per day) is
 * exactly what a lake receives. LevelDB appends each put to its log with
 * write(2), so a put survives the daemon being killed, and the syncfs of
 * sync() makes it durable like the files.
 *
 * Objects are immutable: a put of an existing name rewrites identical bytes.
 * The backend does not interpret the bytes; hashing and compression live in
 * blockstore.c.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <leveldb/c.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sync/blockstore.h"
#include "util/log.h"
#include "util/util.h"

#define LOCAL_EARLY_WRITEBACK (128 << 10)
#define LOCAL_TMP_PREFIX ".t."		/* an object being written */
#define LOCAL_DIRECT_MIN (256 << 10)	/* objects written with O_DIRECT */
#define LOCAL_DIRECT_ALIGN 4096

struct local_store {
	char *dir;
	int dirfd;
	atomic_ulong seq;
	atomic_int no_direct;		/* O_DIRECT failed once: never again */
	size_t small_max;
	leveldb_t *small;		/* NULL when small_max is 0 */
	leveldb_options_t *sopts;
	leveldb_readoptions_t *sro;
	leveldb_writeoptions_t *swo;
};

/* 1 and the value, 0 if absent, -EIO on a LevelDB error */
static int small_get(struct local_store *ls, const struct bs_hash *h,
		     char **val, size_t *len)
{
	char *err = NULL;

	*val = NULL;
	if (!ls->small)
		return 0;
	*val = leveldb_get(ls->small, ls->sro, (const char *)h->b, BS_HASH_LEN,
			   len, &err);
	if (err) {
		log_err("small block store: %s", err);
		leveldb_free(err);
		return -EIO;
	}
	return *val != NULL;
}

static void local_path(const struct bs_hash *h,
		       char *out, size_t cap)
{
	char hex[BS_HEX_LEN + 1];

	bs_hash_hex(h, hex);
	snprintf(out, cap, "%.2s/%s", hex, hex);
}

static int use_direct(struct local_store *ls, const void *data, size_t len)
{
	return len >= LOCAL_DIRECT_MIN && !atomic_load(&ls->no_direct) &&
	       ((uintptr_t)data & (LOCAL_DIRECT_ALIGN - 1)) == 0;
}

/* Create the temporary file, with O_DIRECT when the write will use it. */
static int open_tmp(struct local_store *ls, const char *tmp, const void *data,
		    size_t len)
{
	int flags = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, fd;

	if (use_direct(ls, data, len)) {
		fd = openat(ls->dirfd, tmp, flags | O_DIRECT, 0600);
		if (fd >= 0)
			return fd;
		if (errno != EINVAL)
			return -errno;
		atomic_store(&ls->no_direct, 1);	/* tmpfs and friends */
		log_debug("block store: O_DIRECT unsupported here; buffered writes");
	}
	fd = openat(ls->dirfd, tmp, flags, 0600);
	return fd < 0 ? -errno : fd;
}

/*
 * Write one object. A large object goes to the disk directly from the
 * caller's (aligned) buffer: no copy into the page cache, and nothing left
 * for the next sync to write but its last partial 4 KiB, which is written
 * through the page cache after clearing O_DIRECT. Others are buffered, and
 * large buffered ones start their writeback at once (sync_file_range), so
 * a later sync finds little left to do.
 */
static int write_object(struct local_store *ls, int fd, const void *data, size_t len)
{
	int fl = fcntl(fd, F_GETFL);
	size_t head;
	int ret;

	if (fl < 0 || !(fl & O_DIRECT)) {
		ret = write_all(fd, data, len);
		if (ret == 0 && len >= LOCAL_EARLY_WRITEBACK)
			sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
		return ret;
	}
	head = len & ~(size_t)(LOCAL_DIRECT_ALIGN - 1);
	ret = write_all(fd, data, head);
	if (ret == -EINVAL) {	/* the device wants more alignment */
		atomic_store(&ls->no_direct, 1);
		if (fcntl(fd, F_SETFL, fl & ~O_DIRECT) < 0)
			return -errno;
		return pwrite_all(fd, data, len, 0);
	}
	if (ret < 0 || head == len)
		return ret;
	if (fcntl(fd, F_SETFL, fl & ~O_DIRECT) < 0)
		return -errno;
	return pwrite_all(fd, (const char *)data + head, len - head, head);
}

static int local_put(void *ctx, const struct bs_hash *h, const void *data, size_t len)
{
	struct local_store *ls = ctx;
	char tmp[64], path[80];
	unsigned long seq = atomic_fetch_add(&ls->seq, 1);
	int fd, ret;

	if (ls->small && len <= ls->small_max) {
		char *err = NULL;

		leveldb_put(ls->small, ls->swo, (const char *)h->b, BS_HASH_LEN,
			    data, len, &err);
		if (err) {
			ret = strstr(err, "No space") ? -ENOSPC : -EIO;
			log_err("small block store: %s", err);
			leveldb_free(err);
			return ret;
		}
		return 0;
	}
	/* the temporary name is in the object's own directory: a rename within
	 * one directory takes no filesystem-wide rename lock */
	local_path(h, path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%.2s/" LOCAL_TMP_PREFIX "%d.%lu", path,
		 (int)getpid(), seq);
	fd = open_tmp(ls, tmp, data, len);
	if (fd < 0)
		return fd;
	ret = write_object(ls, fd, data, len);
	if (close(fd) < 0 && ret == 0)
		ret = -errno;
	if (ret == 0 && renameat(ls->dirfd, tmp, ls->dirfd, path) < 0)
		ret = -errno;
	if (ret < 0)
		unlinkat(ls->dirfd, tmp, 0);
	return ret;
}

static int local_get(void *ctx, const struct bs_hash *h, void **data, size_t *len)
{
	struct local_store *ls = ctx;
	char path[80];
	struct stat st;
	unsigned char *buf;
	size_t got = 0;
	char *sval;
	int fd, ret = 0;

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
	local_path(h, path, sizeof(path));
	fd = openat(ls->dirfd, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		goto out;
	}
	buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!buf) {
		ret = -ENOMEM;
		goto out;
	}
	while (got < (size_t)st.st_size) {
		ssize_t r = pread(fd, buf + got, (size_t)st.st_size - got, (off_t)got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			ret = r < 0 ? -errno : -EIO;
			free(buf);
			goto out;
		}
		got += (size_t)r;
	}
	*data = buf;
	*len = got;
out:
	close(fd);
	return ret;
}

static int local_has(void *ctx, const struct bs_hash *h, uint64_t *size)
{
	struct local_store *ls = ctx;
	char path[80], *sval;
	struct stat st;
	size_t slen;
	int ret = small_get(ls, h, &sval, &slen);

	if (ret != 0) {
		leveldb_free(sval);
		if (ret > 0 && size)
			*size = slen;
		return ret;
	}
	local_path(h, path, sizeof(path));
	if (fstatat(ls->dirfd, path, &st, 0) == 0) {
		if (size)
			*size = (uint64_t)st.st_size;
		return 1;
	}
	return errno == ENOENT ? 0 : -errno;
}

static int local_del(void *ctx, const struct bs_hash *h)
{
	struct local_store *ls = ctx;
	char path[80];

	if (ls->small) {
		char *err = NULL;

		leveldb_delete(ls->small, ls->swo, (const char *)h->b, BS_HASH_LEN, &err);
		if (err) {
			log_err("small block store: %s", err);
			leveldb_free(err);
			return -EIO;
		}
	}
	local_path(h, path, sizeof(path));
	if (unlinkat(ls->dirfd, path, 0) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

static int local_sync(void *ctx)
{
	struct local_store *ls = ctx;

	return syncfs(ls->dirfd) < 0 ? -errno : 0;
}

static int local_scan(void *ctx, uint64_t before_ns,
		      void (*fn)(void *arg, const struct bs_hash *h), void *arg)
{
	struct local_store *ls = ctx;

	if (ls->small) {
		/* collect first: fn may delete what the iterator walks */
		leveldb_iterator_t *it = leveldb_create_iterator(ls->small, ls->sro);
		struct bs_hash *hs = NULL;
		size_t n = 0, cap = 0;

		for (leveldb_iter_seek_to_first(it); leveldb_iter_valid(it);
		     leveldb_iter_next(it)) {
			size_t kn;
			const char *k = leveldb_iter_key(it, &kn);

			if (kn != BS_HASH_LEN)
				continue;
			if (n == cap) {
				struct bs_hash *nh = realloc(hs, (cap = cap ? 2 * cap : 64) * sizeof(*nh));

				if (!nh)
					break;
				hs = nh;
			}
			memcpy(hs[n++].b, k, BS_HASH_LEN);
		}
		leveldb_iter_destroy(it);
		for (size_t i = 0; i < n; i++)
			fn(arg, &hs[i]);
		free(hs);
	}
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

			/* our own temporary names may be puts in progress */
			if (is_tmp && atoi(de->d_name + strlen(LOCAL_TMP_PREFIX)) == (int)getpid())
				continue;

			if (!is_tmp && (strlen(de->d_name) != BS_HEX_LEN ||
					hex_decode(de->d_name, h.b, BS_HASH_LEN) < 0))
				continue;
			if (fstatat(fd, de->d_name, &st, 0) < 0)
				continue;
			mt = (uint64_t)st.st_mtim.tv_sec * 1000000000ull +
			     (uint64_t)st.st_mtim.tv_nsec;
			if (is_tmp)	/* litter of a put cut short by a crash */
				unlinkat(fd, de->d_name, 0);
			else if (mt < before_ns)
				fn(arg, &h);
		}
		closedir(d);
	}
	return 0;
}

static void local_advise(void *ctx, const struct bs_hash *h)
{
	struct local_store *ls = ctx;
	char path[80];
	int fd;

	local_path(h, path, sizeof(path));
	fd = openat(ls->dirfd, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED);
	close(fd);
}

static void local_free(void *ctx)
{
	struct local_store *ls = ctx;

	if (ls->small)
		leveldb_close(ls->small);
	if (ls->sopts)
		leveldb_options_destroy(ls->sopts);
	if (ls->sro)
		leveldb_readoptions_destroy(ls->sro);
	if (ls->swo)
		leveldb_writeoptions_destroy(ls->swo);
	close(ls->dirfd);
	free(ls->dir);
	free(ls);
}

static const struct bs_backend_ops local_ops = {
	.name = "local",
	.put = local_put,
	.get = local_get,
	.has = local_has,
	.del = local_del,
	.sync = local_sync,
	.advise = local_advise,
	.scan = local_scan,
	.free = local_free,
};

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
	char msg[512];
	int ret;

	if (!ls)
		return -ENOMEM;
	ret = mkdir_p(dir, 0700);
	if (ret < 0) {
		snprintf(msg, sizeof(msg), "cannot create block directory %s: %s",
			 dir, strerror(-ret));
		goto fail;
	}
	ls->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (ls->dirfd < 0) {
		ret = -errno;
		snprintf(msg, sizeof(msg), "cannot open block directory %s: %s",
			 dir, strerror(errno));
		goto fail;
	}
	for (int i = 0; i <= 256; i++) {
		char sub[4];

		if (i == 256)
			snprintf(sub, sizeof(sub), "tmp");
		else
			snprintf(sub, sizeof(sub), "%02x", i);
		if (mkdirat(ls->dirfd, sub, 0700) < 0 && errno != EEXIST) {
			ret = -errno;
			snprintf(msg, sizeof(msg), "cannot create %s/%s: %s",
				 dir, sub, strerror(errno));
			close(ls->dirfd);
			goto fail;
		}
	}
	clear_tmp(ls->dirfd);
	if (small_max > 0) {
		char path[4096], *err = NULL;

		ls->small_max = small_max;
		ls->sopts = leveldb_options_create();
		leveldb_options_set_create_if_missing(ls->sopts, 1);
		leveldb_options_set_compression(ls->sopts, leveldb_no_compression);
		leveldb_options_set_write_buffer_size(ls->sopts, 8 << 20);
		ls->sro = leveldb_readoptions_create();
		ls->swo = leveldb_writeoptions_create();
		snprintf(path, sizeof(path), "%s/small", dir);
		ls->small = leveldb_open(ls->sopts, path, &err);
		if (err) {
			snprintf(msg, sizeof(msg), "cannot open small block store %s: %s",
				 path, err);
			leveldb_free(err);
			ret = -EIO;
			ls->dir = NULL;
			be->ctx = NULL;
			local_free(ls);
			ls = NULL;
			goto fail;
		}
	}
	ls->dir = strdup(dir);
	be->ops = &local_ops;
	be->ctx = ls;
	return 0;
fail:
	free(ls);
	if (errmsg)
		*errmsg = strdup(msg);
	return ret;
}
