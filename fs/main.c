/*
 * fs/main.c — lakefs-mount: parse options, open the state, mount, serve.
 *
 * Start-up order matters. Without -f the process forks first and the parent
 * waits on a pipe: the child opens the state directory (taking its lock),
 * mounts, and only then reports success, so `lakefs-mount ... && ls MNT`
 * works and every start-up error reaches the caller's terminal and exit
 * status. Threads (LevelDB's, the seal and read-ahead workers, FUSE's) are
 * all started in the child, after the fork.
 *
 * Shutdown: SIGTERM, SIGINT, SIGHUP or `fusermount3 -u` end the session
 * loop; then everything in memory is sealed and committed, the block store
 * and the metadata are synced, and the state lock is released.
 *
 * Invoked as mount.fuse.lakefs (by mount(8) for `-t fuse.lakefs` and for
 * fstab lines), the arguments are `STATE MOUNTPOINT [-o OPTIONS]` and the
 * generic mount options (rw, defaults, noauto, nofail, _netdev, ...) are
 * dropped.
 */
#include <errno.h>
#include <pwd.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <getopt.h>
#include <limits.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "catalog/journal.h"
#include "catalog/lake.h"
#include "fs/fsd.h"
#include "fs/ops.h"
#include "sync/remote.h"
#include "sync/s3.h"
#include "util/log.h"
#include "util/util.h"

struct mount_opts {
	char *state;
	char *mountpoint;
	uint64_t block_size;
	uint64_t dirty_max;
	uint64_t cache_mem;
	uint64_t read_ahead;
	int zstd_level;
	int seal_threads;
	int max_threads, idle_threads;
	uint64_t spin_us;		/* the spinning reader's window (0: none) */
	int write_direct;		/* -1 auto (by kernel), 0 off, 1 on */
	double entry_timeout, attr_timeout;
	int foreground, debug;
	int default_permissions;
	int private_mount;	/* -o private: no allow_other */
	/* the bucket */
	char *store, *endpoint, *region, *creds;
	int path_style;		/* -1: as recorded (default path) */
	int insecure;
	int durability_remote;
	uint64_t cache_size;
	uint64_t upload_threads;
	uint64_t remote_timeout;	/* seconds an fsync waits for the bucket */
	uint64_t multipart_threshold, part_size;
	uint64_t snapshot_records, snapshot_interval;
	/* the lake */
	uint64_t quiet_ms, lake_workers;
	uint64_t query_timeout_ms, query_memory;
	char fuse_opts[4096];	/* passed through to FUSE, comma-separated */
};

static void usage(FILE *f)
{
	fprintf(f,
"usage: lakefs-mount [options] MOUNTPOINT\n"
"       mount.fuse.lakefs STATE MOUNTPOINT [-o OPTIONS]\n"
"\n"
"Mount a lakefs filesystem whose state (metadata and blocks) lives in a\n"
"state directory; the directory is created on first mount.\n"
"\n"
"options:\n"
"  --state DIR         state directory (default /var/lib/lakefs/default for\n"
"                      root, $XDG_DATA_HOME/lakefs/default otherwise)\n"
"  --block-size SIZE   block size of a new filesystem, a power of two from\n"
"                      64K to 16M (default 1M, or 4M when it is created\n"
"                      with --store); fixed once created\n"
"  --store s3://BUCKET[/PREFIX]   mirror every block and the metadata to\n"
"                      an S3-protocol bucket (remembered in the state\n"
"                      directory: later mounts need not repeat it)\n"
"  --endpoint URL      the bucket's endpoint (default: AWS for the region)\n"
"  -f                  stay in the foreground, log to stderr\n"
"  -d                  debug: foreground, log every FUSE request\n"
"  -o OPT[,OPT...]     mount options (see below)\n"
"  -h, --help          print this help\n"
"  -V, --version       print the version\n"
"\n"
"lakefs options (-o):\n"
"  state=DIR, block_size=SIZE     as --state, --block-size\n"
"  dirty_max=SIZE      unsealed file data kept in memory (default 32M)\n"
"  cache_mem=SIZE      plaintext block cache (default 64M)\n"
"  zstd_level=N        compression level for new blocks, 1-19 (default 3)\n"
"  read_ahead=SIZE     kernel read-ahead of the mount (default 1M, needs\n"
"                      root; 0 keeps the kernel's default of 128K)\n"
"  seal_threads=N      hash/compress workers (default 2)\n"
"  max_threads=N, idle_threads=N   threads serving FUSE requests: at most N\n"
"                      (default 16), N kept waiting (default 8)\n"
"  spin_us=N           one reader watches for the next request N microseconds\n"
"                      after each (default 50; 0: off)\n"
"  write_direct=0|1    write-only opens bypass the kernel page cache (default\n"
"                      1 on Linux 6.6 and later, which keeps other openers'\n"
"                      cached pages coherent with such writes; 0 elsewhere)\n"
"  entry_timeout=S, attr_timeout=S   kernel cache timeouts (default 10)\n"
"  no_default_permissions          do not let the kernel check mode bits\n"
"  private             serve only the mount's owner (by default the mount\n"
"                      adds allow_other: every user may use it as the\n"
"                      grants allow, see lakefs(7) ACCESS; a mount by a user\n"
"                      other than root needs user_allow_other in\n"
"                      /etc/fuse.conf for that)\n"
"bucket options (-o):\n"
"  store=URL, endpoint=URL         as --store, --endpoint\n"
"  region=NAME         signing region (default us-east-1)\n"
"  addressing=path|virtual         bucket in the path (default) or host name\n"
"  creds=FILE          credentials file, mode 0600 (~/.aws/credentials form,\n"
"                      or ACCESS:SECRET); default: AWS_ACCESS_KEY_ID and\n"
"                      AWS_SECRET_ACCESS_KEY, then ~/.aws/credentials\n"
"  insecure            do not verify the endpoint's TLS certificate\n"
"  cache_size=SIZE     cap on the local block store; uploaded blocks are\n"
"                      evicted least-recently-used (default: no cap)\n"
"  durability=local|remote         fsync waits for the local disk (default)\n"
"                      or also for the bucket\n"
"  remote_timeout=S    with durability=remote, fsync gives EIO after S\n"
"                      seconds without the bucket (default 300)\n"
"  upload_threads=N    parallel uploads (default 8)\n"
"  multipart_threshold=SIZE, part_size=SIZE   multipart uploads (64M, 16M)\n"
"  snapshot_records=N, snapshot_interval=S    a metadata snapshot after N\n"
"                      journal records (100000) or S seconds with changes\n"
"                      (3600)\n"
"lake options (-o):\n"
"  quiet_ms=N          how long a landed file must stay closed and unchanged\n"
"                      before it is ingested, where no table, schema or\n"
"                      catalog sets user.lakefs.quiet_ms (default 1000)\n"
"  lake_workers=N      promotion jobs run at once, one per table (default 2)\n"
"  query_timeout=S     a gold refresh's query may run S seconds (default 600)\n"
"  query_memory=SIZE   page cache of a gold query's sorts and aggregates,\n"
"                      which spill to STATE/tmp past it (default 64M)\n"
"Other -o options (allow_other, ro, ...) are passed to FUSE; the mount\n"
"helper drops rw, defaults, auto, noauto, nofail, _netdev, user, users.\n");
}

