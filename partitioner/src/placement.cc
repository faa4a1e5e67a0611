#include "tessera/partitioner/placement.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <tuple>

#include "tessera/api/strings.h"
#include "text.h"

namespace tessera::partitioner {
namespace {

constexpr Policy kPolicies[] = {Policy::kFirstFit, Policy::kNameSorted, Policy::kBestFit,
                                Policy::kFgd, Policy::kTessera};

constexpr std::string_view kMigClasses[] = {"1g", "1g+me", "1g.2x", "2g", "3g", "4g", "7g"};

using internal::ParseFiniteDouble;
using internal::ParseInt;

// The size of the largest free aligned block of memory slices that contains `p` (p's own size if
// only p is free). A smaller hole is a tighter fit.
int HoleSize(const MigSummary& m, const GpuModel& model, Placement p) {
  int hole = p.size;
  for (int size = p.size * 2; size <= model.memory_slices; size *= 2) {
    const Placement block{p.start - p.start % size, size};
    if ((m.used & block.mask()) != 0) break;
    hole = size;
  }
  return hole;
}

bool Empty(const MigSummary& m) { return m.used == 0 && !m.busy && m.compute == 0; }

// Expected fragmentation of one GPU (FGD adapted to MIG): the compute slices that stay free but are
// useless to each demand class that could not be placed here, weighted by the class's probability.
double Fragmentation(const MigSummary& m, const GpuModel& model, const Demand& demand) {
  if (m.busy) return 0;  // whole or shared: no MIG capacity left to strand
  const int free_compute = model.compute_slices - m.compute;
  if (free_compute == 0) return 0;
  double f = 0;
  for (const auto& [request, p] : demand.mix) {
    bool fits = false;
    if (request.kind == Request::Kind::kMig) {
      const int profile = model.ProfileIndex(request.profile);
      fits = profile >= 0 && m.FitsAnywhere(model, profile);
    } else {
      fits = Empty(m);  // whole GPUs and shares of the whole GPU need an empty GPU
    }
    if (!fits) f += p * free_compute;
  }
  return f;
}

using Candidate = Placer::Scored;

std::string GpuName(int gpu) { return StrCat("gpu-", gpu); }

}  // namespace

absl::StatusOr<Request> Request::Parse(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(StrCat("request \"", text, "\": ", why));
  };
  Request r;
  if (text == "whole") return r;
  if (text == "ts") {
    r.kind = Kind::kTimeSlice;
    return r;
  }
  if (text.substr(0, 4) == "mig:") {
    r.kind = Kind::kMig;
    r.profile = std::string(text.substr(4));
    if (std::find(std::begin(kMigClasses), std::end(kMigClasses), r.profile) ==
        std::end(kMigClasses)) {
      return bad(StrCat("unknown MIG profile class \"", r.profile,
                        "\" (allowed: 1g, 1g+me, 1g.2x, 2g, 3g, 4g, 7g)"));
    }
    return r;
  }
  if (text.substr(0, 4) == "mps:") {
    r.kind = Kind::kMps;
    std::string_view rest = text.substr(4);
    const auto colon = rest.find(':');
    if (colon == std::string_view::npos) return bad("expected mps:<memory GiB>:<compute percent>");
    double gib = 0;
    if (!ParseFiniteDouble(rest.substr(0, colon), &gib) || gib <= 0) {
      return bad(StrCat("memory \"", rest.substr(0, colon), "\" is not a positive number of GiB"));
    }
    if (!ParseInt(rest.substr(colon + 1), &r.compute_percent) || r.compute_percent < 1 ||
        r.compute_percent > 100) {
      return bad(StrCat("compute percent \"", rest.substr(colon + 1), "\" is not in [1, 100]"));
    }
    r.memory_mib = static_cast<std::int64_t>(std::llround(gib * 1024));
    return r;
  }
  return bad("unknown kind (allowed: whole, mig:<class>, mps:<GiB>:<percent>, ts)");
}

std::string Request::ToString() const {
  switch (kind) {
    case Kind::kWhole:
      return "whole";
    case Kind::kTimeSlice:
      return "ts";
    case Kind::kMig:
      return StrCat("mig:", profile);
    case Kind::kMps: {
      const double gib = static_cast<double>(memory_mib) / 1024;
      std::string g = std::to_string(gib);
      g.erase(g.find_last_not_of('0') + 1);
      if (g.back() == '.') g.pop_back();
      return StrCat("mps:", g, ":", compute_percent);
    }
  }
  return "?";
}

