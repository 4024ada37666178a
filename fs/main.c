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
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <getopt.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fs/fsd.h"
#include "fs/ops.h"
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
	double entry_timeout, attr_timeout;
	int foreground, debug;
	int default_permissions;
	int private_mount;	/* -o private: no allow_other for root */
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
"                      64K to 16M (default 1M); fixed once created\n"
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
"  entry_timeout=S, attr_timeout=S   kernel cache timeouts (default 10)\n"
"  no_default_permissions          do not let the kernel check mode bits\n"
"  private             when mounted by root, serve only root (by default a\n"
"                      root mount adds allow_other: every user may use it,\n"
"                      subject to the mode bits)\n"
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

/* Fork; the parent waits for the child to say the mount is live. */
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

int main(int argc, char **argv)
{
	struct mount_opts o = {
		.block_size = 1 << 20,
		.dirty_max = 32 << 20,
		.cache_mem = 64 << 20,
		.read_ahead = 1 << 20,
		.zstd_level = 3,
		.seal_threads = 2,
		.max_threads = 16,
		.idle_threads = 8,
		.entry_timeout = 10,
		.attr_timeout = 10,
		.default_permissions = 1,
	};
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_loop_config *lc = NULL;
	struct fuse_session *se = NULL;
	struct vfs_options vo = { 0 };
	struct fsd d = { 0 };
	char state[PATH_MAX], mnt[PATH_MAX], opts[16384], fsname[2 * PATH_MAX];
	char *errmsg = NULL;
	struct stat mst;
	int notify_fd = -1, ret = 1, err;

	if (parse_args(argc, argv, &o) < 0)
		return 2;
	/*
	 * Block buffers (1 MiB) come and go at disk speed. Served by mmap, each
	 * one costs 256 page faults and zeroing; kept in the heap (no trimming
	 * below 64 MiB free) they are reused. Few arenas keep that bounded.
	 */
	mallopt(M_MMAP_THRESHOLD, 32 << 20);
	mallopt(M_TRIM_THRESHOLD, 64 << 20);
	mallopt(M_ARENA_MAX, 4);
	if (!check_block_size(o.block_size)) {
		fprintf(stderr, "lakefs-mount: block size must be a power of two "
			"from 64K to 16M\n");
		return 2;
	}
	if (!realpath(o.mountpoint, mnt) || stat(mnt, &mst) < 0) {
		int e = errno;

		fprintf(stderr, "lakefs-mount: mount point %s: %s%s\n",
			o.mountpoint, strerror(e), e == ENOTCONN ?
			" (a lakefs daemon died there; run fusermount3 -u on it, then mount again)" : "");
		return 1;
	}
	if (!S_ISDIR(mst.st_mode)) {
		fprintf(stderr, "lakefs-mount: mount point %s: not a directory\n",
			o.mountpoint);
		return 1;
	}
	err = mkdir_p(o.state, 0700);
	if (err < 0 || !realpath(o.state, state)) {
		fprintf(stderr, "lakefs-mount: cannot create state directory %s: %s\n",
			o.state, strerror(err < 0 ? -err : errno));
		return 1;
	}
	if (!o.default_permissions && (geteuid() == 0 || strstr(o.fuse_opts, "allow_other")))
		fprintf(stderr, "lakefs-mount: warning: no_default_permissions: the "
			"kernel will not check mode bits, and lakefs does not either\n");
	if (o.debug)
		log_set_level(LOG_LV_DEBUG);
	if (!o.foreground && daemonize_start(&notify_fd) < 0) {
		fprintf(stderr, "lakefs-mount: cannot start the daemon: %s\n",
			strerror(errno));
		return 1;
	}

	vo.state_dir = state;
	vo.block_size = (uint32_t)o.block_size;
	vo.dirty_max = o.dirty_max;
	vo.cache_bytes = o.cache_mem;
	vo.seal_threads = o.seal_threads;
	vo.zstd_level = o.zstd_level;
	err = vfs_open_fs(&d.vfs, &vo, &errmsg);
	if (err < 0) {
		fprintf(stderr, "lakefs-mount: %s\n", errmsg ? errmsg : strerror(-err));
		free(errmsg);
		return 1;
	}
	vfs_set_root_extra(d.vfs, CTL_DIR_NAME, CTL_DIR_INO);
	d.state_dir = state;
	d.mountpoint = mnt;
	d.start_ns = mono_ns();
	d.entry_timeout = o.entry_timeout;
	d.attr_timeout = o.attr_timeout;

	/* root mounts serve every user (permissions are checked by the
	 * kernel against the mode bits); others need -o allow_other */
	if (geteuid() == 0 && !strstr(o.fuse_opts, "allow_other") &&
	    !strstr(o.fuse_opts, "allow_root") && !o.private_mount)
		add_fuse_opt(&o, "allow_other");
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
	log_info("mounted %s on %s (block size %u)", state, mnt, vfs_block_size(d.vfs));
	signal(SIGPIPE, SIG_IGN);
	lc = fuse_loop_cfg_create();
	if (!lc)
		goto unmount;
	fuse_loop_cfg_set_clone_fd(lc, 0);
	fuse_loop_cfg_set_max_threads(lc, (unsigned)o.max_threads);
	fuse_loop_cfg_set_idle_threads(lc, (unsigned)o.idle_threads);
	ret = fuse_session_loop_mt(se, lc) < 0 ? 1 : 0;
	fuse_loop_cfg_destroy(lc);
unmount:
	fuse_session_unmount(se);
	fuse_remove_signal_handlers(se);
	log_info("unmounted %s", mnt);
out:
	if (se)
		fuse_session_destroy(se);
	fuse_opt_free_args(&args);
	vfs_close_fs(d.vfs);
	free(o.state);
	return ret;
}
