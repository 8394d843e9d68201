// Every text the components show, in one table. Replace it (or parts of it) with
// setStrings() to translate or reword; {n}-style placeholders are filled in by the components.

export const en = {
  loading: "Loading…",
  retry: "Try again",
  // enrollment
  enrollTitle: "Set up an authenticator app",
  enrollStart: "Set up authenticator app",
  step1: "Install an authenticator app on your phone, if you don't have one yet:",
  apps: [
    { name: "Google Authenticator", href: "https://support.google.com/accounts/answer/1066447" },
    { name: "Microsoft Authenticator", href: "https://www.microsoft.com/security/mobile-authenticator-app" },
    { name: "2FAS", href: "https://2fas.com/" },
    { name: "Aegis (Android)", href: "https://getaegis.app/" },
  ],
  step2: "In the app, add an account and scan this QR code:",
  qrAlt: "QR code for setting up your authenticator app",
  manualIntro: "Can't scan it? Enter this key in the app instead:",
  openInApp: "Open in authenticator app",
  copy: "Copy",
  copied: "Copied",
  step3: "Type the 6-digit code the app now shows:",
  codeLabel: "6-digit code",
  confirm: "Confirm",
  confirming: "Checking…",
  hint: "Still not working? Check that your phone's time is set automatically, then scan the QR code again.",
  expires: "This setup expires at {time}.",
  expired: "This setup timed out.",
  startAgain: "Start again",
  recoveryTitle: "Save your recovery codes",
  recoveryIntro:
    "If you lose your phone, each of these codes lets you sign in once. They are shown only now: save them somewhere safe, apart from your phone.",
  copyCodes: "Copy codes",
  download: "Download",
  downloadName: "recovery-codes.txt",
  saved: "I saved them",
  continue: "Continue",
  done: "Your authenticator app is set up.",
  finishIntro: "To finish signing in, type the code your authenticator app shows now.",
  passkeyNudge: "Passkeys are safer still: they cannot be phished. Add one when you can.",
  // verification
  verifyTitle: "Two-step verification",
  verifyIntro: "Open your authenticator app and type the code it shows.",
  verify: "Verify",
  verifying: "Checking…",
  useRecovery: "Use a recovery code instead",
  useApp: "Use the authenticator app instead",
  recoveryLabel: "Recovery code",
  verified: "Verified.",
  usePasskey: "Use a passkey instead",
  // passkeys
  passkeyIntro: "Use the passkey on this device, your phone or your security key.",
  passkeyRegister: "Add a passkey",
  passkeyAuthenticate: "Sign in with a passkey",
  passkeyWaiting: "Waiting for your passkey…",
  passkeyRegistered: "Passkey added.",
  passkeyUnsupported: "This browser cannot use passkeys.",
  // the upgrade offered once after a code from the app
  upgradeTitle: "Sign in faster and safer with a passkey",
  upgradeIntro: "A passkey uses your device's screen lock (fingerprint, face or PIN) instead of a code, and it cannot be phished.",
  upgradeAdd: "Add a passkey",
  upgradeDismiss: "Not now",
  upgradeDone: "Passkey added. Next time, sign in with it.",
  // clock
  clockAhead: "Your device's clock is about {time} ahead. Codes may be refused: set the time on your devices to automatic.",
  clockBehind: "Your device's clock is about {time} behind. Codes may be refused: set the time on your devices to automatic.",
  seconds: "{n} seconds",
  minutes: "{n} minutes",
};

export type Strings = typeof en;

/** The table in use. */
export let strings: Strings = en;

/** Replaces some or all strings (e.g. a translation); components rendered later use them. */
export function setStrings(s: Partial<Strings>): void {
  strings = { ...strings, ...s };
}

/** Fills {name} placeholders. */
export function fill(s: string, vars: Record<string, string | number>): string {
  return s.replace(/\{(\w+)\}/g, (m, k: string) => (k in vars ? String(vars[k]) : m));
}
