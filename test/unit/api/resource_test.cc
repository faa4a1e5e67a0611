#include "tessera/api/resource.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace tessera::api {
namespace {

using ::testing::HasSubstr;

Json ReadFixture(const std::string& name) {
  std::ifstream in(std::string(TESSERA_TESTDATA_DIR) + "/" + name);
  std::stringstream text;
  text << in.rdbuf();
  return Json::parse(text.str());
}

template <typename T>
void ExpectRoundTrip(const std::string& fixture) {
  Json original = ReadFixture(fixture);
  absl::StatusOr<T> decoded = DecodeJson<T>(original, UnknownFields::kReject);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  Json encoded = *decoded;
  EXPECT_EQ(encoded, original) << "diff: " << Json::diff(original, encoded).dump(2);
  absl::StatusOr<T> again = DecodeJson<T>(encoded, UnknownFields::kReject);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *decoded);
}

TEST(ResourceJsonTest, ResourceSliceWithEveryDeviceFieldRoundTrips) {
  ExpectRoundTrip<ResourceSlice>("resourceslice-devices.json");
}

TEST(ResourceJsonTest, CounterOnlySliceRoundTripsWithGenerationZero) {
  ExpectRoundTrip<ResourceSlice>("resourceslice-counters.json");
}

TEST(ResourceJsonTest, AllocatedClaimWithStatusRoundTrips) {
  ExpectRoundTrip<ResourceClaim>("resourceclaim-allocated.json");
}

TEST(ResourceJsonTest, ResourceClaimTemplateRoundTrips) {
  ExpectRoundTrip<ResourceClaimTemplate>("resourceclaimtemplate.json");
}

TEST(ResourceJsonTest, DeviceClassRoundTrips) { ExpectRoundTrip<DeviceClass>("deviceclass.json"); }

TEST(ResourceJsonTest, DecodedSliceExposesTypedFields) {
  ResourceSlice slice =
      *DecodeJson<ResourceSlice>(ReadFixture("resourceslice-devices.json"), UnknownFields::kIgnore);
  ASSERT_EQ(slice.spec.devices.size(), 2u);
  const Device& mig = slice.spec.devices[0];
  EXPECT_EQ(mig.attributes.at("index").int_value, 0);
  EXPECT_EQ(mig.attributes.at("cudaComputeCapability").version_value, "9.0.0");
  EXPECT_EQ(mig.capacity.at("memory").value.Value(), int64_t{9856} << 20);
  EXPECT_EQ(mig.consumes_counters[0].counters.at("memory-slice-6").value.Value(), 1);
  const Device& mps = slice.spec.devices[1];
  EXPECT_EQ(mps.allow_multiple_allocations, true);
  ASSERT_TRUE(mps.capacity.at("memory").request_policy->valid_range.has_value());
  EXPECT_EQ(mps.capacity.at("compute").request_policy->valid_values.size(), 4u);
}

TEST(ResourceJsonTest, ClaimResultsNameTheirParentRequest) {
  ResourceClaim claim = *DecodeJson<ResourceClaim>(ReadFixture("resourceclaim-allocated.json"),
                                                   UnknownFields::kIgnore);
  const auto& results = claim.status.allocation->devices.results;
  EXPECT_EQ(results[0].ParentRequest(), "gpu");
  EXPECT_EQ(results[1].ParentRequest(), "share");
  EXPECT_EQ(results[1].share_id, "3f0c1d2e-4444-4d4d-9f9f-000000000004");
  EXPECT_EQ(results[1].consumed_capacity.at("memory").ToString(), "8Gi");
}

TEST(ResourceJsonTest, NonCanonicalQuantitiesComeBackCanonical) {
  Json slice = ReadFixture("resourceslice-devices.json");
  slice["spec"]["devices"][0]["capacity"]["memory"]["value"] = "10240Mi";
  slice["spec"]["devices"][0]["capacity"]["multiprocessors"]["value"] = 16;
  Json encoded = *DecodeJson<ResourceSlice>(slice, UnknownFields::kIgnore);
  EXPECT_EQ(encoded["spec"]["devices"][0]["capacity"]["memory"]["value"], "10Gi");
  EXPECT_EQ(encoded["spec"]["devices"][0]["capacity"]["multiprocessors"]["value"], "16");
}

