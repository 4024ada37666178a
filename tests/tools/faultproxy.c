/*
 * tests/tools/faultproxy.c — a fault-injecting HTTP/1.1 reverse proxy for
 * the tests of lakefs's S3 client.
 *
 *   faultproxy --upstream HOST:PORT [--listen PORT] [--seed N]
 *              [--p503 P] [--preset P] [--pdelay P] [--delay-ms MS]
 *              [--pstall P] [--stall-ms MS] [--port-file FILE] [--log FILE]
 *
 * It listens on 127.0.0.1 only (--listen 0, the default, picks a free port;
 * --port-file receives it, written to FILE.tmp.PID and renamed, so a script
 * can wait for the file), reads HTTP/1.1 requests from each client
 * connection one after the other (keep-alive, pipelining) and decides for
 * each, once its head has been read, one of:
 *
 *	503		answer "503 Service Unavailable" with S3's SlowDown XML
 *			error, after reading the request body; a request that
 *			asked for "Expect: 100-continue" has sent no body, so it
 *			gets the 503 at once and the connection is closed, as S3
 *			does
 *	reset		reset the connection (SO_LINGER 0, close) before
 *			forwarding anything
 *	reset-midbody	forward the request and reset the connection part way
 *			through relaying the response: inside its body, or
 *			inside its head when it has no body; a chunked response
 *			never gets its last chunk through
 *	delay		sleep --delay-ms, then forward
 *	stall		answer nothing; hold the connection until the client
 *			closes it or --stall-ms (5 minutes) has passed
 *	forward		relay the request to the upstream and its response back
 *
 * with probabilities --p503, --preset (split evenly between the two kinds
 * of reset), --pdelay and --pstall, which must add up to at most 1; the
 * rest is forwarded. Each outcome is counted once, so the counters of the
 * summary add up to its request count (delayed requests are forwarded but
 * counted as delays). The decisions come from a PRNG seeded with (--seed,
 * connection number): a client that opens its connections one after the
 * other gets the same decisions on every run with the same seed. The seed
 * is printed on start; without --seed it comes from the clock.
 *
 * Relaying: the request head goes upstream as read, less an Expect header,
 * which the proxy answers itself ("100 Continue" once the upstream
 * connection stands). Request bodies by Content-Length or chunked are
 * streamed through (chunked stays chunked). Response heads go back as
 * read, interim 1xx ones included; bodies by Content-Length, chunked or
 * until the upstream closes, none for HEAD, 1xx, 204 and 304. Each client
 * connection has its own upstream connection, kept while both sides keep
 * alive and opened afresh (5 s connect timeout) when it has gone.
 *
 * Limits: heads of at most HEAD_MAX bytes, lines of at most LINE_MAX_LEN;
 * bodies stream through fixed buffers, so memory per connection is fixed
 * (about 130 KiB); at most CONN_MAX connections are served at once, the
 * next wait in the listen queue. Malformed requests get 400 and a close;
 * a failed upstream gets 502 and a close, or a plain close once part of
 * the response has gone to the client. Not supported: 101 Switching
 * Protocols (answered with 502), CONNECT, HTTP/0.9, TLS.
 *
 * Threads: the main thread waits for signals (SIGTERM, SIGINT: print the
 * summary and exit 0; SIGUSR1: print it), one thread accepts, one thread
 * per client connection. Connection threads share only the counters
 * (under stats_lock) and the log, written with one write(2) per line to an
 * O_APPEND file. SIGPIPE is ignored and every send uses MSG_NOSIGNAL.
 *
 * Exit status: 0 after SIGTERM or SIGINT, 1 when the listening socket or
 * the port file cannot be set up, 2 for a usage error.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stddef.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define KiB		1024
#define RBUF_SIZE	(32 * KiB)	/* read buffer per socket */
#define HEAD_MAX	(32 * KiB)	/* largest request or response head */
#define LINE_MAX_LEN	(8 * KiB)	/* longest line of a head or chunk size */
#define LOG_TARGET_MAX	512		/* request targets are cut there in the log */
#define CONN_MAX	256
#define CONNECT_MS	5000		/* upstream connect timeout */
#define UP_RECV_S	120		/* upstream silence that fails a response */
#define CLIENT_IDLE_S	300		/* client silence that closes a connection */
#define SEND_S		60		/* a peer that does not read for that long is gone */
#define LINGER_MS	2000		/* draining a client after an error answer */
#define MIDBODY_SPAN	(64 * KiB)	/* cut range for bodies of unknown length */
#define CUT		1		/* a sink's budget ran out */

static const char slowdown_body[] =
	"<Error><Code>SlowDown</Code>"
	"<Message>Please reduce your request rate.</Message></Error>";

/* ---- options and shared state ------------------------------------------ */

struct config {
	struct sockaddr_in upstream;
	uint64_t seed;
	double p503, preset, pdelay, pstall;
	unsigned delay_ms, stall_ms;
	int log_fd;			/* -1: no log */
};

