#!/usr/bin/env bash
# t0730-evolution: schema evolution per mode, and the properties that steer
# it (lakefs(7) PROPERTIES, SILVER TABLES).
#
#  Each mode (addNewColumns, rescue, failOnNewColumns, none) gets the same
#  three batches: id,a,b with a INT; then id,a,c (c new, b dropped, a
#  1.5e0: FLOAT); then id,a with a 'abc' (STRING). Widening INT -> FLOAT ->
#  STRING is recorded in _schema.json and in _history.jsonl's
#  schema_changes; rescue puts what does not fit in _rescued_data;
#  failOnNewColumns quarantines the batch and leaves the table's bytes
#  unchanged; none drops new columns and nulls misfits. Bad property values
#  fail with EINVAL and change nothing; properties are inherited from the
#  schema and the catalog.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lakelib.sh"

[ -e /dev/fuse ] || skip_all "no /dev/fuse"
[ -x "$BIN/lakefs-mount" ] || skip_all "lakefs-mount not built (run make)"
need_cmd fusermount3 python3 cmp setfattr getfattr

lake_up ev
B=$M/ev/bronze
run_ok "quiet_ms=100 on the catalog" "$BIN/lakefs" props set "$M/ev" quiet_ms 100
MODES="addNewColumns rescue failOnNewColumns none"

for m in $MODES; do
	mkdir "$B/$m"
	run_ok "schema_evolution=$m is accepted" setfattr -n user.lakefs.schema_evolution -v "$m" "$B/$m"
	printf 'id,a,b\n1,10,x\n2,20,y\n' > "$B/$m/1.csv"
done
lwait; ok $? "batch 1 ingested"
for m in $MODES; do
	is "$(schema_of "$(silver ev $m)" | sed 's/,_rescued_data:[A-Z]*//')" "id:INT,a:INT,b:STRING" "$m: batch 1 schema"
done
# keep failOnNewColumns' table bytes to compare
fo=$(silver ev failOnNewColumns)
mkdir "$T/fo"; cp "$fo/failOnNewColumns.csv" "$fo/failOnNewColumns.jsonl" "$fo/_schema.json" "$T/fo/"

for m in $MODES; do printf 'id,a,c\n3,1.5e0,new\n' > "$B/$m/2.csv"; done
lwait; ok $? "batch 2 ingested"
for m in $MODES; do printf 'id,a\n4,abc\n' > "$B/$m/3.csv"; done
lwait; ok $? "batch 3 ingested"

# valid_jsonl FILE: every line is a JSON object
valid_jsonl() {
	python3 -c '
import json, sys
for n, l in enumerate(open(sys.argv[1]), 1):
    try:
        assert isinstance(json.loads(l), dict)
    except Exception as e:
        print("line %d: %s: %s" % (n, e, l.strip())); sys.exit(1)
' "$1"
}
# changes DIR VERSION: schema_changes of that version, compact JSON
changes() {
	python3 -c '
import json, sys
for l in open(sys.argv[1]):
    d = json.loads(l)
    if d["version"] == int(sys.argv[2]) and d["status"] == "ok":
        print(json.dumps(d["schema_changes"], separators=(",", ":")))
' "$1/_history.jsonl" "$2"
}

# --- addNewColumns --------------------------------------------------------------------
d=$(silver ev addNewColumns)
is "$(cat "$d/addNewColumns.csv")" "id,a,b,c
1,10,x,
2,20,y,
3,1.5,,new
4,abc,," "addNewColumns: c added, b null where missing, a widened to STRING keeps every value"
is "$(schema_of "$d")" "id:INT,a:STRING,b:STRING,c:STRING" "addNewColumns: final schema"
is "$(python3 -c 'import json,sys; print([c["added_in"] for c in json.load(open(sys.argv[1]))["columns"]])' "$d/_schema.json")" \
	"[1, 1, 1, 2]" "addNewColumns: c added_in version 2"
is "$(changes "$d" 2)" '[{"widened":"a","from":"INT","to":"FLOAT"},{"added":"c","type":"STRING"}]' \
	"addNewColumns: history v2 records INT->FLOAT and the new column"
is "$(changes "$d" 3)" '[{"widened":"a","from":"FLOAT","to":"STRING"}]' "addNewColumns: history v3 records FLOAT->STRING"
is "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' "$d/_schema.json")" 3 "addNewColumns: schema version 3"
out=$(valid_jsonl "$d/addNewColumns.jsonl"); ok $? "addNewColumns: JSON lines valid"; [ -n "$out" ] && diag "$out"
is "$(sed -n 3p "$d/addNewColumns.jsonl")" '{"id":3,"a":"1.5","b":null,"c":"new"}' "addNewColumns: a STRING in JSON lines"

# --- rescue ---------------------------------------------------------------------------
d=$(silver ev rescue)
is "$(schema_of "$d")" "id:INT,a:INT,b:STRING" "rescue: the schema stays"
is "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["rescued_data_column"])' "$d/_schema.json")" \
	"_rescued_data" "rescue: rescued_data_column named"
