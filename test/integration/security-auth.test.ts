// Client authentication and authorisation against a real coordinator over TLS: every role against every RPC
// (table-driven), missing / garbage / expired / revoked tokens, ownership and cluster scope, quotas exceeded then
// recovered, and the audit log (present, and free of task inputs and secrets, as are all logs).
import { create, fromJson } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EdgeplaneClients } from "../../cli/client.js";
import { METHOD_RULES } from "../../coordinator/security/roles.js";
import { ConnectRequestSchema, type ConnectRequest } from "../../gen/edgeplane/v1/agent_pb.js";
import { Role, TokenKind } from "../../gen/edgeplane/v1/auth_pb.js";
import { SubmitTaskRequestSchema } from "../../gen/edgeplane/v1/task_pb.js";
import { Priority, ProcessingMode, TaskState } from "../../gen/edgeplane/v1/types_pb.js";
import { AsyncQueue } from "../../lib/async-queue.js";
import { Fleet, ROOT, submitRequest, waitFor } from "../helpers/fleet.js";

const exec = promisify(execFile);

type Who = "none" | "garbage" | "expired" | "revoked" | "join" | "viewer" | "submitter" | "operator" | "admin";
const WHO: Who[] = ["none", "garbage", "expired", "revoked", "join", "viewer", "submitter", "operator", "admin"];
const ROLES_OF = { viewer: Role.VIEWER, submitter: Role.SUBMITTER, operator: Role.OPERATOR, admin: Role.ADMIN } as const;
const UNAUTHENTICATED: readonly Who[] = ["none", "garbage", "expired", "revoked"];

/** The status code of a call, or OK. */
async function codeOf(p: Promise<unknown>): Promise<{ code: Code | 0; message: string }> {
  try {
    await p;
    return { code: 0, message: "" };
  } catch (err) {
    const e = ConnectError.from(err);
    return { code: e.code, message: e.rawMessage };
  }
}

/** The first message of a server stream (or its error). */
async function first(it: AsyncIterable<unknown>): Promise<void> {
  for await (const _ of it) return;
}

let seq = 0;
const submit = () =>
  create(SubmitTaskRequestSchema, {
    task: { handler: "stats", priority: Priority.LOW, processingMode: ProcessingMode.LOCAL, input: fromJson(ValueSchema, { values: [1] }) },
  });

/** Every RPC behind the guard, a harmless request for it, and the roles allowed to make it. */
const ALL = ["viewer", "submitter", "operator", "admin"] as const;
const TABLE: [method: string, call: (c: EdgeplaneClients) => Promise<unknown>, allowed: readonly Who[]][] = [
  ["edgeplane.v1.TaskService/SubmitTask", (c) => c.tasks.submitTask(submit()), ["submitter", "operator", "admin"]],
  ["edgeplane.v1.TaskService/SubmitTasks", (c) => c.tasks.submitTasks({ tasks: [submit()] }), ["submitter", "operator", "admin"]],
  ["edgeplane.v1.TaskService/GetTask", (c) => c.tasks.getTask({ taskId: "t-none" }), ALL],
  ["edgeplane.v1.TaskService/ListTasks", (c) => c.tasks.listTasks({}), ALL],
  ["edgeplane.v1.TaskService/CancelTask", (c) => c.tasks.cancelTask({ taskId: "t-none" }), ["submitter", "operator", "admin"]],
  ["edgeplane.v1.TaskService/WatchTask", (c) => first(c.tasks.watchTask({ taskId: "t-none" })), ALL],
  ["edgeplane.v1.TaskService/WatchTasks", (c) => first(c.tasks.watchTasks({ taskIds: ["t-none"] })), ALL],
  ["edgeplane.v1.ClusterService/RegisterCluster", (c) => c.clusters.registerCluster({ clusterId: `declared-${++seq}` }), ["operator", "admin"]],
  ["edgeplane.v1.ClusterService/ListClusters", (c) => c.clusters.listClusters({}), ALL],
  ["edgeplane.v1.ClusterService/ListNodes", (c) => c.clusters.listNodes({}), ALL],
  ["edgeplane.v1.ClusterService/DrainNode", (c) => c.clusters.drainNode({ nodeId: "no-such-node" }), ["operator", "admin"]],
  ["edgeplane.v1.ClusterService/GetStatus", (c) => c.clusters.getStatus({}), ALL],
  ["edgeplane.v1.AgentService/Connect", (c) => connectOnce(c), []],
  ["edgeplane.v1.EnrolmentService/GetCertificateAuthority", (c) => c.enrolment.getCertificateAuthority({}), WHO],
  ["edgeplane.v1.EnrolmentService/Enrol", (c) => c.enrolment.enrol({ csrPem: "not a csr", nodeId: "x" }), [...ALL, "join"]],
  ["edgeplane.v1.TokenService/CreateToken", (c) => c.tokens.createToken({ kind: TokenKind.API, role: Role.VIEWER }), ["admin"]],
  ["edgeplane.v1.TokenService/ListTokens", (c) => c.tokens.listTokens({}), ["admin"]],
  ["edgeplane.v1.TokenService/RevokeToken", (c) => c.tokens.revokeToken({ tokenId: "nosuchtoken" }), ["admin"]],
  ["edgeplane.v1.NodeIdentityService/ListNodeIdentities", (c) => c.identities.listNodeIdentities({}), ["admin"]],
  ["edgeplane.v1.NodeIdentityService/RevokeNode", (c) => c.identities.revokeNode({ nodeId: "no-such-node" }), ["admin"]],
];

