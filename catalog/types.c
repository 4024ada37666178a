/*
 * catalog/types.c — column types, inference, widening, _schema.json and
 * schema evolution for promotion from bronze to silver (Auto Loader's
 * semantics). Pure logic: no I/O, no FUSE, no LevelDB, no shared state.
 *
 * Inference of one text value (lt_infer); the first rule that matches:
 *
 *   ""                                  NULL     (missing; CSV's nullValue)
 *   true/false, any case                BOOL     (yes/no/on/off: STRING;
 *                                                  0/1: INT)
 *   [+-]digits in int64                 INT      ("-0" too; "+5" → 5)
 *   [+-]digits beyond int64, <= 38      DECIMAL  (kept exact)
 *   [+-]d.d, <= 38 digits in all        DECIMAL  ("12.50" keeps its scale)
 *   [+-]d.d, more than 38 digits        FLOAT
 *   an exponent, ".5", "5."             FLOAT    (if finite as a double)
 *   a leading zero ("007", "00.5")      STRING   (identifiers, zip codes)
 *   YYYY-MM-DD, a real calendar day     DATE     (years 0001-9999)
 *   DATE[T ]HH:MM[:SS[.f{1,9}]]         TIMESTAMP
 *   ... followed by Z, ±HH:MM, ±HHMM, ±HH (hours <= 18)   TIMESTAMPTZ
 *   anything else                       STRING
 *
 * Deliberately STRING: surrounding white space (" 12 " — the parser
 * decides about trimming, this module never alters data), hex ("0x10"),
 * NaN/inf/Infinity and numbers that overflow a double (JSON has no text
 * for them; they are mostly sentinels), integers of more than 38 digits
 * (identifiers; precision of Delta's DECIMAL(38)), "null"/"NA" (only the
 * empty value is missing), 'T' in lower case, leap seconds, 24:00.
 *
 * JSON values (lt_infer_json): null → NULL; true/false → BOOL; a number
 * → INT/DECIMAL/FLOAT by the rules above (STRING only when those refuse
 * it, e.g. 50 digits); a string "" → NULL (as Spark's JSON inference); a
 * string that reads as DATE/TIMESTAMP/TIMESTAMPTZ → that type, but never
 * BOOL or a number: "123" was quoted on purpose; nested → STRING (its
 * JSON text).
 *
 * Widening (lt_widen), symmetric; NULL is the bottom, STRING the top:
 *
 *             NULL  BOOL  INT   DEC   FLOAT DATE  TS    TSTZ  STR
 *   NULL      NULL  BOOL  INT   DEC   FLOAT DATE  TS    TSTZ  STR
 *   BOOL            BOOL  STR   STR   STR   STR   STR   STR   STR
 *   INT                   INT   DEC   FLOAT STR   STR   STR   STR
 *   DECIMAL                     DEC   FLOAT STR   STR   STR   STR
 *   FLOAT                             FLOAT STR   STR   STR   STR
 *   DATE                                    DATE  TS    STR   STR
 *   TIMESTAMP                                     TS    STR   STR
 *   TIMESTAMPTZ                                         TSTZ  STR
 *   STRING                                                    STR
 *
 * A DATE in a TIMESTAMP column is its midnight. A naive timestamp never
 * joins a zoned one: giving it a zone would invent information, so the
 * column becomes STRING and keeps every value exactly. A FLOAT column
 * keeps INT and DECIMAL values as their exact digits.
 *
 * Canonical text (lt_normalize): BOOL true/false; INT and DECIMAL without
 * '+' and without the sign of a zero, digits and scale as given; FLOAT
 * values that are INT/DECIMAL text stay so, others become the shortest of
 * %.15g/%.16g/%.17g that reads back to the same double ("1e3" → "1000",
 * ".5" → "0.5"); DATE as given; TIMESTAMP(TZ) as YYYY-MM-DDTHH:MM:SS,
 * the fraction as given, then Z or ±HH:MM; STRING as given. Normalizing
 * canonical text again gives the same text.
 *
 * Column names (lt_column_name_ok, lt_header_names): trim, drop a BOM,
 * control bytes and invalid UTF-8 to '_', keep all other UTF-8; empty →
 * _c<position>; duplicates ignoring ASCII case → _2, _3 (the first keeps
 * its name); _rescued_data is reserved. A batch column matches a schema
 * column by exact name, else by ASCII-case-insensitive name (the schema
 * keeps its first spelling). Two schema names never differ only in case.
 *
 * Evolution (lt_evolve) per batch column, by mode:
 *
 *                   new column        type must widen      column not in batch
 *   addNewColumns   added (change)    widened (change)     null in its rows
 *   rescue          → _rescued_data   kept; misfits →      null
 *                                     _rescued_data
 *   failOnNewCols   quarantine        quarantine           null
 *   none            dropped           kept; misfits null   null
 *
 * - The first batch of an empty schema (no columns) sets the columns in
 *   every mode, as Auto Loader infers the initial schema whatever the
 *   mode; rescue mode also adds _rescued_data (a change) whenever it is
 *   missing.
 * - A column whose type is still NULL takes the first real type in every
 *   mode (recorded): it holds only nulls, so nothing stored changes.
 * - failOnNewColumns freezes the schema: a needed type change quarantines
 *   the batch as a new column does, so consumers of such a table never
 *   see a type change they did not make. rescue and none never change an
 *   existing column's type (Auto Loader's rescue and none do not evolve).
 * - Quarantine also for data that no mode can place: an empty, unclean,
 *   reserved or duplicated column name (lt_header_names makes none of
 *   these), or more than LT_MAX_COLUMNS columns.
 * - Every column is nullable (older rows read null for later columns).
 * Changes are JSON objects: {"added":"c","type":"INT"},
 * {"widened":"c","from":"INT","to":"FLOAT"},
 * {"rescued_data_column":"_rescued_data"}.
 *
 * _schema.json: {"version":N, "columns":[{"name","type","nullable",
 * "added_in"}...], "rescued_data_column":"_rescued_data"|null}. The
 * reader takes exactly these keys (any order, each once), refuses unknown
 * keys, bad types, added_in > version, unclean or duplicate names, and
 * trailing bytes, and stops at LT_SCHEMA_MAX bytes and LT_MAX_COLUMNS.
 *
 * Not done here: locale formats (1,5 or 02/01/2024), time zone names,
 * dates in other layouts, per-column null counts (the caller knows them).
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "catalog/types.h"
#include "util/util.h"

static const char *const type_names[LT_NTYPES] = {
	[LT_NULL] = "NULL", [LT_BOOL] = "BOOLEAN", [LT_INT] = "INT",
	[LT_DECIMAL] = "DECIMAL", [LT_FLOAT] = "FLOAT", [LT_DATE] = "DATE",
	[LT_TIMESTAMP] = "TIMESTAMP", [LT_TIMESTAMPTZ] = "TIMESTAMPTZ",
	[LT_STRING] = "STRING",
};

static const struct {
	const char *name;
	enum lt_type t;
} type_aliases[] = {
	{ "BOOL", LT_BOOL }, { "BIGINT", LT_INT }, { "INTEGER", LT_INT },
	{ "DOUBLE", LT_FLOAT }, { "TIMESTAMP_NTZ", LT_TIMESTAMP },
	{ "TEXT", LT_STRING }, { "VARCHAR", LT_STRING },
};

const char *lt_name(enum lt_type t)
{
	return (unsigned)t < LT_NTYPES ? type_names[t] : "?";
}

int lt_parse_name(const char *s, enum lt_type *out)
{
	if (!s)
		return -EINVAL;
	for (int i = 0; i < LT_NTYPES; i++)
		if (strcasecmp(s, type_names[i]) == 0) {
			*out = (enum lt_type)i;
			return 0;
		}
	for (size_t i = 0; i < ARRAY_SIZE(type_aliases); i++)
		if (strcasecmp(s, type_aliases[i].name) == 0) {
			*out = type_aliases[i].t;
			return 0;
		}
	return -EINVAL;
}

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* ---- numbers ---- */

