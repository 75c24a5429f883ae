// TaskService over gRPC: decodes requests (convert.ts), applies the caller's rights (security/access.ts), calls the
// use-case (usecases/), encodes the answer. Transport only: no validation rules, no scheduling, no estimates here.
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { status } from "@grpc/grpc-js";
import {
  TaskService,
  SubmitTaskResponseSchema,
  SubmitTasksResultSchema,
  SubmitTasksResponseSchema,
  GetTaskResponseSchema,
  ListTasksResponseSchema,
  CancelTaskResponseSchema,
  WatchTaskResponseSchema,
  WatchTasksResponseSchema,
  type SubmitTaskRequest,
  type SubmitTaskResponse,
} from "../../gen/edgeplane/v1/task_pb.js";
import { Priority as PbPriority } from "../../gen/edgeplane/v1/types_pb.js";
import type { Dispatcher } from "../dispatch/dispatcher.js";
import { InvalidArgumentError } from "../errors.js";
import { canSeeTask, onlyCluster, ownerOf, requireCancel, requireCluster, requireTaskVisible, submitCluster, unscoped } from "../security/access.js";
import type { Principal } from "../security/principal.js";
import type { Quotas } from "../security/quotas.js";
import type { TaskManager } from "../tasks/task-manager.js";
import type { TaskState } from "../tasks/types.js";
import type { Submission, SubmitOutcome, SubmitPolicy, TaskSubmissions } from "../usecases/submit.js";
import { checkWatchTarget, watchTasks } from "../usecases/watch.js";
import { draftFromPb, inputSize, priorityFromPb, taskStateFromPb, taskStateToPb, taskToPb } from "./convert.js";
import { toGrpcStatus } from "./errors.js";
import { wireSize, type ServiceImpl } from "./grpc-adapter.js";

export interface TaskServiceDeps {
  tasks: TaskManager;
  dispatcher: Dispatcher;
  submissions: TaskSubmissions;
  /** Largest task input accepted, in bytes: a request under it needs no per-task size count. */
  maxInputBytes: number;
  /** Per-token submission quotas (security/); none when absent. */
  quotas?: Quotas;
}

const MAX_BATCH = 10_000;

export function taskServiceImpl(d: TaskServiceDeps): ServiceImpl<typeof TaskService.method> {
  /** `bytes`: the encoded size of what holds the task, when known; only a task that may be over the limit is measured. */
  const submission = (req: SubmitTaskRequest, bytes: number | undefined, field: string): Submission => ({
    draft: () => draftFromPb(req.task, req.task && (bytes === undefined || bytes > d.maxInputBytes) ? inputSize(req.task) : (bytes ?? 0), field),
    idempotencyKey: req.idempotencyKey,
    field,
  });

  /** What the caller may submit: its cluster scope, its quotas, and who it is (the tasks' owner). */
  const policy = (who: Principal): SubmitPolicy => {
    const quota = d.quotas?.batch(who);
    return {
      owner: ownerOf(who),
      // A token limited to some clusters submits only there (the one it has by default).
      draft: (draft, field) => ({ ...draft, clusterId: submitCluster(who, draft.clusterId, field) }),
      admit: quota ? (bytes) => quota.admit(bytes) : undefined,
    };
  };

  const accepted = (o: Extract<SubmitOutcome, { type: "accepted" }>): SubmitTaskResponse =>
    create(SubmitTaskResponseSchema, {
      taskId: o.task.id,
      state: taskStateToPb(o.task.state),
      assignedCluster: o.task.assignedCluster,
      queuePosition: o.queuePosition,
      estimatedCompletion: timestampFromMs(o.estimatedCompletion),
    });

  return {
    async submitTask(req, call) {
      const [o] = await d.submissions.submit([submission(req, wireSize.get(req), "task")], policy(call.principal));
      if (o.type === "refused") throw o.error;
      return accepted(o);
    },

    async submitTasks(req, call) {
      if (req.tasks.length === 0) throw new InvalidArgumentError("tasks is empty: give at least one task");
      if (req.tasks.length > MAX_BATCH) throw new InvalidArgumentError(`tasks has ${req.tasks.length} entries; at most ${MAX_BATCH} per call`);
      const total = wireSize.get(req);
      // When the whole batch is under the limit, no task in it can be over: skip measuring each.
      const each = total !== undefined && total <= d.maxInputBytes ? 0 : undefined;
      const outcomes = await d.submissions.submit(
        req.tasks.map((r, i) => submission(r, each, `tasks[${i}].task`)),
        policy(call.principal),
      );
      return create(SubmitTasksResponseSchema, {
        results: outcomes.map((o) => {
          if (o.type === "accepted") return create(SubmitTasksResultSchema, { accepted: accepted(o) });
          const s = toGrpcStatus(o.error);
          if (s.internal) throw o.error;
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
      requireTaskVisible(ctx.principal, d.tasks.get(req.taskId));
      for await (const batch of watchTasks(d.tasks, { ids: [req.taskId] }, { terminalOnly: false, coalesce: false, signal: ctx.signal })) {
        for (const t of batch) yield create(WatchTaskResponseSchema, { task: taskToPb(t, { withInput: false }) });
      }
    },

    async *watchTasks(req, ctx) {
      const target = checkWatchTarget(req.taskIds, req.labels);
      if ("ids" in target) for (const id of target.ids) requireTaskVisible(ctx.principal, d.tasks.get(id));
      const visible = unscoped(ctx.principal) ? undefined : (t: Parameters<typeof canSeeTask>[1]) => canSeeTask(ctx.principal, t);
      for await (const batch of watchTasks(d.tasks, target, { terminalOnly: req.terminalOnly, coalesce: true, signal: ctx.signal, visible })) {
        yield create(WatchTasksResponseSchema, { tasks: batch.map((t) => taskToPb(t, { withInput: false })) });
      }
    },
  };
}
