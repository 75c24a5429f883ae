// The Redis servers BullMQ runs on in the benchmark: the shared one (checked, described, never changed) and one the
// benchmark starts itself with every write fsynced (appendonly yes, appendfsync always) in the run's directory, and
// always stops. Never touches keys outside the queues the benchmark created.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, openSync, closeSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import { fileSystemOf } from "../proc.js";
import { errorText } from "../tasks.js";

/** A Redis server the benchmark can use. */
export interface RedisTarget {
  host: string;
  port: number;
  /** e.g. "Redis 7.0.15 at 127.0.0.1:6379 (appendonly no, appendfsync everysec, save 3600 1 …; dir /var/lib/redis on ext4 …)". */
  description: string;
  /** Its process id, when this machine's /proc shows it (for CPU accounting). */
  pid: number | undefined;
}

/** A short-lived client that fails at once instead of retrying forever (ioredis's default). */
function probeClient(host: string, port: number): Redis {
  return new Redis({ host, port, lazyConnect: true, connectTimeout: 2_000, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false });
}

/** Connects, PINGs and describes the server; throws with a message saying what to do when it is not reachable. */
export async function describeRedis(host: string, port: number, what = "Redis"): Promise<RedisTarget> {
  const r = probeClient(host, port);
  // The cause behind ioredis's own "Connection is closed." (e.g. ECONNREFUSED).
  let connectError: Error | undefined;
  r.on("error", (err: Error) => (connectError ??= err));
  try {
    await r.connect();
    const pong = await r.ping();
    if (pong !== "PONG") throw new Error(`PING answered ${pong}`);
    const info = await r.info("server");
    const field = (k: string) => new RegExp(`^${k}:(.*)$`, "m").exec(info)?.[1]?.trim();
    const conf = async (k: string) => ((await r.config("GET", k)) as string[])[1] ?? "?";
    const dir = await conf("dir");
    const pid = Number(field("process_id"));
    return {
      host,
      port,
      pid: Number.isInteger(pid) ? pid : undefined,
      description: `Redis ${field("redis_version") ?? "?"} at ${host}:${port} (appendonly ${await conf("appendonly")}, appendfsync ${await conf("appendfsync")}, save "${await conf("save")}"; dir ${dir} on ${fileSystemOf(dir)})`,
    };
  } catch (err) {
    const cause = connectError ? errorText(connectError) : errorText(err);
    throw new Error(`${what} at ${host}:${port} is not usable (${cause}): start it, point --redis elsewhere, or pass --no-compare-bullmq`, { cause: err });
  } finally {
    r.disconnect();
  }
}

/** A free TCP port on 127.0.0.1 (redis-server cannot pick one itself: its --port 0 means "no TCP"). */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const a = srv.address();
      const port = typeof a === "object" && a ? a.port : 0;
      srv.close(() => (port ? resolve(port) : reject(new Error("no port"))));
    });
  });
}

/** A redis-server the benchmark started: every write appended and fsynced before it is acknowledged. */
export class FsyncRedis {
  private proc: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  target: RedisTarget | undefined;

  constructor(
    readonly dir: string,
    private readonly binary = "redis-server",
  ) {}

  /** Starts it on a free port and waits until it answers; throws (with its log's location) when it cannot. */
  async start(): Promise<RedisTarget> {
    mkdirSync(this.dir, { recursive: true });
    const port = await freePort();
    const log = join(this.dir, "redis.log");
    const fd = openSync(log, "a");
    const args = [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--dir",
      this.dir,
      "--daemonize",
      "no",
      "--save",
      "",
      "--appendonly",
      "yes",
      "--appendfsync",
      "always",
      "--protected-mode",
      "yes",
      "--logfile",
      "",
    ];
    const proc = spawn(this.binary, args, { stdio: ["ignore", fd, fd] });
    closeSync(fd);
    this.proc = proc;
    let spawnError: Error | undefined;
    this.exited = new Promise((res) => {
      proc.once("exit", () => res());
      proc.once("error", (err) => {
        spawnError = err;
        res();
      });
    });
    const end = Date.now() + 10_000;
    let last = "";
    while (Date.now() < end) {
      if (spawnError) throw new Error(`could not start ${this.binary} (${spawnError.message}): install Redis or pass --no-redis-fsync`);
      if (proc.exitCode !== null) throw new Error(`${this.binary} exited (${proc.exitCode}) at start; log ${log}`);
      try {
        this.target = await describeRedis("127.0.0.1", port, `the benchmark's own ${this.binary}`);
        return this.target;
      } catch (err) {
        last = errorText(err);
      }
      await sleep(100);
    }
    await this.stop();
    throw new Error(`${this.binary} on port ${port} did not answer within 10 s (${last}); log ${log}`);
  }

  /** SIGTERM, then SIGKILL after 5 s. Safe to call twice. */
  async stop(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    p.kill("SIGTERM");
    await Promise.race([this.exited, sleep(5_000)]);
    if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
    await Promise.race([this.exited, sleep(2_000)]);
  }

  /** Synchronous last resort (process exit). */
  killNow(): void {
    const p = this.proc;
    if (p && p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
  }
}
