// Package compute runs publishers' functions over content on boxes' idle
// CPU: WebAssembly modules (WASI preview 1 commands) that read an input's
// bytes on stdin and write an output on stdout, the way edge CDNs run
// functions next to their cache (image resizing, compression, format
// conversion).
//
// Why its own package: a job's outcome must be the same on every box, so
// that the same job asked twice anywhere is a cache hit and a second box
// can check a runner by re-running it. That determinism (the sandbox, the
// limits, the work meter) is one concern with one definition, below node,
// which only wires it to the store, the gateway and the ledger.
//
// The runtime is wazero (pure Go: it builds with CGO_ENABLED=0 for
// linux/amd64, arm64 and arm; it compiles to machine code on amd64 and
// arm64 and interprets elsewhere, armv7 included).
//
// Usage:
//
//	rt, err := compute.New(ctx, compute.Config{CacheDir: filepath.Join(repo, "wasm-cache")})
//	f, err := rt.Load(ctx, fnCID.String(), moduleBytes, limits)
//	defer f.Release()
//	res, err := rt.Run(ctx, f, compute.Job{Args: args, Stdin: input, Seed: jobHash}, out)
//	// res.Work: the work units spent, the same on every machine
//
// A job sees, and can reach, nothing outside itself: no network (no
// sockets are preopened), no files, no environment; its arguments, its
// stdin and nothing else. Its clock starts at 2000-01-01 UTC and moves a
// microsecond per reading and by each sleep's length (no real waiting);
// its random bytes are a ChaCha8 stream seeded by the job's hash.
//
// # Limits
//
// A function's registration fixes its Limits: work units per job,
// memory pages, output bytes. The memory limit is written into the module
// (its memories' maximum), the output limit is the stdout writer's, and
// work is metered by the module itself: when it is loaded, its code is
// rewritten to charge each basic block's instruction count to a counter
// (meter.go), so a job's work is the number of WebAssembly instructions it
// executed (plus one unit per 64 bytes of bulk memory operations), the
// same count on the compiler and the interpreter. A job over a limit
// fails with an error wrapping ErrLimit and the limit's own error
// (ErrWorkLimit, ErrMemoryLimit, ErrOutputLimit, ErrStackLimit); a function that traps or
// exits non-zero fails with ErrFunction and its stderr's first bytes.
//
// # Job → output: where it lives, who vouches for it
//
// A job's ID is pod.JobID(function, input, args); its output is a UnixFS
// file whose CID is the job's result. The mapping from one to the other
// is held and vouched for in three places, from the weakest word to the
// strongest:
//
//   - The runner's claim: a pod.JobReceipt (job, output CID, work units)
//     signed by the box that ran the job, kept in that box's Index under
//     IndexKey(job ID) (the store's metadata, so it survives restarts;
//     the output's blocks are pinned next to it). It is what the engine
//     answers the same job from (Outcome.Cached) and what a gateway
//     returns in Ore-Job-Claim with its redirect. It is one box's word:
//     another box does not trust it, it runs the job or asks a runner.
//   - The countersigned receipt: the requester signs the claim once it
//     holds the output (and, if it chose to, re-ran the job and got the
//     same output and work); the ledger pays that receipt. Two signatures,
//     still not a proof: the requester may not have checked.
//   - A final block, and the challenge window after it (RulesV5,
//     ledger/jobcheck.go): the receipt sits in a block the committee
//     finalized; a sampled share of paid jobs is re-run by the committee,
//     and any box may challenge; a job unchallenged after the window is
//     paid, and its mapping stands on that block, which anyone can replay
//     (node.JobReceiptIn finds the receipt in the blocks). The ledger's
//     state then keeps the mapping in its index of final outputs
//     (ledger.State.FinalJob, bounded by age and count, disputed when
//     two payouts disagree or a proof hits it), which a gateway consults
//     before it runs or sends a job: Outcome.Final, no claim, the
//     ledger's word.
//
// # Where a job runs
//
// A box lends CPU to other peers only when its owner says so (ore init
// --compute-share: slots for others' jobs); its heat report carries what
// it lends and its load (heat.Compute: slots, this engine's Cap and
// Running, Compiled or not). A gateway sends a job it has no answer for
// to the lender heat.ChooseRunners ranks first (compilers first for heavy
// jobs), then the next, then runs it on its own engine. The Engine's
// Concurrency (half the cores in node) bounds every box's runs, its own
// and others', so jobs never take every core from delivery.
//
// # Invariants
//
//   - Run's outcome (output bytes, error kind, Result.Work on success) is
//     a function of (module, limits, args, stdin, seed).
//   - A module's own code never touches the work counter: an index at or
//     past it is refused before wazero validates the rewritten module.
//   - A run never writes more than its output limit to its writer.
//   - Modules are compiled once per (function, limits) in a process, and
//     once per machine with Config.CacheDir (wazero's compilation cache).
//   - A run never takes the box's CPU from its other work: Go cannot
//     preempt wazero's machine code, so each run gets a scheduler P of its
//     own and an OS thread at nice +10 (thread.go); the kernel shares the
//     cores, and a job without host calls no longer stops a one-core
//     box's delivery for its whole run.
//
// What is not deterministic, and so not part of a job's outcome: a run
// stopped by the caller's context (the box's own wall-clock bound, seen
// at the job's next WASI call), and the bits of NaNs, which WebAssembly
// leaves to the machine (a function that prints a NaN's bits may differ
// across CPUs; wazero does not canonicalize them). The call stack's depth
// is bounded by the meter (MaxCallDepth frames and a leaf, ErrStackLimit), below the
// interpreter's own ceiling, so a deep recursion fails the same way on
// every engine.
package compute
