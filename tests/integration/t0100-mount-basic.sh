#!/usr/bin/env bash
# t0100-mount-basic: the mount comes up live, speaks its status, keeps a
# small tree across a remount, and the programs answer --help, --version
# and bad arguments the way a user expects.
. "$(dirname "$0")/../lib.sh"

need_cmd fusermount3 python3
[ -x "$BIN/lakefs-mount" ] || skip_all "lakefs-mount not built (run make)"
[ -e /dev/fuse ] || skip_all "no /dev/fuse"

M=$T/mnt
S=$T/state

# --- command line -----------------------------------------------------------
run_ok "lakefs-mount --help exits 0" "$BIN/lakefs-mount" --help
out=$("$BIN/lakefs-mount" --help 2>&1)
case $out in *usage*) ok 0 "--help prints a usage";; *) ok 1 "--help prints a usage"; diag "$out";; esac
run_ok "lakefs-mount --version exits 0" "$BIN/lakefs-mount" --version
out=$("$BIN/lakefs-mount" --version 2>&1)
case $out in *[0-9].[0-9]*) ok 0 "--version prints a version";; *) ok 1 "--version prints a version"; diag "$out";; esac
run_ok "lakefs --help exits 0" "$BIN/lakefs" --help

mkdir -p "$T/m0"
out=$(timeout 20 "$BIN/lakefs-mount" --no-such-option --state "$T/s0" "$T/m0" 2>&1); rc=$?
ok $(( rc != 0 && rc != 124 ? 0 : 1 )) "an unknown option exits non-zero (rc=$rc)"
case $out in *no-such-option*) ok 0 "and the message names the option";;
	*) ok 1 "and the message names the option"; diag "$out";; esac
grep -q " $T/m0 fuse" /proc/mounts && fusermount3 -u "$T/m0"

out=$(timeout 20 "$BIN/lakefs-mount" --state "$T/s1" "$T/does/not/exist" 2>&1); rc=$?
ok $(( rc != 0 && rc != 124 ? 0 : 1 )) "a nonexistent mount point exits non-zero (rc=$rc)"
is "$(printf '%s\n' "$out" | wc -l)" 1 "with a one-line error"
case $out in *"$T/does/not/exist"*) ok 0 "that names the mount point";;
	*) ok 1 "that names the mount point"; diag "$out";; esac
ok $(test ! -e "$T/does" && echo 0 || echo 1) "and creates nothing there"

out=$(timeout 20 "$BIN/lakefs-mount" 2>&1); rc=$?
ok $(( rc != 0 && rc != 124 ? 0 : 1 )) "no mount point exits non-zero (rc=$rc)"
[ -n "$out" ]; ok $? "with a message"

out=$(timeout 20 "$BIN/lakefs-mount" --state /proc/no/such/state "$T/m0" 2>&1); rc=$?
ok $(( rc != 0 && rc != 124 ? 0 : 1 )) "a state dir that cannot be created exits non-zero (rc=$rc)"
case $out in *"/proc/no/such/state"*) ok 0 "with a message naming it";;
	*) ok 1 "with a message naming it"; diag "$out";; esac
grep -q " $T/m0 fuse" /proc/mounts && fusermount3 -u "$T/m0"

# A regular file is not a mount point: mounting there leaves a mount whose
# root gives EIO (the kernel takes the root's type from the mount point).
: > "$T/afile"
out=$(timeout 20 "$BIN/lakefs-mount" --state "$T/s2" "$T/afile" 2>&1); rc=$?
mounted=$(grep -c " $T/afile fuse" /proc/mounts)
[ "$mounted" -gt 0 ] && { fusermount3 -u "$T/afile" 2>/dev/null || umount -l "$T/afile"; }
ok $(( rc != 0 && rc != 124 ? 0 : 1 )) "a regular file as mount point exits non-zero (rc=$rc)"
is "$mounted" 0 "and mounts nothing there"
case $out in *"$T/afile"*[Nn]"ot a directory"*) ok 0 "with a message saying it is not a directory";;
	*) ok 1 "with a message saying it is not a directory"; diag "${out:-(no message)}";; esac

