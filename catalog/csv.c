/*
 * catalog/csv.c — a streaming CSV parser for files landed in bronze.
 *
 * What it accepts: RFC 4180 as real exports write it. A field in double
 * quotes may hold the delimiter, CR, LF and "" (one quote). A record ends
 * at LF, CRLF or a lone CR outside quotes. Leniencies: a quote inside an
 * unquoted field is kept as a plain byte (ab"c stays ab"c), and bytes after
 * a closing quote are appended to the field ("ab"c gives abc), as Python's
 * csv module does. Empty lines (nothing between two line ends) are no
 * record. A UTF-8 BOM at the start is skipped.
 *
 * The start: nothing comes out before the first CSV_SNIFF_BYTES (64 KiB) are
 * in, or csv_finish. That sample decides, once:
 *  - whole-file garbage: a UTF-16/32 byte-order mark, or binary data
 *    (text_looks_binary: control bytes counted twice plus invalid UTF-8
 *    over a quarter of the sample), or a full sample without any line end
 *    and without any of , ; \t | -> -EINVAL and csv_error() says why;
 *  - the delimiter when opts.delim is 0: for each of , ; \t | the count
 *    outside quotes (any " toggles) in each of the first 32 records of the
 *    sample (the one cut by the end of a full sample left out); among those
 *    found in the first record, the one whose count equals the first
 *    record's in the most records wins, then the higher count, then the
 *    order , ; \t |. None found: ',' (a one-column file).
 * Header: opts.header 1 (the default) makes the first record the header
 * (csv_header, never rec); 0 none; -1 guesses from the first good record:
 * a header if every field is non-empty, none looks like a number and no two
 * are equal. A header that is bad (over a cap, invalid UTF-8, NUL) makes the
 * whole file unusable: -EINVAL. An empty file has no header and no record;
 * a header-only file a header and no record.
 *
 * Records: every field of a good record is valid UTF-8 without NUL bytes;
 * ragged records (any number of fields) are delivered as they are. recno
 * counts data records from 1, bad ones included; line is where the record
 * starts (LF, CRLF and lone CR each end a line).
 *
 * Bad records and resynchronisation (bad() gets the line, a reason and the
 * first CSV_RAW_CAP bytes of the record as read; parsing goes on):
 *  - invalid UTF-8 or a NUL byte in a field: found when the record ends, so
 *    the next record starts where it would have anyway;
 *  - more than max_fields fields, a field over max_field bytes or a record
 *    over max_record bytes (both counted after unquoting): reported at once;
 *    the rest of the record is skipped up to the next line end outside
 *    quotes (a " toggles), except when the cap was hit inside a quoted field
 *    (most likely a quote that never closes), or a quote met while skipping
 *    runs past max_record bytes: then up to the next line end of any kind;
 *  - a quote still open at the end of input: "unterminated quoted field".
 *
 * Memory: the sample (64 KiB, freed once decided), the record's unquoted
 * bytes (up to max_record), its field spans and the views given to rec (up
 * to max_fields each), the header's copy (up to max_record + max_fields
 * views) and CSV_RAW_CAP for the raw bytes of a bad record. Nothing grows
 * with the size of the file; csv_mem() says what is held.
 *
 * Failure: a callback's non-zero return, -EINVAL and -ENOMEM stop the
 * parser for good (sticky). Not thread-safe; no locking.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog/csv.h"
#include "util/util.h"

#define SNIFF_RECORDS 32
#define BUF_MIN 4096

enum {
	S_FSTART,	/* at the start of a field */
	S_UNQ,		/* in an unquoted field */
	S_Q,		/* in a quoted field */
	S_QQ,		/* a quote inside a quoted field: closing, or "" */
	S_CR,		/* after a CR that ended a line: an LF may follow */
	S_SKIP,		/* skipping a bad record to a line end outside quotes */
	S_SKIPNL,	/* skipping a bad record to any line end */
};

struct fspan {
	size_t off, len;
	int quoted;
};

struct csv_parser {
	struct csv_opts o;
	csv_record_fn rec;
	csv_bad_fn bad;
	void *arg;
	int ret;		/* sticky result, 0 while all is well */
	int finished;
	char delim;
	char err[256];

	int sniffing;		/* still filling the sample */
	unsigned char *sample;
	size_t slen;

	int st;
	int open;		/* a record has begun */
	int skip_inq;		/* S_SKIP: inside quotes */
	size_t skip_qlen;	/* S_SKIP: bytes inside those quotes */
	uint64_t line, rline, recno;

