package node_test

import (
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/miekg/dns"

	"github.com/orecdn/ore/gateway"
	"github.com/orecdn/ore/node"
)

// dnsServer answers TXT queries from records on a loopback UDP port.
func dnsServer(t *testing.T, records *sync.Map) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, m *dns.Msg) {
		r := new(dns.Msg)
		r.SetReply(m)
		for _, q := range m.Question {
			if txt, ok := records.Load(q.Name); ok && q.Qtype == dns.TypeTXT {
				r.Answer = append(r.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: []string{txt.(string)}})
			}
		}
		if len(r.Answer) == 0 {
			r.Rcode = dns.RcodeNameError
		}
		_ = w.WriteMsg(r)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	return pc.LocalAddr().String()
}

// DNSLink: /ipns/site.example resolves through the TXT record of
// _dnslink.site.example (at a DNS server the test runs), for a box and on
// the gateway; a domain without the record is not found.
func TestDNSLink(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "index.html")
	if err := os.WriteFile(p, []byte("<p>dnslinked</p>"), 0o644); err != nil {
		t.Fatal(err)
	}
	var records sync.Map
	addr := dnsServer(t, &records)
	nw, _, base := gatewayNet(t, gateway.Config{}, node.WithDNSResolver(addr))
	ctx := testCtx(t)
	res, err := nw.Nodes[0].AddPath(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	records.Store("_dnslink.site.example.", "dnslink=/ipfs/"+res.Root.String())
	got, err := nw.Nodes[1].ResolveName(ctx, "/ipns/site.example")
	if err != nil || !got.Root.Equals(res.Root) {
		t.Fatalf("resolve: %+v, %v", got, err)
	}
	resp, body := httpGet(t, base+"/ipns/site.example/")
	if resp.StatusCode != 200 || string(body) != "<p>dnslinked</p>" {
		t.Fatalf("gateway /ipns/site.example/: %d %q", resp.StatusCode, body)
	}
	if _, err := nw.Nodes[1].ResolveName(ctx, "nothing.example"); err == nil {
		t.Error("a domain without a DNSLink record resolved")
	}
	if resp, _ := httpGet(t, base+"/ipns/nothing.example/"); resp.StatusCode == 200 {
		t.Error("the gateway served a domain without a DNSLink record")
	}
}
