#!/usr/bin/env bash
# t0630-bucket-faults.sh — the bucket mirror under faults (s3rver).
#
#  1. kill -9 with uploads in flight: 200 MiB written and fsynced, the
#     daemon killed while blocks still wait for upload; the same state
#     remounted finishes the uploads (lakefs sync), and a restore matches.
#  2. Bucket down: s3rver paused (SIGSTOP), then killed, while dd writes
#     200 MiB: dd succeeds, status shows pending uploads and an upload
#     error; `lakefs sync --timeout 2` exits 1; with durability=remote and
#     remote_timeout=3 an fsync gives EIO after ~3 s; after s3_restart
#     `lakefs sync` completes and a restore matches.
#  3. Flaky bucket: through faultproxy (503s, resets, delays; seed
#     printed) a mixed tree of ~100 MiB is written without one application
#     error, sync succeeds, s3_retries > 0, a restore (straight from
#     s3rver) matches.
#  4. Corruption: bytes flipped in one block object in s3rver's data; after
#     a restore (no local copies) reading the owning file gives EIO, the
#     daemon log names the block, `verify --deep` lists it as corrupt and
#     exits 1, plain `verify` exits 0; other data reads fine.
#  5. Mount-time errors: bad key, missing bucket, closed port: non-zero
#     exit, one stderr line naming the problem, within 60 s, no mount.
#  6. Cache cap: cache_size=64M and 192 MiB written: local_bytes stays
#     within the cap (plus pending uploads and a block) while writing, is
#     at most the cap after sync, blocks are evicted and read back from
#     the bucket intact; a corrupt object behind an evicted block gives EIO.
# The files live in a volume ($V = t/files/v: the mount root holds catalogs
# only), made by lfs_volume after each fresh mount; the sums cover the whole
# mount, so a restore must bring the namespace back too.
# Replay the fault proxy's decisions with LFS_SEED=<seed> (printed).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../s3lib.sh"

[ -e /dev/fuse ] || skip_all "no /dev/fuse"
need_cmd fusermount3 sha256sum python3 find
FP=${LFS_FAULTPROXY:-$TBIN/tools/faultproxy}
V=t/files/v	# the volume lfs_volume makes, relative to the mount

MiB=$((1024 * 1024))
SEED=${LFS_SEED:-$(( ($(date +%s) ^ $$) % 1000000 ))}
echo "# seed $SEED (replay with LFS_SEED=$SEED)"

FP_PID=""
bg_pids=""
t0630_cleanup() {
	local p
	[ -n "$FP_PID" ] && kill -TERM "$FP_PID" 2>/dev/null
	for _ in $(seq 1 30); do
		pid_alive "$FP_PID" || break
		sleep 0.1
	done
	[ -n "$FP_PID" ] && pid_alive "$FP_PID" && kill -KILL "$FP_PID" 2>/dev/null
	lfs_cleanup	# unmounts: the foreground daemons exit
	for p in $bg_pids; do pid_alive "$p" && kill -9 "$p" 2>/dev/null; done
	s3_stop
}
trap 't0630_cleanup' EXIT

s3_start; ok $? "s3rver up on 127.0.0.1:$S3_PORT"
[ -n "$S3_PID" ] || { echo "Bail out! no s3rver"; exit 1; }

