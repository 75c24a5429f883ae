// TaskRecord ⇄ rows of schema version 4: `tasks` (a column per field of TASK_FIELDS, plus `record`: every other
// field as JSON), `attempts` (a row per attempt) and `task_specs` (the spec as JSON, its numeric series as float64
// BLOBs, its input as google.protobuf.Value bytes when the coordinator has them). Pure: no database access. Must never lose a field: a reloaded record is deep-equal to the stored one,
// undefined kept apart from null and from a missing key, fields unknown to this file included.
import { LITTLE_ENDIAN } from "../../lib/fast-doubles.js";
import { decodeValue, knownValuePayload } from "../../lib/value-wire.js";
import { PRIORITIES, TASK_STATES, type AttemptRecord, type NumericSeries, type TaskRecord, type TaskSpec } from "../tasks/types.js";
import { ATTEMPT_FIELDS, TASK_FIELDS, type Field, type FieldKind, type SqlValue } from "./columns.js";
import { parseMarked, stringifyMarked, UNDEFINED_KEYS } from "./marked-json.js";

/** [id, spec JSON, series values BLOB, series timestamps BLOB, input Value BLOB]: bound to the upsert of `task_specs`. */
export type SpecRow = [id: string, spec: string, values: Uint8Array | null, timestamps: Uint8Array | null, input: Uint8Array | null];

/** What one put() changes: `tasks` columns to set, attempt rows to write (whole), attempts to delete from an index on. */
export interface TaskDelta {
  cols: string[];
  vals: SqlValue[];
  /** Whole `attempts` rows (ATTEMPT_COLUMNS order) of attempts that are new or changed. */
  attempts: SqlValue[][];
  /** The record has fewer attempts than before: rows from this index on go. */
  truncateFrom: number | undefined;
}

/** In the rest JSON: fields with a column that the record does not have at all (a NULL column alone would read as undefined). */
const ABSENT_KEYS = "~absent";

/** Keys that are never in the rest JSON: they have a row or column of their own. */
const TASK_OWN_KEYS: ReadonlySet<string> = new Set(["id", "spec", "attempts", ...TASK_FIELDS.map((f) => f.key)]);
const ATTEMPT_OWN_KEYS: ReadonlySet<string> = new Set(ATTEMPT_FIELDS.map((f) => f.key));

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

type Rec = Record<string, unknown>;

// ---------------------------------------------------------------------------------------------------------------
// Fields ⇄ columns

function fits(kind: FieldKind, v: unknown): boolean {
  switch (kind) {
    case "text":
      return typeof v === "string";
    // NaN binds as NULL in SQLite: it goes to the rest JSON (as null, like JSON.stringify everywhere else).
    case "num":
      return typeof v === "number" && !Number.isNaN(v);
    case "bool":
      return typeof v === "boolean";
    case "json":
    case "marked-json":
      return v !== undefined;
    default: {
      const never: never = kind;
      throw new Error(`unknown field kind ${String(never)}`);
    }
  }
}

function toSql(kind: FieldKind, v: unknown): SqlValue {
  switch (kind) {
    case "text":
    case "num":
      return v as string | number;
    case "bool":
      return v ? 1 : 0;
    case "json":
      // The bytes it arrived as, when known: writing them is much cheaper than JSON text (numbers above all).
      return knownValuePayload(v) ?? JSON.stringify(v) ?? null;
    case "marked-json":
      return stringifyMarked(v);
    default: {
      const never: never = kind;
      throw new Error(`unknown field kind ${String(never)}`);
    }
  }
}

function fromSql(f: Field, c: unknown): unknown {
  switch (f.kind) {
    case "text":
    case "num":
      return c;
    case "bool":
      return c !== 0;
    case "json":
      // TEXT: JSON; BLOB (schema version 4): an encoded google.protobuf.Value.
      return typeof c === "string" ? JSON.parse(c) : decodeValue(c as Uint8Array);
    case "marked-json":
      return parseMarked(c as string);
    default: {
      const never: never = f.kind;
      throw new Error(`unknown field kind ${String(never)}`);
    }
  }
}

/** What a column holds when its field's value lives in the rest JSON. */
const fallback = (f: Field): SqlValue => (f.notNull ? (f.kind === "text" ? "" : 0) : null);

/**
 * Whether the field's value cannot be told from its column alone and goes into the rest JSON: a value the column
 * cannot hold, undefined where NULL means something else, or a missing key where NULL would read as undefined.
 */
