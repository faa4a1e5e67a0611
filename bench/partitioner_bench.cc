// Placement speed on one node (target: Place <= 10 us p99 for an 8-GPU node; Google Benchmark
// reports the mean per call, the simulator reports p50/p99 per node) and the device model of an
// 8 x H100 node in mig-dynamic mode (target <= 100 us): DeviceModel rebuilds a node whose
// occupancy changed (ranking; unchanged API objects come from the modeler's cache), DeviceModelCold
// is a node's first build (including the counter plan's layout enumeration), DeviceModelAndSlices
// adds copying into ResourceSlices and the full pool check the controller runs before publishing.
//   build/default/bench/partitioner_bench

#include <random>
#include <vector>

#include "benchmark/benchmark.h"
#include "tessera/partitioner/device_model.h"
#include "tessera/partitioner/placement.h"
#include "tessera/partitioner/slices.h"

namespace {

using namespace tessera::partitioner;

// Eight GPUs of `model`, each filled with random instances until a random stop.
std::vector<GpuState> RandomNode(const char* model, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<GpuState> gpus(8, GpuState(*FindBuiltinModel(model)));
  for (GpuState& g : gpus) {
    const GpuModel& m = g.model();
    for (int k = 0; k < 4; ++k) {
      const int profile = static_cast<int>(rng() % m.profiles.size());
      std::vector<Placement> free = g.FreePlacements(profile);
      if (!free.empty()) g.AddInstance(profile, free[rng() % free.size()], "").IgnoreError();
    }
  }
  return gpus;
}

void BM_Place(benchmark::State& state, Policy policy, const char* request) {
  const std::vector<GpuState> gpus = RandomNode("h100-80gb", 7);
  const Placer placer(policy);
  const Request r = *Request::Parse(request);
  for (auto _ : state) benchmark::DoNotOptimize(placer.Place(gpus, r));
}

BENCHMARK_CAPTURE(BM_Place, name_sorted_1g, Policy::kNameSorted, "mig:1g");
BENCHMARK_CAPTURE(BM_Place, first_fit_1g, Policy::kFirstFit, "mig:1g");
BENCHMARK_CAPTURE(BM_Place, best_fit_1g, Policy::kBestFit, "mig:1g");
BENCHMARK_CAPTURE(BM_Place, fgd_1g, Policy::kFgd, "mig:1g");
BENCHMARK_CAPTURE(BM_Place, tessera_1g, Policy::kTessera, "mig:1g");
BENCHMARK_CAPTURE(BM_Place, tessera_3g, Policy::kTessera, "mig:3g");
BENCHMARK_CAPTURE(BM_Place, tessera_mps, Policy::kTessera, "mps:10:25");

struct H100Node {
  H100Node() : states(RandomNode("h100-80gb", 7)) {
    policy.mode = tessera::api::PartitionMode::kMigDynamic;
    for (int i = 0; i < 8; ++i) {
      tessera::api::GpuInfo info;
      info.index = i;
      info.uuid = "GPU-" + std::to_string(i) + "b2c3d4e5-0000-1111-2222-333344445555";
      info.product = "NVIDIA H100 80GB HBM3";
      info.model = "h100-80gb";
      info.compute_capability = "9.0";
      info.pci_bus_id = "0000:1" + std::to_string(i) + ":00.0";
      info.mig_capable = info.mig_enabled = true;
      infos.push_back(info);
    }
    for (const auto& info : infos) inputs.push_back({&info, &policy});
  }
  NodeInput Input() const {
    return {.states = states,
            .gpus = inputs,
            .driver_version = "550.54.15",
            .cuda_driver_version = "12.4",
            .allocated = nullptr};
  }
  std::vector<GpuState> states;
  tessera::api::GpuPolicy policy;
  std::vector<tessera::api::GpuInfo> infos;
  std::vector<GpuInput> inputs;
};

void BM_DeviceModel(benchmark::State& state) {
  const H100Node node;
  const Placer placer(Policy::kTessera);
  DeviceModeler modeler(placer, ApiFeatures{});
  std::size_t devices = 0;
  for (auto _ : state) {
    auto d = modeler.Build(node.Input());
    devices = d->devices.size();
    benchmark::DoNotOptimize(d);
  }
  state.counters["devices"] = static_cast<double>(devices);
}
BENCHMARK(BM_DeviceModel)->Unit(benchmark::kMicrosecond);

// The first Build of a node (or after its policy changed): every API object is made.
void BM_DeviceModelCold(benchmark::State& state) {
  const H100Node node;
  const Placer placer(Policy::kTessera);
  for (auto _ : state) {
    DeviceModeler modeler(placer, ApiFeatures{});
    benchmark::DoNotOptimize(modeler.Build(node.Input()));
  }
}
BENCHMARK(BM_DeviceModelCold)->Unit(benchmark::kMicrosecond);

void BM_DeviceModelAndSlices(benchmark::State& state) {
  const H100Node node;
  const Placer placer(Policy::kTessera);
  DeviceModeler modeler(placer, ApiFeatures{});
  const SliceLimits limits = SliceLimits::ForFeatures(ApiFeatures{});
  std::size_t slices = 0;
  for (auto _ : state) {
    auto d = modeler.Build(node.Input());
    auto s = SplitIntoSlices(*d, {"gpu.tessera.dev", "node-a", "node-a", 1}, limits);
    slices = s->size();
    benchmark::DoNotOptimize(s);
  }
  state.counters["slices"] = static_cast<double>(slices);
}
BENCHMARK(BM_DeviceModelAndSlices)->Unit(benchmark::kMicrosecond);

}  // namespace
