// tessera-controller: publishes each GPU node's ResourceSlices from its GpuInventory and
// GpuPartitionPolicy (controller.h). Run as a Deployment with leader election: only the leader
// publishes; the others wait for its Lease to lapse. Every flag can also be set through the
// environment variable named in --help.
#include <unistd.h>

#include <atomic>
#include <iostream>
#include <memory>
#include <thread>

#include "CLI/CLI.hpp"
#include "spdlog/spdlog.h"
#include "tessera/api/strings.h"
#include "tessera/controller/controller.h"
#include "tessera/controller/metrics.h"
#include "tessera/kube/client.h"
#include "tessera/kube/config.h"
#include "tessera/kube/leader.h"
#include "tessera/tools/cli.h"
#include "tessera/tools/http_endpoints.h"

namespace {

using tessera::StrCat;
namespace ctl = tessera::controller;

struct Flags {
  std::string kubeconfig;
  std::string driver_name = "gpu.tessera.dev";
  std::string placement = "tessera";
  int heartbeat_timeout_seconds = 60;
  int workers = 4;
  int coalesce_ms = 100;
  bool leader_elect = true;
  std::string lease_namespace = "tessera-system";
  std::string lease_name = "tessera-controller";
  std::string identity;
  int lease_duration_seconds = 15;
  int renew_deadline_seconds = 10;
  int retry_period_seconds = 2;
  std::string events_namespace = "default";
  tessera::tools::CommonFlags common;  // address defaults are set in main
  int sync_timeout_seconds = 120;
};

int Fail(const absl::Status& s) {
  spdlog::critical("{}", std::string(s.message()));
  std::cerr << "tessera-controller: " << s.message() << std::endl;
  return 1;
}

int Serve(const Flags& f) {
  absl::StatusOr<tessera::partitioner::Policy> placement =
      tessera::partitioner::ParsePolicy(f.placement);
  if (!placement.ok()) {
    return Fail(absl::InvalidArgumentError(
        StrCat("--placement-policy: ", std::string(placement.status().message()))));
  }
  if (f.heartbeat_timeout_seconds < 1 || f.workers < 1 || f.coalesce_ms < 0) {
    return Fail(absl::InvalidArgumentError(
        StrCat("--heartbeat-timeout-seconds (", f.heartbeat_timeout_seconds, ") and --workers (",
               f.workers, ") must be at least 1, --coalesce-ms (", f.coalesce_ms, ") at least 0")));
  }
  absl::StatusOr<tessera::kube::Config> config = tessera::kube::ResolveConfig(f.kubeconfig);
  if (!config.ok()) return Fail(config.status());
  tessera::kube::Client client(
      *std::move(config), {.user_agent = StrCat("tessera-controller/", tessera::tools::Version())});

  ctl::ControllerMetrics metrics;
  ctl::Controller controller(
      client,
      {.driver = f.driver_name,
       .placement = *placement,
       .heartbeat_timeout = std::chrono::seconds(f.heartbeat_timeout_seconds),
       .batch = std::chrono::milliseconds(f.coalesce_ms),
       .workers = f.workers,
       .events_namespace = f.events_namespace},
      metrics);
  std::atomic<bool> running{false};  // this replica publishes
  std::atomic<bool> stop{false};
  std::atomic<int> exit_code{0};

  tessera::tools::HttpEndpoints http;
  http.Handle("/metrics", [&] {
    return tessera::tools::HttpReply{
        .status = 200, .body = metrics.Render(), .content_type = "text/plain; version=0.0.4"};
  });
  http.Handle("/healthz", [] { return tessera::tools::HttpReply{.body = "ok\n"}; });
  http.Handle("/readyz", [&] {
    // A standby replica is ready: it is doing what it should, waiting for the lease.
    return tessera::tools::HttpReply{.body = running ? "leading\n" : "standby\n"};
  });
  if (absl::Status s = http.Listen({f.common.metrics_address, f.common.health_address}); !s.ok())
    return Fail(s);

  // SIGTERM/SIGINT (blocked in main before any thread started) end the process.
  std::thread signals([&] {
    const int sig = tessera::tools::WaitForStopSignal();
    spdlog::info("stopping on signal {}", sig);
    stop = true;
  });
  signals.detach();

  std::thread starter;
  auto lead = [&] {
    metrics.SetLeader(true);
    starter = std::thread([&] {
      absl::Status s = controller.Start(std::chrono::seconds(f.sync_timeout_seconds));
      if (!s.ok()) {
        spdlog::critical("cannot start: {}", std::string(s.message()));
        exit_code = 1;
        stop = true;
        return;
      }
      running = true;
      std::cout << "tessera-controller publishing" << std::endl;
    });
  };
  if (!f.leader_elect) {
    lead();
    while (!stop) tessera::kube::Client::SleepFor(std::chrono::milliseconds(200), &stop);
  } else {
    std::string identity = f.identity;
    if (identity.empty()) {
      char host[256] = {0};
      ::gethostname(host, sizeof(host) - 1);
      identity = StrCat(host, "_", ::getpid());
    }
    spdlog::info("campaigning for Lease {}/{} as {}", f.lease_namespace, f.lease_name, identity);
    tessera::kube::LeaderElector elector(
        client, {.ns = f.lease_namespace,
                 .name = f.lease_name,
                 .identity = identity,
                 .lease_duration = std::chrono::seconds(f.lease_duration_seconds),
                 .renew_deadline = std::chrono::seconds(f.renew_deadline_seconds),
                 .retry_period = std::chrono::seconds(f.retry_period_seconds)});
    elector.Run(
        &stop,
        [&] {
          spdlog::info("became the leader");
          lead();
        },
        [&] {
          metrics.SetLeader(false);
          if (!stop) {
            // Another replica may already publish: stop at once, as client-go controllers do.
            spdlog::error("lost the lease; exiting so that the new leader publishes alone");
            exit_code = 1;
            stop = true;
          }
        });
  }
  if (starter.joinable()) starter.join();
  controller.Stop();
  return exit_code;
}

}  // namespace