is "$(cat "$d/rescue.csv")" 'id,a,b,_rescued_data
1,10,x,
2,20,y,
3,,,"{""a"":""1.5e0"",""c"":""new""}"
4,,,"{""a"":""abc""}"' "rescue: the new column and the misfits in _rescued_data, as landed"
out=$(valid_jsonl "$d/rescue.jsonl"); ok $? "rescue: JSON lines valid (a misfit's column is null)"
[ -n "$out" ] && diag "$out"
is "$(sed -n 3p "$d/rescue.jsonl")" '{"id":3,"a":null,"b":null,"_rescued_data":{"a":"1.5e0","c":"new"}}' \
	"rescue: row 3 in JSON lines"
is "$(changes "$d" 2)" '[]' "rescue: no schema change in v2"

# --- failOnNewColumns -----------------------------------------------------------------------
d=$fo
for f in failOnNewColumns.csv failOnNewColumns.jsonl _schema.json; do
	run_ok "failOnNewColumns: $f unchanged, byte for byte" cmp "$T/fo/$f" "$d/$f"
done
is "$(tjobs ev.bronze.failOnNewColumns quarantined)" 2 "failOnNewColumns: batches 2 and 3 quarantined"
is "$(grep -c '"status":"quarantined"' "$d/_history.jsonl")" 2 "failOnNewColumns: history has them as quarantined"
r=$(last_hist "$d" reason)
case $r in *failOnNewColumns*) ok 0 "failOnNewColumns: with the reason ($r)";;
	*) ok 1 "failOnNewColumns: with the reason"; diag "$r";; esac
is "$(ls "$d/_quarantine" | grep -v jsonl | sort | tr '\n' ' ')" "$(ls "$d/_quarantine" | grep -v jsonl | grep -E -- '-(2|3)\.csv$' | sort | tr '\n' ' ')" \
	"failOnNewColumns: the quarantined files are the batches"
is "$(ls "$d/_quarantine" | grep -vc jsonl)" 2 "failOnNewColumns: two files in _quarantine"
# a batch without new columns and fitting types is still accepted
printf 'id,a\n5,50\n' > "$B/failOnNewColumns/4.csv"; lwait
is "$(tail -1 "$d/failOnNewColumns.csv")" "5,50," "failOnNewColumns: a batch with a dropped column only is accepted (b null)"

# --- none ---------------------------------------------------------------------------------
d=$(silver ev none)
is "$(schema_of "$d")" "id:INT,a:INT,b:STRING" "none: the schema stays"
is "$(cat "$d/none.csv")" 'id,a,b
1,10,x
2,20,y
3,,
4,,' "none: new column dropped, misfits null"
out=$(valid_jsonl "$d/none.jsonl"); ok $? "none: JSON lines valid (a misfit is null)"; [ -n "$out" ] && diag "$out"
is "$(sed -n 3p "$d/none.jsonl")" '{"id":3,"a":null,"b":null}' "none: row 3 in JSON lines"

