// Runs the product: `coordinator`, `agent`, and `dev` (a coordinator plus local agents as child processes).
// Owns process lifecycle only (flags → config, signals, ready files, children); never schedules or runs tasks itself.
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { resolve as resolvePath, join as joinPath } from "node:path";
import { Option, type Command } from "commander";
import { pino, type Logger } from "pino";
import { resolveAgentConfig, type AgentConfig } from "../agent/config.js";
import { DEFAULT_COORDINATOR_CONFIG, resolveCoordinatorConfig, type CoordinatorConfig } from "../coordinator/config.js";
import { DEFAULT_COORDINATOR_ADDRESS } from "./client.js";
import { arg, collect, coordinatorOption, repeatable, type CliDeps } from "./context.js";
import { CliError, UsageError } from "./errors.js";
import { formatBytes, formatCpu, formatMs } from "./format.js";
import { collectLabel, parseBytes, parseDuration, parseFraction, parseHostPort, parseInteger, parseList, parseMillicores } from "./parse.js";

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

function parseStoreKind(t: string): "sqlite" | "memory" {
  if (t === "sqlite" || t === "memory") return t;
  throw new Error(`--store must be sqlite or memory, got "${t}"`);
}

/** How one config option appears on the command line. */
interface FlagSpec<V> {
  flags: string;
  help: string;
  parse: (text: string) => V;
  show: (value: V) => string;
  /** A switch without a value (`--insecure`, `--no-reflection`). */
  boolean?: true;
}

const orNone = (v: string) => v || "none";

