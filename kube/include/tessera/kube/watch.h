#ifndef TESSERA_KUBE_WATCH_H_
#define TESSERA_KUBE_WATCH_H_

// The body of a watch response is a stream of JSON objects {"type": ..., "object": {...}}, one
// after another, arriving in chunks of any size (an event may be split anywhere, a chunk may hold
// many events). WatchDecoder buffers and splits it without assuming newlines or chunk boundaries.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "tessera/api/json_decode.h"

namespace tessera::kube {

enum class EventType { kAdded, kModified, kDeleted, kBookmark, kError };
std::string_view EventTypeName(EventType type);

struct WatchEvent {
  EventType type = EventType::kAdded;
  api::Json object;
};

class WatchDecoder {
 public:
  static constexpr std::size_t kMaxEventBytes = 64 << 20;

  // Appends `chunk`; complete events are appended to `out`. An error (malformed JSON, an unknown
  // event type, text between events, an event above kMaxEventBytes) leaves the decoder unusable:
  // the caller restarts the watch.
  absl::Status Feed(std::string_view chunk, std::vector<WatchEvent>* out);
  // Bytes of an incomplete event held back.
  std::size_t buffered() const { return buffer_.size(); }

 private:
  std::string buffer_;
  std::size_t scan_ = 0;   // next byte of buffer_ to look at
  std::size_t start_ = 0;  // where the current object began (valid when depth_ > 0)
  int depth_ = 0;
  bool in_string_ = false;
  bool escape_ = false;
  bool failed_ = false;
};

}  // namespace tessera::kube

#endif  // TESSERA_KUBE_WATCH_H_
