// Starts real coordinator and agent processes (the built CLI) on port 0 for integration tests, and tears them
// down. Everything crosses real sockets and process boundaries. Secure by default, as shipped: the coordinator
// serves TLS, the clients use its bootstrap admin token, agents enrol with join tokens; `{ insecure: true }` opts out.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { create, fromJson, type JsonValue } from "@bufbuild/protobuf";
import { timestampFromMs, ValueSchema } from "@bufbuild/protobuf/wkt";
import { createClients, type ClientSecurity, type EdgeplaneClients } from "../../cli/client.js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { TokenKind, type CreateTokenRequestSchema } from "../../gen/edgeplane/v1/auth_pb.js";
import { durationFromMillis } from "../../lib/duration.js";
import { NodeState, Priority, ProcessingMode, TaskState, type Task } from "../../gen/edgeplane/v1/types_pb.js";
import { SubmitTaskRequestSchema, type SubmitTaskRequest } from "../../gen/edgeplane/v1/task_pb.js";

export const ROOT = resolve(import.meta.dirname, "../..");
export const CLI = join(ROOT, "dist/cli/main.js");

export interface Proc {
  proc: ChildProcess;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  kill(signal?: NodeJS.Signals): void;
  exited: Promise<number | null>;
}

export function run(args: string[], env: Record<string, string> = {}): Proc {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build (npm test does it)`);
  const proc = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  proc.stdout!.on("data", (d) => (out += d));
  proc.stderr!.on("data", (d) => (out += d));
  const exited = new Promise<number | null>((res) => proc.on("exit", (code) => res(code)));
  return {
    proc,
    output: () => out,
    kill: (s = "SIGKILL") => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(s);
    },
    exited,
  };
}

export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 20_000, everyMs = 25): Promise<T> {
  const end = Date.now() + timeoutMs;
  let lastErr: unknown;
  while (Date.now() < end) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v as T;
    } catch (err) {
      lastErr = err;
    }
    await sleep(everyMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? `: ${(lastErr as Error).message}` : ""}`);
}

export interface SubmitInit {
  handler: string;
  input?: JsonValue;
  priority?: Priority;
  mode?: ProcessingMode;
  name?: string;
  deviceId?: string;
  requiredMemoryBytes?: bigint;
  requiredCpuMillis?: number;
  maxRetries?: number;
  clusterId?: string;
  deadlineMs?: number;
  /** estimatedComputeTime, in ms. */
  estimatedMs?: number;
  idempotencyKey?: string;
}

export function submitRequest(init: SubmitInit): SubmitTaskRequest {
  return create(SubmitTaskRequestSchema, {
    idempotencyKey: init.idempotencyKey ?? "",
    task: {
      name: init.name ?? "",
      handler: init.handler,
      deviceId: init.deviceId ?? "",
      priority: init.priority ?? Priority.NORMAL,
      processingMode: init.mode ?? ProcessingMode.LOCAL,
      input: init.input === undefined ? undefined : fromJson(ValueSchema, init.input),
      requiredMemoryBytes: init.requiredMemoryBytes,
      requiredCpuMillis: init.requiredCpuMillis,
      maxRetries: init.maxRetries,
      clusterId: init.clusterId ?? "",
      deadline: init.deadlineMs === undefined ? undefined : timestampFromMs(init.deadlineMs),
      estimatedComputeTime: init.estimatedMs === undefined ? undefined : durationFromMillis(init.estimatedMs),
    },
  });
}

export interface FleetOptions {
  /** Plaintext and no authentication (`--insecure` on coordinator, agents and CLI). Default false: the secure default. */
  insecure?: boolean;
}

export class Fleet {
  readonly dir = mkdtempSync(join(tmpdir(), "edgeplane-test-"));
  readonly procs: Proc[] = [];
  address = "";
  coordinator: Proc | undefined;
  clients!: EdgeplaneClients;
  /** The coordinator's bootstrap admin token (empty when insecure). */
  adminToken = "";
  /** The coordinator's CA certificate, PEM (empty when insecure). */
  caPem = "";
  private agentSeq = 0;
  private readonly joinTokens = new Map<string, string>();

  constructor(readonly opts: FleetOptions = {}) {}

  get coordinatorDir(): string {
    return join(this.dir, "coordinator");
  }

