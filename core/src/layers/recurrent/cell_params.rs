//! `recurrent_cell_params!`: the [`RecurrentCell`](super::RecurrentCell),
//! [`Module`](crate::module::Module) and
//! [`RecurrentState`](super::RecurrentState) impls every cell with the usual
//! four parameter fields shares (written once here, expanded in `lstm.rs`,
//! `gru.rs`, `rnn.rs` with their own imports in scope).

/// Implements [`RecurrentCell`] and [`Module`] (PyTorch's layer-0 names) for
/// a cell type whose parameters and gradients are the fields `weight_ih`,
/// `weight_hh`, `bias_ih`, `bias_hh` (the last two optional).
macro_rules! recurrent_cell_params {
    (impl[$($g:tt)*] $ty:ty, $grads:ty) => {
        impl<$($g)*> $ty {
            /// [`Module::visit`] with `n` for `W_ih`, `W_hh`, `b_ih`, `b_hh`.
            fn visit_named(
                &self,
                n: [&str; 4],
                path: &Path<'_>,
                f: &mut dyn FnMut(&Path<'_>, ParamRef<'_, E, D>),
            ) {
                f(&path.child(n[0]), ParamRef::of(&self.weight_ih, Role::Param));
                f(&path.child(n[1]), ParamRef::of(&self.weight_hh, Role::Param));
                for (name, p) in [(n[2], &self.bias_ih), (n[3], &self.bias_hh)] {
                    if let Some(t) = p {
                        f(&path.child(name), ParamRef::of(t, Role::Param));
                    }
                }
            }
            /// [`Module::visit_grads`] with `n`.
            fn visit_grads_named(
                &mut self,
                g: &$grads,
                n: [&str; 4],
                path: &Path<'_>,
                f: &mut dyn FnMut(&Path<'_>, ParamMut<'_, E, D>),
            ) {
                f(&path.child(n[0]), ParamMut::of(&mut self.weight_ih, Some(&g.weight_ih)));
                f(&path.child(n[1]), ParamMut::of(&mut self.weight_hh, Some(&g.weight_hh)));
                let pairs = [
                    (n[2], &mut self.bias_ih, &g.bias_ih),
                    (n[3], &mut self.bias_hh, &g.bias_hh),
                ];
                for (name, p, g) in pairs {
                    if let Some(t) = p {
                        f(&path.child(name), ParamMut::of(t, g.as_ref()));
                    }
                }
            }
            /// [`Module::visit_mut`] with `n`.
            #[allow(clippy::type_complexity)] // the visitor's signature, as in `Module`
            fn visit_mut_named(
                &mut self,
                n: [&str; 4],
                path: &Path<'_>,
                f: &mut dyn FnMut(&Path<'_>, ParamMut<'_, E, D>, Role),
            ) {
                f(&path.child(n[0]), ParamMut::of(&mut self.weight_ih, None), Role::Param);
                f(&path.child(n[1]), ParamMut::of(&mut self.weight_hh, None), Role::Param);
                for (name, p) in [(n[2], &mut self.bias_ih), (n[3], &mut self.bias_hh)] {
                    if let Some(t) = p {
                        f(&path.child(name), ParamMut::of(t, None), Role::Param);
                    }
                }
            }
        }

        impl<$($g)*> $crate::layers::recurrent::RecurrentCell<E, D> for $ty
        where
            $ty: $crate::module::Layer<E, D, Grads = $grads, Cache: $crate::layers::recurrent::CellCache<E, D>>
                + $crate::module::Build<E, D>,
        {
            fn device(&self) -> &D {
                self.weight_ih.device()
            }
            fn visit_as(
                &self,
                n: [&str; 4],
                path: &Path<'_>,
                f: &mut dyn FnMut(&Path<'_>, ParamRef<'_, E, D>),
            ) {
                self.visit_named(n, path, f)
            }
            fn visit_grads_as(
                &mut self,
                g: &$grads,
                n: [&str; 4],
                path: &Path<'_>,
                f: &mut dyn FnMut(&Path<'_>, ParamMut<'_, E, D>),
            ) {
                self.visit_grads_named(g, n, path, f)
            }
            fn visit_mut_as(
                &mut self,
                n: [&str; 4],
                path: &Path<'_>,
                f: &mut dyn FnMut(&Path<'_>, ParamMut<'_, E, D>, Role),
            ) {
                self.visit_mut_named(n, path, f)
            }
        }

        impl<$($g)*> $crate::layers::recurrent::RecurrentState<E, D> for $ty
        where
            $ty: $crate::module::Layer<E, D, Grads = $grads, Cache: $crate::layers::recurrent::CellCache<E, D>>,
        {
            fn state_shape() -> Vec<usize> {
                $crate::layers::recurrent::cell_layout::<E, D, Self>().shape()
            }
            fn forward_from<S: $crate::shape::Shape>(
                &self,
                x: &Tensor<<Self as Layer<E, D>>::In, E, D>,
                state: Option<&Tensor<S, E, D>>,
                y: &mut Tensor<<Self as Layer<E, D>>::Out, E, D>,
                cache: &mut <Self as Layer<E, D>>::Cache,
            ) -> Result<()> {
                $crate::layers::recurrent::cell_forward_from::<E, D, Self, S>(x, state, cache, |c| {
                    Layer::forward(self, x, y, c)
                })
            }
            fn forward_train_from<S: $crate::shape::Shape>(
                &mut self,
                x: &Tensor<<Self as Layer<E, D>>::In, E, D>,
                state: Option<&Tensor<S, E, D>>,
                y: &mut Tensor<<Self as Layer<E, D>>::Out, E, D>,
                cache: &mut <Self as Layer<E, D>>::Cache,
                ctx: &mut TrainCtx,
            ) -> Result<()> {
                $crate::layers::recurrent::cell_forward_from::<E, D, Self, S>(x, state, cache, |c| {
                    Layer::forward_train(self, x, y, c, ctx)
                })
            }
            fn backward_from<S: $crate::shape::Shape>(
                &self,
                x: &Tensor<<Self as Layer<E, D>>::In, E, D>,
                y: &Tensor<<Self as Layer<E, D>>::Out, E, D>,
                cache: &mut <Self as Layer<E, D>>::Cache,
                dy: &Tensor<<Self as Layer<E, D>>::Out, E, D>,
                dx: Option<(&mut Tensor<<Self as Layer<E, D>>::In, E, D>, Acc)>,
                dstate: Option<(&mut Tensor<S, E, D>, Acc)>,
                grads: &mut $grads,
                gacc: Acc,
            ) -> Result<()> {
                Layer::backward(self, x, y, cache, dy, dx, grads, gacc)?;
                $crate::layers::recurrent::cell_state_grad::<E, D, Self, S>(cache, dstate, x.batch())
            }
            fn final_state<S: $crate::shape::Shape>(
                &self,
                y: &Tensor<<Self as Layer<E, D>>::Out, E, D>,
                cache: &<Self as Layer<E, D>>::Cache,
                out: &mut Tensor<S, E, D>,
            ) -> Result<()> {
                $crate::layers::recurrent::cell_final_state::<E, D, Self, S>(y, cache, out)
            }
            fn final_state_backward<S: $crate::shape::Shape>(
                &self,
                cache: &mut <Self as Layer<E, D>>::Cache,
                d: &Tensor<S, E, D>,
            ) -> Result<()> {
                $crate::layers::recurrent::cell_final_state_backward::<E, D, Self, S>(cache, d)
            }
        }
    };
}
pub(crate) use recurrent_cell_params;
