#!/usr/bin/env bash
# t0700-namespace: the lakehouse namespace through the real mount, with
# ordinary tools. The root holds catalogs only; mkdir of a catalog makes its
# schemas bronze, silver and gold; mkdir in a catalog makes a volume schema
# and mkdir in that a volume, below which the tree is plain POSIX. Each
# refusal is checked twice: by the tool's message (strerror text) and by
# the errno a python3 os.* call gets:
#   - files, symlinks, fifos, hard links directly in the root, a catalog or
#     a schema: EPERM
#   - names of catalogs, schemas, tables and volumes: 1-64 of [A-Za-z0-9_-],
#     not starting with _ or -: EINVAL otherwise (inside a volume any name)
#   - silver and gold are read-only to users: EROFS (gold takes regular
#     files: definitions, t0800)
#   - catalogs, schemas, tables and volumes keep their names: EPERM
#   - renames and hard links between two volumes: EXDEV (mv copies)
#   - rmdir of a catalog: ENOTEMPTY; of bronze, silver, gold: EPERM
# and all of it after a remount.
. "$(dirname "$0")/../lib.sh"

need_cmd fusermount3 python3 mkfifo setfattr getfattr cmp
[ -x "$BIN/lakefs-mount" ] || skip_all "lakefs-mount not built (run make)"
[ -e /dev/fuse ] || skip_all "no /dev/fuse"

M=$T/mnt
S=$T/state

# refuses DESCRIPTION ERRTEXT CMD...: CMD fails and its message says ERRTEXT
refuses() {
	_d=$1 _e=$2; shift 2
	_out=$(timeout 30 "$@" 2>&1); _rc=$?
	case $_rc:$_out in
	0:*|124:*) ok 1 "$_d"; diag "exit $_rc: $_out (want a failure saying '$_e')" ;;
	*"$_e"*) ok 0 "$_d" ;;
	*) ok 1 "$_d"; diag "exit $_rc: $_out (want '$_e')" ;;
	esac
}
# errno_of OP PATH [ARG]: what a python3 os.* call gets, as an errno name
# (EPERM, EXDEV, ...) or OK. OPs: create, mkdir, symlink, mkfifo, mknod,
# link, rename, rmdir, setxattr, chmod.
errno_of() {
	timeout 30 python3 - "$@" <<'EOF'
import errno, os, stat, sys
op, p = sys.argv[1], sys.argv[2]
a = sys.argv[3] if len(sys.argv) > 3 else None
try:
    if op == "create":  os.close(os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    elif op == "mkdir": os.mkdir(p)
    elif op == "symlink": os.symlink(a or "target", p)
    elif op == "mkfifo": os.mkfifo(p)
    elif op == "mknod": os.mknod(p, 0o644 | stat.S_IFREG)
    elif op == "link": os.link(p, a)
    elif op == "rename": os.rename(p, a)
    elif op == "rmdir": os.rmdir(p)
    elif op == "setxattr": os.setxattr(p, "user.t0700", b"v")
    elif op == "chmod": os.chmod(p, 0o700)
    else: sys.exit("unknown op " + op)
    print("OK")
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))
EOF
}
# errno_is DESCRIPTION WANT OP PATH [ARG]
errno_is() { _d=$1 _w=$2; shift 2; is "$(errno_of "$@" 2>&1)" "$_w" "$_d"; }
# lsA DIR: the listing of DIR, one name a line, in C order
lsA() { LC_ALL=C timeout 30 ls -A "$1" 2>&1; }

lfs_mount "$M" "$S" || { echo "Bail out! cannot mount lakefs"; exit 1; }

# --- a fresh root ------------------------------------------------------------
is "$(lsA "$M")" ".lakefs" "a fresh root lists .lakefs only"

