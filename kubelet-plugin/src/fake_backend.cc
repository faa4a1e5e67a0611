#include "tessera/plugin/fake_backend.h"

#include <algorithm>
#include <set>
#include <thread>

#include "tessera/api/strings.h"
#include "tessera/api/yaml.h"
#include "tessera/plugin/files.h"

namespace tessera::plugin {
namespace {

using api::DecodeContext;
using api::Json;
using api::ObjectDecoder;
using partitioner::GpuModel;
using partitioner::GpuState;
using partitioner::Placement;

// 1: one JSON document, rewritten whole after every change. 2: a snapshot line in that document's
// shape, then a line per change since with the changed GPU's state (see fake_backend.h).
constexpr int kStateVersion = 2;
// Changes appended after the snapshot before the file is rewritten as one snapshot line.
constexpr int kChangesPerSnapshot = 512;

// A stable, UUID-shaped identifier from a few numbers.
std::string FakeUuid(const char* prefix, unsigned a, unsigned b) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%s-%08x-%04x-4%03x-8%03x-%012x", prefix, 0x7e55e7a0u + a,
                b & 0xffff, (a * 7 + b) & 0xfff, (a * 13 + b * 3) & 0xfff,
                0x5eed0000u + a * 256 + b);
  return buf;
}

absl::Status DecodeInstance(const DecodeContext& ctx, const Json& in, FakeNodeSpec::Instance* out) {
  ObjectDecoder d(ctx, in);
  d.Required("profile", &out->profile);
  d.RequiredWith("start", api::RangeField(&out->start, 0, partitioner::kMaxMemorySlices - 1));
  return d.Finish();
}

