#!/usr/bin/env bash
# End-to-end drill against the docker compose testnet: separate processes in
# separate containers with their own addresses, driven only through the
# `ore` CLI, curl and docker.
#
#   testnet/e2e.sh            (from anywhere; needs a Docker engine and Go)
#
# Environment: BOXES (default 6), KEEP=1 keeps the testnet for a look after
# the run, ORE_TESTNET (default: a temporary directory).
#
# Steps: up; publish a file and register it; two boxes fetch it; fetch it
# through the gateway with curl and compare bytes; wait for the block that
# pays the serving boxes; kill the Raft leader; publish and fetch again; a
# new leader finalizes the next block; the killed coordinator restarts and
# catches up; partition a box and heal it; `ore ledger verify` on every
# node with one state hash; down. A failing step prints the log of the node
# it was talking to.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

work=$(mktemp -d)
export ORE_TESTNET=${ORE_TESTNET:-$work/tn}
BOXES=${BOXES:-6}
ore="$work/ore"
node=""   # the node the current step talks to: its log is shown on failure
step_no=0
started=$(date +%s)

step() {
  step_no=$((step_no + 1))
  printf '\n[e2e %d] %s (%ss)\n' "$step_no" "$*" "$(($(date +%s) - started))"
}

on_exit() {
  code=$?
  if [ $code -ne 0 ]; then
    echo
    echo "E2E FAILED in step $step_no (exit $code)"
    if [ -f "$ORE_TESTNET/testnet.json" ]; then
      "$ore" testnet status || true
      for n in $node; do
        echo "--- log of $n ---"
        "$ore" testnet logs "$n" --tail 80 || true
      done
    fi
  fi
  if [ "${KEEP:-0}" = 1 ] && [ $code -eq 0 ]; then
    echo "kept the testnet in $ORE_TESTNET (\`ORE_TESTNET=$ORE_TESTNET $ore testnet down\` removes it)"
  elif [ -f "$ORE_TESTNET/testnet.json" ]; then
    "$ore" testnet down >/dev/null 2>&1 || echo "warning: testnet down failed; remove the ore-testnet containers by hand"
  fi
  rm -rf "$work"
  exit $code
}
trap on_exit EXIT

die() { echo "FAIL: $*" >&2; exit 1; }

# json_num FIELD: the first number value of "FIELD" in the JSON on stdin.
json_num() { grep -o "\"$1\": *[0-9]*" | head -n1 | grep -o '[0-9]*$' || true; }

# wait_for SECONDS WHAT COMMAND...: run COMMAND every second until it
# succeeds, or fail with WHAT.
wait_for() {
  local secs=$1 what=$2
  shift 2
  local deadline=$(($(date +%s) + secs))
  until "$@"; do
    [ "$(date +%s)" -lt "$deadline" ] || die "$what: not within ${secs}s"
    sleep 1
  done
}

balance() { "$ore" testnet exec "$1" ledger balance --json | json_num balance; }
height() { "$ore" testnet exec "$1" ledger balance --json | json_num height; }

step "build ore (static, for the host and the image)"
(cd "$root" && CGO_ENABLED=0 go build -trimpath -o "$ore" ./cmd/ore)

step "testnet up: 4 coordinators, a publisher, a gateway and $BOXES boxes"
node="coord0 coord1 coord2 coord3"
"$ore" testnet up --boxes "$BOXES" --binary "$ore"
url=$("$ore" testnet url)

step "publish a file on pub and register it on the ledger"
node=pub
pubrepo="$ORE_TESTNET/nodes/pub"
head -c $((24 << 20)) /dev/urandom >"$pubrepo/first.bin"
cid=$("$ore" testnet exec pub add -q /data/first.bin)
echo "root $cid"
"$ore" testnet exec pub ledger deposit 100
"$ore" testnet exec pub ledger register "$cid" --price 1
# Rules 4: the ledger pays delivery the publisher authorized. A bearer
# ticket for the file, once the registration is final.
ticket() {
  tk=$("$ore" testnet exec pub ticket "$cid" --cap 100MiB --for 1h 2>/dev/null | awk '/^ticket /{print $2}')
  [ -n "$tk" ] || return 1
  echo "ticket ${tk:0:24}…"
}
wait_for 60 "a ticket for the registered file" ticket

step "box1 and box2 fetch it under the ticket (they become providers too)"
node=box1
"$ore" testnet exec box1 get "$cid" -o /data/first.bin --ticket "$tk"
node=box2
"$ore" testnet exec box2 get "$cid" -o /data/first.bin --ticket "$tk"
cmp "$pubrepo/first.bin" "$ORE_TESTNET/nodes/box1/first.bin"
cmp "$pubrepo/first.bin" "$ORE_TESTNET/nodes/box2/first.bin"

