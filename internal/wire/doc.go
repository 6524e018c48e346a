// Package wire is the canonical length-prefixed binary encoding shared by
// ore's signed wire formats: pod's receipts, ledger's transactions and
// blocks, and heat's reports and orders.
//
// A field is a single byte, a uvarint (encoding/binary.AppendUvarint), a
// fixed run of bytes (a 32-byte hash, a big-endian uint64), or a
// uvarint-length-prefixed run of bytes (AppendBytes): a string, a peer ID
// (AppendPeer), a CID (AppendCID) or a signature. A list is a uvarint count
// followed by its elements. Each format is built by appending its fields in
// a fixed order; the package has no schema and no versioning of its own.
//
// A Decoder reads the same fields back. Its first failure sticks: every
// later read returns a zero value, so a format is decoded as straight-line
// code with one error check at the end. Every failure wraps the sentinel
// the caller passed in (pod.ErrMalformed, ledger.ErrMalformed,
// heat.ErrMalformed), so errors.Is keeps telling the caller's formats
// apart:
//
//	d := wire.NewDecoder(data, ErrMalformed)
//	network := string(d.Bytes(MaxNetworkLen, "network"))
//	from := d.Peer(MaxPeerIDLen, "from")
//	n := d.Count(MaxItems, "items")
//	...
//	if err := d.End(); err != nil { // also refuses trailing bytes
//		return nil, err
//	}
//	if !bytes.Equal(x.Marshal(), data) { // canonical form only
//		return nil, fmt.Errorf("%w: not in canonical form", ErrMalformed)
//	}
//
// Invariants:
//   - The bytes are what signatures, transaction IDs, block hashes and the
//     ledger's state hash are computed over: a change to any encoder here
//     changes every one of them, so none may change.
//   - Every length and count is checked against the caller's limit before
//     anything is allocated for it; an empty field decodes as nil.
//   - The Decoder refuses a padded (non-minimal) uvarint; a CID or a peer
//     ID keeps the bytes it was read from (go-cid and go-multihash refuse
//     padded varints too). So a format made only of these fields, and of
//     nested formats that are canonical themselves, is canonical when it
//     decodes: ledger's transactions and blocks rely on this and skip the
//     re-encoding; pod, heat and the leaf formats still compare, as above.
//
// It is a package of its own because its three users must not import each
// other for it: ledger imports pod, so pod cannot hold ledger's helpers,
// and heat, which depends on neither, should not take the payment core
// into its imports for a few encoding functions.
package wire
