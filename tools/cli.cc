#include "tessera/tools/cli.h"

#include <fstream>
#include <iostream>
#include <sstream>

#include "tessera/api/validate.h"
#include "tessera/api/yaml.h"

namespace tessera::tools {

std::string Version() { return TESSERA_VERSION; }

int ValidateFiles(const std::vector<std::string>& paths, std::ostream& out, std::ostream& err) {
  int failures = 0;
  for (const std::string& path : paths) {
    std::ifstream in(path);
    if (!in) {
      err << path << ": cannot open file\n";
      ++failures;
      continue;
    }
    std::stringstream text;
    text << in.rdbuf();
    absl::StatusOr<std::vector<api::Json>> docs = api::ParseYamlDocuments(text.str());
    if (!docs.ok()) {
      err << path << ": " << docs.status().message() << "\n";
      ++failures;
      continue;
    }
    for (size_t i = 0; i < docs->size(); ++i) {
      absl::StatusOr<api::Json> valid = api::ValidateDocument((*docs)[i]);
      if (!valid.ok()) {
        err << path << " (document " << i + 1 << "): " << valid.status().message() << "\n";
        ++failures;
        continue;
      }
      out << "---\n" << api::ToYaml(*valid);
    }
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace tessera::tools
