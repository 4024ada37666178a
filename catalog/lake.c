/*
 * catalog/lake.c — catalogs, schemas, tables and volumes as directories;
 * properties; landing; the job queue and its threads.
 *
 * Namespace (DESIGN.md section 1). The root holds catalogs only; a catalog
 * holds schemas (bronze, silver and gold are made with it; any other is a
 * volume schema); a bronze schema holds tables (landing directories), a
 * volume schema holds volumes; below a table or a volume is an ordinary
 * POSIX tree. Silver and gold are the engine's: users get EROFS there.
 * A securable (catalog, schema, table, volume) has a catalog record
 * K sec/<ino> written when lakefs makes it; its name follows one rule
 * (lk_name_ok). A directory without a record at a securable's level (made
 * by an older lakefs, or a crash between mkdir and its record) is treated
 * as a plain POSIX tree. Securables are not renamed (EPERM); renames and
 * links between two tables or volumes are EXDEV, so mv copies.
 *
 * Landing. fs/ reports every name made or looked up below a bronze table
 * (lake_made, lake_seen) and every close after a write (lake_closed); the
 * file's table is then rescanned once its quiet period has passed. A scan
 * walks the table's tree: a regular file whose name is not in flight
 * (lk_in_flight), that no one holds open and that has not changed for the
 * quiet period is a candidate; its content id (SHA-256 over size and
 * block hashes, no data read) names the batch. A content id the table has
 * seen (K tbl/<ino>/seen/<cid>) or has queued is skipped, so the same bytes
 * landed twice, under any name, are one batch.
 *
 * Jobs. A job is persisted (K job/<id>) before it is queued, and its end
 * is written in the same transaction that publishes its result
 * (promote.c), so after a crash a queued or running job simply runs again,
 * and finds its batch seen if it had published. Workers take the oldest
 * queued job whose table is not busy: one job per table at a time, so
 * versions are ordered; tables promote in parallel.
 *
 * Locking: l->lock guards the maps, the queue and the counters. It is
 * never held across a vfs call (which takes inode and metadata locks);
 * LevelDB reads (meta_get_*) need no lock and may be done under it.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "catalog/ingest.h"
#include "catalog/lake_int.h"
#include "catalog/meta.h"
#include "util/log.h"
#include "util/util.h"

#define QUIET_DEFAULT_MS 1000
#define QUIET_MAX_MS 3600000
#define FORCED_RESCAN_MS 50	/* a `lakefs run` waiting for a file to close */
#define RECENT_MAX 1000		/* finished jobs kept (memory and K job/) */
#define SCAN_DEPTH_MAX 64
#define PROP_PREFIX "user.lakefs."

const struct vfs_ctx lk_engine_ctx = { 0, 0, 022 };

/* ---- a small uint64 -> uint64 map ---- */

struct lk_ent {
	struct lk_ent *next;
	uint64_t k, val;
};

struct lk_map {
	struct lk_ent **b;
	size_t nb, n;
};

struct lk_map *lk_map_new(void)
{
	struct lk_map *m = calloc(1, sizeof(*m));

	if (m && !(m->b = calloc(m->nb = 1024, sizeof(*m->b)))) {
		free(m);
		return NULL;
	}
	return m;
}

static size_t map_slot(const struct lk_map *m, uint64_t k)
{
	return (size_t)((k * 0x9E3779B97F4A7C15ull) >> 17) % m->nb;
}

static struct lk_ent *map_find(const struct lk_map *m, uint64_t k)
{
	struct lk_ent *e = m->b[map_slot(m, k)];

	while (e && e->k != k)
		e = e->next;
	return e;
}

int lk_map_get(const struct lk_map *m, uint64_t k, uint64_t *val)
{
	struct lk_ent *e = map_find(m, k);

	if (e && val)
		*val = e->val;
	return e != NULL;
}

static void map_grow(struct lk_map *m)
{
	size_t nb = m->nb * 2;
	struct lk_ent **b = calloc(nb, sizeof(*b));

	if (!b)
		return;		/* longer chains, still correct */
	for (size_t i = 0; i < m->nb; i++)
		while (m->b[i]) {
			struct lk_ent *e = m->b[i];
			size_t s = (size_t)((e->k * 0x9E3779B97F4A7C15ull) >> 17) % nb;

			m->b[i] = e->next;
			e->next = b[s];
			b[s] = e;
		}
	free(m->b);
	m->b = b;
	m->nb = nb;
}

/* 0, or -ENOMEM (the map is unchanged) */
int lk_map_put(struct lk_map *m, uint64_t k, uint64_t val)
{
	struct lk_ent *e = map_find(m, k);
	size_t s;

	if (e) {
		e->val = val;
		return 0;
	}
	if (!(e = malloc(sizeof(*e))))
		return -ENOMEM;
	if (m->n >= 2 * m->nb)
		map_grow(m);
	s = map_slot(m, k);
	e->k = k;
	e->val = val;
	e->next = m->b[s];
	m->b[s] = e;
	m->n++;
	return 0;
}

/* the value removed (0 if none) */
uint64_t lk_map_del(struct lk_map *m, uint64_t k)
{
	struct lk_ent **pp = &m->b[map_slot(m, k)];
	uint64_t val;

	while (*pp && (*pp)->k != k)
		pp = &(*pp)->next;
	if (!*pp)
		return 0;
	struct lk_ent *e = *pp;
	*pp = e->next;
	val = e->val;
	free(e);
	m->n--;
	return val;
}

void lk_map_each_due(const struct lk_map *m, uint64_t now, uint64_t *keys,
		     size_t *n, size_t max, uint64_t *next)
{
	for (size_t i = 0; i < m->nb; i++)
		for (struct lk_ent *e = m->b[i]; e; e = e->next) {
			if (e->val <= now) {
				if (*n < max)
					keys[(*n)++] = e->k;
			} else if (!*next || e->val < *next) {
				*next = e->val;
			}
		}
}

static void map_free(struct lk_map *m, int free_vals)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->nb; i++)
		while (m->b[i]) {
			struct lk_ent *e = m->b[i];

			m->b[i] = e->next;
			if (free_vals)
				free((void *)(uintptr_t)e->val);
			free(e);
		}
	free(m->b);
	free(m);
}

void lk_map_free(struct lk_map *m)
{
	map_free(m, 0);
}

/* ---- names and records ---- */

void lk_key(char *buf, size_t cap, const char *what, uint64_t ino)
{
	snprintf(buf, cap, "%s/%016" PRIx64, what, ino);
}

/*
 * A securable's name: 1..LAKE_NAME_MAX bytes of ASCII letters, digits,
 * '_' and '-', not starting with '_' or '-' (names starting with '_' are
 * the metadata of the table formats).
 */
int lk_name_ok(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > LAKE_NAME_MAX)
		return 0;
	if (name[0] == '_' || name[0] == '-')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)name[i]) && name[i] != '_' && name[i] != '-')
			return 0;
	return 1;
}

/* Names tools write while a file is in flight; they never land. */
static int lk_in_flight(const char *name)
{
	static const char *const suffix[] = { ".tmp", ".part", ".partial", "~",
					      ".swp", ".crdownload" };
	size_t n = strlen(name);

	if (name[0] == '.')
		return 1;
	for (size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
		size_t k = strlen(suffix[i]);

		if (n >= k && strcmp(name + n - k, suffix[i]) == 0)
			return 1;
	}
	return 0;
}

static const char *const kind_names[] = { "root", "catalog", "schema", "table",
					  "volume", "tree" };
static const char *const layer_names[] = { "-", "bronze", "silver", "gold", "volume" };

static int name_index(const char *const *names, int n, const char *s)
{
	for (int i = 0; i < n; i++)
		if (strcmp(names[i], s) == 0)
			return i;
	return -1;
}

static int sec_encode(const struct lk_sec *s, char *buf, size_t cap)
{
	return snprintf(buf, cap, "%s %s %016" PRIx64 " %016" PRIx64 " %s %d %u",
			kind_names[s->kind], layer_names[s->layer], s->parent,
			s->src, s->name, (int)s->uid, s->gid);
}

int lk_sec_get(struct lake *l, uint64_t ino, struct lk_sec *out)
{
	char key[64], kind[16], layer[16], name[LAKE_NAME_MAX + 1], *val;
	size_t len;
	int err, k, y, n, uid;
	unsigned gid;

	lk_key(key, sizeof(key), "sec", ino);
	err = meta_get_kv(l->m, key, &val, &len);
	if (err < 0)
		return err;
	err = -EIO;
	/* the owner's two fields came later: older records end at the name */
	if ((n = sscanf(val, "%15s %15s %" SCNx64 " %" SCNx64 " %64s %d %u", kind,
			layer, &out->parent, &out->src, name, &uid, &gid)) >= 5 &&
	    (k = name_index(kind_names, 6, kind)) >= 0 &&
	    (y = name_index(layer_names, 5, layer)) >= 0) {
		out->ino = ino;
		out->kind = k;
		out->layer = y;
		snprintf(out->name, sizeof(out->name), "%s", name);
		out->has_owner = n == 7;
		out->uid = n == 7 ? (uint32_t)uid : 0;
		out->gid = n == 7 ? gid : 0;
		err = 0;
	} else {
		log_err("catalog record %s is damaged: '%s'", key, val);
	}
	free(val);
	return err;
}

static int sec_put(struct lake *l, const struct lk_sec *s)
{
	char key[64], val[256];
	struct vfs_kv kv = { key, val, 0 };

	lk_key(key, sizeof(key), "sec", s->ino);
	kv.len = (size_t)sec_encode(s, val, sizeof(val));
	return vfs_publish(l->v, NULL, 0, &kv, 1);
}

