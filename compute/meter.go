package compute

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The work meter. wazero has no fuel counter, so a function's module is
// rewritten once, when it is loaded, to count its own work in a global of
// its own:
//
//   - Each basic block (the function's entry, a loop's header, the
//     code after if, else, end, br, br_if, br_table, return and
//     unreachable) starts with a charge of its instruction count. A block
//     runs whole or traps, so the count is the number of WebAssembly
//     instructions executed, exactly (the meter's own not counted).
//   - Only the charges at function entries and loop headers check the
//     counter (a trap when it is below zero): every unbounded execution
//     passes one of them, and the plain charges cost four instructions.
//   - Bulk operations whose cost grows with an operand (memory.fill,
//     memory.copy, memory.init, table.fill, table.copy, table.init) are
//     charged one unit per 64 bytes or entries more, read from their
//     length operand before they run.
//   - memory.grow is not metered: the memory limit bounds it.
//   - A second global counts call frames: the entry of each function
//     that calls others adds one and traps past MaxCallDepth, each way out
//     (return, a branch out of the function, its end) takes one off; a
//     leaf adds at most one frame more.
//
// When a check finds the counter below zero the module runs `unreachable`;
// the runtime reads the counter after the trap, or after a run that ended
// below zero between checks, and reports ErrWorkLimit. The
// count is a function of the module's bytes and of the instructions the
// job executes, so it is the same on every machine, compiler or
// interpreter: a verifier re-running a job gets the same number.
//
// The rewrite also bounds the module's memory and tables (their declared
// maximum is lowered to the limits, a larger minimum is refused), and it
// refuses what the runtime does not meter or run deterministically: a
// start section (a command's work runs from _start, after the counter is
// set), imported memories and tables, shared memories, 64-bit memories,
// exception tags, and opcodes outside WebAssembly 2.0.
//
// The rewrite is checked by wazero's validation afterwards. The one thing
// validation cannot catch after the fact is code of the module naming the
// counter's index (invalid as written, valid once the counter exists):
// the rewrite refuses a global index at or past the counter's.

// meterExport and depthExport are the export names of the work counter
// and of the call depth.
const (
	meterExport = "ore.work"
	depthExport = "ore.depth"
)

// MaxCallDepth bounds the call stack of a job, the same on every engine:
// how deep a stack may grow is left to implementations, and wazero's
// interpreter (armv7) stops at 2000 frames where its compiler goes on, so
// without this bound a deep recursion would succeed on one box and fail
// on another.
const MaxCallDepth = 1000

// bulkShift: a bulk operation costs its length >> bulkShift units more.
const bulkShift = 6

// MaxTableEntries bounds every table's size (the declared maximum is
// lowered to it): function tables of real programs hold their functions.
const MaxTableEntries = 1 << 20

// ErrBadModule wraps every module the runtime refuses to load.
var ErrBadModule = errors.New("compute: bad module")

type wreader struct {
	b   []byte
	off int
	err error
}

func (r *wreader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: "+format, append([]any{ErrBadModule}, args...)...)
	}
}

func (r *wreader) byte() byte {
	if r.err != nil || r.off >= len(r.b) {
		r.fail("unexpected end at byte %d", r.off)
		return 0
	}
	c := r.b[r.off]
	r.off++
	return c
}

func (r *wreader) u32() uint32 {
	var v uint64
	for i := 0; i < 5; i++ {
		c := r.byte()
		if r.err != nil {
			return 0
		}
		v |= uint64(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			if v > 0xffffffff {
				r.fail("u32 out of range at byte %d", r.off)
				return 0
			}
			return uint32(v)
		}
	}
	r.fail("u32 too long at byte %d", r.off)
	return 0
}

// skipLEB skips a (signed) LEB128 of at most n bytes.
func (r *wreader) skipLEB(n int) {
	for i := 0; i < n; i++ {
		if r.byte()&0x80 == 0 || r.err != nil {
			return
		}
	}
	r.fail("integer too long at byte %d", r.off)
}

func (r *wreader) skip(n int) {
	if r.err != nil {
		return
	}
	if n < 0 || n > len(r.b)-r.off {
		r.fail("unexpected end at byte %d", r.off)
		return
	}
	r.off += n
}

