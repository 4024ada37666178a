/*
 * catalog/json.c — a streaming parser for JSON and JSON Lines in bronze.
 *
 * Two layers. A framer, fed byte by byte in chunks of any size, cuts the
 * input into top-level values, tracking only strings (with escapes) and
 * bracket depth; each value, whole in one buffer, then goes through a
 * strict recursive-descent parser (RFC 8259) that yields the fields.
 *
 * Form, decided once from the first JSON_SNIFF_BYTES (64 KiB, or all of a
 * smaller input; nothing comes out before) after a UTF-8 BOM, skipped:
 *  - binary data or a UTF-16/32 byte-order mark (text_looks_binary) ->
 *    -EINVAL, json_error() says why;
 *  - first non-space byte '[' -> an array of objects;
 *  - '{' -> JSON Lines if the first object closes on its first line, or if
 *    the next line's first non-space byte is '{' (a broken first line);
 *    else one (pretty-printed) object, several such objects one after the
 *    other also accepted (as jq prints them);
 *  - anything else -> JSON Lines (that line is a bad record), unless the
 *    sample holds no '{' at all: then -EINVAL (not JSON);
 *  - only spaces, or nothing: no records.
 * JSON Lines: each line (LF; a CR before it is white space) holds one object;
 * blank lines are no record; a bad line is reported and the next line is
 * parsed as usual, which is the whole of resynchronisation.
 *
 * Records: a top-level value that is not an object is a bad record. Keys and
 * string values are unescaped (\u escapes with surrogate pairs to UTF-8);
 * invalid escapes, lone surrogates, \u0000, raw control characters, invalid
 * UTF-8, numbers outside the JSON grammar, nesting deeper than max_depth,
 * more than max_fields members, or anything after the object make the
 * record bad. Nested objects and arrays are kept as compact JSON text (white
 * space outside strings dropped, strings as written). Duplicate keys: the
 * last value wins, at the position of the key's first appearance (what
 * JSON.parse and Python's json do).
 *
 * Resynchronisation in an array: an element runs to the ',' or ']' at
 * bracket depth 0, so a malformed element whose brackets and quotes balance
 * (bad escape, bad number, missing ':') is one bad record and the next
 * element parses. One that does not balance runs on until the end of input
 * (one bad record, "unexpected end of input") or until it passes max_record:
 * then it is reported and bytes are skipped up to the next '}' ',' '{'
 * (white space allowed between), where a new element starts. Bytes after
 * the closing ']' are one bad record. In the single-object form, an object
 * over max_record is reported and bytes are skipped to the next line whose
 * first non-space byte is '{'; stray text between objects is one bad record
 * per run of such lines.
 *
 * Memory: the sample (64 KiB, freed once decided), one record (max_record),
 * its unescaped copy (max_record), the fields (max_fields), a hash table
 * for duplicate keys (4 x the fields, rounded to a power of two) and
 * JSON_RAW_CAP. Nothing grows with the file; json_mem() says what is held.
 * The parser recurses once per nesting level, at most max_depth.
 *
 * Failure: a callback's non-zero return, -EINVAL and -ENOMEM are sticky.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog/json.h"
#include "util/util.h"

enum {
	L_LINE,		/* JSON Lines: in a line */
	L_SKIP,		/* JSON Lines: skipping an over-long line */
	A_OPEN,		/* array: before '[' */
	A_ELEM_START,	/* array: before an element */
	A_ELEM,		/* array: in an element */
	A_END,		/* array: after ']' */
	A_TRAIL,	/* array: data after ']' */
	A_RESYNC,	/* array: looking for } , { after an over-long element */
	D_BETWEEN,	/* objects: between objects */
	D_OBJ,		/* objects: in an object */
	D_BAD,		/* objects: in a line that does not start an object */
};

struct json_parser {
	struct json_opts o;
	json_record_fn rec;
	json_bad_fn bad;
	void *arg;
	int ret, finished;
	char err[256];

	int sniffing;
	unsigned char *sample;
	size_t slen;

	enum json_form form;
	int st;
	uint64_t line, rline, recno;
	unsigned char *rbuf;	/* the top-level value being framed */
	size_t rlen, rcap;
	int in_str, esc, after_comma, rs;
	size_t depth;

