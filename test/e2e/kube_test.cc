// The Kubernetes client against the real API server of the test environment: CRUD of a
// ResourceSlice with strict field validation, server-side apply ownership, conflicts resolved by
// retry, guarded deletes, discovery, a watch and an informer that survive an API server restart,
// an expired resource version, and leader election between two candidates, one of which dies.

#include <atomic>
#include <chrono>
#include <set>
#include <string>
#include <thread>

#include "framework/cluster.h"
#include "framework/objects.h"
#include "gtest/gtest.h"
#include "tessera/kube/client.h"
#include "tessera/kube/discovery.h"
#include "tessera/kube/errors.h"
#include "tessera/kube/informer.h"
#include "tessera/kube/leader.h"

namespace tessera::e2e {
namespace {

using kube::Client;
namespace resources = kube::resources;

bool Until(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  return Eventually(
             [&] { return condition() ? absl::OkStatus() : absl::UnavailableError("not yet"); },
             timeout, std::chrono::milliseconds(50))
      .ok();
}

class KubeTest : public E2ETest {
 protected:
  void SetUp() override {
    E2ETest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    absl::StatusOr<kube::Config> config = kube::LoadKubeconfig(cluster().kubeconfig());
    ASSERT_TRUE(config.ok()) << config.status();
    client_ =
        std::make_unique<Client>(*config, kube::ClientOptions{.user_agent = "tessera-e2e/kube"});
    driver_ = Unique("kube") + ".e2e.tessera.dev";
  }
  Json SliceWith(const std::string& name, const std::string& label = "") {
    Json s = Slice(name, driver_, "n0");
    if (!label.empty()) s["metadata"]["labels"]["e2e.tessera.dev/test"] = label;
    s["spec"]["devices"] = {Device("gpu-0", {{"type", "gpu"}})};
    return s;
  }
  std::unique_ptr<Client> client_;
  std::string driver_;
};

TEST_F(KubeTest, ResourceSliceCrudWithStrictValidation) {
  const std::string name = Unique("crud");
  const kube::WriteOptions strict{.strict_field_validation = true};
  absl::StatusOr<Json> created =
      client_->Create(resources::kResourceSlices, "", SliceWith(name), strict);
  ASSERT_TRUE(created.ok()) << created.status();
  DeleteAtEnd("resourceslice", name);
  EXPECT_FALSE((*created)["metadata"]["uid"].get<std::string>().empty());

  absl::StatusOr<Json> got = client_->Get(resources::kResourceSlices, "", name);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ((*got)["spec"]["devices"][0]["name"], "gpu-0");

  Json changed = *got;
  changed["spec"]["devices"][0]["attributes"]["model"]["string"] = "h100-80gb";
  absl::StatusOr<Json> updated = client_->Update(resources::kResourceSlices, "", changed, strict);
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_NE((*updated)["metadata"]["resourceVersion"], (*got)["metadata"]["resourceVersion"]);

  // Strict validation turns an unknown field into an error instead of dropping it.
  Json typo = SliceWith(Unique("typo"));
  typo["spec"]["devices"][0]["atributes"] = Json::object();
  absl::StatusOr<Json> refused = client_->Create(resources::kResourceSlices, "", typo, strict);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument) << refused.status();
  EXPECT_NE(refused.status().message().find("atributes"), std::string::npos) << refused.status();
  // Invalid content is a 422 with the field named.
  Json invalid = SliceWith(Unique("invalid"));
  invalid["spec"]["devices"][0]["name"] = "GPU_0";
  refused = client_->Create(resources::kResourceSlices, "", invalid, strict);
  EXPECT_TRUE(kube::IsInvalidError(refused.status())) << refused.status();
  EXPECT_NE(refused.status().message().find("spec.devices[0].name"), std::string::npos)
      << refused.status();

