#include "tessera/api/json_decode.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tessera/api/yaml.h"

namespace tessera::api {
namespace {

using ::testing::HasSubstr;

struct Point {
  int32_t x = 0;
  std::optional<std::string> label;
};

absl::Status Decode(const DecodeContext& ctx, const Json& in, Point* out) {
  ObjectDecoder d(ctx, in);
  d.Required("x", &out->x);
  d.Optional("label", &out->label);
  return d.Finish();
}

std::string ErrorOf(const absl::Status& s) { return std::string(s.message()); }

TEST(JsonDecodeTest, StrictModeRejectsUnknownFieldAndListsAllowedOnes) {
  absl::StatusOr<std::vector<Point>> points = DecodeJson<std::vector<Point>>(
      Json::parse(R"([{"x": 1}, {"x": 2, "lable": "a"}])"), UnknownFields::kReject);
  ASSERT_FALSE(points.ok());
  EXPECT_EQ(ErrorOf(points.status()), "[1].lable: unknown field (allowed: x, label)");
}

TEST(JsonDecodeTest, LenientModeIgnoresUnknownFields) {
  absl::StatusOr<Point> p =
      DecodeJson<Point>(Json::parse(R"({"x": 1, "future": true})"), UnknownFields::kIgnore);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->x, 1);
}

TEST(JsonDecodeTest, WrongTypeNamesPathAndValue) {
  absl::StatusOr<Point> p = DecodeJson<Point>(Json::parse(R"({"x": "3"})"), UnknownFields::kIgnore);
  EXPECT_EQ(ErrorOf(p.status()), "x: expected an integer, got \"3\"");
}

TEST(JsonDecodeTest, MissingRequiredFieldIsNamed) {
  absl::StatusOr<Point> p =
      DecodeJson<Point>(Json::parse(R"({"label": "a"})"), UnknownFields::kIgnore);
  EXPECT_EQ(ErrorOf(p.status()), "x: required field is missing");
}

TEST(JsonDecodeTest, FractionalNumberIsNotAnInteger) {
  absl::StatusOr<Point> p = DecodeJson<Point>(Json::parse(R"({"x": 2.5})"), UnknownFields::kIgnore);
  EXPECT_EQ(ErrorOf(p.status()), "x: expected an integer, got number 2.5");
  p = DecodeJson<Point>(Json::parse(R"({"x": 2.0})"), UnknownFields::kIgnore);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->x, 2);
}

TEST(JsonDecodeTest, Int32OverflowIsAnError) {
  absl::StatusOr<Point> p =
      DecodeJson<Point>(Json::parse(R"({"x": 4294967296})"), UnknownFields::kIgnore);
  EXPECT_EQ(ErrorOf(p.status()), "x: 4294967296 does not fit in a 32-bit integer");
}

TEST(JsonDecodeTest, HugeNumbersAreErrorsNotWraparound) {
  int64_t v = 0;
  absl::Status s =
      Decode(DecodeContext(UnknownFields::kReject, "n"), Json::parse("18446744073709551615"), &v);
  EXPECT_EQ(ErrorOf(s), "n: integer 18446744073709551615 does not fit in a 64-bit integer");
  s = Decode(DecodeContext(UnknownFields::kReject, "n"), Json::parse("1e300"), &v);
  EXPECT_EQ(ErrorOf(s), "n: expected an integer, got number 1e+300");
}

TEST(JsonDecodeTest, DottedKeysAreQuotedInPaths) {
  std::map<std::string, Point> m;
  absl::Status s = Decode(DecodeContext(UnknownFields::kReject, "attributes"),
                          Json::parse(R"({"gpu.tessera.dev/uuid": {"x": true}})"), &m);
  EXPECT_EQ(ErrorOf(s),
            "attributes[\"gpu.tessera.dev/uuid\"].x: expected an integer, got boolean true");
}

TEST(JsonDecodeTest, ParseJsonRejectsDuplicateKeys) {
  absl::StatusOr<Json> j = ParseJson(R"({"a": {"b": 1, "b": 2}})");
  ASSERT_FALSE(j.ok());
  EXPECT_THAT(ErrorOf(j.status()), HasSubstr("duplicate field \"b\""));
}

TEST(JsonDecodeTest, ParseJsonReportsSyntaxErrors) {
  absl::StatusOr<Json> j = ParseJson(R"({"a": )");
  ASSERT_FALSE(j.ok());
  EXPECT_THAT(ErrorOf(j.status()), HasSubstr("invalid JSON"));
}

TEST(JsonDecodeTest, ChoiceListsAllowedValues) {
  absl::StatusOr<size_t> i =
      DecodeChoice(DecodeContext(UnknownFields::kReject, "mode"), Json("MIG"), {"whole", "mps"});
  EXPECT_EQ(ErrorOf(i.status()), "mode: unknown value \"MIG\" (allowed: whole, mps)");
}