/** One flag per coordinator option: adding an option to CoordinatorConfig without a flag fails to compile. */
const COORDINATOR_FLAGS: { [K in keyof CoordinatorConfig]-?: FlagSpec<CoordinatorConfig[K]> } = {
  listen: { flags: "--listen <host:port>", help: "address to listen on; port 0 picks a free port", parse: parseHostPort, show: String },
  store: {
    flags: "--store <kind>",
    help: "task store: sqlite (durable, in --data-dir) or memory (tests and throwaway runs)",
    parse: parseStoreKind,
    show: String,
  },
  dataDir: { flags: "--data-dir <dir>", help: "directory of the SQLite database", parse: (t) => t, show: String },
  heartbeatIntervalMs: { flags: "--heartbeat-interval <duration>", help: "heartbeat interval agents are asked for", parse: parseDuration, show: formatMs },
  heartbeatMissLimit: {
    flags: "--heartbeat-miss-limit <n>",
    help: "heartbeats a node may miss before it is disconnected",
    parse: (t) => parseInteger(t, 1),
    show: String,
  },
  healthThreshold: {
    flags: "--health-threshold <share>",
    help: "a cluster with a smaller share of healthy nodes takes no new work (0..1 or %)",
    parse: parseFraction,
    show: String,
  },
  maxInputBytes: {
    flags: "--max-input-bytes <size>",
    help: "largest task input accepted (JSON input plus packed series)",
    parse: parseBytes,
    show: formatBytes,
  },
  defaultMemoryBytes: { flags: "--default-memory <size>", help: "memory a task needs when it does not say", parse: parseBytes, show: formatBytes },
  defaultCpuMillis: {
    flags: "--default-cpu <millicores>",
    help: "CPU a task reserves when it does not say (1000 = one core; 0 = just one of its node's slots)",
    parse: parseMillicores,
    show: formatCpu,
  },
  defaultMaxRetries: {
    flags: "--default-max-retries <n>",
    help: "retries after a failed attempt when a task does not say",
    parse: (t) => parseInteger(t, 0),
    show: String,
  },
  retryBaseMs: { flags: "--retry-base <duration>", help: "first retry backoff; doubles each attempt, with jitter", parse: parseDuration, show: formatMs },
  retryMaxMs: { flags: "--retry-max <duration>", help: "longest retry backoff", parse: parseDuration, show: formatMs },
  dispatchAckTimeoutMs: {
    flags: "--dispatch-ack-timeout <duration>",
    help: "a dispatched attempt not accepted by its agent within this is retried",
    parse: parseDuration,
    show: formatMs,
  },
  disconnectWindowMs: {
    flags: "--disconnect-window <duration>",
    help: "how long a disconnected node keeps its tasks before they are requeued (0 = at once)",
    parse: parseDuration,
    show: formatMs,
  },
  downNodeMemoryMs: {
    flags: "--down-node-memory <duration>",
    help: "a node down for longer than this no longer counts against its cluster's health",
    parse: parseDuration,
    show: formatMs,
  },
  drainGraceMs: {
    flags: "--drain-grace <duration>",
    help: "time a draining node's running tasks get before they are moved",
    parse: parseDuration,
    show: formatMs,
  },
  maxShards: { flags: "--max-shards <n>", help: "most shards a DISTRIBUTED or HYBRID task is split into", parse: (t) => parseInteger(t, 1), show: String },
  splitPointsPerCoreMs: {
    flags: "--split-points-per-core-ms <n>",
    help: "HYBRID sizing: points a free core processes per ms (with --split-shard-overhead, decides what the device's node keeps)",
    parse: (t) => parseInteger(t, 1),
    show: String,
  },
  splitShardOverheadMs: {
    flags: "--split-shard-overhead <duration>",
    help: "HYBRID sizing: cost of shipping a shard to another node and hearing back",
    parse: parseDuration,
    show: formatMs,
  },
  maxCallsPerConnection: {
    flags: "--max-calls-per-connection <n>",
    help: "unary calls one client connection may have in flight; more get RESOURCE_EXHAUSTED at once",
    parse: (t) => parseInteger(t, 1),
    show: String,
  },
  dispatchAhead: {
    flags: "--dispatch-ahead <n>",
    help: "attempts a node is sent beyond its slots, queued on its agent so a freed slot starts at once (0 = never)",
    parse: (t) => parseInteger(t, 0),
    show: String,
  },
  dispatchAheadMs: {
    flags: "--dispatch-ahead-time <duration>",
    help: "at most as many attempts ahead as a node's slots get through in this time at the recent mean processing time (0 = no bound in time)",
    parse: parseDuration,
    show: formatMs,
  },
  logLevel: { flags: "--log-level <level>", help: "log level", parse: (t) => t, show: String },
  // Security (coordinator/security/; docs/security.md).
  insecure: {
    flags: "--insecure",
    help: "plaintext, no authentication: anything reaching the port may do everything; only on a loopback --listen address",
    parse: () => true,
    show: String,
    boolean: true,
  },
  caCert: {
    flags: "--ca-cert <file>",
    help: "CA certificate (PEM) to issue from, instead of the one created in --data-dir (needs --ca-key)",
    parse: (t) => t,
    show: (v) => v || "<data-dir>/ca.crt",
  },
  caKey: { flags: "--ca-key <file>", help: "private key of --ca-cert (PEM, mode 0600)", parse: (t) => t, show: (v) => v || "<data-dir>/ca.key" },
  tlsSans: {
    flags: "--tls-san <names>",
    help: "extra DNS names or IPs for the serving certificate, comma-separated (the --listen host is always in it)",
    parse: parseList,
    show: (v) => v.join(",") || "none",
  },
  servingCertTtlMs: {
    flags: "--serving-cert-ttl <duration>",
    help: "lifetime of the serving certificate; renewed at two thirds of it without a restart",
    parse: parseDuration,
    show: formatMs,
  },
  nodeCertTtlMs: {
    flags: "--node-cert-ttl <duration>",
    help: "lifetime of node certificates; agents renew over their stream at two thirds of it",
    parse: parseDuration,
    show: formatMs,
  },
  healthListen: {
    flags: "--health-listen <host:port>",
    help: "also serve grpc.health.v1 (only) in plaintext here, for probes",
    parse: parseHostPort,
    show: orNone,
  },
  reflection: {
    flags: "--no-reflection",
    help: "do not serve gRPC server reflection (served without a token by default)",
    parse: () => false,
    show: String,
    boolean: true,
  },
  auditLog: {
    flags: "--audit-log <file>",
    help: "audit log of mutating and refused calls (JSON lines, mode 0600); - for the coordinator log",
    parse: (t) => t,
    show: (v) => v || "<data-dir>/audit.log",
  },
  quotaMaxActiveTasks: {
    flags: "--quota-max-active <n>",
    help: "per token: most tasks queued or running at once (0 = unlimited; a token may set its own)",
    parse: (t) => parseInteger(t, 0),
    show: String,
  },
  quotaSubmitRate: {
    flags: "--quota-submit-rate <per-second>",
    help: "per token: sustained submissions per second (0 = unlimited)",
    parse: (t) => parseNonNegative(t),
    show: String,
  },
  quotaSubmitBurst: { flags: "--quota-submit-burst <n>", help: "per token: submissions allowed in a burst", parse: (t) => parseInteger(t, 0), show: String },
  quotaMaxInputBytes: {
    flags: "--quota-max-input <size>",
    help: "per token: largest input of one task (0 = --max-input-bytes)",
    parse: parseBytes,
    show: formatBytes,
  },
};

