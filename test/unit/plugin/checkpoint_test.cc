// The checkpoint's claim journal: what survives a reopen, torn and corrupt journals, the migration
// of per-claim files of format 1, boot scope, two plugin processes on one journal, compaction, and
// the AppendLog underneath.
#include "tessera/plugin/checkpoint.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tessera/plugin/files.h"

namespace tessera::plugin {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "ckpt-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }

 private:
  std::string path_;
};

ClaimRecord Record(const std::string& uid, ClaimPhase phase = ClaimPhase::kPrepared) {
  return {.uid = uid,
          .namespace_ = "default",
          .name = "claim-" + uid,
          .phase = phase,
          .devices = {{.requests = {"gpu"},
                       .pool = "node-a",
                       .device = "gpu-1-mig-3g40gb-p4",
                       .gpu = 1,
                       .gpu_uuid = "GPU-1",
                       .mig = MigRecord{.profile = "3g.40gb",
                                        .profile_id = 9,
                                        .placement = {4, 4},
                                        .gi_id = 2,
                                        .ci_id = 0,
                                        .uuid = "MIG-1",
                                        .created_by_tessera = true}}}};
}

std::unique_ptr<CheckpointStore> Open(const std::string& dir, const std::string& boot,
                                      CheckpointLoadReport* report = nullptr) {
  CheckpointLoadReport ignored;
  absl::StatusOr<std::unique_ptr<CheckpointStore>> store =
      CheckpointStore::Open(dir, boot, report != nullptr ? report : &ignored);
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? *std::move(store) : nullptr;
}

std::vector<std::string> Uids(const CheckpointStore& store) {
  std::vector<std::string> uids;
  for (const ClaimRecord& r : store.All()) uids.push_back(r.uid);
  return uids;
}

std::string Read(const std::string& path) {
  absl::StatusOr<std::string> text = ReadWholeFile(path);
  return text.ok() ? *text : "";
}

void Append(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::app | std::ios::binary) << bytes;
}

std::size_t Entries(const std::string& dir) {
  if (!std::filesystem::exists(dir)) return 0;
  return static_cast<std::size_t>(std::distance(std::filesystem::directory_iterator(dir),
                                                std::filesystem::directory_iterator()));
}

TEST(CheckpointTest, PutsAndErasesSurviveAReopen) {
  TempDir dir;
  {
    auto store = Open(dir / "ckpt", "boot-1");
    ASSERT_TRUE(store->Put(Record("a", ClaimPhase::kPreparing)).ok());
    ASSERT_TRUE(store->Put(Record("b")).ok());
    ASSERT_TRUE(store->Put(Record("a")).ok());
    ASSERT_TRUE(store->Erase("b").ok());
  }
  CheckpointLoadReport report;
  auto store = Open(dir / "ckpt", "boot-1", &report);
  EXPECT_EQ(report.loaded, 1);
  ASSERT_THAT(Uids(*store), ElementsAre("a"));
  EXPECT_EQ(*store->Get("a"), Record("a"));
  // One journal, no file per claim.
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(dir / "ckpt")) {
    files.push_back(e.path().filename().string());
  }
  EXPECT_THAT(files, ElementsAre("claims.log"));
}

TEST(CheckpointTest, JournalLinesAreTheRecordFormatOnOneLine) {
  TempDir dir;
  auto store = Open(dir / "ckpt", "boot-1");
  ASSERT_TRUE(store->Put(Record("a")).ok());
  const std::string journal = Read(CheckpointStore::JournalPath(dir / "ckpt"));
  const std::vector<std::string> lines = [&] {
    std::vector<std::string> out;
    std::istringstream in(journal);
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
  }();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], R"({"journal":"tessera.dev/claims","version":1})");
  EXPECT_EQ(lines[1], CheckpointStore::Encode(Record("a"), "boot-1"));
  std::string boot;
  absl::StatusOr<ClaimRecord> decoded = CheckpointStore::Decode(lines[1], &boot);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, Record("a"));
  EXPECT_EQ(boot, "boot-1");
}

