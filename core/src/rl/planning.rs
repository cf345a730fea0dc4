//! Exact planning on a finite [`Mdp`]: value iteration, Q iteration and
//! policy iteration (Russell and Norvig, §17.2–17.3).
//!
//! * **Value iteration** repeats the Bellman optimality backup on every state
//!   at once, `U_{k+1}(s) = R(s) + γ·max_a Σ_s' P(s'|s,a)·U_k(s')`
//!   (`U_{k+1}(s) = R(s)` at a terminal state), from `U_0 = 0`, until
//!   `max_s |U_{k+1}(s) − U_k(s)| ≤ tol`.
//! * **Q iteration** does the same on action values,
//!   `Q_{k+1}(s,a) = R(s) + γ·Σ_s' P(s'|s,a)·max_a' Q_k(s',a')` (a terminal
//!   `s'` contributes `R(s')`), until no `Q` changes by more than `tol`.
//! * **Policy iteration** evaluates the current policy exactly, solving the
//!   linear system `(I − γ·P_π)·U = R` by Gaussian elimination with partial
//!   pivoting, then makes it greedy in `U` (keeping the current action
//!   unless another is better by more than 1e-12·max(1, |U|)), until the
//!   policy is stable.
//!
//! With `γ = 1` the utilities are finite only for proper policies (ones that
//! reach a terminal state with probability 1): value and Q iteration then
//! converge when every improper policy is infinitely bad (negative living
//! reward), and policy iteration needs a proper initial policy; otherwise
//! they return an error rather than loop.
//!
//! Each returns a [`Plan`]: the utilities, the action values, and the policy
//! greedy in them ([`greedy_policy`]: among actions whose `Q(s,a)` is within
//! 1e-10·max(1, |max_a Q|) of the best, the lowest index, so that the three
//! methods agree where actions tie).

use super::mdp::Mdp;
use crate::{Error, Result};

/// The most sweeps value and Q iteration make, and the most improvements
/// policy iteration makes, before giving up with an error.
const MAX_SWEEPS: usize = 1_000_000;

/// What a planner returns.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The utility `U(s)` of each state.
    pub values: Vec<f64>,
    /// The action values `Q(s,a)`, `[s][a]`; empty for a terminal state.
    pub q: Vec<Vec<f64>>,
    /// The greedy action of each state; `None` for a terminal state.
    pub policy: Vec<Option<usize>>,
    /// Sweeps (value and Q iteration) or policy evaluations (policy
    /// iteration) made.
    pub iterations: usize,
}

fn check_tol(op: &'static str, tol: f64) -> Result<()> {
    if tol.is_finite() && tol > 0.0 {
        Ok(())
    } else {
        Err(Error::InvalidArgument {
            op,
            msg: format!("tolerance {tol} must be positive and finite"),
        })
    }
}

fn not_converged(op: &'static str, change: f64) -> Error {
    Error::InvalidArgument {
        op,
        msg: format!(
            "no convergence after {MAX_SWEEPS} sweeps (last change {change:e}): with γ = 1 \
             the utilities are infinite unless every improper policy is infinitely bad"
        ),
    }
}

/// `Q(s,a)` for every state and action, for utilities `values` (checked by
/// the callers).
fn q_table(mdp: &Mdp, values: &[f64]) -> Vec<Vec<f64>> {
    (0..mdp.states())
        .map(|s| {
            if mdp.is_terminal(s) {
                Vec::new()
            } else {
                (0..mdp.actions())
                    .map(|a| mdp.q_value(values, s, a))
                    .collect()
            }
        })
        .collect()
}

/// The lowest-index action whose value is within 1e-10·max(1, |best|) of
/// the best; `None` for no actions.
fn argmax(q: &[f64]) -> Option<usize> {
    let best = q.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let tol = 1e-10 * best.abs().max(1.0);
    q.iter().position(|&v| v >= best - tol)
}

/// The policy greedy in utilities `values`: at each non-terminal state the
/// action of highest `Q(s,a) = R(s) + γ·Σ_s' P(s'|s,a)·U(s')` (ties within
/// 1e-10·max(1, |max Q|): the lowest index). An error if `values` does not
/// hold one utility per state.
pub fn greedy_policy(mdp: &Mdp, values: &[f64]) -> Result<Vec<Option<usize>>> {
    mdp.check_values("greedy_policy", values)?;
    Ok(q_table(mdp, values).iter().map(|q| argmax(q)).collect())
}

fn plan_from_values(mdp: &Mdp, values: Vec<f64>, iterations: usize) -> Plan {
    let q = q_table(mdp, &values);
    let policy = q.iter().map(|q| argmax(q)).collect();
    Plan {
        values,
        q,
        policy,
        iterations,
    }
}

/// Value iteration to a largest change of at most `tol` per sweep (see the
/// [module docs](self)); an error for a `tol` that is not positive or when
/// a million sweeps do not converge.
pub fn value_iteration(mdp: &Mdp, tol: f64) -> Result<Plan> {
    const OP: &str = "value_iteration";
    check_tol(OP, tol)?;
    let mut values = vec![0.0; mdp.states()];
    let mut change = f64::INFINITY;
    for sweep in 1..=MAX_SWEEPS {
        let next: Vec<f64> = (0..mdp.states()).map(|s| mdp.backup(&values, s)).collect();
        change = next
            .iter()
            .zip(&values)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        values = next;
        if !change.is_finite() {
            break;
        }
        if change <= tol {
            return Ok(plan_from_values(mdp, values, sweep));
        }
    }
    Err(not_converged(OP, change))
}