	char raw[JSON_RAW_CAP];	/* stray bytes (after ']', between objects) */
	size_t rawlen;
	int badopen, quiet;
	uint64_t badline;

	unsigned char *obuf;	/* unescaped keys and values of a record */
	size_t ocap;
	struct json_field *f;
	size_t fcap;
	uint32_t *ht;
	size_t htcap;
	size_t mem;
};

static int fail(struct json_parser *p, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct json_parser *p, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p->err, sizeof(p->err), fmt, ap);
	va_end(ap);
	p->ret = err;
	return err;
}

/* Grow an array (see grow_array()); ENOMEM fails the parse. */
static int grow(struct json_parser *p, void **pp, size_t *cap, size_t need,
		size_t sz, size_t max)
{
	return grow_array(pp, cap, need, sz, max, &p->mem) < 0 ?
	       fail(p, -ENOMEM, "out of memory") : 0;
}

/* ---- the record parser ------------------------------------------------ */

struct jp {
	const unsigned char *s;
	size_t n, i;
	char *o;
	size_t olen, ocap;
	int maxd;
	char *why;
	size_t whylen;
};

static int jerr(struct jp *j, const char *what)
{
	if (j->i >= j->n)
		snprintf(j->why, j->whylen, "%s: unexpected end of the record", what);
	else
		snprintf(j->why, j->whylen, "%s at byte %zu", what, j->i + 1);
	return -1;
}

static int peek(const struct jp *j)
{
	return j->i < j->n ? j->s[j->i] : -1;
}

static void jws(struct jp *j)
{
	while (j->i < j->n && (j->s[j->i] == ' ' || j->s[j->i] == '\t' ||
			       j->s[j->i] == '\n' || j->s[j->i] == '\r'))
		j->i++;
}

static int oput(struct jp *j, const void *d, size_t k)
{
	if (k > j->ocap - j->olen)
		return jerr(j, "record too large to unescape");
	memcpy(j->o + j->olen, d, k);
	j->olen += k;
	return 0;
}

static int hex4(const unsigned char *s, unsigned *v)
{
	*v = 0;
	for (int k = 0; k < 4; k++) {
		unsigned c = s[k], d;

		if (c >= '0' && c <= '9')
			d = c - '0';
		else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
			d = (c | 0x20) - 'a' + 10;
		else
			return -1;
		*v = *v << 4 | d;
	}
	return 0;
}

