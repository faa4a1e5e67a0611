// main for every e2e test binary: one control plane for all the binary's tests. CMake sets the
// fake nodes (TESSERA_E2E_NODES, comma-separated) and extra `testenv up` flags
// (TESSERA_E2E_UP_FLAGS, space-separated) per binary.

#include <sstream>
#include <string>
#include <vector>

#include "framework/cluster.h"
#include "gtest/gtest.h"

namespace {

std::vector<std::string> Split(const std::string& text, char separator) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string item; std::getline(in, item, separator);) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new tessera::e2e::ClusterEnvironment(
      Split(TESSERA_E2E_NODES, ','), Split(TESSERA_E2E_UP_FLAGS, ' ')));
  return RUN_ALL_TESTS();
}
