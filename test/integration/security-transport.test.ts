// Transport security of a real coordinator process: TLS 1.2+ with a certificate from its own CA, renewed without a
// restart; the plaintext health port; --insecure only on loopback; key files others can read refused; plaintext
// clients, foreign CAs and CA hash mismatches failing clearly and at once.
import * as grpc from "@grpc/grpc-js";
import { execFile } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as tlsConnect, type PeerCertificate } from "node:tls";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCaCertificate, generateKey } from "../../lib/pki.js";
import { Fleet, ROOT, run, waitFor } from "../helpers/fleet.js";

const exec = promisify(execFile);
const BUF = join(ROOT, "node_modules/.bin/buf");

function hostPort(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(":");
  return { host: address.slice(0, i), port: Number(address.slice(i + 1)) };
}

/** Opens a TLS connection (as a gRPC client would: ALPN h2) and returns the peer certificate and protocol. */
function handshake(
  address: string,
  opts: { ca?: string; maxVersion?: "TLSv1.1" | "TLSv1.2" | "TLSv1.3"; minVersion?: "TLSv1" | "TLSv1.1" | "TLSv1.2" },
): Promise<{ cert: PeerCertificate; protocol: string | null }> {
  const { host, port } = hostPort(address);
  return new Promise((resolve, reject) => {
    const s = tlsConnect(
      { host, port, ca: opts.ca, servername: "localhost", ALPNProtocols: ["h2"], maxVersion: opts.maxVersion, minVersion: opts.minVersion },
      () => {
        const out = { cert: s.getPeerCertificate(), protocol: s.getProtocol() };
        s.destroy();
        resolve(out);
      },
    );
    s.once("error", reject);
  });
}

/** Starts a coordinator expected to refuse to start; resolves with its exit code and output. */
async function failedStart(args: string[]): Promise<{ code: number | null; out: string }> {
  const p = run(["coordinator", "--listen", "127.0.0.1:0", "--log-level", "info", ...args]);
  const code = await Promise.race([p.exited, new Promise<null>((r) => setTimeout(() => r(null), 15_000))]);
  p.kill();
  return { code, out: p.output() };
}

