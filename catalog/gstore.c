/*
 * catalog/gstore.c — rows grouped by key, in bounded memory.
 *
 * What for. SQLite has no hash aggregate: a GROUP BY (or DISTINCT) over a
 * table without an index sorts every row, and over ten million rows that
 * sort is most of a gold refresh. When the planner tells a virtual table
 * that it only needs the rows of each key adjacent (sqlite3_vtab_distinct
 * 1 or 2), the scan puts every row here under its key and hands them out
 * group by group; SQLite then aggregates as a stream. catalog/sqlq.c
 * encodes keys so that equal bytes mean equal values to SQLite.
 *
 * In memory a gstore is a set of groups: an open-addressing table of the
 * distinct keys (64-bit hash, key bytes copied once), each key with a
 * chain of pages holding its rows' values back to back as (varint length,
 * bytes). A group's pages start at PAGE_MIN bytes and double up to
 * PAGE_MAX, so a million one-row groups cost little and a big group reads
 * back sequentially. Rows come out group by group in the order the keys
 * were first seen, each group's rows in the order they were added.
 *
 * Memory. Keys, pages, the group array and the table are counted. When an
 * add leaves more than the budget held, the set is written out as runs,
 * one per key, to NPART partition files chosen by the key's hash (a run:
 * varint key length, key, varint body length, body; the body is the
 * group's pages back to back, so rows as in a page), and the set starts
 * empty again. A partition's small runs gather in a write buffer (budget /
 * 2 NPART bytes, 4 to 64 KiB); a bigger body is written as it stands.
 * Handing out a spilled store first spills what is left, then loads one
 * partition at a time into a fresh set — a run costs one key lookup and a
 * copy, never a look at its rows — and walks it. The rows of one key are
 * all in one partition and its runs are in the order they were written,
 * so they stay adjacent and in order. A partition is loaded whole even
 * when it alone is past the budget: memory is then about 2/NPART of the
 * data, or the size of the biggest key's rows when one key holds most.
 *
 * Files: unlinked from the start (O_TMPFILE, else mkstemp and unlink), so
 * a crash leaves none; a failed write or read is its -errno, nothing is
 * retried. One gstore belongs to one cursor: no locking.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "catalog/gstore.h"
#include "util/util.h"

#define NPART		64		/* spill partitions: the top 6 hash bits */
#define PART_SHIFT	58
#define PBUF_MIN	(4u << 10)	/* a partition's write buffer: budget / */
#define PBUF_MAX	(64u << 10)	/* (2 * NPART), within these */
#define PAGE_MIN	256u
#define PAGE_MAX	(64u << 10)

struct gpage {
	struct gpage *next;
	uint32_t used, cap;
	unsigned char d[];
};

struct group {
	uint64_t hash;
	unsigned char *key;
	size_t klen;
	struct gpage *head, *tail;
};

struct gset {
	struct group *g;
	size_t ng, capg;
	uint32_t *slot;		/* group index + 1; 0: empty */
	size_t nslot;		/* a power of two */
	size_t mem;
};

struct part {
	int fd;			/* -1: not made yet */
	uint64_t size;		/* bytes in the file */
	unsigned char *buf;
	size_t n;
};

struct gstore {
	size_t budget;
	size_t pbuf;		/* bytes of each partition's write buffer */
	char *tmp_dir;
	struct gset set;
	int spilled, done;
	struct part part[NPART];
	uint64_t rows, spill_bytes, peak;
	/* handing out */
	size_t ip;		/* the partition loaded next (spilled) */
	size_t gi;		/* the group */
	struct gpage *pg;	/* its page */
	uint32_t off;		/* in the page */
	int loaded;
};

static uint64_t hash_key(const unsigned char *p, size_t n)
{
	const unsigned char *end = p + n;
	uint64_t h = 0x9e3779b97f4a7c15ull ^ (n * 0xff51afd7ed558ccdull), w = 0;

	for (; end - p >= 8; p += 8) {
		memcpy(&w, p, 8);
		h = (h ^ w) * 0x100000001b3ull;
		h ^= h >> 31;
	}
	if (p < end && n >= 8) {	/* the last 8 bytes, overlapping */
		memcpy(&w, end - 8, 8);
	} else {			/* shifted in: no store to reload */
		w = 0;
		for (unsigned k = 0; p + k < end; k++)
			w |= (uint64_t)p[k] << (8 * k);
	}
	h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
	h ^= h >> 29;
	h *= 0x94d049bb133111ebull;
	return h ^ (h >> 32);
}

