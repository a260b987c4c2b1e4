//! Constant tensors (`TensorProto`): decoding with size checks, and
//! encoding.
//!
//! A tensor's element count comes from its `dims`; it is checked against
//! the data actually present (raw bytes or typed values) before any
//! conversion allocates, so a lying header cannot make the reader allocate
//! more than a small multiple of the file size.

use super::proto::{data_type, TensorProto, DATA_LOCATION_EXTERNAL};
use crate::caffe_net::MAX_LAYER_WEIGHTS;
use crate::{FormatError, Result};

/// Element count of `t` from its dimensions, with the checks every tensor
/// needs: inline data, non-negative dimensions, at most
/// [`MAX_LAYER_WEIGHTS`] elements.
fn element_count(t: &TensorProto) -> Result<usize> {
    if t.data_location == DATA_LOCATION_EXTERNAL {
        return Err(FormatError::unsupported(format!(
            "tensor {}: data in an external file",
            t.name
        )));
    }
    if t.segment.is_some() {
        return Err(FormatError::unsupported(format!(
            "tensor {}: segmented tensor",
            t.name
        )));
    }
    let mut count = 1usize;
    for &d in &t.dims {
        let d = usize::try_from(d).map_err(|_| {
            FormatError::invalid(format!("tensor {}: negative dimension {d}", t.name))
        })?;
        count = count
            .checked_mul(d)
            .filter(|&c| c <= MAX_LAYER_WEIGHTS)
            .ok_or_else(|| {
                FormatError::unsupported(format!(
                    "tensor {}: dimensions {:?} exceed {MAX_LAYER_WEIGHTS} elements",
                    t.name, t.dims
                ))
            })?;
    }
    Ok(count)
}

/// Require `present` stored values (or bytes, per `unit`) for `count`
/// elements.
fn check_present(t: &TensorProto, count: usize, present: usize, unit: &str) -> Result<()> {
    if present != count {
        return Err(FormatError::invalid(format!(
            "tensor {}: dimensions {:?} need {count} {unit} but {present} are stored",
            t.name, t.dims
        )));
    }
    Ok(())
}

/// Values of a FLOAT or FLOAT16 tensor as `f32`, row-major.
pub(crate) fn floats(t: &TensorProto) -> Result<Vec<f32>> {
    let count = element_count(t)?;
    match t.data_type {
        data_type::FLOAT if !t.raw_data.is_empty() => {
            check_present(t, count.saturating_mul(4), t.raw_data.len(), "raw bytes")?;
            Ok(t.raw_data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect())
        }
        data_type::FLOAT => {
            check_present(t, count, t.float_data.len(), "float_data values")?;
            Ok(t.float_data.clone())
        }
        data_type::FLOAT16 if !t.raw_data.is_empty() => {
            check_present(t, count.saturating_mul(2), t.raw_data.len(), "raw bytes")?;
            Ok(t.raw_data
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect())
        }
        data_type::FLOAT16 => {
            check_present(t, count, t.int32_data.len(), "int32_data values")?;
            // Each value holds the float16's bits in its low 16 bits.
            Ok(t.int32_data
                .iter()
                .map(|&v| half::f16::from_bits(v as u16).to_f32())
                .collect())
        }
        other => Err(FormatError::unsupported(format!(
            "tensor {}: element type {other} (only FLOAT and FLOAT16 weights)",
            t.name
        ))),
    }
}

/// Values of an INT64 tensor (shapes).
pub(crate) fn int64s(t: &TensorProto) -> Result<Vec<i64>> {
    let count = element_count(t)?;
    if t.data_type != data_type::INT64 {
        return Err(FormatError::unsupported(format!(
            "tensor {}: element type {} where INT64 is needed",
            t.name, t.data_type
        )));
    }
    if t.raw_data.is_empty() {
        check_present(t, count, t.int64_data.len(), "int64_data values")?;
        return Ok(t.int64_data.clone());
    }
    check_present(t, count.saturating_mul(8), t.raw_data.len(), "raw bytes")?;
    Ok(t.raw_data
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
        .collect())
}

