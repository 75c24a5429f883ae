// The audit log: one JSON line per mutating call and per refused call (time, principal, peer, method, target,
// outcome). Its own file (mode 0600) by default, or a child of the coordinator log. It never carries request bodies,
// task inputs, outputs or token secrets: only ids, and for refusals the guard's own message.
import { pino, type Logger } from "pino";
import { restrictFile } from "../../lib/private-files.js";

export interface AuditEntry {
  /** Principal id, e.g. `token:ab12cd34ef`, `node:site-a/n1`, `anonymous`. */
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
  private constructor(private readonly out: Logger, readonly path: string | undefined) {}

  /** `-` writes to the given coordinator logger (as `audit: true` lines); anything else is a file path. */
  static open(destination: string, coordinatorLog: Logger): AuditLog {
    if (destination === "-") return new AuditLog(coordinatorLog.child({ audit: true }), undefined);
    const stream = pino.destination({ dest: destination, mkdir: true, sync: false, mode: 0o600, append: true });
    const out = pino({ base: null, timestamp: pino.stdTimeFunctions.isoTime, formatters: { level: () => ({}) } }, stream);
    restrictFile(destination);
    return new AuditLog(out, destination);
  }

  record(e: AuditEntry): void {
    this.out.info(e);
  }

  close(): void {
    if (this.path) {
      try {
        this.out.flush();
      } catch {
        // A destination not open yet has nothing to flush.
      }
    }
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
