// Placement speed on one node (target: Place <= 10 us p99 for an 8-GPU node; Google Benchmark
// reports the mean per call, the simulator reports p50/p99 per node).
//   build/default/bench/partitioner_bench

#include <random>
#include <vector>

#include "benchmark/benchmark.h"
#include "tessera/partitioner/placement.h"

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

}  // namespace
