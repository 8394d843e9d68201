// Loads the Go engine (twofold.wasm) once, lazily, on the first Twofold.load().
import { TwofoldError } from "./errors.js";
import { EngineVersion } from "./wire.js";

/** Where the wasm comes from: a URL, or its bytes, or a compiled module. */
export type WasmSource = string | URL | BufferSource | WebAssembly.Module | Response;

/** The page-independent exports of the engine (globalThis.__twofold). */
export interface Engine {
  version: string;
  load(opts: { verifier: string; ticket: string; frames: string[] | null }): Promise<EngineClient>;
  normalizeCode(code: string): string;
  validCode(code: string): boolean;
  formatRecovery(code: string): { code: string; ok: boolean };
  b64encode(b: BufferSource): string;
  b64decode(s: string): ArrayBuffer | null;
}

/** One loaded client inside the engine; its calls return the verifier's JSON. */
export interface EngineClient {
  session(): Promise<unknown>;
  totpEnroll(): Promise<unknown>;
  totpConfirm(id: string, code: string): Promise<unknown>;
  totpVerify(code: string): Promise<unknown>;
  recoveryVerify(code: string): Promise<unknown>;
  recoveryRegenerate(): Promise<unknown>;
  factorList(): Promise<unknown>;
  factorRemove(id: string): Promise<unknown>;
  passkeyRegister(opts?: { label?: string; signal?: AbortSignal }): Promise<unknown>;
  passkeyAuthenticate(opts?: { discoverable?: boolean; signal?: AbortSignal }): Promise<unknown>;
  clock(): { known: boolean; skew: number; warn: boolean; direction: "" | "ahead" | "behind" };
  user(): string;
  factors(): { totp: boolean; passkeys: number; recoveryCodesRemaining: number };
  enrollState(): unknown;
  enrollSend(event: "start" | "submit" | "saved", code?: string): Promise<unknown>;
  recoveryFile(issuer: string, codes: string[]): string;
}

declare global {
  // eslint-disable-next-line no-var
  var __twofold: Engine | undefined;
  // eslint-disable-next-line no-var
  var __twofoldReady: ((e: Engine) => void) | undefined;
  // eslint-disable-next-line no-var
  var Go: (new () => { importObject: WebAssembly.Imports; run(i: WebAssembly.Instance): Promise<void> }) | undefined;
}

/**
 * The origins of the frames above this page, parent first, read by walking up to the top:
 * the engine's fallback where location.ancestorOrigins is missing (older Firefox). null when one
 * of them cannot be read (a frame of another origin: reading its location throws), which
 * the engine's guard refuses. Walked here because a throw inside the Go engine's property
 * reads cannot be caught there.
 */
export function frameAncestors(): string[] | null {
  const out: string[] = [];
  try {
    let w: Window = globalThis.self;
    for (let depth = 0; w !== globalThis.top; depth++) {
      const parent: Window | null = w?.parent ?? null;
      if (!parent || parent === w || depth === 64) return null;
      w = parent;
      const origin = w.location.origin;
      if (typeof origin !== "string" || origin === "") return null;
      out.push(origin);
    }
  } catch {
    return null;
  }
  return out;
}

/** The engine version this package was built with (internal/wire's EngineVersion). */
export const engineVersion = EngineVersion;

/**
 * Refuses an engine of another version: a twofold.wasm cached or served from a CDN that
 * does not match this index.js would fail later with errors nobody could act on.
 */
export function checkEngine(e: Engine): Engine {
  if (e.version !== engineVersion) {
    throw new TwofoldError(
      "unavailable",
      `The twofold SDK found engine ${e.version} (twofold.wasm) where it needs ${engineVersion}: serve the twofold.wasm built with this index.js, and clear any cached copy.`,
    );
  }
  return e;
}

let source: WasmSource | undefined;
let loading: Promise<Engine> | undefined;

/** Sets where the wasm is fetched from (default: twofold.wasm beside this module). Call before the first load. */
export function setWasmSource(s: WasmSource): void {
  source = s;
}

/** The engine, loaded at most once per page. */
export function engine(): Promise<Engine> {
  if (globalThis.__twofold) return Promise.resolve(globalThis.__twofold);
  loading ??= start().catch((e) => {
    loading = undefined; // a failed load (offline) may be retried
    throw e instanceof TwofoldError ? e : new TwofoldError("unavailable", "The twofold SDK could not load its engine (twofold.wasm): " + (e instanceof Error ? e.message : String(e)));
  });
  return loading;
}

async function start(): Promise<Engine> {
  if (!globalThis.Go) await import("./wasm_exec.js");
  const go = new globalThis.Go!();
  const src = source ?? new URL("./twofold.wasm", import.meta.url);
  const instance = await instantiate(src, go.importObject);
  const ready = new Promise<Engine>((resolve, reject) => {
    globalThis.__twofoldReady = resolve;
    // run() settles only when Go's main returns, which it does not once it is ready: if it
    // settles first, the engine stopped before it started.
    go.run(instance).then(
      () => reject(new Error("the engine stopped before it was ready")),
      (err) => reject(err instanceof Error ? err : new Error(String(err))),
    );
  });
  const e = await ready;
  globalThis.__twofoldReady = undefined;
  return checkEngine(e);
}

async function instantiate(src: WasmSource, imports: WebAssembly.Imports): Promise<WebAssembly.Instance> {
  if (src instanceof WebAssembly.Module) return WebAssembly.instantiate(src, imports);
  if (src instanceof ArrayBuffer || ArrayBuffer.isView(src)) return (await WebAssembly.instantiate(src, imports)).instance;
  const res = src instanceof Response ? src : await fetch(src, { credentials: "same-origin" });
  if (!res.ok) throw new Error(`fetching ${res.url || String(src)} answered ${res.status}`);
  if (WebAssembly.instantiateStreaming && res.headers.get("content-type")?.startsWith("application/wasm")) {
    return (await WebAssembly.instantiateStreaming(res, imports)).instance;
  }
  // A server that does not label .wasm as application/wasm: compile from the bytes instead.
  return (await WebAssembly.instantiate(await res.arrayBuffer(), imports)).instance;
}
