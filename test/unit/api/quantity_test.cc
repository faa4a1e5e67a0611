#include "tessera/api/quantity.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <limits>

#include "tessera/api/json_decode.h"

namespace tessera::api {
namespace {

using ::testing::HasSubstr;

struct CanonicalCase {
  const char* input;
  const char* stored;  // what the API server stores and returns
};

// Expected forms derived from apimachinery's resource.Quantity rules (see quantity.h).
const CanonicalCase kCanonicalCases[] = {
    // Zero in any spelling.
    {"0", "0"},
    {"0Gi", "0"},
    {"-0", "0"},
    {"0.000", "0"},
    // Binary SI: the largest suffix that keeps an integer mantissa.
    {"40Gi", "40Gi"},
    {"1024Mi", "1Gi"},
    {"1536Mi", "1536Mi"},
    {"9856Mi", "9856Mi"},
    {"0.5Gi", "512Mi"},
    {"1.5Ki", "1536"},  // not a whole number of Ki: no suffix
    {"0.5Ki", "512"},   // |v| < 1024 prints as decimal SI
    {"1Ki", "1Ki"},
    {"8Ei", "9223372036854775807"},  // capped at int64 max
    {"-2048Ki", "-2Mi"},
    // Decimal SI: exponent rounded down to a multiple of three.
    {"100m", "100m"},
    {"0.1", "100m"},
    {"1.5", "1500m"},
    {"1000m", "1"},
    {"1000", "1k"},
    {"1000000", "1M"},
    {"5368709120", "5368709120"},
    {"1.G", "1.G"},  // accepted by the server's grammar, and kept verbatim
    {"12345678901234567890", "12345678901234567890"},
    {"10000000000000000000", "10E"},
    {"9000E", "9e21"},  // no SI suffix beyond E: exponent form keeps the value
    {"1000000000000000000.1", "1000000000000000000100m"},
    // Below one nano: rounded up, away from zero.
    {"0.5n", "1n"},
    {"3.001n", "4n"},
    {"-0.5n", "-1n"},
    {"1.1e-9", "2e-9"},
    // Decimal exponent.
    {"1e3", "1e3"},
    {"1e2", "100"},
    {"1.5e3", "1500"},
    {"12e-3", "12e-3"},
    // Inputs the server keeps verbatim (its fast path reuses the input string).
    {"+5", "+5"},
    {"1E3", "1E3"},
    {"0100", "0100"},
    {"-5", "-5"},
    {"7", "7"},
};

void PrintTo(const CanonicalCase& c, std::ostream* os) { *os << '"' << c.input << '"'; }

class CanonicalFormTest : public ::testing::TestWithParam<CanonicalCase> {};

TEST_P(CanonicalFormTest, PrintsWhatTheApiServerStores) {
  absl::StatusOr<Quantity> q = Quantity::Parse(GetParam().input);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->ToString(), GetParam().stored);
}

TEST_P(CanonicalFormTest, StoredFormParsesToTheSameValue) {
  Quantity q = *Quantity::Parse(GetParam().input);
  absl::StatusOr<Quantity> again = Quantity::Parse(q.ToString());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, q);
  EXPECT_EQ(again->ToString(), q.ToString());
}

INSTANTIATE_TEST_SUITE_P(Table, CanonicalFormTest, ::testing::ValuesIn(kCanonicalCases));

struct BadCase {
  const char* input;
  const char* message;
};

const BadCase kBadCases[] = {
    {"", "empty string"},
    {"abc", "unexpected character 'a'"},
    {"1Qi", "unexpected character 'Q'"},
    {"1.2.3", "unexpected character '.'"},
    {"1 Gi", "unexpected character ' '"},
    {"1e", "unknown suffix \"e\""},
    {"1kK", "unknown suffix \"kK\""},
    {"--1", "unknown suffix \"-1\""},
    {"1e99999999999", "unknown suffix"},
};

void PrintTo(const BadCase& c, std::ostream* os) { *os << '"' << c.input << '"'; }

class BadQuantityTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadQuantityTest, IsRejectedWithTheReason) {
  absl::StatusOr<Quantity> q = Quantity::Parse(GetParam().input);
  ASSERT_FALSE(q.ok()) << "parsed as " << q->ToString();
  EXPECT_THAT(std::string(q.status().message()), HasSubstr(GetParam().message));
  EXPECT_THAT(std::string(q.status().message()),
              HasSubstr(std::string("\"") + GetParam().input + "\""));
}

