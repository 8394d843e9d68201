import type { ErrorCode } from "./wire.js";

/**
 * The SDK's own error codes, beside the API's: the browser's WebAuthn errors, which never
 * reach the verifier. Each comes with the message a person sees.
 *
 * | code | when |
 * | --- | --- |
 * | `passkey_cancelled` | the person closed the passkey prompt, it timed out, or this device has no passkey for the account (the browser's `NotAllowedError`: browsers tell these apart on purpose only to the person) |
 * | `passkey_aborted` | the request was stopped before it finished: the page's `AbortSignal`, or a newer passkey request replaced it (`AbortError`) |
 * | `passkey_already_registered` | registering, and this device or security key already holds a passkey for this account (`InvalidStateError`) |
 * | `passkey_wrong_domain` | the page's address does not belong to the passkey domain (RP ID) the verifier names for this app (`SecurityError`) |
 * | `passkey_unsupported` | this browser or device cannot use passkeys, or not with these options (`NotSupportedError`, or no WebAuthn at all) |
 * | `passkey_failed` | any other error of the browser's passkey prompt; the message carries the browser's words |
 */
export const sdkErrors = {
  passkey_cancelled: "The passkey prompt was closed or timed out, or this device has no passkey for this account. Try again when you are ready, or use another way to sign in.",
  passkey_aborted: "The passkey request was stopped before it finished. Try again.",
  passkey_already_registered: "This device or security key already holds a passkey for this account: sign in with it, or add a passkey on another device.",
  passkey_wrong_domain: "Passkeys cannot be used on this page's address: it is not part of the app's passkey domain. Open the app from its real address.",
  passkey_unsupported: "This browser or device cannot use passkeys. Use your authenticator app, or another browser.",
  passkey_failed: "The browser could not use a passkey.",
} as const;

/** One of the SDK's own codes (see sdkErrors). */
export type SDKErrorCode = keyof typeof sdkErrors;

/** The browser's WebAuthn errors (DOMException names) and the SDK code each becomes. */
export const browserErrorCodes: Readonly<Record<string, SDKErrorCode>> = {
  NotAllowedError: "passkey_cancelled",
  AbortError: "passkey_aborted",
  InvalidStateError: "passkey_already_registered",
  SecurityError: "passkey_wrong_domain",
  NotSupportedError: "passkey_unsupported",
};

/** The code of a TwofoldError: an API error code, or one of the SDK's own (sdkErrors). */
export type TwofoldErrorCode = ErrorCode | SDKErrorCode | (string & {});

// The engine rejects with this prefix and the DOMException's name when the browser's own
// WebAuthn call failed (wasm/passkey.go).
const browserPrefix = "browser:";

/**
 * Every failure of the SDK. `code` is the API's error code (`invalid_code`,
 * `origin_not_allowed`, ...) and `message` the API's message: a sentence a person can act on;
 * failures of the browser's passkey prompt have the SDK's own codes (sdkErrors).
 */
export class TwofoldError extends Error {
  readonly code: TwofoldErrorCode;
  /** For `invalid_code` caused by a phone clock out of step: which way it is off. */
  readonly clock?: "ahead" | "behind";
  /** For `rate_limited`: seconds to wait. */
  readonly retryAfter?: number;
  /** For the SDK's passkey codes: the browser's DOMException name (`NotAllowedError`, ...). */
  readonly browserError?: string;

  constructor(code: TwofoldErrorCode, message: string, extra: { clock?: string; retryAfter?: number; browserError?: string } = {}) {
    super(message);
    this.name = "TwofoldError";
    this.code = code;
    if (extra.clock === "ahead" || extra.clock === "behind") this.clock = extra.clock;
    if (extra.retryAfter) this.retryAfter = extra.retryAfter;
    if (extra.browserError) this.browserError = extra.browserError;
  }

  /** Wraps whatever the engine rejected with. */
  static from(e: unknown): TwofoldError {
    if (e instanceof TwofoldError) return e;
    if (e && typeof e === "object" && "code" in e && "message" in e) {
      const o = e as { code: string; message: string; clock?: string; retryAfter?: number };
      const code = String(o.code);
      if (code.startsWith(browserPrefix)) return TwofoldError.fromBrowser(code.slice(browserPrefix.length), String(o.message));
      return new TwofoldError(code, String(o.message), o);
    }
    return new TwofoldError("internal", e instanceof Error ? e.message : String(e));
  }

  /**
   * Maps an error of the browser's WebAuthn calls (a DOMException's name and message) to the
   * SDK's code and message. An unknown name is `passkey_failed` with the browser's words.
   */
  static fromBrowser(name: string, browserMessage = ""): TwofoldError {
    const code = browserErrorCodes[name] ?? "passkey_failed";
    let message: string = sdkErrors[code];
    if (code === "passkey_failed") message += browserMessage ? ` (${name}: ${browserMessage})` : name ? ` (${name})` : "";
    return new TwofoldError(code, message, { browserError: name || undefined });
  }
}