/** Opens the agent stream with a register (as a node would) and reads the first reply. */
async function connectOnce(c: EdgeplaneClients): Promise<void> {
  const out = new AsyncQueue<ConnectRequest>();
  out.push(
    create(ConnectRequestSchema, {
      msg: {
        case: "register",
        value: { nodeId: "table-node", clusterId: "table", handlers: ["none"], totalCpuMillis: 1, totalMemoryBytes: 1n, maxConcurrentTasks: 1 },
      },
    }),
  );
  try {
    await first((c as unknown as { agent: { connect(i: AsyncIterable<ConnectRequest>): AsyncIterable<unknown> } }).agent.connect(out));
  } finally {
    out.close();
  }
}

let fleet: Fleet;
const clients = new Map<Who, EdgeplaneClients>();
const tokens = new Map<Who, string>();

beforeAll(async () => {
  fleet = new Fleet();
  await fleet.startCoordinator(["--heartbeat-interval", "200ms"]);
  for (const [who, role] of Object.entries(ROLES_OF) as [Who, Role][])
    tokens.set(who, await fleet.createToken({ kind: TokenKind.API, role, description: who }));
  tokens.set("join", await fleet.joinToken("site-a"));
  tokens.set("expired", await fleet.createToken({ kind: TokenKind.API, role: Role.ADMIN, ttl: { nanos: 300_000_000 } }));
  const revoked = await fleet.clients.tokens.createToken({ kind: TokenKind.API, role: Role.ADMIN });
  await fleet.clients.tokens.revokeToken({ tokenId: revoked.token!.id });
  tokens.set("revoked", revoked.secret);
  tokens.set("garbage", "not-a-token");
  await new Promise((r) => setTimeout(r, 400));
  const { createClient } = await import("@connectrpc/connect");
  const { createTransport } = await import("../../cli/client.js");
  const { AgentService } = await import("../../gen/edgeplane/v1/agent_pb.js");
  for (const who of WHO) {
    const security = { caPem: fleet.caPem, token: tokens.get(who) };
    const c = fleet.connect(security);
    // The agent stream too, with the same credentials (createClients leaves it out: it is not a client API).
    (c as unknown as Record<string, unknown>).agent = createClient(AgentService, createTransport(fleet.address, security));
    clients.set(who, c);
  }
});
afterAll(async () => fleet.stop());

