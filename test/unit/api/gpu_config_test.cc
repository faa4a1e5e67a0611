#include "tessera/api/gpu_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tessera/api/yaml.h"

namespace tessera::api {
namespace {

absl::StatusOr<GpuConfig> ParseYamlConfig(const std::string& yaml) {
  absl::StatusOr<Json> json = ParseYaml(yaml);
  if (!json.ok()) return json.status();
  return ParseGpuConfig(*json, "parameters");
}

std::string ErrorOf(const std::string& yaml) {
  absl::StatusOr<GpuConfig> c = ParseYamlConfig(yaml);
  return c.ok() ? "<no error>" : std::string(c.status().message());
}

constexpr char kHeader[] = "apiVersion: tessera.dev/v1alpha1\nkind: GpuConfig\n";

TEST(GpuConfigTest, MpsConfigDecodesWithLimits) {
  absl::StatusOr<GpuConfig> c = ParseYamlConfig(std::string(kHeader) + R"(
sharing:
  strategy: MPS
  mps:
    activeThreadPercentage: 50
    pinnedDeviceMemoryLimit: 8Gi
    perDevice:
      gpu-1: {activeThreadPercentage: 25}
)");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(c->sharing && c->sharing->mps);
  EXPECT_EQ(c->sharing->strategy, SharingStrategy::kMps);
  EXPECT_EQ(c->sharing->mps->active_thread_percentage, 50);
  EXPECT_EQ(c->sharing->mps->pinned_device_memory_limit->Value(), int64_t{8} << 30);
  MpsLimits gpu1 = c->sharing->mps->For("gpu-1", "GPU-abc");
  EXPECT_EQ(gpu1.active_thread_percentage, 25);
  EXPECT_EQ(gpu1.pinned_device_memory_limit->ToString(), "8Gi");  // inherited
  EXPECT_EQ(c->sharing->mps->For("gpu-2", "GPU-def").active_thread_percentage, 50);
}

TEST(GpuConfigTest, PerDeviceOverrideByUuidAppliesWhenNameHasNone) {
  absl::StatusOr<GpuConfig> c = ParseYamlConfig(std::string(kHeader) + R"(
sharing: {strategy: MPS, mps: {perDevice: {GPU-abc: {pinnedDeviceMemoryLimit: 2Gi}}}}
)");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->sharing->mps->For("gpu-0", "GPU-abc").pinned_device_memory_limit->ToString(), "2Gi");
}

TEST(GpuConfigTest, DefaultsAreAppliedInOnePlace) {
  absl::StatusOr<GpuConfig> ts =
      ParseYamlConfig(std::string(kHeader) + "sharing: {strategy: TimeSlicing}\n");
  ASSERT_TRUE(ts.ok()) << ts.status();
  EXPECT_EQ(ts->sharing->time_slicing->interval, TimeSliceInterval::kDefault);
  absl::StatusOr<GpuConfig> mps =
      ParseYamlConfig(std::string(kHeader) + "sharing: {strategy: MPS}\n");
  ASSERT_TRUE(mps.ok());
  EXPECT_EQ(mps->sharing->mps->active_thread_percentage, 100);
  EXPECT_FALSE(mps->sharing->mps->pinned_device_memory_limit.has_value());
  absl::StatusOr<GpuConfig> exclusive = ParseYamlConfig(kHeader);
  ASSERT_TRUE(exclusive.ok());
  EXPECT_FALSE(exclusive->sharing.has_value());
}

TEST(GpuConfigTest, EncodesBackToWhatWasWritten) {
  std::string yaml =
      std::string(kHeader) + "sharing: {strategy: TimeSlicing, timeSlicing: {interval: Long}}\n";
  GpuConfig c = *ParseYamlConfig(yaml);
  EXPECT_EQ(Json(c), *ParseYaml(yaml));
}

struct StrictCase {
  const char* name;
  std::string yaml;
  const char* error;
};

void PrintTo(const StrictCase& c, std::ostream* os) { *os << c.name; }

class StrictDecodingTest : public ::testing::TestWithParam<StrictCase> {};

TEST_P(StrictDecodingTest, ErrorNamesPathValueAndWhatIsAllowed) {
  EXPECT_EQ(ErrorOf(GetParam().yaml), GetParam().error);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, StrictDecodingTest,
    ::testing::Values(
        StrictCase{"UnknownTopLevelField", std::string(kHeader) + "sharng: {}\n",
                   "parameters.sharng: unknown field (allowed: apiVersion, kind, sharing)"},
        StrictCase{"UnknownNestedField",
                   std::string(kHeader) + "sharing: {strategy: MPS, mps: {threads: 5}}\n",
                   "parameters.sharing.mps.threads: unknown field (allowed: "
                   "activeThreadPercentage, pinnedDeviceMemoryLimit, perDevice)"},
        StrictCase{"WrongApiVersion", "apiVersion: tessera.dev/v1\nkind: GpuConfig\n",
                   "parameters.apiVersion: unknown value \"tessera.dev/v1\" (allowed: "
                   "tessera.dev/v1alpha1)"},
        StrictCase{"WrongKind", "apiVersion: tessera.dev/v1alpha1\nkind: GPUConfig\n",
                   "parameters.kind: unknown value \"GPUConfig\" (allowed: GpuConfig, MigConfig)"},
        StrictCase{"MissingKind", "apiVersion: tessera.dev/v1alpha1\n",
                   "parameters.kind: required field is missing"},
        StrictCase{
            "UnknownStrategy", std::string(kHeader) + "sharing: {strategy: Mps}\n",
            "parameters.sharing.strategy: unknown value \"Mps\" (allowed: TimeSlicing, MPS)"},
        StrictCase{"MissingStrategy", std::string(kHeader) + "sharing: {}\n",
                   "parameters.sharing.strategy: required field is missing (allowed: "
                   "TimeSlicing, MPS)"},
        StrictCase{
            "PercentOutOfRange",
            std::string(kHeader) + "sharing: {strategy: MPS, mps: {activeThreadPercentage: 150}}\n",
            "parameters.sharing.mps.activeThreadPercentage: 150 is out of range "
            "(allowed: 1..100)"},
        StrictCase{"PercentWrongType",
                   std::string(kHeader) +
                       "sharing: {strategy: MPS, mps: {activeThreadPercentage: \"50\"}}\n",
                   "parameters.sharing.mps.activeThreadPercentage: expected an integer, got "
                   "\"50\""},
        StrictCase{"MalformedQuantity",
                   std::string(kHeader) +
                       "sharing: {strategy: MPS, mps: {pinnedDeviceMemoryLimit: 8GB}}\n",
                   "parameters.sharing.mps.pinnedDeviceMemoryLimit: invalid quantity \"8GB\": "
                   "unexpected character 'B' (expected [+-]digits[.digits][suffix], suffix one of "
                   "n, u, m, (none), k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei, or e<integer>)"},
        StrictCase{
            "ZeroMemoryLimit",
            std::string(kHeader) + "sharing: {strategy: MPS, mps: {pinnedDeviceMemoryLimit: 0}}\n",
            "parameters.sharing.mps.pinnedDeviceMemoryLimit: \"0\" is not allowed (must "
            "be a positive whole number of bytes, e.g. \"8Gi\")"},
        StrictCase{"FractionalByteLimit",
                   std::string(kHeader) +
                       "sharing: {strategy: MPS, mps: {pinnedDeviceMemoryLimit: 100m}}\n",
                   "parameters.sharing.mps.pinnedDeviceMemoryLimit: \"100m\" is not allowed "
                   "(must be a positive whole number of bytes, e.g. \"8Gi\")"},
        StrictCase{"MpsBlockWithTimeSlicing",
                   std::string(kHeader) + "sharing: {strategy: TimeSlicing, mps: {}}\n",
                   "parameters.sharing.mps: only allowed with strategy MPS (strategy is "
                   "TimeSlicing)"},
        StrictCase{"UnknownInterval",
                   std::string(kHeader) +
                       "sharing: {strategy: TimeSlicing, timeSlicing: {interval: short}}\n",
                   "parameters.sharing.timeSlicing.interval: unknown value \"short\" (allowed: "
                   "Default, Short, Medium, Long)"},
        StrictCase{"MigIntervalNotSettable",
                   "apiVersion: tessera.dev/v1alpha1\nkind: MigConfig\n"
                   "sharing: {strategy: TimeSlicing, timeSlicing: {interval: Long}}\n",
                   "parameters.sharing.timeSlicing.interval: \"Long\" is not allowed for a "
                   "MigConfig (allowed: Default; the interval applies to a whole GPU)"},
        StrictCase{"PerDeviceBadPercent",
                   std::string(kHeader) + "sharing: {strategy: MPS, mps: {perDevice: {gpu-1: "
                                          "{activeThreadPercentage: 0}}}}\n",
                   "parameters.sharing.mps.perDevice[\"gpu-1\"].activeThreadPercentage: 0 is out "
                   "of range (allowed: 1..100)"},
        StrictCase{"NotAnObject", "[1, 2]", "parameters: expected an object, got list [1,2]"}),
    [](const ::testing::TestParamInfo<StrictCase>& param_info) { return param_info.param.name; });

}  // namespace
}  // namespace tessera::api
