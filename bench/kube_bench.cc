// Watch-stream decoding speed on one core (target: >= 20,000 events/s). The stream is recorded in
// memory first, exactly as the API server writes it (one JSON event per line), then fed to the
// decoder in 16 KiB chunks as libcurl delivers them. Two streams:
//  - claims: allocated ResourceClaims with status (about 1.4 KB per event), what the plugin and the
//    controller watch most;
//  - slices: ResourceSlices of 64 mig-dynamic H100 devices from the device model (about 37 KB per
//    event), the largest objects tessera handles.
//   build/default/bench/kube_bench

#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "tessera/api/strings.h"
#include "tessera/kube/watch.h"
#include "tessera/partitioner/device_model.h"
#include "tessera/partitioner/slices.h"

namespace {

using tessera::StrCat;
using tessera::api::Json;

std::string ClaimEvent(int i) {
  Json claim = {
      {"apiVersion", "resource.k8s.io/v1"},
      {"kind", "ResourceClaim"},
      {"metadata",
       {{"name", StrCat("trainer-", i, "-gpu-k7x2p")},
        {"namespace", "ml"},
        {"uid", StrCat("6d1f0c3a-8b7e-4a55-9c1d-", 100000000000 + i)},
        {"resourceVersion", std::to_string(1000 + i)},
        {"annotations", {{"resource.kubernetes.io/pod-claim-name", "gpu"}}},
        {"finalizers", {"resource.kubernetes.io/delete-protection"}},
        {"ownerReferences",
         {{{"apiVersion", "v1"},
           {"kind", "Pod"},
           {"name", StrCat("trainer-", i)},
           {"uid", "0c2a-ffff"},
           {"controller", true},
           {"blockOwnerDeletion", true}}}}}},
      {"spec",
       {{"devices",
         {{"requests",
           {{{"name", "gpu"},
             {"exactly",
              {{"deviceClassName", "mig.tessera.dev"},
               {"allocationMode", "ExactCount"},
               {"count", 1},
               {"selectors",
                {{{"cel",
                   {{"expression",
                     "device.attributes['gpu.tessera.dev'].profileClass == '3g'"}}}}}}}}}}}}}}},
      {"status",
       {{"allocation",
         {{"devices",
           {{"results",
             {{{"request", "gpu"},
               {"driver", "gpu.tessera.dev"},
               {"pool", "node-a"},
               {"device", StrCat("gpu-", i % 8, "-mig-3g40gb-p4")}}}}}},
          {"nodeSelector",
           {{"nodeSelectorTerms",
             {{{"matchFields",
                {{{"key", "metadata.name"}, {"operator", "In"}, {"values", {"node-a"}}}}}}}}}},
          {"allocationTimestamp", "2026-09-01T10:00:00Z"}}},
        {"reservedFor",
         {{{"resource", "pods"}, {"name", StrCat("trainer-", i)}, {"uid", "0c2a-ffff"}}}}}}};
  return Json{{"type", i % 3 == 0 ? "ADDED" : "MODIFIED"}, {"object", claim}}.dump() + "\n";
}

std::vector<std::string> SliceEvents() {
  using namespace tessera::partitioner;
  const GpuModel& m = *FindBuiltinModel("h100-80gb");
  std::vector<GpuState> states(8, GpuState(m));
  std::vector<tessera::api::GpuInfo> infos(8);
  tessera::api::GpuPolicy policy;
  policy.mode = tessera::api::PartitionMode::kMigDynamic;
  std::vector<GpuInput> inputs;
  for (int g = 0; g < 8; ++g) {
    infos[g].index = g;
    infos[g].uuid = StrCat("GPU-", g, "a1b2c3d4-0000-1111-2222-333344445555");
    infos[g].product = m.product_name;
    infos[g].model = m.key;
    infos[g].pci_bus_id = StrCat("0000:1", g, ":00.0");
    infos[g].mig_capable = infos[g].mig_enabled = true;
  }
  for (const auto& info : infos) inputs.push_back({&info, &policy});
  Placer placer(Policy::kTessera);
  DeviceModeler modeler(placer, ApiFeatures{});
  NodeDevices devices = *modeler.Build({.states = states,
                                        .gpus = inputs,
                                        .driver_version = "550.54.15",
                                        .cuda_driver_version = "12.4",
                                        .allocated = nullptr});
  std::vector<tessera::api::ResourceSliceSpec> specs =
      *SplitIntoSlices(devices, {"gpu.tessera.dev", "node-a", "node-a", 1}, SliceLimits{});
  std::vector<std::string> out;
  for (std::size_t i = 0; i < specs.size(); ++i) {
    if (specs[i].devices.empty()) continue;
    tessera::api::ResourceSlice slice;
    slice.metadata.name = StrCat("node-a-gpu.tessera.dev-", i);
    slice.metadata.resource_version = std::to_string(500 + i);
    slice.spec = specs[i];
    Json j;
    to_json(j, slice);
    j["apiVersion"] = "resource.k8s.io/v1";
    j["kind"] = "ResourceSlice";
    out.push_back(Json{{"type", "MODIFIED"}, {"object", j}}.dump() + "\n");
  }
  return out;
}

void Decode(benchmark::State& state, const std::string& stream, std::size_t events_per_stream) {
  constexpr std::size_t kChunk = 16 << 10;
  std::size_t events = 0;
  for (auto _ : state) {
    tessera::kube::WatchDecoder decoder;
    std::vector<tessera::kube::WatchEvent> out;
    for (std::size_t i = 0; i < stream.size(); i += kChunk) {
      out.clear();
      if (!decoder.Feed(std::string_view(stream).substr(i, kChunk), &out).ok())
        state.SkipWithError("decode failed");
      events += out.size();
      benchmark::DoNotOptimize(out);
    }
  }
  state.counters["events/s"] =
      benchmark::Counter(static_cast<double>(events), benchmark::Counter::kIsRate);
  state.counters["bytes/event"] =
      static_cast<double>(stream.size()) / static_cast<double>(events_per_stream);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * stream.size()));
}

void BM_WatchDecodeClaims(benchmark::State& state) {
  std::string stream;
  for (int i = 0; i < 5000; ++i) stream += ClaimEvent(i);
  Decode(state, stream, 5000);
}
BENCHMARK(BM_WatchDecodeClaims)->Unit(benchmark::kMillisecond);

void BM_WatchDecodeSlices(benchmark::State& state) {
  std::string stream;
  std::size_t n = 0;
  for (int round = 0; round < 50; ++round) {
    for (const std::string& e : SliceEvents()) {
      stream += e;
      ++n;
    }
  }
  Decode(state, stream, n);
}
BENCHMARK(BM_WatchDecodeSlices)->Unit(benchmark::kMillisecond);

}  // namespace
