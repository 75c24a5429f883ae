// The command tree end to end with fake clients (no sockets): flags reach the API as the right requests,
// responses print as tables or JSON, failures exit with the documented codes and messages.
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Command } from "commander";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { EdgeplaneClients } from "../../cli/client.js";
import type { CliDeps } from "../../cli/context.js";
import { reportError } from "../../cli/errors.js";
import { buildProgram } from "../../cli/program.js";
import { agentConfigFromFlags, coordinatorConfigFromFlags, devAgentArgs, planDevAgents, renderDevBanner } from "../../cli/run.js";
import { DEFAULT_COORDINATOR_CONFIG } from "../../coordinator/config.js";
import { ListTasksResponseSchema, SubmitTaskResponseSchema, type ListTasksRequest, type SubmitTaskRequest } from "../../gen/edgeplane/v1/task_pb.js";
import { Priority, ProcessingMode, TaskSchema, TaskState, type Task } from "../../gen/edgeplane/v1/types_pb.js";

const NOW = new Date("2030-01-01T00:00:00.000Z");

type Fakes = { tasks?: Record<string, unknown>; clusters?: Record<string, unknown> };

function harness(fakes: Fakes = {}) {
  let out = "";
  let err = "";
  const addresses: string[] = [];
  const deps: CliDeps = {
    io: { write: (t) => void (out += t), writeError: (t) => void (err += t) },
    connect: (address) => {
      addresses.push(address);
      return { tasks: fakes.tasks ?? {}, clusters: fakes.clusters ?? {} } as unknown as EdgeplaneClients;
    },
    now: () => NOW,
  };
  const run = async (...args: string[]): Promise<number> => {
    try {
      await buildProgram(deps).parseAsync(["node", "edgeplane", ...args]);
      return 0;
    } catch (e) {
      return reportError(e, deps.io.writeError);
    }
  };
  return { run, out: () => out, err: () => err, addresses };
}

const task = (state: TaskState, extra: MessageInitShape<typeof TaskSchema> = {}) =>
  create(TaskSchema, { id: "t-1", state, attempt: 1, assignedNode: "site-a-1", assignedCluster: "site-a", ...extra });

async function* stream(...tasks: Task[]) {
  for (const t of tasks) yield { task: t };
}

afterEach(() => {
  vi.unstubAllEnvs();
});

