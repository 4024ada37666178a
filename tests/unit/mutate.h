/*
 * tests/unit/mutate.h — the seeded randomness of the unit tests' fuzz
 * loops: an xorshift generator (a failure replays from its printed seed)
 * and a byte mutator for text formats, told which bytes are special to
 * the format under test.
 */
#ifndef LAKEFS_TESTS_UNIT_MUTATE_H
#define LAKEFS_TESTS_UNIT_MUTATE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

__attribute__((unused))
static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/*
 * Apply 1 to 6 mutations to p (n bytes used of cap): flip a byte, cut
 * the end, put or insert one of the nspecial bytes of special, duplicate
 * a span, or append garbage. Returns the new length.
 */
__attribute__((unused))
static size_t mutate_text(unsigned char *p, size_t n, size_t cap, uint64_t *s,
			  const char *special, size_t nspecial)
{
	int k = 1 + (int)(rnd(s) % 6);

	while (k-- > 0) {
		size_t at = n ? (size_t)(rnd(s) % n) : 0;

		switch (rnd(s) % 6) {
		case 0:		/* flip a byte */
			if (n)
				p[at] ^= (unsigned char)(1 + rnd(s) % 255);
			break;
		case 1:		/* truncate */
			n = at;
			break;
		case 2:		/* a special byte */
			if (n)
				p[at] = (unsigned char)special[rnd(s) % nspecial];
			break;
		case 3:		/* insert a special byte */
			if (n < cap) {
				memmove(p + at + 1, p + at, n - at);
				p[at] = (unsigned char)special[rnd(s) % nspecial];
				n++;
			}
			break;
		case 4:		/* duplicate a span */
			if (n) {
				size_t len = (size_t)(rnd(s) % 64);

				len = len < n - at ? len : n - at;
				len = len < cap - n ? len : cap - n;
				memmove(p + at + len, p + at, n - at);
				n += len;
			}
			break;
		default:	/* garbage at the end */
			while (n < cap && rnd(s) % 8)
				p[n++] = (unsigned char)rnd(s);
			break;
		}
	}
	return n;
}

#endif