func (r *wreader) bytes(n uint32) []byte {
	start := r.off
	r.skip(int(n))
	if r.err != nil {
		return nil
	}
	return r.b[start:r.off]
}

type section struct {
	id   byte
	body []byte
}

// sectionRank orders the known sections (the data count section sits
// between element and code).
func sectionRank(id byte) int {
	switch id {
	case 12:
		return 95
	case 10:
		return 100
	case 11:
		return 110
	}
	return int(id) * 10
}

// instrument rewrites a validated WASI command module so that it meters
// its work (see above), with a counter that starts at lim.Work, memories
// of at most lim.MemoryPages pages and tables of at most MaxTableEntries.
func instrument(mod []byte, lim Limits) ([]byte, error) {
	if len(mod) < 8 || string(mod[:4]) != "\x00asm" || binary.LittleEndian.Uint32(mod[4:8]) != 1 {
		return nil, fmt.Errorf("%w: not a WebAssembly 1.0 binary", ErrBadModule)
	}
	if lim.Work >= 1<<62 {
		return nil, fmt.Errorf("%w: work limit %d too large (at most 2^62)", ErrBadModule, lim.Work)
	}
	r := &wreader{b: mod, off: 8}
	var secs []section
	var (
		paramCounts     []uint32 // per type
		funcTypes       []uint32 // per defined function
		importedGlobals uint32
		definedGlobals  uint32
		name            []byte
	)
	for r.off < len(mod) && r.err == nil {
		id := r.byte()
		body := r.bytes(r.u32())
		if r.err != nil {
			break
		}
		s := &wreader{b: body}
		switch id {
		case 0:
			n := s.bytes(s.u32())
			if s.err == nil && string(n) == "name" {
				name = body
			}
			continue // other custom sections (DWARF, producers) are dropped: offsets change
		case 1:
			paramCounts = parseTypes(s)
		case 2:
			importedGlobals = parseImports(s)
		case 3:
			n := s.u32()
			for i := uint32(0); i < n && s.err == nil; i++ {
				funcTypes = append(funcTypes, s.u32())
			}
		case 4:
			body = clampTables(s)
		case 5:
			body = clampMemories(s, lim.MemoryPages)
		case 6:
			definedGlobals = s.u32()
		case 7:
			if exportsName(s, meterExport, depthExport) {
				s.fail("the module exports %q or %q itself", meterExport, depthExport)
			}
		case 8:
			s.fail("a start section: the runtime runs a command's _start after it sets the work counter")
		case 13:
			s.fail("exception tags are not supported")
		}
		if s.err != nil {
			return nil, s.err
		}
		secs = append(secs, section{id, body})
	}
	if r.err != nil {
		return nil, r.err
	}
	g := importedGlobals + definedGlobals
	var out []byte
	out = append(out, mod[:8]...)
	emit := func(id byte, body []byte) {
		out = append(out, id)
		out = binary.AppendUvarint(out, uint64(len(body)))
		out = append(out, body...)
	}
	// The counter: a mutable i64 defined after the module's own globals,
	// so no index changes; its initial value is the work limit.
	counter := []byte{0x7e, 0x01, 0x42}
	counter = appendSLEB(counter, int64(lim.Work))
	counter = append(counter, 0x0b)
	counter = append(counter, 0x7f, 0x01, 0x41, 0x00, 0x0b) // the call depth: a mutable i32, 0
	export := append(appendName(nil, meterExport), 0x03)
	export = binary.AppendUvarint(export, uint64(g))
	export = append(export, appendName(nil, depthExport)...)
	export = append(export, 0x03)
	export = binary.AppendUvarint(export, uint64(g+1))
	wroteGlobal, wroteExport := false, false
	for _, sec := range secs {
		if !wroteGlobal && sectionRank(sec.id) > sectionRank(6) {
			emit(6, append(binary.AppendUvarint(nil, 2), counter...))
			wroteGlobal = true
		}
		if !wroteExport && sectionRank(sec.id) > sectionRank(7) {
			emit(7, append(binary.AppendUvarint(nil, 2), export...))
			wroteExport = true
		}
		switch sec.id {
		case 6:
			s := &wreader{b: sec.body}
			n := s.u32()
			emit(6, append(binary.AppendUvarint(nil, uint64(n)+2), append(sec.body[s.off:len(sec.body):len(sec.body)], counter...)...))
			wroteGlobal = true
		case 7:
			s := &wreader{b: sec.body}
			n := s.u32()
			emit(7, append(binary.AppendUvarint(nil, uint64(n)+2), append(sec.body[s.off:len(sec.body):len(sec.body)], export...)...))
			wroteExport = true
		case 10:
			body, err := meterCode(sec.body, paramCounts, funcTypes, g)
			if err != nil {
				return nil, err
			}
			emit(10, body)
		default:
			emit(sec.id, sec.body)
		}
	}
	if !wroteGlobal {
		emit(6, append(binary.AppendUvarint(nil, 2), counter...))
	}
	if !wroteExport {
		emit(7, append(binary.AppendUvarint(nil, 2), export...))
	}
	if name != nil {
		emit(0, name)
	}
	return out, nil
}

