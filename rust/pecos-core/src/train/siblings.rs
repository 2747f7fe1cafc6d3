//! The hinge-loss dual coordinate descent of [`crate::solver`], run on up to [`LANES`] sibling
//! problems at once.
//!
//! The children of a tree node are trained on the same rows with different labels. Solved one at
//! a time, every child reads every row again and gathers and scatters through its own weight
//! vector, one cache miss per nonzero: the solver was memory-bound. Here the weights of `LANES`
//! problems are interleaved (one `[f32; LANES]` per feature), so one visit of a row computes the
//! margins of all of them from a single pass over the row and one cache line of weights per
//! nonzero, and one more pass updates every problem whose dual coordinate moved.
//!
//! Each problem follows LIBLINEAR's `solve_l2r_l1l2_svc` (with shrinking) exactly as
//! [`crate::solver::solve`] does, with its own shrinking, stopping test and pass count; only the
//! visiting order is shared: each pass shuffles the rows that are still active for some problem.

use super::solver::{look_ahead, Loss, ProblemRows, SolverParams};
use crate::rng::SplitMix64;

/// Problems solved together: one `[f32; 8]` of weights is half a cache line.
pub const LANES: usize = 8;

/// Reusable buffers, one per worker thread.
#[derive(Default)]
pub struct GroupWorkspace {
    /// Interleaved weights: `w[j][k]` is problem `k`'s weight of local feature `j`.
    w: Vec<[f32; LANES]>,
    /// Dual variables, `alpha[i][k]` for row `i` in problem `k`.
    alpha: Vec<[f64; LANES]>,
    /// Bit `k`: row `i` takes part in problem `k` (always, but for an empty row without bias
    /// under the hinge loss).
    used: Vec<u8>,
    /// Bit `k`: row `i` is not shrunk in problem `k`.
    active: Vec<u8>,
    /// Rows with an active bit of a running problem first (`..n_active`).
    index: Vec<usize>,
    /// One problem's weights, copied out by [`GroupWorkspace::weights`].
    lane: Vec<f32>,
}

impl GroupWorkspace {
    pub fn new() -> Self {
        Self::default()
    }

    /// Problem `k`'s weights (one per local feature) from the last solve.
    pub fn weights(&mut self, k: usize) -> &[f32] {
        self.lane.clear();
        self.lane.extend(self.w.iter().map(|w| w[k]));
        &self.lane
    }
}

/// What a group solve returns besides the weights (left in the workspace).
pub struct GroupSolution {
    pub bias_w: [f32; LANES],
    /// Outer passes each problem took.
    pub n_iter: [usize; LANES],
}

/// Trains `n_problems <= LANES` binary classifiers (squared hinge or hinge loss) on the same rows:
/// bit `k` of `positive[i]` is row `i`'s label in problem `k`. Row `i` costs `cp` (positive) or
/// `cn` (negative), times `costs[i]` if given (a row weight: 2 counts as the row twice; 0
/// leaves the row out). The result is a deterministic function of the inputs and `seed`.
///
/// # Panics
/// If `n_problems > LANES` or `params.loss` is logistic (internal invariants of the trainer).
pub fn solve_svc_group(
    rows: &ProblemRows<'_>,
    n_problems: usize,
    positive: &[u8],
    costs: Option<&[f32]>,
    params: &SolverParams,
    seed: u64,
    ws: &mut GroupWorkspace,
) -> GroupSolution {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: the CPU supports AVX, checked just above.
        return unsafe { solve_svc_group_avx(rows, n_problems, positive, costs, params, seed, ws) };
    }
    solve_svc_group_portable(rows, n_problems, positive, costs, params, seed, ws)
}

