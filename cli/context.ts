// Plumbing shared by the client commands: output sink, common flags, the coordinator call wrapper.
// Must never decide what a command prints; it only carries output and maps errors at the call boundary.
import { readFileSync } from "node:fs";
import { InvalidArgumentError, Option, type Command } from "commander";
import { toJson, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import type { CallOptions } from "@connectrpc/connect";
import { COORDINATOR_ENV, DEFAULT_COORDINATOR_ADDRESS, type EdgeplaneClients } from "./client.js";
import { CliError, toCliError, UsageError } from "./errors.js";
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
  /** Opens clients for a coordinator address. Default: `createClients`. */
  connect(address: string): EdgeplaneClients;
  now(): Date;
}

/** Flags every client command has. */
export interface ClientFlags {
  coordinator: string;
  /** Deadline of each unary call, in ms. */
  timeout: number;
  json?: boolean;
}

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
  return new Option("--coordinator <host:port>", "coordinator address")
    .env(COORDINATOR_ENV)
    .default(DEFAULT_COORDINATOR_ADDRESS)
    .argParser(arg(parseHostPort));
}

/** Adds `--coordinator` and `--timeout` to a client command. */
export function addClientOptions(cmd: Command): Command {
  return cmd
    .addOption(coordinatorOption())
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
export async function callCoordinator<T>(
  deps: CliDeps,
  flags: ClientFlags,
  fn: (clients: EdgeplaneClients, unary: CallOptions) => Promise<T>,
): Promise<T> {
  try {
    return await fn(deps.connect(flags.coordinator), { timeoutMs: flags.timeout });
  } catch (err) {
    throw toCliError(err, flags.coordinator);
  }
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
