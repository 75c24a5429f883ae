// Security building blocks without sockets: the rule table covers every served method, token format and hashing,
// the token registry (hash only, expiry, revocation, uses), the auth store across a reopen, quotas on a fake clock,
// and the scope / ownership checks the services apply.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { AgentService } from "../../gen/edgeplane/v1/agent_pb.js";
import { EnrolmentService, NodeIdentityService, TokenService } from "../../gen/edgeplane/v1/auth_pb.js";
import { ClusterService } from "../../gen/edgeplane/v1/cluster_pb.js";
import { TaskService } from "../../gen/edgeplane/v1/task_pb.js";
import { PermissionDeniedError, ResourceExhaustedError, UnauthenticatedError } from "../../coordinator/errors.js";
import { canSeeTask, requireCancel, requireDrain, submitCluster } from "../../coordinator/security/access.js";
import { AuthStore } from "../../coordinator/security/auth-store.js";
import { scopeOf } from "../../coordinator/security/node-identity.js";
import type { Principal } from "../../coordinator/security/principal.js";
import { Quotas } from "../../coordinator/security/quotas.js";
import { METHOD_RULES, minimumRole, ROLE_PERMISSIONS, ROLES } from "../../coordinator/security/roles.js";
import { formatToken, parseToken, secretMatches, secretSha256 } from "../../coordinator/security/token-format.js";
import { TokenRegistry } from "../../coordinator/security/tokens.js";
import { silentLogger } from "../../lib/log.js";
import type { TaskRecord } from "../../coordinator/tasks/types.js";

const CA = "a".repeat(64);
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), "edgeplane-auth-"));
  dirs.push(d);
  return d;
};

describe("the rule table", () => {
  it("has a rule for every method of every service the coordinator serves, and none for methods it does not", () => {
    const served = [TaskService, ClusterService, AgentService, EnrolmentService, TokenService, NodeIdentityService].flatMap((s) =>
      s.methods.map((m) => `${s.typeName}/${m.name}`),
    );
    expect(Object.keys(METHOD_RULES).sort()).toEqual(served.sort());
  });

  it("makes each role include the one before it, and names the weakest role for a permission", () => {
    for (let i = 1; i < ROLES.length; i++) {
      for (const p of ROLE_PERMISSIONS[ROLES[i - 1]]) expect(ROLE_PERMISSIONS[ROLES[i]].has(p)).toBe(true);
    }
    expect(minimumRole("tasks.read")).toBe("viewer");
    expect(minimumRole("tasks.submit")).toBe("submitter");
    expect(minimumRole("nodes.drain")).toBe("operator");
    expect(minimumRole("tokens.manage")).toBe("admin");
    expect(minimumRole("agent.connect")).toBeUndefined();
  });
});

describe("token format", () => {
  it("round-trips the full form and reads the short one; rejects anything else", () => {
    const t = formatToken(CA, "abcdefgh12", "s".repeat(43));
    expect(parseToken(t)).toEqual({ caSha256: CA, id: "abcdefgh12", secret: "s".repeat(43) });
    expect(parseToken(`abcdefgh12.${"s".repeat(43)}`)).toEqual({ id: "abcdefgh12", secret: "s".repeat(43) });
    for (const bad of ["", "Bearer x", "EP1zz::a.b", `EP1${CA}::ab.${"s".repeat(43)}`]) expect(parseToken(bad)).toBeUndefined();
  });

  it("compares secrets with their hash", () => {
    const h = secretSha256("secret-one-secret-one");
    expect(secretMatches("secret-one-secret-one", h)).toBe(true);
    expect(secretMatches("secret-two-secret-two", h)).toBe(false);
  });
});

