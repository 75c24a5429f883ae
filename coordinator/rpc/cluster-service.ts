// ClusterService over gRPC: the registry's view, and fleet status computed from measured figures. Transport only.
import { durationFromMillis } from "../../lib/duration.js";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  ClusterService, RegisterClusterResponseSchema, ListClustersResponseSchema, ListNodesResponseSchema,
  DrainNodeResponseSchema, GetStatusResponseSchema,
} from "../../gen/edgeplane/v1/cluster_pb.js";
import type { CoordinatorConfig } from "../config.js";
import type { Dispatcher } from "../dispatch/dispatcher.js";
import { InvalidArgumentError } from "../errors.js";
import type { NodeRegistry, NodeState } from "../nodes/registry.js";
import { inScope, requireCluster, requireDrain, unscoped } from "../security/access.js";
import type { TaskManager } from "../tasks/task-manager.js";
import { PRIORITIES } from "../tasks/types.js";
import { clusterFigures, clusterToPb, nodeStateToPb, nodeToPb, priorityToPb, tierFromPb, tierToPb } from "./convert.js";
import type { ServiceImpl } from "./grpc-adapter.js";

export interface ClusterServiceDeps {
  registry: NodeRegistry;
  dispatcher: Dispatcher;
  tasks: TaskManager;
  config: CoordinatorConfig;
  startedAt: number;
}

const NODE_STATES: NodeState[] = ["ready", "disconnected", "down", "draining", "drained"];

export function clusterServiceImpl(d: ClusterServiceDeps): ServiceImpl<typeof ClusterService.method> {
  return {
    async registerCluster(req, call) {
      requireCluster(call.principal, req.clusterId, "cluster_id");
      const c = d.registry.registerCluster(req.clusterId, tierFromPb(req.tier, "tier", "edge"), { ...req.labels });
      return create(RegisterClusterResponseSchema, { cluster: clusterToPb(c, d.registry) });
    },

    async listClusters(_req, call) {
      let clusters = d.registry.listClusters().sort((a, b) => a.id.localeCompare(b.id));
      if (!unscoped(call.principal)) clusters = clusters.filter((c) => inScope(call.principal, c.id));
      return create(ListClustersResponseSchema, { clusters: clusters.map((c) => clusterToPb(c, d.registry)) });
    },

    async listNodes(req, call) {
      let nodes = d.registry.listNodes();
      if (!unscoped(call.principal)) nodes = nodes.filter((n) => inScope(call.principal, n.clusterId));
      if (req.clusterId) nodes = nodes.filter((n) => n.clusterId === req.clusterId);
      if (req.deviceId) nodes = nodes.filter((n) => n.deviceIds.has(req.deviceId));
      nodes.sort((a, b) => a.clusterId.localeCompare(b.clusterId) || a.id.localeCompare(b.id));
      return create(ListNodesResponseSchema, { nodes: nodes.map((n) => nodeToPb(n, d.registry)) });
    },

    async drainNode(req, call) {
      if (!req.nodeId) throw new InvalidArgumentError("node_id is required");
      requireDrain(call.principal, req.nodeId, d.registry.findNode(req.nodeId)?.clusterId);
      const node = d.dispatcher.drain(req.nodeId, d.config.drainGraceMs);
      return create(DrainNodeResponseSchema, { node: nodeToPb(node, d.registry) });
    },

    async getStatus() {
      const nodes = d.registry.listNodes();
      const clusters = d.registry.listClusters();
      const c = d.tasks.counters;
      let totalCpu = 0, freeCpu = 0, slots = 0, used = 0;
      for (const n of nodes) {
        if (n.state !== "ready" && n.state !== "draining") continue;
        totalCpu += n.totalCpuMillis;
        freeCpu += d.registry.free(n).cpuMillis;
        slots += n.maxConcurrent;
        used += n.reservations.size;
      }
      const utilization = Math.min(1, Math.max(slots ? used / slots : 0, totalCpu ? 1 - freeCpu / totalCpu : 0));
      return create(GetStatusResponseSchema, {
        clusters: clusters.length,
        nodes: nodes.length,
        nodesByState: NODE_STATES.map((s) => ({ state: nodeStateToPb(s), count: nodes.filter((n) => n.state === s).length })),
        activeTasks: BigInt(c.byState.dispatched + c.byState.running),
        queuedTasks: BigInt(c.byState.queued),
        queuedByPriority: PRIORITIES.map((p, i) => ({ priority: priorityToPb(p), count: BigInt(c.queuedByPriority[i]) })),
        totalProcessed: BigInt(c.processedSinceStart),
        succeeded: BigInt(c.succeeded),
        failed: BigInt(c.failed),
        cancelled: BigInt(c.cancelled),
        expired: BigInt(c.expired),
        averageProcessingTime: durationFromMillis(c.processingSamples ? c.processingMsTotal / c.processingSamples : 0),
        peakTaskMemoryBytes: BigInt(c.peakMemoryBytes),
        clusterUtilization: utilization,
        clusterHealth: clusters.sort((a, b) => a.id.localeCompare(b.id)).map((cl) => {
          const f = clusterFigures(cl, d.registry);
          return { clusterId: cl.id, tier: tierToPb(cl.tier), health: f.health, utilization: f.utilization, acceptingWork: f.health >= d.config.healthThreshold && f.ready > 0 };
        }),
        startedAt: timestampFromMs(d.startedAt),
        preemptions: BigInt(c.preemptions),
      });
    },
  };
}
