// Typed TypeScript client for the edgeplane coordinator, used by the CLI and by applications: TLS (the coordinator
// CA given, or pinned by the hash in the token), bearer token or client certificate. Transport only: never formats,
// prints or retries; errors surface as ConnectError with a gRPC code (or CaMismatchError before any call).
import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcTransport, type GrpcTransportOptions } from "@connectrpc/connect-node";
import { TaskService } from "../gen/edgeplane/v1/task_pb.js";
import { ClusterService } from "../gen/edgeplane/v1/cluster_pb.js";
import { EnrolmentService, NodeIdentityService, TokenService } from "../gen/edgeplane/v1/auth_pb.js";
import { fetchPinnedCa } from "../lib/pinned-ca.js";

/** Where the coordinator listens unless told otherwise (`--coordinator`, `EDGEPLANE_ADDR`). */
export const DEFAULT_COORDINATOR_ADDRESS = "127.0.0.1:50051";

/** Environment variable holding the coordinator's HOST:PORT for the CLI. */
export const COORDINATOR_ENV = "EDGEPLANE_ADDR";
/** Environment variable holding the bearer token (an API token from `edgeplane token create`). */
export const TOKEN_ENV = "EDGEPLANE_TOKEN";
/** Environment variable naming a file with the bearer token. */
export const TOKEN_FILE_ENV = "EDGEPLANE_TOKEN_FILE";
/** Environment variable naming the coordinator's CA certificate file (PEM), e.g. `<data-dir>/ca.crt`. */
export const CA_ENV = "EDGEPLANE_CA";

/** Clients for the coordinator's public services, sharing one HTTP/2 connection. */
export interface EdgeplaneClients {
  /** Submit, inspect, list, cancel and watch tasks. */
  tasks: Client<typeof TaskService>;
  /** Register clusters, list clusters and nodes, drain nodes, read fleet status. */
  clusters: Client<typeof ClusterService>;
  /** Create, list and revoke join and API tokens (admin). */
  tokens: Client<typeof TokenService>;
  /** List enrolled nodes and revoke them (admin). */
  identities: Client<typeof NodeIdentityService>;
  /** The CA certificate, and certificates for tokens (enrolment). */
  enrolment: Client<typeof EnrolmentService>;
}

/** How the client proves who it is and whom it trusts. */
export interface ClientSecurity {
  /** Bearer token sent on every call. A full token (`EP1<ca-sha256>::…`) also pins the coordinator's CA. */
  token?: string;
  /** The coordinator's CA certificate (PEM); without it, the CA is pinned from the token's hash (or the system CAs). */
  caPem?: string;
  /** A client certificate and its key (PEM), e.g. from `edgeplane cert issue`. */
  certPem?: string;
  keyPem?: string;
  /** Plaintext: a coordinator started with --insecure (HOST:PORT then means http://). */
  insecure?: boolean;
}

export type ClientOptions = Partial<Omit<GrpcTransportOptions, "baseUrl">> & ClientSecurity;

/**
 * The base URL for a coordinator address: `HOST:PORT` becomes `https://HOST:PORT` (or `http://` with `insecure`);
 * a full `http(s)://` URL is used as given.
 */
export function coordinatorBaseUrl(address: string, insecure = false): string {
  return /^https?:\/\//i.test(address) ? address : `${insecure ? "http" : "https"}://${address}`;
}

/** Adds `authorization: Bearer <token>` to every call. */
export function bearerInterceptor(token: string): Interceptor {
  const value = `Bearer ${token.trim()}`;
  return (next) => (req) => {
    req.header.set("authorization", value);
    return next(req);
  };
}