static struct config cfg = {
	.delay_ms = 2000,
	.stall_ms = 300 * 1000,
	.log_fd = -1,
};

enum outcome { O_FORWARD, O_503, O_RESET, O_RESET_MID, O_DELAY, O_STALL };

static const char *const outcome_name[] = {
	[O_FORWARD] = "forward", [O_503] = "503", [O_RESET] = "reset",
	[O_RESET_MID] = "reset-midbody", [O_DELAY] = "delay", [O_STALL] = "stall",
};

/* stats_lock protects stats, so a summary never sees a request half counted. */
static pthread_mutex_t stats_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	uint64_t requests, forwarded, e503, resets, delays, stalls;
} stats;

static sem_t conn_slots;	/* free connection slots, CONN_MAX at start */
static int listen_fd = -1;

/* ---- PRNG (xorshift64*, seeded by splitmix64, as crashwriter) ---------- */

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

static void rng_seed(struct rng *r, uint64_t a, uint64_t b)
{
	uint64_t x = a;

	x = splitmix64(&x) ^ b;
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

/* A uniform double in [0, 1). */
static double rng_unit(struct rng *r)
{
	return (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* ---- sockets ------------------------------------------------------------ */

static int send_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	ssize_t n;

	while (len) {
		n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void set_timeouts(int fd, int recv_s, int send_s)
{
	struct timeval rt = { .tv_sec = recv_s }, st = { .tv_sec = send_s };
	int one = 1;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &rt, sizeof(rt));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &st, sizeof(st));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Closes fd with a TCP reset instead of a FIN. */
static void close_reset(int fd)
{
	struct linger l = { .l_onoff = 1, .l_linger = 0 };

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	close(fd);
}

/*
 * Closes a client connection after an answer that left request bytes
 * unread: shuts down our side, then reads until the client closes or
 * LINGER_MS passes, so the unread bytes do not turn the close into a
 * reset that destroys the answer before the client has read it.
 */
static void close_lingering(int fd)
{
	struct timespec t0, now;
	char junk[4096];
	ssize_t n;
	long left;

	shutdown(fd, SHUT_WR);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		left = LINGER_MS - ((now.tv_sec - t0.tv_sec) * 1000 +
				    (now.tv_nsec - t0.tv_nsec) / 1000000);
		if (left <= 0)
			break;
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		if (poll(&pfd, 1, (int)left) <= 0)
			break;
		n = recv(fd, junk, sizeof(junk), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
			break;
	}
	close(fd);
}

/* Connects to the upstream within CONNECT_MS; returns the socket or -errno. */
static int upstream_connect(void)
{
	struct pollfd pfd;
	socklen_t len = sizeof(int);
	int fd, err = 0, r;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&cfg.upstream, sizeof(cfg.upstream))) {
		if (errno != EINPROGRESS) {
			err = -errno;
			goto fail;
		}
		pfd.fd = fd;
		pfd.events = POLLOUT;
		do
			r = poll(&pfd, 1, CONNECT_MS);
		while (r < 0 && errno == EINTR);
		if (r <= 0) {
			err = r ? -errno : -ETIMEDOUT;
			goto fail;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) || err) {
			err = err ? -err : -errno;
			goto fail;
		}
	}
	if (fcntl(fd, F_SETFL, 0)) {
		err = -errno;
		goto fail;
	}
	set_timeouts(fd, UP_RECV_S, SEND_S);
	return fd;
fail:
	close(fd);
	return err;
}

/* True when a kept upstream connection has been closed or sent unasked bytes. */
static int upstream_stale(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	return poll(&pfd, 1, 0) != 0;
}

/* ---- buffered reading and bounded writing ------------------------------- */

struct rbuf {
	int fd;
	size_t off, len;
	char data[RBUF_SIZE];
};

