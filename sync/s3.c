/*
 * sync/s3.c — a small S3-protocol client: libcurl signs (SigV4), libxml2
 * reads the answers.
 *
 * Requests. Every request goes through s3_do(), which builds the URL,
 * takes a curl handle from the pool, sets every option afresh
 * (curl_easy_reset keeps the live connections), performs, classifies the
 * outcome and retries. libcurl 7.88 signs the path and the query exactly
 * as given, so this module encodes them itself: object keys with every
 * byte but A-Z a-z 0-9 - _ . ~ and '/' as uppercase %XX, query strings
 * sorted by name with names and values encoded (there '/' is %2F too) and
 * a valueless parameter written "name=". Each request carries
 * x-amz-content-sha256 (the payload's SHA-256, or that of nothing) because
 * curl 7.88 does not add it, and bodies go with a Content-Length, never
 * chunked. CURLOPT_PATH_AS_IS keeps keys with "." or ".." segments intact.
 *
 * Retries. 5xx, 429, a 200 to CompleteMultipartUpload that carries an
 * <Error>, and transport failures (connect, resolve, timeouts, resets,
 * partial transfers) are tried again up to max_retries times after a
 * sleep drawn uniformly from [0, min(10 s, base * 2^attempt)] ("full
 * jitter"). Other 4xx answers are final. Uploads come from the caller's
 * memory, so a retry simply rewinds the read cursor. A max_retries of 0
 * means the default (6); a negative one means no retries.
 *
 * Errors. Every call returns 0 or -errno (404 -ENOENT, 403 -EACCES, a
 * transport failure -ECONNREFUSED/-EHOSTUNREACH/-ETIMEDOUT, the rest
 * -EIO) and fills struct s3_error with the status, the S3 code (or curl's
 * text) and a one-line message naming the operation and the object. The
 * client does not log failures (the caller decides what a user sees); it
 * logs retries and failed multipart aborts at debug level only.
 *
 * Locking. The client is immutable after s3_open() except for the handle
 * pool (pool_lock) and the statistics (atomics). A handle belongs to one
 * request at a time. curl_global_init and xmlInitParser run once per
 * process (pthread_once).
 *
 * Bounds. Responses are read into buffers with caps: S3_XML_MAX for XML
 * answers, the requested length for ranged GETs, S3_GET_MAX otherwise.
 * Keys are at most 1024 bytes with the prefix, as in S3.
 *
 * Not done: streaming bodies, parallel part uploads (callers have their
 * own worker threads), redirects between regions, ListMultipartUploads
 * clean-up of abandoned uploads (a bucket lifecycle rule is the tool).
 */
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <limits.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sync/s3.h"
#include "util/log.h"
#include "util/util.h"

#define MiB (1024 * 1024)
#define S3_POOL_MAX 32			/* idle curl handles kept */
#define S3_XML_MAX (32u * MiB)		/* cap of an XML answer */
#define S3_GET_MAX ((size_t)2 << 30)	/* cap of an unranged GET */
#define S3_ERRBODY_MAX (64 * 1024)	/* slack for an error body */
#define S3_KEY_MAX 1024
#define S3_BACKOFF_CAP_MS 10000
#define S3_MAX_PARTS 10000
#define S3_MIN_PART ((size_t)5 * MiB)
#define S3_CREDS_MAX (1 << 20)		/* credentials files are small */
#define S3_EMPTY_SHA256 \
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

struct s3_client {
	struct s3_config cfg;		/* copied, defaults filled in */
	char *base;			/* URL up to the bucket: no trailing '/' */
	int vhost;			/* the bucket is in the host name */
	char *sigv4;			/* "aws:amz:REGION:s3" */
	char *token_hdr;		/* "x-amz-security-token: ..." or NULL */

	pthread_mutex_t pool_lock;	/* protects pool, npool */
	CURL *pool[S3_POOL_MAX];
	int npool;

	atomic_uint_fast64_t requests, retries, failures, bytes_up, bytes_down;
	atomic_int cancel;		/* s3_cancel(): no more tries or waits */
};

/* A growable string; oom is sticky so callers check once at the end. */
struct sbuf {
	char *p;
	size_t len, cap;
	int oom;
};

static void sb_grow(struct sbuf *b, size_t more)
{
	size_t want, ncap;
	char *np;

	if (b->oom)
		return;
	want = b->len + more + 1;
	if (want <= b->cap)
		return;
	ncap = b->cap ? b->cap : 64;
	while (ncap < want)
		ncap *= 2;
	np = realloc(b->p, ncap);
	if (!np) {
		b->oom = 1;
		return;
	}
	b->p = np;
	b->cap = ncap;
}

static void sb_addn(struct sbuf *b, const char *s, size_t n)
{
	sb_grow(b, n);
	if (b->oom)
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void sb_add(struct sbuf *b, const char *s)
{
	sb_addn(b, s, strlen(s));
}

__attribute__((format(printf, 2, 3)))
static void sb_addf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->oom = 1;
		return;
	}
	sb_grow(b, (size_t)n);
	if (b->oom)
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/* SigV4's URI encoding: unreserved bytes raw, '/' raw if keep_slash. */
static void sb_enc(struct sbuf *b, const char *s, int keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";

	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		char e[3];

		if (isalnum(*p) && *p < 0x80) {
			sb_addn(b, (const char *)p, 1);
		} else if (*p == '-' || *p == '_' || *p == '.' || *p == '~' ||
			   (*p == '/' && keep_slash)) {
			sb_addn(b, (const char *)p, 1);
		} else {
			e[0] = '%';
			e[1] = hex[*p >> 4];
			e[2] = hex[*p & 15];
			sb_addn(b, e, 3);
		}
	}
}

char *s3_uri_encode(const char *s, int keep_slash)
{
	struct sbuf b = { 0 };

	sb_add(&b, "");
	sb_enc(&b, s, keep_slash);
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	return b.p;
}

__attribute__((format(printf, 2, 3)))
static void set_errmsg(char **errmsg, const char *fmt, ...)
{
	va_list ap;

	if (!errmsg)
		return;
	va_start(ap, fmt);
	if (vasprintf(errmsg, fmt, ap) < 0)
		*errmsg = NULL;
	va_end(ap);
}

/* ---- query strings ---- */

struct s3_param {
	const char *name, *value;	/* value NULL: "name=" */
};

static int param_cmp(const void *a, const void *b)
{
	return strcmp(((const struct s3_param *)a)->name,
		      ((const struct s3_param *)b)->name);
}

/* The canonical query string of n parameters (sorted here), malloc'ed. */
static char *query_build(struct s3_param *p, size_t n)
{
	struct sbuf b = { 0 };

	qsort(p, n, sizeof(*p), param_cmp);
	sb_add(&b, "");
	for (size_t i = 0; i < n; i++) {
		if (i)
			sb_add(&b, "&");
		sb_enc(&b, p[i].name, 0);
		sb_add(&b, "=");
		if (p[i].value)
			sb_enc(&b, p[i].value, 0);
	}
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	return b.p;
}

/* ---- XML ---- */

static xmlDocPtr xml_parse(const char *buf, size_t len)
{
	if (!buf || !len || len > INT_MAX)
		return NULL;
	return xmlReadMemory(buf, (int)len, "s3.xml", NULL,
			     XML_PARSE_NONET | XML_PARSE_NOERROR |
			     XML_PARSE_NOWARNING);
}

