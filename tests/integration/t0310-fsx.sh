#!/usr/bin/env bash
# t0310-fsx: seeded random write/read/truncate/mmap/fallocate/punch/fsync/
# rename sequences against a file on the mount (in a volume: the mount root
# holds catalogs only) and a reference on local disk, compared after every
# read; then the files must survive a remount.
#
# The seeds are printed. To replay a run: LFS_FSX_SEED=S prove -v this
# script (runs use S, S+1, ... S+6), or run the fsx command line that a failure
# prints. LFS_FSX_OPS overrides the long run's op count (default 100000).
. "$(dirname "$0")/../lib.sh"

need_cmd fusermount3 cmp
FSX=$TBIN/fsx/fsx
[ -x "$FSX" ] || skip_all "fsx not built ($FSX; run make)"
[ -x "$BIN/lakefs-mount" ] || skip_all "lakefs-mount not built (run make)"
[ -e /dev/fuse ] || skip_all "no /dev/fuse"

MNT=$T/mnt
S=$T/state
R=$T/ref
mkdir -p "$R"
lfs_mount "$MNT" "$S" || { echo "Bail out! cannot mount lakefs"; exit 1; }
M=$(lfs_volume "$MNT") || { echo "Bail out! cannot make a volume"; exit 1; }

if [ -n "${LFS_FSX_SEED:-}" ]; then
	seed=$LFS_FSX_SEED
	diag "seed from LFS_FSX_SEED: $seed"
else
	seed=$(od -An -N6 -tu8 /dev/urandom | tr -d ' ')
	diag "seed $seed (replay with LFS_FSX_SEED=$seed)"
fi

# fsx_run DESCRIPTION NAME SEED [fsx options...]: run fsx on $M/NAME against
# $R/NAME; pass its '#' lines through; ok when it exits 0 and says
# "0 mismatches".
fsx_run() {
	_desc=$1 _name=$2 _seed=$3; shift 3
	_log=$T/fsx.$_name.log
	_t0=$(date +%s)
	timeout -k 10 600 "$FSX" -S "$_seed" -q "$@" "$M/$_name" "$R/$_name" >"$_log" 2>&1
	_rc=$?
	_t1=$(date +%s)
	sed 's/^#*/#/' "$_log"
	diag "$_desc: $((_t1 - _t0)) s"
	[ "$_rc" -eq 124 ] && diag "fsx timed out after 600 s"
	if [ "$_rc" -eq 0 ] && grep -q ", 0 mismatches\$" "$_log"; then
		ok 0 "$_desc (seed $_seed)"
	else
		ok 1 "$_desc (seed $_seed, exit $_rc)"
		diag "replay: $FSX -S $_seed $* MNT/$_name REF"
	fi
}

ops=${LFS_FSX_OPS:-100000}
fsx_run "fsx: $ops ops, default lengths" fsxfile "$seed" -N "$ops"
fsx_run "fsx: 20000 ops, files up to 300000 bytes" fsxsmall $((seed + 1)) -N 20000 -l 300000
fsx_run "fsx: 10000 ops, files up to 8 MiB, ops up to 2 MiB" fsxbig $((seed + 2)) -N 10000 -l 8m -o 2m

# three at once on three files: the daemon's threads and seal workers race
pids=""
for i in 1 2 3; do
	( fsx_run "fsx: 5000 ops on par$i, 3 running at once" par$i $((seed + 2 + i)) -N 5000 > "$T/par$i.tap" ) &
	pids="$pids $!"
done
wait $pids
for i in 1 2 3; do
	# fsx_run ran in a subshell: renumber its single TAP line here
	line=$(grep -E '^(not )?ok ' "$T/par$i.tap")
	grep -v -E '^(not )?ok ' "$T/par$i.tap"
	case $line in ok*) ok 0 "${line#ok * - }";; *) ok 1 "${line#not ok * - }";; esac
done

names="fsxfile fsxsmall fsxbig par1 par2 par3"
for n in $names; do
	run_ok "$n equals its reference before unmount" cmp "$M/$n" "$R/$n"
done
run_ok "unmount" lfs_umount "$MNT"
run_ok "remount" lfs_mount "$MNT" "$S"
for n in $names; do
	run_ok "$n equals its reference after a remount" cmp "$M/$n" "$R/$n"
	is "$(stat -c %s "$M/$n" 2>&1)" "$(stat -c %s "$R/$n")" "$n has the reference's size after a remount"
done
is "$(ls -A "$M")" "$(printf '%s\n' $names | LC_ALL=C sort)" "no temporary names left in the volume"
run_ok "unmount" lfs_umount "$MNT"

# small blocks and a small dirty limit: many block boundaries, sealing
# under memory pressure, a block cache that keeps missing
MNT=$T/mnt64k
lfs_mount "$MNT" "$T/state64k" --block-size 64K -o dirty_max=1M,cache_mem=1M ||
	{ echo "Bail out! cannot mount lakefs with 64 KiB blocks"; exit 1; }
M=$(lfs_volume "$MNT") || { echo "Bail out! cannot make a volume"; exit 1; }
fsx_run "fsx: 10000 ops on 64 KiB blocks, 1 MiB dirty limit" fsx64k $((seed + 6)) -N 10000 -l 2m -o 300k
run_ok "unmount" lfs_umount "$MNT"
run_ok "remount" lfs_mount "$MNT" "$T/state64k"
run_ok "fsx64k equals its reference after a remount" cmp "$M/fsx64k" "$R/fsx64k"
run_ok "final unmount" lfs_umount "$MNT"
done_testing
