// Fused Frequency-Time Attention for the CPU, float32: the patch queries of FTA, forward and backward.
//
// Why a kernel of its own: ATen's CPU flash attention runs FTA's row branch at about half its own dense FLOP rate
// (rows of 101 keys are short) and the column branch (thousands of 12 x 12 problems on strided views) at a few
// GFLOP/s, and merging the two branches by log-sum-exp costs further passes over memory. Here one task takes one
// frequency row f of one head z and computes, for its T' queries, the scores against the row's keys, the column
// keys and the prefix keys, ONE softmax over their union (the self key counted once: the column skips it), and
// the output, with every intermediate in a per-thread buffer that stays in cache. Nothing N x N is ever built.
//
// Layout: q, k, v are (Z, L, hd) contiguous with L = P + F'*T'; prefix tokens first, patches in (f t) order.
// The GEMM-like parts use a register-blocked micro-kernel on GCC vector types (AVX-512 when compiled for it);
// exp is a Cephes-style polynomial with 2^n built from the exponent bits. Threads: at::parallel_for over tasks,
// i.e. torch's own OpenMP pool and torch.set_num_threads.
//
// The backward follows FlashAttention (Dao et al. 2022, Alg. 4): probabilities are rebuilt as exp(s - lse) from
// the JOINT log-sum-exp saved by the forward, delta = rowsum(dO * O), dS = P * (dP - delta). Phase A (one task per
// row) writes dQ and the row-branch parts of dK and dV; the column parts land in other rows, so phase A stores the
// column probabilities and dS, and phase B (one task per row again, now as the key row) adds them up. The prefix
// keys' gradients are two small matrix products returned to Python.
#include <torch/library.h>
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "vector_exp.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace {

#if defined(__AVX512F__)
constexpr int W_MAX = 16;
#else
constexpr int W_MAX = 8;
#endif

// Everything below, for vectors of W floats: 16 (AVX-512) suits long rows and head dims that are multiples of 16,
// 8 suits short rows (less padding of T') and head dims like 24.
// (GCC ignores a vector_size that depends on a template parameter, hence one specialization per width.)
template <int W>
struct Vec;
template <>
struct Vec<16> {
  typedef float vf __attribute__((vector_size(64)));
  typedef float vfu __attribute__((vector_size(64), aligned(4)));
  typedef int vi __attribute__((vector_size(64)));
};
template <>
struct Vec<8> {
  typedef float vf __attribute__((vector_size(32)));
  typedef float vfu __attribute__((vector_size(32), aligned(4)));
  typedef int vi __attribute__((vector_size(32)));
};

