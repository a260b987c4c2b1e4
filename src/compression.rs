//! The lossy stages of Deep Compression applied to a whole [`Model`]:
//! magnitude pruning and k-means weight sharing, with per-layer overrides.
//!
//! Both rewrite the model's dense weights in place (a pruned weight becomes
//! `0.0`, a shared weight becomes its centroid), so the result can be
//! evaluated directly by the engine and is then stored losslessly by
//! [`crate::container`]. The numerical work is the `compress` crate's.

use std::collections::BTreeMap;

use compress::kmeans::{kmeans_1d, Init};
use compress::prune::{global_threshold, prune_layer};
use formats::Model;
use half::f16;
use rayon::prelude::*;

/// Per-layer values given as `name=value` pairs, e.g. `conv1=0,conv10=0.8`.
pub type LayerOverrides<T> = BTreeMap<String, T>;

/// Parse `name=value[,name=value...]` into overrides. Every name must be a
/// layer of `model`; the error lists the valid names otherwise.
pub fn parse_overrides<T: std::str::FromStr>(
    model: &Model,
    text: &str,
) -> anyhow::Result<LayerOverrides<T>> {
    let mut out = BTreeMap::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, value) = item.split_once('=').ok_or_else(|| {
            anyhow::anyhow!("per-layer option '{item}' is not of the form name=value")
        })?;
        if model.layer_index(name).is_none() {
            let names: Vec<&str> = model.layers.iter().map(|l| l.name.as_str()).collect();
            anyhow::bail!("unknown layer '{name}' (layers: {})", names.join(", "));
        }
        let value = value
            .parse()
            .map_err(|_| anyhow::anyhow!("bad value '{value}' for layer '{name}'"))?;
        out.insert(name.to_string(), value);
    }
    Ok(out)
}

/// How to prune: a target sparsity (fraction of weights that are zero),
/// either per layer or as one global magnitude threshold, with overrides.
#[derive(Debug, Clone)]
pub struct PruneSpec {
    /// Target fraction of zero weights, in `[0, 1)`.
    pub sparsity: f64,
    /// One magnitude threshold over all layers without an override, so that
    /// their weights together reach `sparsity` (layers lose different shares).
    pub global: bool,
    /// Layers pruned to their own sparsity instead.
    pub per_layer: LayerOverrides<f64>,
}

/// Sparsity of one layer before and after pruning.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerPruneReport {
    pub name: String,
    pub weights: usize,
    pub zeros_before: usize,
    pub zeros_after: usize,
}

/// Prune `model` in place. Existing zeros stay zero, so pruning an already
/// sparse model only removes more.
pub fn prune_model(model: &mut Model, spec: &PruneSpec) -> anyhow::Result<Vec<LayerPruneReport>> {
    let targets = layer_sparsity_targets(model, spec)?;
    let reports = model
        .layers
        .par_iter_mut()
        .map(|layer| {
            let zeros_before = layer.weight_count() - layer.nonzeros();
            let stats = prune_layer(&mut layer.weights, targets[&layer.name]);
            LayerPruneReport {
                name: layer.name.clone(),
                weights: stats.total,
                zeros_before,
                zeros_after: stats.zeros,
            }
        })
        .collect();
    Ok(reports)
}

/// The sparsity each layer must reach under `spec`: its override, else the
/// common target, or with `global` the share of its weights that falls under
/// the one magnitude threshold that brings all non-overridden layers
/// together to the target.
pub fn layer_sparsity_targets(
    model: &Model,
    spec: &PruneSpec,
) -> anyhow::Result<LayerOverrides<f64>> {
    for s in std::iter::once(&spec.sparsity).chain(spec.per_layer.values()) {
        anyhow::ensure!((0.0..1.0).contains(s), "sparsity {s} is outside [0, 1)");
    }
    let shared: Vec<&[f32]> = model
        .layers
        .iter()
        .filter(|l| !spec.per_layer.contains_key(&l.name))
        .map(|l| l.weights.as_slice())
        .collect();
    let threshold = spec
        .global
        .then(|| global_threshold(&shared, spec.sparsity));
    Ok(model
        .layers
        .iter()
        .map(|l| {
            let target = match (spec.per_layer.get(&l.name), threshold) {
                (Some(s), _) => *s,
                (None, Some(t)) => {
                    l.weights.iter().filter(|w| w.abs() <= t).count() as f64
                        / l.weights.len() as f64
                }
                (None, None) => spec.sparsity,
            };
            (l.name.clone(), target)
        })
        .collect())
}

