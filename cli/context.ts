// Plumbing shared by the client commands: output sink, common flags, the coordinator call wrapper.
// Must never decide what a command prints; it only carries output and maps errors at the call boundary.
import { existsSync, readFileSync } from "node:fs";
import { InvalidArgumentError, Option, type Command } from "commander";
import { toJson, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import type { CallOptions } from "@connectrpc/connect";
import { CA_ENV, COORDINATOR_ENV, DEFAULT_COORDINATOR_ADDRESS, TOKEN_ENV, TOKEN_FILE_ENV, type ClientSecurity, type EdgeplaneClients } from "./client.js";
import { Code, ConnectError } from "@connectrpc/connect";
import { CliError, isUnreachable, toCliError, UsageError } from "./errors.js";
import { formatMs } from "./format.js";
import { parseDuration, parseHostPort } from "./parse.js";

/** Where commands write. Raw text: callers add newlines. */
export interface CliIo {
  write(text: string): void;
  writeError(text: string): void;
}

/** What commands depend on, injectable so tests run them without sockets. */
export interface CliDeps {
  io: CliIo;
  /** Opens clients for a coordinator address with the given credentials. Default: `createClients`. */
  connect(address: string, security?: ClientSecurity): EdgeplaneClients;
  now(): Date;
}

/** Flags every client command has. */
export interface ClientFlags {
  coordinator: string;
  /** Deadline of each unary call, in ms. */
  timeout: number;
  json?: boolean;
  /** Bearer token (`--token`, EDGEPLANE_TOKEN). */
  token?: string;
  /** File holding the bearer token (`--token-file`, EDGEPLANE_TOKEN_FILE). */
  tokenFile?: string;
  /** The coordinator's CA certificate file (`--ca`, EDGEPLANE_CA). */
  ca?: string;
  /** Plaintext, for a coordinator started with --insecure. */
  insecure?: boolean;
  /** Client certificate and key files (`--cert`, `--key`; from `edgeplane cert issue`). */
  cert?: string;
  key?: string;
}

/**
 * Where the CLI looks for a token when none is given: the admin token `edgeplane dev` (and a coordinator with the
 * default --data-dir) writes, relative to the current directory, so a first session works with no setup.
 */
export const DEFAULT_TOKEN_FILE = "data/admin.token";
/** Set (to anything) to make client commands speak plaintext, like --insecure. */
export const INSECURE_ENV = "EDGEPLANE_INSECURE";

/** Per-call deadline for unary RPCs unless `--timeout` says otherwise. */
export const DEFAULT_CALL_TIMEOUT_MS = 10_000;

/**
 * Adapts a parser to commander: its UsageError becomes commander's InvalidArgumentError, so the
 * message reads `error: option '--memory <size>' argument 'x' is invalid. cannot parse …` and exits 2.
 */
export function arg<T>(parse: (text: string) => T): (value: string, previous: T) => T {
  return collect((value: string) => parse(value));
}

/**
 * Like `arg`, for flags that may be repeated: `parse` gets the value so far (undefined the first time)
 * and returns the new one.
 */
export function collect<T>(parse: (text: string, previous: T | undefined) => T): (value: string, previous: T) => T {
  return (value, previous) => {
    try {
      return parse(value, previous);
    } catch (err) {
      if (err instanceof UsageError) throw new InvalidArgumentError(err.message);
      throw err;
    }
  };
}

/** A repeatable flag whose values (each possibly a list) are appended. */
export function repeatable<T>(parse: (text: string) => T[]): (value: string, previous: T[]) => T[] {
  return collect((value: string, previous: T[] | undefined) => [...(previous ?? []), ...parse(value)]);
}

/** The coordinator address flag (`--coordinator`, env EDGEPLANE_ADDR, default 127.0.0.1:50051). */
export function coordinatorOption(): Option {
  return new Option("--coordinator <host:port>", "coordinator address").env(COORDINATOR_ENV).default(DEFAULT_COORDINATOR_ADDRESS).argParser(arg(parseHostPort));
}

/** Adds `--coordinator`, `--timeout` and the credential flags to a client command. */
export function addClientOptions(cmd: Command): Command {
  return cmd
    .addOption(coordinatorOption())
    .addOption(new Option("--token <token>", "bearer token (an API token from `edgeplane token create`)").env(TOKEN_ENV))
    .addOption(new Option("--token-file <path>", `file holding the bearer token (default: ${DEFAULT_TOKEN_FILE} if it exists)`).env(TOKEN_FILE_ENV))
    .addOption(new Option("--ca <file>", "the coordinator's CA certificate (PEM); default: pinned by the hash in the token").env(CA_ENV))
    .addOption(new Option("--insecure", "plaintext, no TLS: for a coordinator started with --insecure").env(INSECURE_ENV))
    .addOption(new Option("--cert <file>", "client certificate (from edgeplane cert issue), instead of a token").env("EDGEPLANE_CERT"))
    .addOption(new Option("--key <file>", "private key of --cert").env("EDGEPLANE_KEY"))
    .addOption(
      new Option("--timeout <duration>", "deadline for each request (watches have none)")
        .default(DEFAULT_CALL_TIMEOUT_MS, formatMs(DEFAULT_CALL_TIMEOUT_MS))
        .argParser(arg(parseDuration)),
    );
}

/** Adds `--json`: print the response in the proto JSON form instead of a table. */
export function addJsonOption(cmd: Command): Command {
  return cmd.option("--json", "print proto JSON (the API's own shape) instead of text");
}

/**
 * Runs one command's calls against the coordinator named by the flags. Errors leave as CliError with
 * `CODE: message`, or a hint about --coordinator when nothing answered there.
 */
export async function callCoordinator<T>(deps: CliDeps, flags: ClientFlags, fn: (clients: EdgeplaneClients, unary: CallOptions) => Promise<T>): Promise<T> {
  const security = clientSecurity(flags);
  try {
    return await fn(deps.connect(flags.coordinator, security), { timeoutMs: flags.timeout });
  } catch (err) {
    throw explainSecurityError(err, flags.coordinator, security) ?? toCliError(err, flags.coordinator);
  }
}

/** Node's certificate verification failures: the coordinator's CA is not trusted. */
const CERT_CODES: ReadonlySet<string> = new Set([
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "UNABLE_TO_GET_ISSUER_CERT",
  "CERT_SIGNATURE_FAILURE",
  "CERT_HAS_EXPIRED",
  "ERR_TLS_CERT_ALTNAME_INVALID",
  "CERT_UNTRUSTED",
]);

function errorCodes(err: unknown): string[] {
  const codes: string[] = [];
  const seen = new Set<unknown>();
  for (let e: unknown = err; e instanceof Error && !seen.has(e); e = e.cause) {
    seen.add(e);
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string") codes.push(code);
    if (e.name === "CaMismatchError") codes.push("CA_MISMATCH");
  }
  return codes;
}

/** A CLI message for TLS and credential failures (untrusted CA, TLS against plaintext and back, no token); else undefined. */
export function explainSecurityError(err: unknown, coordinator: string, security: ClientSecurity): CliError | undefined {
  if (isUnreachable(err)) return undefined;
  const codes = errorCodes(err);
  const cert = codes.find((c) => CERT_CODES.has(c));
  if (codes.includes("CA_MISMATCH")) return new CliError((err as Error).message, 1, { cause: err });
  if (cert) {
    return new CliError(
      `cannot verify the TLS certificate of the coordinator at ${coordinator} (${cert}): give its CA with --ca or EDGEPLANE_CA (<data-dir>/ca.crt), or a full token (EP1…) that pins it`,
      1,
      { cause: err },
    );
  }
  if (codes.includes("ERR_SSL_WRONG_VERSION_NUMBER") || codes.includes("EPROTO")) {
    return new CliError(`the coordinator at ${coordinator} does not speak TLS (started with --insecure?); add --insecure`, 1, { cause: err });
  }
  if (err instanceof ConnectError) {
    if (security.insecure && (err.code === Code.Canceled || err.code === Code.Unavailable || err.code === Code.Internal)) {
      return new CliError(
        `no plaintext gRPC answer from ${coordinator} (${err.rawMessage}): the coordinator serves TLS unless it was started with --insecure; drop --insecure`,
        1,
        { cause: err },
      );
    }
    if (err.code === Code.Unauthenticated && !security.token) {
      return new CliError(`UNAUTHENTICATED: ${err.rawMessage} (no token given: set --token, EDGEPLANE_TOKEN or EDGEPLANE_TOKEN_FILE)`, 1, { cause: err });
    }
  }
  return undefined;
}

/** The credentials the flags (or their environment variables, or the default token file) describe. */
export function clientSecurity(flags: Pick<ClientFlags, "token" | "tokenFile" | "ca" | "insecure" | "cert" | "key">): ClientSecurity {
  if (Boolean(flags.cert) !== Boolean(flags.key)) throw new UsageError("give --cert and --key together");
  let token = flags.token?.trim() || undefined;
  if (!token && flags.tokenFile) token = readText(flags.tokenFile).trim() || undefined;
  if (!token && !flags.cert && !flags.insecure && existsSync(DEFAULT_TOKEN_FILE)) token = readText(DEFAULT_TOKEN_FILE).trim() || undefined;
  return {
    token,
    caPem: flags.ca ? readText(flags.ca) : undefined,
    insecure: flags.insecure === true,
    certPem: flags.cert ? readText(flags.cert) : undefined,
    keyPem: flags.key ? readText(flags.key) : undefined,
  };
}

/** Writes a line. */
export function println(io: CliIo, text: string): void {
  io.write(`${text}\n`);
}

/** Writes a message as pretty proto JSON (enum names, int64 as strings, RFC 3339 times). */
export function printJson<Desc extends DescMessage>(io: CliIo, schema: Desc, message: MessageShape<Desc>): void {
  println(io, JSON.stringify(toJson(schema, message), null, 2));
}

/** Reads a text file, `-` meaning stdin; a missing file is a clear error, not a stack trace. */
export function readText(path: string): string {
  try {
    return readFileSync(path === "-" ? 0 : path, "utf8");
  } catch (err) {
    throw new CliError(`cannot read ${path === "-" ? "stdin" : path}: ${(err as Error).message}`);
  }
}
