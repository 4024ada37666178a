/*
 * tests/unit/test_blockstore.c — sync/blockstore.c over sync/local.c.
 *
 * Hash naming (SHA-256 of the plaintext, DIR/ab/<hex>), zstd on disk,
 * dedup without rewriting, exact reads, corruption of every kind detected
 * on read (-EIO and a log line, never wrong bytes), pins against deletes,
 * the bounded cache, prefetch, concurrent sealers and readers (also against
 * a concurrent deleter), gc by age and reference, the block size limit,
 * and incompressible blocks stored as raw zstd frames in slots written
 * with O_DIRECT.
 *
 * Everything lives in a mkdtemp directory under /tmp, removed at the end.
 * Log lines of the library (stderr) are captured where a test expects them.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <leveldb/c.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "sync/blockstore.h"
#include "tests/unit/tap.h"
#include "util/util.h"

static char top[] = "/tmp/lakefs-unit-bs.XXXXXX";

/* ---- helpers ---- */

static void sha256(const void *data, size_t len, unsigned char out[32])
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	unsigned int n = 0;

	if (!c || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(c, data, len) != 1 ||
	    EVP_DigestFinal_ex(c, out, &n) != 1 || n != 32)
		bail_out("openssl sha256 failed");
	EVP_MD_CTX_free(c);
}

static void to_hex(const unsigned char *b, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
}

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ull;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* Incompressible bytes from a seed. */
static void fill_random(unsigned char *p, size_t len, uint64_t seed)
{
	uint64_t s = seed * 0x2545f4914f6cdd1dull + 1;

	for (size_t i = 0; i < len; i++)
		p[i] = (unsigned char)(xorshift(&s) >> 24);
}

/* Compressible text from a seed. */
static void fill_text(unsigned char *p, size_t len, uint64_t seed)
{
	size_t used = 0;
	unsigned line = 0;

	while (used < len) {
		char buf[128];
		int n = snprintf(buf, sizeof(buf), "block %llu line %u: the quick brown "
				 "fox jumps over the lazy dog\n",
				 (unsigned long long)seed, line++);
		size_t k = MIN((size_t)n, len - used);

		memcpy(p + used, buf, k);
		used += k;
	}
}

static struct blockstore *open_store(const char *dir, size_t block_size,
				     size_t cache_bytes, int prefetch)
{
	struct bs_backend be;
	struct bs_options opt = {
		.block_size = block_size,
		.cache_bytes = cache_bytes,
		.zstd_level = 3,
		.prefetch_threads = prefetch,
	};
	struct blockstore *bs = NULL;
	char *err = NULL;

	if (bs_local_open(&be, dir, 0, &err) < 0)
		bail_out("bs_local_open %s: %s", dir, err ? err : "?");
	if (bs_open(&bs, &be, &opt, &err) < 0)
		bail_out("bs_open %s: %s", dir, err ? err : "?");
	return bs;
}

/* The pack file and byte range that hold h's stored bytes; bails out if
 * the store does not have it in a file. */
static void obj_loc(struct blockstore *bs, const struct bs_hash *h, char *out,
		    size_t cap, uint64_t *off, uint64_t *len)
{
	char *path = NULL;
	int r = bs_locate(bs, h, &path, off, len);

	if (r < 0)
		bail_out("bs_locate: %s", strerror(-r));
	snprintf(out, cap, "%s", path);
	free(path);
}

static int obj_exists(struct blockstore *bs, const struct bs_hash *h)
{
	char *path = NULL;
	uint64_t off, len;
	int r = bs_locate(bs, h, &path, &off, &len);

	free(path);
	return r == 0;
}

/* The len stored bytes at off of path, malloc'ed. */
static unsigned char *obj_read(const char *path, uint64_t off, uint64_t len)
{
	unsigned char *buf = malloc(len + 1);
	int fd = open(path, O_RDONLY);

	if (!buf || fd < 0 || pread(fd, buf, len, (off_t)off) != (ssize_t)len) {
		free(buf);
		buf = NULL;
	}
	if (fd >= 0)
		close(fd);
	return buf;
}

/* Replace an object's slot in place: n bytes of data at off, then zeros up
 * to len (the length the index records, which stays). */
static int obj_write(const char *path, uint64_t off, const void *data, size_t n,
		     uint64_t len)
{
	int fd = open(path, O_WRONLY);
	int r = fd < 0 ? -errno : pwrite_all(fd, data, n, off);

	for (uint64_t at = off + n; r == 0 && at < off + len; at++)
		r = pwrite_all(fd, "", 1, at);
	if (fd >= 0)
		close(fd);
	return r;
}

static void count_one(void *arg, const struct bs_hash *h)
{
	(void)h;
	(*(int *)arg)++;
}

/* Objects in the store, as its own scan lists them. */
static int count_objects(struct blockstore *bs)
{
	int n = 0;

	if (bs_scan(bs, UINT64_MAX, count_one, &n) < 0)
		return -1;
	return n;
}

/* Regular files in DIR/packs. */
static int count_packs(const char *dir)
{
	char sub[4200];
	struct dirent *de;
	DIR *d;
	int n = 0;

	snprintf(sub, sizeof(sub), "%s/packs", dir);
	d = opendir(sub);
	while (d && (de = readdir(d)) != NULL)
		n += de->d_name[0] != '.';
	if (d)
		closedir(d);
	return d ? n : -1;
}

static unsigned char *read_file(const char *path, size_t *len)
{
	struct stat st;
	unsigned char *buf;
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) < 0) {
		close(fd);
		return NULL;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf && pread(fd, buf, (size_t)st.st_size, 0) != st.st_size) {
		free(buf);
		buf = NULL;
	}
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

static int write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	int r;

	if (fd < 0)
		return -errno;
	r = write_all(fd, data, len);
	close(fd);
	return r;
}

static int exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

static int set_mtime(const char *path, time_t t)
{
	struct timespec ts[2] = { { t, 0 }, { t, 0 } };

	return utimensat(AT_FDCWD, path, ts, 0);
}

