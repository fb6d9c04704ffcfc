//! Small numerical helpers: moments, autocovariances, the normal
//! distribution, and empirical value-at-risk / expected shortfall.

use crate::error::{open_interval, ModelError, Result};

/// Arithmetic mean; 0 for an empty slice.
pub fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.iter().sum::<f64>() / values.len() as f64
}

/// Unbiased sample variance (divides by n - 1); 0 for fewer than 2 values.
pub fn sample_variance(values: &[f64]) -> f64 {
    if values.len() < 2 {
        return 0.0;
    }
    let m = mean(values);
    values.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (values.len() - 1) as f64
}

/// Sample autocovariance at `lag` (mean-subtracted, divided by n, the usual
/// biased estimator that keeps the autocovariance sequence positive definite).
pub fn autocovariance(values: &[f64], lag: usize) -> f64 {
    let n = values.len();
    if lag >= n {
        return 0.0;
    }
    let m = mean(values);
    let sum: f64 = (0..n - lag).map(|i| (values[i] - m) * (values[i + lag] - m)).sum();
    sum / n as f64
}

/// Sample covariance of two equally long series (divides by n - 1).
pub fn covariance(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    if n < 2 {
        return 0.0;
    }
    let (ma, mb) = (mean(&a[..n]), mean(&b[..n]));
    (0..n).map(|i| (a[i] - ma) * (b[i] - mb)).sum::<f64>() / (n - 1) as f64
}

/// Complementary error function, Numerical Recipes `erfcc` (Chebyshev
/// fit, fractional error below 1.2e-7 everywhere).
pub fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98 + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

/// Standard normal cumulative distribution function.
pub fn normal_cdf(x: f64) -> f64 {
    0.5 * erfc(-x / std::f64::consts::SQRT_2)
}

/// Standard normal density.
pub fn normal_pdf(x: f64) -> f64 {
    (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

/// Standard normal quantile (inverse CDF), P. J. Acklam's rational
/// approximation (relative error below 1.2e-9). `p` must lie in (0, 1).
pub fn normal_quantile(p: f64) -> Result<f64> {
    open_interval("p", p, 0.0, 1.0)?;
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] =
        [7.784_695_709_041_462e-3, 3.224_671_290_700_398e-1, 2.445_134_137_142_996, 3.754_408_661_907_416];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    const P_LOW: f64 = 0.024_25;
    if p < P_LOW {
        Ok(tail((-2.0 * p.ln()).sqrt()))
    } else if p > 1.0 - P_LOW {
        Ok(-tail((-2.0 * (1.0 - p).ln()).sqrt()))
    } else {
        let q = p - 0.5;
        let r = q * q;
        Ok((((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0))
    }
}

/// Value-at-risk and expected shortfall of a loss sample (losses positive).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TailRisk {
    /// Empirical `level` quantile of the losses.
    pub var: f64,
    /// Mean of the worst ceil(n (1 - level)) losses.
    pub es: f64,
    /// Asymptotic standard error of `es`:
    /// sqrt((Var(L | tail) + level (es - var)^2) / (n (1 - level))).
    pub es_std_error: f64,
    /// Number of losses averaged into `es`.
    pub tail_count: usize,
}

/// Empirical VaR and ES at `level` (e.g. 0.99) of `losses`. The slice is
/// sorted in place (descending).
pub fn tail_risk(losses: &mut [f64], level: f64) -> Result<TailRisk> {
    open_interval("level", level, 0.0, 1.0)?;
    crate::error::all_finite(losses)?;
    let n = losses.len();
    // The small offset keeps 100 * (1 - 0.95) = 5.000000000000004 at 5.
    let tail_count = ((n as f64) * (1.0 - level) - 1e-9).ceil() as usize;
    if tail_count < 2 {
        return Err(ModelError::InsufficientData { needed: (2.0 / (1.0 - level)).ceil() as usize, got: n });
    }
    losses.sort_by(|a, b| b.total_cmp(a));
    let tail = &losses[..tail_count];
    let es = mean(tail);
    let var = tail[tail_count - 1];
    let tail_var = sample_variance(tail);
    let es_std_error = ((tail_var + level * (es - var) * (es - var)) / (n as f64 * (1.0 - level))).sqrt();
    Ok(TailRisk { var, es, es_std_error, tail_count })
}

/// Composite Simpson integral of `f` over [a, b] with `intervals` (rounded
/// up to even) sub-intervals.
pub fn simpson(f: impl Fn(f64) -> f64, a: f64, b: f64, intervals: usize) -> f64 {
    let n = (intervals.max(2) + 1) & !1;
    let h = (b - a) / n as f64;
    let mut sum = f(a) + f(b);
    for i in 1..n {
        let w = if i % 2 == 1 { 4.0 } else { 2.0 };
        sum += w * f(a + h * i as f64);
    }
    sum * h / 3.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_cdf_and_quantile_match_tables() {
        // Table values: Phi(1.96) = 0.9750021, Phi(-2.326348) = 0.01.
        assert!((normal_cdf(1.96) - 0.975_002_1).abs() < 2e-7);
        assert!((normal_cdf(-2.326_348) - 0.01).abs() < 2e-7);
        assert!((normal_quantile(0.99).unwrap() - 2.326_347_874).abs() < 1e-8);
        assert!((normal_quantile(0.5).unwrap()).abs() < 1e-12);
        assert!((normal_quantile(0.001).unwrap() + 3.090_232_306).abs() < 1e-8);
        assert!(normal_quantile(1.0).is_err());
        assert!(normal_quantile(f64::NAN).is_err());
    }

    #[test]
    fn tail_risk_of_known_sample() {
        // Losses 1..=100: at 0.95 the worst 5 are 96..=100.
        let mut losses: Vec<f64> = (1..=100).map(f64::from).collect();
        let t = tail_risk(&mut losses, 0.95).unwrap();
        assert_eq!(t.tail_count, 5);
        assert_eq!(t.var, 96.0);
        assert_eq!(t.es, 98.0);
        assert!(tail_risk(&mut [1.0, 2.0], 0.99).is_err());
        assert!(tail_risk(&mut [f64::NAN; 500], 0.99).is_err());
    }

    #[test]
    fn simpson_is_exact_for_cubics() {
        let v = simpson(|x| x * x * x - 2.0 * x, 0.0, 2.0, 4);
        assert!((v - 0.0).abs() < 1e-12, "{v}");
        let e = simpson(f64::exp, 0.0, 1.0, 64);
        assert!((e - (1f64.exp() - 1.0)).abs() < 1e-9);
    }

    #[test]
    fn autocovariance_of_alternating_series_is_negative() {
        let x: Vec<f64> = (0..100).map(|i| if i % 2 == 0 { 1.0 } else { -1.0 }).collect();
        assert!((autocovariance(&x, 0) - 1.0).abs() < 1e-12);
        assert!((autocovariance(&x, 1) + 0.99).abs() < 1e-12);
    }
}
