// The Helm chart (deploy/helm/tessera) without a cluster: helm lint, what helm template renders
// with the default values and with the values an admin changes (driver root, fake GPUs, classes,
// metrics, paths), values the chart refuses (with the value's name in the message), and
// deploy/manifests kept in sync with the chart. Applying the result to a real API server is
// e2e_deploy's job.

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "framework/process.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tessera/api/strings.h"
#include "tessera/api/yaml.h"

namespace tessera::e2e {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Json = nlohmann::json;

const std::string kChart = StrCat(TESSERA_SOURCE_DIR, "/deploy/helm/tessera");

class ChartTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* helm = std::getenv("TESSERA_HELM");
    if (helm == nullptr || *helm == '\0' || !std::filesystem::exists(helm)) {
      GTEST_SKIP() << "helm not built (Go not found)";
    }
    helm_ = helm;
    char tmpl[] = "/tmp/tessera-chart-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    scratch_ = tmpl;
  }
  void TearDown() override {
    if (!scratch_.empty()) std::filesystem::remove_all(scratch_);
  }

  CommandResult Helm(std::vector<std::string> args) {
    args.insert(args.begin(), helm_);
    return RunCommand(args, "", std::chrono::seconds(60), scratch_);
  }

  // `helm template` with extra flags (--set ...), as parsed documents (empty ones dropped).
  std::vector<Json> Render(const std::vector<std::string>& flags = {}) {
    std::vector<std::string> args = {"template", "tessera", kChart, "--namespace",
                                     "tessera-system"};
    args.insert(args.end(), flags.begin(), flags.end());
    CommandResult r = Helm(args);
    EXPECT_TRUE(r.ok()) << r.Describe();
    absl::StatusOr<std::vector<Json>> docs = api::ParseYamlDocuments(r.out);
    EXPECT_TRUE(docs.ok()) << docs.status() << "\n" << r.out;
    std::vector<Json> out;
    if (docs.ok()) {
      for (Json& d : *docs) {
        if (d.is_object()) out.push_back(std::move(d));
      }
    }
    return out;
  }

  static std::vector<Json> OfKind(const std::vector<Json>& docs, const std::string& kind) {
    std::vector<Json> out;
    for (const Json& d : docs) {
      if (d.value("kind", "") == kind) out.push_back(d);
    }
    return out;
  }
  static Json One(const std::vector<Json>& docs, const std::string& kind) {
    std::vector<Json> found = OfKind(docs, kind);
    EXPECT_EQ(found.size(), 1u) << kind;
    return found.empty() ? Json::object() : found[0];
  }
  static std::vector<std::string> Names(const std::vector<Json>& docs) {
    std::vector<std::string> out;
    for (const Json& d : docs) out.push_back(d["metadata"]["name"]);
    return out;
  }
  static Json Container(const Json& workload) {
    return workload["spec"]["template"]["spec"]["containers"][0];
  }
  static std::vector<std::string> Args(const Json& workload) {
    return Container(workload)["args"].get<std::vector<std::string>>();
  }
  static Json Volume(const Json& workload, const std::string& name) {
    for (const Json& v : workload["spec"]["template"]["spec"]["volumes"]) {
      if (v["name"] == name) return v;
    }
    return nullptr;
  }

  std::string helm_;
  std::string scratch_;
};

TEST_F(ChartTest, LintPassesWithDefaultAndOtherValues) {
  CommandResult r = Helm({"lint", "--strict", kChart});
  EXPECT_TRUE(r.ok()) << r.Describe() << r.out;
  EXPECT_THAT(r.out, HasSubstr("0 chart(s) failed"));
  r = Helm({"lint", "--strict", kChart, "--set", "kubeletPlugin.gpuBackend=fake", "--set-json",
            R"(kubeletPlugin.fakeGpus={"gpus":[{"model":"a100-40gb","count":8}]})", "--set",
            "driverRoot=/run/nvidia/driver", "--set", "deviceClasses.perProfile.enabled=true"});
  EXPECT_TRUE(r.ok()) << r.Describe() << r.out;
}

