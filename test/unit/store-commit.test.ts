// The SQLite store's commit path: a worker thread commits, group commit batches what arrives while a commit runs,
// lazy writes wait for the next commit (or their bound), failures and worker crashes lose nothing, and a transition
// writes only what changed.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { pathToFileURL } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { StoreWriteError, type SqliteTaskStore } from "../../coordinator/store/sqlite-store.js";
import { encodeSpecRow } from "../../coordinator/store/task-row.js";
import type { AttemptRecord, TaskRecord } from "../../coordinator/tasks/types.js";
import { cleanUp, dispatched, openStore, peek, recordingLogger, running, succeeded, task, tempDir, turn, waitFor } from "../helpers/store-fixtures.js";

afterEach(cleanUp);

const ready = (s: SqliteTaskStore) => waitFor("the commit worker ready", () => s.stats().worker === "ready");

async function reopen(s: SqliteTaskStore, dir: string): Promise<SqliteTaskStore> {
  await s.close();
  return openStore(dir);
}

const rejection = (p: Promise<unknown>): Promise<unknown> =>
  p.then(
    () => undefined,
    (e: unknown) => e,
  );

describe("group commit through the commit worker", () => {
  it("a write queued while a commit is in flight lands in the next commit, and each flush waits for its own", async () => {
    const dir = tempDir();
    const s = openStore(dir, { busyTimeoutMs: 20_000 });
    await ready(s);
    const blocker = peek(dir, false);
    blocker.exec("BEGIN IMMEDIATE"); // holds the write lock: the worker's first commit waits for it
    const a = task();
    s.insert([a]);
    const fa = s.flush();
    await waitFor("the first commit in flight", () => s.stats().commitInFlight);
    const b = task();
    s.insert([b]);
    const fb = s.flush();
    expect(s.stats()).toMatchObject({ commitInFlight: true, pendingWrites: 2, inFlightWrites: 1, commits: 0 });
    blocker.exec("COMMIT");
    await fa;
    // The first commit held a's rows only; b's went into the one after it.
    expect(s.stats()).toMatchObject({ commits: 1, rowsWritten: 2 });
    await fb;
    expect(s.stats()).toMatchObject({ commits: 2, rowsWritten: 4, pendingWrites: 0, commitInFlight: false });
    expect(peek(dir).prepare("SELECT count(*) FROM tasks").pluck().get()).toBe(2);
  });

  it("pendingInsert: a new task's insert stays joinable until a commit takes it; a write made meanwhile shares its transaction", async () => {
    const dir = tempDir();
    const s = openStore(dir, { busyTimeoutMs: 20_000, maxCommitRows: 3 });
    await ready(s);
    const blocker = peek(dir, false);
    blocker.exec("BEGIN IMMEDIATE"); // the first commit waits in flight
    const first = task();
    s.insert([first]);
    const f1 = s.flush();
    await waitFor("the first commit in flight", () => s.stats().commitInFlight);
    expect(s.pendingInsert(first.id)).toBe(false);
    const t = task();
    s.insert([t]);
    expect(s.pendingInsert(t.id)).toBe(true);
    // The dispatch joins the insert's segment even past the row budget (3 rows: task, spec, attempt + more).
    s.put(dispatched(t));
    // One queued write for t (merged), besides the one in flight; after both commits: two transactions, not three.
    expect(s.stats()).toMatchObject({ pendingWrites: 2, inFlightWrites: 1 });
    const f2 = s.flush();
    blocker.exec("COMMIT");
    await f1;
    await f2;
    expect(s.stats().commits).toBe(2);
    expect(s.pendingInsert(t.id)).toBe(false);
    const reopened = await reopen(s, dir);
    expect(reopened.get(t.id)?.state).toBe("dispatched");
    await reopened.close();
  });

  it("close() commits what is queued, lazy writes included, without a flush", async () => {
    const dir = tempDir();
    const s = openStore(dir, { lazyFlushMs: 60_000 });
    const t = task();
    s.insert([t]);
    await s.flush();
    const d = dispatched(t);
    s.put(d);
    s.put(running(d), { lazy: true });
    const again = await reopen(s, dir);
    expect(again.get(t.id)).toStrictEqual(running(d));
  });

  it("a burst bigger than maxCommitRows is committed in several transactions, in order; one insert batch is never split", async () => {
    const dir = tempDir();
    const s = openStore(dir, { maxCommitRows: 100 });
    const ts = Array.from({ length: 250 }, () => task());
    s.insert(ts);
    await s.flush();
    expect(s.stats()).toMatchObject({ commits: 1, rowsWritten: 500 });
    for (const t of ts) s.put({ ...t, state: "cancelled", updatedAt: 9 });
    await s.flush();
    expect(s.stats()).toMatchObject({ commits: 4, rowsWritten: 750, pendingWrites: 0 });
    expect(peek(dir).prepare("SELECT count(*) FROM tasks WHERE state = 'cancelled'").pluck().get()).toBe(250);
  });

  it("a series goes to the worker in shared memory (no copy) and comes back exact", async () => {
    const values = Array.from({ length: 200_000 }, (_, i) => (i % 7 === 0 ? Number.NaN : Math.sin(i)));
    const timestamps = Array.from({ length: 200_000 }, (_, i) => 1_700_000_000_000 + i);
    const t = task({}, { series: { values, timestamps } });
    const row = encodeSpecRow(t);
    expect(row[2]!.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(row[3]!.buffer).toBeInstanceOf(SharedArrayBuffer);
    const dir = tempDir();
    const s = openStore(dir);
    s.insert([t]);
    await s.flush();
    const again = await reopen(s, dir);
    expect(again.get(t.id)!.spec.series).toStrictEqual({ values, timestamps });
  });

  it("a script that writes without flush or close still gets its writes committed before it exits, and is not kept alive after", () => {
    const dist = resolve("dist/coordinator/store/sqlite-store.js");
    if (!existsSync(dist)) throw new Error(`${dist} is missing: run \`npm run build\` (npm test does it first)`);
    const dir = tempDir();
    const child = `
      const [moduleUrl, dir] = process.argv.slice(-2);
      const { SqliteTaskStore } = await import(moduleUrl);
      const spec = { name: "t", handler: "stats", deviceId: "", priority: "normal", mode: "local", input: null, series: undefined,
        memoryBytes: 1, cpuMillis: 1, estimatedMs: 0, deadline: undefined, maxRetries: 0, clusterId: "", labels: {}, disconnectWindowMs: undefined };
      const store = SqliteTaskStore.open(dir, { lazyFlushMs: 50 });
      store.insert([{ id: "t-1", spec, state: "queued", attempt: 0, assignedCluster: "", assignedNode: "", output: undefined, error: "",
        createdAt: 1, updatedAt: 1, finishedAt: undefined, attempts: [], idempotencyKey: "", queuedAt: 1, queuedMs: 0, notBefore: 0, seq: 1, preemptions: 0 }]);
      store.put({ ...store.get("t-1"), error: "lazy", updatedAt: 2 }, { lazy: true });
    `;
    const r = spawnSync(process.execPath, ["--input-type=module", "-e", child, pathToFileURL(dist).href, dir], { encoding: "utf8", timeout: 30_000 });
    expect(r.signal, r.stderr).toBeNull();
    expect(r.status, r.stderr).toBe(0);
    const row = peek(dir).prepare("SELECT state, error FROM tasks WHERE id = 't-1'").get();
    expect(row).toEqual({ state: "queued", error: "lazy" });
  });
});

describe("lazy writes", () => {
  async function started(opts: Parameters<typeof openStore>[1]) {
    const dir = tempDir();
    const s = openStore(dir, opts);
    const t = task();
    s.insert([t]);
    const d = dispatched(t);
    s.put(d);
    await s.flush();
    const row = peek(dir).prepare("SELECT state FROM tasks WHERE id = ?").pluck();
    return { dir, s, d, state: () => row.get(t.id) };
  }

  it("ask for no commit of their own, and go with the next commit anything else asks for", async () => {
    const { s, d, state } = await started({ lazyFlushMs: 60_000 });
    const commits = s.stats().commits;
    s.put(running(d), { lazy: true });
    await turn();
    await sleep(50);
    expect(s.stats()).toMatchObject({ commits, commitInFlight: false, pendingWrites: 1 });
    expect(state()).toBe("dispatched");
    s.insert([task()]);
    await s.flush();
    expect(state()).toBe("running");
    expect(s.stats()).toMatchObject({ commits: commits + 1, pendingWrites: 0 });
  });

  it("flush() waits for lazy writes too", async () => {
    const { s, d, state } = await started({ lazyFlushMs: 60_000 });
    s.put(running(d), { lazy: true });
    await s.flush();
    expect(state()).toBe("running");
  });

  it("reach the disk within their bound when nothing else commits", async () => {
    const { s, d, state } = await started({ lazyFlushMs: 30 });
    const commits = s.stats().commits;
    s.put(running(d), { lazy: true });
    await waitFor("the lazy write on disk", () => state() === "running");
    // The row is on disk once the commit worker's transaction ends; the store counts the commit when the worker's
    // answer reaches this thread, a moment later.
    await waitFor("the commit counted", () => s.stats().commits > commits);
    expect(s.stats()).toMatchObject({ commits: commits + 1, pendingWrites: 0 });
  });

  it("a later non-lazy write of the same task supersedes a queued lazy one: one commit, one write of each row", async () => {
    const { dir, s, d, state } = await started({ lazyFlushMs: 60_000 });
    const before = s.stats();
    const r = running(d);
    s.put(r, { lazy: true });
    const done = succeeded(r);
    s.put(done);
    expect(s.stats().pendingWrites).toBe(1);
    await s.flush();
    const after = s.stats();
    expect(after.commits - before.commits).toBe(1);
    expect(after.rowsWritten - before.rowsWritten).toBe(2); // the tasks row and the attempt's row
    expect(state()).toBe("succeeded");
    expect(peek(dir).prepare("SELECT outcome, started_at FROM attempts WHERE task_id = ?").get(d.id)).toEqual({
      outcome: "succeeded",
      started_at: r.attempts[0].startedAt,
    });
  });
});

describe("failures lose nothing", () => {
  it("a failed commit keeps its writes and is retried with backoff, with no flush asking", async () => {
    const dir = tempDir();
    const log = recordingLogger();
    const s = openStore(dir, { retryBaseMs: 20, logger: log });
    await ready(s);
    s.injectWorkerFault("fail-next-commit");
    const t = task();
    s.insert([t]);
    const err = await rejection(s.flush());
    expect(err).toBeInstanceOf(StoreWriteError);
    expect(((err as Error).cause as { code?: string }).code).toBe("SQLITE_IOERR");
    expect(s.stats()).toMatchObject({ failedCommits: 1, pendingWrites: 1 });
    await waitFor("the retry committed", () => s.stats().commits === 1);
    expect(s.stats()).toMatchObject({ pendingWrites: 0, failedCommits: 1 });
    expect(peek(dir).prepare("SELECT state FROM tasks WHERE id = ?").pluck().get(t.id)).toBe("queued");
    expect(log.lines.filter((l) => l.level === "error").map((l) => l.msg)).toEqual(["task store commit failed; the writes stay queued and are retried"]);
  });

  it("the worker dies mid-commit (before COMMIT): flushes fail until it is restarted, then everything is committed", async () => {
    const dir = tempDir();
    const log = recordingLogger();
    const s = openStore(dir, { retryBaseMs: 200, logger: log });
    const a = task({}, { input: { v: 1 } });
    s.insert([a]);
    await s.flush();
    s.injectWorkerFault("crash-before-commit");
    const b = task();
    s.insert([b]);
    const da = dispatched(a);
    s.put(da);
    const err = await rejection(s.flush());
    expect(err).toBeInstanceOf(StoreWriteError);
    expect((err as Error).message).toMatch(/queued writes/);
    expect(s.stats().worker).toBe("down");
    // While it is down: writes are accepted and queued, flushes fail at once.
    const c = task();
    s.insert([c]);
    expect(await rejection(s.flush())).toBeInstanceOf(StoreWriteError);
    expect(s.stats().pendingWrites).toBe(3);
    await waitFor("the worker restarted", () => s.stats().worker === "ready");
    await s.flush();
    expect(s.stats()).toMatchObject({ workerRestarts: 1, pendingWrites: 0 });
    expect(log.lines.some((l) => l.level === "error" && l.msg === "task store commit worker stopped; the writes stay queued and the worker is restarted")).toBe(
      true,
    );
    const again = await reopen(s, dir);
    expect(again.get(da.id)).toStrictEqual(da);
    expect(again.get(b.id)).toStrictEqual(b);
    expect(again.get(c.id)).toStrictEqual(c);
  });

  it("the worker dies after COMMIT but before saying so: the batch is committed again, and that changes nothing", async () => {
    const dir = tempDir();
    const s = openStore(dir, { retryBaseMs: 20 });
    const a = task();
    s.insert([a]);
    await s.flush();
    s.injectWorkerFault("crash-after-commit");
    const b = task({}, { series: { values: [1, 2, 3], timestamps: [] } });
    s.insert([b]);
    const da = dispatched(dispatched(a, "n1"), "n2");
    s.put(da);
    // Fewer attempts than before: rows past the end are deleted (again) on the second run.
    const shrunk: TaskRecord = { ...da, attempts: da.attempts.slice(0, 1), updatedAt: da.updatedAt + 1 };
    s.put(shrunk);
    expect(await rejection(s.flush())).toBeInstanceOf(StoreWriteError);
    await waitFor("the worker restarted", () => s.stats().worker === "ready");
    await s.flush();
    const again = await reopen(s, dir);
    expect(again.get(a.id)).toStrictEqual(shrunk);
    expect(again.get(b.id)).toStrictEqual(b);
    expect(peek(dir).prepare("SELECT count(*) FROM attempts WHERE task_id = ?").pluck().get(a.id)).toBe(1);
  });
});

describe("a transition writes only what changed", () => {
  /** Rows and bytes each step writes. */
  async function costs(s: SqliteTaskStore, t: TaskRecord): Promise<{ rows: number; bytes: number }[]> {
    const out: { rows: number; bytes: number }[] = [];
    let cur = t;
    for (const step of [dispatched, running, succeeded]) {
      const before = s.stats();
      cur = step(cur);
      s.put(cur);
      await s.flush();
      const after = s.stats();
      out.push({ rows: after.rowsWritten - before.rowsWritten, bytes: after.bytesWritten - before.bytesWritten });
    }
    return out;
  }

  it("the same rows and about the same bytes for a task with a 200 kB input and 30 earlier attempts as for an empty one", async () => {
    const dir = tempDir();
    const s = openStore(dir);
    const history: AttemptRecord[] = Array.from({ length: 30 }, (_, i) => ({
      attempt: i + 1,
      nodeId: `node-${i}`,
      clusterId: "c1",
      outcome: "failed",
      error: "x".repeat(500),
      dispatchedAt: i,
      startedAt: i,
      finishedAt: i + 1,
      processingMs: 1,
      peakMemoryBytes: 1,
      placementReason: "least loaded",
    }));
    const big = task({ attempt: 30, attempts: history, error: "e".repeat(2000) }, { input: { blob: "x".repeat(200_000) } });
    const small = task({ error: "e".repeat(2000) });
    s.insert([big, small]);
    await s.flush();
    const bigCosts = await costs(s, big);
    const smallCosts = await costs(s, small);
    // dispatched: the tasks row + the new attempt's row; running and succeeded: the tasks row + that attempt's row.
    expect(bigCosts.map((c) => c.rows)).toEqual([2, 2, 2]);
    expect(smallCosts.map((c) => c.rows)).toEqual([2, 2, 2]);
    for (let i = 0; i < 3; i++) {
      expect(bigCosts[i].bytes, `step ${i}`).toBeLessThan(300);
      expect(Math.abs(bigCosts[i].bytes - smallCosts[i].bytes), `step ${i}`).toBeLessThanOrEqual(8);
    }
    const again = await reopen(s, dir);
    expect(again.withPayload(again.get(big.id)!)).toStrictEqual(succeeded(running(dispatched(big))));
  });

  it("a put that changes nothing writes nothing", async () => {
    const dir = tempDir();
    const s = openStore(dir);
    const t = task();
    s.insert([t]);
    await s.flush();
    s.put({ ...t });
    expect(s.stats().pendingWrites).toBe(0);
    await s.flush();
    expect(s.stats().commits).toBe(1);
  });

  it("a record put again after being changed in place is written whole, so the change is not lost", async () => {
    const dir = tempDir();
    const s = openStore(dir);
    const t = task();
    s.insert([t]);
    await s.flush();
    const same = s.get(t.id)!;
    same.error = "changed in place"; // against the contract (records are values), but not silently lost
    s.put(same);
    const again = await reopen(s, dir);
    expect(again.get(t.id)!.error).toBe("changed in place");
  });

  it("a field TaskRecord does not know yet (laterField) is stored, reloaded deep-equal, and rewritten only when it changes", async () => {
    const dir = tempDir();
    const s = openStore(dir);
    const laterField = { team: "analytics", since: 5, note: undefined, tags: ["a", null] };
    const t = { ...task(), laterField } as TaskRecord & { laterField: unknown };
    s.insert([t]);
    await s.flush();
    const record = peek(dir).prepare("SELECT record FROM tasks WHERE id = ?").pluck();
    expect(JSON.parse(record.get(t.id) as string).laterField.team).toBe("analytics");
    let before = s.stats();
    const d = dispatched(t) as typeof t;
    s.put(d);
    await s.flush();
    const plainBytes = s.stats().bytesWritten - before.bytesWritten;
    before = s.stats();
    const moved = { ...d, laterField: { ...laterField, team: "platform" }, updatedAt: d.updatedAt + 1 };
    s.put(moved);
    await s.flush();
    expect(s.stats().rowsWritten - before.rowsWritten).toBe(1);
    expect(plainBytes).toBeLessThan(250);
    const again = await reopen(s, dir);
    expect(again.get(t.id)).toStrictEqual(moved);
  });
});
