/*
 * catalog/access.c — who may do what: grants on securables, their
 * evaluation for every request, what a caller is shown, and the audit log.
 *
 * Model (after Unity Catalog, DESIGN.md section 5). Securables are the
 * root (the metastore), catalogs, schemas, tables and volumes. Privileges
 * USE, READ, WRITE and MANAGE are granted to principals (a uid, a gid, or
 * everyone) on a securable and hold for everything below it. A request
 * below a catalog or schema also needs USE there (checked level by level:
 * USE granted on a schema is no use without USE on its catalog). The
 * creator of a securable owns it and holds every privilege on it; the mount
 * owner (lake_options.admin_uid) is the admin and holds every privilege
 * everywhere. Silver and gold stay the engine's whatever the grants: the
 * namespace policy (lake.c) answers EROFS before these checks matter.
 *
 * Storage. Grants are K acl/<ino> records, one "u|g|e ID PRIVS" line per
 * principal; the owner is in the securable's K sec record (older records
 * without one: the directory's uid and gid). Both ride the metadata
 * journal, so they are mirrored to the bucket and restored with it.
 *
 * Memory. Every securable is an acc_node (parent, kind, owner, grants):
 * all are loaded at open (listings need to know what is held below a
 * catalog or schema), those made later on first use. Nodes are never freed
 * while the lake is open (securables are few); a dropped one is marked
 * dead. Grant changes rewrite the node in place.
 *
 * Locking. a->lock (rwlock) guards the node table and every node. Each
 * request takes it shared for the length of one evaluation; a grant change
 * takes it exclusive around its record write (a synced transaction) and
 * the node update, so any request that starts after a revoke is answered
 * sees the revoke. Records are read (LevelDB) under the shared lock on a
 * miss, then the node is inserted under the exclusive one (a racing
 * loader's copy is dropped); node pointers stay valid across that relock.
 *
 * What the kernel caches. The mount keeps default_permissions: the kernel
 * checks mode bits against the attributes we return, so POSIX holds inside
 * tables and volumes. A securable that anyone but the admin may use
 * ("shared": a grant on it or above, or a non-admin owner on the chain) is
 * shown per caller — r list, w create inside or manage, x traverse, as the
 * owner's and other's triplet, and as the group's only to members of the
 * owner's group (group bits make the kernel fetch a non-owner's POSIX ACL
 * on every walk) — and never cached (attribute timeout 0), so the kernel
 * asks again, as the next caller, every time it checks. Every request that
 * reaches the daemon is checked here as well; that covers the window in
 * which the kernel may check one caller against another's view (it keeps
 * one set of attributes per inode; libfuse issue 733).
 *
 * Audit. Grant changes and the denials made here go to STATE/audit.log
 * (rotated to .1 at audit_max). Denials the kernel makes from the modes we
 * showed never reach the daemon and are not in it.
 *
 * Failure. When a record cannot be read, non-admins are refused (EACCES,
 * with a log line): access fails closed.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "catalog/lake_int.h"
#include "catalog/meta.h"
#include "util/log.h"
#include "util/util.h"

#define CHAIN_MAX 8		/* root, catalog, schema, table: 4 in practice */
#define AUDIT_MAX_DEFAULT (4u << 20)

enum { PT_USER, PT_GROUP, PT_EVERYONE };

struct acc_grant {
	uint8_t type;		/* PT_* */
	uint8_t privs;		/* LAKE_P_* */
	uint32_t id;
};

struct acc_node {
	uint64_t ino, parent;	/* parent: the securable above (0 for the root) */
	enum lk_kind kind;
	enum lk_layer layer;
	uint32_t uid, gid;	/* the owner */
	int dead;		/* dropped or removed */
	size_t n;
	struct acc_grant *g;
	char name[LAKE_NAME_MAX + 1];
};

struct access {
	pthread_rwlock_t lock;
	struct lk_map *index;	/* ino -> 1 + position in nodes */
	struct acc_node **nodes;
	size_t n, cap;
	/* the audit log */
	pthread_mutex_t alock;
	int afd;
	char *apath;
	uint64_t asize, amax;
};

/* ---- the node table ---- */

static struct acc_node *node_find(struct access *a, uint64_t ino)
{
	uint64_t pos;

	if (!lk_map_get(a->index, ino, &pos))
		return NULL;
	return a->nodes[pos - 1];
}

static int grants_parse(const char *val, size_t len, struct acc_grant **out, size_t *n)
{
	struct acc_grant *g = NULL;
	size_t cap = 0, k = 0;
	const char *p = val, *end = val + len;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		char line[64], t;
		unsigned id, privs;
		size_t ll = (size_t)((nl ? nl : end) - p);

		if (ll > 0 && ll < sizeof(line)) {
			memcpy(line, p, ll);
			line[ll] = '\0';
			if (sscanf(line, "%c %u %x", &t, &id, &privs) != 3 ||
			    (t != 'u' && t != 'g' && t != 'e')) {
				free(g);
				return -EIO;
			}
			if (k == cap) {
				struct acc_grant *ng;

				cap = cap ? cap * 2 : 4;
				if (!(ng = realloc(g, cap * sizeof(*g)))) {
					free(g);
					return -ENOMEM;
				}
				g = ng;
			}
			g[k].type = t == 'u' ? PT_USER : t == 'g' ? PT_GROUP : PT_EVERYONE;
			g[k].id = id;
			g[k].privs = (uint8_t)(privs & LAKE_P_ALL);
			k++;
		}
		p = nl ? nl + 1 : end;
	}
	*out = g;
	*n = k;
	return 0;
}

static void grants_encode(const struct acc_node *nd, struct gbuf *b)
{
	static const char tc[] = { 'u', 'g', 'e' };

	for (size_t i = 0; i < nd->n; i++)
		gbuf_printf(b, "%c %u %x\n", tc[nd->g[i].type], nd->g[i].id,
			    nd->g[i].privs);
}

