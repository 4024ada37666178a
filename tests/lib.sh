# tests/lib.sh — shared harness for the integration tests (sourced, POSIX sh + bash).
#
# Gives each test: TAP output (plan, ok, is, run_ok, skip_all, done_testing),
# a private scratch dir $T, the built programs in $BIN, and lfs_mount /
# lfs_umount that record every mount so that an EXIT trap unmounts it, also
# when the test fails or is killed. A watchdog ends a test that runs longer
# than $LFS_TEST_TIMEOUT seconds (default 900), so nothing hangs.
#
# The mount root holds catalogs only: files, symlinks, fifos and plain
# directories live in a volume (CATALOG/SCHEMA/VOLUME, below which the tree
# is ordinary POSIX). lfs_volume MNT makes (mkdir -p, so idempotent: after a
# remount of the same state it is a no-op) the volume MNT/t/files/v -
# catalog t (with its automatic schemas bronze, silver, gold), volume schema
# files, volume v - and prints its path; tests work in D=$(lfs_volume "$MNT").
# That is 6 directories in the status counters (t, t/bronze, t/silver,
# t/gold, t/files, t/files/v) besides the root: see LFS_VOLUME_DIRS.

TOP=$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)
BIN=${LFS_BIN:-$TOP/build/bin}
TBIN=$TOP/build/tests
export PATH="$BIN:$PATH"
T=$(mktemp -d "${TMPDIR:-/tmp}/lakefs-test.XXXXXX")
_lfs_mounts_file=$T/.lfs-mounts	# a file, so that subshells register too
: > "$_lfs_mounts_file"
_tap_n=0
_tap_fail=0

lfs_cleanup() {
	for m in $(cat "$_lfs_mounts_file" 2>/dev/null); do
		if grep -q " $m fuse" /proc/mounts 2>/dev/null; then
			fusermount3 -u "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
		fi
	done
	# wait (bounded) for daemons of this test to exit
	for _ in $(seq 1 50); do
		_live=""
		for _p in $(pgrep -f "lakefs-mount.*$T"); do pid_alive "$_p" && _live=1; done
		[ -z "$_live" ] && break
		sleep 0.1
	done
	pkill -9 -f "lakefs-mount.*$T" 2>/dev/null
	[ -n "${_lfs_watchdog:-}" ] && kill "$_lfs_watchdog" 2>/dev/null
	rm -rf "$T" 2>/dev/null || true
}
trap 'lfs_cleanup' EXIT
trap 'echo "# interrupted"; exit 130' INT TERM

# The watchdog's sleep must not hold the test's output open (prove would
# wait for it), and must die with the watchdog.
(
	_sp=""
	trap '[ -n "$_sp" ] && kill "$_sp" 2>/dev/null; exit 0' TERM
	sleep "${LFS_TEST_TIMEOUT:-900}" >/dev/null 2>&1 &
	_sp=$!
	wait "$_sp"
	echo "# watchdog: test ran over ${LFS_TEST_TIMEOUT:-900}s" >&2
	kill -TERM $$
) &
_lfs_watchdog=$!

plan()     { echo "1..$1"; }
skip_all() { echo "1..0 # SKIP $*"; exit 0; }
skip() { _tap_n=$((_tap_n + 1)); echo "ok $_tap_n # SKIP $*"; }	# one check not made
diag()     { echo "$*" | sed 's/^/# /' >&2; }
ok() {  # ok STATUS DESCRIPTION  (STATUS 0 = pass)
	_tap_n=$((_tap_n + 1))
	if [ "$1" -eq 0 ]; then echo "ok $_tap_n - $2"
	else echo "not ok $_tap_n - $2"; _tap_fail=$((_tap_fail + 1)); fi
}
run_ok() {  # run_ok DESCRIPTION CMD...   passes when CMD exits 0
	_d=$1; shift
	if _out=$("$@" 2>&1); then ok 0 "$_d"; else ok 1 "$_d"; diag "$_out"; fi
}
run_fail() {  # run_fail DESCRIPTION CMD...   passes when CMD exits non-zero
	_d=$1; shift
	if _out=$("$@" 2>&1); then ok 1 "$_d"; diag "expected failure, got: $_out"; else ok 0 "$_d"; fi
}
is() {  # is GOT WANT DESCRIPTION
	if [ "$1" = "$2" ]; then ok 0 "$3"
	else ok 1 "$3"; diag "got:  '$1'"; diag "want: '$2'"; fi
}
done_testing() { echo "1..$_tap_n"; [ "$_tap_fail" -eq 0 ]; }

