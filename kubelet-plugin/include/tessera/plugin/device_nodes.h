#ifndef TESSERA_PLUGIN_DEVICE_NODES_H_
#define TESSERA_PLUGIN_DEVICE_NODES_H_

// The device nodes a container needs to use a GPU or a MIG instance, as CDI entries.
//
// Each entry carries type, major and minor where they are known, so that the runtime creates the
// node inside the container and grants the cgroup access even when the node is missing on the
// host (nvidia-caps nodes are made on demand by nvidia-modprobe, not by the kernel driver). The
// NVIDIA major 195 is fixed; the majors of nvidia-uvm and nvidia-caps are assigned at module load
// and read from the host's /proc/devices. When a major is unknown the entry leaves major and minor
// out and the runtime takes them from the host's node.
//
// MIG access capabilities: /dev/nvidia-caps/nvidia-cap<minor>, one for the GPU instance and one for
// the compute instance. Their minors come from /proc/driver/nvidia-caps/mig-minors when present;
// otherwise from the closed form that matches every published example:
//   GI access = 3 + 135*gpu + 9*gi,   CI access = 4 + 135*gpu + 9*gi + ci
// (gpu is the GPU's device minor, gi/ci the NVML GPU and compute instance IDs).

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "tessera/plugin/cdi.h"

namespace tessera::plugin {

class DeviceNodes {
 public:
  static constexpr int64_t kNvidiaMajor = 195;
  static constexpr int kMaxGpuMinor = 31;
  static constexpr int kMaxGpuInstanceId = 14;
  static constexpr int kMaxComputeInstanceId = 7;

  // Reads <host_root>/proc/devices and <host_root>/proc/driver/nvidia-caps/mig-minors (host_root
  // "/" on a node; tests pass a temp dir). A missing file is not an error (see above); a file that
  // is there but malformed is InvalidArgument naming the file and line.
  static absl::StatusOr<DeviceNodes> Load(const std::string& host_root);

  // /dev/nvidiactl (c 195:255), /dev/nvidia-uvm and /dev/nvidia-uvm-tools (major of "nvidia-uvm",
  // minors 0 and 1): needed by every container that uses a GPU.
  std::vector<CdiDeviceNode> Common() const;
  // /dev/nvidia<minor>, c 195:<minor>.
  CdiDeviceNode Gpu(int minor) const;
  // The GI and CI access capability nodes (in that order), type c, major of "nvidia-caps", mode
  // 0444. InvalidArgument for IDs out of range (gpu 0..31, gi 0..14, ci 0..7); NotFound when
  // mig-minors is present but lacks the capability.
  absl::StatusOr<std::vector<CdiDeviceNode>> MigAccess(int gpu_minor, int gi, int ci) const;

  // The major of a character device driver in /proc/devices, if listed.
  std::optional<int64_t> CharMajor(std::string_view name) const;

 private:
  DeviceNodes() = default;
  absl::StatusOr<int64_t> CapMinor(const std::string& cap, int64_t closed_form) const;

  std::map<std::string, int64_t, std::less<>> char_majors_{};
  std::optional<std::map<std::string, int64_t>> mig_minors_{};  // absent: no mig-minors file
};

}  // namespace tessera::plugin

#endif  // TESSERA_PLUGIN_DEVICE_NODES_H_
