// Builds SubmitTaskRequests from `submit` flags or from a JSON file in the proto JSON shape.
// Pure: no file reads, no clock, no network (callers pass file text and `now`).
import { durationFromMillis } from "../lib/duration.js";
import { create, fromJson, type JsonValue } from "@bufbuild/protobuf";
import { timestampFromDate, ValueSchema } from "@bufbuild/protobuf/wkt";
import { SubmitTaskRequestSchema, type SubmitTaskRequest } from "../gen/edgeplane/v1/task_pb.js";
import { Priority, PrioritySchema, ProcessingMode, ProcessingModeSchema, TaskSpecSchema } from "../gen/edgeplane/v1/types_pb.js";
import { UsageError } from "./errors.js";
import { parseBytes, parseDeadline, parseDuration, parseEnum, parseInteger, parseJson, parseLabels, parseMillicores, parseNumberList } from "./parse.js";

/** `submit` flags as typed on the command line (strings, unparsed), so they can be tested as such. */
export interface SubmitFlags {
  handler?: string;
  name?: string;
  device?: string;
  /** critical | high | normal | low | background. Default normal. */
  priority?: string;
  /** local | distributed | hybrid | cloud_fallback. Default local. */
  mode?: string;
  /** Task input as JSON text (from `--input`, or the contents of `--input-file`). */
  input?: string;
  /** `1,2,3`: shorthand for the input `{"values":[1,2,3]}`. */
  values?: string;
  /** Bytes, with optional suffix: 64Mi, 1Gi, 512Ki, 100MB. */
  memory?: string;
  /** Millicores. */
  cpu?: string;
  /** Expected processing time: 250ms, 2s. */
  estimate?: string;
  /** RFC 3339, or relative to now: 30s, 5m. */
  deadline?: string;
  maxRetries?: string;
  cluster?: string;
  /** `k=v` strings. */
  label?: string[];
  idempotencyKey?: string;
}

/** Default priority and mode when the flags do not say (the server never sees UNSPECIFIED from the CLI). */
export const DEFAULT_PRIORITY = Priority.NORMAL;
export const DEFAULT_MODE = ProcessingMode.LOCAL;

/** Runs a parser and prefixes its UsageError with the flag it came from. */
function flag<I, T>(name: string, text: I | undefined, parse: (t: I) => T): T | undefined {
  if (text === undefined) return undefined;
  try {
    return parse(text);
  } catch (err) {
    if (err instanceof UsageError) throw new UsageError(`${name}: ${err.message}`);
    throw err;
  }
}

/** The task input from `--input` or `--values` (never both). */
function inputValue(f: SubmitFlags): JsonValue | undefined {
  if (f.input !== undefined && f.values !== undefined) throw new UsageError("--values and --input/--input-file cannot be combined");
  if (f.values !== undefined) return { values: flag("--values", f.values, parseNumberList) ?? [] };
  if (f.input !== undefined) return parseJson(f.input, "--input");
  return undefined;
}

/**
 * The request `submit` sends for the given flags. Unset optional fields stay unset so the coordinator
 * applies its defaults (memory, CPU, retries); priority and mode default to normal and local.
 */
export function buildSubmitRequest(f: SubmitFlags, now: Date): SubmitTaskRequest {
  if (!f.handler) throw new UsageError("--handler is required (or give --file with task definitions)");
  const input = inputValue(f);
  const memory = flag("--memory", f.memory, parseBytes);
  const estimate = flag("--estimate", f.estimate, parseDuration);
  const deadline = flag("--deadline", f.deadline, (t) => parseDeadline(t, now));
  const spec = create(TaskSpecSchema, {
    name: f.name ?? "",
    handler: f.handler,
    deviceId: f.device ?? "",
    priority: flag("--priority", f.priority, (t) => parseEnum(PrioritySchema, t) as Priority) ?? DEFAULT_PRIORITY,
    processingMode: flag("--mode", f.mode, (t) => parseEnum(ProcessingModeSchema, t) as ProcessingMode) ?? DEFAULT_MODE,
    input: input === undefined ? undefined : fromJson(ValueSchema, input),
    requiredMemoryBytes: memory === undefined ? undefined : BigInt(memory),
    requiredCpuMillis: flag("--cpu", f.cpu, parseMillicores),
    estimatedComputeTime: estimate === undefined ? undefined : durationFromMillis(Math.round(estimate)),
    deadline: deadline === undefined ? undefined : timestampFromDate(deadline),
    maxRetries: flag("--max-retries", f.maxRetries, (t) => parseInteger(t, 0, 2 ** 31 - 1)),
    clusterId: f.cluster ?? "",
    labels: flag("--label", f.label, parseLabels) ?? {},
  });
  return create(SubmitTaskRequestSchema, { task: spec, idempotencyKey: f.idempotencyKey ?? "" });
}

/**
 * Parses a `--file` document into requests. Accepted shapes, all in proto JSON
 * (`{"task":{"handler":"stats","priority":"PRIORITY_HIGH",…},"idempotencyKey":"…"}`):
 * one SubmitTaskRequest, an array of them, or a SubmitTasksRequest `{"tasks":[…]}`.
 * A task without priority or processingMode gets normal and local, as with the flags.
 */
export function parseSubmitFile(text: string, source: string): SubmitTaskRequest[] {
  const doc = parseJson(text, source);
  const items: JsonValue[] = Array.isArray(doc) ? doc : isObject(doc) && Array.isArray(doc.tasks) && !("task" in doc) ? doc.tasks : [doc];
  if (items.length === 0) throw new UsageError(`${source} holds no tasks`);
  return items.map((item, i) => {
    const where = items.length > 1 ? `${source}: task ${i + 1}` : source;
    if (!isObject(item)) throw new UsageError(`${where}: expected an object like {"task":{"handler":"stats",…}}`);
    if (!("task" in item) && "handler" in item) {
      throw new UsageError(`${where}: wrap the task spec as {"task": {...}, "idempotencyKey": "..."} (SubmitTaskRequest JSON)`);
    }
    let req: SubmitTaskRequest;
    try {
      req = fromJson(SubmitTaskRequestSchema, item);
    } catch (err) {
      throw new UsageError(`${where}: ${(err as Error).message}`);
    }
    if (!req.task?.handler) throw new UsageError(`${where}: task.handler is required`);
    // Same defaults as the flags, so a file and the equivalent flags submit the same task.
    if (req.task.priority === Priority.UNSPECIFIED) req.task.priority = DEFAULT_PRIORITY;
    if (req.task.processingMode === ProcessingMode.UNSPECIFIED) req.task.processingMode = DEFAULT_MODE;
    return req;
  });
}

function isObject(v: JsonValue): v is { [key: string]: JsonValue } {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
