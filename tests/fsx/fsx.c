/*
 * tests/fsx/fsx.c — a randomized file exerciser in the spirit of fsx(8).
 *
 *   fsx [-N ops] [-S seed] [-l maxlen] [-o maxop] [-c every] [-M] [-q]
 *       TESTFILE REFFILE
 *
 *   -N ops     operations to run (default 10000)
 *   -S seed    seed of the sequence (default: from the clock)
 *   -l maxlen  largest file length (default 4m; k/m/g suffixes work)
 *   -o maxop   largest length of one read, write, map or fallocate
 *              (default 256k)
 *   -c every   compare the whole files every this many ops (default 1000)
 *   -M         no mmap operations (for a mount that cannot map files)
 *   -q         quiet: only the seed line, the summary and a failure report
 *
 * One seeded pseudo-random sequence of operations goes to TESTFILE, on the
 * file system under test, and to REFFILE, on a trusted local file system.
 * The reference gets every operation in its plainest form (pwrite for an
 * mmap write, ftruncate or written zeroes for fallocate), so it is the
 * model; the test file gets the real system call. Operations: pwrite,
 * pread, ftruncate up and down, mmap read and mmap write (MAP_SHARED,
 * msync, munmap), fallocate mode 0 and PUNCH_HOLE|KEEP_SIZE, fsync or
 * fdatasync, close and reopen, rename to "TESTFILE.fsxtmp" and back (the
 * reference is renamed too). After every op the two st_size must agree,
 * every read is compared byte for byte, and the whole files are compared
 * every -c ops and at the end. Offsets lean towards multiples of 1 MiB and
 * 64 KiB (give or take a few bytes) and towards end of file, where block
 * stores keep their bugs.
 *
 * Every output line starts with '#', so a TAP script may pass it through.
 * The seed is printed first, always. The generator is xorshift64*, never
 * rand(), so a seed with the same options replays the same ops; an op the
 * file system refuses with EOPNOTSUPP (fallocate) is noted once and then
 * skipped without disturbing the sequence.
 *
 * Exit status: 0 when everything matched ("# fsx: N ops, seed S, 0
 * mismatches"); 1 on a mismatch or an unexpected error, after a report with
 * the op number, the last 50 ops, the first differing offset with the bytes
 * of both files, and the seed; 2 on a usage error. Both files are left in
 * place for a post mortem; removing them is the caller's business.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/falloc.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define KiB		(UINT64_C(1) << 10)
#define MiB		(UINT64_C(1) << 20)
#define LOG_LEN		50
#define CMP_CHUNK	MiB
#define JITTER		8	/* "a few bytes" around a block boundary */

enum op {
	OP_READ, OP_WRITE, OP_TRUNCATE, OP_MAPREAD, OP_MAPWRITE,
	OP_FALLOC, OP_PUNCH, OP_SYNC, OP_REOPEN, OP_RENAME, OP_NR
};

static const char *const op_name[OP_NR] = {
	"read", "write", "truncate", "mapread", "mapwrite",
	"falloc", "punch", "sync", "reopen", "rename",
};

/* Percent of ops of each kind; the sum is 100. */
static const unsigned op_weight[OP_NR] = {
	22, 26, 8, 9, 9, 5, 5, 6, 6, 4,
};

struct rng {
	uint64_t s;
};

struct logent {
	uint64_t opnum;
	enum op op;
	uint64_t off, len;
	uint64_t size_before, size_after;
	const char *note;	/* static string or NULL */
};

struct fsx {
	const char *test_path, *ref_path;
	char *test_tmp, *ref_tmp;
	int tfd, rfd;
	struct rng rng;
	uint64_t seed;
	uint64_t nops, opnum, check_every;
	uint64_t maxlen, maxop;
	uint64_t size;		/* agreed st_size after the last op */
	int quiet, no_mmap, no_falloc, no_punch;
	long pagesize;
	unsigned char *data, *tbuf, *rbuf, *zero;
	struct logent log[LOG_LEN];
	uint64_t nlogged;
	uint64_t count[OP_NR];
};

