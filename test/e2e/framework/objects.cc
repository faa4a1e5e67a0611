#include "objects.h"

#include "tessera/api/strings.h"

namespace tessera::e2e {

Json DeviceClass(const std::string& name, const std::string& driver, const std::string& cel) {
  std::string expression = StrCat("device.driver == \"", driver, "\"");
  if (!cel.empty()) expression = StrCat(expression, " && (", cel, ")");
  return {{"apiVersion", "resource.k8s.io/v1"},
          {"kind", "DeviceClass"},
          {"metadata", {{"name", name}}},
          {"spec", {{"selectors", {{{"cel", {{"expression", expression}}}}}}}}};
}

Json ClaimTemplate(const std::string& name, const std::string& device_class,
                   const std::string& request, const std::string& cel) {
  Json exactly = {{"deviceClassName", device_class}, {"count", 1}};
  if (!cel.empty()) exactly["selectors"] = {{{"cel", {{"expression", cel}}}}};
  Json request_json = {{"name", request}, {"exactly", exactly}};
  Json claim_spec = {{"devices", {{"requests", Json::array({request_json})}}}};
  return {{"apiVersion", "resource.k8s.io/v1"},
          {"kind", "ResourceClaimTemplate"},
          {"metadata", {{"name", name}}},
          {"spec", {{"spec", claim_spec}}}};
}

Json PodWithClaim(const std::string& name, const std::string& claim_template,
                  const std::string& node) {
  Json pod = {
      {"apiVersion", "v1"},
      {"kind", "Pod"},
      {"metadata", {{"name", name}}},
      {"spec",
       {{"terminationGracePeriodSeconds", 0},
        {"containers",
         {{{"name", "app"},
           {"image", "registry.k8s.io/pause:3.10"},
           {"resources", {{"claims", {{{"name", "gpu"}}}}}}}}},
        {"resourceClaims", {{{"name", "gpu"}, {"resourceClaimTemplateName", claim_template}}}}}}};
  if (!node.empty()) pod["spec"]["nodeSelector"] = {{"kubernetes.io/hostname", node}};
  return pod;
}

Json Slice(const std::string& name, const std::string& driver, const std::string& node,
           int generation, int slice_count) {
  return {{"apiVersion", "resource.k8s.io/v1"},
          {"kind", "ResourceSlice"},
          {"metadata", {{"name", name}}},
          {"spec",
           {{"driver", driver},
            {"nodeName", node},
            {"pool",
             {{"name", node}, {"generation", generation}, {"resourceSliceCount", slice_count}}}}}};
}

Json Device(const std::string& name, const std::map<std::string, std::string>& attributes,
            const std::string& counter_set, const std::vector<std::string>& counters) {
  Json device = {{"name", name}};
  for (const auto& [key, value] : attributes) device["attributes"][key] = {{"string", value}};
  if (!counter_set.empty()) {
    Json consumed = Json::object();
    for (const auto& c : counters) consumed[c] = {{"value", "1"}};
    device["consumesCounters"] = {{{"counterSet", counter_set}, {"counters", consumed}}};
  }
  return device;
}

Json CounterSet(const std::string& name, const std::vector<std::string>& counters, int value) {
  Json set = {{"name", name}, {"counters", Json::object()}};
  for (const auto& c : counters) set["counters"][c] = {{"value", std::to_string(value)}};
  return set;
}

}  // namespace tessera::e2e
