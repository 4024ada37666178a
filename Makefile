# lakefs — a lakehouse you can mount.
#
#   make               build everything into build/
#   make demo          install deps, build, mount a demo lakefs on /mnt/lake
#   make test          install deps, build, run every test under prove
#   make bench         print the benchmark figures (see tests/bench/)
#   make bench-s3      the bucket's figures alone (BENCH_INSTALL=1: with s3fs, rclone)
#   make bench-lake    promotion figures beside DuckDB
#   make bench-access  the access checks' cost: a granted user beside the admin
#   make install       install programs and man pages under $(PREFIX)
#   make SANITIZE=address,undefined test
#   make fuzz          run the parsers' libFuzzer harnesses (FUZZ_SECONDS=60 each)
#
VERSION   := 0.1.0
PREFIX    ?= /usr/local
DESTDIR   ?=
CC        ?= cc
B         := build
SANITIZE  ?=

PKGS      := fuse3
CFLAGS    ?= -O2 -g
CFLAGS    += -std=c11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -DFUSE_USE_VERSION=314 \
             -DLAKEFS_VERSION='"$(VERSION)"' \
             -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wstrict-prototypes \
             -Wmissing-prototypes -Wvla -Wformat=2 -Wno-format-nonliteral -Wno-format-truncation \
             -fno-strict-aliasing -pthread -I. -MMD -MP
CFLAGS    += $(shell pkg-config --cflags libxml-2.0 libcurl 2>/dev/null)
LDLIBS    := -lleveldb -lzstd -lxxhash -lsqlite3 -lz -lcurl -lxml2 -lcrypto -pthread
FUSE_CFLAGS = $(shell pkg-config --cflags fuse3 2>/dev/null)
FUSE_LIBS   = $(shell pkg-config --libs fuse3 2>/dev/null || echo -lfuse3)
ifneq ($(SANITIZE),)
CFLAGS    += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS   += -fsanitize=$(SANITIZE)
endif

LIB_SRC   := util/log.c util/util.c sync/workq.c sync/local.c sync/blockstore.c sync/s3.c \
             sync/remote.c catalog/journal.c \
             catalog/meta.c catalog/inode.c catalog/ns.c catalog/types.c \
             catalog/csv.c catalog/json.c catalog/ingest.c catalog/lake.c \
             catalog/promote.c catalog/gold.c catalog/sqlq.c catalog/gstore.c \
             catalog/access.c
FS_SRC    := fs/main.c fs/ops.c fs/ctl.c
TOOL_SRC  := tools/lakefs.c
UNIT_SRC  := $(wildcard tests/unit/test_*.c)
TPROG_SRC := tests/posix/posix_check.c tests/fsx/fsx.c tests/tools/crashwriter.c \
             tests/tools/faultproxy.c

LIB_OBJ   := $(LIB_SRC:%.c=$(B)/%.o)
FS_OBJ    := $(FS_SRC:%.c=$(B)/%.o)
TOOL_OBJ  := $(TOOL_SRC:%.c=$(B)/%.o)
UNIT_BIN  := $(UNIT_SRC:tests/unit/%.c=$(B)/tests/unit/%)
TPROG_BIN := $(patsubst %.c,$(B)/%,$(wildcard $(TPROG_SRC)))
S3CHECK   := $(B)/tests/s3/s3check
PROGS     := $(B)/bin/lakefs-mount $(B)/bin/lakefs $(B)/bin/mount.fuse.lakefs

all: $(PROGS) $(UNIT_BIN) $(TPROG_BIN) $(S3CHECK)

deps:
	@sh tools/deps.sh

$(B)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(FUSE_CFLAGS) -c -o $@ $<

$(B)/liblakefs.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/bin/lakefs-mount: $(FS_OBJ) $(B)/liblakefs.a
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(FUSE_LIBS) $(LDLIBS)

$(B)/bin/mount.fuse.lakefs: $(B)/bin/lakefs-mount
	ln -sf lakefs-mount $@

