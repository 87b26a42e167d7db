//===- abi.h - The Loom artifact ABI ----------------------------*- C -*-===//
//
// This file is the one header shared by the compiler and the runtime. It
// describes a Loom artifact: an ELF shared object whose section
// `.loom.manifest` (also exported as the data symbol `loom_artifact_manifest`)
// holds a position-independent manifest blob, entry functions
// `int32_t loom_entry_<name>(void **args)`, and import slots the runtime fills
// with host functions before any entry runs.
//
// The manifest is little-endian, 8-byte aligned, and contains offsets relative
// to the start of the blob, never pointers, so the runtime can validate it by
// reading the file before it maps or runs anything.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_ABI_H
#define LOOM_ABI_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Bumped on every incompatible change of anything in this header.
#define LOOM_ABI_VERSION 3u

/// The first 8 bytes of a manifest.
#define LOOM_MANIFEST_MAGIC "LOOMART"

/// Section and data symbol names of the manifest inside the shared object.
#define LOOM_MANIFEST_SECTION ".loom.manifest"
#define LOOM_MANIFEST_SYMBOL "loom_artifact_manifest"

/// Entry function symbols are this prefix followed by the entry name.
#define LOOM_ENTRY_SYMBOL_PREFIX "loom_entry_"

/// Element types. Sizes in bytes come from loom_dtype_size().
typedef enum loom_dtype_e {
  LOOM_DTYPE_INVALID = 0,
  LOOM_DTYPE_F32 = 1,
  LOOM_DTYPE_F64 = 2,
  LOOM_DTYPE_I32 = 3,
  LOOM_DTYPE_I64 = 4,
  LOOM_DTYPE_BOOL = 5, ///< One byte, 0 or 1.
  LOOM_DTYPE_F16 = 6,
  LOOM_DTYPE_BF16 = 7,
  /// Makes every 32-bit value representable, so that a C caller passing an
  /// unknown code is a reported error, not undefined behavior in C++.
  LOOM_DTYPE_MAX_ENUM = 0x7fffffff,
} loom_dtype_t;

static inline uint32_t loom_dtype_size(uint32_t dtype) {
  switch (dtype) {
  case LOOM_DTYPE_F32:
  case LOOM_DTYPE_I32:
    return 4;
  case LOOM_DTYPE_F64:
  case LOOM_DTYPE_I64:
    return 8;
  case LOOM_DTYPE_BOOL:
    return 1;
  case LOOM_DTYPE_F16:
  case LOOM_DTYPE_BF16:
    return 2;
  default:
    return 0;
  }
}

/// What an entry argument is. Arguments of an entry appear in the manifest
/// and in the `args` array in this order: inputs, params, states, outputs.
typedef enum loom_arg_role_e {
  LOOM_ROLE_INPUT = 1,  ///< Given by the caller on every call.
  LOOM_ROLE_PARAM = 2,  ///< Bound once per session from a weights file.
  LOOM_ROLE_STATE = 3,  ///< Owned by the session, zero-initialized, persists.
  LOOM_ROLE_OUTPUT = 4, ///< Allocated by the runtime, written by the entry.
  LOOM_ROLE_MAX_ENUM = 0x7fffffff,
} loom_arg_role_t;

/// Target kinds.
///
/// A LOOM_TARGET_CUDA artifact is the same kind of shared object, with
/// `target_cpu` naming the GPU chip ("sm_80": compute capability 8.0 or
/// newer; "sm_90a": exactly 9.0). Every argument descriptor of its entries
/// holds DEVICE pointers: the runtime uploads inputs before a call, keeps
/// params and states on the device for the session's life, and allocates
/// outputs on the device and downloads them after the call. Its host code
/// reaches the GPU only through imports of MLIR 22's GPU runtime functions by
/// their plain names and C signatures (mgpuModuleLoad(void *, size_t),
/// mgpuModuleLoadJIT(void *, int), mgpuModuleUnload, mgpuModuleGetFunction,
/// mgpuLaunchKernel(f, gx, gy, gz, bx, by, bz, int32_t smem, stream,
/// void **params, void **extra, size_t count), mgpuStream{Create, Destroy,
/// Synchronize, WaitEvent}, mgpuEvent{Create, Destroy, Synchronize, Record},
/// mgpuMemAlloc(uint64_t, stream, bool host_shared), mgpuMemFree,
/// mgpuMemcpy, mgpuMemset32, mgpuMemset16), which return no error: the
/// runtime records the first CUDA error of a call and returns it as the
/// call's status. The kernel module is loaded by the first entry call and
/// kept (never from an ELF constructor, which runs before the import slots
/// are filled); the runtime keeps one CUDA context current for the whole
/// process. See docs/abi.md, "CUDA artifacts".
typedef enum loom_target_e {
  LOOM_TARGET_CPU = 1,
  LOOM_TARGET_CUDA = 2,
  LOOM_TARGET_MAX_ENUM = 0x7fffffff,
} loom_target_t;

