#ifndef TESSERA_PLUGIN_NVML_ABI_H_
#define TESSERA_PLUGIN_NVML_ABI_H_

// The part of NVML's C ABI that the nvml backend calls, declared from the gpu-partitioning
// reference (§2 semantics, §3 ABI) because nvml.h is not available at build time: the library is
// loaded with dlopen and every function resolved with dlsym. Only what tessera uses is here.
//
// Layouts are LP64 (x86-64 and aarch64); every struct is checked against the reference's sizes and
// offsets below, since a wrong offset would silently read garbage out of the driver.

#include <cstddef>
#include <cstdint>

namespace tessera::plugin::nvml {

// Handles are pointers to incomplete structs. Distinct types so that a GPU-instance handle can
// never be passed where a device handle is expected.
struct DeviceSt;
struct GpuInstanceSt;
struct ComputeInstanceSt;
struct EventSetSt;
using Device = DeviceSt*;
using GpuInstance = GpuInstanceSt*;
using ComputeInstance = ComputeInstanceSt*;
using EventSet = EventSetSt*;

// nvmlReturn_t: a C enum with no negative values, so 4 bytes and unsigned (§3.1).
using Return = unsigned int;

inline constexpr Return kSuccess = 0;
inline constexpr Return kErrorUninitialized = 1;
inline constexpr Return kErrorInvalidArgument = 2;
inline constexpr Return kErrorNotSupported = 3;
inline constexpr Return kErrorNoPermission = 4;
inline constexpr Return kErrorNotFound = 6;
inline constexpr Return kErrorInsufficientSize = 7;
inline constexpr Return kErrorDriverNotLoaded = 9;
inline constexpr Return kErrorTimeout = 10;
inline constexpr Return kErrorFunctionNotFound = 13;
inline constexpr Return kErrorGpuIsLost = 15;
inline constexpr Return kErrorInUse = 19;
inline constexpr Return kErrorInsufficientResources = 23;
inline constexpr Return kErrorArgumentVersionMismatch = 25;
inline constexpr Return kErrorUnknown = 999;

// Buffer sizes (§3.5).
inline constexpr unsigned int kDeviceNameV2BufferSize = 96;
inline constexpr unsigned int kDeviceUuidV2BufferSize = 96;
inline constexpr unsigned int kSystemDriverVersionBufferSize = 80;

// MIG (§3.5).
inline constexpr unsigned int kDeviceMigDisable = 0;
inline constexpr unsigned int kDeviceMigEnable = 1;
inline constexpr unsigned int kComputeInstanceEngineProfileShared = 0;
// "Not attributable to a GPU/compute instance" in event records.
inline constexpr unsigned int kNoInstanceId = 0xFFFFFFFFu;

// GPU-instance profile enums whose names carry a suffix (§1.3); the rest are plain "<n>g".
inline constexpr unsigned int kGpuInstanceProfile1SliceRev1 = 0x7;    // +me
inline constexpr unsigned int kGpuInstanceProfile2SliceRev1 = 0x8;    // +me
inline constexpr unsigned int kGpuInstanceProfile1SliceGfx = 0xA;     // +gfx
inline constexpr unsigned int kGpuInstanceProfile4SliceGfx = 0xC;     // +gfx
inline constexpr unsigned int kGpuInstanceProfile1SliceNoMe = 0xD;    // -me
inline constexpr unsigned int kGpuInstanceProfile2SliceNoMe = 0xE;    // -me
inline constexpr unsigned int kGpuInstanceProfile1SliceAllMe = 0xF;   // +me.all
inline constexpr unsigned int kGpuInstanceProfile2SliceAllMe = 0x10;  // +me.all
inline constexpr unsigned int kGpuInstanceProfile3SliceGfx = 0x11;    // +gfx

// Event bits (§2.8).
inline constexpr unsigned long long kEventTypeDoubleBitEccError = 0x2;
inline constexpr unsigned long long kEventTypeXidCriticalError = 0x8;
inline constexpr unsigned long long kEventTypeDramRetirementFailure = 0x800;
inline constexpr unsigned long long kEventTypeFatalPoisonError = 0x2000;
inline constexpr unsigned long long kEventTypeGpuUnavailableError = 0x4000;

// Versioned structs: sizeof | version << 24 (§3.2).
inline constexpr unsigned int kGpuInstanceProfileInfoV2Version = 0x02000098;
inline constexpr unsigned int kGpuInstanceProfileInfoV3Version = 0x03000098;

struct PciInfo {  // nvmlPciInfo_t
  char busIdLegacy[16];
  unsigned int domain;
  unsigned int bus;
  unsigned int device;
  unsigned int pciDeviceId;  // device ID << 16 | vendor ID
  unsigned int pciSubSystemId;
  char busId[32];  // "%08X:%02X:%02X.0"
};
static_assert(sizeof(PciInfo) == 68 && alignof(PciInfo) == 4);
static_assert(offsetof(PciInfo, busIdLegacy) == 0);
static_assert(offsetof(PciInfo, domain) == 16);
static_assert(offsetof(PciInfo, bus) == 20);
static_assert(offsetof(PciInfo, device) == 24);
static_assert(offsetof(PciInfo, pciDeviceId) == 28);
static_assert(offsetof(PciInfo, pciSubSystemId) == 32);
static_assert(offsetof(PciInfo, busId) == 36);

struct Memory {  // nvmlMemory_t (v1), bytes
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};
static_assert(sizeof(Memory) == 24 && alignof(Memory) == 8);
static_assert(offsetof(Memory, total) == 0);
static_assert(offsetof(Memory, free) == 8);
static_assert(offsetof(Memory, used) == 16);

struct GpuInstancePlacement {  // nvmlGpuInstancePlacement_t, memory slices
  unsigned int start;
  unsigned int size;
};
static_assert(sizeof(GpuInstancePlacement) == 8 && alignof(GpuInstancePlacement) == 4);
static_assert(offsetof(GpuInstancePlacement, start) == 0);
static_assert(offsetof(GpuInstancePlacement, size) == 4);

struct ComputeInstancePlacement {  // nvmlComputeInstancePlacement_t, compute slices in the GI
  unsigned int start;
  unsigned int size;
};
static_assert(sizeof(ComputeInstancePlacement) == 8 && alignof(ComputeInstancePlacement) == 4);
static_assert(offsetof(ComputeInstancePlacement, start) == 0);
static_assert(offsetof(ComputeInstancePlacement, size) == 4);

struct GpuInstanceProfileInfoV1 {  // nvmlGpuInstanceProfileInfo_t
  unsigned int id;
  unsigned int isP2pSupported;
  unsigned int sliceCount;
  unsigned int instanceCount;
  unsigned int multiprocessorCount;
  unsigned int copyEngineCount;
  unsigned int decoderCount;
  unsigned int encoderCount;
  unsigned int jpegCount;
  unsigned int ofaCount;
  unsigned long long memorySizeMB;
};
static_assert(sizeof(GpuInstanceProfileInfoV1) == 48 && alignof(GpuInstanceProfileInfoV1) == 8);
static_assert(offsetof(GpuInstanceProfileInfoV1, id) == 0);
static_assert(offsetof(GpuInstanceProfileInfoV1, isP2pSupported) == 4);
static_assert(offsetof(GpuInstanceProfileInfoV1, sliceCount) == 8);
static_assert(offsetof(GpuInstanceProfileInfoV1, instanceCount) == 12);
static_assert(offsetof(GpuInstanceProfileInfoV1, multiprocessorCount) == 16);
static_assert(offsetof(GpuInstanceProfileInfoV1, copyEngineCount) == 20);
static_assert(offsetof(GpuInstanceProfileInfoV1, decoderCount) == 24);
static_assert(offsetof(GpuInstanceProfileInfoV1, encoderCount) == 28);
static_assert(offsetof(GpuInstanceProfileInfoV1, jpegCount) == 32);
static_assert(offsetof(GpuInstanceProfileInfoV1, ofaCount) == 36);
static_assert(offsetof(GpuInstanceProfileInfoV1, memorySizeMB) == 40);

struct GpuInstanceProfileInfoV2 {  // nvmlGpuInstanceProfileInfo_v2_t
  unsigned int version;
  unsigned int id;
  unsigned int isP2pSupported;
  unsigned int sliceCount;
  unsigned int instanceCount;
  unsigned int multiprocessorCount;
  unsigned int copyEngineCount;
  unsigned int decoderCount;
  unsigned int encoderCount;
  unsigned int jpegCount;
  unsigned int ofaCount;
  unsigned long long memorySizeMB;
  char name[96];
};
static_assert(sizeof(GpuInstanceProfileInfoV2) == 152 && alignof(GpuInstanceProfileInfoV2) == 8);
static_assert(offsetof(GpuInstanceProfileInfoV2, version) == 0);
static_assert(offsetof(GpuInstanceProfileInfoV2, id) == 4);
static_assert(offsetof(GpuInstanceProfileInfoV2, isP2pSupported) == 8);
static_assert(offsetof(GpuInstanceProfileInfoV2, sliceCount) == 12);
static_assert(offsetof(GpuInstanceProfileInfoV2, instanceCount) == 16);
static_assert(offsetof(GpuInstanceProfileInfoV2, multiprocessorCount) == 20);
static_assert(offsetof(GpuInstanceProfileInfoV2, copyEngineCount) == 24);
static_assert(offsetof(GpuInstanceProfileInfoV2, decoderCount) == 28);
static_assert(offsetof(GpuInstanceProfileInfoV2, encoderCount) == 32);
static_assert(offsetof(GpuInstanceProfileInfoV2, jpegCount) == 36);
static_assert(offsetof(GpuInstanceProfileInfoV2, ofaCount) == 40);
static_assert(offsetof(GpuInstanceProfileInfoV2, memorySizeMB) == 48);
static_assert(offsetof(GpuInstanceProfileInfoV2, name) == 56);

// Not a superset of v2: isP2pSupported is gone and every later field moves up by 4 bytes.
struct GpuInstanceProfileInfoV3 {  // nvmlGpuInstanceProfileInfo_v3_t
  unsigned int version;
  unsigned int id;
  unsigned int sliceCount;
  unsigned int instanceCount;
  unsigned int multiprocessorCount;
  unsigned int copyEngineCount;
  unsigned int decoderCount;
  unsigned int encoderCount;
  unsigned int jpegCount;
  unsigned int ofaCount;
  unsigned long long memorySizeMB;
  char name[96];
  unsigned int capabilities;
};
static_assert(sizeof(GpuInstanceProfileInfoV3) == 152 && alignof(GpuInstanceProfileInfoV3) == 8);
static_assert(offsetof(GpuInstanceProfileInfoV3, version) == 0);
static_assert(offsetof(GpuInstanceProfileInfoV3, id) == 4);
static_assert(offsetof(GpuInstanceProfileInfoV3, sliceCount) == 8);
static_assert(offsetof(GpuInstanceProfileInfoV3, instanceCount) == 12);
static_assert(offsetof(GpuInstanceProfileInfoV3, multiprocessorCount) == 16);
static_assert(offsetof(GpuInstanceProfileInfoV3, copyEngineCount) == 20);
static_assert(offsetof(GpuInstanceProfileInfoV3, decoderCount) == 24);
static_assert(offsetof(GpuInstanceProfileInfoV3, encoderCount) == 28);
static_assert(offsetof(GpuInstanceProfileInfoV3, jpegCount) == 32);
static_assert(offsetof(GpuInstanceProfileInfoV3, ofaCount) == 36);
static_assert(offsetof(GpuInstanceProfileInfoV3, memorySizeMB) == 40);
static_assert(offsetof(GpuInstanceProfileInfoV3, name) == 48);
static_assert(offsetof(GpuInstanceProfileInfoV3, capabilities) == 144);

struct GpuInstanceInfo {  // nvmlGpuInstanceInfo_t
  Device device;          // the parent GPU
  unsigned int id;        // GI ID
  unsigned int profileId;
  GpuInstancePlacement placement;
};
static_assert(sizeof(GpuInstanceInfo) == 24 && alignof(GpuInstanceInfo) == 8);
static_assert(offsetof(GpuInstanceInfo, device) == 0);
static_assert(offsetof(GpuInstanceInfo, id) == 8);
static_assert(offsetof(GpuInstanceInfo, profileId) == 12);
static_assert(offsetof(GpuInstanceInfo, placement) == 16);

struct ComputeInstanceProfileInfoV1 {  // nvmlComputeInstanceProfileInfo_t
  unsigned int id;
  unsigned int sliceCount;
  unsigned int instanceCount;
  unsigned int multiprocessorCount;
  unsigned int sharedCopyEngineCount;
  unsigned int sharedDecoderCount;
  unsigned int sharedEncoderCount;
  unsigned int sharedJpegCount;
  unsigned int sharedOfaCount;
};
static_assert(sizeof(ComputeInstanceProfileInfoV1) == 36 &&
              alignof(ComputeInstanceProfileInfoV1) == 4);
static_assert(offsetof(ComputeInstanceProfileInfoV1, id) == 0);
static_assert(offsetof(ComputeInstanceProfileInfoV1, sliceCount) == 4);
static_assert(offsetof(ComputeInstanceProfileInfoV1, instanceCount) == 8);
static_assert(offsetof(ComputeInstanceProfileInfoV1, multiprocessorCount) == 12);
static_assert(offsetof(ComputeInstanceProfileInfoV1, sharedCopyEngineCount) == 16);
static_assert(offsetof(ComputeInstanceProfileInfoV1, sharedDecoderCount) == 20);
static_assert(offsetof(ComputeInstanceProfileInfoV1, sharedEncoderCount) == 24);
static_assert(offsetof(ComputeInstanceProfileInfoV1, sharedJpegCount) == 28);
static_assert(offsetof(ComputeInstanceProfileInfoV1, sharedOfaCount) == 32);

// As nvmlComputeInstanceGetInfo_v2 fills it (the legacy symbol stops before `placement`).
struct ComputeInstanceInfo {  // nvmlComputeInstanceInfo_t
  // The NVIDIA DRA driver reads the MIG device's UUID from this handle; nvml.h calls it the
  // parent device. The backend checks which one it got.
  Device device;
  GpuInstance gpuInstance;
  unsigned int id;  // CI ID
  unsigned int profileId;
  ComputeInstancePlacement placement;
};
static_assert(sizeof(ComputeInstanceInfo) == 32 && alignof(ComputeInstanceInfo) == 8);
static_assert(offsetof(ComputeInstanceInfo, device) == 0);
static_assert(offsetof(ComputeInstanceInfo, gpuInstance) == 8);
static_assert(offsetof(ComputeInstanceInfo, id) == 16);
static_assert(offsetof(ComputeInstanceInfo, profileId) == 20);
static_assert(offsetof(ComputeInstanceInfo, placement) == 24);

struct EventData {  // nvmlEventData_t, as nvmlEventSetWait_v2 fills it
  Device device;
  unsigned long long eventType;  // one event bit
  unsigned long long eventData;  // the Xid for Xid events (999: unknown), else 0
  unsigned int gpuInstanceId;    // kNoInstanceId when not attributable
  unsigned int computeInstanceId;
};
static_assert(sizeof(EventData) == 32 && alignof(EventData) == 8);
static_assert(offsetof(EventData, device) == 0);
static_assert(offsetof(EventData, eventType) == 8);
static_assert(offsetof(EventData, eventData) == 16);
static_assert(offsetof(EventData, gpuInstanceId) == 24);
static_assert(offsetof(EventData, computeInstanceId) == 28);

// Function types, named after the exported symbol without the "nvml" prefix and version suffix.
extern "C" {
using InitFn = Return (*)();
using ShutdownFn = Return (*)();
using ErrorStringFn = const char* (*)(Return);
using SystemGetDriverVersionFn = Return (*)(char*, unsigned int);
using SystemGetCudaDriverVersionFn = Return (*)(int*);
using DeviceGetCountFn = Return (*)(unsigned int*);
using DeviceGetHandleByIndexFn = Return (*)(unsigned int, Device*);
using DeviceGetStringFn = Return (*)(Device, char*, unsigned int);  // GetName, GetUUID
using DeviceGetMemoryInfoFn = Return (*)(Device, Memory*);
using DeviceGetPciInfoFn = Return (*)(Device, PciInfo*);
using DeviceGetUintFn = Return (*)(Device, unsigned int*);  // MinorNumber, Index, MIG IDs, ...
using DeviceGetCudaComputeCapabilityFn = Return (*)(Device, int*, int*);
using DeviceGetMigModeFn = Return (*)(Device, unsigned int*, unsigned int*);
using DeviceGetGpuInstanceProfileInfoFn = Return (*)(Device, unsigned int,
                                                     GpuInstanceProfileInfoV1*);
// The versioned call takes a v2 or a v3 struct, told apart by its `version` field.
using DeviceGetGpuInstanceProfileInfoVFn = Return (*)(Device, unsigned int, void*);
using DeviceGetGpuInstancePossiblePlacementsFn = Return (*)(Device, unsigned int,
                                                            GpuInstancePlacement*, unsigned int*);
using DeviceCreateGpuInstanceWithPlacementFn = Return (*)(Device, unsigned int,
                                                          const GpuInstancePlacement*,
                                                          GpuInstance*);
using DeviceGetGpuInstancesFn = Return (*)(Device, unsigned int, GpuInstance*, unsigned int*);
using DeviceGetGpuInstanceByIdFn = Return (*)(Device, unsigned int, GpuInstance*);
using GpuInstanceGetInfoFn = Return (*)(GpuInstance, GpuInstanceInfo*);
using GpuInstanceDestroyFn = Return (*)(GpuInstance);
using GpuInstanceGetComputeInstanceProfileInfoFn = Return (*)(GpuInstance, unsigned int,
                                                              unsigned int,
                                                              ComputeInstanceProfileInfoV1*);
using GpuInstanceCreateComputeInstanceFn = Return (*)(GpuInstance, unsigned int, ComputeInstance*);
using GpuInstanceGetComputeInstancesFn = Return (*)(GpuInstance, unsigned int, ComputeInstance*,
                                                    unsigned int*);
using ComputeInstanceGetInfoFn = Return (*)(ComputeInstance, ComputeInstanceInfo*);
using ComputeInstanceDestroyFn = Return (*)(ComputeInstance);
using DeviceGetMigDeviceHandleByIndexFn = Return (*)(Device, unsigned int, Device*);
using EventSetCreateFn = Return (*)(EventSet*);
using EventSetFreeFn = Return (*)(EventSet);
using DeviceGetSupportedEventTypesFn = Return (*)(Device, unsigned long long*);
using DeviceRegisterEventsFn = Return (*)(Device, unsigned long long, EventSet);
using EventSetWaitFn = Return (*)(EventSet, EventData*, unsigned int);
}

}  // namespace tessera::plugin::nvml

#endif  // TESSERA_PLUGIN_NVML_ABI_H_