/* Bytes buffered, reading more when none are; 0 at end of stream, or -errno. */
static ssize_t rb_fill(struct rbuf *b)
{
	ssize_t n;

	if (b->off < b->len)
		return (ssize_t)(b->len - b->off);
	b->off = b->len = 0;
	for (;;) {
		n = recv(b->fd, b->data, sizeof(b->data), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		b->len = (size_t)n;
		return n;
	}
}

/*
 * Reads one line through its '\n' into line (kept, NUL-terminated); *lenp
 * gets its length. Returns 0, -ENODATA at end of stream before any byte,
 * -EPIPE at end of stream inside the line, -EMSGSIZE for a line of cap
 * bytes or more, -EPROTO for a NUL byte, or -errno.
 */
static int rb_line(struct rbuf *b, char *line, size_t cap, size_t *lenp)
{
	size_t n = 0, take;
	ssize_t r;
	char *p, *nl;

	for (;;) {
		r = rb_fill(b);
		if (r < 0)
			return (int)r;
		if (r == 0)
			return n ? -EPIPE : -ENODATA;
		p = b->data + b->off;
		nl = memchr(p, '\n', (size_t)r);
		take = nl ? (size_t)(nl - p) + 1 : (size_t)r;
		if (n + take >= cap)
			return -EMSGSIZE;
		memcpy(line + n, p, take);
		n += take;
		b->off += take;
		if (nl)
			break;
	}
	line[n] = '\0';
	if (strlen(line) != n)
		return -EPROTO;
	*lenp = n;
	return 0;
}

/*
 * Where relayed bytes go: a socket, or nowhere (fd -1). A budget below
 * UINT64_MAX lets that many bytes through and then makes sink_put return
 * CUT; failed says the error came from this side.
 */
struct sink {
	int fd;
	int failed;
	uint64_t budget;
};

static void sink_init(struct sink *s, int fd)
{
	s->fd = fd;
	s->failed = 0;
	s->budget = UINT64_MAX;
}

static int sink_put(struct sink *s, const void *buf, size_t len)
{
	size_t n = len;
	int cut = 0, r;

	if (s->budget < n) {
		n = (size_t)s->budget;
		cut = 1;
	}
	if (s->fd >= 0 && n) {
		r = send_all(s->fd, buf, n);
		if (r) {
			s->failed = 1;
			return r;
		}
	}
	if (s->budget != UINT64_MAX)
		s->budget -= n;
	return cut || (s->budget == 0 && len) ? CUT : 0;
}

/* Moves exactly n bytes from b to s. */
static int rb_copy(struct rbuf *b, uint64_t n, struct sink *s)
{
	ssize_t r;
	size_t take;
	int rc;

	while (n) {
		r = rb_fill(b);
		if (r < 0)
			return (int)r;
		if (r == 0)
			return -EPIPE;
		take = (uint64_t)r < n ? (size_t)r : (size_t)n;
		rc = sink_put(s, b->data + b->off, take);
		b->off += take;
		n -= take;
		if (rc)
			return rc;
	}
	return 0;
}

/* Moves everything up to the end of b's stream to s. */
static int rb_copy_to_eof(struct rbuf *b, struct sink *s)
{
	ssize_t r;
	int rc;

	for (;;) {
		r = rb_fill(b);
		if (r <= 0)
			return (int)r;
		rc = sink_put(s, b->data + b->off, (size_t)r);
		b->off += (size_t)r;
		if (rc)
			return rc;
	}
}

static int is_blank_line(const char *line)
{
	return !strcmp(line, "\r\n") || !strcmp(line, "\n");
}

/* Parses "HEX[;ext]\r\n" (whitespace before ';' allowed). */
static int parse_chunk_size(const char *line, uint64_t *size)
{
	uint64_t v = 0;
	int digits = 0, d;
	const char *p;

	for (p = line; ; p++) {
		if (*p >= '0' && *p <= '9')
			d = *p - '0';
		else if (*p >= 'a' && *p <= 'f')
			d = *p - 'a' + 10;
		else if (*p >= 'A' && *p <= 'F')
			d = *p - 'A' + 10;
		else
			break;
		if (++digits > 15)
			return -1;
		v = v << 4 | (uint64_t)d;
	}
	if (!digits)
		return -1;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p != ';' && !is_blank_line(p))
		return -1;
	*size = v;
	return 0;
}

/*
 * Moves a chunked body, chunk-size lines and trailers included, from b to
 * s. With cut_last the last chunk is not sent: CUT is returned instead.
 */
static int relay_chunked(struct rbuf *b, struct sink *s, int cut_last)
{
	char line[LINE_MAX_LEN];
	uint64_t size;
	size_t len;
	int r;

	for (;;) {
		r = rb_line(b, line, sizeof(line), &len);
		if (r)
			return r == -ENODATA ? -EPIPE : r;
		if (parse_chunk_size(line, &size))
			return -EPROTO;
		if (!size && cut_last)
			return CUT;
		r = sink_put(s, line, len);
		if (r)
			return r;
		if (!size)
			break;
		r = rb_copy(b, size, s);
		if (r)
			return r;
		r = rb_line(b, line, sizeof(line), &len);
		if (r)
			return r == -ENODATA ? -EPIPE : r;
		if (!is_blank_line(line))
			return -EPROTO;
		r = sink_put(s, line, len);
		if (r)
			return r;
	}
	for (;;) {	/* trailer section, up to its empty line */
		r = rb_line(b, line, sizeof(line), &len);
		if (r)
			return r == -ENODATA ? -EPIPE : r;
		r = sink_put(s, line, len);
		if (r || is_blank_line(line))
			return r;
	}
}

/* ---- message heads ------------------------------------------------------ */

enum body_kind { BODY_NONE, BODY_LENGTH, BODY_CHUNKED, BODY_EOF };

/* What a head says about framing and the connection. */
struct head {
	int has_length, chunked, te_other, conn_close, conn_keep, expect100;
	uint64_t length;
	size_t len;
	char buf[HEAD_MAX];	/* the head as it is to be sent on */
};

