// Benchmark flags, resolved once at start-up. Must never read process.argv anywhere else.
import { parseArgs } from "node:util";
import type { FleetSecurity } from "./fleet.js";
import type { Scenario } from "./scenario.js";

export interface BenchOptions {
  /** Smaller sample sizes and one round for a smoke run (`--quick`). Default false. */
  quick: boolean;
  /** Append the Markdown section to bench/RESULTS.md; `--no-write` turns it off. Default true. */
  write: boolean;
  /** Scenario ids or groups to run (`--only a,b`); empty = all. Default all. */
  only: string[];
  /** Print the scenario ids and exit (`--list`). */
  list: boolean;
  /** Agents of every fleet (`--agents`). Default 4, the shape issue 8 measures. */
  agents: number;
  /**
   * Worker threads per agent (`--workers`) for the scenarios whose shape is not fixed (light load, open loop,
   * CRITICAL, large series). Default 1. The throughput scenarios always run 1 and 8.
   */
  workers: number;
  /** Log level of the coordinator and agents (`--log-level`). Default `info`, what operators run. */
  logLevel: string;
  /** Run BullMQ side by side (`--compare-bullmq`, off with `--no-compare-bullmq`). Default on, also with --quick. */
  compareBullmq: boolean;
  /** Also run BullMQ on the benchmark's own redis-server with appendfsync always (`--no-redis-fsync` turns it off). Default on. */
  redisFsync: boolean;
  /** The shared Redis BullMQ uses (`--redis HOST:PORT`). Default 127.0.0.1:6379. */
  redis: { host: string; port: number };
  /** Alternating rounds per comparing scenario (`--rounds`). Default 2, 1 with --quick. */
  rounds: number;
  /** Start coordinators and agents with --cpu-prof and summarise the profiles (`--profile`). Default off. */
  profile: boolean;
  /** Fleet security: the product's default, TLS + tokens (`secure`); `--insecure` runs plaintext fleets only. */
  security: FleetSecurity;
  /** Comparing scenarios also run edgeplane with --insecure each round, to show what TLS + auth cost. Default on. */
  securityCost: boolean;
}

export const USAGE = `usage: npm run bench [-- FLAGS]   or   node dist/bench/run.js [FLAGS]
  --quick              small sizes and one round (smoke run, a few minutes)
  --no-write           print the results only; do not append them to bench/RESULTS.md
  --only IDS           run only these scenarios (comma-separated ids or groups; --list shows them)
  --list               list the scenarios and exit
  --compare-bullmq     run BullMQ side by side (the default)
  --no-compare-bullmq  edgeplane only (no Redis needed)
  --no-redis-fsync     skip BullMQ on the benchmark's own appendfsync-always redis-server
  --redis HOST:PORT    the Redis BullMQ uses (default 127.0.0.1:6379); it must be up
  --rounds N           alternating rounds per comparing scenario (default 2, quick 1)
  --profile            CPU-profile the coordinator and agents (first fleet of each scenario) and summarise
  --agents N           agents per fleet (default 4)
  --workers N          worker threads per agent where a scenario does not fix it (default 1)
  --log-level L        log level of the child processes (default info)
  --insecure           plaintext fleets (coordinator and agents with --insecure) instead of TLS + tokens
  --no-security-cost   do not also run plaintext edgeplane in comparing scenarios (the TLS + auth cost rows)`;

function intInRange(name: string, text: string | undefined, dflt: number, min: number, max: number): number {
  if (text === undefined) return dflt;
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(text)}`);
  return n;
}

function hostPort(text: string): { host: string; port: number } {
  const m = /^([^:]+):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[2]) : Number.NaN;
  if (!m || port < 1 || port > 65535) throw new Error(`--redis must be HOST:PORT, e.g. 127.0.0.1:6379, got ${JSON.stringify(text)}`);
  return { host: m[1], port };
}

/** Parses the flags; throws an Error whose message says what to fix. */
export function parseBenchOptions(argv: readonly string[]): BenchOptions | "help" {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      quick: { type: "boolean", default: false },
      "no-write": { type: "boolean", default: false },
      only: { type: "string" },
      list: { type: "boolean", default: false },
      agents: { type: "string" },
      workers: { type: "string" },
      "log-level": { type: "string", default: "info" },
      "compare-bullmq": { type: "boolean" },
      "no-compare-bullmq": { type: "boolean" },
      "no-redis-fsync": { type: "boolean", default: false },
      redis: { type: "string", default: "127.0.0.1:6379" },
      rounds: { type: "string" },
      profile: { type: "boolean", default: false },
      insecure: { type: "boolean", default: false },
      "no-security-cost": { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) return "help";
  const levels = ["trace", "debug", "info", "warn", "error", "fatal", "silent"];
  if (!levels.includes(values["log-level"])) throw new Error(`--log-level must be one of ${levels.join(", ")}`);
  if (values["compare-bullmq"] && values["no-compare-bullmq"]) throw new Error("give --compare-bullmq or --no-compare-bullmq, not both");
  const only =
    values.only === undefined
      ? []
      : values.only
          .split(",")
          .map((s) => s.trim())
          .filter((s) => s !== "");
  if (values.only !== undefined && only.length === 0) throw new Error("--only needs at least one scenario id (--list shows them)");
  return {
    quick: values.quick,
    write: !values["no-write"],
    only,
    list: values.list,
    agents: intInRange("agents", values.agents, 4, 1, 64),
    workers: intInRange("workers", values.workers, 1, 1, 64),
    logLevel: values["log-level"],
    compareBullmq: !values["no-compare-bullmq"],
    redisFsync: !values["no-redis-fsync"],
    redis: hostPort(values.redis),
    rounds: intInRange("rounds", values.rounds, values.quick ? 1 : 2, 1, 10),
    profile: values.profile,
    security: values.insecure ? "insecure" : "secure",
    securityCost: !values["no-security-cost"] && !values.insecure,
  };
}

/** The scenarios `--only` picks (ids or groups), in list order; throws naming the valid ids on an unknown one. */
export function selectScenarios(all: readonly Scenario[], only: readonly string[]): Scenario[] {
  if (only.length === 0) return [...all];
  const known = new Set(all.flatMap((s) => [s.id, ...(s.group ? [s.group] : [])]));
  const unknown = only.filter((x) => !known.has(x));
  if (unknown.length > 0) throw new Error(`--only: unknown scenario ${unknown.join(", ")}; known: ${[...known].join(", ")}`);
  return all.filter((s) => only.includes(s.id) || (s.group !== undefined && only.includes(s.group)));
}