/// Maximum rank of any argument.
#define LOOM_MAX_RANK 8

/// A dimension in the manifest: >= 0 is a static size; < 0 is the symbolic
/// dimension number `-(d + 1)` into the artifact's symbol table. Symbols are
/// bound by the input arguments of a call; params, states and outputs only use
/// symbols that some input of the same entry binds.
typedef int64_t loom_manifest_dim_t;

/// The manifest header, at offset 0 of the blob.
typedef struct loom_manifest_header_t {
  char magic[8];             ///< LOOM_MANIFEST_MAGIC, NUL-terminated.
  uint32_t abi_version;      ///< LOOM_ABI_VERSION.
  uint32_t header_size;      ///< sizeof(loom_manifest_header_t).
  uint64_t total_size;       ///< Size of the whole blob in bytes.
  uint64_t file_checksum;    ///< loom_fnv1a64 of the whole file with these 8
                             ///< bytes read as zero.
  uint32_t target;           ///< loom_target_t.
  uint32_t compiler_version; ///< String offset.
  uint32_t target_cpu;       ///< String offset ("znver3", "sm_90a", ...).
  uint32_t strings_offset;   ///< Start of the string table.
  uint32_t strings_size;     ///< Size of the string table in bytes.
  uint32_t num_symbols;      ///< Symbolic dimension names.
  uint32_t symbols_offset;   ///< uint32_t[num_symbols] string offsets.
  uint32_t num_entries;
  uint32_t entries_offset; ///< loom_manifest_entry_t[num_entries].
  uint32_t num_imports;
  uint32_t imports_offset; ///< loom_manifest_import_t[num_imports].
  uint32_t reserved;
} loom_manifest_header_t;

/// One entry point.
typedef struct loom_manifest_entry_t {
  uint32_t name;   ///< String offset: the graph name.
  uint32_t symbol; ///< String offset: the function symbol.
  uint32_t num_args;
  uint32_t args_offset; ///< loom_manifest_arg_t[num_args].
  uint32_t num_requirements;
  uint32_t requirements_offset; ///< loom_manifest_requirement_t[
                                ///< num_requirements], 8-byte aligned.
} loom_manifest_entry_t;

/// How the linear form of a requirement is compared with zero.
typedef enum loom_requirement_predicate_e {
  LOOM_REQUIREMENT_GE = 1, ///< constant + sum(coeff * term) >= 0
  LOOM_REQUIREMENT_EQ = 2, ///< constant + sum(coeff * term) == 0
  LOOM_REQUIREMENT_NE = 3, ///< constant + sum(coeff * term) != 0
  LOOM_REQUIREMENT_MAX_ENUM = 0x7fffffff,
} loom_requirement_predicate_t;

/// What a term of a requirement reads.
typedef enum loom_requirement_term_kind_e {
  /// The value of symbol `index` of the symbol table in this call; the symbol
  /// is bound by an input of the entry.
  LOOM_TERM_SYMBOL = 1,
  /// The value of argument `index` of the entry, a rank-0 i32 or i64 input.
  LOOM_TERM_INPUT = 2,
  LOOM_TERM_MAX_ENUM = 0x7fffffff,
} loom_requirement_term_kind_t;

/// One term of a requirement: `coeff` times the value it reads.
typedef struct loom_manifest_term_t {
  int64_t coeff;
  uint32_t kind;     ///< loom_requirement_term_kind_t.
  uint32_t index;    ///< Symbol index or argument index.
  uint32_t name;     ///< String offset: the name in the requirement's text.
  uint32_t reserved; ///< Zero.
} loom_manifest_term_t;

