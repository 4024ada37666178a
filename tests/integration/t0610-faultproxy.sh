#!/usr/bin/env bash
# t0610-faultproxy: the fault-injecting proxy of the S3 client tests
# (tests/tools/faultproxy) checked on its own, between curl and a small
# python upstream. With no faults it relays GET, HEAD, PUT (by length and
# chunked), chunked and read-until-close responses byte for byte over
# kept-alive connections; --p503 1 answers SlowDown and keeps the
# connection; --preset 1 resets, both before and during the response;
# --pdelay delays; --pstall holds until curl gives up; mixed faults with
# one seed decide the same way twice and count every request once; SIGUSR1
# prints the counters, SIGTERM prints them and exits 0.
# LFS_FAULTPROXY=path runs another build (e.g. one with ASan).
. "$(dirname "$0")/../lib.sh"

need_cmd python3 curl sha256sum cmp
FP=${LFS_FAULTPROXY:-$TBIN/tools/faultproxy}
[ -x "$FP" ] || skip_all "faultproxy not built (run make)"

bg_pids=""
fp_cleanup() {
	local p
	for p in $bg_pids; do kill -TERM "$p" 2>/dev/null; done
	for _ in $(seq 1 30); do
		_live=""
		for p in $bg_pids; do pid_alive "$p" && _live=1; done
		[ -z "$_live" ] && break
		sleep 0.1
	done
	for p in $bg_pids; do kill -KILL "$p" 2>/dev/null; done
}
trap 'fp_cleanup; lfs_cleanup' EXIT

# wait_file FILE: until FILE exists and is not empty, at most 10 s
wait_file() {
	for _ in $(seq 1 100); do
		[ -s "$1" ] && return 0
		sleep 0.1
	done
	return 1
}

# --- the upstream -------------------------------------------------------------
# GET/HEAD /NAME: the file NAME of www/ with Content-Length; /chunked/NAME
# sends it chunked, /close/NAME without a length, ending with the
# connection. PUT answers "BYTES SHA256\n" for the body it received.
mkdir -p "$T/www"
cat > "$T/upstream.py" <<'EOF'
import hashlib, http.server, os, sys

