// tessera-controller: publishes each node's ResourceSlices from its GpuInventory and
// GpuPartitionPolicy. Today it validates configuration files; serving arrives with issue #7.
#include <iostream>

#include "CLI/CLI.hpp"
#include "tessera/tools/cli.h"

int main(int argc, char** argv) {
  CLI::App app{"tessera-controller"};
  bool version = false;
  std::vector<std::string> validate;
  app.add_flag("--version", version, "print the version and exit");
  app.add_option("--validate", validate,
                 "check YAML/JSON files (configs, policies, claims, slices) and print them "
                 "normalized; exit 1 if any is invalid")
      ->check(CLI::ExistingFile);
  CLI11_PARSE(app, argc, argv);

  if (version) {
    std::cout << "tessera-controller " << tessera::tools::Version() << "\n";
    return 0;
  }
  if (!validate.empty()) return tessera::tools::ValidateFiles(validate, std::cout, std::cerr);
  std::cerr << "tessera-controller: serving is not implemented yet; use --validate or --version\n";
  return 2;
}
