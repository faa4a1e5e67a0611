// The opaque config a claim carries: arbitrary JSON text through strict decoding. A config that
// decodes must encode to JSON that decodes to the same config.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "tessera/api/gpu_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<tessera::api::Json> json = tessera::api::ParseJson(text);
  if (!json.ok()) return 0;
  absl::StatusOr<tessera::api::GpuConfig> config = tessera::api::ParseGpuConfig(*json);
  if (!config.ok()) return 0;
  absl::StatusOr<tessera::api::GpuConfig> again =
      tessera::api::ParseGpuConfig(tessera::api::Json(*config));
  if (!again.ok() || !(*again == *config)) std::abort();
  return 0;
}
