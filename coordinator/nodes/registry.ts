// The cluster and node registry, fed by agent streams. Time comes from an injected clock (monotonic for liveness,
// wall for display); it never sets timers itself: main.ts calls sweep() and the disconnect-window check.
import type { Clock } from "../../lib/clock.js";
import { AlreadyExistsError, InvalidArgumentError, NotFoundError } from "../errors.js";
import type { Tier } from "../tasks/types.js";

/** Node lifecycle: ready ⇄ disconnected → down; ready → draining → drained; any → ready on re-register. */
export type NodeState = "ready" | "disconnected" | "down" | "draining" | "drained";

export interface NodeTransition {
  state: NodeState;
  at: number;
  reason: string;
}

export interface Reservation {
  taskId: string;
  attempt: number;
  cpuMillis: number;
  memoryBytes: number;
  /** True once a heartbeat listed the task: its usage is then inside the node's measured figures. */
  measured: boolean;
  /** Priority rank of the task (0 = critical): preemption picks victims by it. */
  rank: number;
  /** Epoch ms of the dispatch, and of the start once the agent accepted (for expected ends). */
  dispatchedAt: number;
  startedAt?: number;
  /** The task's estimatedComputeTime in ms (0 = none given). */
  estimatedMs: number;
}

export interface NodeRecord {
  id: string;
  clusterId: string;
  tier: Tier;
  labels: Record<string, string>;
  deviceIds: Set<string>;
  handlers: Set<string>;
  /** Handlers it can run as shards of a DISTRIBUTED / HYBRID task (absent: none announced). */
  distributable?: ReadonlySet<string>;
  totalCpuMillis: number;
  totalMemoryBytes: number;
  maxConcurrent: number;
  state: NodeState;
  history: NodeTransition[];
  sessionId: string;
  address: string;
  /** Monotonic ms of the last message from the node. */
  lastSeenMono: number;
  /** Wall-clock ms of the last heartbeat. */
  lastHeartbeatAt: number;
  reportedFreeCpuMillis: number;
  reportedFreeMemoryBytes: number;
  load: number;
  rttMs: number;
  reservations: Map<string, Reservation>;
  disconnectedAtMono: number;
}

export interface ClusterRecord {
  id: string;
  tier: Tier;
  labels: Record<string, string>;
  declared: boolean;
  createdAt: number;
}

export interface RegisterInfo {
  nodeId: string;
  clusterId: string;
  tier: Tier;
  labels: Record<string, string>;
  deviceIds: string[];
  handlers: string[];
  /** Handlers it can run as shards (Register.distributable_handlers). */
  distributable?: string[];
  totalCpuMillis: number;
  totalMemoryBytes: number;
  freeCpuMillis: number;
  freeMemoryBytes: number;
  maxConcurrent: number;
  sessionId: string;
  address: string;
}

export interface HeartbeatInfo {
  freeCpuMillis: number;
  freeMemoryBytes: number;
  load: number;
  /** reservationKey(taskId, attempt) of every attempt the agent runs. */
  runningTaskIds: ReadonlySet<string>;
  rttMs: number | undefined;
  deviceIds: string[] | undefined;
}

const HISTORY_LIMIT = 50;

/** Reservations are per attempt: a task retried on the same node holds a new one. */
export const reservationKey = (taskId: string, attempt: number): string => `${taskId}#${attempt}`;
const ID_PATTERN = /^[A-Za-z0-9._:@/-]{1,128}$/;

export class NodeRegistry {
  private readonly nodes = new Map<string, NodeRecord>();
  private readonly clusters = new Map<string, ClusterRecord>();
  private readonly devices = new Map<string, string>();

  /** @param onCluster called whenever a cluster is created or declared, so it can be persisted. */
  constructor(
    private readonly clock: Clock,
    private readonly onCluster: (c: ClusterRecord) => void = () => {},
    private readonly downNodeMemoryMs = 10 * 60_000,
  ) {}

  /** Loads a cluster saved before a restart. */
  restoreCluster(c: ClusterRecord): void {
    this.clusters.set(c.id, c);
  }

