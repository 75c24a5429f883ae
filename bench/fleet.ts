// Starts the benchmark's fleet — one coordinator and N agents from the built CLI, as real child processes on
// 127.0.0.1 port 0 — and always takes it down again. Each child's stdout and stderr go to a file under
// os.tmpdir() for diagnosis. Never talks to tasks: scenarios do, through the public API.
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { createClients, type EdgeplaneClients } from "../cli/client.js";
import { NodeState } from "../gen/edgeplane/v1/types_pb.js";
import type { BenchAgent } from "./scenario.js";

/** The built CLI next to this file's build output (dist/bench/fleet.js → dist/cli/main.js). */
const CLI = resolve(import.meta.dirname, "../cli/main.js");

/** How long a child gets to come up (ready file, or READY in ListNodes). */
const START_TIMEOUT_MS = 30_000;
/** How long a child gets to exit after SIGTERM before it is killed. */
const STOP_GRACE_MS = 3_000;
/** Linux clock ticks per second (USER_HZ) in /proc/<pid>/stat; 100 on every mainstream kernel. */
const CLOCK_TICKS = 100;

export interface FleetPlan {
  agents: number;
  workers: number;
  logLevel: string;
  /** Cluster every agent joins. */
  clusterId: string;
}

/** One child process and the file holding its output. */
export interface Child {
  name: string;
  proc: ChildProcess;
  logFile: string;
  exited: Promise<void>;
}

export class BenchFleet {
  /** Directory holding ready files and every child's log. Kept after the run. */
  readonly dir = mkdtempSync(join(tmpdir(), "edgeplane-bench-"));
  readonly children: Child[] = [];
  readonly agents: BenchAgent[] = [];
  address = "";
  clients!: EdgeplaneClients;
  private stopping: Promise<void> | undefined;

  constructor(private readonly plan: FleetPlan) {}

  /** Starts the coordinator, then the agents, and waits until ListNodes shows every agent READY. */
  async start(signal: AbortSignal): Promise<void> {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first (npm run bench does it)`);
    const ready = join(this.dir, "coordinator.ready");
    const coordinator = this.spawn("coordinator", [
      "coordinator", "--listen", "127.0.0.1:0", "--ready-file", ready, "--log-level", this.plan.logLevel,
    ]);
    this.address = await this.waitUntil("the coordinator's ready file", coordinator, signal, () =>
      existsSync(ready) ? readFileSync(ready, "utf8").trim() || undefined : undefined,
    );
    this.clients = createClients(this.address);

    for (let i = 1; i <= this.plan.agents; i++) {
      const agent: BenchAgent = { nodeId: `bench-a${i}`, clusterId: this.plan.clusterId, deviceIds: [`sensor-${i}`] };
      this.agents.push(agent);
      this.spawn(agent.nodeId, [
        "agent", "--coordinator", this.address, "--cluster", agent.clusterId, "--node-id", agent.nodeId,
        "--devices", agent.deviceIds.join(","), "--workers", String(this.plan.workers), "--log-level", this.plan.logLevel,
      ], true);
    }
    const want = new Set(this.agents.map((a) => a.nodeId));
    await this.waitUntil(`all ${want.size} agents READY in ListNodes`, undefined, signal, async () => {
      const { nodes } = await this.clients.clusters.listNodes({}, { timeoutMs: 2_000, signal });
      const ready = nodes.filter((n) => want.has(n.id) && n.state === NodeState.READY);
      return ready.length === want.size ? true : undefined;
    });
  }

  private spawn(name: string, args: string[], watchParent = false): Child {
    const logFile = join(this.dir, `${name}.log`);
    const fd = openSync(logFile, "a");
    // An IPC channel lets an agent notice that the benchmark died without cleaning up (the agent CLI watches it).
    const stdio = watchParent ? ["ignore", fd, fd, "ipc"] as const : ["ignore", fd, fd] as const;
    // Run in the benchmark's directory, so relative defaults (e.g. an agent's ./data result journal) land there.
    const proc = spawn(process.execPath, [CLI, ...args], { cwd: this.dir, stdio: [...stdio] });
    closeSync(fd);
    proc.channel?.unref();
    const exited = new Promise<void>((res) => {
      proc.once("exit", () => res());
      proc.once("error", () => res());
    });
    const child = { name, proc, logFile, exited };
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

  /**
   * CPU seconds (user + system, all threads) each child has used so far, from /proc/<pid>/stat; a child whose
   * figure cannot be read (not Linux, exited) is left out.
   */
  cpuSeconds(): Map<string, number> {
    const out = new Map<string, number>();
    for (const c of this.children) {
      if (c.proc.pid === undefined) continue;
      try {
        const stat = readFileSync(`/proc/${c.proc.pid}/stat`, "utf8");
        // Fields after "pid (comm)": state is field 3, utime 14 and stime 15, in clock ticks.
        const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        out.set(c.name, (Number(f[11]) + Number(f[12])) / CLOCK_TICKS);
      } catch {
        // not Linux, or already gone
      }
    }
    return out;
  }

  /** The coordinator's task store, as its start-up log tells (builds without a store option log none). */
  storeDescription(): string {
    const c = this.children.find((x) => x.name === "coordinator");
    const line = c ? readLog(c.logFile).split("\n").find((l) => l.includes('"restored state from the store"')) : undefined;
    if (!line) return "in-memory task store (the coordinator logged no store)";
    const path = /"path":"([^"]*)"/.exec(line)?.[1];
    return `SQLite task store${path ? ` (${path}, under the run's directory)` : ""}`;
  }

  /** Children that exited while they should be running, with the end of their logs. */
  deadChildren(): string[] {
    return this.children
      .filter((c) => c.proc.exitCode !== null || c.proc.signalCode !== null)
      .map((c) => `${c.name} exited unexpectedly (${c.proc.exitCode ?? c.proc.signalCode}); log ${c.logFile}:\n${tail(c.logFile)}`);
  }

  /** SIGTERM to every child, SIGKILL to those still up after the grace. Safe to call more than once. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      // Agents first, so the coordinator does not log them as lost while it is still up.
      const agents = this.children.filter((c) => c.name !== "coordinator");
      const rest = this.children.filter((c) => c.name === "coordinator");
      for (const group of [agents, rest]) {
        for (const c of group) signalChild(c, "SIGTERM");
        await Promise.race([Promise.all(group.map((c) => c.exited)), sleep(STOP_GRACE_MS)]);
        for (const c of group) signalChild(c, "SIGKILL");
      }
      await Promise.race([Promise.all(this.children.map((c) => c.exited)), sleep(STOP_GRACE_MS)]);
    })();
    return this.stopping;
  }

  /** Last resort from a synchronous `exit` handler: SIGKILL whatever is still running. */
  killNow(): void {
    for (const c of this.children) signalChild(c, "SIGKILL");
  }
}

function signalChild(c: Child, signal: NodeJS.Signals): void {
  if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill(signal);
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
    const level = m ? Number(m[1]) : line.trim() === "" ? 0 : 50; // a non-JSON line is a crash or a stack trace
    if (level < 40) continue;
    if (level >= 50) errors++;
    else warnings++;
    if (samples.length < keep) samples.push(`${c.name}: ${line.length > 400 ? `${line.slice(0, 400)}…` : line}`);
  }
  return { warnings, errors, samples };
}
