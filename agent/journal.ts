// The agent's result journal: every finished attempt's result is appended here before it is sent, and forgotten
// once the coordinator acknowledges it (it acks only what it stored durably), so no result is lost to a dropped
// link, an agent kill -9 or, once its batch's fsync is done, a power cut. Never blocks the event loop on a disk
// flush, never deletes a result that is not acknowledged, never stops the agent over a damaged file.
//
// Durability. `append` writes the record with one synchronous write(): from then on it is in the page cache and
// survives the agent being killed. The flush to disk (fdatasync) runs on libuv's thread pool, at most one at a time:
// results appended while one runs are covered by the next one (group commit). `onDurable` listeners hear which
// results a finished flush covered.
//
// On disk: segment files `journal-<12-digit number>.log` in the data directory, appended in number order, each
// starting with the 8 bytes `EPJRNL1\n` and then records:
//   u32 LE  payload length N
//   u32 LE  CRC-32 (zlib's) of the next 1 + N bytes
//   u8      type: 1 = result (payload: edgeplane.v1.TaskResult), 2 = ack (payload: edgeplane.v1.ResultAck)
//   N bytes payload, protobuf binary
// A result is live until an ack record for its (task, attempt) follows it.
//
// Compaction. The segment being appended to is sealed once it holds `segmentBytes`, and a new one is started.
// Acks are tracked in memory per segment; a sealed segment is deleted once none of its results is live and every
// older segment is gone too (only oldest-first deletion keeps an ack record on disk as long as the result it
// cancels). A live result stuck in an old segment would hold everything after it, so when the sealed segments'
// live bytes fall to `compactLiveShare` of their size, their live results are copied into the current segment and
// the sealed ones are deleted once the copies are flushed. Results keep arriving meanwhile: copies and new results
// are plain appends to the same file.
//
// Recovery (open): every segment is read in order; results without a later ack are the ones to deliver. A record
// whose header or checksum does not hold is skipped: if a valid record follows it in the file it is a corrupt
// record, whose bytes are kept aside as `<segment>.<offset>.corrupt` and reported; if nothing valid follows, it is
// the torn tail of a write a crash cut short, ignored and reported. The live results are then written into a fresh
// segment and the old files are deleted once that is flushed. A lost deletion (a crash right after an ack) at worst
// sends a result again, which the coordinator ignores. Files of the previous one-file-per-result format
// (`*.result`) are read the same way, once.
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  closeSync,
  fdatasync,
  fsync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import * as zlib from "node:zlib";
import { ConnectRequestSchema, ResultAckSchema, TaskResultSchema, type TaskResult } from "../gen/edgeplane/v1/agent_pb.js";

/** Journal options; each has its default here. */
export interface JournalOptions {
  /** A segment is sealed, and a new one started, once it holds this many bytes. Default 4 MiB. */
  segmentBytes?: number;
  /**
   * Sealed segments are compacted (live results copied forward, the files deleted) once their live bytes are at
   * most this share of their size and there are at least two of them. Default 0.25.
   */
  compactLiveShare?: number;
  /** The flushes, on the thread pool. Default node:fs fdatasync for segments and fsync for the directory. */
  syncer?: Syncer;
  /** Runs `fn` once the current event-loop turn is over (to group one turn's work). Default setImmediate. */
  defer?: (fn: () => void) => void;
  /**
   * How long a journaled result may wait for its flush, in ms (default DEFAULT_SYNC_DELAY_MS); 0 flushes at the end
   * of the turn. The results journaled meanwhile share the flush, and one the coordinator acknowledged before it is
   * due needs none (the coordinator acks only what it stored durably): when every result waiting for a flush has
   * been acknowledged, the flush is skipped. `flush()` and `close()` never wait.
   */
  syncDelayMs?: number;
  /** Runs `fn` after `ms` (the delayed flush); returns a cancel. Default an unref'd setTimeout. */
  later?: (fn: () => void, ms: number) => () => void;
  /** How record payloads are kept on disk (RecordSealer). Default: as encoded, not encrypted. */
  sealer?: RecordSealer;
}

/** Asynchronous flushes; injectable so tests can hold one in flight. */
export interface Syncer {
  /** Flushes a segment file's data (fdatasync). */
  data(fd: number, done: (err: Error | null) => void): void;
  /** Flushes the directory (new and deleted segment names). */
  dir(fd: number, done: (err: Error | null) => void): void;
}

