// Submit-time validation: turns a client's draft into a TaskSpec with defaults applied, or throws an error
// that names the field and says what to fix. Pure: the clock and fleet facts are passed in.
import { InvalidArgumentError, FailedPreconditionError, ResourceExhaustedError } from "../errors.js";
import type { JsonValue, NumericSeries, Priority, ProcessingMode, TaskSpec } from "./types.js";

/** A task as the client sent it, enums already mapped (unknown enum values are rejected by rpc/convert.ts). */
export interface SpecDraft {
  name: string;
  handler: string;
  deviceId: string;
  priority: Priority;
  mode: ProcessingMode;
  input: JsonValue | undefined;
  series: NumericSeries | undefined;
  memoryBytes: number | undefined;
  cpuMillis: number | undefined;
  estimatedMs: number | undefined;
  deadline: number | undefined;
  maxRetries: number | undefined;
  clusterId: string;
  labels: Record<string, string>;
  disconnectWindowMs: number | undefined;
  /** Encoded size of input plus series, measured by the transport. */
  inputBytes: number;
}

export interface ValidationContext {
  now: number;
  /** Handlers some registered node can run (built-ins included). */
  knownHandlers: ReadonlySet<string>;
  /** Largest total memory of any registered node; undefined while no node has registered. */
  maxNodeMemoryBytes: number | undefined;
  /** Largest total cpu of any registered node; undefined while no node has registered. */
  maxNodeCpuMillis?: number;
  /** Clusters the registry knows (declared or named by an agent); a task may only name one of these. */
  knownClusters?: ReadonlySet<string>;
  maxInputBytes: number;
  defaultMemoryBytes: number;
  defaultCpuMillis: number;
  defaultMaxRetries: number;
}

const MAX_RETRIES_LIMIT = 100;
const ID_PATTERN = /^[A-Za-z0-9._:@/-]{1,128}$/;

export function validateSpec(d: SpecDraft, ctx: ValidationContext, field = "task"): TaskSpec {
  const bad = (path: string, msg: string) => new InvalidArgumentError(`${field}.${path}: ${msg}`);
  if (!d.handler) throw bad("handler", `is required; one of: ${[...ctx.knownHandlers].sort().join(", ")}`);
  if (!ctx.knownHandlers.has(d.handler)) {
    throw bad("handler", `unknown handler "${d.handler}": no registered node can run it; known handlers: ${[...ctx.knownHandlers].sort().join(", ")}`);
  }
  if (d.deviceId && !ID_PATTERN.test(d.deviceId)) throw bad("deviceId", `"${d.deviceId}" is not a valid id (1-128 of A-Z a-z 0-9 . _ : @ / -)`);
  if (d.clusterId && !ID_PATTERN.test(d.clusterId)) throw bad("clusterId", `"${d.clusterId}" is not a valid id (1-128 of A-Z a-z 0-9 . _ : @ / -)`);

  const memoryBytes = d.memoryBytes ?? ctx.defaultMemoryBytes;
  if (!(memoryBytes > 0) || !Number.isSafeInteger(memoryBytes)) throw bad("requiredMemoryBytes", `must be a positive number of bytes, got ${d.memoryBytes}`);
  if (ctx.maxNodeMemoryBytes !== undefined && memoryBytes > ctx.maxNodeMemoryBytes) {
    throw new FailedPreconditionError(
      `${field}.requiredMemoryBytes: ${memoryBytes} bytes is more than any node in the fleet has (largest: ${ctx.maxNodeMemoryBytes} bytes); lower it or add a bigger node`,
    );
  }
  const cpuMillis = d.cpuMillis ?? ctx.defaultCpuMillis;
  // 0 = a slot only: the task takes one of its node's slots (worker threads) and reserves no cpu beyond it.
  if (!(cpuMillis >= 0) || !Number.isInteger(cpuMillis))
    throw bad("requiredCpuMillis", `must be a whole number of millicores >= 0 (1000 = one core, 0 = just a slot), got ${d.cpuMillis}`);

  if (ctx.maxNodeCpuMillis !== undefined && cpuMillis > ctx.maxNodeCpuMillis) {
    throw new FailedPreconditionError(
      `${field}.requiredCpuMillis: ${cpuMillis} millicores is more than any node in the fleet has (largest: ${ctx.maxNodeCpuMillis}); lower it or add a bigger node`,
    );
  }
  if (d.clusterId && ctx.knownClusters && !ctx.knownClusters.has(d.clusterId)) {
    throw new FailedPreconditionError(
      `${field}.clusterId: cluster "${d.clusterId}" is not known; declare it with RegisterCluster or start an agent in it (known: ${[...ctx.knownClusters].sort().join(", ") || "none"})`,
    );
  }
  const estimatedMs = d.estimatedMs ?? 0;
  if (estimatedMs < 0 || !Number.isFinite(estimatedMs)) throw bad("estimatedComputeTime", `must not be negative, got ${d.estimatedMs} ms`);
  if (d.deadline !== undefined) {
    if (!Number.isFinite(d.deadline)) throw bad("deadline", "is not a valid timestamp");
    if (d.deadline <= ctx.now) {
      throw bad("deadline", `${new Date(d.deadline).toISOString()} is already past (now ${new Date(ctx.now).toISOString()}); give a future time`);
    }
  }
  if (d.disconnectWindowMs !== undefined && !(d.disconnectWindowMs >= 0)) throw bad("disconnectWindow", `must not be negative, got ${d.disconnectWindowMs} ms`);
  const maxRetries = d.maxRetries ?? ctx.defaultMaxRetries;
  if (!Number.isInteger(maxRetries) || maxRetries < 0 || maxRetries > MAX_RETRIES_LIMIT) {
    throw bad("maxRetries", `must be between 0 and ${MAX_RETRIES_LIMIT}, got ${d.maxRetries}`);
  }
  if (d.inputBytes > ctx.maxInputBytes) {
    throw new ResourceExhaustedError(
      `${field}.input: ${d.inputBytes} bytes is larger than the limit of ${ctx.maxInputBytes} bytes; split the data into several tasks or raise the coordinator's --max-input-bytes`,
    );
  }
  if (d.series) {
    if (d.series.timestamps.length > 0 && d.series.timestamps.length !== d.series.values.length) {
      throw bad("series.timestamps", `has ${d.series.timestamps.length} entries for ${d.series.values.length} values; give one timestamp per value or none`);
    }
  }
  return {
    name: d.name || d.handler,
    handler: d.handler,
    deviceId: d.deviceId,
    priority: d.priority,
    mode: d.mode,
    input: d.input,
    series: d.series,
    memoryBytes,
    cpuMillis,
    estimatedMs,
    deadline: d.deadline,
    maxRetries,
    clusterId: d.clusterId,
    labels: d.labels,
    disconnectWindowMs: d.disconnectWindowMs,
  };
}
