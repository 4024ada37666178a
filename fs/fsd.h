/* fs/fsd.h — the daemon's state shared by the FUSE handlers. */
#ifndef LAKEFS_FS_FSD_H
#define LAKEFS_FS_FSD_H

#include <stdint.h>
#include <sys/stat.h>

#include "catalog/vfs.h"

struct fuse_session;
struct s3_client;
struct remote;
struct journal;
struct lake;

struct fsd {
	struct vfs *vfs;
	struct lake *lake;	/* catalogs, tables, jobs */
	struct fuse_session *se;	/* for notifications to the kernel */
	const char *state_dir;
	const char *mountpoint;
	uint64_t start_ns;	/* monotonic */
	double entry_timeout, attr_timeout;
	int acl_cache;		/* FUSE_CAP_POSIX_ACL: the kernel caches "no ACL"
				 * and leaves the umask to us */
	int write_direct;	/* write-only opens use direct I/O */
	/* the bucket, when there is one */
	struct s3_client *s3;
	struct remote *remote;
	struct journal *journal;
	char store_url[1100];
	char endpoint[1024];
	int durability_remote;
	int bucket_down;	/* it did not answer at mount time */
	uint64_t remote_timeout_ns;
};

/* fs/ctl.c: the virtual /.lakefs directory */
#define CTL_DIR_INO 2ull
#define CTL_STATUS_INO 3ull
#define CTL_METRICS_INO 4ull
#define CTL_SYNC_INO 5ull
#define CTL_VERIFY_INO 6ull
#define CTL_VERIFY_DEEP_INO 7ull
#define CTL_JOBS_INO 8ull
#define CTL_AUDIT_INO 9ull
#define CTL_DIR_NAME ".lakefs"

int ctl_owns(uint64_t ino);
/* 0 and *st if parent/name is a control entry, -ENOENT if not ours. */
int ctl_lookup(struct fsd *d, uint64_t parent, const char *name, struct stat *st);
int ctl_getattr(struct fsd *d, uint64_t ino, struct stat *st);
typedef int (*ctl_dirent_fn)(void *arg, const char *name, uint64_t ino,
			     mode_t mode, uint64_t next_off);
int ctl_readdir(struct fsd *d, uint64_t ino, uint64_t off, ctl_dirent_fn fn, void *arg);
struct lake_who;
/* Render a control file's content for caller w; *buf is malloc'ed. */
int ctl_render(struct fsd *d, struct lake_who *w, uint64_t ino, char **buf,
	       size_t *len);
/* whether only the admin may open ino; its name */
int ctl_admin_only(uint64_t ino);
const char *ctl_name(uint64_t ino);

#endif
