//===- host_kernels_test.cc - Tests of the host functions -----------------===//
//
// This file tests the functions artifacts import (the allocator has its own
// file): the lookup by name, the thread pool's coverage guarantees on several
// team sizes, nested loops running inline, concurrent use, and f32 matmul and
// batch matmul against a float64 reference over transposes, accumulation,
// strided and offset views, and edge sizes, on both the oneDNN path (unit
// inner strides) and the packed fallback.
//
//===----------------------------------------------------------------------===//

#include "test_util.h"

#include "internal.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <random>
#include <thread>

namespace {

TEST(HostKernels, LookupByName) {
  EXPECT_EQ(loom_host_function_lookup("loom_rt_matmul_f32"),
            reinterpret_cast<void *>(&loom_rt_matmul_f32));
  EXPECT_NE(loom_host_function_lookup("loom_rt_batch_matmul_f32"), nullptr);
  EXPECT_NE(loom_host_function_lookup("loom_rt_parallel_for"), nullptr);
  EXPECT_EQ(loom_host_function_lookup("loom_rt_alloc"),
            reinterpret_cast<void *>(&loom_rt_alloc));
  EXPECT_EQ(loom_host_function_lookup("loom_rt_free"),
            reinterpret_cast<void *>(&loom_rt_free));
  EXPECT_EQ(loom_host_function_lookup("loom_rt_nothing"), nullptr);
  EXPECT_EQ(loom_host_function_lookup(nullptr), nullptr);
  EXPECT_GE(loom_runtime_num_threads(), 1);
}

TEST(HostKernels, NumThreadsFollowsEnvironment) {
  // ctest runs this test only with LOOM_NUM_THREADS=3 (CMakeLists.txt).
  const char *env = std::getenv("LOOM_NUM_THREADS");
  ASSERT_NE(env, nullptr) << "run with LOOM_NUM_THREADS set";
  EXPECT_EQ(loom_runtime_num_threads(), std::atoi(env));
}

struct Coverage {
  std::vector<std::atomic<int>> hits;
  explicit Coverage(int64_t n) : hits(static_cast<size_t>(n)) {}
  static void body(void *ctx, int64_t begin, int64_t end) {
    auto *c = static_cast<Coverage *>(ctx);
    for (int64_t i = begin; i < end; ++i)
      c->hits[i].fetch_add(1);
  }
  bool exactlyOnce() const {
    for (const auto &h : hits)
      if (h.load() != 1)
        return false;
    return true;
  }
};

TEST(HostKernels, ParallelForCoversRangeOnce) {
  for (int64_t n : {0, 1, 2, 7, 1000, 100003}) {
    Coverage c(n);
    loom_rt_parallel_for(Coverage::body, &c, n);
    EXPECT_TRUE(c.exactlyOnce()) << n;
  }
}

TEST(HostKernels, ParallelForCoversRangeOnceOnAnyTeamSize) {
  for (int threads : {1, 2, 3, 4, 7}) {
    for (int64_t n : {0, 1, 2, 3, 5, 8, 29, 1000, 100003}) {
      Coverage c(n);
      loom::parallelForWithThreads(threads, Coverage::body, &c, n);
      EXPECT_TRUE(c.exactlyOnce()) << n << " on " << threads << " threads";
    }
  }
}

/// Records the calls of an inner loop issued from inside an outer one.
struct NestedCalls {
  struct Inner {
    std::thread::id caller;
    std::vector<std::pair<int64_t, int64_t>> ranges;
    std::vector<std::thread::id> threads;
  };
  std::vector<Inner> inner;

  explicit NestedCalls(int64_t n) : inner(static_cast<size_t>(n)) {}

