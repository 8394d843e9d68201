// The typed surface of the Go engine: Twofold.load() and what it returns.
import { engine, frameAncestors, setWasmSource, type EngineClient, type WasmSource } from "./engine.js";
import { TwofoldError } from "./errors.js";
import type * as wire from "./wire.js";


export interface LoadOptions {
  /** The verifier's base URL, e.g. "https://mfa.example.com". */
  verifier: string;
  /** The ticket your backend got from POST /v1/tickets for this user. */
  ticket: string;
  /** Where to fetch twofold.wasm from (or its bytes); default: beside this module. Only the first load uses it. */
  wasm?: WasmSource;
}

export interface Factors {
  totp: boolean;
  passkeys: number;
  recoveryCodesRemaining: number;
}

/** One of the user's second factors, as GET /v1/factors lists it. */
export interface FactorInfo {
  id: string;
  type: "totp" | "passkey";
  label: string;
  createdAt: Date;
  /** null until it was first used to sign in. */
  lastUsedAt: Date | null;
}

/** GET /v1/session. */
export interface Session {
  user: string;
  factors: Factors;
  serverTime: Date;
  /** This ticket already passed a second factor. */
  elevated: boolean;
  /** This ticket passed with a recovery code: ask the person to set up a new authenticator. */
  recoveryUsed: boolean;
  /** The app's origins. */
  origins: string[];
}

/** A pending authenticator: show qrSVG (as an image) and secret, then confirm with a code. */
export interface Enrollment {
  id: string;
  otpauthURI: string;
  secret: string;
  /** An SVG document; show it as <img src="data:image/svg+xml,...">, never as markup. */
  qrSVG: string;
  expiresAt: Date;
}

export interface Confirmation {
  /** Shown this once; empty when the user already had a set. */
  recoveryCodes: string[];
  token: string;
  expiresIn: number;
}

export interface TokenResult {
  /** A JWT for your backend; verify it against the verifier's JWKS. */
  token: string;
  /** Seconds. */
  expiresIn: number;
}

export interface PasskeyRegisterOptions {
  /** A name for the new passkey, shown in the user's list of factors; default "Passkey". */
  label?: string;
  /** Stops the browser's prompt; the promise then rejects with "passkey_aborted". */
  signal?: AbortSignal;
}

export interface PasskeyAuthenticateOptions {
  /** Let the browser offer any passkey of the app it holds (usernameless), not only this user's known ones. */
  discoverable?: boolean;
  /** Stops the browser's prompt; the promise then rejects with "passkey_aborted". */
  signal?: AbortSignal;
}

export interface ClockStatus {
  /** Whether the verifier's time could be read. */
  known: boolean;
  /** Seconds, device clock minus verifier clock. */
  skew: number;
  /** The device clock is off enough (30 s or more) that codes may fail. */
  warn: boolean;
  direction: "" | "ahead" | "behind";
}

/** One step of the guided enrollment that <twofold-enroll> renders; the Go engine runs it. */
export interface EnrollmentView {
  step: "idle" | "starting" | "scan" | "confirming" | "recovery" | "done" | "expired" | "failed";
  enrollment: Enrollment | null;
  recoveryCodes: string[];
  /**
   * At "done", the token of the confirmation; "" when the page was reloaded at the recovery
   * codes (the old ticket's token is not kept): then verify a code to finish.
   */
  token: string;
  expiresIn: number;
  attempts: number;
  /** Suggest checking the phone's clock and scanning again (after a few wrong codes). */
  hint: boolean;
  error: TwofoldError | null;
}

function enrollmentFrom(w: wire.Enrollment): Enrollment {
  return { id: w.id, otpauthURI: w.otpauth_uri, secret: w.secret, qrSVG: w.qr_svg, expiresAt: new Date(w.expires_at) };
}

function tokenFrom(w: wire.Token): TokenResult {
  return { token: w.token, expiresIn: w.expires_in };
}

async function wrap<T>(p: Promise<unknown>, map: (v: any) => T): Promise<T> {
  try {
    return map(await p);
  } catch (e) {
    throw TwofoldError.from(e);
  }
}

export class Twofold {
  readonly #c: EngineClient;

  private constructor(c: EngineClient) {
    this.#c = c;
  }

  /**
   * Loads the SDK for one user. Rejects with TwofoldError "origin_not_allowed" when the
   * page is not on one of the app's origins or is framed by another origin.
   */
  static async load(opts: LoadOptions): Promise<Twofold> {
    if (opts.wasm) setWasmSource(opts.wasm);
    const e = await engine();
    return wrap(e.load({ verifier: opts.verifier, ticket: opts.ticket, frames: frameAncestors() }), (c: EngineClient) => new Twofold(c));
  }

  /** Sets where twofold.wasm is fetched from, before the first load (for CDNs and bundlers). */
  static setWasm(source: WasmSource): void {
    setWasmSource(source);
  }