# --- catalog, volume schema, volume -----------------------------------------
C=$M/sales
run_ok "mkdir of a catalog in the root" mkdir "$C"
is "$(lsA "$C")" "$(printf 'bronze\ngold\nsilver')" "the catalog comes with bronze, gold, silver"
for s in bronze silver gold; do
	ok $(test -d "$C/$s" && [ -z "$(lsA "$C/$s")" ] && echo 0 || echo 1) "$s is an empty directory"
done
is "$(lsA "$M")" "$(printf '.lakefs\nsales')" "the root lists .lakefs and the catalog"
run_ok "mkdir of a volume schema in the catalog" mkdir "$C/files"
is "$(lsA "$C")" "$(printf 'bronze\nfiles\ngold\nsilver')" "the catalog lists it beside the three schemas"
is "$(lsA "$C/files")" "" "a new volume schema is empty"
run_ok "mkdir of a volume in the volume schema" mkdir "$C/files/docs"
V=$C/files/docs
is "$(lsA "$V")" "" "a new volume is empty"
run_ok "a second volume" mkdir "$C/files/other"
V2=$C/files/other
D=$(lfs_volume "$M"); ok $? "lfs_volume makes MNT/t/files/v"
is "$D" "$M/t/files/v" "and prints its path"
is "$(lfs_volume "$M")" "$D" "lfs_volume again (mkdir -p) is a no-op that succeeds"
is "$(lsA "$M/t")" "$(printf 'bronze\nfiles\ngold\nsilver')" "mkdir -p made the catalog's schemas too"

# --- below a volume: plain POSIX --------------------------------------------
echo "hello volume" > "$V/hello.txt"; ok $? "echo > a file in a volume"
is "$(cat "$V/hello.txt" 2>&1)" "hello volume" "it reads back"
run_ok "touch in a volume" touch "$V/touched"
run_ok "mkdir -p a tree in a volume" mkdir -p "$V/a/b/c"
run_ok "ln -s in a volume" ln -s ../hello.txt "$V/a/link"
is "$(cat "$V/a/link" 2>&1)" "hello volume" "read through the symlink"
run_ok "ln (hard link) in a volume" ln "$V/hello.txt" "$V/a/b/hard"
is "$(stat -c %h "$V/hello.txt")" 2 "link count 2"
run_ok "mkfifo in a volume" mkfifo "$V/fifo"
is "$(stat -c %F "$V/fifo" 2>&1)" fifo "it is a fifo"
run_ok "mv within a volume" mv "$V/touched" "$V/a/b/c/moved"
run_ok "mv a directory within a volume" mv "$V/a/b/c" "$V/c"
run_ok "setfattr in a volume" setfattr -n user.color -v blue "$V/hello.txt"
is "$(getfattr --absolute-names --only-values -n user.color "$V/hello.txt" 2>&1)" blue "getfattr reads it back"
run_ok "cp -r within a volume" cp -r "$V/a" "$V/a-copy"
run_ok "rm -r within a volume" rm -r "$V/a-copy"

# --- names -------------------------------------------------------------------
n64=$(printf 'N%.0s' $(seq 1 64)); n65=${n64}x
run_ok "a 64-character catalog name is fine" mkdir "$M/$n64"
is "$(lsA "$M/$n64")" "$(printf 'bronze\ngold\nsilver')" "and it is a catalog"
refuses "mkdir of a 65-character catalog: Invalid argument" "Invalid argument" mkdir "$M/$n65"
errno_is "... EINVAL" EINVAL mkdir "$M/${n65}y"
refuses "a 65-character volume name: Invalid argument" "Invalid argument" mkdir "$C/files/$n65"
for bad in _x -x a.b "sp ace" 'é'; do
	refuses "catalog name '$bad': Invalid argument" "Invalid argument" mkdir -- "$M/$bad"
