// A node as the controller publishes it: our driver's allocations read from claims, turned into
// occupancy that steers the device order, warnings for allocations the model cannot place, and
// device objects kept between syncs.

#include "tessera/controller/node_model.h"

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tessera/api/crd.h"
#include "tessera/api/strings.h"
#include "tessera/partitioner/catalogue.h"
#include "tessera/partitioner/device_model.h"
#include "tessera/partitioner/device_name.h"
#include "tessera/partitioner/placement.h"

namespace tessera::controller {
namespace {

using ::testing::AllOf;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;

constexpr char kDriver[] = "gpu.tessera.dev";

// ---- Allocations from claims ---------------------------------------------------------------

api::Json Claim(api::Json results) {
  return {{"apiVersion", "resource.k8s.io/v1"},
          {"kind", "ResourceClaim"},
          {"metadata", {{"namespace", "team-a"}, {"name", "train"}, {"uid", "c-1"}}},
          {"spec", {{"devices", {{"requests", api::Json::array()}}}}},
          {"status", {{"allocation", {{"devices", {{"results", std::move(results)}}}}}}}};
}

TEST(AllocatedDevicesOfTest, ReadsOurDriversResultsWithCapacityAndShare) {
  const api::Json claim = Claim(api::Json::array(
      {{{"request", "gpu"},
        {"driver", kDriver},
        {"pool", "node-a"},
        {"device", "gpu-1-mps"},
        {"shareID", "7f3c"},
        {"consumedCapacity", {{"memory", "10Gi"}, {"compute", "25"}}}},
       {{"request", "nic"}, {"driver", "net.example.com"}, {"pool", "node-a"}, {"device", "eth0"}},
       {{"request", "mig"},
        {"driver", kDriver},
        {"pool", "node-a"},
        {"device", "gpu-0-mig-3g20gb-p4"}}}));

  const std::vector<AllocatedDevice> devices = AllocatedDevicesOf(claim, kDriver);
  ASSERT_THAT(devices, SizeIs(2));
  EXPECT_EQ(devices[0].pool, "node-a");
  EXPECT_EQ(devices[0].device, "gpu-1-mps");
  EXPECT_EQ(devices[0].claim, "team-a/train");
  EXPECT_EQ(devices[0].share_id, "7f3c");
  EXPECT_EQ(devices[0].memory_mib, 10240);
  EXPECT_EQ(devices[0].compute_percent, 25);

  EXPECT_EQ(devices[1].device, "gpu-0-mig-3g20gb-p4");
  EXPECT_EQ(devices[1].claim, "team-a/train");
  EXPECT_EQ(devices[1].share_id, "");
  EXPECT_EQ(devices[1].memory_mib, 0);
  EXPECT_EQ(devices[1].compute_percent, 0);

  const std::vector<AllocatedDevice> theirs = AllocatedDevicesOf(claim, "net.example.com");
  ASSERT_THAT(theirs, SizeIs(1));
  EXPECT_EQ(theirs[0].device, "eth0");
}

TEST(AllocatedDevicesOfTest, AnUnallocatedClaimHasNone) {
  api::Json claim = Claim(api::Json::array());
  EXPECT_THAT(AllocatedDevicesOf(claim, kDriver), IsEmpty());
  claim.erase("status");
  EXPECT_THAT(AllocatedDevicesOf(claim, kDriver), IsEmpty());
  claim["status"] = {{"reservedFor", api::Json::array()}};
  EXPECT_THAT(AllocatedDevicesOf(claim, kDriver), IsEmpty());
}

// ---- The node model ------------------------------------------------------------------------

const partitioner::GpuModel& A100() { return *partitioner::FindBuiltinModel("a100-40gb"); }

api::GpuInfo A100Info(int index) {
  const partitioner::GpuModel& m = A100();
  api::GpuInfo info;
  info.index = index;
  info.uuid = StrCat("GPU-a100-", index, "-0000-1111-2222-333333333333");
  info.product = m.product_name;
  info.model = m.key;
  info.memory =
      api::Quantity::FromInt64(m.memory_mib * 1024 * 1024, api::Quantity::Format::kBinarySI);
  info.compute_capability = m.compute_capability;
  info.pci_bus_id = StrCat("0000:", 20 + index, ":00.0");
  info.mig_capable = true;
  info.mig_enabled = true;
  info.mig_profiles = partitioner::InventoryProfiles(m);
  return info;
}

class NodeModelTest : public ::testing::Test {
 protected:
  NodeModelTest() {
    inventory_.node_name = "node-a";
    inventory_.driver_version = "550.54.15";
    inventory_.cuda_driver_version = "12.4";
    inventory_.gpus = {A100Info(0), A100Info(1)};
    api::GpuPolicy dynamic;
    dynamic.mode = api::PartitionMode::kMigDynamic;
    policy_.gpus = {dynamic};
  }

