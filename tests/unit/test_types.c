/*
 * tests/unit/test_types.c — catalog/types.c: value inference (a table of
 * text and JSON values), the widening lattice (every pair, symmetric and
 * associative), fits and canonical text (normalizing twice changes
 * nothing), column names, _schema.json round trips and its reader refusing
 * malformed text (hand-written cases and a seeded mutation fuzz: never a
 * crash, always 0 or -EINVAL with a message), schema evolution in every
 * mode, and the _rescued_data object.
 *
 * The fuzz seed is printed; LFS_FUZZ_SEED=N replays it.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "catalog/types.h"
#include "tests/unit/mutate.h"
#include "tests/unit/tap.h"
#include "util/util.h"

#define FUZZ_ROUNDS 20000

#define N LT_NULL
#define B LT_BOOL
#define I LT_INT
#define D LT_DECIMAL
#define F LT_FLOAT
#define DT LT_DATE
#define TS LT_TIMESTAMP
#define TZ LT_TIMESTAMPTZ
#define S LT_STRING

static const struct {
	const char *in;
	enum lt_type want;
} infer_cases[] = {
	/* missing */
	{ "", N },
	/* booleans */
	{ "true", B }, { "false", B }, { "TRUE", B }, { "False", B }, { "tRuE", B },
	{ "yes", S }, { "no", S }, { "t", S }, { "f", S }, { "on", S },
	{ "truee", S }, { " true", S }, { "0", I }, { "1", I },
	/* integers */
	{ "42", I }, { "-42", I }, { "+42", I }, { "-0", I }, { "+0", I },
	{ "9223372036854775807", I }, { "-9223372036854775808", I },
	{ "9223372036854775808", D }, { "-9223372036854775809", D },
	{ "1000000000000000000", I }, { "9999999999999999999", D },
	{ "12345678901234567890123456789012345678", D },
	{ "123456789012345678901234567890123456789", S },
	{ "007", S }, { "00", S }, { "-007", S }, { "0123", S },
	{ "0x10", S }, { "0X1F", S }, { "1_000", S }, { "1,000", S },
	{ " 12 ", S }, { "12 ", S }, { " 12", S }, { "\t12", S },
	{ "+", S }, { "-", S }, { "--1", S }, { "+-1", S }, { "1-", S },
	{ "١٢", S },
	/* decimals */
	{ "12.50", D }, { "0.5", D }, { "-0.5", D }, { "+3.14", D }, { "-0.0", D },
	{ "0.000000000000000000000000000000000001", D },
	{ "1234567890123456789012345678901234567.8", D },
	{ "1234567890123456789012345678901234567.89", F },
	{ "00.5", S }, { "01.5", S }, { "1.2.3", S }, { "1..2", S },
	{ ".", S }, { "-.", S }, { "1.5x", S }, { "$1.50", S }, { "1.5%", S },
	/* floats */
	{ "1e3", F }, { "1E3", F }, { "1e+3", F }, { "1e-3", F }, { "-1.5e10", F },
	{ "2.5E-7", F }, { ".5", F }, { "5.", F }, { "-.5", F }, { "+5.", F },
	{ ".5e1", F }, { "0e0", F }, { "1e308", F }, { "1e309", S }, { "-1e309", S },
	{ "1e-400", F }, { "1e", S }, { "1e+", S }, { "e3", S }, { "1e3.5", S },
	{ "NaN", S }, { "nan", S }, { "inf", S }, { "-inf", S }, { "Infinity", S },
	{ "-Infinity", S }, { "1.0f", S }, { "1d", S }, { "0b101", S },
	/* dates */
	{ "2024-01-02", DT }, { "2024-02-29", DT }, { "2023-02-29", S },
	{ "2000-02-29", DT }, { "1900-02-29", S }, { "2024-13-01", S },
	{ "2024-00-10", S }, { "2024-01-00", S }, { "2024-01-32", S },
	{ "2024-04-31", S }, { "2024-04-30", DT }, { "2024-12-31", DT },
	{ "0001-01-01", DT }, { "0000-01-01", S }, { "9999-12-31", DT },
	{ "2024-1-02", S }, { "2024/01/02", S }, { "24-01-02", S },
	{ "2024-01-02x", S }, { "20240102", I }, { "02/01/2024", S },
	{ "2024-01-0a", S }, { "-024-01-02", S },
	/* timestamps without a zone */
	{ "2024-01-02T03:04:05", TS }, { "2024-01-02 03:04:05", TS },
	{ "2024-01-02T03:04", TS }, { "2024-01-02 23:59:59", TS },
	{ "2024-01-02T03:04:05.1", TS }, { "2024-01-02T03:04:05.123", TS },
	{ "2024-01-02T03:04:05.123456789", TS },
	{ "2024-01-02T03:04:05.1234567890", S }, { "2024-01-02T03:04:05.", S },
	{ "2024-01-02T24:00:00", S }, { "2024-01-02T23:60:00", S },
	{ "2024-01-02T23:59:60", S }, { "2024-01-02t03:04:05", S },
	{ "2024-01-02T3:04:05", S }, { "2024-01-02T03:04:5", S },
	{ "2024-01-02T03", S }, { "2024-01-02T", S }, { "2024-01-02 ", S },
	{ "2023-02-29T00:00:00", S }, { "2024-02-29T12:00:00", TS },
	{ "2024-01-02T03:04:05,123", S }, { "2024-01-02  03:04:05", S },
	/* timestamps with a zone */
	{ "2024-01-02T03:04:05Z", TZ }, { "2024-01-02T03:04:05+02:00", TZ },
	{ "2024-01-02T03:04:05+0200", TZ }, { "2024-01-02T03:04:05-05", TZ },
	{ "2024-01-02T03:04:05-05:30", TZ }, { "2024-01-02 03:04:05Z", TZ },
	{ "2024-01-02T03:04:05.123Z", TZ }, { "2024-01-02T03:04Z", TZ },
	{ "2024-01-02T03:04:05.123456+14:00", TZ }, { "2024-01-02T03:04:05+18", TZ },
	{ "2024-01-02T03:04:05+19:00", S }, { "2024-01-02T03:04:05+02:60", S },
	{ "2024-01-02T03:04:05z", S }, { "2024-01-02T03:04:05 Z", S },
	{ "2024-01-02T03:04:05 +02:00", S }, { "2024-01-02T03:04:05+2", S },
	{ "2024-01-02T03:04:05+02:0", S }, { "2024-01-02T03:04:05+020", S },
	{ "2024-01-02T03:04:05+02:00:00", S }, { "2024-01-02T03:04:05UTC", S },
	{ "2024-01-02T03:04:05Z ", S }, { "2024-01-02T03:04:05+02-00", S },
	/* strings */
	{ "hello", S }, { "null", S }, { "NULL", S }, { "NA", S }, { " ", S },
	{ "héllo", S }, { "{\"a\":1}", S }, { "[1,2]", S }, { "\"42\"", S },
};

