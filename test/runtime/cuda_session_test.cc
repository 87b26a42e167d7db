//===- cuda_session_test.cc - Tests of sessions on CUDA artifacts ---------===//
//
// This file tests the CUDA driver of the runtime without a GPU: the
// hand-written CUDA test artifact runs on a mock driver (mock_libcuda.c,
// device memory = host memory) loaded through LOOM_CUDA_DRIVER. It checks
// param upload, input upload, the entry's mgpu* calls, output download and
// device-resident state; CUDA errors injected into the mock, reported as
// statuses that name the failing call; and the messages for a missing
// driver, the toolkit's stub library, no device and a device too old for
// the artifact's chip.
//
//===----------------------------------------------------------------------===//

#include "test_util.h"

#include "cuda_driver.h"

#include <cstdlib>
#include <string>
#include <vector>

#include <dlfcn.h>

using loom::test::isError;
using loom::test::isOk;

namespace {

loom_tensor_t *floatTensor(std::vector<float> values) {
  int64_t n = static_cast<int64_t>(values.size());
  loom_tensor_t *t = nullptr;
  EXPECT_TRUE(isOk(loom_tensor_create(LOOM_DTYPE_F32, 1, &n, &t)));
  std::copy(values.begin(), values.end(),
            static_cast<float *>(loom_tensor_data(t)));
  return t;
}

std::vector<float> floatsOf(const loom_tensor_t *t) {
  const float *p = static_cast<const float *>(loom_tensor_data(t));
  return std::vector<float>(p, p + loom_tensor_num_elements(t));
}

/// Environment variables the tests set, cleared around every test.
const char *const kEnv[] = {"LOOM_CUDA_DRIVER", "LOOM_CUDA_DEVICE",
                            "MOCK_CUDA_FAIL",   "MOCK_CUDA_INIT",
                            "MOCK_CUDA_CC",     "MOCK_CUDA_DEVICES"};

class CudaSessionTest : public ::testing::Test {
protected:
  void SetUp() override {
    clearEnv();
    setenv("LOOM_CUDA_DRIVER", LOOM_TEST_MOCK_LIBCUDA, 1);
    ASSERT_TRUE(isOk(loom_artifact_open(LOOM_TEST_ARTIFACT_CUDA, &artifact)));
    ASSERT_TRUE(isOk(loom_tensor_map_create(&params)));
    loom_tensor_t *w = floatTensor({1, 2, 3, 4});
    ASSERT_TRUE(isOk(loom_tensor_map_insert(params, "w.weight", w)));
    loom_tensor_release(w);
  }
  void TearDown() override {
    loom_session_destroy(session);
    loom_tensor_map_destroy(params);
    loom_artifact_close(artifact);
    clearEnv();
  }

  static void clearEnv() {
    for (const char *name : kEnv)
      unsetenv(name);
    // Each test chooses its driver through the environment.
    loom::cuda::resetDriverForTesting();
  }

  /// A counter of the mock driver (loaded by the runtime already).
  static int mockCounter(const char *name) {
    void *lib = dlopen(LOOM_TEST_MOCK_LIBCUDA, RTLD_NOW | RTLD_NOLOAD);
    if (!lib)
      return -1;
    auto fn = reinterpret_cast<int (*)()>(dlsym(lib, name));
    int value = fn ? fn() : -1;
    dlclose(lib);
    return value;
  }
  static int launches() { return mockCounter("mock_cuda_launches"); }
  static int liveAllocations() {
    return mockCounter("mock_cuda_live_allocations");
  }

  loom_status_t createSession() {
    return loom_session_create(artifact, params, &session);
  }

  /// Calls entry `name` with inputs in manifest order (released here).
  loom_status_t call(const char *name, std::vector<loom_tensor_t *> inputs,
                     std::vector<loom_tensor_t *> *outputs,
                     loom_call_timing_t *timing = nullptr) {
    uint32_t index = 0;
    loom_status_t s = loom_artifact_entry_find(artifact, name, &index);
    if (!s) {
      outputs->assign(loom_artifact_entry_at(artifact, index)->num_outputs,
                      nullptr);
      s = timing ? loom_session_call_timed(session, index, inputs.data(),
                                           outputs->data(), timing)
                 : loom_session_call(session, index, inputs.data(),
                                     outputs->data());
    }
    for (loom_tensor_t *t : inputs)
      loom_tensor_release(t);
    return s;
  }

  static void release(std::vector<loom_tensor_t *> &outputs) {
    for (loom_tensor_t *t : outputs)
      loom_tensor_release(t);
    outputs.clear();
  }

