//! CartPole-v1, as Gymnasium's `CartPoleEnv` under its `TimeLimit` of 500
//! steps (Barto, Sutton and Anderson's cart-pole, 1983).
//!
//! The state is `(x, ẋ, θ, θ̇)` in float64 (Gymnasium's `env.unwrapped.state`);
//! the observation is the state rounded to float32. Action 0 pushes the cart
//! left with force `F = −10`, action 1 right with `F = +10`. With `g = 9.8`,
//! `m_c = 1.0`, `m_p = 0.1`, `M = m_c + m_p`, half-length `l = 0.5` and
//! `τ = 0.02`, one step computes
//!
//! ```text
//! temp = (F + m_p·l·θ̇²·sin θ) / M
//! θ̈    = (g·sin θ − cos θ·temp) / (l·(4/3 − m_p·cos²θ / M))
//! ẍ    = temp − m_p·l·θ̈·cos θ / M
//! ```
//!
//! and integrates by explicit Euler, in this order: `x ← x + τ·ẋ`,
//! `ẋ ← ẋ + τ·ẍ`, `θ ← θ + τ·θ̇`, `θ̇ ← θ̇ + τ·θ̈`. Every step gives reward 1
//! (the one that terminates included). The episode terminates when
//! `|x| > 2.4` or `|θ| > 12·2π/360` and is truncated at step 500.
//!
//! [`Env::reset`] draws each state component uniformly from `[−0.05, 0.05)`
//! with kiln's seeded generator, which is not numpy's: the same seed gives a
//! different start than Gymnasium. [`CartPole::reset_to`] starts from a given
//! state, so a trajectory recorded in Gymnasium replays exactly
//! (`tests/cartpole.rs`).

use rand::Rng as _;

use super::env::{Env, Step};
use crate::{Error, Result};

const GRAVITY: f64 = 9.8;
const MASS_CART: f64 = 1.0;
const MASS_POLE: f64 = 0.1;
const TOTAL_MASS: f64 = MASS_POLE + MASS_CART;
const LENGTH: f64 = 0.5;
const POLEMASS_LENGTH: f64 = MASS_POLE * LENGTH;
const FORCE_MAG: f64 = 10.0;
const TAU: f64 = 0.02;
const X_THRESHOLD: f64 = 2.4;
const THETA_THRESHOLD: f64 = 12.0 * 2.0 * std::f64::consts::PI / 360.0;

/// CartPole-v1: see the [module docs](self) for the dynamics.
#[derive(Clone, Debug)]
pub struct CartPole {
    state: Option<[f64; 4]>,
    steps: usize,
    max_steps: usize,
    done: bool,
}

impl Default for CartPole {
    fn default() -> Self {
        Self::new()
    }
}

impl CartPole {
    /// The number of actions (0: push left, 1: push right).
    pub const ACTIONS: usize = 2;
    /// CartPole-v1's time limit (Gymnasium's `max_episode_steps`).
    pub const MAX_STEPS: usize = 500;

    /// CartPole-v1 with its 500-step time limit; call [`Env::reset`] or
    /// [`CartPole::reset_to`] before stepping.
    pub fn new() -> Self {
        Self::with_max_steps(Self::MAX_STEPS)
    }

    /// CartPole truncated after `max_steps` steps (CartPole-v0 had 200).
    pub fn with_max_steps(max_steps: usize) -> Self {
        CartPole {
            state: None,
            steps: 0,
            max_steps,
            done: false,
        }
    }

    /// Starts an episode from `state = [x, ẋ, θ, θ̇]` (Gymnasium:
    /// `env.reset()` then `env.unwrapped.state = state`) and returns its
    /// observation.
    pub fn reset_to(&mut self, state: [f64; 4]) -> [f32; 4] {
        self.state = Some(state);
        self.steps = 0;
        self.done = false;
        observe(state)
    }

    /// The float64 state `[x, ẋ, θ, θ̇]` (Gymnasium's `env.unwrapped.state`);
    /// `None` before the first reset.
    pub fn state(&self) -> Option<[f64; 4]> {
        self.state
    }

    /// The steps taken in this episode.
    pub fn steps(&self) -> usize {
        self.steps
    }
}

/// The float32 observation of a float64 state (numpy's `astype(float32)`:
/// round to nearest).
fn observe(s: [f64; 4]) -> [f32; 4] {
    [s[0] as f32, s[1] as f32, s[2] as f32, s[3] as f32]
}

impl Env for CartPole {
    type Observation = [f32; 4];
    type Action = usize;

    fn reset(&mut self, seed: u64) -> [f32; 4] {
        let mut rng = crate::rng(seed);
        let state = std::array::from_fn(|_| rng.random_range(-0.05..0.05));
        self.reset_to(state)
    }

    fn step(&mut self, action: usize) -> Result<Step<[f32; 4]>> {
        let [x, x_dot, theta, theta_dot] = self.state.ok_or_else(|| Error::InvalidArgument {
            op: "CartPole::step",
            msg: "step before reset: call reset or reset_to first".into(),
        })?;
        if self.done {
            return Err(Error::InvalidArgument {
                op: "CartPole::step",
                msg: format!(
                    "the episode ended after {} steps: call reset or reset_to before stepping again",
                    self.steps
                ),
            });
        }
        let force = match action {
            0 => -FORCE_MAG,
            1 => FORCE_MAG,
            _ => {
                return Err(Error::InvalidArgument {
                    op: "CartPole::step",
                    msg: format!(
                        "action {action} is out of range for 2 actions (0: left, 1: right)"
                    ),
                })
            }
        };
        let (sin, cos) = (theta.sin(), theta.cos());
        let temp = (force + POLEMASS_LENGTH * (theta_dot * theta_dot) * sin) / TOTAL_MASS;
        let theta_acc = (GRAVITY * sin - cos * temp)
            / (LENGTH * (4.0 / 3.0 - MASS_POLE * (cos * cos) / TOTAL_MASS));
        let x_acc = temp - POLEMASS_LENGTH * theta_acc * cos / TOTAL_MASS;
        let x = x + TAU * x_dot;
        let x_dot = x_dot + TAU * x_acc;
        let theta = theta + TAU * theta_dot;
        let theta_dot = theta_dot + TAU * theta_acc;
        let state = [x, x_dot, theta, theta_dot];
        self.state = Some(state);
        self.steps += 1;
        let terminated = !(-X_THRESHOLD..=X_THRESHOLD).contains(&x)
            || !(-THETA_THRESHOLD..=THETA_THRESHOLD).contains(&theta);
        let truncated = self.steps >= self.max_steps;
        self.done = terminated || truncated;
        Ok(Step {
            observation: observe(state),
            reward: 1.0,
            terminated,
            truncated,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_draws_within_bounds_and_is_seeded() {
        let mut env = CartPole::new();
        let a = env.reset(7);
        assert!(env.state().unwrap().iter().all(|v| v.abs() <= 0.05));
        assert_eq!(env.reset(7), a);
        assert_ne!(env.reset(8), a);
    }

    #[test]
    fn misuse_is_an_error() {
        let mut env = CartPole::new();
        assert!(env.step(0).is_err());
        env.reset(0);
        assert!(env.step(2).is_err());
        env.reset_to([2.4, 1.0, 0.0, 0.0]);
        let s = env.step(1).unwrap();
        assert!(s.terminated && !s.truncated && s.reward == 1.0);
        assert!(env.step(1).is_err());
    }
}
