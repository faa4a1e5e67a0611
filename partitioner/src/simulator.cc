#include "tessera/partitioner/simulator.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <map>
#include <queue>
#include <random>
#include <sstream>

#include "nlohmann/json.hpp"
#include "tessera/api/strings.h"
#include "tessera/partitioner/device_name.h"
#include "text.h"

namespace tessera::partitioner {
namespace {

using internal::ParseFiniteDouble;
using internal::ParseInt;
using internal::Split;
using internal::Trim;

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  const std::size_t k = std::min(v.size() - 1, static_cast<std::size_t>(q * (v.size() - 1) + 0.5));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

struct Departure {
  double time;
  int node;
  Choice choice;
  std::size_t entry;
  double slices;
  bool operator>(const Departure& o) const { return time > o.time; }
};

}  // namespace

absl::StatusOr<ClusterSpec> ClusterSpec::Parse(std::string_view text, int gpus_per_node) {
  if (gpus_per_node < 1) {
    return absl::InvalidArgumentError(
        StrCat("--gpus-per-node ", gpus_per_node, " must be at least 1"));
  }
  ClusterSpec spec;
  std::string_view rest = text;
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    std::string_view entry = Trim(rest.substr(0, comma));
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    const auto colon = entry.find(':');
    if (colon == std::string_view::npos) {
      return absl::InvalidArgumentError(
          StrCat("--cluster entry \"", entry, "\": expected MODEL:GPUS"));
    }
    const GpuModel* model = FindBuiltinModel(entry.substr(0, colon));
    if (model == nullptr) {
      return absl::InvalidArgumentError(StrCat("--cluster entry \"", entry,
                                               "\": unknown GPU model \"", entry.substr(0, colon),
                                               "\" (known: ", BuiltinModelKeys(), ")"));
    }
    double count = 0;
    if (!ParseFiniteDouble(entry.substr(colon + 1), &count) || count < 1 ||
        count != std::floor(count)) {
      return absl::InvalidArgumentError(StrCat("--cluster entry \"", entry, "\": GPU count \"",
                                               entry.substr(colon + 1),
                                               "\" is not a positive integer"));
    }
    for (int left = static_cast<int>(count); left > 0; left -= gpus_per_node) {
      spec.nodes.push_back({model, std::min(left, gpus_per_node)});
    }
  }
  if (spec.nodes.empty()) return absl::InvalidArgumentError("--cluster is empty");
  return spec;
}

int ClusterSpec::total_gpus() const {
  int n = 0;
  for (const Node& node : nodes) n += node.gpus;
  return n;
}

double ClusterSpec::total_compute_slices() const {
  double n = 0;
  for (const Node& node : nodes) n += node.gpus * node.model->compute_slices;
  return n;
}

absl::StatusOr<std::vector<TraceEntry>> ParseTrace(std::istream& in) {
  std::vector<TraceEntry> out;
  std::string line;
  int number = 0;
  auto bad = [&](std::string_view what) {
    return absl::InvalidArgumentError(StrCat("trace line ", number, ": ", what));
  };
  while (std::getline(in, line)) {
    ++number;
    std::string_view text = Trim(line);
    if (number == 1) {
      if (text != "arrival,duration,request") {
        return bad(StrCat("expected the header \"arrival,duration,request\", got \"", text, "\""));
      }
      continue;
    }
    if (text.empty() || text.front() == '#') continue;
    std::vector<std::string_view> fields = Split(text, ',');
    for (std::string_view& f : fields) f = Trim(f);
    if (fields.size() != 3) return bad(StrCat("expected 3 fields, got ", fields.size()));
    TraceEntry e;
    if (!ParseFiniteDouble(fields[0], &e.arrival) || e.arrival < 0) {
      return bad(StrCat("arrival \"", fields[0], "\" is not a non-negative number"));
    }
    if (!ParseFiniteDouble(fields[1], &e.duration) || e.duration <= 0) {
      return bad(StrCat("duration \"", fields[1], "\" is not a positive number"));
    }
    absl::StatusOr<Request> r = Request::Parse(fields[2]);
    if (!r.ok()) return bad(std::string(r.status().message()));
    e.request = *r;
    if (!out.empty() && e.arrival < out.back().arrival) {
      return bad(StrCat("arrival ", fields[0], " is before the previous line's"));
    }
    out.push_back(std::move(e));
  }
  if (number == 0) return absl::InvalidArgumentError("trace is empty (no header)");
  return out;
}