  static void innerBody(void *ctx, int64_t begin, int64_t end) {
    // Only one thread touches an Inner when the inner loop runs inline.
    auto *in = static_cast<Inner *>(ctx);
    in->ranges.emplace_back(begin, end);
    in->threads.push_back(std::this_thread::get_id());
  }
  static void outerBody(void *ctx, int64_t begin, int64_t end) {
    auto *calls = static_cast<NestedCalls *>(ctx);
    for (int64_t i = begin; i < end; ++i) {
      // Slow enough that every thread of the team takes part.
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      calls->inner[i].caller = std::this_thread::get_id();
      loom_rt_parallel_for(innerBody, &calls->inner[i], 1000);
    }
  }
  ::testing::AssertionResult ranInline() const {
    for (size_t i = 0; i < inner.size(); ++i) {
      const Inner &in = inner[i];
      if (in.ranges.size() != 1 ||
          in.ranges[0] != std::pair<int64_t, int64_t>(0, 1000) ||
          in.threads[0] != in.caller)
        return ::testing::AssertionFailure()
               << "inner loop " << i << " ran in " << in.ranges.size()
               << " pieces or on another thread";
    }
    return ::testing::AssertionSuccess();
  }
};

TEST(HostKernels, ParallelForNestedRunsInline) {
  NestedCalls viaPool(64);
  loom_rt_parallel_for(NestedCalls::outerBody, &viaPool, 64);
  EXPECT_TRUE(viaPool.ranInline());
  for (int threads : {2, 4}) {
    NestedCalls calls(64);
    loom::parallelForWithThreads(threads, NestedCalls::outerBody, &calls, 64);
    EXPECT_TRUE(calls.ranInline()) << threads << " threads";
  }
}

TEST(HostKernels, ParallelForNestedAndConcurrent) {
  struct Outer {
    std::vector<Coverage> inner;
    static void body(void *ctx, int64_t begin, int64_t end) {
      auto *o = static_cast<Outer *>(ctx);
      for (int64_t i = begin; i < end; ++i)
        loom_rt_parallel_for(Coverage::body, &o->inner[i], 100);
    }
  };
  Outer outer;
  for (int i = 0; i < 16; ++i)
    outer.inner.emplace_back(100);
  loom_rt_parallel_for(Outer::body, &outer, 16);
  for (const Coverage &c : outer.inner)
    EXPECT_TRUE(c.exactlyOnce());

  std::vector<Coverage> perThread;
  for (int i = 0; i < 4; ++i)
    perThread.emplace_back(50000);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&, i] {
      for (int rep = 0; rep < 10; ++rep) {
        Coverage c(5000);
        loom_rt_parallel_for(Coverage::body, &c, 5000);
        EXPECT_TRUE(c.exactlyOnce());
      }
      loom_rt_parallel_for(Coverage::body, &perThread[i], 50000);
    });
  for (auto &t : threads)
    t.join();
  for (const Coverage &c : perThread)
    EXPECT_TRUE(c.exactlyOnce());
}

/// Fills a 2-D memref over `storage` for a logical [rows, cols] matrix with
/// the given strides and offset; storage is sized to fit.
loom_memref_2d_t view2d(std::vector<float> &storage, int64_t rows, int64_t cols,
                        int64_t rs, int64_t cs, int64_t offset,
                        std::mt19937 &rng) {
  int64_t extent = offset + 1;
  if (rows > 0 && cols > 0)
    extent += (rows - 1) * rs + (cols - 1) * cs;
  storage.assign(static_cast<size_t>(extent), std::nanf(""));
  std::uniform_real_distribution<float> dist(-1, 1);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j)
      storage[offset + i * rs + j * cs] = dist(rng);
  loom_memref_2d_t m;
  m.allocated = m.aligned = storage.data();
  m.offset = offset;
  m.sizes[0] = rows;
  m.sizes[1] = cols;
  m.strides[0] = rs;
  m.strides[1] = cs;
  return m;
}

float at(const loom_memref_2d_t &m, int64_t i, int64_t j) {
  return static_cast<const float *>(
      m.aligned)[m.offset + i * m.strides[0] + j * m.strides[1]];
}

struct MatmulCase {
  int64_t m, n, k;
  int flags;
  bool strided; ///< Non-unit inner strides (forces the fallback).
};

