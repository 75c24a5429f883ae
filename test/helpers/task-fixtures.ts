// Task specs and records for unit tests: one place for the plain-data shapes every test builds, with overrides.
import type { TaskRecord, TaskSpec } from "../../coordinator/tasks/types.js";

export const spec = (over: Partial<TaskSpec> = {}): TaskSpec => ({
  name: "t",
  handler: "stats",
  deviceId: "",
  priority: "normal",
  mode: "local",
  input: null,
  series: undefined,
  memoryBytes: 1,
  cpuMillis: 1,
  estimatedMs: 0,
  deadline: undefined,
  maxRetries: 2,
  clusterId: "",
  labels: {},
  disconnectWindowMs: undefined,
  ...over,
});

let nextSeq = 1;
/** A queued task record with the next seq (ids t-<seq>), `over` and `specOver` applied. */
export function task(over: Partial<TaskRecord> = {}, specOver: Partial<TaskSpec> = {}): TaskRecord {
  const seq = over.seq ?? nextSeq++;
  return {
    id: `t-${seq}`,
    spec: spec(specOver),
    state: "queued",
    attempt: 0,
    assignedCluster: "",
    assignedNode: "",
    output: undefined,
    error: "",
    createdAt: 1000 + seq,
    updatedAt: 1000 + seq,
    finishedAt: undefined,
    attempts: [],
    idempotencyKey: "",
    queuedAt: 1000 + seq,
    queuedMs: 0,
    notBefore: 0,
    seq,
    preemptions: 0,
    ...over,
  };
}