# --- mount, live on return --------------------------------------------------
t0=$(date +%s.%N)
lfs_mount "$M" "$S"; rc=$?
t1=$(date +%s.%N)
is "$rc" 0 "lakefs-mount returns 0"
[ "$rc" -eq 0 ] || { diag "cannot mount, giving up"; done_testing; exit 1; }
diag "mount took $(python3 -c "print(round($t1-$t0, 3))") s"
grep -q " $M fuse" /proc/mounts; ok $? "the mount is in /proc/mounts when lakefs-mount returns"
run_ok "ls works right after mount returns" ls -la "$M"
run_ok "stat of the root is a directory" test -d "$M"
run_ok "the state dir was created" test -d "$S"
pid=$(lfs_daemon_pid "$M"); ok $? "a daemon serves the mount (pid ${pid:-none})"

# --- status ----------------------------------------------------------------
run_ok ".lakefs/status exists" test -f "$M/.lakefs/status"
run_ok ".lakefs/status is valid JSON" python3 -m json.tool "$M/.lakefs/status"
check_status() {  # python checks on the JSON; prints nothing on success
	python3 - "$M/.lakefs/status" "$@" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
errs = []
for k in ("version", "uptime_s", "state_dir", "files", "dirs", "blocks",
          "logical_bytes", "stored_bytes", "dedup_ratio"):
    if k not in d:
        errs.append("missing key %s" % k)
for k in ("uptime_s", "files", "dirs", "blocks", "logical_bytes", "stored_bytes"):
    if k in d and (not isinstance(d[k], int) or d[k] < 0):
        errs.append("%s is not a count: %r" % (k, d[k]))
for a in sys.argv[2:]:
    k, op, v = a.split(":")
    got = d.get(k)
    if op == "ge" and not (got is not None and got >= int(v)): errs.append("%s=%r, want >= %s" % (k, got, v))
    if op == "eq" and got != (int(v) if v.isdigit() else v): errs.append("%s=%r, want %s" % (k, got, v))
print("\n".join(errs))
sys.exit(1 if errs else 0)
EOF
}
out=$(check_status "state_dir:eq:$S" "files:eq:0" "dirs:ge:1"); ok $? "status of a fresh mount: keys, counts, state dir"; [ -n "$out" ] && diag "$out"
run_fail "status is read-only" sh -c "echo x > '$M/.lakefs/status'"
run_fail "status cannot be removed" rm -f "$M/.lakefs/status"
run_fail "no file can be created in .lakefs" touch "$M/.lakefs/new"
# mkdir of a name that does not exist must not say EEXIST
out=$(mkdir "$M/.lakefs/newdir" 2>&1); rc=$?
ok $(( rc != 0 ? 0 : 1 )) "no directory can be made in .lakefs"
case $out in *"File exists"*) ok 1 "and the error is not EEXIST for a name that does not exist"; diag "$out";;
	*) ok 0 "and the error is not EEXIST for a name that does not exist";; esac

# --- files and directories -------------------------------------------------
# The root holds catalogs only: the files live in a volume.
D=$(lfs_volume "$M"); ok $? "make a volume (${D#$M/})"
[ -n "$D" ] || { diag "cannot make a volume, giving up"; done_testing; exit 1; }
out=$(check_status "files:eq:0" "dirs:eq:$((1 + LFS_VOLUME_DIRS))"); ok $? "status counts the root and the volume's $LFS_VOLUME_DIRS directories"; [ -n "$out" ] && diag "$out"
echo "hello lakefs" > "$D/hello.txt"; ok $? "write a file"
is "$(cat "$D/hello.txt")" "hello lakefs" "read it back"
is "$(stat -c %s "$D/hello.txt")" 13 "its size"
run_ok "mkdir" mkdir "$D/dir"
run_ok "mkdir -p a nested path" mkdir -p "$D/dir/a/b/c"
run_ok "it is a directory" test -d "$D/dir/a/b/c"
head -c 3000000 /dev/urandom > "$T/rand.bin"
run_ok "copy a 3 MB random file in" cp "$T/rand.bin" "$D/dir/a/rand.bin"
run_ok "it reads back identical" cmp "$T/rand.bin" "$D/dir/a/rand.bin"
printf 'line %d\n' $(seq 1 2000) > "$D/dir/a/b/c/lines.txt"
ln -s ../hello.txt "$D/dir/link"; ok $? "create a symlink"
is "$(cat "$D/dir/link")" "hello lakefs" "read through the symlink"
run_ok "rm a file" sh -c "echo gone > '$D/gone' && rm '$D/gone' && test ! -e '$D/gone'"
run_ok "rmdir a directory" sh -c "mkdir '$D/empty' && rmdir '$D/empty' && test ! -e '$D/empty'"
chmod 640 "$D/hello.txt"
listing() {  # a tree's shape and content, stable across mounts
	(cd "$1" && find . -path ./.lakefs -prune -o -printf '%p %y %m %s %l\n' | LC_ALL=C sort &&
	 find . -path ./.lakefs -prune -o -type f -print0 | LC_ALL=C sort -z | xargs -0 md5sum)
}
before=$(listing "$M")
sync
out=$(check_status "files:ge:3" "dirs:ge:$((5 + LFS_VOLUME_DIRS))" "blocks:ge:3" "logical_bytes:ge:3000013"); ok $? "status counts the files written"; [ -n "$out" ] && diag "$out"

