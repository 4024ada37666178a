#!/usr/bin/env bash
# t0710-landing: files land in a bronze table through real tools and become
# silver rows exactly once (lakefs(7) LANDING).
#
#  cp; rsync (.name.XXXXXX then rename); curl -o from a local HTTP server;
#  mv from a temp name and from outside the mount; a writer that pauses
#  shorter than the quiet period while it holds the file open (one batch);
#  a file closed, then reopened and appended to after its quiet period (a
#  second batch: new bytes under an old name); in-flight names never
#  ingested; the same bytes under another name (one batch); new bytes under
#  the same name (a new batch); the quiet period respected; the latency from
#  close to rows in silver with the default quiet period; bronze byte-exact;
#  .gz and .zst (and gzip by magic bytes) decompressed.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lakelib.sh"

[ -e /dev/fuse ] || skip_all "no /dev/fuse"
[ -x "$BIN/lakefs-mount" ] || skip_all "lakefs-mount not built (run make)"
need_cmd fusermount3 python3 rsync curl gzip zstd setfattr cmp

HTTP_PID=""
t0710_cleanup() {
	if [ -n "$HTTP_PID" ]; then
		kill "$HTTP_PID" 2>/dev/null
		for _ in $(seq 1 30); do pid_alive "$HTTP_PID" || break; sleep 0.1; done
		pid_alive "$HTTP_PID" && kill -9 "$HTTP_PID" 2>/dev/null
	fi
	lfs_cleanup
}
trap 't0710_cleanup' EXIT

SRC=$T/src
mkdir -p "$SRC"
lake_up sales
B=$M/sales/bronze
run_ok "quiet_ms=200 on the catalog" "$BIN/lakefs" props set "$M/sales" quiet_ms 200

# --- cp ---------------------------------------------------------------------
mkdir "$B/t_cp"
gen_csv "$SRC/a.csv" 1 5
cp "$SRC/a.csv" "$B/t_cp/"
lwait; ok $? "lakefs wait returns after cp"
is "$(rows "$(silver sales t_cp)/t_cp.csv")" 5 "cp: 5 rows in silver"
is "$(ids "$(silver sales t_cp)/t_cp.csv")" "1 2 3 4 5 " "cp: the ids landed"
run_ok "cp: bronze file byte-exact" cmp "$SRC/a.csv" "$B/t_cp/a.csv"
is "$(tjobs sales.bronze.t_cp)" 1 "cp: one job"

# --- rsync --------------------------------------------------------------------
mkdir "$B/t_rsync"
gen_csv "$SRC/r.csv" 100 50
run_ok "rsync into the table" rsync "$SRC/r.csv" "$B/t_rsync/"
lwait; ok $? "lakefs wait after rsync"
is "$(rows "$(silver sales t_rsync)/t_rsync.csv")" 50 "rsync: 50 rows in silver"
is "$(tjobs sales.bronze.t_rsync)" 1 "rsync: exactly one job (its temp name not ingested)"
f=$(grep '"table":"sales.bronze.t_rsync"' "$M/.lakefs/jobs" | sed -n 's/.*"file":"\([^"]*\)".*/\1/p')
is "$f" "r.csv" "rsync: the job names the final file"
run_ok "rsync: bronze file byte-exact" cmp "$SRC/r.csv" "$B/t_rsync/r.csv"
# rsync of a changed file: rsync writes a new temp file and renames it over
gen_csv "$SRC/r.csv" 200 10
run_ok "rsync of changed content" rsync "$SRC/r.csv" "$B/t_rsync/"
lwait
is "$(rows "$(silver sales t_rsync)/t_rsync.csv")" 60 "rsync again with new content: a new batch (60 rows)"
is "$(tjobs sales.bronze.t_rsync)" 2 "rsync: two jobs in all"

# --- curl -o from a local HTTP server ---------------------------------------
mkdir "$B/t_curl"
gen_csv "$SRC/c.csv" 300 20
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 -m http.server "$PORT" --bind 127.0.0.1 --directory "$SRC" >/dev/null 2>&1 &
HTTP_PID=$!
wait_until 10 curl -sf -o /dev/null "http://127.0.0.1:$PORT/c.csv"; ok $? "http server up on 127.0.0.1:$PORT"
run_ok "curl -o into the table" curl -sf -o "$B/t_curl/c.csv" "http://127.0.0.1:$PORT/c.csv"
lwait
is "$(rows "$(silver sales t_curl)/t_curl.csv")" 20 "curl: 20 rows in silver"
is "$(tjobs sales.bronze.t_curl)" 1 "curl: one job"
run_ok "curl: bronze file byte-exact" cmp "$SRC/c.csv" "$B/t_curl/c.csv"
kill "$HTTP_PID" 2>/dev/null; wait "$HTTP_PID" 2>/dev/null; HTTP_PID=""

