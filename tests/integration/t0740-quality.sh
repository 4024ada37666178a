#!/usr/bin/env bash
# t0740-quality: expectations (warn, drop, fail) and upserts (key,
# sequence_by, delete_when), with their counts in _history.jsonl
# (lakefs(7) PROPERTIES, SILVER TABLES).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lakelib.sh"

[ -e /dev/fuse ] || skip_all "no /dev/fuse"
[ -x "$BIN/lakefs-mount" ] || skip_all "lakefs-mount not built (run make)"
need_cmd fusermount3 python3 cmp setfattr

lake_up q
B=$M/q/bronze
run_ok "quiet_ms=100 on the catalog" "$BIN/lakefs" props set "$M/q" quiet_ms 100
csv_of() { cat "$(silver q "$1")/$1.csv" 2>/dev/null; }
# hist TABLE EXPR: a Python expression over h, the last history line
hist() {
	python3 -c '
import json, sys
h = [json.loads(l) for l in open(sys.argv[1]) if l.strip()][-1]
print(eval(sys.argv[2]))' "$(silver q "$1")/_history.jsonl" "$2" 2>&1
}

# --- warn ---------------------------------------------------------------------------
mkdir "$B/warn"
run_ok "expect.positive=amount > 0 (warn by default)" setfattr -n user.lakefs.expect.positive -v 'amount > 0' "$B/warn"
run_ok "expect.named=warn name IS NOT NULL" setfattr -n user.lakefs.expect.named -v 'warn name IS NOT NULL' "$B/warn"
printf 'id,name,amount\n1,a,10\n2,b,-5\n3,,0\n4,d,\n' > "$B/warn/1.csv"
lwait; ok $? "ingested"
is "$(csv_of warn)" "$(printf 'id,name,amount\n1,a,10\n2,b,-5\n3,,0\n4,d,')" "warn: every row kept (a null result passes)"
is "$(hist warn 'json.dumps(h["expectations"], sort_keys=True)')" '{"named": {"action": "warn", "failed": 1}, "positive": {"action": "warn", "failed": 2}}' \
	"warn: counted per expectation in _history.jsonl"
is "$(hist warn '(h["rows_read"], h["rows_written"], h["rows_dropped"], h["rows_quarantined"], h["rows_total"])')" \
	"(4, 4, 0, 0, 4)" "warn: row counts"
is "$(ls "$(silver q warn)/_quarantine" | wc -l)" 0 "warn: nothing quarantined"

# --- drop ---------------------------------------------------------------------------
mkdir "$B/drop"
run_ok "expect.positive=drop amount > 0" setfattr -n user.lakefs.expect.positive -v 'drop amount > 0' "$B/drop"
printf 'id,name,amount\n1,a,10\n2,b,-5\n3,c,0\n4,d,7\n' > "$B/drop/1.csv"
lwait
is "$(csv_of drop)" "$(printf 'id,name,amount\n1,a,10\n4,d,7')" "drop: failing rows not in silver"
job=$(hist drop 'h["job"]')
qf=$(silver q drop)/_quarantine/$job.jsonl
run_ok "drop: _quarantine/$job.jsonl exists" test -f "$qf"
is "$(python3 -c '
import json, sys
for l in open(sys.argv[1]):
    d = json.loads(l); print(d["line"], d["expectation"], d["raw"])' "$qf")" "3 positive 2,b,-5
4 positive 3,c,0" "drop: each dropped row with its line, the expectation's name and the raw row"
r=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["reason"])' "$qf")
case $r in *positive*) ok 0 "drop: the reason names the expectation ($r)";; *) ok 1 "drop: reason"; diag "$r";; esac
is "$(hist drop '(h["rows_read"], h["rows_written"], h["rows_dropped"], h["rows_total"], h["status"])')" \
	"(4, 2, 2, 2, 'ok')" "drop: row counts in _history.jsonl"
is "$(hist drop 'h["expectations"]["positive"]["failed"]')" 2 "drop: the expectation's count"

