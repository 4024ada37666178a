#!/usr/bin/env bash
# t0900-access.sh — access per catalog, schema, table and volume (issue 7),
# through the real mount, with ordinary tools, acting as other users with
# setpriv. The test makes its own groups (lktPID{ana,eng,nog}) and users
# (lktPID{ann,eve,nob,rev}) and removes them in its EXIT trap, with the
# background processes it started; every wait is bounded.
#
#   - grants through setfattr and `lakefs grant`, shown by getfattr
#     user.lakefs.grants (top-down, direct/inherited, OWNER, ADMIN) and
#     `lakefs grants [--for]`; bad text, unknown names, non-securables:
#     EINVAL; privileges input case-insensitive, shown uppercase;
#   - an analyst (group ana: USE on sales, USE,READ on sales/gold, READ on
#     the volume sales/files/pub) reads gold with cat, cp and DuckDB, cannot
#     list a bronze table nor read its files, cannot write anywhere;
#   - an engineer (group eng: USE on sales, WRITE on sales/bronze) lands a
#     file with cp that promotes to silver, cannot read bronze or silver,
#     cannot make a table, cannot grant (EACCES, lakefs grant exits 1); with
#     MANAGE on a volume it may grant there; what it creates it owns;
#   - a user in no group sees no catalog and cannot list one;
#   - a grant on a catalog holds for a schema, volume and table made later;
#   - ls -l, stat and test -r/-w/-x tell each user the truth;
#   - symlinks, hard links and renames do not escape the checks;
#   - .lakefs/audit (admin only, 0400), jobs (filtered), sync and verify
#     (admin only), status (everyone); xattrs: grants and properties need
#     MANAGE, privileges.uid.N needs MANAGE unless N is the caller;
#   - revoke while the user holds an open fd and a cwd inside: the next
#     open, a read of a new file and a readdir fail;
#   - the audit records grant changes and daemon-side denials in the SPEC's
#     format, and rotates at 4 MiB (audit.log.1, then audit.log);
#   - grants survive a remount, and a restore from the bucket (s3rver).
#
# DuckDB runs as the analyst: the @duckdb packages are used in place when
# the analyst can read them, else copied into the (world-readable) test dir.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../s3lib.sh"
. "$(dirname "$0")/../lakelib.sh"

[ -e /dev/fuse ] || skip_all "no /dev/fuse"
[ -x "$BIN/lakefs-mount" ] || skip_all "lakefs-mount not built (run make)"
need_root
need_cmd fusermount3 python3 setfattr getfattr setpriv groupadd useradd userdel groupdel getent

# --- users and groups, removed by the trap ---------------------------------------------------
P=lkt$$
GN_ANA=${P}ana GN_ENG=${P}eng GN_NOG=${P}nog
UN_ANA=${P}ann UN_ENG=${P}eve UN_NOB=${P}nob UN_REV=${P}rev
_acc_groups="" _acc_users="" _acc_bg=""
acc_cleanup() {
	for p in $_acc_bg; do kill "$p" 2>/dev/null; done
	for p in $_acc_bg; do
		for _ in $(seq 1 30); do pid_alive "$p" || break; sleep 0.1; done
		kill -9 "$p" 2>/dev/null
	done
	for u in $_acc_users; do userdel -f "$u" >/dev/null 2>&1; done
	for g in $_acc_groups; do groupdel "$g" >/dev/null 2>&1; done
}
trap 'acc_cleanup; s3_stop; lfs_cleanup' EXIT

for g in $GN_ANA $GN_ENG $GN_NOG; do
	groupadd "$g" || { echo "Bail out! groupadd $g failed"; exit 1; }
	_acc_groups="$_acc_groups $g"
done
mkuser() {  # mkuser NAME [SUPPLEMENTARY]: primary group GN_NOG (no grants)
	useradd -M -N -d /nonexistent -s /usr/sbin/nologin -g "$GN_NOG" ${2:+-G "$2"} "$1" ||
		{ echo "Bail out! useradd $1 failed"; exit 1; }
	_acc_users="$_acc_users $1"
}
mkuser "$UN_ANA" "$GN_ANA"
mkuser "$UN_ENG" "$GN_ENG"
mkuser "$UN_NOB"
mkuser "$UN_REV"
gid_of() { getent group "$1" | cut -d: -f3; }
G_ANA=$(gid_of "$GN_ANA") G_ENG=$(gid_of "$GN_ENG") G_NOG=$(gid_of "$GN_NOG")
U_ANA=$(id -u "$UN_ANA") U_ENG=$(id -u "$UN_ENG") U_NOB=$(id -u "$UN_NOB") U_REV=$(id -u "$UN_REV")
diag "users: ann=$U_ANA eve=$U_ENG nob=$U_NOB rev=$U_REV; groups: ana=$G_ANA eng=$G_ENG nog=$G_NOG"

# the test dir is 0700 (mktemp): other users must reach the mount in it
chmod 755 "$T"
mkdir -p "$T/home" && chmod 1777 "$T/home"

# asu WHO CMD...: run CMD as ann (analyst), eve (engineer), nob (no group)
# or rev (a user grant only), with a bounded time and HOME in the test dir
asu() {
	_w=$1; shift
	case $_w in
	ann) _ids=(--reuid="$U_ANA" --regid="$G_NOG" --groups="$G_ANA") ;;
	eve) _ids=(--reuid="$U_ENG" --regid="$G_NOG" --groups="$G_ENG") ;;
	nob) _ids=(--reuid="$U_NOB" --regid="$G_NOG" --clear-groups) ;;
	rev) _ids=(--reuid="$U_REV" --regid="$G_NOG" --clear-groups) ;;
	*) echo "asu: unknown user $_w" >&2; return 2 ;;
	esac
	(cd / && timeout 60 setpriv "${_ids[@]}" env HOME="$T/home" PATH="$PATH" LC_ALL=C "$@")
}
asu nob test -x "$T" ||
	skip_all "other users cannot reach $T (a parent of TMPDIR is closed to them)"

# what a python3 os.* call gets as an errno name (or OK); ops in op.py
cat > "$T/op.py" <<'EOF'
import errno, os, sys
op, p, a = sys.argv[1], sys.argv[2], sys.argv[3:]
try:
    if op == "read":
        with open(p, "rb") as f: f.read()
    elif op == "create": os.close(os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    elif op == "append":
        fd = os.open(p, os.O_WRONLY | os.O_APPEND); os.write(fd, b"x\n"); os.close(fd)
    elif op == "trunc": os.truncate(p, 0)
    elif op == "mkdir": os.mkdir(p)
    elif op == "rmdir": os.rmdir(p)
    elif op == "unlink": os.unlink(p)
    elif op == "list": os.listdir(p)
    elif op == "link": os.link(p, a[0])
    elif op == "rename": os.rename(p, a[0])
    elif op == "symlink": os.symlink(a[0], p)
    elif op == "stat": os.stat(p)
    elif op == "getx": os.getxattr(p, a[0])
    elif op == "setx": os.setxattr(p, a[0], a[1].encode())
    else: sys.exit("unknown op " + op)
    print("OK")
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))
EOF
chmod 644 "$T/op.py"
# uerr WHO OP PATH [ARG...]: the errno name the call gets as WHO (root: as root)
uerr() {
	_w=$1; shift
	if [ "$_w" = root ]; then timeout 60 python3 "$T/op.py" "$@" 2>&1
	else asu "$_w" python3 "$T/op.py" "$@" 2>&1; fi
}
# eis DESCRIPTION WANT WHO OP PATH [ARG...]: WANT is one errno name or a|b
eis() {
	_d=$1 _want=$2; shift 2
	_got=$(uerr "$@")
	case "|$_want|" in
	*"|$_got|"*) ok 0 "$_d" ;;
	*) ok 1 "$_d"; diag "got:  '$_got'"; diag "want: '$_want'" ;;
	esac
}
# ufails DESCRIPTION WHO CMD...: CMD as WHO fails, and says so with "Permission denied"
ufails() {
	_d=$1 _w=$2; shift 2
	_out=$(asu "$_w" "$@" 2>&1); _rc=$?
	case $_rc:$_out in
	0:*|124:*) ok 1 "$_d"; diag "exit $_rc: $_out (want Permission denied)" ;;
	*"Permission denied"*) ok 0 "$_d" ;;
	*) ok 1 "$_d"; diag "exit $_rc: $_out (want Permission denied)" ;;
	esac
}
# uok DESCRIPTION WHO CMD...: CMD as WHO succeeds
uok() { _d=$1; shift; run_ok "$_d" asu "$@"; }
# tests as a user: utrue/ufalse DESCRIPTION WHO TEST-ARGS...
utrue()  { _d=$1 _w=$2; shift 2; asu "$_w" test "$@"; ok $? "$_d"; }
ufalse() { _d=$1 _w=$2; shift 2; asu "$_w" test "$@"; ok $([ $? -eq 1 ] && echo 0 || echo 1) "$_d"; }
gx() {  # gx NAME PATH: an xattr's value, as root
	timeout 30 getfattr --absolute-names --only-values -n "$1" "$2" 2>&1
}
ugx() { _w=$1; shift; asu "$_w" getfattr --absolute-names --only-values -n "$1" "$2" 2>&1; }
# upriv WHO PATH: WHO's privileges on PATH asked of the mount root
# (user.lakefs.privileges:/PATH), which answers where the kernel will not
# pass a getxattr on PATH itself (a securable WHO may not list)
upriv() { asu "$1" getfattr --absolute-names --only-values -n "user.lakefs.privileges:${2#$M}" "$M" 2>&1; }
grant()  { timeout 30 setfattr -n user.lakefs.grant -v "$1" "$2"; }
revoke() { timeout 30 setfattr -n user.lakefs.revoke -v "$1" "$2"; }
has_line() {  # has_line DESCRIPTION TEXT LINE: LINE is one of TEXT's lines, exactly
	if printf '%s\n' "$2" | grep -qxF -- "$3"; then ok 0 "$1"
	else ok 1 "$1"; diag "no line '$3' in:"; diag "$2"; fi
}
lsq() { asu "$1" ls "$2" 2>&1; }
TAB=$(printf '\t')
L=$BIN/lakefs

