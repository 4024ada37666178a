#!/usr/bin/env bash
# t0640-bucket-snapshots.sh — metadata snapshots and journal pruning in the
# bucket, and restore's way round a damaged snapshot.
#
#  1. With -o snapshot_records=40, rounds of changes (creates, renames,
#     deletes, xattrs) each followed by `lakefs sync` leave several
#     snapshots behind them; the bucket keeps exactly the two newest, and
#     no journal segment that ends at or before the older one.
#  2. A restore from the bucket matches the filesystem (names, stat, data).
#  3. The newest snapshot damaged in the bucket (bytes flipped): restore
#     warns, falls back to the older snapshot and the journal after it,
#     and still matches.
#  4. A journal segment damaged in the bucket: restore stops before it,
#     warns, and what it restores is a consistent earlier state (mounts,
#     reads, passes lakefs verify).
#  5. Writing on that earlier state starts a new history after every
#     record the bucket holds (a snapshot first), so the next restore
#     gives exactly that state plus the new write.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../s3lib.sh"

[ -e /dev/fuse ] || skip_all "no /dev/fuse"
need_cmd fusermount3 sha256sum getfattr setfattr python3 stat find

s3_start; ok $? "s3rver up on 127.0.0.1:$S3_PORT"
[ -n "$S3_PID" ] || { echo "Bail out! no s3rver"; exit 1; }

DATA=$T/s3data/$S3_BUCKET/snap
status_num() {  # status_num MNT FIELD
	timeout 10 cat "$1/.lakefs/status" 2>/dev/null |
		sed -n "s/^ *\"$2\": *\([0-9][0-9]*\).*/\1/p"
}
restore() {  # restore NEWSTATE LOG
	timeout 120 "$BIN/lakefs" restore --store "s3://$S3_BUCKET/snap" \
		--endpoint "$S3_ENDPOINT" --state "$1" >"$2" 2>&1
}
manifest() {  # manifest DIR OUT: stat of every name and sha256 of every file
	(
		cd "$1" || exit 1
		find . -path ./.lakefs -prune -o -print0 | LC_ALL=C sort -z |
			xargs -0 stat -c '%n %s %a %h %Y %F'
		find . -path ./.lakefs -prune -o -type f -print0 | LC_ALL=C sort -z |
			xargs -0 sha256sum
		find . -path ./.lakefs -prune -o -type f -print0 | LC_ALL=C sort -z |
			xargs -0 getfattr -d -m '^user\.' -e hex 2>&1
	) >"$2"
}
same() {  # same WANT GOT DESCRIPTION
	if diff -u "$1" "$2" >"$T/diff" && [ -s "$1" ]; then ok 0 "$3"
	else ok 1 "$3"; diag "$(head -20 "$T/diff")"; fi
}
# objects under meta/snap or meta/journal in s3rver's data, by name
objects() { ls "$DATA/meta/$1" 2>/dev/null | sed -n 's/\._S3rver_object$//p' | LC_ALL=C sort; }
# flip 32 bytes in the middle of an object file
damage() {
	python3 - "$1" <<'EOF'
import sys
p = sys.argv[1]
b = bytearray(open(p, 'rb').read())
mid = len(b) // 2
for i in range(mid, min(mid + 32, len(b))):
    b[i] ^= 0x5a
open(p, 'wb').write(bytes(b))
EOF
}

# ===================================================== 1. rounds of changes
M=$T/m
lfs_mount "$M" "$T/s" --block-size 64K --store "s3://$S3_BUCKET/snap" \
	--endpoint "$S3_ENDPOINT" -o snapshot_records=40
