// Serves protobuf-es GenServices on @grpc/grpc-js: builds the grpc-js service definition from the descriptor
// and adapts connect-style handlers (async functions, async generators, AbortSignal). Transport only.
import * as grpc from "@grpc/grpc-js";
import type { Admission } from "./admission.js";
import { toBinary, type DescFile, type DescMessage, type DescMethod, type MessageShape, type Registry } from "@bufbuild/protobuf";
import { fromBinaryFast } from "../../lib/fast-doubles.js";
import { restoreTwin, twinOf, twinRegistry } from "../../lib/wire-twin.js";
import type { GenService, GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import type { Logger } from "../../lib/log.js";
import type { CallGuard, Principal } from "../security/principal.js";
import { toServiceError, toGrpcStatus } from "./errors.js";

export interface CallContext {
  /** Aborted when the client cancels, the deadline passes or the server shuts down. */
  signal: AbortSignal;
  peer: string;
  metadata: grpc.Metadata;
  /** Who is calling, as the guard authenticated it (security/). */
  principal: Principal;
}

/** A guard that admits every call as the --insecure principal, with no audit (for tests of services alone). */
export const OPEN_GUARD: CallGuard = { admit: () => ({ principal: { kind: "insecure", id: "insecure" }, finish: () => {} }) };

type In<M extends DescMethod> = MessageShape<M["input"]>;
type Out<M extends DescMethod> = MessageShape<M["output"]>;

type MethodImpl<M extends DescMethod> = M["methodKind"] extends "unary"
  ? (req: In<M>, ctx: CallContext) => Promise<Out<M>>
  : M["methodKind"] extends "server_streaming"
    ? (req: In<M>, ctx: CallContext) => AsyncIterable<Out<M>>
    : M["methodKind"] extends "bidi_streaming"
      ? (reqs: AsyncIterable<In<M>>, ctx: CallContext) => AsyncIterable<Out<M>>
      : never;

/** An implementation of every method of a service, keyed by the method's localName (e.g. `submitTask`). */
export type ServiceImpl<S extends GenServiceMethods> = {
  [K in keyof S]: MethodImpl<S[K] & DescMethod>;
};

/** Encoded size of each decoded request, so limits can be checked without encoding it again. */
export const wireSize = new WeakMap<object, number>();

const twins = new WeakMap<DescFile, Registry>();

function serializers(desc: DescMessage) {
  const file = desc.file;
  let registry = twins.get(file);
  if (!registry) twins.set(file, (registry = twinRegistry([file])));
  // Requests are read with the wire twin (lib/wire-twin.ts): Value fields (inputs, outputs) stay bytes until
  // convert.ts reads them as JSON, instead of a protobuf-es message per JSON node. Responses carry theirs the same
  // way (lib/value-wire.ts setValueField), as unknown fields that toBinary writes as they are.
  const twin = twinOf(registry, desc);
  return {
    serialize: (m: MessageShape<DescMessage>) => {
      // toBinary returns bytes of their own: wrapped as a Buffer, not copied.
      const b = toBinary(desc, m);
      return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
    },
    deserialize: (b: Buffer) => {
      // Requests arrive in a buffer of their own, which fromBinaryFast may rewrite (big series decode ~20× faster).
      const m = fromBinaryFast(twin, b);
      restoreTwin(m, desc);
      wireSize.set(m, b.length);
      return m;
    },
  };
}

/** The grpc-js service definition for a protobuf-es service: path `/${typeName}/${name}`, codecs from its schemas. */
export function grpcServiceDefinition(service: GenService<GenServiceMethods>): grpc.ServiceDefinition {
  const def: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const m of service.methods) {
    const req = serializers(m.input);
    const res = serializers(m.output);
    def[m.localName] = {
      path: `/${service.typeName}/${m.name}`,
      requestStream: m.methodKind === "client_streaming" || m.methodKind === "bidi_streaming",
      responseStream: m.methodKind === "server_streaming" || m.methodKind === "bidi_streaming",
      requestSerialize: req.serialize,
      requestDeserialize: req.deserialize,
      responseSerialize: res.serialize,
      responseDeserialize: res.deserialize,
    } as grpc.MethodDefinition<unknown, unknown>;
  }
  return def as grpc.ServiceDefinition;
}

/**
 * The controllers of a service's open calls, all aborted when the server shuts down. One listener on the shutdown
 * signal, not one per call: EventTarget's add/removeEventListener walk every listener, so with thousands of calls
 * open a listener per call made each call cost O(open calls) (4% of the coordinator's busy time at 2,000 calls/s).
 */
class OpenCalls {
  private readonly live = new Set<AbortController>();
  constructor(private readonly shutdown: AbortSignal) {
    shutdown.addEventListener("abort", () => this.abortAll(), { once: true });
  }
  add(): AbortController {
    const ac = new AbortController();
    if (this.shutdown.aborted) ac.abort(new Error("server shutting down"));
    else this.live.add(ac);
    return ac;
  }
  delete(ac: AbortController): void {
    this.live.delete(ac);
  }
  private abortAll(): void {
    const all = [...this.live];
    this.live.clear();
    for (const ac of all) ac.abort(new Error("server shutting down"));
  }
}

type AnyCall = grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>;

/**
 * The call's context, once the guard has admitted it (authenticated and authorised: a refusal throws). `done` ends
 * the call's bookkeeping and tells the guard how it ended, for the audit log.
 */
