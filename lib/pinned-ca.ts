// Trust on first contact, pinned: fetches the coordinator's CA certificate over a TLS connection that does not trust
// it yet, and accepts it only if its SHA-256 is the one a token carries. Shared by the agent (enrolment) and the CLI.
// Sends no credentials on that unverified connection, ever.
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { EnrolmentService } from "../gen/edgeplane/v1/auth_pb.js";
import { certificateSha256 } from "./pki.js";

/** The coordinator's CA is not the one the token pins: a wrong coordinator, or someone in between. */
export class CaMismatchError extends Error {
  override readonly name = "CaMismatchError";
}

/** The CA certificate (PEM) of the coordinator at `address` (HOST:PORT), once its hash matched `sha256`. */
export async function fetchPinnedCa(address: string, sha256: string, timeoutMs = 10_000): Promise<string> {
  const transport = createGrpcTransport({
    baseUrl: `https://${address}`,
    // Not verified on purpose: the hash below is the check. Nothing secret is sent on this connection.
    nodeOptions: { rejectUnauthorized: false, minVersion: "TLSv1.2" },
  });
  const res = await createClient(EnrolmentService, transport).getCertificateAuthority({}, { timeoutMs });
  let got: string;
  try {
    got = certificateSha256(res.certificatePem);
  } catch (err) {
    throw new CaMismatchError(`the coordinator at ${address} sent a CA certificate that cannot be read: ${(err as Error).message}`);
  }
  if (got !== sha256.toLowerCase()) {
    throw new CaMismatchError(
      `the coordinator at ${address} has CA sha256 ${got}, but the token pins CA sha256 ${sha256.toLowerCase()}; refusing to trust it (a different coordinator, or someone in between)`,
    );
  }
  return res.certificatePem;
}
