// How the agent reads its stream: AgentService exactly as generated, except that a dispatch's series values are
// decoded as raw bytes and turned into numbers in one copy. protobuf-es reads a packed `repeated double` one value
// and one push at a time (~50 ms and a burst of garbage per 1,000,000 values here); connect-node offers no hook into
// its decoding, so the agent's client is built on a copy of the descriptors in which NumericSeries.values is
// `repeated bytes` (each packed piece on the wire is one length-delimited record of whole doubles, so the bytes of
// every piece arrive in order, without a copy), and `fromStream` rebuilds the generated message from it.
// Nothing changes on the wire; what the agent sends has no series and encodes as before.
import { clone, create, createFileRegistry, type DescFile, type DescService } from "@bufbuild/protobuf";
import { FieldDescriptorProto_Type, FileDescriptorProtoSchema, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { AgentService, file_edgeplane_v1_agent, type ConnectResponse, type Dispatch } from "../gen/edgeplane/v1/agent_pb.js";
import { NumericSeriesSchema } from "../gen/edgeplane/v1/types_pb.js";
import { doublesFromBytes, LITTLE_ENDIAN } from "../lib/fast-doubles.js";

/** AgentService with NumericSeries.values read as bytes: use it for the stream's client only (see the top). */
export const agentStreamService: typeof AgentService = LITTLE_ENDIAN ? bytesValuesService() : AgentService;

/**
 * A message read with `agentStreamService`, as the generated ConnectResponse: a dispatch's series values back as
 * numbers (in a single dispatch or a batch). Throws on a series piece that is not whole doubles (a malformed message).
 */
export function fromStream(res: ConnectResponse): ConnectResponse {
  if (agentStreamService === AgentService) return res;
  if (res.msg.case === "dispatch") seriesFromBytes(res.msg.value);
  else if (res.msg.case === "batch") for (const d of res.msg.value.dispatches) seriesFromBytes(d);
  return res;
}

function seriesFromBytes(d: Dispatch): void {
  if (!d.series) return;
  const s = d.series;
  const pieces = s.values as unknown as Uint8Array[];
  d.series = create(NumericSeriesSchema, { values: doublesFromBytes(pieces), timestamps: s.timestamps });
}

function bytesValuesService(): typeof AgentService {
  const protos: ReturnType<typeof clone<typeof FileDescriptorProtoSchema>>[] = [];
  const seen = new Set<string>();
  const add = (f: DescFile): void => {
    if (seen.has(f.proto.name)) return;
    seen.add(f.proto.name);
    f.dependencies.forEach(add);
    protos.push(clone(FileDescriptorProtoSchema, f.proto));
  };
  add(file_edgeplane_v1_agent);
  const series = protos.find((p) => p.name === "edgeplane/v1/types.proto")?.messageType.find((m) => m.name === "NumericSeries");
  const values = series?.field.find((f) => f.name === "values");
  if (!values || values.type !== FieldDescriptorProto_Type.DOUBLE)
    throw new Error("edgeplane/v1/types.proto has no NumericSeries.values of type double: update agent/wire.ts");
  values.type = FieldDescriptorProto_Type.BYTES;
  values.options = undefined;
  const service: DescService | undefined = createFileRegistry(create(FileDescriptorSetSchema, { file: protos })).getService(AgentService.typeName);
  if (!service) throw new Error(`${AgentService.typeName} missing from its own descriptors`);
  return service as unknown as typeof AgentService;
}
