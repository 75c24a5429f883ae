// Enrolment, K3s/kubeadm style: pin the coordinator CA from the join token's hash (or a CA file), make a key here,
// send only a CSR with the token over TLS that trusts that CA alone, and get back the node certificate.
// The private key never leaves this process; the token goes only over the verified connection.
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { EnrolmentService } from "../../gen/edgeplane/v1/auth_pb.js";
import { CaMismatchError, fetchPinnedCa } from "../../lib/pinned-ca.js";
import { createCsr, generateKey, privateKeyToPem } from "../../lib/pki.js";

/** An enrolment that cannot succeed by retrying: wrong CA, bad or used-up token, wrong cluster. */
export class EnrolmentError extends Error {
  override readonly name = "EnrolmentError";
}

export interface EnrolOptions {
  /** Coordinator HOST:PORT. */
  coordinator: string;
  joinToken: string;
  nodeId: string;
  clusterId: string;
  /** The coordinator CA (PEM) when given as a file; otherwise pinned by the token's hash. */
  caPem?: string;
  timeoutMs?: number;
}

export interface Enrolled {
  keyPem: string;
  certPem: string;
  caPem: string;
}

/** Codes that say the enrolment itself is refused (retrying the same request would fail the same way). */
const PERMANENT = new Set([Code.Unauthenticated, Code.PermissionDenied, Code.InvalidArgument, Code.FailedPrecondition, Code.NotFound]);

export async function enrol(o: EnrolOptions): Promise<Enrolled> {
  const timeoutMs = o.timeoutMs ?? 10_000;
  const pin = /^EP1([0-9a-f]{64})::/.exec(o.joinToken.trim())?.[1];
  let caPem = o.caPem;
  if (!caPem) {
    if (!pin)
      throw new EnrolmentError(
        "the join token carries no CA hash (expected EP1<ca-sha256>::<id>.<secret>, as edgeplane token create prints it); or give the coordinator CA with --ca-cert",
      );
    try {
      caPem = await fetchPinnedCa(o.coordinator, pin, timeoutMs);
    } catch (err) {
      if (err instanceof CaMismatchError) throw new EnrolmentError(err.message, { cause: err });
      throw err;
    }
  }
  const key = await generateKey();
  const csrPem = await createCsr(key, o.nodeId);
  // Its own connection, closed once the enrolment is answered: the agent's stream opens another with the certificate.
  const session = new Http2SessionManager(`https://${o.coordinator}`, {}, { ca: caPem, minVersion: "TLSv1.2" });
  const transport = createGrpcTransport({ baseUrl: `https://${o.coordinator}`, sessionManager: session });
  try {
    const res = await createClient(EnrolmentService, transport).enrol(
      { csrPem, nodeId: o.nodeId, clusterId: o.clusterId },
      { timeoutMs, headers: { authorization: `Bearer ${o.joinToken.trim()}` } },
    );
    if (res.nodeId !== o.nodeId || res.clusterId !== o.clusterId) {
      throw new EnrolmentError(
        `the coordinator issued a certificate for node ${res.nodeId} in cluster ${res.clusterId}, not node ${o.nodeId} in cluster ${o.clusterId}`,
      );
    }
    return { keyPem: await privateKeyToPem(key.privateKey), certPem: res.certificatePem, caPem };
  } catch (err) {
    if (err instanceof ConnectError && PERMANENT.has(err.code)) throw new EnrolmentError(`enrolment refused: ${err.rawMessage}`, { cause: err });
    throw err;
  } finally {
    session.abort();
  }
}
