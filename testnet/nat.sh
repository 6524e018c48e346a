#!/usr/bin/env bash
# NAT drill: ore boxes behind real NAT routers, made of Linux network
# namespaces and iptables rules, driven only through the `ore` CLI.
#
#   testnet/nat.sh            as root; 64 MiB files
#   testnet/nat.sh --short    8 MiB files (CI)
#
# Needs root, iproute2 and iptables; miniupnpd (Debian's miniupnpd-iptables,
# installed with apt-get when missing) for the UPnP router. Where network
# namespaces cannot be made (no root, a container without CAP_NET_ADMIN),
# it prints SKIPPED with the reason and exits 0. Environment: ORE_BIN (an
# ore binary; default: build one, static), KEEP=1 keeps the work directory,
# LOG_LEVEL=debug has the daemons log at that level (default info).
#
# The network. An "internet" bridge in a namespace of its own, on
# 11.99.0.0/24 and 2a99::/64: addresses that go-libp2p takes for public
# (AutoNAT and hole punching ignore private ranges), which never leave the
# namespaces. On it:
#   boot       11.99.0.10, 2a99::10   the public bootstrap box (a relay once AutoNAT finds it public)
#   client     11.99.0.20, 2a99::20   a public dual-stack box that fetches from every home box
#   pub        11.99.0.30, 2a99::30   a third public box: one more that dials a box back for
#              AutoNAT v2, which confirms an address after two dial-backs and asks
#              one box once in 2 minutes (the dual-stack box's IPv6 address waits
#              minutes for a verdict with two such boxes)
#   a router per home, its WAN on 11.99.0.10x, its LAN 192.168.N.0/24 with one box at .10:
#   cone       port-preserving MASQUERADE (endpoint-independent mapping, as
#              most home routers): hole punching passes
#   cone2      the same, a second home, for the pair that must punch a hole
#   symmetric  MASQUERADE --random-fully: a new port for every destination,
#              which defeats hole punching
#   upnp       port-preserving MASQUERADE plus miniupnpd (UPnP IGD, NAT-PMP):
#              the box maps its port and is reachable directly
#   dualstack  IPv4 behind MASQUERADE --random-fully (symmetric), IPv6
#              routed without NAT (2a99:5::/64, the box at 2a99:5::10, its
#              port open as on a router with no IPv6 firewall or one that
#              opens it): the client reaches it directly over IPv6
# Every router drops unsolicited inbound IPv4 traffic (as a home router
# does), except what miniupnpd forwards.
#
# The drill: every home box waits until `ore status` says it is reachable
# (mapped, or private with a relay) and its heat reports say what its NAT
# is (nat, symmetric-nat, direct); for each pair of home NATs each box
# adds a file of its own and the other fetches it (both ways); the public
# client fetches a file from each home box; bytes compared. One line per
# transfer: fetched or not, the time of the whole get and to its first
# byte (from the fetch's start: DHT look-up, dials, hole punch, first
# round trip), the share of the block bytes the fetching box received
# over direct connections (ore_block_bytes_total by path, before and
# after), the hole punches both boxes started and those that succeeded
# meanwhile, and how the fetching box is connected to the serving one at
# the end (direct over IPv4 or IPv6, or through a relay only).
#
# A pair of boxes behind a symmetric NAT and another NAT has no direct
# path; relays carry signalling, never blocks (a relayed connection is
# limited to 128 KiB), so that pair does not fetch: the line says why
# (ore get's error: no direct path, the provider found and reached through
# a relay only), and it does not fail the drill unless the get failed for
# another reason. Every other transfer must succeed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