status_num() {  # status_num MNT FIELD
	timeout 10 cat "$1/.lakefs/status" 2>/dev/null |
		sed -n "s/^ *\"$2\": *\([0-9][0-9]*\).*/\1/p"
}
status_str() {  # status_str MNT FIELD
	timeout 10 cat "$1/.lakefs/status" 2>/dev/null |
		sed -n "s/^ *\"$2\": *\"\(.*\)\",\{0,1\}$/\1/p"
}
ge() { [ -n "$1" ] && [ -n "$2" ] && [ "$1" -ge "$2" ] && echo 0 || echo 1; }
restore() {  # restore PREFIX NEWSTATE
	timeout 120 "$BIN/lakefs" restore --store "s3://$S3_BUCKET/$1" \
		--endpoint "$S3_ENDPOINT" --state "$2"
}
sums() {  # sums DIR OUT: sha256 of every regular file, sorted
	( cd "$1" && find . -path ./.lakefs -prune -o -type f -print0 | LC_ALL=C sort -z |
		xargs -0 sha256sum ) >"$2"
}
same() {  # same WANT GOT DESCRIPTION
	if diff -u "$1" "$2" >"$T/diff" && [ -s "$1" ]; then ok 0 "$3"
	else ok 1 "$3"; diag "$(head -30 "$T/diff")"; fi
}
mounted() { grep -q " $1 fuse" /proc/mounts; }
# kill9 MNT: SIGKILL the daemon of MNT and unmount the dead mount
kill9() {
	local dpid
	dpid=$(lfs_daemon_pid "$1")
	[ -n "$dpid" ] || return 1
	kill -9 "$dpid"
	for _ in $(seq 1 100); do pid_alive "$dpid" || break; sleep 0.1; done
	pid_alive "$dpid" && return 1
	timeout 20 fusermount3 -u "$1" 2>/dev/null || timeout 20 umount -l "$1" 2>/dev/null
	! mounted "$1"
}
# check_restore PREFIX NAME SUMS: restore PREFIX into a new state, mount
# it and compare every file's sha256 with SUMS
check_restore() {
	local out
	out=$(restore "$1" "$T/restored-$2" 2>&1)
	ok $? "$2: restore into a new state: $out"
	lfs_mount "$T/rmnt-$2" "$T/restored-$2"; ok $? "$2: mount the restored state"
	sums "$T/rmnt-$2" "$T/$2.restored"
	same "$3" "$T/$2.restored" "$2: every file of the restore matches ($(wc -l <"$3") files)"
	run_ok "$2: unmount the restored state" lfs_umount "$T/rmnt-$2"
}
# lfs_mount_fg MNT STATE LOG ARGS...: a foreground daemon whose log (stderr)
# goes to LOG; returns once mounted
lfs_mount_fg() {
	local m=$1 s=$2 log=$3 p
	shift 3
	mkdir -p "$m"
	echo "$m" >>"$_lfs_mounts_file"
	"$BIN/lakefs-mount" -f --state "$s" "$@" "$m" >"$log" 2>&1 </dev/null &
	p=$!
	bg_pids="$bg_pids $p"
	for _ in $(seq 1 300); do
		mounted "$m" && return 0
		pid_alive "$p" || return 1
		sleep 0.1
	done
	return 1
}

# ====================================== 1. kill -9 with uploads in flight
M1=$T/m1
head -c $((200 * MiB)) /dev/urandom >"$T/r200"
lfs_mount "$M1" "$T/s1" --store "s3://$S3_BUCKET/crash" --endpoint "$S3_ENDPOINT" \
	-o upload_threads=1
ok $? "crash: mount (upload_threads=1)"
run_ok "crash: make a volume" lfs_volume "$M1"
run_ok "crash: write 200 MiB and fsync" \
	timeout 120 dd if="$T/r200" of="$M1/$V/big" bs=1M conv=fsync status=none
pend=$(status_num "$M1" upload_pending_blocks)
run_ok "crash: kill -9 the daemon at once, unmount the dead mount" kill9 "$M1"
ok $(ge "$pend" 1) "crash: uploads were pending at the kill (upload_pending_blocks $pend)"
sha256sum <"$T/r200" | sed "s|-\$|./$V/big|" >"$T/crash.sums"
lfs_mount "$M1" "$T/s1"; ok $? "crash: remount the same state (--state only)"
out=$(timeout 150 "$BIN/lakefs" sync "$M1" --timeout 120 2>&1)
ok $? "crash: lakefs sync --timeout 120 completes: $out"
is "$(status_num "$M1" upload_pending_blocks)" 0 "crash: nothing pending after sync"
sums "$M1" "$T/crash.mounted"
same "$T/crash.sums" "$T/crash.mounted" "crash: the remounted file is intact"
run_ok "crash: unmount" lfs_umount "$M1"
check_restore crash crash "$T/crash.sums"

# ================================================= 2. the bucket goes down
M2=$T/m2
lfs_mount "$M2" "$T/s2" --store "s3://$S3_BUCKET/down" --endpoint "$S3_ENDPOINT"
ok $? "down: mount"
run_ok "down: make a volume" lfs_volume "$M2"
# the application: 200 MiB in 20 chunks of 10 MiB over a few seconds
writer() {
	for i in $(seq 0 19); do
		dd if="$T/r200" of="$M2/$V/big" bs=1M count=10 skip=$((i * 10)) seek=$((i * 10)) \
			conv=notrunc status=none || exit 1
		sleep 0.3
	done
	dd if=/dev/null of="$M2/$V/big" conv=notrunc,fsync status=none || exit 1
}
M2R=$T/m2r
lfs_mount "$M2R" "$T/s2r" --store "s3://$S3_BUCKET/rtimeout" --endpoint "$S3_ENDPOINT" \
	-o durability=remote,remote_timeout=3