static int parse_double(const char *s, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(s, &end);
	return errno || end == s || *end || *out < 0 ? -EINVAL : 0;
}

static int add_fuse_opt(struct mount_opts *o, const char *opt)
{
	size_t n = strlen(o->fuse_opts);

	if (n + strlen(opt) + 2 >= sizeof(o->fuse_opts))
		return -E2BIG;
	if (n)
		o->fuse_opts[n++] = ',';
	strcpy(o->fuse_opts + n, opt);
	return 0;
}

static int apply_opt(struct mount_opts *o, char *opt)
{
	static const char *const dropped[] = {
		"rw", "defaults", "auto", "noauto", "nofail", "_netdev",
		"user", "users", "nouser", "dev", "suid", "exec", "async",
	};
	char *val = strchr(opt, '=');
	uint64_t n;

	if (val)
		*val++ = '\0';
	for (size_t i = 0; i < ARRAY_SIZE(dropped); i++)
		if (!val && strcmp(opt, dropped[i]) == 0)
			return 0;
	if (strncmp(opt, "x-", 2) == 0 || strncmp(opt, "comment", 7) == 0)
		return 0;
	if (strcmp(opt, "state") == 0 && val) {
		free(o->state);
		o->state = strdup(val);
		return 0;
	}
	if (strcmp(opt, "block_size") == 0 && val)
		return parse_size(val, &o->block_size);
	if (strcmp(opt, "dirty_max") == 0 && val)
		return parse_size(val, &o->dirty_max);
	if (strcmp(opt, "cache_mem") == 0 && val)
		return parse_size(val, &o->cache_mem);
	if (strcmp(opt, "read_ahead") == 0 && val)
		return parse_size(val, &o->read_ahead);
	if (strcmp(opt, "zstd_level") == 0 && val) {
		if (parse_size(val, &n) < 0 || n < 1 || n > 19)
			return -EINVAL;
		o->zstd_level = (int)n;
		return 0;
	}
	if (strcmp(opt, "seal_threads") == 0 && val) {
		if (parse_size(val, &n) < 0 || n < 1 || n > 64)
			return -EINVAL;
		o->seal_threads = (int)n;
		return 0;
	}
	if ((strcmp(opt, "max_threads") == 0 || strcmp(opt, "idle_threads") == 0) && val) {
		if (parse_size(val, &n) < 0 || n < 1 || n > 256)
			return -EINVAL;
		if (opt[0] == 'm')
			o->max_threads = (int)n;
		else
			o->idle_threads = (int)n;
		return 0;
	}
	if (strcmp(opt, "spin_us") == 0 && val) {
		if (parse_size(val, &n) < 0 || n > 10000)
			return -EINVAL;
		o->spin_us = n;
		return 0;
	}
	if (strcmp(opt, "write_direct") == 0 && val) {
		if (strcmp(val, "0") != 0 && strcmp(val, "1") != 0)
			return -EINVAL;
		o->write_direct = val[0] == '1';
		return 0;
	}
	if (strcmp(opt, "entry_timeout") == 0 && val)
		return parse_double(val, &o->entry_timeout);
	if (strcmp(opt, "attr_timeout") == 0 && val)
		return parse_double(val, &o->attr_timeout);
	if (strcmp(opt, "no_default_permissions") == 0 && !val) {
		o->default_permissions = 0;
		return 0;
	}
	if (strcmp(opt, "private") == 0 && !val) {
		o->private_mount = 1;
		return 0;
	}
	if (strcmp(opt, "default_permissions") == 0 && !val) {
		o->default_permissions = 1;
		return 0;
	}
	if ((strcmp(opt, "store") == 0 || strcmp(opt, "endpoint") == 0 ||
	     strcmp(opt, "region") == 0 || strcmp(opt, "creds") == 0) && val) {
		char **dst = opt[0] == 's' ? &o->store : opt[0] == 'e' ? &o->endpoint :
			     opt[0] == 'r' ? &o->region : &o->creds;

		free(*dst);
		*dst = strdup(val);
		return 0;
	}
	if (strcmp(opt, "addressing") == 0 && val) {
		if (strcmp(val, "path") != 0 && strcmp(val, "virtual") != 0)
			return -EINVAL;
		o->path_style = strcmp(val, "path") == 0;
		return 0;
	}
	if (strcmp(opt, "insecure") == 0 && !val) {
		o->insecure = 1;
		return 0;
	}
	if (strcmp(opt, "durability") == 0 && val) {
		if (strcmp(val, "local") != 0 && strcmp(val, "remote") != 0)
			return -EINVAL;
		o->durability_remote = strcmp(val, "remote") == 0;
		return 0;
	}
	if (strcmp(opt, "cache_size") == 0 && val)
		return parse_size(val, &o->cache_size);
	if (strcmp(opt, "multipart_threshold") == 0 && val)
		return parse_size(val, &o->multipart_threshold);
	if (strcmp(opt, "part_size") == 0 && val)
		return parse_size(val, &o->part_size);
	if ((strcmp(opt, "snapshot_records") == 0 || strcmp(opt, "snapshot_interval") == 0) &&
	    val) {
		if (parse_size(val, &n) < 0 || n < 1)
			return -EINVAL;
		if (opt[9] == 'r')
			o->snapshot_records = n;
		else
			o->snapshot_interval = n;
		return 0;
	}
	if ((strcmp(opt, "upload_threads") == 0 || strcmp(opt, "remote_timeout") == 0) &&
	    val) {
		if (parse_size(val, &n) < 0 || n < 1 || (opt[0] == 'u' && n > 64))
			return -EINVAL;
		if (opt[0] == 'u')
			o->upload_threads = n;
		else
			o->remote_timeout = n;
		return 0;
	}
	if ((strcmp(opt, "quiet_ms") == 0 || strcmp(opt, "lake_workers") == 0) && val) {
		if (parse_size(val, &n) < 0 || (opt[0] == 'q' && n > 3600000) ||
		    (opt[0] == 'l' && (n < 1 || n > 16)))
			return -EINVAL;
		if (opt[0] == 'q')
			o->quiet_ms = n ? n : 1;
		else
			o->lake_workers = n;
		return 0;
	}
	if (strcmp(opt, "query_timeout") == 0 && val) {
		double sec;

		if (parse_double(val, &sec) < 0 || sec < 0.001 || sec > 86400)
			return -EINVAL;
		o->query_timeout_ms = (uint64_t)(sec * 1000);
		return 0;
	}
	if (strcmp(opt, "query_memory") == 0 && val) {
		if (parse_size(val, &n) < 0 || n < (1 << 20))
			return -EINVAL;
		o->query_memory = n;
		return 0;
	}
	if (strcmp(opt, "fsname") == 0 || strcmp(opt, "subtype") == 0)
		return 0;	/* we set them */
	if (val)
		val[-1] = '=';
	return add_fuse_opt(o, opt);
}

