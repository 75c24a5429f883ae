// Measures the SQLite task store on this machine's disk: a stream of task lifecycles offered at fixed rates (insert →
// dispatched → running (lazy) → succeeded, each step awaiting durability as the coordinator does), then single
// commits, batch inserts, a big series and reopen. Prints tables; writes nothing outside its temp directory.
//   npm run build && node dist/bench/store-bench.js [--dir DIR] [--rates 1000,5000,20000] [--seconds 3] [--quick]
//     [--module PATH]
// --module runs the same workload against another build's store module (e.g. an older commit's
// dist/coordinator/tasks/sqlite-store.js), for before/after figures; lazy puts are plain puts where the store has
// no such option. --dir should be on the disk the coordinator will use (default os.tmpdir()).
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { MemoryTaskStore } from "../coordinator/store/memory-store.js";
import { newTaskId } from "../coordinator/tasks/task-manager.js";
import { newTaskRecord, type TaskRecord, type TaskSpec } from "../coordinator/tasks/types.js";
import { fmtInt, fmtMs, summarize } from "./measure.js";

/** What the benchmark uses of a store: today's and older builds' (close() was synchronous, put had no options). */
interface BenchStore {
  insert(tasks: readonly TaskRecord[]): void;
  put(task: TaskRecord, opts?: { lazy?: boolean }): void;
  get(id: string): TaskRecord | undefined;
  flush(): Promise<void>;
  close(): void | Promise<void>;
  stats?(): { commits: number; rowsWritten: number; bytesWritten?: number; meanCommitMs?: number };
}
interface StoreModule {
  SqliteTaskStore: { open(dir: string): BenchStore };
}

const spec = (over: Partial<TaskSpec> = {}): TaskSpec => ({
  name: "bench",
  handler: "stats",
  deviceId: "sensor-1",
  priority: "normal",
  mode: "local",
  input: { values: [1, 2, 3] },
  series: undefined,
  memoryBytes: 1 << 20,
  cpuMillis: 100,
  estimatedMs: 0,
  deadline: undefined,
  maxRetries: 2,
  clusterId: "",
  labels: { site: "bench" },
  disconnectWindowMs: undefined,
  ...over,
});

let seq = 0;
const task = (over: Partial<TaskSpec> = {}): TaskRecord => {
  const s = ++seq;
  const now = Date.now();
  return newTaskRecord({ id: newTaskId(now), spec: spec(over), now, seq: s, idempotencyKey: `key-${s}` });
};

// The transitions as task-manager makes them: new objects, the changed attempt replaced, the others kept.
function toDispatched(t: TaskRecord): TaskRecord {
  const now = Date.now();
  const attempt = t.attempt + 1;
  return {
    ...t,
    state: "dispatched",
    attempt,
    assignedNode: "node-1",
    assignedCluster: "site-a",
    updatedAt: now,
    queuedMs: now - t.queuedAt,
    attempts: [
      ...t.attempts,
      {
        attempt,
        nodeId: "node-1",
        clusterId: "site-a",
        outcome: undefined,
        error: "",
        dispatchedAt: now,
        startedAt: undefined,
        finishedAt: undefined,
        processingMs: 0,
        peakMemoryBytes: 0,
        placementReason: "least loaded",
      },
    ],
  };
}
function toRunning(t: TaskRecord): TaskRecord {
  const now = Date.now();
  return { ...t, state: "running", updatedAt: now, attempts: t.attempts.map((a) => (a.attempt === t.attempt ? { ...a, startedAt: now } : a)) };
}
function toSucceeded(t: TaskRecord): TaskRecord {
  const now = Date.now();
  return {
    ...t,
    state: "succeeded",
    updatedAt: now,
    finishedAt: now,
    output: { mean: 2, count: 3 },
    attempts: t.attempts.map((a) => (a.attempt === t.attempt ? { ...a, outcome: "succeeded", finishedAt: now, processingMs: 3, peakMemoryBytes: 65536 } : a)),
  };
}

/**
 * CPU time of the main thread (its kernel task is the process id) in ms, from /proc (Linux; 10 ms ticks): what the
 * store costs the event loop, which wall-clock loop utilisation overstates on a shared machine. NaN elsewhere.
 */
function mainThreadCpuMs(): number {
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // utime and stime are fields 14 and 15 of stat(5), i.e. 11 and 12 after the command name.
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return Number.NaN;
  }
}

async function timed(f: () => Promise<void> | void): Promise<number> {
  const t0 = performance.now();
  await f();
  return performance.now() - t0;
}

interface StreamResult {
  offered: number;
  completed: number;
  wallMs: number;
  commits: number;
  rows: number;
  bytes: number;
  /** Main-thread CPU per completed task; CPU of every other thread (the commit worker, GC helpers) per task. */
  mainCpuMsPerTask: number;
  otherCpuMsPerTask: number;
  /** flush() latencies: call to resolve, as a SubmitTask, a dispatch or a result ack waits. */
  flushMs: number[];
  /**
   * Whole lifecycles, from the moment the task was due (its place in the offered schedule) to its durable result:
   * unlike flush latency, this includes the time a write waited for an event loop blocked by a commit.
   */
  lifecycleMs: number[];
  meanCommitMs: number | undefined;
}

