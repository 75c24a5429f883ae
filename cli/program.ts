// Builds the `edgeplane` command tree; parsing and running are the caller's (main.ts, or tests with fakes).
// Must never touch process.argv, exit the process or open connections while building.
import { readFileSync } from "node:fs";
import { Command } from "commander";
import { createClients } from "./client.js";
import { registerClusterCommands } from "./cluster-commands.js";
import type { CliDeps } from "./context.js";
import { registerRunCommands } from "./run.js";
import { registerTaskCommands } from "./task-commands.js";
import { registerAccessCommands } from "./token-commands.js";

const EXAMPLES = `
Examples:
  $ edgeplane dev                                          # coordinator + 3 local agents
  $ edgeplane submit --handler stats --values 1,2,3,4 --wait
  $ edgeplane submit --handler anomaly --device sensor-1 --priority high --input-file data.json
  $ edgeplane tasks --state queued,running
  $ edgeplane nodes --cluster site-a
  $ edgeplane status --json
  $ edgeplane token create --role submitter --clusters site-a --ttl 24h
  $ edgeplane token create --cluster site-a --uses 3       # a join token for agents

Client commands talk to --coordinator HOST:PORT (default 127.0.0.1:50051, or $EDGEPLANE_ADDR) over TLS, with the
token from --token / $EDGEPLANE_TOKEN (or ./data/admin.token); the CA is pinned by the token, or --ca / $EDGEPLANE_CA.
Failed calls exit 1 with "error: <gRPC code>: <message>"; usage errors exit 2.`;

/** The package version, from package.json next to the source (cli/) or the build (dist/cli/). */
function packageVersion(): string {
  for (const rel of ["../package.json", "../../package.json"]) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), "utf8")) as { name?: string; version?: string };
      if (pkg.name === "edgeplane" && pkg.version) return pkg.version;
    } catch {
      // Not at this depth; try the next.
    }
  }
  return "0.0.0";
}

/**
 * The whole CLI as a commander program. It throws instead of exiting (exitOverride), so callers decide
 * the exit code; `deps` replaces the output sink, the client factory or the clock, e.g. in tests.
 */
export function buildProgram(deps: Partial<CliDeps> = {}): Command {
  const d: CliDeps = {
    io: deps.io ?? {
      write: (t) => void process.stdout.write(t),
      writeError: (t) => void process.stderr.write(t),
    },
    connect: deps.connect ?? ((address, security) => createClients(address, security)),
    now: deps.now ?? (() => new Date()),
  };
  // Settings made before subcommands are added are inherited by them.
  const program = new Command("edgeplane")
    .description("Control plane for IoT edge compute fleets: run a coordinator and node agents, submit and inspect tasks.")
    .version(packageVersion())
    .exitOverride()
    .configureOutput({ writeOut: (t) => d.io.write(t), writeErr: (t) => d.io.writeError(t) })
    .showHelpAfterError("(add --help for usage)")
    .addHelpText("after", EXAMPLES);
  registerTaskCommands(program, d);
  registerClusterCommands(program, d);
  registerRunCommands(program, d);
  registerAccessCommands(program, d);
  return program;
}
