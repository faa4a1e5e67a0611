// tessera-sim: judges placement policies by replaying request traces against a simulated cluster.
//
//   tessera-sim --cluster a100-40gb:64[,h100-80gb:32...] --gpus-per-node 8 --trace FILE
//               --policy POLICY [--node-choice spread|random] [--seed N] [--learn-demand false]
//               --json
//   tessera-sim gen-trace --mix inference|mixed|training|'mig:1g=0.5,mps:10:25=0.5'
//               --cluster SPEC [--gpus-per-node 8] --load 0.85 [--count N] [--mean-duration S]
//               [--durations exp|lognormal] [--burst-every S --burst-size N] [--seed N]
//   tessera-sim openb FILE --cluster SPEC [--gpus-per-node 8] --load 0.85 [--arrivals
//   poisson|trace]
//               [--seed N]
//
// See docs/partitioner.md for the model and the meaning of each number.

#include <cmath>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "tessera/api/strings.h"
#include "tessera/partitioner/simulator.h"

namespace {

using namespace tessera::partitioner;
using tessera::StrCat;

int Fail(const absl::Status& s) {
  std::cerr << "tessera-sim: " << s.message() << "\n";
  return 1;
}

// Named request mixes (probabilities per request).
const std::map<std::string, std::string> kMixes = {
    {"inference",
     "mig:1g=0.35,mig:1g.2x=0.1,mig:2g=0.2,mps:8:25=0.15,mps:16:50=0.05,ts=0.05,mig:3g=0.1"},
    {"mixed", "mig:1g=0.2,mig:2g=0.2,mig:3g=0.2,mig:4g=0.1,mig:7g=0.1,whole=0.1,mps:10:30=0.1"},
    {"training", "mig:3g=0.2,mig:4g=0.2,mig:7g=0.25,whole=0.3,mig:2g=0.05"},
};

absl::StatusOr<std::vector<std::pair<Request, double>>> MixOf(const std::string& text) {
  const auto named = kMixes.find(text);
  absl::StatusOr<std::vector<std::pair<Request, double>>> mix =
      ParseMix(named == kMixes.end() ? text : named->second);
  if (!mix.ok()) return absl::InvalidArgumentError(StrCat("--mix: ", mix.status().message()));
  return mix;
}

// Arrival rate that makes the offered load `load` for the given mix and mean duration.
double RateFor(const ClusterSpec& cluster, const std::vector<std::pair<Request, double>>& mix,
               double mean_duration, double load) {
  double mean_slices = 0;
  for (const auto& [r, w] : mix) mean_slices += w * r.ComputeSlices(*cluster.nodes.front().model);
  return load * cluster.total_compute_slices() / (mean_duration * mean_slices);
}

int GenTrace(const std::string& mix_text, const ClusterSpec& cluster, double load, int count,
             double mean_duration, const std::string& durations, double burst_every, int burst_size,
             std::uint64_t seed) {
  absl::StatusOr<std::vector<std::pair<Request, double>>> mix = MixOf(mix_text);
  if (!mix.ok()) return Fail(mix.status());
  if (durations != "exp" && durations != "lognormal") {
    return Fail(absl::InvalidArgumentError(
        StrCat("--durations \"", durations, "\" is not one of exp, lognormal")));
  }
  std::mt19937_64 rng(seed);
  const double rate = RateFor(cluster, *mix, mean_duration, load);
  std::exponential_distribution<double> gap(rate);
  std::exponential_distribution<double> exp_duration(1.0 / mean_duration);
  // Lognormal with sigma 1 and the requested mean: mu = ln(mean) - sigma^2 / 2.
  std::lognormal_distribution<double> log_duration(std::log(mean_duration) - 0.5, 1.0);
  std::vector<double> weights;
  for (const auto& entry : *mix) weights.push_back(entry.second);
  std::discrete_distribution<std::size_t> pick(weights.begin(), weights.end());
  std::vector<TraceEntry> trace;
  double t = 0, next_burst = burst_every > 0 ? burst_every : -1;
  while (static_cast<int>(trace.size()) < count) {
    t += gap(rng);
    int n = 1;
    if (next_burst > 0 && t >= next_burst) {
      n = burst_size;
      next_burst += burst_every;
    }
    for (int k = 0; k < n && static_cast<int>(trace.size()) < count; ++k) {
      const double d = durations == "exp" ? exp_duration(rng) : log_duration(rng);
      trace.push_back({t, std::max(d, 1e-3), (*mix)[pick(rng)].first});
    }
  }
  std::cout << FormatTrace(trace);
  return 0;
}

// openb (cluster-trace-gpu-v2023) → trace; see ConvertOpenb for the mapping.
int Openb(const std::string& path, const ClusterSpec& cluster, const OpenbOptions& options) {
  std::ifstream in(path);
  if (!in) return Fail(absl::NotFoundError(StrCat("cannot open ", path)));
  absl::StatusOr<OpenbTrace> t = ConvertOpenb(in, cluster, options);
  if (!t.ok()) return Fail(absl::InvalidArgumentError(StrCat(path, " ", t.status().message())));
  std::cerr << "openb: " << t->trace.size() << " one-GPU tasks; skipped " << t->skipped_multi
            << " multi-GPU, " << t->skipped_cpu << " CPU-only, " << t->skipped_open
            << " without a deletion time; arrival scale " << t->scale << "\n";
  std::cout << FormatTrace(t->trace);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"tessera-sim: replay a request trace against a simulated GPU cluster"};
  app.require_subcommand(0, 1);
  std::string cluster_text, trace_path, policy_text = "tessera", node_choice_text = "spread";
  int gpus_per_node = 8;
  std::uint64_t seed = 1;
  bool json = false;
  app.add_option("--cluster", cluster_text, "MODEL:GPUS[,MODEL:GPUS...]");
  app.add_option("--gpus-per-node", gpus_per_node, "GPUs per node")->capture_default_str();
  app.add_option("--trace", trace_path, "CSV: arrival,duration,request");
  app.add_option("--policy", policy_text, StrCat("one of ", PolicyNames()))->capture_default_str();
  app.add_option("--node-choice", node_choice_text, "spread or random")->capture_default_str();
  app.add_option("--seed", seed, "random seed")->capture_default_str();
  bool learn_demand = true;
  app.add_option("--learn-demand", learn_demand,
                 "re-learn the demand mix every 100 arrivals (false: uniform throughout, as "
                 "tessera-controller publishes)")
      ->capture_default_str();
  app.add_flag("--json", json, "print one JSON object");

