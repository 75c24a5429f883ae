// The agent reads its stream with a twin of AgentService whose series values and Value fields are bytes
// (agent/wire.ts): what it gets must equal what the generated schema decodes, for every message the coordinator
// sends, with each Value kept as its bytes (read with lib/value-wire.ts).
import { create, fromBinary, fromJson, toBinary, type DescMessage } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { agentStreamService, fromStream } from "../../agent/wire.js";
import { AgentService, ConnectRequestSchema, ConnectResponseSchema, DispatchSchema, type ConnectResponse } from "../../gen/edgeplane/v1/agent_pb.js";
import { readValueField, setValueField } from "../../lib/value-wire.js";
import { NumericSeriesSchema } from "../../gen/edgeplane/v1/types_pb.js";

const streamOutput = agentStreamService.method.connect.output;

/** What the agent reads from `bytes`, with any dispatch input turned back into a Value message to compare. */
function viaStream(bytes: Uint8Array): ConnectResponse {
  const got = fromStream(fromBinary(streamOutput, bytes) as unknown as ConnectResponse);
  const dispatches = got.msg.case === "dispatch" ? [got.msg.value] : got.msg.case === "batch" ? got.msg.value.dispatches : [];
  for (const d of dispatches) {
    const input = readValueField(d, DispatchSchema.field.input);
    if (input === undefined) continue;
    expect(d.input).toBeUndefined(); // kept as bytes, not decoded into messages
    setValueField(d, DispatchSchema.field.input, undefined);
    d.input = fromJson(ValueSchema, input);
  }
  return got;
}

const dispatch = (values: number[], extra: Partial<{ timestamps: bigint[]; input: boolean }> = {}) =>
  create(ConnectResponseSchema, {
    msg: {
      case: "dispatch",
      value: {
        taskId: "t-1",
        attempt: 2,
        handler: "stats",
        memoryLimitBytes: 1n << 30n,
        cpuMillis: 500,
        input: extra.input ? fromJson(ValueSchema, { window: 5, tags: ["a", null, true], nested: { x: [1.5, -0] } }) : undefined,
        series: { values, timestamps: extra.timestamps ?? [] },
        shard: { parentId: "p", shardIndex: 1, shardCount: 4, offset: 250_000n },
      },
    },
  });

describe("agent stream decoding (agent/wire.ts)", () => {
  it("is a different schema object from the generated one (the shortcut is in use on this machine)", () => {
    expect(agentStreamService).not.toBe(AgentService);
    expect(agentStreamService.typeName).toBe(AgentService.typeName);
  });

  it("gives the generated message for a dispatch with a series: values, special values, timestamps, the rest", () => {
    const values = Array.from({ length: 100_003 }, (_, i) => Math.cos(i) * 1e6);
    values.push(Number.NaN, -0, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 5e-324, Number.MAX_VALUE);
    const timestamps = values.map((_, i) => BigInt(1_700_000_000_000 + i));
    for (const msg of [dispatch(values, { timestamps, input: true }), dispatch([]), dispatch([1.5]), dispatch(values)]) {
      const bytes = toBinary(ConnectResponseSchema, msg);
      const got = viaStream(bytes);
      expect(got).toStrictEqual(fromBinary(ConnectResponseSchema, bytes));
      if (got.msg.case === "dispatch" && got.msg.value.series!.values.length === values.length) {
        expect(Object.is(got.msg.value.series!.values[100_004], -0)).toBe(true);
      }
    }
  });

  it("appends a series sent in pieces, as protobuf's merge does", () => {
    const a = toBinary(ConnectResponseSchema, dispatch([1, 2, 3]));
    const b = toBinary(ConnectResponseSchema, dispatch(Array.from({ length: 5000 }, (_, i) => i / 7)));
    const both = new Uint8Array(a.length + b.length);
    both.set(a);
    both.set(b, a.length);
    const got = viaStream(both);
    expect(got).toStrictEqual(fromBinary(ConnectResponseSchema, both));
    expect(got.msg.case === "dispatch" && got.msg.value.series!.values.length).toBe(5003);
  });

  it("gives the generated message for a batch of dispatches with series", () => {
    const values = Array.from({ length: 10_001 }, (_, i) => Math.sin(i));
    const one = (v: number[]) => {
      const m = dispatch(v).msg;
      if (m.case !== "dispatch") throw new Error("not a dispatch");
      return m.value;
    };
    const msg = create(ConnectResponseSchema, {
      msg: {
        case: "batch",
        value: {
          dispatches: [one(values), one([]), one([2.5, -1])],
          cancels: [{ taskId: "c", attempt: 1, reason: "r" }],
          resultAcks: [{ taskId: "a", attempt: 3 }],
        },
      },
    });
    const bytes = toBinary(ConnectResponseSchema, msg);
    expect(viaStream(bytes)).toStrictEqual(fromBinary(ConnectResponseSchema, bytes));
  });

  it("passes every other message through unchanged", () => {
    const msgs = [
      create(ConnectResponseSchema, { msg: { case: "registered", value: { sessionId: "s", heartbeatInterval: { seconds: 1n } } } }),
      create(ConnectResponseSchema, { msg: { case: "cancel", value: { taskId: "t", attempt: 1, reason: "r" } } }),
      create(ConnectResponseSchema, { msg: { case: "dispatch", value: { taskId: "t", attempt: 1, handler: "stats" } } }),
    ];
    for (const m of msgs) {
      const bytes = toBinary(ConnectResponseSchema, m);
      expect(viaStream(bytes)).toStrictEqual(fromBinary(ConnectResponseSchema, bytes));
    }
  });

  it("refuses a series piece that is not whole doubles", () => {
    const series = new BinaryWriter().tag(1, WireType.LengthDelimited).bytes(new Uint8Array(12)).finish();
    const d = new BinaryWriter().tag(1, WireType.LengthDelimited).string("t").tag(5, WireType.LengthDelimited).bytes(series).finish();
    const dispatchField = ConnectResponseSchema.fields.find((f) => f.localName === "dispatch")!.number;
    const bytes = new BinaryWriter().tag(dispatchField, WireType.LengthDelimited).bytes(d).finish();
    expect(() => viaStream(bytes)).toThrow(/12 bytes is not whole doubles/);
  });

  it("series occur only where fromStream looks: in a dispatch (single or batched), never in what the agent sends", () => {
    const paths = (desc: DescMessage, path: string, seen: Set<string>): string[] => {
      if (desc.typeName === NumericSeriesSchema.typeName) return [path];
      if (seen.has(desc.typeName)) return [];
      const next = new Set(seen).add(desc.typeName);
      return desc.fields.flatMap((f) => (f.message ? paths(f.message, `${path}.${f.localName}`, next) : []));
    };
    expect(paths(ConnectResponseSchema, "response", new Set())).toEqual(["response.dispatch.series", "response.batch.dispatches.series"]);
    expect(paths(ConnectRequestSchema, "request", new Set())).toEqual([]);
  });
});