  // Guarded delete: a wrong UID is refused, the right one deletes.
  absl::Status wrong =
      client_->Delete(resources::kResourceSlices, "", name, {.uid = "not-the-uid"});
  EXPECT_TRUE(kube::IsConflictError(wrong)) << wrong;
  ASSERT_TRUE(
      client_->Delete(resources::kResourceSlices, "", name, {.uid = (*created)["metadata"]["uid"]})
          .ok());
  EXPECT_TRUE(kube::IsNotFoundError(client_->Get(resources::kResourceSlices, "", name).status()));
  EXPECT_TRUE(kube::IsNotFoundError(client_->Delete(resources::kResourceSlices, "", name)));
}

TEST_F(KubeTest, ServerSideApplyOwnsFieldsPerManager) {
  const std::string name = Unique("ssa");
  Json slice = SliceWith(name);
  absl::StatusOr<Json> a = client_->Apply(resources::kResourceSlices, "", slice, "tessera-a", false,
                                          "", {.strict_field_validation = true});
  ASSERT_TRUE(a.ok()) << a.status();
  DeleteAtEnd("resourceslice", name);
  std::set<std::string> managers;
  for (const Json& m : (*a)["metadata"]["managedFields"]) managers.insert(m["manager"]);
  EXPECT_EQ(managers, (std::set<std::string>{"tessera-a"}));

  // Another manager changing a field tessera-a owns conflicts unless it forces.
  Json other = slice;
  other["spec"]["devices"][0]["attributes"]["type"]["string"] = "mig";
  absl::StatusOr<Json> b =
      client_->Apply(resources::kResourceSlices, "", other, "tessera-b", false);
  ASSERT_FALSE(b.ok());
  EXPECT_TRUE(kube::IsConflictError(b.status())) << b.status();
  EXPECT_NE(b.status().message().find("tessera-a"), std::string::npos) << b.status();
  b = client_->Apply(resources::kResourceSlices, "", other, "tessera-b", true);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ((*b)["spec"]["devices"][0]["attributes"]["type"]["string"], "mig");
  managers.clear();
  for (const Json& m : (*b)["metadata"]["managedFields"]) managers.insert(m["manager"]);
  EXPECT_TRUE(managers.count("tessera-b")) << (*b)["metadata"]["managedFields"].dump();
  // Applying the same object again changes nothing.
  absl::StatusOr<Json> again =
      client_->Apply(resources::kResourceSlices, "", other, "tessera-b", true);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)["metadata"]["resourceVersion"], (*b)["metadata"]["resourceVersion"]);
}

TEST_F(KubeTest, AConflictIsResolvedByRetrying) {
  const std::string name = Unique("conflict");
  absl::StatusOr<Json> created = client_->Create(resources::kResourceSlices, "", SliceWith(name));
  ASSERT_TRUE(created.ok()) << created.status();
  const std::string stored_name = (*created)["metadata"]["name"];
  DeleteAtEnd("resourceslice", stored_name);
  // A second writer gets in first: our PUT with the old resourceVersion is a 409.
  Json theirs = *created;
  theirs["spec"]["devices"][0]["attributes"]["owner"]["string"] = "them";
  ASSERT_TRUE(client_->Update(resources::kResourceSlices, "", theirs).ok());
  Json ours = *created;
  ours["spec"]["devices"][0]["attributes"]["mine"]["string"] = "us";
  absl::StatusOr<Json> stale = client_->Update(resources::kResourceSlices, "", ours);
  ASSERT_FALSE(stale.ok());
  EXPECT_TRUE(kube::IsConflictError(stale.status())) << stale.status();
  // Modify re-reads and re-applies the change: both writes survive.
  absl::StatusOr<Json> merged = client_->Modify(
      resources::kResourceSlices, "", stored_name, [](Json& s) -> absl::StatusOr<bool> {
        s["spec"]["devices"][0]["attributes"]["mine"]["string"] = "us";
        return true;
      });
  ASSERT_TRUE(merged.ok()) << merged.status();
  EXPECT_EQ((*merged)["spec"]["devices"][0]["attributes"]["owner"]["string"], "them");
  EXPECT_EQ((*merged)["spec"]["devices"][0]["attributes"]["mine"]["string"], "us");
}

