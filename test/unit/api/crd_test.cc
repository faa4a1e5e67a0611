#include "tessera/api/crd.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tessera/api/crd_schema.h"
#include "tessera/api/strings.h"
#include "tessera/api/validate.h"
#include "tessera/api/yaml.h"

namespace tessera::api {
namespace {

using ::testing::HasSubstr;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

Json Fixture(const std::string& name) {
  return *ParseYaml(ReadFile(std::string(TESSERA_TESTDATA_DIR) + "/" + name));
}

std::string PolicyError(const std::function<void(Json&)>& edit) {
  Json policy = Fixture("gpupartitionpolicy.yaml");
  edit(policy);
  absl::StatusOr<GpuPartitionPolicy> p = ParseGpuPartitionPolicy(policy);
  return p.ok() ? "<no error>" : std::string(p.status().message());
}

std::string InventoryError(const std::function<void(Json&)>& edit) {
  Json inventory = Fixture("gpuinventory.yaml");
  edit(inventory);
  absl::StatusOr<GpuInventory> i = ParseGpuInventory(inventory);
  return i.ok() ? "<no error>" : std::string(i.status().message());
}

TEST(GpuInventoryTest, RoundTripsEveryField) {
  Json original = Fixture("gpuinventory.yaml");
  absl::StatusOr<GpuInventory> inv = ParseGpuInventory(original);
  ASSERT_TRUE(inv.ok()) << inv.status();
  EXPECT_EQ(Json(*inv), original) << Json::diff(original, Json(*inv)).dump(2);
  EXPECT_EQ(inv->spec.gpus[0].mig_instances[0].placement, (Placement{4, 4}));
  EXPECT_EQ(inv->spec.gpus[1].health, HealthState::kUnhealthy);
  EXPECT_EQ(inv->spec.gpus[1].shares[0].pinned_device_memory_limit->ToString(), "8Gi");
}

TEST(GpuInventoryTest, RejectsNodeNameDifferentFromObjectName) {
  EXPECT_EQ(InventoryError([](Json& j) { j["spec"]["nodeName"] = "node-b"; }),
            "spec.nodeName: \"node-b\" must equal metadata.name \"node-a\" (one inventory per "
            "node, named after it)");
}

TEST(GpuInventoryTest, RejectsPlacementPastTheLastSlice) {
  EXPECT_EQ(InventoryError([](Json& j) {
              j["spec"]["gpus"][0]["migInstances"][0]["placement"] = {{"start", 6}, {"size", 4}};
            }),
            "spec.gpus[0].migInstances[0].placement: placement {start: 6, size: 4} ends past "
            "memory slice 7");
}

TEST(GpuInventoryTest, RejectsDuplicateGpuIndex) {
  EXPECT_EQ(InventoryError([](Json& j) { j["spec"]["gpus"][1]["index"] = 0; }),
            "spec.gpus[1].index: 0 is listed twice (indices must be unique)");
}

TEST(GpuInventoryTest, RejectsUnknownHealth) {
  EXPECT_EQ(InventoryError([](Json& j) { j["spec"]["gpus"][0]["health"] = "OK"; }),
            "spec.gpus[0].health: unknown value \"OK\" (allowed: Healthy, Unhealthy, Unknown)");
}

TEST(GpuInventoryTest, RejectsMigEnabledWithoutCapability) {
  EXPECT_EQ(InventoryError([](Json& j) { j["spec"]["gpus"][0]["migCapable"] = false; }),
            "spec.gpus[0].migEnabled: true is not allowed when migCapable is false");
}

TEST(GpuPartitionPolicyTest, RoundTripsEveryMode) {
  Json original = Fixture("gpupartitionpolicy.yaml");
  absl::StatusOr<GpuPartitionPolicy> p = ParseGpuPartitionPolicy(original);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(Json(*p), original) << Json::diff(original, Json(*p)).dump(2);
  ASSERT_EQ(p->spec.gpus.size(), 4u);
  EXPECT_EQ(p->spec.gpus[0].mode, PartitionMode::kMigDynamic);
  EXPECT_EQ(p->spec.gpus[1].instance_sharing, SharingStrategy::kMps);
  EXPECT_EQ(p->spec.gpus[3].time_slice_interval, TimeSliceInterval::kShort);
}

TEST(GpuPartitionPolicyTest, RejectsUnknownMode) {
  EXPECT_EQ(PolicyError([](Json& j) { j["spec"]["gpus"][0]["mode"] = "mig"; }),
            "spec.gpus[0].mode: unknown value \"mig\" (allowed: whole, mig-dynamic, mig-static, "
            "mps, timeslice)");
}

TEST(GpuPartitionPolicyTest, MigStaticNeedsALayout) {
  EXPECT_EQ(PolicyError([](Json& j) { j["spec"]["gpus"][1].erase("migStatic"); }),
            "spec.gpus[1].migStatic: required with mode mig-static");
}

TEST(GpuPartitionPolicyTest, LayoutOfEightInstancesIsRejected) {
  EXPECT_EQ(PolicyError([](Json& j) {
              j["spec"]["gpus"][1]["migStatic"]["profiles"] =
                  Json(std::vector<std::string>(8, "1g.5gb"));
            }),
            "spec.gpus[1].migStatic.profiles: 8 instances is not allowed (allowed: 1..7)");
}

TEST(GpuPartitionPolicyTest, ModeSpecificFieldsAreRejectedElsewhere) {
  EXPECT_EQ(PolicyError([](Json& j) { j["spec"]["gpus"][2]["timeSliceInterval"] = "Long"; }),
            "spec.gpus[2].timeSliceInterval: not allowed with mode mps (only with timeslice)");
  EXPECT_EQ(PolicyError([](Json& j) {
              j["spec"]["gpus"][0]["shares"] = {{"maxShares", 2}};
            }),
            "spec.gpus[0].shares: not allowed with mode mig-dynamic (only with mps, timeslice, or "
            "a mig mode with instanceSharing)");
  EXPECT_EQ(PolicyError([](Json& j) { j["spec"]["gpus"][2]["instanceSharing"] = "MPS"; }),
            "spec.gpus[2].instanceSharing: not allowed with mode mps (only with mig-dynamic, "
            "mig-static)");
}

TEST(GpuPartitionPolicyTest, RejectsBadModelNameAndQuantity) {
  EXPECT_EQ(PolicyError([](Json& j) { j["spec"]["gpus"][0]["match"]["models"][0] = "A100"; }),
            "spec.gpus[0].match.models[0]: \"A100\" is not a valid GPU model (lowercase letters, "
            "digits, '.', '-')");
  EXPECT_THAT(PolicyError([](Json& j) { j["spec"]["gpus"][2]["shares"]["minMemory"] = "1 G"; }),
              HasSubstr("spec.gpus[2].shares.minMemory: invalid quantity \"1 G\""));
}

TEST(GpuPartitionPolicyTest, RejectsZeroMinMemoryAndPercentOutOfRange) {
  EXPECT_EQ(PolicyError([](Json& j) { j["spec"]["gpus"][2]["shares"]["minMemory"] = "0"; }),
            "spec.gpus[2].shares.minMemory: \"0\" is not allowed (must be a positive whole number "
            "of bytes, e.g. \"8Gi\")");
  EXPECT_EQ(PolicyError([](Json& j) { j["spec"]["gpus"][2]["shares"]["minComputePercent"] = 0; }),
            "spec.gpus[2].shares.minComputePercent: 0 is out of range (allowed: 1..100)");
}

TEST(GpuPartitionPolicyTest, RejectsEmptyGpuListAndUnknownFields) {
  EXPECT_EQ(PolicyError([](Json& j) { j["spec"]["gpus"] = Json::array(); }),
            "spec.gpus: must list at least one entry");
  EXPECT_EQ(PolicyError([](Json& j) { j["spec"]["gpus"][3]["interval"] = "Short"; }),
            "spec.gpus[3].interval: unknown field (allowed: match, mode, migStatic, "
            "allowedProfiles, instanceSharing, shares, timeSliceInterval)");
}

// Every field our encoder can write must be declared in the CRD schema, or the API server would
// prune it (structural schemas drop unknown fields).
void ExpectDeclared(const Json& value, const Json& schema, const std::string& path) {
  if (value.is_object() && schema.contains("properties")) {
    for (const auto& [key, item] : value.items()) {
      ASSERT_TRUE(schema["properties"].contains(key)) << path << "." << key << " not in schema";
      ExpectDeclared(item, schema["properties"][key], path + "." + key);
    }
  } else if (value.is_array() && schema.contains("items")) {
    for (const Json& item : value) ExpectDeclared(item, schema["items"], path + "[]");
  }
  if (schema.contains("enum") && value.is_string()) {
    EXPECT_THAT(schema["enum"], ::testing::Contains(value)) << path;
  }
}

TEST(CrdSchemaTest, DeclaresEveryFieldTheEncoderWrites) {
  GpuInventory inv = *ParseGpuInventory(Fixture("gpuinventory.yaml"));
  inv.status.conditions.push_back({"Ready", "True", 1, "2026-09-01T10:00:05Z", "Heartbeat", ""});
  ExpectDeclared(Json(inv), CrdSchema("GpuInventory"), "");
  GpuPartitionPolicy policy = *ParseGpuPartitionPolicy(Fixture("gpupartitionpolicy.yaml"));
  policy.status = {3, {{"Accepted", "True", 3, "2026-09-01T10:00:05Z", "Valid", ""}}, 2, {"other"}};
  ExpectDeclared(Json(policy), CrdSchema("GpuPartitionPolicy"), "");
}

TEST(CrdSchemaTest, CheckedInManifestsMatchTheGenerator) {
  // deploy/crds for kubectl, and the chart's copy (Helm installs a chart's crds/ directory).
  for (std::string_view dir : {"deploy/crds", "deploy/helm/tessera/crds"}) {
    for (std::string_view kind : CrdKinds()) {
      Json crd = CrdManifest(kind);
      std::string name = crd["metadata"]["name"];
      std::string path = StrCat(TESSERA_SOURCE_DIR, "/", dir, "/", name, ".yaml");
      absl::StatusOr<Json> checked_in = ParseYaml(ReadFile(path));
      ASSERT_TRUE(checked_in.ok()) << path << ": " << checked_in.status();
      EXPECT_EQ(*checked_in, crd) << path << " is stale: run build/default/api/tessera-crdgen "
                                  << dir;
    }
  }
}

TEST(ValidateDocumentTest, NonStringKindIsAnErrorNotACrash) {
  absl::StatusOr<Json> v = ValidateDocument(*ParseYaml("kind:\napiVersion: 5\n"));
  ASSERT_FALSE(v.ok());
  EXPECT_THAT(std::string(v.status().message()),
              HasSubstr("apiVersion \"\" kind \"\" is not a kind tessera reads (allowed: "
                        "tessera.dev/v1alpha1/GpuConfig"));
}

}  // namespace
}  // namespace tessera::api

