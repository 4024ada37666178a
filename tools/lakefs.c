/*
 * tools/lakefs.c — the lakefs command-line tool.
 *
 * It talks to a running daemon only through the mount (files under
 * MOUNTPOINT/.lakefs and extended attributes), so the same permission
 * checks apply to it as to any program. Each subcommand is one function.
 * The exception is restore, which has no mount to talk to: it reads the
 * bucket and writes a new state directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "catalog/journal.h"
#include "sync/remote.h"
#include "sync/s3.h"

static void usage(FILE *f)
{
	fprintf(f,
"usage: lakefs COMMAND [ARGS]\n"
"\n"
"commands:\n"
"  status MOUNTPOINT [--json]   figures of a mounted lakefs: files, blocks,\n"
"                               logical and stored bytes, dedup and\n"
"                               compression ratios\n"
"  sync MOUNTPOINT [--timeout S] [--quiet]\n"
"                               wait until everything written so far is in\n"
"                               the bucket (a progress bar on a terminal);\n"
"                               exit 1 on timeout\n"
"  verify MOUNTPOINT [--deep]   check that every referenced block is in the\n"
"                               bucket; --deep also fetches and hashes each;\n"
"                               exit 1 if any is missing or corrupt\n"
"  restore --store s3://BUCKET[/PREFIX] [--endpoint URL] --state NEWDIR\n"
"          [--region R] [--addressing path|virtual] [--creds FILE] [--insecure]\n"
"                               rebuild a state directory from the bucket\n"
"                               alone; blocks are fetched on first read\n"
"  help                         print this help\n"
"  version                      print the version\n");
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t cap = 0, n = 0;

	if (!f)
		return NULL;
	for (;;) {
		size_t r;

		if (n + 4096 + 1 > cap) {
			char *nb = realloc(buf, cap = 2 * cap + 8192);

			if (!nb) {
				free(buf);
				fclose(f);
				errno = ENOMEM;
				return NULL;
			}
			buf = nb;
		}
		r = fread(buf + n, 1, 4096, f);
		n += r;
		if (r < 4096)
			break;
	}
	fclose(f);
	buf[n] = '\0';
	*len = n;
	return buf;
}

/* The raw text of "key": value in our own flat JSON, or NULL. */
static int json_field(const char *doc, const char *key, char *out, size_t cap)
{
	char pat[128];
	const char *p, *e;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(doc, pat);
	if (!p)
		return -1;
	p += strlen(pat);
	while (*p == ' ')
		p++;
	if (*p == '"') {
		p++;
		e = strchr(p, '"');
	} else {
		e = p + strcspn(p, ",\n}");
	}
	if (!e || (size_t)(e - p) >= cap)
		return -1;
	memcpy(out, p, (size_t)(e - p));
	out[e - p] = '\0';
	return 0;
}

static void human(const char *num, char *out, size_t cap)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = strtod(num, NULL);
	int u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(out, cap, "%s B", num);
	else
		snprintf(out, cap, "%.1f %s", v, units[u]);
}

