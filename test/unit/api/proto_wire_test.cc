// Pins the wire format of tessera's own .proto files for the kubelet's gRPC contracts
// (api/proto/, written from shared/reference/dra-protocol.md sections 1-3).
//
// Every expected byte sequence below is derived by hand from the reference tables, not from
// the generated code: a field's tag byte is (field_number << 3) | wire_type, with wire type 0
// for varints (bool, enum, int64) and 2 for length-delimited values (string, embedded
// message, map entry), followed for wire type 2 by the payload length as a varint. Tags and
// lengths are written as explicit bytes; string payloads as string literals. A wrong field
// number, a wrong type or a wrong package therefore fails a test here, long before a kubelet
// would reject the driver.
//
// Message names do not travel on the wire; the gRPC method paths do. The service tests pin
// those paths and the streaming shape of each RPC.

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "dra-health/v1/api.grpc.pb.h"
#include "dra-health/v1/api.pb.h"
#include "dra-health/v1alpha1/api.grpc.pb.h"
#include "dra-health/v1alpha1/api.pb.h"
#include "dra/v1/api.grpc.pb.h"
#include "dra/v1/api.pb.h"
#include "dra/v1beta1/api.grpc.pb.h"
#include "dra/v1beta1/api.pb.h"
#include "pluginregistration/v1/api.grpc.pb.h"
#include "pluginregistration/v1/api.pb.h"