	unsigned char *buf;	/* the record's unquoted bytes */
	size_t blen, bcap;
	size_t fstart;		/* where the current field starts in buf */
	int fquoted;
	struct fspan *fs;
	size_t nf, fcap;
	struct csv_field *view;
	size_t vcap;
	char raw[CSV_RAW_CAP];	/* the record's first bytes as read */
	size_t rawlen;

	int want_header;	/* 1: the next good record is the header; -1: guess */
	struct csv_field *hdr;
	size_t nhdr;
	char *hbuf;
	size_t mem;
};

static int fail(struct csv_parser *p, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct csv_parser *p, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p->err, sizeof(p->err), fmt, ap);
	va_end(ap);
	p->ret = err;
	return err;
}

/* Grow an array (see grow_array()); ENOMEM fails the parse. */
static int grow(struct csv_parser *p, void **pp, size_t *cap, size_t need,
		size_t sz, size_t max)
{
	return grow_array(pp, cap, need, sz, max, &p->mem) < 0 ?
	       fail(p, -ENOMEM, "out of memory") : 0;
}

static void reset_record(struct csv_parser *p)
{
	p->nf = 0;
	p->blen = 0;
	p->fstart = 0;
	p->fquoted = 0;
	p->rawlen = 0;
	p->open = 0;
}

static void raw_add(struct csv_parser *p, const unsigned char *s, size_t n)
{
	size_t k = MIN(n, CSV_RAW_CAP - p->rawlen);

	memcpy(p->raw + p->rawlen, s, k);
	p->rawlen += k;
}

/* The current record is bad: quarantine it (or fail, if it is the header). */
static void report_bad(struct csv_parser *p, const char *why)
{
	int r = 0;

	if (p->want_header == 1) {
		fail(p, -EINVAL, "bad header on line %llu: %s",
		     (unsigned long long)p->rline, why);
		return;
	}
	p->recno++;
	if (p->bad)
		r = p->bad(p->arg, p->rline, why, p->raw, p->rawlen);
	if (r)
		fail(p, r, "stopped by the bad-record callback");
}

/* A cap was hit inside the record: report it and skip the rest. */
static void overflow(struct csv_parser *p, const char *why)
{
	int next = p->st == S_Q ? S_SKIPNL : S_SKIP;

	report_bad(p, why);
	reset_record(p);
	p->st = next;
	p->skip_inq = 0;
	p->skip_qlen = 0;
}

/* Append n bytes of field content; the caller passes at most one byte more
 * than there is room for, so a cap is hit at the same byte however the
 * input is chunked. 0, or -1 when the record was dropped. */
static int put(struct csv_parser *p, const unsigned char *s, size_t n)
{
	size_t froom = p->o.max_field - (p->blen - p->fstart);
	size_t rroom = p->o.max_record - p->blen;
	char why[96];

	if (n > froom || n > rroom) {
		if (froom <= rroom)
			snprintf(why, sizeof(why), "field %zu longer than %zu bytes",
				 p->nf + 1, p->o.max_field);
		else
			snprintf(why, sizeof(why), "record longer than %zu bytes",
				 p->o.max_record);
		overflow(p, why);
		return -1;
	}
	if (grow(p, (void **)&p->buf, &p->bcap, MAX(p->blen + n, (size_t)BUF_MIN), 1,
		 p->o.max_record))
		return -1;
	memcpy(p->buf + p->blen, s, n);
	p->blen += n;
	return 0;
}

static size_t room(const struct csv_parser *p)
{
	return MIN(p->o.max_field - (p->blen - p->fstart), p->o.max_record - p->blen);
}

/* End the current field: 0, or -1 with the reason in why (too many). */
static int end_field(struct csv_parser *p, char *why, size_t whylen)
{
	if (p->nf >= p->o.max_fields) {
		snprintf(why, whylen, "more than %zu fields", p->o.max_fields);
		return -1;
	}
	if (grow(p, (void **)&p->fs, &p->fcap, p->nf + 1, sizeof(*p->fs), p->o.max_fields))
		return -1;
	p->fs[p->nf].off = p->fstart;
	p->fs[p->nf].len = p->blen - p->fstart;
	p->fs[p->nf].quoted = p->fquoted;
	p->nf++;
	p->fstart = p->blen;
	p->fquoted = 0;
	return 0;
}

