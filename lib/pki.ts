// X.509 building blocks shared by the coordinator (CA, issuing) and the agent (keys, CSRs): @peculiar/x509 over
// WebCrypto, Node's crypto for key formats and hashes. No ASN.1 by hand here; no file I/O either (callers own files).
import "reflect-metadata"; // @peculiar/x509 resolves its ASN.1 codecs through tsyringe, which needs this polyfill first
import * as x509 from "@peculiar/x509";
import { createHash, createPrivateKey, createPublicKey, randomBytes, webcrypto, X509Certificate as NodeX509 } from "node:crypto";
import { isIP } from "node:net";

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

/** WebCrypto key types from Node's own typings (the DOM library is not part of this build). */
export type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;
type Algorithm = webcrypto.Algorithm;
type EcKeyImportParams = webcrypto.EcKeyImportParams;

/** ECDSA P-256 with SHA-256: what edgeplane generates for every key of its own. */
const EC_P256 = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;

/** A private key with the algorithm to sign with it, and its public half. */
export interface SigningKey {
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  algorithm: Algorithm & { hash?: string | Algorithm };
}

/** A fresh ECDSA P-256 key pair. The private key is extractable so it can be written to the owner's key file. */
export async function generateKey(): Promise<SigningKey> {
  const pair = (await webcrypto.subtle.generateKey(EC_P256, true, ["sign", "verify"])) as CryptoKeyPair;
  return { privateKey: pair.privateKey, publicKey: pair.publicKey, algorithm: EC_P256 };
}

/** PKCS #8 PEM of a private key. */
export async function privateKeyToPem(key: CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey("pkcs8", key);
  return `${x509.PemConverter.encode(der, "PRIVATE KEY")}\n`;
}

/**
 * Reads a private key PEM (PKCS #8, SEC1 "EC PRIVATE KEY" or PKCS #1 RSA) into a signing key. EC keys on P-256,
 * P-384 or P-521 and RSA keys are accepted, so an operator's own CA (--ca-key) need not be one of ours.
 */
export async function signingKeyFromPem(pem: string, what: string): Promise<SigningKey> {
  let k;
  try {
    k = createPrivateKey(pem);
  } catch (err) {
    throw new Error(`${what} is not a readable private key PEM: ${(err as Error).message}`, { cause: err });
  }
  const der = k.export({ format: "der", type: "pkcs8" });
  let algorithm: SigningKey["algorithm"];
  if (k.asymmetricKeyType === "ec") {
    const curve = k.asymmetricKeyDetails?.namedCurve;
    const named = curve === "prime256v1" ? "P-256" : curve === "secp384r1" ? "P-384" : curve === "secp521r1" ? "P-521" : undefined;
    if (!named) throw new Error(`${what}: EC curve ${curve} is not supported (use P-256, P-384 or P-521)`);
    algorithm = {
      name: "ECDSA",
      namedCurve: named,
      hash: named === "P-256" ? "SHA-256" : named === "P-384" ? "SHA-384" : "SHA-512",
    } as SigningKey["algorithm"];
  } else if (k.asymmetricKeyType === "rsa") {
    algorithm = { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" } as SigningKey["algorithm"];
  } else {
    throw new Error(`${what}: key type ${k.asymmetricKeyType} is not supported (use EC or RSA)`);
  }
  const privateKey = await webcrypto.subtle.importKey("pkcs8", der, algorithm as EcKeyImportParams, true, ["sign"]);
  // A private KeyObject yields its public half through createPublicKey.
  const spki = createPublicKey(k).export({ format: "der", type: "spki" });
  const publicKey = await webcrypto.subtle.importKey("spki", spki, algorithm as EcKeyImportParams, true, ["verify"]);
  return { privateKey, publicKey, algorithm };
}

/** Lower-case hex SHA-256 of a certificate's DER encoding: the CA hash join tokens carry. */
export function certificateSha256(pem: string): string {
  return createHash("sha256").update(new NodeX509(pem).raw).digest("hex");
}

/** A random positive serial number, 128 bits, as hex. */
export function newSerial(): string {
  const b = randomBytes(16);
  b[0] &= 0x7f;
  if (b[0] === 0) b[0] = 1;
  return b.toString("hex");
}

export interface CaOptions {
  commonName: string;
  notBefore: Date;
  notAfter: Date;
}

/** A self-signed CA certificate for `key` (basic constraints CA, may sign certificates and CRLs). */
export async function createCaCertificate(key: SigningKey, o: CaOptions): Promise<string> {
  const name = `CN=${o.commonName}`;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: newSerial(),
    subject: name,
    issuer: name,
    notBefore: o.notBefore,
    notAfter: o.notAfter,
    signingAlgorithm: key.algorithm,
    publicKey: key.publicKey,
    signingKey: key.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(key.publicKey),
    ],
  });
  return `${cert.toString("pem")}\n`;
}