  loom_artifact_t *artifact = nullptr;
  loom_tensor_map_t *params = nullptr;
  loom_session_t *session = nullptr;
};

TEST_F(CudaSessionTest, ArtifactDescribesItsTargetAndImports) {
  EXPECT_EQ(loom_artifact_target(artifact), LOOM_TARGET_CUDA);
  EXPECT_STREQ(loom_artifact_target_cpu(artifact), "sm_80");
  bool launch = false;
  for (uint32_t i = 0; i < loom_artifact_import_count(artifact); ++i)
    launch |=
        std::string(loom_artifact_import_at(artifact, i)) == "mgpuLaunchKernel";
  EXPECT_TRUE(launch);
  // The GPU runtime ABI and the device GEMMs are resolved for CUDA
  // artifacts only; the host table (CPU artifacts) has neither, and its
  // GEMM is another function than the device one.
  EXPECT_EQ(loom_host_function_lookup("mgpuModuleLoadJIT"), nullptr);
  EXPECT_EQ(loom_host_function_lookup("mgpuMemset16"), nullptr);
  EXPECT_NE(loom::cuda::lookupImport("mgpuMemset16"), nullptr);
  EXPECT_NE(loom::cuda::lookupImport("loom_rt_matmul_f32"), nullptr);
  EXPECT_NE(loom::cuda::lookupImport("loom_rt_matmul_f32"),
            loom_host_function_lookup("loom_rt_matmul_f32"));
  EXPECT_EQ(loom::cuda::lookupImport("loom_rt_attention_f32"), nullptr);
}

TEST_F(CudaSessionTest, RunsEntriesOnTheDevice) {
  ASSERT_TRUE(isOk(createSession()));
  int before = launches();
  std::vector<loom_tensor_t *> out;
  ASSERT_TRUE(isOk(call("fma", {floatTensor({1, 1, 2, -1})}, &out)));
  ASSERT_EQ(out.size(), 1u);
  // y = 1 + w * x with w = [1, 2, 3, 4] uploaded when the session started.
  EXPECT_EQ(floatsOf(out[0]), (std::vector<float>{2, 3, 7, -3}));
  // The entry's result is in a host tensor: the device buffer is not it.
  EXPECT_EQ(launches(), before + 1);
  release(out);
  // The same call again reuses the device buffers.
  int allocations = liveAllocations();
  ASSERT_TRUE(isOk(call("fma", {floatTensor({0, 1, 0, 1})}, &out)));
  EXPECT_EQ(floatsOf(out[0]), (std::vector<float>{1, 3, 1, 5}));
  EXPECT_EQ(liveAllocations(), allocations);
  release(out);
}

TEST_F(CudaSessionTest, StatesLiveOnTheDevice) {
  ASSERT_TRUE(isOk(createSession()));
  std::vector<loom_tensor_t *> out;
  ASSERT_TRUE(isOk(call("accum", {floatTensor({1, 2, 3, 4})}, &out)));
  release(out);
  ASSERT_TRUE(isOk(call("accum", {floatTensor({1, 2, 3, 4})}, &out)));
  EXPECT_EQ(floatsOf(out[0]), (std::vector<float>{2, 4, 6, 8}));
  release(out);
  loom_tensor_t *acc = loom_session_state(session, "acc");
  ASSERT_NE(acc, nullptr);
  EXPECT_EQ(floatsOf(acc), (std::vector<float>{2, 4, 6, 8}));
  loom_session_reset_states(session);
  ASSERT_TRUE(isOk(call("accum", {floatTensor({1, 1, 1, 1})}, &out)));
  EXPECT_EQ(floatsOf(out[0]), (std::vector<float>{1, 1, 1, 1}));
  release(out);
}

TEST_F(CudaSessionTest, RequirementsAreCheckedOnTheHost) {
  ASSERT_TRUE(isOk(createSession()));
  loom_tensor_t *pos = nullptr;
  ASSERT_TRUE(isOk(loom_tensor_create(LOOM_DTYPE_I64, 0, nullptr, &pos)));
  *static_cast<int64_t *>(loom_tensor_data(pos)) = -1;
  loom_tensor_retain(pos);
  std::vector<loom_tensor_t *> out;
  EXPECT_TRUE(isError(call("copy", {floatTensor({1, 2}), pos}, &out),
                      LOOM_STATUS_INVALID_ARGUMENT,
                      {"requirement failed", "pos >= 0", "pos = -1"}));
  *static_cast<int64_t *>(loom_tensor_data(pos)) = 0;
  ASSERT_TRUE(isOk(call("copy", {floatTensor({1, 2}), pos}, &out)));
  EXPECT_EQ(floatsOf(out[0]), (std::vector<float>{1, 2}));
  release(out);
}

/// The host's first read of a position, before the call has enqueued any
/// work, is served from the input the runtime uploaded: no copy through the
/// device. Copies into device memory, and reads after work was enqueued,
/// go through the device.
TEST_F(CudaSessionTest, FirstHostReadsOfInputsSkipTheDevice) {
  ASSERT_TRUE(isOk(createSession()));
  loom_tensor_t *pos = nullptr;
  ASSERT_TRUE(isOk(loom_tensor_create(LOOM_DTYPE_I64, 0, nullptr, &pos)));
  *static_cast<int64_t *>(loom_tensor_data(pos)) = 1;
  int copies = mockCounter("mock_cuda_async_copies");
  std::vector<loom_tensor_t *> out;
  ASSERT_TRUE(isOk(call("copy", {floatTensor({1, 2, 3}), pos}, &out)));
  EXPECT_EQ(floatsOf(out[0]), (std::vector<float>{2, 3, 1}));
  // The rotation's two copies and the second read of pos.
  EXPECT_EQ(mockCounter("mock_cuda_async_copies"), copies + 3);
  release(out);
}

TEST_F(CudaSessionTest, LaunchFailureIsReportedAndNotSticky) {
  ASSERT_TRUE(isOk(createSession()));
  int allocations = liveAllocations();
  setenv("MOCK_CUDA_FAIL", "cuLaunchKernel=719", 1);
  std::vector<loom_tensor_t *> out;
  EXPECT_TRUE(isError(call("fma", {floatTensor({1, 1, 1, 1})}, &out),
                      LOOM_STATUS_INTERNAL,
                      {"entry 'fma'", "CUDA error in cuLaunchKernel",
                       "CUDA_ERROR_LAUNCH_FAILED", "unspecified launch"}));
  EXPECT_EQ(out[0], nullptr);
  unsetenv("MOCK_CUDA_FAIL");
  // The entry's temporary was freed although the launch failed (into the
  // block cache, which gives it back to the driver when trimmed); the input
  // and output buffers are kept for the next call.
  loom::cuda::trimCache();
  EXPECT_EQ(liveAllocations(), allocations + 2);
  ASSERT_TRUE(isOk(call("fma", {floatTensor({1, 1, 1, 1})}, &out)));
  EXPECT_EQ(floatsOf(out[0]), (std::vector<float>{2, 3, 4, 5}));
  release(out);
}

TEST_F(CudaSessionTest, FailedAllocationSkipsTheLaunch) {
  ASSERT_TRUE(isOk(createSession()));
  std::vector<loom_tensor_t *> out;
  // The first call allocates the session's buffers; the second one's only
  // allocation is the entry's temporary.
  ASSERT_TRUE(isOk(call("fma", {floatTensor({1, 1, 1, 1})}, &out)));
  release(out);
  // Without the cached block, the temporary needs cuMemAlloc again.
  loom::cuda::trimCache();
  int before = launches();
  setenv("MOCK_CUDA_FAIL", "cuMemAlloc_v2=2", 1);
  EXPECT_TRUE(isError(call("fma", {floatTensor({1, 1, 1, 1})}, &out),
                      LOOM_STATUS_INTERNAL,
                      {"entry 'fma'", "CUDA error in cuMemAlloc_v2",
                       "CUDA_ERROR_OUT_OF_MEMORY"}));
  EXPECT_EQ(launches(), before);
}

TEST_F(CudaSessionTest, DownloadFailureNamesTheOutput) {
  ASSERT_TRUE(isOk(createSession()));
  setenv("MOCK_CUDA_FAIL", "cuMemcpyDtoH_v2=700", 1);
  std::vector<loom_tensor_t *> out;
  EXPECT_TRUE(isError(
      call("fma", {floatTensor({1, 1, 1, 1})}, &out), LOOM_STATUS_INTERNAL,
      {"output 'y'", "cuMemcpyDtoH_v2", "CUDA_ERROR_ILLEGAL_ADDRESS"}));
}

TEST_F(CudaSessionTest, ParamUploadFailureNamesTheParam) {
  setenv("MOCK_CUDA_FAIL", "cuMemcpyHtoD_v2=1", 1);
  EXPECT_TRUE(isError(createSession(), LOOM_STATUS_INTERNAL,
                      {"param 'w'", "w.weight", "cuMemcpyHtoD_v2",
                       "CUDA_ERROR_INVALID_VALUE"}));
  EXPECT_EQ(session, nullptr);
  EXPECT_EQ(liveAllocations(), 0);
}

TEST_F(CudaSessionTest, DestroyFreesDeviceMemory) {
  int before = std::max(liveAllocations(), 0);
  ASSERT_TRUE(isOk(createSession()));
  std::vector<loom_tensor_t *> out;
  ASSERT_TRUE(isOk(call("fma", {floatTensor({1, 1, 1, 1})}, &out)));
  release(out);
  EXPECT_GT(liveAllocations(), before);
  loom_session_destroy(session);
  session = nullptr;
  EXPECT_EQ(liveAllocations(), before);
}

TEST_F(CudaSessionTest, TemporariesAreReusedAcrossCalls) {
  ASSERT_TRUE(isOk(createSession()));
  std::vector<loom_tensor_t *> out;
  ASSERT_TRUE(isOk(call("fma", {floatTensor({1, 1, 1, 1})}, &out)));
  release(out);
  int allocs = mockCounter("mock_cuda_alloc_calls");
  // The entry's temporary comes back from the block cache, and the
  // session's input and output buffers are kept: no allocation at all.
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(isOk(call("fma", {floatTensor({1, 2, 3, 4})}, &out)));
    EXPECT_EQ(floatsOf(out[0]), (std::vector<float>{2, 5, 10, 17}));
    release(out);
  }
  EXPECT_EQ(mockCounter("mock_cuda_alloc_calls"), allocs);
}