ok $? "down: a second mount with durability=remote,remote_timeout=3"
run_ok "down: make a volume on it" lfs_volume "$M2R"
s3_pause
( writer ) >"$T/writer.out" 2>&1 &
wpid=$!
maxpend=0; lasterr=""; stopped=""
t_start=$(date +%s)
for _ in $(seq 1 600); do	# at most ~120 s
	p=$(status_num "$M2" upload_pending_blocks)
	[ -n "$p" ] && [ "$p" -gt "$maxpend" ] && maxpend=$p
	e=$(status_str "$M2" upload_last_error)
	[ -n "$e" ] && lasterr=$e
	if [ -z "$stopped" ] && [ $(($(date +%s) - t_start)) -ge 3 ]; then
		s3_stop; stopped=1
	fi
	[ -n "$stopped" ] && ! pid_alive "$wpid" && [ -n "$lasterr" ] && break
	sleep 0.2
done
pid_alive "$wpid" && { diag "writer still running, killed"; kill -9 "$wpid"; }
wait "$wpid"; wrc=$?
is "$wrc" 0 "down: the application's 200 MiB dd (and fsync) succeed while the bucket is down"
[ "$wrc" -eq 0 ] || diag "$(cat "$T/writer.out")"
ok $(ge "$maxpend" 1) "down: status shows upload_pending_blocks > 0 ($maxpend)"
ok $([ -n "$lasterr" ] && echo 0 || echo 1) "down: status shows an upload_last_error: $lasterr"
# the bucket is down now (s3rver killed)
m=$(timeout 10 sed -n 's/^lakefs_upload_pending_blocks \([0-9]*\)$/\1/p' "$M2/.lakefs/metrics")
ok $(ge "$m" 1) "down: metrics show lakefs_upload_pending_blocks $m > 0"
t0=$(date +%s)
out=$(timeout 60 "$BIN/lakefs" sync "$M2" --timeout 2 --quiet 2>&1)
rc=$?
is "$rc" 1 "down: lakefs sync --timeout 2 exits 1 while the bucket is down ($(($(date +%s) - t0)) s): $out"
t0=$(date +%s)
err=$(timeout 60 dd if=/dev/urandom of="$M2R/$V/f" bs=1M count=2 conv=fsync status=none 2>&1)
rc=$?; el=$(($(date +%s) - t0))
ok $([ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ "$el" -ge 2 ] && [ "$el" -le 30 ] && echo 0 || echo 1) \
	"down: durability=remote,remote_timeout=3: fsync fails after about 3 s (exit $rc, $el s)"
case $err in *"Input/output error"*) ok 0 "down: with EIO" ;;
*) ok 1 "down: with EIO"; diag "got: $err" ;; esac
s3_restart; ok $? "down: s3_restart (same port, same data)"
out=$(timeout 100 "$BIN/lakefs" sync "$M2R" --timeout 90 2>&1)
ok $? "down: the remote-durability mount syncs after the restart: $out"
run_ok "down: unmount the remote-durability mount" lfs_umount "$M2R"
out=$(timeout 200 "$BIN/lakefs" sync "$M2" --timeout 180 2>&1)
ok $? "down: lakefs sync --timeout 180 completes: $out"
is "$(status_num "$M2" upload_pending_blocks)" 0 "down: nothing pending after sync"
sha256sum <"$T/r200" | sed "s|-\$|./$V/big|" >"$T/down.sums"
run_ok "down: unmount" lfs_umount "$M2"
check_restore down down "$T/down.sums"
rm -f "$T/r200"

