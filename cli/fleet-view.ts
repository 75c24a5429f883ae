// Human-readable views of the fleet: nodes, node history, clusters, status.
// Pure: returns strings, never prints, never reads the clock (callers pass `now`).
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { Cluster, GetStatusResponse, Node } from "../gen/edgeplane/v1/cluster_pb.js";
import { NodeStateSchema, PrioritySchema, TierSchema } from "../gen/edgeplane/v1/types_pb.js";
import {
  enumLabel,
  formatBytes,
  formatCpu,
  formatDuration,
  formatFreeTotal,
  formatLabels,
  formatPercent,
  formatTimestamp,
  formatTimestampAge,
  NONE,
  renderKeyValues,
  renderTable,
  truncate,
} from "./format.js";

/** `nodes`: ID, CLUSTER, TIER, STATE, CPU free/total, MEM free/total, RUNNING, DEVICES, LAST HEARTBEAT, RTT. */
export function renderNodeTable(nodes: readonly Node[], now: Date): string {
  return renderTable(
    ["ID", "CLUSTER", "TIER", "STATE", "CPU", "MEM", "RUNNING", "DEVICES", "LAST HEARTBEAT", "RTT"],
    nodes.map((n) => [
      n.id,
      n.clusterId,
      enumLabel(TierSchema, n.tier),
      enumLabel(NodeStateSchema, n.state),
      formatFreeTotal(n.freeCpuMillis, n.totalCpuMillis, formatCpu),
      formatFreeTotal(n.freeMemoryBytes, n.totalMemoryBytes, formatBytes),
      n.maxConcurrentTasks > 0 ? `${n.runningTaskIds.length}/${n.maxConcurrentTasks}` : String(n.runningTaskIds.length),
      n.deviceIds.length > 0 ? truncate(n.deviceIds.join(","), 32) : NONE,
      n.lastHeartbeat ? `${formatTimestampAge(n.lastHeartbeat, now)} ago` : NONE,
      formatDuration(n.heartbeatRtt),
    ]),
  );
}

/** `nodes --history`: each node's state transitions, oldest first. */
export function renderNodeHistory(nodes: readonly Node[]): string {
  return nodes
    .map((n) => {
      const lines = n.history.map((h) => {
        const at = h.at ? timestampDate(h.at).toISOString() : NONE;
        return `  ${at}  ${enumLabel(NodeStateSchema, h.state).padEnd(12)}  ${h.reason}`.trimEnd();
      });
      return [`${n.id} (${n.clusterId}):`, ...(lines.length > 0 ? lines : ["  (no transitions recorded)"])].join("\n");
    })
    .join("\n\n");
}

/** `clusters`: ID, TIER, NODES ready/total, HEALTH, CPU, MEMORY, UTIL, LATENCY. */
export function renderClusterTable(clusters: readonly Cluster[]): string {
  return renderTable(
    ["ID", "TIER", "NODES", "HEALTH", "CPU", "MEMORY", "UTIL", "LATENCY"],
    clusters.map((c) => [
      c.id,
      enumLabel(TierSchema, c.tier),
      `${c.readyNodeCount}/${c.nodeCount}`,
      formatPercent(c.health),
      formatFreeTotal(c.freeCpuMillis, c.totalCpuMillis, formatCpu),
      formatFreeTotal(c.freeMemoryBytes, c.totalMemoryBytes, formatBytes),
      formatPercent(c.utilization),
      formatDuration(c.networkLatency),
    ]),
  );
}

/** `cluster register`: the cluster as the coordinator now knows it. */
export function renderCluster(c: Cluster, now: Date): string {
  return renderKeyValues([
    ["cluster", c.id],
    ["tier", enumLabel(TierSchema, c.tier)],
    ["labels", formatLabels(c.labels)],
    ["nodes", `${c.readyNodeCount} ready of ${c.nodeCount}`],
    ["declared", c.declared ? "yes" : "no (created by an agent)"],
    ["created", formatTimestamp(c.createdAt, now)],
  ]);
}

/** `drain`: what happens to the node now. */
export function renderDrained(n: Node): string {
  const running = n.runningTaskIds.length;
  const state = enumLabel(NodeStateSchema, n.state);
  const tail = running > 0 ? `; ${running} running task${running === 1 ? "" : "s"} will finish first` : "";
  return `node ${n.id} (${n.clusterId}) is ${state}: it takes no new work${tail}`;
}

/** `status`: fleet summary, then one row per cluster. */
export function renderStatus(s: GetStatusResponse, coordinator: string, now: Date): string {
  const byState = s.nodesByState.filter((c) => c.count > 0).map((c) => `${c.count} ${enumLabel(NodeStateSchema, c.state)}`);
  const byPriority = s.queuedByPriority.filter((c) => c.count > 0n).map((c) => `${enumLabel(PrioritySchema, c.priority)} ${c.count}`);
  const up = s.startedAt ? `up ${formatTimestampAge(s.startedAt, now)}, since ${timestampDate(s.startedAt).toISOString()}` : "";
  const summary = renderKeyValues([
    ["Coordinator", up ? `${coordinator} (${up})` : coordinator],
    ["Clusters", String(s.clusters)],
    ["Nodes", byState.length > 0 ? `${s.nodes} (${byState.join(", ")})` : String(s.nodes)],
    ["Active tasks", String(s.activeTasks)],
    ["Queued tasks", byPriority.length > 0 ? `${s.queuedTasks} (${byPriority.join(", ")})` : String(s.queuedTasks)],
    ["Processed", `${s.totalProcessed} (${s.succeeded} succeeded, ${s.failed} failed, ${s.cancelled} cancelled, ${s.expired} expired)`],
    ["Avg processing", formatDuration(s.averageProcessingTime)],
    ["Peak task memory", s.peakTaskMemoryBytes > 0n ? formatBytes(s.peakTaskMemoryBytes) : NONE],
    ["Utilization", formatPercent(s.clusterUtilization)],
  ]);
  if (s.clusterHealth.length === 0) return `${summary}\n\nNo clusters yet: start an agent with \`edgeplane agent --cluster ID\`.`;
  const health = renderTable(
    ["CLUSTER", "TIER", "HEALTH", "UTIL", "ACCEPTING WORK"],
    s.clusterHealth.map((h) => [
      h.clusterId,
      enumLabel(TierSchema, h.tier),
      formatPercent(h.health),
      formatPercent(h.utilization),
      h.acceptingWork ? "yes" : "no",
    ]),
  );
  return `${summary}\n\n${health}`;
}
