// Task specs and records for unit tests: one place for the plain-data shapes every test builds, with overrides.
import { newTaskRecord, type TaskRecord, type TaskSpec } from "../../coordinator/tasks/types.js";

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
  return { ...newTaskRecord({ id: `t-${seq}`, spec: spec(specOver), now: 1000 + seq, seq, idempotencyKey: "" }), ...over };
}
