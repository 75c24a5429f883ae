// Benchmark flags, resolved once at start-up. Must never read process.argv anywhere else.
import { parseArgs } from "node:util";

export interface BenchOptions {
  /** Smaller sample sizes for a smoke run (`--quick`). Default false. */
  quick: boolean;
  /** Append the Markdown section to bench/RESULTS.md; `--no-write` turns it off. Default true. */
  write: boolean;
  /** Agents started, each in cluster `bench`, agent i serving device `sensor-i` (`--agents`). Default 4. */
  agents: number;
  /**
   * Worker threads per agent (`--workers`), i.e. tasks each agent runs at once. Default 1: four agents give four
   * slots, already more than the two cores this benchmark was written on, so more workers only add contention.
   */
  workers: number;
  /** Log level of the coordinator and agents (`--log-level`). Default `info`, what operators run. */
  logLevel: string;
}

export const USAGE = `usage: node dist/bench/run.js [--quick] [--no-write] [--agents N] [--workers N] [--log-level LEVEL]
  --quick          small sample sizes (smoke run, about half a minute)
  --no-write       print the results only; do not append them to bench/RESULTS.md
  --agents N       agents to start (default 4)
  --workers N      worker threads per agent (default 1)
  --log-level L    log level of the child processes (default info)`;

function positiveInt(name: string, text: string | undefined, dflt: number): number {
  if (text === undefined) return dflt;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 64) throw new Error(`--${name} must be an integer from 1 to 64, got ${JSON.stringify(text)}`);
  return n;
}

/** Parses the flags; throws an Error whose message says what to fix. */
export function parseBenchOptions(argv: readonly string[]): BenchOptions | "help" {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      quick: { type: "boolean", default: false },
      "no-write": { type: "boolean", default: false },
      agents: { type: "string" },
      workers: { type: "string" },
      "log-level": { type: "string", default: "info" },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) return "help";
  const levels = ["trace", "debug", "info", "warn", "error", "fatal", "silent"];
  if (!levels.includes(values["log-level"])) throw new Error(`--log-level must be one of ${levels.join(", ")}`);
  return {
    quick: values.quick,
    write: !values["no-write"],
    agents: positiveInt("agents", values.agents, 4),
    workers: positiveInt("workers", values.workers, 1),
    logLevel: values["log-level"],
  };
}