describe("submit", () => {
  it("sends the request the flags describe and prints id, state, cluster and queue position", async () => {
    const sent: SubmitTaskRequest[] = [];
    const h = harness({
      tasks: {
        submitTask: async (req: SubmitTaskRequest) => {
          sent.push(req);
          return create(SubmitTaskResponseSchema, { taskId: "t-1", state: TaskState.QUEUED, assignedCluster: "site-a", queuePosition: 4 });
        },
      },
    });
    const code = await h.run(
      "submit",
      "--handler",
      "stats",
      "--values",
      "1,2,3",
      "--priority",
      "critical",
      "--mode",
      "hybrid",
      "--memory",
      "1Gi",
      "--label",
      "a=1",
      "--label",
      "b=2",
      "--deadline",
      "1m",
    );
    expect(code).toBe(0);
    const t = sent[0].task!;
    expect(t.priority).toBe(Priority.CRITICAL);
    expect(t.processingMode).toBe(ProcessingMode.HYBRID);
    expect(t.requiredMemoryBytes).toBe(1024n ** 3n);
    expect(t.labels).toEqual({ a: "1", b: "2" });
    expect(t.deadline?.seconds).toBe(BigInt(NOW.getTime() / 1000 + 60));
    expect(h.out()).toMatch(/^task\s+t-1$/m);
    expect(h.out()).toMatch(/^state\s+queued$/m);
    expect(h.out()).toMatch(/^cluster\s+site-a$/m);
    expect(h.out()).toMatch(/^queue position\s+4$/m);
  });

  it("reads the coordinator from EDGEPLANE_ADDR, and --coordinator wins over it", async () => {
    vi.stubEnv("EDGEPLANE_ADDR", "10.0.0.7:6000");
    const h = harness({ tasks: { submitTask: async () => create(SubmitTaskResponseSchema, { taskId: "t-1" }) } });
    await h.run("submit", "--handler", "stats");
    await h.run("submit", "--handler", "stats", "--coordinator", "10.0.0.8:7000");
    expect(h.addresses).toEqual(["10.0.0.7:6000", "10.0.0.8:7000"]);
  });

  it("--wait prints the result and exits 0 only when the task succeeded", async () => {
    const ok = harness({
      tasks: {
        submitTask: async () => create(SubmitTaskResponseSchema, { taskId: "t-1" }),
        watchTask: () => stream(task(TaskState.QUEUED), task(TaskState.RUNNING), task(TaskState.SUCCEEDED)),
      },
    });
    expect(await ok.run("submit", "--handler", "stats", "--wait")).toBe(0);
    expect(ok.out()).toMatch(/^state\s+succeeded$/m);
    expect(ok.out()).toMatch(/^node\s+site-a-1 \(site-a\)$/m);

    const bad = harness({
      tasks: {
        submitTask: async () => create(SubmitTaskResponseSchema, { taskId: "t-1" }),
        watchTask: () => stream(task(TaskState.FAILED, { error: "division by zero" })),
      },
    });
    expect(await bad.run("submit", "--handler", "stats", "--wait")).toBe(1);
    expect(bad.err()).toContain("error: task t-1 failed: division by zero");
  });

  it("refuses task flags together with --file as a usage error (exit 2)", async () => {
    const h = harness();
    expect(await h.run("submit", "--file", "x.json", "--handler", "stats")).toBe(2);
    expect(h.err()).toContain("cannot be used with");
  });

  it("prints a gRPC error as `error: CODE: message` and exits 1", async () => {
    const h = harness({
      tasks: {
        submitTask: async () => {
          throw new ConnectError('unknown handler "nope"', Code.InvalidArgument);
        },
      },
    });
    expect(await h.run("submit", "--handler", "nope")).toBe(1);
    expect(h.err()).toBe('error: INVALID_ARGUMENT: unknown handler "nope"\n');
  });
});

describe("tasks", () => {
  it("parses repeated and comma-separated --state, follows pages with --all and prints the table", async () => {
    const requests: ListTasksRequest[] = [];
    const pages = [
      create(ListTasksResponseSchema, { tasks: [task(TaskState.RUNNING, { id: "t-1" })], nextPageToken: "p2" }),
      create(ListTasksResponseSchema, { tasks: [task(TaskState.QUEUED, { id: "t-2" })] }),
    ];
    const h = harness({
      tasks: {
        listTasks: async (req: ListTasksRequest) => {
          requests.push(req);
          return pages[requests.length - 1];
        },
      },
    });
    expect(await h.run("tasks", "--state", "queued,running", "--state", "FAILED", "--priority", "high", "--limit", "1", "--all")).toBe(0);
    expect(requests.map((r) => r.pageToken)).toEqual(["", "p2"]);
    expect(requests[0].states).toEqual([TaskState.QUEUED, TaskState.RUNNING, TaskState.FAILED]);
    expect(requests[0].priority).toBe(Priority.HIGH);
    expect(requests[0].pageSize).toBe(1);
    const lines = h.out().trim().split("\n");
    expect(lines[0]).toMatch(/^ID\s+NAME\s+HANDLER\s+PRIORITY\s+STATE\s+ATTEMPT\s+NODE\s+AGE$/);
    expect(lines.slice(1).map((l) => l.split(/\s+/)[0])).toEqual(["t-1", "t-2"]);
  });

  it("--json prints the proto JSON of the response", async () => {
    const h = harness({
      tasks: { listTasks: async () => create(ListTasksResponseSchema, { tasks: [task(TaskState.RUNNING)], nextPageToken: "n" }) },
    });
    expect(await h.run("tasks", "--json")).toBe(0);
    const json = JSON.parse(h.out());
    expect(json.tasks[0]).toMatchObject({ id: "t-1", state: "TASK_STATE_RUNNING" });
    expect(json.nextPageToken).toBe("n");
  });

  it("rejects an unknown state as a usage error naming the choices", async () => {
    const h = harness();
    expect(await h.run("tasks", "--state", "done")).toBe(2);
    expect(h.err()).toContain("one of queued, dispatched, running, succeeded, failed, cancelled, expired");
  });
});

