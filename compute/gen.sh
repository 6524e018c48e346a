#!/bin/sh
# Regenerates testdata/fn.wasm.gz, the compute package's test function, from
# testdata/fn/main.go: a WASI preview 1 command (GOOS=wasip1 GOARCH=wasm),
# built without symbols or DWARF (-s -w) and with -trimpath so the build
# does not depend on the checkout's path; gzip -n leaves out the name and
# time, so the same source gives the same file.
set -e
cd "$(dirname "$0")"
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
GOOS=wasip1 GOARCH=wasm CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$tmp" ./testdata/fn
gzip -9 -n -c "$tmp" > testdata/fn.wasm.gz
ls -l "$tmp" testdata/fn.wasm.gz
