// The agent's result journal (agent/journal.ts) on a real temporary directory: appends visible at once, one
// background flush at a time covering everything appended meanwhile, the durable hook, acks, segment deletion,
// compaction while results keep coming, restarts, torn tails and corrupt records. Flushes and end-of-turn callbacks
// are driven by hand, so nothing here depends on timing.
import { create, toBinary } from "@bufbuild/protobuf";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ConnectRequestSchema, TaskResultSchema, type TaskResult } from "../../gen/edgeplane/v1/agent_pb.js";
import { AttemptOutcome } from "../../gen/edgeplane/v1/types_pb.js";
import { readJournal, ResultJournal, type JournalOptions, type ResultRef, type Syncer } from "../../agent/journal.js";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "edgeplane-journal-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** A flush that completes only when the test says so. */
class HeldSyncer implements Syncer {
  readonly held: { kind: "data" | "dir"; done: (err: Error | null) => void }[] = [];
  /** Segment flushes started (directory flushes not counted). */
  started = 0;
  fail: Error | undefined;
  data(_fd: number, done: (err: Error | null) => void): void {
    this.started += 1;
    this.held.push({ kind: "data", done });
  }
  dir(_fd: number, done: (err: Error | null) => void): void {
    this.held.push({ kind: "dir", done });
  }
  get inFlight(): boolean {
    return this.held.length > 0;
  }
  /** Completes every flush started so far. */
  release(): void {
    const h = this.held.splice(0);
    for (const x of h) x.done(this.fail ?? null);
  }
}

/** End-of-turn callbacks, run when the test ends a turn. */
class Turns {
  private q: (() => void)[] = [];
  readonly defer = (fn: () => void) => {
    this.q.push(fn);
  };
  end(): void {
    for (let i = 0; i < 100 && this.q.length > 0; i++) {
      const q = this.q.splice(0);
      for (const fn of q) fn();
    }
  }
}

function result(taskId: string, attempt = 1, outputBytes = 0): TaskResult {
  return create(TaskResultSchema, {
    taskId,
    attempt,
    outcome: AttemptOutcome.SUCCEEDED,
    error: outputBytes > 0 ? "x".repeat(outputBytes) : "",
    peakMemoryBytes: 1234n,
  });
}

const ids = (rs: readonly { taskId: string }[]) => rs.map((r) => r.taskId);
const segments = () =>
  readdirSync(dir)
    .filter((n) => /^journal-\d{12}\.log$/.test(n))
    .sort();

interface Harness {
  journal: ResultJournal;
  recovered: ReturnType<typeof ResultJournal.open>["recovered"];
  syncer: HeldSyncer;
  turns: Turns;
  durable: ResultRef[][];
}

/** Delayed flushes (JournalOptions.later), fired when the test says their time has come. */
class Later {
  private armed: { fn: () => void; ms: number }[] = [];
  readonly later = (fn: () => void, ms: number) => {
    const entry = { fn, ms };
    this.armed.push(entry);
    return () => {
      this.armed = this.armed.filter((e) => e !== entry);
    };
  };
  get pending(): number[] {
    return this.armed.map((e) => e.ms);
  }
  fire(): void {
    const due = this.armed.splice(0);
    for (const e of due) e.fn();
  }
}

/** Flushes at the end of each turn (syncDelayMs 0) unless a test asks for the delay; `later` is driven by hand. */
function open(opts: JournalOptions = {}, later = new Later()): Harness & { later: Later } {
  const syncer = new HeldSyncer();
  const turns = new Turns();
  const { journal, recovered } = ResultJournal.open(dir, { syncer, defer: turns.defer, syncDelayMs: 0, later: later.later, ...opts });
  const durable: ResultRef[][] = [];
  journal.onDurable((refs) => durable.push(refs));
  return { journal, recovered, syncer, turns, durable, later };
}

/** Ends turns and completes flushes until nothing more is pending; counts flushes from zero again. */
function settle(h: Harness): void {
  for (let i = 0; i < 100; i++) {
    h.turns.end();
    if (!h.syncer.inFlight) {
      h.syncer.started = 0;
      return;
    }
    h.syncer.release();
  }
  throw new Error("journal never settled");
}

