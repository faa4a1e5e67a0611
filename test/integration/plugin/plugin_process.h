#ifndef TESSERA_TEST_INTEGRATION_PLUGIN_PLUGIN_PROCESS_H_
#define TESSERA_TEST_INTEGRATION_PLUGIN_PLUGIN_PROCESS_H_

// The real tessera-kubelet-plugin binary as a child process, and the loopback HTTP server that
// stands in for the API server (claim GETs, GpuInventory writes). Used by the crash tests and the
// plugin benchmarks.

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "httplib.h"
#include "tessera/api/resource.h"
#include "test/integration/plugin/fake_kubelet.h"
#include "test/integration/plugin/plugin_env.h"

extern char** environ;

namespace tessera::testing {

// The API server's side: the claims, and whatever the plugin writes.
class FakeApiServer {
 public:
  // With a parameter, so that httplib does not brotli-compress every body (its test for
  // "application/json" is an exact match): the API server compresses only responses over 128 KiB,
  // and on a 2-core machine the compression took a third of the CPU of a prepare benchmark.
  static constexpr const char* kJson = "application/json; charset=utf-8";

  FakeApiServer() {
    server_.Get(R"(/apis/resource.k8s.io/v1/namespaces/([^/]+)/resourceclaims/([^/]+))",
                [this](const httplib::Request& req, httplib::Response& res) {
                  std::lock_guard<std::mutex> lock(mu_);
                  auto it = claims_.find(req.matches[1].str() + "/" + req.matches[2].str());
                  if (it == claims_.end()) {
                    res.status = 404;
                    res.set_content(R"({"kind":"Status","apiVersion":"v1","status":"Failure",
                                        "reason":"NotFound","code":404})",
                                    kJson);
                    return;
                  }
                  res.set_content(it->second, kJson);
                });
    server_.Patch(R"(/apis/tessera.dev/v1alpha1/gpuinventories/.*)",
                  [this](const httplib::Request& req, httplib::Response& res) {
                    std::lock_guard<std::mutex> lock(mu_);
                    ++inventory_writes_;
                    res.set_content(req.body, kJson);
                  });
    // One worker per connection the plugin may hold open (its client keeps connections alive).
    server_.new_task_queue = [] { return new httplib::ThreadPool(96); };
    server_.set_keep_alive_max_count(100000);  // httplib closes after 5 requests by default
    // As the API server (Go's net/http) does: without it the body, a second small write after the
    // headers, waits for the client's delayed ACK (40 ms on Linux) and every GET looks that slow.
    server_.set_tcp_nodelay(true);
    server_.set_socket_options([this](int sock) {
      httplib::default_socket_options(sock);
      listen_fd_ = sock;
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    // httplib listens with a backlog of 5: a burst of new connections (a prepare of 64 claims at
    // once) overflows it, and each dropped SYN costs the plugin a 1 s retransmission. The API
    // server's backlog is the system's.
    if (listen_fd_ >= 0) ::listen(listen_fd_, SOMAXCONN);
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~FakeApiServer() {
    server_.stop();
    thread_.join();
  }
  void Put(const api::ResourceClaim& claim) {
    api::Json j = claim;
    std::lock_guard<std::mutex> lock(mu_);
    claims_[claim.metadata.namespace_ + "/" + claim.metadata.name] = j.dump();
  }
  std::string Kubeconfig() const {
    return "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: "
           "http://127.0.0.1:" +
           std::to_string(port_) +
           "\nusers:\n- name: u\n  user: {}\ncontexts:\n- name: x\n  context: {cluster: c, user: "
           "u}\ncurrent-context: x\n";
  }

 private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  int listen_fd_ = -1;
  std::mutex mu_;
  std::map<std::string, std::string> claims_;
  int inventory_writes_ = 0;
};

// One run of the plugin binary.
class PluginProcess {
 public:
  PluginProcess(const TempDir& dir, const std::string& fault_point,
                const std::string& binary = TESSERA_PLUGIN_BINARY,
                const std::string& mps_control = TESSERA_FAKE_MPS_CONTROL)
      : dir_(dir) {
    std::vector<std::string> args = {
        binary,
        "--node-name=node-a",
        "--kubelet-root=" + (dir / "kubelet"),
        "--cdi-root=" + (dir / "cdi"),
        "--data-dir=" + (dir / "data"),
        "--kubeconfig=" + (dir / "kubeconfig"),
        "--gpu-backend=fake",
        "--fake-gpus=" + (dir / "gpus.yaml"),
        "--host-root=" + (dir / "host"),
        "--mps-control-binary=" + mps_control,
        "--metrics-address=0",
        "--health-address=0",
        "--boot-id-file=" + (dir / "boot_id"),
    };
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e) {
      if (std::string_view(*e).starts_with("TESSERA_FAULT_POINT=")) continue;
      env.push_back(*e);
    }
    if (!fault_point.empty()) env.push_back("TESSERA_FAULT_POINT=" + fault_point);
    std::vector<char*> argv, envp;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    const std::string log = dir / "plugin.log";
    posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_addopen(&actions, 2, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), envp.data()) != 0) pid_ = 0;
    posix_spawn_file_actions_destroy(&actions);
  }
  ~PluginProcess() { Stop(); }

  std::string registration_socket() const {
    return dir_ / "kubelet/plugins_registry/gpu.tessera.dev-reg.sock";
  }
  pid_t pid() const { return pid_; }
  std::string dra_socket() const { return dir_ / "kubelet/plugins/gpu.tessera.dev/dra.sock"; }

  // Waits (bounded) until the plugin answers GetInfo.
  bool WaitReady() {
    for (int i = 0; i < 200; ++i) {
      if (Exited()) return false;
      if (std::filesystem::exists(registration_socket())) {
        FakeKubelet k;
        pluginregistration::PluginInfo info;
        if (k.Register(registration_socket(), &info).ok()) return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }
  bool Exited() {
    if (pid_ <= 0) return true;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      exit_status_ = status;
      pid_ = 0;
      return true;
    }
    return false;
  }
  // Waits (bounded) for the process to end; true if it was killed by SIGKILL.
  bool WaitKilled() {
    for (int i = 0; i < 200 && !Exited(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    return pid_ == 0 && WIFSIGNALED(exit_status_) && WTERMSIG(exit_status_) == SIGKILL;
  }
  void Stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 200 && !Exited(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      pid_ = 0;
    }
  }

 private:
  const TempDir& dir_;
  pid_t pid_ = 0;
  int exit_status_ = 0;
};

}  // namespace tessera::testing

#endif  // TESSERA_TEST_INTEGRATION_PLUGIN_PLUGIN_PROCESS_H_