enum { NUM_NO, NUM_INT, NUM_DEC, NUM_FLOAT };

struct num {
	char sign;		/* 0, '+' or '-' */
	const char *ip, *fp;	/* integral and fractional digits */
	size_t il, fl;
	int dot, exp;
};

#define FLOAT_TEXT_MAX 127

static int finite_double(const char *s, size_t n, double *out)
{
	char buf[FLOAT_TEXT_MAX + 1], *end;
	double d;

	if (n > FLOAT_TEXT_MAX)
		return 0;
	memcpy(buf, s, n);
	buf[n] = '\0';
	errno = 0;
	d = strtod(buf, &end);
	if (end != buf + n || isinf(d) || isnan(d))
		return 0;
	*out = d;
	return 1;
}

static int num_scan(const char *s, size_t n, struct num *nm)
{
	size_t i = 0, el = 0;
	double d;

	memset(nm, 0, sizeof(*nm));
	if (i < n && (s[i] == '+' || s[i] == '-'))
		nm->sign = s[i++];
	nm->ip = s + i;
	while (i < n && is_digit(s[i]))
		i++;
	nm->il = (size_t)(s + i - nm->ip);
	if (i < n && s[i] == '.') {
		nm->dot = 1;
		nm->fp = s + ++i;
		while (i < n && is_digit(s[i]))
			i++;
		nm->fl = (size_t)(s + i - nm->fp);
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		nm->exp = 1;
		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		while (i < n && is_digit(s[i])) {
			i++;
			el++;
		}
		if (!el)
			return NUM_NO;
	}
	if (i != n || (nm->il == 0 && nm->fl == 0))
		return NUM_NO;
	if (nm->il > 1 && nm->ip[0] == '0')
		return NUM_NO;		/* "007": an identifier */
	if (!nm->exp && nm->il && !nm->dot) {
		if (nm->il < 19 || (nm->il == 19 &&
		    memcmp(nm->ip, nm->sign == '-' ? "9223372036854775808" :
			   "9223372036854775807", 19) <= 0))
			return NUM_INT;
		return nm->il <= LT_DECIMAL_DIGITS ? NUM_DEC : NUM_NO;
	}
	if (!nm->exp && nm->il && nm->fl && nm->il + nm->fl <= LT_DECIMAL_DIGITS)
		return NUM_DEC;
	return finite_double(s, n, &d) ? NUM_FLOAT : NUM_NO;
}

/* INT/DECIMAL text without '+' and without the sign of a zero. */
static void num_canon(const struct num *nm, struct gbuf *out)
{
	int zero = 1;

	for (size_t i = 0; i < nm->il && zero; i++)
		zero = nm->ip[i] == '0';
	for (size_t i = 0; i < nm->fl && zero; i++)
		zero = nm->fp[i] == '0';
	if (nm->sign == '-' && !zero)
		gbuf_add(out, "-", 1);
	gbuf_add(out, nm->ip, nm->il);
	if (nm->dot) {
		gbuf_add(out, ".", 1);
		gbuf_add(out, nm->fp, nm->fl);
	}
}

static void float_canon(const char *s, size_t n, struct gbuf *out)
{
	char buf[64];
	double d = 0, back;

	finite_double(s, n, &d);
	if (d == 0)
		d = 0;		/* no negative zero, as for INT and DECIMAL */
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(buf, sizeof(buf), "%.*g", prec, d);
		back = strtod(buf, NULL);
		if (back == d)
			break;
	}
	gbuf_add(out, buf, strlen(buf));
}

/* ---- dates and timestamps ---- */

struct ts {
	const char *s;
	int has_time, has_sec;
	size_t frac_at, frac_len;	/* the digits after '.' */
	size_t zone_at, zone_len;	/* 'Z' or the offset text */
};

static int num2(const char *p, int *v)
{
	if (!is_digit(p[0]) || !is_digit(p[1]))
		return 0;
	*v = (p[0] - '0') * 10 + (p[1] - '0');
	return 1;
}

static int valid_date(const char *s, size_t n)
{
	static const int mdays[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int y1, y2, m, d, y, dim;

	if (n < 10 || s[4] != '-' || s[7] != '-' || !num2(s, &y1) ||
	    !num2(s + 2, &y2) || !num2(s + 5, &m) || !num2(s + 8, &d))
		return 0;
	y = y1 * 100 + y2;
	if (y < 1 || m < 1 || m > 12 || d < 1)
		return 0;
	dim = mdays[m - 1];
	if (m == 2 && y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))
		dim = 29;
	return d <= dim;
}

/* DATE, TIMESTAMP or TIMESTAMPTZ with ts filled, or LT_STRING. */
static enum lt_type ts_scan(const char *s, size_t n, struct ts *t)
{
	size_t i = 10;
	int hh, mm, ss;

