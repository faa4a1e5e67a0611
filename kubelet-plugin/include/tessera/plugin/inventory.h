#ifndef TESSERA_PLUGIN_INVENTORY_H_
#define TESSERA_PLUGIN_INVENTORY_H_

// The plugin's link to the API server: it reads claims (KubeClaimReader) and writes its node's
// GpuInventory (InventoryPublisher), which is what the controller publishes ResourceSlices from.
//
// The inventory (named after the node, cluster-scoped) is written with server-side apply by field
// manager "tessera-kubelet-plugin": the spec when it changes (after a MIG instance is created or
// destroyed, a share starts or stops), the status heartbeat every period. A stale heartbeat tells
// the controller that the plugin is gone.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "tessera/kube/client.h"
#include "tessera/plugin/prepare.h"

namespace tessera::plugin {

class KubeClaimReader : public ClaimReader {
 public:
  explicit KubeClaimReader(kube::Client& client) : client_(client) {}
  absl::StatusOr<api::ResourceClaim> Get(const std::string& ns, const std::string& name) override;

 private:
  kube::Client& client_;
};

struct InventoryOptions {
  std::string node_name{};
  std::string plugin_version{};
  std::chrono::milliseconds heartbeat{10000};
};

class InventoryPublisher {
 public:
  InventoryPublisher(kube::Client& client, Preparer& preparer, InventoryOptions options);
  ~InventoryPublisher();

  // Writes spec and status now.
  absl::Status Publish();
  // Publishes in the background: every heartbeat, and soon after Changed().
  void Start();
  void Changed();
  void Stop();

  int64_t published() const { return published_.load(); }

 private:
  void Loop();

  kube::Client& client_;
  Preparer& preparer_;
  const InventoryOptions options_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool changed_ = false;
  std::string last_spec_;
  std::thread thread_;
  std::atomic<int64_t> published_{0};
};

}  // namespace tessera::plugin

#endif  // TESSERA_PLUGIN_INVENTORY_H_
