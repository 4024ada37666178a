#!/usr/bin/env bash
# t0530-write-direct.sh — write-only opens use FUSE direct I/O (-o
# write_direct, on by default on Linux 6.6+), which bypasses the kernel's
# page cache; a reader that cached the file before (by read(2) and by a
# mapping) must still see every byte of such a write at once, and so it
# must with write_direct=0, through the page cache. (Which pages the kernel
# keeps is not observable here: with auto_inval_data it drops a file's
# pages whenever its mtime moves, in both modes.) A bad value is refused.
. "$(dirname "$0")/../lib.sh"

need_root
[ -e /dev/fuse ] || skip_all "no /dev/fuse"
need_cmd fusermount3 python3 cmp

MNT=$T/mnt
STATE=$T/state
MiB=$((1024 * 1024))
trap lfs_cleanup EXIT


head -c $((4 * MiB)) /dev/urandom >"$T/a"
head -c $((4 * MiB)) /dev/urandom >"$T/b"
head -c $MiB /dev/urandom >"$T/patch"
cp "$T/a" "$T/want"
dd if="$T/patch" of="$T/want" bs=1M seek=1 conv=notrunc status=none

# A reader holds f open with every page cached (read, and mapped); then a
# write-only descriptor overwrites the second MiB and appends a line. The
# reader must see both through its old descriptor and its old mapping.
coherence() {  # coherence DIR
	local d=$1
	cp "$T/a" "$d/f"
	python3 - "$d/f" "$T/patch" "$T/want" <<'EOF'
import mmap, os, sys
path, patch, want = sys.argv[1], open(sys.argv[2], "rb").read(), open(sys.argv[3], "rb").read()
fd = os.open(path, os.O_RDONLY)
old = os.pread(fd, 4 << 20, 0)
m = mmap.mmap(fd, 4 << 20, prot=mmap.PROT_READ)
assert m[:] == old
w = os.open(path, os.O_WRONLY)
os.pwrite(w, patch, 1 << 20)
os.close(w)
a = os.open(path, os.O_WRONLY | os.O_APPEND)
os.write(a, b"appended line\n")
os.close(a)
bad = []
if os.pread(fd, 4 << 20, 0) != want:
    bad.append("read through the old descriptor")
if m[:] != want:
    bad.append("the old mapping")
if os.pread(fd, 64, 4 << 20) != b"appended line\n":
    bad.append("the appended line")
print(" ".join(bad) if bad else "fresh")
EOF
}

# --- default: direct I/O where the kernel keeps readers coherent ---
lfs_mount "$MNT" "$STATE"; ok $? "mount with the default write_direct"
D=$(lfs_volume "$MNT"); ok $? "make a volume"
timeout 60 dd if="$T/b" of="$D/wo" bs=1M conv=fsync status=none
ok $? "dd (write-only) writes 4 MiB"
timeout 60 cmp "$T/b" "$D/wo"; ok $? "and it reads back exactly"
is "$(coherence "$D")" fresh "a reader's cached pages and mapping see a write-only overwrite and append"
printf 'x\n' >>"$D/wo"
is "$(timeout 10 tail -c 2 "$D/wo")" "x" "a shell append (O_WRONLY|O_APPEND) lands at the end"
run_ok "unmount" lfs_umount "$MNT"

# --- write_direct=0: through the page cache, just as coherent ---
lfs_mount "$MNT" "$STATE" -o write_direct=0; ok $? "mount with -o write_direct=0"
timeout 60 dd if="$T/a" of="$D/wo" bs=1M conv=fsync status=none
ok $? "dd (write-only) writes 4 MiB"
timeout 60 cmp "$T/a" "$D/wo"; ok $? "and it reads back exactly"
is "$(coherence "$D")" fresh "a reader's cached pages and mapping see the overwrite and append"
run_ok "unmount" lfs_umount "$MNT"

# --- a bad value ---
err=$(timeout 30 "$BIN/lakefs-mount" --state "$STATE" -o write_direct=yes "$MNT" 2>&1)
rc=$?
ok "$([ $rc -ne 0 ] && echo 0 || echo 1)" "-o write_direct=yes is refused (exit $rc)"
case $err in *write_direct*) r=0 ;; *) r=1 ;; esac
ok $r "with a message naming the option ($err)"
mountpoint -q "$MNT" && lfs_umount "$MNT"
done_testing
