// Mamba's selective scan (S6) for the CPU, float32, forward and backward: one fused sequential pass per channel,
// the vector lanes over channels.
//
// Why: a scan over L steps is serial in L but independent across the B x E channels. llama.cpp's ssm_scan keeps
// each channel's N-float state in registers and walks the sequence once; this does the same for W channels at a
// time (W = 16 with AVX-512, else 8): lane j of every vector is channel e0 + j, the N states are N vectors, B_t and
// C_t (shared by all channels) are broadcast scalars, so a step is N exp-multiply-adds with no horizontal sums.
// Threads over (batch, channel block) with at::parallel_for (torch's pool). Each block's u, dt, z are transposed
// into (L, W) buffers first, softplus and the gate are computed there with vector exp / log, and the output is
// transposed back. Nothing of size B x L x E x N is ever stored: the backward keeps one state per 128 steps and
// recomputes each earlier 128-step segment (in cache) before walking back through it, so it runs the forward
// recurrence twice at most (once for L <= 128). mamba.py's parallel (Blelloch) scan
// does about 3x the serial work and materialises B x L x E x N tensors.
//
// Semantics are mamba-ssm's selective_scan_fn (Gu & Dao 2023, Alg. 2), with B and C shared by all channels:
//   dt_t = softplus(delta_t + delta_bias) (or delta_t + delta_bias),   h_t = exp(dt_t A) * h_{t-1} + dt_t B_t u_t,
//   y_t = <h_t, C_t> + D u_t,   out_t = y_t * silu(z_t) when z is given.
// Shapes: u, delta, z (Bt, E, L), any strides (the (B, L, E) views a Mamba layer has need no copy); A (E, N);
// Bm, Cm (Bt, L, N) with N contiguous (the caller transposes mamba-ssm's (Bt, N, L), a view of x_proj's output);
// D, delta_bias (E). N is at most 64 (Mamba uses 16). The output (and the backward's du, ddelta, dz) is (Bt, E, L)
// laid out as (Bt, L, E), the layout out_proj reads.
#include <torch/library.h>
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "vector_exp.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace {

#if defined(__AVX512F__)
constexpr int W = 16;
#else
constexpr int W = 8;
#endif
typedef float vf __attribute__((vector_size(W * 4)));
typedef float vfu __attribute__((vector_size(W * 4), aligned(4)));
typedef int vi __attribute__((vector_size(W * 4)));
constexpr int N_MAX = 64;
constexpr int64_t SEGMENT = 128;  // backward: steps recomputed from one stored state (128 x 16 x 16 floats: L2)

inline vf load(const float* p) { return *reinterpret_cast<const vfu*>(p); }
inline void store(float* p, vf x) { *reinterpret_cast<vfu*>(p) = x; }
inline vf splat(float x) { return vf{} + x; }
inline vf vexp(vf x) { return vector_exp<vf, vi>(x); }
inline vf vmax(vf a, vf b) { return a > b ? a : b; }
inline vf vabs(vf x) { return x < 0.f ? -x : x; }
inline vf sigmoid(vf x) { return 1.f / (1.f + vexp(-x)); }
// softplus(x) = max(x, 0) + log1p(exp(-|x|)), the log1p from log(1 + p) with its rounding corrected
inline vf softplus(vf x) {
  const vf p = vexp(-vabs(x)), one_p = 1.f + p;
  return vmax(x, vf{}) + vector_log<vf, vi>(one_p) + (p - (one_p - 1.f)) / one_p;
}

// A (Bt, E, L) tensor's data and strides.
struct View {
  const float* data;
  int64_t b, e, l;
};

View view_of(const at::Tensor& x) { return {x.data_ptr<float>(), x.stride(0), x.stride(1), x.stride(2)}; }

struct Shapes {
  int64_t Bt, E, L, N, blocks;
  bool has_z, use_softplus;
  int64_t b_b, b_l, c_b, c_l;  // strides of Bm and of Cm over batch and time (N is contiguous)
};

