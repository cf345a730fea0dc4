//! `GemmImpl::GemmCrate` (hidden, for benchmarks) and the optional `gemm`
//! crate behind the `gemm-crate` feature: with the feature, products through
//! the crate match kiln's own; without it, selecting the crate makes
//! `Backend::gemm` fail with an error that names the feature (never a silent
//! fallback to kiln's product).
//!
//! One `#[test]`: the selection is process-wide, so no other test in this
//! binary may run a product meanwhile.

use kiln::cpu::{set_gemm_impl, GemmImpl};
use kiln::prelude::*;

#[test]
fn the_gemm_crate_is_selected_only_with_its_feature() {
    let (m, n, k) = (7, 9, 11);
    let a: Vec<f32> = (0..m * k).map(|i| (i % 13) as f32 * 0.25 - 1.0).collect();
    let b: Vec<f32> = (0..k * n).map(|i| (i % 7) as f32 * 0.5 - 1.5).collect();
    let g = kiln::Gemm::dense(m, n, k, false, false);
    let mut kiln_c = vec![0.0f32; m * n];
    set_gemm_impl(GemmImpl::Kiln);
    Backend::<f32>::gemm(&Cpu, &g, &a, &b, &mut kiln_c).unwrap();

    set_gemm_impl(GemmImpl::GemmCrate);
    let mut crate_c = vec![0.0f32; m * n];
    let r = Backend::<f32>::gemm(&Cpu, &g, &a, &b, &mut crate_c);
    set_gemm_impl(GemmImpl::Kiln);
    if cfg!(feature = "gemm-crate") {
        r.unwrap();
        for (x, y) in crate_c.iter().zip(&kiln_c) {
            assert!((x - y).abs() <= 1e-5 * (1.0 + y.abs()), "{x} vs {y}");
        }
    } else {
        let e = r
            .expect_err("GemmCrate without the feature must be an error")
            .to_string();
        assert!(
            e.contains("gemm-crate"),
            "the error should name the feature: {e}"
        );
    }
}
