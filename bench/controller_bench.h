#ifndef TESSERA_BENCH_CONTROLLER_BENCH_H_
#define TESSERA_BENCH_CONTROLLER_BENCH_H_

// What the controller benchmarks share: starting tessera-controller against a testenv cluster and
// reading its /metrics.

#include <sys/types.h>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "framework/process.h"

namespace tessera::bench {

// "name value" lines of a Prometheus exposition, summed per metric name; series labelled
// operation="apply"/"delete" or result="ok" are also summed under "name:apply", "name:delete",
// "name:ok".
std::map<std::string, double> ScrapeMetrics(int port);

// CPU seconds (user + system) and peak RSS (MiB) of a process, from /proc.
std::pair<double, double> CpuAndPeakRss(pid_t pid);

struct RunningController {
  std::unique_ptr<e2e::ChildProcess> process;
  int metrics_port = 0;
  std::string log_path;
};

// Starts `binary` with --kubeconfig, no leader election, metrics on a free loopback port and
// `extra` flags; waits until it serves /metrics.
absl::StatusOr<RunningController> StartController(const std::string& binary,
                                                  const std::string& kubeconfig,
                                                  const std::string& log_path,
                                                  const std::vector<std::string>& extra);

}  // namespace tessera::bench

#endif  // TESSERA_BENCH_CONTROLLER_BENCH_H_