/**
 * Offers `rate` task lifecycles per second for `seconds` (open loop: a 1 ms ticker submits whatever is due, so a
 * blocked event loop is followed by a burst), then waits until every started lifecycle has finished.
 */
async function stream(store: BenchStore, rate: number, seconds: number): Promise<StreamResult> {
  const flushMs: number[] = [];
  const lifecycleMs: number[] = [];
  const durable = async (): Promise<void> => {
    const t0 = performance.now();
    await store.flush();
    flushMs.push(performance.now() - t0);
  };
  let completed = 0;
  let started = 0;
  const lifecycle = async (t: TaskRecord, due: number): Promise<void> => {
    store.insert([t]);
    await durable(); // SubmitTask acknowledges once durable
    let cur = toDispatched(t);
    store.put(cur);
    await durable(); // the dispatch is durable before the agent hears of it
    await new Promise<void>((r) => setImmediate(r)); // the agent's accept arrives later
    cur = toRunning(cur);
    store.put(cur, { lazy: true });
    await new Promise<void>((r) => setImmediate(r)); // … and its result after that
    cur = toSucceeded(store.get(cur.id) ?? cur);
    store.put(cur);
    await durable(); // the result is acknowledged once durable
    lifecycleMs.push(performance.now() - due);
    completed += 1;
  };
  const before = store.stats?.();
  const main0 = mainThreadCpuMs();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const running: Promise<void>[] = [];
  await new Promise<void>((done) => {
    const timer = setInterval(() => {
      const elapsed = performance.now() - t0;
      const due = Math.min(rate * seconds, Math.floor((rate * elapsed) / 1000));
      for (; started < due; started++) running.push(lifecycle(task(), t0 + (started * 1000) / rate));
      if (started >= rate * seconds) {
        clearInterval(timer);
        done();
      }
    }, 1);
  });
  await Promise.all(running);
  const wallMs = performance.now() - t0;
  const mainMs = mainThreadCpuMs() - main0;
  const cpu = process.cpuUsage(cpu0);
  const after = store.stats?.();
  return {
    offered: started,
    completed,
    wallMs,
    commits: after && before ? after.commits - before.commits : Number.NaN,
    rows: after && before ? after.rowsWritten - before.rowsWritten : Number.NaN,
    bytes: after?.bytesWritten !== undefined && before?.bytesWritten !== undefined ? after.bytesWritten - before.bytesWritten : Number.NaN,
    mainCpuMsPerTask: mainMs / completed,
    otherCpuMsPerTask: ((cpu.user + cpu.system) / 1000 - mainMs) / completed,
    flushMs,
    lifecycleMs,
    meanCommitMs: after?.meanCommitMs,
  };
}

interface MicroRow {
  what: string;
  samples: number[];
  /** Rows written per sample, for a rows/s figure. */
  rowsPerSample?: number;
}

async function micro(mod: StoreModule, dir: string, quick: boolean): Promise<MicroRow[]> {
  const rows: MicroRow[] = [];
  let store = mod.SqliteTaskStore.open(dir);
  store.insert([task()]);
  await store.flush();
  const singles = quick ? 50 : 300;
  const ids: string[] = [];
  const insertOne: number[] = [];
  for (let i = 0; i < singles; i++) {
    const t = task();
    ids.push(t.id);
    insertOne.push(
      await timed(() => {
        store.insert([t]);
        return store.flush();
      }),
    );
  }
  rows.push({ what: "insert 1 task + flush (one commit)", samples: insertOne, rowsPerSample: 2 });
  const putOne: number[] = [];
  for (const id of ids)
    putOne.push(
      await timed(() => {
        store.put(toDispatched(store.get(id)!));
        return store.flush();
      }),
    );
  rows.push({ what: "put 1 task (dispatched) + flush", samples: putOne });

  const batch = quick ? 2_000 : 10_000;
  const inserts: number[] = [];
  const batchIds: string[] = [];
  for (let r = 0; r < 3; r++) {
    const ts = Array.from({ length: batch }, () => task());
    batchIds.push(...ts.map((t) => t.id));
    inserts.push(
      await timed(() => {
        store.insert(ts);
        return store.flush();
      }),
    );
  }
  rows.push({ what: `insert ${fmtInt(batch)} tasks in one batch + flush`, samples: inserts, rowsPerSample: 2 * batch });
  const group: number[] = [];
  for (let r = 0; r < 10; r++) {
    const slice = batchIds.slice(r * 1000, (r + 1) * 1000);
    group.push(
      await timed(() => {
        for (const id of slice) store.put(toDispatched(store.get(id)!));
        return store.flush();
      }),
    );
  }
  rows.push({ what: "1,000 puts (dispatched) in one turn + flush", samples: group });

  const points = quick ? 100_000 : 1_000_000;
  const values = Array.from({ length: points }, (_, i) => Math.sin(i));
  const timestamps = Array.from({ length: points }, (_, i) => 1_700_000_000_000 + i);
  const big = task({ series: { values, timestamps } });
  rows.push({
    what: `insert 1 task with a ${fmtInt(points)}-point series + flush`,
    samples: [
      await timed(() => {
        store.insert([big]);
        return store.flush();
      }),
    ],
  });
  rows.push({
    what: "put that task + flush (spec not rewritten)",
    samples: [
      await timed(() => {
        store.put(toDispatched(big));
        return store.flush();
      }),
    ],
  });
  const reopen = await timed(async () => {
    await store.close();
    store = mod.SqliteTaskStore.open(dir);
  });
  rows.push({ what: `close + reopen (load ${fmtInt(seq)} tasks)`, samples: [reopen] });
  await store.close();
  return rows;
}

