#!/usr/bin/env bash
# tests/bench/bench-s3.sh — the benchmark of the S3 bucket mirror: lakefs
# against s3fs, rclone mount and a plain curl PUT/GET, all talking to one
# s3rver on loopback in the same run.
#
# A benchmark, not a test: it prints a table of absolute figures, the ratios
# of lakefs to each other client, and the target of a figure with PASS/MISS
# as information. A miss does not fail the run. The exit status is non-zero
# only when something broke: a mount, unmount or upload failed, a daemon
# crashed, a wait timed out, or data read back did not match what was written.
#
# Figures (MB = 10^6 bytes, MiB = 2^20):
#  1. write BIG_MIB (1 GiB) of random data, already in memory (a tmpfs),
#     with dd bs=1M conv=fsync; the time from dd's start until the data is
#     in the bucket:
#       lakefs  until `lakefs sync MNT` returns (everything written is in
#               the bucket: blocks and metadata journal)
#       s3fs    until the object answers HEAD with its full length; s3fs
#               uploads on fsync, so that is when dd returns
#       rclone  mount --vfs-cache-mode writes --vfs-write-back 0s (upload as
#               soon as the file is closed, rather than the default 5 s
#               later): until the object answers HEAD with its full length
#               (polled every 50 ms); dd itself returns much earlier
#       curl    curl -T of the file (one PUT): the server's own limit
#     Best of BENCH_ROUNDS (3) for lakefs and curl, of BENCH_OTHER_ROUNDS
#     (2) for s3fs and rclone, interleaved; every lakefs round has a fresh
#     state directory and bucket prefix, every s3fs/rclone round a fresh
#     mount (and rclone a fresh cache directory).
#  2. the bytes sent to the bucket when 4 KiB in the middle of a 100 MiB
#     file that is already in the bucket is overwritten (dd conv=notrunc,
#     fsync) until it is in the bucket again. Measured the same way for all
#     three: each mounts through a byte-counting TCP proxy in front of
#     s3rver (a few lines of node, below), and the figure is the proxy's
#     client-to-server byte count (HTTP headers and bodies) between the two
#     quiet points. lakefs's own s3_bytes_up delta is printed beside it.
#     s3fs runs with nomixupload: s3rver has no UploadPartCopy, so s3fs's
#     default (copy the unchanged parts server-side) fails with EIO there;
#     on AWS s3fs would send about one multipart part (10 MB) instead.
#  3. the bytes stored in the bucket for a 100 MiB CSV (ids, timestamps,
#     floats, short strings): du -b of the ._S3rver_object files under the
#     prefix's blocks/ in s3rver's data directory (metadata objects not
#     counted), against the CSV's size; s3fs and rclone store the file as
#     one object (its ._S3rver_object size).
#  4. cold read of the 1 GiB file: lakefs restores a new state directory
#     from the bucket prefix of round 1 (`lakefs restore`), mounts it, drops
#     the page cache and times cat FILE > /dev/null (every block is fetched
#     from the bucket); s3fs and rclone mount afresh, drop the page cache and
#     cat their object of round 1; curl GETs its object. Best of
#     BENCH_READ_ROUNDS (2).
#
# Layout: everything under BENCH_DIR (default /var/tmp/lakefs-bench-s3),
# created by the run and removed at its end (BENCH_KEEP=1 keeps it): the
# s3rver data directory, the lakefs state directories, s3fs's tmpdir,
# rclone's cache, the mountpoints, and a tmpfs (BENCH_DIR/src) holding the
# sources. Every mount is undone and every process started here (s3rver,
# the proxy, lakefs, s3fs and rclone daemons) is ended by the EXIT trap, by
# its pid; every command that touches a mount or the network runs under
# timeout(1), and a watchdog ends the run after BENCH_TIMEOUT (1200) s.
#
# s3fs and rclone are Debian packages; BENCH_INSTALL=1 installs the missing
# ones with apt-get, otherwise their columns are skipped.
#
# Environment: LFS_BIN (programs, default build/bin), BENCH_DIR,
# BENCH_ROUNDS (3), BENCH_OTHER_ROUNDS (2), BENCH_READ_ROUNDS (2),
# BENCH_BIG_MIB (1024), BENCH_TIMEOUT (1200), BENCH_INSTALL, BENCH_KEEP.
set -u -o pipefail
export LC_ALL=C

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${LFS_BIN:-$TOP/build/bin}
WORK=${BENCH_DIR:-/var/tmp/lakefs-bench-s3}
ROUNDS=${BENCH_ROUNDS:-3}
OROUNDS=${BENCH_OTHER_ROUNDS:-2}
RROUNDS=${BENCH_READ_ROUNDS:-2}
BIG_MIB=${BENCH_BIG_MIB:-1024}
WATCHDOG_S=${BENCH_TIMEOUT:-1200}
MID_MIB=100
BUCKET=lakefs-bench
S3RVER_JS=$TOP/tests/node_modules/s3rver/bin/s3rver.js
BIG=$((BIG_MIB * 1048576))
MID=$((MID_MIB * 1048576))

say()   { printf 'bench-s3: %s\n' "$*" >&2; }
skip()  { say "skipped: $*"; exit 0; }
TABLE_READY=0
broke() {
	say "ERROR: $*"
	[ "$TABLE_READY" = 1 ] && print_table "(incomplete: the run stopped at the error above)"
	exit 1
}
PROBLEMS=()
problem() { say "PROBLEM: $*"; PROBLEMS+=("$*"); }

# --- preconditions ---
[ "$(id -u)" -eq 0 ] || skip "needs root (mounts, drops the page cache)"
for c in fusermount3 node curl dd awk timeout cmp sha256sum du find head realpath; do
	command -v "$c" >/dev/null 2>&1 || skip "$c is not installed"
