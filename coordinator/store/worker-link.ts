// The main thread's end of the commit worker: starts it, sends one batch at a time and hands back its outcome,
// restarts it with backoff when it dies (the store keeps the writes queued meanwhile). Keeps the process alive
// only while the store has writes to commit. Never runs SQL itself and never drops a batch it was given: a
// batch in flight when the worker dies is reported failed, so the store queues it again.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { backoffDelay } from "../../lib/backoff.js";
import type { FromWorker, Op, ToWorker, WireError, WorkerFault, WorkerInit } from "./worker-protocol.js";

/** starting → ready ⇄ (down → starting) …; stopping → stopped once the store closes. */
export type WorkerState = "starting" | "ready" | "down" | "stopping" | "stopped";

export interface CommitResult {
  /** Rows changed. */
  rows: number;
  /** Bytes of the values written. */
  bytes: number;
  /** Time in the transaction, fsync included, as the worker measured it. */
  ms: number;
}

export interface WorkerLinkOptions {
  init: WorkerInit;
  /** The worker's script (commit-worker.js). */
  url: URL;
  /** The worker is (again) ready to commit. */
  onReady(): void;
  /** The worker died or could not open the file; it is started again after `restartInMs`. */
  onDown(err: Error, restartInMs: number): void;
  /** First restart delay ceiling, in ms. Default 50. */
  restartBaseMs?: number;
  /** Longest restart delay, in ms. Default 5000. */
  restartMaxMs?: number;
}

/** What the worker reported as an Error, with SQLite's code kept (StoreWriteError shows it). */
export function fromWire(e: WireError): Error {
  const err = new Error(e.message) as Error & { code?: string };
  err.name = e.name;
  if (e.code !== undefined) err.code = e.code;
  return err;
}

/** The worker's script beside this module; from the TypeScript sources (vitest), the build output's. */
export function defaultWorkerUrl(): URL {
  const beside = new URL("./commit-worker.js", import.meta.url);
  if (!import.meta.url.endsWith(".ts")) return beside;
  return new URL("../../dist/coordinator/store/commit-worker.js", import.meta.url);
}

export function assertWorkerScript(url: URL): void {
  if (url.protocol === "file:" && !existsSync(fileURLToPath(url))) {
    throw new Error(`task store: commit worker script ${fileURLToPath(url)} does not exist; build first (npm run build)`);
  }
}

/**
 * The process's flags without those that give it code to run (`node -e …`): a worker inherits the flags, and
 * with `-e` it would run that code instead of its script.
 */
function workerExecArgv(): string[] {
  const out: string[] = [];
  const args = process.execArgv;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "-e" || a === "--eval" || a === "-p" || a === "--print" || a === "--input-type") {
      i += 1;
      continue;
    }
    if (a.startsWith("--eval=") || a.startsWith("--print=") || a.startsWith("--input-type=")) continue;
    out.push(a);
  }
  return out;
}

interface InFlight {
  id: number;
  resolve(r: CommitResult): void;
  reject(e: Error): void;
}

export class WorkerLink {
  private worker: Worker | undefined;
  private current: InFlight | undefined;
  private nextId = 1;
  private failures = 0;
  private restartTimer: NodeJS.Timeout | undefined;
  private lastError: Error | undefined;
  private busy = false;
  private readyWaiters: { resolve(): void; reject(e: Error): void }[] = [];
  private stopped: Promise<void> | undefined;
  state: WorkerState = "stopped";
  /** Times the worker was started again after it died. */
  restarts = 0;

  constructor(private readonly opts: WorkerLinkOptions) {}

  /** Why the worker is not ready (the last error it reported or died of). */
  get error(): Error | undefined {
    return this.lastError;
  }

  start(): void {
    this.restartTimer = undefined;
    this.state = "starting";
    const w = new Worker(this.opts.url, { workerData: this.opts.init, execArgv: workerExecArgv() });
    this.worker = w;
    if (!this.busy) w.unref();
    let died: Error | undefined;
    w.on("message", (m: FromWorker) => this.onMessage(m, (e) => (died = e)));
    // An uncaught exception in the worker: 'exit' follows.
    w.on("error", (e) => (died ??= e));
    w.on("exit", (code) => this.onExit(w, died ?? new Error(`the commit worker exited with code ${code}`)));
  }

