/* sync/s3.h — a small S3-protocol client: libcurl (SigV4) and libxml2. */
#ifndef LAKEFS_SYNC_S3_H
#define LAKEFS_SYNC_S3_H

#include <stddef.h>
#include <stdint.h>

/*
 * Where the bucket is and how to talk to it. Strings are owned by the
 * caller for s3_config_*(), copied by s3_open().
 */
struct s3_config {
	char *endpoint;		/* "http://127.0.0.1:4568", "https://s3.eu-west-1.amazonaws.com" */
	char *bucket;
	char *prefix;		/* "" or "some/prefix" (no leading or trailing '/') */
	char *region;		/* "us-east-1" when not given */
	int path_style;		/* 1: ENDPOINT/BUCKET/KEY, 0: BUCKET.HOST/KEY */
	char *access_key, *secret_key, *session_token;	/* token may be NULL */
	int insecure;		/* 1: do not verify TLS certificates */
	long connect_timeout_ms;	/* default 5000 */
	long request_timeout_ms;	/* whole request, default 60000 */
	long low_speed_time_s;	/* abort a transfer stalled this long (default 20) */
	int max_retries;	/* retries after the first try, default 6 */
	long backoff_base_ms;	/* default 100; full jitter, capped at 10 s */
	size_t multipart_threshold;	/* s3_put above this uses multipart (default 64 MiB) */
	size_t part_size;	/* default 16 MiB, at least 5 MiB */
	int unsigned_payload;	/* sign bodies as UNSIGNED-PAYLOAD (they carry
				 * their own check: block hashes, zstd sums) */
};

/*
 * Parse "s3://BUCKET[/PREFIX]" into cfg->bucket and cfg->prefix
 * (malloc'ed). 0, or -EINVAL and a message in *errmsg (malloc'ed).
 */
int s3_parse_url(struct s3_config *cfg, const char *url, char **errmsg);

/*
 * Fill access_key/secret_key/session_token (malloc'ed) from, in order:
 * creds_file if not NULL (must not be readable by group or others:
 * -EPERM with a message otherwise; format: the ~/.aws/credentials INI
 * form, or one line "ACCESS:SECRET" as s3fs's passwd file), then the
 * environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
 * AWS_SESSION_TOKEN), then ~/.aws/credentials ($AWS_SHARED_CREDENTIALS_FILE
 * if set) with profile $AWS_PROFILE or "default". -ENOENT with a message
 * when none is found.
 */
int s3_load_credentials(struct s3_config *cfg, const char *creds_file,
			char **errmsg);
void s3_config_free(struct s3_config *cfg);

/*
 * The outcome of a request, for messages: the HTTP status (0 if none was
 * received), the S3 error code ("NoSuchBucket") or curl's error text, and
 * a one-line human message naming the operation and key.
 */
struct s3_error {
	long http;
	char code[64];
	char msg[512];
};

struct s3_client;

/* Copies cfg. Does not touch the network. 0 or -errno with *errmsg. */
int s3_open(struct s3_client **out, const struct s3_config *cfg, char **errmsg);
void s3_close(struct s3_client *c);

/*
 * Every call below is thread-safe (a pool of curl handles keeps the
 * connections alive between requests), retries 5xx, 429, timeouts and
 * connection failures up to max_retries with exponential backoff and full
 * jitter, and returns 0 or a negative errno:
 *   -ENOENT  NoSuchKey / NoSuchBucket / 404
 *   -EACCES  403 (InvalidAccessKeyId, SignatureDoesNotMatch, AccessDenied)
 *   -EHOSTUNREACH / -ECONNREFUSED / -ETIMEDOUT  when retries ran out on
 *            a transport failure
 *   -EIO     anything else (err says what)
 * err may be NULL. Keys are relative to the configured prefix.
 */

/* Fail fast (no retries beyond the first two) if the bucket cannot be
 * listed with these credentials: the check made at mount time. */
int s3_check_bucket(struct s3_client *c, struct s3_error *err);

/* PUT an object; above multipart_threshold it is a multipart upload
 * (aborted, best effort, on failure). */
int s3_put(struct s3_client *c, const char *key, const void *data, size_t len,
	   struct s3_error *err);

/* GET bytes [off, off+len) (len 0: to the end) into a malloc'ed buffer. */
int s3_get(struct s3_client *c, const char *key, uint64_t off, uint64_t len,
	   void **data, size_t *n, struct s3_error *err);

/* 1 and *size if the object exists, 0 if not, or -errno. */
int s3_head(struct s3_client *c, const char *key, uint64_t *size,
	    struct s3_error *err);

/* DELETE; deleting a missing object is success. */
int s3_delete(struct s3_client *c, const char *key, struct s3_error *err);

/*
 * List every key under prefix (relative to the configured prefix), in
 * order, following continuation tokens. fn gets the key (relative to the
 * configured prefix) and the object's size; a non-zero return stops the
 * listing and is returned.
 */
int s3_list(struct s3_client *c, const char *prefix,
	    int (*fn)(void *arg, const char *key, uint64_t size), void *arg,
	    struct s3_error *err);

/* From now on, stop retrying and abort transfers in progress (they fail
 * with -EIO, "cancelled"): for a quick shutdown while the bucket is down. */
void s3_cancel(struct s3_client *c);

/* Figures for status and metrics (monotonic counters). */
struct s3_stats {
	uint64_t requests, retries, failures;
	uint64_t bytes_up, bytes_down;
};
void s3_stats(struct s3_client *c, struct s3_stats *out);

/*
 * SigV4's URI encoding, as the client sends keys and query values: every
 * byte but A-Z a-z 0-9 - _ . ~ (and '/' when keep_slash) as uppercase
 * %XX. Malloc'ed; NULL when out of memory. Exposed for tests and tools.
 */
char *s3_uri_encode(const char *s, int keep_slash);

#endif