# --- the lake ---------------------------------------------------------------------------------
lake_up sales
C=$M/sales
ok 0 "mounted as root (allow_other), catalog sales"
mkdir "$C/bronze/orders" && setfattr -n user.lakefs.quiet_ms -v 200 "$C/bronze/orders"
printf 'id,day,amount\n1,2026-11-01,10.5\n2,2026-11-01,4.5\n3,2026-11-02,7\n' > "$C/bronze/orders/a.csv"
lwait 60; ok $? "bronze orders landed as root"
printf 'SELECT day, count(*) AS n, sum(amount) AS revenue\nFROM silver.orders\nGROUP BY day\nORDER BY day\n' \
	> "$C/gold/daily.sql"
lwait 60; ok $? "gold table daily refreshed"
GOLD=$C/gold/daily/daily.csv
is "$(cat "$GOLD" 2>&1)" "$(printf 'day,n,revenue\n2026-11-01,2,15\n2026-11-02,1,7')" "gold daily.csv as root"
mkdir -p "$C/files/pub/docs" "$C/files/drop" "$C/files/eng" "$C/lab"
PUB=$C/files/pub
echo "public readme" > "$PUB/readme"
echo "private" > "$PUB/private" && chmod 600 "$PUB/private"
echo "open to all by mode" > "$PUB/open.txt" && chmod 666 "$PUB/open.txt"
echo "deep doc" > "$PUB/docs/d.txt"
echo "engineering" > "$C/files/eng/e.txt"
ln -s "$C/bronze/orders/a.csv" "$PUB/tobronze"
ln -s ../../bronze/orders/a.csv "$PUB/relbronze"
ln -s ../../silver/orders/orders.csv "$PUB/tosilver"
ln -s readme "$PUB/toreadme"
mkdir -p "$M/secret/files/v" && echo "top secret" > "$M/secret/files/v/x"
mkdir -p "$M/ops/files/logs/d"
for f in a b; do printf 'log %s line\n' "$f" > "$M/ops/files/logs/$f"; done
echo inner > "$M/ops/files/logs/d/inner"
mkdir "$M/mkt"
ok 0 "volumes, files and symlinks made as root"

# --- grants -------------------------------------------------------------------------------------
grant "USE group:$GN_ANA" "$C"; ok $? "setfattr grant USE to group:$GN_ANA on sales"
out=$(timeout 30 "$L" grant USE,READ ON "$C/gold" TO "group:$GN_ANA" 2>&1)
ok $? "lakefs grant USE,READ ON sales/gold TO group:$GN_ANA${out:+: $out}"
grant "read group:$GN_ANA" "$PUB"; ok $? "grant in lower case: 'read group:$GN_ANA' on sales/files/pub"
grant "USE gid:$G_ENG" "$C"; ok $? "grant USE to gid:$G_ENG (a number) on sales"
grant "WRITE group:$GN_ENG" "$C/bronze"; ok $? "grant WRITE to group:$GN_ENG on sales/bronze"
grant "READ,WRITE group:$GN_ENG" "$C/files/drop"; ok $? "grant READ,WRITE on sales/files/drop"
grant "ALL user:$UN_ENG" "$C/files/eng"; ok $? "grant ALL to user:$UN_ENG on sales/files/eng"
grant "MANAGE user:$UN_ENG" "$C/lab"; ok $? "grant MANAGE to user:$UN_ENG on the volume schema sales/lab"
grant "USE,READ group:$GN_ANA" "$M/mkt"; ok $? "grant USE,READ on the empty catalog mkt"
out=$(timeout 30 "$L" grant USE,READ ON "$M/ops" TO "user:$UN_REV" 2>&1)
ok $? "lakefs grant USE,READ ON ops TO user:$UN_REV${out:+: $out}"

# --- what getfattr and lakefs grants show -------------------------------------------------------------
GG=$(gx user.lakefs.grants "$C/gold")
has_line "grants of sales/gold: the direct grant" "$GG" "/sales/gold${TAB}group:$GN_ANA${TAB}USE,READ${TAB}direct"
has_line "grants of sales/gold: USE on sales, inherited" "$GG" "/sales${TAB}group:$GN_ANA${TAB}USE${TAB}inherited"
has_line "grants of sales/gold: gid:$G_ENG is shown as group:$GN_ENG" "$GG" \
	"/sales${TAB}group:$GN_ENG${TAB}USE${TAB}inherited"
printf '%s\n' "$GG" | grep -qE "^/${TAB}(user:root|uid:0)${TAB}ADMIN${TAB}inherited\$"
ok $? "grants of sales/gold: the admin on /"
is "$(printf '%s\n' "$GG" | cut -f1 | uniq | tr '\n' ' ')" "/ /sales /sales/gold " "grants of sales/gold: top-down, root to PATH"
bad=$(printf '%s\n' "$GG" | grep -vcE "^/[^${TAB}]*${TAB}(user|uid|group|gid):[^${TAB}]+${TAB}(OWNER|ADMIN|(USE|READ|WRITE|MANAGE)(,(USE|READ|WRITE|MANAGE))*)${TAB}(direct|inherited)\$|^/[^${TAB}]*${TAB}everyone${TAB}")
is "$bad" 0 "every line is SECURABLE TAB PRINCIPAL TAB PRIVILEGES TAB direct|inherited"
[ "$bad" = 0 ] || diag "$GG"
has_line "lower-case input is shown upper-case" "$(gx user.lakefs.grants "$PUB")" \
	"/sales/files/pub${TAB}group:$GN_ANA${TAB}READ${TAB}direct"
has_line "ALL is shown as USE,READ,WRITE,MANAGE" "$(gx user.lakefs.grants "$C/files/eng")" \
	"/sales/files/eng${TAB}user:$UN_ENG${TAB}USE,READ,WRITE,MANAGE${TAB}direct"
NOPW=3999999; while getent passwd "$NOPW" >/dev/null; do NOPW=$((NOPW + 1)); done
grant "READ uid:$NOPW" "$PUB"
has_line "a uid without a passwd entry is shown as uid:$NOPW" "$(gx user.lakefs.grants "$PUB")" \
	"/sales/files/pub${TAB}uid:$NOPW${TAB}READ${TAB}direct"
