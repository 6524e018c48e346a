#!/usr/bin/env bash
# The IPFS gateway conformance suite (github.com/ipfs/gateway-conformance)
# against an ore gateway on loopback: the suite's fixtures are imported into
# a fresh gateway box, the suite runs, and the result of each top-level test
# group is printed (PASS/FAIL/SKIP), with the suite's JSON report kept.
#
#   GATEWAY_CONFORMANCE_BIN=/path/to/gateway-conformance scripts/gateway-conformance.sh [-out DIR] [-specs SPECS] [-- GO-TEST-ARGS]
#
#   GATEWAY_CONFORMANCE_BIN  the suite's binary (`go install
#             github.com/ipfs/gateway-conformance/cmd/gateway-conformance@VERSION`
#             where the module is reachable); else `gateway-conformance` on
#             PATH; without either the script says so and exits 0
#   -out      where the JSON report and the per-group summary go
#             (default: a temporary directory, printed)
#   -specs    the suite's --specs (default: all mature specs)
#
# The box is a gateway with subdomain gateways on example.com and
# localhost (the suite sends Host: {cid}.ipfs.example.com to the gateway's
# address). Not loaded, so the tests that need them fail: the fixtures'
# IPNS records (ore puts only records it signs into its DHT) and DNSLink
# names (ore asks a DNS server, dns_resolver in config.json; the suite's
# names map is for Kubo's IPFS_NS_MAP).
set -euo pipefail
cd "$(dirname "$0")/.."

out=""
specs=""
while [ $# -gt 0 ]; do
  case "$1" in
    -out) out=$2; shift 2 ;;
    -specs) specs=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "usage: GATEWAY_CONFORMANCE_BIN=... $0 [-out DIR] [-specs SPECS] [-- GO-TEST-ARGS]" >&2; exit 2 ;;
  esac
done
bin=${GATEWAY_CONFORMANCE_BIN:-$(command -v gateway-conformance || true)}
if [ -z "$bin" ]; then
  echo "gateway-conformance: skipped: set GATEWAY_CONFORMANCE_BIN to the suite's binary to run it"
  exit 0
fi

work=$(mktemp -d /tmp/ore-gateway-conformance.XXXXXX)
if [ -z "$out" ]; then
  out="$work/report"
fi
mkdir -p "$out"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "$out" != "$work/report" ]; then rm -rf "$work"; fi
}
trap cleanup EXIT

# wait_for FILE PATTERN SECONDS: until FILE has a line matching PATTERN.
wait_for() {
  local deadline=$((SECONDS + $3))
  until grep -q "$2" "$1" 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then
      echo "gateway-conformance: no \"$2\" in $1 within $3 s:" >&2
      tail -20 "$1" >&2
      exit 1
    fi
    sleep 0.2
  done
}

start=$SECONDS
echo "== build ore"
go build -o "$work/ore" ./cmd/ore
ore="$work/ore"

echo "== extract the suite's fixtures"
"$bin" extract-fixtures --directory "$work/fixtures" >/dev/null

echo "== ore gateway box"
"$ore" init --repo "$work/repo" --role gateway --listen /ip4/127.0.0.1/tcp/0 --api 127.0.0.1:0 \
  --port-map=false --dashboard off >/dev/null
# The suite is one client sending many requests at once: lift the
# gateway's per-client limits (100/s, 16 in flight) for it.
sed -i '0,/{/s//{\n  "gateway_client_rate": 100000,\n  "gateway_client_cap": 4096,/' "$work/repo/config.json"
"$ore" gateway --repo "$work/repo" --listen 127.0.0.1:0 --domain example.com,localhost \
  >"$work/ore.out" 2>"$work/ore.log" &
pids+=($!)
wait_for "$work/ore.out" "ore daemon ready" 60
url=$(sed -n 's|^gateway \(http://[^/]*\)/ipfs/{cid}$|\1|p' "$work/ore.out" | head -1)
echo "gateway at $url"

echo "== import the fixtures"
cars=0
while IFS= read -r car; do
  "$ore" dag import --repo "$work/repo" "$car" >/dev/null 2>>"$work/import.log" || echo "import failed: $car (see $work/import.log)"
  cars=$((cars + 1))
done < <(find "$work/fixtures" -name '*.car' | sort)
echo "$cars CAR files; not loaded: $(find "$work/fixtures" -name '*.ipns-record' | wc -l) IPNS records, DNSLink names"

echo "== run the suite"
set +e
"$bin" test --gateway-url "$url" --subdomain-url http://example.com --json "$out/report.json" \
  ${specs:+--specs "$specs"} -- "$@" >"$out/suite.log" 2>&1
code=$?
set -e

# Each top-level group's verdict, from the go test2json report.
grep -o '"Action":"\(pass\|fail\|skip\)","Package":"[^"]*","Test":"[^"/]*"' "$out/report.json" 2>/dev/null |
  sed 's/"Action":"\([a-z]*\)".*"Test":"\([^"]*\)"/\2 \1/' | sort -u >"$out/groups.txt" || true
if [ ! -s "$out/groups.txt" ]; then
  grep -E '^(--- )?(PASS|FAIL|SKIP): Test[^/ ]* ' "$out/suite.log" | sed -E 's/^(--- )?(PASS|FAIL|SKIP): (Test[^ ]*).*/\3 \2/' |
    tr 'A-Z' 'a-z' | sort -u >"$out/groups.txt" || true
fi
column -t "$out/groups.txt" 2>/dev/null || cat "$out/groups.txt"
pass=$(grep -c ' pass$' "$out/groups.txt" || true)
fail=$(grep -c ' fail$' "$out/groups.txt" || true)
skip=$(grep -c ' skip$' "$out/groups.txt" || true)
echo "groups: $pass passed, $fail failed, $skip skipped (suite exit $code, $((SECONDS - start)) s); report in $out"
