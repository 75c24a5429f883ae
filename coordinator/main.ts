// Wires the coordinator: store → task manager → dispatcher ← registry, served over gRPC with health and reflection.
// Owns the process-level timers (heartbeat sweep, disconnect window); every decision lives in the modules it wires.
import * as grpc from "@grpc/grpc-js";
import { performance } from "node:perf_hooks";
import { AgentService } from "../gen/edgeplane/v1/agent_pb.js";
import { ClusterService } from "../gen/edgeplane/v1/cluster_pb.js";
import { TaskService } from "../gen/edgeplane/v1/task_pb.js";
import { createLogger, type Logger } from "../lib/log.js";
import { BUILTIN_HANDLER_NAMES } from "./tasks/builtin-handlers.js";
import { resolveCoordinatorConfig, type CoordinatorConfig } from "./config.js";
import { Dispatcher } from "./dispatch/dispatcher.js";
import { NodeRegistry, type Clock } from "./nodes/registry.js";
import { agentServiceImpl } from "./rpc/agent-service.js";
import { clusterServiceImpl } from "./rpc/cluster-service.js";
import { grpcServiceDefinition, grpcServiceImpl } from "./rpc/grpc-adapter.js";
import { addHealth, addReflection } from "./rpc/reflection.js";
import { taskServiceImpl } from "./rpc/task-service.js";
import { MemoryTaskStore } from "./store/memory-store.js";
import { SqliteTaskStore } from "./store/sqlite-store.js";
import type { TaskStore } from "./store/store.js";
import { TaskManager } from "./tasks/task-manager.js";

export interface CoordinatorHandle {
  /** HOST:PORT actually bound (port 0 resolved). */
  address: string;
  config: CoordinatorConfig;
  close(): Promise<void>;
}

const systemClock: Clock = { mono: () => performance.now(), wall: () => Date.now() };

export async function startCoordinator(partial: Partial<CoordinatorConfig>, logger?: Logger): Promise<CoordinatorHandle> {
  const config = resolveCoordinatorConfig(partial);
  const log = logger ?? createLogger("coordinator", config.logLevel);
  const clock = systemClock;
  const startedAt = clock.wall();

  // A corrupt or unreadable database throws here and stops start-up; it is never replaced by an empty one.
  const sqlite = config.store === "sqlite" ? SqliteTaskStore.open(config.dataDir, { logger: log.child({ component: "store" }) }) : undefined;
  const store: TaskStore = sqlite ?? new MemoryTaskStore();
  const tasks = new TaskManager(store, { now: clock.wall, retryBaseMs: config.retryBaseMs, retryMaxMs: config.retryMaxMs });
  const registry = new NodeRegistry(clock, (c) => sqlite?.saveCluster(c), config.downNodeMemoryMs);
  for (const c of sqlite?.loadClusters() ?? []) registry.restoreCluster(c);
  const restored = store.active();
  if (sqlite) {
    log.info({ path: sqlite.path, active: restored.length, queued: restored.filter((t) => t.state === "queued").length, clusters: registry.listClusters().length }, "restored state from the store");
  }
  const dispatcher = new Dispatcher(tasks, registry, clock, {
    healthThreshold: config.healthThreshold,
    dispatchAckTimeoutMs: config.dispatchAckTimeoutMs,
    disconnectWindowMs: config.disconnectWindowMs,
    split: { maxShards: config.maxShards, pointsPerCoreMs: config.splitPointsPerCoreMs, shardOverheadMs: config.splitShardOverheadMs },
  }, log.child({ component: "dispatcher" }), () => store.flush());
  dispatcher.restore(restored);

  const shutdown = new AbortController();
  const server = new grpc.Server({
    // Inputs up to the configured limit must reach validation, which answers with a message that says what to fix.
    "grpc.max_receive_message_length": config.maxInputBytes + 4 * 1024 * 1024,
    "grpc.max_send_message_length": -1,
  });
  server.addService(grpcServiceDefinition(TaskService), grpcServiceImpl(TaskService, taskServiceImpl({
    tasks, dispatcher, registry, config, builtinHandlers: BUILTIN_HANDLER_NAMES, now: clock.wall,
  }), log, shutdown.signal));
  server.addService(grpcServiceDefinition(ClusterService), grpcServiceImpl(ClusterService, clusterServiceImpl({
    registry, dispatcher, tasks, config, startedAt,
  }), log, shutdown.signal));
  server.addService(grpcServiceDefinition(AgentService), grpcServiceImpl(AgentService, agentServiceImpl({
    registry, dispatcher, config, log: log.child({ component: "agents" }),
  }), log, shutdown.signal));
  const health = addHealth(server);
  addReflection(server);

  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(config.listen, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(new Error(`cannot listen on ${config.listen}: ${err.message}`)) : resolve(p)));
  });
  const host = config.listen.slice(0, config.listen.lastIndexOf(":"));
  const address = `${host}:${port}`;

  // Liveness: a node silent for heartbeatMissLimit intervals is disconnected; after the window, down.
  const sweep = setInterval(() => {
    for (const n of registry.sweep(config.heartbeatIntervalMs * config.heartbeatMissLimit)) {
      log.warn({ node: n.id }, "node missed heartbeats; disconnected");
      if (config.disconnectWindowMs === 0) dispatcher.nodeLost(n, `node ${n.id} missed heartbeats`);
    }
    dispatcher.checkDisconnected();
    for (const n of registry.expireDisconnected(config.disconnectWindowMs)) {
      log.warn({ node: n.id, windowMs: config.disconnectWindowMs }, "node down; moving its tasks");
      dispatcher.nodeLost(n, `node ${n.id} down: disconnected for more than ${config.disconnectWindowMs} ms`);
    }
  }, Math.min(config.heartbeatIntervalMs, Math.max(50, config.disconnectWindowMs || 50)));
  sweep.unref();

  log.info({ address, heartbeatIntervalMs: config.heartbeatIntervalMs, disconnectWindowMs: config.disconnectWindowMs }, "coordinator listening");

  let closing: Promise<void> | undefined;
  return {
    address,
    config,
    close() {
      closing ??= (async () => {
        log.info("coordinator shutting down");
        for (const s of ["", "edgeplane.v1.TaskService", "edgeplane.v1.ClusterService", "edgeplane.v1.AgentService"]) health.setStatus(s, "NOT_SERVING");
        clearInterval(sweep);
        shutdown.abort();
        dispatcher.close();
        await new Promise<void>((resolve) => {
          const force = setTimeout(() => { server.forceShutdown(); resolve(); }, 2000);
          server.tryShutdown(() => { clearTimeout(force); resolve(); });
        });
        try {
          await store.close();
        } catch (err) {
          log.error({ err }, "the last writes could not be committed at shutdown");
        }
        log.info("coordinator stopped");
        log.flush?.();
      })();
      return closing;
    },
  };
}
