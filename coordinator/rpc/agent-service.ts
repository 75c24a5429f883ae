// AgentService.Connect: the one bidirectional stream per node agent. Maps wire messages to registry and
// dispatcher calls and the session's outbox back to wire messages. Transport only.
import { durationFromMillis, durationToMillis } from "../../lib/duration.js";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { status } from "@grpc/grpc-js";
import { randomUUID } from "node:crypto";
import {
  AgentService, ConnectRequestSchema, ConnectResponseSchema, type ConnectRequest, type ConnectResponse,
} from "../../gen/edgeplane/v1/agent_pb.js";

import { CertificateRenewedSchema } from "../../gen/edgeplane/v1/auth_pb.js";
import type { Logger } from "../../lib/log.js";
import type { CoordinatorConfig } from "../config.js";
import type { Dispatcher } from "../dispatch/dispatcher.js";
import { UnauthenticatedError } from "../errors.js";
import type { NodeIdentities } from "../security/node-identity.js";
import { AgentSession, type OutboundMessage } from "../dispatch/session.js";
import { reservationKey, type NodeRegistry } from "../nodes/registry.js";
import { jsonToValue, outcomeFromPb, priorityToPb, seriesToPb, shardToPb, tierFromPb, valueToJson } from "./convert.js";
import { RpcStatusError } from "./errors.js";
import type { ServiceImpl } from "./grpc-adapter.js";

export interface AgentServiceDeps {
  registry: NodeRegistry;
  dispatcher: Dispatcher;
  config: CoordinatorConfig;
  log: Logger;
  /** Node identities (security/): Register checked against the certificate, revocation, renewal. None with --insecure. */
  identity?: Pick<NodeIdentities, "checkRegister" | "onRevoked" | "renew">;
}

