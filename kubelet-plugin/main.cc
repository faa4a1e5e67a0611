// tessera-kubelet-plugin: prepares and unprepares ResourceClaims on one GPU node.
// Today it validates configuration files; serving arrives with issue #6.
#include <iostream>

#include "CLI/CLI.hpp"
#include "tessera/tools/cli.h"

int main(int argc, char** argv) {
  CLI::App app{"tessera-kubelet-plugin"};
  bool version = false;
  std::vector<std::string> validate;
  app.add_flag("--version", version, "print the version and exit");
  app.add_option("--validate", validate,
                 "check YAML/JSON files (configs, policies, claims, slices) and print them "
                 "normalized; exit 1 if any is invalid")
      ->check(CLI::ExistingFile);
  CLI11_PARSE(app, argc, argv);

  if (version) {
    std::cout << "tessera-kubelet-plugin " << tessera::tools::Version() << "\n";
    return 0;
  }
  if (!validate.empty()) return tessera::tools::ValidateFiles(validate, std::cout, std::cerr);
  std::cerr
      << "tessera-kubelet-plugin: serving is not implemented yet; use --validate or --version\n";
  return 2;
}
