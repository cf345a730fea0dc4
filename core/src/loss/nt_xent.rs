//! NT-Xent, the normalised temperature-scaled cross-entropy of SimCLR
//! (Chen et al. 2020; InfoNCE with the other images of the batch as
//! negatives; course lesson 18). Re-exported from [`crate::loss`].
//!
//! A batch of `2N` embeddings `z` holds two views of `N` images: row `i`
//! and row `p(i) = (i + N) mod 2N` are positives, every other row a
//! negative. With `u_i = z_i / ‖z_i‖` and `s_ik = u_i·u_k / τ`:
//!
//! ```text
//! ℓ_i = −s_{i,p(i)} + log Σ_{k≠i} e^{s_ik}          L = (1/2N) Σ_i ℓ_i
//! G_ik = ∂L/∂s_ik = (P_ik − δ_{k,p(i)}) / 2N,   P_ik = e^{s_ik} / Σ_{k'≠i} e^{s_ik'} (k ≠ i), G_ii = 0
//! g_i  = ∂L/∂u_i  = (1/τ) Σ_k (G_ik + G_ki) u_k      (s is symmetric)
//! ∂L/∂z_i = (g_i − u_i (u_i·g_i)) / ‖z_i‖            (the normalisation's backward)
//! ```
//!
//! The normalisation is inside the loss, as in SimCLR's code, so a
//! projection head's output goes in as it is. The loss is computed on the
//! host (the embeddings are copied down and the gradient up, `2N × K`
//! values each way, `O((2N)²K)` work), so every device runs it.

use crate::elem::Elem;
use crate::error::{Error, Result};
use crate::kernels::cpu_util::{pieces2, PAR_MIN};
use crate::kernels::LossKernels;
use crate::shape::S1;
use crate::tensor::Tensor;

/// The NT-Xent loss at temperature `τ` (see the module docs) with its host
/// buffers, reused from call to call.
pub struct NtXent {
    temperature: f64,
    z: Vec<f64>,
    u: Vec<f64>,
    norms: Vec<f64>,
    g: Vec<f64>,
    gs: Vec<f64>,
    out: Vec<f64>,
    /// Each row's loss term, summed in row order.
    terms: Vec<f64>,
}

const OP: &str = "NtXent::loss";

impl NtXent {
    /// NT-Xent with temperature `temperature > 0` (SimCLR: 0.5 or 0.1).
    pub fn new(temperature: f64) -> Result<Self> {
        if !(temperature > 0.0 && temperature.is_finite()) {
            return Err(Error::invalid(
                "NtXent::new",
                format!("the temperature must be finite and > 0, got {temperature}"),
            ));
        }
        Ok(NtXent {
            temperature,
            z: Vec::new(),
            u: Vec::new(),
            norms: Vec::new(),
            g: Vec::new(),
            gs: Vec::new(),
            out: Vec::new(),
            terms: Vec::new(),
        })
    }

    /// The temperature `τ`.
    pub fn temperature(&self) -> f64 {
        self.temperature
    }

    /// The loss of the `2N` embeddings `z` (rows `i` and `i + N` are two
    /// views of one image) and, when given, its gradient written into
    /// `grad`. An odd batch, one under 4 rows or a zero embedding is an error.
    pub fn loss<const K: usize, E: Elem, D: LossKernels<E>>(
        &mut self,
        z: &Tensor<S1<K>, E, D>,
        grad: Option<&mut Tensor<S1<K>, E, D>>,
    ) -> Result<E> {
        let m = z.batch();
        if m < 4 || !m.is_multiple_of(2) {
            return Err(Error::invalid(
                OP,
                format!("the batch must hold two views of at least 2 images (an even count ≥ 4), got {m} rows"),
            ));
        }
        let mut host = vec![E::zero(); m * K];
        z.copy_to_slice(&mut host)?;
        self.z.clear();
        self.z.extend(host.iter().map(|v| v.f64()));
        let l = self.compute(m, K)?;
        if let Some(g) = grad {
            g.set_batch(m)?;
            for (h, v) in host.iter_mut().zip(&self.out) {
                *h = E::of(*v);
            }
            g.copy_from_slice(&host)?;
        }
        let v = E::of(l);
        if v.is_finite() {
            Ok(v)
        } else {
            Err(Error::NonFinite {
                what: "nt_xent loss".into(),
                value: l,
            })
        }
    }

