#include "tessera/controller/policy.h"

#include <string>
#include <string_view>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tessera/api/crd.h"
#include "tessera/api/strings.h"
#include "tessera/api/yaml.h"
#include "tessera/partitioner/catalogue.h"

namespace tessera::controller {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::StartsWith;

using Labels = std::map<std::string, std::string>;

// A policy from YAML text; `spec` is the body under spec:.
api::GpuPartitionPolicy Policy(std::string_view name, std::string_view spec) {
  const std::string yaml = StrCat("apiVersion: tessera.dev/v1alpha1\nkind: GpuPartitionPolicy\n",
                                  "metadata: {name: ", name, ", generation: 3}\nspec:\n", spec);
  absl::StatusOr<api::Json> json = api::ParseYaml(yaml);
  EXPECT_TRUE(json.ok()) << json.status() << "\n" << yaml;
  if (!json.ok()) return {};
  absl::StatusOr<api::GpuPartitionPolicy> policy = api::ParseGpuPartitionPolicy(*json);
  EXPECT_TRUE(policy.ok()) << policy.status() << "\n" << yaml;
  return policy.ok() ? *policy : api::GpuPartitionPolicy{};
}

// A policy selecting nodes with `selector` (YAML flow mapping), one catch-all whole entry.
api::GpuPartitionPolicy Selecting(std::string_view name, std::string_view selector) {
  return Policy(name, StrCat("  nodeSelector: ", selector, "\n  gpus:\n  - mode: whole\n"));
}

api::LabelSelector Selector(std::string_view selector) {
  return Selecting("s", selector).spec.node_selector;
}

std::string ValidationError(std::string_view spec) {
  absl::Status s = ValidatePolicy(Policy("p", spec));
  return s.ok() ? "<ok>" : std::string(s.message());
}

// ---- Selectors -----------------------------------------------------------------------------

TEST(SelectorTest, EmptySelectorMatchesEveryNode) {
  EXPECT_TRUE(SelectorMatches({}, {}));
  EXPECT_TRUE(SelectorMatches({}, {{"pool", "inference"}}));
  EXPECT_EQ(SelectorSpecificity({}), 0);
}

TEST(SelectorTest, MatchLabelsNeedsEveryPairWithTheSameValue) {
  const api::LabelSelector s = Selector("{matchLabels: {pool: inference, zone: a}}");
  EXPECT_TRUE(SelectorMatches(s, {{"pool", "inference"}, {"zone", "a"}, {"extra", "x"}}));
  EXPECT_FALSE(SelectorMatches(s, {{"pool", "inference"}, {"zone", "b"}}));
  EXPECT_FALSE(SelectorMatches(s, {{"pool", "inference"}}));
}

TEST(SelectorTest, InHoldsOnlyForAListedValue) {
  const api::LabelSelector s =
      Selector("{matchExpressions: [{key: gpu, operator: In, values: [a100, h100]}]}");
  EXPECT_TRUE(SelectorMatches(s, {{"gpu", "h100"}}));
  EXPECT_FALSE(SelectorMatches(s, {{"gpu", "a30"}}));
  EXPECT_FALSE(SelectorMatches(s, {}));
}

TEST(SelectorTest, NotInHoldsForOtherValuesAndAbsentKey) {
  const api::LabelSelector s =
      Selector("{matchExpressions: [{key: gpu, operator: NotIn, values: [a30]}]}");
  EXPECT_TRUE(SelectorMatches(s, {{"gpu", "h100"}}));
  EXPECT_TRUE(SelectorMatches(s, {}));
  EXPECT_FALSE(SelectorMatches(s, {{"gpu", "a30"}}));
}

TEST(SelectorTest, ExistsNeedsTheKeyWithAnyValue) {
  const api::LabelSelector s = Selector("{matchExpressions: [{key: gpu, operator: Exists}]}");
  EXPECT_TRUE(SelectorMatches(s, {{"gpu", ""}}));
  EXPECT_FALSE(SelectorMatches(s, {{"other", "x"}}));
}

TEST(SelectorTest, DoesNotExistHoldsOnlyForAnAbsentKey) {
  const api::LabelSelector s = Selector("{matchExpressions: [{key: gpu, operator: DoesNotExist}]}");
  EXPECT_TRUE(SelectorMatches(s, {{"other", "x"}}));
  EXPECT_FALSE(SelectorMatches(s, {{"gpu", "a100"}}));
}

TEST(SelectorTest, UnknownOperatorSelectsNothing) {
  const api::LabelSelector s =
      Selector("{matchExpressions: [{key: gpu, operator: Gt, values: ['1']}]}");
  EXPECT_FALSE(SelectorMatches(s, {{"gpu", "2"}}));
  EXPECT_FALSE(SelectorMatches(s, {}));
}

TEST(SelectorTest, LabelsAndExpressionsMustAllHold) {
  const api::LabelSelector s = Selector(
      "{matchLabels: {pool: a}, matchExpressions: [{key: gpu, operator: Exists}, "
      "{key: drain, operator: DoesNotExist}]}");
  EXPECT_TRUE(SelectorMatches(s, {{"pool", "a"}, {"gpu", "x"}}));
  EXPECT_FALSE(SelectorMatches(s, {{"pool", "a"}, {"gpu", "x"}, {"drain", "1"}}));
  EXPECT_FALSE(SelectorMatches(s, {{"pool", "b"}, {"gpu", "x"}}));
  EXPECT_EQ(SelectorSpecificity(s), 3);
}

// ---- AssignPolicies --------------------------------------------------------------------------

TEST(AssignPoliciesTest, MostSpecificPolicyWins) {
  const std::vector<api::GpuPartitionPolicy> policies = {
      Selecting("everywhere", "{}"),
      Selecting("pool", "{matchLabels: {pool: a}}"),
      Selecting("pool-h100", "{matchLabels: {pool: a, gpu: h100}}"),
  };
  const std::vector<NodeLabels> nodes = {
      {.name = "n1", .labels = {{"pool", "a"}, {"gpu", "h100"}}},
      {.name = "n2", .labels = {{"pool", "a"}}},
      {.name = "n3", .labels = {}},
  };
  const PolicyAssignment a = AssignPolicies(nodes, policies);
  EXPECT_EQ(a.node_policy, (std::map<std::string, std::string>{
                               {"n1", "pool-h100"}, {"n2", "pool"}, {"n3", "everywhere"}}));
  EXPECT_THAT(a.node_conflicts, IsEmpty());
  EXPECT_THAT(a.conflicts, IsEmpty());
}

TEST(AssignPoliciesTest, TieIsAConflictOnBothAndTheNodeGetsNoPolicy) {
  const std::vector<api::GpuPartitionPolicy> policies = {
      Selecting("by-pool", "{matchLabels: {pool: a}}"),
      Selecting("by-zone", "{matchExpressions: [{key: zone, operator: In, values: [z1]}]}"),
  };
  const std::vector<NodeLabels> nodes = {
      {.name = "both", .labels = {{"pool", "a"}, {"zone", "z1"}}},
      {.name = "pool-only", .labels = {{"pool", "a"}}},
      {.name = "zone-only", .labels = {{"zone", "z1"}}},
  };
  const PolicyAssignment a = AssignPolicies(nodes, policies);
  EXPECT_EQ(a.node_policy, (std::map<std::string, std::string>{{"pool-only", "by-pool"},
                                                               {"zone-only", "by-zone"}}));
  ASSERT_EQ(a.node_conflicts.count("both"), 1u);
  EXPECT_THAT(a.node_conflicts.at("both"), ElementsAre("by-pool", "by-zone"));
  EXPECT_EQ(a.conflicts, (std::map<std::string, std::set<std::string>>{{"by-pool", {"by-zone"}},
                                                                       {"by-zone", {"by-pool"}}}));
  EXPECT_EQ(a.selected_nodes, (std::map<std::string, int>{{"by-pool", 1}, {"by-zone", 1}}));
}

TEST(AssignPoliciesTest, TieAtLowerSpecificityDoesNotMatterWhenOnePolicyIsMoreSpecific) {
  const std::vector<api::GpuPartitionPolicy> policies = {
      Selecting("all-1", "{}"),
      Selecting("all-2", "{}"),
      Selecting("pool", "{matchLabels: {pool: a}}"),
  };
  const std::vector<NodeLabels> nodes = {{.name = "n", .labels = {{"pool", "a"}}}};
  const PolicyAssignment a = AssignPolicies(nodes, policies);
  EXPECT_EQ(a.node_policy.at("n"), "pool");
  EXPECT_THAT(a.conflicts, IsEmpty());
}

TEST(AssignPoliciesTest, ThreeWayTieListsEveryOtherPolicy) {
  const std::vector<api::GpuPartitionPolicy> policies = {Selecting("c", "{}"), Selecting("a", "{}"),
                                                         Selecting("b", "{}")};
  const std::vector<NodeLabels> nodes = {{.name = "n", .labels = {}}};
  const PolicyAssignment a = AssignPolicies(nodes, policies);
  EXPECT_THAT(a.node_conflicts.at("n"), ElementsAre("a", "b", "c"));
  EXPECT_EQ(a.conflicts.at("a"), (std::set<std::string>{"b", "c"}));
  EXPECT_EQ(a.conflicts.at("c"), (std::set<std::string>{"a", "b"}));
  EXPECT_THAT(a.node_policy, IsEmpty());
}

TEST(AssignPoliciesTest, SelectedNodesCountsEveryPolicyIncludingZero) {
  const std::vector<api::GpuPartitionPolicy> policies = {
      Selecting("pool", "{matchLabels: {pool: a}}"),
      Selecting("nowhere", "{matchLabels: {pool: none}}"),
  };
  const std::vector<NodeLabels> nodes = {
      {.name = "n1", .labels = {{"pool", "a"}}},
      {.name = "n2", .labels = {{"pool", "a"}}},
      {.name = "n3", .labels = {{"pool", "b"}}},
  };
  const PolicyAssignment a = AssignPolicies(nodes, policies);
  EXPECT_EQ(a.selected_nodes, (std::map<std::string, int>{{"pool", 2}, {"nowhere", 0}}));
  EXPECT_EQ(a.node_policy.count("n3"), 0u);
  EXPECT_EQ(a.node_conflicts.count("n3"), 0u);
}

// ---- PolicyForGpu ----------------------------------------------------------------------------

api::GpuInfo Gpu(int32_t index, std::string model) {
  api::GpuInfo gpu;
  gpu.index = index;
  gpu.model = std::move(model);
  return gpu;
}

// Entries are told apart by mode in these tests.
const api::GpuPartitionPolicySpec& PrecedenceSpec() {
  static const api::GpuPartitionPolicySpec spec = Policy("p", R"(  gpus:
  - mode: whole
  - match: {models: [a100-40gb]}
    mode: mps
  - match: {indices: [1]}
    mode: timeslice
  - match: {models: [a100-40gb]}
    mode: mig-dynamic
  - match: {indices: [1, 2]}
    mode: mig-dynamic
  - match: {models: [h100-80gb], indices: [3]}
    mode: mig-static
    migStatic: {profiles: [7g.80gb]}
)")
                                                      .spec;
  return spec;
}

TEST(PolicyForGpuTest, IndexBeatsModelAndCatchAllWhereverItIsListed) {
  const api::GpuPolicy* p = PolicyForGpu(PrecedenceSpec(), Gpu(1, "a100-40gb"));
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p, &PrecedenceSpec().gpus[2]);
}

