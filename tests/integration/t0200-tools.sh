#!/usr/bin/env bash
# t0200-tools: ordinary tools through the mount. Each operation is done
# twice, once in a directory on the mount ($M/..., a volume: the mount
# root holds catalogs only) and once in a directory on local disk ($L/...),
# and the two results are compared: names, types, modes, sizes, mtimes,
# link counts and content.
. "$(dirname "$0")/../lib.sh"

need_cmd fusermount3 python3 md5sum
[ -x "$BIN/lakefs-mount" ] || skip_all "lakefs-mount not built (run make)"
[ -e /dev/fuse ] || skip_all "no /dev/fuse"

MNT=$T/mnt
S=$T/state
L=$T/local
mkdir -p "$L"
lfs_mount "$MNT" "$S" || { echo "Bail out! cannot mount lakefs"; exit 1; }
M=$(lfs_volume "$MNT") || { echo "Bail out! cannot make a volume"; exit 1; }

have() { command -v "$1" >/dev/null 2>&1; }
# shape DIR: one line per entry, paths relative to DIR, sorted. Directory
# sizes differ by nature between file systems and are left out.
shape() {
	(cd "$1" && find . -mindepth 1 -path ./.lakefs -prune -o -printf '%y %p\n' |
	 LC_ALL=C sort | while read -r y p; do
		case $y in
		d) stat -c '%n %a %Y %h %F' "$p" ;;
		l) stat -c '%n %s %h %F' "$p"; printf '  -> %s\n' "$(readlink "$p")" ;;
		*) stat -c '%n %a %s %Y %h %F' "$p" ;;
		esac
	 done)
}
sums() { (cd "$1" && find . -path ./.lakefs -prune -o -type f -print0 | LC_ALL=C sort -z | xargs -0r md5sum); }
same_tree() {  # same_tree DESCRIPTION DIR1 DIR2
	_a=$(shape "$2"; sums "$2"); _b=$(shape "$3"; sums "$3")
	if [ "$_a" = "$_b" ]; then ok 0 "$1"
	else ok 1 "$1"; diag "$(diff <(echo "$_a") <(echo "$_b") | head -30)"; fi
}

# A source tree on local disk: files of several sizes (around the 1 MiB
# block), an empty file, a sparse file, modes, symlinks, a hard link, old
# mtimes and a user xattr.
SRC=$T/src
mkdir -p "$SRC/d1/d2/d3" "$SRC/empty" "$SRC/other"
echo hello > "$SRC/small.txt"
: > "$SRC/zero"
head -c 1048576 /dev/urandom > "$SRC/d1/onemeg"
head -c 1048577 /dev/urandom > "$SRC/d1/onemeg+1"
head -c 3333333 /dev/urandom > "$SRC/d1/d2/big"
printf 'row,%d,value\n' $(seq 1 20000) > "$SRC/d1/d2/d3/table.csv"
truncate -s 5M "$SRC/sparse"; printf tail | dd of="$SRC/sparse" bs=1 seek=4000000 conv=notrunc status=none
chmod 600 "$SRC/small.txt"; chmod 755 "$SRC/d1/d2/big"; chmod 700 "$SRC/other"
ln -s small.txt "$SRC/link"
ln -s d1/d2 "$SRC/dirlink"
ln -s /nonexistent/target "$SRC/dangling"
ln "$SRC/d1/onemeg" "$SRC/hardlink"
touch -d '2001-02-03 04:05:06' "$SRC/small.txt" "$SRC/d1/d2/big" "$SRC/d1/d2/d3"
touch -h -d '2002-02-02 02:02:02' "$SRC/link"
have setfattr && setfattr -n user.color -v blue "$SRC/small.txt" 2>/dev/null

