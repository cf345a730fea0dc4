//! The environment interface, as Gymnasium's `Env`.

use crate::Result;

/// What one [`Env::step`] returns (Gymnasium's `(observation, reward,
/// terminated, truncated, info)` without `info`).
#[derive(Clone, Debug, PartialEq)]
pub struct Step<O> {
    /// The observation after the action.
    pub observation: O,
    /// The reward for the transition.
    pub reward: f64,
    /// The episode reached a terminal state of the MDP: bootstrap no further.
    pub terminated: bool,
    /// The episode was cut off (by a time limit) before a terminal state: the
    /// state after it still has a value, so a learner bootstraps from it.
    pub truncated: bool,
}

impl<O> Step<O> {
    /// The episode is over, by termination or truncation: call
    /// [`Env::reset`] before the next [`Env::step`].
    pub fn done(&self) -> bool {
        self.terminated || self.truncated
    }
}

/// An environment: Gymnasium's `reset`/`step` protocol.
///
/// An episode starts with [`Env::reset`] and runs [`Env::step`] until a step
/// says [`Step::done`]. Stepping before the first reset, after the episode
/// ended, or with an action outside the action space is an error (Gymnasium
/// warns or asserts).
pub trait Env {
    /// What the agent sees.
    type Observation;
    /// What the agent does.
    type Action;

    /// Starts an episode from a start state drawn with a generator seeded
    /// with `seed`, and returns its observation.
    fn reset(&mut self, seed: u64) -> Self::Observation;

    /// Takes `action`; returns the next observation, the reward and whether
    /// the episode ended.
    fn step(&mut self, action: Self::Action) -> Result<Step<Self::Observation>>;
}
