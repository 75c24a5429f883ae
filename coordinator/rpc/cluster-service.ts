// ClusterService over gRPC: decodes requests, reads the registry / fleet figures (nodes/figures.ts) or drains through
// the dispatcher, encodes the answer. Transport only.
import { durationFromMillis } from "../../lib/duration.js";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  ClusterService,
  RegisterClusterResponseSchema,
  ListClustersResponseSchema,
  ListNodesResponseSchema,
  DrainNodeResponseSchema,
  GetStatusResponseSchema,
} from "../../gen/edgeplane/v1/cluster_pb.js";
import type { CoordinatorConfig } from "../config.js";
import type { Dispatcher } from "../dispatch/dispatcher.js";
import { InvalidArgumentError } from "../errors.js";
import { fleetStatus } from "../nodes/figures.js";
import type { NodeRegistry } from "../nodes/registry.js";
import { inScope, requireCluster, requireDrain, unscoped } from "../security/access.js";
import type { TaskManager } from "../tasks/task-manager.js";
import { clusterToPb, nodeStateToPb, nodeToPb, priorityToPb, tierFromPb, tierToPb } from "./convert.js";
import type { ServiceImpl } from "./grpc-adapter.js";

export interface ClusterServiceDeps {
  registry: NodeRegistry;
  dispatcher: Dispatcher;
  tasks: TaskManager;
  config: CoordinatorConfig;
  startedAt: number;
}

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
      const f = fleetStatus(d.registry, d.tasks.counters, d.config.healthThreshold);
      const c = f.counters;
      return create(GetStatusResponseSchema, {
        clusters: f.clusters,
        nodes: f.nodes,
        nodesByState: f.nodesByState.map((x) => ({ state: nodeStateToPb(x.state), count: x.count })),
        activeTasks: BigInt(f.activeTasks),
        queuedTasks: BigInt(f.queuedTasks),
        queuedByPriority: f.queuedByPriority.map((x) => ({ priority: priorityToPb(x.priority), count: BigInt(x.count) })),
        totalProcessed: BigInt(c.processedSinceStart),
        succeeded: BigInt(c.succeeded),
        failed: BigInt(c.failed),
        cancelled: BigInt(c.cancelled),
        expired: BigInt(c.expired),
        averageProcessingTime: durationFromMillis(f.meanProcessingMs),
        peakTaskMemoryBytes: BigInt(c.peakMemoryBytes),
        clusterUtilization: f.utilization,
        clusterHealth: f.clusterHealth.map(({ cluster, figures, acceptingWork }) => ({
          clusterId: cluster.id,
          tier: tierToPb(cluster.tier),
          health: figures.health,
          utilization: figures.utilization,
          acceptingWork,
        })),
        startedAt: timestampFromMs(d.startedAt),
        preemptions: BigInt(c.preemptions),
      });
    },
  };
}