double Request::ComputeSlices(const GpuModel& model, const ShareLimits& limits) const {
  switch (kind) {
    case Kind::kWhole:
      return model.compute_slices;
    case Kind::kTimeSlice:
      return static_cast<double>(model.compute_slices) / std::max(1, limits.max_timeslice_shares);
    case Kind::kMps:
      return model.compute_slices * compute_percent / 100.0;
    case Kind::kMig: {
      const GiProfile* p = model.FindProfile(profile);
      return p == nullptr ? 0 : p->compute_slices;
    }
  }
  return 0;
}

absl::StatusOr<Policy> ParsePolicy(std::string_view name) {
  for (Policy p :
       {Policy::kFirstFit, Policy::kNameSorted, Policy::kBestFit, Policy::kFgd, Policy::kTessera}) {
    if (PolicyName(p) == name) return p;
  }
  return absl::InvalidArgumentError(
      StrCat("unknown policy \"", name, "\" (allowed: ", PolicyNames(), ")"));
}

std::string_view PolicyName(Policy policy) {
  switch (policy) {
    case Policy::kFirstFit:
      return "first-fit";
    case Policy::kNameSorted:
      return "name-sorted";
    case Policy::kBestFit:
      return "best-fit";
    case Policy::kFgd:
      return "fgd";
    case Policy::kTessera:
      return "tessera";
  }
  return "?";
}

std::string PolicyNames() {
  std::vector<std::string_view> names;
  for (Policy p : kPolicies) names.push_back(PolicyName(p));
  return StrJoin(names, ", ");
}

Demand Demand::Uniform() {
  Demand d;
  for (std::string_view c : {"1g", "2g", "3g", "4g", "7g"}) {
    d.mix.emplace_back(Request{.kind = Request::Kind::kMig, .profile = std::string(c)}, 0.2);
  }
  return d;
}

std::vector<Choice> Placer::Rank(std::span<const GpuState> gpus, const Request& request) const {
  std::vector<Choice> out;
  for (const Scored& s : RankScored(gpus, request)) out.push_back(s.choice);
  return out;
}

std::vector<Placer::Scored> Placer::RankScored(std::span<const GpuState> gpus,
                                               const Request& request) const {
  std::vector<Candidate> candidates;
  // Position of each GPU in string order of device names, computed once per call.
  std::vector<double> name_rank;
  if (policy_ == Policy::kNameSorted) {
    std::vector<std::pair<std::string, int>> names;
    for (std::size_t g = 0; g < gpus.size(); ++g) {
      names.emplace_back(GpuName(static_cast<int>(g)), static_cast<int>(g));
    }
    std::sort(names.begin(), names.end());
    name_rank.resize(gpus.size());
    for (std::size_t k = 0; k < names.size(); ++k) name_rank[names[k].second] = double(k);
  }
  auto name_key = [&](int gpu) { return name_rank[gpu]; };
  for (std::size_t gi = 0; gi < gpus.size(); ++gi) {
    const int g = static_cast<int>(gi);
    const GpuState& gpu = gpus[gi];
    const GpuModel& model = gpu.model();
    const double fullness = -static_cast<double>(gpu.compute_slices_used());
    switch (request.kind) {
      case Request::Kind::kMig: {
        const int profile = model.ProfileIndex(request.profile);
        if (profile < 0) break;
        const MigSummary& before = gpu.mig();
        double f_before = -1;
        for (const Placement& pl : model.profiles[profile].placements) {
          if (!before.Fits(model, profile, pl)) continue;
          Candidate c{{g, profile, pl}, {}};
          switch (policy_) {
            case Policy::kFirstFit:
              c.score = {double(g), double(pl.start), 0, 0, 0};
              break;
            case Policy::kNameSorted:
              c.score = {name_key(g), double(pl.start), 0, 0, 0};
              break;
            case Policy::kBestFit:
              c.score = {fullness, double(HoleSize(before, model, pl)), double(g), double(pl.start),
                         0};
              break;
            case Policy::kFgd:
            case Policy::kTessera: {
              if (f_before < 0) f_before = Fragmentation(before, model, demand_);
              MigSummary after = before;
              after.Add(model, profile, pl);
              const double growth = Fragmentation(after, model, demand_) - f_before;
              if (policy_ == Policy::kFgd) {
                c.score = {growth, double(g), double(pl.start), 0, 0};
              } else {
                c.score = {growth, fullness, double(HoleSize(before, model, pl)), double(g),
                           double(pl.start)};
              }
              break;
            }
          }
          candidates.push_back(c);
        }
        break;
      }
      case Request::Kind::kWhole: {
        if (!gpu.CheckWhole().ok()) break;
        const double order = policy_ == Policy::kNameSorted ? name_key(g) : double(g);
        // Every free GPU is as good as another for a whole request: score them equal on the
        // leading terms so that, across nodes, the cluster-level tie-breaks decide.
        if (policy_ == Policy::kTessera || policy_ == Policy::kFgd) {
          candidates.push_back({{g, -1, {}}, {0, 0, 0, order, 0}});
        } else {
          candidates.push_back({{g, -1, {}}, {order, 0, 0, 0, 0}});
        }
        break;
      }
      case Request::Kind::kMps:
      case Request::Kind::kTimeSlice: {
        Share share{
            .kind = request.kind == Request::Kind::kMps ? ShareKind::kMps : ShareKind::kTimeSlice,
            .owner = "",
            .memory_mib = request.memory_mib,
            .compute_percent = request.compute_percent};
        if (!gpu.CheckShare(share, limits_).ok()) break;
        Candidate c{{g, -1, {}}, {}};
        if (policy_ == Policy::kFirstFit) {
          c.score = {double(g), 0, 0, 0, 0};
        } else if (policy_ == Policy::kNameSorted) {
          c.score = {name_key(g), 0, 0, 0, 0};
        } else {
          // Join the GPU whose shares leave the least behind; open an empty GPU last.
          const bool opened = !gpu.shares().empty();
          const double left = request.kind == Request::Kind::kMps
                                  ? gpu.FreeSharePercent(std::nullopt) - request.compute_percent
                                  : -static_cast<double>(gpu.shares().size());
          c.score = {opened ? 0.0 : 1.0, left, double(g), 0, 0};
        }
        candidates.push_back(c);
        break;
      }
    }
  }
  std::stable_sort(candidates.begin(), candidates.end(),
                   [](const Candidate& a, const Candidate& b) { return a.score < b.score; });
  return candidates;
}