template <int W>
struct Kernel {
typedef typename Vec<W>::vf vf;
typedef typename Vec<W>::vfu vfu;
typedef typename Vec<W>::vi vi;

static inline vf load(const float* p) { return *reinterpret_cast<const vfu*>(p); }
static inline void store(float* p, vf x) { *reinterpret_cast<vfu*>(p) = x; }
static inline vf splat(float x) { return vf{} + x; }
static inline vf vmax(vf a, vf b) { return a > b ? a : b; }
static inline float hsum(vf x) {
  float s = 0.f;
  for (int i = 0; i < W; ++i) s += x[i];
  return s;
}
static inline float hmax(vf x) {
  float m = x[0];
  for (int i = 1; i < W; ++i) m = std::max(m, x[i]);
  return m;
}
static inline int64_t round_up(int64_t n) { return (n + W - 1) / W * W; }

static inline vf vexp(vf x) { return vector_exp<vf, vi>(x); }

// C[i][j] (+)= sum_k A[i*ars + k*acs] * B[k*ldb + j] for i < MR, j < NV*W: MR*NV accumulators in registers.
template <int MR, int NV>
static void micro(int64_t K, const float* A, int64_t ars, int64_t acs, const float* B, int64_t ldb, float* C,
           int64_t ldc, bool accumulate) {
  vf c[MR][NV];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NV; ++j) c[i][j] = accumulate ? load(C + i * ldc + j * W) : vf{};
  for (int64_t kk = 0; kk < K; ++kk) {
    vf b[NV];
    for (int j = 0; j < NV; ++j) b[j] = load(B + kk * ldb + j * W);
    for (int i = 0; i < MR; ++i) {
      const vf a = splat(A[i * ars + kk * acs]);
      for (int j = 0; j < NV; ++j) c[i][j] += a * b[j];
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NV; ++j) store(C + i * ldc + j * W, c[i][j]);
}

static constexpr int MR_MAX = 6, NV_MAX = 4;
static void micro_any(int mr, int nv, int64_t K, const float* A, int64_t ars, int64_t acs, const float* B,
                      int64_t ldb, float* C, int64_t ldc, bool accumulate) {
  switch (mr * 8 + nv) {
      case 9: return micro<1, 1>(K, A, ars, acs, B, ldb, C, ldc, accumulate);
      case 10: return micro<1, 2>(K, A, ars, acs, B, ldb, C, ldc, accumulate);
      case 11: return micro<1, 3>(K, A, ars, acs, B, ldb, C, ldc, accumulate);
      case 12: return micro<1, 4>(K, A, ars, acs, B, ldb, C, ldc, accumulate);
      case 17: return micro<2, 1>(K, A, ars, acs, B, ldb, C, ldc, accumulate);
      case 18: return micro<2, 2>(K, A, ars, acs, B, ldb, C, ldc, accumulate);
      case 19: return micro<2, 3>(K, A, ars, acs, B, ldb, C, ldc, accumulate);
      case 20: return micro<2, 4>(K, A, ars, acs, B, ldb, C, ldc, accumulate);
      case 25: return micro<3, 1>(K, A, ars, acs, B, ldb, C, ldc, accumulate);
      case 26: return micro<3, 2>(K, A, ars, acs, B, ldb, C, ldc, accumulate);
      case 27: return micro<3, 3>(K, A, ars, acs, B, ldb, C, ldc, accumulate);
      case 28: return micro<3, 4>(K, A, ars, acs, B, ldb, C, ldc, accumulate);
      case 33: return micro<4, 1>(K, A, ars, acs, B, ldb, C, ldc, accumulate);
      case 34: return micro<4, 2>(K, A, ars, acs, B, ldb, C, ldc, accumulate);
      case 35: return micro<4, 3>(K, A, ars, acs, B, ldb, C, ldc, accumulate);
      case 36: return micro<4, 4>(K, A, ars, acs, B, ldb, C, ldc, accumulate);
      case 41: return micro<5, 1>(K, A, ars, acs, B, ldb, C, ldc, accumulate);
      case 42: return micro<5, 2>(K, A, ars, acs, B, ldb, C, ldc, accumulate);
      case 43: return micro<5, 3>(K, A, ars, acs, B, ldb, C, ldc, accumulate);
      case 44: return micro<5, 4>(K, A, ars, acs, B, ldb, C, ldc, accumulate);
      case 49: return micro<6, 1>(K, A, ars, acs, B, ldb, C, ldc, accumulate);
      case 50: return micro<6, 2>(K, A, ars, acs, B, ldb, C, ldc, accumulate);
      case 51: return micro<6, 3>(K, A, ars, acs, B, ldb, C, ldc, accumulate);
      case 52: return micro<6, 4>(K, A, ars, acs, B, ldb, C, ldc, accumulate);
    default: TORCH_CHECK(false, "fta_cpu_kernel: no micro-kernel ", mr, "x", nv);
  }
}

// C (M x N, row-major, ldc) (+)= A (M x K, element (i, k) at A[i*ars + k*acs]) times B (K x N, row-major, ldb).
// N must be a multiple of W.
static void gemm(int64_t M, int64_t N, int64_t K, const float* A, int64_t ars, int64_t acs, const float* B, int64_t ldb,
          float* C, int64_t ldc, bool accumulate) {
  for (int64_t j0 = 0; j0 < N; j0 += NV_MAX * W) {
    const int nv = static_cast<int>(std::min<int64_t>(NV_MAX, (N - j0) / W));
    for (int64_t i0 = 0; i0 < M; i0 += MR_MAX) {
      const int mr = static_cast<int>(std::min<int64_t>(MR_MAX, M - i0));
      micro_any(mr, nv, K, A + i0 * ars, ars, acs, B + j0, ldb, C + i0 * ldc + j0, ldc, accumulate);
    }
  }
}

// dst (d x Tp) = transpose of src rows (T x d, row stride d) times `mul`, zero in the padding columns t >= T.
static void transpose_pad(const float* src, int64_t T, int64_t d, int64_t Tp, float mul, float* dst) {
  for (int64_t dd = 0; dd < d; ++dd) {
    float* row = dst + dd * Tp;
    for (int64_t t = 0; t < T; ++t) row[t] = src[t * d + dd] * mul;
    for (int64_t t = T; t < Tp; ++t) row[t] = 0.f;
  }
}

// out[x][tv] = sum_dd A[dd][tv] * B_x[dd][tv] for the n_out rows x (vectors along t): the column branch's dot
// products between a row's queries and another row's keys at the same time step.
static void column_dots(const float* A, const float* B, int64_t b_stride, int64_t n_out, int64_t d, int64_t Tp,
                 float* out) {
  for (int64_t tv = 0; tv < Tp; tv += W) {
    int64_t x = 0;
    for (; x + 4 <= n_out; x += 4) {
      vf c0{}, c1{}, c2{}, c3{};
      const float* b = B + x * b_stride + tv;
      for (int64_t dd = 0; dd < d; ++dd) {
        const vf a = load(A + dd * Tp + tv);
        c0 += a * load(b + dd * Tp);
        c1 += a * load(b + b_stride + dd * Tp);
        c2 += a * load(b + 2 * b_stride + dd * Tp);
        c3 += a * load(b + 3 * b_stride + dd * Tp);
      }
      store(out + x * Tp + tv, c0);
      store(out + (x + 1) * Tp + tv, c1);
      store(out + (x + 2) * Tp + tv, c2);
      store(out + (x + 3) * Tp + tv, c3);
    }
    for (; x < n_out; ++x) {
      vf c{};
      const float* b = B + x * b_stride + tv;
      for (int64_t dd = 0; dd < d; ++dd) c += load(A + dd * Tp + tv) * load(b + dd * Tp);
      store(out + x * Tp + tv, c);
    }
  }
}

// out[j][tv] = sum_dd A[dd][tv] * vecs[j][dd] (vectors along t): scores against the P prefix keys.
static void prefix_dots(const float* A, const float* vecs, int64_t P, int64_t d, int64_t Tp, float* out) {
  for (int64_t j = 0; j < P; ++j) {
    const float* w = vecs + j * d;
    for (int64_t tv = 0; tv < Tp; tv += W) {
      vf c{};
      for (int64_t dd = 0; dd < d; ++dd) c += load(A + dd * Tp + tv) * w[dd];
      store(out + j * Tp + tv, c);
    }
  }
}

// y[0..d) += a * x[0..d)
static inline void axpy(float a, const float* x, float* y, int64_t d) {
  const vf av = splat(a);
  for (int64_t i = 0; i < d; i += W) store(y + i, load(y + i) + av * load(x + i));
}

struct Geometry {
  int64_t Z, L, d, F, T, P, N, Tp;
  float scale;
};

static Geometry check(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t F, int64_t T, int64_t P,
               double scale) {
  for (const at::Tensor* x : {&q, &k, &v}) {
    TORCH_CHECK(x->device().is_cpu() && x->scalar_type() == at::kFloat && x->dim() == 3 && x->is_contiguous(),
                "fta_cpu_kernel: q, k, v must be contiguous float32 CPU tensors of shape (Z, L, hd)");
    TORCH_CHECK(x->sizes() == q.sizes(), "fta_cpu_kernel: q, k, v must have the same shape");
  }
  Geometry g{q.size(0), q.size(1), q.size(2), F, T, P, F * T, round_up(T), static_cast<float>(scale)};
  TORCH_CHECK(g.d % W == 0, "fta_cpu_kernel: head dim must be a multiple of ", W, ", got ", g.d);
  TORCH_CHECK(F >= 1 && T >= 1 && P >= 0 && P + F * T == g.L, "fta_cpu_kernel: grid does not match L");
  return g;
}

// One head's key (or value) rows transposed, (F, d, Tp), zero-padded: refilled only when a thread's task moves to
// another head. Tasks are handed out in contiguous blocks, so each thread transposes each of its heads once, and
// the memory is one head per thread, not a copy of K.
struct HeadTransposed {
  std::vector<float> data;
  int64_t head = -1;
  explicit HeadTransposed(const Geometry& g) : data(g.F * g.d * g.Tp) {}
  const float* get(const float* x, int64_t z, const Geometry& g) {
    if (z != head) {
      for (int64_t f = 0; f < g.F; ++f)
        transpose_pad(x + (z * g.L + g.P + f * g.T) * g.d, g.T, g.d, g.Tp, 1.f, data.data() + f * g.d * g.Tp);
      head = z;
    }
    return data.data();
  }
};

// Per-task scratch: every buffer of one row's computation.
struct Scratch {
  std::vector<float> qs, qst, s, sc, sp, m, l, o, dot, dpr, dpc, dpp, delta, lse;
  explicit Scratch(const Geometry& g, bool backward)
      : qs(g.T * g.d), qst(g.d * g.Tp), s(g.T * g.Tp), sc(g.F * g.Tp), sp(std::max<int64_t>(g.P, 1) * g.Tp),
        m(g.Tp), l(g.Tp), o(g.T * g.d) {
    if (backward) {
      dot.resize(g.d * g.Tp);
      dpr.resize(g.T * g.Tp);
      dpc.resize(g.F * g.Tp);
      dpp.resize(std::max<int64_t>(g.P, 1) * g.Tp);
      delta.resize(g.Tp);
      lse.resize(g.Tp);
    }
  }
};

// Scaled queries of row f (row-major and transposed) and their raw scores against the row's keys (s), every
// column's keys at the same time step (sc, g = f included: the callers zero it) and the prefix keys (sp).
static void scores(const Geometry& g, const float* qz, const float* kz, const float* kt_z, int64_t f, Scratch& w) {
  const float* qf = qz + (g.P + f * g.T) * g.d;
  for (int64_t i = 0; i < g.T * g.d; ++i) w.qs[i] = qf[i] * g.scale;
  transpose_pad(w.qs.data(), g.T, g.d, g.Tp, 1.f, w.qst.data());
  gemm(g.T, g.Tp, g.d, w.qs.data(), g.d, 1, kt_z + f * g.d * g.Tp, g.Tp, w.s.data(), g.Tp, false);
  column_dots(w.qst.data(), kt_z, g.d * g.Tp, g.F, g.d, g.Tp, w.sc.data());
  if (g.P > 0) prefix_dots(w.qst.data(), kz, g.P, g.d, g.Tp, w.sp.data());
}

static void forward_row(const Geometry& g, const float* q, const float* k, const float* v, const float* kt_z, int64_t z,
                 int64_t f, float* out_base, const int64_t* out_strides, int64_t heads, float* lse, Scratch& w) {
  const float* qz = q + z * g.L * g.d;
  const float* kz = k + z * g.L * g.d;
  const float* vz = v + z * g.L * g.d;
  scores(g, qz, kz, kt_z, f, w);
  const int64_t T = g.T, Tp = g.Tp;
  const float ninf = -std::numeric_limits<float>::infinity();

  // the joint maximum: column and prefix scores (vectors along t), then each query's row
  for (int64_t tv = 0; tv < Tp; tv += W) {
    vf m = splat(ninf);
    for (int64_t c = 0; c < g.F; ++c)
      if (c != f) m = vmax(m, load(&w.sc[c * Tp + tv]));
    for (int64_t j = 0; j < g.P; ++j) m = vmax(m, load(&w.sp[j * Tp + tv]));
    store(&w.m[tv], m);
  }
  for (int64_t t = 0; t < T; ++t) {
    const float* row = &w.s[t * Tp];
    vf m = splat(ninf);
    int64_t s = 0;
    for (; s + W <= T; s += W) m = vmax(m, load(row + s));
    float mt = std::max(w.m[t], hmax(m));
    for (; s < T; ++s) mt = std::max(mt, row[s]);
    w.m[t] = mt;
  }
  // exponentials and their sums
  for (int64_t t = 0; t < T; ++t) {
    float* row = &w.s[t * Tp];
    const vf mt = splat(w.m[t]);
    vf acc{};
    int64_t s = 0;
    for (; s + W <= T; s += W) {
      const vf e = vexp(load(row + s) - mt);
      store(row + s, e);
      acc += e;
    }
    if (s < T) {  // the last partial vector: exponentiate, then zero the padding keys
      const vf e = vexp(load(row + s) - mt);
      store(row + s, e);
      for (int64_t x = T; x < s + W; ++x) row[x] = 0.f;
      for (int64_t x = s; x < T; ++x) acc[0] += row[x];
    }
    w.l[t] = hsum(acc);
  }
  for (int64_t tv = 0; tv < Tp; tv += W) {
    const vf mt = load(&w.m[tv]);
    vf acc{};
    for (int64_t c = 0; c < g.F; ++c) {
      const vf e = c == f ? vf{} : vexp(load(&w.sc[c * Tp + tv]) - mt);
      store(&w.sc[c * Tp + tv], e);
      acc += e;
    }
    for (int64_t j = 0; j < g.P; ++j) {
      const vf e = vexp(load(&w.sp[j * Tp + tv]) - mt);
      store(&w.sp[j * Tp + tv], e);
      acc += e;
    }
    store(&w.l[tv], load(&w.l[tv]) + acc);
  }
  // output: row probabilities times the row's values, plus columns and prefix, over the joint sum
  const float* vf_row = vz + (g.P + f * T) * g.d;
  gemm(T, g.d, T, w.s.data(), Tp, 1, vf_row, g.d, w.o.data(), g.d, false);
  const int64_t b = z / heads, h = z % heads;
  for (int64_t t = 0; t < T; ++t) {
    float* o = &w.o[t * g.d];
    for (int64_t c = 0; c < g.F; ++c)
      if (c != f) axpy(w.sc[c * Tp + t], vz + (g.P + c * T + t) * g.d, o, g.d);
    for (int64_t j = 0; j < g.P; ++j) axpy(w.sp[j * Tp + t], vz + j * g.d, o, g.d);
    const vf inv = splat(1.f / w.l[t]);
    float* dst = out_base + b * out_strides[0] + h * out_strides[1] + (g.P + f * T + t) * out_strides[2];
    for (int64_t i = 0; i < g.d; i += W) store(dst + i, load(o + i) * inv);
    lse[z * g.N + f * T + t] = w.m[t] + std::log(w.l[t]);
  }
}

// Phase A of the backward for row f of head z: dQ of the row's queries, the row-branch parts of dK and dV, and
// the column probabilities and dS (pc, dsc: F x Tp each) and the prefix ones (pp, dsp: (Z, P, N)) for later.
static void backward_row(const Geometry& g, const float* dout, const float* q, const float* k, const float* v,
                  const float* out, const float* lse, const float* kt_z, const float* vt_z, int64_t z, int64_t f,
                  float* dq, float* dk, float* dv, float* pc, float* dsc, float* pp, float* dsp, Scratch& w) {
  const int64_t T = g.T, Tp = g.Tp, d = g.d, zoff = z * g.L * d, row0 = g.P + f * T;
  const float *qz = q + zoff, *kz = k + zoff, *vz = v + zoff, *doz = dout + zoff, *oz = out + zoff;
  scores(g, qz, kz, kt_z, f, w);
  const float* d_f = doz + row0 * d;
  for (int64_t t = 0; t < Tp; ++t) {
    w.lse[t] = t < T ? lse[z * g.N + f * T + t] : 0.f;
    float acc = 0.f;
    if (t < T)
      for (int64_t i = 0; i < d; ++i) acc += d_f[t * d + i] * oz[(row0 + t) * d + i];
    w.delta[t] = acc;
  }
  // probabilities rebuilt from the joint log-sum-exp
  for (int64_t t = 0; t < T; ++t) {
    float* row = &w.s[t * Tp];
    const vf lt = splat(w.lse[t]);
    for (int64_t s = 0; s < Tp; s += W) store(row + s, vexp(load(row + s) - lt));
    for (int64_t s = T; s < Tp; ++s) row[s] = 0.f;
  }
  for (int64_t tv = 0; tv < Tp; tv += W) {
    const vf lt = load(&w.lse[tv]);
    for (int64_t c = 0; c < g.F; ++c)
      store(&w.sc[c * Tp + tv], c == f ? vf{} : vexp(load(&w.sc[c * Tp + tv]) - lt));
    for (int64_t j = 0; j < g.P; ++j) store(&w.sp[j * Tp + tv], vexp(load(&w.sp[j * Tp + tv]) - lt));
  }
  // dP against every key, then dS = P * (dP - delta), in place
  transpose_pad(d_f, T, d, Tp, 1.f, w.dot.data());
  gemm(T, Tp, d, d_f, d, 1, vt_z + f * d * Tp, Tp, w.dpr.data(), Tp, false);
  column_dots(w.dot.data(), vt_z, d * Tp, g.F, d, Tp, w.dpc.data());
  if (g.P > 0) prefix_dots(w.dot.data(), vz, g.P, d, Tp, w.dpp.data());
  for (int64_t t = 0; t < T; ++t) {
    const vf dl = splat(w.delta[t]);
    for (int64_t s = 0; s < Tp; s += W)
      store(&w.dpr[t * Tp + s], load(&w.s[t * Tp + s]) * (load(&w.dpr[t * Tp + s]) - dl));
  }
  for (int64_t tv = 0; tv < Tp; tv += W) {
    const vf dl = load(&w.delta[tv]);
    for (int64_t c = 0; c < g.F; ++c)
      store(&w.dpc[c * Tp + tv], load(&w.sc[c * Tp + tv]) * (load(&w.dpc[c * Tp + tv]) - dl));
    for (int64_t j = 0; j < g.P; ++j)
      store(&w.dpp[j * Tp + tv], load(&w.sp[j * Tp + tv]) * (load(&w.dpp[j * Tp + tv]) - dl));
  }
  // dQ = scale * (dS_row K_row + sum_c dS_col K_col + sum_j dS_pre k_pre)
  gemm(T, d, T, w.dpr.data(), Tp, 1, kz + row0 * d, d, w.o.data(), d, false);
  const vf sv = splat(g.scale);
  for (int64_t t = 0; t < T; ++t) {
    float* o = &w.o[t * d];
    for (int64_t c = 0; c < g.F; ++c)
      if (c != f) axpy(w.dpc[c * Tp + t], kz + (g.P + c * T + t) * d, o, d);
    for (int64_t j = 0; j < g.P; ++j) axpy(w.dpp[j * Tp + t], kz + j * d, o, d);
    float* dst = dq + zoff + (row0 + t) * d;
    for (int64_t i = 0; i < d; i += W) store(dst + i, load(o + i) * sv);
  }
  // row-branch dK = dS^T (scale Q) and dV = P^T dO: the row's keys belong to this task alone
  gemm(T, d, T, w.dpr.data(), 1, Tp, w.qs.data(), d, dk + zoff + row0 * d, d, false);
  gemm(T, d, T, w.s.data(), 1, Tp, d_f, d, dv + zoff + row0 * d, d, false);
  std::copy(w.sc.begin(), w.sc.end(), pc + (z * g.F + f) * g.F * Tp);
  std::copy(w.dpc.begin(), w.dpc.end(), dsc + (z * g.F + f) * g.F * Tp);
  for (int64_t j = 0; j < g.P; ++j)
    for (int64_t t = 0; t < T; ++t) {
      pp[(z * g.P + j) * g.N + f * T + t] = w.sp[j * Tp + t];
      dsp[(z * g.P + j) * g.N + f * T + t] = w.dpp[j * Tp + t];
    }
}

// Phase B for key row c of head z: add the column-branch parts, from every other row's queries at the same t.
static void backward_column(const Geometry& g, const float* dout, const float* q, const float* pc, const float* dsc,
                     int64_t z, int64_t c, float* dk, float* dv) {
  const int64_t T = g.T, Tp = g.Tp, d = g.d, zoff = z * g.L * d;
  for (int64_t t = 0; t < T; ++t) {
    float* dk_row = dk + zoff + (g.P + c * T + t) * d;
    float* dv_row = dv + zoff + (g.P + c * T + t) * d;
    for (int64_t f = 0; f < g.F; ++f) {
      if (f == c) continue;
      const int64_t at = ((z * g.F + f) * g.F + c) * Tp + t;
      const int64_t src = zoff + (g.P + f * T + t) * d;
      axpy(dsc[at] * g.scale, q + src, dk_row, d);
      axpy(pc[at], dout + src, dv_row, d);
    }
  }
}

};  // struct Kernel