Shapes check(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A, const at::Tensor& Bm,
             const at::Tensor& Cm, const at::Tensor& D, const c10::optional<at::Tensor>& z,
             const at::Tensor& delta_bias, bool use_softplus) {
  auto f32 = [](const at::Tensor& x) { return x.device().is_cpu() && x.scalar_type() == at::kFloat; };
  TORCH_CHECK(f32(u) && f32(delta) && f32(A) && f32(Bm) && f32(Cm) && f32(D) && f32(delta_bias),
              "selective_scan_cpu: every input must be a float32 CPU tensor");
  TORCH_CHECK(A.is_contiguous() && D.is_contiguous() && delta_bias.is_contiguous(),
              "selective_scan_cpu: A, D and delta_bias must be contiguous");
  TORCH_CHECK(u.dim() == 3 && delta.sizes() == u.sizes(), "selective_scan_cpu: u and delta must be (B, E, L)");
  const int64_t Bt = u.size(0), E = u.size(1), L = u.size(2), N = A.size(1);
  TORCH_CHECK(A.dim() == 2 && A.size(0) == E, "selective_scan_cpu: A must be (E, N)");
  TORCH_CHECK(N >= 1 && N <= N_MAX, "selective_scan_cpu: N must be between 1 and 64, got ", N);
  TORCH_CHECK(Bm.sizes() == at::IntArrayRef({Bt, L, N}) && Cm.sizes() == Bm.sizes(),
              "selective_scan_cpu: B and C must be (B, L, N)");
  TORCH_CHECK((Bm.stride(2) == 1 || N == 1) && (Cm.stride(2) == 1 || N == 1),
              "selective_scan_cpu: B and C must have N contiguous");
  TORCH_CHECK(D.numel() == E && delta_bias.numel() == E, "selective_scan_cpu: D and delta_bias must have E values");
  if (z.has_value()) TORCH_CHECK(f32(*z) && z->sizes() == u.sizes(), "selective_scan_cpu: z must be like u");
  return {Bt, E, L, N, (E + W - 1) / W, z.has_value(), use_softplus, Bm.stride(0), Bm.stride(1), Cm.stride(0),
          Cm.stride(1)};
}

// A new (Bt, E, L) tensor laid out as (Bt, L, E).
at::Tensor empty_channels_last(const at::Tensor& like) {
  return at::empty({like.size(0), like.size(2), like.size(1)}, like.options()).permute({0, 2, 1});
}

// One block of `lanes` <= W channels of a (Bt, E, L) view, from channel e0 of item b <-> an (L, W) buffer. With
// channels contiguous ((B, L, E) layout) a step's W values are one run of memory; else one channel at a time.
void to_lanes(View v, int64_t b, int64_t e0, int64_t L, int lanes, float* dst) {
  std::fill(dst, dst + L * W, 0.f);
  const float* src = v.data + b * v.b + e0 * v.e;
  if (v.e == 1) {
    for (int64_t t = 0; t < L; ++t)
      for (int j = 0; j < lanes; ++j) dst[t * W + j] = src[t * v.l + j];
  } else {
    for (int j = 0; j < lanes; ++j)
      for (int64_t t = 0; t < L; ++t) dst[t * W + j] = src[j * v.e + t * v.l];
  }
}
// The inverse into a (Bt, E, L) tensor laid out as (Bt, L, E) (empty_channels_last).
void from_lanes(const float* src, int64_t L, int lanes, float* base, int64_t b, int64_t e0, int64_t E) {
  float* dst = base + b * L * E + e0;
  for (int64_t t = 0; t < L; ++t)
    for (int j = 0; j < lanes; ++j) dst[t * E + j] = src[t * W + j];
}

// A block's inputs in lanes: u, dt (softplus applied), raw (delta + bias, for softplus' derivative), z.
struct Block {
  int64_t b, e0;
  int lanes;
  std::vector<float> u, dt, raw, z;
  vf a[N_MAX], d;

