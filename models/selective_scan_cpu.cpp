// Mamba's selective scan (S6) for the CPU, float32, forward and backward: one fused sequential pass per channel.
//
// Why: a scan over L steps is serial in L but independent across the B x E channels. llama.cpp's ssm_scan keeps
// each channel's N-float state in registers and walks the sequence once; this does the same, with threads over
// channels (at::parallel_for, torch's pool). Nothing of size B x L x E x N is ever stored: the forward keeps only
// the output; the backward recomputes one channel's states (L x N floats, in cache) and walks back through them.
// mamba.py's parallel (Blelloch) scan does about 3x the serial work and materialises B x L x E x N tensors.
//
// Semantics are mamba-ssm's selective_scan_fn (Gu & Dao 2023, Alg. 2), with B and C shared by all channels:
//   dt_t = softplus(delta_t + delta_bias) (or delta_t + delta_bias),   h_t = exp(dt_t A) * h_{t-1} + dt_t B_t u_t,
//   y_t = <h_t, C_t> + D u_t,   out_t = y_t * silu(z_t) when z is given.
// Shapes: u, delta, z (Bt, E, L); A (E, N); Bm, Cm (Bt, L, N) (the caller transposes mamba-ssm's (Bt, N, L));
// D, delta_bias (E). N must be a multiple of 8 (Mamba uses 16).
#include <torch/library.h>
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "vector_exp.h"

#include <cmath>
#include <vector>

namespace {

constexpr int W = 8;
typedef float vf __attribute__((vector_size(W * 4)));
typedef float vfu __attribute__((vector_size(W * 4), aligned(4)));
typedef int vi __attribute__((vector_size(W * 4)));
constexpr int NV_MAX = 8;  // N up to 64

inline vf load(const float* p) { return *reinterpret_cast<const vfu*>(p); }
inline void store(float* p, vf x) { *reinterpret_cast<vfu*>(p) = x; }
inline vf splat(float x) { return vf{} + x; }
inline float hsum(vf x) {
  float s = 0.f;
  for (int i = 0; i < W; ++i) s += x[i];
  return s;
}

inline vf vexp(vf x) { return vector_exp<vf, vi>(x); }

inline float softplus(float x) { return x > 20.f ? x : std::log1p(std::exp(x)); }
inline float sigmoid(float x) { return 1.f / (1.f + std::exp(-x)); }

struct Shapes {
  int64_t Bt, E, L, N, NV;
  bool has_z, use_softplus;
};

Shapes check(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A, const at::Tensor& Bm,
             const at::Tensor& Cm, const at::Tensor& D, const c10::optional<at::Tensor>& z,
             const at::Tensor& delta_bias, bool use_softplus) {
  auto f32 = [](const at::Tensor& x) {
    return x.device().is_cpu() && x.scalar_type() == at::kFloat && x.is_contiguous();
  };
  TORCH_CHECK(f32(u) && f32(delta) && f32(A) && f32(Bm) && f32(Cm) && f32(D) && f32(delta_bias),
              "selective_scan_cpu: every input must be a contiguous float32 CPU tensor");
  TORCH_CHECK(u.dim() == 3 && delta.sizes() == u.sizes(), "selective_scan_cpu: u and delta must be (B, E, L)");
  const int64_t Bt = u.size(0), E = u.size(1), L = u.size(2), N = A.size(1);
  TORCH_CHECK(A.dim() == 2 && A.size(0) == E, "selective_scan_cpu: A must be (E, N)");
  TORCH_CHECK(N % W == 0 && N / W <= NV_MAX, "selective_scan_cpu: N must be a multiple of 8, at most 64, got ", N);
  TORCH_CHECK(Bm.sizes() == at::IntArrayRef({Bt, L, N}) && Cm.sizes() == Bm.sizes(),
              "selective_scan_cpu: B and C must be (B, L, N)");
  TORCH_CHECK(D.numel() == E && delta_bias.numel() == E, "selective_scan_cpu: D and delta_bias must have E values");
  if (z.has_value()) TORCH_CHECK(f32(*z) && z->sizes() == u.sizes(), "selective_scan_cpu: z must be like u");
  return {Bt, E, L, N, N / W, z.has_value(), use_softplus};
}

inline float step_dt(float delta, float bias, bool use_softplus) {
  return use_softplus ? softplus(delta + bias) : delta + bias;
}

// One channel forward: out (L) and, when `states` is given, every h_t (L x N).
void channel_forward(const Shapes& s, const float* u, const float* delta, const float* a_row, const float* Bm,
                     const float* Cm, float d, float bias, const float* z, float* out, float* states) {
  vf h[NV_MAX], a[NV_MAX];
  for (int v = 0; v < s.NV; ++v) {
    h[v] = vf{};
    a[v] = load(a_row + v * W);
  }
  for (int64_t t = 0; t < s.L; ++t) {
    const float dt = step_dt(delta[t], bias, s.use_softplus), du = dt * u[t];
    const float* b_t = Bm + t * s.N;
    const float* c_t = Cm + t * s.N;
    vf acc{};
    for (int v = 0; v < s.NV; ++v) {
      h[v] = vexp(a[v] * dt) * h[v] + load(b_t + v * W) * du;
      acc += h[v] * load(c_t + v * W);
      if (states != nullptr) store(states + t * s.N + v * W, h[v]);
    }
    float y = hsum(acc) + d * u[t];
    if (z != nullptr) y *= z[t] * sigmoid(z[t]);
    out[t] = y;
  }
}

}  // namespace

