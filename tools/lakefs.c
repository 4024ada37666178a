/*
 * tools/lakefs.c — the lakefs command-line tool.
 *
 * It talks to a running daemon only through the mount (files under
 * MOUNTPOINT/.lakefs and extended attributes), so the same permission
 * checks apply to it as to any program. Each subcommand is one function.
 * The exception is restore, which has no mount to talk to: it reads the
 * bucket and writes a new state directory.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/stat.h>
#include <sys/xattr.h>
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
"  props get PATH [NAME]        the user.lakefs.* properties of a catalog,\n"
"                               schema or table (set on it or inherited)\n"
"  props set PATH NAME VALUE    set one (validated: a bad value is refused)\n"
"  props unset PATH NAME        remove one\n"
"  jobs MOUNTPOINT [--json] [--all]\n"
"                               promotion and refresh runs: id, state,\n"
"                               table, file (a refresh: its inputs and\n"
"                               their versions), version, rows, time, error\n"
"                               (the last 20; --all: every one kept)\n"
"  run TABLE [--no-wait] [--timeout S]\n"
"                               ingest what landed in a bronze table now\n"
"                               (no quiet period) and wait for the result;\n"
"                               exit 1 if a batch failed or was quarantined\n"
"  wait MOUNTPOINT [--timeout S]\n"
"                               return once no file waits to land and no\n"
"                               job is queued or running; exit 1 on timeout\n"
"  gold list MOUNTPOINT/CATALOG  the gold tables of a catalog: name, state,\n"
"                               version, rows, last refresh, inputs\n"
"  gold check FILE.sql MOUNTPOINT/CATALOG\n"
"                               compile a gold definition against the\n"
"                               catalog without installing it; exit 1 with\n"
"                               the message (line, column) if it is refused\n"
"  drop PATH                    remove a table (bronze files, silver table,\n"
"                               history), a volume, a volume schema or a\n"
"                               whole catalog\n"
"  grant PRIVS ON PATH TO PRINCIPAL\n"
"                               give privileges on a catalog, schema, table,\n"
"                               volume or the mount root; PRIVS: USE, READ,\n"
"                               WRITE, MANAGE or ALL, joined by commas;\n"
"                               PRINCIPAL: user:NAME, uid:N, group:NAME,\n"
"                               gid:N or everyone (needs MANAGE on PATH)\n"
"  revoke PRIVS ON PATH FROM PRINCIPAL\n"
"                               take them back (needs MANAGE on PATH)\n"
"  grants PATH [--for USER]     the grants that apply to PATH, from the root\n"
"                               down (needs MANAGE on PATH); --for: also\n"
"                               what USER (a name or a uid) may do there\n"
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

/* ---- the lake: properties, jobs, run, wait, drop ---- */

#define PROP_PREFIX "user.lakefs."

static int prop_print(const char *path, const char *name)
{
	char xname[512], val[8192];
	ssize_t n;

	snprintf(xname, sizeof(xname), PROP_PREFIX "%s", name);
	n = getxattr(path, xname, val, sizeof(val) - 1);
	if (n < 0)
		return -errno;
	val[n] = '\0';
	printf("%s=%s\n", name, val);
	return 0;
}

/* the inherited value: the nearest of PATH, its schema, its catalog */
static int prop_get_inherited(const char *path, const char *name)
{
	char p[4096];

	snprintf(p, sizeof(p), "%s", path);
	for (int up = 0; up < 3; up++) {
		char *slash;

		if (prop_print(p, name) == 0)
			return 0;
		slash = strrchr(p, '/');
		if (!slash || slash == p)
			break;
		*slash = '\0';
	}
	return -ENODATA;
}

