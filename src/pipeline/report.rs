//! What a compression did, per layer and in total, as the CLI prints it
//! (the JSON keys are the field names).

use formats::sqz::SizeBreakdown;
use formats::{Layer, Model};
use serde::Serialize;

use super::allocation::{estimated_bytes, CostTable, Plan};
use super::params::{Bits, Sparsity};
use super::quantize::QuantizeSpec;

/// The compressed model against its original.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompressionReport {
    /// Bytes of the `.sqz` file.
    pub file_bytes: usize,
    /// Weights over all layers.
    pub weights: usize,
    /// Nonzero weights left over all layers.
    pub nonzeros: usize,
    /// Fraction of all weights that are zero.
    pub sparsity: f64,
    /// One entry per layer, in model order.
    pub layers: Vec<LayerReport>,
    /// The per-layer settings a target size chose.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<PlanReport>,
    /// Where a sparsity budget placed by damage went.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placement: Option<PlacementReport>,
}

/// One layer of the compressed model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerReport {
    /// Layer name.
    pub name: String,
    /// Weight count.
    pub weights: usize,
    /// Nonzero weights left.
    pub nonzeros: usize,
    /// Fraction of zero weights after compression.
    pub sparsity: f64,
    /// Fraction of zero weights in the original.
    pub sparsity_before: f64,
    /// Codebook index width, when weights were shared.
    pub bits: Option<Bits>,
    /// Distinct nonzero values, when weights were shared.
    pub shared_values: Option<usize>,
    /// Bytes of the layer in the `.sqz` file.
    pub bytes: usize,
}

/// The allocation behind a target-size result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanReport {
    /// The byte budget.
    pub target_bytes: usize,
    /// The file size the plan was estimated at.
    pub estimated_bytes: usize,
    /// Files built until one fitted.
    pub attempts: usize,
    /// The chosen option of each layer.
    pub layers: Vec<PlannedLayer>,
}

/// One layer's chosen option.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedLayer {
    /// Layer name.
    pub name: String,
    /// Sparsity chosen.
    pub sparsity: Sparsity,
    /// Bits chosen.
    pub bits: Option<Bits>,
    /// Estimated bytes of the layer in the file.
    pub estimated_bytes: usize,
    /// Estimated damage: KL divergence in nats.
    pub damage: f64,
}

/// Where a network-wide sparsity went, placed by measured damage
/// ([`super::placement`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlacementReport {
    /// The sparsity of all weights together that was asked for.
    pub target_sparsity: Sparsity,
    /// Calibration images the damage was measured on.
    pub images: usize,
    /// Every layer's share, in layer order.
    pub layers: Vec<PlacedLayer>,
}

/// One layer's sparsity under a placement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlacedLayer {
    /// Layer name.
    pub name: String,
    /// Sparsity placed in the layer.
    pub sparsity: Sparsity,
    /// Its estimated damage: KL divergence in nats, measured with the layer
    /// alone pruned.
    pub damage: f64,
}

impl PlacementReport {
    /// Estimated total damage: the sum of the layers' KL divergences.
    pub fn damage(&self) -> f64 {
        self.layers.iter().map(|l| l.damage).sum()
    }
}

impl PlanReport {
    /// The report of `plan` over `table`.
    pub fn new(table: &CostTable, plan: &Plan, target_bytes: usize, attempts: usize) -> Self {
        let layers = table
            .layers
            .iter()
            .zip(plan)
            .map(|(l, &i)| {
                let o = &l.options[i];
                PlannedLayer {
                    name: l.name.clone(),
                    sparsity: o.sparsity,
                    bits: o.bits,
                    estimated_bytes: o.bytes,
                    damage: o.damage,
                }
            })
            .collect();
        PlanReport {
            target_bytes,
            estimated_bytes: estimated_bytes(table, plan),
            attempts,
            layers,
        }
    }

    /// Estimated total damage: the sum of the layers' KL divergences.
    pub fn damage(&self) -> f64 {
        self.layers.iter().map(|l| l.damage).sum()
    }
}

/// What the report needs of the original model, taken before compression
/// so the original need not be kept: each layer's nonzero weights.
#[derive(Debug, Clone)]
pub struct LayersBefore {
    nonzeros: Vec<usize>,
}

impl LayersBefore {
    /// The counts of `original`.
    pub fn of(original: &Model) -> Self {
        LayersBefore {
            nonzeros: original.layers.iter().map(Layer::nonzeros).collect(),
        }
    }
}

impl CompressionReport {
    /// Compare `model` with its original (`before`); `quantize` is the weight
    /// sharing applied, if any, `breakdown` the `.sqz` file's sizes per
    /// part and `file_bytes` its length.
    pub fn new(
        before: &LayersBefore,
        model: &Model,
        quantize: Option<&QuantizeSpec>,
        (breakdown, file_bytes): (&SizeBreakdown, usize),
        plan: Option<PlanReport>,
    ) -> Self {
        let layers: Vec<LayerReport> = model
            .layers
            .iter()
            .zip(&before.nonzeros)
            .zip(&breakdown.layers)
            .map(|((l, &o), b)| LayerReport {
                name: l.name.clone(),
                weights: l.weight_count(),
                nonzeros: l.nonzeros(),
                sparsity: zero_fraction(l.nonzeros(), l.weight_count()),
                sparsity_before: zero_fraction(o, l.weight_count()),
                bits: quantize.map(|q| q.bits_for(&l.name)),
                shared_values: quantize.map(|_| l.distinct_nonzero_weights().len()),
                bytes: b.total(),
            })
            .collect();
        let weights = layers.iter().map(|r| r.weights).sum();
        let nonzeros = layers.iter().map(|r| r.nonzeros).sum();
        CompressionReport {
            file_bytes,
            weights,
            nonzeros,
            sparsity: zero_fraction(nonzeros, weights),
            layers,
            plan,
            placement: None,
        }
    }
}

/// `1 - nonzeros / weights`, 0 for no weights.
fn zero_fraction(nonzeros: usize, weights: usize) -> f64 {
    1.0 - nonzeros as f64 / weights.max(1) as f64
}
