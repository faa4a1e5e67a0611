#ifndef TESSERA_PARTITIONER_SRC_TEXT_H_
#define TESSERA_PARTITIONER_SRC_TEXT_H_

// Parsing of numbers and fields in request strings and traces; private to partitioner/src.

#include <charconv>
#include <cmath>
#include <string_view>
#include <vector>

namespace tessera::partitioner::internal {

// The whole of `text` as an int.
inline bool ParseInt(std::string_view text, int* out) {
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && ptr == text.data() + text.size();
}

// The whole of `text` as a finite double.
inline bool ParseFiniteDouble(std::string_view text, double* out) {
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && ptr == text.data() + text.size() && std::isfinite(*out);
}

// `s` without leading and trailing blanks (and a trailing CR).
inline std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

// `s` cut at every `sep` ("a,,b" -> {"a", "", "b"}; "" -> {""}).
inline std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  while (true) {
    const std::size_t at = s.find(sep);
    out.push_back(s.substr(0, at));
    if (at == std::string_view::npos) return out;
    s.remove_prefix(at + 1);
  }
}

}  // namespace tessera::partitioner::internal

#endif  // TESSERA_PARTITIONER_SRC_TEXT_H_
