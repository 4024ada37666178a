#!/usr/bin/env bash
# t0620-bucket-restore.sh — a filesystem mirrored to an S3 bucket (s3rver)
# comes back whole from the bucket alone.
#
#  1. A tree (hundreds of small files in nested dirs, large random files,
#     symlinks, hard links, modes, owners, mtimes, user xattrs, a CSV) is
#     written, `lakefs sync`ed, unmounted and its state dir deleted;
#     `lakefs restore` rebuilds a new state from the bucket and the mount
#     matches a manifest taken before (sha256, stat, link targets, xattrs).
#     Blocks are fetched lazily: fetched_blocks is 0 until data is read.
#     A second filesystem with 16 MiB blocks takes a 300 MiB random file
#     by multipart upload (objects of 16 MiB in s3rver's data, and many
#     more requests than blocks) and restores it byte for byte.
#  2. durability=remote: a file whose fsync returned is in the bucket:
#     kill -9 the daemon at once, delete the state, restore: it is there.
#     (With the default durability=local the same 64 MiB file is absent
#     after such a restore: the kill lands before the uploads.)
#  3. Journal continuity: write, delete and rename on the restored
#     filesystem, sync, restore again into another state: old and new.
# The files live in a volume ($V = t/files/v: the mount root holds catalogs
# only); the manifests cover the whole mount, the catalog's directories
# included, so the namespace must come back from the bucket too.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../s3lib.sh"

[ -e /dev/fuse ] || skip_all "no /dev/fuse"
need_cmd fusermount3 sha256sum getfattr setfattr python3 stat find

MiB=$((1024 * 1024))
SEED=${LFS_SEED:-$(( ($(date +%s) ^ $$) % 1000000 ))}
echo "# seed $SEED (replay with LFS_SEED=$SEED)"

s3_start; ok $? "s3rver up on 127.0.0.1:$S3_PORT"
[ -n "$S3_PID" ] || { echo "Bail out! no s3rver"; exit 1; }

status_num() {  # status_num MNT FIELD
	timeout 10 cat "$1/.lakefs/status" 2>/dev/null |
		sed -n "s/^ *\"$2\": *\([0-9][0-9]*\).*/\1/p"
}
ge() { [ -n "$1" ] && [ -n "$2" ] && [ "$1" -ge "$2" ] && echo 0 || echo 1; }
restore() {  # restore PREFIX NEWSTATE
	timeout 120 "$BIN/lakefs" restore --store "s3://$S3_BUCKET/$1" \
		--endpoint "$S3_ENDPOINT" --state "$2"
}
# manifest DIR OUT: metadata of every name, symlink targets, user xattrs
# (no file data is read) ...
manifest_meta() {
	(
		cd "$1" || exit 1
		find . -path ./.lakefs -prune -o -print0 | LC_ALL=C sort -z |
			xargs -0 stat -c '%n %s %a %u %g %h %Y %F'
		find . -path ./.lakefs -prune -o -type l -printf '%p -> %l\n' | LC_ALL=C sort
		find . -path ./.lakefs -prune -o ! -type l -print0 | LC_ALL=C sort -z |
			xargs -0 getfattr -h -d -m '^user\.' -e hex 2>&1
	) >"$2"
}
# ... and the sha256 of every regular file
manifest_data() {
	(
		cd "$1" || exit 1
		find . -path ./.lakefs -prune -o -type f -print0 | LC_ALL=C sort -z |
			xargs -0 sha256sum
	) >"$2"
}
same() {  # same WANT GOT DESCRIPTION
	if diff -u "$1" "$2" >"$T/diff" && [ -s "$1" ]; then ok 0 "$3"
	else ok 1 "$3"; diag "$(head -30 "$T/diff")"; fi
}

# ============================================================ 1. the tree
STATE=$T/state1
MNT=$T/mnt1
lfs_mount "$MNT" "$STATE" --store "s3://$S3_BUCKET/tree" --endpoint "$S3_ENDPOINT"
ok $? "mount a fresh state mirrored to s3://$S3_BUCKET/tree"
is "$(status_num "$MNT" block_size)" 4194304 \
	"a filesystem created with a bucket has 4 MiB blocks by default"
