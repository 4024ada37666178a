/*
 * tests/bench/gencsv.c — a deterministic CSV of mixed types for the
 * promotion benchmark: gencsv ROWS [SEED] > file.csv
 *
 * Columns: id (INT), customer (STRING), amount (DECIMAL, 2 places),
 * qty (INT), ratio (FLOAT), paid (BOOLEAN), day (DATE), ts (TIMESTAMP).
 * About 70 bytes a row.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

int main(int argc, char **argv)
{
	uint64_t rows = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000;
	uint64_t s = argc > 2 ? strtoull(argv[2], NULL, 10) : 42;
	static char buf[1 << 16];

	if (s == 0)
		s = 42;
	setvbuf(stdout, buf, _IOFBF, sizeof(buf));
	fputs("id,customer,amount,qty,ratio,paid,day,ts\n", stdout);
	for (uint64_t i = 1; i <= rows; i++) {
		uint64_t r = rnd(&s), q = rnd(&s);

		printf("%llu,cust_%05llu,%llu.%02llu,%llu,%.6f,%s,2026-%02llu-%02llu,"
		       "2026-%02llu-%02lluT%02llu:%02llu:%02llu\n",
		       (unsigned long long)i, (unsigned long long)(r % 50000),
		       (unsigned long long)(r >> 20) % 10000, (unsigned long long)(r >> 40) % 100,
		       (unsigned long long)(q % 100), (double)(q >> 11) / 9007199254740992.0,
		       (q >> 7) & 1 ? "true" : "false",
		       (unsigned long long)(q >> 12) % 12 + 1, (unsigned long long)(q >> 20) % 28 + 1,
		       (unsigned long long)(q >> 12) % 12 + 1, (unsigned long long)(q >> 20) % 28 + 1,
		       (unsigned long long)(q >> 30) % 24, (unsigned long long)(q >> 36) % 60,
		       (unsigned long long)(q >> 44) % 60);
	}
	return fflush(stdout) ? 1 : 0;
}
