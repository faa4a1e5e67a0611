#ifndef TESSERA_PLUGIN_METRICS_H_
#define TESSERA_PLUGIN_METRICS_H_

// The plugin's Prometheus metrics (served on --metrics-address at /metrics):
//
//   tessera_plugin_requests_total{method,service,result}        gRPC calls (result: ok, error)
//   tessera_plugin_request_duration_seconds{method}              histogram per gRPC call
//   tessera_plugin_claim_errors_total{operation,reason}          failed claims by reason
//   tessera_plugin_prepared_devices{kind}                        whole, mig, mps, timeslice
//   tessera_plugin_claim_memory_limit_bytes{namespace,claim,device}        MPS pinned memory
//   tessera_plugin_claim_compute_limit_percent{namespace,claim,device}     MPS active threads
//   tessera_plugin_claim_memory_used_bytes{namespace,claim,device,shared}  device memory in use
//
// Per-claim series are removed when the claim is unprepared. Memory in use is read from the GPU
// backend at every scrape (NVML: the GPU's or the MIG instance's used memory); shared="true" marks
// a share device, whose value is that of the whole GPU or MIG instance it shares with other claims
// (NVML counts memory per process, not per claim). Backends that cannot tell give no series.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tessera/plugin/checkpoint.h"

namespace prometheus {
class Registry;
}  // namespace prometheus

namespace tessera::plugin {

class PluginMetrics {
 public:
  PluginMetrics();
  ~PluginMetrics();

  std::shared_ptr<prometheus::Registry> registry() const;

  void ObserveCall(std::string_view method, std::string_view service, double seconds, int claims,
                   int failed);
  void ClaimFailed(std::string_view operation, std::string_view reason);
  // Recomputes the device and per-claim gauges from the checkpoint.
  void Update(const std::vector<ClaimRecord>& records);

  // Reads a device's memory in use: (GPU index, GPU or MIG UUID) -> bytes (GpuBackend::MemoryUsed).
  using MemorySampler = std::function<absl::StatusOr<std::int64_t>(int, std::string_view)>;
  void set_memory_sampler(MemorySampler sampler);

  // The text exposition of every metric (for tests and the --metrics-address endpoint); samples
  // the prepared claims' memory in use first.
  std::string Render();

 private:
  struct Families;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<Families> f_;
  std::mutex mu_;
  std::vector<std::map<std::string, std::string>> claim_labels_;
  struct MemoryTarget {
    std::map<std::string, std::string> labels;
    int gpu = 0;
    std::string uuid;
  };
  std::vector<MemoryTarget> memory_targets_;  // the prepared devices, from the last Update
  std::vector<std::map<std::string, std::string>> memory_series_;  // labels sampled last time
  MemorySampler memory_sampler_;
};

}  // namespace tessera::plugin

#endif  // TESSERA_PLUGIN_METRICS_H_
