#!/usr/bin/env bash
# t0770-lake-bucket.sh — the lakehouse comes back from the bucket alone.
#
# A catalog with two bronze tables is mirrored to s3rver: CSV batches land
# and are promoted (one with a drop expectation, so the quarantine has a
# row), `lakefs sync` ships blocks and metadata, the state directory is
# deleted, `lakefs restore` rebuilds it. After the mount:
#   - the silver tables read back byte for byte (CSV, JSON lines, schema,
#     history, quarantine), and the bronze files too;
#   - the catalog records came back: silver is still read-only, a name rule
#     still refused, the properties still set;
#   - nothing is ingested again (the batches were seen, the jobs done);
#   - a new batch makes version 3 of the table, appended to the restored
#     rows; landing a restored file's bytes again is still a no-op.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../s3lib.sh"
. "$(dirname "$0")/../lakelib.sh"

[ -e /dev/fuse ] || skip_all "no /dev/fuse"
need_cmd fusermount3 sha256sum python3 setfattr getfattr

s3_start; ok $? "s3rver up on 127.0.0.1:$S3_PORT"
[ -n "$S3_PID" ] || { echo "Bail out! no s3rver"; exit 1; }

STORE=(--store "s3://$S3_BUCKET/lake" --endpoint "$S3_ENDPOINT")
lfs_mount "$M" "$S" "${STORE[@]}" || { echo "Bail out! cannot mount"; exit 1; }
ok 0 "mount a fresh state mirrored to s3://$S3_BUCKET/lake"
mkdir "$M/shop" && mkdir "$M/shop/bronze/orders" "$M/shop/bronze/events"
ok $? "catalog shop with tables orders and events"
setfattr -n user.lakefs.expect.positive -v 'drop amount > 0' "$M/shop/bronze/orders"
ok $? "a drop expectation on orders"

python3 - "$T" <<'EOF'
import random, sys
rnd = random.Random(7)
with open(sys.argv[1] + "/o1.csv", "w") as f:
    f.write("id,amount,day\n")
    for i in range(5000):
        f.write("%d,%.2f,2026-11-%02d\n" % (i, rnd.uniform(-5, 100), i % 28 + 1))
with open(sys.argv[1] + "/o2.csv", "w") as f:
    f.write("id,amount,day,region\n")
    for i in range(5000, 6000):
        f.write("%d,%.2f,2026-12-%02d,eu\n" % (i, rnd.uniform(1, 100), i % 28 + 1))
with open(sys.argv[1] + "/o3.csv", "w") as f:
    f.write("id,amount,day,region\n")
    for i in range(6000, 6100):
        f.write("%d,%.2f,2026-12-%02d,us\n" % (i, rnd.uniform(1, 100), i % 28 + 1))
with open(sys.argv[1] + "/e1.jsonl", "w") as f:
    for i in range(300):
        f.write('{"t":"2026-11-01T00:%02d:%02dZ","kind":"click","n":%d}\n' % (i // 60, i % 60, i))
EOF
cp "$T/o1.csv" "$M/shop/bronze/orders/" && lwait 60
cp "$T/o2.csv" "$M/shop/bronze/orders/" && cp "$T/e1.jsonl" "$M/shop/bronze/events/" && lwait 60
ok $? "three batches promoted"
O=$(silver shop orders)
is "$(last_hist "$O" version)" 2 "orders is at version 2"
nq=$(cat "$O"/_quarantine/*.jsonl 2>/dev/null | wc -l)
ok $([ "$nq" -gt 0 ] && echo 0 || echo 1) "the expectation dropped $nq rows into the quarantine"

manifest() {  # manifest OUT: every file of the catalog, and its sha256
	( cd "$M/shop" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum ) >"$1"
}
manifest "$T/before"
jobs_before=$(njobs)
ok $([ "$(wc -l <"$T/before")" -ge 10 ] && echo 0 || echo 1) \
	"manifest of the catalog: $(wc -l <"$T/before") files"
out=$(timeout 180 "$BIN/lakefs" sync "$M" --timeout 150 2>&1)
ok $? "lakefs sync: $out"
lfs_umount "$M"; ok $? "unmount"
rm -rf "$S"

out=$(timeout 120 "$BIN/lakefs" restore "${STORE[@]}" --state "$S" 2>&1)
ok $? "lakefs restore: $out"
lfs_mount "$M" "$S" || { echo "Bail out! cannot mount the restored state"; exit 1; }
ok 0 "mount the restored state"
lwait 30
manifest "$T/after"
if diff -u "$T/before" "$T/after" >"$T/diff"; then ok 0 "every bronze and silver file reads back byte for byte"
else ok 1 "every bronze and silver file reads back byte for byte"; diag "$(head -20 "$T/diff")"; fi
is "$(njobs)" "$jobs_before" "the restored jobs are listed, and no job ran again"
is "$(jobs_in queued)$(jobs_in running)" "00" "nothing queued or running"

is "$(errno_of "open('$O/orders.csv', 'a')")" EROFS "silver is still read-only"
is "$(errno_of "os.mkdir('$M/shop/bad name')")" EINVAL "a bad schema name is still refused"
is "$(errno_of "open('$M/shop/x.csv', 'w')")" EPERM "a file in a catalog is still refused"
is "$(getfattr --only-values -n user.lakefs.expect.positive "$M/shop/bronze/orders" 2>/dev/null)" \
	"drop amount > 0" "the table's property came back"

rows_before=$(wc -l <"$O/orders.csv")
cp "$T/o3.csv" "$M/shop/bronze/orders/" && lwait 60
ok $? "a new batch after the restore"
is "$(last_hist "$O" version)" 3 "it made version 3"
is "$(wc -l <"$O/orders.csv")" $((rows_before + 100)) "its 100 rows follow the restored ones"
is "$(last_hist "$O" rewrite)" false "appended, not rewritten"
cp "$T/o1.csv" "$M/shop/bronze/orders/again.csv" && lwait 30
is "$(last_hist "$O" version)" 3 "landing restored bytes again under a new name is a no-op"

lfs_umount "$M"; ok $? "unmount"
s3_stop
done_testing
