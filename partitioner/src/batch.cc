#include "tessera/partitioner/batch.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <map>
#include <numeric>
#include <tuple>

#include "tessera/api/strings.h"

namespace tessera::partitioner {
namespace {

std::string Owner(std::size_t request) { return StrCat("batch-", request); }

// GPUs with equal signatures are interchangeable for every later request.
using Signature = std::tuple<const GpuModel*, SliceMask, int, bool, bool,
                             std::array<std::uint8_t, 16>, std::size_t, std::int64_t, int, bool>;

Signature SignatureOf(const GpuState& g) {
  std::int64_t memory = 0;
  int percent = 0;
  bool timeslice = false;
  for (const Share& s : g.shares()) {
    memory += s.memory_mib;
    percent += s.compute_percent;
    timeslice |= s.kind == ShareKind::kTimeSlice;
  }
  // Shares inside instances make instances distinguishable; fall back to the GPU's identity.
  const bool nested = std::any_of(g.shares().begin(), g.shares().end(),
                                  [](const Share& s) { return s.host.has_value(); });
  const MigSummary& m = g.mig();
  return {nested ? nullptr : &g.model(),
          m.used,
          m.compute,
          m.busy,
          m.media,
          m.count,
          g.shares().size(),
          memory,
          percent,
          timeslice || g.whole_owner().has_value()};
}

// The requests' indices, largest first (compute slices on the first GPU's model), stable.
std::vector<std::size_t> LargestFirst(std::span<const GpuState> gpus,
                                      std::span<const Request> requests, const Placer& placer,
                                      std::vector<double>* slices) {
  slices->assign(requests.size(), 0);
  for (std::size_t i = 0; i < requests.size(); ++i) {
    (*slices)[i] = gpus.empty() ? 0 : requests[i].ComputeSlices(gpus[0].model(), placer.limits());
  }
  std::vector<std::size_t> order(requests.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return (*slices)[a] > (*slices)[b]; });
  return order;
}

class ExactSearch {
 public:
  ExactSearch(std::span<const GpuState> gpus, std::span<const Request> requests,
              const Placer& placer, std::int64_t budget)
      : states_(gpus.begin(), gpus.end()), requests_(requests), placer_(placer), budget_(budget) {
    order_ = LargestFirst(gpus, requests, placer, &slices_);
    suffix_slices_.assign(order_.size() + 1, 0);
    for (std::size_t k = order_.size(); k-- > 0;)
      suffix_slices_[k] = suffix_slices_[k + 1] + slices_[order_[k]];
    current_.choices.assign(requests.size(), std::nullopt);
    best_ = current_;
    best_.placed = -1;
  }

  BatchPlan Run() {
    Visit(0);
    best_.exact = !aborted_;
    best_.nodes = nodes_;
    if (best_.placed < 0) best_ = current_;
    return best_;
  }

 private:
  bool Better(int placed, double slices) const {
    return placed > best_.placed ||
           (placed == best_.placed && slices > best_.compute_slices + 1e-9);
  }

  void Visit(std::size_t k) {
    if (aborted_) return;
    if (++nodes_ > budget_) {
      aborted_ = true;
      return;
    }
    const int remaining = static_cast<int>(order_.size() - k);
    if (!Better(current_.placed + remaining, current_.compute_slices + suffix_slices_[k])) return;
    if (k == order_.size()) {
      best_ = current_;
      return;
    }
    const std::size_t r = order_[k];
    const Request& request = requests_[r];
    std::vector<Signature> tried;
    std::vector<int> tried_gpu;
    for (const Choice& c : placer_.Rank(states_, request)) {
      // Try one GPU of each class of identical GPUs, but every placement on it.
      const Signature sig = SignatureOf(states_[c.gpu]);
      const auto seen = std::find(tried.begin(), tried.end(), sig);
      if (seen != tried.end() && tried_gpu[seen - tried.begin()] != c.gpu) continue;
      if (seen == tried.end()) {
        tried.push_back(sig);
        tried_gpu.push_back(c.gpu);
      }
      if (!Apply(states_, c, request, Owner(r), placer_.limits()).ok()) continue;
      current_.choices[r] = c;
      ++current_.placed;
      current_.compute_slices += slices_[r];
      Visit(k + 1);
      current_.compute_slices -= slices_[r];
      --current_.placed;
      current_.choices[r].reset();
      (void)Release(states_, c, request, Owner(r));
      if (aborted_) return;
    }
    Visit(k + 1);  // leave this request out
  }

