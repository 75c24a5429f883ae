// The built-in handlers and the name → handler table an executor worker dispatches on; the coordinator reads the
// same table for the names a submission may use before any agent registered. Pure: no I/O.

import { aggregateHandler } from "./aggregate.js";
import { anomalyHandler } from "./anomaly.js";
import { HandlerLoadError } from "./errors.js";
import { statsHandler } from "./stats.js";
import { thresholdHandler } from "./threshold.js";
import type { BuiltinHandler, Handler } from "./types.js";

/** Built-ins by name: stats, anomaly, aggregate, threshold. */
export const builtinHandlers: ReadonlyMap<string, BuiltinHandler> = new Map(
  [statsHandler, anomalyHandler, aggregateHandler, thresholdHandler].map((h) => [h.name, h]),
);

/** The built-ins' names, in registry order: every agent ships these handlers. */
export const builtinHandlerNames: readonly string[] = [...builtinHandlers.keys()];

/**
 * Built-ins plus custom handlers. A custom handler may not shadow a built-in or another custom handler:
 * silently running different code under a well-known name would be worse than refusing to start.
 */
export function createRegistry(custom: readonly (Handler & { file?: string })[] = []): ReadonlyMap<string, Handler> {
  const all = new Map<string, Handler>(builtinHandlers);
  const from = new Map<string, string>();
  for (const h of custom) {
    const file = h.file ?? h.name;
    if (builtinHandlers.has(h.name)) {
      throw new HandlerLoadError(file, `custom handler ${file}: name "${h.name}" is taken by a built-in handler; rename it`);
    }
    const other = from.get(h.name);
    if (other !== undefined) {
      throw new HandlerLoadError(file, `custom handler ${file}: name "${h.name}" is also used by ${other}; names must be unique`);
    }
    from.set(h.name, file);
    all.set(h.name, h);
  }
  return all;
}