  async startCoordinator(extra: string[] = []): Promise<string> {
    const ready = join(this.dir, `ready-${Date.now()}`);
    const p = run([
      "coordinator",
      "--listen",
      this.address || "127.0.0.1:0",
      "--ready-file",
      ready,
      "--log-level",
      "info",
      "--data-dir",
      this.coordinatorDir,
      ...(this.opts.insecure ? ["--insecure"] : []),
      ...extra,
    ]);
    this.procs.push(p);
    this.coordinator = p;
    this.address = await waitFor("coordinator ready file", () => {
      if (p.proc.exitCode !== null) throw new Error(`coordinator exited: ${p.output()}`);
      return existsSync(ready) ? readFileSync(ready, "utf8").trim() || undefined : undefined;
    });
    if (!this.opts.insecure) {
      this.adminToken = readFileSync(join(this.coordinatorDir, "admin.token"), "utf8").trim();
      this.caPem = readFileSync(join(this.coordinatorDir, "ca.crt"), "utf8");
    }
    this.clients = this.connect({ token: this.adminToken });
    return this.address;
  }

  /** Clients with other credentials (trusting the coordinator's CA unless `security` says otherwise). */
  connect(security: ClientSecurity = {}): EdgeplaneClients {
    return createClients(this.address, this.opts.insecure ? { insecure: true, ...security } : { caPem: this.caPem, ...security });
  }

  /** Creates a token with the admin clients; returns its text. */
  async createToken(init: MessageInitShape<typeof CreateTokenRequestSchema>): Promise<string> {
    return (await this.clients.tokens.createToken(init)).secret;
  }

  /** A join token for a cluster (one per cluster, unlimited uses), for the agents this fleet starts. */
  async joinToken(cluster: string): Promise<string> {
    let t = this.joinTokens.get(cluster);
    if (!t) {
      t = await this.createToken({ kind: TokenKind.JOIN, clusters: [cluster], description: "test fleet" });
      this.joinTokens.set(cluster, t);
    }
    return t;
  }

  /** Starts an agent process and waits until the coordinator lists it ready. */
  async startAgent(
    cluster: string,
    extra: string[] = [],
    opts: { nodeId?: string; wait?: boolean; env?: Record<string, string> } = {},
  ): Promise<{ nodeId: string; p: Proc }> {
    const nodeId = opts.nodeId ?? `${cluster}-n${++this.agentSeq}`;
    const dataDir = join(this.dir, `agent-${nodeId}`);
    // The join token goes in the environment, not argv (where `ps` would show it).
    const env: Record<string, string> = this.opts.insecure ? {} : { EDGEPLANE_JOIN_TOKEN: await this.joinToken(cluster) };
    const p = run(
      [
        "agent",
        "--coordinator",
        this.address,
        "--cluster",
        cluster,
        "--node-id",
        nodeId,
        "--log-level",
        "info",
        "--data-dir",
        dataDir,
        ...(this.opts.insecure ? ["--insecure"] : []),
        ...extra,
      ],
      { ...env, ...opts.env },
    );
    this.procs.push(p);
    if (opts.wait !== false) await this.waitNodeState(nodeId, NodeState.READY, p);
    return { nodeId, p };
  }

  async waitNodeState(nodeId: string, state: NodeState, p?: Proc, timeoutMs = 20_000): Promise<void> {
    await waitFor(
      `node ${nodeId} in state ${NodeState[state]}`,
      async () => {
        if (p && p.proc.exitCode !== null) throw new Error(`agent ${nodeId} exited: ${p.output()}`);
        const { nodes } = await this.clients.clusters.listNodes({});
        return nodes.some((n) => n.id === nodeId && n.state === state);
      },
      timeoutMs,
    );
  }

  /** Runs the CLI to completion. */
  async cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; out: string }> {
    const credentials: Record<string, string> = this.opts.insecure
      ? { EDGEPLANE_INSECURE: "1" }
      : { EDGEPLANE_TOKEN: this.adminToken, EDGEPLANE_CA: join(this.coordinatorDir, "ca.crt") };
    const p = run(args, { EDGEPLANE_ADDR: this.address, ...credentials, ...env });
    const code = await p.exited;
    return { code, out: p.output() };
  }

  async submit(init: SubmitInit): Promise<string> {
    return (await this.clients.tasks.submitTask(submitRequest(init))).taskId;
  }

  /** Watches a task to its terminal state and returns it. */
  async finish(taskId: string, timeoutMs = 30_000): Promise<Task> {
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), timeoutMs);
    try {
      let last: Task | undefined;
      for await (const r of this.clients.tasks.watchTask({ taskId }, { signal: ac.signal })) last = r.task;
      if (!last) throw new Error(`watch of ${taskId} returned nothing`);
      return last;
    } finally {
      clearTimeout(timer);
    }
  }

  async stop(): Promise<void> {
    for (const p of this.procs) p.kill("SIGKILL");
    await Promise.all(this.procs.map((p) => Promise.race([p.exited, sleep(3000)])));
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export const isTerminalState = (s: TaskState) => s === TaskState.SUCCEEDED || s === TaskState.FAILED || s === TaskState.CANCELLED || s === TaskState.EXPIRED;