done
[ -e /dev/fuse ] || skip "/dev/fuse is missing"
[ -f "$S3RVER_JS" ] || skip "s3rver is not installed (make deps runs npm install --prefix tests)"
curl --help all 2>/dev/null | grep -q -- --aws-sigv4 || skip "curl has no --aws-sigv4 (needs 7.75 or later)"
[ -x "$BIN/lakefs-mount" ] && [ -x "$BIN/lakefs" ] || broke "$BIN/lakefs-mount or $BIN/lakefs not found (run make first)"
for n in "$ROUNDS" "$OROUNDS" "$RROUNDS"; do
	[ "$n" -ge 1 ] 2>/dev/null || broke "BENCH_ROUNDS, BENCH_OTHER_ROUNDS, BENCH_READ_ROUNDS must be >= 1"
done
TMPFS_MIB=$((BIG_MIB + 3 * MID_MIB + 64))
avail_mib=$(awk '/^MemAvailable:/ {print int($2/1024)}' /proc/meminfo)
[ "$avail_mib" -gt $((TMPFS_MIB + 2048)) ] ||
	skip "needs about $((TMPFS_MIB + 2048)) MiB of free memory, have $avail_mib MiB (try BENCH_BIG_MIB=256)"

# all clients talk to loopback with these credentials, never through a proxy
export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER
# AWS_CA_BUNDLE makes rclone refuse its own http transport; nothing here is TLS
unset AWS_SESSION_TOKEN AWS_PROFILE AWS_SHARED_CREDENTIALS_FILE AWS_CONFIG_FILE AWS_CA_BUNDLE
unset http_proxy HTTP_PROXY https_proxy HTTPS_PROXY all_proxy ALL_PROXY

# --- the work dir: ours alone, removed at the end ---
WORK=$(realpath -m "$WORK")
case $WORK in /|/var|/var/tmp|/tmp|/root|/home) broke "BENCH_DIR=$WORK: give a directory of its own" ;; esac
if [ -e "$WORK" ]; then
	grep -q " ${WORK}[/ ]" /proc/mounts && broke "something is mounted under $WORK (an earlier run?); unmount it first"
	if [ -f "$WORK/.lakefs-bench-s3" ]; then
		say "removing the leftovers of an earlier run in $WORK"
		rm -rf --one-file-system "$WORK" || broke "cannot remove $WORK"
	elif [ -n "$(ls -A "$WORK" 2>/dev/null)" ]; then
		broke "$WORK exists, is not empty and was not made by this bench"
	fi
fi
mkdir -p "$WORK" && touch "$WORK/.lakefs-bench-s3" || broke "cannot create $WORK"

SRC=$WORK/src                 # a tmpfs: the sources, already in memory
DATA=$WORK/s3data             # s3rver's data directory
MOUNTS=""                     # fuse mountpoints we mounted
DPIDS=""                      # their daemons (lakefs, s3fs, rclone)
SVC_PIDS=""                   # s3rver, the counting proxy
TMPFS_MOUNTED=0
WATCHDOG=""

