// The node agent: registers over one stream, heartbeats measured capacity, runs dispatched attempts in the
// worker-thread executor and reports exactly one result per attempt, holding results while the link is down.
import { durationFromMillis } from "../lib/duration.js";
import { create } from "@bufbuild/protobuf";
import { durationMs, timestampFromMs, timestampMs, ValueSchema, type Value } from "@bufbuild/protobuf/wkt";
import { fromJson, toJson, type JsonValue } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { readFileSync, unwatchFile, watchFile } from "node:fs";
import { performance } from "node:perf_hooks";
import { ConnectRequestSchema, ShardPhase, type ConnectRequest, type ConnectResponse, type Dispatch } from "../gen/edgeplane/v1/agent_pb.js";
import { ClusterService } from "../gen/edgeplane/v1/cluster_pb.js";
import { AttemptOutcome, Tier } from "../gen/edgeplane/v1/types_pb.js";
import { createLogger, type Logger } from "../lib/log.js";
import { resolveAgentConfig, type AgentConfig } from "./config.js";
import { Connection } from "./connection.js";
import { createExecutor, type ExecRequest, type ExecResult, type Executor } from "./executor/executor.js";
import { CapacitySampler } from "./heartbeat.js";
import { ResultJournal } from "./journal.js";
import { AgentIdentity, type TransportCredentials } from "./identity/agent-identity.js";

export const AGENT_VERSION = "0.1.0";

/** Agent lifecycle: connecting → registered → draining → stopped (connecting again after a lost stream). */
export type AgentState = "starting" | "running" | "draining" | "stopped";

export interface AgentHandle {
  nodeId: string;
  /** Stops taking work, lets running tasks finish (up to graceMs), delivers their results, then stops. */
  drain(graceMs?: number): Promise<void>;
  /** Stops at once: running attempts are cancelled and reported as such when the stream is up. */
  stop(): Promise<void>;
}

interface Running {
  taskId: string;
  attempt: number;
  controller: AbortController;
  done: Promise<void>;
}

const key = (taskId: string, attempt: number) => `${taskId}#${attempt}`;

