// tessera-kubelet-plugin against the real control plane and the kubelet's own DRA code (testenv
// kubelet-sim): it registers, writes its GpuInventory (real CRD, real API server), and prepares
// claims that the real scheduler allocated from a ResourceSlice — creating the MIG instance at the
// allocated placement on the fake GPUs, writing the CDI spec — and unprepares them when the pod
// goes.

#include <filesystem>
#include <memory>
#include <string>

#include "framework/cluster.h"
#include "framework/node.h"
#include "framework/objects.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tessera/api/strings.h"
#include "tessera/plugin/fake_backend.h"

namespace tessera::e2e {
namespace {

using ::testing::HasSubstr;
constexpr char kDriver[] = "gpu.tessera.dev";

class PluginE2ETest : public E2ETest {
 protected:
  void SetUp() override {
    E2ETest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    for (const char* crd :
         {"gpuinventories.tessera.dev.yaml", "gpupartitionpolicies.tessera.dev.yaml"}) {
      ASSERT_TRUE(cluster()
                      .Kubectl({"apply", "--server-side", "-f",
                                StrCat(TESSERA_SOURCE_DIR, "/deploy/crds/", crd)})
                      .ok());
    }
    absl::StatusOr<std::unique_ptr<KubeletSim>> k = KubeletSim::Start(cluster(), "n0");
    E2E_ASSERT_OK(k.status());
    kubelet_ = std::move(*k);
    AddLogOnFailure("kubelet-sim n0", kubelet_->log_path());

    root_ = kubelet_->root();
    absl::StatusOr<std::unique_ptr<ChildProcess>> started =
        StartTesseraPlugin(cluster(), *kubelet_,
                           {.binary = TESSERA_PLUGIN_BINARY,
                            .source_dir = TESSERA_SOURCE_DIR,
                            .fake_gpus_yaml = "gpus:\n- model: h100-80gb\n  count: 2\n",
                            .metrics_address = "127.0.0.1:0"});
    AddLogOnFailure("tessera-kubelet-plugin", root_ + "/plugin.log");
    E2E_ASSERT_OK(started.status());
    plugin_ = std::move(*started);
  }
  void TearDown() override {
    if (plugin_) plugin_->Stop();
    E2ETest::TearDown();
  }

  absl::StatusOr<Json> FakeGpuState() {
    absl::StatusOr<std::string> text = ReadFile(root_ + "/tessera/fake-gpus-state.json");
    if (!text.ok()) return text.status();
    return plugin::ReadFakeGpuState(*text);
  }

