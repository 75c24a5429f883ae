// The agent's lifecycle as a state machine: which states exist, which moves between them are legal.
// Pure: no timers, no I/O; an illegal move throws instead of being ignored, so a wrong caller shows up in tests.

/**
 * What the agent does with work (the stream's own states are ConnectionState in connection.ts):
 * - `starting`: not registered yet; no dispatch can arrive.
 * - `running`: registered at least once; takes dispatches. A lost stream does not leave `running`: attempts go
 *   on, their results wait in the journal, and the agent re-registers when the stream is back.
 * - `draining`: takes no new work (a dispatch is answered with a cancelled result); running attempts finish,
 *   or are cancelled when the grace runs out.
 * - `stopped`: the stream, the executor and the journal are closed.
 *
 * starting → running | draining; running → draining; draining → stopped. Any other move throws.
 */
export type AgentState = "starting" | "running" | "draining" | "stopped";

const LEGAL: { readonly [S in AgentState]: readonly AgentState[] } = {
  starting: ["running", "draining"],
  running: ["draining"],
  draining: ["stopped"],
  stopped: [],
};

export class IllegalTransitionError extends Error {
  override readonly name = "IllegalTransitionError";
  constructor(
    readonly from: AgentState,
    readonly to: AgentState,
  ) {
    super(`agent lifecycle: cannot go from ${from} to ${to} (legal from ${from}: ${LEGAL[from].join(", ") || "none"})`);
  }
}

export class Lifecycle {
  private current: AgentState = "starting";

  get state(): AgentState {
    return this.current;
  }

  /** Whether `next` is a legal move from the current state. */
  can(next: AgentState): boolean {
    return LEGAL[this.current].includes(next);
  }

  /** Moves to `next`; throws IllegalTransitionError when the move is not legal (see AgentState). */
  to(next: AgentState): void {
    if (!this.can(next)) throw new IllegalTransitionError(this.current, next);
    this.current = next;
  }
}
