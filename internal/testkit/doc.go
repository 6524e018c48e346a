// Package testkit holds what ore's tests share: Ed25519 parties, content
// roots, signed receipts, waits on conditions and a clock a test controls.
//
// It is imported by tests only. Its rules:
//   - a wait is on a condition with a deadline sized to the work, never a
//     sleep standing in for an event: WaitFor fails the test with what it
//     waited for, Eventually reports whether the condition came true;
//   - a test whose outcome would depend on how fast the machine is (work
//     that must finish within some epochs of the wall clock) runs on a
//     Clock it controls: frozen while the work runs, advanced when the test
//     means time to pass;
//   - parties made from a seed are the same in every run (NewParties), so
//     a failure replays.
//
// Packages that testkit itself imports (pod) cannot use it from their
// internal tests; their external tests (package pod_test) can.
package testkit
