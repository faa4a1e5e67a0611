#include "tessera/api/validate.h"

#include <functional>

#include "tessera/api/crd.h"
#include "tessera/api/gpu_config.h"
#include "tessera/api/resource.h"
#include "tessera/api/strings.h"

namespace tessera::api {
namespace {

struct Handler {
  std::string_view api_version;
  std::string_view kind;
  std::function<absl::StatusOr<Json>(const Json&)> validate;
};

template <typename T>
absl::StatusOr<Json> RoundTrip(const Json& doc, UnknownFields unknown) {
  absl::StatusOr<T> decoded = DecodeJson<T>(doc, unknown);
  if (!decoded.ok()) return decoded.status();
  return Json(*decoded);
}

absl::StatusOr<Json> ValidateGpuConfig(const Json& doc) {
  absl::StatusOr<GpuConfig> config = ParseGpuConfig(doc);
  if (!config.ok()) return config.status();
  return Json(*config);
}

const std::vector<Handler>& Handlers() {
  static const auto* handlers = new std::vector<Handler>{
      {kTesseraApiVersion, "GpuConfig", ValidateGpuConfig},
      {kTesseraApiVersion, "MigConfig", ValidateGpuConfig},
      {kTesseraApiVersion, "GpuInventory",
       [](const Json& d) { return RoundTrip<GpuInventory>(d, UnknownFields::kReject); }},
      {kTesseraApiVersion, "GpuPartitionPolicy",
       [](const Json& d) { return RoundTrip<GpuPartitionPolicy>(d, UnknownFields::kReject); }},
      {kResourceApiVersion, "ResourceSlice",
       [](const Json& d) { return RoundTrip<ResourceSlice>(d, UnknownFields::kIgnore); }},
      {kResourceApiVersion, "ResourceClaim",
       [](const Json& d) { return RoundTrip<ResourceClaim>(d, UnknownFields::kIgnore); }},
      {kResourceApiVersion, "ResourceClaimTemplate",
       [](const Json& d) { return RoundTrip<ResourceClaimTemplate>(d, UnknownFields::kIgnore); }},
      {kResourceApiVersion, "DeviceClass",
       [](const Json& d) { return RoundTrip<DeviceClass>(d, UnknownFields::kIgnore); }},
  };
  return *handlers;
}

}  // namespace

std::vector<std::string> ValidatableKinds() {
  std::vector<std::string> out;
  for (const Handler& h : Handlers()) out.push_back(StrCat(h.api_version, "/", h.kind));
  return out;
}

absl::StatusOr<Json> ValidateDocument(const Json& doc) {
  if (!doc.is_object()) {
    return absl::InvalidArgumentError(StrCat("expected an object, got ", Describe(doc)));
  }
  auto text_field = [&doc](const char* name) {
    auto it = doc.find(name);
    return it != doc.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  std::string api_version = text_field("apiVersion");
  std::string kind = text_field("kind");
  for (const Handler& h : Handlers()) {
    if (h.api_version == api_version && h.kind == kind) return h.validate(doc);
  }
  return absl::InvalidArgumentError(
      StrCat("apiVersion \"", api_version, "\" kind \"", kind,
             "\" is not a kind tessera reads (allowed: ", StrJoin(ValidatableKinds(), ", "), ")"));
}

}  // namespace tessera::api
