#!/bin/sh
# make fuzz: build the libFuzzer harnesses (tests/fuzz/fuzz_*.c: the CSV and
# JSON parsers and the whole silver transform) with clang
# and ASan+UBSan into build-fuzz/, then run each for FUZZ_SECONDS on a copy
# of its seed corpus (tests/fuzz/corpus/NAME/; new inputs stay in the copy).
# A crash leaves build-fuzz/crash-NAME-*: add it to the corpus once fixed.
# clang is not in tools/deps.sh; when it is missing and we are root, it is
# installed here (idempotent). FUZZ_TARGETS picks harnesses (csv json ingest).
set -eu
secs=${FUZZ_SECONDS:-60}
top=$(cd "$(dirname "$0")/.." && pwd)
out="$top/build-fuzz"

pick_cc() {
	for c in clang-14 clang; do
		if command -v "$c" >/dev/null 2>&1; then
			echo "$c"
			return 0
		fi
	done
	return 1
}
if ! cc=$(pick_cc); then
	if [ "$(id -u)" -ne 0 ]; then
		echo "lakefs: make fuzz needs clang (run as root, or: sudo apt-get install clang)" >&2
		exit 1
	fi
	echo "lakefs: installing clang for make fuzz" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -qq --no-install-recommends clang >/dev/null 2>&1 ||
		{ apt-get update -qq && apt-get install -y -qq --no-install-recommends clang >/dev/null; }
	cc=$(pick_cc)
fi

mkdir -p "$out"
flags="-std=c11 -D_GNU_SOURCE -O1 -g -fno-omit-frame-pointer -I$top
       -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all"
status=0
for name in ${FUZZ_TARGETS:-csv json ingest}; do
	if [ "$name" = ingest ]; then	# the whole transform and what it uses
		srcs="$top/catalog/ingest.c $top/catalog/csv.c $top/catalog/json.c
		      $top/catalog/types.c $top/util/util.c $top/util/log.c"
		libs="-lsqlite3 -lz -lzstd -pthread"
	else
		srcs="$top/catalog/$name.c $top/util/util.c"
		libs=""
	fi
	# shellcheck disable=SC2086
	"$cc" $flags -o "$out/fuzz_$name" "$top/tests/fuzz/fuzz_$name.c" $srcs $libs
	rm -rf "$out/corpus-$name"
	mkdir -p "$out/corpus-$name"
	cp "$top/tests/fuzz/corpus/$name/"* "$out/corpus-$name/"
	echo "lakefs: fuzzing $name for ${secs}s" >&2
	if ! "$out/fuzz_$name" -max_total_time="$secs" -max_len=65536 -timeout=10 \
		-rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$out/crash-$name-" "$out/corpus-$name" \
		>"$out/fuzz_$name.log" 2>&1; then
		echo "lakefs: fuzz_$name found a problem: see $out/fuzz_$name.log and $out/crash-$name-*" >&2
		status=1
	fi
	grep -E '^(#[0-9]+.*DONE|Done|stat::number_of_executed_units|stat::peak_rss_mb)|cov:' \
		"$out/fuzz_$name.log" | tail -4 >&2 || true
done
exit $status
