// One agent's stream in domain terms: registration (reconcile what it still runs), heartbeats, accepts and results,
// and the stream's end. rpc/agent-service.ts decodes wire messages into these and encodes the session's outbox;
// this decides what each means for the registry and the dispatcher. No wire types, no timers of its own.
import { randomUUID } from "node:crypto";
import type { Timers } from "../../lib/clock.js";
import type { Logger } from "../../lib/log.js";
import type { HeartbeatInfo, NodeRecord, NodeRegistry, RegisterInfo } from "../nodes/registry.js";
import type { AttemptReport } from "../tasks/task-manager.js";
import type { Dispatcher } from "./dispatcher.js";
import { AgentSession } from "./session.js";

/** What an agent says when its stream opens. */
export interface AgentRegistration {
  info: RegisterInfo;
  /** Attempts it still runs, and results it has not had acknowledged (from before a reconnect). */
  running: { taskId: string; attempt: number }[];
  /** The coordinator told it to drain before it reconnected: it stays out of placement. */
  draining: boolean;
  agentVersion: string;
}

/** An agent → coordinator message after registration. */
export type AgentMessage =
  | { type: "heartbeat"; sequence: bigint; info: HeartbeatInfo }
  | { type: "reports"; accepted: { taskId: string; attempt: number }[]; results: AttemptReport[] }
  | { type: "register-again" }
  | { type: "empty" };

export interface AgentLinkDeps {
  registry: NodeRegistry;
  dispatcher: Dispatcher;
  timers: Pick<Timers, "soon">;
  heartbeatIntervalMs: number;
  log: Logger;
}

export class AgentLink {
  readonly session: AgentSession;
  readonly node: NodeRecord;
  /** Bound to the node, cluster and session. */
  readonly log: Logger;

  /** Registers the node (throws InvalidArgumentError on a bad registration) and opens its session. */
  constructor(
    private readonly d: AgentLinkDeps,
    reg: AgentRegistration,
  ) {
    const sessionId = reg.info.sessionId || randomUUID();
    this.node = d.registry.registerNode({ ...reg.info, sessionId });
    this.session = new AgentSession(this.node.id, sessionId, d.timers);
    this.log = d.log.child({ node: this.node.id, cluster: this.node.clusterId, session: sessionId });
    this.session.send({ type: "registered", heartbeatIntervalMs: d.heartbeatIntervalMs });
    if (reg.draining) d.registry.drain(this.node.id);
    d.dispatcher.attach(this.session);
    d.dispatcher.reconcile(this.node, reg.running);
    this.log.info(
      {
        handlers: reg.info.handlers,
        devices: reg.info.deviceIds,
        cpu: reg.info.totalCpuMillis,
        memory: reg.info.totalMemoryBytes,
        slots: reg.info.maxConcurrent,
        running: reg.running.length,
        version: reg.agentVersion,
      },
      "node registered",
    );
  }

  handle(m: AgentMessage): void {
    this.d.registry.touch(this.node.id, this.session.sessionId);
    switch (m.type) {
      case "heartbeat":
        this.d.registry.heartbeat(this.node.id, this.session.sessionId, m.info);
        this.session.send({ type: "heartbeat-ack", sequence: m.sequence });
        this.d.dispatcher.kick();
        break;
      case "reports":
        this.d.dispatcher.fromAgent(this.session, m.accepted, m.results);
        break;
      case "register-again":
        this.log.warn("duplicate register on an open stream ignored");
        break;
      case "empty":
        break;
      default: {
        const never: never = m;
        this.log.warn({ msg: never }, "unknown agent message");
      }
    }
  }

  /** The stream ended (either side, or it failed). */
  close(reason: string): void {
    this.d.dispatcher.detach(this.session, reason);
    this.log.info({ reason }, "agent stream ended");
  }
}