static uint64_t wall_ns(void)
{
	struct timespec ts = now_ts();

	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Capture what the library logs to stderr between begin and end. */
static int cap_saved = -1;
static char cap_path[4200];

static void capture_begin(void)
{
	int fd;

	fflush(stderr);
	cap_saved = dup(2);
	fd = open(cap_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (cap_saved < 0 || fd < 0)
		bail_out("cannot capture stderr: %s", strerror(errno));
	dup2(fd, 2);
	close(fd);
}

static char *capture_end(void)
{
	size_t len = 0;
	char *s;

	fflush(stderr);
	dup2(cap_saved, 2);
	close(cap_saved);
	cap_saved = -1;
	s = (char *)read_file(cap_path, &len);
	if (s)
		s[len] = '\0';
	return s ? s : strdup("");
}

/* bs_get that checks the bytes: 0 exact, 1 wrong bytes served, or -errno. */
static int get_check(struct blockstore *bs, const struct bs_hash *h,
		     const void *want, size_t len)
{
	struct bs_buf *buf = NULL;
	int r = bs_get(bs, h, &buf);

	if (r < 0)
		return r;
	if (!buf)
		return 1;
	r = buf->len == len && (len == 0 || memcmp(buf->data, want, len) == 0) ? 0 : 1;
	bs_put_buf(bs, buf);
	return r;
}

static int always_unref(void *arg, const struct bs_hash *h)
{
	(void)h;
	if (arg)
		(*(int *)arg)++;
	return 1;
}

/* ---- naming, compression, dedup, reads, size limit ---- */

#define BS64K (64u * 1024)

static void test_seal(const char *dir)
{
	struct blockstore *bs = open_store(dir, BS64K, 64 * BS64K, 2);
	unsigned char *text = malloc(BS64K + 1), *rnd = malloc(BS64K), *raw;
	unsigned char want[32];
	char hex[BS_HEX_LEN + 1], wanthex[BS_HEX_LEN + 1], path[4200];
	struct bs_hash h, h2, hr, he;
	uint32_t stored = 0, stored2 = 0;
	int created = -1, r;
	uint64_t off = 0, len = 0, off2 = 0, len2 = 0;
	struct stat st1, st2;

	if (!text || !rnd)
		bail_out("out of memory");
	fill_text(text, BS64K, 1);
	r = bs_seal(bs, text, BS64K, 0, &h, &stored, &created);
	is_int(r, 0, "bs_seal of 64 KiB of text");
	is_int(created, 1, "the first seal stores the block (created 1)");
	sha256(text, BS64K, want);
	is_mem(h.b, 32, want, 32, "the block's name is the SHA-256 of its plaintext");
	bs_hash_hex(&h, hex);
	to_hex(want, 32, wanthex);
	is_str(hex, wanthex, "bs_hash_hex gives the lowercase hex of the hash");
	{
		struct bs_hash hh;

		bs_hash_of(text, BS64K, &hh);
		is_mem(hh.b, 32, want, 32, "bs_hash_of agrees with OpenSSL");
	}

	obj_loc(bs, &h, path, sizeof(path), &off, &len);
	ok(strncmp(path, dir, strlen(dir)) == 0 && strstr(path, "/packs/") && off == 0,
	   "the object lands at the start of a pack under DIR/packs (%s)", path);
	ok(len == stored && stat(path, &st1) == 0 && st1.st_size == (off_t)stored,
	   "stored size (%u) is the object's length in the index and in the pack", stored);
	ok(stored > 0 && stored < BS64K / 4,
	   "compressible data is stored compressed (%u of %u bytes)", stored, BS64K);
	raw = obj_read(path, off, len);
	ok(raw != NULL, "read the object's bytes from the pack");
	if (raw) {
		unsigned char *plain = malloc(BS64K);
		size_t n;

		is_int(ZSTD_getFrameContentSize(raw, len), BS64K,
		       "the object is a zstd frame that records the plaintext size");
		n = ZSTD_decompress(plain, BS64K, raw, len);
		ok(!ZSTD_isError(n) && n == BS64K && memcmp(plain, text, BS64K) == 0,
		   "ZSTD_decompress of the raw object gives back the plaintext");
		free(plain);
		free(raw);
	} else {
		skip(2, "no object");
	}
	is_int(count_objects(bs), 1, "one object in the store");
	is_int(count_packs(dir), 1, "in one pack file");

	/* dedup: same bytes again, nothing rewritten */
	ok(set_mtime(path, 1000000000) == 0, "age the pack (mtime 2001)");
	stat(path, &st1);
	created = -1;
	r = bs_seal(bs, text, BS64K, 0, &h2, &stored2, &created);
	is_int(r, 0, "sealing identical data again");
	is_int(created, 0, "reports created 0 (dedup)");
	is_mem(h2.b, 32, h.b, 32, "with the same hash");
	is_int(stored2, stored, "and the stored size of the existing object");
	ok(stat(path, &st2) == 0 && st2.st_size == st1.st_size &&
	   st2.st_mtim.tv_sec == 1000000000, "nothing was written (same pack size, old mtime)");
	obj_loc(bs, &h, path, sizeof(path), &off2, &len2);
	ok(off2 == off && len2 == len, "the index still places it where it was");
	is_int(count_objects(bs), 1, "still one object");
	bs_unpin(bs, &h);
	bs_unpin(bs, &h);

	is_int(get_check(bs, &h, text, BS64K), 0, "bs_get returns the exact bytes");

	/* other shapes of blocks */
	fill_random(rnd, BS64K, 7);
	r = bs_seal(bs, rnd, BS64K, 0, &hr, &stored, &created);
	ok(r == 0 && created == 1, "seal 64 KiB of random bytes");
	sha256(rnd, BS64K, want);
	is_mem(hr.b, 32, want, 32, "random block named by its SHA-256");
	obj_loc(bs, &hr, path, sizeof(path), &off2, &len2);
	ok(len2 == stored && off2 == 4096 * ((len + 4095) / 4096),
	   "incompressible block stored (%u bytes) in the next 4 KiB-aligned slot "
	   "(at %llu)", stored, (unsigned long long)off2);
	bs_unpin(bs, &hr);
	bs_close(bs);
	{
		/* a fresh store: read from disk, not from the copy sealing cached */
		struct blockstore *bs2 = open_store(dir, BS64K, 64 * BS64K, 0);

		is_int(get_check(bs2, &hr, rnd, BS64K), 0, "random block reads back from disk");
		is_int(get_check(bs2, &h, text, BS64K), 0, "text block reads back from disk");
		is_int(count_objects(bs2), 2, "a reopened store lists both objects");
		bs_close(bs2);
	}
	bs = open_store(dir, BS64K, 64 * BS64K, 2);

	r = bs_seal(bs, "", 0, 0, &he, &stored, &created);
	ok(r == 0 && created == 1, "seal an empty block");
	bs_hash_hex(&he, hex);
	is_str(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	       "the empty block is named by SHA-256(\"\")");
	is_int(get_check(bs, &he, "", 0), 0, "the empty block reads back empty");
	bs_unpin(bs, &he);

	/* one byte differs: a different block */
	text[BS64K / 2] ^= 1;
	r = bs_seal(bs, text, BS64K, 0, &h2, &stored, &created);
	ok(r == 0 && created == 1 && memcmp(h2.b, h.b, 32) != 0,
	   "data differing in one byte is a new block with another name");
	bs_unpin(bs, &h2);
	is_int(get_check(bs, &h2, text, BS64K), 0, "and reads back as itself");
	text[BS64K / 2] ^= 1;

	/* the block size limit */
	{
		int n = count_objects(bs);

		fill_text(text, BS64K + 1, 99);
		is_int(bs_seal(bs, text, BS64K + 1, 0, &h2, &stored, &created), -EINVAL,
		       "sealing block_size + 1 bytes is -EINVAL");
		is_int(count_objects(bs), n, "and stores nothing");
		r = bs_seal(bs, text, BS64K, 0, &h2, &stored, &created);
		is_int(r, 0, "sealing exactly block_size bytes works");
		if (r == 0)
			bs_unpin(bs, &h2);
	}
	is_int(bs_sync(bs), 0, "bs_sync");
	bs_close(bs);
	free(text);
	free(rnd);
}

/* ---- incompressible blocks, and slots written with O_DIRECT ---- */

/* 0 when the stored bytes of h are a zstd frame that plain libzstd
 * decodes to want (want_len bytes), and, for an object large enough to be
 * written with O_DIRECT (128 KiB), zeros from its end to the end of its
 * 4 KiB slot. */
static int frame_check(struct blockstore *bs, const struct bs_hash *h,
		       const unsigned char *want, size_t want_len, uint64_t *stored)
{
	char path[4200];
	uint64_t off, len, slot;
	unsigned char *z, *plain;
	size_t n;
	int bad = 0;

	obj_loc(bs, h, path, sizeof(path), &off, &len);
	*stored = len;
	slot = len >= (128 << 10) ? (len + 4095) / 4096 * 4096 : len;
	z = obj_read(path, off, slot);
	plain = malloc(want_len + 1);
	if (!z || !plain) {
		free(z);
		free(plain);
		return -1;
	}
	n = ZSTD_decompress(plain, want_len + 1, z, len);
	if (ZSTD_isError(n) || n != want_len || memcmp(plain, want, n) != 0)
		bad = 1;
	if (ZSTD_getFrameContentSize(z, len) != want_len)
		bad = 1;
	for (uint64_t i = len; i < slot; i++)
		bad |= z[i] != 0;
	free(z);
	free(plain);
	return bad ? -1 : 0;
}

static void test_raw(const char *dir)
{
	enum { MB = 1 << 20, ODD = 200001 };
	struct blockstore *bs = open_store(dir, MB, 8 * MB, 0);
	unsigned char *rnd = malloc(MB), *mix = malloc(MB), *txt = malloc(MB);
	unsigned char *un = malloc(MB + 1);
	struct bs_hash hr, ho, hm, ht, hu;
	struct bs_backend be;
	uint64_t st;
	uint32_t stored;
	char *err = NULL;
	int created, r;

	if (!rnd || !mix || !txt || !un)
		bail_out("out of memory");
	fill_random(rnd, MB, 11);
	r = bs_seal(bs, rnd, MB, 0, &hr, &stored, &created);
	ok(r == 0 && created, "seal 1 MiB of random bytes");
	is_int(stored, MB + 9 + 8 * 3,
	       "stored as one raw zstd frame: 9 header bytes and 8 blocks of 128 KiB");
	is_int(frame_check(bs, &hr, rnd, MB, &st), 0,
	       "libzstd decodes it to the bytes, and the slot is zero-padded");
	fill_random(rnd, ODD, 12);
	r = bs_seal(bs, rnd, ODD, 0, &ho, &stored, &created);
	is_int(stored, ODD + 9 + 2 * 3, "%d random bytes: a raw frame of 2 blocks", ODD);
	is_int(frame_check(bs, &ho, rnd, ODD, &st), 0, "which libzstd decodes");

	/* random but for the last quarter: one probe sees text, zstd runs */
	fill_random(mix, MB, 13);
	fill_text(mix + 3 * MB / 4, MB / 4, 13);
	r = bs_seal(bs, mix, MB, 0, &hm, &stored, &created);
	ok(r == 0 && stored < MB - MB / 8,
	   "a block with a compressible quarter is compressed (%u bytes)", stored);
	is_int(frame_check(bs, &hm, mix, MB, &st), 0, "and decodes");
	fill_text(txt, MB, 14);
	r = bs_seal(bs, txt, MB, 0, &ht, &stored, &created);
	ok(r == 0 && stored < MB / 8, "1 MiB of text is compressed (%u bytes)", stored);
	is_int(frame_check(bs, &ht, txt, MB, &st), 0, "and decodes");
	bs_unpin(bs, &hr);
	bs_unpin(bs, &ho);
	bs_unpin(bs, &hm);
	bs_unpin(bs, &ht);
	is_int(bs_sync(bs), 0, "bs_sync");
	bs_close(bs);

	/* a fresh store reads them back from the packs */
	bs = open_store(dir, MB, 8 * MB, 0);
	fill_random(rnd, MB, 11);
	is_int(get_check(bs, &hr, rnd, MB), 0, "the raw 1 MiB block reads back");
	is_int(get_check(bs, &hm, mix, MB), 0, "the mixed block reads back");
	is_int(get_check(bs, &ht, txt, MB), 0, "the text block reads back");
	bs_close(bs);

	/*
	 * The backend given a buffer that is not 4 KiB-aligned: O_DIRECT
	 * cannot take it, it goes through the page cache, bytes intact.
	 */
	if (bs_local_open(&be, dir, 0, &err) < 0)
		bail_out("bs_local_open %s: %s", dir, err ? err : "?");
	memcpy(un + 1, mix, ODD);
	bs_hash_of(un + 1, ODD, &hu);
	is_int(be.ops->put(be.ctx, &hu, un + 1, ODD), 0, "put from an unaligned buffer");
	{
		void *back = NULL;
		size_t blen = 0;

		r = be.ops->get(be.ctx, &hu, &back, &blen);
		ok(r == 0 && blen == ODD && memcmp(back, mix, ODD) == 0,
		   "gets the same %d bytes back", ODD);
		free(back);
	}
	be.ops->free(be.ctx);
	free(rnd);
	free(mix);
	free(txt);
	free(un);
}

/* ---- corruption ---- */

struct corrupt_case {
	const char *what;
	unsigned char *data;	/* written over the slot, zeros after */
	size_t len;
	int cut;		/* instead: the pack ends len bytes into the object */
	const char *log;	/* expected in the log line */
};

/* Cut h's pack index entry in dir's store (closed) to the 28 bytes
 * entries had before the checksum was added. */
static void old_entry(const char *dir, const struct bs_hash *h)
{
	char path[4200], key[1 + BS_HASH_LEN], *err = NULL, *v;
	leveldb_options_t *o = leveldb_options_create();
	leveldb_readoptions_t *ro = leveldb_readoptions_create();
	leveldb_writeoptions_t *wo = leveldb_writeoptions_create();
	leveldb_t *db;
	size_t n = 0;

	snprintf(path, sizeof(path), "%s/small", dir);
	db = leveldb_open(o, path, &err);
	if (!db)
		bail_out("leveldb_open %s: %s", path, err ? err : "?");
	key[0] = 'p';
	memcpy(key + 1, h->b, BS_HASH_LEN);
	v = leveldb_get(db, ro, key, sizeof(key), &n, &err);
	if (!v || n != 36)
		bail_out("index entry: %zu bytes, not 36", n);
	leveldb_put(db, wo, key, sizeof(key), v, 28, &err);
	if (err)
		bail_out("leveldb_put: %s", err);
	leveldb_free(v);
	leveldb_close(db);
	leveldb_writeoptions_destroy(wo);
	leveldb_readoptions_destroy(ro);
	leveldb_options_destroy(o);
}

static void test_corruption(const char *dir)
{
	struct blockstore *bs = open_store(dir, BS64K, 64 * BS64K, 0), *fresh;
	unsigned char *text = malloc(BS64K), *other = malloc(BS64K + 16), *orig;
	unsigned char *big = malloc(BS64K + 1);
	size_t origlen = 0, cap = ZSTD_compressBound(BS64K + 1);
	unsigned char *frame = malloc(cap), *bigframe = malloc(cap);
	unsigned char *mutated = malloc(cap + 64);
	size_t framelen = 0, bigframelen;
	struct bs_hash h;
	uint32_t stored;
	int created, r;
	uint64_t off, olen;
	char path[4200], hex[BS_HEX_LEN + 1];

	if (!text || !other || !big || !frame || !bigframe || !mutated)
		bail_out("out of memory");
	fill_text(text, BS64K, 42);
	if (bs_seal(bs, text, BS64K, 0, &h, &stored, &created) < 0)
		bail_out("seal failed");
	bs_unpin(bs, &h);
	bs_hash_hex(&h, hex);
	obj_loc(bs, &h, path, sizeof(path), &off, &olen);
	bs_close(bs);
	origlen = (size_t)olen;
	orig = obj_read(path, off, olen);
	if (!orig)
		bail_out("cannot read the object from %s", path);

	/* a valid zstd frame of other content (one byte differs), made exactly
	 * as long as the object (the index records the length): compressed
	 * harder, then padded with a skippable frame, which zstd passes over */
	memcpy(other, text, BS64K);
	other[1000] ^= 0x20;
	framelen = SIZE_MAX;
	for (int lv = 1; lv <= 19 && framelen > origlen - 8; lv++) {
		size_t n = ZSTD_compress(frame, cap, other, BS64K, lv);

		framelen = ZSTD_isError(n) ? SIZE_MAX : n;
	}
	if (framelen > origlen - 8)
		bail_out("the other frame (%zu bytes) does not fit in %zu", framelen, origlen);
	{
		uint32_t pad = (uint32_t)(origlen - framelen - 8);
		unsigned char hdr[8] = { 0x50, 0x2a, 0x4d, 0x18, (unsigned char)pad,
					 (unsigned char)(pad >> 8), (unsigned char)(pad >> 16),
					 (unsigned char)(pad >> 24) };

		memcpy(frame + framelen, hdr, 8);
		memset(frame + framelen + 8, 0, pad);
		framelen = origlen;
	}
	/* a valid frame of more than block_size bytes */
	fill_text(big, BS64K + 1, 42);
	bigframelen = ZSTD_compress(bigframe, cap, big, BS64K + 1, 3);
	if (ZSTD_isError(framelen) || ZSTD_isError(bigframelen))
		bail_out("zstd failed");
	memcpy(mutated, orig, origlen);
	mutated[origlen / 2] ^= 0x01;

	{
		unsigned char garbage[300];
		struct corrupt_case cases[] = {
			{ "a byte flipped in the middle", mutated, origlen, 0, "corrupt" },
			{ "a valid zstd frame of other content", frame, framelen, 0,
			  "do not match the checksum written with them" },
			{ "zeroed from the middle", orig, origlen / 2, 0, "corrupt" },
			{ "its last byte zeroed", orig, origlen - 1, 0, NULL },
			{ "all zeros", orig, 0, 0, "corrupt" },
			{ "not zstd at all", garbage, sizeof(garbage), 0, "corrupt" },
			{ "the start of a frame larger than block_size", bigframe,
			  MIN(bigframelen, origlen), 0, "corrupt" },
			{ "cut short by the end of the pack (half)", NULL, origlen / 2, 1,
			  "cannot read block" },
			{ "cut short by the end of the pack (one byte)", NULL, origlen - 1, 1,
			  "cannot read block" },
			{ "past the end of the pack", NULL, 0, 1, "cannot read block" },
		};

		fill_random(garbage, sizeof(garbage), 3);
		/* one store for all cases: a failed load must not be cached either */
		fresh = open_store(dir, BS64K, 64 * BS64K, 0);
		for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
			struct corrupt_case *c = &cases[i];
			struct bs_buf *buf = NULL;
			char *log;

			if (obj_write(path, off, orig, origlen, origlen) < 0)
				bail_out("cannot write %s", path);
			if (c->cut ? truncate(path, (off_t)(off + c->len)) < 0 :
			    obj_write(path, off, c->data, c->len, origlen) < 0)
				bail_out("cannot damage %s", path);
			capture_begin();
			r = bs_get(fresh, &h, &buf);
			log = capture_end();
			if (!c->log) {
				/* either answer is fine, wrong bytes are not */
				ok(r == -EIO || (r == 0 && buf && buf->len == BS64K &&
						 memcmp(buf->data, text, BS64K) == 0),
				   "object with %s: -EIO or the right bytes (got %d)",
				   c->what, r);
				if (r == 0 && buf)
					bs_put_buf(fresh, buf);
				free(log);
				continue;
			}
			is_int(r, -EIO, "object %s: bs_get is -EIO", c->what);
			ok(buf == NULL, "object %s: no buffer is handed out", c->what);
			if (r == 0 && buf)
				bs_put_buf(fresh, buf);
			ok(strstr(log, hex) && strstr(log, c->log),
			   "object %s: a log line names the block and says '%s'",
			   c->what, c->log);
			if (!strstr(log, hex))
				diag("log: %s", log);
			free(log);
		}

		/* bytes no checksum vouches for (a fetch from a bucket, an
		 * index entry from before checksums) are hashed */
		char *log;

		capture_begin();
		r = bs_check_frame(&h, frame, framelen, BS64K, NULL, NULL);
		log = capture_end();
		is_int(r, -EIO, "unvouched: a valid zstd frame of other content is -EIO");
		ok(strstr(log, hex) && strstr(log, "does not match its hash"),
		   "unvouched: a log line names the block and says its content "
		   "does not match its hash");
		free(log);
		is_int(bs_check_frame(&h, orig, origlen, BS64K, NULL, NULL), 0,
		       "unvouched: the right frame passes the hash");

		/* the good object back: the same store now reads it */
		obj_write(path, off, orig, origlen, origlen);
		is_int(get_check(fresh, &h, text, BS64K), 0,
		       "once repaired, the block reads back (failures are not cached)");
		bs_close(fresh);
	}

	/* every single-byte flip of the object: -EIO or the exact bytes */
	{
		int eio = 0, wrong = 0, good = 0, other_err = 0;

		fresh = open_store(dir, BS64K, 64 * BS64K, 0);
		capture_begin();
		for (size_t pos = 0; pos < origlen; pos++) {
			memcpy(mutated, orig, origlen);
			mutated[pos] ^= (unsigned char)(1u << (pos % 8));
			obj_write(path, off, mutated, origlen, origlen);
			r = get_check(fresh, &h, text, BS64K);
			if (r == 0) {
				good++;
				/* a flip that changes nothing must not stay cached
				 * for the next position: evict by reopening */
				bs_close(fresh);
				fresh = open_store(dir, BS64K, 64 * BS64K, 0);
			} else if (r == 1) {
				wrong++;
			} else if (r == -EIO) {
				eio++;
			} else {
				other_err++;
			}
		}
		free(capture_end());
		is_int(wrong, 0, "no single-byte flip of a %zu-byte object serves wrong bytes",
		       origlen);
		is_int(other_err, 0, "every detected flip is -EIO");
		ok(eio > 0, "flips detected: %d -EIO, %d harmless", eio, good);
		bs_close(fresh);
	}

	/* the same for an incompressible block, where zstd stores raw bytes and
	 * only the hash check can catch a flip */
	{
		unsigned char rnd[2048];
		struct bs_hash hr;
		char rpath[4200];
		unsigned char *robj;
		uint64_t roff, rlen = 0;
		int eio = 0, wrong = 0;

		fill_random(rnd, sizeof(rnd), 11);
		bs = open_store(dir, BS64K, 64 * BS64K, 0);
		bs_seal(bs, rnd, sizeof(rnd), 0, &hr, &stored, &created);
		bs_unpin(bs, &hr);
		obj_loc(bs, &hr, rpath, sizeof(rpath), &roff, &rlen);
		bs_close(bs);
		robj = obj_read(rpath, roff, rlen);
		fresh = open_store(dir, BS64K, 64 * BS64K, 0);
		capture_begin();
		for (size_t pos = 0; robj && pos < rlen; pos++) {
			memcpy(mutated, robj, rlen);
			mutated[pos] ^= 0x80;
			obj_write(rpath, roff, mutated, rlen, rlen);
			r = get_check(fresh, &hr, rnd, sizeof(rnd));
			if (r == 1)
				wrong++;
			else if (r == -EIO)
				eio++;
			else if (r == 0) {
				bs_close(fresh);
				fresh = open_store(dir, BS64K, 64 * BS64K, 0);
			}
		}
		free(capture_end());
		is_int(wrong, 0, "no flip of a raw (incompressible) object serves wrong bytes");
		ok(robj && eio >= (int)rlen - 16,
		   "flips of the stored raw bytes are -EIO (%d of %llu)", eio,
		   (unsigned long long)rlen);
		free(robj);
		bs_close(fresh);
	}

	/* corrupt after it was cached: served from the verified cache until it is
	 * evicted, then -EIO */
	{
		struct bs_hash others[6];
		unsigned char blk[BS64K];
		uint64_t bytes, hits, misses, m0;
		char *log;

		obj_write(path, off, orig, origlen, origlen);
		bs = open_store(dir, BS64K, 64 * BS64K, 0);
		for (int i = 0; i < 6; i++) {
			fill_text(blk, BS64K, 500 + (uint64_t)i);
			bs_seal(bs, blk, BS64K, 0, &others[i], &stored, &created);
			bs_unpin(bs, &others[i]);
		}
		bs_close(bs);
		bs = open_store(dir, BS64K, 2 * BS64K, 0);	/* room for two */
		is_int(get_check(bs, &h, text, BS64K), 0, "tiny cache: block read and cached");
		memcpy(mutated, orig, origlen);
		mutated[origlen / 2] ^= 0x01;
		obj_write(path, off, mutated, origlen, origlen);
		is_int(get_check(bs, &h, text, BS64K), 0,
		       "tiny cache: the cached (verified) copy still serves the right bytes");
		bs_cache_stats(bs, &bytes, &hits, &m0);
		for (int i = 0; i < 6; i++) {
			fill_text(blk, BS64K, 500 + (uint64_t)i);
			if (get_check(bs, &others[i], blk, BS64K) != 0)
				diag("other block %d did not read back", i);
		}
		bs_cache_stats(bs, &bytes, &hits, &misses);
		ok(misses >= m0 + 6 && bytes <= 2 * BS64K,
		   "tiny cache: six other blocks evicted it (%llu bytes cached)",
		   (unsigned long long)bytes);
		capture_begin();
		r = get_check(bs, &h, text, BS64K);
		log = capture_end();
		is_int(r, -EIO, "tiny cache: once evicted, the corrupt object is -EIO");
		ok(strstr(log, hex) != NULL, "tiny cache: and a log line names the block");
		free(log);
		bs_close(bs);
	}

	/* an index entry from before checksums (28 bytes): read, and its
	 * bytes hashed rather than vouched for */
	{
		char *log;

		old_entry(dir, &h);
		fresh = open_store(dir, BS64K, 64 * BS64K, 0);
		obj_write(path, off, frame, framelen, origlen);
		capture_begin();
		r = get_check(fresh, &h, text, BS64K);
		log = capture_end();
		is_int(r, -EIO, "old index entry: a valid frame of other content is -EIO");
		ok(strstr(log, hex) && strstr(log, "does not match its hash"),
		   "old index entry: the log says its content does not match its hash");
		free(log);
		obj_write(path, off, orig, origlen, origlen);
		is_int(get_check(fresh, &h, text, BS64K), 0,
		       "old index entry: the right bytes read back");
		bs_close(fresh);
	}
	obj_write(path, off, orig, origlen, origlen);
	free(orig);
	free(text);
	free(other);
	free(big);
	free(frame);
	free(bigframe);
	free(mutated);
}

/* ---- pins and deletes ---- */

struct pred {
	struct bs_hash h;
	int calls, wrong_hash, answer;
};

static int pred_fn(void *arg, const struct bs_hash *h)
{
	struct pred *p = arg;

	p->calls++;
	if (memcmp(h->b, p->h.b, BS_HASH_LEN) != 0)
		p->wrong_hash++;
	return p->answer;
}

static void test_pins(const char *dir)
{
	struct blockstore *bs = open_store(dir, BS64K, 64 * BS64K, 0);
	unsigned char data[5000];
	struct bs_hash h;
	struct pred p = { 0 };
	uint32_t stored;
	int created, r;

	fill_text(data, sizeof(data), 77);
	r = bs_seal(bs, data, sizeof(data), 0, &h, &stored, &created);
	ok(r == 0 && created, "seal a block (it is pinned)");
	p.h = h;
	p.answer = 1;
	is_int(bs_delete_if(bs, &h, pred_fn, &p), -EBUSY,
	       "bs_delete_if refuses a pinned block (-EBUSY)");
	ok(obj_exists(bs, &h), "the pinned block is still stored");

	bs_pin(bs, &h);
	bs_unpin(bs, &h);
	is_int(bs_delete_if(bs, &h, pred_fn, &p), -EBUSY,
	       "pin + unpin leaves the seal's pin: still -EBUSY");

	r = bs_seal(bs, data, sizeof(data), 0, &h, &stored, &created);
	ok(r == 0 && created == 0, "a second seal of the same data pins again");
	bs_unpin(bs, &h);
	is_int(bs_delete_if(bs, &h, pred_fn, &p), -EBUSY,
	       "one unpin of two: still -EBUSY");
	bs_unpin(bs, &h);

	p.answer = 0;
	p.calls = 0;
	is_int(bs_delete_if(bs, &h, pred_fn, &p), -EBUSY,
	       "unpinned but the predicate says referenced: -EBUSY (kept)");
	ok(obj_exists(bs, &h), "the referenced block is still stored");
	ok(p.calls == 1 && p.wrong_hash == 0, "the predicate was asked about this block");
	is_int(get_check(bs, &h, data, sizeof(data)), 0, "and it still reads back");

	p.answer = 1;
	is_int(bs_delete_if(bs, &h, pred_fn, &p), 0,
	       "unpinned and unreferenced: bs_delete_if deletes it");
	ok(!obj_exists(bs, &h), "the object is gone from the store");
	capture_begin();
	r = get_check(bs, &h, data, sizeof(data));
	free(capture_end());
	is_int(r, -EIO, "a deleted block is -EIO, also from the store that cached it");

	r = bs_seal(bs, data, sizeof(data), 0, &h, &stored, &created);
	ok(r == 0 && created == 1 && obj_exists(bs, &h), "sealing it again stores it again");
	bs_unpin(bs, &h);
	bs_pin(bs, &h);
	is_int(bs_delete_if(bs, &h, always_unref, NULL), -EBUSY, "bs_pin protects it too");
	bs_unpin(bs, &h);
	is_int(bs_delete_if(bs, &h, always_unref, NULL), 0, "after bs_unpin it can go");
	bs_close(bs);
	is_int(count_packs(dir), 0, "a store left with nothing keeps no pack after close");
}

/* ---- the cache ---- */

#define CB 4096u
#define NCB 40

static void test_cache(const char *dir)
{
	struct blockstore *bs = open_store(dir, CB, 64 * CB, 0);
	static unsigned char data[NCB][CB];
	struct bs_hash h[NCB];
	struct bs_buf *held[6];
	uint64_t bytes, hits, misses, maxbytes = 0;
	uint32_t stored;
	int created, bad = 0;

	for (int i = 0; i < NCB; i++) {
		fill_text(data[i], CB, 1000 + (uint64_t)i);
		if (bs_seal(bs, data[i], CB, 0, &h[i], &stored, &created) < 0)
			bail_out("seal failed");
		bs_unpin(bs, &h[i]);
	}
	bs_close(bs);
	/* read through a fresh store with room for three blocks */
	bs = open_store(dir, CB, 3 * CB, 0);
	bs_cache_stats(bs, &bytes, &hits, &misses);
	ok(bytes == 0 && hits == 0 && misses == 0, "a fresh store's cache is empty");
	for (int i = 0; i < NCB; i++) {
		bad += get_check(bs, &h[i], data[i], CB) != 0;
		bs_cache_stats(bs, &bytes, &hits, &misses);
		maxbytes = MAX(maxbytes, bytes);
	}
	is_int(bad, 0, "getting %d distinct blocks through a 3-block cache works", NCB);
	ok(maxbytes <= 3 * CB, "the cache never held more than its 3 blocks (max %llu bytes)",
	   (unsigned long long)maxbytes);
	bs_cache_stats(bs, &bytes, &hits, &misses);
	ok(misses == NCB && hits == 0, "%d misses, 0 hits (%llu, %llu)", NCB,
	   (unsigned long long)misses, (unsigned long long)hits);
	ok(bytes > 0 && bytes <= 3 * CB, "cache holds %llu bytes", (unsigned long long)bytes);

	is_int(get_check(bs, &h[NCB - 1], data[NCB - 1], CB), 0, "the last block again");
	bs_cache_stats(bs, &bytes, &hits, &misses);
	ok(hits == 1 && misses == NCB, "is a hit");
	is_int(get_check(bs, &h[0], data[0], CB), 0, "the first block again");
	bs_cache_stats(bs, &bytes, &hits, &misses);
	ok(hits == 1 && misses == NCB + 1, "is a miss (it was evicted)");

	/* buffers held by readers are never evicted under them */
	for (int i = 0; i < 6; i++)
		if (bs_get(bs, &h[10 + i], &held[i]) < 0)
			held[i] = NULL;
	bad = 0;
	for (int i = 0; i < 6; i++)
		bad += !held[i] || held[i]->len != CB || memcmp(held[i]->data, data[10 + i], CB);
	is_int(bad, 0, "six buffers held at once in a 3-block cache stay intact");
	{
		struct bs_buf *again = NULL;

		ok(bs_get(bs, &h[10], &again) == 0 && again == held[0],
		   "a second reference to a held block is the same buffer");
		if (again)
			bs_put_buf(bs, again);
	}
	for (int i = 0; i < 6; i++)
		if (held[i])
			bs_put_buf(bs, held[i]);
	bs_cache_stats(bs, &bytes, &hits, &misses);
	ok(bytes <= 3 * CB, "released: the cache is back within its bound (%llu bytes)",
	   (unsigned long long)bytes);
	bs_close(bs);

	/* a cache big enough keeps sealed blocks given to it: reads are hits */
	bs = open_store(dir, CB, 64 * CB, 0);
	{
		unsigned char d[CB], *given = malloc(CB);
		struct bs_hash hh;

		fill_text(d, CB, 5555);
		bs_seal(bs, d, CB, 0, &hh, &stored, &created);
		memcpy(given, d, CB);
		bs_cache_give(bs, &hh, given, CB, CB);	/* takes ownership */
		bs_unpin(bs, &hh);
		is_int(get_check(bs, &hh, d, CB), 0, "big cache: a just-sealed block reads back");
		bs_cache_stats(bs, &bytes, &hits, &misses);
		ok(hits == 1 && misses == 0, "from the copy given at seal time (a hit)");
	}
	bs_close(bs);
}

/* ---- prefetch ---- */

static void test_prefetch(const char *dir)
{
	static unsigned char data[NCB][CB];
	struct bs_hash h[NCB], missing;
	struct blockstore *bs;
	uint64_t bytes, hits, misses;
	int bad = 0, r;

	/* the blocks of test_cache */
	for (int i = 0; i < NCB; i++) {
		fill_text(data[i], CB, 1000 + (uint64_t)i);
		bs_hash_of(data[i], CB, &h[i]);
	}
	bs = open_store(dir, CB, 64 * CB, 2);
	for (int i = 0; i < NCB; i++)
		bs_prefetch(bs, &h[i]);
	for (int i = 0; i < NCB; i++)
		bad += get_check(bs, &h[i], data[i], CB) != 0;
	is_int(bad, 0, "bs_prefetch then bs_get returns the right bytes (%d blocks)", NCB);
	bs_cache_stats(bs, &bytes, &hits, &misses);
	ok(misses == 0 && hits == NCB, "every get found its block prefetched (%llu hits, "
	   "%llu misses)", (unsigned long long)hits, (unsigned long long)misses);
	bs_prefetch(bs, &h[0]);		/* already cached: nothing to do */
	is_int(get_check(bs, &h[0], data[0], CB), 0, "prefetch of a cached block is harmless");

	bs_hash_of("never stored", 12, &missing);
	capture_begin();
	bs_prefetch(bs, &missing);
	r = get_check(bs, &missing, NULL, 0);
	free(capture_end());
	is_int(r, -EIO, "prefetch of a missing block, then bs_get: -EIO");
	bs_close(bs);

	/* prefetch without prefetch threads is a no-op */
	bs = open_store(dir, CB, 64 * CB, 0);
	bs_prefetch(bs, &h[1]);
	is_int(get_check(bs, &h[1], data[1], CB), 0, "without prefetch threads, get still works");
	bs_cache_stats(bs, &bytes, &hits, &misses);
	is_int(misses, 1, "and it was a miss");
	bs_close(bs);

	/* close with prefetches in flight: they finish, nothing leaks */
	bs = open_store(dir, CB, 2 * CB, 1);
	for (int i = 0; i < NCB; i++)
		bs_prefetch(bs, &h[i]);
	bs_close(bs);
	ok(1, "bs_close with prefetches queued returns");
}

/* ---- concurrency ---- */

#define NPAT 32
#define CONC_BS (16u * 1024)

struct conc {
	struct blockstore *bs;
	unsigned char *data[NPAT];
	size_t len[NPAT];
	struct bs_hash h[NPAT];
	atomic_int stop;
	atomic_long ops, errors, deletes;
	int prefetch;
	pthread_mutex_t lock;
	char first_error[256];
};

static void conc_fail(struct conc *c, const char *fmt, int k, int r)
{
	pthread_mutex_lock(&c->lock);
	if (!c->first_error[0])
		snprintf(c->first_error, sizeof(c->first_error), fmt, k, r);
	pthread_mutex_unlock(&c->lock);
	atomic_fetch_add(&c->errors, 1);
}

static void *conc_worker(void *arg)
{
	struct conc *c = arg;
	uint64_t s = (uint64_t)(uintptr_t)&s ^ (uint64_t)mono_ns();

	while (!atomic_load(&c->stop)) {
		int k1 = (int)(xorshift(&s) % NPAT), k2 = (int)(xorshift(&s) % NPAT);
		struct bs_hash h1, h2;
		uint32_t stored;
		int created, r;

		r = bs_seal(c->bs, c->data[k1], c->len[k1], 0, &h1, &stored, &created);
		if (r < 0 || memcmp(h1.b, c->h[k1].b, BS_HASH_LEN) != 0) {
			conc_fail(c, "seal of pattern %d: %d or wrong hash", k1, r);
			continue;
		}
		if (c->prefetch) {
			r = bs_seal(c->bs, c->data[k2], c->len[k2], 0, &h2, &stored, &created);
			if (r < 0) {
				conc_fail(c, "seal of pattern %d: %d", k2, r);
				bs_unpin(c->bs, &h1);
				continue;
			}
			bs_prefetch(c->bs, &h2);
		}
		r = get_check(c->bs, &h1, c->data[k1], c->len[k1]);
		if (r != 0)
			conc_fail(c, "get of sealed, pinned pattern %d: %d", k1, r);
		if (c->prefetch) {
			r = get_check(c->bs, &h2, c->data[k2], c->len[k2]);
			if (r != 0)
				conc_fail(c, "get of prefetched pattern %d: %d", k2, r);
			bs_unpin(c->bs, &h2);
		}
		bs_unpin(c->bs, &h1);
		atomic_fetch_add(&c->ops, 1);
	}
	return NULL;
}

static void *conc_deleter(void *arg)
{
	struct conc *c = arg;
	unsigned round = 0;

	while (!atomic_load(&c->stop)) {
		if (round++ % 8 == 7) {
			uint64_t removed = 0;

			bs_gc(c->bs, wall_ns() + 1000000000ull, always_unref, NULL, &removed);
			atomic_fetch_add(&c->deletes, (long)removed);
		} else {
			for (int k = 0; k < NPAT; k++)
				if (bs_delete_if(c->bs, &c->h[k], always_unref, NULL) == 0)
					atomic_fetch_add(&c->deletes, 1);
		}
		usleep(200);
	}
	return NULL;
}

static void conc_run(struct conc *c, int deleter, double seconds)
{
	pthread_t t[5];
	int n = 0;

	atomic_store(&c->stop, 0);
	for (int i = 0; i < 4; i++)
		if (pthread_create(&t[n], NULL, conc_worker, c) == 0)
			n++;
	if (deleter && pthread_create(&t[n], NULL, conc_deleter, c) == 0)
		n++;
	usleep((useconds_t)(seconds * 1e6));
	atomic_store(&c->stop, 1);
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
}

static void test_concurrency(const char *dir)
{
	struct conc c;
	struct blockstore *check;
	char *log;
	int bad = 0;

	memset(&c, 0, sizeof(c));
	pthread_mutex_init(&c.lock, NULL);
	for (int k = 0; k < NPAT; k++) {
		c.len[k] = 1000 + (size_t)k * 480;	/* up to 15880 bytes */
		c.data[k] = malloc(c.len[k]);
		if (!c.data[k])
			bail_out("out of memory");
		if (k % 2)
			fill_random(c.data[k], c.len[k], 3000 + (uint64_t)k);
		else
			fill_text(c.data[k], c.len[k], 3000 + (uint64_t)k);
		bs_hash_of(c.data[k], c.len[k], &c.h[k]);
	}

	/* phase 1: 4 sealers/readers with prefetch, a cache of 6 blocks */
	c.bs = open_store(dir, CONC_BS, 6 * CONC_BS, 2);
	c.prefetch = 1;
	capture_begin();
	conc_run(&c, 0, 2.0);
	log = capture_end();
	ok(atomic_load(&c.ops) > 100, "4 threads sealed and read for 2 s (%ld rounds)",
	   (long)atomic_load(&c.ops));
	is_int(atomic_load(&c.errors), 0, "every seal, prefetch and get was right");
	if (c.first_error[0])
		diag("first error: %s", c.first_error);
	is_str(log, "", "nothing was logged");
	free(log);
	is_int(count_objects(c.bs), NPAT, "one object per distinct pattern");
	bs_close(c.bs);
	check = open_store(dir, CONC_BS, 64 * CONC_BS, 0);
	for (int k = 0; k < NPAT; k++)
		bad += get_check(check, &c.h[k], c.data[k], c.len[k]) != 0;
	is_int(bad, 0, "every object reads back right from a fresh store");
	bs_close(check);

	/* phase 2: the same against a thread deleting every unpinned block */
	c.bs = open_store(dir, CONC_BS, 6 * CONC_BS, 0);
	c.prefetch = 0;
	atomic_store(&c.ops, 0);
	capture_begin();
	conc_run(&c, 1, 2.0);
	log = capture_end();
	ok(atomic_load(&c.ops) > 100 && atomic_load(&c.deletes) > 0,
	   "4 threads sealed and read against a deleter for 2 s (%ld rounds, %ld deletes)",
	   (long)atomic_load(&c.ops), (long)atomic_load(&c.deletes));
	is_int(atomic_load(&c.errors), 0,
	       "a sealed, pinned block always read back right despite the deleter");
	if (c.first_error[0])
		diag("first error: %s", c.first_error);
	ok(strstr(log, "corrupt") == NULL, "no torn or corrupt object was ever read");
	free(log);
	bs_close(c.bs);
	check = open_store(dir, CONC_BS, 64 * CONC_BS, 0);
	bad = 0;
	for (int k = 0; k < NPAT; k++)
		if (obj_exists(check, &c.h[k]))
			bad += get_check(check, &c.h[k], c.data[k], c.len[k]) != 0;
	is_int(bad, 0, "every object left reads back right");
	bs_close(check);
	for (int k = 0; k < NPAT; k++)
		free(c.data[k]);
	pthread_mutex_destroy(&c.lock);
}

/* ---- gc ---- */

struct gc_pred {
	struct bs_hash keep, young;
	int asked_young;
};

static int gc_pred_fn(void *arg, const struct bs_hash *h)
{
	struct gc_pred *g = arg;

	if (memcmp(h->b, g->young.b, BS_HASH_LEN) == 0)
		g->asked_young++;
	return memcmp(h->b, g->keep.b, BS_HASH_LEN) != 0;
}

static void test_gc(const char *dir)
{
	struct blockstore *bs = open_store(dir, BS64K, 64 * BS64K, 0);
	unsigned char d[4][3000];
	struct bs_hash h[4];
	char junk[4200], fake[4200];
	struct gc_pred g;
	uint64_t removed = 99, mid = 0;
	time_t now = time(NULL);
	uint32_t stored;
	int created;

	/* 0: old, unreferenced; 1: young; 2: old, referenced; 3: old, pinned
	 * ("old": put before mid; the young one after it) */
	for (int i = 0; i < 4; i++) {
		int k = i == 3 ? 1 : i == 1 ? 3 : i;	/* 1 goes last */

		if (k == 1) {
			usleep(2000);
			mid = wall_ns();
			usleep(2000);
		}
		fill_text(d[k], sizeof(d[k]), 8000 + (uint64_t)k);
		if (bs_seal(bs, d[k], sizeof(d[k]), 0, &h[k], &stored, &created) < 0)
			bail_out("seal failed");
		if (k != 3)
			bs_unpin(bs, &h[k]);
	}
	/* files of the old one-file-per-object layout that are not objects */
	snprintf(junk, sizeof(junk), "%s/ab", dir);
	mkdir(junk, 0700);
	snprintf(junk, sizeof(junk), "%s/ab/junk", dir);
	write_file(junk, "x", 1);
	set_mtime(junk, now - 3600);
	snprintf(fake, sizeof(fake), "%s/ab/%064d", dir, 0);
	fake[strlen(fake) - 1] = 'z';	/* 64 characters, not hex */
	write_file(fake, "x", 1);
	set_mtime(fake, now - 3600);

	g.keep = h[2];
	g.young = h[1];
	g.asked_young = 0;
	is_int(bs_gc(bs, 0, gc_pred_fn, &g, &removed), 0, "bs_gc before the epoch");
	is_int(removed, 0, "removes nothing");

	is_int(bs_gc(bs, mid, gc_pred_fn, &g, &removed), 0,
	       "bs_gc of blocks put before a point in time");
	is_int(removed, 1, "removes exactly one block");
	ok(!obj_exists(bs, &h[0]), "the old unreferenced block is gone");
	ok(obj_exists(bs, &h[1]), "the young block is kept");
	is_int(g.asked_young, 0, "the young block was not even considered");
	ok(obj_exists(bs, &h[2]), "the old block the predicate calls referenced is kept");
	ok(obj_exists(bs, &h[3]), "the old pinned block is kept");
	ok(exists(junk) && exists(fake), "files that are not blocks are left alone");
	capture_begin();
	is_int(get_check(bs, &h[0], d[0], sizeof(d[0])), -EIO,
	       "the collected block is -EIO, although it was cached");
	free(capture_end());
	for (int i = 1; i < 4; i++)
		is_int(get_check(bs, &h[i], d[i], sizeof(d[i])), 0, "kept block %d reads back", i);
	bs_unpin(bs, &h[3]);
	is_int(bs_gc(bs, mid, gc_pred_fn, &g, &removed), 0,
	       "bs_gc again after unpinning");
	is_int(removed, 1, "removes the formerly pinned block");
	ok(!obj_exists(bs, &h[3]) && obj_exists(bs, &h[2]), "that one, and not the referenced one");
	bs_close(bs);
}

/* ---- the local backend ---- */

static uint64_t allocated(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (uint64_t)st.st_blocks * 512 : 0;
}

static off_t file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? st.st_size : -1;
}

