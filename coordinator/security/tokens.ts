// Join and API tokens: creation (the secret returned once, only its hash kept), listing, revocation, and checking a
// presented token. Every refusal says why and what to do; none repeats the secret.
import { existsSync, readFileSync } from "node:fs";
import { InvalidArgumentError, NotFoundError, UnauthenticatedError } from "../errors.js";
import { writePrivateFile } from "../../lib/private-files.js";
import type { Logger } from "../../lib/log.js";
import type { AuthStore, QuotaLimits, TokenKind, TokenRecord } from "./auth-store.js";
import type { Role } from "./roles.js";
import { formatToken, newSecret, newTokenId, parseToken, secretMatches, secretSha256 } from "./token-format.js";

/** Ids of clusters and nodes, as the task validator accepts them. */
export const ID_PATTERN = /^[A-Za-z0-9._:@/-]{1,128}$/;
export const ALL_CLUSTERS = "*";

export interface CreateTokenInput {
  kind: TokenKind;
  role?: Role;
  /** Join: exactly one cluster or "*". API: clusters it may act on; empty for all. */
  clusters: string[];
  ttlMs?: number;
  maxUses?: number;
  description?: string;
  quota?: QuotaLimits;
  createdBy: string;
}

export class TokenRegistry {
  constructor(
    private readonly store: AuthStore,
    private readonly caSha256: string,
    private readonly now: () => number,
  ) {}

  /** Creates a token; returns its record and the whole token text (shown once, never stored). */
  create(i: CreateTokenInput): { token: TokenRecord; text: string } {
    const clusters = [...new Set(i.clusters.map((c) => c.trim()).filter(Boolean))];
    for (const c of clusters)
      if (c !== ALL_CLUSTERS && !ID_PATTERN.test(c))
        throw new InvalidArgumentError(`clusters: "${c}" is not a valid cluster id (1-128 of A-Z a-z 0-9 . _ : @ / -), or "*" for all`);
    if (i.kind === "join") {
      if (clusters.length !== 1)
        throw new InvalidArgumentError(
          `a join token is for exactly one cluster (or "*" for any, asked for explicitly); got ${clusters.length === 0 ? "none" : clusters.join(", ")}`,
        );
      if (i.role) throw new InvalidArgumentError("a join token has no role: it only enrols agents; leave the role out, or create an API token");
    } else {
      if (!i.role) throw new InvalidArgumentError("an API token needs a role: viewer, submitter, operator or admin");
      if (i.maxUses) throw new InvalidArgumentError("uses limits only join tokens (enrolments); an API token is limited by its ttl and quotas");
      if (clusters.includes(ALL_CLUSTERS) && clusters.length > 1) throw new InvalidArgumentError(`clusters: "*" (all) cannot be combined with named clusters`);
    }
    if (i.ttlMs !== undefined && !(i.ttlMs > 0)) throw new InvalidArgumentError(`ttl must be positive, got ${i.ttlMs} ms`);
    if (i.maxUses !== undefined && !(Number.isInteger(i.maxUses) && i.maxUses >= 0))
      throw new InvalidArgumentError(`uses must be a whole number >= 0, got ${i.maxUses}`);
    checkQuota(i.quota ?? {});
    let id = newTokenId();
    while (this.store.tokens.has(id)) id = newTokenId();
    const secret = newSecret();
    const now = this.now();
    const token: TokenRecord = {
      id,
      kind: i.kind,
      role: i.kind === "api" ? i.role : undefined,
      clusters: clusters.length === 0 ? [ALL_CLUSTERS] : clusters,
      secretSha256: secretSha256(secret),
      description: i.description ?? "",
      createdAt: now,
      createdBy: i.createdBy,
      expiresAt: i.ttlMs === undefined ? undefined : now + i.ttlMs,
      maxUses: i.maxUses ?? 0,
      uses: 0,
      revokedAt: undefined,
      quota: { ...i.quota },
    };
    this.store.putToken(token);
    return { token, text: formatToken(this.caSha256, id, secret) };
  }

  list(includeInactive: boolean): TokenRecord[] {
    return [...this.store.tokens.values()]
      .filter((t) => includeInactive || this.inactiveReason(t) === undefined)
      .sort((a, b) => a.createdAt - b.createdAt || a.id.localeCompare(b.id));
  }

