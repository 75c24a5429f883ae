// Maps wire types (protobuf-es generated) to domain types and back. The only module besides the services that
// imports generated code; it never holds state.
import { durationFromMillis } from "../../lib/duration.js";
import { create, toBinary, toJson, fromJson, type JsonValue as PbJson } from "@bufbuild/protobuf";
import {
  durationMs, timestampFromMs, timestampMs, ValueSchema, type Value,
} from "@bufbuild/protobuf/wkt";
import {
  AttemptOutcome as PbOutcome, NodeState as PbNodeState, Priority as PbPriority, ProcessingMode as PbMode,
  TaskState as PbTaskState, Tier as PbTier, TaskSchema, TaskAttemptSchema, NumericSeriesSchema, ShardSummarySchema,
  type Task as PbTask, type TaskSpec as PbTaskSpec, type NumericSeries as PbSeries,
} from "../../gen/edgeplane/v1/types_pb.js";
import { ShardContextSchema, ShardPhase as PbShardPhase, type ShardContext as PbShardContext } from "../../gen/edgeplane/v1/agent_pb.js";
import { ClusterSchema, NodeSchema, type Cluster as PbCluster, type Node as PbNode } from "../../gen/edgeplane/v1/cluster_pb.js";
import { InvalidArgumentError } from "../errors.js";
import type { ClusterRecord, NodeRecord, NodeRegistry, NodeState } from "../nodes/registry.js";
import type { SpecDraft } from "../tasks/validate.js";
import type {
  AttemptOutcome, JsonValue, NumericSeries, Priority, ProcessingMode, ShardAssignment, ShardPhase, TaskRecord, TaskState, Tier,
} from "../tasks/types.js";

const PRIORITY: Record<number, Priority> = {
  [PbPriority.CRITICAL]: "critical", [PbPriority.HIGH]: "high", [PbPriority.NORMAL]: "normal",
  [PbPriority.LOW]: "low", [PbPriority.BACKGROUND]: "background",
};
const MODE: Record<number, ProcessingMode> = {
  [PbMode.LOCAL]: "local", [PbMode.DISTRIBUTED]: "distributed", [PbMode.HYBRID]: "hybrid", [PbMode.CLOUD_FALLBACK]: "cloud_fallback",
};
const STATE: Record<TaskState, PbTaskState> = {
  queued: PbTaskState.QUEUED, dispatched: PbTaskState.DISPATCHED, running: PbTaskState.RUNNING,
  succeeded: PbTaskState.SUCCEEDED, failed: PbTaskState.FAILED, cancelled: PbTaskState.CANCELLED, expired: PbTaskState.EXPIRED,
};
const OUTCOME_TO_PB: Record<AttemptOutcome, PbOutcome> = {
  succeeded: PbOutcome.SUCCEEDED, failed: PbOutcome.FAILED, cancelled: PbOutcome.CANCELLED, timed_out: PbOutcome.TIMED_OUT,
};
const NODE_STATE: Record<NodeState, PbNodeState> = {
  ready: PbNodeState.READY, disconnected: PbNodeState.DISCONNECTED, down: PbNodeState.DOWN,
  draining: PbNodeState.DRAINING, drained: PbNodeState.DRAINED,
};

const enumNames = (e: Record<string, string | number>, prefix: string): string =>
  Object.entries(e).filter(([k, v]) => typeof v === "number" && v !== 0 && !/^\d/.test(k)).map(([k]) => prefix + k).join(", ");

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

export function valueToJson(v: Value | undefined): JsonValue | undefined {
  if (!v || v.kind.case === undefined) return undefined;
  return toJson(ValueSchema, v) as JsonValue;
}

export function jsonToValue(j: JsonValue | undefined): Value | undefined {
  return j === undefined ? undefined : fromJson(ValueSchema, j as PbJson);
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
  let n = spec.input ? toBinary(ValueSchema, spec.input).length : 0;
  if (spec.series) n += spec.series.values.length * 8 + spec.series.timestamps.length * 10;
  return n;
}