is_mounted() { awk -v m="$1" '$2 == m {f = 1} END {exit !f}' /proc/mounts; }
pid_alive() {  # running (a zombie left for a non-reaping parent is gone)
	local st
	[ -n "$1" ] && [ -r "/proc/$1/stat" ] || return 1
	st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
	[ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}
wait_gone() {  # wait_gone PID SECONDS
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		pid_alive "$1" || return 0
		sleep 0.1
	done
	return 1
}
stop_pid() {  # stop_pid PID: TERM, then KILL after 5 s
	pid_alive "$1" || return 0
	kill -CONT "$1" 2>/dev/null
	kill -TERM "$1" 2>/dev/null
	wait_gone "$1" 5 || { kill -KILL "$1" 2>/dev/null; wait_gone "$1" 5; }
}
fuse_unmount() {  # fuse_unmount MNT: fusermount3, fusermount, then a lazy umount
	timeout -k 2 30 fusermount3 -u "$1" 2>/dev/null ||
		timeout -k 2 30 fusermount -u "$1" 2>/dev/null ||
		timeout -k 2 10 umount -l "$1" 2>/dev/null
}

cleanup() {
	local rc=$? m p
	trap - EXIT INT TERM
	for m in $MOUNTS; do
		is_mounted "$m" && fuse_unmount "$m"
	done
	for p in $DPIDS; do
		wait_gone "$p" 20 || { say "daemon $p did not exit after unmounting; ending it"; stop_pid "$p"; }
	done
	for p in $SVC_PIDS; do stop_pid "$p"; done
	if [ "$TMPFS_MOUNTED" = 1 ] && is_mounted "$SRC"; then
		umount "$SRC" 2>/dev/null || umount -l "$SRC" 2>/dev/null
	fi
	[ -n "$WATCHDOG" ] && kill "$WATCHDOG" 2>/dev/null
	if grep -q " $WORK/" /proc/mounts; then
		say "something is still mounted under $WORK; leaving it in place"
		[ "$rc" -eq 0 ] && rc=1
	elif [ "${BENCH_KEEP:-0}" = 1 ]; then
		say "kept $WORK (BENCH_KEEP=1)"
	else
		rm -rf --one-file-system "$WORK"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM
(
	sp=""
	trap '[ -n "$sp" ] && kill "$sp" 2>/dev/null; exit 0' TERM
	sleep "$WATCHDOG_S" >/dev/null 2>&1 &
	sp=$!
	wait "$sp"
	echo "bench-s3: watchdog: over ${WATCHDOG_S}s, stopping" >&2
	kill -TERM $$
) &
WATCHDOG=$!

mkdir -p "$SRC" "$DATA" "$WORK/mnt" "$WORK/lfs" "$WORK/s3fs-tmp" || broke "cannot create directories under $WORK"
mount -t tmpfs -o "size=${TMPFS_MIB}m,mode=0755" lakefs-bench-s3 "$SRC" || broke "cannot mount a tmpfs on $SRC"
TMPFS_MOUNTED=1

# --- numbers ---
calc()  { awk "BEGIN {printf \"$1\", $2}"; }        # calc FMT EXPR
lt()    { awk "BEGIN {exit !(($1) < ($2))}"; }      # lt A B: A < B
since() { calc %.6f "$EPOCHREALTIME - $1"; }        # since T0: seconds
declare -A BEST
keep_best() {  # keep_best NAME VALUE: BEST[NAME] = min
	local cur=${BEST[$1]:-}
	if [ -z "$cur" ] || lt "$2" "$cur"; then BEST[$1]=$2; fi
}

# --- optional contestants: s3fs, rclone ---
declare -A HAVE=([s3fs]=0 [rclone]=0)
declare -A VERSION=()
missing=""
for p in s3fs rclone; do command -v "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ] && [ "${BENCH_INSTALL:-0}" = 1 ]; then
	say "installing$missing with apt-get (BENCH_INSTALL=1)"
	# shellcheck disable=SC2086
	if ! DEBIAN_FRONTEND=noninteractive timeout -k 10 600 apt-get install -y $missing > "$WORK/apt.log" 2>&1; then
		DEBIAN_FRONTEND=noninteractive timeout -k 10 300 apt-get update >> "$WORK/apt.log" 2>&1
		# shellcheck disable=SC2086
		DEBIAN_FRONTEND=noninteractive timeout -k 10 600 apt-get install -y $missing >> "$WORK/apt.log" 2>&1 ||
			{ say "apt-get install$missing failed:"; tail -5 "$WORK/apt.log" | sed 's/^/bench-s3:   /' >&2; }
	fi
fi
for p in s3fs rclone; do
	if command -v "$p" >/dev/null 2>&1; then
		HAVE[$p]=1
	elif [ "${BENCH_INSTALL:-0}" = 1 ]; then
		say "skipped: $p could not be installed"
	else
		say "skipped: $p not installed (BENCH_INSTALL=1 installs it)"
	fi
done
[ "${HAVE[s3fs]}" = 1 ] && VERSION[s3fs]=$(s3fs --version 2>/dev/null | head -1 | sed -n 's/.*File System V\([0-9.]*\).*/\1/p')
[ "${HAVE[rclone]}" = 1 ] && VERSION[rclone]=$(rclone version 2>/dev/null | head -1 | awk '{print $2}')

# --- s3rver, and a byte-counting proxy in front of it ---
free_port() {
	timeout 10 node -e 'const s = require("net").createServer();
		s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}
s3curl() {  # s3curl SECONDS CURL-ARGS...: a signed request to s3rver
	local lim=$1
	shift
	timeout -k 2 "$lim" curl -sS --aws-sigv4 "aws:amz:us-east-1:s3" --user S3RVER:S3RVER \
		-H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' -H 'Expect:' "$@"
}
head_obj() {  # head_obj KEY: "LENGTH ETAG" of the object, nothing when absent
	s3curl 5 -I "$EP/$BUCKET/$1" 2>/dev/null | tr -d '\r' | awk '
		NR == 1 && $2 != 200 {exit}
		tolower($1) == "content-length:" {l = $2}
		tolower($1) == "etag:" {e = $2}
		END {if (l != "") print l, e}'
}
wait_object() {  # wait_object KEY SIZE OLD_ETAG SECONDS: until KEY has SIZE bytes and another ETag
	local key=$1 size=$2 old=$3 end h
	end=$(calc %.0f "$EPOCHREALTIME + $4")
	while :; do
		h=$(head_obj "$key")
		[ "${h%% *}" = "$size" ] && [ "${h#* }" != "$old" ] && return 0
		lt "$EPOCHREALTIME" "$end" || return 1
		sleep 0.05
	done
}
obj_file() { echo "$DATA/$BUCKET/$1._S3rver_object"; }   # where s3rver keeps KEY

S3_PORT=$(free_port)
[ -n "$S3_PORT" ] || broke "cannot find a free port"
EP=http://127.0.0.1:$S3_PORT
node --openssl-legacy-provider "$S3RVER_JS" -d "$DATA" -a 127.0.0.1 -p "$S3_PORT" -s \
	--no-vhost-buckets --configure-bucket "$BUCKET" > "$WORK/s3rver.log" 2>&1 < /dev/null &
S3_PID=$!
SVC_PIDS="$SVC_PIDS $S3_PID"
up=0
for _ in $(seq 1 150); do
	if [ "$(s3curl 2 -o /dev/null -w '%{http_code}' -I "$EP/$BUCKET" 2>/dev/null)" = 200 ]; then up=1; break; fi
	pid_alive "$S3_PID" || break
	sleep 0.1
done
[ "$up" = 1 ] || { sed 's/^/bench-s3:   /' "$WORK/s3rver.log" >&2; broke "s3rver did not come up on port $S3_PORT"; }
S3RVER_VERSION=$(node -p 'require(process.argv[1]).version' "$TOP/tests/node_modules/s3rver/package.json" 2>/dev/null)

cat > "$WORK/countproxy.js" <<'EOF'
// countproxy UPSTREAM_PORT PORTS_FILE: relay loopback TCP to UPSTREAM_PORT,
// counting the bytes each way; a connection to the second port answers
// "UP DOWN\n" (client-to-server, server-to-client) and closes.
const net = require('net');
const upstream = Number(process.argv[2]);
let up = 0, down = 0;
const relay = net.createServer(c => {
	const u = net.connect(upstream, '127.0.0.1');
	c.on('data', d => { up += d.length; });
	u.on('data', d => { down += d.length; });
	c.pipe(u);
	u.pipe(c);
	c.on('error', () => u.destroy());
	u.on('error', () => c.destroy());
	c.on('close', () => u.destroy());
	u.on('close', () => c.destroy());
});
const stats = net.createServer(c => c.end(`${up} ${down}\n`));
relay.listen(0, '127.0.0.1', () => stats.listen(0, '127.0.0.1', () =>
	require('fs').writeFileSync(process.argv[3],
		`${relay.address().port} ${stats.address().port}\n`)));
EOF
node "$WORK/countproxy.js" "$S3_PORT" "$WORK/proxy.ports" > "$WORK/proxy.log" 2>&1 < /dev/null &
SVC_PIDS="$SVC_PIDS $!"
for _ in $(seq 1 100); do [ -s "$WORK/proxy.ports" ] && break; sleep 0.1; done
read -r PROXY_PORT PROXY_SPORT < "$WORK/proxy.ports" || broke "the counting proxy did not start"
PEP=http://127.0.0.1:$PROXY_PORT
proxy_count() {  # "UP DOWN" bytes relayed so far
	timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && cat <&3' _ "$PROXY_SPORT"
}
SETTLED=""
proxy_settle() {  # SETTLED="UP DOWN" once the proxy has relayed nothing for a second (at most 60 s)
	local a b i
	a=$(proxy_count)
	for ((i = 0; i < 60; i++)); do
		sleep 1
		b=$(proxy_count)
		[ -n "$b" ] && [ "$a" = "$b" ] && { SETTLED="$b $(s3_rchar)"; return 0; }
		a=$b
	done
	[ -n "$b" ] || broke "the counting proxy does not answer"
	problem "traffic to the bucket did not stop within 60 s"
	SETTLED="$b $(s3_rchar)"
}
s3_rchar() { awk '$1 == "rchar:" {print $2}' "/proc/$S3_PID/io" 2>/dev/null; }  # bytes s3rver read()

# --- lakefs ---
status() { timeout -k 2 10 cat "$1/.lakefs/status"; }
field() { status "$1" | sed -n "s/^ *\"$2\": *\"\{0,1\}\([^\",]*\).*/\1/p"; }
LFS_PID=""
# lakefs's root holds catalogs only: its files go in the volume MNT/$LFS_VOL
# (catalog t, volume schema files, volume v), made by lfs_mount (mkdir -p:
# a no-op on a restored state that has it)
LFS_VOL=t/files/v
lfs_mount() {  # lfs_mount MNT STATE [lakefs-mount args...]
	local m=$1 s=$2 err
	shift 2
	mkdir -p "$m"
	err=$(timeout -k 5 60 "$BIN/lakefs-mount" --state "$s" "$@" "$m" 2>&1) ||
		broke "lakefs-mount --state $s $* $m failed: $err"
	MOUNTS="$MOUNTS $m"
	is_mounted "$m" || broke "lakefs-mount returned but $m is not mounted"
	LFS_PID=$(field "$m" pid)
	[ -n "$LFS_PID" ] || broke "cannot find the daemon serving $m"
	DPIDS="$DPIDS $LFS_PID"
	timeout -k 5 60 mkdir -p "$m/$LFS_VOL" || broke "cannot make the volume $m/$LFS_VOL"
}
lfs_umount() {  # lfs_umount MNT
	local code
	status "$1" > /dev/null 2>&1 || broke "the lakefs daemon $LFS_PID serving $1 is gone or not answering (crashed?)"
	timeout -k 2 30 fusermount3 -u "$1" || broke "fusermount3 -u $1 failed"
	wait_gone "$LFS_PID" 60 || broke "lakefs daemon $LFS_PID did not exit within 60 s of unmounting $1"
	code=$(sed 's/.*) //' "/proc/$LFS_PID/stat" 2>/dev/null | awk '{print $50}')
	if [ -n "$code" ] && [ $((code & 127)) -ne 0 ]; then
		problem "lakefs daemon $LFS_PID was killed by signal $((code & 127)) while unmounting $1"
	fi
}
lfs_sync() {  # lfs_sync MNT: until everything written is in the bucket
	timeout -k 5 660 "$BIN/lakefs" sync "$1" --timeout 600 --quiet ||
		broke "lakefs sync $1 failed or timed out: $(field "$1" upload_last_error)"
}

# --- s3fs, rclone: run in the foreground as our children, so we know their pids ---
S3FS_PW=$WORK/s3fs.passwd
( umask 077; echo S3RVER:S3RVER > "$S3FS_PW" )
RCLONE_CONF=$WORK/rclone.conf
( umask 077; for r in direct:$S3_PORT counted:$PROXY_PORT; do
	printf '[%s]\ntype = s3\nprovider = Other\naccess_key_id = S3RVER\nsecret_access_key = S3RVER\n' "${r%%:*}"
	printf 'endpoint = http://127.0.0.1:%s\nregion = us-east-1\nforce_path_style = true\n\n' "${r#*:}"
done > "$RCLONE_CONF" )
DPID=""
wait_mounted() {  # wait_mounted MNT PID NAME: at most 30 s
	local i
	for ((i = 0; i < 300; i++)); do
		is_mounted "$1" && return 0
		pid_alive "$2" || break
		sleep 0.1
	done
	broke "$3 did not mount $1 (log: $WORK/$3.log): $(tail -3 "$WORK/$3.log" 2>/dev/null)"
}
s3fs_mount() {  # s3fs_mount MNT PORT
	mkdir -p "$1"
	s3fs "$BUCKET" "$1" -f -o "url=http://127.0.0.1:$2,use_path_request_style,passwd_file=$S3FS_PW,nomixupload,tmpdir=$WORK/s3fs-tmp,logfile=$WORK/s3fs.log,dbglevel=warn" \
		>> "$WORK/s3fs.log" 2>&1 < /dev/null &
	DPID=$!
	MOUNTS="$MOUNTS $1"; DPIDS="$DPIDS $DPID"
	wait_mounted "$1" "$DPID" s3fs
}
rclone_mount() {  # rclone_mount MNT REMOTE CACHE_DIR
	mkdir -p "$1" "$3"
	rclone --config "$RCLONE_CONF" mount "$2:$BUCKET" "$1" --vfs-cache-mode writes --vfs-write-back 0s \
		--cache-dir "$3" --log-file "$WORK/rclone.log" --log-level NOTICE >> "$WORK/rclone.log" 2>&1 < /dev/null &
	DPID=$!
	MOUNTS="$MOUNTS $1"; DPIDS="$DPIDS $DPID"
	wait_mounted "$1" "$DPID" rclone
}
other_umount() {  # other_umount MNT PID NAME
	pid_alive "$2" || broke "$3 (pid $2) serving $1 is gone (crashed?)"
	fuse_unmount "$1" || broke "cannot unmount $1"
	wait_gone "$2" 60 || broke "$3 (pid $2) did not exit within 60 s of unmounting $1"
}

drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }

# --- the table ---
declare -A DDT=() OWB=() OWD=() OWR=() CSVST=()
ow_lfs_s3up="" restore_s="" lfs_fetched="" csv_size="" csv_zstd="" csv_lfs_all="" BLOCK_SIZE=""
NAMES="lakefs s3fs rclone curl"
secs_rate() { calc "%.2f s %4.0f MB/s" "$1, $2 / $1 / 1e6"; }   # secs_rate SECONDS BYTES
ratio()     { if [ -n "$1" ] && [ -n "$2" ]; then calc '%.2f\n' "$1 / $2"; else echo "${3:-n/a}"; fi; }
W=(44 20 20 20 20 7 8 7 27)
row() {
	printf "%-${W[0]}s %-${W[1]}s %-${W[2]}s %-${W[3]}s %-${W[4]}s %-${W[5]}s %-${W[6]}s %-${W[7]}s %-${W[8]}s %s\n" "$@"
}
cells() {  # cells ARRAY-NAME FORMAT-FUNCTION [BYTES]: the four value columns
	local -n a=$1
	local n out=()
	for n in $NAMES; do
		if [ -n "${a[$n]:-}" ]; then out+=("$($2 "${a[$n]}" "${3:-}")")
		elif [ "$n" = curl ]; then out+=(-)     # no curl figure for this row
		else out+=(n/a); fi
	done
	printf '%s\n' "${out[@]}"
}
f_rate()  { secs_rate "$1" "$2"; }
f_secs()  { calc "%.2f s" "$1"; }
f_bytes() { echo "$1 B"; }
ratios() {  # ratios ARRAY-NAME: lakefs/s3fs, lakefs/rclone, lakefs/curl
	local -n a=$1
	ratio "${a[lakefs]:-}" "${a[s3fs]:-}"
	ratio "${a[lakefs]:-}" "${a[rclone]:-}"
	ratio "${a[lakefs]:-}" "${a[curl]:-}" -
}
pf() { if [ "$1" = n/a ]; then echo n/a; elif lt "$1" "$2"; then echo PASS; else echo MISS; fi; }
print_table() {
	local -a c r
	local t res
	local -A W1=() RD=()
	for t in $NAMES; do
		[ -n "${BEST[w_$t]:-}" ] && W1[$t]=${BEST[w_$t]}
		[ -n "${BEST[r_$t]:-}" ] && RD[$t]=${BEST[r_$t]}
	done
	echo
	echo "lakefs bench-s3: s3rver ${S3RVER_VERSION:-?} on loopback (node $(node --version 2>/dev/null));" \
	     "s3fs ${VERSION[s3fs]:-n/a}, rclone ${VERSION[rclone]:-n/a}; $(nproc) CPUs, kernel $(uname -r);" \
	     "lakefs block size ${BLOCK_SIZE:-?}; MB = 10^6 B; $(calc %.0f "$EPOCHREALTIME - $T_START") s${1:+ $1}"
	echo "best of: write lakefs/curl $ROUNDS, s3fs/rclone $OROUNDS; cold read $RROUNDS." \
	     "Ratios are lakefs / other (time or bytes: below 1 is lakefs better)."
	row "figure" "lakefs" "s3fs" "rclone" "curl (server limit)" "l/s3fs" "l/rclone" "l/curl" "target" "result"
	row "------" "------" "----" "------" "-------------------" "------" "--------" "------" "------" "------"
	mapfile -t c < <(cells W1 f_rate "$BIG")
	mapfile -t r < <(ratios W1)
	res="$(pf "${r[0]}" 0.5) $(pf "${r[1]}" 0.33)"
	row "write ${BIG_MIB} MiB (dd 1M fsync) -> in bucket" "${c[@]}" "${r[@]}" "l/s3fs<0.5 l/rclone<0.33" "$res"
	mapfile -t c < <(cells DDT f_secs)
	row "  of which dd (until close returns)" "${c[@]}" - - - info -
	mapfile -t c < <(cells OWB f_bytes)
	mapfile -t r < <(ratios OWB)
	res=n/a
	[ -n "${OWB[lakefs]:-}" ] && res=$(pf "${OWB[lakefs]}" "$((${BLOCK_SIZE:-1048576} + 65536))")
	row "4 KiB overwrite in ${MID_MIB} MiB: bytes up" "${c[@]}" "${r[@]}" "l < 1 block + 64 KiB" "$res"
	mapfile -t c < <(cells CSVST f_bytes)
	mapfile -t r < <(ratios CSVST)
	row "${MID_MIB} MiB CSV: bytes stored" "${c[@]}" "${r[@]}" \
		"info: CSV $csv_size B" "$( [ -n "${CSVST[lakefs]:-}" ] && calc "%.2f:1" "$csv_size / ${CSVST[lakefs]}" || echo n/a)"
	mapfile -t c < <(cells RD f_rate "$BIG")
	mapfile -t r < <(ratios RD)
	row "cold read ${BIG_MIB} MiB (after restore)" "${c[@]}" "${r[@]}" info -
	echo
	echo "notes:"
	echo "  write: lakefs = dd start until 'lakefs sync' returns; s3fs = until the object answers HEAD" \
	     "with its full length (s3fs uploads on fsync); rclone (--vfs-cache-mode writes --vfs-write-back 0s)" \
	     "= until the object answers HEAD with its full length, polled every 50 ms; curl = one PUT (curl -T)."
	echo "  overwrite: client-to-server bytes counted by a TCP proxy in front of s3rver, the same for all," \
	     "headers included${ow_lfs_s3up:+; the s3_bytes_up delta lakefs reports: $ow_lfs_s3up B}." \
	     "Bytes fetched back from the bucket meanwhile: lakefs ${OWD[lakefs]:-n/a}, s3fs ${OWD[s3fs]:-n/a}," \
	     "rclone ${OWD[rclone]:-n/a}. s3fs runs with nomixupload (s3rver has no UploadPartCopy)." \
	     "Cross-check, s3rver's /proc/PID/io rchar delta (socket and file reads, so it also counts the" \
	     "object files s3rver reads to answer GETs and to join multipart parts): lakefs ${OWR[lakefs]:-n/a}," \
	     "s3fs ${OWR[s3fs]:-n/a}, rclone ${OWR[rclone]:-n/a}."
	echo "  CSV: du -b of the ._S3rver_object files under the lakefs prefix's blocks/" \
	     "(whole prefix with metadata: ${csv_lfs_all:-n/a} B); s3fs/rclone: the size of their object." \
	     "${csv_zstd:+zstd -3 of the whole CSV: $csv_zstd B.}"
	echo "  cold read: page cache dropped first (s3rver's files too); lakefs reads a state directory" \
	     "restored from the bucket${restore_s:+ (restore took $restore_s s)}${lfs_fetched:+, fetched_bytes $lfs_fetched};" \
	     "s3fs/rclone a fresh mount; curl one GET."
	if [ "${#PROBLEMS[@]}" -gt 0 ]; then
		echo
		echo "PROBLEMS (the run fails on these):"
		printf '  %s\n' "${PROBLEMS[@]}"
	fi
}
TABLE_READY=1
T_START=$EPOCHREALTIME
say "work dir $WORK; s3rver pid $S3_PID on port $S3_PORT, counting proxy on $PROXY_PORT"

# --- sources ---
say "generating sources in a tmpfs: ${BIG_MIB} MiB random, ${MID_MIB} MiB random, a ${MID_MIB} MiB CSV"
head -c "$BIG" /dev/urandom > "$SRC/big" || broke "cannot generate $SRC/big"
head -c "$MID" /dev/urandom > "$SRC/mid" || broke "cannot generate $SRC/mid"
head -c 4096 /dev/urandom > "$SRC/patch4k" || broke "cannot generate $SRC/patch4k"
SEEK=$(( (MID / 2 + 256 * 1024) / 4096 ))   # 50.25 MiB: inside a block
cp "$SRC/mid" "$SRC/mid.ref" &&
	dd if="$SRC/patch4k" of="$SRC/mid.ref" bs=4k count=1 seek="$SEEK" conv=notrunc status=none ||
	broke "cannot build the reference of the overwrite"
MID_REF_SHA=$(sha256sum < "$SRC/mid.ref" | cut -d' ' -f1)
# sensor readings: id, ISO timestamp, short strings, floats of a few widths
awk -v target="$MID" 'BEGIN {
	srand(20240601)
	nw = split("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda omicron sigma tau upsilon omega", word)
	nc = split("London Paris Berlin Madrid Rome Vienna Prague Warsaw Lisbon Dublin Oslo Helsinki Athens Zurich Amsterdam Brussels Tokyo Toronto Chicago Austin", city)
	ns = split("ok ok ok ok warn warn error retry", state)
	t = 1704067200
	hdr = "id,timestamp,sensor,city,status,temperature,humidity,pressure,latency_ms,note"
	print hdr; n = length(hdr) + 1
	for (id = 1; n < target; id++) {
		t += int(rand() * 3)
		line = sprintf("%d,%s,sensor-%04d,%s,%s,%.2f,%.1f,%.3f,%.3f,%s-%s", id,
			strftime("%Y-%m-%dT%H:%M:%SZ", t, 1), int(rand() * 500), city[1 + int(rand() * nc)],
			state[1 + int(rand() * ns)], -10 + rand() * 45, rand() * 100, 980 + rand() * 60,
			rand() * rand() * 250, word[1 + int(rand() * nw)], word[1 + int(rand() * nw)])
		print line; n += length(line) + 1
	}
}' > "$SRC/data.csv" || broke "cannot generate the CSV"
csv_size=$(stat -c %s "$SRC/data.csv")
command -v zstd > /dev/null 2>&1 && csv_zstd=$(zstd -3 -q -c "$SRC/data.csv" | wc -c)

