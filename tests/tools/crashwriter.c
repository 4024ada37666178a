/*
 * tests/tools/crashwriter.c — the writer and the checker of the crash tests.
 *
 *   crashwriter write DIR COUNT SEED
 *   crashwriter churn DIR SEED [MAXWRITES]
 *   crashwriter verify DIR [MAXPARTIAL]
 *
 * write: creates COUNT files DIR/f00000, DIR/f00001, ... of pseudo-random
 * size (0 to 3 MiB: many small, some across the 1 MiB block boundaries)
 * and content, both drawn from SEED. For each file: write it all, fsync
 * it, fsync DIR, append "NAME SIZE SHA256HEX\n" to DIR/manifest (O_APPEND,
 * one write) and fsync the manifest; only then is the file acknowledged,
 * and the same line is printed on stdout and flushed. DIR/manifest must
 * not exist beforehand: rewriting an acknowledged file would make a kill
 * during the rewrite look like data loss.
 *
 * churn: the "mid-write" load that a test kills. It rewrites files
 * DIR/c00000..c00031 in place (O_TRUNC, written fully, closed, never
 * fsynced), one at a time, each time with a new version, up to MAXWRITES
 * writes (default 1000000, i.e. until killed). Each version is
 *
 *	"lakefs-churn SEED NAME VERSION LEN\n" + LEN bytes made from
 *	(SEED, NAME, VERSION)
 *
 * so a file is self-describing: the header fixes its whole length and
 * content, and verify needs no state from the writer.
 *
 * verify: every complete line of DIR/manifest (ending in '\n'; a crash may
 * cut the last one, which is ignored and reported) names a file that must
 * exist with that size and SHA-256. Then every DIR/c<digits> file must be
 * one complete version as above. Two states short of that are accepted and
 * counted, because no fsync promised more: an empty file (created or
 * truncated, nothing written yet), and a strict prefix of one version (the
 * file being written when the writer died) for at most MAXPARTIAL files
 * (default 1, as churn has one file open at a time). Garbage, a header
 * that does not name the file, bytes of another version, a file longer
 * than its header says or a torn mix of two versions fail.
 *
 * Output lines of verify start with '#' (TAP comments). It prints
 * "# verified N acknowledged files, M churn files" and exits 0, or prints
 * each failure and exits 1. Usage errors exit 2; write and churn exit 1
 * when a system call fails.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KiB		(UINT64_C(1) << 10)
#define MiB		(UINT64_C(1) << 20)
#define CHUNK		(128 * KiB)
#define WRITE_MAX	(3 * MiB)	/* largest acknowledged file */
#define CHURN_FILES	32
#define CHURN_MAX	(2 * MiB + 4 * KiB)	/* largest churn payload */
#define CHURN_WRITES	1000000
#define HDR_MAX		128	/* longest churn header, '\n' included */
#define LINE_MAX_LEN	256	/* longest manifest line */
#define NAME_MAX_LEN	64
#define MANIFEST	"manifest"

struct rng {
	uint64_t s;
};

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

