// The devices this node serves: the configured ids plus an optional devices file, re-read on SIGHUP and when the
// file changes (devices move between nodes: rewiring, a gateway swap). A bad file never drops the current list.
import { readFileSync, unwatchFile, watchFile } from "node:fs";
import type { Logger } from "../lib/log.js";

/** How often the devices file is polled for changes, in ms. */
export const DEVICES_FILE_POLL_MS = 500;

/** Device ids from a file: separated by commas, spaces or newlines; `#` starts a comment. */
export function readDevicesFile(path: string): string[] {
  const text = readFileSync(path, "utf8").replace(/#[^\n]*/g, "");
  return [...new Set(text.split(/[\s,]+/).filter(Boolean))];
}

/** stopped ⇄ watching: start() watches the file and SIGHUP, stop() lets go of both. */
export class DevicesSource {
  private ids: string[];
  private watching = false;
  private readonly reload = () => this.reloadNow();

  /**
   * Reads the file once (throws when it cannot be read: the agent does not start with an unknown device list).
   * `onChange` hears of every later change.
   */
  constructor(
    configured: readonly string[],
    private readonly file: string | undefined,
    private readonly onChange: (ids: readonly string[]) => void,
    private readonly log: Logger,
  ) {
    this.ids = file ? [...new Set([...configured, ...readDevicesFile(file)])] : [...configured];
  }

  get current(): readonly string[] {
    return this.ids;
  }

  start(): void {
    if (!this.file || this.watching) return;
    this.watching = true;
    watchFile(this.file, { interval: DEVICES_FILE_POLL_MS }, this.reload).unref();
    process.on("SIGHUP", this.reload);
  }

  stop(): void {
    if (!this.file || !this.watching) return;
    this.watching = false;
    unwatchFile(this.file, this.reload);
    process.off("SIGHUP", this.reload);
  }

  /** Re-reads the file; a change replaces the list (the file is the truth from now on). */
  reloadNow(): void {
    if (!this.file) return;
    try {
      const next = readDevicesFile(this.file);
      if (next.join("\n") === this.ids.join("\n")) return;
      this.ids = next;
      this.log.info({ devices: next }, "devices changed; telling the coordinator");
      this.onChange(next);
    } catch (err) {
      this.log.error({ err: (err as Error).message, file: this.file }, "cannot read the devices file; keeping the current devices");
    }
  }
}
