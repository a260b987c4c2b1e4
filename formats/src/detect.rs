//! Recognise the format of a model file, so the CLI can take any model path.
//!
//! Content decides first, because it cannot lie about itself: a `.sqz`
//! starts with the bytes `SQZ\0`, an ncnn `.param` with the line `7767517`.
//! Formats without a usable signature are then told apart by extension:
//! `.net` (Deep Compression), `.onnx`, `.caffemodel`, `.safetensors`.

use crate::ncnn::PARAM_MAGIC;
use crate::sqz::MAGIC as SQZ_MAGIC;
use crate::{FormatError, Result};
use std::io::Read;
use std::path::Path;

/// The model formats sqz reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelFormat {
    /// ncnn `.param` + `.bin` (the path is the `.param`).
    Ncnn,
    /// Deep Compression `.net` with a Caffe `.prototxt` beside it.
    DeepCompression,
    /// sqz's own container.
    Sqz,
    /// ONNX protobuf.
    Onnx,
    /// Caffe binary weights with a `.prototxt` beside them.
    Caffemodel,
    /// safetensors weights (layout in `SAFETENSORS.md`), read onto the
    /// graph of another model file.
    Safetensors,
}

/// Tell the format of the model at `path` from its first bytes, then its
/// extension.
pub fn detect_format(path: &Path) -> Result<ModelFormat> {
    let mut head = Vec::with_capacity(16);
    std::fs::File::open(path)
        .and_then(|f| f.take(16).read_to_end(&mut head))
        .map_err(|e| FormatError::io(path, e))?;
    if head.starts_with(&SQZ_MAGIC) {
        return Ok(ModelFormat::Sqz);
    }
    if is_ncnn_param(&head) {
        return Ok(ModelFormat::Ncnn);
    }
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("net") => Ok(ModelFormat::DeepCompression),
        Some("onnx") => Ok(ModelFormat::Onnx),
        Some("caffemodel") => Ok(ModelFormat::Caffemodel),
        Some("safetensors") => Ok(ModelFormat::Safetensors),
        Some("param") => Err(FormatError::invalid(format!(
            "{}: not an ncnn .param file (the first line is not {PARAM_MAGIC})",
            path.display()
        ))),
        _ => Err(FormatError::unsupported(format!(
            "{}: unknown model format (expected .sqz, ncnn .param, Deep Compression .net, .onnx, .caffemodel or .safetensors)",
            path.display()
        ))),
    }
}

/// Whether `head` starts with the ncnn magic line.
fn is_ncnn_param(head: &[u8]) -> bool {
    head.strip_prefix(PARAM_MAGIC.as_bytes())
        .is_some_and(|rest| rest.first().is_none_or(|b| b.is_ascii_whitespace()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Write `content` to a fresh folder as `name` and detect it.
    fn detect(name: &str, content: &[u8]) -> Result<ModelFormat> {
        static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("sqz-detect-{}-{call}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        let result = detect_format(&path);
        std::fs::remove_dir_all(&dir).unwrap();
        result
    }

    #[test]
    fn content_wins_over_extension() {
        assert_eq!(detect("m.sqz", b"SQZ\0\x01rest").unwrap(), ModelFormat::Sqz);
        assert_eq!(detect("renamed.onnx", b"SQZ\0").unwrap(), ModelFormat::Sqz);
        assert_eq!(
            detect("m.ncnn.param", b"7767517\n49 57\n").unwrap(),
            ModelFormat::Ncnn
        );
        assert_eq!(detect("m.txt", b"7767517\r\n").unwrap(), ModelFormat::Ncnn);
        assert_eq!(detect("m.param", b"7767517").unwrap(), ModelFormat::Ncnn);
    }

    #[test]
    fn extensions_decide_without_a_signature() {
        assert_eq!(
            detect("c.net", &[1, 0, 0, 0]).unwrap(),
            ModelFormat::DeepCompression
        );
        assert_eq!(detect("m.ONNX", &[8, 7]).unwrap(), ModelFormat::Onnx);
        assert_eq!(
            detect("w.caffemodel", &[]).unwrap(),
            ModelFormat::Caffemodel
        );
    }

    #[test]
    fn unknown_files_get_a_clear_error() {
        let e = detect("m.param", b"77675170\n").unwrap_err().to_string();
        assert!(e.contains("not an ncnn .param"), "{e}");
        let e = detect("model.bin", b"\x47\x6b\x30\x01")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown model format"), "{e}");
        let missing = detect_format(Path::new("/nonexistent/sqz/model.net")).unwrap_err();
        assert!(matches!(missing, FormatError::Io { .. }), "{missing}");
    }
}
