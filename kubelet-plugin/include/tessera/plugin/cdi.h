#ifndef TESSERA_PLUGIN_CDI_H_
#define TESSERA_PLUGIN_CDI_H_

// CDI (Container Device Interface) spec files: one transient spec per prepared ResourceClaim, which
// the container runtime reads to inject the claim's GPUs, MIG instances and MPS shares into the
// pod's containers. The kubelet gets the qualified device names from NodePrepareResources and hands
// them to the runtime through CRI; the runtime finds them by scanning the spec directory.
//
// Naming, as the NVIDIA DRA driver does it (so that a runtime's CDI cache can never serve a stale
// device, every name carries the claim UID):
//   kind            k8s.gpu.tessera.dev/claim                      (configurable)
//   file            <root>/k8s.gpu.tessera.dev-claim_<claimUID>.json
//   device          <claimUID>-<device>
//   qualified name  k8s.gpu.tessera.dev/claim=<claimUID>-<device>
//
// Claim UIDs must consist of letters, digits and '-' and begin and end with a letter or digit
// (Kubernetes UIDs are UUIDs); that keeps them usable in file and device names, and keeps a file
// name unambiguous.
//
// Not thread-safe for the same claim UID; callers serialize Prepare/Unprepare per claim anyway.
// Different claims touch different files.

#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tessera::plugin {

struct CdiDeviceNode {
  std::string path{};       // in the container; absolute
  std::string host_path{};  // empty: same as path
  std::string type{};       // "c", "b" or empty (the runtime takes it from the host node)
  int64_t major = -1;       // < 0: omitted (the runtime takes major and minor from the host node)
  int64_t minor = -1;       // < 0: omitted
  std::optional<uint32_t> file_mode{};
  std::string permissions{};  // cgroup access, letters of "rwm"; empty: omitted (runtime: rwm)

  bool operator==(const CdiDeviceNode&) const = default;
};

struct CdiMount {
  std::string host_path{};       // absolute
  std::string container_path{};  // absolute
  std::vector<std::string> options{};

  bool operator==(const CdiMount&) const = default;
};

struct CdiEdits {
  std::vector<std::string> env{};  // "NAME=value"
  std::vector<CdiDeviceNode> device_nodes{};
  std::vector<CdiMount> mounts{};

  bool empty() const { return env.empty() && device_nodes.empty() && mounts.empty(); }
  bool operator==(const CdiEdits&) const = default;
};

// One device of a claim's spec. `name` is without the claim prefix ("gpu-0"); edits must not be
// empty (CDI loaders reject a device without edits).
struct CdiDevice {
  std::string name{};
  CdiEdits edits{};

  bool operator==(const CdiDevice&) const = default;
};

struct CdiClaimSpec {
  std::vector<CdiDevice> devices{};
  CdiEdits common{};  // top-level containerEdits, applied when any device of the claim is used
  // Spec-level annotations (Kubernetes-style keys), e.g. tessera.dev/claim: ns/name. Lets the
  // plugin rebuild its state from the spec files after losing its checkpoint.
  std::map<std::string, std::string> annotations{};

  bool operator==(const CdiClaimSpec&) const = default;
};

class CdiWriter {
 public:
  // `root`: the spec directory (/var/run/cdi on a node). `kind`: "vendor/class".
  explicit CdiWriter(std::string root, std::string kind = "k8s.gpu.tessera.dev/claim");

  const std::string& root() const { return root_; }
  const std::string& kind() const { return kind_; }

  // Whether Write fsyncs the spec and its directory (default: yes). The plugin turns it off when
  // its checkpoint is scoped to a known boot: a spec only matters within the boot that wrote it
  // (Start() sweeps the specs of claims it does not hold and restores none of another boot), and
  // whatever loses an unsynced write ends the boot; /var/run/cdi is usually a tmpfs anyway.
  // Set before use.
  void set_sync(bool sync) { sync_ = sync; }
  bool sync() const { return sync_; }

  // <root>/<vendor>-<class>_<claimUID>.json
  std::string SpecPath(std::string_view claim_uid) const;
  // <kind>=<claimUID>-<device>: the ID NodePrepareResources returns.
  std::string QualifiedName(std::string_view claim_uid, std::string_view device) const;

  // Validates the spec the way CDI loaders do (InvalidArgument naming the field and the value:
  // kind, device names, duplicate devices, empty device edits, env without NAME=, relative paths,
  // device node type/permissions, annotation keys, at least one device), declares the lowest
  // cdiVersion the content needs so older runtimes accept it (0.3.0; 0.5.0 for a hostPath that
  // differs from the path or a device name that begins with a digit — a claim UID often does; 0.6.0
  // for annotations or a '.' in the kind's class), renders JSON and writes it atomically with mode
  // 0644, creating root (0755) when missing. Rewriting identical content leaves the file untouched.
  absl::Status Write(std::string_view claim_uid, const CdiClaimSpec& spec);

  // Deletes the claim's spec file; an absent file is OK.
  absl::Status Remove(std::string_view claim_uid);

  // Claim UIDs (sorted) of the spec files of our kind in root, judged by the file name; other
  // files are ignored. A missing root is an empty list.
  absl::StatusOr<std::vector<std::string>> ListClaims() const;

  // Reads one of our spec files back, e.g. to rebuild state after a lost checkpoint (the
  // annotations carry what the plugin stored). NotFound when absent. Strict: a file that does not
  // parse, has unknown fields, another kind, a device without the claim prefix, content a CDI
  // loader would reject or a cdiVersion too low for its content is DataLoss naming the file.
  // Device names come back without the claim prefix; a hostPath equal to the path comes back empty.
  absl::StatusOr<CdiClaimSpec> Read(std::string_view claim_uid) const;

  // Removes our spec files whose claim UID is not in `keep` (leaked by a crash between writing the
  // spec and recording the claim, or by an Unprepare that never came) and returns their UIDs.
  // Also removes temporary files of an interrupted write that are older than a minute (a live
  // write takes milliseconds). Keeps going past a file it cannot remove and then reports the first
  // such error; the files removed so far stay removed.
  absl::StatusOr<std::vector<std::string>> Sweep(const std::set<std::string>& keep);

 private:
  std::string root_;
  std::string kind_;
  std::string file_prefix_;  // "<vendor>-<class>_"
  bool sync_ = true;
};

}  // namespace tessera::plugin

#endif  // TESSERA_PLUGIN_CDI_H_
