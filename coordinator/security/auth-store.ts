// Durable security state in `<data-dir>/auth.db` (its own SQLite file, apart from the task database): tokens (secret
// hashes only), enrolled node identities with revocations, and the serials of every client certificate issued.
// Everything is read into memory at open; each change is one synchronous, fsynced transaction (they are rare).
// Never stores a token secret or a private key.
import { join } from "node:path";
import Database from "better-sqlite3";
import { restrictFile } from "../../lib/private-files.js";
import type { Role } from "./roles.js";

export const AUTH_DB_FILE = "auth.db";

/** Per-token limits; undefined means the coordinator's default. */
export interface QuotaLimits {
  maxActiveTasks?: number;
  submitRate?: number;
  submitBurst?: number;
  maxInputBytes?: number;
}

export type TokenKind = "join" | "api";

export interface TokenRecord {
  id: string;
  kind: TokenKind;
  /** API tokens only. */
  role: Role | undefined;
  /** Clusters the token is limited to; ["*"] for all. */
  clusters: string[];
  secretSha256: Buffer;
  description: string;
  createdAt: number;
  createdBy: string;
  /** Epoch ms; undefined: never expires. */
  expiresAt: number | undefined;
  /** 0: unlimited. */
  maxUses: number;
  uses: number;
  revokedAt: number | undefined;
  quota: QuotaLimits;
}

export interface NodeIdentityRecord {
  nodeId: string;
  clusterId: string;
  /** Join token it enrolled with (the latest enrolment). */
  tokenId: string;
  enrolledAt: number;
  renewedAt: number | undefined;
  revokedAt: number | undefined;
  /** Newest certificate. */
  serial: string;
  notAfter: number;
}

/** A client certificate the CA issued: a presented certificate is accepted only if its serial is here. */
export interface IssuedCertificate {
  serial: string;
  subject: { kind: "node"; nodeId: string; clusterId: string } | { kind: "token"; tokenId: string };
  issuedAt: number;
  notAfter: number;
}