  /** As GET /v1/session; also measures the clock again. */
  session(): Promise<Session> {
    return wrap(this.#c.session(), (w: wire.Session) => ({
      user: w.user,
      factors: { totp: w.factors.totp, passkeys: w.factors.passkeys, recoveryCodesRemaining: w.factors.recovery_codes_remaining },
      serverTime: new Date(w.server_time),
      elevated: w.elevated,
      recoveryUsed: w.recovery_used,
      origins: w.origins,
    }));
  }

  readonly totp = {
    /** Starts a new authenticator (POST /v1/totp/enrollments). */
    enroll: (): Promise<Enrollment> => wrap(this.#c.totpEnroll(), enrollmentFrom),
    /** Confirms it with the first code from the app; the recovery codes come this once. */
    confirm: (id: string, code: string): Promise<Confirmation> =>
      wrap(this.#c.totpConfirm(id, code), (w: wire.Confirmation) => ({ recoveryCodes: w.recovery_codes ?? [], token: w.token, expiresIn: w.expires_in })),
    /** Verifies a code from the app. */
    verify: (code: string): Promise<TokenResult> => wrap(this.#c.totpVerify(code), tokenFrom),
  };

  readonly recovery = {
    /** Verifies a recovery code; each works once. */
    verify: (code: string): Promise<TokenResult> => wrap(this.#c.recoveryVerify(code), tokenFrom),
    /**
     * Gives the user a new set of recovery codes, shown this once; the old set stops working
     * at once (POST /v1/recovery/codes). Needs a ticket that passed a second factor.
     */
    regenerate: (): Promise<string[]> => wrap(this.#c.recoveryRegenerate(), (w: wire.RecoveryCodes) => w.recovery_codes ?? []),
  };

  /** The user's authenticators and passkeys (GET /v1/factors). */
  listFactors(): Promise<FactorInfo[]> {
    return wrap(this.#c.factorList(), (w: wire.FactorList) =>
      (w.factors ?? []).map((f) => ({
        id: f.id,
        type: f.type as FactorInfo["type"],
        label: f.label,
        createdAt: new Date(f.created_at),
        lastUsedAt: f.last_used_at ? new Date(f.last_used_at) : null,
      })),
    );
  }

  /**
   * Removes one factor (DELETE /v1/factors/{id}). Needs a ticket that passed a second
   * factor; the last factor is never removed ("last_factor"). `factors` changes with the
   * next session().
   */
  removeFactor(id: string): Promise<void> {
    return wrap(this.#c.factorRemove(id), () => undefined);
  }

  readonly passkeys = {
    /**
     * Registers a passkey on this device or a security key (POST /v1/webauthn/registrations).
     * Needs a ticket that already passed a second factor (else "step_up_required"). The
     * browser's own refusals become the SDK's codes: "passkey_cancelled",
     * "passkey_already_registered", "passkey_wrong_domain", ... (see sdkErrors).
     */
    register: (opts: PasskeyRegisterOptions = {}): Promise<{ id: string }> =>
      wrap(this.#c.passkeyRegister(opts), (w: wire.PasskeyRegistered) => ({ id: w.id })),
    /**
     * Signs in with a passkey: a complete second factor when the device verified the
     * person, so no code is asked for afterwards. "not_found" when the user has none;
     * "invalid_passkey" when the verifier refuses the answer.
     */
    authenticate: (opts: PasskeyAuthenticateOptions = {}): Promise<TokenResult> => wrap(this.#c.passkeyAuthenticate(opts), tokenFrom),
    /** Whether this browser has WebAuthn at all (it may still have no passkey to offer). */
    supported: (): boolean => passkeysSupported(),
  };

  /** Seconds, device clock minus verifier clock, as measured at load (and at each session()). */
  clockSkew(): number {
    return this.#c.clock().skew;
  }

  /** The clock measurement and whether to warn. */
  clock(): ClockStatus {
    return this.#c.clock();
  }

  /** The user this ticket is for. */
  get user(): string {
    return this.#c.user();
  }

  /** The user's factors as of the last session. */
  get factors(): Factors {
    return this.#c.factors();
  }

  /** The guided enrollment (resumed after a reload), as <twofold-enroll> uses it. */
  readonly enrollment = {
    state: (): EnrollmentView => viewFrom(this.#c.enrollState()),
    start: (): Promise<EnrollmentView> => wrap(this.#c.enrollSend("start"), viewFrom),
    submit: (code: string): Promise<EnrollmentView> => wrap(this.#c.enrollSend("submit", code), viewFrom),
    saved: (): Promise<EnrollmentView> => wrap(this.#c.enrollSend("saved"), viewFrom),
    recoveryFile: (issuer: string, codes: string[]): string => this.#c.recoveryFile(issuer, codes),
  };
}

function viewFrom(v: any): EnrollmentView {
  return {
    step: v.step,
    enrollment: v.enrollment ? enrollmentFrom(v.enrollment as wire.Enrollment) : null,
    recoveryCodes: v.recoveryCodes ?? [],
    token: v.token,
    expiresIn: v.expiresIn,
    attempts: v.attempts,
    hint: v.hint,
    error: v.error ? TwofoldError.from(v.error) : null,
  };
}

/** Whether this browser has WebAuthn (PublicKeyCredential and navigator.credentials). */
export function passkeysSupported(): boolean {
  return typeof globalThis.PublicKeyCredential === "function" && typeof globalThis.navigator?.credentials?.create === "function";
}

/** Normalises a typed one-time code (spaces, dashes, full-width digits) the way the verifier does. */
export async function normalizeCode(code: string): Promise<string> {
  return (await engine()).normalizeCode(code);
}

