// tests/bench/duckdb-copy.mjs — the DuckDB baseline of bench-lake.sh:
// read a CSV (types sniffed) and write it back as CSV, on 2 threads.
// Prints "SECONDS PEAK_RSS_MIB". Resolves @duckdb/node-api from
// tests/node_modules (installed by tools/deps.sh).
import { DuckDBInstance } from '@duckdb/node-api';

const [src, dst] = process.argv.slice(2);
const inst = await DuckDBInstance.create(':memory:', { threads: '2' });
const con = await inst.connect();
const quote = (s) => `'${s.replaceAll("'", "''")}'`;
const t0 = performance.now();
await con.run(`COPY (SELECT * FROM read_csv_auto(${quote(src)})) TO ${quote(dst)} (HEADER, DELIMITER ',')`);
const t1 = performance.now();
console.log(((t1 - t0) / 1000).toFixed(3), Math.round(process.resourceUsage().maxRSS / 1024));