root, port_file = sys.argv[1], sys.argv[2]

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, code, data, headers=()):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_GET(self):
        parts = self.path.strip("/").split("/")
        name = os.path.basename(parts[-1])
        if name == "nocontent":
            return self.reply(204, b"")
        try:
            with open(os.path.join(root, name), "rb") as f:
                data = f.read()
        except OSError:
            return self.reply(404, b"no such file\n", [("Content-Length", "13")])
        mode = parts[0] if len(parts) > 1 else ""
        if mode == "chunked" and self.command == "GET":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            step = 100003
            for i in range(0, len(data), step):
                piece = data[i:i + step]
                self.wfile.write(b"%x\r\n" % len(piece) + piece + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        elif mode == "close":
            self.close_connection = True
            self.reply(200, data, [("Connection", "close")])
        else:
            self.reply(200, data, [("Content-Length", str(len(data)))])

    do_HEAD = do_GET

    def do_PUT(self):
        h, n = hashlib.sha256(), 0
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                while size:
                    b = self.rfile.read(min(size, 65536))
                    if not b:
                        raise ConnectionError("short chunk")
                    h.update(b); n += len(b); size -= len(b)
                self.rfile.readline()
        else:
            left = int(self.headers.get("Content-Length", "0"))
            while left:
                b = self.rfile.read(min(left, 65536))
                if not b:
                    raise ConnectionError("short body")
                h.update(b); n += len(b); left -= len(b)
        body = ("%d %s\n" % (n, h.hexdigest())).encode()
        self.reply(200, body, [("Content-Length", str(len(body)))])

srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
srv.daemon_threads = True
with open(port_file + ".tmp", "w") as f:
    f.write("%d\n" % srv.server_address[1])
os.rename(port_file + ".tmp", port_file)
srv.serve_forever()
EOF
python3 "$T/upstream.py" "$T/www" "$T/up.port" 2> "$T/up.err" &
bg_pids="$bg_pids $!"
wait_file "$T/up.port" || { diag "$(cat "$T/up.err")"; echo "Bail out! upstream did not start"; exit 1; }
UP=$(cat "$T/up.port")

head -c $((5 * 1024 * 1024)) /dev/urandom > "$T/www/big"
BIGSUM=$(sha256sum < "$T/www/big" | cut -d' ' -f1)
for s in 0 1 1000 65536 300001 2097152; do head -c "$s" /dev/urandom > "$T/put.$s"; done
PUT_SIZES="0 1 1000 65536 300001 2097152"

# --- the proxy ------------------------------------------------------------------
# start_proxy NAME ARGS...: starts faultproxy with its port file, log and
# stderr under $T/NAME.*; sets PID and PORT.
start_proxy() {
	local name=$1
	shift
	"$FP" --listen 0 --upstream "127.0.0.1:$UP" --port-file "$T/$name.port" \
		--log "$T/$name.log" "$@" 2> "$T/$name.err" &
	PID=$!
	bg_pids="$bg_pids $PID"
	if ! wait_file "$T/$name.port"; then
		diag "$(cat "$T/$name.err")"
		PORT=0
		return 1
	fi
	PORT=$(cat "$T/$name.port")
}
# stop_proxy: SIGTERM, then wait at most 10 s; sets RC (124: did not exit).
stop_proxy() {
	local hung=0
	kill -TERM "$PID" 2>/dev/null
	for _ in $(seq 1 100); do
		pid_alive "$PID" || break
		sleep 0.1
	done
	if pid_alive "$PID"; then hung=1; kill -KILL "$PID"; fi
	wait "$PID"
	RC=$?
	[ "$hung" = 1 ] && RC=124
}
# summary NAME FIELD: a counter of the last summary in $T/NAME.err
summary() {
	grep '^faultproxy: requests=' "$T/$1.err" | tail -1 |
		sed -n "s/.* $2=\([0-9]*\).*/\1/p"
}
# sums_up NAME: do forwarded+e503+resets+delays+stalls make requests?
sums_up() {
	local n=0 f
	for f in forwarded e503 resets delays stalls; do n=$((n + $(summary "$1" $f))); done
	[ "$n" -eq "$(summary "$1" requests)" ]
}
CURL="curl -sS --max-time 60"

# --- no faults ------------------------------------------------------------------
start_proxy clean --seed 1; ok $? "the proxy starts and writes its port file"
grep -q 'seed 1\b' "$T/clean.err"; ok $? "and prints its seed"

urls=()
for i in $(seq 1 50); do urls+=(-o "$T/get.$i" "http://127.0.0.1:$PORT/big"); done
out=$($CURL -w '%{http_code} %{num_connects}\n' "${urls[@]}" 2> "$T/curl.err")
is "$(echo "$out" | awk '$1 == 200' | wc -l)" 50 "50 GETs through the proxy answer 200"
is "$(echo "$out" | awk '{ n += $2 } END { print n }')" 1 "on one kept-alive connection"
bad=0
for i in $(seq 1 50); do cmp -s "$T/get.$i" "$T/www/big" || bad=$((bad + 1)); done
is "$bad" 0 "and every body is byte-identical to the 5 MiB file"
rm -f "$T"/get.*

puts=()
want=""
for i in $(seq 1 50); do
	s=$(echo $PUT_SIZES | cut -d' ' -f$(( (i - 1) % 6 + 1 )))
	puts+=(-T "$T/put.$s" "http://127.0.0.1:$PORT/up$i")
	want="$want$s $(sha256sum < "$T/put.$s" | cut -d' ' -f1)
"
done
out=$($CURL -w '#%{num_connects}\n' "${puts[@]}" 2> "$T/curl.err")
is "$(echo "$out" | grep -v '^#')
" "$want" "50 PUTs (0 B to 2 MiB, with and without Expect) deliver every byte upstream"
is "$(echo "$out" | grep '^#' | tr -d '#' | awk '{ n += $1 } END { print n }')" 1 \
	"on one kept-alive connection"

got=$($CURL -T - "http://127.0.0.1:$PORT/chunked-put" < "$T/put.2097152")
is "$got" "2097152 $(sha256sum < "$T/put.2097152" | cut -d' ' -f1)" "a chunked PUT arrives whole"

$CURL -o "$T/chunked" "http://127.0.0.1:$PORT/chunked/big" -o "$T/close" "http://127.0.0.1:$PORT/close/big"
cmp -s "$T/chunked" "$T/www/big"; ok $? "a chunked response is relayed byte for byte"
cmp -s "$T/close" "$T/www/big"; ok $? "a response read until close is relayed byte for byte"

out=$($CURL -I -w '%{num_connects}\n' "http://127.0.0.1:$PORT/big" "http://127.0.0.1:$PORT/big" 2>&1)
is "$(echo "$out" | grep -ci '^content-length: 5242880')" 2 "HEAD answers carry the length"
is "$(echo "$out" | grep -c '^[01]$' | tr -d ' ')" 2 "and no body: the connection stays in step"
is "$(echo "$out" | grep '^[01]$' | awk '{ n += $1 } END { print n }')" 1 "and is kept alive"
out=$($CURL -o /dev/null -o "$T/after204" -w '%{http_code} %{num_connects}\n' \
	"http://127.0.0.1:$PORT/nocontent" "http://127.0.0.1:$PORT/big")
is "$(echo $out)" "204 1 200 0" "a 204 has no body and the connection goes on"
cmp -s "$T/after204" "$T/www/big"; ok $? "with the next response intact"
is "$($CURL -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/nosuch")" 404 "an upstream 404 is relayed"
out=$(printf 'BROKEN\r\n\r\n' | timeout 10 python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(sys.stdin.buffer.read())
print(s.recv(100).split(b"\r\n")[0].decode())' "$PORT" 2>&1)
is "$out" "HTTP/1.1 400 Bad Request" "a malformed request gets 400"

kill -USR1 "$PID"
for _ in $(seq 1 50); do grep -q '^faultproxy: requests=' "$T/clean.err" && break; sleep 0.1; done
grep -q '^faultproxy: requests=' "$T/clean.err"; ok $? "SIGUSR1 prints the summary"
pid_alive "$PID"; ok $? "and the proxy goes on"
stop_proxy
is "$RC" 0 "SIGTERM: the proxy exits 0"
n=$(summary clean requests)
is "$n" "$(grep -c ' forward$' "$T/clean.log")" "the summary counts every request of the log ($n)"
is "$(summary clean forwarded)" "$n" "and all were forwarded"
grep -q '^faultproxy: requests=' "$T/clean.log"; ok $? "the summary goes to the log too"
grep -q '^GET /big forward$' "$T/clean.log"; ok $? "the log has method, path and decision"

# --- 503 ------------------------------------------------------------------------
start_proxy e503 --p503 1
out=$($CURL -w '\n%{http_code} %{num_connects}\n' "http://127.0.0.1:$PORT/big" "http://127.0.0.1:$PORT/big" 2>&1)
# A PUT by length, a chunked PUT and a GET, without Expect: the proxy
# reads the bodies, so they share the connection.
out2=$($CURL -H 'Expect:' -w '\n%{http_code} %{num_connects}\n' -T "$T/put.65536" "http://127.0.0.1:$PORT/x" \
	-T - "http://127.0.0.1:$PORT/y" "http://127.0.0.1:$PORT/z" < "$T/put.300001" 2>&1)
out="$out
$out2"
is "$(echo "$out" | grep -c '^503 ')" 5 "--p503 1: every request gets 503"
is "$(echo "$out" | grep -c '^<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>$')" 5 \
	"with the SlowDown XML body"
is "$(echo "$out" | grep '^503 ' | awk '{ n += $2 } END { print n }')" 2 \
	"and the connection is kept, GETs and PUTs alike (bodies consumed)"
out=$($CURL -w '%{http_code}\n' -T "$T/put.2097152" "http://127.0.0.1:$PORT/big" 2>&1)
case $out in *SlowDown*503) ok 0 "a PUT waiting on 100-continue gets the 503 at once";;
	*) ok 1 "a PUT waiting on 100-continue gets the 503 at once"; diag "$out";; esac
