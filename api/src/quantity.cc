#include "tessera/api/quantity.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <limits>

#include "tessera/api/strings.h"

namespace tessera::api {
namespace {

constexpr int32_t kNanoExponent = -9;
// Largest magnitude a binary-SI quantity may hold (the server caps at int64 max).
constexpr std::string_view kMaxInt64Digits = "9223372036854775807";
constexpr std::string_view kAllowedSuffixes =
    "n, u, m, (none), k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei, or e<integer>";

__extension__ typedef unsigned __int128 Uint128;

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

struct ParsedText {
  bool positive = true;
  std::string_view num;    // Integer digits without leading zeros ("0" when none).
  std::string_view denom;  // Fraction digits.
  std::string_view suffix;
};

absl::Status FormatError(std::string_view text, std::string_view why) {
  return absl::InvalidArgumentError(StrCat("invalid quantity \"", text, "\": ", why,
                                           " (expected [+-]digits[.digits][suffix], suffix one of ",
                                           kAllowedSuffixes, ")"));
}

// The grammar of apimachinery's parseQuantityString, quirks included ("1.G" is accepted).
absl::StatusOr<ParsedText> SplitText(std::string_view s) {
  ParsedText p;
  size_t pos = 0;
  if (pos < s.size() && (s[pos] == '-' || s[pos] == '+')) {
    p.positive = s[pos] == '+';
    ++pos;
  }
  while (pos < s.size() && s[pos] == '0') ++pos;
  if (pos == s.size()) {
    p.num = "0";
    return p;
  }
  size_t start = pos;
  while (pos < s.size() && IsDigit(s[pos])) ++pos;
  p.num = s.substr(start, pos - start);
  if (p.num.empty()) p.num = "0";
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    start = pos;
    while (pos < s.size() && IsDigit(s[pos])) ++pos;
    p.denom = s.substr(start, pos - start);
  }
  size_t suffix_start = pos;
  while (pos < s.size() &&
         std::string_view("eEinumkKMGTP").find(s[pos]) != std::string_view::npos) {
    ++pos;
  }
  if (pos < s.size() && (s[pos] == '-' || s[pos] == '+')) ++pos;
  while (pos < s.size() && IsDigit(s[pos])) ++pos;
  if (pos != s.size()) {
    return FormatError(s, StrCat("unexpected character '", s.substr(pos, 1), "'"));
  }
  p.suffix = s.substr(suffix_start);
  return p;
}

struct Suffix {
  int base;  // 2 or 10
  int32_t exponent;
  Quantity::Format format;
};

std::optional<Suffix> InterpretSuffix(std::string_view s) {
  using F = Quantity::Format;
  static constexpr std::array<std::pair<std::string_view, Suffix>, 16> kTable = {{
      {"", {10, 0, F::kDecimalSI}},
      {"n", {10, -9, F::kDecimalSI}},
      {"u", {10, -6, F::kDecimalSI}},
      {"m", {10, -3, F::kDecimalSI}},
      {"k", {10, 3, F::kDecimalSI}},
      {"M", {10, 6, F::kDecimalSI}},
      {"G", {10, 9, F::kDecimalSI}},
      {"T", {10, 12, F::kDecimalSI}},
      {"P", {10, 15, F::kDecimalSI}},
      {"E", {10, 18, F::kDecimalSI}},
      {"Ki", {2, 10, F::kBinarySI}},
      {"Mi", {2, 20, F::kBinarySI}},
      {"Gi", {2, 30, F::kBinarySI}},
      {"Ti", {2, 40, F::kBinarySI}},
      {"Pi", {2, 50, F::kBinarySI}},
      {"Ei", {2, 60, F::kBinarySI}},
  }};
  for (const auto& [name, suffix] : kTable) {
    if (name == s) return suffix;
  }
  if (s.size() > 1 && (s[0] == 'e' || s[0] == 'E')) {
    std::string_view exp = s.substr(1);
    if (exp[0] == '+') exp.remove_prefix(1);  // Go's ParseInt accepts a leading '+'.
    int32_t value = 0;
    auto [end, ec] = std::from_chars(exp.data(), exp.data() + exp.size(), value);
    if (ec == std::errc() && end == exp.data() + exp.size()) {
      return Suffix{10, value, F::kDecimalExponent};
    }
  }
  return std::nullopt;
}

// Whether apimachinery's parser keeps the input string and prints it back unchanged: its int64
// fast path with an input that already looks canonical.
bool ServerKeepsVerbatim(const ParsedText& p, const Suffix& suffix) {
  std::string shifted = StrCat(p.num, p.denom);
  int32_t scale = 0;
  int64_t mantissa = 1;
  if (suffix.format == Quantity::Format::kBinarySI) {
    if (!p.denom.empty()) return false;
    int32_t precision = 15 - static_cast<int32_t>(p.num.size()) -
                        static_cast<int32_t>(static_cast<float>(suffix.exponent) * 3 / 10) - 1;
    if (precision < 0) return false;
    mantissa = int64_t{1} << suffix.exponent;
  } else {
    if (18 - static_cast<int32_t>(p.num.size() + p.denom.size()) < 0) return false;
    scale = suffix.exponent;
  }
  scale -= static_cast<int32_t>(p.denom.size());
  if (scale < kNanoExponent) return false;
  int64_t value = 0;
  auto [end, ec] = std::from_chars(shifted.data(), shifted.data() + shifted.size(), value);
  if (ec != std::errc() || end != shifted.data() + shifted.size()) return false;
  int64_t product = 0;
  if (__builtin_mul_overflow(value, mantissa, &product)) return false;
  if (suffix.format == Quantity::Format::kBinarySI) {
    return suffix.exponent % 10 == 0 && (value & 0x07) != 0;
  }
  return scale % 3 == 0 && !shifted.ends_with("000") && shifted[0] != '0';
}

// digits * factor, both non-negative decimal strings without leading zeros.
std::string MultiplyDigits(std::string_view digits, uint64_t factor) {
  std::string out(digits.size(), '0');
  Uint128 carry = 0;
  for (size_t i = digits.size(); i-- > 0;) {
    Uint128 cur = static_cast<Uint128>(digits[i] - '0') * factor + carry;
    out[i] = static_cast<char>('0' + static_cast<int>(cur % 10));
    carry = cur / 10;
  }
  std::string prefix;
  while (carry > 0) {
    prefix.push_back(static_cast<char>('0' + static_cast<int>(carry % 10)));
    carry /= 10;
  }
  std::reverse(prefix.begin(), prefix.end());
  return prefix + out;
}

// Adds one to a decimal digit string.
std::string Increment(std::string digits) {
  for (size_t i = digits.size(); i-- > 0;) {
    if (digits[i] != '9') {
      ++digits[i];
      return digits;
    }
    digits[i] = '0';
  }
  return "1" + digits;
}

// Compares two magnitudes digits*10^exp, each without leading or trailing zeros.
std::strong_ordering CompareMagnitude(std::string_view a, int32_t a_exp, std::string_view b,
                                      int32_t b_exp) {
  if (a.empty() || b.empty()) return !a.empty() <=> !b.empty();
  int64_t a_order = static_cast<int64_t>(a.size()) + a_exp;
  int64_t b_order = static_cast<int64_t>(b.size()) + b_exp;
  if (a_order != b_order) return a_order <=> b_order;
  int c = a.compare(b);  // Equal order: lexicographic, a longer one has more non-zero digits.
  return c < 0 ? std::strong_ordering::less
               : (c > 0 ? std::strong_ordering::greater : std::strong_ordering::equal);
}

}  // namespace

