#include "tessera/api/yaml.h"

#include <charconv>
#include <regex>

#include "yaml-cpp/yaml.h"

namespace tessera::api {
namespace {

bool LooksLikeInt(const std::string& s) {
  static const std::regex kInt(R"([-+]?(0|[1-9][0-9]*))");
  return std::regex_match(s, kInt);
}

bool LooksLikeFloat(const std::string& s) {
  static const std::regex kFloat(R"([-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?)");
  return std::regex_match(s, kFloat);
}

bool IsNullWord(const std::string& s) { return s == "null" || s == "Null" || s == "NULL" || s == "~"; }
bool IsTrueWord(const std::string& s) { return s == "true" || s == "True" || s == "TRUE"; }
bool IsFalseWord(const std::string& s) { return s == "false" || s == "False" || s == "FALSE"; }

absl::StatusOr<Json> ToJson(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
      return Json(nullptr);
    case YAML::NodeType::Scalar: {
      const std::string& s = node.Scalar();
      if (node.Tag() == "!") return Json(s);  // quoted: always a string
      if (IsNullWord(s)) return Json(nullptr);
      if (IsTrueWord(s)) return Json(true);
      if (IsFalseWord(s)) return Json(false);
      if (LooksLikeInt(s)) {
        int64_t v = 0;
        std::string_view digits = s[0] == '+' ? std::string_view(s).substr(1) : std::string_view(s);
        auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
        if (ec == std::errc() && end == digits.data() + digits.size()) return Json(v);
      }
      if (LooksLikeFloat(s)) return Json(std::stod(s));
      return Json(s);
    }
    case YAML::NodeType::Sequence: {
      Json out = Json::array();
      for (const YAML::Node& item : node) {
        absl::StatusOr<Json> v = ToJson(item);
        if (!v.ok()) return v.status();
        out.push_back(*std::move(v));
      }
      return out;
    }
    case YAML::NodeType::Map: {
      Json out = Json::object();
      for (const auto& entry : node) {
        if (!entry.first.IsScalar()) {
          return absl::InvalidArgumentError(StrCat(
              "invalid YAML at line ", entry.first.Mark().line + 1, ": keys must be scalars"));
        }
        const std::string& key = entry.first.Scalar();
        if (out.contains(key)) {
          return absl::InvalidArgumentError(StrCat("invalid YAML at line ",
                                                         entry.first.Mark().line + 1,
                                                         ": duplicate field \"", key, "\""));
        }
        absl::StatusOr<Json> v = ToJson(entry.second);
        if (!v.ok()) return v.status();
        out[key] = *std::move(v);
      }
      return out;
    }
  }
  return Json(nullptr);
}

bool NeedsQuotes(const std::string& s) {
  return s.empty() || IsNullWord(s) || IsTrueWord(s) || IsFalseWord(s) || LooksLikeInt(s) ||
         LooksLikeFloat(s) || s == "yes" || s == "no" || s == "on" || s == "off" || s == "y" ||
         s == "n";
}

void Emit(YAML::Emitter& out, const Json& value) {
  switch (value.type()) {
    case Json::value_t::object:
      out << YAML::BeginMap;
      for (const auto& [key, item] : value.items()) {
        out << YAML::Key << key << YAML::Value;
        Emit(out, item);
      }
      out << YAML::EndMap;
      break;
    case Json::value_t::array:
      out << YAML::BeginSeq;
      for (const Json& item : value) Emit(out, item);
      out << YAML::EndSeq;
      break;
    case Json::value_t::string: {
      const std::string& s = value.get_ref<const std::string&>();
      if (NeedsQuotes(s)) out << YAML::DoubleQuoted;
      out << s;
      break;
    }
    case Json::value_t::boolean:
      out << (value.get<bool>() ? "true" : "false");
      break;
    case Json::value_t::null:
      out << YAML::Null;
      break;
    default:
      out << value.dump();
      break;
  }
}

}  // namespace

absl::StatusOr<std::vector<Json>> ParseYamlDocuments(std::string_view text) {
  std::vector<YAML::Node> nodes;
  try {
    nodes = YAML::LoadAll(std::string(text));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(StrCat("invalid YAML at line ", e.mark.line + 1,
                                                   ", column ", e.mark.column + 1, ": ", e.msg));
  }
  std::vector<Json> out;
  for (const YAML::Node& node : nodes) {
    if (node.IsNull()) continue;
    absl::StatusOr<Json> json = ToJson(node);
    if (!json.ok()) return json.status();
    out.push_back(*std::move(json));
  }
  return out;
}

absl::StatusOr<Json> ParseYaml(std::string_view text) {
  absl::StatusOr<std::vector<Json>> docs = ParseYamlDocuments(text);
  if (!docs.ok()) return docs.status();
  if (docs->size() != 1) {
    return absl::InvalidArgumentError(
        StrCat("expected exactly one YAML document, found ", docs->size()));
  }
  return std::move(docs->front());
}

std::string ToYaml(const Json& value) {
  YAML::Emitter out;
  Emit(out, value);
  return std::string(out.c_str()) + "\n";
}

}  // namespace tessera::api
