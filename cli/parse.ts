// Parsers for flag values: sizes, durations, deadlines, labels, lists, enums, addresses.
// Pure: no I/O, no clock (callers pass `now`); every failure is a UsageError saying what is accepted.
import type { DescEnum, JsonValue } from "@bufbuild/protobuf";
import { UsageError } from "./errors.js";

const SIZE_UNITS: Readonly<Record<string, number>> = {
  "": 1,
  b: 1,
  k: 1e3,
  kb: 1e3,
  m: 1e6,
  mb: 1e6,
  g: 1e9,
  gb: 1e9,
  t: 1e12,
  tb: 1e12,
  ki: 2 ** 10,
  kib: 2 ** 10,
  mi: 2 ** 20,
  mib: 2 ** 20,
  gi: 2 ** 30,
  gib: 2 ** 30,
  ti: 2 ** 40,
  tib: 2 ** 40,
};

/**
 * Parses a byte size: `1048576`, `512Ki`, `64Mi`, `1Gi`, `1.5Gi` (binary) or `100MB`, `2G` (decimal).
 * Units are case-insensitive; the result is a whole number of bytes.
 */
export function parseBytes(text: string): number {
  const m = /^(\d+(?:\.\d+)?|\.\d+)\s*([a-z]*)$/i.exec(text.trim());
  const unit = m ? SIZE_UNITS[m[2].toLowerCase()] : undefined;
  if (!m || unit === undefined) {
    throw new UsageError(`cannot parse "${text}" as a size (bytes, or with a suffix: 512Ki, 64Mi, 1Gi, 100MB)`);
  }
  const bytes = Math.round(Number(m[1]) * unit);
  if (!Number.isSafeInteger(bytes)) throw new UsageError(`size "${text}" is too large`);
  return bytes;
}

const DURATION_UNITS: Readonly<Record<string, number>> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/** Whether the text is written as a duration with units (`250ms`, `1m30s`), as opposed to a bare number. */
function durationTerms(text: string): [number, string][] | undefined {
  const re = /(\d+(?:\.\d+)?|\.\d+)(ns|us|µs|ms|s|m|h|d)/gy;
  const terms: [number, string][] = [];
  let end = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    terms.push([Number(m[1]), m[2]]);
    end = re.lastIndex;
  }
  return terms.length > 0 && end === text.length ? terms : undefined;
}

/**
 * Parses a duration into milliseconds: `250ms`, `2s`, `1.5s`, `5m`, `1h`, `1m30s`, `2d`.
 * A bare number is milliseconds.
 */
export function parseDuration(text: string): number {
  const t = text.trim();
  if (/^\d+(\.\d+)?$/.test(t)) return Number(t);
  const terms = durationTerms(t);
  if (!terms) throw new UsageError(`cannot parse "${text}" as a duration (e.g. 250ms, 2s, 5m, 1h30m)`);
  return terms.reduce((ms, [n, unit]) => ms + n * DURATION_UNITS[unit], 0);
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

/**
 * Parses a deadline: an RFC 3339 time (`2030-01-02T03:04:05Z`) or a duration from `now`
 * (`30s`, `5m`, `+1h`; a unit is required so `30` is never guessed).
 */
export function parseDeadline(text: string, now: Date): Date {
  const t = text.trim();
  const rel = t.startsWith("+") ? t.slice(1) : t;
  const terms = durationTerms(rel);
  if (terms) return new Date(now.getTime() + terms.reduce((ms, [n, unit]) => ms + n * DURATION_UNITS[unit], 0));
  if (RFC3339.test(t)) {
    const ms = Date.parse(t.replace(" ", "T"));
    if (Number.isFinite(ms)) return new Date(ms);
  }
  throw new UsageError(`cannot parse "${text}" as a deadline (RFC 3339 like 2030-01-02T03:04:05Z, or relative like 30s, 5m)`);
}

/** Parses one `key=value` label; the value may be empty or contain `=`. */
export function parseLabel(text: string): [string, string] {
  const i = text.indexOf("=");
  const key = i < 0 ? "" : text.slice(0, i).trim();
  if (i < 0 || key === "" || /\s/.test(key)) throw new UsageError(`cannot parse "${text}" as a label (expected key=value)`);
  return [key, text.slice(i + 1)];
}

/** Collects repeated `--label k=v` flags into one record (later keys win). */
export function collectLabel(text: string, previous: Record<string, string> | undefined): Record<string, string> {
  const [k, v] = parseLabel(text);
  return { ...previous, [k]: v };
}

/** Labels from a list of `k=v` strings. */
export function parseLabels(texts: readonly string[] | undefined): Record<string, string> {
  let labels: Record<string, string> = {};
  for (const t of texts ?? []) labels = collectLabel(t, labels);
  return labels;
}

/** Splits `a,b, c` into trimmed, non-empty items. */
export function parseList(text: string): string[] {
  return text
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
}

/** Collects a flag that may be repeated and may hold a comma list (`--state queued,running --state failed`). */
export function collectList(text: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), ...parseList(text)];
}

