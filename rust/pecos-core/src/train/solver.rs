//! L2-regularised linear binary classifiers trained by dual coordinate descent, as in LIBLINEAR
//! (Hsieh et al. 2008; Yu, Huang, Lin 2011), which is what PECOS uses for every tree node:
//! * squared hinge: LIBLINEAR solver 1 (`L2R_L2LOSS_SVC_DUAL`);
//! * hinge: solver 3 (`L2R_L1LOSS_SVC_DUAL`);
//! * logistic: solver 7 (`L2R_LR_DUAL`).
//!
//! The bias is an extra feature of constant value `bias` on every row, regularised like the others
//! (LIBLINEAR's `-B`). An extreme classifier solves many thousands of small problems, so one
//! [`Workspace`] per thread holds every buffer and a solve allocates only when a buffer must grow.

use crate::error::Result;
use crate::params::{name_of, Params, Value};
use crate::rng::SplitMix64;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Loss {
    SquaredHinge,
    Hinge,
    Logistic,
}

impl Loss {
    /// Every loss by its parameter name.
    pub const CHOICES: [(&'static str, Loss); 3] = [
        ("squared_hinge", Loss::SquaredHinge),
        ("hinge", Loss::Hinge),
        ("logistic", Loss::Logistic),
    ];

    pub fn name(&self) -> &'static str {
        name_of(&Self::CHOICES, self)
    }
}

/// Starts loading `slice[i]` into the cache without waiting for it (nothing if `i` is out of
/// range): on x86-64 a prefetch instruction, elsewhere a load whose value is discarded.
#[inline(always)]
fn prefetch<T: Copy>(slice: &[T], i: usize) {
    if let Some(item) = slice.get(i) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch is a hint that never faults, and the address is in bounds.
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>((item as *const T).cast::<i8>());
        }
        #[cfg(not(target_arch = "x86_64"))]
        std::hint::black_box(*item);
    }
}

/// Rows are visited in random order, so each starts with cache misses on its pointers, its
/// per-row solver state (`coords`) and its first entries. Fetching those one or two visits ahead
/// (the `index[s + 1]`-th and `index[s + 2]`-th rows), without waiting for them, lets the misses
/// overlap with the current row's work.
#[inline(always)]
pub(super) fn look_ahead<T: Copy>(rows: &ProblemRows<'_>, index: &[usize], s: usize, coords: &[T]) {
    if let Some(&i) = index.get(s + 2) {
        prefetch(rows.indptr, i);
        prefetch(coords, i);
    }
    if let Some(&start) = index.get(s + 1).and_then(|&i| rows.indptr.get(i)) {
        prefetch(rows.indices, start);
        prefetch(rows.data, start);
    }
}

/// Hyper-parameters of one binary problem.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SolverParams {
    pub loss: Loss,
    /// Cost of the loss on positive rows.
    pub cp: f32,
    /// Cost of the loss on negative rows.
    pub cn: f32,
    /// Stopping tolerance on the dual (projected) gradient.
    pub tol: f32,
    /// Cap on outer passes over the rows.
    pub max_iter: usize,
    /// Value of the constant feature appended to every row; 0 disables the bias.
    pub bias: f32,
}

impl Default for SolverParams {
    fn default() -> Self {
        SolverParams {
            loss: Loss::SquaredHinge,
            cp: 1.0,
            cn: 1.0,
            tol: 0.1,
            max_iter: 100,
            bias: 1.0,
        }
    }
}

impl SolverParams {
    /// # Errors
    /// [`crate::PecosError::InvalidParam`] naming the first parameter outside its domain.
    /// Reads `loss`, `Cp`, `Cn`, `tol`, `max_iter` and `bias` (the estimator's names).
    ///
    /// # Errors
    /// [`crate::PecosError::InvalidParam`] naming the first invalid parameter.
    pub fn from_params(p: &mut Params) -> Result<Self> {
        Ok(SolverParams {
            loss: p.choice("loss", &Loss::CHOICES)?,
            cp: p.real("Cp", true)?,
            cn: p.real("Cn", true)?,
            tol: p.real("tol", true)?,
            max_iter: p.count("max_iter", 1)?,
            bias: p.real("bias", false)?,
        })
    }

    /// Checks parameters built in Rust (those from [`SolverParams::from_params`] always pass),
    /// in the same words.
    ///
    /// # Errors
    /// [`crate::PecosError::InvalidParam`] naming the first parameter outside its domain.
    pub fn validate(&self) -> Result<()> {
        let mut p = Params::new([
            ("loss".to_string(), Value::Str(self.loss.name().into())),
            ("Cp".to_string(), Value::Float(self.cp.into())),
            ("Cn".to_string(), Value::Float(self.cn.into())),
            ("tol".to_string(), Value::Float(self.tol.into())),
            ("max_iter".to_string(), Value::Int(self.max_iter as i128)),
            ("bias".to_string(), Value::Float(self.bias.into())),
        ]);
        Self::from_params(&mut p).map(drop)
    }
}

