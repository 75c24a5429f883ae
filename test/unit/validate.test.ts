import { describe, expect, it } from "vitest";
import { FailedPreconditionError, InvalidArgumentError, ResourceExhaustedError } from "../../coordinator/errors.js";
import { validateSpec, type SpecDraft, type ValidationContext } from "../../coordinator/tasks/validate.js";

const NOW = 1_800_000_000_000;
const ctx: ValidationContext = {
  now: NOW,
  knownHandlers: new Set(["stats", "anomaly"]),
  maxNodeMemoryBytes: 8 * 2 ** 30,
  maxInputBytes: 1000,
  defaultMemoryBytes: 64 << 20,
  defaultCpuMillis: 100,
  defaultMaxRetries: 3,
};
const draft = (over: Partial<SpecDraft> = {}): SpecDraft => ({
  name: "",
  handler: "stats",
  deviceId: "",
  priority: "normal",
  mode: "local",
  input: { values: [1] },
  series: undefined,
  memoryBytes: undefined,
  cpuMillis: undefined,
  estimatedMs: undefined,
  deadline: undefined,
  maxRetries: undefined,
  clusterId: "",
  labels: {},
  disconnectWindowMs: undefined,
  inputBytes: 10,
  ...over,
});

describe("validateSpec", () => {
  it("applies defaults: memory, cpu, retries (3) and the handler as name", () => {
    const s = validateSpec(draft(), ctx);
    expect(s).toMatchObject({ name: "stats", memoryBytes: 64 << 20, cpuMillis: 100, maxRetries: 3, estimatedMs: 0 });
  });

  it("accepts requiredCpuMillis 0: the task takes a slot and reserves no cpu", () => {
    expect(validateSpec(draft({ cpuMillis: 0 }), ctx).cpuMillis).toBe(0);
  });

  it("keeps an explicit maxRetries of 0", () => {
    expect(validateSpec(draft({ maxRetries: 0 }), ctx).maxRetries).toBe(0);
  });

  it.each([
    [{ handler: "" }, /task\.handler: is required; one of: anomaly, stats/],
    [{ handler: "fft" }, /task\.handler: unknown handler "fft"/],
    [{ memoryBytes: 0 }, /requiredMemoryBytes: must be a positive/],
    [{ memoryBytes: -1 }, /requiredMemoryBytes: must be a positive/],
    [{ cpuMillis: -1 }, /requiredCpuMillis: must be a whole number of millicores >= 0/],
    [{ cpuMillis: 1.5 }, /requiredCpuMillis: must be a whole number of millicores >= 0/],
    [{ estimatedMs: -1 }, /estimatedComputeTime: must not be negative/],
    [{ deadline: NOW }, /deadline: .* is already past/],
    [{ maxRetries: -1 }, /maxRetries: must be between 0 and 100/],
    [{ deviceId: "bad id with spaces" }, /deviceId: .* is not a valid id/],
    [{ series: { values: [1, 2], timestamps: [1] } }, /series\.timestamps: has 1 entries for 2 values/],
  ])("rejects %o with INVALID_ARGUMENT naming the field", (over, msg) => {
    const f = () => validateSpec(draft(over as Partial<SpecDraft>), ctx);
    expect(f).toThrow(InvalidArgumentError);
    expect(f).toThrow(msg);
  });

  it("rejects input over the limit with RESOURCE_EXHAUSTED and says how to fix it", () => {
    const f = () => validateSpec(draft({ inputBytes: 1001 }), ctx);
    expect(f).toThrow(ResourceExhaustedError);
    expect(f).toThrow(/1001 bytes is larger than the limit of 1000 bytes; split the data/);
  });

  it("rejects memory larger than any node has with FAILED_PRECONDITION", () => {
    const f = () => validateSpec(draft({ memoryBytes: 8 * 2 ** 30 + 1 }), ctx);
    expect(f).toThrow(FailedPreconditionError);
    expect(f).toThrow(/more than any node in the fleet has \(largest: 8589934592 bytes\)/);
  });

  it("accepts any memory while no node has registered (the task waits for capacity)", () => {
    expect(validateSpec(draft({ memoryBytes: 2 ** 40 }), { ...ctx, maxNodeMemoryBytes: undefined }).memoryBytes).toBe(2 ** 40);
  });

  it("prefixes errors with the batch field path", () => {
    expect(() => validateSpec(draft({ handler: "x" }), ctx, "tasks[3].task")).toThrow(/^tasks\[3\]\.task\.handler/);
  });

  it("rejects cpu larger than any node has, and a cluster nobody knows, with FAILED_PRECONDITION", () => {
    const c = { ...ctx, maxNodeCpuMillis: 2000, knownClusters: new Set(["site-a"]) };
    expect(() => validateSpec(draft({ cpuMillis: 2001 }), c)).toThrow(FailedPreconditionError);
    expect(() => validateSpec(draft({ cpuMillis: 2001 }), c)).toThrow(/2001 millicores is more than any node/);
    expect(() => validateSpec(draft({ clusterId: "site-z" }), c)).toThrow(/cluster "site-z" is not known.*known: site-a/);
    expect(validateSpec(draft({ clusterId: "site-a", cpuMillis: 2000 }), c).clusterId).toBe("site-a");
  });
});