function parseNonNegative(t: string): number {
  const n = Number(t);
  if (!(t.trim() !== "" && Number.isFinite(n) && n >= 0)) throw new UsageError(`expected a number >= 0, got "${t}"`);
  return n;
}

/** Adds every coordinator option as a flag, defaults shown in --help. */
function addCoordinatorOptions(cmd: Command): void {
  for (const key of Object.keys(COORDINATOR_FLAGS) as (keyof CoordinatorConfig)[]) {
    const spec = COORDINATOR_FLAGS[key] as FlagSpec<unknown>;
    const dflt = DEFAULT_COORDINATOR_CONFIG[key];
    if (spec.boolean) {
      cmd.addOption(new Option(spec.flags, spec.help));
      continue;
    }
    const option = new Option(spec.flags, spec.help).default(dflt, spec.show(dflt)).argParser(arg(spec.parse));
    if (key === "logLevel") option.choices(LOG_LEVELS);
    cmd.addOption(option);
  }
}

/** The coordinator config that `coordinator`/`dev` flags (as commander parsed them) describe. */
export function coordinatorConfigFromFlags(flags: Readonly<Record<string, unknown>>): Partial<CoordinatorConfig> {
  const config: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(COORDINATOR_FLAGS)) config[key] = flags[new Option(spec.flags).attributeName()];
  return config as Partial<CoordinatorConfig>;
}

/** `agent` flags after commander has parsed them. */
export interface AgentFlags {
  coordinator: string;
  cluster: string;
  nodeId?: string;
  tier?: "edge" | "cloud";
  label?: Record<string, string>;
  devices?: string[];
  device?: string[];
  handlers?: string;
  workers?: number;
  maxMemory?: number;
  inlineMax?: number;
  encryptJournal?: string;
  drainGrace?: number;
  dataDir?: string;
  devicesFile?: string;
  reconnectBase?: number;
  reconnectMax?: number;
  logLevel?: string;
  joinToken?: string;
  joinTokenFile?: string;
  caCert?: string;
  insecure?: boolean;
}

/** Environment variable holding an agent's join token (kept out of argv, where `ps` shows it). */
export const JOIN_TOKEN_ENV = "EDGEPLANE_JOIN_TOKEN";

function readJoinTokenFile(path: string): string {
  try {
    return readFileSync(path, "utf8").trim();
  } catch (err) {
    throw new UsageError(`cannot read --join-token-file ${path}: ${(err as Error).message}`);
  }
}

/**
 * The agent config the parsed flags describe; unset flags stay undefined so resolveAgentConfig applies its
 * defaults. Every AgentConfig key is listed, so a new option without a flag fails to compile.
 */
export function agentConfigFromFlags(f: AgentFlags): Partial<AgentConfig> & { clusterId: string } {
  const config: { [K in keyof AgentConfig]-?: AgentConfig[K] | undefined } = {
    coordinator: f.coordinator,
    clusterId: f.cluster,
    nodeId: f.nodeId,
    tier: f.tier,
    labels: f.label,
    deviceIds: [...new Set([...(f.devices ?? []), ...(f.device ?? [])])],
    handlersDir: f.handlers,
    workers: f.workers,
    maxMemoryBytes: f.maxMemory,
    inlineMaxBytes: f.inlineMax,
    journalKeyFile: f.encryptJournal,
    dataDir: f.dataDir,
    devicesFile: f.devicesFile,
    drainGraceMs: f.drainGrace,
    reconnectBaseMs: f.reconnectBase,
    reconnectMaxMs: f.reconnectMax,
    logLevel: f.logLevel,
    joinToken: f.joinToken ?? (f.joinTokenFile ? readJoinTokenFile(f.joinTokenFile) : undefined),
    caCert: f.caCert,
    insecure: f.insecure,
  };
  return { ...config, clusterId: f.cluster } as Partial<AgentConfig> & { clusterId: string };
}