static const struct {
	int jtype;
	const char *in;
	enum lt_type want;
} json_cases[] = {
	{ LT_JSON_NULL, "", N }, { LT_JSON_NULL, "null", N },
	{ LT_JSON_BOOL, "true", B }, { LT_JSON_BOOL, "false", B },
	{ LT_JSON_NUMBER, "42", I }, { LT_JSON_NUMBER, "-42", I },
	{ LT_JSON_NUMBER, "12.50", D }, { LT_JSON_NUMBER, "1e3", F },
	{ LT_JSON_NUMBER, "-1.5E-3", F }, { LT_JSON_NUMBER, "9223372036854775808", D },
	{ LT_JSON_NUMBER, "1e999", S },
	{ LT_JSON_STRING, "", N }, { LT_JSON_STRING, "2024-01-02", DT },
	{ LT_JSON_STRING, "2024-01-02T03:04:05", TS },
	{ LT_JSON_STRING, "2024-01-02T03:04:05Z", TZ },
	{ LT_JSON_STRING, "42", S }, { LT_JSON_STRING, "true", S },
	{ LT_JSON_STRING, "12.5", S }, { LT_JSON_STRING, "2023-02-29", S },
	{ LT_JSON_STRING, "abc", S },
	{ LT_JSON_RAW, "{\"a\":1}", S }, { LT_JSON_RAW, "[]", S },
	{ 99, "x", S },
};

/* The lattice as DESIGN: row a, column b (upper triangle mirrored). */
static const enum lt_type widen_table[LT_NTYPES][LT_NTYPES] = {
	/*          N   B   I   D   F   DT  TS  TZ  S */
	[N]  = {    N,  B,  I,  D,  F,  DT, TS, TZ, S },
	[B]  = {    B,  B,  S,  S,  S,  S,  S,  S,  S },
	[I]  = {    I,  S,  I,  D,  F,  S,  S,  S,  S },
	[D]  = {    D,  S,  D,  D,  F,  S,  S,  S,  S },
	[F]  = {    F,  S,  F,  F,  F,  S,  S,  S,  S },
	[DT] = {    DT, S,  S,  S,  S,  DT, TS, S,  S },
	[TS] = {    TS, S,  S,  S,  S,  TS, TS, S,  S },
	[TZ] = {    TZ, S,  S,  S,  S,  S,  S,  TZ, S },
	[S]  = {    S,  S,  S,  S,  S,  S,  S,  S,  S },
};

static const struct {
	enum lt_type col;
	const char *in;
	const char *want;	/* NULL: -EINVAL */
} norm_cases[] = {
	{ B, "TRUE", "true" }, { B, "False", "false" }, { B, "1", NULL },
	{ I, "+42", "42" }, { I, "-0", "0" }, { I, "+0", "0" }, { I, "-17", "-17" },
	{ I, "12.5", NULL }, { I, "007", NULL }, { I, "", "" },
	{ D, "12.50", "12.50" }, { D, "+3.14", "3.14" }, { D, "-0.00", "0.00" },
	{ D, "42", "42" }, { D, "9223372036854775808", "9223372036854775808" },
	{ D, "1e3", NULL },
	{ F, "1e3", "1000" }, { F, ".5", "0.5" }, { F, "5.", "5" }, { F, "0.1e0", "0.1" },
	{ F, "1E-7", "1e-07" }, { F, "1e300", "1e+300" }, { F, "-2.5e-3", "-0.0025" },
	{ F, "42", "42" }, { F, "+42", "42" }, { F, "12.50", "12.50" },
	{ F, "12345678901234567890", "12345678901234567890" },
	{ F, "3.141592653589793238e0", "3.141592653589793" }, { F, "abc", NULL },
	{ F, "NaN", NULL }, { F, "-0e0", "0" }, { F, "-0.0", "0.0" },
	{ DT, "2024-02-29", "2024-02-29" }, { DT, "2023-02-29", NULL },
	{ DT, "2024-01-02T00:00:00", NULL },
	{ TS, "2024-01-02 03:04:05", "2024-01-02T03:04:05" },
	{ TS, "2024-01-02T03:04", "2024-01-02T03:04:00" },
	{ TS, "2024-01-02 03:04:05.120", "2024-01-02T03:04:05.120" },
	{ TS, "2024-01-02", "2024-01-02T00:00:00" },
	{ TS, "2024-01-02T03:04:05Z", NULL },
	{ TZ, "2024-01-02 03:04:05Z", "2024-01-02T03:04:05Z" },
	{ TZ, "2024-01-02T03:04:05+0200", "2024-01-02T03:04:05+02:00" },
	{ TZ, "2024-01-02T03:04:05-05", "2024-01-02T03:04:05-05:00" },
	{ TZ, "2024-01-02T03:04:05.5+05:30", "2024-01-02T03:04:05.5+05:30" },
	{ TZ, "2024-01-02T03:04", NULL }, { TZ, "2024-01-02", NULL },
	{ S, " anything ", " anything " }, { S, "007", "007" }, { S, "1e3", "1e3" },
	{ S, "", "" }, { N, "", "" }, { N, "x", NULL }, { N, "1", NULL },
};