/// The value of a one-element BOOL tensor.
pub(crate) fn bool_scalar(t: &TensorProto) -> Result<bool> {
    let count = element_count(t)?;
    if t.data_type != data_type::BOOL {
        return Err(FormatError::unsupported(format!(
            "tensor {}: element type {} where BOOL is needed",
            t.name, t.data_type
        )));
    }
    check_present(t, 1, count, "elements")?;
    match (t.raw_data.as_ref(), t.int32_data.as_slice()) {
        ([b], []) => Ok(*b != 0),
        ([], [v]) => Ok(*v != 0),
        _ => Err(FormatError::invalid(format!(
            "tensor {}: one BOOL element announced, other data stored",
            t.name
        ))),
    }
}

/// A FLOAT tensor holding `values` little-endian in `raw_data`.
pub(crate) fn float_tensor(name: &str, dims: &[usize], values: &[f32]) -> TensorProto {
    TensorProto {
        name: name.to_string(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: data_type::FLOAT,
        raw_data: values
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<u8>>()
            .into(),
        ..Default::default()
    }
}

/// A one-dimensional INT64 tensor holding `values`.
pub(crate) fn int64_tensor(name: &str, values: &[i64]) -> TensorProto {
    TensorProto {
        name: name.to_string(),
        dims: vec![values.len() as i64],
        data_type: data_type::INT64,
        int64_data: values.to_vec(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_encodings_decode_alike() {
        let values = [1.5f32, -0.0, f32::MIN_POSITIVE, 65504.0];
        let raw = float_tensor("w", &[2, 2], &values);
        assert_eq!(floats(&raw).unwrap(), values);
        let typed = TensorProto {
            raw_data: bytes::Bytes::new(),
            float_data: values.to_vec(),
            ..raw.clone()
        };
        assert_eq!(floats(&typed).unwrap(), values);
        let halves: Vec<half::f16> = [1.5f32, -0.0, 0.25, 65504.0]
            .iter()
            .map(|&v| half::f16::from_f32(v))
            .collect();
        let f16_raw = TensorProto {
            data_type: data_type::FLOAT16,
            raw_data: halves
                .iter()
                .flat_map(|h| h.to_le_bytes())
                .collect::<Vec<u8>>()
                .into(),
            ..raw.clone()
        };
        let f16_typed = TensorProto {
            data_type: data_type::FLOAT16,
            raw_data: bytes::Bytes::new(),
            int32_data: halves.iter().map(|h| h.to_bits() as i32).collect(),
            ..raw
        };
        assert_eq!(floats(&f16_raw).unwrap(), [1.5, -0.0, 0.25, 65504.0]);
        assert_eq!(floats(&f16_typed).unwrap(), [1.5, -0.0, 0.25, 65504.0]);
    }

    #[test]
    fn lying_or_odd_tensors_are_rejected() {
        let good = float_tensor("w", &[2, 3], &[0.0; 6]);
        let cases = [
            (
                TensorProto {
                    dims: vec![2, 4],
                    ..good.clone()
                },
                "need 32 raw bytes but 24",
            ),
            (
                TensorProto {
                    dims: vec![i64::MAX, 4],
                    ..good.clone()
                },
                "exceed",
            ),
            (
                TensorProto {
                    dims: vec![1 << 20, 1 << 20],
                    ..good.clone()
                },
                "exceed",
            ),
            (
                TensorProto {
                    dims: vec![-2, -3],
                    ..good.clone()
                },
                "negative",
            ),
            (
                TensorProto {
                    data_location: DATA_LOCATION_EXTERNAL,
                    ..good.clone()
                },
                "external",
            ),
            (
                TensorProto {
                    data_type: 11,
                    ..good.clone()
                },
                "element type 11",
            ),
            (
                TensorProto {
                    raw_data: bytes::Bytes::new(),
                    ..good.clone()
                },
                "need 6 float_data values but 0",
            ),
        ];
        for (t, expected) in cases {
            let e = floats(&t).unwrap_err().to_string();
            assert!(e.contains(expected), "{expected}: {e}");
        }
        assert!(int64s(&good).is_err());
        assert_eq!(
            int64s(&int64_tensor("s", &[0, -1, 1, 1])).unwrap(),
            [0, -1, 1, 1]
        );
    }
}