// x with `pad` zero columns appended to its last dim (contiguous).
at::Tensor padded(const at::Tensor& x, int64_t pad) { return at::constant_pad_nd(x, {0, pad}, 0).contiguous(); }

}  // namespace

namespace {

template <int W>
at::Tensor forward_impl(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, at::Tensor& out, int64_t F,
                        int64_t T, int64_t P, double scale) {
  using K = Kernel<W>;
  const typename K::Geometry g = K::check(q, k, v, F, T, P, scale);
  TORCH_CHECK(out.dim() == 4 && out.size(0) * out.size(1) == g.Z && out.size(2) == g.L && out.size(3) == g.d &&
                  out.stride(3) == 1 && out.scalar_type() == at::kFloat,
              "fta_cpu_kernel: out must be a float32 (B, H, L, hd) tensor with unit last stride");
  at::Tensor lse = at::empty({g.Z, g.N}, q.options());
  const int64_t strides[3] = {out.stride(0), out.stride(1), out.stride(2)};
  const int64_t heads = out.size(1);
  const float *qp = q.data_ptr<float>(), *kp = k.data_ptr<float>(), *vp = v.data_ptr<float>();
  float *op = out.data_ptr<float>(), *lp = lse.data_ptr<float>();
  at::parallel_for(0, g.Z * g.F, 1, [&](int64_t begin, int64_t end) {
    typename K::Scratch w(g, false);
    typename K::HeadTransposed kt(g);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t z = task / g.F;
      K::forward_row(g, qp, kp, vp, kt.get(kp, z, g), z, task % g.F, op, strides, heads, lp, w);
    }
  });
  return lse;
}