absl::StatusOr<Choice> Placer::Place(std::span<const GpuState> gpus, const Request& request) const {
  std::vector<Choice> ranked = Rank(gpus, request);
  if (ranked.empty()) {
    return absl::ResourceExhaustedError(
        StrCat(request.ToString(), ": no GPU of ", gpus.size(), " has room"));
  }
  return ranked.front();
}

absl::Status Apply(std::span<GpuState> gpus, const Choice& choice, const Request& request,
                   const std::string& owner, const ShareLimits& limits) {
  if (choice.gpu < 0 || choice.gpu >= static_cast<int>(gpus.size())) {
    return absl::InvalidArgumentError(StrCat("no GPU ", choice.gpu));
  }
  GpuState& gpu = gpus[choice.gpu];
  switch (request.kind) {
    case Request::Kind::kMig:
      return gpu.AddInstance(choice.profile, choice.placement, owner);
    case Request::Kind::kWhole:
      return gpu.AcquireWhole(owner);
    case Request::Kind::kMps:
      return gpu.AddShare({.kind = ShareKind::kMps,
                           .owner = owner,
                           .memory_mib = request.memory_mib,
                           .compute_percent = request.compute_percent},
                          limits);
    case Request::Kind::kTimeSlice:
      return gpu.AddShare({.kind = ShareKind::kTimeSlice, .owner = owner}, limits);
  }
  return absl::InternalError("unreachable");
}

absl::Status Release(std::span<GpuState> gpus, const Choice& choice, const Request& request,
                     const std::string& owner) {
  if (choice.gpu < 0 || choice.gpu >= static_cast<int>(gpus.size())) {
    return absl::InvalidArgumentError(StrCat("no GPU ", choice.gpu));
  }
  GpuState& gpu = gpus[choice.gpu];
  switch (request.kind) {
    case Request::Kind::kMig:
      return gpu.RemoveInstance(choice.placement);
    case Request::Kind::kWhole:
      return gpu.ReleaseWhole();
    case Request::Kind::kMps:
    case Request::Kind::kTimeSlice:
      return gpu.RemoveShare(owner);
  }
  return absl::InternalError("unreachable");
}

}  // namespace tessera::partitioner
