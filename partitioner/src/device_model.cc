#include "tessera/partitioner/device_model.h"

#include <algorithm>
#include <array>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_set>

#include "tessera/api/strings.h"
#include "tessera/partitioner/device_name.h"

namespace tessera::partitioner {
namespace {

using api::CapacityRequestPolicy;
using api::CapacityRequestPolicyRange;
using api::Counter;
using api::Device;
using api::DeviceAttribute;
using api::DeviceCapacity;
using api::PartitionMode;
using api::Quantity;

constexpr std::int64_t kMiB = 1024 * 1024;
// Share memory is requested in steps of 128 MiB: every MIG profile's memory is a multiple of it.
constexpr std::int64_t kShareMemoryStepMib = 128;
constexpr int kMpsClientLimit = 48;  // the MPS server's clients per device
constexpr int kDefaultTimeSliceShares = 16;
constexpr int kDefaultShareCount = 4;  // fixed share devices, and the default share size 1/4

Quantity Mebibytes(std::int64_t mib) {
  return Quantity::FromInt64(mib * kMiB, Quantity::Format::kBinarySI);
}
Quantity Number(std::int64_t n) { return Quantity::FromInt64(n); }

// The most a set of instances can use, per informational counter, over every valid layout.
struct Usage {
  enum { kMultiprocessors, kMemory, kCopy, kDecoders, kEncoders, kJpeg, kOfa, kCount };
};
using UsageVector = std::array<std::int64_t, Usage::kCount>;

UsageVector ProfileUsage(const GiProfile& p) {
  return {p.multiprocessors,  p.memory_mib,   p.engines.copy, p.engines.decoders,
          p.engines.encoders, p.engines.jpeg, p.engines.ofa};
}

void MaxUsage(const GpuModel& model, const std::vector<std::pair<int, Placement>>& items,
              std::size_t from, const MigSummary& state, const UsageVector& sum, UsageVector* max) {
  for (int k = 0; k < Usage::kCount; ++k) (*max)[k] = std::max((*max)[k], sum[k]);
  for (std::size_t i = from; i < items.size(); ++i) {
    const auto& [profile, placement] = items[i];
    if (!state.Fits(model, profile, placement)) continue;
    MigSummary next = state;
    next.Add(model, profile, placement);
    UsageVector s = sum;
    const UsageVector u = ProfileUsage(model.profiles[profile]);
    for (int k = 0; k < Usage::kCount; ++k) s[k] += u[k];
    MaxUsage(model, items, i + 1, next, s, max);
  }
}

// The most pairwise-disjoint placements of one profile (placements are aligned intervals).
int DisjointPlacements(const GiProfile& p) {
  std::vector<Placement> sorted = p.placements;
  std::sort(sorted.begin(), sorted.end(),
            [](Placement a, Placement b) { return a.start + a.size < b.start + b.size; });
  int n = 0;
  int end = -1;
  for (const Placement& pl : sorted) {
    if (pl.start >= end) {
      ++n;
      end = pl.start + pl.size;
    }
  }
  return n;
}

bool ProfileAllowed(const api::GpuPolicy* policy, const GiProfile& p) {
  if (policy == nullptr || policy->allowed_profiles.empty()) return true;
  for (const std::string& a : policy->allowed_profiles) {
    if (a == p.name || a == p.size_class) return true;
  }
  return false;
}

// Everything Build needs about one GPU.
struct GpuContext {
  int position = 0;  // in NodeInput (the Placer's GPU number)
  int index = 0;     // the GPU's own index, used in names
  const api::GpuInfo* info = nullptr;
  const GpuState* state = nullptr;
  const GpuModel* model = nullptr;
  const CounterPlan* plan = nullptr;  // null: publish no counters
  PartitionMode mode = PartitionMode::kWhole;
  std::optional<ShareKind> instance_sharing;
  api::ShareLimits limits;
  mutable std::map<std::string, DeviceAttribute> base;  // filled on the first cache miss
  std::vector<bool> profile_published;
  std::vector<std::string> tokens;  // device-name token per profile
  DeviceModeler::GpuCache* cache = nullptr;
};

// What one device is: the whole GPU, a MIG placement, or a share device on either.
struct Spec {
  int profile = -1;
  Placement placement{};
  std::optional<ShareKind> share{};
  int slot = -1;
};

// A number that identifies a device among those of one GPU.
std::uint32_t DeviceKey(const Spec& s) {
  const std::uint32_t share = s.share ? (*s.share == ShareKind::kMps ? 1 : 2) : 0;
  return (std::uint32_t(s.profile + 1) << 24) | (std::uint32_t(s.placement.start) << 20) |
         (share << 16) | std::uint32_t(s.slot + 1);
}

std::string NameOf(const GpuContext& gpu, const Spec& s) {
  DeviceName n{.gpu = gpu.index};
  if (s.profile >= 0) n.mig = DeviceName::Mig{gpu.tokens[s.profile], s.placement.start};
  n.share = s.share;
  n.slot = s.slot;
  return n.ToString();
}

int ShareCount(const GpuContext& gpu) {
  return gpu.limits.max_shares > 0 ? gpu.limits.max_shares : kDefaultShareCount;
}

void AddShareCapacity(const GpuContext& gpu, ShareKind kind, std::int64_t host_mib, bool shared,
                      Device* d) {
  const int count = ShareCount(gpu);
  if (!shared) {
    d->capacity["memory"] = {Mebibytes(host_mib / count), std::nullopt};
    if (kind == ShareKind::kMps) d->capacity["compute"] = {Number(100 / count), std::nullopt};
    d->attributes["shareCount"] = DeviceAttribute::Int(count);
    return;
  }
  const int clients =
      kind == ShareKind::kMps
          ? (gpu.limits.max_shares > 0 ? std::min(gpu.limits.max_shares, kMpsClientLimit)
                                       : kMpsClientLimit)
          : (gpu.limits.max_shares > 0 ? gpu.limits.max_shares : kDefaultTimeSliceShares);
  d->capacity["clients"] = {Number(clients), CapacityRequestPolicy{.default_value = Number(1),
                                                                   .valid_values = {Number(1)}}};
  const std::int64_t step = kShareMemoryStepMib;
  const std::int64_t max_mib = host_mib / step * step;
  std::int64_t min_mib = kind == ShareKind::kMps ? step : 0;
  if (kind == ShareKind::kMps && gpu.limits.min_memory) {
    const std::int64_t want = (gpu.limits.min_memory->Value() + kMiB - 1) / kMiB;
    min_mib = std::clamp((want + step - 1) / step * step, step, max_mib);
  }
  const std::int64_t default_mib =
      kind == ShareKind::kMps ? std::clamp(host_mib / count / step * step, min_mib, max_mib) : 0;
  d->capacity["memory"] = {
      Mebibytes(host_mib),
      CapacityRequestPolicy{
          .default_value = Mebibytes(default_mib),
          .valid_range = CapacityRequestPolicyRange{
              .min = Mebibytes(min_mib), .max = Mebibytes(max_mib), .step = Mebibytes(step)}}};
  if (kind == ShareKind::kMps) {
    const int min_pct = std::clamp(gpu.limits.min_compute_percent.value_or(1), 1, 100);
    const int default_pct = std::clamp(100 / count, min_pct, 100);
    d->capacity["compute"] = {
        Number(100),
        CapacityRequestPolicy{.default_value = Number(default_pct),
                              .valid_range = CapacityRequestPolicyRange{
                                  .min = Number(min_pct), .max = Number(100), .step = Number(1)}}};
  }
}

api::DeviceCounterConsumption Consumption(const GpuContext& gpu, const Spec& s) {
  const CounterPlan& plan = *gpu.plan;
  api::DeviceCounterConsumption c{.counter_set = CounterSetName(gpu.index), .counters = {}};
  if (s.profile < 0) {  // the whole GPU takes everything
    for (const CounterPlan::Entry& e : plan.counters) {
      c.counters.emplace(e.name, Counter{e.memory ? Mebibytes(e.value) : Number(e.value)});
    }
    return c;
  }
  for (int k = s.placement.start; k < s.placement.start + s.placement.size; ++k) {
    c.counters.emplace(plan.counters[k].name, Counter{Number(1)});
  }
  for (const auto& [counter, amount] : plan.profile_use[s.profile]) {
    const CounterPlan::Entry& e = plan.counters[counter];
    c.counters.emplace(e.name, Counter{e.memory ? Mebibytes(amount) : Number(amount)});
  }
  return c;
}

Device MakeDevice(const GpuContext& gpu, const Spec& s, std::string_view instance_uuid) {
  Device d;
  d.name = NameOf(gpu, s);
  d.attributes = gpu.base;
  std::int64_t memory_mib =
      gpu.info->memory.IsZero() ? gpu.model->memory_mib : gpu.info->memory.Value() / kMiB;
  int multiprocessors = gpu.model->multiprocessors;
  const char* type = "gpu";
  if (s.profile >= 0) {
    const GiProfile& p = gpu.model->profiles[s.profile];
    type = "mig";
    memory_mib = p.memory_mib;
    multiprocessors = p.multiprocessors;
    d.attributes.erase("uuid");
    d.attributes["profile"] = DeviceAttribute::String(p.name);
    d.attributes["profileClass"] = DeviceAttribute::String(p.size_class);
    d.attributes["placementStart"] = DeviceAttribute::Int(s.placement.start);
    d.attributes["placementSize"] = DeviceAttribute::Int(s.placement.size);
    if (!instance_uuid.empty())
      d.attributes["uuid"] = DeviceAttribute::String(std::string(instance_uuid));
  }
  if (s.share) {
    type = *s.share == ShareKind::kMps ? "mps" : "timeslice";
    const bool shared = s.slot < 0;
    if (shared) d.allow_multiple_allocations = true;
    AddShareCapacity(gpu, *s.share, memory_mib, shared, &d);
  } else {
    d.capacity["memory"] = {Mebibytes(memory_mib), std::nullopt};
  }
  if (d.allow_multiple_allocations.value_or(false)) {
    // Every capacity of a shared device is consumable, and one without a request policy is
    // consumed whole by the first claim that does not ask for it: the SM count is a fact about
    // the device here, not something shares divide.
    d.attributes["multiprocessors"] = DeviceAttribute::Int(multiprocessors);
  } else {
    d.capacity["multiprocessors"] = {Number(multiprocessors), std::nullopt};
  }
  d.attributes["type"] = DeviceAttribute::String(type);
  // Counters only where the partition is created on demand: a share device on the whole GPU and
  // an existing (static) instance need none.
  if (gpu.plan != nullptr && gpu.mode == PartitionMode::kMigDynamic) {
    d.consumes_counters.push_back(Consumption(gpu, s));
  }
  return d;
}

// Profiles in the order devices are published: fewer compute slices, then less memory, then
// without the media extension.
bool SmallerProfile(const GiProfile& a, const GiProfile& b) {
  return std::tie(a.compute_slices, a.memory_slices, a.media_extension, a.name) <
         std::tie(b.compute_slices, b.memory_slices, b.media_extension, b.name);
}

}  // namespace

ApiFeatures ApiFeatures::Defaults(int minor) {
  ApiFeatures f;
  f.partitionable_devices = minor >= 36;
  f.consumable_capacity = minor >= 36;
  f.counters_in_own_slice = minor >= 35;
  return f;
}

std::string CounterSetName(int index) { return StrCat("gpu-", index, "-counters"); }

std::string SemverFromDotted(std::string_view dotted) {
  std::vector<std::string> parts;
  std::size_t begin = 0;
  while (begin <= dotted.size()) {
    const std::size_t dot = dotted.find('.', begin);
    const std::string_view part =
        dotted.substr(begin, dot == std::string_view::npos ? std::string_view::npos : dot - begin);
    if (part.empty() || part.size() > 9) return "";
    for (char c : part) {
      if (c < '0' || c > '9') return "";
    }
    const std::size_t nonzero = part.find_first_not_of('0');
    parts.emplace_back(nonzero == std::string_view::npos ? "0" : part.substr(nonzero));
    if (dot == std::string_view::npos) break;
    begin = dot + 1;
  }
  if (parts.empty() || parts.size() > 3) return "";
  while (parts.size() < 3) parts.emplace_back("0");
  return StrJoin(parts, ".");
}

CounterPlan CounterPlan::For(const GpuModel& model, CounterDetail detail) {
  CounterPlan plan;
  for (int k = 0; k < model.memory_slices; ++k) {
    plan.counters.push_back({StrCat("memory-slice-", k), 1, false});
  }
  plan.profile_use.resize(model.profiles.size());
  plan.compute_counter = static_cast<int>(plan.counters.size());
  plan.counters.push_back({"compute-slices", model.compute_slices, false});
  for (std::size_t i = 0; i < model.profiles.size(); ++i) {
    plan.profile_use[i].emplace_back(plan.compute_counter, model.profiles[i].compute_slices);
  }
  const bool any_media = std::any_of(model.profiles.begin(), model.profiles.end(),
                                     [](const GiProfile& p) { return p.media_extension; });
  if (any_media) {
    const int media = static_cast<int>(plan.counters.size());
    plan.counters.push_back({"media-extensions", 1, false});
    for (std::size_t i = 0; i < model.profiles.size(); ++i) {
      if (model.profiles[i].media_extension) plan.profile_use[i].emplace_back(media, 1);
    }
  }
  for (std::size_t i = 0; i < model.profiles.size(); ++i) {
    const GiProfile& p = model.profiles[i];
    // media-extensions already allows one "+me" instance in all.
    if (p.max_instances >= DisjointPlacements(p) || (p.media_extension && any_media)) continue;
    const int counter = static_cast<int>(plan.counters.size());
    absl::StatusOr<std::string> token = ProfileToken(p.name);
    plan.counters.push_back(
        {StrCat("instances-", token.ok() ? *token : StrCat("profile", i)), p.max_instances, false});
    plan.profile_use[i].emplace_back(counter, 1);
  }
  if (detail == CounterDetail::kFull) {
    std::vector<std::pair<int, Placement>> items;
    for (std::size_t i = 0; i < model.profiles.size(); ++i) {
      for (const Placement& pl : model.profiles[i].placements) items.emplace_back(int(i), pl);
    }
    UsageVector max{};
    MaxUsage(model, items, 0, MigSummary{}, UsageVector{}, &max);
    static constexpr const char* kNames[Usage::kCount] = {
        "multiprocessors", "memory",       "copy-engines", "decoders",
        "encoders",        "jpeg-engines", "ofa-engines"};
    for (int k = 0; k < Usage::kCount; ++k) {
      if (max[k] == 0) continue;
      const int counter = static_cast<int>(plan.counters.size());
      plan.counters.push_back({kNames[k], max[k], k == Usage::kMemory});
      for (std::size_t i = 0; i < model.profiles.size(); ++i) {
        const std::int64_t use = ProfileUsage(model.profiles[i])[k];
        if (use > 0) plan.profile_use[i].emplace_back(counter, use);
      }
    }
  }
  return plan;
}

DeviceModeler::DeviceModeler(const Placer& placer, ApiFeatures features)
    : placer_(placer),
      features_(features),
      // Before 1.35 counters share a slice with devices and a slice holds at most 32 counters:
      // publish only the ones that decide validity there.
      detail_(features.counters_in_own_slice ? CounterDetail::kFull : CounterDetail::kBindingOnly) {
}

namespace {

// Everything of a model its counter plan depends on.
std::string PlanKey(const GpuModel& model, CounterDetail detail) {
  std::string key = StrCat(static_cast<int>(detail), "|", model.memory_slices, "|",
                           model.compute_slices, "|", model.four_and_three_coexist);
  for (const GiProfile& p : model.profiles) {
    const Engines& e = p.engines;
    key +=
        StrCat("|", p.name, ",", p.size_class, ",", p.compute_slices, ",", p.memory_slices, ",",
               p.memory_mib, ",", p.multiprocessors, ",", p.max_instances, ",", p.media_extension,
               ",", e.copy, ",", e.decoders, ",", e.encoders, ",", e.jpeg, ",", e.ofa, ":");
    for (const Placement& pl : p.placements) key += StrCat(pl.start, "+", pl.size, ";");
  }
  return key;
}

// Plans shared by every modeler of the process: the search in CounterPlan::For is exponential in
// the placements (about 1 ms for an H100), and the controller builds a modeler per node sync for
// nodes whose models are equal but not the same objects. Few distinct models exist; none is
// dropped.
const CounterPlan& SharedPlan(const GpuModel& model, CounterDetail detail) {
  static std::mutex mu;
  static std::map<std::string, std::unique_ptr<const CounterPlan>>* plans =
      new std::map<std::string, std::unique_ptr<const CounterPlan>>();
  std::string key = PlanKey(model, detail);
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = plans->find(key);
    if (it != plans->end()) return *it->second;
  }
  auto plan = std::make_unique<const CounterPlan>(CounterPlan::For(model, detail));
  std::lock_guard<std::mutex> lock(mu);
  auto [it, added] = plans->emplace(std::move(key), std::move(plan));
  return *it->second;
}

}  // namespace

