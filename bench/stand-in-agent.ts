// A stand-in for an idle node agent, for memory measurements: one AgentService.Connect stream on a connection of its
// own, registering the way agent/main.ts does and heartbeating on the interval the coordinator asks for (one
// heartbeat outstanding at a time). Runs no tasks: a dispatch to it is a finding, reported and never accepted.
import { availableParallelism, freemem, totalmem } from "node:os";
import { create } from "@bufbuild/protobuf";
import { durationMs } from "@bufbuild/protobuf/wkt";
import { ConnectRequestSchema, type ConnectRequest } from "../gen/edgeplane/v1/agent_pb.js";
import { Tier } from "../gen/edgeplane/v1/types_pb.js";
import { builtinHandlers } from "../lib/analytics/index.js";
import { AsyncQueue } from "../lib/async-queue.js";
import type { BenchFleet } from "./fleet.js";
import { errorText } from "./tasks.js";

/** connecting → registered → closed (or failed). */
export type StandInState = "connecting" | "registered" | "closed" | "failed";

export interface StandInPlan {
  nodeId: string;
  clusterId: string;
  deviceIds: string[];
}

export class StandInAgent {
  state: StandInState = "connecting";
  /** Why it failed, or a finding (a dispatch sent to it). */
  problem: string | undefined;
  heartbeats = 0;
  private readonly outbox = new AsyncQueue<ConnectRequest>();
  private readonly stop = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private outstanding = false;
  private sequence = 0n;
  private readonly done: Promise<void>;
  private onRegistered: (() => void) | undefined;
  /** Resolves once registered; rejects if the stream fails first. */
  readonly registered: Promise<void>;

  constructor(
    fleet: BenchFleet,
    private readonly plan: StandInPlan,
  ) {
    let fail: (err: Error) => void = () => {};
    this.registered = new Promise<void>((res, rej) => {
      this.onRegistered = res;
      fail = rej;
    });
    this.registered.catch(() => {}); // observed through `state`/`problem` too
    const handlers = [...builtinHandlers.keys()];
    // What agent/main.ts sends at registration, with this machine's figures (no real capacity sampler: it is idle).
    this.outbox.push(
      create(ConnectRequestSchema, {
        msg: {
          case: "register",
          value: {
            nodeId: plan.nodeId,
            clusterId: plan.clusterId,
            tier: Tier.EDGE,
            labels: {},
            deviceIds: plan.deviceIds,
            totalCpuMillis: availableParallelism() * 1000,
            totalMemoryBytes: BigInt(totalmem()),
            freeCpuMillis: availableParallelism() * 1000,
            freeMemoryBytes: BigInt(freemem()),
            handlers,
            distributableHandlers: handlers,
            running: [],
            maxConcurrentTasks: 1,
            agentVersion: "bench-stand-in",
            draining: false,
          },
        },
      }),
    );
    this.done = (async () => {
      try {
        const client = await fleet.agentServiceClient(plan.nodeId, plan.clusterId);
        for await (const res of client.connect(this.outbox, { signal: this.stop.signal })) {
          switch (res.msg.case) {
            case "registered": {
              this.state = "registered";
              const every = res.msg.value.heartbeatInterval ? durationMs(res.msg.value.heartbeatInterval) : 1000;
              this.timer = setInterval(() => this.heartbeat(), Math.max(10, every));
              this.onRegistered?.();
              break;
            }
            case "heartbeatAck":
              this.outstanding = false;
              break;
            case "dispatch":
            case "batch":
              this.problem ??= `${plan.nodeId} (a stand-in that runs nothing) was sent a ${res.msg.case}`;
              break;
            case "cancel":
            case "drain":
            case "certificate":
            case "resultAck":
            case undefined:
              break;
            default: {
              const never: never = res.msg;
              this.problem ??= `unknown message ${JSON.stringify(never)}`;
            }
          }
        }
        if (this.state !== "closed") {
          this.state = "failed";
          this.problem ??= `${plan.nodeId}: the coordinator ended the stream`;
        }
      } catch (err) {
        if (this.state !== "closed") {
          this.state = "failed";
          this.problem ??= `${plan.nodeId}: ${errorText(err)}`;
        }
      } finally {
        if (this.timer) clearInterval(this.timer);
        fail(new Error(this.problem ?? `${plan.nodeId}: stream closed before registration`));
      }
    })();
  }

  /** Like the agent: at most one heartbeat unacknowledged; a tick while one is out is skipped. */
  private heartbeat(): void {
    if (this.state !== "registered" || this.outstanding || this.outbox.isClosed) return;
    this.outstanding = true;
    this.sequence += 1n;
    this.heartbeats++;
    this.outbox.push(
      create(ConnectRequestSchema, {
        msg: {
          case: "heartbeat",
          value: { sequence: this.sequence, freeCpuMillis: availableParallelism() * 1000, freeMemoryBytes: BigInt(freemem()), load: 0, running: [] },
        },
      }),
    );
  }

  /** Half-closes the stream (a clean leave), then cancels it if the coordinator has not ended it within 2 s. */
  async close(): Promise<void> {
    if (this.state !== "failed") this.state = "closed";
    if (this.timer) clearInterval(this.timer);
    this.outbox.close();
    const t = setTimeout(() => this.stop.abort(), 2_000);
    await this.done;
    clearTimeout(t);
  }
}