done
errno_is "catalog name '_x': EINVAL" EINVAL mkdir "$M/_x"
errno_is "catalog name '-x': EINVAL" EINVAL mkdir "$M/-x"
refuses "schema name '_x' in a catalog: Invalid argument" "Invalid argument" mkdir "$C/_x"
errno_is "schema name '-x' in a catalog: EINVAL" EINVAL mkdir "$C/-x"
refuses "volume name '_x' in a schema: Invalid argument" "Invalid argument" mkdir "$C/files/_x"
errno_is "volume name 'a.b' in a schema: EINVAL" EINVAL mkdir "$C/files/a.b"
run_ok "Names_With-digits_09 are fine for a volume" mkdir "$C/files/Names_With-digits_09"
run_ok "inside a volume a directory may start with _" mkdir "$V/_private"
run_ok "inside a volume a file may start with _" touch "$V/_SUCCESS"
run_ok "inside a volume a file may start with -" touch -- "$V/-dash"
run_ok "inside a volume names may hold dots and spaces" touch "$V/a name.with dots"
run_ok "inside a volume a 65-character name is fine" touch "$V/$n65"
is "$(lsA "$M" | grep -c '^[_-]')" 0 "no refused name reached the root's listing"

# --- no files, symlinks, fifos, links in the root, a catalog or a schema ----
for where in "$M" "$C" "$C/files" "$C/bronze"; do
	w=${where#$T/}
	refuses "touch in $w: Operation not permitted" "Operation not permitted" touch "$where/f"
	refuses "echo > in $w: Operation not permitted" "Operation not permitted" sh -c "echo x > '$where/f'"
	refuses "ln -s in $w: Operation not permitted" "Operation not permitted" ln -s target "$where/l"
	refuses "mkfifo in $w: Operation not permitted" "Operation not permitted" mkfifo "$where/p"
	refuses "ln (hard link) from a volume into $w: Operation not permitted" "Operation not permitted" \
		ln "$V/hello.txt" "$where/h"
	errno_is "create in $w: EPERM" EPERM create "$where/f"
	errno_is "symlink in $w: EPERM" EPERM symlink "$where/l"
	errno_is "mkfifo in $w: EPERM" EPERM mkfifo "$where/p"
	errno_is "mknod in $w: EPERM" EPERM mknod "$where/n"
	errno_is "link in $w: EPERM" EPERM link "$V/hello.txt" "$where/h"
	ok $(test ! -e "$where/f" && test ! -L "$where/l" && test ! -e "$where/p" && test ! -e "$where/h" && echo 0 || echo 1) \
		"nothing was created in $w"
done
refuses "cp a file to the root: Operation not permitted" "Operation not permitted" cp "$V/hello.txt" "$M/"
refuses "mv a file from a volume to the root: Operation not permitted" "Operation not permitted" mv "$V/hello.txt" "$M/"
errno_is "rename from a volume into a schema: EPERM" EPERM rename "$V/hello.txt" "$C/files/hello.txt"
ok $(test -f "$V/hello.txt" && echo 0 || echo 1) "the file stayed in its volume"

# --- silver and gold are read-only ------------------------------------------
for s in silver gold; do
	refuses "mkdir in $s: Read-only file system" "Read-only file system" mkdir "$C/$s/t1"
	errno_is "mkdir in $s: EROFS" EROFS mkdir "$C/$s/t1"
	if [ "$s" = silver ]; then
		refuses "touch in $s: Read-only file system" "Read-only file system" touch "$C/$s/f"
		errno_is "create in $s: EROFS" EROFS create "$C/$s/f"
	else	# gold holds regular files: NAME.sql definitions (t0800)
		run_ok "touch in gold: a regular file is allowed" touch "$C/gold/f"
		refuses "mkfifo in gold: Operation not permitted" "Operation not permitted" mkfifo "$C/gold/p"
		refuses "ln -s in gold: Operation not permitted" "Operation not permitted" ln -s x "$C/gold/l"
		run_ok "and removed again" rm "$C/gold/f"
	fi
	refuses "setfattr on $s: Read-only file system" "Read-only file system" setfattr -n user.x -v 1 "$C/$s"
	errno_is "setxattr on $s: EROFS" EROFS setxattr "$C/$s"
	refuses "chmod of $s: Read-only file system" "Read-only file system" chmod 700 "$C/$s"
	errno_is "rename from a volume into $s: EROFS" EROFS rename "$V/hello.txt" "$C/$s/hello.txt"
	is "$(lsA "$C/$s")" "" "$s is still empty"
done
run_ok "bronze takes a table (mkdir)" mkdir "$C/bronze/orders"

# --- securables keep their names --------------------------------------------
refuses "mv of a catalog: Operation not permitted" "Operation not permitted" mv "$C" "$M/sales2"
errno_is "rename of a catalog: EPERM" EPERM rename "$C" "$M/sales2"
refuses "mv of a schema: Operation not permitted" "Operation not permitted" mv "$C/bronze" "$C/raw"
errno_is "rename of a volume schema: EPERM" EPERM rename "$C/files" "$C/files2"
refuses "mv of a volume: Operation not permitted" "Operation not permitted" mv "$V" "$C/files/docs2"
errno_is "rename of a volume: EPERM" EPERM rename "$V" "$C/files/docs2"
errno_is "rename of a table: EPERM" EPERM rename "$C/bronze/orders" "$C/bronze/orders2"
errno_is "rename of a volume onto another volume: EPERM" EPERM rename "$V2" "$V"
is "$(lsA "$M" | grep -v "^$n64\$")" "$(printf '.lakefs\nsales\nt')" "the root is unchanged"
is "$(lsA "$C")" "$(printf 'bronze\nfiles\ngold\nsilver')" "the catalog is unchanged"
is "$(lsA "$C/files")" "$(printf 'Names_With-digits_09\ndocs\nother')" "the volume schema is unchanged"

# --- rmdir -------------------------------------------------------------------
refuses "rmdir of a catalog: Directory not empty" "Directory not empty" rmdir "$C"
errno_is "rmdir of a catalog: ENOTEMPTY" ENOTEMPTY rmdir "$M/$n64"
for s in bronze silver gold; do
	refuses "rmdir of $s: Operation not permitted" "Operation not permitted" rmdir "$C/$s"
	errno_is "rmdir of $s: EPERM" EPERM rmdir "$C/$s"
done
is "$(lsA "$C")" "$(printf 'bronze\nfiles\ngold\nsilver')" "the catalog still has its schemas"
run_ok "rmdir of an empty directory inside a volume" rmdir "$V/_private"

# --- between volumes: EXDEV, mv copies --------------------------------------
# (each check on its own names, so that one wrong answer does not cascade)
printf 'across %d\n' $(seq 1 3000) > "$T/across.ref"
for f in across.txt r1 r2 r3 k1 k2 k3; do cp "$T/across.ref" "$V/$f"; done
ino=$(stat -c %i "$V/across.txt")
errno_is "rename between two volumes: EXDEV" EXDEV rename "$V/r1" "$V2/r1"
errno_is "rename between volumes of two catalogs: EXDEV" EXDEV rename "$V/r2" "$D/r2"
errno_is "rename from a volume into a bronze table: EXDEV" EXDEV rename "$V/r3" "$C/bronze/orders/r3"
ok $(test -f "$V/r1" && test -f "$V/r2" && test -f "$V/r3" && test ! -e "$V2/r1" && test ! -e "$D/r2" &&
	test ! -e "$C/bronze/orders/r3" && echo 0 || echo 1) "the refused renames moved nothing"
refuses "ln (hard link) between two volumes: Invalid cross-device link" "Invalid cross-device link" \
	ln "$V/k1" "$V2/hl1"
errno_is "link between two volumes: EXDEV" EXDEV link "$V/k2" "$V2/hl2"
errno_is "link between volumes of two catalogs: EXDEV" EXDEV link "$V/k3" "$D/hl3"
ok $(test ! -e "$V2/hl1" && test ! -e "$V2/hl2" && test ! -e "$D/hl3" &&
	[ "$(stat -c %h "$V/k1" "$V/k2" "$V/k3" | sort -u)" = 1 ] && echo 0 || echo 1) "no link was made"
run_ok "mv of a file between two volumes succeeds" mv "$V/across.txt" "$V2/across.txt"
ok $(test ! -e "$V/across.txt" && echo 0 || echo 1) "the source is gone"
run_ok "the target has the content" cmp "$T/across.ref" "$V2/across.txt"
nino=$(stat -c %i "$V2/across.txt")
ok $([ "$nino" != "$ino" ] && echo 0 || echo 1) "it is a copy: a new inode ($ino -> $nino)"
mkdir -p "$V/tree/sub" && echo deep > "$V/tree/sub/f" && ln -s sub/f "$V/tree/l"
run_ok "mv of a directory tree between two volumes succeeds" mv "$V/tree" "$V2/tree"
ok $(test ! -e "$V/tree" && echo 0 || echo 1) "the source tree is gone"
is "$(cat "$V2/tree/sub/f" 2>&1) $(readlink "$V2/tree/l" 2>&1)" "deep sub/f" "the tree arrived with its file and symlink"
run_ok "cp between volumes of two catalogs" cp "$V2/across.txt" "$D/across.txt"
run_ok "the copy is identical" cmp "$T/across.ref" "$D/across.txt"

# --- .lakefs -----------------------------------------------------------------
lsA "$M" | grep -qx .lakefs; ok $? ".lakefs is still listed in the root"
run_ok ".lakefs/status is still valid JSON" python3 -m json.tool "$M/.lakefs/status"

# --- remount -----------------------------------------------------------------
run_ok "unmount" lfs_umount "$M"
run_ok "remount the same state" lfs_mount "$M" "$S"
is "$(lsA "$M" | grep -v "^$n64\$")" "$(printf '.lakefs\nsales\nt')" "after a remount the root lists .lakefs and the catalogs"
is "$(lsA "$C")" "$(printf 'bronze\nfiles\ngold\nsilver')" "the catalog still has its schemas"
is "$(lsA "$C/files")" "$(printf 'Names_With-digits_09\ndocs\nother')" "the volume schema still has its volumes"
is "$(lsA "$C/bronze")" "orders" "bronze still has its table"
is "$(cat "$V/hello.txt" 2>&1)" "hello volume" "a file in a volume is still readable"
is "$(getfattr --absolute-names --only-values -n user.color "$V/hello.txt" 2>&1)" blue "with its xattr"
run_ok "the file moved across volumes is still there" cmp "$T/across.ref" "$V2/across.txt"
is "$(lfs_volume "$M")" "$D" "lfs_volume after a remount: the same volume"
refuses "creating a file in the root is still refused: Operation not permitted" "Operation not permitted" touch "$M/f"
errno_is "... EPERM" EPERM create "$M/f"
errno_is "a file in a catalog is still refused: EPERM" EPERM create "$C/f"
errno_is "a bad catalog name is still refused: EINVAL" EINVAL mkdir "$M/_x"
errno_is "silver is still read-only: EROFS" EROFS mkdir "$C/silver/t1"
errno_is "a volume still keeps its name: EPERM" EPERM rename "$V" "$C/files/docs2"
errno_is "rename between two volumes still EXDEV" EXDEV rename "$V/_SUCCESS" "$V2/_SUCCESS"
errno_is "rmdir of a catalog still ENOTEMPTY" ENOTEMPTY rmdir "$C"
run_ok "a new catalog after the remount" mkdir "$M/later"
is "$(lsA "$M/later")" "$(printf 'bronze\ngold\nsilver')" "it comes with its schemas too"
run_ok "final unmount" lfs_umount "$M"
done_testing
