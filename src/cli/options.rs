//! Command-line options shared by the compression commands (`prune`,
//! `quantize`, `compress`, `sensitivity`), turned into the pipeline's
//! [`Recipe`](crate::pipeline::Recipe) parts. Values are parsed into the
//! pipeline's checked types by clap, so an out-of-range value is a usage
//! error before any work; defaults come from [`defaults`].

use std::path::PathBuf;

use anyhow::Context;
use clap::ValueEnum;
use compress::calib::MAX_DIM;
use compress::kmeans::Init;

use crate::eval::DEFAULT_BATCH;
use crate::fetch::default_cache_dir;
use crate::labels::{read_labels, LabeledImage};
use crate::pipeline::calib_images::CalibrationImages;
use crate::pipeline::calibration::CalibrationOptions;
use crate::pipeline::defaults;
use crate::pipeline::finetune::{Finetune, Length};
use crate::pipeline::memory_plan::available_memory;
use crate::pipeline::params::{layer_overrides, Bits, LayerSetting, Sparsity};
use crate::pipeline::placement::SparsityPlacement;
use crate::pipeline::prune::PruneSpec;
use crate::pipeline::quantize::{KMeans, QuantizeSpec};
use crate::pipeline::sensitivity::{default_bits_ladder, default_sparsity_ladder, Ladder};
use crate::pipeline::sensitivity_cache::SensitivityRun;
use crate::pipeline::{Calibration, PipelineError};

/// Pruning options.
#[derive(Debug, Clone, clap::Args)]
pub struct PruneArgs {
    /// Target fraction of zero weights, in [0, 1), e.g. 0.7. With --calib it
    /// is a budget over all weights, placed in the layers where the damage
    /// measured on the calibration images is least; without, every layer
    /// is pruned to it.
    #[arg(long, value_name = "S")]
    pub sparsity: Option<Sparsity>,
    /// Use one magnitude threshold over all layers instead of pruning each
    /// layer to the same sparsity.
    #[arg(long, requires = "sparsity", conflicts_with = "uniform")]
    pub global: bool,
    /// Prune every layer to the same sparsity even with --calib, instead of
    /// placing it by measured damage.
    #[arg(long, requires = "sparsity")]
    pub uniform: bool,
    /// Per-layer sparsity overrides, e.g. `conv1=0,conv10=0.5`.
    #[arg(long, value_name = "NAME=S,...", value_delimiter = ',')]
    pub layer_sparsity: Vec<LayerSetting<Sparsity>>,
}

impl PruneArgs {
    /// The pruning stage, when any pruning was asked for (layers without
    /// an override keep their weights when only overrides are given).
    pub fn spec(&self) -> Option<PruneSpec> {
        if self.sparsity.is_none() && self.layer_sparsity.is_empty() {
            return None;
        }
        Some(PruneSpec {
            sparsity: self.sparsity.unwrap_or(Sparsity::ZERO),
            global: self.global,
            per_layer: layer_overrides(&self.layer_sparsity),
        })
    }

    /// How the sparsity is placed by measured damage on the `levels`: with
    /// calibration images and a network-wide sparsity, unless `--uniform`
    /// or `--global` ask otherwise.
    pub fn placement(
        &self,
        calib: &CalibArgs,
        sensitivity: &SensitivityArgs,
        levels: Vec<Sparsity>,
    ) -> Result<Option<SparsityPlacement>, PipelineError> {
        let by_damage =
            calib.calib.is_some() && self.sparsity.is_some() && !self.uniform && !self.global;
        if !by_damage {
            return Ok(None);
        }
        Ok(Some(SparsityPlacement {
            ladder: Ladder::pruning(levels)?,
            sensitivity: sensitivity.run(),
        }))
    }
}

