#!/bin/sh
# tools/demo.sh BIN STATE MNT — mount a demo lakefs and land sample data.
#
# Called by `make demo` as `sh tools/demo.sh build/bin /var/lib/lakefs/demo
# /mnt/lake`. Idempotent: if MNT is already a lakefs mount it is reused (a
# mount left behind by a dead daemon is cleared and mounted again), and the
# sample files are written only when they are missing. The samples are
# generated here, deterministically (awk and printf, no network), so every
# run lands the same bytes.
#
# Each file is written under a temporary name starting with '.' and then
# renamed onto its final name: the way a careful tool lands a file, and how
# lakefs tells finished files from files in flight.
#
# The samples land in the bronze tables of the catalog sales (which comes
# with its schemas bronze, silver and gold): sales/bronze/orders/ (CSV),
# sales/bronze/btc_prices/ (JSON lines) and sales/bronze/quotes/ (CSV).
# lakefs promotes each to a typed silver table, sales/silver/TABLE/; the
# demo waits for that (lakefs wait), defines three gold tables in SQL over
# them (sales/gold/NAME.sql: revenue per day, the average Bitcoin price
# per hour, the latest quote per ticker), waits for their refresh and
# shows the results.
set -eu

if [ $# -ne 3 ]; then
	echo "usage: sh tools/demo.sh BIN STATE MNT" >&2
	exit 2
fi
bin=$1 state=$2 mnt=$3

die() {
	echo "demo: $*" >&2
	exit 1
}

[ -x "$bin/lakefs-mount" ] || die "$bin/lakefs-mount not found (run make first)"
[ -x "$bin/lakefs" ] || die "$bin/lakefs not found (run make first)"

# The fstype of the mount on $1 in /proc/mounts, or nothing.
mount_type() {
	awk -v m="$1" '$2 == m { t = $3 } END { if (t != "") print t }' /proc/mounts
}

mkdir -p "$mnt" 2>/dev/null || true
case $mnt in
/*) ;;
*) mnt=$(pwd)/$mnt ;;
esac
mnt=$(cd "$mnt" 2>/dev/null && pwd -P || echo "$mnt")

type=$(mount_type "$mnt")
if [ "$type" = fuse.lakefs ] && ! ls "$mnt" >/dev/null 2>&1; then
	echo "demo: $mnt is a dead lakefs mount (its daemon is gone); clearing it"
	fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt" ||
		die "cannot clear the dead mount on $mnt"
	type=$(mount_type "$mnt")
fi

if [ "$type" = fuse.lakefs ]; then
	echo "demo: $mnt is already a lakefs mount:"
	grep " $mnt fuse.lakefs " /proc/mounts | sed 's/^/  /'
elif [ -n "$type" ]; then
	die "$mnt is already mounted ($type), not by lakefs; pick another mount point"
else
	[ -d "$mnt" ] || die "cannot create mount point $mnt"
	echo "demo: mounting $state on $mnt"
	"$bin/lakefs-mount" --state "$state" "$mnt" ||
		die "lakefs-mount failed (see the message above)"
fi

# land TABLE NAME: write stdin to MNT/sales/bronze/TABLE/.NAME.tmp, then
# rename it to NAME (making the table first).
land() {
	dir=sales/bronze/$1
	mkdir -p "$mnt/$dir" || die "cannot make the table $mnt/$dir"
	if [ -s "$mnt/$dir/$2" ]; then
		echo "demo: $dir/$2 is already there"
		cat >/dev/null
		return 0
	fi
	cat >"$mnt/$dir/.$2.tmp"
	mv "$mnt/$dir/.$2.tmp" "$mnt/$dir/$2"
	echo "demo: landed $dir/$2"
}

# the catalog sales (bronze, silver and gold come with it)
mkdir -p "$mnt/sales" || die "cannot make the catalog $mnt/sales"

# Orders: 50 rows over the first ten days of November 2026. The random
# numbers come from a Park-Miller generator (exact in awk's doubles).
awk 'BEGIN {
	split("alice bob carol dave erin frank grace heidi ivan judy", cust, " ")
	split("widget gadget gizmo sprocket doohickey", prod, " ")
	split("4.99 12.50 7.25 0.89 19.95", price, " ")
	x = 42
	print "order_id,date,customer,product,quantity,unit_price"
	for (i = 0; i < 50; i++) {
		x = (x * 16807) % 2147483647; c = x % 10 + 1
		x = (x * 16807) % 2147483647; p = x % 5 + 1
		x = (x * 16807) % 2147483647; q = x % 5 + 1
		printf "%d,2026-11-%02d,%s,%s,%d,%s\n", 10001 + i, int(i / 5) + 1,
		    cust[c], prod[p], q, price[p]
	}
}' | land orders 2026-11-01_10.csv

# Bitcoin-like prices: JSON lines, one an hour for two days, a random walk.
awk 'BEGIN {
	x = 7; cents = 6800000
	for (i = 0; i < 48; i++) {
		x = (x * 16807) % 2147483647
		cents += x % 40001 - 20000
		printf "{\"timestamp\": \"2026-11-%02dT%02d:00:00Z\", \"price_usd\": %d.%02d}\n",
		    int(i / 24) + 1, i % 24, int(cents / 100), cents % 100
	}
}' | land btc_prices btc_2026-11-01.jsonl

# Stock quotes: four tickers, one quote a minute for ten minutes.
awk 'BEGIN {
	split("AAPL MSFT NVDA SAP", tick, " ")
	split("23150 41875 14210 24760", base, " ")
	x = 11
	print "ticker,ts,bid,ask"
	for (m = 0; m < 10; m++)
		for (t = 1; t <= 4; t++) {
			x = (x * 16807) % 2147483647
			base[t] += x % 61 - 30
			x = (x * 16807) % 2147483647
			spread = x % 5 + 1
			printf "%s,2026-11-02T14:%02d:00Z,%d.%02d,%d.%02d\n", tick[t], 30 + m,
			    int(base[t] / 100), base[t] % 100,
			    int((base[t] + spread) / 100), (base[t] + spread) % 100
		}
}' | land quotes quotes_2026-11-02.csv

# gold tables: SQL over silver, refreshed when silver changes
define() {
	if [ -s "$mnt/sales/gold/$1.sql" ]; then
		cat >/dev/null
		echo "demo: sales/gold/$1.sql is already there"
		return 0
	fi
	cat >"$mnt/sales/gold/$1.sql" || die "sales/gold/$1.sql was refused: $(cat "$mnt/sales/gold/$1/_error" 2>/dev/null)"
	echo "demo: defined sales/gold/$1.sql"
}
echo "demo: waiting for the silver tables (lakefs wait)"
"$bin/lakefs" wait "$mnt" --timeout 60 || die "promotion did not finish in 60 s (see: $bin/lakefs jobs $mnt)"
define daily_revenue <<'SQL'
-- revenue per day from the orders
SELECT date AS day,
       count(*) AS orders,
       round(sum(quantity * unit_price), 2) AS revenue
FROM silver.orders
GROUP BY date
ORDER BY date
SQL
define btc_hourly <<'SQL'
-- the average Bitcoin price per hour
SELECT substr(timestamp, 1, 13) || ':00:00Z' AS hour,
       round(avg(price_usd), 2) AS avg_price_usd,
       count(*) AS samples
FROM silver.btc_prices
GROUP BY 1
ORDER BY 1
SQL
define latest_quotes <<'SQL'
-- the latest quote per ticker
WITH ranked AS (
    SELECT ticker, ts, bid, ask,
           row_number() OVER (PARTITION BY ticker ORDER BY ts DESC) AS rn
    FROM silver.quotes
)
SELECT ticker, ts, bid, ask FROM ranked WHERE rn = 1 ORDER BY ticker
SQL
echo "demo: waiting for the gold tables (lakefs wait)"
"$bin/lakefs" wait "$mnt" --timeout 60 || die "gold refresh did not finish in 60 s (see: $bin/lakefs jobs $mnt)"
echo
echo "\$ ls $mnt/sales $mnt/sales/bronze $mnt/sales/silver"
ls "$mnt/sales" "$mnt/sales/bronze" "$mnt/sales/silver"
echo
echo "\$ head -4 $mnt/sales/silver/orders/orders.csv"
head -4 "$mnt/sales/silver/orders/orders.csv"
echo
echo "\$ head -2 $mnt/sales/silver/btc_prices/btc_prices.jsonl"
head -2 "$mnt/sales/silver/btc_prices/btc_prices.jsonl"
echo
echo "\$ cat $mnt/sales/silver/quotes/_schema.json"
cat "$mnt/sales/silver/quotes/_schema.json"
echo
echo "\$ cat $mnt/sales/gold/daily_revenue.sql"
cat "$mnt/sales/gold/daily_revenue.sql"
echo
echo "\$ head -4 $mnt/sales/gold/daily_revenue/daily_revenue.csv"
head -4 "$mnt/sales/gold/daily_revenue/daily_revenue.csv"
echo
echo "\$ cat $mnt/sales/gold/latest_quotes/latest_quotes.csv"
cat "$mnt/sales/gold/latest_quotes/latest_quotes.csv"
echo
echo "\$ lakefs jobs $mnt"
"$bin/lakefs" jobs "$mnt"
echo
# every user of the machine may read gold (grants are idempotent)
"$bin/lakefs" grant USE ON "$mnt/sales" TO everyone >/dev/null &&
	"$bin/lakefs" grant READ ON "$mnt/sales/gold" TO everyone >/dev/null ||
	die "cannot grant the demo's gold tables to everyone"
echo "\$ lakefs grant USE ON $mnt/sales TO everyone"
echo "\$ lakefs grant READ ON $mnt/sales/gold TO everyone"
echo "\$ lakefs grants $mnt/sales/gold"
"$bin/lakefs" grants "$mnt/sales/gold"
echo
echo "The demo lakefs is mounted on $mnt (state in $state)."
echo "Land more: cp FILE.csv $mnt/sales/bronze/orders/ ; read: $mnt/sales/silver/orders/"
echo "Every user may read $mnt/sales/gold; bronze and silver are root's (lakefs(7) ACCESS)."
echo "To unmount it: fusermount3 -u $mnt"