/// Rows of one binary problem in a compact local feature space: row `i` has columns
/// `indices[indptr[i]..indptr[i + 1]]` (distinct, `< n_features`) with values
/// `data[..]`; `sq_norms[i]` is the sum of squared values of row `i` (precomputed by the caller,
/// shared by the many problems that use the same rows).
///
/// The rows come from [`crate::sparse::LocalRows`], which guarantees these invariants; the hot
/// loops index `w` directly, so a column `>= n_features` would panic (an internal bug, never
/// user input). A broken row pointer reads as an empty row.
pub struct ProblemRows<'a> {
    pub indptr: &'a [usize],
    pub indices: &'a [u32],
    pub data: &'a [f32],
    pub sq_norms: &'a [f32],
    pub n_features: usize,
}

/// Per-row state of the hinge solvers, kept together because rows are visited in random order.
#[cfg(test)]
#[derive(Clone, Copy, Default)]
struct SvcCoord {
    alpha: f64,
    /// `Q_ii + D_ii`: the curvature of the dual along this coordinate.
    qd: f64,
    /// `D_ii`: `0.5 / C_i` for the squared hinge, 0 for the hinge.
    diag: f64,
    /// Upper bound of `alpha`: `C_i` for the hinge, infinite for the squared hinge.
    upper: f64,
}

/// Per-row state of the logistic solver.
#[derive(Clone, Copy, Default)]
struct LrCoord {
    alpha: f64,
    /// `C_i - alpha`, stored apart so that whichever of the two is tiny keeps its precision
    /// (the dual objective takes the log of both).
    rest: f64,
    /// `Q_ii = ||x_i||^2 + bias^2`.
    xx: f64,
    c: f64,
}

/// Reusable buffers, one per worker thread.
#[derive(Default)]
pub struct Workspace {
    w: Vec<f32>,
    #[cfg(test)]
    svc: Vec<SvcCoord>,
    lr: Vec<LrCoord>,
    /// Rows that take part in the descent; for the hinge solvers the first `active` of them are
    /// the ones not shrunk.
    index: Vec<usize>,
}

impl Workspace {
    pub fn new() -> Self {
        Self::default()
    }
}

/// The weights of a solved problem: score = `w · x + bias_w * bias`.
pub struct Solution<'w> {
    /// One weight per local feature (`n_features` long).
    pub w: &'w [f32],
    pub bias_w: f32,
    /// Outer passes over the rows that the solve took.
    pub n_iter: usize,
}

/// Trains one binary logistic-regression classifier (the logistic loss; `params.loss` is not
/// read). Training solves one problem at a time only under this loss: under the hinge losses it
/// solves groups of siblings together ([`super::siblings`]), and the one-problem hinge solver of
/// test builds ([`solve`]) is the reference those are tested against.
///
/// `positive[i]` is the label of row `i` (+1 if true, else -1); `costs`, if given, multiplies the
/// cost of each row: `C_i = costs[i] * (cp or cn)`. Rows whose `C_i` is not a positive finite
/// number are left out. The shuffling RNG is seeded with `seed`, so the result is a deterministic
/// function of the inputs and the seed. `params` should have passed [`SolverParams::validate`];
/// out-of-domain values give a meaningless result but no panic.
pub fn solve_logistic<'w>(
    rows: &ProblemRows<'_>,
    positive: &[bool],
    costs: Option<&[f32]>,
    params: &SolverParams,
    seed: u64,
    ws: &'w mut Workspace,
) -> Solution<'w> {
    let (data, mut rng) = prepare(rows, positive, costs, params, seed, ws);
    let (bias_w, n_iter) = solve_lr(&data, costs, params, &mut rng, ws);
    Solution {
        w: &ws.w,
        bias_w: bias_w as f32,
        n_iter,
    }
}

/// One problem under any loss, as [`solve_logistic`] describes; the hinge losses by LIBLINEAR's
/// one-problem solver.
#[cfg(test)]
pub fn solve<'w>(
    rows: &ProblemRows<'_>,
    positive: &[bool],
    costs: Option<&[f32]>,
    params: &SolverParams,
    seed: u64,
    ws: &'w mut Workspace,
) -> Solution<'w> {
    if params.loss == Loss::Logistic {
        return solve_logistic(rows, positive, costs, params, seed, ws);
    }
    let (data, mut rng) = prepare(rows, positive, costs, params, seed, ws);
    let (bias_w, n_iter) = solve_svc(&data, costs, params, &mut rng, ws);
    Solution {
        w: &ws.w,
        bias_w: bias_w as f32,
        n_iter,
    }
}

