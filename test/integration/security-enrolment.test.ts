// Agent identity end to end, with real agent and coordinator processes over real TLS: enrolment with a join token
// (CA pinned by its hash), mTLS afterwards, Register checked against the certificate, foreign certificates refused,
// node revocation cutting a live stream, renewal over the stream, and re-enrolment after expiry.
import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentService, ConnectRequestSchema, type ConnectRequest } from "../../gen/edgeplane/v1/agent_pb.js";
import { TokenKind } from "../../gen/edgeplane/v1/auth_pb.js";
import { NodeState, TaskState } from "../../gen/edgeplane/v1/types_pb.js";
import { AsyncQueue } from "../../lib/async-queue.js";
import { certificateInfo, createCaCertificate, generateKey, issueCertificate, privateKeyToPem } from "../../lib/pki.js";
import { Fleet, ROOT, waitFor, type Proc } from "../helpers/fleet.js";

const FAST = ["--heartbeat-interval", "200ms"];

/** The key and certificate an agent stored in its data directory. */
function storedIdentity(fleet: Fleet, nodeId: string): { keyPem: string; certPem: string } {
  const pem = readFileSync(join(fleet.dir, `agent-${nodeId}`, "node.pem"), "utf8");
  return {
    keyPem: /-----BEGIN PRIVATE KEY-----[\s\S]+?-----END PRIVATE KEY-----\n/.exec(pem)![0],
    certPem: /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n/.exec(pem)![0],
  };
}

/** Opens AgentService.Connect with a client certificate and sends one Register; resolves with the first reply or error. */
async function registerWith(fleet: Fleet, tls: { keyPem: string; certPem: string }, nodeId: string, clusterId: string): Promise<string> {
  const transport = createGrpcTransport({ baseUrl: `https://${fleet.address}`, nodeOptions: { ca: fleet.caPem, cert: tls.certPem, key: tls.keyPem } });
  const out = new AsyncQueue<ConnectRequest>();
  out.push(
    create(ConnectRequestSchema, {
      msg: { case: "register", value: { nodeId, clusterId, handlers: ["none"], totalCpuMillis: 1000, totalMemoryBytes: 1n << 30n, maxConcurrentTasks: 1 } },
    }),
  );
  const ac = new AbortController();
  try {
    for await (const res of createClient(AgentService, transport).connect(out, { signal: ac.signal, timeoutMs: 10_000 })) return `ok:${res.msg.case}`;
    return "ended";
  } catch (err) {
    return String(err);
  } finally {
    out.close();
    ac.abort();
  }
}

/** Waits for an agent process to exit (it refused to start) and returns its exit code and output. */
async function exitOf(p: Proc): Promise<{ code: number | null; out: string }> {
  const code = await Promise.race([p.exited, new Promise<null>((r) => setTimeout(() => r(null), 20_000))]);
  p.kill();
  return { code, out: p.output() };
}

