#include "tessera/controller/metrics.h"

#include <sstream>

#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"

namespace tessera::controller {

struct ControllerMetrics::Families {
  prometheus::Family<prometheus::Histogram>& duration;
  prometheus::Family<prometheus::Counter>& reconciles;
  prometheus::Family<prometheus::Counter>& writes;
  prometheus::Family<prometheus::Counter>& bumps;
  prometheus::Family<prometheus::Counter>& reorders;
  prometheus::Family<prometheus::Histogram>& incomplete;
  prometheus::Family<prometheus::Counter>& errors;
  prometheus::Family<prometheus::Gauge>& queue;
  prometheus::Family<prometheus::Gauge>& pools;
  prometheus::Family<prometheus::Gauge>& leader;
  prometheus::Family<prometheus::Counter>& reads;
};

namespace {
const prometheus::Histogram::BucketBoundaries kBuckets = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
}  // namespace

ControllerMetrics::ControllerMetrics() : registry_(std::make_shared<prometheus::Registry>()) {
  auto& r = *registry_;
  f_.reset(new Families{
      prometheus::BuildHistogram()
          .Name("tessera_controller_reconcile_duration_seconds")
          .Help("Time to sync one node's pool")
          .Register(r),
      prometheus::BuildCounter()
          .Name("tessera_controller_reconciles_total")
          .Help("Node syncs by result")
          .Register(r),
      prometheus::BuildCounter()
          .Name("tessera_controller_slice_writes_total")
          .Help("ResourceSlice writes by operation (apply, delete)")
          .Register(r),
      prometheus::BuildCounter()
          .Name("tessera_controller_generation_bumps_total")
          .Help("Pools written under a new generation (slice set or device membership changed)")
          .Register(r),
      prometheus::BuildCounter()
          .Name("tessera_controller_steering_reorders_total")
          .Help("Slices updated in place under the same generation (re-ranked devices)")
          .Register(r),
      prometheus::BuildHistogram()
          .Name("tessera_controller_incomplete_window_seconds")
          .Help("Time from the first to the last write of a new pool generation")
          .Register(r),
      prometheus::BuildCounter()
          .Name("tessera_controller_publish_errors_total")
          .Help("Pools not published or published differently, by reason")
          .Register(r),
      prometheus::BuildGauge()
          .Name("tessera_controller_queue_depth")
          .Help("Nodes waiting to be synced")
          .Register(r),
      prometheus::BuildGauge()
          .Name("tessera_controller_pools")
          .Help("Node pools by state (published, withdrawn)")
          .Register(r),
      prometheus::BuildGauge()
          .Name("tessera_controller_leader")
          .Help("1 while this replica holds the leader lease")
          .Register(r),
      prometheus::BuildCounter()
          .Name("tessera_controller_slice_reads_total")
          .Help("ResourceSlices read whole because their watch event's metadata did not vouch for "
                "the spec (changed by someone else, or written by an older controller)")
          .Register(r),
  });
  f_->reconciles.Add({{"result", "ok"}});
  f_->reconciles.Add({{"result", "error"}});
  f_->writes.Add({{"operation", "apply"}});
  f_->writes.Add({{"operation", "delete"}});
  f_->bumps.Add({});
  f_->reorders.Add({});
  f_->queue.Add({});
  f_->leader.Add({});
  f_->incomplete.Add({}, kBuckets);
  f_->reads.Add({});
}

ControllerMetrics::~ControllerMetrics() = default;

void ControllerMetrics::ObserveReconcile(double seconds, bool ok) {
  f_->duration.Add({}, kBuckets).Observe(seconds);
  f_->reconciles.Add({{"result", ok ? "ok" : "error"}}).Increment();
}

void ControllerMetrics::SliceWrites(std::string_view operation, int n) {
  if (n > 0) f_->writes.Add({{"operation", std::string(operation)}}).Increment(n);
}

void ControllerMetrics::SliceReads() { f_->reads.Add({}).Increment(); }

void ControllerMetrics::GenerationBump(double incomplete_seconds) {
  f_->bumps.Add({}).Increment();
  f_->incomplete.Add({}, kBuckets).Observe(incomplete_seconds);
}

void ControllerMetrics::SteeringReorders(int n) {
  if (n > 0) f_->reorders.Add({}).Increment(n);
}

void ControllerMetrics::PublishError(std::string_view reason) {
  f_->errors.Add({{"reason", std::string(reason)}}).Increment();
}

void ControllerMetrics::SetQueueDepth(double depth) { f_->queue.Add({}).Set(depth); }

void ControllerMetrics::SetPools(double published, double withdrawn) {
  f_->pools.Add({{"state", "published"}}).Set(published);
  f_->pools.Add({{"state", "withdrawn"}}).Set(withdrawn);
}

void ControllerMetrics::SetLeader(bool leader) { f_->leader.Add({}).Set(leader ? 1 : 0); }

std::string ControllerMetrics::Render() const {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, registry_->Collect());
  return out.str();
}

}  // namespace tessera::controller
