// lib/pki.ts: keys, CA, CSRs and issued certificates are real X.509 that Node's own crypto and TLS accept.
import { X509Certificate } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  certificateInfo,
  certificateSha256,
  createCaCertificate,
  createCsr,
  generateKey,
  issueCertificate,
  issuedBy,
  privateKeyToPem,
  signingKeyFromPem,
  verifiedCsrKey,
} from "../../lib/pki.js";

const day = 86_400_000;

async function ca() {
  const key = await generateKey();
  const pem = await createCaCertificate(key, {
    commonName: "edgeplane test CA",
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 365 * day),
  });
  return { key, pem };
}

describe("lib/pki", () => {
  it("creates a CA certificate Node reads as a CA, and hashes its DER", async () => {
    const { pem } = await ca();
    const c = new X509Certificate(pem);
    expect(c.ca).toBe(true);
    expect(c.subject).toBe("CN=edgeplane test CA");
    expect(certificateSha256(pem)).toMatch(/^[0-9a-f]{64}$/);
    expect(certificateSha256(pem)).toBe(certificateInfo(pem).sha256);
  });

  it("issues a client certificate from a verified CSR with the identity given, not the one requested", async () => {
    const authority = await ca();
    const nodeKey = await generateKey();
    const csr = await createCsr(nodeKey, "i-am-someone-else");
    const pub = await verifiedCsrKey(csr);
    const issued = await issueCertificate({
      caPem: authority.pem,
      caKey: authority.key,
      publicKey: pub,
      commonName: "n1",
      organization: "site-a",
      sans: [{ type: "uri", value: "edgeplane://node/site-a/n1" }],
      usage: "client",
      notBefore: new Date(),
      notAfter: new Date(Date.now() + day),
    });
    const info = certificateInfo(issued.pem);
    expect(info.subject).toContain("CN=n1");
    expect(info.subject).toContain("O=site-a");
    expect(info.sans).toEqual(["URI:edgeplane://node/site-a/n1"]);
    expect(info.serial).toBe(issued.serial);
    expect(issuedBy(issued.pem, authority.pem)).toBe(true);
    const other = await ca();
    expect(issuedBy(issued.pem, other.pem)).toBe(false);
  });

  it("refuses a CSR whose signature does not verify", async () => {
    const csr = await createCsr(await generateKey(), "x");
    // Flip a byte inside the signature (the end of the DER).
    const body = csr.replace(/-----[A-Z ]+-----/g, "").replace(/\s+/g, "");
    const der = Buffer.from(body, "base64");
    der[der.length - 3] ^= 0xff;
    const bad = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString("base64")}\n-----END CERTIFICATE REQUEST-----\n`;
    await expect(verifiedCsrKey(bad)).rejects.toThrow(/signature does not verify|not a PEM/);
    await expect(verifiedCsrKey("hello")).rejects.toThrow(/not a PEM certificate signing request/);
  });

  it("reads back its own private key PEM and signs with it", async () => {
    const authority = await ca();
    const reread = await signingKeyFromPem(await privateKeyToPem(authority.key.privateKey), "ca.key");
    const leaf = await issueCertificate({
      caPem: authority.pem,
      caKey: reread,
      publicKey: (await generateKey()).publicKey,
      commonName: "localhost",
      sans: [
        { type: "dns", value: "localhost" },
        { type: "ip", value: "127.0.0.1" },
      ],
      usage: "server",
      notBefore: new Date(),
      notAfter: new Date(Date.now() + day),
    });
    expect(issuedBy(leaf.pem, authority.pem)).toBe(true);
    expect(certificateInfo(leaf.pem).sans).toEqual(["DNS:localhost", "IP Address:127.0.0.1"]);
    await expect(signingKeyFromPem("not a key", "ca.key")).rejects.toThrow(/ca\.key is not a readable private key PEM/);
  });
});
