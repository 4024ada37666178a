#!/usr/bin/env bash
# t0300-posix: the POSIX conformance checker, errno by errno, on a fresh
# lakefs mount, with a run on local disk first as a control (a check that
# fails there is a bug in the checker, not in lakefs). On lakefs it runs in
# a directory of a volume (the mount root holds catalogs only). Each run's TAP is
# shown as an indented subtest and counts as one test here; its failures
# are repeated as diagnostics.
. "$(dirname "$0")/../lib.sh"

need_cmd fusermount3
PC=$TBIN/posix/posix_check
[ -x "$PC" ] || skip_all "posix_check not built ($PC; run make)"
[ -x "$BIN/lakefs-mount" ] || skip_all "lakefs-mount not built (run make)"
[ -e /dev/fuse ] || skip_all "no /dev/fuse"

# posix_check_run DESCRIPTION DIR: run the checker in DIR, print its TAP as
# a subtest, then one ok/not ok for the whole run.
posix_check_run() {
	_desc=$1 _dir=$2 _log=$T/posix.$_tap_n.log
	mkdir -p "$_dir"
	echo "# Subtest: $_desc"
	timeout -k 10 300 "$PC" "$_dir" >"$_log" 2>&1
	_rc=$?
	sed 's/^/    /' "$_log"
	_planned=$(sed -n 's/^1\.\.\([0-9]*\).*/\1/p' "$_log" | tail -1)
	_nok=$(grep -c '^not ok' "$_log")
	_pass=$(grep -c '^ok' "$_log")
	if [ "$_rc" -eq 0 ] && [ -n "$_planned" ] && [ "$_nok" -eq 0 ]; then
		ok 0 "$_desc ($_pass checks)"
	else
		ok 1 "$_desc"
		[ "$_rc" -eq 124 ] && diag "posix_check timed out"
		diag "exit status $_rc, plan ${_planned:-missing}, $_pass passed, $_nok failed:"
		diag "$(grep -E '^not ok|^Bail out' "$_log" | grep -v '# TODO')"
	fi
	return "$_rc"
}

# --- control: local disk --------------------------------------------------
posix_check_run "posix_check on local disk (control)" "$T/local"
ctl=$?

# --- lakefs ----------------------------------------------------------------
M=$T/mnt
S=$T/state
lfs_mount "$M" "$S" || { echo "Bail out! cannot mount lakefs"; exit 1; }
D=$(lfs_volume "$M") || { echo "Bail out! cannot make a volume"; exit 1; }
# the checker's unprivileged child (uid 65534) needs a grant to reach the
# volume; below it, POSIX mode bits decide (lakefs(7) ACCESS)
setfattr -n user.lakefs.grant -v 'ALL everyone' "$M/t" ||
	{ echo "Bail out! cannot grant the volume to everyone"; exit 1; }
P=$D/posix
mkdir -p "$P"
posix_check_run "posix_check on lakefs" "$P"
[ "$ctl" -ne 0 ] && diag "the control run failed too: the failures it shares with it may be the checker's"
is "$(ls -A "$P" 2>&1)" "" "posix_check left its scratch directory empty"
run_ok "the mount still answers after the run" test -d "$P"
run_ok "status is still readable" cat "$M/.lakefs/status"
run_ok "unmount" lfs_umount "$M"
run_ok "remount" lfs_mount "$M" "$S"
is "$(ls -A "$P" 2>&1)" "" "and the scratch directory is still empty"
run_ok "final unmount" lfs_umount "$M"
done_testing
