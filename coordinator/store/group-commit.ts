// Group commit: at most one commit in flight; everything queued while it runs goes into the next one, which starts
// at the end of the turn in which the previous one finished (no timer when idle: light load costs one fsync).
// Lazy writes ask for no commit of their own: they ride with the next one, or go after `lazyMs` at the latest.
// Never drops a queued write: a failed commit puts its batch back, rejects the flushes waiting on it, and is
// retried with backoff.
import { backoffDelay } from "../../lib/backoff.js";

export interface CommitOutcome {
  rows: number;
  bytes: number;
  /** Time in the transaction, fsync included. */
  ms: number;
}

export interface GroupCommitOptions<B extends { lastSeq: number }> {
  /** The next batch of queued writes (up to the budget), or undefined when nothing is queued. */
  take(): B | undefined;
  /** Puts a batch whose commit failed back at the front of the queue. */
  putBack(b: B): void;
  /** Commits a batch: resolves once it is committed and fsynced. */
  run(b: B): Promise<CommitOutcome>;
  /** Told about each committed batch, before the flushes waiting on it resolve. */
  committed(b: B, o: CommitOutcome): void;
  /** Number of the last write queued: flush() waits for it. */
  lastSeq(): number;
  /** False while nothing can commit (the commit worker is down or starting). */
  ready(): boolean;
  /** True while the committer is down (not merely starting): flushes then fail at once. */
  down(): boolean;
  /** Waits until something can commit, starting the committer now if it is down (for close). */
  whenReady(): Promise<void>;
  /** The error a flush gets when its commit failed (`cause`), or at once while down (no cause). */
  writeError(cause: unknown): Error;
  /** Told about each failed commit and when it is retried. */
  onError?(err: Error, failures: number, retryInMs: number): void;
  /** True while writes are queued or in flight; false once all are committed. */
  onBusy?(busy: boolean): void;
  /** Longest a lazy write waits for a commit, in ms. */
  lazyMs: number;
  /** Retry delay ceiling after the first failed commit, in ms. */
  retryBaseMs: number;
  /** Longest retry delay, in ms. */
  retryMaxMs: number;
}

export interface GroupCommitStats {
  /** Transactions committed. */
  commits: number;
  /** Commit attempts that failed (their writes stayed queued). */
  failedCommits: number;
  /** Rows changed by committed transactions. */
  rowsWritten: number;
  /** Bytes of the values that committed transactions wrote. */
  bytesWritten: number;
  /** Duration of the last committed transaction, fsync included, in ms. */
  lastCommitMs: number;
  /** Mean duration of the committed transactions, in ms. */
  meanCommitMs: number;
  /** Whether a commit is running now. */
  commitInFlight: boolean;
}

interface Waiter {
  target: number;
  resolve(): void;
  reject(e: unknown): void;
}

export class GroupCommit<B extends { lastSeq: number }> {
  private inFlight: B | undefined;
  /** Settles once the commit in flight is over, whatever its outcome. */
  private flight: Promise<void> | undefined;
  /** Every write up to this number is durable. */
  private committedSeq = 0;
  /** A non-lazy write or a flush asked for a commit of every write up to this number. */
  private urgentSeq = 0;
  private lazyDue = false;
  private waiters: Waiter[] = [];
  private immediate: NodeJS.Immediate | undefined;
  private lazyTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private failures = 0;
  private closing = false;
  private busy = false;
  private readonly counters = { commits: 0, failedCommits: 0, rowsWritten: 0, bytesWritten: 0, lastCommitMs: 0, totalCommitMs: 0 };

  constructor(private readonly opts: GroupCommitOptions<B>) {}

  /** A write was queued. Non-lazy: commit at the end of this turn (or with the retry, while backing off). */
  queued(lazy: boolean): void {
    if (lazy) {
      this.armLazy();
    } else {
      this.urgentSeq = this.opts.lastSeq();
      if (this.retryTimer === undefined) this.schedule();
    }
    this.updateBusy();
  }

  /** Resolves once every write queued before the call is committed; rejects if that commit fails. */
  flush(): Promise<void> {
    const target = this.opts.lastSeq();
    if (target <= this.committedSeq) return Promise.resolve();
    if (this.opts.down()) return Promise.reject(this.opts.writeError(undefined));
    this.urgentSeq = Math.max(this.urgentSeq, target);
    return new Promise<void>((resolve, reject) => {
      this.waiters.push({ target, resolve, reject });
      // A caller is waiting: try now even while backing off, so it learns the outcome within a turn.
      if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
      this.schedule();
    });
  }

  /** The committer is ready again (the worker was restarted): commit what waited for it. */
  resume(): void {
    if (this.opts.lastSeq() > this.committedSeq) this.schedule();
  }

