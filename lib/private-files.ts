// File modes for secrets and state at rest: private directories (0700), private files (0600), and the check that
// refuses a key file others can read. Shared by the coordinator and the agent; never reads or logs file contents.
import { chmodSync, existsSync, mkdirSync, renameSync, statSync, writeFileSync } from "node:fs";

/** A key file or data directory others can read: the process must not start on it. */
export class InsecureFileError extends Error {
  override readonly name = "InsecureFileError";
}

/**
 * Creates the directory (and parents) if missing and makes the directory itself 0700, tightening a looser mode left
 * by an older version. Returns whether the mode was changed.
 */
export function ensurePrivateDir(dir: string): boolean {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (process.platform === "win32") return false;
  const mode = statSync(dir).mode & 0o777;
  if ((mode & 0o077) === 0) return false;
  chmodSync(dir, mode & 0o700);
  return true;
}

/** Refuses a private key file that group or others may read or write, with the command that fixes it. */
export function assertPrivateKeyFile(path: string, what = "private key"): void {
  if (process.platform === "win32") return;
  let mode: number;
  try {
    mode = statSync(path).mode & 0o777;
  } catch (err) {
    throw new InsecureFileError(`cannot read the ${what} ${path}: ${(err as Error).message}`);
  }
  if ((mode & 0o077) !== 0) {
    throw new InsecureFileError(`the ${what} ${path} is readable by others (mode 0${mode.toString(8)}); run: chmod 600 ${path}`);
  }
}

/** Sets an existing file to 0600 (a database or log created before the process could choose its mode). */
export function restrictFile(path: string): void {
  if (process.platform === "win32" || !existsSync(path)) return;
  const mode = statSync(path).mode & 0o777;
  if ((mode & 0o077) !== 0) chmodSync(path, 0o600);
}

/** Writes a file atomically with mode 0600 (temp file, then rename), so a reader never sees half a key. */
export function writePrivateFile(path: string, content: string | Uint8Array): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, content, { mode: 0o600 });
  chmodSync(tmp, 0o600); // the umask may have narrowed the mode further, never widened it; make it exact
  renameSync(tmp, path);
}
