//! Writing the chunks a stream received to a socket in one vectored write, straight from the
//! buffers they arrived in.

use std::io::{self, IoSlice};

use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Most chunks taken from a stream for one write (well under the kernel's 1,024 iovecs).
pub(crate) const MAX_CHUNKS: usize = 64;

/// Most bytes taken from a stream for one write; what is taken is credited back to the peer,
/// so this also bounds how far the stream's window runs ahead of the socket.
pub(crate) const MAX_BYTES: usize = 256 * 1024;

/// Writes every byte of `chunks`, in as few writes as the socket takes them. A writer without
/// vectored writes gets one `write_all` per chunk instead (never a write per slice piece).
pub(crate) async fn write_all_chunks<W>(io: &mut W, chunks: &[Bytes]) -> io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    if chunks.len() == 1 || !io.is_write_vectored() {
        for chunk in chunks {
            io.write_all(chunk).await?;
        }
        return Ok(());
    }
    let mut slices: Vec<IoSlice<'_>> = chunks.iter().map(|c| IoSlice::new(c)).collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        let n = io.write_vectored(rest).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut rest, n);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Over a loopback TCP connection (vectored writes) whose reader starts late, so that the
    /// socket buffers fill and writes are partial.
    #[tokio::test]
    async fn chunks_arrive_whole_and_in_order_through_partial_writes() {
        let chunks: Vec<Bytes> = (0..40u8)
            .map(|i| Bytes::from(vec![i; 100_000 + i as usize]))
            .collect();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut writer = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut reader, _) = listener.accept().await.unwrap();
        assert!(writer.is_write_vectored());
        let expected = chunks.concat();
        let read = tokio::spawn(async move {
            let mut got = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut got)
                .await
                .unwrap();
            got
        });
        write_all_chunks(&mut writer, &chunks).await.unwrap();
        drop(writer);
        assert!(read.await.unwrap() == expected);
    }

    #[tokio::test]
    async fn without_vectored_writes_each_chunk_is_written_whole() {
        let chunks: Vec<Bytes> = (0..10u8).map(|i| Bytes::from(vec![i; 1000])).collect();
        let (mut a, mut b) = tokio::io::duplex(700);
        let read = tokio::spawn(async move {
            let mut got = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut b, &mut got)
                .await
                .unwrap();
            got
        });
        write_all_chunks(&mut a, &chunks).await.unwrap();
        drop(a);
        assert_eq!(read.await.unwrap(), chunks.concat());
    }
}
