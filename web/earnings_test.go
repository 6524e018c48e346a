package web

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/boxo/files"

	"github.com/orecdn/ore/compute"
	"github.com/orecdn/ore/internal/testkit"
	"github.com/orecdn/ore/ledger"
	"github.com/orecdn/ore/node"
	"github.com/orecdn/ore/testnet"
)

// On a network of rules 5 (boxes 0-2 coordinate, box 3 publishes, offers
// storage of a root and asks for a job, box 4 runs the job), the
// dashboard's figures split each box's earnings into delivery, storage
// and compute, and each equals the ledger's own: what its chain follower
// says a box earned for storage is the sum of the box's proof records
// (`ore status`'s), for compute the pay of its job once the ledger
// released it, and the whole is the box's balance; the publisher's
// storage offer, its spend on it and on the job, and its function are
// the ledger's. The owner's and the publisher's tabs show the same
// figures, read in chromium when it is installed (screenshots in
// $ORE_DASHBOARD_SHOTS).
func TestEarningsSplitByKind(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const runnerBalance, bond = 1 << 40, 1 << 36
	nw, err := testnet.New(ctx, 6, testnet.WithDir(t.TempDir()),
		testnet.WithNodeOptions(node.WithStallTimeout(10*time.Second), node.WithComputeService(1)),
		testnet.WithLedger(testnet.LedgerSpec{Coordinators: []int{0, 1, 2}, Balances: map[int]uint64{3: 1 << 50, 4: runnerBalance},
			EpochLength: time.Second, Network: "ore-web-earnings", Rules: ledger.RulesV5, StorageRound: 10}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nw.Close() })
	pub, run := nw.Nodes[3], nw.Nodes[4]
	if err := pub.Connect(ctx, run.AddrInfo()); err != nil {
		t.Fatal(err)
	}

	// Storage: a 1 MiB root, offered to 2 boxes, pre-warmed on 2.
	data := make([]byte, 1<<20)
	_, _ = rand.Read(data)
	res, err := pub.Add(ctx, files.NewBytesFile(data))
	if err != nil {
		t.Fatal(err)
	}
	const deposit = 1 << 45
	submit(t, ctx, pub, ledger.NewDeposit("", 0, deposit))
	reg, err := pub.RegisterTx(ctx, res.Root, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	submit(t, ctx, pub, reg)
	until := pub.Network().EpochAt(time.Now()) + 600
	offer, err := pub.StorageTx(ctx, res.Root, 1<<30, 2, until)
	if err != nil {
		t.Fatal(err)
	}
	submit(t, ctx, pub, offer)
	submit(t, ctx, pub, ledger.NewPrewarm("", 0, res.Root, 2, until))

	// Compute: a function of the publisher's, a job box 4 runs for it.
	price := uint64(1 << 30)
	info, err := pub.PublishFunction(ctx, testkit.FunctionModule(t), compute.DefaultLimits(), &price)
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, time.Minute, "the function registered", func() bool {
		st, err := pub.LedgerState(ctx)
		if err != nil {
			return false
		}
		_, ok := st.Function(info.Fn)
		return ok
	})
	submit(t, ctx, run, ledger.NewBond(run.ID(), 0, bond))
	in, err := pub.Add(ctx, files.NewBytesFile([]byte("the input of a paid job")))
	if err != nil {
		t.Fatal(err)
	}
	job, err := pub.RunJobOn(ctx, run.ID(), info.Fn, in.Root, []string{"upper"})
	if err != nil {
		t.Fatal(err)
	}
	var held ledger.PendingJob
	testkit.WaitFor(t, time.Minute, "the job's pay held", func() bool {
		st, err := pub.LedgerState(ctx)
		if err != nil {
			return false
		}
		var ok bool
		held, ok = st.PendingJob(job.JobID(), job.Requester)
		return ok
	})
	if held.Held == 0 {
		t.Fatalf("the job pays nothing: %+v", held)
	}

	// A chain follower per box, all reading the publisher's chain.
	chains := make([]*chain, len(nw.Nodes))
	for i, n := range nw.Nodes {
		chains[i] = newChain(n.ID(), nw.Genesis, pub.LedgerBlocksFrom)
	}
	follow := func(i int) chainFigures {
		t.Helper()
		if err := chains[i].refresh(ctx); err != nil {
			t.Fatalf("box %d's follower: %v", i, err)
		}
		f := chains[i].figures()
		if f.Err != "" {
			t.Fatalf("box %d's figures: %s", i, f.Err)
		}
		return f
	}
	// The job is released 60 epochs after its block; by then the
	// ordered boxes proved rounds of the root.
	testkit.WaitFor(t, 2*time.Minute, "the job paid and a box paid for storage", func() bool {
		f := follow(4)
		if f.Total.Compute == 0 {
			return false
		}
		for i := range nw.Nodes {
			for _, r := range f.State.ReplicaRecords(nw.Nodes[i].ID()) {
				if r.Earned > 0 {
					return true
				}
			}
		}
		return false
	})

	var storagePaid uint64
	for i, n := range nw.Nodes {
		f := follow(i)
		st := f.State // the ledger's state at the height the figures reach
		var records uint64
		for _, v := range node.StorageViews(st, n.ID()) { // what `ore status` prints
			records += v.Earned
		}
		storagePaid += records
		tot := f.Total
		if tot.Storage != records {
			t.Errorf("box %d: the dashboard says storage earned %d, its proof records %d", i, tot.Storage, records)
		}
		if tot.Earned != tot.Delivery+tot.Storage+tot.Compute {
			t.Errorf("box %d: earned %d is not delivery %d + storage %d + compute %d", i, tot.Earned, tot.Delivery, tot.Storage, tot.Compute)
		}
		var perEpoch, perDay Figure
		for _, e := range f.Epochs {
			perEpoch.Storage += e.Storage
			perEpoch.Compute += e.Compute
			perEpoch.Earned += e.Earned
		}
		for _, d := range f.Days {
			perDay.Storage += d.Storage
			perDay.Compute += d.Compute
			perDay.Earned += d.Earned
		}
		if perEpoch != (Figure{Earned: tot.Earned, Storage: tot.Storage, Compute: tot.Compute}) || perDay != perEpoch {
			t.Errorf("box %d: per epoch %+v, per day %+v, total %+v", i, perEpoch, perDay, tot)
		}
		// What the box earned is what its balance grew by (box 4 locked
		// its bond out of its balance; box 3 deposited its escrow).
		start := map[int]uint64{3: 1<<50 - deposit, 4: runnerBalance - bond}[i]
		if got := st.Balance(n.ID()); got != start+tot.Earned {
			t.Errorf("box %d: balance %d, the dashboard's earnings %d from %d", i, got, tot.Earned, start)
		}
		if i != 4 && tot.Compute != 0 {
			t.Errorf("box %d ran no job but earned %d for compute", i, tot.Compute)
		}
	}
	fr := follow(4)
	if fr.Total.Compute != held.Held || fr.JobTotals != (JobTotals{Taken: 1, Paid: 1}) || len(fr.Jobs) != 1 ||
		fr.Jobs[0].State != "paid" || fr.Jobs[0].Pay != held.Held || fr.Jobs[0].Work != job.Work {
		t.Errorf("the runner's compute: earned %d (the ledger held %d), totals %+v, jobs %+v", fr.Total.Compute, held.Held, fr.JobTotals, fr.Jobs)
	}
	fp := follow(3)
	st := fp.State
	// What the publisher's offer paid, from the records in the state its
	// own figures reach (the boxes' followers above may stand a block
	// before or after it).
	storagePaid = 0
	for _, n := range nw.Nodes {
		for _, v := range node.StorageViews(st, n.ID()) {
			if v.Root == res.Root.String() {
				storagePaid += v.Earned
			}
		}
	}
	o, ok := st.StorageOffer(res.Root)
	if !ok || len(fp.Offers) != 1 {
		t.Fatalf("the publisher's offers: %+v (the ledger's: %+v, %v)", fp.Offers, o, ok)
	}
	if ov := fp.Offers[0]; ov.Root != res.Root.String() || ov.Reserved != o.Reserved || ov.Replicas != o.Replicas || ov.Price != o.Price ||
		ov.Bytes != o.Commitment.Length || ov.Spent != storagePaid {
		t.Errorf("offer %+v; the ledger: %+v, its boxes' records earned %d", ov, o, storagePaid)
	}
	if fp.Total.SpentStorage != storagePaid || fp.Total.SpentCompute != held.Held {
		t.Errorf("the publisher spent %d on storage (its boxes earned %d) and %d on compute (the job's pay %d)",
			fp.Total.SpentStorage, storagePaid, fp.Total.SpentCompute, held.Held)
	}
	a := st.Account(pub.ID())
	if fp.Total.Spent != deposit-a.Escrow-a.Reserved {
		t.Errorf("the publisher spent %d; the ledger: deposit %d, escrow %d, reserved %d", fp.Total.Spent, uint64(deposit), a.Escrow, a.Reserved)
	}
	if len(fp.Functions) != 1 || fp.Functions[0].Fn != info.Fn.String() || fp.Functions[0].Price != price || fp.Functions[0].Jobs != 1 || fp.Functions[0].JobsPaid != held.Held {
		t.Errorf("the publisher's functions: %+v", fp.Functions)
	}

	// The tabs show them: the runner's owner tab and the publisher's tab,
	// in a real browser when there is one.
	runDash, pubDash := startDash(t, run), startDash(t, pub)
	var ownerPage, pubPage string
	testkit.WaitFor(t, time.Minute, "the tabs show the followers' figures", func() bool {
		fr, fp := follow(4), follow(3)
		ownerPage, pubPage = page(t, runDash, "/"), page(t, pubDash, "/publisher")
		return dataValue(ownerPage, "earned-compute") == fmt.Sprint(fr.Total.Compute) &&
			dataValue(ownerPage, "earned-storage") == fmt.Sprint(fr.Total.Storage) &&
			dataValue(ownerPage, "earned-total") == fmt.Sprint(fr.Total.Earned) &&
			dataValue(ownerPage, "jobs-paid") == "1" &&
			strings.Contains(pubPage, fmt.Sprintf(`data-value="%d"`, fp.Offers[0].Spent)) &&
			strings.Contains(pubPage, `id="functions"`) && strings.Contains(pubPage, fmt.Sprintf(`data-value="%d"`, held.Held))
	})
	if !strings.Contains(ownerPage, `id="storage-proofs"`) || !strings.Contains(pubPage, `id="offers"`) {
		t.Errorf("a tab without its storage table:\n%s\n%s", ownerPage, pubPage)
	}
	// A box that proved storage shows its record as `ore status` does.
	for _, n := range nw.Nodes {
		vs := node.StorageViews(fp.State, n.ID())
		if len(vs) == 0 || vs[0].Proofs == 0 {
			continue
		}
		d := startDash(t, n)
		testkit.WaitFor(t, time.Minute, "the proof record on the box's tab", func() bool {
			st, err := n.Status(ctx)
			if err != nil || st.Ledger == nil || len(st.Ledger.Storage) == 0 {
				return false
			}
			p := page(t, d, "/")
			v := st.Ledger.Storage[0]
			return strings.Contains(p, fmt.Sprintf(`<td data-value="%d">%d</td><td data-value="%d">%d</td>`, v.Proofs, v.Proofs, v.Misses, v.Misses)) &&
				strings.Contains(p, fmt.Sprintf(`<td data-value="%d">`, v.Earned))
		})
		if dir := os.Getenv("ORE_DASHBOARD_SHOTS"); dir != "" && chromium() != "" {
			bin := chromium()
			runChromium(t, bin, d.LoginURL(), "--hide-scrollbars", "--window-size=1200,2600", "--screenshot="+filepath.Join(dir, "dashboard-box-storage.png"))
			runChromium(t, bin, runDash.LoginURL(), "--hide-scrollbars", "--window-size=1200,2600", "--screenshot="+filepath.Join(dir, "dashboard-box-compute.png"))
			runChromium(t, bin, pubDash.LoginURL()+"&tab=publisher", "--hide-scrollbars", "--window-size=1200,2000", "--screenshot="+filepath.Join(dir, "dashboard-publisher-offers.png"))
			t.Logf("screenshots in %s", dir)
		}
		return
	}
	t.Error("no box's proof record had a proof")
}

