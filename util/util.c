/*
 * util/util.c — encoding, time, sizes and file helpers with no state.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/util.h"

void put_be64(unsigned char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)v;
}

uint64_t get_be64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

void put_be32(unsigned char *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)v;
}

uint32_t get_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct timespec now_ts(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts;
}

void hex_encode(const unsigned char *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int hex_decode(const char *in, unsigned char *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int hi = hexval((unsigned char)in[2 * i]);
		int lo = hi < 0 ? -1 : hexval((unsigned char)in[2 * i + 1]);

		if (lo < 0)
			return -EINVAL;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n, size);

	if (!p) {
		fprintf(stderr, "lakefs: out of memory\n");
		abort();
	}
	return p;
}

int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	int shift = 0;

	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	switch (*end) {
	case '\0': break;
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	default: return -EINVAL;
	}
	if (shift && end[0] == 'i' && end[1] == 'B')
		end += 2;
	else if (shift && end[0] == 'B')
		end++;
	if (*end)
		return -EINVAL;
	if (shift && v > (UINT64_MAX >> shift))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

int mkdir_p(const char *path, unsigned mode)
{
	char buf[4096];
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1; ; p++) {
		if (*p == '/' || *p == '\0') {
			char c = *p;

			*p = '\0';
			if (mkdir(buf, mode) < 0) {
				struct stat st;

				if (errno != EEXIST)
					return -errno;
				if (stat(buf, &st) < 0)
					return -errno;
				if (!S_ISDIR(st.st_mode))
					return -ENOTDIR;
			}
			if (c == '\0')
				break;
			*p = c;
		}
	}
	return 0;
}

/* Write all n bytes at off, or at the file position when off < 0. */
static int write_loop(int fd, const void *buf, size_t n, int64_t off)
{
	const char *p = buf;

	while (n > 0) {
		ssize_t w = off < 0 ? write(fd, p, n) : pwrite(fd, p, n, (off_t)off);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
		if (off >= 0)
			off += w;
	}
	return 0;
}

int write_all(int fd, const void *buf, size_t n)
{
	return write_loop(fd, buf, n, -1);
}

int pwrite_all(int fd, const void *buf, size_t n, uint64_t off)
{
	return write_loop(fd, buf, n, (int64_t)off);
}

int pread_all(int fd, void *buf, size_t n, uint64_t off)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = pread(fd, (char *)buf + got, n - got, (off_t)(off + got));

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -EIO;
		got += (size_t)r;
	}
	return 0;
}

int fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int ret = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

struct timespec realtime_after(uint64_t ns)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)(ns / 1000000000ull);
	ts.tv_nsec += (long)(ns % 1000000000ull);
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

void gbuf_add(struct gbuf *b, const void *d, size_t n)
{
	if (b->failed)
		return;
	if (b->n + n + 1 > b->cap) {
		size_t cap = MAX(b->cap * 2, b->n + n + 4096);
		unsigned char *p = realloc(b->p, cap);

		if (!p) {
			b->failed = 1;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	if (n)
		memcpy(b->p + b->n, d, n);
	b->n += n;
	b->p[b->n] = '\0';	/* text stays a C string */
}

void gbuf_add_quoted(struct gbuf *b, char q, const void *d, size_t n)
{
	const char *p = d;
	size_t run = 0;

	gbuf_add(b, &q, 1);
	for (size_t i = 0; i < n; i++) {
		if (p[i] != q)
			continue;
		gbuf_add(b, p + run, i + 1 - run);
		gbuf_add(b, &q, 1);
		run = i + 1;
	}
	gbuf_add(b, p + run, n - run);
	gbuf_add(b, &q, 1);
}

void gbuf_printf(struct gbuf *b, const char *fmt, ...)
{
	char small[512], *big = NULL;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->failed = 1;
		return;
	}
	if ((size_t)n < sizeof(small)) {
		gbuf_add(b, small, (size_t)n);
		return;
	}
	va_start(ap, fmt);
	n = vasprintf(&big, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->failed = 1;
		return;
	}
	gbuf_add(b, big, (size_t)n);
	free(big);
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0 when it is invalid
 * or cut by the end at n. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
	unsigned char c = p[0];
	size_t len;
	unsigned char lo = 0x80, hi = 0xbf;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		if (c == 0xe0)
			lo = 0xa0;	/* no overlong forms */
		else if (c == 0xed)
			hi = 0x9f;	/* no surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;	/* nothing above U+10FFFF */
	} else
		return 0;
	if (n < len)
		return 0;
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	return len;
}

size_t utf8_invalid_at(const void *v, size_t n)
{
	const unsigned char *p = v;
	size_t i = 0;

	while (i < n) {
		size_t k;

		/* ASCII runs, eight bytes at a time */
		while (i + 8 <= n) {
			uint64_t w;

			memcpy(&w, p + i, 8);
			if (w & 0x8080808080808080ull)
				break;
			i += 8;
		}
		if (i >= n)
			break;
		k = utf8_seq(p + i, n - i);
		if (!k)
			return i;
		i += k;
	}
	return n;
}

int text_looks_binary(const unsigned char *p, size_t n, int more, char *why,
		      size_t whylen)
{
	size_t ctl = 0, bad = 0, i = 0;

	if (n >= 2 && ((p[0] == 0xff && p[1] == 0xfe) || (p[0] == 0xfe && p[1] == 0xff))) {
		snprintf(why, whylen, "UTF-16 or UTF-32 text (byte-order mark %02x %02x): "
			 "convert it to UTF-8", p[0], p[1]);
		return 1;
	}
	if (n >= 4 && p[0] == 0 && p[1] == 0 && p[2] == 0xfe && p[3] == 0xff) {
		snprintf(why, whylen, "UTF-32 text (byte-order mark): convert it to UTF-8");
		return 1;
	}
	while (i < n) {
		unsigned char c = p[i];
		size_t k;

		if (c < 0x80) {
			if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f') ||
			    c == 0x7f)
				ctl++;
			i++;
			continue;
		}
		k = utf8_seq(p + i, n - i);
		if (!k) {
			if (more && n - i < 4 && c >= 0xc2 && c <= 0xf4)
				break;	/* cut by the end of the sample */
			bad++;
			k = 1;
		}
		i += k;
	}
	if (n && (ctl * 2 + bad) * 4 > n) {
		snprintf(why, whylen, "binary data: %zu control bytes and %zu bytes of "
			 "invalid UTF-8 in the first %zu bytes", ctl, bad, n);
		return 1;
	}
	return 0;
}

int sample_fill(unsigned char *sample, size_t *slen, size_t cap,
		const unsigned char **d, size_t *n)
{
	size_t k = MIN(*n, cap - *slen);

	if (k)
		memcpy(sample + *slen, *d, k);
	*slen += k;
	*d += k;
	*n -= k;
	return *slen >= cap;
}

int grow_array(void **pp, size_t *cap, size_t need, size_t sz, size_t max,
	       size_t *mem)
{
	size_t ncap = MAX(*cap * 2, need);
	void *np;

	if (need <= *cap)
		return 0;
	ncap = MIN(ncap, max);
	if (ncap < need)
		ncap = need;
	np = realloc(*pp, ncap * sz);
	if (!np)
		return -ENOMEM;
	if (mem)
		*mem += (ncap - *cap) * sz;
	*pp = np;
	*cap = ncap;
	return 0;
}
