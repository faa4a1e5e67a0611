// The opaque configuration that ResourceClaims and DeviceClasses carry for tessera
// (`opaque.parameters` with apiVersion tessera.dev/v1alpha1):
//
//   apiVersion: tessera.dev/v1alpha1
//   kind: GpuConfig            # whole GPUs and GPU shares; MigConfig for MIG instances
//   sharing:
//     strategy: MPS            # or TimeSlicing
//     timeSlicing: {interval: Default}          # Default | Short | Medium | Long
//     mps:
//       activeThreadPercentage: 50              # 1..100
//       pinnedDeviceMemoryLimit: 8Gi            # > 0 bytes
//       perDevice:                              # overrides, keyed by allocated device name or GPU
//       UUID
//         gpu-1: {activeThreadPercentage: 25}
//
// Decoding is strict: an unknown field, a wrong type, an out-of-range value or a malformed quantity
// is an error naming the JSON path, the value and what is allowed. Defaults live in ApplyDefaults()
// and nowhere else (docs/api.md lists them).
#ifndef TESSERA_API_GPU_CONFIG_H_
#define TESSERA_API_GPU_CONFIG_H_

#include <array>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "tessera/api/json_decode.h"
#include "tessera/api/quantity.h"

namespace tessera::api {

inline constexpr std::string_view kTesseraApiVersion = "tessera.dev/v1alpha1";

enum class ConfigKind { kGpuConfig, kMigConfig };
enum class SharingStrategy { kTimeSlicing, kMps };
enum class TimeSliceInterval { kDefault, kShort, kMedium, kLong };

// JSON spellings, indexed by the enum values above.
inline constexpr std::array<std::string_view, 2> kConfigKindNames = {"GpuConfig", "MigConfig"};
inline constexpr std::array<std::string_view, 2> kSharingStrategyNames = {"TimeSlicing", "MPS"};
inline constexpr std::array<std::string_view, 4> kTimeSliceIntervalNames = {"Default", "Short",
                                                                            "Medium", "Long"};

std::string_view ToString(ConfigKind kind);
std::string_view ToString(SharingStrategy strategy);
std::string_view ToString(TimeSliceInterval interval);

struct TimeSlicingSettings {
  std::optional<TimeSliceInterval> interval;
  bool operator==(const TimeSlicingSettings&) const = default;
};

struct MpsLimits {
  std::optional<int32_t> active_thread_percentage;
  std::optional<Quantity> pinned_device_memory_limit;
  bool operator==(const MpsLimits&) const = default;
};

struct MpsSettings : MpsLimits {
  std::map<std::string, MpsLimits> per_device;
  bool operator==(const MpsSettings&) const = default;

  // The limits for one device: its override where set, else the claim-wide value.
  MpsLimits For(std::string_view device_name, std::string_view gpu_uuid) const;
};

struct Sharing {
  SharingStrategy strategy = SharingStrategy::kTimeSlicing;
  std::optional<TimeSlicingSettings> time_slicing;
  std::optional<MpsSettings> mps;
  bool operator==(const Sharing&) const = default;
};

// GpuConfig and MigConfig share one shape; `kind` tells which was written.
struct GpuConfig {
  ConfigKind kind = ConfigKind::kGpuConfig;
  std::optional<Sharing> sharing;  // absent: the device is used exclusively
  bool operator==(const GpuConfig&) const = default;
};

// Decodes strictly (unknown fields rejected) and validates. Does not apply defaults.
absl::Status Decode(const DecodeContext& ctx, const Json& in, GpuConfig* out);
void to_json(Json& out, const GpuConfig& in);

// Decodes `opaque.parameters` of a claim or class config for our driver: strict, validated,
// defaults applied. `where` prefixes error paths, e.g. "spec.devices.config[0].opaque.parameters".
absl::StatusOr<GpuConfig> ParseGpuConfig(const Json& parameters, std::string_view where = "");

// The defaults, in one place:
//   sharing.timeSlicing.interval           Default (when strategy is TimeSlicing)
//   sharing.mps.activeThreadPercentage     100     (when strategy is MPS)
//   sharing.mps.pinnedDeviceMemoryLimit    unset: no limit beyond the claim's consumed memory
//   perDevice entries                      inherit the claim-wide values for unset fields
void ApplyDefaults(GpuConfig* config);

}  // namespace tessera::api

#endif  // TESSERA_API_GPU_CONFIG_H_
