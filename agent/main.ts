// The node agent's entry point: resolves its options, opens the result journal, starts the executor, and wires
// them to the stream (connection.ts) through the agent's behaviour (node-agent.ts). Wiring only: no decisions here.
import { createClient } from "@connectrpc/connect";
import { ClusterService } from "../gen/edgeplane/v1/cluster_pb.js";
import { createLogger, type Logger } from "../lib/log.js";
import { CapacitySampler } from "./capacity.js";
import { resolveAgentConfig, type AgentConfig } from "./config.js";
import { Connection, createCoordinatorTransport } from "./connection.js";
import { DevicesSource } from "./devices.js";
import { createExecutor } from "./executor/executor.js";
import { AgentIdentity, type TransportCredentials } from "./identity/agent-identity.js";
import { JournalCipher, journalSealer } from "./identity/journal-cipher.js";
import { ResultJournal, type JournalContents } from "./journal.js";
import { NodeAgent } from "./node-agent.js";

export { readDevicesFile } from "./devices.js";
export type { AgentState } from "./lifecycle.js";

export const AGENT_VERSION = "0.1.0";

export interface AgentHandle {
  nodeId: string;
  /** Stops taking work, lets running tasks finish (up to graceMs), delivers their results, then stops. */
  drain(graceMs?: number): Promise<void>;
  /** Stops at once: running attempts are cancelled and reported as such when the stream is up. */
  stop(): Promise<void>;
}

export async function startAgent(partial: Partial<AgentConfig> & { clusterId: string }, logger?: Logger): Promise<AgentHandle> {
  const config = resolveAgentConfig(partial);
  const log = logger ?? createLogger("agent", config.logLevel).child({ node: config.nodeId, cluster: config.clusterId });
  // Identity (agent/identity/): enrols if needed, then mTLS with the node certificate, renewed over the stream.
  const identity = await AgentIdentity.prepare(config, log.child({ component: "identity" }));
  // What can fail on bad input (the devices file, the journal directory) fails before any worker starts.
  const devices = new DevicesSource(config.deviceIds, config.devicesFile, () => agent.devicesUpdated(), log);
  // --encrypt-journal: records sealed with the node's own key (agent/identity/journal-cipher.ts).
  const key = config.journalKeyFile ? JournalCipher.fromKeyFile(config.journalKeyFile) : undefined;
  if (key?.created)
    log.info({ file: config.journalKeyFile }, "created the result journal's encryption key; keep it: without it journaled results cannot be read");
  const { journal, recovered } = ResultJournal.open(config.dataDir, { sealer: key ? journalSealer(key.cipher) : undefined });
  reportRecovery(recovered, config.dataDir, log);
  journal.onDiskError((err, notDurable) => {
    log.error(
      { err: err.message, results: notDurable.length, dir: config.dataDir },
      "the result journal could not write or flush to disk; results are still delivered, but a power cut now could lose them",
    );
  });
  let executor;
  try {
    executor = await createExecutor({ size: config.workers, handlersDir: config.handlersDir, logger: log, inlineMaxBytes: config.inlineMaxBytes });
  } catch (err) {
    await journal.close();
    throw err;
  }
  const sampler = new CapacitySampler(config.maxMemoryBytes);

  // The agent and its stream need each other; the closures below run only once both exist.
  const agent: NodeAgent = new NodeAgent({
    nodeId: config.nodeId,
    clusterId: config.clusterId,
    tier: config.tier,
    labels: config.labels,
    agentVersion: AGENT_VERSION,
    executor,
    journal,
    sampler,
    devices: () => devices.current,
    recovered: recovered.results,
    log,
    link: { send: (m) => conn.send(m), stop: () => conn.stop() },
    announceDrain: () => drainSelf(config, log, identity.currentCredentials),
  });
  const conn: Connection = new Connection(
    { address: config.coordinator, reconnectBaseMs: config.reconnectBaseMs, reconnectMaxMs: config.reconnectMaxMs, credentials: () => identity.transport() },
    {
      register: () => agent.register(),
      onRegistered: (r) => agent.onRegistered(r),
      onMessage: (m) => agent.onMessage(m),
      onClosed: (r) => agent.onClosed(r),
      onCertificate: (c) => identity.onCertificate(c),
    },
    log,
  );
  devices.start();
  conn.start();
  identity.startRenewal((m) => conn.send(m));

  const after = (p: Promise<void>) =>
    p.finally(() => {
      devices.stop();
      identity.stop();
    });
  return {
    nodeId: config.nodeId,
    drain: (graceMs = config.drainGraceMs) => after(agent.drain(graceMs)),
    stop: () => after(agent.stop()),
  };
}

function reportRecovery(r: JournalContents, dir: string, log: Logger): void {
  if (r.results.length > 0) log.info({ results: r.results.length, dir }, "results from before the restart will be delivered");
  if (r.legacyFiles > 0) log.info({ files: r.legacyFiles, dir }, "read results journaled in the old one-file-per-result format; they now live in the journal");
  for (const t of r.tornTails)
    log.warn(
      { file: t.file, offset: t.offset, bytes: t.bytes, dir },
      "ignored an incomplete last record in the result journal (a write cut short by a crash; that attempt runs again)",
    );
  for (const c of r.corrupt)
    log.error(
      { file: c.file, offset: c.offset, bytes: c.bytes, keptAs: c.keptAs, dir },
      "skipped a corrupt record in the result journal; its bytes are kept aside",
    );
  if (r.unreadableFiles.length > 0)
    log.error({ files: r.unreadableFiles, dir }, "files in the result journal directory that are not journal files were renamed to *.unreadable");
}

/** Asks the coordinator to stop placing work here (best effort: the stream's cancelled results cover a miss). */
async function drainSelf(config: AgentConfig, log: Logger, creds: TransportCredentials): Promise<void> {
  try {
    const client = createClient(ClusterService, createCoordinatorTransport(creds));
    await client.drainNode({ nodeId: config.nodeId }, { timeoutMs: 2000 });
  } catch (err) {
    log.warn({ err: (err as Error).message }, "could not tell the coordinator this node is draining");
  }
}
