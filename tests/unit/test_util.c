/*
 * tests/unit/test_util.c — util/util.c: sizes, hex, big-endian numbers,
 * mkdir_p and the write helpers.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/unit/tap.h"
#include "util/util.h"

static void test_parse_size(void)
{
	static const struct {
		const char *s;
		uint64_t want;
	} good[] = {
		{ "0", 0 },
		{ "4096", 4096 },
		{ "64K", 64ull << 10 },
		{ "64k", 64ull << 10 },
		{ "64KiB", 64ull << 10 },
		{ "64KB", 64ull << 10 },
		{ "1M", 1ull << 20 },
		{ "1MiB", 1ull << 20 },
		{ "16M", 16ull << 20 },
		{ "2G", 2ull << 30 },
		{ "2GiB", 2ull << 30 },
		{ "3T", 3ull << 40 },
		{ "17179869183G", 17179869183ull << 30 },	/* largest that fits */
	};
	static const char *const bad[] = {
		"", "K", "M1", "abc", "-1", "+1", " 1K", "1K ", "1.5M", "1X",
		"1K2", "1KK", "1Mi B", "1KBB", "1MiBB", "1B", "0x10",
		"99999999999999999999",		/* over UINT64_MAX */
		"17179869184G",			/* 2^64: overflows the shift */
		"16777216T",
	};

	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		uint64_t v = 12345;
		int r = parse_size(good[i].s, &v);

		ok(r == 0 && v == good[i].want, "parse_size(\"%s\") = %llu (got %d, %llu)",
		   good[i].s, (unsigned long long)good[i].want, r,
		   (unsigned long long)v);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		uint64_t v = 12345;
		int r = parse_size(bad[i], &v);

		ok(r == -EINVAL && v == 12345,
		   "parse_size(\"%s\") is -EINVAL and leaves the output alone", bad[i]);
	}
	{
		uint64_t v = 7;

		is_int(parse_size(NULL, &v), -EINVAL, "parse_size(NULL) is -EINVAL");
	}
}

static void test_hex(void)
{
	unsigned char in[256], back[256];
	char out[2 * sizeof(in) + 1];
	char big[2 * sizeof(in) + 1];

	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (unsigned char)i;
	memset(out, 'x', sizeof(out));
	hex_encode(in, 4, out);
	is_str(out, "00010203", "hex_encode of 4 bytes, NUL-terminated");
	{
		unsigned char b[] = { 0xde, 0xad, 0xbe, 0xef, 0x0f, 0xf0 };

		hex_encode(b, sizeof(b), out);
		is_str(out, "deadbeef0ff0", "hex_encode is lowercase, zero-padded");
	}
	hex_encode(in, 0, out);
	is_str(out, "", "hex_encode of 0 bytes is the empty string");

	hex_encode(in, sizeof(in), out);
	is_int(strlen(out), 2 * sizeof(in), "hex_encode of 256 bytes gives 512 digits");
	memset(back, 0, sizeof(back));
	is_int(hex_decode(out, back, sizeof(back)), 0, "hex_decode of its output");
	is_mem(back, sizeof(back), in, sizeof(in), "hex round trip of every byte value");

	for (size_t i = 0; out[i]; i++)
		big[i] = (out[i] >= 'a' && out[i] <= 'f') ? (char)(out[i] - 32) : out[i];
	big[2 * sizeof(in)] = '\0';
	memset(back, 0, sizeof(back));
	is_int(hex_decode(big, back, sizeof(back)), 0, "hex_decode accepts uppercase");
	is_mem(back, sizeof(back), in, sizeof(in), "uppercase decodes to the same bytes");

	{
		unsigned char b[4];

		is_int(hex_decode("0g12", b, 2), -EINVAL, "hex_decode: 'g' is -EINVAL");
		is_int(hex_decode("g012", b, 2), -EINVAL, "hex_decode: bad high digit");
		is_int(hex_decode("12 4", b, 2), -EINVAL, "hex_decode: space is -EINVAL");
		is_int(hex_decode("123", b, 2), -EINVAL, "hex_decode: too short is -EINVAL");
		is_int(hex_decode("", b, 1), -EINVAL, "hex_decode: empty is -EINVAL");
		is_int(hex_decode("ab", b, 0), 0, "hex_decode of 0 bytes succeeds");
		is_int(hex_decode("01ff", b, 2), 0, "hex_decode \"01ff\"");
		ok(b[0] == 0x01 && b[1] == 0xff, "\"01ff\" is 0x01 0xff");
	}
}

static void test_be(void)
{
	unsigned char b[12];
	static const unsigned char want64[8] = {
		0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef
	};
	static const unsigned char want32[4] = { 0xde, 0xad, 0xbe, 0xef };
	static const uint64_t v64[] = {
		0, 1, 0xff, 0x100, 0x7fffffffffffffffull, 0x8000000000000000ull,
		UINT64_MAX, 0x0102030405060708ull,
	};
	int all = 1;

	memset(b, 0xaa, sizeof(b));
	put_be64(b + 2, 0x0123456789abcdefull);
	is_mem(b + 2, 8, want64, 8, "put_be64 writes most significant byte first");
	ok(b[0] == 0xaa && b[1] == 0xaa && b[10] == 0xaa && b[11] == 0xaa,
	   "put_be64 writes exactly 8 bytes");
	ok(get_be64(b + 2) == 0x0123456789abcdefull, "get_be64 reads it back");

	memset(b, 0x55, sizeof(b));
	put_be32(b + 1, 0xdeadbeefu);
	is_mem(b + 1, 4, want32, 4, "put_be32 writes most significant byte first");
	ok(b[0] == 0x55 && b[5] == 0x55, "put_be32 writes exactly 4 bytes");
	ok(get_be32(b + 1) == 0xdeadbeefu, "get_be32 reads it back");

	for (size_t i = 0; i < ARRAY_SIZE(v64); i++) {
		put_be64(b, v64[i]);
		all &= get_be64(b) == v64[i];
		put_be32(b, (uint32_t)v64[i]);
		all &= get_be32(b) == (uint32_t)v64[i];
	}
	ok(all, "be64/be32 round trip of edge values");

	{
		unsigned char a[8], c[8];

		put_be64(a, 255);
		put_be64(c, 256);
		ok(memcmp(a, c, 8) < 0, "big-endian keys sort numerically (255 < 256)");
		put_be64(a, 0x00ffffffffffffffull);
		put_be64(c, 0x0100000000000000ull);
		ok(memcmp(a, c, 8) < 0, "big-endian keys sort numerically (high byte)");
	}
}

