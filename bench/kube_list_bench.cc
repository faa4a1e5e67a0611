// LIST speed against a real API server (target: within 1.5x of `kubectl get resourceslices -o json`
// on the same server; bench/list_bench.sh runs both side by side).
//
//   kube-list-bench --kubeconfig FILE [--create N] [--repeat R]
//
// --create makes sure at least N ResourceSlices of the benchmark's driver exist (8 devices each,
// created from 4 threads); then the full list (pages of 500, as kubectl) is timed R times and the
// median and the item count are printed.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <iostream>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "tessera/api/strings.h"
#include "tessera/kube/client.h"

using tessera::StrCat;
using tessera::api::Json;
namespace kube = tessera::kube;

int main(int argc, char** argv) {
  CLI::App app{"kube-list-bench: time a full LIST of ResourceSlices"};
  std::string kubeconfig;
  int create = 0, repeat = 5;
  app.add_option("--kubeconfig", kubeconfig)->required();
  app.add_option("--create", create, "ensure at least N benchmark slices exist")
      ->capture_default_str();
  app.add_option("--repeat", repeat)->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  absl::StatusOr<kube::Config> config = kube::LoadKubeconfig(kubeconfig);
  if (!config.ok()) {
    std::cerr << config.status().message() << "\n";
    return 1;
  }
  kube::Client client(*config, {.user_agent = "tessera/kube-list-bench"});
  const std::string driver = "bench.tessera.dev";
  if (create > 0) {
    absl::StatusOr<kube::ListResult> existing = client.List(
        kube::resources::kResourceSlices, "", {.field_selector = "spec.driver=" + driver});
    if (!existing.ok()) {
      std::cerr << existing.status().message() << "\n";
      return 1;
    }
    std::atomic<int> next{static_cast<int>(existing->items.size())}, failed{0};
    std::vector<std::thread> workers;
    for (int t = 0; t < 4; ++t) {
      workers.emplace_back([&] {
        for (int i = next++; i < create; i = next++) {
          Json devices = Json::array();
          for (int d = 0; d < 8; ++d) {
            devices.push_back(
                {{"name", StrCat("gpu-", d)},
                 {"attributes",
                  {{"type", {{"string", "gpu"}}},
                   {"productName", {{"string", "NVIDIA H100 80GB HBM3"}}},
                   {"uuid",
                    {{"string", StrCat("GPU-", i, "-", d, "-0000-1111-2222-333344445555")}}},
                   {"cudaComputeCapability", {{"version", "9.0.0"}}}}},
                 {"capacity",
                  {{"memory", {{"value", "81559Mi"}}}, {"multiprocessors", {{"value", "132"}}}}}});
          }
          const std::string node = StrCat("bench-node-", i);
          Json slice = {{"apiVersion", "resource.k8s.io/v1"},
                        {"kind", "ResourceSlice"},
                        {"metadata", {{"name", StrCat(node, "-", driver)}}},
                        {"spec",
                         {{"driver", driver},
                          {"nodeName", node},
                          {"pool", {{"name", node}, {"generation", 1}, {"resourceSliceCount", 1}}},
                          {"devices", devices}}}};
          absl::StatusOr<Json> r = client.Create(kube::resources::kResourceSlices, "", slice);
          if (!r.ok() && r.status().code() != absl::StatusCode::kAlreadyExists) {
            if (failed++ == 0) std::cerr << r.status().message() << "\n";
          }
        }
      });
    }
    for (std::thread& w : workers) w.join();
    if (failed > 0) return 1;
  }
  std::vector<double> ms;
  std::size_t items = 0;
  for (int r = 0; r < repeat; ++r) {
    const auto began = std::chrono::steady_clock::now();
    absl::StatusOr<kube::ListResult> list = client.List(kube::resources::kResourceSlices, "", {});
    const auto took = std::chrono::steady_clock::now() - began;
    if (!list.ok()) {
      std::cerr << list.status().message() << "\n";
      return 1;
    }
    items = list->items.size();
    ms.push_back(std::chrono::duration<double, std::milli>(took).count());
  }
  std::sort(ms.begin(), ms.end());
  std::cout << "tessera list: " << items << " slices, median " << ms[ms.size() / 2] << " ms over "
            << repeat << " runs (min " << ms.front() << ", max " << ms.back() << ")\n";
  return 0;
}
