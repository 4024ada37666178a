/*
 * tests/s3/s3check.c — the S3 client (sync/s3.c) against a live s3rver
 * and against a scripted fake server of its own.
 *
 * The s3rver is the one tests/s3lib.sh starts: S3_ENDPOINT, S3_BUCKET and
 * AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY in the environment; S3_PID, if
 * set, is its pid, stopped (SIGSTOP) for a moment to see a request time
 * out. Without S3_ENDPOINT the s3rver part is skipped.
 *
 * s3rver does not verify signatures, so what a verifying server needs (the
 * exact encoding of keys and query strings, x-amz-content-sha256 with the
 * right hash on every request, Content-Length rather than chunked bodies)
 * is checked on the wire: a fake HTTP server on a loopback port records
 * each request and answers from a script (5xx, 429, a 200 carrying an
 * <Error>, ...), which also drives the retry rules. Virtual-hosted
 * addressing is seen through http_proxy pointing at the fake server, whose
 * request line then holds the whole URL.
 *
 * Scratch files live in a mkdtemp directory under $TMPDIR or /tmp.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "sync/s3.h"
#include "tests/unit/tap.h"
#include "util/util.h"

#define MiB (1024 * 1024)

static char scratch[256];

/* ---- helpers ---- */

static void sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[32];
	unsigned int n = 0;

	EVP_Digest(data, len, md, &n, EVP_sha256(), NULL);
	hex_encode(md, 32, out);
}

static void fill_random(void *p, size_t n, uint64_t seed)
{
	unsigned char *b = p;
	uint64_t x = seed | 1;

	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		b[i] = (unsigned char)(x >> 24);
	}
}

static double elapsed_s(uint64_t since)
{
	return (double)(mono_ns() - since) / 1e9;
}

static struct s3_stats stats_of(struct s3_client *c)
{
	struct s3_stats s;

	s3_stats(c, &s);
	return s;
}

/* A loopback port nothing listens on (bound, then closed). */
static int closed_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t al = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &al) < 0)
		bail_out("cannot find a free loopback port: %s", strerror(errno));
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static struct s3_config base_cfg(const char *endpoint, const char *bucket)
{
	struct s3_config cfg = { 0 };

	cfg.endpoint = strdup(endpoint);
	cfg.bucket = strdup(bucket);
	cfg.path_style = 1;
	cfg.access_key = strdup(getenv("AWS_ACCESS_KEY_ID") ?
				getenv("AWS_ACCESS_KEY_ID") : "S3RVER");
	cfg.secret_key = strdup(getenv("AWS_SECRET_ACCESS_KEY") ?
				getenv("AWS_SECRET_ACCESS_KEY") : "S3RVER");
	if (!cfg.endpoint || !cfg.bucket || !cfg.access_key || !cfg.secret_key)
		bail_out("out of memory");
	return cfg;
}

static struct s3_client *open_or_bail(struct s3_config *cfg)
{
	struct s3_client *c = NULL;
	char *msg = NULL;
	int ret = s3_open(&c, cfg, &msg);

	if (ret)
		bail_out("s3_open: %d %s", ret, msg ? msg : "");
	return c;
}

/* ---- a scripted fake S3 server ---- */

struct fake_req {
	char line[2048];		/* "GET /b/k?x=1 HTTP/1.1" */
	char sha_hdr[80];		/* x-amz-content-sha256 as sent */
	char token[128];		/* x-amz-security-token as sent */
	char body_sha[65];
	size_t body_len;
	int chunked, has_auth, has_clen;
};

struct fake_resp {
	int status;			/* 0: no answer at all (stall) */
	const char *body;
	const char *extra;		/* more header lines, "\r\n"-terminated */
};

#define FAKE_MAX 64
static struct {
	int lfd, port;
	pthread_t thr;
	pthread_mutex_t lock;
	struct fake_resp script[FAKE_MAX];
	int nscript, next;
	struct fake_req reqs[FAKE_MAX];
	int nreqs;
	atomic_int stop;
} fake;

static void fake_script(const struct fake_resp *r, int n)
{
	pthread_mutex_lock(&fake.lock);
	memcpy(fake.script, r, sizeof(*r) * (size_t)n);
	fake.nscript = n;
	fake.next = 0;
	fake.nreqs = 0;
	pthread_mutex_unlock(&fake.lock);
}

static int fake_nreqs(void)
{
	int n;

	pthread_mutex_lock(&fake.lock);
	n = fake.nreqs;
	pthread_mutex_unlock(&fake.lock);
	return n;
}

static void hdr_value(const char *hdrs, const char *name, char *out, size_t cap)
{
	size_t n = strlen(name);

	out[0] = '\0';
	for (const char *p = hdrs; p && *p; p = strstr(p, "\r\n"), p = p ? p + 2 : NULL) {
		if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
			const char *v = p + n + 1, *e;

			while (*v == ' ')
				v++;
			e = strstr(v, "\r\n");
			snprintf(out, cap, "%.*s", (int)(e ? e - v : (long)strlen(v)), v);
			return;
		}
	}
}