/// A precondition of an entry (`require` in the .loom file), checked by the
/// runtime on every call after the inputs bind the symbols and before the
/// entry runs: constant + sum(coeff_i * term_i) compared with zero by
/// `predicate`. A call that fails it is refused and changes nothing.
typedef struct loom_manifest_requirement_t {
  int64_t constant;
  uint32_t predicate;    ///< loom_requirement_predicate_t.
  uint32_t num_terms;    ///< At least 1.
  uint32_t terms_offset; ///< loom_manifest_term_t[num_terms], 8-byte aligned.
  uint32_t text;         ///< String offset: the condition as written.
  uint32_t configs;      ///< String offset: the compile-time values of the
                         ///< other names in the text ("max_seq_len = 16",
                         ///< possibly empty).
  uint32_t location;     ///< String offset: "file:line:col" of the require.
} loom_manifest_requirement_t;

/// One argument of an entry.
typedef struct loom_manifest_arg_t {
  uint32_t name;        ///< String offset: the name in the .loom file.
  uint32_t role;        ///< loom_arg_role_t.
  uint32_t dtype;       ///< loom_dtype_t.
  uint32_t rank;        ///< <= LOOM_MAX_RANK.
  uint32_t binding;     ///< String offset: the weights-file tensor name of a
                        ///< param, the session-wide state name of a state,
                        ///< otherwise equal to `name`.
  uint32_t dims_offset; ///< loom_manifest_dim_t[rank], 8-byte aligned.
} loom_manifest_arg_t;

/// A host function the artifact calls. `slot` names a data symbol of type
/// `void *` in the artifact that the runtime sets to the host function named
/// `name` before any entry runs. An import the runtime does not provide is an
/// error at load time.
typedef struct loom_manifest_import_t {
  uint32_t name; ///< String offset, e.g. "loom_rt_matmul_f32".
  uint32_t slot; ///< String offset of the slot symbol.
} loom_manifest_import_t;

/// Strings are NUL-terminated inside the string table; a string offset is
/// relative to `strings_offset`.

/// The argument of every entry: `args[i]` points to the strided memref
/// descriptor of argument i (MLIR's layout):
///   { void *allocated; void *aligned; int64_t offset;
///     int64_t sizes[rank]; int64_t strides[rank]; }
/// Returns 0 on success, a nonzero code otherwise.
typedef int32_t (*loom_entry_fn_t)(void **args);

/// Nonzero codes an entry returns.
/// An output's size computed at run time (e.g. a slice of a symbolic
/// dimension) differs from the size the runtime allocated from the output's
/// declared dimensions; the entry wrote no output.
#define LOOM_ENTRY_ERROR_OUTPUT_SIZE 1

/// Memref descriptors as they are passed to host functions.
typedef struct loom_memref_1d_t {
  void *allocated;
  void *aligned;
  int64_t offset;
  int64_t sizes[1];
  int64_t strides[1];
} loom_memref_1d_t;

typedef struct loom_memref_2d_t {
  void *allocated;
  void *aligned;
  int64_t offset;
  int64_t sizes[2];
  int64_t strides[2];
} loom_memref_2d_t;

typedef struct loom_memref_3d_t {
  void *allocated;
  void *aligned;
  int64_t offset;
  int64_t sizes[3];
  int64_t strides[3];
} loom_memref_3d_t;

typedef struct loom_memref_4d_t {
  void *allocated;
  void *aligned;
  int64_t offset;
  int64_t sizes[4];
  int64_t strides[4];
} loom_memref_4d_t;

/// Flags of the matmul host functions.
#define LOOM_MATMUL_TRANSPOSE_A 1
#define LOOM_MATMUL_TRANSPOSE_B 2
#define LOOM_MATMUL_ACCUMULATE 4

/// Host function "loom_rt_matmul_f32": C = op(A) * op(B) (+ C when
/// LOOM_MATMUL_ACCUMULATE), where op transposes when the flag says so. A and B
/// are given as stored (op(A) is [M, K], op(B) is [K, N], C is [M, N]).
typedef void (*loom_rt_matmul_f32_fn_t)(const loom_memref_2d_t *a,
                                        const loom_memref_2d_t *b,
                                        loom_memref_2d_t *c, int64_t flags);