static sigjmp_buf bus_jmp;
static volatile sig_atomic_t in_map;

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

static void rng_seed(struct rng *r, uint64_t seed)
{
	r->s = splitmix64(&seed);
	if (!r->s)
		r->s = UINT64_C(0x9e3779b97f4a7c15);
}

static uint64_t rng_next(struct rng *r)
{
	uint64_t x = r->s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	r->s = x;
	return x * UINT64_C(0x2545f4914f6cdd1d);
}

static uint64_t rng_below(struct rng *r, uint64_t n)
{
	return n ? rng_next(r) % n : 0;
}

static void fill_random(uint64_t seed, unsigned char *buf, size_t n)
{
	struct rng r;
	uint64_t v;
	size_t i;

	rng_seed(&r, seed);
	for (i = 0; i + 8 <= n; i += 8) {
		v = rng_next(&r);
		memcpy(buf + i, &v, 8);
	}
	if (i < n) {
		v = rng_next(&r);
		memcpy(buf + i, &v, n - i);
	}
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* Reads until len bytes or end of file; returns the count or -1. */
static ssize_t pread_full(int fd, unsigned char *buf, size_t len, uint64_t off)
{
	size_t done = 0;
	ssize_t n;

	while (done < len) {
		n = pread(fd, buf + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

static int pwrite_full(int fd, const unsigned char *buf, size_t len,
		       uint64_t off)
{
	size_t done = 0;
	ssize_t n;

	while (done < len) {
		n = pwrite(fd, buf + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0) {
			errno = EIO;
			return -1;
		}
		done += (size_t)n;
	}
	return 0;
}

__attribute__((format(printf, 2, 3)))
static void say(const struct fsx *f, const char *fmt, ...)
{
	va_list ap;

	if (f->quiet)
		return;
	fputs("# ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

/* The first line of a failure report; main() adds the op log and seed. */
__attribute__((format(printf, 2, 3)))
static void fail(const struct fsx *f, const char *fmt, ...)
{
	va_list ap;

	printf("# fsx: FAIL at op %" PRIu64 " (%s): ", f->opnum,
	       f->nlogged ? op_name[f->log[(f->nlogged - 1) % LOG_LEN].op]
			  : "setup");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static void dump_bytes(const char *who, uint64_t base,
		       const unsigned char *b, size_t n, size_t from)
{
	size_t start = from & ~(size_t)15, end = min_u64(n, start + 32), i;

	printf("#   %-4s 0x%08" PRIx64 ":", who, base + start);
	for (i = start; i < end; i++)
		printf("%s%02x", i == from ? " [" : " ", b[i]);
	putchar('\n');
}

/* Compares the n bytes read from [base, base + n) of both files. */
static int compare(const struct fsx *f, const char *what, uint64_t base,
		   const unsigned char *tb, const unsigned char *rb, size_t n)
{
	size_t i, first, last, ndiff = 0;

	if (!memcmp(tb, rb, n))
		return 0;
	for (i = 0; i < n && tb[i] == rb[i]; i++)
		;
	first = last = i;
	for (; i < n; i++) {
		if (tb[i] != rb[i]) {
			ndiff++;
			last = i;
		}
	}
	fail(f, "%s of [%" PRIu64 ", %" PRIu64 ") differs from the reference",
	     what, base, base + n);
	printf("# fsx: first differing offset %" PRIu64 " (0x%" PRIx64
	       "), last %" PRIu64 ", %zu bytes differ\n",
	       base + first, base + first, base + last, ndiff);
	dump_bytes("test", base, tb, n, first);
	dump_bytes("ref", base, rb, n, first);
	return -1;
}

static int check_sizes(struct fsx *f)
{
	struct stat ts, rs;

	if (fstat(f->tfd, &ts) < 0) {
		fail(f, "fstat %s: %s", f->test_path, strerror(errno));
		return -1;
	}
	if (fstat(f->rfd, &rs) < 0) {
		fail(f, "fstat %s: %s", f->ref_path, strerror(errno));
		return -1;
	}
	if (ts.st_size != rs.st_size) {
		fail(f, "st_size is %jd, the reference says %jd",
		     (intmax_t)ts.st_size, (intmax_t)rs.st_size);
		return -1;
	}
	f->size = (uint64_t)rs.st_size;
	return 0;
}

static int full_compare(struct fsx *f)
{
	uint64_t off;
	ssize_t nt, nr;

	if (check_sizes(f))
		return -1;
	for (off = 0; off < f->size; off += CMP_CHUNK) {
		nt = pread_full(f->tfd, f->tbuf, CMP_CHUNK, off);
		nr = pread_full(f->rfd, f->rbuf, CMP_CHUNK, off);
		if (nt < 0 || nr < 0) {
			fail(f, "full compare: read at %" PRIu64 " of %s: %s",
			     off, nt < 0 ? f->test_path : f->ref_path,
			     strerror(errno));
			return -1;
		}
		if (nt != nr) {
			fail(f, "full compare: read at %" PRIu64 " gave %zd "
			     "bytes, the reference %zd", off, nt, nr);
			return -1;
		}
		if (compare(f, "full compare", off, f->tbuf, f->rbuf,
			    (size_t)nt))
			return -1;
	}
	return 0;
}

/*
 * An offset in [0, limit): a quarter near a multiple of 1 MiB, some near a
 * multiple of 64 KiB or near end of file, the rest uniform.
 */
static uint64_t pick_off(struct fsx *f, uint64_t limit)
{
	uint64_t r = rng_below(&f->rng, 100), unit, base;
	int64_t off;

	if (r >= 50)
		return rng_below(&f->rng, limit);
	if (r < 40) {
		unit = r < 25 ? MiB : 64 * KiB;
		base = unit * rng_below(&f->rng, limit / unit + 1);
	} else {
		base = f->size;
	}
	off = (int64_t)base + (int64_t)rng_below(&f->rng, 2 * JITTER + 1) -
	      JITTER;
	if (off < 0)
		off = 0;
	if ((uint64_t)off >= limit)
		off = (int64_t)limit - 1;
	return (uint64_t)off;
}

/* A length in [1, min(avail, maxop)], often ending near a boundary. */
static uint64_t pick_len(struct fsx *f, uint64_t off, uint64_t avail)
{
	uint64_t r = rng_below(&f->rng, 100), unit, end, len;

	avail = min_u64(avail, f->maxop);
	if (!avail)
		return 0;
	if (r < 25) {
		len = 1 + rng_below(&f->rng, min_u64(avail, 64));
	} else if (r < 45) {
		unit = r < 35 ? MiB : 64 * KiB;
		end = (off / unit + 1 + rng_below(&f->rng, 2)) * unit +
		      rng_below(&f->rng, 2 * JITTER + 1);
		end = end > JITTER ? end - JITTER : end;
		len = end > off ? end - off : 1;
	} else {
		len = 1 + rng_below(&f->rng, avail);
	}
	return len > avail ? avail : len;
}

static void on_sigbus(int sig)
{
	if (in_map)
		siglongjmp(bus_jmp, 1);
	signal(sig, SIG_DFL);
	raise(sig);
}

static int map_read(struct fsx *f, uint64_t off, uint64_t len)
{
	uint64_t pg = off & ~(uint64_t)(f->pagesize - 1);
	size_t maplen = (size_t)(off + len - pg);
	unsigned char *p;

	p = mmap(NULL, maplen, PROT_READ, MAP_SHARED, f->tfd, (off_t)pg);
	if (p == MAP_FAILED) {
		fail(f, "mmap %s at %" PRIu64 " for read: %s", f->test_path,
		     pg, strerror(errno));
		return -1;
	}
	if (sigsetjmp(bus_jmp, 1)) {
		in_map = 0;
		munmap(p, maplen);
		fail(f, "SIGBUS reading the mapping of [%" PRIu64 ", %" PRIu64
		     ")", off, off + len);
		return -1;
	}
	in_map = 1;
	memcpy(f->tbuf, p + (off - pg), (size_t)len);
	in_map = 0;
	munmap(p, maplen);
	return 0;
}

static int map_write(struct fsx *f, uint64_t off, uint64_t len)
{
	uint64_t pg = off & ~(uint64_t)(f->pagesize - 1);
	size_t maplen = (size_t)(off + len - pg);
	unsigned char *p;

	p = mmap(NULL, maplen, PROT_READ | PROT_WRITE, MAP_SHARED, f->tfd,
		 (off_t)pg);
	if (p == MAP_FAILED) {
		fail(f, "mmap %s at %" PRIu64 " for write: %s", f->test_path,
		     pg, strerror(errno));
		return -1;
	}
	if (sigsetjmp(bus_jmp, 1)) {
		in_map = 0;
		munmap(p, maplen);
		fail(f, "SIGBUS writing the mapping of [%" PRIu64 ", %" PRIu64
		     ")", off, off + len);
		return -1;
	}
	in_map = 1;
	memcpy(p + (off - pg), f->data, (size_t)len);
	in_map = 0;
	if (msync(p, maplen, MS_SYNC) < 0) {
		fail(f, "msync %s: %s", f->test_path, strerror(errno));
		munmap(p, maplen);
		return -1;
	}
	if (munmap(p, maplen) < 0) {
		fail(f, "munmap %s: %s", f->test_path, strerror(errno));
		return -1;
	}
	return 0;
}

static int truncate_both(struct fsx *f, uint64_t size)
{
	if (ftruncate(f->tfd, (off_t)size) < 0) {
		fail(f, "ftruncate %s to %" PRIu64 ": %s", f->test_path, size,
		     strerror(errno));
		return -1;
	}
	if (ftruncate(f->rfd, (off_t)size) < 0) {
		fail(f, "ftruncate %s to %" PRIu64 ": %s", f->ref_path, size,
		     strerror(errno));
		return -1;
	}
	return 0;
}

static int read_and_compare(struct fsx *f, const char *what, uint64_t off,
			    uint64_t len)
{
	ssize_t nt, nr;

	nt = pread_full(f->tfd, f->tbuf, (size_t)len, off);
	if (nt < 0) {
		fail(f, "pread %s at %" PRIu64 ": %s", f->test_path, off,
		     strerror(errno));
		return -1;
	}
	nr = pread_full(f->rfd, f->rbuf, (size_t)len, off);
	if (nr < 0) {
		fail(f, "pread %s at %" PRIu64 ": %s", f->ref_path, off,
		     strerror(errno));
		return -1;
	}
	if (nt != nr) {
		fail(f, "%s of %" PRIu64 " bytes at %" PRIu64 " gave %zd bytes, "
		     "the reference %zd", what, len, off, nt, nr);
		return -1;
	}
	return compare(f, what, off, f->tbuf, f->rbuf, (size_t)nt);
}

static int op_read(struct fsx *f, struct logent *e)
{
	uint64_t limit = f->maxlen;

	if (f->size && rng_below(&f->rng, 100) < 80)
		limit = f->size;
	e->off = pick_off(f, limit);
	e->len = pick_len(f, e->off, f->maxlen - e->off);
	return read_and_compare(f, "pread", e->off, e->len);
}

static int op_write(struct fsx *f, struct logent *e)
{
	e->off = pick_off(f, f->maxlen);
	e->len = pick_len(f, e->off, f->maxlen - e->off);
	fill_random(rng_next(&f->rng), f->data, (size_t)e->len);
	if (pwrite_full(f->tfd, f->data, (size_t)e->len, e->off) < 0) {
		fail(f, "pwrite %s at %" PRIu64 ": %s", f->test_path, e->off,
		     strerror(errno));
		return -1;
	}
	if (pwrite_full(f->rfd, f->data, (size_t)e->len, e->off) < 0) {
		fail(f, "pwrite %s at %" PRIu64 ": %s", f->ref_path, e->off,
		     strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * Writes anywhere keep the file near maxlen, so truncation leans down:
 * some to a small size, about half below the current one, the rest
 * anywhere up to maxlen.
 */
static int op_truncate(struct fsx *f, struct logent *e)
{
	uint64_t r = rng_below(&f->rng, 100);

	if (r < 15)
		e->off = rng_below(&f->rng, min_u64(f->maxlen, 128 * KiB) + 1);
	else if (r < 60)
		e->off = pick_off(f, f->size + 1);
	else
		e->off = pick_off(f, f->maxlen + 1);
	e->note = e->off < f->size ? "down" : "up";
	return truncate_both(f, e->off);
}

static int op_mapread(struct fsx *f, struct logent *e)
{
	if (!f->size) {
		e->note = "skipped: empty file";
		return 0;
	}
	e->off = pick_off(f, f->size);
	e->len = pick_len(f, e->off, f->size - e->off);
	if (map_read(f, e->off, e->len))
		return -1;
	if (pread_full(f->rfd, f->rbuf, (size_t)e->len, e->off) !=
	    (ssize_t)e->len) {
		fail(f, "pread %s at %" PRIu64 ": short or failed", f->ref_path,
		     e->off);
		return -1;
	}
	return compare(f, "mmap read", e->off, f->tbuf, f->rbuf,
		       (size_t)e->len);
}

static int op_mapwrite(struct fsx *f, struct logent *e)
{
	e->off = pick_off(f, f->maxlen);
	e->len = pick_len(f, e->off, f->maxlen - e->off);
	fill_random(rng_next(&f->rng), f->data, (size_t)e->len);
	if (e->off + e->len > f->size) {
		e->note = "extended first";
		if (truncate_both(f, e->off + e->len))
			return -1;
	}
	if (map_write(f, e->off, e->len))
		return -1;
	if (pwrite_full(f->rfd, f->data, (size_t)e->len, e->off) < 0) {
		fail(f, "pwrite %s at %" PRIu64 ": %s", f->ref_path, e->off,
		     strerror(errno));
		return -1;
	}
	return 0;
}

static int unsupported(int err)
{
	return err == EOPNOTSUPP || err == ENOSYS;
}

static int op_falloc(struct fsx *f, struct logent *e)
{
	e->off = pick_off(f, f->maxlen);
	e->len = pick_len(f, e->off, f->maxlen - e->off);
	if (f->no_falloc) {
		e->note = "skipped: unsupported";
		return 0;
	}
	if (fallocate(f->tfd, 0, (off_t)e->off, (off_t)e->len) < 0) {
		if (unsupported(errno)) {
			say(f, "fsx: note: fallocate mode 0 on %s: %s; "
			    "not issued again", f->test_path, strerror(errno));
			f->no_falloc = 1;
			e->note = "unsupported";
			return 0;
		}
		fail(f, "fallocate %s [%" PRIu64 ", +%" PRIu64 "): %s",
		     f->test_path, e->off, e->len, strerror(errno));
		return -1;
	}
	if (e->off + e->len > f->size &&
	    ftruncate(f->rfd, (off_t)(e->off + e->len)) < 0) {
		fail(f, "ftruncate %s: %s", f->ref_path, strerror(errno));
		return -1;
	}
	return 0;
}

static int op_punch(struct fsx *f, struct logent *e)
{
	uint64_t limit = f->maxlen, end;

	if (f->size && rng_below(&f->rng, 100) < 80)
		limit = f->size;
	e->off = pick_off(f, limit);
	e->len = pick_len(f, e->off, f->maxlen - e->off);
	if (f->no_punch) {
		e->note = "skipped: unsupported";
		return 0;
	}
	if (fallocate(f->tfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		      (off_t)e->off, (off_t)e->len) < 0) {
		if (unsupported(errno)) {
			say(f, "fsx: note: fallocate PUNCH_HOLE on %s: %s; "
			    "not issued again", f->test_path, strerror(errno));
			f->no_punch = 1;
			e->note = "unsupported";
			return 0;
		}
		fail(f, "punch hole %s [%" PRIu64 ", +%" PRIu64 "): %s",
		     f->test_path, e->off, e->len, strerror(errno));
		return -1;
	}
	end = min_u64(e->off + e->len, f->size);
	if (e->off < end &&
	    pwrite_full(f->rfd, f->zero, (size_t)(end - e->off), e->off) < 0) {
		fail(f, "pwrite %s: %s", f->ref_path, strerror(errno));
		return -1;
	}
	return 0;
}

static int op_sync(struct fsx *f, struct logent *e)
{
	int data_only = (int)rng_below(&f->rng, 2);

	e->note = data_only ? "fdatasync" : "fsync";
	if ((data_only ? fdatasync(f->tfd) : fsync(f->tfd)) < 0) {
		fail(f, "%s %s: %s", e->note, f->test_path, strerror(errno));
		return -1;
	}
	return 0;
}

static int reopen(struct fsx *f, int *fd, const char *path)
{
	if (*fd >= 0 && close(*fd) < 0) {
		*fd = -1;
		fail(f, "close %s: %s", path, strerror(errno));
		return -1;
	}
	*fd = open(path, O_RDWR);
	if (*fd < 0) {
		fail(f, "open %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

static int op_reopen(struct fsx *f, struct logent *e)
{
	(void)e;
	if (reopen(f, &f->tfd, f->test_path))
		return -1;
	return reopen(f, &f->rfd, f->ref_path);
}

static int rename_one(struct fsx *f, const char *from, const char *to)
{
	if (rename(from, to) < 0) {
		fail(f, "rename %s to %s: %s", from, to, strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * Renames both files away and back. Meanwhile the old name must be gone,
 * the new one must stat to the right size, and half of the time the test
 * file is reopened under the temporary name.
 */
static int op_rename(struct fsx *f, struct logent *e)
{
	int via_tmp = (int)rng_below(&f->rng, 2);
	struct stat st;

	e->note = via_tmp ? "reopened under the temporary name" : NULL;
	if (rename_one(f, f->test_path, f->test_tmp) ||
	    rename_one(f, f->ref_path, f->ref_tmp))
		return -1;
	if (stat(f->test_path, &st) == 0 || errno != ENOENT) {
		fail(f, "%s still exists after the rename to %s", f->test_path,
		     f->test_tmp);
		return -1;
	}
	if (stat(f->test_tmp, &st) < 0) {
		fail(f, "stat %s: %s", f->test_tmp, strerror(errno));
		return -1;
	}
	if ((uint64_t)st.st_size != f->size) {
		fail(f, "%s has st_size %jd after the rename, expected %" PRIu64,
		     f->test_tmp, (intmax_t)st.st_size, f->size);
		return -1;
	}
	if (via_tmp && reopen(f, &f->tfd, f->test_tmp))
		return -1;
	if (rename_one(f, f->test_tmp, f->test_path) ||
	    rename_one(f, f->ref_tmp, f->ref_path))
		return -1;
	return 0;
}

static int (*const op_fn[OP_NR])(struct fsx *, struct logent *) = {
	op_read, op_write, op_truncate, op_mapread, op_mapwrite,
	op_falloc, op_punch, op_sync, op_reopen, op_rename,
};

static enum op pick_op(struct fsx *f)
{
	uint64_t r = rng_below(&f->rng, 100), acc = 0;
	int i;

	for (i = 0; i < OP_NR; i++) {
		acc += op_weight[i];
		if (r < acc)
			break;
	}
	if (i == OP_NR)
		i = OP_READ;
	if (f->no_mmap && i == OP_MAPREAD)
		i = OP_READ;
	if (f->no_mmap && i == OP_MAPWRITE)
		i = OP_WRITE;
	return (enum op)i;
}

static int do_op(struct fsx *f)
{
	struct logent *e = &f->log[f->nlogged % LOG_LEN];
	enum op op = pick_op(f);

	memset(e, 0, sizeof(*e));
	e->opnum = f->opnum;
	e->op = op;
	e->size_before = e->size_after = f->size;
	f->nlogged++;
	f->count[op]++;
	if (op_fn[op](f, e))
		return -1;
	if (check_sizes(f))
		return -1;
	e->size_after = f->size;
	return 0;
}

static void dump_log(const struct fsx *f)
{
	uint64_t i = f->nlogged > LOG_LEN ? f->nlogged - LOG_LEN : 0;
	const struct logent *e;

	printf("# fsx: the last %" PRIu64 " ops:\n", f->nlogged - i);
	for (; i < f->nlogged; i++) {
		e = &f->log[i % LOG_LEN];
		printf("#   %8" PRIu64 " %-8s off 0x%07" PRIx64 " len 0x%06"
		       PRIx64 " size 0x%07" PRIx64 " -> 0x%07" PRIx64 "%s%s\n",
		       e->opnum, op_name[e->op], e->off, e->len,
		       e->size_before, e->size_after, e->note ? "  " : "",
		       e->note ? e->note : "");
	}
}

static int parse_size(const char *s, uint64_t *out)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s || *s == '-')
		return -1;
	switch (*end) {
	case 'k': case 'K':
		v <<= 10, end++;
		break;
	case 'm': case 'M':
		v <<= 20, end++;
		break;
	case 'g': case 'G':
		v <<= 30, end++;
		break;
	}
	if (*end)
		return -1;
	*out = v;
	return 0;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: fsx [-N ops] [-S seed] [-l maxlen] [-o maxop] "
		"[-c every] [-M] [-q] TESTFILE REFFILE\n");
}

static char *tmp_name(const char *path)
{
	size_t n = strlen(path) + sizeof(".fsxtmp");
	char *s = malloc(n);

	if (s)
		snprintf(s, n, "%s.fsxtmp", path);
	return s;
}

static int setup(struct fsx *f)
{
	size_t bufsz = (size_t)(f->maxop > CMP_CHUNK ? f->maxop : CMP_CHUNK);
	struct sigaction sa;

	f->pagesize = sysconf(_SC_PAGESIZE);
	f->test_tmp = tmp_name(f->test_path);
	f->ref_tmp = tmp_name(f->ref_path);
	f->data = malloc(bufsz);
	f->tbuf = malloc(bufsz);
	f->rbuf = malloc(bufsz);
	f->zero = calloc(1, bufsz);
	if (!f->test_tmp || !f->ref_tmp || !f->data || !f->tbuf || !f->rbuf ||
	    !f->zero || f->pagesize <= 0) {
		printf("# fsx: out of memory\n");
		return -1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigbus;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);

	f->tfd = open(f->test_path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (f->tfd < 0) {
		printf("# fsx: cannot create %s: %s\n", f->test_path,
		       strerror(errno));
		return -1;
	}
	f->rfd = open(f->ref_path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (f->rfd < 0) {
		printf("# fsx: cannot create %s: %s\n", f->ref_path,
		       strerror(errno));
		return -1;
	}
	return 0;
}

static void teardown(struct fsx *f)
{
	if (f->tfd >= 0)
		close(f->tfd);
	if (f->rfd >= 0)
		close(f->rfd);
	free(f->test_tmp);
	free(f->ref_tmp);
	free(f->data);
	free(f->tbuf);
	free(f->rbuf);
	free(f->zero);
}

static uint64_t clock_seed(void)
{
	struct timespec ts;
	uint64_t x;

	clock_gettime(CLOCK_REALTIME, &ts);
	x = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	x ^= (uint64_t)getpid() << 40;
	return splitmix64(&x) >> 1;
}

int main(int argc, char **argv)
{
	struct fsx f = { .tfd = -1, .rfd = -1, .nops = 10000,
			 .check_every = 1000, .maxlen = 4 * MiB,
			 .maxop = 256 * KiB };
	uint64_t progress;
	int c, have_seed = 0, rc = 1, i;

	while ((c = getopt(argc, argv, "N:S:l:o:c:Mqh")) != -1) {
		switch (c) {
		case 'N':
			if (parse_size(optarg, &f.nops))
				goto bad;
			break;
		case 'S':
			if (parse_size(optarg, &f.seed))
				goto bad;
			have_seed = 1;
			break;
		case 'l':
			if (parse_size(optarg, &f.maxlen) || !f.maxlen ||
			    f.maxlen > (UINT64_C(1) << 40))
				goto bad;
			break;
		case 'o':
			if (parse_size(optarg, &f.maxop) || !f.maxop ||
			    f.maxop > 256 * MiB)
				goto bad;
			break;
		case 'c':
			if (parse_size(optarg, &f.check_every))
				goto bad;
			break;
		case 'M':
			f.no_mmap = 1;
			break;
		case 'q':
			f.quiet = 1;
			break;
		case 'h':
			usage();
			return 0;
		default:
			goto bad;
		}
	}
	if (argc - optind != 2)
		goto bad;
	f.test_path = argv[optind];
	f.ref_path = argv[optind + 1];
	if (!have_seed)
		f.seed = clock_seed();
	rng_seed(&f.rng, f.seed);

	printf("# fsx seed=%" PRIu64 "\n", f.seed);
	fflush(stdout);
	say(&f, "fsx: %s (reference %s), %" PRIu64 " ops, maxlen %" PRIu64
	    ", maxop %" PRIu64 ", full compare every %" PRIu64 "%s",
	    f.test_path, f.ref_path, f.nops, f.maxlen, f.maxop,
	    f.check_every, f.no_mmap ? ", no mmap" : "");
	if (setup(&f))
		goto out;

	progress = f.nops >= 100000 ? f.nops / 10 : 10000;
	for (f.opnum = 1; f.opnum <= f.nops; f.opnum++) {
		if (do_op(&f))
			goto failed;
		if (f.check_every && f.opnum % f.check_every == 0 &&
		    full_compare(&f))
			goto failed;
		if (f.opnum % progress == 0)
			say(&f, "fsx: %" PRIu64 " ops, size %" PRIu64,
			    f.opnum, f.size);
	}
	f.opnum = f.nops;
	if (full_compare(&f))
		goto failed;
	for (i = 0; i < OP_NR; i++)
		say(&f, "fsx:   %-8s %" PRIu64 "%s", op_name[i], f.count[i],
		    (i == OP_FALLOC && f.no_falloc) ||
		    (i == OP_PUNCH && f.no_punch) ? " (unsupported)" : "");
	printf("# fsx: %" PRIu64 " ops, seed %" PRIu64 ", 0 mismatches\n",
	       f.nops, f.seed);
	rc = 0;
	goto out;

failed:
	dump_log(&f);
	printf("# fsx: FAILED at op %" PRIu64 " of %" PRIu64 ", seed %" PRIu64
	       " (replay: fsx -S %" PRIu64 " -N %" PRIu64 " -l %" PRIu64
	       " -o %" PRIu64 " -c %" PRIu64 "%s TESTFILE REFFILE)\n",
	       f.opnum, f.nops, f.seed, f.seed, f.opnum, f.maxlen, f.maxop,
	       f.check_every, f.no_mmap ? " -M" : "");
out:
	fflush(stdout);
	teardown(&f);
	return rc;
bad:
	usage();
	return 2;
}
