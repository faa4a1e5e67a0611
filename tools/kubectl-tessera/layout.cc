#include "layout.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "tessera/api/crd.h"
#include "tessera/api/quantity.h"
#include "tessera/api/strings.h"
#include "tessera/partitioner/device_name.h"

namespace tessera::kubectl {
namespace {

using partitioner::DeviceName;
using partitioner::GpuModel;
using partitioner::ResolvedDevice;
using partitioner::ShareKind;

constexpr std::int64_t kMiB = 1024 * 1024;
constexpr std::int64_t kGiB = 1024 * kMiB;
constexpr int kCellWidth = 7;  // "[" + 5 + "]"

std::string Label(std::size_t i) {
  std::string out;
  do {
    out.insert(out.begin(), static_cast<char>('a' + i % 26));
    i /= 26;
  } while (i-- > 0);
  return out;
}

std::string ShareName(ShareKind kind) { return kind == ShareKind::kMps ? "mps" : "timeslice"; }

std::int64_t QuantityBytes(const Json& j) {
  if (!j.is_string()) return 0;
  absl::StatusOr<api::Quantity> q = api::Quantity::Parse(j.get<std::string>());
  return q.ok() ? q->Value() : 0;
}

// `text` centred in `width`; when it does not fit, "a 3g.20gb" shortens to "a 3g", then to "a".
std::string Center(std::string_view text, int width) {
  const auto too_long = [&] { return static_cast<int>(text.size()) > width; };
  if (too_long() && text.find('.') != std::string_view::npos) text = text.substr(0, text.find('.'));
  if (too_long() && text.find(' ') != std::string_view::npos) text = text.substr(0, text.find(' '));
  if (too_long()) text = text.substr(0, width);
  const int pad = width - static_cast<int>(text.size());
  return std::string(pad / 2, ' ') + std::string(text) + std::string(pad - pad / 2, ' ');
}

struct Row {
  GpuRow row;
  const api::GpuInfo* info = nullptr;
  std::set<std::string> types;  // device types published for the GPU
  bool mig_shares = false;      // a share device inside a MIG instance is published
};

}  // namespace

std::string HumanBytes(std::int64_t bytes) {
  if (bytes <= 0) return "0";
  if (bytes % kGiB == 0) return StrCat(bytes / kGiB, "Gi");
  if (bytes >= kGiB) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f", static_cast<double>(bytes) / kGiB);
    std::string out = buf;
    if (out.ends_with(".0")) out.resize(out.size() - 2);  // 9.96 GiB reads "10Gi"
    return out + "Gi";
  }
  return StrCat(bytes / kMiB, "Mi");
}

