#include "tessera/plugin/nvml_backend.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "nvml_abi.h"
#include "nvml_events.h"
#include "nvml_library.h"
#include "nvml_mig.h"
#include "run_command.h"
#include "tessera/api/strings.h"
#include "tessera/partitioner/catalogue.h"

namespace tessera::plugin {
namespace {

// NVML prints "%08X:%02X:%02X.0"; Kubernetes' pciBusID attribute wants "0000:65:00.0".
std::string NormalizePciBusId(const nvml::PciInfo& pci) {
  unsigned int domain = pci.domain, bus = pci.bus, device = pci.device, function = 0;
  const std::string text = FromNvmlBuffer(pci.busId, sizeof(pci.busId));
  if (std::sscanf(text.c_str(), "%x:%x:%x.%x", &domain, &bus, &device, &function) != 4) {
    domain = pci.domain;
    bus = pci.bus;
    device = pci.device;
    function = 0;
  }
  char out[32];
  std::snprintf(out, sizeof(out), "%04x:%02x:%02x.%x", domain, bus, device, function);
  return out;
}

// The catalogue's model for NVML's PCI device ID (high 16 bits of pciDeviceId), or null.
const partitioner::GpuModel* BuiltinModel(const nvml::PciInfo& pci) {
  char id[16];
  std::snprintf(id, sizeof(id), "0x%04x", pci.pciDeviceId >> 16);
  return partitioner::FindBuiltinModel(id);
}

// A copy of `status` with `extra` appended to its message; the NVML code payload is kept.
absl::Status WithNote(const absl::Status& status, std::string_view extra) {
  absl::Status out(status.code(), StrCat(status.message(), extra));
  status.ForEachPayload(
      [&](absl::string_view url, const absl::Cord& payload) { out.SetPayload(url, payload); });
  return out;
}

// Makes the compute instance that covers the new GPU instance `gi` (of `compute_slices` slices)
// and finds its MIG device. On failure no compute instance is left; the caller owns `gi`.
// The result lacks the profile name.
absl::StatusOr<api::MigInstanceInfo> AddComputeInstance(const NvmlLibrary& lib, nvml::Device dev,
                                                        int gpu, nvml::GpuInstance gi,
                                                        unsigned int compute_slices) {
  const NvmlFunctions& f = lib.fn();
  nvml::GpuInstanceInfo gi_info;
  std::memset(&gi_info, 0, sizeof(gi_info));
  if (nvml::Return r = f.gpu_instance_get_info(gi, &gi_info); r != nvml::kSuccess) {
    return lib.Error(r, StrCat("nvmlGpuInstanceGetInfo(GPU ", gpu, ")"));
  }
  const std::string where = StrCat("GPU ", gpu, ", GI ", gi_info.id);
  absl::StatusOr<nvml::ComputeInstanceProfileInfoV1> ci_profile =
      FullComputeInstanceProfile(lib, gi, compute_slices, where);
  if (!ci_profile.ok()) return ci_profile.status();
  nvml::ComputeInstance ci = nullptr;
  if (nvml::Return r = f.gpu_instance_create_compute_instance(gi, ci_profile->id, &ci);
      r != nvml::kSuccess) {
    return lib.Error(r, StrCat("nvmlGpuInstanceCreateComputeInstance(", where, ", CI profile ",
                               ci_profile->id, ")"));
  }
  nvml::ComputeInstanceInfo ci_info;
  std::memset(&ci_info, 0, sizeof(ci_info));
  absl::StatusOr<std::string> uuid;
  if (nvml::Return r = f.compute_instance_get_info(ci, &ci_info); r != nvml::kSuccess) {
    uuid = lib.Error(r, StrCat("nvmlComputeInstanceGetInfo_v2(", where, ")"));
  } else {
    uuid = MigDeviceUuid(lib, dev, gpu, ci_info, gi_info.id);
  }
  if (!uuid.ok()) {
    const nvml::Return r = f.compute_instance_destroy(ci);
    if (r == nvml::kSuccess) return uuid.status();
    return WithNote(uuid.status(), StrCat("; destroying the new compute instance failed: ",
                                          lib.Error(r, "nvmlComputeInstanceDestroy").message()));
  }
  return api::MigInstanceInfo{.profile = {},
                              .placement = {static_cast<int32_t>(gi_info.placement.start),
                                            static_cast<int32_t>(gi_info.placement.size)},
                              .gpu_instance_id = static_cast<int32_t>(gi_info.id),
                              .compute_instance_id = static_cast<int32_t>(ci_info.id),
                              .uuid = *std::move(uuid),
                              .owner_claim = std::nullopt,
                              .created_by_tessera = false};
}

}  // namespace

NvmlBackend::NvmlBackend(NvmlOptions options, std::unique_ptr<NvmlLibrary> library)
    : options_(std::move(options)), library_(std::move(library)) {}

absl::StatusOr<std::unique_ptr<NvmlBackend>> NvmlBackend::Open(NvmlOptions options) {
  absl::StatusOr<std::unique_ptr<NvmlLibrary>> library =
      NvmlLibrary::Load(options.driver_root, options.library_path);
  if (!library.ok()) return library.status();
  const NvmlFunctions& f = (*library)->fn();
  if (nvml::Return r = f.init(); r != nvml::kSuccess) {
    return (*library)->Error(r, StrCat("nvmlInit_v2 (", (*library)->path(), ")"));
  }
  std::unique_ptr<NvmlBackend> b(new NvmlBackend(std::move(options), std::move(*library)));
  b->initialized_ = true;

  unsigned int count = 0;
  if (nvml::Return r = f.device_get_count(&count); r != nvml::kSuccess) {
    return b->library_->Error(r, "nvmlDeviceGetCount_v2");
  }
  for (unsigned int i = 0; i < count; ++i) {
    Gpu gpu;
    nvml::Device handle = nullptr;
    char uuid[nvml::kDeviceUuidV2BufferSize] = {};
    if (nvml::Return r = f.device_get_handle_by_index(i, &handle); r != nvml::kSuccess) {
      gpu.unavailable = b->library_->Error(r, StrCat("nvmlDeviceGetHandleByIndex_v2(GPU ", i, ")"));
    } else if (r = f.device_get_uuid(handle, uuid, sizeof(uuid)); r != nvml::kSuccess) {
      gpu.unavailable = b->library_->Error(r, StrCat("nvmlDeviceGetUUID(GPU ", i, ")"));
    } else {
      gpu.handle = handle;
      gpu.uuid = FromNvmlBuffer(uuid, sizeof(uuid));
    }
    if (!gpu.unavailable.ok()) {
      b->Log(StrCat("GPU ", i, " left out: ", gpu.unavailable.message()));
    }
    b->gpus_.push_back(std::move(gpu));
  }
  b->health_ = std::make_unique<GpuHealth>(b->gpus_.size());

  if (absl::Status s = b->DynamicMigSupport(); !s.ok()) {
    b->Log(StrCat("creating MIG instances is not possible: ", s.message()));
  }
  if (b->options_.watch_events) {
    std::vector<nvml::Device> handles;
    for (const Gpu& gpu : b->gpus_) handles.push_back(gpu.handle);
    absl::StatusOr<std::unique_ptr<NvmlEventWatcher>> events =
        NvmlEventWatcher::Start(*b->library_, std::move(handles), b->health_.get(),
                                [raw = b.get()](std::string_view message) { raw->Log(message); });
    if (events.ok()) {
      b->events_ = std::move(*events);
    } else {
      b->Log(StrCat("GPU health is not watched: ", events.status().message()));
    }
  }
  return b;
}

NvmlBackend::~NvmlBackend() {
  events_.reset();
  if (initialized_) library_->fn().shutdown();
}

void NvmlBackend::Log(std::string_view message) const {
  if (options_.log) {
    options_.log(message);
  } else {
    std::fprintf(stderr, "nvml backend: %.*s\n", static_cast<int>(message.size()), message.data());
  }
}

absl::Status NvmlBackend::DynamicMigSupport() const { return CheckDynamicMig("dynamic MIG"); }

absl::Status NvmlBackend::CheckDynamicMig(std::string_view call) const {
  const NvmlFunctions& f = library_->fn();
  for (auto [present, symbol] :
       {std::pair<bool, const char*>{f.device_get_gpu_instance_possible_placements != nullptr,
                                     "nvmlDeviceGetGpuInstancePossiblePlacements_v2"},
        {f.device_create_gpu_instance_with_placement != nullptr,
         "nvmlDeviceCreateGpuInstanceWithPlacement"},
        {f.device_get_mig_mode != nullptr, "nvmlDeviceGetMigMode"},
        {f.gpu_instance_get_info != nullptr, "nvmlGpuInstanceGetInfo"},
        {f.gpu_instance_destroy != nullptr, "nvmlGpuInstanceDestroy"},
        {f.gpu_instance_create_compute_instance != nullptr, "nvmlGpuInstanceCreateComputeInstance"},
        {f.compute_instance_get_info != nullptr, "nvmlComputeInstanceGetInfo_v2"},
        {f.compute_instance_destroy != nullptr, "nvmlComputeInstanceDestroy"}}) {
    if (!present) return library_->Missing(symbol, call);
  }
  return absl::OkStatus();
}

absl::StatusOr<const NvmlBackend::Gpu*> NvmlBackend::FindGpu(int gpu, std::string_view call) const {
  if (gpu < 0 || gpu >= static_cast<int>(gpus_.size())) {
    return NvmlStatus(NvmlError::kInvalidArgument, call,
                      StrCat("no GPU ", gpu, " on this node (", gpus_.size(), " GPUs)"));
  }
  if (!gpus_[gpu].unavailable.ok()) return gpus_[gpu].unavailable;
  return &gpus_[gpu];
}

absl::StatusOr<NodeInventory> NvmlBackend::Discover() {
  const NvmlFunctions& f = library_->fn();
  NodeInventory inv;
  char version[nvml::kSystemDriverVersionBufferSize] = {};
  if (nvml::Return r = f.system_get_driver_version(version, sizeof(version)); r != nvml::kSuccess) {
    return library_->Error(r, "nvmlSystemGetDriverVersion");
  }
  inv.driver_version = FromNvmlBuffer(version, sizeof(version));
  // Informational, and v2 fails with LIBRARY_NOT_FOUND when libcuda.so.1 is missing: no error.
  int cuda = 0;
  if (f.system_get_cuda_driver_version != nullptr &&
      f.system_get_cuda_driver_version(&cuda) == nvml::kSuccess && cuda > 0) {
    inv.cuda_driver_version = StrCat(cuda / 1000, ".", (cuda % 1000) / 10);
  }
  for (std::size_t i = 0; i < gpus_.size(); ++i) {
    if (!gpus_[i].unavailable.ok()) continue;
    const int index = static_cast<int>(i);
    api::GpuInfo info;
    if (absl::Status s = DescribeGpu(index, &info); !s.ok()) {
      if (NvmlErrorOf(s) != NvmlError::kGpuIsLost) return s;
      // A lost GPU is still reported, with what is known, so that its devices turn unhealthy.
      if (health_->MarkUnhealthy(index, std::string(kGpuLostMessage))) {
        Log(StrCat("GPU ", index, " is unhealthy: ", kGpuLostMessage, " (", s.message(), ")"));
      }
    }
    const GpuHealth::State health = health_->Get(index);
    info.health = health.health;
    info.health_message = health.message;
    inv.gpus.push_back(std::move(info));
  }
  return inv;
}

absl::Status NvmlBackend::DescribeGpu(int index, api::GpuInfo* out) const {
  const NvmlFunctions& f = library_->fn();
  const Gpu& gpu = gpus_[index];
  const nvml::Device dev = gpu.handle;
  const std::string where = StrCat("(GPU ", index, ")");
  out->index = index;
  out->uuid = gpu.uuid;

  char name[nvml::kDeviceNameV2BufferSize] = {};
  if (nvml::Return r = f.device_get_name(dev, name, sizeof(name)); r != nvml::kSuccess) {
    return library_->Error(r, StrCat("nvmlDeviceGetName", where));
  }
  out->product = FromNvmlBuffer(name, sizeof(name));

  nvml::PciInfo pci;
  std::memset(&pci, 0, sizeof(pci));
  if (nvml::Return r = f.device_get_pci_info(dev, &pci); r != nvml::kSuccess) {
    return library_->Error(r, StrCat("nvmlDeviceGetPciInfo_v3", where));
  }
  out->pci_bus_id = NormalizePciBusId(pci);
  const partitioner::GpuModel* builtin = BuiltinModel(pci);
  if (builtin != nullptr) out->model = builtin->key;

  nvml::Memory memory;
  std::memset(&memory, 0, sizeof(memory));
  if (nvml::Return r = f.device_get_memory_info(dev, &memory); r != nvml::kSuccess) {
    return library_->Error(r, StrCat("nvmlDeviceGetMemoryInfo", where));
  }
  out->memory = api::Quantity::FromInt64(static_cast<int64_t>(memory.total),
                                         api::Quantity::Format::kBinarySI);

  int major = 0, minor = 0;
  if (nvml::Return r = f.device_get_cuda_compute_capability(dev, &major, &minor);
      r != nvml::kSuccess) {
    return library_->Error(r, StrCat("nvmlDeviceGetCudaComputeCapability", where));
  }
  out->compute_capability = StrCat(major, ".", minor);

  unsigned int minor_number = 0;
  if (nvml::Return r = f.device_get_minor_number(dev, &minor_number); r != nvml::kSuccess) {
    return library_->Error(r, StrCat("nvmlDeviceGetMinorNumber", where));
  }
  out->minor_number = static_cast<int32_t>(minor_number);

  if (f.device_get_mig_mode == nullptr) return absl::OkStatus();
  unsigned int current = nvml::kDeviceMigDisable, pending = nvml::kDeviceMigDisable;
  const nvml::Return r = f.device_get_mig_mode(dev, &current, &pending);
  if (r == nvml::kErrorNotSupported) return absl::OkStatus();
  if (r != nvml::kSuccess) return library_->Error(r, StrCat("nvmlDeviceGetMigMode", where));
  out->mig_capable = true;
  out->mig_enabled = current == nvml::kDeviceMigEnable;
  if (!out->mig_enabled) return absl::OkStatus();

  absl::StatusOr<std::vector<api::MigProfileInfo>> profiles =
      DescribeMigProfiles(*library_, dev, index, builtin);
  if (!profiles.ok()) return profiles.status();
  out->mig_profiles = std::move(*profiles);
  absl::StatusOr<std::vector<api::MigInstanceInfo>> instances =
      DescribeMigInstances(*library_, dev, index, out->mig_profiles);
  if (!instances.ok()) return instances.status();
  out->mig_instances = std::move(*instances);
  return absl::OkStatus();
}

absl::Status NvmlBackend::CheckMigEnabled(const Gpu& gpu, std::string_view call) const {
  unsigned int current = nvml::kDeviceMigDisable, pending = nvml::kDeviceMigDisable;
  const nvml::Return r = library_->fn().device_get_mig_mode(gpu.handle, &current, &pending);
  if (r != nvml::kSuccess) return library_->Error(r, call);
  if (current != nvml::kDeviceMigEnable) {
    return NvmlStatus(NvmlError::kNotSupported, call, "MIG mode is disabled on this GPU");
  }
  return absl::OkStatus();
}

absl::StatusOr<api::MigInstanceInfo> NvmlBackend::CreateMigInstance(int gpu_index, int profile_id,
                                                                    api::Placement placement) {
  const NvmlFunctions& f = library_->fn();
  const std::string call =
      StrCat("nvmlDeviceCreateGpuInstanceWithPlacement(GPU ", gpu_index, ", profile ", profile_id,
             ", placement {", placement.start, ",", placement.size, "})");
  if (absl::Status s = CheckDynamicMig(call); !s.ok()) return s;
  absl::StatusOr<const Gpu*> gpu = FindGpu(gpu_index, call);
  if (!gpu.ok()) return gpu.status();
  const nvml::Device dev = (*gpu)->handle;
  if (absl::Status s = CheckMigEnabled(**gpu, call); !s.ok()) return s;
  if (profile_id < 0 || placement.start < 0 || placement.size <= 0) {
    return NvmlStatus(NvmlError::kInvalidArgument, call, "negative profile or empty placement");
  }
  absl::StatusOr<std::vector<NvmlGiProfile>> profiles = ListGiProfiles(*library_, dev, gpu_index);
  if (!profiles.ok()) return profiles.status();
  const auto profile = std::find_if(profiles->begin(), profiles->end(), [&](const auto& p) {
    return p.id == static_cast<unsigned int>(profile_id);
  });
  if (profile == profiles->end()) {
    return NvmlStatus(NvmlError::kInvalidArgument, call,
                      "the GPU has no such GPU-instance profile");
  }

  const nvml::GpuInstancePlacement at{static_cast<unsigned int>(placement.start),
                                      static_cast<unsigned int>(placement.size)};
  nvml::GpuInstance gi = nullptr;
  if (nvml::Return r = f.device_create_gpu_instance_with_placement(dev, profile->id, &at, &gi);
      r != nvml::kSuccess) {
    return library_->Error(r, call);
  }
  absl::StatusOr<api::MigInstanceInfo> instance =
      AddComputeInstance(*library_, dev, gpu_index, gi, profile->compute_slices);
  if (!instance.ok()) {
    // Leave the GPU as it was: a GI without a compute instance is of no use to anyone.
    const nvml::Return r = f.gpu_instance_destroy(gi);
    return WithNote(instance.status(),
                    r == nvml::kSuccess
                        ? "; the new GPU instance was destroyed again"
                        : StrCat("; destroying the new GPU instance failed too: ",
                                 library_->Error(r, "nvmlGpuInstanceDestroy").message()));
  }
  const partitioner::GpuModel* builtin = nullptr;
  nvml::PciInfo pci;
  std::memset(&pci, 0, sizeof(pci));
  if (f.device_get_pci_info(dev, &pci) == nvml::kSuccess) builtin = BuiltinModel(pci);
  instance->profile = GiProfileName(*profile, placement.size, builtin);
  instance->created_by_tessera = true;
  return instance;
}

absl::Status NvmlBackend::DestroyMigInstance(int gpu_index, int gi_id) {
  const NvmlFunctions& f = library_->fn();
  const std::string where = StrCat("GPU ", gpu_index, ", GI ", gi_id);
  const std::string lookup = StrCat("nvmlDeviceGetGpuInstanceById(", where, ")");
  absl::StatusOr<const Gpu*> gpu = FindGpu(gpu_index, lookup);
  if (!gpu.ok()) return gpu.status();
  if (f.device_get_gpu_instance_by_id == nullptr) {
    return library_->Missing("nvmlDeviceGetGpuInstanceById", lookup);
  }
  if (f.gpu_instance_destroy == nullptr) {
    return library_->Missing("nvmlGpuInstanceDestroy",
                             StrCat("nvmlGpuInstanceDestroy(", where, ")"));
  }
  if (f.compute_instance_destroy == nullptr) {
    return library_->Missing("nvmlComputeInstanceDestroy",
                             StrCat("nvmlComputeInstanceDestroy(", where, ")"));
  }
  if (gi_id < 0) return NvmlStatus(NvmlError::kNotFound, lookup, "negative GI ID");
  nvml::GpuInstance gi = nullptr;
  if (nvml::Return r =
          f.device_get_gpu_instance_by_id((*gpu)->handle, static_cast<unsigned int>(gi_id), &gi);
      r != nvml::kSuccess) {
    return library_->Error(r, lookup);
  }
  // Compute instances first: NVML refuses (IN_USE) to destroy a GI that still has one.
  absl::Status s = ForEachComputeInstance(
      *library_, gi, where,
      [&](nvml::ComputeInstance ci, const nvml::ComputeInstanceProfileInfoV1& profile) {
        const nvml::Return r = f.compute_instance_destroy(ci);
        if (r == nvml::kSuccess || r == nvml::kErrorNotFound) return absl::OkStatus();
        return library_->Error(
            r, StrCat("nvmlComputeInstanceDestroy(", where, ", CI profile ", profile.id, ")"));
      });
  if (!s.ok()) return s;
  if (nvml::Return r = f.gpu_instance_destroy(gi); r != nvml::kSuccess) {
    return library_->Error(r, StrCat("nvmlGpuInstanceDestroy(", where, ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::int64_t> NvmlBackend::MemoryUsed(int gpu_index, std::string_view uuid) {
  const std::string where = StrCat("(GPU ", gpu_index, ")");
  absl::StatusOr<const Gpu*> gpu = FindGpu(gpu_index, StrCat("nvmlDeviceGetMemoryInfo", where));
  if (!gpu.ok()) return gpu.status();
  const NvmlFunctions& f = library_->fn();
  nvml::Device device = nullptr;
  if ((*gpu)->uuid == uuid) {
    device = (*gpu)->handle;
  } else {
    // A MIG device: walk the GPU's MIG device handles for the one with this UUID.
    if (f.device_get_max_mig_device_count == nullptr ||
        f.device_get_mig_device_handle_by_index == nullptr) {
      return library_->Missing("nvmlDeviceGetMigDeviceHandleByIndex",
                               StrCat("nvmlDeviceGetMemoryInfo", where));
    }
    unsigned int max = 0;
    if (nvml::Return r = f.device_get_max_mig_device_count((*gpu)->handle, &max);
        r != nvml::kSuccess) {
      return library_->Error(r, StrCat("nvmlDeviceGetMaxMigDeviceCount", where));
    }
    for (unsigned int i = 0; i < max && device == nullptr; ++i) {
      nvml::Device mig = nullptr;
      if (f.device_get_mig_device_handle_by_index((*gpu)->handle, i, &mig) != nvml::kSuccess) {
        continue;  // an empty index, or one that went away meanwhile
      }
      char buf[nvml::kDeviceUuidV2BufferSize] = {};
      if (f.device_get_uuid(mig, buf, sizeof(buf)) == nvml::kSuccess &&
          FromNvmlBuffer(buf, sizeof(buf)) == uuid) {
        device = mig;
      }
    }
    if (device == nullptr) {
      return NvmlStatus(NvmlError::kNotFound, StrCat("nvmlDeviceGetMemoryInfo", where),
                        StrCat("no MIG device ", uuid));
    }
  }
  nvml::Memory memory;
  std::memset(&memory, 0, sizeof(memory));
  if (nvml::Return r = f.device_get_memory_info(device, &memory); r != nvml::kSuccess) {
    return library_->Error(r, StrCat("nvmlDeviceGetMemoryInfo(", uuid, ")"));
  }
  return static_cast<std::int64_t>(memory.used);
}

absl::Status NvmlBackend::SetTimeSlice(int gpu_index, api::TimeSliceInterval interval) {
  const std::string smi =
      options_.nvidia_smi_path.empty()
          ? StrCat(DriverRootPrefix(options_.driver_root), "/usr/bin/nvidia-smi")
          : options_.nvidia_smi_path;
  absl::StatusOr<const Gpu*> gpu = FindGpu(gpu_index, StrCat(smi, " compute-policy"));
  if (!gpu.ok()) return gpu.status();
  const std::string level = std::to_string(static_cast<int>(interval));  // Default 0 ... Long 3
  const std::vector<std::string> argv = {smi,          "compute-policy",  "-i",
                                         (*gpu)->uuid, "--set-timeslice", level};
  // nvidia-smi dlopens libnvidia-ml.so.1 by soname: outside "/", point it at the driver root's.
  std::vector<std::string> environment;
  if (!DriverRootPrefix(options_.driver_root).empty()) {
    const std::string& lib = library_->path();
    environment.push_back(StrCat("LD_LIBRARY_PATH=", lib.substr(0, lib.rfind('/'))));
  }
  absl::StatusOr<CommandResult> result = RunCommand(argv, environment, options_.nvidia_smi_timeout);
  if (!result.ok()) return result.status();
  std::string output = result->output;
  while (!output.empty() && (output.back() == '\n' || output.back() == ' ')) output.pop_back();
  const std::string said = output.empty() ? "" : StrCat(": ", output);
  if (result->timed_out) {
    return absl::DeadlineExceededError(StrCat(CommandLine(argv), " did not finish within ",
                                              options_.nvidia_smi_timeout.count(),
                                              " ms and was killed", said));
  }
  if (result->signal != 0) {
    return absl::UnknownError(
        StrCat(CommandLine(argv), " was killed by signal ", result->signal, said));
  }
  if (result->exit_code != 0) {
    return absl::UnknownError(
        StrCat(CommandLine(argv), " failed with exit code ", result->exit_code, said));
  }
  return absl::OkStatus();
}

}  // namespace tessera::plugin
