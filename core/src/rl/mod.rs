//! Reinforcement learning (issue 14): environments with Gymnasium's API, a
//! tabular Markov decision process with exact planning, and the losses that
//! value- and policy-based agents train with.
//!
//! * [`Env`]: an environment as Gymnasium's `Env`: [`Env::reset`] with a seed
//!   returns the first observation; [`Env::step`] takes an action and returns a
//!   [`Step`] (observation, reward, `terminated` when the episode reached a
//!   terminal state of the MDP, `truncated` when it was cut off, by a time
//!   limit, before one).
//! * [`CartPole`]: CartPole-v1 with Gymnasium's dynamics, its float64 state,
//!   float32 observations and the 500-step time limit.
//! * [`Mdp`]: a finite MDP with explicit transition probabilities `P(s'|s,a)`,
//!   state rewards `R(s)` and discount `γ` (Russell and Norvig's form);
//!   [`GridWorld`] builds their 4×3 world.
//! * Planning on an [`Mdp`]: [`value_iteration`], [`q_iteration`] and
//!   [`policy_iteration`], each giving the optimal utilities and a greedy
//!   policy ([`Plan`]). With `U(s) = R(s)` for a terminal state, the Bellman
//!   optimality equation they solve is
//!
//!   `U(s) = R(s) + γ · max_a Σ_s' P(s'|s,a) · U(s')`,
//!
//!   and `Q(s,a) = R(s) + γ · Σ_s' P(s'|s,a) · max_a' Q(s',a')`.
//! * [`losses`]: the Huber TD loss on the taken action's Q value and the
//!   weighted negative log-softmax (policy-gradient) loss, with hand-written
//!   gradients.
//!
//! `docs/rl.md` has the formulas and the commands that check them.

pub mod cartpole;
pub mod env;
pub mod gridworld;
pub mod losses;
pub mod mdp;
pub mod planning;

pub use cartpole::CartPole;
pub use env::{Env, Step};
pub use gridworld::{GridAction, GridWorld};
pub use mdp::Mdp;
pub use planning::{
    greedy_policy, policy_evaluation, policy_iteration, q_iteration, value_iteration, Plan,
};