/* Case-insensitive: does the comma-separated list v hold token t? */
static int has_token(const char *v, const char *t)
{
	size_t tl = strlen(t), n;

	while (*v) {
		while (*v == ' ' || *v == '\t' || *v == ',')
			v++;
		n = strcspn(v, ",");
		while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
			n--;
		if (n == tl && !strncasecmp(v, t, tl))
			return 1;
		v += strcspn(v, ",");
	}
	return 0;
}

/* Is t's last token "chunked"? */
static int ends_chunked(const char *v)
{
	const char *last = strrchr(v, ',');

	last = last ? last + 1 : v;
	while (*last == ' ' || *last == '\t')
		last++;
	return !strcasecmp(last, "chunked");
}

/*
 * Parses one header line (its "\r\n" already cut off) into h. Returns 1
 * when the line is to be dropped from the head sent on, 0 to keep it, -1
 * when it is malformed.
 */
static int head_field(struct head *h, char *line, int drop_expect)
{
	char *colon = strchr(line, ':'), *v, *end;
	uint64_t n;

	if (!colon || colon == line || *line == ' ' || *line == '\t')
		return -1;
	if (colon[-1] == ' ' || colon[-1] == '\t')
		return -1;
	*colon = '\0';
	for (v = colon + 1; *v == ' ' || *v == '\t'; v++)
		;
	end = v + strlen(v);
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		*--end = '\0';
	if (!strcasecmp(line, "Content-Length")) {
		if (*v < '0' || *v > '9')
			return -1;
		errno = 0;
		n = strtoull(v, &end, 10);
		if (errno || *end || (h->has_length && h->length != n))
			return -1;
		h->has_length = 1;
		h->length = n;
	} else if (!strcasecmp(line, "Transfer-Encoding")) {
		if (ends_chunked(v))
			h->chunked = 1;
		else
			h->te_other = 1;
	} else if (!strcasecmp(line, "Connection")) {
		h->conn_close |= has_token(v, "close");
		h->conn_keep |= has_token(v, "keep-alive");
	} else if (!strcasecmp(line, "Expect")) {
		h->expect100 |= !strcasecmp(v, "100-continue");
		return drop_expect;
	}
	return 0;
}

/*
 * Reads a head (start line and fields, through the empty line) from b
 * into h. With drop_expect an Expect field is left out of h->buf. Returns
 * 0, -ENODATA when the stream ended before the head began, -EPROTO for a
 * malformed head, -EMSGSIZE for one over HEAD_MAX, or -errno.
 */
static int head_read(struct rbuf *b, struct head *h, int drop_expect)
{
	char line[LINE_MAX_LEN];
	size_t len, blank = 0;
	int r, first = 1;

	memset(h, 0, offsetof(struct head, buf));
	for (;;) {
		r = rb_line(b, line, sizeof(line), &len);
		if (r == -ENODATA && !first)
			return -EPIPE;
		if (r)
			return r;
		if (first && is_blank_line(line) && blank++ < 4)
			continue;	/* stray CRLF between requests */
		if (h->len + len >= sizeof(h->buf))
			return -EMSGSIZE;
		memcpy(h->buf + h->len, line, len);
		if (is_blank_line(line)) {
			h->len += len;
			break;
		}
		if (!first) {
			line[len - 1] = '\0';
			if (len >= 2 && line[len - 2] == '\r')
				line[len - 2] = '\0';
			r = head_field(h, line, drop_expect);
			if (r < 0)
				return -EPROTO;
			if (r > 0)
				continue;
		}
		h->len += len;
		first = 0;
	}
	h->buf[h->len] = '\0';
	return 0;
}

struct request {
	struct head h;
	char method[24];
	char target[LOG_TARGET_MAX];
	int head_method;
	int keep;		/* the client keeps the connection after this */
	enum body_kind body;
};

static int token_char(int c)
{
	return c > 0x20 && c < 0x7f && !strchr("\"(),/:;<=>?@[\\]{}", c);
}

/* Parses the request line and the framing of a head just read. */
static int request_parse(struct request *rq)
{
	const char *p = rq->h.buf, *sp1, *sp2, *eol;
	size_t n;
	int v11;

	sp1 = strchr(p, ' ');
	if (!sp1 || sp1 == p || (size_t)(sp1 - p) >= sizeof(rq->method))
		return -1;
	for (const char *q = p; q < sp1; q++)
		if (!token_char((unsigned char)*q))
			return -1;
	sp2 = strchr(sp1 + 1, ' ');
	eol = strchr(p, '\n');
	if (eol && eol > p && eol[-1] == '\r')
		eol--;
	if (!sp2 || sp2 == sp1 + 1 || !eol || sp2 > eol)
		return -1;
	for (const char *q = sp1 + 1; q < sp2; q++)
		if ((unsigned char)*q <= 0x20 || *q == 0x7f)
			return -1;
	n = (size_t)(eol - sp2 - 1);
	if (n == 8 && !strncmp(sp2 + 1, "HTTP/1.1", 8))
		v11 = 1;
	else if (n == 8 && !strncmp(sp2 + 1, "HTTP/1.0", 8))
		v11 = 0;
	else
		return -1;
	memcpy(rq->method, p, (size_t)(sp1 - p));
	rq->method[sp1 - p] = '\0';
	n = (size_t)(sp2 - sp1 - 1);
	if (n >= sizeof(rq->target))
		n = sizeof(rq->target) - 1;
	memcpy(rq->target, sp1 + 1, n);
	rq->target[n] = '\0';
	rq->head_method = !strcmp(rq->method, "HEAD");
	rq->keep = v11 ? !rq->h.conn_close : rq->h.conn_keep && !rq->h.conn_close;
	if (rq->h.te_other || (rq->h.chunked && rq->h.has_length))
		return -1;
	if (rq->h.chunked)
		rq->body = BODY_CHUNKED;
	else if (rq->h.has_length && rq->h.length)
		rq->body = BODY_LENGTH;
	else
		rq->body = BODY_NONE;
	return 0;
}

