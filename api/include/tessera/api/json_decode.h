// Path-tracking JSON decoding shared by every decoder that takes outside input.
//
// Each type T of the API provides
//   absl::Status Decode(const DecodeContext& ctx, const Json& in, T* out);
//   void to_json(Json& out, const T& in);   // nlohmann's hook, used by Encode()
// and builds its decoder from ObjectDecoder. Errors name the JSON path ("spec.devices[2].name"),
// the offending value and what is allowed, e.g.
//   sharing.mps.activeThreadPercentage: 150 is out of range (allowed: 1..100)
//
// Strictness is a property of the context: objects from the API server are decoded leniently
// (newer servers add fields); configuration written by people is decoded strictly (an unknown
// field is a typo, and a typo must not silently become a default).
#ifndef TESSERA_API_JSON_DECODE_H_
#define TESSERA_API_JSON_DECODE_H_

#include <cstdint>
#include <initializer_list>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "tessera/api/quantity.h"
#include "tessera/api/strings.h"

namespace tessera::api {

using Json = nlohmann::json;

enum class UnknownFields { kIgnore, kReject };

class DecodeContext {
 public:
  explicit DecodeContext(UnknownFields unknown = UnknownFields::kIgnore, std::string path = "")
      : unknown_(unknown), path_(std::move(path)) {}

  DecodeContext Field(std::string_view name) const;
  DecodeContext Index(size_t i) const;
  DecodeContext WithUnknownFields(UnknownFields unknown) const {
    DecodeContext copy = *this;
    copy.unknown_ = unknown;
    return copy;
  }

  UnknownFields unknown_fields() const { return unknown_; }
  // "<root>" for the top level.
  std::string path() const { return path_.empty() ? "<root>" : path_; }

  // "<path>: <message>" as an InvalidArgument status.
  absl::Status Error(std::string_view message) const;

 private:
  UnknownFields unknown_;
  std::string path_;
};

// A short, printable rendering of a JSON value for error messages (long values are cut).
std::string Describe(const Json& value);

// Parses text as JSON. Duplicate keys in one object are an error (the API server's strict
// field validation rejects them too); errors carry the byte offset.
absl::StatusOr<Json> ParseJson(std::string_view text);

// Scalars.
absl::Status Decode(const DecodeContext& ctx, const Json& in, std::string* out);
absl::Status Decode(const DecodeContext& ctx, const Json& in, bool* out);
absl::Status Decode(const DecodeContext& ctx, const Json& in, int64_t* out);
absl::Status Decode(const DecodeContext& ctx, const Json& in, int32_t* out);
// A quantity as a string, or as a JSON number (which the API server accepts too).
absl::Status Decode(const DecodeContext& ctx, const Json& in, Quantity* out);
// Any JSON object, kept as it is (RawExtension-style payloads).
absl::Status Decode(const DecodeContext& ctx, const Json& in, Json* out);

// A string that must be one of `allowed` (case-sensitive, as Kubernetes enums are); returns its
// index. The error lists the allowed values.
absl::StatusOr<size_t> DecodeChoice(const DecodeContext& ctx, const Json& in,
                                    std::span<const std::string_view> allowed);
inline absl::StatusOr<size_t> DecodeChoice(const DecodeContext& ctx, const Json& in,
                                           std::initializer_list<std::string_view> allowed) {
  return DecodeChoice(ctx, in, std::span<const std::string_view>(allowed.begin(), allowed.size()));
}

// An integer in [min, max]; the error names the range.
absl::Status DecodeInRange(const DecodeContext& ctx, const Json& in, int64_t min, int64_t max,
                           int32_t* out);

template <typename T>
absl::Status Decode(const DecodeContext& ctx, const Json& in, std::vector<T>* out) {
  if (in.is_null()) {
    out->clear();
    return absl::OkStatus();
  }
  if (!in.is_array()) return ctx.Error(StrCat("expected a list, got ", Describe(in)));
  out->clear();
  out->reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    T item{};
    if (absl::Status s = Decode(ctx.Index(i), in[i], &item); !s.ok()) return s;
    out->push_back(std::move(item));
  }
  return absl::OkStatus();
}