revoke "READ uid:$NOPW" "$PUB"
gx user.lakefs.grants "$PUB" | grep -q "uid:$NOPW"; ok $([ $? -eq 1 ] && echo 0 || echo 1) "and revoked again"
before=$(gx user.lakefs.grants "$C/gold")
revoke "WRITE group:$GN_ANA" "$C/gold"; ok $? "revoking what is not granted succeeds"
is "$(gx user.lakefs.grants "$C/gold")" "$before" "and changes nothing"
eis "grant 'FLY group:..': EINVAL" EINVAL root setx "$C/gold" user.lakefs.grant "FLY group:$GN_ANA"
eis "grant to an unknown group: EINVAL" EINVAL root setx "$C/gold" user.lakefs.grant "READ group:${P}nope"
eis "grant to an unknown user: EINVAL" EINVAL root setx "$C/gold" user.lakefs.grant "READ user:${P}nope"
eis "grant with no principal: EINVAL" EINVAL root setx "$C/gold" user.lakefs.grant "READ"
eis "grant on a file in a volume (not a securable): EINVAL" EINVAL root setx "$PUB/readme" user.lakefs.grant "READ group:$GN_ANA"
eis "grant on a directory in a volume (not a securable): EINVAL" EINVAL root setx "$PUB/docs" user.lakefs.grant "READ group:$GN_ANA"
is "$(gx user.lakefs.grants "$C/gold")" "$before" "the refused grants changed nothing"

out=$(timeout 30 "$L" grants "$C/gold" 2>&1); rc=$?
ok $rc "lakefs grants sales/gold"
printf '%s\n' "$out" | head -1 | grep -qE '^SECURABLE +PRINCIPAL +PRIVILEGES +FROM *$'
ok $? "lakefs grants: the header SECURABLE PRINCIPAL PRIVILEGES FROM"
printf '%s\n' "$out" | awk -v g="group:$GN_ANA" '$1 == "/sales/gold" && $2 == g && $3 == "USE,READ" && $4 == "direct" { f = 1 } END { exit !f }'
ok $? "lakefs grants: the row of the direct grant" || diag "$out"
out=$(timeout 30 "$L" grants "$C/gold" --for "$UN_ANA" 2>&1)
is "$(printf '%s\n' "$out" | tail -1)" "effective for $UN_ANA: USE,READ" "lakefs grants --for $UN_ANA (by name)"
out=$(timeout 30 "$L" grants "$C/gold" --for "$U_ENG" 2>&1)
printf '%s\n' "$out" | tail -1 | grep -qxE "effective for ($U_ENG|$UN_ENG): USE"
ok $? "lakefs grants --for $U_ENG (by number): USE inherited, no READ" || diag "$out"
timeout 30 "$L" grant READ "$C/gold" >/dev/null 2>&1
is $? 2 "lakefs grant without ON/TO: a usage error, exit 2"

# --- the analyst ----------------------------------------------------------------------------------
is "$(lsq ann "$M")" "$(printf 'mkt\nsales')" "analyst: ls of the root shows mkt and sales only"
is "$(asu ann cat "$GOLD" 2>&1)" "$(cat "$GOLD")" "analyst: cat of a gold file"
uok "analyst: cp of a gold file out of the lake" ann cp "$GOLD" "$T/home/ann-daily.csv"
run_ok "the copy is identical" cmp "$GOLD" "$T/home/ann-daily.csv"
is "$(asu ann ls "$C/gold/daily" 2>&1 | tr '\n' ' ')" "$(LC_ALL=C ls "$C/gold/daily" | tr '\n' ' ')" \
	"analyst: ls of the gold table lists what root sees"
is "$(asu ann cat "$PUB/readme" 2>&1)" "public readme" "analyst: cat of a file in the readable volume"
is "$(asu ann cat "$PUB/docs/d.txt" 2>&1)" "deep doc" "analyst: and in a directory below it"
# DuckDB
DUCK=$TOP/tests/node_modules/@duckdb/node-api
if [ -f "$DUCK/package.json" ] && command -v node >/dev/null; then
	if ! asu ann test -r "$TOP/tests/node_modules/@duckdb/node-bindings-linux-x64/duckdb.node" ||
	   ! asu ann test -r "$DUCK/package.json"; then
		mkdir -p "$T/nm/node_modules" &&
			cp -r "$TOP/tests/node_modules/@duckdb" "$TOP/tests/node_modules/detect-libc" "$T/nm/node_modules/" &&
			chmod -R a+rX "$T/nm"
		DUCK=$T/nm/node_modules/@duckdb/node-api
		diag "DuckDB copied to $T/nm: $TOP/tests/node_modules is not readable by uid $U_ANA"
	fi
	cat > "$T/duck.js" <<'EOF'
const { DuckDBInstance } = require(process.env.DUCK_MOD);
(async () => {
  const db = await DuckDBInstance.create(':memory:');
  const c = await db.connect();
  const [gold, bronze] = process.argv.slice(2);
  const r = (await c.runAndReadAll(`SELECT count(*)::INT AS n, sum(revenue)::DOUBLE AS rev
                                    FROM read_csv_auto('${gold}')`)).getRowObjectsJson()[0];
  let b;
  try { await c.runAndReadAll(`SELECT count(*) FROM read_csv_auto('${bronze}')`); b = 'OK'; }
  catch (e) { b = /Permission denied|No files found/.test(String(e)) ? 'refused' : String(e).slice(0, 200); }
  console.log(`${r.n} ${r.rev}\n${b}`);
})().catch(e => { console.log('error ' + String(e)); process.exit(1); });
EOF
	chmod 644 "$T/duck.js"
	res=$(asu ann env DUCK_MOD="$DUCK" node "$T/duck.js" "$GOLD" "$C/bronze/orders/a.csv" 2>&1)
	is "$(printf '%s\n' "$res" | head -1)" "2 22" "analyst: DuckDB read_csv_auto over the gold table: 2 rows, revenue 22"
	is "$(printf '%s\n' "$res" | tail -n +2)" refused "analyst: DuckDB over a bronze file is refused (Permission denied, or no such file to its glob)"
else
	skip "@duckdb/node-api not installed (run make deps)"
	skip "@duckdb/node-api not installed (run make deps)"
fi
ufails "analyst: ls of the bronze table orders: Permission denied" ann ls "$C/bronze/orders"
eis "analyst: listdir of bronze/orders: EACCES" EACCES ann list "$C/bronze/orders"
is "$(asu ann ls -R "$C/bronze" 2>/dev/null | grep -c 'a\.csv')" 0 "analyst: ls -R of bronze shows no file of it"
ufails "analyst: cat of a bronze file: Permission denied" ann cat "$C/bronze/orders/a.csv"
eis "analyst: a silver file: EACCES" EACCES ann read "$C/silver/orders/orders.csv"
# cannot write anywhere
ufails "analyst: cp into the bronze table: Permission denied" ann cp "$T/op.py" "$C/bronze/orders/x.csv"
eis "analyst: create in the bronze table: EACCES" EACCES ann create "$C/bronze/orders/y.csv"
eis "analyst: a gold definition: EACCES" EACCES ann create "$C/gold/mine.sql"
ufails "analyst: overwriting gold/daily.sql: Permission denied" ann sh -c "echo 'SELECT 1 AS one' > '$C/gold/daily.sql'"
eis "analyst: rm of gold/daily.sql: EACCES" EACCES ann unlink "$C/gold/daily.sql"
eis "analyst: create in the readable volume (READ only): EACCES" EACCES ann create "$PUB/new"
eis "analyst: append to a mode-666 file of the readable volume: EACCES" EACCES ann append "$PUB/open.txt"
eis "analyst: truncate of that file: EACCES" EACCES ann trunc "$PUB/open.txt"
eis "analyst: setxattr on that file: EACCES|EPERM" "EACCES|EPERM" ann setx "$PUB/open.txt" user.color blue
eis "analyst: rm in the readable volume: EACCES" EACCES ann unlink "$PUB/readme"
eis "analyst: mkdir in the readable volume: EACCES" EACCES ann mkdir "$PUB/newdir"
eis "analyst: create in the volume drop (no grant): EACCES" EACCES ann create "$C/files/drop/x"
eis "analyst: mkdir of a schema in sales: EACCES" EACCES ann mkdir "$C/newschema"
eis "analyst: mkdir of a volume: EACCES" EACCES ann mkdir "$C/files/newvol"
eis "analyst: mkdir of a table in bronze: EACCES" EACCES ann mkdir "$C/bronze/newtable"
eis "analyst: mkdir of a catalog: EACCES" EACCES ann mkdir "$M/newcat"
eis "analyst: write in silver: EACCES|EROFS" "EACCES|EROFS" ann create "$C/silver/orders/x.csv"
is "$(cat "$PUB/open.txt") $(LC_ALL=C ls "$PUB" | tr '\n' ' ')" "open to all by mode docs open.txt private readme relbronze tobronze toreadme tosilver " \
	"nothing the analyst tried changed the volume"