// page renders a tab as a browser sees it: through chromium's --dump-dom
// when it is installed (the page after its scripts ran), else over HTTP.
func page(t *testing.T, d *testDash, path string) string {
	t.Helper()
	if bin := chromium(); bin != "" {
		next := map[string]string{"/": "", "/publisher": "&tab=publisher"}[path]
		return runChromium(t, bin, d.LoginURL()+next, "--dump-dom")
	}
	c := login(t, d)
	resp, body := get(t, c, "http://"+d.Addr().String()+path)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", path, resp.Status)
	}
	return body
}

func chromium() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless_shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

func runChromium(t *testing.T, bin, url string, flags ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
		"--disable-background-networking", "--user-data-dir=" + t.TempDir(), "--virtual-time-budget=3000"}, flags...)
	out, err := exec.CommandContext(ctx, bin, append(args, url)...).Output()
	if err != nil {
		t.Fatalf("chromium %s: %v", url, err)
	}
	return string(out)
}

func dataValue(page, id string) string {
	m := regexp.MustCompile(`id="` + regexp.QuoteMeta(id) + `" data-value="([^"]*)"`).FindStringSubmatch(page)
	if m == nil {
		return ""
	}
	return m[1]
}

// submit signs tx as n, submits it and waits until a final block holds it.
func submit(t *testing.T, ctx context.Context, n *node.Node, tx ledger.Tx) {
	t.Helper()
	if err := testnet.SubmitFinal(ctx, n, tx, time.Minute); err != nil {
		t.Fatal(err)
	}
}
