#ifndef TESSERA_PLUGIN_FAKE_BACKEND_H_
#define TESSERA_PLUGIN_FAKE_BACKEND_H_

// Simulated GPUs with NVML's behaviour: the `fake` GPU backend of the plugin, for tests, the demo
// cluster and benchmarks. Described in YAML:
//
//   driverVersion: "550.54.15"        # optional
//   cudaDriverVersion: "12.4"         # optional
//   createLatencyMs: 0                 # per MIG create (NVML takes hundreds of ms)
//   destroyLatencyMs: 0
//   gpus:                              # GPU i is /dev/nvidia<i>
//   - model: h100-80gb                 # a catalogue key
//     count: 8
//     migEnabled: true                 # default true
//     instances:                       # pre-existing MIG instances, not created by tessera
//     - {profile: 3g.40gb, start: 4}
//
// Semantics follow NVML: a placement that is not one of the profile's is INVALID_ARGUMENT, an
// occupied or overlapping one (or exhausted compute) INSUFFICIENT_RESOURCES, any MIG call on a GPU
// with MIG off NOT_SUPPORTED, destroying an instance with processes on it IN_USE, an unknown GI
// NOT_FOUND. GI IDs are the smallest free positive number. The instances are persisted to a state
// file so that a restarted plugin finds what it left, as on a real node. Thread-safe.
//
// The state file is JSON lines: a snapshot of every GPU, then a line per change since, appended
// (AppendLog) as it happens, with the changed GPU's whole state:
//
//   {"version":2,"nextUuid":9,"gpus":[{"uuid":…,"model":"h100-80gb","migEnabled":true,
//                                      "instances":[{"giId":1,"profile":"3g.40gb","start":4,…}]}]}
//   {"gpu":0,"nextUuid":10,"state":{"uuid":…,"instances":[…, {"giId":2,"profile":"1g.10gb",…}]}}
//
// The last line of a GPU wins, so lines of two plugin processes on one node (a rolling update, each
// with its own simulation) interleave into a readable file where the last writer of each GPU wins,
// as the whole-file rewrites of format 1 let the last writer win. (Format 1 rewrote one JSON
// document on every change, a temporary file and a rename that cost more CPU than the rest of a
// prepare; it is still read.) The file is rewritten as one snapshot when opened and every 512
// changes. A process killed mid-append leaves a torn last line, ignored.

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "tessera/api/json_decode.h"
#include "tessera/partitioner/catalogue.h"
#include "tessera/partitioner/gpu_state.h"
#include "tessera/plugin/files.h"
#include "tessera/plugin/gpu_backend.h"

namespace tessera::plugin {

struct FakeNodeSpec {
  struct Instance {
    std::string profile;
    int start = 0;
  };
  struct Gpu {
    std::string model;
    int count = 1;
    bool mig_enabled = true;
    std::vector<Instance> instances{};
  };
  std::string driver_version = "550.54.15";
  std::string cuda_driver_version = "12.4";
  std::chrono::milliseconds create_latency{0};
  std::chrono::milliseconds destroy_latency{0};
  std::vector<Gpu> gpus;
};

// Strict: unknown fields, unknown models and bad instances are errors naming the field.
absl::StatusOr<FakeNodeSpec> ParseFakeNodeSpec(std::string_view yaml);

// A state file's content (format 1 or 2) as one snapshot in format 2's first-line shape, changes
// applied: what tests and tools read to see the simulated GPUs. DataLoss naming the line if a line
// is not JSON, the first is not a snapshot or a change has no state or names a GPU not there.
absl::StatusOr<api::Json> ReadFakeGpuState(std::string_view text);

class FakeGpuBackend : public GpuBackend {
 public:
  // `state_path` empty: nothing persisted. When the state file exists it wins over the spec's
  // instances (the node as the previous plugin left it); a corrupt one is an error.
  static absl::StatusOr<std::unique_ptr<FakeGpuBackend>> Open(FakeNodeSpec spec,
                                                              std::string state_path);

  std::string_view name() const override { return "fake"; }
  absl::StatusOr<NodeInventory> Discover() override;
  absl::StatusOr<api::MigInstanceInfo> CreateMigInstance(int gpu, int profile_id,
                                                         api::Placement placement) override;
  absl::Status DestroyMigInstance(int gpu, int gi_id) override;
  absl::Status SetTimeSlice(int gpu, api::TimeSliceInterval interval) override;
  // Nothing runs on a simulated GPU: 0 for the GPU's UUID and its instances' UUIDs.
  absl::StatusOr<std::int64_t> MemoryUsed(int gpu, std::string_view uuid) override;

  // Test hooks.
  // What Discover reports as the GPU's health (an Xid or a lost GPU on a real node).
  absl::Status SetHealth(int gpu, api::HealthState health, std::string message);
  // A process starts or stops running on GPU instance `gi_id` (destroy then fails with IN_USE).
  absl::Status SetInUse(int gpu, int gi_id, bool in_use);
  // The next `times` calls of `op` ("create", "destroy", "discover", "timeslice") on any GPU fail
  // with `code`.
  void InjectFault(const std::string& op, NvmlError code, int times = 1);
  // Operations performed so far (creates, destroys), for tests that count side effects.
  int creates() const;
  // The most MIG creates that were in flight at once (their latency overlapping): > 1 shows that
  // claims on different GPUs were actuated in parallel.
  int max_concurrent_creates() const { return max_in_flight_.load(); }
  int destroys() const;

 private:
  struct FakeInstance {
    int gi_id = 0;
    int profile = -1;  // index into the model
    partitioner::Placement placement;
    std::string uuid;
    bool in_use = false;
  };
  struct FakeGpu {
    const partitioner::GpuModel* model = nullptr;
    bool mig_enabled = true;
    std::string uuid;
    std::vector<FakeInstance> instances;
    std::optional<api::TimeSliceInterval> time_slice{};
    api::HealthState health = api::HealthState::kHealthy;
    std::string health_message{};
  };

  explicit FakeGpuBackend(FakeNodeSpec spec, std::string state_path)
      : spec_(std::move(spec)), state_path_(std::move(state_path)) {}
  // One GPU as the state file holds it.
  api::Json GpuJson(const FakeGpu& g) const;
  // Appends GPU `gpu`'s state to the state file (and every kChangesPerSnapshot, rewrites it).
  absl::Status Record(int gpu) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Rewrites the state file as one snapshot line (opening it first).
  absl::Status WriteSnapshot() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Load(const api::Json& state) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status TakeFault(const std::string& op, std::string_view call)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const FakeNodeSpec spec_;
  const std::string state_path_;
  mutable std::mutex mu_;
  std::unique_ptr<AppendLog> log_ ABSL_GUARDED_BY(mu_);
  int changes_ ABSL_GUARDED_BY(mu_) = 0;  // lines appended since the last snapshot
  std::vector<FakeGpu> gpus_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::pair<NvmlError, int>> faults_ ABSL_GUARDED_BY(mu_);
  int next_uuid_ ABSL_GUARDED_BY(mu_) = 1;
  int creates_ ABSL_GUARDED_BY(mu_) = 0;
  std::atomic<int> in_flight_{0};
  std::atomic<int> max_in_flight_{0};
  int destroys_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace tessera::plugin

#endif  // TESSERA_PLUGIN_FAKE_BACKEND_H_
