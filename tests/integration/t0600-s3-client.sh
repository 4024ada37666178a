#!/usr/bin/env bash
# t0600-s3-client.sh — the S3 client (sync/s3.c) against s3rver: runs
# tests/s3/s3check (and its ASan+UBSan build when make asan-unit built it)
# and passes their TAP through as this script's tests, renumbered; then
# the harness itself: s3rver paused answers nothing, resumes, restarts on
# its port with its data, and leaves no process behind.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../s3lib.sh"

S3CHECK=$TBIN/s3/s3check
ASAN_S3CHECK=$TOP/build-asan/tests/s3/s3check
[ -x "$S3CHECK" ] || skip_all "$S3CHECK not built (make)"

# tap_include NAME CMD...: CMD's TAP lines become this script's tests
# (numbers shifted, descriptions prefixed with NAME), then one more test:
# CMD exited 0 and ran as many tests as it planned.
tap_include() {
	_name=$1; shift
	"$@" 2>"$T/include.err" | awk -v base="$_tap_n" -v name="$_name" \
		-v counts="$T/include.counts" '
		/^(not )?ok [0-9]+/ {
			n++
			neg = ($1 == "not")
			match($0, /^(not )?ok [0-9]+/)
			rest = substr($0, RLENGTH + 1)
			if (rest ~ /^ - /)
				rest = " - " name ": " substr(rest, 4)
			if (neg && rest !~ /# TODO/)
				f++
			printf "%sok %d%s\n", neg ? "not " : "", base + n, rest
			fflush()
			next
		}
		/^1\.\.[0-9]+/ { plan = substr($0, 4) + 0; planned = 1; next }
		/^Bail out!/ { print "# " name ": " $0; fflush(); next }
		{ print; fflush() }
		END { printf "%d %d %d\n", n, f, planned ? plan : -1 > counts }'
	_rc=${PIPESTATUS[0]}
	[ -s "$T/include.err" ] && diag "$(tail -n 40 "$T/include.err")"
	read -r _n _f _plan <"$T/include.counts"
	_tap_n=$((_tap_n + _n))
	_tap_fail=$((_tap_fail + _f))
	ok $([ "$_rc" -eq 0 ] && [ "$_plan" -eq "$_n" ] && echo 0 || echo 1) \
		"$_name: exit status 0 ($_rc), ran all $_plan planned tests ($_n)"
}

s3_start; ok $? "s3rver up on 127.0.0.1:$S3_PORT with bucket $S3_BUCKET"

tap_include s3check timeout 600 "$S3CHECK"

if [ -x "$ASAN_S3CHECK" ]; then
	ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0} \
	UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
		tap_include "s3check (asan)" timeout 900 "$ASAN_S3CHECK"
else
	echo "ok $((_tap_n += 1)) # skip $ASAN_S3CHECK not built (make asan-unit)"
fi

is "$(s3_probe "$S3_BUCKET/lakefs/many/00000")" "HTTP/1.1 200 OK" \
	"an object s3check left is there (s3_probe)"
s3_pause
is "$(s3_probe "$S3_BUCKET" 1)" "" "a paused s3rver answers nothing (s3_pause)"
s3_resume
is "$(s3_probe "$S3_BUCKET" 5)" "HTTP/1.1 200 OK" "it answers again after s3_resume"
old_pid=$S3_PID
s3_restart; ok $? "s3_restart"
ok $([ "$S3_PID" != "$old_pid" ] && ! pid_alive "$old_pid" && echo 0 || echo 1) \
	"... a new process; the old one is gone"
is "$(s3_probe "$S3_BUCKET/lakefs/many/00000")" "HTTP/1.1 200 OK" \
	"... on the same port, with the same data"
pid=$S3_PID
s3_stop
ok $(pid_alive "$pid" || pgrep -f "s3rver.js -d $T/" >/dev/null && echo 1 || echo 0) \
	"s3_stop leaves no s3rver of this test running"

done_testing