test ! -e "$C/gold/mine.sql" && test ! -e "$C/newschema" && test ! -e "$M/newcat" && test ! -e "$C/bronze/orders/x.csv"
ok $? "nor made anything elsewhere"
grep -q "SELECT day" "$C/gold/daily.sql"; ok $? "gold/daily.sql is unchanged"

# --- the engineer --------------------------------------------------------------------------------
printf 'id,day,amount\n10,2026-11-03,1\n11,2026-11-03,2\n' > "$T/e1.csv" && chmod 644 "$T/e1.csv"
uok "engineer: cp of a CSV into the bronze table" eve cp "$T/e1.csv" "$C/bronze/orders/e1.csv"
lwait 60; ok $? "lakefs wait: promoted"
is "$(ids "$C/silver/orders/orders.csv")" "1 2 3 10 11 " "silver orders holds the engineer's rows"
is "$(stat -c %u "$C/bronze/orders/e1.csv" 2>&1)" "$U_ENG" "the landed file is the engineer's"
eis "engineer: read a bronze file (WRITE, no READ): EACCES" EACCES eve read "$C/bronze/orders/a.csv"
eis "engineer: read silver: EACCES" EACCES eve read "$C/silver/orders/orders.csv"
eis "engineer: read gold: EACCES" EACCES eve read "$GOLD"
eis "engineer: mkdir of a table in bronze (needs MANAGE): EACCES" EACCES eve mkdir "$C/bronze/newtable"
eis "engineer: a gold definition: EACCES" EACCES eve create "$C/gold/e.sql"
eis "engineer: setfattr user.lakefs.grant on the bronze table: EACCES" EACCES \
	eve setx "$C/bronze/orders" user.lakefs.grant "READ user:$UN_ENG"
eis "engineer: setfattr user.lakefs.grant on bronze: EACCES" EACCES \
	eve setx "$C/bronze" user.lakefs.grant "READ user:$UN_ENG"
out=$(asu eve "$L" grant READ ON "$C/bronze" TO "user:$UN_ENG" 2>&1); rc=$?
is "$rc" 1 "engineer: lakefs grant on bronze exits 1"
printf '%s' "$out" | grep -qi "permission denied"; ok $? "and says permission denied ($out)"
eis "engineer: setting a property of the table (needs MANAGE): EACCES" EACCES \
	eve setx "$C/bronze/orders" user.lakefs.quiet_ms 100
gx user.lakefs.grants "$C/bronze" | grep -q "user:$UN_ENG${TAB}READ"
ok $([ $? -eq 1 ] && echo 0 || echo 1) "no grant was made"
eis "engineer: unlink of its own bronze file (WRITE)" OK eve unlink "$C/bronze/orders/e1.csv"
out=$(asu eve "$L" grant READ ON "$C/files/eng" TO "group:$GN_ANA" 2>&1)
ok $? "engineer with MANAGE on sales/files/eng grants READ there${out:+: $out}"
is "$(asu ann cat "$C/files/eng/e.txt" 2>&1)" "engineering" "analyst reads it now"
uok "engineer with MANAGE on sales/lab makes a volume in it" eve mkdir "$C/lab/mine"
is "$(stat -c %u "$C/lab/mine" 2>&1)" "$U_ENG" "the engineer owns the volume it made"
has_line "grants of it: the engineer is its OWNER" "$(gx user.lakefs.grants "$C/lab/mine")" \
	"/sales/lab/mine${TAB}user:$UN_ENG${TAB}OWNER${TAB}direct"
uok "engineer writes in its volume" eve sh -c "echo mine > '$C/lab/mine/f'"
is "$(ugx eve user.lakefs.privileges "$C/lab/mine")" "USE,READ,WRITE,MANAGE" "engineer: privileges on its own volume"
eis "analyst: its volume: EACCES" EACCES ann read "$C/lab/mine/f"

# --- a user in no group ------------------------------------------------------------------------
is "$(lsq nob "$M")" "" "no-group user: ls of the root shows no catalog"
ufails "no-group user: ls of sales: Permission denied" nob ls "$C"
eis "no-group user: listdir of sales: EACCES" EACCES nob list "$C"
eis "no-group user: a gold file: EACCES" EACCES nob read "$GOLD"
eis "no-group user: a file of the readable volume: EACCES" EACCES nob read "$PUB/readme"
eis "no-group user: mkdir of a catalog: EACCES" EACCES nob mkdir "$M/mine"
is "$(upriv nob "$C")" "NONE" "no-group user: privileges on sales, asked of the root: NONE"
eis "no-group user: getxattr on sales itself: EACCES (the kernel asks r)" EACCES nob getx "$C" user.lakefs.privileges
is "$(asu nob lakefs grants "$C" 2>&1 | tail -1)" "lakefs grants: your own privileges on $C: NONE" \
	"no-group user: lakefs grants names its own privileges: NONE"
grant "READ user:$UN_NOB" "$PUB"
eis "READ on a volume without USE on its catalog: still EACCES" EACCES nob read "$PUB/readme"
eis "it cannot even reach the volume (no USE to traverse sales): EACCES" EACCES nob stat "$PUB"
is "$(gx user.lakefs.privileges.uid.$U_NOB "$PUB")" "NONE" "root: privileges.uid.$U_NOB on that volume: NONE (USE missing above)"
revoke "READ user:$UN_NOB" "$PUB"

# --- a grant on a catalog holds for what is made in it later ---------------------------------------
mkdir -p "$M/mkt/files/docs" && echo "market report" > "$M/mkt/files/docs/r.txt" && mkdir "$M/mkt/bronze/leads"
ok $? "after the grant on mkt: a volume schema, a volume and a table made in it"
is "$(lsq ann "$M/mkt" | tr '\n' ' ')" "bronze files gold silver " "analyst: ls of mkt"
is "$(asu ann cat "$M/mkt/files/docs/r.txt" 2>&1)" "market report" "analyst: reads a file of the new volume"
is "$(lsq ann "$M/mkt/bronze")" "leads" "analyst: lists the new table's schema"
eis "analyst: lists the new table" OK ann list "$M/mkt/bronze/leads"
is "$(ugx ann user.lakefs.privileges "$M/mkt/files/docs")" "USE,READ" "analyst: privileges on the new volume"
has_line "grants of the new schema: the catalog's grant, inherited" "$(gx user.lakefs.grants "$M/mkt/files")" \
	"/mkt${TAB}group:$GN_ANA${TAB}USE,READ${TAB}inherited"
eis "engineer: the new volume: EACCES" EACCES eve read "$M/mkt/files/docs/r.txt"
eis "analyst: write in the new volume: EACCES" EACCES ann create "$M/mkt/files/docs/w"

