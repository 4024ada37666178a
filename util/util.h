/* util/util.h — small helpers shared by every layer. */
#ifndef LAKEFS_UTIL_UTIL_H
#define LAKEFS_UTIL_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* Big-endian fixed-width encoding (keys sort by these numbers). */
void put_be64(unsigned char *p, uint64_t v);
uint64_t get_be64(const unsigned char *p);
void put_be32(unsigned char *p, uint32_t v);
uint32_t get_be32(const unsigned char *p);

/* Monotonic and wall-clock time. */
uint64_t mono_ns(void);
struct timespec now_ts(void);

/* Lowercase hex of n bytes into out (2n+1 bytes, NUL-terminated). */
void hex_encode(const unsigned char *in, size_t n, char *out);
/* Parse 2n hex digits; 0 on success, -EINVAL otherwise. */
int hex_decode(const char *in, unsigned char *out, size_t n);

/* Allocation that aborts on failure only where a caller cannot recover
 * (start-up); elsewhere use malloc and check. */
void *xcalloc(size_t n, size_t size);

/* Parse "64K", "1M", "2G" (binary units) into bytes; -EINVAL if bad. */
int parse_size(const char *s, uint64_t *out);

/* mkdir -p with mode; 0 or -errno. */
int mkdir_p(const char *path, unsigned mode);

/* write/read all bytes, retrying on EINTR and short counts; 0 or -errno. */
int write_all(int fd, const void *buf, size_t n);
int pwrite_all(int fd, const void *buf, size_t n, uint64_t off);
/* Read exactly n bytes at off: 0, -errno, or -EIO when the file ends first. */
int pread_all(int fd, void *buf, size_t n, uint64_t off);

/* The CLOCK_REALTIME time ns from now, for pthread_cond_timedwait(). */
struct timespec realtime_after(uint64_t ns);

/*
 * A growing byte buffer. A failed allocation is sticky (failed), so a
 * writer checks once at the end; the bytes are always NUL-terminated.
 */
struct gbuf {
	unsigned char *p;
	size_t n, cap;
	int failed;
};
void gbuf_add(struct gbuf *b, const void *d, size_t n);
void gbuf_printf(struct gbuf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Append d wrapped in the quote character q, each q inside doubled: a
 * quoted CSV field, an SQL identifier ('"') or string ('\''). */
void gbuf_add_quoted(struct gbuf *b, char q, const void *d, size_t n);

/*
 * UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing above
 * U+10FFFF): the offset of the first byte that does not belong to a valid
 * sequence, or n when all n bytes are valid. A sequence cut by the end of
 * the buffer is invalid.
 */
size_t utf8_invalid_at(const void *p, size_t n);

/*
 * Does the start of a text file look like binary data? p..n is the start
 * (more: the file goes on after it, so a sequence cut at the end is not
 * counted). Binary is: a UTF-16 or UTF-32 byte-order mark, or control bytes
 * (other than tab, CR, LF, FF) counted twice plus bytes of invalid UTF-8
 * making more than a quarter of the bytes. Returns 1 with the reason in why
 * (lowercase, no trailing dot), else 0. Never reads past p + n.
 */
int text_looks_binary(const unsigned char *p, size_t n, int more, char *why,
		      size_t whylen);

/* Move what fits of the input (*d, *n) into a fixed sample buffer of cap
 * bytes holding *slen; 1 once the sample is full (the parsers look at the
 * start of a file before they parse it). */
int sample_fill(unsigned char *sample, size_t *slen, size_t cap,
		const unsigned char **d, size_t *n);

/* Grow *pp, an array of *cap elements of sz bytes, to hold need, doubling
 * but at most max (unless need is more); *mem counts the bytes added.
 * 0 or -ENOMEM (the array is left as it was). */
int grow_array(void **pp, size_t *cap, size_t need, size_t sz, size_t max,
	       size_t *mem);

/* fsync a directory by path; 0 or -errno. */
int fsync_dir(const char *path);

#endif