const CounterPlan& DeviceModeler::Plan(const GpuModel& model) {
  auto it = plans_.find(&model);
  if (it == plans_.end()) it = plans_.emplace(&model, &SharedPlan(model, detail_)).first;
  return *it->second;
}

absl::StatusOr<NodeDevices> DeviceModeler::Build(const NodeInput& node) {
  if (node.states.size() != node.gpus.size()) {
    return absl::InvalidArgumentError(StrCat("device model: ", node.states.size(),
                                             " GPU states for ", node.gpus.size(), " GPUs"));
  }
  NodeDevices out;
  std::vector<GpuContext> gpus(node.gpus.size());
  std::set<int> indices;
  for (std::size_t g = 0; g < node.gpus.size(); ++g) {
    GpuContext& gpu = gpus[g];
    const GpuInput& in = node.gpus[g];
    if (in.info == nullptr)
      return absl::InvalidArgumentError(StrCat("device model: GPU ", g, " has no info"));
    gpu.position = static_cast<int>(g);
    gpu.index = in.info->index;
    if (gpu.index < 0 || !indices.insert(gpu.index).second) {
      return absl::InvalidArgumentError(
          StrCat("device model: GPU index ", gpu.index, " is negative or repeated"));
    }
    gpu.info = in.info;
    gpu.state = &node.states[g];
    gpu.model = &gpu.state->model();
    gpu.mode = in.policy != nullptr ? in.policy->mode : PartitionMode::kWhole;
    if (in.policy != nullptr && in.policy->instance_sharing) {
      gpu.instance_sharing = *in.policy->instance_sharing == api::SharingStrategy::kMps
                                 ? ShareKind::kMps
                                 : ShareKind::kTimeSlice;
    }
    if (in.policy != nullptr && in.policy->shares) gpu.limits = *in.policy->shares;
    for (const GiProfile& p : gpu.model->profiles) {
      absl::StatusOr<std::string> token = ProfileToken(p.name);
      if (!token.ok()) return token.status();
      gpu.tokens.push_back(*token);
    }
    const std::string where = StrCat("GPU ", gpu.index, " (", gpu.info->uuid, ")");
    auto warn = [&](std::string_view what) { out.warnings.push_back(StrCat(where, ": ", what)); };

    // The mode the GPU's state allows now: a mode change waits until what runs on the GPU is gone.
    const GpuState& st = *gpu.state;
    const bool whole_shares =
        !st.shares().empty() &&
        std::any_of(st.shares().begin(), st.shares().end(), [](const Share& s) { return !s.host; });
    const PartitionMode wanted = gpu.mode;
    if (whole_shares) {
      gpu.mode = st.shares().front().kind == ShareKind::kMps ? PartitionMode::kMps
                                                             : PartitionMode::kTimeSlice;
    } else if (!st.instances().empty() && gpu.mode != PartitionMode::kMigDynamic) {
      gpu.mode = PartitionMode::kMigStatic;
    } else if (st.whole_owner() && gpu.mode != PartitionMode::kMigDynamic) {
      gpu.mode = PartitionMode::kWhole;
    }
    if (gpu.mode != wanted) {
      warn(StrCat("policy asks for ", api::ToString(wanted), " but the GPU is in use as ",
                  api::ToString(gpu.mode), "; the change waits until it is idle"));
    }
    const bool mig_mode =
        gpu.mode == PartitionMode::kMigDynamic || gpu.mode == PartitionMode::kMigStatic;
    if (mig_mode && !gpu.info->mig_capable && st.instances().empty()) {
      warn(StrCat(api::ToString(gpu.mode), " needs a MIG-capable GPU; publishing the whole GPU"));
      gpu.mode = PartitionMode::kWhole;
    } else if (mig_mode && !gpu.info->mig_enabled && st.instances().empty()) {
      // Instances could not be created: tessera never switches MIG mode (it needs the GPU idle
      // and often a reset), the admin does, e.g. with `nvidia-smi -i <index> -mig 1`.
      warn(StrCat(api::ToString(gpu.mode),
                  " needs MIG mode enabled on the GPU, and it is disabled; publishing the whole "
                  "GPU"));
      gpu.mode = PartitionMode::kWhole;
    }
    if (gpu.mode == PartitionMode::kMigDynamic && !features_.partitionable_devices) {
      warn(
          "mig-dynamic needs DRAPartitionableDevices in the API server and scheduler; publishing "
          "existing MIG instances, or the whole GPU when it has none");
      gpu.mode = st.instances().empty() ? PartitionMode::kWhole : PartitionMode::kMigStatic;
    }
    if (gpu.mode == PartitionMode::kMigDynamic) gpu.plan = &Plan(*gpu.model);
    if (gpu.instance_sharing && gpu.mode == PartitionMode::kMigDynamic &&
        !features_.consumable_capacity) {
      warn(
          "shares inside MIG instances created on demand need DRAConsumableCapacity; publishing "
          "exclusive MIG devices only");
      gpu.instance_sharing.reset();
    }
    gpu.profile_published.assign(gpu.model->profiles.size(), false);
    if (gpu.mode == PartitionMode::kMigDynamic) {
      for (std::size_t i = 0; i < gpu.model->profiles.size(); ++i) {
        const GiProfile& p = gpu.model->profiles[i];
        gpu.profile_published[i] = ProfileAllowed(in.policy, p);
        if (!gpu.model->four_and_three_coexist && p.size_class == "4g" &&
            gpu.profile_published[i]) {
          gpu.profile_published[i] = false;
          warn(StrCat("driver before R510: ", p.name,
                      " is not published because a 4g and a 3g cannot coexist"));
        }
      }
      for (const Instance& inst : st.instances()) gpu.profile_published[inst.profile] = true;
    }
  }

  // Cached objects of a GPU stay valid while everything they were built from stays the same.
  std::map<std::string, GpuCache> kept;
  for (GpuContext& gpu : gpus) {
    const api::GpuInfo& i = *gpu.info;
    const std::string fingerprint = StrCat(
        i.index, "|", i.uuid, "|", i.product, "|", gpu.model->key, "|", i.memory.ToString(), "|",
        i.compute_capability, "|", i.pci_bus_id, "|", node.driver_version, "|",
        node.cuda_driver_version, "|", static_cast<int>(gpu.mode), "|",
        gpu.instance_sharing ? static_cast<int>(*gpu.instance_sharing) : -1, "|",
        gpu.limits.max_shares, "|", gpu.limits.min_memory ? gpu.limits.min_memory->ToString() : "",
        "|", gpu.limits.min_compute_percent.value_or(-1), "|", gpu.plan != nullptr);
    const std::string key = i.uuid.empty() ? StrCat("index-", i.index) : i.uuid;
    auto it = cache_.find(key);
    GpuCache entry;
    if (it != cache_.end() && it->second.fingerprint == fingerprint) entry = std::move(it->second);
    entry.fingerprint = fingerprint;
    gpu.cache = &kept.emplace(key, std::move(entry)).first->second;
  }
  cache_ = std::move(kept);
  // The attributes every device of a GPU carries; built only when a device is (re)built.
  auto fill_base = [&](const GpuContext& gpu) {
    auto& base = gpu.base;
    base["index"] = DeviceAttribute::Int(gpu.index);
    if (!gpu.info->uuid.empty()) {
      base["uuid"] = DeviceAttribute::String(gpu.info->uuid);
      base["parentUUID"] = DeviceAttribute::String(gpu.info->uuid);
    }
    base["productName"] = DeviceAttribute::String(
        gpu.info->product.empty() ? gpu.model->product_name : gpu.info->product.substr(0, 64));
    base["model"] = DeviceAttribute::String(gpu.model->key);
    const std::string cc =
        SemverFromDotted(gpu.info->compute_capability.empty() ? gpu.model->compute_capability
                                                              : gpu.info->compute_capability);
    if (!cc.empty()) base["cudaComputeCapability"] = DeviceAttribute::Version(cc);
    const std::string driver = SemverFromDotted(node.driver_version);
    const std::string cuda = SemverFromDotted(node.cuda_driver_version);
    if (!driver.empty()) base["driverVersion"] = DeviceAttribute::Version(driver);
    if (!cuda.empty()) base["cudaDriverVersion"] = DeviceAttribute::Version(cuda);
    if (!gpu.info->pci_bus_id.empty()) {
      base["resource.kubernetes.io/pciBusID"] = DeviceAttribute::String(gpu.info->pci_bus_id);
    }
  };

  std::unordered_set<std::uint64_t> published;
  auto emit = [&](const GpuContext& gpu, const Spec& s) {
    const std::uint32_t key = DeviceKey(s);
    if (!published.insert(std::uint64_t(gpu.position) << 32 | key).second) return;
    std::string_view instance_uuid;
    if (s.profile >= 0) {
      for (const api::MigInstanceInfo& mi : gpu.info->mig_instances) {
        if (mi.placement.start == s.placement.start &&
            mi.profile == gpu.model->profiles[s.profile].name) {
          instance_uuid = mi.uuid;
        }
      }
    }
    auto& slot = gpu.cache->devices[key];
    if (slot.second == nullptr || slot.first != instance_uuid) {
      if (gpu.base.empty()) fill_base(gpu);
      slot = {std::string(instance_uuid),
              std::make_shared<const Device>(MakeDevice(gpu, s, instance_uuid))};
    }
    out.devices.push_back(slot.second);
  };

  // MIG devices created on demand, profile by profile, each in the Placer's order.
  std::vector<std::pair<const GiProfile*, std::string>> classes;  // smallest first
  for (const GpuContext& gpu : gpus) {
    for (std::size_t i = 0; i < gpu.model->profiles.size(); ++i) {
      if (!gpu.profile_published[i]) continue;
      const GiProfile& p = gpu.model->profiles[i];
      if (std::none_of(classes.begin(), classes.end(),
                       [&](const auto& c) { return c.second == p.size_class; })) {
        classes.emplace_back(&p, p.size_class);
      }
    }
  }
  std::sort(classes.begin(), classes.end(),
            [](const auto& a, const auto& b) { return SmallerProfile(*a.first, *b.first); });
  for (const auto& [unused, size_class] : classes) {
    std::vector<std::pair<int, Spec>> order;
    std::vector<bool> seen(gpus.size() * MigSummary::kMaxProfiles * kMaxMemorySlices, false);
    auto seen_at = [&](int g, int profile, int start) {
      return seen[(std::size_t(g) * MigSummary::kMaxProfiles + profile) * kMaxMemorySlices + start];
    };
    const Request request{.kind = Request::Kind::kMig, .profile = size_class};
    for (const Choice& c : placer_.Rank(node.states, request)) {
      const GpuContext& gpu = gpus[c.gpu];
      if (gpu.mode != PartitionMode::kMigDynamic || !gpu.profile_published[c.profile]) continue;
      order.push_back({c.gpu, Spec{.profile = c.profile, .placement = c.placement}});
      seen_at(c.gpu, c.profile, c.placement.start) = true;
    }
    for (const GpuContext& gpu : gpus) {  // what does not fit now, in first-fit order
      if (gpu.mode != PartitionMode::kMigDynamic) continue;
      const int profile = gpu.model->ProfileIndex(size_class);
      if (profile < 0 || !gpu.profile_published[profile]) continue;
      for (const Placement& pl : gpu.model->profiles[profile].placements) {
        if (!seen_at(gpu.position, profile, pl.start)) {
          order.push_back({gpu.position, Spec{.profile = profile, .placement = pl}});
        }
      }
    }
    for (const auto& [g, spec] : order) emit(gpus[g], spec);
    for (const auto& [g, spec] : order) {
      if (!gpus[g].instance_sharing) continue;
      Spec shared = spec;
      shared.share = gpus[g].instance_sharing;
      emit(gpus[g], shared);
    }
  }

  // Existing instances of mig-static GPUs.
  for (const GpuContext& gpu : gpus) {
    if (gpu.mode != PartitionMode::kMigStatic) continue;
    std::vector<const Instance*> instances;
    for (const Instance& inst : gpu.state->instances()) instances.push_back(&inst);
    std::sort(instances.begin(), instances.end(), [&](const Instance* a, const Instance* b) {
      const GiProfile& pa = gpu.model->profiles[a->profile];
      const GiProfile& pb = gpu.model->profiles[b->profile];
      if (pa.size_class != pb.size_class) return SmallerProfile(pa, pb);
      return a->placement < b->placement;
    });
    for (const Instance* inst : instances) {
      Spec s{.profile = inst->profile, .placement = inst->placement};
      if (gpu.instance_sharing) {
        s.share = gpu.instance_sharing;
        if (!features_.consumable_capacity) {
          for (int k = 0; k < ShareCount(gpu); ++k) {
            s.slot = k;
            emit(gpu, s);
          }
          continue;
        }
      }
      emit(gpu, s);
    }
  }

  // Shares of whole GPUs, GPUs with room first in the Placer's order.
  for (const ShareKind kind : {ShareKind::kMps, ShareKind::kTimeSlice}) {
    const PartitionMode mode =
        kind == ShareKind::kMps ? PartitionMode::kMps : PartitionMode::kTimeSlice;
    std::vector<int> order;
    Request request{.kind =
                        kind == ShareKind::kMps ? Request::Kind::kMps : Request::Kind::kTimeSlice};
    if (kind == ShareKind::kMps) {
      request.memory_mib = kShareMemoryStepMib;
      request.compute_percent = 1;
    }
    for (const Choice& c : placer_.Rank(node.states, request)) {
      if (gpus[c.gpu].mode == mode) order.push_back(c.gpu);
    }
    for (const GpuContext& gpu : gpus) {
      if (gpu.mode == mode && std::find(order.begin(), order.end(), gpu.position) == order.end()) {
        order.push_back(gpu.position);
      }
    }
    for (int g : order) {
      const GpuContext& gpu = gpus[g];
      if (features_.consumable_capacity) {
        emit(gpu, Spec{.share = kind});
      } else {
        for (int k = 0; k < ShareCount(gpu); ++k) emit(gpu, Spec{.share = kind, .slot = k});
      }
    }
  }

  // Whole GPUs last: free ones in the Placer's order, then the rest.
  std::vector<int> order;
  for (const Choice& c : placer_.Rank(node.states, Request{.kind = Request::Kind::kWhole})) {
    order.push_back(c.gpu);
  }
  for (const GpuContext& gpu : gpus) {
    if (std::find(order.begin(), order.end(), gpu.position) == order.end())
      order.push_back(gpu.position);
  }
  // A GPU kept whole serves only whole claims; an empty mig-dynamic GPU could serve any MIG
  // claim. Whole claims take the former first, so MIG claims keep their room.
  std::stable_partition(order.begin(), order.end(),
                        [&](int g) { return gpus[g].mode == PartitionMode::kWhole; });
  for (int g : order) {
    const GpuContext& gpu = gpus[g];
    if (gpu.mode == PartitionMode::kWhole || gpu.mode == PartitionMode::kMigDynamic)
      emit(gpu, Spec{});
  }

  // Allocated devices that the mode would not publish stay published until they are released.
  if (node.allocated != nullptr) {
    for (const std::string& name : *node.allocated) {
      absl::StatusOr<DeviceName> parsed = DeviceName::Parse(name);
      if (!parsed.ok()) continue;  // not one of ours
      auto it = std::find_if(gpus.begin(), gpus.end(),
                             [&](const GpuContext& g) { return g.index == parsed->gpu; });
      if (it == gpus.end()) continue;
      absl::StatusOr<ResolvedDevice> r = ResolveDeviceName(name, *it->model);
      if (!r.ok()) continue;
      const Spec spec{
          .profile = r->profile, .placement = r->placement, .share = r->share, .slot = r->slot};
      if (published.count(std::uint64_t(it->position) << 32 | DeviceKey(spec)) != 0) continue;
      out.warnings.push_back(StrCat("GPU ", it->index, ": allocated device ", name,
                                    " stays published although the policy no longer offers it"));
      // On a mig-dynamic GPU it keeps consuming its placement's counters; elsewhere it needs none.
      emit(*it, spec);
    }
  }

  for (const GpuContext& gpu : gpus) {
    if (gpu.plan == nullptr) continue;
    if (gpu.cache->counters == nullptr) {
      api::CounterSet set{.name = CounterSetName(gpu.index), .counters = {}};
      for (const CounterPlan::Entry& e : gpu.plan->counters) {
        set.counters.emplace(e.name, Counter{e.memory ? Mebibytes(e.value) : Number(e.value)});
      }
      gpu.cache->counters = std::make_shared<const api::CounterSet>(std::move(set));
    }
    out.counter_sets.push_back(gpu.cache->counters);
  }
  return out;
}

}  // namespace tessera::partitioner
