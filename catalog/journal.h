/* catalog/journal.h — the metadata journal and snapshots in the bucket. */
#ifndef LAKEFS_CATALOG_JOURNAL_H
#define LAKEFS_CATALOG_JOURNAL_H

#include <stdint.h>

#include "catalog/meta.h"
#include "sync/remote.h"
#include "sync/s3.h"
#include "util/util.h"

struct journal;

struct journal_options {
	uint64_t linger_ms;		/* ship records at least this often (1000) */
	uint64_t snap_records;		/* snapshot after this many records (100000) */
	uint64_t snap_interval_s;	/* or this long with changes (3600) */
	int defer_attach;		/* the bucket is down: meet it later */
};

/*
 * Check that the bucket holds this filesystem or nothing yet (meta/fs),
 * and prepare to ship the journal of m (which must have the journal
 * enabled) and snapshots; journal_go() starts. With defer_attach the
 * check is made by the shipping thread, again and again until the bucket
 * answers (a remount while it is down). Fails with a message when the bucket belongs
 * to another filesystem or cannot be reached.
 */
int journal_start(struct journal **out, struct meta *m, struct remote *r,
		  struct s3_client *s3, const struct journal_options *opt,
		  char **errmsg);
/* Start the shipping thread (after the daemon has detached, so that its
 * log lines go where the daemon's go). */
int journal_go(struct journal *j);
/* Ship what can be shipped within timeout_ns, then stop. */
void journal_stop(struct journal *j, uint64_t timeout_ns);

/* Wait until every record up to seq is in the bucket: 0, -ETIMEDOUT. */
int journal_wait(struct journal *j, uint64_t seq, uint64_t timeout_ns);

struct journal_stats {
	uint64_t last_seq, shipped_seq, snapshot_seq;
	uint64_t segments, snapshots, errors;
	uint64_t last_error_age_s;
	char last_error[320];
};
void journal_stats(struct journal *j, struct journal_stats *st);

struct restore_report {
	uint64_t snapshot_seq, last_seq, records, keys, blocks;
};

/*
 * Rebuild a state directory from the bucket alone: the newest snapshot
 * that reads back whole, then the journal after it. state_dir must not
 * hold a filesystem yet. Blocks are not fetched (they come on first
 * read); the upload queue records them as present in the bucket.
 */
int journal_restore(struct s3_client *s3, const char *store_url,
		    const char *state_dir, struct restore_report *rep,
		    char **errmsg);

/*
 * What goes up, built in memory (before compression): the records from
 * seq from on (at most one segment's worth), and a snapshot. out is a
 * zeroed gbuf; the caller frees out->p.
 */
int journal_build_segment(struct meta *m, uint64_t from, struct gbuf *out,
			  uint64_t *first, uint64_t *last, uint64_t *mark,
			  uint64_t *count);
int journal_build_snapshot(struct meta *m, struct gbuf *out, uint64_t *seq,
			   uint64_t *mark, uint64_t *keys);

/* The parsers of restore, for tests: 0 if buf (decompressed) is a whole
 * journal segment or snapshot, -EIO otherwise. */
int journal_check_segment(const void *buf, size_t n, uint64_t *first,
			  uint64_t *last, uint64_t *count);
int journal_check_snapshot(const void *buf, size_t n, uint64_t *seq,
			   uint64_t *keys);

#endif
