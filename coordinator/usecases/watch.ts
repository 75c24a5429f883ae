// Watching tasks for a client: one task's every transition (WatchTask), or many tasks' newest states in batches
// (WatchTasks, by ids or labels). Clients only see durable changes (tasks/task-watch.ts). A watcher that falls too
// far behind is ended with RESOURCE_EXHAUSTED rather than letting the coordinator buffer without bound.
import { InvalidArgumentError, ResourceExhaustedError } from "../errors.js";
import type { TaskManager } from "../tasks/task-manager.js";
import { isTerminal, type TaskRecord } from "../tasks/types.js";

/** Most ids one watch may name. */
export const MAX_WATCHED_IDS = 100_000;
/** Most tasks in one batch a watch yields. */
export const WATCH_BATCH = 1000;
/** Changes a watch may fall behind by before it is ended. */
export const MAX_WATCH_BACKLOG = 200_000;

export type WatchTarget = { ids: readonly string[] } | { labels: Readonly<Record<string, string>> };

export interface WatchOptions {
  /** Only terminal states. */
  terminalOnly: boolean;
  /** Each task at most once per batch (its newest state), instead of every transition. */
  coalesce: boolean;
  signal: AbortSignal;
  /** Tasks the caller may see (a label watch shows only these). Default: all. */
  visible?: (t: TaskRecord) => boolean;
}

/** Checks a WatchTasks target, naming what to fix. */
export function checkWatchTarget(ids: readonly string[], labels: Readonly<Record<string, string>>): WatchTarget {
  const hasLabels = Object.keys(labels).length > 0;
  if (ids.length === 0 && !hasLabels) throw new InvalidArgumentError("give task_ids or labels to watch");
  if (ids.length > 0 && hasLabels) throw new InvalidArgumentError("give task_ids or labels, not both");
  if (ids.length > MAX_WATCHED_IDS) throw new InvalidArgumentError(`task_ids has ${ids.length} entries; at most ${MAX_WATCHED_IDS} per call`);
  return ids.length > 0 ? { ids: [...new Set(ids)] } : { labels };
}

/**
 * Batches of changes, oldest first. With ids it starts with their current states and ends once every one of them
 * was delivered terminal; with labels it follows matching tasks from now until the signal aborts.
 */
export async function* watchTasks(tasks: TaskManager, target: WatchTarget, o: WatchOptions): AsyncGenerator<TaskRecord[]> {
  let wake: (() => void) | undefined;
  const ready = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const follow =
    "ids" in target
      ? { ids: target.ids }
      : { match: (t: TaskRecord) => Object.entries(target.labels).every(([k, v]) => t.spec.labels[k] === v) && (o.visible?.(t) ?? true) };
  const { subscription, current } = tasks.watch(follow, ready);
  const remaining = new Set(current.filter((t) => !isTerminal(t.state)).map((t) => t.id));
  const byIds = "ids" in target;
  o.signal.addEventListener("abort", ready, { once: true });
  try {
    while (!o.signal.aborted) {
      if (subscription.backlog > MAX_WATCH_BACKLOG) {
        throw new ResourceExhaustedError(`this watch fell ${subscription.backlog} task changes behind; read faster or watch fewer tasks`);
      }
      const changes = subscription.take(o.coalesce);
      if (changes.length === 0) {
        if (byIds && remaining.size === 0 && subscription.backlog === 0) return;
        await new Promise<void>((resolve) => (wake = resolve));
        continue;
      }
      for (const t of changes) if (isTerminal(t.state)) remaining.delete(t.id);
      const shown = o.terminalOnly ? changes.filter((t) => isTerminal(t.state)) : changes;
      for (let i = 0; i < shown.length; i += WATCH_BATCH) yield shown.slice(i, i + WATCH_BATCH);
    }
  } finally {
    o.signal.removeEventListener("abort", ready);
    subscription.close();
  }
}