# --- what ls -l, stat and test tell ----------------------------------------------------------------
# a caller outside the owner's group sees its triplet as owner and other
# bits, the group's cleared (no ACL round trip for it); a member of the
# owner's group sees its triplet in all three (lakefs(7) ACCESS)
is "$(asu ann ls -ld "$C/gold" 2>&1 | cut -d' ' -f1)" "dr-x---r-x" "analyst: ls -ld sales/gold: dr-x---r-x"
is "$(asu ann stat -c '%A %u' "$C/gold/daily" 2>&1)" "dr-x---r-x 0" "analyst: stat of the gold table: dr-x---r-x, root's"
is "$(asu ann stat -c %A "$PUB" 2>&1)" "dr-x---r-x" "analyst: the readable volume: dr-x---r-x"
is "$(asu ann stat -c %A "$C/files/drop" 2>&1)" "d---------" "analyst: the volume drop: d---------"
is "$(asu ann stat -c %A "$C/bronze/orders" 2>&1)" "d---------" "analyst: the bronze table: d---------"
is "$(asu ann stat -c %A "$C" 2>&1)" "dr-x---r-x" "analyst: the catalog (USE): dr-x---r-x"
is "$(asu eve stat -c %A "$C/bronze/orders" 2>&1)" "d-wx----wx" "engineer: the bronze table (WRITE): d-wx----wx"
is "$(asu eve stat -c %A "$C/files/drop" 2>&1)" "drwx---rwx" "engineer: the volume drop (READ,WRITE): drwx---rwx"
is "$(asu nob stat -c %A "$C" 2>&1)" "d---------" "no-group user: sales: d---------"
is "$(stat -c '%A %u' "$M/secret" 2>&1)" "drwx------ 0" "root: a catalog nobody else may use: drwx------"
is "$(asu ann stat -c '%A %u' "$M/secret" 2>&1)" "drwx------ 0" "analyst: the same"
utrue  "analyst: test -r sales/gold" ann -r "$C/gold"
ufalse "analyst: not test -w sales/gold" ann -w "$C/gold"
utrue  "analyst: test -x sales/gold" ann -x "$C/gold"
ufalse "analyst: not test -r of the bronze table" ann -r "$C/bronze/orders"
ufalse "analyst: not test -w of the readable volume" ann -w "$PUB"
ufalse "analyst: not test -r of the secret catalog" ann -r "$M/secret"
utrue  "engineer: test -w of the bronze table" eve -w "$C/bronze/orders"
ufalse "engineer: not test -r of the bronze table" eve -r "$C/bronze/orders"
ufalse "no-group user: not test -x of sales" nob -x "$C"
utrue  "analyst: test -r of a 644 file in the volume" ann -r "$PUB/readme"
ufalse "analyst: not test -r of a 600 file of root's in the volume (POSIX modes apply)" ann -r "$PUB/private"
eis "analyst: reading that 600 file: EACCES" EACCES ann read "$PUB/private"
rev_before=$(asu ann stat -c %A "$PUB")
grant "WRITE group:$GN_ANA" "$PUB"
is "$(asu ann stat -c %A "$PUB" 2>&1)" "drwx---rwx" "after a grant of WRITE the analyst sees drwx---rwx at once (was $rev_before)"
utrue "analyst: test -w now" ann -w "$PUB"
revoke "WRITE group:$GN_ANA" "$PUB"
is "$(asu ann stat -c %A "$PUB" 2>&1)" "dr-x---r-x" "after the revoke: dr-x---r-x at once"

# --- symlinks, hard links and renames do not escape ----------------------------------------------------
is "$(cat "$PUB/tobronze" 2>&1 | head -1)" "id,day,amount" "root reads through the symlinks (they resolve)"
is "$(asu ann cat "$PUB/toreadme" 2>&1)" "public readme" "analyst: a symlink within the volume works"
ufails "analyst: cat of a symlink (absolute) into bronze: Permission denied" ann cat "$PUB/tobronze"
eis "analyst: open of a symlink (relative) into bronze: EACCES" EACCES ann read "$PUB/relbronze"
eis "analyst: open of a symlink into silver: EACCES" EACCES ann read "$PUB/tosilver"
eis "analyst: a symlink made as root in a volume, to the secret catalog: EACCES" EACCES \
	ann read "$(ln -s "$M/secret/files/v/x" "$PUB/tosecret" && echo "$PUB/tosecret")"
uok "engineer: lands another file (its own, in bronze where it may not READ)" eve cp "$T/e1.csv" "$C/bronze/orders/e2.csv"
eis "engineer: ln of its own bronze file into its readable volume: refused" "EACCES|EXDEV" \
	eve link "$C/bronze/orders/e2.csv" "$C/files/drop/a.csv"
eis "engineer: ln of root's bronze file into its readable volume: refused" "EACCES|EXDEV|EPERM" \
	eve link "$C/bronze/orders/a.csv" "$C/files/drop/a1.csv"
ufails "engineer: mv of its bronze file into its readable volume: Permission denied" \
	eve mv "$C/bronze/orders/e2.csv" "$C/files/drop/a2.csv"
eis "engineer: rename of its bronze file into its volume: refused" "EACCES|EXDEV" \
	eve rename "$C/bronze/orders/e2.csv" "$C/files/drop/a3.csv"
eis "engineer: rename of root's bronze file into its volume: refused" "EACCES|EXDEV" \
	eve rename "$C/bronze/orders/a.csv" "$C/files/drop/a4.csv"
eis "engineer: still cannot read its bronze file" EACCES eve read "$C/bronze/orders/e2.csv"
eis "engineer: symlink in its volume to bronze, then open: EACCES" EACCES \
	eve read "$(asu eve ln -s "$C/bronze/orders/a.csv" "$C/files/drop/ln" && echo "$C/files/drop/ln")"
ls "$C/files/drop" | grep -q '^a'; ok $([ $? -eq 1 ] && echo 0 || echo 1) "nothing of bronze reached the volume"
test -f "$C/bronze/orders/a.csv" && test -f "$C/bronze/orders/e2.csv"; ok $? "the bronze files are still in place"
eis "analyst: hard link of a mode-666 file within the readable volume (no WRITE): EACCES" EACCES ann link "$PUB/open.txt" "$PUB/open2"
eis "analyst: ln of a gold file into the readable volume: refused" "EACCES|EXDEV|EPERM" ann link "$GOLD" "$PUB/g.csv"
eis "analyst: rename of a file of the readable volume into gold: refused" "EACCES|EXDEV|EROFS" ann rename "$PUB/readme" "$C/gold/readme"
eis "analyst: rename within the readable volume: EACCES" EACCES ann rename "$PUB/readme" "$PUB/readme.bak"
eis "analyst: rename of a bronze file into the readable volume: EACCES" "EACCES" ann rename "$C/bronze/orders/a.csv" "$PUB/a.csv"
asu ann mv "$PUB/readme" "$T/home/readme" >/dev/null 2>&1
test -f "$PUB/readme"; ok $? "analyst: mv out of the readable volume leaves the source in place"
is "$(LC_ALL=C ls "$PUB" | tr '\n' ' ')" "docs open.txt private readme relbronze tobronze toreadme tosecret tosilver " \
	"the readable volume holds what root put there, nothing more"

