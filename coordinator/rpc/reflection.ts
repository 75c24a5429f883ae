// Server reflection (grpc.reflection.v1 and v1alpha) and the standard health service, so grpcurl and
// `buf curl` list and call every service with no proto files at hand.
import { toBinary, type DescFile } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import type { Server } from "@grpc/grpc-js";
import { ReflectionService } from "@grpc/reflection";
import type { PackageDefinition } from "@grpc/proto-loader";
import { HealthImplementation } from "grpc-health-check";
import { file_edgeplane_v1_agent } from "../../gen/edgeplane/v1/agent_pb.js";
import { file_edgeplane_v1_auth } from "../../gen/edgeplane/v1/auth_pb.js";
import { file_edgeplane_v1_cluster } from "../../gen/edgeplane/v1/cluster_pb.js";
import { file_edgeplane_v1_task } from "../../gen/edgeplane/v1/task_pb.js";
import { file_grpc_health_v1_health } from "../../gen/grpc/health/v1/health_pb.js";

export const SERVED_FILES: readonly DescFile[] = [
  file_edgeplane_v1_task,
  file_edgeplane_v1_cluster,
  file_edgeplane_v1_agent,
  file_edgeplane_v1_auth,
  file_grpc_health_v1_health,
];

/** Every file with its dependencies first, encoded as FileDescriptorProtos, each once. */
function encodedFiles(files: readonly DescFile[]): Buffer[] {
  const seen = new Set<string>();
  const out: Buffer[] = [];
  const visit = (f: DescFile) => {
    if (seen.has(f.name)) return;
    seen.add(f.name);
    for (const dep of f.dependencies) visit(dep);
    out.push(Buffer.from(toBinary(FileDescriptorProtoSchema, f.proto)));
  };
  files.forEach(visit);
  return out;
}

/**
 * @grpc/reflection reads `fileDescriptorProtos` from a package definition. Fed protobuf-es's own descriptors
 * (not proto-loader's, which merges files per package and breaks google.protobuf.Struct), every method resolves.
 */
export function addReflection(server: Server): void {
  const fileDescriptorProtos = encodedFiles(SERVED_FILES);
  const pkg: Record<string, unknown> = {};
  for (const f of SERVED_FILES) for (const s of f.services) pkg[s.typeName] = { fileDescriptorProtos };
  new ReflectionService(pkg as unknown as PackageDefinition).addToServer(server);
}

export const HEALTH_SERVICES = ["", "edgeplane.v1.TaskService", "edgeplane.v1.ClusterService", "edgeplane.v1.AgentService"] as const;

export function addHealth(server: Server): HealthImplementation {
  const health = new HealthImplementation(Object.fromEntries(HEALTH_SERVICES.map((s) => [s, "SERVING"])));
  health.addToServer(server as unknown as Parameters<HealthImplementation["addToServer"]>[0]);
  return health;
}
