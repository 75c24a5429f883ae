// The agent lifecycle (agent/lifecycle.ts): the legal moves of AgentState, and that every other move throws.
import { describe, expect, it } from "vitest";
import { IllegalTransitionError, Lifecycle, type AgentState } from "../../agent/lifecycle.js";

const STATES: AgentState[] = ["starting", "running", "draining", "stopped"];
const LEGAL = new Set(["starting>running", "starting>draining", "running>draining", "draining>stopped"]);

/** A lifecycle in `state`, reached by legal moves. */
function at(state: AgentState): Lifecycle {
  const l = new Lifecycle();
  const path: Record<AgentState, AgentState[]> = {
    starting: [],
    running: ["running"],
    draining: ["running", "draining"],
    stopped: ["running", "draining", "stopped"],
  };
  for (const s of path[state]) l.to(s);
  return l;
}

describe("agent lifecycle", () => {
  it("starts in starting and follows starting → running → draining → stopped", () => {
    const l = new Lifecycle();
    expect(l.state).toBe("starting");
    l.to("running");
    l.to("draining");
    l.to("stopped");
    expect(l.state).toBe("stopped");
  });

  it("may drain before it ever registered (stopped while starting)", () => {
    const l = new Lifecycle();
    l.to("draining");
    l.to("stopped");
    expect(l.state).toBe("stopped");
  });

  it("allows exactly the documented moves; every other one throws and leaves the state as it was", () => {
    for (const from of STATES) {
      for (const to of STATES) {
        const l = at(from);
        const legal = LEGAL.has(`${from}>${to}`);
        expect(l.can(to), `${from} → ${to}`).toBe(legal);
        if (legal) {
          l.to(to);
          expect(l.state).toBe(to);
        } else {
          expect(() => l.to(to), `${from} → ${to}`).toThrow(IllegalTransitionError);
          expect(l.state).toBe(from);
        }
      }
    }
  });

  it("names both states in the error", () => {
    const l = at("stopped");
    try {
      l.to("running");
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(IllegalTransitionError);
      expect((err as IllegalTransitionError).name).toBe("IllegalTransitionError");
      expect((err as Error).message).toMatch(/cannot go from stopped to running/);
    }
  });
});