TEST(PolicyForGpuTest, FirstEntryAmongEqualsWins) {
  // Index 2 is named only by entry 4; index 1 by entries 2 and 4 (entry 2 wins, above); the
  // model by entries 1 and 3.
  EXPECT_EQ(PolicyForGpu(PrecedenceSpec(), Gpu(2, "a100-40gb")), &PrecedenceSpec().gpus[4]);
  EXPECT_EQ(PolicyForGpu(PrecedenceSpec(), Gpu(0, "a100-40gb")), &PrecedenceSpec().gpus[1]);
}

TEST(PolicyForGpuTest, CatchAllWhenNoEntryNamesTheGpu) {
  EXPECT_EQ(PolicyForGpu(PrecedenceSpec(), Gpu(0, "a30-24gb")), &PrecedenceSpec().gpus[0]);
}

TEST(PolicyForGpuTest, EntryNamingIndexAndModelMustMatchBoth) {
  EXPECT_EQ(PolicyForGpu(PrecedenceSpec(), Gpu(3, "h100-80gb")), &PrecedenceSpec().gpus[5]);
  // Index 3 on another model: the both-fields entry does not apply, the catch-all does.
  EXPECT_EQ(PolicyForGpu(PrecedenceSpec(), Gpu(3, "a30-24gb")), &PrecedenceSpec().gpus[0]);
  // The model on another index: neither.
  EXPECT_EQ(PolicyForGpu(PrecedenceSpec(), Gpu(0, "h100-80gb")), &PrecedenceSpec().gpus[0]);
}

