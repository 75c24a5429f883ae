// EnrolmentService, TokenService and NodeIdentityService over gRPC: converts requests and records between the wire
// and security/. Transport only: every decision (who may, what is issued) is security/'s.
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  CreateTokenResponseSchema,
  EnrolmentService,
  EnrolResponseSchema,
  GetCertificateAuthorityResponseSchema,
  ListNodeIdentitiesResponseSchema,
  ListTokensResponseSchema,
  NodeIdentityService,
  NodeIdentitySchema,
  RevokeNodeResponseSchema,
  RevokeTokenResponseSchema,
  Role as PbRole,
  TokenKind as PbTokenKind,
  TokenSchema,
  TokenService,
  type NodeIdentity,
  type Quota,
  type Token,
} from "../../gen/edgeplane/v1/auth_pb.js";
import { durationToMillis } from "../../lib/duration.js";
import { InvalidArgumentError } from "../errors.js";
import type { NodeIdentityRecord, QuotaLimits, TokenRecord } from "../security/auth-store.js";
import type { CertificateAuthority } from "../security/ca.js";
import type { NodeIdentities } from "../security/node-identity.js";
import type { Role } from "../security/roles.js";
import type { TokenRegistry } from "../security/tokens.js";
import type { ServiceImpl } from "./grpc-adapter.js";

export interface AuthServiceDeps {
  ca: CertificateAuthority;
  tokens: TokenRegistry;
  identities: NodeIdentities;
}

const ROLE_FROM_PB: Partial<Record<PbRole, Role>> = {
  [PbRole.VIEWER]: "viewer",
  [PbRole.SUBMITTER]: "submitter",
  [PbRole.OPERATOR]: "operator",
  [PbRole.ADMIN]: "admin",
};
const ROLE_TO_PB: Record<Role, PbRole> = { viewer: PbRole.VIEWER, submitter: PbRole.SUBMITTER, operator: PbRole.OPERATOR, admin: PbRole.ADMIN };

export function enrolmentServiceImpl(d: AuthServiceDeps): ServiceImpl<typeof EnrolmentService.method> {
  return {
    async getCertificateAuthority() {
      return create(GetCertificateAuthorityResponseSchema, { certificatePem: d.ca.pem, sha256: d.ca.sha256 });
    },
    async enrol(req, ctx) {
      const issued = await d.identities.enrol(ctx.principal, { csrPem: req.csrPem, nodeId: req.nodeId, clusterId: req.clusterId });
      return create(EnrolResponseSchema, {
        certificatePem: issued.certificatePem,
        caPem: issued.caPem,
        notAfter: timestampFromMs(issued.notAfter),
        nodeId: issued.nodeId,
        clusterId: issued.clusterId,
      });
    },
  };
}

export function tokenServiceImpl(d: AuthServiceDeps): ServiceImpl<typeof TokenService.method> {
  return {
    async createToken(req, ctx) {
      let kind: "join" | "api";
      switch (req.kind) {
        case PbTokenKind.JOIN:
          kind = "join";
          break;
        case PbTokenKind.API:
          kind = "api";
          break;
        case PbTokenKind.UNSPECIFIED:
          throw new InvalidArgumentError("kind is required: TOKEN_KIND_JOIN (enrols agents of a cluster) or TOKEN_KIND_API (a client with a role)");
        default:
          throw new InvalidArgumentError(`kind: unknown token kind ${req.kind as number}`);
      }
      const role = req.role === PbRole.UNSPECIFIED ? undefined : ROLE_FROM_PB[req.role];
      if (req.role !== PbRole.UNSPECIFIED && !role) throw new InvalidArgumentError(`role: unknown role ${req.role as number}`);
      const { token, text } = d.tokens.create({
        kind,
        role,
        clusters: req.clusters,
        ttlMs: req.ttl ? durationToMillis(req.ttl) : undefined,
        maxUses: req.maxUses,
        description: req.description,
        quota: quotaFromPb(req.quota),
        createdBy: ctx.principal.id,
      });
      return create(CreateTokenResponseSchema, { token: tokenToPb(token), secret: text });
    },
    async listTokens(req) {
      return create(ListTokensResponseSchema, { tokens: d.tokens.list(req.includeInactive).map(tokenToPb) });
    },
    async revokeToken(req) {
      if (!req.tokenId) throw new InvalidArgumentError("token_id is required");
      return create(RevokeTokenResponseSchema, { token: tokenToPb(d.tokens.revoke(req.tokenId)) });
    },
  };
}

export function nodeIdentityServiceImpl(d: AuthServiceDeps): ServiceImpl<typeof NodeIdentityService.method> {
  return {
    async listNodeIdentities() {
      return create(ListNodeIdentitiesResponseSchema, { nodes: d.identities.list().map(nodeIdentityToPb) });
    },
    async revokeNode(req) {
      if (!req.nodeId) throw new InvalidArgumentError("node_id is required");
      const { node, disconnected } = d.identities.revoke(req.nodeId);
      return create(RevokeNodeResponseSchema, { node: nodeIdentityToPb(node), disconnected });
    },
  };
}

function quotaFromPb(q: Quota | undefined): QuotaLimits {
  if (!q) return {};
  const out: QuotaLimits = {};
  if (q.maxActiveTasks) out.maxActiveTasks = q.maxActiveTasks;
  if (q.submitRate) out.submitRate = q.submitRate;
  if (q.submitBurst) out.submitBurst = q.submitBurst;
  if (q.maxInputBytes) out.maxInputBytes = Number(q.maxInputBytes);
  return out;
}

function tokenToPb(t: TokenRecord): Token {
  return create(TokenSchema, {
    id: t.id,
    kind: t.kind === "join" ? PbTokenKind.JOIN : PbTokenKind.API,
    role: t.role ? ROLE_TO_PB[t.role] : PbRole.UNSPECIFIED,
    clusters: t.clusters,
    description: t.description,
    createdAt: timestampFromMs(t.createdAt),
    expiresAt: t.expiresAt === undefined ? undefined : timestampFromMs(t.expiresAt),
    maxUses: t.maxUses,
    uses: t.uses,
    revokedAt: t.revokedAt === undefined ? undefined : timestampFromMs(t.revokedAt),
    createdBy: t.createdBy,
    quota: {
      maxActiveTasks: t.quota.maxActiveTasks ?? 0,
      submitRate: t.quota.submitRate ?? 0,
      submitBurst: t.quota.submitBurst ?? 0,
      maxInputBytes: BigInt(t.quota.maxInputBytes ?? 0),
    },
  });
}

function nodeIdentityToPb(n: NodeIdentityRecord): NodeIdentity {
  return create(NodeIdentitySchema, {
    nodeId: n.nodeId,
    clusterId: n.clusterId,
    serial: n.serial,
    notAfter: timestampFromMs(n.notAfter),
    enrolledAt: timestampFromMs(n.enrolledAt),
    renewedAt: n.renewedAt === undefined ? undefined : timestampFromMs(n.renewedAt),
    revokedAt: n.revokedAt === undefined ? undefined : timestampFromMs(n.revokedAt),
    tokenId: n.tokenId,
  });
}
