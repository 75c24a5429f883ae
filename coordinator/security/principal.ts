// Who is calling: the principal the guard derives for each call, and the narrow interface the gRPC adapter depends
// on (admit a call, then report how it ended). Types only.
import type { Metadata } from "@grpc/grpc-js";
import type { PeerCertificate } from "node:tls";
import type { TokenRecord } from "./auth-store.js";
import type { Role } from "./roles.js";

/** Clusters a principal may act on: every cluster, or these. */
export type ClusterScope = "*" | ReadonlySet<string>;

export type Principal =
  /** An API token, presented as a bearer token or through a client certificate issued for it. */
  | { kind: "token"; id: string; token: TokenRecord; role: Role; clusters: ClusterScope; via: "bearer" | "certificate" }
  /** An enrolled node agent, from its client certificate. */
  | { kind: "node"; id: string; nodeId: string; clusterId: string; serial: string }
  /** A join token: may only enrol. */
  | { kind: "join"; id: string; token: TokenRecord; clusters: ClusterScope }
  /** A coordinator started with --insecure: no authentication, every call allowed. */
  | { kind: "insecure"; id: "insecure" }
  /** No credentials, on a method that needs none (the CA certificate). */
  | { kind: "anonymous"; id: "anonymous" };

/** What the adapter knows about a call before its handler runs. */
export interface CallInfo {
  /** Full method name, `package.Service/Method`. */
  method: string;
  metadata: Metadata;
  peer: string;
  /** grpc-js's auth context: the client certificate, present only when TLS verified it against the CA. */
  auth: { sslPeerCertificate?: PeerCertificate };
  /** The request of a unary or server-streaming call (for the audit line's target); undefined for streams in. */
  request?: unknown;
}

export interface Admission {
  principal: Principal;
  /** Called once when the call ends (err undefined on success), so mutating calls and refusals are audited. */
  finish(err: unknown, request: unknown, response: unknown): void;
}

/** Authenticates and authorises one call; throws UnauthenticatedError or PermissionDeniedError to refuse it. */
export interface CallGuard {
  admit(call: CallInfo): Admission;
}
