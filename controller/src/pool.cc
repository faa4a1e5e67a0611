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

// Everything of a slice but its spec.
api::Json SliceObject(const PoolTarget& target, const std::string& name,
                      const std::string& resource_version, api::Json published) {
  api::Json meta = {{"name", name}, {"annotations", {{kPublishedAnnotation, published.dump()}}}};
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
          {"metadata", std::move(meta)}};
}

}  // namespace

std::string DigestOfText(const std::string& text) {
  return StrCat(Fnv1a64Hex(text), "-", text.size());
}

std::string SpecDigest(const api::ResourceSliceSpec& spec) {
  return DigestOfText(api::Json(spec).dump());
}

std::string MembersDigest(const api::ResourceSliceSpec& spec) {
  std::vector<std::string_view> devices;
  std::vector<std::string_view> sets;
  for (const api::Device& d : spec.devices) devices.push_back(d.name);
  for (const api::CounterSet& c : spec.shared_counters) sets.push_back(c.name);
  std::sort(devices.begin(), devices.end());
  std::sort(sets.begin(), sets.end());
  // Names are DNS labels: neither separator can occur in one.
  return DigestOfText(StrCat(StrJoin(devices, ","), "/", StrJoin(sets, ",")));
}

namespace {

constexpr char kCompact[] = "tessera.dev/compact";

api::Json CompactMetadata(const api::Json& meta) {
  return {{"name", api::JsonString(meta, {"name"})},
          {"uid", api::JsonString(meta, {"uid"})},
          {"resourceVersion", api::JsonString(meta, {"resourceVersion"})},
          {"generation", api::JsonInt(meta, {"generation"})}};
}

// The compact form: `meta` from CompactMetadata, `published` as the annotation spells it.
api::Json Compact(api::Json meta, const std::string& driver, const api::Json& published,
                  bool decoded) {
  const std::string pool = api::JsonString(published, {"pool"});
  const std::int64_t generation = api::JsonInt(published, {"generation"});
  const std::int64_t count = api::JsonInt(published, {"resourceSliceCount"});
  return {{"metadata", std::move(meta)},
          {"spec",
           {{"driver", driver},
            {"nodeName", api::JsonString(published, {"nodeName"})},
            {"pool", {{"name", pool}, {"generation", generation}, {"resourceSliceCount", count}}}}},
          {kCompact,
           {{"decoded", decoded},
            {"digest", api::JsonString(published, {"digest"})},
            {"members", api::JsonString(published, {"members"})},
            {"pool", pool},
            {"generation", generation},
            {"resourceSliceCount", count}}}};
}

// The annotation of a slice's metadata, parsed; discarded (is_discarded()) when absent or not
// an object.
api::Json PublishedOf(const api::Json& meta) {
  const std::string text = api::JsonString(meta, {"annotations", kPublishedAnnotation});
  if (text.empty()) return api::Json(api::Json::value_t::discarded);
  api::Json j = api::Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return api::Json(api::Json::value_t::discarded);
  return j;
}

}  // namespace

StoredSlice ToStoredSlice(const api::Json& object) {
  StoredSlice s;
  const api::Json& meta = api::JsonAt(object, {"metadata"});
  s.name = api::JsonString(meta, {"name"});
  s.uid = api::JsonString(meta, {"uid"});
  s.resource_version = api::JsonString(meta, {"resourceVersion"});
  s.object_generation = api::JsonInt(meta, {"generation"});
  if (object.contains(kCompact)) {
    const api::Json& c = object[kCompact];
    s.decoded = c.value("decoded", false);
    s.digest = c.value("digest", std::string());
    s.members = c.value("members", std::string());
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
    s.members = MembersDigest(spec);
  }
  return s;
}

api::Json CompactWritten(const api::Json& sent, const api::Json& stored) {
  return Compact(CompactMetadata(api::JsonAt(stored, {"metadata"})),
                 api::JsonString(sent, {"spec", "driver"}),
                 PublishedOf(api::JsonAt(sent, {"metadata"})), /*decoded=*/true);
}

api::Json CompactSlice(api::Json object) {
  if (object.contains(kCompact)) return object;
  const StoredSlice s = ToStoredSlice(object);
  const api::Json& spec = api::JsonAt(object, {"spec"});
  const api::Json published = {
      {"digest", s.digest},
      {"members", s.members},
      {"pool", s.decoded ? s.pool.name : api::JsonString(spec, {"pool", "name"})},
      {"generation", s.pool.generation},
      {"resourceSliceCount", s.pool.resource_slice_count},
      {"nodeName", api::JsonString(spec, {"nodeName"})}};
  return Compact(CompactMetadata(api::JsonAt(object, {"metadata"})),
                 api::JsonString(spec, {"driver"}), published, s.decoded);
}