describe("each role against each RPC", () => {
  it("the table names every method the guard has a rule for", () => {
    expect(TABLE.map(([m]) => m).sort()).toEqual(Object.keys(METHOD_RULES).sort());
  });

  for (const [method, call, allowed] of TABLE) {
    it(method, async () => {
      const publicMethod = METHOD_RULES[method].access === "public";
      for (const who of WHO) {
        const got = await codeOf(call(clients.get(who)!));
        const expected = allowed.includes(who) || publicMethod ? "allowed" : UNAUTHENTICATED.includes(who) ? "UNAUTHENTICATED" : "PERMISSION_DENIED";
        const outcome = got.code === Code.Unauthenticated ? "UNAUTHENTICATED" : got.code === Code.PermissionDenied ? "PERMISSION_DENIED" : "allowed";
        expect({ who, outcome, message: outcome === expected ? "" : got.message }).toEqual({ who, outcome: expected, message: "" });
        if (outcome === "PERMISSION_DENIED" && who !== "join" && method !== "edgeplane.v1.AgentService/Connect")
          expect(got.message).toMatch(/needs role (viewer|submitter|operator|admin) or higher \(permission [a-z.]+\); token:\w+ has role \w+/);
        if (outcome === "PERMISSION_DENIED" && who === "join") expect(got.message).toMatch(/is a join token: it only enrols agents/);
      }
    });
  }
});

describe("bearer tokens", () => {
  it("missing, garbage, expired and revoked tokens are UNAUTHENTICATED, each saying what is wrong", async () => {
    const msg = async (who: Who) => (await codeOf(clients.get(who)!.clusters.getStatus({}))).message;
    expect(await msg("none")).toMatch(
      /needs credentials: a bearer token \(authorization: Bearer <token>, from edgeplane token create\) or a client certificate/,
    );
    expect(await msg("garbage")).toMatch(/the bearer token is not an edgeplane token \(expected EP1<ca-sha256>::<id>\.<secret>/);
    expect(await msg("expired")).toMatch(/token \w+ expired at .*; ask an admin for a new one/);
    expect(await msg("revoked")).toMatch(/token \w+ was revoked at/);
  });

  it("the CLI reports a missing token with where to put one", async () => {
    const r = await fleet.cli(["status"], { EDGEPLANE_TOKEN: "" });
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/UNAUTHENTICATED: .*\(no token given: set --token, EDGEPLANE_TOKEN or EDGEPLANE_TOKEN_FILE\)/);
  });
});