INSTANTIATE_TEST_SUITE_P(Table, BadQuantityTest, ::testing::ValuesIn(kBadCases));

TEST(QuantityTest, BinaryValueWithoutWholeKiSettlesAsDecimalAfterOneRound) {
  Quantity q = *Quantity::Parse("999994999937.5Ki");
  EXPECT_EQ(q.ToString(), "1023994879936000");
  Quantity again = *Quantity::Parse(q.ToString());
  EXPECT_EQ(again, q);
  EXPECT_EQ(again.ToString(), "1023994879936k");
}

TEST(QuantityTest, ValueRoundsUpAwayFromZero) {
  EXPECT_EQ(Quantity::Parse("40Gi")->Value(), 42949672960);
  EXPECT_EQ(Quantity::Parse("100m")->Value(), 1);
  EXPECT_EQ(Quantity::Parse("-100m")->Value(), -1);
  EXPECT_EQ(Quantity::Parse("1.5")->MilliValue(), 1500);
  EXPECT_EQ(Quantity::Parse("1n")->MilliValue(), 1);
}

TEST(QuantityTest, ValueSaturatesOutsideInt64) {
  EXPECT_EQ(Quantity::Parse("100E")->Value(), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(Quantity::Parse("-100E")->Value(), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(Quantity::Parse("9223372036854775807")->MilliValue(),
            std::numeric_limits<int64_t>::max());
}

TEST(QuantityTest, ToInt64IsExactOrNothing) {
  EXPECT_EQ(Quantity::Parse("2Ki")->ToInt64(), 2048);
  EXPECT_EQ(Quantity::Parse("1500m")->ToInt64(), std::nullopt);
  EXPECT_EQ(Quantity::Parse("2000m")->ToInt64(), 2);
  EXPECT_EQ(Quantity::Parse("-9223372036854775808")->ToInt64(),
            std::numeric_limits<int64_t>::min());
  EXPECT_EQ(Quantity::Parse("9223372036854775808")->ToInt64(), std::nullopt);
}

TEST(QuantityTest, ComparesByValueNotSpelling) {
  EXPECT_EQ(*Quantity::Parse("1Gi"), *Quantity::Parse("1024Mi"));
  EXPECT_EQ(*Quantity::Parse("1"), *Quantity::Parse("1000m"));
  EXPECT_LT(*Quantity::Parse("1G"), *Quantity::Parse("1Gi"));
  EXPECT_LT(*Quantity::Parse("-1"), Quantity());
  EXPECT_LT(*Quantity::Parse("-2"), *Quantity::Parse("-1"));
  EXPECT_GT(*Quantity::Parse("1.001"), *Quantity::Parse("1"));
}

TEST(QuantityTest, FromInt64PrintsInTheRequestedFormat) {
  EXPECT_EQ(Quantity::FromInt64(42949672960, Quantity::Format::kBinarySI).ToString(), "40Gi");
  EXPECT_EQ(Quantity::FromInt64(5368709120).ToString(), "5368709120");
  EXPECT_EQ(Quantity::FromInt64(0).ToString(), "0");
  EXPECT_EQ(Quantity::FromInt64(std::numeric_limits<int64_t>::min()).ToString(),
            "-9223372036854775808");
  EXPECT_EQ(Quantity::FromMilli(100).ToString(), "100m");
  EXPECT_EQ(Quantity::FromMilli(25000).ToString(), "25");
}

TEST(QuantityTest, DecodesJsonStringsAndNumbersLikeTheServer) {
  Quantity q;
  ASSERT_TRUE(Decode(DecodeContext(), Json(" 8Gi "), &q).ok());
  EXPECT_EQ(q.ToString(), "8Gi");
  ASSERT_TRUE(Decode(DecodeContext(), Json(5), &q).ok());
  EXPECT_EQ(q.ToString(), "5");
  ASSERT_TRUE(Decode(DecodeContext(), Json(0.5), &q).ok());
  EXPECT_EQ(q.ToString(), "500m");
}

TEST(QuantityTest, JsonErrorNamesThePath) {
  Quantity q;
  absl::Status s = Decode(DecodeContext(UnknownFields::kReject, "spec.memory"), Json("12Qi"), &q);
  EXPECT_THAT(std::string(s.message()), HasSubstr("spec.memory: invalid quantity \"12Qi\""));
  s = Decode(DecodeContext(UnknownFields::kReject, "spec.memory"), Json(true), &q);
  EXPECT_THAT(std::string(s.message()), HasSubstr("spec.memory: expected a quantity"));
}

}  // namespace
}  // namespace tessera::api
