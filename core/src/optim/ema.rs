//! An exponential moving average of a network's weights (Polyak averaging
//! with a constant rate, as FixMatch and Mean Teacher evaluate with, and
//! `torch.optim.swa_utils.AveragedModel` with
//! `get_ema_multi_avg_fn(decay)`):
//!
//! ```text
//! θ̄ ← d · θ̄ + (1 − d) · θ        (after each optimizer step)
//! ```
//!
//! The average lives in a second instance `shadow` of the same network type,
//! so it is evaluated, saved and loaded like any network. The first
//! [`Ema::update`] copies `θ` (there is no average yet); buffers (batch-norm
//! running statistics) are averaged like parameters and counters copied.
//! Everything runs on the device (`copy` and `axpy`), through staging
//! buffers allocated on the first update and reused, one per visited entry.

use crate::device::{Acc, Backend};
use crate::elem::Elem;
use crate::error::{Error, Result};
use crate::module::{Module, Path, Role};

/// An exponential moving average of weights with decay `d` (see the module
/// docs).
pub struct Ema<E: Elem, D: Backend<E>> {
    decay: f64,
    updates: u64,
    snap: Vec<(usize, D::Buf<E>)>,
    tmp: Option<D::Buf<E>>,
}

const OP: &str = "Ema::update";

impl<E: Elem, D: Backend<E>> Ema<E, D> {
    /// A moving average with decay `decay ∈ [0, 1)` (0.999 is usual).
    pub fn new(decay: f64) -> Result<Self> {
        if !(0.0..1.0).contains(&decay) {
            return Err(Error::invalid(
                "Ema::new",
                format!("the decay must lie in [0, 1), got {decay}"),
            ));
        }
        Ok(Ema {
            decay,
            updates: 0,
            snap: Vec::new(),
            tmp: None,
        })
    }

    /// The decay `d`.
    pub fn decay(&self) -> f64 {
        self.decay
    }

    /// Updates taken so far.
    pub fn updates(&self) -> u64 {
        self.updates
    }

    /// Sets the update count (restoring a run: with a count above 0 the next
    /// update averages instead of copying).
    pub fn set_updates(&mut self, n: u64) {
        self.updates = n;
    }

    /// `shadow ← d · shadow + (1 − d) · live` for every parameter and
    /// buffer (a copy on the first call). `shadow` and `live` must be the
    /// same network type; an entry whose size differs is an error naming it.
    pub fn update<N: Module<E, D>>(&mut self, shadow: &mut N, live: &N) -> Result<()> {
        let mut err: Option<Error> = None;
        let mut i = 0;
        let snap = &mut self.snap;
        live.visit(&Path::ROOT, &mut |path, p| {
            if err.is_some() {
                return;
            }
            let r = (|| -> Result<()> {
                if snap.len() <= i {
                    snap.push((p.numel, p.dev.zeros::<E>(p.numel)?));
                }
                let (n, buf) = &mut snap[i];
                if *n != p.numel {
                    return Err(Error::invalid(
                        OP,
                        format!(
                            "`{path}` has {} values, {} at the previous update",
                            p.numel, n
                        ),
                    ));
                }
                p.dev.copy(p.value, buf, p.numel)
            })();
            err = r.err();
            i += 1;
        });
        if let Some(e) = err {
            return Err(e);
        }
        let seen = i;
        let first = self.updates == 0;
        let keep = 1.0 - self.decay;
        let (snap, tmp) = (&self.snap, &mut self.tmp);
        let mut j = 0;
        shadow.visit_mut(&Path::ROOT, &mut |path, p, role| {
            if err.is_some() {
                return;
            }
            let r = (|| -> Result<()> {
                let Some((n, src)) = snap.get(j).filter(|_| j < seen) else {
                    return Err(Error::invalid(
                        OP,
                        format!(
                            "the shadow network has more entries than the live one (at `{path}`)"
                        ),
                    ));
                };
                if *n != p.numel {
                    return Err(Error::invalid(
                        OP,
                        format!(
                            "`{path}` has {} values in the shadow network, {} in the live one",
                            p.numel, n
                        ),
                    ));
                }
                if first || role == Role::Counter {
                    return p.dev.copy(src, p.value, *n);
                }
                if tmp.as_ref().is_none_or(|t| p.dev.len(t) < *n) {
                    *tmp = Some(p.dev.zeros::<E>(*n)?);
                }
                let t = tmp
                    .as_mut()
                    .ok_or_else(|| Error::invalid(OP, "kiln internal error: no scratch"))?;
                // t = θ − θ̄; θ̄ += (1 − d)·t.
                p.dev.axpy(E::one(), src, t, *n, Acc::Set)?;
                p.dev.axpy(-E::one(), p.value, t, *n, Acc::Add)?;
                p.dev.axpy(E::of(keep), t, p.value, *n, Acc::Add)
            })();
            err = r.err();
            j += 1;
        });
        if let Some(e) = err {
            return Err(e);
        }
        if j != seen {
            return Err(Error::invalid(
                OP,
                format!("the shadow network has {j} entries, the live one {seen}"),
            ));
        }
        self.updates += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::tests::Net;
    use crate::Cpu;

    fn values(n: &Net) -> Vec<f64> {
        let mut v = n.a.to_vec().unwrap();
        v.extend(n.b.to_vec().unwrap());
        v
    }

    /// Worked numbers with d = 0.9: the first update copies, then
    /// θ̄ = 0.9 θ̄ + 0.1 θ.
    #[test]
    fn averages_by_hand() {
        let mut ema = Ema::<f64, Cpu>::new(0.9).unwrap();
        let mut shadow = Net::new(&[100.0, 100.0, 100.0]);
        let mut live = Net::new(&[1.0, 2.0, -3.0]);
        ema.update(&mut shadow, &live).unwrap();
        assert_eq!(values(&shadow), [1.0, 2.0, -3.0]);
        live = Net::new(&[11.0, 2.0, 7.0]);
        ema.update(&mut shadow, &live).unwrap();
        // 0.9·1 + 0.1·11 = 2; 0.9·2 + 0.1·2 = 2; 0.9·(−3) + 0.1·7 = −2.
        let v = values(&shadow);
        for (got, want) in v.iter().zip([2.0, 2.0, -2.0]) {
            assert!((got - want).abs() < 1e-14, "{v:?}");
        }
        // Again with the same live weights: 0.9·2 + 0.1·11 = 2.9, …
        ema.update(&mut shadow, &live).unwrap();
        let v = values(&shadow);
        for (got, want) in v.iter().zip([2.9, 2.0, -1.1]) {
            assert!((got - want).abs() < 1e-14, "{v:?}");
        }
        assert_eq!(ema.updates(), 3);
        // The live network is untouched.
        assert_eq!(values(&live), [11.0, 2.0, 7.0]);
    }

    #[test]
    fn bad_decay_is_an_error() {
        assert!(Ema::<f64, Cpu>::new(1.0).is_err());
        assert!(Ema::<f64, Cpu>::new(-0.1).is_err());
        assert!(Ema::<f64, Cpu>::new(f64::NAN).is_err());
    }
}
