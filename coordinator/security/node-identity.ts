// Node (and client) certificates: enrolment with a token and a CSR, renewal over the agent stream, the principal a
// presented certificate stands for, the Register check, and node revocation (with the hook that closes a revoked
// node's stream). The identity in a certificate always comes from the token and the coordinator, never from the CSR.
import type { PeerCertificate } from "node:tls";
import { InvalidArgumentError, NotFoundError, PermissionDeniedError, UnauthenticatedError } from "../errors.js";
import { verifiedCsrKey, type CryptoKey } from "../../lib/pki.js";
import type { Logger } from "../../lib/log.js";
import type { AuthStore, IssuedCertificate, NodeIdentityRecord } from "./auth-store.js";
import type { CertificateAuthority } from "./ca.js";
import type { Principal } from "./principal.js";
import { ALL_CLUSTERS, ID_PATTERN, type TokenRegistry } from "./tokens.js";

/** The URI SAN of a node certificate. */
export function nodeUri(clusterId: string, nodeId: string): string {
  return `edgeplane://node/${encodeURIComponent(clusterId)}/${encodeURIComponent(nodeId)}`;
}

/** The URI SAN of a client certificate bound to an API token. */
export function tokenUri(tokenId: string): string {
  return `edgeplane://token/${encodeURIComponent(tokenId)}`;
}

/** Serial numbers compared the same way whoever printed them (case, leading zeros). */
export function normalSerial(s: string): string {
  return s.toLowerCase().replace(/^0+(?=.)/, "");
}

export interface Issued {
  certificatePem: string;
  caPem: string;
  notAfter: number;
  nodeId: string;
  clusterId: string;
}

export interface NodeIdentitiesOptions {
  /** Lifetime of node (and client) certificates, in ms. */
  certTtlMs: number;
  now: () => number;
  log: Logger;
}

export class NodeIdentities {
  private readonly revocationWatchers = new Map<string, Set<(reason: string) => void>>();

  constructor(
    private readonly store: AuthStore,
    private readonly ca: CertificateAuthority,
    private readonly tokens: TokenRegistry,
    private readonly o: NodeIdentitiesOptions,
  ) {
    const pruned = store.pruneCertificates(o.now());
    if (pruned > 0) o.log.info({ pruned }, "forgot expired client certificates");
  }

