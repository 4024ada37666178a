# tests/s3lib.sh — an s3rver for the integration tests (sourced after
# tests/lib.sh; bash).
#
#   s3_start    start s3rver on a free loopback port with the bucket
#               $S3_BUCKET (default lakefs-test) and data under $T/s3data;
#               exports S3_PORT, S3_ENDPOINT, S3_BUCKET, S3_PID and the
#               S3RVER/S3RVER credentials. Skips the whole test when
#               s3rver is not installed (make deps installs it).
#   s3_stop     stop it (also when paused) and wait until it is gone
#   s3_pause    SIGSTOP: it accepts connections but answers nothing
#   s3_resume   SIGCONT
#   s3_restart  stop and start again on the same port and data
#   s3_probe PATH [SECS]  the status line of an unsigned HEAD of PATH
#
# Node 20's OpenSSL 3 keeps DES in its legacy provider, and s3rver 3.7.1
# makes its ListObjectsV2 continuation tokens with DES: without
# --openssl-legacy-provider every truncated listing is a 500.
#
# The EXIT trap of lib.sh is chained so that s3rver dies with the test; a
# test that sets its own EXIT trap calls s3_stop in it. Every wait is
# bounded.

S3RVER_JS=$TOP/tests/node_modules/s3rver/bin/s3rver.js
S3_BUCKET=${S3_BUCKET:-lakefs-test}
S3_PID=""
S3_PORT=""
_s3_empty_sha=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855

trap 's3_stop; lfs_cleanup' EXIT

# a free loopback port, as the kernel hands them out
_s3_free_port() {
	timeout 10 node -e 'const s = require("net").createServer();
		s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}

s3_probe() {  # s3_probe PATH [SECS]
	timeout "${2:-2}" bash -c '
		exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
		printf "HEAD /%s HTTP/1.1\r\nHost: 127.0.0.1\r\nx-amz-content-sha256: %s\r\nConnection: close\r\n\r\n" "$2" "$3" >&3
		head -n 1 <&3 | tr -d "\r"' _ "$S3_PORT" "$1" "$_s3_empty_sha" 2>/dev/null
}

_s3_launch() {
	mkdir -p "$T/s3data"
	node --openssl-legacy-provider "$S3RVER_JS" -d "$T/s3data" -a 127.0.0.1 \
		-p "$S3_PORT" -s --no-vhost-buckets --configure-bucket "$S3_BUCKET" \
		>>"$T/s3rver.log" 2>&1 </dev/null &
	S3_PID=$!
	export S3_PID
	for _ in $(seq 1 150); do	# 15 s
		case $(s3_probe "$S3_BUCKET" 1) in
		"HTTP/1.1 200"*) return 0 ;;
		esac
		pid_alive "$S3_PID" || break
		sleep 0.1
	done
	echo "# s3rver did not come up on port $S3_PORT:" >&2
	sed 's/^/#   /' "$T/s3rver.log" >&2
	s3_stop
	return 1
}

s3_start() {
	command -v node >/dev/null 2>&1 || skip_all "node not installed"
	[ -f "$S3RVER_JS" ] || skip_all "s3rver not installed (make deps runs npm install --prefix tests)"
	S3_PORT=$(_s3_free_port)
	[ -n "$S3_PORT" ] || { echo "# cannot find a free port" >&2; return 1; }
	export S3_PORT S3_BUCKET
	export S3_ENDPOINT=http://127.0.0.1:$S3_PORT
	export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER
	unset AWS_SESSION_TOKEN AWS_PROFILE AWS_SHARED_CREDENTIALS_FILE
	# the server is on loopback: never through a proxy
	unset http_proxy HTTP_PROXY https_proxy HTTPS_PROXY all_proxy ALL_PROXY
	_s3_launch
}

s3_stop() {
	[ -n "$S3_PID" ] || return 0
	kill -CONT "$S3_PID" 2>/dev/null
	kill -TERM "$S3_PID" 2>/dev/null
	for _ in $(seq 1 50); do
		pid_alive "$S3_PID" || break
		sleep 0.1
	done
	pid_alive "$S3_PID" && kill -KILL "$S3_PID" 2>/dev/null
	wait "$S3_PID" 2>/dev/null
	S3_PID=""
	return 0
}

s3_pause()  { [ -n "$S3_PID" ] && kill -STOP "$S3_PID"; }
s3_resume() { [ -n "$S3_PID" ] && kill -CONT "$S3_PID"; }

s3_restart() {
	s3_stop
	_s3_launch
}
