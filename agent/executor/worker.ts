// Worker thread entry: loads the handlers once, then runs one attempt at a time for the agent.
// Owns nothing but its channel; it must never exit on a handler's failure (only the agent terminates it).

import { parentPort, workerData } from "node:worker_threads";
import { createRegistry } from "../../lib/analytics/registry.js";
import type { Handler } from "../../lib/analytics/types.js";
import { loadCustomHandlers } from "../handlers/custom-loader.js";
import { loadCollector } from "./gc.js";
import type { FromWorker, ResultMessage, ToWorker, WorkerInit } from "./protocol.js";
import { isolateMemoryInUse, startTask, type TaskRun } from "./task-runner.js";

/** Memory above the post-start baseline that makes a finished task worth a full GC (a few ms on small heaps). */
const GC_SLACK_BYTES = 4 * 1024 * 1024;

const port = parentPort;
if (!port) throw new Error("agent/executor/worker.js runs only as a worker thread");
const init = workerData as WorkerInit;
const flag = new Int32Array(init.abortFlag);
const send = (m: FromWorker) => port.postMessage(m);

let registry: ReadonlyMap<string, Handler> | undefined;
try {
  registry = createRegistry(init.handlersDir ? await loadCustomHandlers(init.handlersDir) : []);
} catch (err) {
  // No message listener is installed, so the thread ends once this is sent.
  send({ type: "init-failed", error: err instanceof Error ? err.message : String(err) });
}
if (registry) serve(registry);

function serve(handlers: ReadonlyMap<string, Handler>): void {
  const collect = loadCollector();
  collect?.();
  const baseline = isolateMemoryInUse();
  let current: { seq: number; run: TaskRun } | undefined;

  (port as NonNullable<typeof port>).on("message", (m: ToWorker) => {
    if (m.type === "abort") {
      if (current?.seq === m.seq) current.run.abort(m.kind, m.reason);
      return;
    }
    const run = startTask(handlers, m, flag);
    current = { seq: m.seq, run };
    void run.result.then((result) => {
      if (current?.seq === m.seq) current = undefined;
      post(result);
      // After posting, so the agent never waits for it; a following run message waits at most one GC.
      if (collect && isolateMemoryInUse() > baseline + GC_SLACK_BYTES) collect();
    });
  });
  send({ type: "ready", handlers: [...handlers.keys()].sort() });
}

/** Posts a result; an output structured clone refuses (despite the JSON check) becomes a failure, not a crash. */
function post(result: ResultMessage): void {
  try {
    send(result);
  } catch (err) {
    const { seq, processingMs, peakMemoryBytes, startedAt, finishedAt } = result;
    send({
      type: "result",
      seq,
      processingMs,
      peakMemoryBytes,
      startedAt,
      finishedAt,
      ok: false,
      kind: "output",
      error: `handler output could not be sent: ${(err as Error).message}`,
    });
  }
}
