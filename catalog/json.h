/*
 * catalog/json.h — a streaming parser for JSON and JSON Lines files landed
 * in bronze: an array of objects, one object (or objects one after the
 * other), or JSON Lines. Each top-level object is one record of flat
 * fields; nested objects and arrays come as compact JSON text.
 *
 * Push-based like catalog/csv.h: feed chunks of any size, then finish.
 * The rules (form detection, duplicate keys, resynchronisation, limits) are
 * written at the top of catalog/json.c. Nothing here blocks or keeps a
 * pointer to what is fed; one parser is used by one thread at a time.
 */
#ifndef LAKEFS_CATALOG_JSON_H
#define LAKEFS_CATALOG_JSON_H

#include <stddef.h>
#include <stdint.h>

struct json_parser;

#define JSON_MAX_RECORD_DEFAULT	(8u << 20)
#define JSON_MAX_DEPTH_DEFAULT	64
#define JSON_MAX_DEPTH_LIMIT	1000	/* max_depth is clamped to this */
#define JSON_MAX_FIELDS_DEFAULT	4096u
#define JSON_RAW_CAP		4096u	/* bytes of a bad record passed to bad() */
#define JSON_SNIFF_BYTES	65536u	/* the start examined before any record */

enum json_vtype {
	JV_NULL,	/* val "null" */
	JV_BOOL,	/* val "true" or "false" */
	JV_NUMBER,	/* val the number's text, valid per the JSON grammar */
	JV_STRING,	/* val unescaped: valid UTF-8, no NUL */
	JV_RAW,		/* a nested object or array as compact JSON text */
};

struct json_field {
	const char *key;	/* unescaped: valid UTF-8, no NUL */
	size_t klen;
	enum json_vtype type;
	const char *val;
	size_t vlen;
};

/* A good record (a top-level object): recno counts top-level records from
 * 1, bad ones included; line is where it starts. Fields (in the order of
 * their keys' first appearance) are valid until the callback returns.
 * Return non-zero to stop the parser. */
typedef int (*json_record_fn)(void *arg, uint64_t recno, uint64_t line,
			      const struct json_field *f, size_t n);
/* A bad record, to quarantine: reason is a short English phrase, raw its
 * first bytes (at most JSON_RAW_CAP). Return non-zero to stop. */
typedef int (*json_bad_fn)(void *arg, uint64_t line, const char *reason,
			   const char *raw, size_t rawlen);

struct json_opts {
	size_t max_record;	/* bytes of one top-level value; 0: 8 MiB */
	int max_depth;		/* nesting, the record's object being 1; 0: 64 */
	size_t max_fields;	/* members of a record; 0: 4096 */
	size_t sniff;		/* bytes judged before any record comes out;
				 * 0: JSON_SNIFF_BYTES (smaller for tests) */
};
#define JSON_OPTS_INIT { 0, 0, 0, 0 }

/* 0, -ENOMEM, or -EINVAL (no rec). bad may be NULL (bad records dropped);
 * opts may be NULL (the defaults). */
int json_new(struct json_parser **out, const struct json_opts *o,
	     json_record_fn rec, json_bad_fn bad, void *arg);
/* Feed the next n bytes. 0; -EINVAL when the whole input is unusable
 * (binary, UTF-16, not JSON at all) with json_error() saying why; -ENOMEM;
 * or the non-zero value a callback returned. Non-zero results are sticky. */
int json_feed(struct json_parser *p, const void *data, size_t n);
/* End of input: the last record, and what was left open, comes out. */
int json_finish(struct json_parser *p);
/* Why the last call failed ("" if it did not); owned by the parser. */
const char *json_error(const struct json_parser *p);

enum json_form { JSON_FORM_UNKNOWN, JSON_FORM_ARRAY, JSON_FORM_LINES, JSON_FORM_OBJECT };
/* The form detected (UNKNOWN until the first 64 KiB or the end are in). */
enum json_form json_form(const struct json_parser *p);
/* Bytes the parser holds on the heap now (for the memory-bound test). */
size_t json_mem(const struct json_parser *p);
void json_free(struct json_parser *p);

#endif