static void test_infer(void)
{
	int bad = 0;

	for (size_t i = 0; i < ARRAY_SIZE(infer_cases); i++) {
		const char *s = infer_cases[i].in;

		is_str(lt_name(lt_infer(s, strlen(s))), lt_name(infer_cases[i].want),
		       "infer '%s'", s);
	}
	for (size_t i = 0; i < ARRAY_SIZE(json_cases); i++) {
		const char *s = json_cases[i].in;

		is_str(lt_name(lt_infer_json(json_cases[i].jtype, s, strlen(s))),
		       lt_name(json_cases[i].want), "infer JSON %d '%s'",
		       json_cases[i].jtype, s);
	}
	/* a value is read only within its length */
	is_str(lt_name(lt_infer("12345", 2)), "INT", "only n bytes are read (12)");
	is_str(lt_name(lt_infer("2024-01-02T03:04:05Z", 10)), "DATE",
	       "a date prefix of a timestamp");
	is_str(lt_name(lt_infer("truex", 4)), "BOOLEAN", "true within a longer buffer");
	/* every inferred value fits its own type and normalizes */
	for (size_t i = 0; i < ARRAY_SIZE(infer_cases); i++) {
		const char *s = infer_cases[i].in;
		struct gbuf g = { 0 };

		if (!lt_fits(infer_cases[i].want, s, strlen(s)) ||
		    lt_normalize(infer_cases[i].want, s, strlen(s), &g) != 0)
			bad++;
		free(g.p);
	}
	is_int(bad, 0, "every value of the table fits and normalizes in its type");
}

static void test_names(void)
{
	enum lt_type t;
	int good = 1;

	for (int i = 0; i < LT_NTYPES; i++)
		good &= lt_parse_name(lt_name((enum lt_type)i), &t) == 0 && t == (enum lt_type)i;
	ok(good, "lt_parse_name(lt_name(t)) == t for every type");
	ok(lt_parse_name("bigint", &t) == 0 && t == LT_INT, "alias bigint → INT");
	ok(lt_parse_name("double", &t) == 0 && t == LT_FLOAT, "alias double → FLOAT");
	ok(lt_parse_name("timestamp_ntz", &t) == 0 && t == LT_TIMESTAMP,
	   "alias timestamp_ntz → TIMESTAMP");
	is_int(lt_parse_name("INT64", &t), -EINVAL, "unknown type name");
	is_int(lt_parse_name("", &t), -EINVAL, "empty type name");
	is_str(lt_name((enum lt_type)42), "?", "lt_name out of range");
}

static void test_widen(void)
{
	int sym = 1, assoc = 1, ident = 1;

	for (int a = 0; a < LT_NTYPES; a++)
		for (int b = 0; b < LT_NTYPES; b++) {
			enum lt_type w = lt_widen((enum lt_type)a, (enum lt_type)b);

			is_str(lt_name(w), lt_name(widen_table[a][b]), "widen %s + %s",
			       lt_name((enum lt_type)a), lt_name((enum lt_type)b));
			sym &= w == lt_widen((enum lt_type)b, (enum lt_type)a);
			sym &= widen_table[a][b] == widen_table[b][a];
			for (int c = 0; c < LT_NTYPES; c++)
				assoc &= lt_widen(w, (enum lt_type)c) ==
					 lt_widen((enum lt_type)a,
						  lt_widen((enum lt_type)b, (enum lt_type)c));
		}
	for (int a = 0; a < LT_NTYPES; a++)
		ident &= lt_widen(LT_NULL, (enum lt_type)a) == (enum lt_type)a &&
			 lt_widen(LT_STRING, (enum lt_type)a) == LT_STRING &&
			 lt_widen((enum lt_type)a, (enum lt_type)a) == (enum lt_type)a;
	ok(sym, "widening is symmetric (all %d pairs)", LT_NTYPES * LT_NTYPES);
	ok(assoc, "widening is associative (all %d triples)",
	   LT_NTYPES * LT_NTYPES * LT_NTYPES);
	ok(ident, "NULL is the identity, STRING absorbs, widening is idempotent");
}