D=$(lfs_volume "$MNT"); ok $? "make a volume"
V=${D#"$MNT"/}

build_tree() {
	set -e
	cd "$1"
	mkdir -p tree
	cd tree
	# hundreds of 1-10 KiB files in nested dirs, and a CSV
	python3 - "$2" <<'EOF'
import os, random, sys
rnd = random.Random(int(sys.argv[1]))
for d in range(12):
    for s in range(3):
        p = "small/d%02d/s%d" % (d, s)
        os.makedirs(p, exist_ok=True)
        for f in range(12):
            with open("%s/f%03d.bin" % (p, f), "wb") as fh:
                fh.write(rnd.randbytes(rnd.randint(1024, 10240)))
with open("data.csv", "w") as fh:
    fh.write("id,name,value,when\n")
    for i in range(20000):
        fh.write("%d,name-%d,%.6f,2024-01-%02d\n" % (i, rnd.randint(0, 10**6), rnd.random(), i % 28 + 1))
EOF
	mkdir -p big sub/deeper private sticky
	head -c $((5 * MiB)) /dev/urandom >big/five
	head -c $((20 * MiB + 3)) /dev/urandom >big/twenty
	head -c $((33 * MiB + 7)) /dev/urandom >big/thirtythree
	: >empty
	printf x >one
	head -c 12345 /dev/urandom >"sub/name with spaces é"
	truncate -s $((40 * MiB)) sparse
	printf 'middle' | dd of=sparse bs=1 seek=$((17 * MiB + 11)) conv=notrunc status=none
	ln -s one link_to_one
	ln -s sub/deeper link_to_dir
	ln -s /nonexistent/target dangling
	echo "linked content" >hard1
	ln hard1 hard2
	ln hard1 sub/hard3
	ln big/five sub/five_again
	setfattr -n user.x -v hello one
	setfattr -n user.empty big/five
	setfattr -n user.binary -v 0x00ff10ab7f big/twenty
	setfattr -n user.dirattr -v "on a dir" sub
	setfattr -n user.a -v 1 hard1
	setfattr -n user.second -v two hard1
	chmod 0600 one
	chmod 0755 big/five
	chmod 4711 big/twenty
	chmod 0444 empty
	chmod 0700 private
	chmod 1777 sticky
	chmod 0640 small/d03/s1/f007.bin
	if [ "$(id -u)" -eq 0 ]; then
		chown 1234:5678 one
		chown 4321:0 big/thirtythree
		chown -h 77:88 link_to_one
		chown 1000:1000 private
	fi
	touch -d '2001-02-03 04:05:06' one big/five sparse
	touch -d '1999-12-31 23:59:59' big/thirtythree data.csv
	touch -h -d '2010-10-10 10:10:10' link_to_one
	touch -d '2005-05-05 05:05:05' sub/deeper sub private small/d01
}
run_ok "write the tree (432 small files, big files, links, modes, xattrs, times, a CSV)" \
	timeout 180 bash -c "$(declare -f build_tree); MiB=$MiB build_tree '$MNT/$V' $SEED"
n_small=$(find "$MNT/$V/tree/small" -type f | wc -l)
is "$n_small" 432 "432 small files in nested dirs"

manifest_meta "$MNT" "$T/meta.before"
manifest_data "$MNT" "$T/data.before"
ok $([ "$(wc -l <"$T/data.before")" -ge 440 ] && echo 0 || echo 1) \
	"manifest taken ($(wc -l <"$T/data.before") files, $(wc -l <"$T/meta.before") metadata lines)"

out=$(timeout 180 "$BIN/lakefs" sync "$MNT" --timeout 150 2>&1)
ok $? "lakefs sync: $out"
is "$(status_num "$MNT" upload_pending_blocks)" 0 "after sync: upload_pending_blocks 0"
up=$(status_num "$MNT" uploaded_blocks)
ok $(ge "$up" 60) "after sync: uploaded_blocks $up"
js=$(status_num "$MNT" journal_last_seq); jsh=$(status_num "$MNT" journal_shipped_seq)
ok $([ -n "$js" ] && [ "$js" -gt 0 ] && [ "$js" = "$jsh" ] && echo 0 || echo 1) \
	"after sync: journal_shipped_seq = journal_last_seq ($jsh/$js)"
ok $(timeout 10 grep -q '^lakefs_upload_pending_blocks 0$' "$MNT/.lakefs/metrics" && echo 0 || echo 1) \
	"metrics: lakefs_upload_pending_blocks 0"
out=$(timeout 120 "$BIN/lakefs" verify "$MNT" 2>&1)
ok $? "lakefs verify exits 0: $(echo "$out" | tail -1)"
run_ok "unmount" lfs_umount "$MNT"
n_obj=$(find "$T/s3data/$S3_BUCKET/tree/blocks" -name '*._S3rver_object' | wc -l)
ok $(ge "$n_obj" 60) "block objects in s3rver's data under tree/blocks/ ($n_obj)"
ok $([ -n "$(find "$T/s3data/$S3_BUCKET/tree/meta" -name 'fs._S3rver_object')" ] && echo 0 || echo 1) \
	"meta/fs is in the bucket"
rm -rf "$STATE"
ok $([ -e "$STATE" ] && echo 1 || echo 0) "the state dir is deleted"

out=$(restore tree "$T/state2" 2>&1)
ok $? "lakefs restore into a new state: $out"
MNT2=$T/mnt2
lfs_mount "$MNT2" "$T/state2"; ok $? "mount the restored state (no --store: it is in STATE/store)"
is "$(status_num "$MNT2" fetched_blocks)" 0 "after restore, before any read: fetched_blocks 0"
lb=$(status_num "$MNT2" local_blocks)
is "$lb" 0 "after restore, before any read: local_blocks 0"
manifest_meta "$MNT2" "$T/meta.after"
same "$T/meta.before" "$T/meta.after" \
	"names, sizes, modes, owners, link counts, mtimes, types, link targets and xattrs match"
is "$(status_num "$MNT2" fetched_blocks)" 0 "listing metadata fetches no block (lazy)"
# Read-ahead with reads far smaller than a block: the six 4 MiB blocks of
# big/twenty read 64 KiB at a time cost one miss (the first block; its read
# starts fetching the next ones), not one per block.
m0=$(status_num "$MNT2" cache_misses)
timeout 60 dd if="$MNT2/$V/tree/big/twenty" of=/dev/null bs=64K status=none
ok $? "read big/twenty 64 KiB at a time"
m1=$(status_num "$MNT2" cache_misses)
ok $([ $((m1 - m0)) -le 2 ] && echo 0 || echo 1) \
	"a sequential reader is read ahead of: $((m1 - m0)) cache misses for 6 blocks"
manifest_data "$MNT2" "$T/data.after"
same "$T/data.before" "$T/data.after" "every file's sha256 matches"
fb=$(status_num "$MNT2" fetched_blocks)
ok $(ge "$fb" 60) "after reading: fetched_blocks $fb > 0"
is "$(stat -c %i "$MNT2/$V/tree/hard1" "$MNT2/$V/tree/hard2" "$MNT2/$V/tree/sub/hard3" | sort -u | wc -l)" 1 \
	"hard links still share one inode"
echo more >>"$MNT2/$V/tree/hard2"
is "$(timeout 10 tail -1 "$MNT2/$V/tree/sub/hard3")" more "a write through one hard link shows in another"
is "$(status_num "$MNT2" fetch_errors)" 0 "fetch_errors 0"
lfs_umount "$MNT2"
mkdir -p "$T/mnt-other"
out=$(lfs_mount "$T/mnt-other" "$T/state2" --store "s3://$S3_BUCKET/other" \
	--endpoint "$S3_ENDPOINT" 2>&1)
ok $([ $? -ne 0 ] && ! grep -q " $T/mnt-other fuse" /proc/mounts && echo 0 || echo 1) \
	"the restored state with another --store is refused: $out"
case $out in *"s3://$S3_BUCKET/tree"*) ok 0 "the message names the state's own bucket" ;;
*) ok 1 "the message names the state's own bucket" ;; esac
lfs_mount "$MNT2" "$T/state2"; ok $? "remount the restored state"

