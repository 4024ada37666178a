/* catalog/lake_int.h — state shared by catalog/lake.c and catalog/promote.c. */
#ifndef LAKEFS_CATALOG_LAKE_INT_H
#define LAKEFS_CATALOG_LAKE_INT_H

#include <pthread.h>

#include "catalog/lake.h"

enum lk_kind { LK_ROOT, LK_CATALOG, LK_SCHEMA, LK_TABLE, LK_VOLUME, LK_TREE };
enum lk_layer { LY_NONE, LY_BRONZE, LY_SILVER, LY_GOLD, LY_VOLUME };

/* A directory's place in the namespace. */
struct lk_class {
	enum lk_kind kind;
	enum lk_layer layer;
	uint64_t sec;		/* the nearest securable (itself, or 1: the root) */
	uint64_t table;		/* the table or volume it is in (0: none) */
};

/* A securable's catalog record (K sec/<ino>). */
struct lk_sec {
	uint64_t ino, parent;	/* parent: the securable above (1: the root) */
	enum lk_kind kind;
	enum lk_layer layer;
	uint64_t src;		/* a silver table: its bronze table */
	char name[LAKE_NAME_MAX + 1];
	int has_owner;		/* records before access control have none */
	uint32_t uid, gid;	/* the owner; uid (uint32_t)-1: the owner of
				 * the securable above */
};

enum lk_job_kind { JK_INGEST, JK_DROP, JK_REFRESH };
enum lk_job_state { JS_QUEUED, JS_RUNNING, JS_DONE, JS_FAILED, JS_QUARANTINED,
		    JS_SKIPPED };

struct lk_job {
	struct lk_job *next;
	uint64_t id;
	enum lk_job_kind kind;
	enum lk_job_state state;
	uint64_t table;		/* the bronze table (ingest) or the dropped securable */
	uint64_t file;		/* the bronze file */
	unsigned char cid[32];	/* its content id when the job was made */
	char *path;		/* the file's path below the table */
	char *tname;		/* catalog.schema.table */
	uint64_t t_queued, t_started, t_finished;	/* realtime ns */
	uint64_t version;
	uint64_t rows_read, rows_written, rows_dropped, rows_quarantined,
		 rows_deleted, rows_total;
	char *error;
	char *inputs;		/* refresh: JSON array of the inputs' versions */
};

struct lk_map;			/* uint64 -> uint64, lake.c */
struct lk_note;			/* a kernel entry to drop later, lake.c */
struct access;			/* access.c */
struct gold_pending;

struct lake {
	struct vfs *v;
	struct meta *m;
	struct lake_options opt;
	char *tmp_dir;		/* opt.tmp_dir points here */
	pthread_mutex_t lock;	/* everything below; never held across vfs calls */
	pthread_cond_t cond;	/* work for the scheduler or the workers */
	pthread_cond_t idle;	/* a job finished */
	struct lk_map *files;	/* file ino (below a table or volume) -> that table or volume */
	struct lk_map *dirs;	/* dir ino -> packed lk_class (see lake.c) */
	struct lk_map *scan_at;	/* bronze table ino -> monotonic ns of its next scan */
	struct lk_map *scan_force;	/* ... -> 1: that scan is a `lakefs run`'s,
				 * put off only by files still sealing */
	struct lk_map *busy;	/* table ino -> 1 while a job runs on it */
	struct lk_map *gold_at;	/* gold table ino -> monotonic ns of a refresh
				 * its inputs asked for (debounced) */
	struct lk_map *gold_first;	/* ... and of the first such ask */
	struct lk_map *gold_next;	/* gold table on a schedule -> realtime ns due */
	struct lk_map *sqlfiles;	/* NAME.sql file ino in a gold schema -> that schema */
	struct lk_map *gfiles;	/* any file ino in a gold schema -> that schema */
	struct lk_map *sqlerr;	/* such a file -> its last verdict (malloc'd text) */
	struct gold_pending *gpending;	/* definitions renamed into place, to
					 * compile off the FUSE thread (gold.c) */
	struct lk_job *queue, *queue_tail;	/* queued and running jobs */
	struct lk_job *recent, *recent_tail;	/* finished, newest last */
	size_t nrecent;
	uint64_t next_job;
	uint64_t running, done, failed, quarantined;
	int stopping;
	pthread_t sched;
	pthread_t *workers;
	unsigned nworkers;
	int started;
	struct access *acc;	/* grants and the audit log (access.c) */
	struct lk_note *notes;	/* entries the scheduler drops (lk_notify_later) */
};

/* lake.c */
int lk_sec_get(struct lake *l, uint64_t ino, struct lk_sec *out);
int lk_class(struct lake *l, uint64_t dir, struct lk_class *out);
/* catalog.schema.table of a securable, malloc'ed */
char *lk_sec_path(struct lake *l, uint64_t ino);
/* a property with inheritance table -> schema -> catalog, malloc'ed; NULL */
char *lk_prop(struct lake *l, uint64_t sec, const char *name);
void lk_job_json(const struct lk_job *j, struct gbuf *out);
void lk_key(char *buf, size_t cap, const char *what, uint64_t ino);
extern const struct vfs_ctx lk_engine_ctx;

