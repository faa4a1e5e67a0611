// The client against an in-process HTTP server: typed errors, retries with back-off and
// Retry-After, malformed JSON, token re-reads on 401, pagination, apply and delete shapes, and a
// watch whose events arrive split across chunks.

#include "tessera/kube/client.h"

#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>

#include "gtest/gtest.h"
#include "tessera/kube/errors.h"
#include "test_server.h"

namespace tessera::kube {
namespace {

using api::Json;

ClientOptions Fast() {
  ClientOptions o;
  o.initial_backoff = std::chrono::milliseconds(5);
  o.max_backoff = std::chrono::milliseconds(20);
  o.timeout = std::chrono::milliseconds(5000);
  return o;
}

TEST(ClientTest, ErrorsCarryTheServersStatus) {
  TestServer s;
  s.server().Get("/api/v1/nodes/gone", [](const httplib::Request&, httplib::Response& res) {
    res.status = 404;
    res.set_content(StatusBody(404, "NotFound", "nodes \\\"gone\\\" not found"),
                    "application/json");
  });
  s.server().Post("/apis/resource.k8s.io/v1/resourceslices", [](const httplib::Request&,
                                                                httplib::Response& res) {
    res.status = 422;
    res.set_content(
        R"({"kind":"Status","code":422,"reason":"Invalid","message":"ResourceSlice is invalid",)"
        R"("details":{"causes":[{"field":"spec.devices[0].name","message":"must be a DNS label"}]}})",
        "application/json");
  });
  s.Start();
  Client client(s.config(), Fast());
  absl::StatusOr<Json> node = client.Get(resources::kNodes, "", "gone");
  ASSERT_FALSE(node.ok());
  EXPECT_TRUE(IsNotFoundError(node.status()));
  EXPECT_EQ(node.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(node.status().message().find(
                "GET /api/v1/nodes/gone: 404 NotFound: nodes \"gone\" not found"),
            std::string::npos)
      << node.status();
  absl::StatusOr<Json> created =
      client.Create(resources::kResourceSlices, "", Json{{"kind", "ResourceSlice"}});
  ASSERT_FALSE(created.ok());
  EXPECT_TRUE(IsInvalidError(created.status()));
  EXPECT_NE(created.status().message().find("spec.devices[0].name: must be a DNS label"),
            std::string::npos);
  ASSERT_TRUE(ApiStatusOf(created.status()).has_value());
  EXPECT_EQ(ApiStatusOf(created.status())->reason, "Invalid");
}

TEST(ClientTest, RetriesServerErrorsWithBackoffAndHonoursRetryAfter) {
  TestServer s;
  std::atomic<int> calls{0};
  s.server().Get("/api/v1/nodes/flaky", [&](const httplib::Request&, httplib::Response& res) {
    const int n = ++calls;
    if (n == 1) {
      res.status = 503;
      res.set_content(StatusBody(503, "ServiceUnavailable", "etcd leader changed"),
                      "application/json");
    } else if (n == 2) {
      res.status = 429;
      res.set_header("Retry-After", "1");
      res.set_content(StatusBody(429, "TooManyRequests", "slow down"), "application/json");
    } else {
      res.set_content(R"({"kind":"Node","metadata":{"name":"flaky"}})", "application/json");
    }
  });
  s.Start();
  Client client(s.config(), Fast());
  const auto began = std::chrono::steady_clock::now();
  absl::StatusOr<Json> node = client.Get(resources::kNodes, "", "flaky");
  const auto took = std::chrono::steady_clock::now() - began;
  ASSERT_TRUE(node.ok()) << node.status();
  EXPECT_EQ((*node)["metadata"]["name"], "flaky");
  EXPECT_EQ(calls.load(), 3);
  EXPECT_GE(took, std::chrono::milliseconds(1000));  // Retry-After: 1
  EXPECT_LT(took, std::chrono::milliseconds(3000));
}

TEST(ClientTest, GivesUpAfterMaxAttemptsAndDoesNotRepeatAFailedCreate) {
  TestServer s;
  std::atomic<int> gets{0}, posts{0};
  s.server().Get("/api/v1/nodes/down", [&](const httplib::Request&, httplib::Response& res) {
    ++gets;
    res.status = 500;
    res.set_content("internal error", "text/plain");
  });
  s.server().Post("/api/v1/nodes", [&](const httplib::Request&, httplib::Response& res) {
    ++posts;
    res.status = 500;
    res.set_content(StatusBody(500, "InternalError", "boom"), "application/json");
  });
  s.Start();
  Client client(s.config(), Fast());
  absl::StatusOr<Json> node = client.Get(resources::kNodes, "", "down");
  EXPECT_EQ(node.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(node.status().message().find("(after 5 attempts)"), std::string::npos) << node.status();
  EXPECT_NE(node.status().message().find("internal error"), std::string::npos) << node.status();
  EXPECT_EQ(gets.load(), 5);
  EXPECT_FALSE(client.Create(resources::kNodes, "", Json{{"kind", "Node"}}).ok());
  EXPECT_EQ(posts.load(), 1);  // a 500 may have happened after the write: not repeated
}

TEST(ClientTest, NetworkErrorsAreRetriedThenReported) {
  TestServer s;
  s.Start();
  Config config = s.config();
  s.Stop();  // nothing listens any more
  Client client(config, Fast());
  absl::StatusOr<Json> node = client.Get(resources::kNodes, "", "x");
  EXPECT_EQ(node.status().code(), absl::StatusCode::kUnavailable) << node.status();
}

TEST(ClientTest, MalformedJsonFromTheServerIsDataLoss) {
  TestServer s;
  s.server().Get("/api/v1/nodes/bad", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"kind":"Node","metadata":{"name":)", "application/json");
  });
  s.Start();
  Client client(s.config(), Fast());
  absl::StatusOr<Json> node = client.Get(resources::kNodes, "", "bad");
  EXPECT_EQ(node.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(node.status().message().find("malformed JSON"), std::string::npos);
}

TEST(ClientTest, A401RereadsTheTokenFileOnce) {
  const std::string path = ::testing::TempDir() + "/token-" + std::to_string(::getpid());
  std::ofstream(path) << "old";
  TestServer s;
  std::vector<std::string> seen;
  std::mutex mu;
  s.server().Get("/api/v1/nodes/a", [&](const httplib::Request& req, httplib::Response& res) {
    std::lock_guard<std::mutex> lock(mu);
    seen.push_back(req.get_header_value("Authorization"));
    if (req.get_header_value("Authorization") != "Bearer new") {
      res.status = 401;
      res.set_content(StatusBody(401, "Unauthorized", "Unauthorized"), "application/json");
      return;
    }
    res.set_content(R"({"kind":"Node"})", "application/json");
  });
  s.Start();
  Config config = s.config();
  config.token = TokenSource::File(path);
  Client client(config, Fast());
  ASSERT_EQ(config.token->Token(), "old");
  std::ofstream(path) << "new";  // the kubelet rotated it
  absl::StatusOr<Json> node = client.Get(resources::kNodes, "", "a");
  EXPECT_TRUE(node.ok()) << node.status();
  EXPECT_EQ(seen, (std::vector<std::string>{"Bearer old", "Bearer new"}));
  std::filesystem::remove(path);
}

TEST(ClientTest, ListFollowsContinueTokensAndReturnsTheListVersion) {
  TestServer s;
  std::vector<std::string> queries;
  s.server().Get("/apis/resource.k8s.io/v1/resourceslices", [&](const httplib::Request& req,
                                                                httplib::Response& res) {
    queries.push_back(req.get_param_value("continue") + "|" + req.get_param_value("limit") + "|" +
                      req.get_param_value("fieldSelector"));
    if (req.get_param_value("continue").empty()) {
      res.set_content(
          R"({"kind":"ResourceSliceList","metadata":{"resourceVersion":"100","continue":"page2"},)"
          R"("items":[{"metadata":{"name":"a"}},{"metadata":{"name":"b"}}]})",
          "application/json");
    } else {
      res.set_content(R"({"kind":"ResourceSliceList","metadata":{"resourceVersion":"100"},)"
                      R"("items":[{"metadata":{"name":"c"}}]})",
                      "application/json");
    }
  });
  s.Start();
  Client client(s.config(), Fast());
  absl::StatusOr<ListResult> list = client.List(
      resources::kResourceSlices, "", {.field_selector = "spec.nodeName=node-a", .limit = 2});
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->items.size(), 3u);
  EXPECT_EQ(list->items[2]["metadata"]["name"], "c");
  EXPECT_EQ(list->resource_version, "100");
  EXPECT_EQ(queries,
            (std::vector<std::string>{"|2|spec.nodeName=node-a", "page2|2|spec.nodeName=node-a"}));
}

TEST(ClientTest, ApplyAndDeleteSendWhatTheServerExpects) {
  TestServer s;
  httplib::Request apply, del;
  s.server().Patch("/apis/resource.k8s.io/v1/namespaces/ml/resourceclaims/c1/status",
                   [&](const httplib::Request& req, httplib::Response& res) {
                     apply = req;
                     res.set_content(req.body, "application/json");
                   });
  s.server().Delete(
      "/api/v1/namespaces/ml/pods/p1", [&](const httplib::Request& req, httplib::Response& res) {
        del = req;
        res.set_content(R"({"kind":"Status","status":"Success"})", "application/json");
      });
  s.Start();
  Client client(s.config(), Fast());
  const Json claim = {{"apiVersion", "resource.k8s.io/v1"},
                      {"kind", "ResourceClaim"},
                      {"metadata", {{"name", "c1"}}}};
  ASSERT_TRUE(client
                  .Apply(resources::kResourceClaims, "ml", claim, "tessera-kubelet-plugin", true,
                         "status", {.strict_field_validation = true})
                  .ok());
  EXPECT_EQ(apply.get_header_value("Content-Type"), "application/apply-patch+yaml");
  EXPECT_EQ(apply.get_param_value("fieldManager"), "tessera-kubelet-plugin");
  EXPECT_EQ(apply.get_param_value("force"), "true");
  EXPECT_EQ(apply.get_param_value("fieldValidation"), "Strict");
  EXPECT_EQ(Json::parse(apply.body), claim);
  ASSERT_TRUE(client.Delete(resources::kPods, "ml", "p1", {.uid = "u-1"}).ok());
  EXPECT_EQ(Json::parse(del.body)["preconditions"]["uid"], "u-1");
  EXPECT_EQ(
      client.Apply(resources::kResourceClaims, "ml", Json::object(), "m", true).status().code(),
      absl::StatusCode::kInvalidArgument);
}

TEST(ClientTest, SerialisedWritesSendTheBodyAsIsAndCanSkipTheAnswersSpec) {
  TestServer s;
  httplib::Request create, update;
  const std::string answer =
      R"({"apiVersion":"resource.k8s.io/v1","kind":"ResourceSlice",)"
      R"("metadata":{"name":"s1","resourceVersion":"7","generation":2},)"
      R"("spec":{"devices":[{"name":"gpu-0","attributes":{"a":{"string":"x"}}}]},"status":{}})";
  s.server().Post("/apis/resource.k8s.io/v1/resourceslices",
                  [&](const httplib::Request& req, httplib::Response& res) {
                    create = req;
                    res.set_content(answer, "application/json");
                  });
  s.server().Put("/apis/resource.k8s.io/v1/resourceslices/s1",
                 [&](const httplib::Request& req, httplib::Response& res) {
                   update = req;
                   res.set_content(answer, "application/json");
                 });
  s.Start();
  Client client(s.config(), Fast());
  const std::string body = R"({"metadata":{"name":"s1"},"spec":{"devices":[]}})";
  absl::StatusOr<Json> created = client.CreateSerialized(resources::kResourceSlices, "", body,
                                                         {.field_manager = "tessera-controller"});
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(create.body, body);
  EXPECT_EQ(create.get_header_value("Content-Type"), "application/json");
  EXPECT_EQ(create.get_param_value("fieldManager"), "tessera-controller");
  EXPECT_EQ((*created)["spec"]["devices"][0]["name"], "gpu-0");  // the whole answer by default

  absl::StatusOr<Json> updated =
      client.UpdateSerialized(resources::kResourceSlices, "", "s1", body,
                              {.field_manager = "tessera-controller", .answer_without_spec = true});
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_EQ(update.body, body);
  EXPECT_FALSE(updated->contains("spec")) << updated->dump();
  EXPECT_EQ((*updated)["metadata"]["generation"], 2);
  EXPECT_TRUE(updated->contains("status"));
}

TEST(ClientTest, TheAnswersSpecIsSkippedWhereverItIsAndWhateverItHolds) {
  // Each answer: the JSON the server sends, and what is left of it without the top-level spec.
  const std::vector<std::pair<std::string, Json>> answers = {
      {R"({"metadata":{"name":"a","annotations":{"spec":"{\"x\": ["}},"spec":{"s":"}\"]{"},)"
       R"("status":{"spec":1}})",
       {{"metadata", {{"name", "a"}, {"annotations", {{"spec", R"({"x": [)"}}}}},
        {"status", {{"spec", 1}}}}},
      {R"({ "status" : [1, {"spec": 2}] , "spec" : [ {"a": [[]]}, "]" ] })",
       {{"status", Json::array({1, {{"spec", 2}}})}}},
      {R"({"spec":"just a string","kind":"K"})", {{"kind", "K"}}},
      {R"({"kind":"K","spec":17})", {{"kind", "K"}}},
      {R"({"kind":"K","spec":null})", {{"kind", "K"}}},
      {R"({"kind":"K"})", {{"kind", "K"}}},
  };
  TestServer s;
  std::size_t next = 0;
  s.server().Post("/apis/resource.k8s.io/v1/resourceslices",
                  [&](const httplib::Request&, httplib::Response& res) {
                    res.set_content(answers[next++].first, "application/json");
                  });
  s.Start();
  Client client(s.config(), Fast());
  for (const auto& [sent, left] : answers) {
    absl::StatusOr<Json> got = client.CreateSerialized(resources::kResourceSlices, "", "{}",
                                                       {.answer_without_spec = true});
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(*got, left) << sent;
  }
}