$(B)/bin/lakefs: $(TOOL_OBJ) $(B)/liblakefs.a
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/tests/unit/%: tests/unit/%.c $(B)/liblakefs.a tests/unit/tap.h tests/unit/mutate.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(B)/liblakefs.a $(LDLIBS)

# The S3 client's test against s3rver (tests/integration/t0600-s3-client.sh).
$(S3CHECK): tests/s3/s3check.c $(B)/liblakefs.a tests/unit/tap.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(B)/liblakefs.a $(LDLIBS)

$(B)/tests/%: tests/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< -lcrypto

# The demo: a lakefs with the embedded local store on /mnt/lake.
DEMO_MNT   ?= /mnt/lake
DEMO_STATE ?= /var/lib/lakefs/demo
demo: deps all
	@sh tools/demo.sh $(B)/bin $(DEMO_STATE) $(DEMO_MNT)

# The unit tests run twice: as built, and under ASan+UBSan (in build-asan/).
ASAN_UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=build-asan/tests/unit/%)

asan-unit:
	@$(MAKE) --no-print-directory B=build-asan SANITIZE=address,undefined $(ASAN_UNIT_BIN) \
		build-asan/tests/s3/s3check

test: deps all asan-unit
	@sh tools/check-man.sh
	prove -f --timer $(UNIT_BIN) $(ASAN_UNIT_BIN) tests/integration/t*.sh

unit: all asan-unit
	prove -f $(UNIT_BIN) $(ASAN_UNIT_BIN)

bench: deps all
	@bash tests/bench/bench.sh
	@bash tests/bench/bench-s3.sh
	@bash tests/bench/bench-lake.sh
	@bash tests/bench/bench-access.sh
	@LFS_ACCESS_COLD=0 bash tests/bench/bench-access.sh
	@LFS_ACCESS_OWNER=admin bash tests/bench/bench-access.sh

# Promotion alone: a 10M-row CSV beside DuckDB (LFS_LAKE_ROWS to change it).
bench-lake: deps all
	@bash tests/bench/bench-lake.sh

# Access checks alone: ls -lR and reading 2,000 small files as a granted
# user beside the admin, cold and warm, files written by a third user; then
# cold with the admin's files (LFS_ACCESS_FILES, LFS_ACCESS_ROUNDS to change
# it).
bench-access: deps all
	@bash tests/bench/bench-access.sh
	@LFS_ACCESS_COLD=0 bash tests/bench/bench-access.sh
	@LFS_ACCESS_OWNER=admin bash tests/bench/bench-access.sh

# The bucket's figures alone (BENCH_INSTALL=1 installs s3fs and rclone to
# compare with).
bench-s3: deps all
	@bash tests/bench/bench-s3.sh

# The parsers' libFuzzer harnesses (tests/fuzz/), built with clang into
# build-fuzz/ and run FUZZ_SECONDS each on a copy of their corpus. Not part of
# make test; installs clang when it is missing and we are root.
FUZZ_SECONDS ?= 60
fuzz:
	@FUZZ_SECONDS=$(FUZZ_SECONDS) sh tools/fuzz.sh

install: $(PROGS)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)/sbin $(DESTDIR)$(PREFIX)/share/man/man1 \
	        $(DESTDIR)$(PREFIX)/share/man/man7 $(DESTDIR)$(PREFIX)/share/man/man8
	install -m 755 $(B)/bin/lakefs-mount $(B)/bin/lakefs $(DESTDIR)$(PREFIX)/bin/
	ln -sf $(PREFIX)/bin/lakefs-mount $(DESTDIR)/sbin/mount.fuse.lakefs
	install -m 644 man/lakefs.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 644 man/lakefs.7 $(DESTDIR)$(PREFIX)/share/man/man7/
	install -m 644 man/lakefs-mount.8 $(DESTDIR)$(PREFIX)/share/man/man8/

clean:
	rm -rf $(B) build-asan build-fuzz

.PHONY: all deps demo test unit asan-unit fuzz bench bench-s3 bench-lake bench-access install clean
-include $(shell find $(B) -name '*.d' 2>/dev/null)