TEST_F(ChartTest, DefaultValuesRenderTheDocumentedInstall) {
  std::vector<Json> docs = Render();
  ASSERT_FALSE(docs.empty());

  // The four DeviceClasses of docs/install.md, each selecting our driver and one device type.
  std::vector<Json> classes = OfKind(docs, "DeviceClass");
  EXPECT_THAT(Names(classes), ElementsAre("gpu.tessera.dev", "mig.gpu.tessera.dev",
                                          "mps.gpu.tessera.dev", "timeslice.gpu.tessera.dev"));
  for (const Json& c : classes) {
    const std::string cel = c["spec"]["selectors"][0]["cel"]["expression"];
    EXPECT_THAT(cel, HasSubstr("device.driver == \"gpu.tessera.dev\""));
    const std::string name = c["metadata"]["name"];
    const std::string type = name == "gpu.tessera.dev" ? "gpu" : name.substr(0, name.find('.'));
    EXPECT_THAT(cel, HasSubstr(StrCat(".type == \"", type, "\""))) << name;
  }

  // The plugin DaemonSet: rolling update that never leaves a node without a plugin, GPU taint
  // tolerated, GPU node labels (ORed), host paths, probes on the health endpoint.
  Json ds = One(docs, "DaemonSet");
  EXPECT_EQ(ds["spec"]["updateStrategy"]["rollingUpdate"],
            Json({{"maxSurge", 1}, {"maxUnavailable", 0}}));
  const Json pod = ds["spec"]["template"]["spec"];
  EXPECT_THAT(pod["tolerations"],
              Contains(Json(
                  {{"key", "nvidia.com/gpu"}, {"operator", "Exists"}, {"effect", "NoSchedule"}})));
  std::vector<std::string> label_keys;
  for (const Json& term :
       pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
          ["nodeSelectorTerms"]) {
    label_keys.push_back(term["matchExpressions"][0]["key"]);
  }
  EXPECT_THAT(label_keys,
              ElementsAre("feature.node.kubernetes.io/pci-10de.present", "nvidia.com/gpu.present",
                          "karpenter.k8s.aws/instance-gpu-manufacturer",
                          "kubernetes.azure.com/accelerator"));
  EXPECT_EQ(Volume(ds, "plugin-dir")["hostPath"]["path"],
            "/var/lib/kubelet/plugins/gpu.tessera.dev");
  EXPECT_EQ(Volume(ds, "registry-dir")["hostPath"]["path"], "/var/lib/kubelet/plugins_registry");
  EXPECT_EQ(Volume(ds, "cdi-root")["hostPath"]["path"], "/var/run/cdi");
  EXPECT_EQ(Volume(ds, "driver-root")["hostPath"]["path"], "/");
  const Json plugin = Container(ds);
  EXPECT_THAT(Args(ds), Contains("--driver-root=/driver-root"));
  EXPECT_THAT(Args(ds), Contains("--gpu-backend=nvml"));
  EXPECT_EQ(plugin["livenessProbe"]["httpGet"], Json({{"path", "/healthz"}, {"port", "health"}}));
  EXPECT_EQ(plugin["readinessProbe"]["httpGet"], Json({{"path", "/readyz"}, {"port", "health"}}));
  EXPECT_THAT(plugin["ports"],
              Contains(Json({{"name", "health"}, {"containerPort", 9401}, {"protocol", "TCP"}})));
  EXPECT_TRUE(plugin["securityContext"]["readOnlyRootFilesystem"].get<bool>());
  EXPECT_TRUE(plugin["securityContext"]["privileged"].get<bool>()) << "NVML needs the devices";
  // The pod UID names the registration socket, so old and new pods can both register.
  bool pod_uid = false;
  for (const Json& e : plugin["env"]) {
    pod_uid |= e["name"] == "POD_UID" && e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.uid";
  }
  EXPECT_TRUE(pod_uid);

  // The controller: two replicas, leader election, a PDB, no privileges.
  Json deploy = One(docs, "Deployment");
  EXPECT_EQ(deploy["spec"]["replicas"], 2);
  EXPECT_THAT(Args(deploy), Contains("--leader-elect=true"));
  EXPECT_THAT(Args(deploy), Contains("--leader-election-namespace=tessera-system"));
  const Json controller = Container(deploy);
  EXPECT_EQ(controller["securityContext"], Json({{"readOnlyRootFilesystem", true},
                                                 {"allowPrivilegeEscalation", false},
                                                 {"capabilities", {{"drop", {"ALL"}}}}}));
  EXPECT_TRUE(deploy["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"].get<bool>());
  Json pdb = One(docs, "PodDisruptionBudget");
  EXPECT_EQ(pdb["spec"]["minAvailable"], 1);
  EXPECT_EQ(pdb["spec"]["selector"]["matchLabels"], deploy["spec"]["selector"]["matchLabels"]);

  // Least privilege: the plugin reads claims and writes GpuInventories, nothing else.
  for (const Json& role : OfKind(docs, "ClusterRole")) {
    if (role["metadata"]["name"] != "tessera-kubelet-plugin") continue;
    EXPECT_EQ(role["rules"], Json::parse(R"([
      {"apiGroups": ["resource.k8s.io"], "resources": ["resourceclaims"], "verbs": ["get"]},
      {"apiGroups": ["tessera.dev"], "resources": ["gpuinventories", "gpuinventories/status"],
       "verbs": ["get", "create", "patch"]}])"));
  }
  // The admission policy is bound and matches exactly the plugin's service account.
  Json vap = One(docs, "ValidatingAdmissionPolicy");
  EXPECT_EQ(vap["spec"]["matchConditions"][0]["expression"],
            "request.userInfo.username == "
            "\"system:serviceaccount:tessera-system:tessera-kubelet-plugin\"");
  EXPECT_EQ(One(docs, "ValidatingAdmissionPolicyBinding")["spec"]["policyName"],
            vap["metadata"]["name"]);
  EXPECT_TRUE(OfKind(docs, "ServiceMonitor").empty());
  EXPECT_EQ(OfKind(docs, "Service").size(), 2u);
}

