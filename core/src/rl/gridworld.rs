//! The 4×3 grid world of Russell and Norvig (*Artificial Intelligence: A
//! Modern Approach*, 3rd ed., §17.1, Figures 17.1–17.3).
//!
//! ```text
//! row 3 |     |     |     | +1  |
//! row 2 |     | ### |     | −1  |
//! row 1 |start|     |     |     |
//!        col 1 col 2 col 3 col 4
//! ```
//!
//! Cells are `(column, row)`, columns 1–4 and rows 1–3; `(2,2)` is a wall;
//! `(4,3)` is terminal with reward +1 and `(4,2)` terminal with −1. Every
//! other cell has the living reward `R(s)` (−0.04 in the book). An action
//! moves in its direction with probability 0.8 and at right angles to it
//! with 0.1 each; a move into the wall or off the grid leaves the agent
//! where it is. The 11 states are numbered row by row from the bottom:
//! `(1,1)` is 0, `(4,1)` is 3, `(1,2)` is 4, `(3,2)` is 5, `(4,2)` is 6,
//! `(1,3)` is 7 and `(4,3)` is 10.

use super::mdp::Mdp;
use crate::{Error, Result};

/// A move of the [`GridWorld`]; `action as usize` is its index in the
/// [`Mdp`] (Up 0, Down 1, Left 2, Right 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GridAction {
    /// Toward row 3.
    Up,
    /// Toward row 1.
    Down,
    /// Toward column 1.
    Left,
    /// Toward column 4.
    Right,
}

impl GridAction {
    /// The four actions, in index order.
    pub const ALL: [GridAction; 4] = [
        GridAction::Up,
        GridAction::Down,
        GridAction::Left,
        GridAction::Right,
    ];

    /// The action of index `a` (`None` from 4 on).
    pub fn from_index(a: usize) -> Option<GridAction> {
        Self::ALL.get(a).copied()
    }

    /// `(Δcolumn, Δrow)`.
    fn delta(self) -> (i32, i32) {
        match self {
            GridAction::Up => (0, 1),
            GridAction::Down => (0, -1),
            GridAction::Left => (-1, 0),
            GridAction::Right => (1, 0),
        }
    }

    /// The two directions at right angles.
    fn perpendicular(self) -> [GridAction; 2] {
        match self {
            GridAction::Up | GridAction::Down => [GridAction::Left, GridAction::Right],
            GridAction::Left | GridAction::Right => [GridAction::Up, GridAction::Down],
        }
    }

    /// An arrow for printing policies.
    pub fn arrow(self) -> char {
        match self {
            GridAction::Up => '↑',
            GridAction::Down => '↓',
            GridAction::Left => '←',
            GridAction::Right => '→',
        }
    }
}

/// Russell and Norvig's 4×3 world with a living reward and a discount: see
/// the [module docs](self).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GridWorld {
    living_reward: f64,
    gamma: f64,
}

const COLS: i32 = 4;
const ROWS: i32 = 3;
const WALL: (usize, usize) = (2, 2);
const PLUS: (usize, usize) = (4, 3);
const MINUS: (usize, usize) = (4, 2);

impl GridWorld {
    /// The number of states (12 cells less the wall).
    pub const STATES: usize = 11;

    /// The world with living reward `living_reward` (the `R(s)` of every
    /// non-terminal cell) and discount `gamma`; an error if the reward is
    /// not finite or `γ ∉ [0, 1]`.
    pub fn new(living_reward: f64, gamma: f64) -> Result<Self> {
        if !living_reward.is_finite() || !(0.0..=1.0).contains(&gamma) {
            return Err(Error::InvalidArgument {
                op: "GridWorld::new",
                msg: format!(
                    "living reward {living_reward} must be finite and γ = {gamma} in [0, 1]"
                ),
            });
        }
        Ok(GridWorld {
            living_reward,
            gamma,
        })
    }

    /// The book's world: living reward −0.04, `γ = 1`.
    pub fn russell_norvig() -> Self {
        GridWorld {
            living_reward: -0.04,
            gamma: 1.0,
        }
    }

    /// The state of cell `(column, row)`; `None` for the wall or a cell off
    /// the grid.
    pub fn state(column: usize, row: usize) -> Option<usize> {
        if !(1..=COLS as usize).contains(&column)
            || !(1..=ROWS as usize).contains(&row)
            || (column, row) == WALL
        {
            return None;
        }
        let index = (row - 1) * COLS as usize + (column - 1);
        // Cells after the wall (row 2, column 2) shift down by one.
        Some(if (row, column) > (WALL.1, WALL.0) {
            index - 1
        } else {
            index
        })
    }

