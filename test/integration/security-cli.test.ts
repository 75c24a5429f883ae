// The operator's security commands and the dev fleet, as real processes: `edgeplane dev` sets up CA, admin token and
// join tokens and prints the export lines a first session needs; token / node / cert commands manage access.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NodeState } from "../../gen/edgeplane/v1/types_pb.js";
import { CLI, Fleet, waitFor } from "../helpers/fleet.js";

/** Runs the CLI in `cwd` with exactly `env` (plus PATH), to completion. */
function cliIn(cwd: string, args: string[], env: Record<string, string>): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [CLI, ...args], { cwd, env: { PATH: process.env.PATH ?? "", ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    p.stdout.on("data", (d) => (out += d));
    p.stderr.on("data", (d) => (out += d));
    p.on("exit", (code) => resolve({ code, out }));
  });
}

describe("edgeplane dev (npm start)", () => {
  const cwd = mkdtempSync(join(tmpdir(), "edgeplane-dev-"));
  afterAll(() => rmSync(cwd, { recursive: true, force: true }));

  it("creates the CA, an admin token and join tokens, enrols its agents, and prints the token and export lines that work", async () => {
    const dev = spawn(
      process.execPath,
      [CLI, "dev", "--listen", "127.0.0.1:0", "--ready-file", "ready", "--edge-agents", "1", "--cloud-agents", "1", "--workers", "1", "--log-level", "warn"],
      {
        cwd,
        env: { PATH: process.env.PATH ?? "" },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let out = "";
    let err = "";
    dev.stdout.on("data", (d) => (out += d));
    dev.stderr.on("data", (d) => (err += d));
    const exited = new Promise<number | null>((r) => dev.on("exit", (code) => r(code)));
    try {
      const banner = await waitFor("the dev banner", () => (out.includes("Ctrl-C stops") ? out : undefined), 30_000);
      const exports = Object.fromEntries([...banner.matchAll(/^ {2}export (EDGEPLANE_\w+)=(\S+)$/gm)].map((m) => [m[1], m[2]]));
      expect(Object.keys(exports).sort()).toEqual(["EDGEPLANE_ADDR", "EDGEPLANE_CA", "EDGEPLANE_TOKEN"]);
      expect(exports.EDGEPLANE_TOKEN).toMatch(/^EP1[0-9a-f]{64}::\w+\.[\w-]+$/);
      expect(banner).toContain(`Admin token (keep it secret):\n  ${exports.EDGEPLANE_TOKEN}`);
      expect(exports.EDGEPLANE_CA).toBe(join(cwd, "data", "ca.crt"));
      expect(statSync(join(cwd, "data")).mode & 0o777).toBe(0o700);

      // Another shell with the printed exports, from anywhere.
      const elsewhere = mkdtempSync(join(tmpdir(), "edgeplane-shell-"));
      await waitFor(
        "both agents enrolled and ready",
        async () => {
          const r = await cliIn(elsewhere, ["nodes", "--json"], exports);
          const nodes = r.code === 0 ? (JSON.parse(r.out).nodes ?? []) : [];
          return nodes.filter((n: { state: string }) => n.state === NodeState[NodeState.READY] || n.state === "NODE_STATE_READY").length === 2;
        },
        30_000,
        250,
      );
      const submitted = await cliIn(elsewhere, ["submit", "--handler", "stats", "--values", "1,2,3,4", "--wait"], exports);
      rmSync(elsewhere, { recursive: true, force: true });
      expect(submitted.code).toBe(0);
      expect(submitted.out).toMatch(/succeeded/);
      // From the dev directory, as the README's second command: no exports but the address (port 0 here).
      const plain = await cliIn(cwd, ["status", "--coordinator", exports.EDGEPLANE_ADDR], {});
      expect(plain.code).toBe(0);
      expect(plain.out).toMatch(/Nodes\s+2/);
      // The agents enrolled with the join tokens dev made; none of the tokens reached a log.
      expect(readFileSync(join(cwd, "data", "agent-site-a-1", "node.pem"), "utf8")).toMatch(/BEGIN CERTIFICATE/);
      expect(err).not.toContain(exports.EDGEPLANE_TOKEN.split(".")[1]);
    } finally {
      dev.kill("SIGINT");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))]);
      if (dev.exitCode === null) dev.kill("SIGKILL");
    }
    expect(await exited).toBe(0);
  });
});

