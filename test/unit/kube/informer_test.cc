// The informer against a scripted server: list, watch, an ERROR 410 event and an HTTP 410 both end
// in a relist whose difference reaches the handlers, and the cache and indices follow.

#include "tessera/kube/informer.h"

#include <mutex>

#include "gtest/gtest.h"
#include "test_server.h"

namespace tessera::kube {
namespace {

using api::Json;

std::string Obj(const std::string& name, int rv, const std::string& node) {
  return R"({"metadata":{"name":")" + name + R"(","resourceVersion":")" + std::to_string(rv) +
         R"("},"spec":{"nodeName":")" + node + R"("}})";
}

TEST(InformerTest, RelistsOnGoneAndDeliversTheDifference) {
  TestServer s;
  std::atomic<int> lists{0}, watches{0};
  std::mutex mu;
  std::vector<std::string> watch_versions;
  s.server().Get("/apis/resource.k8s.io/v1/resourceslices", [&](const httplib::Request& req,
                                                                httplib::Response& res) {
    if (req.get_param_value("watch") != "1") {
      const int n = ++lists;
      if (n == 1) {
        res.set_content(R"({"metadata":{"resourceVersion":"2"},"items":[)" + Obj("a", 1, "n1") +
                            "," + Obj("b", 2, "n1") + "]}",
                        "application/json");
      } else {
        res.set_content(R"({"metadata":{"resourceVersion":"5"},"items":[)" + Obj("a", 3, "n1") +
                            "," + Obj("c", 5, "n2") + "]}",
                        "application/json");
      }
      return;
    }
    const int n = ++watches;
    {
      std::lock_guard<std::mutex> lock(mu);
      watch_versions.push_back(req.get_param_value("resourceVersion"));
    }
    if (n == 1) {
      const std::string body =
          R"({"type":"MODIFIED","object":)" + Obj("a", 3, "n1") + "}\n" +
          R"({"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"4"}}})" + "\n" +
          R"({"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired"}})" + "\n";
      res.set_content(body, "application/json");
    } else if (n == 2) {
      res.status = 410;
      res.set_content(StatusBody(410, "Gone", "too old"), "application/json");
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      res.set_content("", "application/json");  // the server's timeout: an empty stream
    }
  });
  s.Start();
  ClientOptions fast;
  fast.initial_backoff = std::chrono::milliseconds(5);
  Client client(s.config(), fast);
  Informer informer(client, {.type = resources::kResourceSlices});
  std::vector<std::string> seen;
  informer.AddHandlers({.on_add =
                            [&](const Json& o) {
                              seen.push_back("add " + o["metadata"]["name"].get<std::string>());
                            },
                        .on_update =
                            [&](const Json& old_object, const Json& o) {
                              seen.push_back(
                                  "update " + o["metadata"]["name"].get<std::string>() + " " +
                                  old_object["metadata"]["resourceVersion"].get<std::string>() +
                                  "->" + o["metadata"]["resourceVersion"].get<std::string>());
                            },
                        .on_delete =
                            [&](const Json& o) {
                              seen.push_back("delete " + o["metadata"]["name"].get<std::string>());
                            }});
  informer.AddIndex("node", [](const Json& o) {
    return std::vector<std::string>{o["spec"]["nodeName"].get<std::string>()};
  });
  informer.Start();
  ASSERT_TRUE(informer.WaitForSync(std::chrono::seconds(5)));
  for (int i = 0; i < 200 && watches.load() < 4; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  informer.Stop();
  EXPECT_EQ(seen,
            (std::vector<std::string>{"add a", "add b", "update a 1->3", "delete b", "add c"}));
  EXPECT_EQ(informer.size(), 2u);
  EXPECT_EQ(informer.Get("c").value()["spec"]["nodeName"], "n2");
  EXPECT_FALSE(informer.Get("b").has_value());
  EXPECT_EQ(informer.ByIndex("node", "n1").size(), 1u);
  EXPECT_EQ(informer.ByIndex("node", "n2").size(), 1u);
  const InformerStats stats = informer.stats();
  EXPECT_EQ(stats.lists, 3);
  EXPECT_EQ(stats.expired, 2);
  std::lock_guard<std::mutex> lock(mu);
  ASSERT_GE(watch_versions.size(), 3u);
  EXPECT_EQ(watch_versions[0], "2");  // from the first list
  EXPECT_EQ(watch_versions[1], "5");  // from the relist
  EXPECT_EQ(watch_versions[2], "5");
}

TEST(InformerTest, ResyncRedeliversCachedObjects) {
  TestServer s;
  s.server().Get("/api/v1/nodes", [&](const httplib::Request& req, httplib::Response& res) {
    if (req.get_param_value("watch") == "1") {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      res.set_content("", "application/json");
      return;
    }
    res.set_content(
        R"({"metadata":{"resourceVersion":"1"},"items":[{"metadata":{"name":"n","resourceVersion":"1"}}]})",
        "application/json");
  });
  s.Start();
  Client client(s.config());
  Informer informer(client, {.type = resources::kNodes, .resync = std::chrono::seconds(1)});
  std::atomic<int> updates{0};
  informer.AddHandlers({.on_add = nullptr,
                        .on_update = [&](const Json&, const Json&) { ++updates; },
                        .on_delete = nullptr});
  informer.Start();
  ASSERT_TRUE(informer.WaitForSync(std::chrono::seconds(5)));
  for (int i = 0; i < 300 && updates.load() < 2; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  informer.Stop();
  EXPECT_GE(updates.load(), 2);
}

}  // namespace
}  // namespace tessera::kube
