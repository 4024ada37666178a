/*
 * posix_check - a POSIX conformance checker for lakefs, errno by errno.
 *
 * Run as "posix_check DIR", DIR being an empty scratch directory on the
 * filesystem under test. Every check compares one result (a return value,
 * a byte range, a stat field or an errno) with what Linux gives on ext4
 * and tmpfs: Linux is the reference, so where POSIX leaves a choice the
 * check follows Linux (ftruncate on a read-only fd is EINVAL, pwrite on an
 * O_APPEND fd appends, chown clears the setuid bit even for root). Output
 * is TAP with the plan at the end; the exit status is 0 only if every
 * check passed.
 *
 * The run works in DIR/posix_check.PID. Each group creates a subdirectory,
 * chdirs into it, and removes it afterwards (the removal is a check too);
 * a failed check never stops the run. Checks that need root (chown, and
 * permission bits as seen by uid 65534) are reported as skipped without
 * it. Forked helpers report back through a pipe or shared memory and carry
 * their own alarm; the whole run is bounded by alarm(120), after which it
 * prints "Bail out!".
 *
 * Deliberately not tested: SEEK_DATA/SEEK_HOLE, O_DIRECT, locks, atime
 * updates on read (relatime makes them mount-dependent), and speed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE	(1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE		(1 << 1)
#endif

#define PRINTF(f, a)	__attribute__((format(printf, f, a)))

#define BUF_SIZE	(2u << 20)	/* scratch I/O buffers */
#define MODEL_SIZE	(2u << 20)	/* expected file contents */
#define RW_SPAN		(1u << 20)	/* span of the random pwrites */
#define RACE_BLK	16384		/* size of each version in the race */
#define RACE_ROUNDS	200		/* renames over the target */
#define NDIRENT		3000		/* entries in the readdir group */
#define NOBODY		65534		/* uid/gid of the unprivileged child */
#define OLD_SEC		1000000000	/* an old timestamp, 2001-09-09 */

static unsigned char iobuf[BUF_SIZE + 4096];
static unsigned char iobuf2[BUF_SIZE + 4096];
static unsigned char model[MODEL_SIZE];

static int t_num;		/* checks reported so far */
static int t_failed;		/* of which failed */
static long ce_r;		/* result and errno captured by the macros */
static int ce_e;
static int is_root;
static int work_fd = -1;	/* the run's directory, for leave() */
static int rm_failed;

/* ---- TAP --------------------------------------------------------------- */