char *lk_sec_path(struct lake *l, uint64_t ino)
{
	char *parts[4] = { 0 }, *out;
	struct lk_sec s;
	int n = 0;
	struct gbuf b = { 0 };

	while (ino != META_ROOT_INO && n < 4 && lk_sec_get(l, ino, &s) == 0) {
		parts[n++] = strdup(s.name);
		ino = s.parent;
	}
	while (n > 0) {
		gbuf_printf(&b, "%s%s", b.n ? "." : "", parts[n - 1] ? parts[n - 1] : "?");
		free(parts[--n]);
	}
	if (b.failed || !b.p) {
		free(b.p);
		return strdup("?");
	}
	out = (char *)b.p;
	return out;
}

/* ---- classification ---- */

int lk_class(struct lake *l, uint64_t dir, struct lk_class *out)
{
	struct lk_class chain[SCAN_DEPTH_MAX + 8];
	uint64_t inos[SCAN_DEPTH_MAX + 8], cached;
	struct lk_class *c;
	int n = 0, err;

	/* walk up to a known directory, then classify back down */
	for (;;) {
		struct meta_inode md;
		struct lk_sec s;

		if (dir == META_ROOT_INO) {
			c = &chain[n];
			*c = (struct lk_class){ LK_ROOT, LY_NONE, META_ROOT_INO, 0 };
			break;
		}
		pthread_mutex_lock(&l->lock);
		if (lk_map_get(l->dirs, dir, &cached)) {
			chain[n] = *(struct lk_class *)(uintptr_t)cached;
			pthread_mutex_unlock(&l->lock);
			c = &chain[n];
			break;
		}
		pthread_mutex_unlock(&l->lock);
		if ((err = lk_sec_get(l, dir, &s)) == 0) {
			c = &chain[n];
			*c = (struct lk_class){ s.kind, s.layer, dir,
				(s.kind == LK_TABLE || s.kind == LK_VOLUME) ? dir : 0 };
			break;
		}
		if (err != -ENOENT)
			return err;	/* a damaged record is not a plain directory */
		if (n >= SCAN_DEPTH_MAX)	/* deep trees: classify by the top */
			n = SCAN_DEPTH_MAX - 1;
		err = meta_get_inode(l->m, dir, &md);
		if (err < 0)
			return err;
		if (!S_ISDIR(md.mode))
			return -ENOTDIR;
		inos[n++] = dir;
		dir = md.parent;
	}
	/* c describes the top; everything below it on the chain is a tree */
	for (int i = n - 1; i >= 0; i--) {
		struct lk_class *t = &chain[i];

		*t = (struct lk_class){ LK_TREE, c->layer, c->sec, c->table };
		if (c->kind == LK_ROOT || c->kind == LK_CATALOG || c->kind == LK_SCHEMA)
			t->layer = LY_VOLUME;	/* a directory without a record */
		c = t;
	}
	*out = *c;
	if (n > 0) {
		struct lk_class *keep = malloc(sizeof(*keep));

		if (keep) {
			*keep = *out;
			pthread_mutex_lock(&l->lock);
			if (lk_map_put(l->dirs, inos[0], (uint64_t)(uintptr_t)keep) < 0)
				free(keep);
			pthread_mutex_unlock(&l->lock);
		}
	}
	return 0;
}

/* the class of the directory holding file ino, when the lake has seen it */
static int file_table(struct lake *l, uint64_t ino, uint64_t *table)
{
	int have;

	pthread_mutex_lock(&l->lock);
	have = lk_map_get(l->files, ino, table);
	pthread_mutex_unlock(&l->lock);
	return have;
}

static int readonly_layer(enum lk_layer y)
{
	return y == LY_SILVER || y == LY_GOLD;
}

static const char *layer_name(enum lk_layer y)
{
	return layer_names[y];
}

/* ---- policy ---- */

int lake_may_make(struct lake *l, uint64_t parent, const char *name, mode_t mode)
{
	struct lk_class c;
	int err = lk_class(l, parent, &c);

	if (err < 0)
		return err == -ENOTDIR ? err : 0;	/* vfs answers */
	if (c.kind == LK_SCHEMA && c.layer == LY_GOLD && !S_ISDIR(mode)) {
		/* gold/NAME.sql defines a table; editors' scratch files too */
		if (S_ISREG(mode))
			return 0;
		log_info("refused to create '%s': a gold schema holds regular files "
			 "(NAME.sql definitions) only", name);
		return -EPERM;
	}
	if (readonly_layer(c.layer)) {
		log_info("refused to create '%s': %s is written by lakefs only; "
			 "land files in a bronze table", name, layer_name(c.layer));
		return -EROFS;
	}
	if (c.kind == LK_ROOT || c.kind == LK_CATALOG || c.kind == LK_SCHEMA) {
		static const char *const what[] = {
			"the root holds catalogs only (mkdir CATALOG)",
			"a catalog holds schemas only (mkdir SCHEMA)",
			"a schema holds tables or volumes only (mkdir NAME)" };

		if (!S_ISDIR(mode)) {
			log_info("refused to create '%s': %s", name, what[c.kind]);
			return -EPERM;
		}
		if (!lk_name_ok(name)) {
			log_info("refused to create '%s': a name is 1-%d letters, "
				 "digits, '_' or '-', not starting with '_' or '-'",
				 name, LAKE_NAME_MAX);
			return -EINVAL;
		}
	}
	return 0;
}

/* a file in gold schema parent: every one is placed there (access), and
 * NAME.sql ones define tables */
static void gold_file(struct lake *l, uint64_t parent, const char *name, uint64_t ino)
{
	pthread_mutex_lock(&l->lock);
	lk_map_put(l->gfiles, ino, parent);
	pthread_mutex_unlock(&l->lock);
	gold_named(l, parent, name, ino);
}

/* a directory whose entries are catalogs, schemas, tables or volumes */
static int securable_level(const struct lk_class *c)
{
	return c->kind == LK_ROOT || c->kind == LK_CATALOG || c->kind == LK_SCHEMA;
}

int lake_may_remove(struct lake *l, uint64_t parent, const char *name, int isdir)
{
	struct lk_class c;
	uint64_t ino;
	uint32_t mode;
	struct lk_sec s;
	int err = lk_class(l, parent, &c);

	if (err < 0)
		return 0;
	if (c.kind == LK_SCHEMA && c.layer == LY_GOLD && !isdir)
		return 0;	/* a definition: removing NAME.sql drops NAME */
	if (readonly_layer(c.layer)) {
		log_info("refused to remove '%s': %s is written by lakefs only",
			 name, layer_name(c.layer));
		return -EROFS;
	}
	if (!isdir || !securable_level(&c))
		return 0;
	if (meta_lookup(l->m, parent, name, &ino, &mode, NULL) < 0 ||
	    lk_sec_get(l, ino, &s) < 0)
		return 0;
	if (s.kind == LK_CATALOG ||
	    (s.kind == LK_SCHEMA && s.layer != LY_VOLUME)) {
		log_info("refused to remove %s '%s': use lakefs drop", kind_names[s.kind],
			 name);
		return s.kind == LK_CATALOG ? -ENOTEMPTY : -EPERM;
	}
	if (s.kind == LK_TABLE && s.layer == LY_BRONZE) {
		char key[64], *val;
		size_t len;

		lk_key(key, sizeof(key), "tbl", ino);
		if (meta_get_kv(l->m, key, &val, &len) == 0) {
			int has = strstr(val, "version=0 ") == NULL;

			free(val);
			if (has) {
				log_info("refused to remove table '%s': it has silver "
					 "data; use lakefs drop", name);
				return -ENOTEMPTY;
			}
		}
	}
	return 0;
}

int lake_may_rename(struct lake *l, uint64_t parent, const char *name,
		    uint64_t newparent, const char *newname)
{
	struct lk_class a, b;
	uint64_t ino;
	uint32_t mode;
	struct lk_sec s;

	if (lk_class(l, parent, &a) < 0 || lk_class(l, newparent, &b) < 0)
		return 0;
	if (a.kind == LK_SCHEMA && a.layer == LY_GOLD && parent == newparent) {
		/* definitions and editors' files within one gold schema */
		if (meta_lookup(l->m, parent, name, &ino, &mode, NULL) == 0 && S_ISREG(mode))
			return 0;
	}
	if (readonly_layer(a.layer) || readonly_layer(b.layer)) {
		log_info("refused to rename '%s' to '%s': silver and gold are "
			 "written by lakefs only", name, newname);
		return -EROFS;
	}
	if (securable_level(&a) && meta_lookup(l->m, parent, name, &ino, &mode, NULL) == 0 &&
	    lk_sec_get(l, ino, &s) == 0) {
		log_info("refused to rename %s '%s': catalogs, schemas, tables and "
			 "volumes keep their names", kind_names[s.kind], name);
		return -EPERM;
	}
	if (a.table != b.table || securable_level(&b)) {
		if (securable_level(&b))
			return lake_may_make(l, newparent, newname, S_IFREG);
		return -EXDEV;	/* between tables or volumes: mv copies */
	}
	return 0;
}

int lake_may_link(struct lake *l, uint64_t ino, uint64_t newparent)
{
	struct lk_class b;
	uint64_t t = 0, g = 0;
	int in_table, in_gold;

	if (lk_class(l, newparent, &b) < 0)
		return 0;
	pthread_mutex_lock(&l->lock);
	in_gold = lk_map_get(l->gfiles, ino, &g);
	pthread_mutex_unlock(&l->lock);
	in_table = file_table(l, ino, &t);
	/* a link never takes a file to another table, volume or schema: its
	 * grants (and a gold definition's MANAGE) go with where it is */
	if (securable_level(&b) && !(b.kind == LK_SCHEMA && b.layer == LY_GOLD))
		return lake_may_make(l, newparent, "link", S_IFREG);	/* no files here */
	if ((in_gold && g != newparent) || (in_table && t != b.table) ||
	    (in_table && securable_level(&b))) {
		log_info("refused a hard link out of its table, volume or schema");
		return -EXDEV;
	}
	if (readonly_layer(b.layer) && !(in_gold && g == newparent))
		return -EROFS;
	if (securable_level(&b))
		return lake_may_make(l, newparent, "link", S_IFREG);
	return 0;
}

