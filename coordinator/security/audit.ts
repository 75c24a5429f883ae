// The audit log: one JSON line per mutating call and per refused call (time, principal, peer, method, target,
// outcome). Its own file (mode 0600) by default, or a child of the coordinator log. It never carries request bodies,
// task inputs, outputs or token secrets: only ids, and for refusals the guard's own message.
import { createWriteStream, type WriteStream } from "node:fs";
import type { Logger } from "../../lib/log.js";
import { restrictFile } from "../../lib/private-files.js";

export interface AuditEntry {
  /** Principal id, e.g. `token:ab12cd34ef`, `node:site-a/n1`, `join:ab12cd34ef`, `anonymous`. */
  principal: string;
  /** Role of an API token principal. */
  role?: string;
  peer: string;
  method: string;
  /** What the call acted on: a task, node, cluster or token id. */
  target?: string;
  /** `OK` or the gRPC status code name. */
  outcome: string;
  /** Why a call was refused (only for UNAUTHENTICATED / PERMISSION_DENIED / RESOURCE_EXHAUSTED). */
  reason?: string;
}

export class AuditLog {
  private constructor(
    private readonly file: WriteStream | undefined,
    private readonly logger: Logger | undefined,
    readonly path: string | undefined,
  ) {}

  /** `-` writes to the coordinator's log (as `audit: true` lines); anything else is a file (appended, mode 0600). */
  static open(destination: string, coordinatorLog: Logger): AuditLog {
    if (destination === "-") return new AuditLog(undefined, coordinatorLog.child({ audit: true }), undefined);
    const file = createWriteStream(destination, { flags: "a", mode: 0o600 });
    file.on("error", (err) => coordinatorLog.error({ err: err.message, file: destination }, "cannot write the audit log"));
    restrictFile(destination);
    return new AuditLog(file, undefined, destination);
  }

  /** One JSON line: `time` (RFC 3339) first, then the entry. */
  record(e: AuditEntry): void {
    if (this.file) this.file.write(`${JSON.stringify({ time: new Date().toISOString(), ...e })}\n`);
    else this.logger?.info(e, "audit");
  }

  /** Flushes what is buffered and closes the file. */
  close(): Promise<void> {
    const f = this.file;
    if (!f || f.closed) return Promise.resolve();
    return new Promise((resolve) => f.end(resolve));
  }
}

/** Request or response fields that name what a call acted on, in the order they are looked for. */
const TARGET_FIELDS = ["taskId", "nodeId", "clusterId", "tokenId"] as const;

/**
 * The target of a call for the audit line: an id field of the request, else of the response (SubmitTask's new task
 * id, CreateToken's token id), else the number of tasks of a batch. Reads ids only, never bodies.
 */
export function auditTarget(request: unknown, response: unknown): string | undefined {
  for (const m of [request, response]) {
    if (!m || typeof m !== "object") continue;
    const o = m as Record<string, unknown>;
    for (const f of TARGET_FIELDS) if (typeof o[f] === "string" && o[f]) return o[f] as string;
    const token = o.token as { id?: unknown } | undefined;
    if (token && typeof token.id === "string" && token.id) return `token ${token.id}`;
    const node = o.node as { nodeId?: unknown } | undefined;
    if (node && typeof node.nodeId === "string") return node.nodeId;
    if (Array.isArray(o.tasks)) return `${o.tasks.length} tasks`;
  }
  return undefined;
}
