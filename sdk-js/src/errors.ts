import type { ErrorCode } from "./wire.js";

/** The code of a TwofoldError: an API error code, or "cancelled" when the person closed a passkey prompt. */
export type TwofoldErrorCode = ErrorCode | "cancelled" | (string & {});

/**
 * Every failure of the SDK. `code` is the API's error code (`invalid_code`,
 * `origin_not_allowed`, ...) and `message` the API's message: a sentence a person can act on.
 */
export class TwofoldError extends Error {
  readonly code: TwofoldErrorCode;
  /** For `invalid_code` caused by a phone clock out of step: which way it is off. */
  readonly clock?: "ahead" | "behind";
  /** For `rate_limited`: seconds to wait. */
  readonly retryAfter?: number;

  constructor(code: TwofoldErrorCode, message: string, extra: { clock?: string; retryAfter?: number } = {}) {
    super(message);
    this.name = "TwofoldError";
    this.code = code;
    if (extra.clock === "ahead" || extra.clock === "behind") this.clock = extra.clock;
    if (extra.retryAfter) this.retryAfter = extra.retryAfter;
  }

  /** Wraps whatever the engine rejected with. */
  static from(e: unknown): TwofoldError {
    if (e instanceof TwofoldError) return e;
    if (e && typeof e === "object" && "code" in e && "message" in e) {
      const o = e as { code: string; message: string; clock?: string; retryAfter?: number };
      return new TwofoldError(String(o.code), String(o.message), o);
    }
    return new TwofoldError("internal", e instanceof Error ? e.message : String(e));
  }
}
