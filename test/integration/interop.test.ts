// Interop is proven, not assumed: a plain @grpc/grpc-js client built by @grpc/proto-loader from the .proto files,
// and `buf curl` through server reflection, call a real coordinator process over TLS with a bearer token (and, for
// the agent stream, a node certificate the plain client enrolled for itself).
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCsr, generateKey, privateKeyToPem } from "../../lib/pki.js";
import { Fleet, ROOT } from "../helpers/fleet.js";

const exec = promisify(execFile);
const BUF = join(ROOT, "node_modules/.bin/buf");

let fleet: Fleet;
beforeAll(async () => {
  fleet = new Fleet();
  await fleet.startCoordinator();
  await fleet.startAgent("site-a", ["--workers", "2"]);
});
afterAll(async () => fleet.stop());

type Callback<T> = (err: grpc.ServiceError | null, res: T) => void;

/** TLS trusting the coordinator's CA, with the admin bearer token on every call. */
function credentials(): grpc.ChannelCredentials {
  return grpc.credentials.combineChannelCredentials(
    grpc.credentials.createSsl(Buffer.from(fleet.caPem)),
    grpc.credentials.createFromMetadataGenerator((_params, cb) => {
      const md = new grpc.Metadata();
      md.set("authorization", `Bearer ${fleet.adminToken}`);
      cb(null, md);
    }),
  );
}

