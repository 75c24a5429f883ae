// Handlers every agent ships (agent/handlers/): a submission may name them even before any agent registered.
// A unit test checks this list against the agent's registry.
export const BUILTIN_HANDLER_NAMES: readonly string[] = ["stats", "anomaly", "aggregate", "threshold"];