/// Trimming the block cache waits for the device before it frees the
/// blocks (a product of a call on another thread may still read one), and
/// frees them even when the wait fails.
TEST_F(CudaSessionTest, TrimmingTheCacheWaitsForTheDevice) {
  ASSERT_TRUE(isOk(createSession()));
  std::vector<loom_tensor_t *> out;
  ASSERT_TRUE(isOk(call("fma", {floatTensor({1, 1, 1, 1})}, &out)));
  release(out);
  int live = liveAllocations();
  setenv("MOCK_CUDA_FAIL", "cuCtxSynchronize=719", 1);
  testing::internal::CaptureStderr();
  loom::cuda::trimCache();
  std::string err = testing::internal::GetCapturedStderr();
  unsetenv("MOCK_CUDA_FAIL");
  EXPECT_NE(err.find("CUDA error in cuCtxSynchronize"), std::string::npos)
      << err;
  EXPECT_EQ(liveAllocations(), live - 1); // the entry's temporary
}

/// The bits of integer `v` as f16, or as bf16 when `brain`: exact for
/// |v| < 2048 (f16) or |v| < 256 (bf16), and for powers of two.
uint16_t halfBits(int v, bool brain) {
  if (v == 0)
    return 0;
  uint16_t sign = v < 0 ? 0x8000 : 0;
  int a = v < 0 ? -v : v, e = 0;
  while ((a >> (e + 1)) != 0)
    ++e;
  int fraction = a - (1 << e); // below 2^e
  if (brain)
    return sign | static_cast<uint16_t>((e + 127) << 7) |
           static_cast<uint16_t>((fraction << 7) >> e);
  return sign | static_cast<uint16_t>((e + 15) << 10) |
         static_cast<uint16_t>((fraction << 10) >> e);
}

