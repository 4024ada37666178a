#!/usr/bin/env bash
# t0800-gold.sh — gold tables defined in SQL, through the real mount.
#
#  - a definition written with cat >, cp, tee, truncate-and-write and an
#    editor-style rename installs a table whose CSV, JSON lines, schema and
#    history are right;
#  - a bad definition (syntax, unknown table or column, a write, two
#    statements, a cycle) fails close() with EINVAL, writes _error with the
#    line and column, and leaves the installed table as it was;
#  - a new silver version refreshes its dependents once per burst, gold
#    over gold follows; an open reader keeps its version;
#  - schedules (manual, every, cron checked), lakefs run, gold list/check,
#    bronze.T raw rows, another catalog's silver, rm NAME.sql drops;
#  - a remount keeps everything and refreshes go on.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lakelib.sh"

[ -e /dev/fuse ] || skip_all "no /dev/fuse"
need_cmd fusermount3 python3 setfattr getfattr

lake_up sales
B=$M/sales/bronze
G=$M/sales/gold
L=$BIN/lakefs
mkdir "$B/orders" && setfattr -n user.lakefs.quiet_ms -v 200 "$B/orders"
printf 'id,day,amount\n1,2026-11-01,10.5\n2,2026-11-01,4.5\n3,2026-11-02,7\n' > "$B/orders/a.csv"
lwait; ok $? "a silver table to read"

# --- definitions that install -----------------------------------------------------------
cat > "$G/daily.sql" <<'EOF'
-- revenue per day
SELECT day, count(*) AS n, sum(amount) AS revenue
FROM silver.orders
GROUP BY day
ORDER BY day
EOF
ok $? "cat > gold/daily.sql: close() succeeds"
lwait; ok $? "its refresh ran"
is "$(cat "$G/daily/daily.csv")" "$(printf 'day,n,revenue\n2026-11-01,2,15\n2026-11-02,1,7')" \
	"daily.csv: header and rows"
is "$(head -1 "$G/daily/daily.jsonl")" '{"day":"2026-11-01","n":2,"revenue":15}' \
	"daily.jsonl: typed JSON"
is "$(schema_of "$G/daily")" "day:STRING,n:INT,revenue:FLOAT" "_schema.json: types from the values"
is "$(last_hist "$G/daily" version)" 1 "_history.jsonl: version 1"
is "$(last_hist "$G/daily" rows)" 2 "_history.jsonl: 2 rows"
last_hist "$G/daily" inputs | grep -q '"silver.orders"'; ok $? "_history.jsonl: the inputs"
test ! -e "$G/daily/_error"; ok $? "no _error"

printf 'SELECT count(*) AS orders FROM silver.orders\n' > "$T/count.sql"
cp "$T/count.sql" "$G/count.sql"; ok $? "cp defines a table"
printf 'SELECT max(amount) AS top FROM silver.orders\n' | tee "$G/top.sql" >/dev/null
ok $? "tee defines a table"
printf 'SELECT min(amount) AS low FROM silver.orders\n' > "$G/.low.sql.swp"
mv "$G/.low.sql.swp" "$G/low.sql"; ok $? "an editor's save by rename"
lwait
is "$(cat "$G/count/count.csv")" "$(printf 'orders\n3')" "count.csv"
is "$(cat "$G/top/top.csv")" "$(printf 'top\n10.5')" "top.csv"
is "$(cat "$G/low/low.csv")" "$(printf 'low\n4.5')" "low.csv (installed by the rename)"
test ! -e "$G/.low.sql.swp" && test ! -e "$G/.low"; ok $? "the temporary dot name defined nothing"

# --- bad definitions -------------------------------------------------------------------
before=$(cat "$G/daily/daily.csv")
bad() {  # bad NAME DESCRIPTION SQL: close() must fail with EINVAL
	out=$(python3 - "$G/$1.sql" "$3" <<'EOF' 2>&1
import errno, sys
f = open(sys.argv[1], "w")
f.write(sys.argv[2])
try:
    f.close()
    print("OK")
except OSError as e:
    print(errno.errorcode[e.errno])
EOF
)
	is "$out" EINVAL "$2: close() fails with EINVAL"
}
bad daily "a syntax error" "$(printf 'SELECT day,\n  sum(amount AS revenue\nFROM silver.orders')"
grep -q 'line [0-9]*' "$G/daily/_error"; ok $? "_error says the line ($(cat "$G/daily/_error" 2>/dev/null))"
is "$(cat "$G/daily/daily.csv")" "$before" "the installed table is untouched"
bad daily "an unknown table" "SELECT * FROM silver.nope"
grep -qi 'nope' "$G/daily/_error"; ok $? "_error names the table"
bad daily "an unknown column" "SELECT nope FROM silver.orders"
grep -qi 'nope' "$G/daily/_error"; ok $? "_error names the column"
bad daily "a write" "DELETE FROM silver.orders"
bad daily "two statements" "SELECT 1 AS a; SELECT 2 AS b"
bad daily "a cycle through gold" "SELECT * FROM gold.daily"
bad newbad "a bad first definition" "SELEC 1"
test -s "$G/newbad/_error"; ok $? "a bad first definition writes newbad/_error"
is "$(cat "$G/daily/daily.csv")" "$before" "still untouched after every refusal"
cat > "$G/daily.sql" <<'EOF'
SELECT day, count(*) AS n, sum(amount) AS revenue FROM silver.orders GROUP BY day ORDER BY day
EOF
ok $? "a good definition again"
lwait
test ! -e "$G/daily/_error"; ok $? "_error is gone"
: > "$G/empty.sql"; ok $? "an empty file is no definition and no error"
test ! -e "$G/empty"; ok $? "no table for it"
mkdir "$G/dir" 2>/dev/null; ok $([ $? -ne 0 ] && echo 0 || echo 1) "mkdir in gold is refused"
touch "$G/daily/x" 2>/dev/null; ok $([ $? -ne 0 ] && echo 0 || echo 1) "gold output is read-only"

