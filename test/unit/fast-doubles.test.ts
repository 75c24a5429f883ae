// fromBinaryFast must decode every input exactly as protobuf-es's fromBinary does, error or not.
import { create, equals, fromBinary, toBinary, type DescMessage } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { SubmitTaskRequestSchema, SubmitTasksRequestSchema } from "../../gen/edgeplane/v1/task_pb.js";
import { NumericSeriesSchema, TaskSpecSchema } from "../../gen/edgeplane/v1/types_pb.js";
import { FAST_MIN_BYTES, fromBinaryFast } from "../../lib/fast-doubles.js";

const big = FAST_MIN_BYTES / 8 + 3;
const series = (n: number, seed = 1) => ({
  values: Array.from({ length: n }, (_, i) => Math.sin(i * seed) * 1e3),
  timestamps: Array.from({ length: n > 10 ? 10 : n }, (_, i) => BigInt(1_700_000_000_000 + i)),
});

/**
 * Decodes a copy both ways and checks the two agree (NaN included, which protobuf's equals() never finds equal).
 * Returns whether the shortcut was taken: it rewrites tags in the buffer it decodes, fromBinary never does.
 */
function same(desc: DescMessage, bytes: Uint8Array, hasNaN = false): boolean {
  const expected = fromBinary(desc, bytes.slice());
  const copy = bytes.slice();
  const got = fromBinaryFast(desc, copy);
  expect(got).toStrictEqual(expected);
  if (!hasNaN) expect(equals(desc, got, expected)).toBe(true);
  return copy.some((b, i) => b !== bytes[i]);
}

function outcome(decode: () => unknown): string {
  try {
    decode();
    return "decoded";
  } catch {
    return "threw";
  }
}

function sameError(desc: DescMessage, bytes: Uint8Array): void {
  expect(outcome(() => fromBinaryFast(desc, bytes.slice()))).toBe(outcome(() => fromBinary(desc, bytes.slice())));
}

