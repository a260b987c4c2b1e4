//! Command-line options shared by the compression commands (`prune`,
//! `quantize`, `compress`), turned into the library's specs.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::ValueEnum;
use compress::calib::{GptqOptions, ReconstructOptions};
use compress::kmeans::Init;
use formats::Model;

use crate::calibration::{
    calibration_files, compress_calibrated, evenly_spaced, CalibrationSpec, DEFAULT_CALIB_COUNT,
};
use crate::compression::{parse_overrides, PruneSpec, QuantizeSpec};
use crate::engine::Tensor;
use crate::eval::DEFAULT_BATCH;
use crate::imaging::load_batch;
use crate::labels::{read_labels, LabeledImage};
use crate::sensitivity::{Ladder, SENSITIVITY_CALIB_COUNT};

/// Pruning options.
#[derive(Debug, Clone, clap::Args)]
pub struct PruneArgs {
    /// Target fraction of zero weights, e.g. 0.7. With `compress
    /// --target-size` it is a global budget spread over the layers by
    /// sensitivity instead of applied uniformly.
    #[arg(long, value_name = "S")]
    pub sparsity: Option<f64>,
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
        let sparsity = self.sparsity.context("--sparsity is required")?;
        Ok(PruneSpec {
            sparsity,
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
    pub bits: Option<u8>,
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
        let bits = self.bits.context("--bits is required")?;
        self.spec_with_bits(model, bits, half)
    }

    /// The weight-sharing spec with `bits` as the common width (for
    /// allocation, which then sets every layer's width itself).
    pub fn spec_with_bits(
        &self,
        model: &Model,
        bits: u8,
        half: bool,
    ) -> anyhow::Result<QuantizeSpec> {
        let init = match self.init {
            InitArg::Linear => Init::Linear,
            InitArg::Density => Init::Density,
            InitArg::KmeansPlusPlus => Init::KMeansPlusPlus { seed: self.seed },
        };
        Ok(QuantizeSpec {
            bits,
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

    /// The first `count`-image subset (evenly spaced, see
    /// [`evenly_spaced`]) of the `--calib-count` calibration images,
    /// preprocessed for `model`. Subsets stay inside the calibration set, so
    /// `eval --exclude-calib` still evaluates on unseen images.
    pub fn load_batch(&self, model: &Model, count: usize) -> anyhow::Result<Tensor> {
        let dir = self
            .dir()
            .context("no calibration folder (use --calib DIR)")?;
        let files = evenly_spaced(&calibration_files(dir, self.calib_count)?, count);
        load_batch(&files, &model.preprocess).context("cannot load the calibration images")
    }

    /// Compress `model` on the calibration images.
    pub fn run(
        &self,
        model: &Model,
        prune: Option<PruneSpec>,
        quantize: Option<QuantizeSpec>,
    ) -> anyhow::Result<Model> {
        let batch = self.load_batch(model, self.calib_count)?;
        self.compress(model, &batch, prune, quantize)
    }

    /// Compress `model` on the preprocessed calibration batch `batch`,
    /// showing progress on stderr.
    pub fn compress(
        &self,
        model: &Model,
        batch: &Tensor,
        prune: Option<PruneSpec>,
        quantize: Option<QuantizeSpec>,
    ) -> anyhow::Result<Model> {
        let spec = CalibrationSpec {
            prune,
            quantize,
            bias_correction: !self.no_bias_correction,
            reconstruct: ReconstructOptions::default(),
            gptq: GptqOptions::default(),
        };
        let result = with_layer_progress("calibrating", model.layers.len(), |progress| {
            compress_calibrated(model, batch, &spec, progress)
        })?;
        Ok(result?.0)
    }
}

/// Run `work` with a progress bar on stderr over `layers` layers, advanced
/// by each call of the callback it is given (with the layer's name).
pub fn with_layer_progress<T>(
    label: &str,
    layers: usize,
    work: impl FnOnce(&mut dyn FnMut(&str)) -> T,
) -> anyhow::Result<T> {
    let bar = super::progress::bar(
        layers as u64,
        &format!("{label} {{bar:30}} {{pos}}/{{len}} layers {{msg}}"),
    )?;
    let result = work(&mut |name| {
        bar.set_message(name.to_string());
        bar.inc(1);
    });
    bar.finish_and_clear();
    Ok(result)
}

/// Weight-sharing settings of sensitivity trials and allocation when the
/// command has no weight-sharing options: the defaults of `quantize`.
pub fn default_quantize_spec(half: bool) -> QuantizeSpec {
    QuantizeSpec {
        bits: 8,
        per_layer: Default::default(),
        init: Init::Linear,
        max_iter: 300,
        half,
    }
}

/// The levels sensitivity analysis tries on each layer.
#[derive(Debug, Clone, clap::Args)]
pub struct LadderArgs {
    /// Sparsity levels tried on each layer.
    #[arg(
        long,
        value_name = "S,...",
        value_delimiter = ',',
        default_value = "0.3,0.4,0.5,0.6,0.7,0.8,0.9"
    )]
    pub sparsity_levels: Vec<f64>,
    /// Bit widths tried on each layer.
    #[arg(
        long,
        value_name = "B,...",
        value_delimiter = ',',
        default_value = "8,7,6,5,4,3,2"
    )]
    pub bit_levels: Vec<u8>,
}

impl LadderArgs {
    /// The checked ladder.
    pub fn ladder(&self) -> anyhow::Result<Ladder> {
        Ladder::new(self.sparsity_levels.clone(), self.bit_levels.clone())
    }
}

/// Per-layer allocation under a size budget (`compress --target-size`).
#[derive(Debug, Clone, clap::Args)]
pub struct AllocationArgs {
    /// Largest allowed output file, in bytes: each layer's sparsity and bits
    /// are chosen from its measured sensitivity to fit it with the least
    /// damage (needs --calib; --sparsity then becomes a global budget).
    #[arg(long, value_name = "BYTES")]
    pub target_size: Option<usize>,
    /// Calibration images the sensitivity of each layer is measured on (an
    /// evenly spaced subset of the calibration images): every trial runs
    /// the network on all of them.
    #[arg(long, value_name = "N", default_value_t = SENSITIVITY_CALIB_COUNT)]
    pub sensitivity_count: usize,
    #[command(flatten)]
    pub ladder: LadderArgs,
}

/// A labelled image folder to evaluate on, as `eval` and `report` take it.
#[derive(Debug, Clone, clap::Args)]
pub struct ImageSetArgs {
    /// Image folder with a `labels.tsv` (columns file, class_index, wnid, name).
    #[arg(long, value_name = "DIR")]
    pub images: PathBuf,
    /// Evaluate only the first N images of `labels.tsv`.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: Option<u64>,
    /// Images per engine call.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_BATCH as u64, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub batch: u64,
}

impl ImageSetArgs {
    /// The images of `labels.tsv`, at most `--limit` of them.
    pub fn labelled_images(&self) -> anyhow::Result<Vec<LabeledImage>> {
        let mut images = read_labels(&self.images.join("labels.tsv"), None)
            .context("cannot read the image labels")?;
        if let Some(limit) = self.limit {
            images.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        }
        Ok(images)
    }

    /// `--batch` as a size.
    pub fn batch_size(&self) -> usize {
        usize::try_from(self.batch).unwrap_or(usize::MAX)
    }
}
