package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/ipfs/boxo/ipns"
	"github.com/ipfs/boxo/namesys"
	"github.com/ipfs/boxo/path"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/routing"

	"github.com/orecdn/ore/gateway"
)

// IPNS names: a box publishes a signed IPNS record (boxo's ipns package)
// naming a CID under its own key, in ore's DHT (whose "ipns" namespace
// validates records: signature, name, expiry, and the higher sequence
// wins); anyone resolves the name to the latest CID. A publisher updates a
// site by publishing a new CID under the same name. The box keeps its
// latest record and puts it again every nameRepublishEvery (DHT records
// expire), signing it anew with a later end of life when half its lifetime
// has passed.

// Name defaults.
const (
	DefaultNameLifetime = 48 * time.Hour  // a record is valid this long after it is signed
	DefaultNameTTL      = 5 * time.Minute // how long resolvers (and the gateway's caching headers) may keep it
	nameRepublishEvery  = time.Hour
	namePutTimeout      = time.Minute
)

// ErrNameNotFound: no valid record for the name in the DHT.
var ErrNameNotFound = errors.New("node: no record for this name")

// nameKey is where the box keeps its latest record.
var nameKey = []byte("ipns/self")

// NameResult is a published or resolved name.
type NameResult struct {
	Name     string    `json:"name"` // the box's peer ID as a libp2p-key CID (k51...)
	Root     cid.Cid   `json:"root"`
	Sequence uint64    `json:"sequence"`
	EOL      time.Time `json:"eol"`
	TTL      string    `json:"ttl"`
}

// PublishName points the box's name (its peer ID) at root: a record with
// a sequence above any the box or the DHT holds, valid for lifetime
// (DefaultNameLifetime when 0), put in the DHT.
func (n *Node) PublishName(ctx context.Context, root cid.Cid, lifetime time.Duration) (NameResult, error) {
	if err := checkCodec(root); err != nil {
		return NameResult{}, err
	}
	if lifetime <= 0 {
		lifetime = DefaultNameLifetime
	}
	name := nameOf(n)
	var seq uint64
	if old, ok := n.keptRecord(ctx); ok {
		if s, err := old.Sequence(); err == nil {
			seq = s + 1
		}
	}
	// A record this box published before a reinstall may be in the DHT.
	gctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	if data, err := n.router.Routing().GetValue(gctx, string(name.RoutingKey())); err == nil {
		if rec, err := ipns.UnmarshalRecord(data); err == nil && ipns.ValidateWithName(rec, name) == nil {
			if s, err := rec.Sequence(); err == nil && s >= seq {
				seq = s + 1
			}
		}
	}
	cancel()
	rec, err := n.signName(root, seq, lifetime)
	if err != nil {
		return NameResult{}, err
	}
	if err := n.putName(ctx, rec); err != nil {
		return NameResult{}, err
	}
	n.log.Info("published name", "name", name, "root", root, "sequence", seq)
	return nameResult(name, rec)
}

func (n *Node) signName(root cid.Cid, seq uint64, lifetime time.Duration) (*ipns.Record, error) {
	ttl := min(DefaultNameTTL, lifetime)
	rec, err := ipns.NewRecord(n.key, path.FromCid(root), seq, time.Now().Add(lifetime), ttl)
	if err != nil {
		return nil, fmt.Errorf("node: sign name record: %w", err)
	}
	return rec, nil
}

