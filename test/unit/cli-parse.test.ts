// Flag value parsers: sizes, durations, deadlines, labels, lists, enums, addresses.
import { describe, expect, it } from "vitest";
import { UsageError } from "../../cli/errors.js";
import {
  collectLabel,
  collectList,
  enumChoices,
  parseBytes,
  parseDeadline,
  parseDuration,
  parseEnum,
  parseFraction,
  parseHostPort,
  parseInteger,
  parseLabel,
  parseLabels,
  parseMillicores,
  parseNumberList,
} from "../../cli/parse.js";
import { Priority, PrioritySchema, ProcessingMode, ProcessingModeSchema, TaskState, TaskStateSchema } from "../../gen/edgeplane/v1/types_pb.js";

describe("parseBytes", () => {
  it.each([
    ["1048576", 1048576],
    ["512Ki", 512 * 1024],
    ["64Mi", 64 * 1024 ** 2],
    ["1Gi", 1024 ** 3],
    ["1.5Gi", 1.5 * 1024 ** 3],
    ["100MB", 100e6],
    ["2G", 2e9],
    ["10k", 10_000],
    ["64mi", 64 * 1024 ** 2],
    ["64 MiB", 64 * 1024 ** 2],
    ["0", 0],
  ])("reads %s as %d bytes", (text, bytes) => {
    expect(parseBytes(text)).toBe(bytes);
  });

  it.each(["", "12X", "-1Mi", "Mi", "1.2.3Gi", "1e3"])("refuses %j with a UsageError naming the accepted forms", (text) => {
    expect(() => parseBytes(text)).toThrow(UsageError);
    expect(() => parseBytes(text)).toThrow(/64Mi/);
  });
});

describe("parseDuration", () => {
  it.each([
    ["250ms", 250],
    ["2s", 2000],
    ["1.5s", 1500],
    ["5m", 300_000],
    ["1h", 3_600_000],
    ["1m30s", 90_000],
    ["1h30m", 5_400_000],
    ["2d", 172_800_000],
    ["500us", 0.5],
    ["1000", 1000],
  ])("reads %s as %d ms", (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each(["", "soon", "5 minutes", "1y", "-5s", "5s3"])("refuses %j", (text) => {
    expect(() => parseDuration(text)).toThrow(UsageError);
  });
});

describe("parseDeadline", () => {
  const now = new Date("2030-01-01T00:00:00.000Z");

  it("reads a relative duration as now plus that long", () => {
    expect(parseDeadline("30s", now).toISOString()).toBe("2030-01-01T00:00:30.000Z");
    expect(parseDeadline("+5m", now).toISOString()).toBe("2030-01-01T00:05:00.000Z");
  });

  it("reads RFC 3339 times with Z or an offset", () => {
    expect(parseDeadline("2030-01-02T03:04:05Z", now).toISOString()).toBe("2030-01-02T03:04:05.000Z");
    expect(parseDeadline("2030-01-02T03:04:05.250+02:00", now).toISOString()).toBe("2030-01-02T01:04:05.250Z");
  });

  it("refuses a bare number (unit required) and dates without a zone", () => {
    expect(() => parseDeadline("30", now)).toThrow(/RFC 3339/);
    expect(() => parseDeadline("2030-01-02T03:04:05", now)).toThrow(UsageError);
    expect(() => parseDeadline("tomorrow", now)).toThrow(UsageError);
  });
});

describe("labels", () => {
  it("splits at the first = and allows empty values", () => {
    expect(parseLabel("zone=eu-west")).toEqual(["zone", "eu-west"]);
    expect(parseLabel("expr=a=b")).toEqual(["expr", "a=b"]);
    expect(parseLabel("flag=")).toEqual(["flag", ""]);
  });

  it("refuses a label without key or =", () => {
    expect(() => parseLabel("zone")).toThrow(/key=value/);
    expect(() => parseLabel("=v")).toThrow(UsageError);
  });

  it("collects repeated flags, later keys winning", () => {
    expect(collectLabel("b=2", collectLabel("a=1", undefined))).toEqual({ a: "1", b: "2" });
    expect(parseLabels(["a=1", "a=2"])).toEqual({ a: "2" });
    expect(parseLabels(undefined)).toEqual({});
  });
});

describe("lists and numbers", () => {
  it("collects repeated and comma-separated values", () => {
    expect(collectList("b, c", collectList("a", undefined))).toEqual(["a", "b", "c"]);
  });

  it("reads --values lists with commas or spaces", () => {
    expect(parseNumberList("1,2.5, -3")).toEqual([1, 2.5, -3]);
    expect(parseNumberList("4 5")).toEqual([4, 5]);
    expect(() => parseNumberList("1,x")).toThrow(/"x" is not a number/);
    expect(() => parseNumberList("")).toThrow(UsageError);
  });

  it("checks integer bounds", () => {
    expect(parseInteger("3", 0, 5)).toBe(3);
    expect(() => parseInteger("1.5")).toThrow(/whole number/);
    expect(() => parseInteger("9", 0, 5)).toThrow(/out of range/);
  });

  it("reads millicores with or without the m suffix", () => {
    expect(parseMillicores("250")).toBe(250);
    expect(parseMillicores("250m")).toBe(250);
    expect(() => parseMillicores("0.5")).toThrow(/millicores/);
  });

  it("reads shares as fractions or percentages", () => {
    expect(parseFraction("0.7")).toBe(0.7);
    expect(parseFraction("70%")).toBeCloseTo(0.7);
    expect(() => parseFraction("2")).toThrow(UsageError);
    expect(() => parseFraction("%")).toThrow(UsageError);
  });
});

describe("parseEnum", () => {
  it("accepts short, upper-case, prefixed and dashed names", () => {
    expect(parseEnum(PrioritySchema, "high")).toBe(Priority.HIGH);
    expect(parseEnum(PrioritySchema, "CRITICAL")).toBe(Priority.CRITICAL);
    expect(parseEnum(PrioritySchema, "PRIORITY_LOW")).toBe(Priority.LOW);
    expect(parseEnum(ProcessingModeSchema, "cloud-fallback")).toBe(ProcessingMode.CLOUD_FALLBACK);
    expect(parseEnum(TaskStateSchema, "running")).toBe(TaskState.RUNNING);
  });

  it("refuses UNSPECIFIED and unknown names, listing the choices from the generated enum", () => {
    expect(() => parseEnum(PrioritySchema, "unspecified")).toThrow(UsageError);
    expect(() => parseEnum(PrioritySchema, "urgent")).toThrow("one of critical, high, normal, low, background");
    expect(enumChoices(ProcessingModeSchema)).toEqual(["local", "distributed", "hybrid", "cloud_fallback"]);
  });
});

describe("parseHostPort", () => {
  it.each(["127.0.0.1:50051", "localhost:0", "[::1]:50051", "edge-7.example.com:443"])("accepts %s", (a) => {
    expect(parseHostPort(a)).toBe(a);
  });

  it.each(["50051", "host", "host:", "host:99999", "http://host:1", "::1:50051"])("refuses %s", (a) => {
    expect(() => parseHostPort(a)).toThrow(/HOST:PORT/);
  });
});
