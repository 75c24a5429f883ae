// Start-up checks of the security options: --insecure only on loopback, sane lifetimes and quotas. Pure.
import type { CoordinatorConfig } from "../config.js";
import { isLoopback } from "./loopback.js";

/** Throws with a message that says what to fix. */
export function checkSecurityConfig(c: CoordinatorConfig): void {
  const host = c.listen.slice(0, c.listen.lastIndexOf(":"));
  if (c.insecure && !isLoopback(host)) {
    throw new Error(
      `--insecure serves plaintext with no authentication, so it is allowed only on a loopback address (127.0.0.1, ::1, localhost), not ${c.listen}; drop --insecure to serve TLS, or listen on 127.0.0.1`,
    );
  }
  if (Boolean(c.caCert) !== Boolean(c.caKey)) throw new Error("give both --ca-cert and --ca-key (the CA certificate and its private key), or neither");
  for (const k of ["servingCertTtlMs", "nodeCertTtlMs"] as const) {
    if (!(c[k] >= 2000)) throw new Error(`coordinator option ${k} must be at least 2s, got ${c[k]} ms`);
  }
  for (const k of ["quotaMaxActiveTasks", "quotaSubmitRate", "quotaSubmitBurst", "quotaMaxInputBytes"] as const) {
    if (!(Number.isFinite(c[k]) && c[k] >= 0)) throw new Error(`coordinator option ${k} must be >= 0 (0 = unlimited), got ${c[k]}`);
  }
  if (!Array.isArray(c.tlsSans)) throw new Error("coordinator option tlsSans must be a list of names");
}