# ============================================ 3. journal continuity (on MNT2)
mkdir -p "$MNT2/$V/tree/new/dir"
head -c $((3 * MiB + 5)) /dev/urandom >"$MNT2/$V/tree/new/dir/after_restore"
echo "second life" >"$MNT2/$V/tree/new/note"
rm -f "$MNT2/$V/tree/big/twenty" "$MNT2/$V/tree/small/d00/s0/f000.bin"
mv "$MNT2/$V/tree/data.csv" "$MNT2/$V/tree/new/data_moved.csv"
setfattr -n user.later -v yes "$MNT2/$V/tree/new/note"
chmod 0604 "$MNT2/$V/tree/new/note"
manifest_meta "$MNT2" "$T/meta.before3"
manifest_data "$MNT2" "$T/data.before3"
grep -q 'after_restore' "$T/data.before3" && ! grep -q 'big/twenty' "$T/data.before3"
ok $? "changes after restore are in the new manifest"
out=$(timeout 120 "$BIN/lakefs" sync "$MNT2" --timeout 100 2>&1)
ok $? "lakefs sync after more writes: $out"
run_ok "unmount" lfs_umount "$MNT2"
out=$(restore tree "$T/state3" 2>&1)
ok $? "restore again into a third state: $out"
MNT3=$T/mnt3
lfs_mount "$MNT3" "$T/state3"; ok $? "mount the third state"
manifest_meta "$MNT3" "$T/meta.after3"
manifest_data "$MNT3" "$T/data.after3"
same "$T/meta.before3" "$T/meta.after3" "journal continuity: metadata of old and new files match"
same "$T/data.before3" "$T/data.after3" "journal continuity: contents of old and new files match"
ok $([ -e "$MNT3/$V/tree/big/twenty" ] && echo 1 || echo 0) "a file deleted after the first restore stays deleted"
ok $([ -e "$MNT3/$V/tree/big/thirtythree" ] && [ -e "$MNT3/$V/tree/new/data_moved.csv" ] && echo 0 || echo 1) \
	"old files and the renamed CSV are there"
