/**
 * WGSL math the language lacks: the standard normal CDF Φ (for exact GELU) in float32.
 *
 * Φ(x) = ½·(1 + erf(x/√2)) = ½·erfc(−x/√2). With z = |x|/√2:
 * - z < 3: erf(z) by the everywhere-positive series 2/√π·e^{−z²}·Σ 2ⁿz^{2n+1}/(1·3·…·(2n+1)) (no
 *   cancellation; at most ~60 terms at z = 3), then Φ = ½ ± ½·erf(z). For negative x this is
 *   ½·(1 − erf(z)), whose absolute error (~6e-8) is what GELU's x·Φ(x) needs.
 * - z ≥ 3: erfc(z) = e^{−z²}/√π / (z + (1/2)/(z + (2/2)/(z + …))) (Laplace continued fraction,
 *   fixed depth 40, ~1e-9 relative at z = 3), so the tail keeps its relative precision.
 * Abramowitz–Stegun 7.1.26 (1.5e-7 absolute) is not used: its error is ~2.5 float32 ulps of Φ near 1.
 */
export const WGSL_NORMAL_CDF = /* wgsl */ `
const TWO_OVER_SQRT_PI: f32 = 1.1283791670955126f;
const ONE_OVER_SQRT_PI: f32 = 0.5641895835477563f;
const SQRT1_2: f32 = 0.7071067811865476f;
const INV_SQRT_2PI: f32 = 0.3989422804014327f;

fn erf_series(z: f32) -> f32 {
  let z2 = z * z;
  var term = z;
  var s = z;
  for (var n = 0; n < 80; n = n + 1) {
    term = term * (2.0f * z2) / f32(2 * n + 3);
    s = s + term;
    if (term <= 3e-8f * s) { break; }
  }
  return TWO_OVER_SQRT_PI * exp(-z2) * s;
}

fn erfc_tail(z: f32) -> f32 {
  if (z > 10.0f) { return 0.0f; }
  var f = z;
  for (var k = 40; k >= 1; k = k - 1) { f = z + (f32(k) * 0.5f) / f; }
  return ONE_OVER_SQRT_PI * exp(-z * z) / f;
}

// Standard normal CDF.
fn normal_cdf(x: f32) -> f32 {
  let z = abs(x) * SQRT1_2;
  if (z < 3.0f) {
    let e = 0.5f * erf_series(z);
    if (x >= 0.0f) { return 0.5f + e; }
    return 0.5f - e;
  }
  let t = 0.5f * erfc_tail(z);
  if (x >= 0.0f) { return 1.0f - t; }
  return t;
}
`;