static const char *errname(int e)
{
	static const struct { int e; const char *name; } tab[] = {
#define E(x) { x, #x }
		E(EPERM), E(ENOENT), E(EIO), E(ENXIO), E(E2BIG), E(EBADF),
		E(EAGAIN), E(ENOMEM), E(EACCES), E(EFAULT), E(EBUSY),
		E(EEXIST), E(EXDEV), E(ENOTDIR), E(EISDIR), E(EINVAL),
		E(EFBIG), E(ENOSPC), E(EROFS), E(EMLINK), E(ERANGE),
		E(ENAMETOOLONG), E(ENOSYS), E(ENOTEMPTY), E(ELOOP),
		E(ENODATA), E(EOVERFLOW), E(EOPNOTSUPP), E(ENOTCONN),
		E(ESTALE), E(ETXTBSY),
#undef E
	};
	static char other[32];
	size_t i;

	for (i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
		if (tab[i].e == e)
			return tab[i].name;
	snprintf(other, sizeof(other), "errno %d", e);
	return other;
}

PRINTF(3, 0)
static int t_vreport(int pass, const char *diag, const char *fmt, va_list ap)
{
	t_num++;
	printf("%s %d - ", pass ? "ok" : "not ok", t_num);
	vprintf(fmt, ap);
	putchar('\n');
	if (!pass) {
		t_failed++;
		if (diag && *diag)
			printf("# %s\n", diag);
	}
	fflush(stdout);
	return pass;
}

PRINTF(3, 4)
static int t_report(int pass, const char *diag, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = t_vreport(pass, diag, fmt, ap);
	va_end(ap);
	return r;
}

PRINTF(2, 3)
static void t_skip(const char *reason, const char *fmt, ...)
{
	va_list ap;

	t_num++;
	printf("ok %d - ", t_num);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf(" # SKIP %s\n", reason);
	fflush(stdout);
}

PRINTF(3, 4)
static int t_check(int pass, const char *expr, const char *fmt, ...)
{
	char diag[512];
	va_list ap;
	int r;

	snprintf(diag, sizeof(diag), "got false, want true: %s", expr);
	va_start(ap, fmt);
	r = t_vreport(pass, diag, fmt, ap);
	va_end(ap);
	return r;
}

enum { OP_EQ, OP_NE, OP_GT, OP_GE, OP_LE };

PRINTF(4, 5)
static int t_cmp(long long got, int op, long long want, const char *fmt, ...)
{
	static const char *opname[] = { "", "!= ", "> ", ">= ", "<= " };
	char diag[256];
	va_list ap;
	int pass, r;

	switch (op) {
	case OP_EQ: pass = got == want; break;
	case OP_NE: pass = got != want; break;
	case OP_GT: pass = got > want; break;
	case OP_GE: pass = got >= want; break;
	default:    pass = got <= want; break;
	}
	snprintf(diag, sizeof(diag), "got %lld, want %s%lld", got, opname[op],
		 want);
	va_start(ap, fmt);
	r = t_vreport(pass, diag, fmt, ap);
	va_end(ap);
	return r;
}

PRINTF(3, 4)
static int t_okcall(long r, int e, const char *fmt, ...)
{
	char diag[256];
	va_list ap;
	int pass = r != -1;

	snprintf(diag, sizeof(diag), "got -1 %s (%s), want success",
		 errname(e), strerror(e));
	va_start(ap, fmt);
	t_vreport(pass, diag, fmt, ap);
	va_end(ap);
	return pass;
}

PRINTF(5, 6)
static int t_errno(long r, int e, int want, const char *wname,
		   const char *fmt, ...)
{
	char diag[256];
	va_list ap;
	int pass = r == -1 && e == want;

	if (r != -1)
		snprintf(diag, sizeof(diag), "got %ld (success), want -1 %s",
			 r, wname);
	else
		snprintf(diag, sizeof(diag), "got -1 %s (%s), want -1 %s",
			 errname(e), strerror(e), wname);
	va_start(ap, fmt);
	t_vreport(pass, diag, fmt, ap);
	va_end(ap);
	return pass;
}

PRINTF(4, 5)
static int t_io(long r, int e, long want, const char *fmt, ...)
{
	char diag[256];
	va_list ap;
	int pass = r == want;

	if (r == -1)
		snprintf(diag, sizeof(diag), "got -1 %s (%s), want %ld",
			 errname(e), strerror(e), want);
	else
		snprintf(diag, sizeof(diag), "got %ld, want %ld", r, want);
	va_start(ap, fmt);
	t_vreport(pass, diag, fmt, ap);
	va_end(ap);
	return pass;
}

PRINTF(5, 6)
static int t_mem(const void *got, size_t glen, const void *want, size_t wlen,
		 const char *fmt, ...)
{
	const unsigned char *g = got, *w = want;
	char diag[256] = "";
	va_list ap;
	size_t i, n = glen < wlen ? glen : wlen;
	int pass = 1, r;

	for (i = 0; i < n; i++)
		if (g[i] != w[i])
			break;
	if (i < n) {
		pass = 0;
		snprintf(diag, sizeof(diag),
			 "got 0x%02x at offset %zu, want 0x%02x", g[i], i, w[i]);
	} else if (glen != wlen) {
		pass = 0;
		snprintf(diag, sizeof(diag), "got %zu bytes, want %zu",
			 glen, wlen);
	}
	va_start(ap, fmt);
	r = t_vreport(pass, diag, fmt, ap);
	va_end(ap);
	return r;
}

PRINTF(3, 4)
static int t_zero(const void *p, size_t len, const char *fmt, ...)
{
	const unsigned char *b = p;
	char diag[128] = "";
	va_list ap;
	size_t i;
	int r;

	for (i = 0; i < len; i++)
		if (b[i])
			break;
	if (i < len)
		snprintf(diag, sizeof(diag), "got 0x%02x at offset %zu, want 0",
			 b[i], i);
	va_start(ap, fmt);
	r = t_vreport(i == len, diag, fmt, ap);
	va_end(ap);
	return r;
}

#define CHECK(cond, ...)	t_check(!!(cond), #cond, __VA_ARGS__)
#define CHECK_EQ(g, w, ...)	t_cmp((long long)(g), OP_EQ, (long long)(w), __VA_ARGS__)
#define CHECK_NE(g, w, ...)	t_cmp((long long)(g), OP_NE, (long long)(w), __VA_ARGS__)
#define CHECK_GT(g, w, ...)	t_cmp((long long)(g), OP_GT, (long long)(w), __VA_ARGS__)
#define CHECK_GE(g, w, ...)	t_cmp((long long)(g), OP_GE, (long long)(w), __VA_ARGS__)
#define CHECK_LE(g, w, ...)	t_cmp((long long)(g), OP_LE, (long long)(w), __VA_ARGS__)
#define CHECK_MEM(g, gl, w, wl, ...) t_mem((g), (gl), (w), (wl), __VA_ARGS__)
#define CHECK_ZERO(p, len, ...)	t_zero((p), (len), __VA_ARGS__)

/* The comma operator orders the call before errno is read. */
#define CHECK_OK(expr, ...) \
	(errno = 0, ce_r = (long)(expr), ce_e = errno, \
	 t_okcall(ce_r, ce_e, __VA_ARGS__))
#define CHECK_ERRNO(expr, err, ...) \
	(errno = 0, ce_r = (long)(expr), ce_e = errno, \
	 t_errno(ce_r, ce_e, (err), #err, __VA_ARGS__))
#define CHECK_IO(expr, want, ...) \
	(errno = 0, ce_r = (long)(expr), ce_e = errno, \
	 t_io(ce_r, ce_e, (long)(want), __VA_ARGS__))

/* ---- helpers ----------------------------------------------------------- */

static void xclose(int fd)
{
	if (fd >= 0)
		close(fd);
}

static int write_all(int fd, const void *p, size_t len)
{
	const char *c = p;

	while (len) {
		ssize_t n = write(fd, c, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		c += n;
		len -= (size_t)n;
	}
	return 0;
}

static ssize_t read_all(int fd, void *p, size_t cap)
{
	char *c = p;
	size_t got = 0;

	while (got < cap) {
		ssize_t n = read(fd, c + got, cap - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/* Create or truncate path with len bytes of p; 0 or -1 with errno. */
static int put_file(const char *path, const void *p, size_t len)
{
	int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
	int e;

	if (fd < 0)
		return -1;
	if (write_all(fd, p, len)) {
		e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return close(fd);
}

static int put_str(const char *path, const char *s)
{
	return put_file(path, s, strlen(s));
}

static ssize_t get_file(const char *path, void *p, size_t cap)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;
	int e;

	if (fd < 0)
		return -1;
	n = read_all(fd, p, cap);
	e = errno;
	close(fd);
	errno = e;
	return n;
}

/* Check that path holds exactly len bytes equal to want. */
PRINTF(4, 5)
static int t_content(const char *path, const void *want, size_t len,
		     const char *fmt, ...)
{
	char desc[256], diag[256];
	va_list ap;
	ssize_t n;

	va_start(ap, fmt);
	vsnprintf(desc, sizeof(desc), fmt, ap);
	va_end(ap);
	if (len >= BUF_SIZE)
		return t_report(0, "test bug: file too big", "%s", desc);
	n = get_file(path, iobuf2, len + 1);
	if (n < 0) {
		snprintf(diag, sizeof(diag), "got -1 %s reading %s, want %zu bytes",
			 errname(errno), path, len);
		return t_report(0, diag, "%s", desc);
	}
	return t_mem(iobuf2, (size_t)n, want, len, "%s", desc);
}

#define CHECK_CONTENT(path, w, len, ...) t_content((path), (w), (len), __VA_ARGS__)
#define CHECK_STR(path, s, ...) t_content((path), (s), strlen(s), __VA_ARGS__)

static int xstat(const char *path, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	return stat(path, st);
}

static int xlstat(const char *path, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	return lstat(path, st);
}

static int xfstat(int fd, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	return fstat(fd, st);
}

static long long ino_of(const char *path)
{
	struct stat st;

	return xlstat(path, &st) ? -1 : (long long)st.st_ino;
}

static long long ns_of(const struct timespec *ts)
{
	return (long long)ts->tv_sec * 1000000000LL + ts->tv_nsec;
}

static long long now_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return ns_of(&ts);
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* Let the clock move on so that a changed timestamp is a larger one. */
static void tick(void)
{
	sleep_ms(20);
}

static int set_old_times(const char *path)
{
	struct timespec tv[2] = { { OLD_SEC, 0 }, { OLD_SEC, 0 } };

	return utimensat(AT_FDCWD, path, tv, 0);
}

static int xrenameat2(const char *from, const char *to, unsigned int flags)
{
	return (int)syscall(SYS_renameat2, AT_FDCWD, from, AT_FDCWD, to, flags);
}

static void fill_pattern(unsigned char *p, size_t len, unsigned int seed)
{
	uint32_t x = seed * 2654435761u + 1;
	size_t i;

	for (i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (unsigned char)(x | 1);	/* never zero */
	}
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	uint64_t x = rng_state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	rng_state = x;
	return x;
}

static void make_name(char *dst, int c, size_t len)
{
	memset(dst, c, len);
	dst[len] = '\0';
}

static int rm_cb(const char *path, const struct stat *st, int flag,
		 struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	if (remove(path))
		rm_failed = 1;
	return 0;
}

static int rm_rf(const char *path)
{
	rm_failed = 0;
	if (nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS))
		return -1;
	return rm_failed ? -1 : 0;
}

static int enter(const char *name)
{
	printf("# %s\n", name);
	if (mkdir(name, 0755) || chmod(name, 0755) || chdir(name)) {
		t_report(0, strerror(errno), "create group directory %s", name);
		return 0;
	}
	return 1;
}

static void leave(const char *name)
{
	if (fchdir(work_fd)) {
		printf("Bail out! cannot return to the scratch directory: %s\n",
		       strerror(errno));
		exit(1);
	}
	CHECK_OK(rm_rf(name), "%s: remove the group's scratch tree", name);
}

/* Names of the user.* attributes in a listxattr buffer, as one string. */
static void user_xattrs(const char *list, ssize_t len, char *out, size_t cap)
{
	ssize_t i = 0;

	out[0] = '\0';
	while (i < len) {
		const char *n = list + i;

		if (!strncmp(n, "user.", 5)) {
			if (out[0])
				strncat(out, ",", cap - strlen(out) - 1);
			strncat(out, n, cap - strlen(out) - 1);
		}
		i += (ssize_t)strlen(n) + 1;
	}
}

/* ---- create/open ------------------------------------------------------- */

static void group_open(void)
{
	struct stat st;
	char c;
	int fd;

	if (!enter("open"))
		return;
	CHECK_OK(fd = open("f", O_CREAT | O_EXCL | O_WRONLY, 0640),
		 "open O_CREAT|O_EXCL creates a new file");
	xclose(fd);
	CHECK_OK(xstat("f", &st), "stat a new file");
	CHECK(S_ISREG(st.st_mode), "a new file is S_IFREG");
	CHECK_EQ(st.st_mode & 07777, 0640, "a new file has the mode asked for");
	CHECK_EQ(st.st_size, 0, "a new file is empty");
	CHECK_EQ(st.st_nlink, 1, "a new file has one link");
	CHECK_EQ(st.st_uid, geteuid(), "a new file is owned by the caller");
	CHECK_GT(st.st_blksize, 0, "st_blksize is positive");
	CHECK_ERRNO(open("f", O_CREAT | O_EXCL | O_WRONLY, 0644), EEXIST,
		    "open O_CREAT|O_EXCL on an existing file gives EEXIST");
	CHECK_ERRNO(open("missing", O_RDONLY), ENOENT,
		    "open of a missing file gives ENOENT");
	CHECK_ERRNO(open("nodir/x", O_RDONLY), ENOENT,
		    "open under a missing directory gives ENOENT");
	CHECK_ERRNO(open("nodir/x", O_CREAT | O_WRONLY, 0644), ENOENT,
		    "open O_CREAT under a missing directory gives ENOENT");
	CHECK_OK(mkdir("d", 0777), "mkdir d");
	CHECK_ERRNO(open("d", O_WRONLY), EISDIR,
		    "open a directory O_WRONLY gives EISDIR");
	CHECK_ERRNO(open("d", O_RDWR), EISDIR,
		    "open a directory O_RDWR gives EISDIR");
	CHECK_ERRNO(open("d", O_CREAT | O_WRONLY, 0644), EISDIR,
		    "open O_CREAT of an existing directory gives EISDIR");
	CHECK_OK(fd = open("d", O_RDONLY), "open a directory O_RDONLY works");
	xclose(fd);
	CHECK_OK(fd = open("d", O_RDONLY | O_DIRECTORY),
		 "open a directory O_DIRECTORY works");
	xclose(fd);
	CHECK_ERRNO(open("f", O_RDONLY | O_DIRECTORY), ENOTDIR,
		    "open a file O_DIRECTORY gives ENOTDIR");
	CHECK_ERRNO(open("f/x", O_RDONLY), ENOTDIR,
		    "open of a path through a file gives ENOTDIR");
	CHECK_ERRNO(open("f/x", O_CREAT | O_WRONLY, 0644), ENOTDIR,
		    "open O_CREAT of a path through a file gives ENOTDIR");
	CHECK_ERRNO(mkdir("f/x", 0755), ENOTDIR,
		    "mkdir of a path through a file gives ENOTDIR");
	CHECK_ERRNO(xstat("f/x", &st), ENOTDIR,
		    "stat of a path through a file gives ENOTDIR");
	CHECK_ERRNO(open("f/", O_RDONLY), ENOTDIR,
		    "open of a file with a trailing slash gives ENOTDIR");

	CHECK_OK(put_str("t", "some content here"), "write a file to truncate");
	CHECK_OK(fd = open("t", O_CREAT | O_WRONLY, 0644),
		 "open O_CREAT without O_EXCL opens an existing file");
	xclose(fd);
	CHECK_STR("t", "some content here",
		  "open O_CREAT without O_TRUNC keeps the content");
	CHECK_OK(fd = open("t", O_WRONLY | O_TRUNC), "open O_TRUNC");
	CHECK_OK(xfstat(fd, &st), "fstat after O_TRUNC");
	CHECK_EQ(st.st_size, 0, "open O_TRUNC truncates to 0 (fstat)");
	xclose(fd);
	CHECK_OK(xstat("t", &st), "stat after O_TRUNC");
	CHECK_EQ(st.st_size, 0, "open O_TRUNC truncates to 0 (stat)");

	CHECK_OK(fd = open("f", O_RDONLY), "open O_RDONLY");
	CHECK_ERRNO(write(fd, "x", 1), EBADF,
		    "write on an O_RDONLY fd gives EBADF");
	CHECK_IO(read(fd, &c, 1), 0, "read of an empty file returns 0");
	xclose(fd);
	CHECK_OK(fd = open("f", O_WRONLY), "open O_WRONLY");
	CHECK_ERRNO(read(fd, &c, 1), EBADF,
		    "read on an O_WRONLY fd gives EBADF");
	xclose(fd);
	leave("open");
}

/* ---- name length ------------------------------------------------------- */

static void group_names(void)
{
	char n255[256], n256[257], path[300], *deep;
	struct dirent *de;
	struct stat st;
	size_t i;
	DIR *d;
	int fd, found = 0;

	if (!enter("names"))
		return;
	make_name(n256, 'z', 256);
	make_name(n255, 'a', 255);
	CHECK_OK(fd = open(n255, O_CREAT | O_WRONLY, 0644),
		 "open O_CREAT of a 255-byte name works");
	xclose(fd);
	CHECK_OK(xstat(n255, &st), "stat of a 255-byte name works");
	CHECK_ERRNO(open(n256, O_CREAT | O_WRONLY, 0644), ENAMETOOLONG,
		    "open O_CREAT of a 256-byte name gives ENAMETOOLONG");
	CHECK_ERRNO(xstat(n256, &st), ENAMETOOLONG,
		    "stat of a 256-byte name gives ENAMETOOLONG");
	d = opendir(".");
	while (d && (de = readdir(d)))
		if (!strcmp(de->d_name, n255))
			found++;
	if (d)
		closedir(d);
	CHECK_EQ(found, 1, "readdir lists the 255-byte name once");

	make_name(n255, 'b', 255);
	CHECK_OK(mkdir(n255, 0755), "mkdir of a 255-byte name works");
	CHECK_ERRNO(mkdir(n256, 0755), ENAMETOOLONG,
		    "mkdir of a 256-byte name gives ENAMETOOLONG");
	snprintf(path, sizeof(path), "%s/f", n255);
	CHECK_OK(put_str(path, "x"), "create a file inside a 255-byte directory");

	make_name(n255, 'c', 255);
	CHECK_OK(put_str("r", "rename me"), "write a file to rename");
	CHECK_OK(rename("r", n255), "rename to a 255-byte name works");
	CHECK_STR(n255, "rename me", "the renamed 255-byte name has the content");
	CHECK_ERRNO(rename(n255, n256), ENAMETOOLONG,
		    "rename to a 256-byte name gives ENAMETOOLONG");
	CHECK_OK(xstat(n255, &st), "the source survives a failed rename");

	make_name(n255, 'd', 255);
	CHECK_OK(symlink("target", n255), "symlink with a 255-byte name works");
	CHECK_ERRNO(symlink("target", n256), ENAMETOOLONG,
		    "symlink with a 256-byte name gives ENAMETOOLONG");

	make_name(n255, 'e', 255);
	CHECK_OK(put_str("l", "linked"), "write a file to link");
	CHECK_OK(link("l", n255), "link to a 255-byte name works");
	CHECK_ERRNO(link("l", n256), ENAMETOOLONG,
		    "link to a 256-byte name gives ENAMETOOLONG");

	snprintf(path, sizeof(path), "%s/x", n256);
	CHECK_ERRNO(open(path, O_RDONLY), ENAMETOOLONG,
		    "a 256-byte directory component gives ENAMETOOLONG");
	deep = malloc(PATH_MAX + 64);
	if (deep) {
		for (i = 0; i < PATH_MAX + 62; i += 2)
			memcpy(deep + i, "x/", 2);
		deep[PATH_MAX + 62] = '\0';
		CHECK_ERRNO(open(deep, O_RDONLY), ENAMETOOLONG,
			    "a path longer than PATH_MAX gives ENAMETOOLONG");
		free(deep);
	}
	leave("names");
}

/* ---- read/write -------------------------------------------------------- */

static void group_rw(void)
{
	size_t end = 0, i, off, len;
	int fd, fd2, bad = 0;
	struct stat st;
	ssize_t n;
	char c;

	if (!enter("rw"))
		return;

	/* random pwrites against an in-memory model */
	memset(model, 0, MODEL_SIZE);
	CHECK_OK(fd = open("r", O_CREAT | O_RDWR | O_TRUNC, 0644),
		 "create a file for random I/O");
	for (i = 0; i < 300 && fd >= 0; i++) {
		off = rnd() % (RW_SPAN - 16384);
		len = 1 + rnd() % 16384;
		fill_pattern(iobuf, len, (unsigned int)i + 1);
		if (pwrite(fd, iobuf, len, (off_t)off) != (ssize_t)len)
			bad++;
		memcpy(model + off, iobuf, len);
		if (off + len > end)
			end = off + len;
	}
	CHECK_EQ(bad, 0, "300 random-offset pwrites all complete");
	CHECK_OK(xfstat(fd, &st), "fstat after random pwrites");
	CHECK_EQ(st.st_size, end, "size after random pwrites is the last end");
	n = pread(fd, iobuf, end + 100, 0);
	CHECK_MEM(iobuf, n < 0 ? 0 : (size_t)n, model, end,
		  "pread of the whole file matches the model");
	for (i = 0, bad = 0; i < 300 && fd >= 0; i++) {
		size_t want;

		off = rnd() % (end + 100);
		len = 1 + rnd() % 20000;
		want = off >= end ? 0 : (end - off < len ? end - off : len);
		n = pread(fd, iobuf, len, (off_t)off);
		if (n != (ssize_t)want || memcmp(iobuf, model + off, want))
			bad++;
	}
	CHECK_EQ(bad, 0, "300 random-offset preads (some past EOF) match");
	xclose(fd);

	/* a hole left by a write past EOF */
	CHECK_OK(fd = open("h", O_CREAT | O_RDWR | O_TRUNC, 0644),
		 "create a file to extend");
	CHECK_IO(write(fd, "abc", 3), 3, "write 3 bytes");
	CHECK_IO(pwrite(fd, "xyz", 3, 10000), 3, "pwrite 3 bytes at 10000");
	CHECK_OK(xfstat(fd, &st), "fstat after pwrite past EOF");
	CHECK_EQ(st.st_size, 10003, "size after pwrite past EOF");
	CHECK_IO(n = pread(fd, iobuf, 20000, 0), 10003,
		 "pread of the extended file returns its size");
	CHECK_ZERO(iobuf + 3, 9997, "the gap left by a write past EOF reads zeros");
	CHECK_MEM(iobuf + 10000, 3, "xyz", 3, "the bytes past the gap are intact");
	CHECK_IO(pread(fd, iobuf, 10, 10003), 0, "pread at EOF returns 0");
	CHECK_IO(pread(fd, iobuf, 10, 20000), 0, "pread past EOF returns 0");
	CHECK_IO(pread(fd, iobuf, 100, 9998), 5, "pread across EOF is short");
	CHECK_IO(read(fd, &c, 0), 0, "read of 0 bytes returns 0");
	CHECK_IO(lseek(fd, 0, SEEK_END), 10003, "lseek SEEK_END returns the size");
	CHECK_ERRNO(lseek(fd, -1, SEEK_SET), EINVAL,
		    "lseek to a negative offset gives EINVAL");
	CHECK_ERRNO(pread(fd, iobuf, 1, -1), EINVAL,
		    "pread at a negative offset gives EINVAL");
	xclose(fd);

	/* O_APPEND */
	CHECK_OK(put_str("a", "0123"), "write a file to append to");
	CHECK_OK(fd = open("a", O_WRONLY | O_APPEND), "open O_APPEND");
	CHECK_IO(write(fd, "aaa", 3), 3, "O_APPEND write");
	CHECK_IO(lseek(fd, 0, SEEK_CUR), 7, "O_APPEND write leaves the offset at EOF");
	CHECK_IO(lseek(fd, 0, SEEK_SET), 0, "lseek an O_APPEND fd to 0");
	CHECK_IO(write(fd, "bbb", 3), 3, "O_APPEND write after lseek to 0");
	CHECK_STR("a", "0123aaabbb", "O_APPEND write after lseek still appends");
	CHECK_IO(pwrite(fd, "ccc", 3, 0), 3, "pwrite at 0 on an O_APPEND fd");
	CHECK_STR("a", "0123aaabbbccc", "pwrite on an O_APPEND fd appends (Linux)");
	CHECK_OK(fd2 = open("a", O_WRONLY | O_APPEND), "open O_APPEND twice");
	CHECK_IO(write(fd, "1", 1), 1, "O_APPEND write on the first fd");
	CHECK_IO(write(fd2, "2", 1), 1, "O_APPEND write on the second fd");
	CHECK_IO(write(fd, "3", 1), 1, "O_APPEND write on the first fd again");
	CHECK_STR("a", "0123aaabbbccc123",
		  "O_APPEND writes through two fds interleave at EOF");
	xclose(fd);
	xclose(fd2);

	/* a hole in the middle */
	CHECK_OK(fd = open("s", O_CREAT | O_RDWR | O_TRUNC, 0644),
		 "create a sparse file");
	memset(iobuf, 'A', 4096);
	CHECK_IO(pwrite(fd, iobuf, 4096, 0), 4096, "write the first block");
	memset(iobuf, 'B', 4096);
	CHECK_IO(pwrite(fd, iobuf, 4096, 1 << 20), 4096, "write a block at 1 MiB");
	CHECK_OK(xfstat(fd, &st), "fstat the sparse file");
	CHECK_EQ(st.st_size, (1 << 20) + 4096, "sparse file size");
	memset(iobuf, 0xff, (1 << 20) + 8192);
	CHECK_IO(pread(fd, iobuf, (1 << 20) + 8192, 0), (1 << 20) + 4096,
		 "pread the whole sparse file");
	memset(iobuf2, 'A', 4096);
	CHECK_MEM(iobuf, 4096, iobuf2, 4096, "sparse file: first block intact");
	CHECK_ZERO(iobuf + 4096, (1 << 20) - 4096,
		   "sparse file: the hole in the middle reads zeros");
	memset(iobuf2, 'B', 4096);
	CHECK_MEM(iobuf + (1 << 20), 4096, iobuf2, 4096,
		  "sparse file: last block intact");
	xclose(fd);

	/* one big write, read back in odd-sized pieces */
	len = (1 << 20) + 17;
	fill_pattern(model, len, 77);
	CHECK_OK(fd = open("w", O_CREAT | O_RDWR | O_TRUNC, 0644),
		 "create a file for a big write");
	CHECK_IO(write(fd, model, len), len, "one 1 MiB + 17 write is complete");
	CHECK_IO(lseek(fd, 0, SEEK_SET), 0, "lseek to 0");
	for (off = 0, bad = 0; off < len + 3333; off += 3333) {
		size_t want = off >= len ? 0 : (len - off < 3333 ? len - off : 3333);

		n = read(fd, iobuf, 3333);
		if (n != (ssize_t)want || memcmp(iobuf, model + off, want))
			bad++;
	}
	CHECK_EQ(bad, 0, "sequential 3333-byte reads return the big write");
	xclose(fd);
	leave("rw");
}

static void group_bigfile(void)
{
	const off_t five = 5LL << 30, four = 4LL << 30;
	struct stat st;
	char c = 0;
	int fd;

	if (!enter("bigfile"))
		return;
	CHECK_OK(fd = open("big", O_CREAT | O_RDWR | O_TRUNC, 0644),
		 "create a file for >4 GiB offsets");
	CHECK_IO(pwrite(fd, "Z", 1, five), 1, "pwrite 1 byte at 5 GiB");
	CHECK_OK(xfstat(fd, &st), "fstat the 5 GiB file");
	CHECK_EQ(st.st_size, five + 1, "st_size is 5 GiB + 1");
	CHECK_OK(xstat("big", &st), "stat the 5 GiB file");
	CHECK_EQ(st.st_size, five + 1, "st_size by path is 5 GiB + 1");
	CHECK_IO(pread(fd, &c, 1, five), 1, "pread the byte at 5 GiB");
	CHECK_EQ(c, 'Z', "the byte at 5 GiB reads back");
	memset(iobuf, 0xff, 65536);
	CHECK_IO(pread(fd, iobuf, 65536, four - 32768), 65536,
		 "pread 64 KiB across 4 GiB");
	CHECK_ZERO(iobuf, 65536, "the hole across 4 GiB reads zeros");
	memset(iobuf, 0xff, 4096);
	CHECK_IO(pread(fd, iobuf, 8192, five - 4095), 4096,
		 "pread of the last 4 KiB is short at EOF");
	CHECK_ZERO(iobuf, 4095, "the hole just before 5 GiB reads zeros");
	CHECK_EQ(iobuf[4095], 'Z', "the last byte follows the hole");
	CHECK_IO(pread(fd, &c, 1, five + 1), 0, "pread at 5 GiB + 1 is EOF");
	CHECK_IO(pwrite(fd, "01234567", 8, four - 4), 8,
		 "pwrite 8 bytes straddling 4 GiB");
	memset(iobuf, 0, 8);
	CHECK_IO(pread(fd, iobuf, 8, four - 4), 8, "pread 8 bytes straddling 4 GiB");
	CHECK_MEM(iobuf, 8, "01234567", 8, "bytes straddling 4 GiB read back");
	CHECK_IO(lseek(fd, 0, SEEK_END), five + 1, "lseek SEEK_END past 4 GiB");
	CHECK_OK(ftruncate(fd, four + 10), "ftruncate to 4 GiB + 10");
	CHECK_OK(xfstat(fd, &st), "fstat after ftruncate");
	CHECK_EQ(st.st_size, four + 10, "st_size after ftruncate to 4 GiB + 10");
	CHECK_IO(pread(fd, &c, 1, five), 0, "the byte at 5 GiB is gone");
	CHECK_IO(pread(fd, iobuf, 8, four - 4), 8, "pread straddling 4 GiB again");
	CHECK_MEM(iobuf, 8, "01234567", 8, "bytes below the cut survive");
	xclose(fd);
	leave("bigfile");
}

/* ---- truncate ---------------------------------------------------------- */

static void group_truncate(void)
{
	unsigned char p[10000];
	struct stat st;
	ssize_t n;
	int fd;

	if (!enter("truncate"))
		return;
	fill_pattern(p, sizeof(p), 3);
	CHECK_OK(put_file("t", p, sizeof(p)), "write 10000 bytes");
	CHECK_OK(truncate("t", 20000), "truncate up to 20000");
	CHECK_OK(xstat("t", &st), "stat after truncate up");
	CHECK_EQ(st.st_size, 20000, "size after truncate up");
	n = get_file("t", iobuf, 30000);
	CHECK_EQ(n, 20000, "read after truncate up returns the new size");
	CHECK_MEM(iobuf, 10000, p, 10000, "truncate up keeps the old bytes");
	CHECK_ZERO(iobuf + 10000, 10000, "truncate up adds zeros");
	CHECK_OK(truncate("t", 100), "truncate down to 100");
	CHECK_OK(xstat("t", &st), "stat after truncate down");
	CHECK_EQ(st.st_size, 100, "size after truncate down");
	CHECK_CONTENT("t", p, 100, "truncate down keeps the head");
	CHECK_OK(truncate("t", 5000), "truncate up again to 5000");
	n = get_file("t", iobuf, 30000);
	CHECK_EQ(n, 5000, "size after growing again");
	CHECK_MEM(iobuf, 100, p, 100, "the head survives shrink and grow");
	CHECK_ZERO(iobuf + 100, 4900,
		   "data beyond a shrink is gone after growing again");
	CHECK_OK(truncate("t", 0), "truncate to 0");
	CHECK_OK(xstat("t", &st), "stat after truncate to 0");
	CHECK_EQ(st.st_size, 0, "size after truncate to 0");
	CHECK_OK(fd = open("t", O_RDWR), "reopen the truncated file");
	CHECK_IO(pwrite(fd, "q", 1, 5000), 1, "pwrite at 5000 after truncate to 0");
	memset(iobuf, 0xff, 5001);
	CHECK_IO(pread(fd, iobuf, 6000, 0), 5001, "pread after the pwrite");
	CHECK_ZERO(iobuf, 5000, "old data is not resurrected by a later write");

	/* ftruncate, with a cut inside a page */
	memset(iobuf, 0xee, 8192);
	CHECK_IO(pwrite(fd, iobuf, 8192, 0), 8192, "write 8192 bytes of 0xee");
	CHECK_OK(ftruncate(fd, 4097), "ftruncate down to 4097");
	CHECK_OK(xfstat(fd, &st), "fstat after ftruncate down");
	CHECK_EQ(st.st_size, 4097, "size after ftruncate down");
	CHECK_OK(ftruncate(fd, 8192), "ftruncate up to 8192");
	CHECK_OK(xfstat(fd, &st), "fstat after ftruncate up");
	CHECK_EQ(st.st_size, 8192, "size after ftruncate up");
	memset(iobuf, 0xff, 8192);
	CHECK_IO(pread(fd, iobuf, 8192, 0), 8192, "pread after ftruncate up");
	memset(iobuf2, 0xee, 4097);
	CHECK_MEM(iobuf, 4097, iobuf2, 4097, "ftruncate keeps bytes below the cut");
	CHECK_ZERO(iobuf + 4097, 8192 - 4097,
		   "the tail of a page cut by ftruncate reads zeros after growing");
	CHECK_OK(ftruncate(fd, (1 << 20) + 1), "ftruncate up to 1 MiB + 1");
	CHECK_IO(pread(fd, iobuf, 1 << 20, 8192), (1 << 20) - 8191,
		 "pread the grown tail");
	CHECK_ZERO(iobuf, (1 << 20) - 8191, "ftruncate up adds zeros");
	CHECK_ERRNO(ftruncate(fd, -1), EINVAL,
		    "ftruncate to a negative size gives EINVAL");
	xclose(fd);

	CHECK_OK(fd = open("t", O_RDONLY), "open O_RDONLY");
	CHECK_ERRNO(ftruncate(fd, 0), EINVAL,
		    "ftruncate on an O_RDONLY fd gives EINVAL");
	xclose(fd);
	CHECK_OK(xstat("t", &st), "stat after the refused ftruncate");
	CHECK_EQ(st.st_size, (1 << 20) + 1, "a refused ftruncate changes nothing");
	CHECK_OK(mkdir("d", 0755), "mkdir d");
	CHECK_ERRNO(truncate("d", 0), EISDIR, "truncate of a directory gives EISDIR");
	CHECK_ERRNO(truncate("t", -1), EINVAL,
		    "truncate to a negative size gives EINVAL");
	CHECK_ERRNO(truncate("missing", 0), ENOENT,
		    "truncate of a missing file gives ENOENT");
	leave("truncate");
}

/* ---- mkdir/rmdir ------------------------------------------------------- */

static void group_dirs(void)
{
	struct stat st;

	if (!enter("dirs"))
		return;
	CHECK_OK(mkdir("d", 0777), "mkdir d");
	CHECK_OK(xstat("d", &st), "stat d");
	CHECK(S_ISDIR(st.st_mode), "a new directory is S_IFDIR");
	CHECK_EQ(st.st_mode & 07777, 0755, "mkdir applies the umask");
	CHECK_EQ(st.st_nlink, 2, "a new directory has nlink 2");
	CHECK_ERRNO(mkdir("d", 0755), EEXIST, "mkdir of an existing dir gives EEXIST");
	CHECK_OK(put_str("f", "file"), "create a file");
	CHECK_ERRNO(mkdir("f", 0755), EEXIST,
		    "mkdir over an existing file gives EEXIST");
	CHECK_ERRNO(mkdir("missing/x", 0755), ENOENT,
		    "mkdir under a missing directory gives ENOENT");
	CHECK_OK(mkdir("d/s1", 0755), "mkdir d/s1");
	CHECK_OK(mkdir("d/s2", 0755), "mkdir d/s2");
	CHECK_OK(mkdir("d/s3", 0755), "mkdir d/s3");
	CHECK_OK(xstat("d", &st), "stat d with three subdirectories");
	CHECK_EQ(st.st_nlink, 5, "directory nlink is 2 + 3 subdirectories");
	CHECK_OK(put_str("d/file", "x"), "create a file in d");
	CHECK_OK(xstat("d", &st), "stat d after a file is added");
	CHECK_EQ(st.st_nlink, 5, "a file does not change the directory nlink");
	CHECK_OK(rmdir("d/s3"), "rmdir d/s3");
	CHECK_OK(xstat("d", &st), "stat d after rmdir");
	CHECK_EQ(st.st_nlink, 4, "rmdir of a subdirectory decrements nlink");
	CHECK_OK(mkdir("e", 0755), "mkdir e");
	CHECK_OK(rename("d/s2", "e/s2"), "move d/s2 to e/s2");
	CHECK_OK(xstat("d", &st), "stat the old parent");
	CHECK_EQ(st.st_nlink, 3, "moving a subdirectory out decrements nlink");
	CHECK_OK(xstat("e", &st), "stat the new parent");
	CHECK_EQ(st.st_nlink, 3, "moving a subdirectory in increments nlink");
	CHECK_OK(xstat(".", &st), "stat the group directory");
	CHECK_EQ(st.st_nlink, 4, "nlink of '.' counts its two subdirectories");
	CHECK_EQ(ino_of("d/s1/.."), ino_of("d"), "'..' of a subdirectory is its parent");
	CHECK_EQ(ino_of("e/s2/.."), ino_of("e"), "'..' follows a moved directory");
	CHECK_ERRNO(rmdir("d"), ENOTEMPTY,
		    "rmdir of a non-empty directory gives ENOTEMPTY");
	CHECK_ERRNO(rmdir("f"), ENOTDIR, "rmdir of a file gives ENOTDIR");
	CHECK_ERRNO(unlink("d"), EISDIR, "unlink of a directory gives EISDIR");
	CHECK_ERRNO(rmdir("."), EINVAL, "rmdir of '.' gives EINVAL");
	CHECK_ERRNO(rmdir("d/."), EINVAL, "rmdir of 'd/.' gives EINVAL");
	CHECK_ERRNO(rmdir("d/.."), ENOTEMPTY, "rmdir of 'd/..' gives ENOTEMPTY");
	CHECK_ERRNO(rmdir("missing"), ENOENT, "rmdir of a missing dir gives ENOENT");
	CHECK_ERRNO(unlink("missing"), ENOENT,
		    "unlink of a missing file gives ENOENT");
	CHECK_OK(mkdir("t/", 0755), "mkdir with a trailing slash works");
	CHECK_OK(rmdir("d/s1"), "rmdir d/s1");
	CHECK_ERRNO(xstat("d/s1", &st), ENOENT, "a removed directory is gone");
	CHECK_OK(unlink("d/file"), "unlink d/file");
	CHECK_OK(rmdir("d"), "rmdir of an emptied directory works");
	CHECK_OK(xstat(".", &st), "stat the group directory again");
	CHECK_EQ(st.st_nlink, 4, "nlink of '.' after one rmdir and one mkdir");
	leave("dirs");
}

/* ---- rename ------------------------------------------------------------ */

static void group_rename(void)
{
	long long ino_a, ino_b;
	struct stat st;

	if (!enter("rename"))
		return;
	CHECK_OK(put_str("a", "AAA"), "create a");
	CHECK_OK(put_str("b", "BBBB"), "create b");
	ino_a = ino_of("a");
	CHECK_OK(rename("a", "b"), "rename a file over a file");
	CHECK_ERRNO(xstat("a", &st), ENOENT, "the source name is gone");
	CHECK_STR("b", "AAA", "the target has the source's content");
	CHECK_EQ(ino_of("b"), ino_a, "the target is the source's inode");

	CHECK_OK(put_str("c", "CCC"), "create c");
	CHECK_OK(mkdir("ed", 0755), "mkdir an empty dir");
	CHECK_ERRNO(rename("c", "ed"), EISDIR,
		    "rename a file over an empty dir gives EISDIR");
	CHECK_OK(mkdir("d1", 0755), "mkdir d1");
	CHECK_OK(put_str("d1/in", "inside"), "create d1/in");
	CHECK_OK(rename("d1", "ed"), "rename a dir over an empty dir");
	CHECK_ERRNO(xstat("d1", &st), ENOENT, "the source dir is gone");
	CHECK_STR("ed/in", "inside", "the target dir has the source's entries");
	CHECK_OK(mkdir("src", 0755), "mkdir src");
	CHECK_ERRNO(rename("src", "ed"), ENOTEMPTY,
		    "rename a dir over a non-empty dir gives ENOTEMPTY");
	CHECK_ERRNO(rename("src", "c"), ENOTDIR,
		    "rename a dir over a file gives ENOTDIR");
	CHECK_OK(mkdir("src/sub", 0755), "mkdir src/sub");
	CHECK_ERRNO(rename("src", "src/sub/x"), EINVAL,
		    "rename a dir into its own subdirectory gives EINVAL");
	CHECK_ERRNO(rename("src", "src/x"), EINVAL,
		    "rename a dir into itself gives EINVAL");
	CHECK_ERRNO(rename(".", "x"), EBUSY, "rename of '.' gives EBUSY");
	CHECK_OK(rename("c", "c"), "rename a file to itself");
	CHECK_STR("c", "CCC", "rename to itself is a no-op");
	CHECK_OK(link("c", "c2"), "hard-link c to c2");
	CHECK_OK(rename("c", "c2"), "rename a file onto its own hard link");
	CHECK_OK(xstat("c", &st), "rename onto a hard link keeps the source name");
	CHECK_EQ(st.st_nlink, 2, "rename onto a hard link keeps both links");
	CHECK_ERRNO(rename("missing", "z"), ENOENT,
		    "rename of a missing file gives ENOENT");
	CHECK_ERRNO(rename("c", "nodir/x"), ENOENT,
		    "rename into a missing directory gives ENOENT");

	CHECK_OK(mkdir("m1", 0755), "mkdir m1");
	CHECK_OK(mkdir("m2", 0755), "mkdir m2");
	CHECK_OK(put_str("m1/f", "moved"), "create m1/f");
	CHECK_OK(rename("m1/f", "m2/g"), "rename a file across directories");
	CHECK_ERRNO(xstat("m1/f", &st), ENOENT, "the old name is gone");
	CHECK_STR("m2/g", "moved", "the moved file has its content");
	CHECK_OK(mkdir("m1/sd", 0755), "mkdir m1/sd");
	CHECK_OK(rename("m1/sd", "m2/sd"), "rename a dir across directories");
	CHECK_EQ(ino_of("m2/sd/.."), ino_of("m2"), "'..' of a moved dir is the new parent");

	/* renameat2 */
	CHECK_OK(put_str("n1", "N1"), "create n1");
	CHECK_OK(put_str("n2", "N2"), "create n2");
	CHECK_ERRNO(xrenameat2("n1", "n2", RENAME_NOREPLACE), EEXIST,
		    "rename RENAME_NOREPLACE onto existing gives EEXIST");
	CHECK_STR("n1", "N1", "a refused RENAME_NOREPLACE keeps the source");
	CHECK_STR("n2", "N2", "a refused RENAME_NOREPLACE keeps the target");
	CHECK_OK(xrenameat2("n1", "n3", RENAME_NOREPLACE),
		 "rename RENAME_NOREPLACE onto a free name works");
	CHECK_ERRNO(xstat("n1", &st), ENOENT, "RENAME_NOREPLACE moved the source");
	CHECK_STR("n3", "N1", "RENAME_NOREPLACE target has the content");

	CHECK_OK(put_str("x1", "X1"), "create x1");
	CHECK_OK(put_str("x2", "X2-longer"), "create x2");
	ino_a = ino_of("x1");
	ino_b = ino_of("x2");
	CHECK_OK(xrenameat2("x1", "x2", RENAME_EXCHANGE),
		 "rename RENAME_EXCHANGE of two files");
	CHECK_STR("x1", "X2-longer", "RENAME_EXCHANGE: x1 has x2's content");
	CHECK_STR("x2", "X1", "RENAME_EXCHANGE: x2 has x1's content");
	CHECK_EQ(ino_of("x1"), ino_b, "RENAME_EXCHANGE swaps the inodes (x1)");
	CHECK_EQ(ino_of("x2"), ino_a, "RENAME_EXCHANGE swaps the inodes (x2)");
	CHECK_OK(mkdir("xd", 0755), "mkdir xd");
	CHECK_OK(put_str("xd/inner", "in"), "create xd/inner");
	CHECK_OK(xrenameat2("x1", "xd", RENAME_EXCHANGE),
		 "rename RENAME_EXCHANGE of a file and a dir");
	CHECK_OK(xlstat("x1", &st), "stat x1 after the exchange");
	CHECK(S_ISDIR(st.st_mode), "RENAME_EXCHANGE: x1 is now the directory");
	CHECK_STR("x1/inner", "in", "RENAME_EXCHANGE: the directory kept its entries");
	CHECK_OK(xlstat("xd", &st), "stat xd after the exchange");
	CHECK(S_ISREG(st.st_mode), "RENAME_EXCHANGE: xd is now the file");
	CHECK_STR("xd", "X2-longer", "RENAME_EXCHANGE: the file kept its content");
	CHECK_ERRNO(xrenameat2("x2", "missing", RENAME_EXCHANGE), ENOENT,
		    "rename RENAME_EXCHANGE with a missing target gives ENOENT");
	CHECK_STR("x2", "X1", "a failed RENAME_EXCHANGE changes nothing");
	CHECK_ERRNO(xrenameat2("x2", "n2", RENAME_EXCHANGE | RENAME_NOREPLACE),
		    EINVAL, "RENAME_EXCHANGE|RENAME_NOREPLACE gives EINVAL");
	leave("rename");
}

struct race {
	atomic_ulong reads;
	atomic_int stop;		/* set by the parent */
	atomic_int exited;		/* set by the reader */
	unsigned long enoent, errs, torn, regress;
	int first_errno;		/* of the first error other than ENOENT */
};

static void race_reader(struct race *r)
{
	unsigned long i;
	int fd, e, last = 0;
	ssize_t n;

	alarm(60);
	for (i = 0; i < 5000000 && !atomic_load(&r->stop); i++) {
		fd = open("target", O_RDONLY);
		if (fd < 0) {
			if (errno == ENOENT) {
				r->enoent++;
			} else if (!r->errs++) {
				r->first_errno = errno;
			}
			continue;
		}
		n = read_all(fd, iobuf, 2 * RACE_BLK);
		e = errno;
		close(fd);
		if (n < 0) {
			if (!r->errs++)
				r->first_errno = e;
		} else if (n != RACE_BLK || iobuf[0] == 0 ||
			   memcmp(iobuf, iobuf + 1, RACE_BLK - 1)) {
			r->torn++;
		} else {
			if (iobuf[0] < last)
				r->regress++;
			last = iobuf[0];
		}
		atomic_fetch_add(&r->reads, 1);
	}
	atomic_store(&r->exited, 1);
	_exit(0);
}

static void race_wait(struct race *r, unsigned long reads, int ms)
{
	long long until = now_ns(CLOCK_MONOTONIC) + ms * 1000000LL;

	while (atomic_load(&r->reads) < reads && !atomic_load(&r->exited) &&
	       now_ns(CLOCK_MONOTONIC) < until)
		sleep_ms(0);
}

static void group_rename_atomic(void)
{
	int v, status = 0, fails = 0;
	struct race *r;
	pid_t pid;

	if (!enter("rename_atomic"))
		return;
	memset(iobuf, 1, RACE_BLK);
	CHECK_OK(put_file("target", iobuf, RACE_BLK), "create the first version");
	r = mmap(NULL, sizeof(*r), PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (!CHECK(r != MAP_FAILED, "map memory shared with the reader")) {
		leave("rename_atomic");
		return;
	}
	memset(r, 0, sizeof(*r));
	fflush(stdout);
	pid = fork();
	if (pid == 0)
		race_reader(r);
	if (CHECK_OK(pid, "fork a reader")) {
		race_wait(r, 1, 5000);
		for (v = 2; v <= RACE_ROUNDS + 1; v++) {
			unsigned long seen = atomic_load(&r->reads);

			memset(iobuf, v, RACE_BLK);
			if (put_file("tmp", iobuf, RACE_BLK) ||
			    rename("tmp", "target"))
				fails++;
			race_wait(r, seen + 1, 100);
		}
		atomic_store(&r->stop, 1);
		waitpid(pid, &status, 0);
		printf("# the reader opened the target %lu times\n",
		       (unsigned long)atomic_load(&r->reads));
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "the reader exits cleanly");
		CHECK_EQ(fails, 0, "%d renames of new versions over the target",
			 RACE_ROUNDS);
		CHECK_GE(r->reads, RACE_ROUNDS,
			 "the reader ran alongside every rename");
		CHECK_EQ(r->enoent, 0,
			 "the reader never sees ENOENT while the target is replaced");
		if (!CHECK_EQ(r->errs, 0, "the reader sees no other error"))
			printf("# the first was %s\n", errname(r->first_errno));
		CHECK_EQ(r->torn, 0,
			 "the reader never sees a short file or two versions mixed");
		CHECK_EQ(r->regress, 0,
			 "the reader never sees an older version after a newer one");
		memset(iobuf, RACE_ROUNDS + 1, RACE_BLK);
		CHECK_CONTENT("target", iobuf, RACE_BLK,
			      "the target ends as the last version");
	}
	munmap(r, sizeof(*r));
	leave("rename_atomic");
}

/* ---- link -------------------------------------------------------------- */

static void group_link(void)
{
	struct stat st;
	int fd;

	if (!enter("link"))
		return;
	CHECK_OK(put_str("f", "shared"), "create f");
	CHECK_OK(link("f", "g"), "link f to g");
	CHECK_OK(xstat("f", &st), "stat f");
	CHECK_EQ(st.st_nlink, 2, "link increments st_nlink");
	CHECK_EQ(ino_of("f"), ino_of("g"), "hard links share st_ino");
	CHECK_OK(fd = open("g", O_WRONLY | O_APPEND), "open g");
	CHECK_IO(write(fd, "+more", 5), 5, "write through g");
	xclose(fd);
	CHECK_STR("f", "shared+more", "a write through one link shows in the other");
	CHECK_OK(mkdir("sub", 0755), "mkdir sub");
	CHECK_OK(link("f", "sub/h"), "link into a subdirectory");
	CHECK_OK(xstat("g", &st), "stat g");
	CHECK_EQ(st.st_nlink, 3, "three links give st_nlink 3");
	CHECK_OK(unlink("sub/h"), "unlink sub/h");
	CHECK_OK(xstat("g", &st), "stat g again");
	CHECK_EQ(st.st_nlink, 2, "unlink decrements st_nlink");
	CHECK_OK(unlink("f"), "unlink f");
	CHECK_OK(xstat("g", &st), "stat g after f is gone");
	CHECK_EQ(st.st_nlink, 1, "the last link has st_nlink 1");
	CHECK_STR("g", "shared+more", "the content survives unlinking one name");
	CHECK_ERRNO(link("sub", "sublink"), EPERM, "link to a directory gives EPERM");
	CHECK_OK(put_str("e", "exists"), "create e");
	CHECK_ERRNO(link("g", "e"), EEXIST, "link onto an existing name gives EEXIST");
	CHECK_STR("e", "exists", "a refused link leaves the target alone");
	CHECK_ERRNO(link("missing", "x"), ENOENT, "link of a missing file gives ENOENT");
	CHECK_OK(symlink("g", "sl"), "symlink sl -> g");
	CHECK_OK(link("sl", "sl2"), "link of a symlink");
	CHECK_OK(xlstat("sl2", &st), "lstat the link of a symlink");
	CHECK(S_ISLNK(st.st_mode), "link does not follow a symlink");
	leave("link");
}

/* ---- symlink ----------------------------------------------------------- */

static void group_symlink(void)
{
	char target[4096], got[4200];
	struct stat st;
	ssize_t n;
	int i, fd;

	if (!enter("symlink"))
		return;
	CHECK_OK(symlink("some/target/text", "s"), "symlink s");
	n = readlink("s", got, sizeof(got));
	CHECK_MEM(got, n < 0 ? 0 : (size_t)n, "some/target/text", 16,
		  "readlink returns the target text exactly");
	CHECK_OK(xlstat("s", &st), "lstat a symlink");
	CHECK(S_ISLNK(st.st_mode), "lstat of a symlink is S_IFLNK");
	CHECK_EQ(st.st_size, 16, "symlink st_size is strlen(target)");
	CHECK_IO(readlink("s", got, 5), 5, "readlink into a small buffer truncates");
	CHECK_MEM(got, 5, "some/", 5, "a truncated readlink returns the head");

	for (i = 0; i < 1000; i++)
		target[i] = (i % 50 == 49) ? '/' : (char)('a' + i % 26);
	target[1000] = '\0';
	CHECK_OK(symlink(target, "long"), "symlink with a 1000-byte target");
	n = readlink("long", got, sizeof(got));
	CHECK_MEM(got, n < 0 ? 0 : (size_t)n, target, 1000,
		  "readlink returns the 1000-byte target exactly");
	CHECK_OK(xlstat("long", &st), "lstat the long symlink");
	CHECK_EQ(st.st_size, 1000, "long symlink st_size is 1000");
	for (i = 0; i < 4095; i++)
		target[i] = (i % 100 == 99) ? '/' : (char)('A' + i % 26);
	target[4095] = '\0';
	CHECK_OK(symlink(target, "longest"), "symlink with a 4095-byte target");
	n = readlink("longest", got, sizeof(got));
	CHECK_MEM(got, n < 0 ? 0 : (size_t)n, target, 4095,
		  "readlink returns the 4095-byte target exactly");
	CHECK_ERRNO(symlink("", "empty"), ENOENT,
		    "symlink with an empty target gives ENOENT");

	CHECK_OK(put_str("real", "R"), "create real");
	CHECK_ERRNO(readlink("real", got, sizeof(got)), EINVAL,
		    "readlink of a regular file gives EINVAL");
	CHECK_ERRNO(readlink("missing", got, sizeof(got)), ENOENT,
		    "readlink of a missing name gives ENOENT");
	CHECK_ERRNO(symlink("x", "real"), EEXIST,
		    "symlink onto an existing name gives EEXIST");
	CHECK_OK(symlink("real", "toreal"), "symlink toreal -> real");
	CHECK_STR("toreal", "R", "open follows a symlink");
	CHECK_EQ(ino_of("real"), (xstat("toreal", &st) ? -1 : (long long)st.st_ino),
		 "stat follows a symlink");
	CHECK_ERRNO(open("toreal", O_RDONLY | O_NOFOLLOW), ELOOP,
		    "open O_NOFOLLOW of a symlink gives ELOOP");
	CHECK_OK(symlink("nowhere", "dangle"), "symlink dangle -> nowhere");
	CHECK_ERRNO(open("dangle", O_RDONLY), ENOENT,
		    "open of a dangling symlink gives ENOENT");
	CHECK_ERRNO(xstat("dangle", &st), ENOENT,
		    "stat of a dangling symlink gives ENOENT");
	CHECK_OK(xlstat("dangle", &st), "lstat of a dangling symlink works");
	CHECK_OK(fd = open("dangle", O_CREAT | O_WRONLY, 0644),
		 "open O_CREAT through a dangling symlink");
	xclose(fd);
	CHECK_OK(xlstat("nowhere", &st), "O_CREAT through a symlink creates its target");
	CHECK(S_ISREG(st.st_mode), "the created target is a regular file");
	CHECK_OK(symlink("loop2", "loop1"), "symlink loop1 -> loop2");
	CHECK_OK(symlink("loop1", "loop2"), "symlink loop2 -> loop1");
	CHECK_ERRNO(open("loop1", O_RDONLY), ELOOP, "open of a symlink loop gives ELOOP");
	CHECK_OK(mkdir("realdir", 0755), "mkdir realdir");
	CHECK_OK(put_str("realdir/f", "via dir link"), "create realdir/f");
	CHECK_OK(symlink("realdir", "sd"), "symlink sd -> realdir");
	CHECK_STR("sd/f", "via dir link", "a path through a directory symlink resolves");
	CHECK_OK(unlink("toreal"), "unlink a symlink");
	CHECK_STR("real", "R", "unlinking a symlink leaves its target");
	leave("symlink");
}

/* ---- fifo -------------------------------------------------------------- */

static void group_fifo(void)
{
	struct stat st;
	char got[16];
	int fd;

	if (!enter("fifo"))
		return;
	CHECK_OK(mkfifo("p", 0644), "mkfifo");
	CHECK_OK(xlstat("p", &st), "lstat the fifo");
	CHECK(S_ISFIFO(st.st_mode), "a fifo is S_IFIFO");
	CHECK_EQ(st.st_mode & 07777, 0644, "a fifo has the mode asked for");
	CHECK_EQ(st.st_size, 0, "a fifo has size 0");
	CHECK_ERRNO(mkfifo("p", 0644), EEXIST, "mkfifo onto an existing name gives EEXIST");
	CHECK_ERRNO(open("p", O_WRONLY | O_NONBLOCK), ENXIO,
		    "open O_WRONLY|O_NONBLOCK of a fifo without reader gives ENXIO");
	CHECK_OK(fd = open("p", O_RDWR | O_NONBLOCK), "open a fifo O_RDWR|O_NONBLOCK");
	CHECK_IO(write(fd, "hello", 5), 5, "write into the fifo");
	memset(got, 0, sizeof(got));
	CHECK_IO(read(fd, got, sizeof(got)), 5, "read from the fifo");
	CHECK_MEM(got, 5, "hello", 5, "the fifo passes the bytes through");
	CHECK_ERRNO(read(fd, got, sizeof(got)), EAGAIN,
		    "read of an empty non-blocking fifo gives EAGAIN");
	xclose(fd);
	CHECK_OK(mknod("p2", S_IFIFO | 0600, 0), "mknod S_IFIFO");
	CHECK_OK(xlstat("p2", &st), "lstat the mknod fifo");
	CHECK(S_ISFIFO(st.st_mode), "mknod S_IFIFO makes a fifo");
	CHECK_OK(unlink("p"), "unlink a fifo");
	CHECK_ERRNO(xlstat("p", &st), ENOENT, "the unlinked fifo is gone");
	leave("fifo");
}

/* ---- chmod and timestamps ---------------------------------------------- */

static void group_times(void)
{
	struct timespec tv[2];
	long long m0, c0, before, after;
	struct stat st;
	char c;
	int fd;

	if (!enter("times"))
		return;
	CHECK_OK(put_str("f", "x"), "create f");
	CHECK_OK(chmod("f", 0600), "chmod 0600");
	CHECK_OK(xstat("f", &st), "stat after chmod");
	CHECK_EQ(st.st_mode & 07777, 0600, "chmod sets the mode");
	CHECK(S_ISREG(st.st_mode), "chmod keeps the file type");
	CHECK_OK(chmod("f", 04755), "chmod 04755");
	CHECK_OK(xstat("f", &st), "stat after chmod 04755");
	CHECK_EQ(st.st_mode & 07777, 04755, "chmod sets the setuid bit");
	CHECK_OK(fd = open("f", O_RDONLY), "open f");
	CHECK_OK(fchmod(fd, 0), "fchmod 0");
	CHECK_OK(xfstat(fd, &st), "fstat after fchmod");
	CHECK_EQ(st.st_mode & 07777, 0, "fchmod sets the mode");
	xclose(fd);
	CHECK_OK(chmod("f", 0644), "chmod 0644");
	CHECK_OK(mkdir("d", 0755), "mkdir d");
	CHECK_OK(chmod("d", 01777), "chmod a directory 01777");
	CHECK_OK(xstat("d", &st), "stat the directory");
	CHECK_EQ(st.st_mode & 07777, 01777, "chmod sets the sticky bit");
	CHECK_ERRNO(chmod("missing", 0644), ENOENT, "chmod of a missing file gives ENOENT");

	CHECK_OK(set_old_times("f"), "set old times");
	CHECK_OK(xstat("f", &st), "stat before chmod");
	m0 = ns_of(&st.st_mtim);
	c0 = ns_of(&st.st_ctim);
	tick();
	CHECK_OK(chmod("f", 0640), "chmod 0640");
	CHECK_OK(xstat("f", &st), "stat after chmod");
	CHECK_GT(ns_of(&st.st_ctim), c0, "chmod changes ctime");
	CHECK_EQ(ns_of(&st.st_mtim), m0, "chmod does not change mtime");

	tv[0] = (struct timespec){ 1234567890, 123456789 };
	tv[1] = (struct timespec){ 1500000000, 987654321 };
	CHECK_OK(utimensat(AT_FDCWD, "f", tv, 0), "utimensat with explicit times");
	CHECK_OK(xstat("f", &st), "stat after utimensat");
	CHECK_EQ(ns_of(&st.st_atim), ns_of(&tv[0]), "utimensat sets atime to the nanosecond");
	CHECK_EQ(ns_of(&st.st_mtim), ns_of(&tv[1]), "utimensat sets mtime to the nanosecond");
	tv[0] = (struct timespec){ 0, UTIME_OMIT };
	tv[1] = (struct timespec){ 1600000000, 5 };
	CHECK_OK(utimensat(AT_FDCWD, "f", tv, 0), "utimensat with UTIME_OMIT atime");
	CHECK_OK(xstat("f", &st), "stat after UTIME_OMIT");
	CHECK_EQ(ns_of(&st.st_atim), 1234567890123456789LL, "UTIME_OMIT keeps atime");
	CHECK_EQ(ns_of(&st.st_mtim), 1600000000000000005LL, "mtime with 5 ns is exact");
	tv[1] = (struct timespec){ 1LL << 33, 42 };
	CHECK_OK(utimensat(AT_FDCWD, "f", tv, 0), "utimensat to year 2242");
	CHECK_OK(xstat("f", &st), "stat after year-2242 mtime");
	CHECK_EQ(st.st_mtim.tv_sec, 1LL << 33, "a mtime beyond 32 bits round-trips");
	CHECK_EQ(st.st_mtim.tv_nsec, 42, "its nanoseconds round-trip");
	before = now_ns(CLOCK_REALTIME_COARSE);
	tv[1] = (struct timespec){ 0, UTIME_NOW };
	CHECK_OK(utimensat(AT_FDCWD, "f", tv, 0), "utimensat with UTIME_NOW mtime");
	after = now_ns(CLOCK_REALTIME);
	CHECK_OK(xstat("f", &st), "stat after UTIME_NOW");
	CHECK_GE(ns_of(&st.st_mtim), before, "UTIME_NOW mtime is not before the call");
	CHECK_LE(ns_of(&st.st_mtim), after, "UTIME_NOW mtime is not after the call");
	CHECK_EQ(ns_of(&st.st_atim), 1234567890123456789LL, "UTIME_OMIT atime kept with UTIME_NOW");
	CHECK_OK(set_old_times("f"), "set old times");
	before = now_ns(CLOCK_REALTIME_COARSE);
	CHECK_OK(utimensat(AT_FDCWD, "f", NULL, 0), "utimensat with NULL times");
	after = now_ns(CLOCK_REALTIME);
	CHECK_OK(xstat("f", &st), "stat after NULL times");
	CHECK_GE(ns_of(&st.st_atim), before, "NULL times set atime to now");
	CHECK_GE(ns_of(&st.st_mtim), before, "NULL times set mtime to now");
	CHECK_LE(ns_of(&st.st_mtim), after, "NULL times mtime is not in the future");
	tv[0] = (struct timespec){ 1100000000, 1 };
	tv[1] = (struct timespec){ 1200000000, 2 };
	CHECK_OK(fd = open("f", O_RDONLY), "open f");
	CHECK_OK(futimens(fd, tv), "futimens");
	CHECK_OK(xfstat(fd, &st), "fstat after futimens");
	CHECK_EQ(ns_of(&st.st_mtim), ns_of(&tv[1]), "futimens sets mtime");
	xclose(fd);
	CHECK_ERRNO(utimensat(AT_FDCWD, "missing", tv, 0), ENOENT,
		    "utimensat of a missing file gives ENOENT");
	CHECK_OK(symlink("f", "sl"), "symlink sl -> f");
	tv[0] = (struct timespec){ 1000000000, 1 };
	tv[1] = (struct timespec){ 1000000000, 2 };
	CHECK_OK(utimensat(AT_FDCWD, "sl", tv, AT_SYMLINK_NOFOLLOW),
		 "utimensat AT_SYMLINK_NOFOLLOW on a symlink");
	CHECK_OK(xlstat("sl", &st), "lstat the symlink");
	CHECK_EQ(ns_of(&st.st_mtim), 1000000000000000002LL,
		 "AT_SYMLINK_NOFOLLOW sets the symlink's mtime");
	CHECK_OK(xstat("f", &st), "stat the target");
	CHECK_EQ(ns_of(&st.st_mtim), 1200000000000000002LL,
		 "AT_SYMLINK_NOFOLLOW leaves the target's mtime");

	/* writes move mtime and ctime, reads do not */
	CHECK_OK(set_old_times("f"), "set old times");
	CHECK_OK(xstat("f", &st), "stat before write");
	c0 = ns_of(&st.st_ctim);
	tick();
	before = now_ns(CLOCK_REALTIME_COARSE);
	CHECK_OK(fd = open("f", O_WRONLY), "open f for writing");
	CHECK_IO(write(fd, "y", 1), 1, "write one byte");
	xclose(fd);
	after = now_ns(CLOCK_REALTIME);
	CHECK_OK(xstat("f", &st), "stat after write");
	CHECK_GE(ns_of(&st.st_mtim), before, "after write, mtime >= the time before it");
	CHECK_LE(ns_of(&st.st_mtim), after, "after write, mtime is not in the future");
	CHECK_GT(ns_of(&st.st_ctim), c0, "write changes ctime");
	CHECK_GE(ns_of(&st.st_ctim), before, "after write, ctime >= the time before it");
	CHECK_OK(set_old_times("f"), "set old times");
	CHECK_OK(xstat("f", &st), "stat before read");
	m0 = ns_of(&st.st_mtim);
	c0 = ns_of(&st.st_ctim);
	tick();
	CHECK_OK(fd = open("f", O_RDONLY), "open f read-only");
	CHECK_IO(read(fd, &c, 1), 1, "read one byte");
	xclose(fd);
	CHECK_OK(xstat("f", &st), "stat after read");
	CHECK_EQ(ns_of(&st.st_mtim), m0, "a read-only open and read keeps mtime");
	CHECK_EQ(ns_of(&st.st_ctim), c0, "a read-only open and read keeps ctime");
	CHECK_OK(set_old_times("f"), "set old times");
	tick();
	before = now_ns(CLOCK_REALTIME_COARSE);
	CHECK_OK(truncate("f", 100), "truncate");
	CHECK_OK(xstat("f", &st), "stat after truncate");
	CHECK_GE(ns_of(&st.st_mtim), before, "truncate updates mtime");
	CHECK_GE(ns_of(&st.st_ctim), before, "truncate updates ctime");
	CHECK_OK(set_old_times("f"), "set old times");
	tick();
	before = now_ns(CLOCK_REALTIME_COARSE);
	CHECK_OK(fd = open("f", O_RDWR), "open f");
	CHECK_OK(ftruncate(fd, 10), "ftruncate");
	xclose(fd);
	CHECK_OK(xstat("f", &st), "stat after ftruncate");
	CHECK_GE(ns_of(&st.st_mtim), before, "ftruncate updates mtime");

	/* directory times and link ctime */
	CHECK_OK(mkdir("dd", 0755), "mkdir dd");
	CHECK_OK(mkdir("de", 0755), "mkdir de");
	CHECK_OK(set_old_times("dd"), "set old times on dd");
	tick();
	before = now_ns(CLOCK_REALTIME_COARSE);
	CHECK_OK(put_str("dd/x", "x"), "create dd/x");
	CHECK_OK(xstat("dd", &st), "stat dd");
	CHECK_GE(ns_of(&st.st_mtim), before, "creating a file updates the dir mtime");
	CHECK_GE(ns_of(&st.st_ctim), before, "creating a file updates the dir ctime");
	CHECK_OK(set_old_times("dd"), "set old times on dd");
	CHECK_OK(set_old_times("de"), "set old times on de");
	tick();
	before = now_ns(CLOCK_REALTIME_COARSE);
	CHECK_OK(rename("dd/x", "de/x"), "rename dd/x to de/x");
	CHECK_OK(xstat("dd", &st), "stat dd");
	CHECK_GE(ns_of(&st.st_mtim), before, "rename updates the old dir mtime");
	CHECK_OK(xstat("de", &st), "stat de");
	CHECK_GE(ns_of(&st.st_mtim), before, "rename updates the new dir mtime");
	CHECK_OK(set_old_times("de"), "set old times on de");
	tick();
	before = now_ns(CLOCK_REALTIME_COARSE);
	CHECK_OK(unlink("de/x"), "unlink de/x");
	CHECK_OK(xstat("de", &st), "stat de");
	CHECK_GE(ns_of(&st.st_mtim), before, "unlink updates the dir mtime");
	CHECK_OK(set_old_times("dd"), "set old times on dd");
	tick();
	before = now_ns(CLOCK_REALTIME_COARSE);
	CHECK_OK(mkdir("dd/sub", 0755), "mkdir dd/sub");
	CHECK_OK(xstat("dd", &st), "stat dd");
	CHECK_GE(ns_of(&st.st_mtim), before, "mkdir updates the parent mtime");
	CHECK_OK(xstat("f", &st), "stat f");
	c0 = ns_of(&st.st_ctim);
	tick();
	CHECK_OK(link("f", "f2"), "link f f2");
	CHECK_OK(xstat("f", &st), "stat f after link");
	CHECK_GT(ns_of(&st.st_ctim), c0, "link changes the file's ctime");
	c0 = ns_of(&st.st_ctim);
	tick();
	CHECK_OK(unlink("f2"), "unlink f2");
	CHECK_OK(xstat("f", &st), "stat f after unlink of f2");
	CHECK_GT(ns_of(&st.st_ctim), c0, "unlink of another link changes ctime");
	leave("times");
}

/* ---- chown (root) ------------------------------------------------------ */

static void group_chown(void)
{
	long long c0;
	struct stat st;
	int fd;

	if (!is_root) {
		t_skip("not root", "chown checks");
		return;
	}
	if (!enter("chown"))
		return;
	CHECK_OK(put_str("f", "x"), "create f");
	CHECK_OK(chown("f", 1234, 5678), "chown to 1234:5678 as root");
	CHECK_OK(xstat("f", &st), "stat after chown");
	CHECK_EQ(st.st_uid, 1234, "chown sets the uid");
	CHECK_EQ(st.st_gid, 5678, "chown sets the gid");
	c0 = ns_of(&st.st_ctim);
	tick();
	CHECK_OK(chown("f", 4321, (gid_t)-1), "chown the uid only");
	CHECK_OK(xstat("f", &st), "stat after chown of the uid");
	CHECK_EQ(st.st_uid, 4321, "chown changes the uid");
	CHECK_EQ(st.st_gid, 5678, "chown with gid -1 keeps the gid");
	CHECK_GT(ns_of(&st.st_ctim), c0, "chown changes ctime");
	CHECK_OK(chmod("f", 04755), "chmod 04755");
	CHECK_OK(chown("f", 1111, (gid_t)-1), "chown a setuid file");
	CHECK_OK(xstat("f", &st), "stat the chowned setuid file");
	CHECK_EQ(st.st_mode & 07777, 0755, "chown clears the setuid bit, even as root");
	CHECK_OK(chmod("f", 02755), "chmod 02755");
	CHECK_OK(chown("f", (uid_t)-1, 2222), "chown a setgid file");
	CHECK_OK(xstat("f", &st), "stat the chowned setgid file");
	CHECK_EQ(st.st_mode & 07777, 0755,
		 "chown clears setgid on a group-executable file");
	CHECK_OK(symlink("f", "sl"), "symlink sl -> f");
	CHECK_OK(lchown("sl", 7, 8), "lchown a symlink");
	CHECK_OK(xlstat("sl", &st), "lstat the symlink");
	CHECK_EQ(st.st_uid, 7, "lchown sets the symlink's uid");
	CHECK_OK(xstat("f", &st), "stat the target");
	CHECK_EQ(st.st_uid, 1111, "lchown leaves the target alone");
	CHECK_OK(fd = open("f", O_RDONLY), "open f");
	CHECK_OK(fchown(fd, 9, 10), "fchown");
	CHECK_OK(xfstat(fd, &st), "fstat after fchown");
	CHECK(st.st_uid == 9 && st.st_gid == 10, "fchown sets uid and gid");
	xclose(fd);
	CHECK_OK(mkdir("d", 0755), "mkdir d");
	CHECK_OK(chown("d", 3, 4), "chown a directory");
	CHECK_OK(xstat("d", &st), "stat the directory");
	CHECK(st.st_uid == 3 && st.st_gid == 4, "chown sets a directory's owner");
	CHECK_ERRNO(chown("missing", 1, 1), ENOENT, "chown of a missing file gives ENOENT");
	leave("chown");
}

/* ---- permissions as an unprivileged user (root) ------------------------ */

static void perm_child(int wfd)
{
	struct timespec tv[2] = { { OLD_SEC, 0 }, { OLD_SEC, 0 } };
	struct stat st;
	char got[16];
	int counts[2], fd;
	ssize_t n;

	alarm(30);
	if (!CHECK_OK(setgroups(0, NULL) == 0 && setgid(NOBODY) == 0 &&
		      setuid(NOBODY) == 0 ? 0 : -1,
		      "drop privileges to uid/gid %d", NOBODY))
		goto out;
	CHECK_ERRNO(open("secret", O_RDONLY), EACCES,
		    "open O_RDONLY of a 0600 root file gives EACCES");
	CHECK_ERRNO(open("secret", O_WRONLY), EACCES,
		    "open O_WRONLY of a 0600 root file gives EACCES");
	CHECK_OK(fd = open("public", O_RDONLY), "a 0644 root file opens O_RDONLY");
	memset(got, 0, sizeof(got));
	n = fd >= 0 ? read(fd, got, sizeof(got)) : -1;
	CHECK_MEM(got, n < 0 ? 0 : (size_t)n, "public", 6,
		  "a 0644 root file is readable");
	xclose(fd);
	CHECK_ERRNO(open("public", O_WRONLY), EACCES,
		    "open O_WRONLY of a 0644 root file gives EACCES");
	CHECK_ERRNO(truncate("public", 0), EACCES,
		    "truncate of a 0644 root file gives EACCES");
	CHECK_ERRNO(open("ro/new", O_CREAT | O_WRONLY, 0644), EACCES,
		    "creating in a 0755 root dir gives EACCES");
	CHECK_ERRNO(mkdir("ro/newdir", 0755), EACCES,
		    "mkdir in a 0755 root dir gives EACCES");
	CHECK_ERRNO(unlink("ro/victim"), EACCES,
		    "unlink in a 0755 root dir gives EACCES");
	CHECK_ERRNO(rename("ro/victim", "ro/v2"), EACCES,
		    "rename in a 0755 root dir gives EACCES");
	CHECK_ERRNO(xstat("closed/f", &st), EACCES,
		    "stat through a 0700 root dir gives EACCES");
	CHECK_ERRNO(open("closed", O_RDONLY | O_DIRECTORY), EACCES,
		    "opening a 0700 root dir gives EACCES");
	CHECK_OK(fd = open("open/mine", O_CREAT | O_WRONLY, 0644),
		 "creating in a 0777 dir works");
	CHECK_OK(xfstat(fd, &st), "fstat the new file");
	CHECK(st.st_uid == NOBODY && st.st_gid == NOBODY,
	      "a new file is owned by the creator's uid and gid");
	xclose(fd);
	CHECK_ERRNO(unlink("sticky/rootfile"), EPERM,
		    "unlink of another's file in a sticky dir gives EPERM");
	CHECK_ERRNO(chmod("public", 0666), EPERM,
		    "chmod of another's file gives EPERM");
	CHECK_ERRNO(chown("open/mine", 0, (gid_t)-1), EPERM,
		    "chown to another uid as non-root gives EPERM");
	CHECK_ERRNO(utimensat(AT_FDCWD, "public", NULL, 0), EACCES,
		    "utimensat(NOW) of another's read-only file gives EACCES");
	CHECK_ERRNO(utimensat(AT_FDCWD, "public", tv, 0), EPERM,
		    "utimensat with times on another's file gives EPERM");
	CHECK_ERRNO(setxattr("public", "user.x", "v", 1, 0), EACCES,
		    "setxattr on another's read-only file gives EACCES");
out:
	counts[0] = t_num;
	counts[1] = t_failed;
	if (write(wfd, counts, sizeof(counts)) != (ssize_t)sizeof(counts))
		_exit(1);
	_exit(0);
}

static void group_perms(void)
{
	int pfd[2], counts[2], status = 0;
	struct stat st;
	pid_t pid;
	ssize_t n;

	if (!is_root) {
		t_skip("not root", "permission checks as uid %d", NOBODY);
		return;
	}
	if (!enter("perms"))
		return;
	CHECK_OK(put_str("secret", "secret") | chmod("secret", 0600),
		 "create a 0600 root file");
	CHECK_OK(put_str("public", "public") | chmod("public", 0644),
		 "create a 0644 root file");
	CHECK_OK(mkdir("ro", 0755) | chmod("ro", 0755) |
		 put_str("ro/victim", "v") | chmod("ro/victim", 0666),
		 "create a 0755 root dir");
	CHECK_OK(mkdir("closed", 0700) | put_str("closed/f", "f"),
		 "create a 0700 root dir");
	CHECK_OK(mkdir("open", 0777) | chmod("open", 0777), "create a 0777 dir");
	CHECK_OK(mkdir("sticky", 0777) | chmod("sticky", 01777) |
		 put_str("sticky/rootfile", "r") | chmod("sticky/rootfile", 0666),
		 "create a 01777 dir with a root file");
	if (!CHECK_OK(pipe(pfd), "make a pipe for the child")) {
		leave("perms");
		return;
	}
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		close(pfd[0]);
		perm_child(pfd[1]);
	}
	close(pfd[1]);
	/* The child numbers its checks on from t_num: report after it. */
	if (pid < 0) {
		t_report(0, strerror(errno), "fork an unprivileged child");
	} else {
		n = read(pfd[0], counts, sizeof(counts));
		waitpid(pid, &status, 0);
		if (n == (ssize_t)sizeof(counts) && counts[0] >= t_num) {
			t_num = counts[0];
			t_failed = counts[1];
		}
		CHECK(n == (ssize_t)sizeof(counts) && WIFEXITED(status) &&
		      WEXITSTATUS(status) == 0,
		      "the unprivileged child reports back and exits cleanly");
	}
	close(pfd[0]);
	CHECK_OK(xstat("ro/victim", &st), "the file in the 0755 dir survives");
	CHECK_OK(xstat("sticky/rootfile", &st), "the file in the sticky dir survives");
	CHECK_ERRNO(xstat("ro/new", &st), ENOENT, "no file was created in the 0755 dir");
	leave("perms");
}

/* ---- xattr ------------------------------------------------------------- */

static void group_xattr(void)
{
	char val[256], list[4096], names[512], name[300];
	unsigned char big[4000];
	ssize_t n;
	int fd;

	if (!enter("xattr"))
		return;
	CHECK_OK(put_str("f", "x"), "create f");
	CHECK_OK(setxattr("f", "user.a", "v1", 2, 0), "setxattr user.a");
	CHECK_IO(getxattr("f", "user.a", NULL, 0), 2, "getxattr size query returns the length");
	n = getxattr("f", "user.a", val, sizeof(val));
	CHECK_MEM(val, n < 0 ? 0 : (size_t)n, "v1", 2, "getxattr returns the value");
	CHECK_ERRNO(getxattr("f", "user.a", val, 1), ERANGE,
		    "getxattr into a too-small buffer gives ERANGE");
	CHECK_ERRNO(setxattr("f", "user.a", "x", 1, XATTR_CREATE), EEXIST,
		    "setxattr XATTR_CREATE on an existing name gives EEXIST");
	n = getxattr("f", "user.a", val, sizeof(val));
	CHECK_MEM(val, n < 0 ? 0 : (size_t)n, "v1", 2, "a refused XATTR_CREATE keeps the value");
	CHECK_ERRNO(setxattr("f", "user.b", "vb", 2, XATTR_REPLACE), ENODATA,
		    "setxattr XATTR_REPLACE on a missing name gives ENODATA");
	CHECK_OK(setxattr("f", "user.a", "v2-longer", 9, XATTR_REPLACE),
		 "setxattr XATTR_REPLACE on an existing name");
	n = getxattr("f", "user.a", val, sizeof(val));
	CHECK_MEM(val, n < 0 ? 0 : (size_t)n, "v2-longer", 9, "XATTR_REPLACE replaces the value");
	CHECK_OK(setxattr("f", "user.b", "B", 1, XATTR_CREATE),
		 "setxattr XATTR_CREATE on a new name");
	CHECK_OK(setxattr("f", "user.empty", "", 0, 0), "setxattr an empty value");
	CHECK_IO(getxattr("f", "user.empty", val, sizeof(val)), 0,
		 "an empty value reads back as 0 bytes");
	CHECK_ERRNO(getxattr("f", "user.missing", val, sizeof(val)), ENODATA,
		    "getxattr of a missing name gives ENODATA");
	n = listxattr("f", NULL, 0);
	CHECK_GT(n, 0, "listxattr size query returns a length");
	CHECK_IO(listxattr("f", list, sizeof(list)), n,
		 "listxattr returns as many bytes as the size query said");
	user_xattrs(list, n, names, sizeof(names));
	CHECK(!strcmp(names, "user.a,user.b,user.empty") ||
	      !strcmp(names, "user.a,user.empty,user.b") ||
	      !strcmp(names, "user.b,user.a,user.empty") ||
	      !strcmp(names, "user.b,user.empty,user.a") ||
	      !strcmp(names, "user.empty,user.a,user.b") ||
	      !strcmp(names, "user.empty,user.b,user.a"),
	      "listxattr lists exactly user.a, user.b and user.empty (got %s)",
	      names);
	CHECK_ERRNO(listxattr("f", list, 1), ERANGE,
		    "listxattr into a too-small buffer gives ERANGE");
	CHECK_OK(removexattr("f", "user.b"), "removexattr user.b");
	CHECK_ERRNO(getxattr("f", "user.b", val, sizeof(val)), ENODATA,
		    "a removed attribute gives ENODATA");
	CHECK_ERRNO(removexattr("f", "user.b"), ENODATA,
		    "removexattr of a missing name gives ENODATA");
	n = listxattr("f", list, sizeof(list));
	user_xattrs(list, n, names, sizeof(names));
	CHECK(!strcmp(names, "user.a,user.empty") ||
	      !strcmp(names, "user.empty,user.a"),
	      "listxattr no longer lists the removed name (got %s)", names);

	fill_pattern(big, sizeof(big), 9);
	CHECK_OK(put_str("bigx", "x"), "create bigx");
	CHECK_OK(setxattr("bigx", "user.big", big, sizeof(big), 0),
		 "setxattr a 4000-byte value");
	CHECK_IO(getxattr("bigx", "user.big", NULL, 0), 4000,
		 "size query of the 4000-byte value");
	n = getxattr("bigx", "user.big", iobuf, 8192);
	CHECK_MEM(iobuf, n < 0 ? 0 : (size_t)n, big, sizeof(big),
		  "a 4000-byte value round-trips");

	CHECK_OK(fd = open("f", O_RDONLY), "open f");
	CHECK_OK(fsetxattr(fd, "user.fd", "viafd", 5, 0), "fsetxattr");
	n = fgetxattr(fd, "user.fd", val, sizeof(val));
	CHECK_MEM(val, n < 0 ? 0 : (size_t)n, "viafd", 5, "fgetxattr returns the value");
	xclose(fd);
	CHECK_OK(mkdir("d", 0755), "mkdir d");
	CHECK_OK(setxattr("d", "user.dir", "dv", 2, 0), "setxattr on a directory");
	n = getxattr("d", "user.dir", val, sizeof(val));
	CHECK_MEM(val, n < 0 ? 0 : (size_t)n, "dv", 2, "a directory's xattr round-trips");
	CHECK_OK(symlink("f", "sl"), "symlink sl -> f");
	CHECK_ERRNO(lsetxattr("sl", "user.x", "v", 1, 0), EPERM,
		    "lsetxattr user.* on a symlink gives EPERM");
	CHECK_OK(rename("f", "g"), "rename f to g");
	n = getxattr("g", "user.a", val, sizeof(val));
	CHECK_MEM(val, n < 0 ? 0 : (size_t)n, "v2-longer", 9, "xattrs follow a rename");
	CHECK_OK(link("g", "h"), "link g to h");
	n = getxattr("h", "user.a", val, sizeof(val));
	CHECK_MEM(val, n < 0 ? 0 : (size_t)n, "v2-longer", 9, "xattrs are shared by hard links");
	memcpy(name, "user.", 5);
	make_name(name + 5, 'n', 251);
	CHECK_ERRNO(setxattr("g", name, "v", 1, 0), ERANGE,
		    "setxattr with a 256-byte name gives ERANGE");
	CHECK_ERRNO(setxattr("g", "user.huge", iobuf, 65537, 0), E2BIG,
		    "setxattr with a value over 64 KiB gives E2BIG");
	leave("xattr");
}

/* ---- statfs, fsync ----------------------------------------------------- */

static void group_statfs(void)
{
	struct statfs sf, sf2;
	struct statvfs sv;
	int fd;

	if (!enter("statfs"))
		return;
	memset(&sf, 0, sizeof(sf));
	memset(&sf2, 0, sizeof(sf2));
	memset(&sv, 0, sizeof(sv));
	CHECK_OK(statfs(".", &sf), "statfs");
	CHECK_GT(sf.f_bsize, 0, "statfs f_bsize > 0");
	CHECK_GT(sf.f_blocks, 0, "statfs f_blocks > 0");
	CHECK_LE(sf.f_bfree, sf.f_blocks, "statfs f_bfree <= f_blocks");
	CHECK_LE(sf.f_bavail, sf.f_bfree, "statfs f_bavail <= f_bfree");
	CHECK_GE(sf.f_namelen, 255, "statfs f_namelen >= 255");
	CHECK_OK(statvfs(".", &sv), "statvfs");
	CHECK_GT(sv.f_frsize, 0, "statvfs f_frsize > 0");
	CHECK_GE(sv.f_namemax, 255, "statvfs f_namemax >= 255");
	CHECK_OK(fd = open(".", O_RDONLY | O_DIRECTORY), "open the directory");
	CHECK_OK(fstatfs(fd, &sf2), "fstatfs");
	CHECK_EQ(sf2.f_type, sf.f_type, "fstatfs and statfs agree on f_type");
	CHECK_EQ(sf2.f_bsize, sf.f_bsize, "fstatfs and statfs agree on f_bsize");
	xclose(fd);
	leave("statfs");
}

static void group_fsync(void)
{
	int fd;

	if (!enter("fsync"))
		return;
	CHECK_OK(fd = open("f", O_CREAT | O_RDWR | O_TRUNC, 0644), "create f");
	CHECK_IO(write(fd, "synced data", 11), 11, "write f");
	CHECK_OK(fsync(fd), "fsync a written file");
	CHECK_IO(write(fd, " more", 5), 5, "write more");
	CHECK_OK(fdatasync(fd), "fdatasync a written file");
	CHECK_OK(syncfs(fd), "syncfs");
	xclose(fd);
	CHECK_STR("f", "synced data more", "the synced content reads back");
	CHECK_OK(fd = open("f", O_RDONLY), "open f read-only");
	CHECK_OK(fsync(fd), "fsync an O_RDONLY fd");
	xclose(fd);
	CHECK_OK(fd = open(".", O_RDONLY | O_DIRECTORY), "open the directory");
	CHECK_OK(fsync(fd), "fsync a directory fd");
	CHECK_OK(fdatasync(fd), "fdatasync a directory fd");
	xclose(fd);
	CHECK_ERRNO(fsync(-1), EBADF, "fsync of a bad fd gives EBADF");
	leave("fsync");
}

/* ---- mmap -------------------------------------------------------------- */

/* Map fd shared for reading and unmap it; 0 or -1 with errno. */
static int map_probe(int fd, size_t len)
{
	void *p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);

	if (p == MAP_FAILED)
		return -1;
	munmap(p, len);
	return 0;
}

static void group_mmap(void)
{
	size_t ps = (size_t)sysconf(_SC_PAGESIZE), len = 3 * ps + 100;
	unsigned char *p;
	ssize_t n;
	int fd, wfd;

	if (!enter("mmap"))
		return;
	fill_pattern(model, len, 21);
	CHECK_OK(put_file("m", model, len), "write a 3-page + 100 file");
	CHECK_OK(fd = open("m", O_RDWR), "open it O_RDWR");
	p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	if (CHECK(p != MAP_FAILED, "mmap MAP_SHARED PROT_READ")) {
		CHECK_MEM(p, len, model, len, "a MAP_SHARED read matches the file");
		CHECK_IO(pwrite(fd, "WXYZ", 4, (off_t)ps + 10), 4,
			 "pwrite into a mapped file");
		memcpy(model + ps + 10, "WXYZ", 4);
		CHECK_MEM(p + ps + 10, 4, "WXYZ", 4, "the mapping sees a later pwrite");
		munmap(p, len);
	}
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (CHECK(p != MAP_FAILED, "mmap MAP_SHARED PROT_READ|PROT_WRITE")) {
		memset(p + ps - 2, 0xa5, 4);
		memset(model + ps - 2, 0xa5, 4);
		p[2 * ps + 50] = 0x5a;
		model[2 * ps + 50] = 0x5a;
		p[len - 1] = 0x77;
		model[len - 1] = 0x77;
		n = pread(fd, iobuf, len + 10, 0);
		CHECK_MEM(iobuf, n < 0 ? 0 : (size_t)n, model, len,
			  "pread sees mapped stores before msync");
		CHECK_OK(msync(p, len, MS_SYNC), "msync MS_SYNC");
		CHECK_OK(munmap(p, len), "munmap");
	}
	xclose(fd);
	CHECK_CONTENT("m", model, len,
		      "stores across a page boundary persist after msync, munmap, close");

	CHECK_OK(fd = open("m", O_RDWR), "reopen");
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	if (CHECK(p != MAP_FAILED, "mmap MAP_PRIVATE")) {
		p[0] ^= 0xff;
		p[ps] ^= 0xff;
		munmap(p, len);
	}
	xclose(fd);
	CHECK_CONTENT("m", model, len, "MAP_PRIVATE stores do not reach the file");

	CHECK_OK(fd = open("grow", O_CREAT | O_RDWR | O_TRUNC, 0644), "create grow");
	CHECK_OK(ftruncate(fd, (off_t)(2 * ps)), "ftruncate it to two pages");
	p = mmap(NULL, 2 * ps, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (CHECK(p != MAP_FAILED, "mmap the hole-only file shared")) {
		CHECK_ZERO(p, 2 * ps, "a mapped hole reads zeros");
		fill_pattern(model, 2 * ps, 22);
		memcpy(p, model, 2 * ps);
		CHECK_OK(msync(p, 2 * ps, MS_SYNC), "msync the filled hole");
		munmap(p, 2 * ps);
	}
	xclose(fd);
	CHECK_CONTENT("grow", model, 2 * ps, "mmap stores into a hole persist");

	CHECK_OK(wfd = open("m", O_WRONLY), "open O_WRONLY");
	CHECK_ERRNO(map_probe(wfd, len), EACCES,
		    "mmap of an O_WRONLY fd gives EACCES");
	xclose(wfd);
	leave("mmap");
}

/* ---- unlinked but open ------------------------------------------------- */

static void group_orphan(void)
{
	struct dirent *de;
	struct stat st;
	int fd, fd2, others = 0;
	char got[64];
	DIR *d;

	if (!enter("orphan"))
		return;
	CHECK_OK(fd = open("o", O_CREAT | O_RDWR | O_TRUNC, 0644), "create o");
	CHECK_IO(write(fd, "orphan data", 11), 11, "write o");
	CHECK_OK(fd2 = open("o", O_RDONLY), "open o a second time");
	CHECK_OK(unlink("o"), "unlink the open file");
	CHECK_ERRNO(xstat("o", &st), ENOENT, "the name is gone at once");
	d = opendir(".");
	while (d && (de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			others++;
	if (d)
		closedir(d);
	CHECK_EQ(others, 0, "the directory lists nothing while the file is open");
	CHECK_OK(xfstat(fd, &st), "fstat the unlinked file");
	CHECK_EQ(st.st_nlink, 0, "an unlinked open file has st_nlink 0");
	memset(got, 0, sizeof(got));
	CHECK_IO(pread(fd, got, sizeof(got), 0), 11, "pread the unlinked file");
	CHECK_MEM(got, 11, "orphan data", 11, "the unlinked file keeps its data");
	CHECK_IO(pwrite(fd, "MORE", 4, 100), 4, "pwrite to the unlinked file");
	CHECK_OK(xfstat(fd, &st), "fstat after the write");
	CHECK_EQ(st.st_size, 104, "the unlinked file grows");
	CHECK_IO(pread(fd2, got, 4, 100), 4, "pread through the second fd");
	CHECK_MEM(got, 4, "MORE", 4, "both fds see the same unlinked file");
	CHECK_OK(ftruncate(fd, 6), "ftruncate the unlinked file");
	CHECK_OK(xfstat(fd2, &st), "fstat through the second fd");
	CHECK_EQ(st.st_size, 6, "the unlinked file shrinks");
	xclose(fd);
	xclose(fd2);
	CHECK_ERRNO(xstat("o", &st), ENOENT, "after close the name is still gone");
	CHECK_OK(fd = open("o", O_CREAT | O_RDWR, 0644), "create o again");
	CHECK_OK(xfstat(fd, &st), "fstat the new o");
	CHECK_EQ(st.st_size, 0, "a new file under the old name is empty");
	xclose(fd);

	CHECK_OK(put_str("old", "OLD CONTENT"), "create old");
	CHECK_OK(fd = open("old", O_RDONLY), "open old");
	CHECK_OK(put_str("new", "NEW"), "create new");
	CHECK_OK(rename("new", "old"), "rename new over the open old");
	memset(got, 0, sizeof(got));
	CHECK_IO(pread(fd, got, sizeof(got), 0), 11, "pread the replaced file");
	CHECK_MEM(got, 11, "OLD CONTENT", 11, "an fd keeps reading a renamed-over file");
	CHECK_OK(xfstat(fd, &st), "fstat the replaced file");
	CHECK_EQ(st.st_nlink, 0, "a renamed-over file has st_nlink 0");
	xclose(fd);
	CHECK_STR("old", "NEW", "the name now opens the new file");
	leave("orphan");
}

/* ---- readdir ----------------------------------------------------------- */

static void group_readdir(void)
{
	static char seen[NDIRENT];
	int i, fd, bad, dup, unknown, dots, dotdots, total, badino, badtype;
	char name[64], saved[256];
	struct dirent *de;
	struct stat st;
	long pos;
	DIR *d;

	if (!enter("readdir"))
		return;
	CHECK_OK(mkdir("e", 0755), "mkdir e");
	d = opendir("e");
	for (total = 0; d && (de = readdir(d)); total++)
		;
	if (d)
		closedir(d);
	CHECK_EQ(total, 2, "an empty directory lists only '.' and '..'");
	for (i = 0, bad = 0; i < NDIRENT; i++) {
		snprintf(name, sizeof(name), "entry-%05d", i);
		fd = open(name, O_CREAT | O_WRONLY, 0644);
		if (fd < 0)
			bad++;
		xclose(fd);
	}
	CHECK_EQ(bad, 0, "create %d files", NDIRENT);

	memset(seen, 0, sizeof(seen));
	dup = unknown = dots = dotdots = total = badino = badtype = 0;
	d = opendir(".");
	if (!CHECK(d != NULL, "opendir")) {
		leave("readdir");
		return;
	}
	while ((de = readdir(d))) {
		total++;
		if (!strcmp(de->d_name, ".")) {
			dots++;
			continue;
		}
		if (!strcmp(de->d_name, "..")) {
			dotdots++;
			continue;
		}
		if (!strcmp(de->d_name, "e"))
			continue;
		if (sscanf(de->d_name, "entry-%d", &i) != 1 ||
		    i < 0 || i >= NDIRENT) {
			unknown++;
			continue;
		}
		snprintf(name, sizeof(name), "entry-%05d", i);
		if (strcmp(name, de->d_name)) {
			unknown++;
			continue;
		}
		if (seen[i]++)
			dup++;
		if (de->d_type != DT_REG && de->d_type != DT_UNKNOWN)
			badtype++;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) ||
		    st.st_ino != de->d_ino)
			badino++;
	}
	for (i = 0, bad = 0; i < NDIRENT; i++)
		if (!seen[i])
			bad++;
	CHECK_EQ(bad, 0, "readdir returns every one of %d names", NDIRENT);
	CHECK_EQ(dup, 0, "readdir returns no name twice");
	CHECK_EQ(unknown, 0, "readdir returns no unknown names");
	CHECK_EQ(dots, 1, "readdir returns '.' once");
	CHECK_EQ(dotdots, 1, "readdir returns '..' once");
	CHECK_EQ(total, NDIRENT + 3, "readdir returns %d entries in all", NDIRENT + 3);
	CHECK_EQ(badtype, 0, "d_type of a file is DT_REG or DT_UNKNOWN");
	CHECK_EQ(badino, 0, "d_ino matches st_ino for every entry");

	rewinddir(d);
	for (i = 0; i < 1000 && readdir(d); i++)
		;
	pos = telldir(d);
	de = readdir(d);
	snprintf(saved, sizeof(saved), "%s", de ? de->d_name : "(end)");
	for (i = 0; i < 500 && readdir(d); i++)
		;
	seekdir(d, pos);
	de = readdir(d);
	CHECK(de && !strcmp(de->d_name, saved),
	      "seekdir to a telldir position continues with the same entry (%s)",
	      saved);
	rewinddir(d);
	for (total = 0; readdir(d); total++)
		;
	CHECK_EQ(total, NDIRENT + 3, "rewinddir lists everything again");
	closedir(d);

	for (i = 0, bad = 0; i < NDIRENT; i += 2) {
		snprintf(name, sizeof(name), "entry-%05d", i);
		if (unlink(name))
			bad++;
	}
	CHECK_EQ(bad, 0, "unlink every even entry");
	d = opendir(".");
	memset(seen, 0, sizeof(seen));
	for (total = 0, bad = 0; d && (de = readdir(d)); total++)
		if (sscanf(de->d_name, "entry-%d", &i) == 1 &&
		    i >= 0 && i < NDIRENT && seen[i]++)
			bad++;
	for (i = 0; i < NDIRENT; i++)
		if (seen[i] != (i & 1))
			bad++;
	CHECK_EQ(bad, 0, "after unlinking half, exactly the odd entries remain");
	CHECK_EQ(total, NDIRENT / 2 + 3, "the listing shrinks by half");

	/* rm -r style: unlink each entry as it is read */
	if (d)
		rewinddir(d);
	for (bad = 0; d && (de = readdir(d));)
		if (!strncmp(de->d_name, "entry-", 6) &&
		    unlinkat(dirfd(d), de->d_name, 0))
			bad++;
	if (d)
		closedir(d);
	CHECK_EQ(bad, 0, "unlinking entries while reading them works");
	d = opendir(".");
	for (total = 0; d && (de = readdir(d)); total++)
		;
	if (d)
		closedir(d);
	CHECK_EQ(total, 3, "one pass of read-and-unlink empties the directory");
	leave("readdir");
}

/* ---- main -------------------------------------------------------------- */

static void on_alarm(int sig)
{
	static const char msg[] = "Bail out! posix_check timed out\n";
	ssize_t n;

	(void)sig;
	n = write(STDOUT_FILENO, msg, sizeof(msg) - 1);
	(void)n;
	_exit(2);
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	char work[64];

	if (argc != 2) {
		fprintf(stderr, "usage: posix_check DIR\n"
			"checks POSIX behaviour in DIR, an empty scratch "
			"directory on the filesystem under test\n");
		return 2;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;
	sigaction(SIGALRM, &sa, NULL);
	alarm(120);
	umask(022);
	is_root = geteuid() == 0;
	if (chdir(argv[1])) {
		printf("Bail out! cannot enter %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	snprintf(work, sizeof(work), "posix_check.%ld", (long)getpid());
	if (mkdir(work, 0755) || chmod(work, 0755) || chdir(work) ||
	    (work_fd = open(".", O_RDONLY | O_DIRECTORY)) < 0) {
		printf("Bail out! cannot make %s/%s: %s\n", argv[1], work,
		       strerror(errno));
		return 1;
	}
	printf("# posix_check in %s/%s%s\n", argv[1], work,
	       is_root ? "" : " (not root: chown and permission checks skipped)");

	group_open();
	group_names();
	group_rw();
	group_bigfile();
	group_truncate();
	group_dirs();
	group_rename();
	group_rename_atomic();
	group_link();
	group_symlink();
	group_fifo();
	group_times();
	group_chown();
	group_perms();
	group_xattr();
	group_statfs();
	group_fsync();
	group_mmap();
	group_orphan();
	group_readdir();

	close(work_fd);
	if (chdir(".."))
		t_report(0, strerror(errno), "return to %s", argv[1]);
	CHECK_OK(rmdir(work), "remove the emptied scratch directory %s", work);
	printf("1..%d\n", t_num);
	if (t_failed)
		printf("# %d of %d checks failed\n", t_failed, t_num);
	return t_failed ? 1 : 0;
}