static void fake_serve(int fd)
{
	char hdrs[16384], val[256], out[8192];
	size_t have = 0, clen = 0;
	struct fake_req rq = { 0 };
	struct fake_resp rs = { .status = 200, .body = "" };
	char *end = NULL, *body = NULL;
	ssize_t n;

	while (have < sizeof(hdrs) - 1) {
		n = read(fd, hdrs + have, sizeof(hdrs) - 1 - have);
		if (n < 0 && errno == EAGAIN && !atomic_load(&fake.stop))
			continue;
		if (n <= 0)
			return;
		have += (size_t)n;
		hdrs[have] = '\0';
		if ((end = strstr(hdrs, "\r\n\r\n")))
			break;
	}
	if (!end)
		return;
	end[2] = '\0';
	snprintf(rq.line, sizeof(rq.line), "%.*s",
		 (int)strcspn(hdrs, "\r"), hdrs);
	hdr_value(hdrs, "x-amz-content-sha256", rq.sha_hdr, sizeof(rq.sha_hdr));
	hdr_value(hdrs, "x-amz-security-token", rq.token, sizeof(rq.token));
	hdr_value(hdrs, "Transfer-Encoding", val, sizeof(val));
	rq.chunked = val[0] != '\0';
	hdr_value(hdrs, "Authorization", val, sizeof(val));
	rq.has_auth = strncmp(val, "AWS4-HMAC-SHA256 ", 17) == 0;
	hdr_value(hdrs, "Content-Length", val, sizeof(val));
	rq.has_clen = val[0] != '\0';
	clen = (size_t)strtoull(val, NULL, 10);
	hdr_value(hdrs, "Expect", val, sizeof(val));
	if (val[0] && write(fd, "HTTP/1.1 100 Continue\r\n\r\n", 25) < 0)
		return;
	body = malloc(clen + 1);
	if (!body)
		return;
	{
		size_t got = have - (size_t)(end + 4 - hdrs);

		got = MIN(got, clen);
		memcpy(body, end + 4, got);
		while (got < clen) {
			n = read(fd, body + got, clen - got);
			if (n < 0 && errno == EAGAIN && !atomic_load(&fake.stop))
				continue;
			if (n <= 0)
				break;
			got += (size_t)n;
		}
		rq.body_len = got;
		sha256_hex(body, got, rq.body_sha);
	}
	free(body);

	pthread_mutex_lock(&fake.lock);
	if (fake.nreqs < FAKE_MAX)
		fake.reqs[fake.nreqs++] = rq;
	if (fake.next < fake.nscript)
		rs = fake.script[fake.next++];
	pthread_mutex_unlock(&fake.lock);
	if (!rs.status) {		/* stall until the client gives up */
		char c;

		while (!atomic_load(&fake.stop) &&
		       ((n = read(fd, &c, 1)) > 0 || (n < 0 && errno == EAGAIN)))
			;
		return;
	}
	n = snprintf(out, sizeof(out), "HTTP/1.1 %d X\r\nContent-Length: %zu\r\n"
		     "Connection: close\r\n%s\r\n%s", rs.status, strlen(rs.body),
		     rs.extra ? rs.extra : "", rs.body);
	if (write(fd, out, (size_t)n) < 0)
		return;
}

static void *fake_main(void *arg)
{
	(void)arg;
	while (!atomic_load(&fake.stop)) {
		struct timeval tv = { .tv_sec = 0, .tv_usec = 200000 };
		int fd = accept(fake.lfd, NULL, NULL);

		if (fd < 0)
			continue;
		/* reads wake up too, so that a stall ends with the test */
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		fake_serve(fd);
		close(fd);
	}
	return NULL;
}

