// A stand-in for libnvidia-ml.so.1, built as a shared library of that name so that the nvml
// backend loads it exactly as it would load the driver's: dlopen from a driver root, dlsym per
// symbol. It simulates one H100 80GB HBM3 (PCI 0x2330, MIG on, the profiles and placements of the
// gpu-partitioning reference §1.2/§1.4) and one A100-SXM4-40GB (0x20B0, MIG off), with NVML's
// failure semantics: an occupied or overlapping placement is INSUFFICIENT_RESOURCES, destroying a
// GI that still has a compute instance or a CI with a process is IN_USE, unknown IDs NOT_FOUND.
//
// The NVML declarations here are the stub's own, written from the reference independently of the
// backend's nvml_abi.h, so that a layout mistake on one side shows up as a failing test.
//
// Tests steer it through the nvmlStub* functions at the end (reached with dlsym). Built three
// times: NVML_STUB_OLD_DRIVER lacks nvmlDeviceCreateGpuInstanceWithPlacement and
// nvmlDeviceGetGpuInstanceProfileInfoV, as a driver older than R470 would; NVML_STUB_NO_PCI_INFO
// lacks a symbol the backend requires.

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <vector>

extern "C" {

typedef unsigned int nvmlReturn_t;
enum : nvmlReturn_t {
  NVML_SUCCESS = 0,
  NVML_ERROR_UNINITIALIZED = 1,
  NVML_ERROR_INVALID_ARGUMENT = 2,
  NVML_ERROR_NOT_SUPPORTED = 3,
  NVML_ERROR_NOT_FOUND = 6,
  NVML_ERROR_INSUFFICIENT_SIZE = 7,
  NVML_ERROR_TIMEOUT = 10,
  NVML_ERROR_GPU_IS_LOST = 15,
  NVML_ERROR_IN_USE = 19,
  NVML_ERROR_INSUFFICIENT_RESOURCES = 23,
  NVML_ERROR_ARGUMENT_VERSION_MISMATCH = 25,
  NVML_ERROR_UNKNOWN = 999,
};

typedef struct nvmlDevice_st* nvmlDevice_t;
typedef struct nvmlGpuInstance_st* nvmlGpuInstance_t;
typedef struct nvmlComputeInstance_st* nvmlComputeInstance_t;
typedef struct nvmlEventSet_st* nvmlEventSet_t;

typedef struct {
  char busIdLegacy[16];
  unsigned int domain;
  unsigned int bus;
  unsigned int device;
  unsigned int pciDeviceId;
  unsigned int pciSubSystemId;
  char busId[32];
} nvmlPciInfo_t;
static_assert(sizeof(nvmlPciInfo_t) == 68 && offsetof(nvmlPciInfo_t, busId) == 36);

typedef struct {
  unsigned long long total, free, used;
} nvmlMemory_t;
static_assert(sizeof(nvmlMemory_t) == 24);

typedef struct {
  unsigned int start, size;
} nvmlGpuInstancePlacement_t;
typedef nvmlGpuInstancePlacement_t nvmlComputeInstancePlacement_t;

typedef struct {
  unsigned int id, isP2pSupported, sliceCount, instanceCount, multiprocessorCount, copyEngineCount,
      decoderCount, encoderCount, jpegCount, ofaCount;
  unsigned long long memorySizeMB;
} nvmlGpuInstanceProfileInfo_t;
static_assert(sizeof(nvmlGpuInstanceProfileInfo_t) == 48 &&
              offsetof(nvmlGpuInstanceProfileInfo_t, memorySizeMB) == 40);

typedef struct {
  unsigned int version, id, isP2pSupported, sliceCount, instanceCount, multiprocessorCount,
      copyEngineCount, decoderCount, encoderCount, jpegCount, ofaCount;
  unsigned long long memorySizeMB;
  char name[96];
} nvmlGpuInstanceProfileInfo_v2_t;
static_assert(sizeof(nvmlGpuInstanceProfileInfo_v2_t) == 152 &&
              offsetof(nvmlGpuInstanceProfileInfo_v2_t, memorySizeMB) == 48 &&
              offsetof(nvmlGpuInstanceProfileInfo_v2_t, name) == 56);

typedef struct {
  unsigned int version, id, sliceCount, instanceCount, multiprocessorCount, copyEngineCount,
      decoderCount, encoderCount, jpegCount, ofaCount;
  unsigned long long memorySizeMB;
  char name[96];
  unsigned int capabilities;
} nvmlGpuInstanceProfileInfo_v3_t;
static_assert(sizeof(nvmlGpuInstanceProfileInfo_v3_t) == 152 &&
              offsetof(nvmlGpuInstanceProfileInfo_v3_t, memorySizeMB) == 40 &&
              offsetof(nvmlGpuInstanceProfileInfo_v3_t, name) == 48 &&
              offsetof(nvmlGpuInstanceProfileInfo_v3_t, capabilities) == 144);

typedef struct {
  nvmlDevice_t device;
  unsigned int id, profileId;
  nvmlGpuInstancePlacement_t placement;
} nvmlGpuInstanceInfo_t;
static_assert(sizeof(nvmlGpuInstanceInfo_t) == 24 &&
              offsetof(nvmlGpuInstanceInfo_t, placement) == 16);

typedef struct {
  unsigned int id, sliceCount, instanceCount, multiprocessorCount, sharedCopyEngineCount,
      sharedDecoderCount, sharedEncoderCount, sharedJpegCount, sharedOfaCount;
} nvmlComputeInstanceProfileInfo_t;
static_assert(sizeof(nvmlComputeInstanceProfileInfo_t) == 36);

typedef struct {
  nvmlDevice_t device;
  nvmlGpuInstance_t gpuInstance;
  unsigned int id, profileId;
  nvmlComputeInstancePlacement_t placement;
} nvmlComputeInstanceInfo_t;
static_assert(sizeof(nvmlComputeInstanceInfo_t) == 32 &&
              offsetof(nvmlComputeInstanceInfo_t, id) == 16);

typedef struct {
  nvmlDevice_t device;
  unsigned long long eventType, eventData;
  unsigned int gpuInstanceId, computeInstanceId;
} nvmlEventData_t;
static_assert(sizeof(nvmlEventData_t) == 32 && offsetof(nvmlEventData_t, gpuInstanceId) == 24);

}  // extern "C"