  /**
   * After a coordinator restart: an attempt that was dispatched or running stays with its node, which counts as
   * disconnected from now until its agent reconnects (or the disconnect window moves the attempt).
   */
  restoreAssignment(nodeId: string, clusterId: string, r: Omit<Reservation, "measured">): void {
    let n = this.nodes.get(nodeId);
    if (!n) {
      const tier = this.clusters.get(clusterId)?.tier ?? "edge";
      n = {
        id: nodeId,
        clusterId,
        tier,
        labels: {},
        deviceIds: new Set(),
        handlers: new Set(),
        totalCpuMillis: 0,
        totalMemoryBytes: 0,
        maxConcurrent: 1,
        state: "disconnected",
        history: [],
        sessionId: "",
        address: "",
        lastSeenMono: this.clock.mono(),
        lastHeartbeatAt: 0,
        reportedFreeCpuMillis: 0,
        reportedFreeMemoryBytes: 0,
        load: 0,
        rttMs: 0,
        reservations: new Map(),
        disconnectedAtMono: this.clock.mono(),
      };
      n.history.push({ state: "disconnected", at: this.clock.wall(), reason: "coordinator restarted; waiting for the agent to reconnect" });
      this.nodes.set(nodeId, n);
    }
    n.reservations.set(reservationKey(r.taskId, r.attempt), { ...r, measured: false });
  }

  registerCluster(id: string, tier: Tier, labels: Record<string, string>): ClusterRecord {
    if (!id) throw new InvalidArgumentError("cluster_id is required: give the cluster a name such as site-a");
    if (!ID_PATTERN.test(id)) throw new InvalidArgumentError(`cluster_id "${id}" is not valid: use 1-128 of A-Z a-z 0-9 . _ : @ / -`);
    const existing = this.clusters.get(id);
    if (existing?.declared) throw new AlreadyExistsError(`cluster ${id} is already registered`);
    const c: ClusterRecord = existing ? { ...existing, tier, labels, declared: true } : { id, tier, labels, declared: true, createdAt: this.clock.wall() };
    this.clusters.set(id, c);
    this.onCluster(c);
    return c;
  }

  /** Registers (or re-registers) a node after its stream sends Register. */
  registerNode(info: RegisterInfo): NodeRecord {
    if (!info.nodeId || !ID_PATTERN.test(info.nodeId))
      throw new InvalidArgumentError(`register.node_id "${info.nodeId}" is not valid: use 1-128 of A-Z a-z 0-9 . _ : @ / -`);
    if (!info.clusterId || !ID_PATTERN.test(info.clusterId))
      throw new InvalidArgumentError(`register.cluster_id "${info.clusterId}" is not valid: use 1-128 of A-Z a-z 0-9 . _ : @ / -`);
    if (!(info.totalCpuMillis > 0) || !(info.totalMemoryBytes > 0))
      throw new InvalidArgumentError("register: total_cpu_millis and total_memory_bytes must be positive");
    if (!this.clusters.has(info.clusterId)) {
      const c: ClusterRecord = { id: info.clusterId, tier: info.tier, labels: {}, declared: false, createdAt: this.clock.wall() };
      this.clusters.set(info.clusterId, c);
      this.onCluster(c);
    }
    const prev = this.nodes.get(info.nodeId);
    const node: NodeRecord = {
      id: info.nodeId,
      clusterId: info.clusterId,
      tier: info.tier,
      labels: info.labels,
      deviceIds: new Set(info.deviceIds),
      handlers: new Set(info.handlers),
      distributable: new Set(info.distributable ?? []),
      totalCpuMillis: info.totalCpuMillis,
      totalMemoryBytes: info.totalMemoryBytes,
      maxConcurrent: Math.max(1, info.maxConcurrent),
      state: "ready",
      history: prev?.history ?? [],
      sessionId: info.sessionId,
      address: info.address,
      lastSeenMono: this.clock.mono(),
      lastHeartbeatAt: this.clock.wall(),
      reportedFreeCpuMillis: info.freeCpuMillis,
      reportedFreeMemoryBytes: info.freeMemoryBytes,
      load: 0,
      rttMs: prev?.rttMs ?? 0,
      reservations: prev?.reservations ?? new Map(),
      disconnectedAtMono: 0,
    };
    if (prev) for (const d of prev.deviceIds) if (this.devices.get(d) === prev.id) this.devices.delete(d);
    for (const d of node.deviceIds) this.devices.set(d, node.id);
    this.nodes.set(node.id, node);
    this.transition(node, "ready", prev ? `re-registered (session ${info.sessionId})` : `registered (session ${info.sessionId})`, true);
    return node;
  }