/// The GEMM imports of CUDA artifacts on the mock driver and the mock
/// cuBLAS (column-major, as cuBLAS): the row-major products with their
/// transposes, accumulation and batches come out right for f32, bf16 and
/// f16 operands (small integers, so every result is exact).
TEST_F(CudaSessionTest, GemmImportsComputeRowMajorProducts) {
  setenv("LOOM_CUBLAS", LOOM_TEST_MOCK_LIBCUBLAS, 1);
  ASSERT_TRUE(isOk(createSession())); // loads the driver
  // A [2, 3] row-major; B given transposed as [2, 3] (op(B) = B^T [3, 2]).
  const int a[6] = {1, 2, 3, 4, 5, 6}, b[6] = {1, 0, -1, 2, 1, 0};
  // C = A B^T = [[1*1 + 3*-1, 1*2 + 2*1], [4 - 6, 8 + 5]].
  const float expected[4] = {-2, 4, -2, 13};
  struct Case {
    const char *name;
    int kind; // 0: f32, 1: bf16, 2: f16
  } cases[] = {{"loom_rt_matmul_f32", 0},
               {"loom_rt_matmul_bf16_f32", 1},
               {"loom_rt_matmul_f16_f32", 2}};
  for (const Case &c : cases) {
    SCOPED_TRACE(c.name);
    std::vector<float> af(a, a + 6), bf(b, b + 6);
    std::vector<uint16_t> ah(6), bh(6);
    for (int i = 0; i < 6; ++i) {
      ah[i] = halfBits(a[i], c.kind == 1);
      bh[i] = halfBits(b[i], c.kind == 1);
    }
    void *ap = c.kind ? static_cast<void *>(ah.data()) : af.data();
    void *bp = c.kind ? static_cast<void *>(bh.data()) : bf.data();
    float out[4] = {100, 100, 100, 100};
    loom_memref_2d_t ma = {ap, ap, 0, {2, 3}, {3, 1}};
    loom_memref_2d_t mb = {bp, bp, 0, {2, 3}, {3, 1}};
    loom_memref_2d_t mc = {out, out, 0, {2, 2}, {2, 1}};
    auto fn = reinterpret_cast<loom_rt_matmul_f32_fn_t>(
        loom::cuda::lookupImport(c.name));
    ASSERT_NE(fn, nullptr);
    loom::cuda::beginCall();
    fn(&ma, &mb, &mc, LOOM_MATMUL_TRANSPOSE_B);
    ASSERT_TRUE(isOk(loom::cuda::endCall()));
    EXPECT_EQ(std::vector<float>(out, out + 4),
              std::vector<float>(expected, expected + 4));
    // Accumulating adds the product to what C holds.
    loom::cuda::beginCall();
    fn(&ma, &mb, &mc, LOOM_MATMUL_TRANSPOSE_B | LOOM_MATMUL_ACCUMULATE);
    ASSERT_TRUE(isOk(loom::cuda::endCall()));
    EXPECT_EQ(out[3], 26.0f);
  }
  // Batched, A transposed: A[g] given as [3, 2], B[g] [3, 2]; C[g] = A^T B.
  const int at[2][6] = {{1, 4, 2, 5, 3, 6}, {1, 0, 0, 1, 1, 1}};
  const int bt[2][6] = {{1, 2, 0, 1, -1, 0}, {2, 0, 0, 2, 1, 1}};
  const float expectedBatch[8] = {-2, 4, -2, 13, 3, 1, 1, 3};
  for (int kind : {0, 1}) {
    SCOPED_TRACE(kind ? "bf16" : "f32");
    std::vector<float> af(12), bf(12);
    std::vector<uint16_t> ah(12), bh(12);
    for (int g = 0; g < 2; ++g)
      for (int i = 0; i < 6; ++i) {
        af[g * 6 + i] = static_cast<float>(at[g][i]);
        bf[g * 6 + i] = static_cast<float>(bt[g][i]);
        ah[g * 6 + i] = halfBits(at[g][i], true);
        bh[g * 6 + i] = halfBits(bt[g][i], true);
      }
    void *ap = kind ? static_cast<void *>(ah.data()) : af.data();
    void *bp = kind ? static_cast<void *>(bh.data()) : bf.data();
    float out[8] = {};
    loom_memref_3d_t ma = {ap, ap, 0, {2, 3, 2}, {6, 2, 1}};
    loom_memref_3d_t mb = {bp, bp, 0, {2, 3, 2}, {6, 2, 1}};
    loom_memref_3d_t mc = {out, out, 0, {2, 2, 2}, {4, 2, 1}};
    auto fn = reinterpret_cast<loom_rt_batch_matmul_f32_fn_t>(
        loom::cuda::lookupImport(kind ? "loom_rt_batch_matmul_bf16_f32"
                                      : "loom_rt_batch_matmul_f32"));
    ASSERT_NE(fn, nullptr);
    loom::cuda::beginCall();
    fn(&ma, &mb, &mc, LOOM_MATMUL_TRANSPOSE_A);
    ASSERT_TRUE(isOk(loom::cuda::endCall()));
    EXPECT_EQ(std::vector<float>(out, out + 8),
              std::vector<float>(expectedBatch, expectedBatch + 8));
  }
}