namespace {

constexpr unsigned int kProfileInfoV2 = 0x02000098;
constexpr unsigned int kProfileInfoV3 = 0x03000098;
constexpr unsigned int kGiProfileEnumCount = 0x12;
constexpr unsigned int kCiProfileEnumCount = 0x9;
constexpr int kGpus = 2;
constexpr int kMaxGi = 15;  // GI IDs 0..14
constexpr int kMaxCi = 8;   // CI IDs 0..7
constexpr unsigned int kMaxMigDevices = 7;
constexpr unsigned long long kEventXid = 0x8;
// What the stub's GPUs can report: single- and double-bit ECC, P-state, Xid, clock.
constexpr unsigned long long kSupportedEvents = 0x1F;

struct ProfileSpec {
  unsigned int profile_enum, id;
  const char* name;
  unsigned int slices, memory_slices, count, sm, decoders, encoders, jpeg, ofa, copy;
  unsigned long long memory_mib;
  std::vector<unsigned int> starts;
};

struct GpuSpec {
  const char* name;
  const char* uuid;
  unsigned int pci_device_id;
  const char* bus_id;
  unsigned int domain, bus, device;
  unsigned long long memory_bytes;
  int cc_major, cc_minor;
  unsigned int minor;
  unsigned int mig_mode;
  std::vector<ProfileSpec> profiles;
};

const std::vector<unsigned int> kStarts1 = {0, 1, 2, 3, 4, 5, 6};

const GpuSpec& Spec(int gpu) {
  static const GpuSpec kH100 = {
      .name = "NVIDIA H100 80GB HBM3",
      .uuid = "GPU-5e7a1c00-0000-4000-8000-000000000000",
      .pci_device_id = 0x233010DE,
      .bus_id = "00000000:65:00.0",
      .domain = 0,
      .bus = 0x65,
      .device = 0,
      .memory_bytes = 81559ull << 20,
      .cc_major = 9,
      .cc_minor = 0,
      .minor = 0,
      .mig_mode = 1,
      .profiles = {
          // enum, id, name, slices, memory slices, count, SMs, DEC, ENC, JPEG, OFA, CE, MiB
          {0x0, 19, "1g.10gb", 1, 1, 7, 16, 1, 0, 1, 0, 1, 9984, kStarts1},
          {0x1, 14, "2g.20gb", 2, 2, 3, 32, 2, 0, 2, 0, 2, 20096, {0, 2, 4}},
          {0x2, 9, "3g.40gb", 3, 4, 2, 60, 3, 0, 3, 0, 3, 40448, {0, 4}},
          {0x3, 5, "4g.40gb", 4, 4, 1, 64, 4, 0, 4, 0, 4, 40448, {0}},
          {0x4, 0, "7g.80gb", 7, 8, 1, 132, 7, 0, 7, 1, 8, 81152, {0}},
          {0x7, 20, "1g.10gb+me", 1, 1, 1, 16, 1, 0, 1, 1, 1, 9984, kStarts1},
          {0x9, 15, "1g.20gb", 1, 2, 4, 26, 1, 0, 1, 0, 1, 20096, {0, 2, 4, 6}},
      }};
  static const GpuSpec kA100 = {
      .name = "NVIDIA A100-SXM4-40GB",
      .uuid = "GPU-5e7a1c01-0000-4000-8000-000000000001",
      .pci_device_id = 0x20B010DE,
      .bus_id = "00000000:B3:00.0",
      .domain = 0,
      .bus = 0xB3,
      .device = 0,
      .memory_bytes = 40960ull << 20,
      .cc_major = 8,
      .cc_minor = 0,
      .minor = 1,
      .mig_mode = 0,
      .profiles = {
          {0x0, 19, "1g.5gb", 1, 1, 7, 14, 0, 0, 0, 0, 1, 4864, kStarts1},
          {0x1, 14, "2g.10gb", 2, 2, 3, 28, 1, 0, 0, 0, 2, 9856, {0, 2, 4}},
          {0x2, 9, "3g.20gb", 3, 4, 2, 42, 2, 0, 0, 0, 3, 19968, {0, 4}},
          {0x3, 5, "4g.20gb", 4, 4, 1, 56, 2, 0, 0, 0, 4, 19968, {0}},
          {0x4, 0, "7g.40gb", 7, 8, 1, 98, 5, 0, 1, 1, 7, 40192, {0}},
          {0x7, 20, "1g.5gb+me", 1, 1, 1, 14, 1, 0, 1, 1, 1, 4864, kStarts1},
          {0x9, 15, "1g.10gb", 1, 2, 4, 14, 1, 0, 0, 0, 1, 9856, {0, 2, 4, 6}},
      }};
  return gpu == 0 ? kH100 : kA100;
}

const ProfileSpec* ProfileByEnum(int gpu, unsigned int e) {
  for (const ProfileSpec& p : Spec(gpu).profiles) {
    if (p.profile_enum == e) return &p;
  }
  return nullptr;
}

const ProfileSpec* ProfileById(int gpu, unsigned int id) {
  for (const ProfileSpec& p : Spec(gpu).profiles) {
    if (p.id == id) return &p;
  }
  return nullptr;
}

// Compute slices of the CI profile enums 0..8 (§1.5).
constexpr unsigned int kCiSlices[kCiProfileEnumCount] = {1, 2, 3, 4, 7, 8, 6, 1, 7};

}  // namespace