# --- refresh on change, gold over gold, snapshots --------------------------------------
cat > "$G/best.sql" <<'EOF'
SELECT day FROM gold.daily ORDER BY revenue DESC LIMIT 1
EOF
ok $? "gold over gold"
lwait
is "$(tail -1 "$G/best/best.csv")" "2026-11-01" "best.csv"
exec 7<"$G/daily/daily.csv"
refreshes() { python3 -c 'import json,sys; print(sum(1 for j in map(json.loads, open(sys.argv[1])) if j["kind"] == "refresh" and j["table"] == sys.argv[2]))' "$M/.lakefs/jobs" "$1"; }
r0=$(refreshes sales.gold.daily)
for i in $(seq 1 50); do printf 'id,day,amount\n%d,2026-11-03,100\n' $((10 + i)) > "$B/orders/burst$i.csv"; done
lwait 90; ok $? "a burst of fifty batches"
is "$(last_hist "$(silver sales orders)" version)" 51 "silver took fifty versions"
nr=$(( $(refreshes sales.gold.daily) - r0 ))
ok $([ "$nr" -ge 1 ] && [ "$nr" -le 3 ] && echo 0 || echo 1) "daily refreshed $nr times for the burst (1 to 3)"
is "$(tail -1 "$G/daily/daily.csv")" "2026-11-03,50,5000" "daily.csv has the new day"
is "$(tail -1 "$G/best/best.csv")" "2026-11-03" "best.csv followed (gold over gold)"
is "$(cat <&7)" "$before" "a reader opened before the refresh reads the old version"
exec 7<&-

# --- bronze raw rows, another catalog ----------------------------------------------------
printf 'SELECT count(*) AS n, min(typeof(amount)) AS t FROM bronze.orders\n' > "$G/raw.sql"
lwait
is "$(tail -1 "$G/raw/raw.csv")" "53,text" "bronze.orders: every landed row, as text"
mkdir "$M/crm" && mkdir "$M/crm/bronze/accounts"
printf 'id,name\n1,acme\n2,globex\n' > "$M/crm/bronze/accounts/a.csv"
lwait
printf 'SELECT count(*) AS n FROM crm.silver.accounts\n' > "$G/accounts.sql"; ok $? "another catalog's silver"
lwait
is "$(tail -1 "$G/accounts/accounts.csv")" "2" "crm.silver.accounts read from sales"

# --- schedules and lakefs run ------------------------------------------------------------
run_fail "a bad schedule is refused" setfattr -n user.lakefs.schedule -v "every 0m" "$G/count"
run_fail "a bad cron is refused" setfattr -n user.lakefs.schedule -v "61 * * * *" "$G/count"
run_ok "a cron schedule is accepted" setfattr -n user.lakefs.schedule -v "*/5 * * * 1-5" "$G/count"
run_ok "schedule manual" setfattr -n user.lakefs.schedule -v manual "$G/count"
v0=$(last_hist "$G/count" version)
printf 'id,day,amount\n50,2026-11-04,1\n' > "$B/orders/late.csv"; lwait
is "$(last_hist "$G/count" version)" "$v0" "manual: a new batch does not refresh"
out=$(timeout 60 "$L" run "$G/count" --timeout 50 2>&1); ok $? "lakefs run refreshes it: $out"
is "$(tail -1 "$G/count/count.csv")" "54" "and count.csv has the new row"
run_ok "schedule every 1s" setfattr -n user.lakefs.schedule -v "every 1s" "$G/top"
v0=$(last_hist "$G/top" version)
top_at_least() { [ "$(last_hist "$G/top" version)" -ge "$1" ]; }
wait_until 10 top_at_least $((v0 + 2)); ok $? "every 1s refreshes on its own"
run_ok "back to on-change" setfattr -n user.lakefs.schedule -v on-change "$G/top"

