// Quantity::Parse on arbitrary bytes: never crashes, and whatever parses prints a form that parses
// back to the same value and prints the same way again (the server's round-trip property).
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "tessera/api/quantity.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<tessera::api::Quantity> q = tessera::api::Quantity::Parse(text);
  if (!q.ok()) return 0;
  std::string printed = q->ToString();
  absl::StatusOr<tessera::api::Quantity> again = tessera::api::Quantity::Parse(printed);
  if (!again.ok() || !(*again == *q) || again->ToString() != printed) std::abort();
  (void)q->Value();
  (void)q->MilliValue();
  (void)q->ToInt64();
  return 0;
}
