#!/usr/bin/env bash
# LIST of 5,000 ResourceSlices from a real API server: tessera's client vs kubectl, side by side on
# the same server (target: tessera within 1.5x of kubectl). Starts its own control plane with
# testenv, fills it, times each client REPEAT times and prints the medians and their ratio.
#
#   bench/list_bench.sh [COUNT] [REPEAT] [BUILD_DIR]     (defaults: 5000, 5, build/default)
set -euo pipefail
cd "$(dirname "$0")/.."
count="${1:-5000}"
repeat="${2:-5}"
build="${3:-build/default}"
testenv="$build/testenv/testenv"
[[ -x "$testenv" ]] || { echo "list_bench: $testenv not built (needs Go)"; exit 1; }
dir="$(mktemp -d /tmp/tessera-listbench-XXXX)"
"$testenv" up --dir "$dir" --nodes n0 >"$dir/up.out" 2>&1 &
up=$!
trap 'kill $up 2>/dev/null; wait $up 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 240); do
  grep -q '^READY' "$dir/up.out" && break
  grep -q '^FAILED' "$dir/up.out" && { cat "$dir/up.out"; exit 1; }
  sleep 0.5
done
kubeconfig="$dir/admin.kubeconfig"
"$build/bench/kube-list-bench" --kubeconfig "$kubeconfig" --create "$count" --repeat 1 >/dev/null
ours="$("$build/bench/kube-list-bench" --kubeconfig "$kubeconfig" --repeat "$repeat")"
echo "$ours"
python3 - "$testenv" "$kubeconfig" "$repeat" "$ours" <<'PY'
import re, statistics, subprocess, sys, time
testenv, kubeconfig, repeat, ours = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
times = []
for _ in range(repeat):
    began = time.monotonic()
    subprocess.run([testenv, "kubectl", "--kubeconfig", kubeconfig, "get", "resourceslices", "-o", "json"],
                   stdout=subprocess.DEVNULL, check=True)
    times.append((time.monotonic() - began) * 1000)
kubectl = statistics.median(times)
mine = float(re.search(r"median ([0-9.]+) ms", ours).group(1))
print(f"kubectl get resourceslices -o json: median {kubectl:.1f} ms over {repeat} runs")
print(f"ratio tessera/kubectl: {mine / kubectl:.2f} (target <= 1.5)")
PY
