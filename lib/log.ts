// Structured logging for every edgeplane process: pino, JSON lines on stderr so stdout stays free for CLI output.
import { pino, type Logger } from "pino";

export type { Logger };

export function createLogger(name: string, level = "info"): Logger {
  return pino({ name, level, base: { pid: process.pid } }, pino.destination({ fd: 2, sync: false }));
}

/** A logger that drops everything, for unit tests. */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