export const DEFAULT_SEGMENT_BYTES = 4 * 1024 * 1024;
/**
 * Default JournalOptions.syncDelayMs. Long enough for the coordinator's ack to come back first under load and at
 * rest (its commit and one round trip: a few ms), so most results need no flush here at all; short enough that a
 * power cut can only cost the results of the last 10 ms their journal copy (their attempts then run again).
 */
export const DEFAULT_SYNC_DELAY_MS = 10;
export const DEFAULT_COMPACT_LIVE_SHARE = 0.25;

/** A (task, attempt) whose result the journal holds. */
export interface ResultRef {
  taskId: string;
  attempt: number;
}

/** Bytes of a segment that could not be read as records. */
export interface Damage {
  file: string;
  offset: number;
  bytes: number;
  /** Where the bytes were kept (corrupt records only). */
  keptAs?: string;
}

/** What a journal's files held. */
export interface JournalContents {
  /** Results without an ack, in the order they were first journaled. */
  results: TaskResult[];
  /** Incomplete last records (a write cut short by a crash): ignored. */
  tornTails: Damage[];
  /** Unreadable records with readable ones after them: skipped (and, by open, kept aside). */
  corrupt: Damage[];
  /** Files in the old one-file-per-result format that were read. */
  legacyFiles: number;
  /** Files that are not journal files at all (wrong header, unparsable old-format file): left alone / renamed. */
  unreadableFiles: string[];
}

export const resultKey = (taskId: string, attempt: number): string => `${taskId}#${attempt}`;

const MAGIC = Buffer.from("EPJRNL1\n", "latin1");
const HEADER_BYTES = 9;
const TYPE_RESULT = 1;
const TYPE_ACK = 2;
const SEGMENT_NAME = /^journal-(\d{12})\.log$/;
const LEGACY_SUFFIX = ".result";

const segmentName = (seq: number): string => `journal-${String(seq).padStart(12, "0")}.log`;

const defaultSyncer: Syncer = {
  data: (fd, done) => fdatasync(fd, done),
  dir: (fd, done) => fsync(fd, done),
};

/** zlib.crc32 where the runtime has it (Node >= 20.15), else the same CRC-32 (IEEE) from a table. */
const nativeCrc32 = (zlib as unknown as { crc32?: (d: Uint8Array) => number }).crc32;
let crcTable: Uint32Array | undefined;