/* The first element child of n named name (namespaces ignored). */
static xmlNodePtr xml_child(xmlNodePtr n, const char *name)
{
	for (xmlNodePtr c = n ? n->children : NULL; c; c = c->next)
		if (c->type == XML_ELEMENT_NODE &&
		    strcmp((const char *)c->name, name) == 0)
			return c;
	return NULL;
}

/* Copy the text of n's child name into out (truncated); 1 if found. */
static int xml_text(xmlNodePtr n, const char *name, char *out, size_t cap)
{
	xmlNodePtr c = xml_child(n, name);
	xmlChar *t;

	if (!c)
		return 0;
	t = xmlNodeGetContent(c);
	snprintf(out, cap, "%s", t ? (const char *)t : "");
	xmlFree(t);
	return 1;
}

/* malloc'ed text of n's child name, or NULL */
static char *xml_strdup(xmlNodePtr n, const char *name)
{
	xmlNodePtr c = xml_child(n, name);
	xmlChar *t;
	char *s;

	if (!c)
		return NULL;
	t = xmlNodeGetContent(c);
	s = strdup(t ? (const char *)t : "");
	xmlFree(t);
	return s;
}

static void sb_xml_escape(struct sbuf *b, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&': sb_add(b, "&amp;"); break;
		case '<': sb_add(b, "&lt;"); break;
		case '>': sb_add(b, "&gt;"); break;
		default: sb_addn(b, s, 1);
		}
	}
}

/* ---- requests ---- */

struct s3_req {
	const char *op;			/* "PUT", "LIST": for messages */
	const char *method;		/* "GET", "PUT", "POST", "HEAD", "DELETE" */
	const char *key;		/* relative to the prefix; NULL: bucket */
	const char *query;		/* canonical query string or NULL */
	const void *body;		/* PUT/POST payload (send_body) */
	size_t body_len;
	int send_body;			/* send a Content-Length, even 0 */
	const char *range;		/* "bytes=0-99" or NULL */
	const char *ctype;		/* Content-Type or NULL */
	int tries;			/* 0: 1 + max_retries */
	long timeout_ms;		/* 0: the configured request timeout */
	int error_in_200;		/* a 2xx answer may be an <Error> */
	int absent_ok;			/* a 404 is no failure (statistics) */
	size_t cap;			/* response body cap */

	/* per attempt */
	size_t up_off;
	char *resp;
	size_t resp_len, resp_alloc;
	int too_big;
	char etag[256];

	/* outcome */
	long http;
	curl_off_t clen;
	size_t hint;			/* Content-Length as announced, or 0 */
};

static size_t on_write(char *data, size_t size, size_t nmemb, void *arg)
{
	struct s3_req *r = arg;
	size_t n = size * nmemb, ncap;
	char *np;

	if (n > r->cap || r->resp_len > r->cap - n) {
		r->too_big = 1;
		return 0;
	}
	if (!r->resp_alloc && r->hint && r->hint < r->cap) {
		/*
		 * The whole body at once, page-aligned: a fetched block goes
		 * on to the local store, which writes aligned buffers with
		 * O_DIRECT, and no realloc copies it on the way.
		 */
		void *p = NULL;

		ncap = (r->hint + 1 + 4095) & ~(size_t)4095;
		if (posix_memalign(&p, 4096, ncap) == 0) {
			free(r->resp);
			r->resp = p;
			r->resp_alloc = ncap;
		}
	}
	if (r->resp_len + n + 1 > r->resp_alloc) {
		ncap = r->resp_alloc ? r->resp_alloc : 4096;
		while (ncap < r->resp_len + n + 1)
			ncap *= 2;
		np = realloc(r->resp, ncap);
		if (!np)
			return 0;
		r->resp = np;
		r->resp_alloc = ncap;
	}
	memcpy(r->resp + r->resp_len, data, n);
	r->resp_len += n;
	r->resp[r->resp_len] = '\0';
	return n;
}

static size_t on_read(char *buf, size_t size, size_t nmemb, void *arg)
{
	struct s3_req *r = arg;
	size_t n = MIN(size * nmemb, r->body_len - r->up_off);

	if (n)
		memcpy(buf, (const char *)r->body + r->up_off, n);
	r->up_off += n;
	return n;
}

static int on_seek(void *arg, curl_off_t off, int origin)
{
	struct s3_req *r = arg;

	if (origin != SEEK_SET || off < 0 || (uint64_t)off > r->body_len)
		return CURL_SEEKFUNC_CANTSEEK;
	r->up_off = (size_t)off;
	return CURL_SEEKFUNC_OK;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *arg)
{
	struct s3_req *r = arg;
	size_t n = size * nmemb, v, e;

	if (n > 15 && strncasecmp(data, "Content-Length:", 15) == 0)
		r->hint = (size_t)strtoull(data + 15, NULL, 10);
	if (n > 5 && strncasecmp(data, "ETag:", 5) == 0) {
		for (v = 5; v < n && (data[v] == ' ' || data[v] == '\t'); v++)
			;
		for (e = n; e > v && isspace((unsigned char)data[e - 1]); e--)
			;
		snprintf(r->etag, sizeof(r->etag), "%.*s", (int)(e - v), data + v);
	}
	return n;
}

static void reset_response(struct s3_req *r)
{
	r->up_off = 0;
	r->resp_len = 0;
	if (r->resp)
		r->resp[0] = '\0';
	r->too_big = 0;
	r->etag[0] = '\0';
	r->http = 0;
	r->clen = -1;
	r->hint = 0;
}

static CURL *pool_get(struct s3_client *c)
{
	CURL *h = NULL;

	pthread_mutex_lock(&c->pool_lock);
	if (c->npool)
		h = c->pool[--c->npool];
	pthread_mutex_unlock(&c->pool_lock);
	if (h)
		curl_easy_reset(h);
	else
		h = curl_easy_init();
	return h;
}

static void pool_put(struct s3_client *c, CURL *h)
{
	pthread_mutex_lock(&c->pool_lock);
	if (c->npool < S3_POOL_MAX) {
		c->pool[c->npool++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&c->pool_lock);
	if (h)
		curl_easy_cleanup(h);
}

/* The object's full name in the bucket (prefix/key), malloc'ed. */
static char *full_key(const struct s3_client *c, const char *key)
{
	char *s;

	if (asprintf(&s, "%s%s%s", c->cfg.prefix, *c->cfg.prefix ? "/" : "",
		     key) < 0)
		return NULL;
	return s;
}

static char *build_url(const struct s3_client *c, const struct s3_req *r)
{
	struct sbuf b = { 0 };
	char *k;

	sb_add(&b, c->base);
	if (r->key) {
		k = full_key(c, r->key);
		if (!k)
			b.oom = 1;
		sb_add(&b, "/");
		if (k)
			sb_enc(&b, k, 1);
		free(k);
	} else if (c->vhost) {
		sb_add(&b, "/");
	}
	if (r->query && *r->query) {
		sb_add(&b, "?");
		sb_add(&b, r->query);
	}
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	return b.p;
}

static void payload_sha256(const void *data, size_t len, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (!len || !EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) ||
	    mdlen != 32) {
		snprintf(out, 65, "%s", len ? "" : S3_EMPTY_SHA256);
		return;
	}
	hex_encode(md, 32, out);
}