static size_t utf8_put(unsigned cp, unsigned char *b)
{
	if (cp < 0x80) {
		b[0] = (unsigned char)cp;
		return 1;
	}
	if (cp < 0x800) {
		b[0] = (unsigned char)(0xc0 | cp >> 6);
		b[1] = (unsigned char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		b[0] = (unsigned char)(0xe0 | cp >> 12);
		b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		b[2] = (unsigned char)(0x80 | (cp & 0x3f));
		return 3;
	}
	b[0] = (unsigned char)(0xf0 | cp >> 18);
	b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
	b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
	b[3] = (unsigned char)(0x80 | (cp & 0x3f));
	return 4;
}

/* A string at '"': unescaped into o (decode), or copied as written. */
static int jstring(struct jp *j, int decode)
{
	const unsigned char *s = j->s;

	j->i++;
	if (!decode && oput(j, "\"", 1))
		return -1;
	for (;;) {
		size_t k = j->i, bad;
		unsigned char c, e;
		unsigned cp, lo;
		unsigned char u[4];
		size_t esc_start;

		while (k < j->n && s[k] != '"' && s[k] != '\\' && s[k] >= 0x20)
			k++;
		if (k > j->i) {
			bad = utf8_invalid_at(s + j->i, k - j->i);
			if (bad != k - j->i) {
				j->i += bad;
				return jerr(j, "invalid UTF-8 in a string");
			}
			if (oput(j, s + j->i, k - j->i))
				return -1;
			j->i = k;
		}
		if (j->i >= j->n)
			return jerr(j, "unterminated string");
		c = s[j->i];
		if (c == '"') {
			j->i++;
			return decode ? 0 : oput(j, "\"", 1);
		}
		if (c < 0x20)
			return jerr(j, "control character in a string");
		esc_start = j->i;
		if (j->i + 1 >= j->n)
			return jerr(j, "unterminated string");
		e = s[j->i + 1];
		switch (e) {
		case '"': case '\\': case '/':
			u[0] = e;
			break;
		case 'b': u[0] = '\b'; break;
		case 'f': u[0] = '\f'; break;
		case 'n': u[0] = '\n'; break;
		case 'r': u[0] = '\r'; break;
		case 't': u[0] = '\t'; break;
		case 'u':
			if (j->n - j->i < 6 || hex4(s + j->i + 2, &cp))
				return jerr(j, "invalid \\u escape");
			if (cp >= 0xdc00 && cp <= 0xdfff)
				return jerr(j, "lone low surrogate in a \\u escape");
			if (cp >= 0xd800 && cp <= 0xdbff) {
				if (j->n - j->i < 12 || s[j->i + 6] != '\\' ||
				    s[j->i + 7] != 'u' || hex4(s + j->i + 8, &lo) ||
				    lo < 0xdc00 || lo > 0xdfff)
					return jerr(j, "lone high surrogate in a \\u escape");
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				j->i += 6;
			}
			if (cp == 0 && decode)
				return jerr(j, "\\u0000 in a string");
			j->i += 6;
			if (decode ? oput(j, u, utf8_put(cp, u)) :
				     oput(j, s + esc_start, j->i - esc_start))
				return -1;
			continue;
		default:
			return jerr(j, "invalid escape in a string");
		}
		j->i += 2;
		if (decode ? oput(j, u, 1) : oput(j, s + esc_start, 2))
			return -1;
	}
}

static int isdig(int c)
{
	return c >= '0' && c <= '9';
}

/* A number per the JSON grammar, copied as written. */
static int jnumber(struct jp *j)
{
	size_t start = j->i;

	if (peek(j) == '-')
		j->i++;
	if (peek(j) == '0')
		j->i++;
	else if (isdig(peek(j)))
		while (isdig(peek(j)))
			j->i++;
	else
		return jerr(j, "invalid number");
	if (peek(j) == '.') {
		j->i++;
		if (!isdig(peek(j)))
			return jerr(j, "invalid number");
		while (isdig(peek(j)))
			j->i++;
	}
	if (peek(j) == 'e' || peek(j) == 'E') {
		j->i++;
		if (peek(j) == '+' || peek(j) == '-')
			j->i++;
		if (!isdig(peek(j)))
			return jerr(j, "invalid number");
		while (isdig(peek(j)))
			j->i++;
	}
	return oput(j, j->s + start, j->i - start);
}

static int jliteral(struct jp *j, const char *word)
{
	size_t k = strlen(word);

	if (j->n - j->i < k || memcmp(j->s + j->i, word, k))
		return jerr(j, "invalid literal");
	j->i += k;
	return oput(j, word, k);
}

static int jcontainer(struct jp *j, int depth);

/* Any value, copied as compact JSON text. */
static int jvalue(struct jp *j, int depth)
{
	switch (peek(j)) {
	case '{':
	case '[':
		return jcontainer(j, depth);
	case '"':
		return jstring(j, 0);
	case 't':
		return jliteral(j, "true");
	case 'f':
		return jliteral(j, "false");
	case 'n':
		return jliteral(j, "null");
	case '-':
	case '0': case '1': case '2': case '3': case '4':
	case '5': case '6': case '7': case '8': case '9':
		return jnumber(j);
	default:
		return jerr(j, "invalid value");
	}
}

/* An object or array at depth, copied as compact JSON text. */
static int jcontainer(struct jp *j, int depth)
{
	int obj = peek(j) == '{';
	char close = obj ? '}' : ']';

	if (depth > j->maxd) {
		snprintf(j->why, j->whylen, "nesting deeper than %d levels", j->maxd);
		return -1;
	}
	if (oput(j, j->s + j->i, 1))
		return -1;
	j->i++;
	jws(j);
	if (peek(j) == close) {
		j->i++;
		return oput(j, &close, 1);
	}
	for (;;) {
		jws(j);
		if (obj) {
			if (peek(j) != '"')
				return jerr(j, "expected a key");
			if (jstring(j, 0))
				return -1;
			jws(j);
			if (peek(j) != ':')
				return jerr(j, "expected ':'");
			j->i++;
			if (oput(j, ":", 1))
				return -1;
			jws(j);
		}
		if (jvalue(j, depth + 1))
			return -1;
		jws(j);
		if (peek(j) == ',') {
			j->i++;
			if (oput(j, ",", 1))
				return -1;
			continue;
		}
		if (peek(j) == close) {
			j->i++;
			return oput(j, &close, 1);
		}
		return jerr(j, obj ? "expected ',' or '}'" : "expected ',' or ']'");
	}
}

/* A whole top-level value: the fields of its object into p->f. */
static int parse_record(struct json_parser *p, const unsigned char *s, size_t n,
			size_t *nf, char *why, size_t whylen)
{
	struct jp j = { .s = s, .n = n, .why = why, .whylen = whylen,
			.maxd = p->o.max_depth };

	*nf = 0;
	if (grow(p, (void **)&p->obuf, &p->ocap, n + 1, 1, p->o.max_record + 1))
		return -1;
	j.o = (char *)p->obuf;
	j.ocap = p->ocap;
	jws(&j);
	if (peek(&j) != '{') {
		snprintf(why, whylen, "top-level value is not an object");
		return -1;
	}
	j.i++;
	jws(&j);
	if (peek(&j) == '}') {
		j.i++;
		goto end;
	}
	for (;;) {
		struct json_field fl;
		size_t at;

		jws(&j);
		if (peek(&j) != '"')
			return jerr(&j, "expected a key");
		at = j.olen;
		if (jstring(&j, 1))
			return -1;
		fl.key = j.o + at;
		fl.klen = j.olen - at;
		jws(&j);
		if (peek(&j) != ':')
			return jerr(&j, "expected ':'");
		j.i++;
		jws(&j);
		at = j.olen;
		switch (peek(&j)) {
		case '"':
			fl.type = JV_STRING;
			if (jstring(&j, 1))
				return -1;
			break;
		case '{':
		case '[':
			fl.type = JV_RAW;
			if (jcontainer(&j, 2))
				return -1;
			break;
		case 't':
		case 'f':
			fl.type = JV_BOOL;
			if (jvalue(&j, 2))
				return -1;
			break;
		case 'n':
			fl.type = JV_NULL;
			if (jvalue(&j, 2))
				return -1;
			break;
		default:
			fl.type = JV_NUMBER;
			if (peek(&j) != '-' && !isdig(peek(&j)))
				return jerr(&j, "invalid value");
			if (jnumber(&j))
				return -1;
			break;
		}
		fl.val = j.o + at;
		fl.vlen = j.olen - at;
		if (*nf >= p->o.max_fields) {
			snprintf(why, whylen, "more than %zu fields", p->o.max_fields);
			return -1;
		}
		if (grow(p, (void **)&p->f, &p->fcap, *nf + 1, sizeof(*p->f), p->o.max_fields))
			return -1;
		p->f[(*nf)++] = fl;
		jws(&j);
		if (peek(&j) == ',') {
			j.i++;
			continue;
		}
		if (peek(&j) == '}') {
			j.i++;
			break;
		}
		return jerr(&j, "expected ',' or '}'");
	}
end:
	jws(&j);
	if (j.i < j.n)
		return jerr(&j, "data after the object");
	return 0;
}

static uint32_t key_hash(const char *k, size_t n)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)k[i]) * 16777619u;
	return h;
}