// The handle types. A MIG device handle is a Device with is_mig set.
struct nvmlDevice_st {
  int gpu = 0;
  bool is_mig = false;
  unsigned int gi = 0, ci = 0;
};

struct nvmlComputeInstance_st {
  bool alive = false;
  unsigned int id = 0, profile_id = 0, slices = 0, start = 0;
  std::string uuid;
  nvmlDevice_st mig_device;
};

struct nvmlGpuInstance_st {
  int gpu = 0;
  bool alive = false;
  bool in_use = false;  // a process runs on it: CI destroy is IN_USE
  unsigned int id = 0;
  const ProfileSpec* profile = nullptr;
  unsigned int start = 0;
  nvmlComputeInstance_st cis[kMaxCi];
};

struct nvmlEventSet_st {
  unsigned long long registered[kGpus] = {0, 0};
  std::deque<nvmlEventData_t> queue;
  bool lost_pending = false;
};

namespace {

struct State {
  std::mutex mu;
  std::condition_variable events_cv;
  int init_count = 0;
  nvmlDevice_st devices[kGpus];
  unsigned int mig_mode[kGpus] = {Spec(0).mig_mode, Spec(1).mig_mode};
  bool lost[kGpus] = {false, false};
  nvmlGpuInstance_st gis[kGpus][kMaxGi];
  std::vector<nvmlEventSet_st*> sets;
  std::map<std::string, nvmlReturn_t> fail_next;
  int max_profile_info_version = 3;
  bool ci_info_device_is_mig = false;
  unsigned int max_wait_timeout_ms = 0;
  unsigned long long last_registered[kGpus] = {0, 0};
  int uuid_serial = 0;