const SCHEMA_VERSION = 1;
const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE tokens (
    id            TEXT PRIMARY KEY,
    kind          TEXT NOT NULL CHECK (kind IN ('join', 'api')),
    role          TEXT,
    clusters      TEXT NOT NULL,            -- JSON array; ["*"] for all
    secret_sha256 BLOB NOT NULL,
    description   TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    created_by    TEXT NOT NULL,
    expires_at    INTEGER,
    max_uses      INTEGER NOT NULL,
    uses          INTEGER NOT NULL,
    revoked_at    INTEGER,
    quota         TEXT NOT NULL             -- JSON QuotaLimits
  ) WITHOUT ROWID;
  CREATE TABLE nodes (
    node_id     TEXT PRIMARY KEY,
    cluster_id  TEXT NOT NULL,
    token_id    TEXT NOT NULL,
    enrolled_at INTEGER NOT NULL,
    renewed_at  INTEGER,
    revoked_at  INTEGER,
    serial      TEXT NOT NULL,
    not_after   INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE TABLE certificates (
    serial       TEXT PRIMARY KEY,
    subject_kind TEXT NOT NULL CHECK (subject_kind IN ('node', 'token')),
    subject_id   TEXT NOT NULL,
    cluster_id   TEXT NOT NULL,
    issued_at    INTEGER NOT NULL,
    not_after    INTEGER NOT NULL
  ) WITHOUT ROWID;
  `,
];

interface TokenRow {
  id: string;
  kind: TokenKind;
  role: string | null;
  clusters: string;
  secret_sha256: Buffer;
  description: string;
  created_at: number;
  created_by: string;
  expires_at: number | null;
  max_uses: number;
  uses: number;
  revoked_at: number | null;
  quota: string;
}
interface NodeRow {
  node_id: string;
  cluster_id: string;
  token_id: string;
  enrolled_at: number;
  renewed_at: number | null;
  revoked_at: number | null;
  serial: string;
  not_after: number;
}
interface CertRow {
  serial: string;
  subject_kind: "node" | "token";
  subject_id: string;
  cluster_id: string;
  issued_at: number;
  not_after: number;
}

export class AuthStore {
  readonly tokens = new Map<string, TokenRecord>();
  readonly nodes = new Map<string, NodeIdentityRecord>();
  readonly certificates = new Map<string, IssuedCertificate>();
  private readonly stmts;

  private constructor(
    private readonly db: Database.Database,
    readonly path: string,
  ) {
    this.stmts = {
      putToken: db.prepare(
        `INSERT OR REPLACE INTO tokens VALUES (@id, @kind, @role, @clusters, @secret_sha256, @description, @created_at, @created_by, @expires_at, @max_uses, @uses, @revoked_at, @quota)`,
      ),
      putNode: db.prepare(
        `INSERT OR REPLACE INTO nodes VALUES (@node_id, @cluster_id, @token_id, @enrolled_at, @renewed_at, @revoked_at, @serial, @not_after)`,
      ),
      putCert: db.prepare(`INSERT OR REPLACE INTO certificates VALUES (@serial, @subject_kind, @subject_id, @cluster_id, @issued_at, @not_after)`),
      dropCert: db.prepare(`DELETE FROM certificates WHERE serial = ?`),
    };
    for (const r of db.prepare("SELECT * FROM tokens").all() as TokenRow[]) this.tokens.set(r.id, tokenFromRow(r));
    for (const r of db.prepare("SELECT * FROM nodes").all() as NodeRow[]) this.nodes.set(r.node_id, nodeFromRow(r));
    for (const r of db.prepare("SELECT * FROM certificates").all() as CertRow[]) this.certificates.set(r.serial, certFromRow(r));
  }

  /**
   * Opens (creating) `<dataDir>/auth.db`, or an in-memory database for ":memory:". The file is held in exclusive
   * locking mode: a second coordinator on the same data directory is refused instead of sharing tokens.
   */
  static open(dataDir: string | ":memory:"): AuthStore {
    const path = dataDir === ":memory:" ? ":memory:" : join(dataDir, AUTH_DB_FILE);
    let db: Database.Database;
    try {
      db = new Database(path, { timeout: 0 });
      db.pragma("locking_mode = EXCLUSIVE");
      db.pragma("journal_mode = WAL");
      db.pragma("synchronous = FULL");
      // Take the lock now, not at the first write.
      db.exec("BEGIN EXCLUSIVE; COMMIT;");
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === "SQLITE_BUSY")
        throw new Error(`${path} is in use by another edgeplane coordinator; stop it, or give this coordinator its own --data-dir`, { cause: err });
      throw new Error(`cannot open ${path}: ${(err as Error).message}; check the file's permissions`, { cause: err });
    }
    if (path !== ":memory:") for (const f of [path, `${path}-wal`, `${path}-journal`]) restrictFile(f);
    const version = db.pragma("user_version", { simple: true }) as number;
    if (version > SCHEMA_VERSION) {
      db.close();
      throw new Error(
        `${path} has schema version ${version}, but this edgeplane knows versions up to ${SCHEMA_VERSION}: run that version (or newer) on this data directory`,
      );
    }
    db.transaction(() => {
      for (let v = version; v < SCHEMA_VERSION; v++) db.exec(MIGRATIONS[v]);
      if (version !== SCHEMA_VERSION) db.pragma(`user_version = ${SCHEMA_VERSION}`);
    })();
    return new AuthStore(db, path);
  }

  putToken(t: TokenRecord): void {
    this.stmts.putToken.run({
      id: t.id,
      kind: t.kind,
      role: t.role ?? null,
      clusters: JSON.stringify(t.clusters),
      secret_sha256: t.secretSha256,
      description: t.description,
      created_at: t.createdAt,
      created_by: t.createdBy,
      expires_at: t.expiresAt ?? null,
      max_uses: t.maxUses,
      uses: t.uses,
      revoked_at: t.revokedAt ?? null,
      quota: JSON.stringify(t.quota),
    });
    this.tokens.set(t.id, t);
  }

  /**
   * Records a node's enrolment or renewal and the certificate issued, in one transaction; `retirePrevious` drops the
   * node's earlier certificates (a re-enrolment: the old key may be lost or stolen).
   */
  putNode(n: NodeIdentityRecord, cert?: IssuedCertificate, retirePrevious = false): void {
    const retired = retirePrevious
      ? [...this.certificates.values()].filter((c) => c.subject.kind === "node" && c.subject.nodeId === n.nodeId).map((c) => c.serial)
      : [];
    this.db.transaction(() => {
      for (const s of retired) this.stmts.dropCert.run(s);
      this.stmts.putNode.run({
        node_id: n.nodeId,
        cluster_id: n.clusterId,
        token_id: n.tokenId,
        enrolled_at: n.enrolledAt,
        renewed_at: n.renewedAt ?? null,
        revoked_at: n.revokedAt ?? null,
        serial: n.serial,
        not_after: n.notAfter,
      });
      if (cert) this.insertCert(cert);
    })();
    this.nodes.set(n.nodeId, n);
    for (const s of retired) this.certificates.delete(s);
    if (cert) this.certificates.set(cert.serial, cert);
  }

  putCertificate(c: IssuedCertificate): void {
    this.insertCert(c);
    this.certificates.set(c.serial, c);
  }

  /** Forgets certificates that expired before `before` (TLS refuses them anyway). */
  pruneCertificates(before: number): number {
    const old = [...this.certificates.values()].filter((c) => c.notAfter < before);
    if (old.length === 0) return 0;
    this.db.transaction(() => {
      for (const c of old) this.stmts.dropCert.run(c.serial);
    })();
    for (const c of old) this.certificates.delete(c.serial);
    return old.length;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  private insertCert(c: IssuedCertificate): void {
    this.stmts.putCert.run({
      serial: c.serial,
      subject_kind: c.subject.kind,
      subject_id: c.subject.kind === "node" ? c.subject.nodeId : c.subject.tokenId,
      cluster_id: c.subject.kind === "node" ? c.subject.clusterId : "",
      issued_at: c.issuedAt,
      not_after: c.notAfter,
    });
  }
}

function tokenFromRow(r: TokenRow): TokenRecord {
  return {
    id: r.id,
    kind: r.kind,
    role: (r.role ?? undefined) as Role | undefined,
    clusters: JSON.parse(r.clusters) as string[],
    secretSha256: Buffer.from(r.secret_sha256),
    description: r.description,
    createdAt: r.created_at,
    createdBy: r.created_by,
    expiresAt: r.expires_at ?? undefined,
    maxUses: r.max_uses,
    uses: r.uses,
    revokedAt: r.revoked_at ?? undefined,
    quota: JSON.parse(r.quota) as QuotaLimits,
  };
}

function nodeFromRow(r: NodeRow): NodeIdentityRecord {
  return {
    nodeId: r.node_id,
    clusterId: r.cluster_id,
    tokenId: r.token_id,
    enrolledAt: r.enrolled_at,
    renewedAt: r.renewed_at ?? undefined,
    revokedAt: r.revoked_at ?? undefined,
    serial: r.serial,
    notAfter: r.not_after,
  };
}

function certFromRow(r: CertRow): IssuedCertificate {
  return {
    serial: r.serial,
    subject: r.subject_kind === "node" ? { kind: "node", nodeId: r.subject_id, clusterId: r.cluster_id } : { kind: "token", tokenId: r.subject_id },
    issuedAt: r.issued_at,
    notAfter: r.not_after,
  };
}
