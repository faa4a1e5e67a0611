#include "tessera/partitioner/gpu_state.h"

#include <algorithm>

#include "tessera/api/strings.h"

namespace tessera::partitioner {
namespace {

std::string PlacementText(Placement p) { return StrCat("{", p.start, ",", p.size, "}"); }

bool SameHost(const std::optional<Placement>& a, const std::optional<Placement>& b) {
  return a.has_value() == b.has_value() && (!a || *a == *b);
}

}  // namespace

std::string_view ShareKindName(ShareKind kind) {
  return kind == ShareKind::kMps ? "mps" : "timeslice";
}

MigSummary::Refusal MigSummary::Check(const GpuModel& model, int profile,
                                      Placement placement) const {
  const GiProfile& p = model.profiles[profile];
  if (std::find(p.placements.begin(), p.placements.end(), placement) == p.placements.end()) {
    return Refusal::kPlacement;
  }
  if (busy) return Refusal::kBusy;
  if ((used & placement.mask()) != 0) return Refusal::kOverlap;
  if (count[profile] >= p.max_instances) return Refusal::kCount;
  if (p.media_extension && media) return Refusal::kMedia;
  if (!model.four_and_three_coexist) {
    const std::string& c = p.size_class;
    for (std::size_t i = 0; i < model.profiles.size(); ++i) {
      if (count[i] == 0) continue;
      const std::string& other = model.profiles[i].size_class;
      if ((c == "4g" && other == "3g") || (c == "3g" && other == "4g")) return Refusal::kFourThree;
    }
  }
  if (compute + p.compute_slices > model.compute_slices) return Refusal::kCompute;
  return Refusal::kNone;
}

bool MigSummary::FitsAnywhere(const GpuModel& model, int profile) const {
  for (const Placement& pl : model.profiles[profile].placements) {
    if (Fits(model, profile, pl)) return true;
  }
  return false;
}

void MigSummary::Add(const GpuModel& model, int profile, Placement placement) {
  const GiProfile& p = model.profiles[profile];
  used |= placement.mask();
  compute += p.compute_slices;
  media |= p.media_extension;
  ++count[profile];
}

absl::Status GpuState::CheckInstance(int profile, Placement placement) const {
  if (profile < 0 || profile >= static_cast<int>(model_->profiles.size()) ||
      profile >= MigSummary::kMaxProfiles) {
    return absl::InvalidArgumentError(StrCat("unknown profile index ", profile));
  }
  const GiProfile& p = model_->profiles[profile];
  const std::string what = StrCat(p.name, "@", placement.start);
  switch (mig_.Check(*model_, profile, placement)) {
    case MigSummary::Refusal::kNone:
      return absl::OkStatus();
    case MigSummary::Refusal::kPlacement:
      return absl::InvalidArgumentError(
          StrCat(what, ": placement ", PlacementText(placement), " is not one of ", p.name, "'s"));
    case MigSummary::Refusal::kBusy:
      if (whole_owner_) {
        return absl::FailedPreconditionError(
            StrCat(what, ": the whole GPU is in use by ", *whole_owner_));
      }
      return absl::FailedPreconditionError(
          StrCat(what, ": the whole GPU carries ", ShareKindName(shares_.front().kind), " shares"));
    case MigSummary::Refusal::kOverlap:
      return absl::FailedPreconditionError(
          StrCat(what, ": memory slices overlap instances ", Describe()));
    case MigSummary::Refusal::kCount:
      return absl::FailedPreconditionError(
          StrCat(what, ": ", p.name, " allows at most ", p.max_instances, " instance(s)"));
    case MigSummary::Refusal::kMedia:
      return absl::FailedPreconditionError(
          StrCat(what, ": the GPU's media engines already belong to another +me instance"));
    case MigSummary::Refusal::kFourThree:
      return absl::FailedPreconditionError(
          StrCat(what, ": a 4g and a 3g cannot coexist before driver R510"));
    case MigSummary::Refusal::kCompute:
      return absl::FailedPreconditionError(StrCat(what, ": needs ", p.compute_slices,
                                                  " compute slices, ",
                                                  model_->compute_slices - mig_.compute, " free"));
  }
  return absl::InternalError("unreachable");
}

absl::Status GpuState::AddInstance(int profile, Placement placement, std::string owner) {
  if (absl::Status s = CheckInstance(profile, placement); !s.ok()) return s;
  instances_.push_back({profile, placement, std::move(owner)});
  mig_.Add(*model_, profile, placement);
  return absl::OkStatus();
}

absl::Status GpuState::RemoveInstance(Placement placement) {
  auto it = std::find_if(instances_.begin(), instances_.end(),
                         [&](const Instance& i) { return i.placement == placement; });
  if (it == instances_.end()) {
    return absl::NotFoundError(StrCat("no instance at ", PlacementText(placement)));
  }
  for (const Share& s : shares_) {
    if (s.host && *s.host == placement) {
      return absl::FailedPreconditionError(
          StrCat("instance at ", PlacementText(placement), " still hosts the share of ", s.owner));
    }
  }
  instances_.erase(it);
  Resummarize();
  return absl::OkStatus();
}

void GpuState::Resummarize() {
  MigSummary m;
  for (const Instance& i : instances_) m.Add(*model_, i.profile, i.placement);
  m.busy = whole_owner_.has_value() ||
           std::any_of(shares_.begin(), shares_.end(), [](const Share& s) { return !s.host; });
  mig_ = m;
}

std::vector<Placement> GpuState::FreePlacements(int profile) const {
  std::vector<Placement> out;
  if (profile < 0 || profile >= static_cast<int>(model_->profiles.size())) return out;
  for (const Placement& p : model_->profiles[profile].placements) {
    if (mig_.Fits(*model_, profile, p)) out.push_back(p);
  }
  return out;
}

const Instance* GpuState::FindInstance(Placement placement) const {
  for (const Instance& i : instances_) {
    if (i.placement == placement) return &i;
  }
  return nullptr;
}

absl::Status GpuState::CheckWhole() const {
  if (whole_owner_)
    return absl::FailedPreconditionError(StrCat("whole GPU in use by ", *whole_owner_));
  if (!instances_.empty()) {
    return absl::FailedPreconditionError(StrCat("whole GPU: MIG instances exist: ", Describe()));
  }
  if (!shares_.empty()) {
    return absl::FailedPreconditionError(StrCat("whole GPU: ", shares_.size(), " ",
                                                ShareKindName(shares_[0].kind), " share(s) exist"));
  }
  return absl::OkStatus();
}

absl::Status GpuState::AcquireWhole(std::string owner) {
  if (absl::Status s = CheckWhole(); !s.ok()) return s;
  whole_owner_ = std::move(owner);
  Resummarize();
  return absl::OkStatus();
}

absl::Status GpuState::ReleaseWhole() {
  if (!whole_owner_) return absl::NotFoundError("the whole GPU is not in use");
  whole_owner_.reset();
  Resummarize();
  return absl::OkStatus();
}

std::int64_t GpuState::HostMemory(const std::optional<Placement>& host) const {
  if (!host) return model_->memory_mib;
  const Instance* i = FindInstance(*host);
  return i == nullptr ? 0 : model_->profiles[i->profile].memory_mib;
}

std::int64_t GpuState::FreeShareMemory(const std::optional<Placement>& host) const {
  std::int64_t used = 0;
  for (const Share& s : shares_) {
    if (SameHost(s.host, host)) used += s.memory_mib;
  }
  return HostMemory(host) - used;
}

int GpuState::FreeSharePercent(const std::optional<Placement>& host) const {
  int used = 0;
  for (const Share& s : shares_) {
    if (SameHost(s.host, host)) used += s.compute_percent;
  }
  return 100 - used;
}

absl::Status GpuState::CheckShare(const Share& share, const ShareLimits& limits) const {
  const std::string where = share.host
                                ? StrCat(ShareKindName(share.kind), " share in the instance at ",
                                         PlacementText(*share.host))
                                : StrCat(ShareKindName(share.kind), " share of the whole GPU");
  if (whole_owner_) {
    return absl::FailedPreconditionError(StrCat(where, ": whole GPU in use by ", *whole_owner_));
  }
  if (share.host) {
    if (FindInstance(*share.host) == nullptr) {
      return absl::FailedPreconditionError(StrCat(where, ": no such instance"));
    }
  } else if (!instances_.empty()) {
    return absl::FailedPreconditionError(StrCat(where, ": MIG instances exist: ", Describe()));
  }
  int count = 0;
  for (const Share& s : shares_) {
    if (!SameHost(s.host, share.host)) continue;
    if (s.kind != share.kind) {
      return absl::FailedPreconditionError(
          StrCat(where, ": the host already carries ", ShareKindName(s.kind), " shares"));
    }
    ++count;
  }
  if (share.kind == ShareKind::kTimeSlice) {
    if (count >= limits.max_timeslice_shares) {
      return absl::FailedPreconditionError(StrCat(where, ": already ", count,
                                                  " time-slice shares (limit ",
                                                  limits.max_timeslice_shares, ")"));
    }
    return absl::OkStatus();
  }
  if (share.compute_percent < 1 || share.compute_percent > 100) {
    return absl::InvalidArgumentError(
        StrCat(where, ": compute percent ", share.compute_percent, " is not in [1, 100]"));
  }
  if (share.memory_mib <= 0) {
    return absl::InvalidArgumentError(
        StrCat(where, ": memory ", share.memory_mib, " MiB is not positive"));
  }
  if (count >= limits.max_mps_clients) {
    return absl::FailedPreconditionError(
        StrCat(where, ": already ", count, " MPS clients (limit ", limits.max_mps_clients, ")"));
  }
  if (share.memory_mib > FreeShareMemory(share.host)) {
    return absl::FailedPreconditionError(StrCat(where, ": needs ", share.memory_mib, " MiB, ",
                                                FreeShareMemory(share.host), " MiB free"));
  }
  if (share.compute_percent > FreeSharePercent(share.host)) {
    return absl::FailedPreconditionError(StrCat(where, ": needs ", share.compute_percent,
                                                "% compute, ", FreeSharePercent(share.host),
                                                "% free"));
  }
  return absl::OkStatus();
}

absl::Status GpuState::AddShare(Share share, const ShareLimits& limits) {
  if (absl::Status s = CheckShare(share, limits); !s.ok()) return s;
  shares_.push_back(std::move(share));
  Resummarize();
  return absl::OkStatus();
}

absl::Status GpuState::RemoveShare(std::string_view owner) {
  auto it = std::find_if(shares_.begin(), shares_.end(),
                         [&](const Share& s) { return s.owner == owner; });
  if (it == shares_.end()) return absl::NotFoundError(StrCat("no share of ", owner));
  shares_.erase(it);
  Resummarize();
  return absl::OkStatus();
}

std::string GpuState::Describe() const {
  if (whole_owner_) return StrCat("whole(", *whole_owner_, ")");
  std::vector<Instance> sorted = instances_;
  std::sort(sorted.begin(), sorted.end(),
            [](const Instance& a, const Instance& b) { return a.placement < b.placement; });
  std::vector<std::string> parts;
  for (const Instance& i : sorted) {
    parts.push_back(StrCat(model_->profiles[i.profile].name, "@", i.placement.start));
  }
  if (parts.empty()) return "empty";
  return StrJoin(parts, " + ");
}

}  // namespace tessera::partitioner
