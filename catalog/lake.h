/*
 * catalog/lake.h — the lakehouse over the filesystem: catalogs, schemas,
 * tables and volumes as directories, their properties, landing of bronze
 * files and the jobs that promote them to silver.
 *
 * fs/ asks the lake before it changes the namespace (lake_may_*: the
 * policy, each refusal with a log line saying why) and tells it what
 * happened after (lake_made, lake_seen, lake_closed, lake_forget). The
 * lake's own writes (silver tables, their history and quarantine) go to
 * catalog/vfs.h directly, under no policy. Nothing here knows of FUSE.
 */
#ifndef LAKEFS_CATALOG_LAKE_H
#define LAKEFS_CATALOG_LAKE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "catalog/vfs.h"

struct lake;
struct gbuf;

struct lake_options {
	unsigned workers;		/* promotion threads (0: 2) */
	uint32_t quiet_ms;		/* default quiet period (0: 1000) */
	const char *tmp_dir;		/* spill files of upserts (NULL: $TMPDIR) */
	uint64_t query_timeout_ms;	/* a gold refresh's query (0: 600000) */
	uint64_t query_memory;		/* its sort/aggregate cache (0: 64 MiB) */
	uint32_t admin_uid, admin_gid;	/* the mount's owner: holds everything */
	const char *audit_path;		/* the audit log (NULL: none) */
	uint64_t audit_max;		/* its size before it rotates (0: 4 MiB) */
};

int lake_open(struct lake **out, struct vfs *v, const struct lake_options *o,
	      char **errmsg);
/* Start the scheduler and the workers: resume persisted jobs, scan every
 * bronze table once. */
int lake_start(struct lake *l);
/* Stop the threads; a running promotion is abandoned unpublished (it
 * reruns at the next start). Then free. */
void lake_close(struct lake *l);

#define LAKE_NAME_MAX 64	/* bytes in a catalog, schema, table or volume name */

/* ---- policy: 0, or -errno after a log line ---- */
int lake_may_make(struct lake *l, uint64_t parent, const char *name, mode_t mode);
int lake_may_remove(struct lake *l, uint64_t parent, const char *name, int isdir);
int lake_may_rename(struct lake *l, uint64_t parent, const char *name,
		    uint64_t newparent, const char *newname);
int lake_may_link(struct lake *l, uint64_t ino, uint64_t newparent);
/* open for writing, setattr, xattr changes */
int lake_may_modify(struct lake *l, uint64_t ino);

/* rmdir, forgetting a removed securable's records */
int lake_rmdir(struct lake *l, uint64_t parent, const char *name);

/*
 * ---- access (catalog/access.c): grants, checked per request ----
 * A caller is a uid, a gid and its supplementary groups, fetched only when
 * a group grant is in question. lake_check answers 0 or -EACCES (after an
 * audit line) for need on ino: the root, a securable, or anything inside
 * one that fs/ has told the lake of (lake_made, lake_seen).
 */
#define LAKE_GROUPS_MAX 256
#define LAKE_P_USE 1u
#define LAKE_P_READ 2u
#define LAKE_P_WRITE 4u
#define LAKE_P_MANAGE 8u
#define LAKE_P_ALL 15u

struct lake_who {
	uint32_t uid, gid;
	int ngroups;			/* -1: not fetched yet */
	uint32_t groups[LAKE_GROUPS_MAX];
	int (*get_groups)(void *arg, uint32_t *out, int max);	/* count or -errno */
	void *arg;
};

enum lake_need {
	LAKE_STAT,	/* see its attributes: may look its name up */
	LAKE_LOOKUP,	/* a directory: look names up in it */
	LAKE_LIST,	/* a directory: read it */
	LAKE_READ,	/* read a file's data, its link target, its xattrs */
	LAKE_WRITE,	/* change a file (data, attributes, xattrs) */
	LAKE_MAKE,	/* a directory: create a name in it */
	LAKE_REMOVE,	/* a directory: remove a name from it */
	LAKE_MANAGE,	/* a securable: properties, grants, drop */
	LAKE_RUN,	/* a table: promote or refresh now */
	LAKE_XREAD,	/* read xattrs: of a securable, whoever sees it */
	LAKE_XWRITE,	/* change xattrs: of a securable, MANAGE */
	LAKE_ADMIN,	/* the mount owner only */
};

int lake_is_admin(const struct lake *l, const struct lake_who *w);
int lake_check(struct lake *l, struct lake_who *w, uint64_t ino,
	       enum lake_need need, const char *op, const char *name);
/* Show a securable's attributes to the caller; 1: they are the caller's
 * own and must not be cached. */
int lake_present(struct lake *l, struct lake_who *w, struct stat *st);
/* Whether listings of dir differ by caller (root, catalogs, schemas), and
 * whether the caller sees entry ino there. */
int lake_filters(struct lake *l, uint64_t dir);
int lake_visible(struct lake *l, struct lake_who *w, uint64_t dir, uint64_t ino);
/* user.lakefs.grant, .revoke (set); .grants, .privileges[.uid.N] (get):
 * 1 when name is none of these. */
int lake_access_setxattr(struct lake *l, struct lake_who *w, uint64_t ino,
			 const char *name, const void *val, size_t len);
ssize_t lake_access_getxattr(struct lake *l, struct lake_who *w, uint64_t ino,
			     const char *name, void *buf, size_t size);
/* /.lakefs/audit: the log of grant changes and denied requests */
int lake_audit_render(struct lake *l, struct gbuf *out);

/* ---- events, after the change succeeded ---- */
void lake_made(struct lake *l, const struct vfs_ctx *c, uint64_t parent,
	       const char *name, const struct stat *st);
void lake_seen(struct lake *l, uint64_t parent, const char *name, const struct stat *st);
void lake_removed(struct lake *l, uint64_t parent, const char *name);
/* Gold definitions are checked when a descriptor written to is closed:
 * whether ino needs the FUSE flush, and the verdict (0 or -EINVAL). */
int lake_wants_flush(struct lake *l, uint64_t ino);
int lake_flush(struct lake *l, uint64_t ino);
void lake_renamed(struct lake *l, uint64_t newparent, const char *newname);
void lake_closed(struct lake *l, uint64_t ino, int wrote);
void lake_forget(struct lake *l, uint64_t ino);

/*
 * ---- properties: user.lakefs.* extended attributes ----
 * lake_setxattr returns 1 when name is not the lake's (the caller stores
 * it as an ordinary xattr), else 0 or -errno (EINVAL with a log line for a
 * bad value). Setting user.lakefs.run or user.lakefs.drop acts instead of
 * storing. lake_getxattr returns 1 when not the lake's, else the length
 * or -errno, as getxattr(2) (size 0: the length).
 */
int lake_setxattr(struct lake *l, struct lake_who *w, uint64_t ino,
		  const char *name, const void *val, size_t len, int flags);
int lake_removexattr(struct lake *l, struct lake_who *w, uint64_t ino,
		     const char *name);
ssize_t lake_getxattr(struct lake *l, struct lake_who *w, uint64_t ino,
		      const char *name, void *buf, size_t size);

/* ---- control ---- */
struct lake_stats {
	uint64_t queued, running, waiting;	/* waiting: files in their quiet period */
	uint64_t done, failed, quarantined;	/* since the start */
	uint64_t tables, versions;
};
void lake_stats(struct lake *l, struct lake_stats *st);
/* /.lakefs/jobs: the recent runs, one JSON object per line, oldest first;
 * those of tables the caller may read. */
void lake_jobs_render(struct lake *l, struct lake_who *w, struct gbuf *out);

#endif