# --- 1. write 1 GiB until it is in the bucket ---
say "1. ${BIG_MIB} MiB write until it is in the bucket; rounds: lakefs/curl $ROUNDS, s3fs/rclone $OROUNDS"
M=$WORK/mnt/w
for ((r = 1; r <= ROUNDS; r++)); do
	# curl: one PUT, the server's limit
	sync
	t0=$EPOCHREALTIME
	code=$(s3curl 600 -o "$WORK/curl.out" -w '%{http_code}' -T "$SRC/big" "$EP/$BUCKET/w1/curl-$r.bin")
	el=$(since "$t0")
	[ "$code" = 200 ] || broke "curl PUT of ${BIG_MIB} MiB failed (http $code): $(head -c 300 "$WORK/curl.out")"
	[ "$(head_obj "w1/curl-$r.bin" | cut -d' ' -f1)" = "$BIG" ] || broke "curl's object is not ${BIG} bytes"
	keep_best w_curl "$el"
	say "   round $r curl: ${el}s"

	# lakefs: a fresh state directory and prefix
	lfs_mount "$M" "$WORK/lfs/w$r" --store "s3://$BUCKET/w1-$r" --endpoint "$EP"
	BLOCK_SIZE=$(field "$M" block_size)
	sync
	t0=$EPOCHREALTIME
	timeout -k 5 600 dd if="$SRC/big" of="$M/$LFS_VOL/big.bin" bs=1M conv=fsync status=none || broke "dd onto lakefs failed (round $r)"
	dd_el=$(since "$t0")
	lfs_sync "$M"
	el=$(since "$t0")
	[ "$(field "$M" upload_pending_blocks)" = 0 ] || problem "lakefs sync returned with blocks still queued (round $r)"
	keep_best w_lakefs "$el"; keep_best dd_lakefs "$dd_el"
	say "   round $r lakefs: ${el}s (dd ${dd_el}s), s3_bytes_up $(field "$M" s3_bytes_up)"
	lfs_umount "$M"

	[ "$r" -le "$OROUNDS" ] || continue
	if [ "${HAVE[s3fs]}" = 1 ]; then
		s3fs_mount "$M" "$S3_PORT"
		pid=$DPID
		sync
		t0=$EPOCHREALTIME
		timeout -k 5 600 dd if="$SRC/big" of="$M/s3fs-$r.bin" bs=1M conv=fsync status=none || broke "dd onto s3fs failed (round $r)"
		dd_el=$(since "$t0")
		wait_object "s3fs-$r.bin" "$BIG" - 600 || broke "s3fs's object did not reach ${BIG} bytes in 600 s"
		el=$(since "$t0")
		keep_best w_s3fs "$el"; keep_best dd_s3fs "$dd_el"
		say "   round $r s3fs: ${el}s (dd ${dd_el}s)"
		other_umount "$M" "$pid" s3fs
	fi
	if [ "${HAVE[rclone]}" = 1 ]; then
		rclone_mount "$M" direct "$WORK/rclone-cache"
		pid=$DPID
		sync
		t0=$EPOCHREALTIME
		timeout -k 5 600 dd if="$SRC/big" of="$M/rclone-$r.bin" bs=1M conv=fsync status=none || broke "dd onto rclone failed (round $r)"
		dd_el=$(since "$t0")
		wait_object "rclone-$r.bin" "$BIG" - 600 || broke "rclone's object did not reach ${BIG} bytes in 600 s"
		el=$(since "$t0")
		keep_best w_rclone "$el"; keep_best dd_rclone "$dd_el"
		say "   round $r rclone: ${el}s (dd ${dd_el}s)"
		other_umount "$M" "$pid" rclone
		rm -rf "$WORK/rclone-cache"
	fi
