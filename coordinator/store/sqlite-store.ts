// Durable TaskStore: SQLite through better-sqlite3 (WAL, synchronous = FULL) in the coordinator's data directory,
// plus the cluster registry and a small meta table. Reads are served from memory; writes apply to memory at once,
// are queued as row deltas, and are group-committed by a worker thread that owns the write connection, so no
// fsync ever runs on the event loop; flush() says when they are on disk.
// Never starts empty over a database it cannot read, and never drops an accepted write: a failed commit, or a
// dead worker, leaves the writes queued and they are committed later.
//
// Every task is loaded at open and kept in memory for the life of the process. A finished task's input and series
// (up to the input limit each: a 1M-value series is 8 MB) are dropped from memory once the commit that holds them
// is on disk; withPayload() reads them back, on the main thread, through a read-only connection. Retention of old
// finished tasks (their records leaving memory, then the file) is a later concern.
import { performance } from "node:perf_hooks";
import type Database from "better-sqlite3";
import type { ClusterRecord } from "../nodes/registry.js";
import { isTerminal, TERMINAL_STATES, type AttemptRecord, type NumericSeries, type TaskRecord, type TaskSpec, type Tier } from "../tasks/types.js";
import { GroupCommit, type GroupCommitStats } from "./group-commit.js";
import { MemoryTaskStore } from "./memory-store.js";
import { SCHEMA_VERSION } from "./migrations.js";
import { openReader } from "./connection.js";
import { classify, openDatabase, type OpenedDatabase } from "./open-database.js";
import type { PutOptions, TaskFilter, TaskPage, TaskStore } from "./store.js";
import { StoreConflictError, StoreCorruptError, StoreWriteError } from "./store-errors.js";
import {
  decodeAttemptRow,
  decodeSpec,
  decodeTaskRow,
  diffTask,
  encodeAttempts,
  encodeSpecRow,
  encodeTaskInsert,
  specColumns,
  type SeriesRef,
  type TaskDelta,
} from "./task-row.js";
import { assertWorkerScript, defaultWorkerUrl, WorkerLink, type WorkerState } from "./worker-link.js";
import type { WorkerFault } from "./worker-protocol.js";
import { WriteQueue, type Batch } from "./write-queue.js";

export { StoreConflictError, StoreCorruptError, StoreOpenError, StoreVersionError, StoreWriteError } from "./store-errors.js";
export type { WorkerFault } from "./worker-protocol.js";

