#!/usr/bin/env python3
"""bench/run's driver: runs the benchmarks, stores bench/results/<name>.json, and writes
docs/benchmarks.md with tables and gnuplot PNGs in docs/img/. Standard library only.

Every results file carries the machine, the command and the date of its run; the report takes
every number from those files (nothing is typed in), and each figure says where it came from.
"""
import argparse
import datetime
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build", "default")
RESULTS = os.path.join(ROOT, "bench", "results")
IMG = os.path.join(ROOT, "docs", "img")
REPORT = os.path.join(ROOT, "docs", "benchmarks.md")
SIM = os.path.join(BUILD, "bench", "tessera-sim")
TESTENV = os.path.join(BUILD, "testenv", "testenv")
OPENB = os.path.normpath(os.path.join(ROOT, "..", "shared", "data", "openb", "openb_pod_list_default.csv"))
OPENB_FALLBACK = os.path.join(ROOT, "test", "testdata", "openb-small.csv")
CLUSTER = "a100-40gb:64"
POLICIES = ["tessera", "name-sorted", "first-fit"]


def log(msg):
    print(f"bench/run: {msg}", flush=True)


def rel(path):
    return os.path.relpath(path, ROOT)


def machine():
    cpu, mem = "unknown CPU", 0
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem = int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem, 1),
            "kernel": os.uname().release}


def machine_text(m):
    return f"{m['cores']} cores ({m['cpu']}), {m['memory_gib']:.0f} GiB"