done
for t in $NAMES; do [ -n "${BEST[dd_$t]:-}" ] && DDT[$t]=${BEST[dd_$t]}; done

# --- 2. 4 KiB overwrite in a 100 MiB file, bytes sent (through the counting proxy) ---
say "2. 4 KiB overwrite at 4 KiB block $SEEK of a ${MID_MIB} MiB file already in the bucket; bytes through the proxy"
M=$WORK/mnt/ow
ow_measure() {  # ow_measure NAME: after the overwrite is in the bucket, OWB/OWD
	proxy_settle
	read -r b_up b_down b_rc <<< "$SETTLED"
	OWB[$1]=$((b_up - a_up)); OWD[$1]=$((b_down - a_down)); OWR[$1]=$((${b_rc:-0} - ${a_rc:-0}))
	say "   $1: ${OWB[$1]} B up, ${OWD[$1]} B down; s3rver rchar +${OWR[$1]} B"
}
# lakefs
lfs_mount "$M" "$WORK/lfs/ow" --store "s3://$BUCKET/ow" --endpoint "$PEP"
timeout -k 5 300 dd if="$SRC/mid" of="$M/$LFS_VOL/ow.bin" bs=1M conv=fsync status=none || broke "writing ow.bin onto lakefs failed"
lfs_sync "$M"
proxy_settle; read -r a_up a_down a_rc <<< "$SETTLED"
s0=$(field "$M" s3_bytes_up)
timeout -k 5 60 dd if="$SRC/patch4k" of="$M/$LFS_VOL/ow.bin" bs=4k count=1 seek="$SEEK" conv=notrunc,fsync status=none ||
	broke "4 KiB overwrite on lakefs failed"
