#include "tessera/api/meta.h"

namespace tessera::api {

absl::Status Decode(const DecodeContext& ctx, const Json& in, OwnerReference* out) {
  ObjectDecoder d(ctx, in);
  d.Required("apiVersion", &out->api_version);
  d.Required("kind", &out->kind);
  d.Required("name", &out->name);
  d.Required("uid", &out->uid);
  d.Optional("controller", &out->controller);
  d.Optional("blockOwnerDeletion", &out->block_owner_deletion);
  return d.Finish();
}

void to_json(Json& out, const OwnerReference& in) {
  out = ObjectEncoder()
            .Set("apiVersion", in.api_version)
            .Set("kind", in.kind)
            .Set("name", in.name)
            .Set("uid", in.uid)
            .SetOptional("controller", in.controller)
            .SetOptional("blockOwnerDeletion", in.block_owner_deletion)
            .Build();
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, ObjectMeta* out) {
  ObjectDecoder d(ctx, in);
  d.Optional("name", &out->name);
  d.Optional("generateName", &out->generate_name);
  d.Optional("namespace", &out->namespace_);
  d.Optional("uid", &out->uid);
  d.Optional("resourceVersion", &out->resource_version);
  d.Optional("generation", &out->generation);
  d.Optional("creationTimestamp", &out->creation_timestamp);
  d.Optional("deletionTimestamp", &out->deletion_timestamp);
  d.Optional("labels", &out->labels);
  d.Optional("annotations", &out->annotations);
  d.Optional("ownerReferences", &out->owner_references);
  d.Optional("finalizers", &out->finalizers);
  // Server-maintained fields the driver never reads; accepted so strict decoding of a server
  // object does not fail on them.
  d.Ignore("managedFields");
  d.Ignore("selfLink");
  d.Ignore("deletionGracePeriodSeconds");
  return d.Finish();
}

void to_json(Json& out, const ObjectMeta& in) {
  out = ObjectEncoder()
            .SetNonEmpty("name", in.name)
            .SetNonEmpty("generateName", in.generate_name)
            .SetNonEmpty("namespace", in.namespace_)
            .SetNonEmpty("uid", in.uid)
            .SetNonEmpty("resourceVersion", in.resource_version)
            .SetNonEmpty("generation", in.generation)
            .SetNonEmpty("creationTimestamp", in.creation_timestamp)
            .SetOptional("deletionTimestamp", in.deletion_timestamp)
            .SetNonEmpty("labels", in.labels)
            .SetNonEmpty("annotations", in.annotations)
            .SetNonEmpty("ownerReferences", in.owner_references)
            .SetNonEmpty("finalizers", in.finalizers)
            .Build();
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, Condition* out) {
  ObjectDecoder d(ctx, in);
  d.Required("type", &out->type);
  d.Required("status", &out->status);
  d.Optional("observedGeneration", &out->observed_generation);
  d.Optional("lastTransitionTime", &out->last_transition_time);
  d.Optional("reason", &out->reason);
  d.Optional("message", &out->message);
  return d.Finish();
}

void to_json(Json& out, const Condition& in) {
  // reason, message and lastTransitionTime are required by the API; they are always written.
  out = ObjectEncoder()
            .Set("type", in.type)
            .Set("status", in.status)
            .SetNonEmpty("observedGeneration", in.observed_generation)
            .Set("lastTransitionTime", in.last_transition_time)
            .Set("reason", in.reason)
            .Set("message", in.message)
            .Build();
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, NodeSelectorRequirement* out) {
  ObjectDecoder d(ctx, in);
  d.Required("key", &out->key);
  d.Required("operator", &out->operator_);
  d.Optional("values", &out->values);
  return d.Finish();
}

void to_json(Json& out, const NodeSelectorRequirement& in) {
  out = ObjectEncoder()
            .Set("key", in.key)
            .Set("operator", in.operator_)
            .SetNonEmpty("values", in.values)
            .Build();
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, NodeSelectorTerm* out) {
  ObjectDecoder d(ctx, in);
  d.Optional("matchExpressions", &out->match_expressions);
  d.Optional("matchFields", &out->match_fields);
  return d.Finish();
}

void to_json(Json& out, const NodeSelectorTerm& in) {
  out = ObjectEncoder()
            .SetNonEmpty("matchExpressions", in.match_expressions)
            .SetNonEmpty("matchFields", in.match_fields)
            .Build();
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, NodeSelector* out) {
  ObjectDecoder d(ctx, in);
  d.Required("nodeSelectorTerms", &out->node_selector_terms);
  return d.Finish();
}

void to_json(Json& out, const NodeSelector& in) {
  out = ObjectEncoder().Set("nodeSelectorTerms", in.node_selector_terms).Build();
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, LabelSelector* out) {
  ObjectDecoder d(ctx, in);
  d.Optional("matchLabels", &out->match_labels);
  d.Optional("matchExpressions", &out->match_expressions);
  return d.Finish();
}

void to_json(Json& out, const LabelSelector& in) {
  out = ObjectEncoder()
            .SetNonEmpty("matchLabels", in.match_labels)
            .SetNonEmpty("matchExpressions", in.match_expressions)
            .Build();
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, NodeCondition* out) {
  ObjectDecoder d(ctx, in);
  d.Required("type", &out->type);
  d.Required("status", &out->status);
  d.Optional("reason", &out->reason);
  d.Optional("message", &out->message);
  d.Optional("lastHeartbeatTime", &out->last_heartbeat_time);
  d.Optional("lastTransitionTime", &out->last_transition_time);
  return d.Finish();
}

void to_json(Json& out, const NodeCondition& in) {
  out = ObjectEncoder()
            .Set("type", in.type)
            .Set("status", in.status)
            .SetNonEmpty("reason", in.reason)
            .SetNonEmpty("message", in.message)
            .SetNonEmpty("lastHeartbeatTime", in.last_heartbeat_time)
            .SetNonEmpty("lastTransitionTime", in.last_transition_time)
            .Build();
}

// A Node carries far more than the driver reads; its decoder is always lenient about the rest.
absl::Status Decode(const DecodeContext& ctx, const Json& in, Node* out) {
  DecodeContext lenient = ctx.WithUnknownFields(UnknownFields::kIgnore);
  ObjectDecoder d(lenient, in);
  ExpectTypeMeta(d, in, "v1", "Node");
  d.Optional("metadata", &out->metadata);
  if (auto spec = in.find("spec"); d.ok() && spec != in.end() && spec->is_object()) {
    ObjectDecoder s(lenient.Field("spec"), *spec);
    s.Optional("unschedulable", &out->unschedulable);
    d.Fail(s.Finish());
  }
  if (auto status = in.find("status"); d.ok() && status != in.end() && status->is_object()) {
    ObjectDecoder s(lenient.Field("status"), *status);
    s.Optional("conditions", &out->conditions);
    if (auto info = status->find("nodeInfo"); info != status->end() && info->is_object()) {
      ObjectDecoder n(lenient.Field("status").Field("nodeInfo"), *info);
      n.Optional("kubeletVersion", &out->kubelet_version);
      s.Fail(n.Finish());
    }
    d.Fail(s.Finish());
  }
  return d.Finish();
}

void to_json(Json& out, const Node& in) {
  ObjectEncoder e;
  e.Set("apiVersion", "v1").Set("kind", "Node").Set("metadata", in.metadata);
  if (in.unschedulable) e.json()["spec"]["unschedulable"] = true;
  if (!in.conditions.empty()) e.json()["status"]["conditions"] = in.conditions;
  if (!in.kubelet_version.empty()) {
    e.json()["status"]["nodeInfo"]["kubeletVersion"] = in.kubelet_version;
  }
  out = std::move(e).Build();
}

bool Node::IsReady() const {
  for (const NodeCondition& c : conditions) {
    if (c.type == "Ready") return c.status == "True";
  }
  return false;
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, Lease* out) {
  ObjectDecoder d(ctx, in);
  ExpectTypeMeta(d, in, "coordination.k8s.io/v1", "Lease");
  d.Optional("metadata", &out->metadata);
  if (auto spec = in.find("spec"); d.ok() && spec != in.end()) {
    ObjectDecoder s(ctx.Field("spec"), *spec);
    s.Optional("holderIdentity", &out->holder_identity);
    s.Optional("leaseDurationSeconds", &out->lease_duration_seconds);
    s.Optional("acquireTime", &out->acquire_time);
    s.Optional("renewTime", &out->renew_time);
    s.Optional("leaseTransitions", &out->lease_transitions);
    s.Ignore("preferredHolder");
    s.Ignore("strategy");
    d.Fail(s.Finish());
  }
  d.Ignore("spec");
  return d.Finish();
}

void to_json(Json& out, const Lease& in) {
  Json spec = ObjectEncoder()
                  .SetOptional("holderIdentity", in.holder_identity)
                  .SetOptional("leaseDurationSeconds", in.lease_duration_seconds)
                  .SetOptional("acquireTime", in.acquire_time)
                  .SetOptional("renewTime", in.renew_time)
                  .SetOptional("leaseTransitions", in.lease_transitions)
                  .Build();
  out = ObjectEncoder()
            .Set("apiVersion", "coordination.k8s.io/v1")
            .Set("kind", "Lease")
            .Set("metadata", in.metadata)
            .Set("spec", spec)
            .Build();
}

void ExpectTypeMeta(ObjectDecoder& d, const Json& in, std::string_view api_version,
                    std::string_view kind) {
  d.Ignore("apiVersion");
  d.Ignore("kind");
  if (!d.ok() || !in.is_object()) return;
  for (const auto& [field, want] :
       {std::pair{"apiVersion", api_version}, std::pair{"kind", kind}}) {
    auto it = in.find(field);
    if (it == in.end()) continue;
    if (!it->is_string() || it->get<std::string>() != want) {
      d.Fail(
          d.context().Field(field).Error(StrCat("expected \"", want, "\", got ", Describe(*it))));
      return;
    }
  }
}

}  // namespace tessera::api
