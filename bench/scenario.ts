// What a benchmark scenario is: a named run that starts the systems it needs through its context, and returns rows
// for the results table, measurements checked against the targets, and every failure it saw. Types only.
import type { BenchFleet, FleetSecurity, FleetShape } from "./fleet.js";
import type { ProfileSummary } from "./cpuprofile.js";
import type { TargetId } from "./targets.js";
import type { BullmqSetup } from "./systems/bullmq.js";

export type { TargetId } from "./targets.js";

/** An agent of the benchmark fleet. */
export interface BenchAgent {
  nodeId: string;
  clusterId: string;
  /** Devices it serves: LOCAL tasks for them run on it first. */
  deviceIds: string[];
}

export interface ScenarioContext {
  /** Smoke run: scenarios use their small sizes. */
  quick: boolean;
  /** Aborted on SIGINT: every loop stops at its next step. */
  signal: AbortSignal;
  /** A progress line on stderr. */
  progress(line: string): void;
  /** Agents and worker threads per agent of a fleet whose scenario does not fix them (`--agents`, `--workers`). */
  defaultShape: FleetShape;
  /**
   * Starts a fresh coordinator and agents (new data directory, nothing queued) and waits until every agent is
   * READY; any fleet this scenario started before is stopped first. `label` names it in logs and profiles.
   */
  startFleet(shape: FleetShape, label: string, security?: FleetSecurity): Promise<BenchFleet>;
  /** Also run edgeplane with --insecure in comparing scenarios, to show what TLS + auth cost (`--no-security-cost` turns it off). */
  securityCost: boolean;
  /** Stops a fleet (its logs are checked, its CPU counted, its profile summarised); the runner stops leftovers. */
  stopFleet(fleet: BenchFleet): Promise<void>;
  /** BullMQ side by side (`--compare-bullmq`, the default); undefined with `--no-compare-bullmq`. */
  bullmq: BullmqSetup | undefined;
  /** Alternating rounds of each system in comparing scenarios (`--rounds`). */
  rounds: number;
  /** The run's directory (fleets' data and logs, profiles, the benchmark's own Redis): kept afterwards. */
  runDir: string;
}

/** One line of the results table. */
export interface ResultRow {
  metric: string;
  value: string;
}

/** A measured figure compared with a target (targets.ts holds the limits). */
export interface TargetCheck {
  target: TargetId;
  /** What was measured, e.g. "submit → terminal seen, p99, round 1". */
  measure: string;
  /** In the target's unit; a boolean for yes/no targets ("kept up"); NaN when it could not be measured. */
  value: number | boolean;
}

export interface ScenarioResult {
  rows: ResultRow[];
  checks: TargetCheck[];
  /** Anything that went wrong (task not succeeded, RPC error, stall, time budget). Any failure fails the run. */
  failures: string[];
  /** Facts needed to read the rows, e.g. sample sizes. */
  notes: string[];
  /** CPU profiles summarised (`--profile`); filled by the runner from the fleets the scenario started. */
  profiles?: ProfileSummary[];
}

export interface Scenario {
  /** Short stable id, e.g. `light-load`; what `--only` takes. */
  id: string;
  /** Ids of a family (e.g. `throughput` for `throughput-4x1` and `throughput-4x8`): `--only` accepts it too. */
  group?: string;
  /** Title in the results table. */
  title: string;
  /** Runs BullMQ side by side when the comparison is on (the runner then checks Redis before anything starts). */
  comparesBullmq?: boolean;
  run(ctx: ScenarioContext): Promise<ScenarioResult>;
}
