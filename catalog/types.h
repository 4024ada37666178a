/*
 * catalog/types.h — column types, value inference, widening, the silver
 * schema (_schema.json) and its evolution per batch.
 *
 * Pure logic: no I/O, no locks, nothing blocks; every function may be
 * called from any thread on objects it does not share. The decision tables
 * (what infers as what, what widens to what, what each mode does) are in
 * the design notes at the top of catalog/types.c.
 */
#ifndef LAKEFS_CATALOG_TYPES_H
#define LAKEFS_CATALOG_TYPES_H

#include <stddef.h>
#include <stdint.h>

struct gbuf;

/* Ordered so that a lower value is never wider than a higher one. */
enum lt_type {
	LT_NULL,		/* no information yet: every value empty */
	LT_BOOL,
	LT_INT,			/* 64-bit signed */
	LT_DECIMAL,		/* exact, up to 38 digits, kept as text */
	LT_FLOAT,		/* IEEE double */
	LT_DATE,		/* YYYY-MM-DD */
	LT_TIMESTAMP,		/* ISO 8601 without a zone */
	LT_TIMESTAMPTZ,		/* ISO 8601 with Z or an offset */
	LT_STRING,
};
#define LT_NTYPES (LT_STRING + 1)

/* What a JSON parser says a value is (lt_infer_json's jtype). */
enum lt_json {
	LT_JSON_NULL,
	LT_JSON_BOOL,		/* s is true or false */
	LT_JSON_NUMBER,		/* s is the number's text */
	LT_JSON_STRING,		/* s is the unescaped string */
	LT_JSON_RAW,		/* s is a nested object or array's JSON text */
};

#define LT_MAX_COLUMNS 4096		/* per schema and per batch */
#define LT_NAME_MAX 255			/* bytes in a column name */
#define LT_DECIMAL_DIGITS 38		/* most digits a DECIMAL keeps */
#define LT_SCHEMA_MAX (16u << 20)	/* largest _schema.json read */
#define LT_RESCUED "_rescued_data"	/* the rescued data column */

/* "INT", "TIMESTAMPTZ", ...; "?" for a value out of range. */
const char *lt_name(enum lt_type t);
/* The inverse, case-insensitive, also taking the aliases BOOL, BIGINT,
 * INTEGER, DOUBLE, TIMESTAMP_NTZ, TEXT and VARCHAR; 0 or -EINVAL. */
int lt_parse_name(const char *s, enum lt_type *out);

/* The narrowest type of one text value (a CSV field); s need not be
 * NUL-terminated. The empty value is LT_NULL. */
enum lt_type lt_infer(const char *s, size_t n);
/* The same for a value a JSON parser typed (enum lt_json). */
enum lt_type lt_infer_json(int jtype, const char *s, size_t n);

/* The narrowest type holding every value of both (symmetric, associative,
 * LT_NULL the identity, LT_STRING absorbing). */
enum lt_type lt_widen(enum lt_type a, enum lt_type b);

/* Whether a value can be stored in a column of type col unchanged in
 * meaning: lt_widen(col, lt_infer(s)) == col. The empty value (null)
 * fits every column. */
int lt_fits(enum lt_type col, const char *s, size_t n);
int lt_fits_json(enum lt_type col, int jtype, const char *s, size_t n);

/*
 * Append to out the canonical text of a value in a column of type t, the
 * text silver's CSV and JSON lines carry. The empty value appends nothing
 * (the writer emits null). 0, -EINVAL if the value does not fit (out is
 * untouched), -ENOMEM.
 */
int lt_normalize(enum lt_type t, const char *s, size_t n, struct gbuf *out);

/* Append s as a JSON string: quotes, escapes, invalid UTF-8 as U+FFFD. */
void lt_json_quote(struct gbuf *out, const char *s, size_t n);

/* ---- schema ---- */

struct lt_column {
	char *name;		/* owned; clean (lt_column_name_ok) and unique */
	enum lt_type type;
	uint32_t added_in;	/* the schema version that added it */
	int nullable;
};

/* Zero-initialised is the empty schema (version 0, no columns). */
struct lt_schema {
	struct lt_column *cols;	/* owned */
	size_t n;
	uint32_t version;
	int has_rescued;	/* rows carry a _rescued_data column last */
};

void lt_schema_free(struct lt_schema *s);
/* dst becomes a deep copy of src (dst is overwritten, not freed);
 * 0 or -ENOMEM (dst then empty). */