describe("result journal: append and flush", () => {
  it("an appended result is in the file at once, before any flush has finished (it survives a kill of the agent)", () => {
    const h = open();
    h.journal.append(result("t-1"));
    // No turn ended, no flush started: only the write has happened.
    expect(h.syncer.started).toBe(0);
    expect(ids(readJournal(dir).results)).toEqual(["t-1"]);
  });

  it("runs one flush at a time: results appended while one is in flight are covered by the next one", () => {
    const h = open();
    settle(h); // the fresh segment of open()
    h.journal.append(result("t-1"));
    h.turns.end();
    expect(h.syncer.started).toBe(1);
    for (let i = 2; i <= 11; i++) h.journal.append(result(`t-${i}`));
    h.turns.end();
    // Still one in flight, and no second one started.
    expect(h.syncer.started).toBe(1);
    expect(h.durable).toEqual([]);
    h.syncer.release();
    expect(h.durable.map(ids)).toEqual([["t-1"]]);
    h.turns.end();
    expect(h.syncer.started).toBe(2);
    h.syncer.release();
    expect(h.durable.map(ids)).toEqual([["t-1"], ["t-2", "t-3", "t-4", "t-5", "t-6", "t-7", "t-8", "t-9", "t-10", "t-11"]]);
    h.turns.end();
    expect(h.syncer.inFlight).toBe(false);
  });

  it("groups one turn's results into one flush, and reports each result durable exactly once", async () => {
    const h = open();
    settle(h);
    for (let i = 0; i < 5; i++) h.journal.append(result(`t-${i}`));
    const flushed = h.journal.flush();
    h.turns.end();
    expect(h.syncer.started).toBe(1);
    h.syncer.release();
    await flushed;
    settle(h);
    expect(h.durable.flat().map((r) => r.taskId)).toEqual(["t-0", "t-1", "t-2", "t-3", "t-4"]);
  });

  it("with a sync delay, a result waits for its flush until the delay is up, sharing it with those journaled meanwhile", () => {
    const h = open({ syncDelayMs: 10 });
    settle(h);
    h.journal.append(result("t-1"));
    h.turns.end();
    expect(h.syncer.started).toBe(0);
    expect(h.later.pending).toEqual([10]);
    h.journal.append(result("t-2"));
    h.turns.end();
    expect(h.later.pending).toEqual([10]); // still the one delayed flush
    h.later.fire();
    expect(h.syncer.started).toBe(1);
    h.syncer.release();
    expect(h.durable.map(ids)).toEqual([["t-1", "t-2"]]);
    expect(h.journal.stats().skippedSyncs).toBe(0);
  });

  it("skips the flush when the coordinator acknowledged every waiting result first; their records stay in the file", () => {
    const h = open({ syncDelayMs: 10 });
    settle(h);
    h.journal.append(result("t-1"));
    h.journal.append(result("t-2"));
    h.journal.ack("t-1", 1);
    h.journal.ack("t-2", 1);
    h.turns.end();
    h.later.fire();
    expect(h.syncer.started).toBe(0);
    expect(h.durable).toEqual([]);
    expect(h.journal.stats().skippedSyncs).toBe(1);
    // Nothing is live, and the files were written (a kill of the agent loses nothing either way).
    expect(readJournal(dir).results).toEqual([]);
    // A result that is not acknowledged in time is flushed, and the acked records before it go to disk with it.
    h.journal.append(result("t-3"));
    h.journal.append(result("t-4"));
    h.journal.ack("t-3", 1);
    h.turns.end();
    h.later.fire();
    expect(h.syncer.started).toBe(1);
    h.syncer.release();
    expect(h.durable.map(ids)).toEqual([["t-3", "t-4"]]);
    expect(ids(readJournal(dir).results)).toEqual(["t-4"]);
  });

  it("flush() does not wait for the delay, and covers the results an earlier skipped flush left unflushed", async () => {
    const h = open({ syncDelayMs: 10 });
    settle(h);
    h.journal.append(result("t-1"));
    h.journal.ack("t-1", 1);
    h.turns.end();
    h.later.fire();
    expect(h.syncer.started).toBe(0);
    const flushed = h.journal.flush();
    h.turns.end();
    expect(h.later.pending).toEqual([]);
    expect(h.syncer.started).toBe(1);
    h.syncer.release();
    await flushed;
  });

  it("refuses a negative sync delay", () => {
    expect(() => open({ syncDelayMs: -1 })).toThrow(/syncDelayMs must be at least 0/);
  });

  it("flushes with the real fdatasync on the thread pool", async () => {
    const { journal } = ResultJournal.open(dir);
    const durable: string[] = [];
    journal.onDurable((refs) => durable.push(...ids(refs)));
    journal.append(result("t-real"));
    await journal.flush();
    expect(durable).toEqual(["t-real"]);
    await journal.close();
    expect(ids(readJournal(dir).results)).toEqual(["t-real"]);
  });

  it("a failed flush is reported with the results it did not make durable, and nothing is deleted afterwards", async () => {
    const h = open({ segmentBytes: 300 });
    settle(h);
    const errors: { err: Error; refs: ResultRef[] }[] = [];
    h.journal.onDiskError((err, refs) => errors.push({ err, refs }));
    h.journal.append(result("t-1"));
    const flushed = h.journal.flush();
    h.turns.end();
    h.syncer.fail = new Error("EIO: i/o error, fdatasync");
    h.syncer.release();
    await expect(flushed).rejects.toThrow(/EIO/);
    expect(errors.map((e) => [e.err.message, ids(e.refs)])).toEqual([["EIO: i/o error, fdatasync", ["t-1"]]]);
    expect(h.durable).toEqual([]);
    h.syncer.fail = undefined;
    // Fill and ack several segments: with a failed flush behind it, the journal keeps every file.
    for (let i = 2; i < 12; i++) h.journal.append(result(`t-${i}`, 1, 100));
    settle(h);
    const before = segments();
    expect(before.length).toBeGreaterThan(3);
    for (let i = 1; i < 12; i++) h.journal.ack(`t-${i}`, 1);
    settle(h);
    for (const f of before) expect(segments()).toContain(f);
  });
});