describe("ownership and cluster scope", () => {
  it("a submitter cancels only the tasks it submitted; an operator cancels any", async () => {
    await fleet.clients.clusters.registerCluster({ clusterId: "site-a" });
    const alice = fleet.connect({ token: await fleet.createToken({ kind: TokenKind.API, role: Role.SUBMITTER }) });
    const bob = fleet.connect({ token: await fleet.createToken({ kind: TokenKind.API, role: Role.SUBMITTER }) });
    const { taskId } = await alice.tasks.submitTask(submitRequest({ handler: "stats", input: { values: [1] } }));
    const { taskId: other } = await alice.tasks.submitTask(submitRequest({ handler: "stats", input: { values: [1] } }));
    const denied = await codeOf(bob.tasks.cancelTask({ taskId }));
    expect(denied.code).toBe(Code.PermissionDenied);
    expect(denied.message).toMatch(new RegExp(`task ${taskId} was submitted by token:\\w+; token:\\w+ may cancel only its own tasks`));
    expect((await alice.tasks.cancelTask({ taskId })).task?.state).toBe(TaskState.CANCELLED);
    expect((await clients.get("operator")!.tasks.cancelTask({ taskId: other })).task?.state).toBe(TaskState.CANCELLED);
  });

  it("a token limited to a cluster submits, lists, reads and watches only there", async () => {
    await fleet.clients.clusters.registerCluster({ clusterId: "site-b" });
    const scoped = fleet.connect({ token: await fleet.createToken({ kind: TokenKind.API, role: Role.SUBMITTER, clusters: ["site-a"] }) });
    const inB = (await fleet.clients.tasks.submitTask(submitRequest({ handler: "stats", input: { values: [1] }, clusterId: "site-b" }))).taskId;
    const mine = await scoped.tasks.submitTask(submitRequest({ handler: "stats", input: { values: [2] } }));
    expect((await scoped.tasks.getTask({ taskId: mine.taskId })).task?.spec?.clusterId).toBe("site-a");
    const wrong = await codeOf(scoped.tasks.submitTask(submitRequest({ handler: "stats", input: { values: [1] }, clusterId: "site-b" })));
    expect(wrong).toEqual({
      code: Code.PermissionDenied,
      message: expect.stringMatching(/task\.clusterId: cluster site-b is outside token:\w+'s clusters \(site-a\)/),
    });
    expect((await codeOf(scoped.tasks.getTask({ taskId: inB }))).code).toBe(Code.PermissionDenied);
    expect(await codeOf(first(scoped.tasks.watchTask({ taskId: inB })))).toMatchObject({ code: Code.PermissionDenied });
    const listed = (await scoped.tasks.listTasks({})).tasks.map((t) => t.id);
    expect(listed).toContain(mine.taskId);
    expect(listed).not.toContain(inB);
    expect((await scoped.clusters.listClusters({})).clusters.map((c) => c.id)).toEqual(["site-a"]);
  });
});

describe("quotas", () => {
  it("most active tasks: RESOURCE_EXHAUSTED with the limit, and accepted again once tasks end; nothing accepted is dropped", async () => {
    const q = fleet.connect({ token: await fleet.createToken({ kind: TokenKind.API, role: Role.SUBMITTER, quota: { maxActiveTasks: 2 } }) });
    const a = await q.tasks.submitTask(submitRequest({ handler: "stats", input: { values: [1] } }));
    const b = await q.tasks.submitTask(submitRequest({ handler: "stats", input: { values: [1] } }));
    const over = await codeOf(q.tasks.submitTask(submitRequest({ handler: "stats", input: { values: [1] } })));
    expect(over).toEqual({
      code: Code.ResourceExhausted,
      message: expect.stringMatching(/already has 2 tasks queued or running, its limit of 2 \(max_active_tasks quota\)/),
    });
    const batch = await q.tasks.submitTasks({ tasks: [submit(), submit()] });
    expect(batch.results.map((r) => r.errorCode)).toEqual(["RESOURCE_EXHAUSTED", "RESOURCE_EXHAUSTED"]);
    // The accepted tasks are still there, untouched.
    for (const id of [a.taskId, b.taskId]) expect((await q.tasks.getTask({ taskId: id })).task?.state).toBe(TaskState.QUEUED);
    await q.tasks.cancelTask({ taskId: a.taskId });
    expect((await q.tasks.submitTask(submitRequest({ handler: "stats", input: { values: [1] } }))).taskId).toMatch(/^t-/);
  });

  it("submission rate: over the burst is RESOURCE_EXHAUSTED with the rate, and recovers as the bucket refills", async () => {
    const q = fleet.connect({ token: await fleet.createToken({ kind: TokenKind.API, role: Role.SUBMITTER, quota: { submitRate: 2, submitBurst: 3 } }) });
    const res = await q.tasks.submitTasks({ tasks: [submit(), submit(), submit(), submit()] });
    expect(res.results.map((r) => r.errorCode)).toEqual(["", "", "", "RESOURCE_EXHAUSTED"]);
    expect(res.results[3].errorMessage).toMatch(/may submit 2 tasks per second \(bursts of 3/);
    await waitFor("the bucket to refill", async () => (await codeOf(q.tasks.submitTask(submit()))).code === 0, 5000, 200);
  });

  it("largest input: RESOURCE_EXHAUSTED with the limit", async () => {
    const q = fleet.connect({ token: await fleet.createToken({ kind: TokenKind.API, role: Role.SUBMITTER, quota: { maxInputBytes: 100n } }) });
    const big = await codeOf(q.tasks.submitTask(submitRequest({ handler: "stats", input: { values: Array.from({ length: 100 }, (_, i) => i) } })));
    expect(big).toEqual({
      code: Code.ResourceExhausted,
      message: expect.stringMatching(/task input is \d+ bytes; token \w+ may submit inputs of at most 100 bytes/),
    });
  });
});

describe("audit log and secrets in logs", () => {
  it("records mutating calls and refusals with principal, peer, method, target and outcome, and no input or secret anywhere", async () => {
    const { p } = await fleet.startAgent("site-a", ["--workers", "1"], { nodeId: "audit-1" });
    const marker = "input-marker-4cc5d2e1";
    const { taskId } = await fleet.clients.tasks.submitTask(
      submitRequest({ handler: "stats", input: { values: [1, 2], note: marker } as never, clusterId: "site-a" }),
    );
    expect((await fleet.finish(taskId)).state).toBe(TaskState.SUCCEEDED);
    const created = await fleet.clients.tokens.createToken({ kind: TokenKind.API, role: Role.VIEWER, description: "audited" });
    await codeOf(clients.get("viewer")!.clusters.drainNode({ nodeId: "audit-1" }));
    await codeOf(clients.get("garbage")!.clusters.getStatus({}));

    const lines = await waitFor("audit lines", () => {
      const text = readFileSync(join(fleet.coordinatorDir, "audit.log"), "utf8");
      const ls = text
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as Record<string, string>);
      return ls.some((l) => l.method === "edgeplane.v1.ClusterService/GetStatus" && l.outcome === "UNAUTHENTICATED") ? ls : undefined;
    });
    const adminId = `token:${fleet.adminToken.slice(69, fleet.adminToken.indexOf("."))}`;
    expect(lines).toContainEqual(
      expect.objectContaining({
        principal: adminId,
        role: "admin",
        method: "edgeplane.v1.TaskService/SubmitTask",
        target: taskId,
        outcome: "OK",
        peer: expect.stringMatching(/127\.0\.0\.1/),
        time: expect.any(String),
      }),
    );
    expect(lines).toContainEqual(
      expect.objectContaining({ principal: adminId, method: "edgeplane.v1.TokenService/CreateToken", target: `token ${created.token!.id}`, outcome: "OK" }),
    );
    expect(lines).toContainEqual(
      expect.objectContaining({
        role: "viewer",
        method: "edgeplane.v1.ClusterService/DrainNode",
        target: "audit-1",
        outcome: "PERMISSION_DENIED",
        reason: expect.stringMatching(/needs role operator/),
      }),
    );
    expect(lines).toContainEqual(
      expect.objectContaining({ principal: "anonymous", method: "edgeplane.v1.ClusterService/GetStatus", outcome: "UNAUTHENTICATED" }),
    );
    expect(lines).toContainEqual(
      expect.objectContaining({
        principal: expect.stringMatching(/^join:\w+$/),
        method: "edgeplane.v1.EnrolmentService/Enrol",
        target: "audit-1",
        outcome: "OK",
      }),
    );

    p.kill("SIGTERM");
    await p.exited;
    const everything = [readFileSync(join(fleet.coordinatorDir, "audit.log"), "utf8"), fleet.coordinator!.output(), p.output()].join("\n");
    expect(everything).not.toContain(marker);
    for (const secret of [created.secret, fleet.adminToken, await fleet.joinToken("site-a"), ...tokens.values()].filter((t) => t.length > 20)) {
      const secretPart = secret.slice(secret.indexOf(".") + 1);
      expect(everything.includes(secretPart)).toBe(false);
    }
  });
});

describe("server reflection", () => {
  it("is on by default without a token, and --no-reflection turns it off", async () => {
    const other = new Fleet();
    try {
      await other.startCoordinator(["--no-reflection"]);
      const res = await exec(
        join(ROOT, "node_modules/.bin/buf"),
        ["curl", "--protocol", "grpc", "--cacert", join(other.coordinatorDir, "ca.crt"), "--list-services", `https://${other.address}`],
        { cwd: "/" },
      ).catch((e: { stderr: string }) => e);
      expect((res as { stderr: string }).stderr).toMatch(/unimplemented/i);
      expect((await other.clients.clusters.getStatus({})).clusters).toBe(0);
    } finally {
      await other.stop();
    }
  });
});