# --- .lakefs -------------------------------------------------------------------------------------------
is "$(stat -c '%a %U' "$M/.lakefs/audit" 2>&1)" "400 root" ".lakefs/audit: mode 0400, the admin's"
ok $([ -n "$(timeout 30 cat "$M/.lakefs/audit" 2>/dev/null | head -1)" ] && echo 0 || echo 1) "root reads .lakefs/audit"
eis "analyst: .lakefs/audit: EACCES" EACCES ann read "$M/.lakefs/audit"
eis "no-group user: .lakefs/audit: EACCES" EACCES nob read "$M/.lakefs/audit"
eis "engineer: .lakefs/sync: EACCES" EACCES eve read "$M/.lakefs/sync"
eis "analyst: .lakefs/verify: EACCES" EACCES ann read "$M/.lakefs/verify"
eis "analyst: .lakefs/verify-deep: EACCES" EACCES ann read "$M/.lakefs/verify-deep"
run_ok "no-group user: .lakefs/status is valid JSON" asu nob python3 -m json.tool "$M/.lakefs/status"
eis "analyst: .lakefs/metrics" OK ann read "$M/.lakefs/metrics"
jcount() {  # jcount WHO TABLE: job lines of TABLE that WHO sees (root: as root)
	if [ "$1" = root ]; then timeout 30 cat "$M/.lakefs/jobs"; else asu "$1" cat "$M/.lakefs/jobs"; fi 2>/dev/null |
		grep -c "\"table\":\"$2\""
}
rb=$(jcount root sales.bronze.orders) rg=$(jcount root sales.gold.daily)
ok $([ "$rb" -ge 2 ] && [ "$rg" -ge 1 ] && echo 0 || echo 1) "root sees every job ($rb of orders, $rg of daily)"
is "$(jcount ann sales.gold.daily)" "$rg" "analyst: sees the gold refreshes (READ on gold)"
is "$(jcount ann sales.bronze.orders)" 0 "analyst: sees no run of the bronze table"
is "$(jcount eve sales.bronze.orders)" 0 "engineer: no run of a table it cannot READ"
is "$(jcount nob sales)" 0 "no-group user: sees no job"
# xattrs
eis "analyst: getfattr user.lakefs.grants (needs MANAGE): EACCES" EACCES ann getx "$C/gold" user.lakefs.grants
eis "analyst: setfattr user.lakefs.grant on gold: EACCES" EACCES ann setx "$C/gold" user.lakefs.grant "WRITE user:$UN_ANA"
eis "analyst: setfattr user.lakefs.revoke on gold: EACCES" EACCES ann setx "$C/gold" user.lakefs.revoke "READ group:$GN_ANA"
eis "analyst: setting a property of the catalog: EACCES" EACCES ann setx "$C" user.lakefs.quiet_ms 100
run_ok "root sets a property of the table" setfattr -n user.lakefs.quiet_ms -v 250 "$C/bronze/orders"
eis "engineer: getfattr user.lakefs.grants on sales/files/eng (MANAGE)" OK eve getx "$C/files/eng" user.lakefs.grants
is "$(ugx ann user.lakefs.privileges "$C/gold")" "USE,READ" "analyst: user.lakefs.privileges of sales/gold"
is "$(ugx ann user.lakefs.privileges "$GOLD")" "USE,READ" "analyst: of a file in the gold table: its table's"
is "$(ugx ann user.lakefs.privileges "$PUB/docs/d.txt")" "USE,READ" "analyst: of a file deep in the volume: the volume's"
is "$(upriv eve "$C/bronze/orders")" "USE,WRITE" "engineer: of the bronze table (-wx: asked of the root)"
is "$(gx user.lakefs.privileges.uid.$U_ANA "$C/gold")" "USE,READ" "root: privileges.uid.$U_ANA (groups from the group database)"
is "$(gx user.lakefs.privileges.uid.$U_NOB "$C/gold")" "NONE" "root: privileges.uid.$U_NOB: NONE"
is "$(ugx ann user.lakefs.privileges.uid.$U_ANA "$C/gold")" "USE,READ" "analyst: its own uid"
eis "analyst: another user's privileges (needs MANAGE): EACCES" EACCES ann getx "$C/gold" "user.lakefs.privileges.uid.$U_ENG"

# --- revoke while the user holds an open file and a cwd inside ---------------------------------------
cat > "$T/hold.py" <<'EOF'
import errno, os, sys, time
vol, ready, go, out = sys.argv[1:5]
def e(f):
    try:
        f()
        return "OK"
    except OSError as x:
        return errno.errorcode.get(x.errno, str(x.errno))
os.chdir(vol)
fd = os.open("a", os.O_RDONLY)
first = os.read(fd, 3).decode()
pre = [e(lambda: os.listdir(".")), e(lambda: open("b").read())]
with open(ready, "w") as f:
    f.write(" ".join([first] + pre) + "\n")
t0 = time.time()
while not os.path.exists(go) and time.time() - t0 < 60:
    time.sleep(0.05)
res = [e(lambda: os.pread(fd, 4, 4)), e(lambda: os.close(os.open("b", os.O_RDONLY))),
       e(lambda: open("new").read()), e(lambda: os.listdir(".")), e(lambda: os.listdir("d")),
       e(lambda: open("d/inner").read())]
with open(out, "w") as f:
    f.write(" ".join(res) + "\n")
EOF
chmod 644 "$T/hold.py"
LOGS=$M/ops/files/logs
is "$(lsq rev "$M")" "ops" "user $UN_REV (a user grant): ls of the root shows ops"
timeout 90 setpriv --reuid="$U_REV" --regid="$G_NOG" --clear-groups env HOME="$T/home" \
	python3 "$T/hold.py" "$LOGS" "$T/home/ready" "$T/home/go" "$T/home/out" >/dev/null 2>&1 &
holder=$!; _acc_bg="$_acc_bg $holder"
# the same with ordinary tools: a shell with cd into the volume and exec 3<a
cat > "$T/hold.sh" <<'EOF'
cd "$1" || exit 1
exec 3<a || exit 1
ls > "$2.ls0" 2>&1
i=0
while [ ! -e "$3" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
{ head -c 3 <&3; echo " rc=$?"; } > "$2.fd" 2>&1
{ cat b; echo "rc=$?"; } > "$2.cat" 2>&1
{ ls; echo "rc=$?"; } > "$2.ls" 2>&1
echo done > "$2"
sleep 60
EOF
chmod 644 "$T/hold.sh"
timeout 90 setpriv --reuid="$U_REV" --regid="$G_NOG" --clear-groups env HOME="$T/home" \
	bash "$T/hold.sh" "$LOGS" "$T/home/sh" "$T/home/go" >/dev/null 2>&1 &
sleeper=$!; _acc_bg="$_acc_bg $sleeper"
wait_until 20 test -s "$T/home/ready"
wait_until 20 test -s "$T/home/sh.ls0"
is "$(cat "$T/home/ready" 2>&1)" "log OK OK" "before the revoke: it opened, listed and read in its cwd"
is "$(tr '\n' ' ' < "$T/home/sh.ls0" 2>&1)" "a b d " "before the revoke: the shell lists its cwd"
out=$(timeout 30 "$L" revoke USE,READ ON "$M/ops" FROM "user:$UN_REV" 2>&1)
ok $? "lakefs revoke USE,READ ON ops FROM user:$UN_REV${out:+: $out}"
echo "new file" > "$LOGS/new"
touch "$T/home/go"
wait_until 30 test -s "$T/home/out"
read -r r_fd r_open r_new r_dir r_sub r_inner < "$T/home/out" 2>/dev/null
case $r_fd in OK|EACCES|EIO|EBADF) ok 0 "the open fd answered after the revoke ($r_fd; it may keep reading)" ;;
	*) ok 1 "the open fd answered after the revoke"; diag "got '$r_fd'" ;; esac
is "$r_open" EACCES "after the revoke: open of a file in its cwd: EACCES"
is "$r_new" EACCES "after the revoke: read of a new file: EACCES"
is "$r_dir" EACCES "after the revoke: readdir of its cwd: EACCES"
is "$r_sub" EACCES "after the revoke: readdir of a directory below: EACCES"
is "$r_inner" EACCES "after the revoke: a file below: EACCES"
wait_until 30 test -s "$T/home/sh"
diag "the shell's fd 3 after the revoke: $(cat "$T/home/sh.fd" 2>&1)"
is "$(tail -1 "$T/home/sh.cat" 2>&1)" "rc=1" "the shell, after the revoke: cat of a file in its cwd fails"
grep -q "Permission denied" "$T/home/sh.cat"; ok $? "with Permission denied ($(head -1 "$T/home/sh.cat" 2>&1))"
is "$(tail -1 "$T/home/sh.ls" 2>&1)" "rc=2" "the shell, after the revoke: ls of its cwd fails"
grep -q "Permission denied" "$T/home/sh.ls"; ok $? "with Permission denied ($(head -1 "$T/home/sh.ls" 2>&1))"
pid_alive "$sleeper"; ok $? "the shell holding fd 3 and its cwd inside is still there"
eis "a new process: read: EACCES" EACCES rev read "$LOGS/b"
ufails "a new process: ls of the volume: Permission denied" rev ls "$LOGS"
is "$(lsq rev "$M")" "" "a new process: ls of the root no longer shows ops"
is "$(upriv rev "$M/ops")" "NONE" "its privileges on ops: NONE"
case $(upriv rev "$LOGS") in *"Permission denied"*) ok 0 "its privileges below ops, which it may not pass: EACCES" ;;
	*) ok 1 "its privileges below ops, which it may not pass: EACCES"; diag "got '$(upriv rev "$LOGS")'" ;; esac