int lt_schema_copy(struct lt_schema *dst, const struct lt_schema *src);
/* The column named name: an exact match first, then one that differs in
 * ASCII case only; its index or -1. */
int lt_schema_find(const struct lt_schema *s, const char *name);

/* _schema.json, pretty and in a stable order; 0 or -ENOMEM. */
int lt_schema_to_json(const struct lt_schema *s, struct gbuf *out);
/*
 * Parse _schema.json text (exactly the format above, keys in any order;
 * anything else is refused) into out, which the caller frees with
 * lt_schema_free. 0; -EINVAL with *err (malloc'd, caller frees; err may
 * be NULL) saying where and what; -ENOMEM.
 */
int lt_schema_from_json(const char *text, size_t n, struct lt_schema *out,
			char **err);

/* ---- column names ---- */

/*
 * Clean one header name into fixed (cap bytes, NUL-terminated): trim
 * ASCII white space and a leading UTF-8 BOM, control characters and
 * invalid UTF-8 bytes become '_', cut at LT_NAME_MAX bytes on a character
 * boundary. 0 if the name was clean as given, 1 if fixed differs, -EINVAL
 * if nothing is left (the caller names it by position), -ENAMETOOLONG if
 * cap is too small.
 */
int lt_column_name_ok(const char *name, size_t n, char *fixed, size_t cap);
/*
 * A batch's column names from its header (or a JSON batch's keys in order
 * of first appearance): each cleaned, an empty one named _cI by its
 * 0-based position, a name equal to an earlier one or to _rescued_data
 * (ignoring ASCII case) suffixed _2, _3, ... *out is an array of n
 * malloc'd names (free with lt_names_free). 0, -E2BIG above
 * LT_MAX_COLUMNS, -ENOMEM.
 */
int lt_header_names(const char *const *raw, const size_t *lens, size_t n,
		    char ***out);
void lt_names_free(char **names, size_t n);

/* ---- evolution ---- */

enum lt_mode {
	LT_ADD_NEW_COLUMNS,	/* the default */
	LT_RESCUE,
	LT_FAIL_ON_NEW_COLUMNS,
	LT_NONE,
};
/* addNewColumns|rescue|failOnNewColumns|none, exactly; 0 or -EINVAL. */
int lt_mode_parse(const char *s, enum lt_mode *out);
const char *lt_mode_name(enum lt_mode m);

#define LT_TARGET_RESCUE (-1)	/* the value goes into _rescued_data */
#define LT_TARGET_DROP (-2)	/* the value is not kept */

struct lt_evolution {
	struct lt_schema schema;	/* the schema after the batch (owned) */
	int *target;			/* per batch column: index in schema,
					   LT_TARGET_RESCUE or LT_TARGET_DROP */
	size_t nb;
	char **changes;			/* one JSON object per schema change */
	size_t nchanges;
	char *reason;			/* non-NULL: quarantine the batch */
};

/*
 * Decide what one batch does to the schema cur under mode. batch_cols are
 * the batch's column names in order (as lt_header_names makes them),
 * batch_types the type each inferred over the whole batch.
 *
 * Returns 0 with ev filled, or -EINVAL (a NULL pointer, a bad mode or
 * type) / -ENOMEM with ev empty. With 0, ev->reason non-NULL means the
 * batch must be quarantined for that reason; ev->schema is then cur
 * unchanged and every target is LT_TARGET_DROP. Otherwise ev->schema's
 * version is cur's + 1 exactly when nchanges > 0.
 *
 * Per row the caller still checks each value with lt_fits against its
 * target column: one that does not fit goes to _rescued_data in rescue
 * mode and is written as null in none mode (it cannot happen in the other
 * two). ev is released with lt_evolution_release.
 */
int lt_evolve(const struct lt_schema *cur, enum lt_mode mode,
	      const char *const *batch_cols, const enum lt_type *batch_types,
	      size_t nb, struct lt_evolution *ev);
void lt_evolution_release(struct lt_evolution *ev);
/* ev's changes as one JSON array, for a _history.jsonl line; 0, -ENOMEM. */
int lt_evolution_changes_json(const struct lt_evolution *ev, struct gbuf *out);

/*
 * The _rescued_data value of one row: a JSON object of names[i] to
 * vals[i] (lens[i] bytes) as JSON strings, a NULL vals[i] as null, in the
 * order given. n == 0 gives {} (a writer stores null instead). 0, -ENOMEM.
 */
int lt_rescued_json(const char *const *names, const char *const *vals,
		    const size_t *lens, size_t n, struct gbuf *out);

#endif
