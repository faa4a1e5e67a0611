// CRD objects and any other document as an admin would write them, in YAML: ParseYaml plus
// ValidateDocument (which dispatches on kind). Whatever validates must validate again unchanged.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "tessera/api/validate.h"
#include "tessera/api/yaml.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<tessera::api::Json> json = tessera::api::ParseYaml(text);
  if (!json.ok()) return 0;
  absl::StatusOr<tessera::api::Json> valid = tessera::api::ValidateDocument(*json);
  if (!valid.ok()) return 0;
  absl::StatusOr<tessera::api::Json> again = tessera::api::ValidateDocument(*valid);
  if (!again.ok() || *again != *valid) std::abort();
  // The YAML we print must read back as the same document.
  absl::StatusOr<tessera::api::Json> reread = tessera::api::ParseYaml(tessera::api::ToYaml(*valid));
  if (!reread.ok() || *reread != *valid) std::abort();
  return 0;
}
