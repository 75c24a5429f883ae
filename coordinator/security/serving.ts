// The coordinator's TLS: server credentials for @grpc/grpc-js whose certificate is issued by the coordinator CA for the
// listen host names and renewed at two thirds of its life without a restart. TLS 1.2 or later only. Client
// certificates are asked for but not required (API clients may use bearer tokens instead); the guard decides.
import * as grpc from "@grpc/grpc-js";
import { isIP } from "node:net";
import { hostname, networkInterfaces } from "node:os";
import type { SecureContextOptions } from "node:tls";
import { hostSan, type SanEntry } from "../../lib/pki.js";
import type { Logger } from "../../lib/log.js";
import type { CertificateAuthority } from "./ca.js";
import { isLoopback } from "./loopback.js";

/** Every connection negotiates TLS 1.2 or 1.3; older clients fail the handshake. */
const MIN_TLS_VERSION = "TLSv1.2" as const;
/** setTimeout's longest delay; a renewal further away is reached in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** After a failed renewal (should not happen: the CA is local), try again this much later. */
const RETRY_MS = 60_000;

/**
 * grpc-js server credentials whose secure context can be replaced while serving: grpc-js watches credentials and
 * calls setSecureContext on its listeners when they change (the mechanism its certificate providers use).
 */
class RenewableServerCredentials extends grpc.ServerCredentials {
  constructor(initial: SecureContextOptions) {
    super({ requestCert: true, rejectUnauthorized: false, minVersion: MIN_TLS_VERSION }, initial);
  }

  replace(options: SecureContextOptions): void {
    this.updateSecureContextOptions(options);
  }

  _equals(other: grpc.ServerCredentials): boolean {
    return other === this;
  }
}

/**
 * The names the serving certificate carries: the listen host, and for a loopback or wildcard listen address also
 * localhost, 127.0.0.1 and ::1 (a wildcard adds this machine's host name and interface addresses), plus extras.
 */
export function servingNames(listenHost: string, extra: readonly string[] = []): SanEntry[] {
  const host = listenHost.replace(/^\[|\]$/g, "");
  const names = new Set<string>();
  const wildcard = host === "" || host === "0.0.0.0" || host === "::";
  if (!wildcard) names.add(host);
  if (wildcard || isLoopback(host)) for (const n of ["localhost", "127.0.0.1", "::1"]) names.add(n);
  if (wildcard) {
    names.add(hostname());
    for (const addrs of Object.values(networkInterfaces())) for (const a of addrs ?? []) names.add(a.address.replace(/%.*$/, ""));
  }
  for (const e of extra) if (e.trim()) names.add(e.trim());
  return [...names].map(hostSan);
}

export interface ServingOptions {
  names: SanEntry[];
  ttlMs: number;
  log: Logger;
  now: () => number;
}

/** The serving certificate, its renewal timer, and the grpc-js credentials that always carry the newest one. */
export class ServingCertificate {
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private current: { serial: string; notBefore: number; notAfter: number };

  private constructor(
    private readonly ca: CertificateAuthority,
    private readonly o: ServingOptions,
    readonly credentials: RenewableServerCredentials,
    first: { serial: string; notBefore: number; notAfter: number },
  ) {
    this.current = first;
  }

  static async start(ca: CertificateAuthority, o: ServingOptions): Promise<ServingCertificate> {
    const issued = await ca.issueServing(o.names, o.ttlMs);
    const creds = new RenewableServerCredentials(contextOptions(ca, issued));
    const s = new ServingCertificate(ca, o, creds, issued);
    o.log.info({ serial: issued.serial, notAfter: new Date(issued.notAfter).toISOString(), names: o.names.map((n) => n.value) }, "serving certificate issued");
    s.schedule();
    return s;
  }

  /** Serial (hex) and validity of the certificate being served now. */
  get serving(): { serial: string; notBefore: number; notAfter: number } {
    return this.current;
  }

  /** Issues a new serving certificate and puts it in place; connections opened from now on get it. */
  async renew(): Promise<void> {
    const issued = await this.ca.issueServing(this.o.names, this.o.ttlMs);
    if (this.closed) return;
    this.credentials.replace(contextOptions(this.ca, issued));
    this.current = issued;
    this.o.log.info({ serial: issued.serial, notAfter: new Date(issued.notAfter).toISOString() }, "serving certificate renewed");
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
  }

  /** Arms the timer for two thirds of the current certificate's life, or `retryInMs` after a failed renewal. */
  private schedule(retryInMs?: number): void {
    if (this.closed) return;
    const { notBefore, notAfter } = this.current;
    const due = retryInMs === undefined ? notBefore + ((notAfter - notBefore) * 2) / 3 : this.o.now() + retryInMs;
    this.timer = setTimeout(
      () => {
        if (this.o.now() < due) return this.schedule(retryInMs === undefined ? undefined : due - this.o.now()); // a step of a long wait
        this.renew().then(
          () => this.schedule(),
          (err: unknown) => {
            this.o.log.error({ err: (err as Error).message, retryInMs: RETRY_MS }, "could not renew the serving certificate");
            this.schedule(RETRY_MS);
          },
        );
      },
      Math.min(Math.max(0, due - this.o.now()), MAX_TIMER_MS),
    );
    this.timer.unref();
  }
}

function contextOptions(ca: CertificateAuthority, issued: { certPem: string; keyPem: string }): SecureContextOptions {
  // `ca` verifies client certificates (enrolled nodes); it is not sent to clients, which trust the CA themselves.
  return { ca: ca.pem, cert: issued.certPem, key: issued.keyPem, minVersion: MIN_TLS_VERSION };
}
