//! A finite Markov decision process with explicit transition probabilities,
//! in Russell and Norvig's form (a reward `R(s)` for being in a state).

use crate::{Error, Result};

/// A finite MDP: states `0..n`, actions `0..A`, the transition probabilities
/// `P(s'|s,a)`, a reward `R(s)` per state and a discount `γ ∈ [0, 1]`.
///
/// A state with no actions is terminal: its utility is its reward,
/// `U(s) = R(s)`. Every other state has all `A` actions, and the utility of
/// a policy satisfies `U(s) = R(s) + γ·Σ_s' P(s'|s,π(s))·U(s')` (Russell and
/// Norvig, eq. 17.5 for the optimal one).
#[derive(Clone, Debug, PartialEq)]
pub struct Mdp {
    actions: usize,
    /// `[s][a]`: the `(s', P(s'|s,a))` with positive probability; no actions
    /// for a terminal state.
    transitions: Vec<Vec<Vec<(usize, f64)>>>,
    rewards: Vec<f64>,
    gamma: f64,
}

fn invalid(msg: String) -> Error {
    Error::InvalidArgument {
        op: "Mdp::new",
        msg,
    }
}

impl Mdp {
    /// An MDP of `actions` actions. `transitions[s]` is empty for a terminal
    /// state and otherwise holds, for each of the `actions` actions, the
    /// pairs `(s', P(s'|s,a))`; `rewards[s]` is `R(s)`.
    ///
    /// Errors: a count of states that differs between `transitions` and
    /// `rewards`, a non-terminal state without exactly `actions` actions, a
    /// next state out of range, a probability that is negative or not
    /// finite, probabilities that do not sum to 1 (within 1e-9), a reward
    /// that is not finite, or `γ` outside `[0, 1]`.
    pub fn new(
        actions: usize,
        transitions: Vec<Vec<Vec<(usize, f64)>>>,
        rewards: Vec<f64>,
        gamma: f64,
    ) -> Result<Self> {
        let n = rewards.len();
        if transitions.len() != n {
            return Err(invalid(format!(
                "{} states have transitions but {n} have rewards",
                transitions.len()
            )));
        }
        if !(0.0..=1.0).contains(&gamma) {
            return Err(invalid(format!("discount γ = {gamma} is outside [0, 1]")));
        }
        if actions == 0 {
            return Err(invalid("an MDP needs at least one action".into()));
        }
        for (s, by_action) in transitions.iter().enumerate() {
            if !rewards[s].is_finite() {
                return Err(invalid(format!(
                    "reward R({s}) = {} is not finite",
                    rewards[s]
                )));
            }
            if by_action.is_empty() {
                continue;
            }
            if by_action.len() != actions {
                return Err(invalid(format!(
                    "state {s} has {} actions; a non-terminal state needs all {actions}",
                    by_action.len()
                )));
            }
            for (a, outcomes) in by_action.iter().enumerate() {
                let mut total = 0.0;
                for &(next, p) in outcomes {
                    if next >= n {
                        return Err(invalid(format!(
                            "P(·|{s},{a}) names state {next}, out of range for {n} states"
                        )));
                    }
                    if !(p.is_finite() && p >= 0.0) {
                        return Err(invalid(format!(
                            "P({next}|{s},{a}) = {p} is not a probability"
                        )));
                    }
                    total += p;
                }
                if (total - 1.0).abs() > 1e-9 {
                    return Err(invalid(format!("P(·|{s},{a}) sums to {total}, not 1")));
                }
            }
        }
        Ok(Mdp {
            actions,
            transitions,
            rewards,
            gamma,
        })
    }

    /// The number of states.
    pub fn states(&self) -> usize {
        self.rewards.len()
    }

    /// The number of actions.
    pub fn actions(&self) -> usize {
        self.actions
    }

    /// The discount `γ`.
    pub fn gamma(&self) -> f64 {
        self.gamma
    }

    /// The reward `R(s)`.
    pub fn reward(&self, s: usize) -> f64 {
        self.rewards[s]
    }

    /// Whether `s` is terminal (has no actions).
    pub fn is_terminal(&self, s: usize) -> bool {
        self.transitions[s].is_empty()
    }

    /// The pairs `(s', P(s'|s,a))` of positive probability; empty for a
    /// terminal state.
    pub fn transitions(&self, s: usize, a: usize) -> &[(usize, f64)] {
        self.transitions[s].get(a).map_or(&[], Vec::as_slice)
    }

    /// `Q(s,a) = R(s) + γ·Σ_s' P(s'|s,a)·U(s')` for utilities `values` (of
    /// length [`Mdp::states`]).
    pub(crate) fn q_value(&self, values: &[f64], s: usize, a: usize) -> f64 {
        let expected: f64 = self
            .transitions(s, a)
            .iter()
            .map(|&(t, p)| p * values[t])
            .sum();
        self.rewards[s] + self.gamma * expected
    }

    /// The Bellman optimality backup of `values` at `s`:
    /// `R(s) + γ·max_a Σ_s' P(s'|s,a)·U(s')`, or `R(s)` at a terminal state.
    pub fn backup(&self, values: &[f64], s: usize) -> f64 {
        if self.is_terminal(s) {
            return self.rewards[s];
        }
        (0..self.actions)
            .map(|a| self.q_value(values, s, a))
            .fold(f64::NEG_INFINITY, f64::max)
    }

    /// `max_s |U(s) − backup(U)(s)|`: how far `values` are from satisfying
    /// the Bellman optimality equation (0 for the optimal utilities). An
    /// error if `values` does not hold one utility per state.
    pub fn bellman_residual(&self, values: &[f64]) -> Result<f64> {
        self.check_values("Mdp::bellman_residual", values)?;
        Ok((0..self.states())
            .map(|s| (values[s] - self.backup(values, s)).abs())
            .fold(0.0, f64::max))
    }

    /// An error unless `values` holds one utility per state.
    pub(crate) fn check_values(&self, op: &'static str, values: &[f64]) -> Result<()> {
        if values.len() != self.states() {
            return Err(Error::LengthMismatch {
                what: format!("{op}: utilities"),
                expected: self.states(),
                shape: "one per state".into(),
                got: values.len(),
            });
        }
        Ok(())
    }
}