/// [`solve_svc_group`] compiled for AVX: one instruction per `[f32; LANES]` operation instead of
/// two. Only the vector width changes (no fused multiply-add), so the results are bit-identical.
///
/// # Safety
/// The CPU must support AVX.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn solve_svc_group_avx(
    rows: &ProblemRows<'_>,
    n_problems: usize,
    positive: &[u8],
    costs: Option<&[f32]>,
    params: &SolverParams,
    seed: u64,
    ws: &mut GroupWorkspace,
) -> GroupSolution {
    solve_svc_group_portable(rows, n_problems, positive, costs, params, seed, ws)
}

#[inline(always)]
fn solve_svc_group_portable(
    rows: &ProblemRows<'_>,
    n_problems: usize,
    positive: &[u8],
    costs: Option<&[f32]>,
    params: &SolverParams,
    seed: u64,
    ws: &mut GroupWorkspace,
) -> GroupSolution {
    assert!(n_problems <= LANES, "at most {LANES} problems per group");
    assert!(
        params.loss != Loss::Logistic,
        "the group solver is for hinge losses"
    );
    let n_rows = rows
        .indptr
        .len()
        .saturating_sub(1)
        .min(positive.len())
        .min(rows.sq_norms.len())
        .min(costs.map_or(usize::MAX, <[f32]>::len));
    let lanes = (1u16 << n_problems).wrapping_sub(1) as u8;
    let bias = f64::from(params.bias);
    let hinge = params.loss == Loss::Hinge;
    // (D_ii, upper bound of alpha) of a positive and of a negative row, as in solver::solve_svc.
    let class = |c: f64| {
        if hinge {
            (0.0, c)
        } else {
            (0.5 / c, f64::INFINITY)
        }
    };
    let (cp, cn) = (f64::from(params.cp), f64::from(params.cn));
    let (pos_class, neg_class) = (class(cp), class(cn));
    let row_class = |i: usize, k: usize| {
        let is_positive = positive[i] >> k & 1 == 1;
        let y = if is_positive { 1.0 } else { -1.0 };
        match costs {
            None => (y, if is_positive { pos_class } else { neg_class }),
            // The product as solver::solve_svc forms it.
            Some(c) => (
                y,
                class(if is_positive { cp } else { cn } * f64::from(c[i])),
            ),
        }
    };
    let sq_norm = |i: usize| f64::from(rows.sq_norms[i]) + bias * bias;

    let GroupWorkspace {
        w,
        alpha,
        used,
        active,
        index,
        ..
    } = ws;
    w.clear();
    w.resize(rows.n_features, [0.0; LANES]);
    alpha.clear();
    alpha.resize(n_rows, [0.0; LANES]);
    used.clear();
    let mut n_used = [0usize; LANES];
    for (i, alpha_i) in alpha.iter_mut().enumerate() {
        let mut bits = 0u8;
        if costs.is_some_and(|c| c[i] == 0.0) {
            used.push(bits); // weight 0: out of every problem, alpha stays 0
            continue;
        }
        for k in (0..LANES).filter(|&k| lanes >> k & 1 == 1) {
            let (_, (diag, upper)) = row_class(i, k);
            if sq_norm(i) + diag > 0.0 {
                bits |= 1 << k;
                n_used[k] += 1;
            } else {
                // As in solver::solve_svc: the optimum is the upper bound, w is unchanged.
                alpha_i[k] = upper;
            }
        }
        used.push(bits);
    }
    active.clone_from(used);
    index.clear();
    index.extend((0..n_rows).filter(|&i| used[i] != 0));

    let tol = f64::from(params.tol);
    let mut rng = SplitMix64::new(seed);
    let mut running = lanes;
    let mut n_iter = [0usize; LANES];
    let mut n_active_of = n_used;
    let mut bias_w = [0f64; LANES];
    let mut pg_max_old = [f64::INFINITY; LANES];
    let mut pg_min_old = [f64::NEG_INFINITY; LANES];
    let mut n_active = index.len();
    while running != 0 {
        let mut pg_max_new = [f64::NEG_INFINITY; LANES];
        let mut pg_min_new = [f64::INFINITY; LANES];
        rng.shuffle(&mut index[..n_active]);
        let mut s = 0;
        while s < n_active {
            let i = index[s];
            look_ahead(rows, index, s, alpha);
            let live = active[i] & running;
            if live == 0 {
                n_active -= 1;
                index.swap(s, n_active);
                continue;
            }
            let (idx, val) = row(rows, i);
            let m = margins(w, idx, val);
            let mut d = [0f32; LANES];
            let mut moved = false;
            for k in (0..LANES).filter(|&k| live >> k & 1 == 1) {
                let (y, (diag, upper)) = row_class(i, k);
                let a = alpha[i][k];
                let g = y * (f64::from(m[k]) + bias_w[k] * bias) - 1.0 + a * diag;
                // Projected gradient and shrinking, per problem, as in solver::solve_svc.
                let pg = if a == 0.0 {
                    if g > pg_max_old[k] {
                        active[i] &= !(1 << k);
                        n_active_of[k] -= 1;
                        continue;
                    }
                    g.min(0.0)
                } else if a == upper {
                    if g < pg_min_old[k] {
                        active[i] &= !(1 << k);
                        n_active_of[k] -= 1;
                        continue;
                    }
                    g.max(0.0)
                } else {
                    g
                };
                pg_max_new[k] = pg_max_new[k].max(pg);
                pg_min_new[k] = pg_min_new[k].min(pg);
                if pg.abs() > 1e-12 {
                    let next = (a - g / (sq_norm(i) + diag)).max(0.0).min(upper);
                    alpha[i][k] = next;
                    let step = (next - a) * y;
                    d[k] = step as f32;
                    bias_w[k] += step * bias;
                    moved = true;
                }
            }
            if moved {
                scatter(w, idx, val, &d);
            }
            if active[i] & running == 0 {
                n_active -= 1;
                index.swap(s, n_active);
            } else {
                s += 1;
            }
        }

        let mut reactivated = 0u8;
        let ran = running;
        for k in (0..LANES).filter(|&k| ran >> k & 1 == 1) {
            n_iter[k] += 1;
            if pg_max_new[k] - pg_min_new[k] <= tol {
                if n_active_of[k] == n_used[k] {
                    running &= !(1 << k);
                    continue;
                }
                // Converged on the shrunk set: verify on every row before stopping.
                reactivated |= 1 << k;
                n_active_of[k] = n_used[k];
                pg_max_old[k] = f64::INFINITY;
                pg_min_old[k] = f64::NEG_INFINITY;
            } else {
                pg_max_old[k] = if pg_max_new[k] <= 0.0 {
                    f64::INFINITY
                } else {
                    pg_max_new[k]
                };
                pg_min_old[k] = if pg_min_new[k] >= 0.0 {
                    f64::NEG_INFINITY
                } else {
                    pg_min_new[k]
                };
            }
            if n_iter[k] >= params.max_iter {
                running &= !(1 << k);
            }
        }
        if reactivated != 0 {
            for (a, &u) in active.iter_mut().zip(used.iter()) {
                *a |= u & reactivated;
            }
            index.clear();
            index.extend((0..n_rows).filter(|&i| active[i] & running != 0));
            n_active = index.len();
        }
    }
    GroupSolution {
        bias_w: bias_w.map(|b| b as f32),
        n_iter,
    }
}

