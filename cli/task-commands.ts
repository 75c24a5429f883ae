// Task commands: submit, tasks, task, watch, cancel (TaskService).
// Must never build requests or render output inline: submit-request.ts builds, task-view.ts renders.
import { Option, type Command } from "commander";
import { create, toJson } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import {
  ListTasksResponseSchema,
  SubmitTaskResponseSchema,
  SubmitTasksResponseSchema,
  TaskService,
  type SubmitTaskRequest,
} from "../gen/edgeplane/v1/task_pb.js";
import { PrioritySchema, TaskSchema, TaskState, TaskStateSchema, type Priority, type Task } from "../gen/edgeplane/v1/types_pb.js";
import { addClientOptions, addJsonOption, arg, callCoordinator, println, printJson, readText, repeatable, type CliDeps, type ClientFlags } from "./context.js";
import { CliError } from "./errors.js";
import { enumLabel } from "./format.js";
import { enumChoices, parseEnum, parseInteger, parseList } from "./parse.js";
import { buildSubmitRequest, parseSubmitFile, type SubmitFlags } from "./submit-request.js";
import {
  isTerminalState,
  renderSubmitted,
  renderSubmittedBatch,
  renderTaskDetail,
  renderTaskResult,
  renderTaskTable,
  renderTransition,
  transitionKey,
} from "./task-view.js";

type TaskClient = Client<typeof TaskService>;

/** Flags that describe one task; `--file` replaces all of them. */
const TASK_FLAG_KEYS = [
  "handler",
  "name",
  "device",
  "priority",
  "mode",
  "input",
  "inputFile",
  "values",
  "memory",
  "cpu",
  "estimate",
  "deadline",
  "maxRetries",
  "cluster",
  "label",
  "idempotencyKey",
];

/** Watches a task until it reaches a terminal state and returns it. */
export async function waitForTask(tasks: TaskClient, taskId: string, onUpdate?: (t: Task) => void): Promise<Task> {
  let last: Task | undefined;
  for await (const res of tasks.watchTask({ taskId })) {
    if (!res.task) continue;
    last = res.task;
    onUpdate?.(last);
    if (isTerminalState(last.state)) return last;
  }
  const state = last ? enumLabel(TaskStateSchema, last.state) : "unknown";
  throw new CliError(`the watch of task ${taskId} ended before the task finished (last state: ${state})`);
}

