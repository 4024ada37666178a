#!/usr/bin/env bash
# t0400-crash.sh — kill -9 of the daemon loses nothing that was fsynced.
#
# Three rounds: crashwriter writes and fsyncs files (acknowledging each in
# an fsynced manifest) while a second crashwriter rewrites other files
# without fsync; after a seeded random 2-5 s the daemon is killed with
# SIGKILL, the dead mount is unmounted and the same state remounted. Every
# acknowledged file of every round so far must be intact, every churn file
# one complete version (lakefs commits contents only at close/fsync, so
# never a prefix). The writer gets more files than it can write before
# the kill (LFS_CRASH_COUNT, default 1500), so the kill lands mid-write.
# Then a kill during a 200 MiB dd without fsync: the file
# is absent, empty, its old content or complete. Replay with
# LFS_SEED=<seed> (printed).
. "$(dirname "$0")/../lib.sh"
# lib.sh's watchdog subshell leaves its `sleep` running after cleanup, and
# that sleep holds prove's pipe open for 900 s: end it too.
trap '_wd=$(pgrep -P "$_lfs_watchdog" 2>/dev/null); lfs_cleanup
	[ -z "$_wd" ] || kill $_wd 2>/dev/null' EXIT

CW=$TBIN/tools/crashwriter
[ -x "$CW" ] || skip_all "crashwriter not built (run make)"
[ -e /dev/fuse ] || skip_all "no /dev/fuse"
need_cmd fusermount3 md5sum

SEED=${LFS_SEED:-$(( ($(date +%s) ^ $$) % 1000000 ))}
echo "# seed $SEED (replay with LFS_SEED=$SEED)"
RANDOM=$SEED

STATE=$T/state
MNT=$T/mnt
pids=""
COUNT=${LFS_CRASH_COUNT:-1500}

status_num() {  # status_num FIELD: a number from MNT/.lakefs/status
	timeout 10 cat "$MNT/.lakefs/status" 2>/dev/null |
		sed -n "s/^ *\"$1\": *\([0-9][0-9.]*\).*/\1/p"
}

# crash: SIGKILL the daemon, kill the writers, unmount the dead mount.
crash() {
	local dpid=$1 p
	kill -9 "$dpid" 2>/dev/null
	for p in $pids; do kill -9 "$p" 2>/dev/null; done
	for _ in $(seq 1 100); do
		local live=""
		pid_alive "$dpid" && live=1
		for p in $pids; do pid_alive "$p" && live=1; done
		[ -z "$live" ] && break
		sleep 0.1
	done
	for p in $pids; do wait "$p" 2>/dev/null; done
	pids=""
	pid_alive "$dpid" && diag "daemon $dpid still alive after kill -9"
	timeout 20 fusermount3 -u "$MNT" 2>/dev/null ||
		timeout 20 umount -l "$MNT" 2>/dev/null
	! grep -q " $MNT fuse" /proc/mounts
}

remount() {
	lfs_mount "$MNT" "$STATE" && timeout 10 stat "$MNT/.lakefs/status" >/dev/null
}

run_ok "mount a fresh state" lfs_mount "$MNT" "$STATE"
mkdir -p "$MNT/churn"

total_acked=0
for round in 1 2 3; do
	mkdir "$MNT/acked$round"
	delay_ms=$((2000 + RANDOM % 3001))
	echo "# round $round: kill after ${delay_ms} ms"
	"$CW" write "$MNT/acked$round" "$COUNT" $((SEED + round)) \
		>"$T/write$round.out" 2>"$T/write$round.err" &
	wpid=$!
	disown $wpid
	"$CW" churn "$MNT/churn" $((SEED + round)) \
		>/dev/null 2>"$T/churn$round.err" &
	pids="$wpid $!"
	disown $!
	dpid=$(lfs_daemon_pid "$MNT")
	sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
	ok $([ -n "$dpid" ] && echo 0 || echo 1) "round $round: daemon found ($dpid), writers ran ${delay_ms} ms"
	pid_alive "$wpid" && echo "# round $round: writer still running at the kill" ||
		echo "# round $round: writer had finished before the kill"
	run_ok "round $round: kill -9 daemon and writers, unmount dead mount" \
		crash "$dpid"
	run_ok "round $round: remount the same state" remount

	acked=$(grep -c . "$T/write$round.out")
	ok $([ "$acked" -gt 0 ] && echo 0 || echo 1) \
		"round $round: files acknowledged before the kill ($acked)"
	[ "$acked" -gt 0 ] || diag "$(cat "$T/write$round.err")"
	total_acked=$((total_acked + acked))

	missing=$(timeout 30 grep -Fxvf "$MNT/acked$round/manifest" \
		"$T/write$round.out")
	is "$missing" "" "round $round: every acknowledged line is in the manifest"
	for r in $(seq 1 "$round"); do
		run_ok "round $round: verify acked$r" \
			timeout 120 "$CW" verify "$MNT/acked$r" 0
	done
	run_ok "round $round: verify churn files (no prefix, no mix)" \
		timeout 120 "$CW" verify "$MNT/churn" 0
done

# --- kill -9 during a 200 MiB dd without fsync ---
head -c $((200 * 1024 * 1024)) /dev/urandom >"$T/big.src"
new_md5=$(md5sum <"$T/big.src" | cut -d' ' -f1)
head -c $((3 * 1024 * 1024 + 17)) /dev/urandom >"$T/old.src"
old_md5=$(md5sum <"$T/old.src" | cut -d' ' -f1)
run_ok "write the old content of big and fsync it" \
	timeout 60 dd if="$T/old.src" of="$MNT/big" bs=1M conv=fsync status=none