function inRest(f: Field, o: Rec): boolean {
  if (!Object.hasOwn(o, f.key)) return !f.optional;
  const v = o[f.key];
  if (v === undefined) return f.optional === true || f.notNull === true;
  return !fits(f.kind, v);
}

function column(f: Field, o: Rec): SqlValue {
  if (!Object.hasOwn(o, f.key)) return fallback(f);
  const v = o[f.key];
  return v !== undefined && fits(f.kind, v) ? toSql(f.kind, v) : fallback(f);
}

/** The rest JSON of an object: its keys without a column, values columns cannot hold, the names of missing ones. */
function restOf(fields: readonly Field[], own: ReadonlySet<string>, o: Rec, skip: ReadonlySet<string>): Rec {
  const rest: Rec = {};
  for (const k of Object.keys(o)) if (!own.has(k) && !skip.has(k)) rest[k] = o[k];
  let absent: string[] | undefined;
  for (const f of fields) {
    if (!inRest(f, o)) continue;
    if (Object.hasOwn(o, f.key)) rest[f.key] = o[f.key];
    else (absent ??= []).push(f.key);
  }
  if (absent) rest[ABSENT_KEYS] = absent;
  return rest;
}

const NOTHING: ReadonlySet<string> = new Set();
const TASK_SKIP: ReadonlySet<string> = new Set(["id", "spec", "attempts"]);

function taskRest(t: Rec): string {
  return stringifyMarked(restOf(TASK_FIELDS, TASK_OWN_KEYS, t, TASK_SKIP));
}

function decodeFields(fields: readonly Field[], row: Rec, restJson: string | null): Rec {
  const rest = restJson === null ? {} : parseMarked(restJson);
  if (rest === null || typeof rest !== "object" || Array.isArray(rest)) throw new Error("its rest JSON is not an object");
  const r = rest as Rec;
  const absent = r[ABSENT_KEYS];
  if (absent !== undefined && !Array.isArray(absent)) throw new Error(`${ABSENT_KEYS} is not a list of keys`);
  delete r[ABSENT_KEYS];
  const out: Rec = {};
  for (const f of fields) {
    if (Object.hasOwn(r, f.key) || (absent as unknown[] | undefined)?.includes(f.key)) continue;
    const c = row[f.col];
    if (c === null || c === undefined) {
      if (!f.optional) out[f.key] = undefined;
    } else {
      out[f.key] = fromSql(f, c);
    }
  }
  return Object.assign(out, r);
}

// ---------------------------------------------------------------------------------------------------------------
// Encoding

/** priority, device_id, target_cluster: index columns taken from the spec. */
export function specColumns(spec: TaskSpec): [string, string, string] {
  const s = spec as Partial<TaskSpec> | undefined;
  return [String(s?.priority ?? ""), String(s?.deviceId ?? ""), String(s?.clusterId ?? "")];
}

/** A new task's whole `tasks` row, in TASK_COLUMNS order. Throws (a plain Error) when the record cannot be stored. */
export function encodeTaskInsert(t: TaskRecord): SqlValue[] {
  const o = t as unknown as Rec;
  if (!Array.isArray(t.attempts)) throw new Error(`task ${t.id}: attempts is not an array`);
  return [t.id, ...specColumns(t.spec), taskRest(o), ...TASK_FIELDS.map((f) => column(f, o))];
}

/** The `tasks` columns of TASK_FIELDS (in that order) and the rest JSON, for a record with or without its spec. */
export function taskFieldColumns(rec: Omit<TaskRecord, "spec">): { record: string; values: SqlValue[] } {
  const o = rec as unknown as Rec;
  return { record: taskRest(o), values: TASK_FIELDS.map((f) => column(f, o)) };
}

/** One `attempts` row, in ATTEMPT_COLUMNS order; `extra` is NULL when the columns say it all. */
export function encodeAttemptRow(taskId: string, idx: number, a: AttemptRecord): SqlValue[] {
  const o = a as unknown as Rec;
  if (o === null || typeof o !== "object") throw new Error(`task ${taskId}: attempt ${idx} is not an object`);
  const rest = restOf(ATTEMPT_FIELDS, ATTEMPT_OWN_KEYS, o, NOTHING);
  const extra = Object.keys(rest).length === 0 ? null : stringifyMarked(rest);
  return [taskId, idx, ...ATTEMPT_FIELDS.map((f) => column(f, o)), extra];
}