TEST(ResourceJsonTest, AttributeWithTwoValuesIsRejected) {
  Json slice = ReadFixture("resourceslice-devices.json");
  slice["spec"]["devices"][0]["attributes"]["type"] = {{"string", "mig"}, {"int", 1}};
  absl::StatusOr<ResourceSlice> s = DecodeJson<ResourceSlice>(slice, UnknownFields::kIgnore);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(
      std::string(s.status().message()),
      HasSubstr("spec.devices[0].attributes.type: exactly one of int, bool, string, version"));
}

TEST(ResourceJsonTest, BadQuantityNamesItsPath) {
  Json slice = ReadFixture("resourceslice-devices.json");
  slice["spec"]["devices"][1]["capacity"]["memory"]["requestPolicy"]["validRange"]["step"] = "1 Gi";
  absl::StatusOr<ResourceSlice> s = DecodeJson<ResourceSlice>(slice, UnknownFields::kIgnore);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()),
              HasSubstr("spec.devices[1].capacity.memory.requestPolicy.validRange.step: invalid "
                        "quantity \"1 Gi\""));
}

TEST(ResourceJsonTest, RequestMustHaveExactlyOrFirstAvailable) {
  Json claim = ReadFixture("resourceclaim-allocated.json");
  claim["spec"]["devices"]["requests"][1]["firstAvailable"] =
      claim["spec"]["devices"]["requests"][0]["firstAvailable"];
  absl::StatusOr<ResourceClaim> c = DecodeJson<ResourceClaim>(claim, UnknownFields::kIgnore);
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(std::string(c.status().message()),
              HasSubstr("spec.devices.requests[1]: exactly one of exactly and firstAvailable"));
}

TEST(ResourceJsonTest, WrongKindIsRejected) {
  Json slice = ReadFixture("resourceslice-devices.json");
  slice["kind"] = "ResourceClaim";
  absl::StatusOr<ResourceSlice> s = DecodeJson<ResourceSlice>(slice, UnknownFields::kIgnore);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(std::string(s.status().message()),
            "kind: expected \"ResourceSlice\", got \"ResourceClaim\"");
}

TEST(ResourceJsonTest, ServerObjectsWithNewFieldsDecodeLeniently) {
  Json slice = ReadFixture("resourceslice-devices.json");
  slice["spec"]["partitionTypeAttribute"] = "gpu.tessera.dev/type";
  slice["metadata"]["managedFields"] = Json::array();
  EXPECT_TRUE(DecodeJson<ResourceSlice>(slice, UnknownFields::kIgnore).ok());
}

TEST(MetaJsonTest, NodeReadinessAndVersionAreRead) {
  Json node = Json::parse(R"({"apiVersion": "v1", "kind": "Node",
    "metadata": {"name": "n1", "uid": "u1", "labels": {"nvidia.com/gpu.present": "true"}},
    "spec": {"podCIDR": "10.0.0.0/24"},
    "status": {"conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
               "nodeInfo": {"kubeletVersion": "v1.36.2", "osImage": "Debian"}, "capacity": {"cpu": "8"}}})");
  absl::StatusOr<Node> n = DecodeJson<Node>(node, UnknownFields::kReject);
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_TRUE(n->IsReady());
  EXPECT_EQ(n->kubelet_version, "v1.36.2");
  EXPECT_EQ(n->metadata.labels.at("nvidia.com/gpu.present"), "true");
}

TEST(MetaJsonTest, LeaseRoundTrips) {
  Json lease = Json::parse(R"({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
    "metadata": {"name": "tessera-controller", "namespace": "tessera-system", "resourceVersion": "5"},
    "spec": {"holderIdentity": "pod-a", "leaseDurationSeconds": 15,
             "acquireTime": "2026-09-01T10:00:00.000000Z", "renewTime": "2026-09-01T10:00:05.123456Z",
             "leaseTransitions": 2}})");
  absl::StatusOr<Lease> l = DecodeJson<Lease>(lease, UnknownFields::kReject);
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_EQ(Json(*l), lease);
}

}  // namespace
}  // namespace tessera::api
