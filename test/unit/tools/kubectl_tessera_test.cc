// kubectl-tessera's layout map and explanations, from API objects built here.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "explain.h"
#include "layout.h"
#include "tessera/api/crd.h"
#include "tessera/api/strings.h"
#include "tessera/partitioner/catalogue.h"

namespace tessera::kubectl {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kDriver[] = "gpu.tessera.dev";

api::GpuInfo A100(int index) {
  const partitioner::GpuModel& m = *partitioner::FindBuiltinModel("a100-40gb");
  api::GpuInfo info;
  info.index = index;
  info.uuid = StrCat("GPU-", index);
  info.product = m.product_name;
  info.model = m.key;
  info.memory =
      api::Quantity::FromInt64(m.memory_mib * 1024 * 1024, api::Quantity::Format::kBinarySI);
  info.mig_capable = true;
  info.mig_enabled = true;
  info.mig_profiles = partitioner::InventoryProfiles(m);
  info.health = api::HealthState::kHealthy;
  return info;
}

Json Inventory(std::vector<api::GpuInfo> gpus) {
  api::GpuInventory inv;
  inv.metadata.name = "n0";
  inv.spec.node_name = "n0";
  inv.spec.driver_version = "550.90.07";
  inv.spec.gpus = std::move(gpus);
  Json j = inv;
  j["apiVersion"] = "tessera.dev/v1alpha1";
  j["kind"] = "GpuInventory";
  return j;
}

Json Slice(std::string pool, std::vector<std::pair<std::string, std::string>> devices,
           std::string driver = kDriver) {
  Json s = {{"metadata", {{"name", pool + "-x"}}},
            {"spec", {{"driver", driver}, {"pool", {{"name", pool}}}, {"devices", Json::array()}}}};
  for (const auto& [name, type] : devices) {
    Json d = {{"name", name}, {"attributes", {{"type", {{"string", type}}}}}};
    if (type == "mig") {  // gpu-0-mig-1g5gb-p0: profileClass 1g
      const std::string token = name.substr(name.find("-mig-") + 5);
      d["attributes"]["profileClass"]["string"] = token.substr(0, token.find('g') + 1);
    }
    s["spec"]["devices"].push_back(d);
  }
  return s;
}

Json Claim(std::string name, std::string device, std::string pool = "n0",
           Json consumed = Json::object(), std::string driver = kDriver) {
  Json result = {{"request", "gpu"}, {"driver", driver}, {"pool", pool}, {"device", device}};
  if (!consumed.empty()) result["consumedCapacity"] = consumed;
  return {{"metadata", {{"namespace", "default"}, {"name", name}}},
          {"spec", {{"devices", {{"requests", Json::array()}}}}},
          {"status",
           {{"allocation", {{"devices", {{"results", Json::array({result})}}}}},
            {"reservedFor", Json::array({{{"resource", "pods"}, {"name", name + "-pod"}}})}}}};
}

class LayoutTest : public ::testing::Test {
 protected:
  LayoutTest() {
    std::vector<api::GpuInfo> gpus;
    for (int i = 0; i < 8; ++i) gpus.push_back(A100(i));
    gpus[0].mig_instances.push_back({.profile = "3g.20gb",
                                     .placement = {.start = 4, .size = 4},
                                     .gpu_instance_id = 2,
                                     .compute_instance_id = 0,
                                     .uuid = "MIG-b",
                                     .owner_claim = api::ClaimReference{"default", "b", "u-b"},
                                     .created_by_tessera = true});
    gpus[1].mig_instances.push_back({.profile = "2g.10gb",
                                     .placement = {.start = 2, .size = 2},
                                     .gpu_instance_id = 3,
                                     .compute_instance_id = 0,
                                     .uuid = "MIG-orphan",
                                     .owner_claim = std::nullopt,
                                     .created_by_tessera = false});
    inventory_ = Inventory(std::move(gpus));
    slices_ = {Slice("n0", {{"gpu-0", "gpu"},
                            {"gpu-0-mig-1g5gb-p0", "mig"},
                            {"gpu-0-mig-1g5gb-p1", "mig"},
                            {"gpu-0-mig-3g20gb-p4", "mig"},
                            {"gpu-1-mig-1g5gb-p2", "mig"},
                            {"gpu-4-mps", "mps"},
                            {"gpu-5-ts", "timeslice"},
                            {"gpu-6", "gpu"}}),
               Slice("n1", {{"gpu-2", "gpu"}}), Slice("n0", {{"gpu-7", "gpu"}}, "other.dev")};
    claims_ = {Claim("a", "gpu-0-mig-1g5gb-p0"),
               Claim("b", "gpu-0-mig-3g20gb-p4"),
               Claim("c", "gpu-4-mps", "n0", {{"memory", "10Gi"}, {"compute", "25"}}),
               Claim("d", "gpu-4-mps", "n0", {{"memory", "20Gi"}, {"compute", "50"}}),
               Claim("e", "gpu-5-ts"),
               Claim("f", "gpu-5-ts"),
               Claim("g", "gpu-6"),
               Claim("elsewhere", "gpu-2", "n1"),
               Claim("foreign", "gpu-7", "n0", Json::object(), "other.dev")};
  }
  NodeLayout Build() {
    absl::StatusOr<NodeLayout> l = BuildNodeLayout(inventory_, slices_, claims_, kDriver);
    EXPECT_TRUE(l.ok()) << l.status();
    return l.ok() ? *l : NodeLayout{};
  }
  static std::vector<std::string> Texts(const GpuRow& row) {
    std::vector<std::string> out;
    for (const Span& s : row.spans) out.push_back(StrCat(s.start, "+", s.size, ":", s.text));
    return out;
  }

