/*
 * sync/workq.c — background work, after Redis's bio.c.
 *
 * A mutex-protected singly linked FIFO and N threads that pop and run items.
 * Items run in any order across workers; callers that need ordering (one
 * inode's blocks, say) keep their own state. The queue is unbounded here:
 * producers bound themselves (the dirty-buffer budget bounds sealing work).
 * workq_free() drains the queue before joining, so no queued item is lost at
 * unmount.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sync/workq.h"
#include "util/util.h"

struct wq_item {
	struct wq_item *next;
	workq_fn fn;
	void *arg;
};

struct workq {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct wq_item *head, *tail;	/* protected by lock */
	size_t backlog;			/* protected by lock */
	int stopping;			/* protected by lock */
	int nthreads;
	pthread_t *threads;
};

static void *workq_main(void *p)
{
	struct workq *wq = p;

	pthread_mutex_lock(&wq->lock);
	for (;;) {
		struct wq_item *it;

		while (!wq->head && !wq->stopping)
			pthread_cond_wait(&wq->cond, &wq->lock);
		it = wq->head;
		if (!it)
			break;		/* stopping and drained */
		wq->head = it->next;
		if (!wq->head)
			wq->tail = NULL;
		wq->backlog--;
		pthread_mutex_unlock(&wq->lock);
		it->fn(it->arg);
		free(it);
		pthread_mutex_lock(&wq->lock);
	}
	pthread_mutex_unlock(&wq->lock);
	return NULL;
}

struct workq *workq_new(const char *name, int nthreads)
{
	struct workq *wq = calloc(1, sizeof(*wq));

	if (!wq)
		return NULL;
	pthread_mutex_init(&wq->lock, NULL);
	pthread_cond_init(&wq->cond, NULL);
	wq->threads = calloc((size_t)nthreads, sizeof(pthread_t));
	if (!wq->threads) {
		free(wq);
		return NULL;
	}
	for (int i = 0; i < nthreads; i++) {
		char tname[16];

		if (pthread_create(&wq->threads[i], NULL, workq_main, wq) != 0)
			break;
		snprintf(tname, sizeof(tname), "%.8s-%d", name, i & 0xff);
		pthread_setname_np(wq->threads[i], tname);
		wq->nthreads++;
	}
	if (wq->nthreads == 0) {
		free(wq->threads);
		free(wq);
		return NULL;
	}
	return wq;
}

int workq_push(struct workq *wq, workq_fn fn, void *arg)
{
	struct wq_item *it = malloc(sizeof(*it));

	if (!it)
		return -ENOMEM;
	it->next = NULL;
	it->fn = fn;
	it->arg = arg;
	pthread_mutex_lock(&wq->lock);
	if (wq->tail)
		wq->tail->next = it;
	else
		wq->head = it;
	wq->tail = it;
	wq->backlog++;
	pthread_cond_signal(&wq->cond);
	pthread_mutex_unlock(&wq->lock);
	return 0;
}

size_t workq_backlog(struct workq *wq)
{
	size_t n;

	pthread_mutex_lock(&wq->lock);
	n = wq->backlog;
	pthread_mutex_unlock(&wq->lock);
	return n;
}

void workq_free(struct workq *wq)
{
	if (!wq)
		return;
	pthread_mutex_lock(&wq->lock);
	wq->stopping = 1;
	pthread_cond_broadcast(&wq->cond);
	pthread_mutex_unlock(&wq->lock);
	for (int i = 0; i < wq->nthreads; i++)
		pthread_join(wq->threads[i], NULL);
	free(wq->threads);
	pthread_mutex_destroy(&wq->lock);
	pthread_cond_destroy(&wq->cond);
	free(wq);
}