/// The problem's rows as [`Data`], `ws.w` zeroed, and the shuffling RNG.
fn prepare<'a>(
    rows: &'a ProblemRows<'a>,
    positive: &'a [bool],
    costs: Option<&[f32]>,
    params: &SolverParams,
    seed: u64,
    ws: &mut Workspace,
) -> (Data<'a>, SplitMix64) {
    let n_rows = rows.indptr.len().saturating_sub(1);
    debug_assert_eq!(positive.len(), n_rows, "one label per row");
    debug_assert_eq!(rows.sq_norms.len(), n_rows, "one squared norm per row");
    debug_assert!(costs.is_none_or(|c| c.len() == n_rows), "one cost per row");
    let data = Data {
        rows,
        positive,
        n_rows: n_rows.min(positive.len()).min(rows.sq_norms.len()),
        bias: f64::from(params.bias),
    };
    ws.w.clear();
    ws.w.resize(rows.n_features, 0.0);
    (data, SplitMix64::new(seed))
}

/// The rows of one solve seen as vectors `(x_i, bias)` with labels `y_i = ±1`.
struct Data<'a> {
    rows: &'a ProblemRows<'a>,
    positive: &'a [bool],
    n_rows: usize,
    bias: f64,
}

impl Data<'_> {
    fn row(&self, i: usize) -> (&[u32], &[f32]) {
        let r = self.rows;
        let (Some(&start), Some(&end)) = (r.indptr.get(i), r.indptr.get(i + 1)) else {
            return (&[], &[]);
        };
        let indices = r.indices.get(start..end).unwrap_or(&[]);
        let data = r.data.get(start..end).unwrap_or(&[]);
        (indices, data)
    }

    fn y(&self, i: usize) -> f64 {
        if self.positive[i] {
            1.0
        } else {
            -1.0
        }
    }

    /// `C_i`, or `None` for a row that must stay out of the problem.
    fn cost(&self, i: usize, params: &SolverParams, costs: Option<&[f32]>) -> Option<f64> {
        let base = if self.positive[i] {
            params.cp
        } else {
            params.cn
        };
        let scale = costs.and_then(|c| c.get(i)).copied().unwrap_or(1.0);
        let c = f64::from(base) * f64::from(scale);
        (c.is_finite() && c > 0.0).then_some(c)
    }

    /// `||(x_i, bias)||^2`.
    fn sq_norm(&self, i: usize) -> f64 {
        f64::from(self.rows.sq_norms[i]) + self.bias * self.bias
    }

    /// `(w, bias_w) · (x_i, bias)`.
    ///
    /// Four independent f32 partial sums: a single running sum makes every multiply-add wait for
    /// the previous one (floating-point addition is not reassociated by the compiler), which was
    /// the bottleneck of the whole solver on rows with hundreds of nonzeros. f32 partial sums of
    /// unit-norm rows are accurate to ~1e-6, far below any stopping tolerance.
    fn margin(&self, w: &[f32], bias_w: f64, i: usize) -> f64 {
        let (indices, values) = self.row(i);
        let term = |k: usize| w[indices[k] as usize] * values[k];
        let mut acc = [0f32; 4];
        let n4 = indices.len() / 4 * 4;
        for k in (0..n4).step_by(4) {
            acc[0] += term(k);
            acc[1] += term(k + 1);
            acc[2] += term(k + 2);
            acc[3] += term(k + 3);
        }
        for k in n4..indices.len() {
            acc[k - n4] += term(k);
        }
        f64::from((acc[0] + acc[1]) + (acc[2] + acc[3])) + bias_w * self.bias
    }

    /// `(w, bias_w) += d * (x_i, bias)`.
    fn add(&self, w: &mut [f32], bias_w: &mut f64, i: usize, d: f64) {
        let (indices, values) = self.row(i);
        let d32 = d as f32;
        for (&j, &v) in indices.iter().zip(values) {
            w[j as usize] += d32 * v;
        }
        *bias_w += d * self.bias;
    }
}

