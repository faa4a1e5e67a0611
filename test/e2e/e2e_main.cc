// main for the e2e test binary: one control plane (two fake nodes, n0 and n1) for all its tests.

#include "framework/cluster.h"
#include "gtest/gtest.h"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new tessera::e2e::ClusterEnvironment({"n0", "n1"}));
  return RUN_ALL_TESTS();
}