static void fake_start(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t al = sizeof(a);
	struct timeval tv = { .tv_sec = 0, .tv_usec = 200000 };

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	pthread_mutex_init(&fake.lock, NULL);
	fake.lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (fake.lfd < 0 || bind(fake.lfd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(fake.lfd, (struct sockaddr *)&a, &al) < 0 ||
	    listen(fake.lfd, 16) < 0)
		bail_out("fake server: %s", strerror(errno));
	/* accept wakes up now and then to see the stop flag */
	setsockopt(fake.lfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	fake.port = ntohs(a.sin_port);
	if (pthread_create(&fake.thr, NULL, fake_main, NULL))
		bail_out("fake server thread");
}

static void fake_stop(void)
{
	atomic_store(&fake.stop, 1);
	pthread_join(fake.thr, NULL);
	close(fake.lfd);
}

/* ---- tests that need no server ---- */

static void test_parse_url(void)
{
	static const struct {
		const char *url, *bucket, *prefix;
	} good[] = {
		{ "s3://lakefs-test", "lakefs-test", "" },
		{ "s3://lakefs-test/", "lakefs-test", "" },
		{ "s3://my.bucket-1/some/prefix/", "my.bucket-1", "some/prefix" },
		{ "s3://abc//deep/er//", "abc", "deep/er" },
	};
	static const char *const bad[] = {
		"lakefs-test", "http://lakefs-test/x", "s3://", "s3://ab",
		"s3://Upper", "s3://under_score", "s3://-dash", "s3://dash-",
		"s3://a..b", "s3://192.168.1.1", "s3://abc/x//y",
		"s3://aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	};

	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		struct s3_config cfg = { 0 };
		char *msg = NULL;
		int ret = s3_parse_url(&cfg, good[i].url, &msg);

		ok(ret == 0 && cfg.bucket && strcmp(cfg.bucket, good[i].bucket) == 0 &&
		   cfg.prefix && strcmp(cfg.prefix, good[i].prefix) == 0,
		   "s3_parse_url %s: bucket '%s', prefix '%s'", good[i].url,
		   good[i].bucket, good[i].prefix);
		if (ret)
			diag("%d %s", ret, msg ? msg : "");
		free(msg);
		s3_config_free(&cfg);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct s3_config cfg = { 0 };
		char *msg = NULL;
		int ret = s3_parse_url(&cfg, bad[i], &msg);

		ok(ret == -EINVAL && msg && strstr(msg, bad[i]) && !cfg.bucket,
		   "s3_parse_url %.40s: -EINVAL with a message naming it", bad[i]);
		if (msg)
			diag("%s", msg);
		free(msg);
		s3_config_free(&cfg);
	}
}

static void test_encode(void)
{
	char *a = s3_uri_encode("dir/a b+c=d~e_f-g.h*'()!:@,;$é", 1);
	char *b = s3_uri_encode("x/y=z+ ", 0);

	is_str(a, "dir/a%20b%2Bc%3Dd~e_f-g.h%2A%27%28%29%21%3A%40%2C%3B%24%C3%A9",
	       "keys: every byte but A-Za-z0-9-_.~/ as uppercase %%XX");
	is_str(b, "x%2Fy%3Dz%2B%20", "query values: '/' is encoded too");
	free(a);
	free(b);
}

static int write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return -1;
	fputs(text, f);
	fclose(f);
	return chmod(path, mode);
}

static void save_env(const char *name, char **slot)
{
	const char *v = getenv(name);

	*slot = v ? strdup(v) : NULL;
}

static void restore_env(const char *name, char *v)
{
	if (v)
		setenv(name, v, 1);
	else
		unsetenv(name);
	free(v);
}

static void test_credentials(void)
{
	char passwd[300], ini[300], shared[300];
	char *ak, *sk, *tok, *prof, *shf, *msg = NULL;
	struct s3_config cfg = { 0 };
	int ret;

	save_env("AWS_ACCESS_KEY_ID", &ak);
	save_env("AWS_SECRET_ACCESS_KEY", &sk);
	save_env("AWS_SESSION_TOKEN", &tok);
	save_env("AWS_PROFILE", &prof);
	save_env("AWS_SHARED_CREDENTIALS_FILE", &shf);
	unsetenv("AWS_PROFILE");

	snprintf(passwd, sizeof(passwd), "%s/passwd", scratch);
	snprintf(ini, sizeof(ini), "%s/ini", scratch);
	snprintf(shared, sizeof(shared), "%s/shared", scratch);
	if (write_file(passwd, "# s3fs form\nFILEKEY:FILE:SECRET\n", 0644) ||
	    write_file(ini, "[default]\naws_access_key_id = INIKEY\n"
		       "aws_secret_access_key = INISECRET\n", 0600) ||
	    write_file(shared, "; the shared file\n[default]\n"
		       "aws_access_key_id=DEFKEY\naws_secret_access_key=DEFSECRET\n\n"
		       "[profile other]\n  aws_access_key_id = OTHERKEY  \n"
		       "aws_secret_access_key = OTHERSECRET\n"
		       "aws_session_token = OTHERTOKEN\n", 0644))
		bail_out("cannot write credential files under %s", scratch);

	ret = s3_load_credentials(&cfg, passwd, &msg);
	ok(ret == -EPERM && msg && strstr(msg, "chmod 600") && strstr(msg, passwd) &&
	   !cfg.access_key, "a credentials file of mode 0644 is refused (-EPERM)");
	diag("%s", msg ? msg : "(no message)");
	free(msg);
	msg = NULL;
	chmod(passwd, 0640);
	ret = s3_load_credentials(&cfg, passwd, &msg);
	is_int(ret, -EPERM, "mode 0640 (group read) is refused too");
	free(msg);
	msg = NULL;
	chmod(passwd, 0600);
	ret = s3_load_credentials(&cfg, passwd, &msg);
	ok(ret == 0 && cfg.access_key && strcmp(cfg.access_key, "FILEKEY") == 0 &&
	   cfg.secret_key && strcmp(cfg.secret_key, "FILE:SECRET") == 0,
	   "mode 0600 is accepted: ACCESS:SECRET, the secret may hold ':'");
	free(msg);
	msg = NULL;
	s3_config_free(&cfg);

	ret = s3_load_credentials(&cfg, ini, &msg);
	ok(ret == 0 && cfg.access_key && strcmp(cfg.access_key, "INIKEY") == 0 &&
	   cfg.secret_key && strcmp(cfg.secret_key, "INISECRET") == 0,
	   "a credentials file in the INI form");
	free(msg);
	msg = NULL;
	s3_config_free(&cfg);

	setenv("AWS_ACCESS_KEY_ID", "ENVKEY", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "ENVSECRET", 1);
	setenv("AWS_SESSION_TOKEN", "ENVTOKEN", 1);
	setenv("AWS_SHARED_CREDENTIALS_FILE", shared, 1);
	ret = s3_load_credentials(&cfg, NULL, &msg);
	ok(ret == 0 && cfg.access_key && strcmp(cfg.access_key, "ENVKEY") == 0 &&
	   cfg.session_token && strcmp(cfg.session_token, "ENVTOKEN") == 0,
	   "the environment comes before the shared file, with its session token");
	s3_config_free(&cfg);

	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	unsetenv("AWS_SESSION_TOKEN");
	ret = s3_load_credentials(&cfg, NULL, &msg);
	ok(ret == 0 && cfg.access_key && strcmp(cfg.access_key, "DEFKEY") == 0 &&
	   !cfg.session_token, "no environment: the shared file's [default]");
	s3_config_free(&cfg);

	setenv("AWS_PROFILE", "other", 1);
	ret = s3_load_credentials(&cfg, NULL, &msg);
	ok(ret == 0 && cfg.access_key && strcmp(cfg.access_key, "OTHERKEY") == 0 &&
	   cfg.secret_key && strcmp(cfg.secret_key, "OTHERSECRET") == 0 &&
	   cfg.session_token && strcmp(cfg.session_token, "OTHERTOKEN") == 0,
	   "AWS_PROFILE=other selects [profile other], trimmed, with its token");
	s3_config_free(&cfg);

	setenv("AWS_PROFILE", "missing", 1);
	ret = s3_load_credentials(&cfg, NULL, &msg);
	ok(ret == -ENOENT && msg && strstr(msg, "missing") && !cfg.access_key,
	   "an unknown AWS_PROFILE is -ENOENT naming the profile");
	diag("%s", msg ? msg : "(no message)");
	free(msg);
	msg = NULL;

	unsetenv("AWS_PROFILE");
	setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/lakefs/creds", 1);
	ret = s3_load_credentials(&cfg, NULL, &msg);
	ok(ret == -ENOENT && msg && !cfg.access_key,
	   "no credentials anywhere: -ENOENT with a message");
	free(msg);
	msg = NULL;

	restore_env("AWS_ACCESS_KEY_ID", ak);
	restore_env("AWS_SECRET_ACCESS_KEY", sk);
	restore_env("AWS_SESSION_TOKEN", tok);
	restore_env("AWS_PROFILE", prof);
	restore_env("AWS_SHARED_CREDENTIALS_FILE", shf);
	unlink(passwd);
	unlink(ini);
	unlink(shared);
}

/* ---- the wire, against the fake server ---- */

struct list_acc {
	int n;
	uint64_t last;
	char k[64];
};

static int list_acc_fn(void *arg, const char *key, uint64_t size)
{
	struct list_acc *acc = arg;

	acc->n++;
	acc->last = size;
	snprintf(acc->k, sizeof(acc->k), "%s", key);
	return 0;
}

static void test_wire(void)
{
	char ep[64], want[256], sha[65];
	struct s3_config cfg;
	struct s3_client *c;
	struct s3_error e;
	struct s3_stats s0, s1;
	void *data = NULL;
	size_t n = 0;
	int ret;

	fake_start();
	snprintf(ep, sizeof(ep), "http://127.0.0.1:%d/", fake.port);
	cfg = base_cfg(ep, "wire");
	cfg.prefix = strdup("pre");
	cfg.session_token = strdup("TOKEN1");
	cfg.max_retries = 3;
	cfg.backoff_base_ms = 5;
	cfg.request_timeout_ms = 2000;
	cfg.multipart_threshold = 6 * MiB;
	cfg.part_size = 1;		/* raised to 5 MiB */
	c = open_or_bail(&cfg);

	/* a PUT: exact path, payload hash, Content-Length, token */
	fake_script((struct fake_resp[]){ { 200, "", NULL } }, 1);
	ret = s3_put(c, "dir/a b+c=é~", "hello", 5, &e);
	sha256_hex("hello", 5, sha);
	is_int(ret, 0, "PUT to the fake server");
	is_str(fake.reqs[0].line,
	       "PUT /wire/pre/dir/a%20b%2Bc%3D%C3%A9~ HTTP/1.1",
	       "the key is encoded in the path, after bucket and prefix");
	is_str(fake.reqs[0].sha_hdr, sha, "x-amz-content-sha256 is the payload's SHA-256");
	ok(fake.reqs[0].has_clen && !fake.reqs[0].chunked && fake.reqs[0].body_len == 5,
	   "the body goes with a Content-Length, not chunked");
	ok(fake.reqs[0].has_auth, "the request is signed (AWS4-HMAC-SHA256)");
	is_str(fake.reqs[0].token, "TOKEN1", "x-amz-security-token carries the session token");

	/* a listing: sorted, encoded query; the empty hash; continuation */
	fake_script((struct fake_resp[]){
		{ 200, "<?xml version=\"1.0\"?><ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
		  "<Contents><Key>pre/x y/1</Key><Size>3</Size></Contents>"
		  "<IsTruncated>true</IsTruncated>"
		  "<NextContinuationToken>a/b+c=</NextContinuationToken></ListBucketResult>", NULL },
		{ 200, "<ListBucketResult><Contents><Key>pre/x y/2</Key><Size>12345678901</Size>"
		  "</Contents><IsTruncated>false</IsTruncated></ListBucketResult>", NULL },
	}, 2);
	{
		struct list_acc acc = { 0 };

		ret = s3_list(c, "x y/", list_acc_fn, &acc, &e);
		ok(ret == 0 && acc.n == 2 && acc.last == 12345678901ull &&
		   strcmp(acc.k, "x y/2") == 0,
		   "s3_list follows the continuation token; keys lose the configured prefix");
	}
	is_str(fake.reqs[0].line, "GET /wire?list-type=2&prefix=pre%2Fx%20y%2F HTTP/1.1",
	       "ListObjectsV2 query: sorted, values encoded ('/' as %%2F)");
	is_str(fake.reqs[1].line,
	       "GET /wire?continuation-token=a%2Fb%2Bc%3D&list-type=2&prefix=pre%2Fx%20y%2F HTTP/1.1",
	       "the continuation token is encoded when sent back, in sorted order");
	is_str(fake.reqs[1].sha_hdr, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	       "a bodiless request carries the empty payload's hash");

	/* retries: 503 and 429 are retried, 400 is not */
	s0 = stats_of(c);
	fake_script((struct fake_resp[]){
		{ 503, "<Error><Code>SlowDown</Code><Message>m</Message></Error>", NULL },
		{ 429, "", NULL },
		{ 200, "payload", NULL },
	}, 3);
	ret = s3_get(c, "k", 0, 0, &data, &n, &e);
	s1 = stats_of(c);
	ok(ret == 0 && n == 7 && memcmp(data, "payload", 7) == 0,
	   "a GET answered 503, 429, then 200 succeeds");
	is_int(s1.retries - s0.retries, 2, "... after two retries");
	free(data);
	data = NULL;

	s0 = stats_of(c);
	fake_script((struct fake_resp[]){
		{ 400, "<Error><Code>InvalidArgument</Code><Message>no good</Message></Error>", NULL },
		{ 200, "", NULL },
	}, 2);
	ret = s3_get(c, "k", 0, 0, &data, &n, &e);
	s1 = stats_of(c);
	ok(ret == -EIO && e.http == 400 && strcmp(e.code, "InvalidArgument") == 0 &&
	   strcmp(e.msg, "GET pre/k: 400 InvalidArgument: no good") == 0,
	   "a 400 is -EIO with code and message: '%s'", e.msg);
	is_int(s1.requests - s0.requests, 1, "... and is not retried");

	s0 = stats_of(c);
	fake_script((struct fake_resp[]){
		{ 500, "", NULL }, { 500, "", NULL }, { 500, "", NULL }, { 500, "", NULL },
		{ 200, "", NULL },
	}, 5);
	ret = s3_head(c, "k", NULL, &e);
	s1 = stats_of(c);
	ok(ret == -EIO && e.http == 500, "500 four times: -EIO once max_retries (3) ran out");
	is_int(s1.requests - s0.requests, 4, "... after exactly 1 + 3 tries");
	is_int(s1.failures - s0.failures, 1, "... counted as one failure");

	/* multipart: initiate, parts, complete (a 200 with <Error> retried) */
	{
		size_t len = 11 * MiB;
		char *big = malloc(len);

		if (!big)
			bail_out("out of memory");
		fill_random(big, len, 7);
		fake_script((struct fake_resp[]){
			{ 200, "<InitiateMultipartUploadResult><Bucket>wire</Bucket><Key>pre/m</Key>"
			  "<UploadId>up/1+2=</UploadId></InitiateMultipartUploadResult>", NULL },
			{ 200, "", "ETag: \"e1\"\r\n" },
			{ 200, "", "ETag: \"e2\"\r\n" },
			{ 503, "", NULL },
			{ 200, "", "ETag: \"e3\"\r\n" },
			{ 200, "<Error><Code>InternalError</Code><Message>try again</Message></Error>", NULL },
			{ 200, "<CompleteMultipartUploadResult><ETag>\"x-3\"</ETag></CompleteMultipartUploadResult>", NULL },
		}, 7);
		ret = s3_put(c, "m", big, len, &e);
		is_int(ret, 0, "a multipart PUT over a 503 part and a 200 <Error> complete");
		is_int(fake_nreqs(), 7, "... took 7 requests");
		is_str(fake.reqs[0].line, "POST /wire/pre/m?uploads= HTTP/1.1",
		       "initiate is POST ?uploads= (a valueless parameter as 'name=')");
		is_str(fake.reqs[1].line, "PUT /wire/pre/m?partNumber=1&uploadId=up%2F1%2B2%3D HTTP/1.1",
		       "a part: partNumber before uploadId, the id encoded");
		sha256_hex(big, 5 * MiB, sha);
		ok(strcmp(fake.reqs[1].sha_hdr, sha) == 0 && fake.reqs[1].body_len == 5 * MiB,
		   "part 1 is 5 MiB (the minimum part size) with its own hash");
		sha256_hex(big + 10 * MiB, MiB, sha);
		ok(strcmp(fake.reqs[4].sha_hdr, sha) == 0 && fake.reqs[4].body_len == MiB &&
		   strcmp(fake.reqs[4].body_sha, sha) == 0,
		   "the retried last part sends the same 1 MiB again");
		is_str(fake.reqs[6].line, "POST /wire/pre/m?uploadId=up%2F1%2B2%3D HTTP/1.1",
		       "complete is POST ?uploadId=");
		ok(strcmp(fake.reqs[6].sha_hdr, fake.reqs[6].body_sha) == 0 &&
		   fake.reqs[6].body_len > 0, "complete's body is hashed too");

		fake_script((struct fake_resp[]){
			{ 200, "<InitiateMultipartUploadResult><UploadId>U2</UploadId>"
			  "</InitiateMultipartUploadResult>", NULL },
			{ 403, "<Error><Code>AccessDenied</Code><Message>no</Message></Error>", NULL },
			{ 405, "<Error><Code>MethodNotAllowed</Code><Message>no abort</Message></Error>", NULL },
		}, 3);
		ret = s3_put(c, "m", big, len, &e);
		ok(ret == -EACCES && strcmp(e.code, "AccessDenied") == 0,
		   "a part failing with 403 fails the PUT with -EACCES, not the abort's 405");
		is_str(fake.reqs[2].line, "DELETE /wire/pre/m?uploadId=U2 HTTP/1.1",
		       "... after a best-effort abort");
		free(big);
	}

	/* virtual-hosted addressing, seen through a proxy */
	s3_close(c);
	free(cfg.endpoint);
	cfg.endpoint = strdup("http://s3.example.invalid:9000");
	cfg.path_style = 0;
	c = open_or_bail(&cfg);
	snprintf(want, sizeof(want), "http://127.0.0.1:%d", fake.port);
	setenv("http_proxy", want, 1);
	unsetenv("no_proxy");
	unsetenv("NO_PROXY");
	fake_script((struct fake_resp[]){ { 200, "", NULL }, { 200, "<ListBucketResult>"
		"<IsTruncated>false</IsTruncated></ListBucketResult>", NULL } }, 2);
	ret = s3_delete(c, "k~1", &e);
	is_int(ret, 0, "DELETE virtual-hosted");
	is_str(fake.reqs[0].line, "DELETE http://wire.s3.example.invalid:9000/pre/k~1 HTTP/1.1",
	       "virtual-hosted: scheme://BUCKET.HOST:PORT/KEY");
	ret = s3_check_bucket(c, &e);
	is_int(ret, 0, "s3_check_bucket virtual-hosted");
	is_str(fake.reqs[1].line,
	       "GET http://wire.s3.example.invalid:9000/?list-type=2&max-keys=1&prefix=pre%2F HTTP/1.1",
	       "the check lists one key under the prefix, at the bucket's root '/'");
	unsetenv("http_proxy");
	s3_close(c);

	/* a server that accepts and never answers: -ETIMEDOUT, bounded */
	free(cfg.endpoint);
	cfg.endpoint = strdup(ep);
	cfg.path_style = 1;
	cfg.request_timeout_ms = 300;
	cfg.max_retries = 1;
	c = open_or_bail(&cfg);
	fake_script((struct fake_resp[]){ { 0, "", NULL }, { 0, "", NULL } }, 2);
	{
		uint64_t t0 = mono_ns();
		double took;

		ret = s3_get(c, "slow", 0, 0, &data, &n, &e);
		took = elapsed_s(t0);
		ok(ret == -ETIMEDOUT && e.http == 0 && took < 3.0,
		   "a server that never answers: -ETIMEDOUT in %.2fs (%s)", took, e.msg);
	}
	s3_close(c);
	s3_config_free(&cfg);
	fake_stop();
}

/* ---- against s3rver ---- */

struct keylist {
	int n, sorted;
	char last[1100];
	uint64_t bytes;
	char *want;			/* count only this key if set */
	int stop_after;
};

static int collect(void *arg, const char *key, uint64_t size)
{
	struct keylist *kl = arg;

	if (kl->want && strcmp(kl->want, key) != 0)
		return 0;
	if (kl->n && strcmp(kl->last, key) >= 0)
		kl->sorted = 0;
	snprintf(kl->last, sizeof(kl->last), "%s", key);
	kl->n++;
	kl->bytes += size;
	if (kl->stop_after && kl->n == kl->stop_after)
		return 7;
	return 0;
}

static void test_basic(struct s3_client *c)
{
	const char *body = "0123456789abcdef";
	struct s3_error e;
	uint64_t size = 0;
	void *data = NULL;
	size_t n = 0;
	int ret;

	ret = s3_check_bucket(c, &e);
	ok(ret == 0, "s3_check_bucket on the test bucket (%s)", e.msg);

	ret = s3_put(c, "basic/obj", body, 16, &e);
	ok(ret == 0, "s3_put basic/obj (%s)", e.msg);
	ret = s3_get(c, "basic/obj", 0, 0, &data, &n, &e);
	ok(ret == 0 && n == 16 && memcmp(data, body, 16) == 0, "s3_get reads it back");
	free(data);
	ret = s3_get(c, "basic/obj", 3, 4, &data, &n, &e);
	ok(ret == 0 && n == 4 && memcmp(data, "3456", 4) == 0, "range GET [3, 7)");
	free(data);
	ret = s3_get(c, "basic/obj", 10, 0, &data, &n, &e);
	ok(ret == 0 && n == 6 && memcmp(data, "abcdef", 6) == 0, "range GET from 10 to the end");
	free(data);
	ret = s3_get(c, "basic/obj", 12, 100, &data, &n, &e);
	ok(ret == 0 && n == 4 && memcmp(data, "cdef", 4) == 0,
	   "a range running past the end is cut short");
	free(data);
	ret = s3_get(c, "basic/obj", 16, 10, &data, &n, &e);
	ok(ret == 0 && n == 0, "a range starting at the end reads nothing (%d %s)", ret, e.msg);
	free(data);
	ret = s3_head(c, "basic/obj", &size, &e);
	ok(ret == 1 && size == 16, "s3_head: 1 and the size");

	ret = s3_head(c, "basic/missing", &size, &e);
	is_int(ret, 0, "s3_head of a missing object is 0");
	ret = s3_get(c, "basic/missing", 0, 0, &data, &n, &e);
	ok(ret == -ENOENT && e.http == 404 && strcmp(e.code, "NoSuchKey") == 0 &&
	   strstr(e.msg, "GET lakefs/basic/missing: 404 NoSuchKey"),
	   "s3_get of a missing object: -ENOENT NoSuchKey ('%s')", e.msg);

	ret = s3_delete(c, "basic/obj", &e);
	is_int(ret, 0, "s3_delete");
	ret = s3_head(c, "basic/obj", &size, &e);
	is_int(ret, 0, "... the object is gone");
	ret = s3_delete(c, "basic/obj", &e);
	is_int(ret, 0, "deleting it again is success");

	ret = s3_put(c, "basic/empty", "", 0, &e);
	ok(ret == 0, "an empty object");
	ret = s3_get(c, "basic/empty", 0, 0, &data, &n, &e);
	ok(ret == 0 && n == 0 && data, "... reads back as 0 bytes");
	free(data);
	ret = s3_put(c, "", "x", 1, &e);
	is_int(ret, -EINVAL, "an empty key is -EINVAL");
}

static void test_odd_keys(struct s3_client *c)
{
	static const char *const keys[] = {
		"odd/with space", "odd/plus+sign", "odd/eq=ual&amp", "odd/unicode-é€𝄞",
		"odd/tilde~x", "odd/star*(paren)!'", "odd/colon:at@comma,semi;dollar$",
		"odd/percent%41", "odd/question?hash#",
	};
	struct s3_error e;

	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		struct keylist kl = { .want = (char *)keys[i] };
		void *data = NULL;
		size_t n = 0;
		int ret = s3_put(c, keys[i], keys[i], strlen(keys[i]), &e);

		if (!ret)
			ret = s3_get(c, keys[i], 0, 0, &data, &n, &e);
		ok(ret == 0 && n == strlen(keys[i]) && memcmp(data, keys[i], n) == 0,
		   "key '%s': put and get (%s)", keys[i], e.msg);
		free(data);
		ret = s3_list(c, "odd/", collect, &kl, &e);
		ok(ret == 0 && kl.n == 1, "... listed under its name");
	}
}

