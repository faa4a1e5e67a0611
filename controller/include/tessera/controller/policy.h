#ifndef TESSERA_CONTROLLER_POLICY_H_
#define TESSERA_CONTROLLER_POLICY_H_

// Which GpuPartitionPolicy applies to which node, which entry of it to which GPU, and whether a
// policy makes sense at all for the GPU catalogue.
//
// Selection: a policy selects the nodes its label selector matches (an empty selector matches
// every node). Among the policies that select a node, the most specific wins: specificity is the
// number of matchLabels entries plus matchExpressions requirements. When two or more policies tie
// at the highest specificity, the node gets none of them: the tie is a conflict reported on each
// of those policies' status (conflictingPolicies), never settled by guessing (name order, age).

#include <map>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "tessera/api/crd.h"
#include "tessera/api/meta.h"

namespace tessera::controller {

// metav1.LabelSelector semantics: every matchLabels pair and every requirement must hold
// (In, NotIn, Exists, DoesNotExist; NotIn and DoesNotExist hold for an absent key).
bool SelectorMatches(const api::LabelSelector& selector,
                     const std::map<std::string, std::string>& labels);
int SelectorSpecificity(const api::LabelSelector& selector);

// What the catalogue and the partitioner can check beyond the CRD's own decoding: every model
// named in match.models is a built-in model key; allowedProfiles name profiles (name or size
// class) of every model the entry can apply to (of all built-in models with MIG when it names no
// model); a mig-static layout fits each such model (partitioner::ArrangeLayout); shares.minMemory
// is positive and below the smallest such model's memory; an entry that matches nothing (no
// models and no indices) after an earlier catch-all entry is unreachable; index values are >= 0.
// The error names the field path and the value, e.g.
//   spec.gpus[1].match.models[0]: unknown GPU model "a100-41gb" (known: a100-40gb, ...)
absl::Status ValidatePolicy(const api::GpuPartitionPolicy& policy);

struct NodeLabels {
  std::string name;
  std::map<std::string, std::string> labels;
};

struct PolicyAssignment {
  std::map<std::string, std::string> node_policy;  // node -> the policy that applies
  // node -> the policies that tie for it (sorted); such a node has no entry in node_policy.
  std::map<std::string, std::vector<std::string>> node_conflicts;
  std::map<std::string, int> selected_nodes;  // policy -> nodes it applies to (0 included)
  // policy -> the other policies it ties with on at least one node.
  std::map<std::string, std::set<std::string>> conflicts;
};

// `policies` are the ones to consider (the caller passes only valid ones, or their last valid
// form). Every policy gets an entry in selected_nodes.
PolicyAssignment AssignPolicies(std::span<const NodeLabels> nodes,
                                std::span<const api::GpuPartitionPolicy> policies);

// The entry of `spec.gpus` for `gpu`: the first entry naming the GPU's index wins, else the first
// naming its model (GpuInfo::model), else the first catch-all (no models, no indices); an entry
// naming both indices and models must match both. Null: no entry applies (the GPU is published
// whole).
const api::GpuPolicy* PolicyForGpu(const api::GpuPartitionPolicySpec& spec,
                                   const api::GpuInfo& gpu);

// The status the controller writes: observedGeneration = metadata.generation; conditions
// "Accepted" (True/"Valid" when `validation` is OK, False/"Invalid" with the error's message)
// and "Conflict" (True/"Tied" naming the tied policies and the nodes affected, else False/"None");
// selectedNodes; conflictingPolicies (sorted). A condition whose status did not change keeps its
// lastTransitionTime from `previous`; a changed one gets `now` (RFC 3339).
api::GpuPartitionPolicyStatus PolicyStatus(const api::GpuPartitionPolicy& policy,
                                           const absl::Status& validation,
                                           const PolicyAssignment& assignment,
                                           const std::string& now);

}  // namespace tessera::controller

#endif  // TESSERA_CONTROLLER_POLICY_H_
