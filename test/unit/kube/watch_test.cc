// The watch-stream decoder: events split anywhere, many per chunk, strings with braces and escapes,
// and every kind of broken input.

#include "tessera/kube/watch.h"

#include <random>

#include "gtest/gtest.h"

namespace tessera::kube {
namespace {

const std::string kStream =
    R"({"type":"ADDED","object":{"kind":"Pod","metadata":{"name":"a","resourceVersion":"1"}}})"
    "\n"
    R"({"type":"MODIFIED","object":{"metadata":{"name":"b {x}","annotations":{"q":"say \"}\" and \\"}}}})"
    "\n  \r\n"
    R"({"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"77"}}})"
    R"({"type":"DELETED","object":{"metadata":{"name":"c"},"spec":{"list":[{"a":[1,2,{"b":"]"}]}]}}})"
    "\n"
    R"({"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired"}})"
    "\n";

void ExpectTheStream(const std::vector<WatchEvent>& events) {
  ASSERT_EQ(events.size(), 5u);
  EXPECT_EQ(events[0].type, EventType::kAdded);
  EXPECT_EQ(events[0].object["metadata"]["name"], "a");
  EXPECT_EQ(events[1].type, EventType::kModified);
  EXPECT_EQ(events[1].object["metadata"]["annotations"]["q"], "say \"}\" and \\");
  EXPECT_EQ(events[2].type, EventType::kBookmark);
  EXPECT_EQ(events[2].object["metadata"]["resourceVersion"], "77");
  EXPECT_EQ(events[3].type, EventType::kDeleted);
  EXPECT_EQ(events[3].object["spec"]["list"][0]["a"][2]["b"], "]");
  EXPECT_EQ(events[4].type, EventType::kError);
  EXPECT_EQ(events[4].object["code"], 410);
}

TEST(WatchDecoderTest, OneChunk) {
  WatchDecoder d;
  std::vector<WatchEvent> events;
  ASSERT_TRUE(d.Feed(kStream, &events).ok());
  ExpectTheStream(events);
  EXPECT_EQ(d.buffered(), 0u);
}

TEST(WatchDecoderTest, SplitAtEveryByte) {
  for (std::size_t cut = 0; cut <= kStream.size(); ++cut) {
    WatchDecoder d;
    std::vector<WatchEvent> events;
    ASSERT_TRUE(d.Feed(std::string_view(kStream).substr(0, cut), &events).ok()) << cut;
    ASSERT_TRUE(d.Feed(std::string_view(kStream).substr(cut), &events).ok()) << cut;
    ExpectTheStream(events);
  }
}

TEST(WatchDecoderTest, ByteByByteAndRandomChunks) {
  WatchDecoder one;
  std::vector<WatchEvent> events;
  for (char c : kStream) ASSERT_TRUE(one.Feed(std::string_view(&c, 1), &events).ok());
  ExpectTheStream(events);
  std::mt19937 rng(3);
  for (int round = 0; round < 200; ++round) {
    WatchDecoder d;
    events.clear();
    for (std::size_t i = 0; i < kStream.size();) {
      const std::size_t n = 1 + rng() % 40;
      ASSERT_TRUE(d.Feed(std::string_view(kStream).substr(i, n), &events).ok());
      i += n;
    }
    ExpectTheStream(events);
  }
}

TEST(WatchDecoderTest, BrokenStreamsAreErrors) {
  for (const char* bad : {R"({"type":"ADDED","object":{"a":tru}})",  // malformed JSON
                          R"({"type":"RENAMED","object":{}})",       // unknown type
                          R"({"type":"ADDED"})",                     // no object
                          R"({"type":1,"object":{}})",               // type not a string
                          R"(x{"type":"ADDED","object":{}})",        // text between events
                          R"({"type":"ADDED","object":{"a":[}]}})",  // unbalanced
                          R"([{"type":"ADDED","object":{}}])"}) {    // not an object
    WatchDecoder d;
    std::vector<WatchEvent> events;
    const absl::Status s = d.Feed(bad, &events);
    EXPECT_FALSE(s.ok()) << bad;
    EXPECT_TRUE(events.empty()) << bad;
    EXPECT_FALSE(d.Feed("{}", &events).ok());  // unusable afterwards
  }
}

TEST(WatchDecoderTest, AnIncompleteEventIsHeldBack) {
  WatchDecoder d;
  std::vector<WatchEvent> events;
  ASSERT_TRUE(d.Feed(R"({"type":"ADDED","object":{"metadata":{"name":"a"}}})"
                     "\n"
                     R"({"type":"ADDED","obj)",
                     &events)
                  .ok());
  EXPECT_EQ(events.size(), 1u);
  EXPECT_EQ(d.buffered(), 20u);
  ASSERT_TRUE(d.Feed(R"(ect":{}})", &events).ok());
  EXPECT_EQ(events.size(), 2u);
  EXPECT_EQ(d.buffered(), 0u);
}

}  // namespace
}  // namespace tessera::kube
