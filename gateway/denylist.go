package gateway

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"

	"github.com/ipfs/boxo/ipns"
	"github.com/ipfs/go-cid"
	mbase "github.com/multiformats/go-multibase"
	mh "github.com/multiformats/go-multihash"
)

// Denylist is content a box refuses to serve, read from files in the
// compact denylist format public gateways use (IPIP-383, NoPFS; the "bad
// bits" list). The gateway answers 410 for it, and boxes neither serve
// nor fetch it.
//
// Rules understood:
//   - /ipfs/CID and /ipfs/CID/*: the CID's multihash (any CID version or
//     codec); blocking the root's block blocks every path under it;
//   - /ipns/NAME: a name before resolution (a key by its multihash, a
//     DNSLink domain by name);
//   - //HASH: double-hashed: 64 hex digits are the legacy bad-bits anchor,
//     sha256 of "CIDv1-base32/"; a base58btc sha2-256 multihash is the
//     modern form, the hash of the CID's base58btc multihash;
//   - a leading ! allows the item: an allow rule wins over any deny rule
//     for the same item (the format says the later rule wins; lists
//     written to that rule put exceptions after the rules they except);
//   - an optional header up to a "---" line, # comments and hints after
//     the item are skipped.
//
// Path rules (/ipfs/CID/PATH, /ipns/NAME/PATH) and double hashes of paths
// are not applied: they are counted as skipped.
type Denylist struct {
	deny, allow map[string]struct{}
	double      bool // some rule is double-hashed: every lookup hashes
	Rules       int  // rules applied
	Skipped     int  // lines not understood or path rules
}

// maxDenyHeader is how far a header may reach (the format's 1 MiB).
const maxDenyHeader = 1 << 20

// maxDenyLine bounds one line of a denylist.
const maxDenyLine = 64 << 10

// ReadDenylist adds the rules of one list to d (nil: a new Denylist).
func ReadDenylist(d *Denylist, r io.Reader) (*Denylist, error) {
	if d == nil {
		d = &Denylist{deny: map[string]struct{}{}, allow: map[string]struct{}{}}
	}
	br := bufio.NewReaderSize(r, maxDenyLine)
	// A header ends at a "---" line within the first MiB; without one the
	// lines read are rules.
	head, err := br.Peek(maxDenyHeader)
	if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
		return d, fmt.Errorf("gateway: read denylist: %w", err)
	}
	if i := bytes.Index(head, []byte("\n---")); i >= 0 || bytes.HasPrefix(head, []byte("---")) {
		skip := 0
		if i >= 0 {
			skip = i + 1
		}
		if _, err := br.Discard(skip); err != nil {
			return d, err
		}
	}
	sc := bufio.NewScanner(br)
	sc.Buffer(make([]byte, 4096), maxDenyLine)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line == "---" || strings.HasPrefix(line, "#") {
			continue
		}
		item, _, _ := strings.Cut(line, " ") // hints follow a space
		set := d.deny
		if rest, ok := strings.CutPrefix(item, "!"); ok {
			item, set = rest, d.allow
		}
		key, ok := denyKey(item)
		if !ok {
			d.Skipped++
			continue
		}
		if strings.HasPrefix(key, "dh:") || strings.HasPrefix(key, "dm:") {
			d.double = true
		}
		set[key] = struct{}{}
		d.Rules++
	}
	if err := sc.Err(); err != nil {
		return d, fmt.Errorf("gateway: read denylist: %w (a line over %d bytes?)", err, maxDenyLine)
	}
	return d, nil
}

// denyKey is the lookup key of one rule's item.
func denyKey(item string) (string, bool) {
	switch {
	case strings.HasPrefix(item, "//"):
		h := item[2:]
		if b, err := hex.DecodeString(h); err == nil && len(b) == sha256.Size {
			return "dh:" + string(b), true
		}
		if m, err := mh.FromB58String(h); err == nil {
			if dec, err := mh.Decode(m); err == nil && dec.Code == mh.SHA2_256 {
				return "dm:" + string(dec.Digest), true
			}
		}
		return "", false
	case strings.HasPrefix(item, "/ipfs/"):
		rest := strings.TrimPrefix(item, "/ipfs/")
		c, sub, _ := strings.Cut(rest, "/")
		if sub != "" && sub != "*" {
			return "", false // a path rule
		}
		parsed, err := cid.Decode(c)
		if err != nil {
			return "", false
		}
		return "mh:" + string(parsed.Hash()), true
	case strings.HasPrefix(item, "/ipns/"):
		name := strings.TrimPrefix(item, "/ipns/")
		if strings.Contains(name, "/") {
			return "", false
		}
		return nameKey(name), true
	}
	return "", false
}

func nameKey(name string) string {
	if n, err := ipns.NameFromString(name); err == nil {
		return "mh:" + string(n.Peer())
	}
	return "dns:" + strings.ToLower(strings.TrimSuffix(name, "."))
}

// Denied reports whether c may not be served or fetched.
func (d *Denylist) Denied(c cid.Cid) bool {
	if d == nil || !c.Defined() {
		return false
	}
	keys := []string{"mh:" + string(c.Hash())}
	if d.double {
		v1, err := cid.NewCidV1(c.Type(), c.Hash()).StringOfBase(mbase.Base32)
		if err == nil {
			legacy := sha256.Sum256([]byte(v1 + "/"))
			keys = append(keys, "dh:"+string(legacy[:]))
		}
		modern := sha256.Sum256([]byte(c.Hash().B58String()))
		keys = append(keys, "dm:"+string(modern[:]))
	}
	return d.match(keys)
}

// DeniedName reports whether an /ipns/ name may not be resolved.
func (d *Denylist) DeniedName(name string) bool {
	if d == nil {
		return false
	}
	return d.match([]string{nameKey(name)})
}

func (d *Denylist) match(keys []string) bool {
	denied := false
	for _, k := range keys {
		if _, ok := d.allow[k]; ok {
			return false
		}
		if _, ok := d.deny[k]; ok {
			denied = true
		}
	}
	return denied
}