TEST_F(KubeTest, DiscoveryReportsTheVersionAndTheDraFields) {
  absl::StatusOr<kube::ServerVersion> v = kube::GetServerVersion(*client_);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->git_version, cluster().EnvValue("K8S_VERSION"));
  EXPECT_EQ(v->major, 1);
  EXPECT_GE(v->minor, 36);
  EXPECT_TRUE(kube::ServesResource(*client_, "resource.k8s.io/v1", "resourceslices").value());
  EXPECT_FALSE(kube::ServesResource(*client_, "resource.k8s.io/v1", "gpus").value());
  EXPECT_FALSE(kube::ServesResource(*client_, "nonexistent.tessera.dev/v1", "things").value());
  absl::StatusOr<kube::SliceFeatures> f = kube::ProbeSliceFeatures(*client_, driver_);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_TRUE(f->partitionable_devices);
  EXPECT_TRUE(f->consumable_capacity);
  EXPECT_TRUE(f->counters_in_own_slice);
  // The probe is a dry run: nothing was stored.
  absl::StatusOr<kube::ListResult> left =
      client_->List(resources::kResourceSlices, "", {.field_selector = "spec.driver=" + driver_});
  ASSERT_TRUE(left.ok());
  EXPECT_TRUE(left->items.empty());
}

// The informer keeps its cache right across an API server restart: the watch breaks and comes
// back, and what changed afterwards arrives. The restart also forces a 410: the new API server's
// watch cache starts at the current etcd revision, which the scheduler's and controller-manager's
// lease renewals (every 2 s) have moved past the informer's last version, so its re-watch is
// refused as too old and it must relist; a plain watch from a version before the restart gets the
// same answer.
TEST_F(KubeTest, InformerSurvivesAnApiServerRestart) {
  const std::string label = Unique("restart");
  kube::Informer informer(*client_, {.type = resources::kResourceSlices,
                                     .label_selector = "e2e.tessera.dev/test=" + label,
                                     .watch_timeout = std::chrono::seconds(60)});
  std::atomic<int> adds{0}, deletes{0};
  informer.AddHandlers({.on_add = [&](const Json&) { ++adds; },
                        .on_update = nullptr,
                        .on_delete = [&](const Json&) { ++deletes; }});
  informer.Start();
  ASSERT_TRUE(informer.WaitForSync(std::chrono::seconds(30)));
  absl::StatusOr<Json> first =
      client_->Create(resources::kResourceSlices, "", SliceWith(Unique("before"), label));
  ASSERT_TRUE(first.ok()) << first.status();
  const std::string first_name = (*first)["metadata"]["name"];
  DeleteAtEnd("resourceslice", first_name);
  ASSERT_TRUE(Until([&] { return informer.size() == 1; }, std::chrono::seconds(30)));
  const std::string before_restart = informer.resource_version();

  E2E_ASSERT_OK(cluster().RestartApiServer());

  std::optional<absl::Status> error_event;
  absl::Status st = client_->Watch(
      resources::kResourceSlices, "",
      {.resource_version = before_restart, .timeout = std::chrono::seconds(5)},
      [&](kube::WatchEvent&& e) {
        if (e.type == kube::EventType::kError) {
          error_event = kube::StatusFromApiStatus(e.object, "watch");
          return false;
        }
        return true;
      },
      nullptr);
  EXPECT_TRUE(kube::IsGoneError(st) || (error_event && kube::IsGoneError(*error_event)))
      << "watch from " << before_restart << ": " << st << " / "
      << (error_event ? error_event->ToString() : "no ERROR event");

  absl::StatusOr<Json> second =
      client_->Create(resources::kResourceSlices, "", SliceWith(Unique("after"), label));
  ASSERT_TRUE(second.ok()) << second.status();
  DeleteAtEnd("resourceslice", (*second)["metadata"]["name"]);
  ASSERT_TRUE(client_->Delete(resources::kResourceSlices, "", first_name).ok());
  ASSERT_TRUE(Until(
      [&] {
        return informer.size() == 1 && informer.Get((*second)["metadata"]["name"]).has_value();
      },
      std::chrono::seconds(60)))
      << "cache has " << informer.size() << " objects; " << informer.stats().last_error;
  // The cache equals a fresh list.
  absl::StatusOr<kube::ListResult> list = client_->List(
      resources::kResourceSlices, "", {.label_selector = "e2e.tessera.dev/test=" + label});
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->items.size(), 1u);
  EXPECT_EQ(informer.Get((*second)["metadata"]["name"]).value()["metadata"]["resourceVersion"],
            list->items[0]["metadata"]["resourceVersion"]);
  const kube::InformerStats stats = informer.stats();
  informer.Stop();
  EXPECT_GE(stats.watches, 2);
  EXPECT_GE(stats.expired, 1);
  EXPECT_EQ(stats.lists, stats.expired + 1);
  EXPECT_EQ(adds.load(), 2);
  EXPECT_EQ(deletes.load(), 1);
  std::printf("informer across restart: %d lists, %d watches, %d expired, %d errors\n", stats.lists,
              stats.watches, stats.expired, stats.errors);
}

