// Checks that depend on what a call acts on, used by the services after the guard has admitted the call: cluster
// scope (a token limited to some clusters), task ownership (a submitter cancels only its own tasks), and a node
// draining only itself. Pure: each check throws PermissionDeniedError with what is needed, or returns.
import { PermissionDeniedError } from "../errors.js";
import type { TaskRecord } from "../tasks/types.js";
import type { Principal } from "./principal.js";
import { NODE_PERMISSIONS, ROLE_PERMISSIONS, type Permission } from "./roles.js";

function has(p: Principal, perm: Permission): boolean {
  switch (p.kind) {
    case "insecure":
      return true;
    case "token":
      return ROLE_PERMISSIONS[p.role].has(perm);
    case "node":
      return NODE_PERMISSIONS.has(perm);
    case "join":
    case "anonymous":
      return false;
    default: {
      const never: never = p;
      return never;
    }
  }
}

function scopeText(p: Principal): string {
  return p.kind === "token" && p.clusters !== "*" ? [...p.clusters].sort().join(", ") : "*";
}

/** Whether the principal may act on this cluster. */
export function inScope(p: Principal, clusterId: string): boolean {
  if (p.kind === "insecure") return true;
  if (p.kind === "node") return p.clusterId === clusterId;
  if (p.kind !== "token") return false;
  return p.clusters === "*" || p.clusters.has(clusterId);
}

/** Whether every cluster is in scope (no filtering needed). */
export function unscoped(p: Principal): boolean {
  return p.kind === "insecure" || (p.kind === "token" && p.clusters === "*");
}

/** The one cluster a scoped principal is limited to, when it is exactly one (to fill in as a default). */
export function onlyCluster(p: Principal): string | undefined {
  return p.kind === "token" && p.clusters !== "*" && p.clusters.size === 1 ? [...p.clusters][0] : undefined;
}

/** The cluster a task belongs to for scoping: the one it asked for, else the one it was placed in. */
function taskCluster(t: TaskRecord): string {
  return t.spec.clusterId || t.assignedCluster;
}

export function canSeeTask(p: Principal, t: TaskRecord): boolean {
  return unscoped(p) || inScope(p, taskCluster(t));
}

export function requireCluster(p: Principal, clusterId: string, what: string): void {
  if (!inScope(p, clusterId)) {
    throw new PermissionDeniedError(`${what}: cluster ${clusterId || "(any)"} is outside ${p.id}'s clusters (${scopeText(p)})`);
  }
}

/**
 * A submission's cluster under the principal's scope: a token limited to one cluster submits there by default; a
 * token limited to several must name one of them. Returns the cluster to use.
 */
export function submitCluster(p: Principal, clusterId: string, field: string): string {
  if (unscoped(p)) return clusterId;
  if (!clusterId) {
    const only = onlyCluster(p);
    if (only) return only;
    throw new PermissionDeniedError(`${field}.clusterId: ${p.id} may submit only to clusters ${scopeText(p)}; name one of them`);
  }
  requireCluster(p, clusterId, `${field}.clusterId`);
  return clusterId;
}

export function requireTaskVisible(p: Principal, t: TaskRecord): void {
  if (!canSeeTask(p, t))
    throw new PermissionDeniedError(`task ${t.id} is in cluster ${taskCluster(t) || "(none yet)"}, outside ${p.id}'s clusters (${scopeText(p)})`);
}

/** Operators and admins cancel any task (in scope); submitters only the tasks they submitted. */
export function requireCancel(p: Principal, t: TaskRecord): void {
  requireTaskVisible(p, t);
  if (has(p, "tasks.cancel.any")) return;
  if (t.owner !== undefined && t.owner === p.id) return;
  throw new PermissionDeniedError(
    `task ${t.id} was submitted by ${t.owner ?? "an unauthenticated client"}; ${p.id} may cancel only its own tasks (role operator or higher cancels any)`,
  );
}

/** A node drains only itself; tokens with nodes.drain drain nodes of their clusters. */
export function requireDrain(p: Principal, nodeId: string, nodeCluster: string | undefined): void {
  if (p.kind === "node") {
    if (p.nodeId !== nodeId) throw new PermissionDeniedError(`node ${p.nodeId} may drain only itself, not ${nodeId}`);
    return;
  }
  if (nodeCluster !== undefined) requireCluster(p, nodeCluster, `node ${nodeId}`);
}

/** The owner recorded on a task a principal submits (undefined when unauthenticated). */
export function ownerOf(p: Principal): string | undefined {
  return p.kind === "token" ? p.id : undefined;
}
