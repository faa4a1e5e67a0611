#ifndef TESSERA_PLUGIN_SERVER_H_
#define TESSERA_PLUGIN_SERVER_H_

// The plugin's gRPC face towards the kubelet, over unix sockets:
//
//   <registrar dir>/<driver>-reg.sock     pluginregistration.Registration (GetInfo answers from
//                                          memory; NotifyRegistrationStatus is recorded)
//   <plugin dir>/dra.sock                  DRA node service v1 and v1beta1 (one implementation;
//                                          share_id only in v1) and the health service
//                                          (v1alpha1 and v1 DRAResourceHealth)
//
// With a pod UID (rolling updates: two plugin pods of one driver on a node) the sockets are
// <driver>-<podUID>-reg.sock and dra-<podUID>.sock, so the new pod never removes the old pod's.
// Start() serves dra.sock before the registration socket (the kubelet may prepare right after
// registering); Stop() removes the registration socket first. Directories are created 0750,
// sockets 0600; a stale socket file is removed before bind; a path longer than a unix socket
// allows (107 bytes) is an error naming it.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "tessera/plugin/prepare.h"

namespace grpc {
class Server;
class Service;
}  // namespace grpc

namespace tessera::plugin {

struct ServerOptions {
  std::string driver_name = "gpu.tessera.dev";
  std::string registrar_dir = "/var/lib/kubelet/plugins_registry";
  std::string plugin_dir = "/var/lib/kubelet/plugins/gpu.tessera.dev";
  std::string pod_uid{};  // set: rolling-update socket names
  bool serve_health = true;
  std::chrono::milliseconds health_period{10000};  // full health list re-sent at least this often
  int64_t health_timeout_seconds = 30;             // what the kubelet waits before Unknown
  // gRPC's synchronous server runs every call on a thread of its own and lets all but this many
  // exit once idle. Keeping some spares saves a burst of prepares a thread creation and teardown
  // per call (about 6 % of the plugin's CPU at 64 concurrent prepares, for no measurable memory).
  int idle_threads = 16;
};

struct RegistrationState {
  bool notified = false;  // the kubelet called NotifyRegistrationStatus
  bool registered = false;
  std::string error{};
};

// Per-call hooks for metrics and logs.
struct ServerObserver {
  // method: "NodePrepareResources" / "NodeUnprepareResources"; service: "v1" / "v1beta1".
  std::function<void(std::string_view method, std::string_view service, double seconds, int claims,
                     int failed)>
      on_call{};
};

class PluginServer {
 public:
  PluginServer(ServerOptions options, Preparer& preparer);
  ~PluginServer();

  absl::Status Start();
  void Stop();

  std::string dra_socket() const;
  std::string registration_socket() const;
  // Exactly what GetInfo advertises, in order.
  std::vector<std::string> supported_versions() const;
  RegistrationState registration() const;
  // Wakes the health streams to send the current list now.
  void HealthChanged();
  void set_observer(ServerObserver observer) { observer_ = std::move(observer); }

  // Internal, for the service implementations.
  struct Impl;

 private:
  const ServerOptions options_;
  Preparer& preparer_;
  ServerObserver observer_;
  std::unique_ptr<Impl> impl_;
  std::unique_ptr<grpc::Server> dra_server_;
  std::unique_ptr<grpc::Server> registration_server_;
};

}  // namespace tessera::plugin

#endif  // TESSERA_PLUGIN_SERVER_H_