void checkMatmul(const MatmulCase &c) {
  std::mt19937 rng(static_cast<unsigned>(c.m * 131 + c.n * 17 + c.k + c.flags));
  bool ta = c.flags & LOOM_MATMUL_TRANSPOSE_A;
  bool tb = c.flags & LOOM_MATMUL_TRANSPOSE_B;
  int64_t ar = ta ? c.k : c.m, ac = ta ? c.m : c.k;
  int64_t br = tb ? c.n : c.k, bc = tb ? c.k : c.n;
  int64_t s = c.strided ? 2 : 1;
  std::vector<float> as, bs, cs;
  loom_memref_2d_t a = view2d(as, ar, ac, ac * s + 3, s, 5, rng);
  loom_memref_2d_t b = view2d(bs, br, bc, s, br * s + 1, 0, rng); // col-major
  loom_memref_2d_t cm = view2d(cs, c.m, c.n, c.n * s + 2, s, 7, rng);
  std::vector<float> before(cs);
  loom_rt_matmul_f32(&a, &b, &cm, c.flags);
  for (int64_t i = 0; i < c.m; ++i)
    for (int64_t j = 0; j < c.n; ++j) {
      double ref =
          (c.flags & LOOM_MATMUL_ACCUMULATE)
              ? before[cm.offset + i * cm.strides[0] + j * cm.strides[1]]
              : 0.0;
      for (int64_t q = 0; q < c.k; ++q)
        ref += double(ta ? at(a, q, i) : at(a, i, q)) *
               (tb ? at(b, j, q) : at(b, q, j));
      ASSERT_NEAR(at(cm, i, j), ref, 1e-4 * (1 + std::sqrt(double(c.k))))
          << c.m << "x" << c.n << "x" << c.k << " flags " << c.flags
          << " strided " << c.strided << " at " << i << "," << j;
    }
  // Elements outside the view are untouched (still NaN).
  int untouched = 0;
  for (float v : cs)
    untouched += std::isnan(v);
  EXPECT_EQ(untouched, static_cast<int>(cs.size()) - c.m * c.n);
}

TEST(HostKernels, MatmulMatchesReference) {
  const int sizes[][3] = {{1, 1, 1},    {7, 13, 5},     {6, 16, 256},
                          {64, 64, 64}, {97, 130, 300}, {3, 600, 17},
                          {5, 4, 0},    {0, 4, 3}};
  for (const auto &sz : sizes)
    for (int flags = 0; flags < 8; ++flags)
      for (bool strided : {false, true})
        checkMatmul({sz[0], sz[1], sz[2], flags, strided});
}

// Few rows of C with A's rows and B's columns contiguous along K (x wᵀ in a
// decode step) take the skinny kernel: every row count it handles, column
// counts around its 3-column tile, K around its 8-lane vectors.
TEST(HostKernels, SkinnyMatmulMatchesReference) {
  for (int64_t m : {1, 2, 3, 4, 5, 7, 8, 9, 16})
    for (int64_t n : {1, 2, 3, 4, 97, 200})
      for (int64_t k : {32, 33, 39, 40, 300, 1031})
        for (int flags : {0, LOOM_MATMUL_ACCUMULATE})
          checkMatmul({m, n, k, flags, false});
}

TEST(HostKernels, BatchMatmulWithBroadcastBatch) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> dist(-1, 1);
  const int64_t batch = 5, m = 33, n = 47, k = 29;
  for (bool strided : {false, true}) {
    int64_t s = strided ? 2 : 1;
    std::vector<float> a(batch * m * k * s), b(k * n), c(batch * m * n, 0);
    for (float &v : a)
      v = dist(rng);
    for (float &v : b)
      v = dist(rng);
    loom_memref_3d_t am = {
        a.data(), a.data(), 0, {batch, m, k}, {m * k * s, k * s, s}};
    // B is shared by every batch element: batch stride 0, stored [N, K].
    loom_memref_3d_t bm = {b.data(), b.data(), 0, {batch, n, k}, {0, k, 1}};
    loom_memref_3d_t cm = {c.data(), c.data(), 0, {batch, m, n}, {m * n, n, 1}};
    loom_rt_batch_matmul_f32(&am, &bm, &cm, LOOM_MATMUL_TRANSPOSE_B);
    for (int64_t p = 0; p < batch; ++p)
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
          double ref = 0;
          for (int64_t q = 0; q < k; ++q)
            ref += double(a[p * m * k * s + i * k * s + q * s]) * b[j * k + q];
          ASSERT_NEAR(c[p * m * n + i * n + j], ref, 1e-4)
              << p << "," << i << "," << j;
        }
  }
}

} // namespace
