// Kubernetes resource quantities ("40Gi", "100m", "5368709120"), parsed and printed exactly as the
// API server does, because the server rewrites every quantity it stores and a publisher that
// compares its own text with the server's would otherwise update forever.
//
// Semantics follow k8s.io/apimachinery's resource.Quantity:
//  - value = sign * digits * 10^exponent, kept exactly (arbitrary precision);
//  - values below one nano are rounded up, away from zero, to the next nano;
//  - binary-SI values are capped at 2^63-1;
//  - the canonical form picks the largest suffix of the value's own format that keeps an integer
//    mantissa (binary SI falls back to decimal SI for |v| < 1024 or non-integers);
//  - like the server, an input that is already in its fast-path canonical shape is printed back
//    verbatim (so "+5" stays "+5"); see docs/api.md.
#ifndef TESSERA_API_QUANTITY_H_
#define TESSERA_API_QUANTITY_H_

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace tessera::api {

class Quantity {
 public:
  enum class Format { kDecimalSI, kBinarySI, kDecimalExponent };

  // Zero, decimal SI.
  Quantity() = default;

  // Parses the Kubernetes quantity grammar. Errors name the input and what is allowed.
  static absl::StatusOr<Quantity> Parse(std::string_view text);

  // An integer value in the given format, e.g. FromInt64(42949672960, kBinarySI) prints "40Gi".
  static Quantity FromInt64(int64_t value, Format format = Format::kDecimalSI);
  // value/1000, decimal SI: FromMilli(100) prints "100m".
  static Quantity FromMilli(int64_t milli);

  // The string the API server would store for this quantity.
  std::string ToString() const;

  Format format() const { return format_; }
  bool IsZero() const { return digits_.empty(); }
  bool IsNegative() const { return negative_; }

  // The exact value if it is an integer that fits in int64.
  std::optional<int64_t> ToInt64() const;
  // The value rounded up to an integer (away from zero), saturating at the int64 range.
  int64_t Value() const;
  // The value in thousandths, rounded up (away from zero), saturating.
  int64_t MilliValue() const;

  // Numeric comparison; the format and the verbatim text do not take part.
  std::strong_ordering operator<=>(const Quantity& other) const;
  bool operator==(const Quantity& other) const { return (*this <=> other) == 0; }

 private:
  // Rounds the magnitude up to the given power of ten (value becomes a multiple of 10^exp).
  void RoundUpToExponent(int32_t exp);
  void Normalize();
  // |value| as a saturated integer after rounding up to 10^-scale.
  int64_t ScaledSaturated(int32_t scale) const;
  std::string CanonicalString() const;

  bool negative_ = false;
  std::string digits_;  // Magnitude digits, no leading or trailing zeros; empty means zero.
  int32_t exponent_ = 0;
  Format format_ = Format::kDecimalSI;
  std::string verbatim_;  // Input kept as-is when the server would keep it; else empty.
};

}  // namespace tessera::api

#endif  // TESSERA_API_QUANTITY_H_
