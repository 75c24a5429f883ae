// `submit` flags and --file documents become exactly the SubmitTaskRequests the API defines.
import { toJson } from "@bufbuild/protobuf";
import { durationMs, timestampDate, ValueSchema } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { UsageError } from "../../cli/errors.js";
import { buildSubmitRequest, parseSubmitFile } from "../../cli/submit-request.js";
import { SubmitTaskRequestSchema } from "../../gen/edgeplane/v1/task_pb.js";
import { Priority, ProcessingMode } from "../../gen/edgeplane/v1/types_pb.js";

const now = new Date("2030-01-01T00:00:00.000Z");

describe("buildSubmitRequest", () => {
  it("fills every field from flags, parsing units", () => {
    const req = buildSubmitRequest(
      {
        handler: "stats",
        name: "nightly",
        device: "sensor-1",
        priority: "high",
        mode: "cloud_fallback",
        values: "1,2,3",
        memory: "64Mi",
        cpu: "250",
        estimate: "250ms",
        deadline: "30s",
        maxRetries: "5",
        cluster: "site-a",
        label: ["zone=eu", "line=3"],
        idempotencyKey: "k-1",
      },
      now,
    );
    const t = req.task!;
    expect(t.handler).toBe("stats");
    expect(t.name).toBe("nightly");
    expect(t.deviceId).toBe("sensor-1");
    expect(t.priority).toBe(Priority.HIGH);
    expect(t.processingMode).toBe(ProcessingMode.CLOUD_FALLBACK);
    expect(toJson(ValueSchema, t.input!)).toEqual({ values: [1, 2, 3] });
    expect(t.requiredMemoryBytes).toBe(64n * 1024n * 1024n);
    expect(t.requiredCpuMillis).toBe(250);
    expect(durationMs(t.estimatedComputeTime!)).toBe(250);
    expect(timestampDate(t.deadline!).toISOString()).toBe("2030-01-01T00:00:30.000Z");
    expect(t.maxRetries).toBe(5);
    expect(t.clusterId).toBe("site-a");
    expect(t.labels).toEqual({ zone: "eu", line: "3" });
    expect(req.idempotencyKey).toBe("k-1");
  });

  it("defaults priority to normal and mode to local, and leaves coordinator defaults unset", () => {
    const t = buildSubmitRequest({ handler: "stats" }, now).task!;
    expect(t.priority).toBe(Priority.NORMAL);
    expect(t.processingMode).toBe(ProcessingMode.LOCAL);
    expect(t.input).toBeUndefined();
    expect(t.requiredMemoryBytes).toBeUndefined();
    expect(t.requiredCpuMillis).toBeUndefined();
    expect(t.maxRetries).toBeUndefined();
    expect(t.deadline).toBeUndefined();
  });

  it("takes any JSON value as --input", () => {
    const t = buildSubmitRequest({ handler: "threshold", input: '{"values":[1,9],"max":5}' }, now).task!;
    expect(toJson(ValueSchema, t.input!)).toEqual({ values: [1, 9], max: 5 });
    expect(toJson(ValueSchema, buildSubmitRequest({ handler: "h", input: "[1,2]" }, now).task!.input!)).toEqual([1, 2]);
  });

  it("names the flag whose value is wrong", () => {
    expect(() => buildSubmitRequest({ handler: "stats", memory: "lots" }, now)).toThrow(/^--memory: /);
    expect(() => buildSubmitRequest({ handler: "stats", priority: "urgent" }, now)).toThrow(/^--priority: .*critical/);
    expect(() => buildSubmitRequest({ handler: "stats", deadline: "later" }, now)).toThrow(/^--deadline: /);
    expect(() => buildSubmitRequest({ handler: "stats", label: ["novalue"] }, now)).toThrow(/^--label: /);
    expect(() => buildSubmitRequest({ handler: "stats", input: "{oops" }, now)).toThrow(/--input is not valid JSON/);
  });

  it("requires a handler and refuses --values together with --input", () => {
    expect(() => buildSubmitRequest({}, now)).toThrow(UsageError);
    expect(() => buildSubmitRequest({}, now)).toThrow(/--handler is required/);
    expect(() => buildSubmitRequest({ handler: "stats", values: "1", input: "{}" }, now)).toThrow(/cannot be combined/);
  });
});

describe("parseSubmitFile", () => {
  const one = { task: { handler: "stats", deviceId: "sensor-1", priority: "PRIORITY_HIGH", input: { values: [1, 2] } }, idempotencyKey: "k" };

  it("reads one SubmitTaskRequest in proto JSON", () => {
    const [req] = parseSubmitFile(JSON.stringify(one), "f.json");
    expect(toJson(SubmitTaskRequestSchema, req)).toEqual({
      task: { handler: "stats", deviceId: "sensor-1", priority: "PRIORITY_HIGH", processingMode: "PROCESSING_MODE_LOCAL", input: { values: [1, 2] } },
      idempotencyKey: "k",
    });
  });

  it("reads an array and a SubmitTasksRequest alike", () => {
    const two = [one, { task: { handler: "anomaly" } }];
    expect(parseSubmitFile(JSON.stringify(two), "f.json").map((r) => r.task!.handler)).toEqual(["stats", "anomaly"]);
    expect(parseSubmitFile(JSON.stringify({ tasks: two }), "f.json").map((r) => r.task!.handler)).toEqual(["stats", "anomaly"]);
  });

  it("gives tasks without priority or mode the flag defaults", () => {
    const [req] = parseSubmitFile('{"task":{"handler":"stats"}}', "f.json");
    expect(req.task!.priority).toBe(Priority.NORMAL);
    expect(req.task!.processingMode).toBe(ProcessingMode.LOCAL);
  });

  it("says which task is wrong and how", () => {
    expect(() => parseSubmitFile("[", "f.json")).toThrow(/f.json is not valid JSON/);
    expect(() => parseSubmitFile("[]", "f.json")).toThrow(/holds no tasks/);
    expect(() => parseSubmitFile(JSON.stringify([one, { task: {} }]), "f.json")).toThrow(/f.json: task 2: task.handler is required/);
    expect(() => parseSubmitFile(JSON.stringify([one, { task: { handler: "x", priority: "URGENT" } }]), "f.json")).toThrow(/task 2/);
    expect(() => parseSubmitFile('{"handler":"stats"}', "f.json")).toThrow(/wrap the task spec/);
    expect(() => parseSubmitFile("[1]", "f.json")).toThrow(/expected an object/);
  });
});
