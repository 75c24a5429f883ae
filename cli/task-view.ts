// Human-readable views of tasks: list table, detail, watch lines, submit results.
// Pure: returns strings, never prints, never reads the clock (callers pass `now`).
import { toJson, type JsonValue } from "@bufbuild/protobuf";
import { timestampDate, ValueSchema, type Value } from "@bufbuild/protobuf/wkt";
import type { SubmitTaskResponse, SubmitTasksResult } from "../gen/edgeplane/v1/task_pb.js";
import {
  AttemptOutcome,
  AttemptOutcomeSchema,
  PrioritySchema,
  ProcessingModeSchema,
  TaskState,
  TaskStateSchema,
  type ShardSummary,
  type Task,
  type TaskAttempt,
} from "../gen/edgeplane/v1/types_pb.js";
import {
  enumLabel,
  formatBytes,
  formatCpu,
  formatDuration,
  formatJson,
  formatLabels,
  formatMs,
  formatTimestamp,
  formatTimestampAge,
  NONE,
  renderKeyValues,
  renderTable,
  truncate,
} from "./format.js";

const TERMINAL: ReadonlySet<TaskState> = new Set([TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED, TaskState.EXPIRED]);

/** Whether a task in this state will never change again. */
export function isTerminalState(state: TaskState): boolean {
  return TERMINAL.has(state);
}

/** A google.protobuf.Value as plain JSON (undefined when unset). */
export function valueJson(v: Value | undefined): JsonValue | undefined {
  return v ? toJson(ValueSchema, v) : undefined;
}

/** `tasks`: ID, NAME, HANDLER, PRIORITY, STATE, ATTEMPT, NODE, AGE. */
export function renderTaskTable(tasks: readonly Task[], now: Date): string {
  return renderTable(
    ["ID", "NAME", "HANDLER", "PRIORITY", "STATE", "ATTEMPT", "NODE", "AGE"],
    tasks.map((t) => [
      t.id,
      t.spec?.name || NONE,
      t.spec?.handler || NONE,
      enumLabel(PrioritySchema, t.spec?.priority ?? 0),
      enumLabel(TaskStateSchema, t.state),
      String(t.attempt),
      t.assignedNode || NONE,
      formatTimestampAge(t.createdAt, now),
    ]),
  );
}

function outcomeLabel(o: AttemptOutcome): string {
  return o === AttemptOutcome.UNSPECIFIED ? "in progress" : enumLabel(AttemptOutcomeSchema, o);
}

function renderAttempts(attempts: readonly TaskAttempt[], now: Date): string {
  return renderTable(
    ["#", "NODE", "CLUSTER", "OUTCOME", "DISPATCHED", "PROCESSING", "PEAK MEM", "ERROR"],
    attempts.map((a) => [
      String(a.attempt),
      a.nodeId || NONE,
      a.clusterId || NONE,
      outcomeLabel(a.outcome),
      a.dispatchedAt ? `${formatTimestampAge(a.dispatchedAt, now)} ago` : NONE,
      formatDuration(a.processingTime),
      a.peakMemoryBytes > 0n ? formatBytes(a.peakMemoryBytes) : NONE,
      a.error ? truncate(a.error, 80) : NONE,
    ]),
  );
}

/** How a split task's work was divided: one row per shard. */
function renderShards(shards: readonly ShardSummary[]): string {
  return renderTable(
    ["#", "TASK", "NODE", "POINTS", "STATE", "ATTEMPTS", "QUEUED", "PROCESSING"],
    shards.map((sh) => [
      String(sh.index),
      sh.taskId || NONE,
      sh.nodeId || NONE,
      `${sh.start}..${sh.end}`,
      enumLabel(TaskStateSchema, sh.state),
      String(sh.attempts),
      formatDuration(sh.queuedTime),
      formatDuration(sh.processingTime),
    ]),
  );
}