/* Read a securable's records into a new node (no lock needed). */
static int node_load(struct lake *l, uint64_t ino, struct acc_node **out)
{
	struct acc_node *nd = calloc(1, sizeof(*nd));
	char key[64], *val;
	size_t len;
	int err;

	if (!nd)
		return -ENOMEM;
	nd->ino = ino;
	if (ino == META_ROOT_INO) {
		nd->kind = LK_ROOT;
		nd->uid = l->opt.admin_uid;
		nd->gid = l->opt.admin_gid;
	} else {
		struct lk_sec s;

		if ((err = lk_sec_get(l, ino, &s)) < 0) {
			free(nd);
			return err;
		}
		nd->parent = s.parent;
		nd->kind = s.kind;
		nd->layer = s.layer;
		snprintf(nd->name, sizeof(nd->name), "%s", s.name);
		if (s.has_owner && s.uid != (uint32_t)-1) {
			nd->uid = s.uid;
			nd->gid = s.gid;
		} else if (s.has_owner) {
			/* made by the engine for whoever owns the securable above */
			struct acc_node *up = NULL;

			if ((err = node_load(l, s.parent, &up)) < 0) {
				free(nd);
				return err;
			}
			nd->uid = up->uid;
			nd->gid = up->gid;
			free(up->g);
			free(up);
		} else {
			struct meta_inode md;

			if ((err = meta_get_inode(l->m, ino, &md)) < 0) {
				free(nd);
				return err;
			}
			nd->uid = md.uid;
			nd->gid = md.gid;
		}
	}
	lk_key(key, sizeof(key), "acl", ino);
	err = meta_get_kv(l->m, key, &val, &len);
	if (err == 0) {
		err = grants_parse(val, len, &nd->g, &nd->n);
		if (err == -EIO)
			log_err("catalog record %s is damaged", key);
		free(val);
	} else if (err == -ENOENT) {
		err = 0;
	}
	if (err < 0) {
		free(nd);
		return err;
	}
	*out = nd;
	return 0;
}

static void node_free(struct acc_node *nd)
{
	if (nd) {
		free(nd->g);
		free(nd);
	}
}

/* The node of securable ino, loading it on a miss; a->lock held shared
 * (released and retaken exclusive around the insert). */
static int node_get(struct lake *l, uint64_t ino, struct acc_node **out)
{
	struct access *a = l->acc;
	struct acc_node *nd = node_find(a, ino), *fresh;
	int err;

	if (nd) {
		*out = nd;
		return nd->dead ? -ENOENT : 0;
	}
	if ((err = node_load(l, ino, &fresh)) < 0)
		return err;
	pthread_rwlock_unlock(&a->lock);
	pthread_rwlock_wrlock(&a->lock);
	if ((nd = node_find(a, ino)) != NULL) {
		node_free(fresh);
	} else {
		if (a->n == a->cap) {
			size_t cap = a->cap ? a->cap * 2 : 64;
			struct acc_node **nn = realloc(a->nodes, cap * sizeof(*nn));

			if (!nn) {
				node_free(fresh);
				err = -ENOMEM;
				goto out;
			}
			a->nodes = nn;
			a->cap = cap;
		}
		if (lk_map_put(a->index, ino, a->n + 1) < 0) {
			node_free(fresh);
			err = -ENOMEM;
			goto out;
		}
		a->nodes[a->n++] = nd = fresh;
	}
out:
	pthread_rwlock_unlock(&a->lock);
	pthread_rwlock_rdlock(&a->lock);
	/* nodes are never freed, so nd stays valid across the relock */
	if (err == 0)
		*out = nd;
	return err;
}

/* chain[0] = the root ... chain[n-1] = sec; a->lock held shared */
static int chain_of(struct lake *l, uint64_t sec, struct acc_node **chain, int *n)
{
	struct acc_node *tmp[CHAIN_MAX];
	int k = 0, err;

	for (uint64_t ino = sec;; ) {
		struct acc_node *nd;

		if (k == CHAIN_MAX)
			return -ELOOP;
		if ((err = node_get(l, ino, &nd)) < 0)
			return err;
		tmp[k++] = nd;
		if (ino == META_ROOT_INO)
			break;
		ino = nd->parent;
	}
	for (int i = 0; i < k; i++)
		chain[i] = tmp[k - 1 - i];
	*n = k;
	return 0;
}

/* ---- who ---- */

int lake_is_admin(const struct lake *l, const struct lake_who *w)
{
	return w->uid == l->opt.admin_uid;
}

static int who_in_group(struct lake_who *w, uint32_t gid)
{
	if (w->gid == gid)
		return 1;
	if (w->ngroups < 0) {
		w->ngroups = 0;
		if (w->get_groups) {
			int n = w->get_groups(w->arg, w->groups, LAKE_GROUPS_MAX);

			w->ngroups = n < 0 ? 0 : n > LAKE_GROUPS_MAX ? LAKE_GROUPS_MAX : n;
		}
	}
	for (int i = 0; i < w->ngroups; i++)
		if (w->groups[i] == gid)
			return 1;
	return 0;
}

static unsigned node_privs(const struct acc_node *nd, struct lake_who *w)
{
	unsigned p = 0;

	if (nd->uid == w->uid)
		return LAKE_P_ALL;	/* the owner */
	for (size_t i = 0; i < nd->n; i++) {
		const struct acc_grant *g = &nd->g[i];

		if ((p | g->privs) == p)
			continue;
		if (g->type == PT_EVERYONE ||
		    (g->type == PT_USER && g->id == w->uid) ||
		    (g->type == PT_GROUP && who_in_group(w, g->id)))
			p |= g->privs;
	}
	return p;
}

/*
 * The caller's privileges on the last securable of the chain (inherited
 * from above included), and whether it holds USE on every catalog and
 * schema above it.
 */
static unsigned chain_privs(struct lake *l, struct lake_who *w,
			    struct acc_node **chain, int n, int *path_ok)
{
	unsigned p = 0;

	*path_ok = 1;
	if (lake_is_admin(l, w))
		return LAKE_P_ALL;
	for (int i = 0; i < n; i++) {
		p |= node_privs(chain[i], w);
		if (i < n - 1 && (chain[i]->kind == LK_CATALOG ||
				  chain[i]->kind == LK_SCHEMA) && !(p & LAKE_P_USE))
			*path_ok = 0;
	}
	return p;
}

