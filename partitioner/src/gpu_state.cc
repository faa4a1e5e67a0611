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

absl::Status GpuState::CheckInstance(int profile, Placement placement) const {
  if (profile < 0 || profile >= static_cast<int>(model_->profiles.size())) {
    return absl::InvalidArgumentError(StrCat("unknown profile index ", profile));
  }
  const GiProfile& p = model_->profiles[profile];
  const std::string what = StrCat(p.name, "@", placement.start);
  if (std::find(p.placements.begin(), p.placements.end(), placement) == p.placements.end()) {
    return absl::InvalidArgumentError(
        StrCat(what, ": placement ", PlacementText(placement), " is not one of ", p.name, "'s"));
  }
  if (whole_owner_) {
    return absl::FailedPreconditionError(
        StrCat(what, ": the whole GPU is in use by ", *whole_owner_));
  }
  for (const Share& s : shares_) {
    if (!s.host) {
      return absl::FailedPreconditionError(
          StrCat(what, ": the whole GPU carries ", ShareKindName(s.kind), " shares"));
    }
  }
  if ((used_ & placement.mask()) != 0) {
    return absl::FailedPreconditionError(
        StrCat(what, ": memory slices overlap instances ", Describe()));
  }
  int same = 0;
  bool media = false, four = false, three = false;
  for (const Instance& i : instances_) {
    const GiProfile& other = model_->profiles[i.profile];
    same += i.profile == profile;
    media |= other.media_extension;
    four |= other.size_class == "4g";
    three |= other.size_class == "3g";
  }
  if (same >= p.max_instances) {
    return absl::FailedPreconditionError(
        StrCat(what, ": ", p.name, " allows at most ", p.max_instances, " instance(s)"));
  }
  if (p.media_extension && media) {
    return absl::FailedPreconditionError(
        StrCat(what, ": the GPU's media engines already belong to another +me instance"));
  }
  if (!model_->four_and_three_coexist &&
      ((p.size_class == "4g" && three) || (p.size_class == "3g" && four))) {
    return absl::FailedPreconditionError(
        StrCat(what, ": a 4g and a 3g cannot coexist before driver R510"));
  }
  if (compute_used_ + p.compute_slices > model_->compute_slices) {
    return absl::FailedPreconditionError(StrCat(what, ": needs ", p.compute_slices,
                                                " compute slices, ",
                                                model_->compute_slices - compute_used_, " free"));
  }
  return absl::OkStatus();
}

absl::Status GpuState::AddInstance(int profile, Placement placement, std::string owner) {
  if (absl::Status s = CheckInstance(profile, placement); !s.ok()) return s;
  instances_.push_back({profile, placement, std::move(owner)});
  used_ |= placement.mask();
  compute_used_ += model_->profiles[profile].compute_slices;
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
  used_ &= static_cast<SliceMask>(~placement.mask());
  compute_used_ -= model_->profiles[it->profile].compute_slices;
  instances_.erase(it);
  return absl::OkStatus();
}

std::vector<Placement> GpuState::FreePlacements(int profile) const {
  std::vector<Placement> out;
  if (profile < 0 || profile >= static_cast<int>(model_->profiles.size())) return out;
  for (const Placement& p : model_->profiles[profile].placements) {
    if (CheckInstance(profile, p).ok()) out.push_back(p);
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
  return absl::OkStatus();
}

absl::Status GpuState::ReleaseWhole() {
  if (!whole_owner_) return absl::NotFoundError("the whole GPU is not in use");
  whole_owner_.reset();
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
  return absl::OkStatus();
}

absl::Status GpuState::RemoveShare(std::string_view owner) {
  auto it = std::find_if(shares_.begin(), shares_.end(),
                         [&](const Share& s) { return s.owner == owner; });
  if (it == shares_.end()) return absl::NotFoundError(StrCat("no share of ", owner));
  shares_.erase(it);
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