/// Row `i` (an empty row if its pointers are broken, as in the single solver).
fn row<'a>(rows: &ProblemRows<'a>, i: usize) -> (&'a [u32], &'a [f32]) {
    let (Some(&start), Some(&end)) = (rows.indptr.get(i), rows.indptr.get(i + 1)) else {
        return (&[], &[]);
    };
    let indices = rows.indices.get(start..end).unwrap_or(&[]);
    let data = rows.data.get(start..end).unwrap_or(&[]);
    (indices, data)
}

/// `w^T x` of every problem. Two sets of partial sums (even and odd nonzeros) halve the chain of
/// dependent additions; each set is one SIMD vector per half cache line of weights.
#[inline(always)]
fn margins(w: &[[f32; LANES]], idx: &[u32], val: &[f32]) -> [f32; LANES] {
    let mut even = [0f32; LANES];
    let mut odd = [0f32; LANES];
    let mut pairs_idx = idx.chunks_exact(2);
    let mut pairs_val = val.chunks_exact(2);
    for (j, v) in (&mut pairs_idx).zip(&mut pairs_val) {
        let (w0, w1) = (&w[j[0] as usize], &w[j[1] as usize]);
        for k in 0..LANES {
            even[k] += w0[k] * v[0];
            odd[k] += w1[k] * v[1];
        }
    }
    for (&j, &v) in pairs_idx.remainder().iter().zip(pairs_val.remainder()) {
        let wj = &w[j as usize];
        for k in 0..LANES {
            even[k] += wj[k] * v;
        }
    }
    for k in 0..LANES {
        even[k] += odd[k];
    }
    even
}

