// The .cpuprofile summariser: self time from the samples' time deltas, idle left out of the ranking, functions and
// modules named the way the report shows them.
import { describe, expect, it } from "vitest";
import { moduleOf, renderProfile, shortUrl, summarizeProfile, type CpuProfile } from "../../bench/cpuprofile.js";

const frame = (functionName: string, url = "", lineNumber = -1) => ({ functionName, url, lineNumber, columnNumber: 0, scriptId: "0" });

/** root → (idle), (program), commit (coordinator), encode (protobuf), fsync (native). */
const profile: CpuProfile = {
  nodes: [
    { id: 1, callFrame: frame("(root)"), children: [2, 3, 4, 5, 6] },
    { id: 2, callFrame: frame("(idle)") },
    { id: 3, callFrame: frame("(program)") },
    { id: 4, callFrame: frame("commit", "file:///repo/dist/coordinator/store/group-commit.js", 40) },
    { id: 5, callFrame: frame("encode", "file:///repo/node_modules/@bufbuild/protobuf/dist/esm/to-binary.js", 9) },
    { id: 6, callFrame: frame("fsync") },
  ],
  // Sample i lasts until sample i+1 (µs); the last one until endTime: idle 1 + 2, commit 3 + 1, encode 1, fsync 1.5, program 0.5 ms.
  startTime: 0,
  samples: [2, 4, 4, 5, 6, 3, 2],
  timeDeltas: [0, 1000, 3000, 1000, 1000, 1500, 500],
  endTime: 10_000,
};

describe("summarizeProfile", () => {
  const s = summarizeProfile(profile, { label: "coordinator", file: "x.cpuprofile", repoRoot: "/repo" });

  it("measures self time from the time deltas and leaves idle out of the busy time", () => {
    // idle 1 ms + 2 ms (last sample: 8000 → 10000 µs); busy = 10 − 3 = 7 ms
    expect(s.wallMs).toBeCloseTo(10);
    expect(s.idleMs).toBeCloseTo(3);
    expect(s.busyMs).toBeCloseTo(7);
  });

  it("ranks functions by self time with their defining file and line", () => {
    expect(s.top.map((t) => t.name)).toEqual([
      "commit coordinator/store/group-commit.js:41",
      "fsync (native)",
      "encode @bufbuild/protobuf/dist/esm/to-binary.js:10",
      "(program)",
    ]);
    expect(s.top[0].selfMs).toBeCloseTo(4);
    expect(s.top[0].share).toBeCloseTo(4 / 7);
  });

  it("rolls self time up by module", () => {
    expect(Object.fromEntries(s.modules.map((m) => [m.name, m.selfMs]))).toEqual({
      "coordinator/": 4,
      "(native / V8)": 1.5,
      "@bufbuild/protobuf": 1,
      "(program)": 0.5,
    });
  });

  it("renders a Markdown table", () => {
    const md = renderProfile(s).join("\n");
    expect(md).toContain("| 1 | `commit coordinator/store/group-commit.js:41` | 4.00 | 57.1% |");
    expect(md).toContain("By module: coordinator/ 57.1%");
  });
});

describe("names", () => {
  it("shorten paths inside node_modules and the repository", () => {
    expect(shortUrl("file:///a/node_modules/@grpc/grpc-js/build/src/server.js")).toBe("@grpc/grpc-js/build/src/server.js");
    expect(shortUrl("file:///repo/dist/agent/journal.js", "/repo")).toBe("agent/journal.js");
    expect(moduleOf("file:///a/node_modules/pino/lib/proto.js")).toBe("pino");
    expect(moduleOf("node:internal/fs/utils")).toBe("node internals");
    expect(moduleOf("file:///repo/dist/lib/log.js", "/repo")).toBe("lib/");
  });
});