    /// The cell `(column, row)` of state `s`; `None` from 11 on.
    pub fn cell(s: usize) -> Option<(usize, usize)> {
        if s >= Self::STATES {
            return None;
        }
        let wall_index = (WALL.1 - 1) * COLS as usize + (WALL.0 - 1);
        let index = if s >= wall_index { s + 1 } else { s };
        Some((index % COLS as usize + 1, index / COLS as usize + 1))
    }

    /// Where a move in direction `d` from `(column, row)` lands: the
    /// neighbouring cell, or the same cell when the neighbour is the wall or
    /// off the grid.
    fn land(column: usize, row: usize, d: GridAction) -> usize {
        let (dc, dr) = d.delta();
        let (c, r) = (column as i32 + dc, row as i32 + dr);
        let stay = Self::state(column, row);
        let moved = if c >= 1 && r >= 1 {
            Self::state(c as usize, r as usize)
        } else {
            None
        };
        moved.or(stay).unwrap_or(0)
    }

    /// The world as an [`Mdp`] with explicit `P(s'|s,a)`: 0.8 to the
    /// intended cell and 0.1 to each perpendicular one, outcomes that land
    /// in the same cell merged.
    pub fn mdp(&self) -> Result<Mdp> {
        let mut transitions = Vec::with_capacity(Self::STATES);
        let mut rewards = Vec::with_capacity(Self::STATES);
        for s in 0..Self::STATES {
            let (column, row) = Self::cell(s).unwrap_or((1, 1));
            if (column, row) == PLUS || (column, row) == MINUS {
                rewards.push(if (column, row) == PLUS { 1.0 } else { -1.0 });
                transitions.push(Vec::new());
                continue;
            }
            rewards.push(self.living_reward);
            let by_action = GridAction::ALL
                .iter()
                .map(|&a| {
                    let [p1, p2] = a.perpendicular();
                    let mut outcomes: Vec<(usize, f64)> = Vec::new();
                    for (d, p) in [(a, 0.8), (p1, 0.1), (p2, 0.1)] {
                        let next = Self::land(column, row, d);
                        match outcomes.iter_mut().find(|(t, _)| *t == next) {
                            Some(o) => o.1 += p,
                            None => outcomes.push((next, p)),
                        }
                    }
                    outcomes
                })
                .collect();
            transitions.push(by_action);
        }
        Mdp::new(4, transitions, rewards, self.gamma)
    }

    /// A policy drawn as the grid, row 3 first: an arrow per cell, `#` for
    /// the wall, `+` and `-` for the terminals, `?` where the policy has no
    /// action for a non-terminal state. `policy[s]` is the action index of
    /// state `s` (as [`super::Plan::policy`]).
    pub fn render_policy(policy: &[Option<usize>]) -> String {
        let mut out = String::new();
        for row in (1..=ROWS as usize).rev() {
            for column in 1..=COLS as usize {
                let ch = match Self::state(column, row) {
                    None => '#',
                    Some(_) if (column, row) == PLUS => '+',
                    Some(_) if (column, row) == MINUS => '-',
                    Some(s) => policy
                        .get(s)
                        .copied()
                        .flatten()
                        .and_then(GridAction::from_index)
                        .map_or('?', GridAction::arrow),
                };
                out.push(ch);
                if column < COLS as usize {
                    out.push(' ');
                }
            }
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_and_states_round_trip() {
        for s in 0..GridWorld::STATES {
            let (c, r) = GridWorld::cell(s).unwrap();
            assert_eq!(GridWorld::state(c, r), Some(s));
        }
        assert_eq!(GridWorld::state(2, 2), None);
        assert_eq!(GridWorld::state(4, 3), Some(10));
        assert_eq!(GridWorld::state(4, 2), Some(6));
        assert_eq!(GridWorld::state(3, 2), Some(5));
    }

    #[test]
    fn transitions_follow_the_book() {
        let mdp = GridWorld::russell_norvig().mdp().unwrap();
        // (1,1) Up: 0.8 to (1,2), 0.1 bumps left (stays), 0.1 right to (2,1).
        let mut t = mdp.transitions(0, GridAction::Up as usize).to_vec();
        t.sort_by_key(|o| o.0);
        assert_eq!(t, vec![(0, 0.1), (1, 0.1), (4, 0.8)]);
        // (3,2) Right: 0.8 into −1, 0.1 up to (3,3), 0.1 down to (3,1).
        let mut t = mdp.transitions(5, GridAction::Right as usize).to_vec();
        t.sort_by_key(|o| o.0);
        assert_eq!(t, vec![(2, 0.1), (6, 0.8), (9, 0.1)]);
        // (1,2) Right bumps into the wall: stays with 0.8.
        let t = mdp.transitions(4, GridAction::Right as usize);
        assert!(t.contains(&(4, 0.8)));
        assert!(mdp.is_terminal(10) && mdp.is_terminal(6));
    }
}