size=$((64 << 20))
if [ "${1:-}" = "--short" ]; then size=$((8 << 20)); shift; fi
[ $# -eq 0 ] || { echo "usage: testnet/nat.sh [--short]" >&2; exit 2; }

skip() { echo "SKIPPED: $*"; exit 0; }
die() { echo "FAIL: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || skip "the NAT drill needs root (network namespaces, iptables)"
command -v ip >/dev/null 2>&1 || skip "no ip command (Debian: apt-get install iproute2)"
command -v iptables >/dev/null 2>&1 || skip "no iptables (Debian: apt-get install iptables)"

P="orenat$$" # namespace prefix: several drills may run on one machine
probe="$P-probe"
if ! err=$(ip netns add "$probe" 2>&1); then
  skip "cannot make a network namespace here ($err)"
fi
if ! err=$(ip netns exec "$probe" iptables -t nat -L -n 2>&1 >/dev/null); then
  ip netns del "$probe"
  skip "iptables does not work in a network namespace here ($err)"
fi
ip netns del "$probe"

work=$(mktemp -d)
namespaces=()
pids=()
started=$(date +%s)
on_exit() {
  code=$?
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ $code -ne 0 ]; then
    echo
    echo "NAT DRILL FAILED (exit $code); the boxes' logs end with:"
    for f in "$work"/*.log; do
      [ -f "$f" ] || continue
      echo "--- $(basename "$f") ---"
      tail -n 25 "$f"
    done
  fi
  # Whatever still runs in the namespaces (a daemon a failed step left)
  # goes with them: a process left behind keeps the namespace, and the
  # files the drill was started with (a lock held with flock(1)).
  for n in "${namespaces[@]}"; do
    for p in $(ip netns pids "$n" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
    ip netns del "$n" 2>/dev/null || true
  done
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
  exit $code
}
trap on_exit EXIT

say() { printf '[nat %3ss] %s\n' "$(($(date +%s) - started))" "$*"; }
nx() { local n=$1; shift; ip netns exec "$P-$n" "$@"; }
mkns() { ip netns add "$P-$1"; namespaces+=("$P-$1"); nx "$1" ip link set lo up; }

# json_str FIELD: the first string value of "FIELD" in the JSON on stdin.
json_str() { grep -o "\"$1\": *\"[^\"]*\"" | head -n1 | sed 's/.*: *"\(.*\)"/\1/' || true; }

if [ -n "${ORE_BIN:-}" ]; then
  ore=$(readlink -f "$ORE_BIN")
else
  say "build ore (static)"
  (cd "$root" && CGO_ENABLED=0 go build -trimpath -o "$work/ore" ./cmd/ore)
  ore="$work/ore"
fi

upnp=yes
if ! command -v miniupnpd >/dev/null 2>&1; then
  (apt-get install -y -qq miniupnpd-iptables >/dev/null 2>&1 || true)
fi
command -v miniupnpd >/dev/null 2>&1 || upnp="no (miniupnpd is not installed and apt-get could not install miniupnpd-iptables)"
if [ "$upnp" = yes ] && ! command -v iptables-legacy >/dev/null 2>&1; then
  upnp="no (miniupnpd-iptables writes the legacy iptables tables: no iptables-legacy here)"
fi

say "network: an internet bridge, three public boxes, five home routers"
mkns net
nx net ip link add br0 type bridge
nx net ip link set br0 up

# public NAME IP [IP6]: a namespace on the internet bridge.
public() {
  mkns "$1"
  ip link add eth0 netns "$P-$1" type veth peer name "v-$1" netns "$P-net"
  nx net ip link set "v-$1" master br0 up
  nx "$1" ip addr add "$2/24" dev eth0
  if [ -n "${3:-}" ]; then
    nx "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.eth0.disable_ipv6=0
    nx "$1" ip -6 addr add "$3/64" dev eth0 nodad
  fi
  nx "$1" ip link set eth0 up
}

# home KIND N: a router namespace r-KIND (WAN 11.99.0.10N) and a home
# namespace KIND (192.168.N.10) behind it, NATed the KIND way.
home() {
  local kind=$1 n=$2 ipt=iptables
  [ "$kind" = upnp ] && ipt=iptables-legacy # the tables miniupnpd writes
  public "r-$kind" "11.99.0.10$n"
  mkns "$kind"
  ip link add lan0 netns "$P-r-$kind" type veth peer name eth0 netns "$P-$kind"
  nx "r-$kind" ip addr add "192.168.$n.1/24" dev lan0
  nx "r-$kind" ip link set lan0 up
  nx "$kind" ip addr add "192.168.$n.10/24" dev eth0
  nx "$kind" ip link set eth0 up
  nx "$kind" ip route add default via "192.168.$n.1"
  nx "r-$kind" sysctl -qw net.ipv4.ip_forward=1
  # A home router: the LAN goes out, only replies come in, and what comes
  # unasked from the internet is dropped, not answered: a router that
  # answered a hole-punching SYN with a reset, or took a punching UDP
  # packet for itself (conntrack then holds its port, and the box's own
  # packet out gets another), would break what real routers let through.
  nx "r-$kind" $ipt -A INPUT -i eth0 -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
  nx "r-$kind" $ipt -A INPUT -i eth0 -j DROP
  nx "r-$kind" $ipt -A FORWARD -i lan0 -o eth0 -j ACCEPT
  nx "r-$kind" $ipt -A FORWARD -i eth0 -o lan0 -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
  nx "r-$kind" $ipt -P FORWARD DROP
  case $kind in
  symmetric | dualstack)
    # A new external port for every destination (endpoint-dependent
    # mapping): the port a relay saw is not the one another box sees.
    nx "r-$kind" $ipt -t nat -A POSTROUTING -o eth0 -j MASQUERADE --random-fully ;;
  *)
    # Linux keeps the source port when it is free: the same external
    # port for every destination (endpoint-independent mapping).
    nx "r-$kind" $ipt -t nat -A POSTROUTING -o eth0 -j MASQUERADE ;;
  esac
}

public boot 11.99.0.10 2a99::10
public client 11.99.0.20 2a99::20
public pub 11.99.0.30 2a99::30
home cone 1
home cone2 2
home symmetric 3
kinds="cone cone2 symmetric"

# The dual-stack home: a symmetric NAT on IPv4, IPv6 routed to the box.
home dualstack 5
nx r-dualstack sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.all.forwarding=1
nx r-dualstack ip -6 addr add 2a99::105/64 dev eth0 nodad
nx r-dualstack ip -6 addr add 2a99:5::1/64 dev lan0 nodad
nx dualstack sysctl -qw net.ipv6.conf.all.disable_ipv6=0
nx dualstack ip -6 addr add 2a99:5::10/64 dev eth0 nodad
nx dualstack ip -6 route add default via 2a99:5::1
for n in boot client pub; do nx "$n" ip -6 route add 2a99:5::/64 via 2a99::105; done
kinds="$kinds dualstack"
if [ "$upnp" = yes ]; then
  home upnp 4
  # miniupnpd's chains, as its iptables_init.sh makes them.
  r() { nx r-upnp iptables-legacy "$@"; }
  r -t nat -N MINIUPNPD
  r -t nat -I PREROUTING -i eth0 -j MINIUPNPD
  r -t mangle -N MINIUPNPD
  r -t mangle -I PREROUTING -i eth0 -j MINIUPNPD
  r -t filter -N MINIUPNPD
  r -t filter -I FORWARD -i eth0 ! -o eth0 -j MINIUPNPD
  r -t nat -N MINIUPNPD-POSTROUTING
  r -t nat -I POSTROUTING -o eth0 -j MINIUPNPD-POSTROUTING
  cat >"$work/miniupnpd.conf" <<EOF
ext_ifname=eth0
listening_ip=lan0
port=0
enable_natpmp=yes
enable_upnp=yes
secure_mode=yes
system_uptime=yes
uuid=3e1bc6a0-5a0b-4c7e-9d2c-6f0e3d1c9b7a
allow 1024-65535 192.168.4.0/24 1024-65535
deny 0-65535 0.0.0.0/0 0-65535
EOF
  nx r-upnp miniupnpd -f "$work/miniupnpd.conf" -d -P "$work/miniupnpd.pid" >"$work/miniupnpd.log" 2>&1 &
  pids+=($!)
  kinds="$kinds upnp"
else
  say "UPnP router: $upnp"
fi

# init NAME [BOOTSTRAP]: a repo for the box in namespace NAME with the
# defaults a user gets (listen on 0.0.0.0 and :: port 4601, port mapping
# on); prints its peer ID.
init() {
  local args=(init --repo "$work/$1")
  [ -n "${2:-}" ] && args+=(--bootstrap "$2")
  nx "$1" "$ore" "${args[@]}" | sed -n 's/^peer ID //p'
}
# run NAME: start its daemon.
run() {
  nx "$1" "$ore" daemon --repo "$work/$1" --log-level "${LOG_LEVEL:-info}" >"$work/$1.out" 2>"$work/$1.log" &
  pids+=($!)
}
# wait_ready NAME: until the daemon said it is ready, at most 60 s.
wait_ready() {
  for _ in $(seq 1 300); do
    grep -q "ore daemon ready" "$work/$1.out" 2>/dev/null && return 0
    sleep 0.2
  done
  die "box $1 did not start"
}
status() { nx "$1" "$ore" status --repo "$work/$1" "${@:2}"; }
state() { status "$1" --json 2>/dev/null | json_str state; }

say "boxes: start boot, then the other public boxes and the home boxes"
declare -A id
id[boot]=$(init boot)
run boot
wait_ready boot
# Boot's IPv6 and IPv4 addresses, as a real bootstrap list carries both.
# go-libp2p dials IPv6 QUIC first and IPv4 QUIC a moment later, so:
# - the dual-stack box connects to the public boxes over IPv6, and their
#   AutoNAT dial-backs test its IPv6 address (AutoNAT v1 dials back only
#   the IP a connection comes from; v2 asks each server once in 2 minutes
#   and wants two confirmations, so over IPv4 alone the box waited minutes
#   for one);
# - the IPv4-only home boxes fail the IPv6 dial at once (no route) and use
#   QUIC over IPv4: their connections to boot and to the client are of one
#   transport, and two observers of one transport tell a box its NAT's kind
#   (see node/natkind.go).
boot_addr="/ip6/2a99::10/udp/4601/quic-v1/p2p/${id[boot]},/ip6/2a99::10/tcp/4601/p2p/${id[boot]}"
boot_addr="$boot_addr,/ip4/11.99.0.10/udp/4601/quic-v1/p2p/${id[boot]},/ip4/11.99.0.10/tcp/4601/p2p/${id[boot]}"
for k in client pub $kinds; do
  id[$k]=$(init "$k" "$boot_addr")
  run "$k"
done
for k in client pub $kinds; do wait_ready "$k"; done

# A home box serves once it is reachable: mapped, or private with a relay
# reservation (AutoNAT decides after a dial-back, seconds after the first
# connection; a reservation takes a round trip more).
say "wait until every box is reachable (ore status), at most 120 s"
t_start=$(date +%s)
waiting="client pub $kinds"
while [ -n "$waiting" ]; do
  still=""
  for k in $waiting; do
    s=$(state "$k")
    case "$k:$s" in
    client:public | pub:public | dualstack:public | *:mapped | *:private-relayed)
      say "$(printf '%-10s %-16s %3ss after the boxes started' "$k" "$s" "$(($(date +%s) - t_start))")" ;;
    *) still="$still $k" ;;
    esac
  done
  waiting=${still# }
  [ -z "$waiting" ] && break
  if [ "$(date +%s)" -ge $((t_start + 120)) ]; then
    for k in $waiting; do status "$k" || true; done
    die "not reachable after 120 s: $waiting"
  fi
  sleep 1
done
# What each home box's heat reports tell the committee: a box behind a
# symmetric NAT says so (the planner orders it no replicas that boxes
# behind NATs would need), unless boxes reach it directly (a mapped port,
# IPv6). It takes two boxes observing its address (identify), and
# AutoNAT v2's dial-backs for the addresses it confirms.
declare -A want_reach=([cone]=nat [cone2]=nat [symmetric]=symmetric-nat [upnp]=direct [dualstack]=direct)
say "wait until every home box's heat reports say what its NAT is, at most 60 s"
t_reach=$(date +%s)
waiting="$kinds"
while [ -n "$waiting" ]; do
  still=""
  for k in $waiting; do
    r=$(status "$k" --json 2>/dev/null | json_str report_reach)
    if [ "$r" = "${want_reach[$k]}" ]; then
      say "$(printf '%-10s heat reports say %-14s %3ss later' "$k" "$r" "$(($(date +%s) - t_reach))")"
    else
      still="$still $k"
    fi
  done
  waiting=${still# }
  [ -z "$waiting" ] && break
  if [ "$(date +%s)" -ge $((t_reach + 60)) ]; then
    for k in $waiting; do status "$k" || true; done
    die "heat reports do not say the NAT's kind after 60 s: $waiting"
  fi
  sleep 1
done
if [ "$upnp" = yes ]; then
  echo "--- ore status of the UPnP box ---"
  status upnp | sed -n '/^reach/,/^storage/p' | sed '$d'
fi

secs() { awk "BEGIN { printf \"%.2f\", $2 - $1 }"; }

# json_num FIELD: the first number value of "FIELD" in the JSON on stdin.
json_num() { grep -o "\"$1\": *[0-9]*" | head -n1 | sed 's/.*: *//' || true; }
# counters NAME: "received_direct received_holepunched received_relayed
# attempts successes direct_dials direct_dials_ok" of the box, from ore
# status --json.
counters() {
  local j f
  j=$(status "$1" --json 2>/dev/null)
  for f in received_direct received_holepunched received_relayed attempts successes direct_dials direct_dials_ok; do
    printf '%s ' "$(json_num "$f" <<<"$j")"
  done
}
# punches: "S of A, dials back D of T" from the counters before and after
# of both boxes (a0 b0 a1 b1).
punches() {
  echo "$((a1[4] - a0[4] + b1[4] - b0[4])) of $((a1[3] - a0[3] + b1[3] - b0[3])), dials back $((a1[6] - a0[6] + b1[6] - b0[6])) of $((a1[5] - a0[5] + b1[5] - b0[5]))"
}

# transfer FROM TO: FROM adds a file of its own, TO fetches it; one line.
failures=0
results=()
transfer() {
  local from=$1 to=$2 f="$work/$1-for-$2.bin" root t0 t1 how peers line ttfb share punch
  local -a a0 b0 a1 b1
  head -c "$size" /dev/urandom >"$f"
  root=$(nx "$from" "$ore" add -q --repo "$work/$from" "$f")
  read -ra a0 <<<"$(counters "$to")"
  read -ra b0 <<<"$(counters "$from")"
  t0=$(date +%s.%N)
  if nx "$to" "$ore" get --repo "$work/$to" --timeout 60s -o "$work/$to-got-$from.bin" "$root" >/dev/null 2>"$work/$to-get-$from.err"; then
    t1=$(date +%s.%N)
    cmp -s "$f" "$work/$to-got-$from.bin" || die "$to got other bytes than $from added"
    read -ra a1 <<<"$(counters "$to")"
    read -ra b1 <<<"$(counters "$from")"
    peers=$(nx "$to" "$ore" peers --repo "$work/$to" | grep "/p2p/${id[$from]}" || true)
    if grep -v p2p-circuit <<<"$peers" | grep -q /ip6/; then how="direct (IPv6)"
    elif grep -qv p2p-circuit <<<"$peers"; then how="direct (IPv4)"
    elif [ -n "$peers" ]; then how="relayed only"
    else how="not connected any more"; fi
    ttfb=$(sed -n 's/.*first byte after \([0-9.]*\) s.*/\1/p' "$work/$to-get-$from.err" | tail -n1)
    share=$(awk -v d=$((a1[0] - a0[0])) -v h=$((a1[1] - a0[1])) -v r=$((a1[2] - a0[2])) \
      'BEGIN { t = d + h + r; if (t == 0) print "-"; else printf "%.1f%% (%.1f%% punched)", 100 * (d + h) / t, 100 * h / t }')
    punch=$(punches)
    line=$(printf '%-10s -> %-10s fetched      %4d MiB in %6.2f s, first byte %5s s, direct %-22s hole punches %s; %s' \
      "$from" "$to" $((size >> 20)) "$(secs "$t0" "$t1")" "${ttfb:--}" "$share" "$punch" "$how")
  else
    t1=$(date +%s.%N)
    read -ra a1 <<<"$(counters "$to")"
    read -ra b1 <<<"$(counters "$from")"
    punch=$(punches)
    local why
    why=$(tail -n1 "$work/$to-get-$from.err")
    line=$(printf '%-10s -> %-10s NOT fetched  after %6.2f s, hole punches %s; %s' "$from" "$to" "$(secs "$t0" "$t1")" "$punch" "$why")
    # A symmetric NAT against another NAT: the fetch must fail for that
    # reason (the provider found, reached through a relay only, no hole
    # punched), not another (no provider record, a box down).
    case "$from:$to:$why" in
    symmetric:cone*:*"no direct path"* | cone*:symmetric:*"no direct path"*)
      line="$line (expected: a symmetric NAT against another NAT has no direct path)" ;;
    symmetric:cone*:* | cone*:symmetric:*)
      line="$line (a symmetric NAT against another NAT has no direct path, but this get failed for another reason)"
      failures=$((failures + 1)) ;;
    *) failures=$((failures + 1)) ;;
    esac
  fi
  results+=("$line")
  say "$line"
}

