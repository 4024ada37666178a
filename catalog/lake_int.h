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
};

enum lk_job_kind { JK_INGEST, JK_DROP };
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
};

struct lk_map;			/* uint64 -> uint64, lake.c */

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
	struct lk_map *busy;	/* bronze table ino -> 1 while a job runs on it */
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

/* promote.c: one job; fills j's figures, or j->error. JS_DONE, ... */
enum lk_job_state promote_run(struct lake *l, struct lk_job *j);
/* The content id of a file: SHA-256 over its size and block hashes. */
int promote_cid(struct lake *l, uint64_t ino, unsigned char cid[32]);

#endif