int lk_job_submit(struct lake *l, struct lk_job *j);
void lk_job_free(struct lk_job *j);
int lk_engine_dir(struct lake *l, uint64_t parent, const char *name, uint64_t *ino);
/* owner uid (uint32_t)-1: whoever owns parent */
int lk_make_sec(struct lake *l, uint64_t ino, uint64_t parent, enum lk_kind k,
		enum lk_layer y, uint64_t src, const char *name, uint32_t uid,
		uint32_t gid);
/* delete a securable's records (K sec, K acl) */
int lk_sec_del(struct lake *l, uint64_t ino);
int lk_name_ok(const char *name);
int lk_name_in_parent(struct lake *l, uint64_t parent, uint64_t ino, char *name,
		      size_t cap);
uint64_t lk_realtime_ns(void);
void lk_iso_time(uint64_t ns, char *out, size_t cap);
/* wake the scheduler (l->lock not held) */
void lk_wake(struct lake *l);
/* drop the kernel's entry dir/name from the scheduler thread: for callers
 * inside a FUSE request that holds a directory lock the notification
 * could wait for */
void lk_notify_later(struct lake *l, uint64_t dir, const char *name);
/* the uint64 maps (not locked: their owner's lock held) */
struct lk_map *lk_map_new(void);
void lk_map_free(struct lk_map *m);
int lk_map_get(const struct lk_map *m, uint64_t k, uint64_t *val);
int lk_map_put(struct lk_map *m, uint64_t k, uint64_t val);
uint64_t lk_map_del(struct lk_map *m, uint64_t k);
/* keys whose value is <= now (at most max into keys); *next: the least
 * value above now, if less than *next or *next is 0 */
void lk_map_each_due(const struct lk_map *m, uint64_t now, uint64_t *keys,
		     size_t *n, size_t max, uint64_t *next);

/* access.c */
int lk_acc_open(struct lake *l);
void lk_acc_close(struct lake *l);
int lake_job_visible(struct lake *l, struct lake_who *w, uint64_t table);
/* uid with its groups from the group database (the engine acting for it) */
void lk_acc_who_of(struct lake *l, uint32_t uid, struct lake_who *w);
/* may w read table? (what a gold query of w's may use) */
int lk_acc_reads(struct lake *l, struct lake_who *w, uint64_t table);
/* a securable's owner ((uint32_t)-1, no one, when it cannot be read) */
uint32_t lk_acc_owner(struct lake *l, uint64_t sec);
/* a securable's records were written: refresh what is cached of it */
void lk_acc_reload(struct lake *l, uint64_t ino);
/* a securable is gone: its grants go too */
void lk_acc_forget(struct lake *l, uint64_t ino);

/* gold.c: gold tables defined by NAME.sql files in a gold schema */
int gold_flush(struct lake *l, uint64_t ino);
void gold_named(struct lake *l, uint64_t parent, const char *name, uint64_t ino);
void gold_unlinked(struct lake *l, uint64_t parent, const char *name);
void gold_renamed(struct lake *l, uint64_t parent, const char *name);
int gold_drop_records(struct lake *l, uint64_t gdir);
void gold_schedule_changed(struct lake *l, uint64_t gdir);
void gold_pending_free(struct lake *l);
/* a silver or gold table (its directory) has a new version */
void gold_input_changed(struct lake *l, uint64_t table_dir);
enum lk_job_state gold_refresh_run(struct lake *l, struct lk_job *j);
/* the scheduler's part: queue refreshes that are due; *next: the earliest
 * monotonic ns something else will be due (0: none) */
void gold_tick(struct lake *l, uint64_t now_mono, uint64_t *next);
int gold_run(struct lake *l, uint64_t gold_dir);
int gold_check_prop(const char *name, const char *val);
void gold_start(struct lake *l);
ssize_t gold_error_xattr(struct lake *l, uint64_t ino, void *buf, size_t size);

/* promote.c: files the engine writes aside (lk_of_*: buffered, fsynced by
 * lk_of_finish, published with vfs_publish) and reads (lk_in_pread) */
struct out_file {
	struct lake *l;
	struct vfs_file *f;
	uint64_t ino;
	uint64_t off;
	unsigned char *buf;
	size_t n;
	int err;
};

struct in_file {
	struct lake *l;
	struct vfs_file *f;
};

int lk_of_open(struct lake *l, struct out_file *o);
int lk_of_write(void *arg, const void *p, size_t n);
int lk_of_clone(struct out_file *o, uint64_t src);
int lk_of_finish(struct out_file *o);
void lk_of_close(struct out_file *o);
ssize_t lk_in_pread(void *arg, void *buf, size_t n, uint64_t off);

/* promote.c: one job; fills j's figures, or j->error. JS_DONE, ... */
enum lk_job_state promote_run(struct lake *l, struct lk_job *j);
/* The content id of a file: SHA-256 over its size and block hashes. */
int promote_cid(struct lake *l, uint64_t ino, unsigned char cid[32]);

#endif
