//! The tests of [`MaskedConv2d`](super::MaskedConv2d): worked values of both
//! masks, masked-out weights ignored (a checkpoint holding nonzero values
//! there), equality with [`Conv2d`] run on `W ⊙ M`, gradients against
//! central differences, accumulation, and the configurations `build` refuses.

use super::*;
use crate::testing::{check_layer, random_input};
use crate::Cpu;

type Masked3 = MaskedConv2d<f64, Cpu, 1, 1, 1, 3, 3, 3, 3, 3, 3>;
type Masked = MaskedConv2d<f64, Cpu, 2, 3, 2, 3, 3, 5, 5, 5, 5>;
type Plain = Conv2d<f64, Cpu, 2, 3, 2, 3, 3, 5, 5, 5, 5>;

fn cfg(mask: MaskType) -> MaskedConv2dConfig {
    MaskedConv2dConfig {
        mask,
        padding: (1, 1),
        ..Default::default()
    }
}

#[test]
fn masks_in_raster_order() {
    assert_eq!(MaskType::A.mask(3, 3), vec![1, 1, 1, 1, 0, 0, 0, 0, 0]);
    assert_eq!(MaskType::B.mask(3, 3), vec![1, 1, 1, 1, 1, 0, 0, 0, 0]);
    // 7×7 type A: three full rows and three taps of the centre row.
    assert_eq!(MaskType::A.visible(7, 7), 24);
    assert_eq!(MaskType::B.visible(1, 1), 1);
    assert_eq!(MaskType::A.visible(1, 1), 0);
}

/// `x = [[1,2,3],[4,5,6],[7,8,9]]`, all weights 1, bias 0.5, padding 1:
/// type A sums the three pixels above and the one to the left, e.g. at the
/// centre 1 + 2 + 3 + 4 = 10; type B adds the pixel itself (15).
#[test]
fn worked_values_of_both_masks() {
    let x = Tensor::<S3<1, 3, 3>, f64>::from_slice(&Cpu, &[1., 2., 3., 4., 5., 6., 7., 8., 9.])
        .unwrap();
    let expect_a = [0., 1., 2., 3., 10., 10., 9., 22., 19.];
    let expect_b = [1., 3., 5., 7., 15., 16., 16., 30., 28.];
    for (mask, expect) in [(MaskType::A, expect_a), (MaskType::B, expect_b)] {
        let mut l = Masked3::build(&Cpu, &mut crate::rng(0), cfg(mask)).unwrap();
        l.conv.weight.copy_from_slice(&[1.0; 9]).unwrap();
        l.conv
            .bias
            .as_mut()
            .unwrap()
            .copy_from_slice(&[0.5])
            .unwrap();
        let mut y = Tensor::empty(&Cpu).unwrap();
        l.forward(&x, &mut y, &mut l.cache().unwrap()).unwrap();
        let want: Vec<f64> = expect.iter().map(|v| v + 0.5).collect();
        assert_eq!(y.to_vec().unwrap(), want, "mask {mask:?}");
    }
}

/// Weights under the mask do not reach the output, whatever they hold: the
/// layer equals a [`Conv2d`] whose weight is `W ⊙ M`, bit for bit.
#[test]
fn masked_out_weights_are_ignored() {
    for mask in [MaskType::A, MaskType::B] {
        let mut g = crate::rng(5);
        let mut l = Masked::build(&Cpu, &mut g, cfg(mask)).unwrap();
        let w = l.conv.weight.to_vec().unwrap();
        let m = mask.mask(3, 3);
        let masked: Vec<f64> = w
            .iter()
            .enumerate()
            .map(|(i, v)| v * m[i % 9] as f64)
            .collect();
        let junk: Vec<f64> = w
            .iter()
            .enumerate()
            .map(|(i, v)| if m[i % 9] == 1 { *v } else { 100.0 + i as f64 })
            .collect();
        let mut plain = Plain::build(
            &Cpu,
            &mut g,
            Conv2dConfig {
                padding: (1, 1),
                ..Default::default()
            },
        )
        .unwrap();
        plain.weight.copy_from_slice(&masked).unwrap();
        plain
            .bias
            .as_mut()
            .unwrap()
            .assign(l.conv.bias.as_ref().unwrap())
            .unwrap();
        let x = Tensor::<S3<2, 5, 5>, f64>::from_vec(&Cpu, 3, random_input(150, &mut g)).unwrap();
        let (mut y0, mut y1, mut yp) = (
            Tensor::empty(&Cpu).unwrap(),
            Tensor::empty(&Cpu).unwrap(),
            Tensor::empty(&Cpu).unwrap(),
        );
        let mut cache = l.cache().unwrap();
        l.forward(&x, &mut y0, &mut cache).unwrap();
        l.conv.weight.copy_from_slice(&junk).unwrap();
        l.forward(&x, &mut y1, &mut cache).unwrap();
        plain
            .forward(&x, &mut yp, &mut plain.cache().unwrap())
            .unwrap();
        assert_eq!(y0.to_vec().unwrap(), y1.to_vec().unwrap(), "{mask:?}");
        assert_eq!(y0.to_vec().unwrap(), yp.to_vec().unwrap(), "{mask:?}");
        // The gradients: the input's is Conv2d's with W ⊙ M, the weight's is
        // Conv2d's masked, exactly 0 under the mask.
        let dy = Tensor::<S3<3, 5, 5>, f64>::from_vec(&Cpu, 3, random_input(225, &mut g)).unwrap();
        let (mut dx, mut dxp) = (Tensor::empty(&Cpu).unwrap(), Tensor::empty(&Cpu).unwrap());
        let (mut gl, mut gp) = (l.grads().unwrap(), plain.grads().unwrap());
        let mut pc = plain.cache().unwrap();
        plain.forward(&x, &mut yp, &mut pc).unwrap();
        plain
            .backward(
                &x,
                &yp,
                &mut pc,
                &dy,
                Some((&mut dxp, Acc::Set)),
                &mut gp,
                Acc::Set,
            )
            .unwrap();
        l.backward(
            &x,
            &y1,
            &mut cache,
            &dy,
            Some((&mut dx, Acc::Set)),
            &mut gl,
            Acc::Set,
        )
        .unwrap();
        assert_eq!(dx.to_vec().unwrap(), dxp.to_vec().unwrap());
        let (wl, wp) = (gl.weight.to_vec().unwrap(), gp.weight.to_vec().unwrap());
        for (i, (a, b)) in wl.iter().zip(&wp).enumerate() {
            let want = if m[i % 9] == 1 { *b } else { 0.0 };
            assert_eq!(*a, want, "{mask:?} weight gradient {i}");
        }
        assert!(wp
            .iter()
            .enumerate()
            .any(|(i, v)| m[i % 9] == 0 && *v != 0.0));
        assert_eq!(
            gl.bias.unwrap().to_vec().unwrap(),
            gp.bias.unwrap().to_vec().unwrap()
        );
    }
}

