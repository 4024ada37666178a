/*
 * fs/ctl.c — the control directory /.lakefs and its files.
 *
 * /.lakefs is virtual: fixed inode numbers below the first real one, never
 * stored. Files are rendered when opened (a handle reads the snapshot it
 * opened) and served with direct I/O, so a reader always sees a complete,
 * current document. Everything is read-only here; later issues add control
 * files that take writes, and they will check access like any other file.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs/fsd.h"
#include "util/util.h"

struct ctl_file {
	const char *name;
	uint64_t ino;
};

static const struct ctl_file ctl_files[] = {
	{ "status", CTL_STATUS_INO },
};

int ctl_owns(uint64_t ino)
{
	return ino == CTL_DIR_INO || ino == CTL_STATUS_INO;
}

static void ctl_stat(struct fsd *d, uint64_t ino, struct stat *st)
{
	struct stat root;

	memset(st, 0, sizeof(*st));
	if (vfs_getattr(d->vfs, 1, &root) == 0) {
		st->st_uid = root.st_uid;
		st->st_gid = root.st_gid;
		st->st_mtim = st->st_ctim = st->st_atim = root.st_ctim;
	}
	st->st_ino = ino;
	if (ino == CTL_DIR_INO) {
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
	} else {
		char *buf;
		size_t len = 0;

		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		if (ctl_render(d, ino, &buf, &len) == 0)
			free(buf);
		st->st_size = (off_t)len;
	}
	st->st_blksize = 4096;
}

int ctl_lookup(struct fsd *d, uint64_t parent, const char *name, struct stat *st)
{
	if (parent == 1 && strcmp(name, CTL_DIR_NAME) == 0) {
		ctl_stat(d, CTL_DIR_INO, st);
		return 0;
	}
	if (parent != CTL_DIR_INO)
		return -ENOENT;
	for (size_t i = 0; i < ARRAY_SIZE(ctl_files); i++) {
		if (strcmp(name, ctl_files[i].name) == 0) {
			ctl_stat(d, ctl_files[i].ino, st);
			return 0;
		}
	}
	return -ENOENT;
}

int ctl_getattr(struct fsd *d, uint64_t ino, struct stat *st)
{
	if (!ctl_owns(ino))
		return -ENOENT;
	ctl_stat(d, ino, st);
	return 0;
}

int ctl_readdir(struct fsd *d, uint64_t ino, uint64_t off, ctl_dirent_fn fn, void *arg)
{
	(void)d;
	if (ino != CTL_DIR_INO)
		return -ENOTDIR;
	if (off == 0 && fn(arg, ".", CTL_DIR_INO, S_IFDIR, 1))
		return 0;
	if (off <= 1 && fn(arg, "..", 1, S_IFDIR, 2))
		return 0;
	for (size_t i = off > 2 ? off - 2 : 0; i < ARRAY_SIZE(ctl_files); i++)
		if (fn(arg, ctl_files[i].name, ctl_files[i].ino, S_IFREG, i + 3))
			return 0;
	return 0;
}

/* s as the inside of a JSON string (quotes, backslashes, controls). */
static void json_escape(const char *s, char *out, size_t cap)
{
	size_t n = 0;

	for (; *s && n + 7 < cap; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			out[n++] = '\\';
			out[n++] = (char)c;
		} else if (c < 0x20) {
			n += (size_t)snprintf(out + n, cap - n, "\\u%04x", c);
		} else {
			out[n++] = (char)c;
		}
	}
	out[n] = '\0';
}

static int render_status(struct fsd *d, char **buf, size_t *len)
{
	char state[8192];
	struct meta_counters c;
	uint64_t dirty, seals, cbytes, hits, misses;
	uint64_t up = (mono_ns() - d->start_ns) / 1000000000ull;
	double dedup, compress;
	char *out;
	int n;

	json_escape(d->state_dir, state, sizeof(state));
	meta_counters(vfs_meta(d->vfs), &c);
	vfs_dirty_stats(d->vfs, &dirty, &seals);
	bs_cache_stats(vfs_blockstore(d->vfs), &cbytes, &hits, &misses);
	dedup = c.block_bytes ? (double)c.ref_bytes / (double)c.block_bytes : 1.0;
	compress = c.stored_bytes ? (double)c.block_bytes / (double)c.stored_bytes : 1.0;
	n = asprintf(&out,
		"{\n"
		"  \"version\": \"%s\",\n"
		"  \"pid\": %d,\n"
		"  \"uptime_s\": %llu,\n"
		"  \"state_dir\": \"%s\",\n"
		"  \"store\": \"local\",\n"
		"  \"block_size\": %u,\n"
		"  \"files\": %llu,\n"
		"  \"dirs\": %llu,\n"
		"  \"symlinks\": %llu,\n"
		"  \"other_inodes\": %llu,\n"
		"  \"blocks\": %llu,\n"
		"  \"logical_bytes\": %llu,\n"
		"  \"referenced_bytes\": %llu,\n"
		"  \"block_bytes\": %llu,\n"
		"  \"stored_bytes\": %llu,\n"
		"  \"dedup_ratio\": %.3f,\n"
		"  \"compression_ratio\": %.3f,\n"
		"  \"dirty_bytes\": %llu,\n"
		"  \"pending_seals\": %llu,\n"
		"  \"cache_bytes\": %llu,\n"
		"  \"cache_hits\": %llu,\n"
		"  \"cache_misses\": %llu\n"
		"}\n",
		LAKEFS_VERSION, (int)getpid(), (unsigned long long)up, state,
		vfs_block_size(d->vfs),
		(unsigned long long)c.files, (unsigned long long)c.dirs,
		(unsigned long long)c.symlinks, (unsigned long long)c.others,
		(unsigned long long)c.blocks, (unsigned long long)c.logical_bytes,
		(unsigned long long)c.ref_bytes, (unsigned long long)c.block_bytes,
		(unsigned long long)c.stored_bytes, dedup, compress,
		(unsigned long long)dirty, (unsigned long long)seals,
		(unsigned long long)cbytes, (unsigned long long)hits,
		(unsigned long long)misses);
	if (n < 0)
		return -ENOMEM;
	*buf = out;
	*len = (size_t)n;
	return 0;
}

int ctl_render(struct fsd *d, uint64_t ino, char **buf, size_t *len)
{
	if (ino == CTL_STATUS_INO)
		return render_status(d, buf, len);
	return ino == CTL_DIR_INO ? -EISDIR : -ENOENT;
}