	memset(t, 0, sizeof(*t));
	t->s = s;
	if (!valid_date(s, n))
		return LT_STRING;
	if (n == 10)
		return LT_DATE;
	if (n < 16 || (s[10] != 'T' && s[10] != ' ') || !num2(s + 11, &hh) ||
	    s[13] != ':' || !num2(s + 14, &mm) || hh > 23 || mm > 59)
		return LT_STRING;
	t->has_time = 1;
	i = 16;
	if (i < n && s[i] == ':') {
		if (i + 3 > n || !num2(s + i + 1, &ss) || ss > 59)
			return LT_STRING;
		t->has_sec = 1;
		i += 3;
		if (i < n && s[i] == '.') {
			t->frac_at = ++i;
			while (i < n && is_digit(s[i]))
				i++;
			t->frac_len = i - t->frac_at;
			if (t->frac_len < 1 || t->frac_len > 9)
				return LT_STRING;
		}
	}
	if (i == n)
		return LT_TIMESTAMP;
	t->zone_at = i;
	t->zone_len = n - i;
	if (t->zone_len == 1 && s[i] == 'Z')
		return LT_TIMESTAMPTZ;
	if ((s[i] != '+' && s[i] != '-') || t->zone_len < 3 ||
	    !num2(s + i + 1, &hh) || hh > 18)
		return LT_STRING;
	switch (t->zone_len) {
	case 3:
		return LT_TIMESTAMPTZ;
	case 5:
		return num2(s + i + 3, &mm) && mm <= 59 ? LT_TIMESTAMPTZ : LT_STRING;
	case 6:
		return s[i + 3] == ':' && num2(s + i + 4, &mm) && mm <= 59 ?
			LT_TIMESTAMPTZ : LT_STRING;
	}
	return LT_STRING;
}

static void ts_canon(const struct ts *t, struct gbuf *out)
{
	const char *s = t->s;

	gbuf_add(out, s, 10);
	if (!t->has_time) {
		gbuf_add(out, "T00:00:00", 9);
		return;
	}
	gbuf_add(out, "T", 1);
	gbuf_add(out, s + 11, 5);
	if (t->has_sec)
		gbuf_add(out, s + 16, 3);
	else
		gbuf_add(out, ":00", 3);
	if (t->frac_len) {
		gbuf_add(out, ".", 1);
		gbuf_add(out, s + t->frac_at, t->frac_len);
	}
	if (!t->zone_len)
		return;
	if (t->zone_len == 1) {
		gbuf_add(out, "Z", 1);
		return;
	}
	gbuf_add(out, s + t->zone_at, 3);
	gbuf_add(out, ":", 1);
	if (t->zone_len == 3)
		gbuf_add(out, "00", 2);
	else
		gbuf_add(out, s + t->zone_at + t->zone_len - 2, 2);
}

/* ---- inference ---- */

static int is_bool(const char *s, size_t n)
{
	return (n == 4 && strncasecmp(s, "true", 4) == 0) ||
	       (n == 5 && strncasecmp(s, "false", 5) == 0);
}

static enum lt_type num_type(int k)
{
	switch (k) {
	case NUM_INT:
		return LT_INT;
	case NUM_DEC:
		return LT_DECIMAL;
	case NUM_FLOAT:
		return LT_FLOAT;
	}
	return LT_STRING;
}

enum lt_type lt_infer(const char *s, size_t n)
{
	struct num nm;
	struct ts t;

	if (n == 0)
		return LT_NULL;
	if (is_bool(s, n))
		return LT_BOOL;
	if (n >= 10 && s[4] == '-')
		return ts_scan(s, n, &t);
	return num_type(num_scan(s, n, &nm));
}

enum lt_type lt_infer_json(int jtype, const char *s, size_t n)
{
	struct num nm;
	struct ts t;

	switch (jtype) {
	case LT_JSON_NULL:
		return LT_NULL;
	case LT_JSON_BOOL:
		return is_bool(s, n) ? LT_BOOL : LT_STRING;
	case LT_JSON_NUMBER:
		return num_type(num_scan(s, n, &nm));
	case LT_JSON_STRING:
		if (n == 0)
			return LT_NULL;
		return n >= 10 && s[4] == '-' ? ts_scan(s, n, &t) : LT_STRING;
	}
	return LT_STRING;
}

enum lt_type lt_widen(enum lt_type a, enum lt_type b)
{
	enum lt_type lo = MIN(a, b), hi = MAX(a, b);

	if ((unsigned)lo >= LT_NTYPES || (unsigned)hi >= LT_NTYPES)
		return LT_STRING;
	if (lo == LT_NULL || lo == hi)
		return hi;
	if (lo >= LT_INT && hi <= LT_FLOAT)
		return hi;
	if (lo == LT_DATE && hi == LT_TIMESTAMP)
		return LT_TIMESTAMP;
	return LT_STRING;
}

int lt_fits(enum lt_type col, const char *s, size_t n)
{
	return lt_widen(col, lt_infer(s, n)) == col;
}

int lt_fits_json(enum lt_type col, int jtype, const char *s, size_t n)
{
	return lt_widen(col, lt_infer_json(jtype, s, n)) == col;
}

int lt_normalize(enum lt_type t, const char *s, size_t n, struct gbuf *out)
{
	enum lt_type v = lt_infer(s, n);
	struct num nm;
	struct ts ts;

	if ((unsigned)t >= LT_NTYPES || lt_widen(t, v) != t)
		return -EINVAL;
	if (n == 0)
		return out->failed ? -ENOMEM : 0;
	switch (t) {
	case LT_BOOL:
		gbuf_add(out, (s[0] == 't' || s[0] == 'T') ? "true" : "false",
			 (s[0] == 't' || s[0] == 'T') ? 4 : 5);
		break;
	case LT_INT:
	case LT_DECIMAL:
	case LT_FLOAT:
		if (v == LT_FLOAT) {
			float_canon(s, n, out);
		} else {
			num_scan(s, n, &nm);
			num_canon(&nm, out);
		}
		break;
	case LT_TIMESTAMP:
	case LT_TIMESTAMPTZ:
		ts_scan(s, n, &ts);
		ts_canon(&ts, out);
		break;
	default:		/* DATE, STRING: as given */
		gbuf_add(out, s, n);
		break;
	}
	return out->failed ? -ENOMEM : 0;
}

/* ---- UTF-8 and JSON strings ---- */

