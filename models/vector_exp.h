// exp on GCC vector types, shared by this package's C++ CPU kernels (FTA's attention, Mamba's selective scan).
//
// Cephes expf's polynomial, relative error about 1 ulp: x is clamped to [-87, 88] (softmax and scan arguments are
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
