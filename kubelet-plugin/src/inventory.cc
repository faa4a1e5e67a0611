#include "tessera/plugin/inventory.h"

#include "spdlog/spdlog.h"
#include "tessera/api/crd.h"
#include "tessera/api/json_decode.h"
#include "tessera/api/strings.h"
#include "tessera/kube/errors.h"
#include "tessera/kube/leader.h"

namespace tessera::plugin {
namespace {

constexpr std::string_view kFieldManager = "tessera-kubelet-plugin";

}  // namespace

absl::StatusOr<api::ResourceClaim> KubeClaimReader::Get(const std::string& ns,
                                                        const std::string& name) {
  absl::StatusOr<api::Json> json = client_.Get(kube::resources::kResourceClaims, ns, name);
  if (!json.ok()) return json.status();
  return api::DecodeJson<api::ResourceClaim>(*json, api::UnknownFields::kIgnore);
}

InventoryPublisher::InventoryPublisher(kube::Client& client, Preparer& preparer,
                                       InventoryOptions options)
    : client_(client), preparer_(preparer), options_(std::move(options)) {}

InventoryPublisher::~InventoryPublisher() { Stop(); }

absl::Status InventoryPublisher::Publish() {
  absl::StatusOr<NodeInventory> inv = preparer_.Inventory();
  if (!inv.ok()) return inv.status();
  api::GpuInventorySpec spec{.node_name = options_.node_name,
                             .driver_version = inv->driver_version,
                             .cuda_driver_version = inv->cuda_driver_version,
                             .gpus = inv->gpus};
  api::Json object = {{"apiVersion", "tessera.dev/v1alpha1"},
                      {"kind", "GpuInventory"},
                      {"metadata", {{"name", options_.node_name}}},
                      {"spec", spec}};
  const std::string spec_text = object["spec"].dump();
  if (spec_text != last_spec_) {
    absl::StatusOr<api::Json> applied =
        client_.Apply(kube::resources::kGpuInventories, "", object, kFieldManager, /*force=*/true);
    if (!applied.ok()) return applied.status();
    last_spec_ = spec_text;
  }
  api::GpuInventoryStatus status{.heartbeat_time = kube::TimeNow(),
                                 .plugin_version = options_.plugin_version,
                                 .conditions = {}};
  api::Json status_object = {{"apiVersion", "tessera.dev/v1alpha1"},
                             {"kind", "GpuInventory"},
                             {"metadata", {{"name", options_.node_name}}},
                             {"status", status}};
  absl::StatusOr<api::Json> applied =
      client_.Apply(kube::resources::kGpuInventories, "", status_object, kFieldManager,
                    /*force=*/true, "status");
  if (!applied.ok()) return applied.status();
  ++published_;
  return absl::OkStatus();
}

void InventoryPublisher::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void InventoryPublisher::Changed() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    changed_ = true;
  }
  cv_.notify_all();
}

void InventoryPublisher::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void InventoryPublisher::Loop() {
  std::chrono::milliseconds retry{500};
  while (true) {
    absl::Status s = Publish();
    std::chrono::milliseconds wait = options_.heartbeat;
    if (!s.ok()) {
      spdlog::warn("GpuInventory {}: {} (retry in {} ms)", options_.node_name,
                   std::string(s.message()), retry.count());
      wait = std::min(retry, options_.heartbeat);
      retry = std::min(retry * 2, std::chrono::milliseconds(30000));
    } else {
      retry = std::chrono::milliseconds(500);
    }
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, wait, [this] { return stop_ || changed_; });
    if (stop_) return;
    if (changed_) {
      // Let a burst of prepares settle into one write.
      changed_ = false;
      cv_.wait_for(lock, std::chrono::milliseconds(100), [this] { return stop_; });
      if (stop_) return;
    }
  }
}

}  // namespace tessera::plugin