/* The length of the valid UTF-8 character at p, or 0. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	uint32_t c;
	size_t len;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2, c = p[0] & 0x1f;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		len = 3, c = p[0] & 0x0f;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		len = 4, c = p[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (p[i] & 0x3f);
	}
	if ((len == 3 && c < 0x800) || (len == 4 && c < 0x10000) ||
	    c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	return len;
}

void lt_json_quote(struct gbuf *out, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, run = 0;

	gbuf_add(out, "\"", 1);
	while (i < n) {
		size_t k = utf8_len(p + i, n - i);
		const char *esc = NULL;
		char u[8];

		if (k == 1 && p[i] >= 0x20 && p[i] != '"' && p[i] != '\\') {
			i++;
			run++;
			continue;
		}
		if (k > 1) {
			i += k;
			run += k;
			continue;
		}
		gbuf_add(out, p + i - run, run);
		run = 0;
		switch (k ? p[i] : 0x100) {
		case '"': esc = "\\\""; break;
		case '\\': esc = "\\\\"; break;
		case '\b': esc = "\\b"; break;
		case '\f': esc = "\\f"; break;
		case '\n': esc = "\\n"; break;
		case '\r': esc = "\\r"; break;
		case '\t': esc = "\\t"; break;
		case 0x100: esc = "\\ufffd"; break;
		default:
			snprintf(u, sizeof(u), "\\u%04x", p[i]);
			esc = u;
		}
		gbuf_add(out, esc, strlen(esc));
		i++;
	}
	gbuf_add(out, p + i - run, run);
	gbuf_add(out, "\"", 1);
}

/* ---- column names ---- */

static int is_space(unsigned char c)
{
	return c == ' ' || (c >= '\t' && c <= '\r');
}

int lt_column_name_ok(const char *name, size_t n, char *fixed, size_t cap)
{
	const unsigned char *p = (const unsigned char *)name;
	size_t b = 0, e = n, o = 0;
	int changed = 0;

	if (n >= 3 && p[0] == 0xef && p[1] == 0xbb && p[2] == 0xbf) {
		b = 3;
		changed = 1;
	}
	while (b < e && is_space(p[b]))
		b++, changed = 1;
	while (e > b && is_space(p[e - 1]))
		e--, changed = 1;
	if (b == e)
		return -EINVAL;
	for (size_t i = b; i < e;) {
		size_t k = utf8_len(p + i, e - i);

		if (o + (k ? k : 1) > LT_NAME_MAX) {
			changed = 1;
			break;
		}
		if (o + (k ? k : 1) + 1 > cap)
			return -ENAMETOOLONG;
		if (k == 0 || (k == 1 && (p[i] < 0x20 || p[i] == 0x7f))) {
			fixed[o++] = '_';
			changed = 1;
			i++;
			continue;
		}
		memcpy(fixed + o, p + i, k);
		o += k;
		i += k;
	}
	fixed[o] = '\0';
	return changed;
}

static uint32_t name_hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		h = (h ^ c) * 16777619u;
	}
	return h;
}

/* An open-addressed set of names, ignoring ASCII case. */
struct nameset {
	const char **slot;
	size_t mask;
};

static int nameset_has(const struct nameset *ns, const char *s)
{
	for (size_t i = name_hash(s) & ns->mask; ns->slot[i]; i = (i + 1) & ns->mask)
		if (strcasecmp(ns->slot[i], s) == 0)
			return 1;
	return 0;
}

static void nameset_add(struct nameset *ns, const char *s)
{
	size_t i = name_hash(s) & ns->mask;

	while (ns->slot[i])
		i = (i + 1) & ns->mask;
	ns->slot[i] = s;
}

void lt_names_free(char **names, size_t n)
{
	if (!names)
		return;
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

int lt_header_names(const char *const *raw, const size_t *lens, size_t n,
		    char ***out)
{
	struct nameset ns = { 0 };
	char **names = NULL, buf[LT_NAME_MAX + 1];
	size_t size = 16;
	int ret = -ENOMEM;

	*out = NULL;
	if (n > LT_MAX_COLUMNS)
		return -E2BIG;
	while (size < 2 * (n + 1))
		size *= 2;
	ns.slot = calloc(size, sizeof(*ns.slot));
	names = calloc(n ? n : 1, sizeof(*names));
	if (!ns.slot || !names)
		goto fail;
	ns.mask = size - 1;
	nameset_add(&ns, LT_RESCUED);
	for (size_t i = 0; i < n; i++) {
		char cand[LT_NAME_MAX + 16];

		if (lt_column_name_ok(raw[i], lens[i], buf, sizeof(buf)) < 0)
			snprintf(buf, sizeof(buf), "_c%zu", i);
		snprintf(cand, sizeof(cand), "%s", buf);
		for (unsigned k = 2; nameset_has(&ns, cand); k++) {
			char sfx[16];
			int sl = snprintf(sfx, sizeof(sfx), "_%u", k);
			size_t keep = strlen(buf);

			/* stay within LT_NAME_MAX, cutting on a boundary */
			while (keep + (size_t)sl > LT_NAME_MAX ||
			       (keep && ((unsigned char)buf[keep] & 0xc0) == 0x80))
				keep--;
			snprintf(cand, sizeof(cand), "%.*s%s", (int)keep, buf, sfx);
		}
		names[i] = strdup(cand);
		if (!names[i])
			goto fail;
		nameset_add(&ns, names[i]);
	}
	free(ns.slot);
	*out = names;
	return 0;
fail:
	free(ns.slot);
	lt_names_free(names, n);
	return ret;
}

/* ---- schema ---- */

void lt_schema_free(struct lt_schema *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++)
		free(s->cols[i].name);
	free(s->cols);
	memset(s, 0, sizeof(*s));
}

int lt_schema_copy(struct lt_schema *dst, const struct lt_schema *src)
{
	memset(dst, 0, sizeof(*dst));
	if (src->n) {
		dst->cols = calloc(src->n, sizeof(*dst->cols));
		if (!dst->cols)
			return -ENOMEM;
	}
	for (size_t i = 0; i < src->n; i++) {
		dst->cols[i] = src->cols[i];
		dst->cols[i].name = strdup(src->cols[i].name);
		dst->n = i + 1;
		if (!dst->cols[i].name) {
			lt_schema_free(dst);
			return -ENOMEM;
		}
	}
	dst->version = src->version;
	dst->has_rescued = src->has_rescued;
	return 0;
}

