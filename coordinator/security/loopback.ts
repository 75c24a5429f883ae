// Whether a host is loopback-only: the one place that decides where --insecure is allowed. Pure.
import { isIP } from "node:net";

/** A loopback name or address (127.0.0.0/8, ::1, localhost); 0.0.0.0 and :: are not (they listen everywhere). */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  if (h === "localhost" || h.endsWith(".localhost")) return true;
  if (isIP(h) === 4) return h.startsWith("127.");
  if (isIP(h) === 6) return h === "::1" || h === "0:0:0:0:0:0:0:1" || /^::ffff:127\./.test(h);
  return false;
}
