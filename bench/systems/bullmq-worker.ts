// One BullMQ worker process of the benchmark's comparison: runs the repository's built-in `stats` handler (the very
// function edgeplane's agents run) on each job's `{values}` and returns its result, which BullMQ keeps. Started by
// bullmq.ts with an IPC channel: sends "ready" once connected, exits on SIGTERM after worker.close().
//   node dist/bench/systems/bullmq-worker.js --host H --port P --queue NAME --concurrency N
import { parseArgs } from "node:util";
import { Worker } from "bullmq";
import { plainContext, statsHandler } from "../../lib/analytics/index.js";

const { values } = parseArgs({
  options: { host: { type: "string" }, port: { type: "string" }, queue: { type: "string" }, concurrency: { type: "string" } },
  strict: true,
});
const port = Number(values.port),
  concurrency = Number(values.concurrency);
if (!values.host || !values.queue || !Number.isInteger(port) || !Number.isInteger(concurrency) || concurrency < 1) {
  process.stderr.write("usage: bullmq-worker --host H --port P --queue NAME --concurrency N\n");
  process.exit(2);
}

const worker = new Worker(values.queue, async (job) => statsHandler.run({ values: (job.data as { values: number[] }).values }, plainContext()), {
  connection: { host: values.host, port },
  concurrency,
  // Finished jobs and their results are kept: the jobs say so (removeOnComplete: false, see bullmq.ts).
});
worker.on("error", (err) => process.stderr.write(`bullmq worker error: ${err.message}\n`));
await worker.waitUntilReady();
process.send?.("ready");

let closing = false;
const shutdown = () => {
  if (closing) process.exit(1);
  closing = true;
  worker.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
// The benchmark died without stopping us.
process.on("disconnect", shutdown);
