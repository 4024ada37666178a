#!/usr/bin/env bash
# t0750-jobs: jobs and their tools (lakefs(7) JOBS, lakefs(1) jobs, run,
# wait, drop), exactly-once across kill -9, silver read-only, snapshot
# reads, and persistence across a remount.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lakelib.sh"

[ -e /dev/fuse ] || skip_all "no /dev/fuse"
[ -x "$BIN/lakefs-mount" ] || skip_all "lakefs-mount not built (run make)"
need_cmd fusermount3 python3 cmp setfattr sha256sum

lake_up j
B=$M/j/bronze
run_ok "quiet_ms=100 on the catalog" "$BIN/lakefs" props set "$M/j" quiet_ms 100

# --- /.lakefs/jobs and lakefs jobs ------------------------------------------------------
mkdir "$B/a"
printf 'id,v\n1,x\n2,y\n' > "$B/a/1.csv"; lwait
printf 'id,v\n3,z\n' > "$B/a/2.csv"; lwait
run_ok "/.lakefs/jobs is JSON lines" python3 -c '
import json, sys
for l in open(sys.argv[1]):
    d = json.loads(l)
    for k in ("id", "kind", "state", "table", "file", "queued", "started", "finished",
              "seconds", "version", "rows_read", "rows_written", "rows_quarantined", "error"):
        assert k in d, (k, d)' "$M/.lakefs/jobs"
is "$(grep '"table":"j.bronze.a"' "$M/.lakefs/jobs" | python3 -c '
import json, sys
print(" ".join("%s:%s:v%s:%s" % (d["file"], d["state"], d["version"], d["rows_written"]) for d in map(json.loads, sys.stdin)))')" \
	"1.csv:done:v1:2 2.csv:done:v2:1" "the jobs: file, state, version, rows, oldest first"
out=$("$BIN/lakefs" jobs "$M"); rc=$?
is "$rc" 0 "lakefs jobs exits 0"
is "$(printf '%s\n' "$out" | grep -c 'j.bronze.a')" 2 "lakefs jobs lists both jobs"
case $(printf '%s\n' "$out" | head -1) in *ID*STATE*TABLE*) ok 0 "with a header";; *) ok 1 "with a header"; diag "$out";; esac
is "$("$BIN/lakefs" jobs "$M" --json)" "$(cat "$M/.lakefs/jobs")" "lakefs jobs --json prints /.lakefs/jobs"

# --- lakefs run ignores the quiet period; exit 1 on a quarantined batch --------------------
mkdir "$B/r"
setfattr -n user.lakefs.quiet_ms -v 60000 "$B/r"
printf 'id,v\n1,x\n' > "$B/r/1.csv"
sleep 0.5
is "$(tjobs j.bronze.r)" 0 "quiet_ms=60000: nothing ingested yet"
t0=$(date +%s)
run_fail "lakefs wait --timeout 1 exits 1 while a file waits" timeout 20 "$BIN/lakefs" wait "$M" --timeout 1
el=$(( $(date +%s) - t0 ))
ok $(( el <= 4 ? 0 : 1 )) "and gives up after about 1 s (${el} s)"
out=$(timeout 30 "$BIN/lakefs" run "$B/r" --timeout 20 2>&1); rc=$?
is "$rc" 0 "lakefs run exits 0"
diag "lakefs run: $out"
is "$(rows "$(silver j r)/r.csv")" 1 "lakefs run ingested the file at once"
lwait 5; ok $? "nothing left waiting after the run"
# a run while a file is still open waits for its close, then ingests it
# without the (60 s) quiet period
exec 7>"$B/r/3held.csv"
printf 'id,v\n3,z\n' >&7
timeout 40 "$BIN/lakefs" run "$B/r" --timeout 30 > "$T/run.out" 2>&1 7>&- &
rp=$!
sleep 1
pid_alive "$rp"; ok $? "lakefs run waits while a file of the table is open"
exec 7>&-
wait "$rp"; rc=$?
is "$rc" 0 "and exits 0 once it is closed ($(cat "$T/run.out"))"
is "$(rows "$(silver j r)/r.csv")" 2 "the file closed during the run is ingested"
head -c 4096 /dev/urandom > "$B/r/junk.csv"
out=$(timeout 30 "$BIN/lakefs" run "$(silver j r)" --timeout 20 2>&1); rc=$?
is "$rc" 1 "lakefs run (named by the silver table) exits 1 when the batch is quarantined"
[ -n "$out" ]; ok $? "and says why ($out)"
is "$(tjobs j.bronze.r quarantined)" 1 "the job is quarantined"
run_fail "lakefs run of a non-table fails" timeout 30 "$BIN/lakefs" run "$M/j" --timeout 5
head -c 4096 /dev/urandom > "$B/r/a-junk.csv"
printf 'id,v\n2,y\n' > "$B/r/b-good.csv"
out=$(timeout 30 "$BIN/lakefs" run "$B/r" --timeout 20 2>&1); rc=$?
is "$rc" 1 "two batches, the first quarantined, the last fine: lakefs run still exits 1"
is "$(printf '%s\n' "$out" | grep -c 'a-junk.csv\|b-good.csv')" 2 "and reports both batches"