function table(head: string[], body: string[][]): void {
  const all = [head, ...body];
  const widths = head.map((_, c) => Math.max(...all.map((row) => row[c].length)));
  for (const [i, row] of all.entries()) {
    console.log(row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join("  "));
    if (i === 0) console.log(widths.map((w) => "-".repeat(w)).join("  "));
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      dir: { type: "string" },
      quick: { type: "boolean", default: false },
      module: { type: "string" },
      rates: { type: "string", default: "1000,5000,20000" },
      seconds: { type: "string", default: "3" },
    },
  });
  const quick = values.quick ?? false;
  const seconds = quick ? 1 : Number(values.seconds);
  const rates = values.rates!.split(",").map(Number);
  if (!(seconds > 0) || rates.some((r) => !(r > 0))) throw new Error("--seconds and --rates take positive numbers, e.g. --rates 1000,5000 --seconds 3");
  const modulePath = values.module ? resolve(values.module) : new URL("../coordinator/store/sqlite-store.js", import.meta.url);
  const mod = (await import(typeof modulePath === "string" ? pathToFileURL(modulePath).href : modulePath.href)) as StoreModule;
  const root = mkdtempSync(join(values.dir ?? tmpdir(), "edgeplane-store-bench-"));
  try {
    console.log(`SQLite task store (WAL, synchronous = FULL) from ${typeof modulePath === "string" ? modulePath : modulePath.pathname}, files in ${root}`);
    console.log(
      "\nTask lifecycles (insert, dispatched, running lazy, succeeded; each but running awaits flush), offered for " +
        `${seconds} s each. CPU per task: the main thread's, and every other thread's (the commit worker), each minus the same\n` +
        "run with the memory store (the harness alone). flush: call to resolve. lifecycle: from the task's due time to its durable\n" +
        "result (3 durable steps; includes time a write waited for a blocked event loop). txn: one transaction in the worker, fsync included.",
    );
    const body: string[][] = [];
    for (const rate of rates) {
      const base = await stream(new MemoryTaskStore(), rate, seconds);
      const store = mod.SqliteTaskStore.open(join(root, `stream-${rate}`));
      // One durable write first, so the stream does not start while a commit worker is still starting.
      store.insert([task()]);
      await store.flush();
      const r = await stream(store, rate, seconds);
      await store.close();
      const f = summarize(r.flushMs);
      const l = summarize(r.lifecycleMs);
      const perS = (n: number) => fmtInt((n / r.wallMs) * 1000);
      body.push([
        fmtInt(rate),
        perS(r.completed),
        perS(r.commits),
        perS(r.rows),
        Number.isNaN(r.bytes) ? "n/a" : fmtInt(r.bytes / r.completed),
        fmtMs(r.mainCpuMsPerTask - base.mainCpuMsPerTask),
        fmtMs(r.otherCpuMsPerTask - base.otherCpuMsPerTask),
        fmtMs(f.p50),
        fmtMs(f.p99),
        fmtMs(l.p50),
        fmtMs(l.p99),
        r.meanCommitMs === undefined ? "n/a" : fmtMs(r.meanCommitMs),
      ]);
    }
    table(
      [
        "offered/s",
        "done/s",
        "commits/s",
        "rows/s",
        "bytes/task",
        "main cpu ms/task",
        "other cpu ms/task",
        "flush p50 ms",
        "flush p99 ms",
        "lifecycle p50 ms",
        "lifecycle p99 ms",
        "txn mean ms",
      ],
      body,
    );

    console.log("\nSingle operations");
    const rows = await micro(mod, join(root, "micro"), quick);
    table(
      ["", "n", "p50 ms", "p99 ms", "max ms", "rows/s"],
      rows.map((r) => {
        const s = summarize(r.samples);
        return [r.what, String(s.n), fmtMs(s.p50), fmtMs(s.p99), fmtMs(s.max), r.rowsPerSample === undefined ? "" : fmtInt((r.rowsPerSample / s.mean) * 1000)];
      }),
    );
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exitCode = 1;
});