run_ok "an fsynced neighbour" \
	timeout 60 dd if="$T/old.src" of="$MNT/neighbour" bs=1M conv=fsync status=none

dpid=$(lfs_daemon_pid "$MNT")
dd if="$T/big.src" of="$MNT/big" bs=1M status=none 2>/dev/null &
ddpid=$!
disown $ddpid
pids=$ddpid
# kill once dd has handed over at least 64 MiB (bounded wait)
for _ in $(seq 1 300); do
	wchar=$(sed -n 's/^wchar: //p' "/proc/$ddpid/io" 2>/dev/null)
	[ -n "$wchar" ] && [ "$wchar" -ge $((64 * 1024 * 1024)) ] && break
	pid_alive "$ddpid" || break
	sleep 0.05
done
if pid_alive "$ddpid"; then
	echo "# dd still running at the kill (wchar ${wchar:-?})"
else
	echo "# dd already done before the kill (kill hits after close)"
fi
run_ok "kill -9 during the 200 MiB dd, unmount dead mount" crash "$dpid"
run_ok "remount after the dd crash" remount

if [ -e "$MNT/big" ]; then
	got=$(timeout 120 md5sum <"$MNT/big" | cut -d' ' -f1)
	size=$(stat -c %s "$MNT/big")
	case $got in
	"$old_md5") echo "# big has its old content" ;;
	"$new_md5") echo "# big is complete" ;;
	d41d8cd98f00b204e9800998ecf8427e) echo "# big is empty" ;;
	esac
	ok $([ "$got" = "$old_md5" ] || [ "$got" = "$new_md5" ] ||
		[ "$size" -eq 0 ] && echo 0 || echo 1) \
		"big is empty, old or complete after the crash"
	[ "$got" = "$old_md5" ] || [ "$got" = "$new_md5" ] || [ "$size" -eq 0 ] ||
		diag "big: size $size md5 $got (old $old_md5, new $new_md5)"
else
	ok 0 "big is absent after the crash"
fi
is "$(timeout 60 md5sum <"$MNT/neighbour" | cut -d' ' -f1)" "$old_md5" \
	"the fsynced neighbour is intact"
for r in 1 2 3; do
	run_ok "after the dd crash: verify acked$r" \
		timeout 120 "$CW" verify "$MNT/acked$r" 0
done
run_ok "after the dd crash: verify churn" timeout 120 "$CW" verify "$MNT/churn" 0

# --- status counters and a fresh write ---
files=$(status_num files)
blocks=$(status_num blocks)
stored=$(status_num stored_bytes)
logical=$(status_num logical_bytes)
echo "# status: files=$files blocks=$blocks stored=$stored logical=$logical acked=$total_acked"
# acked files + 3 manifests + neighbour (big and churn files may vary)
ok $([ -n "$files" ] && [ "$files" -ge $((total_acked + 4)) ] && echo 0 || echo 1) \
	"status files ($files) >= acknowledged files + manifests + neighbour ($((total_acked + 4)))"
ok $([ -n "$blocks" ] && [ "$blocks" -gt 0 ] && [ -n "$stored" ] &&
	[ "$stored" -gt 0 ] && [ -n "$logical" ] &&
	[ "$logical" -ge $((3 * 1024 * 1024)) ] && echo 0 || echo 1) \
	"status blocks, stored_bytes and logical_bytes are sane"

head -c $((1024 * 1024 + 5)) /dev/urandom >"$T/fresh.src"
run_ok "a fresh write after the crashes" \
	timeout 60 dd if="$T/fresh.src" of="$MNT/fresh" bs=1M conv=fsync status=none
is "$(timeout 60 md5sum <"$MNT/fresh" | cut -d' ' -f1)" \
	"$(md5sum <"$T/fresh.src" | cut -d' ' -f1)" "the fresh file reads back"

run_ok "clean unmount" lfs_umount "$MNT"
run_ok "remount after a clean unmount" remount
for r in 1 2 3; do
	run_ok "after clean remount: verify acked$r" \
		timeout 120 "$CW" verify "$MNT/acked$r" 0
done

# Blocks sealed for contents that the crashes cut off belong to no file;
# they must not stay behind forever. Removing everything frees every block.
# block files on disk: STATE/blocks/ab/<sha-256 hex> (small blocks live in
# a LevelDB under STATE/blocks/small and are counted by status only)
count_blocks() {
	find "$STATE/blocks" -mindepth 2 -maxdepth 2 -type f -regextype posix-extended \
		-regex '.*/[0-9a-f]{2}/[0-9a-f]{64}' | wc -l
}
echo "# before rm: status blocks $(status_num blocks), block files $(count_blocks)"
run_ok "remove every file" timeout 120 find "$MNT" -mindepth 1 -maxdepth 1 \
	! -name .lakefs -exec rm -rf {} +
for _ in $(seq 1 50); do   # frees may lag the unlinks a little
	[ "$(status_num files)/$(status_num blocks)/$(status_num stored_bytes)" = 0/0/0 ] && break
	sleep 0.2
done
is "$(status_num files)/$(status_num blocks)/$(status_num stored_bytes)" "0/0/0" \
	"status after removing everything: files/blocks/stored_bytes"
run_ok "final unmount" lfs_umount "$MNT"
is "$(count_blocks)" 0 "no block files left under STATE/blocks after the crashes"
done_testing