describe("agent enrolment and node identity", () => {
  let fleet: Fleet;
  beforeAll(async () => {
    fleet = new Fleet();
    await fleet.startCoordinator(FAST);
  });
  afterAll(async () => fleet.stop());

  it("enrols with a join token: its own key, a certificate naming its node and cluster, stored 0600; then mTLS with no token", async () => {
    const { nodeId, p } = await fleet.startAgent("site-a", ["--workers", "1"], { nodeId: "enrol-1" });
    const dir = join(fleet.dir, `agent-${nodeId}`);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    for (const f of ["node.pem", "ca.crt"]) expect({ f, mode: statSync(join(dir, f)).mode & 0o777 }).toEqual({ f, mode: 0o600 });
    const { keyPem, certPem } = storedIdentity(fleet, nodeId);
    const info = certificateInfo(certPem);
    expect(info.sans).toEqual(["URI:edgeplane://node/site-a/enrol-1"]);
    expect(readFileSync(join(dir, "ca.crt"), "utf8")).toBe(fleet.caPem);
    // The key stayed on the node: nothing the coordinator stores holds it.
    const keyBody = keyPem.split("\n")[1];
    for (const f of ["auth.db", "auth.db-wal", "audit.log"]) {
      const bytes = readFileSync(join(fleet.coordinatorDir, f), { flag: "r" }).toString("latin1");
      expect(bytes.includes(keyBody)).toBe(false);
    }
    const { nodes } = await fleet.clients.identities.listNodeIdentities({});
    expect(nodes.find((n) => n.nodeId === nodeId)).toMatchObject({ clusterId: "site-a", serial: info.serial.replace(/^0+/, "") });

    p.kill("SIGKILL");
    await p.exited;
    await fleet.waitNodeState(nodeId, NodeState.DISCONNECTED);
    const again = await fleet.startAgent("site-a", ["--workers", "1"], { nodeId, env: { EDGEPLANE_JOIN_TOKEN: "" } });
    expect(again.p.output()).not.toMatch(/enrolling with the coordinator/);
    const id = await fleet.submit({ handler: "stats", input: { values: [1, 2, 3] }, clusterId: "site-a" });
    expect((await fleet.finish(id)).state).toBe(TaskState.SUCCEEDED);
    again.p.kill("SIGKILL");
  });

  it("refuses a coordinator whose CA is not the one the join token pins, naming both hashes", async () => {
    const token = await fleet.joinToken("site-a");
    const real = token.slice(3, 67);
    const forged = `EP1${"ab".repeat(32)}${token.slice(67)}`;
    const { p } = await fleet.startAgent("site-a", [], { nodeId: "pin-1", wait: false, env: { EDGEPLANE_JOIN_TOKEN: forged } });
    const { code, out } = await exitOf(p);
    expect(code).toBe(1);
    expect(out).toContain(`has CA sha256 ${real}`);
    expect(out).toContain(`pins CA sha256 ${"ab".repeat(32)}`);
  });

  it("refuses expired, revoked, used-up and wrong-cluster join tokens", async () => {
    const expired = await fleet.createToken({ kind: TokenKind.JOIN, clusters: ["site-a"], ttl: { seconds: 1n } });
    const revoked = await fleet.createToken({ kind: TokenKind.JOIN, clusters: ["site-a"] });
    await fleet.clients.tokens.revokeToken({ tokenId: revoked.slice(69, revoked.indexOf(".")) });
    const once = await fleet.createToken({ kind: TokenKind.JOIN, clusters: ["site-a"], maxUses: 1 });
    const siteB = await fleet.createToken({ kind: TokenKind.JOIN, clusters: ["site-b"] });
    await new Promise((r) => setTimeout(r, 1200));

    const cases: [string, string, RegExp][] = [
      ["tok-expired", expired, /enrolment refused: token \w+ expired at/],
      ["tok-revoked", revoked, /enrolment refused: token \w+ was revoked at/],
      ["tok-cluster", siteB, /enrolment refused: join token \w+ enrols nodes of cluster site-b, not site-a/],
    ];
    for (const [nodeId, token, message] of cases) {
      const { p } = await fleet.startAgent("site-a", [], { nodeId, wait: false, env: { EDGEPLANE_JOIN_TOKEN: token } });
      const { code, out } = await exitOf(p);
      expect({ nodeId, code }).toEqual({ nodeId, code: 1 });
      expect(out).toMatch(message);
    }
    const first = await fleet.startAgent("site-a", ["--workers", "1"], { nodeId: "tok-once-1", env: { EDGEPLANE_JOIN_TOKEN: once } });
    const { p } = await fleet.startAgent("site-a", [], { nodeId: "tok-once-2", wait: false, env: { EDGEPLANE_JOIN_TOKEN: once } });
    const second = await exitOf(p);
    expect(second.code).toBe(1);
    expect(second.out).toMatch(/enrolment refused: token \w+ is used up \(1 of 1 enrolments\)/);
    first.p.kill("SIGKILL");
  });

  it("refuses an enrolled node's Register that claims another node id or cluster, with PERMISSION_DENIED", async () => {
    const { nodeId, p } = await fleet.startAgent("site-a", ["--workers", "1"], { nodeId: "claim-1" });
    p.kill("SIGKILL");
    await p.exited;
    const tls = storedIdentity(fleet, nodeId);
    expect(await registerWith(fleet, tls, "someone-else", "site-a")).toMatch(
      /permission_denied.*this certificate is for node claim-1 in cluster site-a; Register claimed node someone-else in cluster site-a/i,
    );
    expect(await registerWith(fleet, tls, nodeId, "site-b")).toMatch(/permission_denied.*Register claimed node claim-1 in cluster site-b/i);
    // So no node of site-b exists to receive site-b's tasks; its own identity still registers.
    const { nodes } = await fleet.clients.clusters.listNodes({ clusterId: "site-b" });
    expect(nodes).toEqual([]);
    expect(await registerWith(fleet, tls, nodeId, "site-a")).toBe("ok:registered");
    // The agent refuses to run as another node on that identity, before connecting.
    const other = await fleet.startAgent("site-a", ["--data-dir", join(fleet.dir, "agent-claim-1")], {
      nodeId: "claim-2",
      wait: false,
      env: { EDGEPLANE_JOIN_TOKEN: "" },
    });
    const refused = await exitOf(other.p);
    expect(refused.code).toBe(1);
    expect(refused.out).toMatch(/is node claim-1 of cluster site-a, but this agent runs as node claim-2 of cluster site-a/);
  });

  it("refuses a client certificate from a foreign CA (the other way round: the agent refuses a foreign coordinator)", async () => {
    const key = await generateKey();
    const foreignCa = await createCaCertificate(key, {
      commonName: "foreign",
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 86_400_000),
    });
    const nodeKey = await generateKey();
    const cert = await issueCertificate({
      caPem: foreignCa,
      caKey: key,
      publicKey: nodeKey.publicKey,
      commonName: "claim-1",
      organization: "site-a",
      sans: [{ type: "uri", value: "edgeplane://node/site-a/claim-1" }],
      usage: "client",
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 86_400_000),
    });
    const res = await registerWith(fleet, { keyPem: await privateKeyToPem(nodeKey.privateKey), certPem: cert.pem }, "claim-1", "site-a");
    expect(res).toMatch(/unauthenticated.*needs credentials/i);
  });

  it("cuts a revoked node off while it streams, and it cannot reconnect", async () => {
    const { nodeId, p } = await fleet.startAgent("site-a", ["--workers", "1"], { nodeId: "revoke-1" });
    const res = await fleet.clients.identities.revokeNode({ nodeId });
    expect(res.disconnected).toBe(true);
    expect(res.node?.revokedAt).toBeDefined();
    await fleet.waitNodeState(nodeId, NodeState.DISCONNECTED, undefined, 5000);
    // Closed with the reason, then every reconnect is refused.
    await waitFor("the agent refused on reconnect", () => (p.output().match(/node revoke-1 was revoked/g) ?? []).length >= 3, 15_000);
    const { nodes } = await fleet.clients.clusters.listNodes({});
    expect(nodes.find((n) => n.id === nodeId)?.state).not.toBe(NodeState.READY);
    p.kill("SIGKILL");
    // Nor can the node id enrol again, even with a valid join token.
    const { p: again } = await fleet.startAgent("site-a", ["--data-dir", join(fleet.dir, "agent-revoke-1-fresh")], { nodeId, wait: false });
    const refused = await exitOf(again);
    expect(refused.code).toBe(1);
    expect(refused.out).toMatch(/enrolment refused: node revoke-1 was revoked at .*; enrol this machine under a new node id/);
  });
});

