#include "explain.h"

#include <map>
#include <regex>

#include "tessera/api/strings.h"

namespace tessera::kubectl {
namespace {

const Json& Arr(const Json& j, const char* key) {
  static const Json kEmpty = Json::array();
  return j.is_object() && j.contains(key) && j[key].is_array() ? j[key] : kEmpty;
}

// A request or sub-request, flattened.
struct Wanted {
  std::string name;  // "gpu" or "gpu/small"
  std::string device_class;
  std::string count = "1";
  std::vector<std::string> selectors;
  std::map<std::string, std::string> capacity;
};

std::vector<Wanted> Requests(const Json& claim) {
  std::vector<Wanted> out;
  auto read = [](const std::string& name, const Json& r) {
    Wanted w{.name = name,
             .device_class = r.value("deviceClassName", ""),
             .count = "1",
             .selectors = {},
             .capacity = {}};
    if (r.value("allocationMode", "") == "All") w.count = "all";
    if (r.contains("count")) w.count = r["count"].dump();
    for (const Json& s : Arr(r, "selectors"))
      w.selectors.push_back(JsonString(s, {"cel", "expression"}));
    if (r.contains("capacity")) {
      const Json requests = r["capacity"].value("requests", Json::object());
      for (const auto& [k, v] : requests.items()) {
        w.capacity[k] = v.is_string() ? v.get<std::string>() : v.dump();
      }
    }
    return w;
  };
  for (const Json& r : Arr(JsonAt(claim, {"spec", "devices"}), "requests")) {
    const std::string name = r.value("name", "");
    if (r.contains("exactly")) out.push_back(read(name, r["exactly"]));
    for (const Json& sub : Arr(r, "firstAvailable")) {
      out.push_back(read(name + "/" + sub.value("name", ""), sub));
    }
  }
  return out;
}

// Whether a published device matches the hints of a class and a request.
bool Matches(const Json& device, const SelectorHints& h) {
  const Json attrs = device.value("attributes", Json::object());
  auto attr = [&](const char* key) { return JsonString(attrs, {key, "string"}); };
  if (!h.type.empty() && attr("type") != h.type) return false;
  if (!h.profile.empty() && attr("profile") != h.profile) return false;
  if (!h.profile_class.empty() && attr("profileClass") != h.profile_class) return false;
  return true;
}

void Merge(SelectorHints& into, const SelectorHints& from) {
  if (!from.type.empty()) into.type = from.type;
  if (!from.profile.empty()) into.profile = from.profile;
  if (!from.profile_class.empty()) into.profile_class = from.profile_class;
}

std::string PodLine(const Json& pod) {
  std::string line = StrCat("pod ", JsonString(pod, {"metadata", "name"}), ": ",
                            JsonString(pod, {"status", "phase"}));
  const std::string node = JsonString(pod, {"spec", "nodeName"});
  if (!node.empty()) line += " on " + node;
  for (const Json& c : Arr(JsonAt(pod, {"status"}), "conditions")) {
    if (c.value("type", "") == "PodScheduled" && c.value("status", "") == "False") {
      line +=
          StrCat("\n      not scheduled (", c.value("reason", ""), "): ", c.value("message", ""));
    }
  }
  return line;
}

}  // namespace

SelectorHints HintsFromCel(const std::string& expression) {
  SelectorHints h;
  static const std::regex kAttr(
      R"re(attributes\["[^"]+"\]\.(type|profileClass|profile)\s*==\s*"([^"]*)")re");
  for (std::sregex_iterator it(expression.begin(), expression.end(), kAttr), end; it != end; ++it) {
    const std::string key = (*it)[1], value = (*it)[2];
    if (key == "type") h.type = value;
    if (key == "profile") h.profile = value;
    if (key == "profileClass") h.profile_class = value;
  }
  return h;
}

