// tessera as an admin installs it, against the real API server: the rendered chart
// (deploy/manifests) and every example (deploy/examples) applied server-side with strict field
// validation; the node-restriction admission policy exercised with service-account tokens bound to
// a node; and the examples allocated by the real scheduler, prepared through kubelet-sim and
// deleted again, with the plugins and the controller authenticating as the chart's service
// accounts (a node-bound token for each plugin), so a missing RBAC rule or a policy that refuses
// the plugin fails here.

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "framework/cluster.h"
#include "framework/node.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tessera/api/strings.h"
#include "tessera/api/yaml.h"

namespace tessera::e2e {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::Not;

const std::string kSource = TESSERA_SOURCE_DIR;
constexpr char kNamespace[] = "tessera-system";
constexpr char kPluginAccount[] = "tessera-kubelet-plugin";
constexpr char kControllerAccount[] = "tessera-controller";

// What the install left running, shared by the tests of this binary.
struct Installed {
  CommandResult crds;
  CommandResult chart;
  std::map<std::string, std::unique_ptr<KubeletSim>> kubelets;
  std::map<std::string, std::unique_ptr<ChildProcess>> plugins;
  std::unique_ptr<ChildProcess> controller;
  std::string controller_log;
};
Installed* g_installed = nullptr;

class DeployE2ETest : public E2ETest {
 protected:
  void SetUp() override {
    E2ETest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    if (g_installed == nullptr) {
      g_installed = new Installed();  // lives for the binary, like the cluster
      ASSERT_NO_FATAL_FAILURE(Install());
    }
    ASSERT_TRUE(g_installed->chart.ok()) << "the install failed in an earlier test";
  }

  // kubectl create namespace + the rendered manifests, as docs/install.md says.
  void Install() {
    g_installed->crds = cluster().Kubectl({"apply", "--server-side", "--validate=strict",
                                           "--field-manager=tessera-e2e", "-f",
                                           kSource + "/deploy/manifests/crds.yaml"});
    ASSERT_TRUE(g_installed->crds.ok()) << g_installed->crds.Describe();
    CommandResult r = cluster().Kubectl({"wait", "--for=condition=Established", "--timeout=60s",
                                         "crd/gpuinventories.tessera.dev",
                                         "crd/gpupartitionpolicies.tessera.dev"});
    ASSERT_TRUE(r.ok()) << r.Describe();
    r = cluster().Kubectl({"create", "namespace", kNamespace});
    ASSERT_TRUE(r.ok()) << r.Describe();
    g_installed->chart = cluster().Kubectl({"apply", "--server-side", "--validate=strict",
                                            "--field-manager=tessera-e2e", "-f",
                                            kSource + "/deploy/manifests/tessera.yaml"});
    ASSERT_TRUE(g_installed->chart.ok()) << g_installed->chart.Describe();
  }

  // A kubeconfig that authenticates as a service account of the chart with a fresh token, bound
  // to `node` when one is given (what a plugin pod's projected token carries).
  absl::StatusOr<std::string> TokenKubeconfig(const std::string& account,
                                              const std::string& node = "") {
    std::vector<std::string> args = {"create", "token", account, "-n", kNamespace, "--duration=2h"};
    if (!node.empty()) {
      args.insert(args.end(), {"--bound-object-kind=Node", "--bound-object-name=" + node});
    }
    CommandResult token = cluster().Kubectl(args);
    if (!token.ok()) return absl::InternalError(token.Describe());
    absl::StatusOr<std::string> admin = ReadFile(cluster().kubeconfig());
    if (!admin.ok()) return admin.status();
    absl::StatusOr<Json> config = api::ParseYaml(*admin);
    if (!config.ok()) return config.status();
    std::string text = token.out;
    text.erase(std::remove(text.begin(), text.end(), '\n'), text.end());
    for (Json& user : (*config)["users"]) user["user"] = {{"token", text}};
    const std::string path =
        StrCat(cluster().dir(), "/", account, node.empty() ? "" : "-" + node, ".kubeconfig");
    if (absl::Status s = WriteFileAtomic(path, config->dump()); !s.ok()) return s;
    return path;
  }

