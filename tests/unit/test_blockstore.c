/*
 * tests/unit/test_blockstore.c — sync/blockstore.c over sync/local.c.
 *
 * Hash naming (SHA-256 of the plaintext, DIR/ab/<hex>), zstd on disk,
 * dedup without rewriting, exact reads, corruption of every kind detected
 * on read (-EIO and a log line, never wrong bytes), pins against deletes,
 * the bounded cache, prefetch, concurrent sealers and readers (also against
 * a concurrent deleter), gc by age and reference, and the block size limit.
 *
 * Everything lives in a mkdtemp directory under /tmp, removed at the end.
 * Log lines of the library (stderr) are captured where a test expects them.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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

static void obj_path(const char *dir, const struct bs_hash *h, char *out, size_t cap)
{
	char hex[BS_HEX_LEN + 1];

	bs_hash_hex(h, hex);
	snprintf(out, cap, "%s/%.2s/%s", dir, hex, hex);
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

/* Objects in a local store (names of 64 hex digits in the fan-out dirs). */
static int count_objects(const char *dir)
{
	int n = 0;

	for (int i = 0; i < 256; i++) {
		char sub[4200];
		DIR *d;
		struct dirent *de;

		snprintf(sub, sizeof(sub), "%s/%02x", dir, i);
		d = opendir(sub);
		if (!d)
			continue;
		while ((de = readdir(d)) != NULL)
			if (strlen(de->d_name) == BS_HEX_LEN)
				n++;
		closedir(d);
	}
	return n;
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
	size_t rawlen = 0;
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

	obj_path(dir, &h, path, sizeof(path));
	ok(exists(path), "the object lands at DIR/%.2s/<64 hex>", hex);
	ok(stat(path, &st1) == 0 && st1.st_size == (off_t)stored,
	   "stored size (%u) is the object's size on disk", stored);
	ok(stored > 0 && stored < BS64K / 4,
	   "compressible data is stored compressed (%u of %u bytes)", stored, BS64K);
	raw = read_file(path, &rawlen);
	ok(raw != NULL, "read the object file");
	if (raw) {
		unsigned char *plain = malloc(BS64K);
		size_t n;

		is_int(ZSTD_getFrameContentSize(raw, rawlen), BS64K,
		       "the object is a zstd frame that records the plaintext size");
		n = ZSTD_decompress(plain, BS64K, raw, rawlen);
		ok(!ZSTD_isError(n) && n == BS64K && memcmp(plain, text, BS64K) == 0,
		   "ZSTD_decompress of the raw object gives back the plaintext");
		free(plain);
		free(raw);
	} else {
		skip(2, "no object");
	}
	is_int(count_objects(dir), 1, "one object in the store");
	{
		char tmpd[4200];
		DIR *d;
		struct dirent *de;
		int litter = 0;

		snprintf(tmpd, sizeof(tmpd), "%s/tmp", dir);
		d = opendir(tmpd);
		while (d && (de = readdir(d)) != NULL)
			litter += de->d_name[0] != '.';
		if (d)
			closedir(d);
		ok(d && litter == 0, "nothing is left in DIR/tmp after a put");
	}

	/* dedup: same bytes again, nothing rewritten */
	ok(set_mtime(path, 1000000000) == 0, "age the object (mtime 2001)");
	stat(path, &st1);
	created = -1;
	r = bs_seal(bs, text, BS64K, 0, &h2, &stored2, &created);
	is_int(r, 0, "sealing identical data again");
	is_int(created, 0, "reports created 0 (dedup)");
	is_mem(h2.b, 32, h.b, 32, "with the same hash");
	is_int(stored2, stored, "and the stored size of the existing object");
	ok(stat(path, &st2) == 0 && st2.st_ino == st1.st_ino &&
	   st2.st_mtim.tv_sec == 1000000000, "the object was not rewritten (same inode, old mtime)");
	is_int(count_objects(dir), 1, "still one object");
	bs_unpin(bs, &h);
	bs_unpin(bs, &h);

	is_int(get_check(bs, &h, text, BS64K), 0, "bs_get returns the exact bytes");

	/* other shapes of blocks */
	fill_random(rnd, BS64K, 7);
	r = bs_seal(bs, rnd, BS64K, 0, &hr, &stored, &created);
	ok(r == 0 && created == 1, "seal 64 KiB of random bytes");
	sha256(rnd, BS64K, want);
	is_mem(hr.b, 32, want, 32, "random block named by its SHA-256");
	obj_path(dir, &hr, path, sizeof(path));
	ok(stat(path, &st1) == 0 && st1.st_size == (off_t)stored,
	   "incompressible block stored (%u bytes)", stored);
	bs_unpin(bs, &hr);
	{
		/* a fresh store: read from disk, not from the copy sealing cached */
		struct blockstore *bs2 = open_store(dir, BS64K, 64 * BS64K, 0);

		is_int(get_check(bs2, &hr, rnd, BS64K), 0, "random block reads back from disk");
		is_int(get_check(bs2, &h, text, BS64K), 0, "text block reads back from disk");
		bs_close(bs2);
	}

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
		int n = count_objects(dir);

		fill_text(text, BS64K + 1, 99);
		is_int(bs_seal(bs, text, BS64K + 1, 0, &h2, &stored, &created), -EINVAL,
		       "sealing block_size + 1 bytes is -EINVAL");
		is_int(count_objects(dir), n, "and stores nothing");
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

/* ---- corruption ---- */

struct corrupt_case {
	const char *what;
	unsigned char *data;
	size_t len;
	int remove;
	const char *log;	/* expected in the log line */
};

static void test_corruption(const char *dir)
{
	struct blockstore *bs = open_store(dir, BS64K, 64 * BS64K, 0), *fresh;
	unsigned char *text = malloc(BS64K), *other = malloc(BS64K + 16), *orig;
	unsigned char *big = malloc(BS64K + 1);
	size_t origlen = 0, cap = ZSTD_compressBound(BS64K + 1);
	unsigned char *frame = malloc(cap), *bigframe = malloc(cap);
	unsigned char *mutated = malloc(cap + 64);
	size_t framelen, bigframelen;
	struct bs_hash h;
	uint32_t stored;
	int created, r;
	char path[4200], hex[BS_HEX_LEN + 1];

	if (!text || !other || !big || !frame || !bigframe || !mutated)
		bail_out("out of memory");
	fill_text(text, BS64K, 42);
	if (bs_seal(bs, text, BS64K, 0, &h, &stored, &created) < 0)
		bail_out("seal failed");
	bs_unpin(bs, &h);
	bs_close(bs);
	bs_hash_hex(&h, hex);
	obj_path(dir, &h, path, sizeof(path));
	orig = read_file(path, &origlen);
	if (!orig)
		bail_out("cannot read %s", path);

	/* a valid zstd frame of other content: same size, one byte differs */
	memcpy(other, text, BS64K);
	other[1000] ^= 0x20;
	framelen = ZSTD_compress(frame, cap, other, BS64K, 3);
	/* a valid frame of more than block_size bytes */
	fill_text(big, BS64K + 1, 42);
	bigframelen = ZSTD_compress(bigframe, cap, big, BS64K + 1, 3);
	if (ZSTD_isError(framelen) || ZSTD_isError(bigframelen))
		bail_out("zstd failed");
	memcpy(mutated, orig, origlen);
	mutated[origlen / 2] ^= 0x01;

	{
		unsigned char garbage[300];
		unsigned char *appended = malloc(origlen + 8);
		struct corrupt_case cases[] = {
			{ "a byte flipped in the middle", mutated, origlen, 0, "corrupt" },
			{ "a valid zstd frame of other content", frame, framelen, 0,
			  "does not match its hash" },
			{ "truncated to half", orig, origlen / 2, 0, "corrupt" },
			{ "truncated by one byte", orig, origlen - 1, 0, "corrupt" },
			{ "truncated to 0 bytes", orig, 0, 0, "corrupt" },
			{ "not zstd at all", garbage, sizeof(garbage), 0, "corrupt" },
			{ "a frame larger than block_size", bigframe, bigframelen, 0,
			  "corrupt" },
			{ "garbage after the frame", appended, origlen + 8, 0, NULL },
			{ "missing", NULL, 0, 1, "cannot read block" },
		};

		fill_random(garbage, sizeof(garbage), 3);
		if (!appended)
			bail_out("out of memory");
		memcpy(appended, orig, origlen);
		memcpy(appended + origlen, "GARBAGE!", 8);
		/* one store for all cases: a failed load must not be cached either */
		fresh = open_store(dir, BS64K, 64 * BS64K, 0);
		for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
			struct corrupt_case *c = &cases[i];
			struct bs_buf *buf = NULL;
			char *log;

			if (c->remove)
				unlink(path);
			else if (write_file(path, c->data, c->len) < 0)
				bail_out("cannot write %s", path);
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
		free(appended);

		/* the good object back: the same store now reads it */
		write_file(path, orig, origlen);
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
			write_file(path, mutated, origlen);
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
		size_t rlen = 0;
		int eio = 0, wrong = 0;

		fill_random(rnd, sizeof(rnd), 11);
		bs = open_store(dir, BS64K, 64 * BS64K, 0);
		bs_seal(bs, rnd, sizeof(rnd), 0, &hr, &stored, &created);
		bs_unpin(bs, &hr);
		bs_close(bs);
		obj_path(dir, &hr, rpath, sizeof(rpath));
		robj = read_file(rpath, &rlen);
		fresh = open_store(dir, BS64K, 64 * BS64K, 0);
		capture_begin();
		for (size_t pos = 0; robj && pos < rlen; pos++) {
			memcpy(mutated, robj, rlen);
			mutated[pos] ^= 0x80;
			write_file(rpath, mutated, rlen);
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
		   "flips of the stored raw bytes are -EIO (%d of %zu)", eio, rlen);
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

		write_file(path, orig, origlen);
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
		write_file(path, mutated, origlen);
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
	write_file(path, orig, origlen);
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
	char path[4200];

	fill_text(data, sizeof(data), 77);
	r = bs_seal(bs, data, sizeof(data), 0, &h, &stored, &created);
	ok(r == 0 && created, "seal a block (it is pinned)");
	obj_path(dir, &h, path, sizeof(path));
	p.h = h;
	p.answer = 1;
	is_int(bs_delete_if(bs, &h, pred_fn, &p), -EBUSY,
	       "bs_delete_if refuses a pinned block (-EBUSY)");
	ok(exists(path), "the pinned block is still on disk");

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
	ok(exists(path), "the referenced block is still on disk");
	ok(p.calls == 1 && p.wrong_hash == 0, "the predicate was asked about this block");
	is_int(get_check(bs, &h, data, sizeof(data)), 0, "and it still reads back");

	p.answer = 1;
	is_int(bs_delete_if(bs, &h, pred_fn, &p), 0,
	       "unpinned and unreferenced: bs_delete_if deletes it");
	ok(!exists(path), "the object is gone from disk");
	capture_begin();
	r = get_check(bs, &h, data, sizeof(data));
	free(capture_end());
	is_int(r, -EIO, "a deleted block is -EIO, also from the store that cached it");

	r = bs_seal(bs, data, sizeof(data), 0, &h, &stored, &created);
	ok(r == 0 && created == 1 && exists(path), "sealing it again stores it again");
	bs_unpin(bs, &h);
	bs_pin(bs, &h);
	is_int(bs_delete_if(bs, &h, always_unref, NULL), -EBUSY, "bs_pin protects it too");
	bs_unpin(bs, &h);
	is_int(bs_delete_if(bs, &h, always_unref, NULL), 0, "after bs_unpin it can go");
	bs_close(bs);
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
	is_int(count_objects(dir), NPAT, "one object per distinct pattern");
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
	for (int k = 0; k < NPAT; k++) {
		char path[4200];

		obj_path(dir, &c.h[k], path, sizeof(path));
		if (exists(path))
			bad += get_check(check, &c.h[k], c.data[k], c.len[k]) != 0;
	}
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
	char path[4][4200], junk[4200], fake[4200];
	struct gc_pred g;
	uint64_t removed = 99;
	time_t now = time(NULL);
	uint32_t stored;
	int created;

	/* 0: old, unreferenced; 1: young; 2: old, referenced; 3: old, pinned */
	for (int i = 0; i < 4; i++) {
		fill_text(d[i], sizeof(d[i]), 8000 + (uint64_t)i);
		if (bs_seal(bs, d[i], sizeof(d[i]), 0, &h[i], &stored, &created) < 0)
			bail_out("seal failed");
		obj_path(dir, &h[i], path[i], sizeof(path[i]));
		if (i != 3)
			bs_unpin(bs, &h[i]);
		if (i != 1)
			set_mtime(path[i], now - 3600);
	}
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

	is_int(bs_gc(bs, wall_ns() - 60ull * 1000000000ull, gc_pred_fn, &g, &removed), 0,
	       "bs_gc of blocks older than a minute");
	is_int(removed, 1, "removes exactly one block");
	ok(!exists(path[0]), "the old unreferenced block is gone");
	ok(exists(path[1]), "the young block is kept");
	is_int(g.asked_young, 0, "the young block was not even considered");
	ok(exists(path[2]), "the old block the predicate calls referenced is kept");
	ok(exists(path[3]), "the old pinned block is kept");
	ok(exists(junk) && exists(fake), "files that are not blocks are left alone");
	capture_begin();
	is_int(get_check(bs, &h[0], d[0], sizeof(d[0])), -EIO,
	       "the collected block is -EIO, although it was cached");
	free(capture_end());
	for (int i = 1; i < 4; i++)
		is_int(get_check(bs, &h[i], d[i], sizeof(d[i])), 0, "kept block %d reads back", i);
	bs_unpin(bs, &h[3]);
	is_int(bs_gc(bs, wall_ns() - 60ull * 1000000000ull, gc_pred_fn, &g, &removed), 0,
	       "bs_gc again after unpinning");
	is_int(removed, 1, "removes the formerly pinned block");
	ok(!exists(path[3]) && exists(path[2]), "that one, and not the referenced one");
	bs_close(bs);
}

/* ---- the local backend ---- */

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
	snprintf(p, sizeof(p), "%s/00", dir);
	ok(exists(p), "with fan-out directory 00");
	snprintf(p, sizeof(p), "%s/ff", dir);
	ok(exists(p), "and ff");
	snprintf(p, sizeof(p), "%s/tmp/123.4", dir);
	write_file(p, "partial", 7);
	r = bs_local_open(&be, dir, 0, &err);
	if (r == 0)
		be.ops->free(be.ctx);
	ok(r == 0 && !exists(p), "open clears litter from DIR/tmp");

	snprintf(p, sizeof(p), "%s/local/file", top_dir);
	write_file(p, "x", 1);
	snprintf(dir, sizeof(dir), "%s/local/file/blocks", top_dir);
	err = NULL;
	r = bs_local_open(&be, dir, 0, &err);
	ok(r < 0, "bs_local_open under a regular file fails (%d)", r);
	ok(err && strstr(err, dir), "with a message naming the directory (%s)",
	   err ? err : "none");
	free(err);
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