template <int W>
std::vector<at::Tensor> backward_impl(const at::Tensor& dout, const at::Tensor& q, const at::Tensor& k,
                                      const at::Tensor& v, const at::Tensor& out, const at::Tensor& lse,
                                      at::Tensor& dq, at::Tensor& dk, at::Tensor& dv, int64_t F, int64_t T, int64_t P,
                                      double scale) {
  using K = Kernel<W>;
  const typename K::Geometry g = K::check(q, k, v, F, T, P, scale);
  for (const at::Tensor* x : std::initializer_list<const at::Tensor*>{&dout, &out, &dq, &dk, &dv})
    TORCH_CHECK(x->sizes() == q.sizes() && x->is_contiguous() && x->scalar_type() == at::kFloat,
                "fta_cpu_kernel: dout, out and the gradients must be contiguous float32 like q");
  TORCH_CHECK(lse.is_contiguous() && lse.numel() == g.Z * g.N && lse.scalar_type() == at::kFloat,
              "fta_cpu_kernel: lse must be the (Z, N) float32 log-sum-exp of fta_forward");
  at::Tensor pc = at::empty({g.Z, g.F, g.F, g.Tp}, q.options()), dsc = at::empty_like(pc);
  at::Tensor pp = at::empty({g.Z, g.P, g.N}, q.options()), dsp = at::empty_like(pp);
  const float *dop = dout.data_ptr<float>(), *qp = q.data_ptr<float>(), *kp = k.data_ptr<float>();
  const float *vp = v.data_ptr<float>(), *op = out.data_ptr<float>(), *lp = lse.data_ptr<float>();
  float *dqp = dq.data_ptr<float>(), *dkp = dk.data_ptr<float>(), *dvp = dv.data_ptr<float>();
  float *pcp = pc.data_ptr<float>(), *dscp = dsc.data_ptr<float>(), *ppp = pp.data_ptr<float>();
  float* dspp = dsp.data_ptr<float>();
  at::parallel_for(0, g.Z * g.F, 1, [&](int64_t begin, int64_t end) {
    typename K::Scratch w(g, true);
    typename K::HeadTransposed kt(g), vt(g);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t z = task / g.F;
      K::backward_row(g, dop, qp, kp, vp, op, lp, kt.get(kp, z, g), vt.get(vp, z, g), z, task % g.F, dqp, dkp, dvp,
                      pcp, dscp, ppp, dspp, w);
    }
  });
  at::parallel_for(0, g.Z * g.F, 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task)
      K::backward_column(g, dop, qp, pcp, dscp, task / g.F, task % g.F, dkp, dvp);
  });
  return {dsp, pp};
}