/** CRC-32 (IEEE, as zlib) computed from a table: for runtimes without zlib.crc32. */
export function tableCrc32(data: Uint8Array): number {
  crcTable ??= Uint32Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = crcTable[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

const crc32 = nativeCrc32 ?? tableCrc32;

export function encodeRecord(type: number, payload: Uint8Array): Buffer {
  const rec = Buffer.allocUnsafe(HEADER_BYTES + payload.length);
  rec.writeUInt32LE(payload.length, 0);
  rec[8] = type;
  rec.set(payload, HEADER_BYTES);
  rec.writeUInt32LE(crc32(rec.subarray(8)), 4);
  return rec;
}

/**
 * What a record's payload is on disk: as encoded (the default), or sealed (--encrypt-journal, agent/identity/
 * journal-cipher.ts; the record type is authenticated with it). `open` throws on a payload it cannot trust, which
 * the reader then treats as a corrupt record (kept aside, reported).
 */
export interface RecordSealer {
  seal(payload: Uint8Array, type: number): Uint8Array;
  open(payload: Uint8Array, type: number): Uint8Array;
}

const PLAIN: RecordSealer = { seal: (p) => p, open: (p) => p };

const resultRecord = (r: TaskResult, sealer: RecordSealer): Buffer => encodeRecord(TYPE_RESULT, sealer.seal(toBinary(TaskResultSchema, r), TYPE_RESULT));
const ackRecord = (ref: ResultRef, sealer: RecordSealer): Buffer =>
  encodeRecord(TYPE_ACK, sealer.seal(toBinary(ResultAckSchema, create(ResultAckSchema, { taskId: ref.taskId, attempt: ref.attempt })), TYPE_ACK));

/** Length of the valid record at `p`, or -1. */
function recordAt(buf: Buffer, p: number): number {
  if (buf.length - p < HEADER_BYTES) return -1;
  const type = buf[p + 8];
  if (type !== TYPE_RESULT && type !== TYPE_ACK) return -1;
  const n = buf.readUInt32LE(p);
  if (n > buf.length - p - HEADER_BYTES) return -1;
  return crc32(buf.subarray(p + 8, p + HEADER_BYTES + n)) === buf.readUInt32LE(p + 4) ? HEADER_BYTES + n : -1;
}

type Parsed = { type: "result"; result: TaskResult } | { type: "ack"; ref: ResultRef };

function parseRecord(buf: Buffer, p: number, len: number, sealer: RecordSealer): Parsed | undefined {
  try {
    const payload = sealer.open(buf.subarray(p + HEADER_BYTES, p + len), buf[p + 8]);
    if (buf[p + 8] === TYPE_RESULT) {
      const result = fromBinary(TaskResultSchema, payload);
      return result.taskId ? { type: "result", result } : undefined;
    }
    const ack = fromBinary(ResultAckSchema, payload);
    return ack.taskId ? { type: "ack", ref: { taskId: ack.taskId, attempt: ack.attempt } } : undefined;
  } catch {
    return undefined;
  }
}

interface SegmentScan {
  records: Parsed[];
  corrupt: { offset: number; bytes: number }[];
  torn: { offset: number; bytes: number } | undefined;
  /** Not a journal segment (its first bytes are not the header). */
  foreign: boolean;
}

/** Reads one segment's records; damage is reported, never thrown. */
function scanSegment(buf: Buffer, sealer: RecordSealer): SegmentScan {
  const out: SegmentScan = { records: [], corrupt: [], torn: undefined, foreign: false };
  if (buf.length < MAGIC.length) {
    // Created, then cut off before its header was written: a torn (empty) segment, unless it is something else.
    if (!MAGIC.subarray(0, buf.length).equals(buf)) out.foreign = true;
    else if (buf.length > 0) out.torn = { offset: 0, bytes: buf.length };
    return out;
  }
  if (!buf.subarray(0, MAGIC.length).equals(MAGIC)) {
    out.foreign = true;
    return out;
  }
  let p = MAGIC.length;
  while (p < buf.length) {
    const len = recordAt(buf, p);
    const parsed = len > 0 ? parseRecord(buf, p, len, sealer) : undefined;
    if (parsed) {
      out.records.push(parsed);
      p += len;
      continue;
    }
    let q = p + 1;
    while (q <= buf.length - HEADER_BYTES && !(recordAt(buf, q) > 0)) q++;
    if (q > buf.length - HEADER_BYTES) {
      out.torn = { offset: p, bytes: buf.length - p };
      break;
    }
    out.corrupt.push({ offset: p, bytes: q - p });
    p = q;
  }
  return out;
}

interface Loaded {
  contents: JournalContents;
  /** Live results with their encoded records, in journal order. */
  live: Map<string, { result: TaskResult; record: Buffer }>;
  segmentFiles: { seq: number; name: string; bytes: number }[];
  legacyFiles: string[];
  /** Corrupt byte ranges to keep aside (open only). */
  corruptBytes: { name: string; offset: number; data: Buffer }[];
  foreignFiles: string[];
}

function loadDir(dir: string, sealer: RecordSealer): Loaded {
  const names = readdirSync(dir);
  const live = new Map<string, { result: TaskResult; record: Buffer }>();
  const contents: JournalContents = { results: [], tornTails: [], corrupt: [], legacyFiles: 0, unreadableFiles: [] };
  const loaded: Loaded = { contents, live, segmentFiles: [], legacyFiles: [], corruptBytes: [], foreignFiles: [] };
  // The old format first: those results are older than any segment.
  for (const n of names.filter((x) => x.endsWith(LEGACY_SUFFIX)).sort()) {
    const bytes = readIfThere(join(dir, n));
    if (!bytes) continue;
    try {
      const m = fromBinary(ConnectRequestSchema, bytes);
      if (m.msg.case !== "result" || !m.msg.value.taskId) throw new Error("not a result");
      const r = m.msg.value;
      live.set(resultKey(r.taskId, r.attempt), { result: r, record: resultRecord(r, sealer) });
      loaded.legacyFiles.push(n);
    } catch {
      contents.unreadableFiles.push(n);
    }
  }
  contents.legacyFiles = loaded.legacyFiles.length;
  const segments = names
    .flatMap((n) => {
      const m = SEGMENT_NAME.exec(n);
      return m ? [{ seq: Number(m[1]), name: n }] : [];
    })
    .sort((a, b) => a.seq - b.seq);
  for (const s of segments) {
    // A file may be deleted under a reader that is not the journal's owner (readJournal beside a running agent).
    const buf = readIfThere(join(dir, s.name));
    if (!buf) continue;
    const scan = scanSegment(buf, sealer);
    if (scan.foreign) {
      contents.unreadableFiles.push(s.name);
      loaded.foreignFiles.push(s.name);
      continue;
    }
    loaded.segmentFiles.push({ ...s, bytes: buf.length });
    for (const rec of scan.records) {
      if (rec.type === "result") {
        const k = resultKey(rec.result.taskId, rec.result.attempt);
        // A second copy (written by compaction) keeps the first one's place in the order.
        if (!live.has(k)) live.set(k, { result: rec.result, record: resultRecord(rec.result, sealer) });
      } else live.delete(resultKey(rec.ref.taskId, rec.ref.attempt));
    }
    for (const c of scan.corrupt) {
      contents.corrupt.push({ file: s.name, ...c });
      loaded.corruptBytes.push({ name: s.name, offset: c.offset, data: buf.subarray(c.offset, c.offset + c.bytes) });
    }
    if (scan.torn) contents.tornTails.push({ file: s.name, ...scan.torn });
  }
  contents.results = [...live.values()].map((v) => v.result);
  return loaded;
}

function readIfThere(path: string): Buffer | undefined {
  try {
    return readFileSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

/** Reads a journal directory without changing anything (for inspection and tests; the agent uses open). */
export function readJournal(dir: string, opts: { sealer?: RecordSealer } = {}): JournalContents {
  return loadDir(dir, opts.sealer ?? PLAIN).contents;
}

interface Segment {
  readonly seq: number;
  readonly path: string;
  /** Open for appends while current, and until the flush after its last append has finished. */
  fd: number | undefined;
  bytes: number;
  /** Unacknowledged results whose newest copy is in this segment. */
  live: number;
  liveBytes: number;
  /** Written since its last flush started. */
  dirty: boolean;
  /** Part of the flush in flight. */
  syncing: boolean;
  sealed: boolean;
  /** Its live results were copied forward; deleted once the copies are flushed. */
  retiring: boolean;
  deleted: boolean;
}

interface Entry {
  segment: Segment;
  offset: number;
  length: number;
}

interface Retirement {
  segments: Segment[];
  /** Old-format files read at open, deleted with the segments. */
  files: string[];
  /** Deleted once everything up to this write is flushed (the copies). */
  untilLsn: number;
}

/** `open` → appending (append, ack; flushes in the background) → `close` → closed. */
export type JournalState = "open" | "closing" | "closed";

export class ResultJournal {
  private readonly segmentBytes: number;
  private readonly compactLiveShare: number;
  private readonly sealer: RecordSealer;
  private readonly syncer: Syncer;
  private readonly defer: (fn: () => void) => void;
  private readonly syncDelayMs: number;
  private readonly later: (fn: () => void, ms: number) => () => void;
  /** Cancels the delayed flush that is armed, if one is. */
  private cancelDelayed: (() => void) | undefined;
  private readonly dirFd: number;
  private segments: Segment[] = [];
  private active!: Segment;
  private readonly entries = new Map<string, Entry>();
  /** Writes so far (each write() of records counts one) and how many of them are flushed. */
  private appendedLsn = 0;
  private durableLsn = 0;
  private awaiting: { lsn: number; ref: ResultRef }[] = [];
  private awaitingHead = 0;
  private retirements: Retirement[] = [];
  private dirDirty = true;
  private syncScheduled = false;
  private syncing = false;
  private flushWaiters: { lsn: number; resolve(): void; reject(err: Error): void }[] = [];
  private pendingAcks: Buffer[] = [];
  private tidyScheduled = false;
  /** Set by a failed flush: from then on this process deletes nothing (the next start reads everything again). */
  private syncFailure: Error | undefined;
  private readonly durableListeners = new Set<(refs: ResultRef[]) => void>();
  private readonly errorListeners = new Set<(err: Error, notDurable: ResultRef[]) => void>();
  private stateValue: JournalState = "open";
  /** Flushes skipped because every result they were for had been acknowledged first. */
  private skippedSyncs = 0;
  private closing: Promise<void> | undefined;

  private constructor(
    readonly dir: string,
    opts: JournalOptions,
  ) {
    this.segmentBytes = opts.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    this.compactLiveShare = opts.compactLiveShare ?? DEFAULT_COMPACT_LIVE_SHARE;
    this.syncer = opts.syncer ?? defaultSyncer;
    this.defer = opts.defer ?? ((fn) => setImmediate(fn));
    this.syncDelayMs = opts.syncDelayMs ?? DEFAULT_SYNC_DELAY_MS;
    this.later =
      opts.later ??
      ((fn, ms) => {
        const t = setTimeout(fn, ms);
        t.unref();
        return () => clearTimeout(t);
      });
    if (!(this.syncDelayMs >= 0)) throw new Error(`journal: syncDelayMs must be at least 0, got ${this.syncDelayMs}`);
    this.sealer = opts.sealer ?? PLAIN;
    if (!(this.segmentBytes > 0)) throw new Error(`journal: segmentBytes must be positive, got ${this.segmentBytes}`);
    if (!(this.compactLiveShare >= 0 && this.compactLiveShare < 1))
      throw new Error(`journal: compactLiveShare must be in [0, 1), got ${this.compactLiveShare}`);
    this.dirFd = openSync(dir, "r");
  }

  /**
   * Opens (creating) the journal in `dir`: reads what is there (see the top), rewrites the live results into a
   * fresh segment and returns them, in the order they were journaled, with any damage found.
   */
  static open(dir: string, opts: JournalOptions = {}): { journal: ResultJournal; recovered: JournalContents } {
    mkdirSync(dir, { recursive: true });
    const loaded = loadDir(dir, opts.sealer ?? PLAIN);
    const j = new ResultJournal(dir, opts);
    const { contents } = loaded;
    // Damaged bytes are kept aside (flushed) before the segment holding them can be deleted.
    for (const c of loaded.corruptBytes) {
      const keptAs = `${c.name}.${c.offset}.corrupt`;
      writeDurably(join(dir, keptAs), c.data);
      const d = contents.corrupt.find((x) => x.file === c.name && x.offset === c.offset);
      if (d) d.keptAs = keptAs;
    }
    for (const n of loaded.foreignFiles) renameSync(join(dir, n), join(dir, `${n}.unreadable`));
    for (const n of contents.unreadableFiles.filter((x) => x.endsWith(LEGACY_SUFFIX))) renameSync(join(dir, n), join(dir, `${n}.unreadable`));
    const old: Segment[] = loaded.segmentFiles.map((s) => ({
      seq: s.seq,
      path: join(dir, s.name),
      fd: undefined,
      bytes: s.bytes,
      live: 0,
      liveBytes: 0,
      dirty: false,
      syncing: false,
      sealed: true,
      retiring: true,
      deleted: false,
    }));
    j.segments = [...old];
    j.active = j.createSegment((old.at(-1)?.seq ?? 0) + 1);
    for (const [k, v] of loaded.live) {
      const e = j.write(v.record);
      j.addLive(k, e, v.record.length);
      j.awaiting.push({ lsn: e.lsn, ref: { taskId: v.result.taskId, attempt: v.result.attempt } });
    }
    if (old.length > 0 || loaded.legacyFiles.length > 0) j.retirements.push({ segments: old, files: loaded.legacyFiles, untilLsn: j.appendedLsn });
    j.scheduleSync();
    return { journal: j, recovered: contents };
  }

  get state(): JournalState {
    return this.stateValue;
  }

  /** Unacknowledged results held. */
  get size(): number {
    return this.entries.size;
  }

  has(taskId: string, attempt: number): boolean {
    return this.entries.has(resultKey(taskId, attempt));
  }

  /** Segment files on disk and their sizes, oldest first (for tests and diagnostics). */
  stats(): { segments: number; bytes: number; liveBytes: number; liveResults: number; skippedSyncs: number } {
    const segs = this.segments.filter((s) => !s.deleted);
    return {
      skippedSyncs: this.skippedSyncs,
      segments: segs.length,
      bytes: segs.reduce((n, s) => n + s.bytes, 0),
      liveBytes: segs.reduce((n, s) => n + s.liveBytes, 0),
      liveResults: this.entries.size,
    };
  }

  /**
   * Journals a result: one synchronous write (it survives a kill of this process from here on), flushed to disk
   * in the background. Throws when the write fails (disk full): the result is then not journaled.
   */
  append(r: TaskResult): void {
    this.appendAll([r]);
  }

  /** Journals several results with one write() (the results of one turn). */
  appendAll(rs: readonly TaskResult[]): void {
    this.assertOpen();
    if (rs.length === 0) return;
    const recs = rs.map((r) => resultRecord(r, this.sealer));
    const e = this.write(recs.length === 1 ? recs[0] : Buffer.concat(recs));
    let offset = e.offset;
    rs.forEach((r, i) => {
      const k = resultKey(r.taskId, r.attempt);
      const prev = this.entries.get(k);
      if (prev) this.dropLive(prev);
      this.addLive(k, { segment: e.segment, offset }, recs[i].length);
      offset += recs[i].length;
      this.awaiting.push({ lsn: e.lsn, ref: { taskId: r.taskId, attempt: r.attempt } });
    });
    this.scheduleDelayedSync();
  }

  /**
   * The coordinator has stored this result: forget it. The ack record is written at the end of the turn with the
   * others and flushed with the next results; losing it only means the result is sent again (and ignored).
   * Returns false for a result the journal does not hold.
   */
  ack(taskId: string, attempt: number): boolean {
    if (this.stateValue !== "open") return false;
    const k = resultKey(taskId, attempt);
    const e = this.entries.get(k);
    if (!e) return false;
    this.entries.delete(k);
    this.dropLive(e);
    this.pendingAcks.push(ackRecord({ taskId, attempt }, this.sealer));
    if (!this.tidyScheduled) {
      this.tidyScheduled = true;
      this.defer(() => {
        this.tidyScheduled = false;
        if (this.stateValue === "open") this.tidy();
      });
    }
    return true;
  }

  /** Calls `fn` with the results each finished flush made durable (in journal order). Returns an unsubscribe. */
  onDurable(fn: (refs: ResultRef[]) => void): () => void {
    this.durableListeners.add(fn);
    return () => this.durableListeners.delete(fn);
  }

  /**
   * Calls `fn` when the disk fails the journal in the background: a flush (with the results it should have made
   * durable; they are still delivered) or a compaction's copy (with none: every result stays where it was).
   */
  onDiskError(fn: (err: Error, notDurable: ResultRef[]) => void): () => void {
    this.errorListeners.add(fn);
    return () => this.errorListeners.delete(fn);
  }

  /** Resolves once everything journaled so far is flushed; rejects when that flush fails. */
  flush(): Promise<void> {
    const lsn = this.appendedLsn;
    if (this.durableLsn >= lsn) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.flushWaiters.push({ lsn, resolve, reject });
      this.scheduleSync();
    });
  }

  /** Writes pending acks, flushes everything, finishes deletions and closes the files. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.stateValue !== "open") return;
      this.stateValue = "closing";
      this.tidy();
      try {
        await this.flush();
      } catch {
        // reported through onDiskError; the files stay for the next start
      }
      for (const s of this.segments) this.closeFd(s);
      closeSync(this.dirFd);
      this.stateValue = "closed";
    })();
    return this.closing;
  }

  private assertOpen(): void {
    if (this.stateValue !== "open") throw new Error(`journal is ${this.stateValue}`);
  }

  private createSegment(seq: number): Segment {
    const path = join(this.dir, segmentName(seq));
    const fd = openSync(path, "wx");
    const s: Segment = { seq, path, fd, bytes: 0, live: 0, liveBytes: 0, dirty: true, syncing: false, sealed: false, retiring: false, deleted: false };
    this.segments.push(s);
    this.dirDirty = true;
    writeAll(fd, MAGIC);
    s.bytes = MAGIC.length;
    this.appendedLsn += 1;
    return s;
  }

  /** Appends bytes to the current segment (starting a new one when it is full); returns where they went. */
  private write(buf: Buffer): { segment: Segment; offset: number; lsn: number } {
    const s = this.active;
    const offset = s.bytes;
    try {
      writeAll(s.fd!, buf);
    } catch (err) {
      // A half-written record would read back as a corrupt one: cut it off (best effort) before reporting.
      try {
        ftruncateSync(s.fd!, offset);
      } catch {
        // nothing more to do; recovery skips it
      }
      throw err;
    }
    s.bytes += buf.length;
    s.dirty = true;
    this.appendedLsn += 1;
    const at = { segment: s, offset, lsn: this.appendedLsn };
    if (s.bytes >= this.segmentBytes) this.rotate();
    return at;
  }

  private rotate(): void {
    const old = this.active;
    old.sealed = true;
    this.active = this.createSegment(old.seq + 1);
    this.closeFdIfDone(old);
    this.scheduleDelayedSync();
  }

  private addLive(k: string, at: { segment: Segment; offset: number }, length: number): void {
    this.entries.set(k, { segment: at.segment, offset: at.offset, length });
    at.segment.live += 1;
    at.segment.liveBytes += length;
  }

  private dropLive(e: Entry): void {
    e.segment.live -= 1;
    e.segment.liveBytes -= e.length;
  }

  /** End of a turn with acks: writes their records, deletes dead segments, compacts when worthwhile. */
  private tidy(): void {
    if (this.pendingAcks.length > 0) {
      const acks = Buffer.concat(this.pendingAcks);
      this.pendingAcks = [];
      try {
        this.write(acks);
      } catch {
        // Lost ack records only mean results sent again after a restart, and ignored.
      }
    }
    this.deleteDeadPrefix();
    this.maybeCompact();
  }

  private deleteDeadPrefix(): void {
    while (this.segments.length > 1) {
      const s = this.segments[0];
      if (s === this.active || s.live > 0 || s.retiring) break;
      this.segments.shift();
      this.deleteSegment(s);
    }
  }

  private maybeCompact(): void {
    if (this.syncFailure) return;
    const sealed = this.segments.filter((s) => s !== this.active && !s.retiring && !s.deleted);
    if (sealed.length < 2) return;
    let bytes = 0;
    let live = 0;
    for (const s of sealed) {
      bytes += s.bytes;
      live += s.liveBytes;
    }
    if (live > bytes * this.compactLiveShare) return;
    const set = new Set(sealed);
    const moving = [...this.entries].filter(([, e]) => set.has(e.segment)).sort(([, a], [, b]) => a.segment.seq - b.segment.seq || a.offset - b.offset);
    // Only the live records are read back (at most compactLiveShare of the files), from the page cache as a rule.
    const readers = new Map<Segment, number>();
    try {
      for (const [k, e] of moving) {
        let fd = readers.get(e.segment);
        if (fd === undefined) readers.set(e.segment, (fd = openSync(e.segment.path, "r")));
        const rec = Buffer.allocUnsafe(e.length);
        let got = 0;
        while (got < e.length) {
          const n = readSync(fd, rec, got, e.length - got, e.offset + got);
          if (n === 0) throw new Error(`journal: ${e.segment.path} ends before the record at ${e.offset}`);
          got += n;
        }
        const copy = this.write(rec);
        this.dropLive(e);
        this.addLive(k, copy, e.length);
      }
    } catch (err) {
      // Whatever was copied is live in its new place; the rest stays where it was. Nothing is retired this time.
      for (const fd of readers.values()) closeSync(fd);
      for (const fn of this.errorListeners) fn(err as Error, []);
      return;
    }
    for (const fd of readers.values()) closeSync(fd);
    for (const s of sealed) s.retiring = true;
    this.retirements.push({ segments: sealed, files: [], untilLsn: this.appendedLsn });
    this.scheduleSync();
  }

  private deleteSegment(s: Segment): void {
    s.deleted = true;
    this.closeFdIfDone(s);
    // After a failed flush nothing is deleted: what was written may not be on disk, the old copies may be.
    if (this.syncFailure) return;
    this.removeFile(s.path);
  }

  /**
   * Deletes a file the journal no longer needs. Synchronous: a metadata update, once per segment (thousands of
   * results), not a flush. The deletion is not flushed either: a lost one at worst sends results again.
   */
  private removeFile(path: string): void {
    try {
      unlinkSync(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
      for (const fn of this.errorListeners) fn(err as Error, []);
    }
  }

  private closeFdIfDone(s: Segment): void {
    // A sealed segment keeps its fd until the flush covering its last write is done; a deleted one needs no flush.
    if (s.syncing) return;
    if (s.deleted || (s.sealed && !s.dirty)) this.closeFd(s);
  }

  private closeFd(s: Segment): void {
    if (s.fd === undefined) return;
    closeSync(s.fd);
    s.fd = undefined;
  }

  /** A flush at the end of this turn (or after the one in flight). */
  private scheduleSync(): void {
    if (this.syncScheduled || this.syncing) return;
    this.cancelDelayed?.();
    this.cancelDelayed = undefined;
    this.syncScheduled = true;
    this.defer(() => {
      this.syncScheduled = false;
      this.runSync();
    });
  }

  /** A flush within syncDelayMs (or after the one in flight), unless one is already due sooner. */
  private scheduleDelayedSync(): void {
    if (this.syncDelayMs === 0) return this.scheduleSync();
    if (this.syncScheduled || this.syncing || this.cancelDelayed) return;
    this.cancelDelayed = this.later(() => {
      this.cancelDelayed = undefined;
      this.runSync();
    }, this.syncDelayMs);
  }

  /**
   * True when something written needs to reach the disk now: a caller waits (flush, close), a compaction or
   * recovery waits to delete the old copies, or a result is not acknowledged yet. Results the coordinator has
   * acknowledged are stored there; their records (and ack records) go to disk with the next flush that is needed.
   */
  private flushNeeded(): boolean {
    if (this.flushWaiters.length > 0 || this.retirements.length > 0) return true;
    for (let i = this.awaitingHead; i < this.awaiting.length; i++) {
      const r = this.awaiting[i].ref;
      if (this.entries.has(resultKey(r.taskId, r.attempt))) return true;
    }
    return false;
  }

  /** Starts one flush of everything written so far; when it ends, the next one starts if more was written. */
  private runSync(): void {
    if (this.syncing || this.stateValue === "closed") return;
    this.cancelDelayed?.();
    this.cancelDelayed = undefined;
    if (!this.flushNeeded()) {
      // Every result waiting was acknowledged first (or none waits): nothing to flush for them, nor to tell
      // onDurable listeners. What was written goes to disk with the next flush that is needed.
      if (this.awaitingHead < this.awaiting.length) this.skippedSyncs += 1;
      this.awaiting = [];
      this.awaitingHead = 0;
      return;
    }
    const segs = this.segments.filter((s) => s.dirty && !s.deleted && s.fd !== undefined);
    const dir = this.dirDirty;
    const target = this.appendedLsn;
    if (segs.length === 0 && !dir) {
      this.synced(target, undefined, []);
      return;
    }
    this.syncing = true;
    this.dirDirty = false;
    for (const s of segs) {
      s.dirty = false;
      s.syncing = true;
    }
    let left = segs.length + (dir ? 1 : 0);
    let failure: Error | null = null;
    const done = (err: Error | null) => {
      if (err && !failure) failure = err;
      if (--left > 0) return;
      this.syncing = false;
      if (failure && dir) this.dirDirty = true;
      this.synced(target, failure ?? undefined, segs);
    };
    for (const s of segs) this.syncer.data(s.fd!, done);
    if (dir) this.syncer.dir(this.dirFd, done);
  }

  private synced(target: number, failure: Error | undefined, segs: Segment[]): void {
    for (const s of segs) {
      s.syncing = false;
      if (failure) s.dirty = true;
      this.closeFdIfDone(s);
    }
    const covered: ResultRef[] = [];
    while (this.awaitingHead < this.awaiting.length && this.awaiting[this.awaitingHead].lsn <= target) covered.push(this.awaiting[this.awaitingHead++].ref);
    if (this.awaitingHead === this.awaiting.length) {
      this.awaiting = [];
      this.awaitingHead = 0;
    }
    if (failure) {
      this.syncFailure ??= failure;
      const waiters = this.flushWaiters.filter((w) => w.lsn <= target);
      this.flushWaiters = this.flushWaiters.filter((w) => w.lsn > target);
      for (const w of waiters) w.reject(failure);
      for (const fn of this.errorListeners) fn(failure, covered);
    } else {
      this.durableLsn = Math.max(this.durableLsn, target);
      const due = this.retirements.filter((r) => r.untilLsn <= this.durableLsn);
      if (due.length > 0) {
        this.retirements = this.retirements.filter((r) => r.untilLsn > this.durableLsn);
        for (const r of due) {
          const gone = new Set(r.segments);
          this.segments = this.segments.filter((s) => !gone.has(s));
          for (const s of r.segments) this.deleteSegment(s);
          for (const f of r.files) if (!this.syncFailure) this.removeFile(join(this.dir, f));
        }
        this.deleteDeadPrefix();
      }
      const waiters = this.flushWaiters.filter((w) => w.lsn <= this.durableLsn);
      this.flushWaiters = this.flushWaiters.filter((w) => w.lsn > this.durableLsn);
      for (const w of waiters) w.resolve();
      if (covered.length > 0) for (const fn of this.durableListeners) fn(covered);
    }
    if (this.stateValue === "closed") return;
    // After a failure only new writes start the next flush, so a failing disk is not retried in a loop.
    if (this.flushWaiters.length > 0) this.scheduleSync();
    else if (this.appendedLsn > target || (!failure && this.dirDirty)) this.scheduleDelayedSync();
  }
}

function writeAll(fd: number, buf: Uint8Array): void {
  let off = 0;
  while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
}

/** Writes a whole file and flushes it (rare paths only: keeping damaged bytes aside). */
function writeDurably(path: string, data: Uint8Array): void {
  writeFileSync(path, data);
  const fd = openSync(path, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
