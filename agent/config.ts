// Agent options: every option documented with its default, resolved once at start-up.
import { hostname } from "node:os";

export interface AgentConfig {
  /** Coordinator HOST:PORT. Default `127.0.0.1:50051` (or EDGEPLANE_ADDR, resolved by the CLI). */
  coordinator: string;
  /** Cluster this node belongs to; created on the coordinator if new. Required. */
  clusterId: string;
  /** Node id, unique in the fleet and stable across restarts. Default `<hostname>-<cluster>-<pid>`. */
  nodeId: string;
  /** `edge` (on site) or `cloud` (fallback capacity). Default `edge`. */
  tier: "edge" | "cloud";
  /** Free-form labels reported at registration. Default none. */
  labels: Record<string, string>;
  /** Device ids this node serves. Default none. */
  deviceIds: string[];
  /** File listing the device ids this node serves; re-read on SIGHUP and when it changes. Default none. */
  devicesFile: string | undefined;
  /** Directory of custom handler modules (.js/.mjs). Default none. */
  handlersDir: string | undefined;
  /** Worker threads, i.e. tasks run at once. Default: the node's available parallelism. */
  workers: number | undefined;
  /**
   * Memory this agent offers to tasks, in bytes: reported total and free are capped at it (the rest of the node's
   * memory stays for other software). Default: all the node has, as measured.
   */
  maxMemoryBytes: number | undefined;
  /**
   * Built-in handlers whose input is at most this many bytes run inline on the agent's main thread instead of a
   * worker thread (the hop costs more than such a task); 0 = every task in a worker. Default 64 KiB.
   */
  inlineMaxBytes: number;
  /**
   * Encrypt the result journal (AES-256-GCM) with the key in this file, created (mode 0600) if it does not exist, so
   * a stolen edge box's disk does not give away task results. Default none: the journal is plaintext in its 0700
   * directory.
   */
  journalKeyFile: string | undefined;
  /** Directory of the result journal (segment files of results awaiting the coordinator's ack, docs/agent.md). Default `./data/agent-<node id>`. */
  dataDir: string;
  /** On SIGTERM, how long running tasks may take to finish before the agent exits, in ms. Default 30000. */
  drainGraceMs: number;
  /** First reconnect delay in ms; doubles per failure with full jitter. Default 250. */
  reconnectBaseMs: number;
  /** Longest reconnect delay in ms. Default 10000. */
  reconnectMaxMs: number;
  /** pino log level. Default `info`. */
  logLevel: string;
  // --- identity (agent/identity/) ---
  /**
   * Join token (`EP1<ca-sha256>::<id>.<secret>`) to enrol with when the node has no valid certificate; the CLI also
   * reads EDGEPLANE_JOIN_TOKEN and --join-token-file. Not needed once enrolled. Default none.
   */
  joinToken: string | undefined;
  /** The coordinator CA certificate file to trust, instead of pinning the CA by the join token's hash. Default none. */
  caCert: string | undefined;
  /** Plaintext to a coordinator started with --insecure: no enrolment, no certificate. Default false. */
  insecure: boolean;
}

export function defaultNodeId(clusterId: string): string {
  return `${hostname()}-${clusterId}-${process.pid}`;
}

export function resolveAgentConfig(partial: Partial<AgentConfig> & { clusterId: string }): AgentConfig {
  if (!partial.clusterId) throw new Error("agent: --cluster is required (the id of the cluster this node belongs to)");
  const c: AgentConfig = {
    coordinator: "127.0.0.1:50051",
    clusterId: partial.clusterId,
    nodeId: defaultNodeId(partial.clusterId),
    tier: "edge",
    labels: {},
    deviceIds: [],
    handlersDir: undefined,
    devicesFile: undefined,
    workers: undefined,
    maxMemoryBytes: undefined,
    inlineMaxBytes: 64 * 1024,
    journalKeyFile: undefined,
    dataDir: "",
    drainGraceMs: 30_000,
    reconnectBaseMs: 250,
    reconnectMaxMs: 10_000,
    logLevel: "info",
    joinToken: undefined,
    caCert: undefined,
    insecure: false,
  };
  for (const [k, v] of Object.entries(partial)) if (v !== undefined) (c as unknown as Record<string, unknown>)[k] = v;
  if (!c.dataDir) c.dataDir = `data/agent-${c.nodeId}`;
  if (c.tier !== "edge" && c.tier !== "cloud") throw new Error(`agent: --tier must be edge or cloud, got ${String(c.tier)}`);
  if (c.workers !== undefined && (!Number.isInteger(c.workers) || c.workers < 1)) throw new Error(`agent: --workers must be a positive integer`);
  if (c.maxMemoryBytes !== undefined && !(c.maxMemoryBytes > 0)) throw new Error(`agent: --max-memory must be a positive size`);
  if (!(c.inlineMaxBytes >= 0)) throw new Error(`agent: --inline-max must be a size >= 0`);
  return c;
}
