package compute

import "encoding/binary"

// A tiny assembler for hand-written test modules: enough sections for a
// WASI command with one function, no WAT.

func uleb(v uint64) []byte { return binary.AppendUvarint(nil, v) }

func vec(items ...[]byte) []byte {
	out := uleb(uint64(len(items)))
	for _, it := range items {
		out = append(out, it...)
	}
	return out
}

func sec(id byte, body []byte) []byte {
	return append(append([]byte{id}, uleb(uint64(len(body)))...), body...)
}

func name(s string) []byte { return append(uleb(uint64(len(s))), s...) }

type asmModule struct {
	imports [][]byte // import entries
	memMin  uint32
	memMax  int64 // -1: none
	globals [][]byte
	start   bool // add a start section naming the function
	locals  []byte
	code    []byte // the body's instructions, without the final end
}

// bytes assembles a module whose one defined function (type () -> ()) is
// exported as _start, with memory 0 exported as "memory".
func (m asmModule) bytes() []byte {
	out := []byte("\x00asm\x01\x00\x00\x00")
	out = append(out, sec(1, vec([]byte{0x60, 0x00, 0x00}))...)
	fidx := byte(len(m.imports))
	if len(m.imports) > 0 {
		out = append(out, sec(2, vec(m.imports...))...)
	}
	out = append(out, sec(3, vec([]byte{0x00}))...)
	lim := append([]byte{0x00}, uleb(uint64(m.memMin))...)
	if m.memMax >= 0 {
		lim = append(append([]byte{0x01}, uleb(uint64(m.memMin))...), uleb(uint64(m.memMax))...)
	}
	out = append(out, sec(5, vec(lim))...)
	if len(m.globals) > 0 {
		out = append(out, sec(6, vec(m.globals...))...)
	}
	out = append(out, sec(7, vec(
		append(name("_start"), 0x00, fidx),
		append(name("memory"), 0x02, 0x00),
	))...)
	if m.start {
		out = append(out, sec(8, []byte{fidx})...)
	}
	locals := m.locals
	if locals == nil {
		locals = []byte{0x00}
	}
	body := append(append(append([]byte{}, locals...), m.code...), 0x0b)
	out = append(out, sec(10, vec(append(uleb(uint64(len(body))), body...)))...)
	return out
}

func i32const(v int32) []byte { return append([]byte{0x41}, appendSLEB(nil, int64(v))...) }
