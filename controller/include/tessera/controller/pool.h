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
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tessera/api/resource.h"

namespace tessera::controller {

// What the planner needs of a stored slice. The spec itself is not kept: a digest of its
// canonical form (re-encoded by tessera's own types, so the server's spelling of quantities does
// not matter) says whether it changed, and a digest of its device and counter-set names whether
// membership did. A controller of 500 nodes x 200 devices would otherwise hold every slice twice.
struct StoredSlice {
  std::string name;
  std::string uid;
  std::string resource_version;
  std::int64_t object_generation = 0;  // metadata.generation; 0: unknown
  api::ResourcePool pool;
  std::string digest;
  std::string members;   // MembersDigest
  bool decoded = false;  // false: the spec could not be read; it is rewritten or deleted
};

// FNV-1a 64 of `text` and its length: "<16 hex>-<bytes>".
std::string DigestOfText(const std::string& text);
// The digest of a spec's canonical form.
std::string SpecDigest(const api::ResourceSliceSpec& spec);
// The digest of a spec's device and counter-set names.
std::string MembersDigest(const api::ResourceSliceSpec& spec);

// Every slice the controller writes carries this annotation: the digests above, the pool and the
// metadata.generation the write will give the object. A watch event carrying only metadata (the
// controller's slice watch asks for PartialObjectMetadata) is then enough to know a slice, as long
// as metadata.generation agrees; a spec changed by anyone else bumps it, and the slice is read.
//   tessera.dev/published: {"objectGeneration":1,"digest":"...","members":"...",
//                           "pool":"n0","generation":3,"resourceSliceCount":5,"nodeName":"n0"}
inline constexpr char kPublishedAnnotation[] = "tessera.dev/published";

// A ResourceSlice (full, or as CompactSlice left it) as the planner sees it.
StoredSlice ToStoredSlice(const api::Json& object);

// A slice reduced to metadata (name, uid, resourceVersion, generation), spec.driver/nodeName/pool
// and the digests above: the form the controller's informer caches. From a whole object.
api::Json CompactSlice(api::Json object);

// The compact form from metadata alone (PartialObjectMetadata or a whole object): nullopt unless
// the object has a readable tessera.dev/published annotation whose objectGeneration is its
// metadata.generation.
// `driver`: the driver the slice is known to belong to (metadata does not say).
std::optional<api::Json> CompactFromAnnotation(const api::Json& object, std::string_view driver);

// The compact form of a slice known only by its metadata and not to be trusted (no annotation,
// or one a spec change has made stale, and the whole object could not be read): not decoded, in
// the pool the annotation or the owning Node names, so the planner rewrites or deletes it.
api::Json UnreadableCompact(const api::Json& object, std::string_view driver);

// The compact form of a slice this controller just wrote: the annotation of what was sent, the
// metadata from the server's answer (which need not include the spec). No decoding, no copy of
// the devices.
api::Json CompactWritten(const api::Json& sent, const api::Json& stored);

struct PoolPlan {
  std::int64_t generation = 0;
  bool new_generation = false;
  std::vector<api::Json> applies;    // complete objects, in slice order
  std::vector<std::string> bodies;   // each apply serialised (what is sent)
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

// Fields behind feature gates that a spec uses: "sharedCounters", "consumesCounters",
// "allowMultipleAllocations".
std::vector<std::string> GatedFields(const api::Json& spec);

// Fields of the `sent` spec that the server dropped from the `stored` one (of GatedFields): a
// feature gate is off in the API server.
std::vector<std::string> DroppedFields(const api::Json& sent, const api::Json& stored);

}  // namespace tessera::controller

#endif  // TESSERA_CONTROLLER_POOL_H_
