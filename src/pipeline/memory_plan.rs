//! How much memory a calibrated run will take, estimated from the model's
//! shapes before any work, so that a run that cannot fit is refused at once
//! with a one-line error (and the largest image count that fits) instead
//! of failing minutes later.
//!
//! The estimate adds what the run holds at its peak:
//!
//! - **weights**: the original model, the compressed copy built layer by
//!   layer, and the engine's packed copy (3 × the fp32 weights); sensitivity
//!   analysis also clones the network's tail per trial thread;
//! - **Hessians** ([`LayerHessian::bytes`]): the largest layer's, once as
//!   the total and once per thread as partial sums, plus the dense
//!   factorisations of its largest block; sensitivity analysis keeps every
//!   layer's at once;
//! - **activations**, per calibration image: the image, and the largest
//!   node's inputs and output (calibrated compression runs the whole batch
//!   through one node at a time); sensitivity analysis also keeps every
//!   blob a trial may start from, counted here as every node's output;
//! - **pairs** with the original network, when calibration matches its
//!   output: that network's pass (its activations, counted as above; the
//!   two passes take turns, but each keeps its blobs between turns), and
//!   the pair moments of the largest layer (cross products the size of
//!   its Hessians, in total and per thread).
//!
//! It is an estimate, not a bound: the allocator, the imaging buffers and
//! the progress of other threads add to it.

use formats::{Model, Op};

use super::error::PipelineError;
use super::layer_hessian::LayerHessian;
use crate::engine::infer_shapes;

/// Dense `f64` matrices of one Hessian block alive at once while it is
/// factorised (the full symmetric copy, the dampened matrix, its inverse,
/// Cholesky factors).
const FACTORISATION_COPIES: usize = 5;

/// The memory a calibrated run needs: a fixed part and a part per image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryNeed {
    /// Weights and their copies.
    pub weights: u64,
    /// Hessians and their factorisations.
    pub hessians: u64,
    /// Activations per calibration image.
    pub per_image: u64,
    /// The original network's pass, when calibration matches its output.
    pub pairs: PairNeed,
}

/// What matching the original network's output adds: its pass over the
/// calibration images, and the pair moments (all zero when not matching).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PairNeed {
    /// Pair moments of the largest layer, in total and per thread.
    pub moments: u64,
    /// Activations of the original network's pass, per image.
    pub per_image: u64,
}

impl MemoryNeed {
    /// Calibrated compression of `model` (one layer at a time), matching
    /// the original network's output or not.
    pub fn compression(
        model: &Model,
        max_block: usize,
        match_original: bool,
    ) -> Result<Self, PipelineError> {
        let sizes = Sizes::of(model, max_block)?;
        let threads = rayon::current_num_threads() as u64;
        let hessians = (1 + threads) * sizes.largest_hessian;
        let per_image = sizes.image + sizes.largest_node;
        let pairs = if match_original {
            PairNeed {
                moments: hessians,
                per_image,
            }
        } else {
            PairNeed::default()
        };
        Ok(MemoryNeed {
            weights: 3 * sizes.weights,
            hessians: hessians + sizes.factorisation,
            per_image,
            pairs,
        })
    }

    /// Sensitivity analysis of `model` (every layer's Hessian at once,
    /// activations saved for the trials, a network tail per thread).
    pub fn sensitivity(model: &Model, max_block: usize) -> Result<Self, PipelineError> {
        let sizes = Sizes::of(model, max_block)?;
        let threads = rayon::current_num_threads() as u64;
        Ok(MemoryNeed {
            weights: (2 + 2 * threads) * sizes.weights,
            hessians: sizes.all_hessians + threads * sizes.factorisation,
            per_image: sizes.image + sizes.largest_node + sizes.all_outputs,
            pairs: PairNeed::default(),
        })
    }

    /// Bytes for `images` calibration images.
    pub fn total(&self, images: usize) -> u64 {
        self.weights
            .saturating_add(self.hessians)
            .saturating_add(self.per_image.saturating_mul(images as u64))
            .saturating_add(self.pair_bytes(images))
    }

    /// Bytes of the original network's pass for `images` calibration
    /// images.
    fn pair_bytes(&self, images: usize) -> u64 {
        match self.pairs.per_image.saturating_mul(images as u64) {
            0 => 0,
            activations => self.pairs.moments.saturating_add(activations),
        }
    }

