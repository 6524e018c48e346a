package compute

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/ipfs/go-cid"
)

// A function is content: a small JSON descriptor, published as a UnixFS
// file, that names its module (the CID of a WASI command's bytes) and
// fixes its limits. The descriptor's CID is the function's name, so a
// function's module and limits cannot change under it, and every box that
// runs a job reads the same limits from the same bytes (a job's outcome
// depends on them). What a function costs is the ledger's (its
// registration's price per work unit), not the content's.
type Descriptor struct {
	Version int     `json:"ore_function"` // DescriptorVersion
	Module  cid.Cid `json:"module"`
	Limits  Limits  `json:"limits"`
}

// DescriptorVersion is the descriptor format this package writes and reads.
const DescriptorVersion = 1

// Bounds on what a box reads to load a function.
const (
	MaxDescriptorSize = 4096
	MaxModuleSize     = 64 << 20
)

// ErrBadFunction wraps a descriptor that does not parse or pass the rules.
var ErrBadFunction = errors.New("compute: bad function descriptor")

// Marshal encodes the descriptor (the bytes to publish).
func (d Descriptor) Marshal() []byte {
	b, _ := json.Marshal(d) // a struct of plain fields: cannot fail
	return b
}

// ParseDescriptor reads a descriptor's bytes: known version and fields
// only, a module CID, limits within the ceilings.
func ParseDescriptor(b []byte) (Descriptor, error) {
	var d Descriptor
	if len(b) > MaxDescriptorSize {
		return d, fmt.Errorf("%w: %d bytes, the limit is %d", ErrBadFunction, len(b), MaxDescriptorSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return d, fmt.Errorf("%w: %v", ErrBadFunction, err)
	}
	if dec.More() {
		return d, fmt.Errorf("%w: bytes after the descriptor", ErrBadFunction)
	}
	if d.Version != DescriptorVersion {
		return d, fmt.Errorf("%w: version %d, this build reads %d", ErrBadFunction, d.Version, DescriptorVersion)
	}
	if !d.Module.Defined() {
		return d, fmt.Errorf("%w: no module", ErrBadFunction)
	}
	if err := d.Limits.Check(); err != nil {
		return d, fmt.Errorf("%w: %w", ErrBadFunction, err)
	}
	return d, nil
}
