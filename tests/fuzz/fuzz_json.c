/*
 * tests/fuzz/fuzz_json.c — libFuzzer harness for catalog/json.c (make fuzz).
 *
 * The first two bytes of the input pick options (small caps and depth, a
 * small sniff) and the chunking; the whole input (those
 * bytes included, so corpus files parse as they are) is fed once whole and
 * once in chunks. Any result but 0 or -EINVAL, or any difference between the
 * two runs (a hash of everything the callbacks saw), aborts.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "catalog/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void mix(uint64_t *h, const void *p, size_t n)
{
	const unsigned char *c = p;

	for (size_t i = 0; i < n; i++)
		*h = (*h ^ c[i]) * 0x100000001b3ull;
}

static int on_rec(void *arg, uint64_t recno, uint64_t line, const struct json_field *f,
		  size_t n)
{
	uint64_t *h = arg;

	mix(h, "R", 1);
	mix(h, &recno, sizeof(recno));
	mix(h, &line, sizeof(line));
	for (size_t i = 0; i < n; i++) {
		mix(h, &f[i].klen, sizeof(f[i].klen));
		mix(h, f[i].key, f[i].klen);
		mix(h, &f[i].type, sizeof(f[i].type));
		mix(h, &f[i].vlen, sizeof(f[i].vlen));
		mix(h, f[i].val, f[i].vlen);
	}
	return 0;
}

static int on_bad(void *arg, uint64_t line, const char *reason, const char *raw,
		  size_t rawlen)
{
	uint64_t *h = arg;

	mix(h, "B", 1);
	mix(h, &line, sizeof(line));
	mix(h, reason, strlen(reason));
	mix(h, &rawlen, sizeof(rawlen));
	mix(h, raw, rawlen);
	return 0;
}

static uint64_t run(const uint8_t *d, size_t n, const struct json_opts *o, uint64_t seed,
		    size_t maxchunk)
{
	struct json_parser *p;
	uint64_t h = 1469598103934665603ull, s = seed | 1;
	size_t off = 0, nh;
	const struct json_field *hd;
	int ret = 0;

	if (json_new(&p, o, on_rec, on_bad, &h))
		abort();
	while (off < n && ret == 0) {
		size_t k = n - off;

		if (maxchunk) {
			s ^= s << 13;
			s ^= s >> 7;
			s ^= s << 17;
			k = 1 + s % maxchunk;
			if (k > n - off)
				k = n - off;
		}
		ret = json_feed(p, d + off, k);
		off += k;
	}
	if (ret == 0)
		ret = json_finish(p);
	if (ret != 0 && ret != -EINVAL)
		abort();
	mix(&h, &ret, sizeof(ret));
	mix(&h, &(int){ (int)json_form(p) }, sizeof(int));
	json_free(p);
	return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json_opts o = JSON_OPTS_INIT;
	uint8_t a = size > 0 ? data[0] : 0, b = size > 1 ? data[1] : 0;

	if (a & 4) {
		o.max_record = 1 + (b * 7u) % 256;
		o.max_depth = 1 + b % 8;
		o.max_fields = 1 + b % 16;
	}
	if (a & 8)
		o.sniff = 1 + b % 64;
	if (run(data, size, &o, 0, 0) != run(data, size, &o, (uint64_t)a << 8 | b,
					     (size_t)1 << (b >> 5)))
		abort();	/* chunking changed the result */
	return 0;
}
