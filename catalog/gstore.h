/*
 * catalog/gstore.h — rows grouped by key, in bounded memory: what a scan
 * hands SQLite when the query planner only needs the rows of one GROUP BY
 * or DISTINCT key to be adjacent (see catalog/gstore.c).
 */
#ifndef LAKEFS_GSTORE_H
#define LAKEFS_GSTORE_H

#include <stddef.h>
#include <stdint.h>

struct gstore;

/*
 * budget: bytes of memory past which rows spill to unlinked files in
 * tmp_dir (NULL or "": /tmp). 0, -ENOMEM.
 */
int gstore_new(struct gstore **out, size_t budget, const char *tmp_dir);
void gstore_free(struct gstore *g);
/* One row: its key bytes and its value bytes (copied). 0 or -errno (a
 * spill file that cannot be written: -ENOSPC, -EIO ...). */
int gstore_add(struct gstore *g, const void *key, size_t klen, const void *val,
	       size_t vlen);
/*
 * The rows, every row of a key next to each other (keys equal as bytes),
 * in no promised order otherwise. Adding ends at the first call. Returns 1
 * with a row (the pointers valid until the next call), 0 at the end, or
 * -errno (reading a spill file back).
 */
int gstore_next(struct gstore *g, const unsigned char **key, size_t *klen,
		const unsigned char **val, size_t *vlen);
/* Rows added, bytes spilled so far, and the most memory held at once. */
void gstore_stats(const struct gstore *g, uint64_t *rows, uint64_t *spilled,
		  uint64_t *peak);

#endif