static void test_fits_normalize(void)
{
	int idem = 0, tried = 0;

	ok(lt_fits(LT_FLOAT, "42", 2), "an INT fits a FLOAT column");
	ok(lt_fits(LT_DECIMAL, "42", 2), "an INT fits a DECIMAL column");
	ok(!lt_fits(LT_INT, "4.2", 3), "a DECIMAL does not fit an INT column");
	ok(lt_fits(LT_TIMESTAMP, "2024-01-02", 10), "a DATE fits a TIMESTAMP column");
	ok(!lt_fits(LT_TIMESTAMPTZ, "2024-01-02", 10), "a DATE does not fit TIMESTAMPTZ");
	ok(!lt_fits(LT_TIMESTAMP, "2024-01-02T00:00Z", 17),
	   "a zoned value does not fit TIMESTAMP");
	ok(lt_fits(LT_STRING, "\xff\xfe", 2), "anything fits STRING");
	ok(lt_fits(LT_BOOL, "", 0) && lt_fits(LT_NULL, "", 0), "null fits every column");
	ok(!lt_fits(LT_NULL, "x", 1), "a value does not fit a NULL column");
	ok(!lt_fits(LT_BOOL, "1", 1), "1 is not a boolean");
	ok(lt_fits_json(LT_DATE, LT_JSON_STRING, "2024-01-02", 10),
	   "a JSON string date fits DATE");
	ok(!lt_fits_json(LT_INT, LT_JSON_STRING, "42", 2),
	   "a JSON string \"42\" does not fit INT");
	ok(lt_fits_json(LT_INT, LT_JSON_NUMBER, "42", 2), "a JSON number 42 fits INT");
	ok(lt_fits_json(LT_INT, LT_JSON_NULL, "", 0), "JSON null fits INT");

	for (size_t i = 0; i < ARRAY_SIZE(norm_cases); i++) {
		const char *s = norm_cases[i].in;
		struct gbuf g = { 0 };
		int ret;

		gbuf_add(&g, "", 0);
		ret = lt_normalize(norm_cases[i].col, s, strlen(s), &g);
		if (!norm_cases[i].want) {
			ok(ret == -EINVAL && g.n == 0, "normalize %s '%s' → -EINVAL",
			   lt_name(norm_cases[i].col), s);
		} else {
			struct gbuf h = { 0 };

			gbuf_add(&h, "", 0);
			ok(ret == 0 && strcmp((char *)g.p, norm_cases[i].want) == 0,
			   "normalize %s '%s' → '%s' (got '%s')", lt_name(norm_cases[i].col),
			   s, norm_cases[i].want, (char *)g.p);
			ok(lt_normalize(norm_cases[i].col, (char *)g.p, g.n, &h) == 0 &&
			   h.n == g.n && memcmp(h.p, g.p, g.n) == 0,
			   "normalizing '%s' again keeps it", (char *)g.p);
			free(h.p);
		}
		free(g.p);
	}
	/* idempotence over the whole inference table, in every type it fits */
	for (size_t i = 0; i < ARRAY_SIZE(infer_cases); i++)
		for (int t = 0; t < LT_NTYPES; t++) {
			const char *s = infer_cases[i].in;
			struct gbuf g = { 0 }, h = { 0 };

			if (lt_normalize((enum lt_type)t, s, strlen(s), &g) != 0) {
				free(g.p);
				continue;
			}
			gbuf_add(&g, "", 0);
			tried++;
			if (lt_normalize((enum lt_type)t, (char *)g.p, g.n, &h) == 0 &&
			    h.n == g.n && (g.n == 0 || memcmp(h.p, g.p, g.n) == 0) &&
			    (g.n == 0 || lt_fits((enum lt_type)t, (char *)g.p, g.n)))
				idem++;
			else
				diag("not idempotent: %s '%s'", lt_name((enum lt_type)t), s);
			free(g.p);
			free(h.p);
		}
	is_int(idem, tried, "canonical text is stable and fits (%d value/type pairs)", tried);
	{
		struct gbuf g = { 0 };

		gbuf_add(&g, "x", 1);
		is_int(lt_normalize(LT_INT, "1.5", 3, &g), -EINVAL, "a misfit");
		is_int((int)g.n, 1, "leaves out untouched");
		free(g.p);
	}
}

static void test_column_names(void)
{
	char fixed[LT_NAME_MAX + 1], big[600];
	const char *raw[] = { "id", " Name ", "", "name", "ID", "\xef\xbb\xbfprice",
			      "_rescued_data", "a\tb", "_c2", "caf\xc3\xa9", "bad\xff",
			      "   ", "id_2" };
	size_t lens[ARRAY_SIZE(raw)];
	const char *want[] = { "id", "Name", "_c2", "name_2", "ID_2", "price",
			       "_rescued_data_2", "a_b", "_c2_2", "caf\xc3\xa9", "bad_",
			       "_c11", "id_2_2" };
	char **names = NULL;
	int same = 1;

	is_int(lt_column_name_ok("price", 5, fixed, sizeof(fixed)), 0, "a clean name");
	is_int(lt_column_name_ok(" price\r\n", 8, fixed, sizeof(fixed)), 1, "a name to trim");
	is_str(fixed, "price", "trimmed");
	is_int(lt_column_name_ok("  ", 2, fixed, sizeof(fixed)), -EINVAL, "blank name");
	is_int(lt_column_name_ok("a\x01" "b", 3, fixed, sizeof(fixed)), 1,
	       "a control byte");
	is_str(fixed, "a_b", "becomes '_'");
	is_int(lt_column_name_ok("\xe6\x97\xa5\xe4\xbb\x98", 6, fixed, sizeof(fixed)), 0,
	       "UTF-8 kept");
	is_int(lt_column_name_ok("\xc0\xaf", 2, fixed, sizeof(fixed)), 1,
	       "an overlong encoding is invalid");
	is_str(fixed, "__", "byte by byte");
	is_int(lt_column_name_ok("abcdef", 6, fixed, 4), -ENAMETOOLONG, "cap too small");
	memset(big, 'x', sizeof(big));
	memcpy(big + 254, "\xc3\xa9", 2);
	is_int(lt_column_name_ok(big, sizeof(big), fixed, sizeof(fixed)), 1, "a long name");
	is_int((int)strlen(fixed), 254, "cut before a character that would not fit");

	for (size_t i = 0; i < ARRAY_SIZE(raw); i++)
		lens[i] = strlen(raw[i]);
	is_int(lt_header_names(raw, lens, ARRAY_SIZE(raw), &names), 0, "header names");
	for (size_t i = 0; names && i < ARRAY_SIZE(raw); i++)
		if (strcmp(names[i], want[i]) != 0) {
			diag("column %zu: got '%s', want '%s'", i, names[i], want[i]);
			same = 0;
		}
	ok(names && same, "trim, BOM, _cN by position, case-insensitive duplicates "
	   "suffixed, _rescued_data reserved");
	lt_names_free(names, ARRAY_SIZE(raw));

	{
		size_t n = 3000;
		const char **many = calloc(n, sizeof(*many));
		size_t *ml = calloc(n, sizeof(*ml));
		int uniq = 1;

		for (size_t i = 0; i < n; i++) {
			many[i] = "x";
			ml[i] = 1;
		}
		is_int(lt_header_names(many, ml, n, &names), 0, "3000 equal names");
		for (size_t i = 1; names && i < n; i++) {
			char w[16];

			snprintf(w, sizeof(w), "x_%zu", i + 1);
			uniq &= strcmp(names[i], w) == 0;
		}
		ok(names && uniq, "become x, x_2 ... x_3000");
		lt_names_free(names, n);
		is_int(lt_header_names(many, ml, LT_MAX_COLUMNS + 1, &names), -E2BIG,
		       "more than LT_MAX_COLUMNS");
		free(many);
		free(ml);
	}
}