# --- cp ----------------------------------------------------------------------
run_ok "cp a file in" cp "$SRC/d1/d2/big" "$M/big"
run_ok "it reads back identical" cmp "$SRC/d1/d2/big" "$M/big"
run_ok "cp -r in" cp -r "$SRC" "$M/cpr"
cp -r "$SRC" "$L/cpr"
# cp -r stamps each copy with the time it was made, so the two copies agree
# on their times only within one second: give both one old time (cp -a
# below checks that times are kept); it also makes the rsync --inplace pass
# below update every changed file in both, whatever second the copies
# were made in
find "$M/cpr" "$L/cpr" -exec touch -h -d '2001-01-01 00:00:00' {} +
same_tree "cp -r: same tree as on local disk" "$L/cpr" "$M/cpr"
run_ok "cp -a in" cp -a "$SRC" "$M/cpa"
cp -a "$SRC" "$L/cpa"
same_tree "cp -a: modes, times, symlinks, hard links as on local disk" "$L/cpa" "$M/cpa"
same_tree "cp -a: and as in the source" "$SRC" "$M/cpa"
is "$(stat -c %i "$M/cpa/hardlink")" "$(stat -c %i "$M/cpa/d1/onemeg")" "cp -a: the hard link shares an inode"
run_ok "cp -a out again" cp -a "$M/cpa" "$L/cpa-back"
same_tree "cp -a out: the round trip keeps everything" "$SRC" "$L/cpa-back"
if have getfattr && [ -n "$(getfattr --absolute-names --only-values -n user.color "$SRC/small.txt" 2>/dev/null)" ]; then
	is "$(getfattr --absolute-names --only-values -n user.color "$M/cpa/small.txt" 2>&1)" blue "cp -a: user xattr preserved"
else skip "no user xattrs on local disk or getfattr missing"; fi

# --- rsync -a (temp file + rename) ---------------------------------------------
if have rsync; then
	run_ok "rsync -a in" rsync -a "$SRC/" "$M/rsync/"
	rsync -a "$SRC/" "$L/rsync/"
	same_tree "rsync -a: same tree as on local disk" "$L/rsync" "$M/rsync"
	# change some files and sync again: rsync rewrites via temp file + rename
	echo changed >> "$SRC/d1/d2/d3/table.csv"; touch -d '2003-03-03' "$SRC/d1/d2/d3/table.csv"
	head -c 100000 /dev/urandom | dd of="$SRC/d1/d2/big" bs=1 seek=1000000 conv=notrunc status=none
	rm "$SRC/zero"
	run_ok "rsync -a --delete again after changes" rsync -a --delete "$SRC/" "$M/rsync/"
	rsync -a --delete "$SRC/" "$L/rsync/"
	same_tree "rsync -a: updated tree as on local disk" "$L/rsync" "$M/rsync"
	leftover=$(find "$M/rsync" -name '.*.??????' | head -3)
	is "$leftover" "" "rsync left no temp files"
	run_ok "rsync -a --checksum finds nothing to do" sh -c "test -z \"\$(rsync -a --checksum -i '$SRC/' '$M/rsync/')\""
	run_ok "rsync -aH in (hard links)" rsync -aH "$SRC/" "$M/rsyncH/"
	rsync -aH "$SRC/" "$L/rsyncH/"
	same_tree "rsync -aH: same tree as on local disk" "$L/rsyncH" "$M/rsyncH"
	is "$(stat -c %h "$M/rsyncH/hardlink")" 2 "rsync -aH: the hard link has 2 links"
	run_ok "rsync -a --inplace" rsync -a --inplace --no-whole-file "$SRC/" "$M/cpr/"
	rsync -a --inplace --no-whole-file "$SRC/" "$L/cpr/"
	same_tree "rsync --inplace: same as on local disk" "$L/cpr" "$M/cpr"
else skip "rsync not installed"; fi

# --- tar round trip ----------------------------------------------------------
if have tar; then
	tar -C "$SRC" -cf "$T/src.tar" . 2>/dev/null
	mkdir -p "$M/tarx"
	run_ok "tar x into the mount" tar -C "$M/tarx" -xpf "$T/src.tar"
	run_ok "tar c from the mount" tar -C "$M/tarx" -cf "$T/back.tar" .
	mkdir -p "$T/tarback"; tar -C "$T/tarback" -xpf "$T/back.tar"
	run_ok "diff -r of source and round trip" diff -r --no-dereference "$SRC" "$T/tarback"
	is "$(tar -tvf "$T/back.tar" | LC_ALL=C sort)" "$(tar -tvf "$T/src.tar" | LC_ALL=C sort)" \
		"tar listings (modes, owners, sizes, times, links) agree"
	same_tree "tar x: same tree as the source" "$SRC" "$M/tarx"
	run_ok "tar xz of a compressed archive" sh -c "tar -C '$SRC' -czf - . | tar -C '$M/tarx' -xzf - && diff -r --no-dereference '$SRC' '$M/tarx'"
