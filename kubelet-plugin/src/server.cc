#include "tessera/plugin/server.h"

#include <grpcpp/grpcpp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "dra-health/v1/api.grpc.pb.h"
#include "dra-health/v1alpha1/api.grpc.pb.h"
#include "dra/v1/api.grpc.pb.h"
#include "dra/v1beta1/api.grpc.pb.h"
#include "pluginregistration/v1/api.grpc.pb.h"
#include "spdlog/spdlog.h"
#include "tessera/api/strings.h"

namespace tessera::plugin {
namespace {

namespace drav1 = k8s::io::kubelet::pkg::apis::dra::v1;
namespace drav1beta1 = k8s::io::kubelet::pkg::apis::dra::v1beta1;
namespace reg = pluginregistration;

// The generated types of each service version, for the templates below.
#define TESSERA_DRA_API(name, ns, share_id)                                    \
  struct name {                                                                \
    using Service = ns::DRAPlugin::Service;                                    \
    using NodePrepareResourcesRequest = ns::NodePrepareResourcesRequest;       \
    using NodePrepareResourcesResponse = ns::NodePrepareResourcesResponse;     \
    using NodeUnprepareResourcesRequest = ns::NodeUnprepareResourcesRequest;   \
    using NodeUnprepareResourcesResponse = ns::NodeUnprepareResourcesResponse; \
    static constexpr bool kHasShareId = share_id;                              \
  }
TESSERA_DRA_API(DraV1, drav1, true);
TESSERA_DRA_API(DraV1beta1, drav1beta1, false);
#undef TESSERA_DRA_API

#define TESSERA_HEALTH_API(name, ns)                  \
  struct name {                                       \
    using Service = ns::DRAResourceHealth::Service;   \
    using Request = ns::NodeWatchResourcesRequest;    \
    using Response = ns::NodeWatchResourcesResponse;  \
    static constexpr auto kHealthy = ns::HEALTHY;     \
    static constexpr auto kUnhealthy = ns::UNHEALTHY; \
    static constexpr auto kUnknown = ns::UNKNOWN;     \
  }
TESSERA_HEALTH_API(HealthV1, ::v1);
TESSERA_HEALTH_API(HealthV1alpha1, ::v1alpha1);
#undef TESSERA_HEALTH_API

constexpr std::size_t kMaxSocketPath = 107;  // sun_path is 108 bytes with the terminating NUL

absl::Status MakeDir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::FailedPreconditionError(StrCat("create ", dir, ": ", ec.message()));
  ::chmod(dir.c_str(), 0750);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<grpc::Server>> Serve(const std::string& socket,
                                                    const std::vector<grpc::Service*>& services,
                                                    int idle_threads) {
  if (socket.size() > kMaxSocketPath) {
    return absl::InvalidArgumentError(StrCat("socket path ", socket, " is ", socket.size(),
                                             " bytes; unix sockets allow ", kMaxSocketPath));
  }
  if (::unlink(socket.c_str()) != 0 && errno != ENOENT) {
    return absl::FailedPreconditionError(
        StrCat("remove stale socket ", socket, ": ", std::strerror(errno)));
  }
  grpc::ServerBuilder builder;
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS,
                              std::max(1, idle_threads));
  builder.AddListeningPort("unix://" + socket, grpc::InsecureServerCredentials());
  for (grpc::Service* s : services) builder.RegisterService(s);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr) return absl::UnavailableError(StrCat("cannot listen on ", socket));
  ::chmod(socket.c_str(), 0600);
  return server;
}

// The two node-service versions have identical messages (v1 adds share_id); one template serves
// both from the Preparer.
template <typename Ns>
class DraService final : public Ns::Service {
 public:
  DraService(Preparer& preparer, const ServerObserver& observer, std::string version)
      : preparer_(preparer), observer_(observer), version_(std::move(version)) {}

  grpc::Status NodePrepareResources(grpc::ServerContext*,
                                    const typename Ns::NodePrepareResourcesRequest* request,
                                    typename Ns::NodePrepareResourcesResponse* response) override {
    const auto start = std::chrono::steady_clock::now();
    std::vector<ClaimRef> claims;
    for (const auto& c : request->claims()) {
      claims.push_back({.namespace_ = c.namespace_(), .name = c.name(), .uid = c.uid()});
    }
    int failed = 0;
    for (auto& [uid, result] : preparer_.Prepare(claims)) {
      auto& out = (*response->mutable_claims())[uid];
      if (!result.error.empty()) {
        out.set_error(result.error);
        ++failed;
        continue;
      }
      for (const PreparedDevice& d : result.devices) {
        auto* device = out.add_devices();
        for (const std::string& r : d.requests) device->add_request_names(r);
        device->set_pool_name(d.pool);
        device->set_device_name(d.device);
        for (const std::string& id : d.cdi_ids) device->add_cdi_device_ids(id);
        if constexpr (Ns::kHasShareId) {
          if (d.share_id) device->set_share_id(*d.share_id);
        }
      }
    }
    Observe("NodePrepareResources", start, static_cast<int>(claims.size()), failed);
    return grpc::Status::OK;
  }