/* Parses a response's status line; returns the status code or -1. */
static int response_status(const struct head *h, int *v11)
{
	const char *p = h->buf;

	if (strncmp(p, "HTTP/1.", 7) || (p[7] != '0' && p[7] != '1') || p[8] != ' ')
		return -1;
	if (p[9] < '1' || p[9] > '5' || p[10] < '0' || p[10] > '9' ||
	    p[11] < '0' || p[11] > '9' || (p[12] != ' ' && p[12] != '\r' && p[12] != '\n'))
		return -1;
	*v11 = p[7] == '1';
	return (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
}

/* ---- one client connection ---------------------------------------------- */

struct conn {
	uint64_t id;
	struct rng rng;
	int ufd;		/* upstream socket, -1 when none */
	struct rbuf crb;	/* client side */
	struct rbuf urb;	/* upstream side */
	struct request rq;
	struct head resp;
};

static void log_line(const struct request *rq, enum outcome o)
{
	char line[LOG_TARGET_MAX + 128];
	int n;

	if (cfg.log_fd < 0)
		return;
	n = snprintf(line, sizeof(line), "%s %s %s\n", rq->method, rq->target,
		     outcome_name[o]);
	if (n > 0 && (size_t)n < sizeof(line) && write(cfg.log_fd, line, (size_t)n) < 0) {
		/* a log that cannot be written is not worth failing a request */
	}
}

static void count(enum outcome o)
{
	pthread_mutex_lock(&stats_lock);
	stats.requests++;
	switch (o) {
	case O_FORWARD:
		stats.forwarded++;
		break;
	case O_503:
		stats.e503++;
		break;
	case O_RESET:
	case O_RESET_MID:
		stats.resets++;
		break;
	case O_DELAY:
		stats.delays++;
		break;
	case O_STALL:
		stats.stalls++;
		break;
	}
	pthread_mutex_unlock(&stats_lock);
}

static enum outcome decide(struct conn *c)
{
	double u = rng_unit(&c->rng), edge = cfg.p503;

	if (u < edge)
		return O_503;
	edge += cfg.preset;
	if (u < edge)
		return rng_below(&c->rng, 2) ? O_RESET_MID : O_RESET;
	edge += cfg.pdelay;
	if (u < edge)
		return O_DELAY;
	edge += cfg.pstall;
	if (u < edge)
		return O_STALL;
	return O_FORWARD;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static void upstream_drop(struct conn *c)
{
	if (c->ufd >= 0)
		close(c->ufd);
	c->ufd = -1;
	c->urb.fd = -1;
	c->urb.off = c->urb.len = 0;
}

/* Sends a short answer of our own; a HEAD request gets no body. */
static int reply(struct conn *c, const char *status, const char *type,
		 const char *body, int close_after)
{
	char head[512];
	size_t blen = strlen(body);
	int n, r;

	n = snprintf(head, sizeof(head),
		     "HTTP/1.1 %s\r\nServer: faultproxy\r\nContent-Type: %s\r\n"
		     "Content-Length: %zu\r\n%s\r\n", status, type, blen,
		     close_after ? "Connection: close\r\n" : "");
	r = send_all(c->crb.fd, head, (size_t)n);
	if (!r && !c->rq.head_method && blen)
		r = send_all(c->crb.fd, body, blen);
	return r;
}

static void reply_error(struct conn *c, const char *status)
{
	reply(c, status, "text/plain", status, 1);
}

/* Reads the request body (if any) and throws it away. */
static int discard_body(struct conn *c)
{
	struct sink s;

	sink_init(&s, -1);
	switch (c->rq.body) {
	case BODY_LENGTH:
		return rb_copy(&c->crb, c->rq.h.length, &s);
	case BODY_CHUNKED:
		return relay_chunked(&c->crb, &s, 0);
	default:
		return 0;
	}
}

/* Answers 503 SlowDown. Returns 0 to keep the connection, 1 to close it. */
static int do_503(struct conn *c)
{
	int close_after = !c->rq.keep;

	if (c->rq.h.expect100 && c->rq.body != BODY_NONE)
		close_after = 1;	/* the client waits with its body */
	else if (discard_body(c))
		return 1;
	if (reply(c, "503 Service Unavailable", "application/xml", slowdown_body,
		  close_after))
		return 1;
	return close_after;
}

/*
 * Holds a connection without answering until the client closes it or
 * stall_ms passes; whatever the client sends meanwhile is read and dropped.
 */
static void do_stall(struct conn *c)
{
	struct timespec t0, now;
	char junk[4096];
	long left;
	ssize_t n;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		left = (long)cfg.stall_ms - ((now.tv_sec - t0.tv_sec) * 1000 +
					     (now.tv_nsec - t0.tv_nsec) / 1000000);
		if (left <= 0)
			return;
		struct pollfd pfd = { .fd = c->crb.fd, .events = POLLIN };
		n = poll(&pfd, 1, left > 60000 ? 60000 : (int)left);
		if (n < 0 && errno != EINTR)
			return;
		if (n <= 0)
			continue;
		n = recv(c->crb.fd, junk, sizeof(junk), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
			return;
	}
}

/* The client-side budget that ends a reset-midbody response part way. */
static uint64_t midbody_budget(struct conn *c, enum body_kind body)
{
	if (body == BODY_LENGTH && c->resp.length)
		return c->resp.len + rng_below(&c->rng, c->resp.length);
	if (body == BODY_CHUNKED || body == BODY_EOF)
		return c->resp.len + rng_below(&c->rng, MIDBODY_SPAN);
	return 1 + rng_below(&c->rng, c->resp.len - 1);	/* inside the head */
}

/*
 * Forwards the request and relays the response. With cut, resets the
 * client connection part way through the response. Returns 0 to keep the
 * client connection, 1 when it is to be closed, 2 when it has been closed.
 */
static int do_forward(struct conn *c, int cut)
{
	struct request *rq = &c->rq;
	struct sink up, down;
	enum body_kind body;
	int r, status, v11, up_keep, sent = 0;

	if (c->ufd >= 0 && upstream_stale(c->ufd))
		upstream_drop(c);
	if (c->ufd < 0) {
		r = upstream_connect();
		if (r < 0)
			goto bad_gateway;
		c->ufd = c->urb.fd = r;
	}
	if (rq->h.expect100 && rq->body != BODY_NONE &&
	    send_all(c->crb.fd, "HTTP/1.1 100 Continue\r\n\r\n", 25))
		goto close_all;

	sink_init(&up, c->ufd);
	r = sink_put(&up, rq->h.buf, rq->h.len);
	if (!r && rq->body == BODY_LENGTH)
		r = rb_copy(&c->crb, rq->h.length, &up);
	else if (!r && rq->body == BODY_CHUNKED)
		r = relay_chunked(&c->crb, &up, 0);
	if (r && !up.failed)
		goto close_all;		/* the client went away or sent garbage */
	if (r)
		goto bad_gateway;

	sink_init(&down, c->crb.fd);
	for (;;) {
		r = head_read(&c->urb, &c->resp, 0);
		if (r)
			goto bad_gateway;
		status = response_status(&c->resp, &v11);
		if (status < 0 || status == 101)
			goto bad_gateway;
		if (status >= 200)
			break;
		if (sink_put(&down, c->resp.buf, c->resp.len))
			goto close_all;
		sent = 1;
	}
	if (rq->head_method || status == 204 || status == 304)
		body = BODY_NONE;
	else if (c->resp.chunked)
		body = BODY_CHUNKED;
	else if (c->resp.te_other || !c->resp.has_length)
		body = BODY_EOF;
	else
		body = c->resp.length ? BODY_LENGTH : BODY_NONE;
	up_keep = body != BODY_EOF && !c->resp.conn_close && (v11 || c->resp.conn_keep);
	if (cut)
		down.budget = midbody_budget(c, body);

	sent = 1;
	r = sink_put(&down, c->resp.buf, c->resp.len);
	if (!r && body == BODY_LENGTH)
		r = rb_copy(&c->urb, c->resp.length, &down);
	else if (!r && body == BODY_CHUNKED)
		r = relay_chunked(&c->urb, &down, cut);
	else if (!r && body == BODY_EOF)
		r = rb_copy_to_eof(&c->urb, &down);
	if (r == CUT || (cut && !r)) {
		close_reset(c->crb.fd);
		upstream_drop(c);
		return 2;
	}
	if (r)
		goto close_all;
	if (!up_keep)
		upstream_drop(c);
	return rq->keep && up_keep ? 0 : 1;

bad_gateway:
	upstream_drop(c);
	if (!sent)
		reply_error(c, "502 Bad Gateway");
	return 1;
close_all:
	upstream_drop(c);
	return 1;
}

static void *conn_main(void *arg)
{
	struct conn *c = arg;
	enum outcome o;
	int r, linger = 0;

	for (;;) {
		r = head_read(&c->crb, &c->rq.h, 1);
		if (r == -EPROTO || r == -EMSGSIZE) {
			c->rq.head_method = 0;
			reply_error(c, r == -EPROTO ? "400 Bad Request"
					: "431 Request Header Fields Too Large");
			linger = 1;
			break;
		}
		if (r)
			break;
		if (request_parse(&c->rq)) {
			reply_error(c, "400 Bad Request");
			linger = 1;
			break;
		}
		o = decide(c);
		count(o);
		log_line(&c->rq, o);
		if (o == O_RESET) {
			close_reset(c->crb.fd);
			goto out;
		}
		if (o == O_STALL) {
			do_stall(c);
			break;
		}
		if (o == O_503) {
			r = do_503(c);
			linger = r;
		} else {
			if (o == O_DELAY)
				sleep_ms(cfg.delay_ms);
			r = do_forward(c, o == O_RESET_MID);
			if (r == 2)
				goto out;
			linger = r;
		}
		if (r)
			break;
	}
	if (linger)
		close_lingering(c->crb.fd);
	else
		close(c->crb.fd);
out:
	upstream_drop(c);
	free(c);
	sem_post(&conn_slots);
	return NULL;
}

static void *accept_main(void *arg)
{
	static uint64_t next_id;
	pthread_attr_t attr;
	pthread_t tid;
	struct conn *c;
	int fd;

	(void)arg;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 1024 * KiB);
	for (;;) {
		while (sem_wait(&conn_slots))
			;
		fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			sem_post(&conn_slots);
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM)
				sleep_ms(100);
			continue;
		}
		c = malloc(sizeof(*c));
		if (!c) {
			close(fd);
			sem_post(&conn_slots);
			continue;
		}
		c->id = ++next_id;
		rng_seed(&c->rng, cfg.seed, c->id);
		set_timeouts(fd, CLIENT_IDLE_S, SEND_S);
		c->crb.fd = fd;
		c->crb.off = c->crb.len = 0;
		c->ufd = c->urb.fd = -1;
		c->urb.off = c->urb.len = 0;
		if (pthread_create(&tid, &attr, conn_main, c)) {
			close(fd);
			free(c);
			sem_post(&conn_slots);
		}
	}
	return NULL;
}

