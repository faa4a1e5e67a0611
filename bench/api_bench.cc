// Decoding costs on the controller's and plugin's hot paths: every watch event carries a
// ResourceSlice or ResourceClaim whose quantities are parsed.
#include <benchmark/benchmark.h>

#include "tessera/api/quantity.h"
#include "tessera/api/resource.h"

namespace {

using tessera::api::Json;

void BM_QuantityParse(benchmark::State& state) {
  const char* inputs[] = {"40Gi", "100m", "5368709120", "9856Mi", "1.5", "7"};
  size_t i = 0;
  for (auto _ : state) {
    auto q = tessera::api::Quantity::Parse(inputs[i++ % 6]);
    benchmark::DoNotOptimize(q);
  }
}
BENCHMARK(BM_QuantityParse);

void BM_QuantityCanonical(benchmark::State& state) {
  auto q = *tessera::api::Quantity::Parse("42949672960");
  for (auto _ : state) benchmark::DoNotOptimize(q.ToString());
}
BENCHMARK(BM_QuantityCanonical);

// One slice of 64 MIG-style devices, each consuming 8 memory-slice counters: the largest slice
// the API allows with counters.
Json SixtyFourDeviceSlice() {
  Json devices = Json::array();
  for (int i = 0; i < 64; ++i) {
    Json counters = Json::object();
    for (int s = 0; s < 8; ++s) counters["memory-slice-" + std::to_string(s)] = {{"value", "1"}};
    devices.push_back(
        {{"name", "gpu-" + std::to_string(i / 8) + "-mig-1g10gb-p" + std::to_string(i % 8)},
         {"attributes", {{"type", {{"string", "mig"}}}, {"profile", {{"string", "1g.10gb"}}}}},
         {"capacity", {{"memory", {{"value", "9856Mi"}}}}},
         {"consumesCounters", {{{"counterSet", "gpu-0-counters"}, {"counters", counters}}}}});
  }
  return {{"apiVersion", "resource.k8s.io/v1"},
          {"kind", "ResourceSlice"},
          {"metadata", {{"name", "s"}}},
          {"spec",
           {{"driver", "gpu.tessera.dev"},
            {"pool", {{"name", "n"}, {"generation", 1}, {"resourceSliceCount", 1}}},
            {"nodeName", "n"},
            {"devices", devices}}}};
}

void BM_DecodeResourceSlice64(benchmark::State& state) {
  Json slice = SixtyFourDeviceSlice();
  for (auto _ : state) {
    auto decoded = tessera::api::DecodeJson<tessera::api::ResourceSlice>(
        slice, tessera::api::UnknownFields::kIgnore);
    benchmark::DoNotOptimize(decoded);
  }
}
BENCHMARK(BM_DecodeResourceSlice64);

void BM_EncodeResourceSlice64(benchmark::State& state) {
  auto slice = *tessera::api::DecodeJson<tessera::api::ResourceSlice>(
      SixtyFourDeviceSlice(), tessera::api::UnknownFields::kIgnore);
  for (auto _ : state) benchmark::DoNotOptimize(Json(slice).dump());
}
BENCHMARK(BM_EncodeResourceSlice64);

}  // namespace