static int be_check(struct bs_backend *be, const struct bs_hash *h,
		    const void *want, size_t len)
{
	void *got = NULL;
	size_t n = 0;
	int r = be->ops->get(be->ctx, h, &got, &n);

	if (r == 0)
		r = n == len && memcmp(got, want, len) == 0 ? 0 : 1;
	free(got);
	return r;
}

static int be_open(struct bs_backend *be, const char *dir)
{
	char *err = NULL;
	int r = bs_local_open(be, dir, 0, &err);

	if (r < 0)
		diag("bs_local_open %s: %s", dir, err ? err : "?");
	free(err);
	return r;
}

static void be_loc(struct bs_backend *be, const struct bs_hash *h, char *out,
		   uint64_t *off, uint64_t *len)
{
	char *path = NULL;

	if (be->ops->locate(be->ctx, h, &path, off, len) < 0)
		bail_out("locate failed");
	snprintf(out, 4200, "%s", path);
	free(path);
}

static void test_packs(const char *top_dir)
{
	enum { NOBJ = 4, OBJ = 20000 };
	char dir[4200], pack0[4200], packd[4200], p[4200], hex[BS_HEX_LEN + 1];
	unsigned char *data[NOBJ];
	struct bs_hash h[NOBJ], legacy;
	struct bs_backend be;
	uint64_t off[NOBJ], len, a0, a1;
	int n = 0;

	snprintf(dir, sizeof(dir), "%s/packs-test", top_dir);
	if (be_open(&be, dir) < 0)
		bail_out("cannot open %s", dir);
	for (int i = 0; i < NOBJ; i++) {
		data[i] = malloc(OBJ);
		if (!data[i])
			bail_out("out of memory");
		fill_random(data[i], OBJ, 600 + (uint64_t)i);
		memset(h[i].b, 0, BS_HASH_LEN);
		h[i].b[0] = (unsigned char)(0x10 * (i + 1));
		h[i].b[31] = (unsigned char)i;
	}
	/* A, B, C in the first pack */
	for (int i = 0; i < 3; i++)
		n += be.ops->put(be.ctx, &h[i], data[i], OBJ) == 0;
	is_int(n, 3, "three puts into a fresh store");
	for (int i = 0; i < 3; i++)
		be_loc(&be, &h[i], i ? p : pack0, &off[i], &len);
	ok(strcmp(p, pack0) == 0 && off[0] == 0 && off[1] == 20480 && off[2] == 40960,
	   "they share one pack, each in a 4 KiB-aligned slot (%llu, %llu, %llu)",
	   (unsigned long long)off[0], (unsigned long long)off[1],
	   (unsigned long long)off[2]);
	is_int(be.ops->put(be.ctx, &h[1], data[1], OBJ), 0, "a put of a stored name succeeds");
	is_int(file_size(pack0), 40960 + OBJ, "and writes nothing");
	a0 = allocated(pack0);
	is_int(be.ops->del(be.ctx, &h[1]), 0, "delete the middle object");
	a1 = allocated(pack0);
	is_int(be.ops->has(be.ctx, &h[1], NULL), 0, "it is gone from the index");
	if (a0 == a1)
		diag("no hole was punched (the filesystem of %s cannot?)", dir);
	ok(a0 - a1 >= 16384, "its slot's space went back to the filesystem (%llu -> %llu bytes)",
	   (unsigned long long)a0, (unsigned long long)a1);
	ok(be_check(&be, &h[0], data[0], OBJ) == 0 && be_check(&be, &h[2], data[2], OBJ) == 0,
	   "its neighbours read back");
	be.ops->free(be.ctx);

	/* a put cut short by a crash: bytes in the hole and past the end */
	{
		int fd = open(pack0, O_WRONLY);

		ok(fd >= 0 && pwrite_all(fd, data[3], OBJ, off[1]) == 0 &&
		   pwrite_all(fd, data[3], OBJ, 65536) == 0,
		   "write bytes no index entry names into the pack (as a crash would)");
		if (fd >= 0)
			close(fd);
	}
	a0 = allocated(pack0);
	if (be_open(&be, dir) < 0)
		bail_out("cannot reopen %s", dir);
	is_int(file_size(pack0), 40960 + OBJ, "reopening cuts the pack after its last object");
	ok(allocated(pack0) + 2 * 16384 <= a0,
	   "and punches the gap again (%llu -> %llu bytes)", (unsigned long long)a0,
	   (unsigned long long)allocated(pack0));
	ok(be_check(&be, &h[0], data[0], OBJ) == 0 && be_check(&be, &h[2], data[2], OBJ) == 0,
	   "the objects read back after the reopen");

	/* a new mount appends to a new pack; an emptied old pack goes */
	is_int(be.ops->put(be.ctx, &h[3], data[3], OBJ), 0, "a put after the reopen");
	be_loc(&be, &h[3], p, &off[3], &len);
	ok(strcmp(p, pack0) != 0 && off[3] == 0, "lands at the start of a new pack");
	is_int(count_packs(dir), 2, "two packs now");
	ok(be.ops->del(be.ctx, &h[0]) == 0 && be.ops->del(be.ctx, &h[2]) == 0,
	   "delete the old pack's two objects");
	ok(file_size(pack0) < 0 && count_packs(dir) == 1, "the emptied old pack is unlinked");
	be.ops->free(be.ctx);

	/* a missing pack is an error, not an absent object */
	snprintf(packd, sizeof(packd), "%s.away", p);
	ok(rename(p, packd) == 0, "move the pack of D away");
	if (be_open(&be, dir) < 0)
		bail_out("cannot reopen %s", dir);
	capture_begin();
	is_int(be.ops->get(be.ctx, &h[3], (void **)&data[1], &len), -EIO,
	       "getting D from the missing pack is -EIO");
	{
		char *log = capture_end();

		ok(strstr(log, "missing") != NULL, "with a log line saying the pack is missing");
		free(log);
	}
	be.ops->free(be.ctx);
	ok(rename(packd, p) == 0, "move it back");

	/* an object of the old layout, one file DIR/ab/<hex>, still works */
	memset(legacy.b, 0xab, BS_HASH_LEN);
	bs_hash_hex(&legacy, hex);
	snprintf(p, sizeof(p), "%s/ab", dir);
	mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/ab/%s", dir, hex);
	write_file(p, data[2], OBJ);
	if (be_open(&be, dir) < 0)
		bail_out("cannot reopen %s", dir);
	{
		uint64_t size = 0;

		is_int(be.ops->has(be.ctx, &legacy, &size), 1, "an old-layout object file is found");
		is_int(size, OBJ, "with its size");
	}
	is_int(be_check(&be, &legacy, data[2], OBJ), 0, "and reads back");
	ok(be_check(&be, &h[3], data[3], OBJ) == 0, "D reads back from its pack, moved back");
	n = 0;
	be.ops->scan(be.ctx, UINT64_MAX, count_one, &n);
	is_int(n, 2, "scan lists the pack's object and the old file");
	ok(be.ops->del(be.ctx, &legacy) == 0 && !exists(p), "deleting the old object removes its file");
	ok(be.ops->del(be.ctx, &h[3]) == 0, "delete D");
	be.ops->free(be.ctx);
	is_int(count_packs(dir), 0, "an empty store keeps no pack after close");
	for (int i = 0; i < NOBJ; i++)
		free(data[i]);
}