static int cmd_props(int argc, char **argv)
{
	const char *op = argc > 0 ? argv[0] : "", *path = argc > 1 ? argv[1] : NULL;

	if (!path) {
		fprintf(stderr, "usage: lakefs props get|set|unset PATH [NAME [VALUE]]\n");
		return 2;
	}
	if (strcmp(op, "get") == 0 && argc == 3) {
		if (prop_get_inherited(path, argv[2]) < 0) {
			fprintf(stderr, "lakefs props: %s: %s is not set\n", path, argv[2]);
			return 1;
		}
		return 0;
	}
	if (strcmp(op, "get") == 0 && argc == 2) {
		char names[65536];
		ssize_t n = listxattr(path, names, sizeof(names));

		if (n < 0) {
			fprintf(stderr, "lakefs props: %s: %s\n", path, strerror(errno));
			return 1;
		}
		for (ssize_t off = 0; off < n; off += (ssize_t)strlen(names + off) + 1)
			if (strncmp(names + off, PROP_PREFIX, strlen(PROP_PREFIX)) == 0)
				prop_print(path, names + off + strlen(PROP_PREFIX));
		return 0;
	}
	if (strcmp(op, "set") == 0 && argc == 4) {
		char xname[512];

		snprintf(xname, sizeof(xname), PROP_PREFIX "%s", argv[2]);
		if (setxattr(path, xname, argv[3], strlen(argv[3]), 0) < 0) {
			fprintf(stderr, "lakefs props: %s: cannot set %s: %s%s\n", path,
				argv[2], strerror(errno), errno == EINVAL ?
				" (the daemon's log says why)" : "");
			return 1;
		}
		return 0;
	}
	if (strcmp(op, "unset") == 0 && argc == 3) {
		char xname[512];

		snprintf(xname, sizeof(xname), PROP_PREFIX "%s", argv[2]);
		if (removexattr(path, xname) < 0) {
			fprintf(stderr, "lakefs props: %s: cannot unset %s: %s\n", path,
				argv[2], strerror(errno));
			return 1;
		}
		return 0;
	}
	fprintf(stderr, "usage: lakefs props get|set|unset PATH [NAME [VALUE]]\n");
	return 2;
}

static int cmd_jobs(int argc, char **argv)
{
	const char *mnt = NULL;
	int json = 0, all = 0;
	char path[4096], *doc, *line, *save = NULL;
	size_t len, nlines = 0, skip = 0;

	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (strcmp(argv[i], "--all") == 0)
			all = 1;
		else if (!mnt)
			mnt = argv[i];
	}
	if (!mnt) {
		fprintf(stderr, "usage: lakefs jobs MOUNTPOINT [--json] [--all]\n");
		return 2;
	}
	snprintf(path, sizeof(path), "%s/.lakefs/jobs", mnt);
	if (!(doc = read_file(path, &len))) {
		fprintf(stderr, "lakefs jobs: cannot read %s: %s (is a lakefs mounted "
			"there?)\n", path, strerror(errno));
		return 1;
	}
	if (json) {
		fputs(doc, stdout);
		free(doc);
		return 0;
	}
	for (size_t i = 0; i < len; i++)
		nlines += doc[i] == '\n';
	if (!all && nlines > 20)
		skip = nlines - 20;
	printf("%6s  %-11s  %-28s  %-24s  %7s  %9s  %9s  %6s  %7s  %s\n", "ID", "STATE",
	       "TABLE", "FILE", "VERSION", "READ", "WRITTEN", "QUAR", "SECONDS", "ERROR");
	for (line = strtok_r(doc, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char id[32], st[32], tb[256], fl[256], ver[32], rd[32], wr[32], q[32],
		     sec[32] = "-", er[256] = "";

		if (skip) {
			skip--;
			continue;
		}
		if (json_field(line, "id", id, sizeof(id)) < 0 ||
		    json_field(line, "state", st, sizeof(st)) < 0)
			continue;
		if (json_field(line, "table", tb, sizeof(tb)) < 0)
			tb[0] = '\0';
		if (json_field(line, "file", fl, sizeof(fl)) < 0)
			fl[0] = '\0';
		if (!fl[0] && strstr(line, "\"inputs\":[")) {
			/* a gold refresh: its inputs and their versions */
			const char *p = strstr(line, "\"inputs\":[") + 10;
			size_t k = 0;

			while (*p && *p != ']' && k + 40 < sizeof(fl)) {
				char t[200], v[32];

				if (json_field(p, "table", t, sizeof(t)) < 0)
					break;
				if (json_field(p, "version", v, sizeof(v)) < 0 &&
				    json_field(p, "files", v, sizeof(v)) < 0)
					v[0] = '\0';
				k += (size_t)snprintf(fl + k, sizeof(fl) - k, "%s%s@%s",
						      k ? "," : "", t, v);
				p = strchr(p + 1, '}');
				if (!p)
					break;
				p++;
			}
		}
		json_field(line, "version", ver, sizeof(ver));
		json_field(line, "rows_read", rd, sizeof(rd));
		json_field(line, "rows_written", wr, sizeof(wr));
		json_field(line, "rows_quarantined", q, sizeof(q));
		json_field(line, "seconds", sec, sizeof(sec));
		if (json_field(line, "error", er, sizeof(er)) < 0 || strcmp(er, "null") == 0)
			er[0] = '\0';
		printf("%6s  %-11s  %-28s  %-24s  %7s  %9s  %9s  %6s  %7s  %s\n", id, st, tb,
		       fl, ver, rd, wr, q, sec, er);
	}
	free(doc);
	return 0;
}