absl::StatusOr<Quantity> Quantity::Parse(std::string_view text) {
  if (text.empty()) return FormatError(text, "empty string");
  Quantity q;
  if (text == "0") {
    q.verbatim_ = "0";
    return q;
  }
  absl::StatusOr<ParsedText> parsed = SplitText(text);
  if (!parsed.ok()) return parsed.status();
  std::optional<Suffix> suffix = InterpretSuffix(parsed->suffix);
  if (!suffix) return FormatError(text, StrCat("unknown suffix \"", parsed->suffix, "\""));

  q.format_ = suffix->format;
  q.negative_ = !parsed->positive;
  q.digits_ = StrCat(parsed->num, parsed->denom);
  q.exponent_ = -static_cast<int32_t>(parsed->denom.size());
  if (suffix->base == 10) {
    q.exponent_ += suffix->exponent;
  } else {
    size_t first = q.digits_.find_first_not_of('0');
    q.digits_ = first == std::string::npos ? "" : q.digits_.substr(first);
    q.digits_ = MultiplyDigits(q.digits_, uint64_t{1} << suffix->exponent);
  }
  q.Normalize();
  if (q.exponent_ < kNanoExponent) q.RoundUpToExponent(kNanoExponent);
  if (q.format_ == Format::kBinarySI) {
    if (CompareMagnitude(q.digits_, q.exponent_, kMaxInt64Digits, 0) > 0) {
      q.digits_ = std::string(kMaxInt64Digits);
      q.exponent_ = 0;
    }
    if (!q.IsZero() && CompareMagnitude(q.digits_, q.exponent_, "1", 0) < 0) {
      q.format_ = Format::kDecimalSI;
    }
  }
  if (q.IsZero()) q.negative_ = false;
  if (ServerKeepsVerbatim(*parsed, *suffix)) q.verbatim_ = std::string(text);
  return q;
}

Quantity Quantity::FromInt64(int64_t value, Format format) {
  Quantity q;
  q.format_ = format;
  q.negative_ = value < 0;
  uint64_t magnitude = value < 0 ? ~static_cast<uint64_t>(value) + 1 : static_cast<uint64_t>(value);
  q.digits_ = magnitude == 0 ? "" : std::to_string(magnitude);
  q.Normalize();
  return q;
}