static void test_local(const char *top_dir)
{
	char dir[4200], p[4200], *err = NULL;
	struct bs_backend be;
	int r;

	snprintf(dir, sizeof(dir), "%s/local/blocks", top_dir);
	r = bs_local_open(&be, dir, 0, &err);
	is_int(r, 0, "bs_local_open creates a missing directory");
	if (r == 0)
		be.ops->free(be.ctx);
	snprintf(p, sizeof(p), "%s/packs", dir);
	ok(exists(p), "with DIR/packs");
	snprintf(p, sizeof(p), "%s/small", dir);
	ok(exists(p), "and the index DIR/small");
	snprintf(p, sizeof(p), "%s/tmp", dir);
	mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/tmp/123.4", dir);
	write_file(p, "partial", 7);
	r = bs_local_open(&be, dir, 0, &err);
	if (r == 0)
		be.ops->free(be.ctx);
	ok(r == 0 && !exists(p), "open clears litter from DIR/tmp (of older versions)");

	snprintf(p, sizeof(p), "%s/local/file", top_dir);
	write_file(p, "x", 1);
	snprintf(dir, sizeof(dir), "%s/local/file/blocks", top_dir);
	err = NULL;
	r = bs_local_open(&be, dir, 0, &err);
	ok(r < 0, "bs_local_open under a regular file fails (%d)", r);
	ok(err && strstr(err, dir), "with a message naming the directory (%s)",
	   err ? err : "none");
	free(err);
	test_packs(top_dir);
}

static int rm_rf(const char *dir)
{
	char cmd[4200];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd);
}

int main(void)
{
	char d[4200];

	if (!mkdtemp(top))
		bail_out("mkdtemp: %s", strerror(errno));
	snprintf(cap_path, sizeof(cap_path), "%s/stderr", top);

	snprintf(d, sizeof(d), "%s/seal", top);
	test_seal(d);
	snprintf(d, sizeof(d), "%s/raw", top);
	test_raw(d);
	snprintf(d, sizeof(d), "%s/corrupt", top);
	test_corruption(d);
	snprintf(d, sizeof(d), "%s/pins", top);
	test_pins(d);
	snprintf(d, sizeof(d), "%s/cache", top);
	test_cache(d);
	test_prefetch(d);
	snprintf(d, sizeof(d), "%s/conc", top);
	test_concurrency(d);
	snprintf(d, sizeof(d), "%s/gc", top);
	test_gc(d);
	test_local(top);

	ok(rm_rf(top) == 0, "scratch directory removed");
	return done_testing();
}