kill "$sleeper" "$holder" 2>/dev/null; wait "$sleeper" "$holder" 2>/dev/null

# --- gold definitions read with their owner's privileges; links stay put ----------------------------
# The engineer holds USE on the catalog lab2 and READ,MANAGE on its gold
# schema, and nothing on the silver tables of sales.
mkdir -p "$M/lab2" && grant "USE user:$UN_ENG" "$M/lab2" && grant "READ,MANAGE user:$UN_ENG" "$M/lab2/gold"
ok $? "engineer: USE on lab2, READ,MANAGE on lab2/gold"
eis "engineer: it may not read sales' silver orders" EACCES eve read "$C/silver/orders/orders.csv"
# (python: a shell ignores the error of the close that ends a redirection)
is "$(asu eve python3 -c 'import sys
try:
    f = open(sys.argv[1], "w"); f.write("SELECT * FROM sales.silver.orders\n"); f.close(); print("OK")
except OSError as e: print(e.strerror)' "$M/lab2/gold/leak.sql" 2>&1)" "Invalid argument" \
	"engineer: a definition reading sales.silver.orders fails at close: EINVAL"
eis "engineer: and no table leak exists" ENOENT eve stat "$M/lab2/gold/leak/leak.csv"
err=$(timeout 10 cat "$M/lab2/gold/leak/_error" 2>/dev/null)
case $err in *"no such table"*) ok 0 "its _error: no such table (the table is not there for it)" ;;
	*) ok 1 "its _error: no such table"; diag "got '$err'" ;; esac
case $err in *amount*|*order_id*) ok 1 "the error names no column of the table"; diag "$err" ;;
	*) ok 0 "the error names no column of the table" ;; esac
out=$(asu eve sh -c "echo 'SELECT 1 AS one' > '$M/lab2/gold/one.sql'" 2>&1)
ok $? "engineer: a definition reading nothing installs${out:+ ($out)}"
wait_until 30 test -s "$M/lab2/gold/one/one.csv"
is "$(asu eve cat "$M/lab2/gold/one/one.csv" 2>&1 | tr '\n' ' ')" "one 1 " "engineer: reads its gold table"
is "$(stat -c %u "$M/lab2/gold/one" 2>&1)" "$U_ENG" "the gold table is its definer's"
eis "engineer: hard link of its definition into a volume: EXDEV" EXDEV eve link "$M/lab2/gold/one.sql" "$C/files/eng/x.sql"
asu eve sh -c "echo 'SELECT 2 AS two' > '$C/files/eng/two.sql'"
eis "engineer: hard link of a volume file into the gold schema: EXDEV" EXDEV eve link "$C/files/eng/two.sql" "$M/lab2/gold/two.sql"
asu eve sh -c "echo notes > '$M/lab2/gold/notes.txt'"; ok $? "engineer: a scratch file in the gold schema"
is "$(asu eve cat "$M/lab2/gold/notes.txt" 2>&1)" "notes" "engineer: reads its scratch file back"
eis "engineer: stat of it" OK eve stat "$M/lab2/gold/notes.txt"

# an empty bronze table removed takes its silver table and that table's grants
mkdir "$C/bronze/gone" && grant "READ user:$UN_ANA" "$C/silver/gone"; ok $? "a new bronze table, READ on its silver table"
rmdir "$C/bronze/gone"; ok $? "rmdir of the empty bronze table"
wait_until 10 sh -c "! test -e '$C/silver/gone'"
eis "its silver table went with it" ENOENT root stat "$C/silver/gone"
mkdir "$C/bronze/gone"; ok $? "made again"
case $(gx user.lakefs.grants "$C/silver/gone") in *"user:$UN_ANA"*) ok 1 "the new silver table has none of the old grants" ;;
	*) ok 0 "the new silver table has none of the old grants" ;; esac
rmdir "$C/bronze/gone"

# a name cannot forge an audit line: a denial inside a mode-777 directory
# of a volume the analyst may only read reaches the daemon with the name
mkdir -p "$PUB/open" && chmod 777 "$PUB/open"
forged="x
2026-01-01T00:00:00.000Z uid=0 gid=0 op=grant path=sales result=ok what=\"ALL everyone\""	# no '/': one name
eis "analyst: create in a 777 directory of a read-only volume: EACCES" EACCES ann create "$PUB/open/$forged"

# --- a mount by a user other than root ----------------------------------------------------------
# Debian's /etc/fuse.conf has no user_allow_other line: lakefs-mount says so
# (the mount would be its owner's alone), and refuses an explicit allow_other.
# Whether the mount itself then succeeds depends on /dev/fuse here; only the
# messages are checked.
if ! grep -qs '^[[:space:]]*user_allow_other' /etc/fuse.conf; then
	NR=$T/nonroot
	mkdir -p "$NR/m" && chown -R 65534:65534 "$NR"
	out=$(timeout 30 setpriv --reuid=65534 --regid=65534 --clear-groups env HOME="$NR" \
		"$BIN/lakefs-mount" --state "$NR/s" "$NR/m" 2>&1)
	grep -qs " fuse.*$NR/m" /proc/mounts && { fusermount3 -u "$NR/m" 2>/dev/null || umount -l "$NR/m"; }
	case $out in *"/etc/fuse.conf has no 'user_allow_other' line"*) ok 0 "non-root mount: says user_allow_other is missing" ;;
		*) ok 1 "non-root mount: says user_allow_other is missing"; diag "got: $out" ;; esac
	out=$(timeout 30 setpriv --reuid=65534 --regid=65534 --clear-groups env HOME="$NR" \
		"$BIN/lakefs-mount" -o allow_other --state "$NR/s" "$NR/m" 2>&1); rc=$?
	grep -qs " fuse.*$NR/m" /proc/mounts && { fusermount3 -u "$NR/m" 2>/dev/null || umount -l "$NR/m"; }
	case $rc:$out in 1:*"-o allow_other needs the line 'user_allow_other' in /etc/fuse.conf"*)
		ok 0 "non-root mount with -o allow_other: refused, naming /etc/fuse.conf" ;;
	*) ok 1 "non-root mount with -o allow_other: refused, naming /etc/fuse.conf"; diag "exit $rc: $out" ;; esac
else
	skip "/etc/fuse.conf has user_allow_other: the non-root messages cannot be seen"
	skip "/etc/fuse.conf has user_allow_other"
fi

# --- the audit ---------------------------------------------------------------------------------------
TS='[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z'
AUD=$(timeout 30 cat "$M/.lakefs/audit" 2>&1)
printf '%s\n' "$AUD" | grep -q '^2026-01-01T00:00:00.000Z'
ok $([ $? -ne 0 ] && echo 0 || echo 1) "audit: a file name with a newline forged no line"
printf '%s\n' "$AUD" | grep -qF 'path=/sales/files/pub/x\x0a2026-01-01T00:00:00.000Z\x20uid=0'
ok $? "audit: the name is there, escaped (\\x0a, \\x20)"
aud_has() {  # aud_has DESCRIPTION EREGEX (anchored after TIME)
	if printf '%s\n' "$AUD" | grep -qE "^$TS $2\$"; then ok 0 "$1"
	else ok 1 "$1"; diag "no audit line matching: TIME $2"; diag "$(printf '%s\n' "$AUD" | tail -5)"; fi
}
n=$(printf '%s\n' "$AUD" | grep -vcE "^$TS uid=[0-9]+ gid=[0-9]+ op=[a-z_-]+ path=/[^ ]* result=(ok|E[A-Z0-9]+)( what=\"[^\"]*\")?\$")
is "$n" 0 "every audit line: TIME uid= gid= op= path= result=[ what=]"
[ "$n" = 0 ] || diag "$(printf '%s\n' "$AUD" | grep -vE "^$TS uid=" | head -3)"
aud_has "audit: the setfattr grant on sales" "uid=0 gid=0 op=grant path=/sales result=ok what=\"USE group:$GN_ANA\""
aud_has "audit: the lakefs grant on sales/gold" "uid=0 gid=0 op=grant path=/sales/gold result=ok what=\"USE,READ group:$GN_ANA\""
aud_has "audit: the revoke on ops" "uid=0 gid=0 op=revoke path=/ops result=ok what=\"USE,READ user:$UN_REV\""
aud_has "audit: the engineer's grant on its volume" \
	"uid=$U_ENG gid=$G_NOG op=grant path=/sales/files/eng result=ok what=\"READ group:$GN_ANA\""