TEST(PolicyForGpuTest, NullWhenNoEntryApplies) {
  const api::GpuPartitionPolicySpec spec = Policy("p", R"(  gpus:
  - match: {indices: [0]}
    mode: mps
  - match: {models: [h100-80gb]}
    mode: mig-dynamic
)")
                                               .spec;
  EXPECT_EQ(PolicyForGpu(spec, Gpu(1, "a100-40gb")), nullptr);
  EXPECT_EQ(PolicyForGpu(spec, Gpu(0, "a100-40gb")), &spec.gpus[0]);
}

// ---- ValidatePolicy --------------------------------------------------------------------------

TEST(ValidatePolicyTest, AcceptsPoliciesThatFitTheCatalogue) {
  EXPECT_EQ(ValidationError(R"(  nodeSelector:
    matchLabels: {pool: a}
    matchExpressions: [{key: zone, operator: NotIn, values: [z9]}, {key: gpu, operator: Exists}]
  gpus:
  - match: {models: [a100-40gb], indices: [0, 1]}
    mode: mig-dynamic
    allowedProfiles: [1g.5gb, 2g, 3g.20gb]
  - match: {models: [a100-40gb], indices: [2]}
    mode: mig-static
    migStatic: {profiles: [3g.20gb, 3g.20gb]}
    instanceSharing: MPS
    shares: {maxShares: 4, minMemory: 2Gi}
  - match: {models: [a100-80gb, h100-80gb, h200-141gb]}
    mode: mig-static
    migStatic: {profiles: [4g, 2g, 1g]}
  - match: {indices: [6]}
    mode: mps
    shares: {maxShares: 8, minMemory: 20Gi, minComputePercent: 10}
  - match: {indices: [7]}
    mode: timeslice
    timeSliceInterval: Short
    shares: {maxShares: 4}
  - mode: mig-dynamic
    allowedProfiles: [1g, 2g, 4g]
)"),
            "<ok>");
}

