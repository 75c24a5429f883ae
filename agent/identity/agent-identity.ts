// The agent's identity over its life: enrol when it has none (or its certificate expired), connect with mTLS from
// then on, and renew the certificate over the open stream at two thirds of its life (a fresh key each time).
// Lifecycle: unenrolled → enrolled ⇄ renewing (→ expired → enrolled again with a join token).
// Never sends the private key anywhere and never logs the join token.
import { create } from "@bufbuild/protobuf";
import { createPrivateKey, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import type { SecureClientSessionOptions } from "node:http2";
import { setTimeout as sleep } from "node:timers/promises";
import { ConnectRequestSchema, type ConnectRequest } from "../../gen/edgeplane/v1/agent_pb.js";
import type { CertificateRenewed } from "../../gen/edgeplane/v1/auth_pb.js";
import { backoffDelay } from "../../lib/backoff.js";
import type { Logger } from "../../lib/log.js";
import { certificateInfo, createCsr, generateKey, issuedBy, privateKeyToPem } from "../../lib/pki.js";
import { ensurePrivateDir } from "../../lib/private-files.js";
import { enrol, EnrolmentError } from "./enrol.js";
import { identityOf, IdentityFiles, type StoredIdentity } from "./identity-files.js";

export interface IdentityConfig {
  /** Coordinator HOST:PORT. */
  coordinator: string;
  nodeId: string;
  clusterId: string;
  dataDir: string;
  /** Join token to enrol with when the node has no valid certificate. */
  joinToken: string | undefined;
  /** The coordinator CA file to trust instead of pinning it from the token's hash. */
  caPem: string | undefined;
  /** Plaintext to a coordinator started with --insecure: no identity at all. */
  insecure: boolean;
}

/** The agent options identity needs (a subset of AgentConfig). */
export interface IdentitySource {
  coordinator: string;
  nodeId: string;
  clusterId: string;
  dataDir: string;
  joinToken: string | undefined;
  caCert: string | undefined;
  insecure: boolean;
}

function identityConfig(s: IdentitySource): IdentityConfig {
  let caPem: string | undefined;
  if (s.caCert) {
    try {
      caPem = readFileSync(s.caCert, "utf8");
    } catch (err) {
      throw new EnrolmentError(`cannot read --ca-cert ${s.caCert}: ${(err as Error).message}`);
    }
  }
  return {
    coordinator: s.coordinator,
    nodeId: s.nodeId,
    clusterId: s.clusterId,
    dataDir: s.dataDir,
    joinToken: s.joinToken?.trim() || undefined,
    caPem,
    insecure: s.insecure,
  };
}

/** What the agent's transports are built from: the base URL and the TLS options of the node's identity. */
export interface TransportCredentials {
  baseUrl: string;
  nodeOptions?: SecureClientSessionOptions;
}

/** Enrolment retries while the coordinator cannot be reached (it may start after the agent). */
const ENROL_BACKOFF = { baseMs: 250, maxMs: 10_000 };
/** A renewal request unanswered this long is sent again (with a new key); sooner for short-lived certificates. */
const RENEWAL_ANSWER_MS = 30_000;

export class AgentIdentity {
  private current: StoredIdentity | undefined;
  private credentials: TransportCredentials;
  private renewTimer: NodeJS.Timeout | undefined;
  private pendingKey: string | undefined;
  private send: ((m: ConnectRequest) => boolean) | undefined;
  private readonly stopped = new AbortController();

  private constructor(
    private readonly c: IdentityConfig,
    private readonly files: IdentityFiles,
    private readonly log: Logger,
  ) {
    this.credentials = { baseUrl: `http://${c.coordinator}` };
  }

  /**
   * Loads the node's identity, enrolling first when there is none or it expired. Retries while the coordinator
   * is unreachable; throws EnrolmentError (or a plain Error for bad files) when it cannot succeed.
   */
  static async prepare(config: IdentitySource, log: Logger): Promise<AgentIdentity> {
    const c = identityConfig(config);
    ensurePrivateDir(c.dataDir);
    const id = new AgentIdentity(c, new IdentityFiles(c.dataDir), log);
    if (c.insecure) return id;
    const stored = id.files.load();
    if (stored && (stored.nodeId !== c.nodeId || stored.clusterId !== c.clusterId)) {
      throw new EnrolmentError(
        `the identity in ${c.dataDir} is node ${stored.nodeId} of cluster ${stored.clusterId}, but this agent runs as node ${c.nodeId} of cluster ${c.clusterId}; start it with --node-id ${stored.nodeId} --cluster ${stored.clusterId}, or give it another --data-dir`,
      );
    }
    if (stored && stored.cert.notAfter.getTime() > Date.now()) id.use(stored);
    else await id.enrolUntilDone(stored ? `its certificate expired at ${stored.cert.notAfter.toISOString()}` : "it has no certificate yet");
    return id;
  }

  /** Serial and end of the certificate in use. */
  get certificate(): { serial: string; notAfter: Date } | undefined {
    return this.current && { serial: this.current.cert.serial, notAfter: this.current.cert.notAfter };
  }

  /**
   * Credentials for the next connection: the newest certificate, after re-enrolling if it expired while the node
   * was offline. The same object until the identity changes, so a transport built from it can be kept.
   */
  async transport(): Promise<TransportCredentials> {
    if (this.c.insecure) return this.credentials;
    if (this.current && this.current.cert.notAfter.getTime() <= Date.now()) {
      await this.enrolOnce(`its certificate expired at ${this.current.cert.notAfter.toISOString()}`);
    }
    return this.credentials;
  }

  /** Current credentials without re-enrolling (for one-off calls such as draining itself). */
  get currentCredentials(): TransportCredentials {
    return this.credentials;
  }

  /** Starts renewing over the stream: `send` puts a message on it and returns false when there is none. */
  startRenewal(send: (m: ConnectRequest) => boolean): void {
    if (this.c.insecure) return;
    this.send = send;
    this.schedule();
  }

  /** The coordinator's answer to a renewal: store the new certificate with the key it certifies. */
  onCertificate(r: CertificateRenewed): void {
    const keyPem = this.pendingKey;
    this.pendingKey = undefined;
    if (!keyPem) return;
    if (r.error) {
      this.log.warn({ reason: r.error }, "the coordinator refused to renew this node's certificate; trying again later");
      return this.schedule(this.retryMs());
    }
    try {
      const info = certificateInfo(r.certificatePem);
      const id = identityOf(info);
      if (!id || id.nodeId !== this.c.nodeId || id.clusterId !== this.c.clusterId)
        throw new Error(`it is for ${id ? `node ${id.nodeId} of cluster ${id.clusterId}` : "no node"}`);
      const caPem = this.current!.caPem;
      if (!issuedBy(r.certificatePem, caPem)) throw new Error("it was not issued by the CA this node trusts");
      if (!new X509Certificate(r.certificatePem).checkPrivateKey(createPrivateKey(keyPem)))
        throw new Error("it certifies another key than the one this node asked for");
      this.files.save(keyPem, r.certificatePem, caPem);
      const stored = this.files.load()!;
      this.use(stored);
      this.log.info({ serial: info.serial, notAfter: info.notAfter.toISOString() }, "node certificate renewed");
      this.schedule();
    } catch (err) {
      this.log.error({ err: (err as Error).message }, "renewed certificate not usable; keeping the current one");
      this.schedule(this.retryMs());
    }
  }

  stop(): void {
    this.stopped.abort();
    if (this.renewTimer) clearTimeout(this.renewTimer);
  }

  private use(stored: StoredIdentity): void {
    this.current = stored;
    this.credentials = {
      baseUrl: `https://${this.c.coordinator}`,
      nodeOptions: { ca: stored.caPem, cert: stored.certPem, key: stored.keyPem, minVersion: "TLSv1.2" },
    };
  }

  private async enrolOnce(why: string): Promise<void> {
    if (!this.c.joinToken) {
      throw new EnrolmentError(
        `node ${this.c.nodeId} must enrol (${why}): start it with a join token (--join-token, --join-token-file or EDGEPLANE_JOIN_TOKEN; create one with edgeplane token create --cluster ${this.c.clusterId})`,
      );
    }
    this.log.info({ coordinator: this.c.coordinator, reason: why }, "enrolling with the coordinator");
    const e = await enrol({
      coordinator: this.c.coordinator,
      joinToken: this.c.joinToken,
      nodeId: this.c.nodeId,
      clusterId: this.c.clusterId,
      caPem: this.c.caPem,
    });
    this.files.save(e.keyPem, e.certPem, e.caPem);
    const stored = this.files.load()!;
    this.use(stored);
    this.log.info({ serial: stored.cert.serial, notAfter: stored.cert.notAfter.toISOString(), dir: this.c.dataDir }, "enrolled: node certificate stored");
  }

  private async enrolUntilDone(why: string): Promise<void> {
    for (let failures = 1; ; failures++) {
      try {
        return await this.enrolOnce(why);
      } catch (err) {
        if (err instanceof EnrolmentError || this.stopped.signal.aborted) throw err;
        const delay = backoffDelay(failures, ENROL_BACKOFF);
        this.log.warn({ err: (err as Error).message, retryInMs: delay }, "cannot enrol yet; retrying");
        await sleep(delay, undefined, { signal: this.stopped.signal });
      }
    }
  }

  /** At two thirds of the certificate's life (or after `inMs`), ask for a new one over the stream. */
  private schedule(inMs?: number): void {
    if (this.renewTimer) clearTimeout(this.renewTimer);
    if (!this.current || this.stopped.signal.aborted) return;
    const { notBefore, notAfter } = this.current.cert;
    const due = inMs !== undefined ? Date.now() + inMs : notBefore.getTime() + ((notAfter.getTime() - notBefore.getTime()) * 2) / 3;
    this.renewTimer = setTimeout(() => void this.requestRenewal(), Math.min(2 ** 31 - 1, Math.max(0, due - Date.now())));
    this.renewTimer.unref();
  }

  private async requestRenewal(): Promise<void> {
    if (!this.send || this.stopped.signal.aborted) return;
    const key = await generateKey();
    const csrPem = await createCsr(key, this.c.nodeId);
    const keyPem = await privateKeyToPem(key.privateKey);
    const sent = this.send(create(ConnectRequestSchema, { msg: { case: "renewCertificate", value: { csrPem } } }));
    if (!sent) return this.schedule(Math.min(this.retryMs(), 2000)); // not connected right now
    this.pendingKey = keyPem;
    this.log.info(
      { serial: this.current?.cert.serial, notAfter: this.current?.cert.notAfter.toISOString() },
      "asking the coordinator to renew this node's certificate",
    );
    this.schedule(Math.min(RENEWAL_ANSWER_MS, 3 * this.retryMs()));
  }

  /** Retry interval after a refused renewal: a tenth of the certificate's life, between 1 s and 1 min. */
  private retryMs(): number {
    const life = this.current ? this.current.cert.notAfter.getTime() - this.current.cert.notBefore.getTime() : 60_000;
    return Math.min(60_000, Math.max(1000, life / 10));
  }
}