  grpc::Status NodeUnprepareResources(
      grpc::ServerContext*, const typename Ns::NodeUnprepareResourcesRequest* request,
      typename Ns::NodeUnprepareResourcesResponse* response) override {
    const auto start = std::chrono::steady_clock::now();
    std::vector<ClaimRef> claims;
    for (const auto& c : request->claims()) {
      claims.push_back({.namespace_ = c.namespace_(), .name = c.name(), .uid = c.uid()});
    }
    int failed = 0;
    for (auto& [uid, error] : preparer_.Unprepare(claims)) {
      auto& out = (*response->mutable_claims())[uid];
      if (!error.empty()) {
        out.set_error(error);
        ++failed;
      }
    }
    Observe("NodeUnprepareResources", start, static_cast<int>(claims.size()), failed);
    return grpc::Status::OK;
  }

 private:
  void Observe(std::string_view method, std::chrono::steady_clock::time_point start, int claims,
               int failed) {
    if (!observer_.on_call) return;
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    observer_.on_call(method, version_, seconds, claims, failed);
  }

  Preparer& preparer_;
  const ServerObserver& observer_;
  const std::string version_;
};

}  // namespace

// Shared by the services: registration state and the health streams' wake-up.
struct PluginServer::Impl {
  mutable std::mutex mu;
  std::condition_variable changed;
  uint64_t generation ABSL_GUARDED_BY(mu) = 0;
  bool stopping ABSL_GUARDED_BY(mu) = false;
  RegistrationState registration ABSL_GUARDED_BY(mu);

  std::unique_ptr<grpc::Service> v1;
  std::unique_ptr<grpc::Service> v1beta1;
  std::unique_ptr<grpc::Service> health_v1alpha1;
  std::unique_ptr<grpc::Service> health_v1;
  std::unique_ptr<grpc::Service> registrar;
};

namespace {

class RegistrationService final : public reg::Registration::Service {
 public:
  RegistrationService(PluginServer::Impl& impl, std::string driver, std::string endpoint,
                      std::vector<std::string> versions)
      : impl_(impl),
        driver_(std::move(driver)),
        endpoint_(std::move(endpoint)),
        versions_(std::move(versions)) {}

  // The kubelet gives this 1 s: answer from memory only.
  grpc::Status GetInfo(grpc::ServerContext*, const reg::InfoRequest*,
                       reg::PluginInfo* info) override {
    info->set_type("DRAPlugin");
    info->set_name(driver_);
    info->set_endpoint(endpoint_);
    for (const std::string& v : versions_) info->add_supported_versions(v);
    return grpc::Status::OK;
  }

  grpc::Status NotifyRegistrationStatus(grpc::ServerContext*, const reg::RegistrationStatus* status,
                                        reg::RegistrationStatusResponse*) override {
    {
      std::lock_guard<std::mutex> lock(impl_.mu);
      impl_.registration = {
          .notified = true, .registered = status->plugin_registered(), .error = status->error()};
    }
    if (!status->plugin_registered()) {
      spdlog::error("the kubelet refused the registration of {}: {}", driver_, status->error());
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "registration failed: " + status->error());
    }
    spdlog::info("registered with the kubelet as {} (endpoint {})", driver_, endpoint_);
    return grpc::Status::OK;
  }

 private:
  PluginServer::Impl& impl_;
  const std::string driver_;
  const std::string endpoint_;
  const std::vector<std::string> versions_;
};

// Streams the complete device list, immediately, on every change and at least every period.
template <typename Ns>
class HealthService final : public Ns::Service {
 public:
  HealthService(PluginServer::Impl& impl, Preparer& preparer, const ServerOptions& options)
      : impl_(impl), preparer_(preparer), options_(options) {}