describe("result journal: acks, deletion, compaction", () => {
  it("acknowledged results are dropped: a restart loads only the others", () => {
    const h = open();
    for (let i = 0; i < 6; i++) h.journal.append(result(`t-${i}`));
    h.journal.ack("t-1", 1);
    h.journal.ack("t-4", 1);
    expect(h.journal.ack("t-4", 1)).toBe(false); // a duplicate ack
    expect(h.journal.ack("t-unknown", 1)).toBe(false);
    settle(h);
    expect(h.journal.size).toBe(4);
    const again = open();
    expect(ids(again.recovered.results)).toEqual(["t-0", "t-2", "t-3", "t-5"]);
  });

  it("tells attempts of the same task apart", () => {
    const h = open();
    h.journal.append(result("t-1", 1));
    h.journal.append(result("t-1", 2));
    h.journal.ack("t-1", 1);
    settle(h);
    expect(open().recovered.results.map((r) => [r.taskId, r.attempt])).toEqual([["t-1", 2]]);
  });

  it("seals segments at segmentBytes and deletes them, oldest first, once all their results are acknowledged", () => {
    const h = open({ segmentBytes: 1024 });
    for (let i = 0; i < 40; i++) h.journal.append(result(`t-${i}`, 1, 100));
    settle(h);
    expect(segments().length).toBeGreaterThan(4);
    // Acks for the newest half first: nothing can go while the oldest segments hold live results.
    const before = segments().length;
    for (let i = 20; i < 40; i++) h.journal.ack(`t-${i}`, 1);
    h.turns.end();
    expect(segments()[0]).toBe("journal-000000000001.log");
    for (let i = 0; i < 20; i++) h.journal.ack(`t-${i}`, 1);
    settle(h);
    expect(segments().length).toBeLessThan(before);
    expect(segments().length).toBeLessThanOrEqual(2);
    expect(open().recovered.results).toEqual([]);
  });

  it("compacts around a straggler: its live result is copied forward and the old segments go once the copy is flushed", () => {
    const h = open({ segmentBytes: 1024 });
    for (let i = 0; i < 60; i++) h.journal.append(result(`t-${i}`, 1, 100));
    settle(h);
    const sealed = segments().length;
    expect(sealed).toBeGreaterThan(5);
    // Everything but the very first result is acknowledged: it would hold every segment.
    for (let i = 1; i < 60; i++) h.journal.ack(`t-${i}`, 1);
    h.turns.end();
    // Copied, but not flushed yet: the old segments must still be there.
    expect(segments()[0]).toBe("journal-000000000001.log");
    settle(h);
    expect(segments().length).toBeLessThanOrEqual(2);
    expect(segments()[0]).not.toBe("journal-000000000001.log");
    expect(h.journal.stats().liveResults).toBe(1);
    expect(ids(open().recovered.results)).toEqual(["t-0"]);
  });

  it("compaction while results keep coming, acks arrive out of order and the agent restarts: the journal always holds exactly the unacknowledged results", () => {
    let seed = 42;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    let h = open({ segmentBytes: 2048 });
    const live: string[] = [];
    let next = 0;
    let restarts = 0;
    for (let step = 0; step < 3000; step++) {
      const r = random();
      if (r < 0.45) {
        const id = `t-${next++}`;
        h.journal.append(result(id, 1, Math.floor(random() * 200)));
        live.push(id);
      } else if (r < 0.8 && live.length > 0) {
        // Mostly the oldest (acks follow results), sometimes any (a slow store, a retry).
        const i = random() < 0.7 ? 0 : Math.floor(random() * live.length);
        const [id] = live.splice(i, 1);
        expect(h.journal.ack(id, 1)).toBe(true);
      } else if (r < 0.9) h.turns.end();
      else if (r < 0.98) h.syncer.release();
      else {
        // kill -9: whatever was written is in the files; pending acks and flushes are lost with the process.
        const loaded = open({ segmentBytes: 2048 });
        const got = new Set(ids(loaded.recovered.results));
        // Lost ack records (not yet written at the kill) may bring acknowledged results back: sent again, ignored.
        for (const id of live) expect(got.has(id), id).toBe(true);
        h = loaded;
        live.splice(0, live.length, ...ids(loaded.recovered.results));
        restarts += 1;
      }
    }
    settle(h);
    expect(restarts).toBeGreaterThan(10);
    expect(new Set(ids(open().recovered.results))).toEqual(new Set(live));
    // Compaction and deletion kept the files bounded by what is live.
    const { bytes, liveBytes } = h.journal.stats();
    expect(bytes).toBeLessThan(liveBytes * 4 + 3 * 2048 + 1024);
  });

  it("restart with a journal of 10,000 records: the unacknowledged ones come back in order, once each", async () => {
    const { journal } = ResultJournal.open(dir);
    const expected: string[] = [];
    for (let i = 0; i < 10_000; i++) {
      journal.append(result(`t-${i}`));
      if (i % 3 === 0) journal.ack(`t-${i}`, 1);
      else expected.push(`t-${i}`);
    }
    await journal.close();
    const first = ResultJournal.open(dir);
    expect(ids(first.recovered.results)).toEqual(expected);
    expect(first.recovered.tornTails).toEqual([]);
    expect(first.recovered.corrupt).toEqual([]);
    await first.journal.close();
    // open() rewrote the live results into one fresh segment and deleted the old files once that was flushed.
    expect(segments()).toEqual(["journal-000000000002.log"]);
    const second = ResultJournal.open(dir);
    expect(ids(second.recovered.results)).toEqual(expected);
    await second.journal.close();
  });
});