/* Transport failures worth another try, and the errno once out of tries. */
static int curl_retryable(CURLcode cc)
{
	switch (cc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_PARTIAL_FILE:
	case CURLE_GOT_NOTHING:
		return 1;
	default:
		return 0;
	}
}

static int curl_errno(CURL *h, CURLcode cc)
{
	long oserr = 0;

	switch (cc) {
	case CURLE_COULDNT_CONNECT:
		curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &oserr);
		if (oserr == EHOSTUNREACH || oserr == ENETUNREACH)
			return -EHOSTUNREACH;
		if (oserr == ETIMEDOUT)
			return -ETIMEDOUT;
		return -ECONNREFUSED;
	case CURLE_COULDNT_RESOLVE_HOST:
		return -EHOSTUNREACH;
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	default:
		return -EIO;
	}
}

static int http_retryable(long http)
{
	return http >= 500 || http == 429;
}

static int http_errno(long http)
{
	if (http == 404)
		return -ENOENT;
	if (http == 403)
		return -EACCES;
	return -EIO;
}

/* A per-thread xorshift generator for the jitter. */
static uint64_t s3_rand(void)
{
	static _Thread_local uint64_t x;

	if (!x)
		x = (mono_ns() ^ ((uint64_t)(uintptr_t)&x << 16) ^
		     (uint64_t)getpid()) | 1;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return x;
}

/* Full jitter: uniform in [0, min(cap, base * 2^attempt)] ms. */
static long backoff_ms(const struct s3_client *c, int attempt)
{
	uint64_t cap = (uint64_t)c->cfg.backoff_base_ms;

	for (int i = 0; i < attempt && cap < S3_BACKOFF_CAP_MS; i++)
		cap *= 2;
	cap = MIN(cap, (uint64_t)S3_BACKOFF_CAP_MS);
	return (long)(s3_rand() % (cap + 1));
}

/* Sleep ms, in short steps so that s3_cancel() cuts it short. */
static void sleep_ms(struct s3_client *c, long ms)
{
	while (ms > 0 && !atomic_load(&c->cancel)) {
		long step = MIN(ms, 50L);
		struct timespec ts = { .tv_sec = 0, .tv_nsec = step * 1000000L };

		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
		ms -= step;
	}
}

/* libcurl's progress callback: non-zero aborts the transfer. */
static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow,
		       curl_off_t ultotal, curl_off_t ulnow)
{
	struct s3_client *c = arg;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return atomic_load(&c->cancel) ? 1 : 0;
}

void s3_cancel(struct s3_client *c)
{
	if (c)
		atomic_store(&c->cancel, 1);
}

/* For messages: "blocks/ab" or "s3://bucket/prefix" for bucket requests. */
static void display_name(const struct s3_client *c, const struct s3_req *r,
			 char *out, size_t cap)
{
	if (r->key)
		snprintf(out, cap, "%s%s%s", c->cfg.prefix,
			 *c->cfg.prefix ? "/" : "", r->key);
	else
		snprintf(out, cap, "s3://%s/%s", c->cfg.bucket, c->cfg.prefix);
}

/*
 * One attempt's outcome from an HTTP answer: 0 (success), or -errno with
 * code and message filled in from the <Error> body, if any.
 */
static int http_outcome(struct s3_req *r, struct s3_error *e, int *retry)
{
	xmlDocPtr doc = NULL;
	xmlNodePtr root;
	char message[384] = "";
	int is_error = r->http < 200 || r->http > 299;

	e->code[0] = '\0';
	if (is_error || r->error_in_200) {
		doc = xml_parse(r->resp, r->resp_len);
		root = doc ? xmlDocGetRootElement(doc) : NULL;
		if (root && strcmp((const char *)root->name, "Error") == 0) {
			is_error = 1;
			xml_text(root, "Code", e->code, sizeof(e->code));
			xml_text(root, "Message", message, sizeof(message));
		}
		xmlFreeDoc(doc);
	}
	if (!is_error)
		return 0;
	if (!e->code[0]) {
		const char *std = r->http == 404 ? "NotFound" :
				  r->http == 403 ? "Forbidden" :
				  r->http == 429 ? "SlowDown" : "HTTPError";

		snprintf(e->code, sizeof(e->code), "%s", std);
	}
	snprintf(e->msg, sizeof(e->msg), "%ld %s%s%s", r->http, e->code,
		 message[0] ? ": " : "", message);
	/* a 200 carrying an <Error> is an internal error: try again */
	*retry = http_retryable(r->http) || (r->http >= 200 && r->http <= 299);
	return r->http >= 200 && r->http <= 299 ? -EIO : http_errno(r->http);
}

/* Append a header line; on failure the list is freed and *l is NULL. */
static void hdr_add(struct curl_slist **l, const char *line)
{
	struct curl_slist *t;

	t = curl_slist_append(*l, line);
	if (!t) {
		curl_slist_free_all(*l);
		*l = NULL;
		return;
	}
	*l = t;
}

/* Set every option of one attempt; 0 or -errno. */
static int setup(struct s3_client *c, CURL *h, struct s3_req *r,
		 const char *url, struct curl_slist **hdrs, char *errbuf)
{
	char sha[65], line[128];
	struct curl_slist *l = NULL;

	if (c->cfg.unsigned_payload && r->send_body && r->body_len > 0)
		snprintf(sha, sizeof(sha), "UNSIGNED-PAYLOAD");
	else
		payload_sha256(r->body, r->send_body ? r->body_len : 0, sha);
	if (!sha[0])
		return -EIO;
	snprintf(line, sizeof(line), "x-amz-content-sha256: %s", sha);
	hdr_add(&l, line);
	if (l && c->token_hdr)
		hdr_add(&l, c->token_hdr);
	if (l && r->range) {
		snprintf(line, sizeof(line), "Range: %s", r->range);
		hdr_add(&l, line);
	}
	if (l && r->ctype) {
		snprintf(line, sizeof(line), "Content-Type: %s", r->ctype);
		hdr_add(&l, line);
	}
	if (!l)
		return -ENOMEM;
	*hdrs = l;

	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, l);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->cfg.connect_timeout_ms);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS,
			 r->timeout_ms ? r->timeout_ms : c->cfg.request_timeout_ms);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, c->cfg.low_speed_time_s);
	curl_easy_setopt(h, CURLOPT_EXPECT_100_TIMEOUT_MS, 1000L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, c);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, c->cfg.insecure ? 0L : 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, c->cfg.insecure ? 0L : 2L);
	if (c->cfg.access_key) {
		curl_easy_setopt(h, CURLOPT_AWS_SIGV4, c->sigv4);
		curl_easy_setopt(h, CURLOPT_USERNAME, c->cfg.access_key);
		curl_easy_setopt(h, CURLOPT_PASSWORD,
				 c->cfg.secret_key ? c->cfg.secret_key : "");
	}
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
	if (strcmp(r->method, "HEAD") == 0) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	} else if (r->send_body) {
		curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(h, CURLOPT_READDATA, r);
		curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, on_seek);
		curl_easy_setopt(h, CURLOPT_SEEKDATA, r);
		curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE,
				 (curl_off_t)r->body_len);
		if (strcmp(r->method, "PUT") != 0)
			curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r->method);
	} else if (strcmp(r->method, "GET") != 0) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r->method);
	}
	return 0;
}

