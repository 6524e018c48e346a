package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/ipfs/boxo/blockstore"
	"github.com/ipfs/boxo/exchange"
	"github.com/ipfs/boxo/ipns"
	blocks "github.com/ipfs/go-block-format"
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
//   - /ipfs/CID/PATH and /ipns/NAME/PATH: that path under the root alone
//     (percent-encoded in the list, as the format says for unicode and
//     spaces); PATH* and PATH/* block every path that starts with PATH;
//     an allow rule for a path excepts it from a wider path rule;
//   - legacy double hashes cover paths too: sha256 of "CIDv1-base32/PATH";
//   - an optional header up to a "---" line, # comments and hints after
//     the item are skipped.
//
// A blocked CID is blocked wherever it appears (as a root, or reached
// through a path): the gateway's block reads refuse it.
type Denylist struct {
	deny, allow map[string]struct{}
	paths       map[string][]pathRule // by root key: rules with a path
	double      bool                  // some rule is double-hashed: every lookup hashes
	Rules       int                   // rules applied
	Skipped     int                   // lines not understood
}

// pathRule is a rule on a path under a root: the path (no leading or
// trailing slash), and whether it blocks every path starting with it.
type pathRule struct {
	path   string
	prefix bool
	allow  bool
}

func (r pathRule) matches(p string) bool {
	if r.prefix {
		return strings.HasPrefix(p, r.path)
	}
	return p == r.path
}

// maxDenyHeader is how far a header may reach (the format's 1 MiB).
const maxDenyHeader = 1 << 20

// maxDenyLine bounds one line of a denylist.
const maxDenyLine = 64 << 10

