// CLI error types and the one place that turns any failure into `error: …` plus an exit code.
// Must never print anything but the final message: commands throw, main.ts reports.
import { CommanderError } from "commander";
import { Code, ConnectError } from "@connectrpc/connect";

/** A bad flag value or flag combination: exit code 2, like commander's own usage errors. */
export class UsageError extends Error {
  override readonly name = "UsageError";
  readonly exitCode = 2;
}

/** A failure already phrased for the user (gRPC error, task failed, file missing): exit code 1. */
export class CliError extends Error {
  override readonly name = "CliError";
  constructor(
    message: string,
    readonly exitCode = 1,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Node error codes that mean "nothing answered at that address". */
const UNREACHABLE_CODES: ReadonlySet<string> = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH", "ETIMEDOUT"]);

/**
 * The gRPC status code name, e.g. `INVALID_ARGUMENT`, as grpc-go, grpcurl and buf print it.
 * connect-es spells code 1 `Canceled`; gRPC spells it `CANCELLED`.
 */
export function grpcCodeName(code: Code): string {
  if (code === Code.Canceled) return "CANCELLED";
  const name = Code[code] as string | undefined;
  if (name === undefined) return `CODE_${code}`;
  return name.replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

/** Whether the error chain says the coordinator could not be reached at all (vs. it answered with an error). */
export function isUnreachable(err: unknown): boolean {
  const seen = new Set<unknown>();
  let e: unknown = err;
  while (e instanceof Error && !seen.has(e)) {
    seen.add(e);
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && UNREACHABLE_CODES.has(code)) return true;
    e = e.cause;
  }
  return false;
}

/**
 * Maps whatever a coordinator call threw to a CliError whose message names the problem:
 * `UNAVAILABLE: …` for gRPC errors, a hint about --coordinator when nothing listened.
 */
export function toCliError(err: unknown, coordinator: string): Error {
  if (err instanceof UsageError || err instanceof CliError) return err;
  if (isUnreachable(err)) {
    return new CliError(`cannot reach coordinator at ${coordinator} (is it running? set --coordinator or EDGEPLANE_ADDR)`, 1, { cause: err });
  }
  if (err instanceof ConnectError) {
    return new CliError(`${grpcCodeName(err.code)}: ${err.rawMessage}`, 1, { cause: err });
  }
  return err instanceof Error ? err : new Error(String(err));
}

/**
 * Writes `error: <message>` for a failure and returns the process exit code.
 * Commander has already printed its own usage errors and help, so those only map to a code.
 */
export function reportError(err: unknown, writeErr: (text: string) => void): number {
  if (err instanceof CommanderError) {
    // Help and --version end through here with exit code 0.
    if (err.exitCode === 0) return 0;
    return 2;
  }
  if (err instanceof UsageError) {
    writeErr(`error: ${err.message}\n`);
    return err.exitCode;
  }
  if (err instanceof CliError) {
    writeErr(`error: ${err.message}\n`);
    return err.exitCode;
  }
  if (err instanceof ConnectError) {
    writeErr(`error: ${grpcCodeName(err.code)}: ${err.rawMessage}\n`);
    return 1;
  }
  writeErr(`error: ${err instanceof Error ? err.message : String(err)}\n`);
  return 1;
}
