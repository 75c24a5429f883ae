// What a comparing scenario drives: one run of a task system (edgeplane, or BullMQ on a Redis) with the same `stats`
// orders, submitted on client lanes and completed on one live completion stream. Types and shared inputs only.
import type { ResultRow } from "../scenario.js";
import { readings } from "../tasks.js";

/**
 * The systems a scenario can run: edgeplane (secured, the product's default), edgeplane with --insecure (plaintext,
 * no tokens: to show what TLS + auth cost), BullMQ on the shared Redis, BullMQ on the benchmark's fsyncing Redis.
 */
export type SystemId = "edgeplane" | "edgeplane-insecure" | "bullmq" | "bullmq-fsync";

export type OrderPriority = "low" | "normal" | "critical";

/** One task as a scenario orders it: the same `stats` over the same numbers, whichever system runs it. */
export interface Order {
  /** Which shared input: INPUTS[input % INPUTS.length]. */
  input: number;
  priority: OrderPriority;
  /** Which device (edgeplane: agent `device % agents` serves it, LOCAL mode); BullMQ has no placement and ignores it. */
  device: number;
}

/** Values in every task's input: `stats` over 100 numbers, as issue 8 measured. */
export const VALUES_PER_TASK = 100;

/** The distinct inputs orders cycle through, built once per process (building requests is not what is measured). */
export const INPUTS: readonly (readonly number[])[] = Array.from({ length: 16 }, (_, k) => readings(VALUES_PER_TASK, k * 977));

/** A task the system reports terminal. */
export interface Completion {
  id: string;
  /** performance.now() when the client saw it. */
  at: number;
  /** Succeeded with the expected output (a count of VALUES_PER_TASK). */
  ok: boolean;
  /** Why not, when not ok. */
  problem?: string;
}

/** Per-entry result of a batch submission, in order. */
export interface BatchResult {
  ids: (string | undefined)[];
  /** One line per rejected entry. */
  rejected: string[];
}

export interface SystemRunOptions {
  /** Names the run, e.g. `throughput-4x1 r1`. */
  label: string;
  /** Agents (edgeplane) or worker processes (BullMQ). */
  agents: number;
  /** Worker threads per agent (edgeplane) or concurrency per worker process (BullMQ). */
  slots: number;
  /** Independent client connections submissions go out on (edgeplane: HTTP/2 connections; BullMQ: Queue instances). */
  lanes: number;
  /** Gets every completion of this run's tasks, from the moment open() resolves. */
  onCompletion(c: Completion): void;
  /** Per-call deadline, in ms. */
  callTimeoutMs: number;
}

/**
 * One started run. open() has already proven the completion stream live: a probe task went through it before any
 * of the scenario's tasks (the probe is not counted).
 */
export interface SystemRun {
  readonly system: SystemId;
  /** How the report names it, e.g. "BullMQ 5.81.5 (Redis appendfsync always)". */
  readonly title: string;
  submitOne(o: Order, lane: number, signal: AbortSignal): Promise<string>;
  submitBatch(orders: readonly Order[], lane: number, signal: AbortSignal): Promise<BatchResult>;
  /**
   * When each task was handed to a worker and began (epoch ms: edgeplane attempt 1's startedAt, stamped by the
   * agent as the handler starts; BullMQ's processedOn, stamped as a worker takes the job).
   */
  startTimes(ids: readonly string[]): Promise<Map<string, number>>;
  /**
   * The steps before the start, where the system stamps them itself (epoch ms): edgeplane's createdAt (the
   * coordinator's handler took the request) and attempt 1's dispatchedAt (the scheduler placed it). Absent for
   * BullMQ, whose job timestamp is set by the client.
   */
  stageTimes?(ids: readonly string[]): Promise<Map<string, { received: number; dispatched: number }>>;
  /** Problems of the completion stream (ended early, errored); undefined while healthy. */
  streamProblem(): string | undefined;
  /** After the run: the system's own counters agree that `succeeded` tasks of this run succeeded; problems found. */
  verify(succeeded: number): Promise<string[]>;
  /** A one-line picture of where work is stuck, for stall messages. */
  diagnose(): Promise<string>;
  /** Rows on where the time went, after the run (edgeplane: task timelines). */
  insights(): Promise<ResultRow[]>;
  /** CPU seconds the system's processes used so far, by role (coordinator, agents, BullMQ workers, Redis). */
  cpuSeconds(): Record<string, number>;
  /** Facts needed to read its numbers (versions, configuration). */
  notes(): string[];
  /** Stops its processes and removes its data (BullMQ: the queue). Safe to call twice. */
  close(): Promise<void>;
}
