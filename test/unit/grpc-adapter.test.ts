// The grpc-js adapter's call contexts, over a real loopback socket: each call's signal is aborted when its client
// cancels or when the server shuts down, and a finished call is let go.
import * as grpc from "@grpc/grpc-js";
import { create } from "@bufbuild/protobuf";
import { getEventListeners } from "node:events";
import { afterEach, describe, expect, it } from "vitest";
import { createClients, type EdgeplaneClients } from "../../cli/client.js";
import { grpcServiceDefinition, grpcServiceImpl, type CallContext } from "../../coordinator/rpc/grpc-adapter.js";
import { TaskService, WatchTaskResponseSchema } from "../../gen/edgeplane/v1/task_pb.js";
import { silentLogger } from "../../lib/log.js";
import { waitFor } from "../helpers/store-fixtures.js";

interface Served {
  server: grpc.Server;
  shutdown: AbortController;
  clients: EdgeplaneClients;
  /** The context of every WatchTask call the server saw, in order. */
  watches: CallContext[];
  /** The context of every GetTask call answered. */
  gets: CallContext[];
}

let served: Served | undefined;

async function serve(): Promise<Served> {
  const shutdown = new AbortController();
  const s: Served = { server: new grpc.Server(), shutdown, clients: undefined as unknown as EdgeplaneClients, watches: [], gets: [] };
  const impl = {
    // Sends one update, then waits until its call is aborted.
    async *watchTask(_req: unknown, ctx: CallContext) {
      s.watches.push(ctx);
      yield create(WatchTaskResponseSchema, {});
      await new Promise<void>((resolve) => ctx.signal.addEventListener("abort", () => resolve(), { once: true }));
    },
    async getTask(_req: unknown, ctx: CallContext) {
      s.gets.push(ctx);
      throw new Error("not found here");
    },
  };
  s.server.addService(grpcServiceDefinition(TaskService), grpcServiceImpl(TaskService, impl as never, silentLogger(), shutdown.signal));
  const port = await new Promise<number>((resolve, reject) =>
    s.server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  s.clients = createClients(`127.0.0.1:${port}`, { insecure: true });
  served = s;
  return s;
}

afterEach(async () => {
  served?.shutdown.abort();
  served?.server.forceShutdown();
  served = undefined;
});

/**
 * Opens a WatchTask stream and waits for its first update; `end` settles when the stream ends (with its error, if
 * any). Wrapped in an object: an async function returning a promise would wait for it.
 */
async function openWatch(s: Served, signal?: AbortSignal): Promise<{ end: Promise<unknown> }> {
  const it = s.clients.tasks.watchTask({ taskId: "t-1" }, { signal })[Symbol.asyncIterator]();
  await it.next();
  const end = (async () => {
    try {
      for (;;) if ((await it.next()).done) return undefined;
    } catch (err) {
      return err;
    }
  })();
  return { end };
}

describe("call contexts", () => {
  it("every open call's signal is aborted when the server shuts down, and its stream ends", async () => {
    const s = await serve();
    const ends = await Promise.all([openWatch(s), openWatch(s), openWatch(s)]);
    expect(s.watches).toHaveLength(3);
    expect(s.watches.every((c) => !c.signal.aborted)).toBe(true);
    s.shutdown.abort();
    expect(s.watches.map((c) => (c.signal.reason as Error).message)).toEqual(Array(3).fill("server shutting down"));
    // Each handler returned, so each stream ended with a status.
    expect(await Promise.all(ends.map((w) => w.end))).toEqual([undefined, undefined, undefined]);
  });

  it("a call the client cancels is aborted alone, and a shutdown later leaves it as it was", async () => {
    const s = await serve();
    const cancel = new AbortController();
    const first = await openWatch(s, cancel.signal);
    const second = await openWatch(s);
    cancel.abort();
    await first.end;
    await waitFor("the cancelled call aborted", () => s.watches[0].signal.aborted);
    expect((s.watches[0].signal.reason as Error).message).toBe("call cancelled by client");
    expect(s.watches[1].signal.aborted).toBe(false);
    s.shutdown.abort();
    expect((s.watches[0].signal.reason as Error).message).toBe("call cancelled by client");
    expect((s.watches[1].signal.reason as Error).message).toBe("server shutting down");
    await second.end;
  });

  it("a call that arrives after the shutdown began starts aborted", async () => {
    const s = await serve();
    s.shutdown.abort();
    const end = await openWatch(s);
    expect(s.watches).toHaveLength(1);
    expect((s.watches[0].signal.reason as Error).message).toBe("server shutting down");
    await end.end;
  });

  it("open calls share one listener on the shutdown signal, and finished calls are forgotten", async () => {
    const s = await serve();
    const ends = await Promise.all(Array.from({ length: 20 }, () => openWatch(s)));
    for (let i = 0; i < 500; i += 50) await Promise.all(Array.from({ length: 50 }, () => s.clients.tasks.getTask({ taskId: "t-x" }).catch(() => undefined)));
    expect(s.gets).toHaveLength(500);
    // One per call would make each call's add and remove walk all the others (EventTarget keeps a list).
    expect(getEventListeners(s.shutdown.signal, "abort")).toHaveLength(1);
    s.shutdown.abort();
    await Promise.all(ends.map((w) => w.end));
    // Only the 20 open calls were aborted; the 500 finished ones were let go when they ended.
    expect(s.watches.filter((c) => c.signal.aborted)).toHaveLength(20);
    expect(s.gets.filter((c) => c.signal.aborted)).toHaveLength(0);
  });
});
