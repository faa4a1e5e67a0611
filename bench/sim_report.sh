#!/usr/bin/env bash
# The policy comparison of docs/partitioner.md: every policy on the synthetic inference, mixed and
# training traces and on the openb-derived trace, 64 A100-40GB in nodes of 8, --node-choice
# spread, at the given offered load. Prints a markdown table.
#
#   bench/sim_report.sh [LOAD] [BUILD_DIR]      (defaults: 0.85, build/default)
set -euo pipefail
cd "$(dirname "$0")/.."
load="${1:-0.85}"
sim="${2:-build/default}/bench/tessera-sim"
cluster=a100-40gb:64
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
for mix in inference mixed training; do
  "$sim" gen-trace --mix "$mix" --cluster "$cluster" --load "$load" --count 20000 --seed 1 >"$dir/$mix.csv"
done
"$sim" openb ../shared/data/openb/openb_pod_list_default.csv --cluster "$cluster" --load "$load" \
  >"$dir/openb.csv" 2>/dev/null
echo "| trace | policy | weighted blocking % | blocking % | lower bound % | gap closed vs name-sorted | slice utilisation % | MIG creates | place p50/p99 us |"
echo "|---|---|---|---|---|---|---|---|---|"
for trace in inference mixed training openb; do
  base=""
  for policy in name-sorted first-fit best-fit fgd tessera; do
    json="$("$sim" --cluster "$cluster" --gpus-per-node 8 --trace "$dir/$trace.csv" --policy "$policy" --node-choice spread --json)"
    python3 - "$trace" "$policy" "$json" "$base" <<'PY'
import json, sys
trace, policy, d, base = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
w, lb = d["weighted_blocking_rate"], d["lower_bound_weighted_blocking_rate"]
gap = "—"
if base:
    b = float(base)
    gap = f"{(b - w) / (b - lb) * 100:.0f} %" if b > lb else "n/a"
print(f"| {trace} | {policy} | {w*100:.2f} | {d['blocking_rate']*100:.2f} | {lb*100:.2f} | {gap} | "
      f"{d['mean_slice_utilization']*100:.1f} | {d['mig_creates']} | {d['place_us_p50']:.2f}/{d['place_us_p99']:.2f} |")
PY
    [[ "$policy" == name-sorted ]] && base="$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['weighted_blocking_rate'])" "$json")"
  done
done
