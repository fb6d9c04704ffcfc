//! A bounded-iteration Nelder–Mead simplex minimizer. Constraints are handled
//! by the callers through parameter transforms (log, logistic), so the search
//! space here is unconstrained; non-finite objective values count as +inf.

use crate::error::{ModelError, Result};

/// Stopping rules.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NelderMeadOptions {
    /// Hard cap on iterations (each iteration costs 1–n+2 evaluations).
    pub max_iterations: usize,
    /// Stop when the spread of objective values over the simplex is below this.
    pub f_tolerance: f64,
    /// ... and the largest vertex distance from the best vertex is below this.
    pub x_tolerance: f64,
}

impl Default for NelderMeadOptions {
    fn default() -> Self {
        Self { max_iterations: 2_000, f_tolerance: 1e-10, x_tolerance: 1e-8 }
    }
}

/// Result of a minimization.
#[derive(Debug, Clone, PartialEq)]
pub struct Minimum {
    pub x: Vec<f64>,
    pub value: f64,
    pub iterations: usize,
    /// True when both tolerances were met before `max_iterations`.
    pub converged: bool,
}

fn eval(f: &impl Fn(&[f64]) -> f64, x: &[f64]) -> f64 {
    let v = f(x);
    if v.is_finite() {
        v
    } else {
        f64::INFINITY
    }
}

fn sort_simplex(simplex: &mut [(Vec<f64>, f64)]) {
    simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
}

fn converged(simplex: &[(Vec<f64>, f64)], opts: &NelderMeadOptions) -> bool {
    let best = &simplex[0];
    let worst_f = simplex[simplex.len() - 1].1;
    let spread_x =
        simplex.iter().flat_map(|(x, _)| x.iter().zip(&best.0).map(|(a, b)| (a - b).abs())).fold(0.0, f64::max);
    (worst_f - best.1).abs() <= opts.f_tolerance && spread_x <= opts.x_tolerance
}

/// Point `centroid + coef * (centroid - worst)`.
fn along(centroid: &[f64], worst: &[f64], coef: f64) -> Vec<f64> {
    centroid.iter().zip(worst).map(|(c, w)| c + coef * (c - w)).collect()
}

/// One Nelder–Mead iteration (reflect, expand, contract or shrink) on a
/// sorted simplex.
fn iterate(f: &impl Fn(&[f64]) -> f64, simplex: &mut [(Vec<f64>, f64)]) {
    let n = simplex.len() - 1;
    let mut centroid = vec![0.0; n];
    for (x, _) in &simplex[..n] {
        for (c, xi) in centroid.iter_mut().zip(x) {
            *c += xi / n as f64;
        }
    }
    let worst = simplex[n].clone();
    let reflected = along(&centroid, &worst.0, 1.0);
    let fr = eval(f, &reflected);
    if fr < simplex[0].1 {
        let expanded = along(&centroid, &worst.0, 2.0);
        let fe = eval(f, &expanded);
        simplex[n] = if fe < fr { (expanded, fe) } else { (reflected, fr) };
    } else if fr < simplex[n - 1].1 {
        simplex[n] = (reflected, fr);
    } else {
        let (base, fbase) = if fr < worst.1 { (reflected, fr) } else { worst };
        let contracted = along(&centroid, &base, -0.5);
        let fc = eval(f, &contracted);
        if fc < fbase {
            simplex[n] = (contracted, fc);
        } else {
            let best = simplex[0].0.clone();
            for vertex in simplex.iter_mut().skip(1) {
                let x: Vec<f64> = best.iter().zip(&vertex.0).map(|(b, v)| b + 0.5 * (v - b)).collect();
                let fx = eval(f, &x);
                *vertex = (x, fx);
            }
        }
    }
}

/// Minimizes `f` from `start`, with initial simplex steps `step` per
/// coordinate. Errors if the dimensions disagree or if no vertex of the
/// starting simplex has a finite objective.
pub fn nelder_mead(
    f: impl Fn(&[f64]) -> f64,
    start: &[f64],
    step: &[f64],
    opts: &NelderMeadOptions,
) -> Result<Minimum> {
    if start.is_empty() || start.len() != step.len() {
        return Err(ModelError::InvalidParameter {
            name: "start",
            reason: format!("dimension {} vs step {}", start.len(), step.len()),
        });
    }
    let mut simplex: Vec<(Vec<f64>, f64)> = vec![(start.to_vec(), eval(&f, start))];
    for (i, s) in step.iter().enumerate() {
        let mut x = start.to_vec();
        x[i] += s;
        let fx = eval(&f, &x);
        simplex.push((x, fx));
    }
    sort_simplex(&mut simplex);
    if !simplex[0].1.is_finite() {
        return Err(ModelError::OptimizationFailed);
    }
    let mut iterations = 0;
    while iterations < opts.max_iterations && !converged(&simplex, opts) {
        iterate(&f, &mut simplex);
        sort_simplex(&mut simplex);
        iterations += 1;
    }
    let done = converged(&simplex, opts);
    let (x, value) = simplex.swap_remove(0);
    Ok(Minimum { x, value, iterations, converged: done })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_rosenbrock_minimum() {
        let rosen = |x: &[f64]| (1.0 - x[0]).powi(2) + 100.0 * (x[1] - x[0] * x[0]).powi(2);
        let m = nelder_mead(rosen, &[-1.2, 1.0], &[0.5, 0.5], &NelderMeadOptions::default()).unwrap();
        assert!(m.converged);
        assert!((m.x[0] - 1.0).abs() < 1e-4 && (m.x[1] - 1.0).abs() < 1e-4, "{:?}", m.x);
    }

    #[test]
    fn treats_nan_as_infinite_and_respects_iteration_cap() {
        // NaN outside the unit disc: the minimum (0.3, -0.2) is inside.
        let f = |x: &[f64]| {
            if x[0] * x[0] + x[1] * x[1] > 1.0 {
                f64::NAN
            } else {
                (x[0] - 0.3).powi(2) + (x[1] + 0.2).powi(2)
            }
        };
        let m = nelder_mead(f, &[0.0, 0.0], &[0.1, 0.1], &NelderMeadOptions::default()).unwrap();
        assert!((m.x[0] - 0.3).abs() < 1e-4 && (m.x[1] + 0.2).abs() < 1e-4);
        let capped = NelderMeadOptions { max_iterations: 3, ..NelderMeadOptions::default() };
        let m = nelder_mead(f, &[0.0, 0.0], &[0.1, 0.1], &capped).unwrap();
        assert_eq!(m.iterations, 3);
        assert!(!m.converged);
    }

    #[test]
    fn rejects_bad_inputs() {
        let f = |_: &[f64]| f64::NAN;
        assert_eq!(nelder_mead(f, &[0.0], &[1.0], &NelderMeadOptions::default()), Err(ModelError::OptimizationFailed));
        assert!(nelder_mead(|x: &[f64]| x[0], &[0.0], &[], &NelderMeadOptions::default()).is_err());
    }
}