absl::StatusOr<NodeLayout> BuildNodeLayout(const Json& inventory, const std::vector<Json>& slices,
                                           const std::vector<Json>& claims,
                                           std::string_view driver) {
  absl::StatusOr<api::GpuInventory> inv = api::ParseGpuInventory(inventory);
  if (!inv.ok()) {
    return absl::InvalidArgumentError(StrCat("GpuInventory ",
                                             JsonString(inventory, {"metadata", "name"}), ": ",
                                             std::string(inv.status().message())));
  }
  NodeLayout out;
  out.node = inv->metadata.name;
  out.heartbeat = inv->status.heartbeat_time;
  std::map<std::string, int> products;
  std::map<int, Row> rows;  // by GPU index
  for (const api::GpuInfo& gpu : inv->spec.gpus) {
    ++products[gpu.product.empty() ? gpu.model : gpu.product];
    Row r;
    r.info = &gpu;
    r.row.index = gpu.index;
    r.row.model = gpu.model;
    r.row.health = std::string(api::ToString(gpu.health));
    absl::StatusOr<GpuModel> model = partitioner::ModelFromInventory(gpu, inv->spec.driver_version);
    if (model.ok()) {
      r.row.model_def = std::move(*model);
    } else if (const GpuModel* builtin = partitioner::FindBuiltinModel(gpu.model)) {
      r.row.model_def = *builtin;
    } else {
      out.notes.push_back(StrCat("gpu-", gpu.index, ": ", std::string(model.status().message())));
    }
    if (r.row.model_def.memory_slices > 0) r.row.cells = r.row.model_def.memory_slices;
    r.row.memory = gpu.memory.Value() > 0 ? gpu.memory.Value() : r.row.model_def.memory_mib * kMiB;
    rows.emplace(gpu.index, std::move(r));
  }
  for (const auto& [product, count] : products) {
    if (!out.product.empty()) out.product += ", ";
    out.product += StrCat(count, " x ", product);
  }

  // What the pool publishes, per GPU.
  for (const Json& s : slices) {
    if (JsonString(s, {"spec", "driver"}) != driver ||
        JsonString(s, {"spec", "pool", "name"}) != out.node) {
      continue;
    }
    const Json devices = s["spec"].value("devices", Json::array());
    for (const Json& d : devices) {
      const std::string name = d.value("name", "");
      absl::StatusOr<DeviceName> n = DeviceName::Parse(name);
      if (!n.ok()) continue;
      auto it = rows.find(n->gpu);
      if (it == rows.end()) continue;
      ++out.published_devices;
      std::string type = JsonString(d, {"attributes", "type", "string"});
      if (type.empty()) type = n->share ? ShareName(*n->share) : n->mig ? "mig" : "gpu";
      it->second.types.insert(type);
      if (n->mig && n->share) it->second.mig_shares = true;
    }
  }

  // The claims' results on this node.
  for (const Json& c : claims) {
    const std::string claim =
        StrCat(JsonString(c, {"metadata", "namespace"}), "/", JsonString(c, {"metadata", "name"}));
    const Json* results = nullptr;
    if (c.contains("status") && c["status"].contains("allocation")) {
      results = &c["status"]["allocation"]["devices"]["results"];
    }
    if (results == nullptr || !results->is_array()) continue;
    std::vector<std::string> pods;
    const Json reserved_for = c["status"].value("reservedFor", Json::array());
    for (const Json& ref : reserved_for) {
      if (ref.value("resource", "") == "pods") pods.push_back(ref.value("name", ""));
    }
    for (const Json& result : *results) {
      if (result.value("driver", "") != driver || result.value("pool", "") != out.node) continue;
      ClaimUse use;
      use.claim = claim;
      use.request = result.value("request", "");
      use.device = result.value("device", "");
      use.pods = pods;
      absl::StatusOr<DeviceName> n = DeviceName::Parse(use.device);
      auto it = n.ok() ? rows.find(n->gpu) : rows.end();
      if (it == rows.end()) {
        out.notes.push_back(StrCat(claim, ": device ", use.device, " is not a GPU of this node"));
        continue;
      }
      GpuRow& row = it->second.row;
      use.gpu = row.index;
      use.size = row.cells;
      use.memory = row.memory;
      if (n->mig) {
        absl::StatusOr<ResolvedDevice> r =
            partitioner::ResolveDeviceName(use.device, row.model_def);
        if (!r.ok()) {
          out.notes.push_back(StrCat(claim, ": ", std::string(r.status().message())));
          continue;
        }
        const partitioner::GiProfile& p = row.model_def.profiles[r->profile];
        use.profile = p.name;
        use.start = r->placement.start;
        use.size = r->placement.size;
        use.memory = p.memory_mib * kMiB;
        for (const api::MigInstanceInfo& i : it->second.info->mig_instances) {
          if (i.placement.start == use.start && i.profile == use.profile)
            use.instance_uuid = i.uuid;
        }
      }
      const std::string on =
          n->mig ? StrCat("MIG ", use.profile, " at slice ", use.start) : StrCat("gpu-", row.index);
      if (n->share) {
        use.kind = ShareName(*n->share);
        const Json consumed = result.value("consumedCapacity", Json::object());
        if (consumed.contains("memory")) use.memory = QuantityBytes(consumed["memory"]);
        if (consumed.contains("compute")) {
          use.compute = static_cast<int>(QuantityBytes(consumed["compute"]));
        }
        use.partition = *n->share == ShareKind::kMps
                            ? StrCat("MPS share of ", on, ": ", HumanBytes(use.memory),
                                     use.compute ? StrCat(", ", *use.compute, "% SMs") : "")
                            : StrCat("time-slice share of ", on);
      } else {
        use.kind = n->mig ? "mig" : "gpu";
        use.partition = n->mig ? on : StrCat("whole ", on);
      }
      out.claims.push_back(std::move(use));
    }
  }
  std::stable_sort(out.claims.begin(), out.claims.end(), [](const ClaimUse& a, const ClaimUse& b) {
    return std::tie(a.gpu, a.start, a.claim) < std::tie(b.gpu, b.start, b.claim);
  });
  std::map<std::string, std::string> labels;  // one letter per claim
  for (ClaimUse& use : out.claims) {
    auto [it, added] = labels.emplace(use.claim, "");
    if (added) it->second = Label(labels.size() - 1);
    use.label = it->second;
  }

  // Cells: partitions in use, then the instances the node reports that no claim uses.
  for (auto& [index, r] : rows) {
    GpuRow& row = r.row;
    if (r.types.count("mig")) {
      row.mode = r.mig_shares ? "mig+mps" : "mig";
    } else if (r.types.count("mps")) {
      row.mode = "mps";
    } else if (r.types.count("timeslice")) {
      row.mode = "timeslice";
    } else if (r.types.count("gpu")) {
      row.mode = "whole";
    } else {
      row.mode = "none";
    }
    std::map<std::pair<int, int>, std::vector<const ClaimUse*>> by_partition;  // (start, size)
    for (const ClaimUse& use : out.claims) {
      if (use.gpu == row.index) by_partition[{use.start, use.size}].push_back(&use);
    }
    for (const api::MigInstanceInfo& i : r.info->mig_instances) {
      const std::pair<int, int> key{i.placement.start, i.placement.size};
      if (by_partition.count(key)) continue;
      by_partition[key];  // drawn as an instance without a claim
      out.notes.push_back(
          StrCat("gpu-", row.index, ": MIG ", i.profile, " at slice ", i.placement.start,
                 " exists without a claim",
                 i.created_by_tessera ? " (created by tessera)" : " (not created by tessera)"));
    }
    std::vector<Span> used;
    for (const auto& [key, uses] : by_partition) {
      const auto [start, size] = key;
      GpuRow::Partition part{.start = start, .size = size, .profile = "", .share = ""};
      if (uses.empty()) {
        for (const api::MigInstanceInfo& i : r.info->mig_instances) {
          if (i.placement.start == start && i.placement.size == size) part.profile = i.profile;
        }
        used.push_back(
            {.start = start, .size = size, .text = "(" + part.profile + ")", .used = true});
        row.partitions.push_back(part);
        continue;
      }
      part.profile = uses[0]->profile;
      part.share = uses[0]->kind == "mps" || uses[0]->kind == "timeslice" ? uses[0]->kind : "";
      row.partitions.push_back(part);
      const std::string what = part.profile.empty() ? "whole" : part.profile;
      if (part.share.empty()) {
        std::string text;
        for (const ClaimUse* u : uses) text += (text.empty() ? "" : ",") + u->label;
        used.push_back({.start = start, .size = size, .text = text + " " + what, .used = true});
        continue;
      }
      if (part.share == "timeslice") {
        std::string text;
        for (const ClaimUse* u : uses) text += (text.empty() ? "" : ",") + u->label;
        used.push_back({.start = start, .size = size, .text = text + " ts", .used = true});
        continue;
      }
      // MPS: each share as many cells as its memory is of the partition's, at least one.
      std::int64_t whole = row.memory;
      if (const partitioner::GiProfile* p = row.model_def.FindProfile(uses[0]->profile);
          p != nullptr && !uses[0]->profile.empty()) {
        whole = p->memory_mib * kMiB;
      }
      int at = start;
      for (const ClaimUse* u : uses) {
        const int left = start + size - at;
        if (left <= 0) {
          used.back().text =
              used.back().text.substr(0, used.back().text.find(' ')) + "," + u->label + " mps";
          continue;
        }
        int k = whole > 0 ? static_cast<int>(std::lround(static_cast<double>(u->memory) * size /
                                                         static_cast<double>(whole)))
                          : 1;
        k = std::clamp(k, 1, left);
        used.push_back({.start = at,
                        .size = k,
                        .text = StrCat(u->label, " mps ", HumanBytes(u->memory)),
                        .used = true});
        at += k;
      }
      if (at < start + size) {
        used.push_back({.start = at, .size = start + size - at, .text = "mps", .used = false});
      }
    }
    std::sort(used.begin(), used.end(),
              [](const Span& a, const Span& b) { return a.start < b.start; });
    int at = 0;
    for (const Span& s : used) {
      for (; at < s.start; ++at)
        row.spans.push_back({.start = at, .size = 1, .text = "", .used = false});
      if (s.start < at) {
        out.notes.push_back(StrCat("gpu-", row.index, ": partitions overlap at slice ", s.start));
        continue;
      }
      row.spans.push_back(s);
      at = s.start + s.size;
    }
    for (; at < row.cells; ++at)
      row.spans.push_back({.start = at, .size = 1, .text = "", .used = false});
    out.gpus.push_back(std::move(row));
  }
  return out;
}