static int looks_numeric(const char *s, size_t n)
{
	int digits = 0;

	if (!n)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] >= '0' && s[i] <= '9')
			digits++;
		else if (!strchr("+-.eE", s[i]))
			return 0;
	}
	return digits > 0;
}

/* The header guess: every field non-empty, none numeric, all distinct. */
static int guess_header(const struct csv_field *f, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (!f[i].len || looks_numeric(f[i].p, f[i].len))
			return 0;
		for (size_t j = 0; j < i && n <= 256; j++)
			if (f[j].len == f[i].len && !memcmp(f[j].p, f[i].p, f[i].len))
				return 0;
	}
	return n > 0;
}

static void keep_header(struct csv_parser *p, const struct csv_field *f, size_t n)
{
	size_t off = 0;

	p->hbuf = malloc(p->blen + 1);
	p->hdr = calloc(n ? n : 1, sizeof(*p->hdr));
	if (!p->hbuf || !p->hdr) {
		fail(p, -ENOMEM, "out of memory");
		return;
	}
	p->mem += p->blen + 1 + (n ? n : 1) * sizeof(*p->hdr);
	if (p->blen)
		memcpy(p->hbuf, p->buf, p->blen);
	for (size_t i = 0; i < n; i++) {
		p->hdr[i].p = p->hbuf + off;
		p->hdr[i].len = f[i].len;
		p->hdr[i].quoted = f[i].quoted;
		off += f[i].len;
	}
	p->nhdr = n;
}

/* A whole record is in: check it, then hand it out. */
static void end_record(struct csv_parser *p)
{
	static const char empty[1];
	char why[96];
	size_t n = p->nf;
	int r;

	for (size_t i = 0; i < n; i++) {
		const unsigned char *s = p->buf ? p->buf + p->fs[i].off : NULL;
		size_t len = p->fs[i].len;

		if (len && memchr(s, 0, len)) {
			snprintf(why, sizeof(why), "NUL byte in field %zu", i + 1);
			goto bad;
		}
		if (len && utf8_invalid_at(s, len) != len) {
			snprintf(why, sizeof(why), "invalid UTF-8 in field %zu", i + 1);
			goto bad;
		}
	}
	if (grow(p, (void **)&p->view, &p->vcap, n, sizeof(*p->view), p->o.max_fields))
		return;
	for (size_t i = 0; i < n; i++) {
		p->view[i].p = p->buf ? (const char *)p->buf + p->fs[i].off : empty;
		p->view[i].len = p->fs[i].len;
		p->view[i].quoted = p->fs[i].quoted;
	}
	if (p->want_header < 0)
		p->want_header = guess_header(p->view, n);
	if (p->want_header) {
		keep_header(p, p->view, n);
		p->want_header = 0;
		reset_record(p);
		return;
	}
	p->recno++;
	r = p->rec(p->arg, p->recno, p->rline, p->view, n);
	reset_record(p);
	if (r)
		fail(p, r, "stopped by the record callback");
	return;
bad:
	report_bad(p, why);
	reset_record(p);
}

/* A line end (LF or CR) outside quotes ends the record. */
static void end_line(struct csv_parser *p, unsigned char c)
{
	char why[96];

	if (end_field(p, why, sizeof(why)) == 0)
		end_record(p);
	else if (!p->ret) {
		report_bad(p, why);
		reset_record(p);
	}
	if (c == '\n') {
		p->line++;
		p->st = S_FSTART;
	} else {
		p->st = S_CR;
	}
}

/* A delimiter outside quotes ends the field. */
static void end_field_mid(struct csv_parser *p)
{
	char why[96];

	p->st = S_FSTART;
	if (end_field(p, why, sizeof(why)) && !p->ret)
		overflow(p, why);
}

