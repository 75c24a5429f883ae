// Output helpers: tables, key/value blocks, human units (bytes, CPU, durations, ages), enum names.
// Pure string building: never writes to stdout and never reads the clock (callers pass `now`).
import Table from "cli-table3";
import type { DescEnum, JsonValue } from "@bufbuild/protobuf";
import { durationMs, timestampDate, type Duration, type Timestamp } from "@bufbuild/protobuf/wkt";

/** Placeholder for an absent value in tables and detail views. */
export const NONE = "-";

/**
 * A generated enum value's name without its prefix, lower case: `PRIORITY_HIGH` → `high`,
 * `TASK_STATE_RUNNING` → `running`. Values this CLI does not know print as their number.
 */
export function enumLabel(desc: DescEnum, value: number): string {
  const v = desc.values.find((x) => x.number === value);
  return v ? v.localName.toLowerCase() : String(value);
}

const BINARY_UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"] as const;

/** Bytes in binary units: `512 B`, `1.5 KiB`, `64 MiB`, `12 GiB`. */
export function formatBytes(bytes: number | bigint): string {
  let n = Number(bytes);
  if (!Number.isFinite(n)) return NONE;
  const sign = n < 0 ? "-" : "";
  n = Math.abs(n);
  let i = 0;
  while (n >= 1024 && i < BINARY_UNITS.length - 1) {
    n /= 1024;
    i++;
  }
  return `${sign}${trimFixed(n, i === 0 || n >= 10 ? 0 : 1)} ${BINARY_UNITS[i]}`;
}

/** CPU in the Kubernetes convention: `250m` below one core, cores above (`1.5`, `4`). */
export function formatCpu(millis: number): string {
  if (millis < 1000) return `${millis}m`;
  return trimFixed(millis / 1000, 2);
}

/** `free/total` with the same unit formatter for both. */
export function formatFreeTotal(free: number | bigint, total: number | bigint, unit: (n: number) => string): string {
  return `${unit(Number(free))}/${unit(Number(total))}`;
}

/** A share 0..1 as a whole percent: `0.256` → `26%`. */
export function formatPercent(share: number): string {
  if (!Number.isFinite(share)) return NONE;
  return `${Math.round(share * 100)}%`;
}

/**
 * Milliseconds for humans, precise when short and coarse when long:
 * `420µs`, `3.2ms`, `250ms`, `2.5s`, `5m30s`, `2h5m`, `3d4h`.
 */
export function formatMs(ms: number): string {
  if (!Number.isFinite(ms)) return NONE;
  if (ms < 0) return `-${formatMs(-ms)}`;
  if (ms === 0) return "0s";
  if (ms < 1) return `${Math.round(ms * 1000)}µs`;
  if (ms < 10) return `${trimFixed(ms, 1)}ms`;
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${trimFixed(ms / 1000, ms < 10_000 ? 2 : 1)}s`;
  const s = Math.round(ms / 1000);
  if (s < 3600) return joinUnits(Math.floor(s / 60), "m", s % 60, "s");
  if (s < 86_400) return joinUnits(Math.floor(s / 3600), "h", Math.floor((s % 3600) / 60), "m");
  return joinUnits(Math.floor(s / 86_400), "d", Math.floor((s % 86_400) / 3600), "h");
}

/** A protobuf Duration for humans, `-` when absent. */
export function formatDuration(d: Duration | undefined): string {
  return d ? formatMs(durationMs(d)) : NONE;
}

/** How long ago, kubectl style: `5s`, `3m`, `2h`, `4d` (a time in the future counts as `0s`). */
export function formatAge(then: Date, now: Date): string {
  const s = Math.max(0, Math.floor((now.getTime() - then.getTime()) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86_400)}d`;
}

/** Age of a protobuf Timestamp, `-` when absent. */
export function formatTimestampAge(ts: Timestamp | undefined, now: Date): string {
  return ts ? formatAge(timestampDate(ts), now) : NONE;
}

/** A protobuf Timestamp as ISO 8601 UTC with its age (`… (5s ago)` / `… (in 30s)`), `-` when absent. */
export function formatTimestamp(ts: Timestamp | undefined, now?: Date): string {
  if (!ts) return NONE;
  const d = timestampDate(ts);
  if (!now) return d.toISOString();
  const delta = d.getTime() - now.getTime();
  return delta > 0 ? `${d.toISOString()} (in ${formatAge(now, d)})` : `${d.toISOString()} (${formatAge(d, now)} ago)`;
}

/** `k=v,k2=v2` sorted by key, `-` when empty. */
export function formatLabels(labels: Readonly<Record<string, string>>): string {
  const keys = Object.keys(labels).sort();
  return keys.length === 0 ? NONE : keys.map((k) => `${k}=${labels[k]}`).join(",");
}

/** Cuts text to `max` characters with an ellipsis. */
export function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, Math.max(0, max - 1))}…`;
}

/** Pretty JSON (2-space indent) for output blocks. */
export function formatJson(value: JsonValue | undefined): string {
  return JSON.stringify(value ?? null, null, 2);
}

const BORDERLESS = {
  top: "",
  "top-mid": "",
  "top-left": "",
  "top-right": "",
  bottom: "",
  "bottom-mid": "",
  "bottom-left": "",
  "bottom-right": "",
  left: "",
  "left-mid": "",
  mid: "",
  "mid-mid": "",
  right: "",
  "right-mid": "",
  middle: "  ",
} as const;

/**
 * A borderless, colourless table like `kubectl get`: upper-case headers, two spaces between columns,
 * no trailing spaces, so it greps and diffs cleanly.
 */
export function renderTable(head: readonly string[], rows: readonly (readonly string[])[]): string {
  const table = new Table({
    head: [...head],
    chars: BORDERLESS,
    style: { head: [], border: [], "padding-left": 0, "padding-right": 0 },
  });
  for (const r of rows) table.push([...r]);
  return table
    .toString()
    .split("\n")
    .map((l) => l.trimEnd())
    .filter((l) => l !== "")
    .join("\n");
}

/** Aligned `key   value` lines; multi-line values are indented under their value column. */
export function renderKeyValues(pairs: readonly (readonly [string, string])[]): string {
  const width = Math.max(0, ...pairs.map(([k]) => k.length)) + 2;
  return pairs.map(([k, v]) => `${k.padEnd(width)}${v.split("\n").join(`\n${" ".repeat(width)}`)}`.trimEnd()).join("\n");
}

function trimFixed(n: number, digits: number): string {
  return n
    .toFixed(digits)
    .replace(/\.0+$/, "")
    .replace(/(\.\d*?)0+$/, "$1");
}

function joinUnits(a: number, ua: string, b: number, ub: string): string {
  return b === 0 ? `${a}${ua}` : `${a}${ua}${b}${ub}`;
}