/// LIBLINEAR's `solve_l2r_l1l2_svc`: coordinate descent on
/// `min_a 0.5 a^T (Q + D) a - sum a_i, 0 <= a_i <= U_i`, with `Q_ij = y_i y_j (x_i · x_j)`,
/// `w = sum y_i a_i x_i`, and shrinking of the coordinates stuck at a bound.
/// Returns the bias weight and the passes taken; `w` is left in `ws.w`.
#[cfg(test)]
fn solve_svc(
    data: &Data<'_>,
    costs: Option<&[f32]>,
    params: &SolverParams,
    rng: &mut SplitMix64,
    ws: &mut Workspace,
) -> (f64, usize) {
    let hinge = params.loss == Loss::Hinge;
    let Workspace { w, svc, index, .. } = ws;
    svc.clear();
    index.clear();
    for i in 0..data.n_rows {
        // A row left out keeps alpha = 0 and never enters the index.
        let mut co = SvcCoord::default();
        if let Some(c) = data.cost(i, params, costs) {
            (co.diag, co.upper) = if hinge {
                (0.0, c)
            } else {
                (0.5 / c, f64::INFINITY)
            };
            co.qd = data.sq_norm(i) + co.diag;
            if co.qd > 0.0 {
                index.push(i);
            } else {
                // An empty row without bias under the hinge: its gradient is always -1, so its
                // optimum is the upper bound, which leaves w unchanged; the step -G/qd would
                // divide by zero.
                co.alpha = co.upper;
            }
        }
        svc.push(co);
    }

    let n_used = index.len();
    let tol = f64::from(params.tol);
    let mut bias_w = 0.0;
    let mut active = n_used;
    let mut pg_max_old = f64::INFINITY;
    let mut pg_min_old = f64::NEG_INFINITY;
    let mut iter = 0;
    while iter < params.max_iter {
        let mut pg_max_new = f64::NEG_INFINITY;
        let mut pg_min_new = f64::INFINITY;
        rng.shuffle(&mut index[..active]);
        let mut s = 0;
        while s < active {
            let i = index[s];
            look_ahead(data.rows, index, s, svc);
            let co = &mut svc[i];
            let yi = data.y(i);
            let g = yi * data.margin(w, bias_w, i) - 1.0 + co.alpha * co.diag;
            // Projected gradient; a coordinate at a bound whose gradient pushes it further out
            // than the extremes of the previous pass is shrunk (moved past the active end).
            let pg = if co.alpha == 0.0 {
                if g > pg_max_old {
                    active -= 1;
                    index.swap(s, active);
                    continue;
                }
                g.min(0.0)
            } else if co.alpha == co.upper {
                if g < pg_min_old {
                    active -= 1;
                    index.swap(s, active);
                    continue;
                }
                g.max(0.0)
            } else {
                g
            };
            pg_max_new = pg_max_new.max(pg);
            pg_min_new = pg_min_new.min(pg);
            if pg.abs() > 1e-12 {
                let old = co.alpha;
                co.alpha = (old - g / co.qd).max(0.0).min(co.upper);
                data.add(w, &mut bias_w, i, (co.alpha - old) * yi);
            }
            s += 1;
        }
        iter += 1;

        if pg_max_new - pg_min_new <= tol {
            if active == n_used {
                break;
            }
            // Converged on the shrunk set: verify on every row before stopping.
            active = n_used;
            pg_max_old = f64::INFINITY;
            pg_min_old = f64::NEG_INFINITY;
            continue;
        }
        pg_max_old = if pg_max_new <= 0.0 {
            f64::INFINITY
        } else {
            pg_max_new
        };
        pg_min_old = if pg_min_new >= 0.0 {
            f64::NEG_INFINITY
        } else {
            pg_min_new
        };
    }
    (bias_w, iter)
}

/// Damping of the inner Newton step when it would leave `(0, C)` (`xi` in Yu et al.).
const NEWTON_ETA: f64 = 0.1;
const MAX_INNER_ITER: usize = 100;