static size_t put_varint(unsigned char *p, size_t v)
{
	size_t n = 0;

	while (v >= 0x80) {
		p[n++] = (unsigned char)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (unsigned char)v;
	return n;
}

/* A varint at p, before end: its length in bytes, 0 when malformed. */
static size_t get_varint(const unsigned char *p, const unsigned char *end,
			 size_t *v)
{
	size_t x = 0, n = 0;

	for (unsigned shift = 0; p + n < end && shift < 64; shift += 7) {
		unsigned char b = p[n++];

		x |= (size_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*v = x;
			return n;
		}
	}
	return 0;
}

static void note_peak(struct gstore *g)
{
	uint64_t m = g->set.mem + (g->spilled ? NPART * (uint64_t)g->pbuf : 0);

	if (m > g->peak)
		g->peak = m;
}

/* ---- the in-memory set ---- */

static void set_free(struct gset *s)
{
	for (size_t i = 0; i < s->ng; i++) {
		struct gpage *p = s->g[i].head, *next;

		for (; p; p = next) {
			next = p->next;
			free(p);
		}
		free(s->g[i].key);
	}
	free(s->g);
	free(s->slot);
	memset(s, 0, sizeof(*s));
}

static int set_rehash(struct gset *s)
{
	size_t n = s->nslot ? s->nslot * 2 : 1024;
	uint32_t *slot = calloc(n, sizeof(*slot));

	if (!slot)
		return -ENOMEM;
	for (size_t i = 0; i < s->ng; i++) {
		size_t k = s->g[i].hash & (n - 1);

		while (slot[k])
			k = (k + 1) & (n - 1);
		slot[k] = (uint32_t)i + 1;
	}
	s->mem += (n - s->nslot) * sizeof(*slot);
	free(s->slot);
	s->slot = slot;
	s->nslot = n;
	return 0;
}

static struct group *set_group(struct gset *s, uint64_t h, const void *key,
			       size_t klen)
{
	struct group *gr;
	size_t k, oldcap;

	if ((s->ng + 1) * 2 > s->nslot && set_rehash(s) < 0)
		return NULL;
	for (k = h & (s->nslot - 1); s->slot[k]; k = (k + 1) & (s->nslot - 1)) {
		gr = &s->g[s->slot[k] - 1];
		if (gr->hash == h && gr->klen == klen && !memcmp(gr->key, key, klen))
			return gr;
	}
	if (s->ng >= UINT32_MAX - 1)
		return NULL;
	oldcap = s->capg;
	if (grow_array((void **)&s->g, &s->capg, s->ng + 1, sizeof(*s->g),
		       SIZE_MAX, NULL))
		return NULL;
	s->mem += (s->capg - oldcap) * sizeof(*s->g);
	gr = &s->g[s->ng];
	memset(gr, 0, sizeof(*gr));
	if (!(gr->key = malloc(klen ? klen : 1)))
		return NULL;
	memcpy(gr->key, key, klen);
	gr->klen = klen;
	gr->hash = h;
	s->mem += klen;
	s->slot[k] = (uint32_t)++s->ng;
	return gr;
}

/* A new last page of cap bytes for group gr; NULL when out of memory. */
static struct gpage *group_page(struct gset *s, struct group *gr, size_t cap)
{
	struct gpage *p;

	if (cap > UINT32_MAX || !(p = malloc(sizeof(*p) + cap)))
		return NULL;
	p->next = NULL;
	p->used = 0;
	p->cap = (uint32_t)cap;
	if (gr->tail)
		gr->tail->next = p;
	else
		gr->head = p;
	gr->tail = p;
	s->mem += sizeof(*p) + cap;
	return p;
}

static int set_add(struct gset *s, uint64_t h, const void *key, size_t klen,
		   const void *val, size_t vlen)
{
	struct group *gr = set_group(s, h, key, klen);
	struct gpage *p;
	size_t need = vlen + 10;

	if (!gr)
		return -ENOMEM;
	p = gr->tail;
	if (!p || p->cap - p->used < need) {
		size_t cap = p ? (p->cap < PAGE_MAX ? p->cap * 2 : PAGE_MAX) : PAGE_MIN;

		if (!(p = group_page(s, gr, MAX(cap, need))))
			return -ENOMEM;
	}
	p->used += (uint32_t)put_varint(p->d + p->used, vlen);
	memcpy(p->d + p->used, val, vlen);
	p->used += (uint32_t)vlen;
	return 0;
}

/* ---- partitions ---- */

static int part_open(struct gstore *g)
{
	const char *dir = g->tmp_dir ? g->tmp_dir : "/tmp";
	char path[4096];
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

	if (fd >= 0)
		return fd;
	if ((size_t)snprintf(path, sizeof(path), "%s/lakefs-group-XXXXXX", dir) >=
	    sizeof(path))
		return -ENAMETOOLONG;
	if ((fd = mkostemp(path, O_CLOEXEC)) < 0)
		return -errno;
	unlink(path);
	return fd;
}

static int part_write(struct gstore *g, struct part *pt, const void *d, size_t n)
{
	int ret;

	if (pt->fd < 0 && (pt->fd = part_open(g)) < 0) {
		ret = pt->fd;
		pt->fd = -1;
		return ret;
	}
	if ((ret = pwrite_all(pt->fd, d, n, pt->size)) < 0)
		return ret;
	pt->size += n;
	g->spill_bytes += n;
	return 0;
}

/* The partition's write buffer to its file. */
static int part_flush(struct gstore *g, struct part *pt)
{
	int ret = pt->n ? part_write(g, pt, pt->buf, pt->n) : 0;

	if (ret == 0)
		pt->n = 0;
	return ret;
}

/* One group's rows, as a run, to its partition. */
static int part_run(struct gstore *g, const struct group *gr)
{
	struct part *pt = &g->part[gr->hash >> PART_SHIFT];
	unsigned char hdr[20];
	size_t body = 0, hn;
	int ret;

	for (const struct gpage *p = gr->head; p; p = p->next)
		body += p->used;
	hn = put_varint(hdr, gr->klen);
	if (gr->klen + body + 20 > g->pbuf) {	/* big: straight to the file */
		if ((ret = part_flush(g, pt)) < 0 ||
		    (ret = part_write(g, pt, hdr, hn)) < 0 ||
		    (ret = part_write(g, pt, gr->key, gr->klen)) < 0 ||
		    (ret = part_write(g, pt, hdr, put_varint(hdr, body))) < 0)
			return ret;
		for (const struct gpage *p = gr->head; p; p = p->next)
			if ((ret = part_write(g, pt, p->d, p->used)) < 0)
				return ret;
		return 0;
	}
	if (g->pbuf - pt->n < gr->klen + body + 20 && (ret = part_flush(g, pt)) < 0)
		return ret;
	memcpy(pt->buf + pt->n, hdr, hn);
	pt->n += hn;
	memcpy(pt->buf + pt->n, gr->key, gr->klen);
	pt->n += gr->klen;
	pt->n += put_varint(pt->buf + pt->n, body);
	for (const struct gpage *p = gr->head; p; p = p->next) {
		memcpy(pt->buf + pt->n, p->d, p->used);
		pt->n += p->used;
	}
	return 0;
}

/* The set goes to the partitions, a run per key, and starts empty. */
static int spill_all(struct gstore *g)
{
	struct gset *s = &g->set;
	int ret;

	if (!g->spilled) {
		for (size_t i = 0; i < NPART; i++)
			if (!(g->part[i].buf = malloc(g->pbuf)))
				return -ENOMEM;
		g->spilled = 1;
	}
	for (size_t i = 0; i < s->ng; i++)
		if ((ret = part_run(g, &s->g[i])) < 0)
			return ret;
	set_free(s);
	return 0;
}

/* A run's body to the end of its group: a page of its own unless it fits
 * the last one (rows never straddle pages). */
static int set_append(struct gset *s, const unsigned char *key, size_t klen,
		      const unsigned char *body, size_t n)
{
	struct group *gr = set_group(s, hash_key(key, klen), key, klen);
	struct gpage *p;

	if (!gr)
		return -ENOMEM;
	p = gr->tail;
	if ((!p || p->cap - p->used < n) && !(p = group_page(s, gr, MAX(n, PAGE_MIN))))
		return -ENOMEM;
	memcpy(p->d + p->used, body, n);
	p->used += (uint32_t)n;
	return 0;
}

/* Partition i into the (empty) set; its file and buffer are let go. */
static int part_load(struct gstore *g, size_t i)
{
	struct part *pt = &g->part[i];
	unsigned char *data = NULL;
	const unsigned char *q, *end;
	int ret;

	if ((ret = part_flush(g, pt)) < 0)
		return ret;
	free(pt->buf);
	pt->buf = NULL;
	if (pt->fd < 0)
		return 0;
	if (pt->size && !(data = malloc(pt->size)))
		return -ENOMEM;
	if ((ret = pread_all(pt->fd, data, pt->size, 0)) < 0) {
		free(data);
		return ret;
	}
	close(pt->fd);
	pt->fd = -1;
	g->set.mem += pt->size;
	note_peak(g);
	g->set.mem -= pt->size;
	for (q = data, end = data + pt->size; q < end;) {
		size_t klen, blen, n, m;

		if (!(n = get_varint(q, end, &klen)) || klen > (size_t)(end - q - n) ||
		    !(m = get_varint(q + n + klen, end, &blen)) ||
		    blen > (size_t)(end - q - n - klen - m)) {
			free(data);
			return -EIO;
		}
		if ((ret = set_append(&g->set, q + n, klen, q + n + klen + m, blen)) < 0) {
			free(data);
			return ret;
		}
		q += n + klen + m + blen;
	}
	free(data);
	note_peak(g);
	return 0;
}

/* ---- the interface ---- */

int gstore_new(struct gstore **out, size_t budget, const char *tmp_dir)
{
	struct gstore *g = calloc(1, sizeof(*g));

	*out = NULL;
	if (!g || (tmp_dir && *tmp_dir && !(g->tmp_dir = strdup(tmp_dir)))) {
		free(g);
		return -ENOMEM;
	}
	g->budget = budget ? budget : 1;
	g->pbuf = MIN(MAX(g->budget / (2 * NPART), PBUF_MIN), PBUF_MAX);
	for (size_t i = 0; i < NPART; i++)
		g->part[i].fd = -1;
	*out = g;
	return 0;
}

void gstore_free(struct gstore *g)
{
	if (!g)
		return;
	set_free(&g->set);
	for (size_t i = 0; i < NPART; i++) {
		if (g->part[i].fd >= 0)
			close(g->part[i].fd);
		free(g->part[i].buf);
	}
	free(g->tmp_dir);
	free(g);
}

int gstore_add(struct gstore *g, const void *key, size_t klen, const void *val,
	       size_t vlen)
{
	uint64_t h;
	int ret;

	if (g->done)
		return -EINVAL;
	h = hash_key(key, klen);
	g->rows++;
	if ((ret = set_add(&g->set, h, key, klen, val, vlen)) < 0)
		return ret;
	note_peak(g);
	return g->set.mem > g->budget ? spill_all(g) : 0;
}

int gstore_next(struct gstore *g, const unsigned char **key, size_t *klen,
		const unsigned char **val, size_t *vlen)
{
	int ret;

	if (!g->done && g->spilled && (ret = spill_all(g)) < 0)
		return ret;	/* what is left joins the partitions */
	g->done = 1;
	for (;;) {
		if (g->pg && g->off < g->pg->used) {
			const struct group *gr = &g->set.g[g->gi];
			const unsigned char *end = g->pg->d + g->pg->used;
			size_t n = get_varint(g->pg->d + g->off, end, vlen);

			*key = gr->key;
			*klen = gr->klen;
			*val = g->pg->d + g->off + n;
			g->off += (uint32_t)(n + *vlen);
			return 1;
		}
		if (g->pg && g->pg->next) {
			g->pg = g->pg->next;
			g->off = 0;
			continue;
		}
		if (g->loaded && g->gi + 1 < g->set.ng) {
			g->pg = g->set.g[++g->gi].head;
			g->off = 0;
			continue;
		}
		/* this set is walked: the next partition, or the end */
		if (g->loaded && !g->spilled)
			return 0;
		if (g->loaded)
			set_free(&g->set);
		g->pg = NULL;
		g->gi = 0;
		g->off = 0;
		if (g->spilled) {
			if (g->ip >= NPART)
				return 0;
			if ((ret = part_load(g, g->ip++)) < 0)
				return ret;
		}
		g->loaded = 1;
		if (g->set.ng)
			g->pg = g->set.g[0].head;
	}
}

void gstore_stats(const struct gstore *g, uint64_t *rows, uint64_t *spilled,
		  uint64_t *peak)
{
	if (rows)
		*rows = g->rows;
	if (spilled)
		*spilled = g->spill_bytes;
	if (peak)
		*peak = g->peak;
}
