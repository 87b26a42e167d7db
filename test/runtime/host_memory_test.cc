//===- host_memory_test.cc - Tests of loom_rt_alloc and loom_rt_free ------===//
//
// This file tests the allocator artifacts import: alignment, rejected
// arguments, zero-byte blocks, reuse of freed large blocks (best fit within
// twice the request), the cache's bounds in blocks and bytes, and concurrent
// use. The cache is process-wide, so every test starts and ends with it empty.
//
//===----------------------------------------------------------------------===//

#include "test_util.h"

#include "internal.h"

#include <algorithm>
#include <cstring>
#include <random>
#include <set>
#include <thread>

namespace {

constexpr int64_t kMiB = int64_t(1) << 20;

bool isAligned(const void *p, int64_t alignment) {
  return reinterpret_cast<uintptr_t>(p) % static_cast<uintptr_t>(alignment) ==
         0;
}

class HostMemory : public ::testing::Test {
protected:
  void SetUp() override { loom::allocatorTrim(); }
  void TearDown() override { loom::allocatorTrim(); }
};

TEST_F(HostMemory, HonorsAlignment) {
  for (int64_t size : {int64_t(1), int64_t(3), int64_t(100), int64_t(4097),
                       int64_t(300000), 5 * kMiB}) {
    for (int64_t alignment : {1, 2, 4, 8, 16, 32, 64, 128, 1024, 4096}) {
      void *p = loom_rt_alloc(size, alignment);
      ASSERT_NE(p, nullptr) << size << " bytes at " << alignment;
      EXPECT_TRUE(isAligned(p, alignment)) << size << " bytes at " << alignment;
      if (size >= int64_t(loom::kAllocLargeThreshold))
        EXPECT_TRUE(isAligned(p, 64)) << "large blocks are 64-byte aligned";
      std::memset(p, 0xab, static_cast<size_t>(size));
      loom_rt_free(p);
    }
  }
  // A cached block is only reused where its address fits the alignment.
  for (int i = 0; i < 4; ++i) {
    void *p = loom_rt_alloc(3 * kMiB, i % 2 ? 4096 : 64);
    EXPECT_TRUE(isAligned(p, i % 2 ? 4096 : 64));
    loom_rt_free(p);
  }
}

TEST_F(HostMemory, RejectsBadArguments) {
  for (int64_t alignment : {int64_t(0), int64_t(-1), int64_t(-64), int64_t(3),
                            int64_t(48), int64_t(8192), kMiB})
    EXPECT_EQ(loom_rt_alloc(64, alignment), nullptr) << alignment;
  EXPECT_EQ(loom_rt_alloc(-1, 64), nullptr);
  EXPECT_EQ(loom_rt_alloc(INT64_MIN, 64), nullptr);
  loom_rt_free(nullptr);
  EXPECT_EQ(loom::allocatorStats().liveLargeBlocks, 0u);
}

TEST_F(HostMemory, ZeroBytesGiveUniqueBlocks) {
  void *a = loom_rt_alloc(0, 64);
  void *b = loom_rt_alloc(0, 64);
  void *c = loom_rt_alloc(0, 1);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_NE(c, nullptr);
  EXPECT_NE(a, b);
  EXPECT_TRUE(isAligned(a, 64));
  EXPECT_TRUE(isAligned(b, 64));
  loom_rt_free(a);
  loom_rt_free(b);
  loom_rt_free(c);
}

TEST_F(HostMemory, ReusesFreedLargeBlock) {
  void *p = loom_rt_alloc(8 * kMiB, 64);
  ASSERT_NE(p, nullptr);
  std::memset(p, 1, 8 * kMiB);
  EXPECT_EQ(loom::allocatorStats().liveLargeBlocks, 1u);
  loom_rt_free(p);
  loom::AllocatorStats stats = loom::allocatorStats();
  EXPECT_EQ(stats.liveLargeBlocks, 0u);
  EXPECT_EQ(stats.cachedBlocks, 1u);
  EXPECT_EQ(stats.cachedBytes, size_t(8 * kMiB));
  for (int call = 0; call < 3; ++call) {
    void *q = loom_rt_alloc(8 * kMiB, 64);
    EXPECT_EQ(q, p) << "call " << call;
    stats = loom::allocatorStats();
    EXPECT_EQ(stats.liveLargeBlocks, 1u);
    EXPECT_EQ(stats.cachedBlocks, 0u);
    loom_rt_free(q);
  }
  // A slightly smaller request fits the same block; small blocks are never
  // cached.
  EXPECT_EQ(loom_rt_alloc(8 * kMiB - 100, 64), p);
  void *small = loom_rt_alloc(1000, 64);
  loom_rt_free(small);
  loom_rt_free(p);
  EXPECT_EQ(loom::allocatorStats().cachedBlocks, 1u);
}

TEST_F(HostMemory, PicksBestFitWithinTwiceTheSize) {
  void *nine = loom_rt_alloc(9 * kMiB, 64);
  void *six = loom_rt_alloc(6 * kMiB, 64);
  void *eight = loom_rt_alloc(8 * kMiB, 64);
  ASSERT_TRUE(nine && six && eight);
  loom_rt_free(nine);
  loom_rt_free(six);
  loom_rt_free(eight);
  ASSERT_EQ(loom::allocatorStats().cachedBlocks, 3u);

  // 5 MiB fits all three within 10 MiB; the smallest wins.
  void *a = loom_rt_alloc(5 * kMiB, 64);
  EXPECT_EQ(a, six);
  // 3 MiB would waste more than half of 8 or 9 MiB; 12 MiB fits neither.
  void *b = loom_rt_alloc(3 * kMiB, 64);
  void *c = loom_rt_alloc(12 * kMiB, 64);
  EXPECT_NE(b, nine);
  EXPECT_NE(b, eight);
  EXPECT_NE(c, nine);
  EXPECT_NE(c, eight);
  EXPECT_EQ(loom::allocatorStats().cachedBlocks, 2u);
  // 4.5 MiB fits both; 8 MiB is the better fit.
  void *d = loom_rt_alloc(9 * kMiB / 2, 64);
  EXPECT_EQ(d, eight);
  void *e = loom_rt_alloc(9 * kMiB, 64);
  EXPECT_EQ(e, nine);
  EXPECT_EQ(loom::allocatorStats().liveLargeBlocks, 5u);
  for (void *p : {a, b, c, d, e})
    loom_rt_free(p);
  EXPECT_EQ(loom::allocatorStats().liveLargeBlocks, 0u);
}

TEST_F(HostMemory, CacheIsBoundedInBlocks) {
  const size_t bound = loom::kAllocCacheMaxBlocks;
  std::vector<void *> blocks;
  for (size_t i = 0; i < bound + 8; ++i)
    blocks.push_back(loom_rt_alloc(kMiB, 64));
  for (void *p : blocks)
    loom_rt_free(p);
  loom::AllocatorStats stats = loom::allocatorStats();
  EXPECT_EQ(stats.liveLargeBlocks, 0u);
  EXPECT_EQ(stats.cachedBlocks, bound);
  EXPECT_EQ(stats.cachedBytes, bound * size_t(kMiB));
  // The oldest blocks were evicted; the newest are handed out again.
  std::set<void *> newest(blocks.begin() + 8, blocks.end());
  std::vector<void *> again;
  for (size_t i = 0; i < bound; ++i) {
    again.push_back(loom_rt_alloc(kMiB, 64));
    EXPECT_EQ(newest.count(again.back()), 1u) << i;
  }
  EXPECT_EQ(loom::allocatorStats().cachedBlocks, 0u);
  for (void *p : again)
    loom_rt_free(p);
  // Repeated rounds do not grow the cache.
  for (int round = 0; round < 3; ++round) {
    std::vector<void *> more;
    for (size_t i = 0; i < 2 * bound; ++i)
      more.push_back(loom_rt_alloc(kMiB + int64_t(i) * 8192, 64));
    for (void *p : more)
      loom_rt_free(p);
    EXPECT_LE(loom::allocatorStats().cachedBlocks, bound);
  }
}

TEST_F(HostMemory, CacheIsBoundedInBytes) {
  // Address space only: the pages are never touched.
  const int64_t quarter = int64_t(loom::kAllocCacheMaxBytes / 4);
  std::vector<void *> blocks;
  for (int i = 0; i < 5; ++i) {
    blocks.push_back(loom_rt_alloc(quarter, 64));
    if (!blocks.back())
      GTEST_SKIP() << "not enough address space";
  }
  for (void *p : blocks)
    loom_rt_free(p);
  loom::AllocatorStats stats = loom::allocatorStats();
  EXPECT_EQ(stats.cachedBlocks, 4u);
  EXPECT_EQ(stats.cachedBytes, loom::kAllocCacheMaxBytes);
  // A block above the byte bound is never cached.
  void *huge = loom_rt_alloc(int64_t(loom::kAllocCacheMaxBytes) + 1, 64);
  if (!huge)
    GTEST_SKIP() << "not enough address space";
  EXPECT_EQ(loom::allocatorStats().cachedBlocks, 4u);
  loom_rt_free(huge);
  stats = loom::allocatorStats();
  EXPECT_EQ(stats.cachedBlocks, 4u);
  EXPECT_EQ(stats.cachedBytes, loom::kAllocCacheMaxBytes);
  EXPECT_EQ(stats.liveLargeBlocks, 0u);
}

TEST_F(HostMemory, ConcurrentUse) {
  const int64_t sizes[] = {0,      64,   4096,     200000,
                           300000, kMiB, 3 * kMiB, 3 * kMiB + 5};
  const int64_t alignments[] = {8, 64, 4096};
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      struct Live {
        unsigned char *p;
        int64_t size;
        unsigned char tag;
      };
      std::vector<Live> live;
      for (int i = 0; i < 400; ++i) {
        int64_t size = sizes[rng() % std::size(sizes)];
        int64_t alignment = alignments[rng() % std::size(alignments)];
        auto *p = static_cast<unsigned char *>(loom_rt_alloc(size, alignment));
        if (!p || !isAligned(p, alignment)) {
          ++failures;
          continue;
        }
        unsigned char tag = static_cast<unsigned char>(t * 64 + i % 64);
        std::memset(p, tag, static_cast<size_t>(size));
        live.push_back({p, size, tag});
        if (live.size() > 3 || rng() % 2) {
          size_t k = rng() % live.size();
          Live l = live[k];
          if (l.size > 0 && (l.p[0] != l.tag || l.p[l.size / 2] != l.tag ||
                             l.p[l.size - 1] != l.tag))
            ++failures;
          loom_rt_free(l.p);
          live.erase(live.begin() + static_cast<ptrdiff_t>(k));
        }
      }
      for (const Live &l : live)
        loom_rt_free(l.p);
    });
  }
  for (std::thread &thread : threads)
    thread.join();
  EXPECT_EQ(failures.load(), 0);
  loom::AllocatorStats stats = loom::allocatorStats();
  EXPECT_EQ(stats.liveLargeBlocks, 0u);
  EXPECT_LE(stats.cachedBlocks, loom::kAllocCacheMaxBlocks);
  EXPECT_LE(stats.cachedBytes, loom::kAllocCacheMaxBytes);
}

} // namespace
