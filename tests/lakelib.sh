# tests/lakelib.sh — helpers for the lakehouse tests (t07xx; sourced after
# tests/lib.sh; bash).
#
#   lake_up [CAT]        mount $M on $S (a fresh state) and make catalog CAT
#                        (default sales); bails out when the mount fails
#   lwait [SECS]         lakefs wait $M, bounded (default 30 s); its status
#   njobs                the number of job lines in $M/.lakefs/jobs
#   jobs_in STATE        jobs in that state
#   silver CAT TABLE     the path of a silver table
#   last_hist DIR FIELD  a field of the last line of DIR/_history.jsonl
#   schema_of DIR        the columns of DIR/_schema.json as name:TYPE,...
#   errno_of PYEXPR      run a Python statement with os imported; print the
#                        errno name it raised, or OK
#   daemon_alive         the daemon still answers (status readable)
#   wait_until SECS CMD  poll CMD every 0.1 s until it succeeds or SECS pass
#
# Every wait is bounded.

M=$T/mnt
S=$T/state

lake_up() {
	_cat=${1:-sales}
	if ! lfs_mount "$M" "$S"; then
		echo "Bail out! cannot mount lakefs"; exit 1
	fi
	mkdir "$M/$_cat" || { echo "Bail out! cannot make catalog $_cat"; exit 1; }
}
lwait() { timeout $(( ${1:-30} + 10 )) "$BIN/lakefs" wait "$M" --timeout "${1:-30}" >/dev/null 2>&1; }
njobs() { timeout 10 cat "$M/.lakefs/jobs" 2>/dev/null | grep -c '"id"'; }
jobs_in() { timeout 10 cat "$M/.lakefs/jobs" 2>/dev/null | grep -c "\"state\":\"$1\""; }
silver() { echo "$M/$1/silver/$2"; }
last_hist() {
	python3 - "$1/_history.jsonl" "$2" <<'EOF'
import json, sys
try:
    lines = [l for l in open(sys.argv[1]) if l.strip()]
    v = json.loads(lines[-1]).get(sys.argv[2])
    print(json.dumps(v, separators=(",", ":")) if not isinstance(v, str) else v)
except Exception as e:
    print("ERR %s" % e)
EOF
}
schema_of() {
	python3 - "$1/_schema.json" <<'EOF'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
    print(",".join("%s:%s" % (c["name"], c["type"]) for c in d["columns"]))
except Exception as e:
    print("ERR %s" % e)
EOF
}
errno_of() {
	python3 -c '
import os, sys, errno
try:
    exec(sys.argv[1])
    print("OK")
except OSError as e:
    print(errno.errorcode.get(e.errno, e.errno))
' "$1"
}
daemon_alive() { timeout 10 cat "$M/.lakefs/status" >/dev/null 2>&1; }
wait_until() {
	_secs=$1; shift
	_end=$(( $(date +%s) + _secs ))
	while [ "$(date +%s)" -le "$_end" ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}

# tjobs TABLE [STATE]: jobs of the table (CAT.bronze.NAME), in STATE if given
tjobs() {
	timeout 10 cat "$M/.lakefs/jobs" 2>/dev/null | grep "\"table\":\"$1\"" |
		grep -c "\"state\":\"${2:-[a-z]*}\""
}
# rows FILE: data lines of a silver CSV (header excluded; 0 when absent)
rows() { if [ -f "$1" ]; then echo $(( $(wc -l < "$1") - 1 )); else echo 0; fi; }
# gen_csv FILE FIRST N: header id,name,amount and N rows from id FIRST
gen_csv() {
	python3 - "$@" <<'EOF2'
import sys
f, first, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(f, "w") as o:
    o.write("id,name,amount\n")
    for i in range(first, first + n):
        o.write("%d,name_%d,%d.5\n" % (i, i, i))
EOF2
}
# ids FILE: the sorted first column of a CSV, header excluded, one line
ids() { tail -n +2 "$1" 2>/dev/null | cut -d, -f1 | sort -n | tr '\n' ' '; }
