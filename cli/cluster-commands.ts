// Fleet commands: nodes, clusters, cluster register, drain, status (ClusterService).
// Must never render output inline: fleet-view.ts renders, this file only calls and chooses text or JSON.
import { Option, type Command } from "commander";
import { ClusterSchema, GetStatusResponseSchema, ListClustersResponseSchema, ListNodesResponseSchema, NodeSchema } from "../gen/edgeplane/v1/cluster_pb.js";
import { Tier, TierSchema } from "../gen/edgeplane/v1/types_pb.js";
import { addClientOptions, addJsonOption, arg, callCoordinator, collect, println, printJson, type CliDeps, type ClientFlags } from "./context.js";
import { CliError } from "./errors.js";
import { enumLabel } from "./format.js";
import { renderCluster, renderClusterTable, renderDrained, renderNodeHistory, renderNodeTable, renderStatus } from "./fleet-view.js";
import { collectLabel, enumChoices, parseEnum } from "./parse.js";

function registerNodes(program: Command, deps: CliDeps): void {
  const cmd = program
    .command("nodes")
    .description("List nodes: ID, CLUSTER, TIER, STATE, CPU and MEM free/total, RUNNING, DEVICES, LAST HEARTBEAT, RTT")
    .option("--cluster <id>", "only this cluster's nodes")
    .option("--device <id>", "only the node serving this device")
    .option("--history", "also print each node's state transitions");
  addJsonOption(addClientOptions(cmd));
  cmd.action(async (flags: ClientFlags & { cluster?: string; device?: string; history?: boolean }) => {
    const res = await callCoordinator(deps, flags, ({ clusters }, unary) =>
      clusters.listNodes({ clusterId: flags.cluster ?? "", deviceId: flags.device ?? "" }, unary),
    );
    if (flags.json) return printJson(deps.io, ListNodesResponseSchema, res);
    if (res.nodes.length === 0) {
      deps.io.writeError("no nodes found (start one with `edgeplane agent --cluster ID`)\n");
      return;
    }
    println(deps.io, renderNodeTable(res.nodes, deps.now()));
    if (flags.history) println(deps.io, `\n${renderNodeHistory(res.nodes)}`);
  });
}

function registerClusters(program: Command, deps: CliDeps): void {
  const cmd = program.command("clusters").description("List clusters: ID, TIER, NODES ready/total, HEALTH, CPU and MEMORY free/total, UTIL, LATENCY");
  addJsonOption(addClientOptions(cmd));
  cmd.action(async (flags: ClientFlags) => {
    const res = await callCoordinator(deps, flags, ({ clusters }, unary) => clusters.listClusters({}, unary));
    if (flags.json) return printJson(deps.io, ListClustersResponseSchema, res);
    if (res.clusters.length === 0) deps.io.writeError("no clusters yet (agents create theirs; or `edgeplane cluster register ID`)\n");
    else println(deps.io, renderClusterTable(res.clusters));
  });
}

function registerCluster(program: Command, deps: CliDeps): void {
  const group = program.command("cluster").description("Manage clusters (subcommand: register)");
  const cmd = group
    .command("register")
    .description("Declare a cluster before its agents connect (RegisterCluster); agents may also create clusters themselves")
    .argument("<id>", "cluster id")
    .addOption(
      new Option("--tier <tier>", enumChoices(TierSchema).join("|"))
        .default(Tier.EDGE, enumLabel(TierSchema, Tier.EDGE))
        .argParser(arg((t) => parseEnum(TierSchema, t) as Tier)),
    )
    .option("--label <key=value>", "label, repeatable", collect(collectLabel));
  addJsonOption(addClientOptions(cmd));
  cmd.action(async (id: string, flags: ClientFlags & { tier: Tier; label?: Record<string, string> }) => {
    const res = await callCoordinator(deps, flags, ({ clusters }, unary) =>
      clusters.registerCluster({ clusterId: id, tier: flags.tier, labels: flags.label ?? {} }, unary),
    );
    if (!res.cluster) throw new CliError(`the coordinator returned no cluster for ${id}`);
    if (flags.json) printJson(deps.io, ClusterSchema, res.cluster);
    else println(deps.io, renderCluster(res.cluster, deps.now()));
  });
}

function registerDrain(program: Command, deps: CliDeps): void {
  const cmd = program.command("drain").description("Stop sending new work to a node; its running tasks finish").argument("<node>", "node id");
  addJsonOption(addClientOptions(cmd));
  cmd.action(async (nodeId: string, flags: ClientFlags) => {
    const res = await callCoordinator(deps, flags, ({ clusters }, unary) => clusters.drainNode({ nodeId }, unary));
    if (!res.node) throw new CliError(`the coordinator returned no node for ${nodeId}`);
    if (flags.json) printJson(deps.io, NodeSchema, res.node);
    else println(deps.io, renderDrained(res.node));
  });
}

function registerStatus(program: Command, deps: CliDeps): void {
  const cmd = program.command("status").description("Fleet summary (nodes, queue, processed tasks, utilization) and per-cluster health");
  addJsonOption(addClientOptions(cmd));
  cmd.action(async (flags: ClientFlags) => {
    const res = await callCoordinator(deps, flags, ({ clusters }, unary) => clusters.getStatus({}, unary));
    if (flags.json) printJson(deps.io, GetStatusResponseSchema, res);
    else println(deps.io, renderStatus(res, flags.coordinator, deps.now()));
  });
}

/** Registers nodes, clusters, cluster register, drain and status. */
export function registerClusterCommands(program: Command, deps: CliDeps): void {
  registerNodes(program, deps);
  registerClusters(program, deps);
  registerCluster(program, deps);
  registerDrain(program, deps);
  registerStatus(program, deps);
}
