package main

import "testing"

// TestDemoSchedule checks the arithmetic the demo's heat step relies on:
// the earlier steps' requests leave the file cold, the burst alone makes it
// hot with the ceiling as its target, and the ceiling fits the smallest
// demo network while exceeding the boxes that hold the file before.
func TestDemoSchedule(t *testing.T) {
	p := demoSchedule()
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	const (
		earlier    = 3 // the replica's fetch, the getter's, the gateway's GET
		holders    = 4 // at most: publisher, replica, getter, gateway
		minBoxes   = 6 // ore demo --boxes at least 6
		requesters = 3 // the gateway, the replica box, the getter box
	)
	if earlier >= p.HotRequests {
		t.Errorf("%d requests before the burst already make the file hot (at %v)", earlier, p.HotRequests)
	}
	burst := float64(requesters * demoBurst)
	if burst < p.HotRequests || burst < float64(p.Ceiling)*p.RequestsPerReplica {
		t.Errorf("a burst of %v requests does not reach the ceiling of %d replicas (%v per replica)", burst, p.Ceiling, p.RequestsPerReplica)
	}
	// One report counts for at most MaxReporterRequests of a root: each
	// requester's burst (and its earlier request) must fit under it.
	if float64(demoBurst+1) > p.MaxReporterRequests {
		t.Errorf("a requester's %d requests exceed what one report counts (%v)", demoBurst+1, p.MaxReporterRequests)
	}
	if p.Ceiling <= holders || p.Ceiling > minBoxes {
		t.Errorf("ceiling %d: want more than the %d boxes holding the file, at most %d boxes", p.Ceiling, holders, minBoxes)
	}
}
