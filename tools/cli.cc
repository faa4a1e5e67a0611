#include "tessera/tools/cli.h"

#include <pthread.h>
#include <signal.h>

#include <fstream>
#include <iostream>
#include <sstream>

#include "CLI/CLI.hpp"
#include "spdlog/pattern_formatter.h"
#include "spdlog/sinks/stdout_sinks.h"
#include "spdlog/spdlog.h"
#include "tessera/api/strings.h"
#include "tessera/api/validate.h"
#include "tessera/api/yaml.h"

namespace tessera::tools {

std::string Version() { return TESSERA_VERSION; }

namespace {

// The log message as a JSON string body (quotes, backslashes and control characters escaped).
class JsonEscapedMessage : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    for (char c : msg.payload) {
      switch (c) {
        case '"':
          dest.append(std::string_view("\\\""));
          break;
        case '\\':
          dest.append(std::string_view("\\\\"));
          break;
        case '\n':
          dest.append(std::string_view("\\n"));
          break;
        case '\t':
          dest.append(std::string_view("\\t"));
          break;
        default:
          if (static_cast<unsigned char>(c) < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof(buf), "\\u%04x", c);
            dest.append(std::string_view(buf));
          } else {
            dest.push_back(c);
          }
      }
    }
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JsonEscapedMessage>();
  }
};

}  // namespace

absl::Status ConfigureLogging(const std::string& format, int verbosity, const std::string& name) {
  if (format != "text" && format != "json") {
    return absl::InvalidArgumentError(
        StrCat("--log-format: \"", format, "\" is not one of text, json"));
  }
  if (verbosity < 0 || verbosity > 10) {
    return absl::InvalidArgumentError(StrCat("-v: ", verbosity, " is not in [0, 10]"));
  }
  auto logger = spdlog::stderr_logger_mt(name);
  if (format == "json") {
    auto formatter = std::make_unique<spdlog::pattern_formatter>();
    formatter->add_flag<JsonEscapedMessage>('*').set_pattern(
        R"({"ts":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l","logger":"%n","msg":"%*"})");
    logger->set_formatter(std::move(formatter));
  } else {
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %L %n: %v");
  }
  logger->set_level(verbosity == 0   ? spdlog::level::info
                    : verbosity == 1 ? spdlog::level::debug
                                     : spdlog::level::trace);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
  return absl::OkStatus();
}

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

void AddCommonFlags(CLI::App& app, CommonFlags& flags) {
  app.add_flag("--version", flags.version, "print the version and exit");
  app.add_option("--validate", flags.validate,
                 "check YAML/JSON files (configs, policies, claims, slices) and print them "
                 "normalized; exit 1 if any is invalid")
      ->check(CLI::ExistingFile);
  app.add_option("--metrics-address", flags.metrics_address, "[host]:port for /metrics; 0: off")
      ->envname("TESSERA_METRICS_ADDRESS")
      ->capture_default_str();
  app.add_option("--health-address", flags.health_address,
                 "[host]:port for /healthz and /readyz; 0: off")
      ->envname("TESSERA_HEALTH_ADDRESS")
      ->capture_default_str();
  app.add_option("--log-format", flags.log_format, "text or json")
      ->envname("TESSERA_LOG_FORMAT")
      ->capture_default_str();
  app.add_option("-v,--verbosity", flags.verbosity, "0 info, 1 debug, 2 trace")
      ->envname("TESSERA_LOG_VERBOSITY")
      ->capture_default_str();
}

std::optional<int> RunInfoFlags(const CommonFlags& flags, std::string_view binary) {
  if (flags.version) {
    std::cout << binary << " " << Version() << "\n";
    return 0;
  }
  if (!flags.validate.empty()) return ValidateFiles(flags.validate, std::cout, std::cerr);
  return std::nullopt;
}

namespace {
sigset_t StopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  return set;
}
}  // namespace

void BlockStopSignals() {
  const sigset_t set = StopSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int WaitForStopSignal() {
  const sigset_t set = StopSignals();
  int sig = 0;
  sigwait(&set, &sig);
  return sig;
}

}  // namespace tessera::tools