  State() {
    for (int g = 0; g < kGpus; ++g) {
      devices[g].gpu = g;
      for (int i = 0; i < kMaxGi; ++i) gis[g][i].gpu = g;
    }
  }
};

State& S() {
  static State state;  // destroyed at dlclose, after the last backend let go of the library
  return state;
}

using Lock = std::unique_lock<std::mutex>;

// An injected failure for `fn`, consumed by this call.
bool Fail(const char* fn, nvmlReturn_t* r) {
  auto it = S().fail_next.find(fn);
  if (it == S().fail_next.end()) return false;
  *r = it->second;
  S().fail_next.erase(it);
  return true;
}

#define STUB_FAIL_POINT(fn)                   \
  do {                                        \
    nvmlReturn_t injected = NVML_SUCCESS;     \
    if (Fail(fn, &injected)) return injected; \
  } while (0)

// A parent GPU handle that may be used: initialised, known, not lost.
nvmlReturn_t CheckGpu(nvmlDevice_t d) {
  if (S().init_count == 0) return NVML_ERROR_UNINITIALIZED;
  if (d == nullptr || d->is_mig || d->gpu < 0 || d->gpu >= kGpus || d != &S().devices[d->gpu]) {
    return NVML_ERROR_INVALID_ARGUMENT;
  }
  if (S().lost[d->gpu]) return NVML_ERROR_GPU_IS_LOST;
  return NVML_SUCCESS;
}

nvmlReturn_t CheckMig(nvmlDevice_t d) {
  if (nvmlReturn_t r = CheckGpu(d); r != NVML_SUCCESS) return r;
  return S().mig_mode[d->gpu] == 1 ? NVML_SUCCESS : NVML_ERROR_NOT_SUPPORTED;
}

nvmlReturn_t CheckGi(nvmlGpuInstance_t gi) {
  if (S().init_count == 0) return NVML_ERROR_UNINITIALIZED;
  if (gi == nullptr || !gi->alive) return NVML_ERROR_INVALID_ARGUMENT;
  if (S().lost[gi->gpu]) return NVML_ERROR_GPU_IS_LOST;
  return NVML_SUCCESS;
}

nvmlGpuInstance_st* GiOf(nvmlComputeInstance_t ci) {
  for (auto& gpu : S().gis) {
    for (auto& gi : gpu) {
      if (ci >= gi.cis && ci < gi.cis + kMaxCi) return &gi;
    }
  }
  return nullptr;
}

// Alive compute instances of a GPU in (GI, CI) order: the MIG devices.
std::vector<nvmlComputeInstance_st*> MigDevices(int gpu) {
  std::vector<nvmlComputeInstance_st*> out;
  for (auto& gi : S().gis[gpu]) {
    if (!gi.alive) continue;
    for (auto& ci : gi.cis) {
      if (ci.alive) out.push_back(&ci);
    }
  }
  return out;
}

// Memory slices [start, start + size) as bits (only the placement create needs it).
[[maybe_unused]] unsigned int Mask(unsigned int start, unsigned int size) {
  return ((1u << size) - 1) << start;
}

nvmlReturn_t CopyString(const std::string& s, char* out, unsigned int length) {
  if (out == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  if (s.size() + 1 > length) return NVML_ERROR_INSUFFICIENT_SIZE;
  std::memcpy(out, s.c_str(), s.size() + 1);
  return NVML_SUCCESS;
}

template <typename Info>
void FillCounts(const ProfileSpec& p, Info* info) {
  info->id = p.id;
  info->sliceCount = p.slices;
  info->instanceCount = p.count;
  info->multiprocessorCount = p.sm;
  info->copyEngineCount = p.copy;
  info->decoderCount = p.decoders;
  info->encoderCount = p.encoders;
  info->jpegCount = p.jpeg;
  info->ofaCount = p.ofa;
  info->memorySizeMB = p.memory_mib;
}

void Push(int gpu, const nvmlEventData_t& e, int* delivered) {
  for (nvmlEventSet_st* set : S().sets) {
    if ((set->registered[gpu] & e.eventType) == 0) continue;
    set->queue.push_back(e);
    ++*delivered;
  }
  S().events_cv.notify_all();
}

}  // namespace

extern "C" {

// ---- Library life cycle and system queries.

nvmlReturn_t nvmlInit_v2(void) {
  Lock lock(S().mu);
  STUB_FAIL_POINT("nvmlInit_v2");
  ++S().init_count;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlShutdown(void) {
  Lock lock(S().mu);
  if (S().init_count == 0) return NVML_ERROR_UNINITIALIZED;
  --S().init_count;
  return NVML_SUCCESS;
}

const char* nvmlErrorString(nvmlReturn_t r) {
  switch (r) {
    case NVML_SUCCESS:
      return "Success";
    case NVML_ERROR_NOT_SUPPORTED:
      return "Not Supported";
    case NVML_ERROR_NOT_FOUND:
      return "Not Found";
    case NVML_ERROR_IN_USE:
      return "In use by another client";
    case NVML_ERROR_INSUFFICIENT_RESOURCES:
      return "Insufficient resources";
    case 9:
      return "Driver Not Loaded";
    default:
      return "Unknown Error";
  }
}

nvmlReturn_t nvmlSystemGetDriverVersion(char* version, unsigned int length) {
  Lock lock(S().mu);
  if (S().init_count == 0) return NVML_ERROR_UNINITIALIZED;
  return CopyString("550.54.15", version, length);
}

nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int* version) {
  Lock lock(S().mu);
  STUB_FAIL_POINT("nvmlSystemGetCudaDriverVersion_v2");
  *version = 12040;
  return NVML_SUCCESS;
}

// ---- Devices.

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int* count) {
  Lock lock(S().mu);
  if (S().init_count == 0) return NVML_ERROR_UNINITIALIZED;
  *count = kGpus;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t* device) {
  Lock lock(S().mu);
  if (S().init_count == 0) return NVML_ERROR_UNINITIALIZED;
  if (index >= kGpus) return NVML_ERROR_INVALID_ARGUMENT;
  *device = &S().devices[index];
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t d, char* name, unsigned int length) {
  Lock lock(S().mu);
  if (nvmlReturn_t r = CheckGpu(d); r != NVML_SUCCESS) return r;
  return CopyString(Spec(d->gpu).name, name, length);
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t d, char* uuid, unsigned int length) {
  Lock lock(S().mu);
  if (d != nullptr && d->is_mig) {
    if (S().init_count == 0) return NVML_ERROR_UNINITIALIZED;
    const nvmlGpuInstance_st& gi = S().gis[d->gpu][d->gi];
    if (!gi.alive || !gi.cis[d->ci].alive) return NVML_ERROR_INVALID_ARGUMENT;
    return CopyString(gi.cis[d->ci].uuid, uuid, length);
  }
  if (nvmlReturn_t r = CheckGpu(d); r != NVML_SUCCESS) return r;
  return CopyString(Spec(d->gpu).uuid, uuid, length);
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t d, nvmlMemory_t* memory) {
  Lock lock(S().mu);
  if (d != nullptr && d->is_mig) {  // the instance's memory; 64 MiB per GI ID in use
    if (S().init_count == 0) return NVML_ERROR_UNINITIALIZED;
    const nvmlGpuInstance_st& gi = S().gis[d->gpu][d->gi];
    if (!gi.alive || !gi.cis[d->ci].alive) return NVML_ERROR_INVALID_ARGUMENT;
    memory->total = gi.profile->memory_mib << 20;
    memory->used = static_cast<unsigned long long>(gi.id) * (64ull << 20);
    memory->free = memory->total - memory->used;
    return NVML_SUCCESS;
  }
  if (nvmlReturn_t r = CheckGpu(d); r != NVML_SUCCESS) return r;
  memory->total = Spec(d->gpu).memory_bytes;
  memory->used = 512ull << 20;
  memory->free = memory->total - memory->used;
  return NVML_SUCCESS;
}

#ifndef NVML_STUB_NO_PCI_INFO
nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t d, nvmlPciInfo_t* pci) {
  Lock lock(S().mu);
  if (nvmlReturn_t r = CheckGpu(d); r != NVML_SUCCESS) return r;
  const GpuSpec& s = Spec(d->gpu);
  std::memset(pci, 0, sizeof(*pci));
  std::snprintf(pci->busIdLegacy, sizeof(pci->busIdLegacy), "%04X:%02X:%02X.0", s.domain, s.bus,
                s.device);
  pci->domain = s.domain;
  pci->bus = s.bus;
  pci->device = s.device;
  pci->pciDeviceId = s.pci_device_id;
  pci->pciSubSystemId = 0x16C110DE;
  std::snprintf(pci->busId, sizeof(pci->busId), "%s", s.bus_id);
  return NVML_SUCCESS;
}
#endif