/// How to share weights: bits per layer, centroid initialisation, float16.
#[derive(Debug, Clone)]
pub struct QuantizeSpec {
    /// Codebook index width: a layer gets `2^bits` shared values, or
    /// `2^bits - 1` plus the pruned zero when it is sparse.
    pub bits: u8,
    /// Layers with their own width.
    pub per_layer: LayerOverrides<u8>,
    pub init: Init,
    /// Lloyd iterations at most.
    pub max_iter: usize,
    /// Round shared values to float16 so codebooks are stored at half size.
    pub half: bool,
}

/// Outcome of weight sharing for one layer.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerQuantizeReport {
    pub name: String,
    pub bits: u8,
    /// Shared nonzero values after clustering.
    pub clusters: usize,
}

/// Replace every layer's weights by the nearest of its k-means shared
/// values, in place. Zeros (pruned weights) stay out of the clustering and
/// stay zero.
pub fn quantize_model(
    model: &mut Model,
    spec: &QuantizeSpec,
) -> anyhow::Result<Vec<LayerQuantizeReport>> {
    spec.check()?;
    let reports = model
        .layers
        .par_iter_mut()
        .map(|layer| {
            let bits = spec.bits_for(&layer.name);
            let codebook = shared_values(&layer.weights, bits, spec);
            assign_nearest(&mut layer.weights, &codebook);
            if spec.half {
                round_biases_half(layer);
            }
            LayerQuantizeReport {
                name: layer.name.clone(),
                bits,
                clusters: codebook.len(),
            }
        })
        .collect();
    Ok(reports)
}

impl QuantizeSpec {
    /// Check the bit widths.
    pub fn check(&self) -> anyhow::Result<()> {
        for b in std::iter::once(&self.bits).chain(self.per_layer.values()) {
            anyhow::ensure!((1..=16).contains(b), "bits {b} is outside 1..=16");
        }
        Ok(())
    }

    /// Bits of the layer called `name`.
    pub fn bits_for(&self, name: &str) -> u8 {
        self.per_layer.get(name).copied().unwrap_or(self.bits)
    }
}

/// The shared nonzero values of a layer: k-means over its nonzero weights
/// with `2^bits` clusters, or `2^bits - 1` when the layer is sparse (the
/// pruned zero takes the last code). Ascending, without zero, rounded to
/// float16 when the spec asks.
pub fn shared_values(weights: &[f32], bits: u8, spec: &QuantizeSpec) -> Vec<f32> {
    let nonzero: Vec<f32> = weights.iter().copied().filter(|w| *w != 0.0).collect();
    let sparse = nonzero.len() < weights.len();
    let k = ((1usize << bits) - usize::from(sparse)).max(1);
    let mut codebook = kmeans_1d(&nonzero, k, spec.init, spec.max_iter).centroids;
    if spec.half {
        codebook.iter_mut().for_each(|c| *c = round_half(*c));
    }
    codebook.dedup();
    codebook.retain(|c| *c != 0.0);
    codebook
}

/// Set every nonzero weight to the nearest value of the ascending
/// `codebook` (ties to the lower value); zeros stay zero.
pub fn assign_nearest(weights: &mut [f32], codebook: &[f32]) {
    if codebook.is_empty() {
        return;
    }
    for w in weights.iter_mut().filter(|w| **w != 0.0) {
        let i = codebook.partition_point(|c| c < w);
        *w = match (i.checked_sub(1).map(|j| codebook[j]), codebook.get(i)) {
            (Some(lo), Some(&hi)) => {
                if *w - lo <= hi - *w {
                    lo
                } else {
                    hi
                }
            }
            (Some(lo), None) => lo,
            (None, Some(&hi)) => hi,
            (None, None) => unreachable!("codebook is not empty"),
        };
    }
}

/// Round every weight and bias of `model` to the nearest float16 value, so
/// the container stores them at half size (used without quantization).
pub fn round_model_half(model: &mut Model) {
    model.layers.par_iter_mut().for_each(|layer| {
        layer.weights.iter_mut().for_each(|w| *w = round_half(*w));
        round_biases_half(layer);
    });
}

fn round_biases_half(layer: &mut formats::Layer) {
    layer.bias.iter_mut().for_each(|b| *b = round_half(*b));
}

/// The nearest float16 value of `x`, as float32.
pub fn round_half(x: f32) -> f32 {
    f16::from_f32(x).to_f32()
}