def commit():
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
        return head + ("+changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def save(name, command, data, started):
    os.makedirs(RESULTS, exist_ok=True)
    doc = {"benchmark": name, "date": now(), "machine": machine(), "command": command,
           "commit": commit(), "duration_s": round(time.time() - started, 1), "results": data}
    path = os.path.join(RESULTS, name + ".json")
    with open(path, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
        f.write("\n")
    log(f"wrote {rel(path)} ({doc['duration_s']} s)")


def load(name):
    path = os.path.join(RESULTS, name + ".json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        doc = json.load(f)
    return doc if "results" in doc and "benchmark" in doc else None


def run_json_lines(argv, env=None, timeout=3600):
    """Runs a benchmark binary that prints one JSON object per line; returns the objects."""
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run(argv, capture_output=True, text=True, env=e, timeout=timeout, cwd=ROOT)
    if p.returncode != 0:
        sys.stderr.write(p.stderr[-4000:])
        raise SystemExit(f"bench/run: {' '.join(argv)} exited {p.returncode}")
    out = []
    for line in p.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


# ---- the benchmarks --------------------------------------------------------------------------

def bench_sim(quick):
    started = time.time()
    loads = [0.6, 0.8, 1.0] if quick else [0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2]
    seeds = [1] if quick else [1, 2, 3, 4, 5]
    count = "5000" if quick else "20000"
    openb = OPENB if os.path.exists(OPENB) else OPENB_FALLBACK
    traces = {
        "openb": lambda l, s: [SIM, "openb", openb, "--cluster", CLUSTER, "--load", str(l),
                               "--arrivals", "poisson", "--seed", str(s)],
        "synthetic-inference": lambda l, s: [SIM, "gen-trace", "--mix", "inference", "--cluster", CLUSTER,
                                             "--load", str(l), "--count", count, "--seed", str(s)],
        "synthetic-mixed": lambda l, s: [SIM, "gen-trace", "--mix", "mixed", "--cluster", CLUSTER,
                                         "--load", str(l), "--count", count, "--seed", str(s)],
    }
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for trace, gen in traces.items():
            for load_ in loads:
                runs = {p: [] for p in POLICIES}
                for seed in seeds:
                    path = os.path.join(tmp, f"{trace}-{load_}-{seed}.csv")
                    with open(path, "w") as f:
                        subprocess.run(gen(load_, seed), stdout=f, stderr=subprocess.DEVNULL, check=True)
                    for policy in POLICIES:
                        out = subprocess.run([SIM, "--cluster", CLUSTER, "--gpus-per-node", "8", "--trace", path,
                                              "--policy", policy, "--node-choice", "spread", "--json"],
                                             capture_output=True, text=True, check=True).stdout
                        runs[policy].append(json.loads(out))
                for policy, rs in runs.items():
                    mean = lambda k: statistics.fmean(r[k] for r in rs)  # noqa: E731
                    rows.append({"trace": trace, "load": load_, "policy": policy,
                                 "weighted_blocking": mean("weighted_blocking_rate"),
                                 "blocking": mean("blocking_rate"),
                                 "lower_bound": mean("lower_bound_weighted_blocking_rate"),
                                 "utilization": mean("mean_slice_utilization"),
                                 "mig_creates": mean("mig_creates"), "seeds": len(rs)})
            log(f"sim: {trace} done")
    command = (f"tessera-sim --cluster {CLUSTER} --gpus-per-node 8 --node-choice spread --policy P "
               f"--trace T --json, T from 'tessera-sim openb {rel(openb)} --arrivals poisson' and "
               f"'tessera-sim gen-trace --mix inference|mixed --count {count}' at each load {loads} "
               f"and seed {seeds}")
    save("sim-blocking", command, {"cluster": CLUSTER, "gpus_per_node": 8, "openb_file": rel(openb),
                                   "loads": loads, "seeds": seeds, "rows": rows}, started)


def bench_plugin(quick):
    started = time.time()
    rounds = "3" if quick else "10"
    argv = [os.path.join(BUILD, "bench", "plugin-bench"), "--rounds", rounds, "--concurrency", "1,8,64"]
    lines = run_json_lines(argv)
    data = {"prepare": [l for l in lines if l.get("scenario") == "prepare-latency"],
            "transport_floor": [l for l in lines if l.get("scenario") == "transport-floor"],
            "parallel_mig": next((l for l in lines if l.get("scenario") == "parallel-mig"), None),
            "footprint": next((l for l in lines if l.get("scenario") == "footprint"), None)}
    save("plugin", "build/default/bench/plugin-bench " + " ".join(argv[1:]), data, started)


def bench_scale(quick):
    started = time.time()
    sizes = [50, 100] if quick else [50, 100, 200, 500]
    runs = []
    for n in sizes:
        log(f"scale: {n} nodes")
        argv = [os.path.join(BUILD, "bench", "controller-scale-bench"), "--nodes", str(n), "--workers", "8"]
        runs += run_json_lines(argv, env={"TESSERA_TESTENV": TESTENV})
    save("controller-scale",
         f"TESSERA_TESTENV=build/default/testenv/testenv build/default/bench/controller-scale-bench "
         f"--nodes N --workers 8, N in {sizes}", {"runs": runs}, started)


def bench_packing(quick):
    started = time.time()
    count = "60" if quick else "200"
    with tempfile.TemporaryDirectory() as tmp:
        trace = os.path.join(tmp, "trace.csv")
        gen = [SIM, "gen-trace", "--cluster", "a100-40gb:8", "--load", "0.9", "--count", count, "--seed", "3",
               "--mix", "mig:1g=0.35,mig:2g=0.25,mig:3g=0.2,mig:4g=0.1,mig:7g=0.1"]
        with open(trace, "w") as f:
            subprocess.run(gen, stdout=f, stderr=subprocess.DEVNULL, check=True)
        argv = [os.path.join(BUILD, "bench", "controller-packing-bench"), "--trace", trace, "--model", "a100-40gb"]
        out = run_json_lines(argv, env={"TESSERA_TESTENV": TESTENV}, timeout=7200)
    if not out:
        raise SystemExit("bench/run: controller-packing-bench printed nothing")
    command = ("build/default/bench/tessera-sim " + " ".join(shlex.quote(a) for a in gen[1:]) +
               " > trace.csv; TESSERA_TESTENV=build/default/testenv/testenv "
               "build/default/bench/controller-packing-bench --trace trace.csv --model a100-40gb")
    save("controller-packing", command, out[-1], started)


def bench_micro(quick):
    started = time.time()
    min_time = "0.05" if quick else "0.3"
    suites = {}
    for b in ["partitioner_bench", "api_bench", "kube_bench"]:
        p = subprocess.run([os.path.join(BUILD, "bench", b), "--benchmark_format=json",
                            f"--benchmark_min_time={min_time}"], capture_output=True, text=True, check=True)
        suites[b] = [{"name": x["name"], "real_time": x["real_time"], "cpu_time": x["cpu_time"],
                      "time_unit": x["time_unit"], "iterations": x["iterations"]}
                     for x in json.loads(p.stdout)["benchmarks"]]
    save("micro", f"build/default/bench/{{partitioner_bench,api_bench,kube_bench}} --benchmark_format=json "
                  f"--benchmark_min_time={min_time}", suites, started)


BENCHES = {"sim": bench_sim, "plugin": bench_plugin, "scale": bench_scale, "packing": bench_packing,
           "micro": bench_micro}


# ---- plots -----------------------------------------------------------------------------------

def gnuplot(name, script, data_files):
    """Draws docs/img/<name>.png; `data_files` maps a file name used in `script` to its text."""
    os.makedirs(IMG, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for fname, text in data_files.items():
            with open(os.path.join(tmp, fname), "w") as f:
                f.write(text)
        png = os.path.join(IMG, name + ".png")
        full = ('set terminal pngcairo size 900,520 font "sans,10" noenhanced\n'
                f'set output "{png}"\nset grid\nset key top left\n' + script)
        subprocess.run(["gnuplot"], input=full, text=True, cwd=tmp, check=True)
    return f"img/{name}.png"


def figure_caption(doc):
    return (f"*Machine: {machine_text(doc['machine'])}. Date: {doc['date']}, commit {doc['commit']}. "
            f"Command: `` {doc['command']} ``.*")


def subtitle(doc):
    return f"{doc['date']}, {doc['machine']['cores']} cores"


def pct(x):
    return f"{x * 100:.2f}"


# ---- the report ------------------------------------------------------------------------------

def report():
    docs = {n: load(n) for n in ["sim-blocking", "plugin", "controller-scale", "controller-packing", "micro"]}
    out = ["# Benchmarks", "",
           "Generated by `bench/run` from the JSON files in `bench/results/` (each records the machine, the",
           "command and the date of its run; `bench/run --report-only` redraws this page from them). Do not",
           "edit by hand: numbers come from runs, never typed in.", ""]
    headline = []
    sections = []

    sim = docs["sim-blocking"]
    if sim:
        rows = sim["results"]["rows"]
        traces = sorted({r["trace"] for r in rows}, key=lambda t: (t != "openb", t))
        sec = ["## Placement: blocking rate vs offered load", "",
               f"`tessera-sim` replays each trace against {sim['results']['cluster']} "
               f"(nodes of {sim['results']['gpus_per_node']}) with each placement policy: **tessera** (the "
               "partitioner's ranking, what the controller publishes first), **name-sorted** (every placement "
               "published in name order, as NVIDIA's driver does, so the scheduler's first fit decides), "
               "**first-fit** (lowest free placement), and the **lower bound** (the same demand against one "
               "pool of compute slices with no placement rules). Weighted blocking = blocked "
               "compute-slice-seconds over offered; averaged over "
               f"{len(sim['results']['seeds'])} seed(s). openb: {sim['results']['openb_file']} (Alibaba GPU "
               "cluster trace, one-GPU tasks mapped to MIG profiles, Poisson arrivals).", ""]
        for trace in traces:
            data = ""
            loads = sorted({r["load"] for r in rows if r["trace"] == trace})
            for l in loads:
                by = {r["policy"]: r for r in rows if r["trace"] == trace and r["load"] == l}
                data += f"{l} " + " ".join(pct(by[p]["weighted_blocking"]) for p in POLICIES) + \
                        f" {pct(by['tessera']['lower_bound'])}\n"
            img = gnuplot(f"blocking-{trace}", f'''
set title "Weighted blocking vs offered load: {trace} ({subtitle(sim)})"
set xlabel "offered load"
set ylabel "weighted blocking (%)"
plot "d.txt" using 1:2 with linespoints lw 2 title "tessera", \\
     "d.txt" using 1:3 with linespoints lw 2 title "name-sorted (NVIDIA driver order)", \\
     "d.txt" using 1:4 with linespoints lw 2 title "first-fit", \\
     "d.txt" using 1:5 with lines dt 2 lw 2 title "lower bound"
''', {"d.txt": data})
            sec += [f"### {trace}", "", f"![blocking vs load, {trace}]({img})", "", figure_caption(sim), "",
                    "| load | tessera % | name-sorted % | first-fit % | lower bound % | gap closed vs name-sorted |",
                    "|---|---|---|---|---|---|"]
            for l in loads:
                by = {r["policy"]: r for r in rows if r["trace"] == trace and r["load"] == l}
                t, n, f_, lb = (by["tessera"]["weighted_blocking"], by["name-sorted"]["weighted_blocking"],
                                by["first-fit"]["weighted_blocking"], by["tessera"]["lower_bound"])
                gap = f"{(n - t) / (n - lb) * 100:.0f} %" if n - lb > 1e-9 else "n/a"
                sec.append(f"| {l} | {pct(t)} | {pct(n)} | {pct(f_)} | {pct(lb)} | {gap} |")
            sec.append("")
        # Headline: the load closest to 0.9 of each trace.
        for trace in traces:
            loads = sorted({r["load"] for r in rows if r["trace"] == trace})
            l = min(loads, key=lambda x: abs(x - 0.9))
            by = {r["policy"]: r for r in rows if r["trace"] == trace and r["load"] == l}
            t, n, lb = by["tessera"]["weighted_blocking"], by["name-sorted"]["weighted_blocking"], by["tessera"]["lower_bound"]
            gap = f"{(n - t) / (n - lb) * 100:.0f} % of the gap to the lower bound closed" if n - lb > 1e-9 else ""
            headline.append((f"Weighted blocking, {trace}, load {l}",
                             f"tessera {pct(t)} % vs name-sorted {pct(n)} % (lower bound {pct(lb)} %)", gap))
        sections.append(sec)

    plugin = docs["plugin"]
    if plugin:
        r = plugin["results"]
        sec = ["## Kubelet plugin: prepare latency", "",
               "`plugin-bench` drives the real `tessera-kubelet-plugin` binary over its unix socket with N "
               "threads preparing N claims at once on one connection, as the kubelet multiplexes its calls "
               "(fake GPU backend, zero actuation latency, a loopback API server stand-in), for N = 1, 8, 64; "
               "every prepare of every round is measured. The kubelet's side and the API server's run on "
               "the same cores as the plugin: the CPU columns are per call (prepare or unprepare), each "
               "round's connection and threads included (which is most of it at 1 claim), and utilisation "
               "is the machine's busy share during the rounds.", ""]
        data, plot = "", []
        for i, p in enumerate(r["prepare"]):
            xs = p.get("prepare_ms", [])
            for j, x in enumerate(xs):
                data += f"{x} {(j + 1) / len(xs)}\n"
            data += "\n\n"
            plot.append(f'"d.txt" index {i} using 1:2 with steps lw 2 title "{p["concurrent_claims"]} concurrent"')
        if data.strip():
            img = gnuplot("prepare-latency", f'''
set title "Prepare latency, cumulative distribution ({subtitle(plugin)})"
set xlabel "prepare latency (ms, log scale)"
set ylabel "fraction of prepares"
set logscale x
set key bottom right
plot {", ".join(plot)}
''', {"d.txt": data})
            sec += [f"![prepare latency]({img})", "", figure_caption(plugin), ""]
        sec += ["| concurrent claims | prepares | p50 ms | p90 ms | p99 ms | max ms | unprepare p50 ms | unprepare p99 ms "
                "| plugin CPU ms/call | kubelet + API CPU ms/call | utilisation |",
                "|---|---|---|---|---|---|---|---|---|---|---|"]
        nan = float("nan")
        for p in r["prepare"]:
            sec.append(f"| {p['concurrent_claims']} | {len(p.get('prepare_ms', []))} | {p['prepare_p50_ms']:.2f} | "
                       f"{p.get('prepare_p90_ms', nan):.2f} | {p['prepare_p99_ms']:.2f} | "
                       f"{p['prepare_max_ms']:.2f} | {p['unprepare_p50_ms']:.2f} | {p['unprepare_p99_ms']:.2f} | "
                       f"{p.get('plugin_cpu_ms_per_call', nan):.2f} | {p.get('harness_cpu_ms_per_call', nan):.2f} | "
                       f"{p.get('cpu_utilisation', nan):.2f} |")
        top = [p for p in r["prepare"] if p["concurrent_claims"] == 64 and "plugin_cpu_ms_per_call" in p]
        if top:
            p = top[0]
            per_call = p["plugin_cpu_ms_per_call"] + p["harness_cpu_ms_per_call"]
            sec += ["", f"At 64 claims the machine is CPU-bound: 64 calls × {per_call:.2f} ms of CPU each "
                        f"(plugin {p['plugin_cpu_ms_per_call']:.2f}, kubelet + API stand-in "
                        f"{p['harness_cpu_ms_per_call']:.2f}) on {p['cores']} cores is "
                        f"{64 * per_call / p['cores']:.1f} ms before the last call can finish, whatever the "
                        f"order; a p99 of 5 ms would need {5 * p['cores'] / 64:.2f} ms per call in all."]
        floor = r.get("transport_floor") or []
        if floor:
            sec += ["", "The transport's floor on this machine: the same calls against a gRPC server whose handlers "
                        "return at once (`--only transport-floor`: no plugin, no API server, no files).", "",
                    "| concurrent calls | calls | p50 ms | p99 ms | max ms | CPU ms/call (client + server) | utilisation |",
                    "|---|---|---|---|---|---|---|"]
            for f in floor:
                sec.append(f"| {f['concurrent_claims']} | {2 * f['rounds'] * f['concurrent_claims']} | "
                           f"{f['call_p50_ms']:.2f} | {f['call_p99_ms']:.2f} | {f['call_max_ms']:.2f} | "
                           f"{f['cpu_ms_per_call']:.3f} | {f['cpu_utilisation']:.2f} |")
            if p["concurrent_claims"] == 64:
                headline.append(("Prepare p99, 64 concurrent claims (target ≤ 5 ms)", f"{p['prepare_p99_ms']:.1f} ms",
                                 "met" if p["prepare_p99_ms"] <= 5 else "missed"))
        sec.append("")
        mig = r.get("parallel_mig")
        if mig:
            sec += ["## Kubelet plugin: parallel MIG creation vs a node-wide lock", "",
                    f"Every MIG create takes {mig['create_latency_ms']} ms (fake backend). k claims on k different "
                    "GPUs are prepared at once, with tessera's per-GPU locks and with the same binary run with "
                    "`--lock-scope=node` (one lock for every prepare on the node, as NVIDIA's driver serialises).", ""]
            scopes = {s["lock_scope"]: s for s in mig.get("by_lock_scope", []) if "wall_ms" in s}
            if len(scopes) == 2:
                data = "".join(f"{k} {scopes['gpu']['wall_ms'][k - 1]:.1f} {scopes['node']['wall_ms'][k - 1]:.1f}\n"
                               for k in scopes["gpu"]["claims"])
                img = gnuplot("parallel-mig", f'''
set title "k MIG claims on k GPUs, 500 ms per create ({subtitle(plugin)})"
set xlabel "claims prepared at once (one per GPU)"
set ylabel "time until all are prepared (ms)"
set xrange [0.5:8.5]
set yrange [0:*]
plot "d.txt" using 1:2 with linespoints lw 2 title "tessera (per-GPU locks)", \\
     "d.txt" using 1:3 with linespoints lw 2 title "node-wide lock (--lock-scope=node)"
''', {"d.txt": data})
                sec += [f"![parallel MIG]({img})", "", figure_caption(plugin), "",
                        "| claims (GPUs) | per-GPU locks ms | node-wide lock ms |", "|---|---|---|"]
                for k in scopes["gpu"]["claims"]:
                    sec.append(f"| {k} | {scopes['gpu']['wall_ms'][k - 1]:.0f} | {scopes['node']['wall_ms'][k - 1]:.0f} |")
                sec.append("")
                node8 = scopes["node"]["wall_ms"][-1] / scopes["node"]["wall_ms"][0]
                headline.append(("8 MIG claims on 8 GPUs vs one (target ≤ 1.5×)",
                                 f"{mig['ratio']:.2f}× (node-wide lock: {node8:.2f}×)",
                                 "met" if mig["ratio"] <= 1.5 else "missed"))
            else:
                sec += [f"One claim {mig['one_claim_ms']:.0f} ms, eight on eight GPUs {mig['eight_claims_8_gpus_ms']:.0f} ms "
                        f"({mig['ratio']:.2f}×). The node-wide-lock comparison did not run: "
                        + "; ".join(s.get("error", "") for s in mig.get("by_lock_scope", [])), ""]
        fp = r.get("footprint")
        if fp:
            sec += ["## Kubelet plugin: footprint", "", figure_caption(plugin), "",
                    "| GPUs | prepared claims | RSS idle MiB | RSS with claims MiB | start to registered, median ms | max ms |",
                    "|---|---|---|---|---|---|",
                    f"| {fp['gpus']} | {fp['prepared_claims']} | {fp['rss_idle_mib']:.1f} | {fp['rss_56_claims_mib']:.1f} | "
                    f"{fp['start_to_registered_ms_median']:.1f} | {fp['start_to_registered_ms_max']:.1f} |", ""]
            headline.append(("Plugin RSS, 8 GPUs and 56 claims (target ≤ 30 MB)", f"{fp['rss_56_claims_mib']:.1f} MiB",
                             "met" if fp["rss_56_claims_mib"] <= 30 else "missed"))
            headline.append(("Plugin start to registered (target ≤ 200 ms)", f"{fp['start_to_registered_ms_median']:.0f} ms median",
                             "met" if fp["start_to_registered_ms_max"] <= 200 else "missed"))
        sections.append(sec)

    scale = docs["controller-scale"]
    if scale:
        runs = sorted(scale["results"]["runs"], key=lambda x: x["nodes"])
        data = "".join(f"{x['nodes']} {x['controller_wall_s']:.2f} {x['bare_client_wall_s']:.2f} "
                       f"{x.get('controller_first_run_wall_s', x['controller_wall_s']):.2f}\n" for x in runs)
        img = gnuplot("publish-time", f'''
set title "Publishing pools from cold, 8 x H100 per node in mig-dynamic ({subtitle(scale)})"
set xlabel "nodes"
set ylabel "wall time (s)"
set yrange [0:*]
plot "d.txt" using 1:2 with linespoints lw 2 title "tessera-controller (measured run)", \\
     "d.txt" using 1:4 with linespoints lw 1 dt 2 title "tessera-controller (first run: API server's first slices)", \\
     "d.txt" using 1:3 with linespoints lw 2 title "bare client creating the same slices"
''', {"d.txt": data})
        sec = ["## Controller: publish time vs cluster size", "",
               "`controller-scale-bench` starts the testenv control plane (real kube-apiserver and etcd on the same "
               "machine), creates N nodes with their GpuInventory, runs `tessera-controller` from cold until every "
               "pool is published, deletes the slices and creates the same objects with a bare client at the same "
               "concurrency, deletes them again and runs the controller from cold once more. The ratio is the "
               "second controller run over the bare client (target ≤ 1.3): both start right after the same "
               "deletion, on an API server that has already stored slices. The first run, on an API server that "
               "never had a slice, is shown as well.", "",
               f"![publish time]({img})", "", figure_caption(scale), "",
               "| nodes | slices | controller s | bare client s | ratio | first run s (ratio) | slice applies | "
               "controller CPU s | API server CPU s: first run / second run / bare | peak RSS MiB |",
               "|---|---|---|---|---|---|---|---|---|---|"]
        for x in runs:
            def api(key):
                v = x.get(key, {}).get("kube-apiserver")
                return "—" if v is None else f"{v:.1f}"
            first = (f"{x['controller_first_run_wall_s']:.1f} ({x['controller_first_run_ratio']:.2f})"
                     if "controller_first_run_wall_s" in x else "—")
            sec.append(f"| {x['nodes']} | {x['slices']} | {x['controller_wall_s']:.1f} | {x['bare_client_wall_s']:.1f} | "
                       f"{x['ratio']:.2f} | {first} | {x['controller_slice_applies']:.0f} | {x['controller_cpu_s']:.1f} | "
                       f"{api('control_plane_cpu_s_by_component_controller_first_run')} / "
                       f"{api('control_plane_cpu_s_by_component_controller_run')} / "
                       f"{api('control_plane_cpu_s_by_component_bare_run')} | {x['controller_peak_rss_mib']:.0f} |")
        sec.append("")
        big = runs[-1]
        first_note = (f"; first run {big['controller_first_run_ratio']:.2f}" if "controller_first_run_ratio" in big else "")
        headline.append((f"Publish {big['nodes']} nodes × 8 H100 from cold, ratio to a bare client (target ≤ 1.3)",
                         f"{big['ratio']:.2f} ({big['controller_wall_s']:.1f} s vs {big['bare_client_wall_s']:.1f} s{first_note})",
                         "met" if big["ratio"] <= 1.3 else "missed"))
        headline.append((f"Controller peak RSS at {big['nodes']} nodes (target ≤ 200 MB)",
                         f"{big['controller_peak_rss_mib']:.0f} MiB", "met" if big["controller_peak_rss_mib"] <= 200 else "missed"))
        sections.append(sec)

    packing = docs["controller-packing"]
    if packing:
        r = packing["results"]
        sec = ["## Controller: packing through the real scheduler", "",
               "One churn trace of MIG claims against one node of 8 fake A100-40GB in mig-dynamic, through the real "
               "scheduler, with the controller publishing in tessera's order and name-sorted, next to `tessera-sim`'s "
               "prediction for the same trace.", "", figure_caption(packing), "",
               "| publishing | blocked (real scheduler) | blocked (tessera-sim) | decisions that differ from the simulator |",
               "|---|---|---|---|"]
        for run in r.get("runs", []):
            sec.append(f"| {run['policy']} | {run['real_blocked']} of {r['requests']} | {run.get('sim_blocked', '—')} | "
                       f"{run['decisions_that_differ']} |")
        sec += ["", f"Predicted improvement {r['predicted_improvement']:.0f} claims, realised {r['realised_improvement']:.0f} "
                f"({r['realised_fraction'] * 100:.0f} %; target ≥ 80 %).", ""]
        headline.append(("Packing: share of tessera-sim's predicted improvement realised (target ≥ 80 %)",
                         f"{r['realised_fraction'] * 100:.0f} % ({r['realised_improvement']:.0f} of "
                         f"{r['predicted_improvement']:.0f} fewer blocked claims)",
                         "met" if r["realised_fraction"] >= 0.8 else "missed"))
        sections.append(sec)

    micro = docs["micro"]
    if micro:
        sec = ["## Micro-benchmarks (Google Benchmark)", "", figure_caption(micro), "",
               "| suite | benchmark | real time | CPU time |", "|---|---|---|---|"]
        for suite, rows in micro["results"].items():
            for b in rows:
                sec.append(f"| {suite} | `{b['name']}` | {b['real_time']:.3g} {b['time_unit']} | "
                           f"{b['cpu_time']:.3g} {b['time_unit']} |")
        sec.append("")
        sections.append(sec)

    if headline:
        out += ["## Headline", "", "| measure | result | |", "|---|---|---|"]
        out += [f"| {a} | {b} | {c} |" for a, b, c in headline]
        out.append("")
    missing = [n for n, d in docs.items() if d is None]
    if missing:
        out += [f"Not run yet: {', '.join(missing)} (`bench/run --only ...`).", ""]
    for sec in sections:
        out += sec
    with open(REPORT, "w") as f:
        f.write("\n".join(out).rstrip() + "\n")
    log(f"wrote {rel(REPORT)}")
    return headline


def main():
    ap = argparse.ArgumentParser(description="tessera's benchmarks and report")
    ap.add_argument("--quick", action="store_true", help="fewer rounds and sizes")
    ap.add_argument("--only", default="", help="comma-separated: " + ",".join(BENCHES))
    ap.add_argument("--report-only", action="store_true", help="redraw the report from bench/results")
    args = ap.parse_args()
    names = [n for n in args.only.split(",") if n] or list(BENCHES)
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        ap.error(f"--only: unknown benchmark {', '.join(unknown)} (allowed: {', '.join(BENCHES)})")
    if not args.report_only:
        for n in names:
            log(f"running {n}{' (quick)' if args.quick else ''}")
            BENCHES[n](args.quick)
    for a, b, c in report():
        print(f"  {a}: {b} {('— ' + c) if c else ''}")


if __name__ == "__main__":
    main()