namespace tessera {
namespace {

// The generated packages become these C++ namespaces; never `using namespace` them (the
// health packages are the bare top-level namespaces ::v1 and ::v1alpha1).
namespace registration = ::pluginregistration;
namespace dra_v1 = ::k8s::io::kubelet::pkg::apis::dra::v1;
namespace dra_v1beta1 = ::k8s::io::kubelet::pkg::apis::dra::v1beta1;
namespace health_v1 = ::v1;
namespace health_v1alpha1 = ::v1alpha1;

using ::google::protobuf::DescriptorPool;
using ::google::protobuf::Message;
using ::google::protobuf::MethodDescriptor;
using ::google::protobuf::ServiceDescriptor;
using ::google::protobuf::util::MessageDifferencer;

// Builds a byte string from explicit byte values (tags, lengths, varints).
std::string Bytes(std::initializer_list<unsigned char> bytes) {
  return std::string(bytes.begin(), bytes.end());
}

// "0a 09 44 52 ..." for readable failure messages.
std::string Hex(std::string_view data) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (const char c : data) {
    const auto byte = static_cast<unsigned char>(c);
    if (!out.empty()) out += ' ';
    out += kDigits[byte >> 4];
    out += kDigits[byte & 0x0f];
  }
  return out;
}

// Checks both directions: `message` serializes to exactly `expected`, and `expected` parses
// back into a message equal to `message` (same known fields, no unknown fields left over).
::testing::AssertionResult EncodesTo(const Message& message, const std::string& expected) {
  std::string actual;
  if (!message.SerializeToString(&actual)) {
    return ::testing::AssertionFailure() << message.GetTypeName() << " failed to serialize";
  }
  if (actual != expected) {
    return ::testing::AssertionFailure()
           << message.GetTypeName() << " encodes as\n  [" << Hex(actual) << "]\nexpected\n  ["
           << Hex(expected) << "]";
  }
  std::unique_ptr<Message> parsed(message.New());
  if (!parsed->ParseFromString(expected)) {
    return ::testing::AssertionFailure()
           << "expected bytes do not parse as " << message.GetTypeName();
  }
  MessageDifferencer differencer;
  std::string differences;
  differencer.ReportDifferencesToString(&differences);
  if (!differencer.Compare(message, *parsed)) {
    return ::testing::AssertionFailure()
           << "expected bytes decode to a different " << message.GetTypeName() << ":\n"
           << differences;
  }
  return ::testing::AssertionSuccess();
}

// The HTTP/2 path gRPC uses for a method: "/<package>.<Service>/<Method>".
std::string GrpcPath(const MethodDescriptor& method) {
  return "/" + method.service()->full_name() + "/" + method.name();
}

// What a DRA plugin advertises in PluginInfo.supported_versions for a service:
// "<last segment of the proto package>.<Service>" (reference section 1.2).
std::string AdvertisedName(const ServiceDescriptor& service) {
  const std::string& package = service.file()->package();
  return package.substr(package.rfind('.') + 1) + "." + service.name();
}

// Looks up a generated service by the full name its gRPC class reports.
const ServiceDescriptor* GeneratedService(std::string_view full_name) {
  return DescriptorPool::generated_pool()->FindServiceByName(std::string(full_name));
}

// ------------------------------------------------------------------------------------------
// Section 1: plugin registration (package pluginregistration).

TEST(PluginRegistrationWireTest, PluginInfoEncodesTypeAsField1) {
  registration::PluginInfo info;
  info.set_type("DRAPlugin");
  // type = 1, string: tag (1 << 3) | 2 = 0x0a; "DRAPlugin" is 9 bytes.
  EXPECT_TRUE(EncodesTo(info, Bytes({0x0a, 0x09}) + "DRAPlugin"));
}

TEST(PluginRegistrationWireTest, PluginInfoEncodesNameAsField2) {
  registration::PluginInfo info;
  info.set_name("gpu.tessera.dev");
  // name = 2, string: tag (2 << 3) | 2 = 0x12; "gpu.tessera.dev" is 15 = 0x0f bytes.
  EXPECT_TRUE(EncodesTo(info, Bytes({0x12, 0x0f}) + "gpu.tessera.dev"));
}

TEST(PluginRegistrationWireTest, PluginInfoEncodesEndpointAsField3) {
  registration::PluginInfo info;
  info.set_endpoint("/var/lib/kubelet/plugins/gpu.tessera.dev/dra.sock");
  // endpoint = 3, string: tag (3 << 3) | 2 = 0x1a; the path is
  // "/var/lib/kubelet/plugins/" (25) + "gpu.tessera.dev" (15) + "/dra.sock" (9) = 49 = 0x31.
  EXPECT_TRUE(
      EncodesTo(info, Bytes({0x1a, 0x31}) + "/var/lib/kubelet/plugins/gpu.tessera.dev/dra.sock"));
}

TEST(PluginRegistrationWireTest, PluginInfoEncodesSupportedVersionsAsRepeatedField4InOrder) {
  registration::PluginInfo info;
  info.add_supported_versions("v1.DRAPlugin");
  info.add_supported_versions("v1beta1.DRAPlugin");
  // supported_versions = 4, repeated string: one record per element, in list order (the
  // kubelet takes the first entry it supports). Tag (4 << 3) | 2 = 0x22;
  // "v1.DRAPlugin" is 12 = 0x0c bytes, "v1beta1.DRAPlugin" 17 = 0x11.
  EXPECT_TRUE(EncodesTo(info, Bytes({0x22, 0x0c}) + "v1.DRAPlugin" +  //
                                  Bytes({0x22, 0x11}) + "v1beta1.DRAPlugin"));
}

TEST(PluginRegistrationWireTest, PluginInfoEncodesAllFieldsInFieldNumberOrder) {
  registration::PluginInfo info;
  info.add_supported_versions("v1.DRAPlugin");
  info.set_endpoint("/p/dra.sock");
  info.set_name("d");
  info.set_type("DRAPlugin");
  // 0x0a = type (1), 0x12 = name (2), 0x1a = endpoint (3), 0x22 = supported_versions (4);
  // lengths: "DRAPlugin" 9, "d" 1, "/p/dra.sock" 11 = 0x0b, "v1.DRAPlugin" 12 = 0x0c.
  EXPECT_TRUE(EncodesTo(info, Bytes({0x0a, 0x09}) + "DRAPlugin" +        //
                                  Bytes({0x12, 0x01}) + "d" +            //
                                  Bytes({0x1a, 0x0b}) + "/p/dra.sock" +  //
                                  Bytes({0x22, 0x0c}) + "v1.DRAPlugin"));
}

TEST(PluginRegistrationWireTest, RegistrationStatusEncodesPluginRegisteredAsBoolField1) {
  registration::RegistrationStatus status;
  status.set_plugin_registered(true);
  // plugin_registered = 1, bool (varint): tag (1 << 3) | 0 = 0x08; true = 0x01.
  EXPECT_TRUE(EncodesTo(status, Bytes({0x08, 0x01})));
}

TEST(PluginRegistrationWireTest, RegistrationStatusEncodesErrorAsField2) {
  registration::RegistrationStatus status;
  status.set_plugin_registered(true);
  status.set_error("bad version");
  // 0x08 0x01 = plugin_registered (1) true; error = 2, string: tag (2 << 3) | 2 = 0x12;
  // "bad version" is 11 = 0x0b bytes.
  EXPECT_TRUE(EncodesTo(status, Bytes({0x08, 0x01, 0x12, 0x0b}) + "bad version"));
}

TEST(PluginRegistrationWireTest, RegistrationStatusDecodesKubeletRejection) {
  // What a kubelet sends when it rejects the plugin: plugin_registered = false is the proto3
  // default and so absent; only error (2, tag 0x12) travels. "no match" is 8 bytes.
  registration::RegistrationStatus status;
  ASSERT_TRUE(status.ParseFromString(Bytes({0x12, 0x08}) + "no match"));
  EXPECT_FALSE(status.plugin_registered());
  EXPECT_EQ(status.error(), "no match");
}

TEST(PluginRegistrationWireTest, EmptyRequestAndResponseMessagesHaveNoFields) {
  EXPECT_EQ(registration::InfoRequest::descriptor()->field_count(), 0);
  EXPECT_EQ(registration::RegistrationStatusResponse::descriptor()->field_count(), 0);
  EXPECT_TRUE(EncodesTo(registration::InfoRequest(), ""));
  EXPECT_TRUE(EncodesTo(registration::RegistrationStatusResponse(), ""));
}

TEST(PluginRegistrationServiceTest, ServiceIsPluginregistrationRegistration) {
  EXPECT_STREQ(registration::Registration::service_full_name(), "pluginregistration.Registration");
  const ServiceDescriptor* service =
      GeneratedService(registration::Registration::service_full_name());
  ASSERT_NE(service, nullptr);
  EXPECT_EQ(service->file(), registration::PluginInfo::descriptor()->file());
  EXPECT_EQ(service->file()->package(), "pluginregistration");
  EXPECT_EQ(service->method_count(), 2);
}

TEST(PluginRegistrationServiceTest, GetInfoIsUnaryFromInfoRequestToPluginInfo) {
  const ServiceDescriptor* service =
      GeneratedService(registration::Registration::service_full_name());
  ASSERT_NE(service, nullptr);
  const MethodDescriptor* method = service->FindMethodByName("GetInfo");
  ASSERT_NE(method, nullptr);
  EXPECT_EQ(GrpcPath(*method), "/pluginregistration.Registration/GetInfo");
  EXPECT_EQ(method->input_type(), registration::InfoRequest::descriptor());
  EXPECT_EQ(method->output_type(), registration::PluginInfo::descriptor());
  EXPECT_FALSE(method->client_streaming());
  EXPECT_FALSE(method->server_streaming());
}

TEST(PluginRegistrationServiceTest,
     NotifyRegistrationStatusIsUnaryFromRegistrationStatusToResponse) {
  const ServiceDescriptor* service =
      GeneratedService(registration::Registration::service_full_name());
  ASSERT_NE(service, nullptr);
  const MethodDescriptor* method = service->FindMethodByName("NotifyRegistrationStatus");
  ASSERT_NE(method, nullptr);
  EXPECT_EQ(GrpcPath(*method), "/pluginregistration.Registration/NotifyRegistrationStatus");
  EXPECT_EQ(method->input_type(), registration::RegistrationStatus::descriptor());
  EXPECT_EQ(method->output_type(), registration::RegistrationStatusResponse::descriptor());
  EXPECT_FALSE(method->client_streaming());
  EXPECT_FALSE(method->server_streaming());
}

// ------------------------------------------------------------------------------------------
// Section 2: DRA node service. Everything except Device.share_id is identical in v1 and
// v1beta1, so those tests run once per version.

struct DraV1 {
  static constexpr std::string_view kVersion = "v1";
  static constexpr std::string_view kServiceFullName = "k8s.io.kubelet.pkg.apis.dra.v1.DRAPlugin";
  static constexpr std::string_view kPreparePath =
      "/k8s.io.kubelet.pkg.apis.dra.v1.DRAPlugin/NodePrepareResources";
  static constexpr std::string_view kUnpreparePath =
      "/k8s.io.kubelet.pkg.apis.dra.v1.DRAPlugin/NodeUnprepareResources";
  static constexpr std::string_view kAdvertisedAs = "v1.DRAPlugin";
  using DRAPlugin = dra_v1::DRAPlugin;
  using Claim = dra_v1::Claim;
  using Device = dra_v1::Device;
  using NodePrepareResourcesRequest = dra_v1::NodePrepareResourcesRequest;
  using NodePrepareResourcesResponse = dra_v1::NodePrepareResourcesResponse;
  using NodePrepareResourceResponse = dra_v1::NodePrepareResourceResponse;
  using NodeUnprepareResourcesRequest = dra_v1::NodeUnprepareResourcesRequest;
  using NodeUnprepareResourcesResponse = dra_v1::NodeUnprepareResourcesResponse;
  using NodeUnprepareResourceResponse = dra_v1::NodeUnprepareResourceResponse;
};

struct DraV1beta1 {
  static constexpr std::string_view kVersion = "v1beta1";
  static constexpr std::string_view kServiceFullName =
      "k8s.io.kubelet.pkg.apis.dra.v1beta1.DRAPlugin";
  static constexpr std::string_view kPreparePath =
      "/k8s.io.kubelet.pkg.apis.dra.v1beta1.DRAPlugin/NodePrepareResources";
  static constexpr std::string_view kUnpreparePath =
      "/k8s.io.kubelet.pkg.apis.dra.v1beta1.DRAPlugin/NodeUnprepareResources";
  static constexpr std::string_view kAdvertisedAs = "v1beta1.DRAPlugin";
  using DRAPlugin = dra_v1beta1::DRAPlugin;
  using Claim = dra_v1beta1::Claim;
  using Device = dra_v1beta1::Device;
  using NodePrepareResourcesRequest = dra_v1beta1::NodePrepareResourcesRequest;
  using NodePrepareResourcesResponse = dra_v1beta1::NodePrepareResourcesResponse;
  using NodePrepareResourceResponse = dra_v1beta1::NodePrepareResourceResponse;
  using NodeUnprepareResourcesRequest = dra_v1beta1::NodeUnprepareResourcesRequest;
  using NodeUnprepareResourcesResponse = dra_v1beta1::NodeUnprepareResourcesResponse;
  using NodeUnprepareResourceResponse = dra_v1beta1::NodeUnprepareResourceResponse;
};

// Names the typed-test instantiations ".../v1", ".../v1beta1" instead of ".../0", ".../1".
class VersionName {
 public:
  template <typename T>
  static std::string GetName(int /*index*/) {
    return std::string(T::kVersion);
  }
};

// Claim{namespace "default", uid "0f3c", name "gpu-claim"}:
//   namespace = 1, string: 0x0a, "default" 7 bytes
//   uid = 2, string:       0x12, "0f3c" 4 bytes
//   name = 3, string:      0x1a, "gpu-claim" 9 bytes
// 9 + 6 + 11 = 26 = 0x1a bytes in all.
const std::string& ClaimBytes() {
  static const std::string* const kBytes =
      new std::string(Bytes({0x0a, 0x07}) + "default" + Bytes({0x12, 0x04}) + "0f3c" +
                      Bytes({0x1a, 0x09}) + "gpu-claim");
  return *kBytes;
}

template <typename Version>
typename Version::Claim MakeClaim() {
  typename Version::Claim claim;
  claim.set_namespace_("default");
  claim.set_uid("0f3c");
  claim.set_name("gpu-claim");
  return claim;
}

// Device{request_names ["gpu", "mig"], pool_name "node-a", device_name "gpu-0",
//        cdi_device_ids ["tessera.dev/gpu=g0"]}, fields 1-4 (the same in both versions):
//   request_names = 1, repeated string: 0x0a per element, "gpu" and "mig" 3 bytes each
//   pool_name = 2, string:              0x12, "node-a" 6 bytes
//   device_name = 3, string:            0x1a, "gpu-0" 5 bytes
//   cdi_device_ids = 4, repeated string: (4 << 3) | 2 = 0x22, "tessera.dev/gpu=g0" 18 = 0x12
const std::string& DeviceBytesWithoutShareId() {
  static const std::string* const kBytes = new std::string(
      Bytes({0x0a, 0x03}) + "gpu" + Bytes({0x0a, 0x03}) + "mig" + Bytes({0x12, 0x06}) + "node-a" +
      Bytes({0x1a, 0x05}) + "gpu-0" + Bytes({0x22, 0x12}) + "tessera.dev/gpu=g0");
  return *kBytes;
}

template <typename Device>
Device MakeDevice() {
  Device device;
  device.add_request_names("gpu");
  device.add_request_names("mig");
  device.set_pool_name("node-a");
  device.set_device_name("gpu-0");
  device.add_cdi_device_ids("tessera.dev/gpu=g0");
  return device;
}

template <typename Version>
class DraNodeServiceWireTest : public ::testing::Test {};

using DraVersions = ::testing::Types<DraV1, DraV1beta1>;
TYPED_TEST_SUITE(DraNodeServiceWireTest, DraVersions, VersionName);

TYPED_TEST(DraNodeServiceWireTest, ClaimEncodesNamespaceUidAndNameAsFields1To3) {
  EXPECT_TRUE(EncodesTo(MakeClaim<TypeParam>(), ClaimBytes()));
}

TYPED_TEST(DraNodeServiceWireTest, DeviceEncodesRequestNamesPoolDeviceAndCdiIdsAsFields1To4) {
  EXPECT_TRUE(EncodesTo(MakeDevice<typename TypeParam::Device>(), DeviceBytesWithoutShareId()));
}

TYPED_TEST(DraNodeServiceWireTest, PrepareRequestEncodesClaimsAsRepeatedField1) {
  // claims = 1, repeated Claim: each element an embedded message, tag (1 << 3) | 2 = 0x0a,
  // length 26 = 0x1a (ClaimBytes); two identical claims here.
  typename TypeParam::NodePrepareResourcesRequest request;
  *request.add_claims() = MakeClaim<TypeParam>();
  *request.add_claims() = MakeClaim<TypeParam>();
  EXPECT_TRUE(
      EncodesTo(request, Bytes({0x0a, 0x1a}) + ClaimBytes() + Bytes({0x0a, 0x1a}) + ClaimBytes()));
}

TYPED_TEST(DraNodeServiceWireTest, UnprepareRequestEncodesClaimsAsRepeatedField1) {
  // Same layout as the prepare request: claims = 1 (0x0a), one Claim of 26 = 0x1a bytes.
  typename TypeParam::NodeUnprepareResourcesRequest request;
  *request.add_claims() = MakeClaim<TypeParam>();
  EXPECT_TRUE(EncodesTo(request, Bytes({0x0a, 0x1a}) + ClaimBytes()));
}

TYPED_TEST(DraNodeServiceWireTest, PrepareResourceResponseEncodesDevicesAsRepeatedField1) {
  typename TypeParam::NodePrepareResourceResponse response;
  auto* device = response.add_devices();
  device->set_pool_name("p");
  device->set_device_name("d");
  // devices = 1, repeated Device: tag 0x0a, then the Device
  //   pool_name (2): 0x12 0x01 "p", device_name (3): 0x1a 0x01 "d" = 6 bytes.
  EXPECT_TRUE(
      EncodesTo(response, Bytes({0x0a, 0x06, 0x12, 0x01}) + "p" + Bytes({0x1a, 0x01}) + "d"));
}

TYPED_TEST(DraNodeServiceWireTest, PrepareResourceResponseEncodesErrorAsField2) {
  typename TypeParam::NodePrepareResourceResponse response;
  response.set_error("boom");
  // error = 2, string: tag (2 << 3) | 2 = 0x12; "boom" is 4 bytes.
  EXPECT_TRUE(EncodesTo(response, Bytes({0x12, 0x04}) + "boom"));
}

TYPED_TEST(DraNodeServiceWireTest, PrepareResponseEncodesClaimsMapEntryKeyedByUid) {
  typename TypeParam::NodePrepareResourcesResponse response;
  auto* device = (*response.mutable_claims())["uid-1"].add_devices();
  device->set_pool_name("p");
  device->set_device_name("d");
  // A map<string, V> field is a repeated embedded "entry" message with key = 1, value = 2.
  //   claims = 1: tag 0x0a, entry length 17 = 0x11:
  //     key = 1, string:  0x0a 0x05 "uid-1"                          (7 bytes)
  //     value = 2, message: 0x12 0x08, then NodePrepareResourceResponse (10 bytes)
  //       devices = 1: 0x0a 0x06, Device{0x12 0x01 "p", 0x1a 0x01 "d"}
  EXPECT_TRUE(EncodesTo(response, Bytes({0x0a, 0x11, 0x0a, 0x05}) + "uid-1" +
                                      Bytes({0x12, 0x08, 0x0a, 0x06, 0x12, 0x01}) + "p" +
                                      Bytes({0x1a, 0x01}) + "d"));
}

TYPED_TEST(DraNodeServiceWireTest, PrepareResponseEntryWithoutValueDecodesAsNoDevices) {
  // A map entry carrying only its key (0x0a 0x05 "uid-1", 7 bytes) inside claims = 1 (0x0a):
  // the value is an empty NodePrepareResourceResponse, i.e. "prepared, no devices".
  typename TypeParam::NodePrepareResourcesResponse response;
  ASSERT_TRUE(response.ParseFromString(Bytes({0x0a, 0x07, 0x0a, 0x05}) + "uid-1"));
  ASSERT_EQ(response.claims().size(), 1u);
  ASSERT_EQ(response.claims().count("uid-1"), 1u);
  EXPECT_EQ(response.claims().at("uid-1").devices_size(), 0);
  EXPECT_EQ(response.claims().at("uid-1").error(), "");
}

TYPED_TEST(DraNodeServiceWireTest, UnprepareResourceResponseEncodesErrorAsField1) {
  typename TypeParam::NodeUnprepareResourceResponse response;
  response.set_error("boom");
  // error = 1, string: tag (1 << 3) | 2 = 0x0a; "boom" is 4 bytes.
  EXPECT_TRUE(EncodesTo(response, Bytes({0x0a, 0x04}) + "boom"));
}

TYPED_TEST(DraNodeServiceWireTest, UnprepareResponseEncodesClaimsMapEntryKeyedByUid) {
  typename TypeParam::NodeUnprepareResourcesResponse response;
  (*response.mutable_claims())["uid-1"].set_error("gone");
  // claims = 1: tag 0x0a, entry length 15 = 0x0f:
  //   key = 1:   0x0a 0x05 "uid-1"                                     (7 bytes)
  //   value = 2: 0x12 0x06, NodeUnprepareResourceResponse{0x0a 0x04 "gone"} (8 bytes)
  EXPECT_TRUE(EncodesTo(response, Bytes({0x0a, 0x0f, 0x0a, 0x05}) + "uid-1" +
                                      Bytes({0x12, 0x06, 0x0a, 0x04}) + "gone"));
}

TYPED_TEST(DraNodeServiceWireTest, ServiceHasTheKubeletsFullName) {
  using DRAPlugin = typename TypeParam::DRAPlugin;
  EXPECT_EQ(std::string_view(DRAPlugin::service_full_name()), TypeParam::kServiceFullName);
  const ServiceDescriptor* service = GeneratedService(DRAPlugin::service_full_name());
  ASSERT_NE(service, nullptr);
  EXPECT_EQ(service->file(), TypeParam::Claim::descriptor()->file());
  EXPECT_EQ(service->method_count(), 2);
  EXPECT_EQ(AdvertisedName(*service), TypeParam::kAdvertisedAs);
}

TYPED_TEST(DraNodeServiceWireTest, NodePrepareResourcesIsUnaryAtTheKubeletsPath) {
  const ServiceDescriptor* service = GeneratedService(TypeParam::DRAPlugin::service_full_name());
  ASSERT_NE(service, nullptr);
  const MethodDescriptor* method = service->FindMethodByName("NodePrepareResources");
  ASSERT_NE(method, nullptr);
  EXPECT_EQ(GrpcPath(*method), TypeParam::kPreparePath);
  EXPECT_EQ(method->input_type(), TypeParam::NodePrepareResourcesRequest::descriptor());
  EXPECT_EQ(method->output_type(), TypeParam::NodePrepareResourcesResponse::descriptor());
  EXPECT_FALSE(method->client_streaming());
  EXPECT_FALSE(method->server_streaming());
}

TYPED_TEST(DraNodeServiceWireTest, NodeUnprepareResourcesIsUnaryAtTheKubeletsPath) {
  const ServiceDescriptor* service = GeneratedService(TypeParam::DRAPlugin::service_full_name());
  ASSERT_NE(service, nullptr);
  const MethodDescriptor* method = service->FindMethodByName("NodeUnprepareResources");
  ASSERT_NE(method, nullptr);
  EXPECT_EQ(GrpcPath(*method), TypeParam::kUnpreparePath);
  EXPECT_EQ(method->input_type(), TypeParam::NodeUnprepareResourcesRequest::descriptor());
  EXPECT_EQ(method->output_type(), TypeParam::NodeUnprepareResourcesResponse::descriptor());
  EXPECT_FALSE(method->client_streaming());
  EXPECT_FALSE(method->server_streaming());
}

// Device.share_id (field 5) exists only in v1.

TEST(DraV1WireTest, DeviceEncodesShareIdAsOptionalStringField5) {
  dra_v1::Device device = MakeDevice<dra_v1::Device>();
  device.set_share_id("s1");
  // share_id = 5, string: tag (5 << 3) | 2 = 0x2a; "s1" is 2 bytes; after fields 1-4.
  EXPECT_TRUE(EncodesTo(device, DeviceBytesWithoutShareId() + Bytes({0x2a, 0x02}) + "s1"));
}

TEST(DraV1WireTest, DeviceOmitsUnsetShareId) {
  dra_v1::Device device = MakeDevice<dra_v1::Device>();
  EXPECT_FALSE(device.has_share_id());
  EXPECT_TRUE(EncodesTo(device, DeviceBytesWithoutShareId()));
}

TEST(DraV1WireTest, DeviceEncodesShareIdSetToEmptyBecauseItIsOptional) {
  dra_v1::Device device;
  device.set_share_id("");
  // proto3 `optional` tracks presence: an explicitly empty share_id still travels as
  // tag 0x2a with length 0 (a plain proto3 string would be omitted).
  EXPECT_TRUE(EncodesTo(device, Bytes({0x2a, 0x00})));

  dra_v1::Device decoded;
  ASSERT_TRUE(decoded.ParseFromString(Bytes({0x2a, 0x00})));
  EXPECT_TRUE(decoded.has_share_id());
  EXPECT_EQ(decoded.share_id(), "");
}

TEST(DraV1beta1WireTest, DeviceHasNoShareIdField) {
  EXPECT_EQ(dra_v1beta1::Device::descriptor()->FindFieldByNumber(5), nullptr);
  EXPECT_EQ(dra_v1beta1::Device::descriptor()->field_count(), 4);
  EXPECT_EQ(dra_v1::Device::descriptor()->field_count(), 5);
}

TEST(DraCrossVersionTest, V1DeviceDecodesAsV1beta1DeviceIgnoringShareId) {
  dra_v1::Device v1_device = MakeDevice<dra_v1::Device>();
  v1_device.set_share_id("s1");

  dra_v1beta1::Device v1beta1_device;
  ASSERT_TRUE(v1beta1_device.ParseFromString(v1_device.SerializeAsString()));
  // Fields 1-4 are understood; field 5 is merely an unknown field to v1beta1.
  v1beta1_device.DiscardUnknownFields();
  EXPECT_TRUE(EncodesTo(v1beta1_device, DeviceBytesWithoutShareId()));
}

TEST(DraCrossVersionTest, V1beta1DeviceDecodesAsV1DeviceWithoutShareId) {
  dra_v1::Device v1_device;
  ASSERT_TRUE(v1_device.ParseFromString(DeviceBytesWithoutShareId()));
  EXPECT_FALSE(v1_device.has_share_id());
  EXPECT_TRUE(EncodesTo(v1_device, DeviceBytesWithoutShareId()));
}

TEST(DraCrossVersionTest, V1PrepareResponseDecodesAsV1beta1PrepareResponse) {
  dra_v1::NodePrepareResourcesResponse v1_response;
  dra_v1::Device* device = (*v1_response.mutable_claims())["uid-1"].add_devices();
  *device = MakeDevice<dra_v1::Device>();
  device->set_share_id("s1");

  dra_v1beta1::NodePrepareResourcesResponse v1beta1_response;
  ASSERT_TRUE(v1beta1_response.ParseFromString(v1_response.SerializeAsString()));
  ASSERT_EQ(v1beta1_response.claims().count("uid-1"), 1u);
  const dra_v1beta1::NodePrepareResourceResponse& entry = v1beta1_response.claims().at("uid-1");
  ASSERT_EQ(entry.devices_size(), 1);
  EXPECT_EQ(entry.devices(0).pool_name(), "node-a");
  EXPECT_EQ(entry.devices(0).device_name(), "gpu-0");
  EXPECT_EQ(entry.devices(0).cdi_device_ids_size(), 1);
  EXPECT_EQ(entry.devices(0).request_names_size(), 2);
}

// ------------------------------------------------------------------------------------------
// Section 3: device health service, packages v1alpha1 and v1 (same messages and numbering).

struct HealthV1alpha1 {
  static constexpr std::string_view kVersion = "v1alpha1";
  static constexpr std::string_view kServiceFullName = "v1alpha1.DRAResourceHealth";
  static constexpr std::string_view kWatchPath = "/v1alpha1.DRAResourceHealth/NodeWatchResources";
  static constexpr std::string_view kAdvertisedAs = "v1alpha1.DRAResourceHealth";
  using DRAResourceHealth = health_v1alpha1::DRAResourceHealth;
  using HealthStatus = health_v1alpha1::HealthStatus;
  static constexpr HealthStatus kUnknown = health_v1alpha1::UNKNOWN;
  static constexpr HealthStatus kHealthy = health_v1alpha1::HEALTHY;
  static constexpr HealthStatus kUnhealthy = health_v1alpha1::UNHEALTHY;
  using DeviceIdentifier = health_v1alpha1::DeviceIdentifier;
  using DeviceHealth = health_v1alpha1::DeviceHealth;
  using NodeWatchResourcesRequest = health_v1alpha1::NodeWatchResourcesRequest;
  using NodeWatchResourcesResponse = health_v1alpha1::NodeWatchResourcesResponse;
};

struct HealthV1 {
  static constexpr std::string_view kVersion = "v1";
  static constexpr std::string_view kServiceFullName = "v1.DRAResourceHealth";
  static constexpr std::string_view kWatchPath = "/v1.DRAResourceHealth/NodeWatchResources";
  static constexpr std::string_view kAdvertisedAs = "v1.DRAResourceHealth";
  using DRAResourceHealth = health_v1::DRAResourceHealth;
  using HealthStatus = health_v1::HealthStatus;
  static constexpr HealthStatus kUnknown = health_v1::UNKNOWN;
  static constexpr HealthStatus kHealthy = health_v1::HEALTHY;
  static constexpr HealthStatus kUnhealthy = health_v1::UNHEALTHY;
  using DeviceIdentifier = health_v1::DeviceIdentifier;
  using DeviceHealth = health_v1::DeviceHealth;
  using NodeWatchResourcesRequest = health_v1::NodeWatchResourcesRequest;
  using NodeWatchResourcesResponse = health_v1::NodeWatchResourcesResponse;
};

// The C++ types of the varint fields pin signedness and width (int64, not uint64 or int32).
static_assert(
    std::is_same_v<decltype(std::declval<health_v1::DeviceHealth>().last_updated_time()), int64_t>);
static_assert(
    std::is_same_v<decltype(std::declval<health_v1::DeviceHealth>().health_check_timeout_seconds()),
                   int64_t>);
static_assert(
    std::is_same_v<decltype(std::declval<health_v1alpha1::DeviceHealth>().last_updated_time()),
                   int64_t>);
static_assert(std::is_same_v<decltype(std::declval<health_v1alpha1::DeviceHealth>()
                                          .health_check_timeout_seconds()),
                             int64_t>);

// DeviceIdentifier{pool_name "node-a", device_name "gpu-0"}:
//   pool_name = 1, string:   0x0a, "node-a" 6 bytes
//   device_name = 2, string: 0x12, "gpu-0" 5 bytes
// 8 + 7 = 15 = 0x0f bytes in all.
const std::string& DeviceIdentifierBytes() {
  static const std::string* const kBytes =
      new std::string(Bytes({0x0a, 0x06}) + "node-a" + Bytes({0x12, 0x05}) + "gpu-0");
  return *kBytes;
}

template <typename Version>
typename Version::DeviceIdentifier MakeDeviceIdentifier() {
  typename Version::DeviceIdentifier identifier;
  identifier.set_pool_name("node-a");
  identifier.set_device_name("gpu-0");
  return identifier;
}

template <typename Version>
class DeviceHealthWireTest : public ::testing::Test {};

using HealthVersions = ::testing::Types<HealthV1alpha1, HealthV1>;
TYPED_TEST_SUITE(DeviceHealthWireTest, HealthVersions, VersionName);

TYPED_TEST(DeviceHealthWireTest, HealthStatusValuesAreUnknown0Healthy1Unhealthy2) {
  EXPECT_EQ(static_cast<int>(TypeParam::kUnknown), 0);
  EXPECT_EQ(static_cast<int>(TypeParam::kHealthy), 1);
  EXPECT_EQ(static_cast<int>(TypeParam::kUnhealthy), 2);
  const auto* descriptor =
      ::google::protobuf::GetEnumDescriptor<typename TypeParam::HealthStatus>();
  EXPECT_EQ(descriptor->value_count(), 3);
  const std::pair<int, std::string_view> kValues[] = {
      {0, "UNKNOWN"}, {1, "HEALTHY"}, {2, "UNHEALTHY"}};
  for (const auto& [number, name] : kValues) {
    const auto* value = descriptor->FindValueByNumber(number);
    ASSERT_NE(value, nullptr) << "no HealthStatus value numbered " << number;
    EXPECT_EQ(value->name(), name);
  }
}

TYPED_TEST(DeviceHealthWireTest, DeviceIdentifierEncodesPoolNameAsField1DeviceNameAsField2) {
  EXPECT_TRUE(EncodesTo(MakeDeviceIdentifier<TypeParam>(), DeviceIdentifierBytes()));
}

TYPED_TEST(DeviceHealthWireTest, DeviceHealthEncodesDeviceAsEmbeddedMessageField1) {
  typename TypeParam::DeviceHealth health;
  *health.mutable_device() = MakeDeviceIdentifier<TypeParam>();
  // device = 1, message: tag (1 << 3) | 2 = 0x0a, length 15 = 0x0f (DeviceIdentifierBytes).
  EXPECT_TRUE(EncodesTo(health, Bytes({0x0a, 0x0f}) + DeviceIdentifierBytes()));
}

TYPED_TEST(DeviceHealthWireTest, DeviceHealthEncodesHealthAsEnumVarintField2) {
  typename TypeParam::DeviceHealth health;
  // health = 2, enum (varint): tag (2 << 3) | 0 = 0x10, then the enum number.
  health.set_health(TypeParam::kHealthy);
  EXPECT_TRUE(EncodesTo(health, Bytes({0x10, 0x01})));
  health.set_health(TypeParam::kUnhealthy);
  EXPECT_TRUE(EncodesTo(health, Bytes({0x10, 0x02})));
  // UNKNOWN = 0 is the proto3 default and is not sent.
  health.set_health(TypeParam::kUnknown);
  EXPECT_TRUE(EncodesTo(health, ""));
}

TYPED_TEST(DeviceHealthWireTest, DeviceHealthEncodesLastUpdatedTimeAsInt64VarintField3) {
  typename TypeParam::DeviceHealth health;
  health.set_last_updated_time(1767225600);  // 2026-01-01T00:00:00Z
  // last_updated_time = 3, int64 (varint): tag (3 << 3) | 0 = 0x18.
  // 1767225600 = 0x6955b900; 7-bit groups, least significant first:
  //   0x00, 0x72, 0x56, 0x4a, 0x06 -> with continuation bits 0x80 0xf2 0xd6 0xca 0x06.
  EXPECT_TRUE(EncodesTo(health, Bytes({0x18, 0x80, 0xf2, 0xd6, 0xca, 0x06})));
}

TYPED_TEST(DeviceHealthWireTest, DeviceHealthEncodesTimeoutAsInt64VarintField4) {
  typename TypeParam::DeviceHealth health;
  // health_check_timeout_seconds = 4, int64 (varint): tag (4 << 3) | 0 = 0x20.
  health.set_health_check_timeout_seconds(60);
  EXPECT_TRUE(EncodesTo(health, Bytes({0x20, 0x3c})));
  // A negative int64 is its 64-bit two's complement in ten varint bytes (sint64 would be
  // ZigZag-encoded as the single byte 0x01): 0xff x 9, then 0x01.
  health.set_health_check_timeout_seconds(-1);
  EXPECT_TRUE(
      EncodesTo(health, Bytes({0x20, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})));
}

TYPED_TEST(DeviceHealthWireTest, DeviceHealthEncodesMessageAsStringField5) {
  typename TypeParam::DeviceHealth health;
  health.set_message("Xid 79");
  // message = 5, string: tag (5 << 3) | 2 = 0x2a; "Xid 79" is 6 bytes.
  EXPECT_TRUE(EncodesTo(health, Bytes({0x2a, 0x06}) + "Xid 79"));
}

TYPED_TEST(DeviceHealthWireTest, DeviceHealthEncodesAllFieldsInFieldNumberOrder) {
  typename TypeParam::DeviceHealth health;
  health.set_message("Xid 79");
  health.set_health_check_timeout_seconds(60);
  health.set_last_updated_time(1767225600);
  health.set_health(TypeParam::kUnhealthy);
  *health.mutable_device() = MakeDeviceIdentifier<TypeParam>();
  // 0x0a 0x0f DeviceIdentifier (1), 0x10 0x02 UNHEALTHY (2), 0x18 + varint 1767225600 (3),
  // 0x20 0x3c = 60 (4), 0x2a 0x06 "Xid 79" (5).
  EXPECT_TRUE(EncodesTo(
      health, Bytes({0x0a, 0x0f}) + DeviceIdentifierBytes() +
                  Bytes({0x10, 0x02, 0x18, 0x80, 0xf2, 0xd6, 0xca, 0x06, 0x20, 0x3c, 0x2a, 0x06}) +
                  "Xid 79"));
}

TYPED_TEST(DeviceHealthWireTest, WatchResponseEncodesDevicesAsRepeatedField1) {
  typename TypeParam::NodeWatchResourcesResponse response;
  for (const char* name : {"a", "b"}) {
    auto* health = response.add_devices();
    health->mutable_device()->set_pool_name("p");
    health->mutable_device()->set_device_name(name);
    health->set_health(TypeParam::kHealthy);
  }
  // devices = 1, repeated DeviceHealth: tag 0x0a per element, each 10 = 0x0a bytes:
  //   device (1): 0x0a 0x06, DeviceIdentifier{0x0a 0x01 "p", 0x12 0x01 name} (8 bytes)
  //   health (2): 0x10 0x01 HEALTHY                                         (2 bytes)
  EXPECT_TRUE(EncodesTo(response, Bytes({0x0a, 0x0a, 0x0a, 0x06, 0x0a, 0x01}) + "p" +
                                      Bytes({0x12, 0x01}) + "a" + Bytes({0x10, 0x01}) +
                                      Bytes({0x0a, 0x0a, 0x0a, 0x06, 0x0a, 0x01}) + "p" +
                                      Bytes({0x12, 0x01}) + "b" + Bytes({0x10, 0x01})));
}

TYPED_TEST(DeviceHealthWireTest, WatchRequestIsEmpty) {
  EXPECT_EQ(TypeParam::NodeWatchResourcesRequest::descriptor()->field_count(), 0);
  EXPECT_TRUE(EncodesTo(typename TypeParam::NodeWatchResourcesRequest(), ""));
}

TYPED_TEST(DeviceHealthWireTest, ServiceHasTheKubeletsFullName) {
  using DRAResourceHealth = typename TypeParam::DRAResourceHealth;
  EXPECT_EQ(std::string_view(DRAResourceHealth::service_full_name()), TypeParam::kServiceFullName);
  const ServiceDescriptor* service = GeneratedService(DRAResourceHealth::service_full_name());
  ASSERT_NE(service, nullptr);
  EXPECT_EQ(service->file(), TypeParam::DeviceHealth::descriptor()->file());
  EXPECT_EQ(service->method_count(), 1);
  EXPECT_EQ(AdvertisedName(*service), TypeParam::kAdvertisedAs);
}

TYPED_TEST(DeviceHealthWireTest, NodeWatchResourcesIsServerStreamingAtTheKubeletsPath) {
  const ServiceDescriptor* service =
      GeneratedService(TypeParam::DRAResourceHealth::service_full_name());
  ASSERT_NE(service, nullptr);
  const MethodDescriptor* method = service->FindMethodByName("NodeWatchResources");
  ASSERT_NE(method, nullptr);
  EXPECT_EQ(GrpcPath(*method), TypeParam::kWatchPath);
  EXPECT_EQ(method->input_type(), TypeParam::NodeWatchResourcesRequest::descriptor());
  EXPECT_EQ(method->output_type(), TypeParam::NodeWatchResourcesResponse::descriptor());
  EXPECT_FALSE(method->client_streaming());
  EXPECT_TRUE(method->server_streaming());
}

}  // namespace
}  // namespace tessera