/* may pass through securable dir (the last of the chain): look names up in it */
static int may_traverse(const struct acc_node *nd, unsigned p, int path_ok)
{
	if (!path_ok)
		return 0;
	switch (nd->kind) {
	case LK_ROOT:
		return 1;
	case LK_CATALOG:
	case LK_SCHEMA:
		return (p & LAKE_P_USE) != 0;
	default:
		return (p & (LAKE_P_READ | LAKE_P_WRITE | LAKE_P_MANAGE)) != 0;
	}
}

static int holds_at_or_below(struct lake *l, struct lake_who *w, uint64_t ino);

/*
 * Read a directory: a table or volume takes READ; the root, a catalog or a
 * schema takes USE and something held there beyond an inherited USE (a
 * privilege, or a grant at or below it), so USE on a catalog does not
 * open the listing of every schema in it.
 */
static int may_list(struct lake *l, struct lake_who *w, const struct acc_node *nd,
		    unsigned p, int path_ok)
{
	if (nd->kind == LK_ROOT)
		return 1;
	if (nd->kind == LK_CATALOG || nd->kind == LK_SCHEMA)
		return may_traverse(nd, p, path_ok) &&
		       ((p & ~LAKE_P_USE) || holds_at_or_below(l, w, nd->ino));
	return path_ok && (p & LAKE_P_READ);
}

/* create inside: securable levels take MANAGE, tables and volumes WRITE */
static int may_make(const struct acc_node *nd, unsigned p, int path_ok)
{
	if (!may_traverse(nd, p, path_ok))
		return 0;
	if (nd->kind == LK_ROOT || nd->kind == LK_CATALOG || nd->kind == LK_SCHEMA)
		return (p & LAKE_P_MANAGE) != 0;
	return (p & LAKE_P_WRITE) != 0;
}

/* ---- where an inode is ---- */

/*
 * The securable that governs ino: itself (*self = 1) when it is one, else
 * the table, volume or schema it is in. -ENOENT when unknown (a file the
 * lake has not been told of).
 */
static int place_of(struct lake *l, uint64_t ino, uint64_t *sec, int *self)
{
	struct lk_class c;
	uint64_t t;
	int have, err;

	*self = 0;
	if (ino == META_ROOT_INO) {
		*sec = ino;
		*self = 1;
		return 0;
	}
	pthread_rwlock_rdlock(&l->acc->lock);
	have = node_find(l->acc, ino) != NULL;
	pthread_rwlock_unlock(&l->acc->lock);
	if (have) {
		*sec = ino;
		*self = 1;
		return 0;
	}
	pthread_mutex_lock(&l->lock);
	have = lk_map_get(l->files, ino, &t) || lk_map_get(l->gfiles, ino, &t) ||
	       lk_map_get(l->sqlfiles, ino, &t);
	pthread_mutex_unlock(&l->lock);
	if (have) {
		*sec = t;
		return 0;
	}
	if ((err = lk_class(l, ino, &c)) < 0)
		return err == -ENOTDIR ? -ENOENT : err;
	*sec = c.sec;
	*self = c.sec == ino;
	return 0;
}

/* ---- the audit log ---- */