  Block(const Shapes& s, int64_t L) : u(L * W), dt(L * W), raw(L * W), z(s.has_z ? L * W : 0) {}

  void load_block(const Shapes& s, int64_t index, View uv, View dv, const View* zv, const float* ap,
                  const float* Dp, const float* biasp) {
    b = index / s.blocks;
    e0 = (index % s.blocks) * W;
    lanes = static_cast<int>(std::min<int64_t>(W, s.E - e0));
    to_lanes(uv, b, e0, s.L, lanes, u.data());
    to_lanes(dv, b, e0, s.L, lanes, raw.data());
    if (s.has_z) to_lanes(*zv, b, e0, s.L, lanes, z.data());
    vf bias{};
    d = vf{};
    for (int n = 0; n < s.N; ++n) a[n] = vf{};
    for (int j = 0; j < lanes; ++j) {
      bias[j] = biasp[e0 + j];
      d[j] = Dp[e0 + j];
      for (int n = 0; n < s.N; ++n) a[n][j] = ap[(e0 + j) * s.N + n];
    }
    for (int64_t t = 0; t < s.L; ++t) {
      const vf r = load(&raw[t * W]) + bias;
      store(&raw[t * W], r);
      store(&dt[t * W], s.use_softplus ? softplus(r) : r);
    }
  }
};

// Steps [t0, t1) from state h: y_t before the gate into y (when given; row t - y_t0), h_t into states (when
// given; row t - t0).
void scan_steps(const Shapes& s, const Block& k, const float* Bm, const float* Cm, int64_t t0, int64_t t1, vf* h,
                float* y, float* states, int64_t y_t0 = 0) {
  for (int64_t t = t0; t < t1; ++t) {
    const vf dt = load(&k.dt[t * W]), u = load(&k.u[t * W]), du = dt * u;
    const float* b_t = Bm + t * s.b_l;
    const float* c_t = Cm + t * s.c_l;
    vf acc = k.d * u;
    for (int n = 0; n < s.N; ++n) {
      h[n] = vexp(k.a[n] * dt) * h[n] + du * b_t[n];
      acc += h[n] * c_t[n];
    }
    if (y != nullptr) store(y + (t - y_t0) * W, acc);
    if (states != nullptr)
      for (int n = 0; n < s.N; ++n) store(states + ((t - t0) * s.N + n) * W, h[n]);
  }
}

}  // namespace

at::Tensor scan_forward(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A, const at::Tensor& Bm,
                        const at::Tensor& Cm, const at::Tensor& D, const c10::optional<at::Tensor>& z,
                        const at::Tensor& delta_bias, bool use_softplus) {
  const Shapes s = check(u, delta, A, Bm, Cm, D, z, delta_bias, use_softplus);
  at::Tensor out = empty_channels_last(u);
  const View uv = view_of(u), dv = view_of(delta);
  const View zv = s.has_z ? view_of(*z) : View{nullptr, 0, 0, 0};
  const float *ap = A.data_ptr<float>(), *bp = Bm.data_ptr<float>(), *cp = Cm.data_ptr<float>();
  const float *Dp = D.data_ptr<float>(), *biasp = delta_bias.data_ptr<float>();
  float* op = out.data_ptr<float>();
  at::parallel_for(0, s.Bt * s.blocks, 1, [&](int64_t begin, int64_t end) {
    Block k(s, s.L);
    std::vector<float> y(s.L * W);
    vf h[N_MAX];
    for (int64_t index = begin; index < end; ++index) {
      k.load_block(s, index, uv, dv, &zv, ap, Dp, biasp);
      for (int n = 0; n < s.N; ++n) h[n] = vf{};
      scan_steps(s, k, bp + k.b * s.b_b, cp + k.b * s.c_b, 0, s.L, h, y.data(), nullptr);
      if (s.has_z)
        for (int64_t t = 0; t < s.L; ++t) {
          const vf zt = load(&k.z[t * W]);
          store(&y[t * W], load(&y[t * W]) * zt * sigmoid(zt));
        }
      from_lanes(y.data(), s.L, k.lanes, op, k.b, k.e0, s.E);
    }
  });
  return out;
}

