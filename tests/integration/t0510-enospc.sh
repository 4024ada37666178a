#!/usr/bin/env bash
# t0510-enospc.sh — a full disk under the state directory gives ENOSPC to
# the writer, loses nothing already written, and the daemon recovers once
# space is freed. The state lives on a 64 MiB tmpfs (needs root); the files
# in a volume (MNT/t/files/v: the mount root holds catalogs only).
. "$(dirname "$0")/../lib.sh"

need_root
[ -e /dev/fuse ] || skip_all "no /dev/fuse"
need_cmd fusermount3 md5sum mount umount

SMALL=$T/small
STATE=$SMALL/state
MNT=$T/mnt
MiB=$((1024 * 1024))

# lfs_cleanup unmounts the FUSE mount (and waits for its daemon) before the
# tmpfs goes; its rm -rf cannot remove the tmpfs mount point, so do that.
trap 'lfs_cleanup; umount -l "$SMALL" 2>/dev/null; rmdir "$SMALL" "$T" 2>/dev/null' EXIT

status_num() {  # status_num FIELD: a number from MNT/.lakefs/status
	timeout 10 cat "$MNT/.lakefs/status" 2>/dev/null |
		sed -n "s/^ *\"$1\": *\([0-9][0-9.]*\).*/\1/p"
}
md5() { timeout 60 md5sum <"$1" | cut -d' ' -f1; }

mkdir -p "$SMALL"
mount -t tmpfs -o size=64m none "$SMALL" || skip_all "cannot mount a tmpfs"
# lfs_mount runs in this shell, not under run_ok (a subshell), so that the
# cleanup trap knows the mount.
lfs_mount "$MNT" "$STATE"; ok $? "mount lakefs with its state on a 64 MiB tmpfs"
D=$(lfs_volume "$MNT"); ok $? "make a volume"
dpid=$(lfs_daemon_pid "$MNT")

head -c $((10 * MiB)) /dev/urandom >"$T/ten"
ten_md5=$(md5sum <"$T/ten" | cut -d' ' -f1)
run_ok "write a 10 MiB file and fsync it" \
	timeout 60 dd if="$T/ten" of="$D/ten" bs=1M conv=fsync status=none

head -c $((200 * MiB)) /dev/urandom >"$T/src200"
start=$(date +%s)
timeout 120 dd if="$T/src200" of="$D/big" bs=1M count=200 status=none 2>"$T/dd.err"
rc=$?
took=$(( $(date +%s) - start ))
echo "# dd exit $rc after ${took}s: $(tr '\n' ' ' <"$T/dd.err")"
ok $([ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ "$rc" -lt 128 ] && echo 0 || echo 1) \
	"a 200 MiB dd fails by itself, without hanging (exit $rc, ${took}s)"
grep -q "No space left on device" "$T/dd.err"
ok $? "the writer gets ENOSPC (No space left on device)"

ok $(pid_alive "$dpid" && echo 0 || echo 1) "the daemon is still alive"
is "$(md5 "$D/ten")" "$ten_md5" "the fsynced 10 MiB file still reads the same"
free_k=$(df -k "$SMALL" | tail -1 | awk '{print $4}')
echo "# tmpfs after ENOSPC: $free_k KiB free"
ok $([ "$free_k" -ge 3584 ] && echo 0 || echo 1) \
	"the daemon kept its reserve (4 MiB, less 0.5 MiB slack): $free_k KiB free"
bsize=$(stat -c %s "$D/big" 2>/dev/null || echo 0)
ok $([ "$bsize" -lt $((200 * MiB)) ] && echo 0 || echo 1) "the big file is short ($bsize bytes)"
if [ "$bsize" -gt 0 ]; then
	is "$(timeout 60 md5sum <"$D/big" | cut -d' ' -f1)" \
		"$(head -c "$bsize" "$T/src200" | md5sum | cut -d' ' -f1)" \
		"what the big file holds is a prefix of what dd wrote, no garbage"
else
	ok 0 "the big file is empty"
fi

run_ok "rm the partial big file" timeout 30 rm -f "$D/big"
# freeing may lag a little behind the unlink: retry (bounded) the new write
head -c $((5 * MiB)) /dev/urandom >"$T/five"
for i in $(seq 1 20); do
	timeout 60 dd if="$T/five" of="$D/after" bs=1M conv=fsync status=none \
		2>"$T/after.err" && break
	sleep 0.5
done
[ "$i" -gt 1 ] && echo "# the write after rm needed $i attempts: $(cat "$T/after.err")"
run_ok "a new 5 MiB write succeeds after the rm" \
	timeout 60 dd if="$T/five" of="$D/after" bs=1M conv=fsync status=none
is "$(md5 "$D/after")" "$(md5sum <"$T/five" | cut -d' ' -f1)" "the new file reads back"
echo small >"$D/small" && sync -f "$D/small" 2>/dev/null
is "$(timeout 10 cat "$D/small")" small "small files can be created again"
mkdir "$D/newdir" 2>/dev/null
ok $? "directories can be created again"

run_ok "clean unmount" lfs_umount "$MNT"
lfs_mount "$MNT" "$STATE"; ok $? "remount on the same tmpfs"
is "$(md5 "$D/ten")" "$ten_md5" "after remount the 10 MiB file is intact"
is "$(md5 "$D/after")" "$(md5sum <"$T/five" | cut -d' ' -f1)" \
	"after remount the file written after the rm is intact"
ok $([ -e "$D/big" ] && echo 1 || echo 0) "the removed big file stays removed"
run_ok "final unmount" lfs_umount "$MNT"
done_testing
