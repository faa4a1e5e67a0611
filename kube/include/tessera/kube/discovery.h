#ifndef TESSERA_KUBE_DISCOVERY_H_
#define TESSERA_KUBE_DISCOVERY_H_

// What the API server serves, so callers pick the right ResourceSlice layout: its version (the
// emulated one when --emulation-version is set, which is what decides feature-gate defaults),
// whether a group/version serves a resource, and whether the DRA fields tessera depends on survive
// a write (a dry-run create: fields behind a disabled gate are dropped silently).

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "tessera/kube/client.h"

namespace tessera::kube {

struct ServerVersion {
  int major = 0;
  int minor = 0;            // the emulated minor version when the server emulates an older one
  int binary_minor = 0;     // the server binary's own minor version
  std::string git_version;  // "v1.36.3"
};

absl::StatusOr<ServerVersion> GetServerVersion(Client& client);
absl::StatusOr<ServerVersion> ParseServerVersion(const api::Json& version);

// Whether `group_version` ("resource.k8s.io/v1", "v1") lists `resource` ("resourceslices").
absl::StatusOr<bool> ServesResource(Client& client, std::string_view group_version,
                                    std::string_view resource);

struct SliceFeatures {
  bool partitionable_devices = false;  // consumesCounters / sharedCounters are kept
  bool consumable_capacity = false;    // allowMultipleAllocations is kept
  bool counters_in_own_slice = false;  // 1.35+: devices and sharedCounters in different slices
};

// Dry-run creates of probe slices for `driver` (nothing is stored).
absl::StatusOr<SliceFeatures> ProbeSliceFeatures(Client& client, std::string_view driver);

}  // namespace tessera::kube

#endif  // TESSERA_KUBE_DISCOVERY_H_
