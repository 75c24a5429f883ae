// lib/value-wire.ts against protobuf-es: the same JSON from the same bytes, the same bytes from the same JSON, and
// the same errors, over generated values (seeded) and the corner cases the fast paths hand back to protobuf-es.
import { describe, expect, it } from "vitest";
import { create, fromBinary, fromJson, toBinary, toJson, type JsonValue } from "@bufbuild/protobuf";
import { ListValueSchema, StructSchema, ValueSchema, type Value } from "@bufbuild/protobuf/wkt";
import { TaskResultSchema } from "../../gen/edgeplane/v1/agent_pb.js";
import { decodeValue, encodeValue, encodeValueField, readValueField, setValueField, valueFieldSize } from "../../lib/value-wire.js";
import { rng } from "../helpers/rng.js";

const STRINGS = ["", "a", "temperature", "ünïcödé", "日本語のテキスト", "emoji 🌡️", "x".repeat(70), "é".repeat(80), "0", "12", "constructor", "toString"];

function genValue(r: () => number, depth: number): JsonValue {
  const k = Math.floor(r() * (depth > 4 ? 4 : 6));
  switch (k) {
    case 0:
      return null;
    case 1: {
      const n = [0, -0, 1, -1, 0.1, 1e300, -1e-300, Number.MAX_SAFE_INTEGER, 2 ** 53 + 2, r() * 1000 - 500][Math.floor(r() * 10)];
      return n;
    }
    case 2:
      return STRINGS[Math.floor(r() * STRINGS.length)];
    case 3:
      return r() < 0.5;
    case 4: {
      const out: JsonValue[] = [];
      const n = Math.floor(r() * 6);
      for (let i = 0; i < n; i++) out.push(genValue(r, depth + 1));
      return out;
    }
    default: {
      const out: Record<string, JsonValue> = {};
      const n = Math.floor(r() * 6);
      for (let i = 0; i < n; i++) out[STRINGS[Math.floor(r() * STRINGS.length)] + (r() < 0.5 ? "" : String(i))] = genValue(r, depth + 1);
      return out;
    }
  }
}

const pbEncode = (j: JsonValue): Uint8Array => toBinary(ValueSchema, fromJson(ValueSchema, j));
const pbDecode = (b: Uint8Array): JsonValue => toJson(ValueSchema, fromBinary(ValueSchema, b));

/**
 * Everything about a decoded value that matters, as text: prototypes, key order, -0. (toStrictEqual trips on an own
 * "constructor" key, which the generated values have.)
 */
function shape(x: unknown): string {
  if (Array.isArray(x)) return `[${x.map(shape).join(",")}]`;
  if (x !== null && typeof x === "object") {
    const proto = Object.getPrototypeOf(x) as object | null;
    const kind = proto === Object.prototype ? "" : proto === null ? "null-proto" : "other-proto";
    return `${kind}{${Object.keys(x)
      .map((k) => `${JSON.stringify(k)}:${shape((x as Record<string, unknown>)[k])}`)
      .join(",")}}`;
  }
  return Object.is(x, -0) ? "-0" : JSON.stringify(x);
}

