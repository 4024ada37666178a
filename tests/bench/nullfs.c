/*
 * nullfs — a FUSE file system that does nothing but create empty files: the
 * floor under lakefs's create figure.
 *
 * Used by tests/bench/bench.sh to time the same 10,000 creates (mkfiles.c)
 * on a daemon built the same way as lakefs-mount (libfuse's low-level API,
 * its multithreaded loop, default_permissions) that answers every request
 * from memory: LOOKUP says "no such file", CREATE invents an inode number,
 * GETATTR makes up attributes, RELEASE and FORGET do nothing. What that
 * costs is what the kernel and the machine charge a FUSE round trip (four
 * requests per open(O_CREAT) + close), before any file system work. Built
 * by the bench script with cc into its work directory; not in the Makefile.
 *
 * Usage: nullfs [-f] [-o default_permissions] MOUNTPOINT
 */
#include <fuse_lowlevel.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static atomic_ulong next_ino = 2;

static void fill(struct stat *st, fuse_ino_t ino)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = ino == FUSE_ROOT_ID ? S_IFDIR | 0777 : S_IFREG | 0644;
	st->st_nlink = ino == FUSE_ROOT_ID ? 2 : 1;
}

static void n_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e = { 0 };	/* ino 0: a negative entry */

	(void)parent;
	(void)name;
	fuse_reply_entry(req, &e);
}

static void n_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;

	(void)fi;
	fill(&st, ino);
	fuse_reply_attr(req, &st, 1.0);
}

static void n_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode, struct fuse_file_info *fi)
{
	struct fuse_entry_param e = { 0 };

	(void)parent;
	(void)name;
	(void)mode;
	e.ino = atomic_fetch_add(&next_ino, 1);
	fill(&e.attr, e.ino);
	e.attr_timeout = 1.0;
	e.entry_timeout = 1.0;
	fuse_reply_create(req, &e, fi);
}

static void n_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0);
}

static void n_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	(void)ino;
	(void)nlookup;
	fuse_reply_none(req);
}

static const struct fuse_lowlevel_ops ops = {
	.lookup = n_lookup,
	.getattr = n_getattr,
	.create = n_create,
	.release = n_release,
	.forget = n_forget,
};

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts o;
	struct fuse_loop_config *cfg;
	struct fuse_session *se;
	int ret = 1;

	if (fuse_parse_cmdline(&args, &o) != 0 || !o.mountpoint) {
		fprintf(stderr, "usage: nullfs [-f] [-o OPTIONS] MOUNTPOINT\n");
		return 2;
	}
	se = fuse_session_new(&args, &ops, sizeof(ops), NULL);
	if (se && fuse_session_mount(se, o.mountpoint) == 0) {
		fuse_daemonize(o.foreground);
		cfg = fuse_loop_cfg_create();
		ret = fuse_session_loop_mt(se, cfg) != 0;
		fuse_loop_cfg_destroy(cfg);
		fuse_session_unmount(se);
	}
	if (se)
		fuse_session_destroy(se);
	fuse_opt_free_args(&args);
	free(o.mountpoint);
	return ret;
}
