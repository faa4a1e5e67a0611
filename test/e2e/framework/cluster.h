#ifndef TESSERA_TEST_E2E_FRAMEWORK_CLUSTER_H_
#define TESSERA_TEST_E2E_FRAMEWORK_CLUSTER_H_

// A real Kubernetes control plane for one e2e test binary: `testenv up` (etcd, kube-apiserver,
// kube-scheduler, kube-controller-manager and fake Ready nodes), reached with the upstream
// kubectl built into the same testenv binary.
//
// The binary's main registers ClusterEnvironment; every e2e fixture (E2ETest) checks
// Cluster::Get() in SetUp and skips with the reason when there is no cluster, so a machine without
// Go reports "skipped: testenv not built (Go not found)" rather than a pass.

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "process.h"

namespace tessera::e2e {

using Json = nlohmann::json;
using namespace std::chrono_literals;

class Cluster {
 public:
  // Starts a cluster with the given fake nodes and extra `testenv up` flags (e.g.
  // "--version-skew=1.35"). Never returns null: on failure the cluster is unavailable and
  // reason() says why (with the tails of the component logs).
  static std::unique_ptr<Cluster> Start(const std::vector<std::string>& nodes,
                                        const std::vector<std::string>& up_flags = {});
  // The cluster of this test binary, set by ClusterEnvironment; null before SetUp.
  static Cluster* Get();

  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;
  // Stops the control plane; deletes dir() unless TESSERA_E2E_KEEP=1.
  ~Cluster();

  bool available() const { return up_ != nullptr && reason_.empty(); }
  // True when the environment was never built (no Go): tests skip. Any other unavailability is a
  // failure, so a broken control plane cannot pass as skipped.
  bool not_built() const { return not_built_; }
  const std::string& reason() const { return reason_; }
  const std::string& dir() const { return dir_; }
  const std::string& testenv() const { return testenv_; }
  const std::string& kubeconfig() const { return env_.at("KUBECONFIG"); }
  const std::string& server() const { return env_.at("APISERVER"); }
  const std::vector<std::string>& nodes() const { return nodes_; }
  // A value from the env file `testenv up` wrote (K8S_VERSION, FEATURE_GATES, ...).
  std::string EnvValue(const std::string& key) const;
  double start_seconds() const { return start_seconds_; }

  // Runs the upstream kubectl against this cluster.
  CommandResult Kubectl(const std::vector<std::string>& args, std::string_view input = "",
                        std::chrono::milliseconds timeout = 60s) const;
  // `kubectl get ARGS -o json`, parsed.
  absl::StatusOr<Json> GetJson(const std::vector<std::string>& args) const;
  // `kubectl create --validate=strict -f -`: the API server rejects unknown and duplicate fields.
  absl::Status Create(std::string_view manifest, std::string_view ns = "") const;

  // The last lines of every component log, for failure messages.
  std::string LogTails(int lines) const;

  // Stops kube-apiserver and starts it again on the same port (testenv up handles SIGUSR1);
  // returns once it is ready again.
  absl::Status RestartApiServer();

 private:
  Cluster() = default;

  std::string testenv_;
  std::string dir_;
  std::string reason_;
  bool not_built_ = false;
  std::vector<std::string> nodes_;
  std::map<std::string, std::string> env_;
  std::unique_ptr<ChildProcess> up_;
  double start_seconds_ = 0;
};

// Starts the cluster before the first test and stops it after the last.
class ClusterEnvironment : public ::testing::Environment {
 public:
  explicit ClusterEnvironment(std::vector<std::string> nodes,
                              std::vector<std::string> up_flags = {})
      : nodes_(std::move(nodes)), up_flags_(std::move(up_flags)) {}
  void SetUp() override;
  void TearDown() override;

 private:
  std::vector<std::string> nodes_;
  std::vector<std::string> up_flags_;
};

// Polls `condition` until it returns OK or `timeout` passes; returns the last error, saying how
// long it waited.
absl::Status Eventually(const std::function<absl::Status()>& condition,
                        std::chrono::milliseconds timeout, std::chrono::milliseconds poll = 250ms);

// Fixture for e2e tests: one fresh namespace per test, deleted afterwards with everything in it;
// cluster-scoped objects registered with DeleteAtEnd() go too. On failure, prints the namespace's
// pods, claims and events, the ResourceSlices and the tails of all logs.
class E2ETest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  Cluster& cluster() { return *Cluster::Get(); }
  const std::string& ns() const { return ns_; }
  // A DNS label unique in this test binary, starting with `prefix`.
  std::string Unique(std::string_view prefix);
  // Creates a manifest in this test's namespace with strict field validation.
  absl::Status Create(std::string_view manifest) { return cluster().Create(manifest, ns_); }
  // `kubectl get KIND NAME -n ns -o json`.
  absl::StatusOr<Json> Get(std::string_view kind, std::string_view name);
  // The pod once its phase is Running (kubelet-sim sets it after the claims are prepared).
  absl::StatusOr<Json> RunningPod(const std::string& pod, std::chrono::milliseconds timeout = 90s);
  void DeleteAtEnd(std::string kind, std::string name);
  // Log files printed with the cluster's when the test fails.
  void AddLogOnFailure(std::string label, std::string path);

 private:
  std::string ns_;
  std::vector<std::pair<std::string, std::string>> cluster_scoped_;
  std::vector<std::pair<std::string, std::string>> logs_;
};

// Fails the current test with the status's message when it is not OK.
#define E2E_ASSERT_OK(expr)                                  \
  do {                                                       \
    const ::absl::Status _e2e_status = (expr);               \
    ASSERT_TRUE(_e2e_status.ok()) << _e2e_status.ToString(); \
  } while (false)

}  // namespace tessera::e2e

#endif  // TESSERA_TEST_E2E_FRAMEWORK_CLUSTER_H_
