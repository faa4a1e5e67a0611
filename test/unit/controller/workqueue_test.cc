// The controller's work queue: one entry per key, a key never processed by two workers at once,
// delays by time, per-key exponential back-off, batching, and shutdown. Every wait is bounded: a
// Get that does not return in time shuts the queue down so the test fails instead of hanging.

#include "tessera/controller/workqueue.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace tessera::controller {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr char kTimedOut[] = "<timed out>";
constexpr char kShutDown[] = "<shut down>";

std::string Text(const std::optional<std::string>& key) { return key ? *key : kShutDown; }

// How long a blocked Get may take to notice ShutDown.
constexpr std::chrono::milliseconds kRelease(2000);

// A thread that ShutDown cannot release would hang the test binary (the future's or the thread's
// destructor waits for it); end the process instead, saying why.
void AbortUnless(bool released, const char* what) {
  if (released) return;
  std::fprintf(stderr, "FATAL: %s\n", what);
  std::abort();
}

// A Get started on another thread.
class PendingGet {
 public:
  explicit PendingGet(WorkQueue& queue)
      : queue_(queue), result_(std::async(std::launch::async, [&queue] { return queue.Get(); })) {}
  ~PendingGet() {
    if (result_.valid() && !ReturnsWithin(milliseconds(0))) {
      queue_.ShutDown();  // so the destructor of the future does not block forever
      AbortUnless(ReturnsWithin(kRelease), "Get did not return after ShutDown");
    }
  }

  bool ReturnsWithin(milliseconds timeout) {
    return result_.wait_for(timeout) == std::future_status::ready;
  }
  // The key, kShutDown, or kTimedOut (then the queue is shut down to release the thread).
  std::string Await(milliseconds timeout) {
    if (!ReturnsWithin(timeout)) {
      queue_.ShutDown();
      AbortUnless(ReturnsWithin(kRelease), "Get did not return after ShutDown");
      return kTimedOut;
    }
    return Text(result_.get());
  }

 private:
  WorkQueue& queue_;
  std::future<std::optional<std::string>> result_;
};

std::string GetWithin(WorkQueue& queue, milliseconds timeout) {
  return PendingGet(queue).Await(timeout);
}

milliseconds Since(Clock::time_point start) {
  return std::chrono::duration_cast<milliseconds>(Clock::now() - start);
}

constexpr milliseconds kLong(2000);  // "surely returned by now"

TEST(WorkQueueTest, AQueuedKeyIsQueuedOnce) {
  WorkQueue queue({});
  queue.Add("a");
  queue.Add("a");
  queue.Add("b");
  queue.Add("a");
  EXPECT_EQ(queue.Depth(), 2u);
  const std::string first = GetWithin(queue, kLong);
  const std::string second = GetWithin(queue, kLong);
  EXPECT_EQ((std::set<std::string>{first, second}), (std::set<std::string>{"a", "b"}));
  EXPECT_EQ(queue.Depth(), 0u);
  EXPECT_EQ(GetWithin(queue, milliseconds(50)), kTimedOut) << "a key was handed out twice";
}

TEST(WorkQueueTest, AKeyAddedWhileProcessingWaitsForDone) {
  WorkQueue queue({});
  queue.Add("a");
  ASSERT_EQ(GetWithin(queue, kLong), "a");
  queue.Add("a");  // an event while the worker runs
  EXPECT_EQ(queue.Depth(), 1u);

  PendingGet second(queue);
  EXPECT_FALSE(second.ReturnsWithin(milliseconds(100))) << "a is still being processed";
  queue.Done("a");
  EXPECT_EQ(second.Await(kLong), "a");
  queue.Done("a");
  EXPECT_EQ(queue.Depth(), 0u);
}

TEST(WorkQueueTest, DoneWithoutNewAddsDoesNotRequeue) {
  WorkQueue queue({});
  queue.Add("a");
  ASSERT_EQ(GetWithin(queue, kLong), "a");
  queue.Done("a");
  EXPECT_EQ(queue.Depth(), 0u);
  EXPECT_EQ(GetWithin(queue, milliseconds(50)), kTimedOut);
}

