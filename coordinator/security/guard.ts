// The guard every RPC passes before its handler: finds the principal (bearer token, else client certificate),
// checks the method's rule from roles.ts, and writes the audit line of every mutating or refused call.
// Never logs a token or a request body; refuses any method it has no rule for.
import { status } from "@grpc/grpc-js";
import { PermissionDeniedError, UnauthenticatedError } from "../errors.js";
import { toGrpcStatus } from "../rpc/errors.js";
import { auditTarget, type AuditLog } from "./audit.js";
import type { NodeIdentities } from "./node-identity.js";
import { scopeOf } from "./node-identity.js";
import type { Admission, CallGuard, CallInfo, Principal } from "./principal.js";
import { METHOD_RULES, minimumRole, NODE_PERMISSIONS, ROLE_PERMISSIONS, type MethodRule } from "./roles.js";
import { parseToken } from "./token-format.js";
import type { TokenRegistry } from "./tokens.js";

const BEARER = /^bearer\s+(\S+)\s*$/i;
/** Refusals: audited on every method, mutating or not. */
const AUTH_FAILURES = new Set<status>([status.UNAUTHENTICATED, status.PERMISSION_DENIED]);
/** Outcomes whose reason is the guard's, an access check's or a quota's own words (ids and limits only), safe to audit. */
const EXPLAINED = new Set<status>([status.UNAUTHENTICATED, status.PERMISSION_DENIED, status.RESOURCE_EXHAUSTED]);

export interface GuardDeps {
  tokens: TokenRegistry;
  identities: NodeIdentities;
  audit: AuditLog;
}

/** The guard of a secured coordinator. */
export class Guard implements CallGuard {
  constructor(private readonly d: GuardDeps) {}

  admit(call: CallInfo): Admission {
    const rule: MethodRule | undefined = METHOD_RULES[call.method];
    let principal: Principal = { kind: "anonymous", id: "anonymous" };
    try {
      if (!rule) throw new PermissionDeniedError(`${call.method} has no access rule on this coordinator; it is refused`);
      if (rule.access !== "public") {
        principal = this.authenticate(call);
        authorize(call.method, rule, principal);
      }
    } catch (err) {
      this.audit(call, principal, err, call.request, undefined);
      throw err;
    }
    return {
      principal,
      finish: (err, request, response) => {
        if (rule.mutating || (err !== undefined && AUTH_FAILURES.has(toGrpcStatus(err).code))) {
          this.audit(call, principal, err, request, response);
        }
      },
    };
  }

  private authenticate(call: CallInfo): Principal {
    const header = call.metadata.get("authorization")[0];
    if (header !== undefined) {
      const m = BEARER.exec(String(header));
      if (!m) throw new UnauthenticatedError('the authorization header must be "Bearer <token>"');
      const token = this.d.tokens.authenticate(m[1]);
      if (token.kind === "join") return { kind: "join", id: `join:${token.id}`, token, clusters: scopeOf(token.clusters) };
      return { kind: "token", id: `token:${token.id}`, token, role: token.role ?? "viewer", clusters: scopeOf(token.clusters), via: "bearer" };
    }
    const cert = call.auth.sslPeerCertificate;
    if (cert) return this.d.identities.principalFor(cert);
    throw new UnauthenticatedError(
      `${call.method} needs credentials: a bearer token (authorization: Bearer <token>, from edgeplane token create) or a client certificate issued by this coordinator`,
    );
  }

  private audit(call: CallInfo, p: Principal, err: unknown, request: unknown, response: unknown): void {
    const s = err === undefined ? undefined : toGrpcStatus(err);
    this.d.audit.record({
      principal: p.kind === "anonymous" ? presentedId(call) : p.id,
      ...(p.kind === "token" ? { role: p.role } : {}),
      peer: call.peer,
      method: call.method,
      target: auditTarget(request, response) ?? (p.kind === "node" ? p.nodeId : undefined),
      outcome: s === undefined ? "OK" : status[s.code],
      ...(s && EXPLAINED.has(s.code) ? { reason: s.details } : {}),
    });
  }
}

/** The guard of a coordinator started with --insecure: everyone may do everything; mutating calls are still audited. */
export class InsecureGuard implements CallGuard {
  constructor(private readonly audit: AuditLog) {}

  admit(call: CallInfo): Admission {
    const rule = METHOD_RULES[call.method];
    const principal: Principal = { kind: "insecure", id: "insecure" };
    return {
      principal,
      finish: (err, request, response) => {
        if (!rule?.mutating) return;
        const s = err === undefined ? undefined : toGrpcStatus(err);
        this.audit.record({
          principal: principal.id,
          peer: call.peer,
          method: call.method,
          target: auditTarget(request, response),
          outcome: s === undefined ? "OK" : status[s.code],
        });
      },
    };
  }
}

/** Throws PermissionDeniedError unless the principal may call a method with this rule. */
export function authorize(method: string, rule: MethodRule, p: Principal): void {
  if (rule.access === "public" || p.kind === "insecure") return;
  if (rule.access === "enrol") {
    if (p.kind === "join" || (p.kind === "token" && p.via === "bearer")) return;
    throw new PermissionDeniedError(
      `${method} needs a join token (or an API token) as the bearer token; ${p.kind === "node" ? "an enrolled node renews its certificate over the agent stream" : "a certificate cannot enrol"}`,
    );
  }
  const need = rule.permission;
  switch (p.kind) {
    case "token":
      if (ROLE_PERMISSIONS[p.role].has(need)) return;
      throw new PermissionDeniedError(`${method} needs role ${minimumRole(need) ?? "(none)"} or higher (permission ${need}); ${p.id} has role ${p.role}`);
    case "node":
      if (NODE_PERMISSIONS.has(need)) return;
      throw new PermissionDeniedError(
        `${method} is not open to node certificates (${p.id}); use an API token (edgeplane token create --role ${minimumRole(need) ?? "admin"})`,
      );
    case "join":
      throw new PermissionDeniedError(
        `${p.id} is a join token: it only enrols agents (EnrolmentService/Enrol); ${method} needs an API token (edgeplane token create --role ${minimumRole(need) ?? "admin"})`,
      );
    case "anonymous":
      throw new UnauthenticatedError(`${method} needs credentials`);
    default: {
      const never: never = p;
      throw new Error(`unknown principal ${JSON.stringify(never)}`);
    }
  }
}

/** For the audit line of a refused call: the id of the token presented, if one could be read (never its secret). */
function presentedId(call: CallInfo): string {
  const header = call.metadata.get("authorization")[0];
  const m = header === undefined ? null : BEARER.exec(String(header));
  const parsed = m ? parseToken(m[1]) : undefined;
  if (parsed) return `token:${parsed.id}?`;
  if (call.auth.sslPeerCertificate) return `certificate:${call.auth.sslPeerCertificate.serialNumber?.toLowerCase() ?? "?"}`;
  return "anonymous";
}