  // kubectl with another kubeconfig (the later --kubeconfig wins).
  CommandResult KubectlAs(const std::string& kubeconfig, std::vector<std::string> args,
                          std::string_view input = "") {
    args.insert(args.begin(), {"--kubeconfig", kubeconfig});
    return cluster().Kubectl(args, input);
  }

  static std::string Inventory(const std::string& name, const std::string& node) {
    return StrCat("apiVersion: tessera.dev/v1alpha1\nkind: GpuInventory\nmetadata: {name: ", name,
                  "}\nspec: {nodeName: ", node, ", gpus: []}\n");
  }
};

TEST_F(DeployE2ETest, RenderedChartIsAcceptedWithStrictFieldValidation) {
  // Every object of the rendered chart was applied (not merely parsed): kubectl prints one line
  // per object, and the API server refused none (strict: no unknown or duplicate field).
  std::size_t applied = 0;
  for (std::size_t at = 0;
       (at = g_installed->chart.out.find("serverside-applied", at)) != std::string::npos; ++at) {
    ++applied;
  }
  absl::StatusOr<std::string> manifest = ReadFile(kSource + "/deploy/manifests/tessera.yaml");
  ASSERT_TRUE(manifest.ok());
  absl::StatusOr<std::vector<Json>> docs = api::ParseYamlDocuments(*manifest);
  ASSERT_TRUE(docs.ok()) << docs.status();
  std::size_t objects = 0;
  for (const Json& d : *docs) objects += d.is_object() ? 1 : 0;
  EXPECT_EQ(applied, objects) << g_installed->chart.out;
  EXPECT_THAT(g_installed->chart.err, Not(HasSubstr("Warning"))) << "strict validation warned";

  for (const auto& [kind, name] : std::vector<std::pair<std::string, std::string>>{
           {"daemonset", "tessera-kubelet-plugin"},
           {"deployment", "tessera-controller"},
           {"poddisruptionbudget", "tessera-controller"}}) {
    absl::StatusOr<Json> o = cluster().GetJson({kind, name, "-n", kNamespace});
    EXPECT_TRUE(o.ok()) << o.status();
  }
  for (const std::string cls : {"gpu.tessera.dev", "mig.gpu.tessera.dev", "mps.gpu.tessera.dev",
                                "timeslice.gpu.tessera.dev"}) {
    EXPECT_TRUE(cluster().GetJson({"deviceclass", cls}).ok()) << cls;
  }

  // Values an admin changes render objects the API server accepts too (dry run, not installed).
  const char* helm = std::getenv("TESSERA_HELM");
  if (helm == nullptr || *helm == '\0') GTEST_SKIP() << "helm not built";
  CommandResult rendered = RunCommand(
      {helm, "template", "tessera", kSource + "/deploy/helm/tessera", "--namespace", kNamespace,
       "--set", "driverRoot=/run/nvidia/driver", "--set", "kubeletPlugin.gpuBackend=fake",
       "--set-json", R"(kubeletPlugin.fakeGpus={"gpus":[{"model":"a100-40gb","count":8}]})",
       "--set", "deviceClasses.perProfile.enabled=true", "--set",
       "kubeletPlugin.nodeAffinity.enabled=false", "--set", "kubeletRoot=/data/kubelet"},
      "", 60s, cluster().dir());
  ASSERT_TRUE(rendered.ok()) << rendered.Describe();
  CommandResult r =
      cluster().Kubectl({"apply", "--server-side", "--validate=strict", "--dry-run=server",
                         "--field-manager=tessera-e2e", "-f", "-"},
                        rendered.out);
  EXPECT_TRUE(r.ok()) << r.Describe();
  EXPECT_THAT(r.out, HasSubstr("deviceclass.resource.k8s.io/mig-7g.gpu.tessera.dev"));
}

TEST_F(DeployE2ETest, AdmissionPolicyLetsAPluginWriteOnlyItsOwnNodesInventory) {
  absl::StatusOr<std::string> n0 = TokenKubeconfig(kPluginAccount, "n0");
  E2E_ASSERT_OK(n0.status());
  // The policy takes a moment to reach the API server's admission after the install.
  E2E_ASSERT_OK(Eventually(
      [&]() -> absl::Status {
        CommandResult r =
            KubectlAs(*n0, {"apply", "--server-side", "-f", "-"}, Inventory("n1", "n1"));
        if (!r.ok() && r.err.find("may write only GpuInventory n0, not n1") != std::string::npos)
          return absl::OkStatus();
        cluster().Kubectl({"delete", "gpuinventory", "n1", "--ignore-not-found"});
        return absl::UnavailableError(StrCat("not denied yet: ", r.Describe(), r.out));
      },
      30s, 500ms));

  // Its own node: allowed, spec and status.
  CommandResult r = KubectlAs(*n0, {"apply", "--server-side", "-f", "-"}, Inventory("n0", "n0"));
  EXPECT_TRUE(r.ok()) << r.Describe();
  r = KubectlAs(*n0, {"patch", "gpuinventory", "n0", "--subresource=status", "--type=merge", "-p",
                      R"({"status":{"pluginVersion":"e2e"}})"});
  EXPECT_TRUE(r.ok()) << r.Describe();
  // Its own object naming another node in the spec: denied.
  r = KubectlAs(*n0, {"apply", "--server-side", "-f", "-"}, Inventory("n0", "n1"));
  EXPECT_FALSE(r.ok());
  EXPECT_THAT(r.err, HasSubstr("may not set spec.nodeName to n1"));
  // Deleting is not in the plugin's RBAC at all (the policy would refuse another node's too).
  ASSERT_TRUE(cluster().Kubectl({"apply", "--server-side", "-f", "-"}, Inventory("n1", "n1")).ok());
  r = KubectlAs(*n0, {"delete", "gpuinventory", "n1"});
  EXPECT_FALSE(r.ok());
  EXPECT_THAT(r.err, HasSubstr("cannot delete resource \"gpuinventories\""));

  // A token of the plugin's account without a node (not a pod's token): denied outright.
  absl::StatusOr<std::string> unbound = TokenKubeconfig(kPluginAccount);
  E2E_ASSERT_OK(unbound.status());
  r = KubectlAs(*unbound, {"apply", "--server-side", "-f", "-"}, Inventory("n0", "n0"));
  EXPECT_FALSE(r.ok());
  EXPECT_THAT(r.err, HasSubstr("must use a service-account token bound to its node"));

  // RBAC still applies underneath: the controller's account may not write inventories at all.
  absl::StatusOr<std::string> controller = TokenKubeconfig(kControllerAccount);
  E2E_ASSERT_OK(controller.status());
  r = KubectlAs(*controller, {"apply", "--server-side", "-f", "-"}, Inventory("n0", "n0"));
  EXPECT_FALSE(r.ok());
  EXPECT_THAT(r.err, HasSubstr("forbidden"));

  for (const std::string n : {"n0", "n1"}) {
    cluster().Kubectl({"delete", "gpuinventory", n, "--ignore-not-found"});
  }
}

// The policy's second half: a plugin may write the status of a claim only when the claim is
// allocated on its node. The chart's RBAC does not let the plugin write claim status at all
// (tessera does not report device status yet), so this test grants it the way an admin
// extending the plugin would, and checks the policy still keeps each node to its own claims.
TEST_F(DeployE2ETest, AdmissionPolicyLetsAPluginWriteOnlyStatusOfClaimsOnItsNode) {
  // Writing status.devices also needs a verb on resourceclaims/driver (named after the driver):
  // "associated-node:patch" lets the API server itself pin a node-bound token to its node's
  // claims; "arbitrary-node:patch", granted here, does not, so only the policy stands between a
  // plugin and another node's claims.
  CommandResult r = cluster().Kubectl({"apply", "--server-side", "-f", "-"}, R"(
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: e2e-claim-status}
rules:
- apiGroups: [resource.k8s.io]
  resources: [resourceclaims/status]
  verbs: [get, patch, update]
- apiGroups: [resource.k8s.io]
  resources: [resourceclaims/driver]
  resourceNames: [gpu.tessera.dev]
  verbs: ["arbitrary-node:patch", "arbitrary-node:update"]
)");
  ASSERT_TRUE(r.ok()) << r.Describe();
  DeleteAtEnd("clusterrole", "e2e-claim-status");
  r = cluster().Kubectl({"create", "clusterrolebinding", "e2e-claim-status",
                         "--clusterrole=e2e-claim-status",
                         StrCat("--serviceaccount=", kNamespace, ":", kPluginAccount)});
  ASSERT_TRUE(r.ok()) << r.Describe();
  DeleteAtEnd("clusterrolebinding", "e2e-claim-status");