  /**
   * Issues a certificate for the CSR's key. A join token gives a node certificate for `nodeId` in the token's
   * cluster; an API token a client certificate acting as that token.
   */
  async enrol(p: Principal, req: { csrPem: string; nodeId: string; clusterId: string }): Promise<Issued> {
    const key = await this.csrKey(req.csrPem);
    const now = this.o.now();
    if (p.kind === "token") {
      if (p.via !== "bearer")
        throw new PermissionDeniedError("enrol with the API token itself (authorization: Bearer ...), not with a certificate issued for it");
      const cert = await this.ca.issueClient(key, { commonName: `token ${p.token.id}`, uri: tokenUri(p.token.id) }, this.ttlUntil(p.token.expiresAt));
      this.store.putCertificate({ serial: normalSerial(cert.serial), subject: { kind: "token", tokenId: p.token.id }, issuedAt: now, notAfter: cert.notAfter });
      this.o.log.info({ token: p.token.id, serial: cert.serial }, "issued a client certificate for an API token");
      return { certificatePem: cert.pem, caPem: this.ca.pem, notAfter: cert.notAfter, nodeId: "", clusterId: "" };
    }
    if (p.kind !== "join") throw new PermissionDeniedError("EnrolmentService/Enrol needs a join token (or an API token) as the bearer token");
    if (!req.nodeId) throw new InvalidArgumentError("node_id is required: the id this node enrols as");
    if (!ID_PATTERN.test(req.nodeId)) throw new InvalidArgumentError(`node_id "${req.nodeId}" is not a valid id (1-128 of A-Z a-z 0-9 . _ : @ / -)`);
    const tokenCluster = p.token.clusters[0];
    let clusterId = req.clusterId;
    if (tokenCluster === ALL_CLUSTERS) {
      if (!clusterId) throw new InvalidArgumentError(`cluster_id is required: join token ${p.token.id} is for any cluster ("*")`);
      if (!ID_PATTERN.test(clusterId)) throw new InvalidArgumentError(`cluster_id "${clusterId}" is not a valid id`);
    } else if (clusterId && clusterId !== tokenCluster) {
      throw new PermissionDeniedError(
        `join token ${p.token.id} enrols nodes of cluster ${tokenCluster}, not ${clusterId}; create a join token for ${clusterId} (edgeplane token create --cluster ${clusterId})`,
      );
    } else {
      clusterId = tokenCluster;
    }
    const existing = this.store.nodes.get(req.nodeId);
    if (existing?.revokedAt !== undefined) {
      throw new PermissionDeniedError(
        `node ${req.nodeId} was revoked at ${new Date(existing.revokedAt).toISOString()}; enrol this machine under a new node id (--node-id)`,
      );
    }
    if (existing && existing.clusterId !== clusterId) {
      throw new PermissionDeniedError(
        `node ${req.nodeId} is enrolled in cluster ${existing.clusterId}, not ${clusterId}; use another node id, or revoke it first (edgeplane node revoke ${req.nodeId})`,
      );
    }
    const cert = await this.ca.issueClient(key, { commonName: req.nodeId, organization: clusterId, uri: nodeUri(clusterId, req.nodeId) }, this.o.certTtlMs);
    const record: NodeIdentityRecord = {
      nodeId: req.nodeId,
      clusterId,
      tokenId: p.token.id,
      enrolledAt: now,
      renewedAt: undefined,
      revokedAt: undefined,
      serial: normalSerial(cert.serial),
      notAfter: cert.notAfter,
    };
    this.store.pruneCertificates(now);
    // A re-enrolment (lost key, expired certificate) retires the node's earlier certificates.
    this.store.putNode(
      record,
      { serial: record.serial, subject: { kind: "node", nodeId: req.nodeId, clusterId }, issuedAt: now, notAfter: cert.notAfter },
      true,
    );
    this.tokens.use(p.token);
    this.o.log.info(
      { node: req.nodeId, cluster: clusterId, token: p.token.id, serial: cert.serial, notAfter: new Date(cert.notAfter).toISOString() },
      existing ? "node re-enrolled" : "node enrolled",
    );
    return { certificatePem: cert.pem, caPem: this.ca.pem, notAfter: cert.notAfter, nodeId: req.nodeId, clusterId };
  }

  /** A new certificate for an enrolled node's fresh key (renewal over its stream). Earlier ones stay valid until they expire. */
  async renew(p: Principal, csrPem: string): Promise<Issued> {
    if (p.kind !== "node") throw new PermissionDeniedError("only an enrolled node renews its certificate over the agent stream");
    const key = await this.csrKey(csrPem);
    const rec = this.activeNode(p.nodeId);
    const now = this.o.now();
    const cert = await this.ca.issueClient(
      key,
      { commonName: rec.nodeId, organization: rec.clusterId, uri: nodeUri(rec.clusterId, rec.nodeId) },
      this.o.certTtlMs,
    );
    const next: NodeIdentityRecord = { ...rec, renewedAt: now, serial: normalSerial(cert.serial), notAfter: cert.notAfter };
    this.store.pruneCertificates(now);
    this.store.putNode(next, {
      serial: next.serial,
      subject: { kind: "node", nodeId: rec.nodeId, clusterId: rec.clusterId },
      issuedAt: now,
      notAfter: cert.notAfter,
    });
    this.o.log.info(
      { node: rec.nodeId, cluster: rec.clusterId, serial: cert.serial, notAfter: new Date(cert.notAfter).toISOString() },
      "node certificate renewed",
    );
    return { certificatePem: cert.pem, caPem: this.ca.pem, notAfter: cert.notAfter, nodeId: rec.nodeId, clusterId: rec.clusterId };
  }