static int cmd_status(int argc, char **argv)
{
	char path[4096], val[256], hb[64];
	const char *mnt = NULL;
	int json = 0;
	size_t len;
	char *doc;

	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (!mnt)
			mnt = argv[i];
		else {
			fprintf(stderr, "lakefs status: unexpected argument '%s'\n", argv[i]);
			return 2;
		}
	}
	if (!mnt) {
		fprintf(stderr, "usage: lakefs status MOUNTPOINT [--json]\n");
		return 2;
	}
	snprintf(path, sizeof(path), "%s/.lakefs/status", mnt);
	doc = read_file(path, &len);
	if (!doc) {
		fprintf(stderr, "lakefs: cannot read %s: %s (is a lakefs mounted "
			"on %s?)\n", path, strerror(errno), mnt);
		return 1;
	}
	if (json) {
		fputs(doc, stdout);
		free(doc);
		return 0;
	}
	static const struct { const char *key, *label; int bytes; } rows[] = {
		{ "version", "version", 0 },
		{ "state_dir", "state", 0 },
		{ "store", "store", 0 },
		{ "uptime_s", "uptime (s)", 0 },
		{ "block_size", "block size", 1 },
		{ "files", "files", 0 },
		{ "dirs", "directories", 0 },
		{ "symlinks", "symlinks", 0 },
		{ "blocks", "blocks", 0 },
		{ "logical_bytes", "logical", 1 },
		{ "block_bytes", "unique data", 1 },
		{ "stored_bytes", "stored", 1 },
		{ "dedup_ratio", "dedup ratio", 0 },
		{ "compression_ratio", "compression ratio", 0 },
		{ "dirty_bytes", "unsealed in memory", 1 },
		{ "cache_bytes", "block cache", 1 },
		{ "endpoint", "endpoint", 0 },
		{ "durability", "durability", 0 },
		{ "upload_pending_blocks", "upload backlog", 0 },
		{ "upload_pending_bytes", "upload backlog", 1 },
		{ "upload_oldest_age_s", "oldest queued (s)", 0 },
		{ "uploaded_bytes", "uploaded", 1 },
		{ "upload_last_error", "last upload error", 0 },
		{ "journal_last_seq", "metadata records", 0 },
		{ "journal_shipped_seq", "records in bucket", 0 },
		{ "local_bytes", "local store", 1 },
		{ "local_cap_bytes", "local store cap", 1 },
		{ "fetched_bytes", "fetched", 1 },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		if (json_field(doc, rows[i].key, val, sizeof(val)) < 0)
			continue;
		if (strcmp(rows[i].key, "upload_last_error") == 0 && !*val)
			continue;
		if (rows[i].bytes) {
			human(val, hb, sizeof(hb));
			printf("%-20s %s\n", rows[i].label, hb);
		} else {
			printf("%-20s %s\n", rows[i].label, val);
		}
	}
	free(doc);
	return 0;
}

/* ---- sync: wait until everything written so far is in the bucket ---- */

static uint64_t json_u64(const char *doc, const char *key)
{
	char val[64];

	return json_field(doc, key, val, sizeof(val)) == 0 ?
	       strtoull(val, NULL, 10) : 0;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmd_sync(int argc, char **argv)
{
	const char *mnt = NULL;
	double timeout = 0, start = now_s();
	int quiet = 0, tty = isatty(2), fd, shown = 0;
	char path[4096], status[4096], err[400] = "";
	uint64_t target, total = 0;
	size_t len;
	char *doc;

	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
			char *end;

			timeout = strtod(argv[++i], &end);
			if (*end || timeout < 0) {
				fprintf(stderr, "lakefs sync: bad timeout '%s'\n", argv[i]);
				return 2;
			}
		} else if (strcmp(argv[i], "--quiet") == 0 || strcmp(argv[i], "-q") == 0) {
			quiet = 1;
		} else if (!mnt && argv[i][0] != '-') {
			mnt = argv[i];
		} else {
			fprintf(stderr, "lakefs sync: unexpected argument '%s'\n", argv[i]);
			return 2;
		}
	}
	if (!mnt) {
		fprintf(stderr, "usage: lakefs sync MOUNTPOINT [--timeout SECONDS] [--quiet]\n");
		return 2;
	}
	/* what the kernel still holds goes to the daemon first */
	fd = open(mnt, O_RDONLY | O_DIRECTORY);
	if (fd >= 0) {
		syncfs(fd);
		close(fd);
	}
	snprintf(path, sizeof(path), "%s/.lakefs/sync", mnt);
	doc = read_file(path, &len);
	if (!doc) {
		fprintf(stderr, "lakefs sync: cannot read %s: %s%s\n", path, strerror(errno),
			errno == EOPNOTSUPP ? " (this lakefs has no bucket)" :
			errno == ENOENT ? " (is a lakefs mounted there?)" : "");
		return 1;
	}
	target = json_u64(doc, "journal_seq");
	free(doc);
	snprintf(status, sizeof(status), "%s/.lakefs/status", mnt);
	for (;;) {
		uint64_t shipped, blocks, bytes;

		doc = read_file(status, &len);
		if (!doc) {
			fprintf(stderr, "lakefs sync: cannot read %s: %s\n", status,
				strerror(errno));
			return 1;
		}
		shipped = json_u64(doc, "journal_shipped_seq");
		blocks = json_u64(doc, "upload_pending_blocks");
		bytes = json_u64(doc, "upload_pending_bytes");
		if (json_field(doc, "upload_last_error", err, sizeof(err)) < 0 || !*err ||
		    json_u64(doc, "upload_last_error_age_s") > 10)
			if (json_field(doc, "journal_last_error", err, sizeof(err)) < 0)
				err[0] = '\0';
		free(doc);
		if (shipped >= target)
			break;
		if (bytes > total)
			total = bytes;
		if (!quiet && tty) {
			int width = 30, fill = total ? (int)((double)(total - bytes) /
							     (double)total * width) : 0;

			fprintf(stderr, "\r[%.*s%*s] %llu blocks, %.1f MiB to upload%s%.60s",
				fill, "##############################", width - fill, "",
				(unsigned long long)blocks, (double)bytes / 1048576.0,
				*err ? "; last error: " : "", err);
			shown = 1;
		}
		if (timeout > 0 && now_s() - start > timeout) {
			if (shown)
				fputc('\n', stderr);
			fprintf(stderr, "lakefs sync: timed out after %.0f s: %llu blocks "
				"(%.1f MiB) and %llu metadata records not in the bucket yet%s%s\n",
				timeout, (unsigned long long)blocks, (double)bytes / 1048576.0,
				(unsigned long long)(target - shipped),
				*err ? "; last error: " : "", err);
			return 1;
		}
		usleep(100000);
	}
	if (shown)
		fprintf(stderr, "\r%*s\r", 110, "");
	if (!quiet)
		printf("in the bucket: everything written before this sync (%.1f s)\n",
		       now_s() - start);
	return 0;
}

