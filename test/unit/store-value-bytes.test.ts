// Schema version 4: inputs and outputs the coordinator has as the google.protobuf.Value bytes they arrived in are
// stored as those bytes (task_specs.input, tasks.output as a BLOB), not as JSON text; what it has only as JSON stays
// JSON. Either way a record reloads deep-equal, and a version 3 file (JSON only) opens and migrates in place.
import type { JsonValue } from "@bufbuild/protobuf";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { SCHEMA_VERSION } from "../../coordinator/store/migrations.js";
import { StoreCorruptError } from "../../coordinator/store/sqlite-store.js";
import type { TaskRecord } from "../../coordinator/tasks/types.js";
import { decodeValue, encodeValueField, rememberValueField } from "../../lib/value-wire.js";
import { cleanUp, dispatched, openStore, peek, recordingLogger, running, succeeded, task, tempDir } from "../helpers/store-fixtures.js";

afterEach(cleanUp);

/** A JSON value as the RPC layer holds one it decoded: with the bytes it came in remembered. */
function arrived<T extends JsonValue>(json: T): T {
  return rememberValueField(json, encodeValueField(json));
}

const input = () => ({ values: Array.from({ length: 100 }, (_, i) => 20 + Math.sin(i) * 3.14159), unit: "°C", nested: { ok: true, none: null } });

describe("schema version 4: Value bytes", () => {
  it("an input and an output that arrived as Value bytes are stored as those bytes and reload deep-equal, running and finished", async () => {
    const dir = tempDir();
    let s = openStore(dir);
    const live = dispatched(task({}, { input: arrived(input()) }));
    const fin = task({}, { input: arrived(input()) });
    s.insert([live, fin]);
    const done = { ...succeeded(running(dispatched(fin))), output: arrived({ mean: 1.25, p99: -0.5, tags: ["a", "b"] }) };
    s.put(done);
    await s.flush();

    const h = peek(dir);
    const specs = h.prepare("SELECT id, spec, input FROM task_specs").all() as { id: string; spec: string; input: Buffer | null }[];
    for (const r of specs) {
      expect(r.input, r.id).toBeInstanceOf(Buffer);
      expect(Object.keys(JSON.parse(r.spec)), r.id).not.toContain("input");
      expect(decodeValue(r.input!), r.id).toStrictEqual(input());
    }
    const out = h.prepare("SELECT typeof(output) AS type, output FROM tasks WHERE id = ?").get(done.id) as { type: string; output: Buffer };
    expect(out.type).toBe("blob");
    expect(decodeValue(out.output)).toStrictEqual({ mean: 1.25, p99: -0.5, tags: ["a", "b"] });
    h.close();

    await s.close();
    s = openStore(dir);
    expect(s.get(live.id)).toStrictEqual(live);
    // A finished task's input stays on disk until asked for.
    expect(s.get(done.id)!.spec.input).toBeUndefined();
    expect(s.withPayload(s.get(done.id)!)).toStrictEqual(done);
  });

  it("values held only as JSON (made by code, or bigger than the bytes kept) stay JSON text, and reload deep-equal", async () => {
    const dir = tempDir();
    let s = openStore(dir);
    const t = task({}, { input: input() });
    s.insert([t]);
    const done = { ...succeeded(running(dispatched(t))), output: { made: "by code" } };
    s.put(done);
    await s.flush();
    const h = peek(dir);
    expect(h.prepare("SELECT input FROM task_specs WHERE id = ?").pluck().get(t.id)).toBeNull();
    expect(JSON.parse(h.prepare("SELECT spec FROM task_specs WHERE id = ?").pluck().get(t.id) as string).input).toStrictEqual(input());
    expect(h.prepare("SELECT typeof(output) FROM tasks WHERE id = ?").pluck().get(t.id)).toBe("text");
    h.close();
    s = (await s.close(), openStore(dir));
    expect(s.withPayload(s.get(t.id)!)).toStrictEqual(done);
  });

  it("a version 3 file (inputs and outputs as JSON, no input column) migrates in place and reloads deep-equal", async () => {
    const dir = tempDir();
    let s = openStore(dir);
    const queued = task({}, { input: input() });
    const finished = { ...succeeded(running(dispatched(task({}, { input: { text: "on disk" } })))), output: { mean: 2 } };
    s.insert([queued, { ...finished, state: "queued", output: undefined, finishedAt: undefined }]);
    s.put(finished);
    await s.close();
    // What version 3's code wrote: the same rows, without the column version 4 added.
    const raw = new Database(join(dir, "edgeplane.db"));
    raw.exec("ALTER TABLE task_specs DROP COLUMN input");
    raw.pragma("user_version = 3");
    raw.close();

    const log = recordingLogger();
    s = openStore(dir, { logger: log });
    expect(log.lines.find((l) => l.msg === "task store schema migrated")?.obj).toMatchObject({ from: 3, to: SCHEMA_VERSION });
    expect(s.get(queued.id)).toStrictEqual(queued);
    expect(s.withPayload(s.get(finished.id)!)).toStrictEqual(finished);
    // New rows from then on take the new form.
    const next = task({}, { input: arrived(input()) });
    s.insert([next]);
    await s.flush();
    expect(peek(dir).prepare("SELECT input FROM task_specs WHERE id = ?").pluck().get(next.id)).toBeInstanceOf(Buffer);
    s = (await s.close(), openStore(dir));
    expect(s.get(next.id)).toStrictEqual(next);
  });

  it("an input stored both in the spec JSON and as bytes: StoreCorruptError naming the task", async () => {
    const dir = tempDir();
    const s = openStore(dir);
    const t: TaskRecord = task({}, { input: arrived(input()) });
    s.insert([t]);
    await s.close();
    const raw = new Database(join(dir, "edgeplane.db"));
    const spec = JSON.parse(raw.prepare("SELECT spec FROM task_specs WHERE id = ?").pluck().get(t.id) as string);
    raw.prepare("UPDATE task_specs SET spec = ? WHERE id = ?").run(JSON.stringify({ ...spec, input: { values: [1] } }), t.id);
    raw.close();
    expect(() => openStore(dir)).toThrow(StoreCorruptError);
    expect(() => openStore(dir)).toThrow(`task ${t.id}: its input is stored twice`);
  });
});
