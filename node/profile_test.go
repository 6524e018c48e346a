package node

import "testing"

func TestParseMemTotal(t *testing.T) {
	n, ok := parseMemTotal([]byte("MemTotal:        1000448 kB\nMemFree:          123 kB\n"))
	if !ok || n != 1000448<<10 {
		t.Fatalf("parseMemTotal = %d, %v", n, ok)
	}
	if _, ok := parseMemTotal([]byte("MemFree: 1 kB\n")); ok {
		t.Fatal("parsed a meminfo without MemTotal")
	}
	if total, err := SystemMemory(); err != nil || total <= 0 {
		t.Fatalf("SystemMemory = %d, %v", total, err)
	}
}

func TestProfiles(t *testing.T) {
	for in, want := range map[string]Profile{"": ProfileAuto, "auto": ProfileAuto, "small": ProfileSmall, "default": ProfileDefault} {
		if got, err := ParseProfile(in); err != nil || got != want {
			t.Errorf("ParseProfile(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseProfile("tiny"); err == nil {
		t.Error("ParseProfile accepted an unknown profile")
	}
	total, err := SystemMemory()
	if err != nil {
		t.Fatal(err)
	}
	want := ProfileDefault
	if total < SmallMemoryThreshold {
		want = ProfileSmall
	}
	if got := ProfileAuto.Resolve(); got != want {
		t.Errorf("auto on %d bytes of RAM resolved to %s, want %s", total, got, want)
	}

	cfg, err := defaults()
	if err != nil {
		t.Fatal(err)
	}
	if err := WithProfile(ProfileSmall)(cfg); err != nil {
		t.Fatal(err)
	}
	if !cfg.SmallMemory || cfg.ResourceMemory != smallResourceMemory(total) || cfg.ConnHigh >= DefaultConnHigh {
		t.Errorf("small profile: %+v", cfg)
	}
	if len(cfg.profileBitswapOptions()) == 0 {
		t.Error("small profile leaves bitswap's queues unbounded")
	}
	for ram, want := range map[int64]int64{256 << 20: 64 << 20, 1 << 30: 128 << 20, 8 << 30: 192 << 20} {
		if got := smallResourceMemory(ram); got != want {
			t.Errorf("resource memory for %d bytes of RAM: %d, want %d", ram, got, want)
		}
	}
}