/// The tensor-map imports encode a map of a 3-D 16-bit tensor (dims
/// innermost first, strides in bytes, boxes of the asked columns by rows)
/// into device memory once: the same tensor and box give the same address
/// without a new encoding or copy, another box another map; a new map takes the
/// oldest of 512 slots, after the copy has landed. A tensor TMA cannot read, or
/// a failing encode, fails the call with a message.
TEST_F(CudaSessionTest, TensorMapImportsEncodeOnceAndCheckTheirTensor) {
  ASSERT_TRUE(isOk(createSession())); // loads the driver
  using Fn = int64_t (*)(const loom_memref_3d_t *, int64_t, int64_t, int64_t);
  auto fn = reinterpret_cast<Fn>(
      loom::cuda::lookupImport("loom_rt_cuda_tensor_map_bf16"));
  ASSERT_NE(fn, nullptr);
  EXPECT_EQ(loom::cuda::lookupImport("loom_rt_cuda_tensor_map_f16"),
            reinterpret_cast<void *>(fn));
  alignas(64) static uint16_t cache[2 * 16 * 64 + 8 * 1024];
  loom_memref_3d_t m = {cache, cache, 0, {2, 16, 64}, {1024, 64, 1}};
  auto encode = [&](const loom_memref_3d_t &t, int64_t columns, int64_t rows,
                    int64_t swizzle = 0) {
    loom::cuda::beginCall();
    int64_t address = fn(&t, columns, rows, swizzle);
    loom_status_t s = loom::cuda::endCall();
    std::string error = s ? loom_status_message(s) : "";
    loom_status_free(s);
    return std::make_pair(address, error);
  };
  auto [first, error] = encode(m, 8, 16);
  ASSERT_EQ(error, "");
  ASSERT_NE(first, 0);
  // The mock driver's map: address, dims, box, strides.
  const uint64_t *words = reinterpret_cast<const uint64_t *>(first);
  EXPECT_EQ(words[0], reinterpret_cast<uintptr_t>(cache));
  EXPECT_EQ(std::vector<uint64_t>(words + 1, words + 4),
            (std::vector<uint64_t>{64, 16, 2}));
  EXPECT_EQ(std::vector<uint64_t>(words + 6, words + 9),
            (std::vector<uint64_t>{8, 16, 1}));
  EXPECT_EQ(std::vector<uint64_t>(words + 11, words + 13),
            (std::vector<uint64_t>{128, 2048}));
  EXPECT_EQ(words[15], 0u); // no swizzle
  EXPECT_EQ(encode(m, 8, 16).first, first);
  // 128-byte swizzled boxes of 64 columns (CU_TENSOR_MAP_SWIZZLE_128B);
  // wider ones do not fit the swizzle, and other swizzles are refused.
  int64_t swizzled = encode(m, 64, 16, 128).first;
  ASSERT_NE(swizzled, 0);
  EXPECT_EQ(reinterpret_cast<const uint64_t *>(swizzled)[15], 3u);
  EXPECT_EQ(reinterpret_cast<const uint64_t *>(swizzled)[6], 64u);
  EXPECT_EQ(encode(m, 128, 16, 128).first, 0);
  EXPECT_EQ(encode(m, 8, 16, 64).first, 0);
  int64_t other = encode(m, 8, 32).first;
  EXPECT_NE(other, 0);
  EXPECT_NE(other, first);
  // 510 more maps (the start moved by 16 bytes each) wrap the ring: the
  // first map's slot goes to the last of them, and the first map, asked
  // for again, takes the next slot (the swizzled map's) and is whole there.
  for (int64_t i = 1; i < 511; ++i) {
    loom_memref_3d_t moved = m;
    moved.offset = 8 * i;
    ASSERT_NE(encode(moved, 8, 16).first, 0) << i;
  }
  int64_t again = encode(m, 8, 16).first;
  EXPECT_EQ(again, swizzled);
  EXPECT_EQ(reinterpret_cast<const uint64_t *>(again)[0],
            reinterpret_cast<uintptr_t>(cache));
  EXPECT_EQ(reinterpret_cast<const uint64_t *>(again)[7], 16u);
  // A start off 16 bytes, rows that are not contiguous, a box TMA cannot
  // take: refused.
  loom_memref_3d_t unaligned = m;
  unaligned.offset = 1;
  loom_memref_3d_t strided = m;
  strided.strides[2] = 2;
  for (auto [t, columns] :
       {std::make_pair(unaligned, int64_t(8)),
        std::make_pair(strided, int64_t(8)), std::make_pair(m, int64_t(4))}) {
    auto [address, why] = encode(t, columns, 16);
    EXPECT_EQ(address, 0);
    EXPECT_NE(why.find("a bulk tensor copy cannot read the tensor"),
              std::string::npos)
        << why;
  }
  // An empty tensor has no map and no error; a single batch row's stride
  // is not taken (the map gets the rows' extent).
  loom_memref_3d_t empty = m;
  empty.sizes[0] = 0;
  EXPECT_EQ(encode(empty, 8, 16), std::make_pair(int64_t(0), std::string()));
  loom_memref_3d_t single = m;
  single.sizes[0] = 1;
  single.strides[0] = 3;
  auto [one, none] = encode(single, 8, 16);
  ASSERT_EQ(none, "");
  EXPECT_EQ(reinterpret_cast<const uint64_t *>(one)[12], 16u * 64 * 2);
  setenv("MOCK_CUDA_FAIL", "cuTensorMapEncodeTiled=1", 1);
  loom_memref_3d_t fresh = m;
  fresh.sizes[1] = 8;
  auto [failed, why] = encode(fresh, 8, 16);
  EXPECT_EQ(failed, 0);
  EXPECT_NE(why.find("CUDA error in cuTensorMapEncodeTiled"), std::string::npos)
      << why;
  unsetenv("MOCK_CUDA_FAIL");
}

/// The GEMM imports whose result has the operands' 16-bit type accumulate
/// in f32 and round once, to nearest with ties to even. In bf16, 255 + 2 =
/// 257 is a tie between 256 and 258 and gives 256, 255 + 4 = 259 gives 260,
/// 2048 + 2 gives 2048; f16 holds 257 and 259 and rounds the tie 2047 + 2 =
/// 2049 to 2048. Accumulating adds C's 16-bit value; the batched form writes
/// each product to its own slice.
TEST_F(CudaSessionTest, GemmImportsRoundSixteenBitResults) {
  setenv("LOOM_CUBLAS", LOOM_TEST_MOCK_LIBCUBLAS, 1);
  ASSERT_TRUE(isOk(createSession()));
  struct Case {
    const char *name;
    bool brain;
    int a[6]; // [3, 2] row-major, times B = [1, 1]^T
    int expected[3];
    int accumulated; // C[0] after adding the product again
  } cases[] = {{"loom_rt_matmul_bf16",
                true,
                {255, 2, 255, 4, 2048, 2},
                {256, 260, 2048},
                512},
               {"loom_rt_matmul_f16",
                false,
                {255, 2, 255, 4, 2047, 2},
                {257, 259, 2048},
                514}};
  for (const Case &c : cases) {
    SCOPED_TRACE(c.name);
    std::vector<uint16_t> ah(6), bh(2, halfBits(1, c.brain)), out(3, 0xffff);
    for (int i = 0; i < 6; ++i)
      ah[i] = halfBits(c.a[i], c.brain);
    loom_memref_2d_t ma = {ah.data(), ah.data(), 0, {3, 2}, {2, 1}};
    loom_memref_2d_t mb = {bh.data(), bh.data(), 0, {2, 1}, {1, 1}};
    loom_memref_2d_t mc = {out.data(), out.data(), 0, {3, 1}, {1, 1}};
    auto fn = reinterpret_cast<loom_rt_matmul_f32_fn_t>(
        loom::cuda::lookupImport(c.name));
    ASSERT_NE(fn, nullptr);
    loom::cuda::beginCall();
    fn(&ma, &mb, &mc, 0);
    ASSERT_TRUE(isOk(loom::cuda::endCall()));
    for (int i = 0; i < 3; ++i)
      EXPECT_EQ(out[i], halfBits(c.expected[i], c.brain)) << "row " << i;
    loom::cuda::beginCall();
    fn(&ma, &mb, &mc, LOOM_MATMUL_ACCUMULATE);
    ASSERT_TRUE(isOk(loom::cuda::endCall()));
    EXPECT_EQ(out[0], halfBits(c.accumulated, c.brain));
  }
  // Batched, bf16: C[g] = A[g] B[g] with A[g] [1, 2] and B[g] [2, 1].
  const uint16_t ab[4] = {halfBits(3, true), halfBits(-1, true),
                          halfBits(5, true), halfBits(7, true)};
  const uint16_t bb[4] = {halfBits(2, true), halfBits(1, true),
                          halfBits(1, true), halfBits(-1, true)};
  uint16_t outBatch[2] = {0xffff, 0xffff};
  loom_memref_3d_t ma = {const_cast<uint16_t *>(ab),
                         const_cast<uint16_t *>(ab),
                         0,
                         {2, 1, 2},
                         {2, 2, 1}};
  loom_memref_3d_t mb = {const_cast<uint16_t *>(bb),
                         const_cast<uint16_t *>(bb),
                         0,
                         {2, 2, 1},
                         {2, 1, 1}};
  loom_memref_3d_t mc = {outBatch, outBatch, 0, {2, 1, 1}, {1, 1, 1}};
  auto batchFn = reinterpret_cast<loom_rt_batch_matmul_f32_fn_t>(
      loom::cuda::lookupImport("loom_rt_batch_matmul_bf16"));
  ASSERT_NE(batchFn, nullptr);
  loom::cuda::beginCall();
  batchFn(&ma, &mb, &mc, 0);
  ASSERT_TRUE(isOk(loom::cuda::endCall()));
  EXPECT_EQ(outBatch[0], halfBits(5, true));
  EXPECT_EQ(outBatch[1], halfBits(-2, true));
  EXPECT_NE(loom::cuda::lookupImport("loom_rt_batch_matmul_f16"), nullptr);
}