int lake_may_modify(struct lake *l, uint64_t ino)
{
	struct meta_inode md;
	struct lk_class c;
	uint64_t t;

	if (ino == META_ROOT_INO)
		return 0;
	if (file_table(l, ino, &t))
		ino = t;
	else if (meta_get_inode(l->m, ino, &md) < 0 || !S_ISDIR(md.mode))
		return 0;
	if (lk_class(l, ino, &c) < 0)
		return 0;
	if (readonly_layer(c.layer)) {
		log_info("refused a change in %s: it is written by lakefs only",
			 layer_name(c.layer));
		return -EROFS;
	}
	return 0;
}

/* ---- making securables ---- */

static void schedule_scan(struct lake *l, uint64_t table, uint64_t delay_ms);
static void requiet(struct lake *l);

int lk_make_sec(struct lake *l, uint64_t ino, uint64_t parent, enum lk_kind k,
		enum lk_layer y, uint64_t src, const char *name, uint32_t uid,
		uint32_t gid)
{
	struct lk_sec s = { ino, parent, k, y, src, "", 1, uid, gid };
	int err;

	snprintf(s.name, sizeof(s.name), "%s", name);
	if ((err = sec_put(l, &s)) == 0) {
		/* a lookup may have classed it a plain directory meanwhile */
		pthread_mutex_lock(&l->lock);
		free((void *)(uintptr_t)lk_map_del(l->dirs, ino));
		pthread_mutex_unlock(&l->lock);
		lk_acc_reload(l, ino);
	}
	return err;
}

int lk_sec_del(struct lake *l, uint64_t ino)
{
	char key[64];
	struct vfs_kv kv = { key, NULL, 0 };

	lk_acc_forget(l, ino);
	lk_key(key, sizeof(key), "sec", ino);
	return vfs_publish(l->v, NULL, 0, &kv, 1);
}

/* mkdir as the engine; the inode of name (made or already there) */
int lk_engine_dir(struct lake *l, uint64_t parent, const char *name,
		      uint64_t *ino)
{
	struct stat st;
	int err = vfs_mkdir(l->v, &lk_engine_ctx, parent, name, 0755, &st);

	if (err == 0) {
		*ino = st.st_ino;
		vfs_forget(l->v, st.st_ino, 1);
		vfs_notify_entry(l->v, parent, name);	/* a cached "no such" */
		return 0;
	}
	if (err == -EEXIST)
		return meta_lookup(l->m, parent, name, ino, NULL, NULL);
	return err;
}

static int make_silver_table(struct lake *l, uint64_t bronze, uint64_t schema,
			     const char *name, const struct vfs_ctx *c)
{
	struct lk_sec sch;
	uint64_t silver_schema, dir, q;
	char key[64], val[128];
	struct vfs_kv kv = { key, val, 0 };
	int err;

	if ((err = lk_sec_get(l, schema, &sch)) < 0)
		return err;
	if ((err = meta_lookup(l->m, sch.parent, "silver", &silver_schema, NULL, NULL)) < 0)
		return err;
	if ((err = lk_engine_dir(l, silver_schema, name, &dir)) < 0 ||
	    (err = lk_engine_dir(l, dir, "_quarantine", &q)) < 0)
		return err;
	if ((err = lk_make_sec(l, dir, silver_schema, LK_TABLE, LY_SILVER, bronze, name,
			       c->uid, c->gid)) < 0)
		return err;
	lk_key(key, sizeof(key), "tbl", bronze);
	kv.len = (size_t)snprintf(val, sizeof(val), "silver=%016" PRIx64
				  " version=0 rows=0 ", dir);
	return vfs_publish(l->v, NULL, 0, &kv, 1);
}

void lake_made(struct lake *l, const struct vfs_ctx *c, uint64_t parent,
	       const char *name, const struct stat *st)
{
	struct lk_class pc;
	int err = 0;

	if (lk_class(l, parent, &pc) < 0)
		return;
	if (S_ISDIR(st->st_mode) && securable_level(&pc)) {
		uint64_t ino = st->st_ino, sub;

		switch (pc.kind) {
		case LK_ROOT:
			err = lk_make_sec(l, ino, parent, LK_CATALOG, LY_NONE, 0, name,
					  c->uid, c->gid);
			for (int y = LY_BRONZE; err == 0 && y <= LY_GOLD; y++)
				if ((err = lk_engine_dir(l, ino, layer_names[y], &sub)) == 0)
					err = lk_make_sec(l, sub, ino, LK_SCHEMA, y, 0,
							  layer_names[y], c->uid, c->gid);
			break;
		case LK_CATALOG:
			err = lk_make_sec(l, ino, parent, LK_SCHEMA, LY_VOLUME, 0, name,
					  c->uid, c->gid);
			break;
		case LK_SCHEMA:
			if (pc.layer == LY_BRONZE) {
				err = lk_make_sec(l, ino, parent, LK_TABLE, LY_BRONZE, 0, name,
						  c->uid, c->gid);
				if (err == 0)
					err = make_silver_table(l, ino, parent, name, c);
			} else {
				err = lk_make_sec(l, ino, parent, LK_VOLUME, pc.layer, 0, name,
						  c->uid, c->gid);
			}
			break;
		default:
			break;
		}
		if (err < 0)
			log_err("cannot record '%s' in the catalog: %s (it stays a "
				"plain directory)", name, strerror(-err));
		return;
	}
	if (pc.kind == LK_SCHEMA && pc.layer == LY_GOLD && S_ISREG(st->st_mode))
		gold_file(l, parent, name, st->st_ino);
	if (pc.table && !S_ISDIR(st->st_mode)) {
		pthread_mutex_lock(&l->lock);
		lk_map_put(l->files, st->st_ino, pc.table);
		pthread_mutex_unlock(&l->lock);
	}
	if (pc.layer == LY_BRONZE && pc.table && S_ISREG(st->st_mode) &&
	    !lk_in_flight(name))
		schedule_scan(l, pc.table, 0);
}

void lake_seen(struct lake *l, uint64_t parent, const char *name, const struct stat *st)
{
	struct lk_class pc;

	if (S_ISDIR(st->st_mode) || lk_class(l, parent, &pc) < 0)
		return;
	if (pc.kind == LK_SCHEMA && pc.layer == LY_GOLD && S_ISREG(st->st_mode))
		gold_file(l, parent, name, st->st_ino);
	if (!pc.table)
		return;
	pthread_mutex_lock(&l->lock);
	lk_map_put(l->files, st->st_ino, pc.table);
	pthread_mutex_unlock(&l->lock);
}

void lake_removed(struct lake *l, uint64_t parent, const char *name)
{
	struct lk_class pc;

	if (lk_class(l, parent, &pc) == 0 && pc.kind == LK_SCHEMA && pc.layer == LY_GOLD)
		gold_unlinked(l, parent, name);
}

int lake_wants_flush(struct lake *l, uint64_t ino)
{
	int yes;

	pthread_mutex_lock(&l->lock);
	yes = lk_map_get(l->sqlfiles, ino, NULL);
	pthread_mutex_unlock(&l->lock);
	return yes;
}

int lake_flush(struct lake *l, uint64_t ino)
{
	return lake_wants_flush(l, ino) ? gold_flush(l, ino) : 0;
}

void lake_renamed(struct lake *l, uint64_t newparent, const char *newname)
{
	struct lk_class pc;

	if (lk_class(l, newparent, &pc) < 0)
		return;
	if (pc.kind == LK_SCHEMA && pc.layer == LY_GOLD)
		gold_renamed(l, newparent, newname);
	if (pc.layer == LY_BRONZE && pc.table && !lk_in_flight(newname))
		schedule_scan(l, pc.table, 0);
}

void lake_closed(struct lake *l, uint64_t ino, int wrote)
{
	uint64_t t;
	struct lk_class c;

	if (wrote && file_table(l, ino, &t) && lk_class(l, t, &c) == 0 &&
	    c.layer == LY_BRONZE)
		schedule_scan(l, t, 0);
}

void lake_forget(struct lake *l, uint64_t ino)
{
	pthread_mutex_lock(&l->lock);
	lk_map_del(l->files, ino);
	lk_map_del(l->sqlfiles, ino);
	lk_map_del(l->gfiles, ino);
	free((void *)(uintptr_t)lk_map_del(l->sqlerr, ino));
	free((void *)(uintptr_t)lk_map_del(l->dirs, ino));
	pthread_mutex_unlock(&l->lock);
}

/* ---- properties ---- */

static int prop_quiet(struct lake *l, uint64_t table)
{
	char *v = lk_prop(l, table, "quiet_ms");
	long ms = v ? strtol(v, NULL, 10) : (long)l->opt.quiet_ms;

	free(v);
	return (int)ms;
}

char *lk_prop(struct lake *l, uint64_t sec, const char *name)
{
	char xname[300];

	snprintf(xname, sizeof(xname), PROP_PREFIX "%s", name);
	for (int depth = 0; depth < 4 && sec != META_ROOT_INO; depth++) {
		void *val;
		size_t len;
		struct lk_sec s;

		if (meta_get_xattr(l->m, sec, xname, &val, &len) == 0) {
			char *out = malloc(len + 1);

			if (out) {
				memcpy(out, val, len);
				out[len] = '\0';
			}
			free(val);
			return out;
		}
		if (lk_sec_get(l, sec, &s) < 0)
			break;
		sec = s.parent;
	}
	return NULL;
}

static int bad_prop(const char *name, const char *val, const char *why)
{
	log_warn("property %s: bad value '%s': %s", name, val, why);
	return -EINVAL;
}

