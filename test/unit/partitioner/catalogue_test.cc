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
