// TaskService over gRPC: converts requests, validates through tasks/validate.ts, delegates to the task manager
// and dispatcher. Transport only: no scheduling decisions here.
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { status } from "@grpc/grpc-js";
import {
  TaskService, SubmitTaskResponseSchema, SubmitTasksResultSchema, SubmitTasksResponseSchema, GetTaskResponseSchema, ListTasksResponseSchema,
  CancelTaskResponseSchema, WatchTaskResponseSchema, WatchTasksResponseSchema, type SubmitTaskRequest, type SubmitTaskResponse,
} from "../../gen/edgeplane/v1/task_pb.js";
import { Priority as PbPriority } from "../../gen/edgeplane/v1/types_pb.js";
import { AsyncQueue } from "../../lib/async-queue.js";
import type { CoordinatorConfig } from "../config.js";
import type { Dispatcher } from "../dispatch/dispatcher.js";
import { InvalidArgumentError, ResourceExhaustedError } from "../errors.js";
import type { NodeRegistry } from "../nodes/registry.js";
import type { TaskManager } from "../tasks/task-manager.js";
import { isTerminal, type TaskRecord, type TaskSpec, type TaskState } from "../tasks/types.js";
import { validateSpec } from "../tasks/validate.js";
import { checkSplittable } from "../distributed/validate.js";
import { canSeeTask, onlyCluster, ownerOf, requireCancel, requireCluster, requireTaskVisible, submitCluster, unscoped } from "../security/access.js";
import type { Principal } from "../security/principal.js";
import type { Quotas } from "../security/quotas.js";
import { draftFromPb, inputSize, priorityFromPb, taskStateFromPb, taskStateToPb, taskToPb } from "./convert.js";
import { toGrpcStatus } from "./errors.js";
import { wireSize, type ServiceImpl } from "./grpc-adapter.js";

export interface TaskServiceDeps {
  tasks: TaskManager;
  dispatcher: Dispatcher;
  registry: NodeRegistry;
  config: CoordinatorConfig;
  builtinHandlers: readonly string[];
  now: () => number;
  /** Per-token submission quotas (security/); none when absent. */
  quotas?: Quotas;
}

const MAX_BATCH = 10_000;

