// Entry point of the `edgeplane` binary: parses process.argv, runs one command, sets the exit code.
// Must never hold command logic: program.ts builds the commands, errors.ts decides what a failure prints.
import { reportError } from "./errors.js";
import { buildProgram } from "./program.js";

// `edgeplane tasks | head`: a reader that goes away is not an error of ours.
process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  if (err.code === "EPIPE") process.exit(0);
  throw err;
});

try {
  await buildProgram().parseAsync(process.argv);
} catch (err) {
  process.exitCode = reportError(err, (text) => void process.stderr.write(text));
}
