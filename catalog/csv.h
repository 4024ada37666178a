/*
 * catalog/csv.h — a streaming CSV parser for files landed in bronze.
 *
 * Push-based: the caller feeds chunks of any size (csv_feed), then calls
 * csv_finish; records come out through callbacks, good ones to rec, bad ones
 * (to quarantine) to bad. The rules (sniffing, header, resynchronisation,
 * limits) are written at the top of catalog/csv.c.
 *
 * Nothing here blocks or keeps a pointer to what is fed. One parser is used
 * by one thread at a time.
 */
#ifndef LAKEFS_CATALOG_CSV_H
#define LAKEFS_CATALOG_CSV_H

#include <stddef.h>
#include <stdint.h>

struct csv_parser;

#define CSV_MAX_FIELD_DEFAULT	(1u << 20)
#define CSV_MAX_RECORD_DEFAULT	(8u << 20)
#define CSV_MAX_FIELDS_DEFAULT	4096u
#define CSV_RAW_CAP		4096u	/* bytes of a bad record passed to bad() */
#define CSV_SNIFF_BYTES		65536u	/* the start examined before any record */

struct csv_opts {
	char delim;		/* 0: sniff among , ; \t | from the first records */
	int header;		/* 1: the first record is the header, 0: none,
				 * -1: guess (see catalog/csv.c) */
	size_t max_field;	/* bytes; 0: CSV_MAX_FIELD_DEFAULT (1 MiB) */
	size_t max_record;	/* bytes; 0: CSV_MAX_RECORD_DEFAULT (8 MiB) */
	size_t max_fields;	/* 0: CSV_MAX_FIELDS_DEFAULT (4096) */
	size_t sniff;		/* bytes judged before any record comes out;
				 * 0: CSV_SNIFF_BYTES (smaller for tests) */
};
/* The defaults; a NULL opts to csv_new() means the same. */
#define CSV_OPTS_INIT { .delim = 0, .header = 1 }

struct csv_field {
	const char *p;		/* unquoted, unescaped bytes, valid UTF-8, no NUL */
	size_t len;
	int quoted;		/* the field was in quotes ("" is empty but quoted) */
};

/*
 * A good data record: recno counts data records from 1 (bad ones too, not
 * the header), line is the line it starts on (from 1). The fields are valid
 * until the callback returns. Return non-zero to stop the parser.
 */
typedef int (*csv_record_fn)(void *arg, uint64_t recno, uint64_t line,
			     const struct csv_field *f, size_t n);
/*
 * A bad record, to quarantine: reason is a short English phrase, raw its
 * first bytes as read (at most CSV_RAW_CAP). Return non-zero to stop.
 */
typedef int (*csv_bad_fn)(void *arg, uint64_t line, const char *reason,
			  const char *raw, size_t rawlen);

/* 0 or -ENOMEM / -EINVAL (a delimiter other than , ; \t |, or no rec). bad
 * may be NULL (bad records are then dropped). */
int csv_new(struct csv_parser **out, const struct csv_opts *o, csv_record_fn rec,
	    csv_bad_fn bad, void *arg);
/*
 * Feed the next n bytes. Returns 0; -EINVAL when the whole input is unusable
 * (binary data, UTF-16, no CSV structure, a bad header) with csv_error()
 * saying why; -ENOMEM; or the non-zero value a callback returned to stop.
 * Any non-zero result is sticky: later calls return it again.
 */
int csv_feed(struct csv_parser *p, const void *data, size_t n);
/* End of input: flush the last record (with or without a final newline).
 * Returns as csv_feed. */
int csv_finish(struct csv_parser *p);
/* Why the last call failed ("" if it did not); owned by the parser. */
const char *csv_error(const struct csv_parser *p);
/* The delimiter in use (after sniffing; ',' before it or for one column). */
char csv_delimiter(const struct csv_parser *p);
/* The header's fields (owned by the parser, valid until csv_free), or NULL
 * with *n = 0 when there is none (yet). */
const struct csv_field *csv_header(const struct csv_parser *p, size_t *n);
/* Bytes the parser holds on the heap now (for the memory-bound test). */
size_t csv_mem(const struct csv_parser *p);
void csv_free(struct csv_parser *p);

#endif