aud_has "audit: the analyst's denied getxattr of the grants" \
	"uid=$U_ANA gid=$G_NOG op=getxattr path=/sales/gold result=EACCES"
aud_has "audit: the engineer's denied grant" \
	"uid=$U_ENG gid=$G_NOG op=(setxattr|grant) path=/sales/bronze/orders result=EACCES( what=\"[^\"]*\")?"
aud_has "audit: the engineer's denied open of a bronze file" \
	"uid=$U_ENG gid=$G_NOG op=open path=/sales/bronze/orders(/a\\.csv)? result=EACCES"
aud_has "audit: the analyst's denied append to a mode-666 file" \
	"uid=$U_ANA gid=$G_NOG op=open path=/sales/files/pub(/open\\.txt)? result=EACCES"
printf '%s\n' "$AUD" | grep -E " uid=0 " | grep -qvE "op=(grant|revoke) "
ok $([ $? -eq 1 ] && echo 0 || echo 1) "the admin's requests are not audited as denials"
# bounded: 4 MiB, then audit.log.1
python3 - "$S/audit.log" <<'EOF' >"$T/aud-size"
import os, sys
print(os.path.getsize(sys.argv[1]) if os.path.exists(sys.argv[1]) else -1)
EOF
ok $([ "$(cat "$T/aud-size")" -gt 0 ] && echo 0 || echo 1) "STATE/audit.log exists ($(cat "$T/aud-size") bytes)"
cat > "$T/deny.py" <<'EOF'
import os, sys, time
p, n = sys.argv[1], int(sys.argv[2])
t0 = time.time()
for i in range(n):
    try: os.getxattr(p, "user.lakefs.grants")
    except OSError: pass
    if time.time() - t0 > 60: break
print(i + 1)
EOF
chmod 644 "$T/deny.py"
t0=$(date +%s)
nd=$(asu ann python3 "$T/deny.py" "$C/gold" 60000 2>&1)
diag "$nd denied getxattr calls in $(( $(date +%s) - t0 )) s"
test -f "$S/audit.log.1"; ok $? "60,000 denials later: STATE/audit.log.1"
s0=$(stat -c %s "$S/audit.log.1" 2>/dev/null || echo 0) s1=$(stat -c %s "$S/audit.log" 2>/dev/null || echo 0)
ok $([ "$s0" -le 4194304 ] && [ "$s1" -le 4194304 ] && [ "$s0" -gt 3000000 ] && echo 0 || echo 1) \
	"both are at most 4 MiB (audit.log.1 $s0, audit.log $s1 bytes)"
timeout 30 cat "$M/.lakefs/audit" > "$T/aud-all" 2>&1
cat "$S/audit.log.1" "$S/audit.log" > "$T/aud-files" 2>/dev/null
run_ok ".lakefs/audit shows audit.log.1 then audit.log" cmp "$T/aud-all" "$T/aud-files"
is "$(tail -1 "$T/aud-all" | grep -cE "^$TS uid=$U_ANA gid=$G_NOG op=getxattr path=/sales/gold result=EACCES\$")" 1 \
	"its last line is the last denial"

# --- a remount ----------------------------------------------------------------------------------------
GG_before=$(gx user.lakefs.grants "$C/gold") GP_before=$(gx user.lakefs.grants "$PUB")
lfs_umount "$M"; ok $? "unmount"
lfs_mount "$M" "$S"; ok $? "remount the same state"
is "$(gx user.lakefs.grants "$C/gold")" "$GG_before" "after the remount: the grants of sales/gold"
is "$(gx user.lakefs.grants "$PUB")" "$GP_before" "after the remount: the grants of the volume"
is "$(asu ann cat "$GOLD" 2>&1 | head -1)" "day,n,revenue" "after the remount: the analyst reads gold"
eis "after the remount: the analyst still cannot read bronze" EACCES ann read "$C/bronze/orders/a.csv"
is "$(lsq nob "$M")" "" "after the remount: the no-group user sees no catalog"
is "$(lsq rev "$M")" "" "after the remount: the revoke holds"
is "$(asu eve stat -c %A "$C/bronze/orders" 2>&1)" "d-wx----wx" "after the remount: the engineer's view of bronze"
is "$(stat -c %u "$C/lab/mine" 2>&1)" "$U_ENG" "after the remount: the engineer still owns its volume"
is "$(stat -c '%A %u' "$M/secret" 2>&1)" "drwx------ 0" "after the remount: the secret catalog is the admin's alone"
lfs_umount "$M"; ok $? "unmount"

# --- restore from the bucket ----------------------------------------------------------------------------
if command -v node >/dev/null 2>&1 && [ -f "$S3RVER_JS" ]; then
	s3_start; ok $? "s3rver up on 127.0.0.1:$S3_PORT"
	STORE=(--store "s3://$S3_BUCKET/acc" --endpoint "$S3_ENDPOINT")
	M2=$T/mnt2 S2=$T/state2 S3=$T/state3
	lfs_mount "$M2" "$S2" "${STORE[@]}"; ok $? "mount a state mirrored to the bucket"
	mkdir -p "$M2/shop/files/docs" "$M2/shop/files/hidden" && echo "shop doc" > "$M2/shop/files/docs/hello.txt" &&
		echo hidden > "$M2/shop/files/hidden/x.txt"
	ok $? "catalog shop, volumes docs and hidden"
	grant "USE group:$GN_ANA" "$M2/shop" && grant "READ group:$GN_ANA" "$M2/shop/files/docs" &&
		grant "USE user:$UN_ENG" "$M2/shop" &&
		timeout 30 "$L" grant WRITE ON "$M2/shop/files/docs" TO "user:$UN_ENG" >/dev/null 2>&1
	ok $? "grants on shop and its volume"
	RG_before=$(gx user.lakefs.grants "$M2/shop/files/docs")
	out=$(timeout 120 "$L" sync "$M2" --timeout 100 2>&1); ok $? "lakefs sync: $out"
	lfs_umount "$M2"; ok $? "unmount"
	out=$(timeout 120 "$L" restore "${STORE[@]}" --state "$S3" 2>&1); ok $? "lakefs restore into a new state: $out"
	lfs_mount "$M2" "$S3"; ok $? "mount the restored state"
	is "$(gx user.lakefs.grants "$M2/shop/files/docs")" "$RG_before" "the grants came back from the bucket"
	has_line "among them the volume's READ for group:$GN_ANA" "$RG_before" \
		"/shop/files/docs${TAB}group:$GN_ANA${TAB}READ${TAB}direct"
	is "$(asu ann cat "$M2/shop/files/docs/hello.txt" 2>&1)" "shop doc" "restored: the analyst reads the volume"
	eis "restored: the analyst cannot read the other volume" EACCES ann read "$M2/shop/files/hidden/x.txt"
	eis "restored: the analyst cannot write" EACCES ann create "$M2/shop/files/docs/w"
	eis "restored: the engineer may write (USE on shop, WRITE on the volume)" OK eve create "$M2/shop/files/docs/w"
	eis "restored: the engineer cannot read (no READ)" EACCES eve read "$M2/shop/files/docs/hello.txt"
	is "$(lsq nob "$M2")" "" "restored: the no-group user sees no catalog"
	is "$(lsq ann "$M2")" "shop" "restored: the analyst sees shop"
	lfs_umount "$M2"; ok $? "unmount"
	s3_stop
else
	skip "s3rver not installed (make deps): restore from the bucket not checked"
fi
done_testing