function errorOf(f: () => unknown): string | undefined {
  try {
    f();
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

describe("value-wire", () => {
  it("encodes and decodes 2,000 generated values exactly as protobuf-es does", () => {
    const r = rng(42);
    for (let i = 0; i < 2000; i++) {
      const j = genValue(r, 0);
      const mine = encodeValue(j);
      const theirs = pbEncode(j);
      expect(Buffer.from(mine).equals(Buffer.from(theirs)), JSON.stringify(j)).toBe(true);
      expect(shape(decodeValue(theirs))).toBe(shape(pbDecode(theirs)));
    }
  });

  it("encodes a field as its length prefix and payload", () => {
    const j = { values: Array.from({ length: 300 }, (_, i) => i / 7) };
    const field = encodeValueField(j);
    const payload = pbEncode(j);
    expect(field.length).toBeGreaterThan(payload.length);
    expect(Buffer.from(field.subarray(field.length - payload.length)).equals(Buffer.from(payload))).toBe(true);
    expect(field[0] & 0x80).toBe(0x80); // a multi-byte length
  });

  it("leaves what is not plain JSON to protobuf-es, with its result or its error", () => {
    class Reading {
      celsius = 21.5;
    }
    const cases: unknown[] = [Number.NaN, Number.POSITIVE_INFINITY, { a: undefined }, [1, undefined], new Reading(), { nested: new Date(0) }, 10n, () => 1];
    for (const c of cases) {
      const theirs = errorOf(() => pbEncode(c as JsonValue));
      const mine = errorOf(() => encodeValue(c));
      expect(mine, String(c)).toBe(theirs);
      if (theirs === undefined) expect(Buffer.from(encodeValue(c)).equals(Buffer.from(pbEncode(c as JsonValue)))).toBe(true);
    }
    // A key "__proto__" stays an own property
    const withProto = JSON.parse('{"__proto__": {"x": 1}, "y": 2}') as JsonValue;
    const bytes = encodeValue(withProto);
    expect(Buffer.from(bytes).equals(Buffer.from(pbEncode(withProto)))).toBe(true);
    const back = decodeValue(bytes) as Record<string, unknown>;
    expect(Object.keys(back)).toEqual(["__proto__", "y"]);
    expect(Object.getPrototypeOf(back)).toBe(Object.prototype);
  });

  it("decodes non-canonical bytes as protobuf-es does, errors included", () => {
    const num = (n: number): Uint8Array => toBinary(ValueSchema, create(ValueSchema, { kind: { case: "numberValue", value: n } }));
    const str = (s: string): Uint8Array => pbEncode(s);
    const cat = (...parts: Uint8Array[]): Uint8Array => Buffer.concat(parts);
    const cases: Uint8Array[] = [
      num(Number.NaN), // toJson refuses
      num(Number.NEGATIVE_INFINITY),
      cat(num(1), str("last one wins")), // a oneof given twice
      cat(pbEncode({ a: 1 }), pbEncode({ b: 2 })), // a struct given twice merges
      cat(pbEncode([1]), pbEncode([2, 3])), // lists given twice concatenate
      new Uint8Array([0x1a, 0x02, 0xc3, 0x28]), // invalid UTF-8
      new Uint8Array([0x08, 0x05]), // null_value with an unknown enum number
      new Uint8Array([0x20, 0x02]), // bool as 2
      cat(pbEncode({ k: 1 }), new Uint8Array([0x38, 0x01])), // an unknown field
      new Uint8Array([0x2a, 0x04, 0x0a, 0x02, 0x12, 0x00]), // a map entry with no key and an empty value
      new Uint8Array([0x2a, 0x06, 0x0a, 0x04, 0x12, 0x02, 0x20, 0x01, 0x0a]), // truncated
      new Uint8Array([0x32, 0x02, 0x0a, 0x00]), // a list holding an empty Value
      new Uint8Array([0x11, 0x00]), // truncated double
    ];
    for (const b of cases) {
      const theirs = errorOf(() => pbDecode(b));
      const mine = errorOf(() => decodeValue(b));
      expect(mine, Buffer.from(b).toString("hex")).toBe(theirs);
      if (theirs === undefined) expect(shape(decodeValue(b))).toBe(shape(pbDecode(b)));
    }
    // Empty bytes: no value, as an empty Value message is read today (convert.ts valueToJson)
    expect(decodeValue(new Uint8Array(0))).toBeUndefined();
  });

  it("hands deep nesting to protobuf-es and its recursion limit", () => {
    let deep: JsonValue = 1;
    for (let i = 0; i < 40; i++) deep = [deep];
    expect(Buffer.from(encodeValue(deep)).equals(Buffer.from(pbEncode(deep)))).toBe(true);
    expect(shape(decodeValue(pbEncode(deep)))).toBe(shape(deep));
    let tooDeep: JsonValue = 1;
    for (let i = 0; i < 120; i++) tooDeep = { a: tooDeep };
    expect(errorOf(() => encodeValue(tooDeep))).toBe(errorOf(() => pbEncode(tooDeep)));
  });

  it("reads and sets a message's Value field in either form, and encodes it as the Value would be", () => {
    const output = { mean: 2.5, count: 4, tags: ["a", "b"] };
    const viaValue = create(TaskResultSchema, { taskId: "t1", output: fromJson(ValueSchema, output) });
    const viaBytes = create(TaskResultSchema, { taskId: "t1" });
    setValueField(viaBytes, TaskResultSchema.field.output, output);
    expect(readValueField(viaValue, TaskResultSchema.field.output)).toStrictEqual(output);
    expect(readValueField(viaBytes, TaskResultSchema.field.output)).toStrictEqual(output);
    expect(valueFieldSize(viaBytes, TaskResultSchema.field.output)).toBe(valueFieldSize(viaValue, TaskResultSchema.field.output));
    // Same message on the wire (field order aside): a plain decode sees the Value
    const decoded = fromBinary(TaskResultSchema, toBinary(TaskResultSchema, viaBytes));
    expect(toJson(ValueSchema, decoded.output as Value)).toStrictEqual(output);
    expect(decoded.$unknown).toBeUndefined();
    // Setting again replaces; undefined clears
    setValueField(viaBytes, TaskResultSchema.field.output, 7);
    expect(readValueField(viaBytes, TaskResultSchema.field.output)).toBe(7);
    setValueField(viaBytes, TaskResultSchema.field.output, undefined);
    expect(readValueField(viaBytes, TaskResultSchema.field.output)).toBeUndefined();
    expect(fromBinary(TaskResultSchema, toBinary(TaskResultSchema, viaBytes)).output).toBeUndefined();
    // The other well-known shapes still decode plainly alongside
    expect(toJson(StructSchema, fromJson(StructSchema, { a: 1 }))).toStrictEqual({ a: 1 });
    expect(toJson(ListValueSchema, fromJson(ListValueSchema, [1]))).toStrictEqual([1]);
  });
});
