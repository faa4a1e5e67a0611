#ifndef TESSERA_TEST_INTEGRATION_PLUGIN_FAKE_KUBELET_H_
#define TESSERA_TEST_INTEGRATION_PLUGIN_FAKE_KUBELET_H_

// The kubelet's side of the plugin protocols, as a test client over real unix sockets: the
// registration handshake (GetInfo, pick the first node service it supports in the plugin's order,
// NotifyRegistrationStatus) and the DRA node service calls, in either version.

#include <grpcpp/grpcpp.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dra-health/v1alpha1/api.grpc.pb.h"
#include "dra/v1/api.grpc.pb.h"
#include "dra/v1beta1/api.grpc.pb.h"
#include "pluginregistration/v1/api.grpc.pb.h"

namespace tessera::testing {

namespace drav1 = k8s::io::kubelet::pkg::apis::dra::v1;
namespace drav1beta1 = k8s::io::kubelet::pkg::apis::dra::v1beta1;

struct KubeletClaim {
  std::string namespace_ = "default";
  std::string name;
  std::string uid;
};

// A device as the kubelet records it (either version).
struct KubeletDevice {
  std::vector<std::string> request_names;
  std::string pool;
  std::string device;
  std::vector<std::string> cdi_ids;
  std::optional<std::string> share_id;
  bool operator==(const KubeletDevice&) const = default;
};

struct ClaimReply {
  std::vector<KubeletDevice> devices;
  std::string error;
};

class FakeKubelet {
 public:
  // Which DRA service the kubelet would use, as its version choice does (the plugin's order).
  static std::string ChooseService(const std::vector<std::string>& supported) {
    for (const std::string& s : supported) {
      if (s == "v1.DRAPlugin" || s == "v1beta1.DRAPlugin") return s;
    }
    return "";
  }

  // The registration handshake. Returns the PluginInfo it received.
  grpc::Status Register(const std::string& registration_socket,
                        pluginregistration::PluginInfo* info, bool accept = true,
                        const std::string& error = "") {
    auto channel =
        grpc::CreateChannel("unix://" + registration_socket, grpc::InsecureChannelCredentials());
    auto stub = pluginregistration::Registration::NewStub(channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(1));
    pluginregistration::InfoRequest req;
    if (grpc::Status s = stub->GetInfo(&ctx, req, info); !s.ok()) return s;
    service_ =
        ChooseService({info->supported_versions().begin(), info->supported_versions().end()});
    endpoint_ = info->endpoint();
    grpc::ClientContext notify_ctx;
    notify_ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    pluginregistration::RegistrationStatus status;
    status.set_plugin_registered(accept && !service_.empty());
    status.set_error(accept ? "" : error);
    pluginregistration::RegistrationStatusResponse resp;
    return stub->NotifyRegistrationStatus(&notify_ctx, status, &resp);
  }

  void Connect(const std::string& endpoint, const std::string& service) {
    endpoint_ = endpoint;
    service_ = service;
  }
  const std::string& service() const { return service_; }

  grpc::Status Prepare(const std::vector<KubeletClaim>& claims,
                       std::map<std::string, ClaimReply>* out) {
    return service_ == "v1beta1.DRAPlugin" ? DoPrepare<V1beta1>(claims, out)
                                           : DoPrepare<V1>(claims, out);
  }
  grpc::Status Unprepare(const std::vector<KubeletClaim>& claims,
                         std::map<std::string, ClaimReply>* out) {
    return service_ == "v1beta1.DRAPlugin" ? DoUnprepare<V1beta1>(claims, out)
                                           : DoUnprepare<V1>(claims, out);
  }

  std::shared_ptr<grpc::Channel> channel() {
    if (!channel_) {
      channel_ = grpc::CreateChannel("unix://" + endpoint_, grpc::InsecureChannelCredentials());
    }
    return channel_;
  }

 private:
  // The generated types of each node-service version (identical messages; share_id only in v1).
  template <typename Service, typename PrepareReq, typename PrepareResp, typename UnprepareReq,
            typename UnprepareResp, bool kShareId>
  struct Api {
    using Stub = Service;
    using PrepareRequest = PrepareReq;
    using PrepareResponse = PrepareResp;
    using UnprepareRequest = UnprepareReq;
    using UnprepareResponse = UnprepareResp;
    static constexpr bool kHasShareId = kShareId;
  };
  using V1 =
      Api<drav1::DRAPlugin, drav1::NodePrepareResourcesRequest, drav1::NodePrepareResourcesResponse,
          drav1::NodeUnprepareResourcesRequest, drav1::NodeUnprepareResourcesResponse, true>;
  using V1beta1 =
      Api<drav1beta1::DRAPlugin, drav1beta1::NodePrepareResourcesRequest,
          drav1beta1::NodePrepareResourcesResponse, drav1beta1::NodeUnprepareResourcesRequest,
          drav1beta1::NodeUnprepareResourcesResponse, false>;

  template <typename Req>
  static Req RequestFor(const std::vector<KubeletClaim>& claims) {
    Req req;
    for (const KubeletClaim& c : claims) {
      auto* claim = req.add_claims();
      claim->set_namespace_(c.namespace_);
      claim->set_name(c.name);
      claim->set_uid(c.uid);
    }
    return req;
  }

  // The kubelet's per-call timeout.
  static void SetDeadline(grpc::ClientContext& ctx) {
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(45));
  }

  template <typename A>
  grpc::Status DoPrepare(const std::vector<KubeletClaim>& claims,
                         std::map<std::string, ClaimReply>* out) {
    out->clear();
    auto stub = A::Stub::NewStub(channel());
    grpc::ClientContext ctx;
    SetDeadline(ctx);
    typename A::PrepareResponse resp;
    grpc::Status s =
        stub->NodePrepareResources(&ctx, RequestFor<typename A::PrepareRequest>(claims), &resp);
    if (!s.ok()) return s;
    for (const auto& [uid, r] : resp.claims()) {
      ClaimReply reply;
      reply.error = r.error();
      for (const auto& d : r.devices()) {
        KubeletDevice kd{.request_names = {d.request_names().begin(), d.request_names().end()},
                         .pool = d.pool_name(),
                         .device = d.device_name(),
                         .cdi_ids = {d.cdi_device_ids().begin(), d.cdi_device_ids().end()},
                         .share_id = std::nullopt};
        if constexpr (A::kHasShareId) {
          if (d.has_share_id()) kd.share_id = d.share_id();
        }
        reply.devices.push_back(std::move(kd));
      }
      (*out)[uid] = std::move(reply);
    }
    return s;
  }

  template <typename A>
  grpc::Status DoUnprepare(const std::vector<KubeletClaim>& claims,
                           std::map<std::string, ClaimReply>* out) {
    out->clear();
    auto stub = A::Stub::NewStub(channel());
    grpc::ClientContext ctx;
    SetDeadline(ctx);
    typename A::UnprepareResponse resp;
    grpc::Status s =
        stub->NodeUnprepareResources(&ctx, RequestFor<typename A::UnprepareRequest>(claims), &resp);
    if (!s.ok()) return s;
    for (const auto& [uid, r] : resp.claims()) {
      (*out)[uid] = ClaimReply{.devices = {}, .error = r.error()};
    }
    return s;
  }

  std::string endpoint_;
  std::string service_;
  std::shared_ptr<grpc::Channel> channel_;
};

}  // namespace tessera::testing

#endif  // TESSERA_TEST_INTEGRATION_PLUGIN_FAKE_KUBELET_H_