export function encodeAttempts(t: TaskRecord): SqlValue[][] {
  return t.attempts.map((a, i) => encodeAttemptRow(t.id, i, a));
}

const sameScalar = (f: Field, a: unknown, b: unknown): boolean => (f.kind === "json" || f.kind === "marked-json" ? a === b : Object.is(a, b));

/**
 * What changed from `prev` to `next` (the same task): scalars compared by value, objects (output, shard, split,
 * each attempt, fields without a column) by reference, as records are values (see TaskWriter.put). Undefined when
 * nothing did. The spec is the caller's business (it has a table of its own).
 */
export function diffTask(prev: TaskRecord, next: TaskRecord): TaskDelta | undefined {
  const p = prev as unknown as Rec;
  const n = next as unknown as Rec;
  const cols: string[] = [];
  const vals: SqlValue[] = [];
  let restChanged = false;
  for (const f of TASK_FIELDS) {
    // Most fields of a transition are unchanged: the same defined value means both have the key (a record is a
    // plain object, nothing of its prototype shadows a field), so nothing to compare further (0 and -0 aside).
    const pv = p[f.key];
    const nv = n[f.key];
    if (pv !== undefined && pv === nv && (pv !== 0 || Object.is(pv, nv))) continue;
    const had = Object.hasOwn(p, f.key);
    const has = Object.hasOwn(n, f.key);
    if (had === has && sameScalar(f, p[f.key], n[f.key])) continue;
    cols.push(f.col);
    vals.push(column(f, n));
    if (inRest(f, p) || inRest(f, n)) restChanged = true;
  }
  if (!restChanged) {
    for (const k of Object.keys(n)) {
      if (!TASK_OWN_KEYS.has(k) && (!Object.hasOwn(p, k) || p[k] !== n[k])) {
        restChanged = true;
        break;
      }
    }
  }
  if (!restChanged) {
    for (const k of Object.keys(p)) {
      if (!TASK_OWN_KEYS.has(k) && !Object.hasOwn(n, k)) {
        restChanged = true;
        break;
      }
    }
  }
  if (restChanged) {
    cols.push("record");
    vals.push(taskRest(n));
  }
  const attempts: SqlValue[][] = [];
  let truncateFrom: number | undefined;
  if (prev.attempts !== next.attempts) {
    if (!Array.isArray(next.attempts)) throw new Error(`task ${next.id}: attempts is not an array`);
    const pa = Array.isArray(prev.attempts) ? prev.attempts : [];
    for (let i = 0; i < next.attempts.length; i++) {
      if (i >= pa.length || pa[i] !== next.attempts[i]) attempts.push(encodeAttemptRow(next.id, i, next.attempts[i]));
    }
    if (next.attempts.length < pa.length) truncateFrom = next.attempts.length;
  }
  if (cols.length === 0 && attempts.length === 0 && truncateFrom === undefined) return undefined;
  return { cols, vals, attempts, truncateFrom };
}

/**
 * The spec row; with `seriesRef` (the caller vouches that the series is that slice of the parent's) no series
 * BLOBs. An input whose Value bytes are known (it arrived over RPC: lib/value-wire.ts) goes to the `input` BLOB as
 * those bytes, and its key is left out of the JSON; any other input stays in the JSON.
 */
export function encodeSpecRow(t: TaskRecord, seriesRef?: SeriesRef): SpecRow {
  const { series, ...rest } = t.spec;
  const inputBytes = knownValuePayload(rest.input) ?? null;
  // `rest` is a copy: taking the input out of it leaves the record's spec as it is.
  if (inputBytes) delete (rest as Partial<TaskSpec>).input;
  if (series && seriesRef) return [t.id, JSON.stringify(markTopLevel({ ...rest, seriesRef } as StoredSpec)), null, null, inputBytes];
  const stored: StoredSpec = series ? { ...rest, seriesLength: { values: series.values.length, timestamps: series.timestamps.length } } : rest;
  return [t.id, JSON.stringify(markTopLevel(stored)), series ? packFloat64(series.values) : null, series ? packFloat64(series.timestamps) : null, inputBytes];
}

/**
 * The spec's undefined-valued keys are marked at the top level only: below it are labels (strings) and the
 * client's input, which has no undefined and may be up to the input limit, too big to walk key by key.
 */