TEST(ClientTest, AWatchOfMetadataAsksForPartialObjectMetadata) {
  TestServer s;
  std::string accept;
  s.server().Get("/api/v1/nodes", [&](const httplib::Request& req, httplib::Response& res) {
    accept = req.get_header_value("Accept");
    res.set_content(R"({"type":"ADDED","object":{"apiVersion":"meta.k8s.io/v1",)"
                    R"("kind":"PartialObjectMetadata","metadata":{"name":"n0"}}})",
                    "application/json");
  });
  s.Start();
  Client client(s.config(), Fast());
  std::vector<WatchEvent> events;
  auto collect = [&](WatchEvent&& e) {
    events.push_back(std::move(e));
    return true;
  };
  ASSERT_TRUE(client.Watch(resources::kNodes, "", {.metadata_only = true}, collect, nullptr).ok());
  // client-go's metadata informers ask the same, with whole objects as the fallback.
  EXPECT_EQ(accept,
            "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].object["kind"], "PartialObjectMetadata");
  ASSERT_TRUE(client.Watch(resources::kNodes, "", {}, collect, nullptr).ok());
  EXPECT_EQ(accept, "application/json");
}

TEST(ClientTest, ModifyRetriesOnConflict) {
  TestServer s;
  std::atomic<int> version{1}, puts{0};
  s.server().Get("/api/v1/nodes/n", [&](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"kind":"Node","metadata":{"name":"n","resourceVersion":")" +
                        std::to_string(version.load()) + R"("},"spec":{}})",
                    "application/json");
  });
  s.server().Put("/api/v1/nodes/n", [&](const httplib::Request& req, httplib::Response& res) {
    ++puts;
    const Json body = Json::parse(req.body);
    if (puts == 1) ++version;  // someone else wrote between our GET and PUT
    if (body["metadata"]["resourceVersion"] != std::to_string(version.load())) {
      res.status = 409;
      res.set_content(StatusBody(409, "Conflict", "the object has been modified"),
                      "application/json");
      return;
    }
    res.set_content(req.body, "application/json");
  });
  s.Start();
  Client client(s.config(), Fast());
  absl::StatusOr<Json> stored =
      client.Modify(resources::kNodes, "", "n", [](Json& node) -> absl::StatusOr<bool> {
        node["spec"]["unschedulable"] = true;
        return true;
      });
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ((*stored)["spec"]["unschedulable"], true);
  EXPECT_EQ(puts.load(), 2);
}

