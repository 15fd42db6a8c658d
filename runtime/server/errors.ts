/**
 * Maps every error the server can meet to OpenAI's error body
 * `{"error":{"message","type","param","code"}}` and an HTTP status. The app's single
 * `onError` and the SSE writer (errors after a stream started) both use `errorBody`.
 *
 * `HttpError` is the server's own CrumbError for conditions that exist only over HTTP
 * (auth, unknown route, busy, body too large, shutting down); engine errors keep their
 * classes and are mapped by code here.
 */
import { HTTPException } from "hono/http-exception";
import { CancelledError, ContextLengthError, CrumbError, InvalidArgumentError, TokenizerError } from "../errors.ts";

/**
 * 408: the request's headers or body did not arrive within --read-timeout; 415: a body that is
 * not JSON on a server without an API key; 431: a header too large; 499 (nginx's "client closed
 * request"): the client went away, which is not a server error and is logged and counted as such.
 */
export type ErrorStatus = 400 | 401 | 404 | 405 | 408 | 413 | 415 | 429 | 431 | 499 | 500 | 503;

/** An error that only exists over HTTP; carries its status, OpenAI type and code. */
export class HttpError extends CrumbError {
  readonly status: ErrorStatus;
  readonly type: string;
  readonly param: string | null;
  /** Seconds, sent as Retry-After (503, 429). */
  readonly retryAfter?: number;
  constructor(
    status: ErrorStatus,
    code: string,
    message: string,
    options: { type?: string; param?: string; retryAfter?: number; cause?: unknown } = {},
  ) {
    super(code, message, { cause: options.cause });
    this.status = status;
    this.type = options.type ?? defaultType(status);
    this.param = options.param ?? null;
    this.retryAfter = options.retryAfter;
  }
}

function defaultType(status: number): string {
  if (status === 401) return "authentication_error";
  if (status === 404) return "not_found_error";
  if (status === 429 || status === 503) return "server_busy_error";
  if (status === 499) return "client_closed_request";
  if (status >= 500) return "server_error";
  return "invalid_request_error";
}

export interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

export interface MappedError {
  status: ErrorStatus;
  body: OpenAIErrorBody;
  retryAfter?: number;
}

/** The status and OpenAI body for any thrown value. Unknown errors become 500 without internals. */
export function mapError(error: unknown): MappedError {
  const body = (message: string, type: string, param: string | null, code: string | null): OpenAIErrorBody => ({
    error: { message, type, param, code },
  });
  if (error instanceof HttpError) {
    return { status: error.status, body: body(error.message, error.type, error.param, error.code), retryAfter: error.retryAfter };
  }
  if (error instanceof ContextLengthError) {
    return { status: 400, body: body(error.message, "invalid_request_error", null, error.code) };
  }
  if (error instanceof InvalidArgumentError) {
    return { status: 400, body: body(error.message, "invalid_request_error", error.argument, error.code) };
  }
  // Tokenizer errors reach the server from user input: text it cannot encode, a chat
  // template that rejects the conversation, a model without a chat template.
  if (error instanceof TokenizerError) {
    return { status: 400, body: body(error.message, "invalid_request_error", null, error.code) };
  }
  // Work stopped because its client left (the server's own cancellations are HttpError 503).
  if (error instanceof CancelledError) {
    return { status: 499, body: body(error.message, "client_closed_request", null, error.code) };
  }
  if (error instanceof HTTPException) {
    const status = ([400, 401, 404, 405, 413, 429, 503] as const).find((s) => s === error.status) ?? 500;
    const message = status === 413 ? "request body too large" : error.message || `HTTP ${error.status}`;
    return { status, body: body(message, defaultType(status), null, status === 413 ? "request_too_large" : null) };
  }
  if (error instanceof CrumbError) {
    return { status: 500, body: body(error.message, "server_error", null, error.code) };
  }
  return {
    status: 500,
    body: body("internal server error; see the server log (request id in x-request-id)", "server_error", null, "internal_error"),
  };
}