# --- silver is read-only ------------------------------------------------------------------
s=$(silver j a)
is "$(errno_of "open('$s/new.csv', 'w')")" EROFS "create in silver: EROFS"
is "$(errno_of "open('$s/a.csv', 'a')")" EROFS "write to silver CSV: EROFS"
is "$(errno_of "os.truncate('$s/a.csv', 0)")" EROFS "truncate: EROFS"
is "$(errno_of "os.unlink('$s/a.csv')")" EROFS "rm: EROFS"
is "$(errno_of "os.rename('$s/a.csv', '$s/b.csv')")" EROFS "mv: EROFS"
is "$(errno_of "os.chmod('$s/a.csv', 0o666)")" EROFS "chmod: EROFS"
is "$(errno_of "os.setxattr('$s/a.csv', 'user.x', b'1')")" EROFS "setfattr: EROFS"
is "$(errno_of "os.mkdir('$s/d')")" EROFS "mkdir: EROFS"
is "$(errno_of "os.unlink('$s/_quarantine')" | sed 's/EISDIR/EROFS/')" EROFS "rm of _quarantine: refused"
run_fail "touch in silver fails" touch "$s/a.csv"
is "$(errno_of "os.rmdir('$B/a')")" ENOTEMPTY "rmdir of a bronze table with silver data: ENOTEMPTY"
is "$(errno_of "os.rmdir('$s')")" EROFS "rmdir of the silver table: EROFS"
run_ok "the bronze table is still there" test -f "$B/a/1.csv"

# --- lakefs drop ---------------------------------------------------------------------------
mkdir "$B/gone"; printf 'id\n1\n' > "$B/gone/1.csv"; lwait
run_ok "lakefs drop of a table" timeout 30 "$BIN/lakefs" drop "$B/gone"
run_ok "its bronze directory is gone" test ! -e "$B/gone"
run_ok "its silver directory is gone" test ! -e "$(silver j gone)"
mkdir "$B/gone"; printf 'id\n7\n' > "$B/gone/1.csv"; lwait
is "$(cat "$(silver j gone)/gone.csv")" "$(printf 'id\n7')" "a new table of the same name starts afresh"
lwait 30 || diag "lakefs wait busy after the re-made table"

# --- snapshot consistency ---------------------------------------------------------------------
mkdir "$B/snap"
gen_csv "$T/s1.csv" 1 20000; cp "$T/s1.csv" "$B/snap/"; lwait
cp "$(silver j snap)/snap.csv" "$T/snap-v1.csv"
mkfifo "$T/go"
python3 - "$(silver j snap)/snap.csv" "$T/go" "$T/old-read.csv" <<'EOF' &
import sys
f = open(sys.argv[1], "rb")
first = f.read(100)
open(sys.argv[2]).read()		# until the new version is out
rest = f.read()
open(sys.argv[3], "wb").write(first + rest)
EOF
reader=$!
sleep 0.3
gen_csv "$T/s2.csv" 100000 20000; cp "$T/s2.csv" "$B/snap/"; lwait
echo go > "$T/go"
wait "$reader"
run_ok "an open handle reads the old version to its end" cmp "$T/snap-v1.csv" "$T/old-read.csv"
is "$(rows "$(silver j snap)/snap.csv")" 40000 "a new open sees the new version"