TEST(ValidatePolicyTest, AcceptsACatchAllFollowedByNamedEntries) {
  EXPECT_EQ(ValidationError(R"(  gpus:
  - mode: whole
  - match: {models: [a30-24gb]}
    mode: mig-static
    migStatic: {profiles: [2g.12gb, 2g.12gb]}
)"),
            "<ok>");
}

TEST(ValidatePolicyTest, UnknownModelNamesFieldValueAndKnownModels) {
  const std::string error = ValidationError(R"(  gpus:
  - mode: whole
  - match: {models: [a100-40gb, a100-41gb]}
    mode: mps
)");
  EXPECT_THAT(error, StartsWith("spec.gpus[1].match.models[1]: unknown GPU model \"a100-41gb\""));
  EXPECT_THAT(error, HasSubstr(StrCat("(known: ", partitioner::BuiltinModelKeys(), ")")));
  EXPECT_THAT(error, HasSubstr("a100-40gb, "));
}

TEST(ValidatePolicyTest, PciDeviceIdIsNotAModelKey) {
  EXPECT_THAT(ValidationError("  gpus:\n  - match: {models: ['0x2330']}\n    mode: whole\n"),
              StartsWith("spec.gpus[0].match.models[0]: unknown GPU model \"0x2330\""));
}

