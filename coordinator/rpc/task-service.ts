// TaskService over gRPC: decodes requests (convert.ts), calls the use-case (usecases/), encodes the answer.
// Transport only: no validation rules, no scheduling, no estimates here.
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { status } from "@grpc/grpc-js";
import {
  TaskService, SubmitTaskResponseSchema, SubmitTasksResultSchema, SubmitTasksResponseSchema, GetTaskResponseSchema, ListTasksResponseSchema,
  CancelTaskResponseSchema, WatchTaskResponseSchema, WatchTasksResponseSchema, type SubmitTaskRequest, type SubmitTaskResponse,
} from "../../gen/edgeplane/v1/task_pb.js";
import { Priority as PbPriority } from "../../gen/edgeplane/v1/types_pb.js";
import type { Dispatcher } from "../dispatch/dispatcher.js";
import { InvalidArgumentError } from "../errors.js";
import type { TaskManager } from "../tasks/task-manager.js";
import type { TaskState } from "../tasks/types.js";
import type { Submission, SubmitOutcome, TaskSubmissions } from "../usecases/submit.js";
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
}

const MAX_BATCH = 10_000;

export function taskServiceImpl(d: TaskServiceDeps): ServiceImpl<typeof TaskService.method> {
  /** `bytes`: the encoded size of what holds the task, when known; only a task that may be over the limit is measured. */
  const submission = (req: SubmitTaskRequest, bytes: number | undefined, field: string): Submission => ({
    draft: () => draftFromPb(req.task, req.task && (bytes === undefined || bytes > d.maxInputBytes) ? inputSize(req.task) : (bytes ?? 0), field),
    idempotencyKey: req.idempotencyKey,
    field,
  });

  const accepted = (o: Extract<SubmitOutcome, { type: "accepted" }>): SubmitTaskResponse => create(SubmitTaskResponseSchema, {
    taskId: o.task.id,
    state: taskStateToPb(o.task.state),
    assignedCluster: o.task.assignedCluster,
    queuePosition: o.queuePosition,
    estimatedCompletion: timestampFromMs(o.estimatedCompletion),
  });

  return {
    async submitTask(req) {
      const [o] = await d.submissions.submit([submission(req, wireSize.get(req), "task")]);
      if (o.type === "refused") throw o.error;
      return accepted(o);
    },

    async submitTasks(req) {
      if (req.tasks.length === 0) throw new InvalidArgumentError("tasks is empty: give at least one task");
      if (req.tasks.length > MAX_BATCH) throw new InvalidArgumentError(`tasks has ${req.tasks.length} entries; at most ${MAX_BATCH} per call`);
      const total = wireSize.get(req);
      // When the whole batch is under the limit, no task in it can be over: skip measuring each.
      const each = total !== undefined && total <= d.maxInputBytes ? 0 : undefined;
      const outcomes = await d.submissions.submit(req.tasks.map((r, i) => submission(r, each, `tasks[${i}].task`)));
      return create(SubmitTasksResponseSchema, {
        results: outcomes.map((o) => {
          if (o.type === "accepted") return create(SubmitTasksResultSchema, { accepted: accepted(o) });
          const s = toGrpcStatus(o.error);
          if (s.internal) throw o.error;
          return create(SubmitTasksResultSchema, { errorCode: status[s.code], errorMessage: s.details });
        }),
      });
    },

    async getTask(req) {
      if (!req.taskId) throw new InvalidArgumentError("task_id is required");
      return create(GetTaskResponseSchema, { task: taskToPb(d.tasks.reader.withPayload(d.tasks.get(req.taskId))) });
    },

    async listTasks(req) {
      const pageSize = req.pageSize === 0 ? 100 : req.pageSize;
      if (pageSize < 0 || pageSize > 1000) throw new InvalidArgumentError(`page_size must be between 1 and 1000, got ${req.pageSize}`);
      const states = new Set<TaskState>(req.states.map((s, i) => taskStateFromPb(s, `states[${i}]`)));
      const priority = req.priority === PbPriority.UNSPECIFIED ? undefined : priorityFromPb(req.priority, "priority");
      const page = d.tasks.reader.list({ states, priority, clusterId: req.clusterId, deviceId: req.deviceId, includeShards: req.includeShards }, pageSize, req.pageToken);
      // Stores that cannot filter shard tasks out themselves return them; the page may then come back shorter.
      const tasks = req.includeShards ? page.tasks : page.tasks.filter((t) => !t.shard);
      return create(ListTasksResponseSchema, { tasks: tasks.map((t) => taskToPb(t, { withInput: false })), nextPageToken: page.next });
    },

    async cancelTask(req) {
      if (!req.taskId) throw new InvalidArgumentError("task_id is required");
      return create(CancelTaskResponseSchema, { task: taskToPb(d.dispatcher.cancel(req.taskId, req.reason), { withInput: false }) });
    },

    async *watchTask(req, ctx) {
      if (!req.taskId) throw new InvalidArgumentError("task_id is required");
      for await (const batch of watchTasks(d.tasks, { ids: [req.taskId] }, { terminalOnly: false, coalesce: false, signal: ctx.signal })) {
        for (const t of batch) yield create(WatchTaskResponseSchema, { task: taskToPb(t, { withInput: false }) });
      }
    },

    async *watchTasks(req, ctx) {
      const target = checkWatchTarget(req.taskIds, req.labels);
      for await (const batch of watchTasks(d.tasks, target, { terminalOnly: req.terminalOnly, coalesce: true, signal: ctx.signal })) {
        yield create(WatchTasksResponseSchema, { tasks: batch.map((t) => taskToPb(t, { withInput: false })) });
      }
    },
  };
}
