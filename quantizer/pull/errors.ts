/**
 * Errors raised while pulling a model from the Hugging Face Hub. Both extend CrumbError so
 * CLIs map them like every other crumb error; the `code` says what went wrong:
 * `hub_auth_required` (401/403, gated or private), `hub_not_found` (404), `unsafe_path`
 * (a file name that would leave the cache), `network_error` (unreachable, or dropped after
 * every retry), `resume_refused` (a Range the server would not honour; retried from zero),
 * `download_error` (any other bad answer), `aborted`; `integrity_error` when a downloaded
 * file does not match the size or hash the hub reported.
 */
import { CrumbError, type CrumbErrorOptions } from "../../runtime/errors.ts";

export interface HubErrorDetails extends CrumbErrorOptions {
  /** HTTP status of the answer that failed, when there was one. */
  status?: number;
  /** URL without its query string (CDN URLs carry signatures). */
  url?: string;
}

export class HubError extends CrumbError {
  readonly status?: number;
  readonly url?: string;
  constructor(code: string, message: string, details: HubErrorDetails = {}) {
    super(code, message, details);
    this.status = details.status;
    this.url = details.url;
  }
}

/** A downloaded file whose size or hash differs from what the hub reported; the file is deleted. */
export class IntegrityError extends CrumbError {
  readonly file: string;
  readonly check: "size" | "sha256" | "git-sha1";
  readonly expected: string;
  readonly actual: string;
  constructor(file: string, check: "size" | "sha256" | "git-sha1", expected: string, actual: string) {
    super(
      "integrity_error",
      `${file}: ${check} mismatch, the hub reported ${expected} but the download has ${actual}; ` +
        `the file was deleted, run pull again (a mirror set through HF_ENDPOINT may serve stale files)`,
    );
    this.file = file;
    this.check = check;
    this.expected = expected;
    this.actual = actual;
  }
}