/* Seeds a generator from up to three numbers, so streams do not overlap. */
static void rng_seed(struct rng *r, uint64_t a, uint64_t b, uint64_t c)
{
	uint64_t x = a;

	x = splitmix64(&x) ^ b;
	x = splitmix64(&x) ^ c;
	r->s = splitmix64(&x);
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

/*
 * Fills buf with the next n bytes of a stream. Calls must come in multiples
 * of 8 bytes except the last, which CHUNK-sized pieces guarantee.
 */
static void rng_fill(struct rng *r, unsigned char *buf, size_t n)
{
	uint64_t v;
	size_t i;

	for (i = 0; i + 8 <= n; i += 8) {
		v = rng_next(r);
		memcpy(buf + i, &v, 8);
	}
	if (i < n) {
		v = rng_next(r);
		memcpy(buf + i, &v, n - i);
	}
}

static int write_full(int fd, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	ssize_t n;

	while (len) {
		n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads up to len bytes, fewer only at end of file; -1 on error. */
static ssize_t read_full(int fd, void *buf, size_t len)
{
	unsigned char *p = buf;
	size_t done = 0;
	ssize_t n;

	while (done < len) {
		n = read(fd, p + done, len - done);
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

static int parse_u64(const char *s, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (!*s || *s == '-' || *s == '+')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		return -1;
	*out = v;
	return 0;
}

static void hexify(const unsigned char *md, unsigned n, char *hex)
{
	static const char digits[] = "0123456789abcdef";
	unsigned i;

	for (i = 0; i < n; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 15];
	}
	hex[2 * n] = '\0';
}

/* Sizes of acknowledged files: many small, some across 1 MiB boundaries. */
static uint64_t pick_size(struct rng *r)
{
	uint64_t p = rng_below(r, 100), n;

	if (p < 5)
		return 0;
	if (p < 40)
		return 1 + rng_below(r, 4 * KiB);
	if (p < 60)
		return 4 * KiB + rng_below(r, 252 * KiB);
	if (p < 75)
		return 256 * KiB + rng_below(r, 768 * KiB);
	if (p < 85) {
		n = (1 + rng_below(r, 2)) * MiB + rng_below(r, 129);
		return n - 64;
	}
	return MiB + rng_below(r, 2 * MiB + 1);
}

/* Churn payload lengths: small, medium, and some over 1 MiB. */
static uint64_t pick_churn_len(struct rng *r)
{
	uint64_t p = rng_below(r, 100);

	if (p < 40)
		return rng_below(r, 16 * KiB);
	if (p < 70)
		return rng_below(r, 512 * KiB);
	if (p < 80)
		return MiB - 64 + rng_below(r, 129);
	return rng_below(r, CHURN_MAX + 1);
}

static int open_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY);

	if (fd < 0)
		fprintf(stderr, "crashwriter: cannot open directory %s: %s\n",
			dir, strerror(errno));
	return fd;
}

/* Writes one acknowledged file and returns its SHA-256 in hex. */
static int write_one(int dfd, const char *dir, const char *name,
		     uint64_t size, struct rng *r, unsigned char *buf,
		     char hex[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	uint64_t left = size;
	size_t n;
	int fd = -1, rc = -1;

	if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
		fprintf(stderr, "crashwriter: cannot set up sha256\n");
		goto out;
	}
	fd = openat(dfd, name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0) {
		fprintf(stderr, "crashwriter: cannot create %s/%s: %s\n", dir,
			name, strerror(errno));
		goto out;
	}
	while (left) {
		n = (size_t)(left < CHUNK ? left : CHUNK);
		rng_fill(r, buf, n);
		EVP_DigestUpdate(ctx, buf, n);
		if (write_full(fd, buf, n) < 0) {
			fprintf(stderr, "crashwriter: write %s/%s: %s\n", dir,
				name, strerror(errno));
			goto out;
		}
		left -= n;
	}
	if (fsync(fd) < 0) {
		fprintf(stderr, "crashwriter: fsync %s/%s: %s\n", dir, name,
			strerror(errno));
		goto out;
	}
	if (close(fd) < 0) {
		fd = -1;
		fprintf(stderr, "crashwriter: close %s/%s: %s\n", dir, name,
			strerror(errno));
		goto out;
	}
	fd = -1;
	EVP_DigestFinal_ex(ctx, md, &mdlen);
	hexify(md, mdlen, hex);
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	EVP_MD_CTX_free(ctx);
	return rc;
}

static int cmd_write(const char *dir, uint64_t count, uint64_t seed)
{
	char name[NAME_MAX_LEN], line[LINE_MAX_LEN], hex[65];
	unsigned char *buf = malloc(CHUNK);
	int dfd = -1, mfd = -1, rc = 1, len;
	struct rng r;
	uint64_t i, size;

	if (!buf) {
		fprintf(stderr, "crashwriter: out of memory\n");
		goto out;
	}
	dfd = open_dir(dir);
	if (dfd < 0)
		goto out;
	mfd = openat(dfd, MANIFEST, O_WRONLY | O_CREAT | O_EXCL | O_APPEND,
		     0644);
	if (mfd < 0) {
		fprintf(stderr, "crashwriter: cannot create %s/%s: %s%s\n",
			dir, MANIFEST, strerror(errno),
			errno == EEXIST ? " (use an empty directory)" : "");
		goto out;
	}
	if (fsync(mfd) < 0 || fsync(dfd) < 0) {
		fprintf(stderr, "crashwriter: fsync %s/%s: %s\n", dir,
			MANIFEST, strerror(errno));
		goto out;
	}
	for (i = 0; i < count; i++) {
		snprintf(name, sizeof(name), "f%05" PRIu64, i);
		rng_seed(&r, seed, i, 1);
		size = pick_size(&r);
		if (write_one(dfd, dir, name, size, &r, buf, hex))
			goto out;
		if (fsync(dfd) < 0) {
			fprintf(stderr, "crashwriter: fsync %s: %s\n", dir,
				strerror(errno));
			goto out;
		}
		len = snprintf(line, sizeof(line), "%s %" PRIu64 " %s\n",
			       name, size, hex);
		if (write_full(mfd, line, (size_t)len) < 0 || fsync(mfd) < 0) {
			fprintf(stderr, "crashwriter: append to %s/%s: %s\n",
				dir, MANIFEST, strerror(errno));
			goto out;
		}
		fputs(line, stdout);
		fflush(stdout);
	}
	rc = 0;
out:
	if (mfd >= 0)
		close(mfd);
	if (dfd >= 0)
		close(dfd);
	free(buf);
	return rc;
}

static int churn_header(char *hdr, uint64_t seed, const char *name,
			uint64_t version, uint64_t len)
{
	return snprintf(hdr, HDR_MAX, "lakefs-churn %" PRIu64 " %s %" PRIu64
			" %" PRIu64 "\n", seed, name, version, len);
}

static int cmd_churn(const char *dir, uint64_t seed, uint64_t maxwrites)
{
	uint64_t version[CHURN_FILES] = { 0 }, w, len, left;
	unsigned char *buf = malloc(CHUNK + HDR_MAX);
	char name[NAME_MAX_LEN];
	struct rng pick, data;
	unsigned idx;
	int dfd, fd = -1, rc = 1, hlen;
	size_t n, off;

	dfd = open_dir(dir);
	if (!buf || dfd < 0)
		goto out;
	printf("# churn: %s seed %" PRIu64 ", %d files, up to %" PRIu64
	       " writes\n", dir, seed, CHURN_FILES, maxwrites);
	fflush(stdout);
	rng_seed(&pick, seed, 0, 2);
	for (w = 0; w < maxwrites; w++) {
		idx = (unsigned)rng_below(&pick, CHURN_FILES);
		len = pick_churn_len(&pick);
		snprintf(name, sizeof(name), "c%05u", idx);
		rng_seed(&data, seed, idx, ++version[idx]);
		hlen = churn_header((char *)buf, seed, name, version[idx], len);

		fd = openat(dfd, name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0) {
			fprintf(stderr, "crashwriter: cannot create %s/%s: %s\n",
				dir, name, strerror(errno));
			goto out;
		}
		off = (size_t)hlen;
		for (left = len; left || off; left -= n) {
			n = (size_t)(left < CHUNK ? left : CHUNK);
			rng_fill(&data, buf + off, n);
			if (write_full(fd, buf, off + n) < 0) {
				fprintf(stderr, "crashwriter: write %s/%s: %s\n",
					dir, name, strerror(errno));
				goto out;
			}
			off = 0;
		}
		if (close(fd) < 0) {
			fd = -1;
			fprintf(stderr, "crashwriter: close %s/%s: %s\n", dir,
				name, strerror(errno));
			goto out;
		}
		fd = -1;
	}
	printf("# churn: %" PRIu64 " writes done\n", w);
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	if (dfd >= 0)
		close(dfd);
	free(buf);
	return rc;
}

struct verify {
	const char *dir;
	int dfd;
	unsigned char *buf, *want;
	uint64_t acked, churned, empty, partial, failures;
	uint64_t maxpartial;
};

__attribute__((format(printf, 2, 3)))
static void vfail(struct verify *v, const char *fmt, ...)
{
	va_list ap;

	printf("# FAIL: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	v->failures++;
}

static int valid_name(const char *s)
{
	return *s && strlen(s) < NAME_MAX_LEN && !strchr(s, '/') &&
	       strcmp(s, ".") && strcmp(s, "..");
}

static int is_hex64(const char *s)
{
	size_t i;

	for (i = 0; i < 64; i++) {
		if (!(s[i] >= '0' && s[i] <= '9') &&
		    !(s[i] >= 'a' && s[i] <= 'f'))
			return 0;
	}
	return s[64] == '\0';
}

/* Checks one manifest line, already stripped of its '\n'. */
static void verify_acked(struct verify *v, const char *line,
			 uint64_t lineno)
{
	char *name, *size_s, *hex, *save = NULL, got[65];
	char copy[LINE_MAX_LEN], again[LINE_MAX_LEN];
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	EVP_MD_CTX *ctx = NULL;
	uint64_t size, total = 0;
	struct stat st;
	ssize_t n;
	int fd = -1;

	snprintf(copy, sizeof(copy), "%s", line);
	name = strtok_r(copy, " ", &save);
	size_s = strtok_r(NULL, " ", &save);
	hex = strtok_r(NULL, " ", &save);
	if (!name || !size_s || !hex || strtok_r(NULL, " ", &save) ||
	    !valid_name(name) || parse_u64(size_s, &size) || !is_hex64(hex) ||
	    snprintf(again, sizeof(again), "%s %" PRIu64 " %s", name, size,
		     hex) < 0 || strcmp(again, line)) {
		vfail(v, "%s/%s line %" PRIu64 " is malformed", v->dir,
		      MANIFEST, lineno);
		return;
	}
	v->acked++;
	fd = openat(v->dfd, name, O_RDONLY);
	if (fd < 0) {
		vfail(v, "%s/%s: acknowledged, but cannot open it: %s", v->dir,
		      name, strerror(errno));
		return;
	}
	if (fstat(fd, &st) < 0) {
		vfail(v, "%s/%s: fstat: %s", v->dir, name, strerror(errno));
		goto out;
	}
	if ((uint64_t)st.st_size != size) {
		vfail(v, "%s/%s: acknowledged with size %" PRIu64
		      ", st_size is %jd", v->dir, name, size,
		      (intmax_t)st.st_size);
		goto out;
	}
	ctx = EVP_MD_CTX_new();
	if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
		vfail(v, "cannot set up sha256");
		goto out;
	}
	while ((n = read_full(fd, v->buf, CHUNK)) > 0) {
		EVP_DigestUpdate(ctx, v->buf, (size_t)n);
		total += (uint64_t)n;
	}
	if (n < 0) {
		vfail(v, "%s/%s: read: %s", v->dir, name, strerror(errno));
		goto out;
	}
	if (total != size) {
		vfail(v, "%s/%s: acknowledged with size %" PRIu64 ", read %"
		      PRIu64 " bytes", v->dir, name, size, total);
		goto out;
	}
	EVP_DigestFinal_ex(ctx, md, &mdlen);
	hexify(md, mdlen, got);
	if (strcmp(got, hex))
		vfail(v, "%s/%s: sha256 is %s, acknowledged as %s", v->dir,
		      name, got, hex);
out:
	EVP_MD_CTX_free(ctx);
	close(fd);
}

/* Reads the manifest; a last line without '\n' is a cut append. */
static void verify_manifest(struct verify *v)
{
	char line[LINE_MAX_LEN];
	uint64_t lineno = 0;
	size_t len = 0;
	FILE *fp;
	int fd, c;

	fd = openat(v->dfd, MANIFEST, O_RDONLY);
	if (fd < 0) {
		if (errno == ENOENT)
			printf("# no %s/%s: no acknowledged files to check\n",
			       v->dir, MANIFEST);
		else
			vfail(v, "cannot open %s/%s: %s", v->dir, MANIFEST,
			      strerror(errno));
		return;
	}
	fp = fdopen(fd, "r");
	if (!fp) {
		vfail(v, "cannot read %s/%s: %s", v->dir, MANIFEST,
		      strerror(errno));
		close(fd);
		return;
	}
	while ((c = getc(fp)) != EOF) {
		if (c != '\n') {
			if (len + 1 >= sizeof(line)) {
				vfail(v, "%s/%s line %" PRIu64 " is longer "
				      "than %d bytes", v->dir, MANIFEST,
				      lineno + 1, LINE_MAX_LEN);
				goto out;
			}
			line[len++] = (char)c;
			continue;
		}
		line[len] = '\0';
		lineno++;
		if (strlen(line) != len)
			vfail(v, "%s/%s line %" PRIu64 " holds a NUL byte",
			      v->dir, MANIFEST, lineno);
		else
			verify_acked(v, line, lineno);
		len = 0;
	}
	if (ferror(fp))
		vfail(v, "read %s/%s: %s", v->dir, MANIFEST, strerror(errno));
	else if (len)
		printf("# %s/%s ends in a partial line of %zu bytes (a cut "
		       "append): ignored\n", v->dir, MANIFEST, len);
out:
	fclose(fp);
}

static int is_churn_name(const char *s)
{
	if (*s++ != 'c' || !*s)
		return 0;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return 0;
	return 1;
}

/* Could these n bytes, with no '\n', start some header of this file? */
static int header_prefix(const unsigned char *b, size_t n, const char *name)
{
	static const char lead[] = "lakefs-churn ";
	size_t i;

	for (i = 0; i < n; i++) {
		if (i < sizeof(lead) - 1) {
			if (b[i] != (unsigned char)lead[i])
				return 0;
		} else if (!(b[i] == ' ' || (b[i] >= '0' && b[i] <= '9') ||
			     b[i] == (unsigned char)name[0])) {
			return 0;
		}
	}
	return 1;
}

/* Parses "lakefs-churn SEED NAME VERSION LEN\n" and checks it is canonical. */
static int parse_header(const unsigned char *b, size_t hlen, const char *name,
			uint64_t *seed, uint64_t *version, uint64_t *len)
{
	char text[HDR_MAX], hname[NAME_MAX_LEN], again[HDR_MAX];
	unsigned long long s, ver, l;

	memcpy(text, b, hlen);
	text[hlen] = '\0';
	if (sscanf(text, "lakefs-churn %llu %63s %llu %llu\n", &s, hname, &ver,
		   &l) != 4)
		return -1;
	if (strcmp(hname, name) || l > CHURN_MAX || !ver)
		return -1;
	if ((size_t)churn_header(again, s, hname, ver, l) != hlen ||
	    memcmp(again, text, hlen))
		return -1;
	*seed = s;
	*version = ver;
	*len = l;
	return 0;
}

static void verify_churn_file(struct verify *v, const char *name)
{
	uint64_t seed, version, len, left, idx;
	const unsigned char *nl;
	struct stat st;
	struct rng data;
	size_t hlen, n, i;
	ssize_t got;
	int fd;

	fd = openat(v->dfd, name, O_RDONLY);
	if (fd < 0) {
		vfail(v, "%s/%s: cannot open: %s", v->dir, name,
		      strerror(errno));
		return;
	}
	v->churned++;
	if (fstat(fd, &st) < 0) {
		vfail(v, "%s/%s: fstat: %s", v->dir, name, strerror(errno));
		goto out;
	}
	if (st.st_size == 0) {
		printf("# %s/%s: empty (created or truncated, not yet "
		       "written)\n", v->dir, name);
		v->empty++;
		goto out;
	}
	got = read_full(fd, v->buf, HDR_MAX);
	if (got < 0) {
		vfail(v, "%s/%s: read: %s", v->dir, name, strerror(errno));
		goto out;
	}
	nl = memchr(v->buf, '\n', (size_t)got);
	if (!nl) {
		if ((size_t)got == (uint64_t)st.st_size && got < HDR_MAX &&
		    header_prefix(v->buf, (size_t)got, name))
			goto partial;
		vfail(v, "%s/%s: no churn header: garbage", v->dir, name);
		goto out;
	}
	hlen = (size_t)(nl - v->buf) + 1;
	if (parse_header(v->buf, hlen, name, &seed, &version, &len)) {
		vfail(v, "%s/%s: bad churn header: garbage or torn", v->dir,
		      name);
		goto out;
	}
	if ((uint64_t)st.st_size > hlen + len) {
		vfail(v, "%s/%s: %jd bytes, but version %" PRIu64 " has %"
		      PRIu64 ": torn (a longer version's tail?)", v->dir, name,
		      (intmax_t)st.st_size, version, hlen + len);
		goto out;
	}
	idx = strtoull(name + 1, NULL, 10);
	rng_seed(&data, seed, idx, version);
	if (lseek(fd, (off_t)hlen, SEEK_SET) < 0) {
		vfail(v, "%s/%s: lseek: %s", v->dir, name, strerror(errno));
		goto out;
	}
	for (left = len; left; left -= n) {
		n = (size_t)(left < CHUNK ? left : CHUNK);
		rng_fill(&data, v->want, n);
		got = read_full(fd, v->buf, n);
		if (got < 0) {
			vfail(v, "%s/%s: read: %s", v->dir, name,
			      strerror(errno));
			goto out;
		}
		if (memcmp(v->buf, v->want, (size_t)got)) {
			for (i = 0; v->buf[i] == v->want[i]; i++)
				;
			vfail(v, "%s/%s: content differs from version %" PRIu64
			      " at offset %" PRIu64 ": garbage or torn", v->dir,
			      name, version, hlen + len - left + i);
			goto out;
		}
		if ((size_t)got < n)
			goto partial;
	}
	if (read_full(fd, v->buf, 1) != 0) {
		vfail(v, "%s/%s: grew while being checked", v->dir, name);
		goto out;
	}
	goto out;
partial:
	printf("# %s/%s: %jd bytes, a prefix of one version (the write in "
	       "progress)\n", v->dir, name, (intmax_t)st.st_size);
	if (++v->partial > v->maxpartial)
		vfail(v, "%s/%s: %" PRIu64 " files are cut short, at most %"
		      PRIu64 " may be", v->dir, name, v->partial,
		      v->maxpartial);
out:
	close(fd);
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Checks the churn files in name order, so reports are stable. */
static void verify_churn(struct verify *v)
{
	char **names = NULL, **grown;
	size_t n = 0, cap = 0, i;
	struct dirent *de;
	DIR *d;
	int fd;

	fd = dup(v->dfd);
	d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		vfail(v, "cannot list %s: %s", v->dir, strerror(errno));
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((de = readdir(d))) {
		if (!is_churn_name(de->d_name))
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			grown = realloc(names, cap * sizeof(*names));
			if (!grown)
				goto oom;
			names = grown;
		}
		names[n] = strdup(de->d_name);
		if (!names[n])
			goto oom;
		n++;
	}
	if (n)
		qsort(names, n, sizeof(*names), name_cmp);
	for (i = 0; i < n; i++)
		verify_churn_file(v, names[i]);
	goto out;
oom:
	vfail(v, "out of memory listing %s", v->dir);
out:
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	closedir(d);
}

static int cmd_verify(const char *dir, uint64_t maxpartial)
{
	struct verify v = { .dir = dir, .maxpartial = maxpartial };

	v.buf = malloc(CHUNK);
	v.want = malloc(CHUNK);
	if (!v.buf || !v.want) {
		printf("# FAIL: out of memory\n");
		free(v.buf);
		free(v.want);
		return 1;
	}
	v.dfd = open(dir, O_RDONLY | O_DIRECTORY);
	if (v.dfd < 0) {
		vfail(&v, "cannot open directory %s: %s", dir,
		      strerror(errno));
		goto out;
	}
	verify_manifest(&v);
	verify_churn(&v);
	close(v.dfd);
	printf("# verified %" PRIu64 " acknowledged files, %" PRIu64
	       " churn files (%" PRIu64 " empty, %" PRIu64 " cut short)\n",
	       v.acked, v.churned, v.empty, v.partial);
out:
	if (v.failures)
		printf("# %" PRIu64 " failures in %s\n", v.failures, dir);
	fflush(stdout);
	free(v.buf);
	free(v.want);
	return v.failures ? 1 : 0;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: crashwriter write DIR COUNT SEED\n"
		"       crashwriter churn DIR SEED [MAXWRITES]\n"
		"       crashwriter verify DIR [MAXPARTIAL]\n");
}

int main(int argc, char **argv)
{
	uint64_t a, b = CHURN_WRITES;

	if (argc == 5 && !strcmp(argv[1], "write") &&
	    !parse_u64(argv[3], &a) && !parse_u64(argv[4], &b))
		return cmd_write(argv[2], a, b);
	if ((argc == 4 || argc == 5) && !strcmp(argv[1], "churn") &&
	    !parse_u64(argv[3], &a) && (argc == 4 || !parse_u64(argv[4], &b)))
		return cmd_churn(argv[2], a, b);
	b = 1;
	if ((argc == 3 || argc == 4) && !strcmp(argv[1], "verify") &&
	    (argc == 3 || !parse_u64(argv[3], &b)))
		return cmd_verify(argv[2], b);
	usage();
	return 2;
}
