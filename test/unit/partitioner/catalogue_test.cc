#include "tessera/partitioner/catalogue.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tessera::partitioner {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(CatalogueTest, EveryBuiltinModelIsValid) {
  ASSERT_EQ(BuiltinModels().size(), 7u);
  for (const GpuModel& m : BuiltinModels()) {
    EXPECT_TRUE(ValidateModel(m).ok()) << ValidateModel(m);
  }
}

TEST(CatalogueTest, A100ThreeGPlacementsAreAtZeroAndFour) {
  const GpuModel* a100 = FindBuiltinModel("a100-40gb");
  ASSERT_NE(a100, nullptr);
  const GiProfile* p = a100->FindProfile("3g");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->name, "3g.20gb");
  EXPECT_EQ(p->nvml_id, 9);
  EXPECT_THAT(p->placements, ElementsAre(Placement{0, 4}, Placement{4, 4}));
  EXPECT_EQ(a100->FindProfile("3g.20gb"), p);
}

TEST(CatalogueTest, DoubleMemoryOneGMayStartAtSixButTwoGMayNot) {
  const GpuModel* h100 = FindBuiltinModel("h100-80gb");
  ASSERT_NE(h100, nullptr);
  EXPECT_THAT(h100->FindProfile("1g.2x")->placements,
              ElementsAre(Placement{0, 2}, Placement{2, 2}, Placement{4, 2}, Placement{6, 2}));
  EXPECT_THAT(h100->FindProfile("2g")->placements,
              ElementsAre(Placement{0, 2}, Placement{2, 2}, Placement{4, 2}));
  EXPECT_EQ(h100->FindProfile("1g")->placements.size(), 7u);   // never at slot 7
  EXPECT_EQ(h100->FindProfile("1g.2x")->multiprocessors, 26);  // not 16: read from NVML
}

TEST(CatalogueTest, FindsModelsByPciDeviceIdInEitherCase) {
  EXPECT_EQ(FindBuiltinModel("0x2330")->key, "h100-80gb");
  EXPECT_EQ(FindBuiltinModel("0x20b0")->key, "a100-40gb");
  EXPECT_EQ(FindBuiltinModel("0x20B7")->key, "a30-24gb");
  EXPECT_EQ(FindBuiltinModel("v100"), nullptr);
  EXPECT_THAT(BuiltinModelKeys(), HasSubstr("h200-141gb"));
}

TEST(CatalogueTest, A30UsesFourSlotsAndItsOwnProfileIds) {
  const GpuModel* a30 = FindBuiltinModel("a30-24gb");
  EXPECT_EQ(a30->memory_slices, 4);
  EXPECT_EQ(a30->FindProfile("4g")->nvml_id, 0);
  EXPECT_EQ(a30->FindProfile("1g")->nvml_id, 14);
  EXPECT_THAT(a30->FindProfile("2g")->placements, ElementsAre(Placement{0, 2}, Placement{2, 2}));
}

TEST(CatalogueTest, ComputeInstancesOfSevenGInclude1cTo4cAndTheFullCi) {
  const GiProfile* seven = FindBuiltinModel("a100-40gb")->FindProfile("7g");
  std::vector<std::string> names;
  for (const CiProfile& ci : seven->compute_instances) names.push_back(ci.name);
  EXPECT_THAT(names,
              ElementsAre("1c.7g.40gb", "2c.7g.40gb", "3c.7g.40gb", "4c.7g.40gb", "7g.40gb"));
  EXPECT_EQ(seven->compute_instances[0].max_instances, 7);
  EXPECT_EQ(seven->compute_instances.back().nvml_id, 4);
}

TEST(CatalogueTest, PlacementMaskCoversItsMemorySlices) {
  EXPECT_EQ((Placement{0, 8}).mask(), 0xFF);
  EXPECT_EQ((Placement{4, 4}).mask(), 0xF0);
  EXPECT_EQ((Placement{6, 2}).mask(), 0xC0);
  EXPECT_EQ((Placement{1, 1}).mask(), 0x02);
  EXPECT_EQ((Placement{7, 2}).mask(), 0);  // off the axis
}

TEST(CatalogueTest, ValidateModelNamesTheBadProfileAndField) {
  GpuModel m = *FindBuiltinModel("a100-40gb");
  m.profiles[4].placements.push_back({2, 4});
  absl::Status s = ValidateModel(m);
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("profile 3g.20gb placement {2,4}: start is not aligned"));

  m = *FindBuiltinModel("a100-40gb");
  m.profiles[1].nvml_id = 19;
  EXPECT_THAT(std::string(ValidateModel(m).message()), HasSubstr("duplicate NVML ID 19"));

  m = *FindBuiltinModel("a100-40gb");
  m.profiles[6].placements = {{0, 4}};
  EXPECT_THAT(std::string(ValidateModel(m).message()),
              HasSubstr("7g.40gb placement {0,4}: size differs"));
}

}  // namespace
}  // namespace tessera::partitioner