  // Two claims, allocated (by hand, as the scheduler would write it) on n0 and on n1.
  for (const std::string node : {"n0", "n1"}) {
    const std::string claim = "on-" + node;
    E2E_ASSERT_OK(Create(StrCat(R"({"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
        "metadata": {"name": ")",
                                claim, R"("}, "spec": {"devices": {"requests": [
        {"name": "gpu", "exactly": {"deviceClassName": "gpu.tessera.dev"}}]}}})")));
    const std::string allocation = StrCat(
        R"({"status": {"allocation": {"devices": {"results": [{"request": "gpu",
        "driver": "gpu.tessera.dev", "pool": ")",
        node, R"(", "device": "gpu-0"}]}, "nodeSelector": {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [")",
        node, R"("]}]}]}}}})");
    r = cluster().Kubectl({"patch", "resourceclaim", claim, "-n", ns(), "--subresource=status",
                           "--type=merge", "-p", allocation});
    ASSERT_TRUE(r.ok()) << r.Describe();
  }
  absl::StatusOr<std::string> n0 = TokenKubeconfig(kPluginAccount, "n0");
  E2E_ASSERT_OK(n0.status());
  auto report = [&](const std::string& node) {
    return StrCat(R"({"status": {"devices": [{"driver": "gpu.tessera.dev", "pool": ")", node,
                  R"(", "device": "gpu-0", "conditions": [{"type": "Ready", "status": "True",
                  "reason": "Prepared", "message": "", "lastTransitionTime": "2026-11-21T00:00:00Z"}]}]}})");
  };
  // RBAC changes reach the authorizer within a moment; retry until the own-node write passes.
  E2E_ASSERT_OK(Eventually(
      [&]() -> absl::Status {
        CommandResult own =
            KubectlAs(*n0, {"patch", "resourceclaim", "on-n0", "-n", ns(), "--subresource=status",
                            "--type=merge", "-p", report("n0")});
        if (own.ok()) return absl::OkStatus();
        return absl::UnavailableError(own.Describe());
      },
      30s, 500ms));
  r = KubectlAs(*n0, {"patch", "resourceclaim", "on-n1", "-n", ns(), "--subresource=status",
                      "--type=merge", "-p", report("n1")});
  EXPECT_FALSE(r.ok());
  EXPECT_THAT(r.err, HasSubstr("may write the status only of claims allocated on that node"));
  absl::StatusOr<Json> stored = Get("resourceclaim", "on-n0");
  E2E_ASSERT_OK(stored.status());
  EXPECT_EQ((*stored)["status"]["devices"][0]["conditions"][0]["reason"], "Prepared");
}