    /// Refuse the run if `images` need more than `available` bytes, naming
    /// the largest image count that fits (if any does).
    pub fn check(&self, what: &str, images: usize, available: u64) -> Result<(), PipelineError> {
        let needed = self.total(images);
        if needed <= available {
            return Ok(());
        }
        // `total` grows with the image count: the largest count that fits
        // is found by bisection.
        let (mut fits, mut over) = (0, images);
        while over - fits > 1 {
            let mid = fits + (over - fits) / 2;
            if self.total(mid) <= available {
                fits = mid;
            } else {
                over = mid;
            }
        }
        let advice = match fits {
            0 => "even one image does not fit: use a smaller --hessian-block or a machine with more memory".to_string(),
            n => format!("use at most {n} calibration images"),
        };
        let pairs = match self.pair_bytes(images) {
            0 => String::new(),
            bytes => format!(", original network's pass {}", gigabytes(bytes)),
        };
        Err(PipelineError::Memory(format!(
            "{what} on {images} images needs about {} (weights and copies {}, Hessians {}, activations {}{pairs}) but {} are available; {advice}",
            gigabytes(needed),
            gigabytes(self.weights),
            gigabytes(self.hessians),
            gigabytes(self.per_image.saturating_mul(images as u64)),
            gigabytes(available),
        )))
    }
}

/// `bytes` as gigabytes with one decimal (e.g. `1.1 GB`).
fn gigabytes(bytes: u64) -> String {
    format!("{:.1} GB", bytes as f64 / 1e9)
}

/// The sizes of a model the estimates are made of, in bytes.
struct Sizes {
    weights: u64,
    largest_hessian: u64,
    all_hessians: u64,
    factorisation: u64,
    image: u64,
    largest_node: u64,
    all_outputs: u64,
}

impl Sizes {
    fn of(model: &Model, max_block: usize) -> Result<Self, PipelineError> {
        let weights = model
            .layers
            .iter()
            .map(|l| 4 * (l.weights.len() + l.bias.len()) as u64)
            .sum();
        let mut hessians = vec![0u64; model.layers.len()];
        let mut widest_block = 0usize;
        for node in &model.graph.nodes {
            if let Op::Conv(conv) = &node.op {
                let layer = &model.layers[conv.layer];
                let bytes = LayerHessian::bytes(layer, conv.groups, max_block)
                    .map_err(PipelineError::layer(&layer.name))?;
                hessians[conv.layer] = bytes as u64;
                let [_, inputs, kh, kw] = layer.shape;
                widest_block = widest_block.max((inputs * kh * kw).min(max_block));
            }
        }
        let crop = model.preprocess.crop as usize;
        let input = [1, 3, crop, crop];
        let shapes = infer_shapes(model, input)?;
        let elements = |s: &[usize; 4]| 4 * s.iter().product::<usize>() as u64;
        let mut blobs = std::collections::HashMap::from([(model.graph.input.as_str(), input)]);
        let mut largest_node = 0;
        for (node, shape) in model.graph.nodes.iter().zip(&shapes.nodes) {
            let inputs: u64 = node
                .inputs
                .iter()
                .filter_map(|b| blobs.get(b.as_str()))
                .map(elements)
                .sum();
            largest_node = largest_node.max(inputs + elements(shape));
            for output in &node.outputs {
                blobs.insert(output.as_str(), *shape);
            }
        }
        Ok(Sizes {
            weights,
            largest_hessian: hessians.iter().copied().max().unwrap_or(0),
            all_hessians: hessians.iter().sum(),
            factorisation: (FACTORISATION_COPIES * 8 * widest_block * widest_block) as u64,
            image: elements(&input),
            largest_node,
            all_outputs: shapes.nodes.iter().map(elements).sum(),
        })
    }
}

/// Memory the system can give now (`MemAvailable` of `/proc/meminfo`), or
/// `None` where that is not known.
pub fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The largest image count that fits counts the original network's
    /// pass, and the message names that pass.
    #[test]
    fn advice_counts_the_original_pass() {
        let need = MemoryNeed {
            weights: 100,
            hessians: 0,
            per_image: 10,
            pairs: PairNeed {
                moments: 50,
                per_image: 5,
            },
        };
        assert_eq!(need.total(0), 100);
        assert_eq!(need.total(2), 100 + 20 + 50 + 10);
        assert_eq!(need.total(10), 100 + 100 + 50 + 50);
        assert!(need.check("run", 10, 300).is_ok());
        let error = need.check("run", 20, 300).unwrap_err().to_string();
        assert!(
            error.contains("use at most 10 calibration images"),
            "{error}"
        );
        assert!(error.contains("original network's pass"), "{error}");
        let error = need.check("run", 20, 150).unwrap_err().to_string();
        assert!(error.contains("even one image does not fit"), "{error}");
    }
}