ok $? "mount with snapshot_records=40"
# the files live in a volume (the mount root holds catalogs only); the
# manifests cover the whole mount, the catalog's directories included
D=$(lfs_volume "$M"); ok $? "make a volume"
V=${D#"$M"/}
fail=0
for r in $(seq 1 8); do
	mkdir -p "$M/$V/r$r" || fail=1
	for i in $(seq 1 12); do
		printf 'round %d file %d\n' "$r" "$i" >"$M/$V/r$r/f$i" || fail=1
	done
	head -c $((100 * 1024)) /dev/urandom >"$M/$V/r$r/big" || fail=1
	setfattr -n user.round -v "$r" "$M/$V/r$r/f1" || fail=1
	[ "$r" -gt 1 ] && { mv "$M/$V/r$((r - 1))/f2" "$M/$V/r$r/moved" || fail=1; }
	[ "$r" -gt 2 ] && { rm -f "$M/$V/r$((r - 2))/f3" || fail=1; }
	timeout 60 "$BIN/lakefs" sync "$M" --quiet --timeout 50 || fail=1
	sleep 0.3	# the snapshot that a round triggers goes up after the sync
done
ok $fail "8 rounds of creates, renames, deletes and xattrs, each synced"
for _ in $(seq 1 100); do		# the last snapshot and its pruning
	[ "$(objects snap | wc -l)" -le 2 ] && [ "$(status_num "$M" journal_snapshots)" -ge 4 ] && break
	sleep 0.1
done
snaps=$(status_num "$M" journal_snapshots)
ok $([ "${snaps:-0}" -ge 4 ] && echo 0 || echo 1) "several snapshots went up ($snaps)"
manifest "$M" "$T/want"
lfs_umount "$M"; ok $? "unmount (it may take one more snapshot)"
is "$(objects snap | wc -l)" 2 "the bucket keeps the two newest snapshots"
older=$(objects snap | head -1)
newest=$(objects snap | tail -1)
stale=0
for seg in $(objects journal); do
	last=${seg#*-}
	[ $((16#$last)) -le $((16#$older)) ] && { stale=1; diag "stale segment $seg (older snapshot $older)"; }
done
ok $stale "no journal segment ends at or before the older snapshot ($older)"
ok $([ -n "$(objects journal)" ] && echo 0 || echo 1) "the journal after it is kept"

# ===================================================== 2. restore
restore "$T/r1" "$T/r1.log"; ok $? "restore"
lfs_mount "$T/mr1" "$T/r1"; ok $? "mount the restored state"
manifest "$T/mr1" "$T/got1"
same "$T/want" "$T/got1" "the restored filesystem matches"
lfs_umount "$T/mr1"

# ===================================================== 3. a damaged snapshot
damage "$DATA/meta/snap/$newest._S3rver_object"
restore "$T/r2" "$T/r2.log"; ok $? "restore with the newest snapshot damaged"
grep -q "does not read back whole" "$T/r2.log"; ok $? "it says the newest snapshot is damaged"
diag "$(grep -i "snapshot" "$T/r2.log" | head -3)"
case $(cat "$T/r2.log") in
*"snapshot at record $((16#$older)),"*) ok 0 "and restores from the older one (record $((16#$older)))";;
*) ok 1 "and restores from the older one (record $((16#$older)))"; diag "$(cat "$T/r2.log")";;
esac
lfs_mount "$T/mr2" "$T/r2"; ok $? "mount it"
manifest "$T/mr2" "$T/got2"
same "$T/want" "$T/got2" "the older snapshot plus the journal gives the same filesystem"
lfs_umount "$T/mr2"

# ===================================================== 4. a damaged segment
last_seg=$(objects journal | tail -1)
damage "$DATA/meta/journal/$last_seg._S3rver_object"
restore "$T/r3" "$T/r3.log"; ok $? "restore with the last journal segment damaged too"
grep -q "is corrupt; restored up to record" "$T/r3.log"; ok $? "it says where it stopped"
diag "$(grep -i "corrupt" "$T/r3.log" | head -2)"
lfs_mount "$T/mr3" "$T/r3"; ok $? "the earlier state mounts"
n=$(find "$T/mr3" -path "$T/mr3/.lakefs" -prune -o -type f -print | wc -l)
ok $([ "$n" -gt 0 ] && echo 0 || echo 1) "and holds files ($n)"
run_ok "every file of it reads" sh -c "find '$T/mr3' -path '$T/mr3/.lakefs' -prune -o -type f -print0 | xargs -0 cat >/dev/null"
run_ok "lakefs verify passes on it" timeout 60 "$BIN/lakefs" verify "$T/mr3"

# ===================================================== 5. going on from there
# The bucket still holds the lost records' snapshot and segments; the new
# history must not mix with them.
lfs_volume "$T/mr3" >/dev/null &&
	echo "written after the partial restore" >"$T/mr3/$V/after-fork"
timeout 60 "$BIN/lakefs" sync "$T/mr3" --quiet --timeout 50; ok $? "write on it and sync"
manifest "$T/mr3" "$T/want3"
lfs_umount "$T/mr3"
restore "$T/r4" "$T/r4.log"; ok $? "restore once more"
lfs_mount "$T/mr4" "$T/r4"; ok $? "mount it"
manifest "$T/mr4" "$T/got4"
same "$T/want3" "$T/got4" "it is the partial restore plus the new write, nothing of the lost history"
lfs_umount "$T/mr4"

# ===================================================== 6. a state that mounted without its bucket
# A first mount refused by the bucket (it holds another filesystem) leaves
# a state that then lives without a bucket for a while; when it is given a
# bucket of its own later, every block it wrote meanwhile goes up, even
# with a local cap that would evict blocks taken for uploaded.
out=$(lfs_mount "$T/m6" "$T/s6" --store "s3://$S3_BUCKET/snap" --endpoint "$S3_ENDPOINT" 2>&1)
ok $([ $? -ne 0 ] && echo 0 || echo 1) "a new state is refused by a bucket that holds another filesystem"
case $out in *"another lakefs filesystem"*) ok 0 "and says so";; *) ok 1 "and says so"; diag "$out";; esac
lfs_mount "$T/m6" "$T/s6"; ok $? "the state mounts without a bucket"
head -c $((3 * 1024 * 1024)) /dev/urandom >"$T/alone"
lfs_volume "$T/m6" >/dev/null && cp "$T/alone" "$T/m6/$V/alone" && sync; ok $? "and takes 3 MiB"
lfs_umount "$T/m6"
lfs_mount "$T/m6" "$T/s6" --store "s3://$S3_BUCKET/own" --endpoint "$S3_ENDPOINT" \
	-o cache_size=64K
ok $? "later it mounts with a bucket of its own and a 64 KiB local cap"
run_ok "lakefs sync" timeout 120 "$BIN/lakefs" sync "$T/m6" --quiet --timeout 100
run_ok "lakefs verify: every block it wrote alone is in the bucket" \
	timeout 60 "$BIN/lakefs" verify "$T/m6"
sync; echo 3 >/proc/sys/vm/drop_caches
run_ok "the file reads back whole" cmp "$T/alone" "$T/m6/$V/alone"
lfs_umount "$T/m6"

done_testing
