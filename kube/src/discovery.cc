#include "tessera/kube/discovery.h"

#include "absl/strings/numbers.h"
#include "tessera/api/strings.h"

namespace tessera::kube {
namespace {

using api::Json;

// "36", "36+" -> 36.
bool ParseMinor(const Json& v, int* out) {
  if (!v.is_string()) return false;
  std::string s = v.get<std::string>();
  while (!s.empty() && s.back() == '+') s.pop_back();
  return absl::SimpleAtoi(s, out);
}

}  // namespace

absl::StatusOr<ServerVersion> ParseServerVersion(const Json& version) {
  ServerVersion v;
  if (!version.is_object() || !version.contains("major") ||
      !ParseMinor(version["major"], &v.major) || !version.contains("minor") ||
      !ParseMinor(version["minor"], &v.binary_minor)) {
    return absl::DataLossError(
        StrCat("/version: unexpected answer ", version.dump().substr(0, 200)));
  }
  v.minor = v.binary_minor;
  if (version.contains("emulationMinor")) {
    int emulated = 0;
    if (ParseMinor(version["emulationMinor"], &emulated)) v.minor = emulated;
  }
  v.git_version = version.value("gitVersion", "");
  return v;
}

absl::StatusOr<ServerVersion> GetServerVersion(Client& client) {
  absl::StatusOr<Json> version = client.Raw("GET", "/version");
  if (!version.ok()) return version.status();
  return ParseServerVersion(*version);
}

absl::StatusOr<bool> ServesResource(Client& client, std::string_view group_version,
                                    std::string_view resource) {
  const std::string path = group_version.find('/') == std::string_view::npos
                               ? StrCat("/api/", group_version)
                               : StrCat("/apis/", group_version);
  absl::StatusOr<Json> list = client.Raw("GET", path);
  if (!list.ok()) {
    if (list.status().code() == absl::StatusCode::kNotFound) return false;
    return list.status();
  }
  if (list->contains("resources") && (*list)["resources"].is_array()) {
    for (const Json& r : (*list)["resources"]) {
      if (r.is_object() && r.value("name", "") == resource) return true;
    }
  }
  return false;
}

absl::StatusOr<SliceFeatures> ProbeSliceFeatures(Client& client, std::string_view driver) {
  absl::StatusOr<ServerVersion> version = GetServerVersion(client);
  if (!version.ok()) return version.status();
  SliceFeatures f;
  f.counters_in_own_slice = version->major > 1 || version->minor >= 35;
  // A device that consumes a counter and may be allocated many times. Before 1.35 its counter set
  // must be in the same slice; from 1.35 the set lives elsewhere and a device slice may name it.
  Json device = {
      {"name", "probe"},
      {"allowMultipleAllocations", true},
      {"capacity",
       {{"clients",
         {{"value", "1"}, {"requestPolicy", {{"default", "1"}, {"validValues", {"1"}}}}}}}},
      {"consumesCounters",
       Json::array({{{"counterSet", "probe"}, {"counters", {{"c", {{"value", "1"}}}}}}})}};
  Json slice = {
      {"apiVersion", "resource.k8s.io/v1"},
      {"kind", "ResourceSlice"},
      {"metadata", {{"generateName", "tessera-feature-probe-"}}},
      {"spec",
       {{"driver", driver},
        {"nodeName", "tessera-feature-probe"},
        {"pool", {{"name", "tessera-feature-probe"}, {"generation", 0}, {"resourceSliceCount", 1}}},
        {"devices", Json::array({device})}}}};
  if (!f.counters_in_own_slice) {
    slice["spec"]["sharedCounters"] =
        Json::array({{{"name", "probe"}, {"counters", {{"c", {{"value", "1"}}}}}}});
  }
  absl::StatusOr<Json> stored =
      client.Create(resources::kResourceSlices, "", slice, {.dry_run = true});
  if (!stored.ok()) return stored.status();
  const Json& devices = (*stored)["spec"].value("devices", Json::array());
  if (devices.is_array() && !devices.empty()) {
    f.partitionable_devices = devices[0].contains("consumesCounters");
    f.consumable_capacity = devices[0].value("allowMultipleAllocations", false);
  }
  return f;
}

}  // namespace tessera::kube