describe("fromBinaryFast", () => {
  it("decodes a task with a big series like fromBinary, special values included", () => {
    const s = series(big);
    s.values[5] = Number.NaN;
    s.values[6] = -0;
    s.values[7] = Number.POSITIVE_INFINITY;
    s.values[8] = 5e-324;
    const req = create(SubmitTaskRequestSchema, {
      idempotencyKey: "k",
      task: { name: "n", handler: "stats", labels: { a: "b" }, series: s, input: create(ValueSchema, { kind: { case: "stringValue", value: "x" } }) },
    });
    const bytes = toBinary(SubmitTaskRequestSchema, req);
    expect(same(SubmitTaskRequestSchema, bytes, true)).toBe(true);
    const got = fromBinaryFast(SubmitTaskRequestSchema, bytes.slice());
    expect(Object.is(got.task!.series!.values[6], -0)).toBe(true);
    expect(got.task!.series!.values[5]).toBeNaN();
    expect(got.task!.series!.values).toHaveLength(big);
    expect(got.task!.$unknown).toBeUndefined();
  });

  it("decodes a batch mixing big, small and no series", () => {
    const tasks = [series(big, 1), series(5, 2), undefined, series(big * 3, 3), series(0)].map((s, i) =>
      create(SubmitTaskRequestSchema, { idempotencyKey: `k${i}`, task: { handler: "stats", series: s } }),
    );
    expect(same(SubmitTasksRequestSchema, toBinary(SubmitTasksRequestSchema, create(SubmitTasksRequestSchema, { tasks })))).toBe(true);
    // Small series only: nothing worth the shortcut.
    const small = [series(5), series(big - 10)].map((s) => create(SubmitTaskRequestSchema, { task: { handler: "stats", series: s } }));
    expect(same(SubmitTasksRequestSchema, toBinary(SubmitTasksRequestSchema, create(SubmitTasksRequestSchema, { tasks: small })))).toBe(false);
  });

  it("leaves to protobuf-es a series sent in two pieces (they concatenate), and unpacked values", () => {
    const a = toBinary(NumericSeriesSchema, create(NumericSeriesSchema, series(big, 1)));
    const b = toBinary(NumericSeriesSchema, create(NumericSeriesSchema, series(big, 2)));
    expect(same(NumericSeriesSchema, a)).toBe(true);
    expect(same(NumericSeriesSchema, concat(a, b))).toBe(false);
    // Unpacked: each value with its own tag (wire type 64-bit), then a big packed piece.
    const w = new BinaryWriter();
    for (const v of [1.5, 2.5, 3.5]) w.tag(1, WireType.Bit64).double(v);
    expect(same(NumericSeriesSchema, concat(w.finish(), b))).toBe(false);
    // The same task given twice in one request: protobuf merges the two, appending their values.
    const t = toBinary(TaskSpecSchema, create(TaskSpecSchema, { handler: "stats", series: series(big) }));
    const req = new BinaryWriter().tag(1, WireType.LengthDelimited).bytes(t).tag(1, WireType.LengthDelimited).bytes(t).finish();
    expect(same(SubmitTaskRequestSchema, req)).toBe(false);
  });

  it("keeps a real unknown field that happens to use the spare number, and other unknown fields", () => {
    const base = toBinary(NumericSeriesSchema, create(NumericSeriesSchema, series(big)));
    for (const no of [3, 15, 100]) {
      const extra = new BinaryWriter()
        .tag(no, WireType.LengthDelimited)
        .bytes(new Uint8Array(FAST_MIN_BYTES + 8))
        .finish();
      // The spare number for field 1 is 3 (the first one NumericSeries does not use): then no shortcut.
      expect(same(NumericSeriesSchema, concat(base, extra))).toBe(no !== 3);
      expect(same(NumericSeriesSchema, concat(extra, base))).toBe(no !== 3);
    }
  });

  it("fails where fromBinary fails: truncated bytes, a payload not a multiple of 8, a length past the end", () => {
    const bytes = toBinary(SubmitTaskRequestSchema, create(SubmitTaskRequestSchema, { task: { handler: "stats", series: series(big) } }));
    for (const cut of [1, 7, 100, bytes.length - 3]) sameError(SubmitTaskRequestSchema, bytes.subarray(0, cut));
    const odd = new BinaryWriter()
      .tag(1, WireType.LengthDelimited)
      .bytes(new Uint8Array(FAST_MIN_BYTES + 5))
      .finish();
    sameError(NumericSeriesSchema, odd);
    expect(() => fromBinaryFast(NumericSeriesSchema, odd.slice())).toThrow(/multiple of 8|premature EOF|range/i);
    const past = new Uint8Array([0x0a, 0xff, 0xff, 0x01, 1, 2, 3]);
    sameError(NumericSeriesSchema, past);
  });

  it("decodes random task batches exactly like fromBinary", () => {
    let seed = 7;
    let fast = 0;
    const rnd = (n: number) => ((seed = (Math.imul(seed, 1_103_515_245) + 12_345) >>> 0) >>> 8) % n;
    for (let round = 0; round < 30; round++) {
      const tasks = Array.from({ length: 1 + rnd(4) }, (_, i) =>
        create(SubmitTaskRequestSchema, {
          idempotencyKey: rnd(2) ? `k${i}` : "",
          task:
            rnd(5) === 0
              ? undefined
              : { handler: "h", name: "x".repeat(rnd(300)), series: rnd(3) === 0 ? undefined : series(rnd(2) ? big + rnd(5000) : rnd(50), round + i) },
        }),
      );
      if (same(SubmitTasksRequestSchema, toBinary(SubmitTasksRequestSchema, create(SubmitTasksRequestSchema, { tasks })))) fast++;
    }
    expect(fast).toBeGreaterThan(5);
  });
});

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
