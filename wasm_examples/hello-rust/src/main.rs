//! Hello in Rust: std only, so it builds offline with any toolchain that has
//! the wasm32-wasip1 (or older wasm32-wasi) target.
use std::env;

fn main() {
    let path = env::var("PATH_INFO").unwrap_or_default();
    let path = if path.is_empty() { "/".to_string() } else { path };
    let query = env::var("QUERY_STRING").unwrap_or_default();
    // argv[0] is the request path, the rest are the query items
    let items: Vec<String> = env::args().skip(1).collect();
    print!("Content-Type: text/plain; charset=utf-8\n");
    print!("X-Powered-By: rust\n\n");
    println!("Hello from Rust! {}", path);
    if !query.is_empty() {
        println!("query items: {}", items.join(" "));
    }
}