describe("a coordinator with the secure default", () => {
  let fleet: Fleet;
  beforeAll(async () => {
    fleet = new Fleet();
    await fleet.startCoordinator(["--serving-cert-ttl", "3s", "--health-listen", "127.0.0.1:0"]);
  });
  afterAll(async () => fleet.stop());

  it("creates its CA in the data directory (key 0600, directory 0700) and keeps every file there private", () => {
    const dir = fleet.coordinatorDir;
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(join(dir, "ca.key")).mode & 0o777).toBe(0o600);
    for (const f of ["admin.token", "auth.db", "audit.log", "edgeplane.db"])
      expect({ f, mode: statSync(join(dir, f)).mode & 0o777 }).toEqual({ f, mode: 0o600 });
    const ca = new X509Certificate(readFileSync(join(dir, "ca.crt")));
    expect(ca.ca).toBe(true);
  });

  it("serves TLS 1.2 or later only, with a certificate its CA issued for the listen address", async () => {
    const { cert, protocol } = await handshake(fleet.address, { ca: fleet.caPem });
    expect(["TLSv1.2", "TLSv1.3"]).toContain(protocol);
    expect(cert.subjectaltname).toContain("IP Address:127.0.0.1");
    expect(cert.subjectaltname).toContain("DNS:localhost");
    expect(new X509Certificate(cert.raw).checkIssued(new X509Certificate(fleet.caPem))).toBe(true);
    const tls12 = await handshake(fleet.address, { ca: fleet.caPem, maxVersion: "TLSv1.2" });
    expect(tls12.protocol).toBe("TLSv1.2");
    await expect(handshake(fleet.address, { ca: fleet.caPem, maxVersion: "TLSv1.1", minVersion: "TLSv1" })).rejects.toThrow(
      /protocol version|unsupported protocol|no protocols available/i,
    );
  });

  it("renews the serving certificate at two thirds of its life, without a restart", async () => {
    const first = (await handshake(fleet.address, { ca: fleet.caPem })).cert;
    const renewed = await waitFor(
      "a renewed serving certificate",
      async () => {
        const c = (await handshake(fleet.address, { ca: fleet.caPem })).cert;
        return c.serialNumber !== first.serialNumber ? c : undefined;
      },
      10_000,
      200,
    );
    expect(Date.parse(renewed.valid_to)).toBeGreaterThan(Date.parse(first.valid_to));
    // Same process, still answering on new connections with the new certificate.
    const again = fleet.connect({ token: fleet.adminToken });
    expect((await again.clusters.getStatus({})).nodes).toBe(0);
    expect(fleet.coordinator!.proc.exitCode).toBeNull();
  });

  it("answers health checks and server reflection without a token on the TLS port", async () => {
    const caFile = join(fleet.coordinatorDir, "ca.crt");
    const health = await exec(BUF, ["curl", "--protocol", "grpc", "--cacert", caFile, "-d", "{}", `https://${fleet.address}/grpc.health.v1.Health/Check`], {
      cwd: "/",
    });
    expect(JSON.parse(health.stdout).status).toBe("SERVING");
    const list = await exec(BUF, ["curl", "--protocol", "grpc", "--cacert", caFile, "--list-services", `https://${fleet.address}`], { cwd: "/" });
    expect(list.stdout).toContain("edgeplane.v1.TokenService");
    // Everything else needs a token.
    const refused = await exec(
      BUF,
      ["curl", "--protocol", "grpc", "--cacert", caFile, "-d", "{}", `https://${fleet.address}/edgeplane.v1.ClusterService/GetStatus`],
      { cwd: "/" },
    ).catch((e: { stderr: string }) => e);
    expect((refused as { stderr: string }).stderr).toMatch(/unauthenticated/i);
    const ok = await exec(
      BUF,
      [
        "curl",
        "--protocol",
        "grpc",
        "--cacert",
        caFile,
        "-H",
        `authorization: Bearer ${fleet.adminToken}`,
        "-d",
        "{}",
        `https://${fleet.address}/edgeplane.v1.ClusterService/GetStatus`,
      ],
      { cwd: "/" },
    );
    expect(JSON.parse(ok.stdout)).toHaveProperty("startedAt");
  });

  it("serves grpc.health.v1, and nothing else, in plaintext on --health-listen", async () => {
    const line = fleet
      .coordinator!.output()
      .split("\n")
      .find((l) => l.includes("plaintext health listener"));
    const address = JSON.parse(line!).address as string;
    // No reflection there either: the schema comes from the proto files.
    const health = await exec(
      BUF,
      ["curl", "--http2-prior-knowledge", "--protocol", "grpc", "--schema", join(ROOT, "proto"), "-d", "{}", `http://${address}/grpc.health.v1.Health/Check`],
      { cwd: "/" },
    );
    expect(JSON.parse(health.stdout).status).toBe("SERVING");
    const reflection = await exec(BUF, ["curl", "--http2-prior-knowledge", "--protocol", "grpc", "--list-services", `http://${address}`], { cwd: "/" }).catch(
      (e: { stderr: string }) => e,
    );
    expect((reflection as { stderr: string }).stderr).toMatch(/unimplemented/i);
    const other = await exec(
      BUF,
      [
        "curl",
        "--http2-prior-knowledge",
        "--protocol",
        "grpc",
        "--schema",
        join(ROOT, "proto"),
        "-d",
        "{}",
        `http://${address}/edgeplane.v1.ClusterService/GetStatus`,
      ],
      { cwd: "/" },
    ).catch((e: { stderr: string }) => e);
    expect((other as { stderr: string }).stderr).toMatch(/unimplemented/i);
  });

  it("a plaintext gRPC client against the TLS port fails at once with UNAVAILABLE, not a hang", async () => {
    const client = new grpc.Client(fleet.address, grpc.credentials.createInsecure());
    const started = Date.now();
    const err = await new Promise<grpc.ServiceError>((resolve) => {
      client.makeUnaryRequest(
        "/grpc.health.v1.Health/Check",
        (x: Buffer) => x,
        (b: Buffer) => b,
        Buffer.alloc(0),
        { deadline: Date.now() + 10_000 },
        (e) => resolve(e!),
      );
    });
    client.close();
    expect(err.code).toBe(grpc.status.UNAVAILABLE);
    expect(err.details).toMatch(/connect|connection/i);
    expect(Date.now() - started).toBeLessThan(10_000); // the deadline was not what ended it
    const cli = await fleet.cli(["status", "--insecure", "--timeout", "10s"]);
    expect(cli.code).toBe(1);
    expect(cli.out).toMatch(/the coordinator serves TLS unless it was started with --insecure; drop --insecure/);
  });

  it("a client that trusts another CA refuses the coordinator's certificate", async () => {
    const key = await generateKey();
    const foreign = await createCaCertificate(key, {
      commonName: "someone else's CA",
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 86_400_000),
    });
    await expect(handshake(fleet.address, { ca: foreign })).rejects.toThrow(/self[- ]signed|unable to verify|certificate/i);
    const err = await fleet
      .connect({ caPem: foreign, token: fleet.adminToken })
      .clusters.getStatus({})
      .catch((e: Error) => e);
    expect(String(err)).toMatch(/self[- ]signed|unable to verify|certificate/i);
  });

  it("the CLI pins the CA from the token's hash, and names both hashes when they differ", async () => {
    const pinned = await fleet.cli(["status"], { EDGEPLANE_CA: "" });
    expect(pinned.code).toBe(0);
    const real = fleet.adminToken.slice(3, 67);
    const wrong = `EP1${"0".repeat(64)}${fleet.adminToken.slice(67)}`;
    const refused = await fleet.cli(["status"], { EDGEPLANE_CA: "", EDGEPLANE_TOKEN: wrong });
    expect(refused.code).toBe(1);
    expect(refused.out).toContain(`has CA sha256 ${real}`);
    expect(refused.out).toContain(`pins CA sha256 ${"0".repeat(64)}`);
  });
});

