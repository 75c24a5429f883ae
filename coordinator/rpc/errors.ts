// The one boundary where domain errors become gRPC statuses. Unknown errors become INTERNAL and are logged by the caller.
import { status, type ServiceError, Metadata } from "@grpc/grpc-js";
import { isDomainError } from "../errors.js";
import { StoreWriteError } from "../store/store-errors.js";

export interface GrpcStatusError extends Partial<ServiceError> {
  code: status;
  details: string;
}

/** An error raised inside rpc/ itself for a malformed request. */
export class RpcStatusError extends Error {
  constructor(
    readonly code: status,
    message: string,
  ) {
    super(message);
    this.name = "RpcStatusError";
  }
}

export function toGrpcStatus(err: unknown): { code: status; details: string; internal: boolean } {
  if (err instanceof RpcStatusError) return { code: err.code, details: err.message, internal: false };
  // The write is kept and retried; the client may retry with the same idempotency key.
  if (err instanceof StoreWriteError)
    return { code: status.UNAVAILABLE, details: `not stored yet: ${err.message}; retry with the same idempotency key`, internal: false };
  if (isDomainError(err)) {
    switch (err.kind) {
      case "invalid":
        return { code: status.INVALID_ARGUMENT, details: err.message, internal: false };
      case "not_found":
        return { code: status.NOT_FOUND, details: err.message, internal: false };
      case "already_exists":
        return { code: status.ALREADY_EXISTS, details: err.message, internal: false };
      case "failed_precondition":
        return { code: status.FAILED_PRECONDITION, details: err.message, internal: false };
      case "resource_exhausted":
        return { code: status.RESOURCE_EXHAUSTED, details: err.message, internal: false };
      case "unavailable":
        return { code: status.UNAVAILABLE, details: err.message, internal: false };
      case "unauthenticated":
        return { code: status.UNAUTHENTICATED, details: err.message, internal: false };
      case "permission_denied":
        return { code: status.PERMISSION_DENIED, details: err.message, internal: false };
      default: {
        const never: never = err;
        return { code: status.INTERNAL, details: String(never), internal: true };
      }
    }
  }
  return { code: status.INTERNAL, details: "internal error (see coordinator log)", internal: true };
}

export function toServiceError(err: unknown): GrpcStatusError {
  const s = toGrpcStatus(err);
  return { code: s.code, details: s.details, metadata: new Metadata(), name: "ServiceError", message: s.details };
}
