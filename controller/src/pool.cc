#include "tessera/controller/pool.h"

#include <algorithm>
#include <charconv>
#include <map>
#include <set>

#include "tessera/api/strings.h"

namespace tessera::controller {
namespace {

// Object names are DNS subdomains of at most 253 characters; a node name may use most of that.
constexpr std::size_t kMaxNodePart = 180;

std::string NodePart(std::string_view node) {
  if (node.size() <= kMaxNodePart) return std::string(node);
  const std::string hex = Fnv1a64Hex(node);  // a long name stays unique and stable
  std::string_view head = node.substr(0, kMaxNodePart - 17);
  // A DNS subdomain never has "." or "-" next to the separator.
  while (!head.empty() && (head.back() == '.' || head.back() == '-')) head.remove_suffix(1);
  return StrCat(head, "-", hex);
}

struct ParsedName {
  std::int64_t generation = -1;
  std::size_t index = 0;
};

// "<prefix>-g<generation>-<index>", or generation -1.
ParsedName ParseName(std::string_view name, std::string_view prefix) {
  ParsedName out;
  if (name.size() <= prefix.size() + 3 || name.substr(0, prefix.size()) != prefix) return out;
  std::string_view rest = name.substr(prefix.size());
  if (rest.substr(0, 2) != "-g") return out;
  rest.remove_prefix(2);
  const std::size_t dash = rest.find('-');
  if (dash == std::string_view::npos || rest.size() - dash - 1 != 5) return out;
  std::int64_t gen = 0;
  std::size_t index = 0;
  auto [p1, e1] = std::from_chars(rest.data(), rest.data() + dash, gen);
  auto [p2, e2] = std::from_chars(rest.data() + dash + 1, rest.data() + rest.size(), index);
  if (e1 != std::errc() || p1 != rest.data() + dash || e2 != std::errc() ||
      p2 != rest.data() + rest.size() || gen < 0) {
    return out;
  }
  // Only the spelling SliceName writes ("g01" or "g1-0000001" are not ours).
  if (rest.substr(0, dash) != std::to_string(gen)) return out;
  out.generation = gen;
  out.index = index;
  return out;
}

std::set<std::string> DeviceNames(const api::ResourceSliceSpec& s) {
  std::set<std::string> names;
  for (const api::Device& d : s.devices) names.insert(d.name);
  return names;
}

std::set<std::string> CounterSetNames(const api::ResourceSliceSpec& s) {
  std::set<std::string> names;
  for (const api::CounterSet& c : s.shared_counters) names.insert(c.name);
  return names;
}

api::Json SliceObject(const PoolTarget& target, const std::string& name, api::Json spec,
                      const std::string& resource_version) {
  api::Json meta = {{"name", name}};
  if (!target.node_uid.empty()) {
    meta["ownerReferences"] = api::Json::array({{{"apiVersion", "v1"},
                                                 {"kind", "Node"},
                                                 {"name", target.node},
                                                 {"uid", target.node_uid},
                                                 {"controller", true}}});
  }
  if (!resource_version.empty()) meta["resourceVersion"] = resource_version;
  return {{"apiVersion", "resource.k8s.io/v1"},
          {"kind", "ResourceSlice"},
          {"metadata", std::move(meta)},
          {"spec", std::move(spec)}};
}

}  // namespace

std::string DigestOfText(const std::string& text) {
  return StrCat(Fnv1a64Hex(text), "-", text.size());
}

std::string SpecDigest(const api::ResourceSliceSpec& spec) {
  return DigestOfText(api::Json(spec).dump());
}

namespace {
constexpr char kCompact[] = "tessera.dev/compact";
}  // namespace

StoredSlice ToStoredSlice(const api::Json& object) {
  StoredSlice s;
  const api::Json meta = object.value("metadata", api::Json::object());
  s.name = meta.value("name", std::string());
  s.uid = meta.value("uid", std::string());
  s.resource_version = meta.value("resourceVersion", std::string());
  if (object.contains(kCompact)) {
    const api::Json& c = object[kCompact];
    s.decoded = c.value("decoded", false);
    s.digest = c.value("digest", std::string());
    s.devices = c.value("devices", std::vector<std::string>());
    s.counter_sets = c.value("counterSets", std::vector<std::string>());
    s.pool.name = c.value("pool", std::string());
    s.pool.generation = c.value("generation", std::int64_t{0});
    s.pool.resource_slice_count = c.value("resourceSliceCount", std::int64_t{0});
    return s;
  }
  api::ResourceSliceSpec spec;
  if (object.contains("spec") && api::Decode(api::DecodeContext(), object["spec"], &spec).ok()) {
    s.decoded = true;
    s.pool = spec.pool;
    s.digest = SpecDigest(spec);
    for (const api::Device& d : spec.devices) s.devices.push_back(d.name);
    for (const api::CounterSet& c : spec.shared_counters) s.counter_sets.push_back(c.name);
  }
  return s;
}

api::Json CompactWritten(const api::Json& sent, const api::Json& stored,
                         const std::string& digest) {
  static const api::Json kNone = api::Json::object();
  auto field = [](const api::Json& j, const char* key) -> const api::Json& {
    auto it = j.find(key);
    return it == j.end() ? kNone : *it;
  };
  const api::Json& spec = field(sent, "spec");
  const api::Json& meta = field(stored, "metadata");
  auto names = [&](const char* key) {
    std::vector<std::string> out;
    const api::Json& list = field(spec, key);
    if (!list.is_array()) return out;
    out.reserve(list.size());
    for (const api::Json& d : list) out.push_back(d.value("name", std::string()));
    return out;
  };
  const api::Json& pool = field(spec, "pool");
  return {{"metadata",
           {{"name", meta.value("name", std::string())},
            {"uid", meta.value("uid", std::string())},
            {"resourceVersion", meta.value("resourceVersion", std::string())}}},
          {"spec",
           {{"driver", spec.value("driver", std::string())},
            {"nodeName", spec.value("nodeName", std::string())},
            {"pool", pool}}},
          {kCompact,
           {{"decoded", true},
            {"digest", digest},
            {"devices", names("devices")},
            {"counterSets", names("sharedCounters")},
            {"pool", pool.value("name", std::string())},
            {"generation", pool.value("generation", std::int64_t{0})},
            {"resourceSliceCount", pool.value("resourceSliceCount", std::int64_t{0})}}}};
}

api::Json CompactSlice(api::Json object) {
  if (object.contains(kCompact)) return object;
  const StoredSlice s = ToStoredSlice(object);
  const api::Json spec = object.value("spec", api::Json::object());
  api::Json meta = {{"name", s.name}, {"uid", s.uid}, {"resourceVersion", s.resource_version}};
  return {{"metadata", std::move(meta)},
          {"spec",
           {{"driver", spec.value("driver", std::string())},
            {"nodeName", spec.value("nodeName", std::string())},
            {"pool", spec.value("pool", api::Json::object())}}},
          {kCompact,
           {{"decoded", s.decoded},
            {"digest", s.digest},
            {"devices", s.devices},
            {"counterSets", s.counter_sets},
            {"pool", s.pool.name},
            {"generation", s.pool.generation},
            {"resourceSliceCount", s.pool.resource_slice_count}}}};
}

std::string SliceName(const PoolTarget& target, std::int64_t generation, std::size_t index) {
  char idx[16];
  std::snprintf(idx, sizeof(idx), "%05zu", index);
  return StrCat(NodePart(target.node), "-", target.driver, "-g", generation, "-", idx);
}

PoolPlan PlanPool(const PoolTarget& target, std::span<const api::ResourceSliceSpec> desired,
                  std::span<const StoredSlice> stored) {
  PoolPlan plan;
  const std::string prefix = StrCat(NodePart(target.node), "-", target.driver);
  const std::int64_t n = static_cast<std::int64_t>(desired.size());

  // The current generation: the highest one among slices that are what their names say.
  std::int64_t current = 0;
  std::vector<ParsedName> parsed(stored.size());
  for (std::size_t i = 0; i < stored.size(); ++i) {
    const StoredSlice& s = stored[i];
    parsed[i] = ParseName(s.name, prefix);
    if (parsed[i].generation >= 0 && s.decoded && s.pool.generation != parsed[i].generation)
      parsed[i].generation = -1;
    current = std::max(current, parsed[i].generation);
  }
  std::map<std::size_t, const StoredSlice*> members;  // index -> slice of the current generation
  for (std::size_t i = 0; i < stored.size(); ++i) {
    if (parsed[i].generation == current && current > 0) members[parsed[i].index] = &stored[i];
  }

  bool keep = current > 0 && static_cast<std::int64_t>(members.size()) == n;
  for (std::int64_t i = 0; keep && i < n; ++i) {
    auto it = members.find(static_cast<std::size_t>(i));
    if (it == members.end() || !it->second->decoded) {
      keep = false;
      break;
    }
    const StoredSlice& s = *it->second;
    keep = s.pool.resource_slice_count == n &&
           std::set<std::string>(s.devices.begin(), s.devices.end()) == DeviceNames(desired[i]) &&
           std::set<std::string>(s.counter_sets.begin(), s.counter_sets.end()) ==
               CounterSetNames(desired[i]);
  }

  plan.new_generation = !keep;
  plan.generation = keep ? current : current + 1;
  std::set<const StoredSlice*> kept;
  for (std::int64_t i = 0; i < n; ++i) {
    api::ResourceSliceSpec spec = desired[i];
    spec.pool.generation = plan.generation;
    spec.pool.resource_slice_count = n;
    std::string rv;
    api::Json json = spec;
    std::string digest = DigestOfText(json.dump());  // = SpecDigest(spec), one conversion
    if (keep) {
      const StoredSlice* s = members.at(static_cast<std::size_t>(i));
      kept.insert(s);
      if (s->digest == digest) continue;
      rv = s->resource_version;
      ++plan.updated_in_place;
    }
    plan.applies.push_back(
        SliceObject(target, SliceName(target, plan.generation, i), std::move(json), rv));
    plan.digests.push_back(std::move(digest));
  }
  for (const StoredSlice& s : stored) {
    if (kept.count(&s) == 0) plan.deletes.push_back(s);
  }
  return plan;
}

std::vector<std::string> DroppedFields(const api::Json& sent, const api::Json& stored) {
  // On the JSON itself: this runs after every write, and decoding a 64-device slice twice would
  // cost more than the write's bookkeeping.
  auto nonempty = [](const api::Json& j, const char* key) {
    auto it = j.find(key);
    return it != j.end() && it->is_array() && !it->empty();
  };
  auto any_device = [](const api::Json& spec, const auto& pred) {
    auto it = spec.find("devices");
    if (it == spec.end() || !it->is_array()) return false;
    return std::any_of(it->begin(), it->end(), pred);
  };
  auto counters = [&](const api::Json& d) { return nonempty(d, "consumesCounters"); };
  auto multiple = [](const api::Json& d) {
    auto it = d.find("allowMultipleAllocations");
    return it != d.end() && it->is_boolean() && it->get<bool>();
  };
  std::vector<std::string> dropped;
  if (nonempty(sent, "sharedCounters") && !nonempty(stored, "sharedCounters"))
    dropped.push_back("sharedCounters");
  if (any_device(sent, counters) && !any_device(stored, counters))
    dropped.push_back("consumesCounters");
  if (any_device(sent, multiple) && !any_device(stored, multiple))
    dropped.push_back("allowMultipleAllocations");
  return dropped;
}

}  // namespace tessera::controller