// The vector width for a head dim and a row length: 16 where it divides the head dim and padding T' to a multiple
// of it adds at most half of T' (a third of the row scores wasted), else 8.
int vector_width_for(int64_t d, int64_t T) {
  if (W_MAX == 16 && d % 16 == 0 && 2 * Kernel<16>::round_up(T) <= 3 * T) return 16;
  return 8;
}

}  // namespace

// Forward of the patch queries. out: (B, H, L, hd) with unit last stride, B*H = Z; its patch rows are written.
// A head dim that is not a whole number of vectors is zero-padded here (below the dispatcher, so FLOP counters see
// the real head dim). Returns the joint log-sum-exp of the patch queries, (Z, N).
at::Tensor fta_forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, at::Tensor& out, int64_t F,
                       int64_t T, int64_t P, double scale) {
  const int64_t d = q.size(-1);
  if (d % 8 != 0) {  // pad the head dim with zeros: scores and the kept outputs are unchanged
    const int64_t pad = 8 - d % 8;
    at::Tensor outp = at::empty({out.size(0), out.size(1), out.size(2), d + pad}, out.options());
    at::Tensor lse = fta_forward(padded(q, pad), padded(k, pad), padded(v, pad), outp, F, T, P, scale);
    out.narrow(2, P, F * T).copy_(outp.narrow(2, P, F * T).narrow(3, 0, d));
    return lse;
  }
  return vector_width_for(d, T) == 16 ? forward_impl<W_MAX>(q, k, v, out, F, T, P, scale)
                                      : forward_impl<8>(q, k, v, out, F, T, P, scale);
}