/* Duplicate keys: the last value wins, at the first key's position. */
static int dedupe(struct json_parser *p, size_t *pn)
{
	size_t n = *pn, size = 16, w = 0;

	if (n < 2)
		return 0;
	while (size < 2 * n)
		size *= 2;
	if (grow(p, (void **)&p->ht, &p->htcap, size, sizeof(*p->ht), size))
		return -1;
	memset(p->ht, 0, size * sizeof(*p->ht));
	for (size_t i = 0; i < n; i++) {
		size_t h = key_hash(p->f[i].key, p->f[i].klen) & (size - 1);

		while (p->ht[h]) {
			struct json_field *o = &p->f[p->ht[h] - 1];

			if (o->klen == p->f[i].klen && !memcmp(o->key, p->f[i].key, o->klen)) {
				o->type = p->f[i].type;
				o->val = p->f[i].val;
				o->vlen = p->f[i].vlen;
				p->f[i].klen = SIZE_MAX;
				break;
			}
			h = (h + 1) & (size - 1);
		}
		if (p->f[i].klen != SIZE_MAX)
			p->ht[h] = (uint32_t)(i + 1);
	}
	for (size_t i = 0; i < n; i++)
		if (p->f[i].klen != SIZE_MAX)
			p->f[w++] = p->f[i];
	*pn = w;
	return 0;
}

