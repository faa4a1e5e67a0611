// tessera-e2e-test-plugin: a minimal DRA kubelet plugin for the test environment's own tests.
//
// It proves that the kubelet's real plugin manager and DRA manager (run by `testenv kubelet-sim`)
// talk to a C++ server built from tessera's protos: it serves the registration service on
// <registrar-dir>/<driver>-reg.sock and the DRA node service (v1 and v1beta1) on
// <plugin-dir>/dra.sock. Every claim gets one device, `--device` of pool `--node-name`, serving
// `--request`, with the CDI ID "<cdi-kind>=<claim uid>". Each call is appended to `--calls-log`
// as one JSON line. The real plugin is tessera-kubelet-plugin; this one knows nothing about GPUs.

#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "dra/v1/api.grpc.pb.h"
#include "dra/v1beta1/api.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "pluginregistration/v1/api.grpc.pb.h"

namespace {

namespace drav1 = k8s::io::kubelet::pkg::apis::dra::v1;
namespace drav1beta1 = k8s::io::kubelet::pkg::apis::dra::v1beta1;
namespace reg = pluginregistration;

struct Options {
  std::string driver;
  std::string node;
  std::string registrar_dir;
  std::string plugin_dir;
  std::vector<std::string> versions;
  std::string request = "gpu";
  std::string device = "gpu-0";
  std::string cdi_kind = "e2e.tessera.dev/test";
  int fail_prepare = 0;
  std::string calls_log;
};

class CallLog {
 public:
  explicit CallLog(std::string path) : path_(std::move(path)) {}
  void Append(const nlohmann::json& entry) {
    std::lock_guard<std::mutex> lock(mu_);
    std::ofstream out(path_, std::ios::app);
    out << entry.dump() << "\n";
  }

 private:
  std::mutex mu_;
  std::string path_;
};

// The two DRA service versions have identical messages; one template serves both.
#define TESSERA_DRA_API(name, ns)                                              \
  struct name {                                                                \
    using Service = ns::DRAPlugin::Service;                                    \
    using NodePrepareResourcesRequest = ns::NodePrepareResourcesRequest;       \
    using NodePrepareResourcesResponse = ns::NodePrepareResourcesResponse;     \
    using NodeUnprepareResourcesRequest = ns::NodeUnprepareResourcesRequest;   \
    using NodeUnprepareResourcesResponse = ns::NodeUnprepareResourcesResponse; \
  }
TESSERA_DRA_API(V1, drav1);
TESSERA_DRA_API(V1beta1, drav1beta1);
#undef TESSERA_DRA_API

template <typename Api>
class DraService final : public Api::Service {
 public:
  DraService(const Options& o, CallLog& log, std::atomic<int>& failures, std::string version)
      : o_(o), log_(log), failures_left_(failures), version_(std::move(version)) {}

  grpc::Status NodePrepareResources(grpc::ServerContext*,
                                    const typename Api::NodePrepareResourcesRequest* request,
                                    typename Api::NodePrepareResourcesResponse* response) override {
    const bool fail = failures_left_.fetch_sub(1) > 0;
    nlohmann::json claims = nlohmann::json::array();
    for (const auto& claim : request->claims()) {
      claims.push_back(
          {{"namespace", claim.namespace_()}, {"uid", claim.uid()}, {"name", claim.name()}});
      auto& result = (*response->mutable_claims())[claim.uid()];
      if (fail) {
        result.set_error("injected failure (--fail-prepare)");
        continue;
      }
      auto* device = result.add_devices();
      device->add_request_names(o_.request);
      device->set_pool_name(o_.node);
      device->set_device_name(o_.device);
      device->add_cdi_device_ids(o_.cdi_kind + "=" + claim.uid());
    }
    log_.Append({{"method", "NodePrepareResources"},
                 {"service", version_},
                 {"failed", fail},
                 {"claims", claims}});
    std::cout << "prepare (" << version_ << ") " << claims.dump()
              << (fail ? " -> injected failure" : "") << std::endl;
    return grpc::Status::OK;
  }

