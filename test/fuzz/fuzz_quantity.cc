// Quantity::Parse on arbitrary bytes: never crashes, and whatever parses prints a form that parses
// back to the same value. Printing is stable after one round: a binary-SI value that is not a whole
// number of Ki prints bare digits, which read back as decimal SI ("1023994879936000" ->
// "1023994879936k"), exactly as on the API server.
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
  if (!again.ok() || !(*again == *q)) std::abort();
  std::string settled = again->ToString();
  absl::StatusOr<tessera::api::Quantity> third = tessera::api::Quantity::Parse(settled);
  if (!third.ok() || !(*third == *q) || third->ToString() != settled) std::abort();
  (void)q->Value();
  (void)q->MilliValue();
  (void)q->ToInt64();
  return 0;
}
