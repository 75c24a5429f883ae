// The coordinator's certificate authority: created on first start in the data directory (or given as files), it
// issues the serving certificate and the client certificates of enrolled nodes. Its key never leaves this module
// and is never logged; a key file others can read stops start-up.
import { createPrivateKey, X509Certificate } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { hostname } from "node:os";
import {
  certificateSha256,
  createCaCertificate,
  generateKey,
  issueCertificate,
  privateKeyToPem,
  signingKeyFromPem,
  type CryptoKey,
  type SanEntry,
  type SigningKey,
} from "../../lib/pki.js";
import { assertPrivateKeyFile, ensurePrivateDir, InsecureFileError, writePrivateFile } from "../../lib/private-files.js";
import type { Logger } from "../../lib/log.js";

/** File names of the CA created in the data directory. */
export const CA_CERT_FILE = "ca.crt";
export const CA_KEY_FILE = "ca.key";

/** Lifetime of a CA created on first start: ten years (a new CA means re-enrolling every node). */
const CA_LIFETIME_MS = 10 * 365 * 86_400_000;
/** Leaf certificates start a little in the past so a node whose clock is slightly behind accepts them. */
const MAX_BACKDATE_MS = 60_000;

export interface CaSource {
  dataDir: string;
  /** An operator's CA certificate file; with caKey, used instead of the data directory's. */
  caCert?: string;
  caKey?: string;
  now: () => number;
  log: Logger;
}

/** What the CA certifies in a client certificate. */
export interface ClientIdentity {
  commonName: string;
  organization?: string;
  /** The URI SAN the coordinator reads the identity back from, e.g. `edgeplane://node/site-a/n1`. */
  uri: string;
}

export class CertificateAuthority {
  /** Lower-case hex SHA-256 of the CA certificate's DER: what join tokens pin. */
  readonly sha256: string;

  private constructor(
    readonly pem: string,
    private readonly key: SigningKey,
    readonly certPath: string,
    private readonly now: () => number,
  ) {
    this.sha256 = certificateSha256(pem);
  }

  /** Loads the CA (given files, or the data directory's), creating it in the data directory on first start. */
  static async open(s: CaSource): Promise<CertificateAuthority> {
    if (s.caCert || s.caKey) {
      if (!s.caCert || !s.caKey) throw new Error("give both --ca-cert and --ca-key (the CA certificate and its private key), or neither");
      return CertificateAuthority.load(s.caCert, s.caKey, s.now);
    }
    ensurePrivateDir(s.dataDir);
    const certPath = join(s.dataDir, CA_CERT_FILE);
    const keyPath = join(s.dataDir, CA_KEY_FILE);
    const haveCert = existsSync(certPath);
    const haveKey = existsSync(keyPath);
    if (haveCert && haveKey) return CertificateAuthority.load(certPath, keyPath, s.now);
    if (haveCert !== haveKey) {
      // Never replace half a CA: nodes enrolled with it would all be locked out.
      throw new Error(
        `${haveCert ? keyPath : certPath} is missing but ${haveCert ? certPath : keyPath} exists; restore it, or remove both to create a new CA (every node must then re-enrol)`,
      );
    }
    const key = await generateKey();
    const now = s.now();
    const pem = await createCaCertificate(key, {
      commonName: `edgeplane CA ${hostname()} ${new Date(now).toISOString().slice(0, 10)}`,
      notBefore: new Date(now - MAX_BACKDATE_MS),
      notAfter: new Date(now + CA_LIFETIME_MS),
    });
    writePrivateFile(keyPath, await privateKeyToPem(key.privateKey));
    writeFileSync(certPath, pem, { mode: 0o644 });
    const ca = new CertificateAuthority(pem, key, certPath, s.now);
    s.log.info({ cert: certPath, sha256: ca.sha256 }, "created the coordinator CA");
    return ca;
  }

  private static async load(certPath: string, keyPath: string, now: () => number): Promise<CertificateAuthority> {
    assertPrivateKeyFile(keyPath, "CA private key");
    let pem: string;
    let keyPem: string;
    try {
      pem = readFileSync(certPath, "utf8");
      keyPem = readFileSync(keyPath, "utf8");
    } catch (err) {
      throw new InsecureFileError(`cannot read the CA: ${(err as Error).message}`);
    }
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(pem);
    } catch (err) {
      throw new Error(`${certPath} is not a PEM certificate: ${(err as Error).message}`, { cause: err });
    }
    if (!cert.ca) throw new Error(`${certPath} is not a CA certificate (its basic constraints do not allow signing certificates)`);
    if (!cert.checkPrivateKey(createPrivateKey(keyPem))) throw new Error(`${keyPath} is not the private key of ${certPath}`);
    if (Date.parse(cert.validTo) <= now()) throw new Error(`the CA certificate ${certPath} expired at ${new Date(cert.validTo).toISOString()}`);
    const key = await signingKeyFromPem(keyPem, keyPath);
    // Only the first certificate of a bundle is the CA we sign with.
    const first = `${cert.toString().trim()}\n`;
    return new CertificateAuthority(first, key, certPath, now);
  }

  /** When the CA itself expires (epoch ms). */
  get notAfter(): number {
    return Date.parse(new X509Certificate(this.pem).validTo);
  }

  /** A fresh key and a serving certificate for these names, valid for ttlMs. */
  async issueServing(names: SanEntry[], ttlMs: number): Promise<{ certPem: string; keyPem: string; notBefore: number; notAfter: number; serial: string }> {
    const key = await generateKey();
    const { notBefore, notAfter } = this.validity(ttlMs);
    const cn = names.find((n) => n.type === "dns")?.value ?? names[0]?.value ?? "edgeplane";
    const issued = await issueCertificate({
      caPem: this.pem,
      caKey: this.key,
      publicKey: key.publicKey,
      commonName: cn,
      sans: names,
      usage: "server",
      notBefore: new Date(notBefore),
      notAfter: new Date(notAfter),
    });
    return { certPem: issued.pem, keyPem: await privateKeyToPem(key.privateKey), notBefore, notAfter: issued.notAfter.getTime(), serial: issued.serial };
  }

  /** A client certificate for a key the caller proved it holds (a verified CSR's key). */
  async issueClient(publicKey: CryptoKey, id: ClientIdentity, ttlMs: number): Promise<{ pem: string; serial: string; notBefore: number; notAfter: number }> {
    const { notBefore, notAfter } = this.validity(ttlMs);
    const issued = await issueCertificate({
      caPem: this.pem,
      caKey: this.key,
      publicKey,
      commonName: id.commonName,
      organization: id.organization,
      sans: [{ type: "uri", value: id.uri }],
      usage: "client",
      notBefore: new Date(notBefore),
      notAfter: new Date(notAfter),
    });
    return { pem: issued.pem, serial: issued.serial, notBefore, notAfter: issued.notAfter.getTime() };
  }

  private validity(ttlMs: number): { notBefore: number; notAfter: number } {
    const now = this.now();
    // Never past the CA's own end: a leaf cannot outlive its issuer.
    const notAfter = Math.min(now + ttlMs, this.notAfter);
    return { notBefore: now - Math.min(MAX_BACKDATE_MS, Math.floor(ttlMs / 10)), notAfter };
  }
}
