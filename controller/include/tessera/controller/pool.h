#ifndef TESSERA_CONTROLLER_POOL_H_
#define TESSERA_CONTROLLER_POOL_H_

// Planning the writes that turn a node's stored ResourceSlices into the desired ones (the rules of
// the upstream publisher, dra-protocol reference §10.3, with tessera's naming and generation
// rule).
//
// Names: "<node>-<driver>-g<generation>-<index, 5 digits>". Within one generation name order is
// slice order, which the 1.36+ allocator follows; a name says which generation and position a
// slice was written for, so a restarted controller, or one whose informer lags, recognises its own
// slices; and server-side apply of a known name is idempotent, so a retried create never
// duplicates a slice.
//
// Generation: kept when the pool has the same number of slices and every slice keeps the same
// devices and counter sets (by name): then only changed slices are re-applied in place, each
// still a valid member of the pool on its own, and the pool never becomes incomplete (steering:
// re-ordered devices, attributes of a MIG instance that was created). Otherwise the whole desired
// pool is written under generation + 1 and the old slices are deleted only after that (the
// scheduler ignores lower generations, so the pool is incomplete only while the new slices are
// being created). Slices whose names are not ours, or whose spec disagrees with their name, are
// deleted.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tessera/api/resource.h"

namespace tessera::controller {

// What the planner needs of a stored slice. The spec itself is not kept: a digest of its
// canonical form (re-encoded by tessera's own types, so the server's spelling of quantities does
// not matter) says whether it changed, and the device and counter-set names say whether
// membership did. A controller of 500 nodes x 200 devices would otherwise hold every slice twice.
struct StoredSlice {
  std::string name;
  std::string uid;
  std::string resource_version;
  api::ResourcePool pool;
  std::string digest;
  std::vector<std::string> devices;       // names, in slice order
  std::vector<std::string> counter_sets;  // names
  bool decoded = false;  // false: the spec could not be read; it is rewritten or deleted
};

// The digest of a spec's canonical form.
std::string SpecDigest(const api::ResourceSliceSpec& spec);

// A ResourceSlice (full, or as CompactSlice left it) as the planner sees it.
StoredSlice ToStoredSlice(const api::Json& object);

// A slice reduced to metadata (name, uid, resourceVersion), spec.driver/nodeName/pool and the
// digest and names above: the form the controller's informer caches.
api::Json CompactSlice(api::Json object);

// The compact form of a slice this controller just wrote: the spec from what was sent, `digest`
// its SpecDigest (PoolPlan::digests), the metadata from the server's answer. No decoding, no copy
// of the devices.
api::Json CompactWritten(const api::Json& sent, const api::Json& stored, const std::string& digest);

struct PoolPlan {
  std::int64_t generation = 0;
  bool new_generation = false;
  std::vector<api::Json> applies;    // complete objects, in slice order
  std::vector<std::string> digests;  // SpecDigest of each apply's spec
  std::vector<StoredSlice> deletes;
  // Slices re-applied under the kept generation (devices re-ordered, attributes changed).
  int updated_in_place = 0;
};

struct PoolTarget {
  std::string node;
  std::string node_uid;  // the Node's UID, for the owner reference
  std::string driver;
};

std::string SliceName(const PoolTarget& target, std::int64_t generation, std::size_t index);

// `desired` from partitioner::SplitIntoSlices (generation and count are overwritten).
PoolPlan PlanPool(const PoolTarget& target, std::span<const api::ResourceSliceSpec> desired,
                  std::span<const StoredSlice> stored);

// Fields of the `sent` spec that the server dropped from the `stored` one ("sharedCounters",
// "consumesCounters", "allowMultipleAllocations"): a feature gate is off in the API server.
std::vector<std::string> DroppedFields(const api::Json& sent, const api::Json& stored);

}  // namespace tessera::controller

#endif  // TESSERA_CONTROLLER_POOL_H_
