// Durable TaskStore: SQLite through better-sqlite3 (WAL, synchronous = FULL) in the coordinator's data directory,
// plus the cluster registry and a small meta table. Reads are served from memory; writes apply to memory at once and
// are group-committed once per event-loop turn; flush() says when they are on disk.
// Never starts empty over a database it cannot read, and never drops an accepted write: a failed commit is retried.
//
// Every task is loaded at open and kept in memory for the life of the process. A finished task's input and series
// (up to the input limit each: a 1M-value series is 8 MB) are dropped from memory once the commit that holds them
// is on disk; withPayload() reads them back for GetTask. Retention of old finished tasks (their records leaving
// memory, then the file) is a later concern.
import { performance } from "node:perf_hooks";
import type Database from "better-sqlite3";
import type { ClusterRecord } from "../nodes/registry.js";
import { GroupCommit, type GroupCommitStats } from "../store/group-commit.js";
import { classify, openDatabase, type OpenedDatabase } from "../store/open-database.js";
import { StoreConflictError, StoreCorruptError, StoreWriteError } from "../store/store-errors.js";
import { decodeSpec, decodeTask, encodeSpecRow, encodeTaskRow, type SeriesRef, type SpecRow, type TaskRow } from "../store/task-row.js";
import { MemoryTaskStore } from "./memory-store.js";
import type { TaskFilter, TaskPage, TaskStore } from "./store.js";
import { isTerminal, TERMINAL_STATES, type NumericSeries, type TaskRecord, type TaskSpec, type Tier } from "./types.js";

export { StoreConflictError, StoreCorruptError, StoreOpenError, StoreVersionError, StoreWriteError } from "../store/store-errors.js";