  Json inventory_;
  std::vector<Json> slices_;
  std::vector<Json> claims_;
};

TEST_F(LayoutTest, CellsFollowPlacementsAndShareMemory) {
  NodeLayout l = Build();
  ASSERT_EQ(l.gpus.size(), 8u);
  EXPECT_EQ(l.product, "8 x NVIDIA A100-SXM4-40GB");
  EXPECT_EQ(l.published_devices, 8);  // other pools and drivers are not counted
  // MIG: 1g.5gb at slice 0, 3g.20gb over slices 4-7, the rest free.
  EXPECT_EQ(l.gpus[0].mode, "mig");
  EXPECT_THAT(Texts(l.gpus[0]),
              ElementsAre("0+1:a 1g.5gb", "1+1:", "2+1:", "3+1:", "4+4:b 3g.20gb"));
  // An instance the node reports without a claim is drawn, and noted.
  EXPECT_THAT(Texts(l.gpus[1]),
              ElementsAre("0+1:", "1+1:", "2+2:(2g.10gb)", "4+1:", "5+1:", "6+1:", "7+1:"));
  // MPS: 10Gi and 20Gi of 40Gi are 2 and 4 of 8 cells; the rest of the share partition has room.
  EXPECT_EQ(l.gpus[4].mode, "mps");
  EXPECT_THAT(Texts(l.gpus[4]), ElementsAre("0+2:c mps 10Gi", "2+4:d mps 20Gi", "6+2:mps"));
  // Time-slicing: the whole GPU, both claims.
  EXPECT_THAT(Texts(l.gpus[5]), ElementsAre("0+8:e,f ts"));
  EXPECT_THAT(Texts(l.gpus[6]), ElementsAre("0+8:g whole"));
  EXPECT_EQ(l.gpus[6].mode, "whole");
  EXPECT_EQ(l.gpus[7].mode, "none");  // only another driver publishes it

  // The legend: one letter per claim, the instance UUID, the pods; other pools are not here.
  std::vector<std::string> labels;
  for (const ClaimUse& u : l.claims) labels.push_back(u.label + "=" + u.claim);
  EXPECT_THAT(labels, ElementsAre("a=default/a", "b=default/b", "c=default/c", "d=default/d",
                                  "e=default/e", "f=default/f", "g=default/g"));
  EXPECT_EQ(l.claims[1].instance_uuid, "MIG-b");
  EXPECT_EQ(l.claims[1].partition, "MIG 3g.20gb at slice 4");
  EXPECT_EQ(l.claims[2].partition, "MPS share of gpu-4: 10Gi, 25% SMs");
  EXPECT_THAT(l.notes, ElementsAre(HasSubstr("gpu-1: MIG 2g.10gb at slice 2 exists without a "
                                             "claim (not created by tessera)")));
}

TEST_F(LayoutTest, RendersRowsOfCellsAndALegend) {
  const std::string text = RenderLayout(Build());
  EXPECT_THAT(text, HasSubstr("node n0: 8 x NVIDIA A100-SXM4-40GB"));
  EXPECT_THAT(text, HasSubstr("(one cell ~ 5Gi)"));
  // Each cell is 7 characters; a span of k cells is 7k wide.
  EXPECT_THAT(
      text,
      HasSubstr("  0    mig         [a 1g ][     ][     ][     ][        b 3g.20gb         ]\n"));
  EXPECT_THAT(
      text,
      HasSubstr("  4    mps         [ c mps 10Gi ][        d mps 20Gi        ][    mps     ]\n"));
  EXPECT_THAT(text,
              HasSubstr("  b    default/b  gpu-0-mig-3g20gb-p4  MIG 3g.20gb at slice 4 (MIG-b), "
                        "pod b-pod"));
  EXPECT_THAT(text, Not(HasSubstr("elsewhere")));
  EXPECT_THAT(text, Not(HasSubstr("foreign")));
}

TEST_F(LayoutTest, FreeDevicesAreThoseWhoseSlicesNoClaimHolds) {
  NodeLayout l = Build();
  EXPECT_TRUE(DeviceLooksFree(l, "gpu-0-mig-1g5gb-p1"));
  EXPECT_FALSE(DeviceLooksFree(l, "gpu-0-mig-1g5gb-p0"));   // a has it
  EXPECT_FALSE(DeviceLooksFree(l, "gpu-0-mig-1g5gb-p5"));   // inside b's 3g
  EXPECT_FALSE(DeviceLooksFree(l, "gpu-0-mig-3g20gb-p0"));  // overlaps a
  EXPECT_FALSE(DeviceLooksFree(l, "gpu-0"));                // the whole GPU is partly taken
  EXPECT_FALSE(DeviceLooksFree(l, "gpu-1-mig-1g5gb-p2"));   // the unclaimed instance is there
  EXPECT_TRUE(DeviceLooksFree(l, "gpu-1-mig-1g5gb-p0"));
  EXPECT_TRUE(DeviceLooksFree(l, "gpu-4-mps"));  // more MPS shares fit
  EXPECT_FALSE(DeviceLooksFree(l, "gpu-4-ts"));  // not next to MPS shares
  EXPECT_FALSE(DeviceLooksFree(l, "gpu-4"));
  EXPECT_TRUE(DeviceLooksFree(l, "gpu-3"));
  EXPECT_FALSE(DeviceLooksFree(l, "gpu-9"));
  EXPECT_FALSE(DeviceLooksFree(l, "not-a-device"));
}

TEST_F(LayoutTest, ABadInventoryIsAnErrorNamingIt) {
  inventory_["spec"]["gpus"][0]["bogus"] = 1;
  absl::StatusOr<NodeLayout> l = BuildNodeLayout(inventory_, slices_, claims_, kDriver);
  ASSERT_FALSE(l.ok());
  EXPECT_THAT(std::string(l.status().message()), HasSubstr("GpuInventory n0"));
}

TEST_F(LayoutTest, AClaimOnAnUnknownGpuIsANoteNotACrash) {
  claims_.push_back(Claim("lost", "gpu-12-mig-1g5gb-p0"));
  claims_.push_back(Claim("badname", "gpu-0-mig-9g99gb-p0"));
  NodeLayout l = Build();
  EXPECT_THAT(l.notes, testing::Contains(HasSubstr("default/lost: device gpu-12-mig-1g5gb-p0 is "
                                                   "not a GPU of this node")));
  EXPECT_THAT(l.notes, testing::Contains(HasSubstr("default/badname")));
}

TEST(HintsFromCelTest, ReadsTypeAndProfile) {
  SelectorHints h = HintsFromCel(
      R"(device.driver == "gpu.tessera.dev" && device.attributes["gpu.tessera.dev"].type == "mig")");
  EXPECT_EQ(h.type, "mig");
  h = HintsFromCel(R"(device.attributes["gpu.tessera.dev"].profileClass == "3g")");
  EXPECT_EQ(h.profile_class, "3g");
  EXPECT_EQ(h.type, "");
  h = HintsFromCel(R"(device.attributes["gpu.tessera.dev"].profile == "1g.10gb")");
  EXPECT_EQ(h.profile, "1g.10gb");
}

TEST_F(LayoutTest, ExplainsAnAllocatedClaim) {
  ExplainInput in;
  in.driver = kDriver;
  in.claim = claims_[1];
  in.layouts = {Build()};
  in.pods = {{{"metadata", {{"name", "b-pod"}}},
              {"spec", {{"nodeName", "n0"}, {"resourceClaims", Json::array()}}},
              {"status",
               {{"phase", "Running"},
                {"resourceClaimStatuses", {{{"name", "gpu"}, {"resourceClaimName", "b"}}}}}}}};
  const std::string text = ExplainClaim(in);
  EXPECT_THAT(text, HasSubstr("claim default/b: allocated"));
  EXPECT_THAT(text, HasSubstr("request gpu: n0/gpu-0-mig-3g20gb-p4"));
  EXPECT_THAT(text, HasSubstr("MIG 3g.20gb at slice 4 on gpu-0 (a100-40gb) of node n0"));
  EXPECT_THAT(text, HasSubstr("MIG instance: MIG-b"));
  EXPECT_THAT(text, HasSubstr("pod b-pod: Running on n0 (the kubelet prepared the claim)"));
}

TEST_F(LayoutTest, ExplainsAPendingClaimWithTheSchedulersWordsAndTheRoomLeft) {
  ExplainInput in;
  in.driver = kDriver;
  in.layouts = {Build()};
  in.slices = slices_;
  in.classes = {
      {{"metadata", {{"name", "mig.gpu.tessera.dev"}}},
       {"spec",
        {{"selectors",
          {{{"cel",
             {{"expression", R"(device.attributes["gpu.tessera.dev"].type == "mig")"}}}}}}}}}};
  in.claim = {
      {"metadata", {{"namespace", "default"}, {"name", "big"}}},
      {"spec",
       {{"devices",
         {{"requests",
           {{{"name", "gpu"},
             {"exactly",
              {{"deviceClassName", "mig.gpu.tessera.dev"},
               {"selectors",
                {{{"cel",
                   {{"expression",
                     R"(device.attributes["gpu.tessera.dev"].profileClass == "1g")"}}}}}}}}}}}}}}}};
  in.pods = {{{"metadata", {{"name", "big-pod"}}},
              {"spec", {{"resourceClaims", {{{"name", "gpu"}, {"resourceClaimName", "big"}}}}}},
              {"status",
               {{"phase", "Pending"},
                {"conditions",
                 {{{"type", "PodScheduled"},
                   {"status", "False"},
                   {"reason", "Unschedulable"},
                   {"message", "0/2 nodes are available: 2 cannot allocate all claims."}}}}}}}};
  const std::string text = ExplainClaim(in);
  EXPECT_THAT(text, HasSubstr("claim default/big: pending (not allocated)"));
  EXPECT_THAT(text, HasSubstr("not scheduled (Unschedulable): 0/2 nodes are available: 2 cannot "
                              "allocate all claims."));
  EXPECT_THAT(text, HasSubstr("request gpu: 1 device(s) of class mig.gpu.tessera.dev where"));
  // 1g devices published on n0: p0 (held by a), p1 (free), gpu-1 p2 (the orphan instance).
  EXPECT_THAT(text,
              HasSubstr("node n0: 3 matching device(s) published, 1 with free memory slices now"));

  in.claim["spec"]["devices"]["requests"][0]["exactly"]["deviceClassName"] = "nope";
  EXPECT_THAT(ExplainClaim(in), HasSubstr("DeviceClass nope does not exist"));
}

}  // namespace
}  // namespace tessera::kubectl