/// How the per-layer damage behind a sparsity placement or a target size
/// is measured.
#[derive(Debug, Clone, clap::Args)]
pub struct SensitivityArgs {
    /// Calibration images the sensitivity of each layer is measured on (an
    /// evenly spaced subset of the calibration images): every trial runs
    /// the network on all of them [default: 128, fewer for models of more
    /// than 0.4 G multiply-adds per image, at least 4]
    #[arg(long, value_name = "N")]
    pub sensitivity_count: Option<usize>,
    /// Measure the sensitivity again instead of reusing a measurement of the
    /// same model, images and settings cached in $XDG_CACHE_HOME/sqz (or
    /// ~/.cache/sqz); nothing is stored either.
    #[arg(long)]
    pub no_cache: bool,
}

impl SensitivityArgs {
    /// The measurement's settings.
    pub fn run(&self) -> SensitivityRun {
        SensitivityRun {
            images: self
                .sensitivity_count
                .unwrap_or(defaults::SENSITIVITY_CALIB_COUNT),
            cache: sensitivity_cache_dir(self.no_cache),
        }
    }
}

/// Where sensitivity measurements are cached, unless `no_cache`.
pub fn sensitivity_cache_dir(no_cache: bool) -> Option<PathBuf> {
    if no_cache {
        return None;
    }
    default_cache_dir().map(|dir| dir.join("sensitivity"))
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

impl InitArg {
    /// The option naming `init`.
    fn of(init: Init) -> Self {
        match init {
            Init::Linear => InitArg::Linear,
            Init::Density => InitArg::Density,
            Init::KMeansPlusPlus { .. } => InitArg::KmeansPlusPlus,
        }
    }
}

/// Weight-sharing options.
#[derive(Debug, Clone, clap::Args)]
pub struct QuantizeArgs {
    /// Bits per codebook index, in 1..=16: 2^B shared values per layer
    /// (2^B - 1 plus the pruned zero in sparse layers).
    #[arg(long, value_name = "B")]
    pub bits: Option<Bits>,
    /// Per-layer bit overrides, e.g. `conv1=8`.
    #[arg(
        long,
        value_name = "NAME=B,...",
        value_delimiter = ',',
        requires = "bits"
    )]
    pub layer_bits: Vec<LayerSetting<Bits>>,
    /// Centroid initialisation.
    #[arg(long, value_enum, default_value_t = InitArg::of(defaults::KMEANS_INIT))]
    pub init: InitArg,
    /// Seed for `--init kmeans++` and for `--finetune`'s batch order and
    /// augmentation.
    #[arg(long, default_value_t = defaults::KMEANS_SEED)]
    pub seed: u64,
    /// Maximum k-means iterations per layer.
    #[arg(long, default_value_t = defaults::KMEANS_MAX_ITER)]
    pub max_iter: usize,
    /// Entropy-constrained k-means' price of a bit of code length (help:
    /// [`entropy_weight_help`]).
    #[arg(long, value_name = "W", value_parser = non_negative_weight, help = entropy_weight_help(), long_help = None)]
    pub entropy_weight: Option<f64>,
}

/// Help of `--entropy-weight`, with its two defaults.
fn entropy_weight_help() -> String {
    format!(
        "Entropy-constrained k-means: the price of one bit of code length, in mean squared errors per weight. Weights lean to the shared values most weights use, which Huffman codes in fewer bits; 0 is plain k-means, the paper's [default: {} with --bits, {} with --target-size]",
        defaults::ENTROPY_WEIGHT,
        defaults::TARGET_SIZE_ENTROPY_WEIGHT
    )
}

/// A finite, non-negative `--entropy-weight`.
fn non_negative_weight(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(w) if w.is_finite() && w >= 0.0 => Ok(w),
        _ => Err(format!("`{text}` is not a finite number >= 0")),
    }
}

impl QuantizeArgs {
    /// The k-means settings, with `default_entropy_weight` unless
    /// `--entropy-weight` is set.
    pub fn kmeans(&self, default_entropy_weight: f64) -> KMeans {
        let init = match self.init {
            InitArg::Linear => Init::Linear,
            InitArg::Density => Init::Density,
            InitArg::KmeansPlusPlus => Init::KMeansPlusPlus { seed: self.seed },
        };
        KMeans {
            init,
            max_iter: self.max_iter,
            entropy_weight: self.entropy_weight.unwrap_or(default_entropy_weight),
        }
    }

