// Task inputs and outputs cross coordinator/rpc/convert.ts as Value bytes (lib/value-wire.ts): what a client sends
// is what the store and the handlers get, what goes out decodes as the Value it stands for, and an input that is
// not JSON is INVALID_ARGUMENT naming the field.
import { create, fromBinary, fromJson, toBinary, toJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { ConnectResponseSchema, TaskResultSchema } from "../../gen/edgeplane/v1/agent_pb.js";
import { TaskSchema, TaskSpecSchema, Priority, ProcessingMode } from "../../gen/edgeplane/v1/types_pb.js";
import { draftFromPb, inputSize, outboundToPb, reportFromPb, taskToPb } from "../../coordinator/rpc/convert.js";
import { restoreTwin, twinOf, twinRegistry } from "../../lib/wire-twin.js";
import { file_edgeplane_v1_agent } from "../../gen/edgeplane/v1/agent_pb.js";
import { task } from "../helpers/task-fixtures.js";
import { InvalidArgumentError } from "../../coordinator/errors.js";

const registry = twinRegistry([file_edgeplane_v1_agent]);

/** Encodes `msg` and reads it back as the coordinator's grpc-adapter does (through the twin). */
function overTheWire<T extends object>(schema: Parameters<typeof toBinary>[0], msg: T): T {
  const m = fromBinary(twinOf(registry, schema), toBinary(schema, msg as never)) as unknown as T;
  restoreTwin(m, schema);
  return m;
}

const spec = (input: unknown) =>
  create(TaskSpecSchema, { handler: "stats", priority: Priority.NORMAL, processingMode: ProcessingMode.LOCAL, input: fromJson(ValueSchema, input as never) });

describe("convert.ts with Value bytes", () => {
  it("reads a submitted input as JSON, counts its size, and sends it on as the same Value", () => {
    const input = { values: [1, 2.5, -0.25], window: { size: 3 }, tag: "é" };
    const sent = spec(input);
    const got = overTheWire(TaskSpecSchema, sent);
    expect(got.input).toBeUndefined();
    expect(inputSize(got)).toBe(toBinary(ValueSchema, sent.input!).length);
    const draft = draftFromPb(got, inputSize(got));
    expect(draft.input).toStrictEqual(input);

    // Out again: GetTask's task and an agent's dispatch decode (plainly) to the Value that came in
    const record = task({}, { input: draft.input });
    record.output = { mean: 1.08, n: 3 };
    const back = fromBinary(TaskSchema, toBinary(TaskSchema, taskToPb(record)));
    expect(toJson(ValueSchema, back.spec!.input!)).toStrictEqual(input);
    expect(toJson(ValueSchema, back.output!)).toStrictEqual({ mean: 1.08, n: 3 });
    const [res] = outboundToPb([{ type: "dispatch", task: record, attempt: 1 }], "n-1", "s-1");
    const toAgent = fromBinary(ConnectResponseSchema, toBinary(ConnectResponseSchema, res));
    if (toAgent.msg.case !== "batch") throw new Error(`expected a batch, got ${toAgent.msg.case}`);
    expect(toJson(ValueSchema, toAgent.msg.value.dispatches[0].input!)).toStrictEqual(input);
  });

  it("refuses an input that is not JSON (NaN) with INVALID_ARGUMENT naming the field", () => {
    const bad = create(TaskSpecSchema, {
      handler: "stats",
      priority: Priority.NORMAL,
      processingMode: ProcessingMode.LOCAL,
      input: create(ValueSchema, { kind: { case: "numberValue", value: Number.NaN } }),
    });
    const got = overTheWire(TaskSpecSchema, bad);
    expect(() => draftFromPb(got, 9, "tasks[3]")).toThrow(InvalidArgumentError);
    expect(() => draftFromPb(got, 9, "tasks[3]")).toThrow(/^tasks\[3\]\.input: google\.protobuf\.Value cannot be NaN or Infinity/);
  });

  it("reads an agent's output from its bytes", () => {
    const output = { count: 3, mean: 2, p99: 2.98 };
    const r = overTheWire(TaskResultSchema, create(TaskResultSchema, { taskId: "t", attempt: 1, outcome: 1, output: fromJson(ValueSchema, output) }));
    expect(r.output).toBeUndefined();
    expect(reportFromPb(r).output).toStrictEqual(output);
  });
});