TEST(CheckpointTest, MigratesPerClaimFilesOfFormat1) {
  TempDir dir;
  std::filesystem::create_directories(dir / "ckpt");
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir / ("ckpt/" + name)) << text;
  };
  // Format 1 wrote them indented.
  write("a.json", nlohmann::json::parse(CheckpointStore::Encode(Record("a"), "boot-1")).dump(1));
  write("b.json", CheckpointStore::Encode(Record("b", ClaimPhase::kPreparing), "boot-1"));
  write("old.json", CheckpointStore::Encode(Record("old"), "boot-0"));
  write("bad.json", R"({"version": 1, "record": {}, garbage)");
  write("c.json.tmp.123", "left by a killed writer, but young: kept");
  CheckpointLoadReport report;
  {
    auto store = Open(dir / "ckpt", "boot-1", &report);
    EXPECT_THAT(Uids(*store), ElementsAre("a", "b"));
    EXPECT_EQ(store->Get("b")->phase, ClaimPhase::kPreparing);
  }
  EXPECT_EQ(report.loaded, 2);
  EXPECT_THAT(report.other_boot, ElementsAre("old"));
  ASSERT_EQ(report.corrupt.size(), 1u);
  EXPECT_THAT(report.corrupt[0], HasSubstr("bad.json"));
  EXPECT_EQ(Entries(dir / "ckpt/corrupt"), 1u);
  for (const char* gone : {"a.json", "b.json", "old.json", "bad.json"}) {
    EXPECT_FALSE(std::filesystem::exists(dir / (std::string("ckpt/") + gone))) << gone;
  }
  EXPECT_TRUE(std::filesystem::exists(dir / "ckpt/c.json.tmp.123"));
  // The migrated records now live in the journal.
  CheckpointLoadReport again;
  auto store = Open(dir / "ckpt", "boot-1", &again);
  EXPECT_THAT(Uids(*store), ElementsAre("a", "b"));
  EXPECT_THAT(again.corrupt, IsEmpty());
}

TEST(CheckpointTest, FileOfFormat1OverridesTheJournalsEntryForItsClaim) {
  // An upgrade: the old plugin, still running beside the new one, wrote after the migration.
  TempDir dir;
  {
    auto store = Open(dir / "ckpt", "boot-1");
    ASSERT_TRUE(store->Put(Record("a", ClaimPhase::kPreparing)).ok());
  }
  std::ofstream(dir / "ckpt/a.json") << CheckpointStore::Encode(Record("a"), "boot-1");
  auto store = Open(dir / "ckpt", "boot-1");
  EXPECT_EQ(store->Get("a")->phase, ClaimPhase::kPrepared);
  EXPECT_FALSE(std::filesystem::exists(dir / "ckpt/a.json"));
}

TEST(CheckpointTest, RecordsOfAnotherBootAreDropped) {
  TempDir dir;
  Open(dir / "ckpt", "boot-1")->Put(Record("a")).IgnoreError();
  CheckpointLoadReport report;
  auto store = Open(dir / "ckpt", "boot-2", &report);
  EXPECT_THAT(Uids(*store), IsEmpty());
  EXPECT_THAT(report.other_boot, ElementsAre("a"));
  EXPECT_THAT(Uids(*Open(dir / "ckpt", "boot-1")), IsEmpty());  // gone from the journal too
}

TEST(CheckpointTest, TornLastLineOfAKilledWriterIsIgnored) {
  TempDir dir;
  Open(dir / "ckpt", "boot-1")->Put(Record("a")).IgnoreError();
  const std::string line = CheckpointStore::Encode(Record("b"), "boot-1");
  Append(CheckpointStore::JournalPath(dir / "ckpt"), line.substr(0, line.size() / 2));
  CheckpointLoadReport report;
  auto store = Open(dir / "ckpt", "boot-1", &report);
  EXPECT_THAT(Uids(*store), ElementsAre("a"));
  EXPECT_THAT(report.corrupt, IsEmpty());
}

