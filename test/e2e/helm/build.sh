#!/usr/bin/env bash
# Builds the helm command from its Go module (pinned in go.mod/go.sum next to this script) for the
# chart tests: helm lint, helm template and the rendered-manifest sync check.
#
#   test/e2e/helm/build.sh OUTPUT
set -euo pipefail
out="${1:?usage: build.sh OUTPUT}"
cd "$(dirname "$0")"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false
version="$(go list -m -f '{{.Version}}' helm.sh/helm/v4)"
go build -ldflags="-s -w -X helm.sh/helm/v4/internal/version.version=${version}" -o "$out" \
  helm.sh/helm/v4/cmd/helm