static void step(struct csv_parser *p, unsigned char c)
{
	switch (p->st) {
	case S_CR:
		p->st = S_FSTART;
		p->line++;
		if (c == '\n')
			return;
		/* a lone CR ended the line */
		/* fall through */
	case S_FSTART:
		if (!p->open) {
			if (c == '\n') {
				p->line++;
				return;
			}
			if (c == '\r') {
				p->st = S_CR;
				return;
			}
			p->open = 1;
			p->rline = p->line;
		}
		if (c == '\n' || c == '\r') {
			end_line(p, c);
			return;
		}
		raw_add(p, &c, 1);
		if (c == (unsigned char)p->delim) {
			end_field_mid(p);
		} else if (c == '"') {
			p->fquoted = 1;
			p->st = S_Q;
		} else {
			p->st = S_UNQ;
			put(p, &c, 1);
		}
		return;
	case S_UNQ:
		if (c == '\n' || c == '\r') {
			end_line(p, c);
			return;
		}
		raw_add(p, &c, 1);
		if (c == (unsigned char)p->delim)
			end_field_mid(p);
		else
			put(p, &c, 1);
		return;
	case S_Q:
		raw_add(p, &c, 1);
		if (c == '"') {
			p->st = S_QQ;
			return;
		}
		if (c == '\n')
			p->line++;
		put(p, &c, 1);
		return;
	case S_QQ:
		if (c == '\n' || c == '\r') {
			end_line(p, c);
			return;
		}
		raw_add(p, &c, 1);
		if (c == '"') {
			p->st = S_Q;
			put(p, &c, 1);
		} else if (c == (unsigned char)p->delim) {
			end_field_mid(p);
		} else {
			p->st = S_UNQ;	/* lenient: text after the closing quote */
			put(p, &c, 1);
		}
		return;
	case S_SKIP:
		if (c == '\n')
			p->line++;
		if (p->skip_inq) {
			if (c == '"')
				p->skip_inq = 0;
			else if (++p->skip_qlen > p->o.max_record)
				p->st = S_SKIPNL;
			return;
		}
		if (c == '"') {
			p->skip_inq = 1;
			p->skip_qlen = 0;
		} else if (c == '\n') {
			p->st = S_FSTART;
		} else if (c == '\r') {
			p->st = S_CR;
		}
		return;
	case S_SKIPNL:
		if (c == '\n') {
			p->line++;
			p->st = S_FSTART;
		} else if (c == '\r') {
			p->st = S_CR;
		}
		return;
	}
}

static void run(struct csv_parser *p, const unsigned char *d, size_t n)
{
	size_t i = 0;

	while (i < n && !p->ret) {
		size_t k = 0, lim;

		/* runs of plain bytes go in at once */
		if (p->st == S_UNQ) {
			unsigned char dl = (unsigned char)p->delim;

			while (i + k < n && d[i + k] != dl && d[i + k] != '\n' &&
			       d[i + k] != '\r')
				k++;
		} else if (p->st == S_Q) {
			const unsigned char *q = memchr(d + i, '"', n - i);

			k = q ? (size_t)(q - (d + i)) : n - i;
		} else if (p->st == S_SKIPNL) {
			while (i + k < n && d[i + k] != '\n' && d[i + k] != '\r')
				k++;
			i += k;
			if (i < n)
				step(p, d[i++]);
			continue;
		}
		if (k) {
			lim = room(p);
			if (k > lim)
				k = lim + 1;	/* up to the byte that overflows */
			if (p->st == S_Q)
				for (size_t j = 0; j < k; j++)
					p->line += d[i + j] == '\n';
			raw_add(p, d + i, k);
			put(p, d + i, k);
			i += k;
			continue;
		}
		step(p, d[i++]);
	}
}

/* Count , ; \t | outside quotes per record of the sample; pick one. */
static char sniff(const unsigned char *s, size_t n, int more)
{
	static const char cand[] = ",;\t|";
	size_t cnt[SNIFF_RECORDS][4], cur[4] = { 0 };
	size_t nrec = 0, best = 0, best_cons = 0, best_c0 = 0;
	int inq = 0, started = 0, found = 0;

	for (size_t i = 0; i < n && nrec < SNIFF_RECORDS; i++) {
		unsigned char c = s[i];

		if (c == '"') {
			inq = !inq;
			started = 1;
		} else if (inq) {
			continue;
		} else if (c == '\n' || c == '\r') {
			if (started) {
				memcpy(cnt[nrec++], cur, sizeof(cur));
				memset(cur, 0, sizeof(cur));
				started = 0;
			}
		} else {
			started = 1;
			for (int k = 0; k < 4; k++)
				cur[k] += c == (unsigned char)cand[k];
		}
	}
	if (started && nrec < SNIFF_RECORDS && (!more || nrec == 0))
		memcpy(cnt[nrec++], cur, sizeof(cur));
	for (int k = 0; k < 4; k++) {
		size_t c0, cons = 0;

		if (!nrec || !(c0 = cnt[0][k]))
			continue;
		for (size_t r = 0; r < nrec; r++)
			cons += cnt[r][k] == c0;
		if (!found || cons > best_cons || (cons == best_cons && c0 > best_c0)) {
			found = 1;
			best = (size_t)k;
			best_cons = cons;
			best_c0 = c0;
		}
	}
	return found ? cand[best] : ',';
}

