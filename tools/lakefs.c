/*
 * tools/lakefs.c — the lakefs command-line tool.
 *
 * It talks to a running daemon only through the mount (files under
 * MOUNTPOINT/.lakefs and extended attributes), so the same permission
 * checks apply to it as to any program. Each subcommand is one function.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
	fprintf(f,
"usage: lakefs COMMAND [ARGS]\n"
"\n"
"commands:\n"
"  status MOUNTPOINT [--json]   figures of a mounted lakefs: files, blocks,\n"
"                               logical and stored bytes, dedup and\n"
"                               compression ratios\n"
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
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		if (json_field(doc, rows[i].key, val, sizeof(val)) < 0)
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

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "status") == 0)
		return cmd_status(argc - 2, argv + 2);
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