// ReadDenylist adds the rules of one list to d (nil: a new Denylist).
func ReadDenylist(d *Denylist, r io.Reader) (*Denylist, error) {
	if d == nil {
		d = &Denylist{deny: map[string]struct{}{}, allow: map[string]struct{}{}, paths: map[string][]pathRule{}}
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
		set, allow := d.deny, false
		if rest, ok := strings.CutPrefix(item, "!"); ok {
			item, set, allow = rest, d.allow, true
		}
		if root, rule, ok := pathRuleOf(item); ok {
			rule.allow = allow
			d.paths[root] = append(d.paths[root], rule)
			d.Rules++
			continue
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

// pathRuleOf reads an item with a path under its root (/ipfs/CID/PATH,
// /ipns/NAME/PATH, with PATH* or PATH/* for every path under PATH). ok
// false: the item has no path (or only "/*", the whole root, which
// denyKey reads).
func pathRuleOf(item string) (root string, r pathRule, ok bool) {
	var ns string
	switch {
	case strings.HasPrefix(item, "/ipfs/"):
		ns = "/ipfs/"
	case strings.HasPrefix(item, "/ipns/"):
		ns = "/ipns/"
	default:
		return "", r, false
	}
	id, p, _ := strings.Cut(strings.TrimPrefix(item, ns), "/")
	if p == "" || p == "*" {
		return "", r, false
	}
	if rest, cut := strings.CutSuffix(p, "*"); cut {
		p, r.prefix = strings.TrimSuffix(rest, "/"), true
	}
	p, err := url.PathUnescape(p)
	if err != nil {
		return "", r, false
	}
	r.path = strings.Trim(p, "/")
	if ns == "/ipns/" {
		return nameKey(id), r, true
	}
	c, err := cid.Decode(id)
	if err != nil {
		return "", r, false
	}
	return "mh:" + string(c.Hash()), r, true
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

// DeniedPath reports whether /ipfs/{c}/{p} may not be served: c itself,
// a path rule under c, or a legacy double hash of the path. p is the
// decoded path under c ("" for c itself).
func (d *Denylist) DeniedPath(c cid.Cid, p string) bool {
	if d == nil || !c.Defined() {
		return false
	}
	if d.Denied(c) {
		return true
	}
	p = strings.Trim(p, "/")
	if p == "" {
		return false
	}
	if d.double {
		if v1, err := cid.NewCidV1(c.Type(), c.Hash()).StringOfBase(mbase.Base32); err == nil {
			legacy := sha256.Sum256([]byte(v1 + "/" + p))
			if d.match([]string{"dh:" + string(legacy[:])}) {
				return true
			}
		}
	}
	return d.matchPath("mh:"+string(c.Hash()), p)
}

// DeniedNamePath reports whether /ipns/{name}/{p} may not be resolved.
func (d *Denylist) DeniedNamePath(name, p string) bool {
	if d == nil {
		return false
	}
	if d.DeniedName(name) {
		return true
	}
	p = strings.Trim(p, "/")
	return p != "" && d.matchPath(nameKey(name), p)
}

// matchPath applies the path rules under one root to p: an allow rule
// that matches wins, as for whole roots.
func (d *Denylist) matchPath(root, p string) bool {
	denied := false
	for _, r := range d.paths[root] {
		if !r.matches(p) {
			continue
		}
		if r.allow {
			return false
		}
		denied = true
	}
	return denied
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

// blockedError is how a refused block read fails: boxo's handler answers
// 410 Gone to an error that says "blocked and cannot be provided" (NoPFS's
// wording), wherever in a path or DAG the block is met.
func blockedError(c cid.Cid) error {
	return fmt.Errorf("gateway: %s is blocked and cannot be provided (the gateway's denylist)", c)
}

// deniedBlocks is the gateway's blockstore with the denylist in front: a
// listed block is neither read nor, through the blockservice, fetched (a
// read error other than not-found stops the blockservice there).
type deniedBlocks struct {
	blockstore.Blockstore
	d *Denylist
}

func (b deniedBlocks) Get(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	if b.d.Denied(c) {
		return nil, blockedError(c)
	}
	return b.Blockstore.Get(ctx, c)
}

func (b deniedBlocks) GetSize(ctx context.Context, c cid.Cid) (int, error) {
	if b.d.Denied(c) {
		return 0, blockedError(c)
	}
	return b.Blockstore.GetSize(ctx, c)
}

func (b deniedBlocks) Has(ctx context.Context, c cid.Cid) (bool, error) {
	if b.d.Denied(c) {
		return false, blockedError(c)
	}
	return b.Blockstore.Has(ctx, c)
}

// deniedExchange keeps listed blocks out of the gateway's fetches (a
// batch read, which asks the network for every block the store fails to
// give, whatever the error).
type deniedExchange struct {
	exchange.Interface
	d *Denylist
}

func (e deniedExchange) GetBlock(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	if e.d.Denied(c) {
		return nil, blockedError(c)
	}
	return e.Interface.GetBlock(ctx, c)
}

func (e deniedExchange) GetBlocks(ctx context.Context, cs []cid.Cid) (<-chan blocks.Block, error) {
	return e.Interface.GetBlocks(ctx, e.d.allowed(cs))
}

func (e deniedExchange) NewSession(ctx context.Context) exchange.Fetcher {
	var f exchange.Fetcher = e.Interface
	if se, ok := e.Interface.(exchange.SessionExchange); ok {
		f = se.NewSession(ctx)
	}
	return deniedFetcher{f: f, d: e.d}
}

type deniedFetcher struct {
	f exchange.Fetcher
	d *Denylist
}

func (f deniedFetcher) GetBlock(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	if f.d.Denied(c) {
		return nil, blockedError(c)
	}
	return f.f.GetBlock(ctx, c)
}

func (f deniedFetcher) GetBlocks(ctx context.Context, cs []cid.Cid) (<-chan blocks.Block, error) {
	return f.f.GetBlocks(ctx, f.d.allowed(cs))
}

// allowed is cs without the listed CIDs.
func (d *Denylist) allowed(cs []cid.Cid) []cid.Cid {
	out := cs[:0:0]
	for _, c := range cs {
		if !d.Denied(c) {
			out = append(out, c)
		}
	}
	return out
}
