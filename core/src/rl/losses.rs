//! Losses for RL agents (filled in below).
