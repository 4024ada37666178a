/*
 * tests/unit/test_gstore.c — rows grouped by key (catalog/gstore.c).
 *
 * Rows with known keys and values go in; what comes out must be the same
 * multiset of rows with every key's rows adjacent, each key's rows in the
 * order they were added. Run in memory, spilled with a small budget (files
 * seen in the spill directory, memory near the budget), with one key
 * holding most rows, with empty keys and values, with rows bigger than a
 * partition's buffer, and with a spill directory that cannot be written.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "catalog/gstore.h"
#include "tests/unit/tap.h"
#include "util/util.h"

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/*
 * n rows over nkeys keys (key i is "k<i>" padded to klen_pad bytes; with
 * skew, 90% of rows have key 0); value = "<key>:<seq>" padded to vpad.
 * Checks adjacency, per-key order and counts. Returns the failures.
 */
static int run(const char *what, size_t n, size_t nkeys, int skew, size_t budget,
	       const char *dir, size_t vpad, uint64_t *spilled, uint64_t *peak)
{
	struct gstore *g;
	uint64_t s = 88172645463325252ull, *seen_n = calloc(nkeys, sizeof(*seen_n));
	uint64_t *next_seq = calloc(nkeys, sizeof(*next_seq));
	char *done = calloc(nkeys, 1);
	char *buf = malloc(vpad + 64);
	const unsigned char *k, *v;
	size_t klen, vlen, rows = 0, bad = 0, prev = SIZE_MAX;
	int ret;

	if (!seen_n || !next_seq || !done || !buf || gstore_new(&g, budget, dir) < 0) {
		diag("%s: out of memory", what);
		return 1;
	}
	for (size_t i = 0; i < n; i++) {
		size_t key = skew && rnd(&s) % 10 ? 0 : rnd(&s) % nkeys;
		char kb[32];
		int kn = snprintf(kb, sizeof(kb), "k%zu", key);
		int vn = snprintf(buf, vpad + 64, "%zu:%llu", key,
				  (unsigned long long)seen_n[key]++);

		memset(buf + vn, 'v', vpad);
		if ((ret = gstore_add(g, kb, (size_t)kn, buf, (size_t)vn + vpad)) < 0) {
			diag("%s: add: %s", what, strerror(-ret));
			gstore_free(g);
			return 1;
		}
	}
	while ((ret = gstore_next(g, &k, &klen, &v, &vlen)) == 1) {
		char kb[32], vb[32], *colon;
		size_t key;
		unsigned long long seq;

		rows++;
		if (klen < 2 || klen >= sizeof(kb) || k[0] != 'k') {
			bad++;
			continue;
		}
		memcpy(kb, k, klen);
		kb[klen] = 0;
		key = strtoul(kb + 1, NULL, 10);
		if (key >= nkeys) {
			bad++;
			continue;
		}
		if (key != prev) {	/* a new run: the key must not come back */
			if (done[key])
				bad++;
			if (prev != SIZE_MAX)
				done[prev] = 1;
			prev = key;
		}
		memcpy(vb, v, MIN(vlen, sizeof(vb) - 1));
		vb[MIN(vlen, sizeof(vb) - 1)] = 0;
		colon = strchr(vb, ':');
		seq = colon ? strtoull(colon + 1, NULL, 10) : ~0ull;
		if (vlen < vpad || seq != next_seq[key]++)
			bad++;
	}
	if (ret < 0)
		diag("%s: next: %s", what, strerror(-ret));
	for (size_t i = 0; i < nkeys; i++)
		if (next_seq[i] != seen_n[i])
			bad++;
	gstore_stats(g, NULL, spilled, peak);
	ok(ret == 0 && rows == n && bad == 0, "%s: %zu rows out of %zu, %zu misplaced",
	   what, rows, n, bad);
	gstore_free(g);
	free(seen_n);
	free(next_seq);
	free(done);
	free(buf);
	return ret != 0 || rows != n || bad != 0;
}