func appendName(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func appendSLEB(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func parseTypes(s *wreader) []uint32 {
	n := s.u32()
	var out []uint32
	for i := uint32(0); i < n && s.err == nil; i++ {
		if s.byte() != 0x60 {
			s.fail("type %d is not a function type", i)
			return nil
		}
		np := s.u32()
		s.skip(int(np))
		s.skip(int(s.u32()))
		out = append(out, np)
	}
	return out
}

func parseImports(s *wreader) (globals uint32) {
	n := s.u32()
	for i := uint32(0); i < n && s.err == nil; i++ {
		s.bytes(s.u32())
		s.bytes(s.u32())
		switch s.byte() {
		case 0x00:
			s.u32()
		case 0x01:
			s.fail("import %d is a table: a function brings its own", i)
		case 0x02:
			s.fail("import %d is a memory: a function brings its own", i)
		case 0x03:
			s.skip(2)
			globals++
		default:
			s.fail("import %d has an unknown kind", i)
		}
	}
	return globals
}

func exportsName(s *wreader, names ...string) bool {
	n := s.u32()
	for i := uint32(0); i < n && s.err == nil; i++ {
		e := string(s.bytes(s.u32()))
		for _, name := range names {
			if e == name {
				return true
			}
		}
		s.byte()
		s.u32()
	}
	return false
}

// clampLimits reads a limits entry and writes it with its maximum lowered
// to most; a minimum above most is refused.
func clampLimits(s *wreader, out []byte, most uint32, what string) []byte {
	flag := s.byte()
	if flag > 1 {
		s.fail("%s limits flag %#x (shared or 64-bit) not supported", what, flag)
		return out
	}
	lo := s.u32()
	hi := most
	if flag == 1 {
		hi = min(s.u32(), most)
	}
	if lo > most {
		s.fail("%s declares a minimum of %d, the limit is %d", what, lo, most)
	}
	out = append(out, 0x01)
	out = binary.AppendUvarint(out, uint64(lo))
	return binary.AppendUvarint(out, uint64(hi))
}

func clampMemories(s *wreader, pages uint32) []byte {
	n := s.u32()
	out := binary.AppendUvarint(nil, uint64(n))
	for i := uint32(0); i < n && s.err == nil; i++ {
		out = clampLimits(s, out, pages, "memory (64 KiB pages)")
	}
	return out
}

func clampTables(s *wreader) []byte {
	n := s.u32()
	out := binary.AppendUvarint(nil, uint64(n))
	for i := uint32(0); i < n && s.err == nil; i++ {
		out = append(out, s.byte())
		out = clampLimits(s, out, MaxTableEntries, "table (entries)")
	}
	return out
}

// meterCode rewrites the code section.
func meterCode(body []byte, paramCounts, funcTypes []uint32, g uint32) ([]byte, error) {
	s := &wreader{b: body}
	n := s.u32()
	if s.err == nil && int(n) != len(funcTypes) {
		return nil, fmt.Errorf("%w: %d function bodies for %d functions", ErrBadModule, n, len(funcTypes))
	}
	out := binary.AppendUvarint(make([]byte, 0, len(body)+len(body)/4), uint64(n))
	for i := uint32(0); i < n && s.err == nil; i++ {
		fb := s.bytes(s.u32())
		if s.err != nil {
			break
		}
		t := funcTypes[i]
		if int(t) >= len(paramCounts) {
			return nil, fmt.Errorf("%w: function %d has type %d of %d", ErrBadModule, i, t, len(paramCounts))
		}
		m, err := meterFunc(fb, paramCounts[t], g)
		if err != nil {
			return nil, fmt.Errorf("function %d: %w", i, err)
		}
		out = binary.AppendUvarint(out, uint64(len(m)))
		out = append(out, m...)
	}
	if s.err != nil {
		return nil, s.err
	}
	if s.off != len(body) {
		return nil, fmt.Errorf("%w: bytes after the last function body", ErrBadModule)
	}
	return out, nil
}

// An insertion into a function body before byte pos.
type insertion struct {
	pos  int
	kind insertKind
	cost uint64 // of a charge: the basic block's instructions
}

type insertKind uint8

const (
	charge      insertKind = iota // subtract cost from the counter's local
	chargeCheck                   // subtract cost, trap below zero
	bulkCharge                    // subtract a bulk operation's length>>bulkShift, trap below zero
	flush                         // store the local into the global
	exit                          // flush, and one call frame fewer
	reload                        // load the local from the global
)

func appendCharge(b []byte, c uint32, cost uint64) []byte {
	b = append(b, 0x20) // local.get c
	b = binary.AppendUvarint(b, uint64(c))
	b = append(b, 0x42) // i64.const cost
	b = appendSLEB(b, int64(cost))
	b = append(b, 0x7d, 0x21) // i64.sub; local.set c
	return binary.AppendUvarint(b, uint64(c))
}

// appendBulkCharge charges length>>bulkShift for the i32 length on top of
// the stack, leaving the stack as it was; tmp is a scratch i32 local.
func appendBulkCharge(b []byte, c, tmp uint32) []byte {
	b = append(b, 0x22) // local.tee tmp
	b = binary.AppendUvarint(b, uint64(tmp))
	b = append(b, 0x20) // local.get c
	b = binary.AppendUvarint(b, uint64(c))
	b = append(b, 0x20) // local.get tmp
	b = binary.AppendUvarint(b, uint64(tmp))
	b = append(b, 0xad, 0x42, bulkShift, 0x88, 0x7d, 0x21) // i64.extend_i32_u; i64.const; i64.shr_u; i64.sub; local.set c
	return binary.AppendUvarint(b, uint64(c))
}

// appendCheck stores the counter and traps when it is below zero.
func appendCheck(b []byte, g, c uint32) []byte {
	b = append(b, 0x20) // local.get c
	b = binary.AppendUvarint(b, uint64(c))
	b = append(b, 0x42, 0x00, 0x53, 0x04, 0x40) // i64.const 0; i64.lt_s; if
	b = appendSetGlobal(b, g, c)
	return append(b, 0x00, 0x0b) // unreachable; end
}

// appendEnter counts a call frame in the depth global d and traps past
// MaxCallDepth.
func appendEnter(b []byte, d uint32) []byte {
	b = append(b, 0x23) // global.get d
	b = binary.AppendUvarint(b, uint64(d))
	b = append(b, 0x41, 0x01, 0x6a, 0x24) // i32.const 1; i32.add; global.set d
	b = binary.AppendUvarint(b, uint64(d))
	b = append(b, 0x23)
	b = binary.AppendUvarint(b, uint64(d))
	b = append(b, 0x41) // i32.const MaxCallDepth
	b = appendSLEB(b, MaxCallDepth)
	return append(b, 0x4b, 0x04, 0x40, 0x00, 0x0b) // i32.gt_u; if; unreachable; end
}

// appendLeave takes a call frame off the depth global d.
func appendLeave(b []byte, d uint32) []byte {
	b = append(b, 0x23) // global.get d
	b = binary.AppendUvarint(b, uint64(d))
	b = append(b, 0x41, 0x01, 0x6b, 0x24) // i32.const 1; i32.sub; global.set d
	return binary.AppendUvarint(b, uint64(d))
}

func appendGetGlobal(b []byte, g, c uint32) []byte {
	b = append(b, 0x23) // global.get g
	b = binary.AppendUvarint(b, uint64(g))
	b = append(b, 0x21) // local.set c
	return binary.AppendUvarint(b, uint64(c))
}

func appendSetGlobal(b []byte, g, c uint32) []byte {
	b = append(b, 0x20) // local.get c
	b = binary.AppendUvarint(b, uint64(c))
	b = append(b, 0x24) // global.set g
	return binary.AppendUvarint(b, uint64(g))
}

// meterFunc rewrites one function body.
func meterFunc(fb []byte, params uint32, g uint32) ([]byte, error) {
	r := &wreader{b: fb}
	nl := r.u32()
	localsStart := r.off
	var locals uint64 = uint64(params)
	for i := uint32(0); i < nl && r.err == nil; i++ {
		locals += uint64(r.u32())
		r.byte()
	}
	if r.err != nil {
		return nil, r.err
	}
	if locals >= 1<<31-2 {
		return nil, fmt.Errorf("%w: %d locals", ErrBadModule, locals)
	}
	codeStart := r.off
	// The counter lives in a local of each function (a register, where
	// the global would be a load and a store per charge): loaded from the
	// global at entry and after each call, stored back before each call,
	// return, branch out of the function and its end, and before a trap.
	c := uint32(locals)  // the counter's local (i64)
	tmp := uint32(c + 1) // the bulk charge's scratch (i32)
	// A metering point starts each basic block: the function's entry and
	// the instruction after each control instruction (loop header, if,
	// else, end, br, br_if, br_table, return, unreachable). Its charge is
	// the block's instruction count, the control instruction that ends it
	// included. Points at the entry and at loop headers also check.
	ins := []insertion{{pos: codeStart, kind: chargeCheck}}
	cur := 0 // the point the current block's instructions are charged to
	depth := 1
	bulk, calls := false, false
	for depth > 0 && r.err == nil {
		at := r.off
		op := r.byte()
		ins[cur].cost++
		kind := charge
		switch op {
		case 0x02: // block: falls through into the same basic block
			skipBlockType(r)
			depth++
			continue
		case 0x03: // loop: its header is a branch target
			skipBlockType(r)
			depth++
			kind = chargeCheck
		case 0x04: // if
			skipBlockType(r)
			depth++
		case 0x0b: // end
			depth--
			if depth == 0 {
				ins = append(ins, insertion{pos: at, kind: exit})
			}
		case 0x05, 0x00: // else, unreachable
		case 0x0f: // return
			ins = append(ins, insertion{pos: at, kind: exit})
		case 0x0c, 0x0d: // br, br_if
			if r.u32() == uint32(depth-1) { // out of the function
				ins = append(ins, insertion{pos: at, kind: exit})
			}
		case 0x0e: // br_table
			n := r.u32()
			out := false
			for i := uint32(0); i <= n && r.err == nil; i++ {
				out = out || r.u32() == uint32(depth-1)
			}
			if out {
				ins = append(ins, insertion{pos: at, kind: exit})
			}
		case 0x10, 0x11: // call, call_indirect: the callee charges the global
			calls = true
			ins = append(ins, insertion{pos: at, kind: flush})
			skipImmediates(r, op)
			ins = append(ins, insertion{pos: r.off, kind: reload})
			continue
		case 0xfc:
			sub := r.u32()
			skipFC(r, sub)
			if sub == 8 || sub == 10 || sub == 11 || sub == 12 || sub == 14 || sub == 17 {
				// Before the operation, while its length is on the stack.
				ins = append(ins, insertion{pos: at, kind: bulkCharge})
				bulk = true
			}
			continue
		case 0x23, 0x24: // global.get, global.set
			// Only the meter may touch the counter: an index at or past it
			// was invalid in the module as written.
			if r.u32() >= g {
				r.fail("global index out of range at byte %d", at)
			}
			continue
		default:
			skipImmediates(r, op)
			continue
		}
		if depth > 0 {
			ins = append(ins, insertion{pos: r.off, kind: kind})
			cur = len(ins) - 1
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	if r.off != len(fb) {
		return nil, fmt.Errorf("%w: bytes after the function's end", ErrBadModule)
	}
	out := make([]byte, 0, len(fb)+len(ins)*12+16)
	extra := []byte{0x01, 0x7e} // one i64: the counter
	if bulk {
		extra = append(extra, 0x01, 0x7f) // one i32: the bulk charge's scratch
	}
	out = binary.AppendUvarint(out, uint64(nl)+uint64(len(extra)/2))
	out = append(out, fb[localsStart:codeStart]...)
	out = append(out, extra...)
	// A function that calls none (a leaf) leaves the depth alone: it
	// adds one frame to a caller within the bound, so the stack never
	// exceeds MaxCallDepth+1 frames, and the commonest functions skip
	// two global updates.
	if calls {
		out = appendEnter(out, g+1)
	}
	out = appendGetGlobal(out, g, c) // load at entry
	prev := codeStart
	for _, in := range ins {
		out = append(out, fb[prev:in.pos]...)
		prev = in.pos
		switch in.kind {
		case charge:
			out = appendCharge(out, c, in.cost)
		case chargeCheck:
			out = appendCheck(appendCharge(out, c, in.cost), g, c)
		case bulkCharge:
			out = appendCheck(appendBulkCharge(out, c, tmp), g, c)
		case flush:
			out = appendSetGlobal(out, g, c)
		case exit:
			out = appendSetGlobal(out, g, c)
			if calls {
				out = appendLeave(out, g+1)
			}
		case reload:
			out = appendGetGlobal(out, g, c)
		}
	}
	return append(out, fb[prev:]...), nil
}

func skipBlockType(r *wreader) {
	// 0x40 (empty), a value type (one byte, negative as s33) or a type
	// index (a non-negative s33).
	c := r.byte()
	if c == 0x40 || c&0xc0 == 0x40 {
		return
	}
	r.off--
	r.skipLEB(5)
}

func skipMemarg(r *wreader) {
	if r.u32()&0x40 != 0 {
		r.fail("multiple memories are not supported")
	}
	r.u32()
}

func skipImmediates(r *wreader, op byte) {
	switch {
	case op <= 0x01, op == 0x05, op == 0x0f, op == 0x1a, op == 0x1b, op == 0xd1:
	case op == 0x0c, op == 0x0d, op == 0x10, op == 0xd2, op >= 0x20 && op <= 0x26:
		r.u32()
	case op == 0x0e: // br_table
		n := r.u32()
		for i := uint32(0); i <= n && r.err == nil; i++ {
			r.u32()
		}
	case op == 0x11: // call_indirect
		r.u32()
		r.u32()
	case op == 0x1c: // select t*
		r.skip(int(r.u32()))
	case op >= 0x28 && op <= 0x3e:
		skipMemarg(r)
	case op == 0x3f, op == 0x40:
		if r.byte() != 0 {
			r.fail("multiple memories are not supported")
		}
	case op == 0x41:
		r.skipLEB(5)
	case op == 0x42:
		r.skipLEB(10)
	case op == 0x43:
		r.skip(4)
	case op == 0x44:
		r.skip(8)
	case op >= 0x45 && op <= 0xc4:
	case op == 0xd0:
		r.byte()
	case op == 0xfd:
		skipSIMD(r, r.u32())
	default:
		r.fail("opcode %#x at byte %d is not in WebAssembly 2.0", op, r.off-1)
	}
}

func skipFC(r *wreader, sub uint32) {
	switch {
	case sub <= 7:
	case sub == 8: // memory.init data 0
		r.u32()
		r.byte()
	case sub == 9, sub == 13, sub == 15, sub == 16, sub == 17:
		r.u32()
	case sub == 10:
		r.skip(2)
	case sub == 11:
		r.byte()
	case sub == 12, sub == 14:
		r.u32()
		r.u32()
	default:
		r.fail("opcode 0xfc %d is not in WebAssembly 2.0", sub)
	}
}

func skipSIMD(r *wreader, sub uint32) {
	switch {
	case sub <= 11, sub == 92, sub == 93: // loads, stores, load zero
		skipMemarg(r)
	case sub == 12, sub == 13: // v128.const, i8x16.shuffle
		r.skip(16)
	case sub >= 21 && sub <= 34: // extract/replace lane
		r.byte()
	case sub >= 84 && sub <= 91: // load/store lane
		skipMemarg(r)
		r.byte()
	case sub <= 275:
	default:
		r.fail("opcode 0xfd %d is not in WebAssembly 2.0", sub)
	}
}
