// The control plane of the test environment is real: the API server validates ResourceSlices as a
// cluster would, and the scheduler's allocator honours shared counters, so MIG-style devices whose
// memory slices overlap are never allocated together.

#include <set>
#include <string>
#include <vector>

#include "framework/cluster.h"
#include "framework/objects.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tessera/api/strings.h"

namespace tessera::e2e {
namespace {

std::vector<std::string> MemorySlices(int start, int size) {
  std::vector<std::string> out;
  for (int i = start; i < start + size; ++i) out.push_back(StrCat("memory-slice-", i));
  return out;
}

class ControlPlaneTest : public E2ETest {
 protected:
  // A pool for node `node` laid out as from 1.35 on: one slice with the GPU's counter set, one with
  // the devices. An A100-40GB-like GPU: the whole GPU (slices 0-7), 4g.20gb at 0, and 3g.20gb at
  // 0 and at 4.
  void PublishMigPool(const std::string& node) {
    const std::string counters = "gpu-0-memory";
    Json counter_slice = Slice(Unique("counters"), driver_, node, 1, 2);
    counter_slice["spec"]["sharedCounters"] = {CounterSet(counters, MemorySlices(0, 8))};
    Json device_slice = Slice(Unique("devices"), driver_, node, 1, 2);
    device_slice["spec"]["devices"] = {
        Device("gpu-0", {{"type", "gpu"}}, counters, MemorySlices(0, 8)),
        Device("gpu-0-mig-4g20gb-0", {{"type", "mig"}, {"profile", "4g.20gb"}}, counters,
               MemorySlices(0, 4)),
        Device("gpu-0-mig-3g20gb-0", {{"type", "mig"}, {"profile", "3g.20gb"}}, counters,
               MemorySlices(0, 4)),
        Device("gpu-0-mig-3g20gb-4", {{"type", "mig"}, {"profile", "3g.20gb"}}, counters,
               MemorySlices(4, 4)),
    };
    for (const Json& slice : {counter_slice, device_slice}) {
      E2E_ASSERT_OK(cluster().Create(slice.dump()));
      DeleteAtEnd("resourceslice", slice["metadata"]["name"]);
    }
  }

  // A DeviceClass for this driver's MIG devices and a template for one `profile` device.
  void CreateClassAndTemplate(const std::string& template_name, const std::string& profile) {
    const std::string class_name = Unique("mig");
    E2E_ASSERT_OK(
        cluster().Create(DeviceClass(class_name, driver_,
                                     StrCat("device.attributes[\"", driver_, "\"].type == \"mig\""))
                             .dump()));
    DeleteAtEnd("deviceclass", class_name);
    E2E_ASSERT_OK(Create(
        ClaimTemplate(template_name, class_name, "gpu",
                      StrCat("device.attributes[\"", driver_, "\"].profile == \"", profile, "\""))
            .dump()));
  }

  // The device allocated to the claim generated for `pod`, once the scheduler has bound it.
  absl::StatusOr<std::string> AllocatedDevice(const std::string& pod) {
    absl::StatusOr<Json> p = Get("pod", pod);
    if (!p.ok()) return p.status();
    const Json& statuses = (*p)["status"].value("resourceClaimStatuses", Json::array());
    if (statuses.empty() || !statuses[0].contains("resourceClaimName")) {
      return absl::UnavailableError(StrCat("pod ", pod, " has no generated claim yet"));
    }
    absl::StatusOr<Json> claim =
        Get("resourceclaim", statuses[0]["resourceClaimName"].get<std::string>());
    if (!claim.ok()) return claim.status();
    const Json* results = &(*claim)["status"]["allocation"]["devices"]["results"];
    if (!(*claim)["status"].contains("allocation") || results->empty()) {
      return absl::UnavailableError(StrCat("claim of pod ", pod, " is not allocated"));
    }
    if ((*results)[0]["driver"] != driver_ || (*results)[0]["pool"] != "n1") {
      return absl::InternalError(StrCat("unexpected allocation ", results->dump()));
    }
    if ((*p)["spec"].value("nodeName", "") != "n1") {
      return absl::UnavailableError(StrCat("pod ", pod, " is not bound to n1 yet"));
    }
    return (*results)[0]["device"].get<std::string>();
  }

