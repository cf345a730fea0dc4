//! Tests of `loss/style.rs`: worked values by hand, every gradient against
//! central differences in f64, and the argument errors.

use super::*;
use crate::testing::{numeric_grad, random_input, rel_err};
use crate::Cpu;

type T3<const C: usize, const H: usize, const W: usize> = Tensor<S3<C, H, W>, f64>;

fn t3<const C: usize, const H: usize, const W: usize>(v: &[f64]) -> T3<C, H, W> {
    Tensor::from_slice(&Cpu, v).unwrap()
}

#[test]
fn gram_by_hand() {
    // Two samples of 2 channels on a 2×2 grid (N = 4).
    // Sample 0: F = [[1, 2, 3, 4], [0, 1, 0, −1]];
    // G = [[30, −2], [−2, 2]] / 4.
    // Sample 1: F = [[1, 1, 1, 1], [2, 0, 0, 2]]; G = [[4, 4], [4, 8]] / 4.
    let x = t3::<2, 2, 2>(&[
        1.0, 2.0, 3.0, 4.0, 0.0, 1.0, 0.0, -1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 0.0, 0.0, 2.0,
    ]);
    let mut g = Tensor::empty(&Cpu).unwrap();
    gram(&x, &mut g).unwrap();
    assert_eq!(g.batch(), 2);
    assert_eq!(
        g.to_vec().unwrap(),
        [7.5, -0.5, -0.5, 0.5, 1.0, 1.0, 1.0, 2.0]
    );
}

#[test]
fn gram_backward_matches_central_differences() {
    let mut r = crate::rng(1);
    let xv = random_input(2 * 3 * 2 * 3, &mut r);
    // A non-symmetric upstream gradient, so both halves of (Ĝ + Ĝᵀ) count.
    let dgv = random_input(2 * 9, &mut r);
    let f = |v: &[f64]| {
        let mut g = Tensor::empty(&Cpu).unwrap();
        gram(&t3::<3, 2, 3>(v), &mut g).unwrap();
        g.to_vec()
            .unwrap()
            .iter()
            .zip(&dgv)
            .map(|(a, b)| a * b)
            .sum::<f64>()
    };
    let dg = Tensor::<S2<3, 3>, f64>::from_slice(&Cpu, &dgv).unwrap();
    let mut dx = Tensor::empty(&Cpu).unwrap();
    gram_backward(&t3::<3, 2, 3>(&xv), &dg, &mut dx, Acc::Set).unwrap();
    let err = rel_err(&dx.to_vec().unwrap(), &numeric_grad(&xv, f));
    assert!(err < 1e-8, "{err}");
    // Acc::Add adds the same again.
    let before = dx.to_vec().unwrap();
    gram_backward(&t3::<3, 2, 3>(&xv), &dg, &mut dx, Acc::Add).unwrap();
    for (a, b) in dx.to_vec().unwrap().iter().zip(&before) {
        assert!((a - 2.0 * b).abs() < 1e-12);
    }
}

#[test]
fn style_loss_by_hand() {
    // Target from F_s = [[1, 1], [1, −1]] on a 1×2 grid: T = [[1, 0], [0, 1]].
    // x = [[2, 0], [0, 0]]: G = [[2, 0], [0, 0]], G − T = diag(1, −1), loss = w·2.
    let s = t3::<2, 1, 2>(&[1.0, 1.0, 1.0, -1.0]);
    let mut st = StyleTarget::new(&s).unwrap();
    assert_eq!(st.gram().to_vec().unwrap(), [1.0, 0.0, 0.0, 1.0]);
    let x = t3::<2, 1, 2>(&[2.0, 0.0, 0.0, 0.0]);
    let mut dx = Tensor::empty(&Cpu).unwrap();
    let l = st.loss(&x, 0.5, Some((&mut dx, Acc::Set))).unwrap();
    assert_eq!(l, 1.0);
    // 4w (G − T) F / N = 4·0.5·diag(1, −1)·[[2, 0], [0, 0]] / 2 = [[2, 0], [0, 0]].
    assert_eq!(dx.to_vec().unwrap(), [2.0, 0.0, 0.0, 0.0]);
}

#[test]
fn style_loss_gradient_matches_central_differences_on_a_batch() {
    let mut r = crate::rng(2);
    // Target from a 3×3 grid, loss on a 2×4 grid: sizes may differ.
    let s = t3::<3, 3, 3>(&random_input(27, &mut r));
    let xv = random_input(2 * 3 * 2 * 4, &mut r);
    let mut st = StyleTarget::new(&s).unwrap();
    let mut dx = Tensor::empty(&Cpu).unwrap();
    st.loss(&t3::<3, 2, 4>(&xv), 0.7, Some((&mut dx, Acc::Set)))
        .unwrap();
    let num = numeric_grad(&xv, |v| st.loss(&t3::<3, 2, 4>(v), 0.7, None).unwrap());
    let err = rel_err(&dx.to_vec().unwrap(), &num);
    assert!(err < 1e-8, "{err}");
    // The loss is the sum over the batch of each sample's own.
    let both = st.loss(&t3::<3, 2, 4>(&xv), 0.7, None).unwrap();
    let mut one = |b: usize| {
        st.loss(&t3::<3, 2, 4>(&xv[b * 24..(b + 1) * 24]), 0.7, None)
            .unwrap()
    };
    let (l0, l1) = (one(0), one(1));
    assert!((both - l0 - l1).abs() < 1e-12 * both.abs());
}