#[test]
fn gradients_match_central_differences() {
    for mask in [MaskType::A, MaskType::B] {
        let mut l = Masked::build(&Cpu, &mut crate::rng(2), cfg(mask)).unwrap();
        let err = check_layer(&mut l, 2, 3).unwrap();
        assert!(err < 1e-6, "{mask:?}: {err}");
    }
    // A 5×3 kernel with dilation 2, no bias, not padded to the same size.
    let c = MaskedConv2dConfig {
        mask: MaskType::A,
        padding: (2, 1),
        dilation: (1, 2),
        bias: false,
        ..Default::default()
    };
    let mut l =
        MaskedConv2d::<f64, Cpu, 2, 2, 2, 5, 3, 6, 6, 6, 4>::build(&Cpu, &mut crate::rng(4), c)
            .unwrap();
    let err = check_layer(&mut l, 2, 5).unwrap();
    assert!(err < 1e-6, "{err}");
}

/// `gacc = Add` adds the masked gradient to what the buffer holds.
#[test]
fn weight_gradient_accumulates() {
    let mut g = crate::rng(9);
    let l = Masked::build(&Cpu, &mut g, cfg(MaskType::A)).unwrap();
    let x = Tensor::<S3<2, 5, 5>, f64>::from_vec(&Cpu, 2, random_input(100, &mut g)).unwrap();
    let dy = Tensor::<S3<3, 5, 5>, f64>::from_vec(&Cpu, 2, random_input(150, &mut g)).unwrap();
    let (mut y, mut cache, mut gr) = (
        Tensor::empty(&Cpu).unwrap(),
        l.cache().unwrap(),
        l.grads().unwrap(),
    );
    l.forward(&x, &mut y, &mut cache).unwrap();
    l.backward(&x, &y, &mut cache, &dy, None, &mut gr, Acc::Set)
        .unwrap();
    let once = gr.weight.to_vec().unwrap();
    l.backward(&x, &y, &mut cache, &dy, None, &mut gr, Acc::Add)
        .unwrap();
    let twice = gr.weight.to_vec().unwrap();
    for (a, b) in once.iter().zip(&twice) {
        assert!((2.0 * a - b).abs() <= 1e-12 * a.abs().max(1.0), "{a} {b}");
    }
    assert!(once.iter().any(|v| *v != 0.0));
}

#[test]
fn build_refuses_a_kernel_without_a_centre() {
    let e = MaskedConv2d::<f64, Cpu, 1, 1, 1, 2, 3, 4, 4, 5, 4>::build(
        &Cpu,
        &mut crate::rng(0),
        cfg(MaskType::B),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        e.contains("MaskedConv2d") && e.contains("2×3 has no centre"),
        "{e}"
    );
    // Sizes that disagree with the configuration: Conv2d's check.
    let e = MaskedConv2d::<f64, Cpu, 1, 1, 1, 3, 3, 4, 4, 3, 3>::build(
        &Cpu,
        &mut crate::rng(0),
        cfg(MaskType::B),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("Conv2d"), "{e}");
}

#[test]
fn parameters_carry_pytorch_names() {
    let l = Masked::build(&Cpu, &mut crate::rng(0), cfg(MaskType::B)).unwrap();
    let mut names = Vec::new();
    l.visit(&Path::ROOT, &mut |p, _| names.push(p.to_string()));
    assert_eq!(names, ["weight", "bias"]);
}