  auto* gen = app.add_subcommand("gen-trace", "write a synthetic trace to stdout");
  std::string mix = "mixed", durations = "exp", gen_cluster;
  double load = 0.85, mean_duration = 3600, burst_every = 0;
  int count = 20000, burst_size = 1, gen_gpus_per_node = 8;
  std::uint64_t gen_seed = 1;
  gen->add_option("--mix", mix, "inference, mixed, training, or REQUEST=WEIGHT,...")
      ->capture_default_str();
  gen->add_option("--cluster", gen_cluster, "the cluster the load refers to")->required();
  gen->add_option("--gpus-per-node", gen_gpus_per_node)->capture_default_str();
  gen->add_option("--load", load, "offered load (fraction of compute slices)")
      ->capture_default_str();
  gen->add_option("--count", count)->capture_default_str();
  gen->add_option("--mean-duration", mean_duration, "seconds")->capture_default_str();
  gen->add_option("--durations", durations, "exp or lognormal")->capture_default_str();
  gen->add_option("--burst-every", burst_every, "seconds between bursts (0: none)");
  gen->add_option("--burst-size", burst_size, "requests arriving together in a burst");
  gen->add_option("--seed", gen_seed)->capture_default_str();

  auto* openb = app.add_subcommand("openb", "convert an openb pod list to a trace on stdout");
  std::string openb_path, openb_cluster;
  int openb_gpus_per_node = 8;
  double openb_load = 0.85;
  std::string openb_arrivals = "poisson";
  std::uint64_t openb_seed = 1;
  openb->add_option("FILE", openb_path)->required();
  openb
      ->add_option("--arrivals", openb_arrivals,
                   "poisson (the trace's tasks at Poisson arrivals) or trace (its own times)")
      ->capture_default_str();
  openb->add_option("--seed", openb_seed)->capture_default_str();
  openb->add_option("--cluster", openb_cluster)->required();
  openb->add_option("--gpus-per-node", openb_gpus_per_node)->capture_default_str();
  openb->add_option("--load", openb_load)->capture_default_str();

