/*
 * catalog/sqlq.h — one gold query: SQLite over lakefs tables, its result as
 * a silver-shaped table (CSV, JSON lines, a schema).
 *
 * The tables a query may name are declared first (sqlq_add_table): each is
 * an SQLite virtual table over a table's canonical CSV (a silver or gold
 * TABLE.csv, typed by its schema) or over a bronze table's raw files (every
 * column text). Names in a query: `silver.T`, `gold.T`, `bronze.T` for the
 * query's own catalog, `CAT.silver.T` (and gold, bronze) for another one;
 * sqlq rewrites the three-part names for SQLite. An authorizer allows only
 * reading declared tables (SELECT, CTEs, functions); anything else — a
 * write, an ATTACH, a PRAGMA, a table not declared — fails the prepare with
 * SQLite's message. The tables a query reads are its dependencies.
 *
 * Pure data work like catalog/ingest.c: nothing here knows of inodes, jobs
 * or FUSE; data comes through ingest_reader, goes out through
 * ingest_writer. One struct sqlq is used by one thread at a time.
 */
#ifndef LAKEFS_CATALOG_SQLQ_H
#define LAKEFS_CATALOG_SQLQ_H

#include <stddef.h>
#include <stdint.h>

#include "catalog/ingest.h"
#include "catalog/types.h"

struct sqlq;

struct sqlq_limits {
	uint64_t timeout_ms;	/* a run's wall time (0: 60000) */
	uint64_t memory;	/* bytes of page cache for sorts and
				 * aggregates, which spill past it (0: 64 MiB) */
	const char *tmp_dir;	/* spill files (NULL: SQLite's default) */
};

/* A table a query may read. */
struct sqlq_table {
	const char *catalog;	/* NULL or "": the query's own catalog */
	const char *layer;	/* "silver", "gold" or "bronze" */
	const char *name;
	/*
	 * silver and gold: the columns and types of the table's CSV (header
	 * first, canonical values, "" the empty string, an empty field null).
	 * bronze: the column names (types ignored: every value is text),
	 * and the files are read as they are (any header names map by name;
	 * columns a file lacks are null).
	 */
	const struct lt_schema *schema;
	/*
	 * The data, opened when a scan starts and closed when it ends (a
	 * query may scan a table several times). silver/gold: one reader
	 * (the CSV). bronze: nfiles readers, one per landed file (CSV or
	 * JSON lines, as catalog/ingest.c detects them; decompression is
	 * not required here).
	 */
	int (*open)(void *arg, size_t i, struct ingest_reader **r);
	void (*close)(void *arg, size_t i, struct ingest_reader *r);
	size_t nfiles;
	void *arg;
};

int sqlq_new(struct sqlq **out, const struct sqlq_limits *lim, char **err);
void sqlq_free(struct sqlq *q);
/*
 * Declare a table; 0, -EEXIST, -EINVAL (a bad name, a catalog named like a
 * layer or main/temp, a silver or gold table without columns), -E2BIG
 * (more than 7 other catalogs: SQLite attaches at most 10 databases),
 * -ENOMEM. A bronze table also has a hidden column _file, the index of the
 * file a row comes from.
 */
int sqlq_add_table(struct sqlq *q, const struct sqlq_table *t);

/*
 * Compile a query. 0; or -EINVAL with *err (malloc'd) being the message,
 * prefixed "line L, column C: " when SQLite gives an offset — a syntax
 * error, an unknown table or column, more than one statement, a statement
 * that is not a read-only query, a table not declared.
 */
int sqlq_prepare(struct sqlq *q, const char *sql, char **err);
/* After a prepare: the tables it reads, as "silver.T", "gold.T",
 * "bronze.T" or "CAT.silver.T", each once, sorted (n strings, owned by q,
 * valid until the next prepare). */
const char *const *sqlq_deps(const struct sqlq *q, size_t *n);
/* After a prepare: the result's columns (names as SQLite gives them). */
size_t sqlq_ncols(const struct sqlq *q);
const char *sqlq_col_name(const struct sqlq *q, size_t i);

struct sqlq_result {
	struct lt_schema schema;	/* column names and types (owned) */
	uint64_t rows;
	uint64_t grouped;	/* rows a scan grouped itself for a GROUP BY or
				 * DISTINCT, instead of SQLite sorting them */
	uint64_t spilled;	/* ... and the bytes it spilled to files */
};

/*
 * Run the prepared query: the CSV (header, then rows in the same canonical
 * text as catalog/ingest.c writes: null an empty field, "" the empty
 * string, RFC 4180 quoting) and the JSON lines go to the writers; the
 * schema's types come from the values (INTEGER INT, REAL FLOAT, TEXT
 * STRING, BLOB STRING as hex; a column mixing INT and FLOAT is FLOAT,
 * anything else mixed is STRING; a column of only nulls is STRING).
 * 0; -ETIMEDOUT past the time limit, -ENOMEM past the memory limit (or a
 * value over the length limit), -EIO from a reader or writer or a corrupt
 * silver/gold CSV, -ENOSPC when spill files fill the disk, -EINVAL for a
 * runtime SQL error; each with *err. Free res with sqlq_result_release.
 */
int sqlq_run(struct sqlq *q, const struct ingest_writer *csv,
	     const struct ingest_writer *jsonl, struct sqlq_result *res, char **err);
void sqlq_result_release(struct sqlq_result *res);

#endif