lfs_sync "$M"
ow_measure lakefs
ow_lfs_s3up=$(( $(field "$M" s3_bytes_up) - s0 ))
timeout -k 5 120 cmp "$SRC/mid.ref" "$M/$LFS_VOL/ow.bin" || problem "data mismatch on lakefs after the 4 KiB overwrite"
lfs_umount "$M"
# s3fs and rclone: the object read back directly from s3rver
check_obj() {  # check_obj KEY NAME
	local sum
	sum=$(s3curl 120 "$EP/$BUCKET/$1" | sha256sum | cut -d' ' -f1)
	[ "$sum" = "$MID_REF_SHA" ] || problem "data mismatch: $2's object $1 after the overwrite"
}
csv_other() {  # csv_other NAME MNT: the CSV as one object, its stored size
	timeout -k 5 300 dd if="$SRC/data.csv" of="$2/data-$1.csv" bs=1M conv=fsync status=none || broke "writing the CSV onto $1 failed"
	wait_object "data-$1.csv" "$csv_size" - 300 || broke "$1's CSV did not reach the bucket in 300 s"
	CSVST[$1]=$(stat -c %s "$(obj_file "data-$1.csv")")
}
if [ "${HAVE[s3fs]}" = 1 ]; then
	s3fs_mount "$M" "$PROXY_PORT"
	pid=$DPID
	timeout -k 5 300 dd if="$SRC/mid" of="$M/ow-s3fs.bin" bs=1M conv=fsync status=none || broke "writing ow-s3fs.bin failed"
	wait_object ow-s3fs.bin "$MID" - 300 || broke "s3fs's ow-s3fs.bin did not reach the bucket"
	e0=$(head_obj ow-s3fs.bin | cut -d' ' -f2)
	proxy_settle; read -r a_up a_down a_rc <<< "$SETTLED"
	timeout -k 5 300 dd if="$SRC/patch4k" of="$M/ow-s3fs.bin" bs=4k count=1 seek="$SEEK" conv=notrunc,fsync status=none ||
		broke "4 KiB overwrite on s3fs failed (log: $(tail -2 "$WORK/s3fs.log"))"
	wait_object ow-s3fs.bin "$MID" "$e0" 300 || broke "s3fs's overwrite did not reach the bucket in 300 s"
	ow_measure s3fs
	check_obj ow-s3fs.bin s3fs
	csv_other s3fs "$M"
	other_umount "$M" "$pid" s3fs