describe("watch", () => {
  it("prints one line per transition, skipping repeats, and JSON lines with --json", async () => {
    const updates = () =>
      stream(task(TaskState.QUEUED, { assignedNode: "" }), task(TaskState.QUEUED, { assignedNode: "" }), task(TaskState.RUNNING), task(TaskState.SUCCEEDED));
    const h = harness({ tasks: { watchTask: updates } });
    expect(await h.run("watch", "t-1")).toBe(0);
    expect(
      h
        .out()
        .trim()
        .split("\n")
        .map((l) => l.split(/\s+/)[1]),
    ).toEqual(["queued", "running", "succeeded"]);

    const j = harness({ tasks: { watchTask: updates } });
    expect(await j.run("watch", "t-1", "--json")).toBe(0);
    expect(
      j
        .out()
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l).state),
    ).toEqual(["TASK_STATE_QUEUED", "TASK_STATE_QUEUED", "TASK_STATE_RUNNING", "TASK_STATE_SUCCEEDED"]);
  });
});

describe("help", () => {
  const commandPaths = (c: Command, prefix: string[] = []): string[][] =>
    c.commands.flatMap((s) => [[...prefix, s.name()], ...commandPaths(s, [...prefix, s.name()])]);

  it("every command answers --help with exit 0", async () => {
    for (const path of commandPaths(buildProgram())) {
      const h = harness();
      expect(await h.run(...path, "--help"), path.join(" ")).toBe(0);
      expect(h.out(), path.join(" ")).toContain(`Usage: edgeplane ${path.join(" ")}`);
    }
  });

  it("every listing and task/status command takes --json and --coordinator", async () => {
    for (const name of ["submit", "tasks", "task", "watch", "cancel", "nodes", "clusters", "drain", "status"]) {
      const h = harness();
      await h.run(name, "--help");
      expect(h.out(), name).toContain("--json");
      expect(h.out(), name).toContain("env: EDGEPLANE_ADDR");
    }
  });

  it("coordinator --help shows a flag with its default for every coordinator option", async () => {
    const h = harness();
    await h.run("coordinator", "--help");
    const help = h.out().replace(/\s+/g, " ");
    expect(Object.keys(coordinatorConfigFromFlags({}))).toEqual(Object.keys(DEFAULT_COORDINATOR_CONFIG));
    for (const text of [
      "--listen <host:port>",
      "(default: 127.0.0.1:50051)",
      "--heartbeat-interval",
      "(default: 1s)",
      "--max-input-bytes",
      "(default: 100 MiB)",
      "--disconnect-window",
      "--drain-grace",
      "(default: 1m)",
      "--log-level",
    ]) {
      expect(help).toContain(text);
    }
  });
});

