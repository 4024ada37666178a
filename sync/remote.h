/* sync/remote.h — the local block store as a cache in front of a bucket. */
#ifndef LAKEFS_SYNC_REMOTE_H
#define LAKEFS_SYNC_REMOTE_H

#include <stdint.h>

#include "sync/blockstore.h"
#include "sync/s3.h"

struct remote;

struct remote_options {
	uint64_t cache_max;	/* cap on locally stored bytes; 0: none */
	int upload_threads;	/* parallel uploads (default 8) */
	size_t block_max;	/* largest plaintext block, for verification */
	const char *store_url;	/* s3://bucket/prefix, recorded in the state */
};

/*
 * Open the remote layer over an opened local backend (taken over; freed
 * with the remote) and an S3 client (borrowed; must outlive the remote).
 * state_dir holds the upload queue (a LevelDB at STATE/sync). The upload
 * threads start with remote_go(). A state dir whose blocks go to another
 * store is refused.
 */
int remote_open(struct remote **out, struct bs_backend *local,
		struct s3_client *s3, const char *state_dir,
		const struct remote_options *opt, char **errmsg);

/*
 * Uploads start here, once the mount has met the bucket (journal_start):
 * a state is bound to its bucket (the U record) only then, so a first
 * mount the bucket refuses leaves the state free to mirror elsewhere.
 */
int remote_go(struct remote *r);

/* The backend the block store uses; its free() closes the remote. */
void remote_backend(struct remote *r, struct bs_backend *be);

/*
 * Upload order marks: every block put gets the next sequence number.
 * remote_mark() is the last one given out; a mark is drained when every
 * block with a number at or below it is in the bucket (or was never
 * needed there). Metadata that references blocks put before a mark may
 * go to the bucket once the mark is drained.
 */
uint64_t remote_mark(struct remote *r);
int remote_drained(struct remote *r, uint64_t mark);
/* Wait until mark is drained: 0, -ETIMEDOUT, or -ESHUTDOWN when closing. */
int remote_wait(struct remote *r, uint64_t mark, uint64_t timeout_ns);

struct remote_stats {
	uint64_t pending_blocks, pending_bytes;
	uint64_t oldest_pending_s;	/* age of the oldest queued block */
	uint64_t uploaded_blocks, uploaded_bytes, upload_errors;
	uint64_t local_blocks, local_bytes, cache_max;
	uint64_t evicted_blocks, fetched_blocks, fetched_bytes, fetch_errors;
	uint64_t last_error_age_s;	/* 0 with last_error empty: none */
	char last_error[320];
};
void remote_stats(struct remote *r, struct remote_stats *st);

/* Start the upload queue of a state restored from store_url: the n
 * blocks hs (stored sizes in stored) are in the bucket already. */
int remote_seed(const char *state_dir, const char *store_url,
		const struct bs_hash *hs, const uint32_t *stored, size_t n,
		char **errmsg);

/*
 * STATE/store remembers where a state's bucket is, so that a remount
 * needs no --store and a mount with another bucket is refused.
 */
struct store_rec {
	char url[1024];		/* s3://bucket/prefix */
	char endpoint[1024];
	char region[64];
	int path_style;
};
/* 1 if the state has a bucket, 0 if not, or -errno. */
int store_rec_load(const char *state_dir, struct store_rec *sr);
int store_rec_save(const char *state_dir, const struct store_rec *sr);

/* An S3 client for sr (credentials as s3_load_credentials() finds
 * them); does not touch the network. 0 or -errno and *errmsg. */
int store_connect(const struct store_rec *sr, const char *creds_file,
		  int insecure, size_t multipart_threshold, size_t part_size,
		  struct s3_client **out, char **errmsg);

/* The object name of a block in the bucket: "blocks/<64 hex>". */
void remote_block_key(const struct bs_hash *h, char out[80]);

#endif