namespace tessera::api {
namespace {

// The fuzz_crd_yaml property on every regression seed, so the bugs fuzzing found stay fixed in
// builds without clang: whatever validates, validates again unchanged and reads back from the YAML
// we print as the same document.
TEST(FuzzRegressionTest, CrdYamlSeedsKeepTheirProperty) {
  const std::filesystem::path dir =
      std::filesystem::path(TESSERA_SOURCE_DIR) / "test/fuzz/corpus/crd_yaml";
  int seeds = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().filename().string().rfind("regression-", 0) != 0) continue;
    ++seeds;
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    absl::StatusOr<Json> json = ParseYaml(text.str());
    if (!json.ok()) continue;
    absl::StatusOr<Json> valid = ValidateDocument(*json);
    if (!valid.ok()) continue;
    absl::StatusOr<Json> again = ValidateDocument(*valid);
    ASSERT_TRUE(again.ok()) << entry.path() << ": " << again.status();
    EXPECT_TRUE(*again == *valid) << entry.path();
    absl::StatusOr<Json> reread = ParseYaml(ToYaml(*valid));
    ASSERT_TRUE(reread.ok()) << entry.path() << ": " << reread.status() << "\n" << ToYaml(*valid);
    EXPECT_TRUE(*reread == *valid)
        << entry.path() << "\nprinted:\n"
        << ToYaml(*valid)
        << "\nvalid: " << valid->dump(-1, ' ', true, Json::error_handler_t::replace)
        << "\nreread: " << reread->dump(-1, ' ', true, Json::error_handler_t::replace);
  }
  EXPECT_GE(seeds, 7);
}

}  // namespace
}  // namespace tessera::api