fi
if [ "${HAVE[rclone]}" = 1 ]; then
	rclone_mount "$M" counted "$WORK/rclone-cache"
	pid=$DPID
	timeout -k 5 300 dd if="$SRC/mid" of="$M/ow-rclone.bin" bs=1M conv=fsync status=none || broke "writing ow-rclone.bin failed"
	wait_object ow-rclone.bin "$MID" - 300 || broke "rclone's ow-rclone.bin did not reach the bucket"
	e0=$(head_obj ow-rclone.bin | cut -d' ' -f2)
	proxy_settle; read -r a_up a_down a_rc <<< "$SETTLED"
	timeout -k 5 300 dd if="$SRC/patch4k" of="$M/ow-rclone.bin" bs=4k count=1 seek="$SEEK" conv=notrunc,fsync status=none ||
		broke "4 KiB overwrite on rclone failed"
	wait_object ow-rclone.bin "$MID" "$e0" 300 || broke "rclone's overwrite did not reach the bucket in 300 s"
	ow_measure rclone
	check_obj ow-rclone.bin rclone
	csv_other rclone "$M"
	other_umount "$M" "$pid" rclone
	rm -rf "$WORK/rclone-cache"
fi

# --- 3. a 100 MiB CSV: bytes stored in the bucket ---
say "3. a ${MID_MIB} MiB CSV ($csv_size B) into a fresh lakefs prefix"
M=$WORK/mnt/csv
lfs_mount "$M" "$WORK/lfs/csv" --store "s3://$BUCKET/csv" --endpoint "$EP"
timeout -k 5 300 dd if="$SRC/data.csv" of="$M/$LFS_VOL/data.csv" bs=1M conv=fsync status=none || broke "writing the CSV onto lakefs failed"
lfs_sync "$M"
timeout -k 5 120 cmp "$SRC/data.csv" "$M/$LFS_VOL/data.csv" || problem "data mismatch in data.csv on lakefs"
lfs_umount "$M"
objsum() { find "$1" -type f -name '*._S3rver_object' -print0 | du -bc --files0-from=- | tail -1 | cut -f1; }
CSVST[lakefs]=$(objsum "$DATA/$BUCKET/csv/blocks")
csv_lfs_all=$(objsum "$DATA/$BUCKET/csv")
say "   lakefs blocks: ${CSVST[lakefs]} B (whole prefix $csv_lfs_all B); s3fs ${CSVST[s3fs]:-n/a} B; rclone ${CSVST[rclone]:-n/a} B"

