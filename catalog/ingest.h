/*
 * catalog/ingest.h — one bronze batch through the silver transform.
 *
 * Pure data work: a batch's bytes come in through a reader, the silver
 * table's rows, its quarantine and its figures go out through writers.
 * Nothing here knows of inodes, locks, jobs or FUSE (catalog/lake.c owns
 * those and publishes what this module wrote as one new version). May run
 * on any thread; two runs share nothing. A run may start one worker thread
 * of its own, but calls every reader, writer and begin() on the caller's
 * thread.
 *
 * What a run does (the rules in full are the design notes of ingest.c):
 *   1. decompress (.gz, .zst by name or magic), detect the format (the
 *      table's `format`, else the name, else the content), reject binary
 *      garbage as a whole-batch quarantine;
 *   2. pass 1: parse, name the columns, infer each column's type over the
 *      whole batch, count bad records;
 *   3. evolve the table's schema under its mode (catalog/types.h);
 *      failOnNewColumns may quarantine the batch here;
 *   4. pass 2: parse again, fit every value to its column (rescue or null
 *      per mode), evaluate expectations (SQLite), and emit rows: appended
 *      to the table, or — when the schema change or a key needs it — the
 *      whole table rewritten from the current silver CSV plus the batch
 *      (an upsert by key; rows matching delete_when delete).
 * Memory does not grow with the batch or the table: parsers stream, and
 * the upsert merge runs in an SQLite temporary database that spills to
 * disk.
 */
#ifndef LAKEFS_CATALOG_INGEST_H
#define LAKEFS_CATALOG_INGEST_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "catalog/types.h"

/* A byte stream that can be read more than once (pread-like). */
struct ingest_reader {
	void *arg;
	/* up to n bytes at off; 0 at the end; -errno */
	ssize_t (*pread)(void *arg, void *buf, size_t n, uint64_t off);
	uint64_t size;
};

/* An append-only byte sink; returns 0 or -errno. */
struct ingest_writer {
	void *arg;
	int (*write)(void *arg, const void *buf, size_t n);
};

enum ingest_format { IF_AUTO, IF_CSV, IF_JSON, IF_JSONL };
enum ingest_action { IX_WARN, IX_DROP, IX_FAIL };

struct ingest_expect {
	const char *name;	/* [A-Za-z0-9_-]+ */
	const char *expr;	/* an SQLite boolean expression over columns */
	enum ingest_action action;
};

/* The table's properties, as set (inherited) on the bronze table. */
struct ingest_conf {
	const char *src_name;		/* the bronze file's name (no dirs) */
	enum ingest_format format;
	char csv_delim;			/* 0: sniff */
	int csv_header;			/* 1 (default) or 0 */
	enum lt_mode mode;
	const char *const *key;		/* upsert key columns; nkey 0: append */
	size_t nkey;
	const char *sequence_by;	/* NULL: arrival order */
	const char *delete_when;	/* NULL: none */
	const struct ingest_expect *expect;
	size_t nexpect;
	const char *tmp_dir;		/* SQLite spill files; NULL: default */
};

/* The silver table before this batch. */
struct ingest_table {
	const struct lt_schema *schema;	/* version 0, no columns: new table */
	struct ingest_reader *csv;	/* its TABLE.csv; NULL when none yet */
	uint64_t rows;
};

struct ingest_out {
	/*
	 * Called exactly once, before the first byte goes to csv or jsonl,
	 * when the batch is not quarantined as a whole and not empty (an
	 * empty batch, with no column or only bad records, writes nothing to
	 * csv or jsonl and does not call it; its bad records still go to
	 * quarantine). rewrite 1: the writers receive the whole new table
	 * (the CSV's header first); 0: they receive rows to append after the
	 * current files' bytes.
	 */
	int (*begin)(void *arg, int rewrite);
	void *begin_arg;
	/*
	 * Optional: discard every byte written to csv, jsonl and quarantine
	 * since begin(); begin() is then called again. Given, it lets a big
	 * batch infer its types from a sample (see ingest.c).
	 */
	int (*restart)(void *arg);
	struct ingest_writer csv, jsonl;
	/* JSON lines, one per rejected row or batch:
	 * {"line":N,"reason":"...","expectation":"name"|null,"raw":"..."} */
	struct ingest_writer quarantine;

	/* ---- results, filled by ingest_run ---- */
	struct lt_schema schema;	/* the schema after the batch (owned) */
	char *changes;			/* JSON array of schema changes; owned */
	char *expectations;		/* JSON object name -> {"action","failed"}; owned */
	char *batch_reason;		/* non-NULL: the batch as a whole was
					 * quarantined for this reason (owned) */
	char *format;			/* "csv", "json", "jsonl" (owned) */
	int rewrite;			/* what begin() was told */
	uint64_t rows_read;		/* records in the batch */
	uint64_t rows_written;		/* batch rows now in the table */
	uint64_t rows_dropped;		/* by drop expectations */
	uint64_t rows_quarantined;	/* unparseable or unfit rows */
	uint64_t rows_deleted;		/* table rows removed by delete_when */
	uint64_t rows_total;		/* rows in the table afterwards */
};

/*
 * Run one batch. 0: out is filled (possibly with batch_reason set, which
 * is a result, not an error). -errno with *err (malloc'd) on a failure of
 * the machinery itself (a reader or writer error, out of memory, an
 * expectation that does not compile): nothing may be published.
 * Free out's results with ingest_out_release.
 */
int ingest_run(const struct ingest_conf *c, struct ingest_reader *src,
	       const struct ingest_table *cur, struct ingest_out *out,
	       char **err);
void ingest_out_release(struct ingest_out *out);

/* Property checks, for setxattr: 0 or -EINVAL with *err (malloc'd). */
int ingest_check_expr(const char *expr, char **err);
int ingest_format_parse(const char *s, enum ingest_format *out);

#endif
