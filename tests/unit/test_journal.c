/*
 * tests/unit/test_journal.c — the metadata journal (catalog/meta.c records,
 * catalog/journal.c segments and snapshots) without a bucket: every commit
 * writes one record stamped with the upload mark, records trim, a snapshot
 * excludes the journal's own keys and is whole, and the parsers restore
 * uses survive fuzzing: truncations, flipped bytes and forged lengths give
 * -EIO, never a crash or a read out of bounds (run under ASan by make test).
 *
 * The fuzz seed is printed; LFS_FUZZ_SEED=N replays it.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "catalog/journal.h"
#include "catalog/meta.h"
#include "tests/unit/mutate.h"
#include "tests/unit/tap.h"
#include "util/util.h"

#define FUZZ_ROUNDS 20000

static char top[] = "/tmp/lakefs-unit-journal.XXXXXX";
static uint64_t fake_mark;

static uint64_t mark_fn(void *arg)
{
	(void)arg;
	return fake_mark;
}

static int commit_file(struct meta *m, const char *name, int nblocks)
{
	struct meta_txn *t;
	struct meta_inode in = { 0 };
	int ret = 0;

	meta_lock(m);
	t = meta_txn_begin(m);
	in.ino = meta_txn_alloc_ino(t);
	in.mode = 0100644;
	in.nlink = 1;
	in.size = (uint64_t)nblocks * 4096;
	meta_txn_put_inode(t, &in);
	meta_txn_put_dirent(t, META_ROOT_INO, name, in.ino, in.mode, in.ino);
	meta_txn_count(t, in.mode, 1);
	for (int i = 0; i < nblocks && ret == 0; i++) {
		struct bs_hash h;
		char data[64];

		snprintf(data, sizeof(data), "%s/%d", name, i);
		bs_hash_of(data, strlen(data), &h);
		ret = meta_txn_set_block(t, in.ino, (uint64_t)i, NULL, &h, 4096, 100);
	}
	meta_txn_put_xattr(t, in.ino, "user.k", "v", 1);
	ret = ret ? ret : meta_txn_commit(t, 0, NULL);
	meta_unlock(m);
	return ret;
}

struct rec_ctx {
	uint64_t n, last_seq, marks_ok;
};

static int rec_one(void *arg, uint64_t seq, const void *rec, size_t len)
{
	struct rec_ctx *rc = arg;

	rc->n++;
	rc->last_seq = seq;
	if (len >= 16 && get_be64(rec) == seq && get_be64((const unsigned char *)rec + 8) == seq)
		rc->marks_ok++;
	return 0;
}

/* Mutate a copy of buf n ways; returns the new length. */
static size_t mutate(unsigned char *p, size_t n, size_t cap, uint64_t *s)
{
	int k = 1 + (int)(rnd(s) % 4);

	while (k-- > 0 && n > 0) {
		size_t at = (size_t)(rnd(s) % n);

		switch (rnd(s) % 5) {
		case 0:		/* flip a byte */
			p[at] ^= (unsigned char)(1 + rnd(s) % 255);
			break;
		case 1:		/* truncate */
			n = at;
			break;
		case 2:		/* forge a 32-bit length */
			if (at + 4 <= n)
				put_be32(p + at, (uint32_t)rnd(s));
			break;
		case 3:		/* a huge length */
			if (at + 4 <= n)
				put_be32(p + at, 0xfffffff0u + (uint32_t)(rnd(s) % 16));
			break;
		default:	/* garbage at the end */
			while (n < cap && rnd(s) % 8)
				p[n++] = (unsigned char)rnd(s);
			break;
		}
	}
	return n;
}

static void fuzz(const char *what, const struct gbuf *good, int snapshot,
		 uint64_t seed)
{
	size_t cap = good->n + 64;
	unsigned char *p = malloc(cap);
	uint64_t s = seed ? seed : 1, accepted = 0, rejected = 0, bad = 0;

	for (int i = 0; i < FUZZ_ROUNDS; i++) {
		uint64_t a, b, c;
		size_t n;
		int ret;

		memcpy(p, good->p, good->n);
		n = mutate(p, good->n, cap, &s);
		/* an exact-size copy, so ASan sees any read past the end */
		unsigned char *q = malloc(n ? n : 1);

		memcpy(q, p, n);
		ret = snapshot ? journal_check_snapshot(q, n, &a, &b)
			       : journal_check_segment(q, n, &a, &b, &c);
		free(q);
		if (ret == 0)
			accepted++;
		else if (ret == -EIO)
			rejected++;
		else
			bad++;
	}
	free(p);
	ok(bad == 0 && rejected > FUZZ_ROUNDS / 2,
	   "%s: %d mutations: %llu rejected with EIO, %llu still whole, no other "
	   "outcome", what, FUZZ_ROUNDS, (unsigned long long)rejected,
	   (unsigned long long)accepted);
}

