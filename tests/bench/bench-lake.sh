#!/usr/bin/env bash
# tests/bench/bench-lake.sh — `make bench-lake` (and part of `make bench`):
# the figures of bronze -> silver promotion, beside DuckDB on the same file.
#
#   1. a generated CSV of LFS_LAKE_ROWS rows (10,000,000: about 0.7 GB) and
#      8 mixed-type columns (tests/bench/gencsv.c);
#   2. DuckDB (the npm package @duckdb/node-api, 2 threads) reads it and
#      writes it back as CSV: its time and peak RSS are the baseline;
#   3. lakefs: the file is copied into a bronze table whose quiet period is
#      long, then `lakefs run` promotes it; the figure is the job's time
#      (from /.lakefs/jobs) and the daemon's peak RSS while it ran (VmHWM,
#      reset just before through /proc/PID/clear_refs);
#   4. the latency from the close of a 10 KB file to its rows readable in
#      silver, with the default quiet period (1 s);
#   5. appending a 1 MB batch to the big table: the job's time, and the new
#      block bytes the store gained (unique plaintext and stored);
#   6. a gold table over the big silver table (SELECT day, sum(amount),
#      count(*) ... GROUP BY day): the refresh job's time beside DuckDB
#      running the same query over the landed CSV;
#   7. the latency from the close of a 10 KB bronze file to its rows in a
#      gold table over its silver table, default settings.
#
# A benchmark, not a test: figures and ratios are printed with the issue's
# targets as PASS/MISS information; the exit status is non-zero only when
# something broke (a mount failed, a row count is wrong). Everything runs
# under timeout(1); the EXIT trap unmounts.
#
# Environment: LFS_BIN (programs), LFS_BENCH_DIR (parent of the work dir,
# default /var/tmp), LFS_LAKE_ROWS (10000000), LFS_BENCH_TIMEOUT (1800).
set -u -o pipefail
export LC_ALL=C

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${LFS_BIN:-$TOP/build/bin}
ROWS=${LFS_LAKE_ROWS:-10000000}
WATCHDOG_S=${LFS_BENCH_TIMEOUT:-1800}