  std::vector<GpuState> states_;
  std::span<const Request> requests_;
  const Placer& placer_;
  std::int64_t budget_;
  std::vector<std::size_t> order_;
  std::vector<double> slices_;
  std::vector<double> suffix_slices_;
  BatchPlan current_;
  BatchPlan best_;
  std::int64_t nodes_ = 0;
  bool aborted_ = false;
};

void EnumerateMaximal(const GpuModel& model, const MigSummary& state, std::size_t from,
                      const std::vector<std::pair<int, Placement>>& items,
                      std::vector<LayoutEntry>& current,
                      const std::function<void(const std::vector<LayoutEntry>&)>& visit) {
  bool extended = false;
  for (std::size_t i = 0; i < items.size(); ++i) {
    const auto& [profile, placement] = items[i];
    if (!state.Fits(model, profile, placement)) continue;
    extended = true;
    if (i < from) continue;  // counted in another branch; it only proves `state` is not maximal
    MigSummary next = state;
    next.Add(model, profile, placement);
    current.push_back({profile, placement});
    EnumerateMaximal(model, next, i + 1, items, current, visit);
    current.pop_back();
  }
  if (!extended && !current.empty()) visit(current);
}

bool ArrangeFrom(const GpuModel& model, const std::vector<int>& profiles, std::size_t k,
                 MigSummary& state, std::vector<LayoutEntry>& out) {
  if (k == profiles.size()) return true;
  for (const Placement& pl : model.profiles[profiles[k]].placements) {
    if (!state.Fits(model, profiles[k], pl)) continue;
    const MigSummary saved = state;
    state.Add(model, profiles[k], pl);
    out.push_back({profiles[k], pl});
    if (ArrangeFrom(model, profiles, k + 1, state, out)) return true;
    out.pop_back();
    state = saved;
  }
  return false;
}

}  // namespace

BatchPlan PlanBatchExact(std::span<const GpuState> gpus, std::span<const Request> requests,
                         const Placer& placer, std::int64_t node_budget) {
  return ExactSearch(gpus, requests, placer, node_budget).Run();
}

BatchPlan PlanBatchHeuristic(std::span<const GpuState> gpus, std::span<const Request> requests,
                             const Placer& placer) {
  std::vector<double> slices;
  const std::vector<std::size_t> largest = LargestFirst(gpus, requests, placer, &slices);
  std::vector<std::size_t> smallest(largest.rbegin(), largest.rend());
  std::vector<std::size_t> arrival(requests.size());
  std::iota(arrival.begin(), arrival.end(), 0);
  // Greedy in three orders (largest first packs big requests, smallest first places the most,
  // arrival order is what the scheduler would do), each at the Placer's choice; the best wins.
  BatchPlan best;
  best.placed = -1;
  for (const std::vector<std::size_t>* order :
       std::initializer_list<const std::vector<std::size_t>*>{&largest, &smallest, &arrival}) {
    std::vector<GpuState> states(gpus.begin(), gpus.end());
    BatchPlan plan;
    plan.choices.assign(requests.size(), std::nullopt);
    for (std::size_t r : *order) {
      absl::StatusOr<Choice> c = placer.Place(states, requests[r]);
      if (!c.ok() || !Apply(states, *c, requests[r], Owner(r), placer.limits()).ok()) continue;
      plan.choices[r] = *c;
      ++plan.placed;
      plan.compute_slices += slices[r];
    }
    if (plan.placed > best.placed ||
        (plan.placed == best.placed && plan.compute_slices > best.compute_slices)) {
      best = std::move(plan);
    }
  }
  return best;
}