# --- remount ---------------------------------------------------------------
run_ok "unmount" lfs_umount "$M"
grep -q " $M fuse" /proc/mounts; ok $(( $? == 0 ? 1 : 0 )) "the mount is gone"
ok $(pid_alive "$pid" && echo 1 || echo 0) "the daemon has exited"
run_ok "remount the same state" lfs_mount "$M" "$S"
after=$(listing "$M")
is "$after" "$before" "the tree (names, types, modes, sizes, content) survives a remount"
run_ok "the random file is intact" cmp "$T/rand.bin" "$D/dir/a/rand.bin"
is "$(readlink "$D/dir/link")" "../hello.txt" "the symlink target survives"
out=$(check_status "files:ge:3" "logical_bytes:ge:3000013"); ok $? "status counts survive a remount"; [ -n "$out" ] && diag "$out"

# --- lakefs status ---------------------------------------------------------
out=$(timeout 20 "$BIN/lakefs" status "$M" 2>&1); rc=$?
is "$rc" 0 "lakefs status MNT exits 0"
case $out in *"$S"*) ok 0 "it prints the state dir";; *) ok 1 "it prints the state dir"; diag "$out";; esac
printf '%s\n' "$out" | grep -qiE '^ *files? *[: ] *[0-9]'; ok $? "it prints the file count"
printf '%s\n' "$out" | grep -qE '[0-9.]+ ?(B|KiB|MiB|GiB)'; ok $? "it prints sizes for humans"
printf '%s\n' "$out" | grep -q '{'; ok $(( $? == 0 ? 1 : 0 )) "it is not JSON"
run_ok "lakefs status --json is valid JSON" sh -c "timeout 20 '$BIN/lakefs' status '$M' --json | python3 -m json.tool"
out=$(timeout 20 "$BIN/lakefs" status "$T" 2>&1); rc=$?
ok $(( rc != 0 && rc != 124 ? 0 : 1 )) "lakefs status on a non-lakefs dir fails (rc=$rc)"
[ -n "$out" ]; ok $? "with a message"; diag "$out"

# --- mount is live on return, every time -----------------------------------
cycles_ok=0
for i in 1 2 3 4 5; do
	lfs_umount "$M" || break
	lfs_mount "$M" "$S" || break
	[ "$(ls "$D/dir/a" 2>&1)" = "$(printf 'b\nrand.bin')" ] || { diag "cycle $i: $(ls "$D/dir/a" 2>&1)"; break; }
	cmp -s "$T/rand.bin" "$D/dir/a/rand.bin" || { diag "cycle $i: rand.bin differs"; break; }
	cycles_ok=$i
done
is "$cycles_ok" 5 "5 unmount/mount cycles, each live on return with the tree intact"
run_ok "unmount" lfs_umount "$M"

# --- -o ro -------------------------------------------------------------------
run_ok "mount with -o ro" lfs_mount "$M" "$S" -o ro
grep " $M fuse" /proc/mounts | grep -q '[ ,]ro[, ]'; ok $? "mounted read-only"
is "$(cat "$D/hello.txt" 2>&1)" "hello lakefs" "reads work"
out=$( (echo x > "$D/new") 2>&1 ); rc=$?
ok $(( rc != 0 ? 0 : 1 )) "creating a file fails"
case $out in *"Read-only file system"*) ok 0 "with EROFS";; *) ok 1 "with EROFS"; diag "$out";; esac
run_fail "mkdir fails" mkdir "$D/newdir"
out=$(mkdir "$M/newcat" 2>&1); rc=$?
ok $(( rc != 0 ? 0 : 1 )) "creating a catalog fails"
case $out in *"Read-only file system"*) ok 0 "with EROFS";; *) ok 1 "with EROFS"; diag "$out";; esac
run_ok "status is readable on a read-only mount" python3 -m json.tool "$M/.lakefs/status"
run_ok "final unmount" lfs_umount "$M"
done_testing
