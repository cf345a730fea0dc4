//! A network from another `network!` invocation, written with its output
//! shape: `block: Residual -> [64, 8, 8]`. Chosen by the `-> [..]`, not by a
//! name (it is not in the registry). Its shapes are invisible to this
//! macro, so the compiler checks the wiring: [`Rule::items`] emits one
//! small function per use whose body only type-checks if the nested
//! network's `In`/`Out` are the shapes wired around it.

use super::{Call, Rule, ShapeIn};
use crate::diag::Diag;
use crate::parse::Spec;
use proc_macro2::TokenStream;
use quote::quote;

struct Subnet {
    path: syn::Path,
    /// The declared output shape.
    out: Vec<usize>,
}

/// Reads `Path -> [dims]`.
pub fn parse(spec: &Spec, diag: &mut Diag) -> Option<Box<dyn Rule>> {
    if spec.args.is_some() {
        diag.error_range(spec.range(), format!("`{}` is used as a network from another `network!`; such a layer takes no arguments", spec.ident()));
        return None;
    }
    Some(Box::new(Subnet {
        path: spec.path.clone(),
        out: spec.out.as_ref()?.values(),
    }))
}

impl Rule for Subnet {
    fn symbolic(&self) -> bool {
        true
    }

    fn is_field(&self) -> bool {
        true
    }

    /// Rule: the declared output (checked by the compiler, see above).
    fn out_shape(&self, _s: &ShapeIn) -> Result<Vec<usize>, String> {
        Ok(self.out.clone())
    }

    fn ty(&self, _k: &TokenStream, _input: &[usize], _out: &[usize]) -> TokenStream {
        let path = &self.path;
        quote!(#path<E, D>)
    }

    /// The nested network's count at its default types (`<Block>::PARAMS` is
    /// `Block<f32, Cpu>`'s; the count does not depend on them), so the
    /// outer constant needs no bound on its own `D`.
    fn params(&self, _input: &[usize], _out: &[usize], _ty: &TokenStream) -> TokenStream {
        let path = &self.path;
        quote!(<#path>::PARAMS)
    }

    /// The nested network's own shapes must stay unnamed here: the calls go
    /// through `ops::subnet`, which sees the tensors as its types.
    fn bounds(&self, c: &Call) -> TokenStream {
        let k = c.k;
        quote!(#k::Layer<E, D>)
    }

    fn forward(&self, c: &Call, train: bool) -> TokenStream {
        let Call {
            k,
            ty,
            si,
            so,
            inst,
            x,
            y,
            cache,
            ..
        } = c;
        if train {
            quote!(#k::ops::subnet::forward_train::<#ty, #si, #so, E, D>(#inst, #x, &mut #y, &mut #cache, ctx)?;)
        } else {
            quote!(#k::ops::subnet::forward::<#ty, #si, #so, E, D>(#inst, #x, &mut #y, &mut #cache)?;)
        }
    }

    fn backward(&self, c: &Call) -> TokenStream {
        let Call {
            k,
            ty,
            si,
            so,
            inst,
            x,
            y,
            cache,
            dy,
            dx,
            grads,
            gacc,
            ..
        } = c;
        quote!(#k::ops::subnet::backward::<#ty, #si, #so, E, D>(#inst, #x, &#y, &mut #cache, #dy, #dx, #grads, #gacc)?;)
    }

    /// One shape check per use: E0308 at the layer, naming both shapes, if
    /// the wiring is wrong. It states no `where` clause on the nested
    /// network: under one, rustc would no longer see the network's `In` and
    /// `Out` through its impl, and the check could not compare them. Instead
    /// its device has every kernel family (`Kernels<E>`), which proves the
    /// nested network's own per-layer bounds whatever its layers are; the
    /// function is never called, so this asks nothing of the user's device.
    fn items(&self, c: &Call) -> TokenStream {
        let Call { k, ty, si, so, .. } = c;
        quote! {
            const _: () = {
                #[allow(dead_code, clippy::all)]
                fn __kiln_shape_check<E: #k::Elem, D: #k::Kernels<E>>(
                    l: &#ty,
                    x: &#k::Tensor<#si, E, D>,
                    y: &mut #k::Tensor<#so, E, D>,
                    c: &mut <#ty as #k::Layer<E, D>>::Cache,
                ) -> #k::Result<()> {
                    #k::Layer::<E, D>::forward(l, x, y, c)
                }
            };
        }
    }
}
