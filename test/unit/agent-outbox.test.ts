// The agent's outbox (agent/outbox.ts): one AgentBatch per event-loop turn with every accept and result of it.
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { TaskResultSchema, type ConnectRequest } from "../../gen/edgeplane/v1/agent_pb.js";
import { Outbox } from "../../agent/outbox.js";

function harness(ok = () => true) {
  const sent: ConnectRequest[] = [];
  const turn: (() => void)[] = [];
  const outbox = new Outbox({ send: (m) => (ok() ? (sent.push(m), true) : false), defer: (fn) => turn.push(fn) });
  const endTurn = () => turn.splice(0).forEach((fn) => fn());
  return { sent, outbox, endTurn, deferred: () => turn.length };
}

const res = (taskId: string) => create(TaskResultSchema, { taskId, attempt: 1 });
const batches = (sent: ConnectRequest[]) =>
  sent.map((m) =>
    m.msg.case === "batch" ? { accepted: m.msg.value.accepted.map((a) => a.taskId), results: m.msg.value.results.map((r) => r.taskId) } : m.msg.case,
  );

describe("agent outbox", () => {
  it("sends a turn's accepts and results as one batch when the turn ends, in order", () => {
    const h = harness();
    h.outbox.accept({ taskId: "t-1", attempt: 1 });
    h.outbox.result(res("t-0"));
    h.outbox.accept({ taskId: "t-2", attempt: 1 });
    h.outbox.result(res("t-9"));
    expect(h.sent).toEqual([]);
    expect(h.deferred()).toBe(1); // one end-of-turn callback however many items
    h.endTurn();
    expect(batches(h.sent)).toEqual([{ accepted: ["t-1", "t-2"], results: ["t-0", "t-9"] }]);
  });

  it("leaves out the accept of an attempt whose result goes in the same batch, and keeps the others", () => {
    const h = harness();
    h.outbox.accept({ taskId: "t-1", attempt: 1 });
    h.outbox.accept({ taskId: "t-2", attempt: 1 });
    h.outbox.accept({ taskId: "t-3", attempt: 2 });
    h.outbox.result(res("t-1")); // accepted and finished this turn
    h.outbox.result(res("t-3")); // attempt 1 of t-3: not the attempt accepted this turn
    h.endTurn();
    expect(batches(h.sent)).toEqual([{ accepted: ["t-2", "t-3"], results: ["t-1", "t-3"] }]);
    // An accept sent in an earlier turn is not taken back by the result of a later one.
    h.outbox.accept({ taskId: "t-4", attempt: 1 });
    h.endTurn();
    h.outbox.result(res("t-4"));
    h.endTurn();
    expect(batches(h.sent).slice(1)).toEqual([
      { accepted: ["t-4"], results: [] },
      { accepted: [], results: ["t-4"] },
    ]);
  });

  it("sends nothing for an empty turn, and a new batch for each later turn", () => {
    const h = harness();
    h.endTurn();
    expect(h.sent).toEqual([]);
    h.outbox.result(res("a"));
    h.endTurn();
    h.outbox.result(res("b"));
    h.endTurn();
    expect(batches(h.sent)).toEqual([
      { accepted: [], results: ["a"] },
      { accepted: [], results: ["b"] },
    ]);
  });

  it("flush() sends at once (before a heartbeat), and the end of the turn then has nothing left", () => {
    const h = harness();
    h.outbox.accept({ taskId: "t-1", attempt: 1 });
    h.outbox.flush();
    expect(batches(h.sent)).toEqual([{ accepted: ["t-1"], results: [] }]);
    h.endTurn();
    expect(h.sent).toHaveLength(1);
  });

  it("drops a batch when there is no stream (results are re-sent by the agent after registering)", () => {
    let up = false;
    const h = harness(() => up);
    h.outbox.result(res("a"));
    h.endTurn();
    expect(h.outbox.size).toBe(0);
    up = true;
    h.outbox.result(res("b"));
    h.endTurn();
    expect(batches(h.sent)).toEqual([{ accepted: [], results: ["b"] }]);
  });
});
