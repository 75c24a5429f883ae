// TaskRecord ⇄ database rows: `tasks` (indexed columns + the record without its spec, as JSON) and `task_specs`
// (the spec as JSON, its numeric series as float64 BLOBs). Pure: no database access; never loses a field — the
// record is stored whole, and decoding puts back the keys JSON drops (undefined stays undefined, null stays null).
import { PRIORITIES, TASK_STATES, type AttemptRecord, type TaskRecord, type TaskSpec } from "../tasks/types.js";

/** Bound to the upsert of `tasks` (named parameters). */
export interface TaskRow {
  id: string;
  seq: number;
  state: string;
  priority: string;
  device_id: string;
  cluster: string;
  target_cluster: string;
  idempotency_key: string;
  created_at: number;
  updated_at: number;
  record: string;
}

/** Bound to the upsert of `task_specs`. */
export interface SpecRow {
  id: string;
  spec: string;
  series_values: Buffer | null;
  series_timestamps: Buffer | null;
}

/** The spec as stored: the series itself lives in the BLOB columns, the JSON keeps its lengths. */
type StoredSpec = Omit<TaskSpec, "series"> & { seriesLength?: { values: number; timestamps: number } };
type StoredRecord = Omit<TaskRecord, "spec">;

/**
 * Non-finite numbers outside the series (NaN, ±Infinity) become null in JSON, as JSON.stringify does everywhere;
 * inputs and outputs come from google.protobuf.Value, which cannot hold them.
 */
export function encodeTaskRow(t: TaskRecord): TaskRow {
  const { spec, ...rest } = t;
  const stored: StoredRecord = rest;
  return {
    id: t.id, seq: t.seq, state: t.state, priority: spec.priority, device_id: spec.deviceId,
    cluster: t.assignedCluster, target_cluster: spec.clusterId, idempotency_key: t.idempotencyKey,
    created_at: t.createdAt, updated_at: t.updatedAt, record: JSON.stringify(stored),
  };
}

export function encodeSpecRow(t: TaskRecord): SpecRow {
  const { series, ...rest } = t.spec;
  const stored: StoredSpec = series ? { ...rest, seriesLength: { values: series.values.length, timestamps: series.timestamps.length } } : rest;
  return {
    id: t.id,
    spec: JSON.stringify(stored),
    series_values: series ? packFloat64(series.values) : null,
    series_timestamps: series ? packFloat64(series.timestamps) : null,
  };
}

/**
 * Rebuilds a record from its two rows. Throws a plain Error saying what is wrong when a row cannot be a task.
 * A field added to TaskRecord later is stored with no change here; rows written before it need a default below
 * (e.g. `preemptions: r.preemptions ?? 0`).
 */
export function decodeTask(record: string, spec: string, seriesValues: Buffer | null, seriesTimestamps: Buffer | null): TaskRecord {
  const r = JSON.parse(record) as StoredRecord;
  const s = JSON.parse(spec) as StoredSpec;
  if (typeof r !== "object" || r === null || typeof s !== "object" || s === null) throw new Error("record or spec is not a JSON object");
  if (!(TASK_STATES as readonly string[]).includes(r.state)) throw new Error(`unknown state ${JSON.stringify(r.state)}`);
  if (!(PRIORITIES as readonly string[]).includes(s.priority)) throw new Error(`unknown priority ${JSON.stringify(s.priority)}`);
  if (!Array.isArray(r.attempts)) throw new Error("attempts is not an array");
  const { seriesLength, ...specRest } = s;
  return {
    ...r,
    // JSON drops keys whose value is undefined; put them back so a reloaded record equals the one stored.
    output: r.output,
    finishedAt: r.finishedAt,
    attempts: r.attempts.map((a): AttemptRecord => ({ ...a, outcome: a.outcome, startedAt: a.startedAt, finishedAt: a.finishedAt })),
    spec: {
      ...specRest,
      input: specRest.input,
      deadline: specRest.deadline,
      series: seriesLength === undefined ? undefined : {
        values: unpackFloat64(seriesValues, seriesLength.values, "series values"),
        timestamps: unpackFloat64(seriesTimestamps, seriesLength.timestamps, "series timestamps"),
      },
    },
  };
}

function packFloat64(xs: readonly number[]): Buffer {
  const buf = Buffer.allocUnsafe(xs.length * 8);
  for (let i = 0; i < xs.length; i++) buf.writeDoubleLE(xs[i], i * 8);
  return buf;
}

function unpackFloat64(buf: Buffer | null, n: number, what: string): number[] {
  const bytes = buf?.length ?? 0;
  if (bytes !== n * 8) throw new Error(`${what}: ${bytes} bytes stored for ${n} numbers`);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) out[i] = buf!.readDoubleLE(i * 8);
  return out;
}