/* ---- verify: is every referenced block in the bucket? ---- */

static int cmd_verify(int argc, char **argv)
{
	const char *mnt = NULL;
	int deep = 0;
	char path[4096];
	const char *sum;
	size_t len;
	char *doc;
	unsigned long long checked = 0, missing = 0, corrupt = 0, unreadable = 0;

	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--deep") == 0)
			deep = 1;
		else if (!mnt && argv[i][0] != '-')
			mnt = argv[i];
		else {
			fprintf(stderr, "lakefs verify: unexpected argument '%s'\n", argv[i]);
			return 2;
		}
	}
	if (!mnt) {
		fprintf(stderr, "usage: lakefs verify MOUNTPOINT [--deep]\n");
		return 2;
	}
	snprintf(path, sizeof(path), "%s/.lakefs/%s", mnt, deep ? "verify-deep" : "verify");
	doc = read_file(path, &len);
	if (!doc) {
		fprintf(stderr, "lakefs verify: cannot read %s: %s%s\n", path, strerror(errno),
			errno == EOPNOTSUPP ? " (this lakefs has no bucket)" : "");
		return 1;
	}
	fputs(doc, stdout);
	sum = strstr(doc, "checked ");
	if (sum && sscanf(sum, "checked %llu", &checked) == 1)
		sum = strchr(sum, ':');
	if (!sum || sscanf(sum, ": %llu missing, %llu corrupt, %llu unreadable",
			   &missing, &corrupt, &unreadable) != 3) {
		fprintf(stderr, "lakefs verify: cannot read the report\n");
		free(doc);
		return 1;
	}
	free(doc);
	return missing || corrupt || unreadable ? 1 : 0;
}

/* ---- restore: a new state directory from the bucket alone ---- */