static void report_bad(struct json_parser *p, uint64_t line, const char *why,
		       const void *raw, size_t rawlen)
{
	int r = 0;

	p->recno++;
	if (p->bad)
		r = p->bad(p->arg, line, why, raw, MIN(rawlen, (size_t)JSON_RAW_CAP));
	if (r)
		fail(p, r, "stopped by the bad-record callback");
}

/* A whole top-level value is in rbuf: parse it and hand it out. */
static void emit(struct json_parser *p)
{
	char why[128];
	size_t n;
	int r;

	if (parse_record(p, p->rbuf, p->rlen, &n, why, sizeof(why)) ||
	    dedupe(p, &n)) {
		if (!p->ret)
			report_bad(p, p->rline, why, p->rbuf, p->rlen);
		p->rlen = 0;
		return;
	}
	p->recno++;
	r = p->rec(p->arg, p->recno, p->rline, p->f, n);
	if (r)
		fail(p, r, "stopped by the record callback");
	p->rlen = 0;
}

static int is_ws(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Append to rbuf: 0, or -1 when over the cap, rbuf then filled to the cap
 * whatever the chunking (callers pass at most one byte past the cap). */
static int rput(struct json_parser *p, const unsigned char *d, size_t k)
{
	size_t room = p->o.max_record - p->rlen, m = MIN(k, room);

	if (m && grow(p, (void **)&p->rbuf, &p->rcap, MAX(p->rlen + m, (size_t)4096), 1,
		      p->o.max_record))
		return -1;
	if (m)
		memcpy(p->rbuf + p->rlen, d, m);
	p->rlen += m;
	return k > room ? -1 : 0;
}

static void over(struct json_parser *p, const char *what)
{
	char why[96];

	snprintf(why, sizeof(why), "%s longer than %zu bytes", what, p->o.max_record);
	report_bad(p, p->rline, why, p->rbuf, p->rlen);
	p->rlen = 0;
}

static void raw_add(struct json_parser *p, unsigned char c)
{
	if (p->rawlen < JSON_RAW_CAP)
		p->raw[p->rawlen++] = (char)c;
}

static void start_value(struct json_parser *p, int st)
{
	p->st = st;
	p->rline = p->line;
	p->rlen = 0;
	p->in_str = p->esc = 0;
	p->depth = 0;
}

/* Track strings and brackets over one byte of a framed value. */
static void track(struct json_parser *p, unsigned char c)
{
	if (p->in_str) {
		if (p->esc)
			p->esc = 0;
		else if (c == '\\')
			p->esc = 1;
		else if (c == '"')
			p->in_str = 0;
	} else if (c == '"') {
		p->in_str = 1;
	} else if (c == '{' || c == '[') {
		p->depth++;
	} else if ((c == '}' || c == ']') && p->depth) {
		p->depth--;
	}
}

static void frame(struct json_parser *p, const unsigned char *d, size_t n)
{
	size_t i = 0;

	while (i < n && !p->ret) {
		unsigned char c = d[i];

		switch (p->st) {
		case L_LINE: {
			const unsigned char *nl = memchr(d + i, '\n', n - i);
			size_t k = nl ? (size_t)(nl - (d + i)) : n - i;

			if (k) {
				if (!p->rlen)
					p->rline = p->line;
				if (k > p->o.max_record - p->rlen)
					k = p->o.max_record - p->rlen + 1;
				if (rput(p, d + i, k)) {
					if (!p->ret) {
						over(p, "line");
						p->st = L_SKIP;
					}
				}
				i += k;
				continue;
			}
			/* at the end of a line */
			for (k = 0; k < p->rlen && is_ws(p->rbuf[k]); k++)
				;
			if (k < p->rlen) {
				p->rline = p->line;
				emit(p);
			}
			p->rlen = 0;
			break;
		}
		case L_SKIP: {
			const unsigned char *nl = memchr(d + i, '\n', n - i);

			if (!nl) {
				i = n;
				continue;
			}
			i = (size_t)(nl - d);
			p->st = L_LINE;
			continue;	/* the LF, in L_LINE */
		}
		case A_OPEN:
			if (c == '[') {
				p->st = A_ELEM_START;
				p->after_comma = 0;
			}
			break;
		case A_ELEM_START:
			if (is_ws(c))
				break;
			if (c == ']') {
				if (p->after_comma)
					report_bad(p, p->line, "trailing comma before ']'", "]", 1);
				p->st = A_END;
				break;
			}
			if (c == ',') {
				report_bad(p, p->line, "empty array element", ",", 1);
				p->after_comma = 1;
				break;
			}
			start_value(p, A_ELEM);
			continue;	/* the same byte, in the element */
		case A_ELEM:
			if (!p->in_str && !p->depth && (c == ',' || c == ']')) {
				emit(p);
				p->st = c == ',' ? A_ELEM_START : A_END;
				p->after_comma = 1;
				break;
			}
			track(p, c);
			if (rput(p, &c, 1) && !p->ret) {
				over(p, "array element");
				p->st = A_RESYNC;
				p->rs = 0;
			}
			break;
		case A_END:
			if (is_ws(c))
				break;
			p->st = A_TRAIL;
			p->badline = p->line;
			p->rawlen = 0;
			continue;
		case A_TRAIL:
			raw_add(p, c);
			break;
		case A_RESYNC:
			if (p->rs == 0) {
				p->rs = c == '}';
			} else if (p->rs == 1) {
				if (c == ',')
					p->rs = 2;
				else if (!is_ws(c) && c != '}')
					p->rs = 0;
			} else if (c == '{') {
				start_value(p, A_ELEM);
				continue;
			} else if (!is_ws(c)) {
				p->rs = c == '}';
			}
			break;
		case D_BETWEEN:
			if (is_ws(c)) {
				if (p->badopen && !p->quiet)
					raw_add(p, c);
				break;
			}
			if (c == '{') {
				if (p->badopen && !p->quiet)
					report_bad(p, p->badline, "expected '{' at the start of "
						   "a top-level object", p->raw, p->rawlen);
				p->badopen = 0;
				start_value(p, D_OBJ);
				continue;
			}
			if (!p->badopen) {
				p->badopen = 1;
				p->quiet = 0;
				p->badline = p->line;
				p->rawlen = 0;
			}
			p->st = D_BAD;
			continue;
		case D_BAD:
			if (!p->quiet)
				raw_add(p, c);
			if (c == '\n')
				p->st = D_BETWEEN;
			break;
		case D_OBJ:
			track(p, c);
			if (rput(p, &c, 1)) {
				if (!p->ret) {
					over(p, "object");
					p->badopen = 1;
					p->quiet = 1;
					p->st = c == '\n' ? D_BETWEEN : D_BAD;
				}
				break;
			}
			if (!p->depth && !p->in_str) {
				emit(p);
				p->st = D_BETWEEN;
			}
			break;
		}
		if (c == '\n')
			p->line++;
		i++;
	}
}

/* Which form, from the sample s..n (after the BOM). */
static int detect(struct json_parser *p, const unsigned char *s, size_t n, int more)
{
	size_t i = 0, depth = 0;
	int in_str = 0, esc = 0;

	while (i < n && is_ws(s[i]))
		i++;
	if (i == n) {
		p->form = JSON_FORM_LINES;
		return 0;
	}
	if (s[i] == '[') {
		p->form = JSON_FORM_ARRAY;
		return 0;
	}
	if (s[i] != '{') {
		if (!memchr(s, '{', n))
			return fail(p, -EINVAL, "not JSON: no object in the first %zu bytes", n);
		p->form = JSON_FORM_LINES;
		return 0;
	}
	p->form = JSON_FORM_LINES;
	for (; i < n; i++) {
		unsigned char c = s[i];

		if (c == '\n')
			break;
		if (in_str) {
			if (esc)
				esc = 0;
			else if (c == '\\')
				esc = 1;
			else if (c == '"')
				in_str = 0;
		} else if (c == '"') {
			in_str = 1;
		} else if (c == '{' || c == '[') {
			depth++;
		} else if ((c == '}' || c == ']') && depth && !--depth) {
			return 0;	/* closed on its first line */
		}
	}
	if (i == n)
		return 0;	/* one long line, or the end */
	while (i < n && is_ws(s[i]))
		i++;
	if (i < n && s[i] != '{')
		p->form = JSON_FORM_OBJECT;
	else if (i == n && !more)
		p->form = JSON_FORM_OBJECT;
	return 0;
}

static void decide(struct json_parser *p, int more)
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
		fail(p, -EINVAL, "not JSON: %s", why);
		goto out;
	}
	if (detect(p, s, n, more))
		goto out;
	p->st = p->form == JSON_FORM_ARRAY ? A_OPEN :
		p->form == JSON_FORM_OBJECT ? D_BETWEEN : L_LINE;
	frame(p, s, n);