/** One local agent `dev` starts. */
export interface DevAgentPlan {
  nodeId: string;
  clusterId: string;
  tier: "edge" | "cloud";
  deviceIds: string[];
}

export interface DevLayout {
  edgeAgents: number;
  cloudAgents: number;
  devicesPerAgent: number;
  edgeCluster: string;
  cloudCluster: string;
}

/** The agents `dev` starts: edge agents share devices sensor-1…N in order, cloud agents serve none. */
export function planDevAgents(l: DevLayout): DevAgentPlan[] {
  const plans: DevAgentPlan[] = [];
  for (let i = 0; i < l.edgeAgents; i++) {
    const deviceIds = Array.from({ length: l.devicesPerAgent }, (_, d) => `sensor-${i * l.devicesPerAgent + d + 1}`);
    plans.push({ nodeId: `${l.edgeCluster}-${i + 1}`, clusterId: l.edgeCluster, tier: "edge", deviceIds });
  }
  for (let i = 0; i < l.cloudAgents; i++) {
    plans.push({ nodeId: `${l.cloudCluster}-${i + 1}`, clusterId: l.cloudCluster, tier: "cloud", deviceIds: [] });
  }
  return plans;
}

/** Arguments after the script path for `agent` as `dev` runs it. */
export function devAgentArgs(
  p: DevAgentPlan,
  coordinator: string,
  extra: { logLevel: string; handlers?: string; workers?: number; insecure?: boolean; dataDir?: string },
): string[] {
  return [
    "agent",
    "--coordinator",
    coordinator,
    "--cluster",
    p.clusterId,
    "--node-id",
    p.nodeId,
    "--tier",
    p.tier,
    "--log-level",
    extra.logLevel,
    ...(extra.insecure ? ["--insecure"] : []),
    ...(p.deviceIds.length > 0 ? ["--devices", p.deviceIds.join(",")] : []),
    ...(extra.handlers ? ["--handlers", extra.handlers] : []),
    ...(extra.workers ? ["--workers", String(extra.workers)] : []),
    // Beside the coordinator's files when it has its own directory; else the agent's default, ./data/agent-<node id>.
    ...(extra.dataDir ? ["--data-dir", joinPath(extra.dataDir, `agent-${p.nodeId}`)] : []),
  ];
}

/** The CLI credentials `dev` prints: the admin token and the CA file (absent with --insecure). */
export interface DevCredentials {
  token: string;
  caFile: string;
  /** Whether the CLI finds the token by itself (data/admin.token under the current directory). */
  tokenFileIsDefault: boolean;
}

/** What `dev` prints once everything is started. */
export function renderDevBanner(address: string, plans: readonly DevAgentPlan[], credentials?: DevCredentials): string {
  const target = address === DEFAULT_COORDINATOR_ADDRESS ? "" : ` --coordinator ${address}`;
  const security = credentials
    ? [
        "TLS and authentication are on. Admin token (keep it secret):",
        `  ${credentials.token}`,
        `For the CLI in another shell${credentials.tokenFileIsDefault ? " (from this directory it also finds data/admin.token by itself)" : ""}:`,
        `  export EDGEPLANE_ADDR=${address}`,
        `  export EDGEPLANE_TOKEN=${credentials.token}`,
        `  export EDGEPLANE_CA=${credentials.caFile}`,
        "",
      ]
    : ["--insecure: plaintext, no authentication (client commands need --insecure or EDGEPLANE_INSECURE=1).", ""];
  const agents = plans.map((p) => `    ${p.nodeId.padEnd(12)} ${p.clusterId} (${p.tier})${p.deviceIds.length ? `  devices ${p.deviceIds.join(",")}` : ""}`);
  const device = plans.find((p) => p.deviceIds.length > 0)?.deviceIds[0];
  return [
    `edgeplane dev: coordinator on ${address}, ${plans.length} local agent${plans.length === 1 ? "" : "s"}:`,
    ...agents,
    "",
    ...security,
    "Try:",
    `  npx edgeplane submit --handler stats --values 1,2,3,4 --wait${target}`,
    ...(device
      ? [`  npx edgeplane submit --handler anomaly --device ${device} --input '{"values":[10,11,9,10,12,10,95,11,10,9],"threshold":2.5}' --wait${target}`]
      : []),
    `  npx edgeplane nodes${target}`,
    `  npx edgeplane tasks${target}`,
    `  npx edgeplane status${target}`,
    "",
    "Ctrl-C stops the agents (running tasks finish first), then the coordinator.",
  ].join("\n");
}

