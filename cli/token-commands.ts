// Access commands: token create / list / revoke (TokenService), node revoke / identities (NodeIdentityService) and
// cert issue (a client certificate for the current API token). Admin role except cert issue.
// Must never print a token secret except the one `token create` was asked for, and only on stdout.
import { Option, type Command } from "commander";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { join } from "node:path";
import {
  CreateTokenResponseSchema,
  ListNodeIdentitiesResponseSchema,
  ListTokensResponseSchema,
  NodeIdentitySchema,
  Role,
  RoleSchema,
  TokenKind,
  TokenKindSchema,
  TokenSchema,
  type NodeIdentity,
  type Token,
} from "../gen/edgeplane/v1/auth_pb.js";
import { durationFromMillis } from "../lib/duration.js";
import { createCsr, generateKey, privateKeyToPem } from "../lib/pki.js";
import { ensurePrivateDir, writePrivateFile } from "../lib/private-files.js";
import { addClientOptions, addJsonOption, arg, callCoordinator, println, printJson, type CliDeps, type ClientFlags } from "./context.js";
import { CliError, UsageError } from "./errors.js";
import { enumLabel, formatTimestamp, NONE, renderTable } from "./format.js";
import { parseBytes, parseDuration, parseEnum, parseInteger, parseList } from "./parse.js";

interface CreateFlags extends ClientFlags {
  cluster?: string;
  role?: Role;
  clusters?: string[];
  ttl?: number;
  uses?: number;
  description?: string;
  maxActive?: number;
  rate?: number;
  burst?: number;
  maxInput?: number;
}

function tokenState(t: Token, now: Date): string {
  if (t.revokedAt) return "revoked";
  if (t.expiresAt && timestampDate(t.expiresAt) <= now) return "expired";
  if (t.maxUses > 0 && t.uses >= t.maxUses) return "used up";
  return "active";
}

/** The token table of `token list`. */
export function renderTokenTable(tokens: readonly Token[], now: Date): string {
  return renderTable(
    ["ID", "KIND", "ROLE", "CLUSTERS", "USES", "EXPIRES", "STATE", "CREATED BY", "DESCRIPTION"],
    tokens.map((t) => [
      t.id,
      enumLabel(TokenKindSchema, t.kind),
      t.role === Role.UNSPECIFIED ? NONE : enumLabel(RoleSchema, t.role),
      t.clusters.join(","),
      t.maxUses > 0 ? `${t.uses}/${t.maxUses}` : String(t.uses),
      t.expiresAt ? formatTimestamp(t.expiresAt, now) : "never",
      tokenState(t, now),
      t.createdBy,
      t.description || NONE,
    ]),
  );
}

/** The table of `node identities`. */
export function renderIdentityTable(nodes: readonly NodeIdentity[], now: Date): string {
  return renderTable(
    ["NODE", "CLUSTER", "SERIAL", "CERTIFICATE UNTIL", "ENROLLED", "RENEWED", "STATE"],
    nodes.map((n) => [
      n.nodeId,
      n.clusterId,
      n.serial.slice(0, 16),
      formatTimestamp(n.notAfter, now),
      formatTimestamp(n.enrolledAt, now),
      n.renewedAt ? formatTimestamp(n.renewedAt, now) : NONE,
      n.revokedAt ? "revoked" : "enrolled",
    ]),
  );
}