std::string ExplainClaim(const ExplainInput& in) {
  const Json& claim = in.claim;
  const std::string ns = JsonString(claim, {"metadata", "namespace"});
  const std::string name = JsonString(claim, {"metadata", "name"});
  std::string out = StrCat("claim ", ns, "/", name);
  const bool allocated = claim.contains("status") && claim["status"].contains("allocation");

  // The pods that use it: reservedFor, or pods whose claim statuses or specs name it.
  std::vector<const Json*> pods;
  for (const Json& pod : in.pods) {
    bool uses = false;
    for (const Json& s : Arr(JsonAt(pod, {"status"}), "resourceClaimStatuses")) {
      uses |= s.value("resourceClaimName", "") == name;
    }
    for (const Json& c : Arr(JsonAt(pod, {"spec"}), "resourceClaims")) {
      uses |= c.value("resourceClaimName", "") == name;
    }
    if (uses) pods.push_back(&pod);
  }

  if (allocated) {
    out += ": allocated";
    const Json& results = Arr(JsonAt(claim, {"status", "allocation", "devices"}), "results");
    out += "\n";
    for (const Json& r : results) {
      const std::string driver = r.value("driver", "");
      const std::string pool = r.value("pool", "");
      const std::string device = r.value("device", "");
      out += StrCat("  request ", r.value("request", ""), ": ", pool, "/", device);
      if (driver != in.driver) {
        out += StrCat(" (driver ", driver, ")\n");
        continue;
      }
      const ClaimUse* use = nullptr;
      const NodeLayout* node = nullptr;
      for (const NodeLayout& l : in.layouts) {
        if (l.node != pool) continue;
        node = &l;
        for (const ClaimUse& u : l.claims) {
          if (u.claim == ns + "/" + name && u.device == device) use = &u;
        }
      }
      if (use != nullptr) {
        std::string model;
        for (const GpuRow& g : node->gpus) {
          if (g.index == use->gpu) model = g.model;
        }
        out +=
            StrCat("\n    ", use->partition, " on gpu-", use->gpu, " (", model, ") of node ", pool);
        if (use->kind == "mig" || (use->kind != "gpu" && !use->profile.empty())) {
          out += use->instance_uuid.empty()
                     ? "\n    MIG instance: not reported by the node yet (prepared when the pod "
                       "starts)"
                     : StrCat("\n    MIG instance: ", use->instance_uuid);
        }
      } else if (node == nullptr) {
        out += StrCat("\n    node ", pool, " has no GpuInventory (is its kubelet plugin running?)");
      }
      if (r.contains("consumedCapacity")) {
        std::vector<std::string> parts;
        for (const auto& [k, v] : JsonAt(r, {"consumedCapacity"}).items()) {
          parts.push_back(StrCat(k, "=", v.is_string() ? v.get<std::string>() : v.dump()));
        }
        out += StrCat("\n    consumed capacity: ", StrJoin(parts, ", "));
      }
      out += "\n";
    }
    for (const Json& c : Arr(JsonAt(claim, {"status", "allocation", "devices"}), "config")) {
      if (c.contains("opaque")) {
        out += StrCat("  config (", c.value("source", ""),
                      "): ", JsonAt(c, {"opaque", "parameters"}).dump(), "\n");
      }
    }
    if (pods.empty()) out += "  no pod uses it now\n";
    for (const Json* pod : pods) {
      out += "  " + PodLine(*pod);
      if (JsonString(*pod, {"status", "phase"}) == "Running") {
        out += " (the kubelet prepared the claim)";
      }
      out += "\n";
    }
    return out;
  }

  out += ": pending (not allocated)\n";
  if (pods.empty()) {
    out +=
        "  no pod uses it: the scheduler allocates a claim when it schedules a pod that "
        "references it\n";
  }
  for (const Json* pod : pods) out += "  " + PodLine(*pod) + "\n";

  std::map<std::string, SelectorHints> class_hints;
  for (const Json& c : in.classes) {
    SelectorHints h;
    for (const Json& s : Arr(JsonAt(c, {"spec"}), "selectors"))
      Merge(h, HintsFromCel(JsonString(s, {"cel", "expression"})));
    class_hints[JsonString(c, {"metadata", "name"})] = h;
  }
  for (const Wanted& w : Requests(claim)) {
    out += StrCat("  request ", w.name, ": ", w.count, " device(s) of class ", w.device_class);
    for (const std::string& s : w.selectors) out += StrCat(" where ", s);
    for (const auto& [k, v] : w.capacity) out += StrCat(", ", k, " ", v);
    out += "\n";
    auto cls = class_hints.find(w.device_class);
    if (cls == class_hints.end()) {
      out += StrCat("    DeviceClass ", w.device_class, " does not exist\n");
      continue;
    }
    SelectorHints h = cls->second;
    for (const std::string& s : w.selectors) Merge(h, HintsFromCel(s));
    std::map<std::string, std::pair<int, int>> per_node;  // pool -> (published, look free)
    for (const Json& s : in.slices) {
      if (JsonString(s, {"spec", "driver"}) != in.driver) continue;
      const std::string pool = JsonString(s, {"spec", "pool", "name"});
      for (const Json& d : Arr(JsonAt(s, {"spec"}), "devices")) {
        if (!Matches(d, h)) continue;
        auto& [published, free] = per_node[pool];
        ++published;
        for (const NodeLayout& l : in.layouts) {
          if (l.node == pool && DeviceLooksFree(l, d.value("name", ""))) ++free;
        }
      }
    }
    if (per_node.empty()) {
      out += StrCat("    no published device matches (type ", h.type.empty() ? "any" : h.type,
                    h.profile_class.empty() ? "" : ", profileClass " + h.profile_class,
                    h.profile.empty() ? "" : ", profile " + h.profile,
                    "): check the nodes' GpuPartitionPolicy (kubectl get gpupolicy)\n");
      continue;
    }
    for (const auto& [pool, counts] : per_node) {
      out += StrCat("    node ", pool, ": ", counts.first, " matching device(s) published, ",
                    counts.second, " with free memory slices now\n");
    }
  }
  return out;
}

}  // namespace tessera::kubectl