# ===================================================== 3. a flaky bucket
M3=$T/m3
if [ -x "$FP" ]; then
	FSEED=$((SEED % 100000 + 1))
	echo "# faultproxy seed $FSEED: --p503 0.1 --preset 0.05 --pdelay 0.1 --delay-ms 500"
	"$FP" --listen 0 --upstream "127.0.0.1:$S3_PORT" --port-file "$T/fp.port" \
		--p503 0.1 --preset 0.05 --pdelay 0.1 --delay-ms 500 --seed "$FSEED" \
		>/dev/null 2>"$T/fp.err" &
	FP_PID=$!
	for _ in $(seq 1 100); do [ -s "$T/fp.port" ] && break; sleep 0.1; done
	FP_PORT=$(cat "$T/fp.port" 2>/dev/null)
	ok $([ -n "$FP_PORT" ] && echo 0 || echo 1) "flaky: faultproxy up on port $FP_PORT"
	lfs_mount "$M3" "$T/s3" --store "s3://$S3_BUCKET/flaky" \
		--endpoint "http://127.0.0.1:$FP_PORT" 2>"$T/flaky.mount.err"
	ok $? "flaky: mount through the proxy"
	run_ok "flaky: make a volume" lfs_volume "$M3"
	[ -s "$T/flaky.mount.err" ] && diag "$(grep -v '^lakefs: snapshot' "$T/flaky.mount.err")"
	mixed_tree() {
		set -e
		cd "$1"
		mkdir -p small big
		python3 - "$2" <<'EOF'
import os, random, sys
rnd = random.Random(int(sys.argv[1]))
for d in range(10):
    os.makedirs("small/d%d" % d, exist_ok=True)
    for f in range(30):
        with open("small/d%d/f%02d" % (d, f), "wb") as fh:
            fh.write(rnd.randbytes(rnd.randint(100, 20000)))
            fh.flush(); os.fsync(fh.fileno())
EOF
		for i in 1 2 3 4; do
			head -c $((20 * MiB + i)) /dev/urandom >big/r$i
		done
		head -c $((15 * MiB)) /dev/zero >big/zeros
		seq 1 1000000 >big/numbers
		dd if=big/r1 of=big/r1copy bs=1M conv=fsync status=none
		mv big/r4 big/r4moved
		rm big/r3
	}
	run_ok "flaky: write a mixed tree of ~100 MiB: no application error" \
		timeout 180 bash -c "$(declare -f mixed_tree); MiB=$MiB mixed_tree '$M3/$V' $SEED"
	sums "$M3" "$T/flaky.sums"
	out=$(timeout 200 "$BIN/lakefs" sync "$M3" --timeout 180 2>&1)
	ok $? "flaky: lakefs sync completes: $out"
	r=$(status_num "$M3" s3_retries)
	ok $(ge "$r" 1) "flaky: s3_retries $r > 0"
	run_ok "flaky: unmount" lfs_umount "$M3"
	kill -USR1 "$FP_PID" 2>/dev/null; sleep 0.3
	echo "# $(grep '^faultproxy: requests=' "$T/fp.err" | tail -1)"
	check_restore flaky flaky "$T/flaky.sums"
	kill -TERM "$FP_PID"
	for _ in $(seq 1 50); do pid_alive "$FP_PID" || break; sleep 0.1; done
	ok $(pid_alive "$FP_PID" && echo 1 || echo 0) "flaky: faultproxy stopped"
	wait "$FP_PID" 2>/dev/null
	FP_PID=""
else
	echo "ok $((_tap_n += 1)) # skip faultproxy not built ($FP)"
fi

# The name of the block at MiB N of FILE (1 MiB blocks): the sha256 of its
# bytes without their trailing zeros, which lakefs does not store (random
# bytes end in a zero once in 256 blocks).
block_name() {
	python3 -c 'import hashlib, sys
f = open(sys.argv[1], "rb"); f.seek(int(sys.argv[2]) << 20)
print(hashlib.sha256(f.read(1 << 20).rstrip(b"\0")).hexdigest())' "$1" "$2"
}

# ====================================================== 4. a corrupt block
M4=$T/m4
BD=$T/s3data/$S3_BUCKET/corrupt/blocks
head -c $((3 * MiB)) /dev/urandom >"$T/victim"
head -c $((2 * MiB + 5)) /dev/urandom >"$T/other"
lfs_mount "$M4" "$T/s4" --block-size 1M --store "s3://$S3_BUCKET/corrupt" --endpoint "$S3_ENDPOINT"
ok $? "corrupt: mount"
run_ok "corrupt: make a volume" lfs_volume "$M4"
cp "$T/victim" "$M4/$V/victim"
timeout 60 "$BIN/lakefs" sync "$M4" --timeout 50 --quiet >/dev/null
ls "$BD" | sed -n 's/\._S3rver_object$//p' | sort >"$T/blocks.victim"
cp "$T/other" "$M4/$V/other"
timeout 60 "$BIN/lakefs" sync "$M4" --timeout 50 --quiet >/dev/null
ok $? "corrupt: two files written and synced"
ls "$BD" | sed -n 's/\._S3rver_object$//p' | sort >"$T/blocks.all"
run_ok "corrupt: unmount" lfs_umount "$M4"
is "$(wc -l <"$T/blocks.victim")/$(wc -l <"$T/blocks.all")" "3/6" \
	"corrupt: the victim has 3 block objects, the other file 3 more"
