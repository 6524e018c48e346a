package committee

import (
	"testing"

	"github.com/orecdn/ore/heat"
	"github.com/orecdn/ore/ledger"
)

// Boxes bound a pre-warm order by heat's copy of the ledger's limit: the
// two must agree, or the leader's orders for long pre-warms are refused.
func TestPrewarmOrderLimitIsTheLedgers(t *testing.T) {
	if heat.MaxPrewarmOrderEpochs != ledger.MaxPrewarmEpochs {
		t.Fatalf("heat.MaxPrewarmOrderEpochs %d, ledger.MaxPrewarmEpochs %d", heat.MaxPrewarmOrderEpochs, ledger.MaxPrewarmEpochs)
	}
}
