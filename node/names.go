package node

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/ipfs/boxo/ipns"
	"github.com/ipfs/boxo/namesys"
	"github.com/ipfs/boxo/path"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
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

// namePrefix + a key's name is where the box keeps that key's latest
// record ("self": the box's own key).
var namePrefix = []byte("ipns/")

// SelfKey is the name of the box's own key: its peer ID is its name.
const SelfKey = "self"

// NameResult is a published or resolved name.
type NameResult struct {
	Name     string    `json:"name"` // the key's peer ID as a libp2p-key CID (k51...), or a DNSLink domain
	Root     cid.Cid   `json:"root"`
	Sequence uint64    `json:"sequence"`
	EOL      time.Time `json:"eol"`
	TTL      string    `json:"ttl"`
}

// namedKey is one signing key of the box's names.
type namedKey struct {
	label string
	sk    crypto.PrivKey
	name  ipns.Name
}

// keyLabel is what a named key may be called: a file name in the repo.
var keyLabel = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// nameKeyOf returns the key label signs with: the box's own for SelfKey
// (or ""), else keys/LABEL.key in the repo, made on first use (Ed25519,
// mode 0600), so one box publishes many names (a site each).
func (n *Node) nameKeyOf(label string) (namedKey, error) {
	if label == "" || label == SelfKey {
		return namedKey{label: SelfKey, sk: n.key, name: ipns.NameFromPeer(n.host.ID())}, nil
	}
	if !keyLabel.MatchString(label) {
		return namedKey{}, fmt.Errorf("node: key name %q: use 1-64 of a-z, 0-9, - and _, starting with a letter or digit", label)
	}
	if n.cfg.RepoDir == "" {
		return namedKey{}, errors.New("node: named keys live in the repo; this box has none")
	}
	dir := filepath.Join(n.cfg.RepoDir, "keys")
	file := filepath.Join(dir, label+".key")
	raw, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		sk, _, gerr := crypto.GenerateEd25519Key(rand.Reader)
		if gerr != nil {
			return namedKey{}, gerr
		}
		if raw, err = crypto.MarshalPrivateKey(sk); err == nil {
			if err = os.MkdirAll(dir, 0o700); err == nil {
				err = writeFileAtomic(file, raw, 0o600)
			}
		}
	}
	if err != nil {
		return namedKey{}, fmt.Errorf("node: key %q: %w", label, err)
	}
	sk, err := crypto.UnmarshalPrivateKey(raw)
	if err != nil {
		return namedKey{}, fmt.Errorf("node: key %q in %s: %w", label, file, err)
	}
	pid, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		return namedKey{}, err
	}
	return namedKey{label: label, sk: sk, name: ipns.NameFromPeer(pid)}, nil
}

// PublishName points the name of key label (SelfKey or "": the box's peer
// ID; another label: a key of its own, kept in the repo) at root: a record
// with a sequence above any the box or the DHT holds, valid for lifetime
// (DefaultNameLifetime when 0), put in the DHT.
func (n *Node) PublishName(ctx context.Context, label string, root cid.Cid, lifetime time.Duration) (NameResult, error) {
	if err := checkCodec(root); err != nil {
		return NameResult{}, err
	}
	if lifetime <= 0 {
		lifetime = DefaultNameLifetime
	}
	k, err := n.nameKeyOf(label)
	if err != nil {
		return NameResult{}, err
	}
	var seq uint64
	if old, ok := n.keptRecord(ctx, k.label); ok {
		if s, err := old.Sequence(); err == nil {
			seq = s + 1
		}
	}
	// A record this key signed before a reinstall may be in the DHT.
	gctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	if data, err := n.router.Routing().GetValue(gctx, string(k.name.RoutingKey())); err == nil {
		if rec, err := ipns.UnmarshalRecord(data); err == nil && ipns.ValidateWithName(rec, k.name) == nil {
			if s, err := rec.Sequence(); err == nil && s >= seq {
				seq = s + 1
			}
		}
	}
	cancel()
	rec, err := signName(k, root, seq, lifetime)
	if err != nil {
		return NameResult{}, err
	}
	if err := n.putName(ctx, k, rec); err != nil {
		return NameResult{}, err
	}
	n.log.Info("published name", "key", k.label, "name", k.name, "root", root, "sequence", seq)
	return nameResult(k.name, rec)
}

func signName(k namedKey, root cid.Cid, seq uint64, lifetime time.Duration) (*ipns.Record, error) {
	ttl := min(DefaultNameTTL, lifetime)
	rec, err := ipns.NewRecord(k.sk, path.FromCid(root), seq, time.Now().Add(lifetime), ttl)
	if err != nil {
		return nil, fmt.Errorf("node: sign name record: %w", err)
	}
	return rec, nil
}

// putName keeps rec as k's record and puts it in the DHT.
func (n *Node) putName(ctx context.Context, k namedKey, rec *ipns.Record) error {
	data, err := ipns.MarshalRecord(rec)
	if err != nil {
		return fmt.Errorf("node: encode name record: %w", err)
	}
	if err := n.store.PutMeta(ctx, append(append([]byte{}, namePrefix...), k.label...), data); err != nil {
		return fmt.Errorf("node: keep name record: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, namePutTimeout)
	defer cancel()
	if err := n.router.Routing().PutValue(pctx, string(k.name.RoutingKey()), data); err != nil {
		return fmt.Errorf("node: put the name record in the DHT (no DHT peers? bootstrap first): %w", err)
	}
	return nil
}

func (n *Node) keptRecord(ctx context.Context, label string) (*ipns.Record, bool) {
	data, ok, err := n.store.GetMeta(ctx, append(append([]byte{}, namePrefix...), label...))
	if err != nil || !ok {
		return nil, false
	}
	rec, err := ipns.UnmarshalRecord(data)
	if err != nil {
		return nil, false
	}
	return rec, true
}

// republishName puts every kept record in the DHT again, each re-signed
// with a later end of life (and the next sequence) once half its lifetime
// passed.
func (n *Node) republishName(ctx context.Context) {
	var labels []string
	_ = n.store.ScanMeta(ctx, namePrefix, func(key, _ []byte) error {
		labels = append(labels, string(key[len(namePrefix):]))
		return nil
	})
	for _, label := range labels {
		if ctx.Err() != nil {
			return
		}
		n.republishOne(ctx, label)
	}
}

func (n *Node) republishOne(ctx context.Context, label string) {
	k, err := n.nameKeyOf(label)
	if err != nil {
		n.log.Warn("republish name: its key", "key", label, "err", err)
		return
	}
	rec, ok := n.keptRecord(ctx, label)
	if !ok {
		return
	}
	eol, err1 := rec.Validity()
	seq, err2 := rec.Sequence()
	v, err3 := rec.Value()
	if err := errors.Join(err1, err2, err3); err != nil {
		n.log.Warn("the kept name record does not read; publish again", "key", label, "err", err)
		return
	}
	if time.Until(eol) < DefaultNameLifetime/2 {
		root, err := cid.Decode(strings.TrimPrefix(v.String(), "/ipfs/"))
		if err != nil {
			n.log.Warn("the kept name record names no /ipfs/ CID; publish again", "key", label, "value", v)
			return
		}
		if rec, err = signName(k, root, seq+1, DefaultNameLifetime); err != nil {
			n.log.Warn("re-sign name record", "key", label, "err", err)
			return
		}
	}
	if err := n.putName(ctx, k, rec); err != nil && ctx.Err() == nil {
		n.log.Warn("republish name", "key", label, "err", err)
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
