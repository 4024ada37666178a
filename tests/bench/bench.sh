#!/usr/bin/env bash
# tests/bench/bench.sh — `make bench`: the figures of issue 3, measured
# against baselines taken in the same run.
#
# A benchmark, not a test: it prints a table of figures, the ratios of lakefs
# to the local disk (the filesystem that holds the state directory) and to a
# tmpfs, and the target for each figure with PASS/MISS as information. A miss
# does not fail the run. The exit status is non-zero only when something broke:
# a mount or unmount failed, a daemon crashed (also at unmount), a command
# timed out, or data read back from lakefs did not match what was written.
#
# Layout (all under one work dir, default a mktemp -d under /var/tmp, so the
# state dir and the "local disk" baseline share a filesystem):
#   WORK/state, WORK/mnt     the lakefs under test; its files go in the
#                            volume WORK/mnt/t/files/v (catalog t, volume
#                            schema files, volume v: the mount root holds
#                            catalogs only), made at every mount
#   WORK/local               the local-disk baseline
#   WORK/tmpfs               a tmpfs mounted here: the sources (already in
#                            memory when a copy starts) and the tmpfs baseline
# Every mount is undone by the EXIT trap, also on failure or ^C; every
# command that touches a mount runs under timeout(1), and a watchdog ends the
# whole run if it goes past LFS_BENCH_TIMEOUT seconds.
#
# The creates are also timed on WORK/null, a FUSE daemon that does nothing
# (tests/bench/nullfs.c), mounted for that section only: an info row, the
# floor a FUSE round trip puts under lakefs on this machine.
#
# Timed runs are best of LFS_BENCH_ROUNDS (3), interleaved: round 1 runs
# lakefs, local, tmpfs; round 2 the same; ... so that a noisy virtual disk
# hits all three alike. Times are wall clock around the whole command.
#
# Environment: LFS_BIN (programs, default build/bin), LFS_BENCH_DIR (parent
# of the work dir, default /var/tmp), LFS_BENCH_ROUNDS (3), LFS_BENCH_BIG_MIB
# (size of the big sequential file, 1024), LFS_BENCH_TIMEOUT (1500),
# LFS_MOUNT_OPTS (extra lakefs-mount arguments, e.g. "-o spin_us=0").
set -u -o pipefail
export LC_ALL=C

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${LFS_BIN:-$TOP/build/bin}
BENCH_PARENT=${LFS_BENCH_DIR:-/var/tmp}
ROUNDS=${LFS_BENCH_ROUNDS:-3}
BIG_MIB=${LFS_BENCH_BIG_MIB:-1024}
WATCHDOG_S=${LFS_BENCH_TIMEOUT:-1500}
MID_MIB=100                   # the "100 MB" files: 100 MiB, 100 blocks of 1 MiB
TREE_FILES=2000               # cp -r: 2,000 x 4 KiB in 20 directories
CREATE_FILES=10000            # empty files created by one process
RSS_LIMIT_MIB=256

say()   { printf 'bench: %s\n' "$*" >&2; }
skip()  { say "skipped: $*"; exit 0; }
TABLE_READY=0                 # set once print_table is defined
# broke: something is wrong with lakefs or the machine, not a slow figure.
# Print what was measured so far, then exit 1 (the EXIT trap cleans up).
broke() {
	say "ERROR: $*"
	declare -F kernel_notes > /dev/null && kernel_notes
	[ "$TABLE_READY" = 1 ] && print_table "(incomplete: the run stopped at the error above)"
	exit 1
}
PROBLEMS=()
problem() { say "PROBLEM: $*"; PROBLEMS+=("$*"); }

# --- preconditions: skip (exit 0) when the machine cannot run the bench ---
[ "$(id -u)" -eq 0 ] || skip "needs root (mounts a tmpfs, drops the page cache)"
for c in fusermount3 cc dd awk timeout cmp diff split pgrep mktemp head; do
	command -v "$c" >/dev/null 2>&1 || skip "$c is not installed"
