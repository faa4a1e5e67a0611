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
//
// Per-claim series are removed when the claim is unprepared.

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

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

  // The text exposition of every metric (for tests and the --metrics-address endpoint).
  std::string Render() const;

 private:
  struct Families;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<Families> f_;
  std::mutex mu_;
  std::vector<std::map<std::string, std::string>> claim_labels_;
};

}  // namespace tessera::plugin

#endif  // TESSERA_PLUGIN_METRICS_H_