/// Host function "loom_rt_batch_matmul_f32": the same per batch index, all
/// three operands of rank 3 with the batch first.
typedef void (*loom_rt_batch_matmul_f32_fn_t)(const loom_memref_3d_t *a,
                                              const loom_memref_3d_t *b,
                                              loom_memref_3d_t *c,
                                              int64_t flags);

/// For CUDA artifacts only, on device memory: "loom_rt_matmul_bf16_f32",
/// "loom_rt_batch_matmul_bf16_f32", "loom_rt_matmul_f16_f32" and
/// "loom_rt_batch_matmul_f16_f32", the same products with A and B of
/// bfloat16 or IEEE half elements (16 bits each) and C of f32, accumulated
/// in f32; and "loom_rt_matmul_bf16", "loom_rt_batch_matmul_bf16",
/// "loom_rt_matmul_f16" and "loom_rt_batch_matmul_f16", whose C has the
/// operands' 16-bit type: accumulated in f32 and rounded once (to nearest,
/// ties to even), with LOOM_MATMUL_ACCUMULATE adding C's 16-bit values. Their
/// descriptors have the layout of loom_memref_2d_t / loom_memref_3d_t; the
/// function pointer types above apply.

/// Host function "loom_rt_mla_decode_f32": DeepSeek-V3 multi-head latent
/// attention on the compressed cache, with the key up-projection absorbed
/// into the queries (attn_impl "absorb"). With B = q_lat.sizes[0], S =
/// sizes[1], H = sizes[2], C = kv_lora_rank, R = qk_rope_head_dim, T = the
/// cache length:
///   q_lat [B, S, H, C]  queries times W_UK (q_nope absorbed per head)
///   q_pe  [B, S, H, R]  rotated rope part of the queries
///   kv    [MB, T, C]    normalized latent cache, rows [0, B) read (MB >= B)
///   pe    [MB, T, R]    rotated rope-key cache, shared by all heads
///   out   [B, S, H, C]  written: for query (b, s, h), with keys t in
///                       [0, min(T, start_pos + s + 1)),
///     p_t = softmax_t(scale * (q_lat[b,s,h] . kv[b,t] + q_pe[b,s,h] . pe[b,t]))
///     out[b,s,h] = sum_t p_t kv[b,t]   (0 when no key is visible)
/// Every cached row is read once per (b, block of keys) for all heads and
/// queries; the output stays in the latent space (the caller multiplies by
/// W_UV).
typedef void (*loom_rt_mla_decode_f32_fn_t)(const loom_memref_4d_t *q_lat,
                                            const loom_memref_4d_t *q_pe,
                                            const loom_memref_3d_t *kv,
                                            const loom_memref_3d_t *pe,
                                            loom_memref_4d_t *out,
                                            int64_t start_pos, float scale);

/// What a mask says of a block of (query, key) pairs.
#define LOOM_ATTENTION_BLOCK_NONE 0 ///< No pair of the block is visible.
#define LOOM_ATTENTION_BLOCK_ALL 1  ///< Every pair of the block is visible.
#define LOOM_ATTENTION_BLOCK_SOME 2 ///< Unknown: ask mask_row per row.

/// Flags of loom_attention_mods_t: the mask functions read these block
/// arguments. Without the flag, their answers are the same for every value
/// of it, so a kernel may compute a block classification once and share it.
#define LOOM_ATTENTION_MASK_USES_B 1u
#define LOOM_ATTENTION_MASK_USES_H 2u

/// The mask and the score modifier of an attention, compiled from the
/// regions of `fuse.attention` into functions of the artifact. `b` is the
/// batch index, `h` the query head, `i` the query and `j` the key position.
/// Any function pointer may be NULL: no mask (every key visible), no score
/// modifier.
typedef struct loom_attention_mods_t {
  void *ctx; ///< Passed back to every function: the captured tensors.
  /// out[t] = 1 when key j0 + t is visible to query i, else 0, t < n.
  void (*mask_row)(void *ctx, int64_t b, int64_t h, int64_t i, int64_t j0,
                   int64_t n, uint8_t *out);
  /// LOOM_ATTENTION_BLOCK_* for queries [i0, i1) and keys [j0, j1), from an
  /// interval analysis of the mask; NONE and ALL are exact, SOME means the
  /// analysis could not tell (the caller refines with mask_row). NULL when
  /// mask_row is NULL.
  int32_t (*mask_block)(void *ctx, int64_t b, int64_t h, int64_t i0,
                        int64_t i1, int64_t j0, int64_t j1);
  /// s[t] = score_mod(b, h, i, j0 + t, s[t]) for t < n, where s[t] is the
  /// scaled dot product; applied before the mask.
  void (*score_row)(void *ctx, int64_t b, int64_t h, int64_t i, int64_t j0,
                    int64_t n, float *s);
  uint32_t flags; ///< LOOM_ATTENTION_MASK_USES_*.
} loom_attention_mods_t;

