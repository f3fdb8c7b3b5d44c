//! Serves a folder over HTTP on loopback with the test server (Range support,
//! no faults), for `scripts/bench-save.sh`.
//!
//! `cargo run --release --example serve-folder -- DIR [ADDR]` prints the
//! address it listens on, then serves until killed.

#[path = "../tests/it/common/server.rs"]
mod server;

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next() else {
        eprintln!("usage: serve-folder DIR [ADDR]");
        std::process::exit(2);
    };
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:0".to_string());
    let server = server::TestServer::start_on(std::path::Path::new(&dir), &addr);
    println!("{}", server.addr());
    loop {
        std::thread::park();
    }
}