/*
 * Perform r with retries. On success r->http, r->resp, r->etag and
 * r->clen hold the answer (the caller frees r->resp). 0 or -errno with e
 * filled in.
 */
static int s3_do(struct s3_client *c, struct s3_req *r, struct s3_error *e)
{
	int tries = r->tries ? r->tries : 1 + c->cfg.max_retries, ret = 0;
	int attempts = 1;
	char errbuf[CURL_ERROR_SIZE], name[300];
	struct s3_error scratch;
	char *url;
	CURL *h;

	if (!e)
		e = &scratch;
	memset(e, 0, sizeof(*e));
	display_name(c, r, name, sizeof(name));
	if (!r->cap)
		r->cap = S3_XML_MAX;
	url = build_url(c, r);
	h = url ? pool_get(c) : NULL;
	if (!h) {
		free(url);
		snprintf(e->msg, sizeof(e->msg), "%s %s: out of memory", r->op, name);
		atomic_fetch_add(&c->failures, 1);
		return -ENOMEM;
	}

	for (int attempt = 0;; attempt++) {
		struct curl_slist *hdrs = NULL;
		curl_off_t up = 0, down = 0;
		CURLcode cc;
		int retry = 0;
		long ms;

		reset_response(r);
		errbuf[0] = '\0';
		ret = setup(c, h, r, url, &hdrs, errbuf);
		if (ret) {
			snprintf(e->msg, sizeof(e->msg), "cannot build the request");
			break;
		}
		atomic_fetch_add(&c->requests, 1);
		cc = curl_easy_perform(h);
		curl_slist_free_all(hdrs);
		curl_easy_getinfo(h, CURLINFO_SIZE_UPLOAD_T, &up);
		curl_easy_getinfo(h, CURLINFO_SIZE_DOWNLOAD_T, &down);
		atomic_fetch_add(&c->bytes_up, (uint64_t)MAX(up, 0));
		atomic_fetch_add(&c->bytes_down, (uint64_t)MAX(down, 0));

		if (cc == CURLE_OK) {
			curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->http);
			curl_easy_getinfo(h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T,
					  &r->clen);
			e->http = r->http;
			ret = http_outcome(r, e, &retry);
			if (!ret)
				break;
		} else {
			e->http = 0;
			curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &e->http);
			snprintf(e->code, sizeof(e->code), "%s",
				 curl_easy_strerror(cc));
			if (r->too_big)
				snprintf(e->msg, sizeof(e->msg),
					 "the answer is larger than %zu bytes",
					 r->cap);
			else
				snprintf(e->msg, sizeof(e->msg), "%s",
					 errbuf[0] ? errbuf : e->code);
			retry = curl_retryable(cc) && !r->too_big;
			ret = r->too_big ? -EIO : curl_errno(h, cc);
		}
		if (!retry || attempt + 1 >= tries || atomic_load(&c->cancel)) {
			attempts = attempt + 1;
			break;
		}
		atomic_fetch_add(&c->retries, 1);
		ms = backoff_ms(c, attempt);
		log_debug("s3: %s %s: %s; retry %d of %d in %ld ms", r->op,
			  name, e->msg, attempt + 1, tries - 1, ms);
		sleep_ms(c, ms);
		/* a failed connection may have left the handle half-used */
		if (cc != CURLE_OK) {
			curl_easy_cleanup(h);
			h = curl_easy_init();
			if (!h) {
				free(url);
				snprintf(e->msg, sizeof(e->msg), "%s %s: out of memory",
					 r->op, name);
				atomic_fetch_add(&c->failures, 1);
				return -ENOMEM;
			}
		}
	}
	pool_put(c, h);
	free(url);
	if (ret) {
		char detail[sizeof(e->msg)];

		snprintf(detail, sizeof(detail), "%s", e->msg);
		if (attempts > 1)
			snprintf(e->msg, sizeof(e->msg), "%s %s: %s (%d tries)",
				 r->op, name, detail, attempts);
		else
			snprintf(e->msg, sizeof(e->msg), "%s %s: %s", r->op,
				 name, detail);
		/* a missing object is an answer for HEAD and DELETE */
		if (!(ret == -ENOENT && r->absent_ok))
			atomic_fetch_add(&c->failures, 1);
		free(r->resp);
		r->resp = NULL;
		r->resp_len = 0;
	}
	return ret;
}

/* ---- operations ---- */

static int check_key(const struct s3_client *c, const char *op, const char *key,
		     struct s3_error *e)
{
	size_t n = key ? strlen(key) : 0;

	if (n && n + strlen(c->cfg.prefix) + 1 <= S3_KEY_MAX)
		return 0;
	if (e) {
		memset(e, 0, sizeof(*e));
		snprintf(e->code, sizeof(e->code), "InvalidKey");
		snprintf(e->msg, sizeof(e->msg), "%s %.64s: %s", op,
			 key ? key : "(null)",
			 n ? "key longer than 1024 bytes" : "empty key");
	}
	return -EINVAL;
}

static int put_single(struct s3_client *c, const char *key, const void *data,
		      size_t len, struct s3_error *err)
{
	struct s3_req r = {
		.op = "PUT", .method = "PUT", .key = key,
		.body = data, .body_len = len, .send_body = 1,
	};
	int ret = s3_do(c, &r, err);

	free(r.resp);
	return ret;
}

static void mpu_abort(struct s3_client *c, const char *key, const char *query)
{
	struct s3_req r = {
		.op = "ABORT", .method = "DELETE", .key = key, .query = query,
		.tries = 2,
	};
	struct s3_error e;

	if (s3_do(c, &r, &e))
		log_debug("s3: abort of a failed multipart upload: %s "
			  "(the parts stay until a lifecycle rule removes them)",
			  e.msg);
	free(r.resp);
}