else skip "tar not installed"; fi

# --- mv, ln, ln -s -----------------------------------------------------------
for D in "$M" "$L"; do
	mkdir -p "$D/mv/a/sub" "$D/mv/b"
	echo one > "$D/mv/a/f1"; echo sub > "$D/mv/a/sub/f2"
	echo target > "$D/mv/b/existing"
done
run_ok "mv a file across directories" mv "$M/mv/a/f1" "$M/mv/b/f1"
mv "$L/mv/a/f1" "$L/mv/b/f1"
run_ok "mv a directory across directories" mv "$M/mv/a/sub" "$M/mv/b/sub"
mv "$L/mv/a/sub" "$L/mv/b/sub"
run_ok "mv over an existing file" mv "$M/mv/b/f1" "$M/mv/b/existing"
mv "$L/mv/b/f1" "$L/mv/b/existing"
same_tree "mv: same tree as on local disk" "$L/mv" "$M/mv"
is "$(cat "$M/mv/b/existing")" one "the replaced file has the moved content"
is "$(cat "$M/mv/b/sub/f2")" sub "the moved directory's content follows it"
echo from-local > "$T/mvsrc"
run_ok "mv from local disk into the mount (copy + unlink)" mv "$T/mvsrc" "$M/mv/fromlocal"
is "$(cat "$M/mv/fromlocal" 2>&1)" from-local "its content"
run_ok "mv from the mount to local disk" mv "$M/mv/fromlocal" "$T/mvback"
ok $(test ! -e "$M/mv/fromlocal" && test -f "$T/mvback" && echo 0 || echo 1) "it left the mount"

echo shared > "$M/mv/h1"
run_ok "ln (hard link)" ln "$M/mv/h1" "$M/mv/h2"
is "$(stat -c '%i %h' "$M/mv/h2")" "$(stat -c %i "$M/mv/h1") 2" "same inode, link count 2"
echo more >> "$M/mv/h2"
is "$(cat "$M/mv/h1")" "$(printf 'shared\nmore')" "a write through one name shows through the other"
rm "$M/mv/h1"
is "$(stat -c %h "$M/mv/h2")" 1 "link count back to 1 after rm"
run_ok "ln -s" ln -s ../mv/b/existing "$M/mv/sym"
is "$(readlink "$M/mv/sym")" ../mv/b/existing "readlink"
is "$(cat "$M/mv/sym")" one "read through the symlink"
is "$(stat -c %F "$M/mv/sym")" "symbolic link" "lstat says symbolic link"
run_ok "ln -sf replaces a symlink" ln -sfn b "$M/mv/sym"
is "$(readlink "$M/mv/sym")" b "the new target"

# --- cp within the mount, sed -i, install, mkfifo, flock, O_DIRECT ---------
run_ok "cp a file within the mount (copy_file_range or read/write)" cp "$M/big" "$M/big.copy"
run_ok "the copy is identical" cmp "$M/big" "$M/big.copy"
run_ok "cp a sparse file within the mount" cp "$M/cpa/sparse" "$M/sparse.copy"
run_ok "the sparse copy is identical" cmp "$M/cpa/sparse" "$M/sparse.copy"
for D in "$M" "$L"; do printf 'alpha\nbeta\ngamma\n' > "$D/sed.txt"; chmod 604 "$D/sed.txt"; done
run_ok "sed -i (temp file + rename)" sed -i 's/beta/BETA/' "$M/sed.txt"
sed -i 's/beta/BETA/' "$L/sed.txt"
is "$(stat -c %a "$M/sed.txt"; cat "$M/sed.txt")" "$(stat -c %a "$L/sed.txt"; cat "$L/sed.txt")" "sed -i: same mode and content as on local disk"
run_ok "install -m 750" install -m 750 "$SRC/small.txt" "$M/installed"
is "$(stat -c %a "$M/installed")" 750 "install set the mode"
if have mkfifo; then
	run_ok "mkfifo" mkfifo "$M/fifo"
	is "$(stat -c %F "$M/fifo")" fifo "it is a fifo"
	( echo through-the-fifo > "$M/fifo" ) & fp=$!
	is "$(timeout 10 cat "$M/fifo")" through-the-fifo "data passes through it"
	kill $fp 2>/dev/null; wait $fp 2>/dev/null
