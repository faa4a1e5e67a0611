// The plugin's per-claim gauges: limits from the checkpoint, memory in use from the backend at
// every scrape.

#include "tessera/plugin/metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tessera/plugin/fake_backend.h"

namespace tessera::plugin {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::vector<ClaimRecord> Records() {
  ClaimRecord mig{.uid = "u1",
                  .namespace_ = "ml",
                  .name = "train",
                  .phase = ClaimPhase::kPrepared,
                  .devices = {}};
  PreparedDevice d{.device = "gpu-0-mig-3g40gb-p4", .gpu = 0, .gpu_uuid = "GPU-0"};
  d.mig = MigRecord{.profile = "3g.40gb", .gi_id = 2, .uuid = "MIG-a"};
  mig.devices.push_back(d);
  ClaimRecord share{.uid = "u2",
                    .namespace_ = "ml",
                    .name = "serve",
                    .phase = ClaimPhase::kPrepared,
                    .devices = {}};
  PreparedDevice s{.device = "gpu-1-mps",
                   .gpu = 1,
                   .gpu_uuid = "GPU-1",
                   .sharing = ShareStrategy::kMps,
                   .mps_device_uuid = "GPU-1",
                   .active_thread_percentage = 25,
                   .pinned_memory_limit_mib = 10240};
  share.devices.push_back(s);
  ClaimRecord preparing{.uid = "u3",
                        .namespace_ = "ml",
                        .name = "half",
                        .phase = ClaimPhase::kPreparing,
                        .devices = {d}};
  return {mig, share, preparing};
}

TEST(PluginMetricsTest, MemoryInUseIsSampledPerPreparedDeviceAtEveryScrape) {
  PluginMetrics m;
  m.Update(Records());
  std::map<std::string, std::int64_t> used = {{"MIG-a", std::int64_t{3} << 30},
                                              {"GPU-1", std::int64_t{5} << 30}};
  m.set_memory_sampler([&](int, std::string_view uuid) -> absl::StatusOr<std::int64_t> {
    auto it = used.find(std::string(uuid));
    if (it == used.end()) return absl::NotFoundError("no such device");
    return it->second;
  });
  std::string text = m.Render();
  EXPECT_THAT(text, HasSubstr("tessera_plugin_claim_memory_used_bytes{claim=\"train\","
                              "device=\"gpu-0-mig-3g40gb-p4\",namespace=\"ml\",shared=\"false\"} "
                              "3221225472"));
  EXPECT_THAT(text, HasSubstr("tessera_plugin_claim_memory_used_bytes{claim=\"serve\","
                              "device=\"gpu-1-mps\",namespace=\"ml\",shared=\"true\"} 5368709120"));
  EXPECT_THAT(text, HasSubstr("tessera_plugin_claim_memory_limit_bytes{claim=\"serve\","
                              "device=\"gpu-1-mps\",namespace=\"ml\"} 10737418240"));
  EXPECT_THAT(text, Not(HasSubstr("claim=\"half\"")));  // not prepared yet

  // The next scrape reads again; a device the backend no longer knows has no series.
  used["MIG-a"] = std::int64_t{1} << 30;
  used.erase("GPU-1");
  text = m.Render();
  EXPECT_THAT(text, HasSubstr("device=\"gpu-0-mig-3g40gb-p4\",namespace=\"ml\",shared=\"false\"} "
                              "1073741824"));
  EXPECT_THAT(text, Not(HasSubstr("memory_used_bytes{claim=\"serve\"")));

  // Unprepared claims lose their series.
  m.Update({});
  EXPECT_THAT(m.Render(), Not(HasSubstr("tessera_plugin_claim_memory_used_bytes{")));
}

TEST(PluginMetricsTest, WithoutASamplerThereIsNoMemorySeries) {
  PluginMetrics m;
  m.Update(Records());
  EXPECT_THAT(m.Render(), Not(HasSubstr("tessera_plugin_claim_memory_used_bytes{")));
}

TEST(PluginMetricsTest, TheFakeBackendReportsNothingInUseOnItsDevices) {
  absl::StatusOr<FakeNodeSpec> spec = ParseFakeNodeSpec("gpus:\n- model: h100-80gb\n  count: 1\n");
  ASSERT_TRUE(spec.ok()) << spec.status();
  absl::StatusOr<std::unique_ptr<FakeGpuBackend>> b = FakeGpuBackend::Open(*spec, "");
  ASSERT_TRUE(b.ok()) << b.status();
  absl::StatusOr<NodeInventory> inv = (*b)->Discover();
  ASSERT_TRUE(inv.ok()) << inv.status();
  const std::string gpu = inv->gpus[0].uuid;
  absl::StatusOr<api::MigInstanceInfo> mig = (*b)->CreateMigInstance(0, 9, {4, 4});
  ASSERT_TRUE(mig.ok()) << mig.status();
  EXPECT_EQ((*b)->MemoryUsed(0, gpu).value_or(-1), 0);
  EXPECT_EQ((*b)->MemoryUsed(0, mig->uuid).value_or(-1), 0);
  EXPECT_EQ(NvmlErrorOf((*b)->MemoryUsed(0, "MIG-nope").status()), NvmlError::kNotFound);
}

}  // namespace
}  // namespace tessera::plugin
