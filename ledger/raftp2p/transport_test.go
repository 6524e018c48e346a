package raftp2p

import (
	"bytes"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// counter is a tiny FSM: it keeps the commands it applied.
type counter struct {
	mu  sync.Mutex
	log [][]byte
}

func (c *counter) Apply(l *raft.Log) any {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.log = append(c.log, append([]byte(nil), l.Data...))
	return len(c.log)
}
func (c *counter) Snapshot() (raft.FSMSnapshot, error) { return nil, fmt.Errorf("no snapshots") }
func (c *counter) Restore(io.ReadCloser) error         { return nil }
func (c *counter) entries() int                        { c.mu.Lock(); defer c.mu.Unlock(); return len(c.log) }
func (c *counter) last() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.log[len(c.log)-1]
}

type member struct {
	h   host.Host
	r   *raft.Raft
	fsm *counter
	obs chan raft.Observation
}

func newHost(t *testing.T) host.Host {
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func startCluster(t *testing.T, n int) []*member {
	t.Helper()
	var ms []*member
	var servers []raft.Server
	for i := 0; i < n; i++ {
		h := newHost(t)
		ms = append(ms, &member{h: h, fsm: &counter{}})
		servers = append(servers, raft.Server{ID: raft.ServerID(h.ID().String()), Address: raft.ServerAddress(h.ID().String())})
	}
	for _, a := range ms {
		for _, b := range ms {
			if a != b {
				a.h.Peerstore().AddAddrs(b.h.ID(), b.h.Addrs(), time.Hour)
			}
		}
	}
	for _, m := range ms {
		conf := raft.DefaultConfig()
		conf.LocalID = raft.ServerID(m.h.ID().String())
		conf.HeartbeatTimeout = 300 * time.Millisecond
		conf.ElectionTimeout = 300 * time.Millisecond
		conf.LeaderLeaseTimeout = 150 * time.Millisecond
		conf.LogOutput = io.Discard
		trans := NewTransport(m.h, WithTimeout(5*time.Second))
		store := raft.NewInmemStore()
		r, err := raft.NewRaft(conf, m.fsm, store, store, raft.NewInmemSnapshotStore(), trans)
		if err != nil {
			t.Fatal(err)
		}
		m.r = r
		m.obs = make(chan raft.Observation, 64)
		r.RegisterObserver(raft.NewObserver(m.obs, false, func(o *raft.Observation) bool {
			_, ok := o.Data.(raft.LeaderObservation)
			return ok
		}))
	}
	if err := ms[0].r.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, m := range ms {
			_ = m.r.Shutdown().Error()
			_ = m.h.Close()
		}
	})
	return ms
}

// waitLeader waits on leader observations until a live member leads.
func waitLeader(t *testing.T, ms []*member, except peer.ID) *member {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		for _, m := range ms {
			if m.h.ID() != except && m.r.State() == raft.Leader {
				return m
			}
		}
		select {
		case <-deadline:
			t.Fatal("no leader within 15s")
		case <-ms[0].obs:
		case <-ms[1].obs:
		case <-ms[2].obs:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func TestRaftOverLibp2pElectsReplicatesAndFailsOver(t *testing.T) {
	ms := startCluster(t, 3)
	leader := waitLeader(t, ms, "")
	for i := 0; i < 20; i++ {
		if err := leader.r.Apply([]byte(fmt.Sprint(i)), 5*time.Second).Error(); err != nil {
			t.Fatal(err)
		}
	}
	// Every member applies every entry.
	for _, m := range ms {
		if err := m.r.Barrier(5 * time.Second).Error(); err != nil && m == leader {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, m := range ms {
		for m.fsm.entries() < 20 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if m.fsm.entries() != 20 {
			t.Fatalf("member applied %d of 20 entries", m.fsm.entries())
		}
	}
	// Kill the leader: the others elect a new one and go on.
	start := time.Now()
	_ = leader.r.Shutdown().Error()
	_ = leader.h.Close()
	next := waitLeader(t, ms, leader.h.ID())
	t.Logf("new leader after %s", time.Since(start))
	if err := next.r.Apply([]byte("after"), 5*time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m == leader {
			continue
		}
		for m.fsm.entries() < 21 && time.Now().Before(deadline.Add(5*time.Second)) {
			time.Sleep(10 * time.Millisecond)
		}
		if got := m.fsm.last(); !bytes.Equal(got, []byte("after")) {
			t.Fatalf("last entry %q", got)
		}
	}
}