struct many_arg {
	struct s3_client *c;
	int from, to;
	atomic_int *fails;
};

static void *put_many(void *arg)
{
	struct many_arg *a = arg;
	char key[64], val[64];

	for (int i = a->from; i < a->to; i++) {
		snprintf(key, sizeof(key), "many/%05d", i);
		snprintf(val, sizeof(val), "v%d", i);
		if (s3_put(a->c, key, val, strlen(val), NULL))
			atomic_fetch_add(a->fails, 1);
	}
	return NULL;
}

static void test_many(struct s3_client *c)
{
	enum { N = 1100, T = 4 };
	pthread_t th[T];
	struct many_arg a[T];
	atomic_int fails = 0;
	struct keylist kl = { .sorted = 1 };
	struct s3_stats s0, s1;
	uint64_t want_bytes = 0;
	struct s3_error e;
	int ret;

	for (int t = 0; t < T; t++) {
		a[t] = (struct many_arg){ c, t * N / T, (t + 1) * N / T, &fails };
		pthread_create(&th[t], NULL, put_many, &a[t]);
	}
	for (int t = 0; t < T; t++)
		pthread_join(th[t], NULL);
	is_int(atomic_load(&fails), 0, "put %d objects under many/", N);
	for (int i = 0; i < N; i++) {
		char val[64];

		want_bytes += (uint64_t)snprintf(val, sizeof(val), "v%d", i);
	}
	s0 = stats_of(c);
	ret = s3_list(c, "many/", collect, &kl, &e);
	s1 = stats_of(c);
	ok(ret == 0 && kl.n == N, "s3_list finds all %d (got %d; %s)", N, kl.n, e.msg);
	ok(kl.sorted && strcmp(kl.last, "many/01099") == 0, "... in order, keys relative to the client's prefix");
	is_int(kl.bytes, want_bytes, "... with their sizes");
	ok(s1.requests - s0.requests >= 2, "... over %llu pages (continuation tokens)",
	   (unsigned long long)(s1.requests - s0.requests));
	memset(&kl, 0, sizeof(kl));
	kl.stop_after = 10;
	ret = s3_list(c, "many/", collect, &kl, &e);
	ok(ret == 7 && kl.n == 10, "a callback's non-zero return stops the listing and is returned");
	memset(&kl, 0, sizeof(kl));
	ret = s3_list(c, "nothing-here/", collect, &kl, &e);
	ok(ret == 0 && kl.n == 0, "an empty listing");
}

