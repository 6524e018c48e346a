package testnet

import (
	"strings"
	"testing"
)

func TestLedgerGoal(t *testing.T) {
	ok := LedgerFigures{Receipts: 400000, Final: 400000, OfferedRate: 20000, P99Epochs: 1.66}
	for _, c := range []struct {
		name string
		f    func(*LedgerFigures)
		met  bool
		says string
	}{
		{"kept up", func(*LedgerFigures) {}, true, "met: all 400000"},
		{"offered less", func(f *LedgerFigures) { f.OfferedRate = 19999 }, false, "not tested"},
		{"some not final", func(f *LedgerFigures) { f.Final = 399999 }, false, "1 of 400000 receipts not final"},
		{"slow", func(f *LedgerFigures) { f.P99Epochs = 2.01 }, false, "p99 2.01 epochs"},
		{"exactly two epochs", func(f *LedgerFigures) { f.P99Epochs = 2 }, true, "met"},
	} {
		f := ok
		c.f(&f)
		met, why := f.Goal()
		if met != c.met || !strings.Contains(why, c.says) {
			t.Errorf("%s: Goal() = %v, %q; want %v, %q…", c.name, met, why, c.met, c.says)
		}
	}
}