static int column_list_ok(const char *s)
{
	int n = 0;
	const char *p = s;

	while (*p) {
		size_t k = strcspn(p, ",");
		char fixed[LT_NAME_MAX + 1];

		if (k == 0 || lt_column_name_ok(p, k, fixed, sizeof(fixed)) != 0)
			return 0;
		n++;
		p += k;
		if (*p == ',')
			p++;
	}
	return n > 0;
}

/* "[warn|drop|fail] EXPR": the action and where EXPR starts */
int lk_expect_split(const char *val, enum ingest_action *act);
int lk_expect_split(const char *val, enum ingest_action *act)
{
	static const char *const acts[] = { "warn", "drop", "fail" };

	for (int i = 0; i < 3; i++) {
		size_t k = strlen(acts[i]);

		if (strncasecmp(val, acts[i], k) == 0 && (val[k] == ' ' || val[k] == ':')) {
			*act = (enum ingest_action)i;
			k++;
			while (val[k] == ' ')
				k++;
			return (int)k;
		}
	}
	*act = IX_WARN;
	return 0;
}

static int check_prop(const char *name, const char *val)
{
	char *err = NULL;
	int ret = 0;

	if (strcmp(name, "format") == 0) {
		enum ingest_format f;

		if (ingest_format_parse(val, &f) < 0)
			return bad_prop(name, val, "one of auto, csv, json, jsonl");
	} else if (strcmp(name, "csv.delimiter") == 0) {
		if (strcmp(val, "auto") && strcmp(val, "tab") &&
		    !(strlen(val) == 1 && strchr(",;|\t", val[0])))
			return bad_prop(name, val, "one of , ; | tab auto");
	} else if (strcmp(name, "csv.header") == 0) {
		if (strcmp(val, "true") && strcmp(val, "false"))
			return bad_prop(name, val, "true or false");
	} else if (strcmp(name, "schema_evolution") == 0) {
		enum lt_mode m;

		if (lt_mode_parse(val, &m) < 0)
			return bad_prop(name, val,
					"addNewColumns, rescue, failOnNewColumns or none");
	} else if (strcmp(name, "key") == 0) {
		if (!column_list_ok(val))
			return bad_prop(name, val, "column names separated by commas");
	} else if (strcmp(name, "sequence_by") == 0) {
		if (!column_list_ok(val) || strchr(val, ','))
			return bad_prop(name, val, "one column name");
	} else if (strcmp(name, "delete_when") == 0 ||
		   strncmp(name, "expect.", 7) == 0) {
		enum ingest_action act;
		const char *expr = val;

		if (name[0] == 'e') {
			if (!lk_name_ok(name + 7))
				return bad_prop(name, val, "expect.NAME: NAME is letters, "
						"digits, '_' or '-'");
			expr = val + lk_expect_split(val, &act);
		}
		if (ingest_check_expr(expr, &err) < 0) {
			ret = bad_prop(name, val, err ? err : "not an SQL expression");
			free(err);
		}
	} else if (strcmp(name, "quiet_ms") == 0) {
		char *end;
		long ms = strtol(val, &end, 10);

		if (!*val || *end || ms < 0 || ms > QUIET_MAX_MS)
			return bad_prop(name, val, "milliseconds, 0 to 3600000");
	} else {
		log_warn("unknown property '%s' (see lakefs(7))", name);
		return -EINVAL;
	}
	return ret;
}

static int sec_of(struct lake *l, uint64_t ino, struct lk_sec *s)
{
	struct meta_inode md;

	if (ino == META_ROOT_INO || meta_get_inode(l->m, ino, &md) < 0 ||
	    !S_ISDIR(md.mode))
		return -ENOENT;
	return lk_sec_get(l, ino, s);
}

static int lake_run_table(struct lake *l, uint64_t table);
static int lake_drop(struct lake *l, uint64_t ino);

int lake_setxattr(struct lake *l, struct lake_who *w, uint64_t ino,
		  const char *name, const void *val, size_t len, int flags)
{
	char *v;
	struct lk_sec s;
	int err;

	if ((err = lake_access_setxattr(l, w, ino, name, val, len)) != 1)
		return err;
	if (strncmp(name, PROP_PREFIX, strlen(PROP_PREFIX)) != 0) {
		if ((err = lake_check(l, w, ino, LAKE_XWRITE, "setxattr", NULL)) < 0)
			return err;
		err = lake_may_modify(l, ino);
		return err < 0 ? err : 1;
	}
	if ((err = lake_check(l, w, ino, strcmp(name, PROP_PREFIX "run") == 0 ?
			      LAKE_RUN : LAKE_XWRITE, "setxattr", NULL)) < 0)
		return err;
	name += strlen(PROP_PREFIX);
	if (sec_of(l, ino, &s) < 0) {
		log_warn("property %s: only catalogs, schemas and tables have "
			 "properties", name);
		return -EINVAL;
	}
	if (strcmp(name, "run") == 0 || strcmp(name, "drop") == 0) {
		if (s.layer == LY_SILVER && strcmp(name, "run") == 0 && s.src)
			s.ino = s.src;
		if (name[0] == 'r' && s.layer == LY_GOLD && s.kind == LK_TABLE)
			return gold_run(l, s.ino);
		if (name[0] == 'r')
			return lake_run_table(l, s.ino);
		return lake_drop(l, s.ino);
	}
	if (s.layer == LY_GOLD && s.kind == LK_TABLE && strcmp(name, "schedule") == 0) {
		/* the one property of a gold table, set on its directory */
		if (len > 256 || !(v = strndup(val, len)))
			return bad_prop(name, "(too long)", "at most 256 bytes");
		err = gold_check_prop(name, v);
		free(v);
		if (err == 0)
			err = vfs_setxattr(l->v, ino, name - strlen(PROP_PREFIX), val, len, flags);
		if (err == 0)
			gold_schedule_changed(l, ino);
		return err;
	}
	if (readonly_layer(s.layer)) {
		log_info("property %s: silver and gold take their properties from "
			 "the bronze table", name);
		return -EROFS;
	}
	if (len > 4096 || memchr(val, '\0', len))
		return bad_prop(name, "(binary)", "text up to 4096 bytes");
	if (!(v = malloc(len + 1)))
		return -ENOMEM;
	memcpy(v, val, len);
	v[len] = '\0';
	err = check_prop(name, v);
	free(v);
	if (err < 0)
		return err;
	err = vfs_setxattr(l->v, ino, name - strlen(PROP_PREFIX), val, len, flags);
	if (err == 0 && strcmp(name, "quiet_ms") == 0)
		requiet(l);
	return err;
}

int lake_removexattr(struct lake *l, struct lake_who *w, uint64_t ino,
		     const char *name)
{
	struct lk_sec s;
	int err = lake_check(l, w, ino, LAKE_XWRITE, "removexattr", NULL);

	if (err == 0)
		err = lake_may_modify(l, ino);
	if (err < 0)
		return err;
	if (strncmp(name, PROP_PREFIX, strlen(PROP_PREFIX)) == 0 &&
	    sec_of(l, ino, &s) == 0 && readonly_layer(s.layer)) {
		if (s.layer == LY_GOLD && s.kind == LK_TABLE &&
		    strcmp(name, PROP_PREFIX "schedule") == 0) {
			err = vfs_removexattr(l->v, ino, name);
			if (err == 0)
				gold_schedule_changed(l, ino);
			return err;
		}
		return -EROFS;
	}
	return 1;
}

static void table_status(struct lake *l, uint64_t table, const char *rec,
			 struct gbuf *b);

ssize_t lake_getxattr(struct lake *l, struct lake_who *w, uint64_t ino,
		      const char *name, void *buf, size_t size)
{
	struct lk_sec s;
	struct gbuf b = { 0 };
	ssize_t n;

	if ((n = lake_access_getxattr(l, w, ino, name, buf, size)) != 1)
		return n;
	/* the kernel's own questions (ACLs, capabilities) hold nothing here */
	if (strncmp(name, "user.", 5) != 0)
		return 1;
	if ((n = lake_check(l, w, ino, LAKE_XREAD, "getxattr", NULL)) < 0)
		return n;
	if (strcmp(name, PROP_PREFIX "error") == 0)
		return gold_error_xattr(l, ino, buf, size);
	if (strcmp(name, PROP_PREFIX "status") != 0)
		return 1;
	if (sec_of(l, ino, &s) < 0)
		return -ENODATA;
	if (s.kind == LK_TABLE && s.layer == LY_SILVER)
		s.ino = s.src;
	if (s.kind != LK_TABLE || s.ino == 0)
		return -ENODATA;
	table_status(l, s.ino, s.layer == LY_GOLD ? "gst" : "tbl", &b);
	if (b.failed) {
		free(b.p);
		return -ENOMEM;
	}
	n = (ssize_t)b.n;
	if (size) {
		if (b.n > size)
			n = -ERANGE;
		else
			memcpy(buf, b.p, b.n);
	}
	free(b.p);
	return n;
}

/* ---- jobs ---- */

void lk_wake(struct lake *l)
{
	pthread_mutex_lock(&l->lock);
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->lock);
}

static const char *const kind_names_job[] = { "ingest", "drop", "refresh" };

static const char *const state_names[] = { "queued", "running", "done", "failed",
					   "quarantined", "skipped" };

void lk_iso_time(uint64_t ns, char *out, size_t cap)
{
	time_t t = (time_t)(ns / 1000000000ull);
	struct tm tm;

	if (!ns) {
		snprintf(out, cap, "null");
		return;
	}
	gmtime_r(&t, &tm);
	snprintf(out, cap, "\"%04d-%02d-%02dT%02d:%02d:%02d.%03uZ\"", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 (unsigned)(ns / 1000000 % 1000));
}