template <typename T>
absl::Status Decode(const DecodeContext& ctx, const Json& in, std::map<std::string, T>* out) {
  if (in.is_null()) {
    out->clear();
    return absl::OkStatus();
  }
  if (!in.is_object()) return ctx.Error(StrCat("expected an object, got ", Describe(in)));
  out->clear();
  for (const auto& [key, value] : in.items()) {
    T item{};
    if (absl::Status s = Decode(ctx.Field(key), value, &item); !s.ok()) return s;
    out->emplace(key, std::move(item));
  }
  return absl::OkStatus();
}

template <typename T>
absl::Status Decode(const DecodeContext& ctx, const Json& in, std::optional<T>* out) {
  if (in.is_null()) {
    out->reset();
    return absl::OkStatus();
  }
  T value{};
  if (absl::Status s = Decode(ctx, in, &value); !s.ok()) return s;
  *out = std::move(value);
  return absl::OkStatus();
}

// Reads the fields of one JSON object. Usage:
//   ObjectDecoder d(ctx, in);
//   d.Required("name", &out->name);
//   d.Optional("count", &out->count);
//   return d.Finish();
// The first error wins; later calls are no-ops. Finish() reports unknown fields under
// UnknownFields::kReject, naming the allowed ones.
class ObjectDecoder {
 public:
  ObjectDecoder(const DecodeContext& ctx, const Json& in);

  template <typename T>
  void Required(std::string_view key, T* out) {
    const Json* value = Take(key);
    if (!status_.ok()) return;
    if (value == nullptr || value->is_null()) {
      status_ = ctx_.Field(key).Error("required field is missing");
      return;
    }
    status_ = Decode(ctx_.Field(key), *value, out);
  }

  // Leaves *out unchanged when the field is absent or null.
  template <typename T>
  void Optional(std::string_view key, T* out) {
    const Json* value = Take(key);
    if (!status_.ok() || value == nullptr || value->is_null()) return;
    status_ = Decode(ctx_.Field(key), *value, out);
  }

  // Like Optional, with a custom decoder: fn(const DecodeContext&, const Json&) -> absl::Status.
  template <typename Fn>
  void OptionalWith(std::string_view key, Fn&& fn) {
    const Json* value = Take(key);
    if (!status_.ok() || value == nullptr || value->is_null()) return;
    status_ = fn(ctx_.Field(key), *value);
  }

  template <typename Fn>
  void RequiredWith(std::string_view key, Fn&& fn) {
    const Json* value = Take(key);
    if (!status_.ok()) return;
    if (value == nullptr || value->is_null()) {
      status_ = ctx_.Field(key).Error("required field is missing");
      return;
    }
    status_ = fn(ctx_.Field(key), *value);
  }

  // Marks a field as known without decoding it (e.g. `apiVersion` checked elsewhere).
  void Ignore(std::string_view key) { Take(key); }

  // Records a validation error for a field that decoded fine but holds a bad value.
  void Fail(absl::Status status) {
    if (status_.ok()) status_ = std::move(status);
  }
  const DecodeContext& context() const { return ctx_; }
  bool ok() const { return status_.ok(); }

  absl::Status Finish();

 private:
  const Json* Take(std::string_view key);

  DecodeContext ctx_;
  const Json& in_;
  absl::Status status_;
  std::vector<std::string> known_;
};

// Field decoders for ObjectDecoder::RequiredWith / OptionalWith, shared by every decoder.

// One of `names`, stored as the enum value with the same index.
template <typename E>
auto EnumField(E* out, std::span<const std::string_view> names) {
  return [out, names](const DecodeContext& c, const Json& v) {
    absl::StatusOr<size_t> index = DecodeChoice(c, v, names);
    if (index.ok()) *out = static_cast<E>(*index);
    return index.status();
  };
}