std::string RenderLayout(const NodeLayout& layout) {
  std::string out = StrCat("node ", layout.node, ": ", layout.product);
  if (!layout.heartbeat.empty()) out += StrCat(" (heartbeat ", layout.heartbeat, ")");
  out += "\n";
  std::int64_t cell_memory = 0;
  bool same = true;
  for (const GpuRow& g : layout.gpus) {
    const std::int64_t m = g.cells > 0 ? g.memory / g.cells : 0;
    if (cell_memory != 0 && m != cell_memory) same = false;
    cell_memory = m;
  }
  out += StrCat("  GPU  MODE        MEMORY SLICES",
                same && cell_memory > 0
                    ? StrCat(" (one cell ~ ", HumanBytes(cell_memory / kMiB * kMiB), ")")
                    : "",
                "\n");
  for (const GpuRow& g : layout.gpus) {
    std::string line = StrCat("  ", g.index);
    line.resize(7, ' ');
    line += g.mode;
    line.resize(19, ' ');
    for (const Span& s : g.spans) {
      line += "[" + Center(s.text, kCellWidth * s.size - 2) + "]";
    }
    if (g.health != "Healthy") line += "  " + g.health;
    out += line + "\n";
  }
  if (layout.claims.empty()) {
    out += "  no claims allocated here\n";
  } else {
    std::size_t w_claim = 5, w_device = 6;
    for (const ClaimUse& u : layout.claims) {
      w_claim = std::max(w_claim, u.claim.size());
      w_device = std::max(w_device, u.device.size());
    }
    auto pad = [](std::string s, std::size_t w) {
      s.resize(std::max(w, s.size()), ' ');
      return s;
    };
    out += StrCat("       ", pad("CLAIM", w_claim), "  ", pad("DEVICE", w_device), "  ALLOCATED\n");
    for (const ClaimUse& u : layout.claims) {
      std::string what = u.partition;
      if (!u.instance_uuid.empty()) what += StrCat(" (", u.instance_uuid, ")");
      if (!u.pods.empty()) what += StrCat(", pod ", StrJoin(u.pods, ","));
      out += StrCat("  ", pad(u.label, 3), "  ", pad(u.claim, w_claim), "  ",
                    pad(u.device, w_device), "  ", what, "\n");
    }
  }
  for (const std::string& n : layout.notes) out += "  note: " + n + "\n";
  return out;
}

bool DeviceLooksFree(const NodeLayout& layout, std::string_view device) {
  absl::StatusOr<DeviceName> n = DeviceName::Parse(device);
  if (!n.ok()) return false;
  for (const GpuRow& row : layout.gpus) {
    if (row.index != n->gpu) continue;
    int start = 0, size = row.cells;
    std::string profile;
    if (n->mig) {
      absl::StatusOr<ResolvedDevice> r = partitioner::ResolveDeviceName(device, row.model_def);
      if (!r.ok()) return false;
      start = r->placement.start;
      size = r->placement.size;
      profile = row.model_def.profiles[r->profile].name;
    }
    const std::string share = n->share ? ShareName(*n->share) : "";
    for (const GpuRow::Partition& p : row.partitions) {
      const bool overlaps = p.start < start + size && start < p.start + p.size;
      if (!overlaps) continue;
      const bool same_partition = p.start == start && p.size == size && p.profile == profile;
      if (share.empty() || !same_partition || p.share != share) return false;
    }
    return true;
  }
  return false;
}

}  // namespace tessera::kubectl