/** Parses `1,2,3` (commas or spaces) into finite numbers. */
export function parseNumberList(text: string): number[] {
  const items = text.split(/[\s,]+/).filter((s) => s !== "");
  if (items.length === 0) throw new UsageError(`expected a list of numbers like 1,2,3`);
  return items.map((s) => {
    const n = Number(s);
    if (!Number.isFinite(n)) throw new UsageError(`"${s}" is not a number (expected a list like 1,2.5,-3)`);
    return n;
  });
}

/** Parses an integer within bounds. */
export function parseInteger(text: string, min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER): number {
  const t = text.trim();
  const n = Number(t);
  if (!/^[+-]?\d+$/.test(t) || !Number.isSafeInteger(n)) throw new UsageError(`"${text}" is not a whole number`);
  if (n < min || n > max) throw new UsageError(`${n} is out of range (${min}..${max})`);
  return n;
}

/** Parses CPU in millicores: `250`, `250m`. */
export function parseMillicores(text: string): number {
  const t = text.trim().replace(/m$/i, "");
  try {
    return parseInteger(t, 0, 2 ** 31 - 1);
  } catch {
    throw new UsageError(`cannot parse "${text}" as CPU millicores (e.g. 250 or 250m; 1000 = one core)`);
  }
}

/** Parses a share between 0 and 1: `0.7` or `70%`. */
export function parseFraction(text: string): number {
  const t = text.trim();
  const pct = t.endsWith("%");
  const n = Number(pct ? t.slice(0, -1) : t);
  const v = pct ? n / 100 : n;
  if (t === "" || t === "%" || !Number.isFinite(v) || v < 0 || v > 1) {
    throw new UsageError(`cannot parse "${text}" as a share between 0 and 1 (e.g. 0.7 or 70%)`);
  }
  return v;
}

/** Parses JSON text, naming where it came from when it is not JSON. */
export function parseJson(text: string, source: string): JsonValue {
  try {
    return JSON.parse(text) as JsonValue;
  } catch (err) {
    throw new UsageError(`${source} is not valid JSON: ${(err as Error).message}`);
  }
}

/** Checks a `HOST:PORT` address (`[::1]:50051` for IPv6); port 0 means "any free port" where listening. */
export function parseHostPort(text: string): string {
  const t = text.trim();
  const m = /^(\[[0-9a-fA-F:.]+\]|[^\s:/[\]]+):(\d{1,5})$/.exec(t);
  if (!m || Number(m[2]) > 65535) throw new UsageError(`cannot parse "${text}" as HOST:PORT (e.g. 127.0.0.1:50051)`);
  return t;
}

/** The values of a generated enum a user may type, without prefix and without UNSPECIFIED: `critical`, `high`, … */
export function enumChoices(desc: DescEnum): string[] {
  return desc.values.filter((v) => v.number !== 0).map((v) => v.localName.toLowerCase());
}

/**
 * Parses an enum value by name using the generated enum descriptor: `high`, `HIGH`, `PRIORITY_HIGH`,
 * `cloud-fallback` all work. UNSPECIFIED is refused: it means "not given" on the wire.
 */
export function parseEnum(desc: DescEnum, text: string): number {
  const t = text.trim().toUpperCase().replace(/-/g, "_");
  const v = desc.values.find((x) => x.number !== 0 && (x.name === t || x.localName === t));
  if (!v) throw new UsageError(`unknown value "${text}" (one of ${enumChoices(desc).join(", ")})`);
  return v.number;
}
