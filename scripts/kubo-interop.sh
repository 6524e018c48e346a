#!/usr/bin/env bash
# Kubo and ore, both ways, on loopback: a Kubo node fetches a file an ore
# box added (served from the box's free tier: Kubo signs no receipts), and
# the ore box fetches a file Kubo added; the bytes are compared.
#
#   IPFS_BIN=/path/to/ipfs scripts/kubo-interop.sh [-size MiB]
#
#   IPFS_BIN  a Kubo binary (`ipfs`); without it the script says so and
#             exits 0, so CI runs it only where a Kubo binary is given
#   -size     the size of each file in MiB (default 64)
#
# Everything runs in a temporary directory, removed at the end; both
# daemons listen on 127.0.0.1 only and Kubo's routing is off (ore's DHT is
# on its own /ore prefix: the two meet by a direct connection).
set -euo pipefail
cd "$(dirname "$0")/.."

size=64
while [ $# -gt 0 ]; do
  case "$1" in
    -size) size=$2; shift 2 ;;
    *) echo "usage: IPFS_BIN=... $0 [-size MiB]" >&2; exit 2 ;;
  esac
done
if [ -z "${IPFS_BIN:-}" ]; then
  echo "kubo-interop: skipped: set IPFS_BIN to a Kubo binary to run it"
  exit 0
fi

work=$(mktemp -d /tmp/ore-kubo-interop.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# wait_for FILE PATTERN SECONDS: until FILE has a line matching PATTERN.
wait_for() {
  local deadline=$((SECONDS + $3))
  until grep -q "$2" "$1" 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then
      echo "kubo-interop: no \"$2\" in $1 within $3 s:" >&2
      tail -20 "$1" >&2
      exit 1
    fi
    sleep 0.2
  done
}

echo "== build ore"
go build -o "$work/ore" ./cmd/ore
ore="$work/ore"

echo "== Kubo $("$IPFS_BIN" version --number 2>/dev/null || echo '?')"
export IPFS_PATH="$work/kubo"
"$IPFS_BIN" init --profile test >/dev/null
"$IPFS_BIN" config Routing.Type none
"$IPFS_BIN" daemon >"$work/kubo.log" 2>&1 &
pids+=($!)
wait_for "$work/kubo.log" "Daemon is ready" 60
kubo_addr=$("$IPFS_BIN" id -f '<addrs>\n' | grep '^/ip4/127.0.0.1/tcp/' | head -1)
kubo_id=$("$IPFS_BIN" id -f '<id>')
case "$kubo_addr" in
  */p2p/*) ;;
  *) kubo_addr="$kubo_addr/p2p/$kubo_id" ;;
esac
echo "kubo at $kubo_addr"

echo "== ore box (bootstrapping to Kubo, the only peer it has)"
"$ore" init --repo "$work/ore-repo" --listen /ip4/127.0.0.1/tcp/0 --api 127.0.0.1:0 \
  --dht server --bootstrap "$kubo_addr" >/dev/null
"$ore" daemon --repo "$work/ore-repo" >"$work/ore.out" 2>"$work/ore.log" &
pids+=($!)
wait_for "$work/ore.out" "ore daemon ready" 60
ore_addr=$(grep '^listening /ip4/127.0.0.1/tcp/' "$work/ore.out" | head -1 | cut -d' ' -f2)
echo "ore at $ore_addr"

head -c $((size << 20)) /dev/urandom >"$work/from-ore.bin"
head -c $((size << 20)) /dev/urandom >"$work/from-kubo.bin"
fail=0

echo "== Kubo fetches $size MiB from ore"
root=$("$ore" add -q --repo "$work/ore-repo" "$work/from-ore.bin")
"$IPFS_BIN" swarm connect "$ore_addr" >/dev/null
start=$SECONDS
if timeout 600 "$IPFS_BIN" cat "$root" >"$work/got-by-kubo.bin" && cmp -s "$work/from-ore.bin" "$work/got-by-kubo.bin"; then
  echo "ok: Kubo got $root, bytes equal ($((SECONDS - start)) s)"
else
  echo "FAIL: Kubo did not get $root whole ($(stat -c %s "$work/got-by-kubo.bin" 2>/dev/null || echo 0) bytes)"
  fail=1
fi

echo "== ore fetches $size MiB from Kubo"
kcid=$("$IPFS_BIN" add -Q --cid-version 1 "$work/from-kubo.bin")
"$IPFS_BIN" swarm connect "$ore_addr" >/dev/null
start=$SECONDS
if "$ore" get --repo "$work/ore-repo" --timeout 10m -o "$work/got-by-ore.bin" "$kcid" >/dev/null 2>"$work/get.err" &&
  cmp -s "$work/from-kubo.bin" "$work/got-by-ore.bin"; then
  echo "ok: ore got $kcid, bytes equal ($((SECONDS - start)) s)"
else
  echo "FAIL: ore did not get $kcid: $(tail -3 "$work/get.err")"
  fail=1
fi
if grep -q "receipt not countersigned" "$work/ore.log"; then
  echo "FAIL: the ore box tried to receipt Kubo's blocks:"
  grep "receipt not countersigned" "$work/ore.log" | head -3
  fail=1
fi
grep -i "free" "$work/ore.log" | head -5 || true
exit $fail