TEST(ValidatePolicyTest, UnknownAllowedProfileNamesTheModel) {
  EXPECT_THAT(ValidationError(R"(  gpus:
  - match: {models: [a100-40gb]}
    mode: mig-dynamic
    allowedProfiles: [1g.5gb, 3g.40gb]
)"),
              StartsWith("spec.gpus[0].allowedProfiles[1]: no MIG profile \"3g.40gb\" on "
                         "a100-40gb (profiles: 1g.5gb (1g), "));
}

TEST(ValidatePolicyTest, EntryWithoutModelsMustFitSomeMigModel) {
  // a30-24gb has no 3g, but other models do: accepted (a GPU of the node decides at publish time).
  EXPECT_EQ(ValidationError("  gpus:\n  - mode: mig-dynamic\n    allowedProfiles: [3g]\n"), "<ok>");
  EXPECT_EQ(ValidationError("  gpus:\n  - match: {indices: [4]}\n    mode: mig-static\n"
                            "    migStatic: {profiles: [3g.20gb, 3g.20gb]}\n"),
            "<ok>");
  // No model has a 9g.
  EXPECT_THAT(ValidationError("  gpus:\n  - mode: mig-dynamic\n    allowedProfiles: [9g]\n"),
              StartsWith("spec.gpus[0].allowedProfiles[0]: no MIG profile \"9g\" on "));
}

TEST(ValidatePolicyTest, LayoutThatDoesNotFitIsRejected) {
  EXPECT_THAT(ValidationError(R"(  gpus:
  - match: {models: [a100-40gb]}
    mode: mig-static
    migStatic: {profiles: [3g, 3g, 3g]}
)"),
              StartsWith("spec.gpus[0].migStatic.profiles: MIG layout [3g, 3g, 3g] does not fit "
                         "one a100-40gb"));
}

TEST(ValidatePolicyTest, LayoutWithAnUnknownProfileNamesItsPosition) {
  EXPECT_THAT(ValidationError(R"(  gpus:
  - match: {models: [h100-80gb]}
    mode: mig-static
    migStatic: {profiles: [3g.40gb, 3g.20gb]}
)"),
              StartsWith("spec.gpus[0].migStatic.profiles[1]: no MIG profile \"3g.20gb\" on "
                         "h100-80gb"));
}

TEST(ValidatePolicyTest, NegativeIndexIsRejected) {
  api::GpuPartitionPolicy policy = Policy("p", "  gpus:\n  - mode: whole\n");
  policy.spec.gpus[0].match.indices = {0, -1};
  const absl::Status s = ValidatePolicy(policy);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), StartsWith("spec.gpus[0].match.indices[1]: -1 is not"));
}

TEST(ValidatePolicyTest, SecondCatchAllIsUnreachable) {
  EXPECT_THAT(ValidationError(R"(  gpus:
  - mode: whole
  - match: {indices: [0]}
    mode: mps
  - mode: timeslice
)"),
              StartsWith("spec.gpus[2].match: matches every GPU, but spec.gpus[0] already does"));
}