export async function startAgent(partial: Partial<AgentConfig> & { clusterId: string }, logger?: Logger): Promise<AgentHandle> {
  const config = resolveAgentConfig(partial);
  const log = logger ?? createLogger("agent", config.logLevel).child({ node: config.nodeId, cluster: config.clusterId });
  // Identity (agent/identity/): enrols if needed, then mTLS with the node certificate, renewed over the stream.
  const identity = await AgentIdentity.prepare(config, log.child({ component: "identity" }));
  const executor: Executor = await createExecutor({ size: config.workers, handlersDir: config.handlersDir, logger: log });
  const sampler = new CapacitySampler(config.maxMemoryBytes);
  const running = new Map<string, Running>();
  const journal = ResultJournal.open(config.dataDir);
  /** Results journaled but not yet acknowledged by the coordinator; (re)sent after every registration. */
  const pending = new Map<string, ConnectRequest>();
  {
    const { results, unreadable } = journal.load();
    for (const m of results) if (m.msg.case === "result") pending.set(key(m.msg.value.taskId, m.msg.value.attempt), m);
    if (results.length > 0) log.info({ results: results.length, dir: config.dataDir }, "results from before the restart will be delivered");
    if (unreadable.length > 0) log.error({ files: unreadable, dir: config.dataDir }, "unreadable result journal entries kept aside as *.unreadable");
  }
  let state: AgentState = "starting";
  let deviceIds = [...config.deviceIds];
  // Devices move between nodes (rewiring, a gateway swap): with --devices-file the list is re-read on SIGHUP and
  // when the file changes, and the next heartbeat carries it.
  let devicesChanged = false;
  const reloadDevices = () => {
    if (!config.devicesFile) return;
    try {
      const next = readDevicesFile(config.devicesFile);
      if (next.join("\n") !== deviceIds.join("\n")) {
        deviceIds = next;
        devicesChanged = true;
        log.info({ devices: deviceIds }, "devices changed; telling the coordinator");
        heartbeat();
      }
    } catch (err) {
      log.error({ err: (err as Error).message, file: config.devicesFile }, "cannot read the devices file; keeping the current devices");
    }
  };
  if (config.devicesFile) {
    deviceIds = [...new Set([...deviceIds, ...readDevicesFile(config.devicesFile)])];
    watchFile(config.devicesFile, { interval: 500 }, reloadDevices).unref();
    process.on("SIGHUP", reloadDevices);
  }

  // Heartbeats coalesce: at most one unacknowledged; a tick while one is out is sent (with fresh figures) on its ack.
  let heartbeatTimer: NodeJS.Timeout | undefined;
  let sequence = 0n;
  let outstanding: { seq: bigint; sentAt: number } | undefined;
  let pendingBeat = false;
  let lastRttMs: number | undefined;

  const runningList = () => [
    ...[...running.values()].map((r) => ({ taskId: r.taskId, attempt: r.attempt })),
    ...[...pending.values()].flatMap((m) => (m.msg.case === "result" ? [{ taskId: m.msg.value.taskId, attempt: m.msg.value.attempt }] : [])),
  ];

  const heartbeat = () => {
    if (conn.current !== "registered") return;
    if (outstanding) {
      pendingBeat = true;
      return;
    }
    const cap = sampler.sample();
    sequence += 1n;
    // Sent once; a lost stream re-registers with the current list anyway.
    const sendDevices = devicesChanged;
    devicesChanged = false;
    outstanding = { seq: sequence, sentAt: performance.now() };
    conn.send(create(ConnectRequestSchema, {
      msg: {
        case: "heartbeat",
        value: {
          sequence, freeCpuMillis: cap.freeCpuMillis, freeMemoryBytes: BigInt(cap.freeMemoryBytes), load: cap.load,
          running: runningList(), lastRtt: lastRttMs === undefined ? undefined : durationFromMillis(lastRttMs),
          deviceIds: sendDevices ? deviceIds : [], deviceIdsChanged: sendDevices,
        },
      },
    }));
  };

  const deliver = (m: ConnectRequest) => {
    if (m.msg.case !== "result") return;
    const { taskId, attempt } = m.msg.value;
    try {
      journal.write(taskId, attempt, m);
    } catch (err) {
      // Still deliverable while this process lives; only a restart would lose it.
      log.error({ err: (err as Error).message, task: taskId }, "could not journal a result");
    }
    pending.set(key(taskId, attempt), m);
    conn.send(m);
  };

  const conn: Connection = new Connection(
    { address: config.coordinator, reconnectBaseMs: config.reconnectBaseMs, reconnectMaxMs: config.reconnectMaxMs, credentials: () => identity.transport() },
    {
      register: () => {
        const cap = sampler.sample();
        return create(ConnectRequestSchema, {
          msg: {
            case: "register",
            value: {
              nodeId: config.nodeId, clusterId: config.clusterId, tier: config.tier === "cloud" ? Tier.CLOUD : Tier.EDGE,
              labels: config.labels, deviceIds, totalCpuMillis: cap.totalCpuMillis, totalMemoryBytes: BigInt(cap.totalMemoryBytes),
              freeCpuMillis: cap.freeCpuMillis, freeMemoryBytes: BigInt(cap.freeMemoryBytes), handlers: executor.handlers(),
              distributableHandlers: executor.distributable(), running: runningList(), maxConcurrentTasks: executor.size, agentVersion: AGENT_VERSION,
              draining: state === "draining",
            },
          },
        });
      },
      onRegistered: (r) => {
        const intervalMs = r.heartbeatInterval ? durationMs(r.heartbeatInterval) : 1000;
        log.info({ session: r.sessionId, heartbeatIntervalMs: intervalMs, redelivering: pending.size }, "registered with coordinator");
        if (state === "starting") state = "running";
        outstanding = undefined;
        pendingBeat = false;
        if (heartbeatTimer) clearInterval(heartbeatTimer);
        heartbeatTimer = setInterval(heartbeat, Math.max(10, intervalMs));
        for (const m of pending.values()) conn.send(m);
      },
      onMessage: (m: ConnectResponse) => {
        switch (m.msg.case) {
          case "dispatch":
            onDispatch(m.msg.value);
            break;
          case "cancel": {
            const r = running.get(key(m.msg.value.taskId, m.msg.value.attempt));
            if (r) {
              log.info({ task: r.taskId, attempt: r.attempt, reason: m.msg.value.reason }, "cancelling task");
              r.controller.abort(new Error(m.msg.value.reason || "cancelled by coordinator"));
            }
            break;
          }
          case "drain":
            log.info({ graceMs: m.msg.value.grace ? durationMs(m.msg.value.grace) : undefined }, "coordinator asked this node to drain");
            if (state === "running") state = "draining";
            break;
          case "heartbeatAck":
            if (outstanding && outstanding.seq === m.msg.value.sequence) {
              lastRttMs = performance.now() - outstanding.sentAt;
              outstanding = undefined;
              if (pendingBeat) {
                pendingBeat = false;
                heartbeat();
              }
            }
            break;
          case "resultAck": {
            const { taskId, attempt } = m.msg.value;
            pending.delete(key(taskId, attempt));
            journal.remove(taskId, attempt).catch((err: unknown) => {
              log.warn({ err: (err as Error).message, task: taskId }, "could not remove an acknowledged result from the journal; it will be sent again and ignored");
            });
            break;
          }
          case "registered":
          case "certificate": // identity renewal: handled by Connection (agent/identity/)
          case "batch": // unpacked by Connection
          case undefined:
            break;
          default: {
            const never: never = m.msg;
            log.warn({ msg: never }, "unknown coordinator message");
          }
        }
      },
      onCertificate: (c) => identity.onCertificate(c),
      onClosed: (reason) => {
        if (heartbeatTimer) clearInterval(heartbeatTimer);
        heartbeatTimer = undefined;
        outstanding = undefined;
        log.warn({ reason, running: running.size }, "lost the coordinator; running tasks continue");
      },
    },
    log,
  );

  const onDispatch = (d: Dispatch) => {
    const k = key(d.taskId, d.attempt);
    if (running.has(k)) return; // a duplicate dispatch of an attempt we already run
    if (state !== "running") {
      deliver(resultMessage(d.taskId, d.attempt, { type: "cancelled", reason: `node ${config.nodeId} is ${state}`, processingMs: 0, peakMemoryBytes: 0, startedAt: Date.now(), finishedAt: Date.now() }));
      return;
    }
    conn.send(create(ConnectRequestSchema, { msg: { case: "accepted", value: { taskId: d.taskId, attempt: d.attempt } } }));
    const controller = new AbortController();
    const entry: Running = { taskId: d.taskId, attempt: d.attempt, controller, done: Promise.resolve() };
    running.set(k, entry);
    const shard = shardStep(d);
    log.info({ task: d.taskId, attempt: d.attempt, handler: d.handler, ...(d.shard ? { parent: d.shard.parentId, shard: `${d.shard.shardIndex + 1}/${d.shard.shardCount}`, phase: shard?.phase, round: d.shard.round } : {}) }, d.shard ? "running shard" : "running task");
    entry.done = executor.run({
      taskId: d.taskId, attempt: d.attempt, handler: d.handler,
      input: d.input ? toJson(ValueSchema, d.input) : undefined,
      series: d.series && (d.series.values.length > 0 || d.series.timestamps.length > 0)
        ? { values: d.series.values, timestamps: d.series.timestamps.map(Number) } : undefined,
      memoryLimitBytes: Number(d.memoryLimitBytes),
      deadline: d.deadline ? timestampMs(d.deadline) : undefined,
      shard,
    }, controller.signal).then((res) => {
      running.delete(k);
      log.info({ task: d.taskId, attempt: d.attempt, handler: d.handler, outcome: res.type, processingMs: res.processingMs, peakMemoryBytes: res.peakMemoryBytes, ...(res.type === "failed" ? { error: res.error } : {}) }, "task finished");
      deliver(resultMessage(d.taskId, d.attempt, res));
      // Tell the coordinator about the freed capacity now rather than at the next tick.
      heartbeat();
    });
  };

  conn.start();
  identity.startRenewal((m) => conn.send(m));

  let stopping: Promise<void> | undefined;
  // stop() during a drain cuts the grace short.
  const hurry = new AbortController();
  const stop = async (graceMs: number | undefined) => {
    if (graceMs === undefined) hurry.abort();
    stopping ??= (async () => {
      state = "draining";
      if (graceMs !== undefined && running.size > 0) {
        // Tell the coordinator first so no new work arrives while we finish.
        await drainSelf(config, log, identity.currentCredentials);
        log.info({ running: running.size, graceMs }, "draining: waiting for running tasks");
        const all = Promise.all([...running.values()].map((r) => r.done));
        await Promise.race([
          all,
          new Promise((r) => setTimeout(r, graceMs).unref()),
          new Promise((r) => hurry.signal.addEventListener("abort", r, { once: true })),
        ]);
      }
      for (const r of running.values()) r.controller.abort(new Error(`node ${config.nodeId} shutting down`));
      await Promise.all([...running.values()].map((r) => r.done));
      // Acknowledged results forgotten, and the rest out on the open stream before the half-close.
      await journal.settled();
      await new Promise((r) => setImmediate(r));
      if (heartbeatTimer) clearInterval(heartbeatTimer);
      identity.stop();
      await conn.stop();
      await executor.close();
      if (config.devicesFile) {
        unwatchFile(config.devicesFile);
        process.off("SIGHUP", reloadDevices);
      }
      state = "stopped";
      if (pending.size > 0) log.warn({ results: pending.size, dir: config.dataDir }, "stopped with results the coordinator has not acknowledged; they are journaled and go out at the next start");
      log.info("agent stopped");
    })();
    return stopping;
  };

  return {
    nodeId: config.nodeId,
    drain: (graceMs = config.drainGraceMs) => stop(graceMs),
    stop: () => stop(undefined),
  };
}