static void col(struct lt_schema *s, const char *name, enum lt_type t, uint32_t v)
{
	s->cols = realloc(s->cols, (s->n + 1) * sizeof(*s->cols));
	s->cols[s->n].name = strdup(name);
	s->cols[s->n].type = t;
	s->cols[s->n].added_in = v;
	s->cols[s->n].nullable = 1;
	s->n++;
}

static int schema_equal(const struct lt_schema *a, const struct lt_schema *b)
{
	if (a->n != b->n || a->version != b->version || a->has_rescued != b->has_rescued)
		return 0;
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->cols[i].name, b->cols[i].name) != 0 ||
		    a->cols[i].type != b->cols[i].type ||
		    a->cols[i].added_in != b->cols[i].added_in ||
		    a->cols[i].nullable != b->cols[i].nullable)
			return 0;
	return 1;
}

static const char *const fuzz_tokens[] = {
	"{", "}", "[", "]", ",", ":", "\"", "\\", "\\u", "\\ud800", "null", "true",
	"1", "-1", "4294967296", "\"name\"", "\"type\"", "\"version\"", "\"INT\"",
	"\"columns\"", "\xff", "\x01", " ", "\"_rescued_data\"", "1e3",
};

static size_t mutate(unsigned char *p, size_t n, size_t cap, uint64_t *s)
{
	int k = 1 + (int)(rnd(s) % 4);

	while (k-- > 0 && n > 0) {
		size_t at = (size_t)(rnd(s) % n);

		switch (rnd(s) % 5) {
		case 0:		/* flip a byte */
			p[at] ^= (unsigned char)(1 + rnd(s) % 255);
			break;
		case 1:		/* truncate */
			n = at;
			break;
		case 2:		/* delete a span */
		{
			size_t want = (size_t)(1 + rnd(s) % 8);
			size_t len = MIN(n - at, want);	/* MIN evaluates twice */

			memmove(p + at, p + at + len, n - at - len);
			n -= len;
			break;
		}
		case 3:		/* insert a JSON-ish token */
		{
			const char *t = fuzz_tokens[rnd(s) % ARRAY_SIZE(fuzz_tokens)];
			size_t len = strlen(t);

			if (n + len <= cap) {
				memmove(p + at + len, p + at, n - at);
				memcpy(p + at, t, len);
				n += len;
			}
			break;
		}
		default:	/* swap two bytes */
		{
			size_t b = (size_t)(rnd(s) % n);
			unsigned char c = p[at];

			p[at] = p[b];
			p[b] = c;
			break;
		}
		}
	}
	return n;
}

