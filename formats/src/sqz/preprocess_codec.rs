//! The preprocessing preset's encoding (`SQZ.md`, "Preprocessing"): resize
//! policy, crop, channel order, then scale, mean and std as float32.

use super::wire::{put_varint, Reader};
use crate::model::{ChannelOrder, Preprocess, Resize};
use crate::Result;

/// Append `p`.
pub(crate) fn encode(p: &Preprocess, out: &mut Vec<u8>) {
    match p.resize {
        Resize::ShorterSide(side) => {
            out.push(0);
            put_varint(out, side.into());
        }
        Resize::Exact { width, height } => {
            out.push(1);
            put_varint(out, width.into());
            put_varint(out, height.into());
        }
    }
    put_varint(out, p.crop.into());
    out.push(match p.channel_order {
        ChannelOrder::Rgb => 0,
        ChannelOrder::Bgr => 1,
    });
    for v in std::iter::once(p.scale).chain(p.mean).chain(p.std) {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// Read a preset written by [`encode`].
pub(crate) fn decode(r: &mut Reader) -> Result<Preprocess> {
    let side = |r: &mut Reader, what: &str| -> Result<u32> {
        Ok(r.bounded(what, u32::MAX.into())? as u32)
    };
    let resize = match r.u8("resize kind")? {
        0 => Resize::ShorterSide(side(r, "resize shorter side")?),
        1 => Resize::Exact {
            width: side(r, "resize width")?,
            height: side(r, "resize height")?,
        },
        other => return Err(r.invalid(format!("unknown resize kind {other}"))),
    };
    let crop = side(r, "crop")?;
    let channel_order = match r.u8("channel order")? {
        0 => ChannelOrder::Rgb,
        1 => ChannelOrder::Bgr,
        other => return Err(r.invalid(format!("unknown channel order {other}"))),
    };
    let scale = r.f32("scale")?;
    let mut triple =
        |what: &str| -> Result<[f32; 3]> { Ok([r.f32(what)?, r.f32(what)?, r.f32(what)?]) };
    let mean = triple("mean")?;
    let std = triple("std")?;
    Ok(Preprocess {
        resize,
        crop,
        channel_order,
        scale,
        mean,
        std,
    })
}
