// Typed domain errors of the coordinator. rpc/errors.ts maps them to gRPC status codes; nothing else does.

abstract class EdgeplaneError extends Error {
  abstract readonly kind:
    "invalid" | "not_found" | "already_exists" | "failed_precondition" | "resource_exhausted" | "unavailable" | "unauthenticated" | "permission_denied";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The request is malformed; the message says which field and what to fix. */
export class InvalidArgumentError extends EdgeplaneError {
  readonly kind = "invalid" as const;
}
export class NotFoundError extends EdgeplaneError {
  readonly kind = "not_found" as const;
}
export class AlreadyExistsError extends EdgeplaneError {
  readonly kind = "already_exists" as const;
}
/** The request is well-formed but the system is not in a state to do it (e.g. cancel a finished task). */
export class FailedPreconditionError extends EdgeplaneError {
  readonly kind = "failed_precondition" as const;
}
/** The request asks for more than the limits allow (input larger than --max-input-bytes). */
export class ResourceExhaustedError extends EdgeplaneError {
  readonly kind = "resource_exhausted" as const;
}
export class UnavailableError extends EdgeplaneError {
  readonly kind = "unavailable" as const;
}
/** No valid credentials (missing, unknown, expired or revoked token or certificate); the message says what is needed. */
export class UnauthenticatedError extends EdgeplaneError {
  readonly kind = "unauthenticated" as const;
}
/** Valid credentials without the right for this call; the message names the right and who has it. */
export class PermissionDeniedError extends EdgeplaneError {
  readonly kind = "permission_denied" as const;
}

export type DomainError =
  | InvalidArgumentError
  | NotFoundError
  | AlreadyExistsError
  | FailedPreconditionError
  | ResourceExhaustedError
  | UnavailableError
  | UnauthenticatedError
  | PermissionDeniedError;

export function isDomainError(e: unknown): e is DomainError {
  return e instanceof EdgeplaneError;
}