/** What the store logs: open, migrations, failed commits, worker restarts. pino's Logger fits. */
export interface StoreLogger {
  info(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface SqliteTaskStoreOptions {
  /** Where open, migrations, failed commits and worker restarts are reported. Default: not reported. */
  logger?: StoreLogger;
  /** How long a commit waits for a lock held by another connection (a backup, the sqlite3 shell), in ms. Default 5000. */
  busyTimeoutMs?: number;
  /** Longest a lazy write (put with `lazy`) waits for a commit when nothing else asks for one, in ms. Default 200. */
  lazyFlushMs?: number;
  /**
   * Rows one transaction writes at most (a task write is 1-3 rows), so that a burst is committed in pieces and the
   * writes behind it wait for one piece (tens of ms), not the whole burst. One insert() batch is never split.
   * Default 4096.
   */
  maxCommitRows?: number;
  /** Bytes of values one transaction writes at most, likewise (a big series goes alone). Default 16 MiB. */
  maxCommitBytes?: number;
  /** Retry delay ceiling after the first failed commit (and first worker restart), in ms. Default 50. */
  retryBaseMs?: number;
  /** Longest retry (and restart) delay, in ms. Default 5000. */
  retryMaxMs?: number;
  /** The commit worker's script. Default: commit-worker.js beside this module (from TypeScript sources: dist's). */
  workerUrl?: URL;
}

export interface SqliteStoreStats extends GroupCommitStats {
  /** Task, cluster and meta rows written and not yet durable (queued, or in the commit in flight). */
  pendingWrites: number;
  /** Of those, the ones in the commit in flight. */
  inFlightWrites: number;
  /** Times the commit worker was started again after it died. */
  workerRestarts: number;
  worker: WorkerState;
  /** Absolute path of edgeplane.db. */
  path: string;
}

const DEFAULT_BUSY_TIMEOUT_MS = 5000;
const SELECT_SPEC = "SELECT spec, series_values, series_timestamps, input FROM task_specs WHERE id = ?";

interface Reads {
  selectSpec: Database.Statement<[string]>;
}

/** Every column and attempt row of a task, and none past its last attempt: for a record changed in place. */
function wholeTask(t: TaskRecord): TaskDelta {
  const d = diffTask({ attempts: [] } as unknown as TaskRecord, t)!;
  d.truncateFrom = t.attempts.length;
  return d;
}

export class SqliteTaskStore implements TaskStore {
  /** The read side: the same structures, and so the same list/active/idempotency semantics, as the memory store. */
  private readonly mem = new MemoryTaskStore();
  private readonly seqs = new Set<number>();
  /** Specs held in memory without their input and series (finished tasks): withPayload() reads those back. */
  private readonly released = new WeakSet<TaskSpec>();
  private highestSeq = 0;
  private readonly clusters = new Map<string, ClusterRecord>();
  private readonly meta = new Map<string, string>();
  private readonly queue: WriteQueue;
  private readonly group: GroupCommit<Batch>;
  private readonly link: WorkerLink;
  private readonly log: StoreLogger | undefined;
  private reader: Database.Database | undefined;
  private reads: Reads | undefined;
  private closed = false;
  private closing: Promise<void> | undefined;

  /** Absolute path of edgeplane.db. */
  readonly path: string;

  /**
   * Opens (creating if needed) `<dataDir>/edgeplane.db`, applies missing migrations, loads every task and starts
   * the commit worker (writes queue until it is ready). Throws StoreCorruptError, StoreVersionError or
   * StoreOpenError, each naming the file and what to do.
   */
  static open(dataDir: string, opts: SqliteTaskStoreOptions = {}): SqliteTaskStore {
    const started = performance.now();
    const workerUrl = opts.workerUrl ?? defaultWorkerUrl();
    assertWorkerScript(workerUrl);
    const opened = openDatabase(dataDir, opts.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS);
    let store: SqliteTaskStore | undefined;
    try {
      store = new SqliteTaskStore(opened, opts, workerUrl);
      store.load(opened.db);
      store.openReads();
      // The worker opens its own write connection; this one only checked, migrated and loaded.
      opened.closeConnection();
      store.link.start();
    } catch (e) {
      store?.reader?.close();
      opened.close();
      throw classify(e, opened.path);
    }
    if (opened.fromVersion !== opened.version) {
      opts.logger?.info({ path: opened.path, from: opened.fromVersion, to: opened.version }, "task store schema migrated");
    }
    opts.logger?.info(
      {
        path: opened.path,
        tasks: store.seqs.size,
        active: store.mem.active().length,
        clusters: store.clusters.size,
        schemaVersion: opened.version,
        loadMs: Math.round(performance.now() - started),
      },
      "task store opened",
    );
    return store;
  }

  private constructor(
    private readonly db: OpenedDatabase,
    opts: SqliteTaskStoreOptions,
    workerUrl: URL,
  ) {
    this.path = db.path;
    const log = (this.log = opts.logger);
    this.queue = new WriteQueue({ maxRows: opts.maxCommitRows ?? 4096, maxBytes: opts.maxCommitBytes ?? 16 * 1024 * 1024 });
    this.link = new WorkerLink({
      init: { path: this.path, busyTimeoutMs: opts.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS, schemaVersion: SCHEMA_VERSION },
      url: workerUrl,
      restartBaseMs: opts.retryBaseMs,
      restartMaxMs: opts.retryMaxMs,
      onReady: () => this.group.resume(),
      onDown: (err, restartInMs) =>
        log?.error(
          { err, restartInMs, pendingWrites: this.queue.pendingWrites, path: this.path },
          "task store commit worker stopped; the writes stay queued and the worker is restarted",
        ),
    });
    this.group = new GroupCommit<Batch>({
      take: () => this.queue.take(),
      putBack: (b) => this.queue.putBack(b),
      run: (b) => this.link.commit(b.ops),
      committed: (b) => {
        // Committed: a finished task's spec is on disk now, so memory can let go of its payload.
        for (const id of this.queue.committed(b)) this.releasePayload(id);
      },
      lastSeq: () => this.queue.lastSeq,
      ready: () => this.link.state === "ready",
      down: () => this.link.state === "down",
      whenReady: () => this.link.whenReady(),
      writeError: (cause) =>
        new StoreWriteError(this.path, this.queue.pendingWrites, {
          cause: cause ?? this.link.error ?? new Error(`the commit worker is ${this.link.state}`),
        }),
      onError: (err, failures, retryInMs) =>
        log?.error({ err, failures, retryInMs, pendingWrites: this.queue.pendingWrites }, "task store commit failed; the writes stay queued and are retried"),
      onBusy: (busy) => this.link.setBusy(busy),
      lazyMs: opts.lazyFlushMs ?? 200,
      retryBaseMs: opts.retryBaseMs ?? 50,
      retryMaxMs: opts.retryMaxMs ?? 5000,
    });
  }

  private openReads(): void {
    this.reader = openReader(this.path);
    this.reads = { selectSpec: this.reader.prepare(SELECT_SPEC) };
  }

  private load(d: Database.Database): void {
    for (const [key, value] of d.prepare("SELECT key, value FROM meta").raw().iterate() as IterableIterator<[string, string]>) {
      this.meta.set(key, value);
    }
    const clusterRows = d.prepare("SELECT id, tier, labels, declared, created_at FROM clusters ORDER BY id").iterate() as IterableIterator<{
      id: string;
      tier: string;
      labels: string;
      declared: number;
      created_at: number;
    }>;
    for (const row of clusterRows) {
      if (row.tier !== "edge" && row.tier !== "cloud") throw new StoreCorruptError(this.path, `cluster ${row.id}: unknown tier ${JSON.stringify(row.tier)}`);
      const labels = this.parse(() => JSON.parse(row.labels) as Record<string, string>, `cluster ${row.id}`);
      this.clusters.set(row.id, { id: row.id, tier: row.tier as Tier, labels, declared: row.declared !== 0, createdAt: row.created_at });
    }
    const attempts = new Map<string, AttemptRecord[]>();
    for (const row of d.prepare("SELECT * FROM attempts ORDER BY task_id, idx").iterate() as IterableIterator<Record<string, unknown>>) {
      const id = row.task_id as string;
      let list = attempts.get(id);
      if (!list) attempts.set(id, (list = []));
      if (row.idx !== list.length)
        throw new StoreCorruptError(this.path, `task ${id}: its attempt rows are not numbered 0, 1, 2, … (found ${String(row.idx)} after ${list.length} rows)`);
      list.push(this.parse(() => decodeAttemptRow(row), `task ${id}, attempt row ${list!.length}`));
    }
    // A finished task's payload stays on disk (see the top): its series BLOBs are not even read.
    const finished = [...TERMINAL_STATES].map((x) => `'${x}'`).join(", ");
    const taskRows = d
      .prepare(
        `
      SELECT t.*, s.spec AS spec_json, t.state IN (${finished}) AS finished_,
        CASE WHEN t.state IN (${finished}) THEN NULL ELSE s.series_values END AS values_,
        CASE WHEN t.state IN (${finished}) THEN NULL ELSE s.series_timestamps END AS timestamps_,
        CASE WHEN t.state IN (${finished}) THEN NULL ELSE s.input END AS input_
      FROM tasks t LEFT JOIN task_specs s ON s.id = t.id ORDER BY t.seq`,
      )
      .iterate() as IterableIterator<Record<string, unknown>>;
    const tasks: TaskRecord[] = [];
    // Parents come before their shards (seq order): a shard stored with seriesRef slices its parent's series.
    const loaded = new Map<string, TaskRecord>();
    for (const row of taskRows) {
      const id = row.id as string;
      const specJson = row.spec_json as string | null;
      if (specJson === null) throw new StoreCorruptError(this.path, `task ${id} has no row in task_specs`);
      const done = row.finished_ !== 0;
      const t = this.parse(() => {
        const spec = decodeSpec(specJson, row.values_ as Buffer | null, row.timestamps_ as Buffer | null, row.input_ as Buffer | null, {
          payload: !done,
          parentSeries: (p) => this.parentSeries(p, loaded),
        });
        return decodeTaskRow(row, attempts.get(id) ?? [], spec);
      }, `task ${id}`);
      if (done) this.released.add(t.spec);
      loaded.set(t.id, t);
      tasks.push(t);
      this.seqs.add(t.seq);
      this.highestSeq = Math.max(this.highestSeq, t.seq);
    }
    this.mem.insert(tasks);
  }

  private parse<T>(f: () => T, what: string): T {
    try {
      return f();
    } catch (e) {
      if (e instanceof StoreCorruptError) throw e;
      throw new StoreCorruptError(this.path, `${what}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    }
  }

  get(id: string): TaskRecord | undefined {
    return this.mem.get(id);
  }

  /** `t` with its input and series: read back from the file when memory let go of them (see the top). */
  withPayload(t: TaskRecord): TaskRecord {
    if (!this.released.has(t.spec)) return t;
    const spec = this.readSpec(t.id);
    if (!spec) throw new StoreCorruptError(this.path, `task ${t.id} has no row in task_specs`);
    return { ...t, spec };
  }

  /** A task's series, for a shard stored with seriesRef: from memory, or read back when memory let go of it. */
  private parentSeries(id: string, loading?: ReadonlyMap<string, TaskRecord>): NumericSeries | undefined {
    const t = loading?.get(id) ?? this.mem.get(id);
    if (t && !this.released.has(t.spec)) return t.spec.series;
    return this.readSpec(id, loading)?.series;
  }

  /**
   * A task's whole spec (input and series included) as the file has it; undefined when it has no row. Only for
   * specs whose write is committed (a released one, or any at load), which is all a reader connection sees.
   */
  private readSpec(id: string, loading?: ReadonlyMap<string, TaskRecord>): TaskSpec | undefined {
    const stmt = this.reads?.selectSpec ?? this.db.db.prepare(SELECT_SPEC);
    const row = stmt.get(id) as { spec: string; series_values: Buffer | null; series_timestamps: Buffer | null; input: Buffer | null } | undefined;
    if (!row) return undefined;
    return this.parse(
      () => decodeSpec(row.spec, row.series_values, row.series_timestamps, row.input, { parentSeries: (p) => this.parentSeries(p, loading) }),
      `task ${id}`,
    );
  }

  /**
   * Where a new shard's series lies in its parent's, when it is exactly that slice (checked value by value) and
   * the parent's is in memory: its row then stores that instead of a second copy of the points. Retention must keep
   * such a parent's row as long as its shards'.
   */
  private seriesRefFor(t: TaskRecord, batch: ReadonlyMap<string, TaskRecord>): SeriesRef | undefined {
    const s = t.spec.series;
    const sh = t.shard;
    if (!s || !sh) return undefined;
    const parent = batch.get(sh.parentId) ?? this.mem.get(sh.parentId);
    const ps = parent && !this.released.has(parent.spec) ? parent.spec.series : undefined;
    const n = sh.end - sh.start;
    if (!ps || s.values.length !== n || sh.start < 0 || sh.end > ps.values.length) return undefined;
    const timestamps = s.timestamps.length > 0;
    if (timestamps && (s.timestamps.length !== n || ps.timestamps.length !== ps.values.length)) return undefined;
    if (!timestamps && ps.timestamps.length > 0 && n > 0) {
      // A slice of a timestamped series keeps its timestamps; one without them is not that slice.
      return undefined;
    }
    for (let i = 0; i < n; i++) if (!Object.is(s.values[i], ps.values[sh.start + i])) return undefined;
    if (timestamps) for (let i = 0; i < n; i++) if (s.timestamps[i] !== ps.timestamps[sh.start + i]) return undefined;
    return { parentId: sh.parentId, start: sh.start, end: sh.end, timestamps };
  }

  /** After a commit: a finished task's payload is on disk, so the record in memory drops it. */
  private releasePayload(id: string): void {
    const t = this.mem.get(id);
    if (t && isTerminal(t.state) && !this.released.has(t.spec)) this.mem.put(this.light(t));
  }

  private light(t: TaskRecord): TaskRecord {
    const spec: TaskSpec = { ...t.spec, input: undefined, series: undefined };
    this.released.add(spec);
    return { ...t, spec };
  }

  findByIdempotencyKey(key: string): TaskRecord | undefined {
    return this.mem.findByIdempotencyKey(key);
  }

  list(filter: TaskFilter, pageSize: number, cursor: string): TaskPage {
    return this.mem.list(filter, pageSize, cursor);
  }

  active(): TaskRecord[] {
    return this.mem.active();
  }

  /**
   * Highest seq of any task, terminal ones included (0 when empty). The submission counter must start above it:
   * seeding it from active() alone reuses the seq of a finished task after a restart, which insert() refuses.
   */
  maxSeq(): number {
    return this.highestSeq;
  }

  /**
   * Adds new tasks: visible to reads at once, committed together in one transaction with the rest of this turn's
   * writes (flush() to wait). Refuses the whole batch, changing nothing, if an id, seq or idempotency key is taken.
   */
  insert(tasks: readonly TaskRecord[]): void {
    this.assertOpen();
    if (tasks.length === 0) return;
    const ids = new Set<string>();
    const seqs = new Set<number>();
    const keys = new Set<string>();
    for (const t of tasks) {
      if (ids.has(t.id) || this.mem.get(t.id)) throw new StoreConflictError(`cannot insert task ${t.id}: a task with this id already exists`);
      if (!Number.isSafeInteger(t.seq) || seqs.has(t.seq) || this.seqs.has(t.seq)) {
        throw new StoreConflictError(
          `cannot insert task ${t.id}: seq ${t.seq} is already used (highest stored seq is ${this.highestSeq}); seqs are unique, seed the counter from maxSeq()`,
        );
      }
      if (t.idempotencyKey && (keys.has(t.idempotencyKey) || this.mem.findByIdempotencyKey(t.idempotencyKey))) {
        throw new StoreConflictError(`cannot insert task ${t.id}: idempotency key ${JSON.stringify(t.idempotencyKey)} already belongs to another task`);
      }
      ids.add(t.id);
      seqs.add(t.seq);
      if (t.idempotencyKey) keys.add(t.idempotencyKey);
    }
    // Encode before changing anything: a record that cannot be stored throws here, to the caller, not at commit time.
    const batch = new Map(tasks.map((t) => [t.id, t]));
    const rows = tasks.map((t) => ({ id: t.id, row: encodeTaskInsert(t), spec: encodeSpecRow(t, this.seriesRefFor(t, batch)), attempts: encodeAttempts(t) }));
    this.queue.insertGroup(rows);
    for (const t of tasks) {
      this.seqs.add(t.seq);
      this.highestSeq = Math.max(this.highestSeq, t.seq);
    }
    this.mem.insert(tasks);
    this.group.queued(false);
  }

  /**
   * Replaces a task's record, writing only what changed since the version in memory (see TaskWriter.put: records
   * are values). A later put of the same task before the commit merges into this one's queued write. The spec is
   * written again only if it is a different object from the stored version's (specs are immutable). `lazy`: see
   * PutOptions; the write goes with the next commit, or after `lazyFlushMs` at the latest.
   */
  put(task: TaskRecord, opts: PutOptions = {}): void {
    this.assertOpen();
    const prev = this.mem.get(task.id);
    if (!prev) throw new StoreConflictError(`cannot put task ${task.id}: no such task; insert() it first`);
    if (task.seq !== prev.seq || task.idempotencyKey !== prev.idempotencyKey) {
      throw new StoreConflictError(
        `cannot put task ${task.id}: its seq and idempotency key are fixed at insert (stored ${prev.seq}, ${JSON.stringify(prev.idempotencyKey)}; given ${task.seq}, ${JSON.stringify(task.idempotencyKey)})`,
      );
    }
    // The same object again may have been changed in place: nothing to compare it with, so write every field.
    const delta = task === prev ? wholeTask(task) : diffTask(prev, task);
    // A spec without its payload (see withPayload) is never written: the file already has the whole one.
    const specChanged = task.spec !== prev.spec && !this.released.has(task.spec);
    const spec = specChanged ? encodeSpecRow(task) : undefined;
    if (delta !== undefined || spec !== undefined) {
      this.queue.update(task.id, delta, spec, spec ? specColumns(task.spec) : undefined);
    }
    this.mem.put(task);
    if (delta !== undefined || spec !== undefined) this.group.queued(opts.lazy === true);
  }

  pendingInsert(id: string): boolean {
    return this.queue.pendingInsert(id);
  }

  /** Records a cluster (declared or discovered); committed with this turn's writes. */
  saveCluster(c: ClusterRecord): void {
    this.assertOpen();
    const copy: ClusterRecord = { id: c.id, tier: c.tier, labels: { ...c.labels }, declared: c.declared, createdAt: c.createdAt };
    this.clusters.set(c.id, copy);
    this.queue.cluster(c.id, [copy.id, copy.tier, JSON.stringify(copy.labels), copy.declared ? 1 : 0, copy.createdAt]);
    this.group.queued(false);
  }

  /** Every saved cluster, by id. */
  loadClusters(): ClusterRecord[] {
    return [...this.clusters.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)).map((c) => ({ ...c, labels: { ...c.labels } }));
  }

  /** A fact about this database: `coordinator_id` (a UUID chosen when the file was created), `created_at` (epoch ms), or your own. */
  getMeta(key: string): string | undefined {
    return this.meta.get(key);
  }

  setMeta(key: string, value: string): void {
    this.assertOpen();
    this.meta.set(key, value);
    this.queue.meta(key, value);
    this.group.queued(false);
  }

  /**
   * Resolves once every write made before the call (lazy ones included) is committed and fsynced. Rejects with a
   * StoreWriteError (the SQLite error in `cause`) if that commit fails, and at once while the commit worker is
   * down; the writes stay queued either way and are committed once it can.
   */
  flush(): Promise<void> {
    if (this.closed) {
      if (this.closing)
        return this.closing.then(
          () => this.flushClosed(),
          () => this.flushClosed(),
        );
      return this.flushClosed();
    }
    return this.group.flush();
  }

  private flushClosed(): Promise<void> {
    const n = this.queue.pendingWrites;
    return n === 0
      ? Promise.resolve()
      : Promise.reject(new StoreWriteError(this.path, n, { cause: new Error("the store was closed before they could be committed") }));
  }

  stats(): SqliteStoreStats {
    return {
      ...this.group.stats(),
      pendingWrites: this.queue.pendingWrites,
      inFlightWrites: this.queue.inFlight,
      workerRestarts: this.link.restarts,
      worker: this.link.state,
      path: this.path,
    };
  }

  /**
   * For tests: makes the commit worker fail its next commit, or die in the middle of it (before or after COMMIT),
   * as a disk error or a crash would.
   */
  injectWorkerFault(fault: WorkerFault): void {
    this.link.fault(fault);
  }

  /**
   * Commits what is queued, then stops the commit worker (its connection, the last one, checkpoints the WAL into
   * the file), closes the read connection and releases the data directory. If a last commit fails, everything is
   * closed anyway and the returned promise rejects with a StoreWriteError saying how many writes were not saved.
   */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closed = true;
    this.closing = (async () => {
      let failure: unknown;
      try {
        await this.group.drain();
      } catch (e) {
        failure = e;
      }
      if (failure !== undefined)
        this.log?.error({ err: failure, pendingWrites: this.queue.pendingWrites }, "task store closed with writes it could not commit");
      this.reader?.close();
      // A worker still opening is let finish, so that its connection, the last one, checkpoints the WAL on close.
      if (this.link.state === "starting") await this.link.whenReady().catch(() => undefined);
      await this.link.stop();
      this.db.close();
      if (failure !== undefined) throw failure;
    })();
    return this.closing;
  }

  private assertOpen(): void {
    if (this.closed) throw new Error(`task store ${this.path} is closed`);
  }
}
