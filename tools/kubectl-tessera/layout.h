#ifndef TESSERA_TOOLS_KUBECTL_TESSERA_LAYOUT_H_
#define TESSERA_TOOLS_KUBECTL_TESSERA_LAYOUT_H_

// The layout map of `kubectl tessera layout`: what each GPU of a node is split into right now, as
// the API says it (the node's GpuInventory, the driver's ResourceSlices of the node's pool, and the
// allocation results of ResourceClaims). One row per GPU, one cell per MIG memory slice (8 on
// A100/H100): a MIG instance spans its placement, a whole-GPU claim the row, and an MPS share as
// many cells as its memory limit is of the partition's memory. Cells carry the letter of the claim
// that holds them; the legend maps letters to claims.
//
// Pure functions over JSON, so tests feed them objects and the binary feeds them the live API.

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "tessera/api/json_decode.h"
#include "tessera/partitioner/catalogue.h"

namespace tessera::kubectl {

using api::Json;

// One allocation result of our driver on the node.
struct ClaimUse {
  std::string claim{};  // "namespace/name"
  std::string label{};  // "a", "b", ... ("aa" after "z")
  std::string request{};
  std::string device{};  // the allocated device name
  int gpu = -1;
  std::string kind{};            // gpu, mig, mps, timeslice
  std::string partition{};       // "whole GPU", "MIG 3g.20gb at slice 4", "MPS share of gpu-4"
  std::string profile{};         // MIG profile name, if any
  int start = 0;                 // first memory slice
  int size = 0;                  // memory slices of the partition (the whole row for a GPU)
  std::int64_t memory = 0;       // bytes: the share's consumed memory, else the partition's memory
  std::optional<int> compute{};  // percent, MPS shares
  std::vector<std::string> pods{};  // reservedFor
  std::string instance_uuid{};      // MIG instance the node reports for the claim
};

// Objects come from the API and may lack any optional field (json_decode.h).
using api::JsonAt;
using api::JsonString;

// A run of cells with one content.
struct Span {
  int start = 0;
  int size = 0;
  std::string text{};  // "" for free cells
  bool used = false;   // held by a claim (or an instance the node reports)
};

struct GpuRow {
  int index = 0;
  std::string model{};      // catalogue key, "a100-40gb"
  std::string mode{};       // what the pool offers on it: whole, mig, mig+mps, mps, timeslice, none
  std::string health{};     // Healthy, Unhealthy, Unknown
  int cells = 8;            // memory slices
  std::int64_t memory = 0;  // bytes
  std::vector<Span> spans{};  // cover [0, cells) in order

  // What the spans were drawn from: the GPU's model (profiles, placements) and its partitions in
  // use, each with the kind of share it holds ("" when a claim has it exclusively).
  struct Partition {
    int start = 0;
    int size = 0;
    std::string profile{};  // "" for the whole GPU
    std::string share{};    // "", "mps" or "timeslice"
  };
  partitioner::GpuModel model_def{};
  std::vector<Partition> partitions{};
};

struct NodeLayout {
  std::string node{};
  std::string product{};  // "8 x NVIDIA A100-SXM4-40GB"
  std::string heartbeat{};
  std::vector<GpuRow> gpus{};
  std::vector<ClaimUse> claims{};    // legend order: by GPU, then first cell
  std::vector<std::string> notes{};  // things that did not decode, instances without claims
  int published_devices = 0;
};

// `inventory`: the node's GpuInventory. `slices`: ResourceSlices (any; those of `driver` and the
// node's pool are used). `claims`: ResourceClaims (any; results of `driver` in the node's pool are
// used). Errors only when the inventory itself cannot be read; a claim or device that does not
// decode becomes a note.
absl::StatusOr<NodeLayout> BuildNodeLayout(const Json& inventory, const std::vector<Json>& slices,
                                           const std::vector<Json>& claims,
                                           std::string_view driver);

// The map and legend as text (ASCII; cells are 7 characters wide).
std::string RenderLayout(const NodeLayout& layout);

// Whether `device` (a name in the node's pool) could be allocated now as far as the layout shows:
// its memory slices are free, or it is a share device whose partition holds only shares of the
// same kind. Unknown names are not free.
bool DeviceLooksFree(const NodeLayout& layout, std::string_view device);

// 10737418240 -> "10Gi", 1.5 GiB -> "1.5Gi", below a GiB in Mi.
std::string HumanBytes(std::int64_t bytes);

}  // namespace tessera::kubectl

#endif  // TESSERA_TOOLS_KUBECTL_TESSERA_LAYOUT_H_