/** A name in a certificate's subject alternative names. */
export type SanEntry = { type: "dns"; value: string } | { type: "ip"; value: string } | { type: "uri"; value: string };

export interface IssueOptions {
  /** The CA certificate (PEM) and its key. */
  caPem: string;
  caKey: SigningKey;
  /** The certified key. */
  publicKey: CryptoKey;
  commonName: string;
  /** Organisation (O=) in the subject, e.g. the node's cluster. */
  organization?: string;
  sans: SanEntry[];
  usage: "server" | "client";
  notBefore: Date;
  notAfter: Date;
  serial?: string;
}

/** Issues a leaf certificate signed by the CA. Returns its PEM and serial (hex). */
export async function issueCertificate(o: IssueOptions): Promise<{ pem: string; serial: string; notAfter: Date }> {
  const ca = new x509.X509Certificate(o.caPem);
  const serial = o.serial ?? newSerial();
  const subject = `CN=${escapeDn(o.commonName)}${o.organization ? `, O=${escapeDn(o.organization)}` : ""}`;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial,
    subject,
    issuer: ca.subject,
    notBefore: o.notBefore,
    notAfter: o.notAfter,
    signingAlgorithm: o.caKey.algorithm,
    publicKey: o.publicKey,
    signingKey: o.caKey.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([o.usage === "server" ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth], false),
      new x509.SubjectAlternativeNameExtension(
        o.sans.map((s) => ({ type: s.type === "uri" ? ("url" as const) : s.type, value: s.value })),
        false,
      ),
      await x509.SubjectKeyIdentifierExtension.create(o.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(ca, false),
    ],
  });
  return { pem: `${cert.toString("pem")}\n`, serial: cert.serialNumber.toLowerCase(), notAfter: cert.notAfter };
}

/** A PKCS #10 request for `key`; the coordinator ignores the subject (identity comes from the token). */
export async function createCsr(key: SigningKey, commonName: string): Promise<string> {
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: `CN=${escapeDn(commonName)}`,
    keys: { privateKey: key.privateKey, publicKey: key.publicKey },
    signingAlgorithm: key.algorithm,
  });
  return `${csr.toString("pem")}\n`;
}

/** Reads a CSR and checks its self-signature (proof that the requester holds the key). Returns the public key. */
export async function verifiedCsrKey(pem: string): Promise<CryptoKey> {
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(pem);
  } catch (err) {
    throw new Error(`csr_pem is not a PEM certificate signing request: ${(err as Error).message}`, { cause: err });
  }
  if (!(await csr.verify())) throw new Error("csr_pem: the request's signature does not verify (it must be signed by the key it certifies)");
  return csr.publicKey.export();
}

/** What edgeplane reads back from a certificate. */
export interface CertificateInfo {
  serial: string;
  subject: string;
  notBefore: Date;
  notAfter: Date;
  /** Subject alternative names as Node prints them, e.g. ["URI:edgeplane://node/site-a/n1", "DNS:localhost"]. */
  sans: string[];
  sha256: string;
}

export function certificateInfo(pem: string | Buffer): CertificateInfo {
  const c = new NodeX509(pem);
  return {
    serial: c.serialNumber.toLowerCase(),
    subject: c.subject,
    notBefore: new Date(c.validFrom),
    notAfter: new Date(c.validTo),
    sans: (c.subjectAltName ?? "").split(/,\s*/).filter(Boolean),
    sha256: createHash("sha256").update(c.raw).digest("hex"),
  };
}

/** Whether `certPem` was signed by the CA in `caPem` (signature only; dates are the caller's). */
export function issuedBy(certPem: string | Buffer, caPem: string): boolean {
  const cert = new NodeX509(certPem);
  const ca = new NodeX509(caPem);
  return cert.checkIssued(ca) && cert.verify(ca.publicKey);
}

/** The subject alternative name entry for a host: an IP literal or a DNS name. */
export function hostSan(host: string): SanEntry {
  const h = host.replace(/^\[|\]$/g, "");
  return isIP(h) ? { type: "ip", value: h } : { type: "dns", value: h };
}

function escapeDn(v: string): string {
  return v.replace(/([,+"\\<>;=])/g, "\\$1");
}