int main(void)
{
	struct meta *m = NULL;
	char *err = NULL;
	struct rec_ctx rc = { 0 };
	struct gbuf seg = { 0 }, snap = { 0 };
	uint64_t first = 0, last = 0, mark = 0, count = 0, seq = 0, keys = 0;
	uint64_t c1, c2, c3;
	const char *env = getenv("LFS_FUZZ_SEED");
	uint64_t seed = env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL) ^ (uint64_t)getpid();

	if (!mkdtemp(top))
		bail_out("mkdtemp: %s", strerror(errno));
	is_int(meta_open(&m, top, 65536, &err), 0, "meta_open");
	if (!m)
		bail_out("cannot open metadata: %s", err ? err : "?");

	/* before the journal is on: no records */
	is_int(commit_file(m, "before", 2), 0, "a commit without the journal");
	is_int((int)meta_journal_last(m), 0, "no record without the journal");

	meta_journal_enable(m, mark_fn, NULL);
	for (int i = 1; i <= 50; i++) {
		char name[32];

		fake_mark = (uint64_t)i;	/* the mark the commit must record */
		snprintf(name, sizeof(name), "f%03d", i);
		if (commit_file(m, name, i % 5) != 0)
			break;
	}
	is_int((int)meta_journal_last(m), 50, "50 commits, 50 records");
	meta_journal_scan(m, 0, rec_one, &rc);
	is_int((int)rc.n, 50, "all 50 records are there, in order");
	is_int((int)rc.last_seq, 50, "the last is record 50");
	is_int((int)rc.marks_ok, 50, "each record holds its seq and the mark of its commit");

	is_int(journal_build_segment(m, 11, &seg, &first, &last, &mark, &count), 0,
	       "a segment from record 11");
	ok(first == 11 && last == 50 && count == 40 && mark == 50,
	   "it holds records 11..50 and the highest mark (%llu..%llu, %llu, mark %llu)",
	   (unsigned long long)first, (unsigned long long)last,
	   (unsigned long long)count, (unsigned long long)mark);
	is_int(journal_check_segment(seg.p, seg.n, &c1, &c2, &c3), 0, "the segment parses whole");
	ok(c1 == 11 && c2 == 50 && c3 == 40, "and the parser sees the same records");
	is_int(journal_check_segment(seg.p, seg.n - 1, &c1, &c2, &c3), -EIO,
	       "one byte short is -EIO");

	is_int(meta_journal_trim(m, 30), 0, "trim up to record 30");
	memset(&rc, 0, sizeof(rc));
	meta_journal_scan(m, 0, rec_one, &rc);
	is_int((int)rc.n, 20, "20 records left");
	is_int((int)meta_journal_last(m), 50, "the numbering goes on");
	fake_mark = 77;
	is_int(commit_file(m, "after-trim", 1), 0, "a commit after the trim");
	is_int((int)meta_journal_last(m), 51, "is record 51");

	is_int(journal_build_snapshot(m, &snap, &seq, &mark, &keys), 0, "a snapshot");
	ok(seq == 51 && mark == 77, "as of record 51, mark 77 (%llu, %llu)",
	   (unsigned long long)seq, (unsigned long long)mark);
	is_int(journal_check_snapshot(snap.p, snap.n, &c1, &c2), 0, "the snapshot parses whole");
	ok(c1 == 51 && c2 == keys && keys > 52 * 3, "with the same seq and %llu keys",
	   (unsigned long long)keys);
	ok(!memmem(snap.p, snap.n, "J\0\0\0\0\0\0\0\x33", 9),
	   "no journal record inside the snapshot");
	is_int(journal_check_snapshot(snap.p, snap.n - 3, &c1, &c2), -EIO,
	       "a truncated snapshot is -EIO");

	/* reopen: the numbering survives */
	meta_close(m);
	m = NULL;
	is_int(meta_open(&m, top, 65536, &err), 0, "reopen");
	meta_journal_enable(m, mark_fn, NULL);
	is_int((int)meta_journal_last(m), 51, "the last record is still 51");
	is_int(commit_file(m, "reopened", 1), 0, "a commit after reopening");
	is_int((int)meta_journal_last(m), 52, "is record 52");

	diag("fuzz seed %llu (replay with LFS_FUZZ_SEED=%llu)",
	     (unsigned long long)seed, (unsigned long long)seed);
	fuzz("segment", &seg, 0, seed);
	fuzz("snapshot", &snap, 1, seed + 1);

	free(seg.p);
	free(snap.p);
	meta_close(m);
	{
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", top);
		if (system(cmd) != 0)
			diag("cannot remove %s", top);
	}
	return done_testing();
}