function loadClients(address: string, creds: grpc.ChannelCredentials = credentials()) {
  const def = protoLoader.loadSync(["edgeplane/v1/task.proto", "edgeplane/v1/cluster.proto"], {
    includeDirs: [join(ROOT, "proto")],
    keepCase: false,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    edgeplane: { v1: { TaskService: grpc.ServiceClientConstructor; ClusterService: grpc.ServiceClientConstructor } };
  };
  return {
    tasks: new pkg.edgeplane.v1.TaskService(address, creds) as unknown as Record<string, (req: unknown, cb: Callback<any>) => void> & grpc.Client,
    clusters: new pkg.edgeplane.v1.ClusterService(address, creds) as unknown as Record<string, (req: unknown, cb: Callback<any>) => void> & grpc.Client,
    watch: (c: grpc.Client, req: unknown) => (c as unknown as { watchTask(r: unknown): grpc.ClientReadableStream<any> }).watchTask(req),
  };
}

const call = <T>(fn: (req: unknown, cb: Callback<T>) => void, req: unknown) =>
  new Promise<T>((resolve, reject) => fn(req, (err, res) => (err ? reject(err) : resolve(res))));

describe("a plain @grpc/grpc-js + proto-loader client", () => {
  it("submits a stats task with JSON input, watches it to success and reads the computed result", async () => {
    const c = loadClients(fleet.address);
    const submitted = await call<{ taskId: string; state: string }>(c.tasks.submitTask.bind(c.tasks), {
      task: {
        name: "interop",
        handler: "stats",
        deviceId: "sensor-1",
        priority: "PRIORITY_HIGH",
        processingMode: "PROCESSING_MODE_LOCAL",
        input: { structValue: { fields: { values: { listValue: { values: [2, 4, 4, 4, 5, 5, 7, 9].map((n) => ({ numberValue: n })) } } } } },
      },
    });
    expect(submitted.taskId).toMatch(/^t-/);
    const states: string[] = [];
    await new Promise<void>((resolve, reject) => {
      const s = c.watch(c.tasks, { taskId: submitted.taskId });
      s.on("data", (r: { task: { state: string } }) => states.push(r.task.state));
      s.on("end", resolve);
      s.on("error", reject);
    });
    expect(states.at(-1)).toBe("TASK_STATE_SUCCEEDED");
    const got = await call<{ task: { output: { structValue: { fields: Record<string, { numberValue: number }> } } } }>(c.tasks.getTask.bind(c.tasks), {
      taskId: submitted.taskId,
    });
    const f = got.task.output.structValue.fields;
    expect(f.count.numberValue).toBe(8);
    expect(f.mean.numberValue).toBe(5);
    expect(f.stddev.numberValue).toBeCloseTo(2, 12); // population stddev of the classic example
    c.tasks.close();
    c.clusters.close();
  });

  it("gets INVALID_ARGUMENT with a message naming the field for an unknown handler", async () => {
    const c = loadClients(fleet.address);
    const err = await call(c.tasks.submitTask.bind(c.tasks), {
      task: { handler: "no-such-handler", priority: "PRIORITY_LOW", processingMode: "PROCESSING_MODE_LOCAL" },
    }).catch((e: grpc.ServiceError) => e);
    expect((err as grpc.ServiceError).code).toBe(grpc.status.INVALID_ARGUMENT);
    expect((err as grpc.ServiceError).details).toMatch(/task\.handler: unknown handler "no-such-handler"/);
    c.tasks.close();
    c.clusters.close();
  });

  it("lists the registered node with its measured capacity", async () => {
    const c = loadClients(fleet.address);
    const res = await call<{ nodes: { id: string; state: string; totalCpuMillis: number; totalMemoryBytes: string }[] }>(
      c.clusters.listNodes.bind(c.clusters),
      {},
    );
    expect(res.nodes).toHaveLength(1);
    expect(res.nodes[0].state).toBe("NODE_STATE_READY");
    expect(res.nodes[0].totalCpuMillis).toBeGreaterThan(0);
    expect(Number(res.nodes[0].totalMemoryBytes)).toBeGreaterThan(0);
    c.tasks.close();
    c.clusters.close();
  });

  it("without the bearer token a call is UNAUTHENTICATED, saying what is needed", async () => {
    const c = loadClients(fleet.address, grpc.credentials.createSsl(Buffer.from(fleet.caPem)));
    const err = await call(c.clusters.listNodes.bind(c.clusters), {}).catch((e: grpc.ServiceError) => e);
    expect((err as grpc.ServiceError).code).toBe(grpc.status.UNAUTHENTICATED);
    expect((err as grpc.ServiceError).details).toMatch(/needs credentials: a bearer token \(authorization: Bearer <token>/);
    c.tasks.close();
    c.clusters.close();
  });

  it("AgentService.Connect: enrols with a join token, connects with mTLS, and after the half-close the stream ends with OK", async () => {
    const def = protoLoader.loadSync(["edgeplane/v1/agent.proto", "edgeplane/v1/auth.proto"], {
      includeDirs: [join(ROOT, "proto")],
      longs: String,
      enums: String,
      oneofs: true,
    });
    const pkg = grpc.loadPackageDefinition(def) as unknown as {
      edgeplane: { v1: { AgentService: grpc.ServiceClientConstructor; EnrolmentService: grpc.ServiceClientConstructor } };
    };
    // A cluster and a handler of its own, so this short-lived node neither takes work nor counts against site-a.
    const joinToken = await fleet.joinToken("interop-halfclose");
    const key = await generateKey();
    const enrolment = new pkg.edgeplane.v1.EnrolmentService(fleet.address, grpc.credentials.createSsl(Buffer.from(fleet.caPem))) as unknown as Record<
      string,
      (req: unknown, md: grpc.Metadata, cb: Callback<{ certificatePem: string }>) => void
    > &
      grpc.Client;
    const md = new grpc.Metadata();
    md.set("authorization", `Bearer ${joinToken}`);
    const csrPem = await createCsr(key, "x");
    const enrolled = await new Promise<{ certificatePem: string }>((resolve, reject) =>
      enrolment.enrol({ csrPem, nodeId: "interop-halfclose", clusterId: "" }, md, (e, r) => (e ? reject(e) : resolve(r))),
    );
    enrolment.close();
    const mtls = grpc.credentials.createSsl(Buffer.from(fleet.caPem), Buffer.from(await privateKeyToPem(key.privateKey)), Buffer.from(enrolled.certificatePem));
    const client = new pkg.edgeplane.v1.AgentService(fleet.address, mtls);
    const stream = (client as unknown as { connect(): grpc.ClientDuplexStream<unknown, { msg?: string }> }).connect();
    const seen: string[] = [];
    const ended = new Promise<grpc.StatusObject>((resolve, reject) => {
      // Before the fix the stream stayed open for good after a half-close: the timeout below would fail the test.
      const timer = setTimeout(() => reject(new Error(`stream still open 15 s after the half-close; saw ${seen.join(", ")}`)), 15_000);
      stream.on("data", (m) => {
        seen.push(m.msg ?? "?");
        if (m.msg === "registered") stream.end(); // half-close right after registering
      });
      stream.on("status", (st: grpc.StatusObject) => {
        clearTimeout(timer);
        resolve(st);
      });
      stream.on("error", () => {});
    });
    stream.write({
      register: {
        nodeId: "interop-halfclose",
        clusterId: "interop-halfclose",
        handlers: ["interop-none"],
        totalCpuMillis: 1000,
        totalMemoryBytes: "1073741824",
        maxConcurrentTasks: 1,
      },
    });
    const status = await ended;
    expect(seen[0]).toBe("registered");
    expect(status.code).toBe(grpc.status.OK);
    client.close();
  });
});

describe("buf curl through server reflection (no proto files), over TLS with the token", () => {
  const curl = (args: string[]) =>
    exec(BUF, ["curl", "--protocol", "grpc", "--cacert", join(fleet.coordinatorDir, "ca.crt"), "-H", `authorization: Bearer ${fleet.adminToken}`, ...args], {
      cwd: "/",
    });

  it("lists every service, health and reflection included", async () => {
    const { stdout } = await curl(["--list-services", `https://${fleet.address}`]);
    for (const s of ["edgeplane.v1.TaskService", "edgeplane.v1.ClusterService", "edgeplane.v1.AgentService", "grpc.health.v1.Health"]) {
      expect(stdout).toContain(s);
    }
    const methods = await curl(["--list-methods", `https://${fleet.address}`]);
    expect(methods.stdout).toContain("edgeplane.v1.TaskService/WatchTask");
  });

  it("submits with nested JSON input, a deadline and a duration, then streams the task to success", async () => {
    const deadline = new Date(Date.now() + 60_000).toISOString();
    const { stdout } = await curl([
      "-d",
      JSON.stringify({
        task: {
          name: "curl",
          handler: "threshold",
          priority: "PRIORITY_NORMAL",
          processingMode: "PROCESSING_MODE_LOCAL",
          input: { values: [1, 50, 3], rules: [{ name: "hot", op: ">", value: 10 }] },
          deadline,
          estimatedComputeTime: "0.250s",
        },
      }),
      `https://${fleet.address}/edgeplane.v1.TaskService/SubmitTask`,
    ]);
    const { taskId } = JSON.parse(stdout);
    const watch = await curl(["-d", JSON.stringify({ taskId }), `https://${fleet.address}/edgeplane.v1.TaskService/WatchTask`]);
    // buf curl prints one JSON document per streamed message.
    const docs = watch.stdout
      .trim()
      .split(/\n(?=\{)/)
      .map((s) => JSON.parse(s));
    const last = docs.at(-1).task;
    expect(last.state).toBe("TASK_STATE_SUCCEEDED");
    // The same instant; proto JSON leaves out a zero fraction ("…:46Z" for "…:46.000Z").
    expect(Date.parse(last.spec.deadline)).toBe(Date.parse(deadline));
    expect(last.spec.estimatedComputeTime).toBe("0.250s");
    expect(last.output.alerts).toEqual([expect.objectContaining({ rule: "hot", index: 1, value: 50 })]);
  });

  it("answers health checks with SERVING", async () => {
    const { stdout } = await curl(["-d", "{}", `https://${fleet.address}/grpc.health.v1.Health/Check`]);
    expect(JSON.parse(stdout).status).toBe("SERVING");
  });

  it("reports INVALID_ARGUMENT for a deadline already past", async () => {
    const err = await curl([
      "-d",
      JSON.stringify({ task: { handler: "stats", priority: "PRIORITY_NORMAL", processingMode: "PROCESSING_MODE_LOCAL", deadline: "2001-01-01T00:00:00Z" } }),
      `https://${fleet.address}/edgeplane.v1.TaskService/SubmitTask`,
    ]).catch((e: { stderr: string }) => e);
    expect((err as { stderr: string }).stderr).toMatch(/invalid_argument/i);
    expect((err as { stderr: string }).stderr).toMatch(/deadline.*already past/);
  });
});
