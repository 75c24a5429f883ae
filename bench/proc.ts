// Reads what Linux's /proc says about processes and the machine: CPU time, resident memory, busy cores, the file
// system under a directory. Read-only; every reader returns NaN/undefined where /proc is missing (not Linux).
import { readFileSync } from "node:fs";
import { resolve } from "node:path";

/** Linux clock ticks per second (USER_HZ) in /proc/<pid>/stat and /proc/stat; 100 on every mainstream kernel. */
const CLOCK_TICKS = 100;

/** CPU seconds (user + system, all threads) a process has used so far; NaN when it cannot be read (gone, not Linux). */
export function processCpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after "pid (comm)": state is field 3, utime 14 and stime 15, in clock ticks.
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) / CLOCK_TICKS;
  } catch {
    return Number.NaN;
  }
}

/** Resident set size of a process in KiB (VmRSS in /proc/<pid>/status); NaN when it cannot be read. */
export function vmRssKb(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  try {
    const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** CPU seconds all cores have been busy (not idle, not waiting for I/O) since boot, from /proc/stat; NaN off Linux. */
export function machineBusySeconds(): number {
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n", 1)[0];
    // cpu user nice system idle iowait irq softirq steal …
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    const [user, nice, system, , , irq, softirq, steal] = f;
    return (user + nice + system + irq + softirq + (steal ?? 0)) / CLOCK_TICKS;
  } catch {
    return Number.NaN;
  }
}

/** The mount a directory lives on, e.g. "ext4 (/dev/vda on /)", from /proc/mounts: fsync costs depend on it. */
export function fileSystemOf(dir: string): string {
  try {
    const path = resolve(dir);
    let best: { mnt: string; type: string; dev: string } | undefined;
    for (const line of readFileSync("/proc/mounts", "utf8").split("\n")) {
      const [dev, mnt, type] = line.split(" ");
      if (!mnt) continue;
      const m = mnt.replace(/\\040/g, " ");
      if ((path === m || path.startsWith(m.endsWith("/") ? m : `${m}/`)) && (!best || m.length > best.mnt.length)) best = { mnt: m, type, dev };
    }
    return best ? `${best.type} (${best.dev} on ${best.mnt})` : "unknown";
  } catch {
    return "unknown (no /proc/mounts)";
  }
}