static void test_prefixes(const char *endpoint, const char *bucket)
{
	struct s3_config cfg = base_cfg(endpoint, bucket);
	struct s3_client *pc, *root;
	struct keylist kl = { .sorted = 1 };
	struct s3_error e;
	int ret;

	cfg.prefix = strdup("pfx/sub/");
	pc = open_or_bail(&cfg);
	free(cfg.prefix);
	cfg.prefix = NULL;
	root = open_or_bail(&cfg);
	ret = s3_put(pc, "k1", "one", 3, &e);
	is_int(ret, 0, "put k1 with the prefix 'pfx/sub/'");
	kl.want = "pfx/sub/k1";
	ret = s3_list(root, "pfx/", collect, &kl, &e);
	ok(ret == 0 && kl.n == 1, "... it is pfx/sub/k1 in the bucket");
	kl.want = "k1";
	kl.n = 0;
	ret = s3_list(pc, "", collect, &kl, &e);
	ok(ret == 0 && kl.n == 1, "... and k1 to the prefixed client");
	ret = s3_put(root, "pfx/subzero", "x", 1, &e);
	memset(&kl, 0, sizeof(kl));
	ret = s3_list(pc, "", collect, &kl, &e);
	ok(ret == 0 && kl.n == 1, "a sibling key 'pfx/subzero' is not under 'pfx/sub'");
	ret = s3_check_bucket(pc, &e);
	is_int(ret, 0, "s3_check_bucket with a prefix");
	s3_close(pc);
	s3_close(root);
	s3_config_free(&cfg);
}