describe("TokenRegistry over an AuthStore", () => {
  it("stores only the secret's hash, authenticates the token, and keeps it across a reopen", () => {
    const dir = tmp();
    let now = 1_000_000;
    const store = AuthStore.open(dir);
    const reg = new TokenRegistry(store, CA, () => now);
    const { token, text } = reg.create({ kind: "api", role: "operator", clusters: ["site-a"], createdBy: "test" });
    const secret = parseToken(text)!.secret;
    store.close();
    const onDisk = readdirSync(dir)
      .map((f) => readFileSync(join(dir, f)).toString("latin1"))
      .join("");
    expect(onDisk.includes(secret)).toBe(false);
    expect(onDisk.includes(secretSha256(secret).toString("latin1"))).toBe(true);
    const again = new TokenRegistry(AuthStore.open(dir), CA, () => now);
    expect(again.authenticate(text)).toMatchObject({ id: token.id, role: "operator", clusters: ["site-a"] });
    expect(() => again.authenticate(text.replace(/.$/, (c) => (c === "A" ? "B" : "A")))).toThrow(/unknown token/);
    expect(() => again.authenticate(formatToken("b".repeat(64), token.id, secret))).toThrow(
      new RegExp(`issued by a coordinator whose CA is ${"b".repeat(64)}; this coordinator's CA is ${CA}`),
    );
    expect(() => again.authenticate("garbage")).toThrow(UnauthenticatedError);
    now += 1;
  });

  it("refuses expired, revoked and used-up tokens, saying which", () => {
    let now = 1_000_000;
    const reg = new TokenRegistry(AuthStore.open(":memory:"), CA, () => now);
    const short = reg.create({ kind: "api", role: "viewer", clusters: [], ttlMs: 1000, createdBy: "t" });
    const revoked = reg.create({ kind: "api", role: "viewer", clusters: [], createdBy: "t" });
    const join = reg.create({ kind: "join", clusters: ["site-a"], maxUses: 1, createdBy: "t" });
    reg.revoke(revoked.token.id);
    reg.use(join.token);
    now += 1000;
    expect(() => reg.authenticate(short.text)).toThrow(/expired at/);
    expect(() => reg.authenticate(revoked.text)).toThrow(/was revoked at/);
    expect(() => reg.authenticate(join.text)).toThrow(/is used up \(1 of 1 enrolments\)/);
    expect(reg.list(false)).toEqual([]);
    expect(reg.list(true)).toHaveLength(3);
  });

  it("asks for one cluster (or an explicit *) on a join token and a role on an API token", () => {
    const reg = new TokenRegistry(AuthStore.open(":memory:"), CA, () => 0);
    expect(() => reg.create({ kind: "join", clusters: [], createdBy: "t" })).toThrow(/exactly one cluster \(or "\*" for any, asked for explicitly\)/);
    expect(() => reg.create({ kind: "join", clusters: ["a", "b"], createdBy: "t" })).toThrow(/exactly one cluster/);
    expect(reg.create({ kind: "join", clusters: ["*"], createdBy: "t" }).token.clusters).toEqual(["*"]);
    expect(() => reg.create({ kind: "api", clusters: [], createdBy: "t" })).toThrow(/needs a role/);
    expect(() => reg.create({ kind: "api", role: "viewer", clusters: [], maxUses: 3, createdBy: "t" })).toThrow(/uses limits only join tokens/);
  });

  it("creates a bootstrap admin token file (0600) once, and reuses it while it is valid", () => {
    const dir = tmp();
    const reg = new TokenRegistry(AuthStore.open(":memory:"), CA, () => 0);
    const file = join(dir, "admin.token");
    const first = reg.ensureAdmin(file, silentLogger())!;
    expect(reg.authenticate(first).role).toBe("admin");
    expect(reg.ensureAdmin(file, silentLogger())).toBe(first);
    expect(reg.list(false)).toHaveLength(1);
  });
});