std::string FormatTrace(const std::vector<TraceEntry>& trace) {
  std::ostringstream out;
  out << "arrival,duration,request\n";
  out.precision(10);
  for (const TraceEntry& e : trace) {
    out << e.arrival << "," << e.duration << "," << e.request.ToString() << "\n";
  }
  return out.str();
}

Demand DemandOf(std::span<const TraceEntry> trace) {
  std::map<std::string, std::pair<Request, double>> counts;
  for (const TraceEntry& e : trace) {
    // Every non-MIG request needs an empty GPU to open; one class stands for them all.
    const Request key = e.request.kind == Request::Kind::kMig ? e.request : Request{};
    auto [it, inserted] = counts.try_emplace(key.ToString(), key, 0.0);
    it->second.second += 1;
  }
  Demand d;
  for (auto& [name, entry] : counts) {
    d.mix.emplace_back(entry.first, entry.second / static_cast<double>(trace.size()));
  }
  if (d.mix.empty()) return Demand::Uniform();
  return d;
}

absl::StatusOr<NodeChoice> ParseNodeChoice(std::string_view name) {
  if (name == "spread") return NodeChoice::kSpread;
  if (name == "random") return NodeChoice::kRandom;
  return absl::InvalidArgumentError(
      StrCat("--node-choice \"", name, "\" is not one of spread, random"));
}

std::string SimResult::ToJson() const {
  nlohmann::ordered_json j;
  j["requests"] = requests;
  j["blocked"] = blocked;
  j["blocking_rate"] = blocking_rate;
  j["weighted_blocking_rate"] = weighted_blocking_rate;
  j["mean_slice_utilization"] = mean_slice_utilization;
  j["mig_creates"] = mig_creates;
  j["mig_destroys"] = mig_destroys;
  j["place_us_p50"] = place_us_p50;
  j["place_us_p99"] = place_us_p99;
  j["lower_bound_weighted_blocking_rate"] = lower_bound_weighted_blocking_rate;
  j["offered_load"] = offered_load;
  return j.dump();
}