// Two workers and a stream of adds: no key is ever processed by both at once, and every add is
// followed by a processing of its key that started after it.
TEST(WorkQueueTest, TwoWorkersNeverShareAKeyAndNoAddIsLost) {
  WorkQueue queue({});
  const std::vector<std::string> keys = {"node-a", "node-b", "node-c"};
  std::mutex mu;
  std::set<std::string> in_flight;
  std::map<std::string, long> last_add, last_start;
  std::atomic<long> clock{0};
  std::atomic<int> overlaps{0};
  std::atomic<int> processed{0};

  std::atomic<int> exited{0};
  auto worker = [&] {
    while (std::optional<std::string> key = queue.Get()) {
      {
        std::lock_guard<std::mutex> lock(mu);
        if (!in_flight.insert(*key).second) ++overlaps;
        last_start[*key] = ++clock;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      {
        std::lock_guard<std::mutex> lock(mu);
        in_flight.erase(*key);
      }
      ++processed;
      queue.Done(*key);
    }
    ++exited;
  };
  std::thread w1(worker), w2(worker);
  for (int i = 0; i < 600; ++i) {
    const std::string& key = keys[i % keys.size()];
    {
      std::lock_guard<std::mutex> lock(mu);
      last_add[key] = ++clock;
    }
    queue.Add(key);
    if (i % 50 == 0) std::this_thread::sleep_for(std::chrono::microseconds(300));
  }
  // Drain: bounded wait until every key's last add has been picked up and finished.
  const Clock::time_point start = Clock::now();
  auto drained = [&] {
    std::lock_guard<std::mutex> lock(mu);
    if (!in_flight.empty() || queue.Depth() != 0) return false;
    for (const std::string& k : keys) {
      if (last_start[k] < last_add[k]) return false;
    }
    return true;
  };
  while (!drained() && Since(start) < milliseconds(3000)) {
    std::this_thread::sleep_for(milliseconds(1));
  }
  queue.ShutDown();
  const Clock::time_point shut = Clock::now();
  while (exited.load() < 2 && Since(shut) < kRelease) std::this_thread::sleep_for(milliseconds(1));
  AbortUnless(exited.load() == 2, "a worker's Get did not return after ShutDown");
  w1.join();
  w2.join();

  EXPECT_EQ(overlaps.load(), 0);
  EXPECT_GT(processed.load(), 0);
  for (const std::string& k : keys) {
    EXPECT_GT(last_start[k], last_add[k]) << k << ": its last add was never processed";
  }
}

TEST(WorkQueueTest, AddAfterHandsKeysOutInDueOrder) {
  WorkQueue queue({});
  const Clock::time_point start = Clock::now();
  queue.AddAfter("late", milliseconds(90));
  queue.AddAfter("early", milliseconds(30));
  queue.Add("now");
  EXPECT_EQ(queue.Depth(), 3u) << "delayed keys count as waiting";

  EXPECT_EQ(GetWithin(queue, kLong), "now");
  EXPECT_EQ(GetWithin(queue, kLong), "early");
  EXPECT_GE(Since(start), milliseconds(30));
  EXPECT_EQ(GetWithin(queue, kLong), "late");
  EXPECT_GE(Since(start), milliseconds(90));
}

TEST(WorkQueueTest, AddingAQueuedKeyAgainOnlyMovesItEarlier) {
  WorkQueue queue({});
  queue.AddAfter("a", milliseconds(20));
  queue.AddAfter("a", milliseconds(60000));  // later: ignored
  EXPECT_EQ(queue.Depth(), 1u);
  EXPECT_EQ(GetWithin(queue, kLong), "a");
  queue.Done("a");

  queue.AddAfter("b", milliseconds(60000));
  queue.AddAfter("b", milliseconds(0));  // earlier: wins
  EXPECT_EQ(queue.Depth(), 1u);
  EXPECT_EQ(GetWithin(queue, kLong), "b");
}

TEST(WorkQueueTest, AKeyIsNotHandedOutBeforeItIsDue) {
  WorkQueue queue({});
  queue.AddAfter("a", milliseconds(60000));
  EXPECT_EQ(GetWithin(queue, milliseconds(80)), kTimedOut);
}

TEST(WorkQueueTest, RateLimitedDelaysGrowPerFailureAndForgetResetsThem) {
  WorkQueue queue({.batch = milliseconds(0),
                   .base_backoff = milliseconds(20),
                   .max_backoff = milliseconds(1000)});
  EXPECT_EQ(queue.Failures("a"), 0);
  // 20, 40, 80, 160 ms: each failure doubles the delay.
  for (int n = 0; n < 4; ++n) {
    const Clock::time_point start = Clock::now();
    queue.AddRateLimited("a");
    EXPECT_EQ(queue.Failures("a"), n + 1);
    ASSERT_EQ(GetWithin(queue, kLong), "a");
    EXPECT_GE(Since(start), milliseconds(20 << n)) << "failure " << n + 1;
    queue.Done("a");
  }

  // Reset: the next failure waits the base delay again, not 320 ms.
  queue.Forget("a");
  EXPECT_EQ(queue.Failures("a"), 0);
  const Clock::time_point start = Clock::now();
  queue.AddRateLimited("a");
  EXPECT_EQ(queue.Failures("a"), 1);
  ASSERT_EQ(GetWithin(queue, kLong), "a");
  EXPECT_GE(Since(start), milliseconds(20));
  EXPECT_LT(Since(start), milliseconds(250));
  // Failures of one key do not delay another.
  EXPECT_EQ(queue.Failures("b"), 0);
}

TEST(WorkQueueTest, BackOffStopsGrowingAtTheMaximum) {
  WorkQueue queue({.batch = milliseconds(0),
                   .base_backoff = milliseconds(20),
                   .max_backoff = milliseconds(300)});
  // Twelve failures while queued: counted, and the key stays due at the first (earliest) delay.
  for (int i = 0; i < 12; ++i) queue.AddRateLimited("a");
  EXPECT_EQ(queue.Failures("a"), 12);
  EXPECT_EQ(queue.Depth(), 1u);
  ASSERT_EQ(GetWithin(queue, kLong), "a");
  queue.Done("a");

  // 20 ms * 2^12 would be 82 s; the cap is 300 ms.
  const Clock::time_point start = Clock::now();
  queue.AddRateLimited("a");
  EXPECT_EQ(GetWithin(queue, milliseconds(2000)), "a");
  EXPECT_GE(Since(start), milliseconds(300));
}

TEST(WorkQueueTest, AddWaitsTheBatchDelaySoABurstIsOneSync) {
  WorkQueue queue({.batch = milliseconds(60)});
  const Clock::time_point start = Clock::now();
  queue.Add("a");
  std::this_thread::sleep_for(milliseconds(10));
  queue.Add("a");
  queue.Add("a");
  EXPECT_EQ(queue.Depth(), 1u);
  EXPECT_EQ(GetWithin(queue, kLong), "a");
  EXPECT_GE(Since(start), milliseconds(60));
  queue.Done("a");
  EXPECT_EQ(GetWithin(queue, milliseconds(100)), kTimedOut) << "the burst was one sync";
}

TEST(WorkQueueTest, AddAfterZeroOvertakesTheBatchDelay) {
  WorkQueue queue({.batch = milliseconds(60000)});
  queue.Add("a");
  queue.AddAfter("a", milliseconds(0));
  EXPECT_EQ(GetWithin(queue, kLong), "a");
}

TEST(WorkQueueTest, ShutDownUnblocksAWaitingGet) {
  WorkQueue queue({});
  PendingGet get(queue);
  EXPECT_FALSE(get.ReturnsWithin(milliseconds(50)));
  queue.ShutDown();
  EXPECT_EQ(get.Await(kLong), kShutDown);
  // And a Get after shutdown does not block either.
  EXPECT_EQ(GetWithin(queue, kLong), kShutDown);
}

TEST(WorkQueueTest, ShutDownUnblocksAGetWaitingForADelayedKey) {
  WorkQueue queue({});
  queue.AddAfter("a", milliseconds(60000));
  PendingGet get(queue);
  EXPECT_FALSE(get.ReturnsWithin(milliseconds(50)));
  queue.ShutDown();
  EXPECT_EQ(get.Await(kLong), kShutDown);
}

}  // namespace
}  // namespace tessera::controller