int lt_schema_find(const struct lt_schema *s, const char *name)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->cols[i].name, name) == 0)
			return (int)i;
	for (size_t i = 0; i < s->n; i++)
		if (strcasecmp(s->cols[i].name, name) == 0)
			return (int)i;
	return -1;
}

int lt_schema_to_json(const struct lt_schema *s, struct gbuf *out)
{
	gbuf_printf(out, "{\n  \"version\": %u,\n  \"columns\": [", s->version);
	for (size_t i = 0; i < s->n; i++) {
		const struct lt_column *c = &s->cols[i];

		gbuf_printf(out, "%s\n    {\"name\": ", i ? "," : "");
		lt_json_quote(out, c->name, strlen(c->name));
		gbuf_printf(out, ", \"type\": \"%s\", \"nullable\": %s, \"added_in\": %u}",
			    lt_name(c->type), c->nullable ? "true" : "false",
			    c->added_in);
	}
	gbuf_printf(out, "%s],\n  \"rescued_data_column\": %s\n}\n",
		    s->n ? "\n  " : "", s->has_rescued ? "\"" LT_RESCUED "\"" : "null");
	return out->failed ? -ENOMEM : 0;
}

/* The reader for exactly the _schema.json format. */
struct jr {
	const char *p, *start, *end;
	char msg[160];
	int failed;
};

__attribute__((format(printf, 2, 3)))
static int jr_fail(struct jr *r, const char *fmt, ...)
{
	va_list ap;
	int at;

	if (r->failed)
		return -EINVAL;
	r->failed = 1;
	at = snprintf(r->msg, sizeof(r->msg), "byte %zu: ", (size_t)(r->p - r->start));
	va_start(ap, fmt);
	vsnprintf(r->msg + at, sizeof(r->msg) - (size_t)at, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static void jr_ws(struct jr *r)
{
	while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' ||
				 *r->p == '\n' || *r->p == '\r'))
		r->p++;
}

static int jr_peek(struct jr *r)
{
	jr_ws(r);
	return r->p < r->end ? (unsigned char)*r->p : -1;
}

static int jr_expect(struct jr *r, char c, const char *where)
{
	if (jr_peek(r) != (unsigned char)c)
		return jr_fail(r, "expected '%c' %s", c, where);
	r->p++;
	return 0;
}

static int jr_word(struct jr *r, const char *w)
{
	size_t n = strlen(w);

	if ((size_t)(r->end - r->p) < n || memcmp(r->p, w, n) != 0)
		return 0;
	r->p += n;
	return 1;
}