// Returns du, ddelta, dA, dB (B, L, N), dC (B, L, N), dD, dz (empty without z), ddelta_bias.
std::vector<at::Tensor> scan_backward(const at::Tensor& dout, const at::Tensor& u, const at::Tensor& delta,
                                      const at::Tensor& A, const at::Tensor& Bm, const at::Tensor& Cm,
                                      const at::Tensor& D, const c10::optional<at::Tensor>& z,
                                      const at::Tensor& delta_bias, bool use_softplus) {
  const Shapes s = check(u, delta, A, Bm, Cm, D, z, delta_bias, use_softplus);
  TORCH_CHECK(dout.sizes() == u.sizes() && dout.scalar_type() == at::kFloat,
              "selective_scan_cpu: dout must be a float32 tensor like u");
  const int64_t threads = at::get_num_threads(), N = s.N, L = s.L;
  at::Tensor du = empty_channels_last(u), ddelta = empty_channels_last(u);
  at::Tensor dz = s.has_z ? empty_channels_last(u) : at::Tensor();
  // B and C are shared by every channel: each thread sums its channels' terms lane by lane into (B, L, N, W), and
  // the lanes and threads are added once at the end; A, D and the bias are shared across the batch: per thread
  at::Tensor dB_part = at::zeros({threads, s.Bt, L, N, W}, u.options()), dC_part = at::zeros_like(dB_part);
  at::Tensor dA_part = at::zeros({threads, s.E, N}, u.options());
  at::Tensor dD_part = at::zeros({threads, s.E}, u.options()), dbias_part = at::zeros_like(dD_part);
  const View gv = view_of(dout), uv = view_of(u), dv = view_of(delta);
  const View zv = s.has_z ? view_of(*z) : View{nullptr, 0, 0, 0};
  const float *ap = A.data_ptr<float>(), *bp = Bm.data_ptr<float>(), *cp = Cm.data_ptr<float>();
  const float *Dp = D.data_ptr<float>(), *biasp = delta_bias.data_ptr<float>();
  float *dup = du.data_ptr<float>(), *ddp = ddelta.data_ptr<float>(), *dzp = s.has_z ? dz.data_ptr<float>() : nullptr;
  const int64_t segments = (L + SEGMENT - 1) / SEGMENT;
  at::parallel_for(0, s.Bt * s.blocks, 1, [&](int64_t begin, int64_t end) {
    const int64_t tid = at::get_thread_num();
    float* dA = dA_part.data_ptr<float>() + tid * s.E * N;
    float* dD = dD_part.data_ptr<float>() + tid * s.E;
    float* dbias = dbias_part.data_ptr<float>() + tid * s.E;
    Block k(s, L);
    std::vector<float> g_buf(L * W), du_buf(L * W), ddt_buf(L * W), dz_buf(s.has_z ? L * W : 0), y(SEGMENT * W);
    std::vector<float> starts(segments * N * W), states(SEGMENT * N * W);
    vf h[N_MAX], dh[N_MAX], da[N_MAX];
    for (int64_t index = begin; index < end; ++index) {
      k.load_block(s, index, uv, dv, &zv, ap, Dp, biasp);
      to_lanes(gv, k.b, k.e0, L, k.lanes, g_buf.data());
      const float *B_b = bp + k.b * s.b_b, *C_b = cp + k.b * s.c_b;
      float* dB_b = dB_part.data_ptr<float>() + (tid * s.Bt + k.b) * L * N * W;
      float* dC_b = dC_part.data_ptr<float>() + (tid * s.Bt + k.b) * L * N * W;
      // pass 1: the state before every segment; the last segment's states and y (before the gate, for dz) kept
      for (int n = 0; n < N; ++n) h[n] = vf{};
      for (int64_t seg = 0; seg < segments; ++seg) {
        const int64_t t0 = seg * SEGMENT, t1 = std::min(L, t0 + SEGMENT);
        const bool last = seg == segments - 1;
        for (int n = 0; n < N; ++n) store(&starts[(seg * N + n) * W], h[n]);
        scan_steps(s, k, B_b, C_b, t0, t1, h, last ? y.data() : nullptr, last ? states.data() : nullptr, t0);
      }
      // pass 2: segments last to first, each recomputed from its start state, walked back
      vf dd{}, dbias_v{};
      for (int n = 0; n < N; ++n) dh[n] = da[n] = vf{};
      for (int64_t seg = segments - 1; seg >= 0; --seg) {
        const int64_t t0 = seg * SEGMENT, t1 = std::min(L, t0 + SEGMENT);
        if (seg != segments - 1) {
          for (int n = 0; n < N; ++n) h[n] = load(&starts[(seg * N + n) * W]);
          scan_steps(s, k, B_b, C_b, t0, t1, h, y.data(), states.data(), t0);
        }
        for (int64_t t = t1 - 1; t >= t0; --t) {
          vf g = load(&g_buf[t * W]);
          if (s.has_z) {
            const vf zt = load(&k.z[t * W]), sg = sigmoid(zt);
            store(&dz_buf[t * W], g * load(&y[(t - t0) * W]) * sg * (1.f + zt * (1.f - sg)));
            g = g * zt * sg;
          }
          const vf dt = load(&k.dt[t * W]), uu = load(&k.u[t * W]), du_t = dt * uu;
          dd += g * uu;
          vf du_acc = g * k.d, ddt{};
          const float* b_t = B_b + t * s.b_l;
          const float* c_t = C_b + t * s.c_l;
          const float* h_t = states.data() + (t - t0) * N * W;
          const float* h_prev = t > t0 ? h_t - N * W : &starts[seg * N * W];
          float* dB_t = dB_b + t * N * W;
          float* dC_t = dC_b + t * N * W;
          for (int n = 0; n < N; ++n) {
            const float c = c_t[n], bb = b_t[n];
            store(dC_t + n * W, load(dC_t + n * W) + g * load(h_t + n * W));
            dh[n] += g * c;
            const vf at = vexp(k.a[n] * dt);
            store(dB_t + n * W, load(dB_t + n * W) + dh[n] * du_t);
            du_acc += dh[n] * (bb * dt);
            const vf dhah = dh[n] * at * load(h_prev + n * W);  // dh_t * exp(dt A) * h_{t-1}
            ddt += dh[n] * (bb * uu) + dhah * k.a[n];
            da[n] += dhah * dt;
            dh[n] = dh[n] * at;
          }
          if (s.use_softplus) ddt = ddt * sigmoid(load(&k.raw[t * W]));
          store(&du_buf[t * W], du_acc);
          store(&ddt_buf[t * W], ddt);
          dbias_v += ddt;
        }
      }
      from_lanes(du_buf.data(), L, k.lanes, dup, k.b, k.e0, s.E);
      from_lanes(ddt_buf.data(), L, k.lanes, ddp, k.b, k.e0, s.E);
      if (s.has_z) from_lanes(dz_buf.data(), L, k.lanes, dzp, k.b, k.e0, s.E);
      for (int j = 0; j < k.lanes; ++j) {
        const int64_t e = k.e0 + j;
        for (int n = 0; n < N; ++n) dA[e * N + n] += da[n][j];
        dD[e] += dd[j];
        dbias[e] += dbias_v[j];
      }
    }
  });
  return {du, ddelta, dA_part.sum(0), dB_part.sum({0, 4}), dC_part.sum({0, 4}), dD_part.sum(0), dz,
          dbias_part.sum(0)};
}