static int parse_timeout(const char *cmd, const char *s, double *out)
{
	char *end;

	*out = strtod(s, &end);
	if (*end || *out < 0) {
		fprintf(stderr, "lakefs %s: bad --timeout '%s'\n", cmd, s);
		return -1;
	}
	return 0;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static int cmd_wait(int argc, char **argv)
{
	const char *mnt = NULL;
	double timeout = 0, start = now_s();
	char path[4096];

	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
			if (parse_timeout("wait", argv[++i], &timeout) < 0)
				return 2;
		} else if (!mnt) {
			mnt = argv[i];
		}
	}
	if (!mnt) {
		fprintf(stderr, "usage: lakefs wait MOUNTPOINT [--timeout S]\n");
		return 2;
	}
	snprintf(path, sizeof(path), "%s/.lakefs/status", mnt);
	for (;;) {
		size_t len;
		char *doc = read_file(path, &len);
		uint64_t busy;

		if (!doc) {
			fprintf(stderr, "lakefs wait: cannot read %s: %s\n", path,
				strerror(errno));
			return 1;
		}
		busy = json_u64(doc, "jobs_queued") + json_u64(doc, "jobs_running") +
		       json_u64(doc, "jobs_waiting");
		free(doc);
		if (busy == 0)
			return 0;
		if (timeout > 0 && now_s() - start > timeout) {
			fprintf(stderr, "lakefs wait: still busy after %.0f s\n", timeout);
			return 1;
		}
		sleep_ms(100);
	}
}

static int table_status(const char *path, char *buf, size_t cap)
{
	ssize_t n = getxattr(path, PROP_PREFIX "status", buf, cap - 1);

	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return 0;
}

/* The mount root above path: the nearest directory holding .lakefs/status. */
static int mount_root(const char *path, char *out, size_t cap)
{
	char p[4096], probe[4200];
	struct stat st;

	if (!realpath(path, p))
		return -errno;
	for (;;) {
		char *slash;

		snprintf(probe, sizeof(probe), "%s/.lakefs/status", p);
		if (stat(probe, &st) == 0) {
			snprintf(out, cap, "%s", p);
			return 0;
		}
		slash = strrchr(p, '/');
		if (!slash || slash == p)
			return -ENOENT;
		*slash = '\0';
	}
}