function registerToken(program: Command, deps: CliDeps): void {
  const group = program.command("token").description("Manage join tokens (for agents) and API tokens (for clients): create, list, revoke");
  const roles = ["viewer", "submitter", "operator", "admin"];
  const create = group
    .command("create")
    .description(
      "Create a token and print it (the secret is shown only now).\n" +
        '  --cluster ID       a join token: enrols agents of that cluster ("*": any cluster, only when asked for)\n' +
        "  --role ROLE        an API token: viewer | submitter | operator | admin, optionally --clusters a,b",
    )
    .option("--cluster <id>", 'join token for this cluster ("*" for any)')
    .addOption(
      new Option("--role <role>", `API token with this role: ${roles.join(" | ")}`).argParser(
        arg((t) => {
          if (!roles.includes(t)) throw new UsageError(`--role must be one of ${roles.join(", ")}, got "${t}"`);
          return parseEnum(RoleSchema, t) as Role;
        }),
      ),
    )
    .option("--clusters <ids>", "API token: the clusters it may act on, comma-separated (default: all)", arg(parseList))
    .option("--ttl <duration>", "lifetime, e.g. 24h (default: never expires)", arg(parseDuration))
    .option(
      "--uses <n>",
      "join token: enrolments it allows (default: unlimited)",
      arg((t) => parseInteger(t, 1)),
    )
    .option("--description <text>", "what the token is for")
    .option(
      "--max-active <n>",
      "quota: most tasks queued or running at once (default: the coordinator's)",
      arg((t) => parseInteger(t, 1)),
    )
    .option(
      "--rate <per-second>",
      "quota: sustained submissions per second",
      arg((t) => {
        const n = Number(t);
        if (!(n > 0)) throw new UsageError(`expected a positive number, got "${t}"`);
        return n;
      }),
    )
    .option(
      "--burst <n>",
      "quota: submissions allowed in a burst",
      arg((t) => parseInteger(t, 1)),
    )
    .option("--max-input <size>", "quota: largest input of one task", arg(parseBytes));
  addJsonOption(addClientOptions(create));
  create.action(async (flags: CreateFlags) => {
    const join = flags.cluster !== undefined;
    if (join === (flags.role !== undefined))
      throw new UsageError("give --cluster ID (a join token for agents) or --role ROLE (an API token for clients), not both");
    if (join && flags.clusters) throw new UsageError("--clusters is for API tokens; a join token has exactly one --cluster");
    if (!join && flags.uses !== undefined) throw new UsageError("--uses limits join tokens only");
    const res = await callCoordinator(deps, flags, ({ tokens }, unary) =>
      tokens.createToken(
        {
          kind: join ? TokenKind.JOIN : TokenKind.API,
          role: flags.role ?? Role.UNSPECIFIED,
          clusters: join ? [flags.cluster!] : (flags.clusters ?? []),
          ttl: flags.ttl === undefined ? undefined : durationFromMillis(flags.ttl),
          maxUses: flags.uses ?? 0,
          description: flags.description ?? "",
          quota: {
            maxActiveTasks: flags.maxActive ?? 0,
            submitRate: flags.rate ?? 0,
            submitBurst: flags.burst ?? 0,
            maxInputBytes: BigInt(flags.maxInput ?? 0),
          },
        },
        unary,
      ),
    );
    if (flags.json) return printJson(deps.io, CreateTokenResponseSchema, res);
    // The token alone on stdout, so `TOKEN=$(edgeplane token create …)` works; what it is on stderr.
    println(deps.io, res.secret);
    const t = res.token!;
    deps.io.writeError(
      `created ${join ? `join token ${t.id} for cluster ${t.clusters[0]}` : `${enumLabel(RoleSchema, t.role)} token ${t.id} for clusters ${t.clusters.join(",")}`}` +
        `${t.expiresAt ? `, expires ${formatTimestamp(t.expiresAt)}` : ""}; it is shown only now\n`,
    );
  });

  const list = group
    .command("list")
    .description("List tokens (ids, roles, clusters, uses, expiry; never secrets)")
    .option("--all", "also revoked, expired and used-up tokens");
  addJsonOption(addClientOptions(list));
  list.action(async (flags: ClientFlags & { all?: boolean }) => {
    const res = await callCoordinator(deps, flags, ({ tokens }, unary) => tokens.listTokens({ includeInactive: flags.all === true }, unary));
    if (flags.json) return printJson(deps.io, ListTokensResponseSchema, res);
    if (res.tokens.length === 0) deps.io.writeError("no tokens\n");
    else println(deps.io, renderTokenTable(res.tokens, deps.now()));
  });

  const revoke = group
    .command("revoke")
    .description("Revoke a token at once: calls and enrolments with it fail from now on")
    .argument("<id>", "token id (from token list)");
  addJsonOption(addClientOptions(revoke));
  revoke.action(async (id: string, flags: ClientFlags) => {
    const res = await callCoordinator(deps, flags, ({ tokens }, unary) => tokens.revokeToken({ tokenId: id }, unary));
    if (flags.json) return printJson(deps.io, TokenSchema, res.token!);
    println(deps.io, `token ${id} revoked`);
  });
}

function registerNode(program: Command, deps: CliDeps): void {
  const group = program.command("node").description("Enrolled node identities: identities, revoke");
  const revoke = group
    .command("revoke")
    .description("Revoke a node: its stream is closed at once and it cannot reconnect or enrol again under this id")
    .argument("<node>", "node id");
  addJsonOption(addClientOptions(revoke));
  revoke.action(async (nodeId: string, flags: ClientFlags) => {
    const res = await callCoordinator(deps, flags, ({ identities }, unary) => identities.revokeNode({ nodeId }, unary));
    if (flags.json) return printJson(deps.io, NodeIdentitySchema, res.node!);
    println(deps.io, `node ${nodeId} revoked${res.disconnected ? "; its stream was closed" : " (it was not connected)"}`);
  });
  const identities = group.command("identities").description("List enrolled nodes with their certificates");
  addJsonOption(addClientOptions(identities));
  identities.action(async (flags: ClientFlags) => {
    const res = await callCoordinator(deps, flags, ({ identities: ids }, unary) => ids.listNodeIdentities({}, unary));
    if (flags.json) return printJson(deps.io, ListNodeIdentitiesResponseSchema, res);
    if (res.nodes.length === 0) deps.io.writeError("no enrolled nodes\n");
    else println(deps.io, renderIdentityTable(res.nodes, deps.now()));
  });
}

function registerCert(program: Command, deps: CliDeps): void {
  const group = program.command("cert").description("Client certificates: issue");
  const issue = group
    .command("issue")
    .description("Get a client certificate that acts as the current API token (until the token is revoked or expires); use it with --cert/--key")
    .requiredOption("--out <dir>", "directory for client.key (0600), client.crt and ca.crt");
  addClientOptions(issue);
  issue.action(async (flags: ClientFlags & { out: string }) => {
    const key = await generateKey();
    const csrPem = await createCsr(key, "edgeplane client");
    const res = await callCoordinator(deps, flags, ({ enrolment }, unary) => enrolment.enrol({ csrPem }, unary));
    if (!res.certificatePem) throw new CliError("the coordinator returned no certificate");
    ensurePrivateDir(flags.out);
    writePrivateFile(join(flags.out, "client.key"), await privateKeyToPem(key.privateKey));
    writePrivateFile(join(flags.out, "client.crt"), res.certificatePem);
    writePrivateFile(join(flags.out, "ca.crt"), res.caPem);
    println(deps.io, `wrote ${join(flags.out, "client.crt")} (valid until ${res.notAfter ? formatTimestamp(res.notAfter) : "?"}), client.key and ca.crt`);
    println(deps.io, `use: --cert ${join(flags.out, "client.crt")} --key ${join(flags.out, "client.key")} --ca ${join(flags.out, "ca.crt")}`);
  });
}

/** Registers token, node and cert. */
export function registerAccessCommands(program: Command, deps: CliDeps): void {
  registerToken(program, deps);
  registerNode(program, deps);
  registerCert(program, deps);
}
