// Public surface of the shared analytics module (imported by the coordinator and the agent): the handler contract,
// the built-ins with their pure merge functions, and the scatter-gather helpers. Re-exports only: no logic, no I/O.

export type { BuiltinHandler, Handler, HandlerContext, HandlerInput, JsonValue, NumberArray } from "./types.js";
export { HandlerInputError, HandlerLoadError, isHandlerInputError } from "./errors.js";
export { CHECKPOINT_EVERY, plainContext } from "./context.js";
export { buildHandlerInput, readPoints, readValues, type PackedSeries, type Points } from "./input.js";
export { builtinHandlerNames, builtinHandlers, createRegistry } from "./registry.js";
export { runScatterGather, runShards } from "./scatter-gather.js";
export { seriesLength, sliceShard, splitInput } from "./split.js";
export { mergeStats, runStats, statsHandler, statsPartial, type StatsPartial, type StatsResult } from "./stats.js";
export {
  anomalyHandler,
  DEFAULT_ANOMALY_THRESHOLD,
  MAD_SCALE,
  runAnomaly,
  type Anomaly,
  type AnomalyGlobal,
  type AnomalyMethod,
  type AnomalyPartial,
  type AnomalyResult,
} from "./anomaly.js";
export { aggregateHandler, runAggregate, type AggregateResult, type AggregateWindow } from "./aggregate.js";
export { runThreshold, thresholdHandler, type Alert, type ThresholdOp, type ThresholdPartial, type ThresholdResult, type ThresholdRule } from "./threshold.js";
export { mergeSummaries, summarize, summaryQuantile, SUMMARY_INTERVALS, type QuantileSummary } from "./quantile-summary.js";
export { quantileSorted, quantilesOf, sortedCopy } from "./quantiles.js";
export { mergeMoments, momentsOf, populationStddev, type Moments } from "./moments.js";