// ---------------------------------------------------------------------------------------------------- causal conv
// Mamba's depthwise causal conv1d with the SiLU fused, on (B, L, E) tokens (channels contiguous, the layout the
// layer's in_proj gives), so that no (B, L, E) <-> (B, E, L) transpose is needed around it:
//   pre[b, t, e] = bias[e] + sum_k w[e, k] x[b, t - K + 1 + k, e]   (zero before t = 0),   out = silu(pre) or pre.
// Threads over (batch, block of W channels); the backward recomputes pre and sums dw, dbias per thread.

namespace {

struct ConvShapes {
  int64_t Bt, L, E, K, xb, xl, blocks;
};

ConvShapes conv_check(const at::Tensor& x, const at::Tensor& w) {
  TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == at::kFloat && x.dim() == 3 && x.stride(2) == 1,
              "causal_conv_cpu: x must be a float32 CPU (B, L, E) tensor with E contiguous");
  TORCH_CHECK(w.scalar_type() == at::kFloat && w.dim() == 2 && w.size(0) == x.size(2) && w.is_contiguous(),
              "causal_conv_cpu: weight must be a contiguous float32 (E, K) tensor");
  return {x.size(0), x.size(1), x.size(2), w.size(1), x.stride(0), x.stride(1), (x.size(2) + W - 1) / W};
}

