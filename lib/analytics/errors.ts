// Errors handlers throw and the loader raises. Plain classes: no I/O, no logging.

/**
 * The task's input is wrong. The message says exactly what to fix, names the handler, and reaches the
 * client verbatim as the attempt's error, so it must never include anything but the input's own content.
 */
export class HandlerInputError extends Error {
  override readonly name = "HandlerInputError";
}

/** A custom handler module could not be used; the message names the file. */
export class HandlerLoadError extends Error {
  override readonly name = "HandlerLoadError";
  /** Absolute path of the offending module or directory. */
  readonly file: string;
  constructor(file: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.file = file;
  }
}

/** True for HandlerInputError, also when thrown by a custom handler that declared its own class of that name. */
export function isHandlerInputError(err: unknown): err is Error {
  return err instanceof HandlerInputError || (err instanceof Error && err.name === "HandlerInputError");
}
