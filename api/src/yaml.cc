#include "tessera/api/yaml.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
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

bool IsNullWord(const std::string& s) {
  return s == "null" || s == "Null" || s == "NULL" || s == "~";
}
bool IsTrueWord(const std::string& s) { return s == "true" || s == "True" || s == "TRUE"; }
bool IsFalseWord(const std::string& s) { return s == "false" || s == "False" || s == "FALSE"; }

// line_offset: the line of the document's first line in the whole file, minus one.
absl::StatusOr<Json> ToJson(const YAML::Node& node, int line_offset) {
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
      if (LooksLikeFloat(s)) {
        double d = std::strtod(s.c_str(), nullptr);
        if (std::isinf(d)) {
          return absl::InvalidArgumentError(StrCat("invalid YAML at line ",
                                                   line_offset + node.Mark().line + 1, ": number ",
                                                   s, " is out of range"));
        }
        return Json(d);
      }
      return Json(s);
    }
    case YAML::NodeType::Sequence: {
      Json out = Json::array();
      for (const YAML::Node& item : node) {
        absl::StatusOr<Json> v = ToJson(item, line_offset);
        if (!v.ok()) return v.status();
        out.push_back(*std::move(v));
      }
      return out;
    }
    case YAML::NodeType::Map: {
      Json out = Json::object();
      for (const auto& entry : node) {
        if (!entry.first.IsScalar()) {
          return absl::InvalidArgumentError(StrCat("invalid YAML at line ",
                                                   line_offset + entry.first.Mark().line + 1,
                                                   ": keys must be scalars"));
        }
        const std::string& key = entry.first.Scalar();
        if (out.contains(key)) {
          return absl::InvalidArgumentError(StrCat("invalid YAML at line ",
                                                   line_offset + entry.first.Mark().line + 1,
                                                   ": duplicate field \"", key, "\""));
        }
        absl::StatusOr<Json> v = ToJson(entry.second, line_offset);
        if (!v.ok()) return v.status();
        out[key] = *std::move(v);
      }
      return out;
    }
  }
  return Json(nullptr);
}

bool HasControlCharacter(const std::string& s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) return true;
  }
  return false;
}

// Length of the valid UTF-8 prefix of text (RFC 3629: no overlong forms, no surrogates, nothing
// above U+10FFFF; yaml-cpp replaces such sequences with U+FFFD, which would change the text).
size_t ValidUtf8Prefix(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    size_t len = 0;
    unsigned char lo = 0x80, hi = 0xbf;  // allowed range of the second byte
    if (c < 0x80) {
      len = 1;
    } else if (c >= 0xc2 && c <= 0xdf) {
      len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      if (c == 0xe0) lo = 0xa0;
      if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      if (c == 0xf0) lo = 0x90;
      if (c == 0xf4) hi = 0x8f;
    }
    if (len == 0 || i + len > text.size()) return i;
    for (size_t k = 1; k < len; ++k) {
      unsigned char b = static_cast<unsigned char>(text[i + k]);
      if (k == 1 ? (b < lo || b > hi) : (b & 0xc0) != 0x80) return i;
    }
    i += len;
  }
  return i;
}

bool NeedsQuotes(const std::string& s) {
  return s.empty() || HasControlCharacter(s) || IsNullWord(s) || IsTrueWord(s) || IsFalseWord(s) ||
         LooksLikeInt(s) || LooksLikeFloat(s) || s == "yes" || s == "no" || s == "on" ||
         s == "off" || s == "y" || s == "n";
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
  // Documents are split the way kubectl's YAML reader splits them (a line starting with "---",
  // followed by nothing but blanks or a comment) and each is loaded on its own: yaml-cpp 0.7's
  // LoadAll loops forever on some malformed input (found by fuzz_crd_yaml, e.g. " ,").
  if (size_t valid = ValidUtf8Prefix(text); valid != text.size()) {
    return absl::InvalidArgumentError(
        StrCat("invalid YAML: not UTF-8 at byte ", valid, " (Kubernetes objects are UTF-8 text)"));
  }
  // YAML allows no raw C0 control characters but tab, LF and CR (escapes in double-quoted strings
  // are fine). yaml-cpp reads some anyway and turns a NUL followed by text into bytes that are not
  // UTF-8 (found by fuzz_crd_yaml), so refuse them up front, with their position. DEL (0x7F) is
  // left alone: yaml-cpp reads and writes it unchanged.
  for (size_t i = 0, line = 1, column = 1; i < text.size(); ++i, ++column) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == '\n') {
      ++line;
      column = 0;
    } else if (c < 0x20 && c != '\t' && c != '\r') {
      char hex[8];
      std::snprintf(hex, sizeof(hex), "0x%02X", c);
      return absl::InvalidArgumentError(
          StrCat("invalid YAML at line ", line, ", column ", column, ": control character ", hex,
                 " (write it as an escape in a double-quoted string)"));
    }
  }
  std::vector<Json> out;
  std::string document;
  int first_line = 1;
  int line_number = 0;
  auto flush = [&]() -> absl::Status {
    YAML::Node node;
    try {
      node = YAML::Load(document);
    } catch (const YAML::Exception& e) {
      return absl::InvalidArgumentError(StrCat("invalid YAML at line ", first_line + e.mark.line,
                                               ", column ", e.mark.column + 1, ": ", e.msg));
    }
    document.clear();
    if (node.IsNull()) return absl::OkStatus();
    absl::StatusOr<Json> json = ToJson(node, first_line - 1);
    if (!json.ok()) return json.status();
    out.push_back(*std::move(json));
    return absl::OkStatus();
  };
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    ++line_number;
    if (line.starts_with("---")) {
      std::string_view rest = line.substr(3);
      size_t content = rest.find_first_not_of(" \t\r");
      if (content != std::string_view::npos && rest[content] != '#') {
        return absl::InvalidArgumentError(
            StrCat("invalid YAML at line ", line_number, ": only a comment may follow \"---\""));
      }
      if (absl::Status s = flush(); !s.ok()) return s;
      first_line = line_number + 1;
    } else {
      document.append(line).push_back('\n');
    }
    pos = end + 1;
  }
  if (absl::Status s = flush(); !s.ok()) return s;
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