int main(int argc, char** argv) {
  tessera::tools::BlockStopSignals();

  CLI::App app{"tessera-controller: publishes GPU ResourceSlices for every node"};
  Flags f;
  f.common.metrics_address = ":8080";
  f.common.health_address = ":8081";
  tessera::tools::AddCommonFlags(app, f.common);
  app.add_option("--kubeconfig", f.kubeconfig,
                 "kubeconfig file (default: $KUBECONFIG, then in-cluster)");
  app.add_option("--driver-name", f.driver_name, "DRA driver name")
      ->envname("TESSERA_DRIVER_NAME")
      ->capture_default_str();
  app.add_option("--placement-policy", f.placement,
                 "publish order: tessera, fgd, best-fit, first-fit, name-sorted")
      ->envname("TESSERA_PLACEMENT_POLICY")
      ->capture_default_str();
  app.add_option("--heartbeat-timeout-seconds", f.heartbeat_timeout_seconds,
                 "withdraw a node's slices when its plugin's heartbeat is older than this")
      ->envname("TESSERA_HEARTBEAT_TIMEOUT_SECONDS")
      ->capture_default_str();
  app.add_option("--workers", f.workers, "nodes synced in parallel")
      ->envname("TESSERA_WORKERS")
      ->capture_default_str();
  app.add_option("--coalesce-ms", f.coalesce_ms,
                 "wait this long after a node's first event so a burst becomes one sync")
      ->envname("TESSERA_COALESCE_MS")
      ->capture_default_str();
  app.add_option("--leader-elect", f.leader_elect, "campaign for the Lease before publishing")
      ->envname("TESSERA_LEADER_ELECT")
      ->capture_default_str();
  app.add_option("--leader-election-namespace", f.lease_namespace, "namespace of the Lease")
      ->envname("POD_NAMESPACE")
      ->capture_default_str();
  app.add_option("--leader-election-id", f.lease_name, "name of the Lease")
      ->envname("TESSERA_LEADER_ELECTION_ID")
      ->capture_default_str();
  app.add_option("--identity", f.identity, "this replica's name in the Lease (default host_pid)")
      ->envname("POD_NAME");
  app.add_option("--lease-duration-seconds", f.lease_duration_seconds,
                 "how long a leader's Lease holds without renewal")
      ->envname("TESSERA_LEASE_DURATION_SECONDS")
      ->capture_default_str();
  app.add_option("--renew-deadline-seconds", f.renew_deadline_seconds,
                 "the leader steps down when it could not renew for this long")
      ->envname("TESSERA_RENEW_DEADLINE_SECONDS")
      ->capture_default_str();
  app.add_option("--retry-period-seconds", f.retry_period_seconds, "between lease attempts")
      ->envname("TESSERA_RETRY_PERIOD_SECONDS")
      ->capture_default_str();
  app.add_option("--events-namespace", f.events_namespace,
                 "namespace for Events about Nodes and policies")
      ->envname("TESSERA_EVENTS_NAMESPACE")
      ->capture_default_str();
  app.add_option("--sync-timeout-seconds", f.sync_timeout_seconds,
                 "give up when the informers have not listed everything by then")
      ->envname("TESSERA_SYNC_TIMEOUT_SECONDS")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  if (std::optional<int> done = tessera::tools::RunInfoFlags(f.common, "tessera-controller"))
    return *done;
  if (absl::Status s = tessera::tools::ConfigureLogging(f.common.log_format, f.common.verbosity,
                                                        "tessera-controller");
      !s.ok()) {
    return Fail(s);
  }
  return Serve(f);
}
