// Opens everything security needs at coordinator start and hands main.ts a few finished pieces: the server
// credentials, the call guard, the quotas, the node identity hooks of the agent stream, the token and node admin.
// Decides nothing per call itself; main.ts only wires what this returns.
import * as grpc from "@grpc/grpc-js";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { ensurePrivateDir, restrictFile } from "../../lib/private-files.js";
import type { Logger } from "../../lib/log.js";
import type { CoordinatorConfig } from "../config.js";
import type { TaskRecord } from "../tasks/types.js";
import { AuditLog } from "./audit.js";
import { AuthStore } from "./auth-store.js";
import { CertificateAuthority } from "./ca.js";
import { Guard, InsecureGuard } from "./guard.js";
import { NodeIdentities } from "./node-identity.js";
import type { CallGuard } from "./principal.js";
import { Quotas } from "./quotas.js";
import { ServingCertificate, servingNames } from "./serving.js";
import { TokenRegistry } from "./tokens.js";

/** The bootstrap admin token the coordinator writes on first start (mode 0600). */
export const ADMIN_TOKEN_FILE = "admin.token";
export const AUDIT_LOG_FILE = "audit.log";

export interface Security {
  /** TLS credentials for the API listener, or plaintext with --insecure. */
  serverCredentials: grpc.ServerCredentials;
  guard: CallGuard;
  quotas: Quotas;
  /** Absent with --insecure (no CA, no tokens). */
  ca?: CertificateAuthority;
  tokens?: TokenRegistry;
  identities?: NodeIdentities;
  serving?: ServingCertificate;
  audit: AuditLog;
  /** The bootstrap admin token, when it was just created or its file still holds a valid one (for `edgeplane dev`). */
  adminToken?: string;
  /** Where the bootstrap admin token is written. */
  adminTokenFile: string;
  /** Keeps the quota counts exact: call with the store's active tasks at start, then for every change. */
  observe(t: TaskRecord): void;
  /** Sets every file directly in the data directory to 0600 (call once the task store has created its files). */
  restrictDataFiles(): void;
  /** Stops renewals, flushes the audit log and closes auth.db. */
  close(): Promise<void>;
}

export async function openSecurity(config: CoordinatorConfig, log: Logger, now: () => number): Promise<Security> {
  // The data directory holds the CA key, tokens, the audit log and the task database: owner only.
  if (ensurePrivateDir(config.dataDir)) log.warn({ dir: config.dataDir }, "data directory was readable by others; set it to mode 0700");
  const audit = AuditLog.open(config.auditLog || join(config.dataDir, AUDIT_LOG_FILE), log);
  const quotas = new Quotas(
    {
      maxActiveTasks: config.quotaMaxActiveTasks,
      submitRate: config.quotaSubmitRate,
      submitBurst: config.quotaSubmitBurst,
      maxInputBytes: config.quotaMaxInputBytes || config.maxInputBytes,
    },
    now,
  );
  const adminTokenFile = join(config.dataDir, ADMIN_TOKEN_FILE);
  const observe = (t: TaskRecord) => quotas.observe(t);
  const restrictDataFiles = () => {
    for (const e of readdirSync(config.dataDir, { withFileTypes: true })) if (e.isFile()) restrictFile(join(config.dataDir, e.name));
  };
  if (config.insecure) {
    log.warn({ listen: config.listen }, "--insecure: plaintext, no authentication; anything that reaches this loopback port may do everything");
    return {
      serverCredentials: grpc.ServerCredentials.createInsecure(),
      guard: new InsecureGuard(audit),
      quotas,
      audit,
      adminTokenFile,
      observe,
      restrictDataFiles,
      close: () => audit.close(),
    };
  }
  const ca = await CertificateAuthority.open({ dataDir: config.dataDir, caCert: config.caCert || undefined, caKey: config.caKey || undefined, now, log });
  const store = AuthStore.open(config.dataDir);
  const tokens = new TokenRegistry(store, ca.sha256, now);
  const identities = new NodeIdentities(store, ca, tokens, { certTtlMs: config.nodeCertTtlMs, now, log: log.child({ part: "identity" }) });
  const adminToken = tokens.ensureAdmin(adminTokenFile, log);
  restrictFile(adminTokenFile);
  const host = config.listen.slice(0, config.listen.lastIndexOf(":"));
  const serving = await ServingCertificate.start(ca, { names: servingNames(host, config.tlsSans), ttlMs: config.servingCertTtlMs, log, now });
  log.info({ ca: ca.certPath, caSha256: ca.sha256, adminTokenFile, auditLog: audit.path ?? "coordinator log" }, "TLS and authentication on");
  return {
    serverCredentials: serving.credentials,
    guard: new Guard({ tokens, identities, audit }),
    quotas,
    ca,
    tokens,
    identities,
    serving,
    audit,
    adminToken,
    adminTokenFile,
    observe,
    restrictDataFiles,
    async close() {
      serving.close();
      store.close();
      await audit.close();
    },
  };
}