/** What the store logs: open, migrations, failed commits. pino's Logger fits. */
export interface StoreLogger {
  info(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface SqliteTaskStoreOptions {
  /** Where open, migrations and failed commits are reported. Default: not reported. */
  logger?: StoreLogger;
  /** How long a commit waits for a lock held by another connection (a backup, the sqlite3 shell), in ms. Default 5000. */
  busyTimeoutMs?: number;
}

export interface SqliteStoreStats extends GroupCommitStats {
  /** Task, cluster and meta rows queued and not yet committed. */
  pendingWrites: number;
  /** Absolute path of edgeplane.db. */
  path: string;
}

/** A queued task write: the `tasks` row always, the `task_specs` row only when the spec is new or changed. */
interface TaskWrite {
  task: TaskRow;
  spec: SpecRow | undefined;
}

interface Statements {
  upsertTask: Database.Statement<[TaskRow]>;
  upsertSpec: Database.Statement<[SpecRow]>;
  upsertCluster: Database.Statement<[{ id: string; tier: string; labels: string; declared: number; created_at: number }]>;
  upsertMeta: Database.Statement<[string, string]>;
  selectSpec: Database.Statement<[string]>;
}

const DEFAULT_BUSY_TIMEOUT_MS = 5000;

export class SqliteTaskStore implements TaskStore {
  /** The read side: the same structures, and so the same list/active/idempotency semantics, as the memory store. */
  private readonly mem = new MemoryTaskStore();
  private readonly seqs = new Set<number>();
  /** Specs held in memory without their input and series (finished tasks): withPayload() reads those back. */
  private readonly released = new WeakSet<TaskSpec>();
  private highestSeq = 0;
  private readonly clusters = new Map<string, ClusterRecord>();
  private readonly meta = new Map<string, string>();
  private readonly pendingTasks = new Map<string, TaskWrite>();
  private readonly pendingClusters = new Map<string, ClusterRecord>();
  private readonly pendingMeta = new Map<string, string>();
  /** Tasks inserted and not yet committed: later writes of the turn join their insert's commit. */
  private readonly uncommittedInserts = new Set<string>();
  private readonly stmts: Statements;
  private readonly writeQueued: () => number;
  private readonly group: GroupCommit;
  private closed = false;

  /** Absolute path of edgeplane.db. */
  readonly path: string;

  /**
   * Opens (creating if needed) `<dataDir>/edgeplane.db`, applies missing migrations and loads every task.
   * Throws StoreCorruptError, StoreVersionError or StoreOpenError, each naming the file and what to do.
   */
  static open(dataDir: string, opts: SqliteTaskStoreOptions = {}): SqliteTaskStore {
    const started = performance.now();
    const opened = openDatabase(dataDir, opts.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS);
    let store: SqliteTaskStore;
    try {
      store = new SqliteTaskStore(opened, opts.logger);
      store.load();
    } catch (e) {
      opened.close();
      throw classify(e, opened.path);
    }
    if (opened.fromVersion !== opened.version) {
      opts.logger?.info({ path: opened.path, from: opened.fromVersion, to: opened.version }, "task store schema migrated");
    }
    opts.logger?.info({
      path: opened.path, tasks: store.seqs.size, active: store.mem.active().length, clusters: store.clusters.size,
      schemaVersion: opened.version, loadMs: Math.round(performance.now() - started),
    }, "task store opened");
    return store;
  }

  private constructor(private readonly db: OpenedDatabase, private readonly log: StoreLogger | undefined) {
    this.path = db.path;
    const d = db.db;
    this.stmts = {
      upsertTask: d.prepare<TaskRow>(`
        INSERT INTO tasks (id, seq, state, priority, device_id, cluster, target_cluster, idempotency_key, created_at, updated_at, record)
        VALUES (@id, @seq, @state, @priority, @device_id, @cluster, @target_cluster, @idempotency_key, @created_at, @updated_at, @record)
        ON CONFLICT (id) DO UPDATE SET
          seq = excluded.seq, state = excluded.state, priority = excluded.priority, device_id = excluded.device_id,
          cluster = excluded.cluster, target_cluster = excluded.target_cluster, idempotency_key = excluded.idempotency_key,
          created_at = excluded.created_at, updated_at = excluded.updated_at, record = excluded.record`),
      upsertSpec: d.prepare<SpecRow>(`
        INSERT INTO task_specs (id, spec, series_values, series_timestamps) VALUES (@id, @spec, @series_values, @series_timestamps)
        ON CONFLICT (id) DO UPDATE SET spec = excluded.spec, series_values = excluded.series_values, series_timestamps = excluded.series_timestamps`),
      upsertCluster: d.prepare(`
        INSERT INTO clusters (id, tier, labels, declared, created_at) VALUES (@id, @tier, @labels, @declared, @created_at)
        ON CONFLICT (id) DO UPDATE SET tier = excluded.tier, labels = excluded.labels, declared = excluded.declared, created_at = excluded.created_at`),
      selectSpec: d.prepare("SELECT spec, series_values, series_timestamps FROM task_specs WHERE id = ?"),
      upsertMeta: d.prepare("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value"),
    };
    const txn = d.transaction(() => {
      let rows = 0;
      for (const w of this.pendingTasks.values()) {
        this.stmts.upsertTask.run(w.task);
        rows += 1;
        if (w.spec) {
          this.stmts.upsertSpec.run(w.spec);
          rows += 1;
        }
      }
      for (const c of this.pendingClusters.values()) {
        this.stmts.upsertCluster.run({ id: c.id, tier: c.tier, labels: JSON.stringify(c.labels), declared: c.declared ? 1 : 0, created_at: c.createdAt });
        rows += 1;
      }
      for (const [k, v] of this.pendingMeta) {
        this.stmts.upsertMeta.run(k, v);
        rows += 1;
      }
      return rows;
    });
    this.writeQueued = () => {
      let rows: number;
      try {
        rows = txn();
      } catch (e) {
        throw new StoreWriteError(this.path, this.pendingCount(), { cause: e });
      }
      // Committed: a finished task's spec is on disk now, so memory can let go of its payload.
      for (const id of this.pendingTasks.keys()) this.releasePayload(id);
      this.pendingTasks.clear();
      this.uncommittedInserts.clear();
      this.pendingClusters.clear();
      this.pendingMeta.clear();
      return rows;
    };
    this.group = new GroupCommit({
      commit: this.writeQueued,
      pending: () => this.pendingCount() > 0,
      onError: (err, failures, retryInMs) => this.log?.error({ err, failures, retryInMs, pendingWrites: this.pendingCount() }, "task store commit failed; the writes stay queued and are retried"),
    });
  }

  private load(): void {
    const d = this.db.db;
    for (const [key, value] of d.prepare("SELECT key, value FROM meta").raw().iterate() as IterableIterator<[string, string]>) {
      this.meta.set(key, value);
    }
    const clusterRows = d.prepare("SELECT id, tier, labels, declared, created_at FROM clusters ORDER BY id")
      .iterate() as IterableIterator<{ id: string; tier: string; labels: string; declared: number; created_at: number }>;
    for (const row of clusterRows) {
      if (row.tier !== "edge" && row.tier !== "cloud") throw new StoreCorruptError(this.path, `cluster ${row.id}: unknown tier ${JSON.stringify(row.tier)}`);
      const labels = this.parse(() => JSON.parse(row.labels) as Record<string, string>, `cluster ${row.id}`);
      this.clusters.set(row.id, { id: row.id, tier: row.tier as Tier, labels, declared: row.declared !== 0, createdAt: row.created_at });
    }
    // A finished task's payload stays on disk (see the top): its series BLOBs are not even read.
    const finished = [...TERMINAL_STATES].map((x) => `'${x}'`).join(", ");
    const taskRows = d.prepare(`
      SELECT t.id, t.record, s.spec, t.state IN (${finished}) AS finished,
        CASE WHEN t.state IN (${finished}) THEN NULL ELSE s.series_values END,
        CASE WHEN t.state IN (${finished}) THEN NULL ELSE s.series_timestamps END
      FROM tasks t LEFT JOIN task_specs s ON s.id = t.id ORDER BY t.seq`).raw()
      .iterate() as IterableIterator<[string, string, string | null, number, Buffer | null, Buffer | null]>;
    const tasks: TaskRecord[] = [];
    // Parents come before their shards (seq order): a shard stored with seriesRef slices its parent's series.
    const loaded = new Map<string, TaskRecord>();
    for (const [id, record, spec, done, values, timestamps] of taskRows) {
      if (spec === null) throw new StoreCorruptError(this.path, `task ${id} has no row in task_specs`);
      const t = this.parse(() => decodeTask(record, spec, values, timestamps, { payload: done === 0, parentSeries: (p) => this.parentSeries(p, loaded) }), `task ${id}`);
      if (done !== 0) this.released.add(t.spec);
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

  /** A task's whole spec (input and series included) as the file has it; undefined when it has no row. */
  private readSpec(id: string, loading?: ReadonlyMap<string, TaskRecord>): TaskSpec | undefined {
    const row = this.stmts.selectSpec.get(id) as { spec: string; series_values: Buffer | null; series_timestamps: Buffer | null } | undefined;
    if (!row) return undefined;
    return this.parse(() => decodeSpec(row.spec, row.series_values, row.series_timestamps, { parentSeries: (p) => this.parentSeries(p, loading) }), `task ${id}`);
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
   * Adds new tasks: visible to reads at once, committed with the rest of this turn's writes (flush() to wait).
   * Refuses the whole batch, changing nothing, if an id, seq or idempotency key is already taken.
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
        throw new StoreConflictError(`cannot insert task ${t.id}: seq ${t.seq} is already used (highest stored seq is ${this.highestSeq}); seqs are unique, seed the counter from maxSeq()`);
      }
      if (t.idempotencyKey && (keys.has(t.idempotencyKey) || this.mem.findByIdempotencyKey(t.idempotencyKey))) {
        throw new StoreConflictError(`cannot insert task ${t.id}: idempotency key ${JSON.stringify(t.idempotencyKey)} already belongs to another task`);
      }
      ids.add(t.id);
      seqs.add(t.seq);
      if (t.idempotencyKey) keys.add(t.idempotencyKey);
    }
    // Encode before changing anything: a record JSON cannot hold throws here, to the caller, not at commit time.
    const batch = new Map(tasks.map((t) => [t.id, t]));
    const writes = tasks.map((t): TaskWrite => ({ task: encodeTaskRow(t), spec: encodeSpecRow(t, this.seriesRefFor(t, batch)) }));
    for (const w of writes) {
      this.pendingTasks.set(w.task.id, w);
      this.uncommittedInserts.add(w.task.id);
    }
    for (const t of tasks) {
      this.seqs.add(t.seq);
      this.highestSeq = Math.max(this.highestSeq, t.seq);
    }
    this.mem.insert(tasks);
    this.group.queued();
  }

  /**
   * Replaces a task's record; a later put of the same task in the same turn replaces this one in the queue.
   * The spec is written again only if it is a different object from the stored version's (specs are immutable).
   */
  put(task: TaskRecord, _opts?: { lazy?: boolean }): void {
    this.assertOpen();
    const prev = this.mem.get(task.id);
    if (!prev) throw new StoreConflictError(`cannot put task ${task.id}: no such task; insert() it first`);
    if (task.seq !== prev.seq || task.idempotencyKey !== prev.idempotencyKey) {
      throw new StoreConflictError(`cannot put task ${task.id}: its seq and idempotency key are fixed at insert (stored ${prev.seq}, ${JSON.stringify(prev.idempotencyKey)}; given ${task.seq}, ${JSON.stringify(task.idempotencyKey)})`);
    }
    const queued = this.pendingTasks.get(task.id);
    // A spec without its payload (see withPayload) is never written: the file already has the whole one.
    const spec = task.spec === prev.spec || this.released.has(task.spec) ? queued?.spec : encodeSpecRow(task);
    this.pendingTasks.set(task.id, { task: encodeTaskRow(task), spec });
    this.mem.put(task);
    this.group.queued();
  }

  pendingInsert(id: string): boolean {
    return this.uncommittedInserts.has(id);
  }

  /** Records a cluster (declared or discovered); committed with this turn's writes. */
  saveCluster(c: ClusterRecord): void {
    this.assertOpen();
    const copy: ClusterRecord = { id: c.id, tier: c.tier, labels: { ...c.labels }, declared: c.declared, createdAt: c.createdAt };
    this.clusters.set(c.id, copy);
    this.pendingClusters.set(c.id, copy);
    this.group.queued();
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
    this.pendingMeta.set(key, value);
    this.group.queued();
  }

  /**
   * Resolves once every write made before the call is committed and fsynced. Rejects with a StoreWriteError
   * (the SQLite error in `cause`) if that commit fails; the writes stay queued and the commit is retried.
   */
  flush(): Promise<void> {
    if (this.closed) {
      return this.pendingCount() === 0 ? Promise.resolve() : Promise.reject(new StoreWriteError(this.path, this.pendingCount(), { cause: new Error("the store was closed before they could be committed") }));
    }
    return this.group.flush();
  }

  stats(): SqliteStoreStats {
    return { ...this.group.stats(), pendingWrites: this.pendingCount(), path: this.path };
  }

  /**
   * Commits what is queued, then closes the database and releases the data directory. If that last commit fails
   * the database is closed anyway and a StoreWriteError says how many writes were not saved.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    let failure: unknown;
    try {
      this.group.commitNow();
    } catch (e) {
      failure = e;
      this.log?.error({ err: e, pendingWrites: this.pendingCount() }, "task store closed with writes it could not commit");
    } finally {
      this.db.close();
    }
    if (failure !== undefined) throw failure;
  }

  private pendingCount(): number {
    return this.pendingTasks.size + this.pendingClusters.size + this.pendingMeta.size;
  }

  private assertOpen(): void {
    if (this.closed) throw new Error(`task store ${this.path} is closed`);
  }
}