static int apply_opts(struct mount_opts *o, const char *list)
{
	char *copy = strdup(list), *save = NULL, *tok;
	int ret = 0;

	if (!copy)
		return -ENOMEM;
	for (tok = strtok_r(copy, ",", &save); tok && ret == 0;
	     tok = strtok_r(NULL, ",", &save)) {
		char shown[256];

		snprintf(shown, sizeof(shown), "%s", tok);
		ret = apply_opt(o, tok);
		if (ret < 0)
			fprintf(stderr, "lakefs-mount: bad option '%s' (see "
				"lakefs-mount --help)\n", shown);
	}
	free(copy);
	return ret;
}

static char *default_state(void)
{
	const char *xdg = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
	char buf[PATH_MAX];

	if (geteuid() == 0)
		return strdup("/var/lib/lakefs/default");
	if (xdg && *xdg)
		snprintf(buf, sizeof(buf), "%s/lakefs/default", xdg);
	else
		snprintf(buf, sizeof(buf), "%s/.local/share/lakefs/default",
			 home ? home : ".");
	return strdup(buf);
}

static int parse_args(int argc, char **argv, struct mount_opts *o)
{
	static const struct option longopts[] = {
		{ "state", required_argument, NULL, 1000 },
		{ "block-size", required_argument, NULL, 1001 },
		{ "store", required_argument, NULL, 1002 },
		{ "endpoint", required_argument, NULL, 1003 },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *prog = strrchr(argv[0], '/');
	int helper, c;

	prog = prog ? prog + 1 : argv[0];
	helper = strncmp(prog, "mount.", 6) == 0;
	while ((c = getopt_long(argc, argv, helper ? "+fdo:hVnsvw" : "+fdo:hV",
				longopts, NULL)) != -1) {
		switch (c) {
		case 1000:
			free(o->state);
			o->state = strdup(optarg);
			break;
		case 1001:
			if (parse_size(optarg, &o->block_size) < 0) {
				fprintf(stderr, "lakefs-mount: bad block size '%s'\n", optarg);
				return -EINVAL;
			}
			break;
		case 1002:
			free(o->store);
			o->store = strdup(optarg);
			break;
		case 1003:
			free(o->endpoint);
			o->endpoint = strdup(optarg);
			break;
		case 'f': o->foreground = 1; break;
		case 'd': o->foreground = o->debug = 1; break;
		case 'o':
			if (apply_opts(o, optarg) < 0)
				return -EINVAL;
			break;
		case 'h': usage(stdout); exit(0);
		case 'V': printf("lakefs-mount %s\n", LAKEFS_VERSION); exit(0);
		case 'n': case 's': case 'v': case 'w':
			break;	/* mount(8) helper flags: no mtab, verbose, rw */
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (helper) {
		if (optind + 2 > argc) {
			fprintf(stderr, "usage: %s STATE MOUNTPOINT [-o OPTIONS]\n", prog);
			return -EINVAL;
		}
		free(o->state);
		o->state = strdup(argv[optind++]);
	}
	if (optind >= argc) {
		fprintf(stderr, "lakefs-mount: missing MOUNTPOINT (try --help)\n");
		return -EINVAL;
	}
	o->mountpoint = argv[optind++];
	/* mount(8) may put options after the operands */
	while (optind < argc) {
		if (strcmp(argv[optind], "-o") == 0 && optind + 1 < argc) {
			if (apply_opts(o, argv[optind + 1]) < 0)
				return -EINVAL;
			optind += 2;
		} else if (argv[optind][0] == '-') {
			optind++;
		} else {
			fprintf(stderr, "lakefs-mount: unexpected argument '%s'\n",
				argv[optind]);
			return -EINVAL;
		}
	}
	if (!o->state)
		o->state = default_state();
	return 0;
}

/*
 * The kernel caps a FUSE mount's read-ahead at its 128 KiB default, which
 * makes a sequential reader wait for every 128 KiB; one block of read-ahead
 * lets it stream. Set through the mount's backing device in sysfs (found in
 * /proc/self/mountinfo: stat(2) on the mount point would ask ourselves,
 * and the session is not serving yet).
 */
static void set_read_ahead(const char *mnt, uint64_t bytes)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char line[8192], dev[32] = "", path[128];
	unsigned maj, min;

	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char mp[4096];

		if (sscanf(line, "%*u %*u %u:%u %*s %4095s", &maj, &min, mp) == 3 &&
		    strcmp(mp, mnt) == 0)
			snprintf(dev, sizeof(dev), "%u:%u", maj, min);
	}
	fclose(f);
	if (!*dev)
		return;
	snprintf(path, sizeof(path), "/sys/class/bdi/%s/read_ahead_kb", dev);
	f = fopen(path, "w");
	if (!f) {
		log_debug("cannot set read-ahead (%s): %s", path, strerror(errno));
		return;
	}
	fprintf(f, "%llu\n", (unsigned long long)(bytes >> 10));
	if (fclose(f) != 0)
		log_debug("cannot set read-ahead (%s): %s", path, strerror(errno));
}

/* lakefs changed an inode's attributes by itself: drop the kernel's copy
 * (offset -1: the attributes only, not the cached pages). */
static void notify_attr(void *arg, uint64_t ino)
{
	struct fsd *d = arg;

	fuse_lowlevel_notify_inval_inode(d->se, ino, -1, 0);
}

/* lakefs replaced a name (a new silver version): drop the kernel's dentry
 * and the directory's attributes. */
static void notify_entry(void *arg, uint64_t dir, const char *name)
{
	struct fsd *d = arg;

	fuse_lowlevel_notify_inval_entry(d->se, dir, name, strlen(name));
	fuse_lowlevel_notify_inval_inode(d->se, dir, -1, 0);
}

/* Is the running kernel release major.minor or later? Since 6.6 a FUSE
 * direct-I/O write drops the pages other openers cached over its range. */
static int kernel_at_least(int major, int minor)
{
	struct utsname u;
	int ma = 0, mi = 0;

	if (uname(&u) < 0 || sscanf(u.release, "%d.%d", &ma, &mi) != 2)
		return 0;
	return ma > major || (ma == major && mi >= minor);
}

/* FUSE splits -o on commas; a backslash escapes one. */
static const char *fsname_escape(const char *s, char *out, size_t cap)
{
	size_t n = 0;

	for (; *s && n + 2 < cap; s++) {
		if (*s == ',' || *s == '\\')
			out[n++] = '\\';
		out[n++] = *s;
	}
	out[n] = '\0';
	return out;
}

static int check_block_size(uint64_t bs)
{
	return bs >= (64 << 10) && bs <= (16 << 20) && (bs & (bs - 1)) == 0;
}

/* ---- the bucket ---- */

struct wrap_ctx {
	struct fsd *d;
	struct remote_options ro;
	const char *state;
};

static int wrap_store(void *arg, struct bs_backend *be, char **errmsg)
{
	struct wrap_ctx *w = arg;
	int ret = remote_open(&w->d->remote, be, w->d->s3, w->state, &w->ro, errmsg);

	if (ret == 0)
		remote_backend(w->d->remote, be);
	return ret;
}

static uint64_t journal_mark(void *arg)
{
	struct wrap_ctx *w = arg;

	return remote_mark(w->d->remote);
}

/*
 * Decide whether this mount has a bucket (--store, or the one the state
 * remembers), then connect and check it: a bad key, a missing bucket or an
 * endpoint that does not answer is one clear line and exit status 1 here,
 * before anything is mounted. 0 (no bucket, or d->s3 set), or -1.
 */
static int setup_store(struct mount_opts *o, const char *state, struct fsd *d,
		       struct store_rec *sr)
{
	struct s3_config cfg = { 0 };
	struct s3_error err;
	struct store_rec old;
	char *msg = NULL;
	int have = store_rec_load(state, &old), ret;

	if (have < 0) {
		fprintf(stderr, "lakefs-mount: cannot read %s/store: %s\n", state,
			strerror(-have));
		return -1;
	}
	if (!o->store && !have)
		return 0;
	/* the canonical form of the URL, to compare with the recorded one */
	ret = s3_parse_url(&cfg, o->store ? o->store : old.url, &msg);
	if (ret == 0)
		snprintf(sr->url, sizeof(sr->url), "s3://%s%s%s", cfg.bucket,
			 cfg.prefix && *cfg.prefix ? "/" : "",
			 cfg.prefix ? cfg.prefix : "");
	s3_config_free(&cfg);
	if (ret < 0) {
		fprintf(stderr, "lakefs-mount: %s\n", msg ? msg : "bad --store");
		goto fail;
	}
	if (have && strcmp(sr->url, old.url) != 0) {
		fprintf(stderr, "lakefs-mount: state %s mirrors to %s, not %s (restore "
			"from %s into a new state directory instead)\n", state,
			old.url, sr->url, sr->url);
		goto fail;
	}
	snprintf(sr->region, sizeof(sr->region), "%s", o->region ? o->region :
		 have && old.region[0] ? old.region : "us-east-1");
	if (o->endpoint)
		snprintf(sr->endpoint, sizeof(sr->endpoint), "%s", o->endpoint);
	else if (have && old.endpoint[0])
		snprintf(sr->endpoint, sizeof(sr->endpoint), "%s", old.endpoint);
	else
		snprintf(sr->endpoint, sizeof(sr->endpoint), "https://s3.%s.amazonaws.com",
			 sr->region);
	sr->path_style = o->path_style >= 0 ? o->path_style :
			 have ? old.path_style : o->endpoint != NULL;
	ret = store_connect(sr, o->creds, o->insecure, (size_t)o->multipart_threshold,
			    (size_t)o->part_size, &d->s3, &msg);
	if (ret < 0) {
		fprintf(stderr, "lakefs-mount: %s\n", msg ? msg : strerror(-ret));
		goto fail;
	}
	ret = s3_check_bucket(d->s3, &err);
	if (ret < 0 && have && (err.http == 0 || err.http >= 500)) {
		/*
		 * A state that already mirrors to this bucket mounts while the
		 * bucket does not answer: writes queue locally, as they would
		 * if it went down a minute after the mount. A bucket that
		 * answers "no" (a bad key, no such bucket) still stops here.
		 */
		fprintf(stderr, "lakefs-mount: warning: bucket %s at %s does not "
			"answer (%s); mounting anyway, uploads wait for it\n",
			sr->url, sr->endpoint, err.msg);
		d->bucket_down = 1;
	} else if (ret < 0) {
		fprintf(stderr, "lakefs-mount: bucket %s at %s: %s\n", sr->url,
			sr->endpoint, err.msg);
		s3_close(d->s3);
		d->s3 = NULL;
		goto fail;
	}
	snprintf(d->store_url, sizeof(d->store_url), "%s", sr->url);
	snprintf(d->endpoint, sizeof(d->endpoint), "%s", sr->endpoint);
	return 0;
fail:
	free(msg);
	return -1;
}

/* Fork; the parent waits for the child to say the mount is live. */
/* /etc/fuse.conf lets users other than root mount with allow_other */
static int fuse_conf_allows_other(void)
{
	FILE *f = fopen("/etc/fuse.conf", "r");
	char line[256];
	int yes = 0;

	if (!f)
		return 0;
	while (!yes && fgets(line, sizeof(line), f)) {
		char *p = line;

		while (*p == ' ' || *p == '\t')
			p++;
		yes = strncmp(p, "user_allow_other", 16) == 0 &&
		      (p[16] == '\0' || p[16] == '\n' || p[16] == ' ' || p[16] == '\t');
	}
	fclose(f);
	return yes;
}

static const char *user_name(uid_t uid)
{
	struct passwd *pw = getpwuid(uid);

	return pw ? pw->pw_name : "its owner";
}

static int daemonize_start(int *notify_fd)
{
	int p[2];
	pid_t pid;
	char c;

	if (pipe(p) < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0) {
		close(p[1]);
		if (read(p[0], &c, 1) == 1 && c == 'O')
			_exit(0);
		waitpid(pid, NULL, 0);
		_exit(1);
	}
	close(p[0]);
	setsid();
	*notify_fd = p[1];
	return 0;
}

static void daemonize_done(int notify_fd)
{
	int fd = open("/dev/null", O_RDWR);

	if (chdir("/") < 0)
		log_warn("chdir /: %s", strerror(errno));
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
	log_use_syslog();
	if (write(notify_fd, "O", 1) != 1)
		log_warn("cannot notify the parent process");
	close(notify_fd);
}

/*
 * The spinning reader. A request's round trip costs two wake-ups, and on
 * a machine whose other CPU is idle both are cross-CPU, which is most of a
 * small request's cost (measured here: 10,000 creates take 0.39 s when the
 * application and the daemon share a CPU and 1.55 s when they are kept
 * apart). One extra thread, after each request it serves, watches the
 * device with poll(2) and a zero timeout for spin_us microseconds, and
 * reads the next request itself as soon as one is there, without being
 * woken: in a burst of small requests (creates, stats) one of the two
 * wake-ups goes. The usual workers stay blocked in read(2); whichever
 * reader gets a request first serves it (a worker woken for one the
 * spinner took goes back to sleep in the kernel). Past the window the
 * spinner blocks in read(2) like any worker, so an idle mount burns no CPU.
 */
struct spinner {
	struct fuse_session *se;
	uint64_t spin_ns;
	pthread_t th;
};

static void free_buf(void *arg)
{
	free(((struct fuse_buf *)arg)->mem);
}

static void *spin_reader(void *arg)
{
	struct spinner *sp = arg;
	struct fuse_buf buf = { 0 };
	struct pollfd pfd = { .fd = fuse_session_fd(sp->se), .events = POLLIN };

	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
	pthread_cleanup_push(free_buf, &buf);
	while (!fuse_session_exited(sp->se)) {
		uint64_t end = mono_ns() + sp->spin_ns;
		int res;

		while (poll(&pfd, 1, 0) == 0 && mono_ns() < end)
			;
		pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL);
		res = fuse_session_receive_buf(sp->se, &buf);
		pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
		if (res == -EINTR || res == -EAGAIN)
			continue;
		if (res <= 0)
			break;
		fuse_session_process_buf(sp->se, &buf);
	}
	pthread_cleanup_pop(1);
	return NULL;
}