namespace tessera::partitioner {
namespace {

api::GpuInfo InventoryOf(const GpuModel& m) {
  api::GpuInfo gpu;
  gpu.index = 2;
  gpu.product = m.product_name;
  gpu.model = m.key;
  gpu.memory =
      api::Quantity::FromInt64(m.memory_mib * 1024 * 1024, api::Quantity::Format::kBinarySI);
  gpu.compute_capability = m.compute_capability;
  gpu.mig_profiles = InventoryProfiles(m);
  return gpu;
}

TEST(ModelFromInventoryTest, ReportedProfilesReproduceTheBuiltInModel) {
  for (const GpuModel& builtin : BuiltinModels()) {
    absl::StatusOr<GpuModel> m = ModelFromInventory(InventoryOf(builtin), "550.54.15");
    ASSERT_TRUE(m.ok()) << builtin.key << ": " << m.status();
    EXPECT_EQ(m->key, builtin.key);
    EXPECT_EQ(m->memory_slices, builtin.memory_slices) << builtin.key;
    EXPECT_EQ(m->compute_slices, builtin.compute_slices) << builtin.key;
    EXPECT_TRUE(m->four_and_three_coexist);
    ASSERT_EQ(m->profiles.size(), builtin.profiles.size());
    for (std::size_t i = 0; i < builtin.profiles.size(); ++i) {
      const GiProfile& a = m->profiles[i];
      const GiProfile& b = builtin.profiles[i];
      EXPECT_EQ(a.name, b.name);
      EXPECT_EQ(a.size_class, b.size_class) << b.name;
      EXPECT_EQ(a.nvml_id, b.nvml_id);
      EXPECT_EQ(a.memory_mib, b.memory_mib);
      EXPECT_EQ(a.placements, b.placements) << b.name;
      EXPECT_EQ(a.engines, b.engines);
      EXPECT_EQ(a.media_extension, b.media_extension);
      EXPECT_EQ(a.compute_instances.size(), b.compute_instances.size());
    }
  }
}

TEST(ModelFromInventoryTest, DiscoveredDataWinsOverTheTable) {
  const GpuModel& h100 = *FindBuiltinModel("h100-80gb");
  api::GpuInfo gpu = InventoryOf(h100);
  // A future driver renames the 1g profile, changes its ID and memory, and allows fewer places.
  gpu.mig_profiles[0].name = "1g.12gb";
  gpu.mig_profiles[0].profile_id = 31;
  gpu.mig_profiles[0].memory = api::Quantity::Parse("11Gi").value();
  gpu.mig_profiles[0].placements = {{0, 1}, {2, 1}, {4, 1}};
  absl::StatusOr<GpuModel> m = ModelFromInventory(gpu, "560.28.03");
  ASSERT_TRUE(m.ok()) << m.status();
  const GiProfile* p = m->FindProfile("1g");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->name, "1g.12gb");
  EXPECT_EQ(p->nvml_id, 31);
  EXPECT_EQ(p->memory_mib, 11 * 1024);
  EXPECT_EQ(p->placements.size(), 3u);
  EXPECT_EQ(m->FindProfile("1g.10gb"), nullptr);

  // An old driver: 4g and 3g cannot coexist.
  EXPECT_FALSE(ModelFromInventory(gpu, "470.182.03")->four_and_three_coexist);
  // A GPU without profiles falls back to the table (by product name when the key is unknown).
  api::GpuInfo bare = gpu;
  bare.mig_profiles.clear();
  bare.model.clear();
  absl::StatusOr<GpuModel> table = ModelFromInventory(bare, "550.54.15");
  ASSERT_TRUE(table.ok());
  EXPECT_EQ(table->key, "h100-80gb");
  bare.product = "NVIDIA Future GPU";
  EXPECT_EQ(ModelFromInventory(bare, "550.54.15").status().code(), absl::StatusCode::kNotFound);
}

TEST(ModelFromInventoryTest, BrokenNvmlDataIsRefusedNamingTheProfile) {
  api::GpuInfo gpu = InventoryOf(*FindBuiltinModel("a100-40gb"));
  gpu.mig_profiles[3].placements.push_back({1, 2});  // 2g.10gb at an odd start
  absl::Status s = ModelFromInventory(gpu, "550.54.15").status();
  EXPECT_NE(s.message().find("profile 2g.10gb"), std::string::npos) << s;
  EXPECT_NE(s.message().find("not aligned"), std::string::npos) << s;

  gpu = InventoryOf(*FindBuiltinModel("a100-40gb"));
  gpu.mig_profiles[1].name = "1g.5gb+mps";  // would make device names ambiguous
  s = ModelFromInventory(gpu, "550.54.15").status();
  EXPECT_NE(s.message().find("1g.5gb+mps"), std::string::npos) << s;
}

}  // namespace
}  // namespace tessera::partitioner