  /**
   * Stops the timers and commits everything queued, batch after batch, waiting for the committer if it is down.
   * Throws the write error of the first commit that fails (its writes stay queued); no retry.
   */
  async drain(): Promise<void> {
    this.closing = true;
    this.clearTimers();
    for (;;) {
      if (this.flight) await this.flight;
      if (this.opts.lastSeq() <= this.committedSeq) return;
      if (!this.opts.ready()) {
        try {
          await this.opts.whenReady();
        } catch (e) {
          const err = this.opts.writeError(e);
          this.rejectAll(err);
          throw err;
        }
      }
      const r = await this.commitNext();
      if (r instanceof Error) throw r;
      if (r === "idle" && this.flight === undefined) return; // nothing left to take
    }
  }

  stats(): GroupCommitStats {
    const c = this.counters;
    return {
      commits: c.commits,
      failedCommits: c.failedCommits,
      rowsWritten: c.rowsWritten,
      bytesWritten: c.bytesWritten,
      lastCommitMs: c.lastCommitMs,
      meanCommitMs: c.commits === 0 ? 0 : c.totalCommitMs / c.commits,
      commitInFlight: this.inFlight !== undefined,
    };
  }

  private schedule(): void {
    if (this.closing) return;
    this.immediate ??= setImmediate(() => {
      this.immediate = undefined;
      void this.commitNext();
    });
  }

  private armLazy(): void {
    if (this.lazyTimer !== undefined || this.closing) return;
    this.lazyTimer = setTimeout(() => {
      this.lazyTimer = undefined;
      this.lazyDue = true;
      void this.commitNext();
    }, this.opts.lazyMs);
  }

  /**
   * One commit attempt of the next batch, unless one is in flight or nothing can commit. Resolves to its error,
   * "idle" when nothing was queued, undefined otherwise.
   */
  private async commitNext(): Promise<Error | "idle" | undefined> {
    if (this.inFlight !== undefined || !this.opts.ready()) return undefined;
    const b = this.opts.take();
    if (b === undefined) {
      this.settle();
      return "idle";
    }
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    if (this.lazyTimer !== undefined) clearTimeout(this.lazyTimer);
    this.retryTimer = undefined;
    this.lazyTimer = undefined;
    this.lazyDue = false;
    this.inFlight = b;
    let done!: () => void;
    this.flight = new Promise<void>((r) => (done = r));
    this.updateBusy();
    try {
      const o = await this.opts.run(b);
      this.succeeded(b, o);
      return undefined;
    } catch (e) {
      return this.failed(b, e);
    } finally {
      this.flight = undefined;
      done();
    }
  }

  private succeeded(b: B, o: CommitOutcome): void {
    this.inFlight = undefined;
    this.failures = 0;
    const c = this.counters;
    c.commits += 1;
    c.rowsWritten += o.rows;
    c.bytesWritten += o.bytes;
    c.lastCommitMs = o.ms;
    c.totalCommitMs += o.ms;
    this.committedSeq = b.lastSeq;
    this.opts.committed(b, o);
    this.settle();
    if (this.urgentSeq > this.committedSeq || this.lazyDue) this.schedule();
    else if (this.opts.lastSeq() > this.committedSeq) this.armLazy(); // only lazy writes are left
    this.updateBusy();
  }

  private failed(b: B, e: unknown): Error {
    this.inFlight = undefined;
    this.opts.putBack(b);
    this.failures += 1;
    this.counters.failedCommits += 1;
    const err = this.opts.writeError(e);
    if (!this.closing) {
      const delay = backoffDelay(this.failures, { baseMs: this.opts.retryBaseMs, maxMs: this.opts.retryMaxMs });
      this.retryTimer = setTimeout(() => {
        this.retryTimer = undefined;
        void this.commitNext();
      }, delay);
      this.opts.onError?.(err, this.failures, delay);
    }
    this.rejectAll(err);
    this.updateBusy();
    return err;
  }

  private settle(): void {
    if (this.waiters.length === 0) return;
    const still: Waiter[] = [];
    for (const w of this.waiters) {
      if (w.target <= this.committedSeq) w.resolve();
      else still.push(w);
    }
    this.waiters = still;
  }

  private rejectAll(err: Error): void {
    for (const w of this.waiters.splice(0)) w.reject(err);
  }

  private clearTimers(): void {
    if (this.immediate !== undefined) clearImmediate(this.immediate);
    if (this.lazyTimer !== undefined) clearTimeout(this.lazyTimer);
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    this.immediate = undefined;
    this.lazyTimer = undefined;
    this.retryTimer = undefined;
  }

  private updateBusy(): void {
    const busy = this.inFlight !== undefined || this.opts.lastSeq() > this.committedSeq;
    if (busy === this.busy) return;
    this.busy = busy;
    this.opts.onBusy?.(busy);
  }
}