# --- mv from a temp name, and from outside the mount --------------------------
mkdir "$B/t_mv"
gen_csv "$B/t_mv/x.csv.tmp" 400 7
sleep 0.8	# four quiet periods
lwait
is "$(tjobs sales.bronze.t_mv)" 0 "x.csv.tmp is not ingested"
run_ok "mv x.csv.tmp x.csv" mv "$B/t_mv/x.csv.tmp" "$B/t_mv/x.csv"
lwait
is "$(rows "$(silver sales t_mv)/t_mv.csv")" 7 "mv from a temp name lands the file (7 rows)"
gen_csv "$SRC/outside.csv" 500 3
cp "$SRC/outside.csv" "$T/outside.csv"
run_ok "mv from outside the mount" mv "$T/outside.csv" "$B/t_mv/outside.csv"
lwait
is "$(rows "$(silver sales t_mv)/t_mv.csv")" 10 "mv from outside lands it too (10 rows)"
is "$(tjobs sales.bronze.t_mv)" 2 "mv: two jobs"
run_ok "mv: bronze byte-exact" cmp "$SRC/outside.csv" "$B/t_mv/outside.csv"

# --- a writer with pauses shorter than the quiet period, and a file held open -
mkdir "$B/t_cat"
"$BIN/lakefs" props set "$B/t_cat" quiet_ms 1500
{
	echo "id,name,amount"; sleep 0.3
	echo "1,a,1.5"; sleep 0.3
	echo "2,b,2.5"; sleep 0.3
	echo "3,c,3.5"
} > "$B/t_cat/pieces.csv"
lwait
is "$(rows "$(silver sales t_cat)/t_cat.csv")" 3 "cat in pieces with short pauses: all 3 rows"
is "$(tjobs sales.bronze.t_cat)" 1 "cat in pieces: one batch"

"$BIN/lakefs" props set "$B/t_cat" quiet_ms 300
exec 7> "$B/t_cat/held.csv"
echo "id,name,amount" >&7
echo "10,held,1.5" >&7
sleep 1.2	# four quiet periods, but the file is open
is "$(tjobs sales.bronze.t_cat)" 1 "a file held open is not ingested after its quiet period"
echo "11,held,2.5" >&7
exec 7>&-
lwait
is "$(rows "$(silver sales t_cat)/t_cat.csv")" 5 "after its close it lands whole (5 rows)"
is "$(tjobs sales.bronze.t_cat)" 2 "and as one batch"

# closed, landed, then reopened and appended: a new content is a new batch,
# the whole file as it now is (Auto Loader with overwrites allowed)
{ echo "id,name,amount"; echo "20,first,1.5"; } > "$B/t_cat/grow.csv"
sleep 1; lwait
is "$(rows "$(silver sales t_cat)/t_cat.csv")" 6 "first part landed after its quiet period (6 rows)"
echo "21,second,2.5" >> "$B/t_cat/grow.csv"
lwait
is "$(tjobs sales.bronze.t_cat)" 4 "reopened and appended: a new batch"
is "$(last_hist "$(silver sales t_cat)" rows_read)" 2 "the new batch is the whole file (2 rows read)"
is "$(rows "$(silver sales t_cat)/t_cat.csv")" 8 "table: 6 + 2 rows"

# --- in-flight names ----------------------------------------------------------
mkdir "$B/t_flight"
for n in .hidden.csv a.csv.part a.csv~ a.swp a.csv.tmp a.csv.partial a.csv.crdownload .b.csv.Xy12Qz; do
	gen_csv "$B/t_flight/$n" 1 2
done
mkdir "$B/t_flight/.sub" && gen_csv "$B/t_flight/.sub/deep.csv" 1 2
sleep 1; lwait
is "$(tjobs sales.bronze.t_flight)" 0 "in-flight names are never ingested"
run_ok "and the silver table has no data file" test ! -e "$(silver sales t_flight)/t_flight.csv"
is "$(ls -A "$B/t_flight" | wc -l)" 9 "the in-flight files are still there, untouched"

# --- the same content twice; new content under the same name ----------------
mkdir "$B/t_dup"
gen_csv "$SRC/d.csv" 1 4
cp "$SRC/d.csv" "$B/t_dup/d.csv"; lwait
cp "$SRC/d.csv" "$B/t_dup/d-copy.csv"; lwait
mkdir "$B/t_dup/sub"; cp "$SRC/d.csv" "$B/t_dup/sub/d.csv"; lwait
is "$(rows "$(silver sales t_dup)/t_dup.csv")" 4 "the same bytes under 3 names: rows not duplicated"
is "$(grep -c . "$(silver sales t_dup)/_history.jsonl")" 1 "one version"
gen_csv "$SRC/d2.csv" 50 6
cp "$SRC/d2.csv" "$B/t_dup/d.csv"; lwait
is "$(rows "$(silver sales t_dup)/t_dup.csv")" 10 "new content under the same name: a new batch (10 rows)"
is "$(grep -c . "$(silver sales t_dup)/_history.jsonl")" 2 "two versions"
is "$(ids "$(silver sales t_dup)/t_dup.csv")" "1 2 3 4 50 51 52 53 54 55 " "with the new ids"
cp "$SRC/d.csv" "$B/t_dup/again.csv"; lwait
is "$(rows "$(silver sales t_dup)/t_dup.csv")" 10 "the first content landed once more: still a no-op"