static void test_schema_json(uint64_t seed)
{
	struct lt_schema s = { 0 }, back = { 0 }, cp = { 0 };
	struct gbuf j = { 0 }, j2 = { 0 };
	char *err = NULL;
	static const char *const bad[] = {
		"",
		"{",
		"[]",
		"{\"version\":1,\"columns\":[],\"rescued_data_column\":null} x",
		"{\"version\":1,\"columns\":[]}",
		"{\"version\":1,\"columns\":[],\"rescued_data_column\":null,\"x\":1}",
		"{\"version\":1,\"version\":1,\"columns\":[],\"rescued_data_column\":null}",
		"{\"version\":-1,\"columns\":[],\"rescued_data_column\":null}",
		"{\"version\":1.5,\"columns\":[],\"rescued_data_column\":null}",
		"{\"version\":01,\"columns\":[],\"rescued_data_column\":null}",
		"{\"version\":4294967296,\"columns\":[],\"rescued_data_column\":null}",
		"{\"version\":1,\"columns\":[],\"rescued_data_column\":\"other\"}",
		"{\"version\":1,\"columns\":[],\"rescued_data_column\":null,}",
		"{\"version\":1,\"columns\":[{\"name\":\"a\",\"type\":\"INT\","
		"\"nullable\":true}],\"rescued_data_column\":null}",
		"{\"version\":1,\"columns\":[{\"name\":\"a\",\"type\":\"WIDE\","
		"\"nullable\":true,\"added_in\":1}],\"rescued_data_column\":null}",
		"{\"version\":1,\"columns\":[{\"name\":\"a\",\"type\":\"INT\","
		"\"nullable\":true,\"added_in\":2}],\"rescued_data_column\":null}",
		"{\"version\":1,\"columns\":[{\"name\":\"a\",\"type\":\"INT\","
		"\"nullable\":1,\"added_in\":1}],\"rescued_data_column\":null}",
		"{\"version\":1,\"columns\":[{\"name\":\" a\",\"type\":\"INT\","
		"\"nullable\":true,\"added_in\":1}],\"rescued_data_column\":null}",
		"{\"version\":1,\"columns\":[{\"name\":\"\",\"type\":\"INT\","
		"\"nullable\":true,\"added_in\":1}],\"rescued_data_column\":null}",
		"{\"version\":1,\"columns\":[{\"name\":\"a\\u0000\",\"type\":\"INT\","
		"\"nullable\":true,\"added_in\":1}],\"rescued_data_column\":null}",
		"{\"version\":1,\"columns\":[{\"name\":\"a\\ud800\",\"type\":\"INT\","
		"\"nullable\":true,\"added_in\":1}],\"rescued_data_column\":null}",
		"{\"version\":1,\"columns\":[{\"name\":\"a\",\"type\":\"INT\","
		"\"nullable\":true,\"added_in\":1},{\"name\":\"A\",\"type\":\"INT\","
		"\"nullable\":true,\"added_in\":1}],\"rescued_data_column\":null}",
		"{\"version\":1,\"columns\":[{\"name\":\"_rescued_data\",\"type\":\"STRING\","
		"\"nullable\":true,\"added_in\":1}],\"rescued_data_column\":null}",
		"{\"version\":1,\"columns\":[{\"name\":\"a\",\"type\":\"INT\",\"type\":\"INT\","
		"\"nullable\":true,\"added_in\":1}],\"rescued_data_column\":null}",
		"{\"version\":1,\"columns\":[{\"name\":\"a\xff\",\"type\":\"INT\","
		"\"nullable\":true,\"added_in\":1}],\"rescued_data_column\":null}",
		"{\"version\":1,\"columns\":[{\"name\":\"a\",\"type\":\"INT\","
		"\"nullable\":true,\"added_in\":1}\"rescued_data_column\":null}",
		"{\"version\":1,\"columns\":[{\"\":1}],\"rescued_data_column\":null}",
		"{\"version\":1,\"columns\":{},\"rescued_data_column\":null}",
	};
	uint64_t accepted = 0, rejected = 0, odd = 0, r = seed ? seed : 1;
	size_t cap;
	unsigned char *p;

	s.version = 3;
	s.has_rescued = 1;
	col(&s, "id", LT_INT, 1);
	col(&s, "price", LT_DECIMAL, 1);
	col(&s, "when", LT_TIMESTAMPTZ, 2);
	col(&s, "note \"quoted\" \\ caf\xc3\xa9 \xf0\x9f\x98\x80", LT_STRING, 3);
	col(&s, "empty", LT_NULL, 3);
	s.cols[4].nullable = 0;
	is_int(lt_schema_to_json(&s, &j), 0, "schema to JSON");
	diag("%s", (char *)j.p);
	is_int(lt_schema_from_json((char *)j.p, j.n, &back, &err), 0, "and back");
	ok(err == NULL, "no error message on success");
	ok(schema_equal(&s, &back), "the round trip keeps the schema");
	is_int(lt_schema_to_json(&back, &j2), 0, "to JSON again");
	is_mem(j2.p, j2.n, j.p, j.n, "the same bytes");
	is_int(lt_schema_copy(&cp, &s), 0, "copy");
	ok(schema_equal(&s, &cp) && cp.cols[0].name != s.cols[0].name, "a deep copy");
	is_int(lt_schema_find(&s, "ID"), 0, "find ignores case");
	is_int(lt_schema_find(&s, "nope"), -1, "find a missing column");
	lt_schema_free(&cp);
	lt_schema_free(&back);

	{
		struct lt_schema e = { 0 };
		struct gbuf g = { 0 };
		const char *alt = " {\"rescued_data_column\" : null, \"columns\" : [ {"
			"\"added_in\":0,\"nullable\":false,\"type\":\"bigint\","
			"\"name\":\"x\\u00e9\\ud83d\\ude00\\/\"} ] ,\"version\":0}\n";

		is_int(lt_schema_to_json(&e, &g), 0, "an empty schema to JSON");
		is_int(lt_schema_from_json((char *)g.p, g.n, &back, &err), 0, "and back");
		ok(schema_equal(&e, &back), "still empty");
		lt_schema_free(&back);
		free(g.p);
		is_int(lt_schema_from_json(alt, strlen(alt), &back, &err), 0,
		       "keys in another order, white space, escapes, an alias");
		ok(back.n == 1 && strcmp(back.cols[0].name, "x\xc3\xa9\xf0\x9f\x98\x80/") == 0 &&
		   back.cols[0].type == LT_INT, "read as meant");
		lt_schema_free(&back);
	}

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		int ret = lt_schema_from_json(bad[i], strlen(bad[i]), &back, &err);

		ok(ret == -EINVAL && err && strncmp(err, "_schema.json: ", 14) == 0 &&
		   back.n == 0 && back.cols == NULL,
		   "malformed %zu refused: %s", i, err ? err : "(no message)");
		free(err);
		err = NULL;
	}

	diag("fuzz seed %llu (replay with LFS_FUZZ_SEED=%llu)",
	     (unsigned long long)seed, (unsigned long long)seed);
	cap = j.n + 256;
	p = malloc(cap);
	for (int i = 0; i < FUZZ_ROUNDS; i++) {
		size_t n;
		unsigned char *q;
		int ret;

		memcpy(p, j.p, j.n);
		n = mutate(p, j.n, cap, &r);
		q = malloc(n ? n : 1);	/* exact size: ASan sees any overread */
		memcpy(q, p, n);
		ret = lt_schema_from_json((char *)q, n, &back, &err);
		if (ret == 0 && !err) {
			struct gbuf g = { 0 };
			struct lt_schema again = { 0 };

			/* whatever it accepts writes back and reads the same */
			accepted++;
			if (lt_schema_to_json(&back, &g) != 0 ||
			    lt_schema_from_json((char *)g.p, g.n, &again, NULL) != 0 ||
			    !schema_equal(&back, &again))
				odd++;
			lt_schema_free(&again);
			free(g.p);
		} else if (ret == -EINVAL && err && back.n == 0) {
			rejected++;
		} else {
			odd++;
		}
		lt_schema_free(&back);
		free(err);
		err = NULL;
		free(q);
	}
	free(p);
	ok(odd == 0 && rejected > FUZZ_ROUNDS / 2,
	   "%d mutations: %llu refused with a message, %llu still valid (and round "
	   "trip), no other outcome", FUZZ_ROUNDS, (unsigned long long)rejected,
	   (unsigned long long)accepted);

	lt_schema_free(&s);
	free(j.p);
	free(j2.p);
}

/* Evolve cur with a batch; returns ev (caller releases). */
static int evolve(const struct lt_schema *cur, enum lt_mode m, size_t nb,
		  const char *const *names, const enum lt_type *types,
		  struct lt_evolution *ev)
{
	return lt_evolve(cur, m, names, types, nb, ev);
}

static const char *changes(const struct lt_evolution *ev)
{
	static char buf[1024];
	struct gbuf g = { 0 };

	lt_evolution_changes_json(ev, &g);
	snprintf(buf, sizeof(buf), "%s", g.p ? (char *)g.p : "");
	free(g.p);
	return buf;
}

