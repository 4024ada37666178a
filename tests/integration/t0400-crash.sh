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
# Then a kill during a 200 MiB dd without fsync: the file is absent, empty,
# its old content or complete; and a kill during a 200 MiB in-place
# overwrite (conv=notrunc): the old content or the new, never a mix. Last,
# status counters, a fresh write, and removing everything frees every
# block. The files live in a volume (MNT/t/files/v: the mount root holds
# catalogs only). Replay with LFS_SEED=<seed> (printed).
. "$(dirname "$0")/../lib.sh"

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

# lfs_mount runs in this shell, not under run_ok (a subshell), so that the
# cleanup trap knows the mount.
lfs_mount "$MNT" "$STATE"; ok $? "mount a fresh state"
# the files live in a volume (the mount root holds catalogs only); made
# before the first crash, it must survive every one of them
D=$(lfs_volume "$MNT"); ok $? "make a volume"
mkdir -p "$D/churn"

total_acked=0
for round in 1 2 3; do
	mkdir "$D/acked$round"
	delay_ms=$((2000 + RANDOM % 3001))
	echo "# round $round: kill after ${delay_ms} ms"
	"$CW" write "$D/acked$round" "$COUNT" $((SEED + round)) \
		>"$T/write$round.out" 2>"$T/write$round.err" &
	wpid=$!
	disown $wpid
	"$CW" churn "$D/churn" $((SEED + round)) \
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
	remount; ok $? "round $round: remount the same state"

	acked=$(grep -c . "$T/write$round.out")
	ok $([ "$acked" -gt 0 ] && echo 0 || echo 1) \
		"round $round: files acknowledged before the kill ($acked)"
	[ "$acked" -gt 0 ] || diag "$(cat "$T/write$round.err")"
	total_acked=$((total_acked + acked))

	missing=$(timeout 30 grep -Fxvf "$D/acked$round/manifest" \
		"$T/write$round.out")
	is "$missing" "" "round $round: every acknowledged line is in the manifest"
	for r in $(seq 1 "$round"); do
		run_ok "round $round: verify acked$r" \
			timeout 120 "$CW" verify "$D/acked$r" 0
	done
	out=$(timeout 120 "$CW" verify "$D/churn" 0 2>&1)
	ok $? "round $round: verify churn files (no prefix, no mix)"
	echo "$out" | grep -v '^# verified' >&2
	echo "$out" | grep '^# verified' | sed "s/^#/# round $round:/"
done

# --- kill -9 during a 200 MiB dd without fsync ---
MiB=$((1024 * 1024))
head -c $((200 * MiB)) /dev/urandom >"$T/big.src"
head -c $((200 * MiB)) /dev/urandom >"$T/big2.src"
head -c $((3 * MiB + 17)) /dev/urandom >"$T/old.src"
md5_of() { timeout 120 md5sum <"$1" | cut -d' ' -f1; }
old_md5=$(md5_of "$T/old.src")

# dd_crash FILE SRC KILL_MIB [DD_CONV]: dd SRC over MNT/FILE without fsync
# and kill -9 the daemon once dd has handed over KILL_MIB MiB (more than
# the daemon keeps unsealed in memory, so blocks are already sealed).
dd_crash() {
	local file=$1 src=$2 kill_mib=$3 conv=${4:+conv=$4} dpid ddpid wchar=""
	dpid=$(lfs_daemon_pid "$MNT")
	dd if="$src" of="$D/$file" bs=1M $conv status=none 2>/dev/null &
	ddpid=$!
	disown $ddpid
	pids=$ddpid
	for _ in $(seq 1 400); do
		wchar=$(sed -n 's/^wchar: //p' "/proc/$ddpid/io" 2>/dev/null)
		[ -n "$wchar" ] && [ "$wchar" -ge $((kill_mib * MiB)) ] && break
		pid_alive "$ddpid" || break
		sleep 0.05
	done
	if pid_alive "$ddpid"; then
		echo "# $file: dd still running at the kill (wchar ${wchar:-?})"
	else
		echo "# $file: dd already done before the kill (kill hits after close)"
	fi
	crash "$dpid"
}
# old_or_new FILE OLDSRC NEWSRC EMPTY_OK: FILE's content after a crash
old_or_new() {
	local file=$1 old new got size
	old=$(md5_of "$2"); new=$(md5_of "$3")
	if [ ! -e "$D/$file" ]; then
		[ "$4" = yes ]; ok $? "$file is absent after the crash"
		return
	fi
	got=$(md5_of "$D/$file")
	size=$(stat -c %s "$D/$file")
	case $got in
	"$old") echo "# $file has its old content" ;;
	"$new") echo "# $file is complete" ;;
	*) [ "$size" -eq 0 ] && echo "# $file is empty" ;;
	esac
	if [ "$got" = "$old" ] || [ "$got" = "$new" ] ||
		{ [ "$4" = yes ] && [ "$size" -eq 0 ]; }; then
		ok 0 "$file is old or new content after the crash, never a mix"
	else
		ok 1 "$file is old or new content after the crash, never a mix"
		diag "$file: size $size md5 $got (old $old, new $new)"
		cmp "$D/$file" "$2" 2>&1 | head -1 | sed 's/^/vs old: /' >&2
		cmp "$D/$file" "$3" 2>&1 | head -1 | sed 's/^/vs new: /' >&2
	fi
}