# --- tools -------------------------------------------------------------------------------
out=$(timeout 20 "$L" gold list "$M/sales"); ok $? "lakefs gold list"
printf '%s\n' "$out" | grep -q '^daily '; ok $? "lists daily ($(printf '%s\n' "$out" | grep '^daily '))"
printf 'SELECT day FROM silver.orders\n' > "$T/ok.sql"
run_ok "lakefs gold check: a good file" timeout 20 "$L" gold check "$T/ok.sql" "$M/sales"
printf 'SELECT day\nFROM silver.ordrs\n' > "$T/bad.sql"
out=$(timeout 20 "$L" gold check "$T/bad.sql" "$M/sales" 2>&1); rc=$?
is "$rc" 1 "lakefs gold check: a bad file exits 1"
printf '%s\n' "$out" | grep -q 'ordrs'; ok $? "and says why: $out"
test ! -e "$G/bad" && ! ls -a "$G" | grep -q '^\.check'; ok $? "check installs nothing and leaves nothing"

# --- the same query in DuckDB over the files landed in bronze ----------------------------
if [ -d "$TOP/tests/node_modules/@duckdb/node-api" ] && command -v node >/dev/null; then
	ref=$(cd "$TOP/tests" && timeout 60 node bench/duckdb-query.mjs "$B/orders/*.csv" \
		"SELECT CAST(day AS VARCHAR) AS day, count(*) AS n, sum(amount) AS revenue FROM orders GROUP BY day ORDER BY day" --rows)
	same=$(python3 - "$G/daily/daily.csv" "$ref" <<'EOF'
import csv, sys
ours = [r for r in csv.reader(open(sys.argv[1]))][1:]
theirs = [l.split(",") for l in sys.argv[2].splitlines() if l]
ok = len(ours) == len(theirs) and all(
    a[0] == b[0] and int(a[1]) == int(b[1]) and abs(float(a[2]) - float(b[2])) < 1e-9
    for a, b in zip(ours, theirs))
print("same" if ok else "differ: %r vs %r" % (ours, theirs))
EOF
)
	is "$same" same "daily.csv equals DuckDB's result over the bronze CSVs"
else
	echo "ok $((_tap_n += 1)) # skip DuckDB (@duckdb/node-api) not installed"
fi

# --- drop, remount ------------------------------------------------------------------------
rm "$G/low.sql"; ok $? "rm gold/low.sql"
wait_until 10 test ! -e "$G/low"; ok $? "drops the table"
lfs_umount "$M"; ok $? "unmount"
lfs_mount "$M" "$S" || { echo "Bail out! remount"; exit 1; }
is "$(tail -1 "$G/daily/daily.csv")" "2026-11-04,1,1" "after a remount: daily.csv is there"
printf 'id,day,amount\n60,2026-11-05,2\n' > "$B/orders/after.csv"; lwait 30
is "$(tail -1 "$G/daily/daily.csv")" "2026-11-05,1,2" "and refreshes go on"
test ! -e "$G/low"; ok $? "the dropped table stays dropped"

# --- kill -9 during a refresh: version N stays, the refresh runs again --------------------
running_slow() { python3 -c 'import json,sys; sys.exit(not any(j["table"] == "sales.gold.slow" and j["state"] == "running" for j in map(json.loads, open(sys.argv[1]))))' "$M/.lakefs/jobs"; }
printf 'SELECT 1 AS x\n' > "$G/slow.sql"; lwait
is "$(cat "$G/slow/slow.csv")" "$(printf 'x\n1')" "slow: version 1"
cat > "$G/slow.sql" <<'EOF'
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 40000000)
SELECT count(*) AS x FROM c
EOF
wait_until 20 running_slow; ok $? "a slow refresh is running"
pid=$(pgrep -f "lakefs-mount --state $S" | head -1)
kill -9 "$pid"; ok $? "kill -9 the daemon during it"
wait_until 10 sh -c "! kill -0 $pid 2>/dev/null"
fusermount3 -u "$M" 2>/dev/null || umount -l "$M"
lfs_mount "$M" "$S" || { echo "Bail out! remount after kill"; exit 1; }
is "$(cat "$G/slow/slow.csv")" "$(printf 'x\n1')" "after the crash: version 1 is what is visible"
lwait 120; ok $? "the interrupted refresh ran again"
is "$(cat "$G/slow/slow.csv")" "$(printf 'x\n40000000')" "and published version 2"

# --- limits: over the time or memory limit the refresh fails, N stays --------------------
lfs_umount "$M"
lfs_mount "$M" "$S" -o query_timeout=0.5,query_memory=1M || { echo "Bail out! remount"; exit 1; }
before=$(cat "$G/count/count.csv")
cat > "$G/count.sql" <<'EOF'
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000)
SELECT count(*) AS orders FROM c
EOF
lwait 30
grep -qi 'time' "$G/count/_error"; ok $? "over the time limit: _error says so ($(cat "$G/count/_error" 2>/dev/null))"
is "$(cat "$G/count/count.csv")" "$before" "and the previous version stays"
is "$(last_hist "$G/count" status)" failed "the history records the failure"
printf "SELECT length(hex(zeroblob(2000000))) AS orders FROM silver.orders LIMIT 1\n" > "$G/count.sql"
lwait 30
test -s "$G/count/_error" && ! grep -qi 'time' "$G/count/_error"; ok $? "over the memory limit: $(cat "$G/count/_error" 2>/dev/null)"
is "$(cat "$G/count/count.csv")" "$before" "and the previous version stays"
lfs_umount "$M"
done_testing
