#include "tessera/api/crd_schema.h"

#include <limits>

#include "tessera/api/crd.h"

namespace tessera::api {
namespace {

Json Str(std::string_view description = "") {
  Json s = {{"type", "string"}};
  if (!description.empty()) s["description"] = description;
  return s;
}

Json Int(int64_t min, int64_t max, std::string_view description = "") {
  Json s = {{"type", "integer"}, {"minimum", min}};
  // The API server reads schema numbers as float64, where 2^63-1 is no longer an integer and the
  // CRD's status writes are refused ("Maximum boundary value must be of type integer"): int64
  // fields say so by format instead.
  if (max == std::numeric_limits<int64_t>::max()) {
    s["format"] = "int64";
  } else {
    s["maximum"] = max;
  }
  if (!description.empty()) s["description"] = description;
  return s;
}

Json Bool(std::string_view description = "") {
  Json s = {{"type", "boolean"}};
  if (!description.empty()) s["description"] = description;
  return s;
}

Json Enum(std::initializer_list<std::string_view> values, std::string_view description = "") {
  Json s = Str(description);
  s["enum"] = Json::array();
  for (std::string_view v : values) s["enum"].push_back(v);
  return s;
}

// The API server's own shape for resource.Quantity fields.
Json Qty(std::string_view description = "") {
  Json s = {
      {"anyOf", Json::array({{{"type", "integer"}}, {{"type", "string"}}})},
      {"pattern",
       R"(^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$)"},
      {"x-kubernetes-int-or-string", true}};
  if (!description.empty()) s["description"] = description;
  return s;
}

Json Arr(Json items, std::string_view description = "") {
  Json s = {{"type", "array"}, {"items", std::move(items)}};
  if (!description.empty()) s["description"] = description;
  return s;
}

Json Obj(Json properties, std::vector<std::string_view> required = {},
         std::string_view description = "") {
  Json s = {{"type", "object"}, {"properties", std::move(properties)}};
  if (!required.empty()) {
    s["required"] = Json::array();
    for (std::string_view r : required) s["required"].push_back(r);
  }
  if (!description.empty()) s["description"] = description;
  return s;
}

Json Name(std::string_view description) {
  Json s = Str(description);
  s["pattern"] = "^[a-z0-9][a-z0-9.-]*$";
  s["maxLength"] = 63;
  return s;
}

Json ConditionSchema() {
  return Obj({{"type", Str()},
              {"status", Enum({"True", "False", "Unknown"})},
              {"observedGeneration", Int(0, INT64_MAX)},
              {"lastTransitionTime", Str()},
              {"reason", Str()},
              {"message", Str()}},
             {"type", "status"});
}

Json ClaimReferenceSchema() {
  return Obj({{"namespace", Str()}, {"name", Str()}, {"uid", Str()}}, {"namespace", "name", "uid"});
}

Json PlacementSchema() {
  return Obj(
      {{"start", Int(0, 7, "first memory slice")}, {"size", Int(1, 8, "number of memory slices")}},
      {"start", "size"});
}

Json GpuInventorySchema() {
  Json profile = Obj({{"name", Str("MIG profile name as NVML reports it, e.g. 1g.10gb")},
                      {"profileID", Int(0, 255, "NVML GPU-instance profile id")},
                      {"computeSlices", Int(1, 8)},
                      {"memorySlices", Int(1, 8)},
                      {"memory", Qty()},
                      {"maxCount", Int(1, 7)},
                      {"multiprocessors", Int(0, 1024)},
                      {"copyEngines", Int(0, 64)},
                      {"decoders", Int(0, 64)},
                      {"encoders", Int(0, 64)},
                      {"jpegEngines", Int(0, 64)},
                      {"ofaEngines", Int(0, 64)},
                      {"placements", Arr(PlacementSchema())}},
                     {"name", "profileID", "computeSlices", "memorySlices", "memory", "maxCount"});
  Json instance =
      Obj({{"profile", Str()},
           {"placement", PlacementSchema()},
           {"gpuInstanceID", Int(0, 255)},
           {"computeInstanceID", Int(0, 255)},
           {"uuid", Str()},
           {"ownerClaim", ClaimReferenceSchema()},
           {"createdByTessera", Bool("only instances tessera created are ever destroyed by it")}},
          {"profile", "placement", "gpuInstanceID"});
  Json share = Obj({{"device", Str()},
                    {"strategy", Enum({"TimeSlicing", "MPS"})},
                    {"claim", ClaimReferenceSchema()},
                    {"activeThreadPercentage", Int(1, 100)},
                    {"pinnedDeviceMemoryLimit", Qty()}},
                   {"device", "strategy", "claim"});
  Json gpu = Obj({{"index", Int(0, 63)},
                  {"uuid", Str()},
                  {"product", Str("NVML product name")},
                  {"model", Str("catalogue key, e.g. h100-80gb")},
                  {"memory", Qty()},
                  {"computeCapability", Str()},
                  {"pciBusID", Str()},
                  {"minorNumber", Int(0, 255, "N in /dev/nvidiaN")},
                  {"migCapable", Bool()},
                  {"migEnabled", Bool()},
                  {"migProfiles", Arr(profile)},
                  {"migInstances", Arr(instance)},
                  {"shares", Arr(share)},
                  {"timeSliceInterval", Enum({"Default", "Short", "Medium", "Long"})},
                  {"health", Enum({"Healthy", "Unhealthy", "Unknown"})},
                  {"healthMessage", Str()}},
                 {"index", "uuid", "product", "memory"});
  Json spec = Obj({{"nodeName", Str("the node this inventory describes; equals metadata.name")},
                   {"driverVersion", Str()},
                   {"cudaDriverVersion", Str()},
                   {"gpus", Arr(gpu)}},
                  {"nodeName"});
  Json status = Obj({{"heartbeatTime", Str("renewed by the node's kubelet plugin")},
                     {"pluginVersion", Str()},
                     {"conditions", Arr(ConditionSchema())}});
  return Obj({{"apiVersion", Str()},
              {"kind", Str()},
              {"metadata", {{"type", "object"}}},
              {"spec", spec},
              {"status", status}},
             {"spec"}, "The GPUs of one node as its tessera kubelet plugin discovered them.");
}

Json GpuPartitionPolicySchema() {
  Json requirement = Obj({{"key", Str()},
                          {"operator", Enum({"In", "NotIn", "Exists", "DoesNotExist"})},
                          {"values", Arr(Str())}},
                         {"key", "operator"});
  Json selector = Obj({{"matchLabels", {{"type", "object"}, {"additionalProperties", Str()}}},
                       {"matchExpressions", Arr(requirement)}},
                      {}, "which nodes this policy applies to; empty selects every node");
  Json match =
      Obj({{"models", Arr(Name("GPU model, e.g. a100-40gb"))}, {"indices", Arr(Int(0, 63))}}, {},
          "which GPUs of a node; empty matches all");
  Json layout = Obj({{"profiles",
                      [] {
                        Json a = Arr(Name("MIG profile name"));
                        a["minItems"] = 1;
                        a["maxItems"] = 7;
                        return a;
                      }()}},
                    {"profiles"});
  Json shares = Obj({{"maxShares", Int(0, 128, "0: unlimited with consumable capacity")},
                     {"minMemory", Qty()},
                     {"minComputePercent", Int(1, 100)}});
  Json gpu = Obj({{"match", match},
                  {"mode", Enum({"whole", "mig-dynamic", "mig-static", "mps", "timeslice"})},
                  {"migStatic", layout},
                  {"allowedProfiles", Arr(Name("MIG profile name"))},
                  {"instanceSharing", Enum({"TimeSlicing", "MPS"})},
                  {"shares", shares},
                  {"timeSliceInterval", Enum({"Default", "Short", "Medium", "Long"})}},
                 {"mode"});
  Json gpus = Arr(gpu);
  gpus["minItems"] = 1;
  Json spec = Obj({{"nodeSelector", selector}, {"gpus", gpus}}, {"gpus"});
  Json status = Obj({{"observedGeneration", Int(0, INT64_MAX)},
                     {"conditions", Arr(ConditionSchema())},
                     {"selectedNodes", Int(0, INT32_MAX)},
                     {"conflictingPolicies", Arr(Str())}});
  return Obj({{"apiVersion", Str()},
              {"kind", Str()},
              {"metadata", {{"type", "object"}}},
              {"spec", spec},
              {"status", status}},
             {"spec"}, "How the GPUs of the selected nodes are partitioned.");
}

struct CrdNames {
  std::string_view kind;
  std::string_view plural;
  std::string_view singular;
  std::string_view short_name;
};

Json PrinterColumns(std::string_view kind) {
  auto column = [](std::string_view name, std::string_view type, std::string_view path) {
    return Json{{"name", name}, {"type", type}, {"jsonPath", path}};
  };
  if (kind == "GpuInventory") {
    return Json::array({column("GPUs", "integer", ".spec.gpus[*].index"),
                        column("Driver", "string", ".spec.driverVersion"),
                        column("Heartbeat", "date", ".status.heartbeatTime"),
                        column("Age", "date", ".metadata.creationTimestamp")});
  }
  return Json::array(
      {column("Nodes", "integer", ".status.selectedNodes"),
       column("Accepted", "string", ".status.conditions[?(@.type==\"Accepted\")].status"),
       column("Age", "date", ".metadata.creationTimestamp")});
}

}  // namespace

std::vector<std::string_view> CrdKinds() { return {"GpuInventory", "GpuPartitionPolicy"}; }

Json CrdSchema(std::string_view kind) {
  return kind == "GpuInventory" ? GpuInventorySchema() : GpuPartitionPolicySchema();
}

Json CrdManifest(std::string_view kind) {
  CrdNames names = kind == "GpuInventory"
                       ? CrdNames{"GpuInventory", "gpuinventories", "gpuinventory", "gpuinv"}
                       : CrdNames{"GpuPartitionPolicy", "gpupartitionpolicies",
                                  "gpupartitionpolicy", "gpupolicy"};
  Json version = {{"name", "v1alpha1"},
                  {"served", true},
                  {"storage", true},
                  {"schema", {{"openAPIV3Schema", CrdSchema(kind)}}},
                  {"subresources", {{"status", Json::object()}}},
                  {"additionalPrinterColumns", PrinterColumns(kind)}};
  return {{"apiVersion", "apiextensions.k8s.io/v1"},
          {"kind", "CustomResourceDefinition"},
          {"metadata", {{"name", StrCat(names.plural, ".", kTesseraGroup)}}},
          {"spec",
           {{"group", kTesseraGroup},
            {"scope", "Cluster"},
            {"names",
             {{"kind", names.kind},
              {"listKind", StrCat(names.kind, "List")},
              {"plural", names.plural},
              {"singular", names.singular},
              {"shortNames", Json::array({names.short_name})}}},
            {"versions", Json::array({version})}}}};
}

}  // namespace tessera::api
