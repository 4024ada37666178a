/* sync/workq.h — a fixed pool of worker threads fed by a FIFO queue. */
#ifndef LAKEFS_SYNC_WORKQ_H
#define LAKEFS_SYNC_WORKQ_H

#include <stddef.h>

struct workq;
typedef void (*workq_fn)(void *arg);

/* Start nthreads workers named NAME. NULL on failure. */
struct workq *workq_new(const char *name, int nthreads);
/* Queue fn(arg); never blocks. 0 or -ENOMEM. */
int workq_push(struct workq *wq, workq_fn fn, void *arg);
/* Number of queued (not yet started) items. */
size_t workq_backlog(struct workq *wq);
/* Run everything queued, then stop and join the workers. */
void workq_free(struct workq *wq);

#endif