# --- properties: bad values refused, nothing changed --------------------------------------
P=$B/props
mkdir "$P"
setfattr -n user.lakefs.schema_evolution -v rescue "$P"
setfattr -n user.lakefs.quiet_ms -v 500 "$P"
setfattr -n user.lakefs.csv.delimiter -v ';' "$P"
setfattr -n user.lakefs.format -v csv "$P"
setfattr -n user.lakefs.key -v id "$P"
setfattr -n user.lakefs.expect.pos -v 'drop amount > 0' "$P"
before=$("$BIN/lakefs" props get "$P")
# setx NAME VALUE: errno name of setting it
setx() {
	python3 -c '
import os, sys, errno
try:
    os.setxattr(sys.argv[1], "user.lakefs." + sys.argv[2], sys.argv[3].encode())
    print("OK")
except OSError as e:
    print(errno.errorcode.get(e.errno, e.errno))' "$P" "$1" "$2"
}
for kv in "schema_evolution=bogus" "schema_evolution=" "format=xml" "quiet_ms=-1" "quiet_ms=abc" \
	"quiet_ms=3600001" "csv.delimiter=xx" "csv.delimiter=a" "csv.header=maybe" "key=," "key=" \
	"sequence_by=" "nosuch=1" "expect.pos=drop amount >" "expect.pos=explode amount > 0" \
	"expect.x=1; DROP TABLE t" "delete_when=op ==="; do
	k=${kv%%=*}; v=${kv#*=}
	is "$(setx "$k" "$v")" EINVAL "setting $k='$v' fails with EINVAL"
done
is "$("$BIN/lakefs" props get "$P")" "$before" "after the refused sets every property is unchanged"
run_fail "setfattr of a bad value exits non-zero" setfattr -n user.lakefs.format -v xml "$P"
is "$(getfattr --only-values -n user.lakefs.format "$P" 2>/dev/null)" csv "format still csv"
is "$("$BIN/lakefs" props get "$P" quiet_ms)" "quiet_ms=500" "quiet_ms still 500"
run_fail "lakefs props set with a bad value exits non-zero" "$BIN/lakefs" props set "$P" schema_evolution bogus
is "$("$BIN/lakefs" props get "$P" schema_evolution)" "schema_evolution=rescue" "schema_evolution still rescue"
# good values of every kind are taken
for kv in "format=auto" "format=json" "format=jsonl" "csv.delimiter=|" "csv.delimiter=auto" "csv.header=false" \
	"quiet_ms=0" "quiet_ms=250" "key=id,region" "sequence_by=ts" "delete_when=op = 'D'" "expect.ok=fail x IS NOT NULL"; do
	k=${kv%%=*}; v=${kv#*=}
	is "$(setx "$k" "$v")" OK "setting $k='$v' is accepted"
done
is "$(setx csv.delimiter "$(printf '\t')")" OK "csv.delimiter=<tab> is accepted"
run_ok "props unset" "$BIN/lakefs" props unset "$P" key
is "$("$BIN/lakefs" props get "$P" | grep -c '^key=')" 0 "key gone after unset"

# --- inheritance ------------------------------------------------------------------------
run_ok "set schema_evolution=none on the catalog" "$BIN/lakefs" props set "$M/ev" schema_evolution none
mkdir "$B/inh"
is "$("$BIN/lakefs" props get "$B/inh" schema_evolution)" "schema_evolution=none" "a table sees the catalog's value"
run_ok "set schema_evolution=rescue on the bronze schema" "$BIN/lakefs" props set "$B" schema_evolution rescue
is "$("$BIN/lakefs" props get "$B/inh" schema_evolution)" "schema_evolution=rescue" "the schema's value wins over the catalog's"
setfattr -n user.lakefs.schema_evolution -v failOnNewColumns "$B/inh"
is "$("$BIN/lakefs" props get "$B/inh" schema_evolution)" "schema_evolution=failOnNewColumns" "the table's own value wins"
"$BIN/lakefs" props unset "$B/inh" schema_evolution
is "$("$BIN/lakefs" props get "$B/inh" schema_evolution)" "schema_evolution=rescue" "unset: back to the schema's"
is "$("$BIN/lakefs" props get "$B/inh" quiet_ms)" "quiet_ms=100" "quiet_ms inherited from the catalog"
# and the inherited mode is what ingestion uses
printf 'id,a\n1,2\n' > "$B/inh/1.csv"; lwait
printf 'id,a,z\n2,3,new\n' > "$B/inh/2.csv"; lwait
is "$(schema_of "$(silver ev inh)")" "id:INT,a:INT" "the inherited rescue mode applies: no column added"
is "$(tail -1 "$(silver ev inh)/inh.csv")" '2,3,"{""z"":""new""}"' "z rescued"
"$BIN/lakefs" props unset "$B" schema_evolution
"$BIN/lakefs" props unset "$M/ev" schema_evolution
is "$("$BIN/lakefs" props get "$B/inh" schema_evolution 2>/dev/null | grep -c rescue)" 0 "unset on schema and catalog: no longer inherited"

# --- the quiet period of a table whose quiet_ms changes (last: when it
#     fails it leaves lakefs wait busy) -----------------------------------
# a quiet period set on a table where nothing landed makes it wait for nothing
is "$(setx quiet_ms 3600000)" OK "quiet_ms=3600000 (the most) is accepted on a table where nothing landed"
sleep 0.3
w=$(timeout 5 cat "$M/.lakefs/status" | sed -n 's/^ *"jobs_waiting": *\([0-9]*\).*/\1/p')
is "$w" 0 "a table with no landed file is not waiting after quiet_ms is set (jobs_waiting)"
lwait 3; ok $? "lakefs wait returns at once: nothing landed (quiet_ms=3600000 on an empty table)"
# a lowered quiet period applies to a file already waiting
mkdir "$B/lower"
setfattr -n user.lakefs.quiet_ms -v 600000 "$B/lower"
printf 'id\n1\n' > "$B/lower/1.csv"
sleep 0.3
setfattr -n user.lakefs.quiet_ms -v 100 "$B/lower"
lwait 5; ok $? "quiet_ms lowered from 600000 to 100: lakefs wait returns within 5 s"
is "$(rows "$(silver ev lower)/lower.csv")" 1 "and the waiting file landed under the new quiet period"
# neither table may hold up the rest of the test
"$BIN/lakefs" drop "$P" >/dev/null 2>&1
"$BIN/lakefs" drop "$B/lower" >/dev/null 2>&1
sleep 0.5
lwait 5; ok $? "after lakefs drop of both tables lakefs wait returns (no scan left pending for a dropped table)"

daemon_alive; ok $? "the daemon still answers"
lfs_umount "$M"; ok $? "unmount"
done_testing
