// Loads operators' custom handler modules from a directory (`--handlers DIR`). Reads the directory and
// imports modules — runs their top-level code — but never calls a handler.

import { readdir, stat } from "node:fs/promises";
import { basename, extname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { HandlerLoadError } from "../../lib/analytics/errors.js";
import type { Handler } from "../../lib/analytics/types.js";
import { describeValue } from "../../lib/analytics/validate.js";

/** A loaded custom handler, remembering where it came from for error messages. */
export type CustomHandler = Handler & { readonly file: string };

const EXTENSIONS = new Set([".js", ".mjs"]);
const OPTIONAL_FUNCTIONS = ["merge", "split", "runPartial", "prepareRounds", "prepare", "combine"] as const;
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/**
 * Every .js/.mjs file directly in `dir`, in name order. Each must export a handler — default export or a
 * named `handler` export — shaped `{ name?, run, merge?, ... }`; `name` defaults to the file's basename.
 * Throws HandlerLoadError naming the file when a module fails to import or exports no usable handler.
 */
export async function loadCustomHandlers(dir: string): Promise<CustomHandler[]> {
  const root = resolve(dir);
  try {
    if (!(await stat(root)).isDirectory()) throw new Error("not a directory");
  } catch (err) {
    throw new HandlerLoadError(root, `handlers directory ${root} is not readable: ${(err as Error).message}`, { cause: err });
  }
  const files = (await readdir(root, { withFileTypes: true }))
    .filter((e) => (e.isFile() || e.isSymbolicLink()) && EXTENSIONS.has(extname(e.name)))
    .map((e) => join(root, e.name))
    .sort();
  const handlers: CustomHandler[] = [];
  for (const file of files) handlers.push(await loadOne(file));
  return handlers;
}

async function loadOne(file: string): Promise<CustomHandler> {
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (err) {
    throw new HandlerLoadError(file, `custom handler ${file} failed to load: ${(err as Error)?.message ?? String(err)}`, { cause: err });
  }
  const exported = mod.default ?? mod.handler;
  const shape = "must export (default, or as `handler`) an object { name?, run(input, ctx), merge? }";
  if (exported === null || typeof exported !== "object") {
    throw new HandlerLoadError(
      file,
      `custom handler ${file} ${shape}; got ${exported === undefined ? "no such export" : typeof exported === "function" ? "a function" : describeValue(exported)}`,
    );
  }
  const h = exported as Record<string, unknown>;
  if (typeof h.run !== "function") {
    throw new HandlerLoadError(
      file,
      `custom handler ${file} ${shape}; its "run" is ${typeof h.run === "undefined" ? "missing" : `not a function (${typeof h.run})`}`,
    );
  }
  const name = h.name ?? basename(file, extname(file));
  if (typeof name !== "string" || !NAME_PATTERN.test(name)) {
    throw new HandlerLoadError(file, `custom handler ${file}: "name" must be letters, digits, ".", "_" or "-"; got ${describeValue(name)}`);
  }
  const handler: Record<string, unknown> = { name, file, run: (h.run as Function).bind(h) };
  for (const key of OPTIONAL_FUNCTIONS) {
    const fn = h[key];
    if (fn === undefined) continue;
    if (typeof fn !== "function") throw new HandlerLoadError(file, `custom handler ${file}: "${key}" must be a function; got ${typeof fn}`);
    handler[key] = fn.bind(h);
  }
  return handler as unknown as CustomHandler;
}
