/**
 * Typed errors for every crumb module. Each carries a stable `code` so CLIs and the
 * HTTP server can map them without parsing messages. Messages name the offending
 * value and the way out.
 */

export interface CrumbErrorOptions {
  cause?: unknown;
}

export class CrumbError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options: CrumbErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
  }
}

/** A model config that is missing a key or holds an impossible value. */
export class ConfigError extends CrumbError {
  readonly key?: string;
  constructor(message: string, options: CrumbErrorOptions & { key?: string } = {}) {
    super("config_error", message, options);
    this.key = options.key;
  }
}

export interface FormatErrorDetails extends CrumbErrorOptions {
  /** Path of the file being read. */
  file?: string;
  /** Tensor (or section) whose bytes were being read. */
  tensor?: string;
  /** Byte offset in the file where the problem was found. */
  offset?: number;
}

/** A file that is truncated, corrupt, of the wrong kind or of a newer version. */
export class FormatError extends CrumbError {
  readonly file?: string;
  readonly tensor?: string;
  readonly offset?: number;
  constructor(message: string, details: FormatErrorDetails = {}) {
    const where = [
      details.file === undefined ? undefined : `file ${details.file}`,
      details.tensor === undefined ? undefined : `tensor ${details.tensor}`,
      details.offset === undefined ? undefined : `byte offset ${details.offset}`,
    ].filter((part) => part !== undefined);
    super("format_error", where.length > 0 ? `${message} (${where.join(", ")})` : message, details);
    this.file = details.file;
    this.tensor = details.tensor;
    this.offset = details.offset;
  }
}

/** An architecture, dtype or feature crumb does not implement; the message lists what is supported. */
export class UnsupportedModelError extends CrumbError {
  readonly supported: readonly string[];
  constructor(message: string, supported: readonly string[], options: CrumbErrorOptions = {}) {
    super("unsupported_model", `${message}; supported: ${supported.join(", ")}`, options);
    this.supported = supported;
  }
}

/** Operands whose shapes do not fit the operation. */
export class ShapeError extends CrumbError {
  readonly op: string;
  readonly expected: string;
  readonly got: string;
  constructor(op: string, expected: string, got: string, options: CrumbErrorOptions = {}) {
    super("shape_error", `${op}: expected ${expected}, got ${got}`, options);
    this.op = op;
    this.expected = expected;
    this.got = got;
  }
}

/** A prompt plus requested tokens that do not fit the context window. Never truncate silently. */
export class ContextLengthError extends CrumbError {
  readonly promptTokens: number;
  readonly maxTokens: number;
  readonly contextLength: number;
  constructor(promptTokens: number, maxTokens: number, contextLength: number, options: CrumbErrorOptions = {}) {
    super(
      "context_length_exceeded",
      `prompt of ${promptTokens} tokens plus ${maxTokens} new tokens exceeds the context length of ${contextLength}; ` +
        `shorten the prompt, lower max tokens, or raise the context length`,
      options,
    );
    this.promptTokens = promptTokens;
    this.maxTokens = maxTokens;
    this.contextLength = contextLength;
  }
}

/** A WASM kernel called with arguments it cannot honour, or a kernel module that failed to load. */
export class KernelError extends CrumbError {
  constructor(message: string, options: CrumbErrorOptions = {}) {
    super("kernel_error", message, options);
  }
}

/** A tokenizer file that cannot be read or converted, or text that cannot be encoded. */
export class TokenizerError extends CrumbError {
  constructor(message: string, options: CrumbErrorOptions = {}) {
    super("tokenizer_error", message, options);
  }
}

/** Bad command-line or API input: names the value and the accepted range. */
export class InvalidArgumentError extends CrumbError {
  readonly argument: string;
  constructor(argument: string, message: string, options: CrumbErrorOptions & { code?: string } = {}) {
    super(options.code ?? "invalid_argument", message, options);
    this.argument = argument;
  }
}

/** Work stopped before it finished because its caller aborted it (a client that left). */
export class CancelledError extends CrumbError {
  constructor(message: string, options: CrumbErrorOptions = {}) {
    super("cancelled", message, options);
  }
}

/**
 * A command line the CLI cannot run: an unknown flag, a bad or out-of-range value, a missing
 * argument. CLIs exit 2 for it (1 for every other error); the message names the flag and what
 * it accepts.
 */
export class UsageError extends InvalidArgumentError {
  constructor(argument: string, message: string, options: CrumbErrorOptions = {}) {
    super(argument, message, { ...options, code: "usage_error" });
  }
}

/** A server that cannot listen: the port is taken, the host does not resolve or is not this machine's. */
export class ListenError extends CrumbError {
  readonly host: string;
  readonly port: number;
  constructor(host: string, port: number, message: string, options: CrumbErrorOptions = {}) {
    super("listen_failed", message, options);
    this.host = host;
    this.port = port;
  }
}