/// Per-head products on [B * S, H, *] activations, as the compiler passes
/// them when it folds the transposes around them: the batch (head) stride
/// is smaller than the row stride, in A and in C. Here B * S = 3 rows, H = 2
/// heads, D = 3, R = 2: C[t, h, :] = X[t, h, :] W[h] for every token t.
TEST_F(CudaSessionTest, GemmImportsTakeInterleavedBatches) {
  setenv("LOOM_CUBLAS", LOOM_TEST_MOCK_LIBCUBLAS, 1);
  ASSERT_TRUE(isOk(createSession()));
  const int x[3][2][3] = {{{1, 2, 0}, {0, 1, -1}},
                          {{3, -1, 2}, {2, 2, 1}},
                          {{0, 0, 1}, {-2, 1, 3}}};
  const int w[2][3][2] = {{{1, 0}, {2, 1}, {-1, 3}}, {{0, 1}, {1, -1}, {2, 2}}};
  int expected[3][2][2] = {};
  for (int t = 0; t < 3; ++t)
    for (int h = 0; h < 2; ++h)
      for (int r = 0; r < 2; ++r)
        for (int d = 0; d < 3; ++d)
          expected[t][h][r] += x[t][h][d] * w[h][d][r];
  for (bool half : {false, true}) {
    SCOPED_TRACE(half ? "bf16" : "f32");
    std::vector<float> xf(18), wf(12), yf(12, -99.0f);
    std::vector<uint16_t> xh(18), wh(12), yh(12, 0xffff);
    for (int i = 0; i < 18; ++i) {
      int v = (&x[0][0][0])[i];
      xf[i] = static_cast<float>(v);
      xh[i] = halfBits(v, true);
    }
    for (int i = 0; i < 12; ++i) {
      int v = (&w[0][0][0])[i];
      wf[i] = static_cast<float>(v);
      wh[i] = halfBits(v, true);
    }
    void *xp = half ? static_cast<void *>(xh.data()) : xf.data();
    void *wp = half ? static_cast<void *>(wh.data()) : wf.data();
    void *yp = half ? static_cast<void *>(yh.data()) : yf.data();
    // [H, B * S, D] with strides [D, H * D, 1]; [H, B * S, R] likewise.
    loom_memref_3d_t ma = {xp, xp, 0, {2, 3, 3}, {3, 6, 1}};
    loom_memref_3d_t mb = {wp, wp, 0, {2, 3, 2}, {6, 2, 1}};
    loom_memref_3d_t mc = {yp, yp, 0, {2, 3, 2}, {2, 4, 1}};
    auto fn = reinterpret_cast<loom_rt_batch_matmul_f32_fn_t>(
        loom::cuda::lookupImport(half ? "loom_rt_batch_matmul_bf16"
                                      : "loom_rt_batch_matmul_f32"));
    ASSERT_NE(fn, nullptr);
    loom::cuda::beginCall();
    fn(&ma, &mb, &mc, 0);
    ASSERT_TRUE(isOk(loom::cuda::endCall()));
    for (int t = 0; t < 3; ++t)
      for (int h = 0; h < 2; ++h)
        for (int r = 0; r < 2; ++r) {
          int i = (t * 2 + h) * 2 + r;
          if (half)
            EXPECT_EQ(yh[i], halfBits(expected[t][h][r], true))
                << "token " << t << " head " << h << " column " << r;
          else
            EXPECT_EQ(yf[i], static_cast<float>(expected[t][h][r]))
                << "token " << t << " head " << h << " column " << r;
        }
  }
}

TEST_F(CudaSessionTest, TimedCallSeparatesTransfers) {
  ASSERT_TRUE(isOk(createSession()));
  std::vector<loom_tensor_t *> out;
  loom_call_timing_t timing = {-1, -1};
  ASSERT_TRUE(isOk(call("fma", {floatTensor({1, 1, 1, 1})}, &out, &timing)));
  EXPECT_GE(timing.entry_seconds, 0);
  EXPECT_GE(timing.transfer_seconds, 0);
  EXPECT_EQ(floatsOf(out[0]), (std::vector<float>{2, 3, 4, 5}));
  release(out);
}