# --- persistence: remount keeps everything, re-ingests nothing ----------------------------------
sum_silver() { (cd "$M/j/silver" && find . -type f | sort | xargs sha256sum); }
before=$(sum_silver); jb=$(njobs)
lfs_umount "$M"; ok $? "unmount"
lfs_mount "$M" "$S"; ok $? "remount the same state"
sleep 1; lwait
is "$(sum_silver)" "$before" "silver tables, schemas, history and quarantine unchanged after remount"
is "$(njobs)" "$jb" "no job ran again"
run_ok "bronze still byte-exact" cmp "$T/s2.csv" "$B/snap/s2.csv"
printf 'id,v\n4,w\n' > "$B/a/3.csv"; lwait
is "$(tail -1 "$(silver j a)/a.csv")" "4,w" "landing still works after the remount"
is "$(last_hist "$(silver j a)" version)" 3 "as version 3"

# --- exactly once across kill -9 during an ingest ------------------------------------------
mkdir "$B/big"
N=2500000
python3 - "$T/big.csv" "$N" <<'EOF'
import sys
n = int(sys.argv[2])
with open(sys.argv[1], "w") as o:
    o.write("id,name,amount,day\n")
    for s in range(0, n, 100000):
        o.write("".join("%d,customer_%d,%d.%02d,2024-01-%02d\n" % (i, i % 9973, i % 100000, i % 100, i % 28 + 1)
                        for i in range(s, min(n, s + 100000))))
EOF
diag "big.csv: $(du -m "$T/big.csv" | cut -f1) MiB, $N rows"
cp "$T/big.csv" "$B/big/big.csv"
running() { timeout 5 cat "$M/.lakefs/status" | grep -q '"jobs_running": *[1-9]'; }
wait_until 60 running; ok $? "the big ingest is running (status jobs_running)"
# no pause here: the ingest takes about a second, and the kill must land in it
python3 -c 'import json,sys; sys.exit(not any(j["table"] == "j.bronze.big" and j["state"] == "running" for j in map(json.loads, open(sys.argv[1]))))' "$M/.lakefs/jobs"
ok $? "/.lakefs/jobs lists the running job with state running"
running; ok $? "still running when killed"
pid=$(lfs_daemon_pid "$M")
kill -9 "$pid"
for _ in $(seq 1 50); do pid_alive "$pid" || break; sleep 0.1; done
fusermount3 -u "$M" 2>/dev/null || umount -l "$M"
lfs_mount "$M" "$S"; ok $? "remount after kill -9"
lwait 180; ok $? "lakefs wait: the resumed job finished"
is "$(rows "$(silver j big)/big.csv")" "$N" "the big table has every row exactly once"
is "$(python3 -c '
import sys
seen = set(); dup = 0
with open(sys.argv[1]) as f:
    next(f)
    for l in f:
        k = l.split(",", 1)[0]
        if k in seen: dup += 1
        seen.add(k)
print(dup, len(seen))' "$(silver j big)/big.csv")" "0 $N" "no id twice"
is "$(grep -c . "$(silver j big)/_history.jsonl")" 1 "one version in its history"
is "$(tjobs j.bronze.big done)" 1 "the job shows done"
is "$(tjobs j.bronze.big running)$(tjobs j.bronze.big queued)" "00" "and nothing of it running or queued"
run_ok "bronze big.csv byte-exact" cmp "$T/big.csv" "$B/big/big.csv"

daemon_alive; ok $? "the daemon still answers"
lfs_umount "$M"; ok $? "unmount"
done_testing