/// Host function "loom_rt_attention_f32": attention with a mask and a score
/// modifier, flash style (the [Sq, Skv] scores never exist in memory). With
/// q [B, Hq, Sq, Dk], k [B, Hkv, Skv, Dk], v [B, Hkv, Skv, Dv] (Hq a
/// multiple of Hkv; query head h reads key/value head h / (Hq / Hkv)):
///   s_ij = score_row(b, h, i, j, scale * q[b,h,i] . k[b,h',j]),
///   visible_ij = mask_row(b, h, i, j),
///   out[b,h,i] = sum_j softmax_j(s_ij over visible j) v[b,h',j]   [B,Hq,Sq,Dv]
///   lse[b,h,i] = log sum_{visible j} exp(s_ij)                    [B,Hq,Sq]
/// A query with no visible key gets out 0 and lse -inf. `lse` may be NULL.
typedef void (*loom_rt_attention_f32_fn_t)(const loom_memref_4d_t *q,
                                           const loom_memref_4d_t *k,
                                           const loom_memref_4d_t *v,
                                           loom_memref_4d_t *out,
                                           loom_memref_3d_t *lse, float scale,
                                           const loom_attention_mods_t *mods);

/// Host function "loom_rt_token_logprob_f32": the log-probability of each
/// token under an lm-head, computed in vocabulary chunks so that the
/// [N, V] logits never exist in memory (extra memory O(N x chunk)). With N
/// tokens, hidden [N, d], weight [V, d] (the lm-head, rows are vocabulary
/// entries), ids [N] (int64, each in [0, V)) and t = temperature > 0:
///   logits[n, v] = (hidden[n] . weight[v]) / t
///   lse[n]  = log sum_v exp(logits[n, v])                 [N]
///   logp[n] = logits[n, ids[n]] - lse[n]                   [N]
/// `chunk` is the number of vocabulary rows per step (0: the kernel picks).
/// `lse` may be NULL. Nothing is read out of bounds: an id outside [0, V)
/// gives logp NaN for its token, and a temperature that is not > 0 makes
/// every output NaN.
typedef void (*loom_rt_token_logprob_f32_fn_t)(
    const loom_memref_2d_t *hidden, const loom_memref_2d_t *weight,
    const loom_memref_1d_t *ids, loom_memref_1d_t *logp,
    loom_memref_1d_t *lse, float temperature, int64_t chunk);

/// Flags of the token log-prob backwards: grad_weight += the gradient
/// instead of being overwritten (a gradient summed into a state). Other
/// bits make the gradients NaN.
#define LOOM_TOKEN_LOGPROB_ACCUMULATE 1

/// Host function "loom_rt_token_logprob_grad_f32": the backward of
/// loom_rt_token_logprob_f32 for an upstream gradient g [N] = dL/dlogp,
/// with the forward's lse, again chunked over the vocabulary:
///   dlogits[n, v] = g[n] / t * ([v == ids[n]] - exp(logits[n, v] - lse[n]))
///   grad_hidden = dlogits . weight          [N, d]   (overwritten)
///   grad_weight = dlogits^T . hidden        [V, d]   (overwritten; added
///                                                    to with ACCUMULATE)
/// Either gradient may be NULL when it is not needed. A token with g = 0
/// (padding under a mask) is left out of the products: its grad_hidden row
/// is 0 and its id is not read. A token with g != 0 and an id outside
/// [0, V) makes its grad_hidden row and all of grad_weight NaN.
typedef void (*loom_rt_token_logprob_grad_f32_fn_t)(
    const loom_memref_2d_t *hidden, const loom_memref_2d_t *weight,
    const loom_memref_1d_t *ids, const loom_memref_1d_t *g,
    const loom_memref_1d_t *lse, loom_memref_2d_t *grad_hidden,
    loom_memref_2d_t *grad_weight, float temperature, int64_t chunk,
    int64_t flags);

