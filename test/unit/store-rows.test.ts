// Schema version 3's row codec through a real file: whatever a record holds comes back deep-equal after a reopen,
// written whole at insert or as deltas by put — undefined apart from null and from a missing key, fields the
// store has no column for, values a column cannot hold.
import { afterEach, describe, expect, it } from "vitest";
import type { SqliteTaskStore } from "../../coordinator/store/sqlite-store.js";
import type { TaskRecord } from "../../coordinator/tasks/types.js";
import { cleanUp, dispatched, openStore, peek, running, task, tempDir } from "../helpers/store-fixtures.js";

afterEach(cleanUp);

async function reopen(s: SqliteTaskStore, dir: string): Promise<SqliteTaskStore> {
  await s.close();
  return openStore(dir);
}

type Loose = TaskRecord & Record<string, unknown>;

/** Records the type system would not produce but the store must still keep exactly. */
function oddRecords(): Loose[] {
  const missing = task() as Loose;
  delete (missing as Partial<Loose>).error; // a required key missing altogether
  const odd: Loose[] = [
    missing,
    task({ createdAt: undefined as unknown as number }) as Loose, // undefined in a NOT NULL column
    task({ finishedAt: null as unknown as number }) as Loose, // null where a number goes
    task({ assignedNode: 42 as unknown as string, queuedMs: 1.25, notBefore: Number.POSITIVE_INFINITY }) as Loose,
    task({ output: null }) as Loose,
    task({ output: { deep: [1, { x: null }] } }) as Loose,
    { ...task(), laterField: { team: "a", note: undefined, nested: { also: undefined } }, flags: ["x"] } as Loose,
    {
      ...task(),
      shard: { parentId: "p", index: 0, count: 1, start: 0, end: 0, offset: 0, phase: "merge", round: 0, global: undefined, preferNode: "" },
    } as Loose,
    { ...task(), shard: undefined } as Loose, // an optional key present with undefined
    {
      ...task(),
      split: {
        clusterId: "c",
        reason: "",
        prepareRounds: 0,
        remoteMerge: true,
        phase: "done",
        round: 0,
        done: 1,
        total: 1,
        shards: [],
        mergeTaskId: undefined,
        global: undefined,
        mergeMs: 0,
      },
    } as Loose,
  ];
  const withAttempts = dispatched(dispatched(task(), "n1"), "n2") as Loose;
  withAttempts.attempts = [
    { ...withAttempts.attempts[0], stillLive: false, outcome: "failed" },
    { ...withAttempts.attempts[1], stillLive: undefined, extra: { why: "later field" } } as never,
  ];
  odd.push(withAttempts);
  return odd;
}

describe("schema version 3 rows", () => {
  it("an inserted record of any shape reloads deep-equal", async () => {
    const dir = tempDir();
    let s = openStore(dir);
    const recs = oddRecords();
    s.insert(recs);
    s = await reopen(s, dir);
    for (const r of recs) expect(s.get(r.id), r.id).toStrictEqual(r);
  });

  it("deltas of any shape reload deep-equal: keys added, removed, set to undefined or null, attempts changed or dropped", async () => {
    const dir = tempDir();
    let s = openStore(dir);
    const base = running(dispatched(dispatched(task({ split: undefined }), "n1"), "n2"));
    const owned = { ...task(), laterField: "a" } as Loose;
    s.insert([base, owned]);
    await s.flush();
    const steps: ((t: Loose) => Loose)[] = [
      (t) => ({ ...t, laterField: { team: "x" } }), // a field without a column appears
      (t) => ({ ...t, laterField: undefined }), // … is undefined
      (t) => {
        const { laterField: _owner, ...rest } = t;
        return rest as Loose; // … is gone
      },
      (t) => ({
        ...t,
        split: {
          clusterId: "c",
          reason: "r",
          prepareRounds: 0,
          remoteMerge: false,
          phase: "partial",
          round: 0,
          done: 0,
          total: 2,
          shards: [],
          global: undefined,
          mergeMs: 0,
        },
      }),
      (t) => {
        const { split: _split, ...rest } = t;
        return rest as Loose; // an optional key with a column removed
      },
      (t) => ({ ...t, error: null as unknown as string, finishedAt: undefined, output: null }),
      (t) => ({ ...t, attempts: t.attempts.slice(0, 1) }), // fewer attempts
      (t) => ({ ...t, attempts: [...t.attempts, { ...t.attempts[0], attempt: 9, stillLive: true }] }),
      (t) => ({ ...t, attempts: t.attempts.map((a, i) => (i === 1 ? { ...a, stillLive: undefined } : a)) }),
      (t) => ({ ...t, error: "back to a string", updatedAt: 77 }),
    ];
    let cur = base as Loose;
    let other = owned;
    for (const [i, step] of steps.entries()) {
      cur = step(cur);
      other = step(other);
      s.put(cur);
      s.put(other);
      s = await reopen(s, dir);
      expect(s.get(cur.id), `step ${i}`).toStrictEqual(cur);
      expect(s.get(other.id), `step ${i}`).toStrictEqual(other);
    }
    expect(peek(dir).prepare("SELECT count(*) FROM attempts WHERE task_id = ?").pluck().get(cur.id)).toBe(2);
  });

  it("NaN outside a series is stored as null, as JSON does", async () => {
    const dir = tempDir();
    let s = openStore(dir);
    const t = task({ queuedMs: Number.NaN });
    s.insert([t]);
    s = await reopen(s, dir);
    expect(s.get(t.id)!.queuedMs).toBeNull();
  });
});
