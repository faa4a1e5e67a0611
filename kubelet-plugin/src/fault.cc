#include "tessera/plugin/fault.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace tessera::plugin::fault {

#ifdef TESSERA_FAULT_INJECTION
namespace {

struct Armed {
  std::string point;
  int countdown = 0;
};

const Armed& Config() {
  static const Armed armed = [] {
    Armed a;
    const char* env = std::getenv("TESSERA_FAULT_POINT");
    if (env == nullptr || *env == '\0') return a;
    std::string spec = env;
    a.countdown = 1;
    if (const std::size_t colon = spec.find(':'); colon != std::string::npos) {
      a.countdown = std::atoi(spec.c_str() + colon + 1);
      spec.resize(colon);
    }
    a.point = spec;
    return a;
  }();
  return armed;
}

std::atomic<int> hits{0};

}  // namespace

void Reached(std::string_view point) {
  const Armed& a = Config();
  if (a.point.empty() || a.point != point) return;
  if (hits.fetch_add(1) + 1 < a.countdown) return;
  std::fprintf(stderr, "fault point %s reached: killing the plugin (TESSERA_FAULT_POINT)\n",
               a.point.c_str());
  std::fflush(stderr);
  ::kill(::getpid(), SIGKILL);
  ::_exit(137);
}
#else
void Reached(std::string_view) {}
#endif

}  // namespace tessera::plugin::fault
