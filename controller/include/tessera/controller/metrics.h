#ifndef TESSERA_CONTROLLER_METRICS_H_
#define TESSERA_CONTROLLER_METRICS_H_

// The controller's Prometheus metrics (served on --metrics-address at /metrics):
//
//   tessera_controller_reconcile_duration_seconds            histogram per node sync
//   tessera_controller_reconciles_total{result}              ok, error
//   tessera_controller_slice_writes_total{operation}         apply, delete
//   tessera_controller_generation_bumps_total                pools written under a new generation
//   tessera_controller_steering_reorders_total               slices updated in place (same
//   generation) tessera_controller_incomplete_window_seconds             histogram: first to last
//   write of a
//                                                            new generation (pool not allocatable)
//   tessera_controller_publish_errors_total{reason}          invalid-pool, api, model,
//   dropped-fields tessera_controller_queue_depth                           nodes waiting to be
//   synced tessera_controller_pools{state}                          published, withdrawn
//   tessera_controller_leader                                1 while this replica leads

#include <memory>
#include <string>
#include <string_view>

namespace prometheus {
class Registry;
}  // namespace prometheus

namespace tessera::controller {

class ControllerMetrics {
 public:
  ControllerMetrics();
  ~ControllerMetrics();

  void ObserveReconcile(double seconds, bool ok);
  void SliceWrites(std::string_view operation, int n);
  void SliceReads();
  void GenerationBump(double incomplete_seconds);
  void SteeringReorders(int n);
  void PublishError(std::string_view reason);
  void SetQueueDepth(double depth);
  void SetPools(double published, double withdrawn);
  void SetLeader(bool leader);

  std::string Render() const;

 private:
  struct Families;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<Families> f_;
};

}  // namespace tessera::controller

#endif  // TESSERA_CONTROLLER_METRICS_H_