/** The scatter-gather step a shard dispatch asks for; undefined for a whole task. */
function shardStep(d: Dispatch): ExecRequest["shard"] {
  if (!d.shard) return undefined;
  const phase = d.shard.phase === ShardPhase.PREPARE ? "prepare" : d.shard.phase === ShardPhase.MERGE ? "merge" : "partial";
  return { phase, round: d.shard.round, offset: Number(d.shard.offset), global: d.shard.global ? toJson(ValueSchema, d.shard.global) : undefined };
}

/** Asks the coordinator to stop placing work here (best effort: the stream's cancelled results cover a miss). */
async function drainSelf(config: AgentConfig, log: Logger, creds: TransportCredentials): Promise<void> {
  try {
    const client = createClient(ClusterService, createGrpcTransport({ baseUrl: creds.baseUrl, nodeOptions: creds.nodeOptions }));
    await client.drainNode({ nodeId: config.nodeId }, { timeoutMs: 2000 });
  } catch (err) {
    log.warn({ err: (err as Error).message }, "could not tell the coordinator this node is draining");
  }
}

function resultMessage(taskId: string, attempt: number, res: ExecResult): ConnectRequest {
  const outcome = res.type === "completed" ? AttemptOutcome.SUCCEEDED
    : res.type === "failed" ? AttemptOutcome.FAILED
      : res.type === "cancelled" ? AttemptOutcome.CANCELLED : AttemptOutcome.TIMED_OUT;
  let output: Value | undefined;
  let error = res.type === "failed" ? res.error : res.type === "cancelled" ? res.reason : res.type === "timed-out" ? "deadline reached while running" : "";
  if (res.type === "completed" && res.output !== undefined) {
    try {
      output = fromJson(ValueSchema, res.output as JsonValue);
    } catch (err) {
      error = `handler output is not JSON-serialisable: ${(err as Error).message}`;
    }
  }
  return create(ConnectRequestSchema, {
    msg: {
      case: "result",
      value: {
        taskId, attempt, outcome: error && res.type === "completed" ? AttemptOutcome.FAILED : outcome, output, error,
        processingTime: durationFromMillis(res.processingMs), peakMemoryBytes: BigInt(Math.round(res.peakMemoryBytes)),
        startedAt: timestampFromMs(res.startedAt), finishedAt: timestampFromMs(res.finishedAt),
        permanent: res.type === "failed" && res.permanent === true,
      },
    },
  });
}

/** Device ids from a file: separated by commas, spaces or newlines; `#` starts a comment. */
export function readDevicesFile(path: string): string[] {
  const text = readFileSync(path, "utf8").replace(/#[^\n]*/g, "");
  return [...new Set(text.split(/[\s,]+/).filter(Boolean))];
}