SimResult Simulate(const ClusterSpec& cluster, const std::vector<TraceEntry>& trace,
                   const SimOptions& options) {
  SimResult result;
  const ShareLimits limits;
  // Fragmentation-aware policies learn the demand mix as the controller would: from the requests
  // seen so far (the last kDemandWindow), refreshed every kDemandRefresh arrivals; uniform at
  // first.
  constexpr std::size_t kDemandWindow = 2000, kDemandRefresh = 100;
  Placer placer(options.policy, Demand::Uniform(), limits);
  std::vector<std::vector<GpuState>> nodes;
  std::vector<double> node_used(cluster.nodes.size(), 0), node_total;
  for (const auto& n : cluster.nodes) {
    nodes.emplace_back(n.gpus, GpuState(*n.model));
    node_total.push_back(static_cast<double>(n.gpus * n.model->compute_slices));
  }
  const double total_slices = cluster.total_compute_slices();
  std::mt19937_64 rng(options.seed);
  std::priority_queue<Departure, std::vector<Departure>, std::greater<>> departures;
  // The oracle: one pool of slices, no placement rules.
  std::priority_queue<std::pair<double, double>, std::vector<std::pair<double, double>>,
                      std::greater<>>
      oracle_departures;
  double oracle_free = total_slices;
  double offered = 0, offered_in_window = 0, blocked_weight = 0, oracle_blocked_weight = 0;
  double used_total = 0, used_integral = 0, last_time = trace.empty() ? 0 : trace.front().arrival;
  std::vector<double> place_us;
  place_us.reserve(trace.size());
  // A request's slices are counted on the first node's model for offered load; every node of a
  // homogeneous cluster agrees.
  const GpuModel& reference_model = *cluster.nodes.front().model;

  auto advance = [&](double t) {
    if (t > last_time) {
      used_integral += used_total * (t - last_time);
      last_time = t;
    }
  };
  for (std::size_t i = 0; i < trace.size(); ++i) {
    const TraceEntry& e = trace[i];
    if (options.learn_demand && i > 0 && i % kDemandRefresh == 0) {
      const std::size_t from = i > kDemandWindow ? i - kDemandWindow : 0;
      placer = Placer(options.policy, DemandOf(std::span(trace).subspan(from, i - from)), limits);
    }
    while (!departures.empty() && departures.top().time <= e.arrival) {
      const Departure d = departures.top();
      departures.pop();
      advance(d.time);
      std::vector<GpuState>& gpus = nodes[d.node];
      Release(gpus, d.choice, trace[d.entry].request, StrCat("r", d.entry)).IgnoreError();
      if (trace[d.entry].request.kind == Request::Kind::kMig) ++result.mig_destroys;
      node_used[d.node] -= d.slices;
      used_total -= d.slices;
    }
    while (!oracle_departures.empty() && oracle_departures.top().first <= e.arrival) {
      oracle_free += oracle_departures.top().second;
      oracle_departures.pop();
    }
    advance(e.arrival);
    ++result.requests;
    const double weight = e.request.ComputeSlices(reference_model, limits);
    offered += weight * e.duration;
    offered_in_window += weight * std::min(e.duration, trace.back().arrival - e.arrival);
    if (weight <= oracle_free + 1e-9) {
      oracle_free -= weight;
      oracle_departures.emplace(e.arrival + e.duration, weight);
    } else {
      oracle_blocked_weight += weight * e.duration;
    }

    // The scheduler's view: which nodes publish a device that fits, and each node's first one.
    int chosen_node = -1;
    Choice chosen;
    std::vector<std::pair<int, Choice>> fitting;
    // tessera steers the scheduler through what each node publishes: the controller sees the
    // whole cluster and publishes a device for a request class only on the node where it fits
    // best (least fragmentation growth, then the fullest GPU, then the lowest node). The other
    // policies publish every fitting device and order them within the node only.
    std::tuple<double, double, double, double> best_key{};
    for (std::size_t n = 0; n < nodes.size(); ++n) {
      const auto began = std::chrono::steady_clock::now();
      std::vector<Placer::Scored> ranked = placer.RankScored(nodes[n], e.request);
      place_us.push_back(
          std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - began)
              .count());
      if (ranked.empty()) continue;
      if (options.policy == Policy::kTessera) {
        const Placer::Score& s = ranked.front().score;
        // Ties between nodes go to the lowest-numbered node, which packs the cluster from one
        // end and keeps whole GPUs free at the other (measured better than the fullest node on
        // openb, equal on the synthetic traces: docs/partitioner.md).
        const std::tuple<double, double, double, double> key{std::get<0>(s), std::get<1>(s),
                                                             double(n), std::get<2>(s)};
        if (fitting.empty() || key < best_key) {
          fitting.assign(1, {static_cast<int>(n), ranked.front().choice});
          best_key = key;
        }
        continue;
      }
      fitting.emplace_back(static_cast<int>(n), ranked.front().choice);
      if (options.policy == Policy::kFirstFit) break;  // one flat first fit over the cluster
    }
    if (!fitting.empty()) {
      std::size_t pick = 0;
      if (options.policy != Policy::kFirstFit) {
        if (options.node_choice == NodeChoice::kRandom) {
          pick = std::uniform_int_distribution<std::size_t>(0, fitting.size() - 1)(rng);
        } else {
          for (std::size_t k = 1; k < fitting.size(); ++k) {
            const int a = fitting[k].first, b = fitting[pick].first;
            if (node_used[a] / node_total[a] < node_used[b] / node_total[b]) pick = k;
          }
        }
      }
      chosen_node = fitting[pick].first;
      chosen = fitting[pick].second;
    }
    if (chosen_node < 0) {
      ++result.blocked;
      blocked_weight += weight * e.duration;
      if (options.record_decisions) result.decisions.push_back("blocked");
      continue;
    }
    std::vector<GpuState>& gpus = nodes[chosen_node];
    if (options.record_decisions) {
      DeviceName name{.gpu = chosen.gpu, .mig = std::nullopt, .share = std::nullopt, .slot = -1};
      if (chosen.profile >= 0) {
        absl::StatusOr<std::string> token =
            ProfileToken(gpus[chosen.gpu].model().profiles[chosen.profile].name);
        name.mig = DeviceName::Mig{.profile_token = token.ok() ? *token : "?",
                                   .start = chosen.placement.start};
      }
      result.decisions.push_back(StrCat("n", chosen_node, "/", name.ToString()));
    }
    if (!Apply(gpus, chosen, e.request, StrCat("r", i), limits).ok()) {
      ++result.blocked;  // cannot happen: Place only returns applicable choices
      blocked_weight += weight * e.duration;
      continue;
    }
    if (e.request.kind == Request::Kind::kMig) ++result.mig_creates;
    const double slices = e.request.ComputeSlices(gpus[chosen.gpu].model(), limits);
    node_used[chosen_node] += slices;
    used_total += slices;
    departures.push({e.arrival + e.duration, chosen_node, chosen, i, slices});
  }
  const double span = trace.empty() ? 0 : trace.back().arrival - trace.front().arrival;
  result.blocking_rate =
      result.requests == 0 ? 0 : static_cast<double>(result.blocked) / result.requests;
  result.weighted_blocking_rate = offered == 0 ? 0 : blocked_weight / offered;
  result.lower_bound_weighted_blocking_rate = offered == 0 ? 0 : oracle_blocked_weight / offered;
  result.mean_slice_utilization = span == 0 ? 0 : used_integral / (span * total_slices);
  result.offered_load = span == 0 ? 0 : offered_in_window / (span * total_slices);
  result.place_us_p50 = Percentile(place_us, 0.50);
  result.place_us_p99 = Percentile(place_us, 0.99);
  return result;
}