static int hex4(const char *p, uint32_t *v)
{
	*v = 0;
	for (int i = 0; i < 4; i++) {
		char c = p[i];

		*v <<= 4;
		if (is_digit(c))
			*v |= (uint32_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			*v |= (uint32_t)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			*v |= (uint32_t)(c - 'A' + 10);
		else
			return 0;
	}
	return 1;
}

static void put_utf8(struct gbuf *b, uint32_t c)
{
	unsigned char u[4];
	size_t n;

	if (c < 0x80) {
		u[0] = (unsigned char)c;
		n = 1;
	} else if (c < 0x800) {
		u[0] = (unsigned char)(0xc0 | (c >> 6));
		u[1] = (unsigned char)(0x80 | (c & 0x3f));
		n = 2;
	} else if (c < 0x10000) {
		u[0] = (unsigned char)(0xe0 | (c >> 12));
		u[1] = (unsigned char)(0x80 | ((c >> 6) & 0x3f));
		u[2] = (unsigned char)(0x80 | (c & 0x3f));
		n = 3;
	} else {
		u[0] = (unsigned char)(0xf0 | (c >> 18));
		u[1] = (unsigned char)(0x80 | ((c >> 12) & 0x3f));
		u[2] = (unsigned char)(0x80 | ((c >> 6) & 0x3f));
		u[3] = (unsigned char)(0x80 | (c & 0x3f));
		n = 4;
	}
	gbuf_add(b, u, n);
}

/* A JSON string of at most max bytes, unescaped into out (reset first). */
static int jr_string(struct jr *r, struct gbuf *out, size_t max, const char *what)
{
	out->n = 0;
	gbuf_add(out, "", 0);	/* allocated and NUL-terminated, even if empty */
	if (jr_peek(r) != '"')
		return jr_fail(r, "expected a string for %s", what);
	r->p++;
	while (r->p < r->end && *r->p != '"') {
		const unsigned char *u = (const unsigned char *)r->p;
		size_t k;
		uint32_t c, lo;

		if (*u < 0x20)
			return jr_fail(r, "control character in %s", what);
		if (*u != '\\') {
			k = utf8_len(u, (size_t)(r->end - r->p));
			if (!k)
				return jr_fail(r, "invalid UTF-8 in %s", what);
			gbuf_add(out, r->p, k);
			r->p += k;
		} else {
			if (r->end - r->p < 2)
				break;
			switch (r->p[1]) {
			case '"': case '\\': case '/':
				gbuf_add(out, r->p + 1, 1);
				break;
			case 'b': gbuf_add(out, "\b", 1); break;
			case 'f': gbuf_add(out, "\f", 1); break;
			case 'n': gbuf_add(out, "\n", 1); break;
			case 'r': gbuf_add(out, "\r", 1); break;
			case 't': gbuf_add(out, "\t", 1); break;
			case 'u':
				if (r->end - r->p < 6 || !hex4(r->p + 2, &c))
					return jr_fail(r, "bad \\u escape in %s", what);
				if (c >= 0xd800 && c <= 0xdbff) {
					if (r->end - r->p < 12 || r->p[6] != '\\' ||
					    r->p[7] != 'u' || !hex4(r->p + 8, &lo) ||
					    lo < 0xdc00 || lo > 0xdfff)
						return jr_fail(r, "lone surrogate in %s", what);
					c = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
					r->p += 6;
				} else if ((c >= 0xdc00 && c <= 0xdfff) || c == 0) {
					return jr_fail(r, "bad \\u escape in %s", what);
				}
				put_utf8(out, c);
				r->p += 4;
				break;
			default:
				return jr_fail(r, "bad escape in %s", what);
			}
			r->p += 2;
		}
		if (out->n > max)
			return jr_fail(r, "%s longer than %zu bytes", what, max);
	}
	if (r->p >= r->end)
		return jr_fail(r, "unterminated string in %s", what);
	r->p++;
	if (out->failed)
		return -ENOMEM;
	return 0;
}

static int jr_uint32(struct jr *r, uint32_t *v, const char *what)
{
	uint64_t x = 0;
	const char *b;

	jr_peek(r);
	b = r->p;
	while (r->p < r->end && is_digit(*r->p) && r->p - b < 11)
		x = x * 10 + (uint64_t)(*r->p++ - '0');
	if (r->p == b || (r->p - b > 1 && *b == '0') || x > UINT32_MAX ||
	    (r->p < r->end && (is_digit(*r->p) || *r->p == '.' ||
			       *r->p == 'e' || *r->p == 'E')))
		return jr_fail(r, "%s must be a whole number from 0 to 4294967295", what);
	*v = (uint32_t)x;
	return 0;
}

static int jr_bool(struct jr *r, int *v, const char *what)
{
	jr_peek(r);
	if (jr_word(r, "true"))
		*v = 1;
	else if (jr_word(r, "false"))
		*v = 0;
	else
		return jr_fail(r, "%s must be true or false", what);
	return 0;
}

/* Key of an object member; 0 if the object ends instead, 1 with a key. */
static int jr_key(struct jr *r, struct gbuf *key, int first, const char *what)
{
	int c = jr_peek(r);

	if (c == '}') {
		r->p++;
		return 0;
	}
	if (!first) {
		if (c != ',')
			return jr_fail(r, "expected ',' or '}' in %s", what);
		r->p++;
	}
	if (jr_string(r, key, 64, "a key") < 0 ||
	    jr_expect(r, ':', "after a key") < 0)
		return -EINVAL;
	return 1;
}

enum { K_NAME = 1, K_TYPE = 2, K_NULLABLE = 4, K_ADDED = 8 };

static int jr_column(struct jr *r, struct lt_column *col, struct gbuf *key,
		     struct gbuf *val)
{
	unsigned seen = 0, bit;
	int ret, first = 1;
	char fixed[LT_NAME_MAX + 1];

	if (jr_expect(r, '{', "for a column") < 0)
		return -EINVAL;
	while ((ret = jr_key(r, key, first, "a column")) > 0) {
		const char *k = (const char *)key->p;

		first = 0;
		if (strcmp(k, "name") == 0) {
			bit = K_NAME;
			if (seen & bit)
				break;
			if ((ret = jr_string(r, val, LT_NAME_MAX, "a column name")) < 0)
				return ret;
			if (lt_column_name_ok((const char *)val->p, val->n, fixed,
					      sizeof(fixed)) != 0 ||
			    strlen(fixed) != val->n)
				return jr_fail(r, "column name is empty or not clean");
			if (strcasecmp(fixed, LT_RESCUED) == 0)
				return jr_fail(r, "column name '%s' is reserved", LT_RESCUED);
			col->name = strdup(fixed);
			if (!col->name)
				return -ENOMEM;
		} else if (strcmp(k, "type") == 0) {
			bit = K_TYPE;
			if (seen & bit)
				break;
			if ((ret = jr_string(r, val, 32, "a type")) < 0)
				return ret;
			if (lt_parse_name((const char *)val->p, &col->type) < 0 ||
			    strlen((const char *)val->p) != val->n)
				return jr_fail(r, "unknown type '%s'", (const char *)val->p);
		} else if (strcmp(k, "nullable") == 0) {
			bit = K_NULLABLE;
			if (seen & bit)
				break;
			if (jr_bool(r, &col->nullable, "nullable") < 0)
				return -EINVAL;
		} else if (strcmp(k, "added_in") == 0) {
			bit = K_ADDED;
			if (seen & bit)
				break;
			if (jr_uint32(r, &col->added_in, "added_in") < 0)
				return -EINVAL;
		} else {
			return jr_fail(r, "unknown key '%s' in a column", k);
		}
		seen |= bit;
	}
	if (ret < 0)
		return ret;
	if (ret > 0)
		return jr_fail(r, "key '%s' twice in a column", (const char *)key->p);
	if (seen != (K_NAME | K_TYPE | K_NULLABLE | K_ADDED))
		return jr_fail(r, "a column needs name, type, nullable and added_in");
	return 0;
}

static int jr_columns(struct jr *r, struct lt_schema *s, struct gbuf *key,
		      struct gbuf *val)
{
	size_t cap = 0;
	int ret;

	if (jr_expect(r, '[', "for columns") < 0)
		return -EINVAL;
	if (jr_peek(r) == ']') {
		r->p++;
		return 0;
	}
	for (;;) {
		if (s->n == LT_MAX_COLUMNS)
			return jr_fail(r, "more than %d columns", LT_MAX_COLUMNS);
		if (s->n == cap) {
			size_t nc = cap ? cap * 2 : 16;
			struct lt_column *c = realloc(s->cols, nc * sizeof(*c));

			if (!c)
				return -ENOMEM;
			s->cols = c;
			cap = nc;
		}
		memset(&s->cols[s->n], 0, sizeof(s->cols[0]));
		s->n++;
		if ((ret = jr_column(r, &s->cols[s->n - 1], key, val)) < 0)
			return ret;
		if (jr_peek(r) == ']') {
			r->p++;
			return 0;
		}
		if (jr_expect(r, ',', "or ']' after a column") < 0)
			return -EINVAL;
	}
}

enum { K_VERSION = 1, K_COLUMNS = 2, K_RESCUED = 4 };

int lt_schema_from_json(const char *text, size_t n, struct lt_schema *out,
			char **err)
{
	struct jr r = { .p = text, .start = text, .end = text + n };
	struct gbuf key = { 0 }, val = { 0 };
	unsigned seen = 0, bit = 0;
	int ret = 0, first = 1;

	memset(out, 0, sizeof(*out));
	if (err)
		*err = NULL;
	if (n > LT_SCHEMA_MAX) {
		ret = jr_fail(&r, "larger than %u bytes", LT_SCHEMA_MAX);
		goto out;
	}
	if ((ret = jr_expect(&r, '{', "at the start")) < 0)
		goto out;
	while ((ret = jr_key(&r, &key, first, "the schema")) > 0) {
		const char *k = (const char *)key.p;

		first = 0;
		if (strcmp(k, "version") == 0) {
			bit = K_VERSION;
			if (seen & bit)
				break;
			ret = jr_uint32(&r, &out->version, "version");
		} else if (strcmp(k, "columns") == 0) {
			bit = K_COLUMNS;
			if (seen & bit)
				break;
			ret = jr_columns(&r, out, &key, &val);
		} else if (strcmp(k, "rescued_data_column") == 0) {
			bit = K_RESCUED;
			if (seen & bit)
				break;
			jr_peek(&r);
			if (jr_word(&r, "null")) {
				out->has_rescued = 0;
			} else {
				ret = jr_string(&r, &val, 64, "rescued_data_column");
				if (ret == 0 && strcmp((const char *)val.p, LT_RESCUED) != 0)
					ret = jr_fail(&r, "rescued_data_column must be "
						      "\"%s\" or null", LT_RESCUED);
				out->has_rescued = 1;
			}
		} else {
			ret = jr_fail(&r, "unknown key '%s'", k);
		}
		if (ret < 0)
			goto out;
		seen |= bit;
	}
	if (ret > 0)
		ret = jr_fail(&r, "key '%s' twice", (const char *)key.p);
	if (ret < 0)
		goto out;
	if (seen != (K_VERSION | K_COLUMNS | K_RESCUED)) {
		ret = jr_fail(&r, "the schema needs version, columns and "
			      "rescued_data_column");
		goto out;
	}
	if (jr_peek(&r) != -1) {
		ret = jr_fail(&r, "unexpected bytes after the schema");
		goto out;
	}
	for (size_t i = 0; i < out->n; i++) {
		if (out->cols[i].added_in > out->version) {
			ret = jr_fail(&r, "column '%s' added in version %u, after "
				      "the schema's version %u", out->cols[i].name,
				      out->cols[i].added_in, out->version);
			goto out;
		}
		for (size_t j = 0; j < i; j++)
			if (strcasecmp(out->cols[i].name, out->cols[j].name) == 0) {
				ret = jr_fail(&r, "column '%s' twice", out->cols[i].name);
				goto out;
			}
	}
out:
	free(key.p);
	free(val.p);
	if (ret < 0) {
		if (ret == -EINVAL && err && asprintf(err, "_schema.json: %s", r.msg) < 0)
			*err = NULL;
		if (ret == -ENOMEM && err)
			*err = strdup("_schema.json: out of memory");
		lt_schema_free(out);
	}
	return ret < 0 ? ret : 0;
}

/* ---- evolution ---- */

static const char *const mode_names[] = {
	[LT_ADD_NEW_COLUMNS] = "addNewColumns", [LT_RESCUE] = "rescue",
	[LT_FAIL_ON_NEW_COLUMNS] = "failOnNewColumns", [LT_NONE] = "none",
};

int lt_mode_parse(const char *s, enum lt_mode *out)
{
	for (size_t i = 0; s && i < ARRAY_SIZE(mode_names); i++)
		if (strcmp(s, mode_names[i]) == 0) {
			*out = (enum lt_mode)i;
			return 0;
		}
	return -EINVAL;
}

const char *lt_mode_name(enum lt_mode m)
{
	return (unsigned)m < ARRAY_SIZE(mode_names) ? mode_names[m] : "?";
}

void lt_evolution_release(struct lt_evolution *ev)
{
	if (!ev)
		return;
	lt_schema_free(&ev->schema);
	free(ev->target);
	for (size_t i = 0; i < ev->nchanges; i++)
		free(ev->changes[i]);
	free(ev->changes);
	free(ev->reason);
	memset(ev, 0, sizeof(*ev));
}

static int ev_change(struct lt_evolution *ev, struct gbuf *b)
{
	char **c;

	c = b->failed ? NULL : realloc(ev->changes, (ev->nchanges + 1) * sizeof(*c));
	if (!c) {
		free(b->p);
		return -ENOMEM;
	}
	ev->changes = c;
	c[ev->nchanges++] = (char *)b->p;
	memset(b, 0, sizeof(*b));
	return 0;
}

static int ev_added(struct lt_evolution *ev, const char *name, enum lt_type t)
{
	struct gbuf b = { 0 };

	gbuf_add(&b, "{\"added\":", 9);
	lt_json_quote(&b, name, strlen(name));
	gbuf_printf(&b, ",\"type\":\"%s\"}", lt_name(t));
	return ev_change(ev, &b);
}

static int ev_widened(struct lt_evolution *ev, const char *name,
		      enum lt_type from, enum lt_type to)
{
	struct gbuf b = { 0 };

	gbuf_add(&b, "{\"widened\":", 11);
	lt_json_quote(&b, name, strlen(name));
	gbuf_printf(&b, ",\"from\":\"%s\",\"to\":\"%s\"}", lt_name(from), lt_name(to));
	return ev_change(ev, &b);
}

__attribute__((format(printf, 2, 3)))
static int ev_reject(struct lt_evolution *ev, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&ev->reason, fmt, ap);
	va_end(ap);
	if (n < 0) {
		ev->reason = NULL;
		return -ENOMEM;
	}
	return 1;
}

