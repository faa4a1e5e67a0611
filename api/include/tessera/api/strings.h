// String building for messages. Debian's abseil is built without std::string_view interop
// (absl::string_view is its own type there), so StrCat cannot take the std::string_view
// that the rest of the tree uses; these two helpers can.
#ifndef TESSERA_API_STRINGS_H_
#define TESSERA_API_STRINGS_H_

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>

namespace tessera {
namespace strings_internal {

inline void Append(std::string& out, std::string_view piece) { out.append(piece); }
inline void Append(std::string& out, char c) { out.push_back(c); }
// Other string views (absl::string_view, as absl::Status::message() returns it).
template <typename T>
requires(!std::is_convertible_v<const T&, std::string_view>) && requires(const T& t) {
  { t.data() } -> std::convertible_to<const char*>;
  { t.size() } -> std::convertible_to<std::size_t>;
}
void Append(std::string& out, const T& text) { out.append(text.data(), text.size()); }
template <typename T>
requires std::is_arithmetic_v<T> &&
    (!std::is_same_v<T, char>)&&(!std::is_same_v<T, bool>)void Append(std::string& out, T value) {
  out.append(std::to_string(value));
}

}  // namespace strings_internal

// Concatenates strings, string views, characters and numbers.
template <typename... Args>
std::string StrCat(const Args&... args) {
  std::string out;
  (strings_internal::Append(out, args), ...);
  return out;
}

// Joins the elements of a range of strings (or string views) with a separator.
template <typename Range>
std::string StrJoin(const Range& range, std::string_view separator) {
  std::string out;
  bool first = true;
  for (const auto& item : range) {
    if (!first) out.append(separator);
    strings_internal::Append(out, item);
    first = false;
  }
  return out;
}

// FNV-1a, 64 bit, as 16 lowercase hex digits: a stable fingerprint of a text (checksums, names
// that must stay the same across runs); not a defence against anyone choosing the input.
inline std::string Fnv1a64Hex(std::string_view text) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : text) h = (h ^ c) * 1099511628211ull;
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i, h >>= 4) out[i] = "0123456789abcdef"[h & 0xf];
  return out;
}

}  // namespace tessera

#endif  // TESSERA_API_STRINGS_H_