static int is_dir(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static void test_mkdir_p(const char *tmp)
{
	char p[4096], f[4096];
	struct stat st;
	int fd;

	snprintf(p, sizeof(p), "%s/a/b/c/d", tmp);
	is_int(mkdir_p(p, 0700), 0, "mkdir_p creates a nested path");
	ok(is_dir(p), "the nested directory exists");
	ok(stat(p, &st) == 0 && (st.st_mode & 07777) == 0700,
	   "mkdir_p uses the given mode");
	is_int(mkdir_p(p, 0700), 0, "mkdir_p of an existing path succeeds");

	snprintf(p, sizeof(p), "%s/a/x/", tmp);
	is_int(mkdir_p(p, 0755), 0, "mkdir_p with a trailing slash");
	ok(is_dir(p), "trailing-slash directory exists");

	snprintf(p, sizeof(p), "%s//a//y", tmp);
	is_int(mkdir_p(p, 0755), 0, "mkdir_p with doubled slashes");
	snprintf(p, sizeof(p), "%s/a/y", tmp);
	ok(is_dir(p), "doubled-slash directory exists");

	snprintf(f, sizeof(f), "%s/file", tmp);
	fd = open(f, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ok(fd >= 0, "create a regular file");
	if (fd >= 0)
		close(fd);
	snprintf(p, sizeof(p), "%s/file/sub", tmp);
	is_int(mkdir_p(p, 0700), -ENOTDIR, "mkdir_p under a regular file is -ENOTDIR");
	ok(mkdir_p(f, 0700) < 0,
	   "mkdir_p of a path that is a regular file fails (it is not a directory)");

	ok(mkdir_p("", 0700) < 0, "mkdir_p(\"\") fails");
	{
		char *longp = malloc(5000);

		if (longp) {
			memset(longp, 'a', 4999);
			longp[4999] = '\0';
			is_int(mkdir_p(longp, 0700), -ENAMETOOLONG,
			       "mkdir_p of a 4999-byte path is -ENAMETOOLONG");
			free(longp);
		}
	}
	{
		char cwd[4096], rel[64];

		if (getcwd(cwd, sizeof(cwd)) && chdir(tmp) == 0) {
			snprintf(rel, sizeof(rel), "rel/one/two");
			is_int(mkdir_p(rel, 0700), 0, "mkdir_p of a relative path");
			ok(is_dir("rel/one/two"), "relative directory exists");
			if (chdir(cwd) != 0)
				bail_out("cannot return to %s", cwd);
		} else {
			skip(2, "cannot chdir to %s", tmp);
		}
	}
}

static void test_write_helpers(const char *tmp)
{
	char p[4096];
	unsigned char buf[100000], back[100000];
	int fd;

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (unsigned char)(i * 7 + 3);
	snprintf(p, sizeof(p), "%s/w", tmp);
	fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0) {
		skip(6, "cannot create %s", p);
		return;
	}
	is_int(write_all(fd, buf, sizeof(buf)), 0, "write_all of 100000 bytes");
	is_int(pwrite_all(fd, "XYZ", 3, 50000), 0, "pwrite_all at an offset");
	is_int(pwrite_all(fd, "END", 3, 200000), 0, "pwrite_all past the end");
	memcpy(buf + 50000, "XYZ", 3);
	is_int(pread(fd, back, sizeof(back), 0), (long long)sizeof(back), "read back");
	is_mem(back, sizeof(back), buf, sizeof(buf), "file holds what was written");
	{
		struct stat st;

		ok(fstat(fd, &st) == 0 && st.st_size == 200003,
		   "pwrite_all past the end extends the file");
	}
	close(fd);
	is_int(write_all(-1, buf, 1), -EBADF, "write_all on a bad fd is -EBADF");
	is_int(fsync_dir(tmp), 0, "fsync_dir of a directory");
	is_int(fsync_dir(p), -ENOTDIR, "fsync_dir of a file is -ENOTDIR");
}

static void test_time(void)
{
	uint64_t a = mono_ns(), b = mono_ns();
	struct timespec ts = now_ts();

	ok(b >= a, "mono_ns does not go backwards");
	ok(ts.tv_sec > 1600000000 && ts.tv_nsec >= 0 && ts.tv_nsec < 1000000000,
	   "now_ts is a plausible wall-clock time");
}

static int rm_rf(const char *dir)
{
	char cmd[4200];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd);
}

int main(void)
{
	char tmp[] = "/tmp/lakefs-unit-util.XXXXXX";

	if (!mkdtemp(tmp))
		bail_out("mkdtemp: %s", strerror(errno));
	test_parse_size();
	test_hex();
	test_be();
	test_mkdir_p(tmp);
	test_write_helpers(tmp);
	test_time();
	ok(rm_rf(tmp) == 0, "scratch directory removed");
	return done_testing();
}