// Events split across chunks at awkward places, with pauses between chunks.
TEST(ClientTest, WatchReassemblesEventsSplitAcrossChunks) {
  const std::string stream =
      R"({"type":"ADDED","object":{"metadata":{"name":"a","resourceVersion":"11"}}})"
      "\n"
      R"({"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"12"}}})"
      "\n"
      R"({"type":"MODIFIED","object":{"metadata":{"name":"a","resourceVersion":"13"},"data":"})"
      R"(}}}"}})"
      "\n";
  TestServer s;
  std::string query;
  s.server().Get("/api/v1/namespaces/ns/pods", [&](const httplib::Request& req,
                                                   httplib::Response& res) {
    query = req.get_param_value("watch") + "|" + req.get_param_value("resourceVersion") + "|" +
            req.get_param_value("allowWatchBookmarks") + "|" + req.get_param_value("labelSelector");
    res.set_chunked_content_provider("application/json", [&](size_t, httplib::DataSink& sink) {
      for (std::size_t i = 0; i < stream.size(); i += 7) {
        const std::string piece = stream.substr(i, 7);
        sink.write(piece.data(), piece.size());
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      sink.done();
      return true;
    });
  });
  s.Start();
  Client client(s.config(), Fast());
  std::vector<WatchEvent> events;
  absl::Status st = client.Watch(
      resources::kPods, "ns", {.resource_version = "10", .label_selector = "app in (a,b)"},
      [&](WatchEvent&& e) {
        events.push_back(std::move(e));
        return true;
      },
      nullptr);
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_EQ(query, "1|10|true|app in (a,b)");
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[1].type, EventType::kBookmark);
  EXPECT_EQ(events[2].object["data"], "}}}}");
}

