// Package gateway is ore's HTTP edge: apps that do not speak libp2p fetch
// content from a gateway peer exactly as they would from a CDN edge.
//
// It serves the IPFS path gateway (GET/HEAD /ipfs/{cid}[/path]: files,
// directory listings, index.html) and the trustless gateway (?format=raw /
// application/vnd.ipld.raw, ?format=car / application/vnd.ipld.car) through
// boxo's gateway handler, so existing clients and verifiers work unchanged,
// with Range, ETag/If-None-Match and immutable caching. The specs' edges are
// on too: CORS headers on every response and OPTIONS preflights (200),
// Cache-Control: only-if-cached (412 at once when the root is not local;
// such a request never reaches the network, see Offline), identity CIDs
// (read from the CID, no lookup), X-Ipfs-Path, and the subdomain gateway
// through boxo's hostname handler (Config.Domains, "localhost" by default:
// /ipfs/{cid} there redirects to {cidv1b32}.ipfs.{domain}). Around it, this
// package adds what an edge needs: per-client rate limits and a per-client
// cap on requests in flight (429; a client is an IPv4 address or an IPv6
// /64), a bound on concurrent fetches (503), a write deadline and a minimum
// send rate on every response (a client that stops reading loses its slot),
// a not-found timeout that answers 404 when no box provides the content,
// retrieval timeouts (504), an unknown ?format= answered 400 (boxo would
// answer the default response), a TAR asked of a block that is not UnixFS
// answered 406 (boxo: 500), a data budget (Config.Meter, the box's
// monthly data cap: each body write is reserved first, a write it has no
// room for cuts the response, and content requests answer 503 once it is
// spent), a denylist (Config.Denylist: 410 for a listed root, path, or
// block met anywhere through a path or DAG), request heat per root CID
// with exponential decay, and /healthz; /metrics only when asked (PublicMetrics), since the
// daemon serves them on its API address. A request may carry a publisher's
// ticket (?ore-ticket= or the Ore-Ticket header, as a CDN's signed URL
// carries its token): the backend fetches under it, so the boxes that serve
// are paid (400 when it does not parse, 403 when it does not pay). Requests
// for DAGs the backend holds whole (LocalDAGs) that go through boxo's
// handler hold one of CPUPermits (the cores but one) while they compute and
// give it back while a write waits on the client: a few expensive requests
// (a huge directory's CAR, a deep chain) leave a core to the cheap ones.
//
// A request for /ipfs/{input}?ore-fn={function}&ore-arg=… asks for a
// function of the content (package compute) when the backend runs jobs
// (Jobs): it is answered with a redirect to /ipfs/{output}, so the
// output is served and cached like any content (jobs.go). The backend
// decides where the job runs (node: its index, the ledger's final
// outputs, a box that lends CPU, or itself); the redirect says which
// word it stands on: a runner's signed claim (Ore-Job-Claim) or the
// ledger's record (Ore-Job-Cache: final).
//
// Why its own package: the HTTP edge is a capability apart from the box
// (node assembles it when the box has the gateway role), and keeping it
// behind the small Backend interface means it never reaches into node.
//
// Usage:
//
//	gw, err := gateway.New(gateway.Config{Registry: reg, Gatherer: reg}, backend)
//	http.ListenAndServe("127.0.0.1:8080", gw)
package gateway
