#!/usr/bin/env bash
# Runs the test suite N times with a CPU hog beside it and prints, per
# package, how many runs passed. A test that fails here fails a newcomer's
# first `go test ./...` on a busy laptop.
#
#   scripts/stress-tests.sh [-n RUNS] [-hog WORKERS] [-log DIR] [PACKAGES] [-- GO TEST FLAGS]
#
#   -n RUNS       how many times (default 5)
#   -hog WORKERS  CPU-bound processes beside the suite (default: one per
#                 core; 0 for none)
#   -log DIR      where each run's output goes (default: a temporary dir)
#   PACKAGES      default ./...
#   GO TEST FLAGS e.g. -- -run 'Fetch|Committee' -count=20
#
# The exit status is 0 only if every run of every package passed.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=5
hog=$(nproc)
logdir=""
pkgs=()
flags=()
while [ $# -gt 0 ]; do
  case "$1" in
    -n) runs=$2; shift 2 ;;
    -hog) hog=$2; shift 2 ;;
    -log) logdir=$2; shift 2 ;;
    --) shift; flags=("$@"); break ;;
    *) pkgs+=("$1"); shift ;;
  esac
done
[ ${#pkgs[@]} -eq 0 ] && pkgs=(./...)
[ -z "$logdir" ] && logdir=$(mktemp -d -t ore-stress.XXXXXX)
mkdir -p "$logdir"

hogs=()
stop_hogs() {
  for p in "${hogs[@]}"; do kill "$p" 2>/dev/null || true; done
}
trap stop_hogs EXIT
for _ in $(seq 1 "$hog"); do
  # A busy loop in the shell itself: CPU-bound, no I/O, nothing to install.
  ( while :; do :; done ) &
  hogs+=($!)
done

echo "stress: ${runs} runs of go test -count=1 ${flags[*]:-} ${pkgs[*]} beside ${hog} CPU hogs on $(nproc) cores; logs in ${logdir}"
declare -A pass fail
start=$(date +%s)
for i in $(seq 1 "$runs"); do
  t0=$(date +%s)
  out="$logdir/run-$i.log"
  go test -count=1 "${flags[@]}" "${pkgs[@]}" >"$out" 2>&1 || true
  while read -r verdict pkg _; do
    case "$verdict" in
      ok) pass[$pkg]=$(( ${pass[$pkg]:-0} + 1 )) ;;
      FAIL) fail[$pkg]=$(( ${fail[$pkg]:-0} + 1 )) ;;
    esac
  done < <(grep -E '^(ok|FAIL)[[:space:]]+[^[:space:]]+' "$out" | awk '{print $1, $2}')
  echo "run $i: $(grep -c '^ok' "$out") packages ok, $(grep -c '^FAIL[[:space:]]' "$out") failed, $(( $(date +%s) - t0 )) s"
  grep -E '^--- FAIL' "$out" | sed 's/^/    /' || true
done

echo
printf '%-45s %s\n' package passed
bad=0
for pkg in $(printf '%s\n' "${!pass[@]}" "${!fail[@]}" | sort -u); do
  p=${pass[$pkg]:-0}
  printf '%-45s %d/%d\n' "$pkg" "$p" "$runs"
  [ "$p" -eq "$runs" ] || bad=1
done
echo "stress: $(( $(date +%s) - start )) s in all"
exit $bad
