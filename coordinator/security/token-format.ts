// The token string handed to agents and clients, K3s style: `EP1<ca-sha256>::<id>.<secret>`. The id is public (it
// names the token in lists and logs), the secret is stored only as its SHA-256. Pure: no I/O, no clock.
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

/** Version prefix of the token format. */
export const TOKEN_PREFIX = "EP1";

export interface ParsedToken {
  /** CA hash the token pins (lower-case hex); absent in the short form `<id>.<secret>`. */
  caSha256?: string;
  id: string;
  secret: string;
}

const FULL = /^EP1([0-9a-f]{64})::([a-z0-9]{8,32})\.([A-Za-z0-9_-]{16,128})$/;
const SHORT = /^([a-z0-9]{8,32})\.([A-Za-z0-9_-]{16,128})$/;

/** Reads a token in the full or the short form; undefined when it is neither (the caller says what is expected). */
export function parseToken(text: string): ParsedToken | undefined {
  const t = text.trim();
  const full = FULL.exec(t);
  if (full) return { caSha256: full[1], id: full[2], secret: full[3] };
  const short = SHORT.exec(t);
  if (short) return { id: short[1], secret: short[2] };
  return undefined;
}

/** The CA hash a token pins, or undefined when the text is not a full-form token. */
export function tokenCaHash(text: string): string | undefined {
  return parseToken(text)?.caSha256;
}

export function formatToken(caSha256: string, id: string, secret: string): string {
  return `${TOKEN_PREFIX}${caSha256}::${id}.${secret}`;
}

/** A new public token id: 10 characters of [a-z0-9]. */
export function newTokenId(): string {
  const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  return [...randomBytes(10)].map((b) => alphabet[b % alphabet.length]).join("");
}

/** A new secret: 256 random bits, base64url. */
export function newSecret(): string {
  return randomBytes(32).toString("base64url");
}

export function secretSha256(secret: string): Buffer {
  return createHash("sha256").update(secret, "utf8").digest();
}

/** Constant-time comparison of a presented secret with a stored hash. */
export function secretMatches(secret: string, storedSha256: Uint8Array): boolean {
  const h = secretSha256(secret);
  return h.length === storedSha256.length && timingSafeEqual(h, storedSha256);
}
