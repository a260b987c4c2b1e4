//! Command-line options shared by the compression commands (`prune`,
//! `quantize`, `compress`), turned into the library's specs.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::ValueEnum;
use compress::calib::{GptqOptions, ReconstructOptions};
use compress::kmeans::Init;
use formats::Model;
use indicatif::{ProgressBar, ProgressStyle};

use crate::calibration::{calibration_files, compress_calibrated, CalibrationSpec, DEFAULT_CALIB_COUNT};
use crate::compression::{parse_overrides, PruneSpec, QuantizeSpec};
use crate::imaging::load_batch;

/// Pruning options.
#[derive(Debug, Clone, clap::Args)]
pub struct PruneArgs {
    /// Target fraction of zero weights, e.g. 0.7.
    #[arg(long, value_name = "S")]
    pub sparsity: f64,
    /// Use one magnitude threshold over all layers instead of pruning each
    /// layer to the same sparsity.
    #[arg(long)]
    pub global: bool,
    /// Per-layer sparsity overrides, e.g. `conv1=0,conv10=0.5`.
    #[arg(long, value_name = "NAME=S,...", default_value = "")]
    pub layer_sparsity: String,
}

impl PruneArgs {
    /// The pruning spec for `model` (layer names are checked against it).
    pub fn spec(&self, model: &Model) -> anyhow::Result<PruneSpec> {
        Ok(PruneSpec {
            sparsity: self.sparsity,
            global: self.global,
            per_layer: parse_overrides(model, &self.layer_sparsity)?,
        })
    }
}

/// Centroid initialisation of k-means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InitArg {
    /// Evenly spaced over [min, max] (the paper's default).
    Linear,
    /// Quantiles of the weight distribution.
    Density,
    /// k-means++ seeded with `--seed`.
    #[value(name = "kmeans++")]
    KmeansPlusPlus,
}

/// Weight-sharing options.
#[derive(Debug, Clone, clap::Args)]
pub struct QuantizeArgs {
    /// Bits per codebook index: 2^B shared values per layer (2^B - 1 plus
    /// the pruned zero in sparse layers).
    #[arg(long, value_name = "B")]
    pub bits: u8,
    /// Per-layer bit overrides, e.g. `conv1=8`.
    #[arg(long, value_name = "NAME=B,...", default_value = "")]
    pub layer_bits: String,
    /// Centroid initialisation.
    #[arg(long, value_enum, default_value = "linear")]
    pub init: InitArg,
    /// Seed for `--init kmeans++`.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Maximum k-means iterations per layer.
    #[arg(long, default_value_t = 300)]
    pub max_iter: usize,
}

impl QuantizeArgs {
    /// The weight-sharing spec for `model`.
    pub fn spec(&self, model: &Model, half: bool) -> anyhow::Result<QuantizeSpec> {
        let init = match self.init {
            InitArg::Linear => Init::Linear,
            InitArg::Density => Init::Density,
            InitArg::KmeansPlusPlus => Init::KMeansPlusPlus { seed: self.seed },
        };
        Ok(QuantizeSpec {
            bits: self.bits,
            per_layer: parse_overrides(model, &self.layer_bits)?,
            init,
            max_iter: self.max_iter,
            half,
        })
    }
}

/// Where and how the result is written.
#[derive(Debug, Clone, clap::Args)]
pub struct OutputArgs {
    /// Output `.sqz` file.
    #[arg(short, long, value_name = "OUT")]
    pub output: PathBuf,
    /// Store codebooks, biases and unshared weights as float16.
    #[arg(long)]
    pub half: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Calibration options: recover accuracy from unlabeled images.
#[derive(Debug, Clone, clap::Args)]
pub struct CalibArgs {
    /// Folder of calibration images (JPEG/PNG, labels not needed). Each
    /// layer is then pruned and quantized to minimise its output error on
    /// them, on the activations of the already compressed layers.
    #[arg(long, value_name = "DIR")]
    pub calib: Option<PathBuf>,
    /// Number of calibration images, picked deterministically from DIR.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_CALIB_COUNT)]
    pub calib_count: usize,
    /// Do not shift biases by the mean output error.
    #[arg(long)]
    pub no_bias_correction: bool,
}

impl CalibArgs {
    /// The calibration folder, if calibration was asked for.
    pub fn dir(&self) -> Option<&Path> {
        self.calib.as_deref()
    }

    /// Compress `model` on the calibration images.
    pub fn run(&self, model: &Model, prune: Option<PruneSpec>, quantize: Option<QuantizeSpec>) -> anyhow::Result<Model> {
        let dir = self.dir().context("no calibration folder")?;
        let files = calibration_files(dir, self.calib_count)?;
        let batch = load_batch(&files, &model.preprocess).context("cannot load the calibration images")?;
        let spec = CalibrationSpec {
            prune,
            quantize,
            bias_correction: !self.no_bias_correction,
            reconstruct: ReconstructOptions::default(),
            gptq: GptqOptions::default(),
        };
        let bar = ProgressBar::new(model.layers.len() as u64);
        bar.set_style(ProgressStyle::with_template("calibrating {bar:30} {pos}/{len} layers {msg}")?);
        let result = compress_calibrated(model, &batch, &spec, &mut |name| {
            bar.set_message(name.to_string());
            bar.inc(1);
        });
        bar.finish_and_clear();
        Ok(result?.0)
    }
}