void lk_job_json(const struct lk_job *j, struct gbuf *b)
{
	char q[40], s[40], f[40], cid[65];

	lk_iso_time(j->t_queued, q, sizeof(q));
	lk_iso_time(j->t_started, s, sizeof(s));
	lk_iso_time(j->t_finished, f, sizeof(f));
	hex_encode(j->cid, 32, cid);
	gbuf_printf(&b[0], "{\"id\":%" PRIu64 ",\"kind\":\"%s\",\"state\":\"%s\","
		    "\"table\":", j->id, kind_names_job[j->kind],
		    state_names[j->state]);
	lt_json_quote(b, j->tname ? j->tname : "", j->tname ? strlen(j->tname) : 0);
	gbuf_printf(b, ",\"file\":");
	lt_json_quote(b, j->path ? j->path : "", j->path ? strlen(j->path) : 0);
	gbuf_printf(b, ",\"table_ino\":%" PRIu64 ",\"file_ino\":%" PRIu64
		    ",\"content\":\"%s\",\"queued\":%s,\"started\":%s,\"finished\":%s",
		    j->table, j->file, cid, q, s, f);
	if (j->t_started && j->t_finished)
		gbuf_printf(b, ",\"seconds\":%.3f",
			    (double)(j->t_finished - j->t_started) / 1e9);
	gbuf_printf(b, ",\"version\":%" PRIu64 ",\"rows_read\":%" PRIu64
		    ",\"rows_written\":%" PRIu64 ",\"rows_dropped\":%" PRIu64
		    ",\"rows_quarantined\":%" PRIu64 ",\"rows_deleted\":%" PRIu64
		    ",\"rows_total\":%" PRIu64 ",\"error\":",
		    j->version, j->rows_read, j->rows_written, j->rows_dropped,
		    j->rows_quarantined, j->rows_deleted, j->rows_total);
	if (j->error)
		lt_json_quote(b, j->error, strlen(j->error));
	else
		gbuf_printf(b, "null");
	if (j->inputs)
		gbuf_printf(b, ",\"inputs\":%s", j->inputs);
	gbuf_printf(b, "}");
}

void lk_job_free(struct lk_job *j)
{
	if (!j)
		return;
	free(j->path);
	free(j->tname);
	free(j->error);
	free(j->inputs);
	free(j);
}

/* A job record, as persisted: the JSON line; read back by job_parse. */
static int job_save(struct lake *l, const struct lk_job *j)
{
	char key[64];
	struct gbuf b = { 0 };
	struct vfs_kv kv = { key, NULL, 0 };
	int err;

	lk_key(key, sizeof(key), "job", j->id);
	lk_job_json(j, &b);
	if (b.failed) {
		free(b.p);
		return -ENOMEM;
	}
	kv.val = b.p;
	kv.len = b.n;
	err = vfs_publish(l->v, NULL, 0, &kv, 1);
	free(b.p);
	return err;
}

/* the few fields a resumed job needs, from its JSON line */
static const char *json_field(const char *s, const char *name, char *out, size_t cap)
{
	char pat[40];
	const char *p;
	size_t n = 0;

	snprintf(pat, sizeof(pat), "\"%s\":", name);
	if (!(p = strstr(s, pat)))
		return NULL;
	p += strlen(pat);
	if (*p == '"') {
		p++;
		while (*p && *p != '"' && n + 1 < cap) {
			if (*p == '\\' && p[1])
				p++;
			out[n++] = *p++;
		}
	} else {
		while (*p && *p != ',' && *p != '}' && n + 1 < cap)
			out[n++] = *p++;
	}
	out[n] = '\0';
	return out;
}

static struct lk_job *job_parse(const char *s)
{
	struct lk_job *j = calloc(1, sizeof(*j));
	char buf[4200];

	if (!j)
		return NULL;
	if (!json_field(s, "id", buf, sizeof(buf)))
		goto bad;
	j->id = strtoull(buf, NULL, 10);
	if (!json_field(s, "kind", buf, sizeof(buf)))
		goto bad;
	j->kind = strcmp(buf, "drop") == 0 ? JK_DROP :
		  strcmp(buf, "refresh") == 0 ? JK_REFRESH : JK_INGEST;
	if (!json_field(s, "state", buf, sizeof(buf)))
		goto bad;
	j->state = (enum lk_job_state)name_index(state_names, 6, buf);
	if ((int)j->state < 0)
		goto bad;
	if (json_field(s, "table_ino", buf, sizeof(buf)))
		j->table = strtoull(buf, NULL, 10);
	if (json_field(s, "file_ino", buf, sizeof(buf)))
		j->file = strtoull(buf, NULL, 10);
	if (json_field(s, "content", buf, sizeof(buf)) && strlen(buf) == 64)
		hex_decode(buf, j->cid, 32);
	if (json_field(s, "file", buf, sizeof(buf)))
		j->path = strdup(buf);
	if (json_field(s, "table", buf, sizeof(buf)))
		j->tname = strdup(buf);
	if (json_field(s, "error", buf, sizeof(buf)) && strcmp(buf, "null"))
		j->error = strdup(buf);
	return j;
bad:
	free(j);
	return NULL;
}

uint64_t lk_realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Queue a job (persisting it first). Takes j over. */
int lk_job_submit(struct lake *l, struct lk_job *j)
{
	int err;

	pthread_mutex_lock(&l->lock);
	j->id = ++l->next_job;
	pthread_mutex_unlock(&l->lock);
	j->state = JS_QUEUED;
	j->t_queued = lk_realtime_ns();
	err = job_save(l, j);
	if (err < 0) {
		log_err("cannot record a job for %s: %s", j->tname ? j->tname : "?",
			strerror(-err));
		lk_job_free(j);
		return err;
	}
	pthread_mutex_lock(&l->lock);
	if (l->queue_tail)
		l->queue_tail->next = j;
	else
		l->queue = j;
	l->queue_tail = j;
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->lock);
	return 0;
}

/* Is a batch with this content queued or running for table? l->lock held. */
static int queued_locked(struct lake *l, uint64_t table, const unsigned char cid[32])
{
	for (struct lk_job *j = l->queue; j; j = j->next)
		if (j->table == table && memcmp(j->cid, cid, 32) == 0)
			return 1;
	return 0;
}

/* ---- scanning a bronze table ---- */

struct scan {
	struct lake *l;
	uint64_t table;
	uint64_t quiet_ns, now_real, wait_ns;	/* wait: the earliest re-scan */
	int held;			/* a file was open (force: its close scans) */
	int force;
	char path[4096];
	size_t plen;
	int depth;
	int submitted;
};

static int scan_dir(struct scan *s, uint64_t dir);

static int scan_file(struct scan *s, const char *name, uint64_t ino)
{
	struct lake *l = s->l;
	struct meta_inode md;
	unsigned char cid[32];
	char key[160], hex[65];
	struct lk_job *j;
	uint64_t changed, age;
	char *val;
	size_t len;
	int q;

	if (meta_get_inode(l->m, ino, &md) < 0 || !S_ISREG(md.mode))
		return 0;
	pthread_mutex_lock(&l->lock);
	lk_map_put(l->files, ino, s->table);
	pthread_mutex_unlock(&l->lock);
	switch (vfs_busy(l->v, ino)) {
	case 1:
		s->held = 1;
		return 0;		/* open: its close reschedules */
	case 2:			/* closed, its last blocks still sealing */
		if (!s->wait_ns || s->wait_ns > 50000000ull)
			s->wait_ns = 50000000ull;
		return 0;
	}
	changed = (uint64_t)md.mtime.tv_sec * 1000000000ull + (uint64_t)md.mtime.tv_nsec;
	age = (uint64_t)md.ctime.tv_sec * 1000000000ull + (uint64_t)md.ctime.tv_nsec;
	if (age > changed)
		changed = age;
	age = s->now_real > changed ? s->now_real - changed : 0;
	if (!s->force && age < s->quiet_ns) {
		uint64_t w = s->quiet_ns - age;

		if (!s->wait_ns || w < s->wait_ns)
			s->wait_ns = w;
		return 0;
	}
	if (promote_cid(l, ino, cid) < 0)
		return 0;
	hex_encode(cid, 32, hex);
	snprintf(key, sizeof(key), "tbl/%016" PRIx64 "/seen/%s", s->table, hex);
	if (meta_get_kv(l->m, key, &val, &len) == 0) {
		free(val);
		return 0;
	}
	pthread_mutex_lock(&l->lock);
	q = queued_locked(l, s->table, cid);
	pthread_mutex_unlock(&l->lock);
	if (q)
		return 0;
	if (!(j = calloc(1, sizeof(*j))))
		return -ENOMEM;
	j->kind = JK_INGEST;
	j->table = s->table;
	j->file = ino;
	memcpy(j->cid, cid, 32);
	j->path = strndup(s->path, s->plen);
	if (j->path) {
		char *full;

		if (asprintf(&full, "%s%s", j->path, name) >= 0) {
			free(j->path);
			j->path = full;
		}
	}
	j->tname = lk_sec_path(l, s->table);
	if (lk_job_submit(l, j) == 0)
		s->submitted++;
	return 0;
}

struct scan_ent {
	char *name;
	uint64_t ino;
	uint32_t mode;
};

struct scan_list {
	struct scan_ent *e;
	size_t n, cap;
};

static int list_add(struct scan_list *sl, const char *name, uint64_t ino,
		    uint32_t mode)
{
	if (sl->n == sl->cap) {
		size_t cap = sl->cap ? 2 * sl->cap : 64;
		struct scan_ent *ne = realloc(sl->e, cap * sizeof(*ne));

		if (!ne)
			return -ENOMEM;
		sl->e = ne;
		sl->cap = cap;
	}
	if (!(sl->e[sl->n].name = strdup(name)))
		return -ENOMEM;
	sl->e[sl->n].ino = ino;
	sl->e[sl->n++].mode = mode;
	return 0;
}

/* a directory's names, those in flight left out (meta_readdir callback) */
static int scan_collect(void *arg, const char *name, uint64_t ino, uint32_t mode,
			uint64_t cookie)
{
	(void)cookie;
	return lk_in_flight(name) ? 0 : list_add(arg, name, ino, mode);
}

