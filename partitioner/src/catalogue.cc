#include "tessera/partitioner/catalogue.h"

#include <algorithm>
#include <cstdio>
#include <set>

#include "tessera/api/strings.h"
#include "tessera/partitioner/device_name.h"

namespace tessera::partitioner {
namespace {

// One row of a model's GI-profile table (gpu-partitioning reference §1.4). Memory is NVML's MiB
// (GiB as printed by `nvidia-smi mig -lgip` × 1024 where only GiB was published).
struct Row {
  const char* name;
  const char* size_class;
  int nvml_id;
  int compute;
  int memory_slices;
  std::int64_t memory_mib;
  int multiprocessors;
  int max_instances;
  Engines engines;
};

// Allowed starts by placement size on the 8-slot axis (§1.2): slot 7 has no compute of its own,
// so a size-1 placement never starts at 7, and a 1g.2x (size 2) may start at 6 where a 2g may not.
std::vector<Placement> EightSlotPlacements(std::string_view size_class, int size) {
  std::vector<int> starts;
  if (size == 1) starts = {0, 1, 2, 3, 4, 5, 6};
  if (size == 2)
    starts = size_class == "1g.2x" ? std::vector<int>{0, 2, 4, 6} : std::vector{0, 2, 4};
  if (size == 4) starts = size_class == "4g" ? std::vector<int>{0} : std::vector{0, 4};
  if (size == 8) starts = {0};
  std::vector<Placement> out;
  for (int s : starts) out.push_back({s, size});
  return out;
}

// A30: a 4-slot axis with 4 compute slices (§1.2, from the go-nvml mock; unverified on hardware).
std::vector<Placement> FourSlotPlacements(int size) {
  std::vector<Placement> out;
  for (int s = 0; s + size <= 4; s += size) out.push_back({s, size});
  return out;
}

// CI profile enum values equal their IDs in every published listing (§1.5).
int CiNvmlId(int compute) {
  switch (compute) {
    case 1:
      return 0;
    case 2:
      return 1;
    case 3:
      return 2;
    case 4:
      return 3;
    case 7:
      return 4;
    case 8:
      return 5;
    case 6:
      return 6;
  }
  return -1;
}

// Compute instances inside a GI with `compute` slices (§1.5 table and mock placements).
std::vector<CiProfile> ComputeInstances(const std::string& gi_name, int compute) {
  struct Option {
    int slices;
    std::vector<int> starts;
  };
  std::vector<Option> options;
  switch (compute) {
    case 2:
      options = {{1, {0, 1}}};
      break;
    case 3:
      options = {{1, {0, 1, 2}}, {2, {0}}};
      break;
    case 4:
      options = {{1, {0, 1, 2, 3}}, {2, {0, 2}}};
      break;
    case 7:
      options = {{1, {0, 1, 2, 3, 4, 5, 6}}, {2, {0, 2, 4}}, {3, {0, 4}}, {4, {0}}};
      break;
    default:
      break;
  }
  std::vector<CiProfile> out;
  for (const Option& o : options) {
    out.push_back({.name = StrCat(o.slices, "c.", gi_name),
                   .nvml_id = CiNvmlId(o.slices),
                   .compute_slices = o.slices,
                   .max_instances = static_cast<int>(o.starts.size()),
                   .placements = o.starts});
  }
  out.push_back({.name = gi_name,
                 .nvml_id = CiNvmlId(compute),
                 .compute_slices = compute,
                 .max_instances = 1,
                 .placements = {0}});
  return out;
}

GpuModel MakeModel(GpuModel model, std::initializer_list<Row> rows) {
  for (const Row& r : rows) {
    GiProfile p;
    p.name = r.name;
    p.size_class = r.size_class;
    p.nvml_id = r.nvml_id;
    p.compute_slices = r.compute;
    p.memory_slices = r.memory_slices;
    p.memory_mib = r.memory_mib;
    p.multiprocessors = r.multiprocessors;
    p.max_instances = r.max_instances;
    p.engines = r.engines;
    p.media_extension = p.size_class.find("+me") != std::string::npos;
    p.placements = model.memory_slices == 8 ? EightSlotPlacements(p.size_class, p.memory_slices)
                                            : FourSlotPlacements(p.memory_slices);
    p.compute_instances = ComputeInstances(p.name, p.compute_slices);
    model.profiles.push_back(std::move(p));
  }
  return model;
}

constexpr std::int64_t GiB(double gib) { return static_cast<std::int64_t>(gib * 1024); }

std::vector<GpuModel> MakeBuiltinModels() {
  std::vector<GpuModel> m;
  // A100 40GB (§1.4; MiB from the go-nvml mock and the KEP-4815 table, which agree).
  m.push_back(MakeModel({.key = "a100-40gb",
                         .product_name = "NVIDIA A100-SXM4-40GB",
                         .pci_device_ids = {0x20B0, 0x20F1, 0x20F6},
                         .compute_capability = "8.0",
                         .memory_mib = 40960,
                         .multiprocessors = 108,
                         .memory_slices = 8,
                         .compute_slices = 7},
                        {
                            {"1g.5gb", "1g", 19, 1, 1, 4864, 14, 7, {0, 0, 0, 0, 1}},
                            {"1g.5gb+me", "1g+me", 20, 1, 1, 4864, 14, 1, {1, 0, 1, 1, 1}},
                            {"1g.10gb", "1g.2x", 15, 1, 2, 9856, 14, 4, {1, 0, 0, 0, 1}},
                            {"2g.10gb", "2g", 14, 2, 2, 9856, 28, 3, {1, 0, 0, 0, 2}},
                            {"3g.20gb", "3g", 9, 3, 4, 19968, 42, 2, {2, 0, 0, 0, 3}},
                            {"4g.20gb", "4g", 5, 4, 4, 19968, 56, 1, {2, 0, 0, 0, 4}},
                            {"7g.40gb", "7g", 0, 7, 8, 40192, 98, 1, {5, 0, 1, 1, 7}},
                        }));
  m.push_back(MakeModel({.key = "a100-80gb",
                         .product_name = "NVIDIA A100-SXM4-80GB",
                         .pci_device_ids = {0x20B2, 0x20B5, 0x20F3, 0x20F5},
                         .compute_capability = "8.0",
                         .memory_mib = 81920,
                         .multiprocessors = 108,
                         .memory_slices = 8,
                         .compute_slices = 7},
                        {
                            {"1g.10gb", "1g", 19, 1, 1, GiB(9.5), 14, 7, {0, 0, 0, 0, 1}},
                            {"1g.10gb+me", "1g+me", 20, 1, 1, GiB(9.5), 14, 1, {1, 0, 1, 1, 1}},
                            {"1g.20gb", "1g.2x", 15, 1, 2, GiB(19.5), 14, 4, {1, 0, 0, 0, 1}},
                            {"2g.20gb", "2g", 14, 2, 2, GiB(19.5), 28, 3, {1, 0, 0, 0, 2}},
                            {"3g.40gb", "3g", 9, 3, 4, GiB(39.25), 42, 2, {2, 0, 0, 0, 3}},
                            {"4g.40gb", "4g", 5, 4, 4, GiB(39.25), 56, 1, {2, 0, 0, 0, 4}},
                            {"7g.80gb", "7g", 0, 7, 8, GiB(78.75), 98, 1, {5, 0, 1, 1, 7}},
                        }));
  // A30: NVML IDs differ from the A100 family (§1.3).
  m.push_back(MakeModel({.key = "a30-24gb",
                         .product_name = "NVIDIA A30",
                         .pci_device_ids = {0x20B7},
                         .compute_capability = "8.0",
                         .memory_mib = 24576,
                         .multiprocessors = 56,
                         .memory_slices = 4,
                         .compute_slices = 4},
                        {
                            {"1g.6gb", "1g", 14, 1, 1, 5836, 14, 4, {0, 0, 0, 0, 1}},
                            {"1g.6gb+me", "1g+me", 21, 1, 1, 5836, 14, 1, {1, 0, 1, 1, 1}},
                            {"2g.12gb", "2g", 5, 2, 2, 11672, 28, 2, {2, 0, 0, 0, 2}},
                            {"2g.12gb+me", "2g+me", 6, 2, 2, 11672, 28, 1, {2, 0, 1, 1, 2}},
                            {"4g.24gb", "4g", 0, 4, 4, 23344, 56, 1, {4, 0, 1, 1, 4}},
                        }));
  // Hopper: SM counts are not linear in slices (1g.2x has 26, 3g 60); read them from NVML.
  m.push_back(MakeModel({.key = "h100-80gb",
                         .product_name = "NVIDIA H100 80GB HBM3",
                         .pci_device_ids = {0x2330, 0x2331, 0x2322, 0x2324},
                         .compute_capability = "9.0",
                         .memory_mib = 81559,
                         .multiprocessors = 132,
                         .memory_slices = 8,
                         .compute_slices = 7},
                        {
                            {"1g.10gb", "1g", 19, 1, 1, GiB(9.75), 16, 7, {1, 0, 1, 0, 1}},
                            {"1g.10gb+me", "1g+me", 20, 1, 1, GiB(9.75), 16, 1, {1, 0, 1, 1, 1}},
                            {"1g.20gb", "1g.2x", 15, 1, 2, GiB(19.625), 26, 4, {1, 0, 1, 0, 1}},
                            {"2g.20gb", "2g", 14, 2, 2, GiB(19.625), 32, 3, {2, 0, 2, 0, 2}},
                            {"3g.40gb", "3g", 9, 3, 4, GiB(39.5), 60, 2, {3, 0, 3, 0, 3}},
                            {"4g.40gb", "4g", 5, 4, 4, GiB(39.5), 64, 1, {4, 0, 4, 0, 4}},
                            {"7g.80gb", "7g", 0, 7, 8, GiB(79.25), 132, 1, {7, 0, 7, 1, 8}},
                        }));
  // H100 NVL: 3g/4g/7g SMs and 4g/7g memory were not captured; H100-80GB's pattern is assumed.
  m.push_back(MakeModel({.key = "h100-94gb",
                         .product_name = "NVIDIA H100 NVL",
                         .pci_device_ids = {0x2321, 0x233A},
                         .compute_capability = "9.0",
                         .memory_mib = 95830,
                         .multiprocessors = 132,
                         .memory_slices = 8,
                         .compute_slices = 7},
                        {
                            {"1g.12gb", "1g", 19, 1, 1, GiB(10.75), 16, 7, {1, 0, 1, 0, 1}},
                            {"1g.12gb+me", "1g+me", 20, 1, 1, GiB(10.75), 16, 1, {1, 0, 1, 1, 1}},
                            {"1g.24gb", "1g.2x", 15, 1, 2, GiB(21.625), 26, 4, {1, 0, 1, 0, 1}},
                            {"2g.24gb", "2g", 14, 2, 2, GiB(21.625), 32, 3, {2, 0, 2, 0, 2}},
                            {"3g.47gb", "3g", 9, 3, 4, GiB(46.375), 60, 2, {3, 0, 3, 0, 3}},
                            {"4g.47gb", "4g", 5, 4, 4, GiB(46.375), 64, 1, {4, 0, 4, 0, 4}},
                            {"7g.94gb", "7g", 0, 7, 8, GiB(93.0), 132, 1, {7, 0, 7, 1, 8}},
                        }));
  m.push_back(MakeModel({.key = "h200-141gb",
                         .product_name = "NVIDIA H200",
                         .pci_device_ids = {0x2335, 0x233B},
                         .compute_capability = "9.0",
                         .memory_mib = 143771,
                         .multiprocessors = 132,
                         .memory_slices = 8,
                         .compute_slices = 7},
                        {
                            {"1g.18gb", "1g", 19, 1, 1, GiB(16.0), 16, 7, {1, 0, 1, 0, 1}},
                            {"1g.18gb+me", "1g+me", 20, 1, 1, GiB(16.0), 16, 1, {1, 0, 1, 1, 1}},
                            {"1g.35gb", "1g.2x", 15, 1, 2, GiB(32.25), 26, 4, {1, 0, 1, 0, 1}},
                            {"2g.35gb", "2g", 14, 2, 2, GiB(32.25), 32, 3, {2, 0, 2, 0, 2}},
                            {"3g.71gb", "3g", 9, 3, 4, GiB(69.5), 60, 2, {3, 0, 3, 0, 3}},
                            {"4g.71gb", "4g", 5, 4, 4, GiB(69.5), 64, 1, {4, 0, 4, 0, 4}},
                            {"7g.141gb", "7g", 0, 7, 8, GiB(139.75), 132, 1, {7, 0, 7, 1, 8}},
                        }));
  // B200: the 3g/4g/7g rows were not captured on hardware; their memory is 2×/4× the 2g's and
  // their SM counts scale the 2g's (estimates; NVML data replaces them on a node).
  m.push_back(MakeModel({.key = "b200",
                         .product_name = "NVIDIA B200",
                         .pci_device_ids = {0x2901},
                         .compute_capability = "10.0",
                         .memory_mib = 183359,
                         .multiprocessors = 148,
                         .memory_slices = 8,
                         .compute_slices = 7},
                        {
                            {"1g.23gb", "1g", 19, 1, 1, GiB(22.0), 18, 7, {1, 0, 1, 0, 2}},
                            {"1g.23gb+me", "1g+me", 20, 1, 1, GiB(22.0), 18, 1, {1, 0, 1, 1, 2}},
                            {"1g.45gb", "1g.2x", 15, 1, 2, GiB(44.25), 30, 4, {1, 0, 1, 0, 2}},
                            {"2g.45gb", "2g", 14, 2, 2, GiB(44.25), 36, 3, {2, 0, 2, 0, 4}},
                            {"3g.90gb", "3g", 9, 3, 4, GiB(88.5), 54, 2, {3, 0, 3, 0, 6}},
                            {"4g.90gb", "4g", 5, 4, 4, GiB(88.5), 72, 1, {4, 0, 4, 0, 8}},
                            {"7g.180gb", "7g", 0, 7, 8, GiB(177.0), 144, 1, {7, 0, 7, 1, 16}},
                        }));
  return m;
}

}  // namespace

SliceMask Placement::mask() const {
  if (size <= 0 || start < 0 || start + size > kMaxMemorySlices) return 0;
  return static_cast<SliceMask>(((1u << size) - 1u) << start);
}

const GiProfile* GpuModel::FindProfile(std::string_view name_or_class) const {
  const int i = ProfileIndex(name_or_class);
  return i < 0 ? nullptr : &profiles[i];
}

int GpuModel::ProfileIndex(std::string_view name_or_class) const {
  for (std::size_t i = 0; i < profiles.size(); ++i) {
    if (profiles[i].name == name_or_class) return static_cast<int>(i);
  }
  for (std::size_t i = 0; i < profiles.size(); ++i) {
    if (profiles[i].size_class == name_or_class) return static_cast<int>(i);
  }
  return -1;
}

std::span<const GpuModel> BuiltinModels() {
  static const std::vector<GpuModel> models = MakeBuiltinModels();
  return models;
}

const GpuModel* FindBuiltinModel(std::string_view key_or_pci_id) {
  for (const GpuModel& m : BuiltinModels()) {
    if (m.key == key_or_pci_id) return &m;
    for (std::uint16_t id : m.pci_device_ids) {
      char hex[8];
      std::snprintf(hex, sizeof(hex), "0x%04X", id);
      std::string lower = hex;
      std::transform(lower.begin() + 2, lower.end(), lower.begin() + 2,
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      if (key_or_pci_id == hex || key_or_pci_id == lower) return &m;
    }
  }
  return nullptr;
}

std::string BuiltinModelKeys() {
  std::vector<std::string> keys;
  for (const GpuModel& m : BuiltinModels()) keys.push_back(m.key);
  return StrJoin(keys, ", ");
}

absl::Status ValidateModel(const GpuModel& model) {
  auto error = [&](std::string_view where, std::string_view what) {
    return absl::InvalidArgumentError(StrCat("GPU model ", model.key, ": ", where, ": ", what));
  };
  if (model.memory_slices < 1 || model.memory_slices > kMaxMemorySlices) {
    return error("memorySlices", StrCat(model.memory_slices, " is not in [1, 8]"));
  }
  if (model.compute_slices < 1 || model.compute_slices > model.memory_slices) {
    return error("computeSlices", StrCat(model.compute_slices, " is not in [1, memorySlices]"));
  }
  if (model.profiles.size() > 16) {
    return error("profiles", StrCat(model.profiles.size(), " profiles; at most 16 are supported"));
  }
  std::set<std::string> names;
  std::set<std::string> tokens;
  std::set<int> ids;
  for (const GiProfile& p : model.profiles) {
    const std::string where = StrCat("profile ", p.name);
    if (!names.insert(p.name).second) return error(where, "duplicate profile name");
    absl::StatusOr<std::string> token = ProfileToken(p.name);
    if (!token.ok()) return error(where, std::string(token.status().message()));
    if (!tokens.insert(*token).second) {
      return error(where,
                   StrCat("device-name token \"", *token, "\" is shared with another profile"));
    }
    if (p.max_instances > 255) return error(where, "maxInstances above 255");
    if (!ids.insert(p.nvml_id).second) return error(where, StrCat("duplicate NVML ID ", p.nvml_id));
    if (p.compute_slices < 1 || p.compute_slices > model.compute_slices) {
      return error(where, StrCat("computeSlices ", p.compute_slices, " outside [1, ",
                                 model.compute_slices, "]"));
    }
    if (p.memory_slices < 1 || p.memory_slices > model.memory_slices) {
      return error(where, StrCat("memorySlices ", p.memory_slices, " outside [1, ",
                                 model.memory_slices, "]"));
    }
    if (p.max_instances < 1) return error(where, "maxInstances must be at least 1");
    if (p.placements.empty()) return error(where, "no placements");
    for (const Placement& pl : p.placements) {
      const std::string at = StrCat(where, " placement {", pl.start, ",", pl.size, "}");
      if (pl.size != p.memory_slices) {
        return error(at,
                     StrCat("size differs from the profile's ", p.memory_slices, " memory slices"));
      }
      if (pl.start < 0 || pl.start + pl.size > model.memory_slices) {
        return error(at, StrCat("outside the ", model.memory_slices, "-slice axis"));
      }
      if (pl.start % pl.size != 0 && !(pl.size == 1)) {
        return error(at, "start is not aligned to the size");
      }
    }
  }
  return absl::OkStatus();
}

namespace {

int DriverMajor(std::string_view version) {
  int major = 0;
  std::size_t i = 0;
  for (; i < version.size() && version[i] >= '0' && version[i] <= '9' && i < 6; ++i) {
    major = major * 10 + (version[i] - '0');
  }
  return i == 0 ? -1 : major;
}

// "1g", "1g.2x", "3g", "1g+me" from NVML's numbers and the name's "+suffix".
std::string SizeClass(const api::MigProfileInfo& p) {
  std::string c = StrCat(p.compute_slices, "g");
  if (p.compute_slices == 1 && p.memory_slices == 2) c += ".2x";
  const std::size_t plus = p.name.find('+');
  if (plus != std::string::npos) c += p.name.substr(plus);
  return c;
}

}  // namespace

absl::StatusOr<GpuModel> ModelFromInventory(const api::GpuInfo& gpu,
                                            std::string_view driver_version) {
  const GpuModel* builtin = gpu.model.empty() ? nullptr : FindBuiltinModel(gpu.model);
  if (builtin == nullptr) {
    for (const GpuModel& m : BuiltinModels()) {
      if (m.product_name == gpu.product) builtin = &m;
    }
  }
  const std::string where = StrCat("GPU ", gpu.index, " (", gpu.product, ")");
  if (gpu.mig_profiles.empty()) {
    if (builtin == nullptr) {
      return absl::NotFoundError(StrCat(
          where, ": no MIG profiles reported and no built-in model (known: ", BuiltinModelKeys(),
          ")"));
    }
    GpuModel m = *builtin;
    if (DriverMajor(driver_version) >= 0)
      m.four_and_three_coexist = DriverMajor(driver_version) >= 510;
    return m;
  }
  GpuModel m;
  if (builtin != nullptr) {
    m.key = builtin->key;
    m.pci_device_ids = builtin->pci_device_ids;
    m.multiprocessors = builtin->multiprocessors;
  }
  if (!gpu.model.empty()) m.key = gpu.model;
  if (m.key.empty()) return absl::InvalidArgumentError(StrCat(where, ": no model key"));
  m.product_name = gpu.product;
  m.compute_capability = gpu.compute_capability.empty() && builtin ? builtin->compute_capability
                                                                   : gpu.compute_capability;
  m.memory_mib =
      gpu.memory.IsZero() && builtin ? builtin->memory_mib : gpu.memory.Value() / (1024 * 1024);
  m.four_and_three_coexist = DriverMajor(driver_version) < 0 || DriverMajor(driver_version) >= 510;
  for (const api::MigProfileInfo& info : gpu.mig_profiles) {
    GiProfile p;
    p.name = info.name;
    p.size_class = SizeClass(info);
    p.nvml_id = info.profile_id;
    p.compute_slices = info.compute_slices;
    p.memory_slices = info.memory_slices;
    p.memory_mib = info.memory.Value() / (1024 * 1024);
    p.multiprocessors = info.multiprocessors;
    p.max_instances = info.max_count;
    p.engines = {.decoders = info.decoders,
                 .encoders = info.encoders,
                 .jpeg = info.jpeg_engines,
                 .ofa = info.ofa_engines,
                 .copy = info.copy_engines};
    p.media_extension = p.name.find("+me") != std::string::npos;
    for (const api::Placement& pl : info.placements) {
      p.placements.push_back({pl.start, pl.size});
      m.memory_slices = std::max(m.memory_slices, pl.start + pl.size);
    }
    m.compute_slices = std::max(m.compute_slices, p.compute_slices);
    m.multiprocessors = std::max(m.multiprocessors, p.multiprocessors);
    const GiProfile* known = builtin ? builtin->FindProfile(p.name) : nullptr;
    p.compute_instances = known != nullptr && known->compute_slices == p.compute_slices
                              ? known->compute_instances
                              : ComputeInstances(p.name, p.compute_slices);
    m.profiles.push_back(std::move(p));
  }
  if (absl::Status s = ValidateModel(m); !s.ok()) {
    return absl::InvalidArgumentError(StrCat(where, ": NVML MIG data rejected: ", s.message()));
  }
  return m;
}

std::vector<api::MigProfileInfo> InventoryProfiles(const GpuModel& model) {
  std::vector<api::MigProfileInfo> out;
  for (const GiProfile& p : model.profiles) {
    api::MigProfileInfo info;
    info.name = p.name;
    info.profile_id = p.nvml_id;
    info.compute_slices = p.compute_slices;
    info.memory_slices = p.memory_slices;
    info.memory =
        api::Quantity::FromInt64(p.memory_mib * 1024 * 1024, api::Quantity::Format::kBinarySI);
    info.max_count = p.max_instances;
    info.multiprocessors = p.multiprocessors;
    info.copy_engines = p.engines.copy;
    info.decoders = p.engines.decoders;
    info.encoders = p.engines.encoders;
    info.jpeg_engines = p.engines.jpeg;
    info.ofa_engines = p.engines.ofa;
    for (const Placement& pl : p.placements) info.placements.push_back({pl.start, pl.size});
    out.push_back(std::move(info));
  }
  return out;
}

}  // namespace tessera::partitioner