inline vf load_lanes(const float* p, int lanes) {
  if (lanes == W) return load(p);
  vf v{};
  for (int j = 0; j < lanes; ++j) v[j] = p[j];
  return v;
}

inline void store_lanes(float* p, vf v, int lanes) {
  if (lanes == W) return store(p, v);
  for (int j = 0; j < lanes; ++j) p[j] = v[j];
}

// pre-activation of step t for a block: w_k (K vectors, lanes of the block's channels), bias vector
inline vf conv_pre(const float* xb, int64_t xl, int64_t t, int64_t K, const vf* wk, vf bias, int lanes) {
  vf acc = bias;
  for (int64_t k = 0; k < K; ++k) {
    const int64_t src = t - K + 1 + k;
    if (src >= 0) acc += wk[k] * load_lanes(xb + src * xl, lanes);
  }
  return acc;
}

constexpr int K_MAX = 8;

}  // namespace

at::Tensor conv_forward(const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& bias, bool silu) {
  const ConvShapes c = conv_check(x, w);
  TORCH_CHECK(c.K <= K_MAX, "causal_conv_cpu: kernel width at most 8, got ", c.K);
  at::Tensor out = at::empty({c.Bt, c.L, c.E}, x.options());
  const float *xp = x.data_ptr<float>(), *wp = w.data_ptr<float>();
  const float* bp = bias.has_value() ? bias->data_ptr<float>() : nullptr;
  float* op = out.data_ptr<float>();
  at::parallel_for(0, c.Bt * c.blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t index = begin; index < end; ++index) {
      const int64_t b = index / c.blocks, e0 = (index % c.blocks) * W;
      const int lanes = static_cast<int>(std::min<int64_t>(W, c.E - e0));
      vf wk[K_MAX], bv{};
      for (int64_t k = 0; k < c.K; ++k)
        for (int j = 0; j < lanes; ++j) wk[k][j] = wp[(e0 + j) * c.K + k];
      for (int j = 0; j < lanes && bp; ++j) bv[j] = bp[e0 + j];
      const float* xb = xp + b * c.xb + e0;
      float* ob = op + b * c.L * c.E + e0;
      for (int64_t t = 0; t < c.L; ++t) {
        const vf pre = conv_pre(xb, c.xl, t, c.K, wk, bv, lanes);
        store_lanes(ob + t * c.E, silu ? pre * sigmoid(pre) : pre, lanes);
      }
    }
  });
  return out;
}