describe("data at rest", () => {
  it("the agent's journal and identity are 0600 files in a 0700 directory, as is the coordinator's data directory", async () => {
    const fleet = new Fleet();
    try {
      await fleet.startCoordinator(FAST);
      const { nodeId } = await fleet.startAgent("site-a", ["--workers", "1", "--handlers", join(ROOT, "test/fixtures/handlers")], { nodeId: "rest-1" });
      const id = await fleet.submit({ handler: "busy", input: { ms: 1500 } });
      await waitFor("the task running", async () => (await fleet.clients.tasks.getTask({ taskId: id })).task?.state === TaskState.RUNNING);
      // Paused coordinator: the result is journaled and waits there for an ack.
      fleet.coordinator!.proc.kill("SIGSTOP");
      const dir = join(fleet.dir, `agent-${nodeId}`);
      let files: string[] = [];
      try {
        files = await waitFor(
          "a journaled result",
          () => {
            const fs = readdirSync(dir).filter((f) => f !== "node.pem" && f !== "ca.crt");
            return fs.length > 0 ? fs : undefined;
          },
          15_000,
          100,
        );
      } finally {
        fleet.coordinator!.proc.kill("SIGCONT");
      }
      expect(statSync(dir).mode & 0o777).toBe(0o700);
      for (const f of [...files, "node.pem", "ca.crt"]) expect({ f, mode: statSync(join(dir, f)).mode & 0o777 }).toEqual({ f, mode: 0o600 });
      expect((await fleet.finish(id)).state).toBe(TaskState.SUCCEEDED);
      const coordinatorFiles = readdirSync(fleet.coordinatorDir);
      expect(coordinatorFiles).toContain("edgeplane.db");
      for (const f of coordinatorFiles) expect({ f, mode: statSync(join(fleet.coordinatorDir, f)).mode & 0o777 }).toEqual({ f, mode: 0o600 });
    } finally {
      await fleet.stop();
    }
  });
});