  std::string root_;
  std::unique_ptr<KubeletSim> kubelet_;
  std::unique_ptr<ChildProcess> plugin_;
};

TEST_F(PluginE2ETest, RegistersWritesInventoryAndPreparesAScheduledMigClaim) {
  // Registration with the kubelet's plugin manager, v1 chosen.
  E2E_ASSERT_OK(Eventually(
      [&]() -> absl::Status {
        absl::StatusOr<Json> r = kubelet_->Registered();
        if (!r.ok()) return r.status();
        if (!r->contains(kDriver)) return absl::UnavailableError("not registered: " + r->dump());
        return (*r)[kDriver]["chosenService"] == "v1.DRAPlugin"
                   ? absl::OkStatus()
                   : absl::InternalError("chose " + r->dump());
      },
      30s));

  // The GpuInventory, accepted by the real CRD schema, with a live heartbeat.
  Json inventory;
  E2E_ASSERT_OK(Eventually(
      [&]() -> absl::Status {
        absl::StatusOr<Json> inv = cluster().GetJson({"gpuinventories.tessera.dev", "n0"});
        if (!inv.ok()) return inv.status();
        if (!(*inv)["status"].contains("heartbeatTime")) {
          return absl::UnavailableError("no heartbeat yet");
        }
        inventory = *inv;
        return absl::OkStatus();
      },
      30s));
  ASSERT_EQ(inventory["spec"]["gpus"].size(), 2u);
  EXPECT_EQ(inventory["spec"]["gpus"][1]["model"], "h100-80gb");
  EXPECT_EQ(inventory["spec"]["gpus"][1]["migEnabled"], true);

  // A slice with a whole GPU and one MIG placement; the class asks for the MIG one.
  Json slice = Slice(Unique("slice"), kDriver, "n0");
  slice["spec"]["devices"] = {Device("gpu-0", {{"kind", "gpu"}}),
                              Device("gpu-1-mig-3g40gb-p4", {{"kind", "mig"}})};
  E2E_ASSERT_OK(cluster().Create(slice.dump()));
  DeleteAtEnd("resourceslice", slice["metadata"]["name"]);
  const std::string class_name = Unique("mig");
  E2E_ASSERT_OK(cluster().Create(
      DeviceClass(class_name, kDriver, "device.attributes[\"gpu.tessera.dev\"].kind == \"mig\"")
          .dump()));
  DeleteAtEnd("deviceclass", class_name);
  E2E_ASSERT_OK(Create(ClaimTemplate("gpu", class_name).dump()));
  E2E_ASSERT_OK(Create(PodWithClaim("app", "gpu").dump()));

  absl::StatusOr<Json> running = RunningPod("app");
  E2E_ASSERT_OK(running.status());
  const Json pod = *running;
  const std::string claim_name = pod["status"]["resourceClaimStatuses"][0]["resourceClaimName"];
  absl::StatusOr<Json> claim = Get("resourceclaim", claim_name);
  E2E_ASSERT_OK(claim.status());
  const std::string uid = (*claim)["metadata"]["uid"];
  EXPECT_EQ((*claim)["status"]["allocation"]["devices"]["results"][0]["device"],
            "gpu-1-mig-3g40gb-p4");

  // What the kubelet would hand the runtime, and the spec behind it.
  const std::string annotation =
      pod["metadata"]["annotations"].value("kubelet-sim.tessera.dev/cdi-devices", "");
  EXPECT_EQ(Json::parse(annotation),
            (Json{{"app", {StrCat("k8s.gpu.tessera.dev/claim=", uid, "-gpu-1-mig-3g40gb-p4")}}}));
  absl::StatusOr<std::string> spec =
      ReadFile(StrCat(root_, "/cdi/k8s.gpu.tessera.dev-claim_", uid, ".json"));
  E2E_ASSERT_OK(spec.status());
  EXPECT_THAT(*spec, HasSubstr("/dev/nvidia-caps/nvidia-cap"));

  // The MIG instance exists at the allocated placement, and the inventory says whose it is.
  absl::StatusOr<Json> state = FakeGpuState();
  E2E_ASSERT_OK(state.status());
  ASSERT_EQ((*state)["gpus"][1]["instances"].size(), 1u);
  EXPECT_EQ((*state)["gpus"][1]["instances"][0]["profile"], "3g.40gb");
  EXPECT_EQ((*state)["gpus"][1]["instances"][0]["start"], 4);
  E2E_ASSERT_OK(Eventually(
      [&]() -> absl::Status {
        absl::StatusOr<Json> inv = cluster().GetJson({"gpuinventories.tessera.dev", "n0"});
        if (!inv.ok()) return inv.status();
        const Json& instances = (*inv)["spec"]["gpus"][1]["migInstances"];
        if (instances.size() == 1 && instances[0].contains("ownerClaim") &&
            instances[0]["ownerClaim"]["uid"] == uid) {
          return absl::OkStatus();
        }
        return absl::UnavailableError("inventory: " + (*inv)["spec"]["gpus"][1].dump());
      },
      30s));

  // Deleting the pod unprepares the claim: the instance and the spec go.
  ASSERT_TRUE(cluster().Kubectl({"delete", "pod", "app", "-n", ns(), "--wait=false"}).ok());
  E2E_ASSERT_OK(Eventually(
      [&]() -> absl::Status {
        absl::StatusOr<Json> s = FakeGpuState();
        if (!s.ok()) return s.status();
        return (*s)["gpus"][1]["instances"].empty()
                   ? absl::OkStatus()
                   : absl::UnavailableError("instance still there: " + s->dump());
      },
      60s));
  EXPECT_FALSE(
      std::filesystem::exists(StrCat(root_, "/cdi/k8s.gpu.tessera.dev-claim_", uid, ".json")));
}

}  // namespace
}  // namespace tessera::e2e