stop_proxy
is "$RC" 0 "the proxy exits 0"
is "$(summary e503 e503)" 6 "the summary counts 6 503s"

# --- resets ---------------------------------------------------------------------
start_proxy reset --preset 1 --seed 7
fails=0
for i in $(seq 1 16); do
	$CURL -o /dev/null "http://127.0.0.1:$PORT/big" 2>> "$T/reset.curl"
	case $? in 18|52|56) fails=$((fails + 1));; esac
done
is "$fails" 16 "--preset 1: every GET fails with a reset, an empty reply or a short body"
grep -q ' reset$' "$T/reset.log"; ok $? "some were reset before forwarding"
grep -q ' reset-midbody$' "$T/reset.log"; ok $? "and some part way through the response"
grep -qi 'reset by peer' "$T/reset.curl"; ok $? "curl saw connection resets"
stop_proxy
is "$RC" 0 "the proxy exits 0"
is "$(summary reset resets)" "$(summary reset requests)" "every request counted as a reset"

# --- delay and stall ------------------------------------------------------------
start_proxy delay --pdelay 1 --delay-ms 500
t=$($CURL -o "$T/delayed" -w '%{time_total}' "http://127.0.0.1:$PORT/big")
awk -v t="$t" 'BEGIN { exit !(t >= 0.5) }'; ok $? "--pdelay 1 --delay-ms 500: a GET takes ${t}s >= 0.5 s"
cmp -s "$T/delayed" "$T/www/big"; ok $? "and its body is intact"
stop_proxy
is "$(summary delay delays)" 1 "the summary counts one delay"

