//===- host_memory.cc - The allocator artifacts import --------------------===//
//
// This file implements loom_rt_alloc and loom_rt_free, through which
// generated code allocates every temporary buffer. Small blocks come from
// the C allocator directly. Large blocks are cached when freed and handed out
// again, because the C allocator returns them to the system on free, and a
// model that allocates megabytes of temporaries per call would otherwise
// fault all of those pages in again on every call.
//
//===----------------------------------------------------------------------===//

#include "internal.h"

#include <algorithm>
#include <cstdlib>
#include <mutex>

using namespace loom;

namespace {

/// Large blocks are at least this aligned, and their capacity is a multiple
/// of this granule so that requests of nearly equal size share blocks.
constexpr size_t kLargeAlignment = 64;
constexpr size_t kCapacityGranule = 4096;

struct CachedBlock {
  void *ptr;
  size_t capacity;
};

/// Large blocks in use (pointer -> capacity), the side table loom_rt_free
/// consults to tell large blocks from small ones, and freed large blocks in
/// the order they were freed, oldest first.
class BlockCache {
public:
  void *allocate(size_t size, size_t alignment) {
    size_t capacity = (size + kCapacityGranule - 1) & ~(kCapacityGranule - 1);
    if (void *ptr = takeCached(size, alignment))
      return ptr;
    void *ptr = nullptr;
    size_t align = std::max(alignment, kLargeAlignment);
    if (posix_memalign(&ptr, align, capacity) != 0) {
      // Cached blocks may be what exhausted memory.
      trim();
      if (posix_memalign(&ptr, align, capacity) != 0)
        return nullptr;
    }
    std::lock_guard<std::mutex> lock(mutex);
    live.emplace(ptr, capacity);
    return ptr;
  }

  /// Caches `ptr` when it is a large block in use and returns true; returns
  /// false for any other pointer.
  bool release(void *ptr) {
    void *evicted[kAllocCacheMaxBlocks + 1];
    size_t numEvicted = 0;
    {
      std::lock_guard<std::mutex> lock(mutex);
      auto it = live.find(ptr);
      if (it == live.end())
        return false;
      size_t capacity = it->second;
      live.erase(it);
      if (capacity > kAllocCacheMaxBytes) {
        evicted[numEvicted++] = ptr;
      } else {
        cached.push_back({ptr, capacity});
        cachedBytes += capacity;
        while (cached.size() > kAllocCacheMaxBlocks ||
               cachedBytes > kAllocCacheMaxBytes) {
          evicted[numEvicted++] = cached.front().ptr;
          cachedBytes -= cached.front().capacity;
          cached.erase(cached.begin());
        }
      }
    }
    for (size_t i = 0; i < numEvicted; ++i)
      std::free(evicted[i]);
    return true;
  }

  void trim() {
    std::vector<CachedBlock> blocks;
    {
      std::lock_guard<std::mutex> lock(mutex);
      blocks.swap(cached);
      cachedBytes = 0;
    }
    for (const CachedBlock &block : blocks)
      std::free(block.ptr);
  }

  AllocatorStats stats() {
    std::lock_guard<std::mutex> lock(mutex);
    AllocatorStats s;
    s.liveLargeBlocks = live.size();
    s.cachedBlocks = cached.size();
    s.cachedBytes = cachedBytes;
    return s;
  }

private:
  std::mutex mutex;
  std::unordered_map<void *, size_t> live;
  std::vector<CachedBlock> cached;
  size_t cachedBytes = 0;

  /// The smallest cached block that holds `size` bytes at `alignment`
  /// without wasting more than half of itself, moved to the live table.
  void *takeCached(size_t size, size_t alignment) {
    std::lock_guard<std::mutex> lock(mutex);
    size_t best = cached.size();
    for (size_t i = 0; i < cached.size(); ++i) {
      const CachedBlock &block = cached[i];
      if (block.capacity < size || block.capacity / 2 > size ||
          reinterpret_cast<uintptr_t>(block.ptr) % alignment != 0)
        continue;
      if (best == cached.size() || block.capacity < cached[best].capacity)
        best = i;
    }
    if (best == cached.size())
      return nullptr;
    CachedBlock block = cached[best];
    cached.erase(cached.begin() + best);
    cachedBytes -= block.capacity;
    live.emplace(block.ptr, block.capacity);
    return block.ptr;
  }
};

/// Never destroyed: artifacts may free blocks during static destruction.
BlockCache &blockCache() {
  static BlockCache *instance = new BlockCache;
  return *instance;
}

} // namespace

AllocatorStats loom::allocatorStats() { return blockCache().stats(); }

void loom::allocatorTrim() { blockCache().trim(); }

extern "C" {

void *loom_rt_alloc(int64_t size, int64_t alignment) {
  if (size < 0 || alignment <= 0 || alignment > 4096 ||
      (alignment & (alignment - 1)) != 0)
    return nullptr;
  size_t bytes = static_cast<size_t>(size);
  size_t align = static_cast<size_t>(alignment);
  if (bytes >= kAllocLargeThreshold)
    return blockCache().allocate(bytes, align);
  // A zero-byte block is a unique one-byte block, so that it is freed like
  // any other.
  void *ptr = nullptr;
  if (posix_memalign(&ptr, std::max(align, sizeof(void *)),
                     std::max<size_t>(bytes, 1)) != 0)
    return nullptr;
  return ptr;
}

void loom_rt_free(void *ptr) {
  if (ptr && !blockCache().release(ptr))
    std::free(ptr);
}

} // extern "C"