absl::StatusOr<std::vector<std::pair<Request, double>>> ParseMix(std::string_view spec) {
  std::vector<std::pair<Request, double>> mix;
  double total = 0;
  for (std::string_view item : Split(spec, ',')) {
    item = Trim(item);
    const std::size_t eq = item.rfind('=');
    if (eq == std::string_view::npos) {
      return absl::InvalidArgumentError(
          StrCat("mix entry \"", item, "\": expected REQUEST=WEIGHT"));
    }
    absl::StatusOr<Request> r = Request::Parse(item.substr(0, eq));
    if (!r.ok())
      return absl::InvalidArgumentError(StrCat("mix entry \"", item, "\": ", r.status().message()));
    double w = 0;
    if (!ParseFiniteDouble(item.substr(eq + 1), &w) || !(w > 0)) {
      return absl::InvalidArgumentError(StrCat("mix entry \"", item, "\": weight \"",
                                               item.substr(eq + 1), "\" is not a positive number"));
    }
    mix.emplace_back(*r, w);
    total += w;
  }
  if (mix.empty()) return absl::InvalidArgumentError("mix is empty");
  for (auto& [r, w] : mix) w /= total;
  return mix;
}

absl::StatusOr<OpenbOptions::Arrivals> ParseOpenbArrivals(std::string_view name) {
  if (name == "poisson") return OpenbOptions::Arrivals::kPoisson;
  if (name == "trace") return OpenbOptions::Arrivals::kTrace;
  return absl::InvalidArgumentError(StrCat("arrivals \"", name, "\" is not one of poisson, trace"));
}

Request OpenbRequest(int gpu_milli) {
  Request r;  // whole
  if (gpu_milli < 1000) {
    const int slices = static_cast<int>(std::ceil(7.0 * gpu_milli / 1000.0));
    r.kind = Request::Kind::kMig;
    r.profile = slices <= 4 ? StrCat(std::max(1, slices), "g") : "7g";
  }
  return r;
}

