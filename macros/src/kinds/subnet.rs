//! A network from another `network!` invocation, written with its output
//! shape: `block: Residual -> [64, 8, 8]`. Chosen by the `-> [..]`, not by a
//! name (it is not in the registry). Its shapes are invisible to this
//! macro, so the compiler checks the wiring: [`Rule::items`] emits one
//! small function per use whose body only type-checks if the nested
//! network's `In`/`Out` are the shapes wired around it.

use super::{Call, Rule, ShapeIn};
use crate::diag::{dims, Diag};
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

    /// The nested network's own count, read from its non-generic instance
    /// (`<Block>::PARAMS`, i.e. `Block<f32, Cpu>`'s, the same for every
    /// element type and device): `<Block<E, D>>::PARAMS` would need the
    /// nested network's per-layer bounds, which this network's `where`
    /// clause does not state.
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

    /// One shape check per use, at the layer, that says which side is wrong
    /// and names both shapes: the nested network's `In` must be the shape
    /// that feeds it and its `Out` the declared `-> [..]`. Each comparison is
    /// a trait bound whose `on_unimplemented` message this macro writes, and
    /// the traits live in the generated code, so no note points into kiln's
    /// sources. No `where` clause is stated on the nested network (under one,
    /// rustc would no longer see its `In`/`Out` through its impl); its device
    /// has every kernel family (`Kernels<E>`), which proves the nested
    /// network's own per-layer bounds; the function is never called, so this
    /// asks nothing of the user's device.
    fn items(&self, c: &Call) -> TokenStream {
        let Call {
            k,
            ty,
            si,
            so,
            field,
            input,
            out,
            ..
        } = c;
        let name = self
            .path
            .segments
            .last()
            .map(|s| s.ident.to_string())
            .unwrap_or_default();
        let in_msg = format!(
            "`{field}: {name}` is fed {} (`{}`), but the network `{name}` takes `{{Self}}`",
            dims(input),
            shape_ty_text(input)
        );
        let out_msg = format!(
            "`{field}: {name} -> {}` declares the output `{}`, but the network `{name}` gives `{{Self}}`",
            dims(out),
            shape_ty_text(out)
        );
        quote! {
            const _: () = {
                #[diagnostic::on_unimplemented(
                    message = #in_msg,
                    label = "the input wired here is not what this network takes"
                )]
                trait __KilnNestedInput<Given> {}
                impl<S> __KilnNestedInput<S> for S {}
                #[diagnostic::on_unimplemented(
                    message = #out_msg,
                    label = "the declared output is not what this network gives"
                )]
                trait __KilnNestedOutput<Declared> {}
                impl<S> __KilnNestedOutput<S> for S {}
                fn __kiln_input<Takes: __KilnNestedInput<Given>, Given>() {}
                fn __kiln_output<Gives: __KilnNestedOutput<Declared>, Declared>() {}
                #[allow(dead_code, clippy::all)]
                fn __kiln_shape_check<E: #k::Elem, D: #k::Kernels<E>>() {
                    __kiln_input::<<#ty as #k::Layer<E, D>>::In, #si>();
                    __kiln_output::<<#ty as #k::Layer<E, D>>::Out, #so>();
                }
            };
        }
    }
}

/// `S1<64>`, `S3<16, 8, 8>`: how rustc prints the shape type of `d`.
fn shape_ty_text(d: &[usize]) -> String {
    let list = d
        .iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    format!("S{}<{list}>", d.len())
}
