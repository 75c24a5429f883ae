// AgentService.Connect: the one bidirectional stream per node agent. Decodes wire messages (convert.ts), hands them
// to the agent's link (dispatch/agent-link.ts), and encodes the session's outbox, one write per turn. Transport only.
import { status } from "@grpc/grpc-js";
import type { AgentService } from "../../gen/edgeplane/v1/agent_pb.js";
import type { Timers } from "../../lib/clock.js";
import type { Logger } from "../../lib/log.js";
import { AgentLink } from "../dispatch/agent-link.js";
import type { Dispatcher } from "../dispatch/dispatcher.js";
import type { NodeRegistry } from "../nodes/registry.js";
import { agentMessageFromPb, outboundToPb, registrationFromPb } from "./convert.js";
import { RpcStatusError } from "./errors.js";
import type { ServiceImpl } from "./grpc-adapter.js";

export interface AgentServiceDeps {
  registry: NodeRegistry;
  dispatcher: Dispatcher;
  timers: Timers;
  heartbeatIntervalMs: number;
  log: Logger;
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
        throw new RpcStatusError(status.FAILED_PRECONDITION, `the first message on AgentService.Connect must be register, got ${first.value.msg.case ?? "an empty message"}`);
      }
      const link = new AgentLink(d, registrationFromPb(first.value.msg.value, "", ctx.peer));
      const session = link.session;

      let closeReason = "stream closed by agent";
      const onAbort = () => {
        closeReason = "stream cancelled";
        session.close();
      };
      ctx.signal.addEventListener("abort", onAbort, { once: true });
      const reader = (async () => {
        try {
          for (let r = await it.next(); !r.done; r = await it.next()) link.handle(agentMessageFromPb(r.value));
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
        link.close(closeReason);
        await Promise.race([reader, new Promise((r) => setTimeout(r, READER_SETTLE_MS))]);
      }
    },
  };
}