/// A profiled call times each launch with two events on its stream (the
/// mock's launch of one block takes a microsecond between them), and
/// destroys them; without room it only counts. A failing event fails the
/// call and leaks none. A plain call records no events.
TEST_F(CudaSessionTest, ProfiledCallTimesEachLaunch) {
  ASSERT_TRUE(isOk(createSession()));
  uint32_t index = 0;
  ASSERT_TRUE(isOk(loom_artifact_entry_find(artifact, "fma", &index)));
  loom_tensor_t *in[1] = {floatTensor({1, 1, 2, -1})};
  loom_tensor_t *out[1] = {nullptr};
  loom_call_timing_t timing = {-1, -1};
  loom_kernel_timing_t kernels[2] = {};
  size_t count = 0;
  ASSERT_TRUE(isOk(loom_session_call_profiled(session, index, in, out, &timing,
                                              kernels, 2, &count)));
  ASSERT_EQ(count, 1u);
  EXPECT_STREQ(kernels[0].name, "mul_add");
  EXPECT_NEAR(kernels[0].seconds, 1e-6, 1e-9);
  EXPECT_GE(timing.entry_seconds, 0);
  EXPECT_EQ(floatsOf(out[0]), (std::vector<float>{2, 3, 7, -3}));
  EXPECT_EQ(mockCounter("mock_cuda_live_events"), 0);
  loom_tensor_release(out[0]);
  out[0] = nullptr;

  count = 7;
  ASSERT_TRUE(isOk(loom_session_call_profiled(session, index, in, out, &timing,
                                              nullptr, 0, &count)));
  EXPECT_EQ(count, 1u);
  loom_tensor_release(out[0]);
  out[0] = nullptr;

  setenv("MOCK_CUDA_FAIL", "cuEventElapsedTime=400", 1);
  EXPECT_TRUE(isError(loom_session_call_profiled(session, index, in, out,
                                                 &timing, kernels, 2, &count),
                      LOOM_STATUS_INTERNAL,
                      {"entry 'fma'", "timing kernels",
                       "cuEventElapsedTime", "CUDA_ERROR_INVALID_HANDLE"}));
  EXPECT_EQ(out[0], nullptr);
  EXPECT_EQ(mockCounter("mock_cuda_live_events"), 0);
  setenv("MOCK_CUDA_FAIL", "cuEventRecord=1", 1);
  EXPECT_TRUE(isError(loom_session_call_profiled(session, index, in, out,
                                                 &timing, kernels, 2, &count),
                      LOOM_STATUS_INTERNAL,
                      {"entry 'fma'", "CUDA error in cuEventRecord"}));
  EXPECT_EQ(mockCounter("mock_cuda_live_events"), 0);
  setenv("MOCK_CUDA_FAIL", "cuEventCreate=2", 1);
  EXPECT_TRUE(isError(loom_session_call_profiled(session, index, in, out,
                                                 &timing, kernels, 2, &count),
                      LOOM_STATUS_INTERNAL,
                      {"entry 'fma'", "CUDA error in cuEventCreate"}));
  EXPECT_EQ(out[0], nullptr);
  EXPECT_EQ(mockCounter("mock_cuda_live_events"), 0);
  unsetenv("MOCK_CUDA_FAIL");

  EXPECT_TRUE(isError(loom_session_call_profiled(session, index, in, out,
                                                 &timing, kernels, 2, nullptr),
                      LOOM_STATUS_INVALID_ARGUMENT, {"NULL timing"}));
  EXPECT_TRUE(isError(loom_session_call_profiled(session, index, in, out,
                                                 nullptr, kernels, 2, &count),
                      LOOM_STATUS_INVALID_ARGUMENT, {"NULL timing"}));
  EXPECT_TRUE(isError(loom_session_call_profiled(session, index, in, out,
                                                 &timing, nullptr, 2, &count),
                      LOOM_STATUS_INVALID_ARGUMENT, {"kernels array"}));

  // The entry's own event (timing disabled) is its only one.
  std::vector<loom_tensor_t *> plain;
  ASSERT_TRUE(isOk(call("fma", {floatTensor({1, 1, 1, 1})}, &plain)));
  EXPECT_EQ(mockCounter("mock_cuda_live_events"), 0);
  release(plain);
  loom_tensor_release(in[0]);
}

/// A timed call's products are timed on the legacy default stream, named
/// by their cuBLAS function.
TEST_F(CudaSessionTest, ProfiledProductsAreNamedByFunction) {
  setenv("LOOM_CUBLAS", LOOM_TEST_MOCK_LIBCUBLAS, 1);
  ASSERT_TRUE(isOk(createSession())); // loads the driver
  float a[4] = {1, 2, 3, 4}, b[4] = {1, 0, 0, 1}, c[4] = {};
  loom_memref_2d_t ma = {a, a, 0, {2, 2}, {2, 1}};
  loom_memref_2d_t mb = {b, b, 0, {2, 2}, {2, 1}};
  loom_memref_2d_t mc = {c, c, 0, {2, 2}, {2, 1}};
  auto fn = reinterpret_cast<loom_rt_matmul_f32_fn_t>(
      loom::cuda::lookupImport("loom_rt_matmul_f32"));
  ASSERT_NE(fn, nullptr);
  loom::cuda::beginCall(/*timeKernels=*/true);
  fn(&ma, &mb, &mc, 0);
  fn(&ma, &mb, &mc, LOOM_MATMUL_ACCUMULATE);
  ASSERT_TRUE(isOk(loom::cuda::endCall()));
  std::vector<loom::cuda::KernelTiming> timed;
  ASSERT_TRUE(isOk(loom::cuda::takeKernelTimings(&timed)));
  ASSERT_EQ(timed.size(), 2u);
  EXPECT_STREQ(timed[0].name, "cublas:cublasSgemm_v2");
  EXPECT_STREQ(timed[1].name, "cublas:cublasSgemm_v2");
  EXPECT_EQ(timed[0].seconds, 0); // the mock's products take no time
  EXPECT_EQ(c[3], 8.0f);
  EXPECT_EQ(mockCounter("mock_cuda_live_events"), 0);
  // The events of a timed call whose timings nobody took go with the next
  // call.
  loom::cuda::beginCall(/*timeKernels=*/true);
  fn(&ma, &mb, &mc, 0);
  ASSERT_TRUE(isOk(loom::cuda::endCall()));
  EXPECT_EQ(mockCounter("mock_cuda_live_events"), 2);
  loom::cuda::beginCall();
  ASSERT_TRUE(isOk(loom::cuda::endCall()));
  EXPECT_EQ(mockCounter("mock_cuda_live_events"), 0);
  unsetenv("LOOM_CUBLAS");
}

