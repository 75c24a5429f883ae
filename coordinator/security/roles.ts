// Who may call what: the roles of API tokens, the permissions each includes, and the rule of every RPC.
// Pure data and lookups. A method with no rule here is refused (fail closed); the unit test checks every served
// method has one.

/** Roles of API tokens, weakest first; each includes every permission of the ones before it. */
export const ROLES = ["viewer", "submitter", "operator", "admin"] as const;
export type Role = (typeof ROLES)[number];

export type Permission =
  /** GetTask, ListTasks, WatchTask, WatchTasks (within the token's clusters). */
  | "tasks.read"
  /** ListClusters, ListNodes, GetStatus. */
  | "fleet.read"
  /** SubmitTask, SubmitTasks (within the token's clusters, under its quotas). */
  | "tasks.submit"
  /** CancelTask of tasks the same token submitted. */
  | "tasks.cancel.own"
  /** CancelTask of any task. */
  | "tasks.cancel.any"
  | "clusters.register"
  | "nodes.drain"
  /** CreateToken, ListTokens, RevokeToken. */
  | "tokens.manage"
  /** ListNodeIdentities, RevokeNode. */
  | "nodes.revoke"
  /** AgentService.Connect: enrolled nodes only. */
  | "agent.connect";

const VIEWER: Permission[] = ["tasks.read", "fleet.read"];
const SUBMITTER: Permission[] = [...VIEWER, "tasks.submit", "tasks.cancel.own"];
const OPERATOR: Permission[] = [...SUBMITTER, "tasks.cancel.any", "clusters.register", "nodes.drain"];
const ADMIN: Permission[] = [...OPERATOR, "tokens.manage", "nodes.revoke"];

export const ROLE_PERMISSIONS: Readonly<Record<Role, ReadonlySet<Permission>>> = {
  viewer: new Set(VIEWER),
  submitter: new Set(SUBMITTER),
  operator: new Set(OPERATOR),
  admin: new Set(ADMIN),
};

/** What an enrolled node's certificate allows: its stream, and draining itself (the service checks "itself"). */
export const NODE_PERMISSIONS: ReadonlySet<Permission> = new Set<Permission>(["agent.connect", "nodes.drain"]);

export type MethodRule =
  /** Callable with no credentials at all. */
  | { access: "public"; mutating: false }
  /** Authenticated by a join token (node certificate) or an API token (client certificate). */
  | { access: "enrol"; mutating: true }
  /** Needs a principal with this permission. */
  | { access: "permission"; permission: Permission; mutating: boolean };

const read = (permission: Permission): MethodRule => ({ access: "permission", permission, mutating: false });
const write = (permission: Permission): MethodRule => ({ access: "permission", permission, mutating: true });

/** Every RPC the coordinator serves behind the guard, by full name `package.Service/Method`. */
export const METHOD_RULES: Readonly<Record<string, MethodRule>> = {
  "edgeplane.v1.TaskService/SubmitTask": write("tasks.submit"),
  "edgeplane.v1.TaskService/SubmitTasks": write("tasks.submit"),
  "edgeplane.v1.TaskService/GetTask": read("tasks.read"),
  "edgeplane.v1.TaskService/ListTasks": read("tasks.read"),
  "edgeplane.v1.TaskService/CancelTask": write("tasks.cancel.own"),
  "edgeplane.v1.TaskService/WatchTask": read("tasks.read"),
  "edgeplane.v1.TaskService/WatchTasks": read("tasks.read"),
  "edgeplane.v1.ClusterService/RegisterCluster": write("clusters.register"),
  "edgeplane.v1.ClusterService/ListClusters": read("fleet.read"),
  "edgeplane.v1.ClusterService/ListNodes": read("fleet.read"),
  "edgeplane.v1.ClusterService/DrainNode": write("nodes.drain"),
  "edgeplane.v1.ClusterService/GetStatus": read("fleet.read"),
  "edgeplane.v1.AgentService/Connect": write("agent.connect"),
  "edgeplane.v1.EnrolmentService/GetCertificateAuthority": { access: "public", mutating: false },
  "edgeplane.v1.EnrolmentService/Enrol": { access: "enrol", mutating: true },
  "edgeplane.v1.TokenService/CreateToken": write("tokens.manage"),
  "edgeplane.v1.TokenService/ListTokens": read("tokens.manage"),
  "edgeplane.v1.TokenService/RevokeToken": write("tokens.manage"),
  "edgeplane.v1.NodeIdentityService/ListNodeIdentities": read("nodes.revoke"),
  "edgeplane.v1.NodeIdentityService/RevokeNode": write("nodes.revoke"),
};

/** The weakest role that has a permission (for messages: "needs role operator or higher"). */
export function minimumRole(p: Permission): Role | undefined {
  return ROLES.find((r) => ROLE_PERMISSIONS[r].has(p));
}

export function parseRole(text: string): Role | undefined {
  return (ROLES as readonly string[]).includes(text) ? (text as Role) : undefined;
}
