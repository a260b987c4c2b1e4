//! The HTML compression report: how a compressed `.sqz` model compares with
//! its original, as one self-contained page of SVG charts and tables.
//!
//! - [`sizes`] computes per-layer statistics and the model size after each
//!   Deep Compression stage (original, pruned, quantized, Huffman-coded);
//! - [`charts`] draws the SVG charts with plotters;
//! - [`page`] assembles the HTML page from a [`ReportData`];
//! - [`output`] writes the report directory atomically.
//!
//! The CLI command `report` (in `cli::report`) loads the models, evaluates
//! them and calls [`ReportData::new`] (which checks that the two models
//! have the same layers), [`page::render`] and
//! [`output::write_report_dir`].

pub mod charts;
pub mod error;
pub mod output;
pub mod page;
pub mod sizes;

use std::path::{Path, PathBuf};

use formats::sqz::SizeBreakdown;
use formats::{Layer, Model};

pub use error::ReportError;
use sizes::{model_stage_bytes, model_stats, LayerStats, StageBytes};

/// What the page shows about the two models' sizes and weights (their
/// [`Accuracy`] is measured separately, after these checks pass).
#[derive(Debug, Clone)]
pub struct ReportData {
    /// Path of the original model, as given.
    pub original_path: PathBuf,
    /// Path of the compressed `.sqz`, as given.
    pub compressed_path: PathBuf,
    /// Bytes of the original model's files on disk.
    pub original_file_bytes: u64,
    /// Bytes of the `.sqz` file.
    pub compressed_file_bytes: u64,
    /// One entry per layer of the compressed model, in model order.
    pub layers: Vec<LayerReport>,
    /// Whole-model bytes per stage.
    pub stages: StageBytes,
}

/// One layer: its statistics and the weights its histogram shows.
#[derive(Debug, Clone)]
pub struct LayerReport {
    /// Statistics of the compressed layer.
    pub stats: LayerStats,
    /// `[out, in, kh, kw]`.
    pub shape: [usize; 4],
    /// Nonzero weights of the original layer.
    pub original_nonzero: Vec<f32>,
    /// Zero weights of the original layer (left out of the histogram).
    pub original_zeros: usize,
    /// Sorted distinct nonzero values of the compressed layer when it has a
    /// codebook (its shared centroids), else empty.
    pub centroids: Vec<f32>,
}

/// Top-1 / top-5 accuracy of both models and their top-1 agreement, as
/// fractions in 0..1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Accuracy {
    /// Images evaluated.
    pub images: usize,
    /// Original model: (top-1, top-5).
    pub original: (f64, f64),
    /// Compressed model: (top-1, top-5).
    pub compressed: (f64, f64),
    /// Fraction of images where both models predict the same top-1 class.
    pub agreement: f64,
}

/// One of the two models compared: where it came from and its content.
#[derive(Debug, Clone, Copy)]
pub struct ModelSource<'a> {
    /// Path as given on the command line.
    pub path: &'a Path,
    /// The model's (dense) layers.
    pub model: &'a Model,
    /// Bytes of its files on disk.
    pub file_bytes: u64,
}

impl ReportData {
    /// Collect the report's data. `breakdown` is the `.sqz` size breakdown of
    /// the compressed model; every compressed layer must exist in the
    /// original with the same name and shape.
    pub fn new(
        original: ModelSource,
        compressed: ModelSource,
        breakdown: &SizeBreakdown,
    ) -> Result<Self, ReportError> {
        let (original_model, compressed_model) = (original.model, compressed.model);
        if breakdown.layers.len() != compressed_model.layers.len() {
            return Err(ReportError::BreakdownMismatch {
                breakdown: breakdown.layers.len(),
                model: compressed_model.layers.len(),
            });
        }
        let stats = model_stats(&compressed_model.layers, breakdown);
        let file_bytes = usize::try_from(compressed.file_bytes).unwrap_or(usize::MAX);
        let stages = model_stage_bytes(&stats, file_bytes);
        let layers = compressed_model
            .layers
            .iter()
            .zip(stats)
            .map(|(layer, stats)| {
                let source = matching_layer(original_model, layer)?;
                let original_nonzero: Vec<f32> = source
                    .weights
                    .iter()
                    .copied()
                    .filter(|&w| w != 0.0)
                    .collect();
                let centroids = if stats.codebook.is_some() {
                    layer.distinct_nonzero_weights()
                } else {
                    Vec::new()
                };
                Ok(LayerReport {
                    shape: layer.shape,
                    original_zeros: source.weights.len() - original_nonzero.len(),
                    original_nonzero,
                    centroids,
                    stats,
                })
            })
            .collect::<Result<Vec<_>, ReportError>>()?;
        Ok(ReportData {
            original_path: original.path.to_path_buf(),
            compressed_path: compressed.path.to_path_buf(),
            original_file_bytes: original.file_bytes,
            compressed_file_bytes: compressed.file_bytes,
            layers,
            stages,
        })
    }
}

/// The layer of `original` with `layer`'s name, which must have its shape.
fn matching_layer<'a>(original: &'a Model, layer: &Layer) -> Result<&'a Layer, ReportError> {
    let source = original
        .layers
        .iter()
        .find(|l| l.name == layer.name)
        .ok_or_else(|| ReportError::MissingLayer(layer.name.clone()))?;
    if source.shape != layer.shape {
        return Err(ReportError::ShapeMismatch {
            name: layer.name.clone(),
            original: source.shape,
            compressed: layer.shape,
        });
    }
    Ok(source)
}
