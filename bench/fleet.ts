// Starts one benchmark fleet — a coordinator and N agents from the built CLI, as real child processes on 127.0.0.1
// port 0 — and always takes it down again; makes every client of it (the API clients, the stream of a stand-in
// agent). The only place that knows how a fleet is secured: see SECURITY below. Never talks to tasks.
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport, type GrpcTransportOptions } from "@connectrpc/connect-node";
import { coordinatorBaseUrl, createClients, type EdgeplaneClients } from "../cli/client.js";
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

/** How the fleet's processes and clients talk: `insecure` = plaintext, what main has today. */
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
// SECURITY: everything that differs between a plaintext and a secured fleet. main is plaintext and has no security
// flags yet; when TLS becomes the default, `insecure` must pass the coordinator's explicit plaintext flag
// (`--insecure`), and `secure` must (1) let the coordinator create its CA in its data directory, (2) create an admin
// token and a join token for the cluster (`edgeplane token create …` against the coordinator, or in-process), (3)
// give agents `--join-token`, (4) give clients an https:// URL, the CA and an `authorization: Bearer` interceptor,
// and (5) enrol stand-in agents (the idle-agent scenario) through the enrolment RPC before they connect.
// ---------------------------------------------------------------------------------------------------------------

/** Throws, saying what is missing, when this build of the benchmark cannot start fleets in that mode (checked at start). */
export function checkFleetSecurity(security: FleetSecurity): void {
  if (security === "secure") throw new Error("--secure: the benchmark cannot start a secured fleet yet (wire it in bench/fleet.ts, SECURITY)");
}

/** Extra coordinator flags for the fleet's security mode. */
function coordinatorSecurityArgs(plan: FleetPlan): string[] {
  switch (plan.security) {
    case "insecure":
      return [];
    case "secure":
      throw new Error("--secure: the benchmark cannot start a secured fleet yet (wire it in bench/fleet.ts, SECURITY)");
  }
}

/** Extra agent flags for the fleet's security mode. */
function agentSecurityArgs(plan: FleetPlan, _nodeId: string): string[] {
  switch (plan.security) {
    case "insecure":
      return [];
    case "secure":
      throw new Error("--secure: the benchmark cannot start a secured fleet yet (wire it in bench/fleet.ts, SECURITY)");
  }
}

/** The base URL and transport options every client of the fleet uses (API clients and stand-in agents). */
function clientTransport(plan: FleetPlan, address: string): { baseUrl: string; options: Partial<Omit<GrpcTransportOptions, "baseUrl">> } {
  switch (plan.security) {
    case "insecure":
      return { baseUrl: coordinatorBaseUrl(address), options: {} };
    case "secure":
      throw new Error("--secure: the benchmark cannot make secured clients yet (wire it in bench/fleet.ts, SECURITY)");
  }
}

// ---------------------------------------------------------------------------------------------------------------

export class BenchFleet {
  /** Directory holding the ready file, every child's log and data (the coordinator's SQLite database), profiles. */
  readonly dir: string;
  readonly children: Child[] = [];
  readonly agents: BenchAgent[] = [];
  address = "";
  /** API clients on the fleet's default connection. */
  clients!: EdgeplaneClients;
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
      "coordinator", "--listen", "127.0.0.1:0", "--ready-file", ready, "--log-level", this.plan.logLevel,
      ...coordinatorSecurityArgs(this.plan),
    ]);
    this.address = await this.waitUntil("the coordinator's ready file", coordinator, signal, () =>
      existsSync(ready) ? readFileSync(ready, "utf8").trim() || undefined : undefined,
    );
    this.clients = this.newClients();

    for (let i = 1; i <= this.plan.agents; i++) {
      const agent: BenchAgent = { nodeId: `bench-a${i}`, clusterId: this.plan.clusterId, deviceIds: [`sensor-${i}`] };
      this.agents.push(agent);
      this.spawn(agent.nodeId, "agent", [
        "agent", "--coordinator", this.address, "--cluster", agent.clusterId, "--node-id", agent.nodeId,
        "--devices", agent.deviceIds.join(","), "--workers", String(this.plan.workers), "--log-level", this.plan.logLevel,
        ...agentSecurityArgs(this.plan, agent.nodeId),
      ], true);
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
    const t = clientTransport(this.plan, this.address);
    return createClients(t.baseUrl, t.options);
  }

  /** An AgentService client on a connection of its own, for a stand-in agent (one connection per agent, as real ones). */
  agentServiceClient(): Client<typeof AgentService> {
    const t = clientTransport(this.plan, this.address);
    return createClient(AgentService, createGrpcTransport({ ...t.options, baseUrl: t.baseUrl }));
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
    const stdio = watchParent ? ["ignore", fd, fd, "ipc"] as const : ["ignore", fd, fd] as const;
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
    const line = c ? readLog(c.logFile).split("\n").find((l) => l.includes('"restored state from the store"')) : undefined;
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
  let warnings = 0, errors = 0;
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