# --- the quiet period is respected --------------------------------------------
mkdir "$B/t_quiet"
"$BIN/lakefs" props set "$B/t_quiet" quiet_ms 3000
gen_csv "$B/t_quiet/q.csv" 1 3
sleep 1.5
is "$(tjobs sales.bronze.t_quiet)" 0 "1.5 s into a 3 s quiet period: no job yet"
run_ok "and no rows in silver yet" test ! -e "$(silver sales t_quiet)/t_quiet.csv"
w=$(timeout 5 cat "$M/.lakefs/status" | sed -n 's/^ *"jobs_waiting": *\([0-9]*\).*/\1/p')
is "$w" 1 "status counts the table as waiting"
run_fail "lakefs wait --timeout 1 exits 1 while it waits" \
	timeout 20 "$BIN/lakefs" wait "$M" --timeout 1
lwait; ok $? "lakefs wait returns after the quiet period"
is "$(rows "$(silver sales t_quiet)/t_quiet.csv")" 3 "then the rows are in silver"

# --- latency from close to silver, default quiet period ----------------------
mkdir "$M/lat" && mkdir "$M/lat/bronze/t"
python3 - "$SRC/lat.csv" <<'EOF'
import sys
with open(sys.argv[1], "w") as o:
    o.write("id,name,amount\n")
    i = 0
    while o.tell() < 10240:
        o.write("%d,latency_row_%d,%d.25\n" % (i, i, i)); i += 1
EOF
nlat=$(( $(wc -l < "$SRC/lat.csv") - 1 ))
t0=$(date +%s.%N)
cp "$SRC/lat.csv" "$M/lat/bronze/t/lat.csv"
t1=$(date +%s.%N)
got=0
for _ in $(seq 1 200); do
	[ "$(rows "$M/lat/silver/t/t.csv")" = "$nlat" ] && { got=1; break; }
	sleep 0.05
done
t2=$(date +%s.%N)
ok $((1 - got)) "a 10 KB file ($nlat rows) is readable in silver"
lat=$(python3 -c "print(round($t2 - $t1, 3))")
diag "latency close -> silver, default quiet period 1000 ms: $lat s (cp took $(python3 -c "print(round($t1 - $t0, 3))") s)"
ok "$(python3 -c "print(0 if 0.9 <= $lat < 5 else 1)")" "latency $lat s is within [quiet period, 5 s)"

# --- compressed inputs ----------------------------------------------------------
mkdir "$B/t_gz"
gen_csv "$SRC/g.csv" 1 30; gzip -c "$SRC/g.csv" > "$SRC/g.csv.gz"
gen_csv "$SRC/z.csv" 100 40; zstd -q -c "$SRC/z.csv" > "$SRC/z.csv.zst"
gen_csv "$SRC/m.csv" 200 5; gzip -c "$SRC/m.csv" > "$SRC/magic.csv"
cp "$SRC/g.csv.gz" "$SRC/z.csv.zst" "$SRC/magic.csv" "$B/t_gz/"
lwait
is "$(rows "$(silver sales t_gz)/t_gz.csv")" 75 ".gz, .zst and gzip-by-magic decompressed: 75 rows"
is "$(tjobs sales.bronze.t_gz done)" 3 "three jobs done"
is "$(ls "$(silver sales t_gz)/_quarantine" | wc -l)" 0 "nothing quarantined"
is "$(schema_of "$(silver sales t_gz)")" "id:INT,name:STRING,amount:DECIMAL" "typed columns from compressed input"
exp=$(cat "$SRC/g.csv" "$SRC/z.csv" "$SRC/m.csv" | grep -v '^id' | cut -d, -f1 | sort -n | tr '\n' ' ')
is "$(ids "$(silver sales t_gz)/t_gz.csv")" "$exp" "every id once"
for f in g.csv.gz z.csv.zst magic.csv; do
	run_ok "$f stays compressed and byte-exact in bronze" cmp "$SRC/$f" "$B/t_gz/$f"
done

daemon_alive; ok $? "the daemon still answers"
lfs_umount "$M"; ok $? "unmount"
done_testing
