// AgentService.Connect: the one bidirectional stream per node agent. Checks the agent's identity (security/),
// decodes wire messages (convert.ts), hands them to the agent's link (dispatch/agent-link.ts), and encodes the
// session's outbox, one write per turn. Transport and identity only.
import { status } from "@grpc/grpc-js";
import type { AgentService } from "../../gen/edgeplane/v1/agent_pb.js";
import type { Timers } from "../../lib/clock.js";
import type { Logger } from "../../lib/log.js";
import { AgentLink } from "../dispatch/agent-link.js";
import type { Dispatcher } from "../dispatch/dispatcher.js";
import { UnauthenticatedError } from "../errors.js";
import type { NodeRegistry } from "../nodes/registry.js";
import type { NodeIdentities } from "../security/node-identity.js";
import { agentMessageFromPb, outboundToPb, registrationFromPb } from "./convert.js";
import { RpcStatusError } from "./errors.js";
import type { ServiceImpl } from "./grpc-adapter.js";

export interface AgentServiceDeps {
  registry: NodeRegistry;
  dispatcher: Dispatcher;
  timers: Timers;
  heartbeatIntervalMs: number;
  log: Logger;
  /** Node identities (security/): Register checked against the certificate, revocation, renewal. None with --insecure. */
  identity?: Pick<NodeIdentities, "checkRegister" | "onRevoked" | "renew">;
}

/** How long the end of a stream waits for its reader to finish handling what arrived. */
const READER_SETTLE_MS = 100;

export function agentServiceImpl(d: AgentServiceDeps): ServiceImpl<typeof AgentService.method> {
  return {
    async *connect(requests, ctx) {
      const it = requests[Symbol.asyncIterator]();
      const first = await it.next();
      if (first.done) return;
      if (first.value.msg.case !== "register") {
        throw new RpcStatusError(
          status.FAILED_PRECONDITION,
          `the first message on AgentService.Connect must be register, got ${first.value.msg.case ?? "an empty message"}`,
        );
      }
      const reg = first.value.msg.value;
      // The node id and cluster are the certificate's; a Register claiming others is PERMISSION_DENIED.
      d.identity?.checkRegister(ctx.principal, reg.nodeId, reg.clusterId);
      const link = new AgentLink(d, registrationFromPb(reg, "", ctx.peer));
      const session = link.session;

      let closeReason = "stream closed by agent";
      const onAbort = () => {
        closeReason = "stream cancelled";
        session.close();
      };
      ctx.signal.addEventListener("abort", onAbort, { once: true });
      // A revoked node's stream closes at once.
      let revoked: string | undefined;
      const unwatchRevocation = d.identity?.onRevoked(link.node.id, (reason) => {
        revoked = closeReason = reason;
        session.close();
      });
      const renew = (csrPem: string) => {
        const renewal = d.identity?.renew(ctx.principal, csrPem);
        renewal?.then(
          (c) => session.send({ type: "certificate", certificatePem: c.certificatePem, caPem: c.caPem, notAfter: c.notAfter, error: "" }),
          (err: unknown) => {
            link.log.warn({ err: (err as Error).message }, "certificate renewal refused");
            session.send({ type: "certificate", certificatePem: "", caPem: "", notAfter: 0, error: (err as Error).message });
          },
        );
      };
      const reader = (async () => {
        try {
          for (let r = await it.next(); !r.done; r = await it.next()) {
            if (r.value.msg.case === "renewCertificate") renew(r.value.msg.value.csrPem);
            else link.handle(agentMessageFromPb(r.value));
          }
        } catch (err) {
          closeReason = `stream failed: ${(err as Error).message}`;
        } finally {
          session.close();
        }
      })();

      try {
        for await (const batch of session.outbox) yield* outboundToPb(batch, link.node.id, session.sessionId);
      } finally {
        ctx.signal.removeEventListener("abort", onAbort);
        unwatchRevocation?.();
        link.close(closeReason);
        // A revoked node's attempts move now rather than after the disconnect window: its results are not wanted.
        if (revoked) d.dispatcher.nodeLost(link.node, `node ${link.node.id} revoked`);
        await Promise.race([reader, new Promise((r) => setTimeout(r, READER_SETTLE_MS))]);
      }
      if (revoked) throw new UnauthenticatedError(`${revoked}; it cannot connect any more`);
    },
  };
}