std::optional<api::Json> CompactFromAnnotation(const api::Json& object, std::string_view driver) {
  const api::Json& meta = api::JsonAt(object, {"metadata"});
  const api::Json published = PublishedOf(meta);
  if (published.is_discarded()) return std::nullopt;
  const std::int64_t generation = api::JsonInt(meta, {"generation"});
  if (generation <= 0 || api::JsonInt(published, {"objectGeneration"}) != generation ||
      api::JsonString(published, {"digest"}).empty() ||
      api::JsonString(published, {"pool"}).empty()) {
    return std::nullopt;
  }
  return Compact(CompactMetadata(meta), std::string(driver), published, /*decoded=*/true);
}

api::Json UnreadableCompact(const api::Json& object, std::string_view driver) {
  const api::Json& meta = api::JsonAt(object, {"metadata"});
  api::Json published = PublishedOf(meta);
  std::string pool = published.is_object() ? api::JsonString(published, {"pool"}) : std::string();
  if (pool.empty()) {
    const api::Json& owners = api::JsonAt(meta, {"ownerReferences"});
    if (owners.is_array()) {
      for (const api::Json& o : owners) {
        if (api::JsonString(o, {"kind"}) == "Node" && api::JsonString(o, {"apiVersion"}) == "v1")
          pool = api::JsonString(o, {"name"});
      }
    }
  }
  return Compact(CompactMetadata(meta), std::string(driver), {{"pool", pool}, {"nodeName", pool}},
                 /*decoded=*/false);
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
    keep = s.pool.resource_slice_count == n && s.members == MembersDigest(desired[i]);
  }

  plan.new_generation = !keep;
  plan.generation = keep ? current : current + 1;
  std::set<const StoredSlice*> kept;
  for (std::int64_t i = 0; i < n; ++i) {
    const api::ResourceSliceSpec& spec = desired[i];
    api::Json json = spec;  // with this generation and count (not copying the devices to set them)
    json["pool"] = api::ResourcePool{
        .name = spec.pool.name, .generation = plan.generation, .resource_slice_count = n};
    std::string rv;
    std::string text = json.dump();
    std::string digest = DigestOfText(text);  // = SpecDigest(spec), one conversion
    std::int64_t object_generation = 1;       // what a create gives the object
    if (keep) {
      const StoredSlice* s = members.at(static_cast<std::size_t>(i));
      kept.insert(s);
      if (s->digest == digest) continue;
      rv = s->resource_version;
      // The spec changes (its digest did), so the server bumps metadata.generation; 0 (never
      // trusted, so read whole after a restart) when the stored generation is unknown.
      object_generation = s->object_generation > 0 ? s->object_generation + 1 : 0;
      ++plan.updated_in_place;
    }
    api::Json object = SliceObject(target, SliceName(target, plan.generation, i), rv,
                                   {{"objectGeneration", object_generation},
                                    {"digest", digest},
                                    {"members", MembersDigest(spec)},
                                    {"pool", spec.pool.name},
                                    {"generation", plan.generation},
                                    {"resourceSliceCount", n},
                                    {"nodeName", spec.node_name.value_or(std::string())}});
    // The body is the object serialised once: its metadata, then the spec text the digest was
    // taken of.
    std::string body = object.dump();
    body.pop_back();
    body += ",\"spec\":";
    body += text;
    body += '}';
    object["spec"] = std::move(json);
    plan.applies.push_back(std::move(object));
    plan.bodies.push_back(std::move(body));
    plan.digests.push_back(std::move(digest));
  }
  for (const StoredSlice& s : stored) {
    if (kept.count(&s) == 0) plan.deletes.push_back(s);
  }
  return plan;
}

std::vector<std::string> GatedFields(const api::Json& spec) {
  // On the JSON itself: decoding a 64-device slice would cost more than the write's bookkeeping.
  auto nonempty = [](const api::Json& j, const char* key) {
    auto it = j.find(key);
    return it != j.end() && it->is_array() && !it->empty();
  };
  auto any_device = [&](const auto& pred) {
    auto it = spec.find("devices");
    if (it == spec.end() || !it->is_array()) return false;
    return std::any_of(it->begin(), it->end(), pred);
  };
  std::vector<std::string> out;
  if (!spec.is_object()) return out;
  if (nonempty(spec, "sharedCounters")) out.push_back("sharedCounters");
  if (any_device([&](const api::Json& d) { return nonempty(d, "consumesCounters"); }))
    out.push_back("consumesCounters");
  if (any_device([](const api::Json& d) {
        auto it = d.find("allowMultipleAllocations");
        return it != d.end() && it->is_boolean() && it->get<bool>();
      })) {
    out.push_back("allowMultipleAllocations");
  }
  return out;
}

std::vector<std::string> DroppedFields(const api::Json& sent, const api::Json& stored) {
  const std::vector<std::string> kept = GatedFields(stored);
  std::vector<std::string> dropped;
  for (std::string& f : GatedFields(sent)) {
    if (std::find(kept.begin(), kept.end(), f) == kept.end()) dropped.push_back(std::move(f));
  }
  return dropped;
}

}  // namespace tessera::controller
