#!/usr/bin/env bash
# t0650-bucket-stress.sh — the bucket layer under concurrent churn.
#
# A small local cap (cache_size=6M with 64 KiB blocks, so eviction and
# fetching never stop) and four writers at once for a bounded time: each
# writes files from a shared pool of contents (so blocks are shared and
# deduplicated across files), rewrites some in place, deletes others
# (freeing blocks that may still be queued or being fetched), and reads
# back what it wrote, checking every byte. Then: lakefs sync, lakefs verify
# --deep, unmount, restore, and the restored tree matches the manifest.
# The workers write in a volume (MNT/t/files/v: the mount root holds
# catalogs only).
# Run under SANITIZE=address (LFS_BIN=build-asan/bin) this is the race
# test of sync/remote.c's table, queue, eviction and deferred deletion.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../s3lib.sh"

[ -e /dev/fuse ] || skip_all "no /dev/fuse"
need_cmd fusermount3 sha256sum python3

SEED=${LFS_SEED:-$(( ($(date +%s) ^ $$) % 1000000 ))}
echo "# seed $SEED (replay with LFS_SEED=$SEED)"
SECS=${LFS_STRESS_SECS:-20}

s3_start; ok $? "s3rver up on 127.0.0.1:$S3_PORT"
[ -n "$S3_PID" ] || { echo "Bail out! no s3rver"; exit 1; }

M=$T/m
lfs_mount "$M" "$T/s" --block-size 64K --store "s3://$S3_BUCKET/stress" \
	--endpoint "$S3_ENDPOINT" -o cache_size=6M,cache_mem=2M
ok $? "mount with a 6 MiB local cap, 64 KiB blocks and a 2 MiB block cache"
# the workers write in a volume (the mount root holds catalogs only)
D=$(lfs_volume "$M"); ok $? "make a volume"

# a worker: python, seeded, bounded in time; exits non-zero on any mismatch
cat >"$T/worker.py" <<'EOF'
import hashlib, os, random, sys, time
root, wid, seed, secs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
rnd = random.Random(seed * 31 + wid)
pool = [random.Random(seed * 7 + k).randbytes(64 * 1024) for k in range(24)]
d = os.path.join(root, "w%d" % wid)
os.makedirs(d, exist_ok=True)
want = {}
end = time.time() + secs
ops = 0
def content():
    n = rnd.randint(1, 12)
    return b"".join(pool[rnd.randrange(len(pool))] for _ in range(n)) + rnd.randbytes(rnd.randint(0, 5000))
while time.time() < end:
    op = rnd.random()
    name = os.path.join(d, "f%d" % rnd.randrange(40))
    if op < 0.45:
        data = content()
        with open(name, "wb") as f:
            f.write(data)
        want[name] = data
    elif op < 0.6 and name in want:
        data = bytearray(want[name])
        off = rnd.randrange(len(data))
        patch = pool[rnd.randrange(len(pool))][: rnd.randint(1, 70000)]
        data[off:off + len(patch)] = patch
        with open(name, "r+b") as f:
            f.seek(off)
            f.write(patch)
        want[name] = bytes(data)
    elif op < 0.75 and name in want:
        os.unlink(name)
        del want[name]
    else:
        if name in want:
            with open(name, "rb") as f:
                got = f.read()
            if got != want[name]:
                print("worker %d: %s differs (%d vs %d bytes)" % (wid, name, len(got), len(want[name])))
                sys.exit(1)
    ops += 1
for name, data in want.items():
    with open(name, "rb") as f:
        if f.read() != data:
            print("worker %d: %s differs at the end" % (wid, name))
            sys.exit(1)
print("worker %d: %d ops, %d files" % (wid, ops, len(want)))
EOF

pids=""
for w in 1 2 3 4; do
	timeout $((SECS + 120)) python3 "$T/worker.py" "$D" "$w" "$SEED" "$SECS" >"$T/w$w.log" 2>&1 &
	pids="$pids $!"
done
fail=0
for p in $pids; do wait "$p" || fail=1; done
ok $fail "4 workers for ${SECS} s: writes, in-place rewrites, deletes, reads, every byte checked"
[ $fail -eq 0 ] || diag "$(cat "$T"/w*.log)"
diag "$(cat "$T"/w*.log | tr '\n' ';')"
ev=$(timeout 10 cat "$M/.lakefs/status" | sed -n 's/^ *"evicted_blocks": *\([0-9]*\).*/\1/p')
fe=$(timeout 10 cat "$M/.lakefs/status" | sed -n 's/^ *"fetched_blocks": *\([0-9]*\).*/\1/p')
ok $([ "${ev:-0}" -gt 0 ] && [ "${fe:-0}" -gt 0 ] && echo 0 || echo 1) \
	"the cap was at work: $ev blocks evicted, $fe fetched back"

run_ok "lakefs sync" timeout 180 "$BIN/lakefs" sync "$M" --quiet --timeout 170
out=$(timeout 300 "$BIN/lakefs" verify "$M" --deep 2>&1); rc=$?
ok $rc "lakefs verify --deep finds every referenced block whole in the bucket"
[ $rc -eq 0 ] || diag "$out"
(cd "$M" && find . -path ./.lakefs -prune -o -type f -print0 | LC_ALL=C sort -z |
	xargs -0 sha256sum) >"$T/want"
lfs_umount "$M"; ok $? "unmount"

timeout 120 "$BIN/lakefs" restore --store "s3://$S3_BUCKET/stress" \
	--endpoint "$S3_ENDPOINT" --state "$T/r" >"$T/restore.log" 2>&1
ok $? "restore"
lfs_mount "$T/mr" "$T/r" -o cache_size=6M; ok $? "mount the restored state"
(cd "$T/mr" && find . -path ./.lakefs -prune -o -type f -print0 | LC_ALL=C sort -z |
	xargs -0 sha256sum) >"$T/got"
if diff -q "$T/want" "$T/got" >/dev/null && [ -s "$T/want" ]; then
	ok 0 "the restored tree matches ($(wc -l <"$T/want") files)"
else
	ok 1 "the restored tree matches"; diag "$(diff "$T/want" "$T/got" | head)"
fi
lfs_umount "$T/mr"

done_testing