describe("Quotas", () => {
  const principal = (quota = {}): Principal => {
    const token = {
      id: "tok1",
      kind: "api" as const,
      role: "submitter" as const,
      clusters: ["*"],
      secretSha256: Buffer.alloc(32),
      description: "",
      createdAt: 0,
      createdBy: "",
      expiresAt: undefined,
      maxUses: 0,
      uses: 0,
      revokedAt: undefined,
      quota,
    };
    return { kind: "token", id: "token:tok1", token, role: "submitter", clusters: "*", via: "bearer" };
  };
  const task = (id: string, state: TaskRecord["state"]) => ({ id, state, owner: "token:tok1" }) as TaskRecord;

  it("limits queued+running tasks per token, and admits again once some finish", () => {
    const q = new Quotas({ maxActiveTasks: 2, submitRate: 0, submitBurst: 0, maxInputBytes: 0 }, () => 0);
    const p = principal();
    const b = q.batch(p);
    b.admit(10);
    b.admit(10);
    expect(() => b.admit(10)).toThrow(/already has 2 tasks queued or running, its limit of 2 \(max_active_tasks quota\)/);
    q.observe(task("t1", "queued"));
    q.observe(task("t2", "running"));
    expect(() => q.batch(p).admit(1)).toThrow(ResourceExhaustedError);
    q.observe(task("t1", "succeeded"));
    expect(() => q.batch(p).admit(1)).not.toThrow();
  });

  it("refills the submission bucket with time, and a token's own quota beats the default", () => {
    let now = 0;
    const q = new Quotas({ maxActiveTasks: 0, submitRate: 2, submitBurst: 2, maxInputBytes: 100 }, () => now);
    const b = q.batch(principal());
    b.admit(1);
    b.admit(1);
    expect(() => b.admit(1)).toThrow(/may submit 2 tasks per second \(bursts of 2; submit_rate \/ submit_burst quota\); retry in 500 ms/);
    now += 500;
    expect(() => q.batch(principal()).admit(1)).not.toThrow();
    expect(() => q.batch(principal()).admit(101)).toThrow(/task input is 101 bytes; token tok1 may submit inputs of at most 100 bytes/);
    now += 1000;
    expect(() => q.batch(principal({ maxInputBytes: 1000 })).admit(500)).not.toThrow();
  });

  it("has no limits for a principal without a token (--insecure)", () => {
    const q = new Quotas({ maxActiveTasks: 1, submitRate: 1, submitBurst: 1, maxInputBytes: 1 }, () => 0);
    const b = q.batch({ kind: "insecure", id: "insecure" });
    for (let i = 0; i < 5; i++) b.admit(1000);
  });
});

describe("scope and ownership", () => {
  const token = (role: "viewer" | "submitter" | "operator", clusters: string[], id = "t1"): Principal => ({
    kind: "token",
    id: `token:${id}`,
    role,
    clusters: scopeOf(clusters),
    via: "bearer",
    token: {
      id,
      kind: "api",
      role,
      clusters,
      secretSha256: Buffer.alloc(0),
      description: "",
      createdAt: 0,
      createdBy: "",
      expiresAt: undefined,
      maxUses: 0,
      uses: 0,
      revokedAt: undefined,
      quota: {},
    },
  });
  const task = (cluster: string, owner?: string) => ({ id: "t-x", spec: { clusterId: cluster }, assignedCluster: "", owner }) as unknown as TaskRecord;

  it("a token limited to one cluster submits there by default; to several it must name one of them", () => {
    expect(submitCluster(token("submitter", ["site-a"]), "", "task")).toBe("site-a");
    expect(() => submitCluster(token("submitter", ["site-a"]), "site-b", "task")).toThrow(
      /task\.clusterId: cluster site-b is outside token:t1's clusters \(site-a\)/,
    );
    expect(() => submitCluster(token("submitter", ["site-a", "site-c"]), "", "task")).toThrow(/may submit only to clusters site-a, site-c; name one of them/);
    expect(submitCluster(token("submitter", []), "", "task")).toBe("");
  });

  it("a submitter cancels only its own tasks, an operator any in scope", () => {
    expect(() => requireCancel(token("submitter", []), task("site-a", "token:t1"))).not.toThrow();
    expect(() => requireCancel(token("submitter", [], "t2"), task("site-a", "token:t1"))).toThrow(
      /was submitted by token:t1; token:t2 may cancel only its own tasks/,
    );
    expect(() => requireCancel(token("operator", [], "t3"), task("site-a", "token:t1"))).not.toThrow();
    expect(() => requireCancel(token("operator", ["site-b"], "t3"), task("site-a", "token:t1"))).toThrow(PermissionDeniedError);
    expect(canSeeTask(token("viewer", ["site-b"]), task("site-a"))).toBe(false);
  });

  it("a node drains only itself", () => {
    const node: Principal = { kind: "node", id: "node:site-a/n1", nodeId: "n1", clusterId: "site-a", serial: "1" };
    expect(() => requireDrain(node, "n1", "site-a")).not.toThrow();
    expect(() => requireDrain(node, "n2", "site-a")).toThrow(/node n1 may drain only itself, not n2/);
  });
});
