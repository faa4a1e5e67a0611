// The watch-stream decoder on arbitrary bytes: never crashes, and how the bytes are chunked never
// changes the outcome. The first byte picks a split pattern; the rest is the stream. Fed whole, fed
// in two parts, and fed in chunks of k bytes, the decoder must produce the same events (compared
// by type and serialised object) and fail or succeed alike.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "tessera/kube/watch.h"

namespace {

struct Outcome {
  bool ok = true;
  std::vector<std::string> events;
  bool operator==(const Outcome&) const = default;
};

Outcome Run(std::string_view stream, std::size_t chunk, std::size_t first_cut) {
  tessera::kube::WatchDecoder decoder;
  std::vector<tessera::kube::WatchEvent> events;
  Outcome out;
  std::vector<std::string_view> pieces;
  if (chunk == 0) {
    pieces = {stream.substr(0, first_cut), stream.substr(first_cut)};
  } else {
    for (std::size_t i = 0; i < stream.size(); i += chunk)
      pieces.push_back(stream.substr(i, chunk));
  }
  for (std::string_view p : pieces) {
    if (!decoder.Feed(p, &events).ok()) {
      out.ok = false;
      break;
    }
  }
  for (const auto& e : events) {
    out.events.push_back(std::string(tessera::kube::EventTypeName(e.type)) + e.object.dump());
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::size_t pattern = data[0];
  std::string_view stream(reinterpret_cast<const char*>(data + 1), size - 1);
  const Outcome whole = Run(stream, stream.size() + 1, 0);
  const Outcome cut = Run(stream, 0, stream.empty() ? 0 : pattern % (stream.size() + 1));
  const Outcome chunked = Run(stream, 1 + pattern % 17, 0);
  // A failure may come earlier or later depending on the split, but events before it must agree.
  if (whole.ok != cut.ok || whole.ok != chunked.ok) std::abort();
  if (whole.ok && (!(whole == cut) || !(whole == chunked))) std::abort();
  return 0;
}