/* Names no mode can place; 1 with ev->reason set, 0 if all are fine. */
static int check_names(const char *const *cols, size_t nb, struct lt_evolution *ev)
{
	char fixed[LT_NAME_MAX + 1];

	if (nb > LT_MAX_COLUMNS)
		return ev_reject(ev, "the batch has %zu columns, more than %d",
				 nb, LT_MAX_COLUMNS);
	for (size_t i = 0; i < nb; i++) {
		size_t len = strlen(cols[i]);

		if (len == 0)
			return ev_reject(ev, "column %zu has no name", i + 1);
		if (len > LT_NAME_MAX)
			return ev_reject(ev, "column %zu has a name longer than %d bytes",
					 i + 1, LT_NAME_MAX);
		if (lt_column_name_ok(cols[i], len, fixed, sizeof(fixed)) != 0)
			return ev_reject(ev, "column %zu has a name with white space "
					 "at an end, control characters or invalid "
					 "UTF-8", i + 1);
		if (strcasecmp(cols[i], LT_RESCUED) == 0)
			return ev_reject(ev, "column '%s' is reserved for rescued data",
					 cols[i]);
	}
	if (nb > 64) {		/* the O(n^2) scan is fine below this */
		struct nameset ns = { 0 };
		size_t size = 16;

		while (size < 2 * nb)
			size *= 2;
		ns.slot = calloc(size, sizeof(*ns.slot));
		if (!ns.slot)
			return -ENOMEM;
		ns.mask = size - 1;
		for (size_t i = 0; i < nb; i++) {
			if (nameset_has(&ns, cols[i])) {
				free(ns.slot);
				return ev_reject(ev, "column '%s' appears twice in the "
						 "batch (names ignore case)", cols[i]);
			}
			nameset_add(&ns, cols[i]);
		}
		free(ns.slot);
		return 0;
	}
	for (size_t i = 0; i < nb; i++)
		for (size_t j = 0; j < i; j++)
			if (strcasecmp(cols[i], cols[j]) == 0)
				return ev_reject(ev, "column '%s' appears twice in the "
						 "batch (names ignore case)", cols[i]);
	return 0;
}