static int ent_cmp(const void *a, const void *b)
{
	return strcmp(((const struct scan_ent *)a)->name, ((const struct scan_ent *)b)->name);
}

static int scan_dir(struct scan *s, uint64_t dir)
{
	struct scan_list sl = { 0 };
	int err = meta_readdir(s->l->m, dir, 0, scan_collect, &sl);

	/* in name order, so that batches of one scan queue in name order */
	if (sl.n)
		qsort(sl.e, sl.n, sizeof(*sl.e), ent_cmp);
	for (size_t i = 0; err >= 0 && i < sl.n; i++) {
		struct scan_ent *e = &sl.e[i];

		if (S_ISREG(e->mode)) {
			size_t keep = s->plen;

			err = scan_file(s, e->name, e->ino);
			s->plen = keep;
		} else if (S_ISDIR(e->mode) && s->depth < SCAN_DEPTH_MAX) {
			size_t keep = s->plen, k = strlen(e->name);

			if (keep + k + 2 < sizeof(s->path)) {
				memcpy(s->path + keep, e->name, k);
				s->path[keep + k] = '/';
				s->plen = keep + k + 1;
				s->path[s->plen] = '\0';
				s->depth++;
				err = scan_dir(s, e->ino);
				s->depth--;
				s->plen = keep;
				s->path[keep] = '\0';
			}
		}
	}
	for (size_t i = 0; i < sl.n; i++)
		free(sl.e[i].name);
	free(sl.e);
	return err;
}

static void scan_table(struct lake *l, uint64_t table, int force)
{
	struct scan s = { .l = l, .table = table, .force = force };
	int quiet = prop_quiet(l, table);

	s.quiet_ns = (uint64_t)quiet * 1000000ull;
	s.now_real = lk_realtime_ns();
	scan_dir(&s, table);
	if (force && (s.wait_ns || s.held)) {
		/* a run: files still open or sealing put it off, but only
		 * until they are closed and sealed, never by the quiet period */
		pthread_mutex_lock(&l->lock);
		lk_map_put(l->scan_force, table, 1);
		pthread_mutex_unlock(&l->lock);
	}
	if (s.wait_ns)
		schedule_scan(l, table, s.wait_ns / 1000000 + 1);
}

/* A quiet period changed: every pending scan is due again from now on
 * (sooner or later); a table with no pending scan gets none. */
static void requiet(struct lake *l)
{
	uint64_t *tables = NULL;
	size_t n = 0;

	pthread_mutex_lock(&l->lock);
	if (l->scan_at->n && (tables = malloc(l->scan_at->n * sizeof(*tables))))
		for (size_t i = 0; i < l->scan_at->nb; i++)
			for (struct lk_ent *e = l->scan_at->b[i]; e; e = e->next)
				tables[n++] = e->k;
	pthread_mutex_unlock(&l->lock);
	for (size_t i = 0; i < n; i++) {
		uint64_t at = mono_ns() + (uint64_t)prop_quiet(l, tables[i]) * 1000000ull;

		pthread_mutex_lock(&l->lock);
		if (lk_map_get(l->scan_at, tables[i], NULL))
			lk_map_put(l->scan_at, tables[i], at);
		pthread_cond_broadcast(&l->cond);
		pthread_mutex_unlock(&l->lock);
	}
	free(tables);
}

static void schedule_scan(struct lake *l, uint64_t table, uint64_t delay_ms)
{
	uint64_t at, cur;
	int forced;

	if (delay_ms == 0)
		delay_ms = (uint64_t)prop_quiet(l, table);
	pthread_mutex_lock(&l->lock);
	forced = lk_map_get(l->scan_force, table, NULL);
	if (forced && delay_ms > FORCED_RESCAN_MS)
		delay_ms = FORCED_RESCAN_MS;	/* a run waits for a close */
	at = mono_ns() + delay_ms * 1000000ull;
	/* a later event pushes the scan later (the file changed again),
	 * except a run's, which a quiet period must not put off */
	if (!lk_map_get(l->scan_at, table, &cur) || cur < at || forced)
		lk_map_put(l->scan_at, table, at);
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->lock);
}

static int lake_run_table(struct lake *l, uint64_t table)
{
	struct lk_sec s;

	if (lk_sec_get(l, table, &s) < 0 || s.kind != LK_TABLE || s.layer != LY_BRONZE) {
		log_warn("lakefs run: only tables run");
		return -EINVAL;
	}
	pthread_mutex_lock(&l->lock);
	lk_map_del(l->scan_at, table);
	pthread_mutex_unlock(&l->lock);
	scan_table(l, table, 1);
	return 0;
}

static int lake_drop(struct lake *l, uint64_t ino)
{
	struct lk_job *j = calloc(1, sizeof(*j));

	if (!j)
		return -ENOMEM;
	j->kind = JK_DROP;
	j->table = ino;
	j->tname = lk_sec_path(l, ino);
	return lk_job_submit(l, j);
}

static void table_status(struct lake *l, uint64_t table, const char *rec,
			 struct gbuf *b)
{
	char key[64], *val = NULL;
	size_t len;
	uint64_t pending = 0, running = 0, at;
	const struct lk_job *last = NULL;

	lk_key(key, sizeof(key), rec, table);
	meta_get_kv(l->m, key, &val, &len);
	pthread_mutex_lock(&l->lock);
	for (struct lk_job *j = l->queue; j; j = j->next)
		if (j->table == table && j->state == JS_RUNNING)
			running++;
		else if (j->table == table)
			pending++;
	if (lk_map_get(l->scan_at, table, &at) || lk_map_get(l->gold_at, table, &at) ||
	    lk_map_get(l->scan_force, table, NULL))	/* a run waits for a close */
		pending++;
	for (struct lk_job *j = l->recent; j; j = j->next)
		if (j->table == table)
			last = j;
	gbuf_printf(b, "{\"state\":\"%s\",\"pending\":%" PRIu64 ",\"running\":%" PRIu64
		    ",\"record\":", pending || running ? "busy" : "idle", pending, running);
	lt_json_quote(b, val ? val : "", val ? strlen(val) : 0);
	gbuf_printf(b, ",\"last_job\":");
	if (last)
		lk_job_json(last, b);
	else
		gbuf_printf(b, "null");
	gbuf_printf(b, "}\n");
	pthread_mutex_unlock(&l->lock);
	free(val);
}

/* ---- threads ---- */

static void job_finish(struct lake *l, struct lk_job *j)
{
	struct lk_job **pp;
	uint64_t forget = 0;

	pthread_mutex_lock(&l->lock);
	for (pp = &l->queue; *pp && *pp != j; pp = &(*pp)->next)
		;
	if (*pp) {
		*pp = j->next;
		if (l->queue_tail == j) {
			struct lk_job *t = l->queue;

			while (t && t->next)
				t = t->next;
			l->queue_tail = t;
		}
	}
	lk_map_del(l->busy, j->table);
	l->running--;
	if (j->state == JS_FAILED)
		l->failed++;
	else if (j->state == JS_QUARANTINED)
		l->quarantined++;
	else
		l->done++;
	j->next = NULL;
	if (l->recent_tail)
		l->recent_tail->next = j;
	else
		l->recent = j;
	l->recent_tail = j;
	if (++l->nrecent > RECENT_MAX) {
		struct lk_job *old = l->recent;

		l->recent = old->next;
		l->nrecent--;
		forget = old->id;
		lk_job_free(old);
	}
	pthread_cond_broadcast(&l->cond);
	pthread_cond_broadcast(&l->idle);
	pthread_mutex_unlock(&l->lock);
	if (forget) {		/* only the last RECENT_MAX runs are kept */
		char key[64];
		struct vfs_kv kv = { key, NULL, 0 };

		lk_key(key, sizeof(key), "job", forget);
		vfs_publish(l->v, NULL, 0, &kv, 1);
	}
}

static int drop_tree(struct lake *l, uint64_t dir);

/* every name of a directory (meta_readdir callback) */
static int drop_collect(void *arg, const char *name, uint64_t ino, uint32_t mode,
			uint64_t cookie)
{
	(void)cookie;
	return list_add(arg, name, ino, mode);
}

/* Remove everything below dir, and the catalog records of what it held. */
static int drop_tree(struct lake *l, uint64_t dir)
{
	struct scan_list sl = { 0 };
	int err = meta_readdir(l->m, dir, 0, drop_collect, &sl);

	for (size_t i = 0; err >= 0 && i < sl.n; i++) {
		struct scan_ent *e = &sl.e[i];

		if (S_ISDIR(e->mode)) {
			struct lk_sec s;

			err = drop_tree(l, e->ino);
			if (err == 0 && lk_sec_get(l, e->ino, &s) == 0)
				lk_sec_del(l, e->ino);
			if (err == 0)
				err = vfs_rmdir(l->v, dir, e->name);
		} else {
			err = vfs_unlink(l->v, dir, e->name);
		}
		if (err == 0) {
			vfs_notify_entry(l->v, dir, e->name);
			lake_forget(l, e->ino);
		}
	}
	for (size_t i = 0; i < sl.n; i++)
		free(sl.e[i].name);
	free(sl.e);
	return err;
}

/* the records of a bronze table: its state, seen batches and schema */
static int drop_table_records(struct lake *l, uint64_t table);

struct kv_names {
	char **v;
	size_t n, cap;
};