  grpc::Status NodeWatchResources(grpc::ServerContext* context, const typename Ns::Request*,
                                  grpc::ServerWriter<typename Ns::Response>* writer) override {
    uint64_t seen = 0;
    while (true) {
      absl::StatusOr<std::vector<Preparer::DeviceHealth>> health = preparer_.Health();
      typename Ns::Response response;
      const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
      if (health.ok()) {
        for (const Preparer::DeviceHealth& h : *health) {
          auto* d = response.add_devices();
          d->mutable_device()->set_pool_name(preparer_.pool());
          d->mutable_device()->set_device_name(h.device);
          d->set_health(h.health == api::HealthState::kHealthy     ? Ns::kHealthy
                        : h.health == api::HealthState::kUnhealthy ? Ns::kUnhealthy
                                                                   : Ns::kUnknown);
          d->set_last_updated_time(now);
          d->set_health_check_timeout_seconds(options_.health_timeout_seconds);
          d->set_message(h.message.substr(0, 1024));
        }
      } else {
        spdlog::warn("health: {}", std::string(health.status().message()));
      }
      if (!writer->Write(response)) return grpc::Status::OK;  // the kubelet went away
      std::unique_lock<std::mutex> lock(impl_.mu);
      const auto deadline = std::chrono::steady_clock::now() + options_.health_period;
      impl_.changed.wait_until(lock, deadline, [&] {
        return impl_.stopping || impl_.generation != seen || context->IsCancelled();
      });
      seen = impl_.generation;
      if (impl_.stopping || context->IsCancelled()) return grpc::Status::OK;
    }
  }

 private:
  PluginServer::Impl& impl_;
  Preparer& preparer_;
  const ServerOptions& options_;
};

}  // namespace

PluginServer::PluginServer(ServerOptions options, Preparer& preparer)
    : options_(std::move(options)), preparer_(preparer), impl_(std::make_unique<Impl>()) {}

PluginServer::~PluginServer() { Stop(); }

std::string PluginServer::dra_socket() const {
  if (!options_.pod_uid.empty())
    return StrCat(options_.plugin_dir, "/dra-", options_.pod_uid, ".sock");
  return StrCat(options_.plugin_dir, "/dra.sock");
}

std::string PluginServer::registration_socket() const {
  if (!options_.pod_uid.empty()) {
    return StrCat(options_.registrar_dir, "/", options_.driver_name, "-", options_.pod_uid,
                  "-reg.sock");
  }
  return StrCat(options_.registrar_dir, "/", options_.driver_name, "-reg.sock");
}

std::vector<std::string> PluginServer::supported_versions() const {
  std::vector<std::string> v = {"v1.DRAPlugin", "v1beta1.DRAPlugin"};
  if (options_.serve_health) {
    v.push_back("v1.DRAResourceHealth");
    v.push_back("v1alpha1.DRAResourceHealth");
  }
  return v;
}

RegistrationState PluginServer::registration() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->registration;
}

void PluginServer::HealthChanged() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    ++impl_->generation;
  }
  impl_->changed.notify_all();
}

absl::Status PluginServer::Start() {
  if (absl::Status s = MakeDir(options_.plugin_dir); !s.ok()) return s;
  if (absl::Status s = MakeDir(options_.registrar_dir); !s.ok()) return s;
  impl_->v1 = std::make_unique<DraService<DraV1>>(preparer_, observer_, "v1");
  impl_->v1beta1 = std::make_unique<DraService<DraV1beta1>>(preparer_, observer_, "v1beta1");
  std::vector<grpc::Service*> dra = {impl_->v1.get(), impl_->v1beta1.get()};
  if (options_.serve_health) {
    impl_->health_v1 = std::make_unique<HealthService<HealthV1>>(*impl_, preparer_, options_);
    impl_->health_v1alpha1 =
        std::make_unique<HealthService<HealthV1alpha1>>(*impl_, preparer_, options_);
    dra.push_back(impl_->health_v1.get());
    dra.push_back(impl_->health_v1alpha1.get());
  }
  absl::StatusOr<std::unique_ptr<grpc::Server>> served =
      Serve(dra_socket(), dra, options_.idle_threads);
  if (!served.ok()) return served.status();
  dra_server_ = *std::move(served);
  impl_->registrar = std::make_unique<RegistrationService>(*impl_, options_.driver_name,
                                                           dra_socket(), supported_versions());
  served =
      Serve(registration_socket(), {impl_->registrar.get()}, /*idle_threads=*/2);  // gRPC default
  if (!served.ok()) {
    Stop();
    return served.status();
  }
  registration_server_ = *std::move(served);
  spdlog::info("serving {} on {} and {}", options_.driver_name, dra_socket(),
               registration_socket());
  return absl::OkStatus();
}

void PluginServer::Stop() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->stopping = true;
  }
  impl_->changed.notify_all();
  // The kubelet de-registers when the registration socket disappears.
  if (registration_server_ != nullptr) {
    ::unlink(registration_socket().c_str());
    registration_server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    registration_server_.reset();
  }
  if (dra_server_ != nullptr) {
    // In-flight prepares get a deadline to finish.
    dra_server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(10));
    dra_server_.reset();
    ::unlink(dra_socket().c_str());
  }
}

}  // namespace tessera::plugin