static int cmd_run(int argc, char **argv)
{
	const char *table = NULL;
	double timeout = 0, start;
	int wait = 1;
	char st[16384], before[32] = "", last[32] = "";

	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
			if (parse_timeout("run", argv[++i], &timeout) < 0)
				return 2;
		} else if (strcmp(argv[i], "--no-wait") == 0) {
			wait = 0;
		} else if (!table) {
			table = argv[i];
		}
	}
	if (!table) {
		fprintf(stderr, "usage: lakefs run TABLE [--no-wait] [--timeout S]\n");
		return 2;
	}
	if (table_status(table, st, sizeof(st)) == 0) {
		const char *lj = strstr(st, "\"last_job\":{");

		if (lj)
			json_field(lj, "id", before, sizeof(before));
	}
	if (setxattr(table, PROP_PREFIX "run", "now", 3, 0) < 0) {
		fprintf(stderr, "lakefs run: %s: %s%s\n", table, strerror(errno),
			errno == EINVAL ? " (not a bronze or silver table)" : "");
		return 1;
	}
	if (!wait)
		return 0;
	start = now_s();
	for (;;) {
		char state[32];

		if (table_status(table, st, sizeof(st)) < 0) {
			fprintf(stderr, "lakefs run: %s: %s\n", table, strerror(errno));
			return 1;
		}
		if (json_field(st, "state", state, sizeof(state)) == 0 &&
		    strcmp(state, "idle") == 0)
			break;
		if (timeout > 0 && now_s() - start > timeout) {
			fprintf(stderr, "lakefs run: %s still busy after %.0f s\n", table,
				timeout);
			return 1;
		}
		sleep_ms(100);
	}
	{
		const char *lj = strstr(st, "\"last_job\":{");
		char tname[300] = "", root[4096], path[4200], *doc, *line, *save = NULL;
		int bad = 0, seen = 0;
		size_t len;

		if (lj) {
			json_field(lj, "id", last, sizeof(last));
			json_field(lj, "table", tname, sizeof(tname));
		}
		if (!lj || strcmp(before, last) == 0) {
			printf("%s: nothing new to ingest\n", table);
			return 0;
		}
		/* every job of this run: those of the table after the last one
		 * before it, from the mount's job list */
		if (mount_root(table, root, sizeof(root)) < 0) {
			fprintf(stderr, "lakefs run: %s: cannot find the mount's .lakefs\n",
				table);
			return 1;
		}
		snprintf(path, sizeof(path), "%s/.lakefs/jobs", root);
		if (!(doc = read_file(path, &len))) {
			fprintf(stderr, "lakefs run: cannot read %s: %s\n", path, strerror(errno));
			return 1;
		}
		for (line = strtok_r(doc, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
			char id[32], tb[300], jst[32] = "", err[512] = "", ver[32] = "",
			     rows[32] = "", file[512] = "";

			if (json_field(line, "id", id, sizeof(id)) < 0 ||
			    json_field(line, "table", tb, sizeof(tb)) < 0 || strcmp(tb, tname) ||
			    strtoull(id, NULL, 10) <= strtoull(before, NULL, 10))
				continue;
			json_field(line, "state", jst, sizeof(jst));
			json_field(line, "error", err, sizeof(err));
			json_field(line, "version", ver, sizeof(ver));
			json_field(line, "rows_total", rows, sizeof(rows));
			json_field(line, "file", file, sizeof(file));
			seen++;
			if (strcmp(jst, "done") == 0 || strcmp(jst, "skipped") == 0) {
				printf("%s: %s: %s: version %s, %s rows\n", table, file, jst, ver,
				       rows);
			} else {
				fprintf(stderr, "lakefs run: %s: %s: job %s %s: %s\n", table, file,
					id, jst, strcmp(err, "null") ? err : "");
				bad = 1;
			}
		}
		free(doc);
		if (!seen)
			printf("%s: nothing new to ingest\n", table);
		return bad;
	}
}

static int gold_list(const char *cat)
{
	char dir[4200], st[16384];
	DIR *d;
	struct dirent *e;
	int n = 0;

	snprintf(dir, sizeof(dir), "%s/gold", cat);
	if (!(d = opendir(dir))) {
		fprintf(stderr, "lakefs gold list: %s: %s\n", dir, strerror(errno));
		return 1;
	}
	printf("%-24s %-6s %-11s %8s %10s  %-24s  %s\n", "NAME", "STATE", "LAST", "VERSION",
	       "ROWS", "REFRESHED", "INPUTS");
	while ((e = readdir(d)) != NULL) {
		char path[4400], rec[256] = "", last[32] = "-", when[64] = "-",
		     inputs[2048] = "-", state[16] = "", ver[32] = "0", rows[32] = "0";
		const char *lj, *p;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (table_status(path, st, sizeof(st)) < 0)
			continue;	/* a definition file, not a table */
		json_field(st, "state", state, sizeof(state));
		if (json_field(st, "record", rec, sizeof(rec)) == 0) {
			if ((p = strstr(rec, "version=")))
				snprintf(ver, sizeof(ver), "%.*s", (int)strcspn(p + 8, " "), p + 8);
			if ((p = strstr(rec, "rows=")))
				snprintf(rows, sizeof(rows), "%.*s", (int)strcspn(p + 5, " "), p + 5);
		}
		if ((lj = strstr(st, "\"last_job\":{"))) {
			json_field(lj, "state", last, sizeof(last));
			json_field(lj, "finished", when, sizeof(when));
			if ((p = strstr(lj, "\"inputs\":["))) {
				size_t k = strcspn(p + 10, "]");

				snprintf(inputs, sizeof(inputs), "%.*s]", (int)k + 1, p + 10);
			}
		}
		printf("%-24s %-6s %-11s %8s %10s  %-24s  %s\n", e->d_name, state, last, ver,
		       rows, when, inputs);
		n++;
	}
	closedir(d);
	if (!n)
		printf("(no gold tables in %s)\n", cat);
	return 0;
}

