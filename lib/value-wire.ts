// google.protobuf.Value fields (task inputs and outputs, a shard's global) carried as their encoded bytes instead of
// protobuf-es messages. protobuf-es decodes a Value into one message per node (an input of 100 numbers is 100
// Value messages plus a ListValue and a Struct) and back: in the 4 × 1 throughput run that was the largest part of
// the coordinator's protobuf time and much of its garbage. Here a Value's bytes go straight to plain JSON and back.
//
// How it fits protobuf-es without changing a message type: a message read with a wire twin (wire-twin.ts) holds
// its Value fields as unknown fields under their own field numbers (`$unknown`, the bytes as they came); a message
// to be sent gets them the same way (`setValueField`), and protobuf-es writes unknown fields as they are. The
// bytes on the wire are exactly a Value's. `readValueField` reads either form (a Value message, as code or the
// plain schema makes them, or the bytes).
//
// The fast paths handle the canonical encoding of plain JSON: each Value one kind, each map entry a key then a
// value, finite numbers, valid UTF-8, keys other than "__proto__", nesting under MAX_DEPTH. Anything else (and any
// JavaScript value that is not plain JSON, on the way out) is left to protobuf-es whole, so results and errors are
// exactly what toJson(ValueSchema, fromBinary(…)) and toBinary(ValueSchema, fromJson(…)) give (property-tested
// against them in test/unit/value-wire.test.ts).
import { fromBinary, fromJson, toBinary, toJson, type DescField, type JsonValue } from "@bufbuild/protobuf";
import { WireType } from "@bufbuild/protobuf/wire";
import { ValueSchema, type Value } from "@bufbuild/protobuf/wkt";
import { varintSize } from "./fast-doubles.js";

/** Deeper JSON is left to protobuf-es (whose own limit is 100 messages, i.e. ~50 levels of JSON). */
const MAX_DEPTH = 32;

/** What the fast decoder returns when the bytes need protobuf-es's full treatment. */
const SLOW: unique symbol = Symbol("slow");
type Slow = typeof SLOW;

const utf8 = new TextDecoder("utf-8", { fatal: true });

// ---------------------------------------------------------------------------------------------------------------
// Decode: Value bytes → JSON.

/** The JSON of an encoded google.protobuf.Value (its payload, no length prefix); undefined for an empty one. */
export function decodeValue(bytes: Uint8Array): JsonValue | undefined {
  if (bytes.length === 0) return undefined;
  const r = new Reader(bytes);
  const v = r.value(bytes.length, 0);
  if (v !== SLOW) return v;
  const msg = fromBinary(ValueSchema, bytes);
  return msg.kind.case === undefined ? undefined : toJson(ValueSchema, msg);
}

