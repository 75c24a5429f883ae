// Public surface of the executor. Re-exports only: no logic here.

export { createExecutor, DEFAULT_ABORT_GRACE_MS, defaultWorkerUrl, type ExecutorState } from "./executor.js";
export type { ExecRequest, ExecResult, Executor, ExecutorLogger, ExecutorOptions } from "./types.js";
export { DEFAULT_MEMORY_LIMIT_BYTES, MIN_MEMORY_CLASS_MB, memoryClassMb, resourceLimitsFor } from "./memory.js";