  grpc::Status NodeUnprepareResources(
      grpc::ServerContext*, const typename Api::NodeUnprepareResourcesRequest* request,
      typename Api::NodeUnprepareResourcesResponse* response) override {
    nlohmann::json claims = nlohmann::json::array();
    for (const auto& claim : request->claims()) {
      claims.push_back(
          {{"namespace", claim.namespace_()}, {"uid", claim.uid()}, {"name", claim.name()}});
      (*response->mutable_claims())[claim.uid()];
    }
    log_.Append({{"method", "NodeUnprepareResources"}, {"service", version_}, {"claims", claims}});
    std::cout << "unprepare (" << version_ << ") " << claims.dump() << std::endl;
    return grpc::Status::OK;
  }

 private:
  const Options& o_;
  CallLog& log_;
  std::atomic<int>& failures_left_;
  std::string version_;
};

class RegistrationService final : public reg::Registration::Service {
 public:
  explicit RegistrationService(const Options& o) : o_(o) {}

  grpc::Status GetInfo(grpc::ServerContext*, const reg::InfoRequest*,
                       reg::PluginInfo* info) override {
    info->set_type("DRAPlugin");
    info->set_name(o_.driver);
    info->set_endpoint(o_.plugin_dir + "/dra.sock");
    for (const auto& v : o_.versions) info->add_supported_versions(v);
    return grpc::Status::OK;
  }

  grpc::Status NotifyRegistrationStatus(grpc::ServerContext*, const reg::RegistrationStatus* status,
                                        reg::RegistrationStatusResponse*) override {
    std::cout << "REGISTERED " << (status->plugin_registered() ? "true" : "false") << " "
              << status->error() << std::endl;
    return grpc::Status::OK;
  }

 private:
  const Options& o_;
};

std::unique_ptr<grpc::Server> Serve(const std::string& socket,
                                    std::vector<grpc::Service*> services) {
  std::filesystem::remove(socket);
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix://" + socket, grpc::InsecureServerCredentials());
  for (auto* s : services) builder.RegisterService(s);
  auto server = builder.BuildAndStart();
  if (server != nullptr) chmod(socket.c_str(), 0600);
  return server;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  std::string versions = "v1.DRAPlugin,v1beta1.DRAPlugin";
  CLI::App app{"minimal DRA kubelet plugin for tessera's e2e tests"};
  app.add_option("--driver-name", o.driver)->required();
  app.add_option("--node-name", o.node)->required();
  app.add_option("--registrar-dir", o.registrar_dir)->required();
  app.add_option("--plugin-dir", o.plugin_dir)->required();
  app.add_option("--supported-versions", versions);
  app.add_option("--request", o.request);
  app.add_option("--device", o.device);
  app.add_option("--cdi-kind", o.cdi_kind);
  app.add_option("--fail-prepare", o.fail_prepare);
  app.add_option("--calls-log", o.calls_log)->required();
  CLI11_PARSE(app, argc, argv);
  for (std::size_t start = 0; start <= versions.size();) {
    std::size_t comma = versions.find(',', start);
    if (comma == std::string::npos) comma = versions.size();
    if (comma > start) o.versions.push_back(versions.substr(start, comma - start));
    start = comma + 1;
  }

  // Block the stop signals before gRPC starts its threads; main waits for them below.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  std::filesystem::create_directories(o.plugin_dir);
  std::filesystem::create_directories(o.registrar_dir);
  CallLog log(o.calls_log);
  std::atomic<int> failures{o.fail_prepare};
  DraService<V1> v1(o, log, failures, "v1");
  DraService<V1beta1> v1beta1(o, log, failures, "v1beta1");
  RegistrationService registration(o);

  const std::string dra_socket = o.plugin_dir + "/dra.sock";
  const std::string reg_socket = o.registrar_dir + "/" + o.driver + "-reg.sock";
  // The DRA service must answer before the kubelet learns about the plugin.
  auto dra = Serve(dra_socket, {&v1, &v1beta1});
  if (dra == nullptr) {
    std::cerr << "cannot serve " << dra_socket << std::endl;
    return 1;
  }
  auto registrar = Serve(reg_socket, {&registration});
  if (registrar == nullptr) {
    std::cerr << "cannot serve " << reg_socket << std::endl;
    return 1;
  }
  std::cout << "TEST-PLUGIN READY " << o.driver << " " << reg_socket << std::endl;

  int sig = 0;
  sigwait(&stop, &sig);
  std::cout << "stopping on signal " << sig << std::endl;
  // Removing the registration socket is how the kubelet learns the plugin is gone.
  std::filesystem::remove(reg_socket);
  registrar->Shutdown();
  dra->Shutdown();
  std::filesystem::remove(dra_socket);
  return 0;
}
