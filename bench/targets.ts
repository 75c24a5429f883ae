// The limits results are judged against: issue 8's done-when figures and the original design targets. Pure.
import { fmtInt, fmtMs } from "./measure.js";

export type TargetId =
  | "throughput-4x1"
  | "throughput-4x8"
  | "vs-bullmq"
  | "light-load-p50"
  | "light-load-p99"
  | "open-loop-p99"
  | "open-loop-kept-up"
  | "critical-wait-p99"
  | "idle-agent-rss"
  | "submission"
  | "edge-analytics"
  | "local-processing"
  | "distributed-coordination";

export interface Target {
  id: TargetId;
  label: string;
  /** Where the limit comes from. */
  source: "issue 8" | "design";
  /** How a value meets the limit: `<=`/`<` lower is better, `>=` higher is better, `yes` a boolean that must hold. */
  op: "<" | "<=" | ">=" | "yes";
  limit: number;
  unit: "ms" | "tasks/s" | "KB" | "×" | "";
  /** A stricter aim shown next to the limit (design targets: an order of magnitude lower). */
  aim?: number;
}

export const TARGETS: readonly Target[] = [
  { id: "throughput-4x1", label: "Throughput, 4 agents × 1 slot, durable", source: "issue 8", op: ">=", limit: 3_000, unit: "tasks/s" },
  { id: "throughput-4x8", label: "Throughput, 4 agents × 8 slots, durable", source: "issue 8", op: ">=", limit: 8_000, unit: "tasks/s" },
  { id: "vs-bullmq", label: "Throughput vs BullMQ (edgeplane ÷ BullMQ, same round)", source: "issue 8", op: ">=", limit: 3, unit: "×" },
  { id: "light-load-p50", label: "Light load submit → result, p50", source: "issue 8", op: "<=", limit: 1, unit: "ms" },
  { id: "light-load-p99", label: "Light load submit → result, p99", source: "issue 8", op: "<=", limit: 3, unit: "ms" },
  { id: "open-loop-kept-up", label: "2,000 tasks/s offered: kept up", source: "issue 8", op: "yes", limit: 1, unit: "" },
  { id: "open-loop-p99", label: "2,000 tasks/s offered: p99", source: "issue 8", op: "<=", limit: 10, unit: "ms" },
  { id: "critical-wait-p99", label: "CRITICAL wait behind a LOW backlog, p99", source: "issue 8", op: "<=", limit: 20, unit: "ms" },
  { id: "idle-agent-rss", label: "Coordinator RSS per idle agent", source: "issue 8", op: "<=", limit: 40, unit: "KB" },
  { id: "local-processing", label: "Local processing", source: "design", op: "<", limit: 50, unit: "ms", aim: 5 },
  { id: "edge-analytics", label: "Edge analytics", source: "design", op: "<", limit: 100, unit: "ms", aim: 10 },
  { id: "distributed-coordination", label: "Distributed coordination", source: "design", op: "<", limit: 200, unit: "ms", aim: 20 },
  { id: "submission", label: "Submission overhead", source: "design", op: "<", limit: 10, unit: "ms", aim: 1 },
];

export function targetById(id: TargetId): Target {
  const t = TARGETS.find((x) => x.id === id);
  if (!t) throw new Error(`unknown target ${id}`);
  return t;
}

/** A value in a target's unit, for a table cell. */
export function fmtValue(value: number | boolean, unit: Target["unit"]): string {
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (!Number.isFinite(value)) return "n/a";
  switch (unit) {
    case "ms":
      return `${fmtMs(value)} ms`;
    case "tasks/s":
      return `${fmtInt(value)} tasks/s`;
    case "KB":
      return `${value.toFixed(1)} KB`;
    case "×":
      return `${value.toFixed(2)}×`;
    case "":
      return String(value);
  }
}

/** The limit as a phrase: "≥ 3,000 tasks/s", "≤ 1 ms", "yes". */
export function fmtLimit(t: Target, limit = t.limit): string {
  if (t.op === "yes") return "yes";
  const op = t.op === "<=" ? "≤" : t.op === ">=" ? "≥" : "<";
  return `${op} ${fmtValue(limit, t.unit)}`;
}

/**
 * "met", "missed ×2.35" (how many times worse than the limit: value ÷ limit when lower is better, limit ÷ value when
 * higher is better), "missed" for a failed yes/no, or "not measured".
 */
export function verdict(t: Target, value: number | boolean, limit = t.limit): string {
  if (t.op === "yes") return typeof value === "boolean" ? (value ? "met" : "missed") : "not measured";
  if (typeof value !== "number" || !Number.isFinite(value)) return "not measured";
  const met = t.op === "<" ? value < limit : t.op === "<=" ? value <= limit : value >= limit;
  if (met) return "met";
  const factor = t.op === ">=" ? (value > 0 ? limit / value : Number.POSITIVE_INFINITY) : value / limit;
  return Number.isFinite(factor) ? `missed ×${factor < 10 ? factor.toFixed(2) : factor.toFixed(0)}` : "missed";
}