nvmlReturn_t nvmlDeviceGetMinorNumber(nvmlDevice_t d, unsigned int* minor) {
  Lock lock(S().mu);
  if (nvmlReturn_t r = CheckGpu(d); r != NVML_SUCCESS) return r;
  *minor = Spec(d->gpu).minor;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCudaComputeCapability(nvmlDevice_t d, int* major, int* minor) {
  Lock lock(S().mu);
  if (nvmlReturn_t r = CheckGpu(d); r != NVML_SUCCESS) return r;
  *major = Spec(d->gpu).cc_major;
  *minor = Spec(d->gpu).cc_minor;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t d, unsigned int* current, unsigned int* pending) {
  Lock lock(S().mu);
  if (nvmlReturn_t r = CheckGpu(d); r != NVML_SUCCESS) return r;
  *current = *pending = S().mig_mode[d->gpu];
  return NVML_SUCCESS;
}

// ---- GPU-instance profiles.

nvmlReturn_t nvmlDeviceGetGpuInstanceProfileInfo(nvmlDevice_t d, unsigned int e,
                                                 nvmlGpuInstanceProfileInfo_t* info) {
  Lock lock(S().mu);
  if (nvmlReturn_t r = CheckGpu(d); r != NVML_SUCCESS) return r;
  if (e >= kGiProfileEnumCount) return NVML_ERROR_INVALID_ARGUMENT;
  const ProfileSpec* p = ProfileByEnum(d->gpu, e);
  if (p == nullptr) return NVML_ERROR_NOT_SUPPORTED;
  std::memset(info, 0, sizeof(*info));
  FillCounts(*p, info);
  return NVML_SUCCESS;
}

#ifndef NVML_STUB_OLD_DRIVER
nvmlReturn_t nvmlDeviceGetGpuInstanceProfileInfoV(nvmlDevice_t d, unsigned int e, void* info) {
  Lock lock(S().mu);
  if (nvmlReturn_t r = CheckMig(d); r != NVML_SUCCESS) return r;
  if (e >= kGiProfileEnumCount) return NVML_ERROR_INVALID_ARGUMENT;
  unsigned int version = 0;
  std::memcpy(&version, info, sizeof(version));
  const int max = S().max_profile_info_version;
  if (version != kProfileInfoV2 && version != kProfileInfoV3) return NVML_ERROR_INVALID_ARGUMENT;
  if ((version == kProfileInfoV3 && max < 3) || (version == kProfileInfoV2 && max < 2)) {
    return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
  }
  const ProfileSpec* p = ProfileByEnum(d->gpu, e);
  if (p == nullptr) return NVML_ERROR_NOT_SUPPORTED;
  // nvidia-smi shows profile names with a "MIG " prefix; the stub assumes NVML's field has it.
  const std::string name = std::string("MIG ") + p->name;
  if (version == kProfileInfoV3) {
    auto* v3 = static_cast<nvmlGpuInstanceProfileInfo_v3_t*>(info);
    std::memset(v3, 0, sizeof(*v3));
    v3->version = version;
    FillCounts(*p, v3);
    std::snprintf(v3->name, sizeof(v3->name), "%s", name.c_str());
  } else {
    auto* v2 = static_cast<nvmlGpuInstanceProfileInfo_v2_t*>(info);
    std::memset(v2, 0, sizeof(*v2));
    v2->version = version;
    FillCounts(*p, v2);
    std::snprintf(v2->name, sizeof(v2->name), "%s", name.c_str());
  }
  return NVML_SUCCESS;
}
#endif

nvmlReturn_t nvmlDeviceGetGpuInstancePossiblePlacements_v2(nvmlDevice_t d, unsigned int id,
                                                           nvmlGpuInstancePlacement_t* placements,
                                                           unsigned int* count) {
  Lock lock(S().mu);
  if (nvmlReturn_t r = CheckGpu(d); r != NVML_SUCCESS) return r;
  const ProfileSpec* p = ProfileById(d->gpu, id);
  if (p == nullptr) return NVML_ERROR_NOT_SUPPORTED;
  const auto n = static_cast<unsigned int>(p->starts.size());
  if (placements == nullptr) {
    *count = n;
    return NVML_SUCCESS;
  }
  if (*count < n) return NVML_ERROR_INSUFFICIENT_SIZE;
  for (unsigned int i = 0; i < n; ++i) placements[i] = {p->starts[i], p->memory_slices};
  *count = n;
  return NVML_SUCCESS;
}

// ---- GPU instances.

#ifndef NVML_STUB_OLD_DRIVER
nvmlReturn_t nvmlDeviceCreateGpuInstanceWithPlacement(nvmlDevice_t d, unsigned int id,
                                                      const nvmlGpuInstancePlacement_t* placement,
                                                      nvmlGpuInstance_t* out) {
  Lock lock(S().mu);
  STUB_FAIL_POINT("nvmlDeviceCreateGpuInstanceWithPlacement");
  if (nvmlReturn_t r = CheckMig(d); r != NVML_SUCCESS) return r;
  const ProfileSpec* p = ProfileById(d->gpu, id);
  if (p == nullptr || placement == nullptr || out == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  if (placement->size != p->memory_slices ||
      std::find(p->starts.begin(), p->starts.end(), placement->start) == p->starts.end()) {
    return NVML_ERROR_INVALID_ARGUMENT;
  }
  unsigned int occupied = 0, same_profile = 0;
  for (const nvmlGpuInstance_st& gi : S().gis[d->gpu]) {
    if (!gi.alive) continue;
    occupied |= Mask(gi.start, gi.profile->memory_slices);
    if (gi.profile == p) ++same_profile;
  }
  if ((occupied & Mask(placement->start, placement->size)) != 0 || same_profile >= p->count) {
    return NVML_ERROR_INSUFFICIENT_RESOURCES;
  }
  for (int gi_id = 1; gi_id < kMaxGi; ++gi_id) {
    nvmlGpuInstance_st& gi = S().gis[d->gpu][gi_id];
    if (gi.alive) continue;
    gi.alive = true;
    gi.in_use = false;
    gi.id = static_cast<unsigned int>(gi_id);
    gi.profile = p;
    gi.start = placement->start;
    for (auto& ci : gi.cis) ci.alive = false;
    *out = &gi;
    return NVML_SUCCESS;
  }
  return NVML_ERROR_INSUFFICIENT_RESOURCES;
}
#endif

nvmlReturn_t nvmlDeviceGetGpuInstances(nvmlDevice_t d, unsigned int id, nvmlGpuInstance_t* array,
                                       unsigned int* count) {
  Lock lock(S().mu);
  if (nvmlReturn_t r = CheckMig(d); r != NVML_SUCCESS) return r;
  const ProfileSpec* p = ProfileById(d->gpu, id);
  if (p == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  unsigned int n = 0;
  for (nvmlGpuInstance_st& gi : S().gis[d->gpu]) {
    if (gi.alive && gi.profile == p) array[n++] = &gi;
  }
  *count = n;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetGpuInstanceById(nvmlDevice_t d, unsigned int id, nvmlGpuInstance_t* out) {
  Lock lock(S().mu);
  if (nvmlReturn_t r = CheckMig(d); r != NVML_SUCCESS) return r;
  if (id >= kMaxGi || !S().gis[d->gpu][id].alive) return NVML_ERROR_NOT_FOUND;
  *out = &S().gis[d->gpu][id];
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlGpuInstanceGetInfo(nvmlGpuInstance_t gi, nvmlGpuInstanceInfo_t* info) {
  Lock lock(S().mu);
  if (nvmlReturn_t r = CheckGi(gi); r != NVML_SUCCESS) return r;
  info->device = &S().devices[gi->gpu];
  info->id = gi->id;
  info->profileId = gi->profile->id;
  info->placement = {gi->start, gi->profile->memory_slices};
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlGpuInstanceDestroy(nvmlGpuInstance_t gi) {
  Lock lock(S().mu);
  STUB_FAIL_POINT("nvmlGpuInstanceDestroy");
  if (nvmlReturn_t r = CheckGi(gi); r != NVML_SUCCESS) return r;
  for (const auto& ci : gi->cis) {
    if (ci.alive) return NVML_ERROR_IN_USE;
  }
  gi->alive = false;
  return NVML_SUCCESS;
}

// ---- Compute instances.

nvmlReturn_t nvmlGpuInstanceGetComputeInstanceProfileInfo(nvmlGpuInstance_t gi, unsigned int e,
                                                          unsigned int engine,
                                                          nvmlComputeInstanceProfileInfo_t* info) {
  Lock lock(S().mu);
  if (nvmlReturn_t r = CheckGi(gi); r != NVML_SUCCESS) return r;
  if (e >= kCiProfileEnumCount || engine != 0) return NVML_ERROR_INVALID_ARGUMENT;
  const unsigned int slices = kCiSlices[e], gi_slices = gi->profile->slices;
  // Offered: enums 0-4 that fit the GI, except a 3-slice CI in a 4g GI (§1.5).
  if (e > 4 || slices > gi_slices || (gi_slices == 4 && slices == 3)) {
    return NVML_ERROR_NOT_SUPPORTED;
  }
  std::memset(info, 0, sizeof(*info));
  info->id = e;
  info->sliceCount = slices;
  info->instanceCount = gi_slices / slices;
  info->multiprocessorCount = gi->profile->sm * slices / gi_slices;
  info->sharedCopyEngineCount = gi->profile->copy;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlGpuInstanceCreateComputeInstance(nvmlGpuInstance_t gi, unsigned int profile_id,
                                                  nvmlComputeInstance_t* out) {
  Lock lock(S().mu);
  STUB_FAIL_POINT("nvmlGpuInstanceCreateComputeInstance");
  if (nvmlReturn_t r = CheckGi(gi); r != NVML_SUCCESS) return r;
  if (profile_id > 4 || kCiSlices[profile_id] > gi->profile->slices) {
    return NVML_ERROR_INVALID_ARGUMENT;
  }
  const unsigned int slices = kCiSlices[profile_id];
  unsigned int used = 0;
  for (const auto& ci : gi->cis) used += ci.alive ? ci.slices : 0;
  if (used + slices > gi->profile->slices) return NVML_ERROR_INSUFFICIENT_RESOURCES;
  for (unsigned int id = 0; id < kMaxCi; ++id) {
    nvmlComputeInstance_st& ci = gi->cis[id];
    if (ci.alive) continue;
    ci.alive = true;
    ci.id = id;
    ci.profile_id = profile_id;
    ci.slices = slices;
    ci.start = used;
    char uuid[64];
    std::snprintf(uuid, sizeof(uuid), "MIG-5e7a1c%02d-%04x-4000-8000-%012x", gi->gpu,
                  ++S().uuid_serial, gi->id * 16 + id);
    ci.uuid = uuid;
    ci.mig_device = {.gpu = gi->gpu, .is_mig = true, .gi = gi->id, .ci = id};
    *out = &ci;
    return NVML_SUCCESS;
  }
  return NVML_ERROR_INSUFFICIENT_RESOURCES;
}

nvmlReturn_t nvmlGpuInstanceGetComputeInstances(nvmlGpuInstance_t gi, unsigned int profile_id,
                                                nvmlComputeInstance_t* array, unsigned int* count) {
  Lock lock(S().mu);
  if (nvmlReturn_t r = CheckGi(gi); r != NVML_SUCCESS) return r;
  unsigned int n = 0;
  for (auto& ci : gi->cis) {
    if (ci.alive && ci.profile_id == profile_id) array[n++] = &ci;
  }
  *count = n;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlComputeInstanceGetInfo_v2(nvmlComputeInstance_t ci,
                                           nvmlComputeInstanceInfo_t* info) {
  Lock lock(S().mu);
  nvmlGpuInstance_st* gi = GiOf(ci);
  if (gi == nullptr || !gi->alive || !ci->alive) return NVML_ERROR_INVALID_ARGUMENT;
  info->device = S().ci_info_device_is_mig ? &ci->mig_device : &S().devices[gi->gpu];
  info->gpuInstance = gi;
  info->id = ci->id;
  info->profileId = ci->profile_id;
  info->placement = {ci->start, ci->slices};
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlComputeInstanceDestroy(nvmlComputeInstance_t ci) {
  Lock lock(S().mu);
  nvmlGpuInstance_st* gi = GiOf(ci);
  if (gi == nullptr || !gi->alive || !ci->alive) return NVML_ERROR_INVALID_ARGUMENT;
  if (gi->in_use) return NVML_ERROR_IN_USE;
  ci->alive = false;
  return NVML_SUCCESS;
}

// ---- MIG device handles.

nvmlReturn_t nvmlDeviceGetMaxMigDeviceCount(nvmlDevice_t d, unsigned int* count) {
  Lock lock(S().mu);
  if (nvmlReturn_t r = CheckGpu(d); r != NVML_SUCCESS) return r;
  *count = S().mig_mode[d->gpu] == 1 ? kMaxMigDevices : 0;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMigDeviceHandleByIndex(nvmlDevice_t d, unsigned int index,
                                                 nvmlDevice_t* mig) {
  Lock lock(S().mu);
  if (nvmlReturn_t r = CheckMig(d); r != NVML_SUCCESS) return r;
  if (index >= kMaxMigDevices) return NVML_ERROR_INVALID_ARGUMENT;
  const std::vector<nvmlComputeInstance_st*> devices = MigDevices(d->gpu);
  if (index >= devices.size()) return NVML_ERROR_NOT_FOUND;
  *mig = &devices[index]->mig_device;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetGpuInstanceId(nvmlDevice_t d, unsigned int* id) {
  Lock lock(S().mu);
  if (d == nullptr || !d->is_mig) return NVML_ERROR_NOT_SUPPORTED;
  *id = d->gi;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetComputeInstanceId(nvmlDevice_t d, unsigned int* id) {
  Lock lock(S().mu);
  if (d == nullptr || !d->is_mig) return NVML_ERROR_NOT_SUPPORTED;
  *id = d->ci;
  return NVML_SUCCESS;
}

// ---- Events.

nvmlReturn_t nvmlEventSetCreate(nvmlEventSet_t* set) {
  Lock lock(S().mu);
  *set = new nvmlEventSet_st();
  S().sets.push_back(*set);
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlEventSetFree(nvmlEventSet_t set) {
  Lock lock(S().mu);
  auto it = std::find(S().sets.begin(), S().sets.end(), set);
  if (it == S().sets.end()) return NVML_ERROR_INVALID_ARGUMENT;
  S().sets.erase(it);
  delete set;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetSupportedEventTypes(nvmlDevice_t d, unsigned long long* types) {
  Lock lock(S().mu);
  if (nvmlReturn_t r = CheckGpu(d); r != NVML_SUCCESS) return r;
  *types = kSupportedEvents;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceRegisterEvents(nvmlDevice_t d, unsigned long long types,
                                      nvmlEventSet_t set) {
  Lock lock(S().mu);
  if (nvmlReturn_t r = CheckGpu(d); r != NVML_SUCCESS) return r;
  if ((types & ~kSupportedEvents) != 0) return NVML_ERROR_NOT_SUPPORTED;
  set->registered[d->gpu] |= types;
  S().last_registered[d->gpu] = set->registered[d->gpu];
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlEventSetWait_v2(nvmlEventSet_t set, nvmlEventData_t* data, unsigned int ms) {
  Lock lock(S().mu);
  S().max_wait_timeout_ms = std::max(S().max_wait_timeout_ms, ms);
  S().events_cv.wait_for(lock, std::chrono::milliseconds(ms),
                         [set] { return set->lost_pending || !set->queue.empty(); });
  if (set->lost_pending) {
    set->lost_pending = false;
    return NVML_ERROR_GPU_IS_LOST;
  }
  if (set->queue.empty()) return NVML_ERROR_TIMEOUT;
  *data = set->queue.front();
  set->queue.pop_front();
  return NVML_SUCCESS;
}

// ---- Test controls.

// Back to the initial node: no instances, MIG on for GPU 0 only, no failures, no events.
void nvmlStubReset(void) {
  Lock lock(S().mu);
  for (int g = 0; g < kGpus; ++g) {
    S().mig_mode[g] = Spec(g).mig_mode;
    S().lost[g] = false;
    S().last_registered[g] = 0;
    for (auto& gi : S().gis[g]) {
      gi.alive = false;
      gi.in_use = false;
      for (auto& ci : gi.cis) ci.alive = false;
    }
  }
  S().fail_next.clear();
  S().max_profile_info_version = 3;
  S().ci_info_device_is_mig = false;
  S().max_wait_timeout_ms = 0;
}

// The next call of `fn` (its exported name) returns `code`.
void nvmlStubFailNext(const char* fn, int code) {
  Lock lock(S().mu);
  S().fail_next[fn] = static_cast<nvmlReturn_t>(code);
}

// Queues an event for every set registered for its type on `gpu`; returns how many got it.
int nvmlStubQueueEvent(int gpu, unsigned long long type, unsigned long long data, unsigned int gi,
                       unsigned int ci) {
  Lock lock(S().mu);
  if (gpu < 0 || gpu >= kGpus) return 0;
  int delivered = 0;
  Push(gpu,
       nvmlEventData_t{.device = &S().devices[gpu],
                       .eventType = type,
                       .eventData = data,
                       .gpuInstanceId = gi,
                       .computeInstanceId = ci},
       &delivered);
  return delivered;
}

int nvmlStubQueueXid(int gpu, unsigned long long xid) {
  return nvmlStubQueueEvent(gpu, kEventXid, xid, 0xFFFFFFFFu, 0xFFFFFFFFu);
}

// The GPU falls off the bus: its calls return GPU_IS_LOST and every event set reports it once.
void nvmlStubSetGpuLost(int gpu) {
  Lock lock(S().mu);
  S().lost[gpu] = true;
  for (nvmlEventSet_st* set : S().sets) set->lost_pending = true;
  S().events_cv.notify_all();
}

// A process runs on GI `gi` of `gpu`: destroying its compute instances is IN_USE.
void nvmlStubSetInUse(int gpu, unsigned int gi, int in_use) {
  Lock lock(S().mu);
  S().gis[gpu][gi].in_use = in_use != 0;
}

void nvmlStubSetMigMode(int gpu, unsigned int mode) {
  Lock lock(S().mu);
  S().mig_mode[gpu] = mode;
}

// The newest nvmlGpuInstanceProfileInfo version nvmlDeviceGetGpuInstanceProfileInfoV accepts
// (older drivers answer ARGUMENT_VERSION_MISMATCH); 1 rejects v2 and v3.
void nvmlStubSetMaxProfileInfoVersion(int version) {
  Lock lock(S().mu);
  S().max_profile_info_version = version;
}

// Whether nvmlComputeInstanceGetInfo_v2's `device` is the MIG device (else the parent GPU).
void nvmlStubSetCiInfoDeviceIsMig(int yes) {
  Lock lock(S().mu);
  S().ci_info_device_is_mig = yes != 0;
}

int nvmlStubInitCount(void) {
  Lock lock(S().mu);
  return S().init_count;
}

int nvmlStubEventSetCount(void) {
  Lock lock(S().mu);
  return static_cast<int>(S().sets.size());
}

unsigned long long nvmlStubRegisteredEvents(int gpu) {
  Lock lock(S().mu);
  return S().last_registered[gpu];
}

unsigned int nvmlStubMaxWaitTimeoutMs(void) {
  Lock lock(S().mu);
  return S().max_wait_timeout_ms;
}

}  // extern "C"