# blocks are named by the sha256 of their plaintext: the victim's middle MiB
HEX=$(block_name "$T/victim" 1)
grep -qx "$HEX" "$T/blocks.victim"; ok $? "corrupt: the victim's middle MiB is object blocks/$HEX"
obj=$BD/$HEX._S3rver_object
size=$(stat -c %s "$obj")
python3 - "$obj" <<'EOF'
import sys
p = sys.argv[1]
with open(p, "r+b") as f:
    data = bytearray(f.read())
    for off in range(len(data) // 2, len(data) // 2 + 16):
        data[off] ^= 0xff
    f.seek(0); f.write(data)
EOF
is "$(stat -c %s "$obj")" "$size" "corrupt: 16 bytes flipped in the middle of block $HEX"
out=$(restore corrupt "$T/s4r" 2>&1)
ok $? "corrupt: restore into a new state: $out"
lfs_mount_fg "$M4" "$T/s4r" "$T/corrupt.log"
ok $? "corrupt: mount the restored state in the foreground (log to a file)"
err=$(timeout 60 cat "$M4/$V/victim" 2>&1 >/dev/null)
rc=$?
ok $([ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && echo 0 || echo 1) "corrupt: reading the victim fails (cat exit $rc)"
case $err in *"Input/output error"*) ok 0 "corrupt: with EIO ($err)" ;;
*) ok 1 "corrupt: with EIO"; diag "got: $err" ;; esac
for _ in $(seq 1 20); do grep -q "$HEX" "$T/corrupt.log" && break; sleep 0.1; done
line=$(grep "block $HEX.*corrupt" "$T/corrupt.log" | head -1)
ok $([ -n "$line" ] && echo 0 || echo 1) "corrupt: the daemon log names the block: $line"
[ -n "$line" ] || diag "$(tail -5 "$T/corrupt.log")"
is "$(timeout 60 dd if="$M4/$V/victim" bs=1M count=1 status=none | sha256sum)" \
	"$(head -c $MiB "$T/victim" | sha256sum)" "corrupt: the victim's first MiB (a sound block) reads"
is "$(timeout 60 dd if="$M4/$V/victim" bs=1M skip=2 status=none | sha256sum)" \
	"$(tail -c $MiB "$T/victim" | sha256sum)" "corrupt: the victim's last MiB (a sound block) reads"
is "$(timeout 60 sha256sum <"$M4/$V/other")" "$(sha256sum <"$T/other")" "corrupt: the other file reads fine"
fe=$(status_num "$M4" fetch_errors)
ok $(ge "$fe" 1) "corrupt: fetch_errors $fe > 0"
out=$(timeout 120 "$BIN/lakefs" verify "$M4" --deep 2>&1)
rc=$?
is "$rc" 1 "corrupt: lakefs verify --deep exits 1"
echo "$out" | grep -qx "corrupt $HEX"; ok $? "corrupt: verify --deep lists 'corrupt $HEX'"
is "$(echo "$out" | tail -1)" "checked 6 blocks (deep): 0 missing, 1 corrupt, 0 unreadable" \
	"corrupt: verify --deep summary"
