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
int lake_setxattr(struct lake *l, uint64_t ino, const char *name,
		  const void *val, size_t len, int flags);
int lake_removexattr(struct lake *l, uint64_t ino, const char *name);
ssize_t lake_getxattr(struct lake *l, uint64_t ino, const char *name,
		      void *buf, size_t size);

/* ---- control ---- */
struct lake_stats {
	uint64_t queued, running, waiting;	/* waiting: files in their quiet period */
	uint64_t done, failed, quarantined;	/* since the start */
	uint64_t tables, versions;
};
void lake_stats(struct lake *l, struct lake_stats *st);
/* /.lakefs/jobs: the recent runs, one JSON object per line, oldest first. */
void lake_jobs_render(struct lake *l, struct gbuf *out);

#endif