  /**
   * The principal a client certificate stands for. TLS has already checked it chains to the CA and is in date;
   * here its serial must be one this coordinator issued, and its node or token still active.
   */
  principalFor(cert: PeerCertificate): Principal {
    const serial = normalSerial(cert.serialNumber ?? "");
    const issued: IssuedCertificate | undefined = this.store.certificates.get(serial);
    if (!issued)
      throw new UnauthenticatedError(
        `client certificate ${serial} is not one this coordinator issued (or it was replaced by a re-enrolment); enrol again with a join token`,
      );
    const sans = cert.subjectaltname ?? "";
    if (issued.subject.kind === "node") {
      const { nodeId, clusterId } = issued.subject;
      if (!sans.includes(`URI:${nodeUri(clusterId, nodeId)}`))
        throw new UnauthenticatedError(`client certificate ${serial} does not carry the identity it was issued for`);
      this.activeNode(nodeId);
      return { kind: "node", id: `node:${clusterId}/${nodeId}`, nodeId, clusterId, serial };
    }
    const token = this.tokens.get(issued.subject.tokenId);
    if (!token || !sans.includes(`URI:${tokenUri(token.id)}`)) throw new UnauthenticatedError(`client certificate ${serial} is bound to an unknown token`);
    this.tokens.assertActive(token);
    return { kind: "token", id: `token:${token.id}`, token, role: token.role ?? "viewer", clusters: scopeOf(token.clusters), via: "certificate" };
  }

  /** Refuses a Register that claims another node id or cluster than the certificate's. */
  checkRegister(p: Principal, nodeId: string, clusterId: string): void {
    if (p.kind === "insecure") return;
    if (p.kind !== "node") throw new PermissionDeniedError("AgentService/Connect needs a node certificate; enrol the agent with a join token (--join-token)");
    if (p.nodeId !== nodeId || p.clusterId !== clusterId) {
      throw new PermissionDeniedError(
        `this certificate is for node ${p.nodeId} in cluster ${p.clusterId}; Register claimed node ${nodeId || "(none)"} in cluster ${clusterId || "(none)"}`,
      );
    }
  }

  /** Calls `onRevoked` (once) when the node is revoked; returns the unsubscribe function. */
  onRevoked(nodeId: string, onRevoked: (reason: string) => void): () => void {
    let set = this.revocationWatchers.get(nodeId);
    if (!set) this.revocationWatchers.set(nodeId, (set = new Set()));
    set.add(onRevoked);
    return () => {
      set!.delete(onRevoked);
      if (set!.size === 0) this.revocationWatchers.delete(nodeId);
    };
  }

  /** Revokes a node: refused from now on, and its open streams are told to close. */
  revoke(nodeId: string): { node: NodeIdentityRecord; disconnected: boolean } {
    const rec = this.store.nodes.get(nodeId);
    if (!rec) throw new NotFoundError(`node ${nodeId} is not enrolled (edgeplane node identities lists enrolled nodes)`);
    const node = rec.revokedAt === undefined ? { ...rec, revokedAt: this.o.now() } : rec;
    if (node !== rec) this.store.putNode(node);
    const watchers = [...(this.revocationWatchers.get(nodeId) ?? [])];
    for (const w of watchers) w(`node ${nodeId} was revoked`);
    this.o.log.warn({ node: nodeId, cluster: rec.clusterId, disconnected: watchers.length > 0 }, "node revoked");
    return { node, disconnected: watchers.length > 0 };
  }

  list(): NodeIdentityRecord[] {
    return [...this.store.nodes.values()].sort((a, b) => a.clusterId.localeCompare(b.clusterId) || a.nodeId.localeCompare(b.nodeId));
  }

  private activeNode(nodeId: string): NodeIdentityRecord {
    const rec = this.store.nodes.get(nodeId);
    if (!rec) throw new UnauthenticatedError(`node ${nodeId} is not enrolled; enrol it with a join token`);
    if (rec.revokedAt !== undefined)
      throw new UnauthenticatedError(`node ${nodeId} was revoked at ${new Date(rec.revokedAt).toISOString()}; it cannot connect any more`);
    return rec;
  }

  private async csrKey(pem: string): Promise<CryptoKey> {
    if (!pem) throw new InvalidArgumentError("csr_pem is required: a PEM certificate signing request for the caller's own key");
    try {
      return await verifiedCsrKey(pem);
    } catch (err) {
      throw new InvalidArgumentError((err as Error).message);
    }
  }

  private ttlUntil(expiresAt: number | undefined): number {
    const left = expiresAt === undefined ? Infinity : expiresAt - this.o.now();
    return Math.max(1000, Math.min(this.o.certTtlMs, left));
  }
}

export function scopeOf(clusters: readonly string[]): "*" | ReadonlySet<string> {
  return clusters.length === 0 || clusters.includes(ALL_CLUSTERS) ? "*" : new Set(clusters);
}