out=$(timeout 120 "$BIN/lakefs" verify "$M4" 2>&1)
rc=$?
is "$rc" 0 "corrupt: plain lakefs verify exits 0 (the object is there): $(echo "$out" | tail -1)"
err=$(timeout 60 cat "$M4/$V/victim" 2>&1 >/dev/null); rc=$?
ok $([ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && echo 0 || echo 1) "corrupt: a second read fails too (nothing bad was kept)"
run_ok "corrupt: unmount" lfs_umount "$M4"

# ================================================= 5. mount-time errors
CLOSED=$(_s3_free_port)
# mount_err NAME WANT ARGS...: lakefs-mount must fail within 60 s with one
# stderr line that contains WANT, and mount nothing
mount_err() {
	local name=$1 want=$2 t0 t1 rc m=$T/em-$1
	shift 2
	mkdir -p "$m"
	echo "$m" >>"$_lfs_mounts_file"
	t0=$(date +%s)
	timeout 70 "$@" --state "$T/es-$name" "$m" >"$T/em.out" 2>"$T/em.err"
	rc=$?
	t1=$(date +%s)
	ok $([ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ $((t1 - t0)) -le 60 ] && echo 0 || echo 1) \
		"$name: lakefs-mount exits non-zero ($rc) within 60 s ($((t1 - t0)) s)"
	is "$(wc -l <"$T/em.err")" 1 "$name: exactly one line on stderr"
	grep -qi -- "$want" "$T/em.err"; ok $? "$name: it names the problem ($want): $(head -3 "$T/em.err")"
	ok $(mounted "$m" && echo 1 || echo 0) "$name: nothing is mounted"
	mounted "$m" && { fusermount3 -u "$m" 2>/dev/null || umount -l "$m"; }
}
AWS_ACCESS_KEY_ID=WRONG mount_err badkey InvalidAccessKeyId \
	"$BIN/lakefs-mount" --store "s3://$S3_BUCKET/e" --endpoint "$S3_ENDPOINT"
mount_err nobucket NoSuchBucket \
	"$BIN/lakefs-mount" --store "s3://no-such-bucket-xyz/e" --endpoint "$S3_ENDPOINT"
mount_err closedport connect \
	"$BIN/lakefs-mount" --store "s3://$S3_BUCKET/e" --endpoint "http://127.0.0.1:$CLOSED"

# ======================================================= 6. the cache cap
M6=$T/m6
CAP=$((64 * MiB))
for i in 1 2 3 4 5 6; do head -c $((32 * MiB)) /dev/urandom >"$T/c$i"; done
( cd "$T" && sha256sum c1 c2 c3 c4 c5 c6 ) >"$T/cap.sums"
lfs_mount "$M6" "$T/s6" --block-size 1M --store "s3://$S3_BUCKET/cap" --endpoint "$S3_ENDPOINT" \
	-o cache_size=64M
ok $? "cap: mount with cache_size=64M"
run_ok "cap: make a volume" lfs_volume "$M6"
is "$(status_num "$M6" local_cap_bytes)" "$CAP" "cap: local_cap_bytes is 64 MiB"
(
	for i in 1 2 3 4 5 6; do
		dd if="$T/c$i" of="$M6/$V/c$i" bs=1M conv=fsync status=none || exit 1
	done
) >"$T/capw.out" 2>&1 &
wpid=$!
viol=0; samples=0; maxlocal=0
for _ in $(seq 1 1200); do	# at most ~120 s
	st=$(timeout 10 cat "$M6/.lakefs/status" 2>/dev/null)
	lb=$(echo "$st" | sed -n 's/^ *"local_bytes": *\([0-9]*\).*/\1/p')
	pb=$(echo "$st" | sed -n 's/^ *"upload_pending_bytes": *\([0-9]*\).*/\1/p')
	if [ -n "$lb" ] && [ -n "$pb" ]; then
		samples=$((samples + 1))
		[ "$lb" -gt "$maxlocal" ] && maxlocal=$lb
		if [ "$lb" -gt $((CAP + pb + MiB + 4096)) ]; then
			viol=$((viol + 1))
			[ "$viol" -le 3 ] && diag "local_bytes $lb > cap + pending $pb + 1 block"
		fi
	fi
	pid_alive "$wpid" || break
	sleep 0.1
done
wait "$wpid"; ok $? "cap: write 192 MiB (6 x 32 MiB, fsync each)"
ok $([ "$samples" -ge 3 ] && [ "$viol" -eq 0 ] && echo 0 || echo 1) \
	"cap: while writing, local_bytes <= cap + upload_pending_bytes + one block ($samples samples, max local $maxlocal, $viol over)"
out=$(timeout 150 "$BIN/lakefs" sync "$M6" --timeout 120 2>&1)
ok $? "cap: lakefs sync: $out"
lb=$(status_num "$M6" local_bytes)
ok $([ -n "$lb" ] && [ "$lb" -le "$CAP" ] && echo 0 || echo 1) "cap: after sync local_bytes $lb <= $CAP"
ev=$(status_num "$M6" evicted_blocks)
ok $(ge "$ev" 1) "cap: evicted_blocks $ev > 0"
f0=$(status_num "$M6" fetched_blocks)
sync
echo 3 >/proc/sys/vm/drop_caches
( cd "$M6/$V" && timeout 120 sha256sum c1 c2 c3 c4 c5 c6 ) >"$T/cap.read" 2>&1
same "$T/cap.sums" "$T/cap.read" "cap: after drop_caches every file reads back intact"
f1=$(status_num "$M6" fetched_blocks)
ok $([ -n "$f1" ] && [ "$f1" -gt "${f0:-0}" ] && echo 0 || echo 1) "cap: blocks were fetched from the bucket (fetched_blocks ${f0} -> $f1)"
lb=$(status_num "$M6" local_bytes)
ok $([ -n "$lb" ] && [ "$lb" -le "$CAP" ] && echo 0 || echo 1) "cap: after reading everything local_bytes $lb <= $CAP"
is "$(status_num "$M6" fetch_errors)" 0 "cap: fetch_errors 0"
# c1 was read first, so its blocks are evicted again: corrupt its first
# block in the bucket; the next read must fetch it and find it corrupt
HEX=$(block_name "$T/c1" 0)
obj=$T/s3data/$S3_BUCKET/cap/blocks/$HEX._S3rver_object
if [ -f "$obj" ]; then
	printf '\xde\xad\xbe\xef' | dd of="$obj" bs=1 seek=$(( $(stat -c %s "$obj") / 2 )) conv=notrunc status=none
	ok 0 "cap: 4 bytes of c1's first block $HEX flipped in the bucket"
else
	ok 1 "cap: c1's first block is object cap/blocks/$HEX"
fi
sync
echo 3 >/proc/sys/vm/drop_caches
err=$(timeout 60 dd if="$M6/$V/c1" bs=1M count=1 status=none 2>&1 >/dev/null); rc=$?
ok $([ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && echo 0 || echo 1) \
	"cap: reading an evicted block that is corrupt in the bucket fails (exit $rc: $err)"
is "$(timeout 60 dd if="$M6/$V/c1" bs=1M skip=1 status=none | sha256sum)" \
	"$(tail -c +$((MiB + 1)) "$T/c1" | sha256sum)" "cap: the rest of c1 still reads"
run_ok "cap: unmount" lfs_umount "$M6"

# ====================================== 7. a remount while the bucket is down
# The state of section 1 already mirrors to crash/: with s3rver gone it
# still mounts (one warning line), takes writes, and catches up when the
# server is back.
s3_stop
M7=$T/m7
t0=$(date +%s)
out=$(lfs_mount "$M7" "$T/s1" 2>&1); rc=$?
ok $rc "down at mount: an existing state mounts while the bucket is down"
is "$(printf '%s\n' "$out" | grep -c .)" 1 "down at mount: with one line on stderr"
case $out in *"does not answer"*) ok 0 "down at mount: that says the bucket does not answer";;
	*) ok 1 "down at mount: that says the bucket does not answer"; diag "$out";; esac
ok $([ $(( $(date +%s) - t0 )) -le 30 ] && echo 0 || echo 1) "down at mount: within 30 s"
head -c $((20 * MiB)) /dev/urandom >"$T/r20"
run_ok "down at mount: write 20 MiB and fsync" \
	timeout 60 dd if="$T/r20" of="$M7/$V/late" bs=1M conv=fsync status=none
ok $(ge "$(status_num "$M7" upload_pending_blocks)" 1) "down at mount: uploads wait"
timeout 30 "$BIN/lakefs" sync "$M7" --quiet --timeout 2 2>/dev/null
ok $([ $? -eq 1 ] && echo 0 || echo 1) "down at mount: lakefs sync --timeout 2 fails while it is down"
s3_restart; ok $? "down at mount: s3rver back"
out=$(timeout 150 "$BIN/lakefs" sync "$M7" --timeout 120 2>&1)
ok $? "down at mount: lakefs sync completes once it is back: $out"
sums "$M7" "$T/late.sums"
run_ok "down at mount: unmount" lfs_umount "$M7"
check_restore crash late "$T/late.sums"

ok $(grep -q "$T" /proc/mounts && echo 1 || echo 0) "nothing of this test is mounted"
done_testing