TEST(ClientTest, WatchReportsGoneAsAnHttpStatus) {
  TestServer s;
  s.server().Get("/api/v1/pods", [&](const httplib::Request&, httplib::Response& res) {
    res.status = 410;
    res.set_content(StatusBody(410, "Expired", "too old resource version: 1 (50)"),
                    "application/json");
  });
  s.Start();
  Client client(s.config(), Fast());
  absl::Status st = client.Watch(
      resources::kPods, "", {.resource_version = "1"}, [](WatchEvent&&) { return true; }, nullptr);
  EXPECT_TRUE(IsGoneError(st)) << st;
}

TEST(ClientTest, AStoppedWatchReturnsPromptly) {
  TestServer s;
  s.server().Get("/api/v1/pods", [&](const httplib::Request&, httplib::Response& res) {
    res.set_chunked_content_provider("application/json", [](size_t, httplib::DataSink& sink) {
      for (int i = 0; i < 100 && sink.is_writable(); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      sink.done();
      return true;
    });
  });
  s.Start();
  Client client(s.config(), Fast());
  std::atomic<bool> stop{false};
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    stop = true;
  });
  const auto began = std::chrono::steady_clock::now();
  absl::Status st = client.Watch(
      resources::kPods, "", {}, [](WatchEvent&&) { return true; }, &stop);
  stopper.join();
  EXPECT_TRUE(st.ok()) << st;
  EXPECT_LT(std::chrono::steady_clock::now() - began, std::chrono::milliseconds(2000));
}

}  // namespace
}  // namespace tessera::kube