describe("--encrypt-journal", () => {
  it("the agent's journal holds neither its results nor their task ids in clear; the key file is 0600", async () => {
    const fleet = new Fleet();
    try {
      await fleet.startCoordinator(FAST);
      const keyFile = join(fleet.dir, "journal.key");
      const args = ["--workers", "1", "--handlers", join(ROOT, "test/fixtures/handlers"), "--encrypt-journal", keyFile];
      await fleet.startAgent("site-a", args, { nodeId: "enc-1" });
      const marker = 987_654.125;
      const id = await fleet.submit({ handler: "double", input: { values: [marker / 2] } });
      // Acknowledged records stay in the segment's bytes until compaction: exactly what a stolen disk would show.
      const done = (await fleet.finish(id)).state;
      expect(done).toBe(TaskState.SUCCEEDED);
      expect(statSync(keyFile).mode & 0o777).toBe(0o600);
      const dir = join(fleet.dir, "agent-enc-1");
      const onDisk = readdirSync(dir)
        .filter((f) => f.startsWith("journal-"))
        .map((f) => readFileSync(join(dir, f)));
      expect(onDisk.length).toBeGreaterThan(0);
      // The output (and the task id) appear nowhere in the journal's bytes, as text or as the double.
      const asDouble = Buffer.alloc(8);
      asDouble.writeDoubleLE(marker);
      for (const b of onDisk) {
        expect(b.includes(Buffer.from(id))).toBe(false);
        expect(b.includes(asDouble)).toBe(false);
      }
    } finally {
      await fleet.stop();
    }
  });
});

describe("certificate lifetimes", () => {
  let fleet: Fleet;
  beforeAll(async () => {
    fleet = new Fleet();
    await fleet.startCoordinator([...FAST, "--node-cert-ttl", "6s"]);
  });
  afterAll(async () => fleet.stop());

  it("renews a node's certificate over its open stream at two thirds of its life, and reconnects with the new one", async () => {
    const { nodeId, p } = await fleet.startAgent("site-a", ["--workers", "1"], { nodeId: "renew-1" });
    const first = certificateInfo(storedIdentity(fleet, nodeId).certPem);
    const renewed = await waitFor(
      "a renewed certificate on disk",
      () => {
        const c = certificateInfo(storedIdentity(fleet, nodeId).certPem);
        return c.serial !== first.serial ? c : undefined;
      },
      15_000,
      200,
    );
    expect(renewed.notAfter.getTime()).toBeGreaterThan(first.notAfter.getTime());
    expect(p.output()).toMatch(/node certificate renewed/);
    const { nodes } = await fleet.clients.identities.listNodeIdentities({});
    const rec = nodes.find((n) => n.nodeId === nodeId)!;
    expect(rec.renewedAt).toBeDefined();
    // Past the first certificate's end, the node is still there and a restart connects with the renewed one.
    await new Promise((r) => setTimeout(r, Math.max(0, first.notAfter.getTime() - Date.now() + 500)));
    await fleet.waitNodeState(nodeId, NodeState.READY);
    p.kill("SIGKILL");
    await p.exited;
    const again = await fleet.startAgent("site-a", ["--workers", "1"], { nodeId, env: { EDGEPLANE_JOIN_TOKEN: "" } });
    const id = await fleet.submit({ handler: "stats", input: { values: [4, 5] }, clusterId: "site-a" });
    expect((await fleet.finish(id)).state).toBe(TaskState.SUCCEEDED);
    again.p.kill("SIGKILL");
  });

  it("an agent offline past its certificate's expiry must re-enrol, and does with a new join token", async () => {
    const { nodeId, p } = await fleet.startAgent("site-a", ["--workers", "1"], { nodeId: "offline-1" });
    p.kill("SIGKILL");
    await p.exited;
    const cert = certificateInfo(storedIdentity(fleet, nodeId).certPem);
    await new Promise((r) => setTimeout(r, Math.max(0, cert.notAfter.getTime() - Date.now() + 500)));
    const noToken = await fleet.startAgent("site-a", [], { nodeId, wait: false, env: { EDGEPLANE_JOIN_TOKEN: "" } });
    const refused = await exitOf(noToken.p);
    expect(refused.code).toBe(1);
    expect(refused.out).toMatch(/node offline-1 must enrol \(its certificate expired at .*\): start it with a join token/);
    const fresh = await fleet.createToken({ kind: TokenKind.JOIN, clusters: ["site-a"], maxUses: 1 });
    const back = await fleet.startAgent("site-a", ["--workers", "1"], { nodeId, env: { EDGEPLANE_JOIN_TOKEN: fresh } });
    expect(back.p.output()).toMatch(/node offline-1 must enrol|enrolling with the coordinator/);
    expect(certificateInfo(storedIdentity(fleet, nodeId).certPem).serial).not.toBe(cert.serial);
    back.p.kill("SIGKILL");
  });
});