/// Q iteration to a largest change of at most `tol` per sweep (see the
/// [module docs](self)); the returned `values` are `max_a Q(s,a)` (`R(s)`
/// at a terminal state) and `q` the iterated action values. Errors as
/// [`value_iteration`].
pub fn q_iteration(mdp: &Mdp, tol: f64) -> Result<Plan> {
    const OP: &str = "q_iteration";
    check_tol(OP, tol)?;
    let n = mdp.states();
    let state_value = |q: &[Vec<f64>], s: usize| {
        if mdp.is_terminal(s) {
            mdp.reward(s)
        } else {
            q[s].iter().copied().fold(f64::NEG_INFINITY, f64::max)
        }
    };
    let mut q: Vec<Vec<f64>> = (0..n)
        .map(|s| {
            if mdp.is_terminal(s) {
                Vec::new()
            } else {
                vec![0.0; mdp.actions()]
            }
        })
        .collect();
    let mut change = f64::INFINITY;
    for sweep in 1..=MAX_SWEEPS {
        let v: Vec<f64> = (0..n).map(|s| state_value(&q, s)).collect();
        change = 0.0f64;
        for (s, row) in q.iter_mut().enumerate() {
            for (a, qa) in row.iter_mut().enumerate() {
                let next = mdp.q_value(&v, s, a);
                change = change.max((next - *qa).abs());
                *qa = next;
            }
        }
        if !change.is_finite() {
            break;
        }
        if change <= tol {
            let values: Vec<f64> = (0..n).map(|s| state_value(&q, s)).collect();
            let policy = q.iter().map(|row| argmax(row)).collect();
            return Ok(Plan {
                values,
                q,
                policy,
                iterations: sweep,
            });
        }
    }
    Err(not_converged(OP, change))
}

/// The exact utilities of `policy` (`policy[s]`: the action at state `s`,
/// ignored at terminal states): the solution of `U(s) = R(s) +
/// γ·Σ_s' P(s'|s,π(s))·U(s')`, `U(s) = R(s)` at terminal states, by Gaussian
/// elimination with partial pivoting.
///
/// Errors: a policy of the wrong length or with an action out of range at a
/// non-terminal state, and a singular system (with `γ = 1`, a policy that
/// never reaches a terminal state from some state).
pub fn policy_evaluation(mdp: &Mdp, policy: &[usize]) -> Result<Vec<f64>> {
    const OP: &str = "policy_evaluation";
    let n = mdp.states();
    if policy.len() != n {
        return Err(Error::LengthMismatch {
            what: format!("{OP}: policy"),
            expected: n,
            shape: "one action per state".into(),
            got: policy.len(),
        });
    }
    // Row s of the augmented matrix [I − γ·P_π | R].
    let mut m = vec![vec![0.0; n + 1]; n];
    for s in 0..n {
        m[s][s] = 1.0;
        m[s][n] = mdp.reward(s);
        if mdp.is_terminal(s) {
            continue;
        }
        let a = policy[s];
        if a >= mdp.actions() {
            return Err(Error::InvalidArgument {
                op: OP,
                msg: format!(
                    "action {a} at state {s} is out of range for {} actions",
                    mdp.actions()
                ),
            });
        }
        for &(t, p) in mdp.transitions(s, a) {
            m[s][t] -= mdp.gamma() * p;
        }
    }
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|&i, &j| m[i][col].abs().total_cmp(&m[j][col].abs()))
            .unwrap_or(col);
        if m[pivot][col].abs() < 1e-12 {
            return Err(Error::InvalidArgument {
                op: OP,
                msg: format!(
                    "the system (I − γ·P_π)·U = R is singular at state {col}: with γ = 1 the \
                     policy does not reach a terminal state from every state"
                ),
            });
        }
        m.swap(col, pivot);
        let (upper, lower) = m.split_at_mut(col + 1);
        let prow = &upper[col];
        for row in lower.iter_mut() {
            let f = row[col] / prow[col];
            if f != 0.0 {
                for k in col..=n {
                    row[k] -= f * prow[k];
                }
            }
        }
    }
    let mut values = vec![0.0; n];
    for s in (0..n).rev() {
        let tail: f64 = (s + 1..n).map(|k| m[s][k] * values[k]).sum();
        values[s] = (m[s][n] - tail) / m[s][s];
    }
    Ok(values)
}

/// Policy iteration from `initial` (one action per state, ignored at
/// terminal states; with `γ = 1` it must be proper), with exact
/// [`policy_evaluation`] (see the [module docs](self)). The returned policy
/// is [`greedy_policy`] of the final utilities, so that ties break as in the
/// other planners. Errors: those of [`policy_evaluation`], and no stable
/// policy after a million improvements.
pub fn policy_iteration(mdp: &Mdp, initial: &[usize]) -> Result<Plan> {
    let mut policy = initial.to_vec();
    for evaluation in 1..=MAX_SWEEPS {
        let values = policy_evaluation(mdp, &policy)?;
        let mut stable = true;
        for s in 0..mdp.states() {
            if mdp.is_terminal(s) {
                continue;
            }
            let current = mdp.q_value(&values, s, policy[s]);
            let tol = 1e-12 * current.abs().max(1.0);
            let q: Vec<f64> = (0..mdp.actions())
                .map(|a| mdp.q_value(&values, s, a))
                .collect();
            if let Some(best) = argmax(&q) {
                if q[best] > current + tol {
                    policy[s] = best;
                    stable = false;
                }
            }
        }
        if stable {
            return Ok(plan_from_values(mdp, values, evaluation));
        }
    }
    Err(Error::InvalidArgument {
        op: "policy_iteration",
        msg: format!("no stable policy after {MAX_SWEEPS} improvements"),
    })
}