at::Tensor scan_forward(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A, const at::Tensor& Bm,
                        const at::Tensor& Cm, const at::Tensor& D, const c10::optional<at::Tensor>& z,
                        const at::Tensor& delta_bias, bool use_softplus) {
  const Shapes s = check(u, delta, A, Bm, Cm, D, z, delta_bias, use_softplus);
  at::Tensor out = at::empty_like(u);
  const float *up = u.data_ptr<float>(), *dp = delta.data_ptr<float>(), *ap = A.data_ptr<float>();
  const float *bp = Bm.data_ptr<float>(), *cp = Cm.data_ptr<float>(), *Dp = D.data_ptr<float>();
  const float *biasp = delta_bias.data_ptr<float>(), *zp = s.has_z ? z->data_ptr<float>() : nullptr;
  float* op = out.data_ptr<float>();
  at::parallel_for(0, s.Bt * s.E, 1, [&](int64_t begin, int64_t end) {
    for (int64_t ch = begin; ch < end; ++ch) {
      const int64_t b = ch / s.E, e = ch % s.E, off = ch * s.L;
      channel_forward(s, up + off, dp + off, ap + e * s.N, bp + b * s.L * s.N, cp + b * s.L * s.N, Dp[e],
                      biasp[e], zp ? zp + off : nullptr, op + off, nullptr);
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
  TORCH_CHECK(dout.sizes() == u.sizes() && dout.is_contiguous() && dout.scalar_type() == at::kFloat,
              "selective_scan_cpu: dout must be a contiguous float32 tensor like u");
  const int64_t threads = at::get_num_threads();
  at::Tensor du = at::empty_like(u), ddelta = at::empty_like(u), dz = s.has_z ? at::empty_like(u) : at::Tensor();
  // B, C, A, D and the bias are shared across channels (or batch items): one partial sum per thread, added below
  at::Tensor dB_part = at::zeros({threads, s.Bt, s.L, s.N}, u.options()), dC_part = at::zeros_like(dB_part);
  at::Tensor dA_part = at::zeros({threads, s.E, s.N}, u.options());
  at::Tensor dD_part = at::zeros({threads, s.E}, u.options()), dbias_part = at::zeros_like(dD_part);
  const float *gp = dout.data_ptr<float>(), *up = u.data_ptr<float>(), *dp = delta.data_ptr<float>();
  const float *ap = A.data_ptr<float>(), *bp = Bm.data_ptr<float>(), *cp = Cm.data_ptr<float>();
  const float *Dp = D.data_ptr<float>(), *biasp = delta_bias.data_ptr<float>();
  const float* zp = s.has_z ? z->data_ptr<float>() : nullptr;
  float *dup = du.data_ptr<float>(), *ddp = ddelta.data_ptr<float>(), *dzp = s.has_z ? dz.data_ptr<float>() : nullptr;
  at::parallel_for(0, s.Bt * s.E, 1, [&](int64_t begin, int64_t end) {
    const int64_t tid = at::get_thread_num();
    float* dB = dB_part.data_ptr<float>() + tid * s.Bt * s.L * s.N;
    float* dC = dC_part.data_ptr<float>() + tid * s.Bt * s.L * s.N;
    float* dA = dA_part.data_ptr<float>() + tid * s.E * s.N;
    float* dD = dD_part.data_ptr<float>() + tid * s.E;
    float* dbias = dbias_part.data_ptr<float>() + tid * s.E;
    std::vector<float> states(s.L * s.N), y(s.L);
    for (int64_t ch = begin; ch < end; ++ch) {
      const int64_t b = ch / s.E, e = ch % s.E, off = ch * s.L;
      const float *u_c = up + off, *d_c = dp + off, *z_c = zp ? zp + off : nullptr, *g_c = gp + off;
      const float *B_b = bp + b * s.L * s.N, *C_b = cp + b * s.L * s.N, *a_row = ap + e * s.N;
      // the states, and y before the gate (z applied below)
      channel_forward(s, u_c, d_c, a_row, B_b, C_b, Dp[e], biasp[e], nullptr, y.data(), states.data());
      vf dh[NV_MAX], a[NV_MAX], da[NV_MAX];
      for (int v = 0; v < s.NV; ++v) {
        dh[v] = vf{};
        da[v] = vf{};
        a[v] = load(a_row + v * W);
      }
      float dd = 0.f, dbias_e = 0.f;
      float* dB_b = dB + b * s.L * s.N;
      float* dC_b = dC + b * s.L * s.N;
      for (int64_t t = s.L - 1; t >= 0; --t) {
        float g = g_c[t];
        if (z_c != nullptr) {
          const float zt = z_c[t], sg = sigmoid(zt);
          dzp[off + t] = g * y[t] * sg * (1.f + zt * (1.f - sg));
          g *= zt * sg;
        }
        const float raw = d_c[t] + biasp[e];
        const float dt = s.use_softplus ? softplus(raw) : raw, u_t = u_c[t], du_t = dt * u_t;
        dd += g * u_t;
        float du_acc = g * Dp[e];
        vf ddt_v{}, du_v{};
        const float* h_t = states.data() + t * s.N;
        const float* h_prev = t > 0 ? states.data() + (t - 1) * s.N : nullptr;
        const vf gv = splat(g), dtv = splat(dt), duv = splat(du_t), uv = splat(u_t);
        for (int v = 0; v < s.NV; ++v) {
          const int64_t o = t * s.N + v * W;
          const vf c = load(C_b + o), bv = load(B_b + o), hp = h_prev ? load(h_prev + v * W) : vf{};
          store(dC_b + o, load(dC_b + o) + gv * load(h_t + v * W));
          dh[v] += gv * c;
          const vf at = vexp(a[v] * dtv);
          store(dB_b + o, load(dB_b + o) + dh[v] * duv);
          du_v += dh[v] * bv * dtv;
          const vf dhah = dh[v] * at * hp;  // dh_t * exp(dt A) * h_{t-1}
          ddt_v += dh[v] * bv * uv + dhah * a[v];
          da[v] += dhah * dtv;
          dh[v] = dh[v] * at;
        }
        du_acc += hsum(du_v);
        float ddt = hsum(ddt_v);
        if (s.use_softplus) ddt *= sigmoid(raw);
        dup[off + t] = du_acc;
        ddp[off + t] = ddt;
        dbias_e += ddt;
      }
      for (int v = 0; v < s.NV; ++v) store(dA + e * s.N + v * W, load(dA + e * s.N + v * W) + da[v]);
      dD[e] += dd;
      dbias[e] += dbias_e;
    }
  });
  return {du, ddelta, dA_part.sum(0), dB_part.sum(0), dC_part.sum(0), dD_part.sum(0), dz, dbias_part.sum(0)};
}

TORCH_LIBRARY(audio_ticl_scan, m) {
  m.def("forward(Tensor u, Tensor delta, Tensor A, Tensor B, Tensor C, Tensor D, Tensor? z, Tensor delta_bias, "
        "bool delta_softplus) -> Tensor");
  m.def("backward(Tensor dout, Tensor u, Tensor delta, Tensor A, Tensor B, Tensor C, Tensor D, Tensor? z, "
        "Tensor delta_bias, bool delta_softplus) -> Tensor[]");
}

TORCH_LIBRARY_IMPL(audio_ticl_scan, CPU, m) {
  m.impl("forward", &scan_forward);
  m.impl("backward", &scan_backward);
}
