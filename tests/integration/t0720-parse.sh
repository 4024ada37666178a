#!/usr/bin/env bash
# t0720-parse: what the silver transform makes of what lands, read back
# through the mount (lakefs(7) SILVER TABLES).
#
#  RFC 4180 quoting (embedded newlines, doubled quotes), CRLF, a UTF-8 BOM,
#  delimiter sniffing (; tab |), ragged rows, an empty file, a header-only
#  file, a JSON array, one JSON object, JSON lines, a nested object kept as
#  JSON text, an invalid UTF-8 row quarantined with its reason, a binary
#  file quarantined whole (copied into _quarantine with a reason line), a
#  20 MB field quarantined without hurting the daemon; the types in
#  _schema.json; exact silver CSV and JSON lines for several cases.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lakelib.sh"

[ -e /dev/fuse ] || skip_all "no /dev/fuse"
[ -x "$BIN/lakefs-mount" ] || skip_all "lakefs-mount not built (run make)"
need_cmd fusermount3 python3 cmp

lake_up p
B=$M/p/bronze
run_ok "quiet_ms=100 on the catalog" "$BIN/lakefs" props set "$M/p" quiet_ms 100

# land TABLE NAME: make the table, write stdin as NAME into it
land() { mkdir -p "$B/$1" && cat > "$B/$1/$2"; }
csv_of()   { cat "$(silver p "$1")/$1.csv" 2>/dev/null; }
jsonl_of() { cat "$(silver p "$1")/$1.jsonl" 2>/dev/null; }
# qlines TABLE: every quarantine JSON line of the table
qlines() { cat "$(silver p "$1")"/_quarantine/*.jsonl 2>/dev/null; }
# qfield TABLE FIELD: that field of each quarantine line, one per line
qfield() {
	qlines "$1" | python3 -c '
import json, sys
for l in sys.stdin:
    if l.strip():
        v = json.loads(l).get(sys.argv[1])
        print(v if isinstance(v, str) else json.dumps(v))' "$2"
}

printf 'id,text\n1,"line one\nline two"\n2,"she said ""hi"""\n3,"a,b"\n4,plain\n5,""\n6,\n' | land rfc rfc.csv
printf 'id,v\r\n1,a\r\n2,"b\r\nc"\r\n3,d\r\n' | land crlf crlf.csv
printf '\xef\xbb\xbfid,v\n1,a\n2,b\n' | land bom bom.csv
printf 'a;b;c\n1;x,y;2.5\n2;z;3.5\n' | land semi semi.csv
printf 'a\tb\tc\n1\tx,y\t2.5\n2\tz\t3.5\n' | land tab tab.tsv
printf 'a|b|c\n1|x;y|2.5\n2|z|3.5\n' | land pipe pipe.txt
printf 'a,b,c\n1,2\n3,4,5,\n6,7,8,9\n10,11,12\n' | land ragged ragged.csv
: | land empty empty.csv
printf 'id,name,amount\n' | land hdr hdr.csv
printf '[{"a":1,"b":"x"},\n {"a":2,"b":"y","c":true}]\n' | land jarr arr.json
printf '{"a":1,"b":"only"}\n' | land jobj obj.json
printf '{"a":1,"b":"x"}\n{"a":2,"b":null}\n{"b":"z","a":3}\n' | land jl lines.jsonl
printf '{"id":1,"n":{"x":1,"y":[1,2]},"t":[true,null]}\n{"id":2,"n":null,"t":[]}\n' | land nested n.jsonl
printf 'id,v\n1,good\n2,bad \xff\xfe here\n3,fine\n' | land utf8 u.csv
head -c 8192 /dev/urandom > "$T/garbage.bin"
printf '\0\1\2\3' >> "$T/garbage.bin"
mkdir "$B/garbage" && cp "$T/garbage.bin" "$B/garbage/garbage.csv"
cat > "$T/types.csv" <<'EOF'
i,f,d,b,dt,ts,tstz,s,zip,big
1,1e3,1.50,true,2024-02-29,2024-01-02T03:04:05,2024-01-02T03:04:05Z,hello,00501,123456789012345678901234567890
-2,.5,0.25,FALSE,1999-12-31,2024-01-02 03:04:05.123,2024-01-02T03:04:05+02:00,world,02134,1
,,,,,,,,,
EOF
mkdir "$B/types" && cp "$T/types.csv" "$B/types/"

lwait 60; ok $? "lakefs wait: every small case ingested"

# --- RFC 4180 ---------------------------------------------------------------------
is "$(csv_of rfc)" "$(printf 'id,text\n1,"line one\nline two"\n2,"she said ""hi"""\n3,"a,b"\n4,plain\n5,""\n6,')" \
	"RFC 4180: quotes, newlines, commas, empty string vs null round-trip"
is "$(jsonl_of rfc)" '{"id":1,"text":"line one\nline two"}
{"id":2,"text":"she said \"hi\""}
{"id":3,"text":"a,b"}
{"id":4,"text":"plain"}
{"id":5,"text":""}
{"id":6,"text":null}' "RFC 4180: the JSON lines"
is "$(csv_of crlf)" "$(printf 'id,v\n1,a\n2,"b\r\nc"\n3,d')" "CRLF: lines end in LF, a quoted CRLF kept"
is "$(csv_of bom)" "$(printf 'id,v\n1,a\n2,b')" "UTF-8 BOM dropped from the first column's name"
is "$(schema_of "$(silver p bom)")" "id:INT,v:STRING" "BOM: the column is id"

# --- delimiters -------------------------------------------------------------------------
want=$(printf 'a,b,c\n1,"x,y",2.5\n2,z,3.5')
is "$(csv_of semi)" "$want" "';' sniffed"
is "$(csv_of tab)" "$want" "tab sniffed (.tsv)"
is "$(csv_of pipe)" "$(printf 'a,b,c\n1,x;y,2.5\n2,z,3.5')" "'|' sniffed (.txt)"
is "$(schema_of "$(silver p semi)")" "a:INT,b:STRING,c:DECIMAL" "';': three typed columns"

# --- ragged rows ----------------------------------------------------------------------------
is "$(csv_of ragged)" "$(printf 'a,b,c\n1,2,\n3,4,5\n10,11,12')" \
	"ragged: a short row reads null, a trailing empty field is ignored"
is "$(qfield ragged reason)" "record has 4 fields, the header 3" "a row with an extra value is quarantined with the reason"
is "$(qfield ragged line)" "4" "the quarantine line number is the record's line"
is "$(last_hist "$(silver p ragged)" rows_quarantined)" 1 "history counts it"

# --- empty, header only -------------------------------------------------------------------
is "$(tjobs p.bronze.empty failed)" 0 "an empty file: no failed job"
is "$(csv_of empty | wc -c)" 0 "an empty file: no silver rows"
is "$(ls "$(silver p empty)/_quarantine" | wc -l)" 0 "an empty file: nothing quarantined"
test ! -e "$(silver p empty)/empty.csv"; ok $? "an empty file: no data file, no version"
is "$(last_hist "$(silver p empty)" status)" "empty" "an empty file: its history line says empty"
is "$(last_hist "$(silver p empty)" version)" 0 "an empty file: the table stays at version 0"
is "$(csv_of hdr)" "id,name,amount" "header-only: silver has the header and no row"
is "$(jsonl_of hdr | wc -c)" 0 "header-only: empty JSON lines"
is "$(last_hist "$(silver p hdr)" rows_written)" 0 "header-only: 0 rows written"

printf 'a,b\n1,2\n' > "$B/empty/next.csv"; lwait
is "$(csv_of empty)" "$(printf 'a,b\n1,2')" "a file after the empty one: header and row"
is "$(schema_of "$(silver p empty)")" "a:INT,b:INT" "and its schema"

# --- JSON ------------------------------------------------------------------------------
is "$(csv_of jarr)" "$(printf 'a,b,c\n1,x,\n2,y,true')" "JSON array of objects"
is "$(schema_of "$(silver p jarr)")" "a:INT,b:STRING,c:BOOLEAN" "JSON array: types"
is "$(last_hist "$(silver p jarr)" format)" "json" "history says json"
is "$(jsonl_of jobj)" '{"a":1,"b":"only"}' "one JSON object is one row"
is "$(jsonl_of jl)" '{"a":1,"b":"x"}
{"a":2,"b":null}
{"a":3,"b":"z"}' "JSON lines; key order of the schema, null kept"
is "$(schema_of "$(silver p nested)")" "id:INT,n:STRING,t:STRING" "nested objects and arrays are STRING columns"
is "$(jsonl_of nested)" '{"id":1,"n":"{\"x\":1,\"y\":[1,2]}","t":"[true,null]"}
{"id":2,"n":null,"t":"[]"}' "nested values kept as their JSON text"
is "$(csv_of nested)" "$(printf 'id,n,t\n1,"{""x"":1,""y"":[1,2]}","[true,null]"\n2,,[]')" "nested values in CSV, quoted"

# --- invalid UTF-8 -------------------------------------------------------------------------
is "$(csv_of utf8)" "$(printf 'id,v\n1,good\n3,fine')" "the invalid UTF-8 row is not in silver"
r=$(qfield utf8 reason)
case $r in *UTF-8*|*utf-8*|*utf8*) ok 0 "its quarantine reason names UTF-8 ($r)";;
	*) ok 1 "its quarantine reason names UTF-8"; diag "reason: $r";; esac
is "$(qfield utf8 line)" 3 "and the line number"
is "$(last_hist "$(silver p utf8)" rows_quarantined)" 1 "history: 1 row quarantined"

# --- a binary file -------------------------------------------------------------------------
g=$(silver p garbage)
is "$(tjobs p.bronze.garbage quarantined)" 1 "a binary file: its job is quarantined"
qf=$(ls "$g/_quarantine" 2>/dev/null | grep -v '\.jsonl$' | head -1)
case $qf in *garbage.csv) ok 0 "the file is copied into _quarantine ($qf)";;
	*) ok 1 "the file is copied into _quarantine"; diag "$(ls -la "$g/_quarantine" 2>&1)";; esac
[ -n "$qf" ] && run_ok "the quarantined copy is byte-exact" cmp "$T/garbage.bin" "$g/_quarantine/$qf"
is "$(qfield garbage line)" 0 "a reason line for the batch (line 0)"
r=$(qfield garbage reason); [ -n "$r" ]; ok $? "with a reason ($r)"
is "$(last_hist "$g" status)" quarantined "history: status quarantined"
run_ok "no silver data from it" test ! -e "$g/garbage.csv"
run_ok "the bronze file is untouched" cmp "$T/garbage.bin" "$B/garbage/garbage.csv"

# --- types ---------------------------------------------------------------------------------------
is "$(schema_of "$(silver p types)")" \
	"i:INT,f:FLOAT,d:DECIMAL,b:BOOLEAN,dt:DATE,ts:TIMESTAMP,tstz:TIMESTAMPTZ,s:STRING,zip:STRING,big:DECIMAL" \
	"_schema.json: INT FLOAT DECIMAL BOOLEAN DATE TIMESTAMP TIMESTAMPTZ STRING (leading zeros), DECIMAL (>int64)"
is "$(csv_of types)" "i,f,d,b,dt,ts,tstz,s,zip,big
1,1000,1.50,true,2024-02-29,2024-01-02T03:04:05,2024-01-02T03:04:05Z,hello,00501,123456789012345678901234567890
-2,0.5,0.25,false,1999-12-31,2024-01-02T03:04:05.123,2024-01-02T03:04:05+02:00,world,02134,1
,,,,,,,,," "canonical values (1e3 -> 1000, .5 -> 0.5, FALSE -> false, ' ' -> 'T', scale kept)"
is "$(jsonl_of types | head -1)" '{"i":1,"f":1000,"d":1.50,"b":true,"dt":"2024-02-29","ts":"2024-01-02T03:04:05","tstz":"2024-01-02T03:04:05Z","s":"hello","zip":"00501","big":123456789012345678901234567890}' \
	"JSON lines: numbers and booleans bare, dates and strings quoted"
is "$(jsonl_of types | tail -1)" '{"i":null,"f":null,"d":null,"b":null,"dt":null,"ts":null,"tstz":null,"s":null,"zip":null,"big":null}' \
	"an all-empty row is all null"
python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["version"] == 1, d
for c in d["columns"]:
    assert c["added_in"] == 1 and c["nullable"] is True, c
' "$(silver p types)/_schema.json"
ok $? "_schema.json: version 1, every column added_in 1 and nullable"
for t in rfc crlf semi jarr nested types; do
	python3 -c '
import json, sys
for l in open(sys.argv[1]):
    json.loads(l)
' "$(silver p $t)/$t.jsonl" 2>/dev/null || { ok 1 "$t.jsonl is valid JSON lines"; continue; }
	ok 0 "$t.jsonl is valid JSON lines"
done

# --- a 20 MB field ----------------------------------------------------------------------------
python3 - "$T/long.csv" <<'EOF'
import sys
with open(sys.argv[1], "w") as o:
    o.write("id,v\n1,before\n2,")
    o.write("x" * (20 << 20))
    o.write("\n3,after\n")
EOF
mkdir "$B/long" && cp "$T/long.csv" "$B/long/long.csv"
lwait 60; ok $? "lakefs wait after a 20 MB field"
daemon_alive; ok $? "the daemon still answers after a 20 MB field"
is "$(tjobs p.bronze.long failed)" 0 "its job did not fail"
is "$(csv_of long)" "$(printf 'id,v\n1,before\n3,after')" "the rows around it are kept"
is "$(last_hist "$(silver p long)" rows_quarantined)" 1 "the long row is quarantined"
q=$(qlines long)
[ "${#q}" -lt 10000 ]; ok $? "its quarantine line is cut (${#q} bytes, raw at most 4 KiB)"
r=$(qfield long reason); [ -n "$r" ]; ok $? "with a reason ($r)"
run_ok "ls of the mount still works" ls "$M/p/silver"

lfs_umount "$M"; ok $? "unmount"
done_testing