static void audit_open(struct access *a)
{
	struct stat st;

	a->afd = open(a->apath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (a->afd < 0) {
		log_err("audit log %s: %s (denials and grant changes go to the log "
			"only)", a->apath, strerror(errno));
		return;
	}
	a->asize = fstat(a->afd, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* the mount-relative path of securable sec, then /name */
static void sec_slash_path(struct lake *l, uint64_t sec, const char *name,
			   char *out, size_t cap)
{
	struct acc_node *chain[CHAIN_MAX];
	size_t o = 0;
	int n = 0;

	out[0] = '\0';
	pthread_rwlock_rdlock(&l->acc->lock);
	if (chain_of(l, sec, chain, &n) == 0)
		for (int i = 1; i < n && o < cap; i++)
			o += (size_t)snprintf(out + o, cap - o, "/%s", chain[i]->name);
	pthread_rwlock_unlock(&l->acc->lock);
	if (n == 0 && sec != META_ROOT_INO && o < cap)
		o += (size_t)snprintf(out + o, cap - o, "/#%" PRIu64, sec);
	if (name && o < cap)
		o += (size_t)snprintf(out + o, cap - o, "/%s", name);
	if (o == 0)
		snprintf(out, cap, "/");
}

/* s with bytes outside printable ASCII, '"' and '\\' as \xNN, and spaces
 * too unless quoted: a name cannot forge an audit line or a field */
static void audit_escape(const char *s, int quoted, char *out, size_t cap)
{
	size_t o = 0;

	for (; *s && o + 5 < cap; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < ' ' || (c == ' ' && !quoted) || c >= 0x7f || c == '"' || c == '\\')
			o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
		else
			out[o++] = (char)c;
	}
	out[o] = '\0';
}

static void audit(struct lake *l, const struct lake_who *w, const char *op,
		  uint64_t sec, const char *name, int result, const char *what)
{
	struct access *a = l->acc;
	char when[40], raw[512], path[1400], ewhat[800], line[2400];
	struct timespec ts;
	struct tm tm;
	int n;

	sec_slash_path(l, sec, name, raw, sizeof(raw));
	audit_escape(raw, 0, path, sizeof(path));
	if (what) {
		audit_escape(what, 1, ewhat, sizeof(ewhat));
		what = ewhat;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	n = snprintf(line, sizeof(line), "%s.%03ldZ uid=%u gid=%u op=%s path=%s "
		     "result=%s%s%s%s\n", when, ts.tv_nsec / 1000000, w->uid, w->gid,
		     op, path, result == 0 ? "ok" : strerrorname_np(-result) ?
		     strerrorname_np(-result) : "error", what ? " what=\"" : "",
		     what ? what : "", what ? "\"" : "");
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line)) {
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	if (result != 0)
		log_info("denied: uid %u %s %s", w->uid, op, path);
	pthread_mutex_lock(&a->alock);
	if (a->afd >= 0 && a->asize + (uint64_t)n > a->amax) {
		char old[4200];

		snprintf(old, sizeof(old), "%s.1", a->apath);
		close(a->afd);
		if (rename(a->apath, old) < 0)
			log_warn("audit log: cannot rotate %s: %s", a->apath,
				 strerror(errno));
		audit_open(a);
	}
	if (a->afd >= 0) {
		if (write(a->afd, line, (size_t)n) == n)
			a->asize += (uint64_t)n;
		else
			log_warn("audit log %s: write failed", a->apath);
	}
	pthread_mutex_unlock(&a->alock);
}

int lake_audit_render(struct lake *l, struct gbuf *out)
{
	struct access *a = l->acc;
	char old[4200];
	const char *files[2] = { old, a->apath };

	snprintf(old, sizeof(old), "%s.1", a->apath);
	pthread_mutex_lock(&a->alock);
	for (int i = 0; i < 2; i++) {
		char buf[65536];
		ssize_t r;
		int fd = open(files[i], O_RDONLY | O_CLOEXEC);

		if (fd < 0)
			continue;
		while ((r = read(fd, buf, sizeof(buf))) > 0)
			gbuf_add(out, buf, (size_t)r);
		close(fd);
	}
	pthread_mutex_unlock(&a->alock);
	return out->failed ? -ENOMEM : 0;
}

/* ---- the checks ---- */

static int sec_is_securable_level(const struct acc_node *nd)
{
	return nd->kind == LK_ROOT || nd->kind == LK_CATALOG || nd->kind == LK_SCHEMA;
}

/* Is name in dir a securable the caller owns? a->lock held shared (and
 * released around the directory lookup). */
static int owns_child(struct lake *l, struct lake_who *w, uint64_t dir, const char *name)
{
	struct acc_node *cn;
	uint64_t child;
	int found;

	pthread_rwlock_unlock(&l->acc->lock);
	found = meta_lookup(l->m, dir, name, &child, NULL, NULL) == 0;
	pthread_rwlock_rdlock(&l->acc->lock);
	return found && node_get(l, child, &cn) == 0 && cn->uid == w->uid;
}

/* may look up the securable at the end of the chain: traverse its parent */
static int decide_stat(struct lake *l, struct lake_who *w, struct acc_node **chain, int n)
{
	unsigned pp;
	int pok;

	if (n < 2)
		return 1;	/* the root */
	pp = chain_privs(l, w, chain, n - 1, &pok);
	return may_traverse(chain[n - 2], pp, pok);
}

static int decide(struct lake *l, struct lake_who *w, uint64_t sec, int self,
		  enum lake_need need, const char *name)
{
	struct acc_node *chain[CHAIN_MAX], *nd;
	unsigned p;
	int n, ok, path_ok, err;

	pthread_rwlock_rdlock(&l->acc->lock);
	if ((err = chain_of(l, sec, chain, &n)) < 0) {
		pthread_rwlock_unlock(&l->acc->lock);
		log_warn("access: securable %" PRIu64 " unreadable: %s (refused)",
			 sec, strerror(-err));
		return 0;
	}
	nd = chain[n - 1];
	p = chain_privs(l, w, chain, n, &path_ok);
	switch (need) {
	case LAKE_STAT:
		/* a securable: whoever may look its name up; inside: whoever
		 * may pass through the table or volume */
		ok = self ? decide_stat(l, w, chain, n) : may_traverse(nd, p, path_ok);
		break;
	case LAKE_LOOKUP:
		ok = may_traverse(nd, p, path_ok);
		break;
	case LAKE_LIST:
		ok = may_list(l, w, nd, p, path_ok);
		break;
	case LAKE_READ:
		ok = self && sec_is_securable_level(nd) ? may_list(l, w, nd, p, path_ok) :
		     may_traverse(nd, p, path_ok) && (p & LAKE_P_READ);
		break;
	case LAKE_WRITE:
		ok = may_traverse(nd, p, path_ok) &&
		     (p & (sec_is_securable_level(nd) ? LAKE_P_MANAGE : LAKE_P_WRITE));
		break;
	case LAKE_MAKE:
		ok = may_make(nd, p, path_ok);
		break;
	case LAKE_REMOVE:
		ok = may_make(nd, p, path_ok);
		if (!ok && name && sec_is_securable_level(nd) && may_traverse(nd, p, path_ok))
			ok = owns_child(l, w, sec, name);	/* its owner may remove it */
		break;
	case LAKE_MANAGE:
		ok = path_ok && (p & LAKE_P_MANAGE) && (!self || decide_stat(l, w, chain, n));
		break;
	case LAKE_RUN:
		ok = path_ok && (p & (LAKE_P_WRITE | LAKE_P_MANAGE));
		break;
	case LAKE_XREAD:
		ok = self ? decide_stat(l, w, chain, n) :
		     may_traverse(nd, p, path_ok) && (p & LAKE_P_READ);
		break;
	case LAKE_XWRITE:
		ok = self ? path_ok && (p & LAKE_P_MANAGE) && decide_stat(l, w, chain, n) :
		     may_traverse(nd, p, path_ok) && (p & LAKE_P_WRITE);
		break;
	default:
		ok = lake_is_admin(l, w);
		break;
	}
	pthread_rwlock_unlock(&l->acc->lock);
	return ok;
}

int lake_check(struct lake *l, struct lake_who *w, uint64_t ino,
	       enum lake_need need, const char *op, const char *name)
{
	uint64_t sec;
	int self, err;

	if (lake_is_admin(l, w))
		return 0;
	if (need == LAKE_ADMIN) {
		audit(l, w, op, META_ROOT_INO, name, -EACCES, NULL);
		return -EACCES;
	}
	if ((err = place_of(l, ino, &sec, &self)) < 0) {
		log_warn("access: inode %" PRIu64 " has no known place (%s): refused "
			 "to uid %u", ino, strerror(-err), w->uid);
		audit(l, w, op, META_ROOT_INO, name, -EACCES, NULL);
		return -EACCES;
	}
	if (decide(l, w, sec, self, need, name))
		return 0;
	audit(l, w, op, sec, self || name ? name : NULL, -EACCES, NULL);
	return -EACCES;
}

/* ---- what a caller is shown ---- */

static int chain_shared(const struct lake *l, struct acc_node **chain, int n)
{
	for (int i = 0; i < n; i++)
		if (chain[i]->n || chain[i]->uid != l->opt.admin_uid)
			return 1;
	return 0;
}

int lake_present(struct lake *l, struct lake_who *w, struct stat *st)
{
	struct acc_node *chain[CHAIN_MAX], *nd;
	uint64_t sec;
	unsigned p, bits = 0;
	int self, n, path_ok, shared;

	if (!S_ISDIR(st->st_mode) || place_of(l, st->st_ino, &sec, &self) < 0 || !self)
		return 0;
	pthread_rwlock_rdlock(&l->acc->lock);
	if (chain_of(l, sec, chain, &n) < 0) {
		pthread_rwlock_unlock(&l->acc->lock);
		st->st_mode &= ~(mode_t)07777;	/* unreadable: show nothing */
		return 1;
	}
	nd = chain[n - 1];
	shared = chain_shared(l, chain, n);
	if (!shared) {
		/* the admin's alone: the real mode, for the admin only */
		if (nd->kind != LK_ROOT) {
			/* the owner is the admin here, whoever made the
			 * directory (the engine makes schemas as uid 0) */
			st->st_mode &= ~(mode_t)077;
			st->st_uid = nd->uid;
			st->st_gid = nd->gid;
		}
		pthread_rwlock_unlock(&l->acc->lock);
		return 0;
	}
	p = chain_privs(l, w, chain, n, &path_ok);
	if (may_list(l, w, nd, p, path_ok))
		bits |= 4;
	/* w: may create inside, or may change the securable itself (the
	 * kernel asks w of anyone setting an xattr: grants, properties) */
	if ((may_make(nd, p, path_ok) && nd->layer != LY_SILVER &&
	     !(nd->layer == LY_GOLD && nd->kind != LK_SCHEMA)) ||
	    (may_traverse(nd, p, path_ok) && (p & LAKE_P_MANAGE)))
		bits |= 2;
	if (may_traverse(nd, p, path_ok))
		bits |= 1;
	/*
	 * The caller's triplet is the truth; the group's is cleared for a
	 * caller outside the owner's group, because with group bits set the
	 * kernel consults the POSIX ACL of a non-owner, and refetches it each
	 * time it refetches these uncached attributes (a round trip per
	 * securable on every path walk).
	 */
	st->st_mode = (st->st_mode & S_IFMT) | (mode_t)(bits * 0111);
	if (w->uid != nd->uid && !who_in_group(w, nd->gid))
		st->st_mode &= ~(mode_t)S_IRWXG;
	st->st_uid = nd->uid;
	st->st_gid = nd->gid;
	pthread_rwlock_unlock(&l->acc->lock);
	return 1;
}

int lake_filters(struct lake *l, uint64_t dir)
{
	struct lk_class c;

	if (dir == META_ROOT_INO)
		return 1;
	return lk_class(l, dir, &c) == 0 && c.sec == dir &&
	       (c.kind == LK_CATALOG || c.kind == LK_SCHEMA);
}

/* Does the caller hold a grant or ownership on ino or a securable below
 * it? (a->lock held; every securable is in the table, lk_acc_open) */
static int holds_at_or_below(struct lake *l, struct lake_who *w, uint64_t ino)
{
	struct access *a = l->acc;

	for (size_t i = 0; i < a->n; i++) {
		struct acc_node *nd = a->nodes[i];

		if (nd->dead || (!nd->n && nd->uid != w->uid) || node_privs(nd, w) == 0)
			continue;
		for (uint64_t up = nd->ino; up; ) {
			struct acc_node *u = node_find(a, up);

			if (up == ino)
				return 1;
			if (!u || up == META_ROOT_INO)
				break;
			up = u->parent;
		}
	}
	return 0;
}

int lake_visible(struct lake *l, struct lake_who *w, uint64_t dir, uint64_t ino)
{
	struct acc_node *chain[CHAIN_MAX];
	struct lk_sec s;
	unsigned p;
	int n, path_ok, ok = 0;

	if (lake_is_admin(l, w))
		return 1;
	if (lk_sec_get(l, ino, &s) < 0) {
		/* not a securable: a gold definition, an editor's file */
		pthread_rwlock_rdlock(&l->acc->lock);
		if (chain_of(l, dir, chain, &n) == 0) {
			p = chain_privs(l, w, chain, n, &path_ok);
			ok = path_ok && (p & (LAKE_P_READ | LAKE_P_MANAGE));
		}
		pthread_rwlock_unlock(&l->acc->lock);
		return ok;
	}
	pthread_rwlock_rdlock(&l->acc->lock);
	if (chain_of(l, ino, chain, &n) == 0) {
		p = chain_privs(l, w, chain, n, &path_ok);
		ok = (p & ~LAKE_P_USE) || holds_at_or_below(l, w, ino);
	}
	pthread_rwlock_unlock(&l->acc->lock);
	return ok;
}

int lake_job_visible(struct lake *l, struct lake_who *w, uint64_t table)
{
	if (lake_is_admin(l, w))
		return 1;
	return decide(l, w, table, 1, LAKE_READ, NULL) ||
	       decide(l, w, table, 1, LAKE_LIST, NULL);
}

/* ---- principals and privilege lists ---- */

static const char *const priv_names[] = { "USE", "READ", "WRITE", "MANAGE" };

static void privs_text(unsigned p, char *out, size_t cap)
{
	size_t o = 0;

	out[0] = '\0';
	for (int i = 0; i < 4; i++)
		if (p & (1u << i))
			o += (size_t)snprintf(out + o, o < cap ? cap - o : 0, "%s%s",
					      o ? "," : "", priv_names[i]);
	if (o == 0)
		snprintf(out, cap, "NONE");
}

static int privs_parse(const char *s, unsigned *out)
{
	unsigned p = 0;
	char buf[128], *save = NULL, *tok;

	if (strlen(s) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, s);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		int found = 0;

		if (strcasecmp(tok, "ALL") == 0) {
			p |= LAKE_P_ALL;
			continue;
		}
		for (int i = 0; i < 4; i++)
			if (strcasecmp(tok, priv_names[i]) == 0) {
				p |= 1u << i;
				found = 1;
			}
		if (!found)
			return -EINVAL;
	}
	if (!p)
		return -EINVAL;
	*out = p;
	return 0;
}

static int number(const char *s, uint32_t *out)
{
	char *end;
	unsigned long v;

	if (!*s || *s == '-')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v >= UINT32_MAX)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

static int principal_parse(const char *s, struct acc_grant *g)
{
	char buf[1024];

	if (strcmp(s, "everyone") == 0) {
		g->type = PT_EVERYONE;
		g->id = 0;
		return 0;
	}
	if (strncmp(s, "uid:", 4) == 0) {
		g->type = PT_USER;
		return number(s + 4, &g->id);
	}
	if (strncmp(s, "gid:", 4) == 0) {
		g->type = PT_GROUP;
		return number(s + 4, &g->id);
	}
	if (strncmp(s, "user:", 5) == 0) {
		struct passwd pw, *r = NULL;

		g->type = PT_USER;
		if (number(s + 5, &g->id) == 0)
			return 0;
		if (getpwnam_r(s + 5, &pw, buf, sizeof(buf), &r) != 0 || !r)
			return -ENOENT;
		g->id = r->pw_uid;
		return 0;
	}
	if (strncmp(s, "group:", 6) == 0) {
		struct group gr, *r = NULL;

		g->type = PT_GROUP;
		if (number(s + 6, &g->id) == 0)
			return 0;
		if (getgrnam_r(s + 6, &gr, buf, sizeof(buf), &r) != 0 || !r)
			return -ENOENT;
		g->id = r->gr_gid;
		return 0;
	}
	return -EINVAL;
}

static void principal_text(int type, uint32_t id, char *out, size_t cap)
{
	char buf[1024];

	if (type == PT_EVERYONE) {
		snprintf(out, cap, "everyone");
	} else if (type == PT_USER) {
		struct passwd pw, *r = NULL;

		if (getpwuid_r(id, &pw, buf, sizeof(buf), &r) == 0 && r)
			snprintf(out, cap, "user:%s", r->pw_name);
		else
			snprintf(out, cap, "uid:%u", id);
	} else {
		struct group gr, *r = NULL;

		if (getgrgid_r(id, &gr, buf, sizeof(buf), &r) == 0 && r)
			snprintf(out, cap, "group:%s", r->gr_name);
		else
			snprintf(out, cap, "gid:%u", id);
	}
}

/* ---- grant and revoke ---- */

/* the kernel's cached attributes of sec and every securable below it */
static void invalidate_below(struct lake *l, uint64_t sec)
{
	struct access *a = l->acc;
	uint64_t *inos;
	size_t k = 0;

	pthread_rwlock_rdlock(&a->lock);
	inos = calloc(a->n ? a->n : 1, sizeof(*inos));
	for (size_t i = 0; inos && i < a->n; i++) {
		for (uint64_t up = a->nodes[i]->ino; up; ) {
			struct acc_node *u;

			if (up == sec) {
				inos[k++] = a->nodes[i]->ino;
				break;
			}
			if (up == META_ROOT_INO || !(u = node_find(a, up)))
				break;
			up = u->parent;
		}
	}
	pthread_rwlock_unlock(&a->lock);
	for (size_t i = 0; i < k; i++)
		vfs_notify_attr(l->v, inos[i]);
	free(inos);
}

static int grant_change(struct lake *l, struct lake_who *w, uint64_t ino,
			const char *op, const char *text, int revoke)
{
	struct access *a = l->acc;
	struct acc_grant g;
	struct acc_node *nd;
	char spec[256], *sp, key[64];
	struct gbuf b = { 0 };
	struct vfs_kv kv = { key, NULL, 0 };
	unsigned privs;
	size_t i;
	int err;

	if (strlen(text) >= sizeof(spec))
		return -EINVAL;
	strcpy(spec, text);
	if (!(sp = strchr(spec, ' ')))
		goto bad;
	*sp++ = '\0';
	while (*sp == ' ')
		sp++;
	if (privs_parse(spec, &privs) < 0)
		goto bad;
	if ((err = principal_parse(sp, &g)) < 0) {
		log_info("%s: no such principal '%s' (user:NAME, uid:N, group:NAME, "
			 "gid:N or everyone)", op, sp);
		return -EINVAL;
	}
	pthread_rwlock_rdlock(&a->lock);
	err = node_get(l, ino, &nd);
	pthread_rwlock_unlock(&a->lock);
	if (err < 0)
		return err == -ENOENT ? -EINVAL : err;
	pthread_rwlock_wrlock(&a->lock);
	for (i = 0; i < nd->n; i++)
		if (nd->g[i].type == g.type && nd->g[i].id == g.id)
			break;
	if (revoke) {
		if (i < nd->n) {
			nd->g[i].privs &= (uint8_t)~privs;
			if (!nd->g[i].privs)
				nd->g[i] = nd->g[--nd->n];
		}
	} else if (i < nd->n) {
		nd->g[i].privs |= (uint8_t)privs;
	} else {
		struct acc_grant *ng = realloc(nd->g, (nd->n + 1) * sizeof(*ng));

		if (!ng) {
			pthread_rwlock_unlock(&a->lock);
			return -ENOMEM;
		}
		nd->g = ng;
		g.privs = (uint8_t)privs;
		nd->g[nd->n++] = g;
	}
	grants_encode(nd, &b);
	lk_key(key, sizeof(key), "acl", ino);
	if (nd->n) {
		kv.val = b.p ? (const char *)b.p : "";
		kv.len = b.n;
	}
	err = b.failed ? -ENOMEM : vfs_publish(l->v, NULL, 0, &kv, 1);
	if (err < 0) {
		/* the record is the truth: reload it */
		struct acc_node *fresh;

		if (node_load(l, ino, &fresh) == 0) {
			free(nd->g);
			nd->g = fresh->g;
			nd->n = fresh->n;
			free(fresh);
		}
	}
	pthread_rwlock_unlock(&a->lock);
	free(b.p);
	audit(l, w, op, ino, NULL, err, text);
	if (err == 0)
		invalidate_below(l, ino);
	return err;
bad:
	log_info("%s: '%s' is not PRIVILEGES PRINCIPAL (e.g. 'USE,READ group:analysts')",
		 op, text);
	return -EINVAL;
}

/* the groups of uid in the group database */
static void who_of_uid(uint32_t uid, struct lake_who *w);

void lk_acc_who_of(struct lake *l, uint32_t uid, struct lake_who *w)
{
	(void)l;
	who_of_uid(uid, w);
}

int lk_acc_reads(struct lake *l, struct lake_who *w, uint64_t table)
{
	return lake_is_admin(l, w) || decide(l, w, table, 1, LAKE_READ, NULL);
}

uint32_t lk_acc_owner(struct lake *l, uint64_t sec)
{
	struct acc_node *nd;
	uint32_t uid = (uint32_t)-1;	/* unreadable: nobody's privileges */

	pthread_rwlock_rdlock(&l->acc->lock);
	if (node_get(l, sec, &nd) == 0)
		uid = nd->uid;
	pthread_rwlock_unlock(&l->acc->lock);
	return uid;
}

static void who_of_uid(uint32_t uid, struct lake_who *w)
{
	char buf[4096];
	struct passwd pw, *r = NULL;

	memset(w, 0, sizeof(*w));
	w->uid = uid;
	w->gid = (uint32_t)-1;
	if (getpwuid_r(uid, &pw, buf, sizeof(buf), &r) == 0 && r) {
		gid_t gs[LAKE_GROUPS_MAX];
		int n = LAKE_GROUPS_MAX;

		w->gid = r->pw_gid;
		if (getgrouplist(r->pw_name, r->pw_gid, gs, &n) < 0)
			n = LAKE_GROUPS_MAX;
		for (int i = 0; i < n && i < LAKE_GROUPS_MAX; i++)
			w->groups[i] = gs[i];
		w->ngroups = n < LAKE_GROUPS_MAX ? n : LAKE_GROUPS_MAX;
	}
}

static ssize_t put_text(struct gbuf *b, void *buf, size_t size)
{
	ssize_t n;

	if (b->failed) {
		free(b->p);
		return -ENOMEM;
	}
	n = (ssize_t)b->n;
	if (size) {
		if (b->n > size)
			n = -ERANGE;
		else if (b->n)
			memcpy(buf, b->p, b->n);
	}
	free(b->p);
	return n;
}

static ssize_t privileges_text(struct lake *l, struct lake_who *w, uint64_t ino,
			       void *buf, size_t size)
{
	struct acc_node *chain[CHAIN_MAX];
	struct gbuf b = { 0 };
	uint64_t sec;
	unsigned p = 0;
	int self, n, path_ok, err;
	char t[64];

	if ((err = place_of(l, ino, &sec, &self)) < 0)
		return err == -ENOENT ? -ENODATA : err;
	pthread_rwlock_rdlock(&l->acc->lock);
	if ((err = chain_of(l, sec, chain, &n)) == 0) {
		p = chain_privs(l, w, chain, n, &path_ok);
		if (!path_ok)
			p = 0;
	}
	pthread_rwlock_unlock(&l->acc->lock);
	if (err < 0)
		return err;
	privs_text(p, t, sizeof(t));
	gbuf_printf(&b, "%s\n", t);
	return put_text(&b, buf, size);
}

static ssize_t grants_text(struct lake *l, uint64_t ino, void *buf, size_t size)
{
	struct acc_node *chain[CHAIN_MAX];
	struct gbuf b = { 0 };
	char path[512], who[300], t[64];
	int n, err;

	pthread_rwlock_rdlock(&l->acc->lock);
	if ((err = chain_of(l, ino, chain, &n)) < 0) {
		pthread_rwlock_unlock(&l->acc->lock);
		return err;
	}
	path[0] = '\0';
	for (int i = 0; i < n; i++) {
		struct acc_node *nd = chain[i];
		const char *from = i == n - 1 ? "direct" : "inherited";
		size_t o = strlen(path);

		if (i > 0)
			snprintf(path + o, sizeof(path) - o, "/%s", nd->name);
		if (i == 0) {
			principal_text(PT_USER, l->opt.admin_uid, who, sizeof(who));
			gbuf_printf(&b, "/\t%s\tADMIN\t%s\n", who, from);
		} else if (nd->uid != l->opt.admin_uid) {
			principal_text(PT_USER, nd->uid, who, sizeof(who));
			gbuf_printf(&b, "%s\t%s\tOWNER\t%s\n", path, who, from);
		}
		for (size_t k = 0; k < nd->n; k++) {
			principal_text(nd->g[k].type, nd->g[k].id, who, sizeof(who));
			privs_text(nd->g[k].privs, t, sizeof(t));
			gbuf_printf(&b, "%s\t%s\t%s\t%s\n", i ? path : "/", who, t, from);
		}
	}
	pthread_rwlock_unlock(&l->acc->lock);
	return put_text(&b, buf, size);
}

/*
 * The directory at path (from the root, '/'-separated) as the caller may
 * look it up: each directory on the way must let it look names up; a
 * file at the end answers for its directory.
 */
static int resolve(struct lake *l, struct lake_who *w, const char *path, uint64_t *out)
{
	char buf[256], *save = NULL, *tok;
	uint64_t dir = META_ROOT_INO;

	if (path[0] != '/' || strlen(path) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, path);
	for (tok = strtok_r(buf, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
		uint64_t child, sec;
		uint32_t mode;
		int self;

		if (strcmp(tok, ".") == 0 || strcmp(tok, "..") == 0)
			return -EINVAL;
		if (place_of(l, dir, &sec, &self) < 0 ||
		    !decide(l, w, sec, self, LAKE_LOOKUP, NULL))
			return -EACCES;
		if (meta_lookup(l->m, dir, tok, &child, &mode, NULL) < 0)
			return -ENOENT;
		if (!S_ISDIR(mode))
			break;
		dir = child;
	}
	*out = dir;
	return 0;
}

#define GRANTS_XATTR "user.lakefs.grants"
#define PRIVS_XATTR "user.lakefs.privileges"
#define PRIVS_UID_XATTR "user.lakefs.privileges.uid."

int lake_access_setxattr(struct lake *l, struct lake_who *w, uint64_t ino,
			 const char *name, const void *val, size_t len)
{
	int revoke;
	char text[256];
	uint64_t sec;
	int self, err;

	if (strcmp(name, "user.lakefs.grant") == 0)
		revoke = 0;
	else if (strcmp(name, "user.lakefs.revoke") == 0)
		revoke = 1;
	else
		return 1;
	if ((err = place_of(l, ino, &sec, &self)) < 0 || !self) {
		log_info("%s: grants are made on catalogs, schemas, tables, volumes "
			 "and the mount root only", revoke ? "revoke" : "grant");
		return -EINVAL;
	}
	if ((err = lake_check(l, w, ino, LAKE_MANAGE, revoke ? "revoke" : "grant",
			      NULL)) < 0)
		return err;
	if (len == 0 || len >= sizeof(text) || memchr(val, '\0', len))
		return -EINVAL;
	memcpy(text, val, len);
	text[len] = '\0';
	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' '))
		text[--len] = '\0';
	return grant_change(l, w, ino, revoke ? "revoke" : "grant", text, revoke);
}