#[test]
fn content_loss_by_hand_and_by_differences() {
    let p = Tensor::<S2<1, 3>, f64>::from_slice(&Cpu, &[1.0, 2.0, 3.0]).unwrap();
    let mut ct = ContentTarget::new(&p).unwrap();
    let x = Tensor::<S2<1, 3>, f64>::from_slice(&Cpu, &[1.0, 0.0, 4.0, 0.0, 2.0, 3.0]).unwrap();
    let mut dx = Tensor::empty(&Cpu).unwrap();
    // (0 + 4 + 1) + (1 + 0 + 0) = 6, times w = 2.
    let l = ct.loss(&x, 2.0, Some((&mut dx, Acc::Set))).unwrap();
    assert_eq!(l, 12.0);
    assert_eq!(dx.to_vec().unwrap(), [0.0, -8.0, 4.0, -4.0, 0.0, 0.0]);
    let xv = x.to_vec().unwrap();
    let num = numeric_grad(&xv, |v| {
        let x = Tensor::<S2<1, 3>, f64>::from_slice(&Cpu, v).unwrap();
        ct.loss(&x, 2.0, None).unwrap()
    });
    assert!(rel_err(&dx.to_vec().unwrap(), &num) < 1e-8);
}

#[test]
fn total_variation_by_hand_and_by_differences() {
    // 1 channel, 2×2: [[1, 2], [4, 0]]. Horizontal: 1, −4; vertical: 3, −2.
    // TV = 1 + 16 + 9 + 4 = 30.
    let x = [1.0, 2.0, 4.0, 0.0];
    assert_eq!(total_variation(&x, [1, 2, 2], 1.0, None).unwrap(), 30.0);
    let mut r = crate::rng(3);
    let xv = random_input(2 * 3 * 4, &mut r);
    let mut g = vec![7.0; xv.len()];
    let v = total_variation(&xv, [2, 3, 4], 0.3, Some((&mut g, Acc::Set))).unwrap();
    let num = numeric_grad(&xv, |v| total_variation(v, [2, 3, 4], 0.3, None).unwrap());
    assert!(rel_err(&g, &num) < 1e-8);
    assert!(v > 0.0);
    // Acc::Add adds onto what is there.
    let mut g2 = vec![1.0; xv.len()];
    total_variation(&xv, [2, 3, 4], 0.3, Some((&mut g2, Acc::Add))).unwrap();
    for (a, b) in g2.iter().zip(&g) {
        assert!((a - 1.0 - b).abs() < 1e-12);
    }
    // A constant image has none.
    assert_eq!(
        total_variation(&[0.5; 12], [3, 2, 2], 1.0, None).unwrap(),
        0.0
    );
}

#[test]
fn mistakes_are_errors_that_name_them() {
    let e = total_variation(&[0.0; 5], [1, 2, 2], 1.0, None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("total_variation image") && e.contains("1×2×2"),
        "{e}"
    );
    let mut g = [0.0; 3];
    let e = total_variation(&[0.0; 4], [1, 2, 2], 1.0, Some((&mut g, Acc::Set)))
        .unwrap_err()
        .to_string();
    assert!(e.contains("total_variation gradient"), "{e}");
    let two = t3::<1, 1, 2>(&[1.0, 2.0, 3.0, 4.0]);
    let e = StyleTarget::new(&two).err().unwrap().to_string();
    assert!(e.contains("one sample, got a batch of 2"), "{e}");
    let e = ContentTarget::new(&two).err().unwrap().to_string();
    assert!(e.contains("one sample, got a batch of 2"), "{e}");
    let mut st = StyleTarget::new(&t3::<1, 1, 2>(&[1.0, 2.0])).unwrap();
    let empty = T3::<1, 1, 2>::empty(&Cpu).unwrap();
    assert!(st.loss(&empty, 1.0, None).is_err());
    let mut dx = T3::<1, 1, 2>::zeros(&Cpu, 1).unwrap();
    let e = st
        .loss(&two, 1.0, Some((&mut dx, Acc::Add)))
        .unwrap_err()
        .to_string();
    assert!(e.contains("grad"), "{e}");
    let nan = t3::<1, 1, 2>(&[f64::NAN, 1.0]);
    let e = st.loss(&nan, 1.0, None).unwrap_err().to_string();
    assert!(e.contains("style loss"), "{e}");
}