describe("token, node and cert commands", () => {
  let fleet: Fleet;
  beforeAll(async () => {
    fleet = new Fleet();
    await fleet.startCoordinator();
  });
  afterAll(async () => fleet.stop());

  it("token create prints only the token on stdout; list shows no secret; revoke makes it UNAUTHENTICATED", async () => {
    const created = await fleet.cli(["token", "create", "--role", "viewer", "--clusters", "site-a", "--ttl", "1h", "--description", "dashboards"]);
    expect(created.code).toBe(0);
    const token = created.out.split("\n")[0];
    expect(token).toMatch(/^EP1[0-9a-f]{64}::(\w+)\.[\w-]+$/);
    const id = /::(\w+)\./.exec(token)![1];
    expect(created.out).toMatch(new RegExp(`created viewer token ${id} for clusters site-a, expires .*; it is shown only now`));
    const list = await fleet.cli(["token", "list"]);
    expect(list.out).toMatch(new RegExp(`${id}\\s+api\\s+viewer\\s+site-a\\s+0\\s+.*active\\s+token:\\w+\\s+dashboards`));
    expect(list.out).not.toContain(token.split(".")[1]);
    expect((await fleet.cli(["status"], { EDGEPLANE_TOKEN: token })).code).toBe(0);
    expect((await fleet.cli(["token", "revoke", id])).out).toContain(`token ${id} revoked`);
    const after = await fleet.cli(["status"], { EDGEPLANE_TOKEN: token });
    expect(after.code).toBe(1);
    expect(after.out).toMatch(new RegExp(`UNAUTHENTICATED: token ${id} was revoked at`));
    const usage = await fleet.cli(["token", "create"]);
    expect(usage.code).toBe(2);
    expect(usage.out).toMatch(/give --cluster ID \(a join token for agents\) or --role ROLE/);
  });

  it("a join token from token create enrols an agent; node identities lists it and node revoke cuts it off", async () => {
    const join = (await fleet.cli(["token", "create", "--cluster", "site-a", "--uses", "1"])).out.split("\n")[0];
    const { nodeId } = await fleet.startAgent("site-a", ["--workers", "1"], { nodeId: "cli-node", env: { EDGEPLANE_JOIN_TOKEN: join } });
    const ids = await fleet.cli(["node", "identities"]);
    expect(ids.out).toMatch(new RegExp(`${nodeId}\\s+site-a\\s+\\w+\\s+.*enrolled`));
    const revoked = await fleet.cli(["node", "revoke", nodeId]);
    expect(revoked.out).toContain(`node ${nodeId} revoked; its stream was closed`);
    await fleet.waitNodeState(nodeId, NodeState.DISCONNECTED);
  });

  it("cert issue gives a client certificate that authenticates as the token, without the token", async () => {
    const dir = join(fleet.dir, "client-cert");
    const issued = await fleet.cli(["cert", "issue", "--out", dir]);
    expect(issued.code).toBe(0);
    expect(statSync(join(dir, "client.key")).mode & 0o777).toBe(0o600);
    const withCert = await fleet.cli(["token", "list", "--cert", join(dir, "client.crt"), "--key", join(dir, "client.key"), "--ca", join(dir, "ca.crt")], {
      EDGEPLANE_TOKEN: "",
    });
    expect(withCert.code).toBe(0);
    expect(withCert.out).toMatch(/bootstrap admin/);
  });
});
