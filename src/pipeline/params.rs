//! Validated compression parameters: a bit width and a sparsity are checked
//! once, where they are made (the CLI parses them with clap, so an
//! out-of-range value is a usage error before any work), and every stage
//! can then use them without checking again.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use formats::Model;

use super::error::PipelineError;

/// Codebook index width of weight sharing: `2^bits` shared values per
/// layer, in `1..=16` (the `.sqz` alphabet limit).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(into = "u8", try_from = "u8")]
pub struct Bits(u8);

impl Bits {
    /// Widest codebook index.
    pub const MAX: u8 = 16;

    /// `bits` if it is in `1..=16`.
    pub fn new(bits: u8) -> Result<Self, ParamError> {
        if (1..=Self::MAX).contains(&bits) {
            Ok(Bits(bits))
        } else {
            Err(ParamError::Bits(bits.to_string()))
        }
    }

    /// The width.
    pub fn get(self) -> u8 {
        self.0
    }
}

impl From<Bits> for u8 {
    fn from(bits: Bits) -> u8 {
        bits.0
    }
}

impl TryFrom<u8> for Bits {
    type Error = ParamError;

    /// [`Bits::new`], so a deserialized width is checked too.
    fn try_from(bits: u8) -> Result<Self, ParamError> {
        Bits::new(bits)
    }
}

impl FromStr for Bits {
    type Err = ParamError;

    fn from_str(s: &str) -> Result<Self, ParamError> {
        parse_checked(s, Bits::new, ParamError::Bits)
    }
}

impl fmt::Display for Bits {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Fraction of a layer's (or model's) weights that are zero, in `[0, 1)`.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, serde::Serialize, serde::Deserialize)]
#[serde(into = "f64", try_from = "f64")]
pub struct Sparsity(f64);

impl Sparsity {
    /// No pruning.
    pub const ZERO: Sparsity = Sparsity(0.0);

    /// `fraction` if it is in `[0, 1)`.
    pub fn new(fraction: f64) -> Result<Self, ParamError> {
        if (0.0..1.0).contains(&fraction) {
            Ok(Sparsity(fraction))
        } else {
            Err(ParamError::Sparsity(fraction.to_string()))
        }
    }

    /// The fraction.
    pub fn get(self) -> f64 {
        self.0
    }
}

impl From<Sparsity> for f64 {
    fn from(sparsity: Sparsity) -> f64 {
        sparsity.0
    }
}

impl TryFrom<f64> for Sparsity {
    type Error = ParamError;

    /// [`Sparsity::new`], so a deserialized fraction is checked too.
    fn try_from(fraction: f64) -> Result<Self, ParamError> {
        Sparsity::new(fraction)
    }
}

impl FromStr for Sparsity {
    type Err = ParamError;

    fn from_str(s: &str) -> Result<Self, ParamError> {
        parse_checked(s, Sparsity::new, ParamError::Sparsity)
    }
}

/// Parse `s` as a number and `check` it; text that is no number gives the
/// error `unparsable` makes of it.
fn parse_checked<N: FromStr, P>(
    s: &str,
    check: fn(N) -> Result<P, ParamError>,
    unparsable: fn(String) -> ParamError,
) -> Result<P, ParamError> {
    let number = s.trim().parse().map_err(|_| unparsable(s.to_string()))?;
    check(number)
}

impl fmt::Display for Sparsity {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A parameter outside its range, or a malformed per-layer setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error("bits '{0}' is not a whole number in 1..=16")]
    Bits(String),
    #[error("sparsity '{0}' is not a number in [0, 1)")]
    Sparsity(String),
    #[error("per-layer setting '{0}' is not of the form name=value")]
    LayerSetting(String),
}

/// One layer's own value, written `name=value` (e.g. `conv1=8`).
#[derive(Debug, Clone, PartialEq)]
pub struct LayerSetting<T> {
    /// The layer's name.
    pub layer: String,
    /// Its value.
    pub value: T,
}

impl<T: FromStr<Err = ParamError>> FromStr for LayerSetting<T> {
    type Err = ParamError;

    fn from_str(s: &str) -> Result<Self, ParamError> {
        let (layer, value) = s
            .split_once('=')
            .ok_or_else(|| ParamError::LayerSetting(s.to_string()))?;
        let layer = layer.trim();
        if layer.is_empty() {
            return Err(ParamError::LayerSetting(s.to_string()));
        }
        Ok(LayerSetting {
            layer: layer.to_string(),
            value: value.parse()?,
        })
    }
}

/// Values of individual layers, by layer name.
pub type LayerOverrides<T> = BTreeMap<String, T>;

/// The overrides `settings` give; a layer named twice keeps its last value.
/// Names are checked against the model when the pipeline runs.
pub fn layer_overrides<T: Clone>(settings: &[LayerSetting<T>]) -> LayerOverrides<T> {
    settings
        .iter()
        .map(|s| (s.layer.clone(), s.value.clone()))
        .collect()
}

/// Check that every name in `names` is a layer of `model`.
pub fn check_layer_names<'a>(
    model: &Model,
    mut names: impl Iterator<Item = &'a str>,
) -> Result<(), PipelineError> {
    match names.find(|name| model.layer_index(name).is_none()) {
        Some(name) => Err(PipelineError::UnknownLayer {
            name: name.to_string(),
            layers: model
                .layers
                .iter()
                .map(|l| l.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_and_sparsity_accept_exactly_their_ranges() {
        assert_eq!("6".parse::<Bits>().map(Bits::get), Ok(6));
        assert_eq!("16".parse::<Bits>().map(Bits::get), Ok(16));
        for bad in ["0", "17", "-1", "six", ""] {
            assert!(bad.parse::<Bits>().is_err(), "{bad}");
        }
        assert_eq!("0".parse::<Sparsity>().map(Sparsity::get), Ok(0.0));
        assert_eq!("0.7".parse::<Sparsity>().map(Sparsity::get), Ok(0.7));
        for bad in ["1", "1.5", "-0.1", "NaN", "x"] {
            assert!(bad.parse::<Sparsity>().is_err(), "{bad}");
        }
    }

    #[test]
    fn layer_settings_parse_name_and_checked_value() {
        let s: LayerSetting<Bits> = "conv1=8".parse().expect("valid");
        assert_eq!((s.layer.as_str(), s.value.get()), ("conv1", 8));
        assert_eq!(
            "conv1=20".parse::<LayerSetting<Bits>>(),
            Err(ParamError::Bits("20".into()))
        );
        assert!("conv1".parse::<LayerSetting<Sparsity>>().is_err());
        assert!("=0.5".parse::<LayerSetting<Sparsity>>().is_err());
    }
}