/// `w += d x` for every problem (`d[k] = 0` leaves problem `k` unchanged).
#[inline(always)]
fn scatter(w: &mut [[f32; LANES]], idx: &[u32], val: &[f32], d: &[f32; LANES]) {
    for (&j, &v) in idx.iter().zip(val) {
        let wj = &mut w[j as usize];
        for k in 0..LANES {
            wj[k] += d[k] * v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::solver::{solve, Workspace};

    /// Random sparse rows (values in [-1, 1), ~30% dense) and `n_problems` labelings from random
    /// hyperplanes.
    struct Problem {
        indptr: Vec<usize>,
        indices: Vec<u32>,
        data: Vec<f32>,
        sq_norms: Vec<f32>,
        n_features: usize,
        positive: Vec<u8>,
    }

    impl Problem {
        fn random(seed: u64, n_rows: usize, n_features: usize, n_problems: usize) -> Self {
            let mut rng = SplitMix64::new(seed);
            let mut uniform = || rng.below(2000) as f32 / 1000.0 - 1.0;
            let truths: Vec<Vec<f32>> = (0..n_problems)
                .map(|_| (0..n_features).map(|_| uniform()).collect())
                .collect();
            let mut p = Problem {
                indptr: vec![0],
                indices: Vec::new(),
                data: Vec::new(),
                sq_norms: Vec::new(),
                n_features,
                positive: Vec::new(),
            };
            for _ in 0..n_rows {
                let row: Vec<f32> = (0..n_features)
                    .map(|_| {
                        let v = uniform();
                        if v.abs() < 0.3 {
                            v * 3.0
                        } else {
                            0.0
                        }
                    })
                    .collect();
                let mut bits = 0u8;
                for (k, t) in truths.iter().enumerate() {
                    let score: f32 = row.iter().zip(t).map(|(a, b)| a * b).sum::<f32>() + 0.2;
                    if score > 0.0 {
                        bits |= 1 << k;
                    }
                }
                for (j, &v) in row.iter().enumerate().filter(|(_, &v)| v != 0.0) {
                    p.indices.push(j as u32);
                    p.data.push(v);
                }
                p.sq_norms.push(row.iter().map(|v| v * v).sum());
                p.indptr.push(p.indices.len());
                p.positive.push(bits);
            }
            p
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
    }

    fn tight(loss: Loss, bias: f32) -> SolverParams {
        SolverParams {
            loss,
            cp: 1.0,
            cn: 2.0,
            tol: 1e-5,
            max_iter: 5000,
            bias,
        }
    }

    /// Each lane converges to the optimum the single-problem solver reaches (the dual solution is
    /// unique in w for these strictly convex primals; the order of visits only changes the path).
    #[test]
    fn each_lane_reaches_the_single_problem_optimum() {
        for (loss, bias, n_problems) in [
            (Loss::SquaredHinge, 1.0, 8),
            (Loss::Hinge, 1.0, 5),
            (Loss::SquaredHinge, 0.0, 3),
        ] {
            let p = Problem::random(11, 80, 12, n_problems);
            let params = tight(loss, bias);
            let mut gws = GroupWorkspace::new();
            let sol = solve_svc_group(
                &p.rows(),
                n_problems,
                &p.positive,
                None,
                &params,
                3,
                &mut gws,
            );
            let mut ws = Workspace::new();
            for k in 0..n_problems {
                let labels: Vec<bool> = p.positive.iter().map(|&b| b >> k & 1 == 1).collect();
                let single = solve(&p.rows(), &labels, None, &params, 7, &mut ws);
                let joint = gws.weights(k);
                for (a, b) in joint.iter().zip(single.w) {
                    assert!((a - b).abs() < 2e-3, "{loss:?} lane {k}: {a} vs {b}");
                }
                assert!(
                    (sol.bias_w[k] - single.bias_w).abs() < 2e-3,
                    "{loss:?} bias {k}"
                );
                assert!(sol.n_iter[k] >= 1 && sol.n_iter[k] < params.max_iter);
            }
        }
    }

    #[test]
    fn unused_lanes_stay_zero_and_results_are_reproducible() {
        let p = Problem::random(5, 40, 6, 3);
        let params = SolverParams::default();
        let mut a = GroupWorkspace::new();
        let mut b = GroupWorkspace::new();
        let sa = solve_svc_group(&p.rows(), 3, &p.positive, None, &params, 9, &mut a);
        // A workspace used for a bigger problem first must not change the result.
        let big = Problem::random(6, 100, 20, 8);
        solve_svc_group(&big.rows(), 8, &big.positive, None, &params, 1, &mut b);
        let sb = solve_svc_group(&p.rows(), 3, &p.positive, None, &params, 9, &mut b);
        assert_eq!(sa.bias_w, sb.bias_w);
        assert_eq!(sa.n_iter, sb.n_iter);
        for k in 0..LANES {
            assert_eq!(a.weights(k).to_vec(), b.weights(k).to_vec());
        }
        assert!(a.weights(5).iter().all(|&v| v == 0.0));
        assert_eq!(sa.bias_w[5], 0.0);
    }

    #[test]
    fn vector_width_does_not_change_the_result() {
        let p = Problem::random(11, 300, 50, 8);
        for loss in [Loss::SquaredHinge, Loss::Hinge] {
            let params = tight(loss, 1.0);
            let mut a = GroupWorkspace::new();
            let mut b = GroupWorkspace::new();
            let sa = solve_svc_group(&p.rows(), 8, &p.positive, None, &params, 3, &mut a);
            let sb = solve_svc_group_portable(&p.rows(), 8, &p.positive, None, &params, 3, &mut b);
            assert_eq!(sa.bias_w, sb.bias_w);
            assert_eq!(sa.n_iter, sb.n_iter);
            for k in 0..LANES {
                assert_eq!(a.weights(k).to_vec(), b.weights(k).to_vec());
            }
        }
    }

    #[test]
    fn empty_problem_and_empty_rows_without_bias() {
        let empty = ProblemRows {
            indptr: &[0],
            indices: &[],
            data: &[],
            sq_norms: &[],
            n_features: 3,
        };
        let mut ws = GroupWorkspace::new();
        let sol = solve_svc_group(&empty, 2, &[], None, &SolverParams::default(), 0, &mut ws);
        assert_eq!(sol.n_iter[..2], [1, 1]);
        assert!(ws.weights(1).iter().all(|&v| v == 0.0));
        // Hinge, no bias, one empty row: that row is left out (no division by zero).
        let rows = ProblemRows {
            indptr: &[0, 0, 1],
            indices: &[0],
            data: &[1.0],
            sq_norms: &[0.0, 1.0],
            n_features: 1,
        };
        let params = SolverParams {
            loss: Loss::Hinge,
            bias: 0.0,
            ..SolverParams::default()
        };
        let sol = solve_svc_group(&rows, 1, &[1, 1], None, &params, 0, &mut ws);
        assert!(ws.weights(0)[0] > 0.0 && sol.bias_w[0] == 0.0);
    }
}
