// How the agent reads its stream: AgentService as generated, read through a wire twin (lib/wire-twin.ts). A
// dispatch's series values are decoded as raw bytes and turned into numbers in one copy (protobuf-es reads a packed
// `repeated double` one value and one push at a time: ~50 ms and a burst of garbage per 1,000,000 values here), and
// Value fields (a dispatch's input, a shard's global) stay bytes until convert.ts reads them as JSON
// (lib/value-wire.ts) instead of becoming a protobuf-es message per JSON node. connect-node offers no hook into its
// decoding, so the agent's client is built on the twin's descriptors, and `fromStream` gives back the generated
// message's shape. Nothing changes on the wire; what the agent sends encodes as before.
import { create, type DescService } from "@bufbuild/protobuf";
import { AgentService, ConnectResponseSchema, file_edgeplane_v1_agent, type ConnectResponse, type Dispatch } from "../gen/edgeplane/v1/agent_pb.js";
import { NumericSeriesSchema } from "../gen/edgeplane/v1/types_pb.js";
import { doublesFromBytes, LITTLE_ENDIAN } from "../lib/fast-doubles.js";
import { restoreTwin, twinRegistry } from "../lib/wire-twin.js";

/** AgentService read through the twin: use it for the stream's client only (see the top). */
export const agentStreamService: typeof AgentService = twinService();

/**
 * A message read with `agentStreamService`, as the generated ConnectResponse: a dispatch's series values back as
 * numbers (in a single dispatch or a batch). Throws on a series piece that is not whole doubles (a malformed message).
 */
export function fromStream(res: ConnectResponse): ConnectResponse {
  restoreTwin(res, ConnectResponseSchema);
  if (!LITTLE_ENDIAN) return res;
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

/** AgentService whose methods read their responses with the twin (what the agent sends is encoded as generated). */
function twinService(): typeof AgentService {
  const twin: DescService | undefined = twinRegistry([file_edgeplane_v1_agent], { seriesAsBytes: LITTLE_ENDIAN }).getService(AgentService.typeName);
  if (!twin) throw new Error(`${AgentService.typeName} missing from its own descriptors`);
  const methods = AgentService.methods.map((m) => ({ ...m, output: twin.methods.find((t) => t.name === m.name)!.output }));
  return { ...AgentService, methods, method: Object.fromEntries(methods.map((m) => [m.localName, m])) } as unknown as typeof AgentService;
}
