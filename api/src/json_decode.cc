#include "tessera/api/json_decode.h"

#include <limits>

#include "tessera/api/strings.h"

namespace tessera::api {
namespace {

constexpr size_t kMaxDescribed = 64;

bool IsIdentifier(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    if (!ok) return false;
  }
  return true;
}

std::string TypeName(const Json& value) {
  switch (value.type()) {
    case Json::value_t::string:
      return "string";
    case Json::value_t::boolean:
      return "boolean";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
      return "integer";
    case Json::value_t::number_float:
      return "number";
    case Json::value_t::array:
      return "list";
    case Json::value_t::object:
      return "object";
    default:
      return "null";
  }
}

}  // namespace

DecodeContext DecodeContext::Field(std::string_view name) const {
  if (IsIdentifier(name)) {
    return DecodeContext(unknown_, path_.empty() ? std::string(name) : StrCat(path_, ".", name));
  }
  // Keys such as "gpu.tessera.dev/profile" are shown the way kubectl's JSONPath would quote them.
  return DecodeContext(unknown_, StrCat(path_, "[\"", name, "\"]"));
}

DecodeContext DecodeContext::Index(size_t i) const {
  return DecodeContext(unknown_, StrCat(path_, "[", i, "]"));
}

absl::Status DecodeContext::Error(std::string_view message) const {
  return absl::InvalidArgumentError(StrCat(path(), ": ", message));
}

std::string Describe(const Json& value) {
  std::string text = value.dump(-1, ' ', false, Json::error_handler_t::replace);
  if (text.size() > kMaxDescribed) text = text.substr(0, kMaxDescribed - 3) + "...";
  if (value.is_string() || value.is_null()) return text;
  return StrCat(TypeName(value), " ", text);
}

absl::StatusOr<Json> ParseJson(std::string_view text) {
  // Track the keys of every open object to find duplicates.
  std::vector<std::set<std::string>> open_objects;
  std::string duplicate;
  auto callback = [&](int /*depth*/, Json::parse_event_t event, Json& parsed) {
    switch (event) {
      case Json::parse_event_t::object_start:
        open_objects.emplace_back();
        break;
      case Json::parse_event_t::object_end:
        if (!open_objects.empty()) open_objects.pop_back();
        break;
      case Json::parse_event_t::key:
        if (!open_objects.empty() &&
            !open_objects.back().insert(parsed.get<std::string>()).second && duplicate.empty()) {
          duplicate = parsed.get<std::string>();
        }
        break;
      default:
        break;
    }
    return true;
  };
  try {
    Json out = Json::parse(text.begin(), text.end(), callback);
    if (!duplicate.empty()) {
      return absl::InvalidArgumentError(
          StrCat("invalid JSON: duplicate field \"", duplicate, "\""));
    }
    return out;
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(StrCat("invalid JSON: ", e.what()));
  }
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, std::string* out) {
  if (!in.is_string()) return ctx.Error(StrCat("expected a string, got ", Describe(in)));
  *out = in.get<std::string>();
  return absl::OkStatus();
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, bool* out) {
  if (!in.is_boolean()) return ctx.Error(StrCat("expected true or false, got ", Describe(in)));
  *out = in.get<bool>();
  return absl::OkStatus();
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, int64_t* out) {
  // nlohmann stores non-negative integers as unsigned: those above int64 max do not fit.
  if (in.is_number_unsigned()) {
    if (in.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return ctx.Error(StrCat(Describe(in), " does not fit in a 64-bit integer"));
    }
    *out = static_cast<int64_t>(in.get<uint64_t>());
    return absl::OkStatus();
  }
  if (in.is_number_integer()) {
    *out = in.get<int64_t>();
    return absl::OkStatus();
  }
  if (in.is_number_float()) {
    double d = in.get<double>();
    // JSON has one number type; 3.0 is an integer, 3.5 is not. Range first: casting an
    // out-of-range double is undefined.
    if (d > -9.2e18 && d < 9.2e18 && d == static_cast<double>(static_cast<int64_t>(d))) {
      *out = static_cast<int64_t>(d);
      return absl::OkStatus();
    }
  }
  return ctx.Error(StrCat("expected an integer, got ", Describe(in)));
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, int32_t* out) {
  int64_t wide = 0;
  if (absl::Status s = Decode(ctx, in, &wide); !s.ok()) return s;
  if (wide < std::numeric_limits<int32_t>::min() || wide > std::numeric_limits<int32_t>::max()) {
    return ctx.Error(StrCat(wide, " does not fit in a 32-bit integer"));
  }
  *out = static_cast<int32_t>(wide);
  return absl::OkStatus();
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, Quantity* out) {
  std::string text;
  if (in.is_string()) {
    text = in.get<std::string>();
    // The server trims blanks around a quantity string before parsing it.
    size_t first = text.find_first_not_of(" \t\n\r\v\f");
    size_t last = text.find_last_not_of(" \t\n\r\v\f");
    text = first == std::string::npos ? "" : text.substr(first, last - first + 1);
  } else if (in.is_number()) {
    text = in.dump();
  } else {
    return ctx.Error(
        StrCat("expected a quantity such as \"40Gi\" or \"100m\", got ", Describe(in)));
  }
  absl::StatusOr<Quantity> q = Quantity::Parse(text);
  if (!q.ok()) return ctx.Error(std::string(q.status().message()));
  *out = *std::move(q);
  return absl::OkStatus();
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, Json* out) {
  if (!in.is_object()) return ctx.Error(StrCat("expected an object, got ", Describe(in)));
  *out = in;
  return absl::OkStatus();
}

