// tests/bench/duckdb-query.mjs — the DuckDB baseline of a gold refresh in
// bench-lake.sh (and the reference result of t0800): run one query over a
// CSV file exposed as the view `orders`, on 2 threads.
// Usage: node duckdb-query.mjs FILE.csv 'SQL' [--rows]
// Prints "SECONDS ROWS", or with --rows the result as CSV lines.
import { DuckDBInstance } from '@duckdb/node-api';

const [src, sql, mode] = process.argv.slice(2);
const inst = await DuckDBInstance.create(':memory:', { threads: '2' });
const con = await inst.connect();
const quote = (s) => `'${s.replaceAll("'", "''")}'`;
await con.run(`CREATE VIEW orders AS SELECT * FROM read_csv_auto(${quote(src)})`);
const t0 = performance.now();
const reader = await con.runAndReadAll(sql);
const t1 = performance.now();
const rows = reader.getRows();
if (mode === '--rows') {
	for (const r of rows)
		console.log(r.map((v) => (v === null ? '' : String(v))).join(','));
} else {
	console.log(((t1 - t0) / 1000).toFixed(3), rows.length);
}