static void test_multipart(const char *endpoint, const char *bucket)
{
	struct s3_config cfg = base_cfg(endpoint, bucket);
	size_t len = 12 * MiB;
	char *big = malloc(len);
	struct s3_stats s0, s1;
	struct s3_client *c;
	struct s3_error e;
	uint64_t size = 0;
	void *data = NULL;
	size_t n = 0;
	int ret;

	if (!big)
		bail_out("out of memory");
	fill_random(big, len, 42);
	cfg.multipart_threshold = 5 * MiB;
	cfg.part_size = 5 * MiB;
	c = open_or_bail(&cfg);
	s0 = stats_of(c);
	ret = s3_put(c, "mp/big", big, len, &e);
	s1 = stats_of(c);
	ok(ret == 0, "multipart PUT of 12 MiB (%s)", e.msg);
	is_int(s1.requests - s0.requests, 5, "... as initiate, 3 parts of at most 5 MiB, complete");
	ok(s1.bytes_up - s0.bytes_up >= len, "... counting %llu bytes up",
	   (unsigned long long)(s1.bytes_up - s0.bytes_up));
	ret = s3_get(c, "mp/big", 0, 0, &data, &n, &e);
	ok(ret == 0, "GET it back (%s)", e.msg);
	is_mem(data, n, big, len, "... the same 12 MiB");
	free(data);
	ret = s3_get(c, "mp/big", 5 * MiB - 10, 20, &data, &n, &e);
	is_mem(data, n, big + 5 * MiB - 10, 20, "a range across the part boundary");
	free(data);
	ret = s3_head(c, "mp/big", &size, &e);
	ok(ret == 1 && size == len, "s3_head: 12 MiB");
	ret = s3_put(c, "mp/exact", big, 5 * MiB, &e);
	ok(ret == 0, "5 MiB exactly (at the threshold) is a single PUT");
	s3_delete(c, "mp/big", NULL);
	s3_delete(c, "mp/exact", NULL);
	s3_close(c);
	s3_config_free(&cfg);
	free(big);
}