export function agentServiceImpl(d: AgentServiceDeps): ServiceImpl<typeof AgentService.method> {
  return {
    async *connect(requests, ctx) {
      const it = requests[Symbol.asyncIterator]();
      const first = await it.next();
      if (first.done) return;
      if (first.value.msg.case !== "register") {
        throw new RpcStatusError(status.FAILED_PRECONDITION, `the first message on AgentService.Connect must be register, got ${first.value.msg.case ?? "an empty message"}`);
      }
      const reg = first.value.msg.value;
      // Security: the node id and cluster are the certificate's; a Register claiming others is PERMISSION_DENIED.
      d.identity?.checkRegister(ctx.principal, reg.nodeId, reg.clusterId);
      const sessionId = randomUUID();
      const node = d.registry.registerNode({
        nodeId: reg.nodeId, clusterId: reg.clusterId, tier: tierFromPb(reg.tier, "register.tier", "edge"), labels: { ...reg.labels },
        deviceIds: reg.deviceIds, handlers: reg.handlers, distributable: reg.distributableHandlers, totalCpuMillis: reg.totalCpuMillis, totalMemoryBytes: Number(reg.totalMemoryBytes),
        freeCpuMillis: reg.freeCpuMillis, freeMemoryBytes: Number(reg.freeMemoryBytes), maxConcurrent: reg.maxConcurrentTasks,
        sessionId, address: ctx.peer,
      });
      const session = new AgentSession(node.id, sessionId);
      const log = d.log.child({ node: node.id, cluster: node.clusterId, session: sessionId });
      session.send({ type: "registered", heartbeatIntervalMs: d.config.heartbeatIntervalMs });
      // An agent that was told to drain before it reconnected stays out of placement.
      if (reg.draining) d.registry.drain(node.id);
      d.dispatcher.attach(session);
      d.dispatcher.reconcile(node, reg.running.map((r) => ({ taskId: r.taskId, attempt: r.attempt })));
      log.info({ handlers: reg.handlers, devices: reg.deviceIds, cpu: reg.totalCpuMillis, memory: Number(reg.totalMemoryBytes), slots: reg.maxConcurrentTasks, running: reg.running.length }, "node registered");

      let closeReason = "stream closed by agent";
      const onAbort = () => { closeReason = "stream cancelled"; session.close(); };
      ctx.signal.addEventListener("abort", onAbort, { once: true });
      // Security: a revoked node's stream closes at once; renewed certificates wait for the next outbound message.
      let revoked: string | undefined;
      const unwatchRevocation = d.identity?.onRevoked(node.id, (reason) => { revoked = closeReason = reason; session.close(); });
      const identityOut: ConnectResponse[] = [];
      const handle = (m: ConnectRequest) => {
        d.registry.touch(node.id, sessionId);
        switch (m.msg.case) {
          case "heartbeat": {
            const hb = m.msg.value;
            d.registry.heartbeat(node.id, sessionId, {
              freeCpuMillis: hb.freeCpuMillis, freeMemoryBytes: Number(hb.freeMemoryBytes), load: hb.load,
              runningTaskIds: new Set(hb.running.map((r) => reservationKey(r.taskId, r.attempt))),
              rttMs: hb.lastRtt ? durationToMillis(hb.lastRtt) : undefined,
              deviceIds: hb.deviceIdsChanged ? hb.deviceIds : undefined,
            });
            session.send({ type: "heartbeat-ack", sequence: hb.sequence });
            d.dispatcher.kick();
            break;
          }
          case "accepted":
            d.dispatcher.accepted(node.id, m.msg.value.taskId, m.msg.value.attempt);
            break;
          case "batch":
            for (const value of m.msg.value.accepted) handle(create(ConnectRequestSchema, { msg: { case: "accepted", value } }));
            for (const value of m.msg.value.results) handle(create(ConnectRequestSchema, { msg: { case: "result", value } }));
            break;
          case "result": {
            const r = m.msg.value;
            const outcome = outcomeFromPb(r.outcome);
            if (!outcome) {
              log.warn({ task: r.taskId, outcome: r.outcome }, "result without a valid outcome; treating as failed");
            }
            d.dispatcher.result(node.id, {
              taskId: r.taskId, attempt: r.attempt, outcome: outcome ?? "failed", output: valueToJson(r.output),
              error: outcome ? r.error : `agent sent outcome ${r.outcome}: ${r.error}`,
              processingMs: r.processingTime ? durationToMillis(r.processingTime) : 0, peakMemoryBytes: Number(r.peakMemoryBytes),
              startedAt: r.startedAt ? timestampMs(r.startedAt) : undefined, finishedAt: r.finishedAt ? timestampMs(r.finishedAt) : undefined,
              permanent: r.permanent,
            }, session);
            break;
          }
          case "register":
            log.warn("duplicate register on an open stream ignored");
            break;
          case "renewCertificate": {
            const renew = d.identity?.renew(ctx.principal, m.msg.value.csrPem);
            if (!renew) break;
            renew.then(
              (c) => identityOut.push(create(ConnectResponseSchema, { msg: { case: "certificate", value: { certificatePem: c.certificatePem, caPem: c.caPem, notAfter: timestampFromMs(c.notAfter) } } })),
              (err: unknown) => {
                log.warn({ err: (err as Error).message }, "certificate renewal refused");
                identityOut.push(create(ConnectResponseSchema, { msg: { case: "certificate", value: create(CertificateRenewedSchema, { error: (err as Error).message }) } }));
              },
            );
            break;
          }
          case undefined:
            break;
          default: {
            const never: never = m.msg;
            log.warn({ msg: never }, "unknown agent message");
          }
        }
      };

      const reader = (async () => {
        try {
          for (let r = await it.next(); !r.done; r = await it.next()) handle(r.value);
        } catch (err) {
          closeReason = `stream failed: ${(err as Error).message}`;
        } finally {
          session.close();
        }
      })();

      try {
        for await (const out of session.outbox) {
          // A heartbeat ack follows every heartbeat, so a renewed certificate goes out within one interval.
          while (identityOut.length > 0) yield identityOut.shift()!;
          yield toWire(out, node.id, sessionId);
        }
      } finally {
        ctx.signal.removeEventListener("abort", onAbort);
        unwatchRevocation?.();
        d.dispatcher.detach(session, closeReason);
        // A revoked node's attempts move now rather than after the disconnect window: its results are not wanted.
        if (revoked) d.dispatcher.nodeLost(node, `node ${node.id} revoked`);
        await Promise.race([reader, new Promise((r) => setTimeout(r, 100))]);
        log.info({ reason: closeReason }, "agent stream ended");
      }
      if (revoked) throw new UnauthenticatedError(`${revoked}; it cannot connect any more`);
    },
  };
}

function toWire(m: OutboundMessage, nodeId: string, sessionId: string): ConnectResponse {
  switch (m.type) {
    case "registered":
      return create(ConnectResponseSchema, { msg: { case: "registered", value: { sessionId, nodeId, heartbeatInterval: durationFromMillis(m.heartbeatIntervalMs) } } });
    case "dispatch": {
      const s = m.task.spec;
      return create(ConnectResponseSchema, {
        msg: {
          case: "dispatch",
          value: {
            taskId: m.task.id, attempt: m.attempt, handler: s.handler, input: jsonToValue(s.input), series: seriesToPb(s.series),
            memoryLimitBytes: BigInt(s.memoryBytes), cpuMillis: s.cpuMillis,
            deadline: s.deadline === undefined ? undefined : timestampFromMs(s.deadline), priority: priorityToPb(s.priority),
            shard: shardToPb(m.task.shard),
          },
        },
      });
    }
    case "cancel":
      return create(ConnectResponseSchema, { msg: { case: "cancel", value: { taskId: m.taskId, attempt: m.attempt, reason: m.reason } } });
    case "drain":
      return create(ConnectResponseSchema, { msg: { case: "drain", value: { grace: durationFromMillis(m.graceMs) } } });
    case "result-ack":
      return create(ConnectResponseSchema, { msg: { case: "resultAck", value: { taskId: m.taskId, attempt: m.attempt } } });
    case "heartbeat-ack":
      return create(ConnectResponseSchema, { msg: { case: "heartbeatAck", value: { sequence: m.sequence } } });
    default: {
      const never: never = m;
      throw new Error(`unknown outbound message ${JSON.stringify(never)}`);
    }
  }
}