/**
 * Creates typed clients for the coordinator at `address` (`HOST:PORT`, default `127.0.0.1:50051`), over TLS.
 * The connection opens on the first call and is kept alive but does not keep the process running when idle.
 * Messages are protobuf-es v2 objects: pass plain initialisers or `create(Schema, init)`, and convert
 * to the proto JSON form with `toJson(Schema, message)`.
 *
 * @example
 * ```ts
 * import { fromJson } from "@bufbuild/protobuf";
 * import { ValueSchema } from "@bufbuild/protobuf/wkt";
 * import { createClients } from "./cli/client.js";
 * import { Priority } from "./gen/edgeplane/v1/types_pb.js";
 *
 * // The token pins the coordinator's CA by its hash: no CA file needed.
 * const { tasks, clusters } = createClients("127.0.0.1:50051", { token: process.env.EDGEPLANE_TOKEN });
 * const { taskId } = await tasks.submitTask({
 *   task: { handler: "stats", deviceId: "sensor-1", priority: Priority.HIGH, input: fromJson(ValueSchema, { values: [1, 2, 3] }) },
 * });
 * for await (const { task } of tasks.watchTask({ taskId })) console.log(task?.state);
 * const { nodes } = await clusters.listNodes({});
 * ```
 *
 * @param address coordinator HOST:PORT, or an `http(s)://` URL.
 * @param options credentials and trust (token, caPem, certPem/keyPem, insecure) and extra gRPC transport options.
 */
export function createClients(address: string = DEFAULT_COORDINATOR_ADDRESS, options: ClientOptions = {}): EdgeplaneClients {
  const transport = createTransport(address, options);
  return {
    tasks: createClient(TaskService, transport),
    clusters: createClient(ClusterService, transport),
    tokens: createClient(TokenService, transport),
    identities: createClient(NodeIdentityService, transport),
    enrolment: createClient(EnrolmentService, transport),
  };
}

/** Memory one client connection may buffer, in MB (Node's http2 maxSessionMemory; its default is 10). */
export const CLIENT_SESSION_MEMORY_MB = 256;

/** The transport createClients uses: TLS with the given or pinned CA, the bearer token on every call. */
export function createTransport(address: string, options: ClientOptions = {}): Transport {
  const { token, caPem, certPem, keyPem, insecure, ...grpcOptions } = options;
  const baseUrl = coordinatorBaseUrl(address, insecure);
  const interceptors = [...(grpcOptions.interceptors ?? []), ...(token ? [bearerInterceptor(token)] : [])];
  // Node's default of 10 MB buffered per HTTP/2 session makes a client with thousands of calls open end its own
  // connection (ENHANCE_YOUR_CALM); the coordinator answers such a flood with RESOURCE_EXHAUSTED instead.
  const session = { maxSessionMemory: CLIENT_SESSION_MEMORY_MB };
  const make = (ca: string | undefined) =>
    createGrpcTransport({
      ...grpcOptions,
      interceptors,
      baseUrl,
      nodeOptions: baseUrl.startsWith("https:")
        ? { ...session, ...(ca ? { ca } : {}), ...(certPem && keyPem ? { cert: certPem, key: keyPem } : {}), minVersion: "TLSv1.2", ...grpcOptions.nodeOptions }
        : { ...session, ...grpcOptions.nodeOptions },
    });
  const pin = /^EP1([0-9a-f]{64})::/.exec(token?.trim() ?? "")?.[1];
  if (!baseUrl.startsWith("https:") || caPem || !pin) return make(caPem);
  return pinningTransport(hostPort(baseUrl), pin, make);
}

/**
 * A transport that, before its first call, fetches the coordinator's CA and checks it against the token's hash,
 * then calls through a transport trusting only that CA. A failed check fails every call with its message.
 */
function pinningTransport(address: string, sha256: string, make: (caPem: string) => Transport): Transport {
  let real: Promise<Transport> | undefined;
  const get = () =>
    (real ??= fetchPinnedCa(address, sha256).then(make, (err: unknown) => {
      real = undefined; // a coordinator that was down may be up at the next call
      throw err;
    }));
  return {
    unary: async (...a) => (await get()).unary(...a),
    stream: async (...a) => (await get()).stream(...a),
  };
}

function hostPort(url: string): string {
  const u = new URL(url);
  return u.host;
}
