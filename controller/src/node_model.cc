#include "tessera/controller/node_model.h"

#include <algorithm>
#include <set>
#include <utility>

#include "tessera/api/quantity.h"
#include "tessera/api/strings.h"
#include "tessera/controller/policy.h"
#include "tessera/partitioner/device_name.h"

namespace tessera::controller {

using partitioner::GpuModel;
using partitioner::GpuState;
using partitioner::ResolvedDevice;
using partitioner::Share;
using partitioner::ShareKind;

namespace {

constexpr std::int64_t kMiB = 1024 * 1024;

std::int64_t QuantityOr(const api::Json& map, const char* key, std::int64_t divisor) {
  if (!map.is_object() || !map.contains(key) || !map[key].is_string()) return 0;
  absl::StatusOr<api::Quantity> q = api::Quantity::Parse(map[key].get<std::string>());
  if (!q.ok()) return 0;
  return (q->Value() + divisor - 1) / divisor;
}

// Everything about a GPU its model is built from.
std::string ModelFingerprint(const api::GpuInfo& gpu, std::string_view driver_version) {
  return StrCat(gpu.model, "|", gpu.product, "|", driver_version, "|",
                api::Json(gpu.mig_profiles).dump());
}

}  // namespace

std::vector<AllocatedDevice> AllocatedDevicesOf(const api::Json& claim, std::string_view driver) {
  std::vector<AllocatedDevice> out;
  const api::Json* results = nullptr;
  if (auto s = claim.find("status"); s != claim.end() && s->is_object()) {
    if (auto a = s->find("allocation"); a != s->end() && a->is_object()) {
      if (auto d = a->find("devices"); d != a->end() && d->is_object()) {
        if (auto r = d->find("results"); r != d->end() && r->is_array()) results = &*r;
      }
    }
  }
  if (results == nullptr) return out;
  const api::Json& meta = claim.value("metadata", api::Json::object());
  const std::string name =
      StrCat(meta.value("namespace", std::string()), "/", meta.value("name", std::string()));
  for (const api::Json& r : *results) {
    if (!r.is_object() || r.value("driver", std::string()) != driver) continue;
    AllocatedDevice a;
    a.pool = r.value("pool", std::string());
    a.device = r.value("device", std::string());
    a.claim = name;
    a.share_id = r.value("shareID", std::string());
    const api::Json consumed = r.value("consumedCapacity", api::Json::object());
    a.memory_mib = QuantityOr(consumed, "memory", kMiB);
    a.compute_percent = static_cast<int>(QuantityOr(consumed, "compute", 1));
    out.push_back(std::move(a));
  }
  return out;
}

NodeModeler::NodeModeler(const partitioner::Placer& placer, partitioner::ApiFeatures features)
    : placer_(placer), features_(features) {}

absl::StatusOr<NodeModel> NodeModeler::Build(const NodeModelInput& input) {
  if (input.inventory == nullptr) return absl::InvalidArgumentError("node model: no inventory");
  const api::GpuInventorySpec& inv = *input.inventory;
  NodeModel out;

  // Models, kept while the GPU reports the same thing.
  std::map<std::string, CachedModel> kept;
  bool replaced = modeler_ == nullptr;
  std::vector<const GpuModel*> models;
  for (const api::GpuInfo& gpu : inv.gpus) {
    const std::string key = gpu.uuid.empty() ? StrCat("index-", gpu.index) : gpu.uuid;
    const std::string fingerprint = ModelFingerprint(gpu, inv.driver_version);
    auto it = models_.find(key);
    CachedModel entry;
    if (it != models_.end() && it->second.fingerprint == fingerprint) {
      entry = std::move(it->second);
    } else {
      absl::StatusOr<GpuModel> m = partitioner::ModelFromInventory(gpu, inv.driver_version);
      if (!m.ok()) {
        models_.clear();  // entries were moved out above
        modeler_.reset();
        return absl::InvalidArgumentError(
            StrCat("GpuInventory spec.gpus[", gpu.index, "]: ", std::string(m.status().message())));
      }
      entry = {fingerprint, std::make_unique<GpuModel>(*std::move(m))};
      replaced = true;
    }
    models.push_back(entry.model.get());
    kept[key] = std::move(entry);
  }
  models_ = std::move(kept);
  if (replaced) {
    // The old modeler caches plans by model address; a freed model's address may be reused.
    modeler_ = std::make_unique<partitioner::DeviceModeler>(placer_, features_);
  }

  // Occupancy from allocations, then instances that exist without one.
  std::vector<GpuState> states;
  states.reserve(inv.gpus.size());
  for (const GpuModel* m : models) states.emplace_back(*m);
  auto position_of = [&](int index) -> int {
    for (std::size_t g = 0; g < inv.gpus.size(); ++g) {
      if (inv.gpus[g].index == index) return static_cast<int>(g);
    }
    return -1;
  };
  const partitioner::ShareLimits share_limits;
  for (const AllocatedDevice& a : input.allocated) {
    auto warn = [&](std::string_view why) {
      out.warnings.push_back(StrCat("allocation of ", a.device, " to claim ", a.claim, ": ", why));
    };
    absl::StatusOr<partitioner::DeviceName> name = partitioner::DeviceName::Parse(a.device);
    if (!name.ok()) {
      warn("not a device name tessera publishes");
      continue;
    }
    const int g = position_of(name->gpu);
    if (g < 0) {
      warn(StrCat("the node has no GPU ", name->gpu));
      continue;
    }
    absl::StatusOr<ResolvedDevice> r = partitioner::ResolveDeviceName(a.device, *models[g]);
    if (!r.ok()) {
      warn(std::string(r.status().message()));
      continue;
    }
    GpuState& st = states[g];
    const std::string owner = a.share_id.empty() ? a.claim : StrCat(a.claim, "#", a.share_id);
    absl::Status s;
    if (r->share) {
      std::optional<partitioner::Placement> host;
      if (r->profile >= 0) {
        host = r->placement;
        if (st.FindInstance(r->placement) == nullptr) {
          s = st.AddInstance(r->profile, r->placement, "");
        }
      }
      if (s.ok()) {
        Share share{
            .kind = *r->share, .owner = owner, .memory_mib = 0, .compute_percent = 0, .host = host};
        if (*r->share == ShareKind::kMps) {
          share.memory_mib = std::min(a.memory_mib, st.FreeShareMemory(host));
          share.compute_percent = std::clamp(a.compute_percent, 1, 100);
          share.compute_percent =
              std::min(share.compute_percent, std::max(1, st.FreeSharePercent(host)));
        }
        s = st.AddShare(share, share_limits);
      }
    } else if (r->profile >= 0) {
      s = st.AddInstance(r->profile, r->placement, owner);
    } else {
      s = st.AcquireWhole(owner);
    }
    if (!s.ok()) warn(std::string(s.message()));
  }
  for (std::size_t g = 0; g < inv.gpus.size(); ++g) {
    const GpuModel& model = *models[g];
    for (const api::MigInstanceInfo& mi : inv.gpus[g].mig_instances) {
      const partitioner::Placement p{mi.placement.start, mi.placement.size};
      if (states[g].FindInstance(p) != nullptr) continue;
      const int profile = model.ProfileIndex(mi.profile);
      if (profile < 0) continue;
      // Refused when it overlaps an allocation: the allocation is what the scheduler counts.
      states[g].AddInstance(profile, p, "").IgnoreError();
    }
    out.occupancy.push_back(states[g].Describe());
  }

  std::vector<partitioner::GpuInput> gpus;
  for (const api::GpuInfo& gpu : inv.gpus) {
    gpus.push_back(
        {.info = &gpu,
         .policy = input.policy == nullptr ? nullptr : PolicyForGpu(*input.policy, gpu)});
  }
  std::set<std::string> allocated;
  for (const AllocatedDevice& a : input.allocated) allocated.insert(a.device);
  absl::StatusOr<partitioner::NodeDevices> devices =
      modeler_->Build({.states = states,
                       .gpus = gpus,
                       .driver_version = inv.driver_version,
                       .cuda_driver_version = inv.cuda_driver_version,
                       .allocated = &allocated});
  if (!devices.ok()) return devices.status();
  out.devices = *std::move(devices);
  for (std::string& w : out.devices.warnings) out.warnings.push_back(w);
  return out;
}

}  // namespace tessera::controller