export function draftFromPb(spec: PbTaskSpec | undefined, inputBytes: number, field = "task"): SpecDraft {
  if (!spec) throw new InvalidArgumentError(`${field} is required: give the task to run, e.g. {"task": {"handler": "stats", "priority": "PRIORITY_NORMAL", "processingMode": "PROCESSING_MODE_LOCAL", "input": {"values": [1, 2, 3]}}}`);
  return {
    name: spec.name,
    handler: spec.handler,
    deviceId: spec.deviceId,
    priority: priorityFromPb(spec.priority, `${field}.priority`),
    mode: modeFromPb(spec.processingMode, `${field}.processingMode`),
    input: valueToJson(spec.input),
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
      name: s.name, handler: s.handler, deviceId: s.deviceId, priority: priorityToPb(s.priority),
      processingMode: modeToPb(s.mode),
      input: opts.withInput ? jsonToValue(s.input) : undefined, series: opts.withInput ? seriesToPb(s.series) : undefined,
      requiredMemoryBytes: BigInt(s.memoryBytes), requiredCpuMillis: s.cpuMillis,
      estimatedComputeTime: s.estimatedMs ? durationFromMillis(s.estimatedMs) : undefined,
      deadline: ts(s.deadline), maxRetries: s.maxRetries, clusterId: s.clusterId, labels: s.labels,
      disconnectWindow: s.disconnectWindowMs === undefined ? undefined : durationFromMillis(s.disconnectWindowMs),
    },
    state: STATE[t.state],
    attempt: t.attempt,
    assignedCluster: t.assignedCluster,
    assignedNode: t.assignedNode,
    output: jsonToValue(t.output),
    error: t.error,
    createdAt: ts(t.createdAt),
    updatedAt: ts(t.updatedAt),
    finishedAt: ts(t.finishedAt),
    attempts: t.attempts.map((a) => create(TaskAttemptSchema, {
      attempt: a.attempt, nodeId: a.nodeId, clusterId: a.clusterId,
      outcome: a.outcome ? OUTCOME_TO_PB[a.outcome] : PbOutcome.UNSPECIFIED, error: a.error,
      dispatchedAt: ts(a.dispatchedAt), startedAt: ts(a.startedAt), finishedAt: ts(a.finishedAt),
      processingTime: durationFromMillis(a.processingMs), peakMemoryBytes: BigInt(a.peakMemoryBytes),
      placementReason: a.placementReason,
    })),
    idempotencyKey: t.idempotencyKey,
    queuedTime: durationFromMillis(t.queuedMs),
    processingTime: done ? durationFromMillis(done.processingMs) : undefined,
    peakMemoryBytes: BigInt(done?.peakMemoryBytes ?? 0),
    placementReason: t.attempts.at(-1)?.placementReason ?? "",
    dispatchTime: done?.startedAt !== undefined ? durationFromMillis(Math.max(0, done.startedAt - done.dispatchedAt)) : undefined,
    preemptions: t.preemptions,
  });
  addSplit(pb, t);
  return pb;
}

const SHARD_PHASE: Record<ShardPhase, PbShardPhase> = {
  prepare: PbShardPhase.PREPARE, partial: PbShardPhase.PARTIAL, merge: PbShardPhase.MERGE,
};

/** What an agent needs to run a shard task (Dispatch.shard); undefined for a whole task. */
export function shardToPb(a: ShardAssignment | undefined): PbShardContext | undefined {
  if (!a) return undefined;
  return create(ShardContextSchema, {
    parentId: a.parentId, shardIndex: a.index, shardCount: a.count, offset: BigInt(a.offset),
    phase: SHARD_PHASE[a.phase], round: a.round, global: jsonToValue(a.global),
  });
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
    shards: s.shards.map((sh) => create(ShardSummarySchema, {
      index: sh.index, taskId: sh.taskId, nodeId: sh.nodeId, start: BigInt(sh.start), end: BigInt(sh.end), state: STATE[sh.state],
      processingTime: durationFromMillis(sh.processingMs), queuedTime: durationFromMillis(sh.queuedMs), attempts: sh.attempts,
    })),
  } satisfies Partial<PbTask>);
}

