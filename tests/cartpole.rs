//! CartPole-v1 (`kiln::rl::CartPole`) against Gymnasium:
//! `scripts/pytorch/cartpole_fixture.py` recorded two episodes
//! (`tests/fixtures/cartpole_trajectory.json`: a balancing policy for 200
//! steps, and pushing right until termination) with every step's float64
//! state and float32 observation; replayed from the recorded initial state,
//! kiln's states agree to 1e-12 and its observations bit for bit.

use kiln::rl::{CartPole, Env};
use serde_json::Value;

fn f64_bits(v: &Value) -> f64 {
    f64::from_bits(u64::from_str_radix(v.as_str().unwrap(), 16).unwrap())
}

fn f32_bits(v: &Value) -> f32 {
    f32::from_bits(u32::from_str_radix(v.as_str().unwrap(), 16).unwrap())
}

fn replay(name: &str) -> usize {
    let fx: Value =
        serde_json::from_str(include_str!("fixtures/cartpole_trajectory.json")).unwrap();
    let ep = &fx["episodes"][name];
    let init: Vec<f64> = ep["initial_state_bits"]
        .as_array()
        .unwrap()
        .iter()
        .map(f64_bits)
        .collect();
    let mut env = CartPole::new();
    let obs = env.reset_to([init[0], init[1], init[2], init[3]]);
    let want: Vec<f32> = ep["initial_observation_bits"]
        .as_array()
        .unwrap()
        .iter()
        .map(f32_bits)
        .collect();
    assert_eq!(obs.to_vec(), want, "{name}: initial observation");
    let steps = ep["steps"].as_array().unwrap();
    let mut worst = 0.0f64;
    for (t, st) in steps.iter().enumerate() {
        let step = env.step(st["action"].as_u64().unwrap() as usize).unwrap();
        let state = env.state().unwrap();
        for (i, v) in st["state_bits"].as_array().unwrap().iter().enumerate() {
            let err = (state[i] - f64_bits(v)).abs();
            worst = worst.max(err);
            assert!(
                err <= 1e-12,
                "{name}, step {t}, state[{i}]: {} vs {}",
                state[i],
                f64_bits(v)
            );
        }
        let obs: Vec<u32> = step.observation.iter().map(|v| v.to_bits()).collect();
        let want: Vec<u32> = st["observation_bits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| f32_bits(v).to_bits())
            .collect();
        assert_eq!(obs, want, "{name}, step {t}: observation bits");
        assert_eq!(
            step.reward,
            st["reward"].as_f64().unwrap(),
            "{name}, step {t}"
        );
        assert_eq!(
            step.terminated,
            st["terminated"].as_bool().unwrap(),
            "{name}, step {t}"
        );
        assert_eq!(
            step.truncated,
            st["truncated"].as_bool().unwrap(),
            "{name}, step {t}"
        );
    }
    println!(
        "{name}: {} steps, largest state difference {worst:e}",
        steps.len()
    );
    steps.len()
}

#[test]
fn balancing_episode_matches_gymnasium() {
    assert_eq!(replay("balance"), 200);
}

#[test]
fn terminating_episode_matches_gymnasium() {
    // Pushing right tips the pole past 12° within a few steps.
    let n = replay("push_right");
    assert!(n < 200);
}

/// CartPole-v1's `TimeLimit`: a policy that keeps the pole up is cut off at
/// step 500 with `truncated` (and not `terminated`), and a further step is
/// an error until the next reset.
#[test]
fn truncates_at_500_steps() {
    let mut env = CartPole::new();
    env.reset(3);
    let mut steps = 0;
    let mut total = 0.0;
    loop {
        let [_, _, theta, theta_dot] = env.state().unwrap();
        let step = env
            .step(usize::from(theta + 0.5 * theta_dot > 0.0))
            .unwrap();
        steps += 1;
        total += step.reward;
        assert!(
            !step.terminated,
            "the balancing policy let the pole fall at step {steps}"
        );
        if step.done() {
            assert!(step.truncated);
            break;
        }
    }
    assert_eq!(steps, CartPole::MAX_STEPS);
    assert_eq!(total, 500.0);
    assert!(env.step(0).is_err());
    env.reset(4);
    assert!(env.step(0).is_ok());
    // A shorter limit truncates there.
    let mut short = CartPole::with_max_steps(3);
    short.reset_to([0.0; 4]);
    let flags: Vec<bool> = (0..3)
        .map(|i| short.step(i % 2).unwrap().truncated)
        .collect();
    assert_eq!(flags, [false, false, true]);
}