absl::StatusOr<size_t> DecodeChoice(const DecodeContext& ctx, const Json& in,
                                    std::span<const std::string_view> allowed) {
  std::string value;
  if (absl::Status s = Decode(ctx, in, &value); !s.ok()) return s;
  size_t index = 0;
  for (std::string_view candidate : allowed) {
    if (candidate == value) return index;
    ++index;
  }
  return ctx.Error(
      StrCat("unknown value ", Describe(in), " (allowed: ", StrJoin(allowed, ", "), ")"));
}

absl::Status DecodeInRange(const DecodeContext& ctx, const Json& in, int64_t min, int64_t max,
                           int32_t* out) {
  int64_t value = 0;
  if (absl::Status s = Decode(ctx, in, &value); !s.ok()) return s;
  if (value < min || value > max) {
    return ctx.Error(StrCat(value, " is out of range (allowed: ", min, "..", max, ")"));
  }
  *out = static_cast<int32_t>(value);
  return absl::OkStatus();
}

ObjectDecoder::ObjectDecoder(const DecodeContext& ctx, const Json& in) : ctx_(ctx), in_(in) {
  if (!in.is_object()) {
    status_ = ctx.Error(StrCat("expected an object, got ", Describe(in)));
  }
}

const Json* ObjectDecoder::Take(std::string_view key) {
  known_.emplace_back(key);
  if (!status_.ok()) return nullptr;
  auto it = in_.find(key);
  return it == in_.end() ? nullptr : &*it;
}

absl::Status ObjectDecoder::Finish() {
  if (!status_.ok() || ctx_.unknown_fields() == UnknownFields::kIgnore) return status_;
  for (const auto& [key, value] : in_.items()) {
    if (std::find(known_.begin(), known_.end(), key) == known_.end()) {
      return ctx_.Field(key).Error(StrCat("unknown field (allowed: ", StrJoin(known_, ", "), ")"));
    }
  }
  return absl::OkStatus();
}

const Json& JsonAt(const Json& j, std::initializer_list<const char*> path) {
  static const Json kNull;
  const Json* at = &j;
  for (const char* key : path) {
    if (!at->is_object()) return kNull;
    auto it = at->find(key);
    if (it == at->end()) return kNull;
    at = &*it;
  }
  return *at;
}

std::string JsonString(const Json& j, std::initializer_list<const char*> path) {
  const Json& at = JsonAt(j, path);
  if (at.is_string()) return at.get<std::string>();
  if (at.is_number()) return at.dump();
  return "";
}

std::int64_t JsonInt(const Json& j, std::initializer_list<const char*> path) {
  const Json& at = JsonAt(j, path);
  return at.is_number_integer() ? at.get<std::int64_t>() : 0;
}

}  // namespace tessera::api
