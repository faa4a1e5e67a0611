#!/usr/bin/env bash
# The policy comparison of docs/partitioner.md: every policy on the synthetic inference, mixed and
# training traces and on the openb-derived trace (its own arrival times, and its tasks at Poisson
# arrivals averaged over seeds 1-5), 64 A100-40GB in nodes of 8, --node-choice spread, at the given
# offered load. Prints a markdown table.
#
#   bench/sim_report.sh [LOAD] [BUILD_DIR]      (defaults: 0.85, build/default)
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 - "${1:-0.85}" "${2:-build/default}/bench/tessera-sim" <<'PY'
import json, os, subprocess, sys, tempfile

load, sim = sys.argv[1], sys.argv[2]
cluster = "a100-40gb:64"
policies = ["name-sorted", "first-fit", "best-fit", "fgd", "tessera"]
openb = "../shared/data/openb/openb_pod_list_default.csv"
tmp = tempfile.mkdtemp()

def write(name, args):
    path = os.path.join(tmp, name + ".csv")
    with open(path, "w") as out:
        subprocess.run([sim] + args, stdout=out, stderr=subprocess.DEVNULL, check=True)
    return path

traces = {}
for mix in ["inference", "mixed", "training"]:
    traces[mix] = [write(mix, ["gen-trace", "--mix", mix, "--cluster", cluster, "--load", load,
                               "--count", "20000", "--seed", "1"])]
traces["openb (trace times)"] = [write("openb-trace", ["openb", openb, "--cluster", cluster, "--load", load,
                                                       "--arrivals", "trace"])]
traces["openb (Poisson, 5 seeds)"] = [
    write(f"openb-poisson-{s}", ["openb", openb, "--cluster", cluster, "--load", load, "--arrivals", "poisson",
                                 "--seed", str(s)]) for s in range(1, 6)]

def run(path, policy):
    out = subprocess.run([sim, "--cluster", cluster, "--gpus-per-node", "8", "--trace", path, "--policy", policy,
                          "--node-choice", "spread", "--json"], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)

print("| trace | policy | weighted blocking % | blocking % | lower bound % | gap closed vs name-sorted | "
      "slice utilisation % | MIG creates | place p50/p99 us |")
print("|---|---|---|---|---|---|---|---|---|")
for name, paths in traces.items():
    base = None
    for policy in policies:
        runs = [run(p, policy) for p in paths]
        avg = {k: sum(r[k] for r in runs) / len(runs) for k in runs[0]}
        w, lb = avg["weighted_blocking_rate"], avg["lower_bound_weighted_blocking_rate"]
        gap = "—"
        if base is not None:
            gap = f"{(base - w) / (base - lb) * 100:.0f} %" if base > lb else "n/a"
        else:
            base = w
        print(f"| {name} | {policy} | {w*100:.2f} | {avg['blocking_rate']*100:.2f} | {lb*100:.2f} | {gap} | "
              f"{avg['mean_slice_utilization']*100:.1f} | {avg['mig_creates']:.0f} | "
              f"{avg['place_us_p50']:.2f}/{avg['place_us_p99']:.2f} |")
PY
