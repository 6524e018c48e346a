package node

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/orecdn/ore/gateway"
)

// loadDenylists reads the box's denylists (nil when there are none).
func loadDenylists(files []string, log *slog.Logger) (*gateway.Denylist, error) {
	var d *gateway.Denylist
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return nil, fmt.Errorf("node: denylist: %w", err)
		}
		before, skipped := 0, 0
		if d != nil {
			before, skipped = d.Rules, d.Skipped
		}
		d, err = gateway.ReadDenylist(d, fh)
		fh.Close()
		if err != nil {
			return nil, fmt.Errorf("node: denylist %s: %w", f, err)
		}
		log.Info("denylist loaded", "file", f, "rules", d.Rules-before, "skipped", d.Skipped-skipped)
	}
	return d, nil
}