  CLI11_PARSE(app, argc, argv);

  if (gen->parsed()) {
    absl::StatusOr<ClusterSpec> c = ClusterSpec::Parse(gen_cluster, gen_gpus_per_node);
    if (!c.ok()) return Fail(c.status());
    if (!(load > 0) || count < 1 || !(mean_duration > 0) || burst_size < 1) {
      return Fail(absl::InvalidArgumentError(
          "--load, --count, --mean-duration and --burst-size must be positive"));
    }
    return GenTrace(mix, *c, load, count, mean_duration, durations, burst_every, burst_size,
                    gen_seed);
  }
  if (openb->parsed()) {
    absl::StatusOr<ClusterSpec> c = ClusterSpec::Parse(openb_cluster, openb_gpus_per_node);
    if (!c.ok()) return Fail(c.status());
    if (!(openb_load > 0)) return Fail(absl::InvalidArgumentError("--load must be positive"));
    absl::StatusOr<OpenbOptions::Arrivals> arrivals = ParseOpenbArrivals(openb_arrivals);
    if (!arrivals.ok()) return Fail(arrivals.status());
    return Openb(openb_path, *c, {.load = openb_load, .arrivals = *arrivals, .seed = openb_seed});
  }

  if (cluster_text.empty() || trace_path.empty()) {
    return Fail(absl::InvalidArgumentError("--cluster and --trace are required"));
  }
  absl::StatusOr<ClusterSpec> cluster = ClusterSpec::Parse(cluster_text, gpus_per_node);
  if (!cluster.ok()) return Fail(cluster.status());
  absl::StatusOr<Policy> policy = ParsePolicy(policy_text);
  if (!policy.ok()) return Fail(policy.status());
  absl::StatusOr<NodeChoice> node_choice = ParseNodeChoice(node_choice_text);
  if (!node_choice.ok()) return Fail(node_choice.status());
  std::ifstream in(trace_path);
  if (!in) return Fail(absl::NotFoundError(StrCat("cannot open trace ", trace_path)));
  absl::StatusOr<std::vector<TraceEntry>> trace = ParseTrace(in);
  if (!trace.ok())
    return Fail(absl::InvalidArgumentError(StrCat(trace_path, ": ", trace.status().message())));

  SimResult r = Simulate(
      *cluster, *trace,
      {.policy = *policy, .node_choice = *node_choice, .seed = seed, .learn_demand = learn_demand});
  if (json) {
    std::cout << r.ToJson() << "\n";
  } else {
    std::cout << "policy " << policy_text << ": " << r.requests << " requests, " << r.blocked
              << " blocked (" << r.blocking_rate * 100 << "%), weighted blocking "
              << r.weighted_blocking_rate * 100 << "% (lower bound "
              << r.lower_bound_weighted_blocking_rate * 100 << "%), utilisation "
              << r.mean_slice_utilization * 100 << "%, offered load " << r.offered_load * 100
              << "%, place p50/p99 " << r.place_us_p50 << "/" << r.place_us_p99 << " us\n";
  }
  return 0;
}