step "fetch it through the gateway with curl, compare bytes"
node=gw
curl -fsS --max-time 120 -o "$work/via-gateway.bin" -w 'HTTP %{http_code}, %{size_download} bytes, first byte after %{time_starttransfer}s\n' "$url/ipfs/$cid?ore-ticket=$tk"
cmp "$pubrepo/first.bin" "$work/via-gateway.bin" || die "the gateway's bytes differ from the published file"
curl -fsS --max-time 60 -r 1000-1999 -o "$work/range.bin" "$url/ipfs/$cid"
cmp <(tail -c +1001 "$pubrepo/first.bin" | head -c 1000) "$work/range.bin" || die "the gateway's range differs"
echo "range 1000-1999 matches"

step "wait for the block that pays the serving boxes"
node="coord0 coord1 coord2 coord3 box1 box2"
paid() {
  local b1 b2
  b1=$(balance box1) b2=$(balance box2)
  [ "${b1:-0}" -gt 0 ] || [ "${b2:-0}" -gt 0 ] || return 1
  echo "box1 earned $b1, box2 earned $b2 (base units, 1 ore = 10^9)"
}
wait_for 90 "a block paying box1 or box2" paid
"$ore" testnet exec pub ledger balance

step "kill the Raft leader (SIGKILL)"
leader=$("$ore" testnet leader)
node=$leader
h0=$(height "$leader")
echo "leader $leader at height $h0"
"$ore" testnet kill "$leader"
killed_at=$(date +%s)
new_leader() {
  local l
  l=$("$ore" testnet leader 2>/dev/null) || return 1
  [ "$l" != "$leader" ] || return 1
  echo "new leader $l after $(($(date +%s) - killed_at))s"
  newleader=$l
}
node="coord0 coord1 coord2 coord3"
wait_for 30 "a new leader" new_leader

step "publish a second file, fetch it through the gateway"
node="pub gw"
head -c $((8 << 20)) /dev/urandom >"$pubrepo/second.bin"
cid2=$("$ore" testnet exec pub add -q /data/second.bin)
"$ore" testnet exec pub ledger register "$cid2" --price 1
node=box3
"$ore" testnet exec box3 get "$cid2" -o /data/second.bin
node=gw
curl -fsS --max-time 120 -o "$work/second.bin" "$url/ipfs/$cid2"
cmp "$pubrepo/second.bin" "$work/second.bin" || die "the gateway's bytes differ from the second file"
echo "second file $cid2 matches"

step "the new leader finalizes the next block"
node=$newleader
finalized() {
  local out
  out=$("$ore" testnet exec "$newleader" ledger blocks --from $((h0 + 1)) --json)
  echo "$out" | grep -q '"final":true' || return 1
  echo "height $(height "$newleader") on $newleader"
}
wait_for 60 "a final block after height $h0" finalized

step "restart the killed coordinator on its disk; it catches up"
node=$leader
"$ore" testnet start "$leader"
caught_up() {
  local a b
  a=$(height "$leader" 2>/dev/null) || return 1
  b=$(height "$newleader") || return 1
  [ -n "$a" ] && [ "$a" -ge "$b" ] || return 1
  echo "$leader at height $a, $newleader at $b"
}
wait_for 60 "$leader back at the committee's height" caught_up

step "partition box1, then heal it"
node=box1
"$ore" testnet partition box1
"$ore" testnet status | grep -E '^(NODE|box1)'
"$ore" testnet status | grep -E '^box1 .*partitioned' >/dev/null || die "box1 does not show as partitioned"
curl -fsS --max-time 120 -o "$work/again.bin" "$url/ipfs/$cid"
cmp "$pubrepo/first.bin" "$work/again.bin" || die "the gateway's bytes differ while box1 is cut off"
echo "the gateway still serves the first file"
"$ore" testnet heal box1
rejoined() {
  local p
  p=$("$ore" testnet exec box1 status --json | json_num peers)
  [ "${p:-0}" -gt 0 ] || return 1
  echo "box1 is connected to $p peers again"
}
wait_for 60 "box1 back among its peers" rejoined

step "ore ledger verify on every node: one state hash"
node="coord0 coord1 coord2 coord3"
"$ore" testnet verify

step "down"
node=""
"$ore" testnet down
echo
echo "E2E PASSED in $(($(date +%s) - started))s"