/** `task ID`: the spec, where and how it ran, its attempts and its output. */
export function renderTaskDetail(task: Task, now: Date): string {
  const s = task.spec;
  const requires = [
    `memory ${s?.requiredMemoryBytes === undefined ? "default" : formatBytes(s.requiredMemoryBytes)}`,
    `cpu ${s?.requiredCpuMillis === undefined ? "default" : formatCpu(s.requiredCpuMillis)}`,
  ];
  if (s?.estimatedComputeTime) requires.push(`estimate ${formatDuration(s.estimatedComputeTime)}`);
  const attempt = s?.maxRetries === undefined ? String(task.attempt) : `${task.attempt} of ${s.maxRetries + 1}`;
  const input = valueJson(s?.input);
  const pairs: [string, string][] = [
    ["ID", task.id],
    ["Name", s?.name || NONE],
    ["Handler", s?.handler || NONE],
    ["State", enumLabel(TaskStateSchema, task.state)],
    ["Priority", enumLabel(PrioritySchema, s?.priority ?? 0)],
    ["Mode", enumLabel(ProcessingModeSchema, s?.processingMode ?? 0)],
    ["Device", s?.deviceId || NONE],
    ["Cluster", `${task.assignedCluster || NONE} (requested: ${s?.clusterId || "any"})`],
    ["Node", task.assignedNode || NONE],
    ["Attempt", attempt],
    ["Created", formatTimestamp(task.createdAt, now)],
    ["Updated", formatTimestamp(task.updatedAt, now)],
    ["Finished", formatTimestamp(task.finishedAt, now)],
    ["Deadline", formatTimestamp(s?.deadline, now)],
    ["Requires", requires.join(", ")],
    ["Labels", formatLabels(s?.labels ?? {})],
  ];
  if (task.idempotencyKey) pairs.push(["Idempotency key", task.idempotencyKey]);
  if (task.placementReason) pairs.push(["Placement", task.placementReason]);
  if (task.parentId) pairs.push(["Shard of", `${task.parentId} (shard ${task.shardIndex})`]);
  if (task.shardsTotal > 0) {
    pairs.push(["Split", `${task.shardsDone}/${task.shardsTotal} shards done${task.splitPhase ? `, phase ${task.splitPhase}` : ""}`]);
  }
  pairs.push(
    ["Queued time", formatDuration(task.queuedTime)],
    ["Dispatch time", formatDuration(task.dispatchTime)],
    ["Processing time", formatDuration(task.processingTime)],
  );
  if (task.mergeTime) pairs.push(["Merge time", formatDuration(task.mergeTime)]);
  if (task.preemptions > 0) pairs.push(["Preemptions", String(task.preemptions)]);
  pairs.push(["Peak memory", task.peakMemoryBytes > 0n ? formatBytes(task.peakMemoryBytes) : NONE]);
  if (task.error) pairs.push(["Error", task.error]);
  if (input !== undefined) pairs.push(["Input", truncate(JSON.stringify(input), 200)]);
  if (s?.series) pairs.push(["Series", `${s.series.values.length} values${s.series.timestamps.length ? " with timestamps" : ""}`]);

  const parts = [renderKeyValues(pairs)];
  if (task.shards.length > 0) parts.push(`Shards:\n${renderShards(task.shards)}`);
  if (task.attempts.length > 0) parts.push(`Attempts:\n${renderAttempts(task.attempts, now)}`);
  const output = valueJson(task.output);
  if (output !== undefined) parts.push(`Output:\n${formatJson(output)}`);
  return parts.join("\n\n");
}

/** `watch`: one line per transition — time, state, attempt, node (and the error once terminal). */
export function renderTransition(task: Task): string {
  const at = task.updatedAt ? timestampDate(task.updatedAt).toISOString() : new Date(0).toISOString();
  const node = task.assignedNode ? `node ${task.assignedNode}` : "node -";
  const line = `${at}  ${enumLabel(TaskStateSchema, task.state).padEnd(10)}  attempt ${task.attempt}  ${node}`;
  return task.error && isTerminalState(task.state) ? `${line}  error: ${task.error}` : line;
}

/** A key that changes exactly when `watch` should print a new line. */
export function transitionKey(task: Task): string {
  return `${task.state}/${task.attempt}/${task.assignedNode}`;
}

/** `submit`: what the coordinator answered for one task. */
export function renderSubmitted(r: SubmitTaskResponse, now: Date): string {
  const pairs: [string, string][] = [
    ["task", r.taskId],
    ["state", enumLabel(TaskStateSchema, r.state)],
    ["cluster", r.assignedCluster || NONE],
    ["queue position", String(r.queuePosition)],
  ];
  if (r.estimatedCompletion) pairs.push(["estimated completion", formatTimestamp(r.estimatedCompletion, now)]);
  return renderKeyValues(pairs);
}

/** `submit --file` with several tasks: one row per task, in file order. */
export function renderSubmittedBatch(results: readonly SubmitTasksResult[]): string {
  return renderTable(
    ["#", "TASK", "STATE", "CLUSTER", "QUEUE", "ERROR"],
    results.map((r, i) => {
      const a = r.accepted;
      return a
        ? [String(i + 1), a.taskId, enumLabel(TaskStateSchema, a.state), a.assignedCluster || NONE, String(a.queuePosition), NONE]
        : [String(i + 1), NONE, "rejected", NONE, NONE, `${r.errorCode || "ERROR"}: ${r.errorMessage}`];
    }),
  );
}

/** `submit --wait`: how the task ended — state, node, timings, output or error. */
export function renderTaskResult(task: Task): string {
  const pairs: [string, string][] = [
    ["task", task.id],
    ["state", enumLabel(TaskStateSchema, task.state)],
    ["node", task.assignedNode ? `${task.assignedNode} (${task.assignedCluster || NONE})` : NONE],
    ["attempts", String(task.attempt)],
    ["queued time", formatDuration(task.queuedTime)],
    ["processing time", formatDuration(task.processingTime)],
  ];
  if (task.createdAt && task.finishedAt) {
    pairs.push(["total time", formatMs(timestampDate(task.finishedAt).getTime() - timestampDate(task.createdAt).getTime())]);
  }
  if (task.peakMemoryBytes > 0n) pairs.push(["peak memory", formatBytes(task.peakMemoryBytes)]);
  if (task.error) pairs.push(["error", task.error]);
  const out = [renderKeyValues(pairs)];
  const output = valueJson(task.output);
  if (output !== undefined) out.push(`output:\n${formatJson(output)}`);
  return out.join("\n");
}