done
[ -e /dev/fuse ] || skip "/dev/fuse is missing"
[ -x "$BIN/lakefs-mount" ] || broke "$BIN/lakefs-mount not found (run make first)"
[ "$ROUNDS" -ge 1 ] 2>/dev/null || broke "LFS_BENCH_ROUNDS must be >= 1"
# tmpfs: ROUNDS sources + the tmpfs baseline's copy of the big file, plus
# ~0.5 GiB of smaller sources. It must fit in RAM to be a fair baseline.
TMPFS_MIB=$(( (ROUNDS + 1) * BIG_MIB + 1024 ))
avail_mib=$(awk '/^MemAvailable:/ {print int($2/1024)}' /proc/meminfo)
[ "$avail_mib" -gt $((TMPFS_MIB + 2048)) ] ||
	skip "needs about $((TMPFS_MIB + 2048)) MiB of free memory, have $avail_mib MiB" \
	     "(try LFS_BENCH_BIG_MIB=256)"

# --- work dir, mounts, cleanup ---
WORK=$(mktemp -d "$BENCH_PARENT/lakefs-bench.XXXXXX") || broke "cannot create a work dir under $BENCH_PARENT"
STATE=$WORK/state
MNT=$WORK/mnt
VOL=$MNT/t/files/v            # the volume the lakefs figures are taken in
LOCAL=$WORK/local
TMPFS=$WORK/tmpfs
SRC=$TMPFS/src                # sources, already in memory
TBASE=$TMPFS/base             # the tmpfs baseline
LFS_MOUNTS=""                 # lakefs mountpoints we mounted
LFS_PIDS=""                   # daemons we started
LFS_PID=""                    # the daemon of the current lakefs mount
TMPFS_MOUNTED=0
WATCHDOG=""

