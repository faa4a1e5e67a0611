// The kubelet's own plugin manager and DRA manager (testenv kubelet-sim) against a kubelet plugin
// built from tessera's protos: registration, service-version choice, prepare for a bound pod,
// unprepare on deletion, and retries of a failed prepare.

#include <memory>
#include <string>

#include "framework/cluster.h"
#include "framework/node.h"
#include "framework/objects.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tessera/api/strings.h"

namespace tessera::e2e {
namespace {

using ::testing::HasSubstr;

class KubeletSimTest : public E2ETest {
 protected:
  void SetUp() override {
    E2ETest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    absl::StatusOr<std::unique_ptr<KubeletSim>> k = KubeletSim::Start(cluster(), "n0");
    E2E_ASSERT_OK(k.status());
    kubelet_ = std::move(*k);
    AddLogOnFailure("kubelet-sim n0", kubelet_->log_path());
  }

  void StartPlugin(TestPluginOptions options) {
    options.driver = driver_;
    options.node = "n0";
    absl::StatusOr<std::unique_ptr<TestPlugin>> p =
        TestPlugin::Start(*kubelet_, std::move(options));
    E2E_ASSERT_OK(p.status());
    plugin_ = std::move(*p);
    AddLogOnFailure("test plugin", plugin_->log_path());
  }

  absl::Status Registered(const std::string& service) {
    absl::StatusOr<Json> r = kubelet_->Registered();
    if (!r.ok()) return r.status();
    if (!r->contains(driver_)) return absl::UnavailableError("not registered: " + r->dump());
    if ((*r)[driver_]["chosenService"] != service) {
      return absl::InternalError("registered with another service: " + r->dump());
    }
    return absl::OkStatus();
  }

  // One device of our driver on n0, a class for it and a template; the kubelet-sim started first,
  // so its start-up wipe of n0's slices is over.
  void PublishDeviceAndTemplate() {
    Json slice = Slice(Unique("slice"), driver_, "n0");
    slice["spec"]["devices"] = {Device("gpu-0", {{"type", "gpu"}})};
    E2E_ASSERT_OK(cluster().Create(slice.dump()));
    DeleteAtEnd("resourceslice", slice["metadata"]["name"]);
    const std::string class_name = Unique("gpu");
    E2E_ASSERT_OK(cluster().Create(DeviceClass(class_name, driver_).dump()));
    DeleteAtEnd("deviceclass", class_name);
    E2E_ASSERT_OK(Create(ClaimTemplate("gpu", class_name).dump()));
  }

  absl::StatusOr<Json> RunningPod(const std::string& name) {
    absl::StatusOr<Json> pod = Get("pod", name);
    if (!pod.ok()) return pod.status();
    if ((*pod)["status"].value("phase", "") != "Running") {
      return absl::UnavailableError(
          StrCat("pod ", name, " is ", (*pod)["status"].value("phase", "<none>")));
    }
    return pod;
  }

  std::vector<Json> CallsOf(const std::string& method) {
    std::vector<Json> out;
    for (Json& call : plugin_->Calls()) {
      if (call["method"] == method) out.push_back(std::move(call));
    }
    return out;
  }

  // Runs a pod through the whole cycle and checks what the kubelet and the plugin saw.
  void PrepareRunDeleteUnprepare(const std::string& expected_service) {
    PublishDeviceAndTemplate();
    E2E_ASSERT_OK(Create(PodWithClaim("app", "gpu").dump()));

    Json pod;
    E2E_ASSERT_OK(Eventually(
        [&]() -> absl::Status {
          absl::StatusOr<Json> p = RunningPod("app");
          if (p.ok()) pod = *p;
          return p.status();
        },
        90s));
    ASSERT_EQ(pod["spec"]["nodeName"], "n0");
    const std::string claim_name = pod["status"]["resourceClaimStatuses"][0]["resourceClaimName"];
    absl::StatusOr<Json> claim = Get("resourceclaim", claim_name);
    E2E_ASSERT_OK(claim.status());
    const std::string claim_uid = (*claim)["metadata"]["uid"];

    // The CDI ID the plugin returned is what the kubelet would hand to the runtime.
    const std::string annotation =
        pod["metadata"]["annotations"].value("kubelet-sim.tessera.dev/cdi-devices", "");
    EXPECT_EQ(Json::parse(annotation),
              (Json{{"app", {StrCat(plugin_->cdi_kind(), "=", claim_uid)}}}));

    std::vector<Json> prepares = CallsOf("NodePrepareResources");
    ASSERT_FALSE(prepares.empty());
    EXPECT_EQ(prepares.back()["service"], expected_service);
    EXPECT_EQ(prepares.back()["claims"],
              (Json{{{"namespace", ns()}, {"uid", claim_uid}, {"name", claim_name}}}));

    // Deleting the pod unprepares the claim before the pod goes away.
    ASSERT_TRUE(cluster().Kubectl({"delete", "pod", "app", "-n", ns(), "--wait=false"}).ok());
    E2E_ASSERT_OK(Eventually(
        [&]() -> absl::Status {
          absl::StatusOr<Json> p = Get("pod", "app");
          return p.ok() ? absl::UnavailableError("pod still exists") : absl::OkStatus();
        },
        60s));
    std::vector<Json> unprepares = CallsOf("NodeUnprepareResources");
    ASSERT_EQ(unprepares.size(), 1u);
    EXPECT_EQ(unprepares[0]["claims"][0]["uid"], claim_uid);
    // The generated claim goes with its pod.
    E2E_ASSERT_OK(Eventually(
        [&]() -> absl::Status {
          return Get("resourceclaim", claim_name).ok()
                     ? absl::UnavailableError("generated claim still exists")
                     : absl::OkStatus();
        },
        60s));
  }

