// twofold browser SDK. The engine is Go compiled to WebAssembly (twofold.wasm); it is
// loaded once, lazily, by the first Twofold.load(). Importing this module also defines the
// web components <twofold-enroll>, <twofold-verify> and <twofold-passkey>.
export {
  Twofold,
  normalizeCode,
  passkeysSupported,
  type PasskeyRegisterOptions,
  type PasskeyAuthenticateOptions,
  type LoadOptions,
  type Session,
  type Factors,
  type FactorInfo,
  type Enrollment,
  type Confirmation,
  type TokenResult,
  type ClockStatus,
  type EnrollmentView,
} from "./client.js";
export { TwofoldError, sdkErrors, browserErrorCodes, type TwofoldErrorCode, type SDKErrorCode } from "./errors.js";
export type { WasmSource } from "./engine.js";
export type * as wire from "./wire.js";
export { strings, setStrings, type Strings } from "./components/strings.js";
export { TwofoldEnroll, TwofoldVerify, TwofoldPasskey, defineElements } from "./components/elements.js";
import { defineElements } from "./components/elements.js";

defineElements();
