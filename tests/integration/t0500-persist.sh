#!/usr/bin/env bash
# t0500-persist.sh — everything survives a clean unmount and remount; one
# daemon per state; identical content is stored once; a small overwrite
# adds at most one block; unlinked-but-open files stay readable; deleting
# a file frees its blocks. The files live in a volume (MNT/t/files/v: the
# mount root holds catalogs only); the snapshots cover the whole mount, the
# catalog's directories included.
. "$(dirname "$0")/../lib.sh"

[ -e /dev/fuse ] || skip_all "no /dev/fuse"
need_cmd fusermount3 md5sum getfattr setfattr mkfifo find truncate

STATE=$T/state
MNT=$T/mnt
MiB=$((1024 * 1024))

status_num() {  # status_num FIELD: a number from MNT/.lakefs/status
	timeout 10 cat "$MNT/.lakefs/status" 2>/dev/null |
		sed -n "s/^ *\"$1\": *\([0-9][0-9.]*\).*/\1/p"
}
# settle: wait (bounded) until no file data is waiting to be sealed and
# stored_bytes holds still, so that before/after figures compare.
settle() {
	local prev="" cur
	for _ in $(seq 1 100); do
		cur="$(status_num dirty_bytes)/$(status_num pending_seals)/$(status_num stored_bytes)/$(status_num blocks)"
		case $cur in 0/0/*) [ "$cur" = "$prev" ] && return 0 ;; esac
		prev=$cur
		sleep 0.2
	done
	diag "status did not settle: $cur"
	return 1
}
# snapshot DIR OUT: metadata listing, md5sums and user xattrs of a tree
snapshot() {
	(
		cd "$1" || exit 1
		find . -path ./.lakefs -prune -o -printf \
			'%p\t%y\t%m\t%U\t%G\t%s\t%T@\t%C@\t%n\t%l\n' | LC_ALL=C sort
		find . -path ./.lakefs -prune -o -type f -print0 | LC_ALL=C sort -z |
			xargs -0 md5sum
		find . -path ./.lakefs -prune -o ! -type l -print | LC_ALL=C sort |
			while IFS= read -r p; do
				getfattr -h -d -m '^user\.' -e hex --absolute-names "$p" 2>&1
			done
	) >"$2"
}

# lfs_mount runs in this shell, not under run_ok (a subshell), so that the
# cleanup trap knows the mount.
lfs_mount "$MNT" "$STATE"; ok $? "mount a fresh state"
D=$(lfs_volume "$MNT"); ok $? "make a volume"

# --- build the tree ---
build_tree() {
	set -e
	cd "$D"
	mkdir -p tree/sub/deeper tree/private tree/sticky
	cd tree
	: >empty
	printf x >one
	head -c $MiB /dev/urandom >mib
	head -c $((MiB + 1)) /dev/urandom >mib_plus_1
	head -c $((5 * MiB)) /dev/urandom >sub/five
	head -c 12345 /dev/urandom >"sub/name with spaces é"
	head -c 100 /dev/urandom >"$(printf 'n%.0s' $(seq 1 255))"
	truncate -s 100M sparse
	printf 'start' | dd of=sparse bs=1 conv=notrunc status=none
	printf 'middle' | dd of=sparse bs=1 seek=$((37 * MiB + 11)) conv=notrunc status=none
	printf 'end' | dd of=sparse bs=1 seek=$((100 * MiB - 3)) conv=notrunc status=none
	printf 'at4g' | dd of=huge bs=1 seek=$((4 * 1024 * MiB - 2)) conv=notrunc status=none
	printf 'tail' | dd of=huge bs=1 seek=$((5 * 1024 * MiB)) conv=notrunc status=none
	ln -s one link_to_one
	ln -s sub/deeper link_to_dir
	ln -s /nonexistent/target dangling
	echo "linked content" >hard1
	ln hard1 hard2
	ln hard1 sub/hard3
	mkfifo fifo
	setfattr -n user.plain -v hello one
	setfattr -n user.empty mib
	setfattr -n user.binary -v 0x00ff10ab7f sub/five
	setfattr -n user.dirattr -v "on a dir" sub
	setfattr -n user.a -v 1 hard1
	setfattr -n user.second -v two hard1
	chmod 0600 one
	chmod 0755 mib
	chmod 4711 mib_plus_1
	chmod 0444 empty
	chmod 0700 private
	chmod 1777 sticky
	chmod 0620 fifo
	if [ "$(id -u)" -eq 0 ]; then
		chown 1234:5678 one
		chown 4321:0 sub/five
		chown -h 77:88 link_to_one
		chown 1000:1000 private
		chown 0:4242 fifo
	fi
	touch -d '2001-02-03 04:05:06.789012345' one mib sparse
	touch -d '1999-12-31 23:59:59' sub/five huge
	touch -h -d '2010-10-10 10:10:10.5' link_to_one
	touch -d '2020-02-29 12:00:00' fifo
	touch -d '2005-05-05 05:05:05' sub/deeper sub private
}
run_ok "build a tree of files, links, a fifo, xattrs, modes, owners, mtimes" \
	timeout 120 bash -c "$(declare -f build_tree); D='$D' MiB=$MiB build_tree"

run_ok "snapshot before unmount" timeout 120 bash -c "$(declare -f snapshot); snapshot '$MNT' '$T/before'"
grep -q "	p	620	" "$T/before"; ok $? "the fifo is listed as a fifo"
run_ok "clean unmount" lfs_umount "$MNT"
lfs_mount "$MNT" "$STATE"; ok $? "remount the same state"
run_ok "snapshot after remount" timeout 120 bash -c "$(declare -f snapshot); snapshot '$MNT' '$T/after'"
if diff -u "$T/before" "$T/after" >"$T/diff"; then
	ok 0 "names, types, modes, owners, sizes, times, links, contents and xattrs persist"
else
	ok 1 "names, types, modes, owners, sizes, times, links, contents and xattrs persist"
	diag "$(head -40 "$T/diff")"
fi
is "$(wc -l <"$T/after")" "$(wc -l <"$T/before")" "snapshot has the same length ($(wc -l <"$T/before") lines)"
is "$(stat -c %i "$D/tree/hard1" "$D/tree/hard2" "$D/tree/sub/hard3" | sort -u | wc -l)" 1 \
	"hard links still share one inode"
echo more >>"$D/tree/hard2"
is "$(timeout 10 cat "$D/tree/sub/hard3")" "linked content
more" "a write through one hard link shows through another"
is "$(timeout 10 bash -c "echo through >'$D/tree/fifo' & cat '$D/tree/fifo'")" \
	through "the fifo still works as a fifo"
is "$(timeout 10 dd if="$D/tree/huge" bs=1 skip=$((4 * 1024 * MiB - 2)) count=4 status=none)" \
	at4g "bytes across the 4 GiB boundary"

# --- a second daemon on the same state is refused ---
mkdir -p "$T/mnt2"
lfs_mount "$T/mnt2" "$STATE" >"$T/second.out" 2>&1
rc=$?
out=$(cat "$T/second.out")
ok $([ "$rc" -ne 0 ] && echo 0 || echo 1) "a second daemon on the same state exits non-zero ($rc)"
case $out in *"in use"*) ok 0 "its message says 'in use'" ;;
*) ok 1 "its message says 'in use'"; diag "got: $out" ;; esac
ok $(grep -q " $T/mnt2 fuse" /proc/mounts && echo 1 || echo 0) "nothing is mounted on the second mount point"
echo still >"$D/still" && is "$(timeout 10 cat "$D/still")" still "the first mount still works"

# --- dedup: the same 20 MiB twice ---
head -c $((20 * MiB)) /dev/urandom >"$T/r20"
settle
s0=$(status_num stored_bytes)
run_ok "copy a 20 MiB random file in" timeout 60 cp "$T/r20" "$D/dup1"
settle
s1=$(status_num stored_bytes)
run_ok "copy the same file in under another name" timeout 60 cp "$T/r20" "$D/dup2"
settle
s2=$(status_num stored_bytes)
echo "# stored_bytes: $s0 -> $s1 (first copy) -> $s2 (second copy)"
ok $([ $((s1 - s0)) -ge $((19 * MiB)) ] && echo 0 || echo 1) \
	"the first copy adds about 20 MiB ($((s1 - s0)))"
ok $([ $((s2 - s1)) -lt $((20 * MiB / 100)) ] && echo 0 || echo 1) \
	"the second copy adds < 1% of 20 MiB ($((s2 - s1)))"
is "$(md5sum <"$D/dup2" | cut -d' ' -f1)" "$(md5sum <"$T/r20" | cut -d' ' -f1)" \
	"the second copy reads back"

# --- a 4 KiB overwrite in a 100 MiB file adds at most one block ---
head -c $((100 * MiB)) /dev/urandom >"$T/r100"
run_ok "copy a 100 MiB random file in" timeout 120 cp "$T/r100" "$D/big"
settle
b0=$(status_num blocks); s0=$(status_num stored_bytes)
head -c 4096 /dev/urandom >"$T/patch"
off=$((50 * MiB + 12345))
dd if="$T/patch" of="$T/r100" bs=4096 seek=$off oflag=seek_bytes conv=notrunc status=none
run_ok "4 KiB overwrite in the middle (conv=notrunc,fsync)" \
	timeout 60 dd if="$T/patch" of="$D/big" bs=4096 seek=$off oflag=seek_bytes \
	conv=notrunc,fsync status=none
settle
b1=$(status_num blocks); s1=$(status_num stored_bytes)
echo "# blocks $b0 -> $b1, stored_bytes $s0 -> $s1"
ok $([ $((s1 - s0)) -le $((MiB + 4096)) ] && echo 0 || echo 1) \
	"stored_bytes grows by at most one block ($((s1 - s0)))"
ok $([ $((b1 - b0)) -le 1 ] && echo 0 || echo 1) "at most one block more ($((b1 - b0)))"
is "$(timeout 60 md5sum <"$D/big" | cut -d' ' -f1)" "$(md5sum <"$T/r100" | cut -d' ' -f1)" \
	"the overwritten file reads back right"

# --- unlinked but open ---
head -c $((3 * MiB + 7)) /dev/urandom >"$T/ul"
cp "$T/ul" "$D/ul"
exec 3<"$D/ul"
rm "$D/ul"
ok $([ -e "$D/ul" ] && echo 1 || echo 0) "the unlinked file is gone from its directory"
is "$(timeout 30 cat <&3 | md5sum | cut -d' ' -f1)" "$(md5sum <"$T/ul" | cut -d' ' -f1)" \
	"an unlinked file stays readable through an open descriptor"
exec 3<&-

# --- deleting files frees their blocks ---
# A freed block is deleted from the store once the metadata that dropped it
# is durable: at the next fsync of a file or directory, or the unmount.
# (the deletes then run on a worker, each punching a hole over its slot in
# a pack: wait, bounded, until the packs' allocated bytes hold still)
dirsync() {
	python3 -c 'import os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd)' "$D"
	_prev=-1
	for _ in $(seq 1 50); do
		_now=$(lfs_pack_bytes "$STATE")
		[ "$_now" = "$_prev" ] && break
		_prev=$_now
		sleep 0.2
	done
}
settle
rm -f "$D/dup1" "$D/dup2" "$D/big"
settle
dirsync
b0=$(status_num blocks); s0=$(status_num stored_bytes); f0=$(lfs_pack_bytes "$STATE")
head -c $((9 * MiB)) /dev/urandom >"$T/r9"
run_ok "write a 9 MiB file" timeout 60 dd if="$T/r9" of="$D/gone" bs=1M conv=fsync status=none
settle
dirsync
b1=$(status_num blocks); s1=$(status_num stored_bytes); f1=$(lfs_pack_bytes "$STATE")
is "$((b1 - b0))" 9 "the file adds 9 blocks"
# Random data does not compress: each 1 MiB block is stored as a zstd frame
# of raw blocks a few bytes over 1 MiB, so it takes a slot of 1 MiB + 4 KiB
# in a pack. Allocated pack bytes must grow by at least the 9 MiB of data
# and by at most 9 slots of 1 MiB + 8 KiB (twice the rounding), plus 16 KiB
# of slack: on ext4 st_blocks also counts extent-tree blocks, and the holes
# punched in a pack split it into extents enough to need a new one (4 KiB
# each; 16 KiB covers a few, far below one stray 1 MiB block).
df=$((f1 - f0)); dmin=$((9 * MiB)); dmax=$((9 * MiB + 9 * 8192 + 16384))
ok $([ "$df" -ge "$dmin" ] && [ "$df" -lt "$dmax" ] && echo 0 || echo 1) \
	"the file adds 9 MiB to the packs' allocated bytes ($df in [$dmin, $dmax))"
rm "$D/gone"
dirsync
for _ in $(seq 1 50); do
	[ "$(status_num blocks)" = "$b0" ] && [ "$(lfs_pack_bytes "$STATE")" = "$f0" ] && break
	sleep 0.2
done
settle
b2=$(status_num blocks); s2=$(status_num stored_bytes); f2=$(lfs_pack_bytes "$STATE")
echo "# blocks $b0 -> $b1 -> $b2, stored $s0 -> $s1 -> $s2, pack bytes allocated $f0 -> $f1 -> $f2"
is "$b2/$s2" "$b0/$s0" "blocks and stored_bytes drop back after rm"
is "$f2" "$f0" "the packs' allocated bytes drop back after rm (holes punched)"

run_ok "final unmount" lfs_umount "$MNT"
done_testing