  NodeModelInput Input(std::vector<AllocatedDevice> allocated = {}) {
    return {.inventory = &inventory_, .policy = &policy_, .allocated = std::move(allocated)};
  }

  static AllocatedDevice Allocation(std::string device, std::string claim = "team-a/train") {
    AllocatedDevice a;
    a.pool = "node-a";
    a.device = std::move(device);
    a.claim = std::move(claim);
    return a;
  }

  NodeModel BuildOk(NodeModeler& modeler, const NodeModelInput& input) {
    absl::StatusOr<NodeModel> model = modeler.Build(input);
    EXPECT_TRUE(model.ok()) << model.status();
    return model.ok() ? *std::move(model) : NodeModel{};
  }

  partitioner::Placer placer_{partitioner::Policy::kTessera};
  api::GpuInventorySpec inventory_;
  api::GpuPartitionPolicySpec policy_;
};

std::vector<std::string> Names(const NodeModel& m) {
  std::vector<std::string> out;
  for (const auto& d : m.devices.devices) out.push_back(d->name);
  return out;
}

// The first published 1g (1g.5gb) device: the one the scheduler gives the next 1g request.
std::optional<partitioner::DeviceName> First1g(const NodeModel& m) {
  for (const auto& d : m.devices.devices) {
    absl::StatusOr<partitioner::DeviceName> n = partitioner::DeviceName::Parse(d->name);
    if (n.ok() && n->mig && n->mig->profile_token == "1g5gb" && !n->share) return *n;
  }
  return std::nullopt;
}

TEST_F(NodeModelTest, AnIdleNodePublishesEveryPartitionOfBothGpus) {
  NodeModeler modeler(placer_, partitioner::ApiFeatures{});
  const NodeModel m = BuildOk(modeler, Input());
  EXPECT_THAT(m.warnings, IsEmpty());
  EXPECT_THAT(m.occupancy, ElementsAre("empty", "empty"));
  const std::vector<std::string> names = Names(m);
  EXPECT_THAT(names, Contains("gpu-0-mig-3g20gb-p4"));
  EXPECT_THAT(names, Contains("gpu-1-mig-1g5gb-p6"));
  EXPECT_THAT(names, Contains("gpu-0"));
  EXPECT_THAT(m.devices.counter_sets, SizeIs(2));
  ASSERT_TRUE(First1g(m).has_value());
}

TEST_F(NodeModelTest, AnAllocationOccupiesItsPlacementAndSteersTheOrder) {
  NodeModeler modeler(placer_, partitioner::ApiFeatures{});
  const NodeModel idle = BuildOk(modeler, Input());
  const NodeModel busy = BuildOk(modeler, Input({Allocation("gpu-0-mig-3g20gb-p4")}));

  EXPECT_THAT(busy.warnings, IsEmpty());
  ASSERT_THAT(busy.occupancy, SizeIs(2));
  EXPECT_EQ(busy.occupancy[0], "3g.20gb@4");
  EXPECT_EQ(busy.occupancy[1], "empty");

  const std::optional<partitioner::DeviceName> before = First1g(idle);
  const std::optional<partitioner::DeviceName> after = First1g(busy);
  ASSERT_TRUE(before.has_value());
  ASSERT_TRUE(after.has_value());
  EXPECT_NE(*after, *before) << "the allocation must change where the next 1g goes: "
                             << before->ToString();
  // The next 1g fills the busy GPU's free half, not the 3g's slices or the idle GPU.
  EXPECT_EQ(after->gpu, 0) << after->ToString();
  EXPECT_LT(after->mig->start, 4) << after->ToString();
  // The allocated device stays published (it counts against the GPU's counters).
  EXPECT_THAT(Names(busy), Contains("gpu-0-mig-3g20gb-p4"));
}

TEST_F(NodeModelTest, AllocationsTheModelCannotPlaceAreWarnedAbout) {
  NodeModeler modeler(placer_, partitioner::ApiFeatures{});
  const NodeModel m = BuildOk(
      modeler, Input({Allocation("gpu-9-mig-1g5gb-p0", "ns/gone"),
                      Allocation("gpu-0-mig-9g99gb-p0", "ns/odd"), Allocation("eth0", "ns/nic")}));
  ASSERT_THAT(m.warnings, SizeIs(3));
  EXPECT_THAT(m.warnings[0],
              AllOf(HasSubstr("gpu-9-mig-1g5gb-p0"), HasSubstr("ns/gone"), HasSubstr("GPU 9")));
  EXPECT_THAT(m.warnings[1], AllOf(HasSubstr("gpu-0-mig-9g99gb-p0"), HasSubstr("ns/odd")));
  EXPECT_THAT(m.warnings[2], AllOf(HasSubstr("eth0"), HasSubstr("ns/nic")));
  EXPECT_THAT(m.occupancy, ElementsAre("empty", "empty"));
  EXPECT_FALSE(m.devices.devices.empty());
}

TEST_F(NodeModelTest, TwoClaimsOnOnePlacementAreWarnedAbout) {
  NodeModeler modeler(placer_, partitioner::ApiFeatures{});
  const NodeModel m = BuildOk(modeler, Input({Allocation("gpu-1-mig-3g20gb-p0", "ns/first"),
                                              Allocation("gpu-1-mig-3g20gb-p0", "ns/second")}));
  ASSERT_THAT(m.warnings, SizeIs(1));
  EXPECT_THAT(m.warnings[0], AllOf(HasSubstr("gpu-1-mig-3g20gb-p0"), HasSubstr("ns/second")));
  EXPECT_EQ(m.occupancy[1], "3g.20gb@0");
}

TEST_F(NodeModelTest, OverlappingAllocationsAreWarnedAbout) {
  NodeModeler modeler(placer_, partitioner::ApiFeatures{});
  const NodeModel m = BuildOk(modeler, Input({Allocation("gpu-0-mig-3g20gb-p4", "ns/big"),
                                              Allocation("gpu-0-mig-1g5gb-p5", "ns/small")}));
  ASSERT_THAT(m.warnings, SizeIs(1));
  EXPECT_THAT(m.warnings[0], HasSubstr("ns/small"));
  EXPECT_EQ(m.occupancy[0], "3g.20gb@4");
}

TEST_F(NodeModelTest, InstancesWithoutAnAllocationAreUnownedOccupancy) {
  api::MigInstanceInfo admin;
  admin.profile = "2g.10gb";
  admin.placement = {.start = 2, .size = 2};
  admin.uuid = "MIG-admin";
  inventory_.gpus[1].mig_instances.push_back(admin);
  NodeModeler modeler(placer_, partitioner::ApiFeatures{});
  const NodeModel m = BuildOk(modeler, Input());
  EXPECT_THAT(m.occupancy, ElementsAre("empty", "2g.10gb@2"));
}

TEST_F(NodeModelTest, RebuildingKeepsTheDeviceObjects) {
  NodeModeler modeler(placer_, partitioner::ApiFeatures{});
  const NodeModel first = BuildOk(modeler, Input());
  const NodeModel again = BuildOk(modeler, Input());
  ASSERT_EQ(Names(first), Names(again));
  for (std::size_t i = 0; i < first.devices.devices.size(); ++i) {
    EXPECT_EQ(first.devices.devices[i], again.devices.devices[i]) << first.devices.devices[i]->name;
  }
  ASSERT_THAT(again.devices.counter_sets, SizeIs(2));
  EXPECT_EQ(first.devices.counter_sets[0], again.devices.counter_sets[0]);
  EXPECT_EQ(first.devices.counter_sets[1], again.devices.counter_sets[1]);
}

TEST_F(NodeModelTest, AnAllocationReordersButDoesNotRebuildDevices) {
  NodeModeler modeler(placer_, partitioner::ApiFeatures{});
  const NodeModel idle = BuildOk(modeler, Input());
  const NodeModel busy = BuildOk(modeler, Input({Allocation("gpu-0-mig-3g20gb-p4")}));
  ASSERT_NE(Names(idle), Names(busy));
  std::map<std::string, std::shared_ptr<const api::Device>> by_name;
  for (const auto& d : idle.devices.devices) by_name[d->name] = d;
  for (const auto& d : busy.devices.devices) {
    auto it = by_name.find(d->name);
    ASSERT_NE(it, by_name.end()) << d->name;
    EXPECT_EQ(it->second, d) << d->name << " was rebuilt";
  }
}

TEST_F(NodeModelTest, AGpuReportingOtherProfilesGetsANewModel) {
  NodeModeler modeler(placer_, partitioner::ApiFeatures{});
  BuildOk(modeler, Input());
  // A driver update renames a profile: the model is rebuilt from the new report.
  for (api::MigProfileInfo& p : inventory_.gpus[1].mig_profiles) {
    if (p.name == "1g.5gb") p.name = "1g.6gb";
  }
  const NodeModel m = BuildOk(modeler, Input());
  EXPECT_THAT(Names(m), Contains("gpu-1-mig-1g6gb-p0"));
  EXPECT_THAT(Names(m), Contains("gpu-0-mig-1g5gb-p0"));
  EXPECT_THAT(Names(m), Not(Contains("gpu-1-mig-1g5gb-p0")));
}

TEST_F(NodeModelTest, NoInventoryIsAnError) {
  NodeModeler modeler(placer_, partitioner::ApiFeatures{});
  EXPECT_FALSE(modeler.Build({}).ok());
}

}  // namespace
}  // namespace tessera::controller