say "home boxes trade files, both ways, per pair of NATs"
pairs="cone:cone2 cone:symmetric"
[ "$upnp" = yes ] && pairs="$pairs cone:upnp symmetric:upnp"
for p in $pairs; do
  a=${p%%:*} b=${p##*:}
  transfer "$a" "$b"
  transfer "$b" "$a"
done
say "the public client fetches from every home box"
for k in $kinds; do transfer "$k" client; done
grep -q "^dualstack  -> client .*direct (IPv6)" <<<"$(printf '%s\n' "${results[@]}")" ||
  die "the client did not fetch from the dual-stack box over IPv6"

echo
echo "--- reachability and hole punching, per box ---"
for k in boot client pub $kinds; do
  printf '%-10s %s\n' "$k" "$(status "$k" --json | grep -o '"hole_punch":{[^}]*}' || true)"
  status "$k" | sed -n '/^reach/,/^storage/p' | sed '$d' | sed 's/^/           /'
done
echo
echo "NAT drill $(date -u +%Y-%m-%dT%H:%MZ), $((size >> 20)) MiB files, UPnP router: $upnp"
printf '%s\n' "${results[@]}"
[ "$failures" -eq 0 ] || die "$failures transfers that should work did not"
echo "NAT drill passed in $(($(date +%s) - started)) s"
