// kubectl-tessera: a kubectl plugin (kubectl finds it on PATH as `kubectl tessera`).
//
//   kubectl tessera layout [NODE]               the GPUs of a node (or of every node) as a map
//   kubectl tessera explain claim/NAME [-n NS]  what a claim got, or why it is pending
//   kubectl tessera explain pod/NAME [-n NS]    the same for every claim of a pod
//
// Reads the live API (GpuInventory, ResourceSlices, ResourceClaims, DeviceClasses, Pods) with the
// kubeconfig of --kubeconfig, else $KUBECONFIG, else in-cluster; writes nothing.

#include <algorithm>
#include <iostream>

#include "CLI/CLI.hpp"
#include "explain.h"
#include "layout.h"
#include "tessera/api/strings.h"
#include "tessera/kube/client.h"
#include "tessera/kube/config.h"
#include "tessera/tools/cli.h"

namespace {

using tessera::StrCat;
using tessera::api::Json;
namespace kube = tessera::kube;
namespace resources = tessera::kube::resources;

struct Flags {
  std::string kubeconfig;
  std::string context;
  std::string namespace_;
  std::string driver = "gpu.tessera.dev";
  std::string node;
  std::string object;
  bool version = false;
};

int Fail(const absl::Status& s, std::string_view what) {
  std::cerr << "kubectl-tessera: " << what << ": " << s.message() << "\n";
  return 1;
}

absl::StatusOr<std::vector<Json>> ListItems(kube::Client& client, const kube::ResourceType& type,
                                            std::string_view ns, kube::ListOptions options = {}) {
  absl::StatusOr<kube::ListResult> list = client.List(type, ns, options);
  if (!list.ok()) return list.status();
  return std::move(list->items);
}

// What the layouts are drawn from, read once: the GpuInventory of `node` (empty: of every node),
// the driver's ResourceSlices and every ResourceClaim.
struct ApiState {
  std::vector<Json> inventories;
  std::vector<Json> slices;
  std::vector<Json> claims;
};

absl::StatusOr<ApiState> Load(kube::Client& client, const std::string& driver,
                              const std::string& node) {
  ApiState state;
  if (node.empty()) {
    absl::StatusOr<std::vector<Json>> all = ListItems(client, resources::kGpuInventories, "");
    if (!all.ok()) return all.status();
    state.inventories = std::move(*all);
  } else {
    absl::StatusOr<Json> one = client.Get(resources::kGpuInventories, "", node);
    if (!one.ok()) {
      return absl::Status(one.status().code(),
                          StrCat("GpuInventory ", node, ": ", std::string(one.status().message()),
                                 " (is tessera's kubelet plugin running on that node?)"));
    }
    state.inventories.push_back(std::move(*one));
  }
  kube::ListOptions by_driver{.label_selector = "",
                              .field_selector = "spec.driver=" + driver,
                              .limit = 500,
                              .resource_version = ""};
  absl::StatusOr<std::vector<Json>> slices =
      ListItems(client, resources::kResourceSlices, "", by_driver);
  if (!slices.ok()) return slices.status();
  state.slices = std::move(*slices);
  absl::StatusOr<std::vector<Json>> claims = ListItems(client, resources::kResourceClaims, "");
  if (!claims.ok()) return claims.status();
  state.claims = std::move(*claims);
  return state;
}

// The layout of every inventory in `state`, sorted by node name.
absl::StatusOr<std::vector<tessera::kubectl::NodeLayout>> Layouts(const ApiState& state,
                                                                  const std::string& driver) {
  std::vector<tessera::kubectl::NodeLayout> out;
  for (const Json& inv : state.inventories) {
    absl::StatusOr<tessera::kubectl::NodeLayout> l =
        tessera::kubectl::BuildNodeLayout(inv, state.slices, state.claims, driver);
    if (!l.ok()) return l.status();
    out.push_back(std::move(*l));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.node < b.node; });
  return out;
}

int Layout(kube::Client& client, const Flags& f) {
  absl::StatusOr<ApiState> state = Load(client, f.driver, f.node);
  if (!state.ok()) return Fail(state.status(), "layout");
  absl::StatusOr<std::vector<tessera::kubectl::NodeLayout>> layouts = Layouts(*state, f.driver);
  if (!layouts.ok()) return Fail(layouts.status(), "layout");
  if (layouts->empty()) {
    std::cout << "no GpuInventory in the cluster: tessera's kubelet plugin runs on no node yet\n";
    return 0;
  }
  bool first = true;
  for (const auto& l : *layouts) {
    if (!first) std::cout << "\n";
    first = false;
    std::cout << tessera::kubectl::RenderLayout(l);
  }
  return 0;
}