  heartbeat(nodeId: string, sessionId: string, hb: HeartbeatInfo): NodeRecord | undefined {
    const n = this.nodes.get(nodeId);
    if (!n || n.sessionId !== sessionId) return undefined;
    n.lastSeenMono = this.clock.mono();
    n.lastHeartbeatAt = this.clock.wall();
    n.reportedFreeCpuMillis = Math.max(0, hb.freeCpuMillis);
    n.reportedFreeMemoryBytes = Math.max(0, hb.freeMemoryBytes);
    n.load = hb.load;
    if (hb.rttMs !== undefined) n.rttMs = hb.rttMs;
    for (const r of n.reservations.values()) r.measured = hb.runningTaskIds.has(reservationKey(r.taskId, r.attempt));
    if (hb.deviceIds) {
      for (const d of n.deviceIds) if (this.devices.get(d) === n.id) this.devices.delete(d);
      n.deviceIds = new Set(hb.deviceIds);
      for (const d of n.deviceIds) this.devices.set(d, n.id);
    }
    if (n.state === "disconnected" || n.state === "down") this.transition(n, "ready", "heartbeats resumed");
    return n;
  }

  /** Any message from the node proves it is alive. */
  touch(nodeId: string, sessionId: string): void {
    const n = this.nodes.get(nodeId);
    if (n && n.sessionId === sessionId) n.lastSeenMono = this.clock.mono();
  }

  /** The node's stream closed. Ignored if a newer session already replaced it. */
  streamClosed(nodeId: string, sessionId: string, reason: string): NodeRecord | undefined {
    const n = this.nodes.get(nodeId);
    if (!n || n.sessionId !== sessionId) return undefined;
    if (n.state === "drained") return n;
    this.markDisconnected(n, reason);
    return n;
  }

  /** Marks nodes silent for longer than `timeoutMs` disconnected; returns them. */
  sweep(timeoutMs: number): NodeRecord[] {
    const now = this.clock.mono();
    const out: NodeRecord[] = [];
    for (const n of this.nodes.values()) {
      if ((n.state === "ready" || n.state === "draining") && now - n.lastSeenMono > timeoutMs) {
        this.markDisconnected(n, `no heartbeat for ${Math.round(now - n.lastSeenMono)} ms`);
        out.push(n);
      }
    }
    return out;
  }

  /** Disconnected nodes whose window has passed become down; returns them (their tasks must move). */
  expireDisconnected(windowMs: number): NodeRecord[] {
    const now = this.clock.mono();
    const out: NodeRecord[] = [];
    for (const n of this.nodes.values()) {
      if (n.state === "disconnected" && now - n.disconnectedAtMono >= windowMs) {
        this.transition(n, "down", `disconnected for more than ${windowMs} ms`);
        out.push(n);
      }
    }
    return out;
  }

  drain(nodeId: string): NodeRecord {
    const n = this.getNode(nodeId);
    if (n.state === "draining" || n.state === "drained") return n;
    if (n.state !== "ready") throw new InvalidArgumentError(`node ${nodeId} is ${n.state}; only a ready node can be drained`);
    this.transition(n, n.reservations.size === 0 ? "drained" : "draining", "drain requested");
    return n;
  }

  /** A draining node with nothing left running becomes drained. */
  settleDrain(n: NodeRecord): void {
    if (n.state === "draining" && n.reservations.size === 0) this.transition(n, "drained", "all tasks finished");
  }

  reserve(nodeId: string, r: Omit<Reservation, "measured">): void {
    const n = this.getNode(nodeId);
    n.reservations.set(reservationKey(r.taskId, r.attempt), { ...r, measured: false });
  }