/* The sample is in (full, or the whole input): judge it, then parse it. */
static void decide(struct csv_parser *p, int more)
{
	const unsigned char *s = p->sample;
	size_t n = p->slen;
	char why[200];

	p->sniffing = 0;
	if (n >= 3 && !memcmp(s, "\xef\xbb\xbf", 3)) {
		s += 3;
		n -= 3;
	}
	if (text_looks_binary(s, n, more, why, sizeof(why))) {
		fail(p, -EINVAL, "not a CSV file: %s", why);
		goto out;
	}
	if (more && !memchr(s, '\n', n) && !memchr(s, '\r', n) && !memchr(s, ',', n) &&
	    !memchr(s, ';', n) && !memchr(s, '\t', n) && !memchr(s, '|', n)) {
		fail(p, -EINVAL, "not a CSV file: no line end and no delimiter in the "
		     "first %zu bytes", n);
		goto out;
	}
	if (!p->delim)
		p->delim = sniff(s, n, more);
	run(p, s, n);
out:
	free(p->sample);
	p->sample = NULL;
	p->mem -= p->o.sniff;
}

int csv_new(struct csv_parser **out, const struct csv_opts *o, csv_record_fn rec,
	    csv_bad_fn bad, void *arg)
{
	static const struct csv_opts defaults = CSV_OPTS_INIT;
	struct csv_parser *p;

	*out = NULL;
	if (!o)
		o = &defaults;
	if (!rec || (o->delim && (o->delim == '"' || o->delim == '\n' ||
				  o->delim == '\r' || (unsigned char)o->delim >= 0x80)) ||
	    o->header < -1 || o->header > 1)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->o = *o;
	if (!p->o.max_field)
		p->o.max_field = CSV_MAX_FIELD_DEFAULT;
	if (!p->o.max_record)
		p->o.max_record = CSV_MAX_RECORD_DEFAULT;
	if (!p->o.max_fields)
		p->o.max_fields = CSV_MAX_FIELDS_DEFAULT;
	if (!p->o.sniff)
		p->o.sniff = CSV_SNIFF_BYTES;
	p->rec = rec;
	p->bad = bad;
	p->arg = arg;
	p->delim = o->delim;
	p->want_header = o->header;
	p->line = 1;
	p->sniffing = 1;
	p->sample = malloc(p->o.sniff);
	if (!p->sample) {
		free(p);
		return -ENOMEM;
	}
	p->mem = sizeof(*p) + p->o.sniff;
	*out = p;
	return 0;
}

int csv_feed(struct csv_parser *p, const void *data, size_t n)
{
	const unsigned char *d = data;

	if (p->ret)
		return p->ret;
	if (p->finished)
		return fail(p, -EINVAL, "input fed after its end");
	if (p->sniffing) {
		if (!sample_fill(p->sample, &p->slen, p->o.sniff, &d, &n))
			return 0;
		decide(p, 1);
	}
	if (!p->ret && n)
		run(p, d, n);
	return p->ret;
}

int csv_finish(struct csv_parser *p)
{
	char why[96];

	if (p->ret || p->finished)
		return p->ret;
	if (p->sniffing)
		decide(p, 0);
	p->finished = 1;
	if (p->ret)
		return p->ret;
	switch (p->st) {
	case S_Q:
		report_bad(p, "unterminated quoted field");
		break;
	case S_FSTART:
		if (!p->open)
			break;
		/* the record ended with a delimiter */
		/* fall through */
	case S_UNQ:
	case S_QQ:
		if (end_field(p, why, sizeof(why)) == 0)
			end_record(p);
		else if (!p->ret)
			report_bad(p, why);
		break;
	default:
		break;
	}
	reset_record(p);
	return p->ret;
}

const char *csv_error(const struct csv_parser *p)
{
	return p->err;
}

char csv_delimiter(const struct csv_parser *p)
{
	return p->delim ? p->delim : ',';
}

const struct csv_field *csv_header(const struct csv_parser *p, size_t *n)
{
	*n = p->hdr ? p->nhdr : 0;
	return p->hdr;
}

size_t csv_mem(const struct csv_parser *p)
{
	return p->mem;
}

void csv_free(struct csv_parser *p)
{
	if (!p)
		return;
	free(p->sample);
	free(p->buf);
	free(p->fs);
	free(p->view);
	free(p->hdr);
	free(p->hbuf);
	free(p);
}