BatchPlan PlanBatch(std::span<const GpuState> gpus, std::span<const Request> requests,
                    const Placer& placer, const BatchOptions& options) {
  if (static_cast<int>(requests.size()) <= options.exact_max_requests) {
    BatchPlan exact = PlanBatchExact(gpus, requests, placer, options.exact_node_budget);
    if (exact.exact) return exact;
  }
  BatchPlan heuristic = PlanBatchHeuristic(gpus, requests, placer);
  return heuristic;
}

double LayoutCoverage(const GpuModel& model, const Demand& demand,
                      std::span<const LayoutEntry> layout) {
  std::map<std::string, double> offered;  // compute slices per class
  for (const LayoutEntry& e : layout) {
    const GiProfile& p = model.profiles[e.profile];
    offered[p.size_class] += p.compute_slices;
  }
  double total_weight = 0;
  std::map<std::string, double> weight;
  for (const auto& [request, p] : demand.mix) {
    if (request.kind != Request::Kind::kMig) continue;
    const GiProfile* profile = model.FindProfile(request.profile);
    if (profile == nullptr) continue;
    weight[profile->size_class] += p * profile->compute_slices;
    total_weight += p * profile->compute_slices;
  }
  if (total_weight <= 0) return 0;
  double coverage = 0;
  for (const auto& [cls, w] : weight) {
    coverage += std::min(offered[cls], model.compute_slices * w / total_weight);
  }
  return coverage;
}

std::vector<LayoutEntry> BestStaticLayout(const GpuModel& model, const Demand& demand) {
  std::vector<std::pair<int, Placement>> items;
  for (std::size_t i = 0; i < model.profiles.size(); ++i) {
    for (const Placement& pl : model.profiles[i].placements) items.emplace_back(int(i), pl);
  }
  std::vector<LayoutEntry> best;
  std::tuple<double, int, int> best_score{-1, 0, 0};
  std::vector<LayoutEntry> current;
  EnumerateMaximal(model, MigSummary{}, 0, items, current,
                   [&](const std::vector<LayoutEntry>& layout) {
                     int compute = 0;
                     for (const LayoutEntry& e : layout)
                       compute += model.profiles[e.profile].compute_slices;
                     const std::tuple<double, int, int> score{
                         std::round(LayoutCoverage(model, demand, layout) * 1e9) / 1e9, compute,
                         -static_cast<int>(layout.size())};
                     if (score > best_score) {
                       best_score = score;
                       best = layout;
                     }
                   });
  return best;
}

absl::StatusOr<std::vector<LayoutEntry>> ArrangeLayout(const GpuModel& model,
                                                       std::span<const std::string> profiles) {
  std::vector<int> indices;
  for (const std::string& name : profiles) {
    const int i = model.ProfileIndex(name);
    if (i < 0) {
      std::vector<std::string> names;
      for (const GiProfile& p : model.profiles) names.push_back(p.name);
      return absl::InvalidArgumentError(StrCat("MIG layout: no profile \"", name, "\" on ",
                                               model.key, " (profiles: ", StrJoin(names, ", "),
                                               ")"));
    }
    indices.push_back(i);
  }
  // Largest placements first: they have the fewest places to go.
  std::stable_sort(indices.begin(), indices.end(), [&](int a, int b) {
    return model.profiles[a].memory_slices > model.profiles[b].memory_slices;
  });
  MigSummary state;
  std::vector<LayoutEntry> out;
  if (!ArrangeFrom(model, indices, 0, state, out)) {
    std::vector<std::string> names(profiles.begin(), profiles.end());
    return absl::InvalidArgumentError(
        StrCat("MIG layout [", StrJoin(names, ", "), "] does not fit one ", model.key,
               " (memory slices, compute slices or instance limits)"));
  }
  return out;
}

}  // namespace tessera::partitioner