    /// The loss of `self.z` (`m × k`), its gradient left in `self.out`.
    fn compute(&mut self, m: usize, k: usize) -> Result<f64> {
        let (n, inv_t) = (m / 2, 1.0 / self.temperature);
        self.u.resize(m * k, 0.0);
        self.norms.resize(m, 0.0);
        for i in 0..m {
            let zi = &self.z[i * k..(i + 1) * k];
            let nr = zi.iter().map(|v| v * v).sum::<f64>().sqrt();
            if nr == 0.0 || !nr.is_finite() {
                return Err(Error::invalid(
                    OP,
                    format!("embedding row {i} has norm {nr}"),
                ));
            }
            self.norms[i] = nr;
            for (u, v) in self.u[i * k..(i + 1) * k].iter_mut().zip(zi) {
                *u = v / nr;
            }
        }
        let dot = |u: &[f64], a: usize, b: usize| -> f64 {
            u[a * k..(a + 1) * k]
                .iter()
                .zip(&u[b * k..(b + 1) * k])
                .map(|(x, y)| x * y)
                .sum()
        };
        // Rows are independent in both loops below, so they run on the
        // pool's threads (row by row, each in the same order as one thread
        // would): bitwise the same loss and gradient at any thread count.
        // The rows' loss terms are summed afterwards, in row order.
        let big = m * m >= PAR_MIN;
        let Self {
            u,
            norms,
            g,
            gs,
            out,
            terms,
            ..
        } = self;
        let (u, norms) = (&*u, &*norms);
        // G (m × m): G_ik = (P_ik − δ_{k,p(i)}) / m.
        gs.clear();
        gs.resize(m * m, 0.0);
        terms.clear();
        terms.resize(m, 0.0);
        pieces2(gs, m, terms, 1, m, big, |i, row, term| {
            let p = (i + n) % m;
            let mut mx = f64::NEG_INFINITY;
            for (kk, r) in row.iter_mut().enumerate() {
                if kk != i {
                    *r = dot(u, i, kk) * inv_t;
                    mx = mx.max(*r);
                }
            }
            let z: f64 = (0..m)
                .filter(|&kk| kk != i)
                .map(|kk| (row[kk] - mx).exp())
                .sum();
            term[0] = -row[p] + mx + z.ln();
            for (kk, r) in row.iter_mut().enumerate() {
                *r = if kk == i {
                    0.0
                } else {
                    ((*r - mx).exp() / z - if kk == p { 1.0 } else { 0.0 }) / m as f64
                };
            }
        });
        let mut total = 0.0;
        for t in terms.iter() {
            total += *t;
        }
        // g_i = (1/τ) Σ_k (G_ik + G_ki) u_k, then through the normalisation.
        let gs = &*gs;
        g.clear();
        g.resize(m * k, 0.0);
        out.clear();
        out.resize(m * k, 0.0);
        pieces2(g, k, out, k, m, big, |i, gi, oi| {
            for kk in 0..m {
                let w = (gs[i * m + kk] + gs[kk * m + i]) * inv_t;
                if w != 0.0 {
                    for d in 0..k {
                        gi[d] += w * u[kk * k + d];
                    }
                }
            }
            let ug = dot_rows(&u[i * k..(i + 1) * k], gi);
            for d in 0..k {
                oi[d] = (gi[d] - u[i * k + d] * ug) / norms[i];
            }
        });
        Ok(total / m as f64)
    }
}

fn dot_rows(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{numeric_grad, rel_err};
    use crate::Cpu;

    /// Two images whose two views agree exactly and are orthogonal to the
    /// other image's: every row has one positive at similarity 1/τ and two
    /// negatives at 0, so `ℓ_i = −1/τ + log(2 + e^{1/τ})` for every row.
    #[test]
    fn worked_numbers() {
        let z = Tensor::<S1<2>, f64>::from_slice(&Cpu, &[3.0, 0.0, 0.0, 0.5, 2.0, 0.0, 0.0, 7.0])
            .unwrap();
        for t in [1.0, 0.5] {
            let mut nt = NtXent::new(t).unwrap();
            let mut g = Tensor::empty(&Cpu).unwrap();
            let l = nt.loss(&z, Some(&mut g)).unwrap();
            let want = -1.0 / t + (2.0 + (1.0 / t).exp()).ln();
            assert!((l - want).abs() < 1e-14, "τ = {t}: {l} vs {want}");
            // Each row's gradient is orthogonal to the row (the loss does
            // not depend on the embeddings' lengths).
            let g = g.to_vec().unwrap();
            let zv = z.to_vec().unwrap();
            for i in 0..4 {
                let d = g[2 * i] * zv[2 * i] + g[2 * i + 1] * zv[2 * i + 1];
                assert!(d.abs() < 1e-14, "row {i}: {d}");
            }
        }
        // τ = 1 by hand: log(2 + e) − 1.
        let l = NtXent::new(1.0).unwrap().loss(&z, None).unwrap();
        assert!((l - 0.551444713932051).abs() < 1e-14, "{l}");
    }

    #[test]
    fn gradcheck() {
        let zs: Vec<f64> = (0..6 * 3)
            .map(|i| ((i * 7 % 11) as f64 - 5.0) * 0.37 + 0.05)
            .collect();
        for t in [0.5, 0.1, 2.0] {
            let mut nt = NtXent::new(t).unwrap();
            let z = Tensor::<S1<3>, f64>::from_slice(&Cpu, &zs).unwrap();
            let mut g = Tensor::empty(&Cpu).unwrap();
            nt.loss(&z, Some(&mut g)).unwrap();
            let num = numeric_grad(&zs, |v| {
                nt.loss(&Tensor::<S1<3>, f64>::from_slice(&Cpu, v).unwrap(), None)
                    .unwrap()
            });
            let err = rel_err(&g.to_vec().unwrap(), &num);
            assert!(err < 1e-6, "τ = {t}: {err}");
        }
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(NtXent::new(0.0).is_err());
        let mut nt = NtXent::new(0.5).unwrap();
        let odd = Tensor::<S1<2>, f64>::from_slice(&Cpu, &[1.0; 10]).unwrap();
        assert!(nt
            .loss(&odd, None)
            .unwrap_err()
            .to_string()
            .contains("5 rows"));
        let zero =
            Tensor::<S1<2>, f64>::from_slice(&Cpu, &[1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0])
                .unwrap();
        assert!(nt
            .loss(&zero, None)
            .unwrap_err()
            .to_string()
            .contains("row 1"));
    }
}