static void test_evolve(void)
{
	static const char *const b1[] = { "id", "price", "day" };
	static const enum lt_type t1[] = { LT_INT, LT_INT, LT_BOOL };
	static const char *const b2[] = { "ID", "price", "day", "color" };
	static const enum lt_type t2[] = { LT_INT, LT_FLOAT, LT_DATE, LT_STRING };
	static const char *const b3[] = { "price" };	/* id, day missing */
	static const enum lt_type t3[] = { LT_DECIMAL };
	static const char *const dup[] = { "a", "A" };
	static const enum lt_type tdup[] = { LT_INT, LT_INT };
	struct lt_schema empty = { 0 }, v1 = { 0 };
	struct lt_evolution ev;
	enum lt_mode m;

	ok(lt_mode_parse("addNewColumns", &m) == 0 && m == LT_ADD_NEW_COLUMNS &&
	   lt_mode_parse("rescue", &m) == 0 && m == LT_RESCUE &&
	   lt_mode_parse("failOnNewColumns", &m) == 0 && m == LT_FAIL_ON_NEW_COLUMNS &&
	   lt_mode_parse("none", &m) == 0 && m == LT_NONE, "the four mode names");
	ok(lt_mode_parse("addnewcolumns", &m) == -EINVAL && lt_mode_parse("", &m) == -EINVAL &&
	   lt_mode_parse(NULL, &m) == -EINVAL, "names are exact");
	is_str(lt_mode_name(LT_FAIL_ON_NEW_COLUMNS), "failOnNewColumns", "lt_mode_name");

	/* the first batch sets the schema in every mode */
	for (int mode = LT_ADD_NEW_COLUMNS; mode <= LT_NONE; mode++) {
		is_int(evolve(&empty, (enum lt_mode)mode, 3, b1, t1, &ev), 0,
		       "%s: first batch", lt_mode_name((enum lt_mode)mode));
		ok(!ev.reason && ev.schema.n == 3 && ev.schema.version == 1 &&
		   ev.target[0] == 0 && ev.target[2] == 2 && ev.schema.cols[2].added_in == 1 &&
		   ev.schema.has_rescued == (mode == LT_RESCUE),
		   "%s: three columns at version 1 %s", lt_mode_name((enum lt_mode)mode),
		   changes(&ev));
		if (mode == LT_ADD_NEW_COLUMNS)
			lt_schema_copy(&v1, &ev.schema);
		lt_evolution_release(&ev);
	}
	is_int(evolve(&v1, LT_ADD_NEW_COLUMNS, 3, b1, t1, &ev), 0, "the same batch again");
	ok(ev.nchanges == 0 && ev.schema.version == 1 && !ev.reason, "changes nothing");
	lt_evolution_release(&ev);

	/* b2: case-differing ID, price INT→FLOAT, day BOOL+DATE→STRING, new color */
	is_int(evolve(&v1, LT_ADD_NEW_COLUMNS, 4, b2, t2, &ev), 0, "addNewColumns: batch 2");
	ok(!ev.reason && ev.schema.version == 2 && ev.schema.n == 4, "version 2, 4 columns");
	ok(ev.target[0] == 0 && strcmp(ev.schema.cols[0].name, "id") == 0,
	   "ID matches id ignoring case; the schema keeps 'id'");
	ok(ev.schema.cols[1].type == LT_FLOAT, "price widened to FLOAT");
	ok(ev.schema.cols[2].type == LT_STRING, "day BOOLEAN then DATE → STRING");
	ok(ev.target[3] == 3 && ev.schema.cols[3].added_in == 2 &&
	   ev.schema.cols[3].type == LT_STRING && ev.schema.cols[3].nullable,
	   "color added in version 2, nullable");
	is_str(changes(&ev), "[{\"widened\":\"price\",\"from\":\"INT\",\"to\":\"FLOAT\"},"
	       "{\"widened\":\"day\",\"from\":\"BOOLEAN\",\"to\":\"STRING\"},"
	       "{\"added\":\"color\",\"type\":\"STRING\"}]", "every change recorded");
	lt_evolution_release(&ev);

	is_int(evolve(&v1, LT_RESCUE, 4, b2, t2, &ev), 0, "rescue: batch 2");
	ok(!ev.reason && ev.schema.n == 3 && ev.schema.cols[1].type == LT_INT &&
	   ev.schema.cols[2].type == LT_BOOL, "no column added, no type widened");
	ok(ev.target[0] == 0 && ev.target[1] == 1 && ev.target[3] == LT_TARGET_RESCUE,
	   "color goes to _rescued_data; misfits are left to lt_fits per row");
	ok(ev.schema.has_rescued && ev.schema.version == 2 &&
	   strcmp(changes(&ev), "[{\"rescued_data_column\":\"_rescued_data\"}]") == 0,
	   "the rescued column appears when the mode turns to rescue: %s", changes(&ev));
	lt_evolution_release(&ev);

	is_int(evolve(&v1, LT_FAIL_ON_NEW_COLUMNS, 4, b2, t2, &ev), 0,
	       "failOnNewColumns: batch 2");
	ok(ev.reason && ev.nchanges == 0 && schema_equal(&ev.schema, &v1) &&
	   ev.target[0] == LT_TARGET_DROP,
	   "quarantined, nothing changes: %s", ev.reason ? ev.reason : "(no reason)");
	lt_evolution_release(&ev);
	{
		static const char *const nc[] = { "id", "color" };
		static const enum lt_type tnc[] = { LT_INT, LT_STRING };
		static const char *const wc[] = { "price" };
		static const enum lt_type twc[] = { LT_FLOAT };

		evolve(&v1, LT_FAIL_ON_NEW_COLUMNS, 2, nc, tnc, &ev);
		is_str(ev.reason, "new column 'color' (mode failOnNewColumns)",
		       "failOnNewColumns: the reason for a new column");
		lt_evolution_release(&ev);
		evolve(&v1, LT_FAIL_ON_NEW_COLUMNS, 1, wc, twc, &ev);
		is_str(ev.reason, "column 'price' would change type from INT to FLOAT "
		       "(mode failOnNewColumns)", "failOnNewColumns: a type change too");
		lt_evolution_release(&ev);
		evolve(&v1, LT_NONE, 2, nc, tnc, &ev);
		ok(!ev.reason && ev.nchanges == 0 && ev.target[0] == 0 &&
		   ev.target[1] == LT_TARGET_DROP, "none: a new column is dropped");
		lt_evolution_release(&ev);
	}

	is_int(evolve(&v1, LT_NONE, 4, b2, t2, &ev), 0, "none: batch 2");
	ok(!ev.reason && ev.nchanges == 0 && schema_equal(&ev.schema, &v1) &&
	   ev.target[0] == 0 && ev.target[1] == 1 && ev.target[3] == LT_TARGET_DROP,
	   "nothing changes, color dropped, misfits left to lt_fits (null)");
	lt_evolution_release(&ev);

	/* a batch lacking columns: nothing changes in any mode */
	for (int mode = LT_ADD_NEW_COLUMNS; mode <= LT_NONE; mode++) {
		struct lt_schema cur = { 0 };

		lt_schema_copy(&cur, &v1);
		cur.has_rescued = 1;
		evolve(&cur, (enum lt_mode)mode, 1, b3, t3, &ev);
		if (mode == LT_FAIL_ON_NEW_COLUMNS)
			ok(ev.reason != NULL, "%s: price INT→DECIMAL quarantines",
			   lt_mode_name((enum lt_mode)mode));
		else
			ok(!ev.reason && ev.target[0] == 1 && ev.schema.n == 3 &&
			   ev.schema.cols[1].type ==
			   (mode == LT_ADD_NEW_COLUMNS ? LT_DECIMAL : LT_INT) &&
			   ev.nchanges == (mode == LT_ADD_NEW_COLUMNS ? 1u : 0u),
			   "%s: id and day missing → null, no schema change for them",
			   lt_mode_name((enum lt_mode)mode));
		lt_evolution_release(&ev);
		lt_schema_free(&cur);
	}

	/* duplicates in a batch: quarantined in every mode */
	for (int mode = LT_ADD_NEW_COLUMNS; mode <= LT_NONE; mode++) {
		evolve(&v1, (enum lt_mode)mode, 2, dup, tdup, &ev);
		ok(ev.reason && strstr(ev.reason, "twice") && ev.nchanges == 0,
		   "%s: duplicate names quarantined: %s", lt_mode_name((enum lt_mode)mode),
		   ev.reason ? ev.reason : "(none)");
		lt_evolution_release(&ev);
	}
	{
		static const char *const rs[] = { "_Rescued_Data" };
		static const char *const ws[] = { " id" };
		static const enum lt_type ts[] = { LT_STRING };

		evolve(&v1, LT_ADD_NEW_COLUMNS, 1, rs, ts, &ev);
		ok(ev.reason != NULL, "a column named _rescued_data is quarantined");
		lt_evolution_release(&ev);
		evolve(&v1, LT_ADD_NEW_COLUMNS, 1, ws, ts, &ev);
		ok(ev.reason != NULL, "an unclean name is quarantined");
		lt_evolution_release(&ev);
	}

	/* a NULL column takes its first real type in every mode */
	for (int mode = LT_ADD_NEW_COLUMNS; mode <= LT_NONE; mode++) {
		static const char *const nn[] = { "x" };
		static const enum lt_type tn[] = { LT_NULL };
		static const enum lt_type td[] = { LT_DATE };
		struct lt_evolution e2;

		evolve(&empty, (enum lt_mode)mode, 1, nn, tn, &ev);
		evolve(&ev.schema, (enum lt_mode)mode, 1, nn, td, &e2);
		ok(ev.schema.cols[0].type == LT_NULL && !e2.reason &&
		   e2.schema.cols[0].type == LT_DATE && e2.schema.version == 2,
		   "%s: NULL → DATE %s", lt_mode_name((enum lt_mode)mode), changes(&e2));
		lt_evolution_release(&e2);
		lt_evolution_release(&ev);
	}

	{
		enum lt_type badt[] = { (enum lt_type)77 };

		is_int(lt_evolve(&v1, LT_NONE, b3, badt, 1, &ev), -EINVAL, "a bad type");
		is_int(lt_evolve(&v1, (enum lt_mode)9, b3, t3, 1, &ev), -EINVAL, "a bad mode");
		is_int(lt_evolve(&v1, LT_NONE, NULL, NULL, 0, &ev), 0, "an empty batch");
		ok(ev.nchanges == 0 && schema_equal(&ev.schema, &v1), "changes nothing");
		lt_evolution_release(&ev);
	}
	lt_schema_free(&v1);
}

static void test_rescued(void)
{
	const char *names[] = { "color", "price", "q\"x", "gone" };
	const char *vals[] = { "red", "12,5", "a\\b\n\x01\xff caf\xc3\xa9", NULL };
	size_t lens[] = { 3, 4, 12, 0 };
	struct gbuf g = { 0 };

	is_int(lt_rescued_json(names, vals, lens, 4, &g), 0, "rescued data");
	is_str((char *)g.p, "{\"color\":\"red\",\"price\":\"12,5\",\"q\\\"x\":"
	       "\"a\\\\b\\n\\u0001\\ufffd caf\xc3\xa9\",\"gone\":null}",
	       "a JSON object with escapes");
	g.n = 0;
	is_int(lt_rescued_json(NULL, NULL, NULL, 0, &g), 0, "nothing rescued");
	is_str((char *)g.p, "{}", "is {}");
	free(g.p);
}

int main(void)
{
	const char *env = getenv("LFS_FUZZ_SEED");
	uint64_t seed = env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL) ^ (uint64_t)getpid();

	test_infer();
	test_names();
	test_widen();
	test_fits_normalize();
	test_column_names();
	test_schema_json(seed);
	test_evolve();
	test_rescued();
	return done_testing();
}
