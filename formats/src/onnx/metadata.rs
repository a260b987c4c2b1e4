//! The [`Preprocess`] preset stored in `ModelProto.metadata_props`.
//!
//! Keys and value syntax (numbers are written as Rust prints `f32`, the
//! shortest text that parses back to the same bits):
//!
//! | key | value |
//! |---|---|
//! | `sqz.preprocess.resize` | `shorter_side:256` or `exact:256x256` (width x height) |
//! | `sqz.preprocess.crop` | `224` |
//! | `sqz.preprocess.channel_order` | `rgb` or `bgr` |
//! | `sqz.preprocess.scale` | `0.003921569` |
//! | `sqz.preprocess.mean` | `0.485,0.456,0.406` |
//! | `sqz.preprocess.std` | `0.229,0.224,0.225` |
//!
//! Either all six keys are present or none; other keys are ignored.

use super::proto::StringStringEntryProto;
use crate::{ChannelOrder, FormatError, Preprocess, Resize, Result};

const PREFIX: &str = "sqz.preprocess.";
const KEYS: [&str; 6] = ["resize", "crop", "channel_order", "scale", "mean", "std"];

/// The metadata entries describing `p`, in the order of the table above.
pub(crate) fn to_metadata(p: &Preprocess) -> Vec<StringStringEntryProto> {
    let resize = match p.resize {
        Resize::ShorterSide(side) => format!("shorter_side:{side}"),
        Resize::Exact { width, height } => format!("exact:{width}x{height}"),
    };
    let order = match p.channel_order {
        ChannelOrder::Rgb => "rgb",
        ChannelOrder::Bgr => "bgr",
    };
    let triple = |v: [f32; 3]| format!("{},{},{}", v[0], v[1], v[2]);
    let values = [
        resize,
        p.crop.to_string(),
        order.to_string(),
        p.scale.to_string(),
        triple(p.mean),
        triple(p.std),
    ];
    KEYS.iter()
        .zip(values)
        .map(|(key, value)| StringStringEntryProto {
            key: format!("{PREFIX}{key}"),
            value,
        })
        .collect()
}

/// The preset in `entries`, `None` when no `sqz.preprocess.*` key is there.
pub(crate) fn from_metadata(entries: &[StringStringEntryProto]) -> Result<Option<Preprocess>> {
    let find = |key: &str| -> Result<Option<&str>> {
        let mut found = entries
            .iter()
            .filter(|e| e.key.strip_prefix(PREFIX) == Some(key));
        let first = found.next();
        if found.next().is_some() {
            return Err(bad(key, "is given twice"));
        }
        Ok(first.map(|e| e.value.as_str()))
    };
    let values = KEYS.iter().map(|k| find(k)).collect::<Result<Vec<_>>>()?;
    if values.iter().all(Option::is_none) {
        return Ok(None);
    }
    let [Some(resize), Some(crop), Some(order), Some(scale), Some(mean), Some(std)] = values[..]
    else {
        let missing: Vec<&str> = KEYS
            .iter()
            .zip(&values)
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| *k)
            .collect();
        return Err(FormatError::invalid(format!(
            "ONNX metadata: preprocessing keys missing: {PREFIX}{{{}}}",
            missing.join(",")
        )));
    };
    let preprocess = Preprocess {
        resize: parse_resize(resize)?,
        crop: positive(crop).ok_or_else(|| bad("crop", crop))?,
        channel_order: match order {
            "rgb" => ChannelOrder::Rgb,
            "bgr" => ChannelOrder::Bgr,
            other => return Err(bad("channel_order", other)),
        },
        scale: finite(scale).ok_or_else(|| bad("scale", scale))?,
        mean: triple(mean, |_| true).ok_or_else(|| bad("mean", mean))?,
        std: triple(std, |v| v != 0.0).ok_or_else(|| bad("std", std))?,
    };
    Ok(Some(preprocess))
}

fn bad(key: &str, value: &str) -> FormatError {
    FormatError::invalid(format!("ONNX metadata {PREFIX}{key}: bad value {value:?}"))
}

fn parse_resize(value: &str) -> Result<Resize> {
    let parsed = if let Some(side) = value.strip_prefix("shorter_side:") {
        positive(side).map(Resize::ShorterSide)
    } else if let Some(size) = value.strip_prefix("exact:") {
        size.split_once('x').and_then(|(w, h)| {
            Some(Resize::Exact {
                width: positive(w)?,
                height: positive(h)?,
            })
        })
    } else {
        None
    };
    parsed.ok_or_else(|| bad("resize", value))
}

fn positive(text: &str) -> Option<u32> {
    text.parse().ok().filter(|&v| v > 0)
}

fn finite(text: &str) -> Option<f32> {
    text.parse().ok().filter(|v: &f32| v.is_finite())
}

/// Three comma-separated finite numbers that all pass `ok`.
fn triple(text: &str, ok: impl Fn(f32) -> bool) -> Option<[f32; 3]> {
    let values: Vec<f32> = text.split(',').map(finite).collect::<Option<_>>()?;
    let values: [f32; 3] = values.try_into().ok()?;
    values.iter().all(|&v| ok(v)).then_some(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_round_trip_bit_exactly() {
        let odd = Preprocess {
            scale: 1.0 / 3.0,
            mean: [0.1, -0.0, 1e-30],
            resize: Resize::Exact {
                width: 300,
                height: 200,
            },
            ..Preprocess::caffe()
        };
        for p in [Preprocess::torchvision(), Preprocess::caffe(), odd] {
            assert_eq!(from_metadata(&to_metadata(&p)).unwrap(), Some(p));
        }
        assert_eq!(from_metadata(&[]).unwrap(), None);
    }

    #[test]
    fn incomplete_or_bad_metadata_is_rejected() {
        let good = to_metadata(&Preprocess::torchvision());
        let e = from_metadata(&good[1..]).unwrap_err().to_string();
        assert!(e.contains("missing") && e.contains("resize"), "{e}");
        for (index, value) in [
            (0, "shorter_side:0"),
            (0, "exact:3"),
            (1, "-4"),
            (2, "grey"),
            (3, "NaN"),
            (4, "1,2"),
            (5, "1,0,1"),
        ] {
            let mut entries = good.clone();
            entries[index].value = value.into();
            let e = from_metadata(&entries).unwrap_err().to_string();
            assert!(e.contains(KEYS[index]) && e.contains(value), "{e}");
        }
        let twice = [good.clone(), good[..1].to_vec()].concat();
        assert!(from_metadata(&twice)
            .unwrap_err()
            .to_string()
            .contains("twice"));
    }
}