static int cmd_restore(int argc, char **argv)
{
	struct store_rec sr = { .path_style = -1 };
	const char *state = NULL, *creds = NULL, *store = NULL;
	struct restore_report rep;
	struct s3_client *s3 = NULL;
	struct s3_config cfg = { 0 };
	struct s3_error err;
	int insecure = 0, ret;
	char *msg = NULL;

	for (int i = 0; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--insecure") == 0) {
			insecure = 1;
			continue;
		}
		if (!v || a[0] != '-') {
			fprintf(stderr, "lakefs restore: unexpected argument '%s'\n", a);
			return 2;
		}
		i++;
		if (strcmp(a, "--store") == 0)
			store = v;
		else if (strcmp(a, "--endpoint") == 0)
			snprintf(sr.endpoint, sizeof(sr.endpoint), "%s", v);
		else if (strcmp(a, "--region") == 0)
			snprintf(sr.region, sizeof(sr.region), "%s", v);
		else if (strcmp(a, "--state") == 0)
			state = v;
		else if (strcmp(a, "--creds") == 0)
			creds = v;
		else if (strcmp(a, "--addressing") == 0 &&
			 (strcmp(v, "path") == 0 || strcmp(v, "virtual") == 0))
			sr.path_style = strcmp(v, "path") == 0;
		else {
			fprintf(stderr, "lakefs restore: bad option '%s %s'\n", a, v);
			return 2;
		}
	}
	if (!store || !state) {
		fprintf(stderr, "usage: lakefs restore --store s3://BUCKET[/PREFIX] "
			"[--endpoint URL] --state NEWDIR\n");
		return 2;
	}
	if (s3_parse_url(&cfg, store, &msg) < 0) {
		fprintf(stderr, "lakefs restore: %s\n", msg ? msg : "bad --store");
		free(msg);
		return 2;
	}
	snprintf(sr.url, sizeof(sr.url), "s3://%s%s%s", cfg.bucket,
		 cfg.prefix && *cfg.prefix ? "/" : "", cfg.prefix ? cfg.prefix : "");
	s3_config_free(&cfg);
	if (!sr.region[0])
		snprintf(sr.region, sizeof(sr.region), "us-east-1");
	if (sr.path_style < 0)
		sr.path_style = sr.endpoint[0] != '\0';
	if (!sr.endpoint[0])
		snprintf(sr.endpoint, sizeof(sr.endpoint), "https://s3.%s.amazonaws.com",
			 sr.region);
	ret = store_connect(&sr, creds, insecure, 0, 0, &s3, &msg);
	if (ret == 0 && s3_check_bucket(s3, &err) < 0) {
		fprintf(stderr, "lakefs restore: bucket %s at %s: %s\n", sr.url,
			sr.endpoint, err.msg);
		s3_close(s3);
		return 1;
	}
	if (ret == 0)
		ret = journal_restore(s3, sr.url, state, &rep, &msg);
	if (ret == 0 && store_rec_save(state, &sr) < 0) {
		msg = strdup("cannot write STATE/store");
		ret = -EIO;
	}
	s3_close(s3);
	if (ret < 0) {
		fprintf(stderr, "lakefs restore: %s\n", msg ? msg : strerror(-ret));
		free(msg);
		return 1;
	}
	printf("restored %s into %s: snapshot at record %llu, %llu journal records "
	       "after it (up to record %llu), %llu keys, %llu blocks (fetched on "
	       "first read)\n", sr.url, state, (unsigned long long)rep.snapshot_seq,
	       (unsigned long long)rep.records, (unsigned long long)rep.last_seq,
	       (unsigned long long)rep.keys, (unsigned long long)rep.blocks);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "status") == 0)
		return cmd_status(argc - 2, argv + 2);
	if (strcmp(argv[1], "sync") == 0)
		return cmd_sync(argc - 2, argv + 2);
	if (strcmp(argv[1], "verify") == 0)
		return cmd_verify(argc - 2, argv + 2);
	if (strcmp(argv[1], "restore") == 0)
		return cmd_restore(argc - 2, argv + 2);
	if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
		printf("lakefs %s\n", LAKEFS_VERSION);
		return 0;
	}
	fprintf(stderr, "lakefs: unknown command '%s' (try lakefs help)\n", argv[1]);
	return 2;
}
