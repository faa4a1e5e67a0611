#!/usr/bin/env bash
# Re-pin the test environment to one Kubernetes patch release.
#
#   test/e2e/testenv/pin.sh v1.36.3
#
# Reads the replace block of k8s.io/kubernetes' own go.mod for that release, replaces every
# staging module (./staging/src/k8s.io/<name>) with its published v0.<minor>.<patch> tag, and runs
# `go mod tidy`. Run only when changing the pin; commit go.mod and go.sum afterwards.
set -euo pipefail
export GOTOOLCHAIN=local
version="${1:?usage: pin.sh v1.MINOR.PATCH}"
[[ "$version" =~ ^v1\.([0-9]+)\.([0-9]+)$ ]] || { echo "pin.sh: '$version' is not v1.MINOR.PATCH" >&2; exit 2; }
staging_version="v0.${BASH_REMATCH[1]}.${BASH_REMATCH[2]}"
cd "$(dirname "$0")"

gomod="$(go mod download -json "k8s.io/kubernetes@${version}" |
  sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
[[ -f "$gomod" ]] || { echo "pin.sh: could not find go.mod of k8s.io/kubernetes@${version}" >&2; exit 1; }

modules="$(sed -n 's#^[[:space:]]*\(k8s\.io/[A-Za-z0-9._-]*\) => \./staging/src/.*#\1#p' "$gomod" | sort -u)"
[[ -n "$modules" ]] || { echo "pin.sh: no staging replaces found in $gomod" >&2; exit 1; }

go mod edit -require="k8s.io/kubernetes@${version}"
for m in $modules; do
  go mod edit -replace="${m}=${m}@${staging_version}"
done
go mod tidy
echo "pinned k8s.io/kubernetes ${version}; $(echo "$modules" | wc -l) staging modules at ${staging_version}"