run_ok "unmount" lfs_umount "$MNT3"

# =================================== 1b. 16 MiB blocks, multipart uploads
MNT16=$T/mnt16
head -c $((300 * MiB)) /dev/urandom >"$T/r300"
sum300=$(sha256sum <"$T/r300" | cut -d' ' -f1)
lfs_mount "$MNT16" "$T/state16" --block-size 16M --store "s3://$S3_BUCKET/big16" \
	--endpoint "$S3_ENDPOINT" -o multipart_threshold=8M,part_size=5M
ok $? "mount a 16 MiB-block filesystem on s3://$S3_BUCKET/big16 (multipart_threshold=8M, part_size=5M)"
run_ok "make a volume" lfs_volume "$MNT16"
req0=$(status_num "$MNT16" s3_requests)
run_ok "write a 300 MiB random file" timeout 120 dd if="$T/r300" of="$MNT16/$V/r300" bs=4M conv=fsync status=none
out=$(timeout 150 "$BIN/lakefs" sync "$MNT16" --timeout 120 2>&1)
ok $? "lakefs sync: $out"
req1=$(status_num "$MNT16" s3_requests)
upb=$(status_num "$MNT16" uploaded_blocks)
is "$upb" 19 "19 blocks uploaded (18 of 16 MiB and one of 12 MiB)"
# 4 parts (5+5+5+1 MiB) + initiate + complete = 6 requests per full block
ok $(ge "$((req1 - ${req0:-0}))" $((19 * 5))) \
	"multipart: s3_requests grew by $((req1 - ${req0:-0})) for $upb blocks (>= 5 per block)"
n16=0
for f in "$T/s3data/$S3_BUCKET/big16/blocks/"*._S3rver_object; do
	s=$(stat -c %s "$f")
	[ "$s" -ge $((16 * MiB)) ] && [ "$s" -le $((16 * MiB + 65536)) ] && n16=$((n16 + 1))
done
is "$n16" 18 "s3rver holds 18 block objects of 16 MiB"
run_ok "unmount" lfs_umount "$MNT16"
out=$(restore big16 "$T/state16r" 2>&1)
ok $? "restore the 16 MiB-block filesystem: $out"
lfs_mount "$MNT16" "$T/state16r"; ok $? "mount it"
is "$(timeout 120 sha256sum <"$MNT16/$V/r300" | cut -d' ' -f1)" "$sum300" "the 300 MiB file reads back intact"
is "$(status_num "$MNT16" fetched_blocks)" 19 "by fetching its 19 blocks"
run_ok "unmount" lfs_umount "$MNT16"
rm -f "$T/r300"

# ========================================================= 2. durability=remote
MNTR=$T/mntr
head -c $((64 * MiB + 99)) /dev/urandom >"$T/rem"
sumr=$(sha256sum <"$T/rem" | cut -d' ' -f1)
lfs_mount "$MNTR" "$T/stater" --store "s3://$S3_BUCKET/remote" --endpoint "$S3_ENDPOINT" \
	-o durability=remote
ok $? "mount with -o durability=remote"
grep -q '"durability": "remote"' "$MNTR/.lakefs/status"; ok $? "status says durability remote"
run_ok "make a volume" lfs_volume "$MNTR"
mkdir -p "$MNTR/$V/d"
run_ok "write a 64 MiB file with dd conv=fsync" \
	timeout 60 dd if="$T/rem" of="$MNTR/$V/d/fsynced" bs=1M conv=fsync status=none
dpid=$(lfs_daemon_pid "$MNTR")
kill -9 "$dpid"
for _ in $(seq 1 100); do pid_alive "$dpid" || break; sleep 0.1; done
ok $(pid_alive "$dpid" && echo 1 || echo 0) "kill -9 the daemon right after fsync returned"
timeout 20 fusermount3 -u "$MNTR" 2>/dev/null || timeout 20 umount -l "$MNTR"
ok $(grep -q " $MNTR fuse" /proc/mounts && echo 1 || echo 0) "unmount the dead mount"
rm -rf "$T/stater"
out=$(restore remote "$T/stater2" 2>&1)
ok $? "restore from the bucket alone: $out"
lfs_mount "$MNTR" "$T/stater2"; ok $? "mount the restored state"
is "$(stat -c %s "$MNTR/$V/d/fsynced" 2>&1)" $((64 * MiB + 99)) "the fsynced file is there with its size"
is "$(timeout 60 sha256sum <"$MNTR/$V/d/fsynced" | cut -d' ' -f1)" "$sumr" "and its content"
run_ok "unmount" lfs_umount "$MNTR"

ok $(grep -q "$T" /proc/mounts && echo 1 || echo 0) "nothing of this test is mounted"
done_testing
