#!/usr/bin/env bash
# t0520-mount-helper.sh — the mount(8) helper form (mount.fuse.lakefs STATE
# MNT -o OPTS), mount -t fuse.lakefs, an fstab line (through mount -T), and
# SIGTERM/SIGINT to the daemon unmounting cleanly with the data persisted,
# also while a writer is busy. The files live in a volume (MNT/t/files/v:
# the mount root holds catalogs only), made at the first mount.
. "$(dirname "$0")/../lib.sh"

[ -e /dev/fuse ] || skip_all "no /dev/fuse"
need_cmd fusermount3 md5sum

STATE=$T/state
MNT=$T/mnt
HELPER=/sbin/mount.fuse.lakefs
made_helper=""

# Remove the /sbin helper symlink only if this test made it and it is
# still ours.
trap 'lfs_cleanup
	if [ -n "$made_helper" ] && [ "$(readlink "$HELPER")" = "$BIN/lakefs-mount" ]; then
		rm -f "$HELPER"
	fi' EXIT

# The helper's command line does not end in the mount point, so find the
# daemon through its status file; lfs_cleanup unmounts what is listed in
# _lfs_mounts, whatever mounted it.
_lfs_mounts="$_lfs_mounts $MNT"
mkdir -p "$MNT"
mounted() { grep -q " $MNT fuse" /proc/mounts; }
mount_opts() { awk -v m="$MNT" '$2 == m { print $4 }' /proc/mounts; }
daemon_pid() {
	timeout 10 cat "$MNT/.lakefs/status" 2>/dev/null |
		sed -n 's/^ *"pid": *\([0-9]*\).*/\1/p'
}
# unmount_with CMD...: run CMD, then wait (bounded) for the daemon to exit
unmount_with() {
	local pid
	pid=$(daemon_pid)
	"$@" || return 1
	for _ in $(seq 1 300); do
		pid_alive "$pid" || break
		sleep 0.1
	done
	! pid_alive "$pid" && ! mounted
}
md5() { timeout 60 md5sum <"$1" | cut -d' ' -f1; }

# --- mount.fuse.lakefs STATE MNT -o OPTS ---
# allow_other needs root or user_allow_other in /etc/fuse.conf
if [ "$(id -u)" -eq 0 ] || grep -qs '^user_allow_other' /etc/fuse.conf; then
	run_ok "mount.fuse.lakefs STATE MNT -o allow_other,nofail" \
		timeout 60 "$BIN/mount.fuse.lakefs" "$STATE" "$MNT" -o allow_other,nofail
	ok $(mounted && echo 0 || echo 1) "the helper's mount is live when it returns"
	case ,$(mount_opts), in *,allow_other,*) ok 0 "allow_other reaches FUSE" ;;
	*) ok 1 "allow_other reaches FUSE"; diag "mount options: $(mount_opts)" ;; esac
else
	run_ok "mount.fuse.lakefs STATE MNT -o nofail" \
		timeout 60 "$BIN/mount.fuse.lakefs" "$STATE" "$MNT" -o nofail
	ok $(mounted && echo 0 || echo 1) "the helper's mount is live when it returns"
	ok 0 "# SKIP allow_other: not root and no user_allow_other in /etc/fuse.conf"
fi
D=$(lfs_volume "$MNT"); ok $? "make a volume through the helper's mount"
head -c $((2 * 1024 * 1024 + 3)) /dev/urandom >"$T/data1"
run_ok "write through the helper's mount" cp "$T/data1" "$D/data1"
is "$(timeout 10 cat "$MNT/.lakefs/status" | sed -n 's/^ *"state_dir": *"\(.*\)",*$/\1/p')" \
	"$STATE" "status names the state directory given to the helper"
run_ok "fusermount3 -u unmounts it" unmount_with fusermount3 -u "$MNT"

run_ok "mount.fuse.lakefs accepts and drops rw,defaults,_netdev" \
	timeout 60 "$BIN/mount.fuse.lakefs" "$STATE" "$MNT" -o rw,defaults,_netdev
ok $(mounted && echo 0 || echo 1) "mounted with rw,defaults,_netdev"
case ,$(mount_opts), in *,_netdev,*|*,defaults,*) ok 1 "mount options are clean"
	diag "mount options: $(mount_opts)" ;;
*) ok 0 "mount options are clean" ;; esac
is "$(md5 "$D/data1")" "$(md5sum <"$T/data1" | cut -d' ' -f1)" "data persists across helper mounts"
run_ok "unmount" unmount_with fusermount3 -u "$MNT"

# --- mount -t fuse.lakefs and an fstab line (root, mount(8), /sbin helper) ---
if [ "$(id -u)" -ne 0 ] || ! command -v mount >/dev/null || ! command -v umount >/dev/null; then
	ok 0 "# SKIP mount -t fuse.lakefs: needs root and mount(8)"
	ok 0 "# SKIP mount -T fstab: needs root and mount(8)"