Quantity Quantity::FromMilli(int64_t milli) {
  Quantity q = FromInt64(milli, Format::kDecimalSI);
  q.exponent_ -= 3;
  return q;
}

void Quantity::Normalize() {
  size_t first = digits_.find_first_not_of('0');
  if (first == std::string::npos) {
    digits_.clear();
    exponent_ = 0;
    negative_ = false;
    return;
  }
  digits_.erase(0, first);
  size_t last = digits_.find_last_not_of('0');
  exponent_ += static_cast<int32_t>(digits_.size() - 1 - last);
  digits_.resize(last + 1);
}

void Quantity::RoundUpToExponent(int32_t exp) {
  if (IsZero() || exponent_ >= exp) return;
  size_t drop = static_cast<size_t>(exp - exponent_);
  // After Normalize the dropped tail ends in a non-zero digit, so rounding up always adds one.
  digits_ = drop >= digits_.size() ? "1" : Increment(digits_.substr(0, digits_.size() - drop));
  exponent_ = exp;
  Normalize();
}

int64_t Quantity::ScaledSaturated(int32_t scale) const {
  Quantity rounded = *this;
  rounded.RoundUpToExponent(-scale);
  if (rounded.IsZero()) return 0;
  int64_t zeros = static_cast<int64_t>(rounded.exponent_) + scale;
  bool fits = static_cast<int64_t>(rounded.digits_.size()) + zeros <= 19;
  uint64_t magnitude = 0;
  if (fits) {
    std::string text = rounded.digits_ + std::string(static_cast<size_t>(zeros), '0');
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), magnitude);
    fits = ec == std::errc() && magnitude <= uint64_t{std::numeric_limits<int64_t>::max()};
  }
  if (!fits) {
    return negative_ ? std::numeric_limits<int64_t>::min() : std::numeric_limits<int64_t>::max();
  }
  return negative_ ? -static_cast<int64_t>(magnitude) : static_cast<int64_t>(magnitude);
}

std::optional<int64_t> Quantity::ToInt64() const {
  if (exponent_ < 0) return std::nullopt;
  std::string_view limit = negative_ ? "9223372036854775808" : kMaxInt64Digits;
  if (CompareMagnitude(digits_, exponent_, limit, 0) > 0) return std::nullopt;
  return Value();
}

int64_t Quantity::Value() const { return ScaledSaturated(0); }

int64_t Quantity::MilliValue() const { return ScaledSaturated(3); }

std::strong_ordering Quantity::operator<=>(const Quantity& other) const {
  if (negative_ != other.negative_) {
    return negative_ ? std::strong_ordering::less : std::strong_ordering::greater;
  }
  std::strong_ordering m = CompareMagnitude(digits_, exponent_, other.digits_, other.exponent_);
  if (!negative_) return m;
  return 0 <=> m;
}

std::string Quantity::ToString() const { return verbatim_.empty() ? CanonicalString() : verbatim_; }

std::string Quantity::CanonicalString() const {
  if (IsZero()) return "0";
  std::string sign = negative_ ? "-" : "";
  Format format = format_;
  if (format == Format::kBinarySI) {
    bool small = CompareMagnitude(digits_, exponent_, "1024", 0) < 0;
    if (small || exponent_ < 0) format = Format::kDecimalSI;
  }
  if (format == Format::kBinarySI) {
    uint64_t magnitude = 0;
    std::string text = digits_ + std::string(static_cast<size_t>(exponent_), '0');
    std::from_chars(text.data(), text.data() + text.size(), magnitude);
    static constexpr std::array<std::string_view, 7> kBinary = {"",   "Ki", "Mi", "Gi",
                                                                "Ti", "Pi", "Ei"};
    size_t power = 0;
    while (magnitude % 1024 == 0 && power + 1 < kBinary.size()) {
      magnitude /= 1024;
      ++power;
    }
    return StrCat(sign, magnitude, kBinary[power]);
  }
  std::string digits = digits_;
  int32_t exponent = exponent_;
  while (exponent % 3 != 0) {
    digits.push_back('0');
    --exponent;
  }
  if (format == Format::kDecimalExponent) {
    return exponent == 0 ? sign + digits : StrCat(sign, digits, "e", exponent);
  }
  static constexpr std::array<std::string_view, 10> kDecimal = {"n", "u", "m", "",  "k",
                                                                "M", "G", "T", "P", "E"};
  int32_t index = exponent / 3 + 3;
  if (index >= static_cast<int32_t>(kDecimal.size())) {
    // Beyond E there is no SI suffix. apimachinery then prints the mantissa with no suffix at
    // all, silently dividing the value by 10^exponent ("9000E" -> "9"); we keep the value and
    // print the exponent instead (docs/api.md, "Quantities").
    return StrCat(sign, digits, "e", exponent);
  }
  return StrCat(sign, digits, kDecimal[index]);
}

}  // namespace tessera::api
