// Wires the coordinator: store → task manager → dispatcher ← registry, served over gRPC with health and reflection.
// Every decision lives in the modules it wires; this only builds them (with the system clock) and starts and stops them.
import * as grpc from "@grpc/grpc-js";
import { AgentService } from "../gen/edgeplane/v1/agent_pb.js";
import { EnrolmentService, NodeIdentityService, TokenService } from "../gen/edgeplane/v1/auth_pb.js";
import { ClusterService } from "../gen/edgeplane/v1/cluster_pb.js";
import { TaskService } from "../gen/edgeplane/v1/task_pb.js";
import { builtinHandlerNames } from "../lib/analytics/registry.js";
import { systemClock, systemTimers } from "../lib/clock.js";
import { createLogger, type Logger } from "../lib/log.js";
import { resolveCoordinatorConfig, type CoordinatorConfig } from "./config.js";
import { Dispatcher } from "./dispatch/dispatcher.js";
import { NodeRegistry } from "./nodes/registry.js";
import { Admission } from "./rpc/admission.js";
import { agentServiceImpl } from "./rpc/agent-service.js";
import { enrolmentServiceImpl, nodeIdentityServiceImpl, tokenServiceImpl } from "./rpc/auth-service.js";
import { serveHealthOnly, type HealthListener } from "./rpc/health-listener.js";
import { openSecurity, type Security } from "./security/security.js";
import { clusterServiceImpl } from "./rpc/cluster-service.js";
import { grpcServiceDefinition, grpcServiceImpl } from "./rpc/grpc-adapter.js";
import { addHealth, addReflection } from "./rpc/reflection.js";
import { taskServiceImpl } from "./rpc/task-service.js";
import { MemoryTaskStore } from "./store/memory-store.js";
import { SqliteTaskStore } from "./store/sqlite-store.js";
import type { TaskStore } from "./store/store.js";
import { TaskManager } from "./tasks/task-manager.js";
import { TaskSubmissions } from "./usecases/submit.js";

export interface CoordinatorHandle {
  /** HOST:PORT actually bound (port 0 resolved). */
  address: string;
  /** HOST:PORT of the plaintext health listener (--health-listen), when there is one. */
  healthAddress?: string;
  config: CoordinatorConfig;
  /** CA, tokens and node identities (absent parts with --insecure). */
  security: Security;
  close(): Promise<void>;
}

