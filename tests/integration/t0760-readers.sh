#!/usr/bin/env bash
# t0760-readers: silver read back by other engines: DuckDB (the npm
# package @duckdb/node-api, installed by tools/deps.sh) with read_csv_auto
# and read_json_auto, and Python's csv and json modules; counts, column
# names, sums and values compared with what was landed.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lakelib.sh"

[ -e /dev/fuse ] || skip_all "no /dev/fuse"
[ -x "$BIN/lakefs-mount" ] || skip_all "lakefs-mount not built (run make)"
need_cmd fusermount3 python3

HAVE_DUCK=0
[ -f "$TOP/tests/node_modules/@duckdb/node-api/package.json" ] && command -v node >/dev/null && HAVE_DUCK=1

lake_up r
B=$M/r/bronze
"$BIN/lakefs" props set "$M/r" quiet_ms 100
mkdir "$B/sales"
python3 - "$T/src.csv" <<'EOF'
import csv, random, sys
random.seed(7)
with open(sys.argv[1], "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["id", "customer", "qty", "price", "paid", "day", "note"])
    for i in range(1, 1001):
        w.writerow([i, "cust_%d" % (i % 37), random.randint(0, 50), "%d.%02d" % (random.randint(0, 999), random.randint(0, 99)),
                    random.choice(["true", "false"]), "2024-%02d-%02d" % (i % 12 + 1, i % 28 + 1),
                    random.choice(["", "plain", 'say "hi", ok', "multi\nline"])])
EOF
cp "$T/src.csv" "$B/sales/"
lwait; ok $? "1000 rows landed"
D=$(silver r sales)

# --- Python csv and json ---------------------------------------------------------------
out=$(python3 - "$T/src.csv" "$D/sales.csv" "$D/sales.jsonl" <<'EOF'
import csv, json, sys
from decimal import Decimal
src = list(csv.DictReader(open(sys.argv[1], newline="")))
sil = list(csv.DictReader(open(sys.argv[2], newline="")))
jl = [json.loads(l) for l in open(sys.argv[3])]
errs = []
if len(sil) != 1000 or len(jl) != 1000: errs.append("counts %d %d" % (len(sil), len(jl)))
if list(sil[0].keys()) != list(src[0].keys()): errs.append("csv columns %s" % list(sil[0].keys()))
if list(jl[0].keys()) != list(src[0].keys()): errs.append("jsonl columns %s" % list(jl[0].keys()))
for s, c, j in zip(src, sil, jl):
    # CSV: the same text, except that a null and "" read the same to csv
    for k in s:
        if s[k] != c[k]: errs.append("csv row %s %s: %r != %r" % (s["id"], k, c[k], s[k]))
    want = {"id": int(s["id"]), "customer": s["customer"], "qty": int(s["qty"]),
            "price": Decimal(s["price"]), "paid": s["paid"] == "true", "day": s["day"],
            "note": s["note"] if s["note"] != "" else None}
    got = dict(j); got["price"] = Decimal(str(j["price"])) if j["price"] is not None else None
    if got != want: errs.append("jsonl row %s: %r != %r" % (s["id"], got, want))
print("\n".join(errs[:5]) or "OK")
EOF
)
is "$out" OK "Python csv.DictReader and json.loads per line equal the landed rows"

# --- DuckDB ---------------------------------------------------------------------------------
if [ "$HAVE_DUCK" = 1 ]; then
	cat > "$T/duck.js" <<'EOF'
const { DuckDBInstance } = require(process.env.DUCK_MOD);
(async () => {
  const db = await DuckDBInstance.create(':memory:');
  const c = await db.connect();
  const q = async (s) => (await c.runAndReadAll(s)).getRowObjectsJson();
  const [csvf, jsonf, src] = process.argv.slice(2);
  const out = {};
  for (const [k, f] of [['csv', `read_csv_auto('${csvf}')`], ['json', `read_json_auto('${jsonf}')`],
                        ['src', `read_csv_auto('${src}')`]]) {
    out[k] = (await q(`SELECT count(*)::INT AS n, sum(qty)::BIGINT AS qty, round(sum(price::DOUBLE), 2) AS price,
                         count(*) FILTER (WHERE paid)::INT AS paid, count(note)::INT AS notes,
                         min(day)::VARCHAR AS dmin, max(id)::INT AS maxid FROM ${f}`))[0];
    out[k + '_cols'] = (await q(`SELECT column_name AS c FROM (DESCRIBE SELECT * FROM ${f})`)).map(r => r.c).join(',');
  }
  out.csv_types = (await q(`SELECT column_type AS t FROM (DESCRIBE SELECT * FROM read_csv_auto('${csvf}'))`)).map(r => r.t).join(',');
  out.diff = (await q(`SELECT count(*)::INT AS n FROM (SELECT id, qty, price::DOUBLE, paid, day FROM read_csv_auto('${csvf}')
                     EXCEPT SELECT id, qty, price::DOUBLE, paid, day FROM read_json_auto('${jsonf}'))`))[0].n;
  console.log(JSON.stringify(out));
})().catch(e => { console.log(JSON.stringify({ error: String(e) })); process.exit(1); });
EOF
	res=$(DUCK_MOD="$TOP/tests/node_modules/@duckdb/node-api" timeout 120 node "$T/duck.js" "$D/sales.csv" "$D/sales.jsonl" "$T/src.csv" 2>&1)
	ok $? "DuckDB reads the silver CSV and JSON lines"
	get() { python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(json.dumps(eval(sys.argv[2]), sort_keys=True))' "$res" "$1" 2>&1; }
	is "$(get 'd["csv"]')" "$(get 'd["src"]')" "DuckDB read_csv_auto: count, sums and ranges of silver CSV equal the source"
	is "$(get 'd["json"]')" "$(get 'd["src"]')" "DuckDB read_json_auto: the same of silver JSON lines"
	is "$(get 'd["csv"]["n"]')" 1000 "1000 rows"
	is "$(get 'd["csv_cols"]')" '"id,customer,qty,price,paid,day,note"' "column names (CSV)"
	is "$(get 'd["json_cols"]')" '"id,customer,qty,price,paid,day,note"' "column names (JSON lines)"
	is "$(get 'd["csv_types"]')" '"BIGINT,VARCHAR,BIGINT,DOUBLE,BOOLEAN,DATE,VARCHAR"' "DuckDB infers the silver types from the CSV"
	is "$(get 'd["diff"]')" 0 "CSV and JSON lines hold the same rows"
	[ -n "${res##*error*}" ] || diag "$res"
else
	for i in 1 2 3 4 5 6 7 8; do skip "@duckdb/node-api not installed (run tools/deps.sh)"; done
fi

daemon_alive; ok $? "the daemon still answers"
lfs_umount "$M"; ok $? "unmount"
done_testing