out:
	free(p->sample);
	p->sample = NULL;
	p->mem -= p->o.sniff;
}

int json_new(struct json_parser **out, const struct json_opts *o,
	     json_record_fn rec, json_bad_fn bad, void *arg)
{
	static const struct json_opts defaults = JSON_OPTS_INIT;
	struct json_parser *p;

	*out = NULL;
	if (!o)
		o = &defaults;
	if (!rec)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->o = *o;
	if (!p->o.max_record)
		p->o.max_record = JSON_MAX_RECORD_DEFAULT;
	if (p->o.max_depth <= 0)
		p->o.max_depth = JSON_MAX_DEPTH_DEFAULT;
	if (p->o.max_depth > JSON_MAX_DEPTH_LIMIT)
		p->o.max_depth = JSON_MAX_DEPTH_LIMIT;
	if (!p->o.max_fields)
		p->o.max_fields = JSON_MAX_FIELDS_DEFAULT;
	if (p->o.max_fields > UINT32_MAX / 4)
		p->o.max_fields = UINT32_MAX / 4;
	if (!p->o.sniff)
		p->o.sniff = JSON_SNIFF_BYTES;
	p->rec = rec;
	p->bad = bad;
	p->arg = arg;
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

int json_feed(struct json_parser *p, const void *data, size_t n)
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
		frame(p, d, n);
	return p->ret;
}

