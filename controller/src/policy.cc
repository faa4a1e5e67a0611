#include "tessera/controller/policy.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string_view>
#include <utility>

#include "tessera/api/json_decode.h"
#include "tessera/api/quantity.h"
#include "tessera/api/strings.h"
#include "tessera/partitioner/batch.h"
#include "tessera/partitioner/catalogue.h"

namespace tessera::controller {
namespace {

using api::DecodeContext;
using partitioner::GpuModel;

constexpr std::string_view kAccepted = "Accepted";
constexpr std::string_view kConflict = "Conflict";
// A Conflict message names at most this many nodes; a cluster-wide tie would otherwise put every
// node name into one status field.
constexpr size_t kMaxNodesInMessage = 10;

bool Contains(const std::vector<std::string>& values, const std::string& value) {
  return std::find(values.begin(), values.end(), value) != values.end();
}

bool RequirementHolds(const api::NodeSelectorRequirement& r,
                      const std::map<std::string, std::string>& labels) {
  const auto it = labels.find(r.key);
  const bool present = it != labels.end();
  if (r.operator_ == "In") return present && Contains(r.values, it->second);
  if (r.operator_ == "NotIn") return !present || !Contains(r.values, it->second);
  if (r.operator_ == "Exists") return present;
  if (r.operator_ == "DoesNotExist") return !present;
  return false;  // an operator we do not know selects nothing rather than everything
}

// Where an error in spec.gpus[i] points; DecodeContext builds the same paths as the decoders.
DecodeContext EntryPath(size_t i) { return DecodeContext().Field("spec").Field("gpus").Index(i); }

const GpuModel* BuiltinModelByKey(const std::string& key) {
  const GpuModel* model = partitioner::FindBuiltinModel(key);
  // FindBuiltinModel also takes PCI device IDs; a policy names models by key only.
  return model != nullptr && model->key == key ? model : nullptr;
}

std::string ProfileList(const GpuModel& model) {
  std::vector<std::string> names;
  for (const partitioner::GiProfile& p : model.profiles) {
    names.push_back(StrCat(p.name, " (", p.size_class, ")"));
  }
  return StrJoin(names, ", ");
}

std::string MemoryOf(const GpuModel& model) {
  return api::Quantity::FromInt64(model.memory_mib * 1024 * 1024, api::Quantity::Format::kBinarySI)
      .ToString();
}

absl::Status ValidateSelector(const api::LabelSelector& selector) {
  const DecodeContext exprs =
      DecodeContext().Field("spec").Field("nodeSelector").Field("matchExpressions");
  for (size_t i = 0; i < selector.match_expressions.size(); ++i) {
    const api::NodeSelectorRequirement& r = selector.match_expressions[i];
    const DecodeContext at = exprs.Index(i);
    if (r.key.empty()) return at.Field("key").Error("must not be empty");
    const bool with_values = r.operator_ == "In" || r.operator_ == "NotIn";
    const bool without_values = r.operator_ == "Exists" || r.operator_ == "DoesNotExist";
    if (!with_values && !without_values) {
      return at.Field("operator")
          .Error(StrCat("\"", r.operator_,
                        "\" is not allowed (allowed: In, NotIn, Exists, DoesNotExist)"));
    }
    if (with_values && r.values.empty()) {
      return at.Field("values").Error(StrCat("must not be empty with operator ", r.operator_));
    }
    if (without_values && !r.values.empty()) {
      return at.Field("values").Error(StrCat("must be empty with operator ", r.operator_));
    }
  }
  return absl::OkStatus();
}

// The built-in models an entry can apply to: the ones it names (already checked to exist), else
// every built-in model with MIG.
absl::StatusOr<std::vector<const GpuModel*>> TargetModels(const api::GpuPolicy& entry,
                                                          const DecodeContext& at) {
  std::vector<const GpuModel*> models;
  const DecodeContext names = at.Field("match").Field("models");
  for (size_t j = 0; j < entry.match.models.size(); ++j) {
    const std::string& key = entry.match.models[j];
    const GpuModel* model = BuiltinModelByKey(key);
    if (model == nullptr) {
      return names.Index(j).Error(
          StrCat("unknown GPU model \"", key, "\" (known: ", partitioner::BuiltinModelKeys(), ")"));
    }
    models.push_back(model);
  }
  if (entry.match.models.empty()) {
    for (const GpuModel& model : partitioner::BuiltinModels()) {
      if (!model.profiles.empty()) models.push_back(&model);
    }
  }
  return models;
}

// Every name in `profiles` must be a profile name or size class of every model in `models`.
absl::Status CheckProfilesExist(const std::vector<std::string>& profiles,
                                const std::vector<const GpuModel*>& models,
                                const DecodeContext& at) {
  for (size_t j = 0; j < profiles.size(); ++j) {
    for (const GpuModel* model : models) {
      if (model->FindProfile(profiles[j]) == nullptr) {
        return at.Index(j).Error(StrCat("no MIG profile \"", profiles[j], "\" on ", model->key,
                                        " (profiles: ", ProfileList(*model), ")"));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateForModels(const api::GpuPolicy& entry,
                               const std::vector<const GpuModel*>& model_list,
                               const DecodeContext& at);

absl::Status ValidateEntry(const api::GpuPolicy& entry, const DecodeContext& at) {
  const DecodeContext indices = at.Field("match").Field("indices");
  for (size_t j = 0; j < entry.match.indices.size(); ++j) {
    if (entry.match.indices[j] < 0) {
      return indices.Index(j).Error(
          StrCat(entry.match.indices[j], " is not a GPU index (must be >= 0)"));
    }
  }
  absl::StatusOr<std::vector<const GpuModel*>> targets = TargetModels(entry, at);
  if (!targets.ok()) return targets.status();
  if (!entry.match.models.empty()) return ValidateForModels(entry, *targets, at);
  // An entry that names no model applies to whatever GPUs the nodes have (often one index of a
  // known machine): it must make sense on at least one MIG-capable model. On a GPU where it does
  // not, the controller publishes the GPU whole and says so in an Event.
  absl::Status first;
  for (const GpuModel* model : *targets) {
    absl::Status s = ValidateForModels(entry, {model}, at);
    if (s.ok()) return s;
    if (first.ok()) first = s;
  }
  return first;
}

absl::Status ValidateForModels(const api::GpuPolicy& entry,
                               const std::vector<const GpuModel*>& model_list,
                               const DecodeContext& at) {
  const std::vector<const GpuModel*>* models = &model_list;

  const bool mig =
      entry.mode == api::PartitionMode::kMigDynamic || entry.mode == api::PartitionMode::kMigStatic;
  if (mig) {
    for (const GpuModel* model : *models) {
      if (model->profiles.empty()) {
        return at.Field("mode").Error(
            StrCat(api::ToString(entry.mode), " is not possible on ", model->key, " (no MIG)"));
      }
    }
  }
  if (absl::Status s =
          CheckProfilesExist(entry.allowed_profiles, *models, at.Field("allowedProfiles"));
      !s.ok()) {
    return s;
  }
  if (entry.mig_static) {
    const DecodeContext profiles = at.Field("migStatic").Field("profiles");
    if (absl::Status s = CheckProfilesExist(entry.mig_static->profiles, *models, profiles);
        !s.ok()) {
      return s;
    }
    for (const GpuModel* model : *models) {
      absl::StatusOr<std::vector<partitioner::LayoutEntry>> layout =
          partitioner::ArrangeLayout(*model, entry.mig_static->profiles);
      if (!layout.ok()) return profiles.Error(std::string(layout.status().message()));
    }
  }
  if (entry.shares && entry.shares->min_memory) {
    const api::Quantity& min_memory = *entry.shares->min_memory;
    const DecodeContext field = at.Field("shares").Field("minMemory");
    if (min_memory <= api::Quantity()) {
      return field.Error(
          StrCat("\"", min_memory.ToString(), "\" is not allowed (must be positive)"));
    }
    const auto smallest = std::min_element(
        models->begin(), models->end(),
        [](const GpuModel* a, const GpuModel* b) { return a->memory_mib < b->memory_mib; });
    if (smallest != models->end() && min_memory.Value() >= (*smallest)->memory_mib * 1024 * 1024) {
      return field.Error(StrCat("\"", min_memory.ToString(), "\" is not below the memory of ",
                                (*smallest)->key, " (", MemoryOf(**smallest), ")"));
    }
  }
  return absl::OkStatus();
}

bool IsCatchAll(const api::GpuMatch& match) {
  return match.models.empty() && match.indices.empty();
}

// The policy's Conflict message: who it ties with, and where.
std::string ConflictMessage(const std::string& policy, const std::set<std::string>& tied,
                            const PolicyAssignment& assignment) {
  std::vector<std::string> nodes;
  for (const auto& [node, names] : assignment.node_conflicts) {
    if (Contains(names, policy)) nodes.push_back(node);
  }
  std::string shown;
  if (nodes.size() > kMaxNodesInMessage) {
    shown = StrCat(StrJoin(std::span(nodes).first(kMaxNodesInMessage), ", "), " and ",
                   nodes.size() - kMaxNodesInMessage, " more");
  } else {
    shown = StrJoin(nodes, ", ");
  }
  return StrCat("ties with ", StrJoin(tied, ", "), " (same selector specificity) on ", nodes.size(),
                nodes.size() == 1 ? " node: " : " nodes: ", shown,
                "; those nodes keep the policy they had until one is made more specific");
}

// A condition with lastTransitionTime carried over from `previous` when its status is unchanged.
api::Condition MakeCondition(std::string_view type, bool status, std::string_view reason,
                             std::string message, int64_t generation,
                             const std::vector<api::Condition>& previous, const std::string& now) {
  api::Condition c{
      .type = std::string(type),
      .status = status ? "True" : "False",
      .observed_generation = generation,
      .last_transition_time = now,
      .reason = std::string(reason),
      .message = std::move(message),
  };
  for (const api::Condition& old : previous) {
    if (old.type == c.type && old.status == c.status && !old.last_transition_time.empty()) {
      c.last_transition_time = old.last_transition_time;
    }
  }
  return c;
}

}  // namespace

bool SelectorMatches(const api::LabelSelector& selector,
                     const std::map<std::string, std::string>& labels) {
  for (const auto& [key, value] : selector.match_labels) {
    const auto it = labels.find(key);
    if (it == labels.end() || it->second != value) return false;
  }
  for (const api::NodeSelectorRequirement& r : selector.match_expressions) {
    if (!RequirementHolds(r, labels)) return false;
  }
  return true;
}

int SelectorSpecificity(const api::LabelSelector& selector) {
  return static_cast<int>(selector.match_labels.size() + selector.match_expressions.size());
}

absl::Status ValidatePolicy(const api::GpuPartitionPolicy& policy) {
  if (absl::Status s = ValidateSelector(policy.spec.node_selector); !s.ok()) return s;
  std::optional<size_t> catch_all;
  for (size_t i = 0; i < policy.spec.gpus.size(); ++i) {
    const api::GpuPolicy& entry = policy.spec.gpus[i];
    const DecodeContext at = EntryPath(i);
    if (IsCatchAll(entry.match)) {
      if (catch_all) {
        return at.Field("match").Error(
            StrCat("matches every GPU, but spec.gpus[", *catch_all,
                   "] already does, so this entry never applies (name models or indices)"));
      }
      catch_all = i;
    }
    if (absl::Status s = ValidateEntry(entry, at); !s.ok()) return s;
  }
  return absl::OkStatus();
}

PolicyAssignment AssignPolicies(std::span<const NodeLabels> nodes,
                                std::span<const api::GpuPartitionPolicy> policies) {
  PolicyAssignment out;
  for (const api::GpuPartitionPolicy& policy : policies) out.selected_nodes[policy.metadata.name];
  for (const NodeLabels& node : nodes) {
    int best = -1;
    std::vector<std::string> winners;
    for (const api::GpuPartitionPolicy& policy : policies) {
      if (!SelectorMatches(policy.spec.node_selector, node.labels)) continue;
      const int specificity = SelectorSpecificity(policy.spec.node_selector);
      if (specificity > best) {
        best = specificity;
        winners.clear();
      }
      if (specificity == best) winners.push_back(policy.metadata.name);
    }
    if (winners.size() == 1) {
      out.node_policy[node.name] = winners.front();
      ++out.selected_nodes[winners.front()];
    } else if (winners.size() > 1) {
      std::sort(winners.begin(), winners.end());
      for (const std::string& a : winners) {
        for (const std::string& b : winners) {
          if (a != b) out.conflicts[a].insert(b);
        }
      }
      out.node_conflicts[node.name] = std::move(winners);
    }
  }
  return out;
}

const api::GpuPolicy* PolicyForGpu(const api::GpuPartitionPolicySpec& spec,
                                   const api::GpuInfo& gpu) {
  const api::GpuPolicy* by_model = nullptr;
  const api::GpuPolicy* catch_all = nullptr;
  for (const api::GpuPolicy& entry : spec.gpus) {
    const std::vector<int32_t>& indices = entry.match.indices;
    const bool index_named = std::find(indices.begin(), indices.end(), gpu.index) != indices.end();
    const bool model_named = Contains(entry.match.models, gpu.model);
    if (!indices.empty() && !index_named) continue;
    if (!entry.match.models.empty() && !model_named) continue;
    if (index_named) return &entry;
    if (model_named && by_model == nullptr) by_model = &entry;
    if (IsCatchAll(entry.match) && catch_all == nullptr) catch_all = &entry;
  }
  return by_model != nullptr ? by_model : catch_all;
}

api::GpuPartitionPolicyStatus PolicyStatus(const api::GpuPartitionPolicy& policy,
                                           const absl::Status& validation,
                                           const PolicyAssignment& assignment,
                                           const std::string& now) {
  const std::string& name = policy.metadata.name;
  const int64_t generation = policy.metadata.generation;
  const std::vector<api::Condition>& previous = policy.status.conditions;

  api::GpuPartitionPolicyStatus status;
  status.observed_generation = generation;
  status.conditions.push_back(validation.ok()
                                  ? MakeCondition(kAccepted, true, "Valid", "the policy is valid",
                                                  generation, previous, now)
                                  : MakeCondition(kAccepted, false, "Invalid",
                                                  std::string(validation.message()), generation,
                                                  previous, now));

  const auto tied = assignment.conflicts.find(name);
  if (tied != assignment.conflicts.end() && !tied->second.empty()) {
    status.conditions.push_back(MakeCondition(kConflict, true, "Tied",
                                              ConflictMessage(name, tied->second, assignment),
                                              generation, previous, now));
    status.conflicting_policies.assign(tied->second.begin(), tied->second.end());
  } else {
    status.conditions.push_back(MakeCondition(kConflict, false, "None",
                                              "no other policy ties with this one on any node",
                                              generation, previous, now));
  }
  const auto selected = assignment.selected_nodes.find(name);
  status.selected_nodes =
      selected != assignment.selected_nodes.end() ? static_cast<int32_t>(selected->second) : 0;
  return status;
}

}  // namespace tessera::controller