/// Host function "loom_rt_token_logprob_rows_f32": one block of tokens of
/// the single-pass lm-head loss. With hidden, weight, ids and t as in
/// loom_rt_token_logprob_f32, scratch [R, V] and c = min(R, N - offset)
/// (nothing when c <= 0), for the tokens n = offset + r, r < c:
///   scratch[r, v] = hidden[n] . weight[v]        (the raw products)
///   lse[n]  = log sum_v exp(scratch[r, v] / t)
///   logp[n] = scratch[r, ids[n]] / t - lse[n]
/// Other elements of logp, lse and scratch keep their values. Scratch must
/// have V contiguous columns (stride 1) and rows at least V apart; otherwise,
/// like a temperature that is not > 0, the block's logp and lse are NaN. An id
/// outside [0, V) gives its token logp NaN.
typedef void (*loom_rt_token_logprob_rows_f32_fn_t)(
    const loom_memref_2d_t *hidden, const loom_memref_2d_t *weight,
    const loom_memref_1d_t *ids, loom_memref_1d_t *logp, loom_memref_1d_t *lse,
    loom_memref_2d_t *scratch, int64_t offset, float temperature);

/// Host function "loom_rt_token_logprob_rows_grad_f32": the backward of the
/// block of loom_rt_token_logprob_rows_f32 that filled scratch (same
/// operands, offset and temperature), for g [N] = dL/dlogp:
///   dlogits[r, v]  = g[n] / t * ([v == ids[n]] - exp(scratch[r, v] / t
///                    - lse[n]))
///   grad_hidden[n] = dlogits[r] . weight                  (the block's rows)
///   grad_weight    = (offset == 0 ? 0 : grad_weight)
///                    + dlogits^T . hidden[block]
/// so that calls for offsets 0, R, 2R, ... (N = 0: offset 0 alone) leave the
/// gradients of loom_rt_token_logprob_grad_f32. With flags
/// LOOM_TOKEN_LOGPROB_ACCUMULATE the block at offset 0 adds to grad_weight
/// as well, so the calls add the gradient to it. Other rows of grad_hidden
/// keep their values; scratch is clobbered. A token with g = 0 is left out of
/// the products (its grad_hidden row is 0, its id is not read); one with
/// g != 0 and an id outside [0, V) makes its row and grad_weight NaN.
typedef void (*loom_rt_token_logprob_rows_grad_f32_fn_t)(
    const loom_memref_2d_t *hidden, const loom_memref_2d_t *weight,
    const loom_memref_1d_t *ids, const loom_memref_1d_t *lse,
    const loom_memref_1d_t *g, loom_memref_2d_t *grad_hidden,
    loom_memref_2d_t *grad_weight, loom_memref_2d_t *scratch, int64_t offset,
    float temperature, int64_t flags);

/// Host function "loom_rt_parallel_for": calls body(ctx, begin, end) over
/// disjoint ranges covering [0, n) on the runtime's threads and returns when
/// all are done.
typedef void (*loom_rt_parallel_for_fn_t)(void (*body)(void *, int64_t,
                                                       int64_t),
                                          void *ctx, int64_t n);

/// Host function "loom_rt_alloc": `size` bytes aligned to `alignment` (a
/// power of two, at most 4096), or NULL when memory is exhausted. Generated
/// code allocates every temporary buffer through it, so the runtime can reuse
/// large blocks across calls instead of returning them to the system.
typedef void *(*loom_rt_alloc_fn_t)(int64_t size, int64_t alignment);

/// Host function "loom_rt_free": releases a block of loom_rt_alloc; NULL is
/// ignored.
typedef void (*loom_rt_free_fn_t)(void *ptr);

/// FNV-1a, 64 bit. The file checksum skips nothing: the compiler writes the
/// file with `file_checksum` zero, hashes it, and patches the field.
static inline uint64_t loom_fnv1a64(uint64_t hash, const void *data,
                                    uint64_t size) {
  const unsigned char *p = (const unsigned char *)data;
  for (uint64_t i = 0; i < size; ++i) {
    hash ^= p[i];
    hash *= 0x100000001b3ull;
  }
  return hash;
}
#define LOOM_FNV1A64_INIT 0xcbf29ce484222325ull

#ifdef __cplusplus
} // extern "C"
#endif

#endif // LOOM_ABI_H
