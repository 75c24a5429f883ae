// Closed-loop batch submission shared by scenarios: S concurrent submitters, each sending its next batch when the
// previous one is acknowledged, until `total` orders are out. Collects accepted ids and round trips; never retries.
import { performance } from "node:perf_hooks";
import { fmtMs, type Failures } from "./measure.js";
import type { Order, SystemRun } from "./systems/system.js";
import { errorText } from "./tasks.js";

export interface BatchPlan {
  total: number;
  batchSize: number;
  /** Concurrent submitters; submitter k sends on client lane k. */
  submitters: number;
  /** The i-th order of the run (0-based). */
  order(i: number): Order;
}

export interface BatchOutcome {
  accepted: Set<string>;
  /** Round trip of each batch call, in ms. */
  batchMs: number[];
  /** performance.now() when the first call went out and when the last one came back. */
  startAt: number;
  endAt: number;
}

export async function submitInBatches(sys: SystemRun, p: BatchPlan, signal: AbortSignal, failures: Failures): Promise<BatchOutcome> {
  const batches = Math.ceil(p.total / p.batchSize);
  const accepted = new Set<string>();
  const batchMs: number[] = [];
  let next = 0;
  const startAt = performance.now();
  const submitter = async (lane: number): Promise<void> => {
    for (let b = next++; b < batches && !signal.aborted; b = next++) {
      const first = b * p.batchSize;
      const orders = Array.from({ length: Math.min(p.batchSize, p.total - first) }, (_, k) => p.order(first + k));
      const s = performance.now();
      try {
        const res = await sys.submitBatch(orders, lane, signal);
        batchMs.push(performance.now() - s);
        for (const id of res.ids) if (id !== undefined) accepted.add(id);
        for (const r of res.rejected) failures.add(`batch ${b} rejected a task: ${r}`);
      } catch (err) {
        if (!signal.aborted) failures.add(`batch ${b} of ${orders.length} tasks failed after ${fmtMs(performance.now() - s)} ms: ${errorText(err)}`);
      }
    }
  };
  await Promise.all(Array.from({ length: p.submitters }, (_, k) => submitter(k)));
  return { accepted, batchMs, startAt, endAt: performance.now() };
}
