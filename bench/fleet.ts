// Starts one benchmark fleet — a coordinator and N agents from the built CLI, as real child processes on 127.0.0.1
// port 0 — and always takes it down again; makes every client of it (the API clients, the stream of a stand-in
// agent). The only place that knows how a fleet is secured: see SECURITY below. Never talks to tasks.
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { enrol, type Enrolled } from "../agent/identity/enrol.js";
import { coordinatorBaseUrl, createClients, type ClientOptions, type EdgeplaneClients } from "../cli/client.js";
import { TokenKind } from "../gen/edgeplane/v1/auth_pb.js";
import { AgentService } from "../gen/edgeplane/v1/agent_pb.js";
import { NodeState } from "../gen/edgeplane/v1/types_pb.js";
import { processCpuSeconds, vmRssKb } from "./proc.js";
import type { BenchAgent } from "./scenario.js";

/** The built CLI next to this file's build output (dist/bench/fleet.js → dist/cli/main.js). */
const CLI = resolve(import.meta.dirname, "../cli/main.js");

/** How long a child gets to come up (ready file, or READY in ListNodes). */
const START_TIMEOUT_MS = 30_000;
/** How long a child gets to exit after SIGTERM before it is killed (a profiled child writes its profile on exit). */
const STOP_GRACE_MS = 5_000;

/** How the fleet's processes and clients talk: `secure` = the product default (TLS, tokens), `insecure` = plaintext. */
export type FleetSecurity = "insecure" | "secure";

/** How big a fleet is. */
export interface FleetShape {
  /** Agents, all in one cluster; agent i is `bench-a<i>` serving device `sensor-<i>`. 0 = the coordinator alone. */
  agents: number;
  /** Worker threads per agent (the agent's `--workers`): tasks each agent runs at once. */
  workers: number;
}

export interface FleetPlan extends FleetShape {
  /** Names the fleet in its directory and in reports, e.g. `throughput-4x8-edgeplane-r1`. */
  label: string;
  /** Directory the fleet makes its own directory in (the run's directory). */
  parentDir: string;
  logLevel: string;
  /** Cluster every agent joins. */
  clusterId: string;
  security: FleetSecurity;
  /** Start every child with `--cpu-prof` (profiles written into the fleet's `profiles/<child>/` on exit). Default false. */
  profile?: boolean;
}

/** One child process and the file holding its output. */
export interface Child {
  name: string;
  role: "coordinator" | "agent";
  proc: ChildProcess;
  logFile: string;
  /** Where its --cpu-prof output goes, when profiled. */
  profileDir: string | undefined;
  exited: Promise<void>;
  /** CPU seconds read just before it was stopped (after exit /proc has nothing). */
  finalCpuSeconds?: number;
}

// ---------------------------------------------------------------------------------------------------------------
// SECURITY: everything that differs between a plaintext and a secured fleet. `insecure` passes the coordinator's
// explicit plaintext flag (`--insecure`, loopback only) to the coordinator and every agent. `secure` is the product's
// default: the coordinator creates its CA and a bootstrap admin token in its data directory; the fleet makes a join
// token per cluster with it; agents enrol with `--join-token` and then use mTLS; clients use TLS with the CA and the
// admin token; stand-in agents enrol through the enrolment RPC and connect with their node certificate. The
// per-token submission rate quota is lifted (`--quota-submit-rate 0`): the benchmark is one client pushing far more
// than the default 2,000/s an operator would give one token.
// ---------------------------------------------------------------------------------------------------------------

/** The secured fleet's credentials, read and made once the coordinator is up. */
interface Credentials {
  adminToken: string;
  caPem: string;
  caFile: string;
  joinTokens: Map<string, string>;
}

/** Extra coordinator flags for the fleet's security mode. */
function coordinatorSecurityArgs(plan: FleetPlan): string[] {
  switch (plan.security) {
    case "insecure":
      return ["--insecure"];
    case "secure":
      return ["--quota-submit-rate", "0"];
  }
}

/** Extra agent flags for the fleet's security mode. */
function agentSecurityArgs(plan: FleetPlan, creds: Credentials | undefined, clusterId: string): string[] {
  switch (plan.security) {
    case "insecure":
      return ["--insecure"];
    case "secure":
      return ["--join-token", creds!.joinTokens.get(clusterId)!, "--ca-cert", creds!.caFile];
  }
}