describe("run commands", () => {
  /** Parses argv for one command, capturing its flags instead of running it. */
  function parsedFlags(...args: string[]): Record<string, unknown> {
    const program = buildProgram({ io: { write: () => {}, writeError: () => {} } });
    let flags: Record<string, unknown> = {};
    program.commands.find((c) => c.name() === args[0])!.action((f: Record<string, unknown>) => void (flags = f));
    program.parse(["node", "edgeplane", ...args]);
    return flags;
  }

  it("turns coordinator flags into its config, parsing units", () => {
    const config = coordinatorConfigFromFlags(
      parsedFlags(
        "coordinator",
        "--listen",
        "127.0.0.1:0",
        "--heartbeat-interval",
        "250ms",
        "--max-input-bytes",
        "1Mi",
        "--health-threshold",
        "50%",
        "--default-cpu",
        "200m",
        "--log-level",
        "warn",
        "--max-shards",
        "8",
        "--split-points-per-core-ms",
        "5000",
        "--split-shard-overhead",
        "40ms",
      ),
    );
    expect(config).toMatchObject({
      listen: "127.0.0.1:0",
      heartbeatIntervalMs: 250,
      maxInputBytes: 1024 ** 2,
      healthThreshold: 0.5,
      defaultCpuMillis: 200,
      logLevel: "warn",
      retryMaxMs: DEFAULT_COORDINATOR_CONFIG.retryMaxMs,
      maxShards: 8,
      splitPointsPerCoreMs: 5000,
      splitShardOverheadMs: 40,
    });
  });

  it("turns agent flags into its config, merging --devices and --device", () => {
    const config = agentConfigFromFlags(
      parsedFlags(
        "agent",
        "--cluster",
        "site-a",
        "--devices",
        "d1,d2",
        "--device",
        "d3",
        "--device",
        "d1",
        "--label",
        "k=v",
        "--tier",
        "cloud",
        "--workers",
        "2",
        "--max-memory",
        "512Mi",
        "--drain-grace",
        "5s",
      ) as never,
    );
    expect(config).toMatchObject({
      clusterId: "site-a",
      deviceIds: ["d1", "d2", "d3"],
      labels: { k: "v" },
      tier: "cloud",
      workers: 2,
      maxMemoryBytes: 512 * 1024 ** 2,
      drainGraceMs: 5000,
      coordinator: "127.0.0.1:50051",
    });
  });

  it("plans dev agents: edge agents split sensor devices, cloud agents serve none", () => {
    const plans = planDevAgents({ edgeAgents: 2, cloudAgents: 1, devicesPerAgent: 2, edgeCluster: "site-a", cloudCluster: "cloud" });
    expect(plans).toEqual([
      { nodeId: "site-a-1", clusterId: "site-a", tier: "edge", deviceIds: ["sensor-1", "sensor-2"] },
      { nodeId: "site-a-2", clusterId: "site-a", tier: "edge", deviceIds: ["sensor-3", "sensor-4"] },
      { nodeId: "cloud-1", clusterId: "cloud", tier: "cloud", deviceIds: [] },
    ]);
    expect(devAgentArgs(plans[0], "127.0.0.1:4000", { logLevel: "info" })).toEqual([
      "agent",
      "--coordinator",
      "127.0.0.1:4000",
      "--cluster",
      "site-a",
      "--node-id",
      "site-a-1",
      "--tier",
      "edge",
      "--log-level",
      "info",
      "--devices",
      "sensor-1,sensor-2",
    ]);
    // The args `dev` builds are ones `agent` accepts.
    expect(agentConfigFromFlags(parsedFlags(...devAgentArgs(plans[1], "127.0.0.1:4000", { logLevel: "info" })) as never)).toMatchObject({
      clusterId: "site-a",
      nodeId: "site-a-2",
      deviceIds: ["sensor-3", "sensor-4"],
      coordinator: "127.0.0.1:4000",
    });
    // With the coordinator's own --data-dir, each agent's journal goes beside it (not into ./data).
    expect(agentConfigFromFlags(parsedFlags(...devAgentArgs(plans[1], "127.0.0.1:4000", { logLevel: "info", dataDir: "/srv/ep" })) as never)).toMatchObject({
      dataDir: "/srv/ep/agent-site-a-2",
    });
  });

  it("prints example commands in the dev banner, naming the address when it is not the default", () => {
    const plans = planDevAgents({ edgeAgents: 1, cloudAgents: 0, devicesPerAgent: 1, edgeCluster: "e", cloudCluster: "c" });
    expect(renderDevBanner("127.0.0.1:50051", plans)).toContain("npx edgeplane submit --handler stats --values 1,2,3,4 --wait\n");
    expect(renderDevBanner("127.0.0.1:6000", plans)).toContain("npx edgeplane nodes --coordinator 127.0.0.1:6000");
  });
});