say()  { printf 'bench-lake: %s\n' "$*" >&2; }
skip() { say "skipped: $*"; exit 0; }
broke() { say "ERROR: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || skip "needs root (mounts lakefs, reads /proc of the daemon)"
for c in fusermount3 cc timeout python3 node; do
	command -v "$c" >/dev/null 2>&1 || skip "$c is not installed"
done
[ -x "$BIN/lakefs-mount" ] || skip "build first (make)"
DUCK=$TOP/tests/node_modules/@duckdb/node-api
[ -d "$DUCK" ] || say "DuckDB (@duckdb/node-api) is not installed: no baseline (make deps)"

W=$(mktemp -d "${LFS_BENCH_DIR:-/var/tmp}/lakefs-bench-lake.XXXXXX")
MNT=$W/mnt
cleanup() {
	if grep -q " $MNT fuse" /proc/mounts 2>/dev/null; then
		fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null
	fi
	[ -n "${WD:-}" ] && kill "$WD" 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
( sleep "$WATCHDOG_S"; say "watchdog: over ${WATCHDOG_S}s"; kill -TERM $$ ) >/dev/null 2>&1 &
WD=$!

L="$BIN/lakefs"
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# the last job of a table, from /.lakefs/jobs: "seconds state rows_total"
last_job() {
	python3 - "$MNT/.lakefs/jobs" "$1" <<'EOF'
import json, sys
last = None
for line in open(sys.argv[1]):
    j = json.loads(line)
    if j["table"] == sys.argv[2]:
        last = j
print(last["seconds"], last["state"], last["rows_total"], last["error"] or "")
EOF
}
status_u64() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$MNT/.lakefs/status" "$1"; }

# --- the data ---
cc -O2 -o "$W/gencsv" "$TOP/tests/bench/gencsv.c" || broke "cannot build gencsv"
say "generating $ROWS rows"
"$W/gencsv" "$ROWS" 42 > "$W/big.csv" || broke "gencsv failed"
"$W/gencsv" 14000 7 | tail -n +2 | sed 's/^/9/' > "$W/append.body"
{ head -1 "$W/big.csv"; cat "$W/append.body"; } > "$W/append.csv"
BYTES=$(stat -c %s "$W/big.csv")
say "$(awk -v b="$BYTES" 'BEGIN { printf "%.0f MB", b / 1e6 }') of CSV"

# --- DuckDB: read the CSV, write it back as CSV ---
DUCK_S="" DUCK_RSS=""
if [ -d "$DUCK" ]; then
	best=""
	for r in 1 2; do
		out=$(timeout 600 node "$TOP/tests/bench/duckdb-copy.mjs" "$W/big.csv" \
		      "$W/duck-out.csv") || broke "duckdb failed"
		read -r s rss <<< "$out"
		if [ -z "$best" ] || awk -v a="$s" -v b="$best" 'BEGIN { exit !(a < b) }'; then
			best=$s DUCK_RSS=$rss
		fi
		rm -f "$W/duck-out.csv"
	done
	DUCK_S=$best
	say "duckdb: $DUCK_S s, peak RSS $DUCK_RSS MiB"
fi

# --- lakefs ---
mkdir -p "$MNT"
timeout 60 "$BIN/lakefs-mount" --state "$W/state" "$MNT" || broke "mount failed"
PID=$(pgrep -f "lakefs-mount --state $W/state" | head -1)
mkdir "$MNT/bench" && mkdir "$MNT/bench/bronze/big" "$MNT/bench/bronze/small" ||
	broke "cannot make the tables"
setfattr -n user.lakefs.quiet_ms -v 3600000 "$MNT/bench/bronze/big" || broke "setfattr"
t0=$(now)
timeout 600 cp "$W/big.csv" "$MNT/bench/bronze/big/" || broke "cp into bronze failed"
LAND_S=$(secs "$t0" "$(now)")
timeout 120 "$L" wait "$MNT" --timeout 100 >/dev/null 2>&1
echo 5 > "/proc/$PID/clear_refs" 2>/dev/null	# reset VmHWM
rss0=$(awk '/VmRSS/ { print int($2 / 1024) }' "/proc/$PID/status")
t0=$(now)
timeout 900 "$L" run "$MNT/bench/bronze/big" --timeout 880 >/dev/null || broke "lakefs run failed"
RUN_S=$(secs "$t0" "$(now)")
PEAK_RSS=$(awk '/VmHWM/ { print int($2 / 1024) }' "/proc/$PID/status")
read -r JOB_S JOB_STATE JOB_ROWS _ <<< "$(last_job bench.bronze.big)"
[ "$JOB_STATE" = done ] || broke "the promotion job ended $JOB_STATE"
[ "$JOB_ROWS" = "$ROWS" ] || broke "silver has $JOB_ROWS rows, want $ROWS"
lines=$(wc -l < "$MNT/bench/silver/big/big.csv")
[ "$lines" = $((ROWS + 1)) ] || broke "big.csv has $lines lines, want $((ROWS + 1))"
say "lakefs: landing $LAND_S s, promotion job $JOB_S s (run $RUN_S s), peak RSS $PEAK_RSS MiB (from $rss0)"

# --- latency of a 10 KB file, default quiet period ---
"$W/gencsv" 140 3 > "$W/small.csv"
# latency SRC DST WATCH WANT [ALTER]: copy SRC to DST (ALTER: with its
# first data row changed, so that it is a new batch), then print the
# seconds until WATCH has WANT lines, or (WANT "=TEXT") reads TEXT, where
# \n is a newline; "timeout" after 60 s
cat > "$W/latency.py" <<'EOF'
import sys, time
src, dst, watch, want = sys.argv[1:5]
data = open(src, "rb").read()
if len(sys.argv) > 5:
    data = data.replace(b"\n1", b"\n91", 1)
exact = want.startswith("=") and want[1:].replace("\\n", "\n").encode()
with open(dst, "wb") as f:
    f.write(data)
t0 = time.monotonic()
while time.monotonic() - t0 < 60:
    try:
        got = open(watch, "rb").read()
        if (got == exact) if exact else got.count(b"\n") >= int(want):
            print("%.3f" % (time.monotonic() - t0))
            sys.exit(0)
    except FileNotFoundError:
        pass
    time.sleep(0.02)
print("timeout")
EOF
latency() { python3 "$W/latency.py" "$@"; }
LAT=$(latency "$W/small.csv" "$MNT/bench/bronze/small/s.csv" "$MNT/bench/silver/small/small.csv" \
	"$(wc -l < "$W/small.csv")")
[ "$LAT" = timeout ] && broke "a 10 KB file was not in silver after 60 s"
say "latency close -> silver (10 KB, quiet 1 s): $LAT s"

# --- appending a 1 MB batch to the big table ---
bb0=$(status_u64 block_bytes) sb0=$(status_u64 stored_bytes)
cp "$W/append.csv" "$MNT/bench/bronze/big/append.csv" || broke "cp append"
timeout 300 "$L" run "$MNT/bench/bronze/big" --timeout 280 >/dev/null || broke "run append"
read -r APP_S APP_STATE APP_ROWS _ <<< "$(last_job bench.bronze.big)"
[ "$APP_STATE" = done ] || broke "the append job ended $APP_STATE"
bb1=$(status_u64 block_bytes) sb1=$(status_u64 stored_bytes)
APP_NEW=$(( (bb1 - bb0) )) APP_STORED=$(( (sb1 - sb0) ))
APP_IN=$(stat -c %s "$W/append.csv")
BIG_SILVER=$(( $(stat -c %s "$MNT/bench/silver/big/big.csv") + $(stat -c %s "$MNT/bench/silver/big/big.jsonl") ))

# --- a gold table over the big silver table ---
GOLD_SQL="SELECT day, sum(amount) AS revenue, count(*) AS n FROM silver.big GROUP BY day"
printf '%s\n' "$GOLD_SQL" > "$MNT/bench/gold/by_day.sql" || broke "the gold definition was refused"
timeout 900 "$L" wait "$MNT" --timeout 880 >/dev/null || broke "the gold refresh did not finish"
read -r GOLD_S GOLD_STATE GOLD_ROWS _ <<< "$(last_job bench.gold.by_day)"
[ "$GOLD_STATE" = done ] || broke "the gold refresh ended $GOLD_STATE"
GOLD_PEAK=$(awk '/VmHWM/ { print int($2 / 1024) }' "/proc/$PID/status")
DUCKQ_S=""
if [ -d "$DUCK" ]; then
	best=""
	for r in 1 2; do
		out=$(timeout 600 node "$TOP/tests/bench/duckdb-query.mjs" "$W/big.csv" \
		      "SELECT day, sum(amount) AS revenue, count(*) AS n FROM orders GROUP BY day") ||
			broke "duckdb query failed"
		read -r s n <<< "$out"
		[ "$n" = "$GOLD_ROWS" ] || broke "duckdb has $n groups, lakefs $GOLD_ROWS"
		if [ -z "$best" ] || awk -v a="$s" -v b="$best" 'BEGIN { exit !(a < b) }'; then
			best=$s
		fi
	done
	DUCKQ_S=$best
fi
say "gold refresh over the big table: $GOLD_S s ($GOLD_ROWS rows)${DUCKQ_S:+, duckdb $DUCKQ_S s}"

# --- latency of a 10 KB file through silver to gold ---
printf 'SELECT count(*) AS n FROM silver.small\n' > "$MNT/bench/gold/small_n.sql" ||
	broke "the small gold definition was refused"
timeout 120 "$L" wait "$MNT" --timeout 100 >/dev/null
rows=$(( $(wc -l < "$W/small.csv") - 1 ))
GLAT=$(latency "$W/small.csv" "$MNT/bench/bronze/small/s2.csv" \
	"$MNT/bench/gold/small_n/small_n.csv" "=n\\n$((2 * rows))\\n" alter)
[ "$GLAT" = timeout ] && broke "a 10 KB file did not reach gold in 60 s"
say "latency close -> gold (10 KB, default settings): $GLAT s"

fusermount3 -u "$MNT" || broke "unmount failed"

# --- the table ---
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
verdict() { awk -v v="$1" -v t="$2" 'BEGIN { print (v != "-" && v + 0 <= t + 0) ? "PASS" : "MISS" }'; }
MB=$(awk -v b="$BYTES" 'BEGIN { printf "%.0f", b / 1e6 }')
printf '\nlakefs promotion figures (%s rows, %s MB CSV, 8 columns)\n' "$ROWS" "$MB"
printf '%-44s %12s %12s %8s  %s\n' "figure" "lakefs" "baseline" "ratio" "target"
if [ -n "$DUCK_S" ]; then
	R=$(ratio "$JOB_S" "$DUCK_S")
	printf '%-44s %11ss %11ss %8s  <= 2.00 %s\n' "promotion vs DuckDB read+write CSV" \
		"$JOB_S" "$DUCK_S" "$R" "$(verdict "$R" 2)"
	printf '%-44s %9s MiB %9s MiB %8s  < 256 MiB %s\n' "peak RSS while promoting" \
		"$PEAK_RSS" "$DUCK_RSS" "$(ratio "$PEAK_RSS" "$DUCK_RSS")" "$(verdict "$PEAK_RSS" 255)"
else
	printf '%-44s %11ss %12s %8s  (no DuckDB)\n' "promotion" "$JOB_S" "-" "-"
	printf '%-44s %9s MiB %12s %8s  < 256 MiB %s\n' "peak RSS while promoting" \
		"$PEAK_RSS" "-" "-" "$(verdict "$PEAK_RSS" 255)"
fi
printf '%-44s %7s MB/s %7s MB/s %8s\n' "promotion throughput (bronze CSV bytes)" \
	"$(awk -v b="$BYTES" -v s="$JOB_S" 'BEGIN { printf "%.0f", b / 1e6 / s }')" \
	"$( [ -n "$DUCK_S" ] && awk -v b="$BYTES" -v s="$DUCK_S" 'BEGIN { printf "%.0f", b / 1e6 / s }' || echo -)" "-"
printf '%-44s %11ss %12s %8s  < 2 s %s\n' "close of a 10 KB file -> rows in silver" \
	"$LAT" "-" "-" "$(verdict "$LAT" 2)"
printf '%-44s %11ss %12s %8s\n' "append 1 MB batch: job time" "$APP_S" "-" "-"
printf '%-44s %10sKB %10sKB %8s  (baseline: the batch)\n' "append: new unique block bytes" \
	"$((APP_NEW / 1024))" "$((APP_IN / 1024))" "$(ratio "$APP_NEW" "$APP_IN")"
printf '%-44s %10sKB %10sMB %8s  (baseline: the table)\n' "append: vs the silver table's size" \
	"$((APP_NEW / 1024))" "$((BIG_SILVER / 1000000))" "$(ratio "$APP_NEW" "$BIG_SILVER")"
printf '%-44s %10sKB\n' "append: new stored (compressed) bytes" "$((APP_STORED / 1024))"
if [ -n "$DUCKQ_S" ]; then
	R=$(ratio "$GOLD_S" "$DUCKQ_S")
	printf '%-44s %11ss %11ss %8s  <= 3.00 %s\n' "gold refresh vs DuckDB (GROUP BY day)" \
		"$GOLD_S" "$DUCKQ_S" "$R" "$(verdict "$R" 3)"
else
	printf '%-44s %11ss %12s %8s  (no DuckDB)\n' "gold refresh (GROUP BY day)" "$GOLD_S" "-" "-"
fi
printf '%-44s %9s MiB\n' "daemon peak RSS through the refresh" "$GOLD_PEAK"
printf '%-44s %11ss %12s %8s  < 3 s %s\n' "close of a 10 KB file -> rows in gold" \
	"$GLAT" "-" "-" "$(verdict "$GLAT" 3)"
printf '%-44s %11ss\n' "landing: cp of the CSV into bronze" "$LAND_S"
exit 0