function registerSubmit(program: Command, deps: CliDeps): void {
  const cmd = program
    .command("submit")
    .summary("Submit a task (or many from --file) and print its id, state, cluster and queue position")
    .description(
      "Submit a task and print its id, state, cluster and queue position; --wait prints its result.\n\n" +
        "Describe the task with flags, or give --file with proto JSON: one SubmitTaskRequest, an array of them, " +
        'or {"tasks":[...]}. Priority and mode default as with the flags. Example file:\n\n' +
        '  {"task": {"handler": "stats", "priority": "PRIORITY_HIGH",\n' +
        '            "input": {"values": [1, 2, 3]}}, "idempotencyKey": "batch-7"}',
    )
    .option("--handler <name>", "handler to run: stats, anomaly, aggregate, threshold, or one an agent loaded")
    .option("--name <name>", "human-readable name")
    .option("--device <id>", "device whose data this is")
    .addOption(new Option("--priority <level>", enumChoices(PrioritySchema).join("|")).default("normal"))
    .addOption(new Option("--mode <mode>", "where it may run: local|distributed|hybrid|cloud_fallback").default("local"))
    .addOption(new Option("--input <json>", "task input, a JSON value").conflicts(["inputFile", "values"]))
    .addOption(new Option("--input-file <path>", "read the input JSON from a file ('-' for stdin)").conflicts("values"))
    .option("--values <numbers>", "shorthand for --input '{\"values\":[...]}', e.g. 1,2,3")
    .option("--memory <size>", "memory it needs: bytes or 512Ki, 64Mi, 1Gi, 100MB (default: the coordinator's)")
    .option("--cpu <millicores>", "CPU it needs, 1000 = one core (default: the coordinator's)")
    .option("--estimate <duration>", "expected processing time: 250ms, 2s")
    .option("--deadline <time>", "expire unless finished by then: RFC 3339, or relative like 30s, 5m")
    .option("--max-retries <n>", "retries after a failed attempt (default: the coordinator's)")
    .option("--cluster <id>", "place it only in this cluster")
    .option("--label <key=value>", "label, repeatable", (v: string, prev: string[] | undefined) => [...(prev ?? []), v])
    .option("--idempotency-key <key>", "a retried submission with the same key returns the original task")
    .addOption(new Option("--file <path>", "submit the task(s) in this JSON file ('-' for stdin)").conflicts(TASK_FLAG_KEYS))
    .option("--wait", "watch until the task ends and print its result; exit 1 unless it succeeded");
  addJsonOption(addClientOptions(cmd));
  cmd.action(async (flags: SubmitFlags & ClientFlags & { inputFile?: string; file?: string; wait?: boolean }) => {
    const requests: SubmitTaskRequest[] = flags.file
      ? parseSubmitFile(readText(flags.file), flags.file)
      : [buildSubmitRequest({ ...flags, input: flags.inputFile ? readText(flags.inputFile) : flags.input }, deps.now())];
    await callCoordinator(deps, flags, async ({ tasks }, unary) => {
      if (requests.length === 1) {
        const r = await tasks.submitTask(requests[0], unary);
        if (!flags.wait) {
          if (flags.json) printJson(deps.io, SubmitTaskResponseSchema, r);
          else println(deps.io, renderSubmitted(r, deps.now()));
          return;
        }
        if (!flags.json) deps.io.writeError(`submitted ${r.taskId}, waiting for it to finish…\n`);
        reportFinished(deps, flags, [await waitForTask(tasks, r.taskId)]);
        return;
      }
      const res = await tasks.submitTasks({ tasks: requests }, unary);
      const rejected = res.results.filter((x) => !x.accepted).length;
      if (flags.json && !flags.wait) printJson(deps.io, SubmitTasksResponseSchema, res);
      else if (!flags.json) println(deps.io, renderSubmittedBatch(res.results));
      if (flags.wait) {
        const ids = res.results.flatMap((x) => (x.accepted ? [x.accepted.taskId] : []));
        reportFinished(deps, flags, await Promise.all(ids.map((id) => waitForTask(tasks, id))));
      }
      if (rejected > 0) throw new CliError(`${rejected} of ${requests.length} tasks were rejected`);
    });
  });
}

/** Prints finished tasks and fails the command unless every one succeeded. */
function reportFinished(deps: CliDeps, flags: ClientFlags, finished: readonly Task[]): void {
  if (flags.json) {
    const json = finished.map((t) => toJson(TaskSchema, t));
    println(deps.io, JSON.stringify(json.length === 1 ? json[0] : json, null, 2));
  } else {
    println(deps.io, finished.map((t) => renderTaskResult(t)).join("\n\n"));
  }
  const bad = finished.filter((t) => t.state !== TaskState.SUCCEEDED);
  if (bad.length === 1 && finished.length === 1) {
    const t = bad[0];
    throw new CliError(`task ${t.id} ${enumLabel(TaskStateSchema, t.state)}${t.error ? `: ${t.error}` : ""}`);
  }
  if (bad.length > 0) throw new CliError(`${bad.length} of ${finished.length} tasks did not succeed`);
}