  std::string driver_ = Unique("plg") + ".e2e.tessera.dev";
  std::unique_ptr<KubeletSim> kubelet_;
  std::unique_ptr<TestPlugin> plugin_;
};

TEST_F(KubeletSimTest, RegistersPluginWithV1AndDeregistersWhenItStops) {
  StartPlugin({});
  E2E_ASSERT_OK(Eventually([&] { return Registered("v1.DRAPlugin"); }, 30s));
  // The plugin heard back from the kubelet.
  std::string log;
  E2E_ASSERT_OK(Eventually(
      [&]() -> absl::Status {
        log = ReadFile(plugin_->log_path()).value_or("");
        return log.find("REGISTERED true") != std::string::npos
                   ? absl::OkStatus()
                   : absl::UnavailableError("no registration status yet");
      },
      30s));

  plugin_->Stop();
  E2E_ASSERT_OK(Eventually(
      [&]() -> absl::Status {
        absl::StatusOr<Json> r = kubelet_->Registered();
        if (!r.ok()) return r.status();
        return r->contains(driver_) ? absl::UnavailableError("still registered: " + r->dump())
                                    : absl::OkStatus();
      },
      30s));
}

TEST_F(KubeletSimTest, PreparesClaimOfBoundPodThroughV1AndUnpreparesOnDelete) {
  StartPlugin({});
  E2E_ASSERT_OK(Eventually([&] { return Registered("v1.DRAPlugin"); }, 30s));
  PrepareRunDeleteUnprepare("v1");
}

TEST_F(KubeletSimTest, UsesV1beta1WhenThePluginOffersOnlyThat) {
  StartPlugin({.supported_versions = {"v1beta1.DRAPlugin"}});
  E2E_ASSERT_OK(Eventually([&] { return Registered("v1beta1.DRAPlugin"); }, 30s));
  PrepareRunDeleteUnprepare("v1beta1");
}

TEST_F(KubeletSimTest, RetriesFailedPrepareAndReportsItAsPodEvent) {
  StartPlugin({.fail_prepare = 2});
  E2E_ASSERT_OK(Eventually([&] { return Registered("v1.DRAPlugin"); }, 30s));
  PublishDeviceAndTemplate();
  E2E_ASSERT_OK(Create(PodWithClaim("app", "gpu").dump()));

  E2E_ASSERT_OK(Eventually([&] { return RunningPod("app").status(); }, 90s));
  std::vector<Json> prepares = CallsOf("NodePrepareResources");
  ASSERT_EQ(prepares.size(), 3u);
  EXPECT_TRUE(prepares[0]["failed"].get<bool>());
  EXPECT_TRUE(prepares[1]["failed"].get<bool>());
  EXPECT_FALSE(prepares[2]["failed"].get<bool>());

  E2E_ASSERT_OK(Eventually(
      [&]() -> absl::Status {
        absl::StatusOr<Json> events = cluster().GetJson(
            {"events", "-n", ns(), "--field-selector", "involvedObject.name=app"});
        if (!events.ok()) return events.status();
        for (const Json& e : (*events)["items"]) {
          if (e["reason"] == "FailedPrepareDynamicResources" &&
              e["message"].get<std::string>().find("injected failure") != std::string::npos) {
            return absl::OkStatus();
          }
        }
        return absl::UnavailableError("no FailedPrepareDynamicResources event: " + events->dump());
      },
      30s));
}

}  // namespace
}  // namespace tessera::e2e
