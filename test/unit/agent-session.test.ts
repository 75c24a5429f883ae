// The coordinator's per-agent outbox (coordinator/dispatch/session.ts): one batch per turn, except that a CRITICAL or
// HIGH dispatch leaves at once with what was queued before it.
import { describe, expect, it } from "vitest";
import { AgentSession, type OutboundMessage } from "../../coordinator/dispatch/session.js";
import { newTaskRecord, type Priority } from "../../coordinator/tasks/types.js";
import { spec } from "../helpers/task-fixtures.js";

/** Timers whose `soon` callbacks run only when the test ends the turn. */
class Turns {
  private queued: (() => void)[] = [];
  soon(fn: () => void): void {
    this.queued.push(fn);
  }
  end(): void {
    const q = this.queued;
    this.queued = [];
    for (const f of q) f();
  }
}

const dispatch = (id: string, priority: Priority): OutboundMessage => ({
  type: "dispatch",
  task: newTaskRecord({ id, spec: spec({ priority }), now: 0, seq: 1, idempotencyKey: "" }),
  attempt: 1,
});

/** The batches pushed to the outbox so far (closing it ends the iteration after them). */
async function batches(s: AgentSession): Promise<string[][]> {
  s.outbox.close();
  const out: string[][] = [];
  for await (const b of s.outbox)
    out.push(b.map((m) => (m.type === "dispatch" ? `dispatch ${m.task.id}` : m.type === "cancel" ? `cancel ${m.taskId}` : m.type)));
  return out;
}

describe("agent session outbox", () => {
  it("holds NORMAL and LOW dispatches, cancels and acks to the end of the turn, in one batch", async () => {
    const turns = new Turns();
    const s = new AgentSession("n1", "s1", turns);
    s.send(dispatch("t-a", "normal"));
    s.send({ type: "result-ack", taskId: "t-x", attempt: 1 });
    s.send(dispatch("t-b", "low"));
    expect(s.outbox.size).toBe(0);
    turns.end();
    expect(await batches(s)).toEqual([["dispatch t-a", "result-ack", "dispatch t-b"]]);
  });

  it("sends a CRITICAL dispatch at once, after what the turn queued before it (the cancel of its victim)", async () => {
    const turns = new Turns();
    const s = new AgentSession("n1", "s1", turns);
    s.send({ type: "cancel", taskId: "t-victim", attempt: 1, reason: "preempted" });
    s.send(dispatch("t-crit", "critical"));
    expect(s.outbox.size).toBe(1);
    s.send(dispatch("t-low", "low"));
    turns.end();
    expect(await batches(s)).toEqual([["cancel t-victim", "dispatch t-crit"], ["dispatch t-low"]]);
  });

  it("sends a HIGH dispatch at once too", async () => {
    const turns = new Turns();
    const s = new AgentSession("n1", "s1", turns);
    s.send(dispatch("t-high", "high"));
    expect(s.outbox.size).toBe(1);
    turns.end();
    expect(await batches(s)).toEqual([["dispatch t-high"]]);
  });
});