export async function startCoordinator(partial: Partial<CoordinatorConfig>, logger?: Logger): Promise<CoordinatorHandle> {
  const config = resolveCoordinatorConfig(partial);
  const log = logger ?? createLogger("coordinator", config.logLevel);
  const clock = systemClock;
  const timers = systemTimers;
  const startedAt = clock.wall();
  // Security (coordinator/security/) first, so the data directory is 0700 before anything is written to it.
  const security = await openSecurity(config, log.child({ component: "security" }), clock.wall);

  // A corrupt or unreadable database throws here and stops start-up; it is never replaced by an empty one.
  const sqlite = config.store === "sqlite" ? SqliteTaskStore.open(config.dataDir, { logger: log.child({ component: "store" }) }) : undefined;
  const store: TaskStore = sqlite ?? new MemoryTaskStore();
  security.restrictDataFiles();
  const tasks = new TaskManager(store, { now: clock.wall, retryBaseMs: config.retryBaseMs, retryMaxMs: config.retryMaxMs, timers });
  const registry = new NodeRegistry(clock, (c) => sqlite?.saveCluster(c), config.downNodeMemoryMs);
  for (const c of sqlite?.loadClusters() ?? []) registry.restoreCluster(c);
  const restored = store.active();
  if (sqlite) {
    log.info(
      { path: sqlite.path, active: restored.length, queued: restored.filter((t) => t.state === "queued").length, clusters: registry.listClusters().length },
      "restored state from the store",
    );
  }
  const dispatcher = new Dispatcher({
    tasks,
    nodes: registry,
    clock,
    timers,
    log: log.child({ component: "dispatcher" }),
    durable: () => store.flush(),
    options: {
      healthThreshold: config.healthThreshold,
      dispatchAckTimeoutMs: config.dispatchAckTimeoutMs,
      disconnectWindowMs: config.disconnectWindowMs,
      heartbeatTimeoutMs: config.heartbeatIntervalMs * config.heartbeatMissLimit,
      dispatchAhead: config.dispatchAhead,
      dispatchAheadMs: config.dispatchAheadMs,
      sweepIntervalMs: Math.min(config.heartbeatIntervalMs, Math.max(50, config.disconnectWindowMs || 50)),
      split: { maxShards: config.maxShards, pointsPerCoreMs: config.splitPointsPerCoreMs, shardOverheadMs: config.splitShardOverheadMs },
    },
  });
  dispatcher.restore(restored);
  // Quotas count each token's active tasks from here on.
  for (const t of restored) security.observe(t);
  tasks.onChange(security.observe);

  const shutdown = new AbortController();
  const server = new grpc.Server({
    // Inputs up to the configured limit must reach validation, which answers with a message that says what to fix.
    "grpc.max_receive_message_length": config.maxInputBytes + 4 * 1024 * 1024,
    "grpc.max_send_message_length": -1,
  });
  // One limit shared by every service: calls in flight per client connection.
  const calls = new Admission(config.maxCallsPerConnection);
  const submissions = new TaskSubmissions({ tasks, dispatcher, registry, config, builtinHandlers: builtinHandlerNames, now: clock.wall });
  server.addService(
    grpcServiceDefinition(TaskService),
    grpcServiceImpl(
      TaskService,
      taskServiceImpl({
        tasks,
        dispatcher,
        submissions,
        maxInputBytes: config.maxInputBytes,
        quotas: security.quotas,
      }),
      log,
      shutdown.signal,
      security.guard,
      calls,
    ),
  );
  server.addService(
    grpcServiceDefinition(ClusterService),
    grpcServiceImpl(
      ClusterService,
      clusterServiceImpl({
        registry,
        dispatcher,
        tasks,
        config,
        startedAt,
      }),
      log,
      shutdown.signal,
      security.guard,
      calls,
    ),
  );
  server.addService(
    grpcServiceDefinition(AgentService),
    grpcServiceImpl(
      AgentService,
      agentServiceImpl({
        registry,
        dispatcher,
        timers,
        heartbeatIntervalMs: config.heartbeatIntervalMs,
        log: log.child({ component: "agents" }),
        identity: security.identities,
      }),
      log,
      shutdown.signal,
      security.guard,
      calls,
    ),
  );
  if (security.ca && security.tokens && security.identities) {
    const auth = { ca: security.ca, tokens: security.tokens, identities: security.identities };
    server.addService(
      grpcServiceDefinition(EnrolmentService),
      grpcServiceImpl(EnrolmentService, enrolmentServiceImpl(auth), log, shutdown.signal, security.guard, calls),
    );
    server.addService(grpcServiceDefinition(TokenService), grpcServiceImpl(TokenService, tokenServiceImpl(auth), log, shutdown.signal, security.guard, calls));
    server.addService(
      grpcServiceDefinition(NodeIdentityService),
      grpcServiceImpl(NodeIdentityService, nodeIdentityServiceImpl(auth), log, shutdown.signal, security.guard, calls),
    );
  }
  const health = addHealth(server);
  if (config.reflection) addReflection(server);

  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(config.listen, security.serverCredentials, (err, p) =>
      err ? reject(new Error(`cannot listen on ${config.listen}: ${err.message}`)) : resolve(p),
    );
  });
  // Probes only: plaintext, grpc.health.v1 and nothing else.
  const healthListener: HealthListener | undefined = config.healthListen ? await serveHealthOnly(config.healthListen, health) : undefined;
  if (healthListener) log.info({ address: healthListener.address }, "plaintext health listener (grpc.health.v1 only)");
  const host = config.listen.slice(0, config.listen.lastIndexOf(":"));
  const address = `${host}:${port}`;

  // Liveness: a node silent for heartbeatMissLimit intervals is disconnected; after the window, down.
  dispatcher.start();

  log.info(
    { address, tls: !config.insecure, heartbeatIntervalMs: config.heartbeatIntervalMs, disconnectWindowMs: config.disconnectWindowMs },
    "coordinator listening",
  );

  let closing: Promise<void> | undefined;
  return {
    address,
    healthAddress: healthListener?.address,
    config,
    security,
    close() {
      closing ??= (async () => {
        log.info("coordinator shutting down");
        for (const s of ["", "edgeplane.v1.TaskService", "edgeplane.v1.ClusterService", "edgeplane.v1.AgentService"]) health.setStatus(s, "NOT_SERVING");
        shutdown.abort();
        dispatcher.close();
        await new Promise<void>((resolve) => {
          const force = setTimeout(() => {
            server.forceShutdown();
            resolve();
          }, 2000);
          server.tryShutdown(() => {
            clearTimeout(force);
            resolve();
          });
        });
        await healthListener?.close();
        try {
          await store.close();
        } catch (err) {
          log.error({ err }, "the last writes could not be committed at shutdown");
        }
        await security.close();
        log.info("coordinator stopped");
        log.flush?.();
      })();
      return closing;
    },
  };
}
