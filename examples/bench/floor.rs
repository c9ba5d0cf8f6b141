//! Baseline (b), the floor: raw TCP lines between two tokio tasks on
//! 127.0.0.1, no framing but `\n`, no crypto, no multiplexing. Nothing that
//! carries a chat message over TCP can be faster.

use std::{net::SocketAddr, sync::Arc};

use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
    sync::Mutex,
};

use crate::load::{Arrivals, Link, RoundTrip, text};

/// A one-way line link: a writer task's socket and a reader task that
/// records each line's arrival.
pub(crate) async fn link(cap: usize) -> anyhow::Result<Link> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let arrivals = Arrivals::new(cap);
    let rec = arrivals.clone();
    tokio::spawn(async move {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let _ = stream.set_nodelay(true);
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            rec.record(line.as_bytes());
        }
    });
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let writer = Arc::new(Mutex::new(stream));
    let send: crate::load::SendFn = Box::new(move |seq| {
        let writer = writer.clone();
        Box::pin(async move {
            let mut line = text(seq).into_bytes();
            line.push(b'\n');
            writer.lock().await.write_all(&line).await?;
            Ok(())
        })
    });
    Ok(Link {
        send,
        arrivals,
        next: 0,
    })
}

/// An echo server: each connection's lines come back unchanged.
async fn echo_server() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = stream.set_nodelay(true);
                let (r, mut w) = stream.into_split();
                let mut lines = BufReader::new(r).lines();
                while let Ok(Some(mut line)) = lines.next_line().await {
                    line.push('\n');
                    if w.write_all(line.as_bytes()).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    Ok(addr)
}

/// `workers` round-trip functions, each over its own connection to one
/// echo task: a line out, the same line back.
pub(crate) async fn round_trips(workers: usize) -> anyhow::Result<Vec<RoundTrip>> {
    let addr = echo_server().await?;
    let mut trips = Vec::with_capacity(workers);
    for _ in 0..workers {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (r, w) = stream.into_split();
        let conn = Arc::new(Mutex::new((BufReader::new(r), w)));
        let trip: RoundTrip = Arc::new(move |seq| {
            let conn = conn.clone();
            Box::pin(async move {
                let mut guard = conn.lock().await;
                let (reader, writer) = &mut *guard;
                let mut line = text(seq);
                line.push('\n');
                writer.write_all(line.as_bytes()).await?;
                let mut back = String::new();
                reader.read_line(&mut back).await?;
                anyhow::ensure!(back == line, "echo mismatch");
                Ok(())
            })
        });
        trips.push(trip);
    }
    Ok(trips)
}
