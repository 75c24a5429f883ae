// Typed TypeScript client for the edgeplane coordinator, used by the CLI and by applications.
// Transport only: never formats, prints or retries; errors surface as ConnectError with a gRPC code.
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport, type GrpcTransportOptions } from "@connectrpc/connect-node";
import { TaskService } from "../gen/edgeplane/v1/task_pb.js";
import { ClusterService } from "../gen/edgeplane/v1/cluster_pb.js";

/** Where the coordinator listens unless told otherwise (`--coordinator`, `EDGEPLANE_ADDR`). */
export const DEFAULT_COORDINATOR_ADDRESS = "127.0.0.1:50051";

/** Environment variable holding the coordinator's HOST:PORT for the CLI. */
export const COORDINATOR_ENV = "EDGEPLANE_ADDR";

/** Clients for the coordinator's public services, sharing one HTTP/2 connection. */
export interface EdgeplaneClients {
  /** Submit, inspect, list, cancel and watch tasks. */
  tasks: Client<typeof TaskService>;
  /** Register clusters, list clusters and nodes, drain nodes, read fleet status. */
  clusters: Client<typeof ClusterService>;
}

/**
 * The base URL for a coordinator address: `HOST:PORT` becomes `http://HOST:PORT`
 * (the coordinator speaks gRPC over cleartext HTTP/2); a full `http(s)://` URL is used as given.
 */
export function coordinatorBaseUrl(address: string): string {
  return /^https?:\/\//i.test(address) ? address : `http://${address}`;
}

/**
 * Creates typed clients for the coordinator at `address` (`HOST:PORT`, default `127.0.0.1:50051`).
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
 * const { tasks, clusters } = createClients("127.0.0.1:50051");
 * const { taskId } = await tasks.submitTask({
 *   task: { handler: "stats", deviceId: "sensor-1", priority: Priority.HIGH, input: fromJson(ValueSchema, { values: [1, 2, 3] }) },
 * });
 * for await (const { task } of tasks.watchTask({ taskId })) console.log(task?.state);
 * const { nodes } = await clusters.listNodes({});
 * ```
 *
 * @param address coordinator HOST:PORT, or an `http://` URL.
 * @param options extra gRPC transport options (interceptors, timeouts, TLS for an `https://` address).
 */
export function createClients(
  address: string = DEFAULT_COORDINATOR_ADDRESS,
  options: Partial<Omit<GrpcTransportOptions, "baseUrl">> = {},
): EdgeplaneClients {
  const transport = createGrpcTransport({ ...options, baseUrl: coordinatorBaseUrl(address) });
  return {
    tasks: createClient(TaskService, transport),
    clusters: createClient(ClusterService, transport),
  };
}