static int gold_check(const char *file, const char *cat)
{
	char tmp[4200], msg[8192];
	size_t len;
	char *sql = read_file(file, &len);
	int fd, bad = 0;
	ssize_t n;

	if (!sql) {
		fprintf(stderr, "lakefs gold check: %s: %s\n", file, strerror(errno));
		return 2;
	}
	/* a leading dot: compiled at close, never installed */
	snprintf(tmp, sizeof(tmp), "%s/gold/.check-%d.sql", cat, (int)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0) {
		fprintf(stderr, "lakefs gold check: %s: %s\n", tmp, strerror(errno));
		free(sql);
		return 2;
	}
	if (write(fd, sql, len) != (ssize_t)len) {
		fprintf(stderr, "lakefs gold check: %s: %s\n", tmp, strerror(errno));
		bad = 2;
	}
	free(sql);
	if (close(fd) < 0 && errno == EINVAL && !bad)
		bad = 1;
	if (bad == 1) {
		n = getxattr(tmp, PROP_PREFIX "error", msg, sizeof(msg) - 1);
		msg[n > 0 ? n : 0] = '\0';
		fprintf(stderr, "%s: %s\n", file, n > 0 ? msg : "refused (see the daemon's log)");
	} else if (!bad) {
		printf("%s: ok\n", file);
	}
	unlink(tmp);
	return bad;
}

static int cmd_gold(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[0], "list") == 0)
		return gold_list(argv[1]);
	if (argc == 3 && strcmp(argv[0], "check") == 0)
		return gold_check(argv[1], argv[2]);
	fprintf(stderr, "usage: lakefs gold list MOUNTPOINT/CATALOG\n"
		"       lakefs gold check FILE.sql MOUNTPOINT/CATALOG\n");
	return 2;
}

static int cmd_drop(int argc, char **argv)
{
	struct stat st;
	double start = now_s();

	if (argc != 1) {
		fprintf(stderr, "usage: lakefs drop PATH\n");
		return 2;
	}
	if (setxattr(argv[0], PROP_PREFIX "drop", "yes", 3, 0) < 0) {
		fprintf(stderr, "lakefs drop: %s: %s\n", argv[0], strerror(errno));
		return 1;
	}
	while (stat(argv[0], &st) == 0) {
		if (now_s() - start > 600) {
			fprintf(stderr, "lakefs drop: %s is still there after 600 s (see "
				"lakefs jobs)\n", argv[0]);
			return 1;
		}
		sleep_ms(50);
	}
	return 0;
}

/* ---- access: grant, revoke, grants ---- */

/*
 * The daemon does the work and the checks; the tool validates the text
 * first so that a typo is named here rather than as a bare EINVAL, and
 * reads user.lakefs.privileges before a grant so that a path outside a
 * lakefs (where setting user.lakefs.grant would just store an attribute)
 * is refused.
 */

static const char *const acc_privs[] = { "use", "read", "write", "manage", "all" };

