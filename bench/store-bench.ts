// Measures the SQLite task store on this machine's disk: the latency of one durable commit (what SubmitTask waits
// for), group commit, batched insert throughput and reopen time. Prints a table; writes nothing outside its directory.
//   npm run build && node dist/bench/store-bench.js [--dir DIR] [--quick]
// --dir should be on the disk the coordinator will use (default os.tmpdir(), which may be a RAM disk where fsync is
// free). The benchmark works in a new directory inside it and removes that directory afterwards.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { SqliteTaskStore } from "../coordinator/store/sqlite-store.js";
import type { TaskRecord, TaskSpec } from "../coordinator/tasks/types.js";

interface Row {
  what: string;
  n: number;
  samples: number[];
  /** Rows written per sample, for a rows/s figure. */
  rowsPerSample?: number;
}

const spec = (over: Partial<TaskSpec> = {}): TaskSpec => ({
  name: "bench", handler: "stats", deviceId: "sensor-1", priority: "normal", mode: "local", input: { values: [1, 2, 3] },
  series: undefined, memoryBytes: 1 << 20, cpuMillis: 100, estimatedMs: 0, deadline: undefined, maxRetries: 2, clusterId: "",
  labels: { site: "bench" }, disconnectWindowMs: undefined, ...over,
});

let seq = 0;
const task = (over: Partial<TaskSpec> = {}): TaskRecord => {
  const s = ++seq;
  return {
    id: `t-${s}`, spec: spec(over), state: "queued", attempt: 0, assignedCluster: "", assignedNode: "", output: undefined,
    error: "", createdAt: Date.now(), updatedAt: Date.now(), finishedAt: undefined, attempts: [], idempotencyKey: `key-${s}`,
    queuedAt: Date.now(), queuedMs: 0, notBefore: 0, seq: s, preemptions: 0,
  };
};

async function timed(f: () => Promise<void> | void): Promise<number> {
  const t0 = performance.now();
  await f();
  return performance.now() - t0;
}

async function measure(dir: string, quick: boolean): Promise<Row[]> {
  const rows: Row[] = [];
  let store = SqliteTaskStore.open(dir);
  const singles = quick ? 50 : 300;

  const insertOne: number[] = [];
  for (let i = 0; i < singles; i++) insertOne.push(await timed(() => { store.insert([task()]); return store.flush(); }));
  rows.push({ what: "insert 1 task + flush (one commit)", n: singles, samples: insertOne, rowsPerSample: 2 });

  const putOne: number[] = [];
  for (let i = 0; i < singles; i++) {
    const t = store.get(`t-${i + 1}`)!;
    putOne.push(await timed(() => { store.put({ ...t, state: "dispatched", attempt: 1, updatedAt: Date.now() }); return store.flush(); }));
  }
  rows.push({ what: "put 1 task + flush (one commit)", n: singles, samples: putOne, rowsPerSample: 1 });

  const batch = quick ? 2_000 : 10_000;
  const inserts: number[] = [];
  const ids: string[] = [];
  for (let r = 0; r < 3; r++) {
    const ts = Array.from({ length: batch }, () => task());
    ids.push(...ts.map((t) => t.id));
    inserts.push(await timed(() => { store.insert(ts); return store.flush(); }));
  }
  rows.push({ what: `insert ${batch.toLocaleString("en-US")} tasks in one batch + flush`, n: 3, samples: inserts, rowsPerSample: 2 * batch });

  const group: number[] = [];
  for (let r = 0; r < 10; r++) {
    const slice = ids.slice(r * 1000, (r + 1) * 1000);
    group.push(await timed(() => {
      for (const id of slice) store.put({ ...store.get(id)!, state: "dispatched", attempt: 1, updatedAt: Date.now() });
      return store.flush();
    }));
  }
  rows.push({ what: "1,000 puts in one turn + flush (group commit)", n: 10, samples: group, rowsPerSample: 1000 });

  const turns: number[] = [];
  turns.push(await timed(async () => {
    for (let r = 0; r < 100; r++) {
      store.insert(Array.from({ length: 100 }, () => task()));
      await store.flush();
    }
  }));
  rows.push({ what: "100 turns × insert 100 tasks + flush", n: 1, samples: turns, rowsPerSample: 2 * 100 * 100 });

  const points = quick ? 100_000 : 1_000_000;
  const values = Array.from({ length: points }, (_, i) => Math.sin(i));
  const timestamps = Array.from({ length: points }, (_, i) => 1_700_000_000_000 + i);
  const big = task({ series: { values, timestamps } });
  rows.push({ what: `insert 1 task with a ${points.toLocaleString("en-US")}-point series + flush`, n: 1, samples: [await timed(() => { store.insert([big]); return store.flush(); })] });
  rows.push({ what: "put that task + flush (spec not rewritten)", n: 1, samples: [await timed(() => { store.put({ ...big, state: "dispatched" }); return store.flush(); })] });

  const total = store.list({}, 1, "").tasks[0]?.seq ?? 0;
  const reopen = await timed(() => { store.close(); store = SqliteTaskStore.open(dir); });
  rows.push({ what: `close + reopen (load ${total.toLocaleString("en-US")} tasks)`, n: 1, samples: [reopen] });
  store.close();
  return rows;
}

function pct(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length))) - 1];
}

function print(rows: Row[], dir: string): void {
  const ms = (x: number) => (x < 10 ? x.toFixed(2) : x.toFixed(0));
  const table = [["", "n", "p50 ms", "p99 ms", "max ms", "rows/s"]];
  for (const r of rows) {
    const s = [...r.samples].sort((a, b) => a - b);
    const mean = s.reduce((a, b) => a + b, 0) / s.length;
    const rate = r.rowsPerSample === undefined ? "" : Math.round((r.rowsPerSample / mean) * 1000).toLocaleString("en-US");
    table.push([r.what, String(r.n), ms(pct(s, 0.5)), ms(pct(s, 0.99)), ms(s[s.length - 1]), rate]);
  }
  const widths = table[0].map((_, c) => Math.max(...table.map((row) => row[c].length)));
  console.log(`SQLite task store (WAL, synchronous = FULL) in ${dir}`);
  for (const [i, row] of table.entries()) {
    console.log(row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join("  "));
    if (i === 0) console.log(widths.map((w) => "-".repeat(w)).join("  "));
  }
  console.log("rows/s counts task and spec rows (an insert writes both, a put only the task row).");
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { dir: { type: "string" }, quick: { type: "boolean", default: false } } });
  const dir = mkdtempSync(join(values.dir ?? tmpdir(), "edgeplane-store-bench-"));
  try {
    print(await measure(dir, values.quick ?? false), dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exitCode = 1;
});