int json_finish(struct json_parser *p)
{
	if (p->ret || p->finished)
		return p->ret;
	if (p->sniffing)
		decide(p, 0);
	p->finished = 1;
	if (p->ret)
		return p->ret;
	switch (p->st) {
	case L_LINE:
		for (size_t k = 0; k < p->rlen; k++)
			if (!is_ws(p->rbuf[k])) {
				p->rline = p->line;
				emit(p);
				break;
			}
		break;
	case A_ELEM_START:
		report_bad(p, p->line, "unexpected end of input: the array is not closed",
			   "", 0);
		break;
	case A_ELEM:
		report_bad(p, p->rline, "unexpected end of input in an array element",
			   p->rbuf, p->rlen);
		break;
	case A_TRAIL:
		report_bad(p, p->badline, "data after the end of the array", p->raw,
			   p->rawlen);
		break;
	case D_OBJ:
		report_bad(p, p->rline, "unexpected end of input in an object", p->rbuf,
			   p->rlen);
		break;
	case D_BETWEEN:
	case D_BAD:
		if (p->badopen && !p->quiet)
			report_bad(p, p->badline, "expected '{' at the start of a "
				   "top-level object", p->raw, p->rawlen);
		break;
	default:
		break;
	}
	p->rlen = 0;
	return p->ret;
}

const char *json_error(const struct json_parser *p)
{
	return p->err;
}

enum json_form json_form(const struct json_parser *p)
{
	return p->form;
}

size_t json_mem(const struct json_parser *p)
{
	return p->mem;
}

void json_free(struct json_parser *p)
{
	if (!p)
		return;
	free(p->sample);
	free(p->rbuf);
	free(p->obuf);
	free(p->f);
	free(p->ht);
	free(p);
}