absl::Status DecodeGpu(const DecodeContext& ctx, const Json& in, FakeNodeSpec::Gpu* out) {
  ObjectDecoder d(ctx, in);
  d.Required("model", &out->model);
  d.OptionalWith("count", api::RangeField(&out->count, 1, 64));
  d.Optional("migEnabled", &out->mig_enabled);
  d.OptionalWith("instances", [&](const DecodeContext& c, const Json& v) {
    if (!v.is_array()) return c.Error("expected a list");
    for (std::size_t i = 0; i < v.size(); ++i) {
      FakeNodeSpec::Instance inst;
      if (absl::Status s = DecodeInstance(c.Index(i), v[i], &inst); !s.ok()) return s;
      out->instances.push_back(inst);
    }
    return absl::OkStatus();
  });
  if (absl::Status s = d.Finish(); !s.ok()) return s;
  if (partitioner::FindBuiltinModel(out->model) == nullptr) {
    return ctx.Field("model").Error(StrCat("unknown GPU model \"", out->model,
                                           "\" (known: ", partitioner::BuiltinModelKeys(), ")"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<FakeNodeSpec> ParseFakeNodeSpec(std::string_view yaml) {
  absl::StatusOr<Json> doc = api::ParseYaml(yaml);
  if (!doc.ok()) return doc.status();
  FakeNodeSpec spec;
  const DecodeContext ctx(api::UnknownFields::kReject);
  ObjectDecoder d(ctx, *doc);
  d.Optional("driverVersion", &spec.driver_version);
  d.Optional("cudaDriverVersion", &spec.cuda_driver_version);
  int create_ms = 0, destroy_ms = 0;
  d.OptionalWith("createLatencyMs", api::RangeField(&create_ms, 0, 600000));
  d.OptionalWith("destroyLatencyMs", api::RangeField(&destroy_ms, 0, 600000));
  d.RequiredWith("gpus", [&](const DecodeContext& c, const Json& v) {
    if (!v.is_array() || v.empty()) return c.Error("expected a non-empty list");
    for (std::size_t i = 0; i < v.size(); ++i) {
      FakeNodeSpec::Gpu gpu;
      if (absl::Status s = DecodeGpu(c.Index(i), v[i], &gpu); !s.ok()) return s;
      spec.gpus.push_back(gpu);
    }
    return absl::OkStatus();
  });
  if (absl::Status s = d.Finish(); !s.ok()) return s;
  spec.create_latency = std::chrono::milliseconds(create_ms);
  spec.destroy_latency = std::chrono::milliseconds(destroy_ms);
  return spec;
}

absl::StatusOr<std::unique_ptr<FakeGpuBackend>> FakeGpuBackend::Open(FakeNodeSpec spec,
                                                                     std::string state_path) {
  std::unique_ptr<FakeGpuBackend> b(new FakeGpuBackend(std::move(spec), std::move(state_path)));
  std::lock_guard<std::mutex> lock(b->mu_);
  int index = 0;
  for (std::size_t s = 0; s < b->spec_.gpus.size(); ++s) {
    const FakeNodeSpec::Gpu& g = b->spec_.gpus[s];
    for (int k = 0; k < g.count; ++k, ++index) {
      FakeGpu gpu{.model = partitioner::FindBuiltinModel(g.model),
                  .mig_enabled = g.mig_enabled,
                  .uuid = FakeUuid("GPU", static_cast<unsigned>(index), 0),
                  .instances = {}};
      if (gpu.model == nullptr)
        return absl::InvalidArgumentError(StrCat("gpus[", s, "].model: unknown \"", g.model, "\""));
      b->gpus_.push_back(std::move(gpu));
    }
  }
  if (!b->state_path_.empty()) {
    absl::StatusOr<std::string> text = ReadWholeFile(b->state_path_);
    if (text.ok()) {
      absl::StatusOr<Json> state = ReadFakeGpuState(*text);
      absl::Status s = state.ok() ? b->Load(*state) : state.status();
      if (!s.ok()) {
        return absl::DataLossError(StrCat("fake GPU state ", b->state_path_, ": ", s.message()));
      }
      if (absl::Status w = b->WriteSnapshot(); !w.ok()) return w;
      return b;
    }
    if (text.status().code() != absl::StatusCode::kNotFound) return text.status();
  }
  // A fresh node: the spec's pre-existing instances.
  index = 0;
  for (std::size_t s = 0; s < b->spec_.gpus.size(); ++s) {
    const FakeNodeSpec::Gpu& g = b->spec_.gpus[s];
    for (int k = 0; k < g.count; ++k, ++index) {
      FakeGpu& gpu = b->gpus_[index];
      GpuState state(*gpu.model);
      for (std::size_t i = 0; i < g.instances.size(); ++i) {
        const std::string where = StrCat("gpus[", s, "].instances[", i, "]");
        const int profile = gpu.model->ProfileIndex(g.instances[i].profile);
        if (profile < 0) {
          return absl::InvalidArgumentError(StrCat(
              where, ".profile: no profile \"", g.instances[i].profile, "\" on ", gpu.model->key));
        }
        const Placement pl{g.instances[i].start, gpu.model->profiles[profile].memory_slices};
        if (!g.mig_enabled)
          return absl::InvalidArgumentError(StrCat(where, ": MIG is disabled on this GPU"));
        if (absl::Status st = state.AddInstance(profile, pl, ""); !st.ok()) {
          return absl::InvalidArgumentError(StrCat(where, ": ", st.message()));
        }
        gpu.instances.push_back({.gi_id = static_cast<int>(gpu.instances.size()) + 1,
                                 .profile = profile,
                                 .placement = pl,
                                 .uuid = FakeUuid("MIG", static_cast<unsigned>(index),
                                                  static_cast<unsigned>(b->next_uuid_++)),
                                 .in_use = false});
      }
    }
  }
  if (absl::Status s = b->WriteSnapshot(); !s.ok()) return s;
  return b;
}

absl::StatusOr<Json> ReadFakeGpuState(std::string_view text) {
  // Format 1: the whole file is the state, indented over many lines.
  if (Json whole = Json::parse(text, nullptr, false);
      whole.is_object() && whole.value("version", 0) == 1) {
    whole["version"] = kStateVersion;
    return whole;
  }
  Json state;
  std::size_t line_no = 0;
  for (std::size_t at = 0; at < text.size(); ++line_no) {
    const std::size_t end = text.find('\n', at);
    if (end == std::string_view::npos) break;  // a torn last line: never acknowledged, ignored
    const std::string_view line = text.substr(at, end - at);
    at = end + 1;
    Json j = Json::parse(line, nullptr, false);
    const std::string where = StrCat("line ", line_no + 1);
    if (!j.is_object()) return absl::DataLossError(StrCat(where, ": not a JSON object"));
    if (line_no == 0) {
      if (j.value("version", 0) != kStateVersion || !j.contains("gpus") || !j["gpus"].is_array()) {
        return absl::DataLossError(
            StrCat(where, ": not a version ", kStateVersion, " fake GPU state snapshot"));
      }
      state = std::move(j);
      continue;
    }
    // A change: the GPU's whole state after it.
    const int g = j.value("gpu", -1);
    if (g < 0 || g >= static_cast<int>(state["gpus"].size())) {
      return absl::DataLossError(StrCat(where, ": no GPU ", g));
    }
    if (!j.contains("state") || !j["state"].is_object()) {
      return absl::DataLossError(StrCat(where, ": a change without the GPU's state"));
    }
    state["gpus"][static_cast<std::size_t>(g)] = std::move(j["state"]);
    state["nextUuid"] = std::max(state.value("nextUuid", 1), j.value("nextUuid", 1));
  }
  if (state.is_null()) return absl::DataLossError("no snapshot line");
  return state;
}

Json FakeGpuBackend::GpuJson(const FakeGpu& g) const {
  Json instances = Json::array();
  for (const FakeInstance& i : g.instances) {
    instances.push_back({{"giId", i.gi_id},
                         {"profile", g.model->profiles[i.profile].name},
                         {"start", i.placement.start},
                         {"uuid", i.uuid},
                         {"inUse", i.in_use}});
  }
  Json saved = {{"uuid", g.uuid},
                {"model", g.model->key},
                {"migEnabled", g.mig_enabled},
                {"instances", instances}};
  if (g.time_slice) saved["timeSlice"] = api::ToString(*g.time_slice);
  return saved;
}

absl::Status FakeGpuBackend::Record(int gpu) {
  if (log_ == nullptr) return absl::OkStatus();
  const Json change = {{"gpu", gpu},
                       {"nextUuid", next_uuid_},
                       {"state", GpuJson(gpus_[static_cast<std::size_t>(gpu)])}};
  // Like a GPU's state, this does not survive a power loss; a crash of the process keeps it.
  if (absl::Status s = log_->Write(change.dump(), nullptr).status(); !s.ok()) return s;
  if (++changes_ < kChangesPerSnapshot) return absl::OkStatus();
  return WriteSnapshot();
}

absl::Status FakeGpuBackend::WriteSnapshot() {
  if (state_path_.empty()) return absl::OkStatus();
  if (log_ == nullptr) {
    absl::StatusOr<std::unique_ptr<AppendLog>> log = AppendLog::Open(state_path_, /*sync=*/false);
    if (!log.ok()) return log.status();
    log_ = *std::move(log);
  }
  Json gpus = Json::array();
  for (const FakeGpu& g : gpus_) gpus.push_back(GpuJson(g));
  const Json state = {{"version", kStateVersion}, {"nextUuid", next_uuid_}, {"gpus", gpus}};
  changes_ = 0;
  return log_->Rewrite(
      [&](const std::string*) -> absl::StatusOr<std::string> { return state.dump() + "\n"; });
}

absl::Status FakeGpuBackend::Load(const Json& state) {
  if (state["gpus"].size() != gpus_.size()) {
    return absl::DataLossError(
        StrCat("has ", state["gpus"].size(), " GPUs, the description ", gpus_.size()));
  }
  next_uuid_ = state.value("nextUuid", 1);
  for (std::size_t g = 0; g < gpus_.size(); ++g) {
    const Json& saved = state["gpus"][g];
    FakeGpu& gpu = gpus_[g];
    if (saved.value("model", "") != gpu.model->key) {
      return absl::DataLossError(StrCat("GPU ", g, " is ", saved.value("model", ""),
                                        ", the description says ", gpu.model->key));
    }
    gpu.mig_enabled = saved.value("migEnabled", gpu.mig_enabled);
    if (saved.contains("timeSlice")) {
      const std::string name = saved.value("timeSlice", "");
      for (std::size_t t = 0; t < api::kTimeSliceIntervalNames.size(); ++t) {
        if (api::kTimeSliceIntervalNames[t] == name)
          gpu.time_slice = static_cast<api::TimeSliceInterval>(t);
      }
      if (!gpu.time_slice)
        return absl::DataLossError(StrCat("GPU ", g, ": unknown time slice ", name));
    }
    GpuState check(*gpu.model);
    for (const Json& i : saved.value("instances", Json::array())) {
      const int profile = gpu.model->ProfileIndex(i.value("profile", ""));
      if (profile < 0)
        return absl::DataLossError(StrCat("GPU ", g, ": unknown profile ", i.value("profile", "")));
      const Placement pl{i.value("start", -1), gpu.model->profiles[profile].memory_slices};
      if (absl::Status s = check.AddInstance(profile, pl, ""); !s.ok())
        return absl::DataLossError(s.message());
      gpu.instances.push_back({.gi_id = i.value("giId", 0),
                               .profile = profile,
                               .placement = pl,
                               .uuid = i.value("uuid", ""),
                               .in_use = i.value("inUse", false)});
    }
  }
  return absl::OkStatus();
}

absl::Status FakeGpuBackend::TakeFault(const std::string& op, std::string_view call) {
  auto it = faults_.find(op);
  if (it == faults_.end() || it->second.second <= 0) return absl::OkStatus();
  --it->second.second;
  return NvmlStatus(it->second.first, call, "injected fault");
}

absl::StatusOr<NodeInventory> FakeGpuBackend::Discover() {
  std::lock_guard<std::mutex> lock(mu_);
  if (absl::Status s = TakeFault("discover", "nvmlDeviceGetCount_v2"); !s.ok()) return s;
  NodeInventory inv{.driver_version = spec_.driver_version,
                    .cuda_driver_version = spec_.cuda_driver_version,
                    .gpus = {}};
  for (std::size_t g = 0; g < gpus_.size(); ++g) {
    const FakeGpu& gpu = gpus_[g];
    api::GpuInfo info;
    info.index = static_cast<int32_t>(g);
    info.uuid = gpu.uuid;
    info.product = gpu.model->product_name;
    info.model = gpu.model->key;
    info.memory = api::Quantity::FromInt64(gpu.model->memory_mib * 1024 * 1024,
                                           api::Quantity::Format::kBinarySI);
    info.compute_capability = gpu.model->compute_capability;
    info.pci_bus_id = StrCat(
        "00000000:", g < 6 ? std::to_string(0x18 + g * 0x10) : std::to_string(0x80 + g), ":00.0");
    info.minor_number = static_cast<int32_t>(g);
    info.mig_capable = true;
    info.mig_enabled = gpu.mig_enabled;
    info.time_slice_interval = gpu.time_slice;
    if (gpu.mig_enabled) info.mig_profiles = partitioner::InventoryProfiles(*gpu.model);
    for (const FakeInstance& i : gpu.instances) {
      info.mig_instances.push_back({.profile = gpu.model->profiles[i.profile].name,
                                    .placement = {i.placement.start, i.placement.size},
                                    .gpu_instance_id = i.gi_id,
                                    .compute_instance_id = 0,
                                    .uuid = i.uuid,
                                    .owner_claim = std::nullopt,
                                    .created_by_tessera = false});
    }
    info.health = gpu.health;
    info.health_message = gpu.health_message;
    inv.gpus.push_back(std::move(info));
  }
  return inv;
}

absl::StatusOr<api::MigInstanceInfo> FakeGpuBackend::CreateMigInstance(int gpu_index,
                                                                       int profile_id,
                                                                       api::Placement placement) {
  {
    const int now = ++in_flight_;
    int seen = max_in_flight_.load();
    while (now > seen && !max_in_flight_.compare_exchange_weak(seen, now)) {
    }
    if (spec_.create_latency.count() > 0) std::this_thread::sleep_for(spec_.create_latency);
    --in_flight_;
  }
  std::lock_guard<std::mutex> lock(mu_);
  const std::string call =
      StrCat("nvmlDeviceCreateGpuInstanceWithPlacement(GPU ", gpu_index, ", profile ", profile_id,
             ", {", placement.start, ",", placement.size, "})");
  if (absl::Status s = TakeFault("create", call); !s.ok()) return s;
  if (gpu_index < 0 || gpu_index >= static_cast<int>(gpus_.size())) {
    return NvmlStatus(NvmlError::kInvalidArgument, call, "no such GPU");
  }
  FakeGpu& gpu = gpus_[gpu_index];
  if (!gpu.mig_enabled) return NvmlStatus(NvmlError::kNotSupported, call, "MIG mode is disabled");
  int profile = -1;
  for (std::size_t p = 0; p < gpu.model->profiles.size(); ++p) {
    if (gpu.model->profiles[p].nvml_id == profile_id) profile = static_cast<int>(p);
  }
  if (profile < 0) return NvmlStatus(NvmlError::kInvalidArgument, call, "unknown profile");
  const Placement pl{placement.start, placement.size};
  const auto& allowed = gpu.model->profiles[profile].placements;
  if (std::find(allowed.begin(), allowed.end(), pl) == allowed.end()) {
    return NvmlStatus(NvmlError::kInvalidArgument, call, "not one of the profile's placements");
  }
  GpuState state(*gpu.model);
  for (const FakeInstance& i : gpu.instances) (void)state.AddInstance(i.profile, i.placement, "");
  if (absl::Status s = state.CheckInstance(profile, pl); !s.ok()) {
    return NvmlStatus(NvmlError::kInsufficientResources, call, std::string(s.message()));
  }
  std::set<int> used;
  for (const FakeInstance& i : gpu.instances) used.insert(i.gi_id);
  int gi = 1;
  while (used.count(gi)) ++gi;
  FakeInstance inst{.gi_id = gi,
                    .profile = profile,
                    .placement = pl,
                    .uuid = FakeUuid("MIG", static_cast<unsigned>(gpu_index),
                                     static_cast<unsigned>(next_uuid_++)),
                    .in_use = false};
  gpu.instances.push_back(inst);
  ++creates_;
  if (absl::Status s = Record(gpu_index); !s.ok()) return s;
  return api::MigInstanceInfo{.profile = gpu.model->profiles[profile].name,
                              .placement = placement,
                              .gpu_instance_id = gi,
                              .compute_instance_id = 0,
                              .uuid = inst.uuid,
                              .owner_claim = std::nullopt,
                              .created_by_tessera = true};
}

absl::Status FakeGpuBackend::DestroyMigInstance(int gpu_index, int gi_id) {
  if (spec_.destroy_latency.count() > 0) std::this_thread::sleep_for(spec_.destroy_latency);
  std::lock_guard<std::mutex> lock(mu_);
  const std::string call = StrCat("nvmlGpuInstanceDestroy(GPU ", gpu_index, ", GI ", gi_id, ")");
  if (absl::Status s = TakeFault("destroy", call); !s.ok()) return s;
  if (gpu_index < 0 || gpu_index >= static_cast<int>(gpus_.size())) {
    return NvmlStatus(NvmlError::kInvalidArgument, call, "no such GPU");
  }
  FakeGpu& gpu = gpus_[gpu_index];
  if (!gpu.mig_enabled) return NvmlStatus(NvmlError::kNotSupported, call, "MIG mode is disabled");
  auto it = std::find_if(gpu.instances.begin(), gpu.instances.end(),
                         [&](const FakeInstance& i) { return i.gi_id == gi_id; });
  if (it == gpu.instances.end())
    return NvmlStatus(NvmlError::kNotFound, call, "no such GPU instance");
  if (it->in_use) return NvmlStatus(NvmlError::kInUse, call, "a process is running on it");
  gpu.instances.erase(it);
  ++destroys_;
  return Record(gpu_index);
}

absl::Status FakeGpuBackend::SetTimeSlice(int gpu_index, api::TimeSliceInterval interval) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string call = StrCat("nvidia-smi compute-policy -i ", gpu_index, " --set-timeslice ",
                                  static_cast<int>(interval));
  if (absl::Status s = TakeFault("timeslice", call); !s.ok()) return s;
  if (gpu_index < 0 || gpu_index >= static_cast<int>(gpus_.size())) {
    return NvmlStatus(NvmlError::kInvalidArgument, call, "no such GPU");
  }
  gpus_[gpu_index].time_slice = interval;
  return Record(gpu_index);
}

absl::StatusOr<std::int64_t> FakeGpuBackend::MemoryUsed(int gpu_index, std::string_view uuid) {
  std::lock_guard<std::mutex> lock(mu_);
  if (gpu_index >= 0 && gpu_index < static_cast<int>(gpus_.size())) {
    const FakeGpu& gpu = gpus_[gpu_index];
    if (gpu.uuid == uuid) return 0;
    for (const FakeInstance& i : gpu.instances) {
      if (i.uuid == uuid) return 0;
    }
  }
  return NvmlStatus(NvmlError::kNotFound, StrCat("nvmlDeviceGetMemoryInfo(GPU ", gpu_index, ")"),
                    StrCat("no device ", uuid));
}

absl::Status FakeGpuBackend::SetHealth(int gpu_index, api::HealthState health,
                                       std::string message) {
  std::lock_guard<std::mutex> lock(mu_);
  if (gpu_index < 0 || gpu_index >= static_cast<int>(gpus_.size()))
    return absl::NotFoundError("no such GPU");
  gpus_[gpu_index].health = health;
  gpus_[gpu_index].health_message = std::move(message);
  return absl::OkStatus();
}

absl::Status FakeGpuBackend::SetInUse(int gpu_index, int gi_id, bool in_use) {
  std::lock_guard<std::mutex> lock(mu_);
  if (gpu_index < 0 || gpu_index >= static_cast<int>(gpus_.size()))
    return absl::NotFoundError("no such GPU");
  for (FakeInstance& i : gpus_[gpu_index].instances) {
    if (i.gi_id == gi_id) {
      i.in_use = in_use;
      return Record(gpu_index);
    }
  }
  return absl::NotFoundError(StrCat("GPU ", gpu_index, " has no GI ", gi_id));
}

void FakeGpuBackend::InjectFault(const std::string& op, NvmlError code, int times) {
  std::lock_guard<std::mutex> lock(mu_);
  faults_[op] = {code, times};
}

int FakeGpuBackend::creates() const {
  std::lock_guard<std::mutex> lock(mu_);
  return creates_;
}

int FakeGpuBackend::destroys() const {
  std::lock_guard<std::mutex> lock(mu_);
  return destroys_;
}

}  // namespace tessera::plugin
