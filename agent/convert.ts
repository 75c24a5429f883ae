// Every conversion between the agent's wire messages (edgeplane.v1 protos) and its own types: a Dispatch to an
// executor request, an executor result to a TaskResult, and the register / heartbeat / batch messages it sends.
// Pure: no I/O, no clocks (times come in as arguments), nothing sent from here.
import { create } from "@bufbuild/protobuf";
import { timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import {
  ConnectRequestSchema,
  DispatchSchema,
  ShardContextSchema,
  ShardPhase,
  TaskResultSchema,
  type ConnectRequest,
  type Dispatch,
  type RunningTask,
  type TaskAccepted,
  type TaskResult,
} from "../gen/edgeplane/v1/agent_pb.js";
import { AttemptOutcome, Tier } from "../gen/edgeplane/v1/types_pb.js";
import { durationFromMillis } from "../lib/duration.js";
import { encodeValueField, readValueField, setValueField } from "../lib/value-wire.js";
import type { Capacity } from "./capacity.js";
import type { ExecRequest, ExecResult } from "./executor/types.js";
import { NORMAL_RANK } from "./executor/types.js";

/** A (task, attempt) pair as the stream names it. */
export interface AttemptRef {
  taskId: string;
  attempt: number;
}

/** The executor request a dispatch asks for. */
export function execRequestFromDispatch(d: Dispatch): ExecRequest {
  const s = d.series;
  return {
    taskId: d.taskId,
    attempt: d.attempt,
    handler: d.handler,
    input: readValueField(d, DispatchSchema.field.input),
    // wire.ts may hand values over as a Float64Array already; the executor copies either form.
    series: s && (s.values.length > 0 || s.timestamps.length > 0) ? { values: s.values, timestamps: s.timestamps.map(Number) } : undefined,
    memoryLimitBytes: Number(d.memoryLimitBytes),
    deadline: d.deadline ? timestampMs(d.deadline) : undefined,
    shard: shardStep(d),
    // The wire's Priority enum is the rank plus one (PRIORITY_CRITICAL = 1); unspecified counts as NORMAL.
    rank: d.priority >= 1 && d.priority <= 5 ? d.priority - 1 : NORMAL_RANK,
  };
}

/** The scatter-gather step a shard dispatch asks for; undefined for a whole task. */
export function shardStep(d: Dispatch): ExecRequest["shard"] {
  if (!d.shard) return undefined;
  const phase = d.shard.phase === ShardPhase.PREPARE ? "prepare" : d.shard.phase === ShardPhase.MERGE ? "merge" : "partial";
  return { phase, round: d.shard.round, offset: Number(d.shard.offset), global: readValueField(d.shard, ShardContextSchema.field.global) };
}

/**
 * The TaskResult an attempt's outcome is reported as. A completed attempt whose output cannot be expressed as a
 * google.protobuf.Value is reported as failed, saying why.
 */
export function taskResultFromExec(taskId: string, attempt: number, res: ExecResult): TaskResult {
  let outcome: AttemptOutcome;
  let error = "";
  switch (res.type) {
    case "completed":
      outcome = AttemptOutcome.SUCCEEDED;
      break;
    case "failed":
      outcome = AttemptOutcome.FAILED;
      error = res.error;
      break;
    case "cancelled":
      outcome = AttemptOutcome.CANCELLED;
      error = res.reason;
      break;
    case "timed-out":
      outcome = AttemptOutcome.TIMED_OUT;
      error = "deadline reached while running";
      break;
    default: {
      const never: never = res;
      throw new Error(`unknown executor result ${JSON.stringify(never)}`);
    }
  }
  // The output goes out as its Value bytes (lib/value-wire.ts), not as a Value message per JSON node.
  let output: Uint8Array | undefined;
  if (res.type === "completed" && res.output !== undefined) {
    try {
      output = encodeValueField(res.output);
    } catch (err) {
      outcome = AttemptOutcome.FAILED;
      error = `handler output is not JSON-serialisable: ${(err as Error).message}`;
    }
  }
  const pb = create(TaskResultSchema, {
    taskId,
    attempt,
    outcome,
    error,
    processingTime: durationFromMillis(res.processingMs),
    peakMemoryBytes: BigInt(Math.round(res.peakMemoryBytes)),
    startedAt: timestampFromMs(res.startedAt),
    finishedAt: timestampFromMs(res.finishedAt),
    permanent: res.type === "failed" && res.permanent === true,
  });
  if (output) setValueField(pb, TaskResultSchema.field.output, output);
  return pb;
}

/** The result of a dispatch the agent refuses to run (it is draining or stopping): cancelled, nothing measured. */
export function refusedResult(d: AttemptRef, reason: string, nowMs: number): TaskResult {
  return taskResultFromExec(d.taskId, d.attempt, { type: "cancelled", reason, processingMs: 0, peakMemoryBytes: 0, startedAt: nowMs, finishedAt: nowMs });
}

/** What a register message says about the node, besides its measured capacity. */
export interface RegisterFacts {
  nodeId: string;
  clusterId: string;
  tier: "edge" | "cloud";
  labels: Record<string, string>;
  deviceIds: readonly string[];
  handlers: string[];
  distributable: string[];
  maxConcurrentTasks: number;
  agentVersion: string;
  /** Attempts still running and results not yet acknowledged: the coordinator keeps them on this node. */
  running: readonly AttemptRef[];
  draining: boolean;
}

export function registerMessage(f: RegisterFacts, cap: Capacity): ConnectRequest {
  return create(ConnectRequestSchema, {
    msg: {
      case: "register",
      value: {
        nodeId: f.nodeId,
        clusterId: f.clusterId,
        tier: f.tier === "cloud" ? Tier.CLOUD : Tier.EDGE,
        labels: f.labels,
        deviceIds: [...f.deviceIds],
        totalCpuMillis: cap.totalCpuMillis,
        totalMemoryBytes: BigInt(cap.totalMemoryBytes),
        freeCpuMillis: cap.freeCpuMillis,
        freeMemoryBytes: BigInt(cap.freeMemoryBytes),
        handlers: f.handlers,
        distributableHandlers: f.distributable,
        running: f.running.map(runningTask),
        maxConcurrentTasks: f.maxConcurrentTasks,
        agentVersion: f.agentVersion,
        draining: f.draining,
      },
    },
  });
}

export function heartbeatMessage(
  beat: { sequence: bigint; capacity: Capacity; lastRttMs: number | undefined },
  running: readonly AttemptRef[],
  /** The devices served now when they changed since the last beat; undefined when unchanged. */
  changedDevices: readonly string[] | undefined,
): ConnectRequest {
  const cap = beat.capacity;
  return create(ConnectRequestSchema, {
    msg: {
      case: "heartbeat",
      value: {
        sequence: beat.sequence,
        freeCpuMillis: cap.freeCpuMillis,
        freeMemoryBytes: BigInt(cap.freeMemoryBytes),
        load: cap.load,
        running: running.map(runningTask),
        lastRtt: beat.lastRttMs === undefined ? undefined : durationFromMillis(beat.lastRttMs),
        deviceIds: changedDevices ? [...changedDevices] : [],
        deviceIdsChanged: changedDevices !== undefined,
      },
    },
  });
}

/** One AgentBatch: the coordinator applies the accepts first, then the results. */
export function batchMessage(accepted: AttemptRef[], results: TaskResult[]): ConnectRequest {
  const acc: Omit<TaskAccepted, "$typeName" | "$unknown">[] = accepted.map((a) => ({ taskId: a.taskId, attempt: a.attempt }));
  return create(ConnectRequestSchema, { msg: { case: "batch", value: { accepted: acc, results } } });
}

function runningTask(r: AttemptRef): Omit<RunningTask, "$typeName" | "$unknown"> {
  return { taskId: r.taskId, attempt: r.attempt };
}