/* "use,read" or "ALL", case-insensitive; copied uppercase into out. */
static int acc_parse_privs(const char *s, char *out, size_t cap)
{
	size_t n = 0;

	if (!*s)
		return -1;
	while (*s) {
		size_t len = strcspn(s, ","), i;

		for (i = 0; i < sizeof(acc_privs) / sizeof(acc_privs[0]); i++)
			if (strlen(acc_privs[i]) == len && strncasecmp(s, acc_privs[i], len) == 0)
				break;
		if (i == sizeof(acc_privs) / sizeof(acc_privs[0]) || n + len + 2 > cap)
			return -1;
		for (size_t k = 0; k < len; k++)
			out[n++] = (char)toupper((unsigned char)s[k]);
		s += len;
		if (*s == ',') {
			if (!s[1])
				return -1;
			out[n++] = ',';
			s++;
		}
	}
	out[n] = '\0';
	return 0;
}

static int acc_number(const char *s, unsigned long *out)
{
	char *end;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	*out = strtoul(s, &end, 10);
	return *end || errno || *out >= (unsigned long)(uint32_t)-1 ? -1 : 0;
}

/*
 * PRINCIPAL as the daemon takes it: user:NAME, uid:N, group:NAME, gid:N or
 * everyone (the keywords in any case). Returns 0, or 2 for text of the
 * wrong form and 1 for a name the user or group database does not know,
 * after saying so on stderr.
 */
static int acc_parse_principal(const char *cmd, const char *s, char *out, size_t cap)
{
	static const char *const kinds[] = { "user:", "uid:", "group:", "gid:" };
	const char *hint;
	unsigned long n;

	if (strcasecmp(s, "everyone") == 0) {
		snprintf(out, cap, "everyone");
		return 0;
	}
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		size_t kl = strlen(kinds[i]);
		const char *v = s + kl;

		if (strncasecmp(s, kinds[i], kl) != 0)
			continue;
		if (!*v || strlen(v) >= cap - kl || strpbrk(v, " \t\n")) {
			fprintf(stderr, "lakefs %s: bad principal '%s'\n", cmd, s);
			return 2;
		}
		if (i % 2 == 1 && acc_number(v, &n) < 0) {
			fprintf(stderr, "lakefs %s: bad principal '%s': '%s' takes a "
				"number\n", cmd, s, kinds[i]);
			return 2;
		}
		if (i == 0 && !getpwnam(v)) {
			fprintf(stderr, "lakefs %s: no such user '%s' (for a uid without a "
				"name, say uid:N)\n", cmd, v);
			return 1;
		}
		if (i == 2 && !getgrnam(v)) {
			fprintf(stderr, "lakefs %s: no such group '%s' (for a gid without a "
				"name, say gid:N)\n", cmd, v);
			return 1;
		}
		snprintf(out, cap, "%s%s", kinds[i], v);
		return 0;
	}
	hint = getpwnam(s) ? "user:" : getgrnam(s) ? "group:" : NULL;
	fprintf(stderr, "lakefs %s: bad principal '%s': say user:NAME, uid:N, group:NAME, "
		"gid:N or everyone", cmd, s);
	if (hint)
		fprintf(stderr, " (%s%s?)", hint, s);
	fputc('\n', stderr);
	return 2;
}

/* Say why an access request on path failed; what is "granting", etc. */
static void acc_explain(const char *cmd, const char *what, const char *path, int err)
{
	switch (err) {
	case EACCES:
	case EPERM:
		fprintf(stderr, "lakefs %s: permission denied: %s needs MANAGE on %s\n",
			cmd, what, path);
		break;
	case EINVAL:
		fprintf(stderr, "lakefs %s: %s is not a securable: grants go on the mount "
			"root, a catalog, a schema, a table or a volume\n", cmd, path);
		break;
	case ENODATA:
	case EOPNOTSUPP:
		fprintf(stderr, "lakefs %s: %s is not in a lakefs with access control\n",
			cmd, path);
		break;
	case ENOENT:
		fprintf(stderr, "lakefs %s: %s: no such file or directory (or not "
			"visible to you)\n", cmd, path);
		break;
	case ENOTCONN:
		fprintf(stderr, "lakefs %s: %s: the lakefs daemon is gone (unmount with "
			"fusermount3 -u and mount again)\n", cmd, path);
		break;
	default:
		fprintf(stderr, "lakefs %s: %s: %s\n", cmd, path, strerror(err));
		break;
	}
}

static int mount_root(const char *path, char *out, size_t cap);