fi
if have flock; then
	touch "$M/lockfile"
	flock "$M/lockfile" sleep 3 & lp=$!
	sleep 0.5
	run_fail "flock -n on a file another process holds fails" flock -n "$M/lockfile" true
	wait $lp
	run_ok "flock -n once it is released succeeds" flock -n "$M/lockfile" true
fi
run_ok "dd oflag=direct (O_DIRECT) write" dd if="$M/big" of="$M/direct" bs=1M oflag=direct status=none
run_ok "dd iflag=direct (O_DIRECT) read" sh -c "dd if='$M/direct' bs=1M iflag=direct status=none | cmp - '$M/big'"

# --- find, du ----------------------------------------------------------------
fnd() { (cd "$1" && find . "${@:2}" | LC_ALL=C sort); }
SRC=$L/cpa  # the tree as it was when copied in, on local disk
is "$(fnd "$M/cpa")" "$(fnd "$SRC")" "find: names"
is "$(fnd "$M/cpa" -type f)" "$(fnd "$SRC" -type f)" "find -type f"
is "$(fnd "$M/cpa" -type d)" "$(fnd "$SRC" -type d)" "find -type d"
is "$(fnd "$M/cpa" -type l)" "$(fnd "$SRC" -type l)" "find -type l"
is "$(fnd "$M/cpa" -size +1M)" "$(fnd "$SRC" -size +1M)" "find -size +1M"
is "$(fnd "$M/cpa" -size -2k -type f)" "$(fnd "$SRC" -size -2k -type f)" "find -size -2k"
is "$(fnd "$M/cpa" -links +1 -type f)" "$(fnd "$SRC" -links +1 -type f)" "find -links +1"
is "$(fnd "$M/cpa" -newermt 2002-01-01 -name small.txt)" "" "find -newermt sees the old mtime"
is "$(fnd "$M/cpa" -name '*.csv')" "./d1/d2/d3/table.csv" "find -name"
run_ok "du -s runs" du -s "$M/cpa"
is "$(du -s --apparent-size -b "$M/cpa/d1/d2/big" | cut -f1)" "$(stat -c %s "$SRC/d1/d2/big")" "du --apparent-size -b of a file"
k=$(du -sk "$M/big" | cut -f1)
ok $(( k >= 3000 ? 0 : 1 )) "du -k of a 3.3 MB random file counts its blocks ($k KiB)"

# --- dd ----------------------------------------------------------------------
head -c $((50 << 20)) /dev/urandom > "$T/50m"
want=$(md5sum < "$T/50m")
run_ok "dd 50 MiB in with bs=1M" dd if="$T/50m" of="$M/50m" bs=1M status=none
is "$(stat -c %s "$M/50m")" $((50 << 20)) "its size"
is "$(dd if="$M/50m" bs=1M status=none | md5sum)" "$want" "dd it back: same md5"
run_ok "dd conv=fsync,notrunc a 4 KiB patch into the middle" \
	sh -c "head -c 4096 /dev/zero | dd of='$M/50m' bs=4096 seek=6000 conv=notrunc,fsync status=none"
head -c 4096 /dev/zero | dd of="$T/50m" bs=4096 seek=6000 conv=notrunc status=none
is "$(md5sum < "$M/50m")" "$(md5sum < "$T/50m")" "the patched file matches the patched reference"
is "$(dd if="$M/50m" bs=7777 skip=1000 count=300 status=none | md5sum)" \
	"$(dd if="$T/50m" bs=7777 skip=1000 count=300 status=none | md5sum)" "dd read at an odd block size and offset"
rm -f "$M/50m"

# --- truncate ----------------------------------------------------------------
for D in "$M" "$L"; do
	head -c 2500000 "$T/50m" > "$D/tr"
