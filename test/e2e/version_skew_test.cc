// `testenv up --version-skew=1.35`: the control plane emulates Kubernetes 1.35 with that release's
// feature defaults, so tessera can be tested against an older cluster than the pinned one.

#include <string>

#include "framework/cluster.h"
#include "framework/objects.h"
#include "gtest/gtest.h"
#include "tessera/kube/client.h"
#include "tessera/kube/discovery.h"

namespace tessera::e2e {
namespace {

using VersionSkewTest = E2ETest;

TEST_F(VersionSkewTest, ServerAndNodesReportTheEmulatedMinor) {
  CommandResult version = cluster().Kubectl({"get", "--raw", "/version"});
  ASSERT_TRUE(version.ok()) << version.Describe();
  Json v = Json::parse(version.out);
  EXPECT_EQ(v["gitVersion"], cluster().EnvValue("K8S_VERSION"));
  EXPECT_EQ(v["emulationMajor"], "1");
  EXPECT_EQ(v["emulationMinor"], "35");

  absl::StatusOr<Json> node = cluster().GetJson({"node", "n0"});
  E2E_ASSERT_OK(node.status());
  EXPECT_EQ((*node)["status"]["nodeInfo"]["kubeletVersion"], "v1.35.0");
}

// DRAPartitionableDevices is off by default in 1.35: the API server silently drops
// consumesCounters (and sharedCounters), the failure mode tessera's controller must detect.
TEST_F(VersionSkewTest, ApiServerDropsCountersWhenPartitionableDevicesIsOff) {
  const std::string driver = Unique("skew") + ".e2e.tessera.dev";
  const std::string name = Unique("slice");
  Json slice = Slice(name, driver, "n0");
  slice["spec"]["devices"] = {
      Device("gpu-0-mig-1g5gb-0", {{"type", "mig"}}, "gpu-0-memory", {"memory-slice-0"})};
  E2E_ASSERT_OK(cluster().Create(slice.dump()));
  DeleteAtEnd("resourceslice", name);

  absl::StatusOr<Json> stored = cluster().GetJson({"resourceslice", name});
  E2E_ASSERT_OK(stored.status());
  const Json& device = (*stored)["spec"]["devices"][0];
  EXPECT_EQ(device["name"], "gpu-0-mig-1g5gb-0");
  EXPECT_FALSE(device.contains("consumesCounters")) << device.dump();
}

// What the controller learns before choosing a slice layout: 1.35 separates counters from devices,
// but its default gates drop counters and multi-allocation devices.
TEST_F(VersionSkewTest, DiscoveryProbeSeesTheEmulatedReleasesFeatures) {
  absl::StatusOr<kube::Config> config = kube::LoadKubeconfig(cluster().kubeconfig());
  ASSERT_TRUE(config.ok()) << config.status();
  kube::Client client(*config);
  absl::StatusOr<kube::ServerVersion> v = kube::GetServerVersion(client);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->minor, 35);
  EXPECT_GE(v->binary_minor, 36);
  absl::StatusOr<kube::SliceFeatures> f =
      kube::ProbeSliceFeatures(client, Unique("probe") + ".e2e.tessera.dev");
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_TRUE(f->counters_in_own_slice);
  EXPECT_FALSE(f->partitionable_devices);
  EXPECT_FALSE(f->consumable_capacity);
}

}  // namespace
}  // namespace tessera::e2e
