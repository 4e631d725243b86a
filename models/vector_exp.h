// exp and log on GCC vector types, shared by this package's C++ CPU kernels (FTA's attention, Mamba's selective
// scan).
//
// exp: Cephes expf's polynomial, relative error about 1 ulp: x is clamped to [-87, 88] (softmax and scan arguments are
// <= 0; NaN fails both tests and stays NaN), split as x = n ln2 + r with n rounded by adding 1.5 * 2^23, and 2^n
// is built from the exponent bits. VF is a float vector type, VI the int vector type of the same width.
#pragma once

template <typename VF, typename VI>
inline VF vector_exp(VF x) {
  const VF hi = VF{} + 88.0f, lo = VF{} - 87.0f;
  x = x > hi ? hi : x;
  x = x < lo ? lo : x;
  const VF magic = VF{} + 12582912.0f;  // 1.5 * 2^23: adding it rounds to the nearest integer
  const VF t = x * 1.44269504088896341f + magic;
  const VF n = t - magic;
  const VI ni = (VI)t - (VI)magic;
  VF r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  VF y = VF{} + 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * (r * r) + r + 1.0f;
  return y * (VF)((ni + 127) << 23);
}

// log for finite x > 0 (the scan's softplus takes it of 1 + p, p in (0, 1]): Cephes logf, relative error about
// 1 ulp. x = m 2^e with m in [sqrt(0.5), sqrt(2)) from the exponent bits (casts between vector types of one size
// reinterpret the bits), then log(m) by its degree-9 polynomial in m - 1 and e ln2 in two parts.
template <typename VF, typename VI>
inline VF vector_log(VF x) {
  const VI bits = (VI)x;
  VF e = __builtin_convertvector(((bits >> 23) & 0xff) - 126, VF);  // x = m 2^e, m in [0.5, 1)
  VF m = (VF)((bits & 0x007fffff) | 0x3f000000);
  const auto small = m < 0.707106781186547524f;
  e = small ? e - 1.0f : e;
  m = small ? m + m - 1.0f : m - 1.0f;
  const VF z = m * m;
  VF y = VF{} + 7.0376836292e-2f;
  y = y * m - 1.1514610310e-1f;
  y = y * m + 1.1676998740e-1f;
  y = y * m - 1.2420140846e-1f;
  y = y * m + 1.4249322787e-1f;
  y = y * m - 1.6668057665e-1f;
  y = y * m + 2.0000714765e-1f;
  y = y * m - 2.4999993993e-1f;
  y = y * m + 3.3333331174e-1f;
  y = y * m * z;
  y += e * -2.12194440e-4f;
  y += -0.5f * z;
  return m + y + e * 0.693359375f;
}
