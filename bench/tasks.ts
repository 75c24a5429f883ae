// Task requests and task watching as the benchmark's scenarios use them, over the public TaskService.
// Never retries: a failed call is a finding, reported by the scenario that made it.
import { performance } from "node:perf_hooks";
import { create, fromJson, toJson, type JsonValue } from "@bufbuild/protobuf";
import { ValueSchema, type Duration, type Value } from "@bufbuild/protobuf/wkt";
import type { EdgeplaneClients } from "../cli/client.js";
import { SubmitTaskRequestSchema, type SubmitTaskRequest } from "../gen/edgeplane/v1/task_pb.js";
import { Priority, ProcessingMode, TaskState, type Task } from "../gen/edgeplane/v1/types_pb.js";

/** Deterministic sensor-like readings: a slow wave plus a fast one, different per seed. */
export function readings(n: number, seed = 0): number[] {
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) out[i] = 20 + 5 * Math.sin((i + seed) / 50) + Math.sin((i + seed) * 7.3) + (i % 13) / 13;
  return out;
}

/** `{"values": [...]}` as a protobuf Value, the JSON form clients send for small inputs. */
export const jsonValuesInput = (values: readonly number[]): Value => fromJson(ValueSchema, { values: [...values] });

/** A NORMAL-priority LOCAL `stats` task over a JSON input, for the device's node. */
export function jsonStatsRequest(input: Value, deviceId: string): SubmitTaskRequest {
  return create(SubmitTaskRequestSchema, {
    task: { handler: "stats", deviceId, priority: Priority.NORMAL, processingMode: ProcessingMode.LOCAL, input },
  });
}

/** A NORMAL-priority `stats` task over a packed series (no JSON), in the given mode. */
export function seriesStatsRequest(values: number[], mode: ProcessingMode, deviceId: string): SubmitTaskRequest {
  return create(SubmitTaskRequestSchema, {
    task: { handler: "stats", deviceId, priority: Priority.NORMAL, processingMode: mode, series: { values } },
  });
}

export const isTerminal = (s: TaskState): boolean =>
  s === TaskState.SUCCEEDED || s === TaskState.FAILED || s === TaskState.CANCELLED || s === TaskState.EXPIRED;

/**
 * Watches a task with WatchTask, as clients do, and returns it in its terminal state with the time (performance.now())
 * its terminal update arrived. Reads the stream to its end, which the server promises right after the terminal
 * state: leaving the loop early leaves an abort listener on `signal` per call in @connectrpc/connect 2.1 (they pile
 * up over a long loop). Throws when the stream ends without a terminal state or does not end, on `timeoutMs` (sent
 * as the call's deadline) and on abort.
 */
export async function watchUntilTerminal(
  clients: EdgeplaneClients,
  taskId: string,
  signal: AbortSignal,
  timeoutMs: number,
): Promise<{ task: Task; at: number; seenAt: number }> {
  let last: Task | undefined;
  let terminal: { task: Task; at: number; seenAt: number } | undefined;
  try {
    for await (const res of clients.tasks.watchTask({ taskId }, { signal, timeoutMs })) {
      if (!res.task) continue;
      last = res.task;
      if (!terminal && isTerminal(last.state)) terminal = { task: last, at: performance.now(), seenAt: Date.now() };
    }
  } catch (err) {
    if (terminal && !signal.aborted)
      throw new Error(`WatchTask for ${taskId} did not end after the terminal state ${TaskState[terminal.task.state]}: ${errorText(err)}`, { cause: err });
    throw err;
  }
  if (!terminal) throw new Error(`WatchTask for ${taskId} ended in state ${last ? TaskState[last.state] : "none"} before a terminal state`);
  return terminal;
}

/** A Duration in ms, keeping the sub-millisecond part (the library's durationMs rounds to whole ms). */
export const exactMs = (d: Duration): number => Number(d.seconds) * 1000 + d.nanos / 1e6;

/** The agent-measured processing time of the task's successful attempt, in ms. */
export const processingMs = (t: Task): number | undefined => (t.processingTime ? exactMs(t.processingTime) : undefined);

/** The task's output as JSON, or undefined. */
export function outputOf(t: Task): Record<string, JsonValue> | undefined {
  const o = t.output ? toJson(ValueSchema, t.output) : undefined;
  return o !== null && typeof o === "object" && !Array.isArray(o) ? o : undefined;
}

/** One line about a task that did not succeed: state, node, attempts and the last error. */
export function describeFailure(t: Task): string {
  const errors = t.attempts.filter((a) => a.error).map((a) => `#${a.attempt} on ${a.nodeId}: ${a.error}`);
  return `task ${t.id} ${TaskState[t.state]} after ${t.attempts.length} attempt(s)${t.error ? `: ${t.error}` : ""}${errors.length ? ` [${errors.join("; ")}]` : ""}`;
}

/** The message of an RPC or other error, in one line. */
export const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err)).split("\n")[0];
