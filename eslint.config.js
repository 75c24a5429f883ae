// ESLint (flat config): the import boundaries between coordinator/, agent/, lib/ and the pure modules, plus a
// short list of correctness rules. No stylistic or formatting rules here: formatting is a separate, later pass.
import { builtinModules } from "node:module";
import { defineConfig } from "eslint/config";
import tseslint from "typescript-eslint";

const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** A relative import that climbs out of its directory into the top-level directory `dir` (e.g. "../../agent/x.js"). */
const intoTopDir = (dir, why) => ({ regex: `^(\\.\\./)+${escape(dir)}(/|$)`, message: why });

const NOT_AGENT = intoTopDir("agent", "the coordinator never depends on the agent: shared code goes in lib/ (handlers: lib/analytics/)");
const NOT_COORDINATOR = intoTopDir("coordinator", "the agent never depends on the coordinator: shared code goes in lib/");
const NOT_CLI = intoTopDir("cli", "cli/ sits on top: nothing below it imports it");
const LIB_NOT_AGENT = intoTopDir("agent", "lib/ is shared by coordinator and agent: it imports neither");
const LIB_NOT_COORDINATOR = intoTopDir("coordinator", "lib/ is shared by coordinator and agent: it imports neither");

/** Node built-ins (node:fs, fs, timers, …) and the packages that do I/O: off limits to pure modules. */
const NO_IO = [
  {
    regex: `^(node:.*|${builtinModules.map(escape).join("|")})$`,
    message: "pure module: no Node built-ins (no I/O, no timers, no clock); take what you need as a parameter",
  },
  {
    regex: "^(@grpc/|@connectrpc/|better-sqlite3$|pino$)",
    message: "pure module: no transport, store or logger; the caller does the I/O",
  },
];

/** Globals a pure module must not touch: timers, the clock, the process. `now` is passed in. */
const PURE_GLOBALS = {
  "no-restricted-globals": [
    "error",
    ...["setTimeout", "setInterval", "setImmediate", "clearTimeout", "clearInterval", "clearImmediate", "performance", "process", "fetch"].map((name) => ({
      name,
      message: "pure module: no timers, no clock, no process; take `now` (or a callback) as a parameter",
    })),
  ],
  "no-restricted-properties": [
    "error",
    { object: "Date", property: "now", message: "pure module: no clock; take `now` as a parameter" },
    { object: "globalThis", property: "setTimeout", message: "pure module: no timers" },
    { object: "globalThis", property: "setInterval", message: "pure module: no timers" },
    { object: "globalThis", property: "setImmediate", message: "pure module: no timers" },
  ],
  "no-restricted-syntax": [
    "error",
    { selector: "NewExpression[callee.name='Date'][arguments.length=0]", message: "pure module: no clock; take `now` as a parameter" },
    { selector: "ImportExpression", message: "pure module: no dynamic import (loading code is I/O; the agent's custom-loader does it)" },
  ],
};

/** Import restrictions for one area. Areas are disjoint: a later config object would replace, not extend, the rule. */
const restrictImports = (...patterns) => ({ "no-restricted-imports": ["error", { patterns }] });

export default defineConfig(
  {
    ignores: [
      "dist/**",
      "gen/**",
      "node_modules/**",
      "bench/out/**",
      "coverage/**",
      "data/**",
      // Deliberately unparseable: the custom-loader test checks the agent names it in its error.
      "test/fixtures/handlers/broken-syntax/**",
    ],
  },
  {
    linterOptions: { reportUnusedDisableDirectives: "error" },
  },

  // Correctness rules that need no type information (every file, JS included).
  {
    files: ["**/*.{ts,js,mjs}"],
    rules: {
      "no-async-promise-executor": "error",
      "no-compare-neg-zero": "error",
      "no-cond-assign": ["error", "except-parens"],
      "no-constant-binary-expression": "error",
      "no-dupe-else-if": "error",
      "no-duplicate-case": "error",
      "no-loss-of-precision": "error",
      "no-self-assign": "error",
      "no-self-compare": "error",
      "no-template-curly-in-string": "error",
      "no-unsafe-finally": "error",
      "no-unsafe-optional-chaining": ["error", { disallowArithmeticOperators: true }],
      "preserve-caught-error": "error",
      "use-isnan": "error",
    },
  },

  // Correctness rules that need the type checker (TypeScript files, through tsconfig.json).
  {
    files: ["**/*.ts"],
    extends: [tseslint.configs.base],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      "@typescript-eslint/await-thenable": "error",
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/no-for-in-array": "error",
      "@typescript-eslint/no-misused-promises": "error",
      "@typescript-eslint/require-array-sort-compare": ["error", { ignoreStringArrays: true }],
      "@typescript-eslint/switch-exhaustiveness-check": ["error", { considerDefaultExhaustiveForUnions: true }],
    },
  },

  // Import boundaries (docs/development.md, "Import boundaries", explains them for readers).
  {
    files: ["coordinator/**/*.ts"],
    ignores: ["coordinator/scheduler/**"],
    rules: restrictImports(NOT_AGENT, NOT_CLI),
  },
  {
    // The scheduler is pure placement: no I/O, no timers, no clock.
    files: ["coordinator/scheduler/**/*.ts"],
    rules: { ...restrictImports(NOT_AGENT, NOT_CLI, ...NO_IO), ...PURE_GLOBALS },
  },
  {
    files: ["agent/**/*.ts"],
    rules: restrictImports(NOT_COORDINATOR, NOT_CLI),
  },
  {
    files: ["lib/**/*.ts"],
    ignores: ["lib/analytics/**"],
    rules: restrictImports(LIB_NOT_COORDINATOR, LIB_NOT_AGENT, NOT_CLI),
  },
  {
    // Handlers run in agents' workers and in the coordinator's merge step: pure computations.
    files: ["lib/analytics/**/*.ts"],
    rules: { ...restrictImports(LIB_NOT_COORDINATOR, LIB_NOT_AGENT, NOT_CLI, ...NO_IO), ...PURE_GLOBALS },
  },
);
