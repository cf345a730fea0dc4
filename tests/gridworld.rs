//! Planning on Russell and Norvig's 4×3 grid world (`kiln::rl`): value
//! iteration, Q iteration and policy iteration agree, satisfy the Bellman
//! optimality equation, and reproduce the book's utilities (Figure 17.3) and
//! optimal policies (Figure 17.2).

use kiln::rl::{policy_iteration, q_iteration, value_iteration, GridAction, GridWorld, Mdp, Plan};

/// All three planners on the world with `living_reward` and `gamma`.
fn plans(living_reward: f64, gamma: f64) -> (Mdp, [Plan; 3]) {
    let mdp = GridWorld::new(living_reward, gamma).unwrap().mdp().unwrap();
    // Always Up is proper: from every cell some chain of moves reaches a
    // terminal state, and no set of non-terminal cells is closed under it.
    let up = vec![GridAction::Up as usize; GridWorld::STATES];
    let vi = value_iteration(&mdp, 1e-14).unwrap();
    let qi = q_iteration(&mdp, 1e-14).unwrap();
    let pi = policy_iteration(&mdp, &up).unwrap();
    (mdp, [vi, qi, pi])
}

/// The policy drawn by [`GridWorld::render_policy`], row 3 first.
fn drawn(plan: &Plan) -> String {
    GridWorld::render_policy(&plan.policy)
}

#[test]
fn the_three_planners_agree_and_satisfy_bellman() {
    for (r, gamma) in [
        (-0.04, 1.0),
        (-0.4, 1.0),
        (-2.0, 1.0),
        (-0.04, 0.9),
        (0.1, 0.5),
    ] {
        let (mdp, [vi, qi, pi]) = plans(r, gamma);
        for other in [&qi, &pi] {
            for s in 0..GridWorld::STATES {
                assert!(
                    (vi.values[s] - other.values[s]).abs() <= 1e-9,
                    "r = {r}, γ = {gamma}, state {s}: {} vs {}",
                    vi.values[s],
                    other.values[s]
                );
            }
            assert_eq!(vi.policy, other.policy, "r = {r}, γ = {gamma}");
        }
        for plan in [&vi, &qi, &pi] {
            let residual = mdp.bellman_residual(&plan.values).unwrap();
            assert!(
                residual <= 1e-10,
                "r = {r}, γ = {gamma}: residual {residual:e}"
            );
        }
    }
}

/// Russell and Norvig, 3rd ed., Figure 17.3: the utilities of the 4×3 world
/// with `γ = 1` and `R(s) = −0.04`, to the three decimals printed there.
#[test]
fn utilities_are_russell_and_norvigs() {
    let (_, plans) = plans(-0.04, 1.0);
    #[rustfmt::skip]
    let book: [(usize, usize, f64); 11] = [
        (1, 3, 0.812), (2, 3, 0.868), (3, 3, 0.918), (4, 3, 1.0),
        (1, 2, 0.762),                (3, 2, 0.660), (4, 2, -1.0),
        (1, 1, 0.705), (2, 1, 0.655), (3, 1, 0.611), (4, 1, 0.388),
    ];
    for plan in &plans {
        for (c, r, u) in book {
            let s = GridWorld::state(c, r).unwrap();
            assert!(
                (plan.values[s] - u).abs() <= 1e-3,
                "({c},{r}): {} vs the book's {u}",
                plan.values[s]
            );
        }
    }
}

/// Russell and Norvig, 3rd ed., Figure 17.2: (a) the optimal policy for
/// `R(s) = −0.04`; (b) the optimal policies for the ranges
/// `−0.4278 < R(s) < −0.0850` (we take −0.4) and `R(s) < −1.6284` (we take
/// −2). Every non-terminal cell of each drawing is asserted:
///
/// * (a) −0.04: the long way round from (3,1) and (4,1) (Left) and Up at
///   (3,2), away from −1: moving costs little, so no risk near −1 is worth it.
/// * (b) −0.4: the book's description is the shortest route to +1, accepting
///   the risk of slipping into −1: (3,1) Up beside −1 and (2,1) Right; (4,1)
///   still goes Left, since Up from there lands in −1 with probability 0.8.
/// * (b) −2: the book's description is that the agent heads for the nearest
///   exit even when it is −1: (3,2) Right and (4,1) Up into −1, the bottom
///   row Right toward it, and (1,2) Up, where +1 is the nearer exit.
///
/// These drawings are our reading of the figure; value iteration, Q
/// iteration and policy iteration all give them.
#[test]
fn policies_are_russell_and_norvigs() {
    let figure = [
        (-0.04, "→ → → +\n↑ # ↑ -\n↑ ← ← ←\n"),
        (-0.4, "→ → → +\n↑ # ↑ -\n↑ → ↑ ←\n"),
        (-2.0, "→ → → +\n↑ # → -\n→ → → ↑\n"),
    ];
    for (r, drawing) in figure {
        let (_, plans) = plans(r, 1.0);
        for plan in &plans {
            assert_eq!(drawn(plan), drawing, "R(s) = {r}");
        }
    }
}

#[test]
fn misuse_is_an_error() {
    assert!(GridWorld::new(f64::NAN, 1.0).is_err());
    assert!(GridWorld::new(-0.04, 1.5).is_err());
    let mdp = GridWorld::russell_norvig().mdp().unwrap();
    assert!(value_iteration(&mdp, 0.0).is_err());
    assert!(policy_iteration(&mdp, &[0; 3]).is_err());
    assert!(policy_iteration(&mdp, &[9; GridWorld::STATES]).is_err());
    assert!(mdp.bellman_residual(&[0.0; 2]).is_err());
    // With γ = 1, (1,1) Left and (1,2) Down never leave those two cells:
    // the policy is improper and its system singular.
    let mut improper = vec![GridAction::Up as usize; GridWorld::STATES];
    improper[GridWorld::state(1, 1).unwrap()] = GridAction::Left as usize;
    improper[GridWorld::state(1, 2).unwrap()] = GridAction::Down as usize;
    assert!(kiln::rl::policy_evaluation(&mdp, &improper).is_err());
    // A positive living reward with γ = 1: utilities grow without bound.
    let forever = GridWorld::new(0.1, 1.0).unwrap().mdp().unwrap();
    assert!(value_iteration(&forever, 1e-12).is_err());
    // Probabilities that do not sum to 1.
    assert!(Mdp::new(1, vec![vec![vec![(0, 0.5)]]], vec![0.0], 0.9).is_err());
}