export const taskStateToPb = (s: TaskState): PbTaskState => STATE[s];

export function nodeToPb(n: NodeRecord, reg: NodeRegistry): PbNode {
  const free = reg.free(n);
  return create(NodeSchema, {
    id: n.id, clusterId: n.clusterId, tier: tierToPb(n.tier), state: NODE_STATE[n.state], labels: n.labels,
    deviceIds: [...n.deviceIds].sort(), handlers: [...n.handlers].sort(),
    totalMemoryBytes: BigInt(n.totalMemoryBytes), freeMemoryBytes: BigInt(free.memoryBytes),
    totalCpuMillis: n.totalCpuMillis, freeCpuMillis: free.cpuMillis, load: n.load,
    runningTaskIds: [...n.reservations.values()].map((r) => r.taskId),
    lastHeartbeat: ts(n.lastHeartbeatAt), heartbeatRtt: durationFromMillis(n.rttMs),
    sessionId: n.sessionId, maxConcurrentTasks: n.maxConcurrent, address: n.address,
    history: n.history.map((h) => ({ state: NODE_STATE[h.state], at: ts(h.at), reason: h.reason })),
  });
}

export const nodeStateToPb = (s: NodeState): PbNodeState => NODE_STATE[s];

export interface ClusterFigures {
  totalCpu: number; freeCpu: number; totalMem: number; freeMem: number;
  nodes: number; ready: number; health: number; utilization: number; latencyMs: number;
}

/** A cluster's figures, all from its nodes' heartbeats: never declared numbers. */
export function clusterFigures(c: ClusterRecord, reg: NodeRegistry): ClusterFigures {
  const nodes = reg.nodesOf(c.id);
  const ready = nodes.filter((n) => n.state === "ready" || n.state === "draining");
  let totalCpu = 0, freeCpu = 0, totalMem = 0, freeMem = 0, rtt = 0;
  for (const n of ready) {
    const f = reg.free(n);
    totalCpu += n.totalCpuMillis; freeCpu += f.cpuMillis; totalMem += n.totalMemoryBytes; freeMem += f.memoryBytes; rtt += n.rttMs;
  }
  const slots = ready.reduce((a, n) => a + n.maxConcurrent, 0);
  const used = ready.reduce((a, n) => a + n.reservations.size, 0);
  // Utilization: the larger of slot use and measured cpu use, so a cluster busy with other work shows it.
  const utilization = ready.length === 0 ? 0 : Math.max(slots ? used / slots : 0, totalCpu ? 1 - freeCpu / totalCpu : 0);
  return {
    totalCpu, freeCpu, totalMem, freeMem, nodes: nodes.length, ready: ready.length,
    health: reg.health(c.id), utilization: Math.min(1, Math.max(0, utilization)), latencyMs: ready.length ? rtt / ready.length : 0,
  };
}

export function clusterToPb(c: ClusterRecord, reg: NodeRegistry): PbCluster {
  const f = clusterFigures(c, reg);
  return create(ClusterSchema, {
    id: c.id, tier: tierToPb(c.tier), labels: c.labels,
    totalMemoryBytes: BigInt(f.totalMem), freeMemoryBytes: BigInt(f.freeMem), totalCpuMillis: f.totalCpu, freeCpuMillis: f.freeCpu,
    health: f.health, networkLatency: durationFromMillis(f.latencyMs), nodeCount: f.nodes, readyNodeCount: f.ready,
    utilization: f.utilization, createdAt: ts(c.createdAt), declared: c.declared,
  });
}