TEST_F(CudaSessionTest, OldDeviceIsRefused) {
  setenv("MOCK_CUDA_CC", "75", 1);
  EXPECT_TRUE(isError(createSession(), LOOM_STATUS_INCOMPATIBLE,
                      {"compiled for sm_80", "8.0 or newer", "Mock GPU",
                       "compute capability 7.5"}));
}

TEST_F(CudaSessionTest, NoDriver) {
  setenv("LOOM_CUDA_DRIVER", "/nonexistent/libcuda.so.1", 1);
  EXPECT_TRUE(isError(createSession(), LOOM_STATUS_INCOMPATIBLE,
                      {"loom_test_artifact_cuda", "compiled for CUDA (sm_80)",
                       "needs an NVIDIA driver",
                       "/nonexistent/libcuda.so.1 could not be loaded"}));
}

TEST_F(CudaSessionTest, NotADriver) {
  setenv("LOOM_CUDA_DRIVER", LOOM_TEST_PLAIN_LIBRARY, 1);
  EXPECT_TRUE(isError(createSession(), LOOM_STATUS_INCOMPATIBLE,
                      {"needs an NVIDIA driver", "not a usable CUDA driver",
                       "lacks cuGetErrorName"}));
}

TEST_F(CudaSessionTest, StubLibrary) {
  setenv("MOCK_CUDA_INIT", "34", 1);
  EXPECT_TRUE(isError(
      createSession(), LOOM_STATUS_INCOMPATIBLE,
      {"needs an NVIDIA driver", "stub library", "CUDA_ERROR_STUB_LIBRARY"}));
}

TEST_F(CudaSessionTest, ToolkitStubLibrary) {
  const char *stub = "/usr/local/cuda/lib64/stubs/libcuda.so";
  if (access(stub, R_OK) != 0)
    GTEST_SKIP() << stub << " is not installed (no CUDA toolkit)";
  setenv("LOOM_CUDA_DRIVER", stub, 1);
  EXPECT_TRUE(isError(createSession(), LOOM_STATUS_INCOMPATIBLE,
                      {"needs an NVIDIA driver", "stub library"}));
}

TEST_F(CudaSessionTest, NoDevice) {
  setenv("MOCK_CUDA_INIT", "100", 1);
  EXPECT_TRUE(isError(createSession(), LOOM_STATUS_INCOMPATIBLE,
                      {"no CUDA device", "CUDA_ERROR_NO_DEVICE"}));
  loom::cuda::resetDriverForTesting();
  unsetenv("MOCK_CUDA_INIT");
  setenv("MOCK_CUDA_DEVICES", "0", 1);
  EXPECT_TRUE(
      isError(createSession(), LOOM_STATUS_INCOMPATIBLE, {"no CUDA device"}));
}

TEST_F(CudaSessionTest, DeviceOrdinalOutOfRange) {
  setenv("LOOM_CUDA_DEVICE", "3", 1);
  setenv("MOCK_CUDA_DEVICES", "2", 1);
  EXPECT_TRUE(isError(createSession(), LOOM_STATUS_INCOMPATIBLE,
                      {"LOOM_CUDA_DEVICE='3'", "2 devices are visible"}));
}

TEST_F(CudaSessionTest, CpuCallTimingHasNoTransfers) {
  loom_artifact_t *cpu = nullptr;
  ASSERT_TRUE(isOk(loom_artifact_open(LOOM_TEST_ARTIFACT_GOOD, &cpu)));
  loom_session_t *s = nullptr;
  ASSERT_TRUE(isOk(loom_session_create(cpu, params, &s)));
  uint32_t index = 0;
  ASSERT_TRUE(isOk(loom_artifact_entry_find(cpu, "add", &index)));
  loom_tensor_t *in[2] = {floatTensor({1, 2}), floatTensor({3, 4})};
  loom_tensor_t *out[1] = {nullptr};
  loom_call_timing_t timing = {-1, -1};
  EXPECT_TRUE(isOk(loom_session_call_timed(s, index, in, out, &timing)));
  EXPECT_GE(timing.entry_seconds, 0);
  EXPECT_EQ(timing.transfer_seconds, 0);
  EXPECT_EQ(floatsOf(out[0]), (std::vector<float>{4, 6}));
  EXPECT_TRUE(isError(loom_session_call_timed(s, index, in, out, nullptr),
                      LOOM_STATUS_INVALID_ARGUMENT, {"NULL timing"}));
  size_t count = 0;
  EXPECT_TRUE(isError(
      loom_session_call_profiled(s, index, in, out, &timing, nullptr, 0, &count),
      LOOM_STATUS_INCOMPATIBLE, {"kernels are timed on a GPU", "CPU session"}));
  for (loom_tensor_t *t : {in[0], in[1], out[0]})
    loom_tensor_release(t);
  loom_session_destroy(s);
  loom_artifact_close(cpu);
}

TEST(CudaChip, ComputeCapabilityRules) {
  bool parsed = false;
  EXPECT_EQ(loom::cuda::chipRequirement("sm_80", 8, 0, &parsed), "");
  EXPECT_TRUE(parsed);
  EXPECT_EQ(loom::cuda::chipRequirement("sm_80", 9, 0, &parsed), "");
  EXPECT_EQ(loom::cuda::chipRequirement("sm_86", 8, 0, &parsed),
            "compute capability 8.6 or newer");
  EXPECT_EQ(loom::cuda::chipRequirement("sm_90a", 9, 0, &parsed), "");
  EXPECT_EQ(loom::cuda::chipRequirement("sm_90a", 10, 0, &parsed),
            "compute capability 9.0 exactly");
  EXPECT_EQ(loom::cuda::chipRequirement("sm_90a", 8, 9, &parsed),
            "compute capability 9.0 exactly");
  EXPECT_EQ(loom::cuda::chipRequirement("sm_100a", 10, 0, &parsed), "");
  EXPECT_TRUE(parsed);
  for (const char *bad : {"gfx90a", "sm_", "sm_9", "sm_90b", "znver3"}) {
    loom::cuda::chipRequirement(bad, 9, 0, &parsed);
    EXPECT_FALSE(parsed) << bad;
  }
}

} // namespace