/// LIBLINEAR's `solve_l2r_lr_dual` (Yu, Huang, Lin 2011, Algorithm 5): coordinate descent on
/// `min_a 0.5 a^T Q a + sum a_i log a_i + (C_i - a_i) log(C_i - a_i), 0 < a_i < C_i`, each
/// coordinate minimised by a damped Newton method whose tolerance tightens as the outer
/// iterations need fewer Newton steps. Returns the bias weight and the passes taken; `w` is left
/// in `ws.w`.
fn solve_lr(
    data: &Data<'_>,
    costs: Option<&[f32]>,
    params: &SolverParams,
    rng: &mut SplitMix64,
    ws: &mut Workspace,
) -> (f64, usize) {
    let Workspace { w, lr, index, .. } = ws;
    lr.clear();
    index.clear();
    let mut bias_w = 0.0;
    for i in 0..data.n_rows {
        let mut co = LrCoord::default();
        if let Some(c) = data.cost(i, params, costs) {
            // The log terms need a strictly interior start.
            co.alpha = (1e-3 * c).min(1e-8);
            co.rest = c - co.alpha;
            co.xx = data.sq_norm(i);
            co.c = c;
            data.add(w, &mut bias_w, i, data.y(i) * co.alpha);
            index.push(i);
        }
        lr.push(co);
    }

    let n_used = index.len();
    let tol = f64::from(params.tol);
    let mut inner_eps = 1e-2;
    let inner_eps_min = tol.min(1e-8);
    let mut n_iter = 0;
    while n_iter < params.max_iter {
        n_iter += 1;
        rng.shuffle(index);
        let mut newton_iter = 0;
        let mut g_max: f64 = 0.0;
        for (s, &i) in index.iter().enumerate() {
            look_ahead(data.rows, index, s, lr);
            let co = &mut lr[i];
            let yi = data.y(i);
            let (a, b, c) = (co.xx, yi * data.margin(w, bias_w, i), co.c);
            // Minimise over alpha (sign +1) or over C - alpha (sign -1), whichever has its
            // optimum in (0, C/2], where the Newton iteration below is safe.
            let (old, sign) = if 0.5 * a * (co.rest - co.alpha) + b < 0.0 {
                (co.rest, -1.0)
            } else {
                (co.alpha, 1.0)
            };
            let grad = |z: f64| a * (z - old) + sign * b + (z / (c - z)).ln();
            let mut z = old;
            // The sub-problem optimum lies below C/2; a start past it sits near the log
            // singularity at C, where Newton steps are poor.
            if c - z < 0.5 * c {
                z *= 0.1;
            }
            let mut gp = grad(z);
            g_max = g_max.max(gp.abs());

            let mut inner = 0;
            while inner <= MAX_INNER_ITER && gp.abs() >= inner_eps {
                let gpp = a + c / (c - z) / z;
                let next = z - gp / gpp;
                z = if next <= 0.0 { z * NEWTON_ETA } else { next };
                gp = grad(z);
                inner += 1;
            }
            newton_iter += inner;

            // z can only leave (0, C) by floating-point underflow after many damped steps;
            // keeping the old value then avoids a NaN in w.
            if inner > 0 && z > 0.0 && z < c {
                if sign > 0.0 {
                    co.alpha = z;
                    co.rest = c - z;
                } else {
                    co.rest = z;
                    co.alpha = c - z;
                }
                data.add(w, &mut bias_w, i, sign * (z - old) * yi);
            }
        }

        if g_max < tol {
            break;
        }
        if newton_iter <= n_used / 10 {
            inner_eps = (0.1 * inner_eps).max(inner_eps_min);
        }
    }
    (bias_w, n_iter)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An owned problem in the layout of [`ProblemRows`].
    struct Owned {
        indptr: Vec<usize>,
        indices: Vec<u32>,
        data: Vec<f32>,
        sq_norms: Vec<f32>,
        n_features: usize,
        positive: Vec<bool>,
    }

    impl Owned {
        fn from_dense(rows: &[Vec<f32>], positive: &[bool], n_features: usize) -> Self {
            let mut p = Owned {
                indptr: vec![0],
                indices: Vec::new(),
                data: Vec::new(),
                sq_norms: Vec::new(),
                n_features,
                positive: positive.to_vec(),
            };
            for row in rows {
                for (j, &v) in row.iter().enumerate() {
                    if v != 0.0 {
                        p.indices.push(j as u32);
                        p.data.push(v);
                    }
                }
                p.sq_norms.push(row.iter().map(|v| v * v).sum());
                p.indptr.push(p.indices.len());
            }
            p
        }

        /// Sparse rows with values in [-1, 1); labels from a random hyperplane with an offset,
        /// then, unless `separable`, a fifth of them flipped.
        fn random(seed: u64, n_rows: usize, n_features: usize, separable: bool) -> Self {
            let mut rng = SplitMix64::new(seed);
            let truth: Vec<f32> = (0..n_features).map(|_| uniform(&mut rng)).collect();
            let mut rows = Vec::new();
            let mut positive = Vec::new();
            for _ in 0..n_rows {
                let row: Vec<f32> = (0..n_features)
                    .map(|_| {
                        if rng.below(10) < 3 {
                            uniform(&mut rng)
                        } else {
                            0.0
                        }
                    })
                    .collect();
                let score: f32 = row.iter().zip(&truth).map(|(a, b)| a * b).sum::<f32>() + 0.1;
                positive.push((score > 0.0) != (!separable && rng.below(5) == 0));
                rows.push(row);
            }
            Self::from_dense(&rows, &positive, n_features)
        }

        fn rows(&self) -> ProblemRows<'_> {
            ProblemRows {
                indptr: &self.indptr,
                indices: &self.indices,
                data: &self.data,
                sq_norms: &self.sq_norms,
                n_features: self.n_features,
            }
        }

        fn n_rows(&self) -> usize {
            self.positive.len()
        }

        fn y(&self, i: usize) -> f64 {
            if self.positive[i] {
                1.0
            } else {
                -1.0
            }
        }

        fn cost(&self, i: usize, costs: Option<&[f32]>, params: &SolverParams) -> f64 {
            let base = if self.positive[i] {
                params.cp
            } else {
                params.cn
            };
            f64::from(base) * f64::from(costs.map_or(1.0, |c| c[i]))
        }

        fn margin(&self, i: usize, w: &[f32], bias_w: f32, bias: f32) -> f64 {
            let range = self.indptr[i]..self.indptr[i + 1];
            let dot: f64 = self.indices[range.clone()]
                .iter()
                .zip(&self.data[range])
                .map(|(&j, &v)| f64::from(w[j as usize]) * f64::from(v))
                .sum();
            dot + f64::from(bias_w) * f64::from(bias)
        }

        /// `(w, bias_w) - sum_i coef_i * y_i * (x_i, bias)`, the last entry for the bias.
        fn primal_gradient(
            &self,
            w: &[f32],
            bias_w: f32,
            bias: f32,
            coef: impl Fn(usize, f64) -> f64,
        ) -> Vec<f64> {
            let mut g: Vec<f64> = w.iter().map(|&v| f64::from(v)).collect();
            g.push(f64::from(bias_w));
            for i in 0..self.n_rows() {
                let y = self.y(i);
                let k = coef(i, y * self.margin(i, w, bias_w, bias)) * y;
                for p in self.indptr[i]..self.indptr[i + 1] {
                    g[self.indices[p] as usize] -= k * f64::from(self.data[p]);
                }
                g[self.n_features] -= k * f64::from(bias);
            }
            g
        }
    }

    fn uniform(rng: &mut SplitMix64) -> f32 {
        (rng.next_u64() >> 40) as f32 / (1u32 << 23) as f32 - 1.0
    }

    fn run(p: &Owned, costs: Option<&[f32]>, params: &SolverParams, seed: u64) -> (Vec<f32>, f32) {
        let mut ws = Workspace::new();
        let sol = solve(&p.rows(), &p.positive, costs, params, seed, &mut ws);
        (sol.w.to_vec(), sol.bias_w)
    }

    fn tight(loss: Loss, bias: f32) -> SolverParams {
        SolverParams {
            loss,
            cp: 1.0,
            cn: 1.0,
            tol: 1e-5,
            max_iter: 10_000,
            bias,
        }
    }

    fn max_abs(v: &[f64]) -> f64 {
        v.iter().fold(0.0, |m, x| m.max(x.abs()))
    }

    /// The problems of the optimality tests: separable and not, with and without bias, with
    /// uniform and with per-row costs and unequal cp / cn.
    fn cases() -> Vec<(Owned, Option<Vec<f32>>, SolverParams)> {
        let mut out = Vec::new();
        for seed in 0..4u64 {
            let mut rng = SplitMix64::new(seed + 100);
            let costs: Vec<f32> = (0..60).map(|_| 1.5 + uniform(&mut rng)).collect();
            let bias = if seed < 2 { 0.0 } else { 3.0 };
            for loss in [Loss::SquaredHinge, Loss::Hinge, Loss::Logistic] {
                let p = || Owned::random(seed, 60, 15, seed % 2 == 0);
                out.push((p(), None, tight(loss, 1.0)));
                let params = SolverParams {
                    cp: 2.0,
                    cn: 0.5,
                    ..tight(loss, bias)
                };
                out.push((p(), Some(costs.clone()), params));
            }
        }
        out
    }

    #[test]
    fn squared_hinge_and_logistic_reach_the_primal_optimum() {
        for (p, costs, params) in cases() {
            let costs = costs.as_deref();
            let (w, b) = run(&p, costs, &params, 1);
            let g = match params.loss {
                Loss::SquaredHinge => p.primal_gradient(&w, b, params.bias, |i, ym| {
                    2.0 * p.cost(i, costs, &params) * (1.0 - ym).max(0.0)
                }),
                Loss::Logistic => p.primal_gradient(&w, b, params.bias, |i, ym| {
                    p.cost(i, costs, &params) / (1.0 + ym.exp())
                }),
                Loss::Hinge => continue,
            };
            // The dual tolerance bounds the primal gradient by about 2 C tol sum_i ||x_i||, which
            // is ~1e-3 here; a wrong update rule leaves it of order 1.
            let scale = max_abs(&w.iter().map(|&v| f64::from(v)).collect::<Vec<_>>()).max(1.0);
            assert!(
                max_abs(&g) < 5e-3 * scale,
                "{:?}: gradient {:e}",
                params.loss,
                max_abs(&g)
            );
        }
    }

    #[test]
    fn hinge_closes_the_duality_gap() {
        for (p, costs, params) in cases() {
            if params.loss != Loss::Hinge {
                continue;
            }
            let costs = costs.as_deref();
            let mut ws = Workspace::new();
            let sol = solve(&p.rows(), &p.positive, costs, &params, 1, &mut ws);
            let (w, b) = (sol.w.to_vec(), sol.bias_w);
            let half_norm = 0.5
                * w.iter()
                    .chain([&b])
                    .map(|&v| f64::from(v).powi(2))
                    .sum::<f64>();
            let loss: f64 = (0..p.n_rows())
                .map(|i| {
                    p.cost(i, costs, &params)
                        * (1.0 - p.y(i) * p.margin(i, &w, b, params.bias)).max(0.0)
                })
                .sum();
            let primal = half_norm + loss;
            let dual = ws.svc.iter().map(|c| c.alpha).sum::<f64>() - half_norm;
            assert!(
                primal - dual >= -1e-6 * primal,
                "dual above primal: {dual} > {primal}"
            );
            assert!(
                primal - dual < 1e-4 * primal,
                "gap: primal {primal}, dual {dual}"
            );
        }
    }

    fn assert_clean(w: &[f32], b: f32) {
        assert!(
            w.iter().chain([&b]).all(|v| v.is_finite()),
            "non-finite weights"
        );
    }

    #[test]
    fn same_seed_gives_bitwise_identical_weights() {
        let p = Owned::random(9, 200, 40, false);
        for loss in [Loss::SquaredHinge, Loss::Hinge, Loss::Logistic] {
            let params = SolverParams {
                loss,
                ..SolverParams::default()
            };
            let (w1, b1) = run(&p, None, &params, 77);
            let (w2, b2) = run(&p, None, &params, 77);
            let bits = |w: &[f32]| w.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&w1), bits(&w2));
            assert_eq!(b1.to_bits(), b2.to_bits());
        }
    }

    #[test]
    fn a_reused_workspace_matches_a_fresh_one() {
        // Problems that shrink and grow in rows and features, as in a tree's layers.
        let problems = [
            Owned::random(1, 300, 50, false),
            Owned::random(2, 5, 3, true),
            Owned::random(3, 1, 1, true),
            Owned::random(4, 120, 200, false),
        ];
        for loss in [Loss::SquaredHinge, Loss::Hinge, Loss::Logistic] {
            let params = SolverParams {
                loss,
                ..SolverParams::default()
            };
            let mut ws = Workspace::new();
            for (k, p) in problems.iter().enumerate() {
                let sol = solve(&p.rows(), &p.positive, None, &params, k as u64, &mut ws);
                assert_eq!(sol.w.len(), p.n_features);
                let (w, b) = run(p, None, &params, k as u64);
                assert_eq!(sol.w, &w[..]);
                assert_eq!(sol.bias_w, b);
            }
        }
    }

    #[test]
    fn empty_problem_gives_zero_weights() {
        for loss in [Loss::SquaredHinge, Loss::Hinge, Loss::Logistic] {
            let params = SolverParams {
                loss,
                ..SolverParams::default()
            };
            for indptr in [vec![], vec![0]] {
                let rows = ProblemRows {
                    indptr: &indptr,
                    indices: &[],
                    data: &[],
                    sq_norms: &[],
                    n_features: 4,
                };
                let mut ws = Workspace::new();
                let sol = solve(&rows, &[], None, &params, 0, &mut ws);
                assert_eq!(sol.w, &[0.0; 4]);
                assert_eq!(sol.bias_w, 0.0);
            }
        }
    }

    #[test]
    fn one_sided_labels_are_fine() {
        for loss in [Loss::SquaredHinge, Loss::Hinge, Loss::Logistic] {
            for label in [true, false] {
                let mut p = Owned::random(5, 30, 6, true);
                p.positive.fill(label);
                let params = SolverParams {
                    loss,
                    ..tight(loss, 1.0)
                };
                let (w, b) = run(&p, None, &params, 3);
                assert_clean(&w, b);
                // With every row on one side, the bias alone already points that way.
                assert_eq!(b > 0.0, label, "{loss:?}: bias weight {b}");
                for i in 0..p.n_rows() {
                    assert_eq!(p.margin(i, &w, b, 1.0) > 0.0, label);
                }
            }
        }
    }

    #[test]
    fn empty_rows_without_bias_are_skipped() {
        let rows = vec![
            vec![0.0, 0.0],
            vec![1.0, 0.5],
            vec![0.0, 0.0],
            vec![-1.0, 0.2],
        ];
        let p = Owned::from_dense(&rows, &[true, true, false, false], 2);
        let only_empty = Owned::from_dense(&[vec![0.0; 2], vec![0.0; 2]], &[true, false], 2);
        for loss in [Loss::SquaredHinge, Loss::Hinge, Loss::Logistic] {
            let params = tight(loss, 0.0);
            let (w, b) = run(&only_empty, None, &params, 0);
            assert_eq!((w, b), (vec![0.0; 2], 0.0));
            let (w, b) = run(&p, None, &params, 0);
            assert_clean(&w, b);
            assert_eq!(b, 0.0);
            assert!(w[0] > 0.0, "{loss:?}: {w:?}");
        }
    }

    #[test]
    fn rows_without_cost_are_left_out() {
        let p = Owned::random(6, 20, 5, false);
        let costs = [0.0f32; 20];
        let weird = [f32::NAN, -1.0, f32::INFINITY, 0.0].repeat(5);
        for loss in [Loss::SquaredHinge, Loss::Hinge, Loss::Logistic] {
            let params = SolverParams {
                loss,
                ..SolverParams::default()
            };
            for c in [&costs[..], &weird[..]] {
                let (w, b) = run(&p, Some(c), &params, 0);
                assert!(
                    w.iter().all(|&v| v == 0.0) && b == 0.0,
                    "{loss:?}: {w:?} {b}"
                );
            }
        }
    }

    #[test]
    fn early_stop_still_gives_finite_weights() {
        let p = Owned::random(8, 100, 30, false);
        for loss in [Loss::SquaredHinge, Loss::Hinge, Loss::Logistic] {
            let params = SolverParams {
                loss,
                max_iter: 1,
                cp: 100.0,
                cn: 100.0,
                ..SolverParams::default()
            };
            let (w, b) = run(&p, None, &params, 0);
            assert_clean(&w, b);
            assert!(w.iter().any(|&v| v != 0.0));
        }
    }

    #[test]
    fn separable_two_d_points_get_the_expected_signs() {
        // Positives lie right of the y axis and negatives left of it; the second coordinate is
        // noise shared by both classes, so the boundary is x = 0 with w = (+, ~0) and b ~ 0.
        let rows = vec![
            vec![1.0, 0.5],
            vec![2.0, -0.5],
            vec![1.5, 1.0],
            vec![-1.0, 0.5],
            vec![-2.0, -0.5],
            vec![-1.5, 1.0],
        ];
        let p = Owned::from_dense(&rows, &[true, true, true, false, false, false], 2);
        for loss in [Loss::SquaredHinge, Loss::Hinge, Loss::Logistic] {
            let (w, b) = run(&p, None, &tight(loss, 1.0), 0);
            assert!(w[0] > 0.1, "{loss:?}: {w:?}");
            assert!(w[1].abs() < 1e-3 && b.abs() < 1e-3, "{loss:?}: {w:?} {b}");
            for i in 0..p.n_rows() {
                assert_eq!(p.margin(i, &w, b, 1.0) > 0.0, p.positive[i]);
            }
        }
    }

    #[test]
    fn loss_names_round_trip() {
        for loss in [Loss::SquaredHinge, Loss::Hinge, Loss::Logistic] {
            let mut p = Params::new([("loss".to_string(), Value::Str(loss.name().into()))]);
            assert_eq!(p.choice("loss", &Loss::CHOICES).ok(), Some(loss));
            assert_eq!(
                serde_json::to_string(&loss).ok(),
                Some(format!("\"{}\"", loss.name()))
            );
        }
        let mut p = Params::new([("loss".to_string(), Value::Str("l2".into()))]);
        let err = p
            .choice("loss", &Loss::CHOICES)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("squared_hinge") && err.contains("logistic"),
            "{err}"
        );
    }

    #[test]
    fn validate_rejects_out_of_domain_values() {
        assert!(SolverParams::default().validate().is_ok());
        let bad = [
            SolverParams {
                cp: 0.0,
                ..SolverParams::default()
            },
            SolverParams {
                cn: f32::NAN,
                ..SolverParams::default()
            },
            SolverParams {
                tol: -1.0,
                ..SolverParams::default()
            },
            SolverParams {
                max_iter: 0,
                ..SolverParams::default()
            },
            SolverParams {
                bias: -0.5,
                ..SolverParams::default()
            },
            SolverParams {
                bias: f32::INFINITY,
                ..SolverParams::default()
            },
        ];
        for p in bad {
            assert!(
                matches!(p.validate(), Err(crate::PecosError::InvalidParam { .. })),
                "{p:?}"
            );
        }
    }

    #[test]
    fn broken_row_pointers_do_not_panic() {
        // Row 2 has a decreasing pointer pair.
        let indptr = [0, 1, 3, 2];
        let indices = [0, 1, 0];
        let data = [1.0, -1.0, 5.0];
        let rows = ProblemRows {
            indptr: &indptr,
            indices: &indices,
            data: &data,
            sq_norms: &[1.0, 26.0, 0.0],
            n_features: 2,
        };
        for loss in [Loss::SquaredHinge, Loss::Hinge, Loss::Logistic] {
            let params = SolverParams {
                loss,
                ..SolverParams::default()
            };
            let mut ws = Workspace::new();
            let sol = solve(&rows, &[true, false, true], None, &params, 0, &mut ws);
            assert_eq!(sol.w.len(), 2);
            assert_clean(sol.w, sol.bias_w);
        }
    }
}