/*
 * A short xattr value into buf, without a trailing newline; -errno. The
 * kernel lets only those who may read a directory read its xattrs, so the
 * caller's privileges on a securable it may not list are asked of the
 * mount root instead, as user.lakefs.privileges:/PATH.
 */
static int acc_get(const char *path, const char *name, char *buf, size_t cap)
{
	ssize_t n = getxattr(path, name, buf, cap - 1);

	if (n < 0 && errno == EACCES && strcmp(name, PROP_PREFIX "privileges") == 0) {
		char root[4096], real[4096], alt[4400];
		size_t rl;

		if (mount_root(path, root, sizeof(root)) < 0 || !realpath(path, real))
			return -EACCES;
		rl = strlen(root);
		if (strncmp(real, root, rl) != 0)
			return -EACCES;
		snprintf(alt, sizeof(alt), "%s:%s", name, real[rl] ? real + rl : "/");
		n = getxattr(root, alt, buf, cap - 1);
	}
	if (n < 0)
		return -errno;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	buf[n] = '\0';
	return 0;
}

/* grant and revoke: argv is PRIVS ON PATH TO|FROM PRINCIPAL */
static int acc_change(const char *cmd, int argc, char **argv)
{
	int grant = strcmp(cmd, "grant") == 0, ret;
	char privs[64], who[300], val[400], mine[64];
	const char *path;

	if (argc != 5 || strcasecmp(argv[1], "on") != 0 ||
	    (strcasecmp(argv[3], "to") != 0 && (grant || strcasecmp(argv[3], "from") != 0))) {
		fprintf(stderr, grant ? "usage: lakefs grant PRIVS ON PATH TO PRINCIPAL\n" :
			"usage: lakefs revoke PRIVS ON PATH FROM PRINCIPAL\n");
		return 2;
	}
	path = argv[2];
	if (acc_parse_privs(argv[0], privs, sizeof(privs)) < 0) {
		fprintf(stderr, "lakefs %s: bad privileges '%s': say USE, READ, WRITE, "
			"MANAGE or ALL, several joined by commas\n", cmd, argv[0]);
		return 2;
	}
	if ((ret = acc_parse_principal(cmd, argv[4], who, sizeof(who))) != 0)
		return ret;
	ret = acc_get(path, PROP_PREFIX "privileges", mine, sizeof(mine));
	if (ret == -ENODATA || ret == -EOPNOTSUPP || ret == -ENOENT || ret == -ENOTCONN) {
		acc_explain(cmd, "", path, -ret);
		return 1;
	}
	snprintf(val, sizeof(val), "%s %s", privs, who);
	if (setxattr(path, grant ? PROP_PREFIX "grant" : PROP_PREFIX "revoke", val,
		     strlen(val), 0) < 0) {
		acc_explain(cmd, grant ? "granting" : "revoking", path, errno);
		return 1;
	}
	return 0;
}

static int cmd_grant(int argc, char **argv)
{
	return acc_change("grant", argc, argv);
}

static int cmd_revoke(int argc, char **argv)
{
	return acc_change("revoke", argc, argv);
}

/* USER of --for: a name in the user database, else a number */
static int acc_uid(const char *user, unsigned long *uid)
{
	struct passwd *pw = getpwnam(user);

	if (pw) {
		*uid = pw->pw_uid;
		return 0;
	}
	return acc_number(user, uid);
}

#define ACC_COLS 4