  /** Runs one batch; only one at a time (the store's group commit sees to that). */
  commit(ops: Op[]): Promise<CommitResult> {
    if (this.state !== "ready" || !this.worker) return Promise.reject(this.lastError ?? new Error(`the commit worker is ${this.state}`));
    if (this.current) return Promise.reject(new Error("a commit is already in flight"));
    const id = this.nextId++;
    return new Promise<CommitResult>((resolve, reject) => {
      this.current = { id, resolve, reject };
      this.post({ type: "commit", id, ops });
    });
  }

  fault(f: WorkerFault): void {
    this.post({ type: "fault", fault: f });
  }

  /** While busy the worker (or its restart timer) keeps the process alive; idle, it does not. */
  setBusy(busy: boolean): void {
    if (busy === this.busy) return;
    this.busy = busy;
    if (busy) {
      this.worker?.ref();
      this.restartTimer?.ref();
    } else {
      this.worker?.unref();
      this.restartTimer?.unref();
    }
  }

  /** Resolves once the worker is ready; if it is down, starts it now instead of after its backoff. */
  whenReady(): Promise<void> {
    if (this.state === "ready") return Promise.resolve();
    if (this.state === "stopping" || this.state === "stopped") return Promise.reject(new Error("the commit worker is stopped"));
    if (this.state === "down") {
      clearTimeout(this.restartTimer);
      this.restarts += 1;
      this.start();
    }
    return new Promise((resolve, reject) => this.readyWaiters.push({ resolve, reject }));
  }

  /** Closes the worker's connection (checkpointing the WAL when it is the last one) and ends it. */
  stop(): Promise<void> {
    this.stopped ??= new Promise<void>((resolve) => {
      clearTimeout(this.restartTimer);
      const w = this.worker;
      const wasReady = this.state === "ready";
      this.state = "stopping";
      if (!w) {
        this.state = "stopped";
        resolve();
        return;
      }
      w.ref();
      w.once("exit", () => {
        this.state = "stopped";
        resolve();
      });
      if (wasReady) this.post({ type: "close" });
      else void w.terminate();
    });
    return this.stopped;
  }

  private post(m: ToWorker): void {
    this.worker?.postMessage(m);
  }

  private onMessage(m: FromWorker, died: (e: Error) => void): void {
    switch (m.type) {
      case "ready":
        this.state = "ready";
        this.failures = 0;
        this.lastError = undefined;
        for (const w of this.readyWaiters.splice(0)) w.resolve();
        this.opts.onReady();
        break;
      case "open-failed":
        died(fromWire(m.error));
        break;
      case "committed":
      case "failed": {
        const c = this.current;
        if (!c || c.id !== m.id) return;
        this.current = undefined;
        if (m.type === "committed") c.resolve({ rows: m.rows, bytes: m.bytes, ms: m.ms });
        else c.reject(fromWire(m.error));
        break;
      }
      case "closed":
        break;
      default: {
        const never: never = m;
        throw new Error(`unknown message from the commit worker: ${JSON.stringify(never)}`);
      }
    }
  }

  private onExit(w: Worker, err: Error): void {
    if (w !== this.worker) return;
    this.worker = undefined;
    if (this.state === "stopping" || this.state === "stopped") return;
    this.state = "down";
    this.lastError = err;
    const c = this.current;
    this.current = undefined;
    c?.reject(err);
    for (const r of this.readyWaiters.splice(0)) r.reject(err);
    this.failures += 1;
    const delay = backoffDelay(this.failures, { baseMs: this.opts.restartBaseMs ?? 50, maxMs: this.opts.restartMaxMs ?? 5000 });
    this.restartTimer = setTimeout(() => {
      this.restarts += 1;
      this.start();
    }, delay);
    if (!this.busy) this.restartTimer.unref();
    this.opts.onDown(err, delay);
  }
}
