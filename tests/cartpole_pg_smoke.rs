//! `examples/cartpole_pg.rs --smoke`, run through the example's own code (the
//! file is included as a module): 48 episodes of REINFORCE and of
//! actor–critic on CartPole-v1 (12 updates of 4 episodes each). The mean
//! return of the last 10 training episodes must exceed that of the first 10.
//! The run's time is printed (a few seconds; the smoke runs' bound is 60 s).

#[path = "../examples/cartpole_pg.rs"]
#[allow(dead_code)]
mod example;

use clap::Parser;

fn smoke(method: &str) {
    let args = example::Args::parse_from(["cartpole_pg", "--smoke", "--method", method]);
    let out = example::run(&args).unwrap();
    assert_eq!(out.returns.len(), 48);
    assert_eq!(out.episodes, 48);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let first = mean(&out.returns[..10]);
    let last = mean(&out.returns[out.returns.len() - 10..]);
    println!("{method}: mean return {first:.1} → {last:.1} (first / last 10 episodes); eval {:.1}; {:.2} s", out.eval_mean, out.secs);
    assert!(
        last > first,
        "{method}: the return did not improve: {first} → {last}"
    );
    // The time is printed, not asserted: speed is tracked by benchmarks, and
    // a shared machine can be slow without anything being wrong.
}

#[test]
fn cartpole_reinforce_smoke_improves() {
    smoke("reinforce");
}

#[test]
fn cartpole_actor_critic_smoke_improves() {
    smoke("actor-critic");
}