  get(id: string): TokenRecord | undefined {
    return this.store.tokens.get(id);
  }

  revoke(id: string): TokenRecord {
    const t = this.store.tokens.get(id);
    if (!t) throw new NotFoundError(`token ${id} not found (edgeplane token list shows the ids)`);
    if (t.revokedAt !== undefined) return t;
    const revoked = { ...t, revokedAt: this.now() };
    this.store.putToken(revoked);
    return revoked;
  }

  /** Checks a presented token (full or short form); throws UnauthenticatedError saying what is wrong. */
  authenticate(text: string): TokenRecord {
    const parsed = parseToken(text);
    if (!parsed)
      throw new UnauthenticatedError(
        "the bearer token is not an edgeplane token (expected EP1<ca-sha256>::<id>.<secret>, as printed by edgeplane token create)",
      );
    if (parsed.caSha256 && parsed.caSha256 !== this.caSha256) {
      throw new UnauthenticatedError(
        `token ${parsed.id} was issued by a coordinator whose CA is ${parsed.caSha256}; this coordinator's CA is ${this.caSha256}`,
      );
    }
    const t = this.store.tokens.get(parsed.id);
    if (!t || !secretMatches(parsed.secret, t.secretSha256))
      throw new UnauthenticatedError(`unknown token ${parsed.id} (no token with this id and secret); create one with edgeplane token create`);
    this.assertActive(t);
    return t;
  }

  /** Throws UnauthenticatedError when a token can no longer be used (for certificates bound to a token too). */
  assertActive(t: TokenRecord): void {
    const why = this.inactiveReason(t);
    if (why) throw new UnauthenticatedError(`token ${t.id} ${why}; ask an admin for a new one (edgeplane token create)`);
  }

  /** Counts one enrolment against a join token's uses. */
  use(t: TokenRecord): void {
    const current = this.store.tokens.get(t.id) ?? t;
    this.store.putToken({ ...current, uses: current.uses + 1 });
  }

  /**
   * Makes sure an admin can get in: when no active admin token exists (first start, or all revoked), creates one
   * and writes it to `file` (mode 0600). Returns the token text when one was created or the file still holds a
   * valid one, so `edgeplane dev` can print it.
   */
  ensureAdmin(file: string, log: Logger, evenIfOthersExist = false): string | undefined {
    const active = this.list(false).filter((t) => t.kind === "api" && t.role === "admin");
    if (existsSync(file)) {
      const text = readFileSync(file, "utf8").trim();
      const parsed = parseToken(text);
      const t = parsed && this.store.tokens.get(parsed.id);
      if (t && parsed && secretMatches(parsed.secret, t.secretSha256) && this.inactiveReason(t) === undefined && parsed.caSha256 === this.caSha256) return text;
    }
    if (active.length > 0 && !evenIfOthersExist) return undefined;
    const { token, text } = this.create({
      kind: "api",
      role: "admin",
      clusters: [],
      description: "bootstrap admin (created at first start)",
      createdBy: "coordinator",
    });
    writePrivateFile(file, `${text}\n`);
    log.info({ token: token.id, file }, "no active admin token: created one and wrote it to the file (mode 0600)");
    return text;
  }

  private inactiveReason(t: TokenRecord): string | undefined {
    if (t.revokedAt !== undefined) return `was revoked at ${new Date(t.revokedAt).toISOString()}`;
    if (t.expiresAt !== undefined && t.expiresAt <= this.now()) return `expired at ${new Date(t.expiresAt).toISOString()}`;
    if (t.maxUses > 0 && t.uses >= t.maxUses) return `is used up (${t.uses} of ${t.maxUses} enrolments)`;
    return undefined;
  }
}

function checkQuota(q: QuotaLimits): void {
  for (const [k, v] of Object.entries(q)) {
    if (v !== undefined && !(typeof v === "number" && Number.isFinite(v) && v >= 0))
      throw new InvalidArgumentError(`quota.${k} must be a number >= 0 (0 = the coordinator's default), got ${String(v)}`);
  }
}