int Explain(kube::Client& client, const Flags& f) {
  const std::string ns = f.namespace_.empty() ? client.config().namespace_ : f.namespace_;
  std::string kind = "claim", name = f.object;
  if (const auto slash = f.object.find('/'); slash != std::string::npos) {
    kind = f.object.substr(0, slash);
    name = f.object.substr(slash + 1);
  }
  std::vector<std::string> claim_names;
  if (kind == "claim" || kind == "resourceclaim" || kind == "resourceclaims") {
    claim_names.push_back(name);
  } else if (kind == "pod" || kind == "pods" || kind == "po") {
    absl::StatusOr<Json> pod = client.Get(resources::kPods, ns, name);
    if (!pod.ok()) return Fail(pod.status(), StrCat("pod ", ns, "/", name));
    const Json statuses = (*pod)["status"].value("resourceClaimStatuses", Json::array());
    for (const Json& s : statuses) {
      if (s.contains("resourceClaimName")) claim_names.push_back(s["resourceClaimName"]);
    }
    const Json refs = (*pod)["spec"].value("resourceClaims", Json::array());
    for (const Json& c : refs) {
      if (c.contains("resourceClaimName")) claim_names.push_back(c["resourceClaimName"]);
    }
    if (claim_names.empty()) {
      std::cout << "pod " << ns << "/" << name << " has no resource claims yet";
      std::cout << ((*pod)["spec"].contains("resourceClaims")
                        ? " (its claims from templates are created when the pod is admitted)\n"
                        : "\n");
      return 0;
    }
  } else {
    std::cerr << "kubectl-tessera: explain: unknown kind \"" << kind << "\" in \"" << f.object
              << "\" (allowed: claim/NAME, pod/NAME)\n";
    return 2;
  }
  tessera::kubectl::ExplainInput in;
  in.driver = f.driver;
  absl::StatusOr<std::vector<Json>> pods = ListItems(client, resources::kPods, ns);
  if (!pods.ok()) return Fail(pods.status(), "pods");
  in.pods = std::move(*pods);
  absl::StatusOr<std::vector<Json>> classes = ListItems(client, resources::kDeviceClasses, "");
  if (!classes.ok()) return Fail(classes.status(), "deviceclasses");
  in.classes = std::move(*classes);
  absl::StatusOr<ApiState> state = Load(client, f.driver, "");
  if (!state.ok()) return Fail(state.status(), "layout");
  absl::StatusOr<std::vector<tessera::kubectl::NodeLayout>> layouts = Layouts(*state, f.driver);
  if (!layouts.ok()) return Fail(layouts.status(), "layout");
  in.slices = std::move(state->slices);
  in.layouts = std::move(*layouts);
  int rc = 0;
  for (const std::string& claim_name : claim_names) {
    absl::StatusOr<Json> claim = client.Get(resources::kResourceClaims, ns, claim_name);
    if (!claim.ok()) {
      rc = Fail(claim.status(), StrCat("resourceclaim ", ns, "/", claim_name,
                                       " (a pod's claims from templates are named "
                                       "<pod>-<claim>-<suffix>; try explain pod/<pod>)"));
      continue;
    }
    in.claim = std::move(*claim);
    std::cout << tessera::kubectl::ExplainClaim(in);
  }
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kubectl tessera: tessera's GPU partitions, from the live API"};
  app.name("kubectl tessera");
  Flags f;
  app.add_flag("--version", f.version, "print the version and exit");
  app.add_option("--kubeconfig", f.kubeconfig,
                 "kubeconfig file (default: $KUBECONFIG, then in-cluster)");
  app.add_option("--context", f.context, "kubeconfig context (default: its current-context)");
  app.add_option("-n,--namespace", f.namespace_,
                 "namespace of the claim or pod (default: the context's)");
  app.add_option("--driver", f.driver, "DRA driver name")->envname("TESSERA_DRIVER_NAME");
  app.fallthrough();  // `explain pod/x -n ns`: subcommands (made below, inheriting it) hand -n up
  CLI::App* layout = app.add_subcommand(
      "layout",
      "draw the GPUs of NODE (default: every node) as maps of memory slices, labelled by claim");
  layout->add_option("node", f.node, "node name");
  CLI::App* explain =
      app.add_subcommand("explain", "say what a claim was given, or why it is pending");
  explain->add_option("object", f.object, "claim/NAME or pod/NAME (a bare NAME is a claim)")
      ->required();
  app.require_subcommand(0, 1);
  CLI11_PARSE(app, argc, argv);
  if (f.version) {
    std::cout << "kubectl-tessera " << tessera::tools::Version() << "\n";
    return 0;
  }
  if (app.get_subcommands().empty()) {
    std::cout << app.help();
    return 2;
  }
  std::string kubeconfig = f.kubeconfig;
  absl::StatusOr<kube::Config> config =
      kubeconfig.empty() && f.context.empty() ? kube::ResolveConfig("")
      : kubeconfig.empty()                    ? kube::ResolveConfig("", f.context)
                                              : kube::LoadKubeconfig(kubeconfig, f.context);
  if (!config.ok()) return Fail(config.status(), "kubeconfig");
  kube::Client client(std::move(*config), {.user_agent = "kubectl-tessera",
                                           .timeout = std::chrono::milliseconds(15000),
                                           .max_attempts = 3,
                                           .initial_backoff = std::chrono::milliseconds(100),
                                           .max_backoff = std::chrono::milliseconds(2000)});
  if (layout->parsed()) return Layout(client, f);
  return Explain(client, f);
}