static int spinner_start(struct spinner *sp, struct fuse_session *se, uint64_t us)
{
	int ret;

	sp->se = se;
	sp->spin_ns = us * 1000;
	if ((ret = pthread_create(&sp->th, NULL, spin_reader, sp)) != 0) {
		log_warn("no spinning reader: %s", strerror(ret));
		return -ret;
	}
	return 0;
}

static void spinner_stop(struct spinner *sp)
{
	pthread_cancel(sp->th);		/* it may be blocked in read(2) */
	pthread_join(sp->th, NULL);
}

int main(int argc, char **argv)
{
	struct mount_opts o = {
		.block_size = 0,	/* 1M, or 4M with a bucket */
		.dirty_max = 32 << 20,
		.cache_mem = 64 << 20,
		.read_ahead = 1 << 20,
		.zstd_level = 3,
		.seal_threads = 2,
		.max_threads = 16,
		.idle_threads = 8,
		.spin_us = 50,
		.write_direct = -1,
		.entry_timeout = 10,
		.attr_timeout = 10,
		.default_permissions = 1,
		.path_style = -1,
		.remote_timeout = 300,
	};
	struct spinner spin;
	int spinning = 0;
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_loop_config *lc = NULL;
	struct fuse_session *se = NULL;
	struct vfs_options vo = { 0 };
	struct fsd d = { 0 };
	struct wrap_ctx wc = { 0 };
	struct store_rec sr = { 0 };
	char state[PATH_MAX], mnt[PATH_MAX], opts[16384], fsname[2 * PATH_MAX];
	char *errmsg = NULL;
	struct stat mst;
	int notify_fd = -1, ret = 1, err;

	if (parse_args(argc, argv, &o) < 0) {
		ret = 2;
		goto done;
	}
	/*
	 * Block buffers (1 MiB) come and go at disk speed. Served by mmap, each
	 * one costs 256 page faults and zeroing; kept in the heap (no trimming
	 * below 64 MiB free) they are reused. One arena: glibc deletes a
	 * thread arena's heap outright whenever it empties, whatever the trim
	 * threshold, so with the FUSE threads allocating block buffers and the
	 * seal threads freeing them, the FUSE thread of a 1 GiB write spent
	 * a fifth of its time faulting and zeroing fresh pages (clear_page:
	 * 7.5 % of all samples; none with one arena). Small allocations come
	 * from per-thread caches either way.
	 */
	mallopt(M_MMAP_THRESHOLD, 32 << 20);
	mallopt(M_TRIM_THRESHOLD, 64 << 20);
	mallopt(M_ARENA_MAX, 1);
	if (o.block_size && !check_block_size(o.block_size)) {
		fprintf(stderr, "lakefs-mount: block size must be a power of two "
			"from 64K to 16M\n");
		ret = 2;
		goto done;
	}
	if (!realpath(o.mountpoint, mnt) || stat(mnt, &mst) < 0) {
		int e = errno;

		fprintf(stderr, "lakefs-mount: mount point %s: %s%s\n",
			o.mountpoint, strerror(e), e == ENOTCONN ?
			" (a lakefs daemon died there; run fusermount3 -u on it, then mount again)" : "");
		ret = 1;
		goto done;
	}
	if (!S_ISDIR(mst.st_mode)) {
		fprintf(stderr, "lakefs-mount: mount point %s: not a directory\n",
			o.mountpoint);
		ret = 1;
		goto done;
	}
	err = mkdir_p(o.state, 0700);
	if (err < 0 || !realpath(o.state, state)) {
		fprintf(stderr, "lakefs-mount: cannot create state directory %s: %s\n",
			o.state, strerror(err < 0 ? -err : errno));
		ret = 1;
		goto done;
	}
	if (geteuid() != 0 && strstr(o.fuse_opts, "allow_other") &&
	    !fuse_conf_allows_other()) {
		fprintf(stderr, "lakefs-mount: -o allow_other needs the line "
			"'user_allow_other' in /etc/fuse.conf (a mount by root does not)\n");
		ret = 1;
		goto done;
	}
	if (!o.default_permissions && (geteuid() == 0 || strstr(o.fuse_opts, "allow_other")))
		fprintf(stderr, "lakefs-mount: warning: no_default_permissions: the "
			"kernel will not check mode bits, and lakefs checks only the "
			"grants: inside a volume every user with access may change "
			"anything\n");
	if (o.debug)
		log_set_level(LOG_LV_DEBUG);
	if (!o.foreground && daemonize_start(&notify_fd) < 0) {
		fprintf(stderr, "lakefs-mount: cannot start the daemon: %s\n",
			strerror(errno));
		ret = 1;
		goto done;
	}

	vo.state_dir = state;
	/*
	 * A filesystem created with a bucket gets 4 MiB blocks unless told
	 * otherwise: every block is one object, and S3 charges, limits and
	 * (in s3rver's case) spends CPU per request, so a quarter of the
	 * requests is worth more than finer deduplication.
	 */
	vo.block_size = (uint32_t)(o.block_size ? o.block_size :
				   o.store ? 4u << 20 : 1u << 20);
	vo.dirty_max = o.dirty_max;
	vo.cache_bytes = o.cache_mem;
	vo.seal_threads = o.seal_threads;
	vo.zstd_level = o.zstd_level;
	if (setup_store(&o, state, &d, &sr) < 0) {
		ret = 1;
		goto done;
	}
	if (d.s3) {
		wc.d = &d;
		wc.state = state;
		wc.ro.cache_max = o.cache_size;
		wc.ro.upload_threads = (int)o.upload_threads;
		wc.ro.block_max = 16 << 20;
		wc.ro.store_url = sr.url;
		vo.wrap_store = wrap_store;
		vo.wrap_arg = &wc;
		vo.journal_mark = journal_mark;
		/* a fetch is a network round trip: more of them in flight */
		vo.prefetch_bytes = 32 << 20;
		vo.prefetch_threads = 8;
		d.durability_remote = o.durability_remote;
		d.remote_timeout_ns = o.remote_timeout * 1000000000ull;
	}
	err = vfs_open_fs(&d.vfs, &vo, &errmsg);
	if (err < 0) {
		fprintf(stderr, "lakefs-mount: %s\n", errmsg ? errmsg : strerror(-err));
		free(errmsg);
		s3_close(d.s3);
		ret = 1;
		goto done;
	}
	if (d.s3) {
		struct journal_options jo = {
			.snap_records = o.snapshot_records,
			.snap_interval_s = o.snapshot_interval,
			.defer_attach = d.bucket_down,
		};

		err = journal_start(&d.journal, vfs_meta(d.vfs), d.remote, d.s3, &jo,
				    &errmsg);
		if (err == 0 && (err = store_rec_save(state, &sr)) < 0)
			errmsg = strdup("cannot write STATE/store");
		if (err == 0 && (err = remote_go(d.remote)) < 0)
			errmsg = strdup("cannot start the uploads");
		if (err < 0) {
			fprintf(stderr, "lakefs-mount: bucket %s: %s\n", sr.url,
				errmsg ? errmsg : strerror(-err));
			goto fail_open;
		}
	}
	vfs_set_root_extra(d.vfs, CTL_DIR_NAME, CTL_DIR_INO);
	{
		struct lake_options lo = { (unsigned)o.lake_workers, (uint32_t)o.quiet_ms,
					   NULL, o.query_timeout_ms, o.query_memory,
					   (uint32_t)getuid(), (uint32_t)getgid(), NULL, 0 };
		char tmp[4200], audit[4200];

		/* upserts spill to the state's filesystem, not to a small /tmp */
		snprintf(tmp, sizeof(tmp), "%s/tmp", state);
		if (mkdir_p(tmp, 0700) == 0)
			lo.tmp_dir = tmp;
		snprintf(audit, sizeof(audit), "%s/audit.log", state);
		lo.audit_path = audit;

		err = lake_open(&d.lake, d.vfs, &lo, &errmsg);
		if (err < 0) {
			fprintf(stderr, "lakefs-mount: %s\n", errmsg ? errmsg : strerror(-err));
			goto fail_open;
		}
	}
	d.state_dir = state;
	d.mountpoint = mnt;
	d.start_ns = mono_ns();
	d.entry_timeout = o.entry_timeout;
	d.attr_timeout = o.attr_timeout;
	d.write_direct = o.write_direct >= 0 ? o.write_direct : kernel_at_least(6, 6);

	/* a mount serves every user, as the grants allow (catalog/access.c);
	 * -o private keeps it to its owner */
	if (!strstr(o.fuse_opts, "allow_other") && !strstr(o.fuse_opts, "allow_root") &&
	    !o.private_mount) {
		if (geteuid() == 0 || fuse_conf_allows_other())
			add_fuse_opt(&o, "allow_other");
		else
			fprintf(stderr, "lakefs-mount: /etc/fuse.conf has no "
				"'user_allow_other' line, so only %s can use this mount "
				"and grants to others have no effect; add that line "
				"for a shared mount\n", user_name(getuid()));
	}
	snprintf(opts, sizeof(opts), "fsname=lakefs:%s,subtype=lakefs%s%s%s",
		 fsname_escape(state, fsname, sizeof(fsname)), o.default_permissions ? ",default_permissions" : "",
		 o.fuse_opts[0] ? "," : "", o.fuse_opts);
	if (fuse_opt_add_arg(&args, argv[0]) || fuse_opt_add_arg(&args, "-o") ||
	    fuse_opt_add_arg(&args, opts) || (o.debug && fuse_opt_add_arg(&args, "-d"))) {
		fprintf(stderr, "lakefs-mount: out of memory\n");
		goto out;
	}
	se = fuse_session_new(&args, &lfs_ops, sizeof(lfs_ops), &d);
	if (!se) {
		fprintf(stderr, "lakefs-mount: bad FUSE options: %s\n", opts);
		goto out;
	}
	d.se = se;
	vfs_set_attr_notify(d.vfs, notify_attr, &d);
	vfs_set_entry_notify(d.vfs, notify_entry, &d);
	if (fuse_set_signal_handlers(se) != 0)
		goto out;
	if (fuse_session_mount(se, mnt) != 0) {
		fprintf(stderr, "lakefs-mount: cannot mount on %s (is it a directory, "
			"and is /dev/fuse usable?)\n", mnt);
		fuse_remove_signal_handlers(se);
		goto out;
	}
	if (o.read_ahead)
		set_read_ahead(mnt, o.read_ahead);
	if (notify_fd >= 0)
		daemonize_done(notify_fd);	/* from here on, messages go to syslog */
	if (d.journal && journal_go(d.journal) < 0)
		goto unmount;
	if ((err = lake_start(d.lake)) < 0) {
		log_err("cannot start the lake engine: %s", strerror(-err));
		goto unmount;
	}
	log_info("mounted %s on %s (block size %u)", state, mnt, vfs_block_size(d.vfs));
	signal(SIGPIPE, SIG_IGN);
	lc = fuse_loop_cfg_create();
	if (!lc)
		goto unmount;
	fuse_loop_cfg_set_clone_fd(lc, 0);
	fuse_loop_cfg_set_max_threads(lc, (unsigned)o.max_threads);
	fuse_loop_cfg_set_idle_threads(lc, (unsigned)o.idle_threads);
	spinning = o.spin_us && spinner_start(&spin, se, o.spin_us) == 0;
	ret = fuse_session_loop_mt(se, lc) < 0 ? 1 : 0;
	if (spinning)
		spinner_stop(&spin);
	fuse_loop_cfg_destroy(lc);
unmount:
	lake_close(d.lake);	/* a running job is abandoned; it reruns */
	d.lake = NULL;
	fuse_session_unmount(se);
	fuse_remove_signal_handlers(se);
	log_info("unmounted %s", mnt);
out:
	if (se)
		fuse_session_destroy(se);
	fuse_opt_free_args(&args);
	if (d.journal) {
		/* the metadata reaches the bucket before the blocks' uploaders
		 * stop; what does not make it goes up at the next mount */
		vfs_flush_all(d.vfs);
		journal_stop(d.journal, 10ull * 1000000000ull);
		s3_cancel(d.s3);	/* uploads left wait in the queue */
	}
	lake_close(d.lake);
	vfs_close_fs(d.vfs);
	s3_close(d.s3);
	goto done;
fail_open:		/* after the filesystem opened, before the mount */
	free(errmsg);
	journal_stop(d.journal, 0);
	vfs_close_fs(d.vfs);
	s3_close(d.s3);
	ret = 1;
done:
	free(o.state);
	free(o.store);
	free(o.endpoint);
	free(o.region);
	free(o.creds);
	return ret;
}