export function taskServiceImpl(d: TaskServiceDeps): ServiceImpl<typeof TaskService.method> {
  const validationContext = () => ({
    now: d.now(),
    knownHandlers: d.registry.knownHandlers(d.builtinHandlers),
    maxNodeMemoryBytes: d.registry.maxNodeMemory(),
    maxNodeCpuMillis: d.registry.maxNodeCpu(),
    knownClusters: new Set(d.registry.listClusters().map((c) => c.id)),
    maxInputBytes: d.config.maxInputBytes,
    defaultMemoryBytes: d.config.defaultMemoryBytes,
    defaultCpuMillis: d.config.defaultCpuMillis,
    defaultMaxRetries: d.config.defaultMaxRetries,
  });

  type Admit = { admit(inputBytes: number): void };
  const toSpec = (req: SubmitTaskRequest, bytes: number | undefined, field: string, ctx: ReturnType<typeof validationContext>, who: Principal, quota: Admit | undefined): TaskSpec => {
    const size = req.task && (bytes === undefined || bytes > d.config.maxInputBytes) ? inputSize(req.task) : (bytes ?? 0);
    const draft = draftFromPb(req.task, size, field);
    // Security: a token limited to some clusters submits only there (the one it has by default).
    draft.clusterId = submitCluster(who, draft.clusterId, field);
    const spec = validateSpec(draft, ctx, field);
    quota?.admit(size);
    if (spec.mode === "distributed" || spec.mode === "hybrid") checkSplittable(spec, d.registry.distributableHandlers(d.builtinHandlers), field);
    return spec;
  };

  const respond = (t: TaskRecord): SubmitTaskResponse => {
    const pos = d.dispatcher.queue.position(t.id);
    return create(SubmitTaskResponseSchema, {
      taskId: t.id,
      state: taskStateToPb(t.state),
      assignedCluster: t.assignedCluster,
      queuePosition: Math.max(0, pos),
      estimatedCompletion: timestampFromMs(estimateCompletion(t, Math.max(0, pos), d)),
    });
  };

  return {
    async submitTask(req, call) {
      const spec = toSpec(req, wireSize.get(req), "task", validationContext(), call.principal, d.quotas?.batch(call.principal));
      const [{ task }] = d.tasks.submit([{ spec, idempotencyKey: req.idempotencyKey, owner: ownerOf(call.principal) }]);
      d.dispatcher.pass();
      // Acknowledge only what is durable: concurrent submissions share one commit (group commit per turn).
      await d.dispatcher.durable();
      return respond(d.tasks.get(task.id));
    },

    async submitTasks(req, call) {
      if (req.tasks.length === 0) throw new InvalidArgumentError("tasks is empty: give at least one task");
      if (req.tasks.length > MAX_BATCH) throw new InvalidArgumentError(`tasks has ${req.tasks.length} entries; at most ${MAX_BATCH} per call`);
      const ctx = validationContext();
      const total = wireSize.get(req);
      const quota = d.quotas?.batch(call.principal);
      const owner = ownerOf(call.principal);
      const results: ({ ok: TaskSpec; key: string } | { err: unknown })[] = req.tasks.map((r, i) => {
        try {
          // When the whole batch is under the limit, no task in it can be over: skip re-encoding.
          return { ok: toSpec(r, total !== undefined && total <= d.config.maxInputBytes ? 0 : undefined, `tasks[${i}].task`, ctx, call.principal, quota), key: r.idempotencyKey };
        } catch (err) {
          return { err };
        }
      });
      const accepted = d.tasks.submit(results.flatMap((r) => ("ok" in r ? [{ spec: r.ok, idempotencyKey: r.key, owner }] : [])));
      d.dispatcher.pass();
      await d.dispatcher.durable();
      let i = 0;
      return create(SubmitTasksResponseSchema, {
        results: results.map((r) => {
          if ("ok" in r) return create(SubmitTasksResultSchema, { accepted: respond(d.tasks.get(accepted[i++].task.id)) });
          const s = toGrpcStatus(r.err);
          if (s.internal) throw r.err;
          return create(SubmitTasksResultSchema, { errorCode: status[s.code], errorMessage: s.details });
        }),
      });
    },

    async getTask(req, call) {
      if (!req.taskId) throw new InvalidArgumentError("task_id is required");
      const t = d.tasks.get(req.taskId);
      requireTaskVisible(call.principal, t);
      return create(GetTaskResponseSchema, { task: taskToPb(d.tasks.reader.withPayload(t)) });
    },

    async listTasks(req, call) {
      const pageSize = req.pageSize === 0 ? 100 : req.pageSize;
      if (pageSize < 0 || pageSize > 1000) throw new InvalidArgumentError(`page_size must be between 1 and 1000, got ${req.pageSize}`);
      const states = new Set<TaskState>(req.states.map((s, i) => taskStateFromPb(s, `states[${i}]`)));
      const priority = req.priority === PbPriority.UNSPECIFIED ? undefined : priorityFromPb(req.priority, "priority");
      // A token limited to clusters lists only theirs (filtered by the store when it is limited to one).
      if (req.clusterId) requireCluster(call.principal, req.clusterId, "cluster_id");
      const clusterId = req.clusterId || onlyCluster(call.principal) || "";
      const page = d.tasks.reader.list({ states, priority, clusterId, deviceId: req.deviceId, includeShards: req.includeShards }, pageSize, req.pageToken);
      // Stores that cannot filter shard tasks out themselves return them; the page may then come back shorter.
      let tasks = req.includeShards ? page.tasks : page.tasks.filter((t) => !t.shard);
      if (!unscoped(call.principal)) tasks = tasks.filter((t) => canSeeTask(call.principal, t));
      return create(ListTasksResponseSchema, { tasks: tasks.map((t) => taskToPb(t, { withInput: false })), nextPageToken: page.next });
    },

    async cancelTask(req, call) {
      if (!req.taskId) throw new InvalidArgumentError("task_id is required");
      requireCancel(call.principal, d.tasks.get(req.taskId));
      return create(CancelTaskResponseSchema, { task: taskToPb(d.dispatcher.cancel(req.taskId, req.reason), { withInput: false }) });
    },

    async *watchTask(req, ctx) {
      if (!req.taskId) throw new InvalidArgumentError("task_id is required");
      const events = new AsyncQueue<TaskRecord>();
      // Subscribe before reading the current state so no transition falls between the two.
      const unsubscribe = d.tasks.watch(req.taskId, (t) => events.push(t));
      const onAbort = () => events.close();
      ctx.signal.addEventListener("abort", onAbort, { once: true });
      try {
        const current = d.tasks.get(req.taskId);
        requireTaskVisible(ctx.principal, current);
        yield create(WatchTaskResponseSchema, { task: taskToPb(current, { withInput: false }) });
        if (isTerminal(current.state)) return;
        // Subscription and read happened in one synchronous step, so every queued event is newer than `current`.
        for await (const t of events) {
          yield create(WatchTaskResponseSchema, { task: taskToPb(t, { withInput: false }) });
          if (isTerminal(t.state)) return;
        }
      } finally {
        unsubscribe();
        ctx.signal.removeEventListener("abort", onAbort);
        events.close();
      }
    },

    async *watchTasks(req, ctx) {
      const ids = new Set(req.taskIds);
      const labels = Object.entries(req.labels);
      if (ids.size === 0 && labels.length === 0) throw new InvalidArgumentError("give task_ids or labels to watch");
      if (ids.size > 0 && labels.length > 0) throw new InvalidArgumentError("give task_ids or labels, not both");
      if (ids.size > MAX_WATCHED) throw new InvalidArgumentError(`task_ids has ${ids.size} entries; at most ${MAX_WATCHED} per call`);
      const visible = unscoped(ctx.principal) ? () => true : (t: TaskRecord) => canSeeTask(ctx.principal, t);
      const matches = ids.size > 0
        ? (t: TaskRecord) => ids.has(t.id)
        : (t: TaskRecord) => labels.every(([k, v]) => t.spec.labels[k] === v) && visible(t);
      // Newest state per task, in the order tasks first changed; drained into one message per wake-up.
      let pending = new Map<string, TaskRecord>();
      let wake: (() => void) | undefined;
      const remaining = new Set<string>();
      const unsubscribe = d.tasks.onChange((t) => {
        if (!matches(t) || (req.terminalOnly && !isTerminal(t.state))) return;
        pending.delete(t.id);
        pending.set(t.id, t);
        wake?.();
      });
      const onAbort = () => wake?.();
      ctx.signal.addEventListener("abort", onAbort, { once: true });
      try {
        // Subscribed first, then read: every change after this read reaches `pending`.
        for (const id of ids) {
          const t = d.tasks.get(id);
          requireTaskVisible(ctx.principal, t);
          if (!isTerminal(t.state)) remaining.add(id);
          if (!req.terminalOnly || isTerminal(t.state)) pending.set(id, t);
        }
        const done = () => ids.size > 0 && remaining.size === 0;
        while (!ctx.signal.aborted) {
          if (pending.size === 0) {
            if (done()) return;
            await new Promise<void>((r) => (wake = r));
            wake = undefined;
            continue;
          }
          if (pending.size > MAX_WATCH_BACKLOG) throw new ResourceExhaustedError(`this watch fell ${pending.size} task changes behind; read faster or watch fewer tasks`);
          const batch = [...pending.values()].slice(0, WATCH_BATCH);
          if (batch.length === pending.size) pending = new Map();
          else for (const t of batch) pending.delete(t.id);
          for (const t of batch) if (isTerminal(t.state)) remaining.delete(t.id);
          yield create(WatchTasksResponseSchema, { tasks: batch.map((t) => taskToPb(t, { withInput: false })) });
        }
      } finally {
        unsubscribe();
        ctx.signal.removeEventListener("abort", onAbort);
      }
    },
  };
}

/** Most ids one WatchTasks call may name. */
const MAX_WATCHED = 100_000;
/** Most tasks in one WatchTasks message. */
const WATCH_BATCH = 1000;
/** Changes a WatchTasks stream may fall behind by before it is ended with RESOURCE_EXHAUSTED. */
const MAX_WATCH_BACKLOG = 200_000;

/** Now + the measured mean processing time, scaled by the queue ahead over the fleet's slots. */
function estimateCompletion(t: TaskRecord, position: number, d: TaskServiceDeps): number {
  const c = d.tasks.counters;
  const mean = c.processingSamples > 0 ? c.processingMsTotal / c.processingSamples : t.spec.estimatedMs;
  const each = Math.max(t.spec.estimatedMs, mean);
  const slots = d.registry.listNodes().filter((n) => n.state === "ready").reduce((a, n) => a + n.maxConcurrent, 0);
  const waves = t.state === "queued" ? Math.ceil((position + 1) / Math.max(1, slots)) : 1;
  return d.now() + Math.round(waves * each);
}
