#include "tessera/plugin/metrics.h"

#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"

namespace tessera::plugin {

struct PluginMetrics::Families {
  prometheus::Family<prometheus::Counter>& requests;
  prometheus::Family<prometheus::Histogram>& duration;
  prometheus::Family<prometheus::Counter>& claim_errors;
  prometheus::Family<prometheus::Gauge>& devices;
  prometheus::Family<prometheus::Gauge>& memory_limit;
  prometheus::Family<prometheus::Gauge>& compute_limit;
  prometheus::Family<prometheus::Gauge>& memory_used;
};

PluginMetrics::PluginMetrics() : registry_(std::make_shared<prometheus::Registry>()) {
  f_.reset(new Families{
      prometheus::BuildCounter()
          .Name("tessera_plugin_requests_total")
          .Help("NodePrepareResources / NodeUnprepareResources calls by service version and "
                "result")
          .Register(*registry_),
      prometheus::BuildHistogram()
          .Name("tessera_plugin_request_duration_seconds")
          .Help("Duration of the kubelet's gRPC calls")
          .Register(*registry_),
      prometheus::BuildCounter()
          .Name("tessera_plugin_claim_errors_total")
          .Help("Claims that failed to prepare or unprepare, by reason")
          .Register(*registry_),
      prometheus::BuildGauge()
          .Name("tessera_plugin_prepared_devices")
          .Help("Prepared devices by kind (whole, mig, mps, timeslice)")
          .Register(*registry_),
      prometheus::BuildGauge()
          .Name("tessera_plugin_claim_memory_limit_bytes")
          .Help("MPS pinned device memory limit of a prepared claim's device")
          .Register(*registry_),
      prometheus::BuildGauge()
          .Name("tessera_plugin_claim_compute_limit_percent")
          .Help("MPS active thread percentage of a prepared claim's device")
          .Register(*registry_),
      prometheus::BuildGauge()
          .Name("tessera_plugin_claim_memory_used_bytes")
          .Help("Device memory in use on a prepared claim's GPU or MIG instance (shared=true: "
                "the whole device, which other claims share)")
          .Register(*registry_),
  });
  for (const char* kind : {"whole", "mig", "mps", "timeslice"}) f_->devices.Add({{"kind", kind}});
}

PluginMetrics::~PluginMetrics() = default;

std::shared_ptr<prometheus::Registry> PluginMetrics::registry() const { return registry_; }

void PluginMetrics::ObserveCall(std::string_view method, std::string_view service, double seconds,
                                int claims, int failed) {
  const std::string m(method);
  f_->requests
      .Add({{"method", m}, {"service", std::string(service)}, {"result", failed ? "error" : "ok"}})
      .Increment();
  static const prometheus::Histogram::BucketBoundaries kBuckets = {
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
  f_->duration.Add({{"method", m}}, kBuckets).Observe(seconds);
  (void)claims;
}

void PluginMetrics::ClaimFailed(std::string_view operation, std::string_view reason) {
  f_->claim_errors.Add({{"operation", std::string(operation)}, {"reason", std::string(reason)}})
      .Increment();
}

void PluginMetrics::Update(const std::vector<ClaimRecord>& records) {
  std::lock_guard<std::mutex> lock(mu_);
  std::map<std::string, double> kinds = {{"whole", 0}, {"mig", 0}, {"mps", 0}, {"timeslice", 0}};
  for (const auto& labels : claim_labels_) {
    f_->memory_limit.Remove(&f_->memory_limit.Add(labels));
    f_->compute_limit.Remove(&f_->compute_limit.Add(labels));
  }
  claim_labels_.clear();
  memory_targets_.clear();
  for (const ClaimRecord& r : records) {
    if (r.phase != ClaimPhase::kPrepared) continue;
    for (const PreparedDevice& d : r.devices) {
      if (d.sharing == ShareStrategy::kMps) {
        kinds["mps"] += 1;
      } else if (d.sharing == ShareStrategy::kTimeSlicing) {
        kinds["timeslice"] += 1;
      } else {
        kinds[d.mig ? "mig" : "whole"] += 1;
      }
      const std::map<std::string, std::string> labels = {
          {"namespace", r.namespace_}, {"claim", r.name}, {"device", d.device}};
      bool any = false;
      if (d.pinned_memory_limit_mib) {
        f_->memory_limit.Add(labels).Set(static_cast<double>(*d.pinned_memory_limit_mib) * 1048576);
        any = true;
      }
      if (d.active_thread_percentage) {
        f_->compute_limit.Add(labels).Set(*d.active_thread_percentage);
        any = true;
      }
      if (any) claim_labels_.push_back(labels);
      std::map<std::string, std::string> memory_labels = labels;
      memory_labels["shared"] = d.sharing == ShareStrategy::kNone ? "false" : "true";
      memory_targets_.push_back({.labels = std::move(memory_labels),
                                 .gpu = d.gpu,
                                 .uuid = d.mig ? d.mig->uuid : d.gpu_uuid});
    }
  }
  for (const auto& [kind, n] : kinds) f_->devices.Add({{"kind", kind}}).Set(n);
}

void PluginMetrics::set_memory_sampler(MemorySampler sampler) {
  std::lock_guard<std::mutex> lock(mu_);
  memory_sampler_ = std::move(sampler);
}

std::string PluginMetrics::Render() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& labels : memory_series_) {
      f_->memory_used.Remove(&f_->memory_used.Add(labels));
    }
    memory_series_.clear();
    if (memory_sampler_) {
      for (const MemoryTarget& t : memory_targets_) {
        if (t.uuid.empty()) continue;
        absl::StatusOr<std::int64_t> used = memory_sampler_(t.gpu, t.uuid);
        if (!used.ok()) continue;  // gone meanwhile, or a backend that cannot tell
        f_->memory_used.Add(t.labels).Set(static_cast<double>(*used));
        memory_series_.push_back(t.labels);
      }
    }
  }
  prometheus::TextSerializer serializer;
  return serializer.Serialize(registry_->Collect());
}

}  // namespace tessera::plugin
