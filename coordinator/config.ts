// Coordinator options: every option documented with its default, resolved once at start-up.
// Must never read the environment or flags after start: main.ts passes the resolved config down.
import { checkSecurityConfig } from "./security/config-check.js";

export interface CoordinatorConfig {
  /** HOST:PORT to listen on; port 0 picks a free port. Default `127.0.0.1:50051`. */
  listen: string;
  /** `sqlite` (durable, in dataDir) or `memory` (for tests and throwaway runs: loses everything on exit). Default `sqlite`. */
  store: "sqlite" | "memory";
  /** Directory of the SQLite database (`edgeplane.db`). Default `./data`. */
  dataDir: string;
  /** Heartbeat interval the coordinator asks agents for, in ms. Default 1000. */
  heartbeatIntervalMs: number;
  /** Heartbeats a node may miss before it is marked disconnected. Default 3. */
  heartbeatMissLimit: number;
  /** A cluster whose share of healthy nodes is below this takes no new work. Default 0.7. */
  healthThreshold: number;
  /** Largest task input accepted, in bytes (JSON input plus packed series). Default 100 MiB. */
  maxInputBytes: number;
  /** Memory a task needs when it does not say, in bytes. Default 64 MiB. */
  defaultMemoryBytes: number;
  /**
   * CPU a task reserves when it does not say, in millicores. Default 0: such a task takes one slot of its node (the
   * agent's `--workers`) and no cpu beyond it, so small tasks fill every slot; give requiredCpuMillis for heavy work.
   */
  defaultCpuMillis: number;
  /** Retries after a failed attempt when a task does not say. Default 3. */
  defaultMaxRetries: number;
  /** First retry backoff in ms; doubles each attempt (with jitter). Default 500. */
  retryBaseMs: number;
  /** Longest retry backoff in ms. Default 30000. */
  retryMaxMs: number;
  /** A dispatched attempt the agent has not accepted within this many ms is retried. Default 10000. */
  dispatchAckTimeoutMs: number;
  /**
   * How long a disconnected node keeps its tasks before they are requeued as a new attempt, in ms; an agent that
   * reconnects inside it and reports them running or finished runs nothing twice. 0 = requeue at once. Default 30000.
   */
  disconnectWindowMs: number;
  /** A node down for longer than this no longer counts against its cluster's health, in ms. Default 600000 (10 min). */
  downNodeMemoryMs: number;
  /** Grace given to a draining node's running tasks before they are moved, in ms. Default 60000. */
  drainGraceMs: number;
  /** Most shards a DISTRIBUTED or HYBRID task is split into. Default 64. */
  maxShards: number;
  /**
   * HYBRID sizing: points one fully free core processes per ms. Only its ratio to splitShardOverheadMs matters: it
   * decides how much the device's node keeps. Default 10,000 (the built-in stats, measured).
   */
  splitPointsPerCoreMs: number;
  /** HYBRID sizing: fixed cost of sending a shard to another node and hearing back, in ms. Default 15. */
  splitShardOverheadMs: number;
  /**
   * Unary calls one client connection may have in flight; more are answered at once with RESOURCE_EXHAUSTED (nothing
   * done, safe to retry), so a flood on one connection costs bounded memory and never gets the connection killed.
   * Not an HTTP/2 stream limit: Node ends a session that has more than 100 streams refused. Default 1000.
   */
  maxCallsPerConnection: number;
  /**
   * Attempts a node is sent beyond its slots (its agent's --workers), waiting on the agent for a slot: a slot that
   * frees starts its next task at once instead of after the coordinator's round trip and commit. It commits that
   * many tasks to a node early (a node that frees up sooner elsewhere cannot take them); only NORMAL and lower work
   * is sent ahead (CRITICAL and HIGH work waits for a free slot). 0 = never. Default 8, bounded by time with
   * dispatchAheadMs. Measured on this project's 2-core benchmark machine with one-slot agents and small tasks
   * (bench/RESULTS.md): 4 ahead completed 2.7x more than 0; 8 ahead 1,800 tasks/s against 1,374 with 4, the
   * CRITICAL wait behind a LOW backlog about the same (p99 28 against 29 ms); 16 and 32 ahead about 2,000 tasks/s
   * but a CRITICAL wait p99 of 43–80 ms (the coordinator's turns grow with the batches).
   */
  dispatchAhead: number;
  /**
   * Bounds dispatch-ahead by time: a node holds at most as many attempts beyond its slots as its slots complete in
   * this many ms at the recent mean processing time (at least 1, at most dispatchAhead), so small tasks get a deep
   * queue and long ones a short one, and a HIGH or CRITICAL task waiting behind a node's queue waits about this long.
   * 0 = no bound in time (dispatchAhead alone). Default 20 ms.
   */
  dispatchAheadMs: number;
  /** pino log level. Default `info`. */
  logLevel: string;
  // --- security (coordinator/security/) ---
  /**
   * Serve plaintext with no authentication: anything that reaches the port may do everything. Refused unless the
   * listen address is loopback (127.0.0.0/8, ::1, localhost). Default false (TLS, tokens and certificates).
   */
  insecure: boolean;
  /** CA certificate (PEM) to issue from instead of `<dataDir>/ca.crt`; needs caKey. Default "" (created in dataDir on first start). */
  caCert: string;
  /** Private key of caCert (PEM; must not be readable by others). Default "" (`<dataDir>/ca.key`, mode 0600). */
  caKey: string;
  /** Extra DNS names or IPs in the serving certificate, besides the listen host (and localhost for loopback/wildcard). Default none. */
  tlsSans: string[];
  /** Lifetime of the serving certificate, in ms; it is renewed at two thirds of it without a restart. Default 30 days. */
  servingCertTtlMs: number;
  /** Lifetime of node (and client) certificates, in ms; agents renew theirs over the stream at two thirds. Default 7 days. */
  nodeCertTtlMs: number;
  /** HOST:PORT of a plaintext listener that serves only grpc.health.v1 (for probes); "" for none. Default "". */
  healthListen: string;
  /** Serve gRPC server reflection (readable without a token). Default true. */
  reflection: boolean;
  /** Audit log: a file of JSON lines (mode 0600), or `-` for the coordinator's own log. Default "" (`<dataDir>/audit.log`). */
  auditLog: string;
  /** Per-token default: most tasks queued or running at once; 0 = unlimited. Default 50,000. */
  quotaMaxActiveTasks: number;
  /** Per-token default: sustained submissions per second (token bucket); 0 = unlimited. Default 2,000. */
  quotaSubmitRate: number;
  /** Per-token default: submissions in a burst (token bucket size). Default 20,000. */
  quotaSubmitBurst: number;
  /** Per-token default: largest input of one task, in bytes; 0 = maxInputBytes. Default 0. */
  quotaMaxInputBytes: number;
}