is_mounted() { awk -v m="$1" '$2 == m {f = 1} END {exit !f}' /proc/mounts; }
# pid_alive PID: running (a zombie left behind for a non-reaping init is gone)
pid_alive() {
	local st
	[ -n "$1" ] && [ -r "/proc/$1/stat" ] || return 1
	st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
	[ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}
wait_gone() {  # wait_gone PID SECONDS
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		pid_alive "$1" || return 0
		sleep 0.1
	done
	return 1
}

cleanup() {
	local rc=$? m p
	trap - EXIT INT TERM
	for m in $LFS_MOUNTS; do
		if is_mounted "$m"; then
			timeout -k 2 20 fusermount3 -u "$m" 2>/dev/null ||
				timeout -k 2 10 umount -l "$m" 2>/dev/null
		fi
	done
	for p in $LFS_PIDS; do
		wait_gone "$p" 30 || { say "daemon $p did not exit; killing it"; kill -9 "$p" 2>/dev/null; }
	done
	if [ "$TMPFS_MOUNTED" = 1 ] && is_mounted "$TMPFS"; then
		umount "$TMPFS" 2>/dev/null || umount -l "$TMPFS" 2>/dev/null
	fi
	[ -n "$WATCHDOG" ] && kill "$WATCHDOG" 2>/dev/null
	if grep -q " $WORK/" /proc/mounts; then
		say "something is still mounted under $WORK; leaving it in place"
		[ "$rc" -eq 0 ] && rc=1
	else
		rm -rf --one-file-system "$WORK"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM
# the watchdog's sleep must not hold our output open, and dies with it
(
	sp=""
	trap '[ -n "$sp" ] && kill "$sp" 2>/dev/null; exit 0' TERM
	sleep "$WATCHDOG_S" >/dev/null 2>&1 &
	sp=$!
	wait "$sp"
	echo "bench: watchdog: over ${WATCHDOG_S}s, stopping" >&2
	kill -TERM $$
) &
WATCHDOG=$!

mkdir -p "$MNT" "$LOCAL" "$TMPFS" || broke "cannot create directories under $WORK"
mount -t tmpfs -o "size=${TMPFS_MIB}m,mode=0755" lakefs-bench "$TMPFS" || broke "cannot mount a tmpfs on $TMPFS"
TMPFS_MOUNTED=1
mkdir -p "$SRC" "$TBASE"

# --- lakefs helpers ---
status() { timeout -k 2 10 cat "$1/.lakefs/status"; }
field() {  # field MNT KEY: one value of the status JSON
	status "$1" | sed -n "s/^ *\"$2\": *\"\{0,1\}\([^\",]*\).*/\1/p"
}
lfs_mount() {  # lfs_mount MNT STATE
	local err
	mkdir -p "$1"
	# shellcheck disable=SC2086  # LFS_MOUNT_OPTS: words on purpose
	if ! err=$(timeout -k 5 60 "$BIN/lakefs-mount" ${LFS_MOUNT_OPTS:-} --state "$2" "$1" 2>&1); then
		broke "lakefs-mount --state $2 $1 failed: $err"
	fi
	LFS_MOUNTS="$LFS_MOUNTS $1"
	is_mounted "$1" || broke "lakefs-mount returned but $1 is not mounted"
	LFS_PID=$(field "$1" pid)
	if [ -z "$LFS_PID" ]; then   # fall back to the process table
		for p in $(pgrep -f "lakefs-mount.*$2 "); do pid_alive "$p" && LFS_PID=$p; done
	fi
	[ -n "$LFS_PID" ] || broke "cannot find the daemon serving $1"
	LFS_PIDS="$LFS_PIDS $LFS_PID"
	# the root holds catalogs only: work in a volume (mkdir -p: a no-op
	# when the state already has it)
	timeout -k 5 60 mkdir -p "$1/t/files/v" || broke "cannot make the volume $1/t/files/v"
}
lfs_umount() {  # lfs_umount MNT: unmount, wait (bounded) for the daemon to exit
	local code
	status "$1" > /dev/null 2>&1 ||
		broke "the lakefs daemon $LFS_PID serving $1 is gone or not answering (crashed?)"
	timeout -k 2 30 fusermount3 -u "$1" || broke "fusermount3 -u $1 failed"
	wait_gone "$LFS_PID" 60 || broke "daemon $LFS_PID did not exit within 60s of unmounting $1"
	# A zombie left for a non-reaping init still shows how it ended.
	code=$(sed 's/.*) //' "/proc/$LFS_PID/stat" 2>/dev/null | awk '{print $50}')
	if [ -n "$code" ] && [ $((code & 127)) -ne 0 ]; then
		problem "daemon $LFS_PID was killed by signal $((code & 127)) while unmounting $1"
	fi
}
# Kernel log lines about lakefs processes crashing since the bench began.
# Other runs on the same machine may be the source, so they are a note.
DMESG_START=$(awk '{print $1}' /proc/uptime)
kernel_notes() {
	local lines
	lines=$(dmesg 2>/dev/null | awk -v t="$DMESG_START" '{s = $0; sub(/^\[ */, "", s); if (s + 0 >= t) print}' |
		grep -E 'segfault|general protection|traps:' | grep -E 'lakefs|prefetch|seal|fuse' | tail -5)
	[ -n "$lines" ] || return 0
	say "note: the kernel logged lakefs crashes during this run (perhaps from other runs on this machine):"
	printf '%s\n' "$lines" | sed 's/^/bench:   /' >&2
}

settle() {  # settle MNT: wait (bounded) until no data is dirty or being sealed
	local i d p
	for ((i = 0; i < 600; i++)); do
		d=$(field "$1" dirty_bytes); p=$(field "$1" pending_seals)
		[ "${d:-0}" = 0 ] && [ "${p:-0}" = 0 ] && return 0
		sleep 0.1
	done
	problem "lakefs still had dirty_bytes=$d pending_seals=$p 60s after the writes"
}
drop_caches() {
	sync
	echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || { COLD_NOTE=" (caches NOT dropped)"; return 1; }
}
COLD_NOTE=""

# --- timing ---
declare -A BEST
ELAPSED=0
run_timed() {  # run_timed LIMIT CMD...: sets ELAPSED (s), returns CMD's status
	local lim=$1 t0 t1 rc
	shift
	t0=$EPOCHREALTIME
	timeout -k 5 "$lim" "$@"
	rc=$?
	t1=$EPOCHREALTIME
	ELAPSED=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.6f", b - a}')
	[ "$rc" -eq 124 ] && say "timed out after ${lim}s: $*"
	return "$rc"
}
keep_best() {  # keep_best NAME: BEST[NAME] = min(BEST[NAME], ELAPSED)
	local cur=${BEST[$1]:-}
	if [ -z "$cur" ] || awk -v a="$ELAPSED" -v b="$cur" 'BEGIN {exit !(a < b)}'; then
		BEST[$1]=$ELAPSED
	fi
}
calc() { awk "BEGIN {printf \"$1\", $2}"; }         # calc FMT EXPR
le()   { awk "BEGIN {exit !(($1) <= ($2))}"; }      # le A B: A <= B
pf()   { if le "$1" "$2"; then echo PASS; else echo MISS; fi; }

# target dir of each contestant
declare -A DIR=([lakefs]=$VOL [local]=$LOCAL [tmpfs]=$TBASE)
ALL="lakefs local tmpfs"

# --- the table ---
# Every figure may be missing when broke() prints a partial table: n/a.
MIB=$BIG_MIB
secs()  { calc "%.2f s" "$1"; }
rate()  { calc "%.2f s %4.0f MiB/s" "$1, $MIB / $1"; }
ratio() { calc "%.2fx" "$1 / $2"; }
W=(40 20 20 20 8 8 24)
row() {
	printf "%-${W[0]}s %-${W[1]}s %-${W[2]}s %-${W[3]}s %-${W[4]}s %-${W[5]}s %-${W[6]}s %s\n" "$@"
}
timed_row() {  # timed_row LABEL KEY FORMATTER BASELINE TARGET_X
	local lab=$1 fmt=$3 tb=$4 tx=$5 l=${BEST[${2}_lakefs]:-} o=${BEST[${2}_local]:-} m=${BEST[${2}_tmpfs]:-} b
	local cl=n/a co=n/a cm=n/a rl=n/a rm=n/a res=n/a
	[ -n "$l" ] && cl=$($fmt "$l")
	[ -n "$o" ] && co=$($fmt "$o")
	[ -n "$m" ] && cm=$($fmt "$m")
	[ -n "$l" ] && [ -n "$o" ] && rl=$(ratio "$l" "$o")
	[ -n "$l" ] && [ -n "$m" ] && rm=$(ratio "$l" "$m")
	if [ "$tb" = local ]; then b=$o; else b=$m; fi
	[ -n "$l" ] && [ -n "$b" ] && res=$(pf "$(calc %.4f "$l / $b")" "$tx")
	row "$lab" "$cl" "$co" "$cm" "$rl" "$rm" "<= ${tx}x $tb" "$res"
}
print_table() {  # print_table [NOTE]
	local r
	echo
	echo "lakefs bench: best of $ROUNDS, interleaved; $(nproc) CPUs, kernel $(uname -r);" \
	     "local disk = $LOCAL_FS; block size ${BLOCK_SIZE:-?};" \
	     "$(calc %.0f "$EPOCHREALTIME - $T_START")s${1:+ $1}"
	row "figure" "lakefs" "local disk" "tmpfs" "l/local" "l/tmpfs" "target" "result"
	row "------" "------" "----------" "-----" "-------" "-------" "------" "------"
	timed_row "write ${MIB} MiB seq (dd 1M, fsync)" write rate local 1.5
	timed_row "cold read ${MIB} MiB (dd 1M)$COLD_NOTE" read rate local 1.5
	timed_row "cp -r $TREE_FILES x 4 KiB" cp secs tmpfs 10
	timed_row "create $CREATE_FILES empty files" create secs tmpfs 12
	if [ -n "${BEST[create_null]:-}" ] && [ -n "${BEST[create_tmpfs]:-}" ] && [ -n "${BEST[create_lakefs]:-}" ]; then
		row "  same, FUSE that does nothing" "$(secs "${BEST[create_null]}")" "-" \
			"$(secs "${BEST[create_tmpfs]}")" "-" "$(ratio "${BEST[create_null]}" "${BEST[create_tmpfs]}")" \
			"info: lakefs/it $(ratio "${BEST[create_lakefs]}" "${BEST[create_null]}")" "-"
	fi
	timed_row "ls -lR $CREATE_FILES files, warm" ls secs tmpfs 3
	if [ -n "$ow_growth" ]; then
		row "4 KiB overwrite in ${MID_MIB} MiB + fsync" "stored $(printf %+d "$ow_growth") B" \
			"blocks $ow_b0->$ow_b1" "-" "-" "-" "growth <= $BLOCK_SIZE B" "$(pf "$ow_growth" "$BLOCK_SIZE")"
	else
		row "4 KiB overwrite in ${MID_MIB} MiB + fsync" n/a - - - - "growth <= 1 block" n/a
	fi
	if [ -n "$dd_pct" ]; then
		if le 1 "$dd_pct"; then r=MISS; else r=PASS; fi
		row "same ${MID_MIB} MiB file copied twice" "2nd: +$dd_second B" "1st: +$dd_first B" "-" "-" "-" \
			"2nd < 1% ($dd_pct%)" "$r"
	else
		row "same ${MID_MIB} MiB file copied twice" n/a - - - - "2nd < 1%" n/a
	fi
	if [ -n "$csv_ratio" ]; then
		row "${MID_MIB} MiB CSV, compression" "ratio ${csv_ratio}:1" "logical $csv_size B" \
			"stored $csv_stored B" "-" "-" "info${csv_zstd:+ (zstd -3: ${csv_zstd}:1)}" "-"
	else
		row "${MID_MIB} MiB CSV, compression" n/a - - - - info -
	fi
	if [ -n "$rss_peak" ]; then
		if le "$RSS_LIMIT_MIB" "$rss_peak"; then r=MISS; else r=PASS; fi
		row "daemon peak RSS, ${MIB} MiB write" "VmHWM $rss_peak MiB" "idle ${rss_idle} MiB" "-" "-" "-" \
			"< $RSS_LIMIT_MIB MiB" "$r"
	else
		row "daemon peak RSS, ${MIB} MiB write" n/a - - - - "< $RSS_LIMIT_MIB MiB" n/a
	fi
	[ -n "$fs_ratio" ] &&
		echo "whole filesystem after rows 6-8: compression_ratio $fs_ratio, dedup_ratio $fs_dedup"
	if [ "${#PROBLEMS[@]}" -gt 0 ]; then
		echo
		echo "PROBLEMS (the run fails on these):"
		printf '  %s\n' "${PROBLEMS[@]}"
	fi
}
TABLE_READY=1
ow_growth="" ow_b0="" ow_b1="" dd_pct="" dd_first="" dd_second=""
csv_ratio="" csv_size="" csv_stored="" csv_zstd="" fs_ratio="" fs_dedup=""
rss_peak="" rss_idle="" BLOCK_SIZE=""
LOCAL_FS=$(df -T "$WORK" | awk 'NR == 2 {print $2 " on " $1}')
T_START=$EPOCHREALTIME
say "work dir $WORK ($LOCAL_FS), tmpfs ${TMPFS_MIB} MiB"

# --- helper program: create N empty files in one process (see mkfiles.c) ---
MKFILES=$WORK/mkfiles
cc -O2 -Wall -Wextra -Werror -o "$MKFILES" "$TOP/tests/bench/mkfiles.c" || broke "cannot build tests/bench/mkfiles.c"
# --- and the FUSE floor: a daemon that does nothing (see nullfs.c); the
# creates are timed on it too, beside lakefs. Not built: the row says n/a.
NULLFS=$WORK/nullfs
NULL_MNT=$WORK/null
# shellcheck disable=SC2046  # pkg-config: words on purpose
cc -O2 -Wall -Wextra -Werror -DFUSE_USE_VERSION=314 -o "$NULLFS" "$TOP/tests/bench/nullfs.c" \
	$(pkg-config --cflags --libs fuse3) 2>/dev/null || { say "note: cannot build tests/bench/nullfs.c; no FUSE floor"; NULLFS=""; }

# --- sources, made once in the tmpfs ---
# The big sequential write uses a different random file in each round. Writing
# the same content to lakefs again would be deduplicated (only metadata
# written), and deleting the file and waiting for its blocks to be freed would
# make the figure depend on lakefs's delete path. ROUNDS distinct sources cost
# ROUNDS GiB of RAM, which this machine has, and keep every round honest.
say "generating sources: ${ROUNDS} x ${BIG_MIB} MiB random, 2 x ${MID_MIB} MiB random, a tree, a CSV"
for ((r = 1; r <= ROUNDS; r++)); do
	head -c "${BIG_MIB}M" /dev/urandom > "$SRC/big$r" || broke "cannot generate $SRC/big$r"
done
head -c "${MID_MIB}M" /dev/urandom > "$SRC/rnd_a" || broke "cannot generate rnd_a"
head -c "${MID_MIB}M" /dev/urandom > "$SRC/rnd_b" || broke "cannot generate rnd_b"
head -c 4096 /dev/urandom > "$SRC/patch4k"
mkdir -p "$SRC/flat" "$SRC/tree"
head -c $((TREE_FILES * 4096)) /dev/urandom | split -b 4096 -a 4 -d - "$SRC/flat/x" || broke "cannot split the tree"
for ((d = 0; d < TREE_FILES / 100; d++)); do
	dn=$(printf %02d "$d")
	mkdir "$SRC/tree/d$dn" && mv "$SRC/flat/x$dn"* "$SRC/tree/d$dn/" || broke "cannot build the tree"
done
rmdir "$SRC/flat"
# A realistic, deterministic CSV: id, ISO date, names, city, decimal amount.
awk -v target=$((MID_MIB * 1048576)) 'BEGIN {
	srand(20240601)
	nf = split("James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara Richard Susan Joseph Jessica Thomas Sarah Charles Karen Ana Luca Sofia Mateo Yuki Hans Ingrid Pierre Amelie Olga", first)
	nl = split("Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris Muller Schmidt Dubois Rossi Tanaka Novak Kowalski", last)
	nc = split("London Paris Berlin Madrid Rome Vienna Prague Warsaw Lisbon Dublin Oslo Helsinki Athens Zurich Amsterdam Brussels Tokyo Toronto Chicago Austin", city)
	ns = split("paid pending refunded failed", state)
	hdr = "id,date,first_name,last_name,city,status,amount"
	print hdr; n = length(hdr) + 1
	for (id = 1; n < target; id++) {
		line = sprintf("%d,%04d-%02d-%02d,%s,%s,%s,%s,%.2f", id,
			2015 + int(rand() * 10), 1 + int(rand() * 12), 1 + int(rand() * 28),
			first[1 + int(rand() * nf)], last[1 + int(rand() * nl)],
			city[1 + int(rand() * nc)], state[1 + int(rand() * ns)],
			rand() * rand() * 5000)
		print line; n += length(line) + 1
	}
}' > "$SRC/data.csv" || broke "cannot generate the CSV"

lfs_mount "$MNT" "$STATE"
BLOCK_SIZE=$(field "$MNT" block_size)
say "lakefs $("$BIN/lakefs-mount" -V 2>&1 | head -1), block size $BLOCK_SIZE, daemon pid $LFS_PID"

# --- 1. big sequential write ---
say "1. ${BIG_MIB} MiB sequential write (dd bs=1M conv=fsync), best of $ROUNDS"
for ((r = 1; r <= ROUNDS; r++)); do
	for t in $ALL; do
		f=${DIR[$t]}/big.bin
		rm -f "$f"
		[ "$t" = lakefs ] && settle "$MNT"
		sync
		run_timed 600 dd if="$SRC/big$r" of="$f" bs=1M conv=fsync status=none ||
			broke "dd onto $t failed (round $r)"
		keep_best "write_$t"
		say "   round $r $t: ${ELAPSED}s"
	done
done
# all three now hold big$ROUNDS; the other sources are no longer needed
for ((r = 2; r < ROUNDS; r++)); do rm -f "$SRC/big$r"; done

# --- 2. cold read ---
say "2. cold read of the ${BIG_MIB} MiB file, best of $ROUNDS"
for ((r = 1; r <= ROUNDS; r++)); do
	lfs_umount "$MNT"
	lfs_mount "$MNT" "$STATE"
	for t in $ALL; do
		[ "$t" != tmpfs ] && drop_caches
		run_timed 600 dd if="${DIR[$t]}/big.bin" of=/dev/null bs=1M status=none ||
			broke "reading big.bin from $t failed (round $r)"
		keep_best "read_$t"
		say "   round $r $t: ${ELAPSED}s"
	done
done
timeout -k 5 300 cmp "$SRC/big$ROUNDS" "$VOL/big.bin" ||
	problem "data mismatch: $VOL/big.bin differs from what was written"
rm -f "$TBASE/big.bin" "$LOCAL/big.bin"
[ "$ROUNDS" -gt 1 ] && rm -f "$SRC/big$ROUNDS"

# --- 3. cp -r of 2,000 x 4 KiB ---
say "3. cp -r of $TREE_FILES x 4 KiB files, best of $ROUNDS"
for ((r = 1; r <= ROUNDS; r++)); do
	for t in $ALL; do
		d=${DIR[$t]}/cptree
		timeout -k 5 300 rm -rf "$d" || broke "rm -rf $d failed"
		[ "$t" = lakefs ] && settle "$MNT"
		sync
		run_timed 300 cp -r "$SRC/tree" "$d" || broke "cp -r onto $t failed (round $r)"
		keep_best "cp_$t"
	done
done
timeout -k 5 300 diff -r "$SRC/tree" "$VOL/cptree" >/dev/null ||
	problem "data mismatch: cp -r tree on lakefs differs from the source"

# --- 4. create 10,000 empty files ---
say "4. creating $CREATE_FILES empty files (one process: tests/bench/mkfiles.c, open+close each), best of $ROUNDS"
for ((r = 1; r <= ROUNDS; r++)); do
	for t in $ALL; do
		d=${DIR[$t]}/files
		timeout -k 5 300 rm -rf "$d" || broke "rm -rf $d failed"
		[ "$t" = lakefs ] && settle "$MNT"
		sync
		run_timed 300 "$MKFILES" "$d" "$CREATE_FILES" || broke "creating files on $t failed (round $r)"
		keep_best "create_$t"
	done
done
if [ -n "$NULLFS" ]; then
	mkdir -p "$NULL_MNT"
	if timeout -k 5 30 "$NULLFS" -o default_permissions "$NULL_MNT" && is_mounted "$NULL_MNT"; then
		LFS_MOUNTS="$LFS_MOUNTS $NULL_MNT"
		LFS_PIDS="$LFS_PIDS $(pgrep -f "^$NULLFS .*$NULL_MNT\$" | head -1)"
		for ((r = 1; r <= ROUNDS; r++)); do
			run_timed 300 "$MKFILES" "$NULL_MNT" "$CREATE_FILES" ||
				broke "creating files on the do-nothing FUSE failed (round $r)"
			keep_best create_null
		done
		timeout -k 2 30 fusermount3 -u "$NULL_MNT" || broke "fusermount3 -u $NULL_MNT failed"
	else
		say "note: the do-nothing FUSE did not mount; no FUSE floor"
	fi
fi
n=$(timeout -k 5 60 find "$VOL/files" -type f | wc -l)
[ "$n" = "$CREATE_FILES" ] || problem "lakefs holds $n of the $CREATE_FILES files created"

# --- 5. ls -lR, warm ---
say "5. ls -lR of the $CREATE_FILES-file tree, warm, best of $ROUNDS"
for t in $ALL; do
	timeout -k 5 120 ls -lR "${DIR[$t]}/files" > /dev/null || broke "ls -lR on $t failed"
done
for ((r = 1; r <= ROUNDS; r++)); do
	for t in $ALL; do
		run_timed 120 ls -lR "${DIR[$t]}/files" > /dev/null || broke "ls -lR on $t failed"
		keep_best "ls_$t"
	done
done
a=$(timeout -k 5 120 ls -lR "$VOL/files" | wc -l); b=$(ls -lR "$TBASE/files" | wc -l)
[ "$a" = "$b" ] || problem "ls -lR on lakefs gave $a lines, on tmpfs $b"
timeout -k 5 300 rm -rf "$VOL/files" "$VOL/cptree" "$TBASE/files" "$TBASE/cptree" "$LOCAL/files" "$LOCAL/cptree"
settle "$MNT"

# --- 6. 4 KiB overwrite in the middle of a 100 MiB file ---
say "6. 4 KiB overwrite inside a ${MID_MIB} MiB file + fsync"
timeout -k 5 300 dd if="$SRC/rnd_a" of="$VOL/ow.bin" bs=1M conv=fsync status=none || broke "writing ow.bin failed"
settle "$MNT"
ow_s0=$(field "$MNT" stored_bytes); ow_b0=$(field "$MNT" blocks)
seek=$(( (MID_MIB * 1048576 / 2 + 256 * 1024) / 4096 ))   # 50.25 MiB: inside a block
timeout -k 5 60 dd if="$SRC/patch4k" of="$VOL/ow.bin" bs=4k count=1 seek="$seek" conv=notrunc,fsync status=none ||
	broke "4 KiB overwrite failed"
settle "$MNT"
ow_s1=$(field "$MNT" stored_bytes); ow_b1=$(field "$MNT" blocks)
cp "$SRC/rnd_a" "$TBASE/ow.ref"
dd if="$SRC/patch4k" of="$TBASE/ow.ref" bs=4k count=1 seek="$seek" conv=notrunc status=none
timeout -k 5 120 cmp "$TBASE/ow.ref" "$VOL/ow.bin" || problem "data mismatch after the 4 KiB overwrite"
rm -f "$TBASE/ow.ref"
ow_growth=$((ow_s1 - ow_s0))

# --- 7. the same 100 MiB file copied in twice ---
say "7. the same ${MID_MIB} MiB file copied in twice"
dd_s0=$(field "$MNT" stored_bytes)
timeout -k 5 300 cp "$SRC/rnd_b" "$VOL/dup1" && timeout -k 5 120 sync "$VOL/dup1" || broke "first copy failed"
settle "$MNT"
dd_s1=$(field "$MNT" stored_bytes)
timeout -k 5 300 cp "$SRC/rnd_b" "$VOL/dup2" && timeout -k 5 120 sync "$VOL/dup2" || broke "second copy failed"
settle "$MNT"
dd_s2=$(field "$MNT" stored_bytes)
for f in dup1 dup2; do
	timeout -k 5 120 cmp "$SRC/rnd_b" "$VOL/$f" || problem "data mismatch in $f"
done
dd_first=$((dd_s1 - dd_s0)); dd_second=$((dd_s2 - dd_s1))
dd_pct=$(calc %.3f "$dd_second * 100 / ($MID_MIB * 1048576)")

# --- 8. a 100 MiB CSV ---
say "8. a ${MID_MIB} MiB CSV copied in"
csv_size=$(stat -c %s "$SRC/data.csv")
csv_s0=$(field "$MNT" stored_bytes)
timeout -k 5 300 cp "$SRC/data.csv" "$VOL/data.csv" && timeout -k 5 120 sync "$VOL/data.csv" || broke "copying the CSV failed"
settle "$MNT"
csv_s1=$(field "$MNT" stored_bytes)
timeout -k 5 120 cmp "$SRC/data.csv" "$VOL/data.csv" || problem "data mismatch in data.csv"
csv_stored=$((csv_s1 - csv_s0))
csv_ratio=$(calc %.2f "$csv_size / ($csv_stored > 0 ? $csv_stored : 1)")
csv_zstd=""
if command -v zstd >/dev/null 2>&1; then   # reference: the whole file, zstd -3
	zs=$(zstd -3 -q -c "$SRC/data.csv" | wc -c)
	csv_zstd=$(calc %.2f "$csv_size / $zs")
fi
fs_ratio=$(field "$MNT" compression_ratio)
fs_dedup=$(field "$MNT" dedup_ratio)
lfs_umount "$MNT"

# --- 9. daemon peak RSS while writing the big file ---
say "9. daemon peak RSS while writing ${BIG_MIB} MiB (fresh daemon, fresh state)"
lfs_mount "$MNT" "$WORK/state-rss"
rss_idle=$(awk '/^VmHWM:/ {print int($2 / 1024)}' "/proc/$LFS_PID/status")
timeout -k 5 600 dd if="$SRC/big1" of="$VOL/big.bin" bs=1M conv=fsync status=none || broke "writing big.bin for the RSS figure failed"
rss_peak=$(awk '/^VmHWM:/ {printf "%.1f", $2 / 1024}' "/proc/$LFS_PID/status")
[ -n "$rss_peak" ] || broke "cannot read VmHWM of daemon $LFS_PID"
timeout -k 5 300 cmp "$SRC/big1" "$VOL/big.bin" || problem "data mismatch in big.bin (RSS run)"
lfs_umount "$MNT"

kernel_notes
print_table
[ "${#PROBLEMS[@]}" -eq 0 ] || exit 1
exit 0
