/*
 * tests/fuzz/fuzz_ingest.c — libFuzzer harness for catalog/ingest.c, the
 * whole silver transform (make fuzz).
 *
 * The first byte picks the options: the format (auto, csv, json, jsonl),
 * the evolution mode, the CSV header, a key (upsert), an expectation; the
 * rest is the batch. Each input runs twice: as a first batch, and as a
 * second batch over the table the first run wrote (so evolution, rewrite
 * and upsert paths see their own output). A result other than 0 or
 * -EINVAL, or JSON lines that are not one per row of the table, aborts.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "catalog/ingest.h"
#include "util/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct mem {
	const uint8_t *p;
	size_t n;
};

static ssize_t mem_pread(void *arg, void *buf, size_t n, uint64_t off)
{
	struct mem *m = arg;

	if (off >= m->n)
		return 0;
	if (n > m->n - off)
		n = m->n - (size_t)off;
	memcpy(buf, m->p + off, n);
	return (ssize_t)n;
}

static int gb_write(void *arg, const void *p, size_t n)
{
	gbuf_add(arg, p, n);
	return ((struct gbuf *)arg)->failed ? -ENOMEM : 0;
}

struct out {
	struct gbuf csv, jsonl, q;
};

static int on_begin(void *arg, int rewrite)
{
	struct out *o = arg;

	if (rewrite)
		o->csv.n = o->jsonl.n = 0;
	return 0;
}

static int on_restart(void *arg)
{
	struct out *o = arg;

	o->csv.n = o->jsonl.n = o->q.n = 0;
	return 0;
}

static size_t lines(const struct gbuf *b)
{
	size_t n = 0;

	for (size_t i = 0; i < b->n; i++)
		n += b->p[i] == '\n';
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const key[] = { "id" };
	struct ingest_expect ex = { "pos", "id > 0", IX_DROP };
	struct ingest_conf c = { 0 };
	struct mem src = { data, size }, cur_csv;
	struct ingest_reader in = { &src, mem_pread, size }, cur_in;
	struct out o = { { 0 }, { 0 }, { 0 } };
	struct ingest_out out;
	struct ingest_table tab = { 0 };
	struct lt_schema schema = { 0 };
	uint8_t sel = size ? data[0] : 0;
	char *err = NULL;

	c.src_name = (sel & 0x80) ? "batch.jsonl" : "batch.csv";
	c.format = (enum ingest_format)(sel & 3);
	c.mode = (enum lt_mode)((sel >> 2) & 3);
	c.csv_header = !(sel & 0x10);
	if (sel & 0x20) {
		c.key = key;
		c.nkey = 1;
	}
	if (sel & 0x40) {
		c.expect = &ex;
		c.nexpect = 1;
	}
	for (int round = 0; round < 2; round++) {
		memset(&out, 0, sizeof(out));
		out.begin = on_begin;
		out.restart = on_restart;
		out.begin_arg = &o;
		out.csv = (struct ingest_writer){ &o.csv, gb_write };
		out.jsonl = (struct ingest_writer){ &o.jsonl, gb_write };
		out.quarantine = (struct ingest_writer){ &o.q, gb_write };
		tab.schema = &schema;
		if (round == 1 && o.csv.n) {
			cur_csv = (struct mem){ o.csv.p, o.csv.n };
			cur_in = (struct ingest_reader){ &cur_csv, mem_pread, o.csv.n };
			tab.csv = &cur_in;
		}
		/* the writers append to the buffers the reader of the old table
		 * reads: give the run a copy of the old CSV */
		if (tab.csv) {
			uint8_t *copy = malloc(o.csv.n ? o.csv.n : 1);

			if (!copy)
				break;
			memcpy(copy, o.csv.p, o.csv.n);
			cur_csv.p = copy;
		}
		int ret = ingest_run(&c, &in, &tab, &out, &err);

		if (tab.csv)
			free((void *)cur_csv.p);
		free(err);
		err = NULL;
		if (ret != 0 && ret != -EINVAL)
			abort();
		if (ret == 0 && !out.batch_reason && o.jsonl.n && lines(&o.jsonl) !=
		    out.rows_total)
			abort();	/* one JSON line per row of the table */
		if (ret == 0) {
			lt_schema_free(&schema);
			if (lt_schema_copy(&schema, &out.schema) < 0)
				abort();
			tab.rows = out.rows_total;
		}
		ingest_out_release(&out);
		if (ret != 0)
			break;
	}
	lt_schema_free(&schema);
	free(o.csv.p);
	free(o.jsonl.p);
	free(o.q.p);
	return 0;
}
