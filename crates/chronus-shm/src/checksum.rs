/// 64-bit FNV-1a over the bit patterns of a block's samples, word by word.
///
/// Workers publish it next to each block; the supervisor compares the two
/// slots' checksums for the same frame to prove lockstep.
pub fn block_checksum(samples: &[f32]) -> u64 {
    samples.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, s| {
        (h ^ u64::from(s.to_bits())).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_tells_apart_one_flipped_bit() {
        let a = [0.25_f32; 512];
        let mut b = a;
        b[300] = f32::from_bits(b[300].to_bits() ^ 1);
        assert_ne!(block_checksum(&a), block_checksum(&b));
        assert_eq!(block_checksum(&a), block_checksum(&a.clone()));
    }

    #[test]
    fn checksum_depends_on_order() {
        assert_ne!(block_checksum(&[1.0, 2.0]), block_checksum(&[2.0, 1.0]));
    }
}