TEST(CheckpointTest, TornTailIsCutOffBeforeTheNextAppend) {
  // Another process died in the middle of its line; this one appends after it.
  TempDir dir;
  auto store = Open(dir / "ckpt", "boot-1");
  ASSERT_TRUE(store->Put(Record("a")).ok());
  Append(CheckpointStore::JournalPath(dir / "ckpt"), R"({"version":1,"bootID":"boot-1","chec)");
  ASSERT_TRUE(store->Put(Record("b")).ok());
  store.reset();
  CheckpointLoadReport report;
  EXPECT_THAT(Uids(*Open(dir / "ckpt", "boot-1", &report)), ElementsAre("a", "b"));
  EXPECT_THAT(report.corrupt, IsEmpty());
}

TEST(CheckpointTest, CorruptJournalIsCopiedAsideAndReported) {
  TempDir dir;
  Open(dir / "ckpt", "boot-1")->Put(Record("a")).IgnoreError();
  const std::string journal = CheckpointStore::JournalPath(dir / "ckpt");
  Append(journal, "{\"version\":1,\"record\":{}}\n");
  // A good line after the bad one does not make the journal trustworthy again.
  Append(journal, CheckpointStore::Encode(Record("b"), "boot-1") + "\n");
  CheckpointLoadReport report;
  auto store = Open(dir / "ckpt", "boot-1", &report);
  ASSERT_EQ(report.corrupt.size(), 1u);
  EXPECT_THAT(report.corrupt[0], HasSubstr("claims.log"));
  EXPECT_THAT(report.corrupt[0], HasSubstr("line 3: checksum"));
  EXPECT_THAT(Uids(*store), IsEmpty());  // unknown now: restored from CDI specs by the Preparer
  EXPECT_EQ(Entries(dir / "ckpt/corrupt"), 1u);
}

TEST(CheckpointTest, JournalOfAnotherFormatIsCopiedAside) {
  TempDir dir;
  std::filesystem::create_directories(dir / "ckpt");
  std::ofstream(CheckpointStore::JournalPath(dir / "ckpt"))
      << "{\"journal\":\"tessera.dev/claims\",\"version\":2}\n";
  CheckpointLoadReport report;
  Open(dir / "ckpt", "boot-1", &report);
  ASSERT_EQ(report.corrupt.size(), 1u);
  EXPECT_THAT(report.corrupt[0], HasSubstr("journal version 2 is not the supported version 1"));
}

TEST(CheckpointTest, TwoPluginProcessesKeepEachOthersClaimsAcrossRewrites) {
  // A rolling update: two stores on one journal, one of which rewrites it (compaction) while the
  // other still holds the old file open.
  TempDir dir;
  auto old_plugin = Open(dir / "ckpt", "boot-1");
  auto new_plugin = Open(dir / "ckpt", "boot-1");
  ASSERT_TRUE(old_plugin->Put(Record("from-old")).ok());
  // Enough churn for the new plugin to compact the journal (past 256 KiB and 4x its size).
  for (int i = 0; i < 1500; ++i) {
    ASSERT_TRUE(new_plugin->Put(Record("churn")).ok());
    ASSERT_TRUE(new_plugin->Erase("churn").ok());
  }
  ASSERT_TRUE(new_plugin->Put(Record("from-new")).ok());
  ASSERT_TRUE(old_plugin->Put(Record("from-old-later")).ok());
  EXPECT_LT(std::filesystem::file_size(CheckpointStore::JournalPath(dir / "ckpt")), 512u * 1024);
  old_plugin.reset();
  new_plugin.reset();
  EXPECT_THAT(Uids(*Open(dir / "ckpt", "boot-1")),
              ElementsAre("from-new", "from-old", "from-old-later"));
}

