// Milliseconds (possibly fractional, e.g. from performance.now()) to google.protobuf.Duration.
// @bufbuild/protobuf's durationFromMs keeps the fraction in `nanos`, which then fails to encode as int32.
import { create } from "@bufbuild/protobuf";
import { DurationSchema, type Duration } from "@bufbuild/protobuf/wkt";

/** Duration → milliseconds, keeping the fraction (protobuf-es's durationMs rounds to whole ms). */
export function durationToMillis(d: { seconds: bigint; nanos: number }): number {
  return Number(d.seconds) * 1000 + d.nanos / 1e6;
}

export function durationFromMillis(ms: number): Duration {
  if (!Number.isFinite(ms)) throw new RangeError(`duration of ${ms} ms`);
  const totalNanos = Math.round(ms * 1e6);
  const seconds = Math.trunc(totalNanos / 1e9);
  return create(DurationSchema, { seconds: BigInt(seconds), nanos: totalNanos - seconds * 1e9 });
}
