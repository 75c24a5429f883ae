// The node's identity at rest in its data directory: `node.pem` (its private key and certificate, in one file so
// a renewal replaces both with one rename) and `ca.crt` (the coordinator CA it pinned), each mode 0600 in a 0700
// directory. A key file others can read is refused. Never logs contents; the key is written here and sent nowhere.
import { createPrivateKey, X509Certificate } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { certificateInfo, type CertificateInfo } from "../../lib/pki.js";
import { assertPrivateKeyFile, ensurePrivateDir, writePrivateFile } from "../../lib/private-files.js";

/** Private key and certificate of the node, PEM, in this order. */
export const NODE_IDENTITY_FILE = "node.pem";
/** The coordinator CA the node trusts. */
export const NODE_CA_FILE = "ca.crt";

export interface StoredIdentity {
  keyPem: string;
  certPem: string;
  caPem: string;
  cert: CertificateInfo;
  /** Node id and cluster, read back from the certificate's URI SAN. */
  nodeId: string;
  clusterId: string;
}

/** Node id and cluster from a node certificate's `URI:edgeplane://node/<cluster>/<node>` SAN. */
export function identityOf(cert: CertificateInfo): { nodeId: string; clusterId: string } | undefined {
  for (const san of cert.sans) {
    const m = /^URI:edgeplane:\/\/node\/([^/]+)\/([^/]+)$/.exec(san);
    if (m) return { clusterId: decodeURIComponent(m[1]), nodeId: decodeURIComponent(m[2]) };
  }
  return undefined;
}

const PEM_BLOCK = /-----BEGIN ([A-Z ]+)-----[\s\S]+?-----END \1-----\n?/g;

export class IdentityFiles {
  constructor(readonly dir: string) {}

  get identityPath(): string {
    return join(this.dir, NODE_IDENTITY_FILE);
  }

  get caPath(): string {
    return join(this.dir, NODE_CA_FILE);
  }

  /** The stored identity, or undefined when this node has not enrolled. Throws on a loose key file or a broken one. */
  load(): StoredIdentity | undefined {
    if (!existsSync(this.identityPath)) return undefined;
    assertPrivateKeyFile(this.identityPath, "node key file");
    if (!existsSync(this.caPath))
      throw new Error(`${this.caPath} is missing (the coordinator CA this node enrolled with); remove ${this.identityPath} to enrol again with a join token`);
    const blocks = [...readFileSync(this.identityPath, "utf8").matchAll(PEM_BLOCK)];
    const keyPem = blocks.find((b) => b[1].endsWith("PRIVATE KEY"))?.[0];
    const certPem = blocks.find((b) => b[1] === "CERTIFICATE")?.[0];
    if (!keyPem || !certPem)
      throw new Error(`${this.identityPath} must hold a private key and a certificate (PEM); remove it to enrol again with a join token`);
    const caPem = readFileSync(this.caPath, "utf8");
    let cert: CertificateInfo;
    try {
      cert = certificateInfo(certPem);
      if (!new X509Certificate(certPem).checkPrivateKey(createPrivateKey(keyPem))) throw new Error("its key and certificate do not belong together");
    } catch (err) {
      throw new Error(`${this.identityPath} is not a usable identity: ${(err as Error).message}; remove it to enrol again with a join token`, { cause: err });
    }
    const id = identityOf(cert);
    if (!id) throw new Error(`${this.identityPath} holds no edgeplane node certificate (no edgeplane://node/ URI in it)`);
    return { keyPem, certPem, caPem, cert, ...id };
  }

  /** Writes the CA, then key and certificate together (one atomic rename), all 0600. */
  save(keyPem: string, certPem: string, caPem: string): void {
    ensurePrivateDir(this.dir);
    writePrivateFile(this.caPath, caPem);
    writePrivateFile(this.identityPath, `${keyPem.trim()}\n${certPem.trim()}\n`);
  }
}