# --- 4. cold read of the 1 GiB file ---
say "4. cold read of ${BIG_MIB} MiB, best of $RROUNDS"
M=$WORK/mnt/r
for ((r = 1; r <= RROUNDS; r++)); do
	st=$WORK/lfs/restored-$r
	t0=$EPOCHREALTIME
	rout=$(timeout -k 5 300 "$BIN/lakefs" restore --store "s3://$BUCKET/w1-1" --endpoint "$EP" --state "$st" 2>&1) ||
		broke "lakefs restore failed: $rout"
	restore_s=$(calc %.2f "$(since "$t0")")
	lfs_mount "$M" "$st"
	drop_caches
	t0=$EPOCHREALTIME
	timeout -k 5 600 cat "$M/$LFS_VOL/big.bin" > /dev/null || broke "reading big.bin from the restored lakefs failed"
	el=$(since "$t0")
	lfs_fetched=$(field "$M" fetched_bytes)
	lt "${lfs_fetched:-0}" "$BIG" && problem "the restored lakefs fetched only ${lfs_fetched:-0} B for a ${BIG} B file (not a cold read?)"
	keep_best r_lakefs "$el"
	say "   round $r lakefs: ${el}s (restore ${restore_s}s, fetched $lfs_fetched B)"
	if [ "$r" = 1 ]; then
		timeout -k 5 300 cmp "$SRC/big" "$M/$LFS_VOL/big.bin" || problem "data mismatch: big.bin read from a restored lakefs"
	fi
	lfs_umount "$M"
	rm -rf "$st"

	if [ "${HAVE[s3fs]}" = 1 ]; then
		s3fs_mount "$M" "$S3_PORT"
		pid=$DPID
		drop_caches
		t0=$EPOCHREALTIME
		timeout -k 5 600 cat "$M/s3fs-1.bin" > /dev/null || broke "reading s3fs-1.bin through s3fs failed"
		el=$(since "$t0")
		keep_best r_s3fs "$el"
		say "   round $r s3fs: ${el}s"
		other_umount "$M" "$pid" s3fs
	fi
	if [ "${HAVE[rclone]}" = 1 ]; then
		rclone_mount "$M" direct "$WORK/rclone-cache"
		pid=$DPID
		drop_caches
		t0=$EPOCHREALTIME
		timeout -k 5 600 cat "$M/rclone-1.bin" > /dev/null || broke "reading rclone-1.bin through rclone failed"
		el=$(since "$t0")
		keep_best r_rclone "$el"
		say "   round $r rclone: ${el}s"
		other_umount "$M" "$pid" rclone
		rm -rf "$WORK/rclone-cache"
	fi
	drop_caches
	t0=$EPOCHREALTIME
	n=$(s3curl 600 -o /dev/null -w '%{size_download}' "$EP/$BUCKET/w1/curl-1.bin") || broke "curl GET failed"
	el=$(since "$t0")
	[ "$n" = "$BIG" ] || broke "curl GET returned $n bytes, not $BIG"
	keep_best r_curl "$el"
	say "   round $r curl: ${el}s"
done

print_table
[ "${#PROBLEMS[@]}" -eq 0 ] || exit 1
exit 0