static int put_multipart(struct s3_client *c, const char *key,
			 const void *data, size_t len, struct s3_error *err)
{
	size_t part = c->cfg.part_size, nparts, i;
	struct s3_param p[2];
	char *upload_id = NULL, *idq = NULL, *q;
	char **etags = NULL;
	struct sbuf body = { 0 };
	xmlDocPtr doc;
	int ret;

	/* at most 10000 parts: grow the part size in whole MiB */
	if ((len + part - 1) / part > S3_MAX_PARTS)
		part = ((len / S3_MAX_PARTS) / MiB + 1) * MiB;
	nparts = (len + part - 1) / part;

	{
		struct s3_param ip[1] = { { "uploads", NULL } };
		struct s3_req r = {
			.op = "PUT (initiate)", .method = "POST", .key = key,
			.send_body = 1,
		};

		r.query = q = query_build(ip, 1);
		if (!q)
			return -ENOMEM;
		ret = s3_do(c, &r, err);
		free(q);
		if (ret)
			return ret;
		doc = xml_parse(r.resp, r.resp_len);
		if (doc)
			upload_id = xml_strdup(xmlDocGetRootElement(doc), "UploadId");
		xmlFreeDoc(doc);
		free(r.resp);
		if (!upload_id || !*upload_id) {
			free(upload_id);
			if (err) {
				snprintf(err->code, sizeof(err->code), "MalformedXML");
				snprintf(err->msg, sizeof(err->msg),
					 "PUT (initiate) %s: no UploadId in the answer",
					 key);
			}
			return -EIO;
		}
	}
	p[0] = (struct s3_param){ "uploadId", upload_id };
	idq = query_build(p, 1);
	etags = calloc(nparts, sizeof(*etags));
	if (!idq || !etags) {
		ret = -ENOMEM;
		goto fail;
	}

	for (i = 0; i < nparts; i++) {
		char num[16];
		size_t off = i * part;
		struct s3_req r = {
			.op = "PUT (part)", .method = "PUT", .key = key,
			.body = (const char *)data + off,
			.body_len = MIN(part, len - off), .send_body = 1,
		};

		snprintf(num, sizeof(num), "%zu", i + 1);
		p[0] = (struct s3_param){ "uploadId", upload_id };
		p[1] = (struct s3_param){ "partNumber", num };
		r.query = q = query_build(p, 2);
		if (!q) {
			ret = -ENOMEM;
			goto fail;
		}
		ret = s3_do(c, &r, err);
		free(q);
		free(r.resp);
		if (ret)
			goto fail;
		if (!r.etag[0]) {
			ret = -EIO;
			if (err) {
				snprintf(err->code, sizeof(err->code), "MissingETag");
				snprintf(err->msg, sizeof(err->msg),
					 "PUT (part %zu) %s: no ETag in the answer",
					 i + 1, key);
			}
			goto fail;
		}
		etags[i] = strdup(r.etag);
		if (!etags[i]) {
			ret = -ENOMEM;
			goto fail;
		}
	}

	sb_add(&body, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		      "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
	for (i = 0; i < nparts; i++) {
		sb_addf(&body, "<Part><PartNumber>%zu</PartNumber><ETag>", i + 1);
		sb_xml_escape(&body, etags[i]);
		sb_add(&body, "</ETag></Part>");
	}
	sb_add(&body, "</CompleteMultipartUpload>");
	if (body.oom) {
		ret = -ENOMEM;
		goto fail;
	}
	{
		struct s3_req r = {
			.op = "PUT (complete)", .method = "POST", .key = key,
			.query = idq, .body = body.p, .body_len = body.len,
			.send_body = 1, .ctype = "application/xml",
			.error_in_200 = 1,
		};

		ret = s3_do(c, &r, err);
		free(r.resp);
		if (ret)
			goto fail;
	}
	goto out;

fail:
	if (idq)
		mpu_abort(c, key, idq);
	if (ret == -ENOMEM && err) {
		snprintf(err->code, sizeof(err->code), "ENOMEM");
		snprintf(err->msg, sizeof(err->msg), "PUT %s: out of memory", key);
	}
out:
	for (i = 0; etags && i < nparts; i++)
		free(etags[i]);
	free(etags);
	free(body.p);
	free(idq);
	free(upload_id);
	return ret;
}

int s3_put(struct s3_client *c, const char *key, const void *data, size_t len,
	   struct s3_error *err)
{
	int ret = check_key(c, "PUT", key, err);

	if (ret)
		return ret;
	if (len > c->cfg.multipart_threshold)
		ret = put_multipart(c, key, data, len, err);
	else
		ret = put_single(c, key, data, len, err);
	return ret;
}

int s3_get(struct s3_client *c, const char *key, uint64_t off, uint64_t len,
	   void **data, size_t *n, struct s3_error *err)
{
	char range[64];
	struct s3_req r = { .op = "GET", .method = "GET", .key = key };
	int ret = check_key(c, "GET", key, err);

	*data = NULL;
	*n = 0;
	if (ret)
		return ret;
	if (len && (len > S3_GET_MAX || off > UINT64_MAX - len)) {
		if (err) {
			memset(err, 0, sizeof(*err));
			snprintf(err->msg, sizeof(err->msg),
				 "GET %s: range too large", key);
		}
		return -EINVAL;
	}
	r.cap = S3_GET_MAX;
	if (len) {
		snprintf(range, sizeof(range), "bytes=%llu-%llu",
			 (unsigned long long)off,
			 (unsigned long long)(off + len - 1));
		r.range = range;
		r.cap = (size_t)len + S3_ERRBODY_MAX;
	} else if (off) {
		snprintf(range, sizeof(range), "bytes=%llu-", (unsigned long long)off);
		r.range = range;
	}
	ret = s3_do(c, &r, err);
	if (ret == -EIO && err && err->http == 416) {
		/* a range at or past the end reads nothing, as pread does */
		memset(err, 0, sizeof(*err));
		ret = 0;
	}
	if (ret)
		return ret;
	if (r.http == 200 && r.range) {
		/* the server ignored the range: cut it out ourselves */
		size_t from = (size_t)MIN(off, (uint64_t)r.resp_len);
		size_t cnt = r.resp_len - from;

		if (len && cnt > len)
			cnt = (size_t)len;
		memmove(r.resp, r.resp + from, cnt);
		r.resp_len = cnt;
	} else if (len && r.resp_len > len) {
		r.resp_len = (size_t)len;
	}
	if (!r.resp) {
		r.resp = malloc(1);
		if (!r.resp)
			return -ENOMEM;
	}
	*data = r.resp;
	*n = r.resp_len;
	return 0;
}

int s3_head(struct s3_client *c, const char *key, uint64_t *size,
	    struct s3_error *err)
{
	struct s3_req r = {
		.op = "HEAD", .method = "HEAD", .key = key, .absent_ok = 1,
	};
	int ret = check_key(c, "HEAD", key, err);

	if (ret)
		return ret;
	ret = s3_do(c, &r, err);
	free(r.resp);
	if (ret == -ENOENT) {
		if (err)
			memset(err, 0, sizeof(*err));
		return 0;
	}
	if (ret)
		return ret;
	if (size)
		*size = r.clen >= 0 ? (uint64_t)r.clen : 0;
	return 1;
}

int s3_delete(struct s3_client *c, const char *key, struct s3_error *err)
{
	struct s3_req r = {
		.op = "DELETE", .method = "DELETE", .key = key, .absent_ok = 1,
	};
	int ret = check_key(c, "DELETE", key, err);

	if (ret)
		return ret;
	ret = s3_do(c, &r, err);
	free(r.resp);
	if (ret == -ENOENT && (!err || strcmp(err->code, "NoSuchBucket") != 0)) {
		if (err)
			memset(err, 0, sizeof(*err));
		ret = 0;
	}
	return ret;
}

/* Is the bucket's key k under the configured prefix (and not it)? */
static int under_prefix(const struct s3_client *c, const char *k)
{
	size_t n = strlen(c->cfg.prefix);

	if (!n)
		return *k != '\0';
	return strncmp(k, c->cfg.prefix, n) == 0 && k[n] == '/' && k[n + 1];
}

/*
 * One page of ListObjectsV2. Calls fn for each key; *token becomes the
 * next continuation token (malloc'ed) or NULL at the end.
 */
static int list_page(struct s3_client *c, const char *full_prefix,
		     const char *max_keys, int tries, long timeout_ms, char **token,
		     int (*fn)(void *arg, const char *key, uint64_t size),
		     void *arg, struct s3_error *err)
{
	struct s3_param p[4];
	size_t np = 0, plen = *c->cfg.prefix ? strlen(c->cfg.prefix) + 1 : 0;
	struct s3_req r = { .op = "LIST", .method = "GET", .tries = tries,
			    .timeout_ms = timeout_ms };
	xmlNodePtr root, n;
	xmlDocPtr doc;
	char trunc[16] = "", *q;
	int ret;

	p[np++] = (struct s3_param){ "list-type", "2" };
	if (*full_prefix)
		p[np++] = (struct s3_param){ "prefix", full_prefix };
	if (*token)
		p[np++] = (struct s3_param){ "continuation-token", *token };
	if (max_keys)
		p[np++] = (struct s3_param){ "max-keys", max_keys };
	r.query = q = query_build(p, np);
	if (!q)
		return -ENOMEM;
	ret = s3_do(c, &r, err);
	free(q);
	free(*token);
	*token = NULL;
	if (ret)
		return ret;
	doc = xml_parse(r.resp, r.resp_len);
	root = doc ? xmlDocGetRootElement(doc) : NULL;
	if (!root || strcmp((const char *)root->name, "ListBucketResult") != 0) {
		ret = -EIO;
		if (err) {
			snprintf(err->code, sizeof(err->code), "MalformedXML");
			snprintf(err->msg, sizeof(err->msg),
				 "LIST s3://%s/%s: the answer is not a ListBucketResult",
				 c->cfg.bucket, full_prefix);
		}
		goto out;
	}
	for (n = root->children; n && !ret; n = n->next) {
		char *k, *sz, *end = NULL;
		unsigned long long size;

		if (n->type != XML_ELEMENT_NODE ||
		    strcmp((const char *)n->name, "Contents") != 0)
			continue;
		k = xml_strdup(n, "Key");
		sz = xml_strdup(n, "Size");
		errno = 0;
		size = sz ? strtoull(sz, &end, 10) : 0;
		if (!k || !sz || errno || end == sz || *end) {
			ret = -EIO;
			if (err) {
				snprintf(err->code, sizeof(err->code), "MalformedXML");
				snprintf(err->msg, sizeof(err->msg),
					 "LIST s3://%s/%s: an entry without a key or size",
					 c->cfg.bucket, full_prefix);
			}
		} else if (under_prefix(c, k)) {
			ret = fn(arg, k + plen, size);
		}
		free(k);
		free(sz);
	}
	if (!ret && xml_text(root, "IsTruncated", trunc, sizeof(trunc)) &&
	    strcmp(trunc, "true") == 0) {
		*token = xml_strdup(root, "NextContinuationToken");
		if (!*token || !**token) {
			free(*token);
			*token = NULL;
			ret = -EIO;
			if (err) {
				snprintf(err->code, sizeof(err->code), "MalformedXML");
				snprintf(err->msg, sizeof(err->msg),
					 "LIST s3://%s/%s: truncated without a continuation token",
					 c->cfg.bucket, full_prefix);
			}
		}
	}
out:
	xmlFreeDoc(doc);
	free(r.resp);
	return ret;
}

int s3_list(struct s3_client *c, const char *prefix,
	    int (*fn)(void *arg, const char *key, uint64_t size), void *arg,
	    struct s3_error *err)
{
	char *full, *token = NULL;
	int ret;

	if (!prefix)
		prefix = "";
	if (asprintf(&full, "%s%s%s", c->cfg.prefix,
		     *c->cfg.prefix ? "/" : "", prefix) < 0)
		return -ENOMEM;
	if (err)
		memset(err, 0, sizeof(*err));
	do {
		ret = list_page(c, full, NULL, 0, 0, &token, fn, arg, err);
	} while (!ret && token);
	free(token);
	free(full);
	return ret;
}

static int count_key(void *arg, const char *key, uint64_t size)
{
	(void)key;
	(void)size;
	(*(int *)arg)++;
	return 0;
}

int s3_check_bucket(struct s3_client *c, struct s3_error *err)
{
	char *full = NULL, *token = NULL;
	int ret, n = 0;

	if (*c->cfg.prefix && asprintf(&full, "%s/", c->cfg.prefix) < 0)
		return -ENOMEM;
	/* two tries of at most 8 s each: a mount does not wait long for a
	 * bucket that accepts connections but does not answer */
	ret = list_page(c, full ? full : "", "1", 2, 8000, &token, count_key, &n, err);
	free(token);
	free(full);
	return ret;
}

void s3_stats(struct s3_client *c, struct s3_stats *out)
{
	out->requests = atomic_load(&c->requests);
	out->retries = atomic_load(&c->retries);
	out->failures = atomic_load(&c->failures);
	out->bytes_up = atomic_load(&c->bytes_up);
	out->bytes_down = atomic_load(&c->bytes_down);
}

/* ---- set-up ---- */

static pthread_once_t s3_once = PTHREAD_ONCE_INIT;
static int s3_global_ok;

static void s3_global_init(void)
{
	s3_global_ok = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
	xmlInitParser();
}

static int has_ctl(const char *s)
{
	for (; s && *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	return 0;
}

static char *dup_or(const char *s, const char *def)
{
	return strdup(s && *s ? s : def);
}

int s3_open(struct s3_client **out, const struct s3_config *cfg, char **errmsg)
{
	struct s3_client *c;
	struct s3_config *k;
	const char *ep, *sep, *hostp;
	size_t n;
	int ret = -ENOMEM;

	*out = NULL;
	pthread_once(&s3_once, s3_global_init);
	if (!s3_global_ok) {
		set_errmsg(errmsg, "cannot initialise libcurl");
		return -EIO;
	}
	if (!cfg->endpoint || !*cfg->endpoint || !cfg->bucket || !*cfg->bucket) {
		set_errmsg(errmsg, "an S3 endpoint and a bucket are needed");
		return -EINVAL;
	}
	ep = cfg->endpoint;
	sep = strstr(ep, "://");
	if (!sep || !sep[3] ||
	    (strncmp(ep, "http://", 7) != 0 && strncmp(ep, "https://", 8) != 0)) {
		set_errmsg(errmsg, "bad S3 endpoint '%s': want http://HOST[:PORT] "
			   "or https://HOST[:PORT]", ep);
		return -EINVAL;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		goto nomem;
	k = &c->cfg;
	*k = *cfg;
	n = strlen(ep);
	while (n > 0 && ep[n - 1] == '/')
		n--;
	k->endpoint = strndup(ep, n);
	k->bucket = strdup(cfg->bucket);
	k->prefix = dup_or(cfg->prefix, "");
	k->region = dup_or(cfg->region, "us-east-1");
	k->access_key = cfg->access_key ? strdup(cfg->access_key) : NULL;
	k->secret_key = cfg->secret_key ? strdup(cfg->secret_key) : NULL;
	k->session_token = cfg->session_token && *cfg->session_token ?
			   strdup(cfg->session_token) : NULL;
	if (!k->endpoint || !k->bucket || !k->prefix || !k->region ||
	    (cfg->access_key && !k->access_key) ||
	    (cfg->secret_key && !k->secret_key) ||
	    (cfg->session_token && *cfg->session_token && !k->session_token))
		goto nomem;
	if (has_ctl(k->access_key) || has_ctl(k->secret_key) ||
	    has_ctl(k->session_token) || has_ctl(k->region) ||
	    has_ctl(k->endpoint) || has_ctl(k->bucket)) {
		set_errmsg(errmsg, "control characters in the S3 configuration "
			   "(endpoint, bucket, region or credentials)");
		ret = -EINVAL;
		goto fail;
	}
	/* the prefix never starts or ends with '/' */
	{
		char *p = k->prefix, *e;

		while (*p == '/')
			p++;
		memmove(k->prefix, p, strlen(p) + 1);
		e = k->prefix + strlen(k->prefix);
		while (e > k->prefix && e[-1] == '/')
			*--e = '\0';
	}
	if (!k->connect_timeout_ms)
		k->connect_timeout_ms = 5000;
	if (!k->request_timeout_ms)
		k->request_timeout_ms = 60000;
	if (!k->low_speed_time_s)
		k->low_speed_time_s = 20;
	if (!k->max_retries)
		k->max_retries = 6;
	if (k->max_retries < 0)
		k->max_retries = 0;
	if (!k->backoff_base_ms)
		k->backoff_base_ms = 100;
	if (k->backoff_base_ms < 0)
		k->backoff_base_ms = 0;
	if (!k->multipart_threshold)
		k->multipart_threshold = (size_t)64 * MiB;
	if (!k->part_size)
		k->part_size = (size_t)16 * MiB;
	k->part_size = MAX(k->part_size, S3_MIN_PART);

	hostp = k->endpoint + (sep - ep) + 3;
	if (k->path_style) {
		if (asprintf(&c->base, "%s/%s", k->endpoint, k->bucket) < 0)
			c->base = NULL;
	} else {
		if (asprintf(&c->base, "%.*s%s.%s", (int)(hostp - k->endpoint),
			     k->endpoint, k->bucket, hostp) < 0)
			c->base = NULL;
		c->vhost = 1;
	}
	if (!c->base ||
	    asprintf(&c->sigv4, "aws:amz:%s:s3", k->region) < 0) {
		c->sigv4 = NULL;
		goto nomem;
	}
	if (k->session_token &&
	    asprintf(&c->token_hdr, "x-amz-security-token: %s",
		     k->session_token) < 0) {
		c->token_hdr = NULL;
		goto nomem;
	}
	ret = pthread_mutex_init(&c->pool_lock, NULL);
	if (ret) {
		set_errmsg(errmsg, "cannot initialise a mutex: %s", strerror(ret));
		ret = -ret;
		goto fail;
	}
	*out = c;
	return 0;

nomem:
	set_errmsg(errmsg, "out of memory");
	ret = -ENOMEM;
fail:
	if (c) {
		s3_config_free(&c->cfg);
		free(c->base);
		free(c->sigv4);
		free(c->token_hdr);
		free(c);
	}
	return ret;
}

void s3_close(struct s3_client *c)
{
	if (!c)
		return;
	for (int i = 0; i < c->npool; i++)
		curl_easy_cleanup(c->pool[i]);
	pthread_mutex_destroy(&c->pool_lock);
	s3_config_free(&c->cfg);
	free(c->base);
	free(c->sigv4);
	free(c->token_hdr);
	free(c);
}

/* Frees every string of cfg (all malloc'ed or NULL) and clears it. */
void s3_config_free(struct s3_config *cfg)
{
	if (!cfg)
		return;
	free(cfg->endpoint);
	free(cfg->bucket);
	free(cfg->prefix);
	free(cfg->region);
	free(cfg->access_key);
	if (cfg->secret_key) {
		explicit_bzero(cfg->secret_key, strlen(cfg->secret_key));
		free(cfg->secret_key);
	}
	free(cfg->session_token);
	memset(cfg, 0, sizeof(*cfg));
}

/* ---- URLs and credentials ---- */

/* S3's bucket naming rules (the DNS-compatible ones). */
static const char *bucket_name_error(const char *b, size_t n)
{
	int digits_dots = 1;

	if (n < 3 || n > 63)
		return "must be 3 to 63 characters long";
	for (size_t i = 0; i < n; i++) {
		char ch = b[i];

		if (!(islower((unsigned char)ch) || isdigit((unsigned char)ch) ||
		      ch == '.' || ch == '-'))
			return "may only hold lowercase letters, digits, '.' and '-'";
		if (ch != '.' && !isdigit((unsigned char)ch))
			digits_dots = 0;
		if (ch == '.' && i + 1 < n && (b[i + 1] == '.' || b[i + 1] == '-'))
			return "may not hold '..' or '.-'";
		if (ch == '-' && i + 1 < n && b[i + 1] == '.')
			return "may not hold '-.'";
	}
	if (!isalnum((unsigned char)b[0]) || !isalnum((unsigned char)b[n - 1]))
		return "must begin and end with a letter or digit";
	if (digits_dots)
		return "may not look like an IP address";
	return NULL;
}

int s3_parse_url(struct s3_config *cfg, const char *url, char **errmsg)
{
	const char *b, *slash, *why, *p;
	char *bucket = NULL, *prefix = NULL;
	size_t bn, pn;

	if (!url || strncmp(url, "s3://", 5) != 0) {
		set_errmsg(errmsg, "bad S3 url '%s': want s3://BUCKET[/PREFIX]",
			   url ? url : "");
		return -EINVAL;
	}
	b = url + 5;
	slash = strchr(b, '/');
	bn = slash ? (size_t)(slash - b) : strlen(b);
	why = bucket_name_error(b, bn);
	if (why) {
		set_errmsg(errmsg, "bad S3 url '%s': the bucket name %s", url, why);
		return -EINVAL;
	}
	p = slash ? slash + 1 : "";
	while (*p == '/')
		p++;
	pn = strlen(p);
	while (pn > 0 && p[pn - 1] == '/')
		pn--;
	if (memmem(p, pn, "//", 2)) {
		set_errmsg(errmsg, "bad S3 url '%s': the prefix has an empty "
			   "path segment", url);
		return -EINVAL;
	}
	if (pn + 1 >= S3_KEY_MAX) {
		set_errmsg(errmsg, "bad S3 url '%s': the prefix is too long", url);
		return -EINVAL;
	}
	bucket = strndup(b, bn);
	prefix = strndup(p, pn);
	if (!bucket || !prefix) {
		free(bucket);
		free(prefix);
		set_errmsg(errmsg, "out of memory");
		return -ENOMEM;
	}
	free(cfg->bucket);
	free(cfg->prefix);
	cfg->bucket = bucket;
	cfg->prefix = prefix;
	return 0;
}

/* Read a small file; a malloc'ed NUL-terminated copy or -errno. */
static int read_small(int fd, const char *path, char **out, char **errmsg)
{
	struct stat st;
	char *buf;
	ssize_t got;
	size_t len = 0;

	if (fstat(fd, &st) < 0) {
		set_errmsg(errmsg, "cannot stat %s: %s", path, strerror(errno));
		return -errno;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > S3_CREDS_MAX) {
		set_errmsg(errmsg, "%s is not a regular file of at most 1 MiB",
			   path);
		return -EINVAL;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		set_errmsg(errmsg, "out of memory");
		return -ENOMEM;
	}
	while (len < (size_t)st.st_size) {
		got = read(fd, buf + len, (size_t)st.st_size - len);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			break;
		len += (size_t)got;
	}
	buf[len] = '\0';
	*out = buf;
	return 0;
}

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

struct s3_creds {
	char *ak, *sk, *tok;
};

static void creds_clear(struct s3_creds *cr)
{
	free(cr->ak);
	if (cr->sk)
		explicit_bzero(cr->sk, strlen(cr->sk));
	free(cr->sk);
	free(cr->tok);
	memset(cr, 0, sizeof(*cr));
}

static int set_str(char **dst, const char *v)
{
	char *s = strdup(v);

	if (!s)
		return -ENOMEM;
	free(*dst);
	*dst = s;
	return 0;
}

/*
 * The ~/.aws/credentials INI form: "[profile]" (or "[profile NAME]" as in
 * ~/.aws/config), then aws_access_key_id, aws_secret_access_key and
 * aws_session_token. 1 if the profile was found, 0 if not, -ENOMEM.
 * Modifies text.
 */
static int ini_creds(char *text, const char *profile, struct s3_creds *cr)
{
	int in = 0, found = 0;
	char *line, *save = NULL;

	for (line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char *s = trim(line), *eq, *k, *v;

		if (!*s || *s == '#' || *s == ';')
			continue;
		if (*s == '[') {
			char *e = strchr(s, ']'), *name;

			if (!e)
				continue;
			*e = '\0';
			name = trim(s + 1);
			if (strncmp(name, "profile ", 8) == 0)
				name = trim(name + 8);
			in = strcmp(name, profile) == 0;
			found |= in;
			continue;
		}
		if (!in || !(eq = strchr(s, '=')))
			continue;
		*eq = '\0';
		k = trim(s);
		v = trim(eq + 1);
		if ((strcasecmp(k, "aws_access_key_id") == 0 && set_str(&cr->ak, v)) ||
		    (strcasecmp(k, "aws_secret_access_key") == 0 && set_str(&cr->sk, v)) ||
		    (strcasecmp(k, "aws_session_token") == 0 && set_str(&cr->tok, v)))
			return -ENOMEM;
	}
	return found;
}

/*
 * s3fs's passwd form: "ACCESS:SECRET", or "BUCKET:ACCESS:SECRET" lines
 * of which the one naming our bucket wins. 1 if found, 0, -ENOMEM.
 */
static int passwd_creds(char *text, const char *bucket, struct s3_creds *cr)
{
	char *line, *save = NULL;
	int found = 0;

	for (line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char *s = trim(line), *c1, *c2;

		if (!*s || *s == '#' || !(c1 = strchr(s, ':')))
			continue;
		*c1 = '\0';
		c2 = strchr(c1 + 1, ':');
		if (c2 && bucket && strcmp(s, bucket) == 0) {
			*c2 = '\0';
			if (set_str(&cr->ak, c1 + 1) || set_str(&cr->sk, c2 + 1))
				return -ENOMEM;
			return 1;
		}
		if (!found && (!c2 || !bucket)) {
			if (set_str(&cr->ak, s) || set_str(&cr->sk, c1 + 1))
				return -ENOMEM;
			found = 1;
		}
	}
	return found;
}

static int profile_is_default(void)
{
	const char *p = getenv("AWS_PROFILE");

	return !p || !*p;
}

static const char *profile_name(void)
{
	return profile_is_default() ? "default" : getenv("AWS_PROFILE");
}

static int creds_from_file(const char *path, const char *bucket,
			   struct s3_creds *cr, char **errmsg)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), ret;
	struct stat st;
	char *text = NULL;

	if (fd < 0) {
		ret = -errno;
		set_errmsg(errmsg, "cannot open credentials file %s: %s", path,
			   strerror(errno));
		return ret;
	}
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		set_errmsg(errmsg, "cannot stat %s: %s", path, strerror(errno));
		goto out;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		set_errmsg(errmsg, "credentials file %s is accessible by group or "
			   "others (mode %04o): run chmod 600 %s", path,
			   (unsigned)(st.st_mode & 07777), path);
		ret = -EPERM;
		goto out;
	}
	ret = read_small(fd, path, &text, errmsg);
	if (ret)
		goto out;
	if (strchr(text, '['))
		ret = ini_creds(text, profile_name(), cr);
	else
		ret = passwd_creds(text, bucket, cr);
	if (ret == 1 && cr->ak && *cr->ak && cr->sk && *cr->sk) {
		ret = 0;
	} else if (ret >= 0) {
		set_errmsg(errmsg, "credentials file %s holds no access key and "
			   "secret%s%s%s", path, strchr(text, '[') ? " for profile '" : "",
			   strchr(text, '[') ? profile_name() : "",
			   strchr(text, '[') ? "'" : "");
		ret = -EINVAL;
	} else {
		set_errmsg(errmsg, "out of memory");
	}
out:
	if (text) {
		explicit_bzero(text, strlen(text));
		free(text);
	}
	close(fd);
	return ret;
}