static int kv_collect(void *arg, const char *name, const char *val, size_t len)
{
	struct kv_names *k = arg;

	(void)val;
	(void)len;
	if (k->n == k->cap) {
		size_t cap = k->cap ? 2 * k->cap : 64;
		char **nv = realloc(k->v, cap * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		k->v = nv;
		k->cap = cap;
	}
	return (k->v[k->n++] = strdup(name)) ? 0 : -ENOMEM;
}

static int drop_table_records(struct lake *l, uint64_t table)
{
	char prefix[64];
	struct kv_names k = { 0 };
	int err;

	lk_key(prefix, sizeof(prefix), "tbl", table);
	err = meta_scan_kv(l->m, prefix, kv_collect, &k);
	for (size_t i = 0; err == 0 && i < k.n; i += 256) {
		struct vfs_kv kv[256];
		size_t n = k.n - i < 256 ? k.n - i : 256;

		for (size_t x = 0; x < n; x++)
			kv[x] = (struct vfs_kv){ k.v[i + x], NULL, 0 };
		err = vfs_publish(l->v, NULL, 0, kv, n);
	}
	for (size_t i = 0; i < k.n; i++)
		free(k.v[i]);
	free(k.v);
	return err;
}

int lk_name_in_parent(struct lake *l, uint64_t parent, uint64_t ino, char *name,
			  size_t cap);

struct find_name {
	uint64_t ino;
	char *out;
	size_t cap;
	int found;
};

static int find_name_fn(void *arg, const char *name, uint64_t ino, uint32_t mode,
			uint64_t cookie)
{
	struct find_name *f = arg;

	(void)mode;
	(void)cookie;
	if (ino != f->ino)
		return 0;
	snprintf(f->out, f->cap, "%s", name);
	f->found = 1;
	return 1;
}

int lk_name_in_parent(struct lake *l, uint64_t parent, uint64_t ino, char *name,
			  size_t cap)
{
	struct find_name f = { ino, name, cap, 0 };

	meta_readdir(l->m, parent, 0, find_name_fn, &f);
	return f.found ? 0 : -ENOENT;
}

/* Drop a securable and everything below it (lakefs drop). */
/*
 * A bronze table goes: its silver table (files, records, grants) and its
 * records go with it. notify: drop the kernel's entry for the silver
 * table now; else the scheduler does (a FUSE request in the bronze schema
 * holds that directory's lock, and a rename between the two schemas may
 * hold the silver one and wait for it).
 */
static int drop_silver_of(struct lake *l, uint64_t table, int notify)
{
	char tkey[64], *val;
	size_t len;
	uint64_t silver;
	int err = 0;

	lk_key(tkey, sizeof(tkey), "tbl", table);
	if (meta_get_kv(l->m, tkey, &val, &len) == 0) {
		if (sscanf(val, "silver=%" SCNx64, &silver) == 1) {
			struct lk_sec ss;
			char sname[LAKE_NAME_MAX + 1];

			if (lk_sec_get(l, silver, &ss) == 0 &&
			    lk_name_in_parent(l, ss.parent, silver, sname, sizeof(sname)) == 0 &&
			    (err = drop_tree(l, silver)) == 0 &&
			    (err = vfs_rmdir(l->v, ss.parent, sname)) == 0) {
				if (notify)
					vfs_notify_entry(l->v, ss.parent, sname);
				else
					lk_notify_later(l, ss.parent, sname);
				lk_sec_del(l, silver);
				lake_forget(l, silver);
			}
		}
		free(val);
		if (err < 0)
			return err;
	}
	return drop_table_records(l, table);
}

static enum lk_job_state drop_run(struct lake *l, struct lk_job *j)
{
	struct lk_sec s;
	struct meta_inode md;
	char name[LAKE_NAME_MAX + 1];
	int err;

	if ((err = lk_sec_get(l, j->table, &s)) < 0 ||
	    (err = meta_get_inode(l->m, j->table, &md)) < 0)
		goto fail;
	if (s.kind == LK_SCHEMA && s.layer != LY_VOLUME) {
		j->error = strdup("bronze, silver and gold go with their catalog: "
				  "drop the catalog");
		return JS_FAILED;
	}
	if (s.layer == LY_SILVER) {
		j->error = strdup("drop the bronze table; its silver table goes with it");
		return JS_FAILED;
	}
	if (s.layer == LY_GOLD && s.kind == LK_TABLE && (err = gold_drop_records(l, j->table)) < 0)
		goto fail;
	if (s.kind == LK_TABLE && s.layer == LY_BRONZE &&
	    (err = drop_silver_of(l, j->table, 1)) < 0)
		goto fail;
	/* below a catalog or a volume schema: tables first, so each silver
	 * table goes with its bronze one */
	if (s.kind == LK_CATALOG || s.kind == LK_SCHEMA) {
		struct scan_list sl = { 0 };

		meta_readdir(l->m, j->table, 0, drop_collect, &sl);
		for (size_t i = 0; i < sl.n; i++) {
			struct lk_sec c;

			if (lk_sec_get(l, sl.e[i].ino, &c) == 0 && c.kind == LK_SCHEMA &&
			    c.layer == LY_GOLD) {
				struct scan_list gl = { 0 };

				meta_readdir(l->m, sl.e[i].ino, 0, drop_collect, &gl);
				for (size_t t = 0; t < gl.n; t++) {
					struct lk_sec g;

					if (lk_sec_get(l, gl.e[t].ino, &g) == 0 && g.kind == LK_TABLE)
						gold_drop_records(l, gl.e[t].ino);
					free(gl.e[t].name);
				}
				free(gl.e);
			}
			if (lk_sec_get(l, sl.e[i].ino, &c) == 0 && c.kind == LK_SCHEMA &&
			    c.layer == LY_BRONZE) {
				struct scan_list tl = { 0 };

				meta_readdir(l->m, sl.e[i].ino, 0, drop_collect, &tl);
				for (size_t t = 0; t < tl.n; t++) {
					struct lk_job sub = { .table = tl.e[t].ino };

					if (drop_run(l, &sub) != JS_DONE)
						log_warn("drop %s: %s", tl.e[t].name,
							 sub.error ? sub.error : "failed");
					free(sub.error);
					free(tl.e[t].name);
				}
				free(tl.e);
			}
		}
		for (size_t i = 0; i < sl.n; i++)
			free(sl.e[i].name);
		free(sl.e);
	}
	if ((err = drop_tree(l, j->table)) < 0)
		goto fail;
	if ((err = lk_name_in_parent(l, s.parent, j->table, name, sizeof(name))) < 0 ||
	    (err = vfs_rmdir(l->v, s.parent, name)) < 0)
		goto fail;
	vfs_notify_entry(l->v, s.parent, name);
	pthread_mutex_lock(&l->lock);
	lk_map_del(l->scan_at, j->table);	/* nothing left to wait for */
	lk_map_del(l->scan_force, j->table);
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->lock);
	lk_sec_del(l, j->table);
	lake_forget(l, j->table);
	return JS_DONE;
fail:
	if (asprintf(&j->error, "cannot drop: %s", strerror(-err)) < 0)
		j->error = NULL;
	return JS_FAILED;
}

static void *worker_main(void *arg)
{
	struct lake *l = arg;

	pthread_mutex_lock(&l->lock);
	while (!l->stopping) {
		struct lk_job *j;

		for (j = l->queue; j; j = j->next)
			if (j->state == JS_QUEUED && !lk_map_get(l->busy, j->table, NULL))
				break;
		if (!j) {
			pthread_cond_wait(&l->cond, &l->lock);
			continue;
		}
		j->state = JS_RUNNING;
		lk_map_put(l->busy, j->table, 1);
		l->running++;
		pthread_mutex_unlock(&l->lock);

		j->t_started = lk_realtime_ns();
		job_save(l, j);
		j->state = j->kind == JK_DROP ? drop_run(l, j) :
			   j->kind == JK_REFRESH ? gold_refresh_run(l, j) : promote_run(l, j);
		j->t_finished = lk_realtime_ns();
		if (j->kind == JK_DROP || j->state == JS_FAILED || j->state == JS_SKIPPED)
			job_save(l, j);	/* the others saved it with their result */
		if (j->state == JS_FAILED)
			log_err("job %" PRIu64 " (%s %s): %s", j->id, j->tname ? j->tname : "",
				j->path ? j->path : "", j->error ? j->error : "failed");
		job_finish(l, j);
		pthread_mutex_lock(&l->lock);
	}
	pthread_mutex_unlock(&l->lock);
	return NULL;
}

struct lk_note {
	struct lk_note *next;
	uint64_t dir;
	char name[LAKE_NAME_MAX + 1];
};

void lk_notify_later(struct lake *l, uint64_t dir, const char *name)
{
	struct lk_note *n = calloc(1, sizeof(*n));

	if (!n)
		return;		/* the entry times out instead */
	n->dir = dir;
	snprintf(n->name, sizeof(n->name), "%s", name);
	pthread_mutex_lock(&l->lock);
	n->next = l->notes;
	l->notes = n;
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->lock);
}

/* l->lock held; released around the notifications */
static void notes_drain(struct lake *l)
{
	while (l->notes) {
		struct lk_note *n = l->notes;

		l->notes = NULL;
		pthread_mutex_unlock(&l->lock);
		while (n) {
			struct lk_note *next = n->next;

			vfs_notify_entry(l->v, n->dir, n->name);
			free(n);
			n = next;
		}
		pthread_mutex_lock(&l->lock);
	}
}

static void *sched_main(void *arg)
{
	struct lake *l = arg;

	pthread_mutex_lock(&l->lock);
	while (!l->stopping) {
		uint64_t now = mono_ns(), next = 0, due = 0;

		notes_drain(l);

		for (size_t i = 0; i < l->scan_at->nb && !due; i++)
			for (struct lk_ent *e = l->scan_at->b[i]; e; e = e->next) {
				if (e->val <= now) {
					due = e->k;
					break;
				}
				if (!next || e->val < next)
					next = e->val;
			}
		if (due) {
			int force = lk_map_get(l->scan_force, due, NULL);

			lk_map_del(l->scan_at, due);
			lk_map_del(l->scan_force, due);
			pthread_mutex_unlock(&l->lock);
			scan_table(l, due, force);
			pthread_mutex_lock(&l->lock);
			continue;
		}
		{
			uint64_t gnext = 0;

			pthread_mutex_unlock(&l->lock);
			gold_tick(l, now, &gnext);
			pthread_mutex_lock(&l->lock);
			if (gnext && (!next || gnext < next))
				next = gnext;
		}
		if (l->stopping)
			break;
		if (next && next <= mono_ns())
			continue;
		if (next) {
			struct timespec ts = realtime_after(next - now);

			pthread_cond_timedwait(&l->cond, &l->lock, &ts);
		} else {
			pthread_cond_wait(&l->cond, &l->lock);
		}
	}
	pthread_mutex_unlock(&l->lock);
	return NULL;
}

