// Summarises a V8 .cpuprofile (what `node --cpu-prof` writes): self time per function and per module, from the
// samples' own time deltas. Reads one file; never runs or profiles anything.
//   node dist/bench/cpuprofile.js FILE.cpuprofile [--top 15]
import { readFileSync } from "node:fs";
import { basename, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { fmtMs } from "./measure.js";

/** The parts of the .cpuprofile JSON this reads (Chrome DevTools protocol Profiler.Profile; times in µs). */
export interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number; columnNumber?: number }; children?: number[] }[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface SelfTime {
  /** Function name and where it is defined, e.g. `commit coordinator/store/group-commit.js:41`. */
  name: string;
  selfMs: number;
  /** Share of the busy time (everything but idle), 0..1. */
  share: number;
}

export interface ProfileSummary {
  /** What was profiled, e.g. "coordinator (throughput-4x8, round 1)". */
  label: string;
  file: string;
  /** Profile length (first to last sample), in ms. */
  wallMs: number;
  /** Time the thread was idle (waiting in the event loop), in ms. */
  idleMs: number;
  /** Busy = wall − idle, in ms: what the shares are of. */
  busyMs: number;
  /** Top functions by self time, idle left out ((program) and (garbage collector) stay in: they are findings). */
  top: SelfTime[];
  /** Self time grouped by npm package, Node internals or this repository's top-level folder. */
  modules: SelfTime[];
}

/** Special nodes V8 puts in every profile. */
const IDLE = "(idle)",
  ROOT = "(root)";

/** A script URL made short: a path inside node_modules is `package/rest`, one inside the repository repo-relative. */
export function shortUrl(url: string, repoRoot?: string): string {
  let u = url.startsWith("file://") ? decodeURIComponent(url.slice("file://".length)) : url;
  const nm = u.lastIndexOf("/node_modules/");
  if (nm >= 0) return u.slice(nm + "/node_modules/".length);
  if (repoRoot && u.startsWith(`${repoRoot}/`)) u = u.slice(repoRoot.length + 1);
  if (u.startsWith("dist/")) u = u.slice("dist/".length);
  return u;
}

/** The module a script belongs to: an npm package (`@grpc/grpc-js`), `node internals`, or a repository folder. */
export function moduleOf(url: string, repoRoot?: string): string {
  if (url === "") return "(native / V8)";
  if (url.startsWith("node:")) return "node internals";
  const s = shortUrl(url, repoRoot);
  const parts = s.split("/");
  if (url.includes("/node_modules/")) return parts[0].startsWith("@") ? `${parts[0]}/${parts[1]}` : parts[0];
  return parts.length > 1 ? `${parts[0]}/` : s;
}

/** Self time per profile node, in µs: each sample lasts until the next one (the last until endTime). */
function selfTimes(p: CpuProfile): Map<number, number> {
  const out = new Map<number, number>();
  let t = p.startTime;
  const stamps = p.timeDeltas.map((d) => (t += d));
  for (let i = 0; i < p.samples.length; i++) {
    const dur = (i + 1 < stamps.length ? stamps[i + 1] : p.endTime) - stamps[i];
    if (dur > 0) out.set(p.samples[i], (out.get(p.samples[i]) ?? 0) + dur);
  }
  return out;
}

export function summarizeProfile(p: CpuProfile, opts: { label: string; file: string; top?: number; modules?: number; repoRoot?: string }): ProfileSummary {
  const byNode = selfTimes(p);
  const nodes = new Map(p.nodes.map((n) => [n.id, n]));
  const fn = new Map<string, number>(),
    mod = new Map<string, number>();
  let idle = 0,
    total = 0;
  for (const [id, us] of byNode) {
    total += us;
    const cf = nodes.get(id)?.callFrame;
    const name = cf?.functionName ?? "?";
    if (name === IDLE) {
      idle += us;
      continue;
    }
    if (name === ROOT) continue;
    const special = name.startsWith("(") && (cf?.url ?? "") === "";
    const url = cf?.url ?? "";
    const where = url === "" ? "(native)" : `${shortUrl(url, opts.repoRoot)}:${(cf?.lineNumber ?? 0) + 1}`;
    const key = special ? name : `${name || "(anonymous)"} ${where}`;
    fn.set(key, (fn.get(key) ?? 0) + us);
    const m = special ? name : moduleOf(cf?.url ?? "", opts.repoRoot);
    mod.set(m, (mod.get(m) ?? 0) + us);
  }
  const busy = Math.max(0, total - idle);
  const rank = (m: Map<string, number>, n: number): SelfTime[] =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([name, us]) => ({ name, selfMs: us / 1000, share: busy > 0 ? us / busy : 0 }));
  return {
    label: opts.label,
    file: opts.file,
    wallMs: total / 1000,
    idleMs: idle / 1000,
    busyMs: busy / 1000,
    top: rank(fn, opts.top ?? 15),
    modules: rank(mod, opts.modules ?? 8),
  };
}

export function readProfile(file: string): CpuProfile {
  const p = JSON.parse(readFileSync(file, "utf8")) as Partial<CpuProfile>;
  if (!Array.isArray(p.nodes) || !Array.isArray(p.samples) || !Array.isArray(p.timeDeltas) || typeof p.startTime !== "number") {
    throw new Error(`${file} is not a V8 .cpuprofile (no nodes/samples/timeDeltas)`);
  }
  return p as CpuProfile;
}

/** Markdown lines: a heading line, the top functions and the module roll-up. */
export function renderProfile(s: ProfileSummary): string[] {
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
  const cell = (x: string) => x.replace(/\|/g, "\\|");
  return [
    `**${s.label}** — busy ${fmtMs(s.busyMs)} ms of ${fmtMs(s.wallMs)} ms profiled (${pct(s.wallMs > 0 ? s.busyMs / s.wallMs : 0)} of the main thread); \`${s.file}\``,
    "",
    "| # | Function (self time) | ms | of busy |",
    "|---|---|---|---|",
    ...s.top.map((t, i) => `| ${i + 1} | \`${cell(t.name)}\` | ${fmtMs(t.selfMs)} | ${pct(t.share)} |`),
    "",
    `By module: ${s.modules.map((m) => `${m.name} ${pct(m.share)}`).join(", ")}.`,
    "",
  ];
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: "string", default: "15" } } });
  if (positionals.length === 0) {
    process.stderr.write("usage: node dist/bench/cpuprofile.js FILE.cpuprofile [FILE…] [--top N]\n");
    process.exit(2);
  }
  const top = Number(values.top);
  for (const f of positionals) {
    const s = summarizeProfile(readProfile(f), {
      label: basename(f),
      file: resolve(f),
      top: Number.isInteger(top) && top > 0 ? top : 15,
      repoRoot: process.cwd(),
    });
    process.stdout.write(`${renderProfile(s).join("\n")}\n`);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) await main();