static void test_failures(const char *endpoint, const char *bucket)
{
	struct s3_config cfg = base_cfg(endpoint, bucket);
	struct s3_stats s0, s1;
	struct s3_client *c;
	struct s3_error e;
	char ep[64];
	uint64_t t0;
	double took;
	int ret;

	free(cfg.access_key);
	cfg.access_key = strdup("NOSUCHKEY");
	c = open_or_bail(&cfg);
	s0 = stats_of(c);
	ret = s3_put(c, "fail/x", "x", 1, &e);
	s1 = stats_of(c);
	ok(ret == -EACCES && e.http == 403 && strcmp(e.code, "InvalidAccessKeyId") == 0 &&
	   strncmp(e.msg, "PUT fail/x: 403 InvalidAccessKeyId: ", 36) == 0,
	   "an unknown access key: -EACCES, '%s'", e.msg);
	is_int(s1.requests - s0.requests, 1, "... not retried");
	ret = s3_check_bucket(c, &e);
	ok(ret == -EACCES && strstr(e.msg, "InvalidAccessKeyId"),
	   "s3_check_bucket with it: -EACCES (%s)", e.msg);
	s3_close(c);
	s3_config_free(&cfg);

	cfg = base_cfg(endpoint, "no-such-bucket-lakefs");
	c = open_or_bail(&cfg);
	ret = s3_check_bucket(c, &e);
	ok(ret == -ENOENT && strcmp(e.code, "NoSuchBucket") == 0 &&
	   strstr(e.msg, "s3://no-such-bucket-lakefs/"),
	   "s3_check_bucket of a missing bucket: -ENOENT NoSuchBucket (%s)", e.msg);
	ret = s3_put(c, "x", "x", 1, &e);
	ok(ret == -ENOENT && strcmp(e.code, "NoSuchBucket") == 0,
	   "a PUT into it: -ENOENT NoSuchBucket");
	ret = s3_delete(c, "x", &e);
	is_int(ret, -ENOENT, "a DELETE in a missing bucket is not success");
	s3_close(c);
	s3_config_free(&cfg);

	snprintf(ep, sizeof(ep), "http://127.0.0.1:%d", closed_port());
	cfg = base_cfg(ep, bucket);
	cfg.max_retries = 3;
	cfg.backoff_base_ms = 20;
	cfg.connect_timeout_ms = 1000;
	c = open_or_bail(&cfg);
	s0 = stats_of(c);
	t0 = mono_ns();
	ret = s3_put(c, "x", "x", 1, &e);
	took = elapsed_s(t0);
	s1 = stats_of(c);
	ok(ret == -ECONNREFUSED && e.http == 0 && strncmp(e.msg, "PUT x: ", 7) == 0,
	   "a closed port: -ECONNREFUSED (%s)", e.msg);
	is_int(s1.retries - s0.retries, 3, "... after max_retries (3) retries");
	is_int(s1.requests - s0.requests, 4, "... 4 tries in all");
	ok(took < 2.0, "... within the backoff bound (%.2fs)", took);
	s0 = stats_of(c);
	t0 = mono_ns();
	ret = s3_check_bucket(c, &e);
	took = elapsed_s(t0);
	s1 = stats_of(c);
	ok(ret == -ECONNREFUSED && s1.requests - s0.requests == 2 && took < 2.0,
	   "s3_check_bucket on a closed port fails fast: 2 tries, %.2fs (%s)", took, e.msg);
	s3_close(c);
	s3_config_free(&cfg);
}

