// TaskRecord ⇄ database rows: `tasks` (indexed columns + the record without its spec, as JSON) and `task_specs`
// (the spec as JSON, its numeric series as float64 BLOBs). Pure: no database access. Must never lose a field: the
// record is stored whole, and decoding puts back the keys JSON drops (undefined stays undefined, null stays null).
import { LITTLE_ENDIAN } from "../../lib/fast-doubles.js";
import { PRIORITIES, TASK_STATES, type AttemptRecord, type NumericSeries, type TaskRecord, type TaskSpec } from "../tasks/types.js";

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

/**
 * JSON drops keys whose value is undefined; each stored object lists them under this key so that decoding puts
 * them back (a reloaded record is deep-equal to the stored one, `undefined` and `null` kept apart). TaskRecord,
 * TaskSpec and AttemptRecord never have a key of this name; inputs and outputs are not walked (JSON has no undefined).
 */
const UNDEFINED_KEYS = "~undefined";

/**
 * The spec as stored: the series itself lives in the BLOB columns, the JSON keeps its lengths; or, for a shard
 * whose series is a slice of its parent's, only where it lies in the parent's series (`seriesRef`).
 */
type StoredSpec = Omit<TaskSpec, "series"> & { seriesLength?: { values: number; timestamps: number }; seriesRef?: SeriesRef };

/** A shard's series as points [start, end) of its parent's (timestamps too when `timestamps`). */
export interface SeriesRef {
  parentId: string;
  start: number;
  end: number;
  timestamps: boolean;
}

/** Where decodeSpec finds a parent's series for a `seriesRef`: undefined when it has none. */
export type ParentSeries = (parentId: string) => NumericSeries | undefined;

export interface DecodeOptions {
  /** false: leave the input and series out (what memory keeps of a finished task). Default true. */
  payload?: boolean;
  /** Needed to decode a shard stored with `seriesRef`. */
  parentSeries?: ParentSeries;
}
type StoredRecord = Omit<TaskRecord, "spec">;

/**
 * Non-finite numbers outside the series (NaN, ±Infinity) become null in JSON, as JSON.stringify does everywhere;
 * inputs and outputs come from google.protobuf.Value, which cannot hold them.
 */
export function encodeTaskRow(t: TaskRecord): TaskRow {
  const { spec, ...rest } = t;
  const stored = { ...markUndefined(rest), attempts: rest.attempts.map(markUndefined) };
  return {
    id: t.id, seq: t.seq, state: t.state, priority: spec.priority, device_id: spec.deviceId,
    cluster: t.assignedCluster, target_cluster: spec.clusterId, idempotency_key: t.idempotencyKey,
    created_at: t.createdAt, updated_at: t.updatedAt, record: JSON.stringify(stored),
  };
}

/** The spec row; with `seriesRef` (the caller vouches that the series is that slice of the parent's) no BLOBs. */
export function encodeSpecRow(t: TaskRecord, seriesRef?: SeriesRef): SpecRow {
  const { series, ...rest } = t.spec;
  if (series && seriesRef) return { id: t.id, spec: JSON.stringify(markUndefined({ ...rest, seriesRef } as StoredSpec)), series_values: null, series_timestamps: null };
  const stored: StoredSpec = series ? { ...rest, seriesLength: { values: series.values.length, timestamps: series.timestamps.length } } : rest;
  return {
    id: t.id,
    spec: JSON.stringify(markUndefined(stored)),
    series_values: series ? packFloat64(series.values) : null,
    series_timestamps: series ? packFloat64(series.timestamps) : null,
  };
}

/**
 * Rebuilds a record from its two rows; throws a plain Error saying what is wrong when they cannot be a task.
 * Fields added to TaskRecord later are stored with no change here; rows written before such a field existed
 * need a default below (e.g. `preemptions: r.preemptions ?? 0`).
 */
export function decodeTask(record: string, spec: string, seriesValues: Buffer | null, seriesTimestamps: Buffer | null, opts: DecodeOptions = {}): TaskRecord {
  const r = restoreUndefined(JSON.parse(record)) as unknown as StoredRecord;
  if (!(TASK_STATES as readonly string[]).includes(r.state)) throw new Error(`unknown state ${JSON.stringify(r.state)}`);
  if (!Array.isArray(r.attempts)) throw new Error("attempts is not an array");
  return {
    ...r,
    attempts: r.attempts.map((a) => restoreUndefined(a) as unknown as AttemptRecord),
    spec: decodeSpec(spec, seriesValues, seriesTimestamps, opts),
  };
}

/**
 * Rebuilds a spec from its row. With `payload: false` the input and series are left out (undefined) and the
 * series BLOBs are not read (pass null): what the store keeps in memory for a finished task.
 */
export function decodeSpec(spec: string, seriesValues: Buffer | null, seriesTimestamps: Buffer | null, opts: DecodeOptions = {}): TaskSpec {
  const s = restoreUndefined(JSON.parse(spec)) as unknown as StoredSpec;
  if (!(PRIORITIES as readonly string[]).includes(s.priority)) throw new Error(`unknown priority ${JSON.stringify(s.priority)}`);
  const { seriesLength, seriesRef, ...specRest } = s;
  if (opts.payload === false) return { ...specRest, input: undefined, series: undefined };
  if (seriesRef) return { ...specRest, series: sliceOf(seriesRef, opts.parentSeries) };
  return {
    ...specRest,
    series: seriesLength === undefined ? undefined : {
      values: unpackFloat64(seriesValues, seriesLength.values, "series values"),
      timestamps: unpackFloat64(seriesTimestamps, seriesLength.timestamps, "series timestamps"),
    },
  };
}

function sliceOf(ref: SeriesRef, parentSeries: ParentSeries | undefined): NumericSeries {
  const p = parentSeries?.(ref.parentId);
  if (!p) throw new Error(`its series is a slice of task ${ref.parentId}'s, which has none stored`);
  if (!(Number.isInteger(ref.start) && Number.isInteger(ref.end) && ref.start >= 0 && ref.start <= ref.end && ref.end <= p.values.length)) {
    throw new Error(`its series is points [${ref.start}, ${ref.end}) of task ${ref.parentId}'s, which has ${p.values.length}`);
  }
  if (ref.timestamps && p.timestamps.length !== p.values.length) throw new Error(`task ${ref.parentId}'s series has no timestamps to slice`);
  return { values: p.values.slice(ref.start, ref.end), timestamps: ref.timestamps ? p.timestamps.slice(ref.start, ref.end) : [] };
}

function markUndefined<T extends object>(o: T): T {
  const keys = Object.keys(o).filter((k) => (o as Record<string, unknown>)[k] === undefined);
  return keys.length === 0 ? o : { ...o, [UNDEFINED_KEYS]: keys };
}

function restoreUndefined(o: unknown): Record<string, unknown> {
  if (typeof o !== "object" || o === null || Array.isArray(o)) throw new Error("not a JSON object");
  const obj = o as Record<string, unknown>;
  const keys = obj[UNDEFINED_KEYS];
  if (keys !== undefined) {
    if (!Array.isArray(keys)) throw new Error(`${UNDEFINED_KEYS} is not a list of keys`);
    delete obj[UNDEFINED_KEYS];
    for (const k of keys) obj[String(k)] = undefined;
  }
  return obj;
}

/** Little-endian float64s; on a little-endian machine a Float64Array's bytes already are (~10× faster than writeDoubleLE). */
function packFloat64(xs: readonly number[]): Buffer {
  if (LITTLE_ENDIAN) {
    const f = Float64Array.from(xs);
    return Buffer.from(f.buffer, f.byteOffset, f.byteLength);
  }
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
