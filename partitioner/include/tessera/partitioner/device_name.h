#ifndef TESSERA_PARTITIONER_DEVICE_NAME_H_
#define TESSERA_PARTITIONER_DEVICE_NAME_H_

// The names of the DRA devices tessera publishes. A name is a DNS label that decodes back to
// exactly one partition of one GPU, so the plugin can prepare a claim from the allocated device
// name alone:
//
//   gpu-<index>                               the whole GPU
//   gpu-<index>-mig-<profile>-p<start>        a MIG instance of <profile> at memory slice <start>
//   ...-mps | ...-ts                          an MPS / time-slice share device on the GPU or in the
//                                             MIG instance (many claims, consumable capacity)
//   ...-mps-s<k> | ...-ts-s<k>                fixed share device k (clusters without consumable
//                                             capacity)
//
// <profile> is the NVML profile name in lower case with "." removed and "+" turned into "-"
// ("1g.10gb+me" -> "1g10gb-me"). Numbers are decimal without leading zeros; a name that is not in
// exactly this canonical form is refused, so two different names never denote one partition.

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "tessera/partitioner/catalogue.h"
#include "tessera/partitioner/gpu_state.h"

namespace tessera::partitioner {

struct DeviceName {
  struct Mig {
    std::string profile_token{};  // "1g10gb-me"
    int start = 0;
    bool operator==(const Mig&) const = default;
  };
  int gpu = 0;
  std::optional<Mig> mig{};
  std::optional<ShareKind> share{};
  int slot = -1;  // fixed share device number; -1 for the shared (consumable-capacity) device

  std::string ToString() const;
  static absl::StatusOr<DeviceName> Parse(std::string_view name);
  bool operator==(const DeviceName&) const = default;
};

// "1g.10gb+me" -> "1g10gb-me". Errors if the result could not be parsed back unambiguously.
absl::StatusOr<std::string> ProfileToken(std::string_view profile_name);

// A decoded name checked against the GPU's model: the profile exists and `start` is one of its
// placements.
struct ResolvedDevice {
  int gpu = 0;
  int profile = -1;  // index into the model's profiles; -1 for the whole GPU
  Placement placement{};
  std::optional<ShareKind> share{};
  int slot = -1;
};
absl::StatusOr<ResolvedDevice> ResolveDeviceName(std::string_view name, const GpuModel& model);

}  // namespace tessera::partitioner

#endif  // TESSERA_PARTITIONER_DEVICE_NAME_H_
