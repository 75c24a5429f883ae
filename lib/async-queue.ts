// A writable async iterable: producers push, one consumer iterates; close() ends the iteration.
// Used as per-session outboxes and for streaming watch events. Never drops items silently: push after close throws.

export class AsyncQueue<T> implements AsyncIterable<T> {
  private readonly items: T[] = [];
  private waiter: ((r: IteratorResult<T>) => void) | undefined;
  private closed = false;
  private failure: unknown;

  get size(): number {
    return this.items.length;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  push(item: T): void {
    if (this.closed) throw new Error("push on a closed queue");
    const w = this.waiter;
    if (w) {
      this.waiter = undefined;
      w({ value: item, done: false });
    } else this.items.push(item);
  }

  /** Ends iteration after the buffered items; with an error, the consumer's next() rejects with it. */
  close(error?: unknown): void {
    if (this.closed) return;
    this.closed = true;
    this.failure = error;
    const w = this.waiter;
    if (w && this.items.length === 0) {
      this.waiter = undefined;
      if (error === undefined) w({ value: undefined, done: true });
      else w(Promise.reject(error) as never);
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: (): Promise<IteratorResult<T>> => {
        if (this.items.length > 0) return Promise.resolve({ value: this.items.shift()!, done: false });
        if (this.closed) return this.failure === undefined ? Promise.resolve({ value: undefined, done: true }) : Promise.reject(this.failure);
        return new Promise((resolve) => (this.waiter = resolve));
      },
      // connect-node calls return/throw on a request iterable when the call ends: both just stop the queue.
      return: (): Promise<IteratorResult<T>> => {
        this.closed = true;
        this.items.length = 0;
        return Promise.resolve({ value: undefined, done: true });
      },
      throw: (err?: unknown): Promise<IteratorResult<T>> => {
        this.closed = true;
        this.items.length = 0;
        return err === undefined ? Promise.resolve({ value: undefined, done: true }) : Promise.reject(err);
      },
    };
  }
}
