#ifndef TESSERA_PARTITIONER_SIMULATOR_H_
#define TESSERA_PARTITIONER_SIMULATOR_H_

// The cluster simulator behind `tessera-sim`: replays a trace of requests against a cluster of
// nodes and reports blocking and utilisation for a placement policy. It models what the real
// system can do: the scheduler picks the node among those that still publish a device that fits
// (`spread`: the least-used node, as least-allocated scoring does; `random`: any), and within the
// node the first published device that fits wins, so a policy only decides the order in which each
// node publishes its devices. `first-fit` alone is one flat cluster-wide first fit, an idealised
// packer no scheduler performs, kept as a reference.

#include <cstdint>
#include <istream>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "tessera/partitioner/placement.h"

namespace tessera::partitioner {

struct ClusterSpec {
  struct Node {
    const GpuModel* model = nullptr;
    int gpus = 0;
  };
  std::vector<Node> nodes{};

  // "a100-40gb:64,h100-80gb:32" with `gpus_per_node` GPUs per node (the last node of a model may
  // have fewer). Errors name the entry and list the known models.
  static absl::StatusOr<ClusterSpec> Parse(std::string_view text, int gpus_per_node);
  int total_gpus() const;
  double total_compute_slices() const;
};

struct TraceEntry {
  double arrival = 0;   // seconds
  double duration = 0;  // seconds
  Request request;
};

// CSV with the header "arrival,duration,request". Errors name the line and what is wrong;
// arrivals must not decrease.
absl::StatusOr<std::vector<TraceEntry>> ParseTrace(std::istream& in);
std::string FormatTrace(const std::vector<TraceEntry>& trace);

// The demand mix of a trace, for fragmentation-aware policies.
Demand DemandOf(std::span<const TraceEntry> trace);

enum class NodeChoice { kSpread, kRandom };
absl::StatusOr<NodeChoice> ParseNodeChoice(std::string_view name);

struct SimOptions {
  Policy policy = Policy::kTessera;
  NodeChoice node_choice = NodeChoice::kSpread;
  std::uint64_t seed = 1;
  // Fragmentation-aware policies re-learn the demand mix from the requests seen so far; false
  // keeps the uniform mix throughout, as tessera-controller publishes today.
  bool learn_demand = true;
  // Fill SimResult::decisions (one entry per request).
  bool record_decisions = false;
};

struct SimResult {
  std::int64_t requests = 0;
  std::int64_t blocked = 0;
  double blocking_rate = 0;
  // Blocked compute-slice-seconds over offered compute-slice-seconds.
  double weighted_blocking_rate = 0;
  // Time-averaged fraction of the cluster's compute slices in use.
  double mean_slice_utilization = 0;
  std::int64_t mig_creates = 0;
  std::int64_t mig_destroys = 0;
  double place_us_p50 = 0;
  double place_us_p99 = 0;
  // The same trace against one pool of compute slices with no placement rules at all.
  double lower_bound_weighted_blocking_rate = 0;
  // Offered compute-slice-seconds inside the trace's window / (slices × window).
  double offered_load = 0;
  // With SimOptions::record_decisions: per request, "n<node>/<device name>" (the device the
  // scheduler would allocate, as tessera names it) or "blocked".
  std::vector<std::string> decisions{};

  std::string ToJson() const;
};

SimResult Simulate(const ClusterSpec& cluster, const std::vector<TraceEntry>& trace,
                   const SimOptions& options);

// A request mix "mig:1g=0.5,mps:10:25=0.5" (weights normalised to probabilities). Errors name the
// entry and what is wrong.
absl::StatusOr<std::vector<std::pair<Request, double>>> ParseMix(std::string_view spec);

// The openb pod list (Alibaba cluster-trace-gpu-v2023, the FGD paper's trace) as a trace.
// One-GPU tasks only; multi-GPU tasks, CPU-only pods and pods without a deletion time are counted
// and skipped. gpu_milli 1000 is a whole GPU; a share s < 1 becomes the smallest MIG profile with
// at least s of the compute slices: ceil(7s) = 1..4 -> 1g..4g, 5..7 -> 7g (the partitioning
// reference's "compute mapping"). Arrivals come from the trace or from a Poisson process, scaled
// so that the offered load is `load`.
struct OpenbOptions {
  double load = 0.85;
  enum class Arrivals { kPoisson, kTrace };
  Arrivals arrivals = Arrivals::kPoisson;
  std::uint64_t seed = 1;
};
absl::StatusOr<OpenbOptions::Arrivals> ParseOpenbArrivals(std::string_view name);
Request OpenbRequest(int gpu_milli);
struct OpenbTrace {
  std::vector<TraceEntry> trace;
  int skipped_multi = 0;
  int skipped_cpu = 0;
  int skipped_open = 0;
  double scale = 0;  // seconds of the simulated trace per unit of the arrival process
};
// Errors name the line and the field.
absl::StatusOr<OpenbTrace> ConvertOpenb(std::istream& in, const ClusterSpec& cluster,
                                        const OpenbOptions& options);

}  // namespace tessera::partitioner

#endif  // TESSERA_PARTITIONER_SIMULATOR_H_
