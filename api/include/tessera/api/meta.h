// The pieces of Kubernetes' common object machinery that tessera reads and writes: ObjectMeta,
// owner references, conditions, node selectors, and the parts of Node and Lease the controller and
// the plugin use. Times are kept as the RFC 3339 strings the server sends.
#ifndef TESSERA_API_META_H_
#define TESSERA_API_META_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "tessera/api/json_decode.h"

namespace tessera::api {

struct OwnerReference {
  std::string api_version;
  std::string kind;
  std::string name;
  std::string uid;
  std::optional<bool> controller;
  std::optional<bool> block_owner_deletion;
  bool operator==(const OwnerReference&) const = default;
};

struct ObjectMeta {
  std::string name;
  std::string generate_name;
  std::string namespace_;
  std::string uid;
  std::string resource_version;
  int64_t generation = 0;
  std::string creation_timestamp;
  std::optional<std::string> deletion_timestamp;
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
  std::vector<OwnerReference> owner_references;
  std::vector<std::string> finalizers;
  bool operator==(const ObjectMeta&) const = default;
};

// metav1.Condition.
struct Condition {
  std::string type;
  std::string status;  // "True", "False", "Unknown"
  int64_t observed_generation = 0;
  std::string last_transition_time;
  std::string reason;
  std::string message;
  bool operator==(const Condition&) const = default;
};

struct NodeSelectorRequirement {
  std::string key;
  std::string operator_;  // In, NotIn, Exists, DoesNotExist, Gt, Lt
  std::vector<std::string> values;
  bool operator==(const NodeSelectorRequirement&) const = default;
};

struct NodeSelectorTerm {
  std::vector<NodeSelectorRequirement> match_expressions;
  std::vector<NodeSelectorRequirement> match_fields;
  bool operator==(const NodeSelectorTerm&) const = default;
};

struct NodeSelector {
  std::vector<NodeSelectorTerm> node_selector_terms;
  bool operator==(const NodeSelector&) const = default;
};

// metav1.LabelSelector.
struct LabelSelector {
  std::map<std::string, std::string> match_labels;
  std::vector<NodeSelectorRequirement>
      match_expressions;  // operators In, NotIn, Exists, DoesNotExist
  bool operator==(const LabelSelector&) const = default;
};

struct NodeCondition {
  std::string type;
  std::string status;
  std::string reason;
  std::string message;
  std::string last_heartbeat_time;
  std::string last_transition_time;
  bool operator==(const NodeCondition&) const = default;
};

// The parts of a core/v1 Node the driver needs: identity, labels, readiness, kubelet version.
struct Node {
  ObjectMeta metadata;
  bool unschedulable = false;
  std::vector<NodeCondition> conditions;
  std::string kubelet_version;
  bool operator==(const Node&) const = default;

  // True when the Ready condition is "True".
  bool IsReady() const;
};

// coordination.k8s.io/v1 Lease, for leader election.
struct Lease {
  ObjectMeta metadata;
  std::optional<std::string> holder_identity;
  std::optional<int32_t> lease_duration_seconds;
  std::optional<std::string> acquire_time;  // MicroTime, RFC 3339 with microseconds
  std::optional<std::string> renew_time;
  std::optional<int32_t> lease_transitions;
  bool operator==(const Lease&) const = default;
};

absl::Status Decode(const DecodeContext& ctx, const Json& in, OwnerReference* out);
absl::Status Decode(const DecodeContext& ctx, const Json& in, ObjectMeta* out);
absl::Status Decode(const DecodeContext& ctx, const Json& in, Condition* out);
absl::Status Decode(const DecodeContext& ctx, const Json& in, NodeSelectorRequirement* out);
absl::Status Decode(const DecodeContext& ctx, const Json& in, NodeSelectorTerm* out);
absl::Status Decode(const DecodeContext& ctx, const Json& in, NodeSelector* out);
absl::Status Decode(const DecodeContext& ctx, const Json& in, LabelSelector* out);
absl::Status Decode(const DecodeContext& ctx, const Json& in, NodeCondition* out);
absl::Status Decode(const DecodeContext& ctx, const Json& in, Node* out);
absl::Status Decode(const DecodeContext& ctx, const Json& in, Lease* out);

void to_json(Json& out, const OwnerReference& in);
void to_json(Json& out, const ObjectMeta& in);
void to_json(Json& out, const Condition& in);
void to_json(Json& out, const NodeSelectorRequirement& in);
void to_json(Json& out, const NodeSelectorTerm& in);
void to_json(Json& out, const NodeSelector& in);
void to_json(Json& out, const LabelSelector& in);
void to_json(Json& out, const NodeCondition& in);
void to_json(Json& out, const Node& in);
void to_json(Json& out, const Lease& in);

// Checks `apiVersion` and `kind` of a top-level object when present (a missing pair is accepted:
// objects inside lists omit them). Marks both fields as known.
void ExpectTypeMeta(ObjectDecoder& d, const Json& in, std::string_view api_version,
                    std::string_view kind);

}  // namespace tessera::api

#endif  // TESSERA_API_META_H_