TEST_F(KubeTest, LeaderElectionFailsOverWhenTheLeaderDies) {
  const std::string lease = Unique("lease");
  auto config_for = [&](const std::string& id, bool release) {
    return kube::LeaderElectionConfig{.ns = ns(),
                                      .name = lease,
                                      .identity = id,
                                      .lease_duration = std::chrono::milliseconds(3000),
                                      .renew_deadline = std::chrono::milliseconds(2000),
                                      .retry_period = std::chrono::milliseconds(300),
                                      .release_on_stop = release};
  };
  // "a" dies without releasing (as a killed process would); "b" must wait for the lease to expire.
  kube::LeaderElector a(*client_, config_for("a", false));
  kube::LeaderElector b(*client_, config_for("b", true));
  std::atomic<bool> stop_a{false}, stop_b{false};
  std::atomic<int> a_led{0}, b_led{0}, b_stopped{0};
  std::thread ta([&] {
    a.Run(
        &stop_a, [&] { ++a_led; }, nullptr);
  });
  ASSERT_TRUE(Until([&] { return a.IsLeader(); }, std::chrono::seconds(10)));
  std::thread tb([&] {
    b.Run(
        &stop_b, [&] { ++b_led; }, [&] { ++b_stopped; });
  });
  std::this_thread::sleep_for(
      std::chrono::seconds(4));  // longer than the lease: "a" keeps renewing
  EXPECT_TRUE(a.IsLeader());
  EXPECT_FALSE(b.IsLeader());

  const auto died = std::chrono::steady_clock::now();
  stop_a = true;
  ta.join();
  ASSERT_TRUE(Until([&] { return b.IsLeader(); }, std::chrono::seconds(15)));
  const double failover =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - died).count();
  EXPECT_GE(failover, 2.5);  // not before the lease ran out
  absl::StatusOr<Json> held = client_->Get(resources::kLeases, ns(), lease);
  ASSERT_TRUE(held.ok());
  EXPECT_EQ((*held)["spec"]["holderIdentity"], "b");
  EXPECT_EQ((*held)["spec"]["leaseTransitions"], 1);

  // "b" shuts down cleanly: it releases the lease.
  stop_b = true;
  tb.join();
  EXPECT_EQ(b_stopped.load(), 1);
  held = client_->Get(resources::kLeases, ns(), lease);
  ASSERT_TRUE(held.ok());
  EXPECT_EQ((*held)["spec"].value("holderIdentity", ""), "");
  EXPECT_EQ(a_led.load(), 1);
  EXPECT_EQ(b_led.load(), 1);
  std::printf("leader fail-over after the leader died: %.1f s (lease 3 s)\n", failover);
}

}  // namespace
}  // namespace tessera::e2e