function markTopLevel<T extends object>(o: T): T {
  const keys = Object.keys(o).filter((k) => (o as Rec)[k] === undefined);
  return keys.length === 0 ? o : { ...o, [UNDEFINED_KEYS]: keys };
}

function restoreTopLevel(o: unknown): Rec {
  if (typeof o !== "object" || o === null || Array.isArray(o)) throw new Error("not a JSON object");
  const obj = o as Rec;
  const keys = obj[UNDEFINED_KEYS];
  if (keys !== undefined) {
    if (!Array.isArray(keys)) throw new Error(`${UNDEFINED_KEYS} is not a list of keys`);
    delete obj[UNDEFINED_KEYS];
    for (const k of keys) obj[String(k)] = undefined;
  }
  return obj;
}

/** Roughly what binding a value costs in the file, in bytes: for the budget of one commit and the statistics. */
export function sqlBytes(v: SqlValue): number {
  if (v === null) return 1;
  if (typeof v === "number") return 8;
  if (typeof v === "string") return v.length;
  return v.byteLength;
}

// ---------------------------------------------------------------------------------------------------------------
// Decoding

/**
 * Rebuilds a record from its `tasks` row (by column name), its attempts (in order) and its spec; throws a plain
 * Error saying what is wrong when they cannot be a task.
 */
export function decodeTaskRow(row: Rec, attempts: AttemptRecord[], spec: TaskSpec): TaskRecord {
  const fields = decodeFields(TASK_FIELDS, row, row.record as string);
  if (!(TASK_STATES as readonly string[]).includes(fields.state as string)) throw new Error(`unknown state ${JSON.stringify(fields.state)}`);
  return { id: row.id as string, spec, ...fields, attempts } as unknown as TaskRecord;
}

/** Rebuilds one attempt from its `attempts` row (by column name). */
export function decodeAttemptRow(row: Rec): AttemptRecord {
  return decodeFields(ATTEMPT_FIELDS, row, row.extra as string | null) as unknown as AttemptRecord;
}

/**
 * Rebuilds a spec from its row. With `payload: false` the input and series are left out (undefined) and the
 * BLOBs are not read (pass null): what the store keeps in memory for a finished task.
 */
export function decodeSpec(
  spec: string,
  seriesValues: Uint8Array | null,
  seriesTimestamps: Uint8Array | null,
  input: Uint8Array | null,
  opts: DecodeOptions = {},
): TaskSpec {
  const s = restoreTopLevel(JSON.parse(spec)) as unknown as StoredSpec;
  if (!(PRIORITIES as readonly string[]).includes(s.priority)) throw new Error(`unknown priority ${JSON.stringify(s.priority)}`);
  const { seriesLength, seriesRef, ...specRest } = s;
  if (opts.payload === false) return { ...specRest, input: undefined, series: undefined };
  if (input !== null) {
    if (Object.hasOwn(specRest, "input")) throw new Error("its input is stored twice (in the spec JSON and as Value bytes)");
    specRest.input = decodeValue(input);
  }
  if (seriesRef) return { ...specRest, series: sliceOf(seriesRef, opts.parentSeries) };
  return {
    ...specRest,
    series:
      seriesLength === undefined
        ? undefined
        : {
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

/**
 * Little-endian float64s in shared memory: the commit worker reads them in place, so a series of up to the input
 * limit (100 MiB) reaches it without a copy, and stays readable here should the commit have to be retried.
 */
function packFloat64(xs: readonly number[]): Uint8Array {
  const bytes = new Uint8Array(new SharedArrayBuffer(xs.length * 8));
  if (LITTLE_ENDIAN) {
    // On a little-endian machine a Float64Array's bytes already are the stored form (~10× faster than writeDoubleLE).
    new Float64Array(bytes.buffer).set(xs);
    return bytes;
  }
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < xs.length; i++) view.setFloat64(i * 8, xs[i], true);
  return bytes;
}

function unpackFloat64(buf: Uint8Array | null, n: number, what: string): number[] {
  const bytes = buf?.byteLength ?? 0;
  if (bytes !== n * 8) throw new Error(`${what}: ${bytes} bytes stored for ${n} numbers`);
  const view = new DataView(buf!.buffer, buf!.byteOffset, buf!.byteLength);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) out[i] = view.getFloat64(i * 8, true);
  return out;
}

export { restoreTopLevel };
