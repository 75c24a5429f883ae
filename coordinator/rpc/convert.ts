// Maps wire types (protobuf-es generated) to domain types and back, for every service and the agent stream. The
// only module besides the services that imports generated code; it never holds state and decides nothing.
import { durationFromMillis, durationToMillis } from "../../lib/duration.js";
import { create, type DescField } from "@bufbuild/protobuf";
import { durationMs, timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { knownValueField, readValueField, rememberValueField, setValueField, valueFieldData, valueFieldSize } from "../../lib/value-wire.js";
import {
  AttemptOutcome as PbOutcome,
  NodeState as PbNodeState,
  Priority as PbPriority,
  ProcessingMode as PbMode,
  TaskState as PbTaskState,
  Tier as PbTier,
  TaskSchema,
  TaskSpecSchema,
  TaskAttemptSchema,
  NumericSeriesSchema,
  ShardSummarySchema,
  type Task as PbTask,
  type TaskSpec as PbTaskSpec,
  type NumericSeries as PbSeries,
} from "../../gen/edgeplane/v1/types_pb.js";
import {
  CancelSchema,
  ConnectResponseSchema,
  CoordinatorBatchSchema,
  DispatchSchema,
  ResultAckSchema,
  ShardContextSchema,
  ShardPhase as PbShardPhase,
  TaskResultSchema,
  type ConnectRequest as PbConnectRequest,
  type ConnectResponse as PbConnectResponse,
  type CoordinatorBatch as PbCoordinatorBatch,
  type Dispatch as PbDispatch,
  type Register as PbRegister,
  type ShardContext as PbShardContext,
  type TaskResult as PbTaskResult,
} from "../../gen/edgeplane/v1/agent_pb.js";
import { ClusterSchema, NodeSchema, type Cluster as PbCluster, type Node as PbNode } from "../../gen/edgeplane/v1/cluster_pb.js";
import { InvalidArgumentError } from "../errors.js";
import type { AgentMessage, AgentRegistration } from "../dispatch/agent-link.js";
import type { OutboundMessage } from "../dispatch/session.js";
import { clusterFigures } from "../nodes/figures.js";
import { reservationKey, type ClusterRecord, type NodeRecord, type NodeRegistry, type NodeState } from "../nodes/registry.js";
import type { AttemptReport } from "../tasks/task-manager.js";
import type { SpecDraft } from "../tasks/validate.js";
import type {
  AttemptOutcome,
  JsonValue,
  NumericSeries,
  Priority,
  ProcessingMode,
  ShardAssignment,
  ShardPhase,
  TaskRecord,
  TaskState,
  Tier,
} from "../tasks/types.js";

const PRIORITY: Record<number, Priority> = {
  [PbPriority.CRITICAL]: "critical",
  [PbPriority.HIGH]: "high",
  [PbPriority.NORMAL]: "normal",
  [PbPriority.LOW]: "low",
  [PbPriority.BACKGROUND]: "background",
};
const MODE: Record<number, ProcessingMode> = {
  [PbMode.LOCAL]: "local",
  [PbMode.DISTRIBUTED]: "distributed",
  [PbMode.HYBRID]: "hybrid",
  [PbMode.CLOUD_FALLBACK]: "cloud_fallback",
};
const STATE: Record<TaskState, PbTaskState> = {
  queued: PbTaskState.QUEUED,
  dispatched: PbTaskState.DISPATCHED,
  running: PbTaskState.RUNNING,
  succeeded: PbTaskState.SUCCEEDED,
  failed: PbTaskState.FAILED,
  cancelled: PbTaskState.CANCELLED,
  expired: PbTaskState.EXPIRED,
};
const OUTCOME_TO_PB: Record<AttemptOutcome, PbOutcome> = {
  succeeded: PbOutcome.SUCCEEDED,
  failed: PbOutcome.FAILED,
  cancelled: PbOutcome.CANCELLED,
  timed_out: PbOutcome.TIMED_OUT,
};
const NODE_STATE: Record<NodeState, PbNodeState> = {
  ready: PbNodeState.READY,
  disconnected: PbNodeState.DISCONNECTED,
  down: PbNodeState.DOWN,
  draining: PbNodeState.DRAINING,
  drained: PbNodeState.DRAINED,
};

const enumNames = (e: Record<string, string | number>, prefix: string): string =>
  Object.entries(e)
    .filter(([k, v]) => typeof v === "number" && v !== 0 && !/^\d/.test(k))
    .map(([k]) => prefix + k)
    .join(", ");

export function priorityFromPb(p: PbPriority, field: string): Priority {
  const v = PRIORITY[p];
  if (v) return v;
  if (p === PbPriority.UNSPECIFIED) throw new InvalidArgumentError(`${field} is required: one of ${enumNames(PbPriority, "PRIORITY_")}`);
  throw new InvalidArgumentError(`${field}: unknown value ${p}; one of ${enumNames(PbPriority, "PRIORITY_")}`);
}

export function modeFromPb(m: PbMode, field: string): ProcessingMode {
  const v = MODE[m];
  if (v) return v;
  if (m === PbMode.UNSPECIFIED) throw new InvalidArgumentError(`${field} is required: one of ${enumNames(PbMode, "PROCESSING_MODE_")}`);
  throw new InvalidArgumentError(`${field}: unknown value ${m}; one of ${enumNames(PbMode, "PROCESSING_MODE_")}`);
}

export function priorityToPb(p: Priority): PbPriority {
  return Number(Object.keys(PRIORITY).find((k) => PRIORITY[Number(k)] === p)) as PbPriority;
}

export function modeToPb(m: ProcessingMode): PbMode {
  return Number(Object.keys(MODE).find((k) => MODE[Number(k)] === m)) as PbMode;
}

export function taskStateFromPb(s: PbTaskState, field: string): TaskState {
  const found = (Object.keys(STATE) as TaskState[]).find((k) => STATE[k] === s);
  if (!found) throw new InvalidArgumentError(`${field}: unknown task state ${s}; one of ${enumNames(PbTaskState, "TASK_STATE_")}`);
  return found;
}

export function tierFromPb(t: PbTier, field: string, fallback?: Tier): Tier {
  if (t === PbTier.EDGE) return "edge";
  if (t === PbTier.CLOUD) return "cloud";
  if (t === PbTier.UNSPECIFIED && fallback) return fallback;
  throw new InvalidArgumentError(`${field}: ${t === PbTier.UNSPECIFIED ? "is required" : `unknown value ${t}`}; one of TIER_EDGE, TIER_CLOUD`);
}

export const tierToPb = (t: Tier): PbTier => (t === "cloud" ? PbTier.CLOUD : PbTier.EDGE);

export function outcomeFromPb(o: PbOutcome): AttemptOutcome | undefined {
  return (Object.keys(OUTCOME_TO_PB) as AttemptOutcome[]).find((k) => OUTCOME_TO_PB[k] === o);
}

export function seriesFromPb(s: PbSeries | undefined): NumericSeries | undefined {
  if (!s || (s.values.length === 0 && s.timestamps.length === 0)) return undefined;
  return { values: s.values, timestamps: s.timestamps.map((t) => Number(t)) };
}

export function seriesToPb(s: NumericSeries | undefined): PbSeries | undefined {
  return s ? create(NumericSeriesSchema, { values: s.values, timestamps: s.timestamps.map((t) => BigInt(t)) }) : undefined;
}

/** Encoded size of a spec's data, counted against the input limit. */
export function inputSize(spec: PbTaskSpec): number {
  let n = valueFieldSize(spec, TaskSpecSchema.field.input);
  if (spec.series) n += spec.series.values.length * 8 + spec.series.timestamps.length * 10;
  return n;
}

/**
 * Inputs and outputs are read once (lib/value-wire.ts) and the JSON is what the store, the scheduler and the
 * distributed merge use; the bytes each came in as are remembered with it (rememberValueField), so a dispatch or a
 * watch update sends them, and the store writes them, without encoding the JSON again.
 */
function remembered(json: JsonValue | undefined, msg: object, field: DescField): JsonValue | undefined {
  return rememberValueField(json, valueFieldData(msg, field));
}

/** What to send for a JSON value: the bytes it arrived as when still known, else the value. */
const wireValue = (json: JsonValue | undefined): JsonValue | Uint8Array | undefined => knownValueField(json) ?? json;

function inputFromPb(spec: PbTaskSpec, field: string): JsonValue | undefined {
  let json: JsonValue | undefined;
  try {
    json = readValueField(spec, TaskSpecSchema.field.input) as JsonValue | undefined;
  } catch (err) {
    throw new InvalidArgumentError(`${field}.input: ${(err as Error).message}; give JSON: numbers must be finite`);
  }
  return remembered(json, spec, TaskSpecSchema.field.input);
}

export function draftFromPb(spec: PbTaskSpec | undefined, inputBytes: number, field = "task"): SpecDraft {
  if (!spec)
    throw new InvalidArgumentError(
      `${field} is required: give the task to run, e.g. {"task": {"handler": "stats", "priority": "PRIORITY_NORMAL", "processingMode": "PROCESSING_MODE_LOCAL", "input": {"values": [1, 2, 3]}}}`,
    );
  return {
    name: spec.name,
    handler: spec.handler,
    deviceId: spec.deviceId,
    priority: priorityFromPb(spec.priority, `${field}.priority`),
    mode: modeFromPb(spec.processingMode, `${field}.processingMode`),
    input: inputFromPb(spec, field),
    series: seriesFromPb(spec.series),
    memoryBytes: spec.requiredMemoryBytes === undefined ? undefined : Number(spec.requiredMemoryBytes),
    cpuMillis: spec.requiredCpuMillis,
    estimatedMs: spec.estimatedComputeTime ? durationMs(spec.estimatedComputeTime) : undefined,
    deadline: spec.deadline ? timestampMs(spec.deadline) : undefined,
    maxRetries: spec.maxRetries,
    clusterId: spec.clusterId,
    labels: { ...spec.labels },
    disconnectWindowMs: spec.disconnectWindow ? durationMs(spec.disconnectWindow) : undefined,
    inputBytes,
  };
}

const ts = (ms: number | undefined) => (ms === undefined ? undefined : timestampFromMs(ms));

/**
 * A task for the wire. Listings and watch updates leave the input out (`withInput: false`): a 1M-point series
 * would otherwise be re-sent on every transition; GetTask returns it.
 */
export function taskToPb(t: TaskRecord, opts: { withInput: boolean } = { withInput: true }): PbTask {
  const s = t.spec;
  const done = t.attempts.find((a) => a.outcome === "succeeded");
  const pb = create(TaskSchema, {
    id: t.id,
    spec: {
      name: s.name,
      handler: s.handler,
      deviceId: s.deviceId,
      priority: priorityToPb(s.priority),
      processingMode: modeToPb(s.mode),
      series: opts.withInput ? seriesToPb(s.series) : undefined,
      requiredMemoryBytes: BigInt(s.memoryBytes),
      requiredCpuMillis: s.cpuMillis,
      estimatedComputeTime: s.estimatedMs ? durationFromMillis(s.estimatedMs) : undefined,
      deadline: ts(s.deadline),
      maxRetries: s.maxRetries,
      clusterId: s.clusterId,
      labels: s.labels,
      disconnectWindow: s.disconnectWindowMs === undefined ? undefined : durationFromMillis(s.disconnectWindowMs),
    },
    state: STATE[t.state],
    attempt: t.attempt,
    assignedCluster: t.assignedCluster,
    assignedNode: t.assignedNode,
    error: t.error,
    createdAt: ts(t.createdAt),
    updatedAt: ts(t.updatedAt),
    finishedAt: ts(t.finishedAt),
    attempts: t.attempts.map((a) =>
      create(TaskAttemptSchema, {
        attempt: a.attempt,
        nodeId: a.nodeId,
        clusterId: a.clusterId,
        outcome: a.outcome ? OUTCOME_TO_PB[a.outcome] : PbOutcome.UNSPECIFIED,
        error: a.error,
        dispatchedAt: ts(a.dispatchedAt),
        startedAt: ts(a.startedAt),
        finishedAt: ts(a.finishedAt),
        processingTime: durationFromMillis(a.processingMs),
        peakMemoryBytes: BigInt(a.peakMemoryBytes),
        placementReason: a.placementReason,
      }),
    ),
    idempotencyKey: t.idempotencyKey,
    queuedTime: durationFromMillis(t.queuedMs),
    processingTime: done ? durationFromMillis(done.processingMs) : undefined,
    peakMemoryBytes: BigInt(done?.peakMemoryBytes ?? 0),
    placementReason: t.attempts.at(-1)?.placementReason ?? "",
    dispatchTime: done?.startedAt !== undefined ? durationFromMillis(Math.max(0, done.startedAt - done.dispatchedAt)) : undefined,
    preemptions: t.preemptions,
  });
  if (opts.withInput) setValueField(pb.spec!, TaskSpecSchema.field.input, wireValue(s.input));
  setValueField(pb, TaskSchema.field.output, wireValue(t.output));
  addSplit(pb, t);
  return pb;
}

const SHARD_PHASE: Record<ShardPhase, PbShardPhase> = {
  prepare: PbShardPhase.PREPARE,
  partial: PbShardPhase.PARTIAL,
  merge: PbShardPhase.MERGE,
};

/** What an agent needs to run a shard task (Dispatch.shard); undefined for a whole task. */
export function shardToPb(a: ShardAssignment | undefined): PbShardContext | undefined {
  if (!a) return undefined;
  const pb = create(ShardContextSchema, {
    parentId: a.parentId,
    shardIndex: a.index,
    shardCount: a.count,
    offset: BigInt(a.offset),
    phase: SHARD_PHASE[a.phase],
    round: a.round,
  });
  setValueField(pb, ShardContextSchema.field.global, a.global);
  return pb;
}

/** The split of a DISTRIBUTED / HYBRID task (parent side) or a shard task's place in it (shard side). */
function addSplit(pb: PbTask, t: TaskRecord): void {
  if (t.shard) {
    pb.parentId = t.shard.parentId;
    pb.shardIndex = t.shard.index;
    return;
  }
  const s = t.split;
  if (!s) return;
  Object.assign(pb, {
    shardsDone: s.done,
    shardsTotal: s.total,
    splitPhase: s.phase === "prepare" ? `prepare ${s.round + 1}/${s.prepareRounds}` : s.phase,
    mergeTime: durationFromMillis(s.mergeMs),
    // The split's reason says how the shards were sized; placement_reason of a split task is that reason.
    placementReason: s.reason,
    processingTime: durationFromMillis(s.shards.reduce((a, sh) => Math.max(a, sh.processingMs), 0)),
    shards: s.shards.map((sh) =>
      create(ShardSummarySchema, {
        index: sh.index,
        taskId: sh.taskId,
        nodeId: sh.nodeId,
        start: BigInt(sh.start),
        end: BigInt(sh.end),
        state: STATE[sh.state],
        processingTime: durationFromMillis(sh.processingMs),
        queuedTime: durationFromMillis(sh.queuedMs),
        attempts: sh.attempts,
      }),
    ),
  } satisfies Partial<PbTask>);
}

export const taskStateToPb = (s: TaskState): PbTaskState => STATE[s];

export function nodeToPb(n: NodeRecord, reg: NodeRegistry): PbNode {
  const free = reg.free(n);
  return create(NodeSchema, {
    id: n.id,
    clusterId: n.clusterId,
    tier: tierToPb(n.tier),
    state: NODE_STATE[n.state],
    labels: n.labels,
    deviceIds: [...n.deviceIds].sort(),
    handlers: [...n.handlers].sort(),
    totalMemoryBytes: BigInt(n.totalMemoryBytes),
    freeMemoryBytes: BigInt(free.memoryBytes),
    totalCpuMillis: n.totalCpuMillis,
    freeCpuMillis: free.cpuMillis,
    load: n.load,
    runningTaskIds: [...n.reservations.values()].map((r) => r.taskId),
    lastHeartbeat: ts(n.lastHeartbeatAt),
    heartbeatRtt: durationFromMillis(n.rttMs),
    sessionId: n.sessionId,
    maxConcurrentTasks: n.maxConcurrent,
    address: n.address,
    history: n.history.map((h) => ({ state: NODE_STATE[h.state], at: ts(h.at), reason: h.reason })),
  });
}

export const nodeStateToPb = (s: NodeState): PbNodeState => NODE_STATE[s];

export function clusterToPb(c: ClusterRecord, reg: NodeRegistry): PbCluster {
  const f = clusterFigures(c, reg);
  return create(ClusterSchema, {
    id: c.id,
    tier: tierToPb(c.tier),
    labels: c.labels,
    totalMemoryBytes: BigInt(f.totalMem),
    freeMemoryBytes: BigInt(f.freeMem),
    totalCpuMillis: f.totalCpu,
    freeCpuMillis: f.freeCpu,
    health: f.health,
    networkLatency: durationFromMillis(f.latencyMs),
    nodeCount: f.nodes,
    readyNodeCount: f.ready,
    utilization: f.utilization,
    createdAt: ts(c.createdAt),
    declared: c.declared,
  });
}

// ── the agent stream ───────────────────────────────────────────────────────────────────────────────────────────

/** A Register message as the registry takes it; `sessionId` and `address` come from the stream, not the agent. */
export function registrationFromPb(reg: PbRegister, sessionId: string, address: string): AgentRegistration {
  return {
    info: {
      nodeId: reg.nodeId,
      clusterId: reg.clusterId,
      tier: tierFromPb(reg.tier, "register.tier", "edge"),
      labels: { ...reg.labels },
      deviceIds: reg.deviceIds,
      handlers: reg.handlers,
      distributable: reg.distributableHandlers,
      totalCpuMillis: reg.totalCpuMillis,
      totalMemoryBytes: Number(reg.totalMemoryBytes),
      freeCpuMillis: reg.freeCpuMillis,
      freeMemoryBytes: Number(reg.freeMemoryBytes),
      maxConcurrent: reg.maxConcurrentTasks,
      sessionId,
      address,
    },
    running: reg.running.map((r) => ({ taskId: r.taskId, attempt: r.attempt })),
    draining: reg.draining,
    agentVersion: reg.agentVersion,
  };
}

/** A result as the task manager applies it. An outcome the coordinator does not know counts as a failure. */
export function reportFromPb(r: PbTaskResult): AttemptReport {
  const outcome = outcomeFromPb(r.outcome);
  return {
    taskId: r.taskId,
    attempt: r.attempt,
    outcome: outcome ?? "failed",
    output: remembered(readValueField(r, TaskResultSchema.field.output) as JsonValue | undefined, r, TaskResultSchema.field.output),
    error: outcome ? r.error : `agent sent outcome ${r.outcome}: ${r.error}`,
    processingMs: r.processingTime ? durationToMillis(r.processingTime) : 0,
    peakMemoryBytes: Number(r.peakMemoryBytes),
    startedAt: r.startedAt ? timestampMs(r.startedAt) : undefined,
    finishedAt: r.finishedAt ? timestampMs(r.finishedAt) : undefined,
    permanent: r.permanent,
  };
}

/** One agent → coordinator message in domain terms (a batch and the single forms alike). */
export function agentMessageFromPb(m: PbConnectRequest): AgentMessage {
  switch (m.msg.case) {
    case "heartbeat": {
      const hb = m.msg.value;
      return {
        type: "heartbeat",
        sequence: hb.sequence,
        info: {
          freeCpuMillis: hb.freeCpuMillis,
          freeMemoryBytes: Number(hb.freeMemoryBytes),
          load: hb.load,
          runningTaskIds: new Set(hb.running.map((r) => reservationKey(r.taskId, r.attempt))),
          rttMs: hb.lastRtt ? durationToMillis(hb.lastRtt) : undefined,
          deviceIds: hb.deviceIdsChanged ? hb.deviceIds : undefined,
        },
      };
    }
    case "accepted":
      return { type: "reports", accepted: [{ taskId: m.msg.value.taskId, attempt: m.msg.value.attempt }], results: [] };
    case "result":
      return { type: "reports", accepted: [], results: [reportFromPb(m.msg.value)] };
    case "batch":
      return {
        type: "reports",
        accepted: m.msg.value.accepted.map((a) => ({ taskId: a.taskId, attempt: a.attempt })),
        results: m.msg.value.results.map(reportFromPb),
      };
    case "register":
      return { type: "register-again" };
    case "renewCertificate": // identity, not work: rpc/agent-service.ts answers it
    case undefined:
      return { type: "empty" };
    default: {
      const never: never = m.msg;
      throw new InvalidArgumentError(`unknown agent message ${JSON.stringify(never)}`);
    }
  }
}

function dispatchToPb(task: TaskRecord, attempt: number): PbDispatch {
  const s = task.spec;
  const pb = create(DispatchSchema, {
    taskId: task.id,
    attempt,
    handler: s.handler,
    series: seriesToPb(s.series),
    memoryLimitBytes: BigInt(s.memoryBytes),
    cpuMillis: s.cpuMillis,
    deadline: s.deadline === undefined ? undefined : timestampFromMs(s.deadline),
    priority: priorityToPb(s.priority),
    shard: shardToPb(task.shard),
  });
  setValueField(pb, DispatchSchema.field.input, wireValue(s.input));
  return pb;
}

/**
 * One turn's messages to an agent as wire messages: dispatches, cancels and result acks in one CoordinatorBatch
 * (which the agent applies as acks, dispatches, then cancels, so a cancel sent right after its dispatch still
 * stops it), the rest as they are, in order.
 */
export function outboundToPb(batch: readonly OutboundMessage[], nodeId: string, sessionId: string): PbConnectResponse[] {
  const out: PbConnectResponse[] = [];
  let b: PbCoordinatorBatch | undefined;
  const grouped = (): PbCoordinatorBatch => {
    if (!b) {
      b = create(CoordinatorBatchSchema);
      out.push(create(ConnectResponseSchema, { msg: { case: "batch", value: b } }));
    }
    return b;
  };
  for (const m of batch) {
    switch (m.type) {
      case "dispatch":
        grouped().dispatches.push(dispatchToPb(m.task, m.attempt));
        break;
      case "cancel":
        grouped().cancels.push(create(CancelSchema, { taskId: m.taskId, attempt: m.attempt, reason: m.reason }));
        break;
      case "result-ack":
        grouped().resultAcks.push(create(ResultAckSchema, { taskId: m.taskId, attempt: m.attempt }));
        break;
      case "registered":
        out.push(
          create(ConnectResponseSchema, {
            msg: { case: "registered", value: { sessionId, nodeId, heartbeatInterval: durationFromMillis(m.heartbeatIntervalMs) } },
          }),
        );
        break;
      case "drain":
        out.push(create(ConnectResponseSchema, { msg: { case: "drain", value: { grace: durationFromMillis(m.graceMs) } } }));
        break;
      case "heartbeat-ack":
        out.push(create(ConnectResponseSchema, { msg: { case: "heartbeatAck", value: { sequence: m.sequence } } }));
        break;
      case "certificate":
        out.push(
          create(ConnectResponseSchema, {
            msg: {
              case: "certificate",
              value: { certificatePem: m.certificatePem, caPem: m.caPem, notAfter: m.error ? undefined : timestampFromMs(m.notAfter), error: m.error },
            },
          }),
        );
        break;
      default: {
        const never: never = m;
        throw new Error(`unknown outbound message ${JSON.stringify(never)}`);
      }
    }
  }
  return out;
}
