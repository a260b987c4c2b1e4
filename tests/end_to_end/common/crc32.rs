//! CRC-32 (ISO-HDLC: reflected polynomial 0xEDB88320), as PNG chunks and
//! `.sqz` sections use. Shared by the test helpers and the fuzz targets,
//! which need it to forge valid checksums; bitwise, as speed is no concern.

/// CRC-32 of `bytes`; `crc32(b"123456789") == 0xCBF4_3926`.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