    /// The weight-sharing stage, when `--bits` was given.
    pub fn spec(&self) -> Option<QuantizeSpec> {
        self.bits.map(|bits| QuantizeSpec {
            bits,
            per_layer: layer_overrides(&self.layer_bits),
            kmeans: self.kmeans(defaults::ENTROPY_WEIGHT),
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
    #[arg(long, value_name = "N", default_value_t = defaults::CALIB_COUNT)]
    pub calib_count: usize,
    /// Do not shift biases by the mean output error.
    #[arg(long)]
    pub no_bias_correction: bool,
    /// Fit each layer to its own output on the compressed network's
    /// activations, instead of to the original network's output (which
    /// also corrects the error of the layers below, from a second pass of
    /// the original network over the calibration images).
    #[arg(long)]
    pub no_match_original: bool,
    /// Largest block of inputs whose Hessian is kept whole: a layer with
    /// more inputs (per channel group) is calibrated on a block-diagonal
    /// Hessian of blocks this wide (memory 8 x inputs x N bytes).
    #[arg(long, value_name = "N", default_value_t = defaults::HESSIAN_BLOCK, value_parser = clap::value_parser!(u64).range(1..=MAX_DIM as u64))]
    pub hessian_block: u64,
    #[command(flatten)]
    pub memory: MemoryArgs,
}

/// The memory a calibrated run may take.
#[derive(Debug, Clone, clap::Args)]
pub struct MemoryArgs {
    /// Refuse a calibrated run estimated to need more memory than this, in
    /// bytes, before any work (default: the memory available when the
    /// command starts).
    #[arg(long, value_name = "BYTES")]
    pub max_memory: Option<u64>,
}

impl MemoryArgs {
    /// The limit: `--max-memory`, else the memory available now.
    pub fn limit(&self) -> Option<u64> {
        self.max_memory.or_else(available_memory)
    }
}

impl CalibArgs {
    /// The calibration stage, when `--calib` was given.
    pub fn calibration(&self) -> Option<Calibration> {
        self.calib.as_ref().map(|dir| Calibration {
            images: CalibrationImages {
                dir: dir.clone(),
                count: self.calib_count,
            },
            options: CalibrationOptions {
                bias_correction: !self.no_bias_correction,
                hessian_block: self.hessian_block as usize,
                match_original: !self.no_match_original,
                ..CalibrationOptions::default()
            },
            max_memory: self.memory.limit(),
        })
    }
}

/// The levels sensitivity analysis tries on each layer.
#[derive(Debug, Clone, clap::Args)]
pub struct LadderArgs {
    /// Sparsity levels tried on each layer, each in (0, 1).
    #[arg(
        long,
        value_name = "S,...",
        value_delimiter = ',',
        default_values_t = default_sparsity_ladder()
    )]
    pub sparsity_levels: Vec<Sparsity>,
    /// Bit widths tried on each layer, each in 1..=16.
    #[arg(
        long,
        value_name = "B,...",
        value_delimiter = ',',
        default_values_t = default_bits_ladder()
    )]
    pub bit_levels: Vec<Bits>,
}

impl LadderArgs {
    /// The checked ladder.
    pub fn ladder(&self) -> Result<Ladder, PipelineError> {
        Ladder::new(self.sparsity_levels.clone(), self.bit_levels.clone())
    }
}

/// Per-layer allocation under a size budget (`compress --target-size`).
#[derive(Debug, Clone, clap::Args)]
pub struct AllocationArgs {
    /// Largest allowed output file, in bytes: each layer's sparsity and bits
    /// are chosen from its measured sensitivity to fit it with the least
    /// damage (needs --calib; --sparsity then becomes a global budget).
    #[arg(
        long,
        value_name = "BYTES",
        requires = "calib",
        conflicts_with_all = ["bits", "layer_bits", "layer_sparsity", "global", "uniform"]
    )]
    pub target_size: Option<usize>,
    #[command(flatten)]
    pub sensitivity: SensitivityArgs,
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