/** The client options every API client of the fleet uses. */
function clientOptions(plan: FleetPlan, creds: Credentials | undefined): ClientOptions {
  switch (plan.security) {
    case "insecure":
      return { insecure: true };
    case "secure":
      return { token: creds!.adminToken, caPem: creds!.caPem };
  }
}

// ---------------------------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------------------------

export class BenchFleet {
  /** Directory holding the ready file, every child's log and data (the coordinator's SQLite database), profiles. */
  readonly dir: string;
  readonly children: Child[] = [];
  readonly agents: BenchAgent[] = [];
  address = "";
  /** API clients on the fleet's default connection. */
  clients!: EdgeplaneClients;
  /** A secured fleet's admin token, CA and join tokens (undefined for an insecure one). */
  private creds: Credentials | undefined;
  /** Stand-in agents' node identities, by node id (enrolled once). */
  private readonly identities = new Map<string, Enrolled>();
  private stopping: Promise<void> | undefined;

  constructor(readonly plan: FleetPlan) {
    mkdirSync(plan.parentDir, { recursive: true });
    this.dir = mkdtempSync(join(plan.parentDir, `${plan.label.replace(/[^A-Za-z0-9._-]/g, "_")}-`));
  }

  get label(): string {
    return this.plan.label;
  }

  /** Starts the coordinator, then the agents, and waits until ListNodes shows every agent READY. */
  async start(signal: AbortSignal): Promise<void> {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first (npm run bench does it)`);
    const ready = join(this.dir, "coordinator.ready");
    const coordinator = this.spawn("coordinator", "coordinator", [
      "coordinator",
      "--listen",
      "127.0.0.1:0",
      "--ready-file",
      ready,
      "--log-level",
      this.plan.logLevel,
      ...coordinatorSecurityArgs(this.plan),
    ]);
    this.address = await this.waitUntil("the coordinator's ready file", coordinator, signal, () =>
      existsSync(ready) ? readFileSync(ready, "utf8").trim() || undefined : undefined,
    );
    if (this.plan.security === "secure") {
      // Written by the coordinator before its ready file.
      const dataDir = join(this.dir, "data");
      this.creds = {
        adminToken: readFileSync(join(dataDir, "admin.token"), "utf8").trim(),
        caPem: readFileSync(join(dataDir, "ca.crt"), "utf8"),
        caFile: join(dataDir, "ca.crt"),
        joinTokens: new Map(),
      };
    }
    this.clients = this.newClients();
    await this.joinToken(this.plan.clusterId);

    for (let i = 1; i <= this.plan.agents; i++) {
      const agent: BenchAgent = { nodeId: `bench-a${i}`, clusterId: this.plan.clusterId, deviceIds: [`sensor-${i}`] };
      this.agents.push(agent);
      this.spawn(
        agent.nodeId,
        "agent",
        [
          "agent",
          "--coordinator",
          this.address,
          "--cluster",
          agent.clusterId,
          "--node-id",
          agent.nodeId,
          "--devices",
          agent.deviceIds.join(","),
          "--workers",
          String(this.plan.workers),
          "--log-level",
          this.plan.logLevel,
          ...agentSecurityArgs(this.plan, this.creds, agent.clusterId),
        ],
        true,
      );
    }
    const want = new Set(this.agents.map((a) => a.nodeId));
    await this.waitUntil(`all ${want.size} agents READY in ListNodes`, undefined, signal, async () => {
      const { nodes } = await this.clients.clusters.listNodes({}, { timeoutMs: 2_000, signal });
      const ready = nodes.filter((n) => want.has(n.id) && n.state === NodeState.READY);
      return ready.length === want.size ? true : undefined;
    });
  }

  /** API clients on a connection of their own (one HTTP/2 connection per call), as a separate client process has. */
  newClients(): EdgeplaneClients {
    return createClients(this.address, clientOptions(this.plan, this.creds));
  }

  /** A join token for `clusterId` (made once per cluster); "" for an insecure fleet. */
  async joinToken(clusterId: string): Promise<string> {
    if (!this.creds) return "";
    let t = this.creds.joinTokens.get(clusterId);
    if (!t) {
      t = (await this.clients.tokens.createToken({ kind: TokenKind.JOIN, clusters: [clusterId], description: "bench fleet" })).secret;
      this.creds.joinTokens.set(clusterId, t);
    }
    return t;
  }

  /**
   * An AgentService client on a connection of its own, for a stand-in agent (one connection per agent, as real
   * ones); in a secured fleet it enrols as `nodeId` of `clusterId` first and connects with that node certificate.
   */
  async agentServiceClient(nodeId: string, clusterId: string): Promise<Client<typeof AgentService>> {
    if (!this.creds) return createClient(AgentService, createGrpcTransport({ baseUrl: coordinatorBaseUrl(this.address, true) }));
    const id = this.identities.get(nodeId) ?? (await this.enrol(nodeId, clusterId));
    return createClient(
      AgentService,
      createGrpcTransport({
        baseUrl: coordinatorBaseUrl(this.address),
        nodeOptions: { ca: id.caPem, cert: id.certPem, key: id.keyPem, minVersion: "TLSv1.2" },
      }),
    );
  }

  /**
   * Enrols stand-in agents ahead of their streams (a secured fleet; nothing to do for an insecure one), so a
   * measurement of what their streams cost can leave the one-off enrolment out.
   */
  async enrolStandIns(nodes: readonly { nodeId: string; clusterId: string }[]): Promise<void> {
    if (!this.creds) return;
    for (const n of nodes) if (!this.identities.has(n.nodeId)) await this.enrol(n.nodeId, n.clusterId);
  }

  private async enrol(nodeId: string, clusterId: string): Promise<Enrolled> {
    const id = await enrol({ coordinator: this.address, joinToken: await this.joinToken(clusterId), nodeId, clusterId, caPem: this.creds!.caPem });
    this.identities.set(nodeId, id);
    return id;
  }

  /** The child process named `name` (`coordinator`, `bench-a1`, …). */
  child(name: string): Child | undefined {
    return this.children.find((c) => c.name === name);
  }

  /** The coordinator's resident memory now, in KiB (NaN if it cannot be read). */
  coordinatorRssKb(): number {
    return vmRssKb(this.child("coordinator")?.proc.pid);
  }

  private spawn(name: string, role: Child["role"], args: string[], watchParent = false): Child {
    const logFile = join(this.dir, `${name}.log`);
    const fd = openSync(logFile, "a");
    // An IPC channel lets an agent notice that the benchmark died without cleaning up (the agent CLI watches it).
    const stdio = watchParent ? (["ignore", fd, fd, "ipc"] as const) : (["ignore", fd, fd] as const);
    const profileDir = this.plan.profile ? join(this.dir, "profiles", name) : undefined;
    if (profileDir) mkdirSync(profileDir, { recursive: true });
    const nodeArgs = profileDir ? ["--cpu-prof", "--cpu-prof-dir", profileDir] : [];
    // Run in the fleet's directory, so relative defaults (the coordinator's ./data, an agent's journal) land there.
    const proc = spawn(process.execPath, [...nodeArgs, CLI, ...args], { cwd: this.dir, stdio: [...stdio] });
    closeSync(fd);
    proc.channel?.unref();
    const exited = new Promise<void>((res) => {
      proc.once("exit", () => res());
      proc.once("error", () => res());
    });
    const child: Child = { name, role, proc, logFile, profileDir, exited };
    this.children.push(child);
    return child;
  }

  /** Polls `probe` every 50 ms until it returns a value; fails if `child` exits, on abort, or after the start timeout. */
  private async waitUntil<T>(what: string, child: Child | undefined, signal: AbortSignal, probe: () => T | undefined | Promise<T | undefined>): Promise<T> {
    const end = Date.now() + START_TIMEOUT_MS;
    let lastErr: unknown;
    while (Date.now() < end) {
      signal.throwIfAborted();
      const dead = child ? [child] : this.children;
      for (const c of dead) {
        if (c.proc.exitCode !== null || c.proc.signalCode !== null) {
          throw new Error(`${c.name} exited (${c.proc.exitCode ?? c.proc.signalCode}) while waiting for ${what}; log ${c.logFile}:\n${tail(c.logFile)}`);
        }
      }
      try {
        const v = await probe();
        if (v !== undefined) return v;
      } catch (err) {
        lastErr = err;
      }
      await sleep(50);
    }
    throw new Error(`timed out after ${START_TIMEOUT_MS} ms waiting for ${what}${lastErr ? ` (last error: ${(lastErr as Error).message})` : ""}`);
  }

  /** CPU seconds each child has used so far (its last reading once stopped); NaN where it cannot be read. */
  cpuSeconds(): Map<string, number> {
    const out = new Map<string, number>();
    for (const c of this.children) out.set(c.name, c.finalCpuSeconds ?? processCpuSeconds(c.proc.pid));
    return out;
  }

  /** The coordinator's task store, as its start-up log tells (builds without a store option log none). */
  storeDescription(): string {
    const c = this.child("coordinator");
    const line = c
      ? readLog(c.logFile)
          .split("\n")
          .find((l) => l.includes('"restored state from the store"'))
      : undefined;
    if (!line) return "in-memory task store (the coordinator logged no store)";
    const path = /"path":"([^"]*)"/.exec(line)?.[1];
    return `SQLite task store${path ? ` (${path}, in the fleet's directory)` : ""}`;
  }

  /** Children that exited while they should be running, with the end of their logs. */
  deadChildren(): string[] {
    if (this.stopping) return [];
    return this.children
      .filter((c) => c.proc.exitCode !== null || c.proc.signalCode !== null)
      .map((c) => `${this.label}: ${c.name} exited unexpectedly (${c.proc.exitCode ?? c.proc.signalCode}); log ${c.logFile}:\n${tail(c.logFile)}`);
  }

  /** SIGTERM to every child, SIGKILL to those still up after the grace. Safe to call more than once. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      for (const c of this.children) c.finalCpuSeconds = processCpuSeconds(c.proc.pid);
      // Agents first, so the coordinator does not log them as lost while it is still up.
      const agents = this.children.filter((c) => c.role === "agent");
      const rest = this.children.filter((c) => c.role === "coordinator");
      for (const group of [agents, rest]) {
        for (const c of group) signalChild(c, "SIGTERM");
        await Promise.race([Promise.all(group.map((c) => c.exited)), sleep(STOP_GRACE_MS)]);
        for (const c of group) signalChild(c, "SIGKILL");
      }
      await Promise.race([Promise.all(this.children.map((c) => c.exited)), sleep(STOP_GRACE_MS)]);
    })();
    return this.stopping;
  }

  /** The main-thread CPU profile a stopped child wrote (`--cpu-prof`), or undefined. */
  profileOf(name: string): string | undefined {
    const c = this.child(name);
    if (!c?.profileDir || c.proc.pid === undefined) return undefined;
    // node names them CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile; the main thread is thread 0.
    const f = readdirSafe(c.profileDir).find((n) => n.endsWith(".cpuprofile") && n.includes(`.${c.proc.pid}.0.`));
    return f ? join(c.profileDir, f) : undefined;
  }

  /** Last resort from a synchronous `exit` handler: SIGKILL whatever is still running. */
  killNow(): void {
    for (const c of this.children) signalChild(c, "SIGKILL");
  }
}

function signalChild(c: Child, signal: NodeJS.Signals): void {
  if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill(signal);
}

function readdirSafe(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function readLog(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return "";
  }
}

/** The last lines of a log file, for error messages. */
export function tail(file: string, lines = 15): string {
  return readLog(file).trimEnd().split("\n").slice(-lines).join("\n") || "(no log)";
}

/** Counts of pino warn (40) and error/fatal (≥ 50) lines in a child's log, with the first few of them. */
export function logProblems(c: Child, keep = 5): { warnings: number; errors: number; samples: string[] } {
  let warnings = 0,
    errors = 0;
  const samples: string[] = [];
  for (const line of readLog(c.logFile).split("\n")) {
    const m = /"level":(\d+)/.exec(line);
    // A non-JSON line is a crash or a stack trace, except Node's own process warnings (and their hint line).
    const nodeWarning = /^\(node:\d+\) \w*Warning: |^\(Use `node --trace-warnings/.test(line);
    const level = m ? Number(m[1]) : line.trim() === "" ? 0 : nodeWarning ? 40 : 50;
    if (level < 40) continue;
    if (level >= 50) errors++;
    else warnings++;
    if (samples.length < keep) samples.push(`${c.name}: ${line.length > 400 ? `${line.slice(0, 400)}…` : line}`);
  }
  return { warnings, errors, samples };
}