TEST_F(ChartTest, NonDefaultValuesReachTheManifests) {
  std::vector<Json> docs = Render({"--set", "driverRoot=/run/nvidia/driver",
                                   "--set", "kubeletRoot=/data/kubelet",
                                   "--set", "cdiRoot=/etc/cdi",
                                   "--set", "deviceClasses.perProfile.enabled=true",
                                   "--set", "kubeletPlugin.nodeAffinity.enabled=false",
                                   "--set", "metrics.serviceMonitor.enabled=true",
                                   "--set", "admissionPolicy.enabled=false",
                                   "--set", "controller.placementPolicy=name-sorted",
                                   "--set", "image.repository=registry.example/tessera",
                                   "--set", "image.tag=v9"});
  Json ds = One(docs, "DaemonSet");
  EXPECT_EQ(Volume(ds, "driver-root")["hostPath"]["path"], "/run/nvidia/driver");
  EXPECT_EQ(Volume(ds, "plugin-dir")["hostPath"]["path"], "/data/kubelet/plugins/gpu.tessera.dev");
  EXPECT_EQ(Volume(ds, "registry-dir")["hostPath"]["path"], "/data/kubelet/plugins_registry");
  EXPECT_EQ(Volume(ds, "cdi-root")["hostPath"]["path"], "/etc/cdi");
  EXPECT_THAT(Args(ds), Contains("--kubelet-root=/data/kubelet"));
  EXPECT_THAT(Args(ds), Contains("--cdi-root=/etc/cdi"));
  EXPECT_FALSE(ds["spec"]["template"]["spec"].contains("affinity"));
  EXPECT_EQ(Container(ds)["image"], "registry.example/tessera:v9");
  EXPECT_THAT(Args(One(docs, "Deployment")), Contains("--placement-policy=name-sorted"));
  EXPECT_THAT(
      Names(OfKind(docs, "DeviceClass")),
      ElementsAre("gpu.tessera.dev", "mig.gpu.tessera.dev", "mps.gpu.tessera.dev",
                  "timeslice.gpu.tessera.dev", "mig-1g.gpu.tessera.dev", "mig-2g.gpu.tessera.dev",
                  "mig-3g.gpu.tessera.dev", "mig-4g.gpu.tessera.dev", "mig-7g.gpu.tessera.dev"));
  EXPECT_EQ(OfKind(docs, "ServiceMonitor").size(), 2u);
  EXPECT_TRUE(OfKind(docs, "ValidatingAdmissionPolicy").empty());
  EXPECT_TRUE(OfKind(docs, "ValidatingAdmissionPolicyBinding").empty());
}