  /** The agent started the attempt (accepted it): its expected end counts from now. */
  started(nodeId: string, taskId: string, attempt: number, at: number): void {
    const r = this.nodes.get(nodeId)?.reservations.get(reservationKey(taskId, attempt));
    if (r) r.startedAt = at;
  }

  release(nodeId: string, taskId: string, attempt: number): void {
    const n = this.nodes.get(nodeId);
    if (!n) return;
    n.reservations.delete(reservationKey(taskId, attempt));
    this.settleDrain(n);
  }

  getNode(id: string): NodeRecord {
    const n = this.nodes.get(id);
    if (!n) throw new NotFoundError(`node ${id} not found`);
    return n;
  }

  findNode(id: string): NodeRecord | undefined {
    return this.nodes.get(id);
  }

  nodeForDevice(deviceId: string): NodeRecord | undefined {
    const id = this.devices.get(deviceId);
    return id === undefined ? undefined : this.nodes.get(id);
  }

  listNodes(): NodeRecord[] {
    return [...this.nodes.values()];
  }

  listClusters(): ClusterRecord[] {
    return [...this.clusters.values()];
  }

  getCluster(id: string): ClusterRecord | undefined {
    return this.clusters.get(id);
  }

  nodesOf(clusterId: string): NodeRecord[] {
    return [...this.nodes.values()].filter((n) => n.clusterId === clusterId);
  }

  /** Free capacity: what the node last measured minus what was dispatched to it since (not yet in a heartbeat). */
  free(n: NodeRecord): { cpuMillis: number; memoryBytes: number } {
    let cpu = n.reportedFreeCpuMillis;
    let mem = n.reportedFreeMemoryBytes;
    for (const r of n.reservations.values()) {
      if (!r.measured) {
        cpu -= r.cpuMillis;
        mem -= r.memoryBytes;
      }
    }
    return { cpuMillis: Math.max(0, cpu), memoryBytes: Math.max(0, mem) };
  }

  /** Share of a cluster's nodes that are healthy (ready or draining). A cluster with no nodes has health 0. */
  health(clusterId: string): number {
    // A node down for longer than downNodeMemoryMs is taken as gone for good (decommissioned, or an agent that
    // came back under a new id): it stays listed, but no longer holds its cluster below the health threshold.
    const now = this.clock.mono();
    const ns = this.nodesOf(clusterId).filter((n) => n.state !== "drained" && !(n.state === "down" && now - n.disconnectedAtMono > this.downNodeMemoryMs));
    if (ns.length === 0) return 0;
    return ns.filter((n) => n.state === "ready" || n.state === "draining").length / ns.length;
  }

  /** Handlers some registered node can run as shards of a DISTRIBUTED / HYBRID task (built-ins always can). */
  distributableHandlers(builtins: readonly string[]): Set<string> {
    const s = new Set(builtins);
    for (const n of this.nodes.values()) for (const h of n.distributable ?? []) s.add(h);
    return s;
  }

  /** Handlers some node has announced: the set a submission may name. */
  knownHandlers(builtins: readonly string[]): Set<string> {
    const s = new Set<string>(builtins);
    for (const n of this.nodes.values()) for (const h of n.handlers) s.add(h);
    return s;
  }

  maxNodeCpu(): number | undefined {
    let m: number | undefined;
    for (const n of this.nodes.values()) if (n.totalCpuMillis > 0) m = Math.max(m ?? 0, n.totalCpuMillis);
    return m;
  }

  maxNodeMemory(): number | undefined {
    let m: number | undefined;
    for (const n of this.nodes.values()) m = Math.max(m ?? 0, n.totalMemoryBytes);
    return m;
  }

  private markDisconnected(n: NodeRecord, reason: string): void {
    if (n.state === "disconnected" || n.state === "down") return;
    n.disconnectedAtMono = this.clock.mono();
    this.transition(n, "disconnected", reason);
  }

  private transition(n: NodeRecord, state: NodeState, reason: string, force = false): void {
    if (!force && n.state === state) return;
    n.state = state;
    n.history.push({ state, at: this.clock.wall(), reason });
    if (n.history.length > HISTORY_LIMIT) n.history.splice(0, n.history.length - HISTORY_LIMIT);
  }
}