# --- fail ---------------------------------------------------------------------------
mkdir "$B/fail"
printf 'id,name,amount\n1,a,10\n' > "$B/fail/1.csv"
lwait
run_ok "expect.positive=fail amount > 0" setfattr -n user.lakefs.expect.positive -v 'fail amount > 0' "$B/fail"
d=$(silver q fail)
cp "$d/fail.csv" "$d/fail.jsonl" "$d/_schema.json" "$T/"
printf 'id,name,amount\n2,b,20\n3,c,-1\n4,d,40\n' > "$B/fail/2.csv"
lwait
for f in fail.csv fail.jsonl _schema.json; do run_ok "fail: $f unchanged" cmp "$T/$f" "$d/$f"; done
is "$(tjobs q.bronze.fail quarantined)" 1 "fail: the job is quarantined"
is "$(hist fail 'h["status"]')" quarantined "fail: history status quarantined"
is "$(hist fail '(h["rows_written"], h["rows_total"])')" "(0, 1)" "fail: nothing written, total unchanged"
qcopy=$(ls "$d/_quarantine" | grep -v '\.jsonl$')
case $qcopy in *-2.csv) ok 0 "fail: the batch file is in _quarantine ($qcopy)";; *) ok 1 "fail: the batch file in _quarantine"; diag "$qcopy";; esac
[ -n "$qcopy" ] && run_ok "fail: the quarantined copy is the batch" cmp "$B/fail/2.csv" "$d/_quarantine/$qcopy"
r=$(cat "$d"/_quarantine/*.jsonl 2>/dev/null)
case $r in *positive*) ok 0 "fail: a reason line naming the expectation";; *) ok 1 "fail: a reason line naming the expectation"; diag "$r";; esac

# --- upsert with a key ------------------------------------------------------------------
mkdir "$B/up"
run_ok "key=id" setfattr -n user.lakefs.key -v id "$B/up"
printf 'id,v\n1,a\n2,b\n3,c\n' > "$B/up/1.csv"; lwait
printf 'id,v\n2,B\n4,d\n2,BB\n' > "$B/up/2.csv"; lwait
is "$(csv_of up)" "$(printf 'id,v\n1,a\n2,BB\n3,c\n4,d')" "key: the latest row per key wins, positions kept, new keys appended"
is "$(hist up '(h["rows_read"], h["rows_written"], h["rows_total"], h["rewrite"])')" "(3, 2, 4, True)" \
	"key: counts in _history.jsonl (2 keys written from 3 rows)"
printf 'id,v\n,nokey\n5,e\n' > "$B/up/3.csv"; lwait
is "$(csv_of up | tail -1)" "5,e" "key: a row with a null key is not stored"
is "$(hist up 'h["rows_quarantined"]')" 1 "key: and it is quarantined"

# --- sequence_by ----------------------------------------------------------------------
mkdir "$B/seq"
setfattr -n user.lakefs.key -v id "$B/seq"
run_ok "sequence_by=ts" setfattr -n user.lakefs.sequence_by -v ts "$B/seq"
printf 'id,ts,v\n1,2024-01-05T00:00:00,new\n2,2024-01-01T00:00:00,x\n' > "$B/seq/1.csv"; lwait
printf 'id,ts,v\n1,2024-01-01T00:00:00,old\n2,2024-01-02T00:00:00,y\n' > "$B/seq/2.csv"; lwait
is "$(csv_of seq)" "$(printf 'id,ts,v\n1,2024-01-05T00:00:00,new\n2,2024-01-02T00:00:00,y')" \
	"sequence_by: an older row does not win, a newer one does"
printf 'id,ts,v\n3,5,a\n' > "$B/seq/3.csv"; lwait
printf 'id,ts,v\n3,2,b\n3,9,c\n3,7,d\n' > "$B/seq/4.csv"; lwait 
is "$(csv_of seq | tail -1)" "3,9,c" "sequence_by within one batch: the highest sequence wins"

# --- delete_when ------------------------------------------------------------------------
mkdir "$B/cdc"
setfattr -n user.lakefs.key -v id "$B/cdc"
run_ok "delete_when=op = 'D'" setfattr -n user.lakefs.delete_when -v "op = 'D'" "$B/cdc"
printf 'id,op,v\n1,I,a\n2,I,b\n3,I,c\n' > "$B/cdc/1.csv"; lwait
printf 'id,op,v\n2,D,\n3,U,C\n9,D,\n' > "$B/cdc/2.csv"; lwait
is "$(csv_of cdc)" "$(printf 'id,op,v\n1,I,a\n3,U,C')" "delete_when: the key's row deleted, the delete row not kept"
is "$(hist cdc '(h["rows_read"], h["rows_deleted"], h["rows_total"])')" "(3, 1, 2)" "delete_when: rows_deleted and total"
printf 'id,op,v\n2,I,back\n' > "$B/cdc/3.csv"; lwait
is "$(csv_of cdc | tail -1)" "2,I,back" "a deleted key can come back"

# --- a bad expression at ingest (unknown column): the job fails, nothing published --
mkdir "$B/bad"
run_ok "expect.x=nosuchcol > 0 is accepted (syntax only)" setfattr -n user.lakefs.expect.x -v 'nosuchcol > 0' "$B/bad"
printf 'id\n1\n' > "$B/bad/1.csv"; lwait
is "$(tjobs q.bronze.bad failed)" 1 "an expectation that does not compile fails the job"
run_ok "nothing published" test ! -e "$(silver q bad)/bad.csv"
e=$(grep '"table":"q.bronze.bad"' "$M/.lakefs/jobs" | python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["error"])')
case $e in *nosuchcol*) ok 0 "the job's error names the problem ($e)";; *) ok 1 "the job's error"; diag "$e";; esac
setfattr -x user.lakefs.expect.x "$B/bad"
run_ok "lakefs run retries it once the expectation is removed" timeout 30 "$BIN/lakefs" run "$B/bad" --timeout 20
is "$(csv_of bad)" "$(printf 'id\n1')" "and the batch is published"

daemon_alive; ok $? "the daemon still answers"
lfs_umount "$M"; ok $? "unmount"
done_testing