ssize_t lake_access_getxattr(struct lake *l, struct lake_who *w, uint64_t ino,
			     const char *name, void *buf, size_t size)
{
	uint64_t sec;
	int self, err;

	if (strncmp(name, PRIVS_XATTR ":", strlen(PRIVS_XATTR) + 1) == 0) {
		/* ...:/PATH on any directory: for securables the caller may
		 * not read, where the kernel refuses getxattr itself */
		if ((err = resolve(l, w, name + strlen(PRIVS_XATTR) + 1, &ino)) < 0)
			return err;
		return privileges_text(l, w, ino, buf, size);
	}
	if (strcmp(name, PRIVS_XATTR) == 0)
		return privileges_text(l, w, ino, buf, size);
	if (strncmp(name, PRIVS_UID_XATTR, strlen(PRIVS_UID_XATTR)) == 0) {
		struct lake_who other;
		uint32_t uid;

		if (number(name + strlen(PRIVS_UID_XATTR), &uid) < 0)
			return -ENODATA;
		if (uid != w->uid && (err = lake_check(l, w, ino, LAKE_MANAGE,
						      "getxattr", NULL)) < 0)
			return err;
		who_of_uid(uid, &other);
		return privileges_text(l, &other, ino, buf, size);
	}
	if (strcmp(name, GRANTS_XATTR) != 0)
		return 1;
	if ((err = place_of(l, ino, &sec, &self)) < 0 || !self)
		return -ENODATA;
	if ((err = lake_check(l, w, ino, LAKE_MANAGE, "getxattr", NULL)) < 0)
		return err;
	return grants_text(l, ino, buf, size);
}

