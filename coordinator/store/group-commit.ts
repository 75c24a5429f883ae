// Group commit: every write queued during one event-loop turn is committed in one transaction on setImmediate,
// and flush() waits for it. Never drops a queued write: a failed commit leaves the queue intact, rejects the
// flushes waiting on it, and is retried with backoff.
import { performance } from "node:perf_hooks";
import { backoffDelay } from "../../lib/backoff.js";

export interface GroupCommitOptions {
  /** Commits everything queued in one transaction and clears the queue; returns the rows written. On failure it throws and leaves the queue as it was. */
  commit: () => number;
  /** True while writes are queued. */
  pending: () => boolean;
  /** Told about each failed commit and when it is retried. */
  onError?: (err: unknown, failures: number, retryInMs: number) => void;
  /** Retry delay ceiling after the first failed commit, in ms. Default 50. */
  retryBaseMs?: number;
  /** Longest retry delay, in ms. Default 5000. */
  retryMaxMs?: number;
}

export interface GroupCommitStats {
  /** Transactions committed. */
  commits: number;
  /** Commit attempts that failed (their writes stayed queued). */
  failedCommits: number;
  /** Rows written by committed transactions. */
  rowsWritten: number;
  /** Duration of the last committed transaction, fsync included, in ms. */
  lastCommitMs: number;
}

interface Waiter {
  resolve(): void;
  reject(e: unknown): void;
}

export class GroupCommit {
  private immediate: NodeJS.Immediate | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private waiters: Waiter[] = [];
  private failures = 0;
  private readonly counters: GroupCommitStats = { commits: 0, failedCommits: 0, rowsWritten: 0, lastCommitMs: 0 };

  constructor(private readonly opts: GroupCommitOptions) {}

  /** A write was queued: commit at the end of this turn, unless a failed commit is waiting for its retry. */
  queued(): void {
    if (this.retryTimer === undefined) this.schedule();
  }

  /** Resolves once every write queued before the call is committed; rejects if that commit fails. */
  flush(): Promise<void> {
    if (!this.opts.pending()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      // A caller is waiting: try now even while backing off, so it learns the outcome within a turn.
      this.schedule();
    });
  }

  /** Commits synchronously (for close). Throws what the commit threw; the writes then stay queued. */
  commitNow(): void {
    this.stop();
    const err = this.run();
    if (err !== undefined) {
      this.stop();
      throw err;
    }
  }

  /** Cancels the scheduled commit and any retry; queued writes stay queued. */
  stop(): void {
    if (this.immediate !== undefined) clearImmediate(this.immediate);
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    this.immediate = undefined;
    this.retryTimer = undefined;
  }

  stats(): GroupCommitStats {
    return { ...this.counters };
  }

  private schedule(): void {
    this.immediate ??= setImmediate(() => {
      this.immediate = undefined;
      this.run();
    });
  }

  /** One commit attempt; returns the error if it failed. */
  private run(): unknown {
    const waiters = this.waiters;
    this.waiters = [];
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    if (!this.opts.pending()) {
      for (const w of waiters) w.resolve();
      return undefined;
    }
    const started = performance.now();
    try {
      const rows = this.opts.commit();
      this.counters.commits += 1;
      this.counters.rowsWritten += rows;
      this.counters.lastCommitMs = performance.now() - started;
      this.failures = 0;
    } catch (e) {
      this.counters.failedCommits += 1;
      this.failures += 1;
      const delay = backoffDelay(this.failures, { baseMs: this.opts.retryBaseMs ?? 50, maxMs: this.opts.retryMaxMs ?? 5000 });
      this.retryTimer = setTimeout(() => this.run(), delay);
      this.opts.onError?.(e, this.failures, delay);
      for (const w of waiters) w.reject(e);
      return e ?? new Error("commit failed");
    }
    for (const w of waiters) w.resolve();
    return undefined;
  }
}