int s3_load_credentials(struct s3_config *cfg, const char *creds_file,
			char **errmsg)
{
	struct s3_creds cr = { 0 };
	const char *ak = getenv("AWS_ACCESS_KEY_ID");
	const char *sk = getenv("AWS_SECRET_ACCESS_KEY");
	const char *tok = getenv("AWS_SESSION_TOKEN");
	const char *shared = getenv("AWS_SHARED_CREDENTIALS_FILE");
	const char *home = getenv("HOME");
	char *path = NULL, *text = NULL;
	int ret, fd;

	if (creds_file) {
		ret = creds_from_file(creds_file, cfg->bucket, &cr, errmsg);
		if (ret)
			goto out;
		goto found;
	}
	if (ak && *ak && sk && *sk) {
		if (set_str(&cr.ak, ak) || set_str(&cr.sk, sk) ||
		    (tok && *tok && set_str(&cr.tok, tok)))
			goto nomem;
		goto found;
	}
	if (shared && *shared)
		path = strdup(shared);
	else if (home && *home && asprintf(&path, "%s/.aws/credentials", home) < 0)
		path = NULL;
	if (path) {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			ret = read_small(fd, path, &text, errmsg);
			close(fd);
			if (ret)
				goto out;
			ret = ini_creds(text, profile_name(), &cr);
			if (ret < 0)
				goto nomem;
			if (ret == 1 && cr.ak && *cr.ak && cr.sk && *cr.sk)
				goto found;
			set_errmsg(errmsg, "no credentials for profile '%s' in %s",
				   profile_name(), path);
			ret = -ENOENT;
			goto out;
		}
	}
	set_errmsg(errmsg, "no S3 credentials: give a credentials file, set "
		   "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or write "
		   "~/.aws/credentials");
	ret = -ENOENT;
	goto out;

nomem:
	set_errmsg(errmsg, "out of memory");
	ret = -ENOMEM;
	goto out;
found:
	free(cfg->access_key);
	if (cfg->secret_key)
		explicit_bzero(cfg->secret_key, strlen(cfg->secret_key));
	free(cfg->secret_key);
	free(cfg->session_token);
	cfg->access_key = cr.ak;
	cfg->secret_key = cr.sk;
	cfg->session_token = cr.tok;
	memset(&cr, 0, sizeof(cr));
	ret = 0;
out:
	creds_clear(&cr);
	if (text) {
		explicit_bzero(text, strlen(text));
		free(text);
	}
	free(path);
	return ret;
}