describe("result journal: damage after a crash", () => {
  function writeThree(): string {
    const h = open();
    for (const id of ["t-a", "t-b", "t-c"]) h.journal.append(result(id, 1, 50));
    settle(h);
    const [seg] = segments();
    return join(dir, seg);
  }

  it("ignores and reports a torn last record (a write cut short), and does not report it again after the rewrite", () => {
    const seg = writeThree();
    const size = readFileSync(seg).length;
    truncateSync(seg, size - 7);
    const h = open();
    expect(ids(h.recovered.results)).toEqual(["t-a", "t-b"]);
    expect(h.recovered.tornTails).toHaveLength(1);
    expect(h.recovered.tornTails[0]).toMatchObject({ file: "journal-000000000001.log", bytes: expect.any(Number) });
    expect(h.recovered.tornTails[0].offset + h.recovered.tornTails[0].bytes).toBe(size - 7);
    expect(h.recovered.corrupt).toEqual([]);
    settle(h);
    const again = open();
    expect(ids(again.recovered.results)).toEqual(["t-a", "t-b"]);
    expect(again.recovered.tornTails).toEqual([]);
  });

  it("a torn header (fewer bytes than a record header) and a torn empty segment are torn tails too", () => {
    const seg = writeThree();
    writeFileSync(seg, Buffer.concat([readFileSync(seg), Buffer.from([0x20, 0, 0])]));
    writeFileSync(join(dir, "journal-000000000009.log"), Buffer.from("EPJ"));
    const h = open();
    expect(ids(h.recovered.results)).toEqual(["t-a", "t-b", "t-c"]);
    expect(h.recovered.tornTails.map((t) => [t.file, t.bytes])).toEqual([
      ["journal-000000000001.log", 3],
      ["journal-000000000009.log", 3],
    ]);
    // The next segment is numbered after the highest one on disk.
    expect(segments()).toContain("journal-000000000010.log");
  });

  it("skips a corrupt record in the middle, reports it and keeps its bytes aside; the records after it are read", () => {
    const seg = writeThree();
    const buf = readFileSync(seg);
    const second = buf.indexOf(Buffer.from("t-b"));
    const originalSecond = Buffer.from(buf);
    buf[second + 10] ^= 0xff; // inside the payload: the checksum no longer holds
    writeFileSync(seg, buf);
    const h = open();
    expect(ids(h.recovered.results)).toEqual(["t-a", "t-c"]);
    expect(h.recovered.tornTails).toEqual([]);
    expect(h.recovered.corrupt).toHaveLength(1);
    const c = h.recovered.corrupt[0];
    expect(c.file).toBe("journal-000000000001.log");
    expect(c.keptAs).toBe(`journal-000000000001.log.${c.offset}.corrupt`);
    const kept = readFileSync(join(dir, c.keptAs!));
    expect(kept.length).toBe(c.bytes);
    expect(kept.equals(buf.subarray(c.offset, c.offset + c.bytes))).toBe(true);
    expect(originalSecond.subarray(c.offset, c.offset + c.bytes).includes(Buffer.from("t-b"))).toBe(true);
    settle(h);
    // Kept aside for good: the old segment is gone, the bytes are not.
    expect(existsSync(seg)).toBe(false);
    expect(existsSync(join(dir, c.keptAs!))).toBe(true);
    expect(open().recovered.corrupt).toEqual([]);
  });

  it("finds the next record after a corrupt length field", () => {
    const seg = writeThree();
    const buf = readFileSync(seg);
    const second = buf.indexOf(Buffer.from("t-b"));
    // The record header sits before the payload: length (4), crc (4), type (1), then the payload's first tag.
    let start = second;
    while (start > 8 && !(buf[start - 1] === 1 && buf.readUInt32LE(start - 9) > 0 && buf.readUInt32LE(start - 9) < 200)) start--;
    const header = start - 9;
    buf.writeUInt32LE(0x00ffffff, header);
    writeFileSync(seg, buf);
    const h = open();
    expect(ids(h.recovered.results)).toEqual(["t-a", "t-c"]);
    expect(h.recovered.corrupt.map((c) => c.offset)).toEqual([header]);
  });

  it("leaves a file that is not a journal segment alone (renamed *.unreadable) and reports it", () => {
    writeFileSync(join(dir, "journal-000000000003.log"), "something else entirely");
    const h = open();
    expect(h.recovered.unreadableFiles).toEqual(["journal-000000000003.log"]);
    expect(readdirSync(dir)).toContain("journal-000000000003.log.unreadable");
    expect(h.recovered.results).toEqual([]);
  });

  it("reads results of the old one-file-per-result format once, and deletes those files after the rewrite", () => {
    const old = create(ConnectRequestSchema, { msg: { case: "result", value: result("t-old", 3) } });
    writeFileSync(join(dir, "t-old.3.result"), toBinary(ConnectRequestSchema, old));
    writeFileSync(join(dir, "t-bad.1.result"), Buffer.from([0xff, 0xff, 0xff]));
    const h = open();
    expect(h.recovered.results.map((r) => [r.taskId, r.attempt])).toEqual([["t-old", 3]]);
    expect(h.recovered.legacyFiles).toBe(1);
    expect(h.recovered.unreadableFiles).toEqual(["t-bad.1.result"]);
    settle(h);
    expect(readdirSync(dir).filter((n) => n.endsWith(".result"))).toEqual([]);
    expect(readdirSync(dir)).toContain("t-bad.1.result.unreadable");
    expect(open().recovered.results.map((r) => r.taskId)).toEqual(["t-old"]);
  });
});

