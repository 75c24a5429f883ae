// The agent's one bidirectional stream to the coordinator: opens it, re-opens it after any loss with jittered
// exponential backoff (single-flight: one loop, one stream at a time), and resets the backoff once registered.
// Knows nothing about tasks: the agent (node-agent.ts) decides what to send and how to react to what arrives.
import { createClient, type Client, type Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { setTimeout as sleep } from "node:timers/promises";
import type { AgentService, ConnectRequest, ConnectResponse, Registered } from "../gen/edgeplane/v1/agent_pb.js";
import type { CertificateRenewed } from "../gen/edgeplane/v1/auth_pb.js";
import type { TransportCredentials } from "./identity/agent-identity.js";
import { AsyncQueue } from "../lib/async-queue.js";
import { agentStreamService, fromStream } from "./wire.js";
import { backoffDelay } from "../lib/backoff.js";
import type { Logger } from "../lib/log.js";

/** connecting → registered ⇄ (backoff → connecting) … → stopped. */
export type ConnectionState = "connecting" | "registered" | "backoff" | "stopped";

export interface ConnectionHandlers {
  /** The register message for a fresh stream: called on every (re)connect so it lists what still runs. */
  register(): ConnectRequest;
  onRegistered(r: Registered): void;
  /** Every other message, batches included, with a dispatch's series decoded (wire.ts). */
  onMessage(m: ConnectResponse): void;
  onClosed(reason: string): void;
  /** A renewed node certificate (agent/identity/ stores it for the next connection). */
  onCertificate?(c: CertificateRenewed): void;
}

export interface ConnectionOptions {
  /** Coordinator HOST:PORT. */
  address: string;
  /** First reconnect delay in ms (see AgentConfig.reconnectBaseMs). */
  reconnectBaseMs: number;
  /** Longest reconnect delay in ms (see AgentConfig.reconnectMaxMs). */
  reconnectMaxMs: number;
  /**
   * Credentials for each (re)connect (agent/identity/): TLS with the node's newest certificate. Default: plaintext
   * to `address`.
   */
  credentials?: () => Promise<TransportCredentials>;
}

/**
 * The transport every call from the agent to the coordinator uses (the stream and the drain call): the one place
 * that knows how to reach it, with the node's identity (TLS and its certificate) or plaintext for --insecure.
 */
export function createCoordinatorTransport(creds: TransportCredentials): Transport {
  return createGrpcTransport({ baseUrl: creds.baseUrl, nodeOptions: creds.nodeOptions });
}

export class Connection {
  private state: ConnectionState = "connecting";
  private outbox: AsyncQueue<ConnectRequest> | undefined;
  private readonly stopController = new AbortController();
  private loopDone: Promise<void> | undefined;
  private client: { for: TransportCredentials; client: Client<typeof AgentService> } | undefined;
  /** Consecutive failed connects; reset when a stream registers. */
  failures = 0;

  constructor(
    private readonly opts: ConnectionOptions,
    private readonly h: ConnectionHandlers,
    private readonly log: Logger,
  ) {}

  /** The stream's client, rebuilt when the credentials change (a renewed certificate takes effect at the next connect). */
  private async streamClient(): Promise<Client<typeof AgentService>> {
    const creds = this.opts.credentials ? await this.opts.credentials() : { baseUrl: `http://${this.opts.address}` };
    if (this.client?.for !== creds) {
      // The same AgentService, with a dispatch's series read in one copy (see wire.ts).
      this.client = { for: creds, client: createClient(agentStreamService, createCoordinatorTransport(creds)) };
    }
    return this.client.client;
  }

  get current(): ConnectionState {
    return this.state;
  }

  start(): void {
    this.loopDone ??= this.loop();
  }

  /** Sends on the open stream; false when there is none (the caller keeps the message for the next one). */
  send(m: ConnectRequest): boolean {
    if (this.state !== "registered" || !this.outbox || this.outbox.isClosed) return false;
    this.outbox.push(m);
    return true;
  }

  /** Half-closes the stream so the coordinator sees a clean end, then stops reconnecting. */
  async stop(): Promise<void> {
    if (this.state === "stopped") return;
    this.state = "stopped";
    this.outbox?.close();
    const done = this.loopDone ?? Promise.resolve();
    await Promise.race([done, sleep(2000)]);
    this.stopController.abort();
    await done;
  }

  private async loop(): Promise<void> {
    const stopSignal = this.stopController.signal;
    while (!this.stopped()) {
      this.state = "connecting";
      const outbox = new AsyncQueue<ConnectRequest>();
      this.outbox = outbox;
      outbox.push(this.h.register());
      let reason = "stream ended by coordinator";
      try {
        const client = await this.streamClient();
        for await (const res of client.connect(outbox, { signal: stopSignal })) {
          if (res.msg.case === "certificate") this.h.onCertificate?.(res.msg.value);
          else if (res.msg.case === "registered") {
            if (!this.stopped()) this.state = "registered";
            this.failures = 0;
            this.h.onRegistered(res.msg.value);
          } else this.h.onMessage(fromStream(res));
        }
      } catch (err) {
        reason = (err as Error).message;
      } finally {
        outbox.close();
        this.outbox = undefined;
      }
      if (this.stopped()) break;
      this.h.onClosed(reason);
      this.failures += 1;
      this.state = "backoff";
      const delay = backoffDelay(this.failures, { baseMs: this.opts.reconnectBaseMs, maxMs: this.opts.reconnectMaxMs });
      this.log.warn({ reason, failures: this.failures, retryInMs: delay }, "stream to coordinator lost; reconnecting");
      try {
        await sleep(delay, undefined, { signal: stopSignal });
      } catch {
        break;
      }
    }
    this.state = "stopped";
  }

  private stopped(): boolean {
    return this.state === "stopped";
  }
}