export const DEFAULT_COORDINATOR_CONFIG: Readonly<CoordinatorConfig> = Object.freeze({
  listen: "127.0.0.1:50051",
  store: "sqlite",
  dataDir: "data",
  heartbeatIntervalMs: 1000,
  heartbeatMissLimit: 3,
  healthThreshold: 0.7,
  maxInputBytes: 100 * 1024 * 1024,
  defaultMemoryBytes: 64 * 1024 * 1024,
  defaultCpuMillis: 0,
  defaultMaxRetries: 3,
  retryBaseMs: 500,
  retryMaxMs: 30_000,
  dispatchAckTimeoutMs: 10_000,
  disconnectWindowMs: 30_000,
  downNodeMemoryMs: 600_000,
  drainGraceMs: 60_000,
  maxShards: 64,
  splitPointsPerCoreMs: 10_000,
  splitShardOverheadMs: 15,
  maxCallsPerConnection: 1000,
  dispatchAhead: 8,
  dispatchAheadMs: 20,
  logLevel: "info",
  insecure: false,
  caCert: "",
  caKey: "",
  tlsSans: [],
  servingCertTtlMs: 30 * 86_400_000,
  nodeCertTtlMs: 7 * 86_400_000,
  healthListen: "",
  reflection: true,
  auditLog: "",
  quotaMaxActiveTasks: 50_000,
  quotaSubmitRate: 2_000,
  quotaSubmitBurst: 20_000,
  quotaMaxInputBytes: 0,
});

/** Applies defaults and rejects nonsense values with a message that says what to fix. */
export function resolveCoordinatorConfig(partial: Partial<CoordinatorConfig>): CoordinatorConfig {
  const c: CoordinatorConfig = { ...DEFAULT_COORDINATOR_CONFIG };
  for (const [k, v] of Object.entries(partial)) if (v !== undefined) (c as unknown as Record<string, unknown>)[k] = v;
  const positive: (keyof CoordinatorConfig)[] = [
    "heartbeatIntervalMs",
    "heartbeatMissLimit",
    "maxInputBytes",
    "defaultMemoryBytes",
    "retryBaseMs",
    "retryMaxMs",
    "dispatchAckTimeoutMs",
    "maxShards",
    "splitPointsPerCoreMs",
    "maxCallsPerConnection",
  ];
  for (const k of positive) {
    const v = c[k];
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) throw new Error(`coordinator option ${k} must be a positive number, got ${String(v)}`);
  }
  if (c.store !== "sqlite" && c.store !== "memory") throw new Error(`coordinator option store must be sqlite or memory, got ${String(c.store)}`);
  if (!(c.healthThreshold >= 0 && c.healthThreshold <= 1))
    throw new Error(`coordinator option healthThreshold must be between 0 and 1, got ${c.healthThreshold}`);
  if (c.defaultMaxRetries < 0) throw new Error(`coordinator option defaultMaxRetries must be >= 0`);
  if (!(c.defaultCpuMillis >= 0) || !Number.isInteger(c.defaultCpuMillis))
    throw new Error(`coordinator option defaultCpuMillis must be a whole number >= 0, got ${c.defaultCpuMillis}`);
  if (!(c.disconnectWindowMs >= 0)) throw new Error(`coordinator option disconnectWindowMs must be >= 0`);
  if (c.drainGraceMs < 0) throw new Error(`coordinator option drainGraceMs must be >= 0`);
  if (!Number.isInteger(c.maxShards)) throw new Error(`coordinator option maxShards must be a whole number, got ${c.maxShards}`);
  if (!(c.dispatchAheadMs >= 0)) throw new Error(`coordinator option dispatchAheadMs must be at least 0, got ${c.dispatchAheadMs}`);
  if (!(c.dispatchAhead >= 0) || !Number.isInteger(c.dispatchAhead))
    throw new Error(`coordinator option dispatchAhead must be a whole number >= 0, got ${c.dispatchAhead}`);
  if (!(c.splitShardOverheadMs >= 0)) throw new Error(`coordinator option splitShardOverheadMs must be >= 0`);
  checkSecurityConfig(c);
  return c;
}
