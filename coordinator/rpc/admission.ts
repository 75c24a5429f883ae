// Admission control for unary calls: one client connection may have at most so many calls in flight; past that a
// call is answered at once with RESOURCE_EXHAUSTED (nothing was done), so a flood on one connection costs the
// coordinator bounded memory and time and never gets the connection killed. Streams (watches, agents) are not
// counted: their cost is bounded elsewhere.
import { ResourceExhaustedError } from "../errors.js";

export class Admission {
  private readonly inFlight = new Map<string, number>();

  /** @param perConnection calls one connection may have in flight; 0 = no limit. */
  constructor(private readonly perConnection: number) {}

  /** Admits a call from `connection` (its peer address) or throws; call the returned function when it ends. */
  admit(connection: string): () => void {
    const n = this.inFlight.get(connection) ?? 0;
    if (this.perConnection > 0 && n >= this.perConnection) {
      throw new ResourceExhaustedError(
        `this connection has ${n} calls in flight, the most the coordinator takes at once from one connection (--max-calls-per-connection); wait for answers before sending more, or submit many tasks per SubmitTasks call`,
      );
    }
    this.inFlight.set(connection, n + 1);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const left = (this.inFlight.get(connection) ?? 1) - 1;
      if (left <= 0) this.inFlight.delete(connection);
      else this.inFlight.set(connection, left);
    };
  }
}