  absl::Status Unschedulable(const std::string& pod) {
    absl::StatusOr<Json> p = Get("pod", pod);
    if (!p.ok()) return p.status();
    for (const Json& c : (*p)["status"].value("conditions", Json::array())) {
      if (c["type"] == "PodScheduled" && c["status"] == "False" &&
          c.value("reason", "") == "Unschedulable") {
        return absl::OkStatus();
      }
    }
    return absl::UnavailableError(
        StrCat("pod ", pod, " not (yet) marked unschedulable: ", (*p)["status"].dump()));
  }

  void TearDown() override {
    // Nothing runs these pods (no kubelet-sim on n1): remove them outright.
    if (Cluster::Get() != nullptr && Cluster::Get()->available() && !ns().empty()) {
      cluster().Kubectl({"delete", "pods", "--all", "-n", ns(), "--grace-period=0", "--force"});
    }
    E2ETest::TearDown();
  }

  std::string driver_ = Unique("drv") + ".e2e.tessera.dev";
};

TEST_F(ControlPlaneTest, ServerReportsPinnedVersionAndNodesAreReadyGpuNodes) {
  CommandResult version = cluster().Kubectl({"get", "--raw", "/version"});
  ASSERT_TRUE(version.ok()) << version.Describe();
  Json v = Json::parse(version.out);
  EXPECT_EQ(v["gitVersion"], cluster().EnvValue("K8S_VERSION"));
  EXPECT_EQ(v["major"], "1");
  EXPECT_EQ(v["minor"], "36");

  for (const std::string& name : cluster().nodes()) {
    absl::StatusOr<Json> node = cluster().GetJson({"node", name});
    E2E_ASSERT_OK(node.status());
    const Json& labels = (*node)["metadata"]["labels"];
    EXPECT_EQ(labels["kubernetes.io/hostname"], name);
    EXPECT_EQ(labels["feature.node.kubernetes.io/pci-10de.present"], "true");
    EXPECT_FALSE((*node)["spec"].contains("taints")) << (*node)["spec"].dump();
    bool ready = false;
    for (const Json& c : (*node)["status"]["conditions"]) {
      ready |= c["type"] == "Ready" && c["status"] == "True";
    }
    EXPECT_TRUE(ready) << name;
    EXPECT_EQ((*node)["status"]["nodeInfo"]["kubeletVersion"], cluster().EnvValue("K8S_VERSION"));
  }
}

TEST_F(ControlPlaneTest, SchedulerAllocatesNonOverlappingPlacementsThenLeavesThirdPodPending) {
  PublishMigPool("n1");
  CreateClassAndTemplate("mig-3g", "3g.20gb");
  for (const char* pod : {"first", "second"}) {
    E2E_ASSERT_OK(Create(PodWithClaim(pod, "mig-3g").dump()));
  }
  std::set<std::string> allocated;
  for (const char* pod : {"first", "second"}) {
    std::string device;
    E2E_ASSERT_OK(Eventually(
        [&]() -> absl::Status {
          absl::StatusOr<std::string> d = AllocatedDevice(pod);
          if (d.ok()) device = *d;
          return d.status();
        },
        60s));
    allocated.insert(device);
  }
  // Both 3g placements, each once: their memory slices (0-3 and 4-7) do not overlap.
  EXPECT_EQ(allocated, (std::set<std::string>{"gpu-0-mig-3g20gb-0", "gpu-0-mig-3g20gb-4"}));

  // Every memory slice is taken now; a third 3g device cannot be had.
  E2E_ASSERT_OK(Create(PodWithClaim("third", "mig-3g").dump()));
  E2E_ASSERT_OK(Eventually([&] { return Unschedulable("third"); }, 60s));
  EXPECT_FALSE(AllocatedDevice("third").ok());
}

TEST_F(ControlPlaneTest, AllocatedPartitionExcludesOverlappingProfileAndWholeGpu) {
  PublishMigPool("n1");
  CreateClassAndTemplate("mig-4g", "4g.20gb");
  E2E_ASSERT_OK(Create(PodWithClaim("four", "mig-4g").dump()));
  E2E_ASSERT_OK(Eventually([&] { return AllocatedDevice("four").status(); }, 60s));
  EXPECT_EQ(AllocatedDevice("four").value_or(""), "gpu-0-mig-4g20gb-0");

  // 3g.20gb at 0 overlaps the 4g; the scheduler must pick the placement at 4.
  CreateClassAndTemplate("mig-3g", "3g.20gb");
  E2E_ASSERT_OK(Create(PodWithClaim("three", "mig-3g").dump()));
  E2E_ASSERT_OK(Eventually([&] { return AllocatedDevice("three").status(); }, 60s));
  EXPECT_EQ(AllocatedDevice("three").value_or(""), "gpu-0-mig-3g20gb-4");

  // The whole GPU consumes every memory slice, so it cannot be allocated any more.
  const std::string whole_class = Unique("whole");
  E2E_ASSERT_OK(
      cluster().Create(DeviceClass(whole_class, driver_,
                                   StrCat("device.attributes[\"", driver_, "\"].type == \"gpu\""))
                           .dump()));
  DeleteAtEnd("deviceclass", whole_class);
  E2E_ASSERT_OK(Create(ClaimTemplate("whole", whole_class).dump()));
  E2E_ASSERT_OK(Create(PodWithClaim("whole", "whole").dump()));
  E2E_ASSERT_OK(Eventually([&] { return Unschedulable("whole"); }, 60s));
}

// Strict validation: these writes must fail in the API server itself.
class SliceValidationTest : public E2ETest {
 protected:
  absl::Status CreateSlice(const Json& slice) {
    DeleteAtEnd("resourceslice", slice["metadata"]["name"]);
    return cluster().Create(slice.dump());
  }
  std::string driver_ = Unique("val") + ".e2e.tessera.dev";
};

Json SliceWithCountedDevices(const std::string& name, const std::string& driver, int devices) {
  Json slice = Slice(name, driver, "n1");
  slice["spec"]["devices"] = Json::array();
  for (int i = 0; i < devices; ++i) {
    slice["spec"]["devices"].push_back(
        Device(StrCat("dev-", i), {}, "gpu-0-memory", {"memory-slice-0"}));
  }
  return slice;
}

TEST_F(SliceValidationTest, SliceWith64CountedDevicesIsAcceptedAnd65IsRejected) {
  E2E_ASSERT_OK(CreateSlice(SliceWithCountedDevices(Unique("ok"), driver_, 64)));
  absl::Status rejected = CreateSlice(SliceWithCountedDevices(Unique("bad"), driver_, 65));
  ASSERT_FALSE(rejected.ok());
  EXPECT_THAT(std::string(rejected.message()), ::testing::HasSubstr("spec.devices"));
  EXPECT_THAT(std::string(rejected.message()), ::testing::HasSubstr("64"));
}

TEST_F(SliceValidationTest, DottedCounterNameIsRejected) {
  Json slice = Slice(Unique("dotted"), driver_, "n1");
  slice["spec"]["sharedCounters"] = {CounterSet("gpu-0", {"memory.slice.0"})};
  absl::Status rejected = CreateSlice(slice);
  ASSERT_FALSE(rejected.ok());
  EXPECT_THAT(std::string(rejected.message()),
              ::testing::HasSubstr("spec.sharedCounters[0].counters"));
  EXPECT_THAT(std::string(rejected.message()), ::testing::HasSubstr("memory.slice.0"));
}

TEST_F(SliceValidationTest, DevicesAndSharedCountersInOneSliceAreRejected) {
  Json slice = SliceWithCountedDevices(Unique("mixed"), driver_, 1);
  slice["spec"]["sharedCounters"] = {CounterSet("gpu-0-memory", {"memory-slice-0"})};
  absl::Status rejected = CreateSlice(slice);
  ASSERT_FALSE(rejected.ok());
  EXPECT_THAT(std::string(rejected.message()), ::testing::HasSubstr("sharedCounters"));
}

TEST_F(SliceValidationTest, UnknownFieldIsRejectedUnderStrictValidation) {
  Json slice = Slice(Unique("typo"), driver_, "n1");
  slice["spec"]["devices"] = {{{"name", "dev-0"}, {"atributes", Json::object()}}};
  absl::Status rejected = CreateSlice(slice);
  ASSERT_FALSE(rejected.ok());
  EXPECT_THAT(std::string(rejected.message()), ::testing::HasSubstr("unknown field"));
  EXPECT_THAT(std::string(rejected.message()), ::testing::HasSubstr("atributes"));
}

}  // namespace
}  // namespace tessera::e2e