describe("journal checksum without zlib.crc32 (Node 20 before 20.15)", () => {
  it("the table CRC-32 equals zlib's", async () => {
    const zlib = await import("node:zlib");
    const native = (zlib as unknown as { crc32?: (d: Uint8Array) => number }).crc32;
    if (!native) throw new Error("this test needs a Node.js with zlib.crc32 to compare against");
    const { tableCrc32 } = await import("../../agent/journal.js");
    for (const n of [0, 1, 7, 64, 1000, 65_537]) {
      const data = new Uint8Array(n).map((_, i) => (i * 2654435761) >>> 24);
      expect(tableCrc32(data)).toBe(native(data));
    }
  });
});

describe("appendAll", () => {
  it("journals several results with one write; each is live, acked and reloaded on its own", async () => {
    const dir = mkdtempSync(join(tmpdir(), "edgeplane-journal-all-"));
    try {
      const { journal } = ResultJournal.open(dir);
      const rs = [0, 1, 2].map((i) => create(TaskResultSchema, { taskId: `t-${i}`, attempt: 1, outcome: AttemptOutcome.SUCCEEDED }));
      journal.appendAll(rs);
      expect(journal.ack("t-1", 1)).toBe(true);
      expect(journal.ack("t-1", 1)).toBe(false);
      await journal.close();
      const again = readJournal(dir);
      expect(again.results.map((r) => r.taskId).sort()).toEqual(["t-0", "t-2"]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("encrypted journal (--encrypt-journal)", () => {
  it("keeps no result bytes in clear on disk, reads back with the key, and treats a record under another key as corrupt", async () => {
    const { JournalCipher, journalSealer } = await import("../../agent/identity/journal-cipher.js");
    const dir = mkdtempSync(join(tmpdir(), "edgeplane-journal-enc-"));
    try {
      const { cipher } = JournalCipher.fromKeyFile(join(dir, "keys", "journal.key"));
      const sealer = journalSealer(cipher);
      const { journal } = ResultJournal.open(join(dir, "j"), { sealer });
      const secret = "result-secret-0123456789";
      journal.appendAll([create(TaskResultSchema, { taskId: "t-enc", attempt: 1, outcome: AttemptOutcome.SUCCEEDED, error: secret })]);
      await journal.close();
      const raw = readdirSync(join(dir, "j"))
        .map((f) => readFileSync(join(dir, "j", f), "latin1"))
        .join("");
      expect(raw).not.toContain(secret);
      expect(raw).not.toContain("t-enc");
      expect(readJournal(join(dir, "j"), { sealer }).results.map((r) => r.error)).toEqual([secret]);
      const other = journalSealer(JournalCipher.fromKeyFile(join(dir, "keys", "other.key")).cipher);
      const wrong = readJournal(join(dir, "j"), { sealer: other });
      expect(wrong.results).toEqual([]);
      expect(wrong.corrupt.length + wrong.tornTails.length).toBeGreaterThan(0);
      // Without the key (encryption off) the sealed record cannot be read either.
      expect(readJournal(join(dir, "j")).results).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("turning encryption on keeps the plaintext results journaled before", async () => {
    const { JournalCipher, journalSealer } = await import("../../agent/identity/journal-cipher.js");
    const dir = mkdtempSync(join(tmpdir(), "edgeplane-journal-enc2-"));
    try {
      const first = ResultJournal.open(dir).journal;
      first.appendAll([create(TaskResultSchema, { taskId: "t-plain", attempt: 2, outcome: AttemptOutcome.SUCCEEDED })]);
      await first.close();
      const sealer = journalSealer(JournalCipher.fromKeyFile(`${dir}.key`).cipher);
      const { journal, recovered } = ResultJournal.open(dir, { sealer });
      expect(recovered.results.map((r) => r.taskId)).toEqual(["t-plain"]);
      await journal.close();
      // Rewritten sealed at open: now readable only with the key.
      expect(readJournal(dir, { sealer }).results.map((r) => r.taskId)).toEqual(["t-plain"]);
      expect(readJournal(dir).results).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
      rmSync(`${dir}.key`, { force: true });
    }
  });
});