// Backward of the patch queries. dout, q, k, v, out: (Z, L, hd) contiguous; lse: (Z, N) from fta_forward.
// Writes the patch rows of dq, dk, dv (each (Z, L, hd), contiguous); the prefix rows are left to the caller.
// Returns (dS, P) of the patch queries against the prefix keys, each (Z, P, N), for dK and dV of the prefix keys.
std::vector<at::Tensor> fta_backward(const at::Tensor& dout, const at::Tensor& q, const at::Tensor& k,
                                     const at::Tensor& v, const at::Tensor& out, const at::Tensor& lse,
                                     at::Tensor& dq, at::Tensor& dk, at::Tensor& dv, int64_t F, int64_t T, int64_t P,
                                     double scale) {
  const int64_t d = q.size(-1);
  if (d % 8 != 0) {
    const int64_t pad = 8 - d % 8;
    at::Tensor dqp = at::empty_like(padded(q, pad)), dkp = at::empty_like(dqp), dvp = at::empty_like(dqp);
    std::vector<at::Tensor> prefix = fta_backward(padded(dout, pad), padded(q, pad), padded(k, pad), padded(v, pad),
                                                  padded(out, pad), lse, dqp, dkp, dvp, F, T, P, scale);
    for (auto [dst, src] : {std::pair{dq, dqp}, std::pair{dk, dkp}, std::pair{dv, dvp}})
      dst.narrow(1, P, F * T).copy_(src.narrow(1, P, F * T).narrow(2, 0, d));
    return prefix;
  }
  return vector_width_for(d, T) == 16
             ? backward_impl<W_MAX>(dout, q, k, v, out, lse, dq, dk, dv, F, T, P, scale)
             : backward_impl<8>(dout, q, k, v, out, lse, dq, dk, dv, F, T, P, scale);
}

int64_t vector_width() { return W_MAX; }

// Registered as dispatcher ops (not bare pybind functions) so that torch's dispatch modes see them: FlopCounterMode
// counts the forward with the formula in benchmark.metrics, and the profiler names it.
TORCH_LIBRARY(audio_ticl_fta, m) {
  m.def("forward(Tensor q, Tensor k, Tensor v, Tensor(a!) out, int n_freq, int n_time, int num_prefix, "
        "float scale) -> Tensor");
  m.def("backward(Tensor dout, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, Tensor(a!) dq, "
        "Tensor(b!) dk, Tensor(c!) dv, int n_freq, int n_time, int num_prefix, float scale) -> Tensor[]");
  m.def("vector_width() -> int", &vector_width);
}

TORCH_LIBRARY_IMPL(audio_ticl_fta, CPU, m) {
  m.impl("forward", &fta_forward);
  m.impl("backward", &fta_backward);
}