TEST_F(ChartTest, FakeBackendRunsWithoutPrivilegesOrDriverRoot) {
  std::vector<Json> docs =
      Render({"--set", "kubeletPlugin.gpuBackend=fake", "--set-json",
              R"(kubeletPlugin.fakeGpus={"gpus":[{"model":"h100-80gb","count":2}]})"});
  Json ds = One(docs, "DaemonSet");
  EXPECT_EQ(Volume(ds, "driver-root"), nullptr);
  EXPECT_THAT(Args(ds), Contains("--fake-gpus=/etc/tessera/fake-gpus/gpus.yaml"));
  const Json sc = Container(ds)["securityContext"];
  EXPECT_FALSE(sc["privileged"].get<bool>());
  EXPECT_FALSE(sc["allowPrivilegeEscalation"].get<bool>());
  EXPECT_EQ(sc["capabilities"]["drop"], Json({"ALL"}));
  Json cm = One(docs, "ConfigMap");
  absl::StatusOr<Json> gpus = api::ParseYaml(cm["data"]["gpus.yaml"].get<std::string>());
  ASSERT_TRUE(gpus.ok()) << gpus.status();
  EXPECT_EQ(*gpus, Json::parse(R"({"gpus":[{"model":"h100-80gb","count":2}]})"));
}

TEST_F(ChartTest, BadValuesAreRefusedNamingTheValue) {
  struct Case {
    std::vector<std::string> flags;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"--set", "kubeletPlugin.gpuBackend=cuda"},
       "kubeletPlugin.gpuBackend: \"cuda\" is not one of nvml, fake"},
      {{"--set", "kubeletPlugin.gpuBackend=fake"}, "kubeletPlugin.fakeGpus: required"},
      {{"--set", "controller.placementPolicy=random"},
       "controller.placementPolicy: \"random\" is not one of"},
      {{"--set", "driverRoot=run/nvidia/driver"},
       "driverRoot: \"run/nvidia/driver\" is not an absolute host path"},
      {{"--set", "logging.format=xml"}, "logging.format: \"xml\" is not one of text, json"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = {"template", "tessera", kChart};
    args.insert(args.end(), c.flags.begin(), c.flags.end());
    CommandResult r = Helm(args);
    EXPECT_FALSE(r.ok()) << c.message;
    EXPECT_THAT(r.err, HasSubstr(c.message));
  }
}

TEST_F(ChartTest, PoliciesInTheChartAndExamplesAreValidForTessera) {
  // The chart's default policy, rendered, and the examples' policy, through tessera's own
  // validation (the same code the controller runs).
  std::vector<Json> docs = Render();
  Json policy = One(docs, "GpuPartitionPolicy");
  const std::string path = scratch_ + "/policy.json";
  ASSERT_TRUE(WriteFileAtomic(path, policy.dump()).ok());
  for (const std::string& file :
       {path, StrCat(TESSERA_SOURCE_DIR, "/deploy/examples/00-policy.yaml")}) {
    CommandResult r = RunCommand({TESSERA_CONTROLLER_BINARY, "--validate", file}, "",
                                 std::chrono::seconds(30), scratch_);
    EXPECT_TRUE(r.ok()) << file << ": " << r.Describe() << r.out;
  }
}

TEST_F(ChartTest, RenderedManifestsAreInSyncWithTheChart) {
  CommandResult r = RunCommand(
      {StrCat(TESSERA_SOURCE_DIR, "/scripts/render-manifests"), "--out", scratch_, helm_}, "",
      std::chrono::seconds(60), scratch_);
  ASSERT_TRUE(r.ok()) << r.Describe();
  for (const std::string name : {"crds.yaml", "tessera.yaml"}) {
    absl::StatusOr<std::string> fresh = ReadFile(StrCat(scratch_, "/", name));
    absl::StatusOr<std::string> checked_in =
        ReadFile(StrCat(TESSERA_SOURCE_DIR, "/deploy/manifests/", name));
    ASSERT_TRUE(fresh.ok() && checked_in.ok()) << name;
    EXPECT_TRUE(*fresh == *checked_in)
        << "deploy/manifests/" << name << " is stale: run scripts/render-manifests";
  }
}

}  // namespace
}  // namespace tessera::e2e