/* ---- records written elsewhere ---- */

void lk_acc_forget(struct lake *l, uint64_t ino)
{
	struct acc_node *nd;
	char key[64];
	struct vfs_kv kv = { key, NULL, 0 };

	pthread_rwlock_wrlock(&l->acc->lock);
	if ((nd = node_find(l->acc, ino)) != NULL)
		nd->dead = 1;
	pthread_rwlock_unlock(&l->acc->lock);
	lk_key(key, sizeof(key), "acl", ino);
	vfs_publish(l->v, NULL, 0, &kv, 1);
}

void lk_acc_reload(struct lake *l, uint64_t ino)
{
	struct acc_node *nd, *fresh = NULL;

	/* load under the lock: a grant change in between is not lost */
	pthread_rwlock_wrlock(&l->acc->lock);
	if ((nd = node_find(l->acc, ino)) != NULL && node_load(l, ino, &fresh) == 0) {
		free(nd->g);
		fresh->dead = 0;
		*nd = *fresh;
		free(fresh);
		fresh = NULL;
	}
	pthread_rwlock_unlock(&l->acc->lock);
	node_free(fresh);
}

static int load_sec(void *arg, const char *name, const char *val, size_t len)
{
	struct lake *l = arg;
	struct acc_node *nd;
	uint64_t ino;

	(void)val;
	(void)len;
	if (sscanf(name, "sec/%" SCNx64, &ino) == 1)
		node_get(l, ino, &nd);	/* a damaged one is logged, and refused later */
	return 0;
}

