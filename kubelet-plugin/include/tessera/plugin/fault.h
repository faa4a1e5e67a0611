#ifndef TESSERA_PLUGIN_FAULT_H_
#define TESSERA_PLUGIN_FAULT_H_

// Fault points for the crash tests: at each named step of prepare and unprepare the plugin can be
// made to kill itself (SIGKILL, no clean-up, as a node's OOM killer or power cut would), so the
// tests can check that the restarted plugin leaks nothing and creates nothing twice.
//
//   TESSERA_FAULT_POINT=prepare.mig-created        crash the first time the step is reached
//   TESSERA_FAULT_POINT=prepare.mig-created:3      crash the third time
//
// Compiled in only when TESSERA_FAULT_INJECTION is defined (CMake option of the same name, on in
// development and test builds, off for release images); otherwise Reached() is a no-op.

#include <string_view>

namespace tessera::plugin::fault {

// Every fault point, in the order a prepare and an unprepare reach them (for the tests' loop).
inline constexpr std::string_view kPoints[] = {
    "prepare.recorded",         // the claim's intent is on disk, nothing done yet
    "prepare.mig-created",      // the MIG instance exists, its GI ID is not recorded yet
    "prepare.shared",           // the MPS daemon runs / the time slice is set
    "prepare.cdi-written",      // the CDI spec is on disk, the claim not yet marked prepared
    "prepare.done",             // marked prepared, the reply not yet sent
    "unprepare.recorded",       // marked unpreparing, nothing undone yet
    "unprepare.cdi-removed",    // the CDI spec is gone
    "unprepare.shared",         // the MPS daemon stopped / time slice restored
    "unprepare.mig-destroyed",  // the MIG instance is gone, the record still names it
    "unprepare.done",           // the record is gone, the reply not yet sent
};

void Reached(std::string_view point);

}  // namespace tessera::plugin::fault

#endif  // TESSERA_PLUGIN_FAULT_H_