run_ok "write the old content of big and fsync it" \
	timeout 60 dd if="$T/old.src" of="$D/big" bs=1M conv=fsync status=none
run_ok "an fsynced neighbour" \
	timeout 60 dd if="$T/old.src" of="$D/neighbour" bs=1M conv=fsync status=none
run_ok "kill -9 during a 200 MiB dd (O_TRUNC), unmount dead mount" \
	dd_crash big "$T/big.src" 64
remount; ok $? "remount after the dd crash"
old_or_new big "$T/old.src" "$T/big.src" yes
is "$(md5_of "$D/neighbour")" "$old_md5" "the fsynced neighbour is intact"

# in place: 200 MiB fsynced, overwritten with conv=notrunc, killed at 120
# MiB: the file must be the old 200 MiB or the new, not the first blocks
# new and the rest old
run_ok "write 200 MiB in place and fsync it" \
	timeout 120 dd if="$T/big.src" of="$D/inplace" bs=1M conv=fsync status=none
run_ok "kill -9 during an in-place overwrite (conv=notrunc), unmount dead mount" \
	dd_crash inplace "$T/big2.src" 120 notrunc
remount; ok $? "remount after the in-place crash"
old_or_new inplace "$T/big.src" "$T/big2.src" no
is "$(md5_of "$D/neighbour")" "$old_md5" "the fsynced neighbour is still intact"

for r in 1 2 3; do
	run_ok "after the dd crashes: verify acked$r" \
		timeout 120 "$CW" verify "$D/acked$r" 0
done
run_ok "after the dd crashes: verify churn" timeout 120 "$CW" verify "$D/churn" 0

# --- status counters and a fresh write ---
files=$(status_num files)
blocks=$(status_num blocks)
stored=$(status_num stored_bytes)
logical=$(status_num logical_bytes)
echo "# status: files=$files blocks=$blocks stored=$stored logical=$logical acked=$total_acked"
# acked files + 3 manifests + neighbour + inplace (big, churn files may vary)
ok $([ -n "$files" ] && [ "$files" -ge $((total_acked + 5)) ] && echo 0 || echo 1) \
	"status files ($files) >= acknowledged files + manifests + 2 ($((total_acked + 5)))"
ok $([ -n "$blocks" ] && [ "$blocks" -gt 0 ] && [ -n "$stored" ] &&
	[ "$stored" -gt 0 ] && [ -n "$logical" ] &&
	[ "$logical" -ge $((3 * 1024 * 1024)) ] && echo 0 || echo 1) \
	"status blocks, stored_bytes and logical_bytes are sane"

head -c $((1024 * 1024 + 5)) /dev/urandom >"$T/fresh.src"
run_ok "a fresh write after the crashes" \
	timeout 60 dd if="$T/fresh.src" of="$D/fresh" bs=1M conv=fsync status=none
is "$(timeout 60 md5sum <"$D/fresh" | cut -d' ' -f1)" \
	"$(md5sum <"$T/fresh.src" | cut -d' ' -f1)" "the fresh file reads back"

run_ok "clean unmount" lfs_umount "$MNT"
remount; ok $? "remount after a clean unmount"
for r in 1 2 3; do
	run_ok "after clean remount: verify acked$r" \
		timeout 120 "$CW" verify "$D/acked$r" 0
done

# Blocks sealed for contents that the crashes cut off belong to no file;
# they must not stay behind forever. Removing everything frees every block.
# A deleted block's slot is punched out of its pack (lfs_pack_bytes falls at
# once), a pack whose last block goes is unlinked, and at unmount so is an
# active pack that holds nothing: nothing may be left.
echo "# before rm: status blocks $(status_num blocks), pack files $(lfs_pack_files "$STATE"), pack bytes allocated $(lfs_pack_bytes "$STATE")"
run_ok "remove every file" timeout 120 find "$D" -mindepth 1 -maxdepth 1 \
	-exec rm -rf {} +
echo "# right after rm: files/blocks/stored_bytes $(status_num files)/$(status_num blocks)/$(status_num stored_bytes)"
for _ in $(seq 1 50); do   # frees may lag the unlinks a little
	[ "$(status_num files)/$(status_num blocks)/$(status_num stored_bytes)" = 0/0/0 ] && break
	sleep 0.2
done
is "$(status_num files)/$(status_num blocks)/$(status_num stored_bytes)" "0/0/0" \
	"status after removing everything: files/blocks/stored_bytes"
run_ok "final unmount" lfs_umount "$MNT"
echo "# after the final unmount: pack files $(lfs_pack_files "$STATE"), pack bytes allocated $(lfs_pack_bytes "$STATE")"
is "$(lfs_pack_bytes "$STATE")" 0 "no pack bytes left allocated under STATE/blocks/packs after the crashes"
is "$(lfs_pack_files "$STATE")" 0 "no pack file left under STATE/blocks/packs"
done_testing