TEST(ValidatePolicyTest, MinMemoryMustBeBelowTheSmallestModel) {
  const std::string spec_prefix = "  gpus:\n  - match: {models: [a100-80gb, a100-40gb]}\n";
  EXPECT_THAT(ValidationError(spec_prefix + "    mode: mps\n    shares: {minMemory: 40Gi}\n"),
              StartsWith("spec.gpus[0].shares.minMemory: \"40Gi\" is not below the memory of "
                         "a100-40gb (40Gi)"));
  EXPECT_EQ(ValidationError(spec_prefix + "    mode: mps\n    shares: {minMemory: 39Gi}\n"),
            "<ok>");
}

TEST(ValidatePolicyTest, SelectorOperatorsAreChecked) {
  EXPECT_THAT(ValidationError(R"(  nodeSelector:
    matchExpressions: [{key: gpu, operator: Exists}, {key: n, operator: Gt, values: ['1']}]
  gpus:
  - mode: whole
)"),
              StartsWith("spec.nodeSelector.matchExpressions[1].operator: \"Gt\" is not allowed"));
  EXPECT_THAT(ValidationError(R"(  nodeSelector:
    matchExpressions: [{key: gpu, operator: In}]
  gpus:
  - mode: whole
)"),
              StartsWith("spec.nodeSelector.matchExpressions[0].values: must not be empty"));
}

// ---- PolicyStatus ----------------------------------------------------------------------------

const api::Condition* FindCondition(const api::GpuPartitionPolicyStatus& status,
                                    std::string_view type) {
  for (const api::Condition& c : status.conditions) {
    if (c.type == type) return &c;
  }
  return nullptr;
}

TEST(PolicyStatusTest, ValidPolicyWithoutTiesIsAcceptedAndNotConflicted) {
  const api::GpuPartitionPolicy policy = Selecting("p", "{}");
  PolicyAssignment assignment;
  assignment.selected_nodes["p"] = 4;
  const api::GpuPartitionPolicyStatus s =
      PolicyStatus(policy, absl::OkStatus(), assignment, "2024-05-01T10:00:00Z");
  EXPECT_EQ(s.observed_generation, 3);
  EXPECT_EQ(s.selected_nodes, 4);
  EXPECT_THAT(s.conflicting_policies, IsEmpty());
  const api::Condition* accepted = FindCondition(s, "Accepted");
  ASSERT_NE(accepted, nullptr);
  EXPECT_EQ(accepted->status, "True");
  EXPECT_EQ(accepted->reason, "Valid");
  EXPECT_EQ(accepted->observed_generation, 3);
  EXPECT_EQ(accepted->last_transition_time, "2024-05-01T10:00:00Z");
  const api::Condition* conflict = FindCondition(s, "Conflict");
  ASSERT_NE(conflict, nullptr);
  EXPECT_EQ(conflict->status, "False");
  EXPECT_EQ(conflict->reason, "None");
}

TEST(PolicyStatusTest, InvalidPolicyCarriesTheErrorMessage) {
  const absl::Status invalid = absl::InvalidArgumentError(
      "spec.gpus[0].match.models[0]: unknown GPU model \"x\" (known: a100-40gb)");
  const api::GpuPartitionPolicyStatus s =
      PolicyStatus(Selecting("p", "{}"), invalid, PolicyAssignment{}, "2024-05-01T10:00:00Z");
  const api::Condition* accepted = FindCondition(s, "Accepted");
  ASSERT_NE(accepted, nullptr);
  EXPECT_EQ(accepted->status, "False");
  EXPECT_EQ(accepted->reason, "Invalid");
  EXPECT_EQ(accepted->message, std::string(invalid.message()));
  EXPECT_EQ(s.selected_nodes, 0);
}