function contextFor(
  call: AnyCall,
  open: OpenCalls,
  method: string,
  guard: CallGuard,
  calls: Admission | undefined,
): { ctx: CallContext; done: (err?: unknown, res?: unknown) => void } {
  const request = "request" in call ? call.request : undefined;
  const admission = guard.admit({ method, metadata: call.metadata, peer: call.getPeer(), auth: call.getAuthContext(), request });
  // After the guard (an unauthenticated flood is refused as such): a connection with too many calls open gets
  // RESOURCE_EXHAUSTED at once, before any work.
  const release = calls?.admit(call.getPeer());
  const ac = open.add();
  const onCancel = () => ac.abort(new Error("call cancelled by client"));
  const ee = call as unknown as NodeJS.EventEmitter;
  ee.on("cancelled", onCancel);
  const done = (err?: unknown, res?: unknown) => {
    open.delete(ac);
    ee.removeListener("cancelled", onCancel);
    release?.();
    admission.finish(err, request, res);
  };
  return { ctx: { signal: ac.signal, peer: call.getPeer(), metadata: call.metadata, principal: admission.principal }, done };
}

async function writeAll(
  call: grpc.ServerWritableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>,
  out: AsyncIterable<unknown>,
  signal: AbortSignal,
): Promise<void> {
  for await (const msg of out) {
    if (signal.aborted) break;
    if (!call.write(msg)) {
      // Respect backpressure: a slow reader must not make us buffer without bound.
      await new Promise<void>((resolve) => {
        const done = () => {
          call.off("drain", done);
          signal.removeEventListener("abort", done);
          resolve();
        };
        call.once("drain", done);
        signal.addEventListener("abort", done, { once: true });
      });
    }
  }
}

/** Adapts typed handlers to grpc-js's untyped call objects, mapping errors at this one boundary. */
export function grpcServiceImpl<S extends GenServiceMethods>(
  service: GenService<S>,
  impl: ServiceImpl<S>,
  log: Logger,
  shutdown: AbortSignal,
  guard: CallGuard = OPEN_GUARD,
  /** Limits unary calls in flight per client connection (rpc/admission.ts). Default: no limit. */
  calls?: Admission,
): grpc.UntypedServiceImplementation {
  const open = new OpenCalls(shutdown);
  const out: grpc.UntypedServiceImplementation = {};
  const logFailure = (method: string, err: unknown) => {
    const s = toGrpcStatus(err);
    if (s.internal) log.error({ err, method }, "rpc failed with an internal error");
    else log.debug({ method, code: grpc.status[s.code], details: s.details }, "rpc rejected");
  };
  for (const m of (service as GenService<GenServiceMethods>).methods) {
    const fn = (impl as Record<string, unknown>)[m.localName] as (...a: unknown[]) => unknown;
    const name = `${service.typeName}/${m.name}`;
    // Admits the call through the guard; a refusal is answered at once and the handler never runs.
    const admit = (call: AnyCall, refuse: (err: unknown) => void) => {
      try {
        return contextFor(call, open, name, guard, m.methodKind === "unary" ? calls : undefined);
      } catch (err) {
        logFailure(name, err);
        refuse(toServiceError(err));
        return undefined;
      }
    };
    switch (m.methodKind) {
      case "unary":
        out[m.localName] = ((call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
          const admitted = admit(call, (e) => cb(e as grpc.ServiceError));
          if (!admitted) return;
          const { ctx, done } = admitted;
          (fn(call.request, ctx) as Promise<unknown>).then(
            (res) => {
              done(undefined, res);
              cb(null, res);
            },
            (err) => {
              done(err);
              logFailure(name, err);
              cb(toServiceError(err));
            },
          );
        }) as grpc.handleUnaryCall<unknown, unknown>;
        break;
      case "server_streaming":
        out[m.localName] = ((call: grpc.ServerWritableStream<unknown, unknown>) => {
          const admitted = admit(call, (e) => call.emit("error", e));
          if (!admitted) return;
          const { ctx, done } = admitted;
          writeAll(call, fn(call.request, ctx) as AsyncIterable<unknown>, ctx.signal).then(
            () => {
              done();
              call.end();
            },
            (err) => {
              done(err);
              logFailure(name, err);
              call.emit("error", toServiceError(err));
            },
          );
        }) as grpc.handleServerStreamingCall<unknown, unknown>;
        break;
      case "bidi_streaming":
        out[m.localName] = ((call: grpc.ServerDuplexStream<unknown, unknown>) => {
          const admitted = admit(call, (e) => call.emit("error", e));
          if (!admitted) return;
          const { ctx, done } = admitted;
          // The request side ends on half-close; a read error (e.g. RST) aborts the handler. Not `for await (… of
          // call)`: that destroys the call when the requests end, so call.end() would never send the status and the
          // client's stream would hang open after its half-close.
          const requests = (async function* () {
            try {
              for await (const msg of call.iterator({ destroyOnReturn: false })) yield msg;
            } catch (err) {
              if (!ctx.signal.aborted) throw err;
            }
          })();
          writeAll(call, fn(requests, ctx) as AsyncIterable<unknown>, ctx.signal).then(
            () => {
              done();
              call.end();
            },
            (err) => {
              done(err);
              logFailure(name, err);
              call.emit("error", toServiceError(err));
            },
          );
        }) as grpc.handleBidiStreamingCall<unknown, unknown>;
        break;
      case "client_streaming":
        throw new Error(`${name}: client streaming is not used by edgeplane`);
    }
  }
  return out;
}
