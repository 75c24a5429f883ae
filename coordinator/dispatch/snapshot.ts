// The fleet as a placement pass sees it: schedulable nodes (ready, with an open stream) with their free capacity,
// what runs on them (for preemption) and when their estimated work should end (for CLOUD_FALLBACK waits), plus
// cluster health. Built from the registry's in-memory state only: no store reads, no clock of its own.
import type { NodeRecord, NodeRegistry } from "../nodes/registry.js";
import type { ClusterView, ExpectedRelease, NodeView, Snapshot } from "../scheduler/place.js";
import type { RunningAttempt } from "../scheduler/preempt.js";

/** How long past its estimate an attempt is still expected any moment: a quarter of the estimate, at least 200 ms. */
export const estimateGraceMs = (estimatedMs: number): number => Math.max(200, estimatedMs / 4);

export function clusterViews(nodes: NodeRegistry): ClusterView[] {
  return nodes.listClusters().map((c) => ({ id: c.id, tier: c.tier, health: nodes.health(c.id) }));
}

/**
 * `ahead`: attempts a node may hold beyond its slots, waiting on the agent for a slot (dispatch-ahead), so a slot
 * that frees starts its next task without waiting for the coordinator's round trip and commit.
 */
export function nodeView(nodes: NodeRegistry, n: NodeRecord, now: number, ahead = 0): NodeView {
  const free = nodes.free(n);
  const running: RunningAttempt[] = [];
  let releases: ExpectedRelease[] | undefined;
  for (const r of n.reservations.values()) {
    running.push({ taskId: r.taskId, rank: r.rank, cpuMillis: r.cpuMillis, memoryBytes: r.memoryBytes, dispatchedAt: r.dispatchedAt });
    if (r.estimatedMs > 0) {
      // Estimates are rough: one that has run past its estimate is still expected for a grace, then no longer.
      const end = (r.startedAt ?? r.dispatchedAt) + r.estimatedMs;
      const until = end + estimateGraceMs(r.estimatedMs);
      if (until >= now) (releases ??= []).push({ at: Math.max(end, now), until, cpuMillis: r.cpuMillis, memoryBytes: r.memoryBytes });
    }
  }
  return {
    id: n.id,
    clusterId: n.clusterId,
    tier: n.tier,
    handlers: n.handlers,
    deviceIds: n.deviceIds,
    freeCpuMillis: free.cpuMillis,
    freeMemoryBytes: free.memoryBytes,
    totalCpuMillis: n.totalCpuMillis,
    totalMemoryBytes: n.totalMemoryBytes,
    inFlight: n.reservations.size,
    maxConcurrent: n.maxConcurrent,
    ahead,
    running,
    expectedReleases: releases,
  };
}

/** Ready nodes whose agent has a stream open (`connected`), and every cluster. */
export function fleetSnapshot(
  nodes: NodeRegistry,
  connected: (nodeId: string) => boolean,
  now: number,
  ahead: number | ((n: NodeRecord) => number) = 0,
): Snapshot {
  const views: NodeView[] = [];
  for (const n of nodes.listNodes())
    if (n.state === "ready" && connected(n.id)) views.push(nodeView(nodes, n, now, typeof ahead === "number" ? ahead : ahead(n)));
  return {
    now,
    nodes: views,
    clusters: clusterViews(nodes),
    deviceClusters: { get: (deviceId) => nodes.nodeForDevice(deviceId)?.clusterId },
  };
}