TEST(PolicyStatusTest, TieNamesTheOtherPoliciesAndTheNodes) {
  const std::vector<api::GpuPartitionPolicy> policies = {
      Selecting("c", "{matchLabels: {pool: a}}"),
      Selecting("a", "{matchLabels: {pool: a}}"),
      Selecting("b", "{matchLabels: {pool: a}}"),
  };
  const std::vector<NodeLabels> nodes = {{.name = "node-1", .labels = {{"pool", "a"}}},
                                         {.name = "node-2", .labels = {{"pool", "a"}}}};
  const PolicyAssignment a = AssignPolicies(nodes, policies);
  const api::GpuPartitionPolicyStatus s =
      PolicyStatus(policies[0], absl::OkStatus(), a, "2024-05-01T10:00:00Z");
  EXPECT_THAT(s.conflicting_policies, ElementsAre("a", "b"));
  EXPECT_EQ(s.selected_nodes, 0);
  const api::Condition* conflict = FindCondition(s, "Conflict");
  ASSERT_NE(conflict, nullptr);
  EXPECT_EQ(conflict->status, "True");
  EXPECT_EQ(conflict->reason, "Tied");
  EXPECT_THAT(conflict->message, StartsWith("ties with a, b "));
  EXPECT_THAT(conflict->message, HasSubstr("node-1, node-2"));
}

TEST(PolicyStatusTest, ConflictMessageShortensLongNodeLists) {
  const std::vector<api::GpuPartitionPolicy> policies = {Selecting("a", "{}"),
                                                         Selecting("b", "{}")};
  std::vector<NodeLabels> nodes;
  for (int i = 0; i < 12; ++i) nodes.push_back({.name = StrCat("n", 10 + i), .labels = {}});
  const api::GpuPartitionPolicyStatus s = PolicyStatus(
      policies[0], absl::OkStatus(), AssignPolicies(nodes, policies), "2024-05-01T10:00:00Z");
  const api::Condition* conflict = FindCondition(s, "Conflict");
  ASSERT_NE(conflict, nullptr);
  EXPECT_THAT(conflict->message, HasSubstr("12 nodes: n10, n11,"));
  EXPECT_THAT(conflict->message, HasSubstr("n19 and 2 more"));
  EXPECT_THAT(conflict->message, Not(HasSubstr("n21")));
}

TEST(PolicyStatusTest, TransitionTimeIsKeptWhileStatusIsUnchanged) {
  const std::string t0 = "2024-05-01T10:00:00Z";
  const std::string t1 = "2024-05-01T11:00:00Z";
  api::GpuPartitionPolicy policy = Selecting("p", "{}");
  policy.status = PolicyStatus(policy, absl::OkStatus(), PolicyAssignment{}, t0);

  const api::GpuPartitionPolicyStatus same =
      PolicyStatus(policy, absl::OkStatus(), PolicyAssignment{}, t1);
  EXPECT_EQ(FindCondition(same, "Accepted")->last_transition_time, t0);
  EXPECT_EQ(FindCondition(same, "Conflict")->last_transition_time, t0);

  const api::GpuPartitionPolicyStatus invalid = PolicyStatus(
      policy, absl::InvalidArgumentError("spec.gpus[0].mode: bad"), PolicyAssignment{}, t1);
  EXPECT_EQ(FindCondition(invalid, "Accepted")->last_transition_time, t1);
  EXPECT_EQ(FindCondition(invalid, "Conflict")->last_transition_time, t0);
}

TEST(PolicyStatusTest, ObservedGenerationFollowsMetadata) {
  api::GpuPartitionPolicy policy = Selecting("p", "{}");
  policy.metadata.generation = 9;
  policy.status.observed_generation = 3;
  const api::GpuPartitionPolicyStatus s =
      PolicyStatus(policy, absl::OkStatus(), PolicyAssignment{}, "2024-05-01T10:00:00Z");
  EXPECT_EQ(s.observed_generation, 9);
  for (const api::Condition& c : s.conditions) EXPECT_EQ(c.observed_generation, 9) << c.type;
}

}  // namespace
}  // namespace tessera::controller
