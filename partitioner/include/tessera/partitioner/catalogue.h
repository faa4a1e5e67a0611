#ifndef TESSERA_PARTITIONER_CATALOGUE_H_
#define TESSERA_PARTITIONER_CATALOGUE_H_

// GPU models and their MIG geometry: GPU-instance profiles (compute and memory slices, memory,
// multiprocessors, engines, how many may exist, where they may be placed) and the compute-instance
// profiles inside each. The built-in tables serve the fake GPU backend, the simulator and tests; on
// a node, a model built from what NVML reports replaces the table entry (names, sizes and even IDs
// drift between drivers), after ValidateModel() accepts it.
//
// A Placement is {start, size} in memory slices everywhere in tessera, as NVML reports it.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tessera/api/crd.h"

namespace tessera::partitioner {

// The memory-slice axis of a GPU has at most 8 slots, so its occupancy is one byte.
inline constexpr int kMaxMemorySlices = 8;
using SliceMask = std::uint8_t;

struct Placement {
  int start = 0;  // first memory slice
  int size = 0;   // memory slices

  // The memory slices [start, start + size) as bits.
  SliceMask mask() const;
  auto operator<=>(const Placement&) const = default;
};

struct Engines {
  int decoders = 0;
  int encoders = 0;
  int jpeg = 0;
  int ofa = 0;
  int copy = 0;
  auto operator<=>(const Engines&) const = default;
};

// A compute-instance profile inside a GPU instance: `compute_slices` of the GI's compute slices.
struct CiProfile {
  std::string name{};  // "1c.3g.20gb"; a full-size CI carries the GI's name
  int nvml_id = 0;
  int compute_slices = 0;
  int max_instances = 0;
  std::vector<int> placements{};  // allowed start compute slice inside the GI
};

struct GiProfile {
  std::string name{};  // "3g.20gb", as NVML prints it on this model and driver
  // The model-independent size class: "1g", "1g+me", "1g.2x" (the double-memory 1g), "2g",
  // "2g+me", "3g", "4g", "7g". Simulator traces and policies name profiles by class.
  std::string size_class{};
  int nvml_id = 0;
  int compute_slices = 0;
  int memory_slices = 0;  // placement size
  std::int64_t memory_mib = 0;
  int multiprocessors = 0;
  int max_instances = 0;
  Engines engines{};
  bool media_extension = false;  // "+me": owns the GPU's single OFA/JPEG set
  std::vector<Placement> placements{};
  std::vector<CiProfile> compute_instances{};
};

struct GpuModel {
  std::string key{};           // "a100-40gb": what --cluster and fake-backend files name
  std::string product_name{};  // as NVML reports it, e.g. "NVIDIA A100-SXM4-40GB"
  std::vector<std::uint16_t> pci_device_ids{};
  std::string compute_capability{};  // "8.0"
  std::int64_t memory_mib = 0;       // the whole GPU outside MIG mode
  int multiprocessors = 0;           // the whole GPU outside MIG mode
  int memory_slices = 0;             // length of the placement axis (8, or 4 on A30)
  int compute_slices = 0;            // 7, or 4 on A30
  // Before driver R510 a 4g and a 3g could not coexist; from R510 on they can.
  bool four_and_three_coexist = true;
  std::vector<GiProfile> profiles{};

  // The profile with this name ("3g.20gb") or size class ("3g"); null if none.
  const GiProfile* FindProfile(std::string_view name_or_class) const;
  // Index of a profile in `profiles`, or -1.
  int ProfileIndex(std::string_view name_or_class) const;
};

// The built-in models: a100-40gb, a100-80gb, a30-24gb, h100-80gb, h100-94gb, h200-141gb, b200.
std::span<const GpuModel> BuiltinModels();
// A built-in model by key ("h100-80gb") or PCI device ID ("0x2330"); null if unknown.
const GpuModel* FindBuiltinModel(std::string_view key_or_pci_id);
// The keys of the built-in models, for error messages.
std::string BuiltinModelKeys();

// Checks the invariants every planner relies on, for a model built from NVML data: placements lie
// on the axis, are aligned to their size and have the profile's size; compute fits the axis;
// profile names and IDs are unique. The error names the profile and the field.
absl::Status ValidateModel(const GpuModel& model);

// The model of a GPU as its node reports it. NVML's MIG profiles (GpuInfo::mig_profiles) win over
// the table: names, IDs, sizes, memory, SMs, engines and placements all come from NVML, because
// they drift between drivers. The built-in model of the same key (GpuInfo::model) or product name
// supplies what NVML data does not carry (compute-instance profiles, PCI IDs) and is used as is
// when the GPU reports no profiles. `driver_version` ("535.104.05") decides the pre-R510 4g/3g
// rule. The result passes ValidateModel, or the error names the GPU, profile and field.
absl::StatusOr<GpuModel> ModelFromInventory(const api::GpuInfo& gpu,
                                            std::string_view driver_version);

// The reverse: a model's profiles as a node would report them (for the fake GPU backend and tests).
std::vector<api::MigProfileInfo> InventoryProfiles(const GpuModel& model);

}  // namespace tessera::partitioner

#endif  // TESSERA_PARTITIONER_CATALOGUE_H_