class Reader {
  pos = 0;
  private view: DataView;
  constructor(private readonly buf: Uint8Array) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  private varint(end: number): number | Slow {
    const buf = this.buf;
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 8 && this.pos < end; i++) {
      const b = buf[this.pos++];
      value += (b & 0x7f) * scale;
      if (b < 0x80) return value;
      scale *= 128;
    }
    return SLOW;
  }

  /** The end of a length-delimited field whose length comes next. */
  private lenEnd(end: number): number | Slow {
    const len = this.varint(end);
    if (len === SLOW || this.pos + len > end) return SLOW;
    return this.pos + len;
  }

  /** One Value occupying [pos, end): exactly one field. */
  value(end: number, depth: number): JsonValue | Slow {
    if (depth > MAX_DEPTH || this.pos >= end) return SLOW;
    const tag = this.buf[this.pos++];
    let v: JsonValue | Slow;
    switch (tag) {
      case 0x08: {
        // null_value (enum): null whatever the number, as toJson does.
        v = this.varint(end) === SLOW ? SLOW : null;
        break;
      }
      case 0x11: {
        // number_value (double)
        if (this.pos + 8 > end) return SLOW;
        const n = this.view.getFloat64(this.pos, true);
        this.pos += 8;
        v = Number.isFinite(n) ? n : SLOW; // protobuf-es throws for NaN and ±Infinity: let it
        break;
      }
      case 0x1a:
        v = this.string(end);
        break;
      case 0x20: {
        const b = this.varint(end);
        v = b === SLOW ? SLOW : b !== 0;
        break;
      }
      case 0x2a:
        v = this.struct(end, depth);
        break;
      case 0x32:
        v = this.list(end, depth);
        break;
      default:
        return SLOW;
    }
    // A second field (a oneof set twice, a merged message, an unknown field) is protobuf-es's business.
    return this.pos === end ? v : SLOW;
  }

  private string(end: number): string | Slow {
    const e = this.lenEnd(end);
    if (e === SLOW) return SLOW;
    const buf = this.buf;
    const start = this.pos;
    this.pos = e;
    let ascii = true;
    for (let i = start; i < e; i++)
      if (buf[i] > 0x7f) {
        ascii = false;
        break;
      }
    if (ascii) {
      if (e - start <= 64) {
        let s = "";
        for (let i = start; i < e; i++) s += String.fromCharCode(buf[i]);
        return s;
      }
      return Buffer.from(buf.buffer, buf.byteOffset + start, e - start).toString("latin1");
    }
    try {
      return utf8.decode(buf.subarray(start, e));
    } catch {
      return SLOW; // invalid UTF-8: protobuf-es reports it
    }
  }

  private struct(end: number, depth: number): JsonValue | Slow {
    const e = this.lenEnd(end);
    if (e === SLOW) return SLOW;
    const out: Record<string, JsonValue> = {};
    while (this.pos < e) {
      if (this.buf[this.pos++] !== 0x0a) return SLOW; // Struct.fields entry
      const entryEnd = this.lenEnd(e);
      if (entryEnd === SLOW || this.pos >= entryEnd || this.buf[this.pos++] !== 0x0a) return SLOW; // key first
      const key = this.string(entryEnd);
      if (key === SLOW || key === "__proto__" || this.pos >= entryEnd || this.buf[this.pos++] !== 0x12) return SLOW; // then value
      const valueEnd = this.lenEnd(entryEnd);
      if (valueEnd !== entryEnd) return SLOW;
      const v = this.value(valueEnd, depth + 1);
      if (v === SLOW) return SLOW;
      out[key] = v;
    }
    return out;
  }

  private list(end: number, depth: number): JsonValue | Slow {
    const e = this.lenEnd(end);
    if (e === SLOW) return SLOW;
    const out: JsonValue[] = [];
    while (this.pos < e) {
      if (this.buf[this.pos++] !== 0x0a) return SLOW; // ListValue.values
      const valueEnd = this.lenEnd(e);
      if (valueEnd === SLOW) return SLOW;
      const v = this.value(valueEnd, depth + 1);
      if (v === SLOW) return SLOW;
      out.push(v);
    }
    return out;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Encode: JSON → Value bytes, in two passes (sizes of every nested message in pre-order, then the bytes).

/**
 * The encoded google.protobuf.Value of `json` with its length prefix (as a length-delimited field's data is kept in
 * `$unknown`). Throws what fromJson(ValueSchema, …) throws for a value that is not JSON.
 */
export function encodeValueField(json: unknown): Uint8Array {
  const sizes: number[] = [];
  const size = valueSize(json, sizes, 0);
  if (size < 0) {
    const payload = toBinary(ValueSchema, fromJson(ValueSchema, json as JsonValue));
    const out = new Uint8Array(varintSize(payload.length) + payload.length);
    out.set(payload, writeVarint(out, 0, payload.length));
    return out;
  }
  const buf = Buffer.allocUnsafeSlow(varintSize(size) + size);
  const w = { buf, view: new DataView(buf.buffer, buf.byteOffset, buf.byteLength), pos: writeVarint(buf, 0, size), sizes, next: 0 };
  writeValue(w, json);
  if (w.pos !== buf.length) throw new Error(`value-wire: wrote ${w.pos} bytes of ${buf.length}`);
  return buf;
}

/** The payload of an encoded Value (no length prefix). */
export function encodeValue(json: unknown): Uint8Array {
  const field = encodeValueField(json);
  const len = readLen(field);
  return field.subarray(len.next);
}

const NOT_PLAIN = -1;

/** Size of the Value of `j` (its payload), pushing nested message sizes in pre-order; NOT_PLAIN when not plain JSON. */
function valueSize(j: unknown, sizes: number[], depth: number): number {
  switch (typeof j) {
    case "number":
      return Number.isFinite(j) ? 9 : NOT_PLAIN;
    case "string": {
      const n = Buffer.byteLength(j, "utf8");
      return 1 + varintSize(n) + n;
    }
    case "boolean":
      return 2;
    case "object": {
      if (j === null) return 2;
      if (depth >= MAX_DEPTH) return NOT_PLAIN;
      const at = sizes.length;
      sizes.push(0);
      let inner = 0;
      if (Array.isArray(j)) {
        for (let i = 0; i < j.length; i++) {
          const s = valueSize(j[i], sizes, depth + 1);
          if (s < 0) return NOT_PLAIN;
          inner += 1 + varintSize(s) + s;
        }
      } else {
        const proto = Object.getPrototypeOf(j) as unknown;
        if (proto !== Object.prototype && proto !== null) return NOT_PLAIN;
        const o = j as Record<string, unknown>;
        for (const k of Object.keys(o)) {
          if (k === "__proto__") return NOT_PLAIN;
          const entryAt = sizes.length;
          sizes.push(0);
          const kn = Buffer.byteLength(k, "utf8");
          const s = valueSize(o[k], sizes, depth + 1);
          if (s < 0) return NOT_PLAIN;
          const entry = 1 + varintSize(kn) + kn + 1 + varintSize(s) + s;
          sizes[entryAt] = entry;
          inner += 1 + varintSize(entry) + entry;
        }
      }
      sizes[at] = inner;
      return 1 + varintSize(inner) + inner;
    }
    default:
      return NOT_PLAIN; // undefined, bigint, function, symbol
  }
}

interface Writer {
  buf: Buffer;
  view: DataView;
  pos: number;
  sizes: number[];
  next: number;
}

/** Writes the Value of `j` (sizes were taken by valueSize in the same order). */
function writeValue(w: Writer, j: unknown): void {
  switch (typeof j) {
    case "number":
      w.buf[w.pos++] = 0x11;
      w.view.setFloat64(w.pos, j, true);
      w.pos += 8;
      return;
    case "string":
      w.buf[w.pos++] = 0x1a;
      writeString(w, j);
      return;
    case "boolean":
      w.buf[w.pos++] = 0x20;
      w.buf[w.pos++] = j ? 1 : 0;
      return;
    default: {
      if (j === null) {
        w.buf[w.pos++] = 0x08;
        w.buf[w.pos++] = 0;
        return;
      }
      const inner = w.sizes[w.next++];
      if (Array.isArray(j)) {
        w.buf[w.pos++] = 0x32;
        w.pos = writeVarint(w.buf, w.pos, inner);
        for (let i = 0; i < j.length; i++) {
          w.buf[w.pos++] = 0x0a;
          w.pos = writeVarint(w.buf, w.pos, elementSize(j[i], w));
          writeValue(w, j[i]);
        }
        return;
      }
      w.buf[w.pos++] = 0x2a;
      w.pos = writeVarint(w.buf, w.pos, inner);
      const o = j as Record<string, unknown>;
      for (const k of Object.keys(o)) {
        w.buf[w.pos++] = 0x0a;
        w.pos = writeVarint(w.buf, w.pos, w.sizes[w.next++]);
        w.buf[w.pos++] = 0x0a;
        writeString(w, k);
        w.buf[w.pos++] = 0x12;
        w.pos = writeVarint(w.buf, w.pos, elementSize(o[k], w));
        writeValue(w, o[k]);
      }
    }
  }
}

/** Size of a nested Value about to be written: scalars computed again, containers from the recorded sizes. */
function elementSize(j: unknown, w: Writer): number {
  if (typeof j === "object" && j !== null) {
    const inner = w.sizes[w.next];
    return 1 + varintSize(inner) + inner;
  }
  if (typeof j === "string") {
    const n = Buffer.byteLength(j, "utf8");
    return 1 + varintSize(n) + n;
  }
  return typeof j === "number" ? 9 : 2;
}

function writeString(w: Writer, s: string): void {
  const n = Buffer.byteLength(s, "utf8");
  w.pos = writeVarint(w.buf, w.pos, n);
  if (n === s.length && n <= 64) for (let i = 0; i < n; i++) w.buf[w.pos + i] = s.charCodeAt(i);
  else w.buf.write(s, w.pos, n, "utf8");
  w.pos += n;
}

function writeVarint(buf: Uint8Array, pos: number, v: number): number {
  while (v >= 0x80) {
    buf[pos++] = (v % 128) | 0x80;
    v = Math.floor(v / 128);
  }
  buf[pos++] = v;
  return pos;
}

function readLen(data: Uint8Array): { value: number; next: number } {
  let value = 0;
  let scale = 1;
  for (let pos = 0; pos < data.length && pos < 8; pos++) {
    const b = data[pos];
    value += (b & 0x7f) * scale;
    if (b < 0x80) return { value, next: pos + 1 };
    scale *= 128;
  }
  throw new Error("value-wire: malformed length prefix");
}

// ---------------------------------------------------------------------------------------------------------------
// Fields of messages.

interface UnknownField {
  no: number;
  wireType: WireType;
  data: Uint8Array;
}
type WithUnknown = { $unknown?: UnknownField[] };

/**
 * The JSON of a message's google.protobuf.Value field `field`: from the Value message if the field is set, else
 * from its bytes kept as unknown fields (several pieces are merged as protobuf merges a message given twice).
 * undefined when absent or empty.
 */
export function readValueField(msg: object, field: DescField): JsonValue | undefined {
  const v = (msg as Record<string, unknown>)[field.localName] as Value | undefined;
  if (v) return v.kind.case === undefined ? undefined : toJson(ValueSchema, v);
  const pieces = valuePieces(msg, field);
  if (pieces.length === 0) return undefined;
  if (pieces.length === 1) return decodeValue(pieces[0]);
  const merged = fromBinary(ValueSchema, Buffer.concat(pieces));
  return merged.kind.case === undefined ? undefined : toJson(ValueSchema, merged);
}

/** The payload bytes of a Value field kept as unknown fields (views, in wire order). */
function valuePieces(msg: object, field: DescField): Uint8Array[] {
  const unknown = (msg as WithUnknown).$unknown;
  if (!unknown) return [];
  const out: Uint8Array[] = [];
  for (const u of unknown)
    if (u.no === field.number && u.wireType === WireType.LengthDelimited) {
      const len = readLen(u.data);
      out.push(u.data.subarray(len.next, len.next + len.value));
    }
  return out;
}

/** The encoded size of a Value field (0 when absent), either form. */
export function valueFieldSize(msg: object, field: DescField): number {
  const v = (msg as Record<string, unknown>)[field.localName] as Value | undefined;
  if (v) return toBinary(ValueSchema, v).length;
  let n = 0;
  for (const p of valuePieces(msg, field)) n += p.length;
  return n;
}

/**
 * Sets a message's Value field `field` to `data`: a JSON value, or what `encodeValueField` made of one (kept to
 * send again without encoding it). undefined leaves the field absent. The message's Value-typed property stays
 * unset; the bytes go out as the field on the wire.
 */
export function setValueField(msg: object, field: DescField, data: JsonValue | Uint8Array | undefined): void {
  const m = msg as WithUnknown & Record<string, unknown>;
  delete m[field.localName]; // unset, as a message field of a new message is
  const unknown = (m.$unknown ?? []).filter((u) => u.no !== field.number);
  if (data !== undefined)
    unknown.push({ no: field.number, wireType: WireType.LengthDelimited, data: data instanceof Uint8Array ? data : encodeValueField(data) });
  if (unknown.length > 0) m.$unknown = unknown;
  else delete m.$unknown;
}

/** Moves a decoded `bytes` twin of a Value field (wire-twin.ts) to where readValueField finds it. */
export function keepValueBytes(msg: object, field: DescField, payload: Uint8Array): void {
  const m = msg as WithUnknown & Record<string, unknown>;
  delete m[field.localName];
  if (payload.length === 0) return;
  const data = new Uint8Array(varintSize(payload.length) + payload.length);
  data.set(payload, writeVarint(data, 0, payload.length));
  (m.$unknown ??= []).push({ no: field.number, wireType: WireType.LengthDelimited, data });
}

// ---------------------------------------------------------------------------------------------------------------
// Known encodings.

/**
 * The bytes (field data: length prefix and payload) that JSON values were decoded from, kept while the value lives,
 * so that sending it again (a dispatch, a watch update) or storing it (the task store keeps Value bytes, not JSON
 * text) needs no encoding: equal to the JSON by construction, as the JSON is what they decoded to. Only objects and
 * arrays (a WeakMap key), and only up to REMEMBER_BYTES, which would otherwise double what memory holds of a big
 * input.
 */
const known = new WeakMap<object, Uint8Array>();
const REMEMBER_BYTES = 64 * 1024;

/** Records that `json` is what the field data `data` decodes to; returns `json`. */
export function rememberValueField<T extends JsonValue | undefined>(json: T, data: Uint8Array | undefined): T {
  if (data && typeof json === "object" && json !== null && data.length <= REMEMBER_BYTES) known.set(json, data);
  return json;
}

/** The field data `json` was decoded from, while known (see rememberValueField). */
export function knownValueField(json: unknown): Uint8Array | undefined {
  return typeof json === "object" && json !== null ? known.get(json) : undefined;
}

/**
 * The encoded google.protobuf.Value `json` was decoded from (payload, no length prefix), in a buffer of its own (so
 * that posting it to a worker copies only these bytes), while known; else undefined.
 */
export function knownValuePayload(json: unknown): Uint8Array | undefined {
  const data = knownValueField(json);
  if (!data) return undefined;
  const len = readLen(data);
  return data.slice(len.next, len.next + len.value);
}

/** The field data (length prefix and payload) of a Value field that arrived as exactly one piece of bytes. */
export function valueFieldData(msg: object, field: DescField): Uint8Array | undefined {
  const unknown = (msg as WithUnknown).$unknown;
  if (!unknown || (msg as Record<string, unknown>)[field.localName] !== undefined) return undefined;
  let found: Uint8Array | undefined;
  for (const u of unknown)
    if (u.no === field.number) {
      if (found || u.wireType !== WireType.LengthDelimited) return undefined;
      found = u.data;
    }
  return found;
}