TEST_F(DeployE2ETest, ExamplesRunUnderTheChartsServiceAccounts) {
  // Two GPU nodes (8 × A100-40GB, 8 × H100-80GB) labelled for the examples' policy; a plugin on
  // each with a token bound to its node, the controller with its own account's token.
  for (const std::string node : {"n0", "n1"}) {
    CommandResult r =
        cluster().Kubectl({"label", "node", node, "tessera.dev/examples=true", "--overwrite"});
    ASSERT_TRUE(r.ok()) << r.Describe();
  }
  for (const auto& [node, model] :
       std::vector<std::pair<std::string, std::string>>{{"n0", "a100-40gb"}, {"n1", "h100-80gb"}}) {
    absl::StatusOr<std::unique_ptr<KubeletSim>> k = KubeletSim::Start(cluster(), node);
    E2E_ASSERT_OK(k.status());
    absl::StatusOr<std::string> kubeconfig = TokenKubeconfig(kPluginAccount, node);
    E2E_ASSERT_OK(kubeconfig.status());
    absl::StatusOr<std::unique_ptr<ChildProcess>> plugin =
        StartTesseraPlugin(cluster(), **k,
                           {.binary = TESSERA_PLUGIN_BINARY,
                            .source_dir = kSource,
                            .fake_gpus_yaml = StrCat("gpus:\n- model: ", model, "\n  count: 8\n"),
                            .metrics_address = "0",
                            .kubeconfig = *kubeconfig});
    E2E_ASSERT_OK(plugin.status());
    AddLogOnFailure("kubelet-sim " + node, (*k)->log_path());
    AddLogOnFailure("plugin " + node, (*k)->root() + "/plugin.log");
    g_installed->plugins[node] = std::move(*plugin);
    g_installed->kubelets[node] = std::move(*k);
  }
  absl::StatusOr<std::string> kubeconfig = TokenKubeconfig(kControllerAccount);
  E2E_ASSERT_OK(kubeconfig.status());
  g_installed->controller_log = cluster().dir() + "/controller.log";
  AddLogOnFailure("tessera-controller", g_installed->controller_log);
  ProcessOptions p;
  // The chart's arguments (deploy/helm/tessera/templates/controller.yaml), shorter lease times.
  p.argv = {TESSERA_CONTROLLER_BINARY,
            "--kubeconfig=" + *kubeconfig,
            "--leader-elect=true",
            StrCat("--leader-election-namespace=", kNamespace),
            "--leader-election-id=tessera-controller",
            "--lease-duration-seconds=4",
            "--renew-deadline-seconds=3",
            "--retry-period-seconds=1",
            "--events-namespace=default",
            "--metrics-address=0",
            "--health-address=0"};
  p.stdout_path = g_installed->controller_log;
  absl::StatusOr<std::unique_ptr<ChildProcess>> started = ChildProcess::Start(std::move(p));
  E2E_ASSERT_OK(started.status());
  g_installed->controller = std::move(*started);
  E2E_ASSERT_OK(
      g_installed->controller->WaitForLine("tessera-controller publishing", 60s).status());

  // The examples, as a user applies them: the policy (cluster-scoped), then the claims and pods.
  CommandResult r = cluster().Kubectl({"apply", "--server-side", "--validate=strict", "-f",
                                       kSource + "/deploy/examples/00-policy.yaml"});
  ASSERT_TRUE(r.ok()) << r.Describe();
  DeleteAtEnd("gpupartitionpolicy", "examples");
  const std::vector<std::string> files = {"whole-gpu.yaml",      "mig-1g.yaml",    "mig-3g.yaml",
                                          "mps-shared.yaml",     "timeslice.yaml", "mig-mps.yaml",
                                          "first-available.yaml"};
  // The pools must show the examples' layout before the pods are created, or a pod could be
  // allocated from the default policy's whole GPUs.
  E2E_ASSERT_OK(Eventually(
      [&]() -> absl::Status {
        absl::StatusOr<Json> slices = cluster().GetJson({"resourceslices"});
        if (!slices.ok()) return slices.status();
        std::set<std::string> pools_with_ts;
        for (const Json& s : (*slices)["items"]) {
          for (const Json& d : s["spec"].value("devices", Json::array())) {
            if (d["name"] == "gpu-5-ts") pools_with_ts.insert(s["spec"]["pool"]["name"]);
          }
        }
        if (pools_with_ts.size() == 2) return absl::OkStatus();
        return absl::UnavailableError("pools do not publish the examples' layout yet");
      },
      90s));
  for (const std::string& f : files) {
    r = cluster().Kubectl({"apply", "--server-side", "--validate=strict", "-n", ns(), "-f",
                           kSource + "/deploy/examples/" + f});
    ASSERT_TRUE(r.ok()) << f << ": " << r.Describe();
  }

  struct Expect {
    std::string pod;
    std::string device_regex;
    std::string request;
  };
  const std::vector<Expect> expects = {
      // A whole GPU: a whole-mode one (6 or 7) comes before the mig-dynamic GPUs, which publish
      // their whole GPU too.
      {"whole-gpu", "gpu-[67]", "gpu"},
      // MIG instances: GPUs 0-3 are mig-dynamic (3 also offers MPS shares of its instances).
      {"mig-1g", "gpu-[0-3]-mig-1g[0-9]+gb(-me)?-p[0-6]", "mig"},
      {"mig-3g", "gpu-[0-3]-mig-3g[0-9]+gb-p[04]", "mig"},
      {"mps-small", "gpu-4-mps", "share"},
      {"mps-large", "gpu-4-mps", "share"},
      {"timeslice", "gpu-5-ts", "share"},
      {"mig-mps", "gpu-3-mig-2g[0-9]+gb-p[0-9]-mps", "share"},
      {"first-available", "gpu-[0-3]-mig-2g[0-9]+gb-p[0-9]", "mig/small"},
  };
  std::map<std::string, Json> results;  // pod -> allocation result
  for (const Expect& e : expects) {
    SCOPED_TRACE(e.pod);
    absl::StatusOr<Json> running = RunningPod(e.pod, 120s);
    E2E_ASSERT_OK(running.status());
    const Json pod = *running;
    const std::string claim = pod["status"]["resourceClaimStatuses"][0]["resourceClaimName"];
    absl::StatusOr<Json> c = Get("resourceclaim", claim);
    E2E_ASSERT_OK(c.status());
    const Json result = (*c)["status"]["allocation"]["devices"]["results"][0];
    EXPECT_THAT(result["device"].get<std::string>(), MatchesRegex(e.device_regex));
    EXPECT_EQ(result["request"], e.request);
    results[e.pod] = result;
    // Prepared by our plugin on that node: kubelet-sim got CDI devices for the claim.
    const std::string node = pod["spec"]["nodeName"];
    EXPECT_EQ(result["pool"], node);
    absl::StatusOr<Json> status =
        g_installed->kubelets.at(node)->PodStatus(pod["metadata"]["uid"].get<std::string>());
    E2E_ASSERT_OK(status.status());
    EXPECT_TRUE((*status)["prepared"].get<bool>()) << status->dump();
    EXPECT_FALSE((*status)["cdiDevices"].empty()) << status->dump();
  }
  // The two MPS pods share one GPU, each with its own memory limit.
  EXPECT_EQ(results["mps-small"]["pool"], results["mps-large"]["pool"]);
  EXPECT_EQ(results["mps-small"]["consumedCapacity"]["memory"], "10Gi");
  EXPECT_EQ(results["mps-large"]["consumedCapacity"]["memory"], "20Gi");

  // The fake GPUs hold exactly the MIG instances the allocations name.
  auto instances = [&](const std::string& node) {
    return FakeMigInstances(*g_installed->kubelets.at(node));
  };
  std::map<std::string, std::set<std::string>> want;
  for (const auto& [pod, result] : results) {
    if (std::optional<MigName> mig = ParseMig(result["device"])) {
      want[result["pool"]].insert(mig->Key());
    }
  }
  for (const std::string node : {"n0", "n1"}) {
    absl::StatusOr<std::set<std::string>> have = instances(node);
    E2E_ASSERT_OK(have.status());
    EXPECT_EQ(*have, want[node]) << node;
  }

  // kubectl tessera, found by the real kubectl on PATH: the layout map of the 3g pod's node draws
  // its instance over the four memory slices from its placement, and explain says what it got.
  // (kubectl refuses flags before a plugin's name, so the kubeconfig comes from the environment.)
  const std::string plugin_dir = std::filesystem::path(KUBECTL_TESSERA_BINARY).parent_path();
  const std::vector<std::pair<std::string, std::string>> env = {
      {"PATH", StrCat(plugin_dir, ":", getenv("PATH") ? getenv("PATH") : "")},
      {"KUBECONFIG", cluster().kubeconfig()}};
  auto kubectl_tessera = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {cluster().testenv(), "kubectl", "tessera"});
    return RunCommand(args, "", 60s, cluster().dir(), env);
  };
  const Json mig3g = results["mig-3g"];
  const std::optional<MigName> mig3g_name = ParseMig(mig3g["device"]);
  ASSERT_TRUE(mig3g_name.has_value());
  r = kubectl_tessera({"layout", mig3g["pool"]});
  ASSERT_TRUE(r.ok()) << r.Describe();
  EXPECT_THAT(r.out, HasSubstr(StrCat("node ", mig3g["pool"].get<std::string>(), ": 8 x ")));
  // The GPU's row: the 3g span starts 7 characters per memory slice after the row's first cell
  // and is 4 cells (28 characters) wide.
  {
    std::istringstream lines(r.out);
    std::string row;
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind(StrCat("  ", mig3g_name->gpu, " "), 0) == 0) row = line;
    }
    ASSERT_FALSE(row.empty()) << r.out;
    const std::size_t cells = row.find('[');
    const std::size_t span = row.find(" 3g.");
    ASSERT_NE(span, std::string::npos) << row;
    const std::size_t open = row.rfind('[', span), close = row.find(']', span);
    EXPECT_EQ(open - cells, 7u * mig3g_name->start) << row;
    EXPECT_EQ(close - open + 1, 28u) << row;
  }
  EXPECT_THAT(r.out, HasSubstr(mig3g["device"].get<std::string>())) << r.out;
  EXPECT_THAT(r.out, HasSubstr("pod mig-3g")) << r.out;
  r = kubectl_tessera({"explain", "pod/mig-3g", "-n", ns()});
  ASSERT_TRUE(r.ok()) << r.Describe();
  EXPECT_THAT(r.out, HasSubstr(": allocated")) << r.out;
  EXPECT_THAT(r.out, HasSubstr(StrCat(mig3g["pool"].get<std::string>(), "/",
                                      mig3g["device"].get<std::string>())))
      << r.out;
  EXPECT_THAT(r.out, HasSubstr("MIG instance: MIG-")) << r.out;
  EXPECT_THAT(r.out, HasSubstr("(the kubelet prepared the claim)")) << r.out;
  // A pod whose claim nothing can satisfy: explain gives the scheduler's words and the reason.
  r = cluster().Kubectl({"apply", "--server-side", "-n", ns(), "-f", "-"}, R"(
apiVersion: resource.k8s.io/v1
kind: ResourceClaim
metadata: {name: impossible}
spec:
  devices:
    requests:
    - name: mig
      exactly:
        deviceClassName: mig.gpu.tessera.dev
        selectors:
        - cel: {expression: 'device.attributes["gpu.tessera.dev"].profileClass == "8g"'}
---
apiVersion: v1
kind: Pod
metadata: {name: impossible}
spec:
  containers: [{name: c, image: x, resources: {claims: [{name: mig}]}}]
  resourceClaims: [{name: mig, resourceClaimName: impossible}]
  tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]
)");
  ASSERT_TRUE(r.ok()) << r.Describe();
  E2E_ASSERT_OK(Eventually(
      [&]() -> absl::Status {
        CommandResult e = kubectl_tessera({"explain", "claim/impossible", "-n", ns()});
        if (!e.ok()) return absl::InternalError(e.Describe());
        if (e.out.find("not scheduled") == std::string::npos) {
          return absl::UnavailableError("the scheduler has not given up yet: " + e.out);
        }
        EXPECT_THAT(e.out, HasSubstr("claim " + ns() + "/impossible: pending (not allocated)"));
        EXPECT_THAT(e.out, HasSubstr("no published device matches (type mig, profileClass 8g)"));
        return absl::OkStatus();
      },
      60s));
  r = cluster().Kubectl(
      {"delete", "-n", ns(), "pod/impossible", "resourceclaim/impossible", "--wait=false"});
  ASSERT_TRUE(r.ok()) << r.Describe();

  // Deleting the examples unprepares everything: no claim left, no MIG instance left.
  for (const std::string& f : files) {
    r = cluster().Kubectl(
        {"delete", "-n", ns(), "--wait=false", "-f", kSource + "/deploy/examples/" + f});
    ASSERT_TRUE(r.ok()) << f << ": " << r.Describe();
  }
  E2E_ASSERT_OK(Eventually(
      [&]() -> absl::Status {
        absl::StatusOr<Json> claims = cluster().GetJson({"resourceclaims", "-n", ns()});
        if (!claims.ok()) return claims.status();
        if (!(*claims)["items"].empty()) return absl::UnavailableError("claims remain");
        for (const std::string node : {"n0", "n1"}) {
          absl::StatusOr<std::set<std::string>> have = instances(node);
          if (!have.ok()) return have.status();
          if (!have->empty()) return absl::UnavailableError(StrCat(node, " has instances"));
        }
        return absl::OkStatus();
      },
      120s));

  // Least privilege held: nothing the plugins or the controller did was refused.
  for (const auto& [node, k] : g_installed->kubelets) {
    absl::StatusOr<std::string> log = ReadFile(k->root() + "/plugin.log");
    E2E_ASSERT_OK(log.status());
    EXPECT_THAT(*log, Not(HasSubstr("orbidden"))) << node;
  }
  absl::StatusOr<std::string> log = ReadFile(g_installed->controller_log);
  E2E_ASSERT_OK(log.status());
  EXPECT_THAT(*log, Not(HasSubstr("orbidden")));
}

}  // namespace
}  // namespace tessera::e2e