done
for sz in 3M 10000000 1048576 1048575 100 0 777777; do
	truncate -s "$sz" "$M/tr"; r=$?
	truncate -s "$sz" "$L/tr"
	ok $r "truncate -s $sz"
	is "$(stat -c %s "$M/tr") $(md5sum < "$M/tr")" "$(stat -c %s "$L/tr") $(md5sum < "$L/tr")" "after truncate -s $sz: same size and content"
done
truncate -s +1M "$M/tr"; truncate -s +1M "$L/tr"
is "$(md5sum < "$M/tr")" "$(md5sum < "$L/tr")" "truncate -s +1M grows with zeroes"

# --- sqlite3 (fcntl locks, rollback journal, WAL needs shared mmap) ----------
if have sqlite3; then
	DB=$M/db/test.db; mkdir -p "$M/db"
	q() { timeout 60 sqlite3 "$@" 2>&1; }
	run_ok "sqlite3: create a table" q "$DB" "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, v REAL);"
	python3 -c "
print('BEGIN;')
for i in range(1000): print(\"INSERT INTO t(name, v) VALUES('row%d-%s', %d.5);\" % (i, 'x'*(i%200), i))
print('COMMIT;')" > "$T/ins.sql"
	run_ok "sqlite3: insert 1000 rows in a transaction" sh -c "timeout 60 sqlite3 '$DB' < '$T/ins.sql'"
	is "$(q "$DB" 'PRAGMA journal_mode;')" delete "sqlite3: default rollback journal"
	is "$(q "$DB" 'SELECT count(*), sum(v) FROM t;')" "1000|500000.0" "sqlite3: count and sum"
	is "$(q "$DB" 'PRAGMA integrity_check;')" ok "sqlite3: integrity_check"
	run_ok "sqlite3: update and delete" q "$DB" "BEGIN; UPDATE t SET v = v + 1; DELETE FROM t WHERE id % 2 = 0; COMMIT; VACUUM;"
	is "$(q "$DB" 'SELECT count(*), sum(v) FROM t; PRAGMA integrity_check;')" "$(printf '500|250250.0\nok')" "sqlite3: after update, delete, vacuum"
	# two writers at once: fcntl locks must serialize them
	( for i in $(seq 1 20); do q "$DB" ".timeout 10000" "INSERT INTO t(name) VALUES('a$i');" >/dev/null; done ) &
	pa=$!
	for i in $(seq 1 20); do q "$DB" ".timeout 10000" "INSERT INTO t(name) VALUES('b$i');" >/dev/null; done
	wait $pa
	is "$(q "$DB" "SELECT count(*) FROM t WHERE name LIKE 'a%' OR name LIKE 'b%'; PRAGMA integrity_check;")" "$(printf '40\nok')" \
		"sqlite3: two concurrent writers, no lost insert (fcntl locks)"
	W=$M/db/wal.db
	jm=$(q "$W" "PRAGMA journal_mode=WAL;")
	is "$jm" wal "sqlite3: PRAGMA journal_mode=WAL is accepted"
	run_ok "sqlite3 WAL: create a table" q "$W" "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, v REAL);"
	run_ok "sqlite3 WAL: insert 1000 rows in a transaction" sh -c "timeout 60 sqlite3 '$W' < '$T/ins.sql'"
	is "$(q "$W" 'PRAGMA journal_mode; SELECT count(*) FROM t; PRAGMA integrity_check;')" "$(printf 'wal\n1000\nok')" \
		"sqlite3 WAL: count and integrity_check"
	# WAL readers and writers in several processes share the -shm file by mmap
	( for i in $(seq 1 20); do q "$W" ".timeout 10000" "INSERT INTO t(name) VALUES('a$i');" >/dev/null; done ) & pa=$!
	( for i in $(seq 1 20); do q "$W" ".timeout 10000" "SELECT count(*) FROM t;" >/dev/null; done ) & pr=$!
	for i in $(seq 1 20); do q "$W" ".timeout 10000" "INSERT INTO t(name) VALUES('b$i');" >/dev/null; done
	wait $pa $pr
	is "$(q "$W" "SELECT count(*) FROM t; PRAGMA integrity_check;")" "$(printf '1040\nok')" \
		"sqlite3 WAL: two concurrent writers and a reader, no lost insert"
	out=$(timeout 60 python3 - "$W" <<'EOF' 2>&1
import sqlite3, subprocess, sys
c = sqlite3.connect(sys.argv[1], timeout=10)
a = c.execute("SELECT count(*) FROM t").fetchone()[0]
subprocess.run(["sqlite3", sys.argv[1], "INSERT INTO t(name) VALUES('other');"], check=True)
b = c.execute("SELECT count(*) FROM t").fetchone()[0]
c.execute("DELETE FROM t WHERE name = 'other'"); c.commit()
d = subprocess.run(["sqlite3", sys.argv[1], "SELECT count(*) FROM t;"], capture_output=True, text=True).stdout.strip()
print(a, b, d)
EOF
)
	is "$out" "1040 1041 1040" "sqlite3 WAL: an open connection sees another process's commit, and back"
	run_ok "sqlite3 WAL: checkpoint" q "$W" "PRAGMA wal_checkpoint(TRUNCATE);"
	is "$(q "$W" 'PRAGMA integrity_check;')" ok "sqlite3 WAL: integrity after checkpoint"
else skip "sqlite3 not installed"; fi

# --- git ---------------------------------------------------------------------
if have git; then
	export HOME=$T/home GIT_CONFIG_NOSYSTEM=1 \
		GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@example.com \
		GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@example.com
	mkdir -p "$HOME"
	G=$M/git/repo
	g() { timeout 120 git -C "$@" 2>&1; }
	mkdir -p "$G"
	run_ok "git init" g "$G" init -q -b main
	cp -r "$SRC/d1" "$G/"; printf 'line %d\n' $(seq 1 500) > "$G/README"
	run_ok "git add" g "$G" add -A
	run_ok "git commit" g "$G" commit -q -m first
	echo "second" >> "$G/README"; git -C "$G" mv README README.txt >/dev/null 2>&1
	run_ok "git commit a change and a rename" g "$G" commit -q -am second
	is "$(g "$G" log --format=%s | tr '\n' ' ')" "second first " "git log"
	is "$(g "$G" status --porcelain)" "" "git status is clean"
	run_ok "git gc" g "$G" gc -q
	run_ok "git fsck" g "$G" fsck --strict
	run_ok "git clone inside the mount" g "$M/git" clone -q repo clone
	is "$(g "$M/git/clone" rev-parse HEAD)" "$(g "$G" rev-parse HEAD)" "the clone has the same HEAD"
	is "$(g "$M/git/clone" status --porcelain)" "" "the clone's status is clean"
	run_ok "git fsck in the clone" g "$M/git/clone" fsck --strict
	run_ok "clone's work tree equals the repo's" diff -r -x .git "$G" "$M/git/clone"
	run_ok "git clone --no-local (pack transfer) inside the mount" g "$M/git" clone -q --no-local repo clone2
	run_ok "git fsck in that clone" g "$M/git/clone2" fsck --strict
else skip "git not installed"; fi

# --- xattrs ------------------------------------------------------------------
if have setfattr && have getfattr; then
	f=$M/xattr; echo x > "$f"
	run_ok "setfattr user.a" setfattr -n user.a -v hello "$f"
	is "$(getfattr --absolute-names --only-values -n user.a "$f" 2>&1)" hello "getfattr user.a"
	run_ok "setfattr a binary value" setfattr -n user.bin -v 0x00ff00fe "$f"
	is "$(getfattr --absolute-names -e hex -n user.bin "$f" 2>&1 | grep '^user')" user.bin=0x00ff00fe "getfattr -e hex of the binary value"
	run_ok "replace a value" setfattr -n user.a -v world "$f"
	is "$(getfattr --absolute-names --only-values -n user.a "$f" 2>&1)" world "the new value"
	is "$(getfattr -d --absolute-names "$f" 2>&1 | grep '^user\.' | LC_ALL=C sort | tr '\n' ' ')" 'user.a="world" user.bin=0sAP8A/g== ' "getfattr -d lists both"
	run_ok "setfattr -x removes" setfattr -x user.a "$f"
	run_fail "getfattr of a removed name fails" getfattr -n user.a "$f"
	run_fail "setfattr -x of an absent name fails" setfattr -x user.nope "$f"
	big=$(head -c 3000 /dev/zero | tr '\0' v)
	run_ok "a 3000-byte value" setfattr -n user.big -v "$big" "$f"
	is "$(getfattr --absolute-names --only-values -n user.big "$f" 2>&1)" "$big" "reads back"
	run_ok "xattr on a directory" setfattr -n user.d -v dir "$M/mv"
	is "$(getfattr --absolute-names --only-values -n user.d "$M/mv" 2>&1)" dir "getfattr on the directory"
else skip "getfattr/setfattr not installed (package attr)"; fi

# --- persistence of all the above --------------------------------------------
before=$(shape "$M"; sums "$M")
run_ok "unmount" lfs_umount "$MNT"
run_ok "remount" lfs_mount "$MNT" "$S"
after=$(shape "$M"; sums "$M")
if [ "$before" = "$after" ]; then ok 0 "everything above survives a remount"
else ok 1 "everything above survives a remount"; diag "$(diff <(echo "$before") <(echo "$after") | head -30)"; fi
if have sqlite3; then
	is "$(q "$M/db/wal.db" 'SELECT count(*) FROM t; PRAGMA integrity_check;')" "$(printf '1040\nok')" "sqlite3 WAL db after remount"
fi
if have git; then run_ok "git fsck after remount" g "$M/git/repo" fsck --strict; fi
if have getfattr; then is "$(getfattr --absolute-names -e hex -n user.bin "$M/xattr" 2>&1 | grep '^user')" user.bin=0x00ff00fe "xattr after remount"; fi

# --- a directory of 100,000 entries ------------------------------------------
N=100000
BIG=$M/many
mkdir "$BIG"
t0=$(date +%s)
timeout 300 python3 -c "
import os, sys
d = sys.argv[1]
for i in range(int(sys.argv[2])):
    os.close(os.open(os.path.join(d, 'f%06d' % i), os.O_CREAT | os.O_WRONLY, 0o644))
" "$BIG" $N; rc=$?
t1=$(date +%s)
ok $rc "create $N empty files in one directory"
diag "creating $N files took $((t1 - t0)) s"
ok $(( t1 - t0 < 60 ? 0 : 1 )) "creating them took under a minute ($((t1 - t0)) s)"
t0=$(date +%s)
is "$(cd "$BIG" && timeout 120 ls -f | wc -l)" $((N + 2)) "ls -f lists $N entries plus . and .."
t1=$(date +%s)
diag "ls -f took $((t1 - t0)) s"
ok $(( t1 - t0 < 60 ? 0 : 1 )) "ls -f took under a minute ($((t1 - t0)) s)"
is "$(timeout 120 find "$BIG" | wc -l)" $((N + 1)) "find lists them all"
is "$(timeout 120 find "$BIG" | LC_ALL=C sort -u | wc -l)" $((N + 1)) "each exactly once"
is "$(timeout 120 ls "$BIG" | tail -1)" "f$(printf %06d $((N - 1)))" "ls (sorted) ends with the last name"
run_ok "stat of one entry" stat "$BIG/f054321"
t0=$(date +%s)
is "$(cd "$BIG" && timeout 120 ls -l | wc -l)" $((N + 1)) "ls -l stats them all"
t1=$(date +%s)
diag "ls -l took $((t1 - t0)) s"
run_ok "unmount with the big directory" lfs_umount "$MNT"
run_ok "remount" lfs_mount "$MNT" "$S"
t0=$(date +%s)
is "$(cd "$BIG" && timeout 120 ls -f | wc -l)" $((N + 2)) "after a remount, ls -f still lists $N entries plus . and .."
t1=$(date +%s)
diag "cold ls -f took $((t1 - t0)) s"
ok $(( t1 - t0 < 60 ? 0 : 1 )) "cold ls -f took under a minute ($((t1 - t0)) s)"
t0=$(date +%s)
run_ok "rm -rf of the directory" timeout 300 rm -rf "$BIG"
t1=$(date +%s)
diag "rm -rf took $((t1 - t0)) s"
run_ok "it is gone" test ! -e "$BIG"

run_ok "final unmount" lfs_umount "$MNT"
done_testing
