//! Subsets and the stratified train/validation split of a [`Dataset`].

use super::Dataset;
use crate::error::{Error, Result};
use rand::seq::SliceRandom;

impl Dataset {
    /// The samples at `idx`, in that order (an index out of range is an error).
    pub fn subset(&self, idx: &[usize]) -> Result<Dataset> {
        if let Some(&i) = idx.iter().find(|&&i| i >= self.len()) {
            return Err(Error::invalid(
                "Dataset::subset",
                format!("index {i} out of range for {} samples", self.len()),
            ));
        }
        let mut x = Vec::with_capacity(idx.len() * self.dim);
        for &i in idx {
            x.extend_from_slice(&self.x[i * self.dim..(i + 1) * self.dim]);
        }
        Ok(Dataset {
            x,
            y: idx.iter().map(|&i| self.y[i]).collect(),
            dim: self.dim,
        })
    }

    /// Samples per class label: `counts[c]` samples have label `c`.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = Vec::new();
        for &l in &self.y {
            let l = l as usize;
            if counts.len() <= l {
                counts.resize(l + 1, 0);
            }
            counts[l] += 1;
        }
        counts
    }

    /// A stratified split into `(train, validation)`: of the `n_c` samples of
    /// each class `c`, `round(n_c · val_fraction)` (ties away from zero)
    /// chosen at random (seeded) go to validation, so both parts keep the
    /// class proportions (scikit-learn's `train_test_split(stratify=y)` up to
    /// rounding per class). Both parts keep the original order of their
    /// samples. `val_fraction` must lie in `[0, 1]`.
    pub fn stratified_split(&self, val_fraction: f64, seed: u64) -> Result<(Dataset, Dataset)> {
        let (train, val) = self.stratified_indices(val_fraction, seed)?;
        Ok((self.subset(&train)?, self.subset(&val)?))
    }

    /// The indices of [`Dataset::stratified_split`]: `(train, validation)`, each sorted.
    pub fn stratified_indices(
        &self,
        val_fraction: f64,
        seed: u64,
    ) -> Result<(Vec<usize>, Vec<usize>)> {
        if !(0.0..=1.0).contains(&val_fraction) {
            return Err(Error::invalid(
                "Dataset::stratified_split",
                format!("val_fraction must lie in [0, 1], got {val_fraction}"),
            ));
        }
        let counts = self.class_counts();
        let mut by_class: Vec<Vec<usize>> = counts.iter().map(|&n| Vec::with_capacity(n)).collect();
        for (i, &l) in self.y.iter().enumerate() {
            by_class[l as usize].push(i);
        }
        let mut r = crate::rng(seed);
        let mut is_val = vec![false; self.len()];
        for idx in &mut by_class {
            idx.shuffle(&mut r);
            let k = (idx.len() as f64 * val_fraction).round() as usize;
            for &i in &idx[..k.min(idx.len())] {
                is_val[i] = true;
            }
        }
        let (val, train): (Vec<usize>, Vec<usize>) = (0..self.len()).partition(|&i| is_val[i]);
        Ok((train, val))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stratified_split_keeps_proportions() {
        // 10 samples of class 0, 4 of class 1, 6 of class 2; sample i has value i.
        let y: Vec<u32> = (0..20)
            .map(|i| {
                if i < 10 {
                    0
                } else if i < 14 {
                    1
                } else {
                    2
                }
            })
            .collect();
        let d = Dataset {
            x: (0..20).map(|i| i as f32).collect(),
            y,
            dim: 1,
        };
        let (tr, va) = d.stratified_split(0.25, 3).unwrap();
        // round(2.5) = 3, round(1) = 1, round(1.5) = 2 → 6 validation samples.
        assert_eq!(va.class_counts(), [3, 1, 2]);
        assert_eq!(tr.class_counts(), [7, 3, 4]);
        // Disjoint, complete, each in the original order; values follow their labels.
        let mut all: Vec<f32> = tr.x.iter().chain(&va.x).copied().collect();
        all.sort_by(f32::total_cmp);
        assert_eq!(all, (0..20).map(|i| i as f32).collect::<Vec<_>>());
        assert!(tr.x.windows(2).all(|w| w[0] < w[1]) && va.x.windows(2).all(|w| w[0] < w[1]));
        for (v, l) in tr.x.iter().zip(&tr.y).chain(va.x.iter().zip(&va.y)) {
            assert_eq!(*l, d.y[*v as usize]);
        }
        // Same seed, same split; another seed, another one.
        assert_eq!(
            d.stratified_indices(0.25, 3).unwrap(),
            d.stratified_indices(0.25, 3).unwrap()
        );
        assert_ne!(
            d.stratified_indices(0.25, 3).unwrap(),
            d.stratified_indices(0.25, 4).unwrap()
        );
        assert!(d.stratified_split(1.5, 0).is_err());
        assert_eq!(d.stratified_split(0.0, 0).unwrap().1.len(), 0);
    }

    #[test]
    fn subset_checks_indices() {
        let d = Dataset {
            x: vec![1.0, 2.0, 3.0, 4.0],
            y: vec![0, 1],
            dim: 2,
        };
        let s = d.subset(&[1, 0, 1]).unwrap();
        assert_eq!(
            (s.x, s.y),
            (vec![3.0, 4.0, 1.0, 2.0, 3.0, 4.0], vec![1, 0, 1])
        );
        assert!(d.subset(&[2]).is_err());
    }
}