// Returns dx (B, L, E), dweight (E, K), dbias (E).
std::vector<at::Tensor> conv_backward(const at::Tensor& dout, const at::Tensor& x, const at::Tensor& w,
                                      const c10::optional<at::Tensor>& bias, bool silu) {
  const ConvShapes c = conv_check(x, w);
  TORCH_CHECK(dout.sizes() == at::IntArrayRef({c.Bt, c.L, c.E}) && dout.stride(2) == 1 &&
              dout.scalar_type() == at::kFloat, "causal_conv_cpu: dout must be a float32 (B, L, E) tensor");
  const int64_t threads = at::get_num_threads();
  at::Tensor dx = at::zeros({c.Bt, c.L, c.E}, x.options());
  at::Tensor dw_part = at::zeros({threads, c.E, c.K}, x.options()), db_part = at::zeros({threads, c.E}, x.options());
  const float *xp = x.data_ptr<float>(), *wp = w.data_ptr<float>(), *gp = dout.data_ptr<float>();
  const float* bp = bias.has_value() ? bias->data_ptr<float>() : nullptr;
  float* dxp = dx.data_ptr<float>();
  at::parallel_for(0, c.Bt * c.blocks, 1, [&](int64_t begin, int64_t end) {
    const int64_t tid = at::get_thread_num();
    float* dw = dw_part.data_ptr<float>() + tid * c.E * c.K;
    float* db = db_part.data_ptr<float>() + tid * c.E;
    for (int64_t index = begin; index < end; ++index) {
      const int64_t b = index / c.blocks, e0 = (index % c.blocks) * W;
      const int lanes = static_cast<int>(std::min<int64_t>(W, c.E - e0));
      vf wk[K_MAX], dwk[K_MAX], bv{}, dbv{};
      for (int64_t k = 0; k < c.K; ++k) {
        dwk[k] = vf{};
        for (int j = 0; j < lanes; ++j) wk[k][j] = wp[(e0 + j) * c.K + k];
      }
      for (int j = 0; j < lanes && bp; ++j) bv[j] = bp[e0 + j];
      const float* xb = xp + b * c.xb + e0;
      const float* gb = gp + b * dout.stride(0) + e0;
      float* dxb = dxp + b * c.L * c.E + e0;
      for (int64_t t = 0; t < c.L; ++t) {
        vf g = load_lanes(gb + t * dout.stride(1), lanes);
        if (silu) {
          const vf pre = conv_pre(xb, c.xl, t, c.K, wk, bv, lanes), sg = sigmoid(pre);
          g = g * sg * (1.f + pre * (1.f - sg));
        }
        dbv += g;
        for (int64_t k = 0; k < c.K; ++k) {
          const int64_t src = t - c.K + 1 + k;
          if (src < 0) continue;
          dwk[k] += g * load_lanes(xb + src * c.xl, lanes);
          store_lanes(dxb + src * c.E, load_lanes(dxb + src * c.E, lanes) + g * wk[k], lanes);
        }
      }
      for (int j = 0; j < lanes; ++j) {
        for (int64_t k = 0; k < c.K; ++k) dw[(e0 + j) * c.K + k] += dwk[k][j];
        db[e0 + j] += dbv[j];
      }
    }
  });
  return {dx, dw_part.sum(0), db_part.sum(0)};
}

TORCH_LIBRARY(audio_ticl_scan, m) {
  m.def("forward(Tensor u, Tensor delta, Tensor A, Tensor B, Tensor C, Tensor D, Tensor? z, Tensor delta_bias, "
        "bool delta_softplus) -> Tensor");
  m.def("backward(Tensor dout, Tensor u, Tensor delta, Tensor A, Tensor B, Tensor C, Tensor D, Tensor? z, "
        "Tensor delta_bias, bool delta_softplus) -> Tensor[]");
  m.def("conv_forward(Tensor x, Tensor weight, Tensor? bias, bool silu) -> Tensor");
  m.def("conv_backward(Tensor dout, Tensor x, Tensor weight, Tensor? bias, bool silu) -> Tensor[]");
}

TORCH_LIBRARY_IMPL(audio_ticl_scan, CPU, m) {
  m.impl("forward", &scan_forward);
  m.impl("backward", &scan_backward);
  m.impl("conv_forward", &conv_forward);
  m.impl("conv_backward", &conv_backward);
}