start_proxy stall --pstall 1
curl -sS --max-time 1 -o /dev/null "http://127.0.0.1:$PORT/big" 2>/dev/null
is "$?" 28 "--pstall 1: the request times out in the client"
stop_proxy
is "$RC" 0 "the proxy exits 0 while holding a stalled connection"
is "$(summary stall stalls)" 1 "the summary counts one stall"

# --- mixed faults, one seed, twice ------------------------------------------------
# One connection per request (Connection: close): curl then never repeats a
# request on a fresh connection, so the proxy sees exactly 40.
for round in 1 2; do
	start_proxy mixed$round --seed 42 --p503 0.3 --preset 0.3 --pdelay 0.3 --delay-ms 100
	urls=()
	for i in $(seq 1 40); do urls+=(-o /dev/null "http://127.0.0.1:$PORT/big"); done
	$CURL -H 'Connection: close' -w '%{http_code} %{exitcode}\n' "${urls[@]}" \
		> "$T/mixed$round.out" 2>/dev/null
	stop_proxy
	is "$RC" 0 "mixed round $round: the proxy exits 0"
	is "$(summary mixed$round requests)" 40 "the proxy saw 40 requests"
	sums_up mixed$round; ok $? "the counters add up: $(grep '^faultproxy:' "$T/mixed$round.err" | tail -1)"
	is "$(grep -c '^200 0$' "$T/mixed$round.out")" \
		"$(( $(summary mixed$round forwarded) + $(summary mixed$round delays) ))" \
		"complete answers = forwarded + delayed"
	is "$(grep -c '^503 0$' "$T/mixed$round.out")" "$(summary mixed$round e503)" "503 answers = e503"
	is "$(grep -vc ' 0$' "$T/mixed$round.out")" "$(summary mixed$round resets)" "failed transfers = resets"
done
cmp -s <(sed '/^faultproxy:/d' "$T/mixed1.log") <(sed '/^faultproxy:/d' "$T/mixed2.log")
ok $? "the same seed makes the same decisions"

# --- usage ----------------------------------------------------------------------
run_fail "no --upstream is a usage error" "$FP" --listen 0
run_fail "probabilities above 1 in sum are refused" "$FP" --upstream "127.0.0.1:$UP" --p503 0.6 --preset 0.6
run_ok "--help exits 0" "$FP" --help

# A sanitizer build (LFS_FAULTPROXY) reports on the proxy's stderr.
bad=$(grep -l 'Sanitizer\|runtime error' "$T"/*.err 2>/dev/null)
is "$bad" "" "no sanitizer reports from any proxy run"

done_testing