static int cmd_grants(int argc, char **argv)
{
	static const char *const head[ACC_COLS] = { "SECURABLE", "PRINCIPAL", "PRIVILEGES",
						   "FROM" };
	const char *path = NULL, *user = NULL;
	char *doc = NULL, *line, *save = NULL, eff[64];
	size_t width[ACC_COLS], cap = 65536 + 1;
	unsigned long uid = 0;
	int ret = 1, err;
	ssize_t n;

	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--for") == 0 && i + 1 < argc && !user) {
			user = argv[++i];
		} else if (!path && argv[i][0] != '-') {
			path = argv[i];
		} else {
			fprintf(stderr, "lakefs grants: unexpected argument '%s'\n", argv[i]);
			return 2;
		}
	}
	if (!path) {
		fprintf(stderr, "usage: lakefs grants PATH [--for USER]\n");
		return 2;
	}
	if (user && acc_uid(user, &uid) < 0) {
		fprintf(stderr, "lakefs grants: no such user '%s'\n", user);
		return 1;
	}
	if (!(doc = malloc(cap))) {
		fprintf(stderr, "lakefs grants: out of memory\n");
		return 1;
	}
	n = getxattr(path, PROP_PREFIX "grants", doc, cap - 1);
	if (n < 0) {
		err = errno;
		/* a file inside a table or volume has no grants, but does
		 * answer for its privileges */
		if ((err == ENODATA || err == EOPNOTSUPP) &&
		    acc_get(path, PROP_PREFIX "privileges", eff, sizeof(eff)) == 0)
			err = EINVAL;
		if (err == ERANGE)
			fprintf(stderr, "lakefs grants: %s: the grants do not fit in "
				"64 KiB\n", path);
		else
			acc_explain("grants", "listing grants", path, err);
		if ((err == EACCES || err == EPERM) &&
		    acc_get(path, PROP_PREFIX "privileges", eff, sizeof(eff)) == 0)
			fprintf(stderr, "lakefs grants: your own privileges on %s: %s\n",
				path, eff);
		goto out;
	}
	doc[n] = '\0';
	for (int c = 0; c < ACC_COLS; c++)
		width[c] = strlen(head[c]);
	/* two passes: the widths of the columns, then the rows */
	for (int pass = 0; pass < 2; pass++) {
		const char *p = doc;
		char row[4096];

		if (pass == 1)
			printf("%-*s  %-*s  %-*s  %s\n", (int)width[0], head[0], (int)width[1],
			       head[1], (int)width[2], head[2], head[3]);
		while (*p) {
			size_t len = strcspn(p, "\n");
			char *f[ACC_COLS];
			int c = 0;

			if (len >= sizeof(row)) {
				fprintf(stderr, "lakefs grants: %s: a line of the daemon's "
					"answer is too long\n", path);
				goto out;
			}
			memcpy(row, p, len);
			row[len] = '\0';
			p += len + (p[len] == '\n');
			if (!len)
				continue;
			for (line = strtok_r(row, "\t", &save); line && c < ACC_COLS;
			     line = strtok_r(NULL, "\t", &save))
				f[c++] = line;
			if (c != ACC_COLS || line) {
				fprintf(stderr, "lakefs grants: %s: cannot read the daemon's "
					"answer: '%s'\n", path, row);
				goto out;
			}
			for (c = 0; c < ACC_COLS && pass == 0; c++)
				if (strlen(f[c]) > width[c])
					width[c] = strlen(f[c]);
			if (pass == 1)
				printf("%-*s  %-*s  %-*s  %s\n", (int)width[0], f[0],
				       (int)width[1], f[1], (int)width[2], f[2], f[3]);
		}
	}
	if (user) {
		char xname[64];

		snprintf(xname, sizeof(xname), PROP_PREFIX "privileges.uid.%lu", uid);
		if ((err = -acc_get(path, xname, eff, sizeof(eff))) != 0) {
			acc_explain("grants", "asking for another user's privileges", path, err);
			goto out;
		}
		printf("effective for %s: %s\n", user, eff);
	}
	ret = 0;
out:
	free(doc);
	return ret;
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
	if (strcmp(argv[1], "props") == 0)
		return cmd_props(argc - 2, argv + 2);
	if (strcmp(argv[1], "jobs") == 0)
		return cmd_jobs(argc - 2, argv + 2);
	if (strcmp(argv[1], "run") == 0)
		return cmd_run(argc - 2, argv + 2);
	if (strcmp(argv[1], "wait") == 0)
		return cmd_wait(argc - 2, argv + 2);
	if (strcmp(argv[1], "drop") == 0)
		return cmd_drop(argc - 2, argv + 2);
	if (strcmp(argv[1], "gold") == 0)
		return cmd_gold(argc - 2, argv + 2);
	if (strcmp(argv[1], "grant") == 0)
		return cmd_grant(argc - 2, argv + 2);
	if (strcmp(argv[1], "revoke") == 0)
		return cmd_revoke(argc - 2, argv + 2);
	if (strcmp(argv[1], "grants") == 0)
		return cmd_grants(argc - 2, argv + 2);
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