/* ---- start and stop ---- */

struct resume {
	struct lake *l;
	struct lk_job **jobs;
	size_t n, cap;
	uint64_t maxid;
};

static int resume_one(void *arg, const char *name, const char *val, size_t len)
{
	struct resume *r = arg;
	char *s = strndup(val, len);
	struct lk_job *j = s ? job_parse(s) : NULL;

	(void)name;
	free(s);
	if (!j)
		return 0;
	if (j->id > r->maxid)
		r->maxid = j->id;
	if (r->n == r->cap) {
		size_t cap = r->cap ? 2 * r->cap : 64;
		struct lk_job **nj = realloc(r->jobs, cap * sizeof(*nj));

		if (!nj) {
			lk_job_free(j);
			return -ENOMEM;
		}
		r->jobs = nj;
		r->cap = cap;
	}
	r->jobs[r->n++] = j;
	return 0;
}

static int scan_tables(void *arg, const char *name, const char *val, size_t len)
{
	struct lake *l = arg;
	uint64_t ino;

	(void)len;
	if (strncmp(val, "table bronze ", 13) == 0 &&
	    sscanf(name, "sec/%" SCNx64, &ino) == 1)
		schedule_scan(l, ino, 1);
	return 0;
}

int lake_start(struct lake *l)
{
	struct resume r = { .l = l };
	size_t keep_from;

	meta_scan_kv(l->m, "job/", resume_one, &r);
	l->next_job = r.maxid;
	/* finished jobs become the recent list; the oldest past RECENT_MAX
	 * are forgotten, records and all */
	keep_from = r.n > RECENT_MAX ? r.n - RECENT_MAX : 0;
	for (size_t i = 0; i < r.n; i++) {
		struct lk_job *j = r.jobs[i];

		if (j->state == JS_QUEUED || j->state == JS_RUNNING) {
			j->state = JS_QUEUED;
			if (l->queue_tail)
				l->queue_tail->next = j;
			else
				l->queue = j;
			l->queue_tail = j;
			log_info("job %" PRIu64 " (%s %s) resumes", j->id,
				 j->tname ? j->tname : "", j->path ? j->path : "");
		} else if (i < keep_from) {
			char key[64];
			struct vfs_kv kv = { key, NULL, 0 };

			lk_key(key, sizeof(key), "job", j->id);
			vfs_publish(l->v, NULL, 0, &kv, 1);
			lk_job_free(j);
		} else {
			if (l->recent_tail)
				l->recent_tail->next = j;
			else
				l->recent = j;
			l->recent_tail = j;
			l->nrecent++;
		}
	}
	free(r.jobs);
	meta_scan_kv(l->m, "sec/", scan_tables, l);
	gold_start(l);
	l->nworkers = l->opt.workers;
	l->workers = calloc(l->nworkers, sizeof(*l->workers));
	if (!l->workers)
		return -ENOMEM;
	if (pthread_create(&l->sched, NULL, sched_main, l) != 0)
		return -EAGAIN;
	l->started = 1;
	for (unsigned i = 0; i < l->nworkers; i++)
		if (pthread_create(&l->workers[i], NULL, worker_main, l) != 0) {
			l->nworkers = i;
			break;
		}
	return 0;
}

int lake_open(struct lake **out, struct vfs *v, const struct lake_options *o,
	      char **errmsg)
{
	struct lake *l = calloc(1, sizeof(*l));

	(void)errmsg;
	if (!l)
		return -ENOMEM;
	l->v = v;
	l->m = vfs_meta(v);
	if (o)
		l->opt = *o;
	if (!l->opt.workers)
		l->opt.workers = 2;
	if (!l->opt.quiet_ms)
		l->opt.quiet_ms = QUIET_DEFAULT_MS;
	if (l->opt.tmp_dir) {
		DIR *d;
		struct dirent *e;

		if (!(l->tmp_dir = strdup(l->opt.tmp_dir))) {
			l->opt.tmp_dir = NULL;
			lake_close(l);
			return -ENOMEM;
		}
		l->opt.tmp_dir = l->tmp_dir;
		/* upsert spill files a crash left behind */
		if ((d = opendir(l->tmp_dir)) != NULL) {
			while ((e = readdir(d)) != NULL)
				if (strncmp(e->d_name, "lakefs-upsert-", 14) == 0)
					unlinkat(dirfd(d), e->d_name, 0);
			closedir(d);
		}
	}
	pthread_mutex_init(&l->lock, NULL);
	pthread_cond_init(&l->cond, NULL);
	pthread_cond_init(&l->idle, NULL);
	l->files = lk_map_new();
	l->dirs = lk_map_new();
	l->scan_at = lk_map_new();
	l->scan_force = lk_map_new();
	l->busy = lk_map_new();
	l->gold_at = lk_map_new();
	l->gold_first = lk_map_new();
	l->gold_next = lk_map_new();
	l->sqlfiles = lk_map_new();
	l->sqlerr = lk_map_new();
	l->gfiles = lk_map_new();
	if (!l->files || !l->dirs || !l->scan_at || !l->scan_force || !l->busy ||
	    !l->gold_at || !l->gold_first || !l->gold_next || !l->sqlfiles ||
	    !l->sqlerr || !l->gfiles ||
	    lk_acc_open(l) < 0) {
		lake_close(l);
		return -ENOMEM;
	}
	*out = l;
	return 0;
}

void lake_close(struct lake *l)
{
	if (!l)
		return;
	pthread_mutex_lock(&l->lock);
	l->stopping = 1;
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->lock);
	if (l->started) {
		pthread_join(l->sched, NULL);
		for (unsigned i = 0; i < l->nworkers; i++)
			pthread_join(l->workers[i], NULL);
	}
	free(l->workers);
	while (l->queue) {
		struct lk_job *j = l->queue;

		l->queue = j->next;
		lk_job_free(j);
	}
	while (l->recent) {
		struct lk_job *j = l->recent;

		l->recent = j->next;
		lk_job_free(j);
	}
	while (l->notes) {
		struct lk_note *n = l->notes;

		l->notes = n->next;
		free(n);
	}
	map_free(l->files, 0);
	map_free(l->dirs, 1);
	map_free(l->scan_at, 0);
	map_free(l->scan_force, 0);
	map_free(l->busy, 0);
	map_free(l->gold_at, 0);
	map_free(l->gold_first, 0);
	map_free(l->gold_next, 0);
	map_free(l->sqlfiles, 0);
	map_free(l->sqlerr, 1);
	map_free(l->gfiles, 0);
	lk_acc_close(l);
	gold_pending_free(l);
	pthread_mutex_destroy(&l->lock);
	pthread_cond_destroy(&l->cond);
	pthread_cond_destroy(&l->idle);
	free(l->tmp_dir);
	free(l);
}

void lake_stats(struct lake *l, struct lake_stats *st)
{
	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&l->lock);
	for (struct lk_job *j = l->queue; j; j = j->next)
		if (j->state == JS_QUEUED)
			st->queued++;
	st->running = l->running;
	st->waiting = l->scan_at->n + l->gold_at->n;
	st->done = l->done;
	st->failed = l->failed;
	st->quarantined = l->quarantined;
	pthread_mutex_unlock(&l->lock);
}

void lake_jobs_render(struct lake *l, struct lake_who *w, struct gbuf *out)
{
	struct gbuf all = { 0 };
	uint64_t *tables = NULL;
	size_t n = 0, cap = 0;
	int admin = lake_is_admin(l, w);

	/* render under the lock; filter after it (access takes its own) */
	pthread_mutex_lock(&l->lock);
	for (int pass = 0; pass < 2; pass++)
		for (struct lk_job *j = pass ? l->queue : l->recent; j; j = j->next) {
			if (!admin && n == cap) {
				uint64_t *nt;

				cap = cap ? cap * 2 : 64;
				if (!(nt = realloc(tables, cap * sizeof(*nt)))) {
					all.failed = 1;
					break;
				}
				tables = nt;
			}
			if (!admin)
				tables[n++] = j->table;
			lk_job_json(j, admin ? out : &all);
			gbuf_add(admin ? out : &all, "\n", 1);
		}
	pthread_mutex_unlock(&l->lock);
	if (!admin && !all.failed) {
		const char *p = (const char *)all.p;

		for (size_t i = 0; i < n && p; i++) {
			const char *nl = strchr(p, '\n');

			if (!nl)
				break;
			if (lake_job_visible(l, w, tables[i]))
				gbuf_add(out, p, (size_t)(nl + 1 - p));
			p = nl + 1;
		}
	}
	if (all.failed)
		out->failed = 1;
	free(all.p);
	free(tables);
}

int lake_rmdir(struct lake *l, uint64_t parent, const char *name)
{
	uint64_t ino = 0;
	struct lk_sec s;
	int err, sec;

	sec = meta_lookup(l->m, parent, name, &ino, NULL, NULL) == 0 &&
	      lk_sec_get(l, ino, &s) == 0;
	err = vfs_rmdir(l->v, parent, name);
	if (err == 0 && sec) {
		/* an empty bronze table (lake_may_remove): its silver table,
		 * which has no data, goes with it */
		if (s.kind == LK_TABLE && s.layer == LY_BRONZE && drop_silver_of(l, ino, 0) < 0)
			log_warn("rmdir %s: its silver table stays: cannot remove it", name);
		lk_sec_del(l, ino);
		lake_forget(l, ino);
	}
	return err;
}