describe("start-up checks", () => {
  const dirs: string[] = [];
  const tmp = () => {
    const d = mkdtempSync(join(tmpdir(), "edgeplane-sec-"));
    dirs.push(d);
    return d;
  };
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it("--insecure is refused on a non-loopback listen address, with a message saying why", async () => {
    for (const listen of ["0.0.0.0:0", "[::]:0"]) {
      const { code, out } = await failedStart(["--insecure", "--listen", listen, "--data-dir", tmp()]);
      expect(code).toBe(2);
      expect(out).toMatch(/--insecure serves plaintext with no authentication, so it is allowed only on a loopback address/);
    }
  });

  it("--insecure on loopback serves plaintext with no token needed", async () => {
    const fleet = new Fleet({ insecure: true });
    try {
      await fleet.startCoordinator();
      expect((await fleet.clients.clusters.getStatus({})).clusters).toBe(0);
      const tls = await fleet
        .connect({ insecure: false, caPem: "" })
        .clusters.getStatus({})
        .catch((e: Error) => e);
      expect(String(tls)).toMatch(/wrong version number|EPROTO|ssl/i);
    } finally {
      await fleet.stop();
    }
  });

  it("refuses to start when the CA key file is readable by others", async () => {
    const fleet = new Fleet();
    await fleet.startCoordinator();
    fleet.coordinator!.kill("SIGTERM");
    await fleet.coordinator!.exited;
    const key = join(fleet.coordinatorDir, "ca.key");
    chmodSync(key, 0o644);
    const { code, out } = await failedStart(["--data-dir", fleet.coordinatorDir]);
    await fleet.stop();
    expect(code).not.toBe(0);
    expect(out).toContain(`the CA private key ${key} is readable by others (mode 0644); run: chmod 600 ${key}`);
  });

  it("--ca-cert needs --ca-key", async () => {
    const { code, out } = await failedStart(["--data-dir", tmp(), "--ca-cert", "/nonexistent.crt"]);
    expect(code).toBe(2);
    expect(out).toMatch(/give both --ca-cert and --ca-key/);
  });
});