TEST(YamlTest, TypesScalarsLikeKubernetes) {
  absl::StatusOr<Json> j =
      ParseYaml("a: 1\nb: \"1\"\nc: true\nd: '8Gi'\ne: ~\nf: 2.5\ng: text\nh: [x, 2]\n");
  ASSERT_TRUE(j.ok()) << j.status();
  EXPECT_EQ(
      *j,
      Json::parse(
          R"({"a": 1, "b": "1", "c": true, "d": "8Gi", "e": null, "f": 2.5, "g": "text", "h": ["x", 2]})"));
}

TEST(YamlTest, RejectsDuplicateKeysWithLine) {
  absl::StatusOr<Json> j = ParseYaml("a: 1\nb: 2\na: 3\n");
  ASSERT_FALSE(j.ok());
  EXPECT_EQ(ErrorOf(j.status()), "invalid YAML at line 3: duplicate field \"a\"");
}

TEST(YamlTest, EmitsYamlThatReadsBackToTheSameJson) {
  Json in = Json::parse(
      R"({"s": "100", "t": "true", "n": 3, "b": false, "list": [{"k": "v"}], "empty": "", "q": "8Gi"})");
  absl::StatusOr<Json> back = ParseYaml(ToYaml(in));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, in);
}

// Found by fuzz_crd_yaml: control characters (here \x02 and NUL) inside a string value.
TEST(YamlTest, ControlCharactersInStringsSurviveTheRoundTrip) {
  for (const std::string& s : {std::string("a\x02b", 3), std::string("a\0b", 3),
                               std::string("00i\x02\0NULL5", 10), std::string("\t\r\x1b\x7f", 4)}) {
    const Json in = {{"k", s}};
    absl::StatusOr<Json> back = ParseYaml(ToYaml(in));
    ASSERT_TRUE(back.ok()) << back.status() << "\n" << ToYaml(in);
    EXPECT_EQ(*back, in) << ToYaml(in);
  }
}

TEST(YamlTest, RawControlCharactersAreRejectedWithTheirPosition) {
  absl::StatusOr<Json> j = ParseYaml(std::string("a: 1\nb: x\x02\0NULL\n", 16));
  ASSERT_FALSE(j.ok());
  EXPECT_EQ(ErrorOf(j.status()),
            "invalid YAML at line 2, column 5: control character 0x02 (write it as an escape in a "
            "double-quoted string)");
  absl::StatusOr<Json> escaped = ParseYaml("a: \"x\\x02\\0y\"\n");
  ASSERT_TRUE(escaped.ok()) << escaped.status();
  EXPECT_EQ((*escaped)["a"], std::string("x\x02\0y", 4));
}

TEST(YamlTest, ErrorLinesCountFromTheStartOfTheFile) {
  absl::StatusOr<std::vector<Json>> docs = ParseYamlDocuments("a: 1\n---\nb: 2\nb: 3\n");
  ASSERT_FALSE(docs.ok());
  EXPECT_EQ(ErrorOf(docs.status()), "invalid YAML at line 4: duplicate field \"b\"");
}

TEST(YamlTest, MalformedInputFailsInsteadOfHanging) {
  // yaml-cpp's LoadAll never returns on this input; ParseYamlDocuments must.
  EXPECT_FALSE(ParseYamlDocuments(" ,\n---\n{").ok());
}

TEST(YamlTest, OutOfRangeNumberIsAnError) {
  absl::StatusOr<Json> j = ParseYaml("a: 1\nb: 1e999\n");
  ASSERT_FALSE(j.ok());
  EXPECT_EQ(ErrorOf(j.status()), "invalid YAML at line 2: number 1e999 is out of range");
}

TEST(YamlTest, RejectsInvalidUtf8) {
  absl::StatusOr<Json> j = ParseYaml("a: \"\xc2\xb9\xb9\"\n");
  ASSERT_FALSE(j.ok());
  EXPECT_EQ(ErrorOf(j.status()),
            "invalid YAML: not UTF-8 at byte 6 (Kubernetes objects are UTF-8 text)");
}

TEST(YamlTest, RejectsUtf8ThatIsNotUnicode) {
  for (const char* bad : {"\xf6\x96\x90\x8a",     // lead byte above U+10FFFF
                          "\xc0\xaf",             // overlong '/'
                          "\xed\xa0\x80",         // surrogate U+D800
                          "\xf4\x90\x80\x80"}) {  // U+110000
    EXPECT_FALSE(ParseYaml(std::string("a: ") + bad + "\n").ok()) << bad;
  }
  EXPECT_TRUE(ParseYaml("a: \"\xf4\x8f\xbf\xbf \xe2\x82\xac \xc3\xa9\"\n").ok());
}

TEST(YamlTest, SplitsMultiDocumentStreams) {
  absl::StatusOr<std::vector<Json>> docs = ParseYamlDocuments("a: 1\n---\n---\nb: 2\n");
  ASSERT_TRUE(docs.ok());
  ASSERT_EQ(docs->size(), 2u);
  EXPECT_EQ((*docs)[1]["b"], 2);
}

}  // namespace
}  // namespace tessera::api