else
	if [ ! -e "$HELPER" ] && [ ! -L "$HELPER" ]; then
		ln -s "$BIN/lakefs-mount" "$HELPER" && made_helper=1
	fi
	if [ ! -x "$HELPER" ]; then
		ok 0 "# SKIP mount -t fuse.lakefs: cannot install $HELPER"
		ok 0 "# SKIP mount -T fstab: cannot install $HELPER"
	else
		[ -z "$made_helper" ] && echo "# using the existing $HELPER -> $(readlink -f "$HELPER")"
		run_ok "mount -t fuse.lakefs STATE MNT" timeout 60 mount -t fuse.lakefs "$STATE" "$MNT"
		ok $(mounted && echo 0 || echo 1) "the mount -t mount is live"
		is "$(md5 "$D/data1")" "$(md5sum <"$T/data1" | cut -d' ' -f1)" \
			"data reads back through mount -t"
		echo "via mount -t" >"$D/via_t"
		run_ok "umount MNT unmounts it" unmount_with timeout 30 umount "$MNT"

		printf '%s %s fuse.lakefs defaults 0 0\n' "$STATE" "$MNT" >"$T/fstab"
		run_ok "mount -T FSTAB MNT with a fuse.lakefs line" \
			timeout 60 mount -T "$T/fstab" "$MNT"
		ok $(mounted && echo 0 || echo 1) "the fstab mount is live"
		is "$(timeout 10 cat "$D/via_t")" "via mount -t" "data written via mount -t persisted"
		run_ok "umount the fstab mount" unmount_with timeout 30 umount "$MNT"
	fi
fi

# --- SIGTERM and SIGINT unmount cleanly, data persisted ---
for sig in TERM INT; do
	lfs_mount "$MNT" "$STATE"; ok $? "mount for SIG$sig"
	head -c $((3 * 1024 * 1024 + 11)) /dev/urandom >"$T/sig$sig"
	cp "$T/sig$sig" "$D/sig$sig"          # closed, never fsynced
	mkdir -p "$D/dir$sig/sub" && echo "$sig" >"$D/dir$sig/sub/small"
	pid=$(lfs_daemon_pid "$MNT")
	kill -"$sig" "$pid"
	for _ in $(seq 1 300); do
		pid_alive "$pid" || break
		sleep 0.1
	done
	ok $(pid_alive "$pid" && echo 1 || echo 0) "SIG$sig: the daemon exits"
	ok $(mounted && echo 1 || echo 0) "SIG$sig: the mount is gone (not left dead)"
	mounted && { fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null; }
	lfs_mount "$MNT" "$STATE"; ok $? "SIG$sig: remount"
	is "$(md5 "$D/sig$sig")" "$(md5sum <"$T/sig$sig" | cut -d' ' -f1)" \
		"SIG$sig: a file written before the signal is persisted"
	is "$(timeout 10 cat "$D/dir$sig/sub/small")" "$sig" "SIG$sig: a new directory tree is persisted"
	is "$(md5 "$D/data1")" "$(md5sum <"$T/data1" | cut -d' ' -f1)" "SIG$sig: older data intact"
	run_ok "SIG$sig: unmount" lfs_umount "$MNT"
done

# --- SIGTERM while a writer is busy: bounded exit, what dd got is kept ---
lfs_mount "$MNT" "$STATE"; ok $? "mount for SIGTERM during a write"
head -c $((300 * 1024 * 1024)) /dev/urandom >"$T/busy"
( timeout 120 dd if="$T/busy" of="$D/busy" bs=1M status=none 2>"$T/busy.err"
  echo $? >"$T/busy.rc" ) &
wpid=$!
for _ in $(seq 1 100); do   # until dd has written something (bounded)
	[ -s "$D/busy" ] && break
	sleep 0.05
done
pid=$(lfs_daemon_pid "$MNT")
kill -TERM "$pid"
for _ in $(seq 1 600); do
	pid_alive "$pid" || break
	sleep 0.1
done
ok $(pid_alive "$pid" && echo 1 || echo 0) "SIGTERM during a write: the daemon exits within 60 s"
wait "$wpid" 2>/dev/null
ok $(mounted && echo 1 || echo 0) "SIGTERM during a write: the mount is gone"
mounted && { fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null; }
rc=$(cat "$T/busy.rc" 2>/dev/null)
echo "# dd exit ${rc:-?}: $(tr '\n' ' ' <"$T/busy.err" 2>/dev/null)"
lfs_mount "$MNT" "$STATE"; ok $? "SIGTERM during a write: remount"
if [ "$rc" = 0 ]; then
	is "$(md5 "$D/busy")" "$(md5sum <"$T/busy" | cut -d' ' -f1)" \
		"dd succeeded, so the file is complete after remount"
else
	size=$(stat -c %s "$D/busy" 2>/dev/null || echo 0)
	is "$(timeout 60 md5sum <"$D/busy" 2>/dev/null | cut -d' ' -f1)" \
		"$(head -c "$size" "$T/busy" | md5sum | cut -d' ' -f1)" \
		"dd failed, so the file is a prefix of what it wrote ($size bytes)"
fi
is "$(md5 "$D/data1")" "$(md5sum <"$T/data1" | cut -d' ' -f1)" "older data intact"
run_ok "unmount" lfs_umount "$MNT"
done_testing