/**
 * Files and directories the coordinator and agents create (databases, journals, keys, logs) are the owner's only:
 * umask 077 gives new files 0600 and new directories 0700.
 */
function privateFilesFromNowOn(): void {
  if (process.platform !== "win32") process.umask(0o077);
}

/** Writes the file atomically so a reader polling for it never sees half a line. */
function writeReadyFile(path: string, content: string): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${content}\n`);
  renameSync(tmp, path);
}

function supervisorLogger(level: string): Logger {
  // Synchronous so the last lines before process.exit are not lost.
  return pino({ name: "edgeplane", level, base: { pid: process.pid } }, pino.destination({ fd: 2, sync: true }));
}

/**
 * Resolves on the first SIGINT/SIGTERM (and, for an agent `dev` started, when that parent goes away);
 * each later signal calls `again` with its count (2, 3, …).
 */
function firstShutdownSignal(again: (count: number, signal: string) => void, watchParent = false): Promise<string> {
  return new Promise((resolve) => {
    let count = 0;
    const on = (signal: string) => {
      count++;
      if (count === 1) resolve(signal);
      else again(count, signal);
    };
    process.on("SIGINT", () => on("SIGINT"));
    process.on("SIGTERM", () => on("SIGTERM"));
    if (watchParent && process.send) {
      // The IPC channel exists only so the agent notices a `dev` parent that died without forwarding a signal.
      process.channel?.unref();
      process.once("disconnect", () => on("parent exited"));
    }
  });
}

/** Validates a config with its resolver up front, so a bad flag is a usage error and not a stack trace. */
function checkConfig(resolve: () => unknown): void {
  try {
    resolve();
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

function registerCoordinator(program: Command): void {
  const cmd = program.command("coordinator").description("Run the coordinator: the gRPC API, the priority scheduler and the node registry");
  addCoordinatorOptions(cmd);
  cmd.option("--ready-file <path>", "once listening, write the bound HOST:PORT to this file (for scripts and tests)");
  cmd.action(async (flags: Record<string, unknown> & { readyFile?: string }) => {
    privateFilesFromNowOn();
    const config = coordinatorConfigFromFlags(flags);
    checkConfig(() => resolveCoordinatorConfig(config));
    const log = supervisorLogger(config.logLevel ?? "info");
    const { startCoordinator } = await import("../coordinator/main.js");
    const coordinator = await startCoordinator(config);
    if (flags.readyFile) writeReadyFile(flags.readyFile, coordinator.address);
    const signal = await firstShutdownSignal((count) => {
      log.warn({ count }, "signal received again; exiting without a clean shutdown");
      process.exit(1);
    });
    log.info({ signal }, "shutting down the coordinator");
    await coordinator.close();
    process.exit(0);
  });
}

/** Defaults shown in `agent --help`, taken from the agent's own resolver. */
const AGENT_DEFAULTS = resolveAgentConfig({ clusterId: "CLUSTER" });

function registerAgent(program: Command): void {
  const cmd = program
    .command("agent")
    .description("Run a node agent: registers with the coordinator, heartbeats capacity, runs dispatched tasks")
    .addOption(coordinatorOption())
    .requiredOption("--cluster <id>", "cluster this node belongs to (created on the coordinator if new)")
    .option("--node-id <id>", "node id, unique in the fleet and stable across restarts (default: <hostname>-<cluster>-<pid>)")
    .addOption(new Option("--tier <tier>", "edge (on site) or cloud (fallback capacity)").choices(["edge", "cloud"]).default(AGENT_DEFAULTS.tier))
    .option("--label <key=value>", "label reported at registration, repeatable", collect(collectLabel))
    .option("--devices <ids>", "device ids this node serves, comma-separated", repeatable(parseList))
    .option("--device <id>", "a device id this node serves, repeatable", repeatable(parseList))
    .option("--handlers <dir>", "directory of custom handler modules (.js/.mjs) (default: none)")
    .option(
      "--workers <n>",
      "worker threads, i.e. tasks run at once (default: available parallelism)",
      arg((t) => parseInteger(t, 1)),
    )
    .option("--max-memory <size>", "memory offered to tasks; reported capacity is capped at it (default: all the node has)", arg(parseBytes))
    .option("--encrypt-journal <key-file>", "encrypt the result journal (AES-256-GCM) with the key in this file; created, mode 0600, if missing")
    .option(
      "--inline-max <size>",
      "built-in tasks with inputs up to this size run on the agent's main thread, not a worker (0 = always a worker; default 64KiB)",
      arg(parseBytes),
    )
    .option("--devices-file <path>", "file of device ids this node serves (comma/space/newline separated); re-read on SIGHUP and when it changes")
    .option("--data-dir <dir>", "directory of the result journal (results awaiting the coordinator's ack) (default: ./data/agent-<node id>)")
    .addOption(durationOption("--drain-grace <duration>", "on SIGTERM, how long running tasks may take to finish", AGENT_DEFAULTS.drainGraceMs))
    .addOption(durationOption("--reconnect-base <duration>", "first reconnect delay; doubles per failure, with jitter", AGENT_DEFAULTS.reconnectBaseMs))
    .addOption(durationOption("--reconnect-max <duration>", "longest reconnect delay", AGENT_DEFAULTS.reconnectMaxMs))
    .addOption(new Option("--log-level <level>", "log level").choices(LOG_LEVELS).default(AGENT_DEFAULTS.logLevel))
    .addOption(
      new Option("--join-token <token>", "join token to enrol with (edgeplane token create --cluster ID); not needed once enrolled").env(JOIN_TOKEN_ENV),
    )
    .option("--join-token-file <path>", "file holding the join token (keeps it out of the process list)")
    .option("--ca-cert <file>", "the coordinator's CA certificate, trusted instead of pinning it by the join token's hash")
    .option("--insecure", "plaintext to a coordinator started with --insecure: no enrolment, no certificate")
    .option("--ready-file <path>", "once started, write the node id to this file (for scripts and tests)");
  cmd.action(async (flags: AgentFlags & { readyFile?: string }) => {
    privateFilesFromNowOn();
    const config = agentConfigFromFlags(flags);
    checkConfig(() => resolveAgentConfig(config));
    const log = supervisorLogger(flags.logLevel ?? "info");
    const { startAgent } = await import("../agent/main.js");
    const agent = await startAgent(config);
    if (flags.readyFile) writeReadyFile(flags.readyFile, agent.nodeId);
    const signal = await firstShutdownSignal((count) => {
      if (count > 2) process.exit(1);
      log.warn({ node: agent.nodeId }, "signal received again; stopping now, running tasks are cancelled");
      agent.stop().then(
        () => process.exit(0),
        () => process.exit(1),
      );
    }, true);
    log.info({ node: agent.nodeId, signal }, "draining: running tasks finish, then the agent exits");
    try {
      await agent.drain();
      process.exit(0);
    } catch (err) {
      log.error({ err: (err as Error).message }, "drain failed");
      process.exit(1);
    }
  });
}

function durationOption(flags: string, help: string, dflt: number): Option {
  return new Option(flags, help).default(dflt, formatMs(dflt)).argParser(arg(parseDuration));
}

interface RunningChild {
  plan: DevAgentPlan;
  child: ChildProcess;
  exited: Promise<void>;
}

function spawnAgent(plan: DevAgentPlan, args: string[], log: Logger, stopping: () => boolean, env: Record<string, string> = {}): RunningChild {
  const script = process.argv[1];
  const child = spawn(process.execPath, [...process.execArgv, script, ...args], {
    env: { ...process.env, ...env },
    // Its own process group, so a terminal Ctrl-C reaches only `dev`, which forwards it once; the IPC
    // channel lets the agent notice if `dev` dies without forwarding anything.
    detached: true,
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const exited = new Promise<void>((resolve) => {
    child.once("error", (err) => {
      log.error({ node: plan.nodeId, err: err.message }, "could not start agent");
      resolve();
    });
    child.once("exit", (code, signal) => {
      if (stopping()) log.info({ node: plan.nodeId, code, signal }, "agent exited");
      else log.error({ node: plan.nodeId, code, signal }, "agent exited unexpectedly; the rest keep running");
      resolve();
    });
  });
  return { plan, child, exited };
}

function registerDev(program: Command, deps: CliDeps): void {
  const cmd = program
    .command("dev")
    .summary("Run a whole fleet locally: a coordinator plus local agents")
    .description(
      "Run a whole fleet locally: a coordinator in this process plus agents as child processes of this CLI.\n" +
        "Default: 2 edge agents in cluster site-a serving sensor-1..4, and 1 agent in cluster cloud.\n" +
        "The coordinator flags are those of `edgeplane coordinator`.",
    );
  addCoordinatorOptions(cmd);
  const count = (t: string) => parseInteger(t, 0, 64);
  cmd
    .addOption(new Option("--edge-agents <n>", "edge agents to start").default(2).argParser(arg(count)))
    .addOption(new Option("--cloud-agents <n>", "cloud agents to start").default(1).argParser(arg(count)))
    .addOption(new Option("--devices-per-agent <n>", "devices (sensor-1, sensor-2, …) each edge agent serves").default(2).argParser(arg(count)))
    .option("--edge-cluster <id>", "cluster of the edge agents", "site-a")
    .option("--cloud-cluster <id>", "cluster of the cloud agents", "cloud")
    .option("--handlers <dir>", "directory of custom handler modules every agent loads (default: none)")
    .option(
      "--workers <n>",
      "worker threads per agent (default: available parallelism)",
      arg((t) => parseInteger(t, 1)),
    )
    .option("--ready-file <path>", "once listening, write the coordinator's HOST:PORT to this file");
  cmd.action(async (flags: Record<string, unknown> & DevLayout & { handlers?: string; workers?: number; readyFile?: string }) => {
    privateFilesFromNowOn();
    const config = coordinatorConfigFromFlags(flags);
    checkConfig(() => resolveCoordinatorConfig(config));
    if (!process.argv[1]) throw new CliError("dev: cannot find the path of the running CLI to start agents with");
    const logLevel = config.logLevel ?? "info";
    const log = supervisorLogger(logLevel);
    const { startCoordinator } = await import("../coordinator/main.js");
    const coordinator = await startCoordinator(config);

    let stopping = false;
    const plans = planDevAgents(flags);
    // Security: an admin token for the CLI, and a join token per cluster that enrols its agents (in their env).
    const { tokens, ca } = coordinator.security;
    const joinTokens = new Map<string, string>();
    for (const c of new Set(plans.map((p) => p.clusterId))) {
      if (tokens)
        joinTokens.set(
          c,
          tokens.create({
            kind: "join",
            clusters: [c],
            ttlMs: 3_600_000,
            maxUses: plans.filter((p) => p.clusterId === c).length,
            description: "edgeplane dev",
            createdBy: "edgeplane dev",
          }).text,
        );
    }
    const adminToken = tokens?.ensureAdmin(coordinator.security.adminTokenFile, log, true);
    const children = plans.map((p) =>
      spawnAgent(
        p,
        devAgentArgs(p, coordinator.address, {
          logLevel,
          handlers: flags.handlers,
          workers: flags.workers,
          insecure: config.insecure,
          dataDir: config.dataDir,
        }),
        log,
        () => stopping,
        joinTokens.has(p.clusterId) ? { [JOIN_TOKEN_ENV]: joinTokens.get(p.clusterId)! } : {},
      ),
    );
    const credentials =
      adminToken && ca
        ? {
            token: adminToken,
            caFile: resolvePath(ca.certPath),
            tokenFileIsDefault: resolvePath(coordinator.security.adminTokenFile) === resolvePath(joinPath("data", "admin.token")),
          }
        : undefined;
    deps.io.write(`${renderDevBanner(coordinator.address, plans, credentials)}\n`);
    if (flags.readyFile) writeReadyFile(flags.readyFile, coordinator.address);

    const forward = (signal: NodeJS.Signals) => {
      for (const c of children) if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill(signal);
    };
    const signal = await firstShutdownSignal((n) => {
      // Second signal: agents stop without waiting for running tasks. Third: kill them.
      log.warn({ count: n }, n === 2 ? "signal received again; stopping agents now" : "killing agents");
      forward(n === 2 ? "SIGTERM" : "SIGKILL");
    });
    stopping = true;
    log.info({ signal, agents: children.length }, "stopping agents, then the coordinator");
    forward("SIGTERM");
    await Promise.all(children.map((c) => c.exited));
    await coordinator.close();
    process.exit(0);
  });
}

/** Registers coordinator, agent and dev. */
export function registerRunCommands(program: Command, deps: CliDeps): void {
  registerCoordinator(program);
  registerAgent(program);
  registerDev(program, deps);
}
