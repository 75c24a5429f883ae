// The task owner survives the SQLite store (the field the cancel check and quotas rely on), and the CLI's security
// flags reach the coordinator and agent configs and the dev banner.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { buildProgram } from "../../cli/program.js";
import { agentConfigFromFlags, coordinatorConfigFromFlags, devAgentArgs, renderDevBanner, type AgentFlags } from "../../cli/run.js";
import { resolveCoordinatorConfig } from "../../coordinator/config.js";
import { SqliteTaskStore } from "../../coordinator/store/sqlite-store.js";
import { TaskManager } from "../../coordinator/tasks/task-manager.js";
import type { TaskSpec } from "../../coordinator/tasks/types.js";
import { silentLogger } from "../../lib/log.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const spec: TaskSpec = {
  name: "t",
  handler: "stats",
  deviceId: "",
  priority: "normal",
  mode: "local",
  input: { values: [1] },
  series: undefined,
  memoryBytes: 1,
  cpuMillis: 1,
  estimatedMs: 0,
  deadline: undefined,
  maxRetries: 0,
  clusterId: "",
  labels: {},
  disconnectWindowMs: undefined,
};

describe("TaskRecord.owner", () => {
  it("is set from submit and round-trips through the SQLite store across a reopen", async () => {
    const dir = mkdtempSync(join(tmpdir(), "edgeplane-owner-"));
    dirs.push(dir);
    const store = SqliteTaskStore.open(dir, { logger: silentLogger() });
    const tasks = new TaskManager(store, { now: () => 1000, retryBaseMs: 1, retryMaxMs: 1 });
    const [{ task }] = tasks.submit([{ spec, idempotencyKey: "", owner: "token:abc123defg" }]);
    const [{ task: anonymous }] = tasks.submit([{ spec, idempotencyKey: "" }]);
    expect(task.owner).toBe("token:abc123defg");
    await store.flush();
    await store.close();
    const again = SqliteTaskStore.open(dir, { logger: silentLogger() });
    expect(again.get(task.id)?.owner).toBe("token:abc123defg");
    expect(again.get(anonymous.id)?.owner).toBeUndefined();
    await again.close();
  });
});

describe("security flags", () => {
  const parse = (...args: string[]) => {
    const program = buildProgram({ io: { write: () => {}, writeError: () => {} } });
    let flags: Record<string, unknown> = {};
    program.commands.find((c) => c.name() === "coordinator")!.action((f: Record<string, unknown>) => void (flags = f));
    program.parse(["node", "edgeplane", "coordinator", ...args]);
    return coordinatorConfigFromFlags(flags);
  };

  it("coordinator flags reach the config, with the secure defaults when absent", () => {
    const none = resolveCoordinatorConfig(parse());
    expect(none).toMatchObject({ insecure: false, reflection: true, healthListen: "", nodeCertTtlMs: 7 * 86_400_000, quotaSubmitRate: 2000 });
    const set = resolveCoordinatorConfig(
      parse(
        "--insecure",
        "--no-reflection",
        "--health-listen",
        "127.0.0.1:8081",
        "--node-cert-ttl",
        "1h",
        "--tls-san",
        "edge.example,10.0.0.5",
        "--quota-max-active",
        "7",
        "--quota-max-input",
        "1Mi",
        "--audit-log",
        "-",
      ),
    );
    expect(set).toMatchObject({
      insecure: true,
      reflection: false,
      healthListen: "127.0.0.1:8081",
      nodeCertTtlMs: 3_600_000,
      tlsSans: ["edge.example", "10.0.0.5"],
      quotaMaxActiveTasks: 7,
      quotaMaxInputBytes: 1024 * 1024,
      auditLog: "-",
    });
    expect(() => resolveCoordinatorConfig(parse("--insecure", "--listen", "0.0.0.0:50051"))).toThrow(/allowed only on a loopback address/);
    expect(() => resolveCoordinatorConfig(parse("--insecure", "--listen", "[::1]:0"))).not.toThrow();
  });

  it("agent flags: join token, CA file, insecure; dev passes --insecure on", () => {
    const base: AgentFlags = { coordinator: "h:1", cluster: "c" };
    expect(agentConfigFromFlags({ ...base, joinToken: "EP1x", caCert: "/ca.crt", insecure: true })).toMatchObject({
      joinToken: "EP1x",
      caCert: "/ca.crt",
      insecure: true,
    });
    expect(devAgentArgs({ nodeId: "n", clusterId: "c", tier: "edge", deviceIds: [] }, "h:1", { logLevel: "info", insecure: true })).toContain("--insecure");
  });

  it("the dev banner prints the admin token and the export lines", () => {
    const text = renderDevBanner("127.0.0.1:50051", [], { token: "EP1abc::id.secret", caFile: "/d/data/ca.crt", tokenFileIsDefault: true });
    expect(text).toContain("  export EDGEPLANE_ADDR=127.0.0.1:50051\n  export EDGEPLANE_TOKEN=EP1abc::id.secret\n  export EDGEPLANE_CA=/d/data/ca.crt");
    expect(renderDevBanner("127.0.0.1:50051", [])).toMatch(/--insecure: plaintext, no authentication/);
  });
});