// putName stores rec as the box's record and puts it in the DHT.
func (n *Node) putName(ctx context.Context, rec *ipns.Record) error {
	data, err := ipns.MarshalRecord(rec)
	if err != nil {
		return fmt.Errorf("node: encode name record: %w", err)
	}
	if err := n.store.PutMeta(ctx, nameKey, data); err != nil {
		return fmt.Errorf("node: keep name record: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, namePutTimeout)
	defer cancel()
	name := nameOf(n)
	if err := n.router.Routing().PutValue(pctx, string(name.RoutingKey()), data); err != nil {
		return fmt.Errorf("node: put the name record in the DHT (no DHT peers? bootstrap first): %w", err)
	}
	return nil
}

// nameOf is the box's IPNS name: its peer ID.
func nameOf(n *Node) ipns.Name { return ipns.NameFromPeer(n.host.ID()) }

func (n *Node) keptRecord(ctx context.Context) (*ipns.Record, bool) {
	data, ok, err := n.store.GetMeta(ctx, nameKey)
	if err != nil || !ok {
		return nil, false
	}
	rec, err := ipns.UnmarshalRecord(data)
	if err != nil {
		return nil, false
	}
	return rec, true
}

// republishName puts the box's record in the DHT again, re-signed with a
// later end of life (and the next sequence) once half its lifetime passed.
func (n *Node) republishName(ctx context.Context) {
	rec, ok := n.keptRecord(ctx)
	if !ok {
		return
	}
	eol, err1 := rec.Validity()
	seq, err2 := rec.Sequence()
	v, err3 := rec.Value()
	if err := errors.Join(err1, err2, err3); err != nil {
		n.log.Warn("the kept name record does not read; publish again", "err", err)
		return
	}
	if time.Until(eol) < DefaultNameLifetime/2 {
		root, err := cid.Decode(strings.TrimPrefix(v.String(), "/ipfs/"))
		if err != nil {
			n.log.Warn("the kept name record names no /ipfs/ CID; publish again", "value", v)
			return
		}
		if rec, err = n.signName(root, seq+1, DefaultNameLifetime); err != nil {
			n.log.Warn("re-sign name record", "err", err)
			return
		}
	}
	if err := n.putName(ctx, rec); err != nil && ctx.Err() == nil {
		n.log.Warn("republish name", "err", err)
	}
}

// nameCacheSize bounds the names (IPNS and DNSLink) a box keeps resolved
// for their TTL.
const nameCacheSize = 1024

// newNameSystem resolves /ipns/ names: IPNS records from vs (the DHT),
// DNSLink names from DNS (cfg.DNSResolver, else the system's resolver).
func newNameSystem(cfg *Config, vs routing.ValueStore) (namesys.NameSystem, error) {
	r := net.DefaultResolver
	if cfg.DNSResolver != "" {
		addr := cfg.DNSResolver
		r = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}}
	}
	ns, err := namesys.NewNameSystem(vs, namesys.WithDNSResolver(r), namesys.WithCache(nameCacheSize))
	if err != nil {
		return nil, fmt.Errorf("node: name system: %w", err)
	}
	return ns, nil
}

// ResolveName returns the CID a name points at: an IPNS name (a peer ID
// or its libp2p-key CID) through its latest valid record in the DHT, a
// domain through its DNSLink TXT record (_dnslink.DOMAIN "dnslink=/ipfs/
// CID" or "dnslink=/ipns/NAME", followed a few levels). With or without
// /ipns/ before it.
func (n *Node) ResolveName(ctx context.Context, s string) (NameResult, error) {
	s = strings.TrimPrefix(s, "/ipns/")
	if gateway.IsDNSLinkName(s) {
		return n.resolveDNSLink(ctx, s)
	}
	name, err := ipns.NameFromString(s)
	if err != nil {
		return NameResult{}, fmt.Errorf("node: %q is not an IPNS name (a k51... key or a peer ID) nor a DNSLink domain: %w", s, err)
	}
	data, err := n.router.Routing().GetValue(ctx, string(name.RoutingKey()))
	if err != nil {
		return NameResult{}, fmt.Errorf("%w %s: %w", ErrNameNotFound, name, err)
	}
	rec, err := ipns.UnmarshalRecord(data)
	if err != nil {
		return NameResult{}, fmt.Errorf("node: the record of %s: %w", name, err)
	}
	if err := ipns.ValidateWithName(rec, name); err != nil {
		return NameResult{}, fmt.Errorf("node: the record of %s: %w", name, err)
	}
	return nameResult(name, rec)
}

func (n *Node) resolveDNSLink(ctx context.Context, domain string) (NameResult, error) {
	p, err := path.NewPath("/ipns/" + domain)
	if err != nil {
		return NameResult{}, fmt.Errorf("node: %q: %w", domain, err)
	}
	res, err := n.names.Resolve(ctx, p)
	if err != nil {
		return NameResult{}, fmt.Errorf("%w %s (DNSLink: the TXT record of _dnslink.%s): %w", ErrNameNotFound, domain, domain, err)
	}
	ip, err := path.NewImmutablePath(res.Path)
	if err != nil {
		return NameResult{}, fmt.Errorf("node: %s resolves to %s, not an /ipfs/ path", domain, res.Path)
	}
	return NameResult{Name: domain, Root: ip.RootCid(), TTL: res.TTL.String()}, nil
}

// NameSystem resolves /ipns/ names for the gateway.
func (n *Node) NameSystem() namesys.NameSystem { return n.names }

func nameResult(name ipns.Name, rec *ipns.Record) (NameResult, error) {
	v, err := rec.Value()
	if err != nil {
		return NameResult{}, fmt.Errorf("node: name record value: %w", err)
	}
	ip, err := path.NewImmutablePath(v)
	if err != nil {
		return NameResult{}, fmt.Errorf("node: %s names %s, not an /ipfs/ path: ore resolves one level", name, v)
	}
	seq, _ := rec.Sequence()
	eol, _ := rec.Validity()
	ttl, _ := rec.TTL()
	return NameResult{Name: name.String(), Root: ip.RootCid(), Sequence: seq, EOL: eol, TTL: ttl.String()}, nil
}
