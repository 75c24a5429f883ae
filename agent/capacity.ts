// Measures the node's free capacity for registration and heartbeats: idle CPU over the last interval and
// available memory (cgroup-aware). Never reports configured constants. Each sample reads os.cpus() and /proc: the
// agent takes one at registration and one per heartbeat tick, never per task.
import { readFileSync } from "node:fs";
import * as os from "node:os";

export interface Capacity {
  totalCpuMillis: number;
  totalMemoryBytes: number;
  freeCpuMillis: number;
  freeMemoryBytes: number;
  /** One-minute load average per core. */
  load: number;
}

function readNumber(path: string): number | undefined {
  try {
    const s = readFileSync(path, "utf8").trim();
    if (s === "max") return undefined;
    const n = Number(s);
    return Number.isFinite(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

/** MemAvailable from /proc/meminfo (what the kernel says can be allocated without swapping), else os.freemem(). */
function memAvailable(): number {
  try {
    const m = /MemAvailable:\s+(\d+) kB/.exec(readFileSync("/proc/meminfo", "utf8"));
    if (m) return Number(m[1]) * 1024;
  } catch {
    // not Linux
  }
  return os.freemem();
}

function cpuTimes(): { idle: number; total: number } {
  let idle = 0,
    total = 0;
  for (const c of os.cpus()) {
    idle += c.times.idle;
    total += c.times.idle + c.times.user + c.times.nice + c.times.sys + c.times.irq;
  }
  return { idle, total };
}

export class CapacitySampler {
  private last = cpuTimes();
  private lastFree: number;
  readonly totalCpuMillis: number;
  readonly totalMemoryBytes: number;
  private readonly cgroupLimit: number | undefined;

  /** @param maxMemoryBytes caps reported memory (operator reserve); undefined = all the node has. */
  constructor(private readonly maxMemoryBytes?: number) {
    const cores = os.availableParallelism();
    // A cgroup v2 cpu.max quota caps the cores this node may use.
    let quotaCores = cores;
    try {
      const [quota, period] = readFileSync("/sys/fs/cgroup/cpu.max", "utf8").trim().split(/\s+/);
      if (quota !== "max") quotaCores = Math.min(cores, Number(quota) / Number(period));
    } catch {
      // no cgroup v2 cpu controller
    }
    this.totalCpuMillis = Math.max(1, Math.round(quotaCores * 1000));
    const limit = readNumber("/sys/fs/cgroup/memory.max");
    this.cgroupLimit = limit !== undefined && limit < os.totalmem() ? limit : undefined;
    this.totalMemoryBytes = Math.min(this.cgroupLimit ?? os.totalmem(), maxMemoryBytes ?? Infinity);
    this.lastFree = this.totalCpuMillis;
  }

  /** Idle CPU since the previous sample; a sample taken too soon after the last repeats it. */
  sample(): Capacity {
    const now = cpuTimes();
    const dTotal = now.total - this.last.total;
    if (dTotal >= 50) {
      const idleShare = Math.min(1, Math.max(0, (now.idle - this.last.idle) / dTotal));
      this.lastFree = Math.round(idleShare * this.totalCpuMillis);
      this.last = now;
    }
    let freeMem = memAvailable();
    if (this.cgroupLimit !== undefined) {
      const used = readNumber("/sys/fs/cgroup/memory.current") ?? 0;
      freeMem = Math.min(freeMem, Math.max(0, this.cgroupLimit - used));
    }
    if (this.maxMemoryBytes !== undefined) {
      // Of the capped share, what this process and its workers hold is in use.
      freeMem = Math.min(freeMem, Math.max(0, this.maxMemoryBytes - process.memoryUsage.rss()));
    }
    return {
      totalCpuMillis: this.totalCpuMillis,
      totalMemoryBytes: this.totalMemoryBytes,
      freeCpuMillis: this.lastFree,
      freeMemoryBytes: freeMem,
      load: os.loadavg()[0] / os.availableParallelism(),
    };
  }
}