static int add_column(struct lt_schema *s, const char *name, enum lt_type t,
		      uint32_t version)
{
	struct lt_column *c = realloc(s->cols, (s->n + 1) * sizeof(*c));

	if (!c)
		return -ENOMEM;
	s->cols = c;
	c[s->n].name = strdup(name);
	if (!c[s->n].name)
		return -ENOMEM;
	c[s->n].type = t;
	c[s->n].added_in = version;
	c[s->n].nullable = 1;
	s->n++;
	return 0;
}

/* Fill ev for the batch; 1 if it must be quarantined (ev->reason set). */
static int evolve(const struct lt_schema *cur, enum lt_mode mode,
		  const char *const *cols, const enum lt_type *types, size_t nb,
		  struct lt_evolution *ev)
{
	struct lt_schema *s = &ev->schema;
	uint32_t next = cur->version + 1;
	int initial = cur->n == 0, ret;

	if ((ret = check_names(cols, nb, ev)) != 0)
		return ret;
	if (cur->version == UINT32_MAX)
		return ev_reject(ev, "the schema is at its last version");
	for (size_t i = 0; i < nb; i++) {
		int idx = lt_schema_find(s, cols[i]);

		if (idx >= 0) {
			struct lt_column *c = &s->cols[idx];
			enum lt_type w = lt_widen(c->type, types[i]);

			ev->target[i] = idx;
			if (w == c->type)
				continue;
			if (c->type == LT_NULL || mode == LT_ADD_NEW_COLUMNS) {
				if ((ret = ev_widened(ev, c->name, c->type, w)) < 0)
					return ret;
				c->type = w;
			} else if (mode == LT_FAIL_ON_NEW_COLUMNS) {
				return ev_reject(ev, "column '%s' would change type "
						 "from %s to %s (mode failOnNewColumns)",
						 c->name, lt_name(c->type), lt_name(w));
			}
			continue;
		}
		if (initial || mode == LT_ADD_NEW_COLUMNS) {
			if (s->n >= LT_MAX_COLUMNS)
				return ev_reject(ev, "new column '%s' would make more "
						 "than %d columns", cols[i], LT_MAX_COLUMNS);
			if ((ret = add_column(s, cols[i], types[i], next)) < 0 ||
			    (ret = ev_added(ev, cols[i], types[i])) < 0)
				return ret;
			ev->target[i] = (int)s->n - 1;
		} else if (mode == LT_RESCUE) {
			ev->target[i] = LT_TARGET_RESCUE;
		} else if (mode == LT_FAIL_ON_NEW_COLUMNS) {
			return ev_reject(ev, "new column '%s' (mode failOnNewColumns)",
					 cols[i]);
		} else {
			ev->target[i] = LT_TARGET_DROP;
		}
	}
	if (mode == LT_RESCUE && !s->has_rescued) {
		struct gbuf b = { 0 };

		gbuf_printf(&b, "{\"rescued_data_column\":\"%s\"}", LT_RESCUED);
		if ((ret = ev_change(ev, &b)) < 0)
			return ret;
		s->has_rescued = 1;
	}
	if (ev->nchanges)
		s->version = next;
	return 0;
}

int lt_evolve(const struct lt_schema *cur, enum lt_mode mode,
	      const char *const *batch_cols, const enum lt_type *batch_types,
	      size_t nb, struct lt_evolution *ev)
{
	int ret;

	if (!ev)
		return -EINVAL;
	memset(ev, 0, sizeof(*ev));
	if (!cur || (unsigned)mode > LT_NONE || (nb && (!batch_cols || !batch_types)))
		return -EINVAL;
	for (size_t i = 0; i < nb; i++)
		if (!batch_cols[i] || (unsigned)batch_types[i] >= LT_NTYPES)
			return -EINVAL;
	ev->nb = nb;
	ev->target = calloc(nb ? nb : 1, sizeof(*ev->target));
	if (!ev->target || lt_schema_copy(&ev->schema, cur) < 0) {
		lt_evolution_release(ev);
		return -ENOMEM;
	}
	ret = evolve(cur, mode, batch_cols, batch_types, nb, ev);
	if (ret < 0) {
		lt_evolution_release(ev);
		return ret;
	}
	if (ret > 0) {		/* quarantine: nothing changes */
		for (size_t i = 0; i < ev->nchanges; i++)
			free(ev->changes[i]);
		free(ev->changes);
		ev->changes = NULL;
		ev->nchanges = 0;
		lt_schema_free(&ev->schema);
		if (lt_schema_copy(&ev->schema, cur) < 0) {
			lt_evolution_release(ev);
			return -ENOMEM;
		}
		for (size_t i = 0; i < nb; i++)
			ev->target[i] = LT_TARGET_DROP;
	}
	return 0;
}

int lt_evolution_changes_json(const struct lt_evolution *ev, struct gbuf *out)
{
	gbuf_add(out, "[", 1);
	for (size_t i = 0; i < ev->nchanges; i++) {
		if (i)
			gbuf_add(out, ",", 1);
		gbuf_add(out, ev->changes[i], strlen(ev->changes[i]));
	}
	gbuf_add(out, "]", 1);
	return out->failed ? -ENOMEM : 0;
}

int lt_rescued_json(const char *const *names, const char *const *vals,
		    const size_t *lens, size_t n, struct gbuf *out)
{
	gbuf_add(out, "{", 1);
	for (size_t i = 0; i < n; i++) {
		if (i)
			gbuf_add(out, ",", 1);
		lt_json_quote(out, names[i], strlen(names[i]));
		gbuf_add(out, ":", 1);
		if (vals[i])
			lt_json_quote(out, vals[i], lens[i]);
		else
			gbuf_add(out, "null", 4);
	}
	gbuf_add(out, "}", 1);
	return out->failed ? -ENOMEM : 0;
}