static int count_files(const char *dir)
{
	char path[256];
	int n = 0;

	/* the files are unlinked: count them through /proc/self/fd */
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;

	if (!d)
		return -1;
	while ((e = readdir(d))) {
		char link[512];
		ssize_t m;

		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		if ((m = readlink(path, link, sizeof(link) - 1)) > 0) {
			link[m] = 0;
			if (!strncmp(link, dir, strlen(dir)))
				n++;
		}
	}
	closedir(d);
	return n;
}

static void test_spill_files(const char *dir)
{
	struct gstore *g;
	char v[100];
	int files, ret = 0;

	gstore_new(&g, 4096, dir);
	memset(v, 'x', sizeof(v));
	for (int i = 0; i < 10000 && ret == 0; i++) {
		char k[16];

		ret = gstore_add(g, k, (size_t)snprintf(k, sizeof(k), "%d", i % 500), v,
				 sizeof(v));
	}
	files = count_files(dir);
	ok(ret == 0 && files > 0, "a store past its budget holds spill files (%d)", files);
	gstore_free(g);
	ok(count_files(dir) == 0, "freeing it closes them, and none is left in the directory");
}

int main(void)
{
	char dir[] = "/tmp/gstore-test-XXXXXX";
	uint64_t spilled, peak;
	struct gstore *g;
	const unsigned char *k, *v;
	size_t klen, vlen;
	int ret;

	if (!mkdtemp(dir))
		bail_out("mkdtemp: %s", strerror(errno));

	run("in memory, 1000 keys", 200000, 1000, 0, 256u << 20, dir, 0, &spilled, &peak);
	ok(spilled == 0, "a store within its budget spills nothing");

	run("spilled, 1000 keys", 200000, 1000, 0, 256u << 10, dir, 8, &spilled, &peak);
	ok(spilled > 0, "past the budget it spills (%llu bytes)",
	   (unsigned long long)spilled);
	ok(peak < 1u << 20, "and holds little memory (%llu KiB, budget 256 KiB + buffers)",
	   (unsigned long long)(peak >> 10));

	run("spilled, every row its own key", 100000, 100000, 0, 64u << 10, dir, 0,
	    &spilled, &peak);
	ok(spilled > 0, "many keys spill too");
	run("spilled, one key holds 90%", 100000, 50, 1, 64u << 10, dir, 4, &spilled, &peak);
	run("rows bigger than a partition buffer", 300, 7, 0, 64u << 10, dir, 100000,
	    &spilled, &peak);
	ok(spilled > 300 * 100000, "the big rows went to the files whole");

	/* empty key and empty value (in memory: keys in the order first seen) */
	gstore_new(&g, 1u << 20, dir);
	gstore_add(g, "", 0, "", 0);
	gstore_add(g, "a", 1, "", 0);
	gstore_add(g, "", 0, "x", 1);
	ret = gstore_next(g, &k, &klen, &v, &vlen);
	ok(ret == 1 && klen == 0 && vlen == 0, "an empty key and value come back");
	ret = gstore_next(g, &k, &klen, &v, &vlen);
	ok(ret == 1 && klen == 0 && vlen == 1 && v[0] == 'x',
	   "next to the other row of the empty key");
	ret = gstore_next(g, &k, &klen, &v, &vlen);
	ok(ret == 1 && klen == 1 && vlen == 0, "then key a");
	ok(gstore_next(g, &k, &klen, &v, &vlen) == 0, "then the end");
	ok(gstore_next(g, &k, &klen, &v, &vlen) == 0, "and the end again");
	ok(gstore_add(g, "a", 1, "", 0) == -EINVAL, "no add once reading began");
	gstore_free(g);

	/* empty store */
	gstore_new(&g, 1024, dir);
	ok(gstore_next(g, &k, &klen, &v, &vlen) == 0, "an empty store has no rows");
	gstore_free(g);

	test_spill_files(dir);

	/* a spill directory that does not exist: the add fails, clearly */
	gstore_new(&g, 1024, "/nonexistent/lakefs-gstore");
	ret = 0;
	for (int i = 0; i < 100000 && ret == 0; i++)
		ret = gstore_add(g, &i, sizeof(i), "0123456789", 10);
	is_int(ret, -ENOENT, "a spill into a missing directory is -ENOENT");
	gstore_free(g);

	rmdir(dir);
	return done_testing();
}
