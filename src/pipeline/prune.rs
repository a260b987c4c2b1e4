//! Magnitude pruning of a whole [`Model`], with per-layer overrides: the
//! smallest weights of each layer become `0.0`. The numerical work is
//! [`compress::prune`]'s.

use compress::prune::{global_threshold, prune_layer};
use formats::Model;
use rayon::prelude::*;

use super::params::{LayerOverrides, Sparsity};

/// How to prune: a target sparsity, either per layer or as one global
/// magnitude threshold, with overrides.
#[derive(Debug, Clone)]
pub struct PruneSpec {
    /// Target fraction of zero weights.
    pub sparsity: Sparsity,
    /// One magnitude threshold over all layers without an override, so that
    /// their weights together reach `sparsity` (layers lose different shares).
    pub global: bool,
    /// Layers pruned to their own sparsity instead.
    pub per_layer: LayerOverrides<Sparsity>,
}

/// Prune `model` in place to the targets of [`layer_sparsity_targets`].
/// Existing zeros stay zero, so pruning an already sparse model only
/// removes more.
pub fn prune_model(model: &mut Model, spec: &PruneSpec) {
    let targets = layer_sparsity_targets(model, spec);
    model.layers.par_iter_mut().for_each(|layer| {
        prune_layer(&mut layer.weights, targets[&layer.name]);
    });
}

/// The sparsity each layer must reach under `spec`: its override, else the
/// common target, or with `global` the share of its weights that falls under
/// the one magnitude threshold that brings all non-overridden layers
/// together to the target.
pub fn layer_sparsity_targets(model: &Model, spec: &PruneSpec) -> LayerOverrides<f64> {
    let shared: Vec<&[f32]> = model
        .layers
        .iter()
        .filter(|l| !spec.per_layer.contains_key(&l.name))
        .map(|l| l.weights.as_slice())
        .collect();
    let threshold = spec
        .global
        .then(|| global_threshold(&shared, spec.sparsity.get()));
    model
        .layers
        .iter()
        .map(|l| {
            let target = match (spec.per_layer.get(&l.name), threshold) {
                (Some(s), _) => s.get(),
                (None, Some(t)) => {
                    l.weights.iter().filter(|w| w.abs() <= t).count() as f64
                        / l.weights.len() as f64
                }
                (None, None) => spec.sparsity.get(),
            };
            (l.name.clone(), target)
        })
        .collect()
}