template <typename E>
auto EnumField(std::optional<E>* out, std::span<const std::string_view> names) {
  return [out, names](const DecodeContext& c, const Json& v) {
    E value{};
    absl::Status s = EnumField(&value, names)(c, v);
    if (s.ok()) *out = value;
    return s;
  };
}

// An integer in [min, max], into an int32_t or a std::optional<int32_t>.
template <typename Out>
auto RangeField(Out* out, int64_t min, int64_t max) {
  return [out, min, max](const DecodeContext& c, const Json& v) {
    int32_t value = 0;
    absl::Status s = DecodeInRange(c, v, min, max, &value);
    if (s.ok()) *out = value;
    return s;
  };
}

// A quantity of bytes: positive and whole (memory limits and minimums).
inline auto PositiveBytesField(std::optional<Quantity>* out) {
  return [out](const DecodeContext& c, const Json& v) {
    Quantity q;
    if (absl::Status s = Decode(c, v, &q); !s.ok()) return s;
    if (q <= Quantity() || !q.ToInt64().has_value()) {
      return c.Error(StrCat("\"", q.ToString(),
                            "\" is not allowed (must be a positive whole number of bytes, "
                            "e.g. \"8Gi\")"));
    }
    *out = q;
    return absl::OkStatus();
  };
}

// Decodes a whole document.
template <typename T>
absl::StatusOr<T> DecodeJson(const Json& in, UnknownFields unknown) {
  T out{};
  if (absl::Status s = Decode(DecodeContext(unknown), in, &out); !s.ok()) return s;
  return out;
}

template <typename T>
absl::StatusOr<T> DecodeJsonText(std::string_view text, UnknownFields unknown) {
  absl::StatusOr<Json> json = ParseJson(text);
  if (!json.ok()) return json.status();
  return DecodeJson<T>(*json, unknown);
}

// Helpers for to_json implementations: fields that Kubernetes marks omitempty are left out.
class ObjectEncoder {
 public:
  template <typename T>
  ObjectEncoder& Set(std::string_view key, const T& value) {
    out_[std::string(key)] = value;
    return *this;
  }
  template <typename T>
  ObjectEncoder& SetOptional(std::string_view key, const std::optional<T>& value) {
    if (value) out_[std::string(key)] = *value;
    return *this;
  }
  // Omitted when empty (strings, lists, maps) or false/zero.
  template <typename T>
  ObjectEncoder& SetNonEmpty(std::string_view key, const T& value) {
    if constexpr (std::is_same_v<T, bool>) {
      if (value) out_[std::string(key)] = value;
    } else if constexpr (std::is_arithmetic_v<T>) {
      if (value != 0) out_[std::string(key)] = value;
    } else {
      if (!value.empty()) out_[std::string(key)] = value;
    }
    return *this;
  }
  Json Build() { return std::move(out_); }
  Json& json() { return out_; }

 private:
  Json out_ = Json::object();
};

// Lenient reads of objects from outside, where any optional field may be missing: they never
// insert and never assert.
// The value at `path` in `j`, or null when a step is missing.
const Json& JsonAt(const Json& j, std::initializer_list<const char*> path);
// The string at `path` (a number printed as JSON); "" when missing or of another type.
std::string JsonString(const Json& j, std::initializer_list<const char*> path);
// The integer at `path`; 0 when missing or of another type.
std::int64_t JsonInt(const Json& j, std::initializer_list<const char*> path);

}  // namespace tessera::api

namespace nlohmann {
template <>
struct adl_serializer<tessera::api::Quantity> {
  static void to_json(json& out, const tessera::api::Quantity& q) { out = q.ToString(); }
};
}  // namespace nlohmann

#endif  // TESSERA_API_JSON_DECODE_H_