function registerTasks(program: Command, deps: CliDeps): void {
  const cmd = program
    .command("tasks")
    .description("List tasks, newest first: ID, NAME, HANDLER, PRIORITY, STATE, ATTEMPT, NODE, AGE")
    .option(
      "--state <states>",
      `only these states, repeatable or comma-separated: ${enumChoices(TaskStateSchema).join(",")}`,
      repeatable((t) => parseList(t).map((s) => parseEnum(TaskStateSchema, s) as TaskState)),
    )
    .option(
      "--priority <level>",
      `only this priority: ${enumChoices(PrioritySchema).join("|")}`,
      arg((t) => parseEnum(PrioritySchema, t) as Priority),
    )
    .option("--cluster <id>", "only tasks assigned to this cluster")
    .option("--device <id>", "only tasks for this device")
    .option(
      "--limit <n>",
      "tasks per page (coordinator default 100, max 1000)",
      arg((t) => parseInteger(t, 1, 1000)),
    )
    .option("--page-token <token>", "continue from a previous page")
    .option("--all", "follow page tokens until every matching task is listed");
  addJsonOption(addClientOptions(cmd));
  cmd.action(
    async (
      flags: ClientFlags & {
        state?: TaskState[];
        priority?: Priority;
        cluster?: string;
        device?: string;
        limit?: number;
        pageToken?: string;
        all?: boolean;
      },
    ) => {
      const all: Task[] = [];
      let token = flags.pageToken ?? "";
      await callCoordinator(deps, flags, async ({ tasks }, unary) => {
        for (;;) {
          const res = await tasks.listTasks(
            {
              states: flags.state ?? [],
              priority: flags.priority ?? 0,
              clusterId: flags.cluster ?? "",
              deviceId: flags.device ?? "",
              pageSize: flags.limit ?? 0,
              pageToken: token,
            },
            unary,
          );
          all.push(...res.tasks);
          const next = res.nextPageToken;
          // A token that does not move would loop forever.
          const stop = !flags.all || next === "" || next === token;
          token = next;
          if (stop) break;
        }
      });
      const more = flags.all ? "" : token;
      if (flags.json) {
        printJson(deps.io, ListTasksResponseSchema, create(ListTasksResponseSchema, { tasks: all, nextPageToken: more }));
        return;
      }
      if (all.length === 0) deps.io.writeError("no tasks found\n");
      else println(deps.io, renderTaskTable(all, deps.now()));
      if (more) deps.io.writeError(`more tasks: add --page-token ${more} (or --all)\n`);
    },
  );
}

function registerTask(program: Command, deps: CliDeps): void {
  const cmd = program
    .command("task")
    .description("Show one task: spec, state, attempts (node, outcome, processing time, peak memory, error), timings, output")
    .argument("<id>", "task id");
  addJsonOption(addClientOptions(cmd));
  cmd.action(async (id: string, flags: ClientFlags) => {
    const res = await callCoordinator(deps, flags, ({ tasks }, unary) => tasks.getTask({ taskId: id }, unary));
    if (!res.task) throw new CliError(`the coordinator returned no task for ${id}`);
    if (flags.json) printJson(deps.io, TaskSchema, res.task);
    else println(deps.io, renderTaskDetail(res.task, deps.now()));
  });
}

function registerWatch(program: Command, deps: CliDeps): void {
  const cmd = program
    .command("watch")
    .description("Follow a task until it ends: one line per transition (time, state, attempt, node)")
    .argument("<id>", "task id");
  addJsonOption(addClientOptions(cmd));
  cmd.action(async (id: string, flags: ClientFlags) => {
    let lastKey = "";
    await callCoordinator(deps, flags, ({ tasks }) =>
      waitForTask(tasks, id, (t) => {
        if (flags.json) {
          println(deps.io, JSON.stringify(toJson(TaskSchema, t)));
          return;
        }
        const key = transitionKey(t);
        if (key !== lastKey) println(deps.io, renderTransition(t));
        lastKey = key;
      }),
    );
  });
}

function registerCancel(program: Command, deps: CliDeps): void {
  const cmd = program
    .command("cancel")
    .description("Cancel a task: a queued task never runs, a running attempt is told to stop")
    .argument("<id>", "task id")
    .option("--reason <text>", "why, recorded on the task");
  addJsonOption(addClientOptions(cmd));
  cmd.action(async (id: string, flags: ClientFlags & { reason?: string }) => {
    const res = await callCoordinator(deps, flags, ({ tasks }, unary) => tasks.cancelTask({ taskId: id, reason: flags.reason ?? "" }, unary));
    if (flags.json) {
      if (res.task) printJson(deps.io, TaskSchema, res.task);
      else println(deps.io, "null");
      return;
    }
    println(deps.io, res.task ? `task ${id} is ${enumLabel(TaskStateSchema, res.task.state)}` : `task ${id}: cancel requested`);
  });
}

/** Registers submit, tasks, task, watch and cancel. */
export function registerTaskCommands(program: Command, deps: CliDeps): void {
  registerSubmit(program, deps);
  registerTasks(program, deps);
  registerTask(program, deps);
  registerWatch(program, deps);
  registerCancel(program, deps);
}
