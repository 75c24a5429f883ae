// Every fleet a benchmark run starts goes through here: at most one up at a time, each stopped when the next starts
// or its scenario ends, and on the way down its logs checked, its CPU counted and (with --profile) the first
// fleet of each scenario's profiles summarised. Never measures tasks.
import { join } from "node:path";
import { summarizeProfile, readProfile, type ProfileSummary } from "./cpuprofile.js";
import { BenchFleet, logProblems, type FleetSecurity, type FleetShape } from "./fleet.js";
import { errorText } from "./tasks.js";

export interface FleetPoolOptions {
  runDir: string;
  logLevel: string;
  security: FleetSecurity;
  profile: boolean;
  /** Repository root, to shorten paths in profiles. */
  repoRoot: string;
}

/** What the pool found while stopping fleets, for the scenario that started them. */
export interface FleetFindings {
  failures: string[];
  notes: string[];
  profiles: ProfileSummary[];
}

export class FleetPool {
  private current: BenchFleet | undefined;
  private readonly all: BenchFleet[] = [];
  private readonly stopped = new Set<BenchFleet>();
  private findings: FleetFindings = { failures: [], notes: [], profiles: [] };
  /** Scenario whose fleets are being started, and whether one of its fleets was profiled already. */
  private scenario = "";
  private profiled = false;

  constructor(private readonly o: FleetPoolOptions) {}

  /** Every fleet started so far (their directories hold the logs). */
  get fleets(): readonly BenchFleet[] {
    return this.all;
  }

  /** The next fleets belong to this scenario (profiles: its first fleet is summarised). */
  beginScenario(id: string): void {
    this.scenario = id;
    this.profiled = false;
    this.findings = { failures: [], notes: [], profiles: [] };
  }

  /** Findings since beginScenario, leaving them empty. */
  takeFindings(): FleetFindings {
    const f = this.findings;
    this.findings = { failures: [], notes: [], profiles: [] };
    return f;
  }

  async start(
    shape: FleetShape,
    label: string,
    signal: AbortSignal,
    progress: (line: string) => void,
    security: FleetSecurity = this.o.security,
  ): Promise<BenchFleet> {
    if (this.current) await this.stop(this.current);
    const profile = this.o.profile && !this.profiled;
    if (profile) this.profiled = true;
    const fleet = new BenchFleet({
      ...shape,
      label,
      parentDir: this.o.runDir,
      logLevel: this.o.logLevel,
      clusterId: "bench",
      security,
      profile,
    });
    this.all.push(fleet);
    this.current = fleet;
    progress(`${label}: starting coordinator and ${shape.agents} agent(s) × ${shape.workers} worker(s)${profile ? ", profiled" : ""} (${fleet.dir})`);
    try {
      await fleet.start(signal);
    } catch (err) {
      await this.stop(fleet);
      throw err;
    }
    return fleet;
  }

  /** Stops a fleet (idempotent): dead children and logged errors become failures, warnings notes. */
  async stop(fleet: BenchFleet): Promise<void> {
    if (this.current === fleet) this.current = undefined;
    if (this.stopped.has(fleet)) return fleet.stop();
    this.stopped.add(fleet);
    this.findings.failures.push(...fleet.deadChildren());
    // Read the logs before stopping: shutdown itself logs warnings (agents leaving) that are not findings.
    for (const c of fleet.children) {
      const p = logProblems(c);
      if (p.errors > 0)
        this.findings.failures.push(
          `${fleet.label}: ${c.name} logged ${p.errors} error(s) and ${p.warnings} warning(s) (${c.logFile}); first:\n${p.samples.join("\n")}`,
        );
      else if (p.warnings > 0) this.findings.notes.push(`${fleet.label}: ${c.name} logged ${p.warnings} warning(s); first: \`${p.samples[0]}\``);
    }
    await fleet.stop();
    if (fleet.plan.profile) this.summarizeProfiles(fleet);
  }

  /** Stops whatever is still up. */
  async stopAll(): Promise<void> {
    if (this.current) await this.stop(this.current);
  }

  /** Synchronous last resort (process exit): SIGKILL every child of every fleet. */
  killNow(): void {
    for (const f of this.all) f.killNow();
  }

  /** CPU seconds used so far by every fleet's coordinators and agents (stopped fleets: their last reading). */
  cpuSeconds(): { coordinator: number; agents: number } {
    let coordinator = 0,
      agents = 0;
    for (const f of this.all) {
      for (const [name, s] of f.cpuSeconds()) {
        if (!Number.isFinite(s)) continue;
        if (name === "coordinator") coordinator += s;
        else agents += s;
      }
    }
    return { coordinator, agents };
  }

  private summarizeProfiles(fleet: BenchFleet): void {
    const names = ["coordinator", ...(fleet.agents.length > 0 ? [fleet.agents[0].nodeId] : [])];
    for (const name of names) {
      const file = fleet.profileOf(name);
      if (!file) {
        this.findings.failures.push(
          `${fleet.label}: --profile: ${name} wrote no main-thread .cpuprofile in ${join(fleet.dir, "profiles", name)} (killed before it could exit?)`,
        );
        continue;
      }
      try {
        this.findings.profiles.push(
          summarizeProfile(readProfile(file), { label: `${name} — ${fleet.label} (${this.scenario})`, file, repoRoot: this.o.repoRoot }),
        );
      } catch (err) {
        this.findings.failures.push(`${fleet.label}: --profile: could not summarise ${file}: ${errorText(err)}`);
      }
    }
  }
}
