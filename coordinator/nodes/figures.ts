// Figures about clusters and the fleet, all computed from what nodes measured and reported (never declared
// numbers): capacity, utilization, health, latency. Pure reads of the registry and task counters.
import type { TaskCounters } from "../tasks/task-manager.js";
import { PRIORITIES, type Priority } from "../tasks/types.js";
import type { ClusterRecord, NodeRegistry, NodeState } from "./registry.js";

export interface ClusterFigures {
  totalCpu: number;
  freeCpu: number;
  totalMem: number;
  freeMem: number;
  nodes: number;
  ready: number;
  health: number;
  utilization: number;
  latencyMs: number;
}

/** A cluster's figures, all from its nodes' heartbeats: never declared numbers. */
export function clusterFigures(c: ClusterRecord, reg: NodeRegistry): ClusterFigures {
  const nodes = reg.nodesOf(c.id);
  const ready = nodes.filter((n) => n.state === "ready" || n.state === "draining");
  let totalCpu = 0,
    freeCpu = 0,
    totalMem = 0,
    freeMem = 0,
    rtt = 0;
  for (const n of ready) {
    const f = reg.free(n);
    totalCpu += n.totalCpuMillis;
    freeCpu += f.cpuMillis;
    totalMem += n.totalMemoryBytes;
    freeMem += f.memoryBytes;
    rtt += n.rttMs;
  }
  const slots = ready.reduce((a, n) => a + n.maxConcurrent, 0);
  const used = ready.reduce((a, n) => a + n.reservations.size, 0);
  // Utilization: the larger of slot use and measured cpu use, so a cluster busy with other work shows it.
  const utilization = ready.length === 0 ? 0 : Math.max(slots ? used / slots : 0, totalCpu ? 1 - freeCpu / totalCpu : 0);
  return {
    totalCpu,
    freeCpu,
    totalMem,
    freeMem,
    nodes: nodes.length,
    ready: ready.length,
    health: reg.health(c.id),
    utilization: Math.min(1, Math.max(0, utilization)),
    latencyMs: ready.length ? rtt / ready.length : 0,
  };
}

export const NODE_STATES: readonly NodeState[] = ["ready", "disconnected", "down", "draining", "drained"];

export interface FleetStatus {
  clusters: number;
  nodes: number;
  nodesByState: { state: NodeState; count: number }[];
  activeTasks: number;
  queuedTasks: number;
  queuedByPriority: { priority: Priority; count: number }[];
  counters: TaskCounters;
  meanProcessingMs: number;
  /** Share of the fleet's capacity in use: the larger of slot use and measured cpu use. */
  utilization: number;
  clusterHealth: { cluster: ClusterRecord; figures: ClusterFigures; acceptingWork: boolean }[];
}

export function fleetStatus(reg: NodeRegistry, c: TaskCounters, healthThreshold: number): FleetStatus {
  const nodes = reg.listNodes();
  let totalCpu = 0,
    freeCpu = 0,
    slots = 0,
    used = 0;
  for (const n of nodes) {
    if (n.state !== "ready" && n.state !== "draining") continue;
    totalCpu += n.totalCpuMillis;
    freeCpu += reg.free(n).cpuMillis;
    slots += n.maxConcurrent;
    used += n.reservations.size;
  }
  const clusters = reg.listClusters().sort((a, b) => a.id.localeCompare(b.id));
  return {
    clusters: clusters.length,
    nodes: nodes.length,
    nodesByState: NODE_STATES.map((state) => ({ state, count: nodes.filter((n) => n.state === state).length })),
    activeTasks: c.byState.dispatched + c.byState.running,
    queuedTasks: c.byState.queued,
    queuedByPriority: PRIORITIES.map((priority, i) => ({ priority, count: c.queuedByPriority[i] })),
    counters: c,
    meanProcessingMs: c.processingSamples ? c.processingMsTotal / c.processingSamples : 0,
    utilization: Math.min(1, Math.max(slots ? used / slots : 0, totalCpu ? 1 - freeCpu / totalCpu : 0)),
    clusterHealth: clusters.map((cluster) => {
      const figures = clusterFigures(cluster, reg);
      return { cluster, figures, acceptingWork: figures.health >= healthThreshold && figures.ready > 0 };
    }),
  };
}