/* ---- main ---------------------------------------------------------------- */

static void print_summary(void)
{
	char line[256];
	int n;

	pthread_mutex_lock(&stats_lock);
	n = snprintf(line, sizeof(line), "faultproxy: requests=%" PRIu64
		     " forwarded=%" PRIu64 " e503=%" PRIu64 " resets=%" PRIu64
		     " delays=%" PRIu64 " stalls=%" PRIu64 "\n", stats.requests,
		     stats.forwarded, stats.e503, stats.resets, stats.delays,
		     stats.stalls);
	pthread_mutex_unlock(&stats_lock);
	if (write(STDERR_FILENO, line, (size_t)n) < 0 ||
	    (cfg.log_fd >= 0 && write(cfg.log_fd, line, (size_t)n) < 0)) {
		/* nowhere left to report it */
	}
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: faultproxy --upstream HOST:PORT [--listen PORT] [--seed N]\n"
		"                  [--p503 P] [--preset P] [--pdelay P] [--delay-ms MS]\n"
		"                  [--pstall P] [--stall-ms MS] [--port-file FILE] [--log FILE]\n"
		"A fault-injecting HTTP/1.1 proxy on 127.0.0.1 for tests. Per request:\n"
		"  --p503 P      answer 503 SlowDown with probability P\n"
		"  --preset P    reset the connection, before or during the response\n"
		"  --pdelay P    sleep --delay-ms (default 2000) before forwarding\n"
		"  --pstall P    never answer; hold the connection until the client closes\n"
		"                it or --stall-ms (default 300000) passes\n"
		"                (each P defaults to 0; together at most 1)\n"
		"  --listen PORT listen on 127.0.0.1:PORT (default 0: any free port)\n"
		"  --port-file F write the port to F (atomically) once listening\n"
		"  --log F       append \"METHOD TARGET DECISION\" per request, and the summary\n"
		"  --seed N      seed of the decisions (default: from the clock; printed)\n"
		"SIGUSR1 prints the counters; SIGTERM or SIGINT prints them and exits 0.\n");
}

