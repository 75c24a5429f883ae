#!/usr/bin/env node
// The `edgeplane` binary: runs the compiled CLI (built by `npm ci` through the `prepare` script).
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const main = fileURLToPath(new URL("../dist/cli/main.js", import.meta.url));
if (!existsSync(main)) {
  process.stderr.write("edgeplane: dist/ is missing; run `npm run build` (npm ci does it for you)\n");
  process.exit(1);
}
await import(main);
