#!/usr/bin/env bash
# Builds the testenv multi-call binary.
#
#   test/e2e/testenv/build.sh OUTPUT
#
# Stamps the pinned Kubernetes version into the binary the way release builds do (-X on
# component-base's and client-go's version variables), so GET /version and `kubectl version`
# report v1.36.x rather than "v0.0.0-master": tessera picks its ResourceSlice layout from it.
set -euo pipefail
out="${1:?usage: build.sh OUTPUT}"
cd "$(dirname "$0")"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false

version="$(go list -m -f '{{.Version}}' k8s.io/kubernetes)"
[[ "$version" =~ ^v([0-9]+)\.([0-9]+)\.[0-9]+$ ]] || { echo "build.sh: unexpected k8s.io/kubernetes version '$version'" >&2; exit 1; }
major="${BASH_REMATCH[1]}" minor="${BASH_REMATCH[2]}"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X ${pkg}.gitVersion=${version} -X ${pkg}.gitMajor=${major} -X ${pkg}.gitMinor=${minor}"
  ldflags+=" -X ${pkg}.gitTreeState=clean -X ${pkg}.buildDate=1970-01-01T00:00:00Z"
done
go build -ldflags="$ldflags" -o "$out" .