/// Distillation fine-tuning of the compressed model (`--finetune`).
#[derive(Debug, Clone, clap::Args)]
pub struct FinetuneArgs {
    /// After compressing, fine-tune the shared values, unpruned weights and
    /// biases to match the teacher's outputs on augmented calibration
    /// images (needs --calib). Pruned weights stay zero and codes fixed, so
    /// the file keeps its size.
    #[arg(long, requires = "calib")]
    pub finetune: bool,
    /// The original model to learn from (default: the input model); name
    /// it when fine-tuning the second step of prune-then-quantize.
    #[arg(long, value_name = "MODEL", requires = "finetune")]
    pub teacher: Option<PathBuf>,
    /// Optimizer steps over all stages (help: [`steps_help`]).
    #[arg(long, value_name = "N", requires = "finetune", conflicts_with = "epochs", help = steps_help(), long_help = None, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub steps: Option<u64>,
    /// Passes over the calibration images instead of --steps.
    #[arg(long, value_name = "N", requires = "finetune", value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub epochs: Option<u64>,
    /// Peak learning rate (Adam, cosine decay after a 5 % warm-up).
    #[arg(long, value_name = "RATE", requires = "finetune", default_value_t = defaults::FINETUNE_LR, value_parser = positive_f32)]
    pub lr: f32,
    /// Images per step.
    #[arg(long, value_name = "N", requires = "finetune", default_value_t = defaults::FINETUNE_BATCH as u64, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub batch: u64,
    /// Softmax temperature of the distillation loss.
    #[arg(long, value_name = "T", requires = "finetune", default_value_t = defaults::FINETUNE_TEMPERATURE, value_parser = positive_f64)]
    pub temperature: f64,
    /// Blend each training view with another image's (mixup; teacher and
    /// student see the same blend).
    #[arg(long, value_name = "BOOL", requires = "finetune", default_value_t = defaults::FINETUNE_MIXUP, action = clap::ArgAction::Set)]
    pub mixup: bool,
    /// When the command both prunes and shares weights, also fine-tune
    /// the surviving weights between the two (false: only the shared
    /// values, after sharing).
    #[arg(long, value_name = "BOOL", requires = "finetune", default_value_t = defaults::FINETUNE_TWO_STAGE, action = clap::ArgAction::Set)]
    pub two_stage: bool,
    /// Images of the calibration folder outside the calibration set on
    /// which progress shows agreement with the teacher (not trained on).
    #[arg(long, value_name = "N", requires = "finetune", default_value_t = defaults::FINETUNE_HELD_BACK)]
    pub held_back: usize,
}

impl FinetuneArgs {
    /// The fine-tuning stage with `seed` and `teacher`, when `--finetune`
    /// was given.
    pub fn spec(&self, seed: u64, teacher: Option<formats::Model>) -> Option<Finetune> {
        let to_usize = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        let length = match (self.epochs, self.steps) {
            (Some(epochs), _) => Some(Length::Epochs(to_usize(epochs))),
            (None, Some(steps)) => Some(Length::Steps(to_usize(steps))),
            (None, None) => None,
        };
        self.finetune.then(|| Finetune {
            length,
            lr: self.lr,
            batch: to_usize(self.batch),
            temperature: self.temperature,
            seed,
            mixup: self.mixup,
            two_stage: self.two_stage,
            held_back: self.held_back,
            teacher,
        })
    }
}

/// The help of `--steps`, whose default depends on the command.
fn steps_help() -> String {
    format!(
        "Optimizer steps over all stages [default: {}; {} when the command both prunes and shares weights, which fine-tunes twice: {:.0} % of the steps after pruning, the rest after sharing]",
        defaults::FINETUNE_STEPS,
        defaults::FINETUNE_TWO_STAGE_STEPS,
        100.0 * defaults::FINETUNE_SHARE_BEFORE_SHARING
    )
}

/// A finite number above zero.
fn positive_f64(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("'{text}' is not a finite number above 0")),
    }
}

/// [`positive_f64`] as float32.
fn positive_f32(text: &str) -> Result<f32, String> {
    let value = positive_f64(text)? as f32;
    match value.is_finite() && value > 0.0 {
        true => Ok(value),
        false => Err(format!("'{text}' is out of range")),
    }
}