absl::StatusOr<OpenbTrace> ConvertOpenb(std::istream& in, const ClusterSpec& cluster,
                                        const OpenbOptions& options) {
  if (cluster.nodes.empty()) return absl::InvalidArgumentError("openb: empty cluster");
  if (!(options.load > 0)) return absl::InvalidArgumentError("openb: load must be positive");
  std::string line;
  std::getline(in, line);
  const std::vector<std::string_view> header = Split(Trim(line), ',');
  const std::vector<std::string_view> want = {
      "name",     "cpu_milli", "memory_mib", "num_gpu",       "gpu_milli",
      "gpu_spec", "qos",       "pod_phase",  "creation_time", "deletion_time"};
  if (header.size() < want.size() || !std::equal(want.begin(), want.end(), header.begin())) {
    return absl::InvalidArgumentError(
        "line 1: not an openb pod list header "
        "(name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,"
        "pod_phase,creation_time,deletion_time,...)");
  }
  OpenbTrace out;
  for (int number = 2; std::getline(in, line); ++number) {
    const std::vector<std::string_view> f = Split(Trim(line), ',');
    auto bad = [&](std::string_view what) {
      return absl::InvalidArgumentError(StrCat("line ", number, ": ", what));
    };
    if (f.size() < header.size())
      return bad(StrCat("expected ", header.size(), " fields, found ", f.size()));
    int gpus = 0, milli = 0;
    if (!ParseInt(f[3], &gpus) || gpus < 0)
      return bad(StrCat("num_gpu \"", f[3], "\" is not a count"));
    if (!ParseInt(f[4], &milli) || milli < 0 || (gpus == 1 && (milli < 1 || milli > 1000))) {
      return bad(StrCat("gpu_milli \"", f[4], "\" is not in [1, 1000]"));
    }
    if (gpus == 0) {
      ++out.skipped_cpu;
      continue;
    }
    if (gpus > 1) {
      ++out.skipped_multi;
      continue;
    }
    if (f[8].empty() || f[9].empty()) {
      ++out.skipped_open;
      continue;
    }
    double created = 0, deleted = 0;
    if (!ParseFiniteDouble(f[8], &created))
      return bad(StrCat("creation_time \"", f[8], "\" is not a number"));
    if (!ParseFiniteDouble(f[9], &deleted))
      return bad(StrCat("deletion_time \"", f[9], "\" is not a number"));
    if (deleted <= created) {
      ++out.skipped_open;
      continue;
    }
    out.trace.push_back({created, deleted - created, OpenbRequest(milli)});
  }
  if (out.trace.empty()) return absl::InvalidArgumentError("no one-GPU task with a deletion time");
  std::stable_sort(out.trace.begin(), out.trace.end(),
                   [](const TraceEntry& a, const TraceEntry& b) { return a.arrival < b.arrival; });
  // The arrival process: the trace's own times, or a Poisson process (the trace's tasks, sizes and
  // durations in the trace's order, at exponential gaps). Either is then scaled so that the offered
  // load inside the window is `load`; the window ends at the last arrival and long tasks run past
  // it, so the scale is found by bisection.
  std::vector<double> base(out.trace.size());
  if (options.arrivals == OpenbOptions::Arrivals::kTrace) {
    for (std::size_t i = 0; i < base.size(); ++i)
      base[i] = out.trace[i].arrival - out.trace.front().arrival;
  } else {
    std::mt19937_64 rng(options.seed);
    std::exponential_distribution<double> gap(1.0);
    double t = 0;
    for (double& b : base) {
      b = t;
      t += gap(rng);
    }
  }
  const GpuModel& model = *cluster.nodes.front().model;
  auto load_at = [&](double scale) {
    const double end = base.back() * scale;
    double work = 0;
    for (std::size_t i = 0; i < base.size(); ++i) {
      work += out.trace[i].request.ComputeSlices(model) *
              std::min(out.trace[i].duration, end - base[i] * scale);
    }
    return work / (cluster.total_compute_slices() * end);
  };
  double lo = 1e-6, hi = 1e9;
  for (int i = 0; i < 200; ++i) {
    const double mid = std::sqrt(lo * hi);
    (load_at(mid) > options.load ? lo : hi) = mid;
  }
  out.scale = hi;
  if (std::abs(load_at(hi) - options.load) > 1e-3 * options.load) {
    std::ostringstream why;
    why << "the trace's " << out.trace.size() << " tasks cannot offer load " << options.load
        << " to " << cluster.total_compute_slices() << " compute slices (at most " << load_at(hi)
        << "); use a smaller cluster";
    return absl::InvalidArgumentError(why.str());
  }
  for (std::size_t i = 0; i < base.size(); ++i) out.trace[i].arrival = base[i] * out.scale;
  return out;
}

}  // namespace tessera::partitioner