static int parse_uint(const char *s, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		return -1;
	*out = v;
	return 0;
}

static int parse_prob(const char *s, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v < 0 || v > 1)
		return -1;
	*out = v;
	return 0;
}

static int parse_upstream(const char *s, struct sockaddr_in *sa)
{
	struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res;
	char host[256];
	const char *colon = strrchr(s, ':');
	uint64_t port;

	if (!colon || colon == s || (size_t)(colon - s) >= sizeof(host) ||
	    parse_uint(colon + 1, 65535, &port) || !port)
		return -1;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	if (getaddrinfo(host, NULL, &hints, &res))
		return -1;
	memcpy(sa, res->ai_addr, sizeof(*sa));
	sa->sin_port = htons((uint16_t)port);
	freeaddrinfo(res);
	return 0;
}

static int write_port_file(const char *path, unsigned port)
{
	char tmp[4096], text[16];
	int fd, n, err = 0;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >= sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	n = snprintf(text, sizeof(text), "%u\n", port);
	if (write(fd, text, (size_t)n) != n)
		err = errno ? -errno : -EIO;
	if (close(fd) && !err)
		err = -errno;
	if (!err && rename(tmp, path))
		err = -errno;
	if (err)
		unlink(tmp);
	return err;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "upstream", required_argument, NULL, 'u' },
		{ "seed", required_argument, NULL, 's' },
		{ "p503", required_argument, NULL, '5' },
		{ "preset", required_argument, NULL, 'r' },
		{ "pdelay", required_argument, NULL, 'd' },
		{ "delay-ms", required_argument, NULL, 'D' },
		{ "pstall", required_argument, NULL, 't' },
		{ "stall-ms", required_argument, NULL, 'T' },
		{ "port-file", required_argument, NULL, 'p' },
		{ "log", required_argument, NULL, 'L' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *port_file = NULL, *log_path = NULL, *upstream = NULL;
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t salen = sizeof(sa);
	uint64_t port = 0, v;
	int have_seed = 0, opt, opt_index = 0, one = 1, r, sig;
	sigset_t sigs;
	pthread_t tid;

	while ((opt = getopt_long(argc, argv, "h", opts, &opt_index)) != -1) {
		switch (opt) {
		case 'l':
			if (parse_uint(optarg, 65535, &port))
				goto bad_value;
			break;
		case 'u':
			upstream = optarg;
			if (parse_upstream(optarg, &cfg.upstream))
				goto bad_value;
			break;
		case 's':
			if (parse_uint(optarg, UINT64_MAX, &cfg.seed))
				goto bad_value;
			have_seed = 1;
			break;
		case '5':
			if (parse_prob(optarg, &cfg.p503))
				goto bad_value;
			break;
		case 'r':
			if (parse_prob(optarg, &cfg.preset))
				goto bad_value;
			break;
		case 'd':
			if (parse_prob(optarg, &cfg.pdelay))
				goto bad_value;
			break;
		case 't':
			if (parse_prob(optarg, &cfg.pstall))
				goto bad_value;
			break;
		case 'D':
		case 'T':
			if (parse_uint(optarg, 24 * 3600 * 1000, &v))
				goto bad_value;
			*(opt == 'D' ? &cfg.delay_ms : &cfg.stall_ms) = (unsigned)v;
			break;
		case 'p':
			port_file = optarg;
			break;
		case 'L':
			log_path = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "faultproxy: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (!upstream) {
		fprintf(stderr, "faultproxy: --upstream HOST:PORT is required\n");
		usage(stderr);
		return 2;
	}
	if (cfg.p503 + cfg.preset + cfg.pdelay + cfg.pstall > 1 + 1e-9) {
		fprintf(stderr, "faultproxy: --p503, --preset, --pdelay and --pstall add up "
			"to %g; they must add up to at most 1\n",
			cfg.p503 + cfg.preset + cfg.pdelay + cfg.pstall);
		return 2;
	}
	if (!have_seed) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		cfg.seed = ((uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000) ^
			   (uint64_t)getpid() << 20;
		cfg.seed %= 1000000000;
	}
	if (log_path) {
		cfg.log_fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
		if (cfg.log_fd < 0) {
			fprintf(stderr, "faultproxy: cannot open log '%s': %s\n", log_path,
				strerror(errno));
			return 1;
		}
	}

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);	/* inherited by every thread */

	listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)port);
	if (listen_fd < 0 ||
	    setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(listen_fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    listen(listen_fd, 128) ||
	    getsockname(listen_fd, (struct sockaddr *)&sa, &salen)) {
		fprintf(stderr, "faultproxy: cannot listen on 127.0.0.1:%" PRIu64 ": %s\n",
			port, strerror(errno));
		return 1;
	}
	fprintf(stderr, "faultproxy: listening on 127.0.0.1:%u, upstream %s, seed %" PRIu64
		" (replay with --seed %" PRIu64 ")\n", ntohs(sa.sin_port), upstream,
		cfg.seed, cfg.seed);
	if (port_file) {
		r = write_port_file(port_file, ntohs(sa.sin_port));
		if (r) {
			fprintf(stderr, "faultproxy: cannot write port file '%s': %s\n",
				port_file, strerror(-r));
			return 1;
		}
	}
	sem_init(&conn_slots, 0, CONN_MAX);
	if (pthread_create(&tid, NULL, accept_main, NULL)) {
		fprintf(stderr, "faultproxy: cannot start the accept thread\n");
		return 1;
	}
	for (;;) {
		if (sigwait(&sigs, &sig))
			continue;
		print_summary();
		if (sig != SIGUSR1)
			break;
	}
	/* Connection threads may still be relaying: _exit leaves them be
	 * instead of running exit handlers under them. */
	_exit(0);

bad_value:
	fprintf(stderr, "faultproxy: bad value '%s' for --%s\n", optarg,
		opts[opt_index].name);
	return 2;
}
