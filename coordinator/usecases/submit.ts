// Submitting tasks: validate each against the fleet as it is now, create the accepted ones in one commit, place
// what can run at once (the first dispatch then joins that same commit), and answer once it is all durable.
// Domain only: rpc/task-service.ts decodes requests into drafts and encodes the outcomes.
import type { CoordinatorConfig } from "../config.js";
import type { Dispatcher } from "../dispatch/dispatcher.js";
import { checkSplittable } from "../distributed/validate.js";
import type { NodeRegistry } from "../nodes/registry.js";
import type { TaskManager } from "../tasks/task-manager.js";
import type { TaskRecord, TaskSpec } from "../tasks/types.js";
import { validateSpec, type SpecDraft, type ValidationContext } from "../tasks/validate.js";

export interface SubmitDeps {
  tasks: TaskManager;
  dispatcher: Dispatcher;
  registry: NodeRegistry;
  config: Pick<CoordinatorConfig, "maxInputBytes" | "defaultMemoryBytes" | "defaultCpuMillis" | "defaultMaxRetries">;
  builtinHandlers: readonly string[];
  now: () => number;
}

/** One task to submit. `draft` may throw (a malformed request): that task alone is refused. */
export interface Submission {
  draft: () => SpecDraft;
  idempotencyKey: string;
  /** Where the task is in the request, for error messages (e.g. `tasks[3].task`). */
  field: string;
}

/** Who submits, and what their rights allow (security/ builds it from the caller; none with --insecure). */
export interface SubmitPolicy {
  /** Recorded as each task's owner. */
  owner?: string;
  /** Adjusts or refuses a draft before validation (e.g. fills in or checks the caller's cluster scope). */
  draft?(d: SpecDraft, field: string): SpecDraft;
  /** Admits one validated task of `inputBytes` against the caller's quotas, or throws RESOURCE_EXHAUSTED. */
  admit?(inputBytes: number): void;
}

export type SubmitOutcome = { type: "accepted"; task: TaskRecord; queuePosition: number; estimatedCompletion: number } | { type: "refused"; error: unknown };

export class TaskSubmissions {
  constructor(private readonly d: SubmitDeps) {}

  /** Validates each task on its own; the accepted ones are created in one commit. Resolves once they are durable. */
  async submit(items: readonly Submission[], policy: SubmitPolicy = {}): Promise<SubmitOutcome[]> {
    const ctx = this.validationContext();
    const checked = items.map((s): { spec: TaskSpec; key: string } | { error: unknown } => {
      try {
        return { spec: this.toSpec(s, ctx, policy), key: s.idempotencyKey };
      } catch (error) {
        return { error };
      }
    });
    const accepted = this.d.tasks.submit(checked.flatMap((c) => ("spec" in c ? [{ spec: c.spec, idempotencyKey: c.key, owner: policy.owner }] : [])));
    // Where each new task stands as it is queued (O(1) each for a batch); one the pass places at once reports 0.
    const positions = this.d.dispatcher.queue.positionsOfNewest(accepted.map((a) => a.task.id));
    // Placed in this turn, the first dispatches join the submissions' own commit.
    this.d.dispatcher.pass();
    // Acknowledge only what is durable: concurrent submissions share one commit.
    await this.d.dispatcher.durable();
    let i = 0;
    return checked.map((c): SubmitOutcome => {
      if ("error" in c) return { type: "refused", error: c.error };
      const t = this.d.tasks.get(accepted[i++].task.id);
      const position = t.state === "queued" ? (positions.get(t.id) ?? Math.max(0, this.d.dispatcher.queue.position(t.id))) : 0;
      return { type: "accepted", task: t, queuePosition: position, estimatedCompletion: this.estimateCompletion(t, position) };
    });
  }

  private validationContext(): ValidationContext {
    const r = this.d.registry;
    return {
      now: this.d.now(),
      knownHandlers: r.knownHandlers(this.d.builtinHandlers),
      maxNodeMemoryBytes: r.maxNodeMemory(),
      maxNodeCpuMillis: r.maxNodeCpu(),
      knownClusters: new Set(r.listClusters().map((c) => c.id)),
      maxInputBytes: this.d.config.maxInputBytes,
      defaultMemoryBytes: this.d.config.defaultMemoryBytes,
      defaultCpuMillis: this.d.config.defaultCpuMillis,
      defaultMaxRetries: this.d.config.defaultMaxRetries,
    };
  }

  private toSpec(s: Submission, ctx: ValidationContext, policy: SubmitPolicy): TaskSpec {
    let draft = s.draft();
    if (policy.draft) draft = policy.draft(draft, s.field);
    const spec = validateSpec(draft, ctx, s.field);
    if (spec.mode === "distributed" || spec.mode === "hybrid") checkSplittable(spec, this.d.registry.distributableHandlers(this.d.builtinHandlers), s.field);
    policy.admit?.(draft.inputBytes);
    return spec;
  }

  /** Now + the measured mean processing time, scaled by the queue ahead over the fleet's slots. */
  private estimateCompletion(t: TaskRecord, position: number): number {
    const c = this.d.tasks.counters;
    const mean = c.processingSamples > 0 ? c.processingMsTotal / c.processingSamples : t.spec.estimatedMs;
    const each = Math.max(t.spec.estimatedMs, mean);
    const slots = this.d.registry
      .listNodes()
      .filter((n) => n.state === "ready")
      .reduce((a, n) => a + n.maxConcurrent, 0);
    const waves = t.state === "queued" ? Math.ceil((position + 1) / Math.max(1, slots)) : 1;
    return this.d.now() + Math.round(waves * each);
  }
}