int lk_acc_open(struct lake *l)
{
	struct access *a = calloc(1, sizeof(*a));

	if (!a)
		return -ENOMEM;
	pthread_rwlock_init(&a->lock, NULL);
	pthread_mutex_init(&a->alock, NULL);
	a->afd = -1;
	a->amax = l->opt.audit_max ? l->opt.audit_max : AUDIT_MAX_DEFAULT;
	if (!(a->index = lk_map_new())) {
		free(a);
		return -ENOMEM;
	}
	l->acc = a;
	/* every securable, so that listings know what is held below (a few
	 * hundred bytes each) */
	pthread_rwlock_rdlock(&a->lock);
	node_get(l, META_ROOT_INO, &(struct acc_node *){ NULL });
	meta_scan_kv(l->m, "sec/", load_sec, l);
	pthread_rwlock_unlock(&a->lock);
	if (l->opt.audit_path) {
		if (!(a->apath = strdup(l->opt.audit_path)))
			return -ENOMEM;
		audit_open(a);
	}
	return 0;
}

void lk_acc_close(struct lake *l)
{
	struct access *a = l->acc;

	if (!a)
		return;
	for (size_t i = 0; i < a->n; i++)
		node_free(a->nodes[i]);
	free(a->nodes);
	lk_map_free(a->index);
	if (a->afd >= 0)
		close(a->afd);
	free(a->apath);
	pthread_rwlock_destroy(&a->lock);
	pthread_mutex_destroy(&a->alock);
	free(a);
	l->acc = NULL;
}
