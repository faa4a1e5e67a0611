#include "tessera/kube/watch.h"

#include "tessera/api/strings.h"

namespace tessera::kube {
namespace {

bool ParseType(std::string_view s, EventType* out) {
  static constexpr std::pair<std::string_view, EventType> kTypes[] = {
      {"ADDED", EventType::kAdded},
      {"MODIFIED", EventType::kModified},
      {"DELETED", EventType::kDeleted},
      {"BOOKMARK", EventType::kBookmark},
      {"ERROR", EventType::kError}};
  for (const auto& [name, type] : kTypes) {
    if (s == name) {
      *out = type;
      return true;
    }
  }
  return false;
}

bool IsSpace(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

}  // namespace

std::string_view EventTypeName(EventType type) {
  switch (type) {
    case EventType::kAdded:
      return "ADDED";
    case EventType::kModified:
      return "MODIFIED";
    case EventType::kDeleted:
      return "DELETED";
    case EventType::kBookmark:
      return "BOOKMARK";
    case EventType::kError:
      return "ERROR";
  }
  return "?";
}

absl::Status WatchDecoder::Feed(std::string_view chunk, std::vector<WatchEvent>* out) {
  if (failed_) return absl::FailedPreconditionError("watch stream: decoder already failed");
  auto fail = [&](std::string what) {
    failed_ = true;
    return absl::DataLossError(StrCat("watch stream: ", what));
  };
  buffer_.append(chunk);
  const char* data = buffer_.data();
  const std::size_t size = buffer_.size();
  std::size_t consumed = 0;  // bytes before this are done with
  std::size_t i = scan_;
  for (; i < size; ++i) {
    const char c = data[i];
    if (depth_ == 0) {
      if (IsSpace(c)) {
        consumed = i + 1;
        continue;
      }
      if (c != '{') return fail(StrCat("unexpected '", std::string(1, c), "' between events"));
      start_ = i;
      depth_ = 1;
      continue;
    }
    if (in_string_) {
      if (escape_) {
        escape_ = false;
      } else if (c == '\\') {
        escape_ = true;
      } else if (c == '"') {
        in_string_ = false;
      }
      continue;
    }
    if (c == '"') {
      in_string_ = true;
    } else if (c == '{' || c == '[') {
      ++depth_;
    } else if (c == '}' || c == ']') {
      if (--depth_ > 0) continue;
      if (c != '}') return fail("unbalanced brackets");
      api::Json event =
          api::Json::parse(data + start_, data + i + 1, nullptr, /*allow_exceptions=*/false);
      if (event.is_discarded()) return fail(StrCat("malformed JSON event at byte ", start_));
      if (!event.is_object() || !event.contains("type") || !event["type"].is_string() ||
          !event.contains("object") || !event["object"].is_object()) {
        return fail("an event without a string \"type\" and an object \"object\"");
      }
      WatchEvent e;
      if (!ParseType(event["type"].get_ref<const std::string&>(), &e.type)) {
        return fail(StrCat("unknown event type \"", event["type"].get<std::string>(), "\""));
      }
      e.object = std::move(event["object"]);
      out->push_back(std::move(e));
      consumed = i + 1;
    }
  }
  if (depth_ > 0 && i - start_ > kMaxEventBytes)
    return fail(StrCat("an event larger than ", kMaxEventBytes, " bytes"));
  const std::size_t drop = depth_ > 0 ? start_ : consumed;
  buffer_.erase(0, drop);
  start_ -= depth_ > 0 ? drop : 0;
  scan_ = buffer_.size();
  return absl::OkStatus();
}

}  // namespace tessera::kube