TEST(CheckpointTest, CompactionKeepsTheJournalNearItsLiveSize) {
  TempDir dir;
  auto store = Open(dir / "ckpt", "boot-1");
  for (int i = 0; i < 4000; ++i) {
    const std::string uid = "c" + std::to_string(i % 50);
    ASSERT_TRUE(store->Put(Record(uid, ClaimPhase::kPreparing)).ok());
    ASSERT_TRUE(store->Put(Record(uid)).ok());
    if (i % 2 == 0) {
      ASSERT_TRUE(store->Erase(uid).ok());
    }
  }
  EXPECT_LT(std::filesystem::file_size(CheckpointStore::JournalPath(dir / "ckpt")), 1024u * 1024);
  const std::vector<std::string> live = Uids(*store);
  store.reset();
  EXPECT_EQ(Uids(*Open(dir / "ckpt", "boot-1")), live);
}

TEST(CheckpointTest, UnknownBootIdMakesEveryChangeDurable) {
  TempDir dir;
  auto store = Open(dir / "ckpt", "");
  EXPECT_TRUE(store->sync());
  EXPECT_FALSE(Open(dir / "other", "boot-1")->sync());
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 5; ++i) {
        EXPECT_TRUE(store->Put(Record("t" + std::to_string(t) + "-" + std::to_string(i))).ok());
      }
    });
  }
  for (auto& t : threads) t.join();
  store.reset();
  EXPECT_EQ(Uids(*Open(dir / "ckpt", "")).size(), 40u);
}

TEST(CheckpointTest, JournalDeletedWhileInUseStartsAgainWithItsHeader) {
  TempDir dir;
  auto store = Open(dir / "ckpt", "boot-1");
  ASSERT_TRUE(store->Put(Record("a")).ok());
  std::filesystem::remove(CheckpointStore::JournalPath(dir / "ckpt"));
  ASSERT_TRUE(store->Put(Record("b")).ok());
  store.reset();
  CheckpointLoadReport report;
  EXPECT_THAT(Uids(*Open(dir / "ckpt", "boot-1", &report)), ElementsAre("b"));
  EXPECT_THAT(report.corrupt, IsEmpty());
}

TEST(CheckpointTest, RefusesUidsThatAreNotKubernetesUids) {
  TempDir dir;
  auto store = Open(dir / "ckpt", "boot-1");
  EXPECT_FALSE(store->Put(Record("../etc")).ok());
  EXPECT_TRUE(store->Erase("../etc").ok());
}

TEST(AppendLogTest, WritesAfterAnotherLogsRewriteLandInTheNewFile) {
  TempDir dir;
  const std::string path = dir / "log";
  auto first = AppendLog::Open(path, /*sync=*/false);
  auto second = AppendLog::Open(path, /*sync=*/true);
  ASSERT_TRUE(first.ok() && second.ok());
  ASSERT_TRUE((*first)->Write("one", nullptr).ok());
  std::string seen;
  ASSERT_TRUE((*second)
                  ->Rewrite([&](const std::string* current) -> absl::StatusOr<std::string> {
                    seen = current != nullptr ? *current : "(none)";
                    return "one (rewritten)\n";
                  })
                  .ok());
  EXPECT_EQ(seen, "one\n");  // another log wrote: the content is read, not assumed
  ASSERT_TRUE((*first)->Write("two", nullptr).ok());
  absl::StatusOr<uint64_t> ticket = (*second)->Write("three", nullptr);
  ASSERT_TRUE(ticket.ok());
  EXPECT_TRUE((*second)->WaitDurable(*ticket).ok());
  EXPECT_EQ(Read(path), "one (rewritten)\ntwo\nthree\n");
  // Only its own writes since its rewrite: the caller may rebuild from what it knows.
  auto third = AppendLog::Open(path, false);
  ASSERT_TRUE((*third)->Rewrite([](const std::string*) { return std::string("x\n"); }).ok());
  ASSERT_TRUE((*third)->Write("y", nullptr).ok());
  ASSERT_TRUE((*third)
                  ->Rewrite([&](const std::string* current) -> absl::StatusOr<std::string> {
                    seen = current != nullptr ? *current : "(none)";
                    return "z\n";
                  })
                  .ok());
  EXPECT_EQ(seen, "(none)");
}

}  // namespace
}  // namespace tessera::plugin