struct conc_arg {
	struct s3_client *c;
	int id;
	atomic_int *fails;
};

static void *conc_main(void *arg)
{
	struct conc_arg *a = arg;
	char key[64], buf[4096];

	for (int i = 0; i < 50; i++) {
		void *data = NULL;
		size_t n = 0, len = 100 + (size_t)(i * 37 + a->id * 11) % 3900;

		snprintf(key, sizeof(key), "conc/t%d/%d", a->id, i);
		fill_random(buf, len, (uint64_t)(a->id * 1000 + i + 1));
		if (s3_put(a->c, key, buf, len, NULL) ||
		    s3_get(a->c, key, 0, 0, &data, &n, NULL) ||
		    n != len || memcmp(data, buf, len) != 0)
			atomic_fetch_add(a->fails, 1);
		free(data);
	}
	return NULL;
}

static void test_concurrency(struct s3_client *c)
{
	pthread_t th[4];
	struct conc_arg a[4];
	atomic_int fails = 0;
	struct s3_stats s0, s1;

	s0 = stats_of(c);
	for (int t = 0; t < 4; t++) {
		a[t] = (struct conc_arg){ c, t, &fails };
		pthread_create(&th[t], NULL, conc_main, &a[t]);
	}
	for (int t = 0; t < 4; t++)
		pthread_join(th[t], NULL);
	s1 = stats_of(c);
	is_int(atomic_load(&fails), 0, "4 threads x 50 put+get on one client: all round trips exact");
	ok(s1.requests - s0.requests >= 400, "... %llu requests",
	   (unsigned long long)(s1.requests - s0.requests));
}

static void test_paused(const char *endpoint, const char *bucket)
{
	const char *pid_s = getenv("S3_PID");
	struct s3_config cfg;
	struct s3_client *c;
	struct s3_error e;
	void *data = NULL;
	size_t n = 0;
	uint64_t t0;
	double took;
	pid_t pid;
	int ret;

	if (!pid_s || (pid = (pid_t)atoi(pid_s)) <= 0) {
		skip(2, "S3_PID not set");
		return;
	}
	cfg = base_cfg(endpoint, bucket);
	cfg.request_timeout_ms = 500;
	cfg.max_retries = 1;
	cfg.backoff_base_ms = 10;
	c = open_or_bail(&cfg);
	s3_put(c, "paused/x", "x", 1, NULL);
	kill(pid, SIGSTOP);
	t0 = mono_ns();
	ret = s3_get(c, "paused/x", 0, 0, &data, &n, &e);
	took = elapsed_s(t0);
	kill(pid, SIGCONT);
	free(data);
	ok(ret == -ETIMEDOUT && took < 3.0,
	   "a stopped s3rver: -ETIMEDOUT in %.2fs (%s)", took, e.msg);
	ret = s3_get(c, "paused/x", 0, 0, &data, &n, &e);
	ok(ret == 0 && n == 1, "after SIGCONT the same client works again (%s)", e.msg);
	free(data);
	s3_close(c);
	s3_config_free(&cfg);
}

int main(void)
{
	const char *endpoint = getenv("S3_ENDPOINT"), *bucket = getenv("S3_BUCKET");
	const char *tmp = getenv("TMPDIR");

	setvbuf(stdout, NULL, _IOLBF, 0);
	snprintf(scratch, sizeof(scratch), "%s/lakefs-s3check.XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(scratch))
		bail_out("mkdtemp %s: %s", scratch, strerror(errno));

	test_parse_url();
	test_encode();
	test_credentials();
	test_wire();

	if (!endpoint || !*endpoint || !bucket || !*bucket) {
		skip(1, "S3_ENDPOINT and S3_BUCKET not set: no s3rver tests");
	} else {
		struct s3_config cfg = base_cfg(endpoint, bucket);
		struct s3_client *c;
		struct s3_stats s;

		cfg.prefix = strdup("lakefs");
		c = open_or_bail(&cfg);
		test_basic(c);
		test_odd_keys(c);
		test_many(c);
		test_concurrency(c);
		s = stats_of(c);
		ok(s.bytes_up > 0 && s.bytes_down > 0 && s.failures >= 1,
		   "stats: %llu requests, %llu retries, %llu failures, %llu B up, %llu B down",
		   (unsigned long long)s.requests, (unsigned long long)s.retries,
		   (unsigned long long)s.failures, (unsigned long long)s.bytes_up,
		   (unsigned long long)s.bytes_down);
		s3_close(c);
		s3_config_free(&cfg);
		test_prefixes(endpoint, bucket);
		test_multipart(endpoint, bucket);
		test_failures(endpoint, bucket);
		test_paused(endpoint, bucket);
	}
	rmdir(scratch);
	return done_testing();
}