# lfs_mount MNT STATE [extra lakefs-mount args...]: mount in the background
# (lakefs-mount daemonizes and returns once the mount is live). The mount is
# recorded in a file, so the EXIT trap unmounts it even when lfs_mount ran
# in a subshell (run_ok "..." lfs_mount ...).
lfs_mount() {
	_m=$1; _s=$2; shift 2
	mkdir -p "$_m"
	echo "$_m" >> "$_lfs_mounts_file"
	timeout 60 "$BIN/lakefs-mount" --state "$_s" "$@" "$_m"
}
# pid_alive PID: running (a zombie left for a non-reaping init counts as gone)
pid_alive() {
	[ -n "$1" ] && [ -r "/proc/$1/stat" ] || return 1
	_st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
	[ -n "$_st" ] && [ "$_st" != Z ] && [ "$_st" != X ]
}
# lfs_pack_bytes STATE: the bytes the block store's packs take on the host
# disk. Blocks are appended to pack files STATE/blocks/packs/<16 hex>, each
# in a 4 KiB aligned slot; deleting one punches a hole over its slot, so the
# packs' *allocated* bytes (st_blocks x 512, not the apparent size) fall at
# once, and a pack left with nothing is unlinked. Small blocks (<= 32 KiB
# stored) live in the LevelDB STATE/blocks/small and do not count here.
# Only regular files count (not the directory itself): 0 when there are none.
lfs_pack_bytes() {
	local n=0 b
	for b in $(find "$1/blocks/packs" -type f -printf '%b\n' 2>/dev/null); do
		n=$((n + b * 512))
	done
	echo "$n"
}
# lfs_pack_files STATE: how many pack files there are
lfs_pack_files() {
	find "$1/blocks/packs" -type f 2>/dev/null | wc -l
}
# lfs_daemon_pid MNT: pid of the live daemon serving MNT
lfs_daemon_pid() {
	for _p in $(pgrep -f "(lakefs-mount|mount\.fuse\.lakefs) .*$1( |\$)"); do
		pid_alive "$_p" && { echo "$_p"; return 0; }
	done
	return 1
}
# lfs_umount MNT: unmount and wait (bounded) until the daemon has exited.
lfs_umount() {
	_m=$1
	_pid=$(lfs_daemon_pid "$_m")
	fusermount3 -u "$_m" 2>/dev/null || umount -l "$_m" 2>/dev/null || return 1
	for _ in $(seq 1 300); do
		pid_alive "$_pid" || return 0
		sleep 0.1
	done
	echo "# daemon for $_m did not exit within 30s" >&2
	return 1
}

# lfs_volume MNT: create (idempotently) the test volume MNT/t/files/v and
# print its path. Fails (prints nothing) when the mount refuses.
LFS_VOLUME_DIRS=6	# directories lfs_volume adds: t, t/{bronze,silver,gold}, t/files, t/files/v
lfs_volume() {
	timeout 60 mkdir -p "$1/t/files/v" && echo "$1/t/files/v"
}

need_root() { [ "$(id -u)" -eq 0 ] || skip_all "needs root"; }
need_cmd()  { for c in "$@"; do command -v "$c" >/dev/null 2>&1 || skip_all "$c not installed"; done; }
