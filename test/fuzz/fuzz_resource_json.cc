// Claim and slice JSON as the API server (or an attacker with write access) could send it: decode
// leniently, re-encode, decode again, and expect the same object.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "tessera/api/resource.h"

namespace {

template <typename T>
void RoundTrip(const tessera::api::Json& json) {
  using tessera::api::UnknownFields;
  absl::StatusOr<T> decoded = tessera::api::DecodeJson<T>(json, UnknownFields::kIgnore);
  if (!decoded.ok()) return;
  absl::StatusOr<T> again =
      tessera::api::DecodeJson<T>(tessera::api::Json(*decoded), UnknownFields::kReject);
  if (!again.ok() || !(*again == *decoded)) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<tessera::api::Json> json = tessera::api::ParseJson(text);
  if (!json.ok()) return 0;
  RoundTrip<tessera::api::ResourceClaim>(*json);
  RoundTrip<tessera::api::ResourceSlice>(*json);
  return 0;
}
