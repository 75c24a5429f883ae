// Loading operators' custom handler modules (--handlers DIR): shapes accepted, names, and errors that
// name the offending file.
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadCustomHandlers } from "../../agent/handlers/custom-loader.js";
import { createRegistry, HandlerLoadError, plainContext, runScatterGather } from "../../lib/analytics/index.js";

const FIXTURES = fileURLToPath(new URL("../fixtures/handlers/", import.meta.url));

async function loadError(dir: string): Promise<HandlerLoadError> {
  try {
    createRegistry(await loadCustomHandlers(dir));
  } catch (err) {
    expect(err).toBeInstanceOf(HandlerLoadError);
    return err as HandlerLoadError;
  }
  throw new Error("expected a HandlerLoadError");
}

describe("loadCustomHandlers", () => {
  it("loads every .js/.mjs file of the directory (not subdirectories), naming each by `name` or file basename", async () => {
    const handlers = await loadCustomHandlers(FIXTURES);
    // Other suites add fixtures here too, so only ours are asserted; the order is by file name.
    const names = handlers.map((h) => h.name);
    expect(names).toEqual(expect.arrayContaining(["boom", "crash", "double", "gate", "hog", "nan", "sleepy", "spin", "whoami"]));
    expect(names).toEqual([...names].sort());
    expect(names).not.toContain("bad"); // subdirectories are not scanned
    expect(handlers.find((h) => h.name === "double")?.file).toBe(join(FIXTURES, "double.mjs"));
    const registry = createRegistry(handlers);
    expect([...registry.keys()]).toEqual(expect.arrayContaining(["stats", "anomaly", "aggregate", "threshold", "double", "boom"]));
  });

  it("runs a custom handler, and scatter-gathers it through its own merge", async () => {
    const double = (await loadCustomHandlers(FIXTURES)).find((h) => h.name === "double");
    if (!double) throw new Error("double.mjs not loaded");
    const input = { values: [1, 2, 3, 4, 5] };
    expect(await double.run(input, plainContext())).toEqual({ values: [2, 4, 6, 8, 10] });
    expect(runScatterGather(double, input, 3, plainContext())).toEqual({ values: [2, 4, 6, 8, 10] });
  });

  it("names the file of a module that fails to load", async () => {
    const err = await loadError(join(FIXTURES, "broken-syntax"));
    expect(err.file).toBe(join(FIXTURES, "broken-syntax", "bad.mjs"));
    expect(err.message).toMatch(/^custom handler .*broken-syntax\/bad\.mjs failed to load: /);
  });

  it("names the file of a module without a run function", async () => {
    const err = await loadError(join(FIXTURES, "no-run"));
    expect(err.message).toBe(
      `custom handler ${join(FIXTURES, "no-run", "norun.mjs")} must export (default, or as \`handler\`) an object { name?, run(input, ctx), merge? }; its "run" is missing`,
    );
  });

  it("refuses a custom handler that takes a built-in's name", async () => {
    const err = await loadError(join(FIXTURES, "name-clash"));
    expect(err.message).toBe(`custom handler ${join(FIXTURES, "name-clash", "my-stats.mjs")}: name "stats" is taken by a built-in handler; rename it`);
  });

  it("says so when the directory does not exist", async () => {
    const err = await loadError(join(FIXTURES, "no-such-dir"));
    expect(err.message).toMatch(/^handlers directory .*no-such-dir is not readable: /);
  });
});
